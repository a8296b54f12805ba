"""Small tree helpers shared by the contrib optimizers (not public).

The moving averages, :math:`|g|^2` and the bias correction are the transforms' own
(``transforms._ema``, ``_tree.abs_sq``, ``transforms._bias_correct``), so that math has
one copy; tree reductions here add leaf sums in leaf order, as optax's do.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab._tree import abs_sq  # noqa: F401  (re-exported to the contrib modules)
from jaxopt_lab.base import complement
from jaxopt_lab.checks import check_hyperparameter
from jaxopt_lab.errors import InputValueError
from jaxopt_lab.transforms import _bias_correct as bias_correct  # noqa: F401  (re-exported)
from jaxopt_lab.transforms import _ema


def ema(updates: Any, moments: Any, decay, one_minus_decay, order: int = 1) -> Any:
    r""":math:`m \leftarrow (1-\beta)\, g + \beta\, m`, elementwise (the transforms' EMA)."""
    return _ema(updates, moments, decay, one_minus_decay, order)


def ema_sq(updates: Any, moments: Any, decay, one_minus_decay) -> Any:
    r""":math:`v \leftarrow (1-\beta)\, |g|^2 + \beta\, v`, elementwise."""
    return _ema(updates, moments, decay, one_minus_decay, 2)


def tree_sum(tree: Any) -> jax.Array:
    """Sum of every element of every leaf, leaf sums added in leaf order."""
    return functools.reduce(lambda a, b: a + b, [jnp.sum(x) for x in jax.tree.leaves(tree)], 0)


def tree_sq_norm(tree: Any) -> jax.Array:
    r""":math:`\sum_i |x_i|^2` over all leaves."""
    return jnp.asarray(
        tree_sum(jax.tree.map(lambda x: jnp.square(x.real) + jnp.square(x.imag), tree))
    )


def tree_vdot(a: Any, b: Any) -> jax.Array:
    r""":math:`\sum_i \bar a_i b_i` over all leaves, at the highest matmul precision."""
    dots = [
        jnp.tensordot(jnp.conj(x), y, x.ndim, precision=jax.lax.Precision.HIGHEST)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return functools.reduce(lambda s, d: s + d, dots, 0)


def lowest_dtype(params: Any) -> Any:
    """The floating dtype of least precision among the params' leaves (optax's
    choice for scalar state such as an estimated learning rate)."""
    dtypes = [jnp.result_type(x) for x in jax.tree.leaves(params)]
    if not dtypes:
        return jnp.result_type(float)
    return min(dtypes, key=lambda d: jnp.finfo(d).bits if jnp.issubdtype(d, jnp.floating) else 64)


def decay_rates(b1: Any, b2: Any) -> dict[str, Any]:
    """Two moment decay rates with their complements, taken once (in float64 from
    Python numbers, as optax's closures take them): ``b1, b2, one_minus_b1,
    one_minus_b2`` for :func:`~jaxopt_lab.base.bind`."""
    return dict(b1=b1, b2=b2, one_minus_b1=complement(b1), one_minus_b2=complement(b2))


def require_params(params: Any, name: str, call: str = "update(grads, state, params)") -> None:
    """An InputValueError unless ``params`` were passed: ``name`` needs them."""
    if params is None:
        raise InputValueError(f"{name} needs `params`: call `{call}`.")


def schedule_value(value, count):
    """``value(count)`` for a schedule, else ``value``."""
    return value(count) if callable(value) else value


def check_all(low: float | None = 0.0, **values: Any) -> None:
    """``check_hyperparameter`` for each ``name=value`` (numbers or arrays, ``>= low``)."""
    for name, value in values.items():
        check_hyperparameter(name, value, low=low)


def check_unit(**values: Any) -> None:
    """Decay rates: numbers in [0, 1]."""
    for name, value in values.items():
        check_hyperparameter(name, value, low=0.0, high=1.0)


# --------------------------------------------------------------------------------------
# Partition: a different transform per group of leaves
# --------------------------------------------------------------------------------------


def split(tree: Any, labels: Any, label: str) -> Any:
    """``tree`` with every leaf whose label is not ``label`` replaced by ``None`` (our
    transforms skip ``None`` leaves, so each group's state holds only its own leaves)."""
    part = jax.tree.map(lambda lab, x: x if lab == label else None, labels, tree)
    # params that are one bare leaf of another group: an empty tree, not ``None``, which
    # an update reads as "no params given" (weight decay would refuse it)
    return () if part is None and tree is not None else part


def merge(labels: Any, parts: dict[str, Any]) -> Any:
    """Inverse of :func:`split`: each leaf taken from its own group's tree."""
    names = tuple(parts)
    return jax.tree.map(lambda lab, *xs: xs[names.index(lab)], labels, *(parts[n] for n in names))
