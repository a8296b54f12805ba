"""Throughput of one jitted optimizer step: jaxopt_lab against optax (and torch.optim).

One step is what a training loop does after the gradient is known::

    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

compiled with ``jax.jit``, params and optimizer state donated (the same for both
libraries), gradients passed in as a constant. Timed for adam, adamw, sgd with momentum
0.9, rmsprop, adagrad and lion (``--optimizers``), on float32 and bfloat16 params
(``--dtypes``) of 2**20 and 2**24 parameters, plus 2**28 on an accelerator with the
memory for it (``--sizes``), each held as 1 leaf and as 200 leaves (``--leaves``). Where
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
machine from favouring any. Compile time (trace + lower + XLA compile) is measured
apart, on fresh function objects.

Usage::

    python -m benchmarks.update_throughput [--sizes 1048576,16777216] [--dtypes float32,bfloat16]
        [--leaves 1,200] [--optimizers adam,sgd(momentum=0.9)] [--repeats N] [--quick]
        [--out benchmarks/results] [--dump-hlo DIR]

Writes ``<out>/update_throughput_<platform>.json`` and ``.md`` (with ``--quick``:
``update_throughput_<platform>_quick.*``, so a smoke run never overwrites real results)
and prints the markdown table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from benchmarks import _timing as T  # run as python -m benchmarks[.<name>] from the repository root

REPO = Path(__file__).resolve().parents[1]

# name -> (ours factory, optax factory, arrays read, arrays written) per step
OPTIMIZERS: dict[str, tuple[Callable[[], Any], Callable[[], Any], int, int]] = {
    "adam": (lambda: jol.adam(1e-3), lambda: optax.adam(1e-3), 4, 3),
    "adamw": (
        lambda: jol.adamw(1e-3, weight_decay=1e-4),
        lambda: optax.adamw(1e-3, weight_decay=1e-4),
        4,
        3,
    ),
    "sgd(momentum=0.9)": (
        lambda: jol.sgd(1e-3, momentum=0.9),
        lambda: optax.sgd(1e-3, momentum=0.9),
        3,
        2,
    ),
    "rmsprop": (lambda: jol.rmsprop(1e-3), lambda: optax.rmsprop(1e-3), 3, 2),
    "adagrad": (lambda: jol.adagrad(1e-3), lambda: optax.adagrad(1e-3), 3, 2),
    "lion": (lambda: jol.lion(1e-4), lambda: optax.lion(1e-4), 3, 2),
}
QUICK_OPTIMIZERS = ("adam", "sgd(momentum=0.9)")
DTYPES = {"float32": np.float32, "bfloat16": jnp.bfloat16}
LARGE = 2**28  # 256M params: only on an accelerator with the memory for both libraries


def default_sizes(quick: bool) -> list[int]:
    if quick:
        return [2**20]
    sizes = [2**20, 2**24]
    dev = jax.devices()[0]
    try:
        limit = (dev.memory_stats() or {}).get("bytes_limit", 0)
    except Exception:  # not every backend reports its memory
        limit = 0
    # two libraries' params and state (3 arrays each for adam) plus the grads, in float32,
    # and room for the reference kernels: about 12 arrays of 1 GiB
    if dev.platform != "cpu" and limit >= 12 * 4 * LARGE:
        sizes.append(LARGE)
    return sizes


# --------------------------------------------------------------------------- data


def leaf_sizes(size: int, leaves: int) -> list[int]:
    """``leaves`` sizes differing by at most one, summing to ``size``."""
    if leaves < 1 or leaves > size:
        raise ValueError(f"--leaves: need 1 <= leaves <= size, got leaves={leaves}, size={size}")
    q, r = divmod(size, leaves)
    return [q + (1 if i < r else 0) for i in range(leaves)]


def make_tree(flat: np.ndarray, leaves: int) -> dict[str, jax.Array]:
    """Split a flat host array into a dict of ``leaves`` 1-D device arrays."""
    sizes = leaf_sizes(flat.size, leaves)
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    width = len(str(leaves - 1))
    return {f"w{i:0{width}d}": jax.device_put(part) for i, part in enumerate(parts)}


def tree_copy(tree: Any) -> Any:
    """A fresh device copy (so that each library donates its own buffers)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def all_deleted(tree: Any) -> bool:
    return all(x.is_deleted() for x in jax.tree.leaves(tree) if isinstance(x, jax.Array))


