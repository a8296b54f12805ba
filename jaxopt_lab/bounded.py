r"""Box-constrained solvers: L-BFGS-B and projected gradient.

Both minimize :math:`f(x)` subject to :math:`l \le x \le u` (for
:func:`projected_gradient`, :math:`x \in C` for any set with a projection
:math:`P_C`). They are optimizers like :func:`jaxopt_lab.lbfgs`, whose ``update`` also
takes ``value``, ``grad`` and ``value_fn``: run them with
``jol.minimize(f, x0, jol.lbfgsb(lower=l, upper=u), steps, tol=...)``.

**Convergence.** At a bounded solution the gradient is not zero, so the state's
:class:`~jaxopt_lab._tree.Evaluated` record carries the projection ``P`` onto the
feasible set; ``jol.minimize`` then starts from :math:`P(x_0)` (a start outside the box
is projected first, as SciPy does) and its ``tol`` and ``grad_norms`` use the
projected-gradient norm :math:`\lVert P(x - \nabla f(x)) - x\rVert_2`, zero exactly at
the stationary points of the constrained problem (first-order / KKT points).

**Bounds are data.** ``lower`` and ``upper`` are a scalar (for every entry) or a pytree
with the params' structure whose leaves are scalars or arrays broadcastable to the
params' leaves; :math:`\pm\infty` means unbounded. They are leaves of the optimizer, so a
new bound value reuses the compiled program, and a batch of bounds goes through
``jax.vmap``.

References: R. H. Byrd, P. Lu, J. Nocedal and C. Zhu, "A limited memory algorithm for
bound constrained optimization", *SIAM J. Sci. Comput.* 16(5), 1995 (BLNZ below);
J. L. Morales and J. Nocedal, "Remark on Algorithm 778: L-BFGS-B", *ACM TOMS* 38(1),
2011; R. H. Byrd, J. Nocedal and R. B. Schnabel, "Representations of quasi-Newton
matrices and their use in limited memory methods", *Math. Prog.* 63, 1994 (BNS);
D. P. Bertsekas, *Nonlinear Programming*, 2nd ed., 1999, section 2.3 (projection arc);
J. Barzilai and J. M. Borwein, "Two-point step size gradient methods", *IMA J. Numer.
Anal.* 8, 1988.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._box import (
    bounds_args,
    box_projection,
    check_bound,
    check_order,
    dot,
    empty_record,
    feasible_step,
    flat_bounds,
    flat_start,
    pack_tree,
    projection_box,
    unpack_tree,
)
from jaxopt_lab._control import while_loop
from jaxopt_lab._lbfgsb import (
    Memory,
    cauchy_point,
    compact_form,
    dense_form,
    dense_max,
    dense_subspace_point,
    empty_memory,
    max_feasible_step,
    remember,
    subspace_point,
)
from jaxopt_lab._tree import Evaluated
from jaxopt_lab.base import HParams, Optimizer, Params, Static, bind
from jaxopt_lab.checks import check_callable, check_count
from jaxopt_lab.errors import InputTypeError, InputValueError
from jaxopt_lab.linesearch import (
    _check_wolfe,
    flat_arguments,
    initial_step_guess,
    made_no_progress,
    rounding_tolerance,
    zoom_search,
)

# --------------------------------------------------------------------------------------
# L-BFGS-B: the iteration
# --------------------------------------------------------------------------------------


class LBFGSBState(NamedTuple):
    """``memory``: the pairs (:class:`Memory`); ``prev_value``: :math:`f(x_{k-1})`
    (NaN before the first step); ``evaluated``: value, gradient and counts at the
    params, the stalled flag and the box projection; ``ok``: whether the last line
    search met its conditions; ``fresh``: the memory is empty (start or restart)."""

    memory: Memory
    prev_value: jax.Array
    evaluated: Evaluated
    ok: jax.Array
    fresh: jax.Array


def _lbfgsb_init(h: HParams, params: Params) -> LBFGSBState:
    x, nan = flat_start(params)
    projection = box_projection(unpack_tree(*h.lower), unpack_tree(*h.upper), params, x.dtype)
    record = empty_record(params, nan, projection)
    return LBFGSBState(empty_memory(h.memory_size, x), nan, record, jnp.asarray(True),
                       jnp.asarray(True))  # fmt: skip


def _direction(mem: Memory, x, g, lo, hi):
    """The search direction :math:`\\bar x - x` (Cauchy point, then subspace
    minimization), and whether it is one of descent."""
    if x.size <= dense_max(mem.s.shape[0]):  # static: small n, n x n arrays are cheaper
        wt, big_m = dense_form(mem)
        x_cp, c, free = cauchy_point(x, g, lo, hi, wt, big_m, mem.theta)
        x_bar = dense_subspace_point(x, g, lo, hi, x_cp, c, free, mem.theta, big_m)
    else:
        wt, big_m = compact_form(mem)
        x_cp, c, free = cauchy_point(x, g, lo, hi, wt, big_m, mem.theta)
        x_bar = subspace_point(x, g, lo, hi, x_cp, c, free, mem, wt, big_m)
    d = x_bar - x
    slope = dot(g, d)
    return d, jnp.isfinite(slope) & (slope < 0)


def _forget_unless(keep, mem: Memory, fresh: Memory) -> Memory:
    """``mem`` where ``keep``, else the empty memory ``fresh``."""
    if mem.sy.size:  # static: the compact form reads every row
        return jax.tree.map(lambda a, b: jnp.where(keep, a, b), mem, fresh)
    # dense_form reads only the last `count` rows: forgetting sets count (and theta), and
    # leaves the pairs where they are instead of selecting them for every member
    theta = jnp.where(keep, mem.theta, fresh.theta)
    return mem._replace(theta=theta, count=jnp.where(keep, mem.count, fresh.count))


def _lbfgsb_update(h, updates, state: LBFGSBState, params=None, *, value=None, grad=None,
                   value_fn=None, **extra):  # fmt: skip
    """One L-BFGS-B iteration: direction, line search inside the box, memory update."""
    del updates, extra
    x0, unravel, g, value = flat_arguments("lbfgsb", params, value, grad, value_fn)
    lo, hi = flat_bounds(unpack_tree(*h.lower), unpack_tree(*h.upper), params, x0.dtype)
    x = jnp.clip(x0, lo, hi)  # jol.minimize starts feasible; by hand a start is projected

    def value_and_grad(v):  # evaluated inside the box, also when rounding steps outside
        # (in the params' dtype: a loss that promotes to float64 must not change the
        # line search's carry types)
        f, gv = jax.value_and_grad(lambda z: value_fn(unravel(z)))(jnp.clip(v, lo, hi))
        return f.astype(v.dtype), gv.astype(v.dtype)

    d, descent = _direction(state.memory, x, g, lo, hi)
    # Not downhill (rounding, a poor memory): forget the memory and take the projected
    # steepest-descent direction P(x - g) - x, downhill unless x is stationary.
    d = jnp.where(descent, d, jnp.clip(x - g, lo, hi) - x)
    fresh = empty_memory(h.memory_size, x)
    memory = _forget_unless(descent, state.memory, fresh)
    restarted = state.fresh | ~descent
    first = jnp.isnan(state.prev_value)
    slope = dot(g, d)
    # First trial step as jol.lbfgs: unit length first, then 1 (the quasi-Newton step
    # to the subspace minimizer), N&W eq. 3.60 after a restart. When every variable has
    # two finite bounds, the first trial is 1 too (the projected point x_bar, as L-BFGS-B
    # does): the box bounds its length (Rosenbrock-100 in a box: 32 iterations, not 42).
    prev = jnp.where(first, value + jnp.linalg.norm(g) / 2, state.prev_value)
    boxed = jnp.all(jnp.isfinite(lo) & jnp.isfinite(hi))
    unit = jnp.where(boxed, 1.0, jnp.minimum(1.0, 1.0 / jnp.linalg.norm(d)))
    full = jnp.where(first, unit, 1.0)
    start = jnp.where(restarted & ~first, initial_step_guess(value, prev, slope), full)
    # The line search stays in the box; on the first iteration (B_0 = I, no curvature
    # known) it does not go past the projected point x_bar either, as in L-BFGS-B.
    max_step = max_feasible_step(x, d, lo, hi)
    constrained = jnp.any(jnp.isfinite(lo) | jnp.isfinite(hi))
    max_step = jnp.minimum(
        jnp.where(first & constrained, jnp.minimum(max_step, 1.0), max_step), 1e10
    )
    res = zoom_search(value_and_grad, x, d, value, g, start, c1=h.c1, c2=h.c2,
                      max_steps=h.max_linesearch_steps, max_step_size=max_step,
                      accept_at_max=True)  # fmt: skip
    stuck = made_no_progress(res, x, d, value, g)
    stalled = stuck & restarted
    step = jnp.where(stuck, jnp.zeros_like(res.step), res.step)
    u = feasible_step(x0, jnp.clip(step * d + x, lo, hi), lo, hi)
    g_new = jnp.where(stuck, g, res.grad.astype(x.dtype))
    memory = remember(memory, x0 + u - x, g_new - g)
    memory = _forget_unless(~stuck, memory, fresh)
    ev = state.evaluated
    evaluated = Evaluated(
        jnp.where(stuck, value, res.value), unravel(g_new), ev.num_fun_evals + res.num_evals,
        ev.num_grad_evals + res.num_evals, ev.num_hvp_evals, stalled, ev.projection,
    )  # fmt: skip
    prev_value = jnp.where(stuck, state.prev_value, value)
    return unravel(u), LBFGSBState(memory, prev_value, evaluated, res.ok, stuck)


def lbfgsb(
    lower: Any = None,
    upper: Any = None,
    memory_size: int = 10,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_linesearch_steps: int = 30,
) -> Optimizer:
    r"""L-BFGS-B (BLNZ 1995): limited-memory BFGS for :math:`\min f(x)` subject to
    :math:`l \le x \le u`. Each iteration

    1. forms the compact L-BFGS matrix :math:`B = \theta I - W M W^\top` of the last
       ``memory_size`` pairs (BNS 1994; :math:`\theta = y^\top y / s^\top y` of the newest);
       for :math:`n \le 2\,` ``memory_size`` the same matrix as an :math:`n \times n`
       array (BFGS recursion from :math:`\theta I`), which is cheaper there;
    2. finds the generalized Cauchy point: the first minimizer of the quadratic model
       along the projected steepest-descent path :math:`P(x - t g)`, which fixes the
       active set (variables at a bound there);
    3. minimizes the model over the free variables (direct primal method), projects the
       result onto the box and keeps it if it is downhill from :math:`x`, else backtracks
       it onto the box (Morales & Nocedal 2011, as L-BFGS-B 3.0);
    4. runs a strong-Wolfe line search (:func:`~jaxopt_lab.linesearch.zoom_search`,
       ``c1``, ``c2``) along :math:`d = \bar x - x` with the step capped where the box
       ends (a step at the cap is accepted on sufficient decrease alone while the
       function still decreases there), first trial as :func:`jaxopt_lab.lbfgs` (unit
       length, then 1; 1 from the start when every variable has two finite bounds);
    5. stores :math:`(s, y)` unless :math:`s^\top y \le \varepsilon y^\top y`.

    ``lower``/``upper``: None (unbounded), a number, or a pytree with the params'
    structure (leaves: Python numbers or floating arrays broadcastable to the params';
    not NaN); :math:`\pm\infty` allowed; ``lower > upper`` anywhere raises. They are
    leaves of the optimizer: a new value reuses the compiled program and they can be
    vmapped. Params outside the box are projected first. With infinite bounds the
    direction is that of :func:`jaxopt_lab.lbfgs` (same :math:`H_0`, same first steps),
    up to rounding. A failed line search forgets the memory and retries from the
    projected steepest-descent direction; from a fresh memory it stops ("no progress",
    status 2). ``jol.minimize``'s ``tol`` bounds the projected-gradient norm
    :math:`\lVert P(x - g) - x\rVert`.

    Everything is fixed-shape JAX (free sets are masks, the breakpoint search a
    ``while_loop``): ``jit``, ``vmap`` over starts or bounds, CPU or GPU.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> f = lambda x: jnp.sum((x - 2.0) ** 2)
    >>> res = jol.minimize(f, jnp.zeros(3), jol.lbfgsb(upper=1.0), 50, tol=1e-6)
    >>> res.params, int(res.status)
    (Array([1., 1., 1.], dtype=float32), 0)
    """
    check_count("memory_size", memory_size)
    _check_wolfe(c1, c2)
    check_count("max_linesearch_steps", max_linesearch_steps)
    bounds = bounds_args(lower, upper)
    return Optimizer(
        bind(_lbfgsb_init, memory_size=Static(int(memory_size)), **bounds),
        bind(_lbfgsb_update, memory_size=Static(int(memory_size)), c1=c1, c2=c2,
             max_linesearch_steps=max_linesearch_steps, **bounds),
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Projected gradient
# --------------------------------------------------------------------------------------


class ProjectedGradientState(NamedTuple):
    """``step``: the first trial step of the next search (Barzilai-Borwein, NaN before
    the first); ``evaluated``: value, gradient, counts and the projection."""

    step: jax.Array
    evaluated: Evaluated


def _apply_projection(h: HParams, tree: Params) -> Params:
    return h.projection(tree, *unpack_tree(*h.args))


def _pg_init(h: HParams, params: Params) -> ProjectedGradientState:
    _, nan = flat_start(params)
    projection = bind(_apply_projection, projection=h.projection, args=h.args)
    return ProjectedGradientState(nan, empty_record(params, nan, projection))


def _arc_search(h, value_and_grad, project, x, g, value, step0):
    r"""Armijo backtracking along the projection arc :math:`x(\alpha) = P(x - \alpha
    g)` (Bertsekas 1999, section 2.3.1, "Armijo rule along the projection arc"): the first
    :math:`\alpha = \beta^k \alpha_0` with :math:`f(x(\alpha)) \le f(x) + c_1 g^\top
    (x(\alpha) - x)` and a finite value, at most ``max_linesearch_steps`` evaluations."""
    f_tol = rounding_tolerance(value)

    def trial(a):
        z = project(x - a * g)
        f, gz = value_and_grad(z)
        passes = jnp.isfinite(f) & (f <= value + h.c1 * dot(g, z - x) + f_tol)
        return z, f, gz, passes

    def cond(c):
        return (c[0] < h.max_linesearch_steps) & ~c[-1]

    def body(c):
        a = c[1] * h.decrease_factor
        return (c[0] + 1, a, *trial(a))

    return while_loop(cond, body, (jnp.asarray(1), step0, *trial(step0)))


def _pg_update(h, updates, state: ProjectedGradientState, params=None, *, value=None,
               grad=None, value_fn=None, **extra):  # fmt: skip
    """One projected-gradient step, with a fixed learning rate or the arc search."""
    del updates, extra
    x0, unravel, g, value = flat_arguments("projected_gradient", params, value, grad, value_fn)
    projection = state.evaluated.projection

    def project(v):
        return ravel_pytree(projection(unravel(v)))[0].astype(v.dtype)

    def value_and_grad(v):
        f, gv = jax.value_and_grad(lambda z: value_fn(unravel(z)))(v)
        return f.astype(v.dtype), gv.astype(v.dtype)

    x = project(x0)
    if h.learning_rate is not None:
        z = project(x - h.learning_rate * g)
        f, gz = value_and_grad(z)
        n_evals, ok, next_step = jnp.asarray(1), jnp.isfinite(f), state.step
    else:
        # The first trial moves x by about unit length; then the Barzilai-Borwein step
        # s's / s'y of the last move, or the last step grown by 1/beta without curvature.
        unit = 1.0 / jnp.linalg.norm(project(x - g) - x)
        step0 = jnp.where(jnp.isnan(state.step), unit, state.step)
        step0 = jnp.clip(jnp.where(jnp.isfinite(step0), step0, 1.0), 1e-10, 1e10)
        n_evals, a, z, f, gz, ok = _arc_search(h, value_and_grad, project, x, g, value, step0)
        s, y = z - x, gz - g
        sy = dot(s, y)
        next_step = jnp.where(sy > 0, dot(s, s) / jnp.where(sy > 0, sy, 1.0), a / h.decrease_factor)
    moved = jnp.any(z != x)
    stalled = ~ok | ~moved  # the next search would repeat this one exactly
    z = jnp.where(ok, z, x)
    if h.box is not None:  # a box: keep x + u inside it despite rounding
        lo, hi = flat_bounds(*unpack_tree(*h.box), params, x.dtype)
        u = feasible_step(x0, z, lo, hi)
    else:
        u = z - x0
    ev = state.evaluated
    evaluated = Evaluated(
        jnp.where(ok, f, value), unravel(jnp.where(ok, gz, g)), ev.num_fun_evals + n_evals,
        ev.num_grad_evals + n_evals, ev.num_hvp_evals, stalled, projection,
    )  # fmt: skip
    return unravel(u), ProjectedGradientState(next_step, evaluated)


def projected_gradient(
    projection: Callable[..., Params],
    learning_rate: Any = None,
    *,
    projection_args: tuple = (),
    c1: float = 1e-4,
    decrease_factor: float = 0.5,
    max_linesearch_steps: int = 30,
) -> Optimizer:
    r"""Projected gradient descent :math:`x_{k+1} = P(x_k - \alpha_k \nabla f(x_k))` onto
    a convex set :math:`C`, with ``projection(params, *projection_args)`` its Euclidean
    projection :math:`P` (e.g. :func:`projection_box` with ``projection_args=(lower,
    upper)``; the args are leaves of the optimizer: new values reuse the compiled
    program, and they can be vmapped).

    * ``learning_rate=None`` (the default): :math:`\alpha_k` by Armijo backtracking along
      the projection arc (Bertsekas, *Nonlinear Programming*, 1999, section 2.3): the
      first of :math:`\alpha_0, \beta\alpha_0, \beta^2\alpha_0, \dots`
      (:math:`\beta` = ``decrease_factor``) with :math:`f(x(\alpha)) \le f(x) + c_1
      \nabla f(x)^\top (x(\alpha) - x)`. :math:`\alpha_0` is the Barzilai-Borwein step
      :math:`s^\top s / s^\top y` of the last move (unit length on the first iteration),
      which makes it far faster than a fixed step on ill-conditioned problems while the
      search keeps every step a descent step. A search that finds no step (after
      ``max_linesearch_steps`` evaluations) stops the run: "no progress", status 2.
    * a number: the fixed step :math:`\alpha_k` = ``learning_rate`` (one evaluation per
      iteration; converges for :math:`\alpha < 2/L` on an :math:`L`-smooth convex
      :math:`f`).

    ``jol.minimize``'s ``tol`` bounds :math:`\lVert P(x - \nabla f) - x\rVert`, and the
    start is projected first. Iterates are feasible up to the projection's rounding
    (exactly, for :func:`projection_box`).

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> f = lambda x: jnp.sum((x - 2.0) ** 2)
    >>> opt = jol.projected_gradient(jol.projection_box, projection_args=(0.0, 1.0))
    >>> jol.minimize(f, jnp.zeros(2), opt, 20, tol=1e-6).params
    Array([1., 1.], dtype=float32)
    """
    check_callable("projection", projection)
    if not isinstance(projection_args, tuple):
        raise InputTypeError(
            f"`projection_args` must be a tuple, got {type(projection_args).__name__}."
        )
    if learning_rate is not None:
        if callable(learning_rate) or isinstance(learning_rate, (bool, np.bool_)):
            raise InputTypeError(
                f"`learning_rate` must be a number or None, got {learning_rate!r}."
            )
        concrete = not isinstance(learning_rate, jax.core.Tracer)
        if concrete and not np.all(np.asarray(learning_rate) > 0):
            raise InputValueError(f"`learning_rate` must be > 0, got {learning_rate!r}.")
    _check_wolfe(c1, None)
    check_count("max_linesearch_steps", max_linesearch_steps)
    if not 0 < decrease_factor < 1:
        raise InputValueError(f"`decrease_factor` must be in (0, 1), got {decrease_factor!r}.")
    box = False
    if projection is projection_box:
        if len(projection_args) != 2:
            raise InputValueError("projection_box needs `projection_args=(lower, upper)`.")
        lower, upper = (
            check_bound(n, b) for n, b in zip(("lower", "upper"), projection_args, strict=True)
        )
        check_order(lower, upper)
        projection_args = (lower, upper)
        box = True
    args = pack_tree(projection_args)
    init = bind(_pg_init, projection=projection, args=args)
    update = bind(_pg_update, learning_rate=learning_rate, c1=c1, decrease_factor=decrease_factor,
                  max_linesearch_steps=max_linesearch_steps, box=args if box else None)  # fmt: skip
    return Optimizer(init, update)


__all__ = [
    "LBFGSBState",
    "ProjectedGradientState",
    "lbfgsb",
    "projected_gradient",
    "projection_box",
]
