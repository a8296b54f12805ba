r"""Muon: momentum orthogonalised by Newton-Schulz iterations.

Jordan, *modded-nanogpt* (2024); Bernstein & Newhouse, *Old Optimizer, New Norm*
(arXiv:2409.20325); Liu et al., *Muon is Scalable for LLM Training* (arXiv:2502.16982);
Boissin et al., *Turbo-Muon* (arXiv:2512.04632, the ``aol`` preconditioning); Grishina
et al. (arXiv:2506.10935, ``schatten``); Ahn et al., *Dion* (arXiv:2504.05295, the
``dion`` coefficients).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import optimizers as O
from jaxopt_lab import transforms as T
from jaxopt_lab.base import (
    Optimizer,
    ScalarOrSchedule,
    Static,
    bind,
    chain,
    complement,
    safe_increment,
    stateless,
    tree_cast,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import canonical_dtype, check_count, check_flag, check_hyperparameter
from jaxopt_lab.contrib._common import bias_correct, check_all, check_unit, ema, merge, split
from jaxopt_lab.errors import InputTypeError, InputValueError

PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
DEFAULT_NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_COEFFS_PRESETS = {
    "standard": DEFAULT_NS_COEFFS,
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
}


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a weight are the matrix's reduction (input) and output axes; every
    other axis is a batch axis, orthogonalised independently."""

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


class MuonState(NamedTuple):
    count: jax.Array
    mu: Any
    ns_coeffs: jax.Array


class PartitionState(NamedTuple):
    """muon's state: ``inner_states["muon"]`` and ``inner_states["adam"]``, each holding
    only its own leaves (the layout of optax's partition)."""

    inner_states: dict


def _is_dims(x: Any) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


# --------------------------------------------------------------------------------------
# Newton-Schulz orthogonalisation
# --------------------------------------------------------------------------------------


def _axes(x: jax.Array, dims: MuonDimensionNumbers) -> tuple[tuple, tuple, tuple]:
    as_tuple = lambda a: (a,) if isinstance(a, int) else tuple(a)  # noqa: E731
    red = tuple(a % x.ndim for a in as_tuple(dims.reduction_axis))
    out = tuple(a % x.ndim for a in as_tuple(dims.output_axis))
    if x.ndim < 2 or set(red) & set(out):
        raise InputValueError(
            f"Muon needs weights of rank >= 2 with disjoint reduction and output axes; got "
            f"shape {x.shape} with {dims}."
        )
    batch = tuple(a for a in range(x.ndim) if a not in red + out)
    return batch, red, out


def _ns_step(x, c, a=None):
    r"""One quintic step :math:`X \leftarrow c_0 X + (c_1 A + c_2 A^2) X`,
    :math:`A = X X^H`."""
    a = x @ x.T.conj() if a is None else a
    return c[0] * x + (c[1] * a + c[2] * a @ a) @ x


def _first_ns_step(x, c, preconditioning, eps):
    """The first step, rescaling ``X`` first: AOL divides row i by
    :math:`\\sqrt{\\sum_j |A_{ij}|}`, Schatten-4 divides by :math:`\\|A\\|_F^{1/2}`."""
    a = x @ x.T.conj()
    if preconditioning == "aol":
        s = jax.lax.rsqrt(jnp.clip(jnp.abs(a).sum(axis=-1), min=eps))[:, None]
        return _ns_step(x * s, c, a * s * s.T)
    if preconditioning == "schatten":
        s = jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(a, ord="fro"), min=eps))
        return _ns_step(x * s, c, a * s**2)
    return _ns_step(x, c, a)


