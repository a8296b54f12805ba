r"""MADGRAD (Defazio & Jelassi, *Adaptivity without Compromise: A Momentumized,
Adaptive, Dual Averaged Gradient Method*, 2021, arXiv:2101.11075)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    bind,
    chain,
    complement,
    safe_increment,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import check_hyperparameter
from jaxopt_lab.contrib._common import check_all, check_unit, require_params, schedule_value


class MadgradState(NamedTuple):
    count: jax.Array
    grad_sum_sq: Any
    s: Any
    x0: Any


def scale_by_madgrad(
    learning_rate: ScalarOrSchedule, momentum: Any = 0.9, eps: Any = 1e-6
) -> Optimizer:
    r"""MADGRAD's (Defazio & Jelassi, 2022) step (learning rate included, as a
    dual-averaging weight): with
    :math:`\lambda_t = (\eta_t + \epsilon)\sqrt{t}`,

    .. math::
        s_t = s_{t-1} + \lambda_t g_t,\quad G_t = G_{t-1} + \lambda_t g_t^2,\quad
        z_t = p_0 - \frac{s_t}{G_t^{1/3} + \epsilon},\quad
        p_{t+1} = (1-c)\, z_t + c\, p_t

    with :math:`c` = ``momentum``; the update is :math:`p_{t+1} - p_t`.
    """
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    check_unit(momentum=momentum)
    check_all(eps=eps)
    return Optimizer(
        bind(_madgrad_init),
        bind(
            _madgrad_update,
            learning_rate=learning_rate,
            # a constant rate's eta + eps is taken once, in float64 (as optax does)
            lr_stable=None if callable(learning_rate) else learning_rate + eps,
            momentum=momentum,
            one_minus_momentum=complement(momentum),
            eps=eps,
        ),
    )


def _madgrad_init(h, params):
    del h
    zeros = tree_zeros_like(params)
    return MadgradState(jnp.zeros([], jnp.int32), zeros, zeros, jax.tree.map(jnp.copy, params))


def _madgrad_update(h, updates, state, params=None, **extra_args):
    del extra_args
    require_params(params, "MADGRAD")
    lr_stable = h.lr_stable
    if lr_stable is None:
        lr_stable = schedule_value(h.learning_rate, state.count) + h.eps
    lamb = lr_stable * jnp.sqrt(state.count + 1)
    grad_sum_sq = tree_map(
        lambda s, g: s + (lamb * (g**2)).astype(g.dtype), state.grad_sum_sq, updates
    )
    s = tree_map(lambda s, g: s + (lamb * g).astype(g.dtype), state.s, updates)
    z = tree_map(lambda x0, si, gs: x0 - si / (jnp.cbrt(gs) + h.eps), state.x0, s, grad_sum_sq)
    new = tree_map(lambda zi, p: (h.one_minus_momentum * zi + h.momentum * p) - p, z, params)
    return new, MadgradState(safe_increment(state.count), grad_sum_sq, s, state.x0)


def madgrad(
    learning_rate: ScalarOrSchedule,
    momentum: Any = 0.9,
    weight_decay: Any = 0.0,
    eps: Any = 1e-6,
) -> Optimizer:
    r"""MADGRAD (Defazio & Jelassi, 2022): weight decay added to the gradient, then
    :func:`scale_by_madgrad`."""
    return chain(
        T.add_decayed_weights(weight_decay),
        scale_by_madgrad(learning_rate, momentum, eps),
    )
