r"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural
Networks", WACV 2017; the "LR range test"), vmapped over seeds in one compiled program.

One run per seed trains from the start with a learning rate that grows exponentially,
:math:`\eta_t = \eta_{\min} (\eta_{\max} / \eta_{\min})^{t / (T - 1)}`, over :math:`T`
steps, and records the loss before each step. The loss first falls faster as the rate
grows, then levels off, then blows up once the rate passes what the problem tolerates.

What :func:`lr_find` reports, per seed, from the loss curve smoothed by a bias-corrected
exponential moving average (weight ``smoothing`` on the past):

* the *blow-up*: the first step whose smoothed loss is not finite or exceeds 4x the
  lowest smoothed loss so far (where the run stopped being useful);
* the *suggestion*: a tenth of the learning rate at the lowest loss before the blow-up,
  on the curve smoothed forward and backward (no lag). The loss is lowest just below the rate at which training turns unstable
  (for SGD on a quadratic with largest curvature :math:`L`, :math:`2/L`), and a tenth of
  it leaves the margin a whole training run needs (the rule of thumb of the range test's
  users: an order of magnitude below the minimum).

The suggested learning rate is the median over seeds, with the seeds' range as its
spread.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import _iterate as core
from jaxopt_lab.checks import check_callable, check_count, check_key, check_params, check_real
from jaxopt_lab.errors import InputValueError
from jaxopt_lab.loops import data_size, epoch_batches
from jaxopt_lab.schedules import exponential_decay

BLOWUP_FACTOR = 4.0  # a smoothed loss this many times the lowest so far: blown up
SUGGESTION_FRACTION = 0.1  # the suggestion: this fraction of the rate at the lowest loss


class LRFindResult(NamedTuple):
    """What :func:`lr_find` returns (numpy arrays; ``S`` seeds, ``T`` steps).

    Attributes:
      learning_rates: ``(T,)`` the learning rate of each step.
      losses: ``(S, T)`` the loss before each step (the mini-batch loss with ``data``).
      smoothed: ``(S, T)`` the bias-corrected moving average of ``losses``.
      suggestion: the suggested learning rate (median over seeds).
      suggestions: ``(S,)`` each seed's suggestion.
      spread: ``(lowest, highest)`` suggestion over the seeds.
      blowup_step: ``(S,)`` the step where each seed's loss blew up, -1 where it did not.
      blowup_lr: ``(S,)`` the learning rate there (NaN where it did not blow up).
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    suggestions: np.ndarray
    spread: tuple[float, float]
    blowup_step: np.ndarray
    blowup_lr: np.ndarray


def _ema(curve: np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average along the last axis (NaN and inf
    propagate, so a blow-up stays visible)."""
    out = np.empty(curve.shape)
    avg = np.zeros(curve.shape[:-1])
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 after a blow-up: NaN
        for t in range(curve.shape[-1]):
            avg = beta * avg + (1 - beta) * curve[..., t]
            out[..., t] = avg / (1 - beta ** (t + 1))
    return out


def _blowup(smoothed: np.ndarray) -> int:
    """The first step whose smoothed loss is not finite or more than 4x the lowest so
    far (measured from the lowest, so that negative losses work too); -1 if none."""
    low = np.minimum.accumulate(np.where(np.isfinite(smoothed), smoothed, np.inf))
    bad = ~np.isfinite(smoothed) | (smoothed > low + (BLOWUP_FACTOR - 1) * np.abs(low))
    return int(np.argmax(bad)) if bad.any() else -1


def _analyse(lrs: np.ndarray, losses: np.ndarray, beta: float):
    """Per seed: the smoothed curve, the blow-up step and the suggested learning rate.

    The blow-up is found on the causal moving average. The suggestion is read from the
    curve before it, smoothed forward and then backward: a causal average lags by about
    ``1 / (1 - beta)`` steps, a large factor of learning rate on a ramp, which would put
    the lowest loss past the point where training turns unstable."""
    smoothed = _ema(np.asarray(losses, np.float64), beta)
    blowups, suggestions = [], []
    for raw, curve in zip(losses, smoothed, strict=True):
        stop = _blowup(curve)
        end = stop if stop > 0 else curve.size
        before = np.asarray(raw[:end], np.float64)
        centred = _ema(_ema(before, beta)[::-1], beta)[::-1]
        best = int(np.nanargmin(centred)) if np.isfinite(centred).any() else 0
        blowups.append(stop)
        suggestions.append(SUGGESTION_FRACTION * lrs[best])
    return smoothed, np.asarray(blowups), np.asarray(suggestions)


