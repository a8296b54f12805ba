r"""Composition and wrappers: transforms that hold other transforms, and the small
stateless ones optax keeps beside them.

Every wrapper here is an :class:`~jaxopt_lab.base.Optimizer` whose ``init``/``update``
are :class:`~jaxopt_lab.base.HyperFunction`\ s holding the wrapped optimizer's own
``init``/``update`` as *children*. So the leaves of a wrapper are the leaves of what it
wraps plus its own numeric hyperparameters, and
``multi_transform({"a": adam(lr_a), "b": sgd(lr_b)}, labels)`` compiles once for every
``(lr_a, lr_b)``, and vmaps over both. Masks, labels, flags and user callables are
:class:`~jaxopt_lab.base.Static` structure; they must be built from module-level
functions (or plain data) for two builds to share a compiled program.

State layouts, argument names and defaults follow optax 0.2.8 (the numerical
reference), except where a docstring says otherwise.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import inspect
from typing import Any, Callable, Hashable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxopt_lab import base
from jaxopt_lab._tree import abs_sq, global_norm
from jaxopt_lab.base import (
    EmptyState,
    Optimizer,
    Params,
    Static,
    Updates,
    accepts_extra_args,
    bind,
    chain,
    complement,
    safe_increment,
    tree_cast,
    tree_map,
    tree_zeros_like,
    unwrap,
)
from jaxopt_lab.checks import (
    canonical_dtype,
    check_callable,
    check_flag,
    check_hyperparameter,
    check_optimizer,
    is_concrete,
)
from jaxopt_lab.errors import InputTypeError, InputValueError
from jaxopt_lab.transforms import NO_PARAMS_MSG

# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _run(update: Callable[..., Any], updates, state, params, extra_args: dict):
    """Call an inner update, passing extra arguments only to one that takes them."""
    if accepts_extra_args(update):
        return update(updates, state, params, **extra_args)
    return update(updates, state, params)


def _each(functions: tuple) -> tuple:
    """A tuple of inner init/update functions, foreign ones (held as Static inside a
    tuple that also holds ours) unwrapped."""
    return tuple(unwrap(f) for f in functions)


def _as_count(k: Any) -> jax.Array:
    """A period as int32: a sweep passes hyperparameters as floats, and the step
    counters it is compared with must stay int32 (a scan carry keeps its dtype)."""
    return jnp.asarray(k).astype(jnp.int32)


def _check_period(name: str, value: Any) -> None:
    """A whole number of steps >= 1 (a float such as a sweep's 2.0 is accepted)."""
    check_hyperparameter(name, value, low=1)
    if is_concrete(value) and np.any(np.asarray(value) != np.round(np.asarray(value))):
        raise InputValueError(f"`{name}` must be a whole number of steps, got {value!r}.")


def _count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


@functools.partial(jax.jit, inline=True)
def _debias_factor(decay, count):
    # the power taken in (at least) float32, as for Adam's bias correction
    return 1 - decay**count


# --------------------------------------------------------------------------------------
# Stateless building blocks
# --------------------------------------------------------------------------------------


def stateless(f: Callable[[Updates, Params | None], Updates]) -> Optimizer:
    r"""A transform without state: :math:`u = f(g, p)` (``p`` may be None)."""
    check_callable("f", f)
    return base.stateless(_call_f, f=f)


def _call_f(h, updates, params):
    return h.f(updates, params)


def stateless_with_tree_map(f: Callable[[Any, Any], Any]) -> Optimizer:
    r"""A transform without state applied leaf by leaf: :math:`u_i = f(g_i, p_i)`, or
    :math:`f(g_i, \text{None})` when no params are given."""
    check_callable("f", f)
    return base.stateless(_map_f, f=f)


def _map_f(h, updates, params):
    if params is None:
        return jax.tree.map(lambda u: h.f(u, None), updates)
    return jax.tree.map(h.f, updates, params)


def set_to_zero() -> Optimizer:
    r""":math:`u = 0`: with :func:`masked` / :func:`partition`, freezes parameters."""
    return base.stateless(_zeros)


def _zeros(h, updates, params):
    del h, params
    return jax.tree.map(jnp.zeros_like, updates)


def centralize() -> Optimizer:
    r"""Gradient centralization (Yong et al., 2020, arXiv:2004.01461): subtract from
    each leaf of rank > 1 its mean over every axis but the first."""
    return base.stateless(_centralize)


def _centralize(h, updates, params):
    del h, params

    def one(g):
        return g - g.mean(tuple(range(1, g.ndim)), keepdims=True) if g.ndim > 1 else g

    return tree_map(one, updates)


def normalize_by_update_norm(scale_factor: Any = 1.0, eps: Any = 1e-6) -> Optimizer:
    r""":math:`u = s\, g / (\lVert g\rVert + \epsilon)` with the global norm."""
    check_hyperparameter("scale_factor", scale_factor, low=None)
    check_hyperparameter("eps", eps)
    return base.stateless(_normalize, scale_factor=scale_factor, eps=eps)


def _normalize(h, updates, params):
    del params
    norm = (global_norm(updates) + h.eps) / h.scale_factor
    return jax.tree.map(lambda g: g / norm, updates)


def clip_by_block_rms(threshold: Any) -> Optimizer:
    r"""Clip each leaf to a root-mean-square of at most ``threshold``:
    :math:`u = g / \max(1, \operatorname{rms}(g)/c)`."""
    check_hyperparameter("threshold", threshold)
    return base.stateless(_block_rms, threshold=threshold)


def _block_rms(h, updates, params):
    del params

    def one(u):
        return u / jnp.maximum(1.0, jnp.sqrt(jnp.mean(abs_sq(u))) / h.threshold)

    return jax.tree.map(one, updates)


AdaptiveGradClipState = EmptyState


def _unitwise_norm(x: jax.Array, axis: Any) -> jax.Array:
    """Norm per output unit: over ``axis``, else the whole of a scalar/vector, the input
    axis of a dense kernel (rank 2-3), all but the output axis of a conv kernel (4-5)."""
    if axis is None:
        if jnp.squeeze(x).ndim <= 1:
            axis = None
        elif x.ndim in (2, 3):
            axis = 0
        elif x.ndim in (4, 5):
            axis = tuple(range(x.ndim - 1))
        else:
            raise InputValueError(
                f"adaptive_grad_clip: a parameter of shape {x.shape} has no default unit; "
                "pass `axis`."
            )
    squared = jnp.sum(abs_sq(x), axis=axis, keepdims=True)
    return jnp.broadcast_to(jnp.sqrt(squared), x.shape)


def adaptive_grad_clip(clipping: Any, eps: Any = 1e-3, axis: Any = None) -> Optimizer:
    r"""Adaptive gradient clipping (Brock et al., 2021, arXiv:2102.06171), per unit:
    :math:`u = g` if :math:`\lVert g\rVert < \lambda \max(\lVert p\rVert, \epsilon)`, else
    :math:`g\, \lambda \max(\lVert p\rVert, \epsilon) / \max(\lVert g\rVert, 10^{-6})`."""
    check_hyperparameter("clipping", clipping)
    check_hyperparameter("eps", eps)
    if axis is not None and not isinstance(axis, (int, tuple)):
        raise InputTypeError(f"`axis` must be None, an int or a tuple of ints, got {axis!r}.")
    return base.stateless(_agc, clipping=clipping, eps=eps, axis=Static(axis))


def _agc(h, updates, params):
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)

    def one(g, p):
        g_norm, p_norm = _unitwise_norm(g, h.axis), _unitwise_norm(p, h.axis)
        max_norm = h.clipping * jnp.maximum(p_norm, h.eps)
        clipped = g * (max_norm / jnp.maximum(g_norm, 1e-6))
        return jnp.where(g_norm < max_norm, g, clipped)

    return jax.tree.map(one, updates, params)


