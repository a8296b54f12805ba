r"""Learning-rate schedules ``step -> value``, as pytrees.

Each schedule is a :class:`~jaxopt_lab.base.HyperFunction`: its values (``init_value``,
``end_value``, ``alpha``, scales...) are leaves, so a jitted function that takes an
optimizer built with a schedule is not recompiled when only those values change, and
schedules can be stacked and vmapped. Step counts (``transition_steps``, boundaries) are
structure: they fix the shape of the computation.

A schedule is evaluated at the number of updates made so far, starting at 0.
Formulas and argument names follow optax.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from jaxopt_lab.base import HyperFunction, Static, bind, complement
from jaxopt_lab.checks import check_count, check_hyperparameter, is_concrete
from jaxopt_lab.errors import InputTypeError, InputValueError


def constant_schedule(value: Any) -> HyperFunction:
    r""":math:`\eta(t) = v`."""
    check_hyperparameter("value", value, low=None)
    return bind(_constant, value=value)


def _constant(h, count):
    del count
    return h.value


def polynomial_schedule(
    init_value: Any, end_value: Any, power: Any, transition_steps: int, transition_begin: int = 0
) -> HyperFunction:
    r"""Polynomial decay from ``init_value`` to ``end_value`` over ``transition_steps``
    steps starting at ``transition_begin``:
    :math:`\eta(t) = (v_0 - v_1)(1 - \tau/T)^{k} + v_1` with
    :math:`\tau = \operatorname{clip}(t - t_0, 0, T)`. ``transition_steps <= 0`` gives the
    constant ``init_value`` and a negative ``transition_begin`` counts as 0 (as in optax).

    The span :math:`v_0 - v_1` is a leaf of its own, computed when the schedule is built:
    from Python numbers in float64 and rounded once, as optax's closure computes it, so a
    schedule passed to ``jit`` as an argument (float32 leaves) gives optax's values
    exactly instead of rounding :math:`v_0` and :math:`v_1` before subtracting.
    ``init_value`` stays a leaf too, so the schedule still shows what it was built with."""
    for name, v in (("init_value", init_value), ("end_value", end_value), ("power", power)):
        check_hyperparameter(name, v, low=None)
    steps = check_count("transition_steps", transition_steps, low=None)
    begin = max(check_count("transition_begin", transition_begin, low=None), 0)
    if steps <= 0:
        return constant_schedule(init_value)
    return bind(
        _polynomial,
        init_value=init_value,
        end_value=end_value,
        span=init_value - end_value,
        # An integer power is structure, so frac**power stays an exact integer power.
        power=Static(power) if isinstance(power, int) else power,
        steps=Static(steps),
        begin=Static(begin),
    )


def _polynomial(h, count):
    count = jnp.clip(count - h.begin, 0, h.steps)
    frac = 1 - count / h.steps
    return h.span * (frac**h.power) + h.end_value


def linear_schedule(
    init_value: Any, end_value: Any, transition_steps: int, transition_begin: int = 0
) -> HyperFunction:
    r"""Linear interpolation from ``init_value`` to ``end_value``: a
    :func:`polynomial_schedule` of power 1."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def exponential_decay(
    init_value: Any,
    transition_steps: int,
    decay_rate: Any,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Any = None,
) -> HyperFunction:
    r""":math:`\eta(t) = v_0\, r^{(t - t_0)/T}` for :math:`t > t_0` (else :math:`v_0`),
    with the exponent floored when ``staircase``, and clipped at ``end_value`` (from below
    when :math:`r < 1`, from above otherwise)."""
    check_hyperparameter("init_value", init_value, low=None)
    check_hyperparameter("decay_rate", decay_rate, low=None)
    check_hyperparameter("end_value", end_value, low=None, allow_none=True)
    steps = check_count("transition_steps", transition_steps, low=None)
    begin = max(check_count("transition_begin", transition_begin, low=None), 0)
    if steps <= 0 or (is_concrete(decay_rate) and np.all(np.asarray(decay_rate) == 0)):
        return constant_schedule(init_value)
    return bind(
        _exponential,
        init_value=init_value,
        decay_rate=decay_rate,
        end_value=end_value,
        steps=Static(steps),
        begin=Static(begin),
        staircase=Static(bool(staircase)),
    )


def _exponential(h, count):
    elapsed = count - h.begin
    p = elapsed / h.steps
    if h.staircase:
        p = jnp.floor(p)
    value = jnp.where(elapsed <= 0, h.init_value, h.init_value * jnp.power(h.decay_rate, p))
    if h.end_value is not None:
        value = jnp.where(
            h.decay_rate < 1.0,
            jnp.maximum(value, h.end_value),
            jnp.minimum(value, h.end_value),
        )
    return value


def cosine_decay_schedule(
    init_value: Any, decay_steps: int, alpha: Any = 0.0, exponent: Any = 1.0
) -> HyperFunction:
    r"""Cosine decay (Loshchilov & Hutter, 2017, SGDR, arXiv:1608.03983):
    :math:`\eta(t) = v_0\,\big((1-\alpha)\,c(t)^{k} + \alpha\big)` with
    :math:`c(t) = \tfrac12\big(1 + \cos(\pi \min(t, T)/T)\big)`.

    >>> import jaxopt_lab as jol
    >>> lr = jol.cosine_decay_schedule(1.0, decay_steps=100)
    >>> [round(float(lr(t)), 3) for t in (0, 50, 100, 200)]
    [1.0, 0.5, 0.0, 0.0]
    """
    check_hyperparameter("init_value", init_value, low=None)
    check_hyperparameter("alpha", alpha, low=None)
    check_hyperparameter("exponent", exponent, low=None)
    steps = check_count("decay_steps", decay_steps)
    return bind(
        _cosine,
        init_value=init_value,
        alpha=alpha,
        one_minus_alpha=complement(alpha),
        exponent=exponent,
        steps=Static(float(steps)),
    )


def _cosine(h, count):
    count = jnp.minimum(count, h.steps)
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * count / h.steps))
    return h.init_value * (h.one_minus_alpha * cosine**h.exponent + h.alpha)


def join_schedules(schedules: Sequence[Any], boundaries: Sequence[int]) -> HyperFunction:
    r"""Run ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at step 0."""
    schedules = tuple(schedules)
    if not schedules or not all(callable(s) for s in schedules):
        raise InputTypeError("`schedules` must be a non-empty sequence of callables.")
    bounds = tuple(check_count("boundaries", b, low=None) for b in boundaries)
    if len(bounds) != len(schedules) - 1:
        raise InputValueError(
            f"`boundaries` must have len(schedules) - 1 = {len(schedules) - 1} entries, "
            f"got {len(bounds)}."
        )
    return bind(_join, schedules=schedules, boundaries=Static(bounds))


def _join(h, count):
    value = _call(h.schedules[0], count)
    for boundary, schedule in zip(h.boundaries, h.schedules[1:], strict=True):
        value = jnp.where(count < boundary, value, _call(schedule, count - boundary))
    return value


def _call(schedule, count):
    return schedule.value(count) if isinstance(schedule, Static) else schedule(count)


