r"""Reduce the learning rate on a plateau (as PyTorch's ``ReduceLROnPlateau``): a
transform that multiplies the updates by a scale, cut by ``factor`` whenever the loss
``value=`` has not improved for ``patience`` accumulated evaluations."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.base import Optimizer, bind, complement, safe_increment, tree_map
from jaxopt_lab.checks import check_hyperparameter, is_concrete
from jaxopt_lab.contrib._common import check_all, lowest_dtype
from jaxopt_lab.errors import InputValueError


class ReduceLROnPlateauState(NamedTuple):
    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array
    avg_value: jax.Array


def reduce_on_plateau(
    factor: Any = 0.1,
    patience: Any = 10,
    rtol: Any = 1e-4,
    atol: Any = 0.0,
    cooldown: Any = 0,
    accumulation_size: Any = 1,
    min_scale: Any = 0.0,
) -> Optimizer:
    r"""Scale updates by :math:`s`. The loss ``value=`` is averaged over
    ``accumulation_size`` calls; each average :math:`\bar f` improves when
    :math:`\bar f < (1-\text{rtol})\, f_{best} - \text{atol}`. After ``patience``
    averages without improvement (outside a ``cooldown`` of that many averages after a
    cut), :math:`s \leftarrow \max(\text{factor}\cdot s, \text{min\_scale})`.
    Call ``update(updates, state, params, value=loss)``.
    """
    check_hyperparameter("factor", factor, low=0.0, high=1.0)
    check_hyperparameter("rtol", rtol, low=0.0, high=1.0)
    check_all(atol=atol, patience=patience, cooldown=cooldown, min_scale=min_scale)
    check_all(low=1, accumulation_size=accumulation_size)
    _check_open(factor, rtol, atol)
    return Optimizer(
        bind(_plateau_init),
        bind(
            _plateau_update,
            factor=factor,
            patience=patience,
            one_minus_rtol=complement(rtol),
            atol=atol,
            cooldown=cooldown,
            accumulation_size=accumulation_size,
            min_scale=min_scale,
        ),
    )


def _check_open(factor, rtol, atol) -> None:
    """factor in (0, 1), and rtol or atol positive (checked when concrete)."""
    if is_concrete(factor) and not np.all((0.0 < np.asarray(factor)) & (np.asarray(factor) < 1.0)):
        raise InputValueError(f"`factor` must be in (0, 1), got {factor!r}.")
    if all(is_concrete(x) and np.all(np.asarray(x) == 0.0) for x in (rtol, atol)):
        raise InputValueError("`rtol` or `atol` must be positive, got both 0.")


def _plateau_init(h, params):
    del h
    dtypes = [jnp.result_type(x) for x in jax.tree.leaves(params)] or [jnp.result_type(float)]
    highest = jnp.result_type(*dtypes)
    zero = jnp.asarray(0, jnp.int32)
    return ReduceLROnPlateauState(
        scale=jnp.asarray(1.0, lowest_dtype(params)),
        best_value=jnp.asarray(float("inf"), highest),
        plateau_count=zero,
        cooldown_count=zero,
        count=zero,
        avg_value=jnp.asarray(0.0, highest),
    )


def _new_scale(h, state):
    """Called once ``accumulation_size`` values are averaged."""
    improved = state.avg_value < h.one_minus_rtol * state.best_value - h.atol
    best = jnp.where(improved, state.avg_value.astype(state.best_value.dtype), state.best_value)
    plateau = jnp.where(improved, 0, safe_increment(state.plateau_count))

    def cooling():
        return jnp.asarray(0, jnp.int32), state.scale, state.cooldown_count - 1

    def watching():
        cut = plateau == h.patience
        scale = jnp.maximum(jnp.where(cut, state.scale * h.factor, state.scale), h.min_scale)
        return jnp.where(cut, 0, plateau), scale, jnp.where(cut, h.cooldown, 0).astype(jnp.int32)

    plateau, scale, cooldown = jax.lax.cond(state.cooldown_count > 0, cooling, watching)
    return ReduceLROnPlateauState(
        scale.astype(state.scale.dtype),
        best.astype(state.best_value.dtype),
        plateau.astype(jnp.int32),
        cooldown,
        jnp.asarray(0, jnp.int32),
        jnp.asarray(0.0, state.avg_value.dtype),
    )


def _plateau_update(h, updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None:
        raise InputValueError("reduce_on_plateau needs the loss: `update(..., value=loss)`.")
    count = safe_increment(state.count)
    avg = (state.count * state.avg_value + jnp.asarray(value, state.avg_value.dtype)) / count
    state = state._replace(avg_value=avg.astype(state.avg_value.dtype), count=count)
    state = jax.lax.cond(
        count == h.accumulation_size, lambda s: _new_scale(h, s), lambda s: s, state
    )
    return tree_map(lambda g: state.scale * g, updates), state
