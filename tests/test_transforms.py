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

# optax's scale_by_lion also has `mode` and `smooth_beta`, which are not part of ours.
ONLY = {"scale_by_lion": ("b1", "b2", "mu_dtype")}


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