NonNegativeParamsState = EmptyState


def keep_params_nonnegative() -> Optimizer:
    r"""Stop at zero: :math:`u = -p` where :math:`p + g < 0`, else :math:`u = g`."""
    return base.stateless(_nonnegative)


def _nonnegative(h, updates, params):
    del h
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    return tree_map(lambda u, p: jnp.where((p + u) < 0.0, -p, u), updates, params)


class ZeroNansState(NamedTuple):
    found_nan: Any


def zero_nans() -> Optimizer:
    r"""Replace NaNs by zeros; the state records, per leaf, whether the last update had
    one."""
    return Optimizer(bind(_zero_nans_init), bind(_zero_nans_update))


def _zero_nans_init(h, params):
    del h
    return ZeroNansState(jax.tree.map(lambda p: jnp.array(False), params))


def _zero_nans_update(h, updates, state, params=None, **extra_args):
    del h, state, params, extra_args
    found = jax.tree.map(lambda g: jnp.any(jnp.isnan(g)), updates)
    updates = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)
    return updates, ZeroNansState(found)


# --------------------------------------------------------------------------------------
# Masking and partitioning
# --------------------------------------------------------------------------------------


class MaskedState(NamedTuple):
    inner_state: Any


class MaskedNode(NamedTuple):
    """Stands where a masked-out subtree was: a pytree node without leaves, so inner
    transforms neither see nor store anything for it."""


def _is_mask_fn(mask: Any) -> bool:
    leaves = jax.tree.leaves(jax.tree.map(callable, mask))
    return bool(leaves) and all(leaves)


def _mask_of(mask: Any, tree: Any) -> Any:
    return mask(tree) if _is_mask_fn(mask) else mask


def _hide(tree: Any, mask_tree: Any) -> Any:
    """``tree`` with every subtree whose (prefix) mask is False replaced by MaskedNode."""
    return jax.tree.map(lambda m, t: t if m else MaskedNode(), mask_tree, tree)


def masked(inner: Any, mask: Any, *, mask_compatible_extra_args: bool = False) -> Optimizer:
    r"""Apply ``inner`` only where ``mask`` is True; elsewhere updates pass unchanged and
    ``inner`` keeps no state.

    ``mask`` is a pytree of bools (a prefix of the params) or a function
    ``params -> mask``. With ``mask_compatible_extra_args``, extra ``update`` arguments
    shaped like the updates are masked too.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> params = {"w": jnp.ones(2), "b": jnp.ones(())}
    >>> opt = jol.masked(jol.scale(0.0), {"w": True, "b": False})  # zero w's updates only
    >>> updates, _ = opt.update(params, opt.init(params), params)
    >>> print(updates["w"], updates["b"])
    [0. 0.] 1.0
    """
    check_optimizer(inner, "inner")
    check_flag("mask_compatible_extra_args", mask_compatible_extra_args)
    if not _is_mask_fn(mask) and any(callable(x) for x in jax.tree.leaves(mask)):
        raise InputTypeError("`mask` must be a pytree of bools or one function params -> mask.")
    config = dict(mask=Static(mask), compatible=Static(mask_compatible_extra_args))
    return Optimizer(
        bind(_masked_init, inner_init=inner.init, **config),
        bind(_masked_update, inner_update=inner.update, **config),
    )


def _masked_init(h, params):
    if _is_placeholder(params):
        # optax.tree.map_params initializes with a leafless stand-in for the params to
        # find where they sit in the state; pass it down unmasked, as optax does
        return MaskedState(h.inner_init(params))
    return _init_where(h.inner_init, _mask_of(h.mask, params), params)


def _is_placeholder(params: Any) -> bool:
    """A single leafless node of a user type (not a container, not None)."""
    if params is None or isinstance(params, (dict, list, tuple)):
        return False
    treedef = jax.tree.structure(params)
    return treedef.num_leaves == 0 and treedef.num_nodes == 1


def _masked_update(h, updates, state, params=None, **extra_args):
    mask = _mask_of(h.mask, updates)
    return _update_where(h.inner_update, mask, h.compatible, updates, state, params, extra_args)


def _init_where(init, mask, params) -> MaskedState:
    return MaskedState(init(_hide(params, mask)))


def _update_where(update, mask, compatible, updates, state, params, extra_args):
    """``update`` on the subtrees where ``mask`` is True; the others pass unchanged."""
    if compatible:
        structure = jax.tree.structure(updates)
        extra_args = {
            k: _hide(v, mask) if jax.tree.structure(v) == structure else v
            for k, v in extra_args.items()
        }
    hidden_params = None if params is None else _hide(params, mask)
    new, inner_state = _run(
        update, _hide(updates, mask), state.inner_state, hidden_params, extra_args
    )
    merged = jax.tree.map(lambda m, n, o: n if m else o, mask, new, updates)
    return merged, MaskedState(inner_state)


class PartitionState(NamedTuple):
    inner_states: Mapping[Hashable, Any]


MultiTransformState = PartitionState


def partition(
    transforms: Mapping[Hashable, Any],
    param_labels: Any,
    *,
    mask_compatible_extra_args: bool = False,
) -> Optimizer:
    r"""One transform per group of parameters: ``param_labels`` (a pytree of labels,
    a prefix of the params, or a function ``params -> labels``) names each leaf's
    group, and ``transforms[label]`` updates it (through :func:`masked`). The groups'
    optimizers stay children, so all their hyperparameters are leaves of this one."""
    if not isinstance(transforms, Mapping) or not transforms:
        raise InputTypeError("`transforms` must be a non-empty mapping label -> optimizer.")
    for label, t in transforms.items():
        check_optimizer(t, f"transforms[{label!r}]")
    check_flag("mask_compatible_extra_args", mask_compatible_extra_args)
    config = dict(
        labels=Static(param_labels),
        groups=Static(tuple(transforms)),
        compatible=Static(mask_compatible_extra_args),
    )
    return Optimizer(
        bind(_partition_init, inits=tuple(t.init for t in transforms.values()), **config),
        bind(_partition_update, updates=tuple(t.update for t in transforms.values()), **config),
    )


