"""jol.sweep: member-by-member agreement with minimize, fit and hand-written optax,
one compile, chunk- and device-independent bits, divergence, persistence, resume and
bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import enable_x64

import jaxopt_lab as jol
from jaxopt_lab import problems

sweep_module = sys.modules["jaxopt_lab.sweep"]  # `jol.sweep` is the function
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROSEN = problems.rosenbrock(2)
LRS = np.logspace(-3, 0, 8)
STEPS = 300


@pytest.fixture(scope="module")
def logreg():
    return problems.logistic_regression()


@pytest.fixture(scope="module")
def rosen_sweep():
    return jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, STEPS)


def assert_same_members(a: jol.SweepResult, b: jol.SweepResult, index=slice(None)):
    for x, y in zip(
        jax.tree.leaves((a.losses, a.grad_norms, a.diverged, a.diverged_at, a.params)),
        jax.tree.leaves((b.losses, b.grad_norms, b.diverged, b.diverged_at, b.params)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x)[index], np.asarray(y)[index])


# ---------------------------------------------------------------- agreement


def test_each_member_equals_minimize(rosen_sweep):
    res = rosen_sweep
    assert res.losses.shape == (8, STEPS) and res.params.shape == (8, 2)
    assert res.learning_rates.shape == (8,) and res.final_losses.shape == (8,)
    for k in (0, 3, 7):
        alone = jol.minimize(ROSEN.fn, ROSEN.x0, jol.adam(float(res.learning_rates[k])), STEPS)
        np.testing.assert_allclose(res.losses[k], alone.losses, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(res.grad_norms[k], alone.grad_norms, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(res.params[k], alone.params, rtol=1e-6, atol=1e-7)
    assert not res.diverged.any() and (res.diverged_at == -1).all()


def _optax_vmap_scan(loss, p0, lrs, steps):
    def run(lr):
        opt = optax.adam(lr)

        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (p, _), values = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
        return p, values

    return jax.jit(jax.vmap(run))(jnp.asarray(lrs, jnp.float32))


@pytest.mark.parametrize("factory", [jol.adam, optax.adam], ids=["jol.adam", "optax.adam"])
def test_members_equal_a_hand_written_optax_vmap(factory, logreg):
    loss = lambda p: logreg.loss(p, logreg.train)  # noqa: E731
    p0 = logreg.init_params(jax.random.PRNGKey(1))
    lrs = np.logspace(-3, -0.5, 6)
    # The same lockstep width as the hand-written vmap: on a GPU, matmuls batched 8 wide
    # and 6 wide round differently (seen: 1 element in 384 off by 1.7e-6 on an H100).
    res = jol.sweep(factory, loss, p0, lrs, 100, vmap_width=lrs.size)
    params, values = _optax_vmap_scan(loss, p0, lrs, 100)
    np.testing.assert_allclose(res.losses, values, rtol=1e-6, atol=1e-6)
    for got, want in zip(jax.tree.leaves(res.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_hyperparameter_grid_and_zip():
    lrs, b1s = [0.01, 0.1], [0.5, 0.8, 0.95]
    grid = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, lrs, 50, hyperparams={"b1": b1s})
    assert grid.shape == (2, 3) and grid.losses.shape == (2, 3, 50)
    assert list(grid.axes) == ["learning_rate", "b1"]
    # b1 is swept as float32 data, so 1 - b1 is rounded in float32: build it the same way.
    alone = jol.minimize(ROSEN.fn, ROSEN.x0, jol.adam(0.1, b1=jnp.float32(0.95)), 50)
    np.testing.assert_allclose(grid.losses[1, 2], alone.losses, rtol=1e-6)
    assert grid.hyperparams["b1"][1, 2] == 0.95 and grid.hyperparams["learning_rate"][1, 2] == 0.1

    zipped = jol.sweep(
        jol.adam, ROSEN.fn, ROSEN.x0, lrs, 50, hyperparams={"b1": [0.5, 0.95]}, combine="zip"
    )
    assert zipped.shape == (2,)
    np.testing.assert_array_equal(zipped.losses[1], grid.losses[1, 2])
    np.testing.assert_array_equal(zipped.losses[0], grid.losses[0, 0])


def test_seeds_draw_params_and_equal_minimize():
    init_fn = lambda key: ROSEN.x0 + 0.5 * jax.random.normal(key, (2,))  # noqa: E731
    res = jol.sweep(jol.adam, ROSEN.fn, None, [0.01, 0.1], 40, seeds=[3, 5], init_fn=init_fn, key=7)
    assert res.shape == (2, 2) and list(res.axes) == ["learning_rate", "seed"]
    seed_key = jax.random.fold_in(jax.random.PRNGKey(7), 5)
    init_key, _ = jax.random.split(seed_key)
    alone = jol.minimize(ROSEN.fn, init_fn(init_key), jol.adam(0.1), 40)
    np.testing.assert_allclose(res.losses[1, 1], alone.losses, rtol=1e-6)
    assert not np.array_equal(res.losses[1, 0], res.losses[1, 1])  # seeds differ
    assert res.hyperparams["seed"][0, 1] == 5


def test_minibatch_members_equal_fit_with_shared_shuffles(logreg):
    lrs = [0.01, 0.1, 0.5]
    res = jol.sweep(jol.sgd, logreg.loss, None, lrs, data=logreg.train, batch_size=32,
                    epochs=3, seeds=2, init_fn=logreg.init_params, key=0)  # fmt: skip
    n = logreg.train["x"].shape[0]
    assert res.losses.shape == (3, 2, 3 * (n // 32))
    seed_key = jax.random.fold_in(jax.random.PRNGKey(0), 1)
    init_key, data_key = jax.random.split(seed_key)
    for k, lr in enumerate(lrs):  # same batches for every member of a seed: each equals fit
        alone = jol.fit(logreg.loss, logreg.init_params(init_key), jol.sgd(lr), logreg.train,
                        batch_size=32, epochs=3, key=data_key)  # fmt: skip
        np.testing.assert_allclose(res.losses[k, 1], alone.losses, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- compiles and chunks


class _CompileCounter:
    def __init__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._on)
        self.active = False

    def _on(self, event, duration, **_):
        if self.active and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __enter__(self):
        self.count, self.active = 0, True
        return self

    def __exit__(self, *exc):
        self.active = False


COMPILES = _CompileCounter()


def test_one_compile_for_any_k_and_none_on_repeat():
    fn = lambda p: ROSEN.fn(p) * 1.0  # noqa: E731  (a fresh function: nothing cached)
    before = sweep_module._run_chunk._cache_size()
    small = jol.sweep(jol.adam, fn, ROSEN.x0, np.logspace(-3, 0, 4), 60, chunk_size=4, vmap_width=4)
    assert sweep_module._run_chunk._cache_size() == before + 1
    big = jol.sweep(jol.adam, fn, ROSEN.x0, np.logspace(-3, 0, 64), 60, chunk_size=4, vmap_width=4)
    assert sweep_module._run_chunk._cache_size() == before + 1  # 16 chunks, same program
    assert big.config["chunks"] == 16
    with COMPILES:
        again = jol.sweep(
            jol.adam, fn, ROSEN.x0, np.logspace(-3, 0, 64), 60, chunk_size=4, vmap_width=4
        )
    assert COMPILES.count == 0
    assert_same_members(big, again)
    np.testing.assert_array_equal(small.losses[0], big.losses[0])


@pytest.mark.parametrize("problem", ["rosenbrock", "logistic"])
def test_bits_do_not_depend_on_chunk_size(problem, logreg):
    if problem == "rosenbrock":
        args = (ROSEN.fn, ROSEN.x0)
    else:
        args = (lambda p: logreg.loss(p, logreg.train), logreg.init_params(jax.random.PRNGKey(0)))
    lrs = np.logspace(-3, 0, 12)
    # Groups of 4: chunk sizes 1, 7 and 12 become 4, 8 and 12 (3, 2 and 1 chunks).
    results = [jol.sweep(jol.adam, *args, lrs, 80, chunk_size=c, vmap_width=4) for c in (1, 7, 12)]
    assert [r.config["chunks"] for r in results] == [3, 2, 1]
    for r in results[1:]:
        assert_same_members(results[0], r)
    auto = jol.sweep(jol.adam, *args, lrs, 80)  # the default width: the same numbers too
    np.testing.assert_allclose(auto.losses, results[0].losses, rtol=1e-5)


def test_heavy_problem_runs_members_one_at_a_time_and_small_ones_wide():
    assert sweep_module.auto_vmap_width(18.0, "cpu") == 64  # a 2-D test function
    assert sweep_module.auto_vmap_width(5.5e7, "cpu") == 1  # digits MLP 64-128-10
    assert sweep_module.auto_vmap_width(5.5e7, "gpu") == 128
    assert sweep_module.auto_vmap_width(None, "cpu") == 8
    # never wider than the members (rounded up to a power of two): no padded work
    assert sweep_module.auto_vmap_width(5.5e7, "gpu", members=1) == 1
    assert sweep_module.auto_vmap_width(5.5e7, "gpu", members=64) == 64
    assert sweep_module.auto_vmap_width(18.0, "cpu", members=5) == 8
    assert sweep_module.auto_vmap_width(None, "gpu", members=64) == 64


def test_small_sweep_computes_no_padding_members():
    res = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, np.array([1e-2, 3e-2, 1e-1]), 20)
    assert res.config["vmap_width"] == 4 and res.config["chunk_size"] == 4


# ---------------------------------------------------------------- divergence


def test_diverging_member_is_frozen_and_changes_no_other_member(logreg):
    def loss(p):  # an L2 term, so that a huge step overflows the loss to inf
        return logreg.loss(p, logreg.train) + 1e-3 * sum(jnp.sum(x**2) for x in jax.tree.leaves(p))

    p0 = logreg.init_params(jax.random.PRNGKey(0))
    tame = np.array([1e-3, 1e-2, 1e-1])
    with_wild = jol.sweep(jol.sgd, loss, p0, np.append(tame, 1e38), 50)
    without = jol.sweep(jol.sgd, loss, p0, tame, 50)
    # The clean sweep ran the fast path, the other re-ran its chunk with step-by-step
    # freezing: the tame members' bits are the same either way.
    assert (
        without.config["chunks_rerun_checked"] == 0
        and with_wild.config["chunks_rerun_checked"] == 1
    )
    assert_same_members(with_wild, without, index=slice(0, 3))
    assert with_wild.diverged.tolist() == [False, False, False, True]
    t = int(with_wild.diverged_at[3])
    assert 0 <= t < 50
    assert (
        np.isnan(with_wild.losses[3, t + 1 :]).all() and np.isfinite(with_wild.losses[3, :t]).all()
    )
    assert all(np.isfinite(x[3]).all() for x in jax.tree.leaves(with_wild.params))
    assert np.isnan(with_wild.final_losses[3])


def test_nan_at_a_given_step_freezes_at_last_finite_params():
    # The loss turns NaN once x passes 2.0; sgd on -x walks there in steps of lr.
    def loss(x):
        return jnp.where(x[0] > 2.0, jnp.nan, -x[0])

    res = jol.sweep(jol.sgd, loss, jnp.zeros(1), [0.1, 0.25], 20)
    assert res.diverged.tolist() == [False, True]
    assert int(res.diverged_at[1]) == 9  # x = 2.25 at step 9
    np.testing.assert_allclose(res.params[1], [2.25])
    np.testing.assert_allclose(res.params[0], [2.0], rtol=1e-6)


def test_divergence_threshold():
    res = jol.sweep(
        jol.sgd, lambda x: jnp.sum(x**2), jnp.ones(2), [0.1, 1.5], 30, divergence_threshold=100.0
    )
    assert res.diverged.tolist() == [False, True]
    assert (res.losses[1, : res.diverged_at[1]] <= 100).all() and res.losses[
        1, res.diverged_at[1]
    ] > 100


def test_best_learning_rate_skips_diverged_and_warns_at_the_edge():
    res = jol.sweep(jol.sgd, lambda x: jnp.sum(x**2), jnp.ones(2), [1e-3, 0.1, 0.5, 1.5], 40,
                    divergence_threshold=1e3)  # fmt: skip
    assert res.diverged.tolist() == [False, False, False, True]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert res.best_learning_rate == 0.5  # not the edge: lr 1.5 diverged
    assert res.ranking() == [(2,), (1,), (0,)]  # by final loss; the diverged member left out
    assert res.best_index == res.ranking()[0]
    edge = jol.sweep(jol.sgd, lambda x: jnp.sum(x**2), jnp.ones(2), [1e-3, 1e-2, 0.1], 40)
    with pytest.warns(jol.GridEdgeWarning, match="largest"):
        assert edge.best_learning_rate == 0.1


def test_summary_table(rosen_sweep):
    lines = rosen_sweep.summary().splitlines()
    assert lines[0].split() == [
        "learning_rate",
        "final",
        "loss",
        "best",
        "loss",
        "diverged",
        "at",
        "step",
    ]
    assert len(lines) == 1 + 8
    assert f"{rosen_sweep.final_losses[0]:.6g}" in lines[1] and lines[1].split()[-2:] == ["no", "-"]


# ---------------------------------------------------------------- persistence and resume


def test_save_load_roundtrip_and_truncation(rosen_sweep, tmp_path):
    path = tmp_path / "sweep.npz"
    rosen_sweep.save(path)
    back = jol.SweepResult.load(path, params_like=ROSEN.x0)
    assert_same_members(rosen_sweep, back)
    np.testing.assert_array_equal(back.learning_rates, rosen_sweep.learning_rates)
    assert back.config == json.loads(json.dumps(rosen_sweep.config))
    assert list(os.listdir(tmp_path)) == ["sweep.npz"]  # no temporary file left behind
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        jol.SweepResult.load(path)


def test_checkpoint_from_another_configuration_is_refused(tmp_path):
    jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, [0.01, 0.1], 20, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint_dir.*different configuration.*steps"):
        jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, [0.01, 0.1], 21, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="differs in: learning_rates"):
        jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, [0.01, 0.2], 20, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="params"):
        jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0 + 1, [0.01, 0.1], 20, checkpoint_dir=tmp_path)
    again = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, [0.01, 0.1], 20, checkpoint_dir=tmp_path)
    assert again.config["chunks_resumed"] == again.config["chunks"] == 1


# SIGKILL at random points and resuming: tests/test_reliability.py


# ---------------------------------------------------------------- devices and progress

_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np, jaxopt_lab as jol
    from jaxopt_lab import problems
    from jaxopt_lab.sweep import kernel as sw
    shards = []
    real = sw.run_chunk
    def spy(*args, **kw):
        out = real(*args, **kw)
        shards.append(sorted((s.device.id, s.data.shape[0]) for s in out[2].addressable_shards))
        return out
    sw.run_chunk = spy
    prob = problems.logistic_regression()
    kw = dict(data=prob.train, batch_size=64, epochs=2, init_fn=prob.init_params, seeds=2)
    lrs = np.logspace(-2, 1, 8)
    eight = jol.sweep(jol.adam, prob.loss, None, lrs, vmap_width=1, **kw)
    one = jol.sweep(jol.adam, prob.loss, None, lrs, vmap_width=1, devices=jax.devices()[:1], **kw)
    same = all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves((eight.losses, eight.params, eight.diverged_at)),
        jax.tree.leaves((one.losses, one.params, one.diverged_at))))
    print(json.dumps({"devices": len(jax.devices()), "same": same, "shards": shards[0],
                      "config": [eight.config["devices"], eight.config["chunk_size"]]}))
    """
)


