r"""Vmapped hyperparameter sweeps: many training runs in one compiled program.

:func:`sweep` trains one *member* per combination of a learning rate, optional further
hyperparameters and optional seeds, all with the same loss, initial-params recipe and
number of steps, and returns a :class:`SweepResult`.

How the members are run
-----------------------
The members are cut into *chunks* of a fixed size; every chunk is one call of the same
compiled program (the last chunk is padded with copies of the last member, whose results
are dropped), so the program is compiled once whatever the number of members, and the
memory in use is bounded by the chunk. Inside a chunk, members run in *groups* of
``vmap_width``: a group is ``jax.vmap``-ed, the groups of a chunk run one after the
other (``lax.map``), and every step of every member is a ``lax.scan`` step: no Python
runs per step.

The vmap width is a property of the problem, not of the sweep: by default it is chosen
from XLA's flop estimate of one member's loss-and-gradient so that a group's step is
big enough to hide the loop overhead but no bigger. Small problems (a 2-D test function)
are vmapped 64 wide on a CPU, a digits MLP runs one member at a time, which on a CPU is
faster than vmapping it (batched matmuls cost more per member than plain ones). On a GPU
the groups are wide, but never wider than the members per device (rounded up to a power
of two), so a small sweep computes no padding. Chunks are padded to a multiple of the
width, so a member's numbers do not depend on the chunk size: same inputs and width,
same bits (a different width may change the last bits on problems with matmuls, as
batched and plain matmuls round differently; pass ``vmap_width`` to pin it).

With several devices (``devices=``, default every local device) each chunk's members are
split evenly across a one-axis ``jax.sharding.Mesh`` with ``shard_map``; a device runs
its share of the chunk with no communication. Several hosts: start each process with
``jax.distributed.initialize()`` and pass ``devices=jax.devices()``; every process then
runs the same call (this package does not start processes of its own).

Divergence
----------
A member *diverges* at step :math:`t` when its loss or gradient there is not finite,
when the loss exceeds ``divergence_threshold`` (default: no threshold, only non-finite
values count), or when the update would make a param non-finite. From then on it is
frozen: its params stay those of step :math:`t` (all finite), ``diverged`` is True,
``diverged_at`` is :math:`t`, ``losses[..., t]`` holds the offending value and later
entries are NaN. Members never interact, so a diverging member changes no other
member's numbers.

Resume
------
With ``checkpoint_dir``, every finished chunk is written there (atomically) next to a
``config.json`` fingerprint of the sweep's inputs. The same call after an interruption
loads the finished chunks and runs only the rest, ending with the same numbers as an
uninterrupted run; a directory written by a different configuration is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import numbers
import os
import sys
import tempfile
import time
import warnings
import zipfile
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxopt_lab.base import Params
from jaxopt_lab.checks import check_params, check_scalar_fn
from jaxopt_lab._iterate import update as _core_update, value_and_grad as _core_vg
from jaxopt_lab.checks import check_callable, check_count as _check_count, check_key as _check_key, check_optimizer as _check_optimizer
from jaxopt_lab.loops import data_size, epoch_batches


def _check_callable(fn):
    check_callable("loss_fn", fn)


def _value_and_grad(loss_fn, has_aux, params, *args):
    o = _core_vg(loss_fn, has_aux, params, args)
    return o.loss, o.aux, o.grads


def _update(opt, loss_fn, has_aux, p, s, loss, grads, args):
    from jaxopt_lab._iterate import Observation
    return _core_update(opt, loss_fn, has_aux, p, s, Observation(loss, grads, None), args)
from jaxopt_lab.transforms import global_norm

_AXIS = "members"
FORMAT_VERSION = 1

# A group's step should cost about this many flops (XLA's estimate) before widening the
# vmap stops paying: measured on a 2-core CPU, vmapping helps up to ~1e6 flops per
# member step and costs 1.1-1.6x per member for a 1e7-flop digits MLP.
_TARGET_GROUP_FLOPS = {"cpu": 4e6}
_TARGET_GROUP_FLOPS_ACCELERATOR = 1e10
_MAX_WIDTH = {"cpu": 64}
_MAX_WIDTH_ACCELERATOR = 1024
DEFAULT_CHUNK_PER_DEVICE = 64
PROGRESS_EVERY = 250  # steps between progress callbacks inside a chunk


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
    """

    axes: dict[str, np.ndarray]
    losses: np.ndarray
    grad_norms: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    params: Any
    hyperparams: dict[str, np.ndarray]
    config: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.diverged.shape

    @property
    def learning_rates(self) -> np.ndarray:
        """``(K,)`` the swept learning rates."""
        return self.axes["learning_rate"]

    @property
    def final_losses(self) -> np.ndarray:
        """``shape``: the last recorded loss of each member (NaN if it diverged)."""
        return self.losses[..., -1]

    @property
    def best_losses(self) -> np.ndarray:
        """``shape``: the lowest finite loss each member recorded (NaN if none)."""
        finite = np.where(np.isfinite(self.losses), self.losses, np.inf)
        best = finite.min(axis=-1)
        return np.where(np.isfinite(best), best, np.nan)

    def _config_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Final loss per configuration (seed axis averaged) and its diverged flag (a
        configuration counts as diverged when any of its seeds did)."""
        final, diverged = self.final_losses, self.diverged
        if "seed" in self.axes:
            return final.mean(axis=-1), diverged.any(axis=-1)
        return final, diverged

    def ranking(self) -> list[tuple[int, ...]]:
        """Indices (over the axes except ``seed``) of the configurations that never
        diverged, by final loss (mean over seeds), lowest first; ties keep grid order."""
        score, diverged = self._config_scores()
        score = np.where(diverged | ~np.isfinite(score), np.inf, score)
        order = np.argsort(score, axis=None, kind="stable")
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

    def summary(self, max_rows: int | None = None) -> str:
        """A plain-text table, one row per configuration (seeds pooled): its
        hyperparameters, final loss, best loss, diverged (count of seeds with several),
        and the first step of divergence."""
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
        rows = []
        for idx in np.ndindex(*self._config_scores()[0].shape):
            hp = [f"{self.axes[n][idx[i] if i < len(idx) else 0]:.4g}" for i, n in enumerate(names)]
            if seeds:
                d = f"{int(div[idx])}/{n_seeds}"
                step = str(int(at[idx])) if div[idx] else "-"
            else:
                d = "yes" if div[idx] else "no"
                step = str(int(at[idx])) if div[idx] else "-"
            rows.append([*hp, f"{final[idx]:.6g}", f"{best[idx]:.6g}", d, step])
        shown = rows if max_rows is None or len(rows) <= max_rows else rows[:max_rows]
        widths = [max(len(r[i]) for r in [header, *shown]) for i in range(len(header))]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in shown]
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
        leaves, _ = _flatten_with_paths(self.params)
        arrays = {
            "losses": self.losses,
            "grad_norms": self.grad_norms,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            **{f"axis/{k}": v for k, v in self.axes.items()},
            **{f"hyperparam/{k}": v for k, v in self.hyperparams.items()},
            **{f"params/{i}": v for i, (_, v) in enumerate(leaves)},
        }
        meta = {
            "format": "jaxopt_lab.SweepResult",
            "version": FORMAT_VERSION,
            "axes": list(self.axes),
            "hyperparams": list(self.hyperparams),
            "param_paths": [p for p, _ in leaves],
            "checksums": {k: _digest(v) for k, v in arrays.items()},
            "config": self.config,
        }
        _atomic_savez(path, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, params_like: Any = None) -> "SweepResult":
        """Read a result written by :meth:`save`. ``params`` comes back in the structure
        of ``params_like`` (any pytree with the swept params' structure) when given, else
        as a dict from each leaf's path (``"['w1']"``) to its array. A truncated or
        altered file raises ValueError."""
        arrays, meta = _load_npz(path, "jaxopt_lab.SweepResult")
        leaves = [arrays[f"params/{i}"] for i in range(len(meta["param_paths"]))]
        if params_like is None:
            params = dict(zip(meta["param_paths"], leaves))
        else:
            paths, treedef = _flatten_with_paths(params_like)
            if [p for p, _ in paths] != meta["param_paths"]:
                raise ValueError(
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
        )


def _flatten_with_paths(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(p), x) for p, x in with_path], treedef


def _digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _atomic_savez(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
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


def _load_npz(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as e:
        raise ValueError(f"{path} is not a readable {kind} file (truncated or corrupt): {e}") from e
    if "__meta__" not in arrays:
        raise ValueError(f"{path} is not a {kind} file: it has no metadata.")
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    if meta.get("format") != kind:
        raise ValueError(f"{path} holds {meta.get('format')!r}, not {kind!r}.")
    for k, digest in meta.get("checksums", {}).items():
        if k not in arrays or _digest(arrays[k]) != digest:
            raise ValueError(
                f"{path} is corrupt: array {k!r} is missing or does not match its checksum."
            )
    return arrays, meta


# --------------------------------------------------------------------------------------
# Input checks and the member table
# --------------------------------------------------------------------------------------


def _float_dtype() -> Any:
    return jax.dtypes.canonicalize_dtype(np.float64)  # float32, or float64 under x64


def _check_learning_rates(learning_rates: Any) -> np.ndarray:
    if callable(learning_rates) or isinstance(learning_rates, (str, bytes)):
        raise TypeError(f"`learning_rates` must be a 1-D array of numbers, got {learning_rates!r}.")
    try:
        lrs = np.asarray(learning_rates, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`learning_rates` must be a 1-D array of numbers: {e}") from None
    if lrs.ndim != 1:
        raise ValueError(f"`learning_rates` must be 1-D, got shape {lrs.shape}.")
    if lrs.size == 0:
        raise ValueError("`learning_rates` is empty: give at least one learning rate.")
    bad = ~np.isfinite(lrs) | (lrs <= 0)
    if bad.any():
        raise ValueError(
            f"`learning_rates` must be finite and > 0; got {lrs[bad][:5].tolist()} "
            f"at index {np.flatnonzero(bad)[:5].tolist()}."
        )
    return lrs


def _check_hyperparams(
    make_optimizer: Callable, hyperparams: Any, combine: str, k: int
) -> dict[str, np.ndarray]:
    if combine not in ("grid", "zip"):
        raise ValueError(f"`combine` must be 'grid' or 'zip', got {combine!r}.")
    if hyperparams is None:
        return {}
    if not isinstance(hyperparams, Mapping):
        raise TypeError(
            f"`hyperparams` must be a dict name -> 1-D array, got {type(hyperparams).__name__}."
        )
    out = {}
    for name, values in hyperparams.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"`hyperparams` keys must be argument names, got {name!r}.")
        if name in ("learning_rate", "seed"):
            raise ValueError(f"`hyperparams` may not contain {name!r}: it is an axis of its own.")
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"`hyperparams[{name!r}]` must be a 1-D array of numbers, got {values!r}."
            ) from None
        if v.ndim != 1 or v.size == 0:
            raise ValueError(
                f"`hyperparams[{name!r}]` must be a non-empty 1-D array, got shape {v.shape}."
            )
        if not np.isfinite(v).all():
            raise ValueError(f"`hyperparams[{name!r}]` must be finite, got {v.tolist()}.")
        if combine == "zip" and v.size != k:
            raise ValueError(
                f"With combine='zip', `hyperparams[{name!r}]` needs one value per learning rate "
                f"({k}), got {v.size}."
            )
        out[name] = v
    try:
        sig = inspect.signature(make_optimizer)
    except (TypeError, ValueError):
        return out  # a builtin or C callable: let the call itself complain
    try:
        sig.bind(1.0, **{n: 1.0 for n in out})
    except TypeError:
        accepted = [p for p in sig.parameters][1:]
        for name in out:
            try:
                sig.bind(1.0, **{name: 1.0})
            except TypeError:
                raise ValueError(
                    f"`hyperparams` has {name!r}, which `make_optimizer` "
                    f"({getattr(make_optimizer, '__name__', make_optimizer)!r}) does not accept; "
                    f"it accepts {accepted}."
                ) from None
        raise
    return out


def _check_seeds(seeds: Any) -> np.ndarray | None:
    if seeds is None:
        return None
    if isinstance(seeds, (numbers.Integral, np.integer)) and not isinstance(seeds, bool):
        return np.arange(_check_count("seeds", seeds))
    s = np.asarray(seeds)
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(
            f"`seeds` must be a count or a non-empty 1-D sequence of ints, got {seeds!r}."
        )
    if len(set(s.tolist())) != s.size:
        raise ValueError(f"`seeds` must not repeat, got {s.tolist()}.")
    return s.astype(np.int64)


def _check_make_optimizer(make_optimizer: Any, lr: float, hp: dict[str, float]) -> None:
    if not callable(make_optimizer):
        raise TypeError(
            f"`make_optimizer` must be a callable lr -> optimizer (e.g. jol.adam or optax.adam), "
            f"got {make_optimizer!r}."
        )
    # Building an optimizer validates its arguments (~0.2 ms): once per factory and
    # hyperparameter names is enough, since the values are checked on the host already.
    try:
        key = (make_optimizer, tuple(sorted(hp)))
        if key in _good_factories:
            return
    except TypeError:  # an unhashable factory: check every call
        key = None
    _check_optimizer(make_optimizer(lr, **hp), "make_optimizer(learning_rate)")
    if key is not None:
        _good_factories.add(key)


class _Members(NamedTuple):
    """One row per member, in C order over the axes."""

    axes: dict[str, np.ndarray]
    lrs: np.ndarray  # (M,)
    hps: dict[str, np.ndarray]  # name -> (M,)
    seed_index: np.ndarray  # (M,) index into the seed axis (0 without seeds)


def _members(
    lrs: np.ndarray, hps: dict[str, np.ndarray], combine: str, seeds: np.ndarray | None
) -> _Members:
    axes = {"learning_rate": lrs}
    if combine == "grid":
        axes.update(hps)
    if seeds is not None:
        axes["seed"] = seeds
    idx = np.indices(tuple(len(v) for v in axes.values())).reshape(len(axes), -1)
    pos = dict(zip(axes, idx))
    lr_idx = pos["learning_rate"]
    member_hps = {n: v[pos[n]] if combine == "grid" else v[lr_idx] for n, v in hps.items()}
    seed_index = pos["seed"] if seeds is not None else np.zeros_like(lr_idx)
    return _Members(axes, lrs[lr_idx], member_hps, seed_index)


# --------------------------------------------------------------------------------------
# Choosing the vmap width
# --------------------------------------------------------------------------------------


class _Probe(NamedTuple):
    flops: float | None  # XLA's estimate for one member's loss and gradient
    loss_dtype: Any


_probe_cache: dict[Any, _Probe] = {}
_good_factories: set[Any] = set()  # (make_optimizer, hyperparameter names) that built an optimizer


def _flops(fn: Callable, shapes: Any) -> float | None:
    """XLA's flop estimate for ``fn``: from the lowered program where the backend gives
    one (CPU), else from the compiled one (GPU gives none before compiling)."""
    lowered = jax.jit(fn).lower(*shapes)
    for cost_of in (lowered.cost_analysis, lambda: lowered.compile().cost_analysis()):
        try:
            cost = cost_of()
        except Exception:  # cost analysis is best effort: some backends have none
            continue
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else None
        if cost and cost.get("flops", 0) > 0:
            return float(cost["flops"])
    return None


def _probe(loss_fn, has_aux, params, batch) -> _Probe:
    """Check ``loss_fn`` and measure one member's step, once per function and shapes."""
    args = (params,) if batch is None else (params, batch)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), args)
    key = (loss_fn, has_aux, jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))
    if key not in _probe_cache:
        check_scalar_fn(loss_fn, shapes, "loss_fn", bool(has_aux))
        fn = jax.value_and_grad(loss_fn, has_aux=bool(has_aux))
        out = jax.eval_shape(fn, *shapes)[0]
        loss_dtype = (out[0] if has_aux else out).dtype
        _probe_cache[key] = _Probe(_flops(fn, shapes), loss_dtype)
    return _probe_cache[key]


def auto_vmap_width(flops: float | None, platform: str, members: int | None = None) -> int:
    """The default group width: a power of two with ``width * flops`` near the platform's
    target (CPU: 4e6 flops per group step, capped at 64; accelerators: 1e10, capped at
    1024), and no wider than ``members`` rounded up to a power of two, so that a small
    sweep computes no padding members."""
    target = _TARGET_GROUP_FLOPS.get(platform, _TARGET_GROUP_FLOPS_ACCELERATOR)
    cap = _MAX_WIDTH.get(platform, _MAX_WIDTH_ACCELERATOR)
    if members is not None:
        cap = min(cap, 2 ** math.ceil(math.log2(max(members, 1))))
    if flops is None:  # unknown: moderate on a CPU, as wide as allowed on an accelerator
        return min(8, cap) if platform == "cpu" else cap
    width = 2 ** int(math.floor(math.log2(max(1.0, target / max(flops, 1.0)))))
    return int(min(max(width, 1), cap))


# --------------------------------------------------------------------------------------
# The compiled chunk
# --------------------------------------------------------------------------------------


class _Spec(NamedTuple):
    """Everything static about a chunk program (its jit cache key)."""

    make_optimizer: Callable
    loss_fn: Callable
    steps: int
    minibatch: bool
    has_aux: bool
    width: int
    block: int  # steps between progress callbacks (== steps when quiet)
    progress: bool
    mesh: Mesh | None
    checked: bool = True  # freeze diverging members step by step (else: the fast path)
    per_seed_params: bool = False  # seed_params has a leading seed axis (init_fn)


_progress_bars: list[Any] = []


def _progress_hook(n: Any) -> None:
    """Host callback: advance the active progress bar by ``n`` member-steps."""
    if _progress_bars:
        _progress_bars[-1].update(int(n))


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _member_step(spec: _Spec, opt, seed, order, data, threshold, carry, t):
    """One training step of one member, with divergence freezing. The history is
    recorded raw; entries after a member's divergence are masked on the host."""
    p, s, dead_at = carry  # dead_at: the step of divergence, -1 while alive
    if spec.minibatch:
        idx = order[seed, t]
        args = (jax.tree.map(lambda x: x[idx], data),)
    else:
        args = ()
    loss, _, grads = _value_and_grad(spec.loss_fn, spec.has_aux, p, *args)
    norm = global_norm(grads).astype(loss.dtype)
    new_p, new_s = _update(opt, spec.loss_fn, spec.has_aux, p, s, loss, grads, args)
    if not spec.checked:
        return (new_p, new_s, dead_at), (loss, norm)
    ok = jnp.isfinite(loss) & jnp.isfinite(norm) & (loss <= threshold) & _all_finite(new_p)
    alive = dead_at < 0
    # Only the params are frozen: a dead member's optimizer state is never read again
    # (it is not returned), so it may run on with non-finite values at no cost.
    p = jax.tree.map(lambda new, old: jnp.where(ok & alive, new, old), new_p, p)
    return (p, new_s, jnp.where(alive & ~ok, t, dead_at)), (loss, norm)


