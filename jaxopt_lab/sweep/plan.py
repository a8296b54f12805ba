"""The plan of a sweep: its validated, frozen description.

:func:`plan_for` checks every argument of :func:`jaxopt_lab.sweep` (raising
:class:`~jaxopt_lab.InputError`), builds the member table (one row per learning rate,
hyperparameters and seed, in C order over the axes), chooses the vmap width and the
chunks, and derives the checkpoint fingerprint. A :class:`Plan` depends on the call's
arguments and on the *shapes* of its arrays, not on their values, so it is cached: a
sweep called again with the same functions, grid and shapes does almost no host work
before its compiled program runs.

Chunks are balanced: the members are cut into the fewest chunks of at most the chunk
size, all of one size (one compiled program) that is a multiple of the vmap width times
the devices, so the padding is less than one such unit per chunk and the cost of a sweep
grows with its members, not with the members rounded up to a chunk.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxopt_lab._multihost import place
from jaxopt_lab.checks import (
    check_callable,
    check_count,
    check_optimizer,
    check_params,
    check_scalar_fn,
)
from jaxopt_lab.errors import InputTypeError, InputValueError
from jaxopt_lab.loops import data_size
from jaxopt_lab.precision import check_compute_dtype, wrap_loss
from jaxopt_lab.sweep import checkpoint
from jaxopt_lab.sweep.halving import check_prune
from jaxopt_lab.sweep.kernel import AXIS, Spec

# A group's step should cost about this many flops (XLA's estimate) before widening the
# vmap stops paying: measured on a 2-core CPU, vmapping helps up to ~1e6 flops per
# member step and costs 1.1-1.6x per member for a 1e7-flop digits MLP.
_TARGET_GROUP_FLOPS = {"cpu": 4e6}
_TARGET_GROUP_FLOPS_ACCELERATOR = 1e10
_MAX_WIDTH = {"cpu": 64}
_MAX_WIDTH_ACCELERATOR = 1024
DEFAULT_CHUNK_PER_DEVICE = 64
PROGRESS_EVERY = 250  # steps between progress callbacks inside a chunk


def _float_dtype() -> Any:
    return jax.dtypes.canonicalize_dtype(np.float64)  # float32, or float64 under x64


def _check_learning_rates(learning_rates: Any) -> np.ndarray:
    if callable(learning_rates) or isinstance(learning_rates, (str, bytes)):
        raise InputTypeError(
            f"`learning_rates` must be a 1-D array of numbers, got {learning_rates!r}."
        )
    try:
        lrs = np.asarray(learning_rates, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputTypeError(f"`learning_rates` must be a 1-D array of numbers: {e}") from None
    if lrs.ndim != 1:
        raise InputValueError(f"`learning_rates` must be 1-D, got shape {lrs.shape}.")
    if lrs.size == 0:
        raise InputValueError("`learning_rates` is empty: give at least one learning rate.")
    bad = ~np.isfinite(lrs) | (lrs <= 0)
    if bad.any():
        raise InputValueError(
            f"`learning_rates` must be finite and > 0; got {lrs[bad][:5].tolist()} "
            f"at index {np.flatnonzero(bad)[:5].tolist()}."
        )
    return lrs


def _check_hyperparams(
    make_optimizer: Callable, hyperparams: Any, combine: str, k: int
) -> dict[str, np.ndarray]:
    if combine not in ("grid", "zip"):
        raise InputValueError(f"`combine` must be 'grid' or 'zip', got {combine!r}.")
    if hyperparams is None:
        return {}
    if not isinstance(hyperparams, Mapping):
        raise InputTypeError(
            f"`hyperparams` must be a dict name -> 1-D array, got {type(hyperparams).__name__}."
        )
    out = {}
    for name, values in hyperparams.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InputValueError(f"`hyperparams` keys must be argument names, got {name!r}.")
        if name in ("learning_rate", "seed"):
            raise InputValueError(
                f"`hyperparams` may not contain {name!r}: it is an axis of its own."
            )
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputTypeError(
                f"`hyperparams[{name!r}]` must be a 1-D array of numbers, got {values!r}."
            ) from None
        if v.ndim != 1 or v.size == 0:
            raise InputValueError(
                f"`hyperparams[{name!r}]` must be a non-empty 1-D array, got shape {v.shape}."
            )
        if not np.isfinite(v).all():
            raise InputValueError(f"`hyperparams[{name!r}]` must be finite, got {v.tolist()}.")
        if combine == "zip" and v.size != k:
            raise InputValueError(
                f"With combine='zip', `hyperparams[{name!r}]` needs one value per learning rate "
                f"({k}), got {v.size}."
            )
        out[name] = v
    try:
        sig = inspect.signature(make_optimizer)
    except (TypeError, ValueError):
        return out  # a builtin or C callable: let the call itself complain
    try:
        sig.bind(1.0, **{n: 1.0 for n in out})
    except TypeError:
        accepted = [p for p in sig.parameters][1:]
        for name in out:
            try:
                sig.bind(1.0, **{name: 1.0})
            except TypeError:
                raise InputValueError(
                    f"`hyperparams` has {name!r}, which `make_optimizer` "
                    f"({getattr(make_optimizer, '__name__', make_optimizer)!r}) does not accept; "
                    f"it accepts {accepted}."
                ) from None
        raise InputTypeError(f"`make_optimizer` does not accept {sorted(out)} together.") from None
    return out


def check_seeds(seeds: Any) -> np.ndarray | None:
    if seeds is None:
        return None
    if isinstance(seeds, (numbers.Integral, np.integer)) and not isinstance(seeds, bool):
        return np.arange(check_count("seeds", seeds))
    s = np.asarray(seeds)
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer):
        raise InputValueError(
            f"`seeds` must be a count or a non-empty 1-D sequence of ints, got {seeds!r}."
        )
    if len(set(s.tolist())) != s.size:
        raise InputValueError(f"`seeds` must not repeat, got {s.tolist()}.")
    return s.astype(np.int64)


def _check_make_optimizer(make_optimizer: Any, lr: float, hp: dict[str, float]) -> None:
    if not callable(make_optimizer):
        raise InputTypeError(
            f"`make_optimizer` must be a callable lr -> optimizer (e.g. jol.adam or optax.adam), "
            f"got {make_optimizer!r}."
        )
    # Building an optimizer validates its arguments (~0.2 ms): once per factory and
    # hyperparameter names is enough, since the values are checked on the host already.
    try:
        key = (make_optimizer, tuple(sorted(hp)))
        if key in _good_factories:
            return
    except TypeError:  # an unhashable factory: check every call
        key = None
    check_optimizer(make_optimizer(lr, **hp), "make_optimizer(learning_rate)")
    if key is not None:
        _good_factories.add(key)


class _Members(NamedTuple):
    """One row per member, in C order over the axes."""

    axes: dict[str, np.ndarray]
    lrs: np.ndarray  # (M,)
    hps: dict[str, np.ndarray]  # name -> (M,)
    seed_index: np.ndarray  # (M,) index into the seed axis (0 without seeds)


def _members(
    lrs: np.ndarray, hps: dict[str, np.ndarray], combine: str, seeds: np.ndarray | None
) -> _Members:
    axes = {"learning_rate": lrs}
    if combine == "grid":
        axes.update(hps)
    if seeds is not None:
        axes["seed"] = seeds
    idx = np.indices(tuple(len(v) for v in axes.values())).reshape(len(axes), -1)
    pos = dict(zip(axes, idx, strict=True))
    lr_idx = pos["learning_rate"]
    member_hps = {n: v[pos[n]] if combine == "grid" else v[lr_idx] for n, v in hps.items()}
    seed_index = pos["seed"] if seeds is not None else np.zeros_like(lr_idx)
    return _Members(axes, lrs[lr_idx], member_hps, seed_index)


# --------------------------------------------------------------------------------------
# Choosing the vmap width
# --------------------------------------------------------------------------------------


class _Probe(NamedTuple):
    flops: float | None  # XLA's estimate for one member's loss and gradient
    loss_dtype: Any


_probe_cache: dict[Any, _Probe] = {}
_good_factories: set[Any] = set()  # (make_optimizer, hyperparameter names) that built an optimizer


def _flops(fn: Callable, shapes: Any) -> float | None:
    """XLA's flop estimate for ``fn``: from the lowered program where the backend gives
    one (CPU), else from the compiled one (GPU gives none before compiling)."""
    lowered = jax.jit(fn).lower(*shapes)
    for cost_of in (lowered.cost_analysis, lambda: lowered.compile().cost_analysis()):
        try:
            cost = cost_of()
        except Exception:  # cost analysis is best effort: some backends have none
            continue
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else None
        if cost and cost.get("flops", 0) > 0:
            return float(cost["flops"])
    return None


def _probe(loss_fn, has_aux, params, batch) -> _Probe:
    """Check ``loss_fn`` and measure one member's step, once per function and shapes."""
    args = (params,) if batch is None else (params, batch)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), args)
    key = (loss_fn, has_aux, jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))
    if key not in _probe_cache:
        check_scalar_fn(loss_fn, shapes, "loss_fn", bool(has_aux))
        fn = jax.value_and_grad(loss_fn, has_aux=bool(has_aux))
        out = jax.eval_shape(fn, *shapes)[0]
        loss_dtype = (out[0] if has_aux else out).dtype
        _probe_cache[key] = _Probe(_flops(fn, shapes), loss_dtype)
    return _probe_cache[key]