def test_eight_simulated_devices_equal_one_and_split_members_evenly():
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }  # the simulated devices are CPUs, also where a GPU is present
    out = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8 and report["same"] is True
    assert report["config"] == [8, 16]  # K * seeds = 16 members, one chunk
    assert report["shards"] == [[d, 2] for d in range(8)]  # each device holds 16/8 members


def test_progress_bar_writes_to_stderr_and_changes_nothing(capsys, rosen_sweep):
    shown = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, STEPS, progress=True)
    assert "sweep" in capsys.readouterr().err
    assert_same_members(shown, rosen_sweep)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"learning_rates": [[0.1, 0.2]]}, ValueError, "learning_rates.*1-D"),
        ({"learning_rates": []}, ValueError, "learning_rates.*empty"),
        ({"learning_rates": [0.1, 0.0]}, ValueError, "learning_rates.*> 0"),
        ({"learning_rates": [0.1, -1.0]}, ValueError, "learning_rates.*> 0"),
        ({"learning_rates": [np.nan]}, ValueError, "learning_rates.*finite"),
        ({"learning_rates": "0.1"}, TypeError, "learning_rates"),
        ({"hyperparams": {"beta_one": [0.9]}}, ValueError, "beta_one.*does not accept"),
        ({"hyperparams": {"b1": [[0.9]]}}, ValueError, r"hyperparams\['b1'\].*1-D"),
        (
            {"hyperparams": {"b1": [0.9]}, "combine": "zip"},
            ValueError,
            "one value per learning rate",
        ),
        ({"hyperparams": {"b1": [0.9]}, "combine": "outer"}, ValueError, "combine"),
        ({"chunk_size": 0}, ValueError, "chunk_size.*>= 1"),
        ({"chunk_size": 2.5}, TypeError, "chunk_size"),
        ({"vmap_width": 0}, ValueError, "vmap_width"),
        ({"steps": 0}, ValueError, "steps.*>= 1"),
        ({"steps": None}, ValueError, "steps"),
        ({"seeds": [1, 1]}, ValueError, "seeds.*repeat"),
        ({"epochs": 2}, ValueError, "need `data`"),
        ({"make_optimizer": "adam"}, TypeError, "make_optimizer"),
        ({"make_optimizer": lambda lr: lr}, TypeError, "init"),
        ({"loss_fn": lambda p: p}, ValueError, "loss_fn.*scalar"),
        ({"params": jnp.array([1, 2])}, TypeError, "float"),
        ({"divergence_threshold": float("nan")}, ValueError, "divergence_threshold"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    call = {"make_optimizer": jol.adam, "loss_fn": ROSEN.fn, "params": ROSEN.x0,
            "learning_rates": [0.01, 0.1], "steps": 10, **kwargs}  # fmt: skip
    with pytest.raises(error, match=match):
        jol.sweep(**call)


def test_bad_minibatch_input(logreg):
    with pytest.raises(ValueError, match="batch_size.*<="):
        jol.sweep(jol.sgd, logreg.loss, logreg.init_params(jax.random.PRNGKey(0)), [0.1],
                  data=logreg.train, batch_size=10**6, epochs=1)  # fmt: skip
    with pytest.raises(ValueError, match="not `steps`"):
        jol.sweep(jol.sgd, logreg.loss, logreg.init_params(jax.random.PRNGKey(0)), [0.1], 5,
                  data=logreg.train, batch_size=8, epochs=1)  # fmt: skip


# ---------------------------------------------------------------- warm starts and chunks


def _halves_equal_whole(whole, first, rest):
    np.testing.assert_array_equal(whole.losses, np.concatenate([first.losses, rest.losses], -1))
    np.testing.assert_array_equal(
        whole.grad_norms, np.concatenate([first.grad_norms, rest.grad_norms], -1)
    )
    for x, y in zip(
        jax.tree.leaves((whole.params, whole.state, whole.diverged, whole.diverged_at)),
        jax.tree.leaves((rest.params, rest.state, rest.diverged, rest.diverged_at)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_sweep_continues_from_its_result_bit_for_bit(tmp_path):
    # The loss turns NaN once x passes 2: lr 0.25 gets there in the first half, 0.075
    # in the second, 0.01 never.
    def loss(x):
        return jnp.where(x[0] > 2.0, jnp.nan, -x[0]) + 0.01 * jnp.sum(x**2)

    lrs, x0 = np.array([0.01, 0.075, 0.25]), jnp.array([0.0, 1.0])
    whole = jol.sweep(jol.sgd, loss, x0, lrs, 40, hyperparams={"momentum": [0.0, 0.5]})
    first = jol.sweep(jol.sgd, loss, x0, lrs, 20, hyperparams={"momentum": [0.0, 0.5]})
    assert first.diverged.any() and (whole.diverged.sum() > first.diverged.sum())
    rest = jol.sweep(jol.sgd, loss, None, lrs, 20, hyperparams={"momentum": [0.0, 0.5]},
                     state=first)  # fmt: skip
    _halves_equal_whole(whole, first, rest)
    first.save(tmp_path / "first.npz")  # a saved result continues as well
    loaded = jol.SweepResult.load(tmp_path / "first.npz", params_like=x0)
    again = jol.sweep(jol.sgd, loss, None, lrs, 20, hyperparams={"momentum": [0.0, 0.5]},
                      state=loaded)  # fmt: skip
    _halves_equal_whole(whole, first, again)


def test_minibatch_sweep_continues_its_epochs(logreg):
    kw = dict(data=logreg.train, batch_size=64, seeds=2, key=3)
    lrs = [0.05, 0.5]
    whole = jol.sweep(jol.adam, logreg.loss, None, lrs, epochs=4, init_fn=logreg.init_params, **kw)
    first = jol.sweep(jol.adam, logreg.loss, None, lrs, epochs=2, init_fn=logreg.init_params, **kw)
    rest = jol.sweep(jol.adam, logreg.loss, None, lrs, epochs=2, state=first, **kw)
    assert rest.config["start_epoch"] == 2
    _halves_equal_whole(whole, first, rest)


def test_continuing_needs_the_same_grid():
    first = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, [0.1, 0.2], 5)
    with pytest.raises(jol.InputError, match="grid"):
        jol.sweep(jol.adam, ROSEN.fn, None, [0.1, 0.3], 5, state=first)
    with pytest.raises(jol.InputError, match="state"):
        jol.sweep(jol.adam, ROSEN.fn, None, [0.1, 0.2], 5, state={"not": "a result"})


def test_chunks_are_balanced_and_padding_stays_below_a_group():
    lrs = np.logspace(-3, -1, 81)
    res = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, lrs, 30, chunk_size=64, vmap_width=1)
    # 81 members in chunks of at most 64: two chunks of 41 (one padding member), not 2 x 64
    assert res.config["chunks"] == 2 and res.config["chunk_size"] == 41
    one = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, lrs, 30, chunk_size=81, vmap_width=1)
    assert_same_members(res, one)
    grouped = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, lrs, 30, chunk_size=64, vmap_width=8)
    assert grouped.config["chunk_size"] == 48  # 2 chunks, each a multiple of the width


