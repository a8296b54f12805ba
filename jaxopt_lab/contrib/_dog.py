r"""Distance-over-gradients step sizes: DoG (Ivgi et al., *DoG is SGD's Best Friend*,
2023, arXiv:2302.12022) and DoWG (Khaled et al., 2023, arXiv:2305.16284)."""

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
    identity,
    tree_map,
)
from jaxopt_lab.contrib._common import check_all, lowest_dtype, require_params, tree_sq_norm
from jaxopt_lab.errors import InputTypeError, InputValueError

INIT_STEPS = ("distance", "learning_rate", "heuristic")


def _distance_sq(params, init_params):
    return tree_sq_norm(jax.tree.map(lambda a, b: a - b, init_params, params))


class DoGState(NamedTuple):
    is_init_step: jax.Array
    init_params: Any
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array


def scale_by_dog(init_step: tuple[str, Any], eps: Any = 1e-8) -> Optimizer:
    r"""DoG's (Ivgi, Hinder & Carmon, 2023) step size: :math:`u_t = \eta_t g_t` with

    .. math::
        \eta_t = \frac{\max_{i\le t} \|p_i - p_0\|}{\sqrt{\sum_{i\le t}\|g_i\|^2 +
                 \epsilon}}

    where the running maximum starts at :math:`r_\epsilon`: ``("distance", r)`` gives
    :math:`r`, ``("heuristic", c)`` gives :math:`c(1 + \|p_0\|)`, and
    ``("learning_rate", \eta_0)`` starts at 0 and uses :math:`\eta_0` for the first step.
    """
    if not isinstance(init_step, (tuple, list)) or len(init_step) != 2:
        raise InputTypeError(f"`init_step` must be a pair (kind, value), got {init_step!r}.")
    kind, value = init_step
    if kind not in INIT_STEPS:
        raise InputValueError(f"`init_step`'s kind must be one of {INIT_STEPS}, got {kind!r}.")
    check_all(init_step=value, eps=eps)
    return Optimizer(
        bind(_dog_init, kind=Static(kind), value=value),
        bind(_dog_update, kind=Static(kind), value=value, eps=eps),
    )


def _dog_init(h, params):
    dtype = lowest_dtype(params)
    if h.kind == "distance":
        r_eps = h.value
    elif h.kind == "heuristic":
        r_eps = h.value * (1 + jnp.sqrt(tree_sq_norm(params)))
    else:
        r_eps = 0.0
    return DoGState(jnp.asarray(True), params, jnp.asarray(r_eps, dtype), jnp.asarray(0.0, dtype))


def _dog_update(h, updates, state, params=None, **extra_args):
    del extra_args
    require_params(params, "DoG")
    max_dist = jnp.maximum(state.max_dist, jnp.sqrt(_distance_sq(params, state.init_params)))
    sum_sq = state.sum_sq_norm_grads + tree_sq_norm(updates)
    lr = max_dist / jnp.sqrt(sum_sq + h.eps)
    if h.kind == "learning_rate":
        lr = jnp.where(state.is_init_step, h.value, lr)
    new = tree_map(lambda g: lr * g, updates)
    return new, DoGState(jnp.asarray(False), state.init_params, max_dist, sum_sq)


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step: tuple[str, Any] = ("heuristic", 1e-6),
    eps: Any = 1e-8,
    weight_decay: Any = None,
    mask: Any = None,
) -> Optimizer:
    r"""DoG (Ivgi, Hinder & Carmon, 2023): optional weight decay (before the step size, so
    it is scaled too),
    :func:`scale_by_dog`, then :math:`-\eta` (a multiplier, default 1)."""
    return chain(
        identity() if weight_decay is None else T.add_decayed_weights(weight_decay, mask),
        scale_by_dog(init_step, eps),
        T.scale_by_learning_rate(learning_rate),
    )


class DoWGState(NamedTuple):
    init_params: Any
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array


def scale_by_dowg(init_estim_sq_dist: Any = None, eps: Any = 1e-4) -> Optimizer:
    r"""DoWG's (Khaled, Mishchenko & Jin, 2023) step size: with :math:`\bar r_t^2 =
    \max(\bar r_{t-1}^2, \|p_t - p_0\|^2)`
    (from ``init_estim_sq_dist``, default ``eps``) and
    :math:`v_t = v_{t-1} + \bar r_t^2 \|g_t\|^2`,
    :math:`u_t = \bar r_t^2 g_t / (\sqrt{v_t} + \epsilon)`."""
    check_all(eps=eps)
    if init_estim_sq_dist is not None:
        check_all(init_estim_sq_dist=init_estim_sq_dist)
    init = eps if init_estim_sq_dist is None else init_estim_sq_dist
    return Optimizer(bind(_dowg_init, init=init), bind(_dowg_update, eps=eps))


def _dowg_init(h, params):
    dtype = lowest_dtype(params)
    return DoWGState(params, jnp.asarray(0.0, dtype), jnp.asarray(h.init, dtype))


def _dowg_update(h, updates, state, params=None, **extra_args):
    del extra_args
    require_params(params, "DoWG")
    sq_dist = jnp.maximum(state.estim_sq_dist, _distance_sq(params, state.init_params))
    weighted = sq_dist * tree_sq_norm(updates) + state.weighted_sq_norm_grads
    lr = sq_dist / (jnp.sqrt(weighted) + h.eps)
    return tree_map(lambda g: lr * g, updates), DoWGState(state.init_params, weighted, sq_dist)


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist: Any = None,
    eps: Any = 1e-4,
    weight_decay: Any = None,
    mask: Any = None,
) -> Optimizer:
    r"""DoWG (Khaled, Mishchenko & Jin, 2023): optional weight decay,
    :func:`scale_by_dowg`, then :math:`-\eta`."""
    return chain(
        identity() if weight_decay is None else T.add_decayed_weights(weight_decay, mask),
        scale_by_dowg(init_estim_sq_dist, eps),
        T.scale_by_learning_rate(learning_rate),
    )
