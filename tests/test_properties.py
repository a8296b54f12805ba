"""Property-based: every optimizer and transform of the contract, on random pytrees and
random hyperparameters in their valid ranges, against optax; and the state keeps its
structure, shapes and dtypes across steps and under ``jit``."""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from catalogue import catalogue_names
from conftest import (
    ALIASES,
    assert_trees_close,
    build,
    enable_x64,
    release_compiled_programs,
    state_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxopt_lab as jol

# One template per contract name; {lr}, {b}, {b2}, {eps}, {wd}, {flag} are drawn below.
TEMPLATES = {
    "sgd": "sgd({lr}, momentum={b}, nesterov={flag})",
    "adagrad": "adagrad({lr}, initial_accumulator_value={b}, eps={eps})",
    "rmsprop": "rmsprop({lr}, decay={b2}, eps={eps}, momentum={b}, nesterov={flag})",
    "adam": "adam({lr}, b1={b}, b2={b2}, eps={eps}, nesterov={flag})",
    "adamw": "adamw({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "adamax": "adamax({lr}, b1={b}, b2={b2}, eps={eps})",
    "nadam": "nadam({lr}, b1={b}, b2={b2}, eps={eps})",
    "amsgrad": "amsgrad({lr}, b1={b}, b2={b2}, eps={eps})",
    "adabelief": "adabelief({lr}, b1={b}, b2={b2}, eps={eps})",
    "radam": "radam({lr}, b1={b}, b2={b2}, eps={eps})",
    "lion": "lion({lr}, b1={b}, b2={b2}, weight_decay={wd})",
    "lamb": "lamb({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "yogi": "yogi({lr}, b1={b}, b2={b2}, eps={eps})",
    "adadelta": "adadelta({lr}, rho={b2}, eps={eps}, weight_decay={wd})",
    "sign_sgd": "sign_sgd({lr})",
    "scale": "scale(-{lr})",
    "scale_by_learning_rate": "scale_by_learning_rate({lr})",
    "scale_by_adam": "scale_by_adam(b1={b}, b2={b2}, eps={eps})",
    "scale_by_rms": "scale_by_rms(decay={b2}, eps={eps})",
    "trace": "trace(decay={b}, nesterov={flag})",
    "clip": "clip({lr})",
    "clip_by_global_norm": "clip_by_global_norm({lr})",
    "add_decayed_weights": "add_decayed_weights({wd})",
    "chain": "chain(clip_by_global_norm(1.0), add_decayed_weights({wd}), adam({lr}))",
    "apply_if_finite": "apply_if_finite(adam({lr}), 2)",
}
HYPERPARAMETERS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.5), "b": st.floats(0.0, 0.99), "b2": st.floats(0.5, 0.999),
    "eps": st.floats(1e-8, 1e-2), "wd": st.floats(0.0, 0.1), "flag": st.booleans(),
})  # fmt: skip


@pytest.fixture(autouse=True)
def _release_eager_programs():
    """The examples run eagerly on random shapes and dtypes: each new combination of an
    op compiles a small program, thousands in this module, so they are released after
    every test (conftest.release_compiled_programs)."""
    yield
    release_compiled_programs()


class Shape(tuple):
    """A leaf in a drawn tree skeleton (so it is not mistaken for a tuple node)."""


LEAF = st.sampled_from([(), (0,), (1,), (3,), (2, 3), (0, 2), (4, 1, 2)]).map(Shape)
SKELETON = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
        | st.tuples(inner, inner)
    ),
    max_leaves=6,
).filter(lambda t: len(jax.tree.leaves(t, is_leaf=lambda x: isinstance(x, Shape))) > 0)


def _materialize(skeleton, rng, dtype):
    def leaf(shape):
        return jnp.asarray(rng.standard_normal(shape), dtype)

    return jax.tree.map(leaf, skeleton, is_leaf=lambda x: isinstance(x, Shape))


