"""jol.contrib against optax.contrib: same numbers over 200 steps, every optimizer in
float32 and float64, its options in one dtype each.

Each configuration is written once as an expression and built from both libraries
(``jol.contrib.NAME`` / ``optax.contrib.NAME``); our optimizers go through the shared
jitted runner, so configurations differing only in numbers compile once, and each
configuration's runs are cached for the tests that read them again. Compiling (optax's
programs above all: they close over their hyperparameters) is most of this module's time.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from conftest import (
    BF16_RTOL,
    RTOL,
    _targets,
    assert_trees_close,
    build,
    enable_x64,
    fast_jit,
    loss,
    make_params,
    max_change,
    run_jol,
    run_optax,
    state_signature,
)

import jaxopt_lab as jol


def build_contrib(expr: str, lib):
    """``expr`` evaluated with ``lib.contrib``'s names (and the core API as ``lib``)."""
    contrib = jol.contrib if lib is jol else optax.contrib
    namespace = {name: getattr(contrib, name) for name in dir(contrib) if not name.startswith("_")}
    namespace.update(lib=lib, jnp=jnp)
    return eval(expr, namespace)  # noqa: S307 - the expressions are literals below


@functools.lru_cache(maxsize=None)
def run_both(expr: str, dtype: str):
    """``(ours, optax's)`` ``(params, state)`` after 200 steps; cached, so that later
    tests reuse a configuration's runs instead of compiling optax's program again."""
    params = make_params(dtype)
    return run_jol(build_contrib(expr, jol), params), run_optax(build_contrib(expr, optax), params)


def compare(expr: str, dtype: str):
    params = make_params(dtype)
    (actual, state), (expected, ref_state) = run_both(expr, dtype)
    assert max_change(params, expected) > 1e-2, "configuration makes no progress"
    assert state_signature(state) == state_signature(ref_state)
    bf16_state = any(name == "bfloat16" for name, _ in state_signature(ref_state))
    rtol = BF16_RTOL if dtype == "float32" and bf16_state else RTOL[dtype]
    assert_trees_close(actual, expected, rtol)


# Every optimizer's 200 steps against optax in float32 and float64 (issue 17's contract).
OPTIMIZERS = [
    "muon(0.02)",
    "schedule_free_adamw(0.05)",
    "schedule_free_sgd(0.02, weight_decay=0.01, weight_lr_power=1.0)",
    "schedule_free(lib.adam(0.05), 0.05, b1=0.95)",
    "prodigy(0.5)",
    "dadapt_adamw(1.0)",
    "adopt(0.05)",
    "ademamix(0.05)",
    "simplified_ademamix(0.01)",
    "dog()",
    "dowg()",
    "madgrad(0.01)",
    "cocob()",
    "acprop(0.05)",
    "mechanize(lib.sgd(0.05))",
    "sam(lib.sgd(0.05), lib.chain(normalize(), lib.sgd(0.02)))",
]

