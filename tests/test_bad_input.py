"""A catalogue of bad input across the public API: each call raises a ``jol.InputError``
at once (an ``InputValueError`` for a value out of range, an ``InputTypeError`` for the
wrong kind of argument), with a message naming the argument (and what was expected),
instead of failing deep inside XLA, hanging, or returning a result."""

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
    ("adam negative lr", lambda: jol.adam(-1e-3), jol.InputValueError, "learning_rate"),
    ("adam b1 > 1", lambda: jol.adam(1e-3, b1=1.5), jol.InputValueError, "b1"),
    ("adam negative eps", lambda: jol.adam(1e-3, eps=-1.0), jol.InputValueError, "eps"),
    ("rmsprop negative decay", lambda: jol.rmsprop(0.1, decay=-0.5), jol.InputValueError, "decay"),
    ("lion b2 > 1", lambda: jol.lion(0.1, b2=2.0), jol.InputValueError, "b2"),
    (
        "adagrad negative accumulator",
        lambda: jol.adagrad(0.1, initial_accumulator_value=-1.0),
        jol.InputValueError,
        "initial_accumulator_value",
    ),
    (
        "apply_if_finite negative count",
        lambda: jol.apply_if_finite(jol.adam(0.1), -1),
        jol.InputValueError,
        "max_consecutive_errors",
    ),
    ("clip negative max_delta", lambda: jol.clip(-1.0), jol.InputValueError, "max_delta"),
    (
        "clip_by_global_norm negative",
        lambda: jol.clip_by_global_norm(-1.0),
        jol.InputValueError,
        "max_norm",
    ),
    (
        "integer params",
        lambda: jol.adam(0.1).init({"w": jnp.ones(3, jnp.int32)}),
        jol.InputTypeError,
        r"\['w'\]",
    ),
    (
        "grads of another structure",
        lambda: jol.adam(0.1).update(
            {"v": jnp.ones(3)}, jol.adam(0.1).init({"w": jnp.ones(3)}), {"w": jnp.ones(3)}
        ),
        jol.InputValueError,
        "structure",
    ),  # fmt: skip
    ("chain of a non-optimizer", lambda: jol.chain(jol.adam(0.1), 3), jol.InputTypeError, "init"),
    # schedules
    (
        "cosine decay zero steps",
        lambda: jol.cosine_decay_schedule(0.1, 0),
        jol.InputValueError,
        "decay_steps",
    ),
    (
        "join_schedules boundary count",
        lambda: jol.join_schedules([jol.constant_schedule(0.1)] * 2, [10, 20]),
        jol.InputValueError,
        "boundaries",
    ),
    (
        "piecewise bad boundaries",
        lambda: jol.piecewise_constant_schedule(0.1, {"a": 0.5}),
        jol.InputError,
        "boundaries",
    ),
    # loops
    (
        "minimize zero steps",
        lambda: jol.minimize(quad, x0, jol.adam(0.1), 0),
        jol.InputValueError,
        "steps",
    ),
    (
        "minimize float steps",
        lambda: jol.minimize(quad, x0, jol.adam(0.1), 2.5),
        jol.InputError,
        "steps",
    ),
    (
        "minimize negative tol",
        lambda: jol.minimize(quad, x0, jol.adam(0.1), 10, tol=-1.0),
        jol.InputValueError,
        "tol",
    ),
    (
        "minimize not an optimizer",
        lambda: jol.minimize(quad, x0, "adam", 10),
        jol.InputTypeError,
        "optimizer",
    ),
    (
        "minimize loss not callable",
        lambda: jol.minimize(3.0, x0, jol.adam(0.1), 10),
        jol.InputTypeError,
        "loss_fn",
    ),
    (
        "minimize non-scalar loss",
        lambda: jol.minimize(lambda p: p, x0, jol.adam(0.1), 10),
        jol.InputError,
        "scalar",
    ),
    (
        "minimize integer params",
        lambda: jol.minimize(quad, jnp.ones(2, jnp.int32), jol.adam(0.1), 10),
        jol.InputTypeError,
        "float",
    ),
    (
        "fit batch larger than data",
        lambda: jol.fit(
            batch_loss, jnp.ones(2), jol.sgd(0.1), data, batch_size=11, epochs=1, key=0
        ),
        jol.InputValueError,
        "batch_size",
    ),  # fmt: skip
    (
        "fit zero epochs",
        lambda: jol.fit(batch_loss, jnp.ones(2), jol.sgd(0.1), data, batch_size=2, epochs=0, key=0),
        jol.InputValueError,
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
        jol.InputValueError,
        "data",
    ),  # fmt: skip
    (
        "trajectory zero steps",
        lambda: jol.trajectory(quad, x0, jol.sgd(0.1), 0),
        jol.InputValueError,
        "steps",
    ),
    # sweeps
    (
        "sweep negative lr",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1, -0.1], 10),
        jol.InputValueError,
        "learning_rates",
    ),
    (
        "sweep empty grid",
        lambda: jol.sweep(jol.adam, quad, x0, [], 10),
        jol.InputValueError,
        "learning_rates",
    ),
    (
        "sweep 2-D grid",
        lambda: jol.sweep(jol.adam, quad, x0, [[0.1, 0.2]], 10),
        jol.InputValueError,
        "learning_rates",
    ),
    (
        "sweep unknown hyperparameter",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1], 10, hyperparams={"beta": [0.9]}),
        jol.InputError,
        "beta",
    ),  # fmt: skip
    (
        "sweep bad combine",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1], 10, combine="cross"),
        jol.InputValueError,
        "combine",
    ),
    (
        "sweep zero chunk",
        lambda: jol.sweep(jol.adam, quad, x0, [0.1], 10, chunk_size=0),
        jol.InputValueError,
        "chunk_size",
    ),
    (
        "sweep no params nor init_fn",
        lambda: jol.sweep(jol.adam, quad, None, [0.1], 10),
        jol.InputError,
        "init_fn",
    ),
    (
        "sweep load of a missing file",
        lambda: jol.SweepResult.load("/nonexistent/sweep.npz"),
        jol.InputError,
        "sweep.npz",
    ),
    # quasi-Newton and line searches
    (
        "bfgs integer start",
        lambda: jol.minimize(f2, jnp.asarray([1, 2]), jol.bfgs(), 10),
        jol.InputTypeError,
        "float",
    ),
    ("lbfgs zero memory", lambda: jol.lbfgs(memory_size=0), jol.InputValueError, "memory_size"),
    ("cg unknown method", lambda: jol.nonlinear_cg(method="newton"), jol.InputValueError, "method"),
    ("zoom c2 below c1", lambda: jol.zoom_linesearch(c1=0.5, c2=0.1), jol.InputValueError, "c2"),
    (
        "update without value_fn",
        lambda: jol.bfgs().update(x0, jol.bfgs().init(x0), x0),
        jol.InputTypeError,
        "value_fn",
    ),
    (
        "non-finite start",
        lambda: jol.minimize(lambda x: jnp.sum(x) / 0.0 * 0.0, x0, jol.bfgs(), 10),
        jol.InputValueError,
        "starting point",
    ),
    # figures
    (
        "contour paths not (T, 2)",
        lambda: plots.contour_trajectories(f2, {"adam": jnp.ones((4, 3))}),
        jol.InputValueError,
        r"paths\['adam'\]",
    ),  # fmt: skip
    ("loss curves of a list", lambda: plots.loss_curves([1.0, 0.5]), jol.InputTypeError, "curves"),
    (
        "loss curves zero smoothing",
        lambda: plots.loss_curves({"a": jnp.ones(5)}, smooth=0),
        jol.InputValueError,
        "smooth",
    ),
    (
        "learning-rate effect without rates",
        lambda: plots.learning_rate_effect(P.quartic().fn, 2.0, []),
        jol.InputValueError,
        "learning_rates",
    ),  # fmt: skip
    # gradients and problems
    (
        "numerical_grad zero eps",
        lambda: jol.numerical_grad(quad, x0, eps=0.0),
        jol.InputValueError,
        "eps",
    ),
    ("rosenbrock n=1", lambda: P.rosenbrock(1), jol.InputValueError, "n"),
    ("test function at a wrong shape", lambda: f2(jnp.ones(3)), jol.InputValueError, "shape"),
    (
        "ill-conditioned quadratic below 1",
        lambda: P.ill_conditioned_quadratic(2, 0.5),
        jol.InputValueError,
        "condition_number",
    ),
]


def test_the_catalogue_is_large():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("name", "call", "error", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_it(name, call, error, names):
    with pytest.raises(error, match=names) as info:
        call()
    assert isinstance(info.value, jol.InputError)
    assert len(str(info.value)) > 10


def test_an_unknown_keyword_is_pythons_own_type_error():
    """A misspelt keyword is refused by Python's call machinery, before any check of
    ours runs: a plain TypeError (not an InputError) that names it."""
    with pytest.raises(TypeError, match="momentom") as info:
        jol.sgd(0.1, momentom=0.9)
    assert not isinstance(info.value, jol.InputError)
