"""Box-constrained solvers (jol.lbfgsb, jol.projected_gradient) against SciPy's L-BFGS-B,
in float64.

Compiles dominate this module's time, so the solves share compiled programs: scalar
bounds (a new value reuses the program), one step budget, solves cached per problem.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from conftest import enable_x64

import jaxopt_lab as jol
from jaxopt_lab import loops

P = jol.problems
TOL = 1e-9  # projected-gradient 2-norm at which ours stops
STEPS = 300
SCIPY_OPTIONS = {"gtol": 1e-11, "ftol": 1e-16, "maxiter": 10000}  # SciPy: infinity norm


def _logreg():
    """Digits 3 against 8 with a small ridge and |w_i| <= 0.05 (about 50 of the 64
    weights end on a bound); the intercept is free."""
    prob = P.logistic_regression((3, 8))

    def f(x):
        return prob.loss({"w": x[:64], "b": x[64]}, prob.train) + 5e-3 * jnp.sum(x[:64] ** 2)

    lo = np.r_[np.full(64, -0.05), -np.inf]
    return f, np.zeros(65), lo, -lo


def _nnls():
    """Non-negative least squares, 40 x 15, several coefficients at zero."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 15)), rng.normal(size=40)

    def f(x):
        r = jnp.asarray(a) @ x - jnp.asarray(b)
        return 0.5 * jnp.sum(r * r)

    return f, np.ones(15), 0.0, np.inf


# Rosenbrock from its standard start, which lies outside each box (projected first);
# the boxes cut off the minimizer (1, ..., 1). Scalar bounds, broadcast.
ROSENBROCK = {"rosenbrock2": (2, -0.5, 0.8), "rosenbrock10": (10, 0.3, 0.8),
              "rosenbrock100": (100, -0.5, 0.8)}  # fmt: skip
PROBLEMS = [*ROSENBROCK, "logreg", "nnls"]


@functools.lru_cache(maxsize=None)
def _problem(name):
    if name in ROSENBROCK:
        n, lo, hi = ROSENBROCK[name]
        prob = P.rosenbrock(n)
        return prob.fn, np.asarray(prob.x0, np.float64), lo, hi
    return {"logreg": _logreg, "nnls": _nnls}[name]()


def _scipy(f, x0, lo, hi):
    grad, value = jax.jit(jax.grad(f)), jax.jit(f)
    n = x0.size
    bounds = list(zip(np.broadcast_to(lo, n), np.broadcast_to(hi, n), strict=True))
    return scipy.optimize.minimize(
        lambda x: float(value(x)), x0, jac=lambda x: np.asarray(grad(x)), method="L-BFGS-B",
        bounds=bounds, options=SCIPY_OPTIONS,
    )  # fmt: skip


def _active(x, lo, hi):
    x = np.asarray(x)
    return (x == np.broadcast_to(lo, x.shape)) | (x == np.broadcast_to(hi, x.shape))


@functools.lru_cache(maxsize=None)
def _solve(name):
    with enable_x64():
        f, x0, lo, hi = _problem(name)
        res = jol.minimize(f, jnp.asarray(x0), jol.lbfgsb(lower=lo, upper=hi), STEPS, tol=TOL)
        res = jax.tree.map(np.asarray, res)
        ref = _scipy(f, x0, lo, hi)
    return res, ref


@pytest.mark.parametrize("problem", PROBLEMS)
def test_same_solution_and_active_set_as_scipy(problem):
    res, ref = _solve(problem)
    _, _, lo, hi = _problem(problem)
    assert int(res.status) == jol.Status.CONVERGED and res.grad_norm <= TOL
    np.testing.assert_allclose(res.params, ref.x, rtol=0, atol=1e-6)
    active = _active(ref.x, lo, hi)
    assert active.any()  # the bounds matter
    np.testing.assert_array_equal(_active(res.params, lo, hi), active)


# Measured misses of the goals (iterations <= 1.25x SciPy's, function
# evaluations <= 1.5x), kept as strict xfails so that an improvement shows up.
SLOWER: set[str] = set()


