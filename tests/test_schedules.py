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


@pytest.mark.parametrize("args", [(0.3, 0.07, 37), (0.85, 0.999, 130), (1.0, 0.1, 50)])
def test_linear_leaves_traced_into_jit_match_optax_exactly(args):
    """``init - end`` is taken when the schedule is built (in float64 from Python
    numbers, as optax's closure does): float32 leaves subtracted under jit would round
    ``f32(0.3) - f32(0.07)`` one ulp away from ``f32(0.3 - 0.07)``."""
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    ours = fast_jit(lambda sched, ks: lax.map(sched, ks))(jol.linear_schedule(*args), counts)
    ref = fast_jit(lambda ks: lax.map(optax.linear_schedule(*args), ks))(counts)
    np.testing.assert_array_equal(ours, ref)


# --------------------------------------------------------------------------------------
# Interpolated, one-cycle, warm-up and SGDR schedules (issue 17)
# --------------------------------------------------------------------------------------

NEW_SCHEDULES = (
    "cosine_onecycle_schedule linear_onecycle_schedule piecewise_interpolate_schedule "
    "sgdr_schedule warmup_constant_schedule warmup_exponential_decay_schedule"
).split()

NEW_CASES = [
    "cosine_onecycle_schedule(80, 1.0)",
    "cosine_onecycle_schedule(60, 0.5, pct_start=0.5, div_factor=10.0, final_div_factor=100.0)",
    "linear_onecycle_schedule(80, 1.0)",
    "linear_onecycle_schedule(90, 2.0, pct_start=0.2, pct_final=0.7, div_factor=5.0)",
    "piecewise_interpolate_schedule('linear', 1.0, {10: 0.5, 30: 3.0, 31: 0.1, 70: 2.0})",
    "piecewise_interpolate_schedule('cosine', 0.5, {0: 2.0, 40: 0.1})",
    "piecewise_interpolate_schedule('linear', 0.7)",
    "sgdr_schedule([dict(init_value=0.1, peak_value=1.0, warmup_steps=5, decay_steps=30), "
    "dict(init_value=0.0, peak_value=0.5, warmup_steps=0, decay_steps=40, end_value=0.1)])",
    "warmup_constant_schedule(0.1, 1.0, 20)",
    "warmup_exponential_decay_schedule(0.0, 1.0, 10, 15, 0.5)",
    "warmup_exponential_decay_schedule(0.1, 1.0, 10, 15, 0.5, transition_begin=5, "
    "staircase=True, end_value=0.2)",
]


def _build_new(expr, lib, **extra):
    namespace = {name: getattr(lib, name) for name in NEW_SCHEDULES} | extra
    return eval(expr, namespace)  # noqa: S307 - the literals above


@pytest.mark.parametrize("name", NEW_SCHEDULES)
def test_new_signature_matches_optax(name):
    assert _signature(getattr(jol, name)) == _signature(getattr(optax, name))


def test_every_new_schedule_is_covered():
    covered = {name for name in NEW_SCHEDULES for case in NEW_CASES if f"{name}(" in case}
    assert covered == set(NEW_SCHEDULES)


def test_new_schedules_match_optax_eager_and_jit():
    """Every step 0..N under jit with a traced int32 count and the schedule passed as a
    pytree argument (one program for all cases), and every third step eagerly with a
    Python int count (op by op, so slow)."""
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    at_all = fast_jit(lambda sched, ks: lax.map(sched, ks))
    at_all_ref = fast_jit(lambda sched, ks: lax.map(sched, ks), static_argnums=0)
    for expr in NEW_CASES:
        ours, ref = _build_new(expr, jol), _build_new(expr, optax)
        _close(at_all(ours, counts), at_all_ref(ref, counts))
        eager = range(0, N + 1, 3)
        expected = jnp.stack([jnp.asarray(ref(k), jnp.float32) for k in eager])
        _close(jnp.stack([jnp.asarray(ours(k), jnp.float32) for k in eager]), expected)


def test_new_schedules_traced_peak_value():
    """The peak value is a leaf: traced, it flows through (one-cycle, warm-up)."""
    counts = jnp.arange(N + 1, dtype=jnp.int32)
    for expr in [
        "cosine_onecycle_schedule(80, v)",
        "linear_onecycle_schedule(80, v)",
        "warmup_constant_schedule(0.1, v, 20)",
        "warmup_exponential_decay_schedule(0.0, v, 10, 15, 0.5)",
    ]:
        values = [
            fast_jit(lambda v, ks, lib=lib, e=expr: lax.map(_build_new(e, lib, v=v), ks))(
                0.7, counts
            )
            for lib in (jol, optax)
        ]
        _close(*values)


def test_onecycle_value_change_reuses_program():
    traces = []

    @fast_jit
    def at(sched, k):
        traces.append(k)
        return sched(k)

    for peak in (1.0, 3.0):
        ours = jol.cosine_onecycle_schedule(80, peak)
        _close(at(ours, jnp.int32(50)), optax.cosine_onecycle_schedule(80, peak)(50))
    assert len(traces) == 1


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: jol.piecewise_interpolate_schedule("cubic", 1.0), "interpolate_type"),
        (lambda: jol.piecewise_interpolate_schedule("linear", 1.0, {5: -1.0}), "boundaries"),
        (lambda: jol.cosine_onecycle_schedule(0, 1.0), "transition_steps"),
        (lambda: jol.linear_onecycle_schedule(10, 1.0, div_factor=0.0), "div_factor"),
        (lambda: jol.warmup_constant_schedule(0.0, "a", 10), "peak_value"),
        (lambda: jol.sgdr_schedule([{"init_value": 0.1}]), "cosine_kwargs"),
        (
            lambda: jol.sgdr_schedule(
                [dict(init_value=0.0, peak_value=1.0, warmup_steps=1, decay_steps=9, lr=1.0)]
            ),
            r"cosine_kwargs\[0\]",
        ),
        (lambda: jol.sgdr_schedule([]), "cosine_kwargs"),
    ],
)
def test_new_schedules_bad_input(call, name):
    with pytest.raises(jol.InputError, match=name):
        call()
