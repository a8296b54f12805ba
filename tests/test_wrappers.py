"""Wrappers and composition (jaxopt_lab.wrappers) against optax 0.2.8: the same
configuration built from both libraries, 200 steps on the nested pytree of conftest,
float32 within 1e-6 and float64 within 1e-12; wrappers keep the leaves of what they wrap
(one program for new values, sweepable); bad input raises InputError naming the
argument."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import (
    ALIASES,
    MASK,
    RTOL,
    SCHEDULES,
    TRANSFORMS,
    assert_trees_close,
    enable_x64,
    fast_jit,
    loss,
    make_params,
    mask_fn,
    max_change,
    run_jol,
    run_optax,
    state_signature,
)

import jaxopt_lab as jol

WRAPPERS = (
    "masked multi_transform partition freeze selective_transform named_chain MultiSteps "
    "apply_every lookahead ema skip_not_finite skip_large_updates zero_nans "
    "keep_params_nonnegative flatten conditionally_mask conditionally_transform "
    "adaptive_grad_clip centralize clip_by_block_rms per_example_global_norm_clip "
    "per_example_layer_norm_clip normalize_by_update_norm scale_gradient set_to_zero "
    "add_noise stateless stateless_with_tree_map snapshot monitor measure_with_ema "
    "periodic_update incremental_update inject_hyperparams"
).split()

LABELS = {"list": ["a", "b"], "tuple": ("b", "a", ()), "empty": {}}


def label_fn(params):
    return jax.tree.map(lambda p: "a" if p.ndim >= 2 else "b", params)


def every_third_skipped(step):
    return step % 3 != 0


def halve(updates, params):
    return jax.tree.map(lambda u, p: 0.5 * u + 0.01 * p, updates, params)


def damp(u, p):
    return 0.5 * u if p is None else 0.5 * u + 0.01 * p


def norm_fn(updates):
    return optax.tree.norm(updates)


def nan_now_and_then(grads, step):
    """A NaN in one leaf at steps 3, 10, 17, ...: exercises the skip functions."""
    bad = step % 7 == 3
    return jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), grads)


def _namespace(lib):
    names = ALIASES + TRANSFORMS + SCHEDULES + WRAPPERS
    space = {name: getattr(lib, name) for name in names if hasattr(lib, name)}
    return space | dict(
        jnp=jnp,
        MASK=MASK,
        LABELS=LABELS,
        mask_fn=mask_fn,
        label_fn=label_fn,
        cond=every_third_skipped,
        halve=halve,
        damp=damp,
        norm_fn=norm_fn,
        partial=functools.partial,
    )


def build(expr, lib):
    return eval(expr, _namespace(lib))  # noqa: S307 - the literals below


def check(expr, dtype, grad_hook=None):
    params = make_params(dtype)
    expected, ref_state = run_optax(build(expr, optax), params, grad_hook=grad_hook)
    actual, state = run_jol(build(expr, jol), params, grad_hook=grad_hook)
    assert max_change(params, expected) > 1e-2, "configuration makes no progress"
    assert state_signature(state) == state_signature(ref_state)
    assert_trees_close(actual, expected, RTOL[dtype])


# Every wrapper's 200 steps against optax in float32 and float64 (the first case is
# also the leaf test's).
CASES = [
    "chain(masked(scale_by_adam(), MASK), scale(-0.05))",
    "multi_transform({'a': adam(0.1), 'b': sgd(0.05, momentum=0.5)}, LABELS)",
    "partition({'a': adam(0.1), 'b': rmsprop(0.01)}, label_fn)",
    "chain(freeze(MASK), sgd(0.1))",
    "selective_transform(adam(0.1), freeze_mask=MASK)",
    "named_chain(('clip', clip_by_global_norm(1.0)), ('adam', adam(0.1)))",
    "MultiSteps(adam(0.1), 3).gradient_transformation()",
    "chain(apply_every(3), sgd(0.05))",
    "chain(ema(0.9), sgd(0.1))",
    "chain(zero_nans(), adam(0.1))",
    "chain(sgd(0.1), keep_params_nonnegative())",
    "flatten(adam(0.1))",
    "conditionally_mask(adam(0.1), cond)",
    "chain(conditionally_transform(scale(0.3), cond), sgd(0.1))",
    "chain(adaptive_grad_clip(0.1), sgd(0.1))",
    "chain(centralize(), sgd(0.1))",
    "chain(clip_by_block_rms(0.5), sgd(0.1))",
    "chain(normalize_by_update_norm(), sgd(0.1))",
    "chain(add_noise(0.01, 0.55, 3), sgd(0.1))",
    "chain(stateless(halve), sgd(0.1))",
    "chain(stateless_with_tree_map(damp), sgd(0.1))",
    "chain(snapshot('norm', norm_fn), sgd(0.1))",
    "inject_hyperparams(adam)(learning_rate=linear_schedule(0.1, 0.01, 100), b1=0.8)",
]

# Their options, in float64 only (1e-12 shows any change of formula or dtype).
OPTIONS = [
    "chain(masked(trace(0.9), mask_fn), scale(-0.02))",
    "MultiSteps(sgd(0.05), 2, use_grad_mean=False).gradient_transformation()",
    "chain(ema(0.8, debias=False, accumulator_dtype=jnp.float32), sgd(0.1))",
    "chain(normalize_by_update_norm(0.5, eps=1e-3), sgd(0.1))",
    "inject_hyperparams(sgd, static_args='nesterov')(0.05, momentum=0.9, nesterov=True)",
    "partition({'a': inject_hyperparams(adamw)(0.1, weight_decay=0.1), 'b': sgd(0.05)}, LABELS)",
]


@pytest.mark.parametrize("expr", CASES)
def test_matches_optax(expr, dtype):
    check(expr, dtype)


@pytest.mark.parametrize("dtype", ["float64"], indirect=True)
@pytest.mark.parametrize("expr", OPTIONS)
def test_option_matches_optax(expr, dtype):
    check(expr, dtype)


@pytest.mark.parametrize(
    "expr",
    [
        "MultiSteps(adam(0.1), 2, should_skip_update_fn=skip_not_finite).gradient_transformation()",
        "MultiSteps(sgd(0.05), 3, should_skip_update_fn="
        "partial(skip_large_updates, max_squared_norm=30.0)).gradient_transformation()",
        "chain(zero_nans(), adam(0.1))",
    ],
)
def test_skips_match_optax(expr):
    check(expr, "float32", grad_hook=nan_now_and_then)


@pytest.mark.parametrize("name", WRAPPERS)
def test_signature_matches_optax(name):
    def signature(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert signature(getattr(jol, name)) == signature(getattr(optax, name))


def test_wrapper_keeps_leaves_and_compiles_once():
    """New values of wrapped hyperparameters reuse the compiled program."""
    params = make_params()
    traces = []

    @fast_jit
    def one_step(opt, p):
        traces.append(1)
        return opt.update(p, opt.init(p), p)[0]

    def make(lr_a, lr_b):
        return jol.multi_transform({"a": jol.adam(lr_a), "b": jol.sgd(lr_b)}, LABELS)

    first, second = make(0.1, 0.05), make(0.3, 0.07)
    assert {0.1, 0.05} <= set(jax.tree.leaves(first))
    assert jax.tree.structure(first) == jax.tree.structure(second)
    for opt, (a, b) in ((first, (0.1, 0.05)), (second, (0.3, 0.07))):
        ref = optax.multi_transform({"a": optax.adam(a), "b": optax.sgd(b)}, LABELS)
        assert_trees_close(
            one_step(opt, params), ref.update(params, ref.init(params), params)[0], 1e-6
        )
    assert len(traces) == 1


def _sweep_loss(params):
    return jnp.sum((params["w"] - 1.0) ** 2) + jnp.sum((params["b"] + 2.0) ** 4)


def _per_group(lr, lr_b=0.05):
    return jol.multi_transform({"a": jol.adam(lr), "b": jol.sgd(lr_b)}, {"w": "a", "b": "b"})


def test_multi_transform_sweeps_both_learning_rates():
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    lrs, lr_bs = [0.01, 0.1], [0.01, 0.05]
    res = jol.sweep(_per_group, _sweep_loss, params, lrs, 20, hyperparams={"lr_b": lr_bs})
    assert res.losses.shape == (2, 2, 20)
    for i, lr in enumerate(lrs):
        for j, lr_b in enumerate(lr_bs):
            alone = jol.minimize(_sweep_loss, params, _per_group(lr, lr_b=lr_b), 20)
            np.testing.assert_allclose(res.losses[i, j], alone.losses, rtol=1e-6)


def _lookahead_run(lib, opt, params, steps=60):
    def body(carry, t):
        p, s = carry
        target = jax.tree.map(lambda x: 2.0 * jnp.sin(0.1 * t + x), params)
        g = jax.grad(loss)(p.fast, target)
        u, s = opt.update(g, s, p)
        return (lib.apply_updates(p, u), s), None

    start = (lib.LookaheadParams.init_synced(params), opt.init(params))
    return jax.lax.scan(body, start, jnp.arange(steps))[0]


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_matches_optax(reset_state, dtype):
    params = make_params(dtype)

    def run(lib):
        opt = lib.lookahead(lib.adam(0.1), 5, 0.5, reset_state=reset_state)
        return fast_jit(lambda p: _lookahead_run(lib, opt, p))(params)

    (ours, _), (ref, _) = run(jol), run(optax)
    assert_trees_close(tuple(ours), tuple(ref), RTOL[dtype])


def test_multisteps_object_api():
    params = make_params()
    ours = jol.MultiSteps(jol.sgd(0.1), every_k_schedule=3)
    ref = optax.MultiSteps(optax.sgd(0.1), every_k_schedule=3)
    s, r = ours.init(params), ref.init(params)
    ours_update, ref_update = fast_jit(ours.update), fast_jit(ref.update)
    for step in range(7):
        grads = jax.tree.map(lambda p, step=step: p * (step + 1.0), params)
        u, s = ours_update(grads, s, params)
        v, r = ref_update(grads, r, params)
        assert_trees_close(u, v, 1e-6)
        assert bool(ours.has_updated(s)) == bool(ref.has_updated(r)) == (step % 3 == 2)
    assert ours.inner_opt is not None


def test_inject_hyperparams_state_is_readable_and_writable():
    params = make_params()
    opt = jol.inject_hyperparams(jol.adam)(learning_rate=0.1)
    ref = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    s, r = opt.init(params), ref.init(params)
    assert (
        set(s.hyperparams) == set(r.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    )
    s.hyperparams["learning_rate"] = jnp.asarray(0.01)
    r.hyperparams["learning_rate"] = jnp.asarray(0.01)
    u, s = opt.update(params, s, params)
    v, r = ref.update(params, r, params)
    assert_trees_close(u, v, 1e-6)
    assert float(s.hyperparams["learning_rate"]) == pytest.approx(0.01)
    # a numeric hyperparameter stays a leaf of the optimizer
    assert 0.1 in jax.tree.leaves(opt)


def test_monitor_and_measure_with_ema_match_optax():
    params = make_params()

    def run(lib):
        opt = lib.chain(
            lib.monitor({"norm": norm_fn, "ema": lib.measure_with_ema(norm_fn, 0.9)}),
            lib.sgd(0.1),
        )
        state = opt.init(params)
        for step in range(3):
            grads = jax.tree.map(lambda p, step=step: p * (step + 1.0), params)
            _, state = opt.update(grads, state, params)
        return state[0].measurements

    ours, ref = run(jol), run(optax)
    assert_trees_close(ours, ref, 1e-6)
    # our initial measurements already have their final structure (a scan carry)
    init = jol.monitor({"norm": norm_fn}).init(params)
    assert jax.tree.structure(init.measurements) == jax.tree.structure({"norm": 0.0})


def test_add_noise_is_deterministic_and_keys_are_leaves():
    params = make_params()
    a = run_jol(jol.chain(jol.add_noise(0.01, 0.55, 3), jol.sgd(0.1)), params, steps=20)[0]
    b = run_jol(jol.chain(jol.add_noise(0.01, 0.55, 3), jol.sgd(0.1)), params, steps=20)[0]
    c = run_jol(jol.chain(jol.add_noise(0.01, 0.55, 4), jol.sgd(0.1)), params, steps=20)[0]
    assert_trees_close(a, b, 0.0)
    assert max_change(a, c) > 0.0


def test_functions_match_optax():
    x = {"a": jnp.arange(3.0), "b": jnp.ones((2, 2))}
    y = jax.tree.map(lambda v: -2.0 * v, x)
    for fn, args in [
        ("incremental_update", (x, y, 0.3)),
        ("periodic_update", (x, y, 6, 3)),
        ("periodic_update", (x, y, 7, 3)),
    ]:
        assert_trees_close(getattr(jol, fn)(*args), getattr(optax, fn)(*args), 1e-6)
    grads = {"a": jnp.linspace(-3.0, 3.0, 12).reshape(4, 3), "b": jnp.ones((4, 2, 2)) * 0.3}
    for fn, args in [
        ("per_example_global_norm_clip", (grads, 1.0)),
        ("per_example_layer_norm_clip", (grads, 1.0)),
        ("per_example_layer_norm_clip", (grads, 1.0, False)),
    ]:
        assert_trees_close(getattr(jol, fn)(*args), getattr(optax, fn)(*args), 1e-6)
    for scale in (0.5, 0.0, 1.0):
        f = lambda v, lib, s=scale: jnp.sum(lib.scale_gradient(v, s) ** 2)  # noqa: E731
        assert_trees_close(jax.grad(f)(x["b"], jol), jax.grad(f)(x["b"], optax), 1e-6)
    traced = jax.grad(lambda v, s: jnp.sum(jol.scale_gradient(v, s) ** 2))
    assert_trees_close(jax.jit(traced)(x["b"], 0.5), 0.5 * 2 * x["b"], 1e-6)


def test_set_to_zero_and_zero_nans():
    params = make_params()
    u, _ = jol.set_to_zero().update(params, jol.set_to_zero().init(params))
    assert max_change(u, jax.tree.map(jnp.zeros_like, params)) == 0.0
    grads = jax.tree.map(lambda p: p.at[...].set(jnp.nan) if p.ndim == 2 else p, params)
    u, s = jol.zero_nans().update(grads, jol.zero_nans().init(params))
    assert jax.tree.leaves(s.found_nan) == [False, True, False, False]
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))


def test_float64_partition_stays_float64():
    with enable_x64():
        params = make_params("float64")
        opt = jol.partition({"a": jol.adam(0.1), "b": jol.sgd(0.1)}, label_fn)
        u, _ = opt.update(params, opt.init(params), params)
        assert {x.dtype.name for x in jax.tree.leaves(u)} == {"float64"}


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: jol.masked("adam", MASK), "inner"),
        (lambda: jol.masked(jol.adam(0.1), MASK, mask_compatible_extra_args=1), "mask_compat"),
        (lambda: jol.multi_transform({}, LABELS), "transforms"),
        (lambda: jol.multi_transform({"a": 3}, LABELS), "transforms"),
        (lambda: jol.partition({"a": jol.sgd(0.1)}, LABELS).init(make_params()), "param_labels"),
        (lambda: jol.named_chain(("a", jol.sgd(0.1)), ("a", jol.sgd(0.1))), "args"),
        (lambda: jol.named_chain(jol.sgd(0.1)), "args"),
        (lambda: jol.MultiSteps(jol.sgd(0.1), 0), "every_k_schedule"),
        (lambda: jol.MultiSteps(jol.sgd(0.1), 2.5), "every_k_schedule"),
        (lambda: jol.apply_every(0), "k"),
        (lambda: jol.lookahead(jol.sgd(0.1), 0, 0.5), "sync_period"),
        (lambda: jol.lookahead(jol.sgd(0.1), 2, -0.5), "slow_step_size"),
        (lambda: jol.ema(1.5), "decay"),
        (lambda: jol.conditionally_mask(jol.sgd(0.1), 3), "should_transform_fn"),
        (lambda: jol.adaptive_grad_clip(-1.0), "clipping"),
        (lambda: jol.clip_by_block_rms("x"), "threshold"),
        (lambda: jol.normalize_by_update_norm(eps=-1.0), "eps"),
        (lambda: jol.add_noise(0.01, 0.55, "k"), "key"),
        (lambda: jol.add_noise(0.01, 0.55, 1, seed=2), "seed"),
        (lambda: jol.stateless(3), "f"),
        (lambda: jol.snapshot("n", 3), "measure"),
        (lambda: jol.monitor({}), "measures"),
        (lambda: jol.inject_hyperparams(jol.adam, static_args="lr"), "static_args"),
        (
            lambda: jol.per_example_global_norm_clip({"a": jnp.ones(3), "b": jnp.ones(2)}, 1.0),
            "grads",
        ),
        (lambda: jol.selective_transform(jol.sgd(0.1), freeze_mask=mask_fn), "freeze_mask"),
        (lambda: jol.flatten(None), "inner"),
        (lambda: jol.lookahead(jol.sgd(0.1), 2, 0.5).update({}, None, {}), "params"),
    ],
)
def test_bad_input(call, name):
    with pytest.raises(jol.InputError, match=name):
        call()


def _microbatched_fn(x, y):
    return {"s": jnp.sum(x * y[:, None]), "v": x * 2.0}


def test_microbatch_matches_optax():
    from optax import microbatching

    x, y = jnp.arange(24.0).reshape(12, 2), jnp.sin(jnp.arange(12.0))
    ours, ref = jol.AccumulationType, microbatching.AccumulationType
    for kind in ("SUM", "MEAN", "RUNNING_MEAN"):
        accs = [{"s": getattr(t, kind), "v": t.CONCAT} for t in (ours, ref)]
        a = jol.microbatch(_microbatched_fn, (0, 1), 3, accs[0])(x, y)
        b = optax.microbatch(_microbatched_fn, (0, 1), 3, accs[1])(x, y)
        assert_trees_close(a, b, 1e-6)
    a = jol.microbatch(_microbatched_fn, 0, 4, argnames="y", num_real_microbatches=2)(x, y=y)
    b = optax.microbatch(_microbatched_fn, 0, 4, argnames="y", num_real_microbatches=2)(x, y=y)
    assert_trees_close(a, b, 1e-6)
    assert jol.microbatch(_microbatched_fn, 0, None) is _microbatched_fn
    # same argument names, kinds and defaults but the enum (ours, optax's)
    params = [inspect.signature(lib.microbatch).parameters for lib in (jol, optax)]
    assert [(p.name, p.kind) for p in params[0].values()] == [
        (p.name, p.kind) for p in params[1].values()
    ]
    assert params[0]["accumulator"].default.name == params[1]["accumulator"].default.name
    with pytest.raises(jol.InputError, match="microbatch_size"):
        jol.microbatch(_microbatched_fn, 0, 5)(x, y)
    with pytest.raises(jol.InputError, match="microbatch_size"):
        jol.microbatch(_microbatched_fn, 0, 0)


@pytest.mark.parametrize(
    "expr",
    [
        "masked(adam(v), MASK)",
        "partition({'a': adam(v), 'b': sgd(0.5 * v)}, label_fn)",
        "selective_transform(adam(v), freeze_mask=MASK)",
        "named_chain(('clip', clip(v)), ('sgd', sgd(v)))",
        "MultiSteps(adam(v), 3).gradient_transformation()",
        "lookahead(adam(v), 5, v)",
        "chain(ema(v), apply_every(3))",
        "flatten(adam(v))",
        "conditionally_mask(adam(v), cond)",
        "chain(adaptive_grad_clip(v), clip_by_block_rms(v), normalize_by_update_norm(v))",
        "add_noise(v, v, 3)",
        "monitor({'e': measure_with_ema(norm_fn, v)})",
        "inject_hyperparams(adam)(learning_rate=v, b1=linear_schedule(v, 0.5, 10))",
    ],
)
def test_numeric_hyperparameters_are_leaves(expr):
    """Two values, one tree structure (one compiled program), the value among the
    leaves."""
    first = eval(expr, _namespace(jol) | {"v": 0.125})  # noqa: S307
    second = eval(expr, _namespace(jol) | {"v": 0.375})  # noqa: S307
    assert jax.tree.structure(first) == jax.tree.structure(second)
    assert 0.125 in jax.tree.leaves(first)


def test_inject_hyperparams_sweeps():
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    make = jol.inject_hyperparams(jol.adam)
    res = jol.sweep(make, _sweep_loss, params, [0.01, 0.1], 20, hyperparams={"b1": [0.5, 0.9]})
    alone = jol.minimize(_sweep_loss, params, make(0.1, b1=0.5), 20)
    np.testing.assert_allclose(res.losses[1, 0], alone.losses, rtol=1e-6)


def _accumulated(lr, every_k_schedule=1):
    return jol.MultiSteps(jol.sgd(lr), every_k_schedule).gradient_transformation()


def test_multisteps_period_is_sweepable():
    """The period is a leaf too; a sweep passes it as a float and counts stay int32."""
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    res = jol.sweep(
        _accumulated, _sweep_loss, params, [0.01], 10, hyperparams={"every_k_schedule": [1, 2]}
    )
    for j, k in enumerate((1, 2)):
        alone = jol.minimize(_sweep_loss, params, _accumulated(0.01, k), 10)
        np.testing.assert_allclose(res.losses[0, j], alone.losses, rtol=1e-6)


class _RunningTotal:
    """A stateful schedule (optax's protocol): the value is the running total of the
    ``addendum`` extra argument."""

    def init(self):
        return jnp.zeros([], jnp.float32)

    def update(self, state, **extra_args):
        return state + extra_args.get("addendum", 0.0)

    def __call__(self, state, **extra_args):
        return extra_args.get("addendum", 0.0) + 0.0 * state


def test_inject_hyperparams_takes_stateful_schedules():
    params = (jnp.ones(3), jnp.ones(2))
    schedule = _RunningTotal()
    states = []
    for lib in (jol, optax):
        opt = lib.inject_hyperparams(lib.scale)(step_size=schedule)
        state = opt.init(params)
        for _ in range(2):
            _, state = jax.jit(opt.update)(params, state, params, addendum=jnp.float32(0.3))
        states.append(state)
    ours, ref = states
    assert_trees_close(ours.hyperparams, ref.hyperparams, 1e-6)
    assert_trees_close(ours.hyperparams_states, ref.hyperparams_states, 1e-6)
    assert float(ours.hyperparams_states["step_size"]) == pytest.approx(0.6)


class _Tagged:
    """An inner transform that reads an extra argument shaped like the updates."""

    @staticmethod
    def init(params):
        del params
        return ()

    @staticmethod
    def update(updates, state, params=None, *, tags=None, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda u, t: u * t, updates, tags), state


def _when_loss_small(step, loss=1.0, **extra_args):
    del extra_args
    return jnp.logical_and(step >= 1, loss < 0.5)


def test_extra_arguments_reach_inner_transforms():
    """``mask_compatible_extra_args`` masks update-shaped extra arguments;
    ``forward_extra_args`` hands them to the condition."""
    params = {"a": jnp.ones(2), "b": jnp.full(3, 2.0)}
    tags = {"a": jnp.full(2, 3.0), "b": jnp.full(3, 5.0)}
    # optax hands extra arguments only to a GradientTransformationExtraArgs; ours to
    # any update taking **kwargs
    tagged = optax.GradientTransformationExtraArgs(_Tagged.init, _Tagged.update)
    outputs = []
    for lib in (jol, optax):
        opt = lib.masked(tagged, {"a": True, "b": False}, mask_compatible_extra_args=True)
        outputs.append(opt.update(params, opt.init(params), params, tags=tags)[0])
        cond = lib.conditionally_mask(lib.sgd(0.1), _when_loss_small, forward_extra_args=True)
        state = cond.init(params)
        for loss_value in (0.1, 0.9, 0.1):
            u, state = cond.update(params, state, params, loss=jnp.float32(loss_value))
            outputs.append(u)
    half = len(outputs) // 2
    assert_trees_close(outputs[:half], outputs[half:], 1e-6)
