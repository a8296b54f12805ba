"""jol.contrib's DP-SGD, complex splitting and GaLore against optax.contrib's.

* ``differentially_private_aggregate`` / ``dpsgd`` take per-example gradients: they run
  on a problem with a batch of targets per step, and the same key gives the same noise
  as optax's, checked bit for bit on one step and to 1e-6 / 1e-12 over 200 steps.
* ``split_real_and_imaginary`` runs on complex64 / complex128 params (with one real leaf,
  passed through), fed the conjugate of ``jax.grad`` as in optax's tests.
* ``galore`` / ``scale_by_galore`` run on the shared nested-params problem of conftest,
  whose (2, 3) and (4, 1, 2) leaves are projected.

Our optimizers go through one jitted runner per problem, so configurations that differ
only in numbers compile once.
"""

from __future__ import annotations

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from conftest import (
    MASK,
    RTOL,
    STEPS,
    _targets,
    assert_trees_close,
    enable_x64,
    fast_jit,
    loss,
    make_params,
    max_change,
    run_jol,
    run_optax,
    state_signature,
)
from jax import lax

import jaxopt_lab as jol


def rows_last(dims_cls):
    """A ``weight_dimension_numbers`` function: the last axis is the reduction axis."""

    def fn(params):
        make = lambda p: dims_cls(-1, tuple(range(p.ndim - 1))) if p.ndim >= 2 else None  # noqa: E731
        return jax.tree.map(make, params)

    return fn


def build(expr: str, lib):
    """``expr`` with ``lib.contrib``'s names, the core API as ``lib`` (optax warns about
    its deprecated ``seed`` spellings, which ``dpsgd`` itself uses)."""
    contrib = jol.contrib if lib is jol else optax.contrib
    namespace = {n: getattr(contrib, n) for n in dir(contrib) if not n.startswith("_")}
    namespace.update(lib=lib, jax=jax, jnp=jnp, MASK=MASK, rows_last=rows_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eval(expr, namespace)  # noqa: S307 - the expressions are literals below


def compare(actual, state, expected, ref_state, params, rtol):
    assert max_change(params, expected) > 1e-2, "configuration makes no progress"
    assert state_signature(state) == state_signature(ref_state)
    assert_trees_close(actual, expected, rtol)


# --------------------------------------------------------------------------------------
# Differential privacy: per-example gradients
# --------------------------------------------------------------------------------------

SCALES = (1.0, 0.4, -0.7)  # the batch: three targets per step


def train_dp(opt, params, apply_updates):
    per_example_grad = jax.vmap(jax.grad(loss), in_axes=(None, 0))

    def body(carry, target):
        p, s = carry
        u, s = opt.update(per_example_grad(p, target), s, p)
        return (apply_updates(p, u), s), None

    batched = jax.tree.map(
        lambda c: jnp.stack([c * s for s in SCALES], axis=1), _targets(params, STEPS)
    )
    (params, state), _ = lax.scan(body, (params, opt.init(params)), batched)
    return params, state


run_dp_jol = fast_jit(lambda opt, p: train_dp(opt, p, jol.apply_updates))

# (expr, dtype): each option in one dtype, to keep the compiles few
DP_CASES = [
    ("dpsgd(0.05, 1.0, 0.1, 3)", "float64"),
    ("dpsgd(0.05, 0.5, 0.3, seed=7, momentum=0.9, nesterov=True)", "float32"),
    (
        "lib.chain(differentially_private_aggregate(2.0, 0.2, key=jax.random.key(11)),"
        " lib.adam(0.05))",
        "float32",
    ),
]


def x64_if(dtype):
    """64-bit mode for a 64-bit dtype, for the test's duration."""
    return enable_x64() if dtype in ("float64", "complex128") else contextlib.nullcontext()


@pytest.mark.parametrize("expr, dtype", DP_CASES)
def test_dp_against_optax(expr, dtype):
    with x64_if(dtype):
        params = make_params(dtype)
        theirs = build(expr, optax)
        expected, ref_state = fast_jit(lambda p: train_dp(theirs, p, optax.apply_updates))(params)
        actual, state = run_dp_jol(build(expr, jol), params)
        compare(actual, state, expected, ref_state, params, RTOL[dtype])
        ours_key = jax.random.key_data(jax.tree.leaves(state)[0])
        ref_key = jax.random.key_data(jax.tree.leaves(ref_state)[0])
        np.testing.assert_array_equal(ours_key, ref_key)


# one step of ours from init, compiled once for every aggregate with a typed key
dp_step = jax.jit(lambda opt, grads, params: opt.update(grads, opt.init(params)))


def _per_example(params):
    return jax.tree.map(lambda x: jnp.stack([x, 2.0 * x, -3.0 * x, 0.0 * x]), params)


def test_dp_same_draws_as_optax():
    """One step, bit for bit: the same noise and next key as optax's from key(5); an int
    seed and a raw uint32 key start from the same key (one compile each side)."""
    params = make_params()
    grads = _per_example(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = optax.contrib.differentially_private_aggregate(1.0, 0.3, jax.random.key(5))
    expected, ref_state = jax.jit(lambda g: ref.update(g, ref.init(params)))(grads)
    opt = jol.differentially_private_aggregate(1.0, 0.3, jax.random.key(5))
    actual, state = dp_step(opt, grads, params)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, e)
    data = lambda s: np.asarray(jax.random.key_data(s.rng_key))  # noqa: E731
    np.testing.assert_array_equal(data(state), data(ref_state))
    # an int seed and a raw uint32 key start from the same typed key; another seed not
    start = data(ref.init(params))
    for key in (5, jax.random.PRNGKey(5)):
        ours = jol.differentially_private_aggregate(1.0, 0.3, key).init(params)
        np.testing.assert_array_equal(data(ours), start)
    other = jol.differentially_private_aggregate(1.0, 0.3, 6).init(params)
    assert not np.array_equal(data(other), start)


def test_dp_clips_each_example_then_averages():
    """Without noise: the mean over examples of each gradient scaled to norm <= C (the
    all-zero example is kept, not divided by its zero norm)."""
    params = make_params()
    grads = _per_example(params)
    opt = jol.differentially_private_aggregate(1.0, 0.0, jax.random.key(0))
    actual, _ = dp_step(opt, grads, params)
    norm = float(np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(params))))
    factors = [min(1.0, 1.0 / (k * norm)) * k for k in (1.0, 2.0, 3.0)]
    mean = (factors[0] + factors[1] - factors[2]) / 4
    assert_trees_close(actual, jax.tree.map(lambda x: mean * x, params), 1e-6)


