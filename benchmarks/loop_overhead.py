"""Loop overhead: ``jol.minimize`` / ``jol.fit`` against hand-written loops.

What a compiled training loop should cost is the XLA kernel of its step, nothing more
(DESIGN.md, principle 3). This script measures how close the package's loops come to the
best loop a user could write by hand with optax, and how far they are from the naive one.

Workload 1 -- Rosenbrock 2-D, ``adam(1e-2)`` from ``(-1.5, 2)``, ``--steps`` updates
(default 10,000):

* ``jol.minimize + jol.adam``        the public call (validation + jit dispatch + run);
* ``... (device-array hyperparams)``  the same with the optimizer's Python-float leaves
  turned into device arrays first (``jax.tree.map(jnp.asarray, opt)``);
* ``jol.minimize + optax.adam``      the same loop with optax's optimizer (static argument),
  so that ``/hand-written optax`` is the loop overhead alone;
* ``hand-written optax jit+scan``    the reference: ``jax.jit`` + ``lax.scan`` over
  ``value_and_grad`` + ``opt.update`` + ``apply_updates``, recording the per-step loss and
  global gradient norm like ``minimize`` does, learning rate baked in as a constant;
* ``hand-written jit+scan + jol.adam``  the same scan with our optimizer passed as a
  pytree argument, so that ``/hand-written optax`` is the optimizer difference alone;
* ``hand-written optax inject_hyperparams``  the like-for-like optax loop: learning rate
  as data (no recompile for a new one), as ``jol.adam`` has it;
* ``Python loop of jitted optax steps`` the naive loop: ``--python-steps`` calls (default
  10,000) of a jitted ``step(p, s)``, ``block_until_ready`` at the end. It records no
  losses (that would be slower still).

The fixed cost of one call (1-step runs) is measured apart, next to the public-API pieces
it is made of (``jax.eval_shape`` of the loss, which the loops run on every call to
validate it), so that per-call and per-step overheads can be told apart.

Workload 2 -- the digits MLP (``jaxopt_lab.problems.digits_mlp``: 64-64-10 ReLU,
softmax cross-entropy, 1347 training rows), ``adam(1e-3)``, trained by ``jol.fit`` with
``batch_size=64`` for ``--epochs`` epochs (default 20) and full-batch for
``--full-batch-epochs`` (default 200), against a hand-written optax jit+scan loop that
shuffles exactly as ``fit`` does (``permutation(fold_in(key, epoch), N)``, the last
``N % B`` rows dropped, gathered per step; no shuffle and ``arange`` indices at full
batch). With ``--diagnostics`` (default on, off with ``--quick``): ``jol.fit + optax.adam``
and a hand-written loop with ``jol.adam`` (to split loop and optimizer differences), at full
batch a hand-written loop without any gather (``batch = data``), the recompile of the optax
variants for a new learning rate, and the fixed per-call cost.

Every variant is one whole call (a complete run), blocked on its outputs; the variants of
one workload are timed interleaved (A B C D, D C B A, ...) so that drift on a noisy machine
favours none, and reported as min / median / max. Ratios are of median times, with the
quartiles of the per-round (paired) ratios as a noise gauge. Compile cost is measured apart
on each variant's first call with JAX's own compile events (trace, lower, XLA compile);
a second call with another learning rate shows whether the variant recompiles. Final
params are compared between variants (max abs difference).

With ``--hlo-diff`` (default on, off with ``--quick``) the optimised HLO of the package's
loop and of the hand-written loop are compiled apart and their opcode histograms diffed
(extra gathers, converts, copies ... show up there); ``--dump-hlo DIR`` writes the texts.

Usage::

    python -m benchmarks.loop_overhead [--quick] [--steps 10000] [--python-steps 10000]
        [--epochs 20] [--full-batch-epochs 200] [--batch-size 64] [--rosen-repeats 100]
        [--repeats 30] [--python-repeats 10] [--no-diagnostics] [--no-hlo-diff]
        [--dump-hlo DIR] [--out benchmarks/results]

Writes ``<out>/loop_overhead_<platform>.json`` and ``.md`` (``--quick``:
``loop_overhead_<platform>_quick.*``) and prints the markdown tables. Nothing assumes a
platform: JAX picks the device.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from benchmarks import _timing as T  # run as python -m benchmarks[.<name>] from the repository root

REPO = Path(__file__).resolve().parents[1]

GOAL_SPEEDUP_OVER_PYTHON_LOOP = 200.0
GOAL_RATIO_OVER_HAND_WRITTEN = 1.05
REF_STEPS = 10_000  # the "10k-step equivalent" the Python loop is reported against

# Variant names (also the JSON keys).
MIN_JOL = "jol.minimize + jol.adam"
MIN_OPTAX = "jol.minimize + optax.adam (static)"
SCAN_OPTAX = "hand-written optax jit+scan"
SCAN_JOL = "hand-written jit+scan + jol.adam (arg)"
SCAN_INJECT = "hand-written optax inject_hyperparams jit+scan (lr arg)"
PYLOOP = "Python loop of jitted optax steps"
FIT_JOL = "jol.fit + jol.adam"
FIT_OPTAX = "jol.fit + optax.adam (static)"
FIT_SCAN_OPTAX = "hand-written optax jit+scan (same shuffle)"
FIT_SCAN_JOL = "hand-written jit+scan + jol.adam (arg)"
FIT_SCAN_NOGATHER = "hand-written optax jit+scan, no gather"
MIN_ARR = "jol.minimize + jol.adam (device-array hyperparams)"
VS_PY = " (vs Python loop)"
ONE = ", 1 step"
ONE_EPOCH = ", 1 epoch"


# --------------------------------------------------------------------------- problems


def rosenbrock(p: jax.Array) -> jax.Array:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2; minimum 0 at (1, 1)."""
    x, y = p[0], p[1]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def digits_problem() -> tuple[str, Callable, Any, Callable]:
    """(source, loss(params, batch), train data, init_params(key)) of the digits MLP.

    Uses ``jaxopt_lab.problems.digits_mlp()``; falls back to an equivalent local
    definition (scikit-learn's digits, 75/25 stratified split, 64-64-10 ReLU MLP, softmax
    cross-entropy) if that module is unavailable."""
    try:
        from jaxopt_lab import problems

        p = problems.digits_mlp()
        return "jaxopt_lab.problems.digits_mlp()", p.loss, p.train, p.init_params
    except (ImportError, AttributeError):
        pass
    import sklearn.datasets
    import sklearn.model_selection

    bunch = sklearn.datasets.load_digits()
    x = np.asarray(bunch.data, np.float32) / np.float32(16.0)
    y = np.asarray(bunch.target, np.int32)
    x_tr, _, y_tr, _ = sklearn.model_selection.train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=0
    )
    train = {"x": jnp.asarray(x_tr), "y": jnp.asarray(y_tr)}

    def init_params(key):
        k1, k2 = jax.random.split(key)
        return {
            "w1": math.sqrt(2 / 64) * jax.random.normal(k1, (64, 64), jnp.float32),
            "b1": jnp.zeros((64,), jnp.float32),
            "w2": math.sqrt(2 / 64) * jax.random.normal(k2, (64, 10), jnp.float32),
            "b2": jnp.zeros((10,), jnp.float32),
        }

    def loss(params, batch):
        h = jax.nn.relu(batch["x"] @ params["w1"] + params["b1"])
        logp = jax.nn.log_softmax(h @ params["w2"] + params["b2"], axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, batch["y"][:, None], axis=-1))

    return "local digits MLP (benchmarks/loop_overhead.py)", loss, train, init_params


