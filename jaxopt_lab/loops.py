r"""Compiled training loops: :func:`minimize` (full batch) and :func:`fit` (mini-batches).

Each call runs one ``jax.jit``-compiled program on the iteration core
(``jaxopt_lab._iterate``): ``lax.scan`` over a fixed number of steps, or
``lax.while_loop`` when ``minimize`` may stop early (on a tolerance, and always for a
solver with a line search, which stops when it can make no further progress). No Python
runs per step. The optimizer is passed to the compiled program as a pytree argument, so calling
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

from jaxopt_lab import _iterate as core
from jaxopt_lab._iterate import Status, evaluated_state, status_message
from jaxopt_lab.base import HyperFunction, Params, Static
from jaxopt_lab.checks import (
    check_callable,
    check_count,
    check_key,
    check_optimizer,
    check_params,
    check_scalar_fn,
    check_tol,
    is_concrete,
)
from jaxopt_lab.errors import InputValueError
from jaxopt_lab.implicit import (
    check_implicit_options,
    hoist_closure,
    implicit_solve,
    refuse_reverse_mode,
    reverse_mode_message,
)
from jaxopt_lab.precision import wrap_loss


class OptimizeResult(NamedTuple):
    """What :func:`minimize` and :func:`fit` return.

    Attributes:
      params: the params after the last update.
      state: the optimizer state after the last update (pass it back as ``state=`` to
        continue the run).
      losses: ``(steps,)`` loss before each update (mini-batch loss in :func:`fit`).
      grad_norms: ``(steps,)`` global gradient norm before each update.
      num_steps: updates made (fewer than ``steps`` when the run stopped early).
      converged: whether the gradient norm fell to ``tol`` (False when no ``tol``).
      aux: the auxiliary output of the last loss evaluation when ``has_aux``, else None.
      num_fun_evals, num_grad_evals: evaluations of the loss and of its gradient made by
        this call, the line searches' included (a value-and-gradient call counts once
        in each).
      status: why the run stopped, a :class:`~jaxopt_lab.Status` code (an int array,
        one per member under ``vmap``): 0 converged, 1 step budget reached, 2 no further
        progress possible (the line search found no acceptable step), 3 non-finite loss
        or gradient. ``message`` says it in words.
      evals, eval_steps: :func:`fit` with ``eval_fn``: the evaluations, and the updates
        made before each (None otherwise).
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
    status: Any = None
    evals: Any = None
    eval_steps: Any = None

    @property
    def grad_norm(self) -> jax.Array:
        """The gradient norm at the final params (when ``converged``: at most ``tol``)."""
        return self.grad_norms[jnp.minimum(self.num_steps, self.grad_norms.shape[-1] - 1)]

    @property
    def message(self) -> Any:
        """Why the run stopped, in words (an array of messages for a batch of runs)."""
        return status_message(self.status)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _split_optimizer(optimizer: Any) -> tuple[Any, Static | None]:
    """(dynamic, static): a pytree of arrays goes into jit as an argument."""
    if isinstance(optimizer.init, HyperFunction) and isinstance(optimizer.update, HyperFunction):
        return optimizer, None  # built by this package: its leaves are numbers by design
    leaves = jax.tree.leaves(optimizer)
    if all(isinstance(x, (numbers.Number, np.ndarray, np.generic, jax.Array)) for x in leaves):
        return optimizer, None
    return None, Static(optimizer)


def _check_state(state: Any, optimizer: Any, params: Params) -> None:
    """A warm-start state must have the structure and shapes of ``optimizer.init(params)``."""
    if state is None:
        return
    want = jax.eval_shape(optimizer.init, params)
    got = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), state)
    same = jax.tree.structure(want) == jax.tree.structure(got) and all(
        a.shape == b.shape for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True)
    )
    if not same:
        raise InputValueError(
            "`state` must be a state of this optimizer for these params (as returned in "
            f"a previous result's `.state`); expected {jax.tree.structure(want)}, got "
            f"{jax.tree.structure(got)}."
        )