def test_dp_top_level_names_and_leaves():
    assert jol.dpsgd is jol.contrib.dpsgd
    assert (
        jol.DifferentiallyPrivateAggregateState is jol.contrib.DifferentiallyPrivateAggregateState
    )
    a, b = jol.dpsgd(0.1, 1.0, 0.1, 0), jol.dpsgd(0.2, 2.0, 0.3, 1)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert {0.2, 2.0, 0.3, 1} <= set(jax.tree.leaves(b))
    # a sweep over noise levels and seeds is one vmapped program
    params = {"w": jnp.ones((3,))}
    grads = {"w": jnp.ones((2, 3))}

    def step(nm, seed):
        opt = jol.contrib.differentially_private_aggregate(1.0, nm, seed)
        return opt.update(grads, opt.init(params))[0]["w"]

    out = jax.vmap(step)(jnp.array([0.0, 0.5]), jnp.array([0, 1]))
    np.testing.assert_allclose(out[0], np.full(3, 1 / 3**0.5), rtol=1e-6)
    assert not np.allclose(out[1], out[0])


# --------------------------------------------------------------------------------------
# Complex params split into real pairs
# --------------------------------------------------------------------------------------

COMPLEX_CASES = [
    ("split_real_and_imaginary(lib.adam(0.05))", "complex64"),
    ("split_real_and_imaginary(lib.adam(0.05))", "complex128"),
    (
        "split_real_and_imaginary(lib.chain(lib.clip_by_global_norm(0.5),"
        " lib.sgd(0.05, momentum=0.9)))",
        "complex64",
    ),
    ("split_real_and_imaginary(lib.adamw(0.05, weight_decay=0.1))", "complex128"),
]
REAL_OF = {"complex64": "float32", "complex128": "float64"}


