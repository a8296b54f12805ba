r"""Line searches: choose the step :math:`\alpha` along a direction :math:`d`.

Both searches work on :math:`\phi(\alpha) = f(x + \alpha d)` with
:math:`\phi'(\alpha) = \nabla f(x + \alpha d)^\top d`, and need a descent direction
(:math:`\phi'(0) < 0`). They run inside ``lax.while_loop``, so they compile, ``vmap``
(each member stops on its own test; the batch runs as long as its slowest member) and
differentiate like any other JAX code.

* :func:`armijo_search`: backtracking until the *sufficient decrease* (Armijo) condition
  :math:`\phi(\alpha) \le \phi(0) + c_1 \alpha \phi'(0)` holds, shrinking
  :math:`\alpha` by ``decrease_factor`` (Nocedal & Wright, *Numerical Optimization*, 2nd
  ed., 2006, Algorithm 3.1).
* :func:`zoom_search`: the *strong Wolfe* conditions, sufficient decrease plus
  :math:`|\phi'(\alpha)| \le c_2 |\phi'(0)|`, by bracketing and zooming with safeguarded
  cubic interpolation (Nocedal & Wright, Algorithms 3.5 and 3.6, and eq. 3.59).

:func:`backtracking_linesearch` and :func:`zoom_linesearch` wrap them as transforms: the
incoming updates are the direction, the outgoing ones :math:`\alpha d`. They need the
extra arguments ``value``, ``grad`` and ``value_fn`` (``jol.minimize`` passes them), so
they can follow any first-order optimizer in a chain, e.g.
``jol.chain(jol.sgd(1.0), jol.zoom_linesearch())``.

Both record the value and gradient at the point they accept (:class:`Evaluated`), which
``jol.minimize`` reuses instead of evaluating again, and count the function and gradient
evaluations they make.

**No further progress.** A search at the limit of floating-point precision cannot tell
its trial points apart: their values differ by rounding only, and the steps between
them move no component of the params past the spacing of floats there. Then
:func:`made_no_progress` holds, and an update that would only repeat the same search
(the direction was steepest descent, or a quasi-Newton memory that is already fresh)
sets ``Evaluated.stalled``, leaves the params where they were, and ``jol.minimize``
stops with status 2, as SciPy's BFGS stops on "precision loss".
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab._control import while_loop
from jaxopt_lab._tree import Evaluated, global_norm, tree_axpy, tree_scale, tree_vdot
from jaxopt_lab.base import HParams, Optimizer, Params, Static, bind
from jaxopt_lab.checks import check_count, check_open_unit, check_positive, check_same_structure
from jaxopt_lab.errors import InputTypeError, InputValueError

# --------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------


def require_extra_args(name: str, value: Any, grad: Any, value_fn: Any) -> None:
    """A clear error when an optimizer that evaluates the loss is called without it."""
    missing = [
        n for n, v in (("value", value), ("grad", grad), ("value_fn", value_fn)) if v is None
    ]
    if missing:
        raise InputTypeError(
            f"{name} evaluates the loss itself, so `update` needs the keyword arguments "
            f"value=f(params), grad=∇f(params) and value_fn=f (missing: {', '.join(missing)}). "
            f"jol.minimize passes them; by hand: "
            f"opt.update(grad, state, params, value=f(params), grad=grad, value_fn=f)."
        )


def flat_arguments(name: str, params: Any, value: Any, grad: Any, value_fn: Any) -> tuple:
    """The arguments of an ``update`` that evaluates the loss itself, checked and
    flattened: ``(x, unravel, g, value)``, with the gradient and the value in the
    params' dtype (``ravel_pytree``'s common dtype)."""
    require_extra_args(name, value, grad, value_fn)
    if params is None:
        raise InputTypeError(f"{name} needs `params`.")
    check_same_structure(grad, params, "params")
    x, unravel = ravel_pytree(params)
    g = ravel_pytree(grad)[0].astype(x.dtype)
    return x, unravel, g, jnp.asarray(value, x.dtype)


class SearchResult(NamedTuple):
    """An accepted step: :math:`\\alpha`, :math:`f` and :math:`\\nabla f` there, the
    evaluations spent, and whether the line search's conditions were met."""

    step: jax.Array
    value: jax.Array
    grad: Params
    num_evals: jax.Array
    ok: jax.Array


