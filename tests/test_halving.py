"""Successive halving inside a sweep (jaxopt_lab.sweep.halving): the rungs, survivors
equal to their unpruned runs bit for bit, the ranking rule at every rung, the compute
that falls, divergence, devices, persistence and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import enable_x64

import jaxopt_lab as jol
from jaxopt_lab import problems
from jaxopt_lab.sweep import halving
from jaxopt_lab.sweep import kernel as sweep_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROSEN = problems.rosenbrock(2)
LRS = np.logspace(-4, -1, 9)


def _equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _rows(tree, mask):
    return jax.tree.map(lambda x: np.asarray(x)[mask], tree)


def _assert_prefixes(pruned: jol.SweepResult, full: jol.SweepResult) -> None:
    """Survivors equal their unpruned runs; a pruned member's history equals the
    unpruned one up to its rung and is NaN after it."""
    surv = pruned.pruned_at < 0
    for a, b in zip(jax.tree.leaves((pruned.losses, pruned.params, pruned.evals, pruned.state)),
                    jax.tree.leaves((full.losses, full.params, full.evals, full.state)), strict=True):  # fmt: skip
        assert a.dtype == b.dtype and a.shape == b.shape
    assert _equal(_rows((pruned.params, pruned.losses, pruned.grad_norms), surv),
                  _rows((full.params, full.losses, full.grad_norms), surv))  # fmt: skip
    if full.evals is not None:
        assert _equal(pruned.evals[surv], full.evals[surv])
    for idx in zip(*np.nonzero(~surv), strict=True):
        r = pruned.pruned_at[idx]
        np.testing.assert_array_equal(pruned.losses[idx][:r], full.losses[idx][:r])
        assert np.isnan(pruned.losses[idx][r:]).all()
        if full.evals is not None:
            early = pruned.eval_steps <= r
            np.testing.assert_array_equal(pruned.evals[idx][early], full.evals[idx][early])
            assert np.isnan(pruned.evals[idx][~early]).all()


@pytest.fixture(scope="module")
def rosen_pair():
    kw = dict(vmap_width=4, eval_fn=ROSEN.fn, eval_every=9)
    full = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 81, **kw)
    pruned = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 81,
                       prune=jol.successive_halving(eta=3, min_steps=9), **kw)  # fmt: skip
    return full, pruned


def test_rungs_follow_min_steps_times_eta_powers():
    sh = jol.successive_halving(eta=3, min_steps=10)
    assert sh.rungs(100, 27) == ((10, 9), (30, 3), (90, 1))
    assert sh.rungs(100, 81) == ((10, 27), (30, 9), (90, 3))
    assert sh.rungs(20, 5) == ((10, 2),)
    assert jol.successive_halving(eta=2, min_steps=5).rungs(100, 4) == ((5, 2), (10, 1))
    # default: the rungs that leave one configuration of 81 (243 / 3**4)
    assert jol.successive_halving().rungs(243, 81) == ((3, 27), (9, 9), (27, 3), (81, 1))
    assert halving.default_min_steps(10, 1000, 3) == 1
    # 300 steps, 32 configurations: rungs 12, 36, 108 (not 11, 33, 99, 297)
    assert jol.successive_halving().rungs(300, 32) == ((12, 11), (36, 4), (108, 2))


def test_survivors_equal_their_unpruned_runs_bit_for_bit(rosen_pair):
    full, pruned = rosen_pair
    assert pruned.config["prune"]["rungs"] == [[9, 3], [27, 1]]
    np.testing.assert_array_equal(pruned.pruned_at, [9, 9, 9, 9, 9, 9, 27, 27, -1])
    _assert_prefixes(pruned, full)
    assert pruned.ranking()[0] == (8,) and pruned.best["learning_rate"] == LRS[-1]


def test_member_steps_count_what_ran(rosen_pair):
    full, pruned = rosen_pair
    assert full.member_steps == 9 * 81
    assert pruned.member_steps == 6 * 9 + 2 * 27 + 81 == int(pruned.steps_reached.sum())
    assert pruned.config["programs"] == 2  # a cold start and its continuation


def _kept_by_rule(full: jol.SweepResult, rungs, mode: str) -> np.ndarray:
    """pruned_at recomputed from the unpruned run: at each rung the best evaluation so
    far ranks the configurations still running."""
    running = np.ones(full.shape, bool)
    pruned_at = np.full(full.shape, -1)
    for step, keep in rungs:
        seen = np.where(full.eval_steps <= step, full.evals, np.nan)
        best = np.nanmax(seen, -1) if mode == "max" else -np.nanmin(seen, -1)
        best = best.mean(-1) if best.ndim > 1 else best  # seeds: the mean
        alive = running.reshape(best.shape[0], -1).all(-1)
        order = [i for i in np.argsort(-best, kind="stable") if alive[i]]
        lost = np.zeros(best.shape[0], bool)
        lost[order[keep:]] = True
        lost = np.broadcast_to(lost.reshape((-1,) + (1,) * (full.pruned_at.ndim - 1)), full.shape)
        pruned_at[lost & running] = step
        running &= ~lost
    return pruned_at


def test_minibatch_seeds_and_validation_follow_the_ranking_rule():
    prob = problems.digits_mlp(hidden=8)
    valid = prob.validation if prob.validation is not None else prob.test
    kw = dict(init_fn=prob.init_params, data=prob.train, batch_size=256, epochs=5, seeds=2,
              eval_fn=prob.metric, eval_data=valid, eval_mode="max", eval_every=2, vmap_width=2)  # fmt: skip
    lrs = np.logspace(-3, 0, 6)
    full = jol.sweep(jol.adam, prob.loss, None, lrs, **kw)
    pruned = jol.sweep(jol.adam, prob.loss, None, lrs, prune=jol.successive_halving(2, 4), **kw)
    _assert_prefixes(pruned, full)
    rungs = [tuple(r) for r in pruned.config["prune"]["rungs"]]
    np.testing.assert_array_equal(pruned.pruned_at, _kept_by_rule(full, rungs, "max"))
    assert (pruned.pruned_at == pruned.pruned_at[:, :1]).all()  # seeds pruned together
    assert pruned.member_steps < full.member_steps


def test_training_loss_ranks_without_an_evaluation():
    prob = problems.logistic_regression()
    kw = dict(init_fn=prob.init_params, data=prob.train, batch_size=64, epochs=4, vmap_width=1)
    lrs = np.logspace(-3, 1, 8)
    full = jol.sweep(jol.sgd, prob.loss, None, lrs, **kw)
    pruned = jol.sweep(jol.sgd, prob.loss, None, lrs, prune=jol.successive_halving(2, 5), **kw)
    _assert_prefixes(pruned, full)
    step, keep = pruned.config["prune"]["rungs"][0]
    window = full.losses[:, step - min(step, full.losses.shape[-1] // 4) : step].mean(-1)
    survivors = np.flatnonzero(pruned.pruned_at != step)
    np.testing.assert_array_equal(survivors, np.sort(np.argsort(window, kind="stable")[:keep]))


def test_diverged_members_are_frozen_as_unpruned_and_go_last():
    lrs = np.logspace(-4, 0, 12)
    full = jol.sweep(jol.sgd, ROSEN.fn, ROSEN.x0, lrs, 90, vmap_width=4)
    pruned = jol.sweep(jol.sgd, ROSEN.fn, ROSEN.x0, lrs, 90, vmap_width=4,
                       prune=jol.successive_halving(3, 10))  # fmt: skip
    assert full.diverged.any() and not full.diverged.all()
    np.testing.assert_array_equal(pruned.diverged_at, full.diverged_at)
    d = pruned.diverged
    assert _equal(_rows((pruned.params, pruned.losses), d), _rows((full.params, full.losses), d))
    assert (pruned.pruned_at[d] == -1).all()
    _assert_prefixes(pruned, full)
    ranked = [i for (i,) in pruned.ranking()]
    assert not d[ranked].any()
    reached = pruned.steps_reached[ranked]
    assert (np.diff(reached) <= 0).all()  # those that ran longer first


def test_compute_falls_with_the_survivors_in_one_program():
    calls = []
    real = sweep_kernel.run_chunk

    def spy(members, consts, *, spec):
        calls.append((int(np.sum(np.asarray(members[-1]))), spec.steps, spec.warm))
        return real(members, consts, spec=spec)

    sweep_kernel.run_chunk = spy
    try:
        res = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, np.logspace(-4, -1, 27), 40,
                        vmap_width=1, chunk_size=16, prune=jol.successive_halving(3, 4))  # fmt: skip
    finally:
        sweep_kernel.run_chunk = real
    # 27 members in two chunks, then 9 in one, 3, and 1: every call is 4 steps long
    active = [a for a, _, _ in calls]
    assert active[:2] == [14, 13] and set(active[2:]) <= {9, 3, 1}
    assert {s for _, s, _ in calls} == {4} and sum(a * s for a, s, _ in calls) == res.member_steps
    assert [w for _, _, w in calls].count(False) == 2  # only the first calls start cold


def test_save_load_summary_and_checkpoint_config(rosen_pair, tmp_path):
    _, pruned = rosen_pair
    pruned.save(tmp_path / "r.npz")
    back = jol.SweepResult.load(tmp_path / "r.npz", params_like=ROSEN.x0)
    np.testing.assert_array_equal(back.pruned_at, pruned.pruned_at)
    assert back.member_steps == pruned.member_steps and back.ranking() == pruned.ranking()
    text = pruned.summary()
    assert "pruned at" in text.splitlines()[0] and text.count(" 27") >= 2
    assert pruned.final_losses[0] == pruned.losses[0, 8]  # its last loss, at its rung


def test_pruned_sweep_resumes_from_its_checkpoint(tmp_path):
    kw = dict(vmap_width=2, prune=jol.successive_halving(3, 9), checkpoint_dir=tmp_path)
    first = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 81, **kw)
    files = sorted(p.name for p in tmp_path.glob("segment_*.npz"))
    assert files == ["segment_000.npz", "segment_001.npz", "segment_002.npz"]
    (tmp_path / "segment_002.npz").unlink()  # as if killed in the last segment
    again = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 81, **kw)
    assert again.config["segments_resumed"] == 2
    assert _equal((again.params, again.losses, again.pruned_at),
                  (first.params, first.losses, first.pruned_at))  # fmt: skip
    with pytest.raises(jol.InputError, match="prune"):  # the same folder, another schedule
        jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 81, vmap_width=2, checkpoint_dir=tmp_path,
                  prune=jol.successive_halving(3, 27))  # fmt: skip


_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, numpy as np, jaxopt_lab as jol
    from jaxopt_lab import problems
    prob = problems.logistic_regression()
    kw = dict(data=prob.train, batch_size=64, epochs=3, init_fn=prob.init_params, seeds=2,
              vmap_width=1, eval_fn=prob.metric, eval_data=prob.test, eval_mode="max")
    lrs = np.logspace(-2, 1, 6)
    sh = jol.successive_halving(2, 5)
    four = jol.sweep(jol.adam, prob.loss, None, lrs, prune=sh, **kw)
    one = jol.sweep(jol.adam, prob.loss, None, lrs, prune=sh, devices=jax.devices()[:1], **kw)
    full = jol.sweep(jol.adam, prob.loss, None, lrs, devices=jax.devices()[:1], eval_every=5, **kw)
    leaves = lambda r: jax.tree.leaves((r.losses, r.params, r.evals, r.pruned_at))
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(leaves(four), leaves(one)))
    s = four.pruned_at < 0
    kept = np.array_equal(four.losses[s], full.losses[s])
    print(json.dumps({"devices": four.config["devices"], "same": same, "kept": bool(kept),
                      "pruned": int((four.pruned_at >= 0).sum())}))
    """
)


