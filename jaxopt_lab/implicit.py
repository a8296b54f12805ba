r"""Derivatives of a solution by the implicit function theorem, and the guard that
refuses reverse-mode differentiation through a ``lax.while_loop`` solve.

A solve returns :math:`x^*(\theta)` with :math:`\nabla_x f(x^*, \theta) = 0`.
Differentiating that identity in :math:`\theta`,

.. math::

    H\, \dot x = -\,\partial_\theta \nabla_x f(x^*, \theta)\, \dot\theta,
    \qquad H = \nabla^2_{xx} f(x^*, \theta),

so the tangent of the solution needs one linear solve with :math:`H`, whatever the
iterations the solve took. :func:`implicit_solve` attaches this rule to any solve as a
``jax.custom_jvp`` whose tangent is linear in :math:`\dot\theta`: the solve with
:math:`H` goes through ``lax.custom_linear_solve`` (symmetric), so JAX can transpose
the rule and reverse mode works too. For a cotangent :math:`\bar x` on the solution,
``jax.grad`` solves :math:`H w = \bar x` (one more solve, by conjugate gradients with
Hessian-vector products ``jvp(grad f)``) and returns
:math:`\bar\theta = -(\partial_\theta \nabla_x f)^\top w` (one vjp). The loop the solve
ran is never differentiated or stored: a gradient costs about one extra solve.

Without implicit differentiation, reverse mode through a ``lax.while_loop`` fails
deep in JAX; :func:`refuse_reverse_mode` marks the outputs of such a solve with an
identity whose transpose raises :class:`ReverseModeError` instead, naming the option.
It is linear, so forward mode (``jax.jvp``, ``jax.jacfwd``) passes through it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._control import while_loop
from jaxopt_lab.checks import check_callable, check_flag
from jaxopt_lab.errors import InputTypeError, InputValueError

# --------------------------------------------------------------------------------------
# The linear solver
# --------------------------------------------------------------------------------------


class ConjugateGradient(NamedTuple):
    r"""Conjugate gradients for :math:`H w = b`, :math:`H` symmetric positive definite,
    on flat vectors: a callable ``(matvec, b) -> w``, the ``linear_solver`` of
    :func:`implicit_solve` and of ``jol.minimize(..., implicit_diff=True)``.

    Stops when :math:`\lVert b - Hw\rVert_2 \le \max(\text{rtol}\,\lVert b\rVert_2,
    \text{atol})` or after ``maxiter`` products. Defaults: ``rtol`` =
    :math:`\max(10^{-10}, 100\,\varepsilon)` of the dtype (1e-10 in float64, 1.2e-5 in
    float32), ``atol`` = 0, ``maxiter`` = :math:`10 n` (:math:`n` unknowns; exact
    arithmetic needs :math:`n`, rounding more on an ill-conditioned :math:`H`).
    """

    rtol: float | None = None
    atol: float = 0.0
    maxiter: int | None = None

    def __call__(self, matvec: Callable, b: jax.Array) -> jax.Array:
        eps = float(jnp.finfo(b.dtype).eps)
        rtol = max(1e-10, 100 * eps) if self.rtol is None else self.rtol
        maxiter = 10 * b.size if self.maxiter is None else self.maxiter
        bound = jnp.maximum(rtol * jnp.sqrt(jnp.vdot(b, b)), self.atol) ** 2

        def cond(c):
            i, _, _, _, rr = c
            return (i < maxiter) & (rr > bound)

        def body(c):
            i, w, r, p, rr = c
            hp = matvec(p)
            alpha = rr / jnp.vdot(p, hp)
            w, r = w + alpha * p, r - alpha * hp
            rr_new = jnp.vdot(r, r)
            return i + 1, w, r, r + (rr_new / rr) * p, rr_new

        start = (0, jnp.zeros_like(b), b, b, jnp.vdot(b, b))
        return while_loop(cond, body, start)[1]


def conjugate_gradient(
    rtol: float | None = None, atol: float = 0.0, maxiter: int | None = None
) -> ConjugateGradient:
    """A :class:`ConjugateGradient` solver (the default ``linear_solver``)."""
    return ConjugateGradient(rtol, atol, maxiter)


# --------------------------------------------------------------------------------------
# Implicit differentiation of a solve
# --------------------------------------------------------------------------------------


def _zero_tangent(x: Any) -> Any:
    """A zero tangent for an output: float0 for integer and boolean values (JAX's rule)."""
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.inexact):
        return jnp.zeros(np.shape(x), dtype)
    return np.zeros(np.shape(x), jax.dtypes.float0)


def _loss_only(loss_fn: Callable, has_aux: bool) -> Callable:
    return (lambda *a: loss_fn(*a)[0]) if has_aux else loss_fn


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _solution(solve, loss_fn, has_aux, linear_solver, params, args):
    return solve(params, args)


