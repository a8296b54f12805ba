"""Checkpoints of a sweep: a fingerprint of its inputs (``config.json``) and one file
per finished chunk, written atomically, so that an interrupted sweep resumes with the
same numbers and a folder written by another configuration is refused."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any

import jax
import numpy as np

from jaxopt_lab._multihost import process_flags
from jaxopt_lab.errors import InputValueError
from jaxopt_lab.sweep.result import atomic_savez, digest, flatten_with_paths, load_npz


def callable_id(fn: Any) -> str:
    try:
        return _cached_callable_id(fn)
    except TypeError:  # unhashable
        return _make_callable_id(fn)


@functools.lru_cache(maxsize=256)
def _cached_callable_id(fn: Any) -> str:
    return _make_callable_id(fn)


def _make_callable_id(fn: Any) -> str:
    """A process-independent name for a function: module, qualified name and a hash of
    its code (so an edited loss is not mistaken for the old one)."""
    if isinstance(fn, functools.partial):
        return f"partial({callable_id(fn.func)}, {fn.args!r}, {sorted(fn.keywords.items())!r})"
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    code = getattr(fn, "__code__", None)
    if code is not None:
        name += ":" + hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]
    return name


def tree_fingerprint(tree: Any) -> str:
    leaves, _ = flatten_with_paths(tree)
    h = hashlib.sha256(str(jax.tree.structure(tree)).encode())
    for path, x in leaves:
        h.update(path.encode())
        h.update(digest(np.asarray(x)).encode())
    return h.hexdigest()


def check_folder(folder: str, fingerprint: dict[str, Any], write: bool = True) -> None:
    """Start ``folder`` with this sweep's fingerprint, or check the one it holds.
    ``write=False`` (a process other than the first) only checks."""
    os.makedirs(folder, exist_ok=True)
    config_path = os.path.join(folder, "config.json")
    if not os.path.exists(config_path):
        if not write:  # another process (process 0) writes it
            return
        tmp = config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(fingerprint, f, indent=1, sort_keys=True)
        os.replace(tmp, config_path)
        return
    try:
        with open(config_path) as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputValueError(
            f"`checkpoint_dir`: {config_path} is unreadable ({e}); remove it to start over."
        ) from e
    differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if differ:
        raise InputValueError(
            f"`checkpoint_dir` {folder!r} holds a sweep with a different configuration "
            f"(differs in: {', '.join(differ)}); it will not be reused. Pass another folder, "
            "or delete this one to start over."
        )


def chunk_path(folder: str, i: int) -> str:
    return os.path.join(folder, f"chunk_{i:05d}.npz")


def agreed_exists(path: str | None, folder: str | None) -> bool:
    """Whether chunk file ``path`` exists, for every process alike (a collective with
    several processes: they must resume the same chunks, or they fall out of step)."""
    if path is None:
        return False
    done = os.path.exists(path)
    flags = process_flags(done)
    if flags.any() != flags.all():  # every process raises, none goes on alone
        raise InputValueError(
            f"`checkpoint_dir` {folder!r}: {os.path.basename(path)} exists for some "
            "processes only; with several processes it must be a shared folder."
        )
    return done


def write_arrays(path: str, kind: str, arrays: dict[str, Any]) -> None:
    """Named arrays to ``path`` with their checksums, atomically (see ``read_arrays``)."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    meta = {"format": kind, "checksums": {k: digest(v) for k, v in arrays.items()}}
    atomic_savez(path, arrays, meta)


def read_arrays(path: str, kind: str) -> dict[str, np.ndarray]:
    """The arrays :func:`write_arrays` wrote (a corrupt file raises InputValueError)."""
    return load_npz(path, kind)[0]


def write_chunk(path: str, index: int, out) -> None:
    params, state, losses, norms, dead_at, evals = out
    arrays = {"losses": losses, "grad_norms": norms, "diverged_at": dead_at}
    if evals is not None:
        arrays["evals"] = evals
    arrays.update({f"params/{i}": x for i, x in enumerate(jax.tree.leaves(params))})
    arrays.update({f"state/{i}": x for i, x in enumerate(jax.tree.leaves(state))})
    meta = {"format": "jaxopt_lab.SweepChunk", "index": index,
            "checksums": {k: digest(np.asarray(v)) for k, v in arrays.items()}}  # fmt: skip
    atomic_savez(path, arrays, meta)


def read_chunk(path: str, like: tuple[Any, Any]):
    """A chunk written by :func:`write_chunk`; ``like``: (params, state) structures."""
    arrays, _ = load_npz(path, "jaxopt_lab.SweepChunk")

    def tree(prefix, structure):
        treedef = jax.tree.structure(structure)
        leaves = [arrays[f"{prefix}/{i}"] for i in range(treedef.num_leaves)]
        return jax.tree.unflatten(treedef, leaves)

    params, state = tree("params", like[0]), tree("state", like[1])
    out = (arrays["losses"], arrays["grad_norms"], arrays["diverged_at"], arrays.get("evals"))
    return (params, state, *out)