def _lockstep(fn: Callable, width: int) -> Callable:
    """``jax.vmap(fn)``; for a width of 1 the unbatched ``fn`` itself, because XLA:CPU
    runs a batch-of-one matmul slower than the plain one."""
    if width > 1:
        return jax.vmap(fn)

    def one(*args):
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return one


def _run_group(spec: _Spec, members, seed_params, order, data, threshold):
    """Train ``width`` members in lockstep (vmapped); returns their outputs.

    Each member's whole run (init, every block of steps) sits inside the vmapped
    function, so state that no member-specific value touches (an optimizer's step count,
    hence its bias corrections) stays one scalar for the group instead of one per member.
    """

    def member(lr, hp, seed, param_index):
        p0 = (
            jax.tree.map(lambda x: x[param_index], seed_params)
            if spec.per_seed_params
            else seed_params
        )
        opt = spec.make_optimizer(lr, **hp)
        step = functools.partial(_member_step, spec, opt, seed, order, data, threshold)

        def run_block(carry, t0, n):
            carry, hist = jax.lax.scan(step, carry, t0 + jnp.arange(n, dtype=jnp.int32))
            if spec.progress:  # under vmap: once per member, each adding its own n steps
                jax.debug.callback(_progress_hook, n)
            return carry, hist

        carry = (p0, opt.init(p0), jnp.int32(-1))
        n_blocks, rest = divmod(spec.steps, spec.block)
        if n_blocks == 1:  # quiet: the whole run is one block, no loop around it
            carry, hist = run_block(carry, jnp.int32(0), spec.block)
        else:
            starts = jnp.arange(n_blocks, dtype=jnp.int32) * spec.block
            carry, hist = jax.lax.scan(lambda c, t0: run_block(c, t0, spec.block), carry, starts)
            hist = jax.tree.map(lambda h: h.reshape(-1), hist)
        if rest:
            carry, tail = run_block(carry, jnp.int32(n_blocks * spec.block), rest)
            hist = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), hist, tail)
        params, _, dead_at = carry
        return params, *hist, dead_at

    return _lockstep(member, spec.width)(*members)