def test_four_simulated_devices_prune_as_one():
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"devices": 4, "same": True, "kept": True, "pruned": report["pruned"]}
    assert report["pruned"] > 0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: jol.successive_halving(eta=1), "eta"),
        (lambda: jol.successive_halving(eta=2.5), "eta"),
        (lambda: jol.successive_halving(min_steps=0), "min_steps"),
        (
            lambda: jol.sweep(
                jol.adam, ROSEN.fn, ROSEN.x0, LRS, 20, prune=jol.successive_halving(min_steps=20)
            ),
            "min_steps",
        ),  # fmt: skip
        (lambda: jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 20, prune="halving"), "prune"),
        (
            lambda: jol.sweep(
                jol.adam,
                ROSEN.fn,
                ROSEN.x0,
                LRS,
                20,
                eval_fn=ROSEN.fn,
                eval_every=3,
                prune=jol.successive_halving(min_steps=4),
            ),
            "eval_every",
        ),  # fmt: skip
    ],
)
def test_bad_input_names_the_argument(make, match):
    with pytest.raises(jol.InputError, match=match):
        make()


def test_pruning_does_not_continue_a_previous_sweep(rosen_pair):
    full, _ = rosen_pair
    with pytest.raises(jol.InputError, match="prune"):
        jol.sweep(jol.adam, ROSEN.fn, None, LRS, 81, vmap_width=4, eval_fn=ROSEN.fn, eval_every=9,
                  state=full, prune=jol.successive_halving(3, 9))  # fmt: skip


def test_pruned_sweep_under_x64_keeps_float64():
    with enable_x64():
        x0 = jnp.asarray(ROSEN.x0, jnp.float64)
        res = jol.sweep(jol.adam, ROSEN.fn, x0, LRS, 27, prune=jol.successive_halving(3, 3))
        full = jol.sweep(jol.adam, ROSEN.fn, x0, LRS, 27)
    assert res.losses.dtype == np.float64 and res.params.dtype == np.float64
    _assert_prefixes(res, full)


def _hand_result(final: np.ndarray, quantile) -> jol.SweepResult:
    k, s = final.shape
    losses = np.repeat(final[..., None], 3, axis=-1).astype(np.float32)
    return jol.SweepResult(
        axes={"learning_rate": np.logspace(-3, -1, k), "seed": np.arange(s)},
        losses=losses, grad_norms=losses, diverged=np.zeros((k, s), bool),
        diverged_at=np.full((k, s), -1), params=np.zeros((k, s, 2), np.float32),
        hyperparams={}, config={"mode": "full_batch", "seed_quantile": quantile},
    )  # fmt: skip


def test_seeds_combine_by_their_mean_or_a_quantile():
    # configuration 0: good on average, one bad seed; configuration 1: steady
    final = np.array([[0.1, 0.1, 2.0], [0.8, 0.8, 0.8], [0.5, 0.6, 3.0]])
    assert _hand_result(final, None).ranking() == [(0,), (1,), (2,)]  # means .73, .8, 1.37
    assert _hand_result(final, 1.0).ranking() == [(1,), (0,), (2,)]  # the worst seed
    assert _hand_result(final, 0.5).ranking() == [(0,), (2,), (1,)]  # medians .1, .8, .6
    with pytest.raises(jol.InputError, match="seed_quantile"):
        jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, LRS, 10, seed_quantile=1.5)


def test_rungs_prune_seeds_by_the_quantile():
    prob = problems.logistic_regression()
    kw = dict(init_fn=prob.init_params, data=prob.train, batch_size=64, epochs=2, seeds=3,
              vmap_width=1, prune=jol.successive_halving(2, 4))  # fmt: skip
    lrs = np.logspace(-2, 1, 4)
    worst = jol.sweep(jol.sgd, prob.loss, None, lrs, seed_quantile=1.0, **kw)
    step, keep = worst.config["prune"]["rungs"][0]
    per_epoch = worst.losses.shape[-1] // 2
    window = worst.losses[..., step - min(step, per_epoch) : step].mean(-1).max(-1)
    survivors = np.flatnonzero(worst.pruned_at[:, 0] != step)
    np.testing.assert_array_equal(survivors, np.sort(np.argsort(window, kind="stable")[:keep]))