# --------------------------------------------------------------------------- steps


def make_step_factory(opt: Any, apply_updates: Callable) -> Callable[[], Callable]:
    """Returns a factory of fresh ``step(params, state, grads) -> (params, state)``."""

    def make():
        def step(params, state, grads):
            updates, state = opt.update(grads, state, params)
            params = apply_updates(params, updates)
            return params, state

        return step

    return make


def hlo_summary(compiled: Any) -> dict[str, Any]:
    """A few facts about the optimised program, to spot extra work between libraries."""
    out: dict[str, Any] = {}
    try:
        text = compiled.as_text()
        entry = text[text.rfind("ENTRY") :]
        out["entry_instructions"] = sum(1 for ln in entry.splitlines() if " = " in ln)
        out["entry_fusions"] = sum(1 for ln in entry.splitlines() if " fusion(" in ln)
        out["converts_total"] = text.count(" convert(")
        out["hlo_chars"] = len(text)
    except Exception as e:  # pragma: no cover - best effort
        out["hlo_error"] = repr(e)
    try:
        ca = compiled.cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0] if ca else {}
        if ca:
            out["xla_flops"] = float(ca.get("flops", float("nan")))
            out["xla_bytes_accessed"] = float(ca.get("bytes accessed", float("nan")))
    except Exception as e:  # pragma: no cover
        out["cost_analysis_error"] = repr(e)
    try:
        ma = compiled.memory_analysis()
        if ma is not None:
            for k in (
                "argument_size_in_bytes",
                "output_size_in_bytes",
                "alias_size_in_bytes",
                "temp_size_in_bytes",
            ):
                if hasattr(ma, k):
                    out[k] = int(getattr(ma, k))
    except Exception as e:  # pragma: no cover
        out["memory_analysis_error"] = repr(e)
    return out


# --------------------------------------------------------------------------- reference kernels


def stream_kernel_factory(n_read: int, n_write: int) -> Callable[[], Callable]:
    """``(x_1..x_w), g_1..g_(r-w) -> x_i + sum(g)``: reads ``n_read`` arrays and writes
    ``n_write`` (donated, in place), i.e. the memory traffic of an optimizer step with
    trivial arithmetic. ``n_read=1, n_write=1`` is the copy-like ``x + 1``."""
    n_const = n_read - n_write

    def make():
        if n_const == 0:

            def step(*xs):
                return tuple(x + 1.0 for x in xs)
        else:

            def step(*args):
                xs, gs = args[:n_write], args[n_write:]
                s = gs[0]
                for g in gs[1:]:
                    s = s + g
                return tuple(x + s for x in xs)

        return step

    return make