# Their options, each in one dtype: float64 (1e-12 shows any change of formula or
# dtype), float32 where the option is a low-precision state. Schedules are ours
# (pytrees, traced into the jitted run), which agree with optax's to the last bit.
VARIANTS = [
    ("muon(0.02, beta=0.9, nesterov=False, weight_decay=0.1, adam_learning_rate=0.05)", "float64"),
    ("muon(0.02, ns_coeffs='dion', preconditioning='aol', consistent_rms=0.2)", "float64"),
    ("muon(0.02, preconditioning='schatten', adaptive=True, adam_b2=0.99)", "float64"),
    (
        "muon(0.02, muon_weight_dimension_numbers={'list': [None, MuonDimensionNumbers()],"
        " 'tuple': (MuonDimensionNumbers(0, 2), None, ()), 'empty': {}})",
        "float64",
    ),
    ("muon(0.02, mu_dtype=jnp.bfloat16)", "float32"),
    (
        "schedule_free_adamw(0.05, warmup_steps=20, b1=0.8, b2=0.99, weight_decay=0.01)",
        "float64",
    ),
    ("schedule_free_sgd(0.02, warmup_steps=10, state_dtype=jnp.float32)", "float64"),
    (
        "prodigy(0.5, betas=(0.8, 0.99), beta3=0.9, weight_decay=0.01, safeguard_warmup=True)",
        "float64",
    ),
    ("prodigy(lib.linear_schedule(1.0, 0.1, 100), estim_lr0=1e-3, estim_lr_coef=0.5)", "float64"),
    ("dadapt_adamw(0.5, betas=(0.8, 0.99), estim_lr0=1e-3, weight_decay=0.01)", "float64"),
    ("adopt(0.05, b1=0.8, b2=0.99, nesterov=True, use_clipping=False)", "float64"),
    ("adopt(0.05, mu_dtype=jnp.bfloat16, clip_value_fn=lambda t: 0.5 + t**0.5)", "float32"),
    (
        "ademamix(0.05, b3=lib.linear_schedule(0.85, 0.999, 130),"
        " alpha=lib.linear_schedule(0.3, 2.0, 110), weight_decay=0.01)",
        "float64",
    ),
    ("simplified_ademamix(0.01, b1=0.9, alpha=lib.linear_schedule(0.0, 2.0, 100))", "float64"),
    ("dog(0.5, init_step=('distance', 1e-3), weight_decay=0.01)", "float64"),
    ("dog(init_step=('learning_rate', 0.01))", "float64"),
    ("dowg(0.5, init_estim_sq_dist=1e-3, weight_decay=0.01)", "float64"),
    # A cosine rather than a linear schedule: madgrad adds eps to the (float32) rate, and
    # XLA rewrites that sum when optax's schedule values are constants (``(a*f + end) +
    # eps`` becomes ``a*f + (end + eps)``), which traced values cannot follow: one
    # float32 ulp of the rate, 1e-8 relative after 200 float64 steps.
    (
        "madgrad(lib.cosine_decay_schedule(0.02, 150, alpha=0.15), momentum=0.8,"
        " weight_decay=0.01)",
        "float64",
    ),
    ("cocob(0.5, alpha=50.0, weight_decay=0.01)", "float64"),
    ("acprop(0.05, b1=0.8, b2=0.99, eps=1e-8, weight_decay=0.01)", "float64"),
    ("mechanize(lib.adam(0.05), weight_decay=0.0, s_init=1e-4, num_betas=4)", "float64"),
    (
        "sam(lib.adam(0.05), lib.chain(normalize(), lib.adam(0.01)), sync_period=3,"
        " reset_state=False)",
        "float64",
    ),
]


@pytest.mark.parametrize("expr", OPTIMIZERS)
def test_matches_optax(expr, dtype):
    compare(expr, dtype)


@pytest.mark.parametrize("expr,dtype", VARIANTS, indirect=["dtype"])
def test_option_matches_optax(expr, dtype):
    compare(expr, dtype)


# Optimizers whose update needs more than (grads, state, params): the extra arguments
# each one is given (the loss ``value``, the objective ``obj_fn``, SAM's ``grad_fn``), and
# the dtypes it runs in (each optimizer in both, its options in float64).
BOTH = ("float32", "float64")
EXTRA_CASES = [
    ("momo()", ("value",), BOTH),
    (
        "momo(0.5, beta=0.8, lower_bound=-1.0, weight_decay=0.01, adapt_lower_bound=True)",
        ("value",),
        ("float64",),
    ),
    ("momo_adam()", ("value",), BOTH),
    (
        "momo_adam(0.05, b1=0.8, b2=0.99, lower_bound=-1.0, weight_decay=0.01,"
        " adapt_lower_bound=True)",
        ("value",),
        ("float64",),
    ),
    (
        "lib.chain(lib.sgd(0.05), reduce_on_plateau(patience=2, accumulation_size=3,"
        " cooldown=1, rtol=1e-2, factor=0.5))",
        ("value",),
        BOTH,
    ),
    ("sophia(0.05)", ("obj_fn",), BOTH),
    (
        "sophia(0.02, b1=0.9, eps=0.5, gamma=0.05, clip_threshold=None, update_interval=3,"
        " weight_decay=0.0)",
        ("obj_fn",),
        ("float64",),
    ),
    (
        "sam(lib.sgd(0.05), lib.chain(normalize(), lib.sgd(0.02)), opaque_mode=True,"
        " sync_period=3)",
        ("grad_fn",),
        ("float64",),
    ),
]


