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
before).

Workload 3 -- the Moré-Garbow-Hillstrom set: Rosenbrock (n = 2, 10, 100), Beale, Wood,
Powell singular, Osborne 1 and Watson (n = 6, 9), from the standard start and from 10x it
(Watson starts at 0: once), written from J. J. Moré, B. S. Garbow and K. E. Hillstrom,
"Testing unconstrained optimization software", ACM TOMS 7, 1981. Each run is one warm
call per solver, timed interleaved; reported per solver: the median over the runs of the
per-run median time, the iterations, and the runs solved (gradient 2-norm at most
``100 * tol`` at the returned point, measured with the same JAX gradient for every
solver, so that a peer whose stop test differs is not penalised for it). Peers: optax's
L-BFGS (jitted while loop), SciPy BFGS / L-BFGS-B (evaluating a jitted JAX
value-and-gradient) and optimistix's BFGS when it is importable. In every workload
SciPy's BLAS is held to one thread (``_timing.blas_threads``).
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
    "mgh_runs": (4, 16, "Moré-Garbow-Hillstrom runs (the first of the list)"),
    "mgh_repeats": (5, 30, "samples per solver and Moré-Garbow-Hillstrom run"),
}
TOL, MAX_STEPS, MULTISTART_STEPS, MGH_STEPS = 1e-8, 10000, 200, 2000
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
        # steps sized to the problem: under vmap the while loop selects its carry every
        # iteration (the histories' current chunk, and the whole of them once per chunk)
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


# --------------------------------------------------------------------------------------
# Moré, Garbow & Hillstrom (1981): problems from their definitions (numbers as in the paper)
# --------------------------------------------------------------------------------------

OSBORNE1_Y = np.array([
    0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718,
    0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467,
    0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406,
])  # fmt: skip


def wood(x: jax.Array) -> jax.Array:  # MGH problem 14, n = 4
    x1, x2, x3, x4 = x
    return (100 * (x2 - x1**2) ** 2 + (1 - x1) ** 2 + 90 * (x4 - x3**2) ** 2 + (1 - x3) ** 2
            + 10 * (x2 + x4 - 2) ** 2 + 0.1 * (x2 - x4) ** 2)  # fmt: skip


def powell_singular(x: jax.Array) -> jax.Array:  # MGH problem 13, n = 4
    x1, x2, x3, x4 = x
    return (x1 + 10 * x2) ** 2 + 5 * (x3 - x4) ** 2 + (x2 - 2 * x3) ** 4 + 10 * (x1 - x4) ** 4


def osborne1(x: jax.Array) -> jax.Array:  # MGH problem 17, n = 5, m = 33
    t = 10.0 * jnp.arange(33)
    model = x[0] + x[1] * jnp.exp(-t * x[3]) + x[2] * jnp.exp(-t * x[4])
    return jnp.sum((OSBORNE1_Y - model) ** 2)


def watson(x: jax.Array) -> jax.Array:  # MGH problem 20, m = 31
    n = x.shape[0]
    t = jnp.arange(1, 30) / 29.0
    powers = t[:, None] ** jnp.arange(n)  # t_i^(j-1), j = 1..n
    slope = powers[:, : n - 1] @ (jnp.arange(1, n) * x[1:])  # sum_j (j-1) x_j t^(j-2)
    r = slope - (powers @ x) ** 2 - 1.0
    return jnp.sum(r**2) + x[0] ** 2 + (x[1] - x[0] ** 2 - 1.0) ** 2


def mgh_runs() -> list[tuple[str, Callable, np.ndarray]]:
    """(name, f, start) for every run: each problem from x0 and from 10 x0."""
    rosen = {f"rosenbrock {n}": jol.problems.rosenbrock(n) for n in (2, 10, 100)}
    problems = [(k, p.fn, np.asarray(p.x0, np.float64)) for k, p in rosen.items()]
    beale = jol.problems.beale()
    problems += [
        ("beale", beale.fn, np.asarray(beale.x0, np.float64)),
        ("wood", wood, np.array([-3.0, -1.0, -3.0, -1.0])),
        ("powell singular", powell_singular, np.array([3.0, -1.0, 0.0, 1.0])),
        ("osborne 1", osborne1, np.array([0.5, 1.5, -1.0, 0.01, 0.02])),
    ]
    runs = [(f"{k}, {s}x0", f, s * x0) for k, f, x0 in problems for s in (1, 10)]
    runs += [(f"watson {n}, x0 = 0", watson, np.zeros(n)) for n in (6, 9)]
    # a quick run takes the first few: one of each kind of problem before the repeats
    return sorted(runs, key=lambda r: (r[0].startswith("rosenbrock 100"), "10x0" in r[0]))


