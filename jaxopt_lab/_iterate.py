r"""The iteration core: one step, one runner, for every loop in the package.

A run is a sequence of *observe* and *advance*:

* ``observe(carry, x)`` gives the loss, gradient and aux at ``carry.params``
  (:class:`Observation`). A first-order optimizer evaluates ``loss_fn`` there; an
  optimizer that evaluates the loss itself (a quasi-Newton method, a chain ending in a
  line search) already did, at the end of its last update, and the observation is read
  from the carry at no cost.
* ``advance(carry, obs, x)`` makes one update of the optimizer from that observation.

``x`` is the per-step input: the step index, or the batch indices of a mini-batch step.
:class:`Stepper` holds the pair; :func:`stepper` builds it for an optimizer.

Two runners record the histories (the loss and gradient norm before each update):

* :func:`run_fixed`: ``lax.scan`` over the per-step inputs, a fixed number of updates;
* :func:`run_until`: ``lax.while_loop`` that stops on a :class:`Status` (the gradient
  norm reached ``tol``, the line search can make no further progress, a non-finite
  value, or the step budget), checked before an update, so no update is thrown away.

``minimize``, ``fit``, ``trajectory`` and every sweep member run through them. Loop
features are wrappers of a step (:func:`freezing`: a sweep member that diverges keeps
its last finite carry), never another copy of the loop.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from jaxopt_lab._control import nested, while_loop
from jaxopt_lab._tree import Evaluated, all_finite, global_norm
from jaxopt_lab.base import accepts_extra_args, apply_updates

Params = Any


class Status(enum.IntEnum):
    """Why a run stopped; the codes are SciPy's (``scipy.optimize.minimize``'s BFGS)."""

    CONVERGED = 0  # the gradient norm fell to tol
    MAX_STEPS = 1  # the step budget was spent
    NO_PROGRESS = 2  # the line search found no acceptable step (precision limit)
    NONFINITE = 3  # the loss or the gradient is not finite

    @property
    def message(self) -> str:
        return MESSAGES[self]


MESSAGES = {
    Status.CONVERGED: (
        "Converged: the gradient norm is at most tol (for a bounded solver the projected "
        "gradient's; for least_squares, its ftol, xtol or gtol test holds)."
    ),
    Status.MAX_STEPS: "The step budget was reached.",
    Status.NO_PROGRESS: (
        "No further progress possible: the line search found no step that lowers the "
        "loss beyond rounding (precision loss; for least_squares, its tests hold only at "
        "machine precision, or no trial step was accepted)."
    ),
    Status.NONFINITE: "The loss or the gradient is not finite.",
}


def status_message(status: Any) -> Any:
    """The message of a status code; an array of messages for a batch of codes."""
    codes = np.asarray(status)
    if codes.ndim == 0:
        return MESSAGES[Status(int(codes))]
    return np.vectorize(lambda c: MESSAGES[Status(int(c))], otypes=[object])(codes)


class Observation(NamedTuple):
    loss: jax.Array
    grads: Params
    aux: Any


class Carry(NamedTuple):
    """What the loop carries between updates. ``last``: the observation at ``params``
    for an optimizer that evaluates itself, else the aux of the last evaluation."""

    params: Params
    state: Any
    last: Any


class Stepper(NamedTuple):
    observe: Callable[[Carry, Any], Observation]
    advance: Callable[[Carry, Observation, Any], Carry]
    reuses: bool  # observing is free: the optimizer evaluated the loss itself


# --------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------


def value_and_grad(loss_fn: Callable, has_aux: bool, params: Params, args: tuple) -> Observation:
    if has_aux:
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    else:
        (loss, grads), aux = jax.value_and_grad(loss_fn)(params, *args), None
    return Observation(loss, grads, aux)


def update(optimizer, loss_fn, has_aux, params, state, obs: Observation, args: tuple):
    """One optimizer update from an observation; the new params and state. Optimizers
    that take extra arguments also get ``value``, ``grad`` and ``value_fn``."""
    if accepts_extra_args(optimizer.update):

        def value_fn(p):
            out = loss_fn(p, *args)
            return out[0] if has_aux else out

        updates, state = optimizer.update(
            obs.grads, state, params, value=obs.loss, grad=obs.grads, value_fn=value_fn
        )
    else:
        updates, state = optimizer.update(obs.grads, state, params)
    return apply_updates(params, updates), state


def evaluated_state(state: Any) -> Evaluated | None:
    """The :class:`~jaxopt_lab._tree.Evaluated` record of an optimizer that evaluates the
    loss itself (a quasi-Newton method, or a chain ending in a line search): the value
    and gradient at the params its last update leads to. None for other optimizers.
    Only the last transform of a chain counts, since a transform after it would move
    the params away from the evaluated point."""
    while True:
        ev = getattr(state, "evaluated", None)
        if isinstance(ev, Evaluated):
            return ev
        if type(state) is tuple and state:  # a chain's state: look at its last transform
            state = state[-1]
            continue
        return None


def stepper(optimizer, loss_fn, has_aux: bool, state: Any, batch_of: Callable | None = None):
    """The observe/advance pair for ``optimizer`` on ``loss_fn``. ``batch_of(x)`` gives
    the batch (the extra argument of ``loss_fn``) for the per-step input ``x``; without
    it ``loss_fn`` takes the params alone. ``state`` (an initial optimizer state) tells
    whether the optimizer evaluates itself. With mini-batches every step evaluates its
    own batch: the optimizer's evaluation belongs to the previous batch."""
    args_of = (lambda x: ()) if batch_of is None else (lambda x: (batch_of(x),))
    reuses = batch_of is None and evaluated_state(state) is not None

    def observe(c: Carry, x) -> Observation:
        if reuses:
            return c.last
        return value_and_grad(loss_fn, has_aux, c.params, args_of(x))

    def advance(c: Carry, obs: Observation, x) -> Carry:
        params, state = update(optimizer, loss_fn, has_aux, c.params, c.state, obs, args_of(x))
        if reuses:
            ev = evaluated_state(state)
            return Carry(params, state, Observation(ev.value.astype(obs.loss.dtype), ev.grad, None))
        return Carry(params, state, obs.aux)

    return Stepper(observe, advance, reuses)