def make_complex_params(dtype):
    def leaf(shape, offset):
        k = np.arange(int(np.prod(shape)))
        z = 1.5 * np.sin(1.3 * k + offset) + 1j * np.cos(0.7 * k - offset)
        return jnp.asarray(z.reshape(shape), dtype)

    real = jnp.asarray([0.5, -1.0], REAL_OF[dtype])
    return {"list": [leaf((3,), 0), leaf((2, 3), 1)], "tuple": (leaf((), 2), real), "e": {}}


def complex_loss(params, target):
    total = 0.0
    for x, c in zip(jax.tree.leaves(params), jax.tree.leaves(target), strict=True):
        z2, x2 = jnp.abs(x - c) ** 2, jnp.abs(x) ** 2
        total = total + jnp.sum(jnp.sqrt(1.0 + z2) + 0.1 * x2 + 0.02 * x2 * x2)
    return total


def _target(dtype, t):
    """A point circling in the complex plane (its real part for a real leaf)."""
    z = (1 + 0.5j) * jnp.exp(0.1j * t)
    return z if jnp.issubdtype(dtype, jnp.complexfloating) else z.real


def train_complex(opt, params, apply_updates):
    def body(carry, t):
        p, s = carry
        target = jax.tree.map(lambda x: jnp.full_like(x, _target(x.dtype, t)), p)
        g = jax.tree.map(jnp.conj, jax.grad(complex_loss)(p, target))
        u, s = opt.update(g, s, p)
        return (apply_updates(p, u), s), None

    (params, state), _ = lax.scan(body, (params, opt.init(params)), jnp.arange(STEPS))
    return params, state


run_complex_jol = fast_jit(lambda opt, p: train_complex(opt, p, jol.apply_updates))


def _split(tree):
    return jax.tree.map(lambda x: (jnp.real(x), jnp.imag(x)), tree)


@pytest.mark.parametrize("expr, dtype", COMPLEX_CASES)
def test_split_real_and_imaginary_against_optax(expr, dtype):
    with x64_if(dtype):
        params = make_complex_params(dtype)
        theirs = build(expr, optax)
        expected, ref_state = fast_jit(lambda p: train_complex(theirs, p, optax.apply_updates))(
            params
        )
        actual, state = run_complex_jol(build(expr, jol), params)
        assert jax.tree.map(lambda x: x.dtype, actual) == jax.tree.map(lambda x: x.dtype, params)
        compare(
            _split(actual), state, _split(expected), ref_state, _split(params), RTOL[REAL_OF[dtype]]
        )


def test_split_differs_from_complex_adam_and_wraps_optax():
    """Split, Adam normalises real and imaginary parts apart (a step of lr along each);
    an optax optimizer wrapped by ours gives optax's numbers."""
    params = jnp.asarray([1.0 + 2.0j, -0.5j], jnp.complex64)
    grads = jnp.asarray([3.0 + 0.1j, -2.0 - 4.0j], jnp.complex64)
    opt = jol.contrib.split_real_and_imaginary(jol.adam(0.1))
    u, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(np.asarray(u), [-0.1 - 0.1j, 0.1 + 0.1j], rtol=1e-5)
    mixed = jol.contrib.split_real_and_imaginary(optax.adam(0.1))
    ref = optax.contrib.split_real_and_imaginary(optax.adam(0.1))
    s, r = mixed.init(params), ref.init(params)
    for k in range(2):
        u, s = mixed.update(grads * (1 + 1j * k), s, params)
        v, r = ref.update(grads * (1 + 1j * k), r, params)
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    ours = jol.contrib.split_real_and_imaginary(jol.adam(0.2))
    assert jax.tree.structure(ours) == jax.tree.structure(opt)


# --------------------------------------------------------------------------------------
# GaLore
# --------------------------------------------------------------------------------------

