"""Quasi-Newton solves: ``jol.bfgs`` / ``jol.lbfgs`` against SciPy and optax, in float64.

Workload 1 -- one solve, warm: Rosenbrock (``jol.problems.rosenbrock(n)``) for n = 2 and
n = 100 from the standard start, to a gradient 2-norm of 1e-8 (SciPy: ``gtol=1e-8``,
``norm=2`` for BFGS; ``gtol=1e-8`` on the largest gradient entry and no ``ftol`` stop
for L-BFGS-B). Timed end to end:

* ``jol.minimize(f, x0, jol.bfgs() | jol.lbfgs(), 10000, tol=1e-8)``, warm (compiled);
* ``scipy.optimize.minimize(method="BFGS" | "L-BFGS-B")`` with SciPy's own NumPy
  ``rosen`` / ``rosen_der`` (the fastest SciPy gets: no JAX dispatch per evaluation);
* ``optax.lbfgs()`` in a jitted ``lax.while_loop`` (optax's documented loop), warm.

Compile time (first call) is reported apart; iterations and evaluations are reported
for each.

Workload 2 -- 1000 starting points of 2-D Rosenbrock, uniform in [-2, 2]^2: one
``jax.jit(jax.vmap(minimize))`` call, against a Python loop of SciPy solves (timed on
the first 100 starts, per start; nothing is extrapolated, speedups compare times per
start). The vmapped call runs until its slowest member stops, so its iteration count is
the maximum over members; it is given 200 steps at most (every member converges well
before), since a vmapped while loop copies its whole carry, histories included, at every
iteration.
"""

from __future__ import annotations

from functools import partial as P  # P(f, *args): the call f(*args)
from typing import Any, Callable

import jax

jax.config.update("jax_enable_x64", True)  # a float64 benchmark, like SciPy

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy.optimize  # noqa: E402

import jaxopt_lab as jol  # noqa: E402
from benchmarks import _report as R  # noqa: E402
from benchmarks import _timing as T  # noqa: E402

TITLE = "Quasi-Newton: jaxopt_lab against SciPy and optax, float64"
PARAMS = {
    "repeats": (3, 20, "samples per single-solve variant"),
    "starts": (100, 1000, "vmapped starting points"),
    "scipy_starts": (20, 100, "SciPy solves timed in the loop"),
    "multistart_repeats": (2, 5, "samples of the multi-start pair"),
}
TOL, MAX_STEPS, MULTISTART_STEPS = 1e-8, 10000, 200
OURS = {"bfgs": jol.bfgs, "lbfgs": jol.lbfgs}
SCIPY = {
    "bfgs": ("BFGS", {"gtol": TOL, "norm": 2}),
    "lbfgs": ("L-BFGS-B", {"gtol": TOL, "ftol": 0.0}),
}


def scipy_solve(method: str, x0: np.ndarray) -> Any:
    name, options = SCIPY[method]
    return scipy.optimize.minimize(
        scipy.optimize.rosen,
        x0,
        jac=scipy.optimize.rosen_der,
        method=name,
        options={"maxiter": MAX_STEPS, **options},
    )


def optax_lbfgs(f: Callable) -> Callable:
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)
    norm = getattr(optax.tree_utils, "tree_norm", None) or optax.tree_utils.tree_l2_norm

    @jax.jit
    def run(x):
        def step(carry):
            x, s = carry
            v, g = value_and_grad(x, state=s)
            u, s = opt.update(g, s, x, value=v, grad=g, value_fn=f)
            return optax.apply_updates(x, u), s

        def cond(carry):
            _, s = carry
            n = optax.tree_utils.tree_get(s, "count")
            return (n == 0) | ((n < MAX_STEPS) & (norm(optax.tree_utils.tree_get(s, "grad")) > TOL))

        x, s = jax.lax.while_loop(cond, step, (x, opt.init(x)))
        return x, optax.tree_utils.tree_get(s, "count")

    return run


def solve_info(out: Any) -> dict[str, Any]:
    """Iterations, evaluations, final gradient norm and error of any solver's output."""
    if isinstance(out, scipy.optimize.OptimizeResult):
        return {
            "iterations": int(out.nit),
            "fun_evals": int(out.nfev),
            "grad_norm": float(np.linalg.norm(out.jac)),
            "x_err": float(np.max(np.abs(out.x - 1.0))),
        }
    if isinstance(out, jol.OptimizeResult):
        return {
            "iterations": int(out.num_steps),
            "fun_evals": int(out.num_fun_evals),
            "grad_norm": float(out.grad_norm),
            "x_err": float(jnp.max(jnp.abs(out.params - 1.0))),
        }
    return {
        "iterations": int(out[1]),
        "fun_evals": None,
        "grad_norm": None,
        "x_err": float(jnp.max(jnp.abs(out[0] - 1.0))),
    }


