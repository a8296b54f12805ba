r"""Gradients through a solve: implicit differentiation against the unrolled loop, float64.

The workload: L2-regularized logistic regression on synthetic data (``samples`` x
``features``, a training and a validation half), and the hypergradient of the
validation loss :math:`V(x^*(\lambda))` in the L2 strength :math:`\lambda`, where
:math:`x^*(\lambda)` minimizes the training loss. Solved by gradient descent with step
:math:`1/L` (:math:`L` the gradient's Lipschitz constant) to a gradient 2-norm of
``TOL``. Timed, each jitted and warm (compile apart):

* ``solve``: the tol-stopped solve alone (``lax.while_loop``), the cost of a forward run;
* ``implicit``: ``jax.grad`` of the validation loss through
  ``jol.minimize(..., tol=TOL, args=(lam, data), implicit_diff=True)``: the solve, then
  one conjugate-gradient solve with Hessian-vector products and one vjp;
* ``unrolled``: ``jax.grad`` through ``jol.minimize`` with a fixed number of steps (no
  ``tol``: ``lax.scan``), as many as the tol-stopped solve needed, so both reach the
  same point; reverse mode stores every iterate;
* ``implicit L-BFGS``: the same implicit gradient with ``jol.lbfgs()`` as the solver
  (a quasi-Newton solve cannot be unrolled by ``jax.grad`` at all).

The two gradients of the gradient-descent solve are compared (relative difference):
they differ by the unrolled loop's own truncation error, which a tight ``TOL`` makes small.
"""

from __future__ import annotations

from functools import partial as P  # P(f, *args): the call f(*args)
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # the gradients are compared to ~1e-8

import jax.numpy as jnp  # noqa: E402

import jaxopt_lab as jol  # noqa: E402
from benchmarks import _report as R  # noqa: E402
from benchmarks import _timing as T  # noqa: E402

TITLE = "Implicit differentiation of a solve against the unrolled loop, float64"
PARAMS = {
    "repeats": (5, 20, "interleaved samples per variant"),
    "samples": (400, 4000, "examples (half training, half validation)"),
    "features": (20, 100, "features"),
}
TOL, STRENGTH, MAX_STEPS = 1e-10, 0.01, 20000


def logistic(w, strength, data):
    x, y = data
    z = x @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * strength * jnp.sum(w**2)


def make_data(samples: int, features: int) -> tuple[Any, Any]:
    kx, kw, ke = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (samples, features))
    w_true = jax.random.normal(kw, (features,))
    y = (x @ w_true + 0.5 * jax.random.normal(ke, (samples,)) > 0).astype(jnp.float64)
    half = samples // 2
    return (x[:half], y[:half]), (x[half:], y[half:])


def variants(train: Any, valid: Any) -> tuple[list[T.Variant], int]:
    x = train[0]
    # gradient of the mean logistic loss is Lipschitz with 0.25 lambda_max(X^T X) / n
    lipschitz = 0.25 * float(jnp.linalg.eigvalsh(x.T @ x / x.shape[0])[-1]) + STRENGTH
    gd, w0 = jol.sgd(1.0 / lipschitz), jnp.zeros(x.shape[1])

    def solve(lam, opt=gd, steps=MAX_STEPS, tol=TOL, implicit=False):
        return jol.minimize(logistic, w0, opt, steps, tol=tol, args=(lam, train),
                            implicit_diff=implicit)  # fmt: skip

    def valid_loss(lam, **kw):
        return logistic(solve(lam, **kw).params, 0.0, valid)

    lam = jnp.asarray(STRENGTH)
    steps = int(solve(lam).num_steps)  # what the tol-stopped solve needed
    run_solve = jax.jit(lambda lam: solve(lam).params)
    implicit = jax.jit(jax.grad(P(valid_loss, implicit=True)))
    unrolled = jax.jit(jax.grad(P(valid_loss, steps=steps, tol=None)))
    implicit_lbfgs = jax.jit(jax.grad(P(valid_loss, opt=jol.lbfgs(), steps=500, implicit=True)))
    return [
        T.Variant("solve", P(run_solve, lam), ref="implicit"),
        T.Variant("implicit", P(implicit, lam), ref="implicit"),
        T.Variant(f"unrolled ({steps} steps)", P(unrolled, lam), ref="implicit"),
        T.Variant("implicit L-BFGS", P(implicit_lbfgs, lam), ref="implicit"),
    ], steps


def run(quick: bool = True, **options: Any) -> dict[str, Any]:
    cfg = R.settings(PARAMS, quick, options)
    record, log = R.begin("implicit_diff", cfg, tol=TOL, strength=STRENGTH, dtype="float64")
    train, valid = make_data(cfg.samples, cfg.features)
    vs, steps = variants(train, valid)
    rows, outs = T.measure(vs, repeats=cfg.repeats, warmup=1, per_call=("ms", 1e3))
    grads = {k: float(v) for k, v in outs.items() if k != "solve"}
    ref = grads["implicit"]
    for name, row in rows.items():
        row["grad"] = grads.get(name)
        row["rel_diff"] = None if name == "solve" else abs(grads[name] - ref) / abs(ref)
    record["gd_steps"] = steps
    record["rows"] = rows
    log("done")
    return R.finish(record)


def _ratio(row: dict[str, Any]) -> str:
    r = R.ratio_to_ref(row)
    return r if isinstance(r, str) else R.ratio(r)


def report(record: dict[str, Any]) -> list[Any]:
    cfg = record["config"]
    columns = [
        ("variant", "name", None),
        ("median ms", "ms.median", ".3f"),
        ("min ms", "ms.min", ".3f"),
        ("time / implicit", _ratio, None),
        ("dV/dlambda", "grad", ".10e"),
        ("rel. diff to implicit", "rel_diff", ".1e"),
        ("1st call s", "compile.wall_s", ".2f"),
    ]
    return [
        f"Logistic regression, {cfg['samples']} examples x {cfg['features']} features; "
        f"gradient descent (step 1/L) to a gradient norm of {cfg['tol']:g} took "
        f"{record['gd_steps']} steps; medians of {cfg['repeats']} interleaved warm calls "
        "(compile apart).",
        R.Table(columns, R.named(record["rows"]), "Hypergradient of the validation loss"),
    ]


if __name__ == "__main__":
    R.cli(__spec__.name)
