r"""Differentially private SGD (Abadi et al., *Deep Learning with Differential Privacy*,
2016, arXiv:1607.00133): clip each example's gradient, sum, add Gaussian noise, average.

Unlike other transforms these take *per-example* gradients: every leaf has a leading
batch axis (``jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)``), so they go
first in a chain, and gradient accumulators (``MultiSteps``, ``apply_every``) do not
compose with them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import transforms as T
from jaxopt_lab._tree import global_norm
from jaxopt_lab.base import Optimizer, ScalarOrSchedule, bind, chain, identity
from jaxopt_lab.checks import check_flag, check_hyperparameter
from jaxopt_lab.errors import InputTypeError, InputValueError


class DifferentiallyPrivateAggregateState(NamedTuple):
    """The random key of the next step's noise."""

    rng_key: jax.Array


def _check_key(key: Any, seed: Any) -> Any:
    """An int seed or a ``jax.random`` key (typed, or raw uint32 of shape (2,))."""
    if seed is not None:
        if key is not None:
            raise InputValueError("Give `key` or `seed` (deprecated), not both.")
        key, name = seed, "seed"
    else:
        key, name = (0 if key is None else key), "key"
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return key
    if isinstance(key, (jax.Array, np.ndarray)):  # tracers too (a sweep over seeds)
        dtype = key.dtype
        if (
            jnp.issubdtype(dtype, jax.dtypes.prng_key)
            or (key.shape[-1:] == (2,) and dtype == np.uint32)
            or (key.ndim == 0 and jnp.issubdtype(dtype, jnp.integer))
        ):
            return key
    raise InputTypeError(f"`{name}` must be a jax.random key or an int seed, got {key!r}.")


def differentially_private_aggregate(
    l2_norm_clip: Any,
    noise_multiplier: Any,
    key: Any = None,
    *,
    seed: int | None = None,
) -> Optimizer:
    r"""DP-SGD's (Abadi et al., 2016) aggregation of per-example gradients :math:`g_1, \dots, g_B`:

    .. math::
        u = \frac{1}{B}\Big(\sum_{b=1}^{B} g_b \min\!\big(1, \tfrac{C}{\|g_b\|}\big)
            + \sigma C\, \xi\Big), \qquad \xi \sim N(0, I),

    with :math:`C` = ``l2_norm_clip`` (the norm :math:`\|g_b\|` is over all leaves of
    example :math:`b`) and :math:`\sigma` = ``noise_multiplier``. Each step splits the
    state's key into a new key and one key per leaf, in leaf order, so the same ``key``
    gives the same draws as optax. ``key`` is a ``jax.random`` key or an int seed (None
    means seed 0; ``seed=`` is its deprecated spelling); a raw uint32 key such as
    ``jax.random.PRNGKey(s)`` draws as ``jax.random.key(s)``. ``l2_norm_clip``,
    ``noise_multiplier`` and the key are pytree leaves.
    """
    check_hyperparameter("l2_norm_clip", l2_norm_clip)
    check_hyperparameter("noise_multiplier", noise_multiplier)
    key = _check_key(key, seed)
    return Optimizer(
        bind(_dp_init, key=key),
        bind(
            _dp_update,
            l2_norm_clip=l2_norm_clip,
            noise_multiplier=noise_multiplier,
            # derived once, in float64 for Python floats, as optax does
            noise_std=l2_norm_clip * noise_multiplier,
        ),
    )


def _typed_key(key: Any) -> jax.Array:
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return jax.random.wrap_key_data(key)
    return jax.random.key(key)


def _dp_init(h, params):
    del params
    return DifferentiallyPrivateAggregateState(rng_key=_typed_key(h.key))


def _check_batched(updates: Any) -> int:
    leaves = jax.tree.leaves(updates)
    if not leaves or not all(
        jnp.ndim(g) >= 1 and jnp.shape(g)[0] == jnp.shape(leaves[0])[0] for g in leaves
    ):
        raise InputValueError(
            "`updates` must be per-example gradients, every leaf with the same batch size "
            f"as its first axis; got shapes {jax.tree.map(jnp.shape, updates)}."
        )
    return jnp.shape(leaves[0])[0]


def _dp_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    batch_size = _check_batched(updates)
    leaves, treedef = jax.tree.flatten(updates)
    norms = jax.vmap(global_norm)(leaves)
    factors = jnp.nan_to_num(jnp.minimum(h.l2_norm_clip / norms, 1.0), nan=1.0)
    summed = [jnp.tensordot(factors, g, axes=1) for g in leaves]
    rng_key, *keys = jax.random.split(state.rng_key, len(leaves) + 1)
    noised = [
        (g + h.noise_std * jax.random.normal(k, g.shape, g.dtype)) / batch_size
        for g, k in zip(summed, keys, strict=True)
    ]
    return treedef.unflatten(noised), DifferentiallyPrivateAggregateState(rng_key=rng_key)


def dpsgd(
    learning_rate: ScalarOrSchedule,
    l2_norm_clip: Any,
    noise_multiplier: Any,
    seed: int,
    momentum: Any = None,
    nesterov: bool = False,
) -> Optimizer:
    r"""DP-SGD (Abadi et al., 2016): :func:`differentially_private_aggregate` (keyed by
    ``seed``), then
    momentum (:func:`~jaxopt_lab.trace`, when ``momentum`` is not None), then
    :math:`-\eta`. Takes per-example gradients (a leading batch axis on every leaf)."""
    check_hyperparameter("momentum", momentum, allow_none=True)
    check_flag("nesterov", nesterov)
    return chain(
        differentially_private_aggregate(l2_norm_clip, noise_multiplier, _seed(seed)),
        identity() if momentum is None else T.trace(decay=momentum, nesterov=nesterov),
        T.scale_by_learning_rate(learning_rate),
    )


def _seed(seed: Any) -> Any:
    if seed is None:
        raise InputTypeError("`seed` must be an int seed or a jax.random key, got None.")
    try:
        return _check_key(seed, None)
    except InputTypeError:
        raise InputTypeError(
            f"`seed` must be an int seed or a jax.random key, got {seed!r}."
        ) from None