def test_repeated_call_reuses_its_plan():
    from jaxopt_lab.sweep import plan as planning

    planning._plans.clear()  # the cache holds at most 65 plans: count from empty
    args = (jol.adam, ROSEN.fn, ROSEN.x0, np.logspace(-3, 0, 6), 10)
    jol.sweep(*args)
    n = len(planning._plans)
    jol.sweep(*args)
    jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0 + 1.0, np.logspace(-3, 0, 6), 10)  # new values only
    assert len(planning._plans) == n
    jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, np.logspace(-3, 0, 7), 10)  # a new grid: a new plan
    assert len(planning._plans) == n + 1


def test_plan_cache_tells_apart_what_changes_a_sweep():
    f, p0, lrs = (lambda p: jnp.sum((p - 1.0) ** 2)), jnp.zeros(2), [0.1, 0.2]
    two = jol.sweep(jol.sgd, f, p0, lrs, 5, seeds=2)
    one = jol.sweep(jol.sgd, f, p0, lrs, 5, seeds=[2])  # a list of one seed, not a count
    assert two.axes["seed"].tolist() == [0, 1] and one.axes["seed"].tolist() == [2]
    with enable_x64():
        wide = jol.sweep(jol.sgd, f, jnp.zeros(2, jnp.float64), lrs, 5)
        assert wide.config["dtype"] == "float64"
    assert jol.sweep(jol.sgd, f, p0, lrs, 5).config["dtype"] == "float32"


