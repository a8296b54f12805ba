"""Shared helpers for the jaxopt_lab tests.

optax is the numerical reference: most tests build the same optimizer twice, once from
``jaxopt_lab`` and once from ``optax``, run both for ``STEPS`` steps on the same problem
and compare the final parameters.

* ``make_params``: a small nested pytree (dict holding a list and a tuple, arrays of
  several ranks, a 0-d leaf and empty subtrees).
* ``loss``: a strongly convex but non-quadratic loss whose minimiser moves every step,
  so gradients never vanish and the optimizers' moments keep changing, while small
  rounding differences are damped instead of amplified.
* ``train``: ``STEPS`` optimizer steps in one ``lax.scan``; pure, so it can be jitted,
  vmapped and differentiated.
* ``run_jol`` / ``run_optax``: jitted runners. ``run_jol`` takes our optimizer as an
  argument (it is a pytree), so configurations that differ only in hyperparameter
  values share one compiled program.
* ``build(expr, lib)``: evaluates a configuration written as an expression, e.g.
  ``"adam(0.05, b1=0.8)"``, against ``jaxopt_lab`` or ``optax`` (same names in both).
* ``enable_x64()`` / the ``dtype`` fixture: float64 through a version-portable context
  manager, checked not to leak into other tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

import jaxopt_lab as jol

STEPS = 200
RTOL = {"float32": 1e-6, "float64": 1e-12}

# --------------------------------------------------------------------------------------
# float64
# --------------------------------------------------------------------------------------


def enable_x64():
    """Context manager turning on 64-bit mode, for old and new jax alike."""
    if hasattr(jax, "enable_x64"):  # jax >= 0.10 (also a config-style context manager)
        return jax.enable_x64(True)
    from jax.experimental import enable_x64 as _enable_x64  # older jax

    return _enable_x64()


def _x64_on() -> bool:
    return jnp.asarray(1.0).dtype == jnp.float64


_X64_AT_START = _x64_on()


@pytest.fixture(autouse=True)
def _x64_does_not_leak():
    """Fail any test that leaves 64-bit mode different from how it found it."""
    assert _x64_on() == _X64_AT_START, "x64 mode leaked into this test"
    yield
    assert _x64_on() == _X64_AT_START, "this test leaked x64 mode"


def release_compiled_programs():
    """Drop every compiled program JAX holds. XLA:CPU maps each executable's code into
    memory (about 4 mappings each: 4,500 small eager programs took 17,000), and a whole
    suite in one process crossed Linux's vm.max_map_count (65,530): a later compile then
    died with a segmentation fault. Cleared, the mappings are returned (17,019 -> 610)."""
    jax.clear_caches()


@pytest.fixture(autouse=True, scope="module")
def _compiled_programs_do_not_pile_up():
    """After each test module, release its compiled programs (see
    ``release_compiled_programs``); modules share few programs, so little is recompiled."""
    yield
    release_compiled_programs()


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Parameter dtype; float64 runs inside ``enable_x64()`` for the test's duration."""
    if request.param == "float64":
        with enable_x64():
            assert _x64_on()
            yield "float64"
    else:
        yield "float32"


# --------------------------------------------------------------------------------------
# Problem
# --------------------------------------------------------------------------------------

SHAPES = ((3,), (2, 3), (4, 1, 2), ())


def _leaf(shape, offset, dtype):
    n = int(np.prod(shape))
    values = 1.5 * np.sin(1.3 * np.arange(n) + offset)
    return jnp.asarray(values.reshape(shape), dtype)


def make_params(dtype="float32"):
    """``{"list": [(3,), (2, 3)], "tuple": ((4, 1, 2), (), ()), "empty": {}}``."""
    a, b, c, s = (_leaf(shape, i, dtype) for i, shape in enumerate(SHAPES))
    return {"list": [a, b], "tuple": (c, s, ()), "empty": {}}


# A mask for weight decay with the same structure as ``make_params()``, and a callable
# one (same names in ours and optax's calls).
MASK = {"list": [True, False], "tuple": (True, False, ()), "empty": {}}