def start(step: Stepper, loss_fn, has_aux, params, state, args0: tuple = (), warm=False) -> Carry:
    """The carry before the first update. An optimizer that evaluates itself is
    evaluated once here, unless ``warm`` and ``state`` already holds its evaluation at
    ``params`` (a warm start from a previous run's final state). A constrained solver
    (its record has a ``projection``) starts from the projected params, as SciPy's
    L-BFGS-B does."""
    projection = _projection_of(state)
    if projection is not None:
        params = projection(params)
    if not step.reuses:
        aux = None
        if has_aux:
            aux = jax.eval_shape(loss_fn, params, *args0)[1]
            aux = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux)
        return Carry(params, state, aux)

    def fresh():
        obs = value_and_grad(loss_fn, has_aux, params, args0)
        return Observation(obs.loss, obs.grads, None)

    if not warm:
        return Carry(params, state, fresh())
    ev = evaluated_state(state)
    dtype = jax.eval_shape(fresh).loss.dtype

    def known():
        return Observation(ev.value.astype(dtype), ev.grad, None)

    # init leaves the count at 0: the record is empty until the first update
    return Carry(params, state, jax.lax.cond(ev.num_fun_evals > 0, known, fresh))


def _projection_of(state: Any) -> Any:
    return getattr(evaluated_state(state), "projection", None)


def norm_of(obs: Observation, carry: Carry | None = None) -> jax.Array:
    """The stationarity measure at the observed params: the gradient norm, or for a
    constrained solver (given its ``carry``) the projected-gradient norm
    ||P(x - g) - x||, zero exactly at a stationary point of the
    constrained problem."""
    if not isinstance(carry, Carry) and isinstance(carry, tuple) and carry:
        carry = carry[0]  # a sweep member's carry, wrapped by `freezing`
    projection = _projection_of(carry.state) if isinstance(carry, Carry) else None
    if projection is None:
        return global_norm(obs.grads).astype(obs.loss.dtype)
    x = carry.params
    moved = projection(jax.tree.map(lambda p, g: p - g, x, obs.grads))
    return global_norm(jax.tree.map(lambda a, p: a - p, moved, x)).astype(obs.loss.dtype)


