r"""GaLore: gradient low-rank projection (Zhao et al., *GaLore: Memory-Efficient LLM
Training by Gradient Low-Rank Projection*, 2024, arXiv:2403.03507).

A weight matrix's gradient :math:`G \in \mathbb{R}^{m\times n}` is projected onto its
top-:math:`r` singular subspace, a base optimizer (Adam by default) runs there, with
states of :math:`r \times n` (or :math:`m \times r`) entries instead of :math:`m \times n`,
and its update is projected back.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import transforms as T
from jaxopt_lab.base import Optimizer, ScalarOrSchedule, Static, bind, chain, safe_increment
from jaxopt_lab.checks import check_count, check_hyperparameter, check_optimizer, is_concrete
from jaxopt_lab.errors import InputValueError


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a weight form the rows (``reduction_axis``) and the columns
    (``output_axis``) of the matrix GaLore projects; together they must name every axis.
    E.g. attention weights of shape (embed, heads, head_dim): ``(0, (1, 2))``."""

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


class GaLoreState(NamedTuple):
    """``count`` steps taken; the base optimizer's state on the projected gradients;
    a projector per leaf (shape (0, 0) for leaves not projected)."""

    count: jax.Array
    base_optimizer_state: Any
    projector: Any


def _is_dims(x: Any) -> bool:
    return x is None or isinstance(x, GaLoreDimensionNumbers)


def _resolve_dims(spec: Any, params: Any) -> Any:
    """A tree, one entry per leaf: its GaLoreDimensionNumbers, or None (not projected)."""
    if spec is None:
        return jax.tree.map(lambda p: GaLoreDimensionNumbers() if p.ndim == 2 else None, params)
    if isinstance(spec, GaLoreDimensionNumbers):
        return jax.tree.map(lambda p: spec if p.ndim >= 2 else None, params)
    return spec(params) if callable(spec) else spec


def _layout(shape: tuple, dims: GaLoreDimensionNumbers) -> tuple:
    """``(permutation, (m, n))``: transpose by the permutation, then reshape to (m, n)."""
    as_tuple = lambda a: (a,) if isinstance(a, (int, np.integer)) else tuple(a)  # noqa: E731
    ndim = len(shape)
    red = tuple(int(a) % max(ndim, 1) for a in as_tuple(dims.reduction_axis))
    out = tuple(int(a) % max(ndim, 1) for a in as_tuple(dims.output_axis))
    if ndim < 2 or set(red) & set(out) or len(set(red) | set(out)) != ndim:
        raise InputValueError(
            "`weight_dimension_numbers`: GaLore needs a weight of rank >= 2 whose reduction "
            f"and output axes are disjoint and name every axis; got shape {shape} with {dims}."
        )
    m, n = math.prod(shape[a] for a in red), math.prod(shape[a] for a in out)
    return red + out, (m, n)


def _to_matrix(x: jax.Array, dims) -> jax.Array:
    perm, mn = _layout(x.shape, dims)
    return x.transpose(perm).reshape(mn)


def _from_matrix(y: jax.Array, like: jax.Array, dims) -> jax.Array:
    perm, _ = _layout(like.shape, dims)
    return y.reshape(tuple(like.shape[a] for a in perm)).transpose(np.argsort(perm))


def _shapes(shape: tuple, dims, rank: int) -> tuple:
    """``(projector shape, projected shape)`` of a leaf: :math:`P` is :math:`m\\times r`
    (projecting from the left) when :math:`m \\ge n`, else :math:`n \\times r`."""
    if dims is None:
        return (0, 0), shape
    _, (m, n) = _layout(shape, dims)
    r = min(rank, m, n)
    return ((m, r), (r, n)) if m >= n else ((n, r), (m, r))