def run_reference_kernels(
    size: int, repeats: int, warmup: int, min_sample_s: float, rng: np.random.Generator
) -> dict[str, Any]:
    specs = {
        "copy (x+1, donated)": (1, 1),
        "stream read3/write2": (3, 2),
        "stream read4/write3": (4, 3),
    }
    results: dict[str, Any] = {}
    benches = []
    for name, (n_read, n_write) in specs.items():
        carry = tuple(
            jax.device_put(rng.standard_normal(size, dtype=np.float32)) for _ in range(n_write)
        )
        consts = tuple(
            jax.device_put(rng.standard_normal(size, dtype=np.float32))
            for _ in range(n_read - n_write)
        )
        cr = T.compile_timed(
            stream_kernel_factory(n_read, n_write),
            (*carry, *consts),
            repeats=1,
            donate_argnums=tuple(range(n_write)),
        )
        new = cr.compiled(*carry, *consts)
        jax.block_until_ready(new)
        donated = all_deleted(carry)
        benches.append(
            (name, n_read, n_write, cr, donated, T.StatefulBench(name, cr.compiled, new, consts))
        )
    number = T.run_interleaved(
        [b for *_, b in benches], repeats=repeats, warmup=warmup, min_sample_s=min_sample_s
    )
    for name, n_read, n_write, cr, donated, b in benches:
        st = b.stats()
        nbytes = (n_read + n_write) * 4 * size
        results[name] = {
            "arrays_read": n_read,
            "arrays_written": n_write,
            "bytes_per_param": (n_read + n_write) * 4,
            "calls_per_sample": number,
            "compile_s": cr.total.to_dict(include_samples=False),
            "time_s": st.to_dict(),
            "time_ms": st.scaled(1e3),
            "GB_per_s": {k: v / 1e9 for k, v in T.rate_stats(nbytes, st).items()},
            "donation_ok": bool(donated),
        }
    return results


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
    sizes = leaf_sizes(flat_p.size, leaves)
    benches, skipped = [], {}
    for variant in ("foreach", "fused"):
        params = []
        for part_p, part_g in zip(np.split(flat_p.astype(np.float32), np.cumsum(sizes)[:-1]),
                                  np.split(flat_g.astype(np.float32), np.cumsum(sizes)[:-1])):  # fmt: skip
            t = torch.tensor(part_p, dtype=tdtype, device=device)
            t.grad = torch.tensor(part_g, dtype=tdtype, device=device)
            params.append(t)
        try:
            opt = torch.optim.Adam(params, lr=1e-3, **{variant: True})
            opt.step()
            sync()
        except (
            RuntimeError,
            TypeError,
            ValueError,
        ) as e:  # e.g. fused unsupported for a dtype/device
            skipped[f"torch Adam {variant}"] = str(e).splitlines()[0][:200]
            continue
        benches.append(TorchAdamBench(f"torch Adam {variant} ({device})", opt, sync))
    return benches, {"torch_version": torch.__version__, "torch_device": device, **skipped}


# --------------------------------------------------------------------------- main bench