def freezing(step: Stepper, threshold: jax.Array, checked: bool = True) -> Stepper:
    """``step`` for a sweep member that may diverge. The carry becomes ``(carry,
    dead_at)`` and the per-step input ``(t, x)``: ``x`` goes to ``step``, ``t`` is the
    step's global index. At the first step whose loss or gradient is not finite, whose
    loss exceeds ``threshold``, or whose update makes a param non-finite, ``dead_at``
    becomes ``t`` and the params stay as they were from then on (the optimizer state of
    a dead member runs on, meaningless, and is never read). ``checked=False`` is the
    fast path: the same carry and inputs, no test (``dead_at`` stays as it came)."""

    def observe(c, x):
        return step.observe(c[0], x[1])

    def advance(c, obs, x):
        inner, dead_at = c
        new = step.advance(inner, obs, x[1])
        ok = jnp.isfinite(obs.loss) & jnp.isfinite(norm_of(obs)) & (obs.loss <= threshold)
        alive = dead_at < 0
        if not checked:  # note the first bad step, freeze nothing
            return new, jnp.where(alive & ~ok, x[0], dead_at)
        ok = ok & all_finite(new.params)
        # Only the params are frozen: the rest of a dead member's carry is never used
        # again, and selecting it too would batch values the members share (a step
        # count) under vmap, which rounds some functions of them differently.
        params = jax.tree.map(lambda n, o: jnp.where(ok & alive, n, o), new.params, inner.params)
        return new._replace(params=params), jnp.where(alive & ~ok, x[0], dead_at)

    return Stepper(observe, advance, step.reuses)


# --------------------------------------------------------------------------------------
# The runners
# --------------------------------------------------------------------------------------


def loss_and_norm(carry, obs: Observation):
    """The default record of a step: the loss and gradient norm before the update."""
    return obs.loss, norm_of(obs, carry)


def run_fixed(step: Stepper, carry, xs, record: Callable = loss_and_norm, length=None):
    """``lax.scan`` of observe-record-advance over the per-step inputs ``xs`` (or
    ``length`` steps with no input); returns the final carry and the stacked records."""

    def body(c, x):
        obs = step.observe(c, x)
        rec = record(c, obs)
        return step.advance(c, obs, x), rec

    return jax.lax.scan(body, carry, xs, length=length)


def run_blocks(step: Stepper, carry, steps: int, block: int, xs_of: Callable, after=None):
    """:func:`run_fixed` over ``steps`` steps in blocks of ``block`` (the last block may
    be shorter; one block runs without a loop around it). ``xs_of(ts)`` gives the
    per-step inputs of the step indices ``ts``. ``after(carry, n)``, called after each
    block of ``n`` steps, returns a tuple of values to record once per block (an
    evaluation, or nothing after a progress callback); they come back stacked, one per
    block, after the per-step records."""

    def run_block(carry, t, n):
        carry, hist = run_fixed(step, carry, xs_of(t + jnp.arange(n, dtype=jnp.int32)))
        extra = () if after is None else tuple(jnp.asarray(x)[None] for x in after(carry, n))
        return carry, (*hist, *extra)

    n_blocks, rest = divmod(steps, block)
    if n_blocks == 1:
        carry, hist = run_block(carry, jnp.int32(0), block)
    else:
        starts = jnp.arange(n_blocks, dtype=jnp.int32) * block
        carry, hist = jax.lax.scan(lambda c, t: run_block(c, t, block), carry, starts)
        hist = jax.tree.map(lambda h: h.reshape(-1), hist)
    if rest:
        carry, tail = run_block(carry, jnp.int32(n_blocks * block), rest)
        hist = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), hist, tail)
    return carry, hist


