"""Core types: ``Optimizer`` as a pytree of its hyperparameters (one trace for many
values, batches through vmap), ``apply_updates``, interoperability with optax, and
structure checks on the grads."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import (
    assert_trees_close,
    build,
    fast_jit,
    make_params,
    max_change,
    run_optax,
    train,
)

import jaxopt_lab as jol

STEPS = 20


def _train_jol(opt, params):
    return train(opt, params, STEPS, apply_updates=jol.apply_updates)[0]


def _train_optax(opt, params):
    return train(opt, params, STEPS, apply_updates=optax.apply_updates)[0]


def _reference(expr, params):
    return run_optax(build(expr, optax), params, STEPS)[0]


# --------------------------------------------------------------------------------------
# Optimizers are pytrees whose leaves are their hyperparameters
# --------------------------------------------------------------------------------------


def test_optimizer_is_an_init_update_named_tuple():
    opt = jol.adam(0.1)
    assert isinstance(opt, jol.Optimizer) and isinstance(opt, tuple)
    assert jol.Optimizer._fields == ("init", "update")
    params = make_params()
    updates, state = opt.update(params, opt.init(params), params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)


def test_hyperparameters_are_leaves():
    leaves = [float(x) for x in jax.tree.leaves(jol.adam(0.1))]
    assert np.isclose(leaves, 0.1, rtol=1e-7, atol=0).any()
    assert jax.tree.structure(jol.adam(0.1)) == jax.tree.structure(jol.adam(0.2))


@pytest.mark.parametrize(
    "first, second",
    [
        ("adam(0.1)", "adam(0.2)"),
        ("sgd(0.1, momentum=0.9)", "sgd(0.03, momentum=0.5)"),
        ("adam(linear_schedule(0.1, 0.01, 10))", "adam(linear_schedule(0.3, 0.05, 10))"),
    ],
)
def test_jit_traces_once_for_new_values(first, second):
    """``train(opt, params)`` jitted with the optimizer as an argument compiles once for
    configurations that differ only in numbers, and gives the new numbers' results."""
    traces = []

    @fast_jit
    def fit(opt, params):
        traces.append(None)
        return _train_jol(opt, params)

    params = make_params()
    for expr in (first, second):
        assert_trees_close(fit(build(expr, jol), params), _reference(expr, params), 1e-6)
    assert len(traces) == 1


def test_vmap_sweep_over_64_learning_rates_traces_once():
    traces = []
    params = make_params()

    def run(lr):
        traces.append(None)
        return _train_jol(jol.adam(lr), params)

    sweep = fast_jit(jax.vmap(run))
    lrs = jnp.geomspace(1e-3, 0.3, 64)
    out = sweep(lrs)
    sweep(lrs / 2)
    assert len(traces) == 1
    ref = fast_jit(jax.vmap(lambda lr: _train_optax(optax.adam(lr), params)))(lrs)
    assert_trees_close(out, ref, 1e-6)


def test_batch_of_optimizers_through_vmap():
    """A stacked pytree of optimizers (learning rate and b1 differ) is vmappable and
    each member gives its own optimizer's numbers."""
    configs = [(0.01, 0.9), (0.05, 0.5), (0.2, 0.0)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *[jol.adam(lr, b1=b1) for lr, b1 in configs])
    params = make_params()
    out = fast_jit(jax.vmap(_train_jol, in_axes=(0, None)))(batch, params)
    lrs, b1s = (jnp.asarray(c) for c in zip(*configs, strict=True))
    ref = fast_jit(jax.vmap(lambda lr, b1: _train_optax(optax.adam(lr, b1=b1), params)))(lrs, b1s)
    assert_trees_close(out, ref, 1e-6)
    assert max_change(jax.tree.map(lambda x: x[0], out), jax.tree.map(lambda x: x[2], out)) > 1e-2


# --------------------------------------------------------------------------------------
# apply_updates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param_dtype, update_dtype",
    [
        ("bfloat16", "float32"),
        ("float32", "bfloat16"),
        ("float32", "float32"),
        ("float16", "float32"),
    ],
)
def test_apply_updates_keeps_param_dtypes(param_dtype, update_dtype):
    params = jax.tree.map(lambda x: x.astype(param_dtype), make_params())
    updates = jax.tree.map(lambda x: (0.1 * jnp.cos(x)).astype(update_dtype), make_params())
    ours, ref = jol.apply_updates(params, updates), optax.apply_updates(params, updates)
    assert all(x.dtype == param_dtype for x in jax.tree.leaves(ours))
    assert_trees_close(ours, ref, 0.0)


def test_apply_updates_none_leaves():
    params = {"w": jnp.ones(3), "frozen": None, "nested": [None, jnp.zeros(())]}
    updates = {"w": jnp.full(3, 0.5), "frozen": None, "nested": [None, jnp.ones(())]}
    ours = jol.apply_updates(params, updates)
    assert ours["frozen"] is None and ours["nested"][0] is None
    assert_trees_close(ours, optax.apply_updates(params, updates), 0.0)


# --------------------------------------------------------------------------------------
# Interoperability with optax
# --------------------------------------------------------------------------------------


def test_ours_inside_optax_chain():
    params = make_params()
    mixed = optax.chain(optax.clip_by_global_norm(1.0), jol.adam(0.05))
    pure = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05))
    assert_trees_close(run_optax(mixed, params)[0], run_optax(pure, params)[0], 1e-6)


def test_optax_inside_our_chain():
    params = make_params()
    clip, adam = optax.clip_by_global_norm(1.0), optax.scale_by_adam()
    mixed = jol.chain(clip, adam, jol.scale_by_learning_rate(0.05))
    pure = optax.chain(clip, adam, optax.scale_by_learning_rate(0.05))
    ours = fast_jit(lambda p: train(mixed, p, apply_updates=jol.apply_updates)[0])(params)
    assert_trees_close(ours, run_optax(pure, params)[0], 1e-6)


# --------------------------------------------------------------------------------------
# Grads whose structure differs from the params'
# --------------------------------------------------------------------------------------


def _missing_leaf(tree):
    return {"list": tree["list"][:1], "tuple": tree["tuple"], "empty": {}}


def _renamed_key(tree):
    return {"list": tree["list"], "tupel": tree["tuple"], "empty": {}}


def _extra_leaf(tree):
    return dict(tree, extra=jnp.zeros(2))


@pytest.mark.parametrize(
    "corrupt", [_missing_leaf, _renamed_key, _extra_leaf], ids=lambda f: f.__name__[1:]
)
@pytest.mark.parametrize(
    "expr",
    [
        "sgd(0.1)",
        "sgd(0.1, momentum=0.9)",
        "adam(0.1)",
        "chain(clip(1.0), scale_by_rms(), scale(-0.1))",
    ],
)
def test_mismatched_grads(expr, corrupt):
    params = make_params()
    opt = build(expr, jol)
    state = opt.init(params)
    grads = corrupt(params)
    with pytest.raises(ValueError) as info:
        opt.update(grads, state, params)
    message = str(info.value)
    assert str(jax.tree.structure(grads)) in message
    assert str(jax.tree.structure(params)) in message


@pytest.mark.parametrize("expr", ["sgd(0.1, momentum=0.9)", "adam(0.1)"])
def test_mismatched_grads_without_params(expr):
    """Without params, the state is the reference."""
    params = make_params()
    opt = build(expr, jol)
    grads = _missing_leaf(params)
    with pytest.raises(ValueError) as info:
        opt.update(grads, opt.init(params), None)
    assert str(jax.tree.structure(grads)) in str(info.value)
