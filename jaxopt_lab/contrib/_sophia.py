r"""Sophia (Liu et al., *Sophia: A Scalable Stochastic Second-order Optimizer for
Language Model Pre-training*, 2023, arXiv:2305.14342): momentum divided by a clipped
estimate of the Hessian's diagonal."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    accepts_extra_args,
    bind,
    chain,
    safe_increment,
    tree_cast,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import canonical_dtype, check_flag, check_key, check_optimizer
from jaxopt_lab.contrib._common import (
    bias_correct,
    check_all,
    check_unit,
    decay_rates,
    ema,
    lowest_dtype,
    require_params,
)
from jaxopt_lab.errors import InputValueError


class HutchinsonState(NamedTuple):
    key: jax.Array


def hutchinson_estimator_diag_hessian(random_seed: Any = None) -> Optimizer:
    r"""Hutchinson's estimate of the Hessian's diagonal, :math:`z \odot (\nabla^2 f\, z)`
    with Rademacher :math:`z` (one key per leaf, split from the state's key each step).
    Its ``update`` needs ``obj_fn`` (the objective of the params) and the params."""
    key = jax.random.PRNGKey(0) if random_seed is None else random_seed
    key = check_key(key, "random_seed")
    return Optimizer(bind(_hutchinson_init, key=key), bind(_hutchinson_update))


def _hutchinson_init(h, params):
    del params
    return HutchinsonState(h.key)


def _hutchinson_update(h, updates, state, params=None, obj_fn=None, **extra_args):
    del h, updates, extra_args
    if params is None or obj_fn is None:
        raise InputValueError("Sophia's Hessian estimate needs `params` and `obj_fn=`.")
    key, sub = jax.random.split(state.key)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(sub, treedef.num_leaves)
    dtype = lowest_dtype(params)
    signs = treedef.unflatten(
        [
            jax.random.rademacher(k, x.shape, jnp.float32).astype(dtype)
            for k, x in zip(keys, leaves, strict=True)
        ]
    )
    hvp = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
    return tree_map(lambda a, z: a * z, hvp, signs), HutchinsonState(key)


class SophiaState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    hessian_fn_state: Any


def scale_by_sophia(
    b1: Any = 0.965,
    b2: Any = 0.99,
    eps: Any = 1e-8,
    gamma: Any = 0.01,
    clip_threshold: Any = 1.0,
    update_interval: Any = 10,
    hessian_diagonal_fn: Any = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: Any = 0,
) -> Optimizer:
    r"""Sophia's (Liu et al., 2024) direction:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        u_t = \operatorname{clip}\!\Big(\frac{m_t/(1-\beta_1^t)}{\max(\gamma h_{t-1},
              \epsilon)},\ \pm\rho\Big)

    (no clip when ``clip_threshold`` :math:`\rho` is None), and every
    ``update_interval`` steps (from the first) :math:`h \leftarrow \beta_2 h +
    (1-\beta_2)\hat H` with :math:`\hat H` from ``hessian_diagonal_fn`` (default
    :func:`hutchinson_estimator_diag_hessian`), which receives the update's extra
    arguments (``obj_fn=``). ``verbose`` prints the unclipped fraction every
    ``print_win_rate_every_n_steps`` steps.
    """
    hessian_diagonal_fn = hessian_diagonal_fn or hutchinson_estimator_diag_hessian()
    check_optimizer(hessian_diagonal_fn, "hessian_diagonal_fn")
    check_unit(b1=b1, b2=b2)
    check_all(eps=eps, gamma=gamma, update_interval=update_interval)
    check_all(print_win_rate_every_n_steps=print_win_rate_every_n_steps)
    if clip_threshold is not None:
        check_all(clip_threshold=clip_threshold)
    check_flag("verbose", verbose)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_sophia_init, hess_init=hessian_diagonal_fn.init, mu_dtype=mu_dtype),
        bind(
            _sophia_update,
            **decay_rates(b1, b2),
            eps=eps,
            gamma=gamma,
            clip=clip_threshold,
            interval=update_interval,
            hess_update=hessian_diagonal_fn.update,
            mu_dtype=mu_dtype,
            verbose=Static(verbose),
            print_every=print_win_rate_every_n_steps,
        ),
    )


def _sophia_init(h, params):
    return SophiaState(
        jnp.zeros([], jnp.int32),
        tree_zeros_like(params, h.mu_dtype),
        tree_zeros_like(params),
        h.hess_init(params),
    )


def _clip_and_report(h, updates, count):
    if h.clip is None:
        return updates
    if h.verbose:
        kept = sum(jnp.sum(jnp.abs(u) < h.clip) for u in jax.tree.leaves(updates))
        rate = kept / sum(u.size for u in jax.tree.leaves(updates))
        jax.lax.cond(
            count % h.print_every == 0,
            lambda: jax.debug.print("Sophia optimizer win rate: {}", rate),
            lambda: None,
        )
    return tree_map(lambda u: jnp.clip(u, -h.clip, h.clip), updates)


def _sophia_update(h, updates, state, params=None, **extra_args):
    require_params(params, "Sophia")
    count = safe_increment(state.count)
    mu = ema(updates, state.mu, h.b1, h.one_minus_b1)
    direction = tree_map(
        lambda m, d: m / jnp.maximum(h.gamma * d, h.eps), bias_correct(mu, h.b1, count), state.nu
    )
    direction = _clip_and_report(h, direction, count)

    def refresh(hess_state, nu):
        # the Hessian estimate sees the update's extra arguments (obj_fn=)
        if accepts_extra_args(h.hess_update):
            diag, hess_state = h.hess_update(updates, hess_state, params, **extra_args)
        else:
            diag, hess_state = h.hess_update(updates, hess_state, params)
        return hess_state, ema(diag, nu, h.b2, h.one_minus_b2)

    hess_state, nu = jax.lax.cond(
        state.count % h.interval == 0,
        refresh,
        lambda s, n: (s, n),
        state.hessian_fn_state,
        state.nu,
    )
    return direction, SophiaState(count, tree_cast(mu, h.mu_dtype), nu, hess_state)


def sophia(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.965,
    b2: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 1e-4,
    weight_decay_mask: Any = None,
    gamma: Any = 0.01,
    clip_threshold: Any = 1.0,
    update_interval: Any = 10,
    hessian_diagonal_fn: Any = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: Any = 0,
) -> Optimizer:
    r"""Sophia (Liu et al., 2024): :func:`scale_by_sophia`, decoupled weight decay where
    ``weight_decay_mask``, then :math:`-\eta`. Call ``update(grads, state, params,
    obj_fn=f)`` with ``f(params)`` the objective (its Hessian is probed)."""
    return chain(
        scale_by_sophia(
            b1,
            b2,
            eps,
            gamma,
            clip_threshold,
            update_interval,
            hessian_diagonal_fn,
            mu_dtype,
            verbose,
            print_win_rate_every_n_steps,
        ),
        T.add_decayed_weights(weight_decay, weight_decay_mask),
        T.scale_by_learning_rate(learning_rate),
    )