def _train_extra(opt, params, steps, apply_updates, extras):
    """``train`` that also passes the extra arguments named in ``extras``."""

    def body(carry, xs):
        p, s = carry
        t, target = xs
        value, g = jax.value_and_grad(loss)(p, target)
        kw = {}
        if "value" in extras:
            kw["value"] = value
        if "obj_fn" in extras:
            kw["obj_fn"] = lambda q: loss(q, target)
        if "grad_fn" in extras:
            kw["grad_fn"] = lambda q, i: jax.grad(loss)(q, target)
        u, s = opt.update(g, s, p, **kw)
        return (apply_updates(p, u), s), None

    xs = (jnp.arange(steps), _targets(params, steps))
    (params, state), _ = jax.lax.scan(body, (params, opt.init(params)), xs)
    return params, state


run_jol_extra = fast_jit(
    lambda opt, params, steps, extras: _train_extra(opt, params, steps, jol.apply_updates, extras),
    static_argnames=("steps", "extras"),
)


@pytest.mark.parametrize(
    "expr,extras,dtype",
    [(expr, extras, dtype) for expr, extras, dtypes in EXTRA_CASES for dtype in dtypes],
    indirect=["dtype"],
)
def test_extra_args_match_optax(expr, extras, dtype):
    params = make_params(dtype)
    ref_opt = build_contrib(expr, optax)
    expected, ref_state = fast_jit(
        lambda p: _train_extra(ref_opt, p, 200, optax.apply_updates, extras)
    )(params)
    actual, state = run_jol_extra(build_contrib(expr, jol), params, 200, extras)
    assert max_change(params, expected) > 1e-2
    assert state_signature(state) == state_signature(ref_state)
    assert_trees_close(actual, expected, RTOL[dtype])


def test_build_is_shared():
    """The conftest builder still knows only the core names (guards name clashes)."""
    assert build("adam(0.1)", jol) is not None


def _fixed_loss(params):
    """The conftest loss at its first target: a fixed objective for minimize/sweep."""
    return loss(params, jax.tree.map(lambda c: c[0], _targets(params, 1)))


@pytest.mark.parametrize(
    "make,hp",
    [
        (jol.contrib.muon, {"beta": [0.9, 0.95]}),
        (jol.contrib.schedule_free_adamw, {"b1": [0.8, 0.9]}),
    ],
)
def test_sweep_over_hyperparameters(make, hp):
    """A sweep over a contrib optimizer's hyperparameter (one program), member by
    member equal to ``minimize``."""
    params = make_params()
    lrs = [0.01, 0.03]
    res = jol.sweep(make, _fixed_loss, params, lrs, 20, hyperparams=hp)
    ((name, values),) = hp.items()
    assert res.losses.shape == (2, 2, 20)
    assert not np.any(res.diverged)
    one = jol.minimize(_fixed_loss, params, make(lrs[1], **{name: values[0]}), 20)
    np.testing.assert_allclose(res.losses[1, 0], one.losses, rtol=1e-5)


def test_new_values_reuse_the_compiled_program():
    params = make_params()
    pairs = [
        (jol.contrib.muon(0.02), jol.contrib.muon(0.03, beta=0.9, weight_decay=0.1, adam_b1=0.8)),
        (
            jol.contrib.schedule_free_adamw(0.05),
            jol.contrib.schedule_free_adamw(0.01, b1=0.8, b2=0.99, weight_decay=0.1),
        ),
    ]
    for first, second in pairs:
        run_jol(first, params)
        size = run_jol._cache_size()
        run_jol(second, params)
        assert run_jol._cache_size() == size


