"""The aliases (``jol.adam`` & co.) against optax: signatures, numbers, transformations
(jit / vmap / grad over hyperparameters), argument validation and low precision."""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from conftest import (
    ALIASES,
    _targets,
    assert_trees_close,
    build,
    check_against_optax,
    fast_jit,
    final_loss,
    loss,
    make_params,
    max_change,
    run_jol,
    run_optax,
    state_signature,
    train,
)
from jax import lax

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


# --------------------------------------------------------------------------------------
# The core catalogue (issue 17): adafactor, nadamw, ..., polyak_sgd against optax, as
# above: (A) defaults, (B) numeric hyperparameters changed (same structure as A, so one
# compile of ours), (C) flags, dtypes, masks, schedules. Helpers in catalogue.py.
# --------------------------------------------------------------------------------------

from catalogue import (  # noqa: E402 - kept with the section it serves
    CATALOGUE_ALIASES,
    build_catalogue,
    check_catalogue,
    train_with_value,
)

CATALOGUE_CASES = [
    "adafactor()",
    "adafactor(0.05)",
    "adafactor(0.02, decay_rate=0.7, decay_offset=-3, clipping_threshold=0.5, eps=1e-20)",
    "adafactor(linear_schedule(0.05, 0.01, 200), min_dim_size_to_factor=2, momentum=0.8, "
    "weight_decay_rate=0.01, weight_decay_mask=MASK)",
    "adafactor(0.05, factored=False, multiply_by_parameter_scale=False, "
    "clipping_threshold=None, momentum=0.5, dtype_momentum=jnp.bfloat16)",
    "nadamw(0.05)",
    "nadamw(0.1, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6, weight_decay=0.1)",
    "nadamw(linear_schedule(0.1, 0.01, 200), mu_dtype=jnp.bfloat16, mask=MASK, nesterov=False)",
    "adamaxw(0.05)",
    "adamaxw(0.1, b1=0.8, b2=0.99, eps=1e-4, weight_decay=0.1)",
    "adamaxw(linear_schedule(0.1, 0.01, 200), weight_decay=0.05, mask=mask_fn)",
    "lars(1.0)",
    "lars(0.5, weight_decay=0.1, trust_coefficient=0.01, eps=1e-3, momentum=0.8)",
    "lars(linear_schedule(1.0, 0.1, 200), weight_decay=0.1, weight_decay_mask=MASK, "
    "trust_ratio_mask=mask_fn, nesterov=True)",
    "signum(0.01)",
    "signum(0.02, beta=0.8)",
    "signum(linear_schedule(0.02, 0.005, 200), accumulator_dtype=jnp.bfloat16)",
    "novograd(0.05)",
    # (not b2=0.5: XLA simplifies optax's constant 0.5 s + 0.5 n differently, an ulp apart,
    # and novograd's fixed-size normalised steps amplify that within 200 steps)
    "novograd(0.1, b1=0.8, b2=0.3, eps=1e-4, eps_root=1e-6, weight_decay=0.01)",
    "novograd(linear_schedule(0.1, 0.01, 200))",
    "adan(0.05)",
    "adan(0.1, b1=0.9, b2=0.8, b3=0.95, eps=1e-4, eps_root=1e-6, weight_decay=0.1)",
    "adan(linear_schedule(0.1, 0.01, 200), weight_decay=0.1, mask=MASK)",
    "rprop(0.01)",
    "rprop(0.02, eta_minus=0.4, eta_plus=1.1, min_step_size=1e-4, max_step_size=0.5)",
    "sm3(0.1)",
    "sm3(0.2, momentum=0.8)",
    "fromage(0.05)",
    "fromage(0.1, min_norm=1e-3)",
    "fromage(linear_schedule(0.1, 0.01, 200))",
    "noisy_sgd(0.02, key=0)",
    "noisy_sgd(0.05, eta=0.1, gamma=0.3, key=7)",
    "noisy_sgd(linear_schedule(0.05, 0.01, 200), key=jax.random.key(3))",
    "optimistic_gradient_descent(0.05)",
    "optimistic_gradient_descent(0.05, alpha=0.5, beta=0.3)",
    "optimistic_adam(0.05)",
    "optimistic_adam(0.1, optimism=0.05, b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6)",
    "optimistic_adam(0.05, mu_dtype=jnp.bfloat16, nesterov=False)",
    "polyak_sgd(0.1)",
    "polyak_sgd(0.2, scaling=0.5, f_min=1.0, eps=1e-3)",
    "polyak_sgd(0.1, scaling=linear_schedule(1.0, 0.5, 200), variant='sps+')",
]


