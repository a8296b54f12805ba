"""Core types: optimizers as pure ``(init, update)`` pairs that are also pytrees.

An :class:`Optimizer` is a ``NamedTuple(init, update)``. ``init`` and ``update`` are
:class:`HyperFunction` objects: a module-level function bound to its hyperparameters.
A ``HyperFunction`` is a JAX pytree whose *leaves* are the numeric hyperparameters
(learning rate, betas, eps, ...) and whose *structure* holds everything else (the
function itself, flags, dtypes, masks). Two consequences:

* ``jax.jit(train)(adam(0.1), ...)`` and ``jax.jit(train)(adam(0.2), ...)`` share one
  compiled program, because only leaves changed;
* a batch of optimizers (leaves stacked along a new axis) goes through ``jax.vmap``.

Non-numeric configuration is wrapped in :class:`Static`, a pytree node with no leaves
that compares by value, so it lands in the tree structure (and the jit cache key).

Numbers derived from hyperparameters (``1 - b2`` and the like) are computed once, when the
optimizer is built, and stored as leaves of their own. With Python-float
hyperparameters they are therefore computed in float64 and rounded once, as optax does.
To vmap or differentiate with respect to such a hyperparameter, build the optimizer
inside the transformed function (``jax.vmap(lambda b1: adam(1e-3, b1=b1))``).
"""

from __future__ import annotations

import inspect
from collections import abc
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

from jaxopt_lab.checks import (  # re-exported: the transforms import them from here
    check_optimizer,
    check_params,
    check_same_structure,
    is_arraylike,
)
from jaxopt_lab.errors import InputValueError

PyTree = Any
Params = Any
Updates = Any
OptState = Any
Scalar = Any  # a Python number, a 0-d array or a tracer
# The same objects as optax's annotations (equal, not only alike): code that inspects a
# ``learning_rate`` annotation for "accepts a schedule", as optax's tests do, finds ours.
Schedule = abc.Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]
ScalarOrSchedule = Union[float, jax.Array, Schedule]


class EmptyState(NamedTuple):
    """State of a transform that keeps none."""


# --------------------------------------------------------------------------------------
# Static configuration and bound functions
# --------------------------------------------------------------------------------------


def _static_key(value: Any) -> Any:
    """A hashable key that is equal for equal configuration values."""
    try:
        hash(value)
        return ("value", type(value), value)
    except TypeError:
        leaves, treedef = jax.tree.flatten(value)
        try:
            return ("tree", treedef, tuple((type(x), x) for x in leaves))
        except TypeError:
            return ("id", id(value))


@jax.tree_util.register_pytree_node_class
class Static:
    """Configuration that is part of a pytree's structure rather than its leaves.

    Compared by value (dtypes, flags, masks of Python bools) or, for objects that cannot
    be compared by value (plain Python callables), by identity.
    """

    __slots__ = ("value", "_key")

    def __init__(self, value: Any):
        self.value = value
        self._key = _static_key(value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Static):
            return NotImplemented
        try:
            return bool(self._key == other._key)
        except Exception:  # e.g. comparing arrays inside a mask tree
            return self.value is other.value

    def __hash__(self) -> int:
        try:
            return hash(self._key)
        except TypeError:
            return hash(id(self.value))

    def __repr__(self) -> str:
        return f"Static({self.value!r})"

    def tree_flatten(self):
        return (), self

    @classmethod
    def tree_unflatten(cls, aux, children):
        del children
        return aux