def multi_transform(
    transforms: Mapping[Hashable, Any],
    param_labels: Any,
    *,
    mask_compatible_extra_args: bool = False,
) -> Optimizer:
    """The former name of :func:`partition` (same function in optax 0.2.8)."""
    return partition(
        transforms, param_labels, mask_compatible_extra_args=mask_compatible_extra_args
    )


def _labels_of(h, tree):
    return h.labels(tree) if callable(h.labels) else h.labels


def _group_mask(labels, group):
    return jax.tree.map(lambda label: label == group, labels)


def _partition_init(h, params):
    labels = _labels_of(h, params)
    unknown = set(jax.tree.leaves(labels)) - set(h.groups)
    if unknown:
        raise InputValueError(
            f"`param_labels` has labels {sorted(map(repr, unknown))} with no transform; "
            f"`transforms` has {list(h.groups)}."
        )
    return PartitionState(
        {
            group: _init_where(init, _group_mask(labels, group), params)
            for group, init in zip(h.groups, _each(h.inits), strict=True)
        }
    )


def _partition_update(h, updates, state, params=None, **extra_args):
    # each group is one masked transform; the groups' masks are disjoint
    labels = _labels_of(h, updates)
    new_states = {}
    for group, update in zip(h.groups, _each(h.updates), strict=True):
        mask = _group_mask(labels, group)
        updates, new_states[group] = _update_where(
            update, mask, h.compatible, updates, state.inner_states[group], params, extra_args
        )
    return updates, PartitionState(new_states)


def freeze(mask: Any) -> Optimizer:
    r""":math:`u = 0` where ``mask`` is True (those parameters stay where they are),
    updates unchanged elsewhere."""
    return masked(set_to_zero(), mask)


def selective_transform(optimizer: Any, *, freeze_mask: Any) -> Optimizer:
    r"""``optimizer`` on the parameters where ``freeze_mask`` is False, zero updates
    (and no state) where it is True."""
    if callable(freeze_mask):
        raise InputTypeError("`freeze_mask` must be a bool or a pytree of bools.")
    labels = jax.tree.map(lambda m: "freeze" if m else "train", freeze_mask)
    return partition({"train": optimizer, "freeze": set_to_zero()}, param_labels=labels)


def named_chain(*args: tuple[str, Any]) -> Optimizer:
    r"""As :func:`~jaxopt_lab.chain`, with each transform's state under its name in an
    ``OrderedDict`` (readable as ``state["adam"]``)."""
    for i, item in enumerate(args):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise InputTypeError(f"`args[{i}]` must be a pair (name, transform), got {item!r}.")
        check_optimizer(item[1], f"args[{i}]")
    names = tuple(name for name, _ in args)
    if len(set(names)) != len(names):
        raise InputValueError(f"`args` must have unique names, got {list(names)}.")
    return Optimizer(
        bind(_named_init, names=Static(names), inits=tuple(t.init for _, t in args)),
        bind(_named_update, names=Static(names), updates=tuple(t.update for _, t in args)),
    )


def _named_init(h, params):
    return collections.OrderedDict(
        (n, i(params)) for n, i in zip(h.names, _each(h.inits), strict=True)
    )


def _named_update(h, updates, state, params=None, **extra_args):
    new_state = collections.OrderedDict()
    for name, update in zip(h.names, _each(h.updates), strict=True):
        updates, new_state[name] = _run(update, updates, state[name], params, extra_args)
    return updates, new_state


# --------------------------------------------------------------------------------------
# Accumulation: ema, apply_every, MultiSteps
# --------------------------------------------------------------------------------------


class EmaState(NamedTuple):
    count: jax.Array
    ema: Params


def ema(decay: Any, debias: bool = True, accumulator_dtype: Any = None) -> Optimizer:
    r"""Exponential moving average of the updates:
    :math:`m_t = (1-\beta) g_t + \beta m_{t-1}`, :math:`u_t = m_t` or, with
    ``debias``, :math:`m_t / (1-\beta^t)`. ``accumulator_dtype`` sets :math:`m`'s."""
    check_hyperparameter("decay", decay, low=0.0, high=1.0)
    check_flag("debias", debias)
    dtype = Static(canonical_dtype("accumulator_dtype", accumulator_dtype))
    return Optimizer(
        bind(_ema_init, dtype=dtype),
        bind(
            _ema_update,
            decay=decay,
            one_minus_decay=complement(decay),
            debias=Static(debias),
            dtype=dtype,
        ),
    )


def _ema_init(h, params):
    return EmaState(count=_count(), ema=tree_zeros_like(params, h.dtype))


def _ema_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    new = tree_map(lambda g, m: h.one_minus_decay * g + h.decay * m, updates, state.ema)
    count = safe_increment(state.count)
    out = new
    if h.debias:
        factor = _debias_factor(h.decay, count)
        out = tree_map(lambda m: m / factor.astype(m.dtype), new)
    return out, EmaState(count=count, ema=tree_cast(new, h.dtype))


class ApplyEvery(NamedTuple):
    count: jax.Array
    grad_acc: Updates


def apply_every(k: Any = 1) -> Optimizer:
    r"""Sum the updates of ``k`` steps and emit the sum every ``k``-th step (zeros in
    between). ``k`` is a leaf (an integer)."""
    _check_period("k", k)
    return Optimizer(bind(_apply_every_init), bind(_apply_every_update, k=k))


def _apply_every_init(h, params):
    del h
    return ApplyEvery(count=_count(), grad_acc=tree_zeros_like(params))


def _apply_every_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    k = _as_count(h.k)
    phase = state.count % k
    grad_acc = jax.tree.map(lambda g, a: (phase != 0) * a + g, updates, state.grad_acc)
    emit = phase == k - 1
    updates = jax.tree.map(lambda a: emit * a, grad_acc)
    return updates, ApplyEvery(count=safe_increment(state.count) % k, grad_acc=grad_acc)


def skip_not_finite(updates: Updates, gradient_step: Any, params: Params | None):
    """A ``should_skip_update_fn`` for :class:`MultiSteps`: skip when any update entry is
    NaN or infinite. Returns ``(should_skip, {"should_skip", "num_not_finite"})``."""
    del gradient_step, params
    counts = [jnp.sum(jnp.logical_not(jnp.isfinite(g))) for g in jax.tree.leaves(updates)]
    num_not_finite = jnp.sum(jnp.array(counts))
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: Updates, gradient_step: Any, params: Params | None, max_squared_norm: Any
):
    """A ``should_skip_update_fn`` for :class:`MultiSteps` (bind ``max_squared_norm``
    with ``functools.partial``): skip when the squared global norm is not below it (or
    is NaN). Returns ``(should_skip, {"should_skip", "norm_squared"})``."""
    del gradient_step, params
    norm_sq = jnp.sum(jnp.array([jnp.sum(g**2) for g in jax.tree.leaves(updates)]))
    should_skip = jnp.logical_not(norm_sq < max_squared_norm)
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_sq}