def test_schedule_free_eval_params(dtype):
    (ours, state), (ref_params, ref_state) = run_both("schedule_free_adamw(0.05)", dtype)
    expected = optax.contrib.schedule_free_eval_params(ref_state, ref_params)
    actual = jol.contrib.schedule_free_eval_params(state, ours)
    assert_trees_close(actual, expected, RTOL[dtype])
    params = make_params(dtype)
    with pytest.raises(jol.InputError, match="state"):
        jol.contrib.schedule_free_eval_params(jol.adam(0.1).init(params), params)


BAD = [
    ("muon(0.1, beta=1.5)", "beta"),
    ("muon(0.1, ns_coeffs=(1.0, 2.0))", "ns_coeffs"),
    ("muon(0.1, ns_coeffs='fancy')", "ns_coeffs"),
    ("muon(0.1, ns_coeffs=((1.0, 2.0, 3.0), (1.0,)))", "ns_coeffs"),
    ("muon(0.1, ns_steps=0)", "ns_steps"),
    ("muon(0.1, preconditioning='qr')", "preconditioning"),
    ("muon(-0.1)", "learning_rate"),
    ("muon(0.1, muon_weight_dimension_numbers={'a': 3})", "muon_weight_dimension_numbers"),
    ("schedule_free_adamw(b1=-0.1)", "b1"),
    ("schedule_free_sgd(warmup_steps=0)", "warmup_steps"),
    ("schedule_free(None, 0.1)", "base_optimizer"),
    ("prodigy(betas=(0.9,))", "betas"),
    ("prodigy(eps='x')", "eps"),
    ("dadapt_adamw(estim_lr0=-1.0)", "estim_lr0"),
    ("adopt(0.1, b2=2.0)", "b2"),
    ("adopt(0.1, nesterov=1)", "nesterov"),
    ("ademamix(0.1, alpha=None)", "alpha"),
    ("simplified_ademamix(0.1, b1=-1.0)", "b1"),
    ("sophia(0.1, gamma=-1.0)", "gamma"),
    ("dog(init_step=('far', 1.0))", "init_step"),
    ("dowg(eps=-1.0)", "eps"),
    ("madgrad(0.1, momentum=1.5)", "momentum"),
    ("momo(beta=2.0)", "beta"),
    ("momo_adam(adapt_lower_bound='yes')", "adapt_lower_bound"),
    ("mechanize(lib.sgd(0.1), num_betas=0)", "num_betas"),
    ("cocob(alpha=-1.0)", "alpha"),
    ("acprop(0.1, eps_root=-1.0)", "eps_root"),
    ("sam(lib.sgd(0.1), lib.sgd(0.1), sync_period=0)", "sync_period"),
    ("reduce_on_plateau(factor=1.5)", "factor"),
    ("reduce_on_plateau(rtol=0.0, atol=0.0)", "atol"),
]


@pytest.mark.parametrize("expr,name", BAD)
def test_bad_hyperparameters_name_the_argument(expr, name):
    with pytest.raises(jol.InputError, match=name):
        build_contrib(expr, jol)


def test_value_needing_updates_say_so():
    params = make_params()
    # traced abstractly (jax.eval_shape): the check fires while tracing, nothing runs
    for opt, name in (
        (jol.contrib.momo(), "value"),
        (jol.contrib.reduce_on_plateau(), "value"),
        (jol.contrib.sophia(0.1), "obj_fn"),
    ):
        with pytest.raises(jol.InputError, match=name):
            jax.eval_shape(lambda opt=opt: opt.update(params, opt.init(params), params))


