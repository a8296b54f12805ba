"""Tree vocabulary shared by every layer: reductions over pytrees and the record of an
evaluated point. The bottom of the import graph (imports only JAX)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = Any


class Evaluated(NamedTuple):
    """The loss value and gradient at the params the last update leads to, and the
    evaluations made so far. ``jol.minimize`` reads them to skip a re-evaluation.

    ``stalled`` is True when the last update's line search found no acceptable step (at
    the limit of floating-point precision, or when no step along the direction
    decreases the loss enough); the params were then left where they were, and the
    loop stops with status "no further progress possible"."""

    value: jax.Array
    grad: Params
    num_fun_evals: jax.Array
    num_grad_evals: jax.Array
    num_hvp_evals: jax.Array  # Hessian-vector products (Newton-CG)
    stalled: jax.Array = False
    # A constrained solver's projection onto its feasible set, ``params -> params`` (a
    # pytree callable whose leaves, e.g. the bounds, are data); None when unconstrained.
    # The loop then starts from ``projection(params)`` and measures stationarity by
    # ||projection(x - g) - x|| instead of ||g||, which is not zero at a bounded solution.
    projection: Any = None


def abs_sq(x: jax.Array) -> jax.Array:
    r""":math:`|x|^2 = \operatorname{Re}(\bar x x)`, real for complex ``x``; ``x * x`` for real
    ``x`` (the same program as ``x**2``, so real results do not change)."""
    return (jnp.conj(x) * x).real if jnp.iscomplexobj(x) else x * x


def global_norm(tree: Any) -> jax.Array:
    r""":math:`\sqrt{\sum_{leaves} \sum_i |x_i|^2}` over every leaf of ``tree`` (real
    also for complex leaves)."""
    return jnp.sqrt(sum(jnp.sum(_square(x)) for x in jax.tree.leaves(tree)))


def _square(x: jax.Array) -> jax.Array:
    # Real and imaginary parts squared apart, as optax's tree norm does, so complex
    # norms agree with optax's to the last bit.
    return jnp.square(x.real) + jnp.square(x.imag) if jnp.iscomplexobj(x) else jnp.square(x)


def tree_vdot(a: Params, b: Params) -> jax.Array:
    """:math:`\\sum_i a_i b_i` over all leaves, accumulated in the leaves' dtype."""
    # multiply-and-sum rather than vdot: vmapped, vdot turns into one BLAS call per member
    parts = [jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)]
    return sum(parts[1:], parts[0]) if parts else jnp.zeros(())


def tree_axpy(alpha: jax.Array, x: Params, y: Params) -> Params:
    """:math:`\\alpha x + y`, leaf by leaf, keeping each leaf's dtype."""
    return jax.tree.map(lambda a, b: (alpha * a + b).astype(b.dtype), x, y)


def tree_scale(alpha: jax.Array, x: Params) -> Params:
    return jax.tree.map(lambda a: (alpha * a).astype(a.dtype), x)


def all_finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf is finite (True for an empty tree)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


__all__ = [
    "Evaluated",
    "abs_sq",
    "all_finite",
    "global_norm",
    "tree_axpy",
    "tree_scale",
    "tree_vdot",
]