def test_continuing_refuses_other_starts_and_checkpoints_of_another_start(tmp_path):
    f, lrs = (lambda p: jnp.sum((p - 1.0) ** 2)), [0.1, 0.2]
    a = jol.sweep(jol.sgd, f, jnp.zeros(2), lrs, 5)
    b = jol.sweep(jol.sgd, f, jnp.full(2, 5.0), lrs, 5)
    # with state, the members start from the previous result: params is not used
    c = jol.sweep(jol.sgd, f, jnp.full(2, 9.0), lrs, 5, state=a)
    np.testing.assert_array_equal(c.losses, jol.sweep(jol.sgd, f, None, lrs, 5, state=a).losses)
    jol.sweep(jol.sgd, f, None, lrs, 5, state=a, checkpoint_dir=tmp_path)
    with pytest.raises(jol.InputError, match="checkpoint_dir"):
        jol.sweep(jol.sgd, f, None, lrs, 5, state=b, checkpoint_dir=tmp_path)
    a.save(tmp_path / "a.npz")
    with pytest.raises(jol.InputError, match="params_like"):
        jol.sweep(jol.sgd, f, None, lrs, 5, state=jol.SweepResult.load(tmp_path / "a.npz"))


def test_a_minibatch_sweep_continues_with_its_own_key(logreg):
    kw = dict(data=logreg.train, batch_size=128, epochs=1)
    first = jol.sweep(jol.sgd, logreg.loss, None, [0.1], init_fn=logreg.init_params, key=1, **kw)
    with pytest.raises(jol.InputError, match="key"):
        jol.sweep(jol.sgd, logreg.loss, None, [0.1], state=first, key=2, **kw)


# ---------------------------------------------------------------- evaluation in the program


def test_evaluations_equal_evaluating_each_member_afterwards(logreg, tmp_path):
    p0 = logreg.init_params(jax.random.PRNGKey(0))
    lrs = np.logspace(-3, 0, 6)

    def train(p):
        return logreg.loss(p, logreg.train)

    kw = dict(eval_fn=logreg.loss, eval_data=logreg.test, eval_every=20)
    res = jol.sweep(jol.adam, train, p0, lrs, 50, **kw)
    assert res.evals.shape == (6, 3) and res.eval_steps.tolist() == [20, 40, 50]
    for k in (0, 4):
        for j, s in enumerate(res.eval_steps):
            alone = jol.minimize(train, p0, jol.adam(float(lrs[k])), int(s))
            want = float(logreg.loss(alone.params, logreg.test))
            np.testing.assert_allclose(res.evals[k, j], want, rtol=1e-5)
    # the ranking follows each member's best (lowest) evaluation
    assert res.best_index == (int(np.argmin(res.evals.min(axis=-1))),)
    res.save(tmp_path / "r.npz")
    back = jol.SweepResult.load(tmp_path / "r.npz", params_like=p0)
    np.testing.assert_array_equal(back.evals, res.evals)
    # chunks with evaluations checkpoint and resume to the same numbers
    first = jol.sweep(
        jol.adam, train, p0, lrs, 50, chunk_size=2, checkpoint_dir=tmp_path / "c", **kw
    )
    again = jol.sweep(
        jol.adam, train, p0, lrs, 50, chunk_size=2, checkpoint_dir=tmp_path / "c", **kw
    )
    assert again.config["chunks_resumed"] == first.config["chunks"]
    np.testing.assert_array_equal(again.evals, first.evals)


