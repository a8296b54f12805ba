r"""Successive halving inside one sweep: the losers stop early, the survivors go on.

Successive halving (Jamieson & Talwalkar 2016; the rung schedule of Li et al. 2018,
Hyperband) gives every configuration a small budget, keeps the best :math:`1/\eta` of
them, multiplies the budget by :math:`\eta`, and repeats. Here a *rung* is a step count
:math:`r_i = m\,\eta^i < T` (``min_steps`` :math:`m`, ``steps`` :math:`T`); at rung
:math:`i` the configurations still running are ranked as :class:`SweepResult` ranks
them (best evaluation so far, else training loss; seeds averaged; diverged ones last)
and the best :math:`\lceil n/\eta \rceil` of the :math:`n` that entered the rung go on
from their exact params and optimizer state. The others keep what they reached:
``pruned_at`` is their rung, their histories are NaN after it.

How it runs
-----------
Between two rungs (a *segment*) the running members are packed into as few chunks of
the plan's size as hold them, spread evenly over the devices with the running members
first in every device's share, and each chunk runs in calls of ``min_steps`` steps (a
last, shorter call when ``steps`` is not a multiple of it) of one compiled program
whose loop over vmap groups stops after the last group holding a running member: as
the members fall, so does the compute, and the program is the same. A pruned sweep
compiles at most three programs (the first call, which initialises the optimizer
states; the calls that continue them; the shorter last call), plus their checked
variants when a member diverges, and a new continuing program if the set of optimizer
state leaves the members share changes.

Between calls the params and states stay on the devices; state leaves equal in every
member (a step count) are passed once, unbatched, as in an unpruned run, so a
survivor's numbers equal its unpruned run bit for bit at the same vmap width. At every
segment's end the outputs come to the host, are checked for divergence (a chunk with a
diverged member runs its segment again with the step-by-step checks, as an unpruned
chunk does), the rung prunes, and with ``checkpoint_dir`` the whole state is written, so
a killed pruned sweep resumes at its last finished segment with the same numbers.
A member that diverged is frozen, as in an unpruned sweep; it stops being computed at
the end of its segment (its results are final then).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._multihost import is_primary, place, to_host
from jaxopt_lab.checks import check_count
from jaxopt_lab.errors import InputTypeError, InputValueError
from jaxopt_lab.sweep import checkpoint, kernel
from jaxopt_lab.sweep.result import combine_seeds, member_scores


@dataclasses.dataclass(frozen=True)
class SuccessiveHalving:
    """The successive-halving schedule of :func:`successive_halving`."""

    eta: int = 3
    min_steps: int | None = None

    def rungs(self, steps: int, configs: int) -> tuple[tuple[int, int], ...]:
        """``((step, configurations kept), ...)`` for a sweep of ``steps`` steps over
        ``configs`` configurations: rungs at ``min_steps * eta**i < steps``, each keeping
        the best ``ceil(n / eta)`` of the ``n`` that reach it, until one is left."""
        m = self.min_steps if self.min_steps is not None else default_min_steps(
            steps, configs, self.eta
        )  # fmt: skip
        if m >= steps:
            raise InputValueError(
                f"`min_steps` ({m}) must be less than the sweep's steps ({steps}): the first "
                "rung comes before the end."
            )
        out, step, keep = [], m, configs
        while step < steps and keep > 1:
            keep = -(-keep // self.eta)
            out.append((step, keep))
            step *= self.eta
        return tuple(out)


def default_min_steps(steps: int, configs: int, eta: int) -> int:
    """``ceil(steps / eta**n)`` with ``n`` the rungs that leave one configuration of
    ``configs`` (at least one): the last rung then comes at about ``steps / eta``."""
    n = max(1, math.floor(math.log(max(configs, 1)) / math.log(eta) + 1e-9))
    return -(-steps // eta**n)


def successive_halving(eta: int = 3, min_steps: int | None = None) -> SuccessiveHalving:
    r"""Prune a sweep by successive halving: ``jol.sweep(..., prune=successive_halving())``.

    At the rungs ``min_steps * eta**i`` (before the sweep's last step) only the best
    ``ceil(n / eta)`` of the ``n`` configurations still running continue, ranked by
    their best evaluation so far (``eval_fn``; evaluated at every rung), else by their
    training loss (mini-batch: its mean over the last epoch's steps). Seeds of a
    configuration are pruned together, by their mean.

    Args:
      eta: the reduction factor, an int >= 2: a rung keeps ``1/eta`` of the
        configurations and the next rung comes ``eta`` times later.
      min_steps: the first rung, in steps (< the sweep's ``steps``). Default:
        ``ceil(steps / eta**n)`` with ``n = floor(log_eta(configurations))``, the rungs
        that leave one configuration, the last at about ``steps / eta``.

    References: K. Jamieson and A. Talwalkar, "Non-stochastic best arm identification
    and hyperparameter optimization", AISTATS 2016; L. Li et al., "Hyperband: a novel
    bandit-based approach to hyperparameter optimization", JMLR 18, 2018.
    """
    if isinstance(eta, bool) or not isinstance(eta, (int, np.integer)):
        raise InputTypeError(f"`eta` must be an int >= 2, got {eta!r}.")
    if eta < 2:
        raise InputValueError(f"`eta` must be an int >= 2, got {eta}.")
    if min_steps is not None:
        min_steps = check_count("min_steps", min_steps)
    return SuccessiveHalving(int(eta), min_steps)


def check_prune(prune: Any) -> SuccessiveHalving | None:
    if prune is None or isinstance(prune, SuccessiveHalving):
        return prune
    raise InputTypeError(
        f"`prune` must be None or jol.successive_halving(...), got {type(prune).__name__}."
    )


# --------------------------------------------------------------------------------------
# The book: every member's state on the host, between segments
# --------------------------------------------------------------------------------------


class Book(NamedTuple):
    """Every member's arrays on the host (leading axis: the member table)."""

    params: Any
    state: list  # the state's leaves
    losses: np.ndarray  # (M, steps), NaN where not run
    norms: np.ndarray
    evals: np.ndarray | None  # (M, E)
    dead_at: np.ndarray  # (M,) int
    pruned_at: np.ndarray  # (M,) int, -1 while running
    steps_run: np.ndarray  # (M,) member-steps computed
    segment: np.ndarray  # () the segments finished
    shared: np.ndarray  # (state leaves,) bool: leaves the members share (empty: not known yet)


def _empty_book(plan) -> Book:
    m, steps = plan.size, plan.mode.steps
    like_params, like_state = plan.like

    def zeros(s):
        return np.zeros((m,) + tuple(s.shape), s.dtype)

    nan = np.full((m, steps), np.nan, plan.loss_dtype)
    float_dtype = jax.dtypes.canonicalize_dtype(np.float64)  # an evaluation's, as unpruned
    evals = (
        None if plan.eval_steps is None else np.full((m, plan.eval_steps.size), np.nan, float_dtype)
    )
    return Book(jax.tree.map(zeros, like_params), [zeros(s) for s in jax.tree.leaves(like_state)],
                nan, nan.copy(), evals, np.full(m, -1, np.int64), np.full(m, -1, np.int64),
                np.zeros(m, np.int64), np.zeros((), np.int64), np.zeros(0, bool))  # fmt: skip


def _book_arrays(book: Book) -> dict[str, np.ndarray]:
    arrays = {f"params/{i}": x for i, x in enumerate(jax.tree.leaves(book.params))}
    arrays.update({f"state/{i}": x for i, x in enumerate(book.state)})
    arrays.update(losses=book.losses, norms=book.norms, dead_at=book.dead_at,
                  pruned_at=book.pruned_at, steps_run=book.steps_run, segment=book.segment, shared=book.shared)  # fmt: skip
    if book.evals is not None:
        arrays["evals"] = book.evals
    return arrays


def _book_from(arrays: dict[str, np.ndarray], plan) -> Book:
    treedef = jax.tree.structure(plan.like[0])
    params = jax.tree.unflatten(treedef, [arrays[f"params/{i}"] for i in range(treedef.num_leaves)])
    n_state = len(jax.tree.leaves(plan.like[1]))
    return Book(params, [arrays[f"state/{i}"] for i in range(n_state)], arrays["losses"],
                arrays["norms"], arrays.get("evals"), arrays["dead_at"], arrays["pruned_at"],
                arrays["steps_run"], arrays["segment"], arrays["shared"])  # fmt: skip


def _segment_path(folder: str, s: int) -> str:
    return os.path.join(folder, f"segment_{s:03d}.npz")


def _resumed(plan, folder: str | None, n_segments: int) -> tuple[Book, int]:
    """The book after the last segment a checkpoint folder holds, and how many
    segments that is (0 and an empty book without one)."""
    if folder is not None:
        for s in range(n_segments - 1, -1, -1):
            path = _segment_path(folder, s)
            if checkpoint.agreed_exists(path, folder):
                return _book_from(
                    checkpoint.read_arrays(path, "jaxopt_lab.SweepSegment"), plan
                ), s + 1
    return _empty_book(plan), 0


# --------------------------------------------------------------------------------------
# Running a segment
# --------------------------------------------------------------------------------------


def _layout(plan, members: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """``(slots, active)``: the member in each of a chunk's slots and which slots run.
    The members are dealt round-robin to the devices, first in each device's share;
    the other slots repeat a running member (finite values, never run or read)."""
    n_dev = len(plan.devices)
    local = chunk // n_dev
    slots = np.full(chunk, members[0], np.int64)
    active = np.zeros(chunk, bool)
    for d in range(n_dev):
        mine = members[d::n_dev]
        slots[d * local : d * local + mine.size] = mine
        active[d * local : d * local + mine.size] = True
    return slots, active


@functools.partial(jax.jit, static_argnames="shared")
def _split_state(leaves: tuple, active, *, shared: tuple[bool, ...]):
    """The next call's state: the leaves every member owns, one copy of the shared ones,
    and whether the shared ones are still equal in every running member."""
    own = tuple(x for x, s in zip(leaves, shared, strict=True) if not s)
    common = tuple(x[0] for x, s in zip(leaves, shared, strict=True) if s)

    def equal(x):
        same = (x == x[:1]) | (jnp.isnan(x) & jnp.isnan(x[:1]))
        return jnp.all(same | ~active.reshape((-1,) + (1,) * (x.ndim - 1)))

    ok = [equal(x) for x, s in zip(leaves, shared, strict=True) if s]
    return own, common, jnp.stack(ok) if ok else jnp.ones((0,), bool)


def _shared_flags(state: list, rows: np.ndarray) -> tuple[bool, ...]:
    """Which state leaves hold the same value in every member of ``rows``."""
    return tuple(bool((x[rows] == x[rows[:1]]).all()) for x in state)


class _Calls(NamedTuple):
    lo: int  # the segment's first step (local to this sweep)
    lengths: tuple[int, ...]  # steps per call


def _calls(lo: int, hi: int, unit: int) -> _Calls:
    full, rest = divmod(hi - lo, unit)
    return _Calls(lo, (unit,) * full + ((rest,) if rest else ()))


def _spec(plan, steps: int, cold: bool, shared: tuple[bool, ...], checked: bool):
    block = plan.eval_every or steps
    spec = plan.spec._replace(steps=steps, block=min(block, steps), progress=False,
                              active=True, checked=checked)  # fmt: skip
    if cold:
        return spec
    return spec._replace(warm=True, state_def=jax.tree.structure(plan.like[1]),
                         shared_state=shared, per_seed_params=False)  # fmt: skip


def _run_chunk_segment(plan, consts, book: Book, slots, active, calls: _Calls, checked, flags,
                       programs: set):  # fmt: skip
    """One chunk through one segment: its calls chained on the devices. Returns the
    host outputs ``(params, state leaves, losses, norms, dead_at, evals)`` and whether
    the shared state leaves stayed shared."""
    sharding = plan.member_sharding
    m = plan.members
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    head = place((m.lrs[slots].astype(dtype), {k: v[slots].astype(dtype) for k, v in m.hps.items()},
                  m.seed_index[slots].astype(np.int32), active), sharding, check_same=False)  # fmt: skip
    lrs, hps, seed_index, act = head
    cold = calls.lo == 0
    if cold:
        start = place(plan.param_index[slots].astype(np.int32), sharding, check_same=False)
        common = ()
    else:
        own = [x[slots] for x, s in zip(book.state, flags, strict=True) if not s]
        start = place((jax.tree.map(lambda x: x[slots], book.params), own,
                       book.dead_at[slots].astype(np.int32)), sharding, check_same=False)  # fmt: skip
        common = place(tuple(x[slots[0]] for x, s in zip(book.state, flags, strict=True) if s),
                       plan.sharding, check_same=False)  # fmt: skip
    hist, oks, t = [], [], calls.lo
    for n in calls.lengths:
        spec = _spec(plan, n, cold and t == 0, flags, checked)
        programs.add(spec)
        part = consts._replace(t0=np.int32(consts.t0 + t), state=common)
        if plan.mode.minibatch:
            part = part._replace(order=consts.order[:, t : t + n])
        out = kernel.run_chunk((lrs, hps, seed_index, start, act), part, spec=spec)
        params, state, losses, norms, dead_at, evals = out
        leaves = tuple(jax.tree.leaves(state))
        if flags is None:  # a cold start: which state leaves the members share
            flags = _shared_flags([np.asarray(x) for x in to_host(leaves)], np.flatnonzero(active))
        own, common, ok = _split_state(leaves, act, shared=flags)
        start, t = (params, list(own), dead_at), t + n
        hist.append((losses, norms, evals))
        oks.append(ok)
    losses, norms, evals = (None if h[0] is None else np.concatenate(h, axis=-1)
                            for h in zip(*to_host(hist), strict=True))  # fmt: skip
    kept = bool(all(np.all(o) for o in to_host(oks)))
    params, leaves, dead_at = to_host((params, list(leaves), dead_at))
    return (params, leaves, losses, norms, dead_at, evals), kept, flags


def _clean(out, active) -> bool:
    params, _, _, _, dead_at, _ = out
    rows = np.flatnonzero(active)
    return bool((dead_at[rows] < 0).all()) and all(
        bool(np.isfinite(x[rows]).all()) for x in jax.tree.leaves(params)
    )


def _flags(book: Book, members: np.ndarray) -> tuple[bool, ...] | None:
    """The state leaves passed once for ``members``: those the first cold chunk found
    shared (a property of the optimizer: a step count), still equal in these members;
    None until known (the first call of a cold start finds them). Found in one member,
    every leaf would look shared, so only a chunk of several members sets them (chunks
    of one member run one member unbatched, where passing a leaf once changes nothing)."""
    if book.shared.size == 0:
        return None if book.segment == 0 else _shared_flags(book.state, members)
    equal = _shared_flags(book.state, members) if book.segment > 0 else book.shared
    return tuple(bool(a and b) for a, b in zip(book.shared, equal, strict=True))


def _run_segment_chunk(plan, consts, book, members, calls, flags, programs):
    """One chunk's segment: the fast path, the checked re-run when a member diverged,
    and a re-run passing every state leaf per member when a leaf the members shared at
    the start stopped being shared (a per-member leaf whose values happened to agree:
    that shows only after running). Writes into ``book``; returns the shared leaves."""
    slots, active = _layout(plan, members, plan.chunk)
    checked = False
    while True:
        out, kept, used = _run_chunk_segment(plan, consts, book, slots, active, calls, checked,
                                             flags, programs)  # fmt: skip
        if not kept:
            flags = tuple(False for _ in used)
        elif not checked and not _clean(out, active):
            checked, flags = True, used
        else:
            break
    _write(plan, book, out, slots, active, calls)
    return used


def _write(plan, book: Book, out, slots, active, calls: _Calls) -> None:
    params, leaves, losses, norms, dead_at, evals = out
    pos = np.flatnonzero(active)
    rows = slots[pos]
    lo, hi = calls.lo, calls.lo + sum(calls.lengths)
    for dst, src in zip(jax.tree.leaves(book.params), jax.tree.leaves(params), strict=True):
        dst[rows] = src[pos]
    for dst, src in zip(book.state, leaves, strict=True):
        dst[rows] = src[pos]
    book.losses[rows, lo:hi] = losses[pos]
    book.norms[rows, lo:hi] = norms[pos]
    if evals is not None:
        e = (plan.eval_steps > lo) & (plan.eval_steps <= hi)
        book.evals[np.ix_(rows, np.flatnonzero(e))] = evals[pos]
    book.dead_at[rows] = dead_at[pos]
    book.steps_run[rows] += hi - lo


# --------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------


def _prune(plan, book: Book, step: int, keep: int, running: np.ndarray) -> None:
    """The rung at ``step``: the best ``keep`` configurations still running go on."""
    seeds = 1 if plan.seeds is None else plan.seeds.size
    score = member_scores(book.losses, book.evals, plan.eval_mode, plan.steps_per_epoch,
                          np.full(plan.size, step))  # fmt: skip
    dead = book.dead_at >= 0
    score = np.where(dead | ~np.isfinite(score), np.inf, score).reshape(-1, seeds)
    with np.errstate(invalid="ignore"):
        combined = combine_seeds(score, plan.config.get("seed_quantile"))
    config_score = np.where(np.isinf(score).any(-1), np.inf, combined)
    alive = running.reshape(-1, seeds).all(-1) & np.isfinite(config_score)
    order = np.argsort(np.where(alive, config_score, np.inf), kind="stable")
    kept = np.zeros(config_score.size, bool)
    kept[order[: min(keep, int(alive.sum()))]] = True
    kept = np.repeat(kept, seeds)
    dropped = running & ~kept & ~dead
    book.pruned_at[dropped] = step
    running &= kept


def run(plan, consts, folder: str | None, bar) -> tuple[Book, dict[str, Any]]:
    """Every segment of a pruned sweep; returns the book and what to add to the config."""
    rungs = plan.rungs
    bounds = [0, *(s for s, _ in rungs), plan.mode.steps]
    book, done = _resumed(plan, folder, len(bounds) - 1)
    programs: set = set()
    if bar is not None:  # the member-steps planned (fewer when members diverge)
        seeds = 1 if plan.seeds is None else plan.seeds.size
        counts = [plan.size // seeds, *(k for _, k in rungs)]
        bar.total = seeds * sum(
            c * (b - a) for c, a, b in zip(counts, bounds[:-1], bounds[1:], strict=True)
        )
        bar.update(int(book.steps_run.sum()))
    for s in range(done, len(bounds) - 1):
        running = (book.pruned_at < 0) & (book.dead_at < 0)
        members = np.flatnonzero(running)
        if members.size == 0:  # every member diverged
            break
        calls = _calls(bounds[s], bounds[s + 1], plan.unit)
        for part in np.array_split(members, -(-members.size // plan.chunk)):
            used = _run_segment_chunk(plan, consts, book, part, calls, _flags(book, part),
                                      programs)  # fmt: skip
            if book.shared.size == 0 and part.size > 1:
                book = book._replace(shared=np.asarray(used, bool))
            if bar is not None:
                bar.update(part.size * (bounds[s + 1] - bounds[s]))
        if s < len(rungs):
            running = (book.pruned_at < 0) & (book.dead_at < 0)
            _prune(plan, book, *rungs[s], running)
        book = book._replace(segment=np.asarray(s + 1))
        if folder is not None and is_primary():
            checkpoint.write_arrays(_segment_path(folder, s), "jaxopt_lab.SweepSegment",
                                    _book_arrays(book))  # fmt: skip
    extra = {"member_steps": int(book.steps_run.sum()), "segments_resumed": done,
             "programs": len(programs)}  # fmt: skip
    return book, extra
