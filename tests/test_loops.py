"""minimize and fit: the seed systems end to end, agreement with hand-written optax
loops, the tolerance path, recompilation and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import loops


def sine_bowl(x):
    return jnp.sum(x**2 + 5 * jnp.sin(x))


def quartic(x):
    return jnp.sum(x**4 - 4 * x**3 - 2 * x**2 + 12 * x)


def rosenbrock(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


# ---------------------------------------------------------------- the seed systems


def test_gradient_descent_on_sine_bowl_reaches_global_minimum():
    res = jol.minimize(sine_bowl, jnp.array([5.0]), jol.sgd(0.1), 100)
    assert float(res.params[0]) == pytest.approx(-1.1105, abs=1e-3)
    assert float(res.grad_norms[-1]) < 1e-4


def test_learning_rate_effect_slow_good_oscillating():
    x0, steps = jnp.array([5.0]), 60
    slow = jol.minimize(sine_bowl, x0, jol.sgd(0.01), steps)
    good = jol.minimize(sine_bowl, x0, jol.sgd(0.1), steps)
    wild = jol.minimize(sine_bowl, x0, jol.sgd(0.5), steps)
    # 0.01: monotone but still far from any minimum after 60 steps.
    assert np.all(np.diff(np.asarray(slow.losses)) < 0)
    assert float(slow.params[0]) > 2.5
    # 0.1: at the global minimum.
    assert float(good.params[0]) == pytest.approx(-1.1105, abs=1e-3)
    # 0.5: overshoots, so the loss goes up and down and never settles.
    rises = np.sum(np.diff(np.asarray(wild.losses)) > 0)
    assert rises >= 10
    assert float(wild.grad_norms[-1]) > 1.0


@pytest.mark.parametrize("x0, expected", [(-3.0, -1.0), (0.5, -1.0), (2.0, 3.0), (5.0, 3.0)])
def test_quartic_start_decides_the_minimum(x0, expected):
    res = jol.minimize(quartic, jnp.array([x0]), jol.sgd(0.01), 500)
    assert float(res.params[0]) == pytest.approx(expected, abs=1e-4)


@pytest.fixture(scope="module")
def regression_data():
    kx, ke = jax.random.split(jax.random.PRNGKey(42))
    x = 2 * jax.random.uniform(kx, (100,))
    y = 2.0 + 3.0 * x + jax.random.normal(ke, (100,))
    design = np.stack([np.ones(100), np.asarray(x)], axis=1)
    ols, *_ = np.linalg.lstsq(design, np.asarray(y), rcond=None)
    return {"x": x, "y": y}, ols


def mse(p, batch):
    return jnp.mean((p["b"] + p["w"] * batch["x"] - batch["y"]) ** 2)


@pytest.mark.parametrize(
    "batch_size, lr, epochs, tol",
    [(100, 0.1, 2000, 1e-3), (1, 0.002, 100, 0.15), (10, 0.02, 500, 0.05)],
    ids=["batch-gd", "per-sample-sgd", "mini-batch"],
)
def test_linear_regression_recovers_intercept_and_slope(
    regression_data, batch_size, lr, epochs, tol
):
    data, ols = regression_data
    # The least-squares fit is within the noise of the truth (std. errors ~0.2 / 0.17).
    assert abs(ols[0] - 2.0) < 0.5 and abs(ols[1] - 3.0) < 0.5
    zeros = {"w": jnp.zeros(()), "b": jnp.zeros(())}
    res = jol.fit(mse, zeros, jol.sgd(lr), data, batch_size=batch_size, epochs=epochs,
                  key=jax.random.PRNGKey(0))  # fmt: skip
    assert res.losses.shape == (epochs * (100 // batch_size),)
    assert float(res.params["b"]) == pytest.approx(ols[0], abs=tol)
    assert float(res.params["w"]) == pytest.approx(ols[1], abs=tol)


def test_xor_with_sigmoid_mlp_by_backprop():
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    params = {
        "w1": jax.random.normal(k1, (2, 4)), "b1": jnp.zeros(4),
        "w2": jax.random.normal(k2, (4,)), "b2": jnp.zeros(()),
    }  # fmt: skip

    def predict(p, x):
        hidden = jax.nn.sigmoid(x @ p["w1"] + p["b1"])
        return jax.nn.sigmoid(hidden @ p["w2"] + p["b2"])

    res = jol.minimize(lambda p: jnp.mean((predict(p, x) - y) ** 2), params, jol.adam(0.1), 1000)
    np.testing.assert_array_equal(np.round(np.asarray(predict(res.params, x))), [0, 1, 1, 0])


def test_clipping_by_global_norm_bounds_every_step():
    lr, max_norm = 1e-3, 1.0
    opt = jol.chain(jol.clip_by_global_norm(max_norm), jol.sgd(lr))
    start = jnp.array([-1.5, 2.0])  # Rosenbrock's gradient here has norm ~ 200
    res = jol.minimize(rosenbrock, start, opt, 50)
    assert float(res.grad_norms[0]) > 100
    # Rerun step by step to see each displacement.
    p, state = start, opt.init(start)
    for _ in range(50):
        u, state = opt.update(jax.grad(rosenbrock)(p), state, p)
        assert float(jnp.linalg.norm(u)) <= lr * max_norm * (1 + 1e-6)
        p = jol.apply_updates(p, u)
    np.testing.assert_allclose(p, res.params, rtol=1e-6)


# ---------------------------------------------------------------- same numbers as optax


def optax_scan(loss_fn, params, opt, steps):
    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    (params, _), losses = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, steps))(
        params
    )
    return params, losses


def test_minimize_matches_hand_written_optax_scan():
    start = jnp.array([-1.5, 2.0])
    ref_params, ref_losses = optax_scan(rosenbrock, start, optax.adam(0.01), 300)
    with_optax = jol.minimize(rosenbrock, start, optax.adam(0.01), 300)
    np.testing.assert_array_equal(with_optax.params, ref_params)
    np.testing.assert_array_equal(with_optax.losses, ref_losses)
    ours = jol.minimize(rosenbrock, start, jol.adam(0.01), 300)
    np.testing.assert_allclose(ours.params, ref_params, rtol=1e-6)
    np.testing.assert_allclose(ours.losses, ref_losses, rtol=1e-5)


def test_fit_matches_hand_written_optax_scan(regression_data):
    data, _ = regression_data
    n, bs, epochs, key = 100, 16, 5, jax.random.PRNGKey(3)
    opt = optax.adam(0.05)
    params = {"w": jnp.zeros(()), "b": jnp.zeros(())}

    def epoch(carry, e):
        perm = jax.random.permutation(jax.random.fold_in(key, e), n)[: (n // bs) * bs]

        def step(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(mse)(p, jax.tree.map(lambda x: x[idx], data))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        return jax.lax.scan(step, carry, perm.reshape(n // bs, bs))

    run = jax.jit(lambda p: jax.lax.scan(epoch, (p, opt.init(p)), jnp.arange(epochs)))
    (ref, _), ref_losses = run(params)
    res = jol.fit(mse, params, opt, data, batch_size=bs, epochs=epochs, key=key)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(res.losses, ref_losses.reshape(-1))


def test_fit_shuffles_every_epoch_and_leaves_out_the_remainder():
    n, bs = 10, 3
    batches = [np.asarray(loops.epoch_batches(jax.random.PRNGKey(0), e, n, bs)) for e in range(4)]
    for b in batches:
        assert b.shape == (3, 3) and len(set(b.ravel())) == 9
    assert len({tuple(b.ravel()) for b in batches}) == 4
    full = loops.epoch_batches(jax.random.PRNGKey(0), 0, n, n)
    np.testing.assert_array_equal(full, np.arange(n)[None])


# ---------------------------------------------------------------- options and compilation


def test_tol_stops_and_pads_history():
    res = jol.minimize(sine_bowl, jnp.array([5.0]), jol.sgd(0.1), 1000, tol=1e-4)
    n = int(res.num_steps)
    assert bool(res.converged) and 0 < n < 1000
    assert float(res.grad_norms[n]) <= 1e-4 and float(res.grad_norms[n - 1]) > 1e-4
    assert res.losses.shape == (1000,)
    np.testing.assert_array_equal(res.losses[n:], res.losses[n])
    np.testing.assert_array_equal(res.grad_norms[n:], res.grad_norms[n])
    never = jol.minimize(sine_bowl, jnp.array([5.0]), jol.sgd(0.01), 20, tol=1e-12)
    assert not bool(never.converged) and int(never.num_steps) == 20
    fixed = jol.minimize(sine_bowl, jnp.array([5.0]), jol.sgd(0.01), 20)
    np.testing.assert_array_equal(never.params, fixed.params)


@pytest.mark.parametrize("steps", [20, 33, 34, 127, 128, 129, 400])
def test_history_whatever_the_budget(steps):
    # the histories are written in chunks and padded by one write: every budget, around
    # the chunk boundaries too, gives the prefix of a long run's history, padded after it
    # or cut at the budget (33 stops: the solve converges at 33 updates)
    x0, opt = jnp.array([-1.2, 1.0]), jol.bfgs()
    long = jol.minimize(rosenbrock, x0, opt, 1000, tol=1e-4)
    n = int(long.num_steps)
    res = jol.minimize(rosenbrock, x0, opt, steps, tol=1e-4)
    assert res.losses.shape == res.grad_norms.shape == (steps,)
    assert int(res.num_steps) == min(n, steps)
    for got, want in ((res.losses, long.losses), (res.grad_norms, long.grad_norms)):
        np.testing.assert_array_equal(got, want[:steps])


def test_no_recompile_for_a_new_learning_rate():
    before = loops._minimize._cache_size()
    for lr in (0.011, 0.012, 0.013):
        jol.minimize(rosenbrock, jnp.array([-1.5, 2.0]), jol.adam(lr), 77)
    assert loops._minimize._cache_size() == before + 1


def test_has_aux_returns_last_aux():
    def loss(p):
        return jnp.sum(p**2), {"p0": p[0]}

    res = jol.minimize(loss, jnp.array([1.0, 2.0]), jol.sgd(0.1), 5, has_aux=True)
    before_last = jnp.array([1.0, 2.0]) * 0.8**4
    assert float(res.aux["p0"]) == pytest.approx(float(before_last[0]))
    res = jol.fit(lambda p, b: (jnp.mean((p - b) ** 2), p), jnp.zeros(()), jol.sgd(0.1),
                  jnp.ones(4), batch_size=2, epochs=1, key=0, has_aux=True)  # fmt: skip
    assert res.aux.shape == ()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: jol.minimize(sine_bowl, jnp.zeros(1), jol.sgd(0.1), 0), ValueError, "steps"),
        (lambda: jol.minimize(sine_bowl, jnp.zeros(1), jol.sgd(0.1), 2.5), TypeError, "steps"),
        (lambda: jol.minimize(lambda x: x, jnp.zeros(2), jol.sgd(0.1), 3), ValueError, "loss_fn"),
        (lambda: jol.minimize(sine_bowl, jnp.zeros(1), "adam", 3), TypeError, "optimizer"),
        (lambda: jol.minimize(sine_bowl, jnp.zeros(1), jol.sgd(0.1), 3, tol=-1.0), ValueError, "tol"),
        (lambda: jol.minimize(lambda x: jnp.sum(x), jnp.arange(2), jol.sgd(0.1), 3), TypeError, "params"),
        (lambda: jol.fit(mse, {}, jol.sgd(0.1), {"x": jnp.ones(5), "y": jnp.ones(4)},
                         batch_size=2, epochs=1, key=0), ValueError, "leading size"),
        (lambda: jol.fit(mse, {}, jol.sgd(0.1), {"x": jnp.ones(5)}, batch_size=0, epochs=1, key=0),
         ValueError, "batch_size"),
        (lambda: jol.fit(mse, {}, jol.sgd(0.1), {"x": jnp.ones(5)}, batch_size=6, epochs=1, key=0),
         ValueError, "batch_size"),
        (lambda: jol.fit(mse, {}, jol.sgd(0.1), {"x": jnp.ones(5)}, batch_size=1, epochs=0, key=0),
         ValueError, "epochs"),
        (lambda: jol.fit(mse, {}, jol.sgd(0.1), {"x": jnp.ones(5)}, batch_size=1, epochs=1, key="k"),
         TypeError, "key"),
        (lambda: jol.fit(lambda p, b: b["x"] * p, jnp.zeros(()), jol.sgd(0.1), {"x": jnp.ones(5)},
                         batch_size=2, epochs=1, key=0), ValueError, "loss_fn"),
    ],
    ids=["steps<1", "steps-float", "loss-not-scalar", "optimizer-str", "tol<0", "int-params",
         "leading-sizes", "batch<1", "batch>N", "epochs<1", "bad-key", "fit-loss-not-scalar"],
)  # fmt: skip
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_digits_mlp_trained_with_fit_reaches_95_percent():
    digits = jol.problems.digits_mlp()
    params = digits.init_params(jax.random.PRNGKey(0))
    res = jol.fit(digits.loss, params, jol.adam(3e-3), digits.train, batch_size=64, epochs=15,
                  key=jax.random.PRNGKey(1))  # fmt: skip
    assert float(digits.metric(res.params, digits.test)) >= 0.95
    assert float(res.losses[-20:].mean()) < float(res.losses[:20].mean()) / 10


def test_trajectory_is_the_path_minimize_takes():
    f = jol.problems.rosenbrock().fn
    x0 = jnp.asarray([-1.5, 2.0])
    path = jol.trajectory(f, x0, jol.adam(0.05), 50)
    assert path.shape == (51, 2)
    np.testing.assert_array_equal(path[0], x0)
    for steps in (1, 50):  # every prefix is minimize's run of that length, bit for bit
        np.testing.assert_array_equal(
            path[steps], jol.minimize(f, x0, jol.adam(0.05), steps).params
        )
    tree = jol.trajectory(lambda p: jnp.sum(p["a"] ** 2) + p["b"] ** 2, {"a": jnp.ones(3), "b": jnp.asarray(2.0)},
                          jol.sgd(0.1), 5)  # fmt: skip
    assert tree["a"].shape == (6, 3) and tree["b"].shape == (6,)
    np.testing.assert_allclose(tree["b"], 2.0 * 0.8 ** np.arange(6), rtol=1e-6)


def test_trajectory_of_a_quasi_newton_method_and_under_vmap():
    f = jol.problems.rosenbrock().fn
    x0 = jnp.asarray([-1.2, 1.0])
    path = jol.trajectory(f, x0, jol.bfgs(), 60)
    np.testing.assert_allclose(path[-1], [1.0, 1.0], atol=1e-4)
    many = jax.vmap(lambda lr: jol.trajectory(f, x0, jol.sgd(lr), 10))(jnp.asarray([1e-4, 1e-3]))
    assert many.shape == (2, 11, 2)
    np.testing.assert_allclose(many[1], jol.trajectory(f, x0, jol.sgd(1e-3), 10), rtol=1e-6)


def test_trajectory_refuses_bad_input():
    with pytest.raises(ValueError, match="steps"):
        jol.trajectory(lambda x: jnp.sum(x**2), jnp.ones(2), jol.sgd(0.1), 0)
    with pytest.raises(TypeError):
        jol.trajectory(lambda x: jnp.sum(x**2), jnp.ones(2, jnp.int32), jol.sgd(0.1), 3)


# ---------------------------------------------------------------- status and warm starts


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_status_of_first_order_runs():
    x0 = jnp.array([1.5, -0.5])
    done = jol.minimize(rosenbrock, x0, jol.adam(0.01), 20000, tol=1e-3)
    assert int(done.status) == jol.Status.CONVERGED and bool(done.converged)
    assert "Converged" in done.message
    budget = jol.minimize(rosenbrock, x0, jol.adam(0.01), 10, tol=1e-12)
    assert int(budget.status) == jol.Status.MAX_STEPS and int(budget.num_steps) == 10
    assert int(budget.num_fun_evals) == 10  # the point after the last update is not evaluated
    fixed = jol.minimize(rosenbrock, x0, jol.adam(0.01), 10)
    assert int(fixed.status) == jol.Status.MAX_STEPS and "budget" in fixed.message
    # sgd with a huge step overflows: the run stops on the first non-finite value
    blow = jol.minimize(rosenbrock, x0, jol.sgd(1.0), 500, tol=1e-6)
    assert int(blow.status) == jol.Status.NONFINITE and int(blow.num_steps) < 500
    assert not np.isfinite(np.asarray(blow.losses)[int(blow.num_steps)])
    assert int(jol.minimize(rosenbrock, x0, jol.sgd(1.0), 50).status) == jol.Status.NONFINITE


def test_status_per_member_under_vmap():
    x0 = jnp.array([1.5, -0.5])
    lrs = jnp.array([1e-3, 1e-2, 1.0])
    res = jax.vmap(lambda lr: jol.minimize(rosenbrock, x0, jol.sgd(lr), 300, tol=1e-1))(lrs)
    status = np.asarray(res.status)
    assert status.shape == (3,)
    assert status[2] == jol.Status.NONFINITE
    assert status[0] == jol.Status.MAX_STEPS
    assert list(res.message) == [jol.Status(int(s)).message for s in status]


@pytest.mark.parametrize("tol", [None, 1e-30])
def test_minimize_continues_bit_for_bit(dtype, tol):
    params = {"a": jnp.array([1.5, -0.5], dtype), "b": [jnp.ones((2, 3), dtype)]}

    def loss(p):
        return rosenbrock(p["a"]) + jnp.sum((p["b"][0] - 0.5) ** 4)

    opt = jol.adamw(jol.cosine_decay_schedule(0.05, 200), weight_decay=1e-2)
    whole = jol.minimize(loss, params, opt, 200, tol=tol)
    first = jol.minimize(loss, params, opt, 100, tol=tol)
    rest = jol.minimize(loss, first.params, opt, 100, tol=tol, state=first.state)
    _same((whole.params, whole.state), (rest.params, rest.state))
    np.testing.assert_array_equal(whole.losses, np.concatenate([first.losses, rest.losses]))
    np.testing.assert_array_equal(
        whole.grad_norms, np.concatenate([first.grad_norms, rest.grad_norms])
    )


@pytest.mark.parametrize("make", [jol.lbfgs, jol.bfgs])
def test_minimize_continues_a_quasi_newton_solve_bit_for_bit(make):
    x0 = jnp.array([-1.2, 1.0])
    whole = jol.minimize(rosenbrock, x0, make(), 20)
    first = jol.minimize(rosenbrock, x0, make(), 10)
    rest = jol.minimize(rosenbrock, first.params, make(), 10, state=first.state)
    _same((whole.params, whole.state), (rest.params, rest.state))
    np.testing.assert_array_equal(whole.losses, np.concatenate([first.losses, rest.losses]))
    # the continuation reads the start's evaluation from the state: no evaluation is repeated
    assert int(first.num_fun_evals) + int(rest.num_fun_evals) == int(whole.num_fun_evals)


def _linear_data():
    """45 examples of a noiseless linear model, its zero start and its MSE loss."""
    x = jax.random.normal(jax.random.PRNGKey(0), (45, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.3

    def loss(p, batch):
        bx, by = batch
        return jnp.mean((bx @ p["w"] + p["b"] - by) ** 2)

    return x, y, {"w": jnp.zeros((3,)), "b": jnp.zeros(())}, loss


def test_fit_continues_bit_for_bit():
    x, y, params, loss = _linear_data()

    opt = jol.sgd(jol.exponential_decay(0.05, 10, 0.9), momentum=0.9)
    kw = dict(batch_size=7, key=jax.random.PRNGKey(3))
    whole = jol.fit(loss, params, opt, (x, y), epochs=4, **kw)
    first = jol.fit(loss, params, opt, (x, y), epochs=2, **kw)
    rest = jol.fit(
        loss, first.params, opt, (x, y), epochs=2, state=first.state, start_epoch=2, **kw
    )
    _same((whole.params, whole.state), (rest.params, rest.state))
    np.testing.assert_array_equal(whole.losses, np.concatenate([first.losses, rest.losses]))


def test_warm_start_refuses_a_state_of_another_optimizer():
    x0 = jnp.array([1.0, 2.0])
    other = jol.sgd(0.1).init(x0)
    with pytest.raises(jol.InputError, match="state"):
        jol.minimize(rosenbrock, x0, jol.adam(0.1), 5, state=other)
    with pytest.raises(jol.InputError, match="start_epoch"):
        jol.fit(lambda p, b: jnp.sum(p * b), x0, jol.sgd(0.1), jnp.ones((4, 2)),
                batch_size=2, epochs=1, key=0, start_epoch=-1)  # fmt: skip


def test_status_agrees_with_the_stop_when_the_first_gradient_overflows():
    def loss(p):
        return jnp.sum(p**2) * 1e20

    for x0 in (jnp.ones(1), jnp.ones(2)):
        res = jol.minimize(loss, x0, jol.sgd(1e19), 5, tol=1e-3)
        assert int(res.num_steps) == 0 and int(res.status) == jol.Status.NONFINITE


def test_continuing_a_stopped_solve_stops_at_once():
    x0 = jnp.array([-1.2, 1.0])
    first = jol.minimize(rosenbrock, x0, jol.bfgs(), 500, tol=1e-30)
    assert int(first.status) in (jol.Status.CONVERGED, jol.Status.NO_PROGRESS)
    more = jol.minimize(rosenbrock, first.params, jol.bfgs(), 500, tol=1e-30, state=first.state)
    assert int(more.num_steps) == 0 and int(more.num_fun_evals) == 0
    assert int(more.status) == int(first.status)


def test_fit_evaluates_inside_its_program_without_changing_the_run():
    x, y, params, loss = _linear_data()

    kw = dict(batch_size=7, epochs=3, key=jax.random.PRNGKey(3))  # 6 steps an epoch, 18 in all
    plain = jol.fit(loss, params, jol.sgd(0.05), (x, y), **kw)
    res = jol.fit(loss, params, jol.sgd(0.05), (x, y), eval_fn=loss, eval_data=(x, y),
                  eval_every=5, **kw)  # fmt: skip
    _same(plain.params, res.params)
    np.testing.assert_array_equal(plain.losses, res.losses)
    assert res.eval_steps.tolist() == [5, 10, 15, 18] and res.evals.shape == (4,)
    for value, steps in zip(res.evals, res.eval_steps, strict=True):  # the params after s steps
        order = np.concatenate(
            [np.asarray(loops.epoch_batches(kw["key"], e, 45, 7)) for e in range(3)]
        )
        p = params
        for idx in order[:steps]:
            g = jax.grad(loss)(p, (x[idx], y[idx]))
            p = jax.tree.map(lambda a, b: a - 0.05 * b, p, g)
        np.testing.assert_allclose(value, loss(p, (x, y)), rtol=1e-5)
    with pytest.raises(jol.InputError, match="eval_every"):
        jol.fit(loss, params, jol.sgd(0.05), (x, y), eval_fn=loss, eval_every=0, **kw)


def test_fit_counts_the_line_searches_evaluations():
    """Each mini-batch step evaluates its batch once; a chain ending in a line search
    evaluates more, and num_fun_evals counts those too (it once counted the steps)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (32, 3))
    data = (x, x @ jnp.array([1.0, -2.0, 0.5]))

    def loss(w, batch):
        return jnp.mean((batch[0] @ w - batch[1]) ** 2)

    opt = jol.chain(jol.sgd(1.0), jol.backtracking_linesearch())
    res = jol.fit(loss, jnp.zeros(3), opt, data, batch_size=8, epochs=2, key=0)
    searched = int(res.state[-1].evaluated.num_fun_evals)
    assert searched >= int(res.num_steps) == 8
    assert int(res.num_fun_evals) == int(res.num_grad_evals) == 8 + searched
    plain = jol.fit(loss, jnp.zeros(3), jol.sgd(0.1), data, batch_size=8, epochs=2, key=0)
    assert int(plain.num_fun_evals) == int(plain.num_steps) == 8