def mask_fn(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def plain_schedule(count):
    """A plain Python callable used as a learning rate (not a pytree)."""
    return 0.05 / (1.0 + 0.02 * count)


def _targets(params, steps):
    """Per-step minimiser of ``loss``: ``2 sin(0.1 t + phase)``, precomputed in numpy."""

    def one(i, x):
        phase = 0.9 * np.arange(x.size).reshape(x.shape) + i
        t = np.arange(steps).reshape((steps,) + (1,) * x.ndim)
        return jnp.asarray(2.0 * np.sin(0.1 * t + phase), x.dtype)

    leaves, treedef = jax.tree.flatten(params)
    return treedef.unflatten([one(i, x) for i, x in enumerate(leaves)])


def loss(params, target):
    """Pseudo-Huber pull towards ``target`` + quadratic and quartic terms + coupling."""
    total, coupling = 0.0, 0.0
    for x, c in zip(jax.tree.leaves(params), jax.tree.leaves(target), strict=True):
        z = x - c
        total = total + jnp.sum(jnp.sqrt(1.0 + z * z) + 0.1 * x * x + 0.02 * x**4)
        coupling = coupling + jnp.sum(x)
    return total + 0.05 * coupling * coupling


def train(opt, params, steps=STEPS, *, apply_updates, grad_hook=None):
    """``steps`` steps of ``opt``; returns ``(params, state)``.

    ``grad_hook(grads, step) -> grads`` may corrupt gradients (e.g. inject NaNs).
    """

    def body(carry, xs):
        p, s = carry
        t, target = xs
        g = jax.grad(loss)(p, target)
        if grad_hook is not None:
            g = grad_hook(g, t)
        u, s = opt.update(g, s, p)
        return (apply_updates(p, u), s), None

    xs = (jnp.arange(steps), _targets(params, steps))
    (params, state), _ = lax.scan(body, (params, opt.init(params)), xs)
    return params, state


def final_loss(opt, params, steps, apply_updates):
    """Loss after ``steps`` steps (measured at the last step's target)."""
    p, _ = train(opt, params, steps, apply_updates=apply_updates)
    return loss(p, jax.tree.map(lambda c: c[-1], _targets(params, steps)))


# --------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------


def _fast_compile_options():
    """Per-jit XLA:CPU options that make compiling these small scans ~3x cheaper (no
    parallel codegen split, the classic elemental emitters). Ours and optax's are
    compiled with the same options. Nothing global is changed; options this XLA does not
    know are dropped. (``xla_backend_optimization_level=0`` would be cheaper still but
    changes rounding, e.g. of ``pow``, away from what users get.)"""
    if jax.default_backend() != "cpu":
        return {}
    options = {
        "xla_cpu_use_fusion_emitters": False,
        "xla_cpu_parallel_codegen_split_count": 1,
    }
    try:
        jax.jit(lambda x: x + 1, compiler_options=options)(1.0)
    except Exception:  # unknown option, or a jax whose jit takes no compiler_options
        return {}
    return options


COMPILER_OPTIONS = _fast_compile_options()


def fast_jit(fn, **kwargs):
    """``jax.jit`` with COMPILER_OPTIONS."""
    if COMPILER_OPTIONS:
        kwargs["compiler_options"] = COMPILER_OPTIONS
    return jax.jit(fn, **kwargs)


def _train_jol(opt, params, steps=STEPS, grad_hook=None):
    return train(opt, params, steps, apply_updates=jol.apply_updates, grad_hook=grad_hook)


# ONE jitted runner for all of our optimizers: the optimizer is an argument.
run_jol = fast_jit(_train_jol, static_argnames=("steps", "grad_hook"))


def run_optax(opt, params, steps=STEPS, grad_hook=None):
    """optax's transforms are not pytrees: close over them (one compile per call)."""
    return fast_jit(
        lambda p: train(opt, p, steps, apply_updates=optax.apply_updates, grad_hook=grad_hook)
    )(params)


# --------------------------------------------------------------------------------------
# Configurations written once for both libraries
# --------------------------------------------------------------------------------------

ALIASES = (
    "sgd adagrad rmsprop adam adamw adamax nadam amsgrad adabelief radam lion lamb yogi "
    "adadelta sign_sgd"
).split()
TRANSFORMS = (
    "chain identity scale scale_by_learning_rate scale_by_schedule scale_by_adam "
    "scale_by_rms scale_by_stddev scale_by_rss scale_by_amsgrad scale_by_adamax "
    "scale_by_adadelta scale_by_belief scale_by_yogi scale_by_radam scale_by_lion "
    "scale_by_sign scale_by_trust_ratio trace clip clip_by_global_norm add_decayed_weights "
    "apply_if_finite"
).split()
SCHEDULES = (
    "constant_schedule polynomial_schedule linear_schedule exponential_decay "
    "cosine_decay_schedule warmup_cosine_decay_schedule piecewise_constant_schedule "
    "join_schedules"
).split()


def build(expr: str, lib):
    """Evaluate ``expr`` with the API names taken from ``lib`` (jaxopt_lab or optax)."""
    names = ALIASES + TRANSFORMS + SCHEDULES
    namespace = {name: getattr(lib, name) for name in names if hasattr(lib, name)}
    namespace.update(jnp=jnp, MASK=MASK, mask_fn=mask_fn, plain_schedule=plain_schedule)
    return eval(expr, namespace)  # noqa: S307 - expressions are the literals in the tests


# --------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------


def assert_trees_close(actual, expected, rtol):
    """Same structure, shapes and dtypes; values within ``rtol`` relative to each leaf's
    magnitude (``|a - e| <= rtol * (|e| + max(1, max|e|))``, so near-zero entries are
    judged against the leaf's scale)."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(expected)]
    for path, a, e in zip(paths, jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{path}: shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"{path}: dtype {a.dtype} != {e.dtype}"
        e64 = e.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(e64)))) if e.size else 1.0
        np.testing.assert_allclose(
            a.astype(np.float64), e64, rtol=rtol, atol=rtol * scale, err_msg=path
        )


def max_change(before, after) -> float:
    """Largest absolute change of any entry: a guard that a run was not a no-op."""
    diffs = jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))), before, after)
    return float(max(jax.tree.leaves(diffs), default=0.0))


def state_signature(state):
    """Sorted (dtype, shape) of a state's leaves: comparable across libraries whose
    state containers differ."""
    return sorted((x.dtype.name, x.shape) for x in jax.tree.leaves(state))


# A bfloat16 optimizer state (mu_dtype / accumulator_dtype) in a float32 run: XLA keeps or
# drops the rounding of bf16 intermediates depending on whether hyperparameters are
# compile-time constants (optax) or traced (ours, passed to jit as an argument), so a
# moment may differ by one bf16 ulp now and then. Compare such runs to bf16 precision.
BF16_RTOL = 2e-2


def check_against_optax(expr: str, dtype: str, steps: int = STEPS):
    """Run ``expr`` built from both libraries from the same params; compare results."""
    params = make_params(dtype)
    expected, ref_state = run_optax(build(expr, optax), params, steps)
    actual, state = run_jol(build(expr, jol), params, steps)
    assert {x.dtype.name for x in jax.tree.leaves(expected)} == {dtype}
    assert max_change(params, expected) > 1e-2, "configuration makes no progress"
    assert state_signature(state) == state_signature(ref_state)
    bf16_state = any(name == "bfloat16" for name, _ in state_signature(ref_state))
    rtol = BF16_RTOL if dtype == "float32" and bf16_state else RTOL[dtype]
    assert_trees_close(actual, expected, rtol)


def assert_real_png(path, min_size=(300, 400)):
    """A PNG at least ``min_size`` pixels, not blank, with more drawn than a frame."""
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], image.shape
    rgb = image[..., :3]
    assert np.std(rgb) > 0.05  # not blank
    assert (np.abs(rgb - rgb[0, 0]).sum(-1) > 0.1).mean() > 0.02  # more than a frame