def _never_skip(updates, gradient_step, params):
    del updates, gradient_step, params
    return jnp.array(False), ()


class MultiStepsState(NamedTuple):
    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


class MultiSteps:
    r"""Gradient accumulation: average (or sum, ``use_grad_mean=False``) the gradients
    of ``every_k_schedule`` mini-steps and give the mean to ``opt`` once per ``k``;
    in between the updates are zero and ``opt``'s state is unchanged.

    ``every_k_schedule`` is an int (a leaf) or a schedule of the number of *gradient*
    steps made so far. ``should_skip_update_fn(updates, gradient_step, params) ->
    (bool, skip_state)`` (e.g. :func:`skip_not_finite`) drops a mini-step entirely.
    Use ``MultiSteps(...).gradient_transformation()`` (a pytree optimizer) or the
    object's own ``init``/``update``; ``has_updated(state)`` tells whether the last
    ``update`` emitted.
    """

    def __init__(
        self,
        opt: Any,
        every_k_schedule: Any,
        use_grad_mean: bool = True,
        should_skip_update_fn: Callable[..., Any] | None = None,
        accumulator_dtype: Any = jnp.float32,
    ):
        check_optimizer(opt, "opt")
        if not callable(every_k_schedule):
            _check_period("every_k_schedule", every_k_schedule)
        check_flag("use_grad_mean", use_grad_mean)
        skip = _never_skip if should_skip_update_fn is None else should_skip_update_fn
        check_callable("should_skip_update_fn", skip)
        config = dict(
            skip=Static(skip),
            dtype=Static(canonical_dtype("accumulator_dtype", accumulator_dtype)),
        )
        self._opt = opt
        self._transformation = Optimizer(
            bind(_multi_init, inner_init=opt.init, **config),
            bind(
                _multi_update,
                inner_update=opt.update,
                every_k=every_k_schedule,
                mean=Static(use_grad_mean),
                **config,
            ),
        )

    @property
    def inner_opt(self) -> Any:
        return self._opt

    def init(self, params: Params) -> MultiStepsState:
        return self._transformation.init(params)

    def update(self, updates, state, params=None, **extra_args):
        return self._transformation.update(updates, state, params, **extra_args)

    def has_updated(self, state: Any) -> jax.Array:
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> Optimizer:
        return self._transformation


def _multi_init(h, params):
    step = jnp.zeros([], jnp.int32)
    _, skip_state = h.skip(tree_zeros_like(params), step, params)
    return MultiStepsState(
        mini_step=jnp.zeros([], jnp.int32),
        gradient_step=step,
        inner_opt_state=h.inner_init(params),
        acc_grads=tree_zeros_like(params, h.dtype),
        skip_state=skip_state,
    )


def _multi_update(h, updates, state, params=None, **extra_args):
    k = _as_count(h.every_k(state.gradient_step) if callable(h.every_k) else h.every_k)
    skip, skip_state = h.skip(updates, state.gradient_step, params)
    skip = jnp.asarray(skip)
    if (skip.dtype, skip.shape) != (jnp.bool_, ()):
        raise InputValueError(
            "`should_skip_update_fn` must return a boolean scalar first, got dtype "
            f"{skip.dtype} and shape {skip.shape}."
        )

    def accumulate(a, g):
        # the running mean keeps the accumulator at the gradients' scale
        return a + (g - a) / (state.mini_step + 1) if h.mean else g + a

    def inner(acc, inner_state, p):
        acc = jax.tree.map(lambda a, g: a.astype(g.dtype), acc, updates)
        return _run(h.inner_update, acc, inner_state, p, extra_args)

    def do(_):
        acc = jax.tree.map(accumulate, state.acc_grads, updates)
        new_updates, new_inner = inner(acc, state.inner_opt_state, params)
        emit = state.mini_step == k - 1
        new_state = MultiStepsState(
            mini_step=safe_increment(state.mini_step) % k,
            gradient_step=jnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            inner_opt_state=jax.tree.map(
                lambda old, new: jnp.where(emit, new, old).astype(old.dtype),
                state.inner_opt_state,
                new_inner,
            ),
            acc_grads=jax.tree.map(lambda a: ((1 - emit) * a).astype(h.dtype), acc),
            skip_state=skip_state,
        )
        return jax.tree.map(lambda u: emit * u, new_updates), new_state

    def drop(_):
        shapes, _ = jax.eval_shape(inner, state.acc_grads, state.inner_opt_state, params)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return zeros, state._replace(skip_state=skip_state)

    return lax.cond(skip, drop, do, None)


# --------------------------------------------------------------------------------------
# Lookahead
# --------------------------------------------------------------------------------------


class LookaheadState(NamedTuple):
    fast_state: Any
    steps_since_sync: jax.Array


class LookaheadParams(NamedTuple):
    """The fast weights (trained by the inner optimizer) and the slow ones."""

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> LookaheadParams:
        return cls(slow=params, fast=params)


def lookahead(
    fast_optimizer: Any, sync_period: Any, slow_step_size: Any, reset_state: bool = False
) -> Optimizer:
    r"""Lookahead (Zhang et al., 2019, arXiv:1907.08610). ``fast_optimizer`` moves the
    fast weights every step; every ``sync_period`` steps the slow weights move
    :math:`\phi \leftarrow \phi + \alpha (\theta - \phi)` and the fast ones are reset to
    them. Params are :class:`LookaheadParams`; the updates returned are too (apply them
    with ``apply_updates``). ``reset_state`` also resets the fast optimizer's state at
    each synchronisation. ``sync_period`` (an int) and :math:`\alpha` are leaves."""
    check_optimizer(fast_optimizer, "fast_optimizer")
    _check_period("sync_period", sync_period)
    check_hyperparameter("slow_step_size", slow_step_size)
    check_flag("reset_state", reset_state)
    return Optimizer(
        bind(_lookahead_init, inner_init=fast_optimizer.init),
        bind(
            _lookahead_update,
            inner_init=fast_optimizer.init,
            inner_update=fast_optimizer.update,
            sync_period=sync_period,
            alpha=slow_step_size,
            reset=Static(reset_state),
        ),
    )


def _lookahead_init(h, params):
    # plain params are taken as the fast ones (optax logs a warning and does the same)
    fast = params.fast if isinstance(params, LookaheadParams) else params
    return LookaheadState(fast_state=h.inner_init(fast), steps_since_sync=_count())


