"""The sweep's pure JAX: a member, a group of members in lockstep, a chunk of groups.

A *member* is one training run (one learning rate, hyperparameters and seed) on the
iteration core (``jaxopt_lab._iterate``): its steps are observe-advance steps, wrapped
by ``freezing`` so that a diverging member keeps its last finite params. A
*group* of ``width`` members runs vmapped; a device runs its groups one after another
(``lax.map``); a *chunk* is split across the devices of a mesh with ``shard_map``. One
chunk is one call of :func:`run_chunk`, the sweep's only compiled program.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from jaxopt_lab import _iterate as core
from jaxopt_lab.loops import epoch_batches

AXIS = "members"


class Spec(NamedTuple):
    """Everything static about a chunk program (its jit cache key)."""

    make_optimizer: Callable
    loss_fn: Callable
    steps: int
    minibatch: bool
    has_aux: bool
    width: int
    block: int  # steps between progress callbacks (== steps when quiet)
    progress: bool
    mesh: Mesh | None
    checked: bool = True  # freeze diverging members step by step (else: the fast path)
    per_seed_params: bool = False  # seed_params has a leading seed axis (init_fn)
    warm: bool = False  # members start from given params, states and divergence steps
    # warm: the state's structure, and which leaves all members share (passed once)
    state_def: Any = None
    shared_state: tuple[bool, ...] = ()
    # evaluation after every block of steps: eval_fn(params[, eval_data]) -> scalar
    eval_fn: Callable | None = None
    eval_with_data: bool = False
    # members carry a trailing mask: only the groups holding active members run (a
    # pruned sweep's program, reused at any number of survivors)
    active: bool = False


class Consts(NamedTuple):
    """What every member of a chunk shares (replicated on every device)."""

    seed_params: Any  # the initial params (a leading seed axis with per_seed_params)
    order: Any  # (S, steps, batch) example indices per seed, or None (full batch)
    data: Any
    threshold: jax.Array  # a loss above it counts as divergence
    t0: jax.Array  # the global index of the first step (steps done before a warm start)
    state: tuple = ()  # warm: the state leaves every member shares
    eval_data: Any = None


progress_bars: list[Any] = []


def progress_hook(n: Any) -> None:
    """Host callback: advance the active progress bar by ``n`` member-steps."""
    if progress_bars:
        progress_bars[-1].update(int(n))


def _start(spec: Spec, opt, consts: Consts, start):
    """A member's params, optimizer state and divergence step before its first step."""
    if spec.warm:
        # Leaves all members share (a step count) come unbatched, as in a cold start,
        # where init under vmap leaves them so: vmapped, XLA may round functions of
        # them (a bias correction's power) differently.
        p0, own, dead0 = start
        own, shared = iter(own), iter(consts.state)
        leaves = [next(shared) if is_shared else next(own) for is_shared in spec.shared_state]
        return p0, jax.tree.unflatten(spec.state_def, leaves), dead0
    p0 = consts.seed_params
    if spec.per_seed_params:
        p0 = jax.tree.map(lambda x: x[start], p0)
    return p0, opt.init(p0), jnp.int32(-1)


def _member(spec: Spec, consts: Consts, lr, hp, seed, start):
    """One member's whole run; returns its final params, state, histories, dead_at.

    Everything runs inside the vmapped function, so state that no member-specific value
    touches (an optimizer's step count, hence its bias corrections) stays one scalar for
    the group instead of one per member."""
    opt = spec.make_optimizer(lr, **hp)
    p0, s0, dead0 = _start(spec, opt, consts, start)
    batch_of = None
    if spec.minibatch:
        # One seed (a static shape): every member sees the same batch. Indexed by the
        # member's seed, a vmapped value, the gather would copy the batch once per
        # member and turn the shared first-layer product X @ [W1_1 .. W1_K] (one GEMM)
        # into K batched ones; a constant index keeps the batch unbatched.
        one_seed = consts.order.shape[0] == 1

        def batch_of(t):
            idx = consts.order[0, t] if one_seed else consts.order[seed, t]
            return jax.tree.map(lambda x: x[idx], consts.data)

    inner = core.stepper(opt, spec.loss_fn, spec.has_aux, s0, batch_of)
    first = None if batch_of is None else (batch_of(0),)
    carry = core.start(inner, spec.loss_fn, spec.has_aux, p0, s0, first or (), warm=spec.warm)
    step = core.freezing(inner, consts.threshold, checked=spec.checked)

    def after(carry, n):
        if spec.progress:  # under vmap: once per member, each adding its own n steps
            jax.debug.callback(progress_hook, n)
        if spec.eval_fn is None:
            return ()
        return (_evaluate(spec, consts, carry[0].params),)  # after every eval_every steps

    carry, hist = core.run_blocks(step, (carry, dead0), spec.steps, spec.block,
                                  lambda ts: (consts.t0 + ts, ts), after)  # fmt: skip
    (final, dead_at) = carry
    evals = hist[2] if spec.eval_fn is not None else None
    return final.params, final.state, hist[0], hist[1], dead_at, evals