@pytest.mark.parametrize("problem", PROBLEMS)
def test_iterations_and_evaluations_near_scipy(problem, request):
    if problem in SLOWER:
        request.applymarker(pytest.mark.xfail(strict=True, reason="measured above the goal"))
    res, ref = _solve(problem)
    assert int(res.num_steps) <= 1.25 * ref.nit, (int(res.num_steps), ref.nit)
    assert int(res.num_fun_evals) <= 1.5 * ref.nfev, (int(res.num_fun_evals), ref.nfev)


def test_grad_norms_are_projected_gradient_norms():
    """At a bounded solution the gradient is not small; the reported norm is
    ||P(x - g) - x||, which is."""
    res, _ = _solve("rosenbrock10")
    f, _, lo, hi = _problem("rosenbrock10")
    with enable_x64():
        x = jnp.asarray(res.params)
        g = jax.grad(f)(x)
        projected = float(jnp.linalg.norm(jnp.clip(x - g, lo, hi) - x))
        assert float(jnp.linalg.norm(g)) > 1.0
        # both at rounding level: ||P(x - g) - x|| cancels there
        assert res.grad_norm <= TOL and projected <= TOL
    assert res.grad_norms[0] > res.grad_norm


def test_infinite_bounds_follow_lbfgs():
    """Without bounds the Cauchy point and subspace step give L-BFGS's direction (the
    same H_0 = s'y / y'y I, the same first steps), so the two runs take the same
    iterations: equal up to rounding, which the forms of the matrix (here, n <= 2m, the
    dense BFGS recursion) and the two-loop recursion round differently; in Rosenbrock's
    curved valley the rounding grows for a few iterations, hence the tolerances."""
    res, _ = _solve("rosenbrock10")  # compiles the program reused below
    f, x0, _, _ = _problem("rosenbrock10")
    with enable_x64():
        ours = jol.minimize(f, jnp.asarray(x0), jol.lbfgsb(), STEPS, tol=TOL)
        theirs = jol.minimize(f, jnp.asarray(x0), jol.lbfgs(), STEPS, tol=TOL)
    assert int(ours.num_steps) == int(theirs.num_steps)
    np.testing.assert_allclose(ours.params, theirs.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.losses[:30], theirs.losses[:30], rtol=1e-9, atol=1e-10)
    assert int(ours.num_fun_evals) == int(theirs.num_fun_evals)


