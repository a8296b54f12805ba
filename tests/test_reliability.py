"""Reliability end to end: bit-identical results across processes, a poisoned member
frozen alone, nothing lost to SIGKILL at random points, and memory flat in K."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol

ROOT = str(Path(__file__).resolve().parents[1])
ROSEN = jol.problems.rosenbrock(2)

# ------------------------------------------------------------------ determinism

_DIGESTS = textwrap.dedent(
    """
    import hashlib, json, sys
    import jax, numpy as np, jaxopt_lab as jol
    from jaxopt_lab import problems

    def digest(*trees):
        h = hashlib.sha256()
        for leaf in jax.tree.leaves(trees):
            a = np.asarray(leaf)
            h.update(str((a.dtype, a.shape)).encode()); h.update(a.tobytes())
        return h.hexdigest()

    rosen, prob = problems.rosenbrock(2), problems.logistic_regression()
    out = {"devices": len(jax.devices())}
    res = jol.minimize(rosen.fn, rosen.x0, jol.adam(0.01), 500)
    out["minimize"] = digest(res.params, res.losses, res.grad_norms)
    p0 = prob.init_params(jax.random.PRNGKey(1))
    res = jol.fit(prob.loss, p0, jol.sgd(0.1, momentum=0.9), prob.train, batch_size=32, epochs=3, key=7)
    out["fit"] = digest(res.params, res.losses)
    kw = dict(init_fn=prob.init_params, data=prob.train, batch_size=32, epochs=2, seeds=2, key=3, vmap_width=1)
    lrs = np.logspace(-3, 1, 16)
    for chunk in (1, 7, 64):
        res = jol.sweep(jol.adam, prob.loss, None, lrs, chunk_size=chunk, **kw)
        out[f"sweep chunk {chunk}"] = digest(res.losses, res.params, res.diverged_at)
    print(json.dumps(out))
    """
)


def _digests(devices: int) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _DIGESTS], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_same_inputs_give_the_same_bits_in_another_process_on_1_and_8_devices():
    one, again = _digests(1), _digests(1)
    eight, eight_again = _digests(8), _digests(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    assert one == again and eight == eight_again  # across processes
    sweeps = [k for k in one if k.startswith("sweep")]
    assert len({one[k] for k in sweeps}) == 1  # the chunk size does not change a bit
    assert {eight[k] for k in sweeps} == {one[sweeps[0]]}  # nor the device count
    assert one["minimize"] == eight["minimize"] and one["fit"] == eight["fit"]


# ------------------------------------------------------------------ a poisoned member


def _poison(step: int):
    """A transform that makes the update NaN at ``step`` when its ``poison`` is 1."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def make(poison):
        def update(updates, count, params=None):
            bad = (count == step) & (poison > 0)
            return jax.tree.map(lambda u: jnp.where(bad, jnp.nan, u), updates), count + 1

        return jol.Optimizer(init, update)

    return make


def test_nan_at_step_37_in_one_of_64_members_freezes_that_member_alone():
    poison = _poison(37)

    def make(lr, poison_flag):
        return jol.chain(jol.adam(lr), poison(poison_flag))

    lrs = np.geomspace(1e-3, 1e-1, 64)
    flags = np.zeros(64)
    flags[21] = 1.0
    clean = jol.sweep(
        make, ROSEN.fn, ROSEN.x0, lrs, 100, hyperparams={"poison_flag": np.zeros(64)}, combine="zip"
    )
    hit = jol.sweep(
        make, ROSEN.fn, ROSEN.x0, lrs, 100, hyperparams={"poison_flag": flags}, combine="zip"
    )
    assert hit.diverged.tolist() == [i == 21 for i in range(64)]
    assert int(hit.diverged_at[21]) == 37  # the step whose update turned non-finite
    assert np.isnan(hit.losses[21, 38:]).all() and np.isfinite(hit.losses[21, :38]).all()
    # frozen at its last finite params: those after updates 0..36, as minimize gives them
    np.testing.assert_array_equal(
        hit.params[21], jol.minimize(ROSEN.fn, ROSEN.x0, jol.adam(lrs[21]), 37).params
    )
    others = np.arange(64) != 21
    np.testing.assert_array_equal(hit.losses[others], clean.losses[others])
    np.testing.assert_array_equal(hit.params[others], clean.params[others])


# ------------------------------------------------------------------ SIGKILL at random points

_RESUME = textwrap.dedent(
    """
    import sys, numpy as np, jaxopt_lab as jol
    from jaxopt_lab import problems
    r = problems.rosenbrock(2)
    res = jol.sweep(jol.adam, r.fn, r.x0, np.logspace(-3, 0, 8), 300000, chunk_size=1,
                    vmap_width=1, checkpoint_dir=sys.argv[1])
    res.save(sys.argv[2])
    """
)


