"""``jol.least_squares``: Levenberg-Marquardt and Gauss-Newton against known minimisers
and ``scipy.optimize.least_squares(method="lm")`` (MINPACK), in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from conftest import enable_x64

import jaxopt_lab as jol
from jaxopt_lab._iterate import Status

# --------------------------------------------------------------------------------------
# Problems: residual functions of (params, t, y), written for jnp and np alike
# --------------------------------------------------------------------------------------


def _exp_decay(p, t, y, xp=jnp):
    return p[0] * xp.exp(-p[1] * t) + p[2] - y


def _gaussian(p, t, y, xp=jnp):
    return p[0] * xp.exp(-((t - p[1]) ** 2) / (2 * p[2] ** 2)) + p[3] - y


def _rational(p, t, y, xp=jnp):
    return (p[0] + p[1] * t) / (1 + p[2] * t) - y


MEYER_T = 45.0 + 5.0 * np.arange(1, 17)
MEYER_Y = np.array([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005,
                    5147, 4427, 3820, 3307, 2872], float)  # fmt: skip


def _meyer(p, t, y, xp=jnp):
    """Meyer's thermistor model (MGH problem 10): badly scaled, Moré's scaling matters."""
    return p[0] * xp.exp(p[1] / (t + p[2])) - y


def _jennrich_sampson(p, xp=jnp):
    """MGH problem 6: a large-residual problem (minimal cost 62.18)."""
    i = np.arange(1.0, 11.0)
    return 2 + 2 * i - (xp.exp(i * p[0]) + xp.exp(i * p[1]))


def _rosenbrock(p, xp=jnp):
    return xp.stack([10 * (p[1] - p[0] ** 2), 1 - p[0]])


def _data(name, seed=0):
    """(residual_fn, args, x0): synthetic data with fixed seeds, NIST-style models."""
    rng = np.random.default_rng(seed)
    if name == "exp_decay":
        t = np.linspace(0, 5, 40)
        y = 3 * np.exp(-1.2 * t) + 0.5 + 0.02 * rng.standard_normal(t.size)
        return _exp_decay, (t, y), np.array([1.0, 0.5, 0.0])
    if name == "meyer":
        return _meyer, (MEYER_T, MEYER_Y), np.array([0.02, 4000.0, 250.0])
    if name == "gaussian":
        t = np.linspace(-5, 5, 60)
        y = 2 * np.exp(-((t - 0.7) ** 2) / (2 * 1.3**2)) + 0.1 + 0.02 * rng.standard_normal(t.size)
        return _gaussian, (t, y), np.array([1.0, 0.0, 1.0, 0.0])
    t = np.linspace(0, 10, 50)
    y = (1 + 2 * t) / (1 + 0.5 * t) + 0.01 * rng.standard_normal(t.size)
    return _rational, (t, y), np.array([0.5, 1.0, 1.0])


def _scipy(fn, args, x0):
    jac = jax.jit(jax.jacfwd(lambda p: fn(p, *args)))
    return scipy.optimize.least_squares(
        lambda p: fn(p, *args, xp=np), x0, jac=lambda p: np.asarray(jac(p)), method="lm"
    )


def _cost(res):
    return 0.5 * float(jnp.sum(res.state.residuals**2))


FITS = ["exp_decay", "gaussian", "rational", "meyer"]
STEPS = 300  # Meyer needs 110 accepted steps; one value shares compiles between tests

# --------------------------------------------------------------------------------------
# Known minimisers
# --------------------------------------------------------------------------------------


def test_linear_least_squares_is_the_lstsq_solution():
    with enable_x64():
        rng = np.random.default_rng(1)
        a, b = rng.standard_normal((30, 5)), rng.standard_normal(30)
        res = jol.least_squares(lambda x, a, b: a @ x - b, jnp.zeros(5), "lm", 50, args=(a, b))
        want = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(res.params, want, rtol=1e-7, atol=1e-9)
        assert int(res.status) == Status.CONVERGED and bool(res.converged)


@pytest.mark.parametrize("method", ["lm", "gauss_newton"])
def test_rosenbrock_residuals_reach_one_one(method):
    with enable_x64():
        res = jol.least_squares(_rosenbrock, jnp.array([-1.2, 1.0]), method)
        np.testing.assert_allclose(res.params, [1.0, 1.0], atol=1e-10)
        assert int(res.status) == Status.CONVERGED
        assert res.message == Status.CONVERGED.message
        # the history: cost before each accepted step, decreasing, then the final cost
        k = int(res.num_steps)
        losses = np.asarray(res.losses)
        assert losses[0] == pytest.approx(0.5 * (4.4**2 + 2.2**2))
        assert np.all(np.diff(losses[: k + 1]) <= 0) and np.all(losses[k:] == losses[k])


# --------------------------------------------------------------------------------------
# Agreement with SciPy's MINPACK
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FITS)
def test_curve_fits_agree_with_scipy_lm(name):
    with enable_x64():
        fn, args, x0 = _data(name)
        ref = _scipy(fn, args, x0)
        for method in ("lm", "gauss_newton"):
            res = jol.least_squares(fn, jnp.asarray(x0), method, STEPS, args=args)
            assert int(res.status) == Status.CONVERGED, method
            assert abs(_cost(res) - ref.cost) <= 1e-8 * ref.cost, method
            np.testing.assert_allclose(res.params, ref.x, rtol=1e-5, err_msg=method)
            if method == "lm":  # the goal: within 1.5x SciPy's evaluations
                assert int(res.num_fun_evals) <= 1.5 * ref.nfev


def test_gauss_newton_that_stalls_says_so_where_lm_goes_on():
    with enable_x64():
        x0 = jnp.array([0.3, 0.4])
        gn = jol.least_squares(_jennrich_sampson, x0, "gauss_newton", 200)
        lm = jol.least_squares(_jennrich_sampson, x0, "lm", 200)
        assert int(lm.status) == Status.CONVERGED and _cost(lm) == pytest.approx(62.1811, 1e-5)
        # backtracking Gauss-Newton creeps with ever shorter steps: no progress, not converged
        assert int(gn.status) == Status.NO_PROGRESS and _cost(gn) > 2 * _cost(lm)


def test_matrix_free_lm_agrees_with_the_dense_one():
    with enable_x64():
        fn, args, x0 = _data("gaussian")
        dense = jol.least_squares(fn, jnp.asarray(x0), "lm", STEPS, args=args)
        cg = jol.least_squares(fn, jnp.asarray(x0), args=args, solver="cg")
        assert int(cg.status) == Status.CONVERGED
        np.testing.assert_allclose(cg.params, dense.params, rtol=1e-7)
        assert _cost(cg) == pytest.approx(_cost(dense), rel=1e-10)


def test_more_params_than_residuals_builds_the_jacobian_by_rows():
    with enable_x64():  # underdetermined: any zero of r is a minimiser
        res = jol.least_squares(lambda x: jnp.stack([x[0] * x[1] - 2.0, x[2] - x[0]]),
                                jnp.ones(3))  # fmt: skip
        assert int(res.status) == Status.CONVERGED
        assert _cost(res) < 1e-20


# --------------------------------------------------------------------------------------
# Pytrees, jit, vmap
# --------------------------------------------------------------------------------------


def test_pytree_params_and_residuals_give_the_flat_solution():
    with enable_x64():
        fn, (t, y), x0 = _data("gaussian")

        def tree_fn(p, t, y):
            flat = jnp.concatenate([p["peak"], jnp.atleast_1d(p["offset"])])
            r = fn(flat, t, y)
            return {"head": r[:20], "tail": (r[20:].reshape(8, 5),)}

        params = {"peak": jnp.asarray(x0[:3]), "offset": jnp.asarray(x0[3])}
        res = jol.least_squares(tree_fn, params, args=(t, y))
        flat = jol.least_squares(fn, jnp.asarray(x0), "lm", STEPS, args=(t, y))
        assert jax.tree.structure(res.params) == jax.tree.structure(params)
        np.testing.assert_allclose(res.params["peak"], flat.params[:3], rtol=1e-12)
        np.testing.assert_allclose(res.params["offset"], flat.params[3], rtol=1e-12)
        assert int(res.num_fun_evals) == int(flat.num_fun_evals)


def test_vmap_over_data_matches_one_solve_per_member_and_jit_works():
    with enable_x64():
        sets = [_data("exp_decay", seed) for seed in range(3)]
        ys = jnp.stack([jnp.asarray(s[1][1]) for s in sets])
        t, x0 = sets[0][1][0], jnp.asarray(sets[0][2])
        ys = ys.at[2, 0].set(jnp.nan)  # a member with bad data is flagged, alone

        @jax.jit
        @jax.vmap
        def solve(y):
            return jol.least_squares(_exp_decay, x0, args=(t, y))

        batch = solve(ys)
        np.testing.assert_array_equal(batch.status, [0, 0, Status.NONFINITE])
        assert list(batch.message[:2]) == [Status.CONVERGED.message] * 2
        for i in range(2):
            one = jol.least_squares(_exp_decay, x0, "lm", STEPS, args=(t, ys[i]))
            np.testing.assert_allclose(batch.params[i], one.params, rtol=1e-10)
            assert int(batch.num_fun_evals[i]) == int(one.num_fun_evals)


# --------------------------------------------------------------------------------------
# Status codes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lm", "gauss_newton"])
def test_budget_reached(method):
    with enable_x64():
        res = jol.least_squares(_rosenbrock, jnp.array([-1.2, 1.0]), method, max_steps=2)
        assert int(res.status) == Status.MAX_STEPS and not bool(res.converged)
        assert int(res.num_steps) == 2 and res.losses.shape == (2,)
        assert res.message == Status.MAX_STEPS.message


def test_a_zero_tolerance_ends_with_no_progress_or_an_exact_zero():
    with enable_x64():
        fn, args, x0 = _data("exp_decay")
        res = jol.least_squares(fn, jnp.asarray(x0), "lm", STEPS, tol=0.0, args=args)
        # a noisy fit has no exact zero: the tests hold at machine precision only
        assert int(res.status) == Status.NO_PROGRESS
        assert abs(_cost(res) - _scipy(fn, args, x0).cost) <= 1e-10


def test_float32_converges_with_the_default_tolerance():
    # 1e-8 is below float32's rounding: the default becomes 10 eps (1.2e-6) there
    fn, (t, y), x0 = _data("exp_decay")
    with enable_x64():
        ref = _scipy(fn, (t, y), x0)
    res = jol.least_squares(fn, jnp.asarray(x0, jnp.float32), args=(t, y))
    assert res.params.dtype == jnp.float32
    assert int(res.status) == Status.CONVERGED
    np.testing.assert_allclose(res.params, ref.x, rtol=1e-4)


def test_a_nan_trial_point_is_a_rejected_step():
    with enable_x64():  # log1p(-x) is NaN beyond x = 1, where the first step (x = 3) goes
        res = jol.least_squares(lambda x: jnp.log1p(-x) + 3.0, jnp.array([0.0]))
        assert int(res.status) == Status.CONVERGED
        np.testing.assert_allclose(res.params, 1 - np.exp(-3.0), rtol=1e-10)
        assert int(res.num_fun_evals) > int(res.num_grad_evals)  # some trial was rejected


# --------------------------------------------------------------------------------------
# Derivatives of the solution
# --------------------------------------------------------------------------------------


def _ridge_problem():
    rng = np.random.default_rng(3)
    a, b = jnp.asarray(rng.standard_normal((30, 4))), jnp.asarray(rng.standard_normal(30))

    def residuals(w, lam):  # ridge regression as least squares: [a w - b; sqrt(lam) w]
        return jnp.concatenate([a @ w - b, jnp.sqrt(lam) * w])

    def closed_form(lam):
        return jnp.linalg.solve(a.T @ a + lam * jnp.eye(4), a.T @ b)

    return residuals, closed_form


@pytest.mark.parametrize("method", ["lm", "gauss_newton"])
def test_implicit_gradient_matches_the_closed_form(method):
    with enable_x64():
        residuals, closed_form = _ridge_problem()

        def solution(lam):
            return jol.least_squares(residuals, jnp.zeros(4), method, 50, 1e-12, args=(lam,),
                                     implicit_diff=True).params  # fmt: skip

        grad = jax.grad(lambda lam: jnp.sum(solution(lam) ** 2))(0.7)
        want = jax.grad(lambda lam: jnp.sum(closed_form(lam) ** 2))(0.7)
        assert abs(float(want)) > 1e-3
        np.testing.assert_allclose(grad, want, rtol=1e-8)
        np.testing.assert_allclose(jax.jacfwd(solution)(0.7), jax.jacfwd(closed_form)(0.7),
                                   rtol=1e-8, atol=1e-14)  # fmt: skip


def test_implicit_gradient_through_a_closure_matches_the_closed_form():
    """lam captured by the residual function's closure, not passed in `args`."""
    with enable_x64():
        residuals, closed_form = _ridge_problem()

        def solution(lam):
            return jol.least_squares(lambda w: residuals(w, lam), jnp.zeros(4), "lm", 50,
                                     1e-12, implicit_diff=True).params  # fmt: skip

        grad = jax.grad(lambda lam: jnp.sum(solution(lam) ** 2))(0.7)
        want = jax.grad(lambda lam: jnp.sum(closed_form(lam) ** 2))(0.7)
        np.testing.assert_allclose(grad, want, rtol=1e-8)


