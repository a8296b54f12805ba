r"""Sharpness-aware minimisation (Foret et al., *Sharpness-Aware Minimization for
Efficiently Improving Generalization*, 2021, arXiv:2010.01412): step on the gradient
taken at an adversarially perturbed point :math:`p + \rho\, g/\|g\|`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.base import (
    EmptyState,
    Optimizer,
    Static,
    apply_updates,
    bind,
    stateless,
    tree_map,
)
from jaxopt_lab.checks import check_count, check_flag, check_optimizer
from jaxopt_lab.contrib._common import require_params, tree_sq_norm
from jaxopt_lab.errors import InputValueError

NormalizeState = EmptyState


def normalize() -> Optimizer:
    r"""Scale to unit global norm: :math:`u = g / \|g\|`."""
    return stateless(_normalize)


def _normalize(h, updates, params):
    del h, params
    norm = jnp.sqrt(tree_sq_norm(updates))
    return tree_map(lambda g: g / norm, updates)


class SAMState(NamedTuple):
    steps_since_sync: jax.Array
    opt_state: Any
    adv_state: Any
    cache: Any


def sam(
    optimizer: Any,
    adv_optimizer: Any,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> Optimizer:
    r"""SAM (Foret et al., 2021) as a cycle of ``sync_period`` steps: ``sync_period - 1``
    adversarial steps
    (the negated updates of ``adv_optimizer``, e.g. ``chain(normalize(), sgd(rho))``,
    which *ascend*) from the cached params :math:`p_c`, then one ``optimizer`` step from
    :math:`p_c` with the gradient at the perturbed point:
    :math:`p \leftarrow p_c + \operatorname{opt}(g(\tilde p))`.

    Transparent mode (default): each call is one step of the cycle, so the training
    loop computes every gradient. ``opaque_mode=True``: each call runs the whole cycle
    and needs ``grad_fn=`` (``grad_fn(params, i) -> grads``); gradients are averaged
    over ``batch_axis_name`` when given. ``reset_state`` re-initialises the adversary's
    state after each cycle.
    """
    check_optimizer(optimizer, "optimizer")
    check_optimizer(adv_optimizer, "adv_optimizer")
    check_count("sync_period", sync_period)
    check_flag("reset_state", reset_state)
    check_flag("opaque_mode", opaque_mode)
    return Optimizer(
        bind(
            _sam_init,
            opt_init=optimizer.init,
            adv_init=adv_optimizer.init,
            opaque=Static(opaque_mode),
        ),
        bind(
            _sam_update,
            opt_update=optimizer.update,
            adv_update=adv_optimizer.update,
            adv_init=adv_optimizer.init,
            period=Static(sync_period),
            reset=Static(reset_state),
            opaque=Static(opaque_mode),
            axis=Static(batch_axis_name),
        ),
    )


def _sam_init(h, params):
    return SAMState(
        jnp.zeros((), jnp.int32),
        h.opt_init(params),
        h.adv_init(params),
        None if h.opaque else params,
    )


def _pick(cond, if_true, if_false):
    # arithmetic blend rather than a select: it is what the reference computes
    return jax.tree.map(lambda t, f: cond * t + (1 - cond) * f, if_true, if_false)


def _sam_update(h, updates, state, params=None, *, grad_fn=None, **extra_args):
    del extra_args
    require_params(params, "sam")
    if h.opaque:
        return _opaque_update(h, updates, state, params, grad_fn)
    first, last = state.steps_since_sync == 0, state.steps_since_sync == h.period - 1
    adv, adv_state = h.adv_update(updates, state.adv_state, params)
    adv = tree_map(lambda x: -x, adv)
    opt, opt_state = h.opt_update(updates, state.opt_state, state.cache)
    opt = tree_map(lambda c, p, u: c - p + u, state.cache, params, opt)
    cache = _pick(first, params, state.cache)
    new = _pick(last, opt, adv)
    restart = h.adv_init(params) if h.reset else state.adv_state
    adv_state = _pick(last, restart, adv_state)
    opt_state = _pick(last, opt_state, state.opt_state)
    steps = (state.steps_since_sync + 1) % h.period
    return new, SAMState(steps, opt_state, adv_state, cache)


def _opaque_update(h, updates, state, params, grad_fn):
    if grad_fn is None:
        raise InputValueError("sam(opaque_mode=True) needs `grad_fn=` in update.")
    adv_params, adv_updates, adv_state = params, updates, state.adv_state
    for i in range(h.period - 1):
        adv_updates, adv_state = h.adv_update(adv_updates, adv_state, adv_params)
        adv_params = apply_updates(adv_params, tree_map(lambda x: -x, adv_updates))
        adv_updates = grad_fn(adv_params, i)
        if h.axis is not None:
            adv_updates = jax.lax.pmean(adv_updates, axis_name=h.axis)
    if h.reset:
        adv_state = h.adv_init(params)
    new, opt_state = h.opt_update(adv_updates, state.opt_state, params)
    return new, SAMState(jnp.zeros((), jnp.int32), opt_state, adv_state, None)
