r"""MoMo: momentum models for adaptive learning rates (Schaipp et al., 2023,
arXiv:2305.07583). Each step is a Polyak-type step on a model of the loss built from
averaged values, gradients and :math:`\langle g, p\rangle`, capped by the learning
rate; ``update`` needs the loss ``value=`` at the current params."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    bind,
    safe_increment,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import check_flag, check_hyperparameter
from jaxopt_lab.contrib._common import (
    check_all,
    check_unit,
    decay_rates,
    lowest_dtype,
    require_params,
    schedule_value,
    tree_sq_norm,
    tree_vdot,
)
from jaxopt_lab.errors import InputValueError


class MomoState(NamedTuple):
    exp_avg: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: jax.Array


class MomoAdamState(NamedTuple):
    exp_avg: Any
    exp_avg_sq: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: jax.Array


def _check_value(params, value):
    require_params(params, "MoMo", "update(grads, state, params, value=)")
    if value is None:
        raise InputValueError("MoMo needs the loss: call `update(..., value=loss)`.")


def _check_momo(learning_rate, lower_bound, weight_decay, adapt_lower_bound):
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    check_all(low=None, lower_bound=lower_bound)
    check_all(weight_decay=weight_decay)
    check_flag("adapt_lower_bound", adapt_lower_bound)


def _momo_init(h, params):
    dtype = lowest_dtype(params)
    zero = jnp.zeros([], dtype)
    moments = (tree_zeros_like(params),) * h.n_moments
    return h.state_type(
        *moments, zero, zero, jnp.array(h.lower_bound, dtype), jnp.zeros([], jnp.int32)
    )


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta: Any = 0.9,
    lower_bound: Any = 0.0,
    weight_decay: Any = 0.0,
    adapt_lower_bound: bool = False,
) -> Optimizer:
    r"""MoMo (Schaipp et al., 2023), SGD with momentum. With :math:`\beta_t = 0` at the first step,
    :math:`\beta` after, and :math:`\lambda` = ``weight_decay``:

    .. math::
        \bar f_t &= \beta_t \bar f_{t-1} + (1-\beta_t) f(p_t),\quad
        d_t = \beta_t d_{t-1} + (1-\beta_t) g_t,\quad
        \gamma_t = \beta_t \gamma_{t-1} + (1-\beta_t)\langle g_t, p_t\rangle,\\
        \tau_t &= \min\!\Big(\eta_t, \frac{\big((1+\eta_t\lambda)(\bar f_t - \ell_t -
              \gamma_t) + \langle d_t, p_t\rangle\big)_+}{\|d_t\|^2}\Big),\quad
        u_t = -\frac{\eta_t\lambda}{1+\eta_t\lambda} p_t - \tau_t d_t

    with :math:`\ell` the ``lower_bound`` of the loss (updated from the model when
    ``adapt_lower_bound``). Call ``update(grads, state, params, value=loss)``.
    """
    _check_momo(learning_rate, lower_bound, weight_decay, adapt_lower_bound)
    check_unit(beta=beta)
    return Optimizer(
        bind(
            _momo_init, n_moments=Static(1), state_type=Static(MomoState), lower_bound=lower_bound
        ),
        bind(
            _momo_update,
            learning_rate=learning_rate,
            beta=beta,
            lower_bound=lower_bound,
            weight_decay=weight_decay,
            adapt=Static(adapt_lower_bound),
        ),
    )


def _momo_update(h, updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    _check_value(params, value)
    bt = jnp.where(state.count == 0, 0.0, h.beta)
    barf = bt * state.barf + (1 - bt) * jnp.asarray(value, state.barf.dtype)
    exp_avg = tree_map(lambda d, g: bt * d + (1 - bt) * g, state.exp_avg, updates)
    gamma = bt * state.gamma + (1 - bt) * tree_vdot(updates, params)
    norm_sq = tree_sq_norm(exp_avg)
    iprod = tree_vdot(exp_avg, params)
    alpha = schedule_value(h.learning_rate, state.count)
    decay = 1 + alpha * h.weight_decay
    lb = state.lb
    if h.adapt:
        cap = decay * (barf - gamma) + iprod
        lb = jnp.where(cap < decay * state.lb, jnp.maximum(cap / (2 * decay), h.lower_bound), lb)
    t1 = jnp.maximum(decay * (barf - lb - gamma) + iprod, 0.0) / norm_sq
    t1 = jnp.where(norm_sq <= jnp.finfo(float).eps, 0.0, t1)
    tau = jnp.minimum(alpha, t1)
    new = tree_map(lambda d, p: -(alpha * h.weight_decay) / decay * p - tau * d, exp_avg, params)
    new_lb = state.lb
    if h.adapt:
        new_lb = jnp.maximum((barf + iprod - gamma) - (1 / 2) * tau * norm_sq, h.lower_bound)
    return new, MomoState(exp_avg, barf, gamma, new_lb, safe_increment(state.count))


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    lower_bound: Any = 0.0,
    weight_decay: Any = 0.0,
    adapt_lower_bound: bool = False,
) -> Optimizer:
    r"""MoMo-Adam (Schaipp et al., 2023): :func:`momo`'s model in Adam's geometry. With
    :math:`D_t = \epsilon + \sqrt{v_t/(1-\beta_2^t)}` (elementwise),
    :math:`\rho_t = 1-\beta_1^t` and :math:`\beta_1` from the first step,

    .. math::
        \tau_t = \min\!\Big(\frac{\eta_t}{\rho_t}, \frac{\big((1+\eta_t\lambda)
        (\bar f_t - \rho_t\ell_t - \gamma_t) + \langle d_t, p_t\rangle\big)_+}
        {\langle d_t, d_t / D_t\rangle}\Big),\quad
        u_t = -\frac{\eta_t\lambda}{1+\eta_t\lambda} p_t - \tau_t\, d_t / D_t.

    Call ``update(grads, state, params, value=loss)``.
    """
    _check_momo(learning_rate, lower_bound, weight_decay, adapt_lower_bound)
    check_unit(b1=b1, b2=b2)
    check_all(eps=eps)
    return Optimizer(
        bind(
            _momo_init,
            n_moments=Static(2),
            state_type=Static(MomoAdamState),
            lower_bound=lower_bound,
        ),
        bind(
            _momo_adam_update,
            learning_rate=learning_rate,
            **decay_rates(b1, b2),
            eps=eps,
            lower_bound=lower_bound,
            weight_decay=weight_decay,
            adapt=Static(adapt_lower_bound),
        ),
    )


def _momo_adam_update(h, updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    _check_value(params, value)
    count = safe_increment(state.count)
    barf = h.b1 * state.barf + h.one_minus_b1 * jnp.asarray(value, state.barf.dtype)
    exp_avg = tree_map(lambda d, g: h.b1 * d + h.one_minus_b1 * g, state.exp_avg, updates)
    exp_avg_sq = tree_map(lambda v, g: h.b2 * v + h.one_minus_b2 * g * g, state.exp_avg_sq, updates)
    bc2 = jnp.asarray(1 - h.b2**count, barf.dtype)
    precond = tree_map(lambda v: h.eps + jnp.sqrt(v / bc2), exp_avg_sq)
    norm_sq = tree_vdot(exp_avg, tree_map(lambda d, D: d / D, exp_avg, precond))
    gamma = h.b1 * state.gamma + h.one_minus_b1 * tree_vdot(updates, params)
    iprod = tree_vdot(exp_avg, params)
    alpha = schedule_value(h.learning_rate, state.count)
    bc1 = jnp.asarray(1 - h.b1**count, barf.dtype)
    decay = 1 + alpha * h.weight_decay
    lb = state.lb
    if h.adapt:
        cap = decay * (barf - gamma) + iprod
        lb = jnp.where(
            cap < decay * bc1 * state.lb, jnp.maximum(cap / (2 * bc1 * decay), h.lower_bound), lb
        )
    t1 = jnp.maximum(decay * (barf - bc1 * lb - gamma) + iprod, 0.0) / norm_sq
    t1 = jnp.where(norm_sq <= jnp.finfo(float).eps, 0.0, t1)
    tau = jnp.minimum(alpha / bc1, t1)
    new = tree_map(
        lambda d, D, p: -(alpha * h.weight_decay) / decay * p - tau * d / D,
        exp_avg,
        precond,
        params,
    )
    new_lb = state.lb
    if h.adapt:
        new_lb = ((barf + iprod - gamma) - (1 / 2) * tau * norm_sq) / bc1
        new_lb = jnp.maximum(new_lb, h.lower_bound)
    new_state = MomoAdamState(exp_avg, exp_avg_sq, barf, gamma, new_lb, count)
    return new, new_state
