r"""Schedule-free optimisation (Defazio et al., *The Road Less Scheduled*, 2024,
arXiv:2405.15682): no learning-rate decay, an online average of the iterates instead."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import optimizers as O
from jaxopt_lab import schedules as S
from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    accepts_extra_args,
    bind,
    chain,
    complement,
    safe_increment,
    tree_cast,
)
from jaxopt_lab.checks import canonical_dtype, check_count, check_hyperparameter, check_optimizer
from jaxopt_lab.contrib._common import check_all, check_unit, lowest_dtype, require_params
from jaxopt_lab.errors import InputTypeError


class ScheduleFreeState(NamedTuple):
    b1: jax.Array
    weight_sum: jax.Array
    step_count: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Any


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    r"""The parameters to evaluate at: :math:`x = (y - (1-\beta_1) z)/\beta_1`, the
    average that the training iterate :math:`y` interpolates towards."""
    b1, z = getattr(state, "b1", None), getattr(state, "z", None)
    if b1 is None or z is None:
        raise InputTypeError(
            "`state` must be a ScheduleFreeState (the state of a schedule_free optimizer)."
        )
    return jax.tree.map(lambda y, zi: (y - (1.0 - b1) * zi) / b1, params, z)


def schedule_free(
    base_optimizer: Any,
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    weight_lr_power: Any = 2.0,
    state_dtype: Any = None,
) -> Optimizer:
    r"""Schedule-free wrapper (Defazio et al., 2024) of ``base_optimizer`` (whose update
    :math:`\Delta_t` is a
    step of plain SGD or Adam, learning rate included):

    .. math::
        z_{t+1} = z_t + \Delta_t,\quad
        c_{t+1} = \frac{\eta_{\max,t}^{r}}{\sum_{i\le t} \eta_{\max,i}^{r}},\quad
        x_{t+1} = (1-c_{t+1})\, x_t + c_{t+1} z_{t+1},\quad
        y_{t+1} = \beta_1 x_{t+1} + (1-\beta_1) z_{t+1}

    where the gradient is taken at :math:`y` (the params), :math:`x_t` is recovered
    from :math:`y_t` and :math:`z_t`, :math:`\eta_{\max,t}` is the largest learning
    rate so far (a schedule is read at steps 1, 2, ...) and :math:`r` is
    ``weight_lr_power``. Evaluate at :func:`schedule_free_eval_params`.
    """
    check_optimizer(base_optimizer, "base_optimizer")
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    check_unit(b1=b1)
    check_all(low=None, weight_lr_power=weight_lr_power)
    state_dtype = Static(canonical_dtype("state_dtype", state_dtype))
    return Optimizer(
        bind(_sf_init, base_init=base_optimizer.init, b1=b1, state_dtype=state_dtype),
        bind(
            _sf_update,
            base_update=base_optimizer.update,
            learning_rate=learning_rate,
            b1=b1,
            one_minus_b1=complement(b1),
            weight_lr_power=weight_lr_power,
        ),
    )


def _sf_init(h, params):
    dtype = lowest_dtype(params)
    z = jax.tree.map(jnp.copy, tree_cast(params, h.state_dtype))
    return ScheduleFreeState(
        b1=jnp.asarray(h.b1, dtype),
        weight_sum=jnp.zeros([], dtype),
        step_count=jnp.ones([], jnp.int32),
        max_lr=jnp.zeros([], dtype),
        base_optimizer_state=h.base_init(params),
        z=z,
    )


def _averaging_weight(h, state):
    """:math:`c_{t+1}` (NaN if a weight is NaN; 0 while every weight is 0)."""
    lr = h.learning_rate
    if callable(lr):
        lr = jnp.asarray(lr(state.step_count), state.max_lr.dtype)
    max_lr = jnp.maximum(state.max_lr, lr)
    weight = max_lr**h.weight_lr_power
    total = state.weight_sum + weight
    bad = jnp.logical_or(jnp.isnan(weight), jnp.isnan(total))
    ck = jnp.where(
        bad,
        jnp.full(weight.shape, jnp.nan),
        jnp.nan_to_num(weight / total, nan=0.0, posinf=jnp.inf),
    )
    return ck, max_lr, total


def _sf_update(h, updates, state, params=None, **extra_args):
    require_params(params, "schedule_free")
    ck, max_lr, total = _averaging_weight(h, state)
    if accepts_extra_args(h.base_update):
        base, base_state = h.base_update(updates, state.base_optimizer_state, params, **extra_args)
    else:
        base, base_state = h.base_update(updates, state.base_optimizer_state, params)
    z = jax.tree.map(lambda zi, u: jnp.asarray(zi + u).astype(zi.dtype), state.z, base)
    x = jax.tree.map(lambda y, zi: (y - h.one_minus_b1 * zi) / h.b1, params, state.z)
    x = jax.tree.map(lambda xi, zi: (1.0 - ck) * xi + ck * zi, x, z)
    new_y = jax.tree.map(lambda xi, zi: h.b1 * xi + h.one_minus_b1 * zi, x, z)
    new_updates = jax.tree.map(lambda n, y: n - y, new_y, params)
    new_state = ScheduleFreeState(
        state.b1, total, safe_increment(state.step_count), max_lr, base_state, z
    )
    return new_updates, new_state


def _warmup(learning_rate, warmup_steps):
    if warmup_steps is None:
        return learning_rate
    check_count("warmup_steps", warmup_steps)
    return S.warmup_constant_schedule(0, learning_rate, warmup_steps)


def schedule_free_sgd(
    learning_rate: Any = 1.0,
    warmup_steps: int | None = None,
    b1: Any = 0.9,
    weight_decay: Any = None,
    weight_lr_power: Any = 2.0,
    state_dtype: Any = None,
) -> Optimizer:
    r"""Schedule-free SGD (Defazio et al., 2024): :func:`schedule_free` around
    :math:`\Delta = -\eta(g + \lambda
    y)` (no decay when ``weight_decay`` is None), with an optional linear warm-up of
    ``warmup_steps`` steps from 0."""
    learning_rate = _warmup(learning_rate, warmup_steps)
    base = O.sgd(learning_rate)
    if weight_decay is not None:
        base = chain(T.add_decayed_weights(weight_decay), base)
    return schedule_free(base, learning_rate, b1, weight_lr_power, state_dtype)


def schedule_free_adamw(
    learning_rate: Any = 0.0025,
    warmup_steps: int | None = None,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    weight_lr_power: Any = 2.0,
    state_dtype: Any = None,
) -> Optimizer:
    r"""Schedule-free AdamW (Defazio et al., 2024): :func:`schedule_free` around
    :math:`\Delta = -\eta\,(g/(\sqrt{\hat v} + \epsilon) + \lambda y)`, with
    :math:`\hat v` the bias-corrected EMA of :math:`g^2` (rate ``b2``; there is no first
    moment: the averaging plays its part), and an optional linear warm-up."""
    learning_rate = _warmup(learning_rate, warmup_steps)
    base = chain(
        T.scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
        T.add_decayed_weights(weight_decay),
        T.scale_by_learning_rate(learning_rate),
    )
    return schedule_free(base, learning_rate, b1, weight_lr_power, state_dtype)