def test_names_match_optax_contrib():
    """Every optax.contrib optimizer named in the issue exists here, with optax's
    argument names and defaults (sophia's estimator default is built lazily)."""
    import inspect

    names = (
        "muon scale_by_muon schedule_free schedule_free_adamw schedule_free_sgd "
        "schedule_free_eval_params prodigy adopt scale_by_adopt ademamix "
        "scale_by_ademamix simplified_ademamix scale_by_simplified_ademamix sophia "
        "dadapt_adamw dog dowg madgrad scale_by_madgrad momo momo_adam mechanize cocob "
        "scale_by_cocob acprop scale_by_acprop sam normalize reduce_on_plateau"
    ).split()
    for name in names:
        ours = inspect.signature(getattr(jol.contrib, name)).parameters
        theirs = inspect.signature(getattr(optax.contrib, name)).parameters
        assert list(ours) == list(theirs), name
        for arg, p in theirs.items():
            if arg in ("hessian_diagonal_fn", "clip_value_fn"):
                continue
            assert ours[arg].default == p.default, (name, arg)


SAME_STRUCTURE = [
    (
        "muon(0.02)",
        "muon(0.5, ns_coeffs=(3.0, -4.0, 2.0), beta=0.5, eps=1e-3,"
        " weight_decay=0.1, adam_b1=0.5, adam_b2=0.5, adam_eps_root=1e-3,"
        " adam_weight_decay=0.1, adam_learning_rate=0.3)",
    ),
    (
        "schedule_free_adamw()",
        "schedule_free_adamw(0.1, b1=0.5, b2=0.5, eps=1e-3, weight_decay=0.1, weight_lr_power=1.0)",
    ),
    ("schedule_free_sgd(weight_decay=0.0)", "schedule_free_sgd(0.1, b1=0.5, weight_decay=0.1)"),
    (
        "prodigy()",
        "prodigy(0.5, betas=(0.5, 0.5), beta3=0.5, eps=1e-3, estim_lr0=1e-3,"
        " estim_lr_coef=0.5, weight_decay=0.1)",
    ),
    (
        "dadapt_adamw()",
        "dadapt_adamw(0.5, betas=(0.5, 0.5), eps=1e-3, estim_lr0=1e-3, weight_decay=0.1)",
    ),
    ("adopt(0.1)", "adopt(0.2, b1=0.5, b2=0.5, eps=1e-3)"),
    (
        "ademamix(0.1)",
        "ademamix(0.2, b1=0.5, b2=0.5, b3=0.5, alpha=1.0, eps=1e-3,"
        " eps_root=1e-3, weight_decay=0.1)",
    ),
    ("simplified_ademamix(0.1)", "simplified_ademamix(0.2, 0.5, 0.5, 1.0, 1e-3, 1e-3, 0.1)"),
    ("sophia(0.1)", "sophia(0.2, 0.5, 0.5, 1e-3, 0.1, None, 0.1, 2.0, 3)"),
    ("dog()", "dog(0.5, ('heuristic', 1e-3), 1e-3, None)"),
    ("dowg()", "dowg(0.5, 1e-3, 1e-3)"),
    ("madgrad(0.1)", "madgrad(0.2, 0.5, 0.1, 1e-3)"),
    ("momo()", "momo(0.5, 0.5, -1.0, 0.1)"),
    ("momo_adam()", "momo_adam(0.5, 0.5, 0.5, 1e-3, -1.0, 0.1)"),
    ("mechanize(lib.sgd(0.1))", "mechanize(lib.sgd(0.2), 0.1, 1e-3, 1e-3)"),
    ("cocob()", "cocob(0.5, 10.0, 1e-3, 0.1)"),
    ("acprop(0.1)", "acprop(0.2, 0.5, 0.5, 1e-3, 1e-3, 0.1)"),
    ("sam(lib.sgd(0.1), lib.sgd(0.1))", "sam(lib.sgd(0.2), lib.sgd(0.3))"),
    ("reduce_on_plateau()", "reduce_on_plateau(0.5, 3, 1e-3, 1e-3, 2, 4, 1e-3)"),
]


@pytest.mark.parametrize("a,b", SAME_STRUCTURE)
def test_hyperparameters_are_leaves(a, b):
    """Configurations that differ only in numbers have one tree structure (one compiled
    program) and differ in their leaves."""
    opt_a, opt_b = build_contrib(a, jol), build_contrib(b, jol)
    assert jax.tree.structure(opt_a) == jax.tree.structure(opt_b)
    leaves = zip(jax.tree.leaves(opt_a), jax.tree.leaves(opt_b), strict=True)
    assert any(not np.array_equal(x, y) for x, y in leaves)