def test_catalogue_is_covered():
    assert {case.split("(")[0] for case in CATALOGUE_CASES} == set(CATALOGUE_ALIASES)


@pytest.mark.parametrize("name", CATALOGUE_ALIASES)
def test_catalogue_signature_matches_optax(name):
    assert _signature(getattr(jol, name)) == _signature(getattr(optax, name))


@pytest.mark.filterwarnings("ignore:`optimistic_adam` is deprecated")
@pytest.mark.parametrize("expr", CATALOGUE_CASES, ids=str)
def test_catalogue_matches_optax(expr, dtype):
    check_catalogue(expr, dtype)


# Pairs differing only in numeric hyperparameters: the second must reuse the program
# compiled for the first (every numeric hyperparameter is a pytree leaf).
SAME_PROGRAM = [
    ("adafactor(0.05)", "adafactor(0.02, decay_rate=0.7, decay_offset=-3, clipping_threshold=0.5)"),
    ("nadamw(0.05)", "nadamw(0.1, b1=0.8, b2=0.99, eps=1e-4, weight_decay=0.1)"),
    ("adamaxw(0.05)", "adamaxw(0.1, b1=0.8, b2=0.99, eps=1e-4, weight_decay=0.1)"),
    ("lars(1.0)", "lars(0.5, weight_decay=0.1, trust_coefficient=0.01, eps=1e-3, momentum=0.8)"),
    ("signum(0.01)", "signum(0.02, beta=0.8)"),
    ("novograd(0.05)", "novograd(0.1, b1=0.8, b2=0.3, eps=1e-4, weight_decay=0.01)"),
    ("adan(0.05)", "adan(0.1, b1=0.9, b2=0.8, b3=0.95, eps=1e-4, weight_decay=0.1)"),
    ("rprop(0.01)", "rprop(0.02, eta_minus=0.4, eta_plus=1.1, max_step_size=0.5)"),
    ("sm3(0.1)", "sm3(0.2, momentum=0.8)"),
    ("fromage(0.05)", "fromage(0.1, min_norm=1e-3)"),
    ("noisy_sgd(0.02)", "noisy_sgd(0.05, eta=0.1, gamma=0.3, key=7)"),
    ("optimistic_gradient_descent(0.05)", "optimistic_gradient_descent(0.1, alpha=0.5)"),
    ("optimistic_adam(0.05)", "optimistic_adam(0.1, optimism=0.05, b1=0.8)"),
    ("polyak_sgd(0.1)", "polyak_sgd(0.2, scaling=0.3, f_min=1.0, eps=1e-3)"),
]


def test_catalogue_same_program_is_every_pair():
    assert {a.split("(")[0] for a, _ in SAME_PROGRAM} == set(CATALOGUE_ALIASES)


@pytest.mark.parametrize("first, second", SAME_PROGRAM, ids=[a for a, _ in SAME_PROGRAM])
def test_catalogue_new_hyperparameters_reuse_the_program(first, second):
    traces = []

    def two_steps(opt, params):
        traces.append(1)  # runs once per trace, i.e. per compiled program
        state = opt.init(params)
        for _ in range(2):  # (rprop's first update is zero)
            u, state = opt.update(params, state, params, value=jnp.asarray(3.0))
            params = jol.apply_updates(params, u)
        return params

    step = jax.jit(two_steps)
    params = make_params()
    a, b = step(build_catalogue(first, jol), params), step(build_catalogue(second, jol), params)
    assert len(traces) == 1
    assert max_change(a, b) > 0  # and the values did change


def test_polyak_sgd_needs_the_value():
    opt = jol.polyak_sgd()
    params = make_params()
    with pytest.raises(jol.InputError, match="value"):
        opt.update(params, opt.init(params), params)


def test_polyak_sgd_in_minimize_gets_the_value():
    """jol.minimize passes value= to optimizers that take it. On
    :math:`f = \\tfrac12\\lVert p - 1\\rVert^2 + f^\\star` the Polyak step is 1/2: each step
    halves the distance to the minimum."""
    quadratic = lambda p: 0.5 * jnp.sum((p - 1.0) ** 2) + 2.0  # noqa: E731
    res = jol.minimize(quadratic, jnp.zeros(3), jol.polyak_sgd(f_min=2.0), 5)
    np.testing.assert_allclose(res.params, jnp.full(3, 1.0 - 0.5**5), rtol=1e-6)


# Each bad hyperparameter raises an InputError naming the argument (as the user wrote
# it, not as the transform underneath calls it).
CATALOGUE_BAD = [
    ("adafactor(learning_rate=-0.1)", "learning_rate"),
    ("adafactor(0.1, decay_rate=-0.5)", "decay_rate"),
    ("adafactor(0.1, decay_offset='a')", "decay_offset"),
    ("adafactor(0.1, eps=-1.0)", "eps"),
    ("adafactor(0.1, clipping_threshold=-1.0)", "clipping_threshold"),
    ("adafactor(0.1, momentum=1.5)", "momentum"),
    ("adafactor(0.1, dtype_momentum='int32')", "dtype_momentum"),
    ("adafactor(0.1, weight_decay_rate='a')", "weight_decay_rate"),
    ("adafactor(0.1, min_dim_size_to_factor=2.5)", "min_dim_size_to_factor"),
    ("adafactor(0.1, factored=1)", "factored"),
    ("adafactor(0.1, multiply_by_parameter_scale='yes')", "multiply_by_parameter_scale"),
    ("nadamw(0.1, b1=1.5)", "b1"),
    ("adamaxw(0.1, b2=-0.1)", "b2"),
    ("lars(0.1, momentum=-0.9)", "momentum"),
    ("lars(0.1, trust_coefficient=-1.0)", "trust_coefficient"),
    ("lars(0.1, nesterov='no')", "nesterov"),
    ("signum(0.1, beta=2.0)", "beta"),
    ("novograd(0.1, b2=1.5)", "b2"),
    ("adan(0.1, b3=1.5)", "b3"),
    ("rprop(-0.1)", "learning_rate"),
    ("rprop(0.1, eta_plus=-1.0)", "eta_plus"),
    ("rprop(0.1, min_step_size=-1.0)", "min_step_size"),
    ("rprop(linear_schedule(0.1, 0.01, 10))", "learning_rate"),
    ("sm3(0.1, momentum=2.0)", "momentum"),
    ("sm3(linear_schedule(0.1, 0.01, 10))", "learning_rate"),
    ("fromage(0.1, min_norm=-1.0)", "min_norm"),
    ("noisy_sgd(0.1, eta=-1.0)", "eta"),
    ("noisy_sgd(0.1, key='a')", "key"),
    ("noisy_sgd(0.1, key=1, seed=2)", "key"),
    ("optimistic_gradient_descent(0.1, alpha='a')", "alpha"),
    ("optimistic_adam(0.1, optimism='a')", "optimism"),
    ("optimistic_adam(linear_schedule(0.1, 0.01, 10))", "learning_rate"),
    ("polyak_sgd(max_learning_rate=-1.0)", "max_learning_rate"),
    ("polyak_sgd(scaling=-1.0)", "scaling"),
    ("polyak_sgd(f_min='a')", "f_min"),
    ("polyak_sgd(eps=-1.0)", "eps"),
    ("polyak_sgd(variant='sps++')", "variant"),
]


