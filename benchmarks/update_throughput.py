"""Throughput of one jitted optimizer step: jaxopt_lab against optax.

One step is what a training loop does after the gradient is known::

    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

compiled with ``jax.jit``, params and optimizer state donated (the same for both
libraries), gradients passed in as a constant. It is timed for

* ``jol.adam(1e-3)``              vs ``optax.adam(1e-3)``
* ``jol.sgd(1e-3, momentum=0.9)`` vs ``optax.sgd(1e-3, momentum=0.9)``
* ``jol.rmsprop(1e-3)``           vs ``optax.rmsprop(1e-3)``

on ``--size`` float32 parameters (default 2**24) held as each of ``--leaves`` leaves
(default 1 and 100; leaves of equal-ish sizes summing to ``--size``).

An optimizer update is memory-bound, so each row also reports the effective memory
bandwidth from the bytes a fused step must move per parameter:

* adam:          read p, g, mu, nu + write p, mu, nu  = 7 x 4 = 28 bytes
* sgd(momentum): read p, g, trace  + write p, trace   = 5 x 4 = 20 bytes
* rmsprop:       read p, g, nu     + write p, nu      = 5 x 4 = 20 bytes

and compares it with reference kernels timed the same way on the same device: a donated
in-place copy-like kernel ``x + 1`` (read x, write x: 8 bytes) -- the "achievable
bandwidth" -- and two streaming kernels that move exactly the bytes of the optimizers
(read 4 / write 3 and read 3 / write 2 arrays) with trivial arithmetic.

ours and optax are timed interleaved (A B, B A, ...) to keep slow drift of a noisy
machine from favouring either. Compile time (trace + lower + XLA compile) is measured
apart, on fresh function objects.

Usage::

    python benchmarks/update_throughput.py [--size 16777216] [--leaves 1,100]
        [--repeats N] [--quick] [--out benchmarks/results] [--dump-hlo DIR]

Writes ``<out>/update_throughput_<platform>.json`` and ``.md`` (with ``--quick``:
``update_throughput_<platform>_quick.*``, so a smoke run never overwrites real results)
and prints the markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

try:  # run as a script: benchmarks/ is on sys.path
    import _timing as T
except ImportError:  # run as a module: python -m benchmarks.update_throughput
    from benchmarks import _timing as T

try:
    import jaxopt_lab as jol
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import jaxopt_lab as jol

import optax

REPO = Path(__file__).resolve().parents[1]

# name -> (ours factory, optax factory, bytes moved per param per step, arrays read, written)
OPTIMIZERS: dict[str, tuple[Callable[[], Any], Callable[[], Any], int, int, int]] = {
    "adam": (lambda: jol.adam(1e-3), lambda: optax.adam(1e-3), 28, 4, 3),
    "sgd(momentum=0.9)": (
        lambda: jol.sgd(1e-3, momentum=0.9),
        lambda: optax.sgd(1e-3, momentum=0.9),
        20, 3, 2,
    ),
    "rmsprop": (lambda: jol.rmsprop(1e-3), lambda: optax.rmsprop(1e-3), 20, 3, 2),
}

COPY_BYTES_PER_ELEM = 8  # x + 1 in place: read x, write x (float32)


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
        entry = text[text.rfind("ENTRY"):]
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
            for k in ("argument_size_in_bytes", "output_size_in_bytes",
                      "alias_size_in_bytes", "temp_size_in_bytes"):
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


def run_reference_kernels(size: int, repeats: int, warmup: int, min_sample_s: float,
                          rng: np.random.Generator) -> dict[str, Any]:
    specs = {
        "copy (x+1, donated)": (1, 1),
        "stream read3/write2": (3, 2),
        "stream read4/write3": (4, 3),
    }
    results: dict[str, Any] = {}
    benches = []
    for name, (n_read, n_write) in specs.items():
        carry = tuple(jax.device_put(rng.standard_normal(size, dtype=np.float32))
                      for _ in range(n_write))
        consts = tuple(jax.device_put(rng.standard_normal(size, dtype=np.float32))
                       for _ in range(n_read - n_write))
        cr = T.compile_timed(stream_kernel_factory(n_read, n_write), (*carry, *consts),
                             repeats=1, donate_argnums=tuple(range(n_write)))
        new = cr.compiled(*carry, *consts)
        jax.block_until_ready(new)
        donated = all_deleted(carry)
        benches.append((name, n_read, n_write, cr, donated,
                        T.StatefulBench(name, cr.compiled, new, consts)))
    number = T.run_interleaved([b for *_, b in benches], repeats=repeats, warmup=warmup,
                               min_sample_s=min_sample_s)
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


# --------------------------------------------------------------------------- main bench


def bench_pair(opt_name: str, leaves: int, size: int, args: argparse.Namespace,
               rng: np.random.Generator) -> dict[str, Any]:
    make_ours, make_optax, bytes_per_param, _, _ = OPTIMIZERS[opt_name]
    flat_p = rng.standard_normal(size, dtype=np.float32)
    flat_g = (rng.standard_normal(size, dtype=np.float32) * np.float32(1e-2))
    params = make_tree(flat_p, leaves)
    grads = make_tree(flat_g, leaves)
    del flat_p, flat_g

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
    diff = max(float(jnp.max(jnp.abs(a - b)))
               for a, b in zip(jax.tree.leaves(check["jaxopt_lab"]), jax.tree.leaves(check["optax"])))
    del check

    out: dict[str, Any] = {"optimizer": opt_name, "leaves": leaves, "size": size,
                           "bytes_per_param": bytes_per_param,
                           "max_abs_diff_params_after_one_step": diff, "libraries": {}}
    benches = []
    for lib, (opt, apply) in libs.items():
        p = tree_copy(params)
        s = opt.init(p)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cr = T.compile_timed(make_step_factory(opt, apply), (p, s, grads),
                                 repeats=args.compile_repeats, donate_argnums=(0, 1))
            # First call: check that donation actually happened for params and state.
            new = cr.compiled(p, s, grads)
            jax.block_until_ready(new)
        donated_ok = all_deleted(p) and all_deleted(s)
        donation_warnings = [str(w.message) for w in caught if "donat" in str(w.message).lower()]
        info = {
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
            tag = f"{opt_name.split('(')[0]}_{leaves}leaves_{lib}"
            (d / f"{tag}.stablehlo.txt").write_text(cr.lowered.as_text())
            (d / f"{tag}.optimized_hlo.txt").write_text(cr.compiled.as_text())
        out["libraries"][lib] = info
        benches.append(T.StatefulBench(lib, cr.compiled, new, (grads,)))
        del p, s

    number = T.run_interleaved(benches, repeats=args.repeats, warmup=args.warmup,
                               min_sample_s=args.min_sample_s)
    for b in benches:
        st = b.stats()
        info = out["libraries"][b.name]
        info["calls_per_sample"] = number
        info["time_s"] = st.to_dict()
        info["time_ms"] = st.scaled(1e3)
        info["Gparam_per_s"] = {k: v / 1e9 for k, v in T.rate_stats(size, st).items()}
        info["GB_per_s"] = {k: v / 1e9
                            for k, v in T.rate_stats(size * bytes_per_param, st).items()}
    ours, ref = out["libraries"]["jaxopt_lab"]["time_s"], out["libraries"]["optax"]["time_s"]
    # Paired ratios: sample i of both libraries was taken in the same round, back to back,
    # so their ratio cancels drift slower than one round; its spread shows the noise.
    paired = [a / b for a, b in zip(ours["samples"], ref["samples"])]
    q25, q50, q75 = (float(np.percentile(paired, q)) for q in (25, 50, 75))
    out["ratio_ours_over_optax"] = {
        "median": ours["median"] / ref["median"],
        "min": ours["min"] / ref["min"],
        "paired_median": q50,
        "paired_q25": q25,
        "paired_q75": q75,
    }
    return out


def fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def build_markdown(result: dict[str, Any]) -> str:
    env, cfg, refs = result["environment"], result["config"], result["reference_kernels"]
    copy_gbs = refs["copy (x+1, donated)"]["GB_per_s"]["median"]
    lines = [
        f"# Optimizer update throughput: jaxopt_lab vs optax ({env['platform']})",
        "",
        f"Device: {env['device_kind']} ({env['device']}), CPU model: {env['cpu_model']}, "
        f"cores: {env['cpu_count']}. jax {env['jax']}, jaxlib {env['jaxlib']}, "
        f"optax {env['optax']}, numpy {env['numpy']}. Load average (1/5/15 min) at start "
        f"{env['load_average_1_5_15min']}, at end {result['load_average_at_end']}.",
        f"{cfg['size']:,} float32 params; {cfg['repeats']} interleaved repeats after "
        f"{cfg['warmup']} warm-up calls; params and state donated for both libraries. "
        "Times are per step; ours/optax = ratio of median times (paired q25-q75: "
        "quartiles of the per-round ratios, a noise gauge); GB/s counts the bytes a fused step must move "
        "(adam 28, sgd(momentum) 20, rmsprop 20 bytes/param); '% copy BW' is that "
        f"over the copy kernel's {copy_gbs:.1f} GB/s; compile s = trace + lower + XLA "
        "compile (median).",
        "",
    ]
    headers = ["optimizer", "layout", "library", "compile s", "median ms", "min ms", "max ms",
               "Gparam/s", "GB/s", "% copy BW", "ours/optax", "paired q25-q75"]
    rows = []
    for r in result["results"]:
        layout = "1 leaf" if r["leaves"] == 1 else f"{r['leaves']} leaves"
        for lib in ("jaxopt_lab", "optax"):
            info = r["libraries"][lib]
            t = info["time_ms"]
            gbs = info["GB_per_s"]["median"]
            rows.append([
                r["optimizer"], layout, lib,
                fmt(info["compile_s"]["lower_plus_compile"]["median"], 3),
                fmt(t["median"]), fmt(t["min"]), fmt(t["max"]),
                fmt(info["Gparam_per_s"]["median"], 3), fmt(gbs, 1),
                f"{100 * gbs / copy_gbs:.0f}%",
                fmt(r["ratio_ours_over_optax"]["median"], 3) if lib == "jaxopt_lab" else "ref",
                (f"{r['ratio_ours_over_optax']['paired_q25']:.3f}-"
                 f"{r['ratio_ours_over_optax']['paired_q75']:.3f}") if lib == "jaxopt_lab" else "",
            ])
    lines.append(T.markdown_table(headers, rows, n_left=3))
    lines += ["", "Reference kernels (same device, same size, donated, timed the same way):", ""]
    rrows = []
    for name, k in refs.items():
        t = k["time_ms"]
        rrows.append([name, k["bytes_per_param"], fmt(t["median"]), fmt(t["min"]), fmt(t["max"]),
                      fmt(k["GB_per_s"]["median"], 1),
                      f"{100 * k['GB_per_s']['median'] / copy_gbs:.0f}%"])
    lines.append(T.markdown_table(["kernel", "bytes/param", "median ms", "min ms", "max ms",
                                   "GB/s", "% copy BW"], rrows, n_left=1))
    bad = [f"{r['optimizer']} / {r['leaves']} leaves / {lib}"
           for r in result["results"] for lib, info in r["libraries"].items()
           if not info["donation_ok"]]
    if bad:
        lines += ["", "WARNING: donation did not take effect for: " + ", ".join(bad)]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None,
                    help="total float32 params (default 2**24; 2**20 with --quick)")
    ap.add_argument("--leaves", type=str, default="1,100",
                    help="comma-separated leaf counts (default 1,100)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed samples per library and row (default 50; 5 with --quick)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed calls before timing (default 3; 1 with --quick)")
    ap.add_argument("--compile-repeats", type=int, default=None,
                    help="fresh compiles timed per row and library (default 3; 1 with --quick)")
    ap.add_argument("--min-sample-s", type=float, default=0.02,
                    help="each sample runs the step enough times back to back to last at "
                         "least this long (default 0.02 s); 1 call when a step is slower")
    ap.add_argument("--optimizers", type=str, default=",".join(OPTIMIZERS),
                    help="subset of: " + ", ".join(OPTIMIZERS))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2**20 params, few repeats")
    ap.add_argument("--out", type=str, default=str(REPO / "benchmarks" / "results"),
                    help="output directory (default benchmarks/results)")
    ap.add_argument("--dump-hlo", type=str, default=None,
                    help="write StableHLO and optimised HLO of every step to this directory")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.size is None:
        a.size = 2**20 if a.quick else 2**24
    if a.repeats is None:
        a.repeats = 5 if a.quick else 50
    if a.warmup is None:
        a.warmup = 1 if a.quick else 3
    if a.compile_repeats is None:
        a.compile_repeats = 1 if a.quick else 3
    try:
        a.leaves_list = [int(x) for x in a.leaves.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--leaves: expected comma-separated integers, got {a.leaves!r}")
    for n in a.leaves_list:
        if not 1 <= n <= a.size:
            ap.error(f"--leaves: each count must be in [1, --size={a.size}], got {n}")
    a.optimizer_list = [x.strip() for x in a.optimizers.split(",") if x.strip()]
    unknown = [x for x in a.optimizer_list if x not in OPTIMIZERS]
    if unknown:
        ap.error(f"--optimizers: unknown {unknown}; choose from {list(OPTIMIZERS)}")
    for name in ("size", "repeats", "compile_repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.warmup < 0:
        ap.error("--warmup must be >= 0")
    return a


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    env = T.environment()
    backend_warmup_s = T.warm_up_backend()
    rng = np.random.default_rng(args.seed)

    refs = run_reference_kernels(args.size, args.repeats, args.warmup, args.min_sample_s, rng)
    results = []
    for leaves in args.leaves_list:
        for opt_name in args.optimizer_list:
            r = bench_pair(opt_name, leaves, args.size, args, rng)
            results.append(r)
            ratio = r["ratio_ours_over_optax"]["median"]
            print(f"[{time.perf_counter() - t_start:6.1f}s] {opt_name:18s} {leaves:4d} leaves: "
                  f"ours {r['libraries']['jaxopt_lab']['time_ms']['median']:.2f} ms, "
                  f"optax {r['libraries']['optax']['time_ms']['median']:.2f} ms, "
                  f"ratio {ratio:.3f}", file=sys.stderr, flush=True)

    copy_gbs = refs["copy (x+1, donated)"]["GB_per_s"]["median"]
    for r in results:
        for info in r["libraries"].values():
            info["fraction_of_copy_bandwidth"] = info["GB_per_s"]["median"] / copy_gbs

    result = {
        "benchmark": "update_throughput",
        "environment": env,
        "config": {
            "size": args.size, "leaves": args.leaves_list, "optimizers": args.optimizer_list,
            "repeats": args.repeats, "warmup": args.warmup,
            "compile_repeats": args.compile_repeats, "min_sample_s": args.min_sample_s,
            "quick": args.quick, "seed": args.seed, "dtype": "float32",
            "donate": "params and optimizer state (argnums 0, 1), both libraries",
            "order": "interleaved: ours/optax alternate which goes first each repeat",
            "step": "updates, state = opt.update(g, state, p); p = apply_updates(p, updates)",
            "hyperparameters": {"adam": "adam(1e-3)", "sgd": "sgd(1e-3, momentum=0.9)",
                                "rmsprop": "rmsprop(1e-3)"},
        },
        "backend_warmup_s": backend_warmup_s,
        "reference_kernels": refs,
        "results": results,
        "load_average_at_end": T.load_average(),
        "total_runtime_s": time.perf_counter() - t_start,
    }
    md = build_markdown(result)

    json_path, md_path = T.write_results(args.out, "update_throughput", args.quick, result, md)
    print(md)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
