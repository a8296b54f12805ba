r"""Nonlinear least squares: minimise the cost :math:`F(x) = \tfrac12 \lVert r(x)\rVert_2^2`
of a residual function :math:`r: \mathbb{R}^n \to \mathbb{R}^m` (SciPy's ``cost``).

Notation: :math:`J = \partial r / \partial x` (:math:`m \times n`), the gradient of the
cost :math:`g = J^\top r`, :math:`D` a diagonal scaling, :math:`\Delta` the trust-region
radius, :math:`\lambda` the Levenberg-Marquardt parameter.

* ``method="lm"``: Levenberg-Marquardt as J. J. Moré, "The Levenberg-Marquardt
  algorithm: implementation and theory", *Numerical Analysis*, Lecture Notes in
  Mathematics 630, Springer, 1978 (Moré below), the algorithm of MINPACK's ``lmder``
  that ``scipy.optimize.least_squares(method="lm")`` runs. Each step solves
  :math:`(J^\top J + \lambda D^2) p = -J^\top r` with :math:`\lambda` chosen so that
  :math:`\lVert D p\rVert \approx \Delta` (Moré's section 5), and :math:`\Delta`
  follows how well the linear model predicted the decrease (Moré's section 4).
* ``method="gauss_newton"``: the Gauss-Newton direction :math:`p = -J^+ r` (least-norm
  solution of :math:`J p \approx -r`) with Armijo backtracking on the cost.

The residuals and params are any pytrees (flattened with ``ravel_pytree``). Everything is
pure JAX in ``lax.while_loop``\ s: ``jit``, ``vmap`` (over data, starting points) work.

**Linear algebra.** When :math:`n \le` ``DENSE_MAX_PARAMS`` (500) and :math:`mn \le`
``DENSE_MAX_SIZE`` (:math:`2^{22}`) the Jacobian is built (one
linearization per iteration, then ``vmap`` of its ``jvp`` over the :math:`n` unit vectors
when :math:`n \le m`, else of the ``vjp`` over the :math:`m` unit vectors) and the
scaled Jacobian :math:`J D^{-1} = U S V^\top` is factored once per iteration by an SVD,
where Moré uses a QR factorization: each trial :math:`\lambda` then costs
:math:`O(n)`. Larger problems never form :math:`J`: the step comes from conjugate
gradients on :math:`(J^\top J + \lambda I) p = -g` with Jacobian-vector products from
``jax.linearize`` and its transpose (:math:`D = I` there, since the column norms of
:math:`J` would cost :math:`n` products).

**Why a function and not an (init, update) optimizer.** ``jol.minimize`` hands an
optimizer the scalar loss and its gradient; Levenberg-Marquardt and Gauss-Newton need the
residual vector and its Jacobian, which the scalar loss does not give. So the solver is
:func:`least_squares`, returning the same :class:`~jaxopt_lab.OptimizeResult` and
:class:`~jaxopt_lab.Status` codes as ``minimize``.

**Counts.** ``num_fun_evals`` counts residual evaluations as SciPy's ``nfev`` does (the
start and every trial point); a Jacobian evaluation (one linearization, which also
computes the residuals) counts in ``num_grad_evals``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._control import while_loop
from jaxopt_lab._iterate import Status
from jaxopt_lab.checks import check_callable, check_count, check_params, is_concrete
from jaxopt_lab.errors import InputTypeError, InputValueError
from jaxopt_lab.implicit import (
    check_implicit_options,
    hoist_closure,
    implicit_solve,
    refuse_reverse_mode,
    reverse_mode_message,
)
from jaxopt_lab.loops import OptimizeResult

# The Jacobian is formed when n <= DENSE_MAX_PARAMS and m n <= DENSE_MAX_SIZE (32 MiB in
# float64): an SVD costs O(m n^2) per iteration, CG O(n) products per solve.
DENSE_MAX_PARAMS, DENSE_MAX_SIZE = 500, 2**22
FACTOR = 100.0  # initial radius: FACTOR * ||D x0|| (MINPACK's and SciPy's default)
SIGMA = 0.1  # Moré's tolerance: lambda is accepted when | ||D p|| - Delta | <= SIGMA Delta
MAX_LAMBDA_STEPS = 10  # Moré's lambda iteration usually needs about two
MAX_TRIALS = 40  # rejected steps in a row before "no progress": Delta shrank >= 2^40
DEFAULT_TOL = 1e-8  # SciPy's ftol, xtol and gtol
ARMIJO_C1, MAX_BACKTRACKS = 1e-4, 40  # Gauss-Newton's line search
_RUNNING = -1
METHODS = ("lm", "gauss_newton")
SOLVERS = ("auto", "dense", "cg")


class LeastSquaresState(NamedTuple):
    """The solver's state at the final params: ``residuals`` (flat), ``lm_param``
    (:math:`\\lambda`), ``radius`` (:math:`\\Delta`) and ``scale`` (the diagonal of
    :math:`D`); the last three are NaN / ones for Gauss-Newton."""

    residuals: jax.Array
    lm_param: jax.Array
    radius: jax.Array
    scale: jax.Array


# --------------------------------------------------------------------------------------
# Derivatives and the linear subproblem
# --------------------------------------------------------------------------------------


class _Lin(NamedTuple):
    """The residuals at x, the cost's gradient :math:`g = J^\\top r`, and for the dense
    solver the Jacobian (a (0, 0) placeholder otherwise, so loops carry one type)."""

    r: jax.Array
    g: jax.Array
    jac: jax.Array


def _linearize(f: Callable, x: jax.Array, m: int, dense: bool) -> _Lin:
    """Residuals and derivatives at x: one linearization (forward when n <= m: n jvps
    build J; else m vjps). Matrix-free: one vjp for the gradient only."""
    n = x.size
    if not dense:
        r, vjp = jax.vjp(f, x)
        return _Lin(r, vjp(r)[0], jnp.zeros((0, 0), x.dtype))

    def with_residuals(z):  # the residuals once, as the output and as the aux
        r = f(z)
        return r, r

    both = jax.jacfwd if n <= m else jax.jacrev  # (J, r) from one linearization
    jac, r = both(with_residuals, has_aux=True)(x)
    return _Lin(r, jac.T @ r, jac)


class _Trial(NamedTuple):
    """The step for one lambda: ``p`` in scaled variables (:math:`D p`), ``pnorm``
    :math:`= \\lVert D p\\rVert`, its derivative in lambda, and :math:`\\lVert J p\\rVert^2`."""

    p: jax.Array
    pnorm: jax.Array
    dpnorm: jax.Array
    jp2: jax.Array


def _svd_steps(jac: jax.Array, scale: jax.Array, r: jax.Array):
    r"""``step(lam)`` from one SVD :math:`J D^{-1} = U S V^\top`: the scaled step is
    :math:`-V\, \mathrm{diag}(s_i / (s_i^2 + \lambda))\, U^\top r`, so
    :math:`\lVert Dp\rVert^2 = \sum_i c_i^2` with :math:`c_i = s_i b_i / (s_i^2+\lambda)`,
    :math:`b = U^\top r`, and :math:`d\lVert Dp\rVert/d\lambda = -\sum_i c_i^2 / (s_i^2 +
    \lambda) / \lVert Dp\rVert`. Singular values under the rounding of the largest are
    taken as zero (the least-norm Gauss-Newton step at lambda = 0). Also returns whether
    :math:`J` has full column rank (Moré's lower bound on lambda needs it)."""
    u, s, vt = jnp.linalg.svd(jac / scale[None, :], full_matrices=False)
    eps = jnp.finfo(s.dtype).eps
    s = jnp.where(s > eps * max(jac.shape) * s[0], s, 0.0)  # s[0] is the largest
    b = u.T @ r
    full_rank = (jac.shape[0] >= jac.shape[1]) & jnp.all(s > 0)

    def step(lam):
        den = s * s + lam
        ok = den > 0
        c = jnp.where(ok, s * b / jnp.where(ok, den, 1.0), 0.0)
        pnorm = jnp.sqrt(jnp.sum(c * c))
        d = jnp.sum(jnp.where(ok, c * c / jnp.where(ok, den, 1.0), 0.0))
        return _Trial(-(vt.T @ c), pnorm, -d / _nonzero(pnorm), jnp.sum((s * c) ** 2))

    return step, full_rank


def _cg_steps(f: Callable, x: jax.Array, g: jax.Array, max_cg_steps: int | None):
    """``step(lam)`` without forming J (D = I): conjugate gradients on
    :math:`(J^\\top J + \\lambda I) p = -g`, then once more on
    :math:`(J^\\top J + \\lambda I) q = p` for the derivative :math:`-p^\\top q / \\lVert p\\rVert`."""
    _, jvp = jax.linearize(f, x)  # its primal output is unused: XLA drops it
    vjp = jax.linear_transpose(jvp, x)
    tol = float(jnp.finfo(x.dtype).eps) ** 0.75
    maxiter = max_cg_steps or x.size

    def step(lam):
        def normal(v):
            return vjp(jvp(v))[0] + lam * v

        p, _ = jax.scipy.sparse.linalg.cg(normal, -g, tol=tol, maxiter=maxiter)
        q, _ = jax.scipy.sparse.linalg.cg(normal, p, tol=tol, maxiter=maxiter)
        pnorm = jnp.linalg.norm(p)
        jp = jvp(p)
        return _Trial(p, pnorm, -jnp.sum(p * q) / _nonzero(pnorm), jnp.sum(jp * jp))

    return step, jnp.asarray(False)  # rank unknown: Moré's lower bound starts at 0


def _nonzero(x: jax.Array) -> jax.Array:
    return jnp.where(x == 0, 1.0, x)


def _lm_parameter(step: Callable, delta, lam, gnorm, full_rank) -> tuple[jax.Array, _Trial]:
    r"""Moré's section 5: :math:`\lambda \ge 0` with :math:`\phi(\lambda) =
    \lVert D p(\lambda)\rVert - \Delta` within :math:`\sigma\Delta` of 0, or
    :math:`\lambda = 0` when the Gauss-Newton step is already inside
    (:math:`\phi(0) \le \sigma\Delta`). Safeguarded Newton iteration on
    :math:`1/\lVert Dp\rVert` (Moré's iteration): :math:`\lambda_+ = \lambda - \frac{\phi +
    \Delta}{\Delta}\frac{\phi}{\phi'}`, kept in :math:`(l, u)` with
    :math:`u_0 = \lVert (JD^{-1})^\top r\rVert / \Delta`, :math:`l_0 = -\phi(0)/\phi'(0)`
    for a full-rank J (else 0); :math:`l` grows to :math:`\lambda - \phi/\phi'` (a
    Newton step on the convex :math:`\phi` undershoots) and :math:`u` shrinks to any
    :math:`\lambda` with :math:`\phi < 0`. ``lam`` is the previous iteration's value."""
    t0 = step(jnp.zeros_like(delta))
    phi0 = t0.pnorm - delta
    low = jnp.where(full_rank, -phi0 / jnp.where(t0.dpnorm < 0, t0.dpnorm, -1.0), 0.0)
    low = jnp.maximum(low, 0.0)
    up = gnorm / delta
    up = jnp.where(up > 0, up, jnp.finfo(delta.dtype).tiny / jnp.minimum(delta, SIGMA))

    def cond(c):
        i, _, _, _, _, done = c
        return (i < MAX_LAMBDA_STEPS) & ~done

    def body(c):
        i, lam, low, up, _, _ = c
        outside = (lam <= low) | (lam >= up)
        lam = jnp.where(outside, jnp.maximum(1e-3 * up, jnp.sqrt(low * up)), lam)
        t = step(lam)
        phi = t.pnorm - delta
        newton = phi / jnp.where(t.dpnorm < 0, t.dpnorm, -1.0)  # phi / phi'
        up = jnp.where(phi < 0, lam, up)
        low = jnp.maximum(low, lam - newton)
        done = jnp.abs(phi) <= SIGMA * delta
        nxt = jnp.where(done, lam, lam - (t.pnorm / delta) * newton)
        return i + 1, nxt, low, up, (lam, t), done

    done0 = phi0 <= SIGMA * delta
    start = (jnp.asarray(0), lam, low, up, (jnp.zeros_like(delta), t0), done0)
    *_, (lam, t), _ = while_loop(cond, body, start)
    return lam, t


# --------------------------------------------------------------------------------------
# Levenberg-Marquardt
# --------------------------------------------------------------------------------------


class _Tols(NamedTuple):
    ftol: jax.Array
    xtol: jax.Array
    gtol: jax.Array


class _Run(NamedTuple):
    """The outer loop's carry: one accepted step per iteration."""

    k: jax.Array  # accepted steps
    x: jax.Array
    lin: _Lin
    scale: jax.Array  # D
    radius: jax.Array  # Delta
    lam: jax.Array
    nfev: jax.Array
    njev: jax.Array
    losses: jax.Array  # (max_steps + 1,): slot k holds the cost after k steps
    gnorms: jax.Array
    status: jax.Array  # _RUNNING until a test stops the run


def _cosine_test(lin: _Lin, col: jax.Array) -> jax.Array:
    r"""MINPACK's gradient measure: the largest cosine of the angle between r and a
    column of J, :math:`\max_j |(J^\top r)_j| / (\lVert J_j\rVert \lVert r\rVert)`
    (columns of norm 0 skipped; 0 when r = 0). Matrix-free (no column norms): the
    largest entry of the gradient, :math:`\lVert g\rVert_\infty`, as SciPy's 'trf'."""
    fnorm = jnp.linalg.norm(lin.r)
    if col is None:
        return jnp.max(jnp.abs(lin.g))
    ok = (col > 0) & (fnorm > 0)
    return jnp.max(jnp.where(ok, jnp.abs(lin.g) / jnp.where(ok, col * fnorm, 1.0), 0.0))


def _status_at(lin: _Lin, measure: jax.Array, gtol: jax.Array) -> jax.Array:
    """At a new point: non-finite residuals or gradient, else the gradient test on
    ``measure``, else running."""
    finite = jnp.all(jnp.isfinite(lin.r)) & jnp.all(jnp.isfinite(lin.g))
    s = jnp.where(measure <= gtol, Status.CONVERGED, _RUNNING)
    return jnp.where(finite, s, Status.NONFINITE).astype(jnp.int32)


def _lm_trial(f, step, full_rank, c: _Run, tols: _Tols, first: jax.Array):
    r"""One trial step of Moré's algorithm (sections 4 and 7): the step for the
    radius, the ratio :math:`\rho` of the actual to the predicted reduction of
    :math:`\lVert r\rVert^2` (both relative to :math:`\lVert r\rVert^2`), the new radius
    and lambda, acceptance when :math:`\rho \ge 10^{-4}`, and the ftol / xtol tests.
    Returns the new carry (x moved only when accepted), whether it was accepted, and a
    status (``_RUNNING`` to go on)."""
    x, r, scale = c.x, c.lin.r, c.scale
    fnorm = jnp.linalg.norm(r)
    gscaled = jnp.linalg.norm(c.lin.g / scale)  # ||(J D^-1)^T r||
    lam, t = _lm_parameter(step, c.radius, c.lam, gscaled, full_rank)
    # the first iteration's radius shrinks to its first step (MINPACK does the same)
    radius = jnp.where(first, jnp.minimum(c.radius, t.pnorm), c.radius)
    x_new = x + t.p / scale
    r_new = f(x_new)
    fnorm_new = jnp.where(jnp.all(jnp.isfinite(r_new)), jnp.linalg.norm(r_new), jnp.inf)
    # actual reduction, -1 for a step that made r 10x larger (or non-finite)
    ared = jnp.where(0.1 * fnorm_new < fnorm, 1.0 - (fnorm_new / fnorm) ** 2, -1.0)
    # predicted: ||r||^2 - ||r + Jp||^2 = ||Jp||^2 + 2 lam ||Dp||^2, as p solves the
    # normal equations; dirder = r'Jp / ||r||^2 = -(||Jp||^2 + lam ||Dp||^2) / ||r||^2
    t1, t2 = t.jp2 / fnorm**2, lam * t.pnorm**2 / fnorm**2
    prered, dirder = t1 + 2.0 * t2, -(t1 + t2)
    ratio = jnp.where(prered != 0, ared / _nonzero(prered), 0.0)
    # rho <= 1/4: shrink by mu in [0.1, 0.5], the minimiser of the quadratic through
    # ||r(x + t p)||^2 at t = 0 (value, slope) and t = 1
    den = dirder + 0.5 * ared
    mu = jnp.where(ared >= 0, 0.5, 0.5 * dirder / jnp.where(den < 0, den, -1.0))
    mu = jnp.where((0.1 * fnorm_new >= fnorm) | ~(mu >= 0.1), 0.1, jnp.minimum(mu, 0.5))
    shrink = ratio <= 0.25
    grow = ~shrink & ((lam == 0) | (ratio >= 0.75))
    radius = jnp.where(shrink, mu * jnp.minimum(radius, 10.0 * t.pnorm),
                       jnp.where(grow, 2.0 * t.pnorm, radius))  # fmt: skip
    lam = jnp.where(shrink, lam / mu, jnp.where(grow, 0.5 * lam, lam))
    accept = ratio >= 1e-4
    x = jnp.where(accept, x_new, x)
    xnorm = jnp.linalg.norm(scale * x)
    status = _lm_status(ared, prered, ratio, radius, xnorm, tols)
    lin = c.lin._replace(r=jnp.where(accept, r_new, r))
    return c._replace(x=x, lin=lin, radius=radius, lam=lam, nfev=c.nfev + 1), accept, status


def _lm_status(ared, prered, ratio, radius, xnorm, tols: _Tols) -> jax.Array:
    """MINPACK's tests after a trial: ftol on the actual and predicted relative reductions
    of the sum of squares, xtol on the radius relative to ||D x||; the same tests at
    machine precision mean no further progress is possible (tolerances below it)."""
    eps = jnp.finfo(radius.dtype).eps
    sane = 0.5 * ratio <= 1.0
    f_ok = (jnp.abs(ared) <= tols.ftol) & (prered <= tols.ftol) & sane
    x_ok = radius <= tols.xtol * xnorm
    stuck = ((jnp.abs(ared) <= eps) & (prered <= eps) & sane) | (radius <= eps * xnorm)
    s = jnp.where(stuck, Status.NO_PROGRESS, _RUNNING)
    return jnp.where(f_ok | x_ok, Status.CONVERGED, s).astype(jnp.int32)


def _lm_observe(c: _Run, lin: _Lin, dense: bool, tols: _Tols) -> tuple[jax.Array, jax.Array]:
    """The scaling after a new Jacobian (Moré's section 6: D grows to the column norms of
    J, never shrinks) and the status of the gradient test there."""
    col = jnp.linalg.norm(lin.jac, axis=0) if dense else None
    scale = jnp.maximum(c.scale, col) if dense else c.scale
    return scale, _status_at(lin, _cosine_test(lin, col), tols.gtol)


def _record(c: _Run, lin: _Lin, status: jax.Array, max_steps: int) -> _Run:
    """After an accepted step: count it, record the cost and gradient norm there, and
    stop on the budget."""
    k = c.k + 1
    status = jnp.where((status == _RUNNING) & (k >= max_steps), Status.MAX_STEPS, status)
    return c._replace(
        k=k,
        lin=lin,
        njev=c.njev + 1,
        losses=c.losses.at[k].set(0.5 * jnp.sum(lin.r * lin.r)),
        gnorms=c.gnorms.at[k].set(jnp.linalg.norm(lin.g)),
        status=status.astype(jnp.int32),
    )


def _lm_iteration(c: _Run, f, m, dense, max_cg_steps, tols: _Tols, max_steps) -> _Run:
    """One outer iteration of Moré's algorithm (section 7): trial steps from one Jacobian until
    one is accepted (rho >= 1e-4) or a test stops the run, then the Jacobian there."""
    if dense:
        step, full_rank = _svd_steps(c.lin.jac, c.scale, c.lin.r)
    else:
        step, full_rank = _cg_steps(f, c.x, c.lin.g, max_cg_steps)
    first = c.k == 0

    def cond(tc):
        _, accepted, status, n = tc
        return ~accepted & (status == _RUNNING) & (n < MAX_TRIALS)

    def body(tc):
        inner, _, _, n = tc
        inner, accepted, status = _lm_trial(f, step, full_rank, inner, tols, first)
        return inner, accepted, status, n + 1

    start = (c, jnp.asarray(False), jnp.asarray(_RUNNING, jnp.int32), jnp.asarray(0))
    c, accepted, status, _ = while_loop(cond, body, start)
    # MAX_TRIALS rejections in a row: the radius shrank 2^40-fold without a decrease
    status = jnp.where((status == _RUNNING) & ~accepted, Status.NO_PROGRESS, status)

    def advance(c):
        lin = _linearize(f, c.x, m, dense)
        scale, s = _lm_observe(c, lin, dense, tols)
        return _record(c._replace(scale=scale), lin, jnp.where(status == _RUNNING, s, status),
                       max_steps)  # fmt: skip

    return jax.lax.cond(accepted, advance, lambda c: c._replace(status=status), c)


def _start(f, x, m, dense, max_steps, tols: _Tols) -> _Run:
    """The carry at x0: derivatives, Moré's initial scaling (the column norms of J, 1 for a
    zero column) and radius (FACTOR ||D x0||, or FACTOR when that is 0)."""
    lin = _linearize(f, x, m, dense)
    col = jnp.linalg.norm(lin.jac, axis=0) if dense else jnp.ones_like(x)
    scale = jnp.where(col > 0, col, 1.0)
    xnorm = jnp.linalg.norm(scale * x)
    radius = jnp.where(xnorm > 0, FACTOR * xnorm, FACTOR)
    hist = jnp.zeros((max_steps + 1,), x.dtype)
    status = _status_at(lin, _cosine_test(lin, col if dense else None), tols.gtol)
    one, zero = jnp.asarray(1), jnp.asarray(0)
    return _Run(zero, x, lin, scale, radius, jnp.zeros_like(radius), one, one,
                hist.at[0].set(0.5 * jnp.sum(lin.r * lin.r)),
                hist.at[0].set(jnp.linalg.norm(lin.g)), status)  # fmt: skip


# --------------------------------------------------------------------------------------
# Gauss-Newton
# --------------------------------------------------------------------------------------


def _gn_iteration(c: _Run, f, m, dense, max_cg_steps, tols: _Tols, max_steps) -> _Run:
    r"""One Gauss-Newton step: :math:`p = -J^+ r` (dense: least squares by SVD; else CG on
    :math:`J^\top J p = -g`), then Armijo backtracking on the cost from
    :math:`\alpha = 1`, halving, until :math:`F(x + \alpha p) \le F(x) + c_1 \alpha
    g^\top p`. Tests as SciPy's 'trf' (unbounded): ftol on
    :math:`F(x) - F(x_+) \le \text{ftol}\, F(x)`, xtol on :math:`\lVert x_+ - x\rVert \le
    \text{xtol} (\text{xtol} + \lVert x_+\rVert)` (these two after a full step only,
    :math:`\alpha = 1`), gtol on :math:`\lVert g_+\rVert_\infty`."""
    x, r, g = c.x, c.lin.r, c.lin.g
    if dense:
        p = jnp.linalg.lstsq(c.lin.jac, -r)[0]
    else:
        step, _ = _cg_steps(f, x, g, max_cg_steps)
        p = step(jnp.zeros((), x.dtype)).p
    cost, slope = 0.5 * jnp.sum(r * r), jnp.sum(g * p)

    def trial(alpha):
        rt = f(x + alpha * p)
        ct = 0.5 * jnp.sum(rt * rt)
        return rt, ct, jnp.isfinite(ct) & (ct <= cost + ARMIJO_C1 * alpha * slope)

    def cond(t):
        return ~t[4] & (t[0] < MAX_BACKTRACKS)

    def body(t):
        i, alpha = t[0], 0.5 * t[1]
        return (i + 1, alpha, *trial(alpha))

    one = jnp.ones((), x.dtype)
    n, alpha, r_new, cost_new, ok = while_loop(cond, body, (jnp.asarray(1), one, *trial(one)))
    ok = ok & (slope < 0)
    c = c._replace(nfev=c.nfev + n)

    def advance(c):
        x_new = x + alpha * p
        lin = _linearize(f, x_new, m, dense)
        # Only a full step counts: a step cut short by the line search says that the
        # linear model was poor, not that x converged (Jennrich-Sampson stalls at 28x the
        # minimal cost with tiny steps)
        full = alpha == 1
        f_ok = full & (cost - cost_new <= tols.ftol * cost)
        x_ok = full & (jnp.linalg.norm(p) <= tols.xtol * (tols.xtol + jnp.linalg.norm(x_new)))
        s = _status_at(lin, jnp.max(jnp.abs(lin.g)), tols.gtol)
        s = jnp.where((s == _RUNNING) & (f_ok | x_ok), Status.CONVERGED, s)
        return _record(c._replace(x=x_new), lin, s, max_steps)

    stalled = c._replace(status=jnp.asarray(Status.NO_PROGRESS, jnp.int32))
    return jax.lax.cond(ok, advance, lambda c: stalled, c)


# --------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.jit, static_argnames=("residual_fn", "method", "max_steps", "solver", "max_cg_steps")
)
def _solve(params, args, tols, *, residual_fn, method, max_steps, solver, max_cg_steps):
    # checked at trace time only: a compiled call pays nothing for it
    m = _check_residual_fn(residual_fn, params, args)
    x0, unravel = ravel_pytree(params)
    small = x0.size <= DENSE_MAX_PARAMS and m * x0.size <= DENSE_MAX_SIZE
    dense = solver == "dense" or (solver == "auto" and small)

    def f(x):
        return ravel_pytree(residual_fn(unravel(x), *args))[0].astype(x.dtype)

    tols = _Tols(*(t.astype(x0.dtype) for t in tols))
    iteration = _lm_iteration if method == "lm" else _gn_iteration
    c = _start(f, x0, m, dense, max_steps, tols)
    c = while_loop(
        lambda c: c.status == _RUNNING,
        lambda c: iteration(c, f, m, dense, max_cg_steps, tols, max_steps),
        c,
    )
    last = jnp.minimum(c.k, max_steps - 1)
    idx = jnp.arange(max_steps)
    losses = jnp.where(idx > last, c.losses[last], c.losses[:max_steps])
    gnorms = jnp.where(idx > last, c.gnorms[last], c.gnorms[:max_steps])
    lm = method == "lm"
    nan = jnp.full((), jnp.nan, x0.dtype)
    state = LeastSquaresState(c.lin.r, c.lam if lm else nan, c.radius if lm else nan,
                              c.scale if lm else jnp.ones_like(x0))  # fmt: skip
    converged = c.status == Status.CONVERGED
    return OptimizeResult(unravel(c.x), state, losses, gnorms, c.k, converged, None,
                          c.nfev, c.njev, c.status)  # fmt: skip


