"""Bound-constrained solves: ``jol.lbfgsb`` against SciPy's L-BFGS-B, in float64.

Workload 1 -- one solve, warm, on five problems whose boxes cut off the unconstrained
minimizer: Rosenbrock n = 2, 10, 100 (``jol.problems.rosenbrock(n)``, standard start,
outside the box: both solvers project it first) in the boxes [-0.5, 0.8]^n,
[0.3, 0.8]^n and [-0.5, 0.8]^n; a logistic regression (digits 3 against 8, ridge
5e-3) with |w_i| <= 0.05; a non-negative least squares (40 x 15). Ours stops at a
projected-gradient 2-norm of 1e-9; SciPy at ``gtol=1e-11`` on its infinity norm with no
``ftol`` stop (``ftol=1e-16``), so both end at the solution to rounding. Timed end to end:

* ``jol.minimize(f, x0, jol.lbfgsb(lower=l, upper=u), 300, tol=1e-9)``, warm (compiled);
* ``scipy.optimize.minimize(method="L-BFGS-B", bounds=...)`` with NumPy objective and
  gradient (SciPy's ``rosen``/``rosen_der``; NumPy for the least squares) -- the fastest
  SciPy gets -- and for the regression a jitted JAX ``value_and_grad`` (``jac=True``).

Reported: the largest difference from SciPy's solution, whether the active sets (entries
exactly on a bound) agree, iterations, function evaluations, time per solve, compile
time (first call) apart.

Workload 2 -- 1000 starting points of 2-D Rosenbrock uniform in [-2, 2]^2 (most outside
the box [-0.5, 0.8]^2), one ``jax.jit(jax.vmap(minimize))`` call with 200 steps at most,
against a Python loop of SciPy solves (timed on the first 100 starts, per start; speedups
compare times per start).
"""

from __future__ import annotations

from functools import partial as P  # P(f, *args): the call f(*args)
from typing import Any, Callable

import jax

jax.config.update("jax_enable_x64", True)  # a float64 benchmark, like SciPy

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import jaxopt_lab as jol  # noqa: E402
from benchmarks import _report as R  # noqa: E402
from benchmarks import _timing as T  # noqa: E402

TITLE = "Bound-constrained L-BFGS-B: jaxopt_lab against SciPy, float64"
PARAMS = {
    "repeats": (3, 20, "samples per single-solve variant"),
    "starts": (100, 1000, "vmapped starting points"),
    "scipy_starts": (20, 100, "SciPy solves timed in the loop"),
    "multistart_repeats": (2, 5, "samples of the multi-start pair"),
    "blas_threads": (1, 1, "OpenBLAS threads while SciPy runs (threadpoolctl; 0: as is)", 0),
}
TOL, STEPS, MULTISTART_STEPS = 1e-9, 300, 200
SCIPY_OPTIONS = {"gtol": 1e-11, "ftol": 1e-16, "maxiter": 10000}
ROSENBROCK = {"rosenbrock2": (2, -0.5, 0.8), "rosenbrock10": (10, 0.3, 0.8),
              "rosenbrock100": (100, -0.5, 0.8)}  # fmt: skip
GOALS = {"iterations": 1.25, "fun_evals": 1.5}


class Problem:
    """``f`` (JAX), ``scipy_fun`` (``x -> (f, g)`` for SciPy, NumPy where possible), the
    start and the bounds."""

    def __init__(self, f: Callable, scipy_fun: Callable, x0: np.ndarray, lo: Any, hi: Any):
        self.f, self.scipy_fun, self.x0 = f, scipy_fun, x0
        self.lo, self.hi = lo, hi
        n = x0.size
        self.bounds = list(zip(np.broadcast_to(lo, n), np.broadcast_to(hi, n), strict=True))


def _rosenbrock(n: int, lo: float, hi: float) -> Problem:
    prob = jol.problems.rosenbrock(n)

    def fun(x):
        return scipy.optimize.rosen(x), scipy.optimize.rosen_der(x)

    return Problem(prob.fn, fun, np.asarray(prob.x0, np.float64), lo, hi)


def _logreg() -> Problem:
    prob = jol.problems.logistic_regression((3, 8))

    def f(x):
        return prob.loss({"w": x[:64], "b": x[64]}, prob.train) + 5e-3 * jnp.sum(x[:64] ** 2)

    vg = jax.jit(jax.value_and_grad(f))

    def fun(x):
        v, g = vg(x)
        return float(v), np.asarray(g)

    lo = np.r_[np.full(64, -0.05), -np.inf]
    return Problem(f, fun, np.zeros(65), lo, -lo)