def test_ranking_by_the_highest_evaluation_and_seeds_averaged(logreg):
    def accuracy(p, data):
        return logreg.metric(p, data)

    res = jol.sweep(jol.sgd, logreg.loss, None, [1e-3, 0.1, 1.0], data=logreg.train,
                    batch_size=64, epochs=2, seeds=2, init_fn=logreg.init_params,
                    eval_fn=accuracy, eval_data=logreg.test, eval_mode="max")  # fmt: skip
    best = res.evals.max(axis=-1).mean(axis=-1)  # best over the history, mean over seeds
    assert res.best_index == (int(np.argmax(best)),)
    assert res.config["eval_mode"] == "max"


def test_minibatch_members_rank_by_their_last_epoch(logreg):
    res = jol.sweep(jol.sgd, logreg.loss, None, [1e-3, 0.05, 0.3], data=logreg.train,
                    batch_size=32, epochs=2, init_fn=logreg.init_params)  # fmt: skip
    per_epoch = res.losses.shape[-1] // 2
    mean_last = res.losses[:, -per_epoch:].mean(axis=-1)
    assert res.best_index == (int(np.argmin(mean_last)),)


def test_a_diverged_member_has_no_evaluations_after_it_froze():
    def loss(x):
        return jnp.where(x[0] > 2.0, jnp.nan, -x[0])

    res = jol.sweep(jol.sgd, loss, jnp.zeros(1), [0.1, 0.25], 20,
                    eval_fn=lambda p: p[0], eval_every=4)  # fmt: skip
    assert int(res.diverged_at[1]) == 9
    assert np.isfinite(res.evals[1, res.eval_steps <= 9]).all()
    assert np.isnan(res.evals[1, res.eval_steps > 9]).all()
    assert np.isfinite(res.evals[0]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eval_fn": "accuracy"}, "eval_fn"),
        ({"eval_fn": lambda p: p[0], "eval_every": 0}, "eval_every"),
        ({"eval_fn": lambda p: p[0], "eval_mode": "best"}, "eval_mode"),
        ({"eval_every": 5}, "eval_every"),
        ({"eval_fn": lambda p: p}, "eval_fn"),  # not a scalar
    ],
)
def test_bad_evaluation_input_names_the_argument(kwargs, match):
    with pytest.raises(jol.InputError, match=match):
        jol.sweep(jol.sgd, lambda p: jnp.sum(p**2), jnp.ones(2), [0.1], 10, **kwargs)


def test_refine_zooms_in_or_moves_past_the_edge_with_the_same_program(tmp_path):
    def f(p):
        return jnp.sum((p - 1.0) ** 2)

    inside = jol.sweep(jol.sgd, f, jnp.zeros(2), np.logspace(-3, 0, 7), 20)
    i = list(inside.learning_rates).index(inside.best["learning_rate"])
    assert 0 < i < 6
    np.testing.assert_allclose(
        inside.refined_learning_rates()[[0, -1]], inside.learning_rates[[i - 1, i + 1]]
    )
    edge = jol.sweep(jol.sgd, f, jnp.zeros(2), np.logspace(-4, -2, 5), 20)
    assert edge.best["learning_rate"] == edge.learning_rates.max()  # the top edge
    before = sweep_module._run_chunk._cache_size()
    nxt = edge.refine()
    assert sweep_module._run_chunk._cache_size() == before  # same shapes: no new program
    np.testing.assert_allclose(nxt.learning_rates, np.logspace(-2.5, -0.5, 5))
    assert nxt.best["learning_rate"] > edge.best["learning_rate"]
    edge.save(tmp_path / "e.npz")
    with pytest.raises(jol.InputError, match="refine"):
        jol.SweepResult.load(tmp_path / "e.npz").refine()
