"""Loop overhead: ``jol.minimize`` / ``jol.fit`` against hand-written loops.

What a compiled training loop should cost is the XLA kernel of its step, nothing more.
This script measures how close the package's loops come to the best loop a user could
write by hand with optax, and how far they are from the naive one.

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
loop (``jax.jit`` of the public call) and of the hand-written loop are compiled apart and
their opcode histograms diffed (extra gathers, converts, copies ... show up there);
``--dump-hlo DIR`` writes the texts.
"""

from __future__ import annotations

from functools import partial as P  # P(f, *args): the call f(*args)
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from benchmarks import _report as R
from benchmarks import _timing as T

TITLE = "Loop overhead: jol.minimize / jol.fit vs hand-written loops"
PARAMS = {
    "steps": (1000, 10_000, "Rosenbrock steps per run"),
    "python_steps": (1000, 10_000, "calls of the jitted step in the Python loop"),
    "epochs": (2, 20, "digits epochs at --batch-size"),
    "full_batch_epochs": (20, 200, "digits epochs at full batch"),
    "batch_size": (64, 64, "digits mini-batch size"),
    "lr": (1e-2, 1e-2, "Rosenbrock adam learning rate"),
    "fit_lr": (1e-3, 1e-3, "digits adam learning rate"),
    "repeats": (5, 30, "interleaved timed runs per digits variant"),
    "rosen_repeats": (10, 100, "interleaved timed runs per Rosenbrock variant"),
    "python_repeats": (3, 10, "timed runs of the Python loop"),
    "warmup": (1, 3, "untimed calls per variant before timing", 0),
    "small_number": (5, 20, "calls per sample for the 1-step (fixed cost) runs"),
    "diagnostics": (False, True, "loop/optimizer split, new-lr recompiles, fixed cost"),
    "hlo_diff": (False, True, "diff optimised-HLO opcode counts, package vs hand-written"),
    "dump_hlo": (None, None, "write the optimised HLO texts of --hlo-diff to this folder"),
    "seed": (0, 0, "seed of the digits init and shuffles", 0),
}
GOAL_SPEEDUP_OVER_PYTHON_LOOP, GOAL_RATIO_OVER_HAND_WRITTEN = 200.0, 1.05
REF_STEPS = 10_000  # the "10k-step equivalent" the Python loop is reported against
NEW_LR = "new_learning_rate_call"  # the second call, with twice the learning rate
PER_STEP = {"again_key": NEW_LR, "per_work": ("steps", "us_per_step", 1e6)}

# Variant names (also the JSON keys).
MIN_JOL = "jol.minimize + jol.adam"
MIN_ARR = "jol.minimize + jol.adam (device-array hyperparams)"
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
VS_PY, ONE, ONE_EPOCH = " (vs Python loop)", ", 1 step", ", 1 epoch"