def _run(opt, params, grads, apply_updates):
    state = opt.init(params)
    signatures = [state_signature(state)]
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = apply_updates(params, updates)
        signatures.append(state_signature(state))
    return params, state, signatures


TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "bfloat16": 2e-2}


def test_every_contract_name_has_a_template():
    transforms = {"chain", "scale", "scale_by_learning_rate", "scale_by_adam", "scale_by_rms", "trace", "clip",
                  "clip_by_global_norm", "add_decayed_weights", "apply_if_finite"}  # fmt: skip
    assert set(TEMPLATES) == set(ALIASES) | transforms


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(TEMPLATES)),
    hp=HYPERPARAMETERS,
    skeleton=SKELETON,
    dtype=st.sampled_from(["float32", "float64", "bfloat16"]),
    seed=st.integers(0, 2**16),
)
def test_matches_optax_on_random_trees_and_hyperparameters(name, hp, skeleton, dtype, seed):
    expr = TEMPLATES[name].format(**{k: repr(v) for k, v in hp.items()})
    with enable_x64() if dtype == "float64" else contextlib.nullcontext():
        rng = np.random.default_rng(seed)
        params = _materialize(skeleton, rng, dtype)
        grads = [_materialize(skeleton, rng, dtype) for _ in range(3)]
        ours, our_state, our_sigs = _run(build(expr, jol), params, grads, jol.apply_updates)
        theirs, their_state, their_sigs = _run(
            build(expr, optax), params, grads, optax.apply_updates
        )
        assert_trees_close(ours, theirs, TOLERANCE[dtype])
        # after every step the state's leaves have optax's shapes and dtypes (not
        # compared at init: optax's monitor adds its measurements' leaves only with the
        # first update), and ours never change them, so that the state can be a scan carry
        assert our_sigs[1:] == their_sigs[1:]
        if not (dtype == "bfloat16" and name in STATE_DTYPE_CHANGES_IN_BF16):
            assert all(sig == our_sigs[0] for sig in our_sigs)
        assert jax.tree.structure(ours) == jax.tree.structure(params)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(TEMPLATES)),
    hp=HYPERPARAMETERS,
    skeleton=SKELETON,
    seed=st.integers(0, 2**16),
)
def test_state_is_the_same_under_jit(name, hp, skeleton, seed):
    expr = TEMPLATES[name].format(**{k: repr(v) for k, v in hp.items()})
    rng = np.random.default_rng(seed)
    params = _materialize(skeleton, rng, "float32")
    g = _materialize(skeleton, rng, "float32")
    opt = build(expr, jol)
    state = opt.init(params)
    eager = opt.update(g, state, params)
    jitted = jax.jit(opt.update)(g, state, params)
    assert jax.tree.structure(jitted) == jax.tree.structure(eager)
    assert state_signature(jitted[1]) == state_signature(state)
    assert_trees_close(jitted, eager, 1e-5)


# --------------------------------------------------------------------------------------
# The catalogue (issue 17): the same property for every optimizer and transform added
# with it, every optimizer of jol.contrib (against optax.contrib, as ``contrib`` in the
# templates) and every wrapper of jaxopt_lab.wrappers, on random trees in float32,
# float64 and bfloat16; eagerly, so that an example costs no compile. One parametrized
# test per name, so that every name is exercised on every run (a single test sampling
# ~110 names would leave some out of any one run); Hypothesis draws the dtype, the tree
# and the hyperparameters (its first example is its simplest: bfloat16, a single leaf).
# --------------------------------------------------------------------------------------

