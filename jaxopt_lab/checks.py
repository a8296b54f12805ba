"""Argument checks: the one place where a user's input is validated.

Each check raises :class:`~jaxopt_lab.errors.InputError` (an ``InputValueError`` or an
``InputTypeError``) whose message names the argument and says what was expected. Values
are checked only when they are concrete: a tracer (a hyperparameter inside ``vmap``,
``jit`` or ``grad``) passes through untouched, so checks never force a compile or break
a transformation. Sits at the bottom of the import graph, next to ``errors``.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.errors import InputTypeError, InputValueError


def is_arraylike(x: Any) -> bool:
    return isinstance(x, (numbers.Number, np.ndarray, np.generic, jax.Array)) or (
        isinstance(x, (tuple, list)) and all(is_arraylike(v) for v in x)
    )


def check_count(name: str, value: Any, low: int | None = 1) -> int:
    """An integer count (steps, epochs, sizes) of at least ``low`` (any int with
    ``low=None``), as a Python int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise InputTypeError(f"`{name}` must be an int, got {type(value).__name__}: {value!r}.")
    if low is not None and value < low:
        raise InputValueError(f"`{name}` must be >= {low}, got {value}.")
    return int(value)


def check_real(name: str, value: Any) -> float:
    """A concrete finite real number (a Python number or a 0-d array), as a float."""
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
        raise InputTypeError(f"`{name}` must be a real number, got a bool: {value!r}.")
    if not isinstance(value, numbers.Real):
        try:
            value = float(np.asarray(value))  # a concrete 0-d array is fine
        except Exception:
            raise InputTypeError(
                f"`{name}` must be a concrete real number, got {value!r} "
                f"of type {type(value).__name__}."
            ) from None
    value = float(value)
    if not np.isfinite(value):
        raise InputValueError(f"`{name}` must be finite, got {value}.")
    return value


def check_positive(name: str, value: Any) -> float:
    """A Python number > 0 (a static constant such as a maximal step size)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InputValueError(f"`{name}` must be a number > 0, got {value!r}.")
    return float(value)


def check_open_unit(name: str, value: Any) -> float:
    """A Python number strictly between 0 and 1 (a line-search constant)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"`{name}` must be a number in (0, 1), got {value!r}.")
    if not 0.0 < value < 1.0:
        raise InputValueError(f"`{name}` must be in (0, 1), got {value!r}.")
    return float(value)


def check_callable(name: str, value: Any, what: str = "a callable") -> None:
    if not callable(value):
        raise InputTypeError(f"`{name}` must be {what}, got {value!r}.")


def check_optimizer(optimizer: Any, name: str = "optimizer") -> None:
    """Anything with callable ``.init`` and ``.update`` (ours, optax's)."""
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise InputTypeError(
            f"`{name}` must have callable `.init` and `.update` (e.g. jol.adam(1e-3) or an "
            f"optax transform), got {type(optimizer).__name__}."
        )


def check_tol(tol: Any, name: str = "tol") -> None:
    """None, or a number >= 0 (a tracer passes)."""
    if tol is None:
        return
    if isinstance(tol, bool) or not isinstance(tol, (numbers.Real, np.ndarray, jax.Array)):
        raise InputTypeError(f"`{name}` must be a number or None, got {tol!r}.")
    if not isinstance(tol, jax.core.Tracer) and not np.all(np.asarray(tol) >= 0):
        raise InputValueError(f"`{name}` must be >= 0, got {tol!r}.")


@functools.lru_cache(maxsize=256)
def _int_key(seed: int, config: Any) -> jax.Array:
    # Making a key costs ~0.3 ms of dispatches; a sweep or fit called in a loop with the
    # same int seed (the default 0) should not pay it every call. Keyed on the configs
    # that change what PRNGKey(seed) returns (the PRNG implementation, x64 for big seeds).
    # Made eagerly even under a caller's jit, so no tracer is ever cached.
    with jax.ensure_compile_time_eval():
        return jax.random.PRNGKey(seed)


