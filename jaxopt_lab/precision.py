r"""Loss wrappers that cut the memory traffic of a loss's activations.

A loop's step is ``jax.value_and_grad(loss_fn)``; for a small network trained by many
members at once (:func:`jaxopt_lab.sweep`) its cost is the memory traffic of the hidden
activations, not the arithmetic. Two wrappers change how the loss is evaluated without
changing what the optimizer sees:

* :func:`with_compute_dtype`: the loss is evaluated with its floating inputs cast to a
  narrower ``compute_dtype`` (``jnp.bfloat16``): half the bytes per activation. The
  loss is cast back to the params' dtype, and the gradient flows back through the casts,
  so gradients, params and optimizer state keep the params' dtype (float32): a
  mixed-precision step with float32 master weights.
* :func:`with_remat`: the loss runs under ``jax.checkpoint``, so the backward pass
  recomputes the activations from the inputs instead of storing them between the
  forward and the backward pass (an optional ``jax.checkpoint_policies`` policy says
  what may be stored).

Both wrappers are hashable and compare equal when made from the same loss and options,
so a loop's compiled program and the sweep's plan are reused by a second call that
wraps the same loss again. :func:`wrap_loss` applies what a loop's options ask for.

What is cast: the floating leaves of every argument the loss is *called with* (the
params, :func:`~jaxopt_lab.fit`'s batch, the sweep's ``data`` batches,
:func:`~jaxopt_lab.minimize`'s ``args``); integer leaves (labels) are left alone.
Arrays the loss *closes over* keep their dtype, and JAX's type promotion then computes
in the wider one (``float32 @ bfloat16`` is a float32 product): pass the data as an
argument, or close over a copy already cast (``x.astype(jnp.bfloat16)``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.errors import InputTypeError, InputValueError


def check_compute_dtype(compute_dtype: Any) -> np.dtype | None:
    """``compute_dtype`` as a NumPy dtype (None stays None); an InputError unless it is
    a real floating dtype (``jnp.bfloat16``, ``"float16"``, ``jnp.float32``)."""
    if compute_dtype is None:
        return None
    try:
        dtype = jnp.dtype(compute_dtype)
    except TypeError:
        raise InputTypeError(
            f"`compute_dtype` must be a floating dtype such as jnp.bfloat16, got {compute_dtype!r}."
        ) from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InputValueError(
            f"`compute_dtype` must be a floating dtype such as jnp.bfloat16, got {dtype}."
        )
    return dtype


def check_remat(remat: Any) -> Any:
    """``remat``: False, True (store nothing, recompute everything) or a
    ``jax.checkpoint_policies`` policy (a callable); an InputTypeError otherwise."""
    if isinstance(remat, (bool, np.bool_)):
        return bool(remat)
    if callable(remat):
        return remat
    raise InputTypeError(
        "`remat` must be True, False or a jax.checkpoint_policies policy "
        f"(e.g. jax.checkpoint_policies.dots_saveable), got {remat!r}."
    )


class _LossWrapper:
    """A callable standing for ``loss_fn`` with options, equal to any wrapper of the
    same kind, loss and options (a jit cache key and a plan cache key)."""

    __slots__ = ("loss_fn", "option", "has_aux", "__weakref__")  # jax caches by weakref

    def __init__(self, loss_fn: Callable, option: Any, has_aux: bool):
        self.loss_fn, self.option, self.has_aux = loss_fn, option, bool(has_aux)

    def _key(self) -> tuple:
        return (type(self), self.loss_fn, self.option, self.has_aux)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _LossWrapper) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.loss_fn!r}, {self.option!r}, has_aux={self.has_aux})"

    @property
    def __wrapped__(self) -> Callable:  # inspect.signature and callable ids see the loss
        return self.loss_fn


class ComputeDtype(_LossWrapper):
    """``loss_fn`` evaluated in ``option`` (a floating dtype); see :func:`with_compute_dtype`."""

    __slots__ = ()

    def __call__(self, params: Any, *args: Any) -> Any:
        floats = [x for x in jax.tree.leaves(params) if _is_float(x)]
        out_dtype = jnp.result_type(*floats) if floats else jnp.result_type(float)
        params, args = _cast((params, args), self.option)
        out = self.loss_fn(params, *args)
        if self.has_aux:  # the aux is returned as computed
            loss, aux = out
            return jnp.asarray(loss).astype(out_dtype), aux
        return jnp.asarray(out).astype(out_dtype)


class Remat(_LossWrapper):
    """``loss_fn`` under ``jax.checkpoint``; see :func:`with_remat`."""

    __slots__ = ()

    def __call__(self, params: Any, *args: Any) -> Any:
        policy = None if self.option is True else self.option
        return jax.checkpoint(self.loss_fn, policy=policy)(params, *args)


def _is_float(x: Any) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _cast(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: jnp.asarray(x).astype(dtype) if _is_float(x) else x, tree)


def with_compute_dtype(loss_fn: Callable, dtype: Any, has_aux: bool = False) -> Callable:
    """``loss_fn`` evaluated with the floating leaves of its arguments cast to ``dtype``,
    its loss cast back to the params' dtype (the aux, with ``has_aux``, as computed).

    The gradient of the wrapper with respect to float32 params is float32 (the casts'
    transposes cast it back), so only the loss's forward and backward passes run in
    ``dtype``. Equal arguments give equal (and equally hashed) wrappers.

    For example, float32 params and a bfloat16 forward pass:

    >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
    >>> loss = lambda p: jnp.sum((p["w"] @ jnp.ones(3)) ** 2)
    >>> loss16 = jol.with_compute_dtype(loss, jnp.bfloat16)
    >>> jax.grad(loss16)({"w": jnp.ones((2, 3))})["w"].dtype  # float32 gradients
    dtype('float32')
    >>> loss16 == jol.with_compute_dtype(loss, jnp.bfloat16)  # equal: jit caches hit
    True
    """
    return ComputeDtype(loss_fn, check_compute_dtype(dtype), has_aux)


def with_remat(loss_fn: Callable, policy: Any = True, has_aux: bool = False) -> Callable:
    """``loss_fn`` under ``jax.checkpoint(loss_fn, policy=...)``: its gradient recomputes
    the activations instead of storing them. ``policy``: True (store nothing) or a
    ``jax.checkpoint_policies`` policy such as ``dots_saveable``. Equal arguments give
    equal wrappers (a policy made by a factory, ``save_only_these_names(...)``, is a
    new function per call: make it once and reuse it)."""
    policy = check_remat(policy)
    if policy is False:
        raise InputValueError("`remat`: with_remat needs True or a policy, got False.")
    return Remat(loss_fn, policy, has_aux)


def wrap_loss(loss_fn: Callable, compute_dtype: Any, remat: Any, has_aux: bool) -> Callable:
    """The loss a loop runs for its ``compute_dtype`` and ``remat`` options (validated):
    ``loss_fn`` itself when neither is set, else the recomputation around the cast (the
    casts are recomputed too, so only the float32 inputs are stored)."""
    dtype, remat = check_compute_dtype(compute_dtype), check_remat(remat)
    if dtype is not None:
        loss_fn = ComputeDtype(loss_fn, dtype, has_aux)
    if remat is not False:
        loss_fn = Remat(loss_fn, remat, has_aux)
    return loss_fn


__all__ = [
    "check_compute_dtype",
    "check_remat",
    "with_compute_dtype",
    "with_remat",
    "wrap_loss",
]
