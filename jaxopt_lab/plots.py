"""Matplotlib figures for sweeps, loss curves and optimization paths.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``, no
global figure state, no display needed: safe on a headless machine and in a notebook),
returns it, and saves it as a PNG when given ``path``. The figures show themselves in
Jupyter as PNGs (a subclass with ``_repr_png_``: without ``pyplot`` imported, IPython
knows no display for a plain Figure and prints its text).

* :func:`lr_sensitivity`: final loss against learning rate on a log axis, the band over
  seeds, diverged members as red crosses, the best learning rate marked.
  With evaluations (``sweep(..., eval_fn=)``), a second panel: the best evaluation per
  learning rate, on which the best one was chosen.
* :func:`loss_curves`: loss histories on a log scale: the best members of a sweep, or
  any ``label -> curve`` mapping (one optimizer per curve, say).
* :func:`eval_curves`: a sweep's evaluation histories (validation curves) of its best
  configurations.
* :func:`lr_find`: the learning-rate range test's loss curves, its suggestion with the
  seeds' band, and where the loss blew up.
* :func:`contour_trajectories`: a 2-D function's contours with optimizers' paths on them.
* :func:`learning_rate_effect`: a 1-D function with the gradient-descent iterates of
  several learning rates, one panel each: too small, about right, oscillating, diverging.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any, Callable, Mapping, Sequence

import matplotlib.figure
import numpy as np

from jaxopt_lab.errors import InputTypeError, InputValueError


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that Jupyter displays as a PNG."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


_DIVERGED_COLOR = "tab:red"


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def _log_scale_if_positive(ax: Any, values: np.ndarray, axis: str = "y") -> None:
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _config_matrix(result: Any, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``values`` (the sweep's member shape) as ``(K, C, S)``: learning rate, every other
    hyperparameter combination, seed; with a label per combination."""
    names = [n for n in result.axes if n not in ("learning_rate", "seed")]
    k = len(result.axes["learning_rate"])
    s = len(result.axes["seed"]) if "seed" in result.axes else 1
    matrix = values.reshape(k, -1, s)
    labels = []
    for idx in np.ndindex(*[len(result.axes[n]) for n in names]):
        labels.append(
            ", ".join(f"{n}={result.axes[n][i]:.3g}" for n, i in zip(names, idx, strict=True))
        )
    return matrix, labels or [""]