DIMS_TREE = (
    "{'list': [None, GaLoreDimensionNumbers()],"
    " 'tuple': (GaLoreDimensionNumbers(2, (0, 1)), None, ()), 'empty': {}}"
)
GALORE_CASES = [
    "galore(0.05, rank=1, update_proj_gap=7)",
    "galore(0.05, rank=2, update_proj_gap=50, scale=0.5,"
    " base_optimizer=lib.scale_by_adam(b1=0.8), weight_decay=0.01, mask=MASK)",
    f"galore(0.05, rank=1, update_proj_gap=20, weight_dimension_numbers={DIMS_TREE})",
    "galore(0.05, rank=1, update_proj_gap=30,"
    " weight_dimension_numbers=rows_last(GaLoreDimensionNumbers))",
    "lib.chain(scale_by_galore(rank=1, update_proj_gap=5,"
    " base_optimizer=lib.sgd(1.0, momentum=0.9)), lib.scale(0.02))",
]


@pytest.mark.parametrize("expr", GALORE_CASES)
def test_galore_against_optax(expr, dtype):
    params = make_params(dtype)
    expected, ref_state = run_optax(build(expr, optax), params)
    actual, state = run_jol(build(expr, jol), params)
    compare(actual, state, expected, ref_state, params, RTOL[dtype])


def test_galore_state_is_low_rank_and_hyperparameters_are_leaves():
    params = {"w": jnp.ones((6, 4)), "b": jnp.ones((4,)), "t": jnp.ones((2, 3, 5))}
    dims_cls = jol.contrib.GaLoreDimensionNumbers
    dims = {"w": dims_cls(), "b": None, "t": dims_cls(0, (1, 2))}
    state = jol.contrib.scale_by_galore(rank=2, weight_dimension_numbers=dims).init(params)
    assert state.projector["w"].shape == (6, 2) and state.projector["b"].shape == (0, 0)
    assert state.projector["t"].shape == (15, 2)  # (2, 15): projected from the right
    assert state.base_optimizer_state.mu["t"].shape == (2, 2)
    a = jol.contrib.galore(0.1, rank=2, update_proj_gap=10, scale=1.0, weight_decay=0.1)
    b = jol.contrib.galore(0.3, rank=2, update_proj_gap=20, scale=0.5, weight_decay=0.2)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert {0.3, 20, 0.5, 0.2} <= set(jax.tree.leaves(b))
    assert jax.tree.structure(a) != jax.tree.structure(jol.contrib.galore(0.1, rank=3))


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------

C = jol.contrib


def _one_step(opt, grads):
    return opt.update(grads, opt.init(grads))


BAD = [
    (lambda: C.differentially_private_aggregate(-1.0, 0.1), "l2_norm_clip"),
    (lambda: C.differentially_private_aggregate(1.0, "a"), "noise_multiplier"),
    (lambda: C.differentially_private_aggregate(1.0, 0.1, "k"), "key"),
    (lambda: C.differentially_private_aggregate(1.0, 0.1, 1, seed=2), "seed"),
    (lambda: C.dpsgd(0.1, 1.0, 0.1, "s"), "seed"),
    (lambda: C.dpsgd(0.1, 1.0, 0.1, 0, momentum=-0.5), "momentum"),
    (lambda: C.dpsgd(0.1, 1.0, 0.1, 0, nesterov=1), "nesterov"),
    (lambda: C.split_real_and_imaginary(3), "inner"),
    (lambda: C.galore(0.1, rank=0), "rank"),
    (lambda: C.galore(0.1, rank=1.5), "rank"),
    (lambda: C.galore(0.1, update_proj_gap=0), "update_proj_gap"),
    (lambda: C.galore(0.1, update_proj_gap=2.5), "update_proj_gap"),
    (lambda: C.galore(0.1, base_optimizer=3), "base_optimizer"),
    (lambda: C.galore(0.1, weight_dimension_numbers=[3]), "weight_dimension_numbers"),
    (
        lambda: C.galore(0.1, weight_dimension_numbers=C.GaLoreDimensionNumbers(0, 0)).init(
            {"w": jnp.ones((2, 3))}
        ),
        "weight_dimension_numbers",
    ),
    (lambda: _one_step(C.dpsgd(0.1, 1.0, 0.1, 0), {"w": jnp.ones(())}), "updates"),
]


@pytest.mark.parametrize("make, name", BAD)
def test_bad_input_names_the_argument(make, name):
    with pytest.raises(jol.InputError, match=f"`{name}`"):
        make()