# --------------------------------------------------------------------------- hand-written loops


def make_scan_optax(loss_fn: Callable, opt: Any, steps: int) -> Callable:
    """The best full-batch loop a user writes by hand with optax: one jit, one scan,
    per-step loss and global grad norm recorded. ``opt`` is closed over (a constant)."""

    def run(params):
        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), (loss, optax.global_norm(g))

        (p, s), (losses, norms) = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return p, s, losses, norms

    return jax.jit(run)


def make_scan_jol(loss_fn: Callable, steps: int) -> Callable:
    """The same loop with a jaxopt_lab optimizer passed as a pytree argument."""

    def run(params, opt):
        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = opt.update(g, s, p)
            return (jol.apply_updates(p, u), s), (loss, jol.global_norm(g))

        (p, s), (losses, norms) = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return p, s, losses, norms

    return jax.jit(run)


def make_scan_inject(loss_fn: Callable, steps: int) -> Callable:
    """The hand-written optax loop with the learning rate as data, the optax way
    (``inject_hyperparams``): ``run(params, lr)`` compiles once for every ``lr`` -- the
    feature ``jol.minimize`` gives with ``jol.adam`` -- so this is the like-for-like
    reference (DESIGN.md: compare against jit + scan + inject_hyperparams)."""
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

    def run(params, lr):
        s = opt.init(params)
        hp = dict(s.hyperparams)
        hp["learning_rate"] = jnp.asarray(lr, hp["learning_rate"].dtype)
        s = s._replace(hyperparams=hp)

        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), (loss, optax.global_norm(g))

        (p, s), (losses, norms) = jax.lax.scan(step, (params, s), None, length=steps)
        return p, s, losses, norms

    return jax.jit(run)


def make_python_loop(loss_fn: Callable, opt: Any, steps: int) -> Callable:
    """The naive loop: ``steps`` Python calls of a jitted optax step."""

    @jax.jit
    def step(p, s):
        g = jax.grad(loss_fn)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    def run(params, state):
        p, s = params, state
        for _ in range(steps):
            p, s = step(p, s)
        return p, s

    return run


def fit_indices(key: jax.Array, epoch: jax.Array, n: int, batch_size: int) -> jax.Array:
    """``jol.fit``'s batching, written out: (n // B, B) indices of one epoch."""
    if batch_size == n:
        return jnp.arange(n)[None, :]
    steps = n // batch_size
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return perm[: steps * batch_size].reshape(steps, batch_size)


def make_fit_scan(
    loss_fn: Callable, opt: Any | None, n: int, batch_size: int, epochs: int, *, gather: bool = True
) -> Callable:
    """Hand-written mini-batch loop with ``fit``'s shuffling. ``opt=None``: a jaxopt_lab
    optimizer is passed as the last argument instead (pytree, no recompile).
    ``gather=False`` (full batch only): ``batch = data``, no index gather at all."""
    if not gather and batch_size != n:
        raise ValueError("gather=False only makes sense with batch_size == N")
    apply = optax.apply_updates if opt is not None else jol.apply_updates
    gnorm = optax.global_norm if opt is not None else jol.global_norm

    def run(params, data, key, *maybe_opt):
        o = opt if opt is not None else maybe_opt[0]

        def step(carry, idx):
            p, s = carry
            batch = jax.tree.map(lambda x: x[idx], data) if gather else data
            loss, g = jax.value_and_grad(loss_fn)(p, batch)
            u, s = o.update(g, s, p)
            return (apply(p, u), s), (loss, gnorm(g))

        def epoch(carry, e):
            return jax.lax.scan(step, carry, fit_indices(key, e, n, batch_size))

        (p, s), (losses, norms) = jax.lax.scan(epoch, (params, o.init(params)), jnp.arange(epochs))
        return p, s, losses.reshape(-1), norms.reshape(-1)

    return jax.jit(run)


# --------------------------------------------------------------------------- helpers


def params_of(out: Any) -> Any:
    """Final params of any variant's output (OptimizeResult or a (p, s, ...) tuple)."""
    return out.params if hasattr(out, "params") else out[0]


def max_abs_diff(a: Any, b: Any) -> float:
    return max(
        float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32) - jnp.asarray(y, jnp.float32))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def first_calls(
    name: str, first: Callable[[], Any], second: Callable[[], Any] | None
) -> dict[str, Any]:
    """Compile cost of ``first()`` (a variant's very first call: trace + lower + XLA
    compile + one run) and whether ``second()`` (another learning rate) recompiles."""
    with T.CompileEvents() as c1:
        jax.block_until_ready(first())
    out = {"first_call": c1.to_dict()}
    if second is not None:
        with T.CompileEvents() as c2:
            jax.block_until_ready(second())
        out["new_learning_rate_call"] = c2.to_dict()
    return out


