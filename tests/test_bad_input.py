"""A catalogue of bad input across the public API: each call raises ValueError or
TypeError at once, with a message naming the argument (and what was expected), instead
of failing deep inside XLA, hanging, or returning a result."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import jaxopt_lab as jol
from jaxopt_lab import plots

P = jol.problems
f2 = P.rosenbrock().fn
x0 = jnp.asarray([-1.2, 1.0])
quad = lambda p: jnp.sum(p**2)  # noqa: E731
data = {"x": jnp.ones((10, 2)), "y": jnp.ones((10,))}
batch_loss = lambda p, b: jnp.mean((b["x"] @ p - b["y"]) ** 2)  # noqa: E731

CASES = [
    # optimizers and transforms
    ("adam negative lr", lambda: jol.adam(-1e-3), ValueError, "learning_rate"),
    ("adam b1 > 1", lambda: jol.adam(1e-3, b1=1.5), ValueError, "b1"),
    ("adam negative eps", lambda: jol.adam(1e-3, eps=-1.0), ValueError, "eps"),
    ("sgd unknown keyword", lambda: jol.sgd(0.1, momentom=0.9), TypeError, "momentom"),
    ("rmsprop negative decay", lambda: jol.rmsprop(0.1, decay=-0.5), ValueError, "decay"),
    ("lion b2 > 1", lambda: jol.lion(0.1, b2=2.0), ValueError, "b2"),
    (
        "adagrad negative accumulator",
        lambda: jol.adagrad(0.1, initial_accumulator_value=-1.0),
        ValueError,
        "initial_accumulator_value",
    ),
    (
        "apply_if_finite negative count",
        lambda: jol.apply_if_finite(jol.adam(0.1), -1),
        ValueError,
        "max_consecutive_errors",
    ),
    ("clip negative max_delta", lambda: jol.clip(-1.0), ValueError, "max_delta"),
    ("clip_by_global_norm negative", lambda: jol.clip_by_global_norm(-1.0), ValueError, "max_norm"),
    (
        "integer params",
        lambda: jol.adam(0.1).init({"w": jnp.ones(3, jnp.int32)}),
        TypeError,
        r"\['w'\]",
    ),
    (
        "grads of another structure",
        lambda: jol.adam(0.1).update(
            {"v": jnp.ones(3)}, jol.adam(0.1).init({"w": jnp.ones(3)}), {"w": jnp.ones(3)}
        ),
        ValueError,
        "structure",
    ),  # fmt: skip
    ("chain of a non-optimizer", lambda: jol.chain(jol.adam(0.1), 3), TypeError, "init"),
    # schedules
    (
        "cosine decay zero steps",
        lambda: jol.cosine_decay_schedule(0.1, 0),
        ValueError,
        "decay_steps",
    ),
    (
        "join_schedules boundary count",
        lambda: jol.join_schedules([jol.constant_schedule(0.1)] * 2, [10, 20]),
        ValueError,
        "boundaries",
    ),
    (
        "piecewise bad boundaries",
        lambda: jol.piecewise_constant_schedule(0.1, {"a": 0.5}),
        (TypeError, ValueError),
        "boundaries",
    ),
    # loops
    ("minimize zero steps", lambda: jol.minimize(quad, x0, jol.adam(0.1), 0), ValueError, "steps"),
    (
        "minimize float steps",
        lambda: jol.minimize(quad, x0, jol.adam(0.1), 2.5),
        (TypeError, ValueError),
        "steps",
    ),
    (
        "minimize negative tol",
        lambda: jol.minimize(quad, x0, jol.adam(0.1), 10, tol=-1.0),
        ValueError,
        "tol",
    ),
    (
        "minimize not an optimizer",
        lambda: jol.minimize(quad, x0, "adam", 10),
        TypeError,
        "optimizer",
    ),
    (
        "minimize loss not callable",
        lambda: jol.minimize(3.0, x0, jol.adam(0.1), 10),
        TypeError,
        "loss_fn",
    ),
    (
        "minimize non-scalar loss",
        lambda: jol.minimize(lambda p: p, x0, jol.adam(0.1), 10),
        (TypeError, ValueError),
        "scalar",
    ),
    (
        "minimize integer params",
        lambda: jol.minimize(quad, jnp.ones(2, jnp.int32), jol.adam(0.1), 10),
        TypeError,
        "float",
    ),
    (
        "fit batch larger than data",
        lambda: jol.fit(
            batch_loss, jnp.ones(2), jol.sgd(0.1), data, batch_size=11, epochs=1, key=0
        ),
        ValueError,
        "batch_size",
    ),  # fmt: skip
    (
        "fit zero epochs",
        lambda: jol.fit(batch_loss, jnp.ones(2), jol.sgd(0.1), data, batch_size=2, epochs=0, key=0),
        ValueError,
        "epochs",
    ),
    (
        "fit ragged data",
        lambda: jol.fit(
            batch_loss,
            jnp.ones(2),
            jol.sgd(0.1),
            {"x": jnp.ones((10, 2)), "y": jnp.ones(9)},
            batch_size=2,
            epochs=1,
            key=0,
        ),
        ValueError,
        "data",
    ),  # fmt: skip
    (
        "trajectory zero steps",
        lambda: jol.trajectory(quad, x0, jol.sgd(0.1), 0),
        ValueError,
        "steps",
    ),
    # sweeps
    (
        "sweep negative lr",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1, -0.1], 10),
        ValueError,
        "learning_rates",
    ),
    (
        "sweep empty grid",
        lambda: jol.sweep(jol.adam, quad, x0, [], 10),
        ValueError,
        "learning_rates",
    ),
    (
        "sweep 2-D grid",
        lambda: jol.sweep(jol.adam, quad, x0, [[0.1, 0.2]], 10),
        ValueError,
        "learning_rates",
    ),
    (
        "sweep unknown hyperparameter",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1], 10, hyperparams={"beta": [0.9]}),
        (TypeError, ValueError),
        "beta",
    ),  # fmt: skip
    (
        "sweep bad combine",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1], 10, combine="cross"),
        ValueError,
        "combine",
    ),
    (
        "sweep zero chunk",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1], 10, chunk_size=0),
        ValueError,
        "chunk_size",
    ),
    (
        "sweep no params nor init_fn",
        lambda: jol.sweep(jol.adam, quad, None, [0.1], 10),
        (TypeError, ValueError),
        "init_fn",
    ),
    (
        "sweep load of a missing file",
        lambda: jol.SweepResult.load("/nonexistent/sweep.npz"),
        (OSError, ValueError),
        "sweep.npz",
    ),
    # quasi-Newton and line searches
    (
        "bfgs integer start",
        lambda: jol.minimize(f2, jnp.asarray([1, 2]), jol.bfgs(), 10),
        TypeError,
        "float",
    ),
    ("lbfgs zero memory", lambda: jol.lbfgs(memory_size=0), ValueError, "memory_size"),
    ("cg unknown method", lambda: jol.nonlinear_cg(method="newton"), ValueError, "method"),
    ("zoom c2 below c1", lambda: jol.zoom_linesearch(c1=0.5, c2=0.1), ValueError, "c2"),
    (
        "update without value_fn",
        lambda: jol.bfgs().update(x0, jol.bfgs().init(x0), x0),
        TypeError,
        "value_fn",
    ),
    (
        "non-finite start",
        lambda: jol.minimize(lambda x: jnp.sum(x) / 0.0 * 0.0, x0, jol.bfgs(), 10),
        ValueError,
        "starting point",
    ),
    # figures
    (
        "contour paths not (T, 2)",
        lambda: plots.contour_trajectories(f2, {"adam": jnp.ones((4, 3))}),
        ValueError,
        r"paths\['adam'\]",
    ),  # fmt: skip
    ("loss curves of a list", lambda: plots.loss_curves([1.0, 0.5]), TypeError, "curves"),
    (
        "loss curves zero smoothing",
        lambda: plots.loss_curves({"a": jnp.ones(5)}, smooth=0),
        ValueError,
        "smooth",
    ),
    (
        "learning-rate effect without rates",
        lambda: plots.learning_rate_effect(P.quartic().fn, 2.0, []),
        ValueError,
        "learning_rates",
    ),  # fmt: skip
    # gradients and problems
    ("numerical_grad zero eps", lambda: jol.numerical_grad(quad, x0, eps=0.0), ValueError, "eps"),
    ("rosenbrock n=1", lambda: P.rosenbrock(1), ValueError, "n"),
    ("test function at a wrong shape", lambda: f2(jnp.ones(3)), ValueError, "shape"),
    (
        "ill-conditioned quadratic below 1",
        lambda: P.ill_conditioned_quadratic(2, 0.5),
        ValueError,
        "condition_number",
    ),
]


def test_the_catalogue_is_large():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("name", "call", "error", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_it(name, call, error, names):
    with pytest.raises(error, match=names) as info:
        call()
    message = str(info.value)
    assert "XlaRuntimeError" not in type(info.value).__name__ and len(message) > 10
