"""The aliases (``jol.adam`` & co.) against optax: signatures, numbers, transformations
(jit / vmap / grad over hyperparameters), argument validation and low precision."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import (
    ALIASES,
    assert_trees_close,
    build,
    check_against_optax,
    fast_jit,
    final_loss,
    make_params,
    max_change,
    run_jol,
    run_optax,
    state_signature,
    train,
)

import jaxopt_lab as jol


def _signature(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", ALIASES)
def test_signature_matches_optax(name):
    assert _signature(getattr(jol, name)) == _signature(getattr(optax, name))


# --------------------------------------------------------------------------------------
# Numbers. Per alias: (A) defaults; (B) every numeric hyperparameter non-default, same
# tree structure as A, so our jitted runner reuses A's compile; (C) every flag flipped,
# mu_dtype / masks where present, and a schedule learning rate (ours for ours, optax's
# for optax; sign_sgd takes a plain Python callable). Also checked: state dtypes/shapes.
# --------------------------------------------------------------------------------------

CASES = [
    "sgd(0.05)",
    "sgd(0.02, momentum=0.8)",
    "sgd(exponential_decay(0.05, 20, 0.8), momentum=0.9, nesterov=True, "
    "accumulator_dtype=jnp.bfloat16)",
    "adagrad(0.1)",
    "adagrad(0.2, initial_accumulator_value=0.5, eps=1e-3)",
    "adagrad(linear_schedule(0.2, 0.05, 150))",
    "rmsprop(0.01)",
    "rmsprop(0.02, decay=0.8, eps=1e-4, initial_scale=0.5)",
    # (centered=True with bias_correction=True or eps_in_sqrt=False takes the sqrt of a
    # variance estimate that can be negative: NaN in optax too, so two flag cases.)
    "rmsprop(linear_schedule(0.02, 0.005, 150), momentum=0.5, centered=True, nesterov=True)",
    "rmsprop(0.01, eps_in_sqrt=False, bias_correction=True)",
    "adam(0.05)",
    "adam(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6)",
    "adam(cosine_decay_schedule(0.1, 200, alpha=0.1), mu_dtype=jnp.bfloat16, nesterov=True)",
    "adamw(0.05)",
    "adamw(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6, weight_decay=0.1)",
    "adamw(warmup_cosine_decay_schedule(0.0, 0.1, 20, 200), mu_dtype=jnp.bfloat16, mask=MASK, "
    "nesterov=True)",
    "adamax(0.05)",
    "adamax(0.1, b1=0.8, b2=0.99, eps=1e-4)",
    "adamax(exponential_decay(0.1, 10, 0.9, staircase=True))",
    "nadam(0.05)",
    "nadam(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6)",
    "nadam(linear_schedule(0.1, 0.01, 200), mu_dtype=jnp.bfloat16, nesterov=False)",
    "amsgrad(0.05)",
    "amsgrad(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6)",
    "amsgrad(linear_schedule(0.1, 0.01, 200), mu_dtype=jnp.bfloat16, bias_correction_mu=False, "
    "bias_correction_nu=False)",
    "adabelief(0.05)",
    "adabelief(0.1, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10)",
    "adabelief(linear_schedule(0.1, 0.01, 200), nesterov=True)",
    "radam(0.05)",
    "radam(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6, threshold=8.0)",
    "radam(linear_schedule(0.1, 0.01, 200), nesterov=True)",
    "lion(0.01)",
    "lion(0.02, b1=0.8, b2=0.9, weight_decay=0.05)",
    "lion(linear_schedule(0.02, 0.005, 200), mu_dtype=jnp.bfloat16, mask=MASK)",
    "lamb(0.05)",
    "lamb(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6, weight_decay=0.1)",
    "lamb(linear_schedule(0.1, 0.01, 200), weight_decay=0.1, mask=mask_fn)",
    "yogi(0.05)",
    "yogi(0.1, b1=0.8, b2=0.99, eps=1e-2)",
    "yogi(linear_schedule(0.1, 0.01, 200))",
    "adadelta()",
    "adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.1)",
    "adadelta(linear_schedule(2.0, 0.5, 200), weight_decay=0.1, weight_decay_mask=MASK)",
    "sign_sgd(0.01)",
    "sign_sgd(plain_schedule)",
]


def test_every_alias_is_covered():
    assert {case.split("(")[0] for case in CASES} == set(ALIASES)


# optax's adadelta() (learning_rate=None) does not flip the sign, i.e. it ascends; on
# our loss that diverges after ~100 steps, so compare its first steps only.
STEPS_FOR = {"adadelta()": 30}


@pytest.mark.parametrize("expr", CASES, ids=str)
def test_matches_optax(expr, dtype):
    check_against_optax(expr, dtype, STEPS_FOR.get(expr, 200))


# --------------------------------------------------------------------------------------
# Hyperparameters are data: jit / vmap / grad, each against optax built from the same
# tracers inside the same transformation.
# --------------------------------------------------------------------------------------


def _train(lib, opt, steps=200):
    return train(opt, make_params(), steps, apply_updates=lib.apply_updates)[0]


@pytest.mark.parametrize(
    "expr",
    ["adam(lr, b1=b, eps=e)", "sgd(lr, momentum=b, nesterov=True)", "rmsprop(lr, decay=b, eps=e)"],
)
def test_jit_with_traced_hyperparameters(expr):
    def fn(lib):
        return fast_jit(lambda lr, b, e: _train(lib, eval(expr, vars(lib) | dict(lr=lr, b=b, e=e))))

    args = (0.02, 0.8, 1e-3)
    assert_trees_close(fn(jol)(*args), fn(optax)(*args), 1e-6)


def test_vmap_over_learning_rate():
    lrs = jnp.linspace(0.01, 0.1, 8)
    ours = fast_jit(jax.vmap(lambda lr: _train(jol, jol.adam(lr))))(lrs)
    ref = fast_jit(jax.vmap(lambda lr: _train(optax, optax.adam(lr))))(lrs)
    assert_trees_close(ours, ref, 1e-6)
    first, last = (jax.tree.map(lambda x, i=i: x[i], ref) for i in (0, -1))
    assert max_change(first, last) > 1e-2  # the members really differ


def test_vmap_over_b1():
    b1s = jnp.linspace(0.0, 0.95, 8)
    ours = fast_jit(jax.vmap(lambda b1: _train(jol, jol.adam(0.05, b1=b1))))(b1s)
    ref = fast_jit(jax.vmap(lambda b1: _train(optax, optax.adam(0.05, b1=b1))))(b1s)
    assert_trees_close(ours, ref, 1e-6)
    first, last = (jax.tree.map(lambda x, i=i: x[i], ref) for i in (0, -1))
    assert max_change(first, last) > 1e-2


def test_hypergradient_wrt_learning_rate():
    params = make_params()

    def hypergrad(lib):
        f = lambda lr: final_loss(lib.adam(lr), params, 20, lib.apply_updates)  # noqa: E731
        return fast_jit(jax.value_and_grad(f))(0.05)

    (value, grad), (ref_value, ref_grad) = hypergrad(jol), hypergrad(optax)
    assert abs(float(ref_grad)) > 1e-3
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6)


@pytest.mark.parametrize("name", ALIASES)
def test_learning_rate_may_be_a_tracer(name):
    """Building and running every alias from a traced learning rate (validation must not
    need its value); tracing only, numbers are checked by test_matches_optax."""
    params = make_params()

    def fn(lr):
        return train(getattr(jol, name)(lr), params, 3, apply_updates=jol.apply_updates)

    out_params, _ = jax.eval_shape(fn, 0.1)
    assert jax.tree.structure(out_params) == jax.tree.structure(params)


def test_learning_rate_may_be_an_array():
    ours = run_jol(jol.adam(jnp.asarray(0.05)), make_params(), 20)[0]
    assert_trees_close(ours, run_optax(optax.adam(0.05), make_params(), 20)[0], 1e-6)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def _optax_params(name):
    return inspect.signature(getattr(optax, name)).parameters


@pytest.mark.parametrize("name", ALIASES)
def test_negative_learning_rate(name):
    with pytest.raises(ValueError, match="learning_rate"):
        getattr(jol, name)(learning_rate=-0.1)


def test_negative_learning_rate_array():
    with pytest.raises(ValueError, match="learning_rate"):
        jol.adam(jnp.asarray(-1e-3))


def test_traced_negative_learning_rate_is_not_checked():
    """Validation only happens on concrete values; a tracer passes through."""
    params = make_params()

    def step(lr):
        opt = jol.adam(lr)
        return opt.update(params, opt.init(params), params)[1]

    state = fast_jit(step)(-0.1)
    assert jax.tree.structure(state) == jax.tree.structure(jol.adam(0.1).init(params))


@pytest.mark.parametrize("name", [n for n in ALIASES if "eps" in _optax_params(n)])
def test_negative_eps(name):
    with pytest.raises(ValueError, match="eps"):
        getattr(jol, name)(learning_rate=0.1, eps=-1e-8)


@pytest.mark.parametrize("name", ALIASES)
def test_unknown_keyword(name):
    with pytest.raises(TypeError, match="beta_one"):
        getattr(jol, name)(learning_rate=0.1, beta_one=0.9)


@pytest.mark.parametrize("name", ALIASES)
def test_integer_params(name):
    opt = getattr(jol, name)(learning_rate=0.1)
    params = {"w": jnp.arange(3), "b": jnp.zeros(2)}
    with pytest.raises(TypeError, match="params"):
        opt.init(params)


# --------------------------------------------------------------------------------------
# Low precision: bf16 params with float32 optimizer state
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    ["adam(0.05, mu_dtype=jnp.float32)", "sgd(0.05, momentum=0.9, accumulator_dtype=jnp.float32)"],
)
def test_bf16_params_with_float32_state(expr):
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), make_params())
    ours, ours_state = run_jol(build(expr, jol), params, 50)
    ref, ref_state = run_optax(build(expr, optax), params, 50)
    assert "float32" in {d for d, _ in state_signature(ref_state)}
    assert state_signature(ours_state) == state_signature(ref_state)
    assert max_change(params, ref) > 1e-1
    # bf16 has 8 significant bits: allow a couple of ulps of drift after 50 steps.
    assert_trees_close(ours, ref, rtol=2 * 2.0**-8)