def _check_residual_fn(residual_fn: Any, params: Any, args: tuple) -> int:
    """``residual_fn(params, *args)`` must return a pytree of real floating-point arrays
    holding at least one residual; checked by abstract evaluation. Returns m."""
    check_callable("residual_fn", residual_fn)
    try:
        out = jax.eval_shape(residual_fn, params, *args)
    except TypeError as e:
        if "returned a value of type" not in str(e):
            raise  # an error inside residual_fn is the user's own, shown as it is
        raise InputTypeError(
            f"`residual_fn` must return an array or a pytree of arrays: {e}"
        ) from None
    leaves = jax.tree_util.tree_leaves_with_path(out)
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            shown = f"dtype {dtype}" if dtype is not None else type(leaf).__name__
            raise InputTypeError(
                "`residual_fn` must return real floating-point arrays (any pytree of them); "
                f"residual_fn(params){jax.tree_util.keystr(path)} is {shown}."
            )
    m = sum(int(np.prod(leaf.shape)) for _, leaf in leaves)
    if m == 0:
        raise InputValueError("`residual_fn` must return at least one residual, got none.")
    return m


def _check_tolerance(name: str, value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.floating, np.integer, np.ndarray, jax.Array)
    ):
        raise InputTypeError(f"`{name}` must be a number >= 0, got {value!r}.")
    if is_concrete(value):
        v = np.asarray(value)
        if v.shape != () or not (v >= 0):
            raise InputValueError(f"`{name}` must be a number >= 0, got {value!r}.")
    return value