def _mean_and_band(
    ax: Any, lrs: np.ndarray, kept: np.ndarray, labels: list[str], what: str
) -> None:
    """One line per configuration of ``kept`` (``(K, C, S)``, NaN where left out): the
    mean over seeds, and the band from the lowest to the highest seed when there are
    several."""
    for c, label in enumerate(labels):
        column = kept[:, c, :]
        all_nan = np.isnan(column).all(axis=1)
        safe = np.where(all_nan[:, None], 0.0, column)
        mean = np.where(all_nan, np.nan, np.nanmean(safe, axis=1))
        default = what + (" (mean and range over seeds)" if column.shape[1] > 1 else "")
        (line,) = ax.plot(lrs, mean, marker=".", label=label or default)
        if column.shape[1] > 1:
            low = np.where(all_nan, np.nan, np.nanmin(safe, axis=1))
            high = np.where(all_nan, np.nan, np.nanmax(safe, axis=1))
            ax.fill_between(lrs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def _mark_best(ax: Any, lrs: np.ndarray, kept: np.ndarray, k: int, c: int) -> None:
    ax.axvline(lrs[k], color="0.4", linestyle="--", linewidth=1)
    ax.plot([lrs[k]], [np.nanmean(kept[k, c])], "*", color="gold", markeredgecolor="k", markersize=15,
            label=f"best lr {lrs[k]:.3g}", zorder=5)  # fmt: skip


def _mark_pruned(ax: Any, lrs: np.ndarray, kept: np.ndarray, pruned: np.ndarray) -> None:
    """Hollow grey rings on the configurations successive halving stopped early: their
    value is the one they reached at their rung, not after every step."""
    rows, cols = np.nonzero(pruned.any(axis=2))
    if rows.size:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            values = np.nanmean(kept[rows, cols], axis=-1)
        ax.plot(lrs[rows], values, "o", markersize=8, markerfacecolor="none", color="0.45",
                label=f"pruned at a rung ({rows.size})", zorder=4)  # fmt: skip


def _eval_axis_label(result: Any, label: str | None) -> str:
    better = "higher" if result.config.get("eval_mode") == "max" else "lower"
    return f"{label or 'best evaluation'} ({better} is better)"


def lr_sensitivity(
    result: Any,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    eval_label: str | None = None,
) -> Figure:
    """Final loss against learning rate (log axis) for a :class:`jaxopt_lab.SweepResult`.

    One line per combination of the other hyperparameters: the mean over seeds, with
    the band from the lowest to the highest seed when there are several. Diverged
    members are red crosses along the top edge; configurations stopped by successive
    halving are ringed (their value is the one at their rung); the best learning rate
    (``best_index``) is a dashed line and a star. When the sweep evaluated (``result.evals``), a second
    panel below shows each configuration's best evaluation (``best_evals``, mean and
    range over seeds; diverged members left out), on which the best learning rate was
    chosen; ``eval_label`` names it on the axis (default "best evaluation"). Without
    evaluations the best is the lowest mean final loss among configurations that never
    diverged (mini-batch: the mean loss over the last epoch).
    """
    lrs = np.asarray(result.learning_rates, float)
    final, labels = _config_matrix(result, np.asarray(result.final_losses, float))
    diverged, _ = _config_matrix(result, np.asarray(result.diverged, bool))
    evals = getattr(result, "evals", None)
    fig = Figure(figsize=(7.5, 4.8 if evals is None else 7.8))
    axes = fig.subplots(1 if evals is None else 2, 1, squeeze=False, sharex=True)[:, 0]
    ax = axes[0]
    with np.errstate(all="ignore"):
        kept = np.where(diverged, np.nan, final)
    _mean_and_band(ax, lrs, kept, labels, "final loss")
    rows, _, _ = np.nonzero(diverged)
    if rows.size:
        # crosses on the top edge, in axes coordinates: a diverged loss has no value to plot
        ax.plot(lrs[rows], np.full(rows.size, 0.97), "x", color=_DIVERGED_COLOR, markersize=8,
                transform=ax.get_xaxis_transform(), label=f"diverged ({rows.size})", clip_on=False)  # fmt: skip
    ax.set_xscale("log")
    _log_scale_if_positive(ax, kept)
    at = np.broadcast_to(np.asarray(getattr(result, "pruned_at", -1)), np.shape(result.diverged))
    pruned, _ = _config_matrix(result, at >= 0)
    _mark_pruned(ax, lrs, kept, pruned)
    if evals is not None:
        best_evals, _ = _config_matrix(result, np.asarray(result.best_evals, float))
        kept_evals = np.where(diverged, np.nan, best_evals)
        _mean_and_band(axes[1], lrs, kept_evals, labels, eval_label or "best evaluation")
        _mark_pruned(axes[1], lrs, kept_evals, pruned)
        if result.config.get("eval_mode") != "max":  # a validation loss: log when positive
            _log_scale_if_positive(axes[1], kept_evals)
        axes[1].set_ylabel(_eval_axis_label(result, eval_label))
    try:
        best = result.best
    except ValueError:  # every member diverged
        best = None
    if best is not None:
        k, *others = result.best_index
        sizes = [len(result.axes[n]) for n in result.axes if n not in ("learning_rate", "seed")]
        c = int(np.ravel_multi_index(others, sizes)) if sizes else 0
        _mark_best(ax, lrs, kept, k, c)
        if evals is not None:
            _mark_best(axes[1], lrs, kept_evals, k, c)
    axes[-1].set_xlabel("learning rate")
    ax.set_ylabel(f"loss after {result.losses.shape[-1]} steps")
    ax.set_title(title or "Learning-rate sensitivity")
    for a in axes:
        a.grid(True, which="major", alpha=0.3)
        a.legend(fontsize=8)
    return _finish(fig, path)


def _config_label(result: Any, idx: tuple[int, ...]) -> str:
    """``lr=0.01, b1=0.9``: a configuration (every axis but ``seed``) by its values."""
    names = [n for n in result.axes if n != "seed"]
    return ", ".join(
        f"{'lr' if n == 'learning_rate' else n}={result.axes[n][i]:.3g}"
        for n, i in zip(names, idx, strict=True)
    )


def _curve_label(result: Any, idx: tuple[int, ...]) -> str:
    """A configuration's label, with the rung where successive halving stopped it."""
    label = _config_label(result, idx)
    at = np.asarray(getattr(result, "pruned_at", -1))
    at = at[idx].max() if at.ndim else at
    return label if at < 0 else f"{label} (pruned at {int(at)})"


def _top_curves(result: Any, top: int) -> dict[str, np.ndarray]:
    """The ``top`` configurations by final loss (mean over seeds, never diverged), each
    as its mean loss curve over seeds."""
    curves = {}
    for idx in result.ranking()[:top]:
        losses = result.losses[idx]
        curves[_curve_label(result, idx)] = losses.mean(axis=0) if "seed" in result.axes else losses
    return curves


def _mark_stop(ax: Any, steps: np.ndarray, curve: np.ndarray) -> None:
    """An ``x`` where a curve stops early (NaN after it: a member pruned at a rung)."""
    finite = np.flatnonzero(np.isfinite(curve))
    if finite.size and finite[-1] < curve.size - 1 and np.isnan(curve[finite[-1] + 1 :]).all():
        ax.plot(steps[finite[-1]], curve[finite[-1]], "x", color="0.3", markersize=7)


def loss_curves(
    curves: Any,
    *,
    top: int = 5,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    xlabel: str = "step",
    smooth: int | None = None,
) -> Figure:
    """Loss histories on a log scale (linear when a loss is not positive).

    ``curves`` is a :class:`jaxopt_lab.SweepResult`, whose ``top`` best configurations
    are drawn (mean over seeds), or a mapping ``label -> (steps,) losses``; every second
    curve is dashed, so curves that coincide both show. A curve that stops early (a
    configuration pruned by successive halving: NaN after its rung) ends in an ``x``. ``smooth``: a
    window of steps to average over (mini-batch losses are noisy; one epoch is a good
    window), drawn over the raw curve, which stays faint.
    """
    if hasattr(curves, "axes") and hasattr(curves, "losses"):
        curves = _top_curves(curves, top)
        title = title or f"Loss curves of the {len(curves)} best learning rates"
    elif not hasattr(curves, "items"):
        raise InputTypeError(
            f"`curves` must be a SweepResult or a mapping label -> losses, got {type(curves).__name__}."
        )
    if smooth is not None and (not isinstance(smooth, int) or smooth < 1):
        raise InputValueError(f"`smooth` must be a positive number of steps, got {smooth!r}.")
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    everything = []
    for i, (label, curve) in enumerate(curves.items()):
        curve = np.asarray(curve, float)
        everything.append(curve)
        style = ("-", "--")[i % 2]  # curves that coincide stay visible
        if smooth and smooth > 1 and curve.size >= smooth:
            (raw,) = ax.plot(np.arange(curve.size), curve, linewidth=0.6, alpha=0.25)
            mean = np.convolve(curve, np.ones(smooth) / smooth, mode="valid")
            ax.plot(
                np.arange(smooth - 1, curve.size),
                mean,
                style,
                color=raw.get_color(),
                label=label,
                linewidth=1.6,
            )
            _mark_stop(ax, np.arange(smooth - 1, curve.size), mean)  # on the bold line
        else:
            ax.plot(np.arange(curve.size), curve, style, label=label, linewidth=1.4)
            _mark_stop(ax, np.arange(curve.size), curve)
    if everything:
        _log_scale_if_positive(ax, np.concatenate(everything))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss" if not smooth or smooth <= 1 else f"loss (bold: mean over {smooth} steps)")
    ax.set_title(title or "Loss curves")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def eval_curves(
    result: Any,
    *,
    top: int = 5,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """Evaluation histories of a :class:`jaxopt_lab.SweepResult` that evaluated
    (``eval_fn``): ``result.evals`` against ``result.eval_steps`` for the ``top`` best
    configurations (``result.ranking()``, which uses the best evaluation), the mean over
    seeds with the seeds' range as a band, each curve's best evaluation circled.
    ``ylabel`` names the evaluation (default "evaluation")."""
    if not (hasattr(result, "evals") and hasattr(result, "ranking")):
        raise InputTypeError(f"`result` must be a SweepResult, got {type(result).__name__}.")
    if result.evals is None:
        raise InputValueError(
            "`result` has no evaluations: run the sweep with eval_fn= (and eval_every=) "
            "to draw its validation curves."
        )
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InputValueError(f"`top` must be a positive number of curves, got {top!r}.")
    steps = np.asarray(result.eval_steps)
    pick = np.nanargmax if result.config.get("eval_mode") == "max" else np.nanargmin
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    ranking = result.ranking()[:top]
    for i, idx in enumerate(ranking):
        evals = np.asarray(result.evals[idx], float).reshape(-1, steps.size)  # (seeds, E)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN step: no value
            mean = np.nanmean(evals, axis=0)
            low, high = np.nanmin(evals, axis=0), np.nanmax(evals, axis=0)
        style = ("-", "--")[i % 2]  # curves that coincide stay visible
        (line,) = ax.plot(steps, mean, style, marker=".", label=_curve_label(result, idx))
        if evals.shape[0] > 1:
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        if np.isfinite(mean).any():
            j = int(pick(mean))
            ax.plot(steps[j], mean[j], "o", markersize=9, markerfacecolor="none",
                    color=line.get_color())  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel(_eval_axis_label(result, ylabel or "evaluation"))
    ax.set_title(title or f"Evaluations of the {len(ranking)} best configurations")
    ax.grid(True, alpha=0.3)
    if ranking:  # every member diverged: nothing to name
        ax.legend(fontsize=8)
    return _finish(fig, path)


_LR_FIND_FIELDS = ("learning_rates", "losses", "smoothed", "suggestion", "spread", "blowup_lr",
                   "blowup_step")  # fmt: skip


def _lr_find_frame(ax: Any, losses: np.ndarray, stops: np.ndarray) -> None:
    """Frame (and pick the y scale for) the losses before each seed's blow-up: after it
    they grow without bound (or collapse to 0 on a saturated classifier) and would
    squash the part of the curve that matters."""
    before = [
        row[: stop if stop > 0 else row.size] for row, stop in zip(losses, stops, strict=True)
    ]
    seen = np.concatenate(before) if before else np.zeros(0)
    seen = seen[np.isfinite(seen)]
    _log_scale_if_positive(ax, seen)
    if not seen.size or seen.min() == seen.max():
        return
    if ax.get_yscale() == "log":
        ax.set_ylim(seen.min() / 1.3, seen.max() * 1.3)
    else:
        pad = 0.05 * (seen.max() - seen.min())
        ax.set_ylim(seen.min() - pad, seen.max() + pad)


def lr_find(
    result: Any, *, path: str | os.PathLike | None = None, title: str | None = None
) -> Figure:
    """The learning-rate range test (:func:`jaxopt_lab.lr_find`'s result) as loss
    against learning rate (log axis): each seed's raw loss (faint) and smoothed loss,
    the suggested learning rate as a black line with the grey band of the seeds'
    suggestions (``spread``), and each seed's blow-up as a red cross on the top edge.
    The view is framed on the losses before the blow-ups."""
    if not all(hasattr(result, f) for f in _LR_FIND_FIELDS):
        raise InputTypeError(
            f"`result` must be an LRFindResult (jol.lr_find), got {type(result).__name__}."
        )
    lrs = np.asarray(result.learning_rates, float)
    losses = np.asarray(result.losses, float).reshape(-1, lrs.size)
    smoothed = np.asarray(result.smoothed, float).reshape(-1, lrs.size)
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    many = losses.shape[0] > 1
    for s, (raw, smooth) in enumerate(zip(losses, smoothed, strict=True)):
        (line,) = ax.plot(lrs, raw, linewidth=0.6, alpha=0.3,
                          label=None if s else "loss" + (" (each seed)" if many else ""))  # fmt: skip
        ax.plot(lrs, smooth, color=line.get_color(), linewidth=1.6,
                label=None if s else "smoothed" + (" (each seed)" if many else ""))  # fmt: skip
    low, high = result.spread
    if many and high > low:
        ax.axvspan(low, high, color="0.5", alpha=0.2, label=f"suggestions {low:.3g} to {high:.3g}")
    ax.axvline(result.suggestion, color="k", linewidth=1.5,
               label=f"suggestion {result.suggestion:.3g}")  # fmt: skip
    blown = np.asarray(result.blowup_lr, float).ravel()
    blown = blown[np.isfinite(blown)]
    if blown.size:  # on the top edge: the loss there may be inf or far off the frame
        ax.plot(blown, np.full(blown.size, 0.97), "x", color=_DIVERGED_COLOR, markersize=9,
                transform=ax.get_xaxis_transform(), clip_on=False, label=f"blow-up ({blown.size})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(lrs[0], lrs[-1])  # the whole ramp, also where a blown-up loss is not finite
    _lr_find_frame(ax, losses, np.asarray(result.blowup_step).ravel())
    ax.set_xlabel("learning rate (one step each, growing exponentially)")
    ax.set_ylabel("training loss")
    ax.set_title(title or "Learning-rate range test")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def _evaluate_on_grid(fn: Callable[[Any], Any], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    points = jnp.stack(jnp.meshgrid(jnp.asarray(xs), jnp.asarray(ys)), axis=-1).reshape(-1, 2)
    return np.asarray(jax.jit(jax.vmap(fn))(points)).reshape(ys.size, xs.size)


def contour_trajectories(
    fn: Callable[[Any], Any],
    paths: Mapping[str, Any],
    *,
    bounds: Sequence[float] | None = None,
    minimizers: Any = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    resolution: int = 300,
) -> Figure:
    """The contours of a 2-D function ``fn(x) -> scalar`` (``x`` of shape ``(2,)``) with
    each optimizer's path, ``label -> (T, 2)`` iterates, drawn on them; ``minimizers``
    (``(m, 2)``) as stars. ``bounds = (xmin, xmax, ymin, ymax)`` defaults to the box
    around the paths and minimizers, plus a margin. Levels are log-spaced above the
    minimum seen, which shows both the steep walls and the flat valley floor."""
    paths = {k: np.asarray(v, float) for k, v in paths.items()}
    for label, p in paths.items():
        if p.ndim != 2 or p.shape[1] != 2 or not len(p):
            raise InputValueError(
                f"`paths[{label!r}]` must be a (T, 2) array of iterates, got shape {p.shape}."
            )
    mins = np.zeros((0, 2)) if minimizers is None else np.asarray(minimizers, float).reshape(-1, 2)
    if bounds is None:
        pts = np.concatenate([*paths.values(), mins]) if paths or mins.size else np.zeros((1, 2))
        pts = pts[np.isfinite(pts).all(axis=1)]
        if not pts.size:  # nothing finite to frame: the unit box around the origin
            pts = np.array([[-1.0, -1.0], [1.0, 1.0]])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.15 * np.maximum(hi - lo, 1.0)
        bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    xs = np.linspace(bounds[0], bounds[1], resolution)
    ys = np.linspace(bounds[2], bounds[3], resolution)
    z = _evaluate_on_grid(fn, xs, ys)
    fig = Figure(figsize=(7.5, 6))
    ax = fig.add_subplot()
    shifted = z - np.nanmin(z)
    top = np.nanmax(shifted)
    if top > 0:
        floor = max(top * 1e-6, np.nanpercentile(shifted[shifted > 0], 0.5))
        levels = np.geomspace(floor, top, 30)
        ax.contour(xs, ys, shifted, levels=levels, cmap="viridis", linewidths=0.7)
    for label, p in paths.items():
        shown = p[np.isfinite(p).all(axis=1)]
        if not shown.size:  # a path that diverged at once has nothing to draw
            continue
        (line,) = ax.plot(
            shown[:, 0], shown[:, 1], ".-", markersize=2.5, linewidth=1.2, label=label
        )
        ax.plot(shown[0, 0], shown[0, 1], "o", color=line.get_color(), markersize=6)
        ax.plot(
            shown[-1, 0],
            shown[-1, 1],
            "s",
            color=line.get_color(),
            markersize=6,
            markeredgecolor="k",
        )
    if mins.size:
        ax.plot(
            mins[:, 0],
            mins[:, 1],
            "*",
            color="gold",
            markeredgecolor="k",
            markersize=15,
            label="minimizer",
        )
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title or "Optimizer paths (circle: start, square: end)")
    ax.legend(fontsize=8, loc="best")
    return _finish(fig, path)


def learning_rate_effect(
    fn: Callable[[Any], Any],
    x0: float,
    learning_rates: Sequence[float],
    steps: int = 10,
    *,
    bounds: Sequence[float] | None = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Figure:
    """Gradient descent :math:`x_{t+1} = x_t - \\eta f'(x_t)` on a 1-D function from
    ``x0``, one panel per learning rate :math:`\\eta`: the curve :math:`f(x)` with the
    iterates on it, joined in order and coloured from the start (light) to the end (dark).
    ``fn`` takes a ``(1,)`` array (as the 1-D :mod:`jaxopt_lab.problems` do) or a scalar.
    """
    import jax
    import jax.numpy as jnp

    from jaxopt_lab.loops import trajectory
    from jaxopt_lab.optimizers import sgd

    def f1(x):
        x = jnp.reshape(x, (1,))
        try:
            return jnp.reshape(fn(x), ())
        except (TypeError, ValueError):
            return jnp.reshape(fn(x[0]), ())

    if not len(learning_rates):
        raise InputValueError(
            "`learning_rates` must hold at least one learning rate (one panel each)."
        )
    start = jnp.asarray([x0], jnp.float32)
    runs = [np.asarray(trajectory(f1, start, sgd(lr), steps))[:, 0] for lr in learning_rates]
    if bounds is None:  # the box the tame runs explore; a diverging run leaves it
        reach = 10.0 * (abs(x0) + 1.0)
        tame = [r for r in runs if np.isfinite(r).all() and np.abs(r - x0).max() <= reach]
        seen = np.concatenate([*tame, [x0 - 1.0, x0 + 1.0]])
        lo, hi = seen.min(), seen.max()
        pad = 0.1 * (hi - lo)
        bounds = (lo - pad, hi + pad)
    xs = np.linspace(bounds[0], bounds[1], 400)
    ys = np.asarray(jax.vmap(f1)(jnp.asarray(xs, jnp.float32)))
    fig = Figure(figsize=(3.4 * len(runs), 3.6))
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, lr, xs_path in zip(axes, learning_rates, runs, strict=True):
        ax.plot(xs, ys, color="0.3", linewidth=1.2)
        inside = np.isfinite(xs_path) & (xs_path >= bounds[0]) & (xs_path <= bounds[1])
        shown = xs_path[inside]
        fs = np.asarray(jax.vmap(f1)(jnp.asarray(shown, jnp.float32))) if shown.size else shown
        ax.plot(shown, fs, "-", color="tab:blue", linewidth=0.8, alpha=0.6)
        ax.scatter(
            shown,
            fs,
            c=np.arange(shown.size),
            cmap="Blues",
            vmin=-3,
            edgecolors="k",
            linewidths=0.4,
            zorder=3,
        )
        left = "" if inside.all() else f"; {int((~inside).sum())} iterates off the plot"
        ax.set_title(f"lr = {lr:g}{left}", fontsize=9)
        ax.set_xlim(bounds[0], bounds[1])
        ax.set_xlabel("x")
    axes[0].set_ylabel("f(x)")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


__all__ = [
    "contour_trajectories",
    "eval_curves",
    "learning_rate_effect",
    "loss_curves",
    "lr_find",
    "lr_sensitivity",
]