def test_sigkill_at_random_points_then_resume_gives_identical_results(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_RESUME)
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    straight = jol.sweep(
        jol.adam, ROSEN.fn, ROSEN.x0, np.logspace(-3, 0, 8), 300000, chunk_size=1, vmap_width=1
    )
    rng = random.Random(0)
    killed_after = []
    for trial in range(3):
        ckpt, out = tmp_path / f"ckpt{trial}", tmp_path / f"out{trial}.npz"
        proc = subprocess.Popen([sys.executable, str(script), str(ckpt), str(out)], env=env)
        try:  # kill after a random number of finished chunks, at a random moment within the next
            target = rng.randint(1, 6)
            deadline = time.monotonic() + 120
            while len(list(ckpt.glob("chunk_*.npz"))) < target:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.02))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        killed_after.append(len(list(ckpt.glob("chunk_*.npz"))))
        subprocess.run(
            [sys.executable, str(script), str(ckpt), str(out)], env=env, check=True, timeout=300
        )
        resumed = jol.SweepResult.load(out, params_like=ROSEN.x0)
        np.testing.assert_array_equal(resumed.losses, straight.losses)
        np.testing.assert_array_equal(resumed.params, straight.params)
    assert all(1 <= k < 8 for k in killed_after), killed_after


_RESUME_PRUNED = textwrap.dedent(
    """
    import sys, numpy as np, jaxopt_lab as jol
    from jaxopt_lab import problems
    r = problems.rosenbrock(2)
    res = jol.sweep(jol.adam, r.fn, r.x0, np.logspace(-3, 0, 9), 1000000, chunk_size=1,
                    vmap_width=1, checkpoint_dir=sys.argv[1],
                    prune=jol.successive_halving(eta=3, min_steps=10000))
    res.save(sys.argv[2])
    """
)


def test_sigkill_of_a_pruned_sweep_then_resume_gives_identical_results(tmp_path):
    # The kill lands up to ~60 ms after a segment's file appears (polling, the random
    # wait): every segment must take longer. With 270,000 steps the last one (one
    # member) took 80 ms and a loaded CI machine finished it before the kill; with
    # 1,000,000 it takes ~350 ms.
    script = tmp_path / "run.py"
    script.write_text(_RESUME_PRUNED)
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    straight = jol.sweep(jol.adam, ROSEN.fn, ROSEN.x0, np.logspace(-3, 0, 9), 1000000,
                         chunk_size=1, vmap_width=1,
                         prune=jol.successive_halving(eta=3, min_steps=10000))  # fmt: skip
    rng = random.Random(1)
    for trial, target in enumerate((1, 2)):  # killed inside the second and the last segment
        ckpt, out = tmp_path / f"ckpt{trial}", tmp_path / f"out{trial}.npz"
        proc = subprocess.Popen([sys.executable, str(script), str(ckpt), str(out)], env=env)
        try:
            deadline = time.monotonic() + 120
            while len(list(ckpt.glob("segment_*.npz"))) < target:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        assert len(list(ckpt.glob("segment_*.npz"))) < 3
        subprocess.run(
            [sys.executable, str(script), str(ckpt), str(out)], env=env, check=True, timeout=300
        )
        resumed = jol.SweepResult.load(out, params_like=ROSEN.x0)
        assert resumed.config["segments_resumed"] >= target
        np.testing.assert_array_equal(resumed.losses, straight.losses)
        np.testing.assert_array_equal(resumed.params, straight.params)
        np.testing.assert_array_equal(resumed.pruned_at, straight.pruned_at)


# ------------------------------------------------------------------ memory flat in K

_RSS = textwrap.dedent(
    """
    import resource, sys, numpy as np, jaxopt_lab as jol
    from jaxopt_lab import problems
    r = problems.rosenbrock(2)
    k = int(sys.argv[1])
    res = jol.sweep(jol.adam, r.fn, r.x0, np.geomspace(1e-4, 1.0, k), 200, chunk_size=256)
    assert res.losses.shape == (k, 200)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_peak_memory_is_flat_in_the_number_of_members():
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    peak = {}
    for k in (256, 1024, 4096):
        proc = subprocess.run(
            [sys.executable, "-c", _RSS, str(k)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        peak[k] = int(proc.stdout.split()[-1]) / 1024  # MiB
    print("peak RSS MiB:", peak)
    # 16x the members in chunks of 256: the results grow by (4096 - 256) x 200 x 2 float32
    # histories (6 MiB); anything beyond a few tens of MiB would mean chunks are kept.
    assert peak[4096] - peak[256] < 40, peak
