"""Helpers for the core-catalogue tests (issue 17: adafactor, adan, sm3, polyak_sgd, ...)
shared by ``test_optimizers.py`` and ``test_transforms.py``.

``conftest.build`` only knows the names of the original API, so configurations of the
catalogue are evaluated here against a namespace that also holds the new names. Two
further needs of these optimizers:

* ``scale_by_sm3`` (and ``sm3``) and ``scale_by_distance_over_gradients`` fail in optax
  0.2.8 on a 0-d leaf, so they are compared on ``params_without_scalar``;
* ``scale_by_polyak`` (and ``polyak_sgd``) need the loss: ``train_with_value`` passes
  ``value=`` to every update, as ``jol.minimize`` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from conftest import (
    ALIASES,
    BF16_RTOL,
    MASK,
    RTOL,
    SCHEDULES,
    STEPS,
    TRANSFORMS,
    _targets,
    assert_trees_close,
    fast_jit,
    loss,
    make_params,
    mask_fn,
    max_change,
    run_jol,
    run_optax,
    state_signature,
)
from jax import lax

import jaxopt_lab as jol

CATALOGUE_ALIASES = (
    "adafactor nadamw adamaxw lars signum novograd adan rprop sm3 fromage noisy_sgd "
    "optimistic_gradient_descent optimistic_adam polyak_sgd"
).split()
CATALOGUE_TRANSFORMS = (
    "scale_by_factored_rms scale_by_novograd scale_by_adan scale_by_rprop scale_by_sm3 "
    "scale_by_optimistic_gradient scale_by_polyak scale_by_distance_over_gradients "
    "scale_by_param_block_norm scale_by_param_block_rms"
).split()
# optax fails on a 0-d leaf with these (see the module docstring)
NEED_NO_SCALAR = ("sm3(", "distance_over_gradients(")
# these take `value=` in update
NEED_VALUE = ("polyak",)


def build_catalogue(expr: str, lib):
    """``conftest.build`` with the catalogue's names (and ``jax``) in scope."""
    names = ALIASES + TRANSFORMS + SCHEDULES + CATALOGUE_ALIASES + CATALOGUE_TRANSFORMS
    namespace = {name: getattr(lib, name) for name in names if hasattr(lib, name)}
    namespace.update(jax=jax, jnp=jnp, MASK=MASK, mask_fn=mask_fn)
    return eval(expr, namespace)  # noqa: S307 - expressions are the literals in the tests


def params_without_scalar(dtype="float32"):
    """``make_params`` without its 0-d leaf."""
    params = make_params(dtype)
    c, _, empty = params["tuple"]
    return {"list": params["list"], "tuple": (c, empty), "empty": {}}


def train_with_value(opt, params, steps=STEPS, *, apply_updates):
    """``conftest.train`` passing the loss as ``value=`` to each update."""

    def body(carry, target):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p, target)
        u, s = opt.update(g, s, p, value=value)
        return (apply_updates(p, u), s), None

    (params, state), _ = lax.scan(body, (params, opt.init(params)), _targets(params, steps))
    return params, state


# one compiled program for all of ours, as conftest.run_jol
run_jol_with_value = fast_jit(
    lambda opt, params, steps=STEPS: train_with_value(
        opt, params, steps, apply_updates=jol.apply_updates
    ),
    static_argnames=("steps",),
)


def run_optax_with_value(opt, params, steps=STEPS):
    return fast_jit(lambda p: train_with_value(opt, p, steps, apply_updates=optax.apply_updates))(
        params
    )


def check_catalogue(expr: str, dtype: str, steps: int = STEPS):
    """``conftest.check_against_optax`` for a catalogue configuration."""
    no_scalar = any(key in expr for key in NEED_NO_SCALAR)
    params = params_without_scalar(dtype) if no_scalar else make_params(dtype)
    with_value = any(key in expr for key in NEED_VALUE)
    ours_run, ref_run = (
        (run_jol_with_value, run_optax_with_value) if with_value else (run_jol, run_optax)
    )
    expected, ref_state = ref_run(build_catalogue(expr, optax), params, steps)
    actual, state = ours_run(build_catalogue(expr, jol), params, steps)
    assert {x.dtype.name for x in jax.tree.leaves(expected)} == {dtype}
    assert max_change(params, expected) > 1e-2, "configuration makes no progress"
    assert state_signature(state) == state_signature(ref_state)
    bf16_state = any(name == "bfloat16" for name, _ in state_signature(ref_state))
    rtol = BF16_RTOL if dtype == "float32" and bf16_state else RTOL[dtype]
    assert_trees_close(actual, expected, rtol)


def catalogue_names() -> set[str]:
    """Every name issue 17's contract covers, read from the package, so that a new name
    fails the completeness tests (test_properties, test_optimizers) until it is covered:
    the catalogue's aliases and transforms, every public function of jol.contrib, and
    every public function of jaxopt_lab.wrappers (and ``MultiSteps``)."""
    from jaxopt_lab import wrappers

    public = {n for n in jol.__all__ if n[0].islower() or n == "MultiSteps"}
    wrapped = {n for n in public if getattr(getattr(jol, n), "__module__", "") == wrappers.__name__}
    contrib = {n for n in jol.contrib.__all__ if n[0].islower()}
    return set(CATALOGUE_ALIASES) | set(CATALOGUE_TRANSFORMS) | contrib | wrapped