def summarise(benches: list[T.CallBench], ref: str, work_steps: dict[str, int]) -> dict[str, Any]:
    """Per-variant stats (ms per run, µs per step) and ratios to ``ref``."""
    by = {b.name: b for b in benches}
    out: dict[str, Any] = {}
    for b in benches:
        st = b.stats()
        steps = work_steps[b.name]
        out[b.name] = {
            "steps": steps,
            "time_s": st.to_dict(),
            "ms_per_run": st.scaled(1e3),
            "us_per_step": st.scaled(1e6 / steps),
            "ratio_to_" + ref: T.paired_ratio(b.samples, by[ref].samples),
            **b.info,
        }
    return out


def hlo_compare(
    name_a: str, compiled_a: Any, name_b: str, compiled_b: Any, dump: Path | None, tag: str
) -> dict[str, Any]:
    ca, cb = T.hlo_op_counts(compiled_a), T.hlo_op_counts(compiled_b)
    res = {
        "ops_" + name_a: ca,
        "ops_" + name_b: cb,
        f"diff ({name_a} - {name_b})": T.hlo_op_diff(ca, cb),
    }
    for nm, c in ((name_a, compiled_a), (name_b, compiled_b)):
        try:
            ma = c.memory_analysis()
            res["temp_bytes_" + nm] = int(ma.temp_size_in_bytes)
        except Exception:  # pragma: no cover - best effort
            pass
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        (dump / f"{tag}_{name_a}.hlo.txt").write_text(compiled_a.as_text())
        (dump / f"{tag}_{name_b}.hlo.txt").write_text(compiled_b.as_text())
    return res


# --------------------------------------------------------------------------- workload 1


def as_device_arrays(opt: Any) -> Any:
    """The same optimizer with its Python-float hyperparameters as (weakly typed) device
    arrays: a public-API workaround that saves the per-call host->device conversion of
    every Python-float leaf when the optimizer is a jit argument."""
    return jax.tree.map(jnp.asarray, opt)