def auto_vmap_width(flops: float | None, platform: str, members: int | None = None) -> int:
    """The default group width: a power of two with ``width * flops`` near the platform's
    target (CPU: 4e6 flops per group step, capped at 64; accelerators: 1e10, capped at
    1024), and no wider than ``members`` rounded up to a power of two, so that a small
    sweep computes no padding members."""
    target = _TARGET_GROUP_FLOPS.get(platform, _TARGET_GROUP_FLOPS_ACCELERATOR)
    cap = _MAX_WIDTH.get(platform, _MAX_WIDTH_ACCELERATOR)
    if members is not None:
        cap = min(cap, 2 ** math.ceil(math.log2(max(members, 1))))
    if flops is None:  # unknown: moderate on a CPU, as wide as allowed on an accelerator
        return min(8, cap) if platform == "cpu" else cap
    width = 2 ** int(math.floor(math.log2(max(1.0, target / max(flops, 1.0)))))
    return int(min(max(width, 1), cap))


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------


class Mode(NamedTuple):
    """Full batch (``steps``) or mini-batch (``data``, ``batch_size``, ``epochs``)."""

    steps: int
    minibatch: bool
    n: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    start_epoch: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """Everything about a sweep that does not depend on its arrays' values."""

    members: _Members
    shape: tuple[int, ...]  # the result's member shape (one entry per axis)
    mode: Mode
    seeds: np.ndarray | None
    per_seed_params: bool
    devices: tuple[Any, ...]
    sharding: Any  # where the shared inputs live (replicated over the mesh)
    width: int
    chunk: int
    n_chunks: int
    loss_dtype: Any
    threshold: float
    spec: Spec  # the fast path's program; the checked re-run replaces `checked`
    chunk_members: tuple  # per chunk: (lrs, hps, seed_index, param_index), padded, placed
    hyperparams: dict[str, np.ndarray]
    config: dict[str, Any]  # JSON-able; the checkpoint fingerprint without the arrays
    like: tuple[Any, Any]  # one member's params and optimizer state (shapes and dtypes)
    eval_steps: np.ndarray | None = None  # (E,) updates made at each evaluation
    eval_every: int | None = None
    eval_mode: str | None = None
    param_index: np.ndarray | None = None  # (M,) each member's start in seed_params
    member_sharding: Any = None  # member arrays split over the mesh
    prune: Any = None  # a SuccessiveHalving, or None
    rungs: tuple = ()  # ((step, configurations kept), ...)
    unit: int = 0  # steps per compiled call of a pruned sweep

    @property
    def steps_per_epoch(self) -> int | None:
        """Mini-batch steps per epoch (None in full batch): a training loss is ranked by
        its mean over one epoch."""
        return self.mode.n // self.mode.batch_size if self.mode.minibatch else None

    @property
    def size(self) -> int:
        return self.members.lrs.size

    def chunk_slice(self, i: int) -> slice:
        return slice(i * self.chunk, min((i + 1) * self.chunk, self.size))