def rosenbrock(p: jax.Array) -> jax.Array:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2; minimum 0 at (1, 1)."""
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] * p[0]) ** 2


# --------------------------------------------------------------------------- hand-written loops


def libs(opt: Any) -> tuple[Callable, Callable]:
    """``apply_updates`` and ``global_norm`` of optax, or of jaxopt_lab when ``opt`` is None
    (a jaxopt_lab optimizer passed as an argument)."""
    return (
        (jol.apply_updates, jol.global_norm)
        if opt is None
        else (optax.apply_updates, optax.global_norm)
    )


def scan_loop(loss_fn: Callable, steps: int, opt: Any = None, inject: bool = False) -> Callable:
    """The best full-batch loop a user writes by hand: one jit, one scan, per-step loss
    and global grad norm recorded. ``run(params)`` with an optax ``opt`` closed over (a
    constant); ``run(params, opt)`` with a jaxopt_lab optimizer passed as a pytree
    argument (``opt=None``); with ``inject``, ``run(params, lr)``: optax's adam with the
    learning rate as data (``inject_hyperparams``), compiled once for every ``lr``."""
    if inject:
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)
    apply, gnorm = libs(opt)

    def run(params, *arg):
        o = opt if opt is not None else arg[0]
        s = o.init(params)
        if inject:
            hp = dict(s.hyperparams)
            hp["learning_rate"] = jnp.asarray(arg[0], hp["learning_rate"].dtype)
            s = s._replace(hyperparams=hp)

        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = o.update(g, s, p)
            return (apply(p, u), s), (loss, gnorm(g))

        (p, s), (losses, norms) = jax.lax.scan(step, (params, s), None, length=steps)
        return p, s, losses, norms

    return jax.jit(run)


def python_loop(loss_fn: Callable, opt: Any, steps: int) -> Callable:
    """The naive loop: ``steps`` Python calls of a jitted optax step."""

    @jax.jit
    def step(p, s):
        u, s = opt.update(jax.grad(loss_fn)(p), s, p)
        return optax.apply_updates(p, u), s

    def run(p, s):
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


def fit_loop(
    loss_fn: Callable, opt: Any, n: int, batch_size: int, epochs: int, gather: bool = True
) -> Callable:
    """Hand-written mini-batch loop with ``fit``'s shuffling: ``run(params, data, key)``;
    ``opt=None``: a jaxopt_lab optimizer is passed as a last argument (pytree, no
    recompile). ``gather=False`` (full batch only): ``batch = data``, no index gather."""
    apply, gnorm = libs(opt)

    def run(params, data, key, *arg):
        o = opt if opt is not None else arg[0]

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


def as_device_arrays(opt: Any) -> Any:
    """The same optimizer with its Python-float hyperparameters as (weakly typed) device
    arrays: a public-API workaround that saves the per-call host->device conversion of
    every Python-float leaf when the optimizer is a jit argument."""
    return jax.tree.map(jnp.asarray, opt)


def hlo_compare(programs: dict[str, Callable], ours: str, dump: str | None, tag: str) -> dict:
    """Opcode histograms of the compiled program ``ours`` and of each other one of
    ``programs`` (name -> a thunk compiling it), their difference and temp memory."""
    try:
        compiled = {name: make() for name, make in programs.items()}
        ops = {name: T.hlo_op_counts(c) for name, c in compiled.items()}
        temp = {
            n: getattr(c.memory_analysis(), "temp_size_in_bytes", None) for n, c in compiled.items()
        }
    except Exception as e:  # pragma: no cover - best effort
        return {"error": repr(e)}
    for name, c in compiled.items() if dump is not None else ():
        Path(dump).mkdir(parents=True, exist_ok=True)
        (Path(dump) / f"{tag}_{name}.hlo.txt").write_text(c.as_text())
    out = {}
    for b in [name for name in programs if name != ours]:
        out[f"{ours}_vs_{b}"] = {
            f"ops_{ours}": ops[ours],
            f"ops_{b}": ops[b],
            f"diff ({ours} - {b})": T.hlo_op_diff(ops[ours], ops[b]),
            f"temp_bytes_{ours}": temp[ours],
            f"temp_bytes_{b}": temp[b],
        }
    return out


def diag(cfg: Any, call: Callable) -> Callable | None:
    """``call`` with --diagnostics, else None: a new-lr call that costs a compile."""
    return call if cfg.diagnostics else None


def fixed_cost(variants: list[T.Variant], cfg: Any, repeats: int) -> dict[str, Any]:
    """The per-call cost of 1-step (1-epoch) runs and of their public-API pieces."""
    rows, _ = T.measure(variants, repeats=repeats, warmup=cfg.warmup + 2, number=cfg.small_number,
                        compile=False, per_call=("us_per_call", 1e6))  # fmt: skip
    return rows


# --------------------------------------------------------------------------- workload 1


def bench_rosenbrock(cfg: Any, log: R.Log) -> dict[str, Any]:
    lr, lr2, steps, py_steps = cfg.lr, 2 * cfg.lr, cfg.steps, cfg.python_steps
    f, p0 = rosenbrock, jnp.asarray([-1.5, 2.0], jnp.float32)
    opt_jol, opt_ox, opt_py = jol.adam(lr), optax.adam(lr), optax.adam(lr)
    opt_arr = as_device_arrays(opt_jol)
    s_py = jax.block_until_ready(opt_py.init(p0))
    scan_ox, scan_jol = scan_loop(f, steps, opt_ox), scan_loop(f, steps)
    scan_inj = scan_loop(f, steps, inject=True)
    lr_arr, lr2_arr = jnp.asarray(lr, jnp.float32), jnp.asarray(lr2, jnp.float32)

    def mini(opt: Any, n: int = steps) -> Callable:  # the public call
        return P(jol.minimize, f, p0, opt, n)

    V = P(T.Variant, work=steps)
    variants = [
        V(MIN_JOL, mini(opt_jol), again=mini(jol.adam(lr2)), check=SCAN_OPTAX),
        V(MIN_ARR, mini(opt_arr), again=mini(as_device_arrays(jol.adam(lr2))), check=MIN_JOL),
        V(MIN_OPTAX, mini(opt_ox), again=diag(cfg, mini(optax.adam(lr2))), check=SCAN_OPTAX),
        V(SCAN_OPTAX, P(scan_ox, p0), again=diag(cfg, P(scan_loop(f, steps, optax.adam(lr2)), p0))),
        V(SCAN_JOL, P(scan_jol, p0, opt_jol), again=P(scan_jol, p0, jol.adam(lr2)), check=MIN_JOL),
        V(SCAN_INJECT, P(scan_inj, p0, lr_arr), again=P(scan_inj, p0, lr2_arr), check=SCAN_OPTAX),
    ]
    rows, outs = T.measure(
        variants, ref=SCAN_OPTAX, repeats=cfg.rosen_repeats, warmup=cfg.warmup, **PER_STEP
    )
    log("rosenbrock: interleaved loop timings done")

    # The Python loop is ~100x slower: fewer repeats, interleaved with minimize again so
    # that the speedup is taken under the same conditions. Its compile is that of the
    # first call of its jitted step (one step only).
    py_loop = python_loop(f, opt_py, py_steps)
    first, again = python_loop(f, opt_py, 1), python_loop(f, optax.adam(lr2), 1)
    check = SCAN_OPTAX if py_steps == steps else None
    py = V(PYLOOP, P(py_loop, p0, s_py), first=P(first, p0, s_py), work=py_steps, check=check)
    py.again = diag(cfg, P(again, p0, s_py))
    pair = [py, V(MIN_JOL + VS_PY, mini(opt_jol))]
    py_rows, py_outs = T.measure(
        pair, ref=MIN_JOL + VS_PY, repeats=cfg.python_repeats, warmup=1, **PER_STEP
    )
    log("rosenbrock: Python loop done")
    py_rows[MIN_JOL + VS_PY]["compile"] = rows[MIN_JOL]["compile"]
    py_us, min_us = py_rows[PYLOOP]["us_per_step"], py_rows[MIN_JOL + VS_PY]["us_per_step"]
    py_rows[PYLOOP]["ms_per_10k_steps"] = {k: v * REF_STEPS / 1e3 for k, v in py_us.items()}
    py_rows[PYLOOP]["ms_per_10k_steps_is_extrapolated"] = py_steps != REF_STEPS
    res_min, res_ref = outs[MIN_JOL], outs[SCAN_OPTAX]
    samples = {k: r["time_s"]["samples"] for k, r in rows.items()}
    out = {
        "problem": "rosenbrock 2-D, x0 = (-1.5, 2), float32",
        "optimizer": f"adam({lr}) (second call: adam({lr2}))",
        "steps": steps,
        "python_loop_steps": py_steps,
        "repeats": cfg.rosen_repeats,
        "python_loop_repeats": cfg.python_repeats,
        "variants": {**rows, **py_rows},
        # per step, so that it holds when --python-steps differs from --steps
        "speedup_minimize_over_python_loop": {
            "median": py_us["median"] / min_us["median"],
            "minimize_main_table_median": py_us["median"] / rows[MIN_JOL]["us_per_step"]["median"],
            "min_over_min": py_us["min"] / min_us["min"],
            "hand_written_scan_median": py_us["median"] / rows[SCAN_OPTAX]["us_per_step"]["median"],
        },
        "ratio_minimize_over_hand_written": rows[MIN_JOL]["ratio_to_" + SCAN_OPTAX],
        "ratio_minimize_over_inject_hyperparams": T.paired_ratio(
            samples[MIN_JOL], samples[SCAN_INJECT]
        ),
        "final_params": {k: np.asarray(T.final_params(o)).tolist() for k, o in outs.items()},
        "final_loss_minimize": float(res_min.losses[-1]),
        "max_abs_param_diff": T.agreement([*variants, *pair], {**outs, **py_outs}),
        "max_abs_loss_history_diff_minimize_vs_hand_written": T.max_abs_diff(
            res_min.losses, res_ref[2]
        ),
        "max_rel_grad_norm_history_diff_minimize_vs_hand_written": float(
            jnp.max(jnp.abs(res_min.grad_norms - res_ref[3]) / jnp.maximum(res_ref[3], 1e-30))
        ),
    }

    if cfg.diagnostics:  # fixed per-call cost (validation, arguments, dispatch): 1-step runs
        one_ox, one_jol = scan_loop(f, 1, opt_ox), scan_loop(f, 1)
        one = out["one_step_call"] = fixed_cost([
            T.Variant(MIN_JOL + ONE, mini(opt_jol, 1)),
            T.Variant(MIN_ARR + ONE, mini(opt_arr, 1)),
            T.Variant(SCAN_OPTAX + ONE, P(one_ox, p0)),
            T.Variant(SCAN_JOL + ONE, P(one_jol, p0, opt_jol)),
            T.Variant(SCAN_JOL + " (device-array hyperparams)" + ONE, P(one_jol, p0, opt_arr)),
            T.Variant("jax.eval_shape(loss_fn, params) (minimize's per-call validation)",
                      P(jax.eval_shape, f, p0)),
        ], cfg, cfg.rosen_repeats)  # fmt: skip
        out["one_step_call_extra_us"] = gap_us(one, MIN_JOL + ONE, SCAN_OPTAX + ONE, "us_per_call")
        log("rosenbrock: fixed-cost calls done")
    if cfg.hlo_diff:  # the public call jitted with the optimizer as an argument, as it runs
        minimize = jax.jit(lambda p, o: jol.minimize(f, p, o, steps))
        programs = {
            "minimize": lambda: minimize.lower(p0, opt_jol).compile(),
            "hand_written_optax": lambda: scan_ox.lower(p0).compile(),
            "hand_written_jol": lambda: scan_jol.lower(p0, opt_jol).compile(),
        }
        out["hlo"] = hlo_compare(programs, "minimize", cfg.dump_hlo, "rosenbrock")
    return out


# --------------------------------------------------------------------------- workload 2


def bench_fit(loss_fn: Callable, data: Any, params: Any, batch_size: int, epochs: int, cfg: Any,
              log: R.Log) -> dict[str, Any]:  # fmt: skip
    n, lr, lr2 = int(jax.tree.leaves(data)[0].shape[0]), cfg.fit_lr, 2 * cfg.fit_lr
    key, steps = jax.random.PRNGKey(cfg.seed), epochs * (n // batch_size)
    opt_jol, opt_ox = jol.adam(lr), optax.adam(lr)
    scan_ox = fit_loop(loss_fn, opt_ox, n, batch_size, epochs)
    scan_jol = fit_loop(loss_fn, None, n, batch_size, epochs)
    no_gather = fit_loop(loss_fn, opt_ox, n, batch_size, epochs, gather=False)

    def fit(opt: Any, n_epochs: int = epochs) -> Callable:  # the public call
        return P(
            jol.fit, loss_fn, params, opt, data, batch_size=batch_size, epochs=n_epochs, key=key
        )

    V = P(T.Variant, work=steps)
    ox2 = fit_loop(loss_fn, optax.adam(lr2), n, batch_size, epochs)  # lr is a constant
    variants = [
        V(FIT_JOL, fit(opt_jol), again=fit(jol.adam(lr2)), check=FIT_SCAN_OPTAX),
        V(
            FIT_SCAN_OPTAX,
            P(scan_ox, params, data, key),
            again=diag(cfg, P(ox2, params, data, key)),
        ),
    ]
    if cfg.diagnostics:  # the loop alone, the optimizer alone, the gather alone
        variants += [
            V(FIT_OPTAX, fit(opt_ox), again=fit(optax.adam(lr2)), check=FIT_SCAN_OPTAX),
            V(FIT_SCAN_JOL, P(scan_jol, params, data, key, opt_jol), check=FIT_JOL,
              again=P(scan_jol, params, data, key, jol.adam(lr2))),
        ]  # fmt: skip
        if batch_size == n:
            variants.append(
                V(FIT_SCAN_NOGATHER, P(no_gather, params, data, key), check=FIT_SCAN_OPTAX)
            )
    rows, outs = T.measure(
        variants, ref=FIT_SCAN_OPTAX, repeats=cfg.repeats, warmup=cfg.warmup, **PER_STEP
    )
    log(f"digits B={batch_size} epochs={epochs}: timings done")
    out = {
        "problem": "jaxopt_lab.problems.digits_mlp(validation_fraction=0)",
        "n_train": n,
        "batch_size": batch_size,
        "epochs": epochs,
        "steps": steps,
        "optimizer": f"adam({lr}) (second call: adam({lr2}))",
        "repeats": cfg.repeats,
        "variants": rows,
        "ratio_fit_over_hand_written": rows[FIT_JOL]["ratio_to_" + FIT_SCAN_OPTAX],
        "final_loss_fit": float(outs[FIT_JOL].losses[-1]),
        "max_abs_param_diff": T.agreement(variants, outs),
        "max_abs_loss_history_diff_fit_vs_hand_written": T.max_abs_diff(
            outs[FIT_JOL].losses, outs[FIT_SCAN_OPTAX][2]
        ),
    }

    if cfg.diagnostics:  # fixed per-call cost of fit, from 1-epoch runs, and its pieces
        one_ox = fit_loop(loss_fn, opt_ox, n, batch_size, 1)
        first_batch = jax.tree.map(lambda x: x[:batch_size], data)
        one = out["one_epoch_call"] = fixed_cost([
            T.Variant(FIT_JOL + ONE_EPOCH, fit(opt_jol, 1)),
            T.Variant(FIT_SCAN_OPTAX + ONE_EPOCH, P(one_ox, params, data, key)),
            T.Variant("jax.eval_shape(loss_fn, params, batch) (fit's per-call validation)",
                      P(jax.eval_shape, loss_fn, params, first_batch)),
            T.Variant("eager tree.map(x[:batch_size], data) (fit's per-call validation)",
                      lambda: jax.tree.map(lambda x: x[:batch_size], data)),
        ], cfg, cfg.repeats)  # fmt: skip
        out["one_epoch_call_extra_us"] = gap_us(
            one, FIT_JOL + ONE_EPOCH, FIT_SCAN_OPTAX + ONE_EPOCH, "us_per_call"
        )
        log(f"digits B={batch_size}: fixed-cost calls done")
    if cfg.hlo_diff:  # the public call jitted with the optimizer as an argument, as it runs
        jitted = jax.jit(
            lambda p, o, d, k: jol.fit(
                loss_fn, p, o, d, batch_size=batch_size, epochs=epochs, key=k
            )
        )
        programs = {
            "fit": lambda: jitted.lower(params, opt_jol, data, key).compile(),
            "hand_written_optax": lambda: scan_ox.lower(params, data, key).compile(),
        }
        if cfg.diagnostics:
            programs["hand_written_jol"] = lambda: scan_jol.lower(
                params, data, key, opt_jol
            ).compile()
        out["hlo"] = hlo_compare(programs, "fit", cfg.dump_hlo, f"digits_B{batch_size}")
    return out


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    cfg.hlo_diff = cfg.hlo_diff or cfg.dump_hlo is not None
    record, log = R.begin(
        "loop_overhead",
        cfg,
        dtype="float32",
        **R.WHOLE_CALLS,
        goals={
            "speedup_minimize_over_python_loop": GOAL_SPEEDUP_OVER_PYTHON_LOOP,
            "ratio_over_hand_written": GOAL_RATIO_OVER_HAND_WRITTEN,
        },
    )
    # the whole training part (N=1347), as before the validation split
    prob = jol.problems.digits_mlp(validation_fraction=0)
    data = jax.device_put(jax.tree.map(jnp.asarray, prob.train))  # keep the data on the device
    params = jax.block_until_ready(prob.init_params(jax.random.PRNGKey(cfg.seed)))
    n = int(jax.tree.leaves(data)[0].shape[0])
    if cfg.batch_size > n:
        raise ValueError(f"--batch-size {cfg.batch_size} exceeds the {n} training rows")
    record["rosenbrock"] = bench_rosenbrock(cfg, log)
    record["digits"] = [
        bench_fit(prob.loss, data, params, b, e, cfg, log)
        for b, e in ((cfg.batch_size, cfg.epochs), (n, cfg.full_batch_epochs))
    ]
    return R.finish(record)


# --------------------------------------------------------------------------- report


def new_lr_call(row: dict[str, Any]) -> str:
    nl = (row.get("compile") or {}).get(NEW_LR)
    return f"{nl['xla_compiles']} ({nl['wall_s'] * 1e3:.0f} ms)" if nl else "n/a"


def per_10k_steps(row: dict[str, Any]) -> str:
    if "ms_per_10k_steps" in row:
        return R.ms(row["ms_per_10k_steps"]["median"])
    ms = R.ms(row["us_per_step"]["median"] * REF_STEPS / 1e3)
    return ms + (" (extrapolated)" if row["steps"] != REF_STEPS else "")


COLUMNS = [
    ("variant", "name", None),
    ("steps", "steps", "d"),
    ("median ms/run", "ms_per_run.median", R.ms),
    ("min ms", "ms_per_run.min", R.ms),
    ("max ms", "ms_per_run.max", R.ms),
    ("µs/step (median)", "us_per_step.median", ".3f"),
    ("time / ref (paired q25-q75)", R.ratio_to_ref, R.ratio),
    ("XLA compile s", "compile.first_call.xla_compile_s", ".3f"),
    ("1st call s", "compile.first_call.wall_s", ".3f"),
    ("new-lr call: compiles (wall)", new_lr_call, None),
]
PY_COLUMNS = [
    ("variant", lambda row: row["name"].replace(VS_PY, ""), None),
    ("steps run", "steps", "d"),
    *COLUMNS[2:6],
    ("ms per 10k steps", per_10k_steps, None),
    ("XLA compile s", lambda row: None if VS_PY in row["name"] else dig_compile(row), ".3f"),
]
FIXED = [
    ("call", "name", None),
    ("median µs", "us_per_call.median", ".0f"),
    ("min µs", "us_per_call.min", ".0f"),
    ("max µs", "us_per_call.max", ".0f"),
]


def dig_compile(row: dict[str, Any]) -> float:
    return row["compile"]["first_call"]["xla_compile_s"]


def goal(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ratio_of(rows: dict[str, Any], name: str, ref: str) -> str:
    return f"{rows[name]['ratio_to_' + ref]['median_over_median']:.3f}" if name in rows else "n/a"


def gap_us(rows: dict[str, Any], a: str, b: str, key: str = "ms_per_run") -> float:
    """Difference of the median times of variants ``a`` and ``b``, in µs."""
    return (rows[a][key]["median"] - rows[b][key]["median"]) * (1e3 if key == "ms_per_run" else 1)


def diffs(d: dict[str, float]) -> str:
    return "; ".join(f"{k} {v:.2e}" for k, v in d.items())


def hlo_text(h: dict[str, Any]) -> str:
    """The opcode-count differences of an HLO comparison, in one line."""
    diffs = []
    for key, res in h.items() if "error" not in h else ():
        a, b = key.split("_vs_")
        diffs.append(
            f"{a} - {b.replace('_', ' ')}: {res[f'diff ({a} - {b})'] or 'identical opcode counts'}"
        )
    return "Optimised HLO, opcode counts (whole module): " + h.get("error", "; ".join(diffs) + ".")


def extras(sec: dict[str, Any], one: str, who: str, unit: str) -> list[Any]:
    """The fixed-cost table and the HLO diff of a section, where they were measured."""
    blocks: list[Any] = []
    if one in sec:
        extra = sec[one + "_extra_us"]
        text = f"Fixed cost per call ({unit} runs; {who} pays +{extra:.0f} µs per call over the "
        text += "hand-written scan):"
        blocks.append(R.Table(FIXED, R.named(sec[one]), text=text))
    return blocks + ([hlo_text(sec["hlo"])] if "hlo" in sec else [])


def rosenbrock_notes(r: dict[str, Any]) -> list[str]:
    rv, sp = r["variants"], r["speedup_minimize_over_python_loop"]
    ratio = r["ratio_minimize_over_hand_written"]["median_over_median"]
    inject = r["ratio_minimize_over_inject_hyperparams"]["median_over_median"]
    final = [round(x, 5) for x in r["final_params"][MIN_JOL]]
    notes = [
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
        f"rate as data, inject_hyperparams): jol.minimize / it = {inject:.3f}.",
        f"* Final params, max abs diff: {diffs(r['max_abs_param_diff'])}; loss histories "
        f"{r['max_abs_loss_history_diff_minimize_vs_hand_written']:.2e}. Final params {final}, "
        f"final loss {r['final_loss_minimize']:.3e}.",
    ]
    if "one_step_call" in r:
        notes.append(
            f"* jol.minimize - hand-written optax per {r['steps']:,}-step run (medians): "
            f"{gap_us(rv, MIN_JOL, SCAN_OPTAX):.0f} µs; of which fixed per call (1-step runs): "
            f"{r['one_step_call_extra_us']:.0f} µs."
        )
    return notes


def digits_notes(fr: dict[str, Any]) -> list[str]:
    v, ratio = fr["variants"], fr["ratio_fit_over_hand_written"]["median_over_median"]
    first = (
        f"* jol.fit / hand-written optax scan: **{ratio:.3f}** (goal <= "
        f"{GOAL_RATIO_OVER_HAND_WRITTEN}: {goal(ratio <= GOAL_RATIO_OVER_HAND_WRITTEN)})"
    )
    if FIT_OPTAX in v:
        first += (
            f". Decomposition (time / ref): loop alone, fit + optax.adam "
            f"{ratio_of(v, FIT_OPTAX, FIT_SCAN_OPTAX)}; optimizer alone, hand-written + "
            f"jol.adam {ratio_of(v, FIT_SCAN_JOL, FIT_SCAN_OPTAX)}"
        )
    if FIT_SCAN_NOGATHER in v:
        no_gather = ratio_of(v, FIT_SCAN_NOGATHER, FIT_SCAN_OPTAX)
        first += f"; hand-written without the index gather {no_gather}"
    notes = [
        first + ".",
        f"* Final params, max abs diff: {diffs(fr['max_abs_param_diff'])}; loss histories fit vs "
        f"hand-written {fr['max_abs_loss_history_diff_fit_vs_hand_written']:.2e}; final "
        f"mini-batch loss {fr['final_loss_fit']:.4f}.",
    ]
    if "one_epoch_call" in fr:
        notes.append(
            f"* jol.fit - hand-written optax per run (medians): "
            f"{gap_us(v, FIT_JOL, FIT_SCAN_OPTAX):.0f} µs; of which fixed per call (1-epoch runs): "
            f"{fr['one_epoch_call_extra_us']:.0f} µs."
        )
    return notes


def report(record: dict[str, Any]) -> list[Any]:
    cfg, r = record["config"], record["rosenbrock"]
    rv = r["variants"]
    py_columns = list(PY_COLUMNS)
    if rv[PYLOOP]["ms_per_10k_steps_is_extrapolated"]:
        py_columns[-2] = ("ms per 10k steps (extrapolated: µs/step x 10k)", *py_columns[-2][1:])
    blocks: list[Any] = [
        "Each sample is one whole call (a complete run, Python-side validation and dispatch "
        "included) blocked on its outputs; the variants of a table are timed interleaved "
        f"(order reversed every round) after {cfg['warmup']} warm-up calls. 'time / ref' = "
        "ratio of median times, with the quartiles of the per-round ratios as a noise gauge. "
        "Compile cost is from each variant's first call (JAX compile events: 'XLA compile s' "
        "is the backend compiler; '1st call s' = trace + lower + compile + one run); "
        "'new-lr call' = a second call with twice the learning rate: the XLA compiles it "
        "triggered and its wall time. A first call that finds a program compiled by an "
        "earlier variant (same avals) shows 0 s.",
        R.Table(
            COLUMNS,
            [row for row in R.named(rv) if row["name"] != PYLOOP and VS_PY not in row["name"]],
            title=f"Rosenbrock 2-D, adam({cfg['lr']}) from (-1.5, 2), {r['steps']:,} steps, "
            f"{r['repeats']} repeats",
        ),
        R.Table(
            py_columns,
            [{"name": name, **rv[name]} for name in (PYLOOP, MIN_JOL + VS_PY)],
            text=f"Python loop ({r['python_loop_steps']:,} calls of a jitted optax step, no loss "
            f"recording; {r['python_loop_repeats']} repeats interleaved with jol.minimize):",
            notes=rosenbrock_notes(r),
        ),
        *extras(r, "one_step_call", "jol.minimize", "1-step"),
    ]
    for fr in record["digits"]:
        batch = (
            "full batch" if fr["batch_size"] == fr["n_train"] else f"batch_size={fr['batch_size']}"
        )
        title = (
            f"Digits MLP ({fr['problem']}, N={fr['n_train']}), adam({cfg['fit_lr']}), {batch}, "
            f"{fr['epochs']} epochs = {fr['steps']:,} steps, {fr['repeats']} repeats"
        )
        blocks.append(
            R.Table(COLUMNS, R.named(fr["variants"]), title=title, notes=digits_notes(fr))
        )
        blocks += extras(fr, "one_epoch_call", "jol.fit", "1-epoch")
    return blocks


if __name__ == "__main__":
    R.cli(__spec__.name)
