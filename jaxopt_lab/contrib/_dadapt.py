r"""Learning-rate-free Adam variants that estimate the distance to the solution:
D-Adaptation (Defazio & Mishchenko, 2023, arXiv:2301.07733) and Prodigy (Mishchenko &
Defazio, 2023, arXiv:2306.06101)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    bind,
    complement,
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
    tree_sum,
    tree_vdot,
)
from jaxopt_lab.errors import InputTypeError


def _check_betas(betas: Any) -> tuple[Any, Any]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise InputTypeError(f"`betas` must be a pair (beta1, beta2), got {betas!r}.")
    check_unit(**{"betas[0]": betas[0], "betas[1]": betas[1]})
    return betas[0], betas[1]


def _bias_factor(beta1, beta2, count):
    r""":math:`\sqrt{1-\beta_2^t} / (1-\beta_1^t)`."""
    return ((1 - beta2**count) ** 0.5) / (1 - beta1**count)


class DAdaptAdamWState(NamedTuple):
    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    estim_lr0: Any = 1e-6,
    weight_decay: Any = 0.0,
) -> Optimizer:
    r"""D-Adaptation AdamW (Defazio & Mishchenko, 2023). With :math:`d_t` the distance
    estimate (from
    ``estim_lr0``), :math:`\gamma_t` the learning rate (a multiplier, default 1),
    :math:`\lambda_t = d_t \gamma_t \sqrt{1-\beta_2^t}/(1-\beta_1^t)` and
    :math:`\rho = \sqrt{\beta_2}`:

    .. math::
        r_t &= \rho\, r_{t-1} + (1-\rho)\,\lambda_t \langle g_t, s_{t-1}/(\sqrt{v_{t-1}}
              + \epsilon)\rangle,\quad
        s_t = \rho\, s_{t-1} + (1-\rho)\,\lambda_t g_t,\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\lambda_t g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        d_{t+1} = \max\!\big(d_t,\ r_t / ((1-\rho)\|s_t\|_1)\big),\\
        u_t &= -m_t/(\sqrt{v_t} + \epsilon) - \mu\,\lambda_t\, p_t.
    """
    beta1, beta2 = _check_betas(betas)
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    check_all(eps=eps, estim_lr0=estim_lr0, weight_decay=weight_decay)
    sqrt_b2 = beta2**0.5
    return Optimizer(
        bind(_dadapt_init, estim_lr0=estim_lr0),
        bind(
            _dadapt_update,
            learning_rate=learning_rate,
            **decay_rates(beta1, beta2),
            sqrt_b2=sqrt_b2,
            one_minus_sqrt_b2=complement(sqrt_b2),
            eps=eps,
            weight_decay=weight_decay,
        ),
    )


def _dadapt_init(h, params):
    dtype, zeros = lowest_dtype(params), tree_zeros_like(params)
    return DAdaptAdamWState(
        zeros,
        zeros,
        zeros,
        jnp.asarray(h.estim_lr0, dtype),
        jnp.zeros([], dtype),
        jnp.zeros([], jnp.int32),
    )


def _dadapt_update(h, updates, state, params=None, **extra_args):
    del extra_args
    require_params(params, "dadapt_adamw")
    count = safe_increment(state.count)
    sched = schedule_value(h.learning_rate, state.count)
    dlr = state.estim_lr * sched * _bias_factor(h.b1, h.b2, count)
    dlr = dlr.astype(state.numerator_weighted.dtype)
    weighted = tree_map(lambda s, v: s / (jnp.sqrt(v) + h.eps), state.grad_sum, state.exp_avg_sq)
    numerator = tree_vdot(updates, weighted)
    exp_avg = tree_map(lambda m, g: h.b1 * m + h.one_minus_b1 * dlr * g, state.exp_avg, updates)
    exp_avg_sq = tree_map(lambda v, g: h.b2 * v + h.one_minus_b2 * g * g, state.exp_avg_sq, updates)
    grad_sum = tree_map(
        lambda s, g: h.sqrt_b2 * s + h.one_minus_sqrt_b2 * dlr * g, state.grad_sum, updates
    )
    l1 = tree_sum(jax.tree.map(jnp.abs, grad_sum))
    weighted_sum = h.sqrt_b2 * state.numerator_weighted + h.one_minus_sqrt_b2 * dlr * numerator
    estim_lr = jnp.maximum(state.estim_lr, weighted_sum / (h.one_minus_sqrt_b2 * l1))
    new_updates = tree_map(
        lambda m, v, p: -h.weight_decay * dlr * p - m / (jnp.sqrt(v) + h.eps),
        exp_avg,
        exp_avg_sq,
        params,
    )
    new_state = DAdaptAdamWState(exp_avg, exp_avg_sq, grad_sum, estim_lr, weighted_sum, count)
    return new_updates, new_state


class ProdigyState(NamedTuple):
    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    params0: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[Any, Any] = (0.9, 0.999),
    beta3: Any = None,
    eps: Any = 1e-8,
    estim_lr0: Any = 1e-6,
    estim_lr_coef: Any = 1.0,
    weight_decay: Any = 0.0,
    safeguard_warmup: bool = False,
) -> Optimizer:
    r"""Prodigy (Mishchenko & Defazio, 2024). With :math:`d_t` the distance estimate (from
    ``estim_lr0`` =
    :math:`d_0`), :math:`\lambda_t = d_t\gamma_t\sqrt{1-\beta_2^t}/(1-\beta_1^t)` and
    :math:`\beta_3` (default :math:`\sqrt{\beta_2}`):

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) d_t g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2 g_t^2,\\
        s_t &= \beta_3 s_{t-1} + \tfrac{\lambda_t}{d_0} d_t g_t
              \ (\text{with } d_t \text{ for } \lambda_t \text{ if safeguard\_warmup}),\quad
        r_t = \beta_3 r_{t-1} + \tfrac{d_t}{d_0}\lambda_t \langle g_t, p_0 - p_t\rangle,\\
        d_{t+1} &= \max\!\big(d_t,\ c\, r_t/\|s_t\|_1\big),\quad
        u_t = -\lambda_t \big(m_t/(\sqrt{v_t} + d_{t+1}\epsilon) + \mu\, p_t\big),

    with :math:`c` = ``estim_lr_coef`` and :math:`\mu` = ``weight_decay``.
    """
    beta1, beta2 = _check_betas(betas)
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    check_flag("safeguard_warmup", safeguard_warmup)
    beta3 = beta2**0.5 if beta3 is None else beta3
    check_unit(beta3=beta3)
    check_all(eps=eps, estim_lr0=estim_lr0, estim_lr_coef=estim_lr_coef, weight_decay=weight_decay)
    return Optimizer(
        bind(_prodigy_init, estim_lr0=estim_lr0),
        bind(
            _prodigy_update,
            learning_rate=learning_rate,
            **decay_rates(beta1, beta2),
            beta3=beta3,
            eps=eps,
            estim_lr0=estim_lr0,
            estim_lr_coef=estim_lr_coef,
            weight_decay=weight_decay,
            safeguard_warmup=Static(safeguard_warmup),
        ),
    )


def _prodigy_init(h, params):
    dtype, zeros = lowest_dtype(params), tree_zeros_like(params)
    return ProdigyState(
        zeros,
        zeros,
        zeros,
        params,
        jnp.asarray(h.estim_lr0, dtype),
        jnp.zeros((), dtype),
        jnp.zeros((), jnp.int32),
    )


def _prodigy_update(h, updates, state, params=None, **extra_args):
    del extra_args
    require_params(params, "prodigy")
    count = safe_increment(state.count)
    sched = schedule_value(h.learning_rate, state.count)
    d = state.estim_lr
    dlr = jnp.asarray(d * sched * _bias_factor(h.b1, h.b2, count), d.dtype)
    dg = tree_map(lambda g: d * g, updates)
    numerator = tree_vdot(updates, tree_map(lambda p0, p: p0 - p, state.params0, params))
    exp_avg = tree_map(lambda m, x: h.b1 * m + h.one_minus_b1 * x, state.exp_avg, dg)
    exp_avg_sq = tree_map(lambda v, x: h.b2 * v + h.one_minus_b2 * x * x, state.exp_avg_sq, dg)
    step = d if h.safeguard_warmup else dlr
    grad_sum = tree_map(lambda s, x: h.beta3 * s + step * x / h.estim_lr0, state.grad_sum, dg)
    weighted_sum = h.beta3 * state.numerator_weighted
    weighted_sum += (d / h.estim_lr0) * dlr * numerator
    l1 = tree_sum(jax.tree.map(jnp.abs, grad_sum))
    estim_lr = jnp.maximum(d, h.estim_lr_coef * weighted_sum / l1)
    new_updates = tree_map(
        lambda m, v, p: -h.weight_decay * dlr * p - dlr * m / (jnp.sqrt(v) + estim_lr * h.eps),
        exp_avg,
        exp_avg_sq,
        params,
    )
    new_state = ProdigyState(
        exp_avg, exp_avg_sq, grad_sum, state.params0, estim_lr, weighted_sum, count
    )
    return new_updates, new_state