def _lookahead_update(h, updates, state, params=None, **extra_args):
    del extra_args  # optax's lookahead forwards none either
    if not isinstance(params, LookaheadParams):
        raise InputTypeError("lookahead's `params` must be a LookaheadParams(fast=, slow=).")
    updates, fast_state = h.inner_update(updates, state.fast_state, params.fast)
    period = _as_count(h.sync_period)
    sync = state.steps_since_sync == period - 1
    # distance from the slow weights to where the fast ones would land
    diff = jax.tree.map(lambda f, u, s: f + u - s, params.fast, updates, params.slow)
    slow = jax.tree.map(lambda d: h.alpha * sync * d, diff)
    fast = jax.tree.map(lambda u, d: u - sync * (1 - h.alpha) * d, updates, diff)
    if h.reset:
        fresh = h.inner_init(params.fast)
        fast_state = jax.tree.map(lambda c, i: (1 - sync) * c + sync * i, fast_state, fresh)
    steps = (state.steps_since_sync + 1) % period
    return LookaheadParams(fast=fast, slow=slow), LookaheadState(fast_state, steps)


# --------------------------------------------------------------------------------------
# Conditional application
# --------------------------------------------------------------------------------------


class ConditionallyTransformState(NamedTuple):
    inner_state: Any
    step: jax.Array


class ConditionallyMaskState(NamedTuple):
    step: jax.Array
    inner_state: Any


def _check_conditional(inner, should_transform_fn, forward_extra_args) -> dict[str, Any]:
    check_optimizer(inner, "inner")
    check_callable("should_transform_fn", should_transform_fn)
    check_flag("forward_extra_args", forward_extra_args)
    return dict(condition=Static(should_transform_fn), forward=Static(forward_extra_args))


def conditionally_transform(
    inner: Any, should_transform_fn: Callable[..., Any], forward_extra_args: bool = False
) -> Optimizer:
    r"""Apply ``inner`` at the steps where ``should_transform_fn(step, **extra)`` is
    True; at the others pass the updates through unchanged and keep ``inner``'s state."""
    config = _check_conditional(inner, should_transform_fn, forward_extra_args)
    return Optimizer(
        bind(_conditional_init, inner_init=inner.init, mask=Static(False)),
        bind(_conditional_update, inner_update=inner.update, mask=Static(False), **config),
    )


def conditionally_mask(
    inner: Any, should_transform_fn: Callable[..., Any], forward_extra_args: bool = False
) -> Optimizer:
    r"""As :func:`conditionally_transform`, but the updates are *zero* at the steps
    where ``should_transform_fn`` is False."""
    config = _check_conditional(inner, should_transform_fn, forward_extra_args)
    return Optimizer(
        bind(_conditional_init, inner_init=inner.init, mask=Static(True)),
        bind(_conditional_update, inner_update=inner.update, mask=Static(True), **config),
    )


def _conditional_init(h, params):
    if h.mask:
        return ConditionallyMaskState(step=_count(), inner_state=h.inner_init(params))
    return ConditionallyTransformState(inner_state=h.inner_init(params), step=_count())


def _conditional_update(h, updates, state, params=None, **extra_args):
    def apply(_):
        return _run(h.inner_update, updates, state.inner_state, params, extra_args)

    def reject(_):
        kept = tree_zeros_like(updates) if h.mask else updates
        return kept, state.inner_state

    condition = h.condition(state.step, **(extra_args if h.forward else {}))
    updates, inner_state = lax.cond(condition, apply, reject, None)
    step = safe_increment(state.step)
    if h.mask:
        return updates, ConditionallyMaskState(step=step, inner_state=inner_state)
    return updates, ConditionallyTransformState(inner_state=inner_state, step=step)


# --------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------


class AddNoiseState(NamedTuple):
    count: jax.Array
    rng_key: jax.Array


def add_noise(eta: Any, gamma: Any, key: Any = None, *, seed: int | None = None) -> Optimizer:
    r"""Annealed Gaussian gradient noise (Neelakantan et al., 2015, arXiv:1511.06807):
    :math:`u_t = g_t + \sqrt{\eta / t^{\gamma}}\, \xi_t`, :math:`\xi_t \sim N(0, I)`, one
    key split per step and per leaf (the same draws as optax for the same key). ``key``
    is a ``jax.random.key``, or an int seed (``seed=`` is its deprecated spelling);
    None means seed 0. ``eta``, ``gamma`` and the key are leaves."""
    check_hyperparameter("eta", eta)
    check_hyperparameter("gamma", gamma, low=None)
    if seed is not None:
        if key is not None:
            raise InputValueError("Give `key` or `seed`, not both.")
        key = seed
    key = 0 if key is None else key
    if not (
        isinstance(key, (int, np.integer, jax.Array, np.ndarray)) and not isinstance(key, bool)
    ):
        raise InputTypeError(f"`key` must be a jax.random key or an int seed, got {key!r}.")
    return Optimizer(bind(_noise_init, key=key), bind(_noise_update, eta=eta, gamma=gamma))


def _noise_init(h, params):
    del params
    key = h.key
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    return AddNoiseState(count=_count(), rng_key=key if typed else jax.random.key(key))


def _noise_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    count = safe_increment(state.count)
    std = jnp.sqrt(h.eta / count**h.gamma)
    rng_key, sample_key = jax.random.split(state.rng_key)
    leaves, treedef = jax.tree.flatten(updates)
    keys = jax.random.split(sample_key, len(leaves))
    noisy = [
        g + std * jax.random.normal(k, g.shape, g.dtype) for g, k in zip(leaves, keys, strict=True)
    ]
    return treedef.unflatten(noisy), AddNoiseState(count=count, rng_key=rng_key)


# --------------------------------------------------------------------------------------
# Monitoring
# --------------------------------------------------------------------------------------


class SnapshotState(NamedTuple):
    measurement: dict[str, Any]


def snapshot(measure_name: str, measure: Callable[[Updates], Any]) -> Optimizer:
    r"""Record ``measure(updates)`` in the state (``measure(params)`` at init) under
    ``measure_name``; the updates pass unchanged."""
    check_callable("measure", measure)
    config = dict(name=Static(str(measure_name)), measure=Static(measure))
    return Optimizer(bind(_snapshot_init, **config), bind(_snapshot_update, **config))


def _snapshot_init(h, params):
    return SnapshotState({h.name: h.measure(params)})


def _snapshot_update(h, updates, state, params=None, **extra_args):
    del state, params, extra_args
    return updates, SnapshotState({h.name: h.measure(updates)})


class MonitorState(NamedTuple):
    measurements: dict[str, Any]
    measure_states: tuple


def _as_measure(measure: Any, name: str) -> Optimizer:
    if isinstance(measure, Optimizer) or (hasattr(measure, "init") and hasattr(measure, "update")):
        check_optimizer(measure, name)
        return measure
    check_callable(name, measure, "a callable or a transform")
    return stateless(_MeasureOfUpdates(measure))


class _MeasureOfUpdates:
    """``(updates, params) -> measure(updates)``, equal for equal measures (so two builds
    of one monitor share a compiled program)."""

    def __init__(self, measure):
        self.measure = measure

    def __call__(self, updates, params):
        del params
        return self.measure(updates)

    def __eq__(self, other):
        return isinstance(other, _MeasureOfUpdates) and other.measure is self.measure

    def __hash__(self):
        return hash(("measure", id(self.measure)))