def check_key(key: Any, name: str = "key") -> jax.Array:
    """A ``jax.random`` key (typed or raw uint32), or an int seed made into one."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return _int_key(int(key), (jax.config.jax_default_prng_impl, jax.config.jax_enable_x64))
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise InputTypeError(f"`{name}` must be a jax.random key (or an int seed), got {key!r}.")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (
        key.shape == (2,) and key.dtype == jnp.uint32
    ):
        return key
    raise InputTypeError(
        f"`{name}` must be a jax.random key such as jax.random.PRNGKey(0), got an array of "
        f"shape {key.shape} and dtype {key.dtype}."
    )


def is_concrete(x: Any) -> bool:
    """True when ``x``'s value is known now (not a tracer inside jit/vmap/grad)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def check_hyperparameter(
    name: str,
    value: Any,
    *,
    low: float | None = 0.0,
    high: float | None = None,
    low_inclusive: bool = True,
    allow_schedule: bool = False,
    allow_none: bool = False,
) -> None:
    """Validate a numeric hyperparameter's type always, and its range when concrete.

    Never converts the value to a Python float, so tracers pass through untouched.
    """
    if value is None:
        if allow_none:
            return
        raise InputTypeError(f"`{name}` must be a number or an array, got None.")
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        if allow_schedule:
            return
        raise InputTypeError(f"`{name}` must be a number or an array, got a callable {value!r}.")
    if isinstance(value, (bool, np.bool_)) or not is_arraylike(value):
        kind = "a number, an array or a schedule" if allow_schedule else "a number or an array"
        raise InputTypeError(f"`{name}` must be {kind}, got {type(value).__name__}: {value!r}.")
    if isinstance(value, (tuple, list)):
        raise InputTypeError(
            f"`{name}` must be a scalar or an array, got a {type(value).__name__}."
        )
    dtype = jnp.result_type(value)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise InputTypeError(f"`{name}` must be real-valued, got dtype {dtype}.")
    if not is_concrete(value):
        return
    arr = np.asarray(value)
    if np.any(np.isnan(arr)):
        raise InputValueError(f"`{name}` must not be NaN, got {value!r}.")
    if low is not None:
        bad = arr < low if low_inclusive else arr <= low
        if np.any(bad):
            op = ">=" if low_inclusive else ">"
            raise InputValueError(f"`{name}` must be {op} {low}, got {value!r}.")
    if high is not None and np.any(arr > high):
        raise InputValueError(f"`{name}` must be <= {high}, got {value!r}.")


def check_flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(
            f"`{name}` must be a Python bool, got {type(value).__name__}: {value!r}."
        )


def canonical_dtype(name: str, dtype: Any) -> Any:
    """``None`` or a canonical floating or complex dtype (float64 becomes float32,
    complex128 complex64, without x64)."""
    if dtype is None:
        return None
    try:
        dt = jax.dtypes.canonicalize_dtype(np.dtype(dtype))
    except TypeError as e:
        raise InputTypeError(f"`{name}` must be a dtype or None, got {dtype!r}.") from e
    if not jnp.issubdtype(dt, jnp.inexact):  # complex too, as optax allows
        raise InputTypeError(f"`{name}` must be a floating or complex dtype, got {dt}.")
    return dt


def check_params(params: Any, name: str = "params") -> None:
    """Parameters must be floating-point arrays (or None leaves)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            if isinstance(leaf, float):
                continue
            raise InputTypeError(
                f"`{name}` leaves must be floating-point arrays; "
                f"{name}{jax.tree_util.keystr(path)} is {type(leaf).__name__}: {leaf!r}."
            )
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise InputTypeError(
                f"`{name}` leaves must be floating-point arrays; "
                f"{name}{jax.tree_util.keystr(path)} has dtype {dtype}. "
                "Cast it, e.g. with jnp.asarray(x, jnp.float32)."
            )


def check_scalar_fn(
    fn: Callable[..., Any], args: tuple, name: str, has_aux: bool | None = None
) -> None:
    """``fn(*args)`` must return a floating-point scalar (or ``(scalar, aux)`` with
    ``has_aux=True``); checked by abstract evaluation, without running ``fn``.
    ``has_aux=None`` means the caller offers no aux option."""
    if not callable(fn):
        raise InputTypeError(f"`{name}` must be a callable returning a scalar, got {fn!r}.")
    out = jax.eval_shape(fn, *args)
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise InputValueError(f"`{name}` must return a pair (loss, aux) when has_aux=True.")
        out = out[0]
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        shown = getattr(out, "shape", type(out).__name__)
        raise InputValueError(
            f"`{name}` must return a floating-point scalar, got {shown} "
            f"{getattr(out, 'dtype', '')}. Reduce it with jnp.mean or jnp.sum"
            + (", or pass has_aux=True if it returns (loss, aux)" if has_aux is False else "")
            + "."
        )


def check_same_structure(updates: Any, reference: Any, reference_name: str) -> None:
    """Raise an InputValueError showing both structures when ``updates`` and
    ``reference`` are not the same tree."""
    a, b = jax.tree.structure(updates), jax.tree.structure(reference)
    if a != b:
        raise InputValueError(
            f"The tree structure of the grads/updates does not match the {reference_name}'s.\n"
            f"  updates: {a}\n  {reference_name}: {b}\n"
            "Pass grads with the same structure as the params the optimizer was "
            "initialised with."
        )