def test_catalogue_bad_input_covers_every_alias():
    assert {case.split("(")[0] for case, _ in CATALOGUE_BAD} == set(CATALOGUE_ALIASES)


@pytest.mark.parametrize("expr, argument", CATALOGUE_BAD, ids=[e for e, _ in CATALOGUE_BAD])
def test_catalogue_bad_input(expr, argument):
    with pytest.raises(jol.InputError, match=f"`{argument}`"):
        build_catalogue(expr, jol)


def test_sm3_rejects_complex_params():
    with pytest.raises(jol.InputError, match="params"):
        jol.sm3(0.1).init({"w": jnp.ones(3, jnp.complex64)})


def test_sm3_scalar_leaf_is_a_one_element_vector():
    """optax 0.2.8 fails on a 0-d leaf; ours treats it as a vector of one element."""
    params = make_params()
    as_vector = jax.tree.map(lambda x: x.reshape(1) if x.ndim == 0 else x, params)
    ours = run_jol(jol.sm3(0.1), params, 50)[0]
    ref = run_jol(jol.sm3(0.1), as_vector, 50)[0]
    back = jax.tree.map(lambda x, p: x.reshape(p.shape), ref, params)
    assert_trees_close(ours, back, 1e-6)


@pytest.mark.filterwarnings("ignore:`optimistic_adam` is deprecated")
@pytest.mark.parametrize("name", CATALOGUE_ALIASES)
def test_catalogue_first_hyperparameter_may_be_a_tracer(name):
    """Built and run from a traced first argument (the learning rate; polyak_sgd's
    max_learning_rate), as inside vmap or grad: tracing only, no compile."""
    params = make_params()

    def fn(x):
        opt = getattr(jol, name)(x)
        return train_with_value(opt, params, 3, apply_updates=jol.apply_updates)

    out_params, _ = jax.eval_shape(fn, 0.1)
    assert jax.tree.structure(out_params) == jax.tree.structure(params)


def test_catalogue_vmap_over_adafactor_decay_rate():
    """A sweep axis on a hyperparameter other than the learning rate, against optax
    built from the same tracers (Adafactor's decay exponent)."""
    rates = jnp.linspace(0.5, 0.9, 4)

    def run(lib):
        fn = lambda c: _train(lib, lib.adafactor(0.05, decay_rate=c, min_dim_size_to_factor=2))  # noqa: E731
        return fast_jit(jax.vmap(fn))(rates)

    ours, ref = run(jol), run(optax)
    assert_trees_close(ours, ref, 1e-6)
    first, last = (jax.tree.map(lambda x, i=i: x[i], ref) for i in (0, -1))
    assert max_change(first, last) > 1e-3  # the members really differ


# --------------------------------------------------------------------------------------
# Hypergradients through unrolled steps, for the whole catalogue (issue 17): d(loss after
# 10 steps)/d(learning rate), ours against optax's, for every catalogue name with a
# learning rate (optimizers.py, jol.contrib, and the wrappers around sgd / adam, where the
# learning rate passes through the wrapper). One compiled program per case and library;
# the wrappers wrap sgd where that is enough, its program being the cheapest to compile.
# --------------------------------------------------------------------------------------

from catalogue import catalogue_names, params_without_scalar  # noqa: E402


def _per_example(tree):
    """Two per-example gradients (dpsgd & co. take a batch axis)."""
    return jax.tree.map(lambda x: jnp.stack([x, 0.25 - 0.5 * x]), tree)


def _skip_if_large(updates, step, params, lib):
    return lib.skip_large_updates(updates, step, params, max_squared_norm=400.0)


def _norm(tree):
    return jnp.sqrt(sum((jnp.sum(x * x) for x in jax.tree.leaves(tree)), start=0.0))