def optx_bfgs(f: Callable) -> Callable | None:
    """optimistix's BFGS in one jitted call, or None when optimistix is not importable."""
    try:
        import optimistix as optx
    except ImportError:
        return None
    solver = optx.BFGS(rtol=TOL, atol=TOL)

    @jax.jit
    def run(x):
        sol = optx.minimise(lambda y, _: f(y), solver, x, max_steps=MGH_STEPS, throw=False)
        return sol.value, sol.stats["num_steps"]

    return run


def mgh_variants(f: Callable, x0: np.ndarray) -> list[T.Variant]:
    x0j = jnp.asarray(x0, jnp.float64)
    vg = jax.jit(jax.value_and_grad(f))

    def np_fun(x):
        v, g = vg(x)
        return float(v), np.asarray(g)

    variants = [
        T.Variant(f"jol.{m}", P(jol.minimize, f, x0j, make(), MGH_STEPS, tol=TOL))
        for m, make in OURS.items()
    ]
    variants.append(T.Variant("optax.lbfgs", P(optax_lbfgs(f), x0j)))
    for name, options in SCIPY.values():
        opts = {**options, "maxiter": MGH_STEPS}
        variants.append(T.Variant(f"scipy {name}", P(scipy.optimize.minimize, np_fun, x0,
                                                     jac=True, method=name, options=opts)))  # fmt: skip
    run_optx = optx_bfgs(f)
    if run_optx is not None:
        variants.append(T.Variant("optx.BFGS", P(run_optx, x0j)))
    return variants


def mgh_outcome(f: Callable, out: Any) -> dict[str, Any]:
    """Iterations and whether the run solved its problem, for any solver's output."""
    if isinstance(out, scipy.optimize.OptimizeResult):
        x, iters = out.x, int(out.nit)
    elif isinstance(out, jol.OptimizeResult):
        x, iters = out.params, int(out.num_steps)
    else:
        x, iters = out[0], int(out[1])
    norm = float(jnp.linalg.norm(jax.grad(f)(jnp.asarray(x, jnp.float64))))
    return {"iterations": iters, "grad_norm": norm, "solved": bool(norm <= 100 * TOL)}


def bench_mgh(cfg: Any, log: R.Log) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for name, f, x0 in mgh_runs()[: cfg.mgh_runs]:
        variants = mgh_variants(f, x0)
        rows, outs = T.measure(variants, repeats=cfg.mgh_repeats, warmup=1, per_call=("ms", 1e3))
        runs.append({"run": name, "rows": {
            k: {"ms": r["ms"]["median"], **mgh_outcome(f, outs[k])} for k, r in rows.items()
        }})  # fmt: skip
        log(f"mgh {name}: done")
    solvers = list(runs[0]["rows"])
    summary = {
        s: {
            "median_ms": float(np.median([r["rows"][s]["ms"] for r in runs])),
            "median_iterations": float(np.median([r["rows"][s]["iterations"] for r in runs])),
            "solved": sum(r["rows"][s]["solved"] for r in runs),
        }
        for s in solvers
    }
    return {"runs": runs, "summary": summary, "n_runs": len(runs)}


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    record, log = R.begin("quasi_newton", cfg, tol=TOL, dtype="float64", blas_threads=1)
    record["single"] = []
    with T.blas_threads(1):
        for n in (2, 100):
            rows, outs = T.measure(
                single_variants(n), repeats=cfg.repeats, warmup=1, per_call=("ms", 1e3)
            )
            record["single"].append(
                {"n": n, "rows": {k: {**r, **solve_info(outs[k])} for k, r in rows.items()}}
            )
            log(f"rosenbrock {n}: done")
        record["multistart"] = bench_multistart(cfg, log)
        record["mgh"] = bench_mgh(cfg, log)
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
    mgh = record.get("mgh")
    mgh_cols = [
        ("solver", "name", None),
        ("median ms / solve", "median_ms", ".3f"),
        ("median iterations", "median_iterations", ".0f"),
        ("solved", lambda r: f"{r['solved']}/{mgh['n_runs']}", None),
    ]
    mgh_tables = [] if mgh is None else [
        R.Table(
            mgh_cols,
            R.named(mgh["summary"]),
            f"Moré-Garbow-Hillstrom set: {mgh['n_runs']} runs, one warm call per solve",
            notes=["Per solver: median over the runs of each run's median time; solved: "
                   f"gradient 2-norm <= {100 * cfg['tol']:g} at the returned point."],
        )
    ]  # fmt: skip
    return [
        f"Gradient 2-norm tolerance {cfg['tol']:g}; medians of {cfg['repeats']} interleaved "
        "warm calls (compile apart); SciPy's BLAS held to one thread.",
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
        *mgh_tables,
    ]


if __name__ == "__main__":
    R.cli(__spec__.name)