def _check_common(loss_fn, params, optimizer) -> tuple[Any, Static | None]:
    check_optimizer(optimizer)
    check_params(params)
    check_callable("loss_fn", loss_fn)
    return _split_optimizer(optimizer)


def _optimizer(dyn_opt, static_opt):
    return dyn_opt if static_opt is None else static_opt.value


# --------------------------------------------------------------------------------------
# minimize
# --------------------------------------------------------------------------------------


def _evals(step, warm_state, state, n_observed):
    """Evaluations of the loss and the gradient a run made: one per observation for a
    first-order method; the start's plus the line searches' for one that evaluates
    itself (a warm start, ``warm_state``, may have found the start's evaluation in its
    state; a cold one starts from counts of zero)."""
    if not step.reuses:
        return n_observed, n_observed
    ev = evaluated_state(state)
    if warm_state is None:
        return ev.num_fun_evals + 1, ev.num_grad_evals + 1
    ev0 = evaluated_state(warm_state)
    first = (ev0.num_fun_evals == 0).astype(ev.num_fun_evals.dtype)
    return (
        ev.num_fun_evals - ev0.num_fun_evals + first,
        ev.num_grad_evals - ev0.num_grad_evals + first,
    )


@functools.partial(
    jax.jit, static_argnames=("loss_fn", "steps", "has_aux", "static_opt", "use_tol")
)
def _minimize(params, dyn_opt, tol, state, args, *, loss_fn, steps, has_aux, static_opt,
              use_tol):  # fmt: skip
    check_scalar_fn(loss_fn, (params, *args), "loss_fn", bool(has_aux))  # at trace time only
    optimizer = _optimizer(dyn_opt, static_opt)
    warm = state is not None
    if args:  # the loop sees a function of the params alone; no args: the same program
        loss_fn = functools.partial(_with_args, loss_fn, args)
    # the stepper needs the state's structure only: no init ops outside the loop's blocks
    step = core.stepper(optimizer, loss_fn, has_aux,
                        state if warm else jax.eval_shape(optimizer.init, params))  # fmt: skip

    def begin():
        state0 = state if warm else optimizer.init(params)
        return core.start(step, loss_fn, has_aux, params, state0, warm=warm)

    def finish(out):
        aux = out.carry.last
        if step.reuses:
            # the line searches drop the aux: evaluate it once at the final params
            aux = (
                core.value_and_grad(loss_fn, has_aux, out.carry.params, ()).aux if has_aux else None
            )
        return (
            aux,
            _evals(step, state, out.carry.state, out.num_observed),
            out.status == Status.CONVERGED,
        )

    if use_tol or step.reuses:  # a solver that evaluates itself may stop on its own
        out = core.run_until(step, begin, steps, tol if use_tol else None, warm=warm, finish=finish)
        carry, losses, norms, n, status = (
            out.carry,
            out.losses,
            out.norms,
            out.num_steps,
            out.status,
        )
        aux, (fun, grad), converged = out.extra
        looped = True
    else:
        carry, (losses, norms) = core.run_fixed(step, begin(), None, length=steps)
        n = jnp.asarray(steps)
        status = core.fixed_status(losses, norms)
        aux, (fun, grad) = carry.last, (n, n)
        converged = status == Status.CONVERGED
        looped = False
    result = OptimizeResult(
        carry.params, carry.state, losses, norms, n, converged, aux, fun, grad, status
    )
    # JAX cannot transpose a while loop; say what to do before it tries (compiles to nothing)
    return refuse_reverse_mode(result, _REVERSE_MODE_MESSAGE) if looped else result


def _with_args(loss_fn, args, params):
    return loss_fn(params, *args)