def _check_wolfe(c1: Any, c2: Any | None) -> None:
    """Line-search constants: ``0 < c1 < 1`` and, for the strong Wolfe conditions,
    ``c1 < c2 < 1``."""
    check_open_unit("c1", c1)
    if c2 is not None and not c1 < check_open_unit("c2", c2):
        raise InputValueError(f"The Wolfe conditions need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}.")


def rounding_tolerance(value: jax.Array) -> jax.Array:
    """How far apart two values of the loss near ``value`` may be by rounding alone:
    :math:`4 \varepsilon |f|`. Differences under it are not told apart."""
    dtype = jnp.result_type(value)
    return 4 * jnp.finfo(dtype).eps * jnp.abs(value)


def within_rounding(params: Params, direction: Params, base: Any, width: Any) -> jax.Array:
    r"""Whether the steps :math:`\alpha \in [\text{base}, \text{base} + \text{width}]`
    along ``direction`` all land on the same floats, give or take one: every component
    has :math:`|\text{width}\, d_i| \le \varepsilon\, |x_i + \text{base}\, d_i|`, the
    spacing of floats there. True for an empty tree."""
    parts = [
        jnp.all(jnp.abs(width * d) <= jnp.finfo(x.dtype).eps * jnp.abs(x + base * d))
        for x, d in zip(jax.tree.leaves(params), jax.tree.leaves(direction), strict=True)
    ]
    return jnp.all(jnp.stack(parts)) if parts else jnp.asarray(True)


def made_no_progress(
    res: SearchResult,
    params: Params,
    direction: Params,
    value: jax.Array,
    grad: Params,
    *,
    failed_counts: bool = True,
) -> jax.Array:
    r"""Whether the search ended on a point no better than where it started, as far as
    floating point can tell: the value there is not measurably lower, and either the
    step moves no component of the params past the spacing of floats
    (:func:`within_rounding`) or the search failed (``failed_counts``: a strong Wolfe
    search that bracketed and zoomed without finding a point, which happens at the
    precision limit; a backtracking search's failure only says its steps were too long,
    so it does not count there).

    A decrease :math:`\Delta = \phi(0) - \phi(\alpha)` is measurable when it exceeds
    the rounding of :math:`f` (:func:`rounding_tolerance`) and is no more than twice
    what the slopes at both ends allow, :math:`\alpha \max(|\phi'(0)|,
    |\phi'(\alpha)|)` (the mean value theorem: over so short a step the slope hardly
    changes). A loss summed from terms that cancel (a least-squares fit) is computed
    with errors far above :math:`\varepsilon |f|`; at the precision limit the search
    then meets values lower than :math:`f` by noise alone, many times more than the
    slope could give."""
    dtype = jnp.result_type(value)
    drop = value - res.value
    f_tol = rounding_tolerance(value)
    slopes = jnp.maximum(
        jnp.abs(tree_vdot(grad, direction)), jnp.abs(tree_vdot(res.grad, direction))
    )
    explained = drop <= 2 * jnp.abs(res.step) * slopes.astype(dtype) + f_tol
    decreased = (drop > f_tol) & explained
    still = within_rounding(params, direction, 0.0, res.step)
    return ~decreased & ((~res.ok if failed_counts else False) | still)


# --------------------------------------------------------------------------------------
# Armijo backtracking
# --------------------------------------------------------------------------------------


def armijo_search(
    value_and_grad_fn: Callable[[Params], tuple[jax.Array, Params]],
    params: Params,
    direction: Params,
    value: jax.Array,
    grad: Params,
    initial_step: jax.Array,
    *,
    c1: Any = 1e-4,
    decrease_factor: Any = 0.5,
    max_steps: int = 30,
) -> SearchResult:
    r"""Backtrack from ``initial_step`` until
    :math:`f(x + \alpha d) \le f(x) + c_1 \alpha \nabla f(x)^\top d` (and the value is
    finite), multiplying :math:`\alpha` by ``decrease_factor``; at most ``max_steps``
    evaluations. When none passes, the last (smallest) step is returned with ``ok``
    False."""
    slope = tree_vdot(grad, direction)
    dtype = jnp.result_type(value)
    step0 = jnp.asarray(initial_step, dtype)

    def trial(step):
        f, g = value_and_grad_fn(tree_axpy(step, direction, params))
        return f, g

    def passes(step, f):
        return jnp.isfinite(f) & (f <= value + c1 * step * slope)

    f0, g0 = trial(step0)

    def cond(carry):
        i, step, f, _ = carry
        return (i < max_steps) & ~passes(step, f)

    def body(carry):
        i, step, _, _ = carry
        step = step * decrease_factor
        f, g = trial(step)
        return i + 1, step, f, g

    i, step, f, g = while_loop(cond, body, (jnp.asarray(1), step0, f0, g0))
    return SearchResult(step, f, g, i, passes(step, f))


# --------------------------------------------------------------------------------------
# Strong Wolfe: bracket and zoom
# --------------------------------------------------------------------------------------


def _cubic_minimizer(a, fa, da, b, fb, db):
    r"""Minimizer of the cubic through :math:`(a, f_a, f'_a)` and :math:`(b, f_b, f'_b)`
    (Nocedal & Wright eq. 3.59); NaN when it has none."""
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.where(disc >= 0, disc, jnp.nan))
    return b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)


class _Zoom(NamedTuple):
    i: jax.Array  # evaluations made
    done: jax.Array
    stuck: jax.Array  # nothing left to tell apart (see zoom_search): give up
    bracketed: jax.Array  # stage: False while bracketing, True while zooming
    lo: jax.Array  # the best step with sufficient decrease so far (0 at the start)
    f_lo: jax.Array
    d_lo: jax.Array
    g_lo: Params
    hi: jax.Array  # the other end of the bracket (while zooming)
    f_hi: jax.Array
    d_hi: jax.Array
    trial: jax.Array  # the next step to evaluate


def _next_trial(z: _Zoom, a, f, d, low, high, bracketed, max_step_size):
    """The zoom's next trial step: in the bracket, the cubic's minimizer when it lies well
    inside (10% from either end), else the midpoint; still bracketing, an extrapolation."""
    lo, f_lo, d_lo = low
    hi, f_hi, d_hi = high
    width = hi - lo
    # One cubic: in the bracket, through its ends. Still bracketing (a is the low end,
    # still going down too steeply), through the previous low end and a, extrapolated and
    # kept within [a + 1.1 (a - lo), a + 4 (a - lo)] (the safeguard of More & Thuente,
    # 1994); on a quadratic this lands on the minimizer along d.
    inner, outer = (lo, f_lo, d_lo, hi, f_hi, d_hi), (z.lo, z.f_lo, z.d_lo, a, f, d)
    ends = [jnp.where(bracketed, u, v) for u, v in zip(inner, outer, strict=True)]
    cubic = _cubic_minimizer(*ends)
    inside = (
        jnp.isfinite(cubic)
        & (jnp.abs(cubic - lo) > 0.1 * jnp.abs(width))
        & (jnp.abs(hi - cubic) > 0.1 * jnp.abs(width))
    )
    reach = a - z.lo
    beyond = jnp.where(jnp.isfinite(cubic), cubic, a + 4.0 * reach)
    beyond = jnp.clip(beyond, a + 1.1 * reach, a + 4.0 * reach)
    return jnp.where(
        bracketed, jnp.where(inside, cubic, lo + 0.5 * width), jnp.minimum(beyond, max_step_size)
    )


def _stuck(z: _Zoom, a, f, d, finite, bracketed, f_tol, line, lo, width):
    """Whether nothing is left to tell apart, so the zoom gives up as when out of
    evaluations: the bracket is narrower than the spacing of floats, or the value is
    noise. It is
    noise when, between the low end and a, the slope hardly changes (the function is
    all but linear there) and yet the value moves off the line through them by more
    than its rounding and ten times more than the slopes allow: a smaller step would
    move it less still, so nothing the values say can be trusted."""
    params, direction = line
    span = a - z.lo
    off_line = jnp.abs(f - z.f_lo - span * (d + z.d_lo) / 2)
    allowed = jnp.maximum(f_tol, 10 * jnp.abs(span) * jnp.maximum(jnp.abs(d), jnp.abs(z.d_lo)))
    noise = finite & (jnp.abs(d - z.d_lo) <= 0.5 * jnp.abs(z.d_lo)) & (off_line > allowed)
    unresolved = bracketed & within_rounding(params, direction, lo, width)
    return noise | unresolved