def warmup_cosine_decay_schedule(
    init_value: Any,
    peak_value: Any,
    warmup_steps: int,
    decay_steps: int,
    end_value: Any = 0.0,
    exponent: Any = 1.0,
) -> HyperFunction:
    r"""Linear warm-up (Goyal et al., 2017, arXiv:1706.02677) from ``init_value`` to
    ``peak_value`` over ``warmup_steps``, then cosine decay (Loshchilov & Hutter, 2017) to
    ``end_value`` at ``decay_steps`` (counted from step 0).

    >>> import jaxopt_lab as jol
    >>> lr = jol.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=110)
    >>> [round(float(lr(t)), 3) for t in (0, 5, 10, 60, 110)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    check_hyperparameter("peak_value", peak_value, low=None)
    check_hyperparameter("end_value", end_value, low=None)
    warmup = check_count("warmup_steps", warmup_steps, low=None)
    # the cosine part runs decay_steps - warmup_steps >= 1 steps
    decay = check_count("decay_steps", decay_steps, low=warmup + 1)
    if is_concrete(peak_value) and not isinstance(peak_value, jnp.ndarray):
        alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    else:
        alpha = jnp.where(peak_value == 0.0, 0.0, end_value / peak_value)
    return join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup),
            cosine_decay_schedule(peak_value, decay - warmup, alpha=alpha, exponent=exponent),
        ],
        [warmup],
    )


def piecewise_constant_schedule(
    init_value: Any, boundaries_and_scales: dict[int, Any] | None = None
) -> HyperFunction:
    r""":math:`\eta(t) = v_0 \prod_{b_i \le t} s_i`: at each boundary step the value is
    multiplied by its scale."""
    check_hyperparameter("init_value", init_value, low=None)
    items = _boundaries_and_scales(boundaries_and_scales)
    return bind(
        _piecewise,
        init_value=init_value,
        boundaries=Static(tuple(b for b, _ in items)),
        scales=tuple(s for _, s in items),
    )


def _piecewise(h, count):
    value = h.init_value
    for boundary, scale in zip(h.boundaries, h.scales, strict=True):
        passed = jnp.maximum(0.0, jnp.sign(boundary - count))
        value = value * passed + (1 - passed) * scale * value
    return value


def _boundaries_and_scales(boundaries_and_scales: dict[int, Any] | None) -> list[tuple[int, Any]]:
    """The ``(boundary, scale)`` pairs sorted by boundary: whole-number steps and scales
    >= 0 (checked when concrete)."""
    items = sorted((boundaries_and_scales or {}).items())
    for boundary, scale in items:
        check_count("boundaries_and_scales (key)", boundary, low=None)
        check_hyperparameter(f"boundaries_and_scales[{boundary}]", scale)
    return items


# --------------------------------------------------------------------------------------
# Interpolated, one-cycle and warm-up schedules
# --------------------------------------------------------------------------------------


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value: Any, boundaries_and_scales: dict[int, Any] | None = None
) -> HyperFunction:
    r"""Interpolate between knots: at boundary :math:`b_i` the value reaches
    :math:`v_0 \prod_{j \le i} s_j`, and between two boundaries it moves from one knot
    value to the next ``"linear"``-ly or along a half ``"cosine"``. Before the first
    boundary it interpolates from ``init_value`` (at step 0); after the last it stays."""
    if interpolate_type not in ("linear", "cosine"):
        raise InputValueError(
            f"`interpolate_type` must be 'linear' or 'cosine', got {interpolate_type!r}."
        )
    check_hyperparameter("init_value", init_value, low=None)
    items = _boundaries_and_scales(boundaries_and_scales)
    return bind(
        _interpolate,
        init_value=init_value,
        scales=tuple(s for _, s in items),
        boundaries=Static(tuple(b for b, _ in items)),
        kind=Static(interpolate_type),
    )


def _interpolate(h, count):
    bounds = jnp.stack((0,) + h.boundaries)
    # knot values in the dtype jnp picks for the stacked leaves (float32 without x64)
    values = jnp.cumprod(jnp.stack((h.init_value,) + tuple(h.scales)))
    start, end = values[:-1], values[1:]
    inside = jnp.logical_and(bounds[:-1] <= count, count < bounds[1:])
    pct = (count - bounds[:-1]) / jnp.maximum(bounds[1:] - bounds[:-1], 1)
    if h.kind == "linear":
        between = (end - start) * pct + start
    else:
        between = end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)
    return inside.dot(between) + (bounds[-1] <= count) * values[-1]


def _check_onecycle(transition_steps: int, peak_value: Any, **factors: Any) -> int:
    steps = check_count("transition_steps", transition_steps)
    check_hyperparameter("peak_value", peak_value, low=None)
    for name, value in factors.items():
        check_hyperparameter(name, value, low=0.0, low_inclusive=False)
    return steps


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: Any,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> HyperFunction:
    r"""One-cycle policy (Smith & Topin, 2017, arXiv:1708.07120), linear pieces: from
    ``peak_value / div_factor`` up to ``peak_value`` at ``pct_start * T``, back down by
    ``pct_final * T`` and to ``peak_value / (div_factor * final_div_factor)`` at ``T``.
    The percentages fix boundaries (structure); the values are leaves."""
    steps = _check_onecycle(
        transition_steps, peak_value, div_factor=div_factor, final_div_factor=final_div_factor
    )
    return piecewise_interpolate_schedule(
        "linear",
        peak_value / div_factor,
        {
            int(pct_start * steps): div_factor,
            int(pct_final * steps): 1.0 / div_factor,
            steps: 1.0 / final_div_factor,
        },
    )


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: Any,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> HyperFunction:
    r"""One-cycle policy (Smith & Topin, 2017, arXiv:1708.07120) with cosine pieces: from
    ``peak_value / div_factor`` up to ``peak_value`` at ``pct_start * T``, then down to
    ``peak_value / (div_factor * final_div_factor)`` at ``T``."""
    steps = _check_onecycle(
        transition_steps, peak_value, div_factor=div_factor, final_div_factor=final_div_factor
    )
    return piecewise_interpolate_schedule(
        "cosine",
        peak_value / div_factor,
        {int(pct_start * steps): div_factor, steps: 1.0 / (div_factor * final_div_factor)},
    )


def warmup_constant_schedule(init_value: Any, peak_value: Any, warmup_steps: int) -> HyperFunction:
    r"""Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then
    constant."""
    check_hyperparameter("peak_value", peak_value, low=None)
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_exponential_decay_schedule(
    init_value: Any,
    peak_value: Any,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: Any,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Any = None,
) -> HyperFunction:
    r"""Linear warm-up to ``peak_value``, then :func:`exponential_decay` from it
    (restarted at step 0 at the end of the warm-up)."""
    warmup = check_count("warmup_steps", warmup_steps, low=None)
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return join_schedules([linear_schedule(init_value, peak_value, warmup), decay], [warmup])


def sgdr_schedule(cosine_kwargs: Sequence[dict[str, Any]]) -> HyperFunction:
    r"""SGDR, warm restarts (Loshchilov & Hutter, 2017, arXiv:1608.03983): one
    :func:`warmup_cosine_decay_schedule` per dict of ``cosine_kwargs``, each running its
    ``decay_steps`` and then restarting with the next."""
    arguments = inspect.signature(warmup_cosine_decay_schedule).parameters
    required = {name for name, p in arguments.items() if p.default is inspect.Parameter.empty}
    schedules, boundaries, step = [], [], 0
    for i, kwargs in enumerate(cosine_kwargs):
        if not (isinstance(kwargs, dict) and required <= kwargs.keys() <= arguments.keys()):
            raise InputTypeError(
                f"`cosine_kwargs[{i}]` must be a dict of warmup_cosine_decay_schedule "
                f"arguments: all of {sorted(required)}, optionally "
                f"{sorted(arguments.keys() - required)}; got {kwargs!r}."
            )
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step += kwargs["decay_steps"]
        boundaries.append(step)
    if not schedules:
        raise InputValueError("`cosine_kwargs` must hold at least one dict.")
    return join_schedules(schedules, boundaries[:-1])


__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
