"""jol.lr_find: the range test's ramp, its suggestion against a known stability limit,
seeds vmapped in one program, mini-batches, and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab import problems

CURVATURES = jnp.array([0.01, 0.3, 2.0, 8.0])  # largest L = 8: SGD is stable below 2/L


def quadratic(x):
    return 0.5 * jnp.sum(CURVATURES * x**2)


@pytest.mark.parametrize("smoothing", [0.0, 0.9, 0.98])
def test_suggestion_lies_below_the_stability_limit_and_within_100x(smoothing):
    limit = 2.0 / float(CURVATURES.max())
    found = jol.lr_find(jol.sgd, quadratic, jnp.ones(4), 1e-5, 1e2, steps=150, smoothing=smoothing)
    assert limit / 100 <= found.suggestion < limit
    # the ramp and the blow-up: past the limit the loss grows, and the test sees it
    np.testing.assert_allclose(found.learning_rates[[0, -1]], [1e-5, 1e2], rtol=1e-6)
    assert found.blowup_step[0] > 0 and found.blowup_lr[0] > limit


def test_seeds_are_vmapped_runs_with_their_own_start():
    def init(key):
        return jax.random.normal(key, (4,))

    found = jol.lr_find(jol.sgd, quadratic, None, 1e-5, 1e2, steps=120, seeds=4, init_fn=init)
    assert found.losses.shape == (4, 120) and found.smoothed.shape == (4, 120)
    assert len({float(x) for x in found.losses[:, 0]}) == 4  # four different starts
    lo, hi = found.spread
    assert lo <= found.suggestion <= hi and found.suggestions.shape == (4,)
    # each seed is the single run from its own start
    key1 = jax.random.fold_in(jax.random.PRNGKey(0), 1)
    alone = jol.lr_find(jol.sgd, quadratic, init(key1), 1e-5, 1e2, steps=120)
    np.testing.assert_allclose(found.losses[1], alone.losses[0], rtol=1e-6)


def test_minibatch_range_test_on_logistic_regression():
    prob = problems.logistic_regression()
    found = jol.lr_find(jol.adam, prob.loss, None, 1e-5, 10.0, steps=60, seeds=2,
                        init_fn=prob.init_params, data=prob.train, batch_size=32)  # fmt: skip
    assert found.losses.shape == (2, 60) and np.isfinite(found.losses[:, :20]).all()
    assert 1e-5 < found.suggestion < 10.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr_min": 1.0, "lr_max": 0.5}, "lr_min"),
        ({"lr_min": 0.0}, "lr_min"),
        ({"steps": 1}, "steps"),
        ({"seeds": 0}, "seeds"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"batch_size": 4}, "batch_size"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(jol.InputError, match=match):
        jol.lr_find(jol.sgd, quadratic, jnp.ones(4), **kwargs)
    with pytest.raises(jol.InputError, match="loss_fn"):
        jol.lr_find(jol.sgd, "not a function", jnp.ones(4))