def bench_row(
    opt_name: str,
    dtype: str,
    leaves: int,
    size: int,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One (optimizer, dtype, size, layout) row: ours and optax (and torch for adam)."""
    make_ours, make_optax, n_read, n_write = OPTIMIZERS[opt_name]
    np_dtype = DTYPES[dtype]
    itemsize = np.dtype(np_dtype).itemsize
    bytes_per_param = (n_read + n_write) * itemsize
    flat_p = rng.standard_normal(size, dtype=np.float32)
    flat_g = rng.standard_normal(size, dtype=np.float32) * np.float32(1e-2)
    params = make_tree(flat_p.astype(np_dtype), leaves)
    grads = make_tree(flat_g.astype(np_dtype), leaves)

    libs = {
        "jaxopt_lab": (make_ours(), jol.apply_updates),
        "optax": (make_optax(), optax.apply_updates),
    }

    # One-step numerical agreement on identical inputs (not donated, not timed).
    check = {}
    for lib, (opt, apply) in libs.items():
        step = jax.jit(make_step_factory(opt, apply)())
        new_p, _ = step(params, opt.init(params), grads)
        check[lib] = new_p
    diff = max(float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))
               for a, b in zip(jax.tree.leaves(check["jaxopt_lab"]), jax.tree.leaves(check["optax"])))  # fmt: skip
    del check

    out: dict[str, Any] = {"optimizer": opt_name, "dtype": dtype, "leaves": leaves, "size": size,
                           "bytes_per_param": bytes_per_param,
                           "max_abs_diff_params_after_one_step": diff, "libraries": {}}  # fmt: skip
    benches = []
    for lib, (opt, apply) in libs.items():
        p = tree_copy(params)
        s = opt.init(p)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cr = T.compile_timed(
                make_step_factory(opt, apply),
                (p, s, grads),
                repeats=args.compile_repeats,
                donate_argnums=(0, 1),
            )
            # First call: check that donation actually happened for params and state.
            new = cr.compiled(p, s, grads)
            jax.block_until_ready(new)
        donated_ok = all_deleted(p) and all_deleted(s)
        donation_warnings = [str(w.message) for w in caught if "donat" in str(w.message).lower()]
        out["libraries"][lib] = {
            "compile_s": {
                "lower_plus_compile": cr.total.to_dict(),
                "lower": cr.lower.to_dict(),
                "xla_compile": cr.compile.to_dict(),
            },
            "donation_ok": bool(donated_ok),
            "donation_warnings": donation_warnings,
            "hlo": hlo_summary(cr.compiled),
        }
        if args.dump_hlo:
            d = Path(args.dump_hlo)
            d.mkdir(parents=True, exist_ok=True)
            tag = f"{opt_name.split('(')[0]}_{dtype}_{size}_{leaves}leaves_{lib}"
            (d / f"{tag}.stablehlo.txt").write_text(cr.lowered.as_text())
            (d / f"{tag}.optimized_hlo.txt").write_text(cr.compiled.as_text())
        benches.append(T.StatefulBench(lib, cr.compiled, new, (grads,)))
        del p, s
    if opt_name == "adam" and not args.no_torch:
        torch_benches, out["torch"] = torch_adam_benches(flat_p, flat_g, leaves, dtype)
        for b in torch_benches:
            out["libraries"][b.name] = {"compile_s": None, "donation_ok": True}
        benches += torch_benches
    del flat_p, flat_g

    number = T.run_interleaved(
        benches, repeats=args.repeats, warmup=args.warmup, min_sample_s=args.min_sample_s
    )
    for b in benches:
        st = b.stats()
        info = out["libraries"][b.name]
        info["calls_per_sample"] = number
        info["time_s"] = st.to_dict()
        info["time_ms"] = st.scaled(1e3)
        info["Gparam_per_s"] = {k: v / 1e9 for k, v in T.rate_stats(size, st).items()}
        info["GB_per_s"] = {k: v / 1e9 for k, v in T.rate_stats(size * bytes_per_param, st).items()}
    ref = out["libraries"]["optax"]["time_s"]
    for info in out["libraries"].values():
        mine = info["time_s"]
        # Paired ratios: sample i of both was taken in the same round, back to back, so
        # their ratio cancels drift slower than one round; its spread shows the noise.
        paired = [a / b for a, b in zip(mine["samples"], ref["samples"])]
        q25, q50, q75 = (float(np.percentile(paired, q)) for q in (25, 50, 75))
        info["ratio_to_optax"] = {"median": mine["median"] / ref["median"], "min": mine["min"] / ref["min"],
                                  "paired_median": q50, "paired_q25": q25, "paired_q75": q75}  # fmt: skip
    out["ratio_ours_over_optax"] = out["libraries"]["jaxopt_lab"]["ratio_to_optax"]
    return out


def fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def _size_label(size: int) -> str:
    return f"2^{size.bit_length() - 1}" if size & (size - 1) == 0 else f"{size:,}"


def build_markdown(result: dict[str, Any]) -> str:
    env, cfg, refs = result["environment"], result["config"], result["reference_kernels"]
    lines = [
        f"# Optimizer update throughput: jaxopt_lab vs optax ({env['platform']})",
        "",
        f"Device: {env['device_kind']} ({env['device']}), CPU model: {env['cpu_model']}, "
        f"cores: {env['cpu_count']}. jax {env['jax']}, jaxlib {env['jaxlib']}, "
        f"optax {env['optax']}, numpy {env['numpy']}"
        + (
            f", torch {result['torch_version']}"
            if result.get("torch_version")
            else ", torch not importable"
        )
        + f". Load average (1/5/15 min) at start {env['load_average_1_5_15min']}, at end "
        f"{result['load_average_at_end']}.",
        f"{cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up calls; params and "
        "state donated for the JAX libraries. Times are per step; 'to optax' = ratio of "
        "median times (paired q25-q75: quartiles of the per-round ratios, a noise gauge); "
        "GB/s counts the bytes a fused step must move ((arrays read + written) x element "
        "size: adam/adamw 7 arrays, the others 5); '% copy BW' is that over the donated "
        "copy kernel's bandwidth at the same size; compile s = trace + lower + XLA compile "
        "(median).",
        "",
    ]
    headers = ["size", "dtype", "optimizer", "layout", "library", "compile s", "median ms", "min ms",
               "max ms", "Gparam/s", "GB/s", "% copy BW", "to optax", "paired q25-q75"]  # fmt: skip
    rows = []
    for r in result["results"]:
        layout = "1 leaf" if r["leaves"] == 1 else f"{r['leaves']} leaves"
        copy_gbs = refs[str(r["size"])]["copy (x+1, donated)"]["GB_per_s"]["median"]
        for lib, info in r["libraries"].items():
            t, ratio = info["time_ms"], info["ratio_to_optax"]
            gbs = info["GB_per_s"]["median"]
            compile_s = info["compile_s"]
            rows.append([
                _size_label(r["size"]), r["dtype"], r["optimizer"], layout, lib,
                fmt(compile_s["lower_plus_compile"]["median"], 3) if compile_s else "-",
                fmt(t["median"], 3), fmt(t["min"], 3), fmt(t["max"], 3),
                fmt(info["Gparam_per_s"]["median"], 3), fmt(gbs, 1), f"{100 * gbs / copy_gbs:.0f}%",
                "ref" if lib == "optax" else fmt(ratio["median"], 3),
                "" if lib == "optax" else f"{ratio['paired_q25']:.3f}-{ratio['paired_q75']:.3f}",
            ])  # fmt: skip
    lines.append(T.markdown_table(headers, rows, n_left=5))
    lines += ["", "Reference kernels (same device, float32, donated, timed the same way):", ""]
    rrows = []
    for size, kernels in refs.items():
        copy_gbs = kernels["copy (x+1, donated)"]["GB_per_s"]["median"]
        for name, k in kernels.items():
            t = k["time_ms"]
            rrows.append([_size_label(int(size)), name, k["bytes_per_param"], fmt(t["median"], 3), fmt(t["min"], 3),
                          fmt(t["max"], 3), fmt(k["GB_per_s"]["median"], 1),
                          f"{100 * k['GB_per_s']['median'] / copy_gbs:.0f}%"])  # fmt: skip
    lines.append(T.markdown_table(["size", "kernel", "bytes/param", "median ms", "min ms", "max ms",
                                   "GB/s", "% copy BW"], rrows, n_left=2))  # fmt: skip
    skipped = {k: v for r in result["results"] for k, v in (r.get("torch") or {}).items()
               if k.startswith("torch Adam")}  # fmt: skip
    if skipped:
        lines += ["", "Not run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())]
    bad = [f"{r['optimizer']} / {r['dtype']} / {r['leaves']} leaves / {lib}"
           for r in result["results"] for lib, info in r["libraries"].items() if not info["donation_ok"]]  # fmt: skip
    if bad:
        lines += ["", "WARNING: donation did not take effect for: " + ", ".join(bad)]
    return "\n".join(lines) + "\n"


def _int_list(ap: argparse.ArgumentParser, flag: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"{flag}: expected comma-separated integers, got {text!r}")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--sizes", type=str, default=None,
                    help="comma-separated parameter counts (default 2**20,2**24, plus 2**28 on an accelerator "
                         "with the memory; 2**20 with --quick)")  # fmt: skip
    ap.add_argument(
        "--dtypes", type=str, default="float32,bfloat16", help="subset of float32,bfloat16"
    )
    ap.add_argument(
        "--leaves", type=str, default="1,200", help="comma-separated leaf counts (default 1,200)"
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed samples per library and row (default 30; 5 with --quick)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed calls before timing (default 3; 1 with --quick)",
    )
    ap.add_argument(
        "--compile-repeats",
        type=int,
        default=None,
        help="fresh compiles timed per row and library (default 2; 1 with --quick)",
    )
    ap.add_argument("--min-sample-s", type=float, default=0.02,
                    help="each sample runs the step enough times back to back to last at "
                         "least this long (default 0.02 s); 1 call when a step is slower")  # fmt: skip
    ap.add_argument(
        "--optimizers",
        type=str,
        default=None,
        help="subset of: "
        + ", ".join(OPTIMIZERS)
        + f" (default all; {', '.join(QUICK_OPTIMIZERS)} with --quick)",
    )
    ap.add_argument(
        "--no-torch", action="store_true", help="skip torch.optim even when it is importable"
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke test: 2**20 params, adam and sgd, few repeats"
    )
    ap.add_argument(
        "--out",
        type=str,
        default=str(REPO / "benchmarks" / "results"),
        help="output directory (default benchmarks/results)",
    )
    ap.add_argument(
        "--dump-hlo",
        type=str,
        default=None,
        help="write StableHLO and optimised HLO of every step to this directory",
    )
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    a.size_list = default_sizes(a.quick) if a.sizes is None else _int_list(ap, "--sizes", a.sizes)
    a.repeats = a.repeats or (5 if a.quick else 30)
    a.warmup = (1 if a.quick else 3) if a.warmup is None else a.warmup
    a.compile_repeats = a.compile_repeats or (1 if a.quick else 2)
    a.leaves_list = _int_list(ap, "--leaves", a.leaves)
    for n in a.leaves_list:
        if not 1 <= n <= min(a.size_list):
            ap.error(f"--leaves: each count must be in [1, the smallest size], got {n}")
    a.dtype_list = [x.strip() for x in a.dtypes.split(",") if x.strip()]
    if not a.dtype_list or set(a.dtype_list) - set(DTYPES):
        ap.error(f"--dtypes: choose from {list(DTYPES)}, got {a.dtypes!r}")
    default_opts = ",".join(QUICK_OPTIMIZERS if a.quick else OPTIMIZERS)
    a.optimizer_list = [x.strip() for x in (a.optimizers or default_opts).split(",") if x.strip()]
    unknown = [x for x in a.optimizer_list if x not in OPTIMIZERS]
    if unknown:
        ap.error(f"--optimizers: unknown {unknown}; choose from {list(OPTIMIZERS)}")
    if min(a.size_list, default=0) < 1 or a.repeats < 1 or a.compile_repeats < 1 or a.warmup < 0:
        ap.error("--sizes, --repeats and --compile-repeats must be >= 1, --warmup >= 0")
    return a


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    log = T.stage_logger(t_start)
    env = T.environment()
    backend_warmup_s = T.warm_up_backend()
    rng = np.random.default_rng(args.seed)

    refs, results, torch_version = {}, [], None
    for size in args.size_list:
        refs[str(size)] = run_reference_kernels(
            size, args.repeats, args.warmup, args.min_sample_s, rng
        )
        copy_gbs = refs[str(size)]["copy (x+1, donated)"]["GB_per_s"]["median"]
        for dtype in args.dtype_list:
            for leaves in args.leaves_list:
                for opt_name in args.optimizer_list:
                    r = bench_row(opt_name, dtype, leaves, size, args, rng)
                    torch_version = torch_version or (r.get("torch") or {}).get("torch_version")
                    for info in r["libraries"].values():
                        info["fraction_of_copy_bandwidth"] = info["GB_per_s"]["median"] / copy_gbs
                    results.append(r)
                    times = ", ".join(
                        f"{lib} {info['time_ms']['median']:.3f} ms"
                        for lib, info in r["libraries"].items()
                    )
                    log(f"{_size_label(size)} {dtype} {opt_name} {leaves} leaves: {times}")

    result = {
        "benchmark": "update_throughput",
        "environment": env,
        "torch_version": torch_version,
        "config": {
            "sizes": args.size_list,
            "dtypes": args.dtype_list,
            "leaves": args.leaves_list,
            "optimizers": args.optimizer_list,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "compile_repeats": args.compile_repeats,
            "min_sample_s": args.min_sample_s,
            "quick": args.quick,
            "seed": args.seed,
            "donate": "params and optimizer state (argnums 0, 1), both JAX libraries",
            "order": "interleaved: the libraries alternate which goes first each repeat",
            "step": "updates, state = opt.update(g, state, p); p = apply_updates(p, updates)",
            "hyperparameters": {
                "adam": "adam(1e-3)",
                "adamw": "adamw(1e-3, weight_decay=1e-4)",
                "sgd": "sgd(1e-3, momentum=0.9)",
                "rmsprop": "rmsprop(1e-3)",
                "adagrad": "adagrad(1e-3)",
                "lion": "lion(1e-4)",
                "torch": "torch.optim.Adam(lr=1e-3, foreach=True | fused=True)",
            },
        },  # fmt: skip
        "backend_warmup_s": backend_warmup_s,
        "reference_kernels": refs,
        "results": results,
    }
    return T.publish(args.out, result, args.quick, t_start, build_markdown)


if __name__ == "__main__":
    main()