def _label(params):
    return jax.tree.map(lambda x: "a" if x.ndim >= 2 else "b", params)


def _mask(params):
    return jax.tree.map(lambda x: x.ndim >= 2, params)


# name -> (build(lib, lr), what the update needs beyond (grads, state, params))
HYPERGRADIENT_CASES = {
    # optimizers.py's catalogue aliases
    "adafactor": (lambda lib, lr: lib.adafactor(lr, min_dim_size_to_factor=2), ()),
    "nadamw": (lambda lib, lr: lib.nadamw(lr, weight_decay=0.01), ()),
    "adamaxw": (lambda lib, lr: lib.adamaxw(lr, weight_decay=0.01), ()),
    "lars": (lambda lib, lr: lib.lars(lr, weight_decay=0.01), ()),
    "signum": (lambda lib, lr: lib.signum(lr), ()),
    "novograd": (lambda lib, lr: lib.novograd(lr, b2=0.3), ()),
    "adan": (lambda lib, lr: lib.adan(lr), ()),
    "rprop": (lambda lib, lr: lib.rprop(lr), ()),
    "sm3": (lambda lib, lr: lib.sm3(lr), ("no_scalar",)),
    "fromage": (lambda lib, lr: lib.fromage(lr), ()),
    "noisy_sgd": (lambda lib, lr: lib.noisy_sgd(lr, key=3), ()),
    "optimistic_gradient_descent": (lambda lib, lr: lib.optimistic_gradient_descent(lr), ()),
    "optimistic_adam": (lambda lib, lr: lib.optimistic_adam(lr), ()),
    # (its learning rate is the cap on the Polyak step, which binds at 0.05 here)
    "polyak_sgd": (lambda lib, lr: lib.polyak_sgd(lr), ("value",)),
    # transforms.py's catalogue transforms that take one
    "scale_by_rprop": (lambda lib, lr: lib.scale_by_rprop(lr), ()),
    "scale_by_polyak": (lambda lib, lr: lib.scale_by_polyak(max_learning_rate=lr), ("value",)),
    # jol.contrib
    "acprop": (lambda lib, lr: lib.contrib.acprop(lr), ()),
    "ademamix": (lambda lib, lr: lib.contrib.ademamix(lr), ()),
    "simplified_ademamix": (lambda lib, lr: lib.contrib.simplified_ademamix(lr), ()),
    "adopt": (lambda lib, lr: lib.contrib.adopt(lr), ()),
    "dadapt_adamw": (lambda lib, lr: lib.contrib.dadapt_adamw(lr), ()),
    # (DoG's step is scale-free: d loss / d lr is ~1e-4 at lr = 0.05, 2e-3 at its default 1)
    "dog": (lambda lib, lr: lib.contrib.dog(20 * lr), ()),
    "dowg": (lambda lib, lr: lib.contrib.dowg(lr), ()),
    "madgrad": (lambda lib, lr: lib.contrib.madgrad(lr), ()),
    "scale_by_madgrad": (lambda lib, lr: lib.contrib.scale_by_madgrad(lr), ()),
    "mechanize": (lambda lib, lr: lib.contrib.mechanize(lib.sgd(lr)), ()),
    "momo": (lambda lib, lr: lib.contrib.momo(lr), ("value",)),
    "momo_adam": (lambda lib, lr: lib.contrib.momo_adam(lr), ("value",)),
    "muon": (lambda lib, lr: lib.contrib.muon(lr), ()),
    "galore": (lambda lib, lr: lib.contrib.galore(lr, rank=1, update_proj_gap=3), ()),
    "prodigy": (lambda lib, lr: lib.contrib.prodigy(lr), ()),
    "sam": (
        lambda lib, lr: lib.contrib.sam(
            lib.sgd(lr), lib.chain(lib.contrib.normalize(), lib.sgd(0.02))
        ),
        (),
    ),
    "normalize": (lambda lib, lr: lib.chain(lib.contrib.normalize(), lib.sgd(lr)), ()),
    "schedule_free": (lambda lib, lr: lib.contrib.schedule_free(lib.sgd(lr), lr), ()),
    "schedule_free_adamw": (lambda lib, lr: lib.contrib.schedule_free_adamw(lr), ()),
    "schedule_free_sgd": (lambda lib, lr: lib.contrib.schedule_free_sgd(lr), ()),
    # (the loss is taken at the eval params of schedule_free_sgd's state)
    "schedule_free_eval_params": (
        lambda lib, lr: lib.contrib.schedule_free_sgd(lr),
        ("eval_params",),
    ),
    "sophia": (lambda lib, lr: lib.contrib.sophia(lr, update_interval=3), ("obj_fn",)),
    "reduce_on_plateau": (
        lambda lib, lr: lib.chain(
            lib.sgd(lr), lib.contrib.reduce_on_plateau(patience=1, accumulation_size=2)
        ),
        ("value",),
    ),
    "split_real_and_imaginary": (
        lambda lib, lr: lib.contrib.split_real_and_imaginary(lib.sgd(lr)),
        (),
    ),
    "dpsgd": (lambda lib, lr: lib.contrib.dpsgd(lr, 1.0, 0.1, 3), ("per_example",)),
    "differentially_private_aggregate": (
        lambda lib, lr: lib.chain(
            lib.contrib.differentially_private_aggregate(1.0, 0.1, 3), lib.sgd(lr)
        ),
        ("per_example",),
    ),
    # wrappers.py, around sgd / adam
    "masked": (lambda lib, lr: lib.chain(lib.masked(lib.scale(2.0), _mask), lib.sgd(lr)), ()),
    "multi_transform": (
        lambda lib, lr: lib.multi_transform({"a": lib.adam(lr), "b": lib.sgd(lr)}, _label),
        (),
    ),
    "partition": (
        lambda lib, lr: lib.partition({"a": lib.sgd(lr), "b": lib.set_to_zero()}, _label),
        (),
    ),
    "set_to_zero": (
        lambda lib, lr: lib.partition({"a": lib.set_to_zero(), "b": lib.sgd(lr)}, _label),
        (),
    ),
    "freeze": (lambda lib, lr: lib.chain(lib.freeze(_mask(make_params())), lib.sgd(lr)), ()),
    "selective_transform": (
        lambda lib, lr: lib.selective_transform(lib.sgd(lr), freeze_mask=_mask(make_params())),
        (),
    ),
    "named_chain": (
        lambda lib, lr: lib.named_chain(
            ("clip", lib.clip_by_global_norm(1.0)), ("sgd", lib.sgd(lr))
        ),
        (),
    ),
    "MultiSteps": (lambda lib, lr: lib.MultiSteps(lib.sgd(lr), 2).gradient_transformation(), ()),
    "skip_not_finite": (
        lambda lib, lr: lib.MultiSteps(
            lib.sgd(lr), 2, should_skip_update_fn=lib.skip_not_finite
        ).gradient_transformation(),
        (),
    ),
    "skip_large_updates": (
        lambda lib, lr: lib.MultiSteps(
            lib.sgd(lr), 1, should_skip_update_fn=functools.partial(_skip_if_large, lib=lib)
        ).gradient_transformation(),
        (),
    ),
    "apply_every": (lambda lib, lr: lib.chain(lib.sgd(lr), lib.apply_every(2)), ()),
    "lookahead": (lambda lib, lr: lib.lookahead(lib.sgd(lr), 3, 0.5), ("lookahead",)),
    "ema": (lambda lib, lr: lib.chain(lib.ema(0.5), lib.sgd(lr)), ()),
    "zero_nans": (lambda lib, lr: lib.chain(lib.zero_nans(), lib.sgd(lr)), ()),
    "keep_params_nonnegative": (
        lambda lib, lr: lib.chain(lib.sgd(lr), lib.keep_params_nonnegative()),
        (),
    ),
    "flatten": (lambda lib, lr: lib.flatten(lib.adam(lr)), ()),
    "conditionally_mask": (lambda lib, lr: lib.conditionally_mask(lib.sgd(lr), _odd), ()),
    "conditionally_transform": (
        lambda lib, lr: lib.chain(lib.conditionally_transform(lib.scale(0.3), _odd), lib.sgd(lr)),
        (),
    ),
    "adaptive_grad_clip": (
        lambda lib, lr: lib.chain(lib.adaptive_grad_clip(0.5), lib.sgd(lr)),
        (),
    ),
    "centralize": (lambda lib, lr: lib.chain(lib.centralize(), lib.sgd(lr)), ()),
    "clip_by_block_rms": (lambda lib, lr: lib.chain(lib.clip_by_block_rms(0.5), lib.sgd(lr)), ()),
    # (its scale factor is the step length: the learning rate)
    "normalize_by_update_norm": (lambda lib, lr: lib.normalize_by_update_norm(lr), ()),
    "add_noise": (lambda lib, lr: lib.chain(lib.add_noise(0.01, 0.55, 3), lib.sgd(lr)), ()),
    "stateless": (
        lambda lib, lr: lib.chain(
            lib.stateless(lambda u, p: jax.tree.map(lambda x, y: x + 0.1 * y, u, p)), lib.sgd(lr)
        ),
        (),
    ),
    "stateless_with_tree_map": (
        lambda lib, lr: lib.chain(
            lib.stateless_with_tree_map(lambda u, p: u - 0.1 * p), lib.sgd(lr)
        ),
        (),
    ),
    "snapshot": (lambda lib, lr: lib.chain(lib.snapshot("norm", _norm), lib.sgd(lr)), ()),
    # (optax's monitor state gains its measurements' leaves with the first update: that
    # step is taken before the scan)
    "monitor": (
        lambda lib, lr: lib.chain(lib.monitor({"norm": _norm}), lib.sgd(lr)),
        ("first_step_apart",),
    ),
    "measure_with_ema": (
        lambda lib, lr: lib.chain(
            lib.monitor({"e": lib.measure_with_ema(_norm, 0.9)}), lib.sgd(lr)
        ),
        ("first_step_apart",),
    ),
    "inject_hyperparams": (lambda lib, lr: lib.inject_hyperparams(lib.adam)(lr, b1=0.8), ()),
    # tree functions, on each step's updates; the learning rate is their step size
    "incremental_update": (
        lambda lib, lr: lib.chain(
            lib.sgd(1.0),
            lib.stateless(
                lambda u, p: lib.incremental_update(u, jax.tree.map(jnp.zeros_like, u), lr)
            ),
        ),
        (),
    ),
    "periodic_update": (
        lambda lib, lr: lib.chain(
            lib.sgd(lr),
            lib.stateless(
                lambda u, p: lib.periodic_update(u, jax.tree.map(lambda x: 0.5 * x, u), 4, 2)
            ),
        ),
        (),
    ),
    "per_example_global_norm_clip": (
        lambda lib, lr: lib.chain(
            lib.stateless(lambda u, p: lib.per_example_global_norm_clip(_per_example(u), 2.0)[0]),
            lib.sgd(lr),
        ),
        (),
    ),
    "per_example_layer_norm_clip": (
        lambda lib, lr: lib.chain(
            lib.stateless(lambda u, p: lib.per_example_layer_norm_clip(_per_example(u), 2.0)[0]),
            lib.sgd(lr),
        ),
        (),
    ),
    # identity forwards, scaled backwards: the hypergradient is where it shows
    "scale_gradient": (
        lambda lib, lr: lib.chain(
            lib.sgd(lr),
            lib.stateless(lambda u, p: jax.tree.map(lambda x: lib.scale_gradient(x, 0.3), u)),
        ),
        (),
    ),
}