def monitor(measures: dict[str, Any]) -> Optimizer:
    r"""Record measurements of the updates without changing them: each entry of
    ``measures`` is a function ``updates -> value`` or a transform whose *output* is the
    measurement (e.g. :func:`measure_with_ema`). ``state.measurements[name]`` holds
    the last values.

    Unlike optax (whose initial ``measurements`` is an empty dict), the initial
    measurements are zeros shaped like the first real ones, so the state keeps one
    structure and can be a ``lax.scan`` carry.
    """
    if not isinstance(measures, Mapping) or not measures:
        raise InputTypeError("`measures` must be a non-empty dict name -> measure.")
    names = tuple(measures)
    transforms = [_as_measure(measures[n], f"measures[{n!r}]") for n in names]
    return Optimizer(
        bind(
            _monitor_init,
            names=Static(names),
            inits=tuple(t.init for t in transforms),
            updates=tuple(t.update for t in transforms),
        ),
        bind(_monitor_update, names=Static(names), updates=tuple(t.update for t in transforms)),
    )


def _monitor_init(h, params):
    states = tuple(init(params) for init in _each(h.inits))

    def measured(update, s):
        return jax.eval_shape(lambda p, st: _run(update, p, st, p, {})[0], params, s)

    shapes = {n: measured(u, s) for n, u, s in zip(h.names, _each(h.updates), states, strict=True)}
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return MonitorState(zeros, states)


def _monitor_update(h, updates, state, params=None, **extra_args):
    measurements, states = {}, []
    for name, update, s in zip(h.names, _each(h.updates), state.measure_states, strict=True):
        measurements[name], s = _run(update, updates, s, params, extra_args)
        states.append(s)
    return updates, MonitorState(measurements, tuple(states))


def measure_with_ema(
    measure: Callable[[Updates], Any],
    decay: Any,
    debias: bool = True,
    accumulator_dtype: Any = None,
) -> Optimizer:
    r"""The exponential moving average of ``measure(updates)`` (see :func:`ema`), as a
    transform whose *output* is that average: meant as an entry of :func:`monitor`."""
    check_callable("measure", measure)
    average = ema(decay, debias, accumulator_dtype)
    measured = Optimizer(
        bind(_measured_ema_init, measure=Static(measure), inner_init=average.init),
        average.update,
    )
    return chain(stateless(_MeasureOfUpdates(measure)), measured)


def _measured_ema_init(h, params):
    return h.inner_init(h.measure(params))


# --------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------


def flatten(inner: Any) -> Optimizer:
    r"""Run ``inner`` on one vector holding every leaf (concatenated in tree order) and
    split its output back: fewer, larger kernels for trees of many small leaves."""
    check_optimizer(inner, "inner")
    return Optimizer(
        bind(_flatten_init, inner_init=inner.init),
        bind(_flatten_update, inner_update=inner.update),
    )


def _flat(tree: Any) -> jax.Array:
    return jnp.concatenate([jnp.reshape(x, [-1]) for x in jax.tree.leaves(tree)])


def _flatten_init(h, params):
    return h.inner_init(_flat(params))


def _flatten_update(h, updates, state, params=None, **extra_args):
    flat_params = None if params is None else _flat(params)
    flat, state = _run(h.inner_update, _flat(updates), state, flat_params, extra_args)
    leaves, treedef = jax.tree.flatten(updates)
    offsets = np.cumsum([np.size(x) for x in leaves])[:-1]
    pieces = jnp.split(flat, offsets)
    return treedef.unflatten(
        [p.reshape(x.shape) for p, x in zip(pieces, leaves, strict=True)]
    ), state


# --------------------------------------------------------------------------------------
# Functions on trees (not transforms)
# --------------------------------------------------------------------------------------


def incremental_update(new_tensors: Any, old_tensors: Any, step_size: Any) -> Any:
    r"""Polyak averaging: :math:`\alpha\, \text{new} + (1-\alpha)\, \text{old}` per leaf
    (None leaves kept)."""
    check_hyperparameter("step_size", step_size, low=None)
    return tree_map(lambda n, o: step_size * n + (1.0 - step_size) * o, new_tensors, old_tensors)


def periodic_update(new_tensors: Any, old_tensors: Any, steps: Any, update_period: Any) -> Any:
    r"""``new_tensors`` when ``steps`` is a multiple of ``update_period``, else
    ``old_tensors`` (a target network's periodic copy)."""
    check_hyperparameter("update_period", update_period, low=1)
    return lax.cond(
        jnp.mod(steps, update_period) == 0, lambda _: new_tensors, lambda _: old_tensors, None
    )


@jax.custom_vjp
def _scaled_identity(inputs, scale):
    return inputs


def _scaled_fwd(inputs, scale):
    return inputs, scale


def _scaled_bwd(scale, cotangents):
    return jax.tree.map(lambda c: c * scale, cotangents), None


_scaled_identity.defvjp(_scaled_fwd, _scaled_bwd)


def scale_gradient(inputs: Any, scale: Any) -> Any:
    r"""The identity on the forward pass; multiplies the gradient flowing back through
    it by ``scale`` (a number or a traced value; 0 stops it, 1 is a no-op)."""
    check_hyperparameter("scale", scale, low=None)
    if is_concrete(scale) and np.ndim(scale) == 0:
        if float(np.asarray(scale)) == 1.0:
            return inputs
        if float(np.asarray(scale)) == 0.0:
            return lax.stop_gradient(inputs)
    return _scaled_identity(inputs, scale)


def _check_batched(grads: Any, name: str) -> None:
    leaves = jax.tree.leaves(grads)
    if not leaves or not all(
        jnp.ndim(g) >= 1 and jnp.shape(g)[0] == jnp.shape(leaves[0])[0] for g in leaves
    ):
        raise InputValueError(
            f"`{name}` must have a batch dimension (the same size) as the first axis of "
            f"every leaf; got shapes {jax.tree.map(jnp.shape, grads)}."
        )


def per_example_global_norm_clip(grads: Any, l2_norm_clip: Any) -> tuple[Any, jax.Array]:
    r"""DP-SGD clipping (Abadi et al., 2016, arXiv:1607.00133): clip each example's
    gradient (leading axis) to global norm ``l2_norm_clip`` and sum over examples.
    Returns ``(summed, number of examples clipped)``."""
    _check_batched(grads, "grads")
    check_hyperparameter("l2_norm_clip", l2_norm_clip)
    return _clip_and_sum(grads, l2_norm_clip)


def _clip_and_sum(grads, clip):
    norms = jax.vmap(global_norm)(grads)
    factors = jnp.nan_to_num(jnp.minimum(clip / norms, 1.0), nan=1.0)
    summed = jax.tree.map(lambda g: jnp.tensordot(factors, g, axes=1), grads)
    return summed, jnp.sum(factors < 1.0)


