"""What a sweep returns: :class:`SweepResult`, its ranking and summary, and its file
format (an ``.npz`` of the arrays plus JSON metadata with checksums, written atomically)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from typing import Any, Mapping

import jax
import numpy as np

from jaxopt_lab.errors import InputFileNotFoundError, InputValueError

FORMAT_VERSION = 1


class GridEdgeWarning(UserWarning):
    """The best learning rate sits at the edge of the swept grid: widen the grid."""


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepResult:
    """What :func:`sweep` returns. Member arrays are shaped by the sweep's axes.

    The axes, in order, are those of ``axes``: ``learning_rate`` (K), then each swept
    hyperparameter when ``combine="grid"`` (with ``combine="zip"`` they share the
    learning-rate axis), then ``seed`` (S) when ``seeds`` was given. With only learning
    rates, ``shape == (K,)``.

    Attributes:
      axes: axis name -> the values along it (1-D numpy arrays).
      losses: ``(*shape, steps)`` loss before each update (the mini-batch loss in
        mini-batch mode); NaN after a member's divergence step.
      grad_norms: ``(*shape, steps)`` global gradient norm before each update.
      diverged: ``shape`` bool.
      diverged_at: ``shape`` int, the step of divergence, ``-1`` where none.
      params: the final params, each leaf with leading axes ``shape`` (diverged members:
        the params they were frozen at).
      hyperparams: axis name -> ``shape`` array of every member's value (learning rates
        included), so ``hyperparams["b1"][i, j]`` is member ``(i, j)``'s b1.
      config: JSON-able description of the run (grid, steps, chunking, devices, timing).
      state: the final optimizer state of every member, each leaf with leading axes
        ``shape`` (meaningless for diverged members, which stay frozen); pass the result
        as ``sweep(..., state=result)`` to continue every member where it stopped.
      evals: ``(*shape, E)`` each member's evaluation (``eval_fn``) after the updates in
        ``eval_steps`` (``(E,)``); NaN after a member's divergence. None without one.
      pruned_at: ``shape`` int: the rung (step) at which successive halving stopped a
        member, ``-1`` for members that ran to the end (or diverged first); its
        histories are NaN after it, and ``params``/``state`` are those it reached.
    """

    axes: dict[str, np.ndarray]
    losses: np.ndarray
    grad_norms: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    params: Any
    hyperparams: dict[str, np.ndarray]
    config: dict[str, Any]
    state: Any = None
    evals: np.ndarray | None = None
    eval_steps: np.ndarray | None = None
    pruned_at: np.ndarray | None = None
    # the call that made this result (not saved): what refine() runs again
    call: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pruned_at is None:
            self.pruned_at = np.full(self.diverged.shape, -1, np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.diverged.shape

    @property
    def steps_reached(self) -> np.ndarray:
        """``shape``: the updates each member made before it was pruned, or all of them
        (a diverged member counts the steps it was run for, frozen or not)."""
        steps = self.losses.shape[-1]
        return np.where(self.pruned_at >= 0, self.pruned_at, steps)

    @property
    def member_steps(self) -> int:
        """Member-steps the sweep computed (summed over members): the full grid's
        ``diverged.size * steps`` without pruning, fewer with it."""
        done = self.config.get("member_steps")
        return int(done) if done is not None else int(self.diverged.size * self.losses.shape[-1])

    @property
    def learning_rates(self) -> np.ndarray:
        """``(K,)`` the swept learning rates."""
        return self.axes["learning_rate"]

    @property
    def final_losses(self) -> np.ndarray:
        """``shape``: the last recorded loss of each member (NaN if it diverged; a
        pruned member's at its rung)."""
        last = np.maximum(self.steps_reached, 1)[..., None] - 1
        return np.take_along_axis(self.losses, last, axis=-1)[..., 0]

    @property
    def best_losses(self) -> np.ndarray:
        """``shape``: the lowest finite loss each member recorded (NaN if none)."""
        finite = np.where(np.isfinite(self.losses), self.losses, np.inf)
        best = finite.min(axis=-1)
        return np.where(np.isfinite(best), best, np.nan)

    @property
    def best_evals(self) -> np.ndarray | None:
        """``shape``: each member's best evaluation over its history (the lowest with
        ``eval_mode="min"``, the highest with ``"max"``); None without an evaluation."""
        if self.evals is None:
            return None
        finite = np.isfinite(self.evals)
        if self.config.get("eval_mode") == "max":
            best = np.where(finite, self.evals, -np.inf).max(axis=-1)
        else:
            best = np.where(finite, self.evals, np.inf).min(axis=-1)
        return np.where(np.isfinite(best), best, np.nan)

    def _member_scores(self) -> np.ndarray:
        """What ranks a member, lower is better (see :func:`member_scores`)."""
        epochs = self.config.get("epochs")
        per_epoch = None
        if self.config.get("mode") == "minibatch" and epochs:
            per_epoch = self.losses.shape[-1] // int(epochs)
        return member_scores(self.losses, self.evals, self.config.get("eval_mode"), per_epoch,
                             self.steps_reached)  # fmt: skip

    def _config_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Score per configuration (its seeds combined, see :func:`combine_seeds`) and its
        diverged flag (a configuration counts as diverged when any of its seeds did)."""
        score, diverged = self._member_scores(), self.diverged
        if "seed" in self.axes:
            return combine_seeds(score, self.config.get("seed_quantile")), diverged.any(axis=-1)
        return score, diverged

    def ranking(self) -> list[tuple[int, ...]]:
        """Indices (over the axes except ``seed``) of the configurations that never
        diverged, best first (mean over seeds): by best evaluation when the sweep had an
        ``eval_fn``, else by final loss (mini-batch: mean loss over the last epoch);
        ties keep grid order. After pruning, configurations that ran longer come first
        (those that ran to the end, then those pruned at the last rung, ...)."""
        score, diverged = self._config_scores()
        score = np.where(diverged | ~np.isfinite(score), np.inf, score)
        reached = self.steps_reached
        if "seed" in self.axes:
            reached = reached.min(axis=-1)
        order = np.lexsort((score.ravel(), -reached.ravel()))
        order = order[np.isfinite(score.ravel()[order])]
        return [tuple(int(i) for i in np.unravel_index(flat, score.shape)) for flat in order]

    @property
    def best_index(self) -> tuple[int, ...]:
        """Index (over the axes except ``seed``) of the configuration with the lowest
        final loss (mean over seeds), among those that never diverged: ``ranking()[0]``."""
        ranking = self.ranking()
        if not ranking:
            raise ValueError("Every member of the sweep diverged: there is no best learning rate.")
        return ranking[0]

    @property
    def best(self) -> dict[str, float]:
        """The best configuration: axis name -> value (seed excluded)."""
        idx = self.best_index
        names = [n for n in self.axes if n != "seed"]
        return {n: float(self.hyperparams[n][idx + (0,) * ("seed" in self.axes)]) for n in names}

    @property
    def best_learning_rate(self) -> float:
        """The learning rate of :attr:`best`; warns (:class:`GridEdgeWarning`) when it is
        the smallest or largest learning rate swept."""
        lr = self.best["learning_rate"]
        lrs = self.learning_rates
        if lrs.size > 1 and lr in (lrs.min(), lrs.max()):
            side = "smallest" if lr == lrs.min() else "largest"
            warnings.warn(
                f"The best learning rate {lr:.4g} is the {side} one swept; the optimum may "
                "lie outside the grid, widen it.",
                GridEdgeWarning,
                stacklevel=2,
            )
        return lr

    def refined_learning_rates(self) -> np.ndarray:
        """The next grid, with as many learning rates: between the best one's neighbours
        (log-spaced) when it lies inside the grid, or, when it sits on an edge, the
        grid's log-width moved past that edge so that the best one is one step inside."""
        lrs = np.sort(self.learning_rates)
        k = lrs.size
        if k < 2:
            raise InputValueError("refine needs a grid of at least two learning rates.")
        best = self.best["learning_rate"]
        i = int(np.argmin(np.abs(lrs - best)))
        ratio = (lrs[-1] / lrs[0]) ** (1 / (k - 1))  # the grid's step (log-spaced grids)
        if i == 0:
            lo, hi = best * ratio ** -(k - 2), best * ratio
        elif i == k - 1:
            lo, hi = best / ratio, best * ratio ** (k - 2)
        else:
            lo, hi = lrs[i - 1], lrs[i + 1]
        return np.geomspace(lo, hi, k)

    def refine(self, **overrides: Any) -> "SweepResult":
        """Run the next sweep over :meth:`refined_learning_rates`, with every other
        argument of the call that made this result (``overrides`` replace some). The
        grid keeps its shape, so the compiled program is reused. Only for a result made
        in this process (a loaded one does not hold its functions)."""
        if self.call is None:
            raise InputValueError(
                "refine needs the call that made this result; for a loaded result, run "
                "jol.sweep with refined_learning_rates()."
            )
        from jaxopt_lab.sweep import sweep  # the package runs sweeps; results describe them

        args, kwargs = self.call
        kwargs = {**kwargs, **overrides}
        args = (*args[:3], self.refined_learning_rates(), *args[4:])
        return sweep(*args, **kwargs)

    def summary(self, max_rows: int | None = None) -> str:
        """A plain-text table, one row per configuration (seeds pooled): its
        hyperparameters, final loss, best loss, the best evaluation when the sweep had
        one (mean over seeds), diverged (count of seeds with several), the first step of
        divergence, and after pruning the rung where it stopped. The final loss of a
        pruned configuration is its last one, at its rung."""
        names = [n for n in self.axes if n != "seed"]
        seeds = "seed" in self.axes
        final, best = self.final_losses, self.best_losses
        div, at = self.diverged, self.diverged_at
        if seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                final, best = (
                    np.nanmean(final, -1),
                    np.nanmin(np.where(np.isnan(best), np.inf, best), -1),
                )
            n_seeds = div.shape[-1]
            at = np.where(div, at, np.iinfo(np.int64).max).min(-1)
            div = div.sum(-1)
        header = [*names, "final loss", "best loss", "diverged", "at step"]
        evals = self.best_evals
        if evals is not None:
            header.insert(len(names) + 2, "best eval")
            if seeds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    evals = np.nanmean(evals, -1)
        pruned = None
        if (self.pruned_at >= 0).any():
            header.append("pruned at")
            pruned = self.pruned_at.max(-1) if seeds else self.pruned_at
        rows = []
        for idx in np.ndindex(*self._config_scores()[0].shape):
            hp = [f"{self.axes[n][idx[i] if i < len(idx) else 0]:.4g}" for i, n in enumerate(names)]
            if seeds:
                d = f"{int(div[idx])}/{n_seeds}"
                step = str(int(at[idx])) if div[idx] else "-"
            else:
                d = "yes" if div[idx] else "no"
                step = str(int(at[idx])) if div[idx] else "-"
            scores = [f"{final[idx]:.6g}", f"{best[idx]:.6g}"]
            if evals is not None:
                scores.append(f"{evals[idx]:.6g}")
            row = [*hp, *scores, d, step]
            if pruned is not None:
                row.append(str(int(pruned[idx])) if pruned[idx] >= 0 else "-")
            rows.append(row)
        shown = rows if max_rows is None or len(rows) <= max_rows else rows[:max_rows]
        widths = [max(len(r[i]) for r in [header, *shown]) for i in range(len(header))]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in shown]
        if len(shown) < len(rows):
            lines.append(f"... {len(rows) - len(shown)} more rows")
        return "\n".join(lines)

    def __repr__(self) -> str:
        axes = ", ".join(f"{k}={len(v)}" for k, v in self.axes.items())
        return (
            f"SweepResult({axes}, steps={self.losses.shape[-1]}, "
            f"diverged={int(self.diverged.sum())}/{self.diverged.size})"
        )

    # ----------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the result to ``path`` (a ``.npz`` file: the arrays plus the JSON
        metadata), atomically: a reader sees the old file or the new one, never half."""
        leaves, _ = flatten_with_paths(self.params)
        state_leaves, _ = flatten_with_paths(self.state)
        arrays = {
            "losses": self.losses,
            "grad_norms": self.grad_norms,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            **{f"axis/{k}": v for k, v in self.axes.items()},
            **{f"hyperparam/{k}": v for k, v in self.hyperparams.items()},
            **{f"params/{i}": v for i, (_, v) in enumerate(leaves)},
            **{f"state/{i}": v for i, (_, v) in enumerate(state_leaves)},
        }
        if self.evals is not None:
            arrays.update(evals=self.evals, eval_steps=self.eval_steps)
        if (self.pruned_at >= 0).any():
            arrays["pruned_at"] = self.pruned_at
        meta = {
            "format": "jaxopt_lab.SweepResult",
            "version": FORMAT_VERSION,
            "axes": list(self.axes),
            "hyperparams": list(self.hyperparams),
            "param_paths": [p for p, _ in leaves],
            "state_paths": [p for p, _ in state_leaves],
            "checksums": {k: digest(v) for k, v in arrays.items()},
            "config": self.config,
        }
        atomic_savez(path, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, params_like: Any = None) -> "SweepResult":
        """Read a result written by :meth:`save`. ``params`` comes back in the structure
        of ``params_like`` (any pytree with the swept params' structure) when given, else
        as a dict from each leaf's path (``"['w1']"``) to its array; ``state`` comes
        back as such a dict (``sweep(..., state=result)`` rebuilds its structure from
        the optimizer). A truncated or altered file raises ValueError."""
        arrays, meta = load_npz(path, "jaxopt_lab.SweepResult")
        leaves = [arrays[f"params/{i}"] for i in range(len(meta["param_paths"]))]
        if params_like is None:
            params = dict(zip(meta["param_paths"], leaves, strict=True))
        else:
            paths, treedef = flatten_with_paths(params_like)
            if [p for p, _ in paths] != meta["param_paths"]:
                raise InputValueError(
                    f"`params_like` has leaves {[p for p, _ in paths]}, the file has "
                    f"{meta['param_paths']}."
                )
            params = jax.tree.unflatten(treedef, leaves)
        return cls(
            axes={k: arrays[f"axis/{k}"] for k in meta["axes"]},
            losses=arrays["losses"],
            grad_norms=arrays["grad_norms"],
            diverged=arrays["diverged"],
            diverged_at=arrays["diverged_at"],
            params=params,
            hyperparams={k: arrays[f"hyperparam/{k}"] for k in meta["hyperparams"]},
            config=meta["config"],
            state=dict(
                zip(
                    meta.get("state_paths", []),
                    [arrays[f"state/{i}"] for i in range(len(meta.get("state_paths", [])))],
                    strict=True,
                )
            )
            or None,
            evals=arrays.get("evals"),
            eval_steps=arrays.get("eval_steps"),
            pruned_at=arrays.get("pruned_at"),
        )


def combine_seeds(score: np.ndarray, quantile: float | None) -> np.ndarray:
    """A configuration's score from its seeds' (the last axis; lower is better): their
    mean, or with ``quantile`` that quantile of them (0.5 the median, 1.0 the worst
    seed: a configuration that must work for every seed)."""
    if quantile is None:
        return score.mean(axis=-1)
    return np.quantile(score, quantile, axis=-1)


def member_scores(losses, evals, eval_mode, per_epoch, reached) -> np.ndarray:
    """What ranks a member, lower is better, from its history up to ``reached`` updates
    (per member; NaN beyond): its best evaluation (negated for ``eval_mode="max"``);
    without one, its last loss, or in mini-batch mode (``per_epoch`` steps an epoch)
    its mean training loss over the last epoch (one batch's loss is too noisy)."""
    if evals is not None:
        finite = np.isfinite(evals)
        if eval_mode == "max":
            best = -np.where(finite, evals, -np.inf).max(axis=-1)
        else:
            best = np.where(finite, evals, np.inf).min(axis=-1)
        return np.where(np.isfinite(best), best, np.nan)
    t = np.arange(losses.shape[-1])
    end = np.asarray(reached)[..., None]
    window = (t < end) & (t >= end - (per_epoch or 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window, losses, 0).sum(axis=-1) / window.sum(axis=-1)


def flatten_with_paths(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(p), x) for p, x in with_path], treedef


def digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def atomic_savez(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_npz(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError as e:
        raise InputFileNotFoundError(f"`path`: no such file: {path} ({e.strerror})") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as e:
        raise InputValueError(
            f"{path} is not a readable {kind} file (truncated or corrupt): {e}"
        ) from e
    if "__meta__" not in arrays:
        raise InputValueError(f"{path} is not a {kind} file: it has no metadata.")
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    if meta.get("format") != kind:
        raise InputValueError(f"{path} holds {meta.get('format')!r}, not {kind!r}.")
    for k, expected in meta.get("checksums", {}).items():
        if k not in arrays or digest(arrays[k]) != expected:
            raise InputValueError(
                f"{path} is corrupt: array {k!r} is missing or does not match its checksum."
            )
    return arrays, meta