def _odd(step):
    return step % 2 == 1


# Catalogue names with no learning rate to differentiate, or none that can be compared.
HYPERGRADIENT_EXCLUDED = {
    **dict.fromkeys(
        "scale_by_factored_rms scale_by_novograd scale_by_adan scale_by_sm3 "
        "scale_by_optimistic_gradient scale_by_distance_over_gradients scale_by_param_block_norm "
        "scale_by_param_block_rms scale_by_acprop scale_by_ademamix scale_by_simplified_ademamix "
        "scale_by_adopt scale_by_cocob scale_by_muon scale_by_galore "
        "hutchinson_estimator_diag_hessian".split(),
        "a preconditioner / estimator without a learning rate",
    ),
    **dict.fromkeys(
        "orthogonalize_via_newton_schulz scale_by_shape scale_by_dog scale_by_dowg "
        "scale_by_sophia".split(),
        "not in optax.contrib 0.2.8: nothing to compare against",
    ),
    "microbatch": "a function transformation, not an optimizer (no learning rate)",
    # COCOB re-derives each step from its own wealth and the distance travelled, so the
    # learning rate cancels out: optax's loss after 10 steps is the same to 7 digits for
    # lr = 0.05, 0.5 and 1, its derivative ~1e-7 (rounding); nothing to compare
    "cocob": "the learning rate cancels out of COCOB's trajectory",
}


