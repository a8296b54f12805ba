r"""Vmapped hyperparameter sweeps: many training runs in one compiled program.

:func:`sweep` trains one *member* per combination of a learning rate, optional further
hyperparameters and optional seeds, all with the same loss, initial-params recipe and
number of steps, and returns a :class:`SweepResult`.

How the members are run
-----------------------
The members are cut into *chunks* of one size; every chunk is one call of the same
compiled program (the last chunk is padded with copies of the last member, whose results
are dropped, but by less than a vmap group per device), so the program is compiled once
whatever the number of members, and the memory in use is bounded by the chunk. Inside a chunk, members run in *groups* of
``vmap_width``: a group is ``jax.vmap``-ed, the groups of a chunk run one after the
other (``lax.map``), and every step of every member is a ``lax.scan`` step: no Python
runs per step.

The vmap width is a property of the problem, not of the sweep: by default it is chosen
from XLA's flop estimate of one member's loss-and-gradient so that a group's step is
big enough to hide the loop overhead but no bigger. Small problems (a 2-D test function)
are vmapped 64 wide on a CPU, a digits MLP runs one member at a time, which on a CPU is
faster than vmapping it (batched matmuls cost more per member than plain ones). On a GPU
the groups are wide, but never wider than the members per device (rounded up to a power
of two), so a small sweep computes no padding. Chunks are padded to a multiple of the
width, so a member's numbers do not depend on the chunk size: same inputs and width,
same bits (a different width may change the last bits on problems with matmuls, as
batched and plain matmuls round differently; pass ``vmap_width`` to pin it).

With several devices (``devices=``, default every local device) each chunk's members are
split evenly across a one-axis ``jax.sharding.Mesh`` with ``shard_map``; a device runs
its share of the chunk with no communication. Several hosts: start each process with
``jax.distributed.initialize()`` and make the same call in every process with
``devices=jax.devices()``; every process gets the whole result (the outputs are gathered
to all of them), and only process 0 writes checkpoint files. This package does not
start processes of its own.

Layout: ``plan`` (validation, the member table, width and chunks, cached), ``kernel``
(the pure JAX of a member, a group and a chunk), ``driver`` (chunks, the checked
re-run, devices and hosts, checkpoints through ``checkpoint``), ``halving`` (a sweep
pruned by successive halving, segment by segment), ``result`` (:class:`SweepResult`).

Precision
---------
``compute_dtype=jnp.bfloat16`` evaluates every member's loss and gradient with bfloat16
params and data batches (float32 params, gradients and optimizer states kept), and
``remat=True`` recomputes the loss's activations in the backward pass; both wrap the
loss once (:mod:`jaxopt_lab.precision`), so the plan and the compiled program are
reused. A wide sweep of a small network is bound by the traffic of its members' hidden
activations on a GPU; bfloat16 halves it, remat trades stored activations for
recomputation (less memory held, not fewer bytes moved).

Divergence
----------
A member *diverges* at step :math:`t` when its loss or gradient there is not finite,
when the loss exceeds ``divergence_threshold`` (default: no threshold, only non-finite
values count), or when the update would make a param non-finite. From then on it is
frozen: its params stay those of step :math:`t` (all finite), ``diverged`` is True,
``diverged_at`` is :math:`t`, ``losses[..., t]`` holds the offending value and later
entries are NaN. Members never interact, so a diverging member changes no other
member's numbers.

Resume
------
With ``checkpoint_dir``, every finished chunk is written there (atomically) next to a
``config.json`` fingerprint of the sweep's inputs. The same call after an interruption
loads the finished chunks and runs only the rest, ending with the same numbers as an
uninterrupted run; a directory written by a different configuration is refused.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from jaxopt_lab.base import Params
from jaxopt_lab.checks import check_callable, check_key
from jaxopt_lab.errors import InputValueError
from jaxopt_lab.sweep import driver, halving
from jaxopt_lab.sweep.halving import SuccessiveHalving, successive_halving
from jaxopt_lab.sweep.kernel import run_chunk as _run_chunk  # noqa: F401  (its cache, in tests)
from jaxopt_lab.sweep.plan import auto_vmap_width, check_seeds, plan_for
from jaxopt_lab.sweep.result import GridEdgeWarning, SweepResult


def sweep(
    make_optimizer: Callable[..., Any],
    loss_fn: Callable[..., Any],
    params: Params | None,
    learning_rates: Any,
    steps: int | None = None,
    *,
    hyperparams: Mapping[str, Any] | None = None,
    combine: str = "grid",
    seeds: int | Sequence[int] | None = None,
    init_fn: Callable[[jax.Array], Params] | None = None,
    key: Any = 0,
    data: Any = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    divergence_threshold: float | None = None,
    chunk_size: int | None = None,
    vmap_width: int | None = None,
    devices: Sequence[Any] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    has_aux: bool = False,
    state: SweepResult | None = None,
    eval_fn: Callable[..., Any] | None = None,
    eval_data: Any = None,
    eval_every: int | None = None,
    eval_mode: str = "min",
    prune: SuccessiveHalving | None = None,
    seed_quantile: float | None = None,
    compute_dtype: Any = None,
    remat: Any = False,
) -> SweepResult:
    r"""Train one member per (learning rate, hyperparameters, seed) in one compiled
    program and return a :class:`SweepResult`.

    Member :math:`(k, \dots)` runs exactly what :func:`jaxopt_lab.minimize`
    (full batch) or :func:`jaxopt_lab.fit` (mini-batch) would run with
    ``make_optimizer(learning_rates[k], **{name: value})``; the learning rate and
    hyperparameters are traced, so no value triggers a compile.

    Args:
      make_optimizer: ``(learning_rate, **hyperparams) -> optimizer``: ``jol.adam``,
        ``optax.adam``, or any factory returning an object with ``.init``/``.update``.
      loss_fn: ``params -> scalar`` (full batch), or ``(params, batch) -> scalar`` when
        ``data`` is given.
      params: the initial params shared by every member; ``None`` with ``init_fn``.
      learning_rates: ``(K,)`` finite positive learning rates (e.g. ``jnp.logspace``).
      steps: updates per member in full-batch mode; leave None with ``data``.
      hyperparams: further axes, name -> 1-D values, passed to ``make_optimizer`` by
        keyword (``{"b1": [0.8, 0.9, 0.95]}``).
      combine: ``"grid"`` (every combination: one axis per name) or ``"zip"`` (the
        i-th value of each goes with the i-th learning rate; one shared axis).
      seeds: a count or a sequence of ints: adds a ``seed`` axis (last). Seed
        :math:`s` uses ``k = fold_in(key, s)``; ``init_key, data_key = split(k)``.
        Without seeds the one "seed" uses ``key`` itself the same way.
      init_fn: ``key -> params``, called once per seed with ``init_key`` (instead of
        ``params``).
      key: a ``jax.random`` key or an int seed.
      data, batch_size, epochs: mini-batch mode, as :func:`jaxopt_lab.fit`: each seed's
        examples are shuffled every epoch from its ``data_key``, and every member of that
        seed sees the same batches. ``steps = epochs * (N // batch_size)``.
      divergence_threshold: a loss above this counts as divergence (default: only
        non-finite values do).
      chunk_size: at most this many members per compiled call (default: 64 per device,
        or all members when fewer). The members are split into the fewest such chunks,
        of equal size, a multiple of ``vmap_width`` times the device count.
      vmap_width: members computed in lockstep (default: chosen from the problem's
        flops, see the module docstring).
      devices: the devices to shard the member axis over (default: every local device).
      checkpoint_dir: a folder to write finished chunks to and resume from.
      progress: show a tqdm progress bar (default: only when stderr is a terminal).
      has_aux: ``loss_fn`` returns ``(loss, aux)``; the aux is discarded.
      state: a previous :class:`SweepResult` of the same grid to continue: every member
        starts from its final params and optimizer state there (a diverged member stays
        frozen), and in mini-batch mode the epochs continue where it stopped; ``params``
        and ``init_fn`` are then not used (``params`` may be None). ``steps`` more steps (or ``epochs`` more epochs) after a sweep
        of ``steps`` give the numbers of one sweep twice as long, bit for bit.
      eval_fn, eval_data, eval_every, eval_mode: evaluate every member inside the same
        program: ``eval_fn(params, eval_data) -> scalar`` (``eval_fn(params)`` without
        ``eval_data``) after every ``eval_every`` steps and after the last (default: the
        last only). ``SweepResult.evals`` holds them, ``eval_steps`` when they were
        taken; with an evaluation the ranking (and ``best_learning_rate``) uses each
        member's best evaluation, the lowest (``eval_mode="min"``, a validation loss) or
        the highest (``"max"``, an accuracy).
      prune: ``jol.successive_halving(eta=, min_steps=)``: stop the worst configurations
        at rungs (see :mod:`jaxopt_lab.sweep.halving`); ``pruned_at`` says where each
        stopped and ``member_steps`` what was computed. A survivor's numbers equal its
        unpruned run's (bit for bit at the same ``vmap_width``). With an ``eval_fn``,
        ``eval_every`` defaults to ``min_steps`` and must divide it.
      seed_quantile: how a configuration's seeds are combined for ranking and pruning:
        None (default) their mean score, or this quantile of their scores in [0, 1]
        (0.5 the median, 1.0 the worst seed).
      compute_dtype: evaluate the loss (forward and backward) in this floating dtype,
        e.g. ``jnp.bfloat16``: the floating params and ``data`` batches are cast to it,
        the loss cast back; gradients, params and optimizer states stay in the params'
        dtype. It halves the activation traffic that bounds a wide sweep of a small
        network on a GPU. Arrays the loss closes over are not cast (see
        :mod:`jaxopt_lab.precision`); ``eval_fn`` runs as given.
      remat: recompute the loss's activations in the backward pass instead of storing
        them (``jax.checkpoint``): True, or a ``jax.checkpoint_policies`` policy.

    Returns:
      A :class:`SweepResult`; arrays shaped ``(K, [hyperparam axes], [S], steps)``.

    Example:
      Four learning rates of SGD on a quadratic, 50 steps each, in one compiled program;
      the last one diverges and is frozen, the others are untouched by it:

      >>> import jax.numpy as jnp, jaxopt_lab as jol
      >>> loss = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> res = jol.sweep(jol.sgd, loss, jnp.zeros(2), jnp.array([0.01, 0.1, 0.5, 3.0]), 50)
      >>> res.losses.shape, res.diverged.tolist()
      ((4, 50), [False, False, False, True])
      >>> float(res.best_learning_rate)
      0.5
    """
    t_start = time.perf_counter()
    driver.check_previous(state)
    seed_params, one, warm = params, params, state is not None
    if warm:  # the start is the previous result's; its states continue
        one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[len(state.shape) :],
                                                          np.asarray(x).dtype), state.params)  # fmt: skip
    elif init_fn is not None:
        if params is not None:
            raise InputValueError("Give `params` or `init_fn`, not both.")
        check_callable("init_fn", init_fn, "a callable key -> params")
    elif params is None:
        raise InputValueError("Give the initial `params`, or `init_fn` to draw them per seed.")
    start_epoch = _continued_epochs(state, data)
    progress = driver.wants_progress(progress)
    args = dict(make_optimizer=make_optimizer, loss_fn=loss_fn, learning_rates=learning_rates,
                hyperparams=hyperparams, combine=combine, seeds=seeds, data=data,
                mode_args=(steps, batch_size, epochs, start_epoch),
                divergence_threshold=divergence_threshold, chunk_size=chunk_size,
                vmap_width=vmap_width, devices=None if devices is None else tuple(devices),
                progress=progress, has_aux=has_aux, warm=warm, init_fn=init_fn,
                evaluation=(eval_fn, eval_data, eval_every, eval_mode), prune=prune,
                seed_quantile=seed_quantile, compute_dtype=compute_dtype, remat=remat)  # fmt: skip
    init_keys, data_keys = driver.seed_keys(key, check_seeds(seeds))  # checks the key too
    if init_fn is not None and not warm:
        seed_params = jax.vmap(init_fn)(init_keys)
        one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), seed_params)
    p = plan_for({**args, "params": one})
    cont = driver.warm_starts(p, state) if warm else None
    start_step = _start_step(state)
    shared = driver.consts(p, None if warm else seed_params, data, data_keys, start_step,
                           () if cont is None else cont.shared, eval_data)  # fmt: skip
    config = {**p.config, "key": _key_list(key), "start_step": start_step}
    if warm and data is not None and state.config.get("key") != config["key"]:
        raise InputValueError(
            "`key`: a mini-batch sweep continues with the key it started with "
            f"({state.config.get('key')}), so that its shuffles go on; got {config['key']}."
        )
    folder = driver.folder_of(checkpoint_dir)
    if folder is not None:
        driver.open_checkpoints(folder, config, shared, cont)
    bar = driver.progress_bar(progress, p.n_chunks * p.chunk * p.mode.steps, "sweep")
    try:
        if p.prune is None:
            outputs, resumed, rerun = driver.run(p, shared, cont, folder, p.like, bar)
        else:
            book, done = halving.run(p, shared, folder, bar)
    finally:
        if bar is not None:
            bar.close()
    config.update(chunks=p.n_chunks, platform=p.devices[0].platform)
    if p.prune is None:
        config.update(chunks_resumed=resumed, chunks_rerun_checked=rerun,
                      wall_s=time.perf_counter() - t_start)  # fmt: skip
        result = driver.assemble(p, outputs, config)
    else:
        config.update(done, wall_s=time.perf_counter() - t_start)
        joined = (book.params, jax.tree.unflatten(jax.tree.structure(p.like[1]), book.state),
                  book.losses, book.norms, book.dead_at, book.evals)  # fmt: skip
        result = driver.assemble_members(p, joined, config, book.pruned_at)
    result.call = (
        (make_optimizer, loss_fn, params, learning_rates, steps),
        dict(hyperparams=hyperparams, combine=combine, seeds=seeds, init_fn=init_fn, key=key,
             data=data, batch_size=batch_size, epochs=epochs,
             divergence_threshold=divergence_threshold, chunk_size=chunk_size,
             vmap_width=vmap_width, devices=devices, progress=progress, has_aux=has_aux,
             eval_fn=eval_fn, eval_data=eval_data, eval_every=eval_every, eval_mode=eval_mode,
             prune=prune, seed_quantile=seed_quantile, compute_dtype=compute_dtype,
             remat=remat),
    )  # fmt: skip
    return result


def _start_step(state: SweepResult | None) -> int:
    if state is None:
        return 0
    return int(state.config.get("start_step", 0)) + int(state.losses.shape[-1])


def _continued_epochs(state: SweepResult | None, data: Any) -> int:
    if state is None or data is None:
        return 0
    return int(state.config.get("start_epoch") or 0) + int(state.config.get("epochs") or 0)


def _key_list(key: Any) -> list:
    """The key as JSON (the checkpoint fingerprint holds it)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return list(_int_key_list(int(key), jax.config.jax_default_prng_impl))
    key = check_key(key)
    if jax.numpy.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).tolist()


@functools.lru_cache(maxsize=64)
def _int_key_list(key: int, impl: Any) -> tuple:
    return tuple(_key_list(jax.random.PRNGKey(key)))


__all__ = [
    "GridEdgeWarning",
    "SuccessiveHalving",
    "SweepResult",
    "auto_vmap_width",
    "successive_halving",
    "sweep",
]
