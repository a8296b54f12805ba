"""Throughput of one jitted optimizer step: jaxopt_lab against optax (and torch.optim).

One step is what a training loop does after the gradient is known::

    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

compiled with ``jax.jit``, params and optimizer state donated (the same for both
libraries), gradients passed in as a constant. Timed for adam, adamw, sgd with momentum
0.9, rmsprop, adagrad, lion, adafactor, contrib.muon, contrib.schedule_free_adamw,
contrib.prodigy and lookahead(adam) (``--optimizers``), on float32 and bfloat16 params
(``--dtypes``) of 2**20 and 2**24 parameters, plus 2**28 on an accelerator with the
memory for it (``--sizes``), each held as 1 leaf and as 200 leaves (``--leaves``): 1-D
leaves, except for muon and adafactor, whose leaves are matrices (``matrix_shapes``:
one 1024 x 1024 or 200 of 64 x 81..82 at 2**20), since muon orthogonalises matrices and
adafactor factors them. Muon's Newton-Schulz iteration is matmul-bound, so on a CPU it
runs at 2**20 only (``CPU_MAX_SIZE``). A row a library cannot run is recorded as failed
(with the error) and the run goes on. Where
torch is importable, adam rows add ``torch.optim.Adam`` with ``foreach=True`` and with
``fused=True`` on the same device kind (CUDA when JAX runs on a GPU, else CPU).

An optimizer update is memory-bound, so each row also reports the effective memory
bandwidth from the bytes a fused step must move per parameter, (arrays read + arrays
written) x bytes per element: adam and adamw read p, g, mu, nu and write p, mu, nu
(7 arrays: 28 bytes in float32, 14 in bfloat16); sgd(momentum), rmsprop, adagrad and
lion read p, g and one moment and write p and the moment (5 arrays). The bandwidth is
compared with a donated in-place kernel ``x + 1`` (read x, write x) timed the same way
on the same device and size -- the "achievable bandwidth" -- and with two streaming
kernels that move exactly the optimizers' arrays with trivial arithmetic.

The libraries are timed interleaved (A B, B A, ...) to keep slow drift of a noisy
machine from favouring any; each sample runs the step enough times back to back to last
``--min-sample-s``. Compile time (trace + lower + XLA compile) is measured apart, on
fresh function objects. ``--dump-hlo DIR`` writes the StableHLO and optimised HLO of
every step.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from benchmarks import _report as R
from benchmarks import _timing as T

TITLE = "Optimizer update throughput: jaxopt_lab vs optax"


def lookahead_adam(module: Any, *args: Any, **kwargs: Any) -> Any:
    """``lookahead(adam(1e-3), sync_period=5, slow_step_size=0.5)`` of ``module``."""
    return module.lookahead(module.adam(*args), **kwargs)


def flatten_adam(module: Any, *args: Any) -> Any:
    """``flatten(adam(1e-3))`` of ``module``: adam on one vector holding every leaf."""
    return module.flatten(module.adam(*args))


def lookahead_params(module: Any) -> Callable[[Any], Any]:
    """params -> ``module.LookaheadParams`` with slow = fast (a copy: both are donated)."""
    return lambda p: module.LookaheadParams(fast=p, slow=jax.tree.map(jnp.copy, p))


# name -> (factory: a dotted attribute of each library, or a function of the library, its
# arguments: the same in both libraries), arrays read and written per step
OPTIMIZERS = {
    "adam": ("adam", (1e-3,), {}, 4, 3),
    "adamw": ("adamw", (1e-3,), {"weight_decay": 1e-4}, 4, 3),
    "sgd(momentum=0.9)": ("sgd", (1e-3,), {"momentum": 0.9}, 3, 2),
    "rmsprop": ("rmsprop", (1e-3,), {}, 3, 2),
    "adagrad": ("adagrad", (1e-3,), {}, 3, 2),
    "lion": ("lion", (1e-4,), {}, 3, 2),
    # factored (both dims >= 128): p, g read, p written, row/column stats negligible;
    # otherwise a full second moment: 3 read, 2 written (see `arrays_moved`)
    "adafactor": ("adafactor", (1e-3,), {}, 2, 1),
    "muon": ("contrib.muon", (1e-3,), {}, 3, 2),  # + Newton-Schulz matmuls (compute-bound)
    "schedule_free_adamw": ("contrib.schedule_free_adamw", (1e-3,), {}, 4, 3),  # p g z nu
    "prodigy": ("contrib.prodigy", (1.0,), {}, 6, 4),  # p g m v s p0; writes p m v s
    "lookahead(adam)": (
        lookahead_adam,
        (1e-3,),
        {"sync_period": 5, "slow_step_size": 0.5},
        5,
        4,
    ),  # fast slow g m v; writes fast slow m v  # fmt: skip
    # the flat grads are built (read g, write it flat) and the flat update split back
    # (read it, write the pieces) on top of adam's 7 arrays; counted as adam's, so that its
    # GB/s compares with adam's on the same params (see `flatten_rows`)
    "flatten(adam)": (flatten_adam, (1e-3,), {}, 4, 3),
}
# optimizers timed on 2-D leaves (see `matrix_shapes`): muon orthogonalises matrices (on
# 1-D leaves it is plain adam) and adafactor factors their second moment
MATRIX = {"muon", "adafactor"}
# muon's Newton-Schulz iteration is matmul-bound (~30 m^2 n flops per m x n matrix, m <= n):
# on a CPU it runs only at sizes up to this (2^24 as one 4096 x 4096 matrix is ~2 TFLOP)
CPU_MAX_SIZE = {"muon": 2**20}
LIBRARIES = {"jaxopt_lab": jol, "optax": optax}  # each has the factories and apply_updates
# reference kernels: name -> (arrays read, arrays written), float32, donated
KERNELS = {
    "copy (x+1, donated)": (1, 1),
    "stream read3/write2": (3, 2),
    "stream read4/write3": (4, 3),
}
COPY = "copy (x+1, donated)"
DTYPES = {"float32": np.float32, "bfloat16": jnp.bfloat16}
LARGE = 2**28  # 256M params: only on an accelerator with the memory for both libraries
QUICK_OPTIMIZERS = ["adam", "sgd(momentum=0.9)"]
PARAMS = {
    "sizes": ([2**20], None, "parameter counts (None: 2**20, 2**24, and 2**28 where it fits)"),
    "dtypes": (list(DTYPES), list(DTYPES), "parameter dtypes", tuple(DTYPES)),
    "leaves": ([1, 200], [1, 200], "leaf counts"),
    "optimizers": (QUICK_OPTIMIZERS, list(OPTIMIZERS), "optimizers", tuple(OPTIMIZERS)),
    "repeats": (5, 30, "timed samples per library and row"),
    "warmup": (1, 3, "untimed calls before timing", 0),
    "compile_repeats": (1, 2, "fresh compiles timed per row and library"),
    "min_sample_s": (0.02, 0.02, "each sample runs the step back to back for at least this long"),
    "torch": (True, True, "also time torch.optim.Adam where torch is importable"),
    "dump_hlo": (None, None, "write StableHLO and optimised HLO of every step to this folder"),
    "seed": (0, 0, "random seed of the data", 0),
}


def default_sizes() -> list[int]:
    sizes, dev = [2**20, 2**24], jax.devices()[0]
    try:
        limit = (dev.memory_stats() or {}).get("bytes_limit", 0)
    except Exception:  # not every backend reports its memory
        limit = 0
    # two libraries' params and state (3 arrays each for adam) plus the grads, in float32,
    # and room for the reference kernels: about 12 arrays of 1 GiB
    return sizes + [LARGE] if dev.platform != "cpu" and limit >= 12 * 4 * LARGE else sizes


# --------------------------------------------------------------------------- data and steps


def leaf_sizes(size: int, leaves: int) -> list[int]:
    """``leaves`` sizes differing by at most one, summing to ``size``."""
    if not 1 <= leaves <= size:
        raise ValueError(f"--leaves: need 1 <= leaves <= size, got leaves={leaves}, size={size}")
    q, r = divmod(size, leaves)
    return [q + (1 if i < r else 0) for i in range(leaves)]


def split(flat: np.ndarray, leaves: int) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(leaf_sizes(flat.size, leaves))[:-1])


def matrix_shapes(size: int, leaves: int) -> list[tuple[int, int]]:
    """``leaves`` matrices of ``size`` parameters in all, as near square as the split
    allows: ``r`` rows each (the largest power of two with ``leaves * r * r <= size``) and
    the ``size // r`` columns split between them (``size`` must be a multiple of ``r``,
    e.g. a power of two). 2^20 params: one 1024 x 1024 or 200 of 64 x 81..82."""
    r = 1 << max(0, (size // leaves).bit_length() - 1) // 2
    while r > 1 and size % r:
        r //= 2
    if size // r < leaves:
        raise ValueError(f"matrix_shapes: {size} params do not make {leaves} matrices")
    return [(r, c) for c in leaf_sizes(size // r, leaves)]


def make_tree(
    flat: np.ndarray, leaves: int, shapes: list[tuple[int, int]] | None = None
) -> dict[str, jax.Array]:
    """Split a flat host array into a dict of ``leaves`` 1-D device arrays (or arrays of
    ``shapes``, one per leaf, in the order of the split)."""
    width = len(str(leaves - 1))
    parts = split(flat, leaves) if shapes is None else split_shapes(flat, shapes)
    return {f"w{i:0{width}d}": jax.device_put(part) for i, part in enumerate(parts)}


def split_shapes(flat: np.ndarray, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    ends = np.cumsum([r * c for r, c in shapes])[:-1]
    return [a.reshape(shape) for a, shape in zip(np.split(flat, ends), shapes, strict=True)]


def layout_label(leaves: int, shapes: list[tuple[int, int]] | None) -> str:
    base = "1 leaf" if leaves == 1 else f"{leaves} leaves"
    if not shapes:
        return base
    rows, cols = shapes[0][0], sorted({c for _, c in shapes})
    return f"{base} {rows}x" + (f"{cols[0]}" if len(cols) == 1 else f"{cols[0]}..{cols[-1]}")


def arrays_moved(opt_name: str, shapes: list[tuple[int, int]] | None) -> tuple[int, int]:
    """Full-size arrays a fused step reads and writes: adafactor keeps a full second
    moment (one more read and write) unless every leaf is factored (both dims >= 128)."""
    n_read, n_write = OPTIMIZERS[opt_name][3:]
    if opt_name == "adafactor" and not (shapes and all(min(s) >= 128 for s in shapes)):
        n_read, n_write = n_read + 1, n_write + 1
    return n_read, n_write


def build(module: Any, factory: str | Callable, args: tuple, kwargs: dict) -> Any:
    """``module.<factory>(*args, **kwargs)`` (dotted: ``contrib.muon``), or
    ``factory(module, *args, **kwargs)``."""
    if callable(factory):
        return factory(module, *args, **kwargs)
    fn = module
    for part in factory.split("."):
        fn = getattr(fn, part)
    return fn(*args, **kwargs)


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest ``|a - b|`` over all leaves, computed on the device in float32."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(
        float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))) for x, y in pairs
    )


def all_deleted(tree: Any) -> bool:
    return all(x.is_deleted() for x in jax.tree.leaves(tree) if isinstance(x, jax.Array))


def step_factory(opt: Any, apply_updates: Callable) -> Callable[[], Callable]:
    """A factory of fresh ``step(params, state, grads) -> (params, state)``."""

    def make():
        def step(params, state, grads):
            updates, state = opt.update(grads, state, params)
            return apply_updates(params, updates), state

        return step

    return make


def kernel_factory(n_read: int, n_write: int) -> Callable[[], Callable]:
    """``(x_1..x_w), g_1..g_(r-w) -> x_i + sum(g)``: reads ``n_read`` arrays and writes
    ``n_write`` (donated, in place), i.e. the memory traffic of an optimizer step with
    trivial arithmetic. ``n_read=1, n_write=1`` is the copy-like ``x + 1``."""

    def make():
        def step(*args):
            xs, gs = args[:n_write], args[n_write:]
            s = sum(gs[1:], gs[0]) if gs else 1.0
            return tuple(x + s for x in xs)

        return step

    return make


def donated_step(name: str, make: Callable, carry: tuple, consts: tuple, repeats: int) -> tuple:
    """Compile ``make()`` with ``carry`` donated (``repeats`` fresh compiles, timed apart),
    make the first call and check that the donation took effect: (bench, compile result,
    donated, donation warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # keep_unused: a state leaf the step ignores (adafactor's (1,) placeholder for a
        # factored v) is still passed, so donated (deleted) like the others
        cr = T.compile_timed(
            make,
            (*carry, *consts),
            repeats=repeats,
            donate_argnums=tuple(range(len(carry))),
            keep_unused=True,
        )
        new = jax.block_until_ready(cr.compiled(*carry, *consts))
    said = [str(w.message) for w in caught if "donat" in str(w.message).lower()]
    return T.StatefulBench(name, cr.compiled, new, consts), cr, all_deleted(carry), said


def timings(st: T.Stats, number: int, size: int, bytes_per_param: int) -> dict[str, Any]:
    return {
        "calls_per_sample": number,
        "time_s": st.to_dict(),
        "time_ms": st.scaled(1e3),
        "Gparam_per_s": {k: v / 1e9 for k, v in T.rate_stats(size, st).items()},
        "GB_per_s": {k: v / 1e9 for k, v in T.rate_stats(size * bytes_per_param, st).items()},
    }


def hlo_summary(compiled: Any) -> dict[str, Any]:
    """A few facts about the optimised program, to spot extra work between libraries."""
    out: dict[str, Any] = {}
    try:
        text = compiled.as_text()
        entry = text[text.rfind("ENTRY") :].splitlines()
        out["entry_instructions"] = sum(1 for ln in entry if " = " in ln)
        out["entry_fusions"] = sum(1 for ln in entry if " fusion(" in ln)
        out["converts_total"], out["hlo_chars"] = text.count(" convert("), len(text)
        ca = compiled.cost_analysis()
        ca = (ca[0] if ca else {}) if isinstance(ca, (list, tuple)) else ca
        if ca:
            out["xla_flops"] = float(ca.get("flops", float("nan")))
            out["xla_bytes_accessed"] = float(ca.get("bytes accessed", float("nan")))
        ma = compiled.memory_analysis()
        for k in ("argument", "output", "alias", "temp"):
            if hasattr(ma, f"{k}_size_in_bytes"):
                out[f"{k}_size_in_bytes"] = int(getattr(ma, f"{k}_size_in_bytes"))
    except Exception as e:  # pragma: no cover - best effort
        out["hlo_error"] = repr(e)
    return out


# --------------------------------------------------------------------------- torch.optim


class TorchAdamBench(T.StatefulBench):
    """``torch.optim.Adam.step()`` on params whose ``.grad`` is set once, timed like the
    JAX steps (several steps back to back, then a device synchronisation)."""

    def __init__(self, name: str, optimizer: Any, sync: Callable[[], None]):
        super().__init__(name, None, None)
        self.optimizer, self.sync = optimizer, sync

    def _call(self) -> None:
        self.optimizer.step()

    def _block(self) -> None:
        self.sync()


def torch_adam_benches(
    flat_p: np.ndarray, flat_g: np.ndarray, leaves: int, dtype: str
) -> tuple[list, dict]:
    """torch.optim.Adam (foreach, fused) on the device kind JAX uses; ([], reasons) when
    torch is missing or a variant is unsupported there."""
    try:
        import torch
    except ImportError:
        return [], {"torch": "not importable"}
    device = "cuda" if jax.devices()[0].platform == "gpu" and torch.cuda.is_available() else "cpu"
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    benches, skipped = [], {}
    for variant in ("foreach", "fused"):
        params = []
        for p, g in zip(split(flat_p, leaves), split(flat_g, leaves), strict=True):
            params.append(torch.tensor(p, dtype=tdtype, device=device))
            params[-1].grad = torch.tensor(g, dtype=tdtype, device=device)
        try:
            opt = torch.optim.Adam(params, lr=1e-3, **{variant: True})
            opt.step()
            sync()
        except (RuntimeError, TypeError, ValueError) as e:  # e.g. fused unsupported there
            skipped[f"torch Adam {variant}"] = str(e).splitlines()[0][:200]
            continue
        benches.append(TorchAdamBench(f"torch Adam {variant} ({device})", opt, sync))
    return benches, {"torch_version": torch.__version__, "torch_device": device, **skipped}


# --------------------------------------------------------------------------- measurements


def bench_kernels(size: int, cfg: Any, rng: np.random.Generator) -> dict[str, Any]:
    """The reference kernels at one size, interleaved."""
    runs = {}
    for name, (n_read, n_write) in KERNELS.items():
        arrays = [
            jax.device_put(rng.standard_normal(size, dtype=np.float32)) for _ in range(n_read)
        ]
        carry, consts = tuple(arrays[:n_write]), tuple(arrays[n_write:])
        runs[name] = donated_step(name, kernel_factory(n_read, n_write), carry, consts, 1)
    benches = [r[0] for r in runs.values()]
    number = T.run_interleaved(
        benches, repeats=cfg.repeats, warmup=cfg.warmup, min_sample_s=cfg.min_sample_s
    )
    out = {}
    for name, (bench, cr, donated, _) in runs.items():
        n_read, n_write = KERNELS[name]
        bytes_per_param = (n_read + n_write) * 4
        out[name] = {
            "arrays_read": n_read,
            "arrays_written": n_write,
            "bytes_per_param": bytes_per_param,
            "compile_s": cr.total.to_dict(include_samples=False),
            **timings(bench.stats(), number, size, bytes_per_param),
            "donation_ok": bool(donated),
        }
        del out[name]["Gparam_per_s"]
    return out


def bench_row(
    opt_name: str, dtype: str, leaves: int, size: int, cfg: Any, rng: np.random.Generator
) -> dict[str, Any]:
    """One (optimizer, dtype, size, layout) row: the libraries (and torch for adam),
    interleaved, after checking that ours and optax compute the same step."""
    factory, args, kwargs = OPTIMIZERS[opt_name][:3]
    shapes = matrix_shapes(size, leaves) if opt_name in MATRIX else None
    n_read, n_write = arrays_moved(opt_name, shapes)
    bytes_per_param = (n_read + n_write) * np.dtype(DTYPES[dtype]).itemsize
    flat_p = rng.standard_normal(size, dtype=np.float32)
    flat_g = rng.standard_normal(size, dtype=np.float32) * np.float32(1e-2)
    params = make_tree(flat_p.astype(DTYPES[dtype]), leaves, shapes)
    grads = make_tree(flat_g.astype(DTYPES[dtype]), leaves, shapes)
    steps, wrap = {}, {}
    for lib, module in LIBRARIES.items():
        opt = build(module, factory, args, kwargs)
        steps[lib] = opt, step_factory(opt, module.apply_updates)
        # lookahead's params are (fast, slow) pairs, each library's own type
        wrap[lib] = lookahead_params(module) if opt_name.startswith("lookahead") else (
            lambda p: p)  # fmt: skip

    # One-step agreement on identical inputs (not donated, not timed).
    after = [
        jax.jit(make())(wrap[lib](params), opt.init(wrap[lib](params)), grads)[0]
        for lib, (opt, make) in steps.items()
    ]
    out: dict[str, Any] = {
        "optimizer": opt_name,
        "dtype": dtype,
        "leaves": leaves,
        "size": size,
        "layout": layout_label(leaves, shapes),
        "arrays_read": n_read,
        "arrays_written": n_write,
        "bytes_per_param": bytes_per_param,
        "max_abs_diff_params_after_one_step": max_abs_diff(*after),
        "libraries": {},
    }
    del after
    benches = []
    for lib, (opt, make) in steps.items():
        p = wrap[lib](
            jax.tree.map(lambda x: jnp.array(x, copy=True), params)
        )  # each donates its own
        # the state copied: a state may hold the params themselves (prodigy's params0), and
        # a buffer cannot be donated twice
        bench, cr, donated, said = donated_step(
            lib, make, (p, jax.tree.map(jnp.copy, opt.init(p))), (grads,), cfg.compile_repeats
        )
        out["libraries"][lib] = {
            "compile_s": {
                "lower_plus_compile": cr.total.to_dict(),
                "lower": cr.lower.to_dict(),
                "xla_compile": cr.compile.to_dict(),
            },
            "donation_ok": bool(donated),
            "donation_warnings": said,
            "hlo": hlo_summary(cr.compiled),
        }
        if cfg.dump_hlo:
            d = Path(cfg.dump_hlo)
            d.mkdir(parents=True, exist_ok=True)
            tag = f"{opt_name.split('(')[0]}_{dtype}_{size}_{leaves}leaves_{lib}"
            (d / f"{tag}.stablehlo.txt").write_text(cr.lowered.as_text())
            (d / f"{tag}.optimized_hlo.txt").write_text(cr.compiled.as_text())
        benches.append(bench)
    if opt_name == "adam" and cfg.torch:
        torch_benches, out["torch"] = torch_adam_benches(flat_p, flat_g, leaves, dtype)
        out["libraries"].update(
            {b.name: {"compile_s": None, "donation_ok": True} for b in torch_benches}
        )
        benches += torch_benches
    del flat_p, flat_g

    number = T.run_interleaved(
        benches, repeats=cfg.repeats, warmup=cfg.warmup, min_sample_s=cfg.min_sample_s
    )
    ref = next(b for b in benches if b.name == "optax").samples
    for b in benches:
        # paired ratios: sample i of both was taken in the same round, back to back
        r = T.paired_ratio(b.samples, ref)
        out["libraries"][b.name].update(timings(b.stats(), number, size, bytes_per_param))
        out["libraries"][b.name]["ratio_to_optax"] = {
            "median": r.pop("median_over_median"),
            "min": r.pop("min_over_min"),
            **r,
        }
    out["ratio_ours_over_optax"] = out["libraries"]["jaxopt_lab"]["ratio_to_optax"]
    return out


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    cfg.sizes = cfg.sizes or default_sizes()
    for n in cfg.leaves:
        if not 1 <= n <= min(cfg.sizes):
            raise ValueError(f"--leaves: each count must be in [1, the smallest size], got {n}")
    record, log = R.begin(
        "update_throughput",
        cfg,
        donate="params and optimizer state (argnums 0, 1), both JAX libraries",
        order="interleaved: the libraries alternate which goes first each repeat",
        step="updates, state = opt.update(g, state, p); p = apply_updates(p, updates)",
        hyperparameters={
            "adam": "adam(1e-3)",
            "adamw": "adamw(1e-3, weight_decay=1e-4)",
            "sgd": "sgd(1e-3, momentum=0.9)",
            "rmsprop": "rmsprop(1e-3)",
            "adagrad": "adagrad(1e-3)",
            "lion": "lion(1e-4)",
            "adafactor": "adafactor(1e-3)",
            "muon": "contrib.muon(1e-3)",
            "schedule_free_adamw": "contrib.schedule_free_adamw(1e-3)",
            "prodigy": "contrib.prodigy(1.0)",
            "lookahead(adam)": "lookahead(adam(1e-3), sync_period=5, slow_step_size=0.5)",
            "flatten(adam)": "flatten(adam(1e-3))",
            "matrix_layout": f"{sorted(MATRIX)} on 2-D leaves (matrix_shapes); the rest 1-D",
            "torch": "torch.optim.Adam(lr=1e-3, foreach=True | fused=True)",
        },
    )
    rng = np.random.default_rng(cfg.seed)
    refs, results = record.setdefault("reference_kernels", {}), record.setdefault("results", [])
    record["torch_version"] = None
    for size in cfg.sizes:
        refs[str(size)] = bench_kernels(size, cfg, rng)
        copy_gbs = refs[str(size)][COPY]["GB_per_s"]["median"]
        for dtype, leaves, opt_name in itertools.product(cfg.dtypes, cfg.leaves, cfg.optimizers):
            cap = CPU_MAX_SIZE.get(opt_name) if jax.devices()[0].platform == "cpu" else None
            if cap is not None and size > cap:
                record.setdefault("not_run", {})[opt_name] = (
                    f"sizes above {size_label(cap)} on a CPU (matmul-bound, see CPU_MAX_SIZE)"
                )
                continue
            try:
                r = bench_row(opt_name, dtype, leaves, size, cfg, rng)
            except Exception as e:  # a library that cannot run the row: recorded, not hidden
                what = f"{size_label(size)} {dtype} {opt_name} {leaves} leaves"
                msg = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                record.setdefault("failed", {})[what] = msg
                log(f"{what}: FAILED {msg}")
                continue
            record["torch_version"] = record["torch_version"] or r.get("torch", {}).get(
                "torch_version"
            )
            for info in r["libraries"].values():
                info["fraction_of_copy_bandwidth"] = info["GB_per_s"]["median"] / copy_gbs
            results.append(r)
            times = [f"{lib} {x['time_ms']['median']:.3f} ms" for lib, x in r["libraries"].items()]
            log(f"{size_label(size)} {dtype} {opt_name} {leaves} leaves: " + ", ".join(times))
    return R.finish(record)


# --------------------------------------------------------------------------- report


def size_label(size: int) -> str:
    return f"2^{size.bit_length() - 1}" if size & (size - 1) == 0 else f"{size:,}"


def copy_share(row: dict[str, Any]) -> str:
    return f"{100 * row['GB_per_s']['median'] / row['copy_GB_per_s']:.0f}%"


def to_optax(row: dict[str, Any]) -> Any:
    return "ref" if row["library"] == "optax" else row["ratio_to_optax"]["median"]


def paired(row: dict[str, Any]) -> str:
    r = row["ratio_to_optax"]
    return "" if row["library"] == "optax" else f"{r['paired_q25']:.3f}-{r['paired_q75']:.3f}"


def compile_s(row: dict[str, Any]) -> Any:
    return row["compile_s"]["lower_plus_compile"]["median"] if row["compile_s"] else "-"


SIZE = ("size", lambda row: size_label(row["size"]), None)
TIMES = [("median ms", "time_ms.median", ".3f"), ("min ms", "time_ms.min", ".3f"),
         ("max ms", "time_ms.max", ".3f")]  # fmt: skip
COLUMNS = [
    SIZE,
    ("dtype", "dtype", None),
    ("optimizer", "optimizer", None),
    ("layout", "layout", None),
    ("library", "library", None),
    ("compile s", compile_s, ".3f"),
    *TIMES,
    ("Gparam/s", "Gparam_per_s.median", ".3f"),
    ("GB/s", "GB_per_s.median", ".1f"),
    ("% copy BW", copy_share, None),
    ("to optax", to_optax, ".3f"),
    ("paired q25-q75", paired, None),
]
KERNEL_COLUMNS = [
    SIZE,
    ("kernel", "name", None),
    ("bytes/param", "bytes_per_param", "d"),
    *TIMES,
    ("GB/s", "GB_per_s.median", ".1f"),
    ("% copy BW", copy_share, None),
]
ABOUT = (
    "{repeats} interleaved repeats after {warmup} warm-up calls; params and state donated for "
    "the JAX libraries. Times are per step; 'to optax' = ratio of median times (paired q25-q75: "
    "quartiles of the per-round ratios, a noise gauge); GB/s counts the bytes a fused step must "
    "move ((arrays read + written) x element size: adam/adamw/schedule_free_adamw 7 arrays, "
    "lookahead(adam) 9, prodigy 10, factored adafactor 3 (unfactored 5), the others 5; muon's "
    "Newton-Schulz matmuls are compute, not bytes); matrix layouts give leaves' rows x columns; "
    "'% copy BW' is that over the donated copy kernel's bandwidth at the same size; compile s = trace + "
    "lower + XLA compile (median)."
)


FLATTEN_COLUMNS = [
    SIZE,
    ("dtype", "dtype", None),
    ("leaves", "leaves", "d"),
    ("library", "library", None),
    ("flatten(adam) ms", "flat_ms", ".3f"),
    ("adam, 1 leaf ms", "one_leaf_ms", ".3f"),
    ("to 1 leaf", "to_one_leaf", ".2f"),
]


def flatten_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """flatten(adam) on many leaves against adam on the same params as one leaf (the
    best flatten can do), per library, from medians of the same run."""
    one_leaf = {(r["size"], r["dtype"]): r for r in record["results"]
                if r["optimizer"] == "adam" and r["leaves"] == 1}  # fmt: skip
    rows = []
    for r in record["results"]:
        ref = one_leaf.get((r["size"], r["dtype"]))
        if r["optimizer"] != "flatten(adam)" or r["leaves"] == 1 or ref is None:
            continue
        for lib in LIBRARIES:
            flat, one = (x["libraries"][lib]["time_ms"]["median"] for x in (r, ref))
            rows.append({**r, "library": lib, "flat_ms": flat, "one_leaf_ms": one,
                         "to_one_leaf": flat / one})  # fmt: skip
    return rows


def report(record: dict[str, Any]) -> list[Any]:
    refs = record["reference_kernels"]
    copy = {int(size): kernels[COPY]["GB_per_s"]["median"] for size, kernels in refs.items()}
    rows, skipped, bad = [], {}, []
    for r in record["results"]:
        layout = r.get("layout") or ("1 leaf" if r["leaves"] == 1 else f"{r['leaves']} leaves")
        for lib, info in r["libraries"].items():
            rows.append(
                {**r, **info, "library": lib, "layout": layout, "copy_GB_per_s": copy[r["size"]]}
            )
            if not info["donation_ok"]:
                bad.append(f"{r['optimizer']} / {r['dtype']} / {layout} / {lib}")
        # "torch": "not importable" says why a run on a machine without torch has no torch rows
        torch_notes = r.get("torch", {}).items()
        skipped.update({k: v for k, v in torch_notes if k == "torch" or k.startswith("torch Adam")})
    skipped.update(record.get("not_run", {}))
    skipped.update({k: f"failed ({v})" for k, v in record.get("failed", {}).items()})
    notes = [f"Not run: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}"] if skipped else []
    if bad:
        notes.append("WARNING: donation did not take effect for: " + ", ".join(bad))
    kernel_rows = [{"size": int(size), "name": name, **k, "copy_GB_per_s": copy[int(size)]}
                   for size, kernels in refs.items() for name, k in kernels.items()]  # fmt: skip
    flat = flatten_rows(record)
    flat_table = [
        R.Table(
            FLATTEN_COLUMNS,
            flat,
            n_left=4,
            text=(
                "flatten(adam) on many leaves against adam on the same params as one leaf (medians "
                "of the rows above; the rows are timed apart, not interleaved with each other):"
            ),
        )
    ]
    return [
        ABOUT.format(**record["config"]),
        R.Table(COLUMNS, rows, n_left=5),
        *(flat_table if flat else []),
        R.Table(
            KERNEL_COLUMNS,
            kernel_rows,
            text="Reference kernels (same device, float32, donated, timed the same way):",
            notes=notes,
            n_left=2,
        ),
    ]


if __name__ == "__main__":
    R.cli(__spec__.name)
