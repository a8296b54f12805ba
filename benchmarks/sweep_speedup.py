"""Sweep speedup: ``jol.sweep`` against hand-written learning-rate sweeps with optax.

``jol.sweep`` trains one member per learning rate in one compiled program (chunks of
members, each chunk vmapped in groups and scanned over the steps; see
``jaxopt_lab/sweep.py``). This script measures what that buys over the ways a user would
write the same sweep by hand, and what it costs against the best of them.

Every hand-written baseline builds its optimizer from the traced learning rate
(``optax.adam(lr)`` inside the function that is jitted, scanned or vmapped), so no
learning rate triggers a compile. The scanned baselines record the per-step loss and
global gradient norm, as ``jol.sweep`` does; the Python loops record nothing.

Workload 1 -- Rosenbrock 2-D (``jol.problems.rosenbrock(2)``), adam, 2,000 steps,
K = 64 learning rates ``logspace(-3, 0)``:

* ``python loop``            per learning rate, 2,000 Python calls of one jitted
  ``step(params, state, lr)``. Timed in its own interleaved pair with ``jol.sweep``
  (it is ~100x slower) on all K members when ``(repeats + warm-up) x K`` member runs are
  estimated to fit in ``--python-loop-budget`` seconds, else on 8 members (``--quick``:
  4); the row label says how many. Nothing is extrapolated: speedups compare times per
  member;
* ``scan per lr``            one jitted ``lax.scan`` run per learning rate, K calls;
* ``hand vmap``              ``jax.jit(jax.vmap(run))(lrs)`` of that scan (the reference);
* ``jol.sweep``              ``jol.sweep(jol.adam, fn, x0, lrs, steps)``, default options;
* ``jol.sweep (optax.adam)`` the same with ``optax.adam`` as the optimizer factory.

Workload 2 -- the digits MLP (``jol.problems.digits_mlp(hidden=128)``), full batch
(the loss closes over the 1347 training rows), adam, 300 steps, K = 16 learning rates
``logspace(-4, -1)`` (``--quick``: 50 steps, K = 4): ``jit per lr + python loop``,
``scan per lr``, ``hand vmap`` and ``jol.sweep`` (default options; the vmap width and
chunk size it chose are reported), all interleaved.

Workload 3 -- compile cost of ``jol.sweep`` against K: Rosenbrock 2-D, 200 steps, K = 1,
64 and 1024 (``--quick``: 1, 64 and 256), default chunk size. Each measurement is the first
call of ``jol.sweep`` on a *fresh* loss function object (so no jit cache can answer),
inside ``_timing.CompileEvents``: trace + lower + XLA compile seconds, medians of
``--compile-repeats`` (3) fresh functions per K, the Ks alternated.

Workload 4 -- scaling: warm ``jol.sweep`` on workload 1's Rosenbrock sweep with K = 64,
256 and 1024, interleaved, to show the cost per member.

Workload 5 -- many members against one: warm ``jol.sweep`` on workload 2's digits MLP
(300 steps) with K = 1 and K = 64 learning rates on an accelerator (K = 8 on a CPU,
where members cost time in proportion; ``--quick``: 50 steps, K = 4), interleaved. The
sweep issue's GPU goal: K = 64 in at most 2x the time of K = 1.

Timing rules (``benchmarks/_timing.py``): every sample is one whole call (a whole sweep)
blocked on its outputs (``jol.sweep`` returns numpy arrays, so its call is synchronous);
variants of one workload are timed interleaved (order reversed every round) after
warm-up calls; min / median / max are reported, ratios are of medians with the quartiles
of the per-round (paired) ratios as a noise gauge. Compile cost is measured apart, on each
variant's first call, with JAX's compile events. Final params are compared between
variants (max abs difference). Nothing assumes a platform: JAX picks the device.

Usage::

    python -m benchmarks.sweep_speedup [--quick] [--repeats 30] [--python-repeats 7]
        [--mlp-repeats 5] [--compile-repeats 3] [--warmup 2]
        [--python-loop-budget 60] [--out benchmarks/results]

Writes ``<out>/sweep_speedup_<platform>.json`` and ``.md`` (``--quick``:
``sweep_speedup_<platform>_quick.*``) and prints the markdown tables.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from benchmarks import _timing as T  # run as python -m benchmarks[.<name>] from the repository root

REPO = Path(__file__).resolve().parents[1]

ROSEN_STEPS, ROSEN_K, ROSEN_LR_RANGE = 2000, 64, (-3.0, 0.0)
PY_FALLBACK_MEMBERS, PY_QUICK_MEMBERS = 8, 4
MLP_HIDDEN, MLP_LR_RANGE = 128, (-4.0, -1.0)
MLP_STEPS, MLP_K = (50, 300), (4, 16)  # (quick, full)
COMPILE_STEPS, COMPILE_KS = 200, ((1, 64, 256), (1, 64, 1024))  # (quick, full)
SCALING_KS = (64, 256, 1024)
MEMBERS_K_ACCEL, MEMBERS_K_CPU, MEMBERS_K_QUICK = 64, 8, 4

# Variant names (also the JSON keys).
PYLOOP = "python loop"
MLP_PYLOOP = "jit per lr + python loop"
SCAN = "scan per lr"
VMAP = "hand vmap"
SWEEP = "jol.sweep"
SWEEP_OPTAX = "jol.sweep (optax.adam)"

Log = Callable[[str], None]


# --------------------------------------------------------------------------- hand-written sweeps


def make_scan_run(loss_fn: Callable, params: Any, steps: int) -> Callable[[jax.Array], Any]:
    """``run(lr) -> (final params, losses, grad norms)``: one member trained by a
    ``lax.scan`` over ``steps`` adam steps, the optimizer built from the traced ``lr``."""

    def run(lr: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        opt = optax.adam(lr)

        def step(carry: Any, _: None) -> tuple[Any, tuple[jax.Array, jax.Array]]:
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), (loss, optax.global_norm(g))

        (p, _), (losses, norms) = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return p, losses, norms

    return run


def make_scan_per_lr(run: Callable) -> Callable[[Sequence[jax.Array]], list[Any]]:
    """K sequential calls of one jitted scan, one per learning rate."""
    run_jit = jax.jit(run)

    def sweep_seq(lrs: Sequence[jax.Array]) -> list[Any]:
        return [run_jit(lr) for lr in lrs]

    return sweep_seq


def make_python_loop(
    loss_fn: Callable, params: Any, steps: int
) -> Callable[[Sequence[jax.Array]], list[Any]]:
    """Per learning rate, ``steps`` Python calls of one jitted ``step(p, s, lr)`` (compiled
    once for every ``lr``); returns each member's final params. Records no losses."""

    @jax.jit
    def step(p: Any, s: Any, lr: jax.Array) -> tuple[Any, Any]:
        opt = optax.adam(lr)
        g = jax.grad(loss_fn)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    def sweep_loop(lrs: Sequence[jax.Array]) -> list[Any]:
        finals = []
        for lr in lrs:
            p, s = params, optax.adam(lr).init(params)
            for _ in range(steps):
                p, s = step(p, s, lr)
            finals.append(p)
        return finals

    return sweep_loop


