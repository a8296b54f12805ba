r"""Mechanic (Cutkosky et al., *Mechanic: A Learning Rate Tuner*, 2023,
arXiv:2306.00144): learns a scale :math:`s` for any base optimizer's steps by
online betting, over several averaging rates at once."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.base import Optimizer, Static, accepts_extra_args, bind, safe_increment, tree_map
from jaxopt_lab.checks import check_count, check_optimizer
from jaxopt_lab.contrib._common import (
    check_all,
    lowest_dtype,
    require_params,
    tree_sq_norm,
    tree_vdot,
)


class MechanicState(NamedTuple):
    base_optimizer_state: Any
    count: jax.Array
    r: jax.Array
    m: jax.Array
    v: jax.Array
    s: jax.Array
    x0: Any


def mechanize(
    base_optimizer: Any,
    weight_decay: Any = 1e-2,
    eps: Any = 1e-8,
    s_init: Any = 1e-6,
    num_betas: int = 6,
) -> Optimizer:
    r"""Wrap ``base_optimizer`` so that its accumulated steps :math:`\Delta_t` (the sum
    of its updates) are scaled by a learned :math:`S = \sum_j s_j`:
    :math:`p_t = p_0 + S_t \Delta_t`. With :math:`\beta_j = 1 - 10^{-j}`
    (:math:`j = 1..` ``num_betas``) and
    :math:`h_t = \langle g_t + \lambda S \|g_t\|/\|p_t\|\, p_t,\ \Delta_{t-1}\rangle`:

    .. math::
        m_j &= \max(\beta_j m_j, |h_t| + \epsilon),\quad
        v_j = \beta_j^2 v_j + h_t^2,\quad
        r_j = \beta_j r_j - \operatorname{clip}(h_t, \pm m_j^{old})\, s_j,\\
        s_j &= \frac{s_{init} m_j / n + (r_j)_+}{\sqrt{v_j} + \epsilon}

    (the sign of :math:`h` follows :math:`\Delta_{t-1} = (p_0 - p_t)/S`).
    """
    check_optimizer(base_optimizer, "base_optimizer")
    check_all(weight_decay=weight_decay, eps=eps, s_init=s_init)
    check_count("num_betas", num_betas)
    return Optimizer(
        bind(
            _mechanic_init,
            base_init=base_optimizer.init,
            s_init=s_init,
            num_betas=Static(num_betas),
        ),
        bind(
            _mechanic_update,
            base_update=base_optimizer.update,
            weight_decay=weight_decay,
            eps=eps,
            s_init=s_init,
            num_betas=Static(num_betas),
        ),
    )


def _mechanic_init(h, params):
    dtype = lowest_dtype(params)
    zeros = jnp.zeros([h.num_betas], dtype)
    s = jnp.ones([h.num_betas], dtype) * h.s_init
    return MechanicState(
        h.base_init(params), jnp.zeros([], jnp.int32), zeros, zeros, zeros, s, params
    )


def _mechanic_update(h, updates, state, params=None, **extra_args):
    require_params(params, "mechanize")
    if accepts_extra_args(h.base_update):
        base, base_state = h.base_update(updates, state.base_optimizer_state, params, **extra_args)
    else:
        base, base_state = h.base_update(updates, state.base_optimizer_state, params)
    x0 = jax.lax.cond(state.count == 0, lambda: params, lambda: state.x0)
    s_sum = jnp.sum(state.s)
    grad_norm, param_norm = jnp.sqrt(tree_sq_norm(updates)), jnp.sqrt(tree_sq_norm(params))
    decayed = tree_map(
        lambda g, p: g + h.weight_decay * s_sum * grad_norm / (param_norm + h.eps) * p,
        updates,
        params,
    )
    delta_prev = tree_map(lambda p, q: (q - p) / (s_sum + h.eps), params, x0)
    delta = tree_map(lambda d, u: d - u, delta_prev, base)
    hh = tree_vdot(decayed, delta_prev)
    clipped = jax.lax.clamp(-state.m, jnp.ones_like(state.m) * hh, state.m)
    betas = jnp.array([1.0 - 0.1**j for j in range(1, h.num_betas + 1)], dtype=state.s.dtype)
    m = jnp.maximum(betas * state.m, jnp.abs(hh) + h.eps)
    v = (betas**2) * state.v + hh**2
    r = betas * state.r + clipped * state.s
    wealth = (h.s_init / jnp.size(betas)) * m + jnp.maximum(0.0, r)
    s = wealth / (jnp.sqrt(v) + h.eps)
    new = tree_map(lambda q, d, p: (q - jnp.sum(s) * d) - p, x0, delta, params)
    return new, MechanicState(base_state, safe_increment(state.count), r, m, v, s, x0)
