"""A multi-host sweep, simulated: two processes on localhost, four CPU devices each.

The README's recipe (``jax.distributed.initialize()`` in every process, then the same
``jol.sweep(..., devices=jax.devices())``) must give every process the whole result,
bit for bit the numbers of one process with the same eight devices and of one process
with one device, and only process 0 may write checkpoint files.

Every run is a fresh subprocess (the device count and ``jax.distributed`` are fixed at
start-up); the four runs go concurrently. Only the public API (``jol.sweep``) is used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120

# argv: process_id num_processes port out_dir shared_checkpoint_dir
CHILD = r"""
import sys

import jax

pid, nproc, port, out, shared = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if nproc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid
    )
assert jax.process_count() == nproc, jax.process_count()

import jax.numpy as jnp
import numpy as np

import jaxopt_lab as jol


def rosenbrock(p):
    return jnp.sum(100.0 * (p[1:] - p[:-1] ** 2) ** 2 + (1 - p[:-1]) ** 2)


x0 = jnp.array([-1.2, 1.0])
lrs = np.logspace(-3, 0.5, 16)  # the two largest pass the threshold: the checked re-run


def run(name, params=x0, **kw):
    res = jol.sweep(jol.adam, rosenbrock, params, lrs, 200, devices=jax.devices(), **kw)
    np.savez(
        f"{out}/{name}.npz",
        losses=res.losses,
        grad_norms=res.grad_norms,
        params=res.params,
        diverged=res.diverged,
        diverged_at=res.diverged_at,
        chunks=res.config["chunks"],
        chunks_resumed=res.config.get("chunks_resumed", -1),
        pruned_at=res.pruned_at,
    )


run("default", divergence_threshold=1e3)  # the default chunk and vmap width
# params committed to a local device: device_put onto the global mesh would refuse them
local_x0 = jax.device_put(x0, jax.local_devices()[0])
chunked = dict(params=local_x0, divergence_threshold=1e3, chunk_size=8, vmap_width=1)
run("private", checkpoint_dir="ckpt", **chunked)  # relative: a folder per process (its cwd)
run("shared", checkpoint_dir=shared, **chunked)
run("resumed", checkpoint_dir=shared, **chunked)
# successive halving: survivors repacked over the devices of both processes
run("pruned", divergence_threshold=1e3, vmap_width=1, prune=jol.successive_halving(3, 20))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(script: Path, cwd: Path, pid: int, nproc: int, port: int, devices: int, shared: Path):
    cwd.mkdir()
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    args = [sys.executable, str(script), str(pid), str(nproc), str(port), str(cwd), str(shared)]
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run the child in four settings at once; name -> its output folder."""
    tmp = tmp_path_factory.mktemp("multihost")
    script = tmp / "child.py"
    script.write_text(CHILD)
    port = _free_port()
    settings = {  # name: (process id, processes, devices per process, shared folder)
        "p0": (0, 2, 4, "shared-2x4"),
        "p1": (1, 2, 4, "shared-2x4"),
        "s8": (0, 1, 8, "shared-1x8"),
        "s1": (0, 1, 1, "shared-1x1"),
    }
    procs = {
        name: _start(script, tmp / name, pid, n, port, d, tmp / shared)
        for name, (pid, n, d, shared) in settings.items()
    }
    logs, failed = {}, []
    try:
        for name, proc in procs.items():
            try:
                logs[name] = proc.communicate(timeout=TIMEOUT_S)[1]
            except subprocess.TimeoutExpired:
                proc.kill()
                logs[name] = proc.communicate()[1] + f"\n[killed after {TIMEOUT_S} s]"
            if proc.returncode != 0:
                failed.append(name)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed:
        report = "\n".join(f"===== {n} stderr =====\n{logs[n][-6000:]}" for n in failed)
        pytest.fail(f"child run(s) {failed} failed:\n{report}")
    return {name: tmp / name for name in settings} | {"tmp": tmp}


CALLS = ["default", "private", "shared", "resumed"]


@pytest.mark.parametrize("call", CALLS)
def test_every_process_gets_the_single_process_numbers_bit_for_bit(runs, call):
    # The default vmap width depends on the members per device (1 device: wider), and a
    # different width may change the last bits of a reduction (the gradient norm): the
    # one-device run is compared where the width is pinned.
    names = ["p0", "p1", "s8"] + ([] if call == "default" else ["s1"])
    results = {name: np.load(runs[name] / f"{call}.npz") for name in names}
    ref = results["s8"]
    for name in names[:2] + names[3:]:
        for key in ("losses", "grad_norms", "params", "diverged", "diverged_at", "chunks"):
            got, want = results[name][key], ref[key]
            assert got.dtype == want.dtype and got.shape == want.shape, (name, key)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} vs s8: {call} {key}")
    diverged = ref["diverged"]
    assert diverged.any() and not diverged.all()  # the checked re-run path was taken
    if call != "default":
        assert int(ref["chunks"]) == 2


def test_only_process_0_writes_checkpoints(runs):
    written = sorted(p.name for p in (runs["p0"] / "ckpt").iterdir())
    assert written == ["chunk_00000.npz", "chunk_00001.npz", "config.json"]
    p1 = runs["p1"] / "ckpt"
    assert not p1.exists() or not any(p1.iterdir()), sorted(p.name for p in p1.iterdir())
    shared = sorted(p.name for p in (runs["tmp"] / "shared-2x4").iterdir())
    assert shared == written  # nothing else, no temporary file left behind


def test_every_process_resumes_from_the_shared_folder(runs):
    for name in ("p0", "p1", "s8", "s1"):
        assert int(np.load(runs[name] / "shared.npz")["chunks_resumed"]) == 0, name
        assert int(np.load(runs[name] / "resumed.npz")["chunks_resumed"]) == 2, name


def test_a_pruned_sweep_gives_every_process_the_single_process_numbers(runs):
    results = {name: np.load(runs[name] / "pruned.npz") for name in ("p0", "p1", "s8", "s1")}
    ref = results["s1"]
    assert (ref["pruned_at"] >= 0).any() and (ref["pruned_at"] == -1).any()
    for name in ("p0", "p1", "s8"):
        for key in ("losses", "grad_norms", "params", "diverged_at", "pruned_at"):
            np.testing.assert_array_equal(results[name][key], ref[key], err_msg=f"{name} {key}")