def _nnls() -> Problem:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 15)), rng.normal(size=40)
    aj, bj = jnp.asarray(a), jnp.asarray(b)

    def f(x):
        r = aj @ x - bj
        return 0.5 * jnp.sum(r * r)

    def fun(x):
        r = a @ x - b
        return 0.5 * float(r @ r), a.T @ r

    return Problem(f, fun, np.ones(15), 0.0, np.inf)


def problems() -> dict[str, Problem]:
    out = {name: _rosenbrock(*spec) for name, spec in ROSENBROCK.items()}
    return {**out, "logreg": _logreg(), "nnls": _nnls()}


def scipy_solve(prob: Problem, x0: np.ndarray) -> Any:
    return scipy.optimize.minimize(prob.scipy_fun, x0, jac=True, method="L-BFGS-B",
                                   bounds=prob.bounds, options=SCIPY_OPTIONS)  # fmt: skip


def _active(x: Any, prob: Problem) -> np.ndarray:
    x = np.asarray(x)
    return (x == np.broadcast_to(prob.lo, x.shape)) | (x == np.broadcast_to(prob.hi, x.shape))


def solve_info(out: Any) -> dict[str, Any]:
    if isinstance(out, scipy.optimize.OptimizeResult):
        return {"iterations": int(out.nit), "fun_evals": int(out.nfev), "status": int(out.status)}
    return {"iterations": int(out.num_steps), "fun_evals": int(out.num_fun_evals),
            "status": int(out.status), "grad_norm": float(out.grad_norm)}  # fmt: skip


def bench_single(name: str, prob: Problem, cfg: Any) -> dict[str, Any]:
    opt = jol.lbfgsb(lower=prob.lo, upper=prob.hi)
    x0 = jnp.asarray(prob.x0)
    variants = [
        T.Variant("jol.lbfgsb", P(jol.minimize, prob.f, x0, opt, STEPS, tol=TOL), ref="scipy"),
        T.Variant("scipy", P(scipy_solve, prob, prob.x0)),
    ]
    rows, outs = T.measure(variants, repeats=cfg.repeats, warmup=1, per_call=("ms", 1e3))
    ours, theirs = outs["jol.lbfgsb"], outs["scipy"]
    rows = {k: {**r, **solve_info(outs[k])} for k, r in rows.items()}
    mine, ref = rows["jol.lbfgsb"], rows["scipy"]
    return {
        "problem": name,
        "n": int(prob.x0.size),
        "rows": rows,
        "x_diff": float(np.max(np.abs(np.asarray(ours.params) - theirs.x))),
        "active": int(_active(theirs.x, prob).sum()),
        "same_active_set": bool(
            np.array_equal(_active(ours.params, prob), _active(theirs.x, prob))
        ),
        "iterations_ratio": mine["iterations"] / ref["iterations"],
        "fun_evals_ratio": mine["fun_evals"] / ref["fun_evals"],
        "time_ratio": mine["ratio_to_scipy"]["median_over_median"],
    }


def bench_multistart(cfg: Any, log: R.Log) -> dict[str, Any]:
    prob = _rosenbrock(*ROSENBROCK["rosenbrock2"])
    starts = jax.random.uniform(jax.random.PRNGKey(0), (cfg.starts, 2), jnp.float64, -2.0, 2.0)
    sub = np.asarray(starts)[: cfg.scipy_starts]
    opt = jol.lbfgsb(lower=prob.lo, upper=prob.hi)
    run = jax.jit(jax.vmap(lambda x: jol.minimize(prob.f, x, opt, MULTISTART_STEPS, tol=TOL)))
    pair = [
        T.Variant("vmapped", P(run, starts)),
        T.Variant("scipy loop", lambda: [scipy_solve(prob, x) for x in sub]),
    ]
    rows, outs = T.measure(pair, repeats=cfg.multistart_repeats, warmup=1, per_call=("ms", 1e3))
    res, ours, theirs = outs["vmapped"], rows["vmapped"], rows["scipy loop"]
    refs = outs["scipy loop"]
    per_ours = ours["time_s"]["median"] / cfg.starts
    per_scipy = theirs["time_s"]["median"] / cfg.scipy_starts
    diff = np.max(
        np.abs(np.asarray(res.params)[: cfg.scipy_starts] - np.stack([r.x for r in refs]))
    )
    log("multistart: done")
    return {
        "starts": cfg.starts,
        "scipy_starts": cfg.scipy_starts,
        "vmapped_ms": ours["ms"],
        "compile": ours["compile"],
        "scipy_loop_ms": theirs["ms"],
        "us_per_start_vmapped": per_ours * 1e6,
        "us_per_start_scipy": per_scipy * 1e6,
        "speedup_per_start": per_scipy / per_ours,
        "converged": int(np.sum(np.asarray(res.converged))),
        "iterations_max": int(np.max(res.num_steps)),
        "iterations_median": float(np.median(res.num_steps)),
        "max_x_diff_vs_scipy": float(diff),
    }


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    record, log = R.begin("bounded", cfg, tol=TOL, dtype="float64", scipy_options=SCIPY_OPTIONS)
    record["single"] = []
    with T.blas_threads(cfg.blas_threads):
        for name, prob in problems().items():
            record["single"].append(bench_single(name, prob, cfg))
            log(f"{name}: done")
        record["multistart"] = bench_multistart(cfg, log)
    return R.finish(record)


