"""``_iterate``: the histories' padding, and what a run costs whatever its budget.

``run_until`` pads the loss and gradient-norm histories after the run stops by copies
(no arithmetic), and by a select under ``vmap``; both must give the reference padding,
also under ``jit``, forward-mode differentiation and a ``vmap`` of either argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxopt_lab as jol
from jaxopt_lab import _iterate


def _reference(history, last):
    history = np.asarray(history).copy()
    history[last + 1 :] = history[last]
    return history


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(1, 40), data=st.data())
def test_padding_repeats_the_last_record(steps, data):
    last = data.draw(st.integers(0, steps - 1))
    history = np.arange(1.0, steps + 1.0) ** 2
    got = _iterate._pad(jnp.asarray(history), jnp.asarray(last))
    np.testing.assert_array_equal(got, _reference(history, last))


def test_padding_under_jit_and_vmap_of_either_argument():
    histories = jnp.arange(24.0).reshape(3, 8) * 1.5
    lasts = jnp.array([0, 4, 7])
    pad = jax.jit(_iterate._pad)
    want = np.stack([_reference(h, i) for h, i in zip(histories, lasts, strict=True)])
    np.testing.assert_array_equal(jax.vmap(pad)(histories, lasts), want)
    np.testing.assert_array_equal(
        jax.vmap(pad, (0, None))(histories, 4),
        np.stack([_reference(h, 4) for h in histories]),
    )
    np.testing.assert_array_equal(
        jax.vmap(pad, (None, 0))(histories[0], lasts),
        np.stack([_reference(histories[0], i) for i in lasts]),
    )


def test_padding_under_forward_mode():
    history, last = jnp.arange(6.0) + 1.0, jnp.asarray(2)
    value, tangent = jax.jvp(lambda h: _iterate._pad(h, last), (history,), (history * 10.0,))
    np.testing.assert_array_equal(value, _reference(history, 2))
    np.testing.assert_array_equal(tangent, _reference(history * 10.0, 2))
    jac = jax.jacfwd(lambda h: _iterate._pad(h, last))(history)
    want = np.eye(6)
    want[3:] = want[2]
    np.testing.assert_array_equal(jac, want)
    batched = jax.vmap(lambda h: jax.jvp(lambda h: _iterate._pad(h, last), (h,), (h,))[1])(
        jnp.stack([history, -history])
    )
    np.testing.assert_array_equal(batched[1], -_reference(history, 2))


@pytest.mark.parametrize("optimizer", [jol.bfgs(), jol.adam(0.1)], ids=["bfgs", "adam"])
def test_a_runs_program_does_not_grow_with_its_budget(optimizer):
    """The histories are written in chunks and padded by copies: the operations XLA
    counts do not grow with the budget (a select over the histories would add 4 per
    step, 40,000 here)."""

    def flops(steps):
        run = jax.jit(
            lambda x: jol.minimize(lambda p: jnp.sum(p**2), x, optimizer, steps, tol=1e-6)
        )
        cost = run.lower(jnp.ones(2)).compile().cost_analysis()
        return (cost[0] if isinstance(cost, list) else cost)["flops"]

    assert flops(10_000) - flops(100) < 100


def test_minimize_pads_the_histories_under_vmap_as_alone():
    """Alone the padding copies, under vmap it selects: the same records, bit for bit."""
    f = jol.problems.rosenbrock(2).fn
    starts = jnp.array([[-1.2, 1.0], [0.5, 0.5], [1.0, 1.0]])
    run = jax.jit(lambda x: jol.minimize(f, x, jol.bfgs(), 60, tol=1e-5))
    batched = jax.vmap(run)(starts)
    for k, x in enumerate(starts):
        one = run(x)
        n = int(one.num_steps)
        assert n < 59
        np.testing.assert_array_equal(one.losses[n:], one.losses[n])
        np.testing.assert_array_equal(batched.losses[k], one.losses)
        np.testing.assert_array_equal(batched.grad_norms[k], one.grad_norms)