def per_example_layer_norm_clip(
    grads: Any, global_l2_norm_clip: Any, uniform: bool = True
) -> tuple[Any, Any]:
    r"""Per-layer DP clipping: each leaf clipped per example to
    :math:`C/\sqrt{L}` (``uniform``) or :math:`C\sqrt{n_\ell / n}` (by layer size), then
    summed over examples. Returns ``(summed, clipped counts)``, both shaped like
    ``grads``'s tree."""
    _check_batched(grads, "grads")
    check_hyperparameter("global_l2_norm_clip", global_l2_norm_clip)
    check_flag("uniform", uniform)
    leaves, treedef = jax.tree.flatten(grads)
    total = sum(g[0].size for g in leaves)
    results = []
    for g in leaves:
        share = (1.0 / len(leaves)) if uniform else (g[0].size / total)
        results.append(_clip_and_sum(g, global_l2_norm_clip * share**0.5))
    return treedef.unflatten([r[0] for r in results]), treedef.unflatten([r[1] for r in results])


# --------------------------------------------------------------------------------------
# inject_hyperparams
# --------------------------------------------------------------------------------------


class InjectHyperparamsState(NamedTuple):
    count: jax.Array
    hyperparams: dict[str, Any]
    inner_state: Any


class WrappedScheduleState(NamedTuple):
    count: jax.Array


class InjectStatefulHyperparamsState(NamedTuple):
    count: jax.Array
    hyperparams: dict[str, Any]
    hyperparams_states: dict[str, Any]
    inner_state: Any


def inject_hyperparams(
    inner_factory: Callable[..., Any],
    static_args: str | Any = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., Optimizer]:
    r"""Make hyperparameters visible (and writable) in the optimizer state, and let any
    numeric one be a schedule: ``inject_hyperparams(adam)(learning_rate=sched, b1=0.9)``.

    Each ``update`` rebuilds ``inner_factory(**hyperparams)`` from
    ``state.hyperparams`` (a number's current value, which a training loop may
    overwrite) and from each schedule evaluated at its own count, and records the
    values used in ``state.hyperparams``, as optax does. Numbers and schedules stay
    leaves of the returned optimizer, so sweeping one still compiles once. Arguments
    named in ``static_args``, bools and non-numeric values are passed as given.
    ``hyperparam_dtype`` (default: the params' highest float dtype) is the dtype of
    float hyperparameters in the state.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> opt = jol.inject_hyperparams(jol.adam)(learning_rate=jol.linear_schedule(0.1, 0.0, 10))
    >>> params = jnp.zeros(2)
    >>> state = opt.init(params)
    >>> for _ in range(2):
    ...     _, state = opt.update(jnp.ones(2), state, params)
    >>> round(float(state.hyperparams["learning_rate"]), 3)  # what the second update used
    0.09
    """
    check_callable("inner_factory", inner_factory)
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    if not static.issubset(signature.parameters):
        raise InputValueError(
            f"`static_args` {sorted(static)} must name arguments of `inner_factory` "
            f"({list(signature.parameters)})."
        )
    dtype = (
        None if hyperparam_dtype is None else canonical_dtype("hyperparam_dtype", hyperparam_dtype)
    )

    @functools.wraps(inner_factory)
    def wrapped(*args: Any, **kwargs: Any) -> Optimizer:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        numbers, schedules, others = {}, {}, {}
        for name, value in bound.arguments.items():
            if name in static or isinstance(value, bool):
                others[name] = value
            elif callable(value):
                schedules[name] = value
            elif isinstance(value, (int, float, jax.Array, np.ndarray, np.number)):
                numbers[name] = value
            else:
                others[name] = value
        config = dict(
            factory=Static(inner_factory),
            others=Static(others),
            dtype=Static(dtype),
            numbers=Static(tuple(numbers)),
            schedules=Static(tuple(schedules)),
            # one hparam per value, so numbers are leaves and pytree schedules children
            **{f"value_{k}": v for k, v in (numbers | schedules).items()},
        )
        return Optimizer(bind(_inject_init, **config), bind(_inject_update, **config))

    return wrapped


def _value(h, name):
    return getattr(h, f"value_{name}")


def _float_as(value: Any, dtype: Any) -> Any:
    """A float hyperparameter in ``dtype``; a strongly typed array keeps its own."""
    if isinstance(value, jax.Array) and not getattr(value, "weak_type", False):
        return value
    if jnp.issubdtype(getattr(value, "dtype", type(value)), jnp.floating):
        return jnp.asarray(value, dtype=dtype)
    return value


def _hp_dtype(h, params):
    if h.dtype is not None:
        return h.dtype
    leaves = [jnp.asarray(x).dtype for x in jax.tree.leaves(params)]
    if not leaves:
        return jnp.asarray(0.0).dtype
    return functools.reduce(lambda a, b: b if jnp.promote_types(a, b) == b else a, leaves)


def _is_stateful(schedule: Any) -> bool:
    """optax's StatefulSchedule protocol: ``init()``, ``update(state, **extra)`` and
    ``schedule(state, **extra)``; plain schedules take the count."""
    return hasattr(schedule, "init") and hasattr(schedule, "update")


def _schedule_start(schedule: Any) -> Any:
    return schedule.init() if _is_stateful(schedule) else WrappedScheduleState(_count())


def _schedule_value(schedule: Any, state: Any, extra_args: dict) -> Any:
    return schedule(state, **extra_args) if _is_stateful(schedule) else schedule(state.count)


def _schedule_next(schedule: Any, state: Any, extra_args: dict) -> Any:
    if _is_stateful(schedule):
        return schedule.update(state, **extra_args)
    return WrappedScheduleState(safe_increment(state.count))


def _inject_init(h, params):
    dtype = _hp_dtype(h, params)
    values = {k: jnp.asarray(_float_as(_value(h, k), dtype)) for k in h.numbers}
    starts = {k: _schedule_start(_value(h, k)) for k in h.schedules}
    values.update(
        {k: _float_as(_schedule_value(_value(h, k), starts[k], {}), dtype) for k in h.schedules}
    )
    inner = h.factory(**h.others, **values)
    return InjectStatefulHyperparamsState(_count(), values, starts, inner.init(params))


def _inject_update(h, updates, state, params=None, **extra_args):
    dtype = _hp_dtype(h, params)
    values = {k: _float_as(v, dtype) for k, v in state.hyperparams.items()}
    schedule_states = state.hyperparams_states
    for k in h.schedules:
        value = _schedule_value(_value(h, k), schedule_states[k], extra_args)
        values[k] = _float_as(value, dtype)
    next_states = {
        k: _schedule_next(_value(h, k), schedule_states[k], extra_args) for k in h.schedules
    }
    inner = h.factory(**h.others, **values)
    updates, inner_state = _run(inner.update, updates, state.inner_state, params, extra_args)
    return updates, InjectStatefulHyperparamsState(
        safe_increment(state.count), values, next_states, inner_state
    )