def zoom_search(
    value_and_grad_fn: Callable[[Params], tuple[jax.Array, Params]],
    params: Params,
    direction: Params,
    value: jax.Array,
    grad: Params,
    initial_step: jax.Array,
    *,
    c1: Any = 1e-4,
    c2: Any = 0.9,
    max_steps: int = 30,
    max_step_size: float = 1e10,
    extra_condition: Callable[[Params], jax.Array] | None = None,
    accept_at_max: bool = False,
) -> SearchResult:
    r"""A step satisfying the strong Wolfe conditions

    .. math::
        \phi(\alpha) \le \phi(0) + c_1 \alpha \phi'(0), \qquad
        |\phi'(\alpha)| \le c_2 |\phi'(0)|,

    found by trying ``initial_step``, extrapolating (by the cubic through the last two
    trials, 1.1-4x further) while the function still decreases with a steep negative
    slope, then zooming into the bracket with safeguarded cubic interpolation (Nocedal &
    Wright, Algorithms 3.5 and 3.6). ``extra_condition(grad_at_step)``, when given, must
    also hold for a step to be accepted (the search goes on otherwise). At most
    ``max_steps`` evaluations of value and gradient; when they run out, the best step
    with sufficient decrease seen is returned (``ok`` False), or the step 0 if none had.
    The search gives up the same way as soon as there is nothing left to tell apart:
    when the bracket is so narrow that every step in it lands on the same params, give
    or take one float per component (:func:`within_rounding`; MINPACK's line search stops
    there too, on "rounding errors prevent progress"), or when the values are noise: the
    slope hardly changes between the low end and the trial, yet the value there is off
    the line through them by more than its rounding and ten times more than the slopes
    allow (a loss summed from terms that cancel, such as a least-squares fit, is
    computed with errors far above :math:`\varepsilon |f|`).

    ``accept_at_max``: a step of ``max_step_size`` with sufficient decrease where the
    function still decreases is accepted even if the slope is steep (a bound-constrained
    search cannot go further, and would otherwise try the same step again until out of
    evaluations); where it increases again, the search zooms back into the bracket.
    """
    dtype = jnp.result_type(value)
    slope = tree_vdot(grad, direction).astype(dtype)
    zero = jnp.zeros((), dtype)
    step0 = jnp.minimum(jnp.asarray(initial_step, dtype), max_step_size)
    f_tol = rounding_tolerance(jnp.asarray(value, dtype))

    def body(z: _Zoom) -> _Zoom:
        a = z.trial
        f, g = value_and_grad_fn(tree_axpy(a, direction, params))
        d = tree_vdot(g, direction).astype(dtype)
        finite = jnp.isfinite(f) & jnp.isfinite(d)
        # a is "worse" when it fails sufficient decrease or is no lower than the low end:
        # it becomes the high end. Otherwise it is the new low end, accepted if the
        # slope is flat enough; the old low end becomes the high end when the slope at
        # a points back past it (Algorithm 3.5's phi'(a) >= 0, 3.6's phi'(a)(hi - lo) >= 0).
        # Values within rounding of each other are not told apart (f_tol): near a
        # minimizer the decrease along d falls under the rounding of f, and the slope
        # alone then decides (the approximate Wolfe idea of Hager & Zhang, 2005).
        worse = ~(finite & (f <= value + c1 * a * slope + f_tol)) | (f > z.f_lo + f_tol)
        accept = ~worse & (jnp.abs(d) <= -c2 * slope)
        if extra_condition is not None:
            accept = accept & extra_condition(g)
        if accept_at_max:
            accept = accept | (~worse & (a >= max_step_size) & (d < 0))
        turn = ~worse & jnp.where(z.bracketed, d * (z.hi - z.lo) >= 0, d >= 0)
        bracketed = z.bracketed | worse | turn

        def pick(cond, x, y):
            return jax.tree.map(lambda u, v: jnp.where(cond, u, v), x, y)

        lo, f_lo, d_lo, g_lo = pick(worse, (z.lo, z.f_lo, z.d_lo, z.g_lo), (a, f, d, g))
        hi, f_hi, d_hi = pick(
            worse, (a, f, d), pick(turn, (z.lo, z.f_lo, z.d_lo), (z.hi, z.f_hi, z.d_hi))
        )
        next_trial = _next_trial(z, a, f, d, (lo, f_lo, d_lo), (hi, f_hi, d_hi), bracketed,
                                 max_step_size)  # fmt: skip
        stuck = ~accept & _stuck(z, a, f, d, finite, bracketed, f_tol, (params, direction),
                                 lo, hi - lo)  # fmt: skip
        # an accepted step is the new low end (it is not worse): the loop ends there
        return _Zoom(
            i=z.i + 1, done=accept, stuck=stuck, bracketed=bracketed,
            lo=lo, f_lo=f_lo, d_lo=d_lo, g_lo=g_lo, hi=hi, f_hi=f_hi, d_hi=d_hi, trial=next_trial,
        )  # fmt: skip

    init = _Zoom(
        i=jnp.asarray(0),
        done=jnp.asarray(False),
        stuck=jnp.asarray(False),
        bracketed=jnp.asarray(False),
        lo=zero,
        f_lo=jnp.asarray(value, dtype),
        d_lo=slope,
        g_lo=grad,
        hi=zero,
        f_hi=jnp.asarray(value, dtype),
        d_hi=slope,
        trial=step0,
    )
    # (Peeling the first trial off the loop, which most quasi-Newton searches accept,
    # saved 3-5% of a small solve but cost 0.35 s more compile time per solver program.)
    z = while_loop(lambda z: (z.i < max_steps) & ~z.done & ~z.stuck, body, init)
    # Accepted, the step is the low end; out of evaluations or stuck, the search falls
    # back on it too (the best step with sufficient decrease, or 0).
    return SearchResult(z.lo, z.f_lo, z.g_lo, z.i, z.done)


