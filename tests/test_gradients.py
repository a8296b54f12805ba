"""numerical_grad and check_grad against jax.grad and known derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import enable_x64 as x64
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxopt_lab as jol


def nested_loss(p):
    return (
        jnp.sum(jnp.sin(p["a"]) * p["b"][0] ** 3)
        + jnp.exp(p["a"][0])
        + jnp.sum(jnp.tanh(p["b"][1] @ p["a"]))
    )


def nested_params(dtype):
    return {
        "a": jnp.array([0.3, -1.2], dtype),
        "b": (jnp.array(2.0, dtype), jnp.array([[0.5, -0.25], [1.5, 0.1], [0.0, 2.0]], dtype)),
    }


def test_numerical_grad_matches_jax_grad_in_float64_on_a_pytree():
    with x64():
        params = nested_params(jnp.float64)
        num = jol.numerical_grad(nested_loss, params)
        ad = jax.grad(nested_loss)(params)
        assert jax.tree.structure(num) == jax.tree.structure(params)
        for n, a in zip(jax.tree.leaves(num), jax.tree.leaves(ad), strict=True):
            assert n.dtype == jnp.float64 and n.shape == a.shape
            np.testing.assert_allclose(n, a, rtol=1e-6, atol=1e-9)
        assert jol.check_grad(nested_loss, params) < 1e-6


def test_numerical_grad_known_derivative_of_seed_function():
    with x64():
        x = jnp.array([5.0, -1.1105, 0.0])
        num = jol.numerical_grad(lambda x: jnp.sum(x**2 + 5 * jnp.sin(x)), x)
        np.testing.assert_allclose(num, 2 * x + 5 * jnp.cos(x), rtol=1e-9, atol=1e-9)


def test_check_grad_catches_a_wrong_gradient():
    with x64():
        params = nested_params(jnp.float64)
        good = jax.grad(nested_loss)
        wrong = lambda p: jax.tree.map(lambda g: g * 1.01, good(p))  # noqa: E731
        assert jol.check_grad(nested_loss, params, grad_fn=good) < 1e-6
        assert jol.check_grad(nested_loss, params, grad_fn=wrong) == pytest.approx(0.01, rel=0.05)


def test_float32_is_coarse_as_documented():
    params = nested_params(jnp.float32)
    err = jol.check_grad(nested_loss, params)
    assert 1e-7 < err < 1e-2


@settings(max_examples=8, deadline=None)
@given(
    st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=6),
    st.floats(0.5, 2.0),
)
def test_check_grad_small_for_smooth_functions(xs, scale):
    with x64():
        x = jnp.array(xs, jnp.float64)
        f = lambda x: jnp.sum(jnp.cos(scale * x) + x**3 / 3) + jnp.prod(jnp.tanh(x))  # noqa: E731
        assert jol.check_grad(f, x) < 1e-6


def test_mixed_dtypes_and_empty_leaves_keep_their_structure():
    params = {"w": jnp.ones(3, jnp.float32), "empty": jnp.zeros((0,), jnp.float32), "none": None}
    g = jol.numerical_grad(lambda p: jnp.sum(p["w"] ** 2), params)
    assert g["none"] is None and g["empty"].shape == (0,)
    np.testing.assert_allclose(g["w"], 2 * np.ones(3), rtol=1e-3)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: jol.check_grad(lambda x: x, jnp.zeros(2)), ValueError, "scalar"),
        (lambda: jol.numerical_grad(lambda x: x * 2, jnp.zeros(2)), ValueError, "scalar"),
        (
            lambda: jol.numerical_grad(lambda x: jnp.sum(x), jnp.zeros(2), eps=0.0),
            ValueError,
            "eps",
        ),
        (lambda: jol.numerical_grad(lambda x: jnp.sum(x), jnp.arange(2)), TypeError, "params"),
        (lambda: jol.check_grad("f", jnp.zeros(2)), TypeError, "f"),
    ],
    ids=["check-non-scalar", "numerical-non-scalar", "eps-zero", "int-params", "not-callable"],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