def _orthogonalize_matrix(x, coeffs, ns_steps, preconditioning, eps):
    # f(X^T) = f(X)^T, so iterate on the wide orientation (the smaller Gram matrix)
    transposed = x.shape[0] > x.shape[1]
    x = x.T if transposed else x
    if preconditioning == "frobenius":
        x = x / (jnp.linalg.norm(x, ord="fro") + eps)
    elif preconditioning == "spectral":
        x = x / (jnp.linalg.norm(x, ord=2) + eps)
    coeffs = coeffs.astype(x.dtype)
    rows = [coeffs] * ns_steps if coeffs.ndim == 1 else list(coeffs)
    for i, c in enumerate(rows):
        x = _first_ns_step(x, c, preconditioning, eps) if i == 0 else _ns_step(x, c)
    return x.T if transposed else x


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: jax.Array,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: Any = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
    r"""Approximately :math:`U V^H` for :math:`X = U S V^H`, by ``ns_steps`` quintic
    Newton-Schulz steps after a rescaling (``preconditioning``) that puts the singular
    values in :math:`[0, 1]`. The default coefficients maximise the slope at zero, so
    the singular values end near (not at) 1. A weight of higher rank is reshaped to
    (batch, reduction, output) by ``dimension_numbers`` and each matrix is done apart.
    """
    if dimension_numbers is None:
        if x.ndim != 2:
            raise InputValueError(
                f"Muon: a weight of shape {x.shape} needs `weight_dimension_numbers`."
            )
        dimension_numbers = MuonDimensionNumbers()
    batch, red, out = _axes(x, dimension_numbers)
    order = batch + red + out
    sizes = [math.prod(x.shape[a] for a in axes) for axes in (batch, red, out)]
    flat = x.transpose(order).reshape(sizes)
    ortho = jax.vmap(
        lambda m: _orthogonalize_matrix(m, jnp.asarray(ns_coeffs), ns_steps, preconditioning, eps)
    )(flat)
    return ortho.reshape([x.shape[a] for a in order]).transpose(np.argsort(order))


# --------------------------------------------------------------------------------------
# scale_by_muon
# --------------------------------------------------------------------------------------


def _check_ns_coeffs(ns_coeffs: Any, ns_steps: int) -> Any:
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS_PRESETS:
            raise InputValueError(
                f"`ns_coeffs` must be one of {sorted(NS_COEFFS_PRESETS)} or numbers, "
                f"got {ns_coeffs!r}."
            )
        ns_coeffs = NS_COEFFS_PRESETS[ns_coeffs]
    try:
        as_array = jnp.asarray(ns_coeffs)
    except (TypeError, ValueError) as e:
        raise InputTypeError(f"`ns_coeffs` must be numbers, got {ns_coeffs!r}.") from e
    check_hyperparameter("ns_coeffs", as_array, low=None)
    shape = as_array.shape
    if len(shape) not in (1, 2) or shape[-1] != 3:
        raise InputValueError(f"`ns_coeffs` must have shape (3,) or (n, 3), got {shape}.")
    if len(shape) == 2 and shape[0] > ns_steps:
        raise InputValueError(f"`ns_coeffs` has {shape[0]} rows, more than `ns_steps`={ns_steps}.")
    return ns_coeffs


def _check_muon_config(ns_steps, nesterov, adaptive, preconditioning) -> None:
    check_count("ns_steps", ns_steps)
    check_flag("nesterov", nesterov)
    check_flag("adaptive", adaptive)
    if preconditioning not in PRECONDITIONINGS:
        raise InputValueError(
            f"`preconditioning` must be one of {PRECONDITIONINGS}, got {preconditioning!r}."
        )


def scale_by_muon(
    ns_coeffs: Any = DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    beta: Any = 0.95,
    eps: Any = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
) -> Optimizer:
    r"""Muon's direction: momentum, then Newton-Schulz orthogonalisation.

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t,\quad
        \hat m_t = \frac{m_t}{1-\beta^t}\ \text{(Nesterov: }
        \beta \frac{m_t}{1-\beta^{t+1}} + (1-\beta)\frac{g_t}{1-\beta^t}\text{)},\quad
        u_t = \operatorname{NS}(\hat m_t) \approx U V^H

    where :math:`\hat m_t = U S V^H`; with ``adaptive`` (Bernstein & Newhouse, 2024)
    :math:`u_t \leftarrow \langle \hat m_t, u_t\rangle u_t`. ``ns_coeffs`` are the
    quintic's coefficients, one row (repeated ``ns_steps`` times) or one row per step;
    they are leaves, ``ns_steps`` (a loop length) is configuration.
    ``weight_dimension_numbers`` (a :class:`MuonDimensionNumbers`, a tree of them with
    ``None`` for leaves to leave alone, or a function of the updates returning one)
    says how to see a weight as matrices; ``None`` means every leaf is a matrix.
    """
    _check_muon_config(ns_steps, nesterov, adaptive, preconditioning)
    ns_coeffs = _check_ns_coeffs(ns_coeffs, ns_steps)
    check_unit(beta=beta)
    check_all(eps=eps)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_muon_init, ns_coeffs=ns_coeffs, mu_dtype=mu_dtype),
        bind(
            _muon_update,
            ns_steps=Static(ns_steps),
            beta=beta,
            one_minus_beta=complement(beta),
            eps=eps,
            mu_dtype=mu_dtype,
            nesterov=Static(nesterov),
            adaptive=Static(adaptive),
            preconditioning=Static(preconditioning),
            dims=Static(weight_dimension_numbers),
        ),
    )