class _Cost(NamedTuple):
    r""":math:`F = \tfrac12 \lVert r\rVert^2`, the function the implicit rule
    differentiates; equal (and hashing equal) for the same ``residual_fn``, so the rule's
    compiled tangent is reused from call to call."""

    residual_fn: Callable

    def __call__(self, params: Any, *args: Any) -> jax.Array:
        r = ravel_pytree(self.residual_fn(params, *args))[0]
        return 0.5 * jnp.sum(r * r)


_REVERSE_MODE_MESSAGE = reverse_mode_message("jol.least_squares", "runs its loop")


def least_squares(
    residual_fn: Callable[..., Any],
    params: Any,
    method: str = "lm",
    max_steps: int = 100,
    tol: Any = None,
    *,
    args: tuple = (),
    ftol: Any = None,
    xtol: Any = None,
    gtol: Any = None,
    solver: str = "auto",
    max_cg_steps: int | None = None,
    implicit_diff: bool = False,
    linear_solver: Callable | None = None,
) -> OptimizeResult:
    r"""Minimise :math:`F(x) = \tfrac12 \sum_i r_i(x)^2`, ``r = residual_fn(params, *args)``
    (any pytree of float arrays), in one compiled program.

    ``method="lm"`` is Levenberg-Marquardt with Moré's scaling and trust-region update,
    the algorithm of ``scipy.optimize.least_squares(method="lm")`` (MINPACK's ``lmder``);
    ``method="gauss_newton"`` is Gauss-Newton with Armijo backtracking. See the module
    docstring for the math and the linear algebra.

    **What tol means.** ``tol`` is the default of three tolerances, each of which can be
    given apart (SciPy's ``ftol``, ``xtol``, ``gtol``). ``tol=None``: SciPy's 1e-8, or
    10 eps of the params' dtype when that is larger (1.2e-6 in float32, whose rounding
    1e-8 is below). The run converges (``status`` 0) when one test holds:

    * LM (MINPACK's tests, as SciPy's 'lm'): ``ftol``: both the actual and the predicted
      relative reduction of :math:`\lVert r\rVert^2` in a trial step are at most ``ftol``;
      ``xtol``: the trust radius :math:`\Delta \le` ``xtol`` :math:`\lVert D x\rVert`;
      ``gtol``: :math:`\max_j |J_j^\top r| / (\lVert J_j\rVert \lVert r\rVert) \le`
      ``gtol`` (the cosine between r and the columns of J; matrix-free:
      :math:`\lVert J^\top r\rVert_\infty \le` ``gtol``).
    * Gauss-Newton (SciPy's 'trf' tests): ``ftol``: :math:`F(x) - F(x_+) \le`
      ``ftol`` :math:`F(x)`; ``xtol``: :math:`\lVert x_+ - x\rVert \le` ``xtol``
      :math:`(\text{xtol} + \lVert x_+\rVert)` (these two only after a full step: a step
      the line search cut short is no sign of convergence); ``gtol``:
      :math:`\lVert J^\top r\rVert_\infty \le` ``gtol``.

    ``status`` (a :class:`~jaxopt_lab.Status`): 0 converged; 1 ``max_steps`` accepted steps
    made; 2 no further progress (LM: the tests hold at machine precision when the
    tolerances are below it, or 40 trial steps in a row were rejected; Gauss-Newton: the
    line search found no decrease); 3 the residuals or derivatives at an accepted point
    are not finite (a non-finite trial point is only a rejected step). At the start that
    raises :class:`~jaxopt_lab.InputValueError` instead, unless under ``jit`` or ``vmap``,
    as ``jol.minimize`` does for a line-search method.

    Result (:class:`~jaxopt_lab.OptimizeResult`): ``losses[t]`` and ``grad_norms[t]`` are
    the cost and :math:`\lVert J^\top r\rVert_2` before accepted step ``t``, repeated
    after the stop; ``num_steps`` the accepted steps (Jacobians); ``num_fun_evals`` the
    residual evaluations at the start and at trial points (SciPy's ``nfev``);
    ``num_grad_evals`` the Jacobian (matrix-free: gradient) evaluations, the start's and
    the final point's included; ``state`` a :class:`LeastSquaresState` (``state.residuals``
    gives the final cost when the budget was spent).

    Derivatives: ``jax.jvp``/``jax.jacfwd`` work through the solve as they are; reverse
    mode (``jax.grad``) raises :class:`~jaxopt_lab.implicit.ReverseModeError` unless
    ``implicit_diff=True``, which differentiates the solution in ``args`` by the implicit
    function theorem on :math:`\nabla F(x^*, \theta) = J^\top r = 0` (Hessian-vector
    products of :math:`F`, second-order residual terms included, solved by
    ``linear_solver``, CG by default), as ``jol.minimize(..., implicit_diff=True)`` does;
    :math:`\nabla^2 F` must be positive definite at the solution. A value that
    ``residual_fn`` closes over and that is being differentiated is treated as one of
    ``args``.

    ``solver``: ``"dense"`` forms J (SVD per iteration), ``"cg"`` is matrix-free (LM with
    D = I), ``"auto"`` forms J when :math:`n \le 500` and :math:`mn \le 2^{22}`;
    ``max_cg_steps`` caps each CG solve (default n).

    For example:

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> t = jnp.linspace(0, 4, 50); y = 2.5 * jnp.exp(-1.3 * t)
    >>> res = jol.least_squares(lambda p, t, y: p[0] * jnp.exp(-p[1] * t) - y,
    ...                         jnp.array([1.0, 1.0]), args=(t, y))
    >>> [round(float(v), 3) for v in res.params], int(res.status)  # 0: converged
    ([2.5, 1.3], 0)
    """
    check_params(params)
    if not isinstance(method, str) or method not in METHODS:
        raise InputValueError(f"`method` must be one of {list(METHODS)}, got {method!r}.")
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise InputValueError(f"`solver` must be one of {list(SOLVERS)}, got {solver!r}.")
    max_steps = check_count("max_steps", max_steps)
    if max_cg_steps is not None:
        max_cg_steps = check_count("max_cg_steps", max_cg_steps)
    check_implicit_options(args, implicit_diff, linear_solver)
    if tol is None:  # SciPy's default, unless it is below the dtype's rounding
        dtype = jnp.result_type(*jax.tree.leaves(params)) if jax.tree.leaves(params) else float
        tol = max(DEFAULT_TOL, 10 * float(jnp.finfo(dtype).eps))
    _check_tolerance("tol", tol)
    tols = [_check_tolerance(name, tol if v is None else v)
            for name, v in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol))]  # fmt: skip
    # one host array (one transfer) unless a tolerance is traced
    tols = jnp.stack(tols) if not is_concrete(tols) else np.asarray(tols, jnp.result_type(float))
    if not any(np.size(leaf) for leaf in jax.tree.leaves(params)):
        raise InputValueError("`params` must hold at least one parameter.")
    if implicit_diff:  # the solution depends on the tolerances only through rounding
        tols = jax.lax.stop_gradient(tols) if isinstance(tols, jax.core.Tracer) else tols
        residual_fn, args = hoist_closure(residual_fn, params, args)

    def solve(params, args):
        return _solve(params, args, tols, residual_fn=residual_fn, method=method,
                      max_steps=max_steps, solver=solver, max_cg_steps=max_cg_steps)  # fmt: skip

    if implicit_diff:
        result = implicit_solve(
            solve, _Cost(residual_fn), params, args, linear_solver=linear_solver
        )
    else:  # JAX cannot transpose the while loop: say what to do before it tries
        result = refuse_reverse_mode(solve(params, args), _REVERSE_MODE_MESSAGE)
    if is_concrete(result.status) and np.ndim(result.status) == 0:
        if np.asarray(result.status) == Status.NONFINITE and int(result.num_steps) == 0:
            raise InputValueError(
                f"residual_fn(params) or its Jacobian is not finite at the starting point "
                f"(cost {float(result.losses[0])}); check the start and the residuals."
            )
    return result


__all__ = ["DENSE_MAX_PARAMS", "DENSE_MAX_SIZE", "LeastSquaresState", "least_squares"]