# --------------------------------------------------------------------------------------
# As transforms
# --------------------------------------------------------------------------------------


class LineSearchState(NamedTuple):
    """``step``: the last accepted step; ``prev_value``: the loss before the last step
    (for the next initial step); ``evaluated``: see :class:`Evaluated`. The transforms
    set ``evaluated.stalled`` when the search made no progress (:func:`made_no_progress`)
    along a direction parallel to :math:`-\nabla f` (steepest descent, as from
    ``jol.sgd``): the optimizer before them would only hand it over again."""

    step: jax.Array
    prev_value: jax.Array
    evaluated: Evaluated


def initial_step_guess(value: jax.Array, prev_value: jax.Array, slope: jax.Array) -> jax.Array:
    r"""The first trial step: :math:`\min(1, 2.02\,(f_k - f_{k-1}) / \phi'(0))`,
    i.e. the step at which a quadratic with the last decrease would bottom out (Nocedal
    & Wright eq. 3.60, capped at the unit step). On the first iteration
    :math:`f_{k-1}` is taken as :math:`f_0 + \lVert\nabla f_0\rVert / 2`, which makes
    the first step about unit length along the steepest-descent direction."""
    guess = 2.02 * (value - prev_value) / slope
    guess = jnp.where(jnp.isfinite(guess) & (guess > 0), guess, 1.0)
    return jnp.minimum(1.0, guess)


def _ls_init(h: HParams, params: Params) -> LineSearchState:
    leaves = jax.tree.leaves(params)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    dtype = dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32
    nan = jnp.full((), jnp.nan, dtype)
    zeros = jnp.zeros((), jnp.int32)
    return LineSearchState(
        jnp.ones((), dtype),
        nan,
        Evaluated(
            nan, jax.tree.map(jnp.zeros_like, params), zeros, zeros, zeros, jnp.asarray(False)
        ),
    )


def _ls_update(
    h: HParams,
    updates,
    state: LineSearchState,
    params=None,
    *,
    value=None,
    grad=None,
    value_fn=None,
    **extra,
):
    del extra
    require_extra_args(h.name, value, grad, value_fn)
    if params is None:
        raise InputTypeError(f"{h.name} needs `params`.")
    check_same_structure(updates, params, "params")
    value = jnp.asarray(value)
    slope = tree_vdot(grad, updates)
    first = jnp.isnan(state.prev_value)
    prev = jnp.where(first, value + jnp.sqrt(tree_vdot(grad, grad)) / 2, state.prev_value)
    line = (jax.value_and_grad(value_fn), params, updates, value, grad)
    if h.kind == "armijo":
        start = jnp.where(first, 1.0, state.step / h.decrease_factor) if h.reuse_step else 1.0
        start = jnp.minimum(start, h.max_step_size)
        res = armijo_search(*line, start, c1=h.c1, decrease_factor=h.decrease_factor,
                            max_steps=h.max_steps)  # fmt: skip
    else:
        start = initial_step_guess(value, prev, slope)
        res = zoom_search(*line, start, c1=h.c1, c2=h.c2, max_steps=h.max_steps,
                          max_step_size=h.max_step_size)  # fmt: skip
    # Stalled: no progress along a direction that is steepest descent (parallel to -grad
    # up to rounding), which the optimizer before us can only hand over again. Along
    # another direction (a momentum, a preconditioner) the next one may differ, so the
    # search's step is taken as it is.
    dtype = jnp.result_type(value)
    parallel = 1 - jnp.sqrt(jnp.finfo(dtype).eps)
    steepest = -slope >= parallel * global_norm(grad) * global_norm(updates)
    stuck = made_no_progress(res, params, updates, value, grad, failed_counts=h.kind == "zoom")
    stalled = stuck & steepest
    step = jnp.where(stalled, jnp.zeros_like(res.step), res.step)  # stalled: stay put
    ev = state.evaluated
    # The search runs in the loss's dtype; the state keeps the dtypes `init` gave it (the
    # params'), so a loss that promotes (float32 params, a float64 loss) keeps the loop's
    # carry types.
    evaluated = Evaluated(
        jnp.where(stalled, value, res.value).astype(ev.value.dtype),
        jax.tree.map(
            lambda a, b, p: jnp.where(stalled, a, b).astype(p.dtype), grad, res.grad, ev.grad
        ),  # fmt: skip
        ev.num_fun_evals + res.num_evals,
        ev.num_grad_evals + res.num_evals,
        ev.num_hvp_evals,
        stalled,
    )
    # a stalled search moves nothing, but keeps its step for the next search to start from
    kept = jnp.where(stalled, state.step, res.step).astype(state.step.dtype)
    prev_value = value.astype(state.prev_value.dtype)
    return tree_scale(step, updates), LineSearchState(kept, prev_value, evaluated)


def backtracking_linesearch(
    c1: float = 1e-4,
    decrease_factor: float = 0.5,
    max_steps: int = 30,
    *,
    reuse_step: bool = False,
    max_step_size: float = 1.0,
) -> Optimizer:
    r"""Scale the incoming direction :math:`d` by the first step of
    :math:`1, \rho, \rho^2, \dots` (:math:`\rho` = ``decrease_factor``) with sufficient
    decrease :math:`f(x + \alpha d) \le f(x) + c_1 \alpha \nabla f^\top d` (Armijo;
    Nocedal & Wright Algorithm 3.1). With ``reuse_step`` the search starts from the
    last accepted step over :math:`\rho` (capped at ``max_step_size``) instead of 1.

    Needs ``value``, ``grad`` and ``value_fn`` at ``update`` (``jol.minimize`` passes
    them): ``jol.chain(jol.sgd(1.0), jol.backtracking_linesearch())``.
    """
    _check_wolfe(c1, None)
    check_open_unit("decrease_factor", decrease_factor)
    check_count("max_steps", max_steps)
    check_positive("max_step_size", max_step_size)
    return Optimizer(
        bind(_ls_init),
        bind(
            _ls_update,
            name="backtracking_linesearch",
            kind="armijo",
            c1=c1,
            decrease_factor=decrease_factor,
            max_steps=max_steps,
            reuse_step=Static(bool(reuse_step)),
            max_step_size=max_step_size,
            c2=None,
        ),
    )


def zoom_linesearch(
    c1: float = 1e-4,
    c2: float = 0.9,
    max_steps: int = 30,
    *,
    max_step_size: float = 1e10,
) -> Optimizer:
    r"""Scale the incoming direction :math:`d` by a step satisfying the strong Wolfe
    conditions (see :func:`zoom_search`); the first trial step follows Nocedal & Wright
    eq. 3.60 (:func:`initial_step_guess`). ``c2 = 0.9`` suits quasi-Newton directions,
    ``c2 = 0.1`` to ``0.4`` conjugate gradients.

    Needs ``value``, ``grad`` and ``value_fn`` at ``update`` (``jol.minimize`` passes
    them): ``jol.chain(jol.sgd(1.0), jol.zoom_linesearch())``.
    """
    _check_wolfe(c1, c2)
    check_count("max_steps", max_steps)
    check_positive("max_step_size", max_step_size)
    return Optimizer(
        bind(_ls_init),
        bind(
            _ls_update,
            name="zoom_linesearch",
            kind="zoom",
            c1=c1,
            c2=c2,
            max_steps=max_steps,
            max_step_size=max_step_size,
            decrease_factor=None,
            reuse_step=Static(False),
        ),
    )


__all__ = [
    "Evaluated",
    "LineSearchState",
    "SearchResult",
    "armijo_search",
    "backtracking_linesearch",
    "initial_step_guess",
    "made_no_progress",
    "rounding_tolerance",
    "within_rounding",
    "zoom_linesearch",
    "zoom_search",
]