# --------------------------------------------------------------------------- helpers


def logspace(lo_hi: tuple[float, float], k: int) -> jax.Array:
    return jnp.logspace(lo_hi[0], lo_hi[1], k, dtype=jnp.float32)


def scalars(lrs: jax.Array) -> list[jax.Array]:
    """The learning rates as 0-d device arrays, split once (not per timed call)."""
    return jax.block_until_ready([lrs[i] for i in range(lrs.shape[0])])


def stack_members(outs: Sequence[Any]) -> Any:
    """Per-member outputs (a list of pytrees) -> one pytree with a leading member axis."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest |a - b| over all leaves, NaN entries (masked history) ignored."""
    return max(
        float(np.nanmax(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def first_call(fn: Callable[[], Any]) -> dict[str, Any]:
    """Compile cost of a variant's very first call (trace + lower + XLA compile + one run),
    from JAX's compile events; ``xla_compiles`` counts the programs it compiled."""
    with T.CompileEvents() as ev:
        jax.block_until_ready(fn())
    return ev.to_dict()


def summarise(benches: Sequence[T.CallBench], ref: str, members: dict[str, int]) -> dict[str, Any]:
    """Per-variant stats (ms per call, ms per member) and ratio to ``ref`` (paired)."""
    by = {b.name: b for b in benches}
    out: dict[str, Any] = {}
    for b in benches:
        st, m = b.stats(), members[b.name]
        out[b.name] = {
            "members": m,
            "time_s": st.to_dict(),
            "ms_per_call": st.scaled(1e3),
            "ms_per_member": st.scaled(1e3 / m),
            "ratio_to_" + ref: T.paired_ratio(b.samples, by[ref].samples),
            **b.info,
        }
    return out


def per_member_ratio(
    a: T.CallBench, members_a: int, b: T.CallBench, members_b: int
) -> dict[str, float]:
    """Paired ratio of per-member times: (a's time / its members) / (b's time / its)."""
    return T.paired_ratio([s / members_a for s in a.samples], [s / members_b for s in b.samples])


def time_variants(calls: dict[str, Callable[[], Any]], members: dict[str, int], ref: str, repeats: int,
                  warmup: int, log: Log, tag: str) -> tuple[list[T.CallBench], dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Each variant's first call (compile cost), then ``repeats`` interleaved warm calls:
    (benches, rows per variant with its stats, ratio to ``ref`` and compile cost, the
    compile costs). ``members``: variant -> members it trains."""
    comp = {name: first_call(c) for name, c in calls.items()}
    log(
        f"{tag}: first calls done ("
        + ", ".join(f"{n} {c['wall_s']:.2f} s" for n, c in comp.items())
        + ")"
    )
    benches = [T.CallBench(name, c) for name, c in calls.items()]
    T.run_interleaved(benches, repeats=repeats, warmup=warmup, number=1)
    rows = summarise(benches, ref, members)
    for name in rows:
        rows[name]["compile"] = comp[name]
    log(f"{tag}: interleaved timings done")
    return benches, rows, comp


# --------------------------------------------------------------------------- workload 1


def bench_rosenbrock(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    prob = jol.problems.rosenbrock(2)
    fn, x0, steps, k = prob.fn, prob.x0, ROSEN_STEPS, ROSEN_K
    lrs = logspace(ROSEN_LR_RANGE, k)
    lr_list = scalars(lrs)

    run = make_scan_run(fn, x0, steps)
    scan_seq = make_scan_per_lr(run)
    vmapped = jax.jit(jax.vmap(run))
    calls: dict[str, Callable[[], Any]] = {
        SCAN: lambda: scan_seq(lr_list),
        VMAP: lambda: vmapped(lrs),
        SWEEP: lambda: jol.sweep(jol.adam, fn, x0, lrs, steps),
        SWEEP_OPTAX: lambda: jol.sweep(optax.adam, fn, x0, lrs, steps),
    }
    benches, rows, comp = time_variants(calls, dict.fromkeys(calls, k), VMAP, args.repeats, args.warmup, log,
                                        "rosenbrock")  # fmt: skip

    # The Python loop: compile on one member, then decide how many members to time.
    py_loop = make_python_loop(fn, x0, steps)
    py_comp = first_call(lambda: py_loop(lr_list[:1]))
    one_member_s = min(T.CallBench("", py_loop, (lr_list[:1],)).sample() for _ in range(2))
    estimate_s = one_member_s * k * (args.python_repeats + 1)
    if args.quick:
        n_py = PY_QUICK_MEMBERS
    else:
        n_py = k if estimate_s <= args.python_loop_budget else PY_FALLBACK_MEMBERS
    log(
        f"rosenbrock: python loop {one_member_s * 1e3:.0f} ms/member; all {k} members "
        f"x {args.python_repeats + 1} calls ~ {estimate_s:.0f} s; timing {n_py} members"
    )
    py = T.CallBench(PYLOOP, py_loop, (lr_list[:n_py],))
    sw = T.CallBench(SWEEP, calls[SWEEP])
    T.run_interleaved([py, sw], repeats=args.python_repeats, warmup=1, number=1)
    py_rows = summarise([py, sw], SWEEP, {PYLOOP: n_py, SWEEP: k})
    py_rows[PYLOOP]["compile"] = {**py_comp, "note": "first call on one member"}
    py_rows[SWEEP]["compile"] = comp[SWEEP]
    log("rosenbrock: python loop done")

    last = {b.name: b.last for b in benches}
    res = last[SWEEP]
    hand = last[VMAP]
    agree = {
        f"{SWEEP} vs {VMAP} (params)": max_abs_diff(res.params, hand[0]),
        f"{SWEEP} vs {VMAP} (loss histories)": max_abs_diff(res.losses, hand[1]),
        f"{SWEEP_OPTAX} vs {SWEEP} (params)": max_abs_diff(last[SWEEP_OPTAX].params, res.params),
        f"{SCAN} vs {VMAP} (params)": max_abs_diff(stack_members(last[SCAN])[0], hand[0]),
        f"{PYLOOP} vs {SWEEP} (params, {n_py} members)": max_abs_diff(
            stack_members(py.last), res.params[:n_py]
        ),
    }
    return {
        "problem": "rosenbrock 2-D, x0 = (-1.2, 1), float32",
        "optimizer": "adam",
        "steps": steps,
        "k": k,
        "learning_rates": f"logspace({ROSEN_LR_RANGE[0]:g}, {ROSEN_LR_RANGE[1]:g}, {k})",
        "repeats": args.repeats,
        "sweep_config": {key: res.config[key] for key in ("vmap_width", "chunk_size", "chunks")},
        "variants": rows,
        "ratio_sweep_over_hand_vmap": rows[SWEEP]["ratio_to_" + VMAP],
        "ratio_sweep_optax_over_hand_vmap": rows[SWEEP_OPTAX]["ratio_to_" + VMAP],
        "python_loop": {
            "members_timed": n_py,
            "repeats": args.python_repeats,
            "one_member_s": one_member_s,
            "all_members_estimate_s": estimate_s,
            "budget_s": args.python_loop_budget,
            "variants": py_rows,
            "speedup_sweep_over_python_loop_per_member": per_member_ratio(py, n_py, sw, k),
        },
        "diverged_members": int(res.diverged.sum()),
        "max_abs_diff": agree,
    }


# --------------------------------------------------------------------------- workload 2


def bench_digits(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    q = int(not args.quick)
    steps, k = MLP_STEPS[q], MLP_K[q]
    prob = jol.problems.digits_mlp(hidden=MLP_HIDDEN)
    train = jax.device_put(prob.train)
    params = jax.block_until_ready(prob.init_params(jax.random.key(0)))
    n = int(jax.tree.leaves(train)[0].shape[0])

    def loss(p: Any) -> jax.Array:
        return prob.loss(p, train)

    lrs = logspace(MLP_LR_RANGE, k)
    lr_list = scalars(lrs)
    run = make_scan_run(loss, params, steps)
    scan_seq = make_scan_per_lr(run)
    vmapped = jax.jit(jax.vmap(run))
    py_loop = make_python_loop(loss, params, steps)
    calls: dict[str, Callable[[], Any]] = {
        MLP_PYLOOP: lambda: py_loop(lr_list),
        SCAN: lambda: scan_seq(lr_list),
        VMAP: lambda: vmapped(lrs),
        SWEEP: lambda: jol.sweep(jol.adam, loss, params, lrs, steps),
    }
    benches, rows, _ = time_variants(calls, dict.fromkeys(calls, k), VMAP, args.mlp_repeats, args.mlp_warmup, log,
                                     "digits")  # fmt: skip

    by = {b.name: b for b in benches}
    best = min((SCAN, VMAP), key=lambda nm: by[nm].stats().median)
    res, hand = by[SWEEP].last, by[VMAP].last
    agree = {
        f"{SWEEP} vs {VMAP} (params)": max_abs_diff(res.params, hand[0]),
        f"{SWEEP} vs {VMAP} (loss histories)": max_abs_diff(res.losses, hand[1]),
        f"{SWEEP} vs {SCAN} (params)": max_abs_diff(res.params, stack_members(by[SCAN].last)[0]),
        f"{SCAN} vs {VMAP} (params)": max_abs_diff(stack_members(by[SCAN].last)[0], hand[0]),
        f"{MLP_PYLOOP} vs {SCAN} (params)": max_abs_diff(
            stack_members(by[MLP_PYLOOP].last), stack_members(by[SCAN].last)[0]
        ),
    }
    return {
        "problem": f"jol.problems.digits_mlp(hidden={MLP_HIDDEN}), full batch (N={n}), float32",
        "optimizer": "adam",
        "steps": steps,
        "k": k,
        "learning_rates": f"logspace({MLP_LR_RANGE[0]:g}, {MLP_LR_RANGE[1]:g}, {k})",
        "repeats": args.mlp_repeats,
        "sweep_config": {key: res.config[key] for key in ("vmap_width", "chunk_size", "chunks")},
        "variants": rows,
        "best_hand_written": best,
        "ratio_sweep_over_best_hand_written": T.paired_ratio(by[SWEEP].samples, by[best].samples),
        "diverged_members": int(res.diverged.sum()),
        "final_losses_sweep": res.final_losses.tolist(),
        "max_abs_diff": agree,
    }


# --------------------------------------------------------------------------- workload 3


def fresh_loss(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """A new function object computing ``fn``: no jit or probe cache has seen it."""
    return lambda p: fn(p)


def bench_compile(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    prob = jol.problems.rosenbrock(2)
    ks = COMPILE_KS[int(not args.quick)]
    lrs = {k: logspace(ROSEN_LR_RANGE, k) for k in ks}
    events: dict[int, list[dict[str, Any]]] = {k: [] for k in ks}
    config: dict[int, dict[str, Any]] = {}
    for r in range(args.compile_repeats):
        for k in ks if r % 2 == 0 else ks[::-1]:
            with T.CompileEvents() as ev:
                res = jol.sweep(jol.adam, fresh_loss(prob.fn), prob.x0, lrs[k], COMPILE_STEPS)
            events[k].append(
                {
                    **ev.to_dict(),
                    "compile_total_s": ev.totals["trace_s"]
                    + ev.totals["lower_s"]
                    + ev.totals["xla_compile_s"],
                }
            )
            config[k] = {key: res.config[key] for key in ("vmap_width", "chunk_size", "chunks")}
    log("compile vs K done")

    def medians(k: int) -> dict[str, float]:
        return {
            key: float(np.median([e[key] for e in events[k]]))
            for key in (
                "trace_s",
                "lower_s",
                "xla_compile_s",
                "compile_total_s",
                "wall_s",
                "xla_compiles",
            )
        }

    per_k = {str(k): {"median": medians(k), "samples": events[k], **config[k]} for k in ks}
    lo, hi = per_k[str(ks[0])]["median"], per_k[str(ks[-1])]["median"]
    return {
        "problem": "rosenbrock 2-D, jol.sweep(jol.adam), default chunk size",
        "steps": COMPILE_STEPS,
        "ks": list(ks),
        "repeats": args.compile_repeats,
        "per_k": per_k,
        "ratio_compile_total_high_k_over_low_k": hi["compile_total_s"] / lo["compile_total_s"],
        # K=1 runs one member unbatched (the width is capped at the members): a smaller
        # program than any K >= the full width, which all compile the same program
        "ratio_compile_total_high_k_over_full_width": hi["compile_total_s"]
        / per_k[str(ks[1])]["median"]["compile_total_s"],
    }


# --------------------------------------------------------------------------- workload 4


def bench_scaling(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    prob = jol.problems.rosenbrock(2)
    benches = []
    for k in SCALING_KS:
        lrs = logspace(ROSEN_LR_RANGE, k)
        benches.append(
            T.CallBench(f"K={k}", jol.sweep, (jol.adam, prob.fn, prob.x0, lrs, ROSEN_STEPS), k=k)
        )
    T.run_interleaved(benches, repeats=args.repeats, warmup=args.warmup, number=1)
    rows = summarise(benches, benches[0].name, {b.name: b.info["k"] for b in benches})
    for b in benches:
        rows[b.name]["chunks"] = b.last.config["chunks"]
        rows[b.name]["ns_per_member_step"] = b.stats().scaled(1e9 / (b.info["k"] * ROSEN_STEPS))
    log("scaling done")
    return {
        "problem": "rosenbrock 2-D, jol.sweep(jol.adam), default options",
        "steps": ROSEN_STEPS,
        "repeats": args.repeats,
        "variants": rows,
    }


# --------------------------------------------------------------------------- workload 5


def bench_members(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    q = int(not args.quick)
    steps = MLP_STEPS[q]
    on_cpu = jax.default_backend() == "cpu"
    big_k = MEMBERS_K_QUICK if args.quick else (MEMBERS_K_CPU if on_cpu else MEMBERS_K_ACCEL)
    prob = jol.problems.digits_mlp(hidden=MLP_HIDDEN)
    train = jax.device_put(prob.train)
    params = jax.block_until_ready(prob.init_params(jax.random.key(0)))

    def loss(p: Any) -> jax.Array:
        return prob.loss(p, train)

    calls: dict[str, Callable[[], Any]] = {}
    for k in (1, big_k):
        # K = 1 takes the middle of the grid: a learning rate that trains, not an edge
        lrs = logspace(MLP_LR_RANGE, k) if k > 1 else jnp.asarray([10 ** np.mean(MLP_LR_RANGE)])
        calls[f"K={k}"] = lambda lrs=lrs: jol.sweep(jol.adam, loss, params, lrs, steps)
    members = {"K=1": 1, f"K={big_k}": big_k}
    benches, rows, _ = time_variants(
        calls, members, "K=1", args.mlp_repeats, args.mlp_warmup, log, "members vs one"
    )
    for b in benches:
        rows[b.name]["sweep_config"] = {
            key: b.last.config[key] for key in ("vmap_width", "chunk_size", "chunks")
        }
    return {
        "problem": f"jol.problems.digits_mlp(hidden={MLP_HIDDEN}), full batch, float32, "
        "jol.sweep(jol.adam), default options",
        "steps": steps,
        "ks": [1, big_k],
        "repeats": args.mlp_repeats,
        "variants": rows,
        "ratio_k_over_1": rows[f"K={big_k}"]["ratio_to_K=1"],
    }


# --------------------------------------------------------------------------- report


def fmt_ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def fmt_ratio(r: dict[str, float]) -> str:
    return f"{r['median_over_median']:.3f} ({r['paired_q25']:.3f}-{r['paired_q75']:.3f})"


HEADERS = [
    "variant",
    "members",
    "median ms/call",
    "min ms",
    "max ms",
    "ms/member (median)",
    "time / ref (paired q25-q75)",
    "1st call: XLA compiles",
    "XLA compile s",
    "1st call s",
]


def variant_rows(rows: dict[str, Any], ref: str, k: int) -> list[list[Any]]:
    out = []
    for name, r in rows.items():
        t, c = r["ms_per_call"], r["compile"]
        label = name if r["members"] == k else f"{name} ({r['members']} of {k} lrs)"
        out.append(
            [
                label,
                r["members"],
                fmt_ms(t["median"]),
                fmt_ms(t["min"]),
                fmt_ms(t["max"]),
                fmt_ms(r["ms_per_member"]["median"]),
                "ref" if name == ref else fmt_ratio(r["ratio_to_" + ref]),
                c["xla_compiles"],
                f"{c['xla_compile_s']:.3f}",
                f"{c['wall_s']:.3f}",
            ]
        )
    return out


def diffs_line(agree: dict[str, float]) -> str:
    return "* Max abs difference: " + "; ".join(f"{k} {v:.2e}" for k, v in agree.items()) + "."


def build_markdown(result: dict[str, Any]) -> str:
    env, cfg = result["environment"], result["config"]
    r, d = result["rosenbrock"], result["digits"]
    c, s, mb = result["compile_vs_k"], result["scaling"], result["members_vs_one"]
    lines = [
        f"# Sweep speedup: jol.sweep vs hand-written learning-rate sweeps ({env['platform']})",
        "",
        f"Device: {env['device_kind']} ({env['device']}), device count "
        f"{env['device_count']}, CPU model: {env['cpu_model']}, cores: {env['cpu_count']}. "
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, optax {env['optax']}. Load average "
        f"(1/5/15 min) at start {env['load_average_1_5_15min']}, at end "
        f"{result['load_average_at_end']}; total {result['total_runtime_s']:.0f} s."
        + (
            " **--quick run (smoke test: fewer members, steps and repeats).**"
            if cfg["quick"]
            else ""
        ),
        "",
        "Each sample is one whole call (a complete sweep) blocked on its outputs; the "
        "variants of a table are timed interleaved (order reversed every round) after "
        "warm-up calls. Hand-written baselines build `optax.adam(lr)` from the traced "
        "learning rate; the scans record per-step loss and gradient norm like jol.sweep, "
        "the Python loops record nothing. 'time / ref' = ratio of median times, with the "
        "quartiles of the per-round ratios as a noise gauge. Compile cost is from each "
        "variant's first call (JAX compile events: XLA compiles triggered, backend compile "
        "seconds, and '1st call s' = trace + lower + compile + one run). The first jol.sweep "
        "call of the process (and the first on a new loss function) also compiles the sweep's "
        "helpers (seed keys, the loss probe that picks the vmap width), hence its extra XLA "
        "compiles.",
        "",
        f"## Rosenbrock 2-D, adam, {r['steps']:,} steps, K = {r['k']} learning rates "
        f"{r['learning_rates']}, {r['repeats']} repeats",
        "",
        f"jol.sweep chose vmap width {r['sweep_config']['vmap_width']}, chunk size "
        f"{r['sweep_config']['chunk_size']} ({r['sweep_config']['chunks']} chunk(s)).",
        "",
        T.markdown_table(HEADERS, variant_rows(r["variants"], VMAP, r["k"])),
    ]
    p = r["python_loop"]
    sp = p["speedup_sweep_over_python_loop_per_member"]
    lines += [
        "",
        f"Python loop (per member {r['steps']:,} calls of a jitted optax step), "
        f"{p['repeats']} repeats interleaved with jol.sweep; {p['members_timed']} of "
        f"{r['k']} members timed (one member: {p['one_member_s'] * 1e3:.0f} ms, all "
        f"{r['k']} x {p['repeats'] + 1} calls estimated {p['all_members_estimate_s']:.0f} s, "
        f"budget {p['budget_s']:.0f} s); the loop's first call is on one member, and "
        "'time / ref' is per call (the speedup below is per member):",
        "",
        T.markdown_table(HEADERS, variant_rows(p["variants"], SWEEP, r["k"])),
        "",
        f"* jol.sweep / hand vmap: **{fmt_ratio(r['ratio_sweep_over_hand_vmap'])}**; "
        f"jol.sweep (optax.adam) / hand vmap: "
        f"{fmt_ratio(r['ratio_sweep_optax_over_hand_vmap'])}.",
        f"* Speedup of jol.sweep over the Python loop, per member (median over median): "
        f"**{sp['median_over_median']:.0f}x** (paired q25-q75 "
        f"{sp['paired_q25']:.0f}x-{sp['paired_q75']:.0f}x).",
        diffs_line(r["max_abs_diff"]) + f" Diverged members in jol.sweep: "
        f"{r['diverged_members']} of {r['k']}.",
        "",
        f"## Digits MLP, {d['problem']}, adam, {d['steps']:,} steps, K = {d['k']} learning "
        f"rates {d['learning_rates']}, {d['repeats']} repeats",
        "",
        f"jol.sweep chose vmap width **{d['sweep_config']['vmap_width']}**, chunk size "
        f"**{d['sweep_config']['chunk_size']}** ({d['sweep_config']['chunks']} chunk(s)).",
        "",
        T.markdown_table(HEADERS, variant_rows(d["variants"], VMAP, d["k"])),
        "",
        f"* jol.sweep / best hand-written sweep ({d['best_hand_written']}): "
        f"**{fmt_ratio(d['ratio_sweep_over_best_hand_written'])}**.",
        diffs_line(d["max_abs_diff"]) + f" Diverged members in jol.sweep: "
        f"{d['diverged_members']} of {d['k']}; final losses "
        f"{min(d['final_losses_sweep']):.4f}-{max(d['final_losses_sweep']):.4f}.",
        "",
        f"## Compile cost of jol.sweep vs K (Rosenbrock 2-D, {c['steps']} steps, default "
        f"chunk size; medians of {c['repeats']} first calls on fresh loss functions)",
        "",
        T.markdown_table(
            [
                "K",
                "vmap width",
                "chunk size",
                "chunks",
                "XLA compiles",
                "trace s",
                "lower s",
                "XLA compile s",
                "compile total s",
                "1st call wall s",
            ],
            [
                [
                    k,
                    v["vmap_width"],
                    v["chunk_size"],
                    v["chunks"],
                    f"{v['median']['xla_compiles']:.0f}",
                    f"{v['median']['trace_s']:.3f}",
                    f"{v['median']['lower_s']:.3f}",
                    f"{v['median']['xla_compile_s']:.3f}",
                    f"{v['median']['compile_total_s']:.3f}",
                    f"{v['median']['wall_s']:.3f}",
                ]
                for k, v in c["per_k"].items()
            ],
        ),
        "",
        f"* Compile total, K={c['ks'][-1]} / K={c['ks'][0]}: "
        f"**{c['ratio_compile_total_high_k_over_low_k']:.2f}**; "
        f"K={c['ks'][-1]} / K={c['ks'][1]}: "
        f"**{c['ratio_compile_total_high_k_over_full_width']:.2f}** (K=1 runs its one "
        "member unbatched, a smaller program; from the full vmap width on, the program "
        "is the same whatever K).",
        "",
        f"## Scaling: warm jol.sweep on Rosenbrock 2-D, {s['steps']:,} steps, "
        f"{s['repeats']} repeats",
        "",
        T.markdown_table(
            [
                "K",
                "chunks",
                "median ms/call",
                "min ms",
                "max ms",
                "µs/member (median)",
                "ns/member-step (median)",
                "time / K=64 (paired q25-q75)",
            ],
            [
                [
                    name,
                    v["chunks"],
                    fmt_ms(v["ms_per_call"]["median"]),
                    fmt_ms(v["ms_per_call"]["min"]),
                    fmt_ms(v["ms_per_call"]["max"]),
                    f"{v['ms_per_member']['median'] * 1e3:.1f}",
                    f"{v['ns_per_member_step']['median']:.2f}",
                    "ref" if i == 0 else fmt_ratio(v[f"ratio_to_K={SCALING_KS[0]}"]),
                ]
                for i, (name, v) in enumerate(s["variants"].items())
            ],
        ),
        "",
        f"## Many members against one: warm jol.sweep on the digits MLP, {mb['steps']} steps, "
        f"{mb['repeats']} repeats",
        "",
        T.markdown_table(
            [
                "K",
                "vmap width",
                "chunk size",
                "median ms/call",
                "min ms",
                "max ms",
                "ms/member (median)",
                "time / K=1 (paired q25-q75)",
                "1st call s",
            ],
            [
                [
                    name,
                    v["sweep_config"]["vmap_width"],
                    v["sweep_config"]["chunk_size"],
                    fmt_ms(v["ms_per_call"]["median"]),
                    fmt_ms(v["ms_per_call"]["min"]),
                    fmt_ms(v["ms_per_call"]["max"]),
                    fmt_ms(v["ms_per_member"]["median"]),
                    "ref" if i == 0 else fmt_ratio(v["ratio_to_K=1"]),
                    f"{v['compile']['wall_s']:.2f}",
                ]
                for i, (name, v) in enumerate(mb["variants"].items())
            ],
        ),
        "",
        f"* K={mb['ks'][1]} / K=1: **{fmt_ratio(mb['ratio_k_over_1'])}**.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 4 Python-loop members, small MLP sweep, K <= 256 "
        "compile, few repeats; writes *_quick.{json,md}",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved samples per Rosenbrock variant (default 30; 5 quick)",
    )
    ap.add_argument(
        "--python-repeats",
        type=int,
        default=None,
        help="samples of the Rosenbrock Python loop (default 7; 3 quick)",
    )
    ap.add_argument(
        "--mlp-repeats",
        type=int,
        default=None,
        help="interleaved samples per digits variant (default 5; 3 quick)",
    )
    ap.add_argument(
        "--compile-repeats",
        type=int,
        default=3,
        help="fresh-function first calls per K in the compile workload",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed calls per Rosenbrock variant (default 3; 1 quick)",
    )
    ap.add_argument("--mlp-warmup", type=int, default=1, help="untimed calls per digits variant")
    ap.add_argument(
        "--python-loop-budget",
        type=float,
        default=60.0,
        help="seconds the Rosenbrock Python loop may take on all K members "
        f"before only {PY_FALLBACK_MEMBERS} are timed",
    )
    ap.add_argument(
        "--out",
        type=str,
        default=str(REPO / "benchmarks" / "results"),
        help="output directory (default benchmarks/results)",
    )
    a = ap.parse_args(argv)
    defaults = dict(repeats=(5, 30), python_repeats=(3, 7), mlp_repeats=(3, 5), warmup=(1, 3))
    for key, (quick_v, full_v) in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, quick_v if a.quick else full_v)
    for key in ("repeats", "python_repeats", "mlp_repeats", "compile_repeats"):
        if getattr(a, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(a, key)}")
    if a.warmup < 0 or a.mlp_warmup < 0:
        ap.error("--warmup and --mlp-warmup must be >= 0")
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    log = T.stage_logger(t_start)

    env = T.environment()
    backend_warmup_s = T.warm_up_backend()
    rosen = bench_rosenbrock(args, log)
    digits = bench_digits(args, log)
    compile_vs_k = bench_compile(args, log)
    scaling = bench_scaling(args, log)
    members = bench_members(args, log)

    result = {
        "benchmark": "sweep_speedup",
        "environment": env,
        "config": {
            "quick": args.quick,
            "repeats": args.repeats,
            "python_repeats": args.python_repeats,
            "mlp_repeats": args.mlp_repeats,
            "compile_repeats": args.compile_repeats,
            "warmup": args.warmup,
            "mlp_warmup": args.mlp_warmup,
            "python_loop_budget_s": args.python_loop_budget,
            "dtype": "float32",
            "order": "interleaved: variant order reversed every round",
            "timing": "whole call (dispatch + run), block_until_ready on every output",
            "compile": "first call of each variant, jax.monitoring compile events",
        },
        "backend_warmup_s": backend_warmup_s,
        "rosenbrock": rosen,
        "digits": digits,
        "compile_vs_k": compile_vs_k,
        "scaling": scaling,
        "members_vs_one": members,
    }
    return T.publish(args.out, result, args.quick, t_start, build_markdown)


if __name__ == "__main__":
    main()