@_solution.defjvp
def _solution_jvp(solve, loss_fn, has_aux, linear_solver, primals, tangents):
    r"""The tangent of the result along :math:`\dot\theta` (``tangents[1]``); the
    starting params' tangent is dropped: a solution does not depend on its start."""
    params, args = primals
    # the primal through the rule itself, not `solve`: a derivative of this tangent
    # (reverse over anything, jax.grad(jax.grad(...))) then differentiates the rule
    # again instead of the solve's while loop
    result = _solution(solve, loss_fn, has_aux, linear_solver, params, args)
    x_dot, loss_dot, aux_dot = _tangents(
        result.params, args, tangents[1], loss_fn=loss_fn, has_aux=has_aux,
        linear_solver=linear_solver,
    )  # fmt: skip
    # losses[j] for j >= num_steps repeat the loss at the final params (the padding of
    # a run that stopped early); the earlier history stays constant
    at_end = jnp.arange(result.losses.shape[-1]) >= result.num_steps
    losses_dot = jnp.where(at_end, loss_dot, 0).astype(result.losses.dtype)
    result_dot = jax.tree.map(_zero_tangent, result)._replace(params=x_dot, losses=losses_dot)
    if has_aux:
        result_dot = result_dot._replace(aux=aux_dot)
    return result, result_dot


# compiled once per loss and shapes: eagerly, the CG loop would be traced and compiled
# again at every call (a new closure each time)
@functools.partial(jax.jit, static_argnames=("loss_fn", "has_aux", "linear_solver"))
def _tangents(solution, args, args_dot, *, loss_fn, has_aux, linear_solver):
    r""":math:`\dot x = -H^{-1} \partial_\theta\nabla_x f\,\dot\theta` at the solution, and
    the tangents of the loss (and aux) there; linear in ``args_dot``."""
    x, unravel = ravel_pytree(solution)
    f = _loss_only(loss_fn, has_aux)

    def grad_x(v, a):  # the flat gradient of f in x
        return ravel_pytree(jax.grad(f)(unravel(v), *a))[0]

    # b = d/dt grad_x f(x*, theta + t theta_dot): one forward-over-reverse pass
    b = jax.jvp(lambda a: grad_x(x, a), (args,), (args_dot,))[1]

    def hvp(v):
        return jax.jvp(lambda u: grad_x(u, args), (x,), (v,))[1]

    x_dot = -jax.lax.custom_linear_solve(hvp, b, linear_solver, symmetric=True)
    # the loss (and aux) at the solution move with both x* and theta
    _, out_dot = jax.jvp(lambda u, a: loss_fn(unravel(u), *a), (x, args), (x_dot, args_dot))
    loss_dot, aux_dot = out_dot if has_aux else (out_dot, None)
    return unravel(x_dot), loss_dot, aux_dot


def implicit_solve(
    solve: Callable[[Any, tuple], Any],
    loss_fn: Callable[..., Any],
    params: Any,
    args: tuple,
    *,
    has_aux: bool = False,
    linear_solver: Callable[[Callable, jax.Array], jax.Array] | None = None,
) -> Any:
    r"""``solve(params, args)``, differentiable in ``args`` by the implicit function theorem.

    Args:
      solve: ``(params, args) -> result`` with ``result.params`` :math:`\approx x^*`, a
        stationary point of ``loss_fn(·, *args)``, and ``result.losses`` /
        ``result.num_steps`` / ``result.aux`` as in ``jol.OptimizeResult`` (a
        NamedTuple: the tangent is built with ``_replace``). It must not close over
        values being differentiated (JAX would report a leaked tracer): pass them in
        ``args``, or ``lax.stop_gradient`` them (a solver's settings do not move its
        solution).
      loss_fn: ``loss_fn(params, *args) -> scalar`` (``(scalar, aux)`` with
        ``has_aux``), the function ``solve`` minimizes; for least squares
        :math:`\tfrac12\lVert r(x, \theta)\rVert^2`.
      params: the starting params (no derivative flows to them: the solution of a
        converged solve does not depend on its start).
      args: a tuple of pytrees :math:`\theta`.
      linear_solver: ``(matvec, b) -> w`` solving :math:`Hw = b` on flat vectors
        (:class:`ConjugateGradient` by default); :math:`H` must be positive definite
        at the solution.

    Returns:
      ``solve``'s result. Its derivatives (``jax.jvp``, ``jax.grad``, ``jax.jacfwd``,
      under ``jit`` and ``vmap``) w.r.t. ``args`` are: for ``params``,
      :math:`\dot x = -H^{-1}\partial_\theta\nabla_x f\,\dot\theta`; for the loss at the
      solution (``losses[j]``, :math:`j \ge` ``num_steps``) and ``aux``, their total
      derivative through :math:`x^*` and :math:`\theta`. The rest of the result (the
      history, the state, the counts) is constant. The rule holds at a solution: a
      run that stopped on its budget gets the derivative at the point it reached.
    """
    check_callable("solve", solve, "a callable (params, args) -> result")
    check_callable("loss_fn", loss_fn)
    if not isinstance(args, tuple):
        raise InputTypeError(f"`args` must be a tuple of pytrees, got {type(args).__name__}.")
    linear_solver = conjugate_gradient() if linear_solver is None else linear_solver
    check_callable("linear_solver", linear_solver, "a callable (matvec, b) -> solution")
    return _solution(solve, loss_fn, bool(has_aux), linear_solver, params, args)


