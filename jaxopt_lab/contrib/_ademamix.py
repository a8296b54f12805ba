r"""AdEMAMix (Pagliardini et al., *The AdEMAMix Optimizer: Better, Faster, Older*,
2024, arXiv:2409.03137) and its simplified form (Morwani et al., 2025,
arXiv:2502.02431): Adam plus a second, much slower momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    bind,
    chain,
    complement,
    safe_increment,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import canonical_dtype, check_hyperparameter
from jaxopt_lab.contrib._common import (
    bias_correct,
    check_all,
    check_unit,
    decay_rates,
    ema,
    ema_sq,
    schedule_value,
)


class ScaleByAdemamixState(NamedTuple):
    count: jax.Array
    count_m2: jax.Array
    m1: Any
    m2: Any
    nu: Any


def scale_by_ademamix(
    b1: Any = 0.9,
    b2: Any = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
) -> Optimizer:
    r"""AdEMAMix's (Pagliardini, Ablin & Grangier, 2024) direction:

    .. math::
        m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t,\quad
        m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
        u_t = \frac{m^{(1)}_t/(1-\beta_1^t) + \alpha\, m^{(2)}_t}
                   {\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}

    (the slow momentum is not bias-corrected); ``b3`` and ``alpha`` may be schedules.
    """
    check_unit(b1=b1, b2=b2)
    check_hyperparameter("b3", b3, high=1.0, allow_schedule=True)
    check_hyperparameter("alpha", alpha, low=None, allow_schedule=True)
    check_all(eps=eps, eps_root=eps_root)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_ademamix_init, mu_dtype=mu_dtype),
        bind(
            _ademamix_update,
            **decay_rates(b1, b2),
            b3=b3,
            # a constant rate's complement is taken once, in float64 (as optax does)
            one_minus_b3=None if callable(b3) else complement(b3),
            alpha=alpha,
            eps=eps,
            eps_root=eps_root,
        ),
    )


def _ademamix_init(h, params):
    zero = jnp.zeros([], jnp.int32)
    zeros = tree_zeros_like(params, h.mu_dtype)
    return ScaleByAdemamixState(zero, zero, zeros, zeros, zeros)


def _ademamix_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    b3 = schedule_value(h.b3, state.count_m2)
    one_minus_b3 = 1 - b3 if h.one_minus_b3 is None else h.one_minus_b3
    alpha = schedule_value(h.alpha, state.count_m2)
    m1 = ema(updates, state.m1, h.b1, h.one_minus_b1)
    m2 = ema(updates, state.m2, b3, one_minus_b3)
    nu = ema_sq(updates, state.nu, h.b2, h.one_minus_b2)
    count = safe_increment(state.count)
    new = tree_map(
        lambda a, b, v: (a + alpha * b) / (jnp.sqrt(v + h.eps_root) + h.eps),
        bias_correct(m1, h.b1, count),
        m2,
        bias_correct(nu, h.b2, count),
    )
    return new, ScaleByAdemamixState(count, safe_increment(state.count_m2), m1, m2, nu)


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""AdEMAMix (Pagliardini, Ablin & Grangier, 2024): :func:`scale_by_ademamix`,
    decoupled weight decay where ``mask``,
    then :math:`-\eta`."""
    return chain(
        scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    t: jax.Array
    m: Any
    n: Any


def scale_by_simplified_ademamix(
    b1: Any = 0.99,
    b2: Any = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
) -> Optimizer:
    r"""Simplified AdEMAMix's (Morwani et al., 2025) direction: an undamped momentum and an
    Adam denominator,

    .. math::
        m_t = g_t + \beta_1 m_{t-1},\quad n_t = g_t^2 + \beta_2 (n_{t-1} - g_t^2),\quad
        u_t = \frac{m_t + \alpha g_t}{\sqrt{n_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}.
    """
    check_unit(b1=b1, b2=b2)
    check_hyperparameter("alpha", alpha, low=None, allow_schedule=True)
    check_all(eps=eps, eps_root=eps_root)
    return Optimizer(
        bind(_simplified_init),
        bind(_simplified_update, b1=b1, b2=b2, alpha=alpha, eps=eps, eps_root=eps_root),
    )


def _simplified_init(h, params):
    del h
    zeros = tree_zeros_like(params)
    return ScaleBySimplifiedAdEMAMixState(jnp.array(0, jnp.int32), zeros, zeros)


def _simplified_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    alpha = schedule_value(h.alpha, state.t)
    m = tree_map(lambda g, m: g + h.b1 * m, updates, state.m)
    n = tree_map(lambda g, n: g * g + h.b2 * (n - g * g), updates, state.n)
    t = safe_increment(state.t)
    new = tree_map(
        lambda m, g, nh: (m + alpha * g) / (jnp.sqrt(nh + h.eps_root) + h.eps),
        m,
        updates,
        bias_correct(n, h.b2, t),
    )
    return new, ScaleBySimplifiedAdEMAMixState(t, m, n)


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.99,
    b2: Any = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""Simplified AdEMAMix (Morwani et al., 2025): :func:`scale_by_simplified_ademamix`,
    decoupled weight
    decay where ``mask``, then :math:`-\eta`."""
    return chain(
        scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )
