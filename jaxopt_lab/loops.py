r"""Compiled training loops: :func:`minimize` (full batch) and :func:`fit` (mini-batches).

Each call runs one ``jax.jit``-compiled program: ``lax.scan`` over a fixed number of
steps, or ``lax.while_loop`` when ``minimize`` stops on a tolerance. No Python runs per
step. The optimizer is passed to the compiled program as a pytree argument, so calling
again with another learning rate (same functions, shapes and options) reuses the
compiled program; an optimizer that is not a pytree of arrays (optax's, a NamedTuple of
closures) is treated as a static argument instead, compiled once per object.

Conventions, per step :math:`t = 0, \dots, T-1`:

* ``losses[t]`` and ``grad_norms[t]`` are the loss and the global L2 norm of the
  gradient at the params *before* update :math:`t`; watch ``grad_norms`` for vanishing
  and exploding gradients.
* ``params`` are the params after the last update.
* optimizers whose ``update`` accepts extra keyword arguments (ours, optax's
  ``GradientTransformationExtraArgs``) also get ``value`` (the loss), ``grad`` and
  ``value_fn`` (params -> loss), which quasi-Newton methods and line searches use.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.base import HyperFunction, Params, Static, accepts_extra_args, apply_updates
from jaxopt_lab.checks import check_params, check_scalar_fn, is_concrete
from jaxopt_lab.linesearch import Evaluated
from jaxopt_lab.transforms import global_norm


class OptimizeResult(NamedTuple):
    """What :func:`minimize` and :func:`fit` return.

    Attributes:
      params: the params after the last update.
      state: the optimizer state after the last update.
      losses: ``(steps,)`` loss before each update (mini-batch loss in :func:`fit`).
      grad_norms: ``(steps,)`` global gradient norm before each update.
      num_steps: updates made (less than ``steps`` when ``tol`` stopped the run).
      converged: whether the gradient norm fell to ``tol`` (False when no ``tol``).
      aux: the auxiliary output of the last loss evaluation when ``has_aux``, else None.
      num_fun_evals, num_grad_evals: evaluations of the loss and of its gradient, the
        line searches' included (a value-and-gradient call counts once in each).
    """

    params: Params
    state: Any
    losses: jax.Array
    grad_norms: jax.Array
    num_steps: jax.Array
    converged: jax.Array
    aux: Any = None
    num_fun_evals: Any = None
    num_grad_evals: Any = None

    @property
    def grad_norm(self) -> jax.Array:
        """The gradient norm at the final params (when ``converged``: at most ``tol``)."""
        return self.grad_norms[jnp.minimum(self.num_steps, self.grad_norms.shape[-1] - 1)]


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}: {value!r}.")
    if value < low:
        raise ValueError(f"`{name}` must be >= {low}, got {value}.")
    return int(value)


def _check_optimizer(optimizer: Any, name: str = "optimizer") -> None:
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            f"`{name}` must have callable `.init` and `.update` (e.g. jol.adam(1e-3) or an "
            f"optax transform), got {type(optimizer).__name__}."
        )


def _check_callable(loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}.")


def _check_tol(tol: Any) -> None:
    if tol is None:
        return
    if isinstance(tol, bool) or not isinstance(tol, (numbers.Real, np.ndarray, jax.Array)):
        raise TypeError(f"`tol` must be a number or None, got {tol!r}.")
    if not isinstance(tol, jax.core.Tracer) and not np.all(np.asarray(tol) >= 0):
        raise ValueError(f"`tol` must be >= 0, got {tol!r}.")


def _split_optimizer(optimizer: Any) -> tuple[Any, Static | None]:
    """(dynamic, static): a pytree of arrays goes into jit as an argument."""
    if isinstance(optimizer.init, HyperFunction) and isinstance(optimizer.update, HyperFunction):
        return optimizer, None  # built by this package: its leaves are numbers by design
    leaves = jax.tree.leaves(optimizer)
    if all(isinstance(x, (numbers.Number, np.ndarray, np.generic, jax.Array)) for x in leaves):
        return optimizer, None
    return None, Static(optimizer)


# --------------------------------------------------------------------------------------
# One step, shared by both loops
# --------------------------------------------------------------------------------------


def _value_and_grad(loss_fn, has_aux, params, *args):
    if has_aux:
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    else:
        loss, grads, aux = *jax.value_and_grad(loss_fn)(params, *args), None
    return loss, aux, grads


def _update(optimizer, loss_fn, has_aux, params, state, loss, grads, args):
    if accepts_extra_args(optimizer.update):
        value_fn = (lambda p: loss_fn(p, *args)[0]) if has_aux else (lambda p: loss_fn(p, *args))
        updates, state = optimizer.update(
            grads, state, params, value=loss, grad=grads, value_fn=value_fn
        )
    else:
        updates, state = optimizer.update(grads, state, params)
    return apply_updates(params, updates), state


def _aux_shape(loss_fn, has_aux, params, *args):
    if not has_aux:
        return None
    aux = jax.eval_shape(loss_fn, params, *args)[1]
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux)


# --------------------------------------------------------------------------------------
# minimize
# --------------------------------------------------------------------------------------


def evaluated_state(state: Any) -> Evaluated | None:
    """The :class:`~jaxopt_lab.linesearch.Evaluated` record of an optimizer that
    evaluates the loss itself (a quasi-Newton method, or a chain ending in a line
    search): the value and gradient at the params its last update leads to. None for
    other optimizers. Only the last transform of a chain counts, since a transform after
    it would move the params away from the evaluated point."""
    while True:
        ev = getattr(state, "evaluated", None)
        if isinstance(ev, Evaluated):
            return ev
        if type(state) is tuple and state:  # a chain's state: look at its last transform
            state = state[-1]
            continue
        return None


@functools.partial(
    jax.jit, static_argnames=("loss_fn", "steps", "has_aux", "static_opt", "use_tol")
)
def _minimize(params, dyn_opt, tol, *, loss_fn, steps, has_aux, static_opt, use_tol):
    check_scalar_fn(loss_fn, (params,), "loss_fn", bool(has_aux))  # at trace time only
    optimizer = dyn_opt if static_opt is None else static_opt.value
    state = optimizer.init(params)
    if evaluated_state(state) is not None:
        return _minimize_reusing(optimizer, state, params, tol, loss_fn, steps, has_aux, use_tol)

    def evaluate(p):
        return _value_and_grad(loss_fn, has_aux, p)

    if not use_tol:

        def step(carry, _):
            p, s, _ = carry
            loss, aux, grads = evaluate(p)
            p, s = _update(optimizer, loss_fn, has_aux, p, s, loss, grads, ())
            return (p, s, aux), (loss, global_norm(grads).astype(loss.dtype))

        aux0 = _aux_shape(loss_fn, has_aux, params)
        (params, state, aux), (losses, norms) = jax.lax.scan(
            step, (params, state, aux0), None, length=steps
        )
        n = jnp.asarray(steps)
        return OptimizeResult(params, state, losses, norms, n, jnp.asarray(False), aux, n, n)

    loss0 = jax.eval_shape(loss_fn, params)
    loss_dtype = (loss0[0] if has_aux else loss0).dtype
    history = jnp.zeros((steps,), loss_dtype)

    def cond(carry):
        i, done = carry[0], carry[1]
        return jnp.logical_and(i < steps, jnp.logical_not(done))

    def body(carry):
        i, _, p, s, losses, norms, _ = carry
        loss, aux, grads = evaluate(p)
        norm = global_norm(grads).astype(loss_dtype)
        done = norm <= tol
        new_p, new_s = _update(optimizer, loss_fn, has_aux, p, s, loss, grads, ())
        # A converged point is kept as it is: no update after the criterion is met.
        p, s = jax.tree.map(lambda a, b: jnp.where(done, a, b), (p, s), (new_p, new_s))
        losses, norms = losses.at[i].set(loss), norms.at[i].set(norm)
        return i + jnp.where(done, 0, 1), done, p, s, losses, norms, aux

    aux0 = _aux_shape(loss_fn, has_aux, params)
    init = (jnp.asarray(0), jnp.asarray(False), params, state, history, history, aux0)
    i, done, params, state, losses, norms, aux = jax.lax.while_loop(cond, body, init)
    losses, norms = _pad_history(losses, norms, i, steps)
    evals = i + done.astype(i.dtype)  # the converged point was evaluated too
    return OptimizeResult(params, state, losses, norms, i, done, aux, evals, evals)


def _pad_history(losses, norms, i, steps):
    """After convergence at step i the history repeats its last recorded value."""
    last = jnp.minimum(i, steps - 1)
    idx = jnp.arange(steps)
    return jnp.where(idx > last, losses[last], losses), jnp.where(idx > last, norms[last], norms)


def _minimize_reusing(optimizer, state, params, tol, loss_fn, steps, has_aux, use_tol):
    """``minimize`` for an optimizer that evaluates the loss at its new params itself:
    the loss and gradient are computed once at the start, then read from the optimizer's
    state after every update, so an iteration costs the line search's evaluations only.
    The tolerance is tested before an update (in the loop's condition), so no work is
    spent on an update that would be thrown away."""
    loss, aux, grads = _value_and_grad(loss_fn, has_aux, params)
    dtype = loss.dtype

    def step(p, s, loss, grads):
        new_p, new_s = _update(optimizer, loss_fn, has_aux, p, s, loss, grads, ())
        ev = evaluated_state(new_s)
        return new_p, new_s, ev.value.astype(dtype), ev.grad

    if not use_tol:

        def scan_step(carry, _):
            p, s, loss, grads = carry
            norm = global_norm(grads).astype(dtype)
            p, s, new_loss, new_grads = step(p, s, loss, grads)
            return (p, s, new_loss, new_grads), (loss, norm)

        (params, state, loss, grads), (losses, norms) = jax.lax.scan(
            scan_step, (params, state, loss, grads), None, length=steps
        )
        n, done = jnp.asarray(steps), jnp.asarray(False)
    else:
        history = jnp.zeros((steps,), dtype)

        def cond(carry):
            i, _, _, loss, grads, _, _ = carry
            return (i < steps) & ~(global_norm(grads).astype(dtype) <= tol) & jnp.isfinite(loss)

        def body(carry):
            i, p, s, loss, grads, losses, norms = carry
            losses = losses.at[i].set(loss)
            norms = norms.at[i].set(global_norm(grads).astype(dtype))
            p, s, loss, grads = step(p, s, loss, grads)
            return i + 1, p, s, loss, grads, losses, norms

        init = (jnp.asarray(0), params, state, loss, grads, history, history)
        n, params, state, loss, grads, losses, norms = jax.lax.while_loop(cond, body, init)
        final_norm = global_norm(grads).astype(dtype)
        done = final_norm <= tol
        # record the converged point itself (when there is room) like the other loop
        at = jnp.minimum(n, steps - 1)
        keep = n < steps
        losses = losses.at[at].set(jnp.where(keep, loss, losses[at]))
        norms = norms.at[at].set(jnp.where(keep, final_norm, norms[at]))
        losses, norms = _pad_history(losses, norms, n, steps)
    if has_aux:  # the line searches drop the aux: evaluate it once at the final params
        aux = _value_and_grad(loss_fn, has_aux, params)[1]
    ev = evaluated_state(state)
    return OptimizeResult(params, state, losses, norms, n, done, aux,
                          1 + ev.num_fun_evals, 1 + ev.num_grad_evals)  # fmt: skip


def minimize(
    loss_fn: Callable[[Params], Any],
    params: Params,
    optimizer: Any,
    steps: int,
    *,
    tol: float | None = None,
    has_aux: bool = False,
) -> OptimizeResult:
    r"""Minimize ``loss_fn(params) -> scalar`` with ``optimizer`` for ``steps`` updates,
    in one compiled program.

    With ``tol``, stops at the first step whose gradient norm
    :math:`\lVert\nabla f\rVert_2 \le` ``tol`` (that step makes no update, and
    ``converged`` is True); ``num_steps`` counts the updates made and the history after it
    repeats its last value, so ``losses`` always has length ``steps``.
    With ``has_aux``, ``loss_fn`` returns ``(loss, aux)`` and ``result.aux`` is the aux
    of the last evaluation.

    Example::

        res = jol.minimize(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), jol.adam(0.1), 500)
        res.params, res.losses[-1]
    """
    steps = _check_count("steps", steps)
    _check_optimizer(optimizer)
    check_params(params)
    _check_callable(loss_fn)
    _check_tol(tol)
    dyn, static = _split_optimizer(optimizer)
    result = _minimize(
        params,
        dyn,
        None
        if tol is None
        else np.asarray(tol, jnp.result_type(float)),  # host scalar: no eager device op
        loss_fn=loss_fn,
        steps=steps,
        has_aux=bool(has_aux),
        static_opt=static,
        use_tol=tol is not None,
    )
    # A line search cannot start from a non-finite value (the loop stops at once then).
    if evaluated_state(result.state) is not None and is_concrete(result.losses):
        first = np.asarray(result.losses)[0]  # one transfer; an eager slice costs ~0.15 ms per call
        if not np.isfinite(first):
            raise ValueError(
                f"loss_fn(params) is {float(first)} at the starting point; a "
                "line-search method needs a finite value there (check the start and the loss)."
            )
    return result


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps", "static_opt"))
def _trajectory(params, dyn_opt, *, loss_fn, steps, static_opt):
    check_scalar_fn(loss_fn, (params,), "loss_fn", False)
    optimizer = dyn_opt if static_opt is None else static_opt.value

    def step(carry, _):
        p, s = carry
        loss, _, grads = _value_and_grad(loss_fn, False, p)
        p, s = _update(optimizer, loss_fn, False, p, s, loss, grads, ())
        return (p, s), p

    _, path = jax.lax.scan(step, (params, optimizer.init(params)), None, steps)
    return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), params, path)


def trajectory(
    loss_fn: Callable[[Params], Any], params: Params, optimizer: Any, steps: int
) -> Params:
    """The params after each of ``steps`` updates of ``optimizer`` on ``loss_fn``, start
    included: every leaf gains a leading axis of length ``steps + 1``. The path that
    :func:`minimize` takes (same updates, bit for bit), kept for plotting; one compiled
    program, vmappable over learning rates.

    Example::

        path = jol.trajectory(rosenbrock, jnp.array([-1.5, 2.0]), jol.adam(0.05), 500)  # (501, 2)
    """
    steps = _check_count("steps", steps)
    _check_optimizer(optimizer)
    check_params(params)
    _check_callable(loss_fn)
    dyn, static = _split_optimizer(optimizer)
    return _trajectory(params, dyn, loss_fn=loss_fn, steps=steps, static_opt=static)


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------


def data_size(data: Any, name: str = "data") -> int:
    """The shared leading size of every leaf of ``data``; a ValueError if they differ."""
    leaves_with_path = jax.tree_util.tree_leaves_with_path(data)
    if not leaves_with_path:
        raise ValueError(f"`{name}` must hold at least one array.")
    sizes = {}
    for path, leaf in leaves_with_path:
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(
                f"`{name}` leaves need a leading (example) axis; "
                f"{name}{jax.tree_util.keystr(path)} is a scalar."
            )
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) != 1:
        shown = ", ".join(f"{name}{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"`{name}` leaves must share their leading size; got {shown}.")
    return next(iter(sizes.values()))


def epoch_batches(key: jax.Array, epoch: jax.Array, n: int, batch_size: int) -> jax.Array:
    """``(n // batch_size, batch_size)`` example indices for one epoch: a permutation of
    ``range(n)`` drawn from ``fold_in(key, epoch)``, its last ``n % batch_size`` entries
    left out. With ``batch_size == n`` the order is kept (nothing to shuffle)."""
    steps = n // batch_size
    if batch_size == n:
        return jnp.arange(n)[None, :]
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return perm[: steps * batch_size].reshape(steps, batch_size)


@functools.partial(
    jax.jit, static_argnames=("loss_fn", "batch_size", "epochs", "has_aux", "static_opt")
)
def _fit(params, dyn_opt, data, key, *, loss_fn, batch_size, epochs, has_aux, static_opt):
    optimizer = dyn_opt if static_opt is None else static_opt.value
    n = jax.tree.leaves(data)[0].shape[0]
    first = jax.tree.map(lambda x: x[:batch_size], data)
    check_scalar_fn(loss_fn, (params, first), "loss_fn", bool(has_aux))  # at trace time only

    def step(carry, idx):
        p, s, _ = carry
        batch = jax.tree.map(lambda x: x[idx], data)
        loss, aux, grads = _value_and_grad(loss_fn, has_aux, p, batch)
        p, s = _update(optimizer, loss_fn, has_aux, p, s, loss, grads, (batch,))
        return (p, s, aux), (loss, global_norm(grads).astype(loss.dtype))

    def epoch(carry, e):
        return jax.lax.scan(step, carry, epoch_batches(key, e, n, batch_size))

    carry = (params, optimizer.init(params), _aux_shape(loss_fn, has_aux, params, first))
    (params, state, aux), (losses, norms) = jax.lax.scan(epoch, carry, jnp.arange(epochs))
    total = losses.size
    return OptimizeResult(
        params, state, losses.reshape(total), norms.reshape(total), jnp.asarray(total),
        jnp.asarray(False), aux, jnp.asarray(total), jnp.asarray(total),
    )  # fmt: skip


@functools.lru_cache(maxsize=256)
def _int_key(seed: int, config: Any) -> jax.Array:
    # Making a key costs ~0.3 ms of dispatches; a sweep or fit called in a loop with the
    # same int seed (the default 0) should not pay it every call. Keyed on the configs
    # that change what PRNGKey(seed) returns (the PRNG implementation, x64 for big seeds).
    # Made eagerly even under a caller's jit, so no tracer is ever cached.
    with jax.ensure_compile_time_eval():
        return jax.random.PRNGKey(seed)


def _check_key(key: Any) -> jax.Array:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return _int_key(int(key), (jax.config.jax_default_prng_impl, jax.config.jax_enable_x64))
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(f"`key` must be a jax.random key (or an int seed), got {key!r}.")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (
        key.shape == (2,) and key.dtype == jnp.uint32
    ):
        return key
    raise TypeError(
        f"`key` must be a jax.random key such as jax.random.PRNGKey(0), got an array of "
        f"shape {key.shape} and dtype {key.dtype}."
    )


def fit(
    loss_fn: Callable[[Params, Any], Any],
    params: Params,
    optimizer: Any,
    data: Any,
    *,
    batch_size: int,
    epochs: int,
    key: Any,
    has_aux: bool = False,
) -> OptimizeResult:
    r"""Train ``loss_fn(params, batch) -> scalar`` over ``data`` in mini-batches, in one
    compiled program.

    ``data`` is a pytree of arrays sharing a leading (example) axis of size :math:`N`;
    it stays on the device and each batch is gathered from it inside the program. Every
    epoch draws a fresh permutation from ``jax.random.fold_in(key, epoch)`` and cuts it
    into :math:`\lfloor N/B\rfloor` batches of ``batch_size`` :math:`B`; the
    :math:`N \bmod B` examples left at the end of the permutation sit that epoch out
    (a different few each epoch), so every step sees a full batch and the program has
    one shape. ``batch_size=1`` is per-sample SGD; ``batch_size=N`` is batch gradient
    descent (then the data is used in its own order, unshuffled).

    ``losses`` and ``grad_norms`` have one entry per step (``epochs * (N // B)``), each
    the mini-batch value before that step's update.
    """
    epochs = _check_count("epochs", epochs)
    batch_size = _check_count("batch_size", batch_size)
    _check_optimizer(optimizer)
    check_params(params)
    n = data_size(data)
    if batch_size > n:
        raise ValueError(f"`batch_size` must be <= the number of examples ({n}), got {batch_size}.")
    key = _check_key(key)
    _check_callable(loss_fn)
    dyn, static = _split_optimizer(optimizer)
    return _fit(
        params,
        dyn,
        data,
        key,
        loss_fn=loss_fn,
        batch_size=batch_size,
        epochs=epochs,
        has_aux=bool(has_aux),
        static_opt=static,
    )


__all__ = ["OptimizeResult", "data_size", "epoch_batches", "fit", "minimize", "trajectory"]