def _evaluate(spec: Spec, consts: Consts, params) -> jax.Array:
    args = (consts.eval_data,) if spec.eval_with_data else ()
    return jnp.asarray(spec.eval_fn(params, *args), jnp.result_type(float))


def _lockstep(fn: Callable, width: int) -> Callable:
    """``jax.vmap(fn)``; for a width of 1 the unbatched ``fn`` itself, because XLA:CPU
    runs a batch-of-one matmul slower than the plain one."""
    if width > 1:
        return jax.vmap(fn)

    def one(*args):
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return one


def _run_local(spec: Spec, members, consts: Consts):
    """A device's share of a chunk: groups of ``width`` members one after another."""
    if spec.active:
        members, active = members[:-1], members[-1]
    groups = jax.tree.leaves(members)[0].shape[0] // spec.width
    member = functools.partial(_member, spec, consts)

    def group(m):
        return _lockstep(member, spec.width)(*m)

    if spec.active:
        return _active_groups(group, members, active, groups, spec.width)
    if groups == 1:
        return group(members)
    as_groups = jax.tree.map(lambda x: x.reshape((groups, spec.width) + x.shape[1:]), members)
    out = jax.lax.map(group, as_groups)
    return jax.tree.map(lambda x: x.reshape((groups * spec.width,) + x.shape[2:]), out)


def _active_groups(group: Callable, members, active, groups: int, width: int):
    """Only the groups that hold active members run, one after another: the active
    members come first in a device's share, and the loop's trip count is computed from
    them, so a shrinking set of members costs less without a new program. The other
    groups' outputs are zeros, never read."""
    as_groups = jax.tree.map(lambda x: x.reshape((groups, width) + x.shape[1:]), members)
    n_active = (jnp.sum(active.astype(jnp.int32)) + width - 1) // width
    like = jax.eval_shape(group, jax.tree.map(lambda x: x[0], as_groups))
    out = jax.tree.map(lambda s: jnp.zeros((groups,) + s.shape, s.dtype), like)

    def one(g, out):
        done = group(jax.tree.map(lambda x: x[g], as_groups))
        return jax.tree.map(lambda o, d: o.at[g].set(d), out, done)

    out = jax.lax.fori_loop(0, n_active, one, out)
    return jax.tree.map(lambda x: x.reshape((groups * width,) + x.shape[2:]), out)


def _shard_map(fn, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map  # jax < 0.6

    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


@functools.partial(jax.jit, static_argnames=("spec",))
def run_chunk(members, consts: Consts, *, spec: Spec):
    """One chunk: ``members`` = ``(lrs, hps, seed_index, start)``, each with a leading
    member axis (``start``: the param index per member, or with ``spec.warm`` the
    params, states and divergence steps to continue from; with ``spec.active`` a fifth
    entry, the mask of members to run, which come first in each device's share).
    Returns every member's
    ``(params, state, losses, grad_norms, dead_at, evals)`` (``evals`` None without an
    ``eval_fn``)."""
    local = functools.partial(_run_local, spec)
    if spec.mesh is None:
        return local(members, consts)
    split, whole = PartitionSpec(AXIS), PartitionSpec()
    return _shard_map(local, spec.mesh, in_specs=(split, whole), out_specs=split)(members, consts)


@jax.jit
def seed_keys(key, seeds):
    """``(init_keys, data_keys)``, one per seed: ``split(fold_in(key, seed))``, or
    ``split(key)`` for the one implicit seed."""
    keys = key[None] if seeds is None else jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 0], pairs[:, 1]


@functools.partial(jax.jit, static_argnames=("n", "batch_size", "epochs"))
def batch_orders(keys, start_epoch, *, n: int, batch_size: int, epochs: int):
    """``(S, epochs * (n // batch_size), batch_size)``: every seed's example order for
    epochs ``start_epoch, ...``, the same as :func:`jaxopt_lab.fit` draws from that key."""

    def one(key):
        epochs_run = start_epoch + jnp.arange(epochs)
        per_epoch = jax.vmap(lambda e: epoch_batches(key, e, n, batch_size))(epochs_run)
        return per_epoch.reshape(-1, batch_size)

    return jax.vmap(one)(keys)