def _goal(ratio: float, limit: float) -> str:
    return f"{ratio:.2f}" + ("" if ratio <= limit else " (miss)")


def report(record: dict[str, Any]) -> list[Any]:
    cfg, ms = record["config"], record["multistart"]
    rows = [
        {"name": s["problem"], "n": s["n"], **s, "ours": s["rows"]["jol.lbfgsb"],
         "ref": s["rows"]["scipy"]}
        for s in record["single"]
    ]  # fmt: skip
    solve = [
        ("problem", "name", None),
        ("n", "n", "d"),
        ("active", "active", "d"),
        ("max |x - x_scipy|", "x_diff", ".1e"),
        ("same active set", lambda r: "yes" if r["same_active_set"] else "NO", None),
        ("iterations (SciPy)", lambda r: f"{r['ours']['iterations']} ({r['ref']['iterations']})", None),
        ("iter ratio", lambda r: _goal(r["iterations_ratio"], GOALS["iterations"]), None),
        ("f evals (SciPy)", lambda r: f"{r['ours']['fun_evals']} ({r['ref']['fun_evals']})", None),
        ("f eval ratio", lambda r: _goal(r["fun_evals_ratio"], GOALS["fun_evals"]), None),
        ("ms (SciPy ms)", lambda r: f"{R.ms(r['ours']['ms']['median'])} ({R.ms(r['ref']['ms']['median'])})", None),
        ("time / SciPy", lambda r: _goal(r["time_ratio"], 1.0), None),
        ("1st call s", "ours.compile.wall_s", ".2f"),
    ]  # fmt: skip
    multi = [
        ("vmapped call ms", "vmapped_ms.median", ".1f"),
        ("µs/start (vmapped)", "us_per_start_vmapped", ".1f"),
        ("µs/start (SciPy)", "us_per_start_scipy", ".1f"),
        ("speedup", "speedup_per_start", lambda v: f"{v:.0f}x"),
        ("converged", lambda r: f"{r['converged']}/{r['starts']}", None),
        ("max iterations", "iterations_max", "d"),
        ("median iterations", "iterations_median", ".0f"),
        ("max |x - x_scipy|", "max_x_diff_vs_scipy", ".1e"),
        ("1st call s", "compile.wall_s", ".2f"),
    ]
    return [
        f"Ours: projected-gradient 2-norm <= {cfg['tol']:g}; SciPy: gtol 1e-11 (infinity "
        f"norm), ftol 1e-16. Medians of {cfg['repeats']} interleaved warm calls (compile "
        "apart). Goals: same solution within 1e-6, iterations <= 1.25x and function "
        "evaluations <= 1.5x SciPy's, time below SciPy's, vmapped starts >= 50x faster per "
        "start; '(miss)' marks a miss. Timings on a shared machine are noisy: see the load.",
        R.Table(solve, rows, "One solve, warm"),
        R.Table(
            multi,
            [ms],
            f"{ms['starts']} starting points of 2-D Rosenbrock in [-0.5, 0.8]^2, one vmapped "
            f"call, against a Python loop of SciPy solves ({ms['scipy_starts']} starts timed)",
            n_left=0,
        ),
    ]


if __name__ == "__main__":
    R.cli(__spec__.name)