def single_variants(n: int) -> list[T.Variant]:
    prob = jol.problems.rosenbrock(n)
    f, x0 = prob.fn, jnp.asarray(prob.x0, jnp.float64)
    x0_np, run_optax = np.asarray(x0), optax_lbfgs(f)
    variants = []
    for m, make in OURS.items():
        scipy_name, opt = f"scipy {SCIPY[m][0]}", make()
        variants += [
            T.Variant(f"jol.{m}", P(jol.minimize, f, x0, opt, MAX_STEPS, tol=TOL), ref=scipy_name),
            T.Variant(scipy_name, P(scipy_solve, m, x0_np)),
        ]
    return [*variants, T.Variant("optax.lbfgs", P(run_optax, x0))]


def bench_multistart(cfg: Any, log: R.Log) -> dict[str, Any]:
    f = jol.problems.rosenbrock(2).fn
    starts = jax.random.uniform(jax.random.PRNGKey(0), (cfg.starts, 2), jnp.float64, -2.0, 2.0)
    sub = np.asarray(starts)[: cfg.scipy_starts]
    out: dict[str, Any] = {"starts": cfg.starts, "scipy_starts": cfg.scipy_starts}
    for m, make in OURS.items():
        # steps sized to the problem: under vmap the while loop selects its whole carry,
        # the (steps,) histories included, every iteration (10000 steps: 15x slower)
        opt = make()
        run = jax.jit(
            jax.vmap(lambda x, opt=opt: jol.minimize(f, x, opt, MULTISTART_STEPS, tol=TOL))
        )
        pair = [
            T.Variant("vmapped", P(run, starts)),
            T.Variant("scipy loop", lambda m=m: [scipy_solve(m, x) for x in sub]),
        ]
        rows, outs = T.measure(pair, repeats=cfg.multistart_repeats, warmup=1, per_call=("ms", 1e3))
        res, ours, theirs = outs["vmapped"], rows["vmapped"], rows["scipy loop"]
        per_ours = ours["time_s"]["median"] / cfg.starts
        per_scipy = theirs["time_s"]["median"] / cfg.scipy_starts
        out[m] = {
            "vmapped_ms": ours["ms"],
            "compile": ours["compile"],
            "scipy_loop_ms": theirs["ms"],
            "us_per_start_vmapped": per_ours * 1e6,
            "us_per_start_scipy": per_scipy * 1e6,
            "speedup_per_start": per_scipy / per_ours,
            "converged": int(res.converged.sum()),
            "iterations_max": int(res.num_steps.max()),
            "iterations_median": float(np.median(res.num_steps)),
        }
        log(f"multistart {m}: done")
    return out


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    record, log = R.begin("quasi_newton", cfg, tol=TOL, dtype="float64")
    record["single"] = []
    for n in (2, 100):
        rows, outs = T.measure(
            single_variants(n), repeats=cfg.repeats, warmup=1, per_call=("ms", 1e3)
        )
        record["single"].append(
            {"n": n, "rows": {k: {**r, **solve_info(outs[k])} for k, r in rows.items()}}
        )
        log(f"rosenbrock {n}: done")
    record["multistart"] = bench_multistart(cfg, log)
    return R.finish(record)


def time_over_scipy(row: dict[str, Any]) -> Any:
    ratio = R.ratio_to_ref(row)
    return ratio["median_over_median"] if isinstance(ratio, dict) else "-"


def report(record: dict[str, Any]) -> list[Any]:
    cfg, ms = record["config"], record["multistart"]
    solve = [
        ("solver", "name", None),
        ("median ms", "ms.median", ".3f"),
        ("min ms", "ms.min", ".3f"),
        ("iterations", "iterations", "d"),
        ("f evals", lambda r: r["fun_evals"] or "-", "d"),
        ("max |x - x*|", "x_err", ".1e"),
        ("1st call s", "compile.wall_s", ".2f"),
        ("time / SciPy", time_over_scipy, ".2f"),
    ]
    multi = [
        ("method", "name", None),
        ("vmapped call ms", "vmapped_ms.median", ".1f"),
        ("µs/start (vmapped)", "us_per_start_vmapped", ".1f"),
        ("µs/start (SciPy)", "us_per_start_scipy", ".1f"),
        ("speedup", "speedup_per_start", lambda v: f"{v:.0f}x"),
        ("converged", lambda r: f"{r['converged']}/{ms['starts']}", None),
        ("max iterations", "iterations_max", "d"),
        ("median iterations", "iterations_median", ".0f"),
        ("1st call s", "compile.wall_s", ".2f"),
    ]
    return [
        f"Gradient 2-norm tolerance {cfg['tol']:g}; medians of {cfg['repeats']} interleaved "
        "warm calls (compile apart).",
        *(
            R.Table(solve, R.named(s["rows"]), f"One solve: Rosenbrock n = {s['n']}")
            for s in record["single"]
        ),
        R.Table(
            multi,
            [{"name": m, **ms[m]} for m in OURS],
            f"{ms['starts']} starting points of 2-D Rosenbrock in one vmapped call, against a "
            f"Python loop of SciPy solves ({ms['scipy_starts']} starts timed)",
        ),
    ]


if __name__ == "__main__":
    R.cli(__spec__.name)
