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


# hypergradients through unrolled steps, for the catalogue: d(loss after 10 steps)/d(lr)
HYPERGRADIENT_CASES = {
    "nadamw": lambda lib, lr: lib.nadamw(lr, weight_decay=0.01),
    "adan": lambda lib, lr: lib.adan(lr),
    "novograd": lambda lib, lr: lib.novograd(lr, b2=0.3),
    "lars": lambda lib, lr: lib.lars(lr, weight_decay=0.01),
    "adopt": lambda lib, lr: lib.contrib.adopt(lr),
    "ademamix": lambda lib, lr: lib.contrib.ademamix(lr),
    "schedule_free_adamw": lambda lib, lr: lib.contrib.schedule_free_adamw(lr),
    "flatten": lambda lib, lr: lib.flatten(lib.adam(lr)),
}


@pytest.mark.parametrize("name", sorted(HYPERGRADIENT_CASES))
def test_catalogue_hypergradient_wrt_learning_rate(name):
    params = make_params()

    def hypergrad(lib):
        def f(lr):
            return final_loss(HYPERGRADIENT_CASES[name](lib, lr), params, 10, lib.apply_updates)

        return fast_jit(jax.value_and_grad(f))(0.05)

    (value, grad), (ref_value, ref_grad) = hypergrad(jol), hypergrad(optax)
    assert abs(float(ref_grad)) > 1e-4
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4)