def _muon_init(h, params):
    coeffs = jnp.asarray(h.ns_coeffs)
    return MuonState(jnp.zeros([], jnp.int32), tree_zeros_like(params, h.mu_dtype), coeffs)


def _resolve_dims(dims, updates):
    dims = dims(updates) if callable(dims) else dims
    return MuonDimensionNumbers() if dims is None else dims


def _map_dims(fn, dims, tree):
    """``fn(x, dim)`` on every leaf that has dimension numbers; the others pass through."""
    if isinstance(dims, MuonDimensionNumbers):
        return tree_map(lambda x: fn(x, dims), tree)
    return jax.tree.map(
        lambda d, sub: sub if d is None else tree_map(lambda x: fn(x, d), sub),
        dims,
        tree,
        is_leaf=_is_dims,
    )


def _muon_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    mu = ema(updates, state.mu, h.beta, h.one_minus_beta)
    count = safe_increment(state.count)
    if h.nesterov:
        mu_hat = tree_map(
            lambda m, g: h.beta * m + h.one_minus_beta * g,
            bias_correct(mu, h.beta, safe_increment(count)),
            bias_correct(updates, h.beta, count),
        )
    else:
        mu_hat = bias_correct(mu, h.beta, count)
    ortho = lambda x, d: orthogonalize_via_newton_schulz(  # noqa: E731
        x, state.ns_coeffs, h.ns_steps, h.preconditioning, h.eps, d
    )
    new = _map_dims(ortho, _resolve_dims(h.dims, updates), mu_hat)
    if h.adaptive:
        new = tree_map(lambda m, u: jnp.sum(m.conj() * u) * u, mu_hat, new)
    return new, MuonState(count, tree_cast(mu, h.mu_dtype), state.ns_coeffs)


# --------------------------------------------------------------------------------------
# muon: Muon on the matrices, AdamW on everything else
# --------------------------------------------------------------------------------------


def _fans(x, dims):
    _, red, out = _axes(x, dims)
    return math.prod(x.shape[a] for a in red), math.prod(x.shape[a] for a in out)


def scale_by_shape(weight_dimension_numbers: Any = None, consistent_rms: Any = None) -> Optimizer:
    r"""Rescale a matrix update by its shape: :math:`\sqrt{\max(1, n_{out}/n_{in})}`
    (Jordan's width transfer) or, with ``consistent_rms`` :math:`=\rho`,
    :math:`\rho\sqrt{\max(n_{in}, n_{out})}` (Liu et al., 2025: an RMS like AdamW's)."""
    if consistent_rms is not None:
        check_all(consistent_rms=consistent_rms)
    return stateless(_scale_by_shape, dims=Static(weight_dimension_numbers), rms=consistent_rms)


def _scale_by_shape(h, updates, params):
    del params

    def one(u, dims):
        fan_in, fan_out = _fans(u, dims)
        if h.rms is None:
            return jnp.sqrt(jnp.maximum(1, fan_out / fan_in)) * u
        return jnp.sqrt(jnp.maximum(fan_in, fan_out)) * h.rms * u

    return _map_dims(one, _resolve_dims(h.dims, updates), updates)


def _muon_dims(dims, tree):
    """Per-leaf dimension numbers (``None`` for the AdamW leaves): by default every 2-D
    leaf is a matrix."""
    if dims is None:
        return jax.tree.map(lambda x: MuonDimensionNumbers() if x.ndim == 2 else None, tree)
    dims = dims(tree) if callable(dims) else dims
    return jax.tree.map(lambda d, sub: jax.tree.map(lambda _: d, sub), dims, tree, is_leaf=_is_dims)