_REVERSE_MODE_MESSAGE = reverse_mode_message(
    "jol.minimize",
    "runs a while loop (with `tol`, or with a solver that runs a line search)",
    "; to differentiate through the unrolled updates (a hypergradient w.r.t. a learning "
    "rate), use a first-order optimizer with a fixed number of `steps` and tol=None",
)


def minimize(
    loss_fn: Callable[..., Any],
    params: Params,
    optimizer: Any,
    steps: int,
    *,
    tol: float | None = None,
    has_aux: bool = False,
    state: Any = None,
    args: tuple = (),
    implicit_diff: bool = False,
    linear_solver: Callable | None = None,
    compute_dtype: Any = None,
    remat: Any = False,
) -> OptimizeResult:
    r"""Minimize ``loss_fn(params, *args) -> scalar`` with ``optimizer`` for ``steps``
    updates, in one compiled program.

    With ``tol``, stops at the first step whose gradient norm
    :math:`\lVert\nabla f\rVert_2 \le` ``tol`` (that step makes no update, and
    ``converged`` is True); ``num_steps`` counts the updates made and the history after it
    repeats its last value, so ``losses`` always has length ``steps``. A run with ``tol``
    also stops early on a non-finite loss or gradient; a solver that evaluates the loss
    itself (a quasi-Newton method, a chain ending in a line search) stops on those with
    or without ``tol``, and when its line search can make no further progress.
    ``status`` and ``message`` say why the run stopped.
    With ``has_aux``, ``loss_fn`` returns ``(loss, aux)`` and ``result.aux`` is the aux
    of the last evaluation.

    ``args`` (a tuple of pytrees :math:`\theta`, default none) are passed to every
    evaluation, ``loss_fn(params, *args)``. They are traced, never static: new values
    reuse the compiled program, and ``jax.vmap`` can map over them.

    Derivatives of the result. Through a fixed number of first-order ``steps`` (no
    ``tol``), ``jax.grad`` differentiates the unrolled updates (a hypergradient, e.g.
    w.r.t. the learning rate). Forward mode (``jax.jvp``, ``jax.jacfwd``) works through
    every run. Reverse mode through a run that loops on a stop test (``tol``, or a
    solver with a line search) raises a :class:`~jaxopt_lab.implicit.ReverseModeError`,
    unless ``implicit_diff=True``: then the solution :math:`x^*` is differentiated in
    ``args`` by the implicit function theorem, from
    :math:`\nabla_x f(x^*, \theta) = 0`: :math:`\partial x^*/\partial\theta =
    -H^{-1}\,\partial_\theta\nabla_x f` with :math:`H = \nabla^2_{xx} f(x^*, \theta)`,
    solved by ``linear_solver`` (default :func:`jaxopt_lab.implicit.conjugate_gradient`,
    with Hessian-vector products), so ``jax.grad`` costs about one more solve and never
    stores the iterations. ``params``, the loss at the solution (``losses[j]`` for
    :math:`j \ge` ``num_steps``) and ``aux`` get derivatives; the history, the state and
    the counts are constants, and nothing flows to the starting params, the optimizer
    or ``tol`` (a converged solution depends on none of them). The rule assumes a
    solution: run to a tight ``tol`` and check ``converged``; :math:`H` must be positive
    definite there. A value that ``loss_fn`` closes over and that is being differentiated
    (captured from an enclosing ``jax.grad``) is treated as one of ``args``. See
    :func:`jaxopt_lab.implicit.implicit_solve`.

    ``state`` continues a run: pass a previous result's ``.params`` and ``.state``
    (schedules continue their count). 100 steps and then 100 more from there give the
    same numbers, bit for bit, as 200 steps at once.

    ``compute_dtype`` (e.g. ``jnp.bfloat16``) evaluates the loss with its floating
    params and ``args`` cast to it, the loss cast back (params, gradients and state keep
    their dtype); ``remat`` (True or a ``jax.checkpoint_policies`` policy) recomputes
    the loss's activations in the backward pass. See :mod:`jaxopt_lab.precision`.

    For example:

    >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
    >>> res = jol.minimize(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), jol.adam(0.1), 500)
    >>> [round(float(v), 3) for v in res.params], res.losses.shape
    ([3.0, 3.0], (500,))
    >>> X, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 2.0, 0.0])
    >>> def ridge(w, lam):  # d x*(lam) / d lam by implicit differentiation
    ...     return jnp.sum((X @ w - y) ** 2) + lam * jnp.sum(w**2)
    >>> solve = lambda lam: jol.minimize(ridge, jnp.zeros(2), jol.lbfgs(), 100, tol=1e-6,
    ...                                  args=(lam,), implicit_diff=True).params
    >>> jax.jacobian(solve)(0.1).shape
    (2,)
    """
    steps = check_count("steps", steps)
    dyn, static = _check_common(loss_fn, params, optimizer)
    tol = _host_tol(tol)
    _check_state(state, optimizer, params)
    check_implicit_options(args, implicit_diff, linear_solver)
    if implicit_diff:
        _check_unconstrained(optimizer, params)
    # the implicit rule differentiates the loss as given (its linear solve in the params'
    # dtype, not in a compute_dtype's rounding)
    if implicit_diff:  # a value the loss closes over is differentiated as an arg would be
        loss_fn, args = hoist_closure(loss_fn, params, args)
    exact_loss = loss_fn
    loss_fn = wrap_loss(loss_fn, compute_dtype, remat, bool(has_aux))  # equal wrappers: one compile
    if implicit_diff:  # the solution depends on none of them; a closure must not see a JVP tracer
        dyn, tol, state = _constants((dyn, tol, state))

    def solve(params, args):
        return _minimize(params, dyn, tol, state, args, loss_fn=loss_fn, steps=steps,
                         has_aux=bool(has_aux), static_opt=static, use_tol=tol is not None)  # fmt: skip

    if implicit_diff:
        result = implicit_solve(
            solve, exact_loss, params, args, has_aux=bool(has_aux), linear_solver=linear_solver
        )
    else:
        result = solve(params, args)
    # A line search cannot start from a non-finite value (the loop stops at once then).
    if evaluated_state(result.state) is not None and is_concrete(result.losses):
        first = np.asarray(result.losses)[0]  # one transfer; an eager slice costs ~0.15 ms
        if not np.isfinite(first):
            raise InputValueError(
                f"loss_fn(params) is {float(first)} at the starting point; a "
                "line-search method needs a finite value there (check the start and the loss)."
            )
    return result


