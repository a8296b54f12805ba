"""Schedules against optax at every step of a range that covers all boundaries, eagerly
and under jit with a traced int32 count; schedules are pytrees."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import SCHEDULES, build, fast_jit
from jax import lax

import jaxopt_lab as jol

N = 100  # every case's boundaries lie inside 0..N

CASES = [
    "constant_schedule(0.3)",
    "polynomial_schedule(1.0, 0.1, 2.0, 50, transition_begin=10)",
    "polynomial_schedule(1.0, 0.1, 0.5, 0)",
    "linear_schedule(1.0, 0.1, 50)",
    "linear_schedule(0.0, 1.0, 30, transition_begin=20)",
    "exponential_decay(1.0, 10, 0.5)",
    "exponential_decay(1.0, 10, 0.5, transition_begin=15, staircase=True, end_value=0.1)",
    "exponential_decay(0.1, 10, 2.0, end_value=0.5)",
    "cosine_decay_schedule(1.0, 50)",
    "cosine_decay_schedule(1.0, 50, alpha=0.1, exponent=2.0)",
    "warmup_cosine_decay_schedule(0.0, 1.0, 10, 60)",
    "warmup_cosine_decay_schedule(0.1, 1.0, 10, 60, end_value=0.05, exponent=2.0)",
    "piecewise_constant_schedule(1.0, {10: 0.5, 30: 0.1, 50: 4.0})",
    "piecewise_constant_schedule(0.5)",
    "join_schedules([linear_schedule(0.0, 1.0, 20), constant_schedule(1.0), "
    "cosine_decay_schedule(1.0, 30)], [20, 50])",
]


def _close(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


def _signature(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", SCHEDULES)
def test_signature_matches_optax(name):
    assert _signature(getattr(jol, name)) == _signature(getattr(optax, name))


def test_every_schedule_is_covered():
    assert {name for name in SCHEDULES for case in CASES if f"{name}(" in case} == set(SCHEDULES)


@pytest.mark.parametrize("expr", CASES)
def test_eager_matches_optax(expr):
    ours, ref = build(expr, jol), build(expr, optax)
    ours_values = jnp.stack([jnp.asarray(ours(k)) for k in range(N + 1)])
    _close(ours_values, jnp.stack([jnp.asarray(ref(k)) for k in range(N + 1)]))


@pytest.mark.parametrize("expr", CASES)
def test_jit_with_traced_int32_count(expr):
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    ours = fast_jit(lambda sched, ks: lax.map(sched, ks))(build(expr, jol), counts)
    ref = fast_jit(lambda ks: lax.map(build(expr, optax), ks))(counts)
    _close(ours, ref)


@pytest.mark.parametrize("expr", CASES)
def test_built_inside_jit(expr):
    """Schedules are often built inside a jitted function (from constants)."""
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    ours = fast_jit(lambda ks: lax.map(build(expr, jol), ks))(counts)
    ref = fast_jit(lambda ks: lax.map(build(expr, optax), ks))(counts)
    _close(ours, ref)


@pytest.mark.parametrize(
    "expr",
    [
        "constant_schedule(v)",
        "polynomial_schedule(v, 0.1, 2.0, 50)",
        "linear_schedule(v, 0.1, 50)",
        "exponential_decay(v, 10, 0.5)",
        "cosine_decay_schedule(v, 50)",
        "piecewise_constant_schedule(v, {10: 0.5, 30: 0.1})",
        "join_schedules([constant_schedule(v), linear_schedule(v, 0.1, 20)], [30])",
    ],
)
def test_traced_values(expr):
    """A traced hyperparameter (here the initial value) flows through the schedule."""

    def values(lib):
        fn = lambda v, ks: lax.map(eval(expr, vars(lib) | {"v": v}), ks)  # noqa: E731
        return fast_jit(fn)(0.7, jnp.arange(N + 1, dtype=jnp.int32))

    _close(values(jol), values(optax))


def test_schedule_is_a_pytree_of_its_values():
    traces = []

    @fast_jit
    def at(sched, k):
        traces.append(k)
        return sched(k)

    first, second = jol.linear_schedule(1.0, 0.1, 50), jol.linear_schedule(2.0, 0.5, 50)
    assert 1.0 in [float(x) for x in jax.tree.leaves(first)]
    assert jax.tree.structure(first) == jax.tree.structure(second)
    _close(at(first, jnp.int32(25)), optax.linear_schedule(1.0, 0.1, 50)(25))
    _close(at(second, jnp.int32(25)), optax.linear_schedule(2.0, 0.5, 50)(25))
    assert len(traces) == 1