# --------------------------------------------------------------------------------------
# Refusing reverse mode through a while loop
# --------------------------------------------------------------------------------------


class ReverseModeError(InputValueError):
    """Reverse-mode differentiation (``jax.grad``, ``jax.vjp``) through a solve that runs
    a ``lax.while_loop``; the message says which option differentiates it."""


def _refuse_transpose(ct, x, *, message):
    raise ReverseModeError(message)


def _make_guard() -> Any:
    """The identity primitive, or None where this JAX lacks the extension interfaces it
    is built on (they are semi-public): then no guard, and JAX's own error."""
    try:
        from jax.extend.core import Primitive
        from jax.interpreters import ad, batching, mlir

        guard = Primitive("jaxopt_lab_reverse_mode_guard")
        guard.def_impl(lambda x, *, message: x)
        guard.def_abstract_eval(lambda aval, *, message: aval)
        batching.defvectorized(guard)
        mlir.register_lowering(guard, lambda ctx, x, *, message: [x])  # no op in the program
        # linear: the tangent goes through the guard too, and transposing it raises
        ad.deflinear2(guard, _refuse_transpose)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - other JAX versions
        return None
    return guard


_guard_p = _make_guard()


def check_implicit_options(args: Any, implicit_diff: Any, linear_solver: Any) -> None:
    """The options of a solve that can be differentiated implicitly (``jol.minimize``,
    ``jol.least_squares``): ``args`` a tuple, ``implicit_diff`` a flag, and a
    ``linear_solver`` only with it."""
    if not isinstance(args, tuple):
        raise InputTypeError(
            "`args` must be a tuple of pytrees (the function is called as f(params, "
            f"*args)), got {type(args).__name__}; write args=(x,) for a single one."
        )
    check_flag("implicit_diff", implicit_diff)
    if linear_solver is not None:
        if not implicit_diff:
            raise InputValueError("`linear_solver` is used only with implicit_diff=True.")
        check_callable("linear_solver", linear_solver, "a callable (matvec, b) -> solution")


def hoist_closure(fn: Callable, params: Any, args: tuple) -> tuple[Callable, tuple]:
    """``(fn, args)`` with the values ``fn`` closes over that are being differentiated
    (JVP tracers, e.g. a regularisation strength captured from an enclosing
    ``jax.grad``) made explicit trailing arguments, ``fn(params, *args, *hoisted)``, so
    that the implicit rule differentiates the solution in them too. Unchanged when it
    closes over none (the same function: no new compile)."""
    converted, hoisted = jax.closure_convert(fn, params, *args)
    if not hoisted:
        return fn, args
    return converted, (*args, *hoisted)


def reverse_mode_message(solver: str, when: str, alternative: str = "") -> str:
    """What :class:`ReverseModeError` says for ``solver``, which loops ``when``."""
    return (
        f"{solver} cannot be differentiated in reverse mode (jax.grad, jax.vjp) when it "
        f"{when}. For derivatives of the solution with respect to `args`, pass "
        "`implicit_diff=True` (by the implicit function theorem, about the cost of one "
        f"more solve){alternative}. Forward mode (jax.jvp, jax.jacfwd) works as it is."
    )


def refuse_reverse_mode(tree: Any, message: str) -> Any:
    """``tree`` unchanged (its floating leaves through an identity that compiles to
    nothing), but transposing its derivative (reverse mode, ``jax.grad``) raises
    :class:`ReverseModeError` with ``message`` before JAX reaches the while loop
    upstream of it (transposition runs backwards). Forward mode is untouched."""

    if _guard_p is None:
        return tree

    def guard(x):
        if isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.inexact):
            return _guard_p.bind(x, message=message)
        return x

    return jax.tree.map(guard, tree)


__all__ = [
    "ConjugateGradient",
    "ReverseModeError",
    "conjugate_gradient",
    "implicit_solve",
    "refuse_reverse_mode",
]
