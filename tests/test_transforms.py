"""The building blocks against optax: signatures, numbers (each transform followed by a
small descent step, so 200 steps of its state evolution show in the params),
argument validation and ``apply_if_finite`` with non-finite gradients."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import (
    RTOL,
    TRANSFORMS,
    assert_trees_close,
    check_against_optax,
    make_params,
    run_jol,
    run_optax,
)

import jaxopt_lab as jol

# Transforms whose signature is compared on some arguments only (none at present).
ONLY: dict[str, tuple[str, ...]] = {}


def _signature(fn, only=None):
    """(name, kind, default) of each argument; the name of ``*args`` does not matter."""
    params = inspect.signature(fn).parameters.values()
    return [
        ("*" if p.kind is p.VAR_POSITIONAL else p.name, p.kind, p.default)
        for p in params
        if only is None or p.name in only
    ]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_signature_matches_optax(name):
    only = ONLY.get(name)
    assert _signature(getattr(jol, name)) == _signature(getattr(optax, name), only)


def _descend(transform, lr=0.05):
    return f"chain({transform}, scale(-{lr}))"


YOGI_VALUES = _descend(
    "scale_by_yogi(b1=0.8, b2=0.99, eps=1e-2, eps_root=1e-6, initial_accumulator_value=0.1)"
)


# Per transform, as for the aliases: defaults; numeric hyperparameters non-default (same
# tree structure, so our runner reuses the compile); flags / dtypes / masks / schedules.
CASES = [
    "chain(clip(0.5), trace(0.5), scale(-0.05))",
    "chain(chain(scale_by_rms(), scale(0.5)), chain(identity()), scale(-0.05))",
    "scale(-0.05)",
    "scale_by_learning_rate(0.05)",
    _descend("scale_by_learning_rate(linear_schedule(0.05, 0.01, 200), flip_sign=False)", 1.0),
    _descend("scale_by_schedule(cosine_decay_schedule(0.05, 150))", 1.0),
    _descend("scale_by_adam()"),
    _descend("scale_by_adam(b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6)"),
    _descend("scale_by_adam(mu_dtype=jnp.bfloat16, nesterov=True)"),
    _descend("scale_by_amsgrad()"),
    _descend("scale_by_amsgrad(b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6)"),
    _descend(
        "scale_by_amsgrad(mu_dtype=jnp.bfloat16, bias_correction_mu=False, "
        "bias_correction_nu=False)"
    ),
    _descend("scale_by_adamax()"),
    _descend("scale_by_adamax(b1=0.8, b2=0.99, eps=1e-4)"),
    _descend("scale_by_belief()"),
    _descend("scale_by_belief(b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10)"),
    _descend("scale_by_belief(nesterov=True)"),
    _descend("scale_by_yogi()"),
    YOGI_VALUES,
    _descend("scale_by_radam()"),
    _descend("scale_by_radam(b1=0.8, b2=0.99, eps=1e-4, eps_root=1e-6, threshold=8.0)"),
    _descend("scale_by_radam(nesterov=True)"),
    _descend("scale_by_lion()", 0.01),
    _descend("scale_by_lion(b1=0.8, b2=0.9)", 0.01),
    _descend("scale_by_lion(mu_dtype=jnp.bfloat16)", 0.01),
    _descend("scale_by_lion(mode='smooth')", 0.01),
    _descend("scale_by_lion(b1=0.8, mode='smooth', smooth_beta=3.0)", 0.01),
    _descend("scale_by_lion(mode='refined')", 0.01),
    _descend("scale_by_rms()", 0.01),
    _descend("scale_by_rms(decay=0.8, eps=1e-4, initial_scale=0.5)", 0.01),
    _descend("scale_by_rms(eps_in_sqrt=False, bias_correction=True)", 0.01),
    _descend("scale_by_stddev()", 0.01),
    _descend("scale_by_stddev(decay=0.8, eps=1e-4, initial_scale=0.5)", 0.01),
    _descend("scale_by_stddev(eps_in_sqrt=False)", 0.01),  # (both: NaN, see rmsprop)
    _descend("scale_by_stddev(bias_correction=True)", 0.01),
    _descend("scale_by_rss()", 0.1),
    _descend("scale_by_rss(initial_accumulator_value=0.5, eps=1e-3)", 0.1),
    _descend("scale_by_adadelta()", 1.0),
    _descend("scale_by_adadelta(rho=0.8, eps=1e-4)", 1.0),
    _descend("scale_by_sign()", 0.01),
    _descend("scale_by_trust_ratio()", 0.02),
    _descend("scale_by_trust_ratio(min_norm=0.5, trust_coefficient=0.5, eps=1e-3)", 0.02),
    _descend("trace(0.9)", 0.02),
    _descend("trace(0.5)", 0.02),
    _descend("trace(0.9, nesterov=True, accumulator_dtype=jnp.bfloat16)", 0.02),
    _descend("clip_by_global_norm(1.0)"),
    _descend("add_decayed_weights()"),
    _descend("add_decayed_weights(0.3)"),
    _descend("add_decayed_weights(linear_schedule(0.5, 0.0, 100), mask=MASK)"),
    _descend("add_decayed_weights(0.3, mask=mask_fn)"),
    "chain(apply_if_finite(scale_by_adam(), 3), scale(-0.05))",
]


# Float64 (1e-12) for what no alias reaches: the aliases' float64 cases already run
# scale_by_adam & co. through adam & co.; apply_if_finite has its own float64 test below.
FLOAT64_CASES = [
    "chain(clip(0.5), trace(0.5), scale(-0.05))",
    "chain(chain(scale_by_rms(), scale(0.5)), chain(identity()), scale(-0.05))",
    _descend("scale_by_learning_rate(linear_schedule(0.05, 0.01, 200), flip_sign=False)", 1.0),
    _descend("scale_by_schedule(cosine_decay_schedule(0.05, 150))", 1.0),
    YOGI_VALUES,
    _descend("scale_by_stddev(decay=0.8, eps=1e-4, initial_scale=0.5)", 0.01),
    _descend("scale_by_stddev(eps_in_sqrt=False)", 0.01),
    _descend("scale_by_trust_ratio(min_norm=0.5, trust_coefficient=0.5, eps=1e-3)", 0.02),
    _descend("clip_by_global_norm(1.0)"),
    _descend("add_decayed_weights(linear_schedule(0.5, 0.0, 100), mask=MASK)"),
]


def test_every_transform_is_covered():
    covered = {name for name in TRANSFORMS for case in CASES if f"{name}(" in case}
    assert covered == set(TRANSFORMS)
    assert set(FLOAT64_CASES) <= set(CASES)


@pytest.mark.parametrize(
    "expr, dtype",
    [pytest.param(c, "float32", id=f"float32-{c}") for c in CASES]
    + [pytest.param(c, "float64", id=f"float64-{c}") for c in FLOAT64_CASES],
    indirect=["dtype"],
)
def test_matches_optax(expr, dtype):
    check_against_optax(expr, dtype)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------

WITH_EPS = [n for n in TRANSFORMS if "eps" in inspect.signature(getattr(optax, n)).parameters]


@pytest.mark.parametrize("name", WITH_EPS)
def test_negative_eps(name):
    with pytest.raises(ValueError, match="eps"):
        getattr(jol, name)(eps=-1e-3)


def test_negative_learning_rate():
    with pytest.raises(ValueError, match="learning_rate"):
        jol.scale_by_learning_rate(-0.1)


def test_lion_mode_is_checked():
    with pytest.raises(jol.InputError, match="mode"):
        jol.scale_by_lion(mode="soft")
    with pytest.raises(jol.InputError, match="smooth_beta"):
        jol.scale_by_lion(mode="smooth", smooth_beta="2")


def test_lion_smooth_beta_is_a_leaf():
    """A new ``smooth_beta`` reuses the compiled program; a new mode is new structure."""
    smooth = [jol.scale_by_lion(mode="smooth", smooth_beta=b) for b in (1.0, 3.0)]
    assert jax.tree.structure(smooth[0]) == jax.tree.structure(smooth[1])
    assert 3.0 in jax.tree.leaves(smooth[1])
    refined = jol.scale_by_lion(mode="refined")
    assert jax.tree.structure(refined) != jax.tree.structure(smooth[0])


def test_literal_zero_weight_decay_skips_the_params_as_optax_does():
    """A literal 0 adds nothing, not even ``0 * inf``; a traced weight decay keeps the
    term (so 0 and 0.1 share one compiled program) and, on finite params, the numbers."""
    params = {"a": jnp.array([1.0, jnp.inf]), "b": jnp.array(2.0)}
    grads = {"a": jnp.array([0.5, 0.25]), "b": jnp.array(-1.0)}
    for lib in (jol, optax):
        opt = lib.add_decayed_weights(0.0)
        updates, _ = opt.update(grads, opt.init(params), params)
        assert_trees_close(updates, grads, 0.0)  # no NaN from 0 * inf
    traces = []

    @jax.jit
    def run(opt, p):
        traces.append(1)
        return opt.update(grads, opt.init(p), p)[0]

    finite = {"a": jnp.array([1.0, 3.0]), "b": jnp.array(2.0)}
    assert_trees_close(run(jol.add_decayed_weights(0.0), finite), grads, 0.0)
    decayed = run(jol.add_decayed_weights(0.1), finite)
    assert len(traces) == 1
    np.testing.assert_allclose(decayed["a"], [0.6, 0.55], rtol=1e-6)


@pytest.mark.parametrize("name", ["scale_by_adam", "trace", "clip_by_global_norm"])
def test_unknown_keyword(name):
    with pytest.raises(TypeError, match="nesterof"):
        getattr(jol, name)(0.9, nesterof=True)


# --------------------------------------------------------------------------------------
# apply_if_finite
# --------------------------------------------------------------------------------------

BAD_STEPS = np.array([5, 20, 21, 60, 61, 62, 100, 101, 102, 103, 104])


def _nan_grads(grads, step):
    """NaN in one leaf at BAD_STEPS (up to 5 in a row), inf in another at step 150."""
    a, b = grads["list"]
    c, s, e = grads["tuple"]
    b = jnp.where(jnp.any(step == jnp.asarray(BAD_STEPS, step.dtype)), jnp.nan, b)
    c = jnp.where(step == 150, jnp.inf, c)
    return {"list": [a, b], "tuple": (c, s, e), "empty": grads["empty"]}


@pytest.mark.parametrize("max_errors", [5, 3])
def test_apply_if_finite(max_errors, dtype):
    """With 5 allowed errors every bad step is skipped; with 3, the 4th NaN in a row is
    applied (as optax does) and poisons the params."""
    params = make_params(dtype)

    def make(lib):
        return lib.apply_if_finite(lib.chain(lib.scale_by_adam(), lib.scale(-0.05)), max_errors)

    ours, ours_state = run_jol(make(jol), params, grad_hook=_nan_grads)
    ref, ref_state = run_optax(make(optax), params, grad_hook=_nan_grads)
    finite = bool(all(np.all(np.isfinite(x)) for x in jax.tree.leaves(ref)))
    assert finite == (max_errors == 5)
    assert_trees_close(ours, ref, RTOL[dtype])
    for field in ("notfinite_count", "last_finite", "total_notfinite"):
        np.testing.assert_array_equal(
            getattr(ours_state, field), getattr(ref_state, field), err_msg=field
        )
    assert int(ref_state.total_notfinite) > 0


# --------------------------------------------------------------------------------------
# The core catalogue's transforms (issue 17) against optax, each followed by a descent
# step as above: defaults, changed values, flags/dtypes, in float32 and float64.
# Helpers in catalogue.py (sm3 and DoG on params without the 0-d leaf, Polyak with the
# loss passed as value=).
# --------------------------------------------------------------------------------------

from catalogue import (  # noqa: E402 - kept with the section it serves
    CATALOGUE_TRANSFORMS,
    build_catalogue,
    check_catalogue,
    run_jol_with_value,
)

CATALOGUE_CASES = [
    _descend("scale_by_factored_rms()"),
    _descend("scale_by_factored_rms(decay_rate=0.7, step_offset=-2, epsilon=1e-20)"),
    _descend("scale_by_factored_rms(min_dim_size_to_factor=2)"),
    _descend("scale_by_factored_rms(factored=False, min_dim_size_to_factor=2)"),
    _descend("scale_by_novograd()"),
    _descend("scale_by_novograd(b1=0.8, b2=0.3, eps=1e-4, eps_root=1e-6, weight_decay=0.01)"),
    _descend("scale_by_novograd(mu_dtype=jnp.bfloat16)"),
    _descend("scale_by_adan()"),
    _descend("scale_by_adan(b1=0.9, b2=0.8, b3=0.95, eps=1e-4, eps_root=1e-6)"),
    "chain(scale_by_rprop(0.01), scale(-1.0))",
    "chain(scale_by_rprop(0.02, eta_minus=0.4, eta_plus=1.1, min_step_size=1e-4, "
    "max_step_size=0.5), scale(-1.0))",
    _descend("scale_by_sm3()", 0.1),
    _descend("scale_by_sm3(b1=0.5, b2=0.9, eps=1e-4)", 0.1),
    _descend("scale_by_optimistic_gradient()"),
    _descend("scale_by_optimistic_gradient(alpha=0.5, beta=0.3)"),
    _descend("scale_by_polyak(max_learning_rate=0.1)", 1.0),
    _descend("scale_by_polyak(f_min=1.0, max_learning_rate=0.2, eps=1e-3)", 0.5),
    _descend("scale_by_polyak(max_learning_rate=0.1, variant='sps+')", 1.0),
    _descend("scale_by_distance_over_gradients()", 1.0),
    _descend("scale_by_distance_over_gradients(reps_rel=1e-3, eps=1e-6, global_scale=0.5)", 1.0),
    _descend("scale_by_distance_over_gradients(param_dtype=jnp.bfloat16)", 1.0),
    _descend("scale_by_param_block_norm()", 0.01),
    _descend("scale_by_param_block_norm(min_scale=0.5)", 0.01),
    _descend("scale_by_param_block_rms()", 0.02),
    _descend("scale_by_param_block_rms(min_scale=0.5)", 0.02),
]


def test_catalogue_transforms_are_covered():
    covered = {n for n in CATALOGUE_TRANSFORMS for case in CATALOGUE_CASES if f"{n}(" in case}
    assert covered == set(CATALOGUE_TRANSFORMS)


# optax's default decay_rate_fn is its own function object; ours is ours (same math).
CATALOGUE_ONLY = {
    "scale_by_factored_rms": (
        "factored",
        "decay_rate",
        "step_offset",
        "min_dim_size_to_factor",
        "epsilon",
    )
}


@pytest.mark.parametrize("name", CATALOGUE_TRANSFORMS)
def test_catalogue_signature_matches_optax(name):
    only = CATALOGUE_ONLY.get(name)
    assert _signature(getattr(jol, name), only) == _signature(getattr(optax, name), only)


@pytest.mark.parametrize("expr", CATALOGUE_CASES, ids=str)
def test_catalogue_matches_optax(expr, dtype):
    check_catalogue(expr, dtype)


def test_factored_rms_takes_a_decay_rate_fn():
    """A custom schedule for the second-moment decay, as optax's (Zhai et al., 2021)."""

    def capped(step, decay_rate):
        return jnp.minimum(1.0 - (step + 1.0) ** (-decay_rate), 0.9)

    expr = "chain(scale_by_factored_rms(min_dim_size_to_factor=2, decay_rate_fn=fn), scale(-0.05))"
    ours = run_jol(eval(expr, vars(jol) | {"fn": capped}), make_params())[0]  # noqa: S307
    ref = run_optax(eval(expr, vars(optax) | {"fn": capped}), make_params())[0]  # noqa: S307
    assert_trees_close(ours, ref, RTOL["float32"])


