"""Derivatives of a solve: ``jol.minimize(..., args=, implicit_diff=True)`` against closed
forms (ridge regression) and central differences of the solve (logistic regression),
under jit and vmap; the clear error that reverse mode through a while loop gets without
it; and the derivatives that worked before (unrolled fixed steps, forward mode), kept.
All in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import enable_x64

import jaxopt_lab as jol
from jaxopt_lab import implicit, loops
from jaxopt_lab.implicit import ReverseModeError


@pytest.fixture(autouse=True)
def x64():
    with enable_x64():
        yield


def ridge_data():
    kx, ky = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(kx, (30, 4)), jax.random.normal(ky, (30,))


def ridge(w, lam, data):
    x, y = data
    return 0.5 * jnp.sum((x @ w - y) ** 2) + 0.5 * lam * jnp.sum(w**2)


def ridge_closed_form(lam, data):
    """x*(lam) = (X^T X + lam I)^{-1} X^T y."""
    x, y = data
    return jnp.linalg.solve(x.T @ x + lam * jnp.eye(x.shape[1]), x.T @ y)


def score(w):  # a scalar function of the solution, nonlinear so the test sees all of it
    return jnp.sum(jnp.sin(w) * jnp.arange(1.0, w.size + 1))


def ridge_solve(lam, optimizer, tol=1e-11, steps=200, **kw):
    data = ridge_data()
    return jol.minimize(
        ridge, jnp.zeros(4), optimizer, steps, tol=tol, args=(lam, data), implicit_diff=True, **kw
    )


OPTIMIZERS = {"lbfgs": jol.lbfgs, "sgd+tol": lambda: jol.sgd(0.02)}


# ---------------------------------------------------------------- against closed forms


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_ridge_gradient_matches_the_closed_form(name):
    opt = OPTIMIZERS[name]()

    def through_solve(lam):
        res = ridge_solve(lam, opt)
        return score(res.params), res.converged

    (value, converged), grad = jax.value_and_grad(through_solve, has_aux=True)(0.7)
    want = jax.grad(lambda lam: score(ridge_closed_form(lam, ridge_data())))(0.7)
    assert bool(converged)
    np.testing.assert_allclose(value, score(ridge_closed_form(0.7, ridge_data())), rtol=1e-10)
    np.testing.assert_allclose(grad, want, rtol=1e-8, atol=1e-12)


def test_gradient_wrt_data_arrays_and_final_loss():
    """Args may be any pytrees (here the data too); the final loss's derivative is the
    envelope theorem's d f(x*, lam)/d lam = |x*|^2 / 2."""
    data = ridge_data()

    def final_loss(lam, data):
        res = jol.minimize(ridge, jnp.zeros(4), jol.lbfgs(), 200, tol=1e-11, args=(lam, data),
                           implicit_diff=True)  # fmt: skip
        assert res.losses.shape == (200,)
        return res.losses[-1]

    g_lam, g_data = jax.grad(final_loss, argnums=(0, 1))(0.7, data)
    w = ridge_closed_form(0.7, data)
    np.testing.assert_allclose(g_lam, 0.5 * jnp.sum(w**2), rtol=1e-8)
    want = jax.grad(lambda d: ridge(ridge_closed_form(0.7, d), 0.7, d))(data)
    for a, b in zip(g_data, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_a_value_the_loss_closes_over_is_differentiated_like_an_arg():
    """lam captured by the loss's closure (not passed in `args`), under jax.grad, jacfwd,
    and a vmap of the gradient: the same derivatives as the closed form (the closure's
    JVP tracer is made an argument of the rule; it once leaked out of the solve)."""
    opt, data = jol.sgd(0.02), ridge_data()

    def solve(lam):
        loss = lambda w: ridge(w, lam, data)  # noqa: E731
        return jol.minimize(loss, jnp.zeros(4), opt, 200, tol=1e-11, implicit_diff=True).params

    def want(lam):
        return score(ridge_closed_form(lam, data))

    np.testing.assert_allclose(jax.grad(lambda lam: score(solve(lam)))(0.7), jax.grad(want)(0.7),
                               rtol=1e-8)  # fmt: skip
    np.testing.assert_allclose(jax.jacfwd(solve)(0.7),
                               jax.jacfwd(lambda lam: ridge_closed_form(lam, data))(0.7), rtol=1e-8)  # fmt: skip
    lams = jnp.array([0.1, 5.0])
    np.testing.assert_allclose(jax.vmap(jax.grad(lambda lam: score(solve(lam))))(lams),
                               jax.vmap(jax.grad(want))(lams), rtol=1e-8)  # fmt: skip


def test_vmap_over_args_and_jit():
    lams = jnp.array([0.1, 1.0, 5.0])
    opt = jol.sgd(0.02)  # a quasi-Newton solve compiles slowly; it is checked above
    grad = jax.grad(lambda lam: score(ridge_solve(lam, opt).params))
    want = jax.vmap(jax.grad(lambda lam: score(ridge_closed_form(lam, ridge_data()))))(lams)
    np.testing.assert_allclose(jax.jit(jax.vmap(grad))(lams), want, rtol=1e-8)
    # forward mode, a Jacobian of the whole solution, by the same rule
    jac = jax.jacfwd(lambda lam: ridge_solve(lam, opt).params)(1.0)
    want_jac = jax.jacfwd(lambda lam: ridge_closed_form(lam, ridge_data()))(1.0)
    np.testing.assert_allclose(jac, want_jac, rtol=1e-8)


def test_aux_moves_with_the_solution_and_nothing_flows_to_the_start():
    def with_aux(w, lam, data):
        return ridge(w, lam, data), data[0] @ w  # the fitted values

    def run(w0, lam):
        return jol.minimize(with_aux, w0, jol.sgd(0.02), 200, tol=1e-11, has_aux=True,
                            args=(lam, ridge_data()), implicit_diff=True)  # fmt: skip

    g_w0, g_lam = jax.grad(lambda w0, lam: jnp.sum(run(w0, lam).aux ** 2), (0, 1))(jnp.ones(4), 0.7)
    want = jax.grad(
        lambda lam: jnp.sum((ridge_data()[0] @ ridge_closed_form(lam, ridge_data())) ** 2)
    )
    np.testing.assert_allclose(g_lam, want(0.7), rtol=1e-8)
    np.testing.assert_array_equal(g_w0, jnp.zeros(4))


def test_a_linear_solver_of_ones_own():
    calls = []

    def dense(matvec, b):  # H from n products, then a direct solve
        calls.append(b.shape)
        h = jax.vmap(matvec)(jnp.eye(b.size))
        return jnp.linalg.solve(h, b)

    grad = jax.grad(lambda lam: score(ridge_solve(lam, jol.lbfgs(), linear_solver=dense).params))
    want = jax.grad(lambda lam: score(ridge_closed_form(lam, ridge_data())))(0.7)
    np.testing.assert_allclose(grad(0.7), want, rtol=1e-8)
    assert calls  # it was used


# ---------------------------------------------------------------- against finite differences


def logistic_data():
    kx, kw = jax.random.split(jax.random.PRNGKey(3))
    x = jax.random.normal(kx, (60, 3))
    y = (x @ jnp.array([1.5, -2.0, 0.5]) + 0.3 * jax.random.normal(kw, (60,)) > 0).astype(float)
    return x, y


def logistic(w, strength, data):
    x, y = data
    z = x @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * strength * jnp.sum(w**2)


def test_logistic_regression_gradient_matches_central_differences_of_the_solve():
    data, w0 = logistic_data(), jnp.zeros(3)

    def held_out_loss(strength):
        res = jol.minimize(logistic, w0, jol.sgd(1.0), 1000, tol=1e-13, args=(strength, data),
                           implicit_diff=True)  # fmt: skip
        assert bool(res.converged)
        return logistic(res.params, 0.0, (data[0] * 1.1, data[1]))

    strength, h = 0.05, 1e-4
    grad = jax.grad(held_out_loss)(strength)
    # two more solves in the same compiled program
    numeric = (held_out_loss(strength + h) - held_out_loss(strength - h)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)


# ---------------------------------------------------------------- without implicit_diff


def ridge_no_implicit(lam, optimizer, tol):
    return jol.minimize(ridge, jnp.zeros(4), optimizer, 200, tol=tol, args=(lam, ridge_data()))


@pytest.mark.parametrize(
    "optimizer, tol", [(jol.sgd(0.02), 1e-9), (jol.lbfgs(), None)], ids=["sgd+tol", "lbfgs"]
)
def test_reverse_mode_through_a_while_loop_names_the_option(optimizer, tol):
    def f(lam):
        return score(ridge_no_implicit(lam, optimizer, tol).params)

    # eagerly, staged in the caller's jit, and staged before jax.grad sees it (the
    # solve's program compiles for the last two; quasi-Newton ones compile slowly)
    ways = [jax.jit(jax.grad(f))]
    if tol is not None:
        ways += [jax.grad(f), jax.grad(jax.jit(f))]
    for g in ways:
        with pytest.raises(ReverseModeError, match=r"implicit_diff=True") as err:
            g(0.7)
        assert isinstance(err.value, jol.InputError)


def test_forward_mode_through_a_while_loop_still_works():
    """No implicit_diff: jvp differentiates the iterations themselves (a converged run
    agrees with the implicit derivative)."""

    def f(lam):
        return score(ridge_no_implicit(lam, jol.sgd(0.02), 1e-11).params)

    want = jax.grad(lambda lam: score(ridge_closed_form(lam, ridge_data())))(0.7)
    np.testing.assert_allclose(jax.jvp(f, (0.7,), (1.0,))[1], want, rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(f)(0.7), want, rtol=1e-6)


def test_grad_through_fixed_steps_is_the_unrolled_hypergradient():
    data = ridge_data()

    def through_minimize(lr, lam):
        res = jol.minimize(ridge, jnp.zeros(4), jol.sgd(lr), 50, args=(lam, data))
        return score(res.params)

    def by_hand(lr, lam):
        def step(w, _):
            return w - lr * jax.grad(ridge)(w, lam, data), None

        return score(jax.lax.scan(step, jnp.zeros(4), None, length=50)[0])

    got = jax.grad(through_minimize, (0, 1))(0.01, 0.7)
    want = jax.grad(by_hand, (0, 1))(0.01, 0.7)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_new_args_reuse_the_compiled_program():
    data = ridge_data()

    def run(lam):
        return jol.minimize(ridge, jnp.zeros(4), jol.sgd(0.02), 200, tol=1e-11, args=(lam, data))

    first = run(0.5)
    before = loops._minimize._cache_size()
    second = run(2.0)
    assert loops._minimize._cache_size() == before
    assert not np.allclose(first.params, second.params)
    np.testing.assert_allclose(second.params, ridge_closed_form(2.0, data), rtol=1e-6)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        ({"args": [0.7]}, jol.InputTypeError, "`args` must be a tuple"),
        ({"args": (0.7,), "implicit_diff": "yes"}, jol.InputTypeError, "`implicit_diff`"),
        ({"args": (0.7,), "linear_solver": implicit.conjugate_gradient()}, jol.InputValueError,
         "`linear_solver`"),
        ({"args": (0.7,), "implicit_diff": True, "linear_solver": 3}, jol.InputTypeError,
         "`linear_solver`"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(kw, exc, match):
    def f(w, lam):
        return jnp.sum(w**2) * lam

    with pytest.raises(exc, match=match):
        jol.minimize(f, jnp.zeros(2), jol.lbfgs(), 10, **kw)


def test_second_derivatives_reverse_over_reverse_and_forward():
    """The rule's own tangent is differentiated again (not the solve's while loop), so
    jax.grad(jax.grad(...)) works and equals forward-over-reverse."""
    with enable_x64():

        def solution_sum(a):
            def loss(w, a):
                return jnp.sum((w - a) ** 2) + jnp.sum(w**4)

            res = jol.minimize(loss, jnp.zeros(2), jol.lbfgs(), 50, tol=1e-10, args=(a,),
                               implicit_diff=True)  # fmt: skip
            return res.params.sum()

        # w* solves 2(w - a) + 4 w^3 = 0: dw/da = 2 / (2 + 12 w^2), d2w/da2 by the chain rule
        w = jnp.asarray(0.5897545123014584)  # the root of 2(w - 1) + 4 w^3
        first = 2.0 / (2.0 + 12.0 * w**2)
        second = -24.0 * w * first**3 / 2.0
        reverse = jax.grad(jax.grad(solution_sum))(1.0)
        np.testing.assert_allclose(reverse, 2 * second, rtol=1e-8)
        np.testing.assert_allclose(jax.jacfwd(jax.grad(solution_sum))(1.0), reverse, rtol=1e-10)


def test_bounded_solvers_refuse_implicit_diff():
    """At an active bound the gradient is not zero: the rule would be wrong, so it is
    refused (not silently applied) for solvers with a projection."""
    for opt in (jol.lbfgsb(upper=1.0),
                jol.projected_gradient(jol.projection_box, projection_args=(0.0, 1.0))):  # fmt: skip
        with pytest.raises(jol.InputValueError, match="implicit_diff"):
            jol.minimize(lambda x, a: jnp.sum((x - a) ** 2), jnp.zeros(2), opt, 20, tol=1e-6,
                         args=(jnp.array([0.5, 2.0]),), implicit_diff=True)  # fmt: skip
