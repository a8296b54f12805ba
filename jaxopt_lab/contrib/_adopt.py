r"""ADOPT (Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any* :math:`\beta_2`,
2024, arXiv:2411.02853): normalise by the *previous* second moment, then average."""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    bind,
    chain,
    safe_increment,
    tree_cast,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import canonical_dtype, check_callable, check_flag
from jaxopt_lab.contrib._common import check_all, check_unit, ema, ema_sq
from jaxopt_lab.transforms import ScaleByAdamState


def _quarter_power(count):
    return count**0.25


def scale_by_adopt(
    b1: Any = 0.9,
    b2: Any = 0.9999,
    eps: Any = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[Any], Any] = _quarter_power,
) -> Optimizer:
    r"""ADOPT's (Taniguchi et al., 2024) direction (the first step only fills :math:`v`):

    .. math::
        \tilde g_t = \operatorname{clip}\!\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)},
                     \pm c(t-1)\Big),\quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\tilde g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad u_t = m_t

    (Nesterov: :math:`u_t = \beta_1 m_t + (1-\beta_1)\tilde g_t`), where at
    :math:`t = 1` :math:`\beta_1 = 1` and :math:`\beta_2 = 0`, and the clip
    :math:`c(t) = t^{1/4}` (``clip_value_fn``) applies with ``use_clipping``.
    """
    check_unit(b1=b1, b2=b2)
    check_all(eps=eps)
    check_flag("nesterov", nesterov)
    check_flag("use_clipping", use_clipping)
    check_callable("clip_value_fn", clip_value_fn)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_adopt_init, mu_dtype=mu_dtype),
        bind(
            _adopt_update,
            b1=b1,
            b2=b2,
            eps=eps,
            mu_dtype=mu_dtype,
            nesterov=Static(nesterov),
            clip=Static(clip_value_fn if use_clipping else None),
        ),
    )


def _adopt_init(h, params):
    return ScaleByAdamState(
        jnp.zeros([], jnp.int32), tree_zeros_like(params, h.mu_dtype), tree_zeros_like(params)
    )


def _adopt_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    started = state.count > 0
    b1, b2 = jnp.where(started, h.b1, 1), jnp.where(started, h.b2, 0)
    nu = ema_sq(updates, state.nu, b2, 1 - b2)

    def normalised(g, v):
        x = g / jnp.maximum(jnp.sqrt(v), h.eps)
        if h.clip is None:
            return x
        bound = h.clip(state.count)
        return jnp.clip(x, -bound, bound)

    scaled = tree_map(normalised, updates, state.nu)
    mu = ema(scaled, state.mu, b1, 1 - b1)
    new = ema(scaled, mu, b1, 1 - b1) if h.nesterov else mu
    return new, ScaleByAdamState(safe_increment(state.count), tree_cast(mu, h.mu_dtype), nu)


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.9999,
    eps: Any = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[Any], Any] = _quarter_power,
) -> Optimizer:
    r"""ADOPT (Taniguchi et al., 2024): :func:`scale_by_adopt`, then :math:`-\eta`."""
    return chain(
        scale_by_adopt(
            b1,
            b2,
            eps,
            mu_dtype,
            nesterov=nesterov,
            use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
        ),
        T.scale_by_learning_rate(learning_rate),
    )
