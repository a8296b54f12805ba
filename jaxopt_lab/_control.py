"""Control flow for the loops: a while loop that also runs inside ``jax.shard_map``, and
a nested block that keeps XLA:CPU from handing a small program to its worker threads.

Inside ``shard_map`` every value has a type that says over which mesh axes it varies
from device to device. ``lax.while_loop`` asks its carry to keep its type, and a loop
that starts from a constant (an identity inverse Hessian, a zero step, a NaN "no value
yet") and updates it from the params, which vary, changes it: JAX then refuses the
loop ("the manual axis types do not match"). :func:`while_loop` marks such starting
values as varying first, over the axes the body's outputs vary over. Outside
``shard_map`` it is ``lax.while_loop`` itself, at no cost.

:func:`nested` runs a function as one nested computation, see its docstring.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def while_loop(cond_fun: Callable, body_fun: Callable, init: Any) -> Any:
    """``jax.lax.while_loop(cond_fun, body_fun, init)``, with ``init``'s leaves made
    varying where the body's outputs vary (inside ``shard_map`` only)."""
    if _manual_axes():
        init = _varying_as_body(body_fun, init)
    return jax.lax.while_loop(cond_fun, body_fun, init)


def _manual_axes() -> tuple:
    get = getattr(jax.sharding, "get_abstract_mesh", None)  # jax versions without it
    if get is None:  # have no varying-axis types either
        return ()
    return tuple(getattr(get(), "manual_axes", ()) or ())


def _varying_as_body(body_fun: Callable, init: Any) -> Any:
    # Marking one value varying can make others vary in turn: repeat until the types
    # hold (each pass only adds axes, so a few passes reach it). The body is traced on
    # the values themselves, not through eval_shape: under vmap it closes over batched
    # values, which must meet the loop's values in the same trace (XLA drops the
    # unused ops).
    for _ in range(8):
        out = body_fun(init)
        new = jax.tree.map(_widen, init, out)
        if all(
            _varying(a) == _varying(b)
            for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(init), strict=True)
        ):
            return new
        init = new
    return init


def _varying(x: Any) -> frozenset:
    """The mesh axes the value ``x`` varies over."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    if manual is not None:
        return frozenset(manual.varying)
    return frozenset(getattr(aval, "vma", ()) or ())


def _widen(x: Any, like: Any) -> Any:
    missing = tuple(sorted(_varying(like) - _varying(x)))
    if not missing:
        return x
    pcast = getattr(jax.lax, "pcast", None)
    if pcast is not None:
        return pcast(x, missing, to="varying")
    return jax.lax.pvary(x, missing)  # older jax


def nested(fn: Callable, *operands: Any) -> Any:
    """``fn(*operands)``, compiled as one nested computation of the program: the branch
    of a ``lax.cond`` whose predicate is True, behind an optimization barrier so that
    XLA cannot fold it away (under ``vmap`` the predicate stays unbatched, and the
    other branch, zeros, never runs).

    Why: XLA:CPU runs a computation's operations one after the other on the calling
    thread only when it has at most 8 of them, or when none touches a buffer over 512
    bytes. A program's top level that has both many small operations and one large
    buffer (a ``(steps,)`` loss history from 64 float64 steps up) is run by a
    dataflow executor that hands ready operations to its worker threads, and the
    caller sleeps until they finish: two thread wake-ups per call, about 0.1-0.2 ms
    on a 2-core machine, more than a whole small solve. Grouping the many small
    operations into a few nested blocks leaves the top level a handful of operations,
    run inline; each block is itself one computation of small buffers, run inline too.
    Inside ``shard_map`` (a program over devices, not a small one) it is ``fn`` itself.
    """
    if _manual_axes():
        return fn(*operands)
    closed, shape = jax.make_jaxpr(fn, return_shape=True)(*operands)
    out_leaves, out_tree = jax.tree.flatten(shape)
    gate = jax.lax.optimization_barrier(jnp.asarray(True))

    def run(*flat):
        return _jaxpr_as_fun(closed)(*flat)

    def idle(*flat):
        # a different value for each output: XLA merges the outputs that are the same in
        # both branches, and a loop that starts from merged values copies them apart
        return [_distinct(i, s) for i, s in enumerate(out_leaves)]

    out = jax.lax.cond(gate, run, idle, *jax.tree.leaves(operands))
    return jax.tree.unflatten(out_tree, out)


def _distinct(i: int, s: Any) -> jax.Array:
    mark = jax.lax.optimization_barrier(jnp.asarray(i, jnp.int32))  # not folded: not merged
    return jnp.broadcast_to(mark.astype(s.dtype), s.shape)


def _jaxpr_as_fun(closed: Any) -> Callable:
    try:
        from jax.extend.core import jaxpr_as_fun
    except ImportError:  # older jax
        from jax.core import jaxpr_as_fun
    return jaxpr_as_fun(closed)
