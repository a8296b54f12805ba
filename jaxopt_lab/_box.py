"""Boxes for the bound-constrained solvers (:mod:`jaxopt_lab.bounded`): checking
bounds, broadcasting them to the params, the box projection, and keeping an update
inside the box despite rounding.

Bounds are held by the optimizers as ``(leaves, Static(structure))`` pairs
(:func:`pack_tree`): a tuple of arrays is bound as data, so a new bound value reuses the
compiled program and bounds can be vmapped.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._tree import Evaluated
from jaxopt_lab.base import HParams, Params, Static, bind
from jaxopt_lab.checks import check_params
from jaxopt_lab.errors import InputTypeError, InputValueError

# --------------------------------------------------------------------------------------
# Bounds: checks, broadcasting, projection
# --------------------------------------------------------------------------------------


def pack_tree(tree: Any) -> tuple[tuple, Static]:
    """A tree as (leaves, Static(structure)): a tuple of arrays is a hyperparameter whose
    leaves stay data (a dict or a NamedTuple of arrays would be bound as static config)."""
    leaves, treedef = jax.tree.flatten(tree)
    return tuple(leaves), Static(treedef)


def unpack_tree(leaves: tuple, treedef: Any) -> Any:
    treedef = treedef.value if isinstance(treedef, Static) else treedef
    return jax.tree.unflatten(treedef, leaves)


def _is_scalar_bound(bound: Any) -> bool:
    """A bare 0-d leaf (a number or a 0-d array), not a tree holding one: ``{"b": 1.0}``
    is a tree that must match the params, not a bound for every leaf."""
    return jax.tree_util.treedef_is_leaf(jax.tree.structure(bound)) and jnp.ndim(bound) == 0


def check_bound(name: str, bound: Any) -> Any:
    """A bound's leaves: Python numbers or floating arrays, not NaN (when concrete).
    None means unbounded. Returns the bound (None replaced by +-inf)."""
    if bound is None:
        return float("-inf") if name == "lower" else float("inf")
    leaves = jax.tree.leaves(bound)
    if not leaves:
        raise InputTypeError(f"`{name}` must be a number or a pytree of arrays, got {bound!r}.")
    for leaf in leaves:
        if isinstance(leaf, (bool, np.bool_)):
            raise InputTypeError(f"`{name}` must hold floats, got a bool: {leaf!r}.")
        if isinstance(leaf, numbers.Real):
            continue
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise InputTypeError(
                f"`{name}` must hold Python numbers or floating-point arrays, got "
                f"{type(leaf).__name__} of dtype {dtype}: {leaf!r}."
            )
    concrete = [np.asarray(x) for x in leaves if not isinstance(x, jax.core.Tracer)]
    if any(np.any(np.isnan(x)) for x in concrete):
        raise InputValueError(f"`{name}` must not be NaN, got {bound!r}.")
    wrong_inf = np.inf if name == "lower" else -np.inf
    if any(np.any(x == wrong_inf) for x in concrete):
        raise InputValueError(f"`{name}` must not be {wrong_inf}, got {bound!r}.")
    return bound


def check_order(lower: Any, upper: Any) -> None:
    """lower <= upper, entry by entry, where both are concrete and comparable now (a
    bound tree is checked against the params at ``init``)."""
    lo, hi = jax.tree.leaves(lower), jax.tree.leaves(upper)
    if _is_scalar_bound(lower) and not _is_scalar_bound(upper):
        lo = lo * len(hi)
    elif _is_scalar_bound(upper) and not _is_scalar_bound(lower):
        hi = hi * len(lo)
    elif jax.tree.structure(lower) != jax.tree.structure(upper):
        raise InputValueError(
            "`lower` and `upper` must be scalars or trees of the same structure, got "
            f"{jax.tree.structure(lower)} and {jax.tree.structure(upper)}."
        )
    for a, b in zip(lo, hi, strict=True):
        if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
            continue
        try:
            bad = np.any(np.asarray(a) > np.asarray(b))
        except ValueError:  # shapes that do not broadcast: init reports them
            continue
        if bad:
            raise InputValueError(f"`lower` must be <= `upper` everywhere, got {a!r} > {b!r}.")


def bound_tree(bound: Any, tree: Any, name: str) -> Any:
    """``bound`` with the structure of ``tree``: a scalar repeated, or a tree of the
    same structure whose leaves broadcast to ``tree``'s (checked at trace time)."""
    if jax.tree.structure(bound) == jax.tree.structure(tree):
        out = bound
    elif _is_scalar_bound(bound):
        b = jax.tree.leaves(bound)[0]
        out = jax.tree.map(lambda _: b, tree)
    else:
        raise InputValueError(
            f"`{name}` must be a scalar or a pytree with the params' structure; got "
            f"{jax.tree.structure(bound)}, params are {jax.tree.structure(tree)}."
        )
    for b, x in zip(jax.tree.leaves(out), jax.tree.leaves(tree), strict=True):
        try:
            ok = np.broadcast_shapes(jnp.shape(b), jnp.shape(x)) == jnp.shape(x)
        except ValueError:
            ok = False
        if not ok:
            raise InputValueError(
                f"`{name}` has a leaf of shape {jnp.shape(b)} for a param of shape "
                f"{jnp.shape(x)}; bounds must broadcast to the params."
            )
    return out