CATALOGUE_TEMPLATES = {
    # optimizers.py's catalogue aliases
    "adafactor": "adafactor({lr}, decay_rate={b2}, factored={flag}, min_dim_size_to_factor=2)",
    "nadamw": "nadamw({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "adamaxw": "adamaxw({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "lars": "lars({lr}, weight_decay={wd}, momentum={b})",
    "signum": "signum({lr}, beta={b})",
    "novograd": "novograd({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "adan": "adan({lr}, b1={b}, b2={b2}, b3={b2}, eps={eps}, weight_decay={wd})",
    "rprop": "rprop({lr})",
    "sm3": "sm3({lr}, momentum={b})",
    "fromage": "fromage({lr})",
    "noisy_sgd": "noisy_sgd({lr}, eta={eps}, gamma=0.55, key=3)",
    "optimistic_gradient_descent": "optimistic_gradient_descent({lr}, alpha={b}, beta={b})",
    "optimistic_adam": "optimistic_adam({lr}, optimism={b}, b1={b}, b2={b2}, eps={eps})",
    "polyak_sgd": "polyak_sgd({lr}, scaling={b2}, f_min=-1.0, eps={eps})",
    # transforms.py's catalogue transforms
    "scale_by_factored_rms": "scale_by_factored_rms({flag}, {b2}, min_dim_size_to_factor=2)",
    "scale_by_novograd": "scale_by_novograd(b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "scale_by_adan": "scale_by_adan(b1={b}, b2={b2}, b3={b2}, eps={eps})",
    "scale_by_rprop": "scale_by_rprop({lr})",
    "scale_by_sm3": "scale_by_sm3(b1={b}, b2={b2}, eps={eps})",
    "scale_by_optimistic_gradient": "scale_by_optimistic_gradient(alpha={b}, beta={b})",
    "scale_by_polyak": "scale_by_polyak(f_min=-1.0, max_learning_rate={lr}, eps={eps})",
    "scale_by_distance_over_gradients": "chain(scale_by_distance_over_gradients({eps}), "
    "scale(-{lr}))",
    "scale_by_param_block_norm": "scale_by_param_block_norm(min_scale={eps})",
    "scale_by_param_block_rms": "scale_by_param_block_rms(min_scale={eps})",
    # jol.contrib (optax.contrib)
    "acprop": "contrib.acprop({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "scale_by_acprop": "contrib.scale_by_acprop(b1={b}, b2={b2}, eps={eps})",
    "ademamix": "contrib.ademamix({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd})",
    "scale_by_ademamix": "contrib.scale_by_ademamix(b1={b}, b2={b2}, b3=0.99, alpha=5.0)",
    "simplified_ademamix": "contrib.simplified_ademamix({lr}, b1={b}, b2={b2}, alpha=2.0, "
    "weight_decay={wd})",
    "scale_by_simplified_ademamix": "contrib.scale_by_simplified_ademamix({b}, {b2}, 2.0)",
    "adopt": "contrib.adopt({lr}, b1={b}, b2={b2}, eps={eps})",
    "scale_by_adopt": "contrib.scale_by_adopt(b1={b}, b2={b2}, eps={eps})",
    "cocob": "contrib.cocob({lr}, alpha=1.0 + 100 * {b}, eps={eps}, weight_decay={wd})",
    "scale_by_cocob": "contrib.scale_by_cocob(alpha=1.0 + 100 * {b}, eps={eps})",
    "dadapt_adamw": "contrib.dadapt_adamw({lr}, betas=({b}, {b2}), eps={eps}, weight_decay={wd})",
    "dog": "contrib.dog({lr}, weight_decay={wd})",
    "dowg": "contrib.dowg({lr}, weight_decay={wd})",
    "madgrad": "contrib.madgrad({lr}, momentum={b}, eps={eps})",
    "scale_by_madgrad": "contrib.scale_by_madgrad({lr}, momentum={b}, eps={eps})",
    "mechanize": "contrib.mechanize(adam({lr}), weight_decay={wd})",
    "momo": "contrib.momo({lr}, beta={b}, lower_bound=-1.0, weight_decay={wd})",
    "momo_adam": "contrib.momo_adam({lr}, b1={b}, b2={b2}, lower_bound=-1.0, weight_decay={wd})",
    "muon": "contrib.muon({lr}, beta={b}, nesterov={flag}, weight_decay={wd})",
    # (alone, it orthogonalises every leaf: drawn with matrices only, see MATRICES_ONLY)
    "scale_by_muon": "contrib.scale_by_muon(beta={b}, nesterov={flag}, "
    "weight_dimension_numbers=all_matrices)",
    "galore": "contrib.galore({lr}, rank=1, update_proj_gap=2)",
    "scale_by_galore": "contrib.scale_by_galore(rank=1, update_proj_gap=2)",
    "normalize": "chain(contrib.normalize(), sgd({lr}))",
    "prodigy": "contrib.prodigy({lr}, eps={eps}, weight_decay={wd})",
    "reduce_on_plateau": "chain(sgd({lr}), contrib.reduce_on_plateau(factor=0.5, patience=1, "
    "accumulation_size=1))",
    "sam": "contrib.sam(sgd({lr}), chain(contrib.normalize(), sgd({b} + 0.01)), sync_period=2)",
    "schedule_free": "contrib.schedule_free(adam({lr}), {lr}, b1={b})",
    "schedule_free_adamw": "contrib.schedule_free_adamw({lr}, b1={b}, b2={b2}, eps={eps})",
    "schedule_free_sgd": "contrib.schedule_free_sgd({lr}, b1={b}, weight_decay={wd})",
    # (the run is schedule_free_adamw's; what is compared is the eval params of its state)
    "schedule_free_eval_params": "contrib.schedule_free_adamw({lr}, b1={b}, b2={b2})",
    "sophia": "contrib.sophia({lr}, b1={b}, b2={b2}, eps={eps}, weight_decay={wd}, "
    "update_interval=2)",
    "hutchinson_estimator_diag_hessian": "contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(3))",
    "split_real_and_imaginary": "contrib.split_real_and_imaginary(adam({lr}))",
    "dpsgd": "contrib.dpsgd({lr}, {b} + 0.1, 10 * {eps}, 3, momentum={b})",
    "differentially_private_aggregate": "chain(contrib.differentially_private_aggregate("
    "{b} + 0.1, 10 * {eps}, 3), sgd({lr}))",
    # wrappers.py, each around a simple optimizer
    "masked": "chain(masked(scale_by_adam(b1={b}, b2={b2}), mask_fn), scale(-{lr}))",
    "multi_transform": "multi_transform(dict(a=adam({lr}), b=sgd({lr}, momentum={b})), label_fn)",
    "partition": "partition(dict(a=adam({lr}), b=rmsprop({lr})), labels)",
    "freeze": "chain(freeze(mask), sgd({lr}))",
    "selective_transform": "selective_transform(adam({lr}), freeze_mask=mask)",
    "named_chain": "named_chain(('clip', clip_by_global_norm({b} + 0.1)), ('adam', adam({lr})))",
    "MultiSteps": "MultiSteps(adam({lr}, b1={b}), 2).gradient_transformation()",
    "apply_every": "chain(apply_every(2), sgd({lr}))",
    "lookahead": "lookahead(adam({lr}), 2, {b})",
    "ema": "chain(ema({b}, debias={flag}), scale(-{lr}))",
    "skip_not_finite": "MultiSteps(adam({lr}), 2, "
    "should_skip_update_fn=skip_not_finite).gradient_transformation()",
    "skip_large_updates": "MultiSteps(sgd({lr}), 2, should_skip_update_fn="
    "partial(skip_large_updates, max_squared_norm=10 * {b})).gradient_transformation()",
    "zero_nans": "chain(zero_nans(), adam({lr}))",
    "keep_params_nonnegative": "chain(sgd({lr}), keep_params_nonnegative())",
    "flatten": "flatten(adam({lr}, b1={b}, b2={b2}))",
    "conditionally_mask": "conditionally_mask(adam({lr}), odd_step)",
    "conditionally_transform": "chain(conditionally_transform(scale({b}), odd_step), sgd({lr}))",
    "adaptive_grad_clip": "chain(adaptive_grad_clip({b} + 0.01), sgd({lr}))",
    "centralize": "chain(centralize(), sgd({lr}))",
    "clip_by_block_rms": "chain(clip_by_block_rms({b} + 0.01), sgd({lr}))",
    "normalize_by_update_norm": "normalize_by_update_norm({lr}, eps={eps})",
    "set_to_zero": "set_to_zero()",
    "add_noise": "chain(add_noise({eps}, 0.55, 3), sgd({lr}))",
    "stateless": "chain(stateless(halve), sgd({lr}))",
    "stateless_with_tree_map": "chain(stateless_with_tree_map(lambda u, p: 0.5 * u - 0.1 * p), "
    "sgd({lr}))",
    # (the measurements live in the state: compared too, see COMPARE_STATE)
    "snapshot": "chain(snapshot('norm', norm_fn), sgd({lr}))",
    "monitor": "chain(monitor(dict(norm=norm_fn, sq=lambda u: norm_fn(u) ** 2)), sgd({lr}))",
    "measure_with_ema": "chain(monitor(dict(e=measure_with_ema(norm_fn, {b}, debias={flag}))), "
    "sgd({lr}))",
    "inject_hyperparams": "inject_hyperparams(adam)(learning_rate={lr}, b1={b}, b2={b2})",
    # functions of trees, run through `stateless` on every step's updates
    "incremental_update": "chain(stateless(lambda u, p: incremental_update(u, halve(u, p), {b})), "
    "sgd({lr}))",
    "periodic_update": "chain(stateless(lambda u, p: periodic_update(u, halve(u, p), "
    "2 + {flag}, 2)), sgd({lr}))",
    "per_example_global_norm_clip": "chain(stateless(lambda u, p: "
    "per_example_global_norm_clip(two_examples(u), {b} + 0.1)[0]), sgd({lr}))",
    "per_example_layer_norm_clip": "chain(stateless(lambda u, p: "
    "per_example_layer_norm_clip(two_examples(u), {b} + 0.1, {flag})[0]), sgd({lr}))",
    # scale_gradient is the identity forwards: this only checks that it stays one on any
    # tree and dtype; its gradient is checked by the hypergradient tests (test_optimizers)
    "scale_gradient": "chain(stateless(lambda u, p: jax.tree.map("
    "lambda x: scale_gradient(x, {b}), u)), sgd({lr}))",
}

# Names of the catalogue that the random-tree property cannot cover, and why.
CATALOGUE_EXCLUDED = {
    # not exported by optax.contrib 0.2.8, so there is nothing to compare against; each is
    # run by a covered optimizer (muon, dog, dowg, sophia)
    "orthogonalize_via_newton_schulz": "not in optax.contrib 0.2.8",
    "scale_by_shape": "not in optax.contrib 0.2.8",
    "scale_by_dog": "not in optax.contrib 0.2.8",
    "scale_by_dowg": "not in optax.contrib 0.2.8",
    "scale_by_sophia": "not in optax.contrib 0.2.8",
    # transforms a loss function (batching its arguments), not an optimizer: there is no
    # state or update to run on a tree; test_wrappers.test_microbatch_matches_optax
    "microbatch": "a function transformation, not an optimizer",
}

# What each name's update needs beyond (grads, state, params), as optax's takes it.
NEEDS_VALUE = {"polyak_sgd", "scale_by_polyak", "momo", "momo_adam", "reduce_on_plateau"}
NEEDS_OBJ_FN = {"sophia", "hutchinson_estimator_diag_hessian"}
# optax 0.2.8 fails with sm3 and distance_over_gradients on a 0-d leaf (see catalogue.py),
# with sm3 and muon on an empty matrix (a max over no rows; a division by zero): these
# are drawn with a one-element vector for a 0-d leaf and a one-row matrix for an empty one
SMALL_SKELETON = {"sm3", "scale_by_sm3", "scale_by_distance_over_gradients", "muon"}
# scale_by_muon orthogonalises every leaf, and optax's refuses any but a matrix (masking
# the others out fails in optax 0.2.8: its MaskedNode against muon's None dimensions):
# each drawn leaf shape is replaced by a matrix one, the tree's structure kept
MATRICES_ONLY = {"scale_by_muon"}
# their update takes per-example gradients (a leading batch axis): two examples a step
PER_EXAMPLE = {"dpsgd", "differentially_private_aggregate"}
# a NaN in the second step's gradients, which is what these exist for
NAN_GRADIENTS = {"zero_nans", "skip_not_finite"}
# With bfloat16 params, optax 0.2.8's state starts with bfloat16 leaves that its first
# update turns into float32 (its distances and sums mix with the float32 `param_dtype`
# copy of the params); ours matches that step for step, so only optax's dtypes are
# checked for it in bfloat16 (a known difference from the other names, which keep theirs).
STATE_DTYPE_CHANGES_IN_BF16 = {"scale_by_distance_over_gradients"}
# the state holds what is measured: compared leaf by leaf as well as the params
COMPARE_STATE = {"snapshot", "monitor", "measure_with_ema", "reduce_on_plateau"}


def test_every_catalogue_name_has_a_template():
    names = catalogue_names()
    assert not set(CATALOGUE_TEMPLATES) & set(CATALOGUE_EXCLUDED)
    assert set(CATALOGUE_TEMPLATES) | set(CATALOGUE_EXCLUDED) == names
    # the exclusions not in optax.contrib really are not (else they need a template)
    assert not any(
        hasattr(optax.contrib, n) for n, why in CATALOGUE_EXCLUDED.items() if "optax" in why
    )


def _norm(tree):
    return jnp.sqrt(sum((jnp.sum(x * x) for x in jax.tree.leaves(tree)), start=0.0))


def _halve(updates, params):
    return jax.tree.map(lambda u, p: 0.5 * u + 0.01 * p, updates, params)


def _two_examples(tree):
    """A batch of two per-example gradients whose sum is not a multiple of either."""
    return jax.tree.map(lambda x: jnp.stack([x, 0.25 - 0.5 * x]), tree)


def _odd_step(step):
    return step % 2 == 1


def _objective(params):
    """sophia's / the Hutchinson estimator's ``obj_fn``: non-quadratic, so the Hessian
    diagonal varies with the params."""
    return sum((jnp.sum(0.5 * x * x + 0.1 * x**4) for x in jax.tree.leaves(params)), start=0.0)


def _build_with_contrib(expr: str, lib, params):
    """Evaluate a catalogue template against ``lib`` (jaxopt_lab or optax); masks and
    labels that must be trees are made from ``params``."""
    namespace = {name: getattr(lib, name) for name in dir(lib) if not name.startswith("_")}
    is_matrix = jax.tree.map(lambda p: p.ndim == 2, params)
    contrib = jol.contrib if lib is jol else optax.contrib
    namespace.update(
        contrib=contrib,
        # (optax's scale_by_muon takes no default dimension numbers for a tree of them)
        all_matrices=lambda tree: jax.tree.map(lambda _: contrib.MuonDimensionNumbers(), tree),
        jax=jax,
        jnp=jnp,
        partial=functools.partial,
        mask=is_matrix,
        mask_fn=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p),
        labels=jax.tree.map(lambda m: "a" if m else "b", is_matrix),
        label_fn=lambda p: jax.tree.map(lambda x: "a" if x.ndim >= 2 else "b", p),
        halve=_halve,
        two_examples=_two_examples,
        odd_step=_odd_step,
        norm_fn=_norm,
    )
    return eval(expr, namespace)  # noqa: S307 - the templates above


def _run_catalogue(name, expr, lib, params, grads, values):
    opt = _build_with_contrib(expr, lib, params)
    if name == "lookahead":
        params = lib.LookaheadParams.init_synced(params)
    state = opt.init(params)
    signatures = [state_signature(state)]
    for g, value in zip(grads, values, strict=True):
        extra = {}
        if name in NEEDS_VALUE:
            extra["value"] = value
        if name in NEEDS_OBJ_FN:
            extra["obj_fn"] = _objective
        if name in PER_EXAMPLE:
            g = _two_examples(g)
        updates, state = opt.update(g, state, params, **extra)
        params = lib.apply_updates(params, updates)
        signatures.append(state_signature(state))
    if name == "lookahead":
        params = tuple(params)  # (fast, slow), out of each library's own container
    if name == "schedule_free_eval_params":
        params = lib.contrib.schedule_free_eval_params(state, params)
    return params, state, signatures


def _without_empty_leaves(skeleton):
    """``skeleton`` with its 0-d leaves as (1,) and its 0-row matrices as 1-row ones."""
    replace = {(): Shape((1,)), (0, 2): Shape((1, 2))}
    return jax.tree.map(
        lambda s: replace.get(tuple(s), s), skeleton, is_leaf=lambda x: isinstance(x, Shape)
    )


def _as_matrices(skeleton):
    """``skeleton`` with every leaf a non-empty matrix (see MATRICES_ONLY)."""
    as_matrix = {
        (): (1, 2),
        (0,): (2, 1),
        (1,): (1, 1),
        (3,): (3, 1),
        (0, 2): (1, 2),
        (4, 1, 2): (4, 2),
    }
    return jax.tree.map(
        lambda s: Shape(as_matrix.get(tuple(s), s)),
        skeleton,
        is_leaf=lambda x: isinstance(x, Shape),
    )


def _with_a_nan(tree):
    """``tree`` with its first entry NaN (unchanged if it has no entries)."""
    leaves, treedef = jax.tree.flatten(tree)
    for i, x in enumerate(leaves):
        if x.size:
            leaves[i] = x.reshape(-1).at[0].set(jnp.nan).reshape(x.shape)
            break
    return treedef.unflatten(leaves)


@pytest.mark.filterwarnings("ignore:`optimistic_adam` is deprecated")
@pytest.mark.parametrize("name", sorted(CATALOGUE_TEMPLATES))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hp=HYPERPARAMETERS,
    skeleton=SKELETON,
    # (bfloat16 first: Hypothesis's first, simplest example of every name is in bfloat16)
    dtype=st.sampled_from(["bfloat16", "float32", "float64"]),
    seed=st.integers(0, 2**16),
)
def test_catalogue_matches_optax_on_random_trees(name, hp, skeleton, dtype, seed):
    expr = CATALOGUE_TEMPLATES[name].format(**{k: repr(v) for k, v in hp.items()})
    if name in SMALL_SKELETON:
        skeleton = _without_empty_leaves(skeleton)
    if name in MATRICES_ONLY:
        skeleton = _as_matrices(skeleton)
    with enable_x64() if dtype == "float64" else contextlib.nullcontext():
        rng = np.random.default_rng(seed)
        params = _materialize(skeleton, rng, dtype)
        grads = [_materialize(skeleton, rng, dtype) for _ in range(3)]
        if name in NAN_GRADIENTS:
            grads[1] = _with_a_nan(grads[1])
        # a loss value per step (positive, above the f_min / lower_bound of -1 above)
        values = [jnp.asarray(abs(rng.standard_normal()) + 0.5, dtype) for _ in grads]
        ours, our_state, our_sigs = _run_catalogue(name, expr, jol, params, grads, values)
        theirs, their_state, their_sigs = _run_catalogue(name, expr, optax, params, grads, values)
        assert_trees_close(ours, theirs, TOLERANCE[dtype])
        if name in COMPARE_STATE:
            assert_trees_close(
                jax.tree.leaves(our_state), jax.tree.leaves(their_state), TOLERANCE[dtype]
            )
        # after every step the state's leaves have optax's shapes and dtypes (not
        # compared at init: optax's monitor adds its measurements' leaves only with the
        # first update), and ours never change them, so that the state can be a scan carry
        assert our_sigs[1:] == their_sigs[1:]
        if not (dtype == "bfloat16" and name in STATE_DTYPE_CHANGES_IN_BF16):
            assert all(sig == our_sigs[0] for sig in our_sigs)