def _mode(data, steps, batch_size, epochs, start_epoch) -> Mode:
    if data is None:
        if batch_size is not None or epochs is not None:
            raise InputValueError(
                "`batch_size` and `epochs` need `data`; in full-batch mode give `steps`."
            )
        if steps is None:
            raise InputValueError("Give `steps` (full batch) or `data`, `batch_size` and `epochs`.")
        return Mode(check_count("steps", steps), False)
    if steps is not None:
        raise InputValueError("Give `epochs` (and `batch_size`) with `data`, not `steps`.")
    if batch_size is None or epochs is None:
        raise InputValueError("Mini-batch mode (`data=`) needs `batch_size` and `epochs`.")
    epochs, batch_size = check_count("epochs", epochs), check_count("batch_size", batch_size)
    n = data_size(data)
    if batch_size > n:
        raise InputValueError(
            f"`batch_size` must be <= the number of examples ({n}), got {batch_size}."
        )
    return Mode(epochs * (n // batch_size), True, n, batch_size, epochs, start_epoch)


def _chunking(m: int, width: int, n_dev: int, chunk_size: int | None) -> tuple[int, int]:
    """``(chunk, n_chunks)``: the fewest chunks of at most ``chunk_size`` members (default
    64 per device), balanced, each a multiple of ``width * n_dev``."""
    unit = width * n_dev
    cap = chunk_size if chunk_size is not None else min(m, DEFAULT_CHUNK_PER_DEVICE * n_dev)
    cap = _ceil_div(max(cap, 1), unit) * unit
    n_chunks = _ceil_div(m, cap)
    return _ceil_div(_ceil_div(m, n_chunks), unit) * unit, n_chunks


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _padded_chunks(members: _Members, param_index, chunk: int, n_chunks: int, dtype) -> tuple:
    """Every chunk's member arrays, the last one padded with copies of its last member
    (whose results are dropped)."""

    def padded(x, lo):
        part = x[lo : lo + chunk]
        if part.shape[0] < chunk:
            part = np.concatenate([part, np.repeat(part[-1:], chunk - part.shape[0], axis=0)])
        return part

    out = []
    for i in range(n_chunks):
        lo = i * chunk
        lrs = padded(members.lrs, lo).astype(dtype)
        hps = {k: padded(v, lo).astype(dtype) for k, v in members.hps.items()}
        out.append((lrs, hps, padded(members.seed_index, lo).astype(np.int32),
                    padded(param_index, lo).astype(np.int32)))  # fmt: skip
    return tuple(out)


def _devices(devices) -> tuple[tuple[Any, ...], Mesh | None, Any]:
    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise InputValueError("`devices` is empty.")
    mesh = Mesh(np.array(devices), (AXIS,)) if len(devices) > 1 else None
    if mesh is not None:
        return devices, mesh, NamedSharding(mesh, PartitionSpec())
    return devices, None, jax.sharding.SingleDeviceSharding(devices[0])


def _member_sharding(mesh: Mesh | None, devices) -> Any:
    """Member arrays: split along the member axis over the mesh."""
    if mesh is None:
        return jax.sharding.SingleDeviceSharding(devices[0])
    return NamedSharding(mesh, PartitionSpec(AXIS))


def _placed(chunks: tuple, mesh: Mesh | None, devices) -> tuple:
    """The member arrays of every chunk on the devices, split along the member axis, once
    per plan: a repeated sweep sends nothing to the devices but what changed."""
    return place(chunks, _member_sharding(mesh, devices), check_same=False)


class Evaluation(NamedTuple):
    fn: Callable | None
    with_data: bool
    every: int | None  # steps between evaluations (the last block may be shorter)
    mode: str | None  # "min" or "max": which end of the evaluations is best
    steps: np.ndarray | None  # (E,) updates made before each evaluation


def _evaluation(eval_fn, eval_data, eval_every, eval_mode, params, steps) -> Evaluation:
    """The validated evaluation options: ``eval_fn(params[, eval_data]) -> scalar``
    after every ``eval_every`` steps and after the last (default: the last only)."""
    if eval_fn is None:
        for name, value in (("eval_data", eval_data), ("eval_every", eval_every)):
            if value is not None:
                raise InputValueError(f"`{name}` needs `eval_fn`.")
        return Evaluation(None, False, None, None, None)
    check_callable("eval_fn", eval_fn, "a callable (params[, eval_data]) -> scalar")
    if eval_mode not in ("min", "max"):
        raise InputValueError(f"`eval_mode` must be 'min' or 'max', got {eval_mode!r}.")
    every = steps if eval_every is None else min(check_count("eval_every", eval_every), steps)
    args = (params,) if eval_data is None else (params, eval_data)
    check_scalar_fn(eval_fn, args, "eval_fn")
    marks = np.arange(every, steps + every, every)
    return Evaluation(eval_fn, eval_data is not None, every, eval_mode, np.minimum(marks, steps))


def _pruning(prune, warm, evaluation, steps: int, configs: int) -> tuple[tuple, int, tuple]:
    """``(rungs, unit, evaluation)`` of a pruned sweep: its rungs, the steps per compiled
    call, and the evaluation options with ``eval_every`` defaulting to the unit (every
    rung is a multiple of it, so every rung has an evaluation to rank by)."""
    prune = check_prune(prune)
    if prune is None:
        return (), steps, evaluation
    if warm:
        raise InputValueError(
            "`prune` cannot continue a previous sweep (`state`): prune in the first sweep."
        )
    rungs = prune.rungs(steps, configs)
    unit = rungs[0][0] if rungs else steps
    eval_fn, eval_data, eval_every, eval_mode = evaluation
    if eval_fn is not None:
        if eval_every is None:
            eval_every = unit
        elif unit % check_count("eval_every", eval_every):
            raise InputValueError(
                f"`eval_every` ({eval_every}) must divide the first rung, `min_steps` "
                f"({unit}), so that every rung ranks by an evaluation made there."
            )
    return rungs, unit, (eval_fn, eval_data, eval_every, eval_mode)


def _precision_config(compute_dtype: Any, remat: Any) -> dict[str, Any]:
    """The fingerprint's precision entries, present only when set, so that a checkpoint
    folder written before these options existed still matches a default sweep."""
    out: dict[str, Any] = {}
    if compute_dtype is not None:
        out["compute_dtype"] = str(check_compute_dtype(compute_dtype))
    if remat is not False:
        out["remat"] = True if remat is True else checkpoint.callable_id(remat)
    return out


def _seed_quantile(q: Any) -> float | None:
    if q is None:
        return None
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0.0 <= float(q) <= 1.0:
        raise InputValueError(f"`seed_quantile` must be None or a number in [0, 1], got {q!r}.")
    return float(q)


def _threshold(divergence_threshold) -> float:
    if divergence_threshold is None:
        return np.inf
    threshold = float(divergence_threshold)
    if math.isnan(threshold):
        raise InputValueError("`divergence_threshold` must be a number, got NaN.")
    return threshold


def _shapes(tree) -> Any:
    """A hashable description of a tree's structure, shapes and dtypes."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((np.shape(x), _dtype(x)) for x in leaves)


def _structs(tree: Any) -> Any:
    """Shapes and dtypes only: a cached plan must not keep a user's arrays alive."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), _dtype(x)), tree)


def _dtype(x: Any) -> Any:
    dtype = getattr(x, "dtype", None)  # jnp.result_type costs ~50 us a leaf
    return np.result_type(x) if dtype is None else dtype


_plans: dict[Any, Plan] = {}


def _cache_key(args: dict[str, Any]) -> Any:
    """A key for the plan cache, or None when an argument cannot be hashed cheaply."""
    a = dict(args)
    lrs = a.pop("learning_rates")
    hps = a.pop("hyperparams") or {}
    seeds = a.pop("seeds")
    eval_fn, eval_data, eval_every, eval_mode = a.pop("evaluation")
    evaluation = (eval_fn, _shapes(eval_data), eval_every, eval_mode)
    if seeds is not None:  # a count and a list of one seed are different sweeps
        seeds = (isinstance(seeds, (numbers.Integral, np.integer)), np.shape(seeds),
                 tuple(np.ravel(seeds).tolist()))  # fmt: skip
    try:
        key = (
            np.asarray(lrs, np.float64).tobytes(),
            np.shape(lrs),
            tuple((k, np.shape(v), np.asarray(v, np.float64).tobytes()) for k, v in hps.items()),
            seeds,
            _shapes(a.pop("params")),
            _shapes(a.pop("data")),
            evaluation,
            tuple(sorted(a.items(), key=lambda kv: kv[0])),
            # what changes the dtypes and keys a plan holds
            (jax.config.jax_enable_x64, str(jax.config.jax_default_prng_impl)),
        )
        hash(key)
    except (TypeError, ValueError):
        return None
    return key


def plan_for(args: dict[str, Any]) -> Plan:
    """The plan for ``sweep``'s arguments (the keyword ``args`` of the call, with
    ``params`` the start shared by the members or one member's params), from the cache
    when these functions, grid and shapes were planned before."""
    key = _cache_key(args)
    if key is not None and key in _plans:
        return _plans[key]
    p = _build(**args)
    if key is not None:
        if len(_plans) > 64:
            _plans.pop(next(iter(_plans)))
        _plans[key] = p
    return p


def _build(*, make_optimizer, loss_fn, params, learning_rates, hyperparams, combine, seeds,
           init_fn, data, mode_args, divergence_threshold, chunk_size, vmap_width,
           devices, progress, has_aux, warm, evaluation, prune, seed_quantile, compute_dtype,
           remat) -> Plan:  # fmt: skip
    check_callable("loss_fn", loss_fn)
    # the members run the wrapped loss; equal wrappers keep the chunk program's jit key
    run_loss = wrap_loss(loss_fn, compute_dtype, remat, bool(has_aux))
    lrs = _check_learning_rates(learning_rates)
    hps = _check_hyperparams(make_optimizer, hyperparams, combine, lrs.size)
    seeds_arr = check_seeds(seeds)
    _check_make_optimizer(make_optimizer, float(lrs[0]), {n: float(v[0]) for n, v in hps.items()})
    mode = _mode(data, *mode_args)
    chunk_size = None if chunk_size is None else check_count("chunk_size", chunk_size)
    vmap_width = None if vmap_width is None else check_count("vmap_width", vmap_width)
    threshold = _threshold(divergence_threshold)
    check_params(params, "init_fn(key)" if init_fn is not None else "params")
    members = _members(lrs, hps, combine, seeds_arr)
    m = members.lrs.size
    devices, mesh, sharding = _devices(devices)
    first_batch = None if not mode.minibatch else jax.tree.map(lambda x: x[: mode.batch_size], data)
    probe = _probe(run_loss, has_aux, params, first_batch)
    lr0, hp0 = float(lrs[0]), {n: float(v[0]) for n, v in hps.items()}
    state_like = jax.eval_shape(lambda p: make_optimizer(lr0, **hp0).init(p), params)
    if vmap_width is None:
        vmap_width = auto_vmap_width(probe.flops, devices[0].platform, -(-m // len(devices)))
    chunk, n_chunks = _chunking(m, vmap_width, len(devices), chunk_size)
    configs = m // (1 if seeds_arr is None else seeds_arr.size)
    rungs, unit, evaluation = _pruning(prune, warm, evaluation, mode.steps, configs)
    ev = _evaluation(*evaluation, params, mode.steps)
    per_seed = init_fn is not None and not warm
    param_index = members.seed_index if per_seed else np.zeros_like(members.seed_index)
    spec = Spec(
        make_optimizer=make_optimizer, loss_fn=run_loss, steps=mode.steps,
        minibatch=mode.minibatch, has_aux=bool(has_aux), width=vmap_width,
        block=ev.every or (min(PROGRESS_EVERY, mode.steps) if progress else mode.steps),
        progress=progress, mesh=mesh, checked=False, per_seed_params=per_seed, warm=warm,
        eval_fn=ev.fn, eval_with_data=ev.with_data,
    )  # fmt: skip
    shape = tuple(len(v) for v in members.axes.values())
    hyper = {"learning_rate": members.lrs.reshape(shape)}
    hyper.update({k: v.reshape(shape) for k, v in members.hps.items()})
    if seeds_arr is not None:
        hyper["seed"] = seeds_arr[members.seed_index].reshape(shape)
    config = {
        "learning_rates": lrs.tolist(),
        "hyperparams": {k: v.tolist() for k, v in hps.items()},
        "combine": combine,
        "seeds": None if seeds_arr is None else seeds_arr.tolist(),
        "mode": "minibatch" if mode.minibatch else "full_batch",
        "steps": mode.steps,
        "epochs": mode.epochs,
        "start_epoch": mode.start_epoch,
        "batch_size": mode.batch_size,
        "divergence_threshold": None if divergence_threshold is None else threshold,
        "chunk_size": chunk,
        "vmap_width": vmap_width,
        "devices": len(devices),
        "make_optimizer": checkpoint.callable_id(make_optimizer),
        "loss_fn": checkpoint.callable_id(loss_fn),
        "init_fn": None if init_fn is None else checkpoint.callable_id(init_fn),
        "dtype": str(np.dtype(_float_dtype())),
        "has_aux": bool(has_aux),
        "eval_fn": None if ev.fn is None else checkpoint.callable_id(ev.fn),
        "eval_every": ev.every,
        "eval_mode": ev.mode,
        "seed_quantile": _seed_quantile(seed_quantile),
        "prune": None if not rungs else {
            "method": "successive_halving", "eta": prune.eta, "min_steps": unit,
            "rungs": [list(r) for r in rungs]},
    }  # fmt: skip
    config.update(_precision_config(compute_dtype, remat))
    return Plan(
        members=members, shape=shape, mode=mode, seeds=seeds_arr, per_seed_params=per_seed,
        devices=devices, sharding=sharding, width=vmap_width, chunk=chunk, n_chunks=n_chunks,
        loss_dtype=np.dtype(probe.loss_dtype), threshold=threshold, spec=spec,
        chunk_members=_placed(
            _padded_chunks(members, param_index, chunk, n_chunks, _float_dtype()), mesh, devices
        ),
        hyperparams=hyper, config=config, like=(_structs(params), state_like),
        eval_steps=ev.steps, eval_every=ev.every, eval_mode=ev.mode, param_index=param_index,
        member_sharding=_member_sharding(mesh, devices), prune=prune if rungs else None,
        rungs=rungs, unit=unit,
    )  # fmt: skip