def _muon_labels(dims, tree):
    flat = _muon_dims(dims, tree)
    return jax.tree.map(lambda d, _: "adam" if d is None else "muon", flat, tree, is_leaf=_is_dims)


def _partition_init(h, params):
    labels = _muon_labels(h.dims, params)
    return PartitionState(
        {
            name: init(split(params, labels, name))
            for name, init in zip(h.names, h.inits, strict=True)
        }
    )


def _partition_update(h, updates, state, params=None, **extra_args):
    labels = _muon_labels(h.dims, updates)
    parts, states = {}, {}
    for name, update in zip(h.names, h.updates, strict=True):
        masked_params = None if params is None else split(params, labels, name)
        parts[name], states[name] = update(
            split(updates, labels, name), state.inner_states[name], masked_params, **extra_args
        )
    return merge(labels, parts), PartitionState(states)


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    beta: Any = 0.95,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: Any = 0.9,
    adam_b2: Any = 0.999,
    adam_eps_root: Any = 0.0,
    adam_weight_decay: Any = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: Any = None,
) -> Optimizer:
    r"""Muon (Jordan, 2024): on each matrix leaf
    :math:`p \leftarrow p - \eta\,(s\cdot\operatorname{NS}(\hat m_t) + \lambda p)`
    (:func:`scale_by_muon`, then the shape factor :math:`s` of :func:`scale_by_shape`,
    then weight decay where ``weight_decay_mask``), and AdamW with ``adam_b1``,
    ``adam_b2``, ``eps``, ``adam_eps_root``, ``adam_weight_decay`` and
    ``adam_learning_rate`` (default: ``learning_rate``) on every other leaf.

    The matrix leaves are the 2-D ones, or those that ``muon_weight_dimension_numbers``
    (a tree of :class:`MuonDimensionNumbers` with ``None`` for AdamW leaves, or a
    function of the params returning one) gives dimension numbers. ``ns_coeffs`` may
    also name a preset: ``"standard"`` or ``"dion"``.

    >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
    >>> params = {"w": jnp.eye(3), "b": jnp.zeros(3)}  # w: Muon; b (1-D): AdamW
    >>> opt = jol.contrib.muon(learning_rate=0.01)
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, state = opt.update(grads, opt.init(params), params)
    >>> jax.tree.map(jnp.shape, updates)
    {'b': (3,), 'w': (3, 3)}
    """
    if adam_learning_rate is None:
        adam_learning_rate = learning_rate
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    check_hyperparameter("adam_learning_rate", adam_learning_rate, allow_schedule=True)
    dims = muon_weight_dimension_numbers
    if dims is not None and not (callable(dims) or isinstance(dims, MuonDimensionNumbers)):
        if not all(_is_dims(d) for d in jax.tree.leaves(dims, is_leaf=_is_dims)):
            raise InputTypeError(
                "`muon_weight_dimension_numbers` must hold MuonDimensionNumbers or None."
            )
    muon_side = chain(
        scale_by_muon(
            ns_coeffs,
            ns_steps,
            beta,
            eps,
            mu_dtype,
            nesterov=nesterov,
            adaptive=adaptive,
            preconditioning=preconditioning,
            weight_dimension_numbers=dims,
        ),
        scale_by_shape(dims, consistent_rms),
        T.add_decayed_weights(weight_decay, weight_decay_mask),
        T.scale_by_learning_rate(learning_rate),
    )
    adam_side = O.adamw(
        adam_learning_rate,
        adam_b1,
        adam_b2,
        eps,
        adam_eps_root,
        mu_dtype,
        weight_decay=adam_weight_decay,
        nesterov=nesterov,
    )
    names = ("adam", "muon")  # optax's order: sorted labels
    return Optimizer(
        bind(
            _partition_init,
            names=Static(names),
            inits=(adam_side.init, muon_side.init),
            dims=Static(dims),
        ),
        bind(
            _partition_update,
            names=Static(names),
            updates=(adam_side.update, muon_side.update),
            dims=Static(dims),
        ),
    )