def _run_local(spec: _Spec, lrs, hps, seed_index, param_index, seed_params, order, data, threshold):
    """A device's share of a chunk: groups of ``width`` one after another."""
    groups = lrs.shape[0] // spec.width

    def as_groups(x):
        return x.reshape((groups, spec.width) + x.shape[1:])

    def group(m):
        return _run_group(spec, m, seed_params, order, data, threshold)

    members = (lrs, hps, seed_index, param_index)
    if groups == 1:
        return group(members)
    out = jax.lax.map(group, jax.tree.map(as_groups, members))
    return jax.tree.map(lambda x: x.reshape((groups * spec.width,) + x.shape[2:]), out)


def _shard_map(fn, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map  # jax < 0.6

    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


@functools.partial(jax.jit, static_argnames=("spec",))
def _run_chunk(
    lrs, hps, seed_index, param_index, seed_params, order, data, threshold, *, spec: _Spec
):
    """One chunk of members, the sweep's one compiled program."""
    local = functools.partial(_run_local, spec)
    if spec.mesh is None:
        return local(lrs, hps, seed_index, param_index, seed_params, order, data, threshold)
    split, whole = PartitionSpec(_AXIS), PartitionSpec()
    sharded = _shard_map(
        local,
        spec.mesh,
        in_specs=(split, split, split, split, whole, whole, whole, whole),
        out_specs=split,
    )
    return sharded(lrs, hps, seed_index, param_index, seed_params, order, data, threshold)


@jax.jit
def _seed_keys(key, seeds):
    """``(init_keys, data_keys)``, one per seed: ``split(fold_in(key, seed))``, or
    ``split(key)`` for the one implicit seed."""
    keys = key[None] if seeds is None else jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 0], pairs[:, 1]


@functools.lru_cache(maxsize=64)
def _int_seed_keys(seed: int, seeds: tuple[int, ...] | None, config: Any):
    # config: what changes the keys an int makes (PRNG implementation, x64)
    with jax.ensure_compile_time_eval():
        key = _check_key(seed)
        return _seed_keys(key, None if seeds is None else np.asarray(seeds, np.uint32))


@functools.partial(jax.jit, static_argnames=("n", "batch_size", "epochs"))
def _batch_orders(keys, *, n: int, batch_size: int, epochs: int):
    """``(S, epochs * (n // batch_size), batch_size)``: every seed's example order, the
    same as :func:`jaxopt_lab.fit` draws from that key."""

    def one(key):
        per_epoch = jax.vmap(lambda e: epoch_batches(key, e, n, batch_size))(jnp.arange(epochs))
        return per_epoch.reshape(-1, batch_size)

    return jax.vmap(one)(keys)


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _placed_scalar(value: float, dtype: np.dtype, place: Any) -> jax.Array:
    return jax.device_put(np.asarray(value, dtype), place)


def _callable_id(fn: Any) -> str:
    try:
        return _cached_callable_id(fn)
    except TypeError:  # unhashable
        return _make_callable_id(fn)


@functools.lru_cache(maxsize=256)
def _cached_callable_id(fn: Any) -> str:
    return _make_callable_id(fn)


def _make_callable_id(fn: Any) -> str:
    """A process-independent name for a function: module, qualified name and a hash of
    its code (so an edited loss is not mistaken for the old one)."""
    if isinstance(fn, functools.partial):
        return f"partial({_callable_id(fn.func)}, {fn.args!r}, {sorted(fn.keywords.items())!r})"
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    code = getattr(fn, "__code__", None)
    if code is not None:
        name += ":" + hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]
    return name


def _tree_fingerprint(tree: Any) -> str:
    leaves, _ = _flatten_with_paths(tree)
    h = hashlib.sha256(str(jax.tree.structure(tree)).encode())
    for path, x in leaves:
        h.update(path.encode())
        h.update(_digest(np.asarray(x)).encode())
    return h.hexdigest()


def _check_checkpoint_dir(folder: str, fingerprint: dict[str, Any]) -> None:
    os.makedirs(folder, exist_ok=True)
    config_path = os.path.join(folder, "config.json")
    if not os.path.exists(config_path):
        tmp = config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(fingerprint, f, indent=1, sort_keys=True)
        os.replace(tmp, config_path)
        return
    try:
        with open(config_path) as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f"`checkpoint_dir`: {config_path} is unreadable ({e}); remove it to start over."
        ) from e
    differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if differ:
        raise ValueError(
            f"`checkpoint_dir` {folder!r} holds a sweep with a different configuration "
            f"(differs in: {', '.join(differ)}); it will not be reused. Pass another folder, "
            "or delete this one to start over."
        )


def _chunk_path(folder: str, i: int) -> str:
    return os.path.join(folder, f"chunk_{i:05d}.npz")


# --------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------


def _progress_bar(enabled: bool | None, total: int, desc: str):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # installed with --no-deps on a machine without tqdm: run quietly
        return None
    return tqdm(
        total=total, desc=desc, unit="step", unit_scale=True, dynamic_ncols=True, leave=False
    )


def sweep(
    make_optimizer: Callable[..., Any],
    loss_fn: Callable[..., Any],
    params: Params | None,
    learning_rates: Any,
    steps: int | None = None,
    *,
    hyperparams: Mapping[str, Any] | None = None,
    combine: str = "grid",
    seeds: int | Sequence[int] | None = None,
    init_fn: Callable[[jax.Array], Params] | None = None,
    key: Any = 0,
    data: Any = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    divergence_threshold: float | None = None,
    chunk_size: int | None = None,
    vmap_width: int | None = None,
    devices: Sequence[Any] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    has_aux: bool = False,
) -> SweepResult:
    r"""Train one member per (learning rate, hyperparameters, seed) in one compiled
    program and return a :class:`SweepResult`.

    Member :math:`(k, \dots)` runs exactly what :func:`jaxopt_lab.minimize`
    (full batch) or :func:`jaxopt_lab.fit` (mini-batch) would run with
    ``make_optimizer(learning_rates[k], **{name: value})``; the learning rate and
    hyperparameters are traced, so no value triggers a compile.

    Args:
      make_optimizer: ``(learning_rate, **hyperparams) -> optimizer``: ``jol.adam``,
        ``optax.adam``, or any factory returning an object with ``.init``/``.update``.
      loss_fn: ``params -> scalar`` (full batch), or ``(params, batch) -> scalar`` when
        ``data`` is given.
      params: the initial params shared by every member; ``None`` with ``init_fn``.
      learning_rates: ``(K,)`` finite positive learning rates (e.g. ``jnp.logspace``).
      steps: updates per member in full-batch mode; leave None with ``data``.
      hyperparams: further axes, name -> 1-D values, passed to ``make_optimizer`` by
        keyword (``{"b1": [0.8, 0.9, 0.95]}``).
      combine: ``"grid"`` (every combination: one axis per name) or ``"zip"`` (the
        i-th value of each goes with the i-th learning rate; one shared axis).
      seeds: a count or a sequence of ints: adds a ``seed`` axis (last). Seed
        :math:`s` uses ``k = fold_in(key, s)``; ``init_key, data_key = split(k)``.
        Without seeds the one "seed" uses ``key`` itself the same way.
      init_fn: ``key -> params``, called once per seed with ``init_key`` (instead of
        ``params``).
      key: a ``jax.random`` key or an int seed.
      data, batch_size, epochs: mini-batch mode, as :func:`jaxopt_lab.fit`: each seed's
        examples are shuffled every epoch from its ``data_key``, and every member of that
        seed sees the same batches. ``steps = epochs * (N // batch_size)``.
      divergence_threshold: a loss above this counts as divergence (default: only
        non-finite values do).
      chunk_size: members per compiled call (default: 64 per device, or all members when
        fewer); rounded up to a multiple of ``vmap_width`` times the device count.
      vmap_width: members computed in lockstep (default: chosen from the problem's
        flops, see the module docstring).
      devices: the devices to shard the member axis over (default: every local device).
      checkpoint_dir: a folder to write finished chunks to and resume from.
      progress: show a tqdm progress bar (default: only when stderr is a terminal).
      has_aux: ``loss_fn`` returns ``(loss, aux)``; the aux is discarded.

    Returns:
      A :class:`SweepResult`; arrays shaped ``(K, [hyperparam axes], [S], steps)``.

    Example::

        res = jol.sweep(jol.adam, loss, params, jnp.logspace(-4, 0, 32), 500)
        print(res.summary()); res.best_learning_rate
    """
    t_start = time.perf_counter()
    _check_callable(loss_fn)
    lrs = _check_learning_rates(learning_rates)
    hps = _check_hyperparams(make_optimizer, hyperparams, combine, lrs.size)
    seeds_arr = _check_seeds(seeds)
    int_key = key if isinstance(key, (int, np.integer)) and not isinstance(key, bool) else None
    key = _check_key(key)
    _check_make_optimizer(make_optimizer, float(lrs[0]), {n: float(v[0]) for n, v in hps.items()})

    minibatch = data is not None
    if minibatch:
        if steps is not None:
            raise ValueError("Give `epochs` (and `batch_size`) with `data`, not `steps`.")
        if batch_size is None or epochs is None:
            raise ValueError("Mini-batch mode (`data=`) needs `batch_size` and `epochs`.")
        epochs = _check_count("epochs", epochs)
        batch_size = _check_count("batch_size", batch_size)
        n = data_size(data)
        if batch_size > n:
            raise ValueError(
                f"`batch_size` must be <= the number of examples ({n}), got {batch_size}."
            )
        steps = epochs * (n // batch_size)
    else:
        if batch_size is not None or epochs is not None:
            raise ValueError(
                "`batch_size` and `epochs` need `data`; in full-batch mode give `steps`."
            )
        if steps is None:
            raise ValueError("Give `steps` (full batch) or `data`, `batch_size` and `epochs`.")
        steps = _check_count("steps", steps)
    if chunk_size is not None:
        chunk_size = _check_count("chunk_size", chunk_size)
    if vmap_width is not None:
        vmap_width = _check_count("vmap_width", vmap_width)
    if divergence_threshold is None:
        threshold = np.inf
    else:
        threshold = float(divergence_threshold)
        if math.isnan(threshold):
            raise ValueError("`divergence_threshold` must be a number, got NaN.")

    # Seeds: one key per seed, split into an init key and a data key.
    seeds_u32 = None if seeds_arr is None else seeds_arr.astype(np.uint32)
    if int_key is not None:  # the common case, cached: a dispatch less per call
        init_keys, data_keys = _int_seed_keys(
            int(int_key),
            None if seeds_u32 is None else tuple(seeds_u32.tolist()),
            (jax.config.jax_default_prng_impl, jax.config.jax_enable_x64),
        )
    else:
        init_keys, data_keys = _seed_keys(key, seeds_u32)
    if init_fn is not None:
        if params is not None:
            raise ValueError("Give `params` or `init_fn`, not both.")
        if not callable(init_fn):
            raise TypeError(f"`init_fn` must be a callable key -> params, got {init_fn!r}.")
        seed_params = jax.vmap(init_fn)(init_keys)
        check_params(jax.tree.map(lambda x: x[0], seed_params), "init_fn(key)")
    else:
        if params is None:
            raise ValueError("Give the initial `params`, or `init_fn` to draw them per seed.")
        check_params(params)
        seed_params = params
    one_params = jax.tree.map(lambda x: x[0], seed_params) if init_fn is not None else params
    if minibatch:
        data = jax.tree.map(jnp.asarray, data)
        order = _batch_orders(data_keys, n=n, batch_size=batch_size, epochs=epochs)
        first_batch = jax.tree.map(lambda x: x[:batch_size], data)
    else:
        order, first_batch = None, None

    members = _members(lrs, hps, combine, seeds_arr)
    m = members.lrs.size

    # Devices, width, chunk.
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty.")
    platform = devices[0].platform
    probe = _probe(loss_fn, has_aux, one_params, first_batch)
    if vmap_width is None:
        vmap_width = auto_vmap_width(probe.flops, platform, -(-m // len(devices)))
    n_dev = len(devices)
    unit = vmap_width * n_dev
    wanted = chunk_size if chunk_size is not None else min(m, DEFAULT_CHUNK_PER_DEVICE * n_dev)
    chunk = -(-max(wanted, 1) // unit) * unit
    n_chunks = -(-m // chunk)
    mesh = Mesh(np.array(devices), (_AXIS,)) if n_dev > 1 else None

    dtype = _float_dtype()
    param_index = members.seed_index if init_fn is not None else np.zeros_like(members.seed_index)

    # Placed once for all chunks; arrays already where they belong are not touched.
    place = (
        NamedSharding(mesh, PartitionSpec())
        if mesh is not None
        else jax.sharding.SingleDeviceSharding(devices[0])
    )
    seed_params, order, data = jax.tree.map(
        lambda x: (
            x if isinstance(x, jax.Array) and x.sharding == place else jax.device_put(x, place)
        ),
        (seed_params, order, data),
    )
    threshold_arr = _placed_scalar(threshold, np.dtype(probe.loss_dtype), place)

    bar = _progress_bar(progress, n_chunks * chunk * steps, "sweep")
    spec = _Spec(
        make_optimizer=make_optimizer,
        loss_fn=loss_fn,
        steps=steps,
        minibatch=minibatch,
        has_aux=bool(has_aux),
        width=vmap_width,
        block=min(PROGRESS_EVERY, steps) if bar is not None else steps,
        progress=bar is not None,
        mesh=mesh,
        per_seed_params=init_fn is not None,
    )

    config = {
        "learning_rates": lrs.tolist(),
        "hyperparams": {k: v.tolist() for k, v in hps.items()},
        "combine": combine,
        "seeds": None if seeds_arr is None else seeds_arr.tolist(),
        "key": np.asarray(
            jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        ).tolist(),
        "mode": "minibatch" if minibatch else "full_batch",
        "steps": steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "divergence_threshold": None if divergence_threshold is None else threshold,
        "chunk_size": chunk,
        "vmap_width": vmap_width,
        "devices": n_dev,
        "make_optimizer": _callable_id(make_optimizer),
        "loss_fn": _callable_id(loss_fn),
        "init_fn": None if init_fn is None else _callable_id(init_fn),
        "dtype": str(np.dtype(dtype)),
        "has_aux": bool(has_aux),
    }
    folder = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
    if folder is not None:
        config["params"] = _tree_fingerprint(seed_params)
        config["data"] = None if data is None else _tree_fingerprint(data)
        try:
            _check_checkpoint_dir(folder, config)
        except OSError as e:
            raise ValueError(f"`checkpoint_dir` {folder!r} is not a writable folder: {e}") from e

    def padded(x, lo):
        part = x[lo : lo + chunk]
        if part.shape[0] < chunk:
            part = np.concatenate([part, np.repeat(part[-1:], chunk - part.shape[0], axis=0)])
        return part

    outputs = []
    resumed = rerun = 0
    try:
        for i in range(n_chunks):
            path = None if folder is None else _chunk_path(folder, i)
            if path is not None and os.path.exists(path):
                arrays, _ = _load_npz(path, "jaxopt_lab.SweepChunk")
                outputs.append(_unpack_chunk(arrays, one_params))
                resumed += 1
                if bar is not None:
                    bar.update(chunk * steps)
                continue
            lo = i * chunk
            args = (
                padded(members.lrs, lo).astype(dtype),
                {k: padded(v, lo).astype(dtype) for k, v in members.hps.items()},
                padded(members.seed_index, lo).astype(np.int32),
                padded(param_index, lo).astype(np.int32),
            )
            if bar is not None:
                _progress_bars.append(bar)
            try:
                consts = (seed_params, order, data, threshold_arr)
                out = jax.tree.map(
                    np.asarray, _run_chunk(*args, *consts, spec=spec._replace(checked=False))
                )
                if not _clean(out, threshold):
                    out = jax.tree.map(np.asarray, _run_chunk(*args, *consts, spec=spec))
                    rerun += 1
            finally:
                if bar is not None:
                    _progress_bars.remove(bar)
                    bar.n = (i + 1) * chunk * steps
                    bar.refresh()
            outputs.append(out)
            if path is not None:
                packed = _pack_chunk(out)
                meta = {"format": "jaxopt_lab.SweepChunk", "index": i,
                        "checksums": {k: _digest(v) for k, v in packed.items()}}  # fmt: skip
                _atomic_savez(path, packed, meta)
    finally:
        if bar is not None:
            bar.close()

    shape = tuple(len(v) for v in members.axes.values())

    def assemble(parts):
        whole = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return whole[:m].reshape(shape + parts[0].shape[1:])

    params_out = jax.tree.map(lambda *xs: assemble(xs), *[o[0] for o in outputs])
    losses, norms, dead_at = (assemble([o[j] for o in outputs]) for j in range(1, 4))
    dead = dead_at >= 0
    if dead.any():
        after = np.arange(steps) > np.where(dead, dead_at, steps)[..., None]
        losses, norms = np.where(after, np.nan, losses), np.where(after, np.nan, norms)
    hyper = {
        "learning_rate": members.lrs.reshape(shape),
        **{k: v.reshape(shape) for k, v in members.hps.items()},
    }
    if seeds_arr is not None:
        hyper["seed"] = seeds_arr[members.seed_index].reshape(shape)
    config.update(
        {
            "chunks": n_chunks,
            "chunks_resumed": resumed,
            "chunks_rerun_checked": rerun,
            "platform": platform,
            "wall_s": time.perf_counter() - t_start,
        }
    )
    return SweepResult(
        axes=members.axes,
        losses=losses,
        grad_norms=norms,
        diverged=dead,
        diverged_at=dead_at.astype(np.int64),
        params=params_out,
        hyperparams=hyper,
        config=config,
    )


def _clean(out, threshold: float) -> bool:
    """Whether no member of a fast-path chunk diverged: every loss finite and within the
    threshold, every gradient norm finite, every final param finite. Updates are added
    to the params, so a param that turned non-finite at any step is still non-finite at
    the end; hence this holds exactly when the step-by-step check would never fire."""
    params, losses, norms, _ = out

    def bounded(x: np.ndarray, hi: float = np.inf) -> bool:
        # min and max propagate NaN, and are the cheapest full passes numpy has
        if x.size == 0:
            return True
        top = x.max()
        return bool(np.isfinite(x.min()) and np.isfinite(top) and top <= hi)

    return (
        bounded(losses, threshold)
        and bounded(norms)
        and all(bounded(x) for x in jax.tree.leaves(params))
    )


def _pack_chunk(out) -> dict[str, np.ndarray]:
    params, losses, norms, dead_at = out
    leaves = jax.tree.leaves(params)
    return {"losses": losses, "grad_norms": norms, "diverged_at": dead_at,
            **{f"params/{i}": x for i, x in enumerate(leaves)}}  # fmt: skip


def _unpack_chunk(arrays: dict[str, np.ndarray], params_like: Any):
    treedef = jax.tree.structure(params_like)
    leaves = [arrays[f"params/{i}"] for i in range(treedef.num_leaves)]
    return (
        jax.tree.unflatten(treedef, leaves),
        arrays["losses"],
        arrays["grad_norms"],
        arrays["diverged_at"],
    )


__all__ = ["GridEdgeWarning", "SweepResult", "auto_vmap_width", "sweep"]