def bench_rosenbrock(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    lr, lr2, steps, py_steps = args.lr, 2 * args.lr, args.steps, args.python_steps
    p0 = jnp.asarray([-1.5, 2.0], jnp.float32)
    f = rosenbrock
    diag = args.diagnostics
    opt_jol, opt_ox, opt_py = jol.adam(lr), optax.adam(lr), optax.adam(lr)
    opt_arr = as_device_arrays(opt_jol)
    s_py = jax.block_until_ready(opt_py.init(p0))

    # Every variant is built once; its first call is the compile measurement, and the
    # timed calls reuse the same objects (so nothing is traced or compiled again).
    scan_ox = make_scan_optax(f, opt_ox, steps)
    scan_jol = make_scan_jol(f, steps)
    scan_inj = make_scan_inject(f, steps)
    lr_arr, lr2_arr = jnp.asarray(lr, jnp.float32), jnp.asarray(lr2, jnp.float32)
    py_loop = make_python_loop(f, opt_py, py_steps)
    calls: dict[str, tuple[Callable, Callable | None]] = {
        MIN_JOL: (
            lambda: jol.minimize(f, p0, opt_jol, steps),
            lambda: jol.minimize(f, p0, jol.adam(lr2), steps),
        ),
        MIN_ARR: (
            lambda: jol.minimize(f, p0, opt_arr, steps),
            lambda: jol.minimize(f, p0, as_device_arrays(jol.adam(lr2)), steps),
        ),
        MIN_OPTAX: (
            lambda: jol.minimize(f, p0, opt_ox, steps),
            (lambda: jol.minimize(f, p0, optax.adam(lr2), steps)) if diag else None,
        ),
        SCAN_OPTAX: (
            lambda: scan_ox(p0),
            (lambda: make_scan_optax(f, optax.adam(lr2), steps)(p0)) if diag else None,
        ),
        SCAN_JOL: (lambda: scan_jol(p0, opt_jol), lambda: scan_jol(p0, jol.adam(lr2))),
        SCAN_INJECT: (lambda: scan_inj(p0, lr_arr), lambda: scan_inj(p0, lr2_arr)),
    }
    comp = {name: first_calls(name, a, b) for name, (a, b) in calls.items()}
    # The Python loop's compile: the first call of its jitted step (one step only).
    comp[PYLOOP] = first_calls(
        PYLOOP,
        lambda: make_python_loop(f, opt_py, 1)(p0, s_py),
        (lambda: make_python_loop(f, optax.adam(lr2), 1)(p0, s_py)) if diag else None,
    )
    log(f"rosenbrock: first calls done ({MIN_JOL}: {comp[MIN_JOL]['first_call']['wall_s']:.2f} s)")

    benches = [T.CallBench(name, a) for name, (a, _) in calls.items()]
    T.run_interleaved(benches, repeats=args.rosen_repeats, warmup=args.warmup, number=1)
    log("rosenbrock: interleaved loop timings done")

    # The Python loop is ~100x slower: fewer repeats, interleaved with minimize again so
    # that the speedup is taken under the same conditions.
    py = T.CallBench(PYLOOP, py_loop, (p0, s_py))
    min2 = T.CallBench(MIN_JOL + VS_PY, calls[MIN_JOL][0])
    T.run_interleaved([py, min2], repeats=args.python_repeats, warmup=1, number=1)
    log("rosenbrock: Python loop done")

    work = {b.name: steps for b in benches}
    work[PYLOOP] = py_steps
    work[min2.name] = steps
    rows = summarise(benches, SCAN_OPTAX, work)
    rows.update(summarise([py, min2], min2.name, work))
    for name in rows:
        rows[name]["compile"] = comp.get(name.replace(VS_PY, ""))
    py_us = rows[PYLOOP]["us_per_step"]
    rows[PYLOOP]["ms_per_10k_steps"] = {k: v * REF_STEPS / 1e3 for k, v in py_us.items()}
    rows[PYLOOP]["ms_per_10k_steps_is_extrapolated"] = py_steps != REF_STEPS

    # Correctness: final params of minimize vs the hand-written scan (and the rest).
    final = {b.name: params_of(b.last) for b in benches}
    agree = {
        f"{MIN_JOL} vs {SCAN_OPTAX}": max_abs_diff(final[MIN_JOL], final[SCAN_OPTAX]),
        f"{MIN_OPTAX} vs {SCAN_OPTAX}": max_abs_diff(final[MIN_OPTAX], final[SCAN_OPTAX]),
        f"{SCAN_JOL} vs {MIN_JOL}": max_abs_diff(final[SCAN_JOL], final[MIN_JOL]),
        f"{MIN_ARR} vs {MIN_JOL}": max_abs_diff(final[MIN_ARR], final[MIN_JOL]),
        f"{SCAN_INJECT} vs {SCAN_OPTAX}": max_abs_diff(final[SCAN_INJECT], final[SCAN_OPTAX]),
    }
    if py_steps == steps:
        agree[f"{PYLOOP} vs {SCAN_OPTAX}"] = max_abs_diff(params_of(py.last), final[SCAN_OPTAX])
    res_min, res_ref = benches[0].last, benches[[b.name for b in benches].index(SCAN_OPTAX)].last
    losses_diff = float(jnp.max(jnp.abs(res_min.losses - res_ref[2])))
    norms_rel = float(
        jnp.max(jnp.abs(res_min.grad_norms - res_ref[3]) / jnp.maximum(res_ref[3], 1e-30))
    )

    # Speedup of minimize over the Python loop, per step (both measured in the same
    # interleaved rounds; per step, so it holds when --python-steps differs from --steps).
    sp = {
        "median": py_us["median"] / rows[min2.name]["us_per_step"]["median"],
        "minimize_main_table_median": py_us["median"] / rows[MIN_JOL]["us_per_step"]["median"],
        "min_over_min": py_us["min"] / rows[min2.name]["us_per_step"]["min"],
        "hand_written_scan_median": py_us["median"] / rows[SCAN_OPTAX]["us_per_step"]["median"],
    }
    out = {
        "problem": "rosenbrock 2-D, x0 = (-1.5, 2), float32",
        "optimizer": f"adam({lr}) (second call: adam({lr2}))",
        "steps": steps,
        "python_loop_steps": py_steps,
        "repeats": args.rosen_repeats,
        "python_loop_repeats": args.python_repeats,
        "variants": rows,
        "speedup_minimize_over_python_loop": sp,
        "ratio_minimize_over_hand_written": rows[MIN_JOL]["ratio_to_" + SCAN_OPTAX],
        "ratio_minimize_over_inject_hyperparams": T.paired_ratio(
            benches[0].samples, benches[[b.name for b in benches].index(SCAN_INJECT)].samples
        ),
        "final_params": {k: np.asarray(v).tolist() for k, v in final.items()},
        "final_loss_minimize": float(res_min.losses[-1]),
        "max_abs_param_diff": agree,
        "max_abs_loss_history_diff_minimize_vs_hand_written": losses_diff,
        "max_rel_grad_norm_history_diff_minimize_vs_hand_written": norms_rel,
    }

    # Fixed per-call cost (validation + argument handling + dispatch), from 1-step runs,
    # and the pieces it is made of (public APIs only).
    if args.diagnostics:
        one_scan_ox, one_scan_jol = make_scan_optax(f, opt_ox, 1), make_scan_jol(f, 1)
        one = [
            T.CallBench(MIN_JOL + ONE, lambda: jol.minimize(f, p0, opt_jol, 1)),
            T.CallBench(MIN_ARR + ONE, lambda: jol.minimize(f, p0, opt_arr, 1)),
            T.CallBench(SCAN_OPTAX + ONE, one_scan_ox, (p0,)),
            T.CallBench(SCAN_JOL + ONE, one_scan_jol, (p0, opt_jol)),
            T.CallBench(
                SCAN_JOL + " (device-array hyperparams)" + ONE, one_scan_jol, (p0, opt_arr)
            ),
            T.CallBench(
                "jax.eval_shape(loss_fn, params) (minimize's per-call validation)",
                lambda: jax.eval_shape(f, p0),
            ),
        ]
        T.run_interleaved(
            one, repeats=args.rosen_repeats, warmup=args.warmup + 2, number=args.small_number
        )
        out["one_step_call"] = {
            b.name: {"us_per_call": b.stats().scaled(1e6), "time_s": b.stats().to_dict()}
            for b in one
        }
        med = {b.name: b.stats().median * 1e6 for b in one}
        out["one_step_call_extra_us"] = med[MIN_JOL + ONE] - med[SCAN_OPTAX + ONE]
        log("rosenbrock: fixed-cost calls done")

    if args.hlo_diff:
        try:
            ca = jol.loops._minimize.lower(  # private: diagnostics only
                p0,
                opt_jol,
                None,
                loss_fn=f,
                steps=steps,
                has_aux=False,
                static_opt=None,
                use_tol=False,
            ).compile()
            cb = scan_ox.lower(p0).compile()
            cc = scan_jol.lower(p0, opt_jol).compile()
            out["hlo"] = {
                "minimize_vs_hand_written_optax": hlo_compare(
                    "minimize", ca, "hand_written_optax", cb, args.dump_hlo, "rosenbrock"
                ),
                "minimize_vs_hand_written_jol": hlo_compare(
                    "minimize", ca, "hand_written_jol", cc, args.dump_hlo, "rosenbrock"
                ),
            }
        except Exception as e:  # pragma: no cover - private API may change
            out["hlo"] = {"error": repr(e)}
    return out


# --------------------------------------------------------------------------- workload 2


def bench_fit_config(
    source: str,
    loss_fn: Callable,
    data: Any,
    params: Any,
    n: int,
    batch_size: int,
    epochs: int,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> dict[str, Any]:
    lr, lr2 = args.fit_lr, 2 * args.fit_lr
    key = jax.random.PRNGKey(args.seed)
    steps = epochs * (n // batch_size)
    full = batch_size == n
    kw = dict(batch_size=batch_size, epochs=epochs, key=key)
    diag = args.diagnostics
    opt_jol, opt_ox = jol.adam(lr), optax.adam(lr)

    scan_ox = make_fit_scan(loss_fn, opt_ox, n, batch_size, epochs)
    calls: dict[str, tuple[Callable, Callable | None]] = {
        FIT_JOL: (
            lambda: jol.fit(loss_fn, params, opt_jol, data, **kw),
            lambda: jol.fit(loss_fn, params, jol.adam(lr2), data, **kw),
        ),
        FIT_SCAN_OPTAX: (
            lambda: scan_ox(params, data, key),
            (
                lambda: make_fit_scan(loss_fn, optax.adam(lr2), n, batch_size, epochs)(
                    params, data, key
                )
            )
            if diag
            else None,
        ),
    }
    if diag:
        scan_jol = make_fit_scan(loss_fn, None, n, batch_size, epochs)
        calls[FIT_OPTAX] = (
            lambda: jol.fit(loss_fn, params, opt_ox, data, **kw),
            lambda: jol.fit(loss_fn, params, optax.adam(lr2), data, **kw),
        )
        calls[FIT_SCAN_JOL] = (
            lambda: scan_jol(params, data, key, opt_jol),
            lambda: scan_jol(params, data, key, jol.adam(lr2)),
        )
        if full:
            nog = make_fit_scan(loss_fn, opt_ox, n, batch_size, epochs, gather=False)
            calls[FIT_SCAN_NOGATHER] = (lambda: nog(params, data, key), None)
    comp = {name: first_calls(name, a, b) for name, (a, b) in calls.items()}
    log(f"digits B={batch_size} epochs={epochs}: first calls done")

    benches = [T.CallBench(name, a) for name, (a, _) in calls.items()]
    T.run_interleaved(benches, repeats=args.repeats, warmup=args.warmup, number=1)
    log(f"digits B={batch_size} epochs={epochs}: timings done")

    rows = summarise(benches, FIT_SCAN_OPTAX, {b.name: steps for b in benches})
    for name in rows:
        rows[name]["compile"] = comp.get(name)
    final = {b.name: params_of(b.last) for b in benches}
    res_fit, ref_out = benches[0].last, benches[1].last
    agree = {f"{FIT_JOL} vs {FIT_SCAN_OPTAX}": max_abs_diff(final[FIT_JOL], final[FIT_SCAN_OPTAX])}
    if diag:
        agree[f"{FIT_OPTAX} vs {FIT_SCAN_OPTAX}"] = max_abs_diff(
            final[FIT_OPTAX], final[FIT_SCAN_OPTAX]
        )
        agree[f"{FIT_SCAN_JOL} vs {FIT_JOL}"] = max_abs_diff(final[FIT_SCAN_JOL], final[FIT_JOL])
    out = {
        "problem": source,
        "n_train": n,
        "batch_size": batch_size,
        "epochs": epochs,
        "steps": steps,
        "optimizer": f"adam({lr}) (second call: adam({lr2}))",
        "repeats": args.repeats,
        "variants": rows,
        "ratio_fit_over_hand_written": rows[FIT_JOL]["ratio_to_" + FIT_SCAN_OPTAX],
        "final_loss_fit": float(res_fit.losses[-1]),
        "max_abs_param_diff": agree,
        "max_abs_loss_history_diff_fit_vs_hand_written": float(
            jnp.max(jnp.abs(res_fit.losses - ref_out[2]))
        ),
    }

    # Fixed per-call cost of fit, from 1-epoch runs, and its public-API pieces.
    if diag:
        kw1 = dict(batch_size=batch_size, epochs=1, key=key)
        one_ox = make_fit_scan(loss_fn, opt_ox, n, batch_size, 1)
        first_batch = jax.tree.map(lambda x: x[:batch_size], data)
        one = [
            T.CallBench(
                FIT_JOL + ONE_EPOCH, lambda: jol.fit(loss_fn, params, opt_jol, data, **kw1)
            ),
            T.CallBench(FIT_SCAN_OPTAX + ONE_EPOCH, one_ox, (params, data, key)),
            T.CallBench(
                "jax.eval_shape(loss_fn, params, batch) (fit's per-call validation)",
                lambda: jax.eval_shape(loss_fn, params, first_batch),
            ),
            T.CallBench(
                "eager tree.map(x[:batch_size], data) (fit's per-call validation)",
                lambda: jax.tree.map(lambda x: x[:batch_size], data),
            ),
        ]
        T.run_interleaved(
            one, repeats=args.repeats, warmup=args.warmup + 2, number=args.small_number
        )
        out["one_epoch_call"] = {
            b.name: {"us_per_call": b.stats().scaled(1e6), "time_s": b.stats().to_dict()}
            for b in one
        }
        out["one_epoch_call_extra_us"] = (one[0].stats().median - one[1].stats().median) * 1e6
        log(f"digits B={batch_size}: fixed-cost calls done")

    if args.hlo_diff:
        try:
            ca = jol.loops._fit.lower(  # private: diagnostics only
                params,
                opt_jol,
                data,
                key,
                loss_fn=loss_fn,
                batch_size=batch_size,
                epochs=epochs,
                has_aux=False,
                static_opt=None,
            ).compile()
            cb = scan_ox.lower(params, data, key).compile()
            tag = f"digits_B{batch_size}"
            out["hlo"] = {
                "fit_vs_hand_written_optax": hlo_compare(
                    "fit", ca, "hand_written_optax", cb, args.dump_hlo, tag
                )
            }
            if diag:
                cc = scan_jol.lower(params, data, key, opt_jol).compile()
                out["hlo"]["fit_vs_hand_written_jol"] = hlo_compare(
                    "fit", ca, "hand_written_jol", cc, args.dump_hlo, tag
                )
        except Exception as e:  # pragma: no cover
            out["hlo"] = {"error": repr(e)}
    return out


def bench_digits(args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    source, loss_fn, train, init_params = digits_problem()
    data = jax.device_put(jax.tree.map(jnp.asarray, train))  # keep the data on the device
    params = jax.block_until_ready(init_params(jax.random.PRNGKey(args.seed)))
    n = int(jax.tree.leaves(data)[0].shape[0])
    if args.batch_size > n:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {n} training rows")
    return [
        bench_fit_config(source, loss_fn, data, params, n, b, e, args, log)
        for b, e in ((args.batch_size, args.epochs), (n, args.full_batch_epochs))
    ]


# --------------------------------------------------------------------------- report


def f2(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def fmt_ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def variant_rows(rows: dict[str, Any], ref: str, ref_label: str = "ref") -> list[list[str]]:
    out = []
    for name, r in rows.items():
        t, us = r["ms_per_run"], r["us_per_step"]
        ratio = r.get("ratio_to_" + ref)
        comp = r.get("compile") or {}
        fc = comp.get("first_call", {})
        nl = comp.get("new_learning_rate_call")
        out.append(
            [
                name,
                r["steps"],
                fmt_ms(t["median"]),
                fmt_ms(t["min"]),
                fmt_ms(t["max"]),
                f2(us["median"], 3),
                ref_label
                if name == ref
                else (
                    f"{ratio['median_over_median']:.3f} "
                    f"({ratio['paired_q25']:.3f}-{ratio['paired_q75']:.3f})"
                    if ratio
                    else ""
                ),
                f2(fc["xla_compile_s"], 3) if fc else "",
                f2(fc["wall_s"], 3) if fc else "",
                (f"{nl['xla_compiles']} ({nl['wall_s'] * 1e3:.0f} ms)" if nl else "n/a"),
            ]
        )
    return out


HEADERS = [
    "variant",
    "steps",
    "median ms/run",
    "min ms",
    "max ms",
    "µs/step (median)",
    "time / ref (paired q25-q75)",
    "XLA compile s",
    "1st call s",
    "new-lr call: compiles (wall)",
]


def goal(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ratio_of(rows: dict[str, Any], name: str, ref: str) -> str:
    if name not in rows:
        return "n/a"
    return f"{rows[name]['ratio_to_' + ref]['median_over_median']:.3f}"


def gap_us(rows: dict[str, Any], a: str, b: str) -> float:
    """Difference of the median run times of variants ``a`` and ``b``, in µs."""
    return (rows[a]["ms_per_run"]["median"] - rows[b]["ms_per_run"]["median"]) * 1e3


def fixed_cost_table(one: dict[str, Any]) -> str:
    return T.markdown_table(
        ["call", "median µs", "min µs", "max µs"],
        [
            [
                k,
                f"{v['us_per_call']['median']:.0f}",
                f"{v['us_per_call']['min']:.0f}",
                f"{v['us_per_call']['max']:.0f}",
            ]
            for k, v in one.items()
        ],
        n_left=1,
    )


def hlo_line(h: dict[str, Any], a: str, b: str, key: str) -> str:
    if key not in h:
        return ""
    d = h[key][f"diff ({a} - {b})"]
    return f"{a} - {b.replace('_', ' ')}: {d or 'identical opcode counts'}"


def build_markdown(result: dict[str, Any]) -> str:
    env, cfg = result["environment"], result["config"]
    r = result["rosenbrock"]
    lines = [
        f"# Loop overhead: jol.minimize / jol.fit vs hand-written loops ({env['platform']})",
        "",
        f"Device: {env['device_kind']} ({env['device']}), CPU model: {env['cpu_model']}, "
        f"cores: {env['cpu_count']}. jax {env['jax']}, jaxlib {env['jaxlib']}, "
        f"optax {env['optax']}. Load average (1/5/15 min) at start "
        f"{env['load_average_1_5_15min']}, at end {result['load_average_at_end']}; total "
        f"{result['total_runtime_s']:.0f} s."
        + (
            " **--quick run (smoke test: small step counts, few repeats, diagnostics off).**"
            if cfg["quick"]
            else ""
        ),
        "",
        "Each sample is one whole call (a complete run, Python-side validation and dispatch "
        "included) blocked on its outputs; the variants of a table are timed interleaved "
        f"(order reversed every round) after {cfg['warmup']} warm-up calls. 'time / ref' = "
        "ratio of median times, with the quartiles of the per-round ratios as a noise gauge. "
        "Compile cost is from each variant's first call (JAX compile events: 'XLA compile s' "
        "is the backend compiler; '1st call s' = trace + lower + compile + one run); "
        "'new-lr call' = a second call with twice the learning rate: the XLA compiles it "
        "triggered and its wall time. A first call that finds a program compiled by an "
        "earlier variant (same avals) shows 0 s.",
        "",
        f"## Rosenbrock 2-D, adam({cfg['lr']}) from (-1.5, 2), {r['steps']:,} steps, "
        f"{r['repeats']} repeats",
        "",
    ]
    rv = r["variants"]
    rows = {k: v for k, v in rv.items() if k != PYLOOP and VS_PY not in k}
    lines.append(T.markdown_table(HEADERS, variant_rows(rows, SCAN_OPTAX), n_left=1))
    py, mn = rv[PYLOOP], rv[MIN_JOL + VS_PY]
    ext = py["ms_per_10k_steps_is_extrapolated"]
    lines += [
        "",
        f"Python loop ({r['python_loop_steps']:,} calls of a jitted optax step, no loss "
        f"recording; {r['python_loop_repeats']} repeats interleaved with jol.minimize):",
        "",
        T.markdown_table(
            [
                "variant",
                "steps run",
                "median ms/run",
                "min ms",
                "max ms",
                "µs/step (median)",
                "ms per 10k steps" + (" (extrapolated: µs/step x 10k)" if ext else ""),
                "XLA compile s",
            ],
            [
                [
                    PYLOOP,
                    py["steps"],
                    fmt_ms(py["ms_per_run"]["median"]),
                    fmt_ms(py["ms_per_run"]["min"]),
                    fmt_ms(py["ms_per_run"]["max"]),
                    f2(py["us_per_step"]["median"], 3),
                    fmt_ms(py["ms_per_10k_steps"]["median"]),
                    f2(py["compile"]["first_call"]["xla_compile_s"], 3),
                ],
                [
                    MIN_JOL,
                    mn["steps"],
                    fmt_ms(mn["ms_per_run"]["median"]),
                    fmt_ms(mn["ms_per_run"]["min"]),
                    fmt_ms(mn["ms_per_run"]["max"]),
                    f2(mn["us_per_step"]["median"], 3),
                    fmt_ms(mn["us_per_step"]["median"] * REF_STEPS / 1e3)
                    + (" (extrapolated)" if mn["steps"] != REF_STEPS else ""),
                    "",
                ],
            ],
            n_left=1,
        ),
        "",
    ]
    sp = r["speedup_minimize_over_python_loop"]
    ratio = r["ratio_minimize_over_hand_written"]["median_over_median"]
    d = r["max_abs_param_diff"]
    lines += [
        f"* Speedup of jol.minimize over the Python loop (per step, medians): "
        f"**{sp['median']:.0f}x** (goal >= {GOAL_SPEEDUP_OVER_PYTHON_LOOP:.0f}x: "
        f"{goal(sp['median'] >= GOAL_SPEEDUP_OVER_PYTHON_LOOP)}); "
        f"{sp['minimize_main_table_median']:.0f}x with the main table's minimize median; "
        f"the hand-written optax scan reaches {sp['hand_written_scan_median']:.0f}x.",
        f"* jol.minimize / hand-written optax scan: **{ratio:.3f}** "
        f"(goal <= {GOAL_RATIO_OVER_HAND_WRITTEN}: {goal(ratio <= GOAL_RATIO_OVER_HAND_WRITTEN)}). "
        f"Decomposition (time / ref): loop alone, minimize + optax.adam "
        f"{ratio_of(rv, MIN_OPTAX, SCAN_OPTAX)}; optimizer alone, hand-written + jol.adam "
        f"{ratio_of(rv, SCAN_JOL, SCAN_OPTAX)}; minimize with device-array hyperparameters "
        f"{ratio_of(rv, MIN_ARR, SCAN_OPTAX)}. Against the like-for-like optax loop (learning "
        f"rate as data, inject_hyperparams): jol.minimize / it = "
        f"{r['ratio_minimize_over_inject_hyperparams']['median_over_median']:.3f}.",
        f"* Final params, max abs diff: minimize(jol.adam) vs hand-written optax "
        f"{d[f'{MIN_JOL} vs {SCAN_OPTAX}']:.2e}; minimize(optax.adam) vs hand-written optax "
        f"{d[f'{MIN_OPTAX} vs {SCAN_OPTAX}']:.2e}"
        + (
            f"; Python loop vs hand-written optax {d[f'{PYLOOP} vs {SCAN_OPTAX}']:.2e}"
            if f"{PYLOOP} vs {SCAN_OPTAX}" in d
            else ""
        )
        + f"; loss histories {r['max_abs_loss_history_diff_minimize_vs_hand_written']:.2e}. "
        f"Final params {[round(x, 5) for x in r['final_params'][MIN_JOL]]}, final loss "
        f"{r['final_loss_minimize']:.3e}.",
    ]
    if "one_step_call" in r:
        lines += [
            f"* jol.minimize - hand-written optax per {r['steps']:,}-step run (medians): "
            f"{gap_us(rv, MIN_JOL, SCAN_OPTAX):.0f}"
            f" µs; of which fixed per call (1-step runs): {r['one_step_call_extra_us']:.0f} µs.",
            "",
            f"Fixed cost per call (1-step runs; jol.minimize pays "
            f"+{r['one_step_call_extra_us']:.0f} µs per call over the hand-written scan):",
            "",
            fixed_cost_table(r["one_step_call"]),
        ]
    if "hlo" in r:
        h = r["hlo"]
        lines += [
            "",
            "Optimised HLO, opcode counts (whole module): "
            + (
                h["error"]
                if "error" in h
                else "; ".join(
                    x
                    for x in (
                        hlo_line(
                            h, "minimize", "hand_written_optax", "minimize_vs_hand_written_optax"
                        ),
                        hlo_line(h, "minimize", "hand_written_jol", "minimize_vs_hand_written_jol"),
                    )
                    if x
                )
                + "."
            ),
        ]

    for fr in result["digits"]:
        full = fr["batch_size"] == fr["n_train"]
        lab = "full batch" if full else f"batch_size={fr['batch_size']}"
        v = fr["variants"]
        lines += [
            "",
            f"## Digits MLP ({fr['problem']}, N={fr['n_train']}), adam({cfg['fit_lr']}), "
            f"{lab}, {fr['epochs']} epochs = {fr['steps']:,} steps, {fr['repeats']} repeats",
            "",
            T.markdown_table(HEADERS, variant_rows(v, FIT_SCAN_OPTAX), n_left=1),
            "",
        ]
        ratio = fr["ratio_fit_over_hand_written"]["median_over_median"]
        d = fr["max_abs_param_diff"]
        lines.append(
            f"* jol.fit / hand-written optax scan: **{ratio:.3f}** (goal <= "
            f"{GOAL_RATIO_OVER_HAND_WRITTEN}: {goal(ratio <= GOAL_RATIO_OVER_HAND_WRITTEN)})"
            + (
                f". Decomposition (time / ref): loop alone, fit + optax.adam "
                f"{ratio_of(v, FIT_OPTAX, FIT_SCAN_OPTAX)}; optimizer alone, hand-written + "
                f"jol.adam {ratio_of(v, FIT_SCAN_JOL, FIT_SCAN_OPTAX)}"
                if FIT_OPTAX in v
                else ""
            )
            + (
                f"; hand-written without the index gather "
                f"{ratio_of(v, FIT_SCAN_NOGATHER, FIT_SCAN_OPTAX)}"
                if FIT_SCAN_NOGATHER in v
                else ""
            )
            + "."
        )
        lines.append(
            "* Final params, max abs diff: "
            + "; ".join(f"{k} {val:.2e}" for k, val in d.items())
            + f"; loss histories fit vs hand-written "
            f"{fr['max_abs_loss_history_diff_fit_vs_hand_written']:.2e}; final mini-batch "
            f"loss {fr['final_loss_fit']:.4f}."
        )
        if "one_epoch_call" in fr:
            lines.append(
                f"* jol.fit - hand-written optax per run (medians): "
                f"{gap_us(v, FIT_JOL, FIT_SCAN_OPTAX):.0f} µs; of which fixed per call "
                f"(1-epoch runs): {fr['one_epoch_call_extra_us']:.0f} µs."
            )
            lines += [
                "",
                f"Fixed cost per call (1-epoch runs; jol.fit pays "
                f"+{fr['one_epoch_call_extra_us']:.0f} µs per call):",
                "",
                fixed_cost_table(fr["one_epoch_call"]),
            ]
        if "hlo" in fr:
            h = fr["hlo"]
            lines += [
                "",
                "Optimised HLO, opcode counts (whole module): "
                + (
                    h["error"]
                    if "error" in h
                    else "; ".join(
                        x
                        for x in (
                            hlo_line(h, "fit", "hand_written_optax", "fit_vs_hand_written_optax"),
                            hlo_line(h, "fit", "hand_written_jol", "fit_vs_hand_written_jol"),
                        )
                        if x
                    )
                    + "."
                ),
            ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test (< 30 s): small step counts, few repeats, no HLO diff",
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Rosenbrock steps per run (default 10000; 1000 with --quick)",
    )
    ap.add_argument(
        "--python-steps",
        type=int,
        default=None,
        help="calls of the jitted step in the Python loop (default 10000; 1000 "
        "with --quick); the 10k-step figure is extrapolated when not 10000",
    )
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="digits epochs at --batch-size (default 20; 2 with --quick)",
    )
    ap.add_argument(
        "--full-batch-epochs",
        type=int,
        default=None,
        help="digits epochs at full batch (default 200; 20 with --quick)",
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2, help="Rosenbrock adam learning rate")
    ap.add_argument("--fit-lr", type=float, default=1e-3, help="digits adam learning rate")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved timed runs per digits variant (default 30; 5 with --quick)",
    )
    ap.add_argument(
        "--rosen-repeats",
        type=int,
        default=None,
        help="interleaved timed runs per Rosenbrock variant (default 100; 10 with --quick)",
    )
    ap.add_argument(
        "--python-repeats",
        type=int,
        default=None,
        help="timed runs of the Python loop (default 10; 3 with --quick)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed calls per variant before timing (default 3; 1 with --quick)",
    )
    ap.add_argument(
        "--small-number",
        type=int,
        default=None,
        help="calls per sample for the 1-step (fixed cost) runs (default 20; 5 with --quick)",
    )
    ap.add_argument(
        "--diagnostics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the digits variants fit + optax.adam, hand-written + "
        "jol.adam and the no-gather loop, the recompile of the optax "
        "variants for a new learning rate, and the fixed per-call cost "
        "(default on; off with --quick: each costs compile time)",
    )
    ap.add_argument(
        "--hlo-diff",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="diff optimised-HLO opcode counts of package vs hand-written loops "
        "(default on; off with --quick)",
    )
    ap.add_argument(
        "--dump-hlo",
        type=Path,
        default=None,
        help="write the optimised HLO texts compared by --hlo-diff to this directory",
    )
    ap.add_argument(
        "--out",
        type=str,
        default=str(REPO / "benchmarks" / "results"),
        help="output directory (default benchmarks/results)",
    )
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    q = a.quick
    defaults = dict(
        steps=(1000, 10_000),
        python_steps=(1000, 10_000),
        epochs=(2, 20),
        full_batch_epochs=(20, 200),
        repeats=(5, 30),
        rosen_repeats=(10, 100),
        python_repeats=(3, 10),
        warmup=(1, 3),
        small_number=(5, 20),
        hlo_diff=(False, True),
        diagnostics=(False, True),
    )
    for k, (quick_v, full_v) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, quick_v if q else full_v)
    if a.dump_hlo is not None:
        a.hlo_diff = True
    for k in (
        "steps",
        "python_steps",
        "epochs",
        "full_batch_epochs",
        "batch_size",
        "repeats",
        "rosen_repeats",
        "python_repeats",
        "small_number",
    ):
        if getattr(a, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.warmup < 0:
        ap.error("--warmup must be >= 0")
    if not (a.lr > 0 and a.fit_lr > 0):
        ap.error("--lr and --fit-lr must be > 0")
    return a


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    log = T.stage_logger(t_start)

    env = T.environment()
    backend_warmup_s = T.warm_up_backend()
    rosen = bench_rosenbrock(args, log)
    digits = bench_digits(args, log)

    result = {
        "benchmark": "loop_overhead",
        "environment": env,
        "config": {
            "quick": args.quick,
            "steps": args.steps,
            "python_steps": args.python_steps,
            "epochs": args.epochs,
            "full_batch_epochs": args.full_batch_epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "fit_lr": args.fit_lr,
            "repeats": args.repeats,
            "rosen_repeats": args.rosen_repeats,
            "python_repeats": args.python_repeats,
            "diagnostics": args.diagnostics,
            "warmup": args.warmup,
            "small_number": args.small_number,
            "hlo_diff": args.hlo_diff,
            "seed": args.seed,
            "dtype": "float32",
            "order": "interleaved: variant order reversed every round",
            "timing": "whole call (dispatch + run), block_until_ready on every output",
            "compile": "first call of each variant, jax.monitoring compile events",
            "goals": {
                "speedup_minimize_over_python_loop": GOAL_SPEEDUP_OVER_PYTHON_LOOP,
                "ratio_over_hand_written": GOAL_RATIO_OVER_HAND_WRITTEN,
            },
        },
        "backend_warmup_s": backend_warmup_s,
        "rosenbrock": rosen,
        "digits": digits,
    }
    return T.publish(args.out, result, args.quick, t_start, build_markdown)


if __name__ == "__main__":
    main()
