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

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax

jax.config.update("jax_enable_x64", True)  # a float64 benchmark, like SciPy

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy.optimize  # noqa: E402

import jaxopt_lab as jol
from benchmarks import _timing as T  # run as python -m benchmarks[.<name>] from the repository root

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-8
MAX_STEPS = 10000
MULTISTART_STEPS = 200
OURS = {"bfgs": jol.bfgs, "lbfgs": jol.lbfgs}
SCIPY = {
    "bfgs": ("BFGS", {"gtol": TOL, "norm": 2}),
    "lbfgs": ("L-BFGS-B", {"gtol": TOL, "ftol": 0.0}),
}


def scipy_solve(method: str, x0: np.ndarray) -> Any:
    name, options = SCIPY[method]
    return scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der, method=name,
                                   options={"maxiter": MAX_STEPS, **options})  # fmt: skip


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


def first_call(fn: Callable[[], Any]) -> dict[str, Any]:
    with T.CompileEvents() as ev:
        jax.block_until_ready(fn())
    return ev.to_dict()


def bench_single(n: int, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    prob = jol.problems.rosenbrock(n)
    f = prob.fn
    x0 = jnp.asarray(prob.x0, jnp.float64)
    x0_np = np.asarray(x0)
    calls: dict[str, Callable[[], Any]] = {}
    for m, make in OURS.items():
        opt = make()
        calls[f"jol.{m}"] = lambda opt=opt: jol.minimize(f, x0, opt, MAX_STEPS, tol=TOL)
        calls[f"scipy {SCIPY[m][0]}"] = lambda m=m: scipy_solve(m, x0_np)
    run_optax = optax_lbfgs(f)
    calls["optax.lbfgs"] = lambda: run_optax(x0)
    comp = {name: first_call(c) for name, c in calls.items()}
    benches = [T.CallBench(name, c) for name, c in calls.items()]
    T.run_interleaved(benches, repeats=args.repeats, warmup=1, number=1)
    rows: dict[str, Any] = {}
    for b in benches:
        out = b.last
        if b.name.startswith("jol."):
            info = {
                "iterations": int(out.num_steps),
                "fun_evals": int(out.num_fun_evals),
                "grad_norm": float(out.grad_norm),
                "x_err": float(jnp.max(jnp.abs(out.params - 1.0))),
            }
        elif b.name.startswith("scipy"):
            info = {
                "iterations": int(out.nit),
                "fun_evals": int(out.nfev),
                "grad_norm": float(np.linalg.norm(out.jac)),
                "x_err": float(np.max(np.abs(out.x - 1.0))),
            }
        else:
            info = {
                "iterations": int(out[1]),
                "fun_evals": None,
                "grad_norm": None,
                "x_err": float(jnp.max(jnp.abs(out[0] - 1.0))),
            }
        rows[b.name] = {
            "time_s": b.stats().to_dict(),
            "ms": b.stats().scaled(1e3),
            "compile": comp[b.name],
            **info,
        }
    for m in OURS:
        rows[f"jol.{m}"]["ratio_to_scipy"] = T.paired_ratio(
            next(b for b in benches if b.name == f"jol.{m}").samples,
            next(b for b in benches if b.name == f"scipy {SCIPY[m][0]}").samples,
        )
    log(f"rosenbrock {n}: done")
    return {"n": n, "rows": rows}


def bench_multistart(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    f = jol.problems.rosenbrock(2).fn
    starts = jax.random.uniform(jax.random.PRNGKey(0), (args.starts, 2), jnp.float64, -2.0, 2.0)
    starts_np = np.asarray(starts)
    out: dict[str, Any] = {"starts": args.starts, "scipy_starts": args.scipy_starts}
    for m, make in OURS.items():
        opt = make()
        # steps sized to the problem: under vmap the while loop selects its whole carry,
        # the (steps,) histories included, every iteration (10000 steps: 15x slower)
        run = jax.jit(
            jax.vmap(lambda x, opt=opt: jol.minimize(f, x, opt, MULTISTART_STEPS, tol=TOL))
        )
        comp = first_call(lambda: run(starts))
        ours = T.CallBench("vmapped", run, (starts,))
        sub = starts_np[: args.scipy_starts]
        theirs = T.CallBench("scipy loop", lambda sub=sub, m=m: [scipy_solve(m, x) for x in sub])
        T.run_interleaved([ours, theirs], repeats=args.multistart_repeats, warmup=1, number=1)
        res = ours.last
        per_ours = ours.stats().median / args.starts
        per_scipy = theirs.stats().median / args.scipy_starts
        out[m] = {
            "vmapped_ms": ours.stats().scaled(1e3), "compile": comp,
            "scipy_loop_ms": theirs.stats().scaled(1e3),
            "us_per_start_vmapped": per_ours * 1e6, "us_per_start_scipy": per_scipy * 1e6,
            "speedup_per_start": per_scipy / per_ours,
            "converged": int(res.converged.sum()),
            "iterations_max": int(res.num_steps.max()), "iterations_median": float(np.median(res.num_steps)),
        }  # fmt: skip
        log(f"multistart {m}: done")
    return out


def build_markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        f"# Quasi-Newton: jaxopt_lab against SciPy and optax ({env['platform']}, float64)",
        "",
        f"Device: {env.get('device_kind', env['platform'])}; CPU: {env.get('cpu_model')}, "
        f"cores: {env.get('cpu_count')}. jax {env.get('jax')}, SciPy {scipy.__version__}, "
        f"optax {optax.__version__}. Gradient 2-norm tolerance {TOL:g}; medians of "
        f"{result['config']['repeats']} interleaved warm calls (compile apart).",
        "",
    ]
    for single in result["single"]:
        lines += [f"## One solve: Rosenbrock n = {single['n']}", ""]
        rows = []
        for name, r in single["rows"].items():
            ratio = r.get("ratio_to_scipy")
            rows.append([name, f"{r['ms']['median']:.3f}", f"{r['ms']['min']:.3f}", r["iterations"],
                         "-" if r["fun_evals"] is None else r["fun_evals"],
                         f"{r['x_err']:.1e}", f"{r['compile']['wall_s']:.2f}",
                         "-" if ratio is None else f"{ratio['median_over_median']:.2f}"])  # fmt: skip
        lines += [
            T.markdown_table(
                [
                    "solver",
                    "median ms",
                    "min ms",
                    "iterations",
                    "f evals",
                    "max |x - x*|",
                    "1st call s",
                    "time / SciPy",
                ],
                rows,
            ),
            "",
        ]
    ms = result["multistart"]
    lines += [
        f"## {ms['starts']} starting points of 2-D Rosenbrock in one vmapped call, against "
        f"a Python loop of SciPy solves ({ms['scipy_starts']} starts timed)",
        "",
    ]
    rows = [[m, f"{ms[m]['vmapped_ms']['median']:.1f}", f"{ms[m]['us_per_start_vmapped']:.1f}",
             f"{ms[m]['us_per_start_scipy']:.1f}", f"{ms[m]['speedup_per_start']:.0f}x",
             f"{ms[m]['converged']}/{ms['starts']}", ms[m]["iterations_max"],
             f"{ms[m]['iterations_median']:.0f}", f"{ms[m]['compile']['wall_s']:.2f}"]
            for m in OURS]  # fmt: skip
    lines += [
        T.markdown_table(
            [
                "method",
                "vmapped call ms",
                "µs/start (vmapped)",
                "µs/start (SciPy)",
                "speedup",
                "converged",
                "max iterations",
                "median iterations",
                "1st call s",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: few repeats, 100 starts")
    ap.add_argument(
        "--repeats", type=int, default=None, help="samples per single-solve variant (20; 3 quick)"
    )
    ap.add_argument(
        "--starts", type=int, default=None, help="vmapped starting points (1000; 100 quick)"
    )
    ap.add_argument(
        "--scipy-starts",
        type=int,
        default=None,
        help="SciPy solves timed in the loop (100; 20 quick)",
    )
    ap.add_argument(
        "--multistart-repeats",
        type=int,
        default=None,
        help="samples of the multi-start pair (5; 2 quick)",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    a = ap.parse_args(argv)
    for key, (quick, full) in {"repeats": (3, 20), "starts": (100, 1000), "scipy_starts": (20, 100),
                               "multistart_repeats": (2, 5)}.items():  # fmt: skip
        if getattr(a, key) is None:
            setattr(a, key, quick if a.quick else full)
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    log = T.stage_logger(t_start)
    env = T.environment()
    backend_warmup_s = T.warm_up_backend()
    result = {
        "benchmark": "quasi_newton",
        "environment": env,
        "config": {"quick": args.quick, "repeats": args.repeats, "tol": TOL, "dtype": "float64"},
        "backend_warmup_s": backend_warmup_s,
        "single": [bench_single(n, args, log) for n in (2, 100)],
        "multistart": bench_multistart(args, log),
    }
    return T.publish(args.out, result, args.quick, t_start, build_markdown)


if __name__ == "__main__":
    main()