def test_implicit_gradient_of_a_nonlinear_fit_matches_the_solve_s_own_derivatives():
    """d(fitted params)/d(data) of the exponential fit by the implicit rule (which keeps
    the residuals' second-order terms), against forward mode through the iterations (whose derivatives converge more slowly than the iterates: 1e-5) and
    central differences of the solve (the solve is accurate to ~1e-10, so h = 1e-3)."""
    with enable_x64():
        fn, (t, y), x0 = _data("exp_decay")

        def fitted(y, implicit_diff=True):
            return jol.least_squares(fn, jnp.asarray(x0), "lm", STEPS, 1e-13, args=(t, y),
                                     implicit_diff=implicit_diff).params  # fmt: skip

        weights = jnp.array([1.0, -2.0, 0.5])
        grad = jax.grad(lambda y: jnp.vdot(fitted(y), weights))(y)
        forward = jax.jacfwd(lambda y: fitted(y, False))(y)
        np.testing.assert_allclose(grad, weights @ forward, rtol=1e-5, atol=1e-9)
        direction, h = np.random.default_rng(4).standard_normal(y.size), 1e-3
        numeric = (fitted(y + h * direction) - fitted(y - h * direction)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(grad, direction), jnp.vdot(numeric, weights),
                                   rtol=1e-5)  # fmt: skip