def scale_by_galore(
    rank: int = 128,
    update_proj_gap: Any = 200,
    scale: Any = 1.0,
    base_optimizer: Any = None,
    weight_dimension_numbers: Any = None,
) -> Optimizer:
    r"""GaLore's (Zhao et al., 2024) direction. For a projected leaf with gradient :math:`G` (as an
    :math:`m\times n` matrix), every ``update_proj_gap`` steps (from step 0)
    :math:`P \leftarrow U_{:, :r}` of :math:`G = U S V^T` if :math:`m \ge n`, else
    :math:`P \leftarrow V_{:, :r}`, :math:`r = \min(\text{rank}, m, n)`; then

    .. math::
        R = P^T G \;(\text{or } G P),\qquad \tilde R = \text{base}(R),\qquad
        u = s\, P \tilde R \;(\text{or } s\, \tilde R P^T),

    with :math:`s` = ``scale``. Other leaves go through the base optimizer (default
    :func:`~jaxopt_lab.scale_by_adam`) unprojected (and unscaled). By default only
    2-D leaves are projected; ``weight_dimension_numbers`` is a
    :class:`GaLoreDimensionNumbers` for every leaf of rank >= 2, a tree of them (None:
    not projected) or a function ``params -> tree``. The SVD is taken in float32 (as
    optax does, also for float64 params); the base optimizer gets no params, so it
    must not need them (use ``galore``'s ``weight_decay``, not ``adamw``).
    ``update_proj_gap``, ``scale`` and the base optimizer's hyperparameters are leaves.
    """
    rank = check_count("rank", rank)
    check_hyperparameter("update_proj_gap", update_proj_gap, low=1)
    if is_concrete(update_proj_gap) and np.any(np.asarray(update_proj_gap) % 1 != 0):
        raise InputValueError(f"`update_proj_gap` must be a whole number, got {update_proj_gap}.")
    check_hyperparameter("scale", scale, low=None)
    base = T.scale_by_adam() if base_optimizer is None else base_optimizer
    check_optimizer(base, "base_optimizer")
    if not (weight_dimension_numbers is None or callable(weight_dimension_numbers)):
        for d in jax.tree.leaves(weight_dimension_numbers, is_leaf=_is_dims):
            if d is not None and not isinstance(d, GaLoreDimensionNumbers):
                raise InputValueError(
                    "`weight_dimension_numbers` must be a GaLoreDimensionNumbers, a tree of "
                    f"them (None where not projected) or a function of params; got {d!r}."
                )
    config = dict(rank=Static(rank), dims=Static(weight_dimension_numbers))
    return Optimizer(
        bind(_galore_init, base_init=base.init, **config),
        bind(
            _galore_update,
            base_update=base.update,
            update_proj_gap=update_proj_gap,
            scale=scale,
            **config,
        ),
    )


def _galore_init(h, params):
    dims = _resolve_dims(h.dims, params)
    shapes = jax.tree.map(lambda p, d: _shapes(p.shape, d, h.rank), params, dims)
    projector = jax.tree.map(lambda p, s: jnp.zeros(s[0], p.dtype), params, shapes)
    proxies = jax.tree.map(lambda p, s: jnp.zeros(s[1], p.dtype), params, shapes)
    return GaLoreState(jnp.zeros([], jnp.int32), h.base_init(proxies), projector)


def _new_projector(g2: jax.Array, r: int, left: bool) -> jax.Array:
    u, _, vh = jnp.linalg.svd(g2.astype(jnp.float32), full_matrices=False)
    return (u[:, :r] if left else vh[:r, :].T).astype(g2.dtype)


def _project(h, g, projector, dims, refresh):
    if dims is None:
        return g, projector
    g2 = _to_matrix(g, dims)
    m, n = g2.shape
    left = m >= n
    r = min(h.rank, m, n)
    p = jax.lax.cond(refresh, lambda: _new_projector(g2, r, left), lambda: projector)
    return (p.T @ g2 if left else g2 @ p), p


def _project_back(h, low, projector, g, dims):
    if dims is None:
        return low
    m, n = _layout(g.shape, dims)[1]
    full = projector @ low if m >= n else low @ projector.T
    return (h.scale * _from_matrix(full, g, dims)).astype(g.dtype)


def _galore_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    dims = _resolve_dims(h.dims, updates)
    refresh = state.count % jnp.asarray(h.update_proj_gap).astype(jnp.int32) == 0
    leaves, treedef = jax.tree.flatten(updates)
    dim_leaves = treedef.flatten_up_to(dims)
    pairs = [
        _project(h, g, p, d, refresh)
        for g, p, d in zip(leaves, treedef.flatten_up_to(state.projector), dim_leaves, strict=True)
    ]
    low = treedef.unflatten([x for x, _ in pairs])
    projector = treedef.unflatten([p for _, p in pairs])
    low_updates, base_state = h.base_update(low, state.base_optimizer_state, None)
    low_leaves = treedef.flatten_up_to(low_updates)
    back = zip(low_leaves, [p for _, p in pairs], leaves, dim_leaves, strict=True)
    full = [_project_back(h, u, p, g, d) for u, p, g, d in back]
    new_state = GaLoreState(safe_increment(state.count), base_state, projector)
    return treedef.unflatten(full), new_state


def galore(
    learning_rate: ScalarOrSchedule,
    rank: int = 128,
    update_proj_gap: Any = 200,
    scale: Any = 1.0,
    base_optimizer: Any = None,
    weight_decay: Any = 0.0,
    mask: Any = None,
    weight_dimension_numbers: Any = None,
) -> Optimizer:
    r"""GaLore (Zhao et al., 2024): :func:`scale_by_galore`, then decoupled weight decay
    :math:`+\lambda p` in the full parameter space (where ``mask`` allows), then
    :math:`-\eta`."""
    return chain(
        scale_by_galore(rank, update_proj_gap, scale, base_optimizer, weight_dimension_numbers),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )
