"""Sweep speedup: ``jol.sweep`` against hand-written learning-rate sweeps with optax.

``jol.sweep`` trains one member per learning rate in one compiled program (chunks of
members, each chunk vmapped in groups and scanned over the steps; see
``jaxopt_lab/sweep.py``). This script measures what that buys over the ways a user would
write the same sweep by hand, and what it costs against the best of them.

Every hand-written baseline builds its optimizer from the traced learning rate
(``optax.adam(lr)`` inside the function that is jitted, scanned or vmapped), so no
learning rate triggers a compile. The scanned baselines record the per-step loss and
global gradient norm, as ``jol.sweep`` does; the Python loops record nothing.

Workload 1 -- Rosenbrock 2-D (``jol.problems.rosenbrock(2)``), adam, 2,000 steps
(``--rosen-steps``), K = 64 learning rates ``logspace(-3, 0)`` (``--rosen-k``):

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
(the loss closes over the 1347 training rows), adam, 300 steps (``--mlp-steps``), K = 16
learning rates ``logspace(-4, -1)`` (``--mlp-k``; ``--quick``: 50 steps, K = 4): ``jit per lr + python loop``,
``scan per lr``, ``hand vmap`` and ``jol.sweep`` (default options; the vmap width and
chunk size it chose are reported), all interleaved.

Workload 3 -- compile cost of ``jol.sweep`` against K: Rosenbrock 2-D, 200 steps, K = 1,
64 and 1024 (``--compile-ks``; ``--quick``: 1, 64 and 256), default chunk size. Each measurement is the first
call of ``jol.sweep`` on a *fresh* loss function object (so no jit cache can answer),
inside ``_timing.CompileEvents``: trace + lower + XLA compile seconds, medians of
``--compile-repeats`` (3) fresh functions per K, the Ks alternated.

Workload 4 -- scaling: warm ``jol.sweep`` on workload 1's Rosenbrock sweep with K = 64,
256 and 1024 (``--scaling-ks``; a GPU run goes to 4096), interleaved, to show the cost per
member.

Workload 5 -- many members against one: warm ``jol.sweep`` on workload 2's digits MLP
(300 steps) with K = 1 and K = 64 learning rates on an accelerator (K = 8 on a CPU,
where members cost time in proportion; ``--members-k``; ``--quick``: 50 steps, K = 4),
interleaved. The goal on a GPU: K = 64 in at most 2x the time of K = 1. With
``--precision-variants 1`` (the default) the K members are also timed with the options
that cut the members' activation traffic: ``compute_dtype=jnp.bfloat16`` (the loss
closing over the training rows cast to bfloat16 once, as :mod:`jaxopt_lab.precision`
advises for closed-over data, so the products run in bfloat16) and ``remat=True``.

Timing rules (``benchmarks/_timing.py``): every sample is one whole call (a whole sweep)
blocked on its outputs (``jol.sweep`` returns numpy arrays, so its call is synchronous);
variants of one workload are timed interleaved (order reversed every round) after
warm-up calls; min / median / max are reported, ratios are of medians with the quartiles
of the per-round (paired) ratios as a noise gauge. Compile cost is measured apart, on each
variant's first call, with JAX's compile events. Final params are compared between
variants (max abs difference). Nothing assumes a platform: JAX picks the device.
"""

from __future__ import annotations

from functools import partial as P  # P(f, *args): the call f(*args)
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from benchmarks import _report as R
from benchmarks import _timing as T

TITLE = "Sweep speedup: jol.sweep vs hand-written learning-rate sweeps"
PARAMS = {
    "repeats": (5, 30, "interleaved samples per Rosenbrock variant"),
    "python_repeats": (3, 7, "samples of the Rosenbrock Python loop"),
    "mlp_repeats": (3, 5, "interleaved samples per digits variant"),
    "compile_repeats": (3, 3, "fresh-function first calls per K in the compile workload"),
    "warmup": (1, 3, "untimed calls per Rosenbrock variant", 0),
    "mlp_warmup": (1, 1, "untimed calls per digits variant", 0),
    "python_loop_budget": (
        60.0,
        60.0,
        "seconds the Rosenbrock Python loop may take on all K members before only 8 are timed",
    ),
    # the workloads' sizes (defaults as documented above): a GPU run asks for more members,
    # a rehearsal on a CPU (benchmarks/gpu_report.py) for fewer steps
    "rosen_steps": (2000, 2000, "adam steps of the Rosenbrock sweeps (workloads 1 and 4)"),
    "rosen_k": (64, 64, "learning rates of the Rosenbrock sweep (workload 1)"),
    "mlp_steps": (50, 300, "adam steps of the digits sweeps (workloads 2 and 5)"),
    "mlp_k": (4, 16, "learning rates of the digits sweep (workload 2)"),
    "compile_steps": (200, 200, "steps of the compile-vs-K sweeps (workload 3)"),
    "compile_ks": ([1, 64, 256], [1, 64, 1024], "K of the compile workload (3)"),
    "scaling_ks": ([64, 256, 1024], [64, 256, 1024], "K of the scaling workload (4)"),
    "members_k": (4, 0, "many-members K (workload 5); 0: 64 on an accelerator, 8 on a CPU", 0),
    "precision_variants": (1, 1, "workload 5 also times K members in bfloat16 and with remat", 0),
}
ROSEN_LR_RANGE = (-3.0, 0.0)
PY_FALLBACK_MEMBERS, PY_QUICK_MEMBERS = 8, 4
MLP_HIDDEN, MLP_LR_RANGE = 128, (-4.0, -1.0)
MEMBERS_K_ACCEL, MEMBERS_K_CPU = 64, 8
SWEEP_CONFIG = ("vmap_width", "chunk_size", "chunks")

# Variant names (also the JSON keys).
PYLOOP = "python loop"
MLP_PYLOOP = "jit per lr + python loop"
SCAN = "scan per lr"
VMAP = "hand vmap"
SWEEP = "jol.sweep"
SWEEP_OPTAX = "jol.sweep (optax.adam)"
PER = {"per_call": ("ms_per_call", 1e3), "per_work": ("members", "ms_per_member", 1e3)}


# --------------------------------------------------------------------------- hand-written sweeps


def scan_run(loss_fn: Callable, params: Any, steps: int) -> Callable[[jax.Array], Any]:
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


def python_loop(
    loss_fn: Callable, params: Any, steps: int
) -> Callable[[Sequence[jax.Array]], list[Any]]:
    """Per learning rate, ``steps`` Python calls of one jitted ``step(p, s, lr)`` (compiled
    once for every ``lr``); returns each member's final params. Records no losses."""

    @jax.jit
    def step(p: Any, s: Any, lr: jax.Array) -> tuple[Any, Any]:
        opt = optax.adam(lr)
        u, s = opt.update(jax.grad(loss_fn)(p), s, p)
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


def hand_variants(loss_fn: Callable, params: Any, steps: int, lrs: jax.Array) -> list[T.Variant]:
    """``scan per lr`` (K sequential calls of one jitted scan) and ``hand vmap``."""
    run = scan_run(loss_fn, params, steps)
    run_jit, vmapped, lr_list = jax.jit(run), jax.jit(jax.vmap(run)), scalars(lrs)
    return [
        T.Variant(
            SCAN,
            lambda: [run_jit(lr) for lr in lr_list],
            work=len(lr_list),
            check=VMAP,
            out=lambda o: stack_members(o)[0],
        ),
        T.Variant(VMAP, P(vmapped, lrs), work=len(lr_list)),
    ]


# --------------------------------------------------------------------------- helpers


def logspace(lo_hi: tuple[float, float], k: int) -> jax.Array:
    return jnp.logspace(lo_hi[0], lo_hi[1], k, dtype=jnp.float32)


def scalars(lrs: jax.Array) -> list[jax.Array]:
    """The learning rates as 0-d device arrays, split once (not per timed call)."""
    return jax.block_until_ready([lrs[i] for i in range(lrs.shape[0])])


def stack_members(outs: Sequence[Any]) -> Any:
    """Per-member outputs (a list of pytrees) -> one pytree with a leading member axis."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)


def digits(x_dtype: Any = None) -> tuple[Callable, Any, int]:
    """The full-batch loss of the digits MLP (closing over the training rows on the
    device, their floating leaves cast to ``x_dtype`` when given), its initial params
    and the number of rows."""
    prob = jol.problems.digits_mlp(hidden=MLP_HIDDEN, validation_fraction=0)  # N=1347 as before
    train = jax.device_put(prob.train)
    if x_dtype is not None:  # a closed-over array is not cast by compute_dtype: cast it once
        floating = lambda x: jnp.issubdtype(x.dtype, jnp.floating)  # noqa: E731
        train = jax.tree.map(lambda x: x.astype(x_dtype) if floating(x) else x, train)
    params = jax.block_until_ready(prob.init_params(jax.random.key(0)))

    def loss(p: Any) -> jax.Array:
        return prob.loss(p, train)

    return loss, params, int(jax.tree.leaves(train)[0].shape[0])


def sweep_config(res: Any) -> dict[str, Any]:
    return {key: res.config[key] for key in SWEEP_CONFIG}


# --------------------------------------------------------------------------- workloads


def bench_rosenbrock(cfg: Any, log: R.Log) -> dict[str, Any]:
    prob = jol.problems.rosenbrock(2)
    fn, x0, steps, k = prob.fn, prob.x0, cfg.rosen_steps, cfg.rosen_k
    lrs = logspace(ROSEN_LR_RANGE, k)
    sweep = T.Variant(SWEEP, P(jol.sweep, jol.adam, fn, x0, lrs, steps), work=k, check=VMAP)
    variants = [
        *hand_variants(fn, x0, steps, lrs),
        sweep,
        T.Variant(SWEEP_OPTAX, P(jol.sweep, optax.adam, fn, x0, lrs, steps), work=k, check=SWEEP),
    ]
    rows, outs = T.measure(variants, ref=VMAP, repeats=cfg.repeats, warmup=cfg.warmup, **PER)
    log("rosenbrock: interleaved timings done")

    # The Python loop: compile on one member, then decide how many members to time.
    lr_list, py_loop = scalars(lrs), python_loop(fn, x0, steps)
    py_comp = T.first_call(P(py_loop, lr_list[:1]))
    one_member_s = min(T.CallBench("", py_loop, (lr_list[:1],)).sample() for _ in range(2))
    estimate_s = one_member_s * k * (cfg.python_repeats + 1)
    if cfg.quick:
        n_py = PY_QUICK_MEMBERS
    else:
        n_py = k if estimate_s <= cfg.python_loop_budget else PY_FALLBACK_MEMBERS
    log(
        f"rosenbrock: python loop {one_member_s * 1e3:.0f} ms/member; all {k} members "
        f"x {cfg.python_repeats + 1} calls ~ {estimate_s:.0f} s; timing {n_py} members"
    )
    pair = [T.Variant(PYLOOP, P(py_loop, lr_list[:n_py]), work=n_py), sweep]
    py_rows, py_outs = T.measure(
        pair, ref=SWEEP, repeats=cfg.python_repeats, warmup=1, compile=False, **PER
    )
    py_rows[PYLOOP]["compile"] = {**py_comp, "note": "first call on one member"}
    py_rows[SWEEP]["compile"] = rows[SWEEP]["compile"]
    log("rosenbrock: python loop done")

    res, (py_s, sweep_s) = outs[SWEEP], (py_rows[n]["time_s"]["samples"] for n in (PYLOOP, SWEEP))
    return {
        "problem": "rosenbrock 2-D, x0 = (-1.2, 1), float32",
        "optimizer": "adam",
        "steps": steps,
        "k": k,
        "learning_rates": f"logspace({ROSEN_LR_RANGE[0]:g}, {ROSEN_LR_RANGE[1]:g}, {k})",
        "repeats": cfg.repeats,
        "sweep_config": sweep_config(res),
        "variants": rows,
        "ratio_sweep_over_hand_vmap": rows[SWEEP]["ratio_to_" + VMAP],
        "ratio_sweep_optax_over_hand_vmap": rows[SWEEP_OPTAX]["ratio_to_" + VMAP],
        "python_loop": {
            "members_timed": n_py,
            "repeats": cfg.python_repeats,
            "one_member_s": one_member_s,
            "all_members_estimate_s": estimate_s,
            "budget_s": cfg.python_loop_budget,
            "variants": py_rows,
            "speedup_sweep_over_python_loop_per_member": T.paired_ratio(
                [t / n_py for t in py_s], [t / k for t in sweep_s]
            ),
        },
        "diverged_members": int(res.diverged.sum()),
        "max_abs_diff": {
            **T.agreement(variants, outs, " (params)"),
            f"{SWEEP} vs {VMAP} (loss histories)": T.max_abs_diff(res.losses, outs[VMAP][1]),
            f"{PYLOOP} vs {SWEEP} (params, {n_py} members)": T.max_abs_diff(
                stack_members(py_outs[PYLOOP]), res.params[:n_py]
            ),
        },
    }


def bench_digits(cfg: Any, log: R.Log) -> dict[str, Any]:
    steps, k = cfg.mlp_steps, cfg.mlp_k
    loss, params, n = digits()
    lrs = logspace(MLP_LR_RANGE, k)
    py_loop = P(python_loop(loss, params, steps), scalars(lrs))
    variants = [
        T.Variant(MLP_PYLOOP, py_loop, work=k, check=SCAN, out=stack_members),
        *hand_variants(loss, params, steps, lrs),
        T.Variant(SWEEP, P(jol.sweep, jol.adam, loss, params, lrs, steps), work=k, check=VMAP),
    ]
    rows, outs = T.measure(
        variants, ref=VMAP, repeats=cfg.mlp_repeats, warmup=cfg.mlp_warmup, **PER
    )
    log("digits: interleaved timings done")
    best = min((SCAN, VMAP), key=lambda name: rows[name]["time_s"]["median"])
    res = outs[SWEEP]
    return {
        "problem": f"jol.problems.digits_mlp(hidden={MLP_HIDDEN}), full batch (N={n}), float32",
        "optimizer": "adam",
        "steps": steps,
        "k": k,
        "learning_rates": f"logspace({MLP_LR_RANGE[0]:g}, {MLP_LR_RANGE[1]:g}, {k})",
        "repeats": cfg.mlp_repeats,
        "sweep_config": sweep_config(res),
        "variants": rows,
        "best_hand_written": best,
        "ratio_sweep_over_best_hand_written": T.paired_ratio(
            rows[SWEEP]["time_s"]["samples"], rows[best]["time_s"]["samples"]
        ),
        "diverged_members": int(res.diverged.sum()),
        "final_losses_sweep": res.final_losses.tolist(),
        "max_abs_diff": {
            **T.agreement(variants, outs, " (params)"),
            f"{SWEEP} vs {VMAP} (loss histories)": T.max_abs_diff(res.losses, outs[VMAP][1]),
            f"{SWEEP} vs {SCAN} (params)": T.max_abs_diff(res.params, stack_members(outs[SCAN])[0]),
        },
    }


def fresh_loss(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """A new function object computing ``fn``: no jit or probe cache has seen it."""
    return lambda p: fn(p)


def bench_compile(cfg: Any, log: R.Log) -> dict[str, Any]:
    prob, ks = jol.problems.rosenbrock(2), tuple(cfg.compile_ks)
    lrs = {k: logspace(ROSEN_LR_RANGE, k) for k in ks}
    events: dict[int, list[dict[str, Any]]] = {k: [] for k in ks}
    config: dict[int, dict[str, Any]] = {}
    for r in range(cfg.compile_repeats):
        for k in ks if r % 2 == 0 else ks[::-1]:
            with T.CompileEvents() as ev:
                res = jol.sweep(jol.adam, fresh_loss(prob.fn), prob.x0, lrs[k], cfg.compile_steps)
            events[k].append({**ev.to_dict(), "compile_total_s": sum(ev.totals.values())})
            config[k] = sweep_config(res)
    log("compile vs K done")
    keys = ("trace_s", "lower_s", "xla_compile_s", "compile_total_s", "wall_s", "xla_compiles")
    per_k = {}
    for k in ks:
        median = {key: float(np.median([e[key] for e in events[k]])) for key in keys}
        per_k[str(k)] = {"median": median, "samples": events[k], **config[k]}
    total = [per_k[str(k)]["median"]["compile_total_s"] for k in ks]
    return {
        "problem": "rosenbrock 2-D, jol.sweep(jol.adam), default chunk size",
        "steps": cfg.compile_steps,
        "ks": list(ks),
        "repeats": cfg.compile_repeats,
        "per_k": per_k,
        "ratio_compile_total_high_k_over_low_k": total[-1] / total[0],
        # K=1 runs one member unbatched (the width is capped at the members): a smaller
        # program than any K >= the full width, which all compile the same program
        "ratio_compile_total_high_k_over_full_width": total[-1] / total[1],
    }


def bench_scaling(cfg: Any, log: R.Log) -> dict[str, Any]:
    prob, steps = jol.problems.rosenbrock(2), cfg.rosen_steps
    variants = []
    for k in cfg.scaling_ks:
        call = P(jol.sweep, jol.adam, prob.fn, prob.x0, logspace(ROSEN_LR_RANGE, k), steps)
        variants.append(T.Variant(f"K={k}", call, work=k, info={"k": k}))
    rows, outs = T.measure(
        variants, ref=variants[0].name, repeats=cfg.repeats, warmup=cfg.warmup, compile=False, **PER
    )
    for v in variants:
        rows[v.name]["chunks"] = outs[v.name].config["chunks"]
        t = {key: rows[v.name]["time_s"][key] for key in ("min", "median", "max")}
        rows[v.name]["ns_per_member_step"] = {
            key: x * 1e9 / (v.work * steps) for key, x in t.items()
        }
    log("scaling done")
    return {
        "problem": "rosenbrock 2-D, jol.sweep(jol.adam), default options",
        "steps": steps,
        "ks": list(cfg.scaling_ks),
        "repeats": cfg.repeats,
        "variants": rows,
    }


def bench_members(cfg: Any, log: R.Log) -> dict[str, Any]:
    steps, big_k = cfg.mlp_steps, cfg.members_k
    if big_k == 0:  # members cost time in proportion on a CPU: fewer there
        big_k = MEMBERS_K_CPU if jax.default_backend() == "cpu" else MEMBERS_K_ACCEL
    loss, params, _ = digits()
    # K = 1 takes the middle of the grid: a learning rate that trains, not an edge
    grids = {1: jnp.asarray([10 ** np.mean(MLP_LR_RANGE)]), big_k: logspace(MLP_LR_RANGE, big_k)}
    variants = [
        T.Variant(f"K={k}", P(jol.sweep, jol.adam, loss, params, lrs, steps), work=k)
        for k, lrs in grids.items()
    ]
    if cfg.precision_variants:
        variants += precision_variants(loss, params, grids[big_k], steps)
    rows, outs = T.measure(
        variants, ref="K=1", repeats=cfg.mlp_repeats, warmup=cfg.mlp_warmup, **PER
    )
    for name, row in rows.items():
        row["sweep_config"] = sweep_config(outs[name])
    log("members vs one done")
    extra = {}
    for name in (BF16, REMAT) if cfg.precision_variants else ():
        key = f"K={big_k} {name}"
        extra[f"ratio_k_{name.split('=')[0]}_over_1"] = rows[key]["ratio_to_K=1"]
        extra[f"final_losses_max_abs_diff_{name.split('=')[0]}"] = T.max_abs_diff(
            outs[key].final_losses, outs[f"K={big_k}"].final_losses
        )
    return {
        "problem": f"jol.problems.digits_mlp(hidden={MLP_HIDDEN}), full batch, float32, "
        "jol.sweep(jol.adam), default options",
        "steps": steps,
        "ks": [1, big_k],
        "repeats": cfg.mlp_repeats,
        "variants": rows,
        "ratio_k_over_1": rows[f"K={big_k}"]["ratio_to_K=1"],
        **extra,
    }


BF16, REMAT = "compute_dtype=bfloat16", "remat"


def precision_variants(loss: Callable, params: Any, lrs: jax.Array, steps: int) -> list[T.Variant]:
    """The K members with the loss in bfloat16 (closing over bfloat16 rows) and with the
    activations recomputed in the backward pass (``remat=True``)."""
    loss16, k = digits(jnp.bfloat16)[0], lrs.shape[0]
    low = P(jol.sweep, jol.adam, loss16, params, lrs, steps, compute_dtype=jnp.bfloat16)
    remat = P(jol.sweep, jol.adam, loss, params, lrs, steps, remat=True)
    return [T.Variant(f"K={k} {BF16}", low, work=k), T.Variant(f"K={k} {REMAT}", remat, work=k)]


WORKLOADS = {
    "rosenbrock": bench_rosenbrock,
    "digits": bench_digits,
    "compile_vs_k": bench_compile,
    "scaling": bench_scaling,
    "members_vs_one": bench_members,
}


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    if cfg.members_k == 1:  # compared with K=1: the same variant twice
        raise ValueError("--members-k: need 0 (automatic) or >= 2, got 1")
    if len(cfg.compile_ks) < 2 or len(cfg.scaling_ks) < 2:  # each is a comparison
        raise ValueError("--compile-ks, --scaling-ks: need at least 2 values each")
    record, log = R.begin("sweep_speedup", cfg, dtype="float32", **R.WHOLE_CALLS)
    for key, bench in WORKLOADS.items():
        record[key] = bench(cfg, log)
    return R.finish(record)


# --------------------------------------------------------------------------- report


def columns(k: int) -> list[tuple]:
    """The columns of a table of sweeps of ``k`` members (a row with fewer says so)."""

    def label(row: dict[str, Any]) -> str:
        n = row["members"]
        return row["name"] if n == k else f"{row['name']} ({n} of {k} lrs)"

    return [
        ("variant", label, None),
        ("members", "members", "d"),
        ("median ms/call", "ms_per_call.median", R.ms),
        ("min ms", "ms_per_call.min", R.ms),
        ("max ms", "ms_per_call.max", R.ms),
        ("ms/member (median)", "ms_per_member.median", R.ms),
        ("time / ref (paired q25-q75)", R.ratio_to_ref, R.ratio),
        ("1st call: XLA compiles", "compile.xla_compiles", "d"),
        ("XLA compile s", "compile.xla_compile_s", ".3f"),
        ("1st call s", "compile.wall_s", ".3f"),
    ]


COMPILE_COLUMNS = [
    ("K", "name", None),
    *((key.replace("_", " "), key, "d") for key in SWEEP_CONFIG),
    ("XLA compiles", "median.xla_compiles", ".0f"),
    ("trace s", "median.trace_s", ".3f"),
    ("lower s", "median.lower_s", ".3f"),
    ("XLA compile s", "median.xla_compile_s", ".3f"),
    ("compile total s", "median.compile_total_s", ".3f"),
    ("1st call wall s", "median.wall_s", ".3f"),
]


def scaling_columns(ref: str) -> list[tuple]:
    """The scaling table's columns; ``ref``: the first K's row, the others' reference."""
    return [
        ("K", "name", None),
        ("chunks", "chunks", "d"),
        *columns(0)[2:5],
        ("µs/member (median)", lambda row: row["ms_per_member"]["median"] * 1e3, ".1f"),
        ("ns/member-step (median)", "ns_per_member_step.median", ".2f"),
        (f"time / {ref} (paired q25-q75)", R.ratio_to_ref, R.ratio),
    ]


MEMBERS_COLUMNS = [
    ("K", "name", None),
    ("vmap width", "sweep_config.vmap_width", "d"),
    ("chunk size", "sweep_config.chunk_size", "d"),
    *columns(0)[2:6],
    ("time / K=1 (paired q25-q75)", R.ratio_to_ref, R.ratio),
    ("1st call s", "compile.wall_s", ".2f"),
]
ABOUT = (
    "Each sample is one whole call (a complete sweep) blocked on its outputs; the variants of "
    "a table are timed interleaved (order reversed every round) after warm-up calls. "
    "Hand-written baselines build `optax.adam(lr)` from the traced learning rate; the scans "
    "record per-step loss and gradient norm like jol.sweep, the Python loops record nothing. "
    "'time / ref' = ratio of median times, with the quartiles of the per-round ratios as a "
    "noise gauge. Compile cost is from each variant's first call (JAX compile events: XLA "
    "compiles triggered, backend compile seconds, and '1st call s' = trace + lower + compile "
    "+ one run). The first jol.sweep call of the process (and the first on a new loss "
    "function) also compiles the sweep's helpers (seed keys, the loss probe that picks the "
    "vmap width), hence its extra XLA compiles."
)


def members_precision_note(mb: dict[str, Any]) -> str:
    """The bfloat16 and remat rows' ratios to K=1 and their final losses' distance from
    the float32 sweep's (nothing for a record without them)."""
    out = ""
    for name in ("compute_dtype", "remat"):
        if f"ratio_k_{name}_over_1" in mb:
            diff = mb[f"final_losses_max_abs_diff_{name}"]
            out += (
                f" With {name}: **{R.ratio(mb[f'ratio_k_{name}_over_1'])}** (final losses within "
                f"{diff:.2e} of float32)."
            )
    return out


def chose(sec: dict[str, Any]) -> str:
    c = sec["sweep_config"]
    return (
        f"jol.sweep chose vmap width {c['vmap_width']}, chunk size {c['chunk_size']} "
        f"({c['chunks']} chunk(s))."
    )


def differences(sec: dict[str, Any]) -> str:
    diffs = "; ".join(f"{k} {v:.2e}" for k, v in sec["max_abs_diff"].items())
    return (
        f"* Max abs difference: {diffs}. Diverged members in jol.sweep: "
        f"{sec['diverged_members']} of {sec['k']}"
    )


def report(record: dict[str, Any]) -> list[Any]:
    r, d = record["rosenbrock"], record["digits"]
    c, s, mb = record["compile_vs_k"], record["scaling"], record["members_vs_one"]
    p, sp = r["python_loop"], r["python_loop"]["speedup_sweep_over_python_loop_per_member"]
    losses = d["final_losses_sweep"]
    high_k = f"K={c['ks'][-1]}"
    compile_note = (
        f"* Compile total, {high_k} / K={c['ks'][0]}: "
        f"**{c['ratio_compile_total_high_k_over_low_k']:.2f}**"
    )
    if "ratio_compile_total_high_k_over_full_width" in c:
        full_width = c["ratio_compile_total_high_k_over_full_width"]
        compile_note += (
            f"; {high_k} / K={c['ks'][1]}: **{full_width:.2f}**"
            " (K=1 runs its one member unbatched, a smaller program; from the full vmap width on,"
            " the program is the same whatever K)"
        )
    python_loop = (
        f"Python loop (per member {r['steps']:,} calls of a jitted optax step), {p['repeats']} "
        f"repeats interleaved with jol.sweep; {p['members_timed']} of {r['k']} members timed "
        f"(one member: {p['one_member_s'] * 1e3:.0f} ms, all {r['k']} x {p['repeats'] + 1} calls "
        f"estimated {p['all_members_estimate_s']:.0f} s, budget {p['budget_s']:.0f} s); the "
        "loop's first call is on one member, and 'time / ref' is per call (the speedup below is "
        "per member):"
    )
    return [
        ABOUT,
        R.Table(
            columns(r["k"]),
            R.named(r["variants"]),
            title=f"Rosenbrock 2-D, adam, {r['steps']:,} steps, K = {r['k']} learning rates "
            f"{r['learning_rates']}, {r['repeats']} repeats",
            text=chose(r),
        ),
        R.Table(
            columns(r["k"]),
            R.named(p["variants"]),
            text=python_loop,
            notes=[
                f"* jol.sweep / hand vmap: **{R.ratio(r['ratio_sweep_over_hand_vmap'])}**; "
                f"jol.sweep (optax.adam) / hand vmap: "
                f"{R.ratio(r['ratio_sweep_optax_over_hand_vmap'])}.",
                f"* Speedup of jol.sweep over the Python loop, per member (median over median): "
                f"**{sp['median_over_median']:.0f}x** (paired q25-q75 {sp['paired_q25']:.0f}x-"
                f"{sp['paired_q75']:.0f}x).",
                differences(r) + ".",
            ],
        ),
        R.Table(
            columns(d["k"]),
            R.named(d["variants"]),
            title=f"Digits MLP, {d['problem']}, adam, {d['steps']:,} steps, K = {d['k']} "
            f"learning rates {d['learning_rates']}, {d['repeats']} repeats",
            text=chose(d),
            notes=[
                f"* jol.sweep / best hand-written sweep ({d['best_hand_written']}): "
                f"**{R.ratio(d['ratio_sweep_over_best_hand_written'])}**.",
                differences(d) + f"; final losses {min(losses):.4f}-{max(losses):.4f}.",
            ],
        ),
        R.Table(
            COMPILE_COLUMNS,
            R.named(c["per_k"]),
            title=f"Compile cost of jol.sweep vs K (Rosenbrock 2-D, {c['steps']} steps, default "
            f"chunk size; medians of {c['repeats']} first calls on fresh loss functions)",
            notes=[compile_note + "."],
        ),
        R.Table(
            scaling_columns(next(iter(s["variants"]))),
            R.named(s["variants"]),
            title=f"Scaling: warm jol.sweep on Rosenbrock 2-D, {s['steps']:,} steps, "
            f"{s['repeats']} repeats",
        ),
        R.Table(
            MEMBERS_COLUMNS,
            R.named(mb["variants"]),
            title=f"Many members against one: warm jol.sweep on the digits MLP, {mb['steps']} "
            f"steps, {mb['repeats']} repeats",
            notes=[
                f"* K={mb['ks'][1]} / K=1: **{R.ratio(mb['ratio_k_over_1'])}**."
                + members_precision_note(mb)
            ],
        ),
    ]


if __name__ == "__main__":
    R.cli(__spec__.name)