def projection_box(tree: Any, lower: Any, upper: Any) -> Any:
    r"""The Euclidean projection onto the box :math:`\{x: l \le x \le u\}`:
    :math:`\min(\max(x, l), u)` entry by entry (argument order of optax's
    ``optax.projections.projection_box``). ``lower``/``upper``: scalars or trees with
    ``tree``'s structure (leaves broadcastable to its leaves); each leaf keeps its dtype.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> jol.projection_box(jnp.array([-2.0, 0.5, 3.0]), 0.0, 1.0)
    Array([0. , 0.5, 1. ], dtype=float32)
    """
    lo = bound_tree(lower, tree, "lower")
    hi = bound_tree(upper, tree, "upper")
    return jax.tree.map(
        lambda x, a, b: jnp.minimum(jnp.maximum(x, a), b).astype(jnp.result_type(x)),
        tree, lo, hi,
    )  # fmt: skip


def _project_box(h: HParams, tree: Params) -> Params:
    return projection_box(tree, unpack_tree(*h.lower), unpack_tree(*h.upper))


def flat_bounds(lower: Any, upper: Any, params: Params, dtype: Any):
    """The bounds broadcast to the params and flattened as ``ravel_pytree`` does."""

    def flat(bound, name):
        tree = bound_tree(bound, params, name)
        full = jax.tree.map(
            lambda b, p: jnp.broadcast_to(jnp.asarray(b, dtype), jnp.shape(p)), tree, params
        )
        return ravel_pytree(full)[0].astype(dtype)

    return flat(lower, "lower"), flat(upper, "upper")


def feasible_step(x: jax.Array, target: jax.Array, lo: jax.Array, hi: jax.Array):
    """An update ``u`` with ``x + u`` (as ``apply_updates`` rounds it) inside the box and
    within rounding of ``target`` (a point of the box). ``target - x`` alone may land a
    float outside when the two are far apart; one step of ``u`` towards the box fixes
    it, since ``x + u`` then errs by at most half a float of ``u`` the other way."""
    u = target - x
    z = x + u
    u = jnp.where(z < lo, jnp.nextafter(u, jnp.inf), u)
    return jnp.where(z > hi, jnp.nextafter(u, -jnp.inf), u)


def dot(a: jax.Array, b: jax.Array) -> jax.Array:
    # multiply-and-sum: vmapped, a dot becomes a batched BLAS call per member on CPU
    return jnp.sum(a * b)


def flat_start(params: Params) -> tuple[jax.Array, Any]:
    check_params(params)
    x, _ = ravel_pytree(params)
    return x, jnp.full((), jnp.nan, x.dtype)


def empty_record(params: Params, nan: jax.Array, projection: Any) -> Evaluated:
    zero = jnp.zeros((), jnp.int32)
    return Evaluated(nan, jax.tree.map(jnp.zeros_like, params), zero, zero, zero,
                     jnp.asarray(False), projection)  # fmt: skip


def box_projection(lower: Any, upper: Any, params: Params, dtype: Any) -> Any:
    """The box projection as a pytree callable whose leaves are the bounds (as arrays of
    the params' dtype), for the state's record."""
    lo = jax.tree.map(lambda b: jnp.asarray(b, dtype), bound_tree(lower, params, "lower"))
    hi = jax.tree.map(lambda b: jnp.asarray(b, dtype), bound_tree(upper, params, "upper"))
    return bind(_project_box, lower=pack_tree(lo), upper=pack_tree(hi))


def bounds_args(lower: Any, upper: Any) -> dict[str, Any]:
    """Checked ``lower``/``upper`` (None: unbounded) as hyperparameters of an optimizer."""
    lower, upper = check_bound("lower", lower), check_bound("upper", upper)
    check_order(lower, upper)
    return {"lower": pack_tree(lower), "upper": pack_tree(upper)}
