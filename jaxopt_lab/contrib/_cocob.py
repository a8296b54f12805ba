r"""COCOB-Backprop (Orabona & Tommasi, *Training Deep Networks without Learning Rates
Through Coin Betting*, 2017, arXiv:1705.07795) and AdaBelief-style ACProp (Zhuang et
al., *Momentum Centering and Asynchronous Update for Adaptive Gradient Methods*, 2021,
arXiv:2110.05454)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    bind,
    chain,
    safe_increment,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.contrib._common import (
    bias_correct,
    check_all,
    check_unit,
    decay_rates,
    ema,
    ema_sq,
    require_params,
)
from jaxopt_lab.transforms import ScaleByBeliefState


class COCOBState(NamedTuple):
    init_particles: Any
    cumulative_gradients: Any
    scale: Any
    subgradients: Any
    reward: Any


def scale_by_cocob(alpha: Any = 100.0, eps: Any = 1e-8) -> Optimizer:
    r"""COCOB-Backprop (Orabona & Tommasi, 2017), per coordinate, with :math:`c_t` the
    incoming update
    (a gradient times the learning rate):

    .. math::
        L_t = \max(L_{t-1}, |c_t|),\ G_t = G_{t-1} + |c_t|,\
        R_t = \max(R_{t-1} - c_t (p_t - p_0), 0),\ C_t = C_{t-1} - c_t,\\
        p_{t+1} = p_0 + \frac{C_t}{L_t \max(G_t + L_t, \alpha L_t)}\,(L_t + R_t)

    from :math:`L_0 = \epsilon`; the update is :math:`p_{t+1} - p_t`.
    """
    check_all(alpha=alpha, eps=eps)
    return Optimizer(bind(_cocob_init, eps=eps), bind(_cocob_update, alpha=alpha))


def _cocob_init(h, params):
    zeros = tree_zeros_like(params)
    scale = tree_map(lambda p: h.eps * jnp.ones_like(p), params)
    return COCOBState(params, zeros, scale, zeros, zeros)


def _cocob_update(h, updates, state, params=None, **extra_args):
    del extra_args
    require_params(params, "COCOB")
    p0 = state.init_particles
    scale = tree_map(lambda L, c: jnp.maximum(L, jnp.abs(c)), state.scale, updates)
    sub = tree_map(lambda G, c: G + jnp.abs(c), state.subgradients, updates)
    reward = tree_map(
        lambda R, c, p, q: jnp.maximum(R - c * (p - q), 0), state.reward, updates, params, p0
    )
    cum = tree_map(lambda C, c: C - c, state.cumulative_gradients, updates)
    new = tree_map(
        lambda p, q, C, L, G, R: -p + (q + C / (L * jnp.maximum(G + L, h.alpha * L)) * (L + R)),
        params,
        p0,
        cum,
        scale,
        sub,
        reward,
    )
    return new, COCOBState(p0, cum, scale, sub, reward)


def cocob(
    learning_rate: ScalarOrSchedule = 1.0,
    alpha: Any = 100.0,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""COCOB (Orabona & Tommasi, 2017): weight decay where ``mask``, times :math:`+\eta`
    (a gradient scale,
    default 1), then :func:`scale_by_cocob`."""
    return chain(
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_cocob(alpha, eps),
    )


def scale_by_acprop(
    b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-16, eps_root: Any = 1e-16
) -> Optimizer:
    r"""ACProp's (Zhuang et al., 2021) direction: the *current* gradient over the
    *previous* centred second
    moment,

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_{t-1})^2 + \epsilon_{root},\quad
        u_t = \frac{g_t}{\sqrt{s_{t-1}/(1-\beta_2^{t-1})} + \epsilon}

    (:math:`u_1 = g_1 / (1 + \epsilon)`).
    """
    check_unit(b1=b1, b2=b2)
    check_all(eps=eps, eps_root=eps_root)
    return Optimizer(
        bind(_acprop_init),
        bind(
            _acprop_update,
            **decay_rates(b1, b2),
            eps=eps,
            eps_root=eps_root,
        ),
    )


def _acprop_init(h, params):
    del h
    zeros = tree_zeros_like(params)
    return ScaleByBeliefState(jnp.zeros([], jnp.int32), zeros, zeros)


def _acprop_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    mu = ema(updates, state.mu, h.b1, h.one_minus_b1)
    error = tree_map(lambda g, m: g - m, updates, state.mu)
    nu = tree_map(lambda v: v + h.eps_root, ema_sq(error, state.nu, h.b2, h.one_minus_b2))
    count = safe_increment(state.count)
    first = state.count == 0
    nu_hat = bias_correct(state.nu, h.b2, jnp.where(first, count, state.count))
    nu_hat = tree_map(lambda v: jnp.where(first, 1, v), nu_hat)
    new = tree_map(lambda g, v: g / (jnp.sqrt(v) + h.eps), updates, nu_hat)
    return new, ScaleByBeliefState(count, mu, nu)


def acprop(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""ACProp (Zhuang et al., 2021): :func:`scale_by_acprop`, decoupled weight decay where
    ``mask``, then
    :math:`-\eta`."""
    return chain(
        scale_by_acprop(b1, b2, eps, eps_root),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )
