"""Our optimizers inside real JAX training loops, as their users write them: Equinox's
filtered ``jit``/``grad`` and ``apply_updates``, Flax's ``TrainState`` (Linen) and
``nnx.Optimizer`` (each skipped where that library is not installed: they are not our
dependencies). Each run equals the same loop with optax's optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import jaxopt_lab as jol


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
    eqx = pytest.importorskip("equinox")
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


X, Y = jax.random.normal(jax.random.key(0), (32, 4)), jnp.zeros((32, 2))


def _train_linen(tx, steps=5):
    nn = pytest.importorskip("flax.linen")
    from flax.training import train_state

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(nn.relu(nn.Dense(8)(x)))

    model = MLP()
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(jax.random.key(1), X), tx=tx
    )

    @jax.jit
    def step(state):
        loss = lambda p: jnp.mean((state.apply_fn(p, X) - Y) ** 2)  # noqa: E731
        value, grads = jax.value_and_grad(loss)(state.params)
        return state.apply_gradients(grads=grads), value

    losses = []
    for _ in range(steps):
        state, value = step(state)
        losses.append(float(value))
    return losses


def _train_nnx(tx, steps=5):
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1, self.l2 = nnx.Linear(4, 8, rngs=rngs), nnx.Linear(8, 2, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.l1(x)))

    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss = lambda m: jnp.mean((m(X) - Y) ** 2)  # noqa: E731
        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    return [float(step(model, optimizer)) for _ in range(steps)]


FLAX_CASES = ["adafactor", "muon", "schedule_free_adamw", "inject_hyperparams", "chain"]


@pytest.mark.parametrize("runner", [_train_linen, _train_nnx], ids=["linen", "nnx"])
@pytest.mark.parametrize("name", FLAX_CASES)
def test_flax_training_loops_match_optax(name, runner):
    ours, theirs = runner(CASES[name](jol)), runner(CASES[name](optax))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ours[-1] < ours[0]
