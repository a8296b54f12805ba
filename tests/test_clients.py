"""Our optimizers inside real JAX training loops, as their users write them: Equinox's
filtered ``jit``/``grad`` and ``apply_updates`` (skipped where Equinox is not installed;
it is not one of our dependencies). Each run equals the same loop with optax's optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import jaxopt_lab as jol

eqx = pytest.importorskip("equinox")


def _matrices(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


CASES = {
    "adam": lambda lib: lib.adam(1e-2),
    "adafactor": lambda lib: lib.adafactor(1e-2, min_dim_size_to_factor=4),
    "adan": lambda lib: lib.adan(1e-2),
    "muon": lambda lib: lib.contrib.muon(1e-2),
    "schedule_free_adamw": lambda lib: lib.contrib.schedule_free_adamw(1e-2),
    "prodigy": lambda lib: lib.contrib.prodigy(),
    "masked": lambda lib: lib.chain(lib.masked(lib.scale(0.5), _matrices), lib.adam(1e-2)),
    "inject_hyperparams": lambda lib: lib.inject_hyperparams(lib.adam)(learning_rate=1e-2),
    "chain": lambda lib: lib.chain(lib.clip_by_global_norm(1.0), lib.nadamw(1e-2)),
}


def _train(opt, steps=6):
    key = jax.random.key(0)
    model = eqx.nn.MLP(4, 2, 8, 2, key=key)
    x, y = jax.random.normal(key, (32, 4)), jnp.zeros((32, 2))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p):
        return jnp.mean((jax.vmap(eqx.combine(p, static))(x) - y) ** 2)

    @eqx.filter_jit
    def step(params, state):
        value, grads = eqx.filter_value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return eqx.apply_updates(params, updates), state, value

    state = opt.init(params)
    losses = []
    for _ in range(steps):
        params, state, value = step(params, state)
        losses.append(float(value))
    return losses, jax.tree.leaves(params)


@pytest.mark.parametrize("name", sorted(CASES))
def test_equinox_training_loop_matches_optax(name):
    ours, ours_params = _train(CASES[name](jol))
    theirs, their_params = _train(CASES[name](optax))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ours[-1] < ours[0]
    for a, b in zip(ours_params, their_params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