def _complex_params(dtype, matrices_only=False):
    w = jnp.asarray(
        np.sin(np.arange(6.0)).reshape(3, 2) + 1j * np.cos(np.arange(6.0)).reshape(3, 2)
    )
    b = jnp.asarray(np.cos(np.arange(3.0)) - 0.5j * np.sin(np.arange(3.0)))
    params = (
        {"w": w.astype(dtype)} if matrices_only else {"w": w.astype(dtype), "b": b.astype(dtype)}
    )
    return params


def _complex_loss(params):
    leaves = jax.tree.leaves(params)
    return sum(jnp.sum(0.5 * jnp.abs(x - 0.3j) ** 2 + 0.05 * jnp.abs(x) ** 4) for x in leaves)


def _complex_train(opt, params, apply_updates):
    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(_complex_loss)(p), s, p)
        return (apply_updates(p, u), s), None

    return jax.lax.scan(body, (params, opt.init(params)), None, length=50)[0][0]


# (configuration, whether its params are matrices only: Muon needs matrices)
COMPLEX_CASES = [
    ("adopt(0.05, use_clipping=False)", False),  # optax cannot clip complex values
    ("ademamix(0.05)", False),
    ("acprop(0.05)", False),
    ("dog()", False),
    ("dowg()", False),
    ("muon(0.05)", True),
]


def _complex_runs(opts, params, apply_updates):
    """50 steps of every configuration, in one program."""
    return [_complex_train(o, p, apply_updates) for o, p in zip(opts, params, strict=True)]


@pytest.mark.parametrize("cdtype", ["complex64", "complex128"])
def test_complex_params_match_optax(cdtype):
    """Second moments use |g|^2 and Muon's Gram matrix X X^H, as optax's do (all
    configurations in one compiled program per library)."""
    rtol = {"complex64": 1e-5, "complex128": 1e-12}[cdtype]
    context = enable_x64() if cdtype == "complex128" else contextlib.nullcontext()
    with context:
        params = [_complex_params(cdtype, matrices_only) for _, matrices_only in COMPLEX_CASES]
        refs = [build_contrib(expr, optax) for expr, _ in COMPLEX_CASES]
        expected = fast_jit(lambda ps: _complex_runs(refs, ps, optax.apply_updates))(params)
        ours = [build_contrib(expr, jol) for expr, _ in COMPLEX_CASES]
        actual = fast_jit(_complex_runs, static_argnums=2)(ours, params, jol.apply_updates)
        for (expr, _), p, a, e in zip(COMPLEX_CASES, params, actual, expected, strict=True):
            assert max_change(p, e) > 1e-2, expr
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(e), strict=True):
                assert x.dtype == y.dtype, expr
                np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, err_msg=expr)


@pytest.mark.parametrize(
    "name", ["prodigy", "schedule_free_adamw", "dadapt_adamw", "dog", "mechanize"]
)
def test_bfloat16_params_initialise_and_match_optax(name):
    # their scalar state takes the params' lowest-precision float dtype: bfloat16 here
    params = {"a": jnp.ones((3, 4), jnp.bfloat16), "b": jnp.arange(5, dtype=jnp.bfloat16)}
    grads = jax.tree.map(lambda x: x * 0.5 + 0.1, params)

    def build(lib):
        if name == "mechanize":
            return lib.contrib.mechanize(lib.adam(0.1))
        return getattr(lib.contrib, name)(0.1)

    outs = []
    for lib in (jol, optax):
        opt = build(lib)
        state = opt.init(params)
        for _ in range(3):
            updates, state = opt.update(grads, state, params)
        outs.append(updates)
    for ours, theirs in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1]), strict=True):
        assert ours.dtype == theirs.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(ours, np.float32), np.asarray(theirs, np.float32))
