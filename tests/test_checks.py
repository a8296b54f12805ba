"""Every check of ``jaxopt_lab.checks``: it accepts good input, refuses bad input with the
right ``InputError`` subclass and a message naming the argument, and lets tracers (a
value inside ``jax.jit`` / ``jax.vmap``) through untouched where it takes arrays."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab import checks
from jaxopt_lab.errors import InputTypeError, InputValueError

V, T = InputValueError, InputTypeError


def _passes_under_jit_and_vmap(check, value):
    """``check(tracer)`` raises nothing and the traced value comes out unchanged."""

    def through(x):
        check(x)
        return x

    value = jnp.asarray(value)
    np.testing.assert_array_equal(jax.jit(through)(value), value)
    batch = jnp.stack([value, value])
    np.testing.assert_array_equal(jax.vmap(through)(batch), batch)


# --------------------------------------------------------------------------------------
# Good input
# --------------------------------------------------------------------------------------


def test_check_count():
    assert checks.check_count("n", 3) == 3 and type(checks.check_count("n", 3)) is int
    assert checks.check_count("n", np.int64(4)) == 4
    assert checks.check_count("n", 0, low=0) == 0
    assert checks.check_count("n", -5, low=None) == -5


def test_check_real():
    for value in (1, 2.5, np.float32(1.5), jnp.asarray(2.0), np.asarray(-3.0)):
        out = checks.check_real("x", value)
        assert type(out) is float and out == float(value)


def test_check_positive_and_open_unit():
    assert checks.check_positive("c", 2) == 2.0 and checks.check_positive("c", 1e-9) == 1e-9
    assert checks.check_open_unit("c1", 0.5) == 0.5 and checks.check_open_unit("c1", 1e-4) == 1e-4


def test_check_callable_and_optimizer():
    checks.check_callable("fn", len)
    checks.check_callable("fn", lambda x: x)
    checks.check_optimizer(jol.adam(0.1))
    checks.check_optimizer(types.SimpleNamespace(init=lambda p: (), update=lambda g, s, p: (g, s)))


def test_check_tol():
    for tol in (None, 0, 1e-3, np.zeros(2), jnp.asarray(0.1)):
        checks.check_tol(tol)


def test_check_key():
    raw = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(checks.check_key(0), raw)
    assert checks.check_key(raw) is raw
    typed = jax.random.key(1)
    assert checks.check_key(typed) is typed
    assert checks.check_key(np.int64(3)).shape == (2,)


def test_check_flag():
    checks.check_flag("nesterov", True)
    checks.check_flag("nesterov", np.bool_(False))


def test_check_params():
    checks.check_params({"w": jnp.ones(2), "b": np.zeros((), np.float64), "s": 1.0})
    checks.check_params(
        {"w": jnp.ones(2, jnp.bfloat16), "z": None, "c": jnp.ones(2, jnp.complex64)}
    )


def test_canonical_dtype():
    assert checks.canonical_dtype("mu_dtype", None) is None
    assert checks.canonical_dtype("mu_dtype", jnp.bfloat16) == jnp.bfloat16
    assert checks.canonical_dtype("mu_dtype", "float32") == jnp.float32
    # float64 without x64 is float32, as every array of it would be
    assert checks.canonical_dtype("mu_dtype", np.float64) == jax.dtypes.canonicalize_dtype(
        np.float64
    )


def test_check_hyperparameter():
    for value in (0.1, 0, 3, np.float32(0.5), jnp.asarray([0.1, 0.2]), np.asarray(1.0)):
        checks.check_hyperparameter("lr", value)
    checks.check_hyperparameter("lr", -1.0, low=None)
    checks.check_hyperparameter("b1", 1.0, high=1.0)
    checks.check_hyperparameter("lr", lambda t: 0.1, allow_schedule=True)
    checks.check_hyperparameter("end_value", None, allow_none=True)


def test_check_scalar_fn():
    x = jnp.ones(3)
    checks.check_scalar_fn(lambda p: jnp.sum(p), (x,), "f")
    checks.check_scalar_fn(lambda p: (jnp.sum(p), p), (x,), "f", has_aux=True)


def test_check_scalar_fn_does_not_run_the_function():
    calls = []

    def f(p):
        calls.append(type(p))
        return jnp.sum(p)

    checks.check_scalar_fn(f, (jnp.ones(3),), "f")
    assert calls and all(c is not jax.Array for c in calls)  # abstract values only


def test_check_same_structure():
    checks.check_same_structure({"a": jnp.ones(2)}, {"a": jnp.zeros(2)}, "params")


def test_is_concrete_and_arraylike():
    assert checks.is_concrete(1.0) and checks.is_concrete({"a": jnp.ones(2)})
    seen = []
    jax.jit(lambda x: seen.append(checks.is_concrete({"a": x, "b": 1.0})) or x)(1.0)
    assert seen == [False]
    assert checks.is_arraylike(1.0) and checks.is_arraylike([1, np.ones(2), (jnp.ones(1),)])
    assert not checks.is_arraylike("1.0") and not checks.is_arraylike([1.0, None])


# --------------------------------------------------------------------------------------
# Bad input: the right class, and the message names the argument
# --------------------------------------------------------------------------------------

BAD = [
    ("count float", lambda: checks.check_count("steps", 2.5), T, "`steps`"),
    ("count bool", lambda: checks.check_count("steps", True), T, "`steps`"),
    ("count string", lambda: checks.check_count("steps", "3"), T, "`steps`"),
    ("count too small", lambda: checks.check_count("steps", 0), V, "`steps` must be >= 1"),
    ("count below low", lambda: checks.check_count("seed", -1, low=0), V, "`seed` must be >= 0"),
    ("real string", lambda: checks.check_real("noise", "x"), T, "`noise`"),
    ("real None", lambda: checks.check_real("noise", None), T, "`noise`"),
    ("real vector", lambda: checks.check_real("noise", np.ones(2)), T, "`noise`"),
    ("real bool", lambda: checks.check_real("noise", True), T, "`noise`"),
    ("real nan", lambda: checks.check_real("noise", float("nan")), V, "`noise` must be finite"),
    ("real inf", lambda: checks.check_real("noise", np.inf), V, "`noise` must be finite"),
    ("positive zero", lambda: checks.check_positive("max_step", 0), V, "`max_step`"),
    ("positive negative", lambda: checks.check_positive("max_step", -1.0), V, "`max_step`"),
    ("positive bool", lambda: checks.check_positive("max_step", True), V, "`max_step`"),
    ("open unit 0", lambda: checks.check_open_unit("c1", 0.0), V, "`c1` must be in"),
    ("open unit 1", lambda: checks.check_open_unit("c1", 1), V, "`c1` must be in"),
    ("open unit string", lambda: checks.check_open_unit("c1", "0.5"), T, "`c1`"),
    ("open unit bool", lambda: checks.check_open_unit("c1", True), T, "`c1`"),
    ("callable", lambda: checks.check_callable("loss_fn", 3.0), T, "`loss_fn`"),
    ("optimizer", lambda: checks.check_optimizer("adam"), T, "`optimizer`"),
    ("optimizer named", lambda: checks.check_optimizer(3, "inner"), T, "`inner`"),
    ("tol negative", lambda: checks.check_tol(-1.0), V, "`tol` must be >= 0"),
    ("tol array", lambda: checks.check_tol(np.array([0.1, -0.1]), "gtol"), V, "`gtol`"),
    ("tol string", lambda: checks.check_tol("small"), T, "`tol`"),
    ("tol bool", lambda: checks.check_tol(True), T, "`tol`"),
    ("key string", lambda: checks.check_key("k"), T, "`key`"),
    ("key float", lambda: checks.check_key(1.5), T, "`key`"),
    ("key bool", lambda: checks.check_key(True), T, "`key`"),
    ("key shape", lambda: checks.check_key(jnp.ones(3), "rng"), T, "`rng`"),
    ("flag int", lambda: checks.check_flag("nesterov", 1), T, "`nesterov`"),
    ("flag string", lambda: checks.check_flag("nesterov", "yes"), T, "`nesterov`"),
    ("params int", lambda: checks.check_params({"w": jnp.ones(2, jnp.int32)}), T, r"params\['w'\]"),
    ("params str", lambda: checks.check_params(["a"], "x0"), T, r"x0\[0\]"),
    ("dtype int", lambda: checks.canonical_dtype("mu_dtype", jnp.int32), T, "`mu_dtype`"),
    ("dtype nonsense", lambda: checks.canonical_dtype("mu_dtype", "nonsense"), T, "`mu_dtype`"),
    ("hyper None", lambda: checks.check_hyperparameter("lr", None), T, "`lr`"),
    ("hyper callable", lambda: checks.check_hyperparameter("eps", abs), T, "`eps`"),
    ("hyper string", lambda: checks.check_hyperparameter("lr", "0.1"), T, "`lr`"),
    ("hyper bool", lambda: checks.check_hyperparameter("lr", True), T, "`lr`"),
    ("hyper list", lambda: checks.check_hyperparameter("lr", [0.1, 0.2]), T, "`lr`"),
    ("hyper complex", lambda: checks.check_hyperparameter("lr", 1j), T, "`lr`"),
    ("hyper nan", lambda: checks.check_hyperparameter("lr", np.nan), V, "`lr` must not be NaN"),
    ("hyper negative", lambda: checks.check_hyperparameter("lr", -0.1), V, "`lr` must be >= 0"),
    (
        "hyper negative entry",
        lambda: checks.check_hyperparameter("lr", jnp.asarray([0.1, -0.1])),
        V,
        "`lr` must be >= 0",
    ),
    ("hyper above high", lambda: checks.check_hyperparameter("b1", 1.5, high=1.0), V, "`b1`"),
    (
        "hyper exclusive low",
        lambda: checks.check_hyperparameter("rate", 0.0, low_inclusive=False),
        V,
        "`rate` must be > 0",
    ),
    ("scalar fn not callable", lambda: checks.check_scalar_fn(3, (1.0,), "f"), T, "`f`"),
    (
        "scalar fn vector",
        lambda: checks.check_scalar_fn(lambda p: p, (jnp.ones(2),), "loss_fn"),
        V,
        "`loss_fn` must return a floating-point scalar",
    ),
    (
        "scalar fn integer",
        lambda: checks.check_scalar_fn(lambda p: jnp.sum(p), (jnp.ones(2, int),), "f"),
        V,
        "`f`",
    ),
    (
        "scalar fn no pair",
        lambda: checks.check_scalar_fn(lambda p: jnp.sum(p), (jnp.ones(2),), "f", has_aux=True),
        V,
        "`f` must return a pair",
    ),
    (
        "structure",
        lambda: checks.check_same_structure({"v": jnp.ones(2)}, {"w": jnp.ones(2)}, "params"),
        V,
        "params",
    ),
]


@pytest.mark.parametrize(("name", "call", "error", "match"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises_the_right_input_error(name, call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, jol.InputError)
    if error is V:
        assert not isinstance(info.value, TypeError)


def test_the_catalogue_covers_every_check():
    public = {n for n in vars(checks) if n.startswith(("check_", "canonical_"))}
    sources = {c[0] for c in BAD}
    assert public == {
        "canonical_dtype",
        "check_callable",
        "check_count",
        "check_flag",
        "check_hyperparameter",
        "check_key",
        "check_open_unit",
        "check_optimizer",
        "check_params",
        "check_positive",
        "check_real",
        "check_same_structure",
        "check_scalar_fn",
        "check_tol",
    }, "a new check: add it to this file"
    assert len(sources) == len(BAD)


# --------------------------------------------------------------------------------------
# Tracers pass untouched
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "check", "value"),
    [
        # out of range, but unknown while tracing: not checked, not concretized
        ("hyperparameter", lambda x: checks.check_hyperparameter("lr", x), -1.0),
        ("hyperparameter high", lambda x: checks.check_hyperparameter("b1", x, high=1.0), 2.0),
        ("hyperparameter nan", lambda x: checks.check_hyperparameter("lr", x), np.nan),
        ("tol", lambda x: checks.check_tol(x), -1.0),
        ("params", lambda x: checks.check_params({"w": x}), [1.0, 2.0]),
        ("same structure", lambda x: checks.check_same_structure(x, x, "params"), [1.0]),
        ("scalar fn", lambda x: checks.check_scalar_fn(jnp.sum, (x,), "f"), [1.0, 2.0]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_tracers_pass_untouched(name, check, value):
    _passes_under_jit_and_vmap(check, value)


def test_a_traced_key_passes():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    out = jax.vmap(lambda k: checks.check_key(k))(keys)
    np.testing.assert_array_equal(out, keys)
    np.testing.assert_array_equal(jax.jit(checks.check_key)(keys[0]), keys[0])


def test_a_traced_integer_params_leaf_is_still_refused():
    """The dtype is known while tracing, so the check still applies."""
    with pytest.raises(InputTypeError, match="params"):
        jax.jit(lambda x: checks.check_params(x) or x)(jnp.ones(2, jnp.int32))


@pytest.mark.parametrize(
    "check",
    [
        lambda x: checks.check_count("steps", x),
        lambda x: checks.check_real("noise", x),
        lambda x: checks.check_open_unit("c1", x),
    ],
    ids=["count", "real", "open_unit"],
)
def test_static_checks_refuse_a_tracer_with_an_input_type_error(check):
    """Counts and line-search constants fix the program: a tracer for one is a mistake,
    reported as such instead of a ConcretizationTypeError."""
    with pytest.raises(InputTypeError):
        jax.jit(lambda x: check(x) or x)(1)