@functools.partial(
    jax.jit, static_argnames=("make_optimizer", "loss_fn", "steps", "batch_size", "has_aux")
)
def _ramps(params, keys, data, lr_min, lr_max, *, make_optimizer, loss_fn, steps, batch_size,
           has_aux):  # fmt: skip
    schedule = exponential_decay(lr_min, steps - 1 if steps > 1 else 1, lr_max / lr_min)
    optimizer = make_optimizer(schedule)

    def one(p0, key):
        state = optimizer.init(p0)
        batch_of = None
        xs = None
        if data is not None:
            n = jax.tree.leaves(data)[0].shape[0]
            per_epoch = n // batch_size
            epochs = -(-steps // per_epoch)
            order = jax.vmap(lambda e: epoch_batches(key, e, n, batch_size))(jnp.arange(epochs))
            xs = order.reshape(-1, batch_size)[:steps]

            def batch_of(idx):
                return jax.tree.map(lambda x: x[idx], data)

        step = core.stepper(optimizer, loss_fn, has_aux, state, batch_of)
        first = () if data is None else (batch_of(xs[0]),)
        carry = core.start(step, loss_fn, has_aux, p0, state, first)
        _, (losses, _) = core.run_fixed(step, carry, xs, length=None if data is not None else steps)
        return losses

    return jax.vmap(one)(params, keys)


def default_smoothing(steps: int) -> float:
    """``1 - 20 / steps`` (at least 0): a moving average over a twentieth of the ramp."""
    return max(0.0, 1.0 - 20.0 / steps)


def lr_find(
    make_optimizer: Callable[..., Any],
    loss_fn: Callable[..., Any],
    params: Any,
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    steps: int = 100,
    *,
    seeds: int = 1,
    init_fn: Callable[[jax.Array], Any] | None = None,
    key: Any = 0,
    data: Any = None,
    batch_size: int | None = None,
    smoothing: float | None = None,
    has_aux: bool = False,
) -> LRFindResult:
    """Run the learning-rate range test (see the module docstring) with ``seeds``
    runs vmapped in one compiled program, and suggest a learning rate.

    Args:
      make_optimizer: ``learning_rate -> optimizer``; it is given a schedule (the ramp),
        so ``jol.adam`` or ``optax.adam`` work as they are.
      loss_fn: ``params -> scalar``, or ``(params, batch) -> scalar`` with ``data``.
      params: the start (shared by the seeds); None with ``init_fn``.
      lr_min, lr_max: the ramp's first and last learning rates (``0 < lr_min < lr_max``).
      steps: the number of steps (and of learning rates tried).
      seeds: how many runs; seed ``s`` uses ``fold_in(key, s)`` to draw its params
        (``init_fn``) and its mini-batch order.
      data, batch_size: mini-batches, shuffled every epoch as in :func:`jaxopt_lab.fit`.
      smoothing: the moving average's weight on the past (0 = no smoothing); it spans
        about ``1 / (1 - smoothing)`` steps. Default ``1 - 20 / steps`` (0 below 20
        steps): a twentieth of the ramp, so that it follows the curve instead of
        lagging it by decades of learning rate (0.98 over 200 steps lags so far that a
        saturating loss never reaches the blow-up test).

    Example:
      Mini-batch SGD on a linear regression, two seeds, the learning rate ramped from
      1e-4 to 10 over 100 steps:

      >>> import jaxopt_lab as jol
      >>> from jaxopt_lab import problems
      >>> p = problems.linear_regression()
      >>> found = jol.lr_find(jol.sgd, p.loss, None, lr_min=1e-4, lr_max=10.0, steps=100,
      ...                     seeds=2, init_fn=p.init_params, data=p.train, batch_size=8)
      >>> found.losses.shape, found.blowup_lr.shape
      ((2, 100), (2,))
      >>> bool(1e-3 < found.suggestion < found.blowup_lr.min())
      True
    """
    check_callable("make_optimizer", make_optimizer)
    check_callable("loss_fn", loss_fn)
    steps = check_count("steps", steps, low=2)
    seeds = check_count("seeds", seeds)
    lr_min, lr_max = check_real("lr_min", lr_min), check_real("lr_max", lr_max)
    if not 0 < lr_min < lr_max:
        raise InputValueError(f"`lr_min` must be > 0 and < `lr_max`, got {lr_min} and {lr_max}.")
    smoothing = (
        default_smoothing(steps) if smoothing is None else check_real("smoothing", smoothing)
    )
    if not 0 <= smoothing < 1:
        raise InputValueError(f"`smoothing` must be in [0, 1), got {smoothing}.")
    base_key = check_key(key)
    keys = jax.vmap(lambda s: jax.random.fold_in(base_key, s))(jnp.arange(seeds))
    if init_fn is not None:
        check_callable("init_fn", init_fn)
        start = jax.vmap(init_fn)(keys)
    elif params is None:
        raise InputValueError("Give the start `params`, or `init_fn` to draw it per seed.")
    else:
        check_params(params)
        start = jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds, *jnp.shape(x))), params)
    if data is not None:
        if batch_size is None:
            raise InputValueError("`data` needs `batch_size`.")
        batch_size = check_count("batch_size", batch_size)
        if batch_size > data_size(data):
            raise InputValueError(
                f"`batch_size` must be <= the number of examples, got {batch_size}."
            )
    elif batch_size is not None:
        raise InputValueError("`batch_size` needs `data`.")
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    losses = _ramps(start, keys, data, np.asarray(lr_min, dtype), np.asarray(lr_max, dtype),
                    make_optimizer=make_optimizer, loss_fn=loss_fn, steps=steps,
                    batch_size=batch_size, has_aux=bool(has_aux))  # fmt: skip
    losses = np.asarray(losses)
    lrs = lr_min * (lr_max / lr_min) ** (np.arange(steps) / (steps - 1))
    smoothed, blowup, suggestions = _analyse(lrs, losses, smoothing)
    return LRFindResult(
        learning_rates=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=float(np.median(suggestions)),
        suggestions=suggestions,
        spread=(float(suggestions.min()), float(suggestions.max())),
        blowup_step=blowup,
        blowup_lr=np.where(blowup >= 0, lrs[np.maximum(blowup, 0)], np.nan),
    )


__all__ = ["LRFindResult", "lr_find"]