# --------------------------------------------------------------------------------------
# microbatch
# --------------------------------------------------------------------------------------


class AccumulationType(enum.Enum):
    """How :func:`microbatch` combines the microbatches' outputs."""

    MEAN = enum.auto()
    SUM = enum.auto()
    RUNNING_MEAN = enum.auto()
    CONCAT = enum.auto()


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """A custom combination for one output leaf: ``carry = init(value_shape)``,
    ``carry = update(carry, value, index)`` per microbatch, ``finalize(carry)``;
    ``aggregate(values)`` reduces a batch axis (used by optax's ``micro_vmap``)."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


def _require_float(x: Any) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputTypeError("MEAN and RUNNING_MEAN accumulate floating-point outputs only.")


def _leaf_accumulator(kind: Any, num_microbatches: int) -> Any:
    """Our Accumulator for an AccumulationType (ours or optax's, matched by name)."""
    if hasattr(kind, "init") and hasattr(kind, "update") and hasattr(kind, "finalize"):
        return kind
    name = getattr(kind, "name", None)
    if name not in AccumulationType.__members__:
        raise InputValueError(f"`accumulator` has an unknown entry {kind!r}.")
    n = num_microbatches
    if name == "SUM":
        return Accumulator(jnp.zeros_like, lambda c, v, i: c + v, lambda c: c, None)
    if name == "MEAN":
        return Accumulator(_zeros_float, lambda c, v, i: c + v, lambda c: c / n, None)
    if name == "RUNNING_MEAN":
        # the mean of the first i + 1 values, updated in place
        return Accumulator(_zeros_float, _running_mean, lambda c: c, None)
    return Accumulator(
        lambda v: jnp.zeros((n,) + v.shape, v.dtype),
        lambda c, v, i: c.at[i].set(v),
        lambda c: c.reshape(-1, *c.shape[2:], order="F"),
        None,
    )


def _zeros_float(x):
    _require_float(x)
    return jnp.zeros_like(x)


def _running_mean(carry, value, index):
    p = index / (index + 1)
    return carry * p + value * (1 - p)


def _batch_size(batch_args: list, axes: tuple) -> int:
    sizes = {
        x.shape[ax]
        for ax, tree in zip(axes, batch_args, strict=True)
        for x in jax.tree.leaves(tree)
    }
    if len(sizes) != 1:
        raise InputValueError(
            f"The batch arguments must share one batch size, got {sorted(sizes)}."
        )
    return sizes.pop()


def microbatch(
    fun: Callable[..., Any],
    argnums: Any,
    microbatch_size: int | None,
    accumulator: Any = AccumulationType.SUM,
    *,
    argnames: Any = (),
    in_axes: Any = 0,
    num_real_microbatches: Any = None,
) -> Callable[..., Any]:
    r"""Evaluate ``fun`` one microbatch at a time (a ``fori_loop``) and combine the
    outputs: memory for a large batch at the cost of a loop. The batch axis of the
    arguments ``argnums``/``argnames`` (``in_axes``) is cut into microbatches of
    ``microbatch_size`` examples taken with stride ``batch / microbatch_size`` (as in
    optax); ``accumulator`` (one :class:`AccumulationType` or :class:`Accumulator`, or a
    pytree of them matching the output) combines them. ``num_real_microbatches`` stops
    early. ``microbatch_size=None`` returns ``fun``."""
    check_callable("fun", fun)
    if microbatch_size is None:
        return fun
    size = int(microbatch_size) if isinstance(microbatch_size, (int, np.integer)) else 0
    if size < 1 or isinstance(microbatch_size, bool):
        raise InputValueError(f"`microbatch_size` must be an int >= 1, got {microbatch_size!r}.")
    argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    argnames = (argnames,) if isinstance(argnames, str) else tuple(argnames)
    axes = (
        (in_axes,) * (len(argnums) + len(argnames)) if isinstance(in_axes, int) else tuple(in_axes)
    )
    if len(axes) != len(argnums) + len(argnames):
        raise InputValueError("`in_axes` needs one axis per entry of `argnums` and `argnames`.")

    def microbatched(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = list(args), dict(kwargs)
        slots = [(args, i) for i in argnums] + [(kwargs, k) for k in argnames]
        batch = _batch_size([box[key] for box, key in slots], axes)
        if batch % size:
            raise InputValueError(f"The batch size {batch} must be divisible by `microbatch_size`.")
        n = batch // size
        for (box, key), ax in zip(slots, axes, strict=True):
            box[key] = jax.tree.map(
                lambda x, ax=ax: x.reshape(
                    x.shape[:ax] + (-1, size) + x.shape[ax + 1 :], order="F"
                ),
                box[key],
            )

        def one(index):
            a, k = list(args), dict(kwargs)
            for (box, key), ax in zip(slots, axes, strict=True):
                target = a if box is args else k
                target[key] = jax.tree.map(lambda x, ax=ax: jnp.take(x, index, axis=ax), box[key])
            return fun(*a, **k)

        shapes = jax.eval_shape(one, 0)
        accumulators = jax.tree.map(lambda kind: _leaf_accumulator(kind, n), accumulator)
        # one accumulator per output leaf (the argument may be a prefix of the output)
        per_leaf = jax.tree.map(
            lambda acc, sub: jax.tree.map(lambda _: acc, sub), accumulators, shapes
        )
        carry0 = jax.tree.map(lambda acc, s: acc.init(s), per_leaf, shapes)

        def body(index, carry):
            return jax.tree.map(
                lambda acc, c, v: acc.update(c, v, index), per_leaf, carry, one(index)
            )

        bound = n if num_real_microbatches is None else num_real_microbatches
        return jax.tree.map(
            lambda acc, c: acc.finalize(c), per_leaf, lax.fori_loop(0, bound, body, carry0)
        )

    return microbatched


__all__ = [
    "AccumulationType",
    "Accumulator",
    "microbatch",
    "AdaptiveGradClipState",
    "AddNoiseState",
    "ApplyEvery",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "EmaState",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "LookaheadParams",
    "LookaheadState",
    "MaskedNode",
    "MaskedState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransformState",
    "NonNegativeParamsState",
    "PartitionState",
    "SnapshotState",
    "WrappedScheduleState",
    "ZeroNansState",
    "adaptive_grad_clip",
    "add_noise",
    "apply_every",
    "centralize",
    "clip_by_block_rms",
    "conditionally_mask",
    "conditionally_transform",
    "ema",
    "flatten",
    "freeze",
    "incremental_update",
    "inject_hyperparams",
    "keep_params_nonnegative",
    "lookahead",
    "masked",
    "measure_with_ema",
    "monitor",
    "multi_transform",
    "named_chain",
    "normalize_by_update_norm",
    "partition",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "periodic_update",
    "scale_gradient",
    "selective_transform",
    "set_to_zero",
    "skip_large_updates",
    "skip_not_finite",
    "snapshot",
    "stateless",
    "stateless_with_tree_map",
    "zero_nans",
]