def _host_tol(tol: Any) -> Any:
    """``tol`` checked, as a host scalar of the default float dtype (None stays None).
    A plain float, the usual case, is checked and converted once per value: the generic
    check and ``result_type`` cost about 8 us a call, a tenth of a small solve."""
    if type(tol) is float and tol >= 0:  # not NaN, not a bool, not a tracer
        return _float_tol(tol, bool(jax.config.jax_enable_x64))
    check_tol(tol)
    return None if tol is None else np.asarray(tol, jnp.result_type(float))


@functools.lru_cache(maxsize=64)
def _float_tol(tol: float, x64: bool) -> np.ndarray:
    out = np.asarray(tol, np.float64 if x64 else np.float32)
    out.flags.writeable = False  # shared between calls
    return out


def _check_unconstrained(optimizer: Any, params: Params) -> None:
    """The implicit rule needs a zero gradient at the solution, which a bounded solver's
    (``lbfgsb``, ``projected_gradient``: a projection in its record) does not have where
    a bound is active: refuse, rather than return wrong derivatives."""
    ev = evaluated_state(jax.eval_shape(optimizer.init, params))  # shapes only: no compute
    if ev is not None and ev.projection is not None:
        raise InputValueError(
            "implicit_diff=True needs an unconstrained solver: at a solution on a bound the "
            "gradient is not zero, and the implicit function theorem as implemented (for "
            "grad f = 0) would give wrong derivatives. Use an unconstrained optimizer, or "
            "differentiate a fixed number of steps."
        )


def _constants(tree: Any) -> Any:
    """``tree`` with derivatives stopped at its traced leaves (concrete ones as they are:
    an eager stop_gradient would cost a dispatch per leaf)."""
    return jax.tree.map(
        lambda x: jax.lax.stop_gradient(x) if isinstance(x, jax.core.Tracer) else x, tree
    )


def _record_params(carry, obs):
    del obs
    return carry.params


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps", "static_opt"))
def _trajectory(params, dyn_opt, *, loss_fn, steps, static_opt):
    check_scalar_fn(loss_fn, (params,), "loss_fn", False)
    optimizer = _optimizer(dyn_opt, static_opt)
    state = optimizer.init(params)
    step = core.stepper(optimizer, loss_fn, False, state)
    carry = core.start(step, loss_fn, False, params, state)
    carry, path = core.run_fixed(step, carry, None, record=_record_params, length=steps)
    return jax.tree.map(lambda rest, last: jnp.concatenate([rest, last[None]]), path, carry.params)


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
    steps = check_count("steps", steps)
    dyn, static = _check_common(loss_fn, params, optimizer)
    return _trajectory(params, dyn, loss_fn=loss_fn, steps=steps, static_opt=static)


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------


def data_size(data: Any, name: str = "data") -> int:
    """The shared leading size of every leaf of ``data``; an InputValueError if they differ."""
    leaves_with_path = jax.tree_util.tree_leaves_with_path(data)
    if not leaves_with_path:
        raise InputValueError(f"`{name}` must hold at least one array.")
    sizes = {}
    for path, leaf in leaves_with_path:
        shape = np.shape(leaf)
        if not shape:
            raise InputValueError(
                f"`{name}` leaves need a leading (example) axis; "
                f"{name}{jax.tree_util.keystr(path)} is a scalar."
            )
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) != 1:
        shown = ", ".join(f"{name}{k}: {v}" for k, v in sizes.items())
        raise InputValueError(f"`{name}` leaves must share their leading size; got {shown}.")
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
    jax.jit,
    static_argnames=("loss_fn", "batch_size", "epochs", "has_aux", "static_opt", "eval_fn",
                     "eval_every"),
)  # fmt: skip
def _fit(params, dyn_opt, data, key, state, start_epoch, eval_data, *, loss_fn, batch_size,
         epochs, has_aux, static_opt, eval_fn, eval_every):  # fmt: skip
    optimizer = _optimizer(dyn_opt, static_opt)
    n = jax.tree.leaves(data)[0].shape[0]
    first = jax.tree.map(lambda x: x[:batch_size], data)
    check_scalar_fn(loss_fn, (params, first), "loss_fn", bool(has_aux))  # at trace time only
    state = state0 = optimizer.init(params) if state is None else state
    step = core.stepper(optimizer, loss_fn, has_aux, state, lambda idx: _batch(data, idx))
    carry = core.start(step, loss_fn, has_aux, params, state, (first,))

    def epoch(carry, e):
        return core.run_fixed(step, carry, epoch_batches(key, e, n, batch_size))

    evals = None
    if eval_fn is None:
        carry, (losses, norms) = jax.lax.scan(epoch, carry, start_epoch + jnp.arange(epochs))
    else:  # the same batches, in blocks of eval_every steps across the epochs
        order = jax.vmap(lambda e: epoch_batches(key, e, n, batch_size))(
            start_epoch + jnp.arange(epochs)
        ).reshape(-1, batch_size)

        def evaluate(carry, _):
            args = () if eval_data is None else (eval_data,)
            return (jnp.asarray(eval_fn(carry.params, *args), jnp.result_type(float)),)

        carry, (losses, norms, evals) = core.run_blocks(
            step, carry, order.shape[0], eval_every, lambda ts: order[ts], evaluate
        )
    losses, norms = losses.reshape(-1), norms.reshape(-1)
    total = jnp.asarray(losses.size)
    status = core.fixed_status(losses, norms)
    fun = grad = total  # one evaluation of each step's batch; a line search adds its own
    ev0, ev = evaluated_state(state0), evaluated_state(carry.state)
    if ev is not None:
        fun = total + (ev.num_fun_evals - ev0.num_fun_evals)
        grad = total + (ev.num_grad_evals - ev0.num_grad_evals)
    return OptimizeResult(
        carry.params, carry.state, losses, norms, total, jnp.asarray(False), carry.last,
        fun, grad, status, evals,
    )  # fmt: skip


