"""Control flow that also runs inside ``jax.shard_map``.

Inside ``shard_map`` every value has a type that says over which mesh axes it varies
from device to device. ``lax.while_loop`` asks its carry to keep its type, and a loop
that starts from a constant (an identity inverse Hessian, a zero step, a NaN "no value
yet") and updates it from the params, which vary, changes it: JAX then refuses the
loop ("the manual axis types do not match"). :func:`while_loop` marks such starting
values as varying first, over the axes the body's outputs vary over. Outside
``shard_map`` it is ``lax.while_loop`` itself, at no cost.
"""

from __future__ import annotations

from typing import Any, Callable

import jax


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