class HParams:
    """Read-only attribute view of a function's hyperparameters."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"HParams({self.__dict__!r})"


def _is_pytree_callable(x: Any) -> bool:
    return isinstance(x, (HyperFunction, Optimizer))


def _as_child(value: Any) -> Any:
    """Route a hyperparameter: numbers, arrays and our pytrees are children, other
    callables (user schedules, foreign transforms) are static."""
    if isinstance(value, Static) or _is_pytree_callable(value):
        return value
    if isinstance(value, (tuple, list)) and any(
        _is_pytree_callable(v) or isinstance(v, Static) for v in value
    ):
        return type(value)(_as_child(v) for v in value)
    if callable(value) or (value is not None and not is_arraylike(value)):
        return Static(value)
    return value


@jax.tree_util.register_pytree_node_class
class HyperFunction:
    """``fn`` bound to hyperparameters; calling it runs ``fn(h, *args, **kwargs)``.

    ``h`` is an :class:`HParams` whose attributes are the bound values, with
    :class:`Static` wrappers removed. The function must be defined at module level so
    that equal configurations have equal tree structures.
    """

    __slots__ = ("fn", "hparams", "__weakref__")

    def __init__(self, fn: Callable[..., Any], hparams: dict[str, Any]):
        self.fn = fn
        self.hparams = {k: _as_child(v) for k, v in hparams.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        values = {k: unwrap(v) for k, v in self.hparams.items()}
        return self.fn(HParams(values), *args, **kwargs)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{self.fn.__name__}({shown})"

    def tree_flatten(self):
        keys = tuple(self.hparams)
        return tuple(self.hparams[k] for k in keys), (self.fn, keys)

    @classmethod
    def tree_unflatten(cls, aux, children):
        fn, keys = aux
        obj = object.__new__(cls)
        obj.fn = fn
        obj.hparams = dict(zip(keys, children, strict=True))
        return obj


def bind(fn: Callable[..., Any], /, **hparams: Any) -> HyperFunction:
    """Bind module-level ``fn(h, ...)`` to hyperparameters (see :class:`HyperFunction`)."""
    return HyperFunction(fn, hparams)


class Optimizer(NamedTuple):
    """A pure optimizer: ``state = init(params)``;
    ``updates, state = update(grads, state, params=None, **extra_args)``.

    Both members are pytrees (see :class:`HyperFunction`), so an ``Optimizer`` can be
    passed to ``jax.jit`` as an argument and batched with ``jax.vmap``.

    >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
    >>> opt = jol.sgd(learning_rate=0.1)
    >>> jax.tree.leaves(opt)  # its hyperparameters are its leaves
    [0.1]
    >>> params = jnp.array([1.0, -2.0])
    >>> updates, state = opt.update(2 * params, opt.init(params), params)
    >>> print(jol.apply_updates(params, updates))
    [ 0.8 -1.6]
    """

    init: Callable[..., OptState]
    update: Callable[..., tuple[Updates, OptState]]


def stateless(update_fn: Callable[..., Any], **hparams: Any) -> Optimizer:
    """A transform with :class:`EmptyState`, whose ``update_fn(h, updates, params)``
    returns the new updates."""
    return Optimizer(bind(_init_empty), bind(_stateless_update, fn=Static(update_fn), **hparams))


def _init_empty(h: HParams, params: Params) -> EmptyState:
    del h, params
    return EmptyState()


def _stateless_update(h, updates, state, params=None, **extra_args):
    del extra_args
    return h.fn(h, updates, params), state


# --------------------------------------------------------------------------------------
# Tree helpers used by the transforms
# --------------------------------------------------------------------------------------


def tree_map(fn: Callable[..., Any], tree: PyTree, *rest: PyTree) -> PyTree:
    """``jax.tree.map`` that keeps ``None`` leaves of ``tree`` as ``None``."""
    return jax.tree.map(
        lambda x, *r: None if x is None else fn(x, *r), tree, *rest, is_leaf=lambda x: x is None
    )


def tree_full_like(params: Params, value: Any, dtype: Any = None) -> PyTree:
    return jax.tree.map(lambda p: jnp.full_like(p, value, dtype=dtype), params)


def tree_zeros_like(params: Params, dtype: Any = None) -> PyTree:
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype), params)


def tree_cast(tree: PyTree, dtype: Any) -> PyTree:
    return tree if dtype is None else jax.tree.map(lambda t: t.astype(dtype), tree)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` that saturates at the dtype's maximum instead of wrapping."""
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        top = jnp.iinfo(count.dtype).max
    else:
        top = jnp.finfo(count.dtype).max
    top = jnp.array(top, count.dtype)
    return jnp.where(count < top, count + jnp.array(1, count.dtype), top)


def complement(x: Scalar) -> Scalar:
    """``1 - x``; for a Python number computed in float64 before any rounding."""
    return 1 - x


# --------------------------------------------------------------------------------------
# apply_updates and chain
# --------------------------------------------------------------------------------------


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates``, cast back to each param's dtype (``None`` leaves kept).

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> jol.apply_updates({"w": jnp.ones(2)}, {"w": jnp.array([0.5, -1.0])})
    {'w': Array([1.5, 0. ], dtype=float32)}
    """
    return jax.tree.map(
        lambda p, u: None if p is None else jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def accepts_extra_args(update: Callable[..., Any]) -> bool:
    if isinstance(update, HyperFunction):
        return True
    try:
        sig = inspect.signature(update)
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def unwrap(x: Any) -> Any:
    """The value inside a :class:`Static`, or ``x`` itself."""
    return x.value if isinstance(x, Static) else x


def _chain_init(h: HParams, params: Params) -> tuple:
    check_params(params)
    return tuple(unwrap(init)(params) for init in h.inits)


def _chain_update(h: HParams, updates, state, params=None, **extra_args):
    if len(state) != len(h.updates):
        raise InputValueError(
            f"`state` has {len(state)} entries but the chain has {len(h.updates)} "
            "transforms; was it created by this optimizer's init?"
        )
    if params is not None:
        check_same_structure(updates, params, "params")
    new_state = []
    for update, s in zip(map(unwrap, h.updates), state, strict=True):
        if accepts_extra_args(update):
            updates, s = update(updates, s, params, **extra_args)
        else:
            updates, s = update(updates, s, params)
        new_state.append(s)
    return updates, tuple(new_state)


def chain(*transforms: Any) -> Optimizer:
    """Compose transforms: each one's output updates feed the next.

    Accepts ours and any object with ``.init``/``.update`` (optax's included). The state
    is a tuple of the inner states.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> opt = jol.chain(jol.clip_by_global_norm(1.0), jol.scale_by_learning_rate(0.1))
    >>> grads = jnp.array([3.0, -4.0])  # global norm 5, clipped to 1
    >>> updates, state = opt.update(grads, opt.init(grads))
    >>> [round(float(u), 3) for u in updates]
    [-0.06, 0.08]
    """
    for i, t in enumerate(transforms):
        check_optimizer(t, f"transforms[{i}]")
    inits = tuple(_as_child(t.init) for t in transforms)
    updates = tuple(_as_child(t.update) for t in transforms)
    return Optimizer(bind(_chain_init, inits=inits), bind(_chain_update, updates=updates))


def identity() -> Optimizer:
    """Leaves updates unchanged: ``u = g``."""
    return stateless(_identity)


def _identity(h, updates, params):
    del h, params
    return updates