def fixed_status(losses: jax.Array, norms: jax.Array) -> jax.Array:
    """A fixed-length run ends on its step budget, or non-finite when its last recorded
    loss or gradient norm is not finite (a run that went non-finite stays so: NaN
    propagates through the updates). Read from the last entries only: reducing the whole
    history costs a chain of small kernels on XLA:CPU, 0.1 ms on a 10,000-step run."""
    finite = jnp.isfinite(losses[-1]) & jnp.isfinite(norms[-1])
    return jnp.where(finite, Status.MAX_STEPS, Status.NONFINITE).astype(jnp.int32)


class Until(NamedTuple):
    """What :func:`run_until` returns."""

    carry: Carry
    losses: jax.Array  # (steps,), padded after num_steps with the last recorded value
    norms: jax.Array
    num_steps: jax.Array  # updates made
    status: jax.Array
    num_observed: jax.Array  # evaluations made by a first-order method
    extra: Any = None  # what run_until's `finish` returned


def _stops(obs: Observation, norm, stalled, tol) -> jax.Array:
    """Whether a run stops at this observation (the budget aside)."""
    stop = ~jnp.isfinite(obs.loss) | ~jnp.isfinite(norm) | stalled
    return stop if tol is None else stop | (norm <= tol)


def _status(obs: Observation, norm, stalled, observed, tol) -> jax.Array:
    """The status of a stopped run, from its last observation and the gradient norm the
    loop computed from it (computed again, XLA may round it otherwise; ``observed``:
    False when a first-order run spent its budget and the last params were not
    evaluated)."""
    s = jnp.where(stalled, Status.NO_PROGRESS, Status.MAX_STEPS)
    s = jnp.where(~jnp.isfinite(obs.loss) | ~jnp.isfinite(norm), Status.NONFINITE, s)
    if tol is not None:
        s = jnp.where(norm <= tol, Status.CONVERGED, s)
    return jnp.where(observed, s, Status.MAX_STEPS).astype(jnp.int32)