@pytest.mark.parametrize("pairs", [3, 13])  # memory partly full; full, oldest dropped
def test_dense_and_compact_forms_agree(pairs):
    """For n <= 2m the matrix is formed densely (BFGS recursion); it is the compact
    form's theta I - W M W', and the Cauchy point and subspace step agree."""
    from jaxopt_lab import _lbfgsb as L

    n, m = 12, 10
    rng = np.random.default_rng(1)
    with enable_x64():
        mem = L.empty_memory(m, jnp.zeros(n))  # no inner products: n <= 2m ...
        assert mem.sy.shape == (0, 0)
        zeros = jnp.zeros((m, m))
        mem = mem._replace(sy=zeros, ss=zeros)  # ... but the compact form needs them
        for _ in range(pairs):
            s = rng.normal(size=n)
            mem = L.remember(mem, jnp.asarray(s), jnp.asarray(2 * s + 0.3 * rng.normal(size=n)))
        wt, big_m = L.compact_form(mem)
        w_dense, dense_m = L.dense_form(mem)
        assert w_dense is None  # W = I
        np.testing.assert_allclose(dense_m, wt.T @ big_m @ wt, rtol=1e-10, atol=1e-10)
        x, g = jnp.asarray(rng.uniform(-1, 1, n)), jnp.asarray(rng.normal(size=n))
        lo, hi = jnp.full(n, -0.9), jnp.full(n, 0.9)
        ref = L.cauchy_point(x, g, lo, hi, wt, big_m, mem.theta)
        cp = L.cauchy_point(x, g, lo, hi, w_dense, dense_m, mem.theta)
        np.testing.assert_allclose(cp[0], ref[0], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(cp[2], ref[2])
        assert 0 < int(jnp.sum(~ref[2])) < n  # some variables hit a bound on the path
        np.testing.assert_allclose(
            L.dense_subspace_point(x, g, lo, hi, *cp, mem.theta, dense_m),
            L.subspace_point(x, g, lo, hi, *ref, mem, wt, big_m), rtol=0, atol=1e-10,
        )  # fmt: skip


def test_new_bound_values_reuse_the_compiled_program():
    _solve("rosenbrock2")
    f, x0, _, _ = _problem("rosenbrock2")
    before = loops._minimize._cache_size()
    with enable_x64():
        for lo, hi in [(-0.4, 0.7), (0.0, 0.5), (-np.inf, np.inf)]:
            res = jol.minimize(f, jnp.asarray(x0), jol.lbfgsb(lower=lo, upper=hi), STEPS, tol=TOL)
            assert bool(res.converged)
            assert np.all((res.params >= lo) & (res.params <= hi))
    assert loops._minimize._cache_size() == before


def test_bounds_respected_at_every_iterate():
    f, x0, lo, hi = _problem("rosenbrock2")
    with enable_x64():
        path = np.asarray(jol.trajectory(f, jnp.asarray(x0), jol.lbfgsb(lower=lo, upper=hi), 25))
    np.testing.assert_array_equal(path[0], np.clip(x0, lo, hi))  # projected first
    assert np.all((path >= lo) & (path <= hi))
    assert np.any(path == hi)


def test_vmap_over_starts_and_bounds():
    """One vmapped call over (start, upper bound) pairs equals the solves one by one."""
    f, _, lo, _ = _problem("rosenbrock2")
    starts = np.array([[-1.2, 1.0], [0.5, -0.3], [2.0, 2.0], [-0.1, 0.1]])
    uppers = np.array([0.8, 0.6, 0.9, np.inf])
    with enable_x64():

        def solve(x, hi):
            return jol.minimize(f, x, jol.lbfgsb(lower=lo, upper=hi), STEPS, tol=TOL)

        batch = jax.jit(jax.vmap(solve))(jnp.asarray(starts), jnp.asarray(uppers))
        for i in range(len(starts)):
            one = jol.minimize(f, jnp.asarray(starts[i]), jol.lbfgsb(lower=lo, upper=float(uppers[i])),
                               STEPS, tol=TOL)  # fmt: skip
            np.testing.assert_allclose(batch.params[i], one.params, rtol=0, atol=1e-9)
            assert int(batch.status[i]) == jol.Status.CONVERGED
        batch = jax.tree.map(np.asarray, batch)
    assert np.all(batch.params <= uppers[:, None]) and np.all(batch.params >= lo)
    np.testing.assert_allclose(batch.params[-1], [1.0, 1.0], atol=1e-6)  # unbounded above


def test_status_codes():
    f, x0, lo, hi = _problem("rosenbrock2")
    with enable_x64():
        x = jnp.asarray(x0)
        opt = jol.lbfgsb(lower=lo, upper=hi)
        done = jol.minimize(f, x, opt, STEPS, tol=TOL)
        stuck = jol.minimize(f, x, opt, STEPS, tol=0.0)  # same program: tol is traced
        budget = jol.minimize(f, x, opt, 3, tol=TOL)
    assert int(done.status) == jol.Status.CONVERGED and bool(done.converged)
    assert int(stuck.status) == jol.Status.NO_PROGRESS and not bool(stuck.converged)
    np.testing.assert_allclose(stuck.params, done.params, atol=1e-8)
    assert int(budget.status) == jol.Status.MAX_STEPS and int(budget.num_steps) == 3


def test_projected_gradient_against_scipy():
    """Armijo along the projection arc from Barzilai-Borwein steps, on the NNLS."""
    _, ref = _solve("nnls")
    f, x0, lo, hi = _problem("nnls")
    with enable_x64():
        opt = jol.projected_gradient(jol.projection_box, projection_args=(lo, hi))
        res = jol.minimize(f, jnp.asarray(x0), opt, STEPS, tol=TOL)
    assert int(res.status) == jol.Status.CONVERGED
    np.testing.assert_allclose(res.params, ref.x, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(_active(res.params, lo, hi), _active(ref.x, lo, hi))


def _unit_ball(x, radius):
    return x * jnp.minimum(1.0, radius / jnp.linalg.norm(x))


def test_projected_gradient_fixed_step_any_projection():
    """A fixed step onto a ball: the solution of min ||x - c||^2, ||x|| <= r is r c / ||c||."""
    c = jnp.array([3.0, 4.0])
    opt = jol.projected_gradient(_unit_ball, 0.25, projection_args=(2.0,))
    res = jol.minimize(lambda x: jnp.sum((x - c) ** 2), jnp.array([0.0, -5.0]), opt, 60, tol=1e-5)
    assert int(res.status) == jol.Status.CONVERGED
    np.testing.assert_allclose(res.params, 2.0 * c / 5.0, atol=1e-5)
    assert res.grad_norms[0] > 1.0  # measured at the projected start


def test_projection_box_matches_optax():
    tree = {"a": jnp.array([-2.0, 0.5, 3.0]), "b": jnp.array(7.0)}
    lower = {"a": jnp.array([0.0, 0.0, 1.0]), "b": jnp.array(-1.0)}
    upper = {"a": jnp.array([1.0, 1.0, 2.0]), "b": jnp.array(1.0)}
    ours = jol.projection_box(tree, lower, upper)
    theirs = optax.projections.projection_box(tree, lower, upper)
    jax.tree.map(np.testing.assert_array_equal, ours, theirs)
    np.testing.assert_array_equal(jol.projection_box(tree, 0.0, 1.0)["a"], [0.0, 0.5, 1.0])


def test_tree_bounds():
    """Bounds as a pytree of the params' structure, leaves scalars or arrays. (Traced
    bounds, validated only when concrete, are covered by the vmap test.)"""
    params = {"w": jnp.array([3.0, -3.0]), "b": jnp.array(0.0)}

    def f(p):
        return jnp.sum((p["w"] - 2.0) ** 2) + (p["b"] + 5.0) ** 2

    opt = jol.lbfgsb(lower={"w": jnp.array([-1.0, 0.5]), "b": -1.0}, upper={"w": 1.0, "b": 1.0})
    res = jol.minimize(f, params, opt, 50, tol=1e-6)
    np.testing.assert_allclose(res.params["w"], [1.0, 1.0])
    np.testing.assert_allclose(res.params["b"], -1.0)
    assert int(res.status) == jol.Status.CONVERGED


@pytest.mark.parametrize(
    ("make", "exc", "names"),
    [
        (lambda: jol.lbfgsb(lower=1.0, upper=0.0), jol.InputValueError, "`lower`"),
        (lambda: jol.lbfgsb(lower=jnp.array([0.0, 2.0]), upper=jnp.array([1.0, 1.0])),
         jol.InputValueError, "`lower`"),
        (lambda: jol.lbfgsb(lower=jnp.array([0, 1])), jol.InputTypeError, "`lower`"),
        (lambda: jol.lbfgsb(upper="1"), jol.InputTypeError, "`upper`"),
        (lambda: jol.lbfgsb(upper=True), jol.InputTypeError, "`upper`"),
        (lambda: jol.lbfgsb(lower=float("nan")), jol.InputValueError, "`lower`"),
        (lambda: jol.lbfgsb(lower=np.inf), jol.InputValueError, "`lower`"),
        (lambda: jol.lbfgsb(memory_size=0), jol.InputValueError, "`memory_size`"),
        (lambda: jol.lbfgsb(memory_size=2.5), jol.InputTypeError, "`memory_size`"),
        (lambda: jol.projected_gradient(None), jol.InputTypeError, "`projection`"),
        (lambda: jol.projected_gradient(jol.projection_box, projection_args=(1.0, 0.0)),
         jol.InputValueError, "`lower`"),
        (lambda: jol.projected_gradient(_unit_ball, -1.0), jol.InputValueError, "`learning_rate`"),
    ],
)  # fmt: skip
def test_bad_input_raises_before_tracing(make, exc, names):
    with pytest.raises(exc, match=names):
        make()


def test_bound_tree_not_matching_params():
    f = lambda p: jnp.sum(p["w"] ** 2)  # noqa: E731
    params = {"w": jnp.ones(3)}
    with pytest.raises(jol.InputValueError, match="`lower`.*structure"):
        jol.minimize(f, params, jol.lbfgsb(lower={"v": 0.0}), 5)
    with pytest.raises(jol.InputValueError, match="`upper`.*shape"):
        jol.minimize(f, params, jol.lbfgsb(upper={"w": jnp.ones(4)}), 5)


def test_a_one_leaf_tree_is_not_a_scalar_bound():
    """``{"b": 1.0}`` names one leaf: against params with two it is a mismatch, not a
    bound for every leaf (a misspelt key must not clamp everything)."""
    params = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    with pytest.raises(jol.InputValueError, match="`lower`"):
        jol.projection_box(params, {"b": 1.0}, 2.0)
    with pytest.raises(jol.InputValueError, match="`lower`"):
        jol.minimize(lambda p: jnp.sum(p["b"] ** 2), params, jol.lbfgsb(lower={"b": 0.0}), 5)


def test_a_loss_that_promotes_to_float64_keeps_float32_params():
    """With x64 on, a loss closing over a float64 constant returns float64 for float32
    params; the solvers evaluate it in the params' dtype."""
    with enable_x64():
        target = jnp.arange(4.0)  # float64

        def f(x):
            return jnp.sum((x - target) ** 2)

        x0 = jnp.zeros(4, jnp.float32)
        for opt in (jol.lbfgsb(lower=0.0, upper=1.5),
                    jol.projected_gradient(jol.projection_box, projection_args=(0.0, 1.5))):  # fmt: skip
            res = jol.minimize(f, x0, opt, 100, tol=1e-5)
            assert res.params.dtype == jnp.float32
            np.testing.assert_allclose(res.params, [0.0, 1.0, 1.5, 1.5], atol=1e-5)


def test_subspace_point_needs_a_clearly_downhill_projection():
    """Morales-Nocedal: the projected Newton point is taken only when it is downhill from
    x; one whose slope is rounding (here -1e-14 against |g||d| ~ 0.4) would leave the
    line search nothing to find, so the point backtracked onto the box is taken."""
    from jaxopt_lab import _lbfgsb as L

    with enable_x64():
        x, g = jnp.zeros(2), jnp.array([-1.0, 1.0])
        lo, hi = jnp.array([-1.0, -1.0]), jnp.array([0.2, 1.0])
        x_cp = jnp.array([0.1, -0.1])  # along -g
        d_u = jnp.array([1.0, 0.3 - 1e-14])
        projected = jnp.clip(x_cp + d_u, lo, hi)
        slope = float(g @ (projected - x))
        assert -1e-13 < slope < 0  # downhill, by rounding only
        np.testing.assert_allclose(L._in_box(x, g, lo, hi, x_cp, d_u), [0.2, -0.07], atol=1e-15)
        # a clearly downhill projection is kept
        d_u = jnp.array([1.0, -0.5])
        np.testing.assert_array_equal(L._in_box(x, g, lo, hi, x_cp, d_u), [0.2, -0.6])


def test_a_sweep_records_the_projected_gradient_norm_as_minimize_does():
    # (a sweep member's carry is wrapped for divergence checks; its record once read the
    # plain gradient norm, 0.4 at this solution on a bound, where minimize reads ~0)
    f, x0 = jol.problems.rosenbrock(2).fn, jnp.array([-1.2, 1.0])
    res = jol.sweep(lambda learning_rate: jol.lbfgsb(lower=-0.5, upper=0.8), f, x0, [0.1], steps=40)
    one = jol.minimize(f, x0, jol.lbfgsb(lower=-0.5, upper=0.8), 40)
    np.testing.assert_array_equal(res.grad_norms[0], one.grad_norms)
    assert float(one.grad_norms[-1]) < 1e-4