def test_distance_over_gradients_keeps_a_scalar_leaf_scalar():
    """optax 0.2.8 gives a 0-d leaf a (1,) update; ours keeps the leaf's shape, and its
    numbers are those of the same leaf held as a 1-element vector."""
    params = make_params()
    as_vector = jax.tree.map(lambda x: x.reshape(1) if x.ndim == 0 else x, params)
    opt = jol.chain(jol.scale_by_distance_over_gradients(), jol.scale(-1.0))
    ours, ref = run_jol(opt, params, 50)[0], run_jol(opt, as_vector, 50)[0]
    assert_trees_close(ours, jax.tree.map(lambda x, p: x.reshape(p.shape), ref, params), 1e-6)


def test_polyak_runs_with_a_traced_value():
    out, _ = run_jol_with_value(jol.scale_by_polyak(), make_params(), 3)
    assert jax.tree.structure(out) == jax.tree.structure(make_params())


CATALOGUE_BAD = [
    ("scale_by_factored_rms(decay_rate=-0.8)", "decay_rate"),
    ("scale_by_factored_rms(epsilon=-1.0)", "epsilon"),
    ("scale_by_factored_rms(step_offset='a')", "step_offset"),
    ("scale_by_factored_rms(min_dim_size_to_factor=-1)", "min_dim_size_to_factor"),
    ("scale_by_factored_rms(decay_rate_fn=0.8)", "decay_rate_fn"),
    ("scale_by_novograd(b1=1.5)", "b1"),
    ("scale_by_novograd(mu_dtype='int32')", "mu_dtype"),
    ("scale_by_adan(b3=-0.1)", "b3"),
    ("scale_by_rprop(-0.1)", "learning_rate"),
    ("scale_by_rprop(0.1, eta_minus=-0.5)", "eta_minus"),
    ("scale_by_rprop(0.1, max_step_size=-1.0)", "max_step_size"),
    ("scale_by_sm3(b2=1.5)", "b2"),
    ("scale_by_optimistic_gradient(beta='a')", "beta"),
    ("scale_by_polyak(max_learning_rate=-1.0)", "max_learning_rate"),
    ("scale_by_polyak(variant='sgd')", "variant"),
    ("scale_by_distance_over_gradients(reps_rel=-1.0)", "reps_rel"),
    ("scale_by_distance_over_gradients(param_dtype='int8')", "param_dtype"),
    ("scale_by_param_block_norm(min_scale=-1.0)", "min_scale"),
    ("scale_by_param_block_rms(min_scale='a')", "min_scale"),
]


def test_catalogue_bad_input_covers_every_transform():
    assert {case.split("(")[0] for case, _ in CATALOGUE_BAD} == set(CATALOGUE_TRANSFORMS)


@pytest.mark.parametrize("expr, argument", CATALOGUE_BAD, ids=[e for e, _ in CATALOGUE_BAD])
def test_catalogue_bad_input(expr, argument):
    with pytest.raises(jol.InputError, match=f"`{argument}`"):
        build_catalogue(expr, jol)


@pytest.mark.parametrize(
    "name",
    ["scale_by_factored_rms", "scale_by_distance_over_gradients", "scale_by_param_block_rms"],
)
def test_catalogue_needs_params(name):
    opt = getattr(jol, name)()
    params = make_params()
    with pytest.raises(jol.InputError, match="params"):
        opt.update(params, opt.init(params))


def test_polyak_needs_the_value():
    opt = jol.scale_by_polyak()
    with pytest.raises(jol.InputError, match="value"):
        opt.update(make_params(), opt.init(make_params()))