def test_every_catalogue_name_has_a_hypergradient_case():
    assert not set(HYPERGRADIENT_CASES) & set(HYPERGRADIENT_EXCLUDED)
    assert set(HYPERGRADIENT_CASES) | set(HYPERGRADIENT_EXCLUDED) == catalogue_names()


def _unrolled_loss(lib, name, lr, steps=10):
    """The loss after ``steps`` steps of ``HYPERGRADIENT_CASES[name]`` built with ``lr``,
    each update given what the case needs."""
    build_opt, needs = HYPERGRADIENT_CASES[name]
    opt = build_opt(lib, lr)
    params = params_without_scalar() if "no_scalar" in needs else make_params()
    targets = _targets(params, steps)
    start = lib.LookaheadParams.init_synced(params) if "lookahead" in needs else params

    def body(carry, target):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p.fast if "lookahead" in needs else p, target)
        extra = {}
        if "value" in needs:
            extra["value"] = value
        if "obj_fn" in needs:
            extra["obj_fn"] = lambda q: loss(q, target)
        if "per_example" in needs:
            g = _per_example(g)
        u, s = opt.update(g, s, p, **extra)
        return (lib.apply_updates(p, u), s), None

    carry, xs = (start, opt.init(start)), targets
    if "first_step_apart" in needs:
        carry, _ = body(carry, jax.tree.map(lambda c: c[0], xs))
        xs = jax.tree.map(lambda c: c[1:], xs)
    (p, s), _ = lax.scan(body, carry, xs)
    if "lookahead" in needs:
        p = p.slow
    if "eval_params" in needs:
        p = lib.contrib.schedule_free_eval_params(s, p)
    return loss(p, jax.tree.map(lambda c: c[-1], targets))


@pytest.mark.filterwarnings("ignore:`optimistic_adam` is deprecated")
@pytest.mark.parametrize("name", sorted(HYPERGRADIENT_CASES))
def test_catalogue_hypergradient_wrt_learning_rate(name):
    def hypergrad(lib):
        f = jax.value_and_grad(lambda lr: _unrolled_loss(lib, name, lr))
        # conftest's options only: per-jit LLVM settings beyond them (no optimisation) were
        # followed by a segmentation fault in a later XLA:CPU compile of the suite
        return fast_jit(f)(0.05)

    (value, grad), (ref_value, ref_grad) = hypergrad(jol), hypergrad(optax)
    assert abs(float(ref_grad)) > 1e-4, "the learning rate does not reach the loss"
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4)