def _batch(data, idx):
    return jax.tree.map(lambda x: x[idx], data)


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
    state: Any = None,
    start_epoch: int = 0,
    eval_fn: Callable[..., Any] | None = None,
    eval_data: Any = None,
    eval_every: int | None = None,
    compute_dtype: Any = None,
    remat: Any = False,
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

    ``state`` and ``start_epoch`` continue a run: epochs ``start_epoch, ...,
    start_epoch + epochs - 1`` are trained from the given params and optimizer state,
    with the shuffles those epochs have in a single run. 5 epochs and then 5 more with
    ``start_epoch=5`` give the numbers of 10 at once, bit for bit.

    ``eval_fn(params, eval_data) -> scalar`` (``eval_fn(params)`` without ``eval_data``)
    evaluates the params after every ``eval_every`` steps and after the last (default:
    the last only), inside the same program: ``result.evals`` and ``result.eval_steps``.

    ``compute_dtype`` (e.g. ``jnp.bfloat16``) evaluates the loss with the floating params
    and batch cast to it, the loss cast back (params, gradients and state keep their
    dtype; ``eval_fn`` runs as given); ``remat`` (True or a ``jax.checkpoint_policies``
    policy) recomputes the loss's activations in the backward pass instead of storing
    them. See :mod:`jaxopt_lab.precision`.
    """
    epochs = check_count("epochs", epochs)
    batch_size = check_count("batch_size", batch_size)
    start_epoch = check_count("start_epoch", start_epoch, low=0)
    dyn, static = _check_common(loss_fn, params, optimizer)
    _check_state(state, optimizer, params)
    n = data_size(data)
    if batch_size > n:
        raise InputValueError(
            f"`batch_size` must be <= the number of examples ({n}), got {batch_size}."
        )
    key = check_key(key)
    loss_fn = wrap_loss(loss_fn, compute_dtype, remat, bool(has_aux))  # equal wrappers: one compile
    total = epochs * (n // batch_size)
    if eval_fn is None and (eval_data is not None or eval_every is not None):
        raise InputValueError("`eval_data` and `eval_every` need `eval_fn`.")
    if eval_fn is not None:
        check_callable("eval_fn", eval_fn, "a callable (params[, eval_data]) -> scalar")
        eval_every = (
            total if eval_every is None else min(check_count("eval_every", eval_every), total)
        )
    result = _fit(
        params,
        dyn,
        data,
        key,
        state,
        np.int32(start_epoch),
        eval_data,
        loss_fn=loss_fn,
        batch_size=batch_size,
        epochs=epochs,
        has_aux=bool(has_aux),
        static_opt=static,
        eval_fn=eval_fn,
        eval_every=eval_every,
    )
    if eval_fn is None:
        return result
    marks = np.minimum(np.arange(eval_every, total + eval_every, eval_every), total)
    return result._replace(eval_steps=marks)


__all__ = [
    "OptimizeResult",
    "Status",
    "data_size",
    "epoch_batches",
    "evaluated_state",
    "fit",
    "minimize",
    "trajectory",
]
