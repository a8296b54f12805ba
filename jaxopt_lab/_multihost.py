"""What the sweep driver needs to run under multi-controller JAX (several processes).

With ``jax.distributed.initialize()`` every process runs the same program over a mesh of
``jax.devices()``, which includes devices other processes own. Three things then differ
from a single process, and this module is the whole of what the driver does about them:

* **Outputs.** An output sharded over the member axis lives partly on other processes'
  devices, so ``np.asarray`` refuses it. :func:`to_host` gathers such leaves so that
  *every* process holds the whole result: every process then takes the same decisions
  from it (the divergence re-run, the result it returns) and stays in step with the
  others for the next collective program.
* **Inputs.** ``jax.device_put`` onto a mesh spanning other processes refuses an array
  committed to a local device, and checks numpy values by gathering them whole.
  :func:`place` builds the global array from each process's own copy of the value
  (``jax.make_array_from_callback``) and compares one digest per tree instead.
  Per-chunk numpy arguments passed straight to the jitted chunk program need nothing:
  jit shards a numpy value (the same global value in every process) itself.
* **Files.** Only process 0 writes (:func:`is_primary`); a decision that every process
  must take alike (resume a chunk from a file, accept a checkpoint folder) is compared
  across processes with :func:`process_flags`, so that no process enters a collective
  the others skip.

In a single process every function here is the plain operation: no collective, no copy,
one attribute check per leaf. Works with JAX >= 0.4.35.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxopt_lab.errors import InputValueError

__all__ = ["is_primary", "place", "process_flags", "to_host"]


def is_primary() -> bool:
    """Whether this is process 0, the one process that writes files (checkpoints,
    results). True in a single process."""
    return jax.process_index() == 0


def _needs_gather(x: Any) -> bool:
    # A fully replicated array is readable locally even when it spans other processes.
    return isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated


def to_host(tree: Any) -> Any:
    """The same tree with every leaf a numpy array holding the *global* value.

    A leaf that spans devices of other processes (an output sharded over a mesh of
    ``jax.devices()``) is gathered, in its global (logical) order, to every process;
    all leaves needing it are gathered by one compiled program. That is a collective:
    every process must call this with the same tree structure, shapes and shardings,
    in the same order. Any other leaf is ``np.asarray(leaf)``, so a single process
    pays nothing beyond one attribute check per leaf.
    """
    leaves, treedef = jax.tree.flatten(tree)
    remote = [i for i, x in enumerate(leaves) if _needs_gather(x)]
    if remote:
        gathered = _gather([leaves[i] for i in remote])
        for i, x in zip(remote, gathered, strict=True):
            leaves[i] = x
    return jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])


def _gather(xs: list[jax.Array]) -> list[Any]:
    if all(isinstance(x.sharding, NamedSharding) for x in xs):
        shardings = tuple(NamedSharding(x.sharding.mesh, PartitionSpec()) for x in xs)
        return list(_replicate(shardings)(xs))
    from jax.experimental import multihost_utils

    # Any other sharding: JAX's own gather, one program per leaf (already numpy).
    return multihost_utils.process_allgather(xs, tiled=True)


@functools.lru_cache(maxsize=64)
def _replicate(shardings: tuple[NamedSharding, ...]):
    """An identity program whose outputs are fully replicated: XLA all-gathers."""
    return jax.jit(lambda xs: xs, out_shardings=list(shardings))


def place(tree: Any, sharding: jax.sharding.Sharding, *, check_same: bool = True) -> Any:
    """Put every leaf of ``tree`` (numpy arrays, scalars or jax arrays) on ``sharding``;
    a leaf already there is returned as is.

    When ``sharding`` is fully addressable (a single process, or a mesh of local
    devices) this is ``jax.device_put``. Otherwise every process must call it with the
    same value: each builds its own shards of the global array from its host copy
    (``jax.make_array_from_callback``; an array committed to a local device is read back
    first, as ``jax.device_put`` would refuse it). With ``check_same`` the processes
    compare one digest of the whole tree and raise InputValueError, all of them, if they
    were given different values; that is one small collective per call.
    """

    def is_placed(x: Any) -> bool:
        return isinstance(x, jax.Array) and x.sharding == sharding

    if sharding.is_fully_addressable:
        return jax.tree.map(lambda x: x if is_placed(x) else jax.device_put(x, sharding), tree)

    def put(x: Any) -> Any:
        if is_placed(x):
            return x
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)  # a global array: a reshard
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    if check_same and jax.process_count() > 1:
        leaves = [
            np.asarray(x)
            for x in jax.tree.leaves(tree)
            if not is_placed(x) and not (isinstance(x, jax.Array) and not x.is_fully_addressable)
        ]
        digest = hashlib.sha256(str(jax.tree.structure(tree)).encode())
        for x in leaves:
            x = np.ascontiguousarray(x)
            digest.update(f"{x.dtype.str}{x.shape}".encode())
            digest.update(x.tobytes())
        if not _same_everywhere(np.frombuffer(digest.digest(), np.uint8)):
            raise InputValueError(
                "The processes were given different values for the same input (params, "
                "data, or a key); every process must make the same call with the same values."
            )
    return jax.tree.map(put, tree)


def process_flags(flag: bool) -> np.ndarray:
    """``(process_count,)`` bool: ``flag`` as each process passed it, in process order.

    A collective (every process must call it, in the same order) when there are several
    processes; ``np.array([flag])`` in one. Use it for a decision every process must take
    alike, e.g. ``flags.all()`` to proceed only if all agree, or
    ``flags.any() != flags.all()`` to detect that they disagree.
    """
    if jax.process_count() == 1:
        return np.array([bool(flag)])
    from jax.experimental import multihost_utils

    # int32: gathered through a device computation, where bool support varies.
    return np.asarray(multihost_utils.process_allgather(np.int32(bool(flag)))).reshape(-1) != 0


def _same_everywhere(value: np.ndarray) -> bool:
    """Whether every process passed the same 1-D array (same shape everywhere)."""
    from jax.experimental import multihost_utils

    rows = np.asarray(multihost_utils.process_allgather(value))
    return bool((rows == rows[:1]).all())