def _chunk_size(steps: int, dtype: Any) -> int:
    """History slots recorded per inner loop of :func:`run_until`: 16, at most 512
    bytes. XLA:CPU runs a loop body's kernels one after the other, inline, only when
    every buffer they touch is at most 512 bytes; one larger buffer (a ``(steps + 1,)``
    history from 64 float64 steps up) sends every kernel of every iteration through its
    thread pool, which cost 2.5x the time of a whole 35-iteration BFGS solve of 2-D
    Rosenbrock (0.09 ms against 0.24 ms, steps=63 against 64). Under ``vmap`` the loop
    selects every member's chunk on every iteration (the members that stopped keep
    theirs): 1,000 vmapped L-BFGS-B starts took 17.1 ms with 16 slots against 19.0 with
    64 (200 steps; 23.5 against 29.4 with 2,000), and a solve alone the same time."""
    return max(1, min(steps + 1, 16, 512 // np.dtype(dtype).itemsize))


def run_until(step: Stepper, begin: Callable[[], Carry], steps: int, tol: Any,
              warm: bool = False, finish: Callable | None = None):  # fmt: skip
    """``lax.while_loop`` of at most ``steps`` updates from the carry ``begin()`` that
    stops on a :class:`Status`, tested on the observation at the current params before
    each update. A first-order method does not evaluate the params after its last
    allowed update (nothing would use them); an optimizer that evaluates itself has them
    already, so they are tested for convergence too. The loop carries one stop flag; the
    status is worked out once, after it (every op in the body costs on each iteration
    of a small solve). ``warm``: the state comes from a previous run, whose stalled flag
    stops this one at once. ``finish(until)``, given the result without its histories,
    returns what the caller computes from it (``Until.extra``).

    The histories are recorded in chunks (:func:`_chunk_size`): an inner loop writes a
    small buffer, and the outer loop copies it into the ``steps``-long history once per
    chunk, so an iteration costs the same whatever ``steps`` is (and under ``vmap`` the
    per-iteration select of the carry moves the chunk, not the whole history); the last
    chunk is written where it ends the history (:func:`_chunk_start`), so the history
    is no longer than ``steps``, padded once at the end (:func:`pad_history`). The loop
    with its histories runs in a :func:`jaxopt_lab._control.nested` block, its start
    (``begin``) in another inside it, and the end (the status, ``finish``) in a third:
    the top level keeps a handful of operations, and XLA:CPU runs the program on the
    calling thread instead of handing its operations to worker threads."""
    x_of = _step_index
    chunk_of = {}  # the chunk size, from the loss's dtype: known once `start` is traced

    def stalled_of(c):
        ev = evaluated_state(c.state)
        return jnp.asarray(False) if ev is None else jnp.asarray(ev.stalled)

    def running(loop):
        return (loop[0] < steps) & ~loop[-1]

    def inner_cond(loop):  # the slot of the next record (i + 1) is in this chunk
        return running(loop[1:]) & (loop[1] + 1 - loop[0] < chunk_of["k"])

    # An optimizer that evaluates itself keeps its observation in the carry: the loop
    # holds it once (a while loop's state holding the same array twice costs a copy of
    # it on every iteration)
    def held(obs):
        return None if step.reuses else obs

    def current(c, slot):
        return c.last if step.reuses else slot

    def body(loop):
        base, i, c, slot, _, losses, norms, _ = loop
        obs = current(c, slot)
        c = step.advance(c, _idle_if_stopped(obs, running(loop[1:])), x_of(i))
        i = i + 1
        if step.reuses:
            obs = step.observe(c, x_of(i))
        else:  # the budget's end: no evaluation nobody reads
            obs = jax.lax.cond(i < steps, lambda: step.observe(c, x_of(i)), lambda: obs)
        norm = norm_of(obs, c)
        j = i - _chunk_start(base, steps, chunk_of["k"])  # k (out of bounds, dropped): the
        # record after the budget's last update, which no history keeps
        losses, norms = losses.at[j].set(obs.loss), norms.at[j].set(norm)
        stop = _stops(obs, norm, stalled_of(c), tol)
        return base, i, c, held(obs), norm, losses, norms, stop

    def chunk(outer):
        loop, losses, norms = outer
        base, k = loop[0], chunk_of["k"]
        # the chunk's buffers start as the history's slots they will be written back to
        # (the records before `base` in the last chunk, which ends at the history's end)
        at = (_chunk_start(base, steps, k),)
        window = (jax.lax.dynamic_slice(losses, at, (k,)), jax.lax.dynamic_slice(norms, at, (k,)))
        loop = while_loop(inner_cond, body, (*loop[:5], *window, loop[7]))
        losses = jax.lax.dynamic_update_slice(losses, loop[5], at)
        norms = jax.lax.dynamic_update_slice(norms, loop[6], at)
        # the chunk is full (the slot of the next record is past it): start the next one
        base = jnp.where(loop[1] + 1 - base >= k, base + k, base)
        return (base, *loop[1:]), losses, norms

    def start():
        carry = begin()
        obs0 = step.observe(carry, x_of(0))
        norm0 = norm_of(obs0, carry)
        chunk_of["k"] = _chunk_size(steps, obs0.loss.dtype)
        small = jnp.zeros((chunk_of["k"],), obs0.loss.dtype)
        stalled0 = stalled_of(carry) if warm else jnp.asarray(False)
        stop0 = _stops(obs0, norm0, stalled0, tol)
        loop = (jnp.asarray(0), jnp.asarray(0), carry, held(obs0), norm0,
                small.at[0].set(obs0.loss), small.at[0].set(norm0), stop0)  # fmt: skip
        return loop, stalled0

    def looped():  # one block: the loop, its histories, and what XLA hoists out of it
        loop, stalled0 = nested(start)
        k, dtype = chunk_of["k"], loop[5].dtype
        # slots [0, steps) take the records (the one after the budget's last update is
        # dropped); one chunk of k = steps + 1 slots when the budget is that short
        history = jnp.zeros((max(steps, k),), dtype)
        hist = (history.at[0].set(loop[5][0]), history.at[0].set(loop[6][0]))
        loop, losses, norms = while_loop(lambda o: running(o[0][1:]), chunk, (loop, *hist))
        return loop, losses, norms, stalled0

    loop, losses, norms, stalled0 = nested(looped)

    def end(loop):
        _, i, carry, slot, norm, _, _, _ = loop
        obs = current(carry, slot)
        observed = jnp.asarray(True) if step.reuses else i < steps
        stalled = stalled_of(carry) & ((i > 0) | stalled0)
        status = _status(obs, norm, stalled, observed, tol)
        if not step.reuses:
            carry = carry._replace(last=obs.aux)
        until = Until(carry, None, None, i, status, jnp.minimum(i + 1, steps))
        return until._replace(extra=None if finish is None else finish(until))

    until = nested(end, loop)
    losses, norms = pad_history(losses, norms, until.num_steps, steps)
    return until._replace(losses=losses, norms=norms)


def _idle_if_stopped(obs: Observation, live) -> Observation:
    """The observation, with a zero gradient for a run that has stopped. Only under
    ``vmap`` does the loop body run for one (for every member while any runs on; its
    results are dropped), and there a line search from a stationary point tries up to
    its budget before it gives up, holding the whole batch for it on every later
    iteration: with a zero gradient the search accepts its first trial (L-BFGS-B, 1,000
    vmapped starts: 12 trials per iteration for the batch, against 1-2 per live member)."""
    return obs._replace(grads=jax.tree.map(lambda g: jnp.where(live, g, 0), obs.grads))


def _step_index(i):
    return i


def _chunk_start(base, steps: int, k: int):
    """Where a chunk of ``k`` records from slot ``base`` is written in the history of
    ``max(steps, k)`` slots: at ``base``, or for the last chunk, ``k`` slots from the
    end (its buffer then starts with the records before ``base``)."""
    return jnp.minimum(base, max(steps, k) - k)


def pad_history(losses, norms, i, steps):
    """The first ``steps`` slots of the histories, repeating the last recorded value
    after a run that stopped at step ``i``."""
    last = jnp.minimum(i, steps - 1)
    return _pad(losses[:steps], last), _pad(norms[:steps], last)


def _pad_by_copy(history, last):
    """``history`` with the slots after ``last`` set to ``history[last]``, by copies
    alone: XLA:CPU runs a program on the calling thread only when its cost analysis
    counts fewer than 1,000 floating-point operations, and a select over a 2,000-step
    history counts 4,000 (a 2-D BFGS solve counts 700: the select doubled its fixed
    cost)."""
    steps = history.shape[0]
    fill = jnp.broadcast_to(history[last], (steps,))
    both = jnp.concatenate([history, fill])  # the update below stays in bounds
    return jax.lax.dynamic_update_slice(both, fill, (last + 1,))[:steps]


def _pad_by_select(history, last):
    """The same by one select fused with the slice, under ``vmap``: the copy at a
    different offset per member is a scatter, 4x the time of the select (1000 members
    of 2,000 steps: 3.7 against 0.8 ms)."""
    return jnp.where(jnp.arange(history.shape[-1]) > last, history[last], history)


_pad_vmappable = custom_vmap(_pad_by_copy)


@jax.custom_jvp
def _pad(history, last):
    return _pad_vmappable(history, last)


@_pad.defjvp
def _pad_jvp(primals, tangents):
    # the padding is linear in the history: its tangent is padded alike, by a second
    # call (one call for both leaves linearize unable to tell the values apart)
    history, last = primals
    return _pad_vmappable(history, last), _pad_vmappable(tangents[0], last)


@_pad_vmappable.def_vmap
def _pad_batched(axis_size, in_batched, history, last):
    if not any(in_batched):  # forward mode's batch of tangents: the values are one run's
        return _pad_by_copy(history, last), False
    history, last = (
        x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))
        for x, b in zip((history, last), in_batched, strict=True)
    )
    return jax.vmap(_pad_by_select)(history, last), True


__all__ = [
    "Carry",
    "Observation",
    "Status",
    "Stepper",
    "evaluated_state",
    "freezing",
    "run_fixed",
    "run_until",
    "stepper",
]