def test_reverse_mode_without_implicit_diff_names_the_option():
    with enable_x64():
        residuals, closed_form = _ridge_problem()

        def solution(lam, **kw):
            return jol.least_squares(residuals, jnp.zeros(4), "lm", 50, 1e-12, args=(lam,), **kw)

        with pytest.raises(jol.InputError, match="implicit_diff=True"):
            jax.grad(lambda lam: jnp.sum(solution(lam).params))(0.7)
        # forward mode goes through the loop as it is
        np.testing.assert_allclose(jax.jacfwd(lambda lam: solution(lam).params)(0.7),
                                   jax.jacfwd(closed_form)(0.7), rtol=1e-6, atol=1e-12)  # fmt: skip
        with pytest.raises(jol.InputError, match="linear_solver"):
            solution(0.7, linear_solver=lambda matvec, b: b)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def _ok(p):
    return p - 1.0


BAD = [
    (lambda: jol.least_squares(lambda p: jnp.arange(3), jnp.ones(2)), jol.InputTypeError,
     "residual_fn"),
    (lambda: jol.least_squares(lambda p: "r", jnp.ones(2)), jol.InputTypeError, "residual_fn"),
    (lambda: jol.least_squares(lambda p: None, jnp.ones(2)), jol.InputValueError, "residual_fn"),
    (lambda: jol.least_squares(3.0, jnp.ones(2)), jol.InputTypeError, "residual_fn"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), "newton"), jol.InputValueError, "method"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), max_steps=0), jol.InputValueError, "max_steps"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), max_steps=2.5), jol.InputTypeError, "max_steps"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), tol=-1e-3), jol.InputValueError, "tol"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), gtol=-1.0), jol.InputValueError, "gtol"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), tol="x"), jol.InputTypeError, "tol"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), args=[1]), jol.InputTypeError, "args"),
    (lambda: jol.least_squares(_ok, jnp.ones(2), solver="qr"), jol.InputValueError, "solver"),
    (lambda: jol.least_squares(_ok, jnp.arange(2)), jol.InputTypeError, "params"),
    (lambda: jol.least_squares(lambda p: p / 0.0, jnp.ones(2)), jol.InputValueError,
     "not finite"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, name", BAD)
def test_bad_input_raises_an_input_error_naming_it(call, error, name):
    with pytest.raises(error, match=name):
        call()
