r"""Gradient transformations: the building blocks every optimizer is chained from.

Each transform is an :class:`~jaxopt_lab.base.Optimizer` whose ``update`` maps incoming
updates :math:`g_t` (gradients, or the output of the previous transform) to outgoing
updates :math:`u_t`. States are small ``NamedTuple``\ s. Hyperparameters are leaves of
the transform's pytree (see :mod:`jaxopt_lab.base`), so they may be Python numbers,
arrays or tracers; derived constants such as :math:`1-\beta` are computed when the
transform is built.

Conventions shared with optax, the numerical reference: the step counter is ``int32`` and
saturates; bias corrections divide by :math:`1-\beta^t` computed in the moment's
precision after the power is taken in float32 (or float64 with x64); a learning-rate
schedule is evaluated at the count *before* it is incremented.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab._tree import abs_sq, global_norm
from jaxopt_lab.base import (
    EmptyState,
    Optimizer,
    Params,
    ScalarOrSchedule,
    Static,
    Updates,
    accepts_extra_args,
    bind,
    complement,
    identity,
    safe_increment,
    stateless,
    tree_cast,
    tree_full_like,
    tree_map,
    tree_zeros_like,
)
from jaxopt_lab.checks import (
    canonical_dtype,
    check_callable,
    check_count,
    check_flag,
    check_hyperparameter,
    check_optimizer,
    check_same_structure,
)
from jaxopt_lab.errors import InputTypeError, InputValueError

NO_PARAMS_MSG = "This transform needs `params`: call `update(grads, state, params)`."


# --------------------------------------------------------------------------------------
# Shared math
# --------------------------------------------------------------------------------------


def _ema(updates: Updates, moments: Updates, decay, one_minus_decay, order: int) -> Updates:
    r""":math:`m \leftarrow (1-\beta)\, g + \beta\, m` (``order=1``) or
    :math:`m \leftarrow (1-\beta)\, |g|^2 + \beta\, m` (``order=2``), elementwise.

    A second moment is of the magnitude, :math:`|g|^2 = \bar g g`, so it stays real and
    non-negative for complex gradients (as optax's are)."""
    power = abs_sq if order == 2 else (lambda g: g**order)
    return tree_map(lambda g, m: one_minus_decay * power(g) + decay * m, updates, moments)


@functools.partial(jax.jit, inline=True)
def _bias_correction_factor(decay, count):
    # Taking the power in (at least) float32 keeps beta**t from rounding to 1 in bf16.
    return 1 - decay**count


def _bias_correct(moment: Updates, decay, count) -> Updates:
    r""":math:`\hat m = m / (1-\beta^t)`, the division in the moment's own dtype."""
    factor = _bias_correction_factor(decay, count)
    return tree_map(lambda m: m / factor.astype(m.dtype), moment)


def _count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def _betas(b1: Any, b2: Any) -> dict[str, Any]:
    """Moment decay rates with their complements, computed once (in float64 for Python
    floats, as optax does)."""
    return dict(b1=b1, b2=b2, one_minus_b1=complement(b1), one_minus_b2=complement(b2))


def _check_probability(name: str, value: Any) -> None:
    check_hyperparameter(name, value, low=0.0, high=1.0)


# --------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------


def scale(step_size: Any) -> Optimizer:
    r"""Multiply updates by a constant: :math:`u = \alpha\, g`."""
    check_hyperparameter("step_size", step_size, low=None)
    return stateless(_scale, step_size=step_size)


def _scale(h, updates, params):
    del params
    return tree_map(lambda g: h.step_size * g, updates)


class ScaleByScheduleState(NamedTuple):
    count: jax.Array


def scale_by_schedule(step_size_fn: Callable[[jax.Array], Any]) -> Optimizer:
    r"""Multiply by a schedule: :math:`u_t = \eta(t)\, g_t` with :math:`t` the number of
    previous updates (so the first update uses :math:`\eta(0)`)."""
    check_callable("step_size_fn", step_size_fn)
    return Optimizer(
        bind(_count_init), bind(_scale_by_schedule, schedule=step_size_fn, sign=Static(1))
    )


def _count_init(h, params):
    del h, params
    return ScaleByScheduleState(count=_count())


def _scale_by_schedule(h, updates, state, params=None, **extra_args):
    del params, extra_args
    step = h.sign * h.schedule(state.count)
    updates = tree_map(lambda g: jnp.array(step, dtype=g.dtype) * g, updates)
    return updates, ScaleByScheduleState(count=safe_increment(state.count))


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None = None, *, flip_sign: bool = True
) -> Optimizer:
    r"""Scale by the learning rate, a number or a schedule:
    :math:`u_t = -\eta_t\, g_t` (or :math:`+\eta_t g_t` with ``flip_sign=False``).

    ``learning_rate=None`` is the identity (as for Adadelta without a learning rate).
    """
    check_flag("flip_sign", flip_sign)
    if learning_rate is None:
        return identity()
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    sign = Static(-1 if flip_sign else 1)
    if callable(learning_rate):
        return Optimizer(
            bind(_count_init), bind(_scale_by_schedule, schedule=learning_rate, sign=sign)
        )
    return stateless(_scale_by_lr, learning_rate=learning_rate, sign=sign)


def _scale_by_lr(h, updates, params):
    del params
    step = h.sign * h.learning_rate
    return tree_map(lambda g: step * g, updates)


def scale_by_sign() -> Optimizer:
    r""":math:`u = \operatorname{sign}(g)` (signSGD; Bernstein et al., 2018,
    arXiv:1802.04434)."""
    return stateless(_scale_by_sign)


def _scale_by_sign(h, updates, params):
    del h, params
    return tree_map(jnp.sign, updates)


# --------------------------------------------------------------------------------------
# Momentum
# --------------------------------------------------------------------------------------


class TraceState(NamedTuple):
    trace: Params


def trace(decay: Any, nesterov: bool = False, accumulator_dtype: Any = None) -> Optimizer:
    r"""Heavy-ball momentum (Polyak, 1964): :math:`m_t = g_t + \mu\, m_{t-1}`,
    :math:`u_t = m_t`; with ``nesterov=True`` (Sutskever et al., 2013)
    :math:`u_t = g_t + \mu\, m_t`.

    ``accumulator_dtype`` sets the dtype of :math:`m` (e.g. float32 for bf16 params).
    """
    check_hyperparameter("decay", decay)
    check_flag("nesterov", nesterov)
    dtype = Static(canonical_dtype("accumulator_dtype", accumulator_dtype))
    return Optimizer(
        bind(_trace_init, dtype=dtype),
        bind(_trace_update, decay=decay, nesterov=Static(nesterov), dtype=dtype),
    )


def _trace_init(h, params):
    return TraceState(trace=tree_zeros_like(params, h.dtype))


def _trace_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.trace, "optimizer state")
    momentum = lambda g, m: g + h.decay * m  # noqa: E731
    new_trace = tree_map(momentum, updates, state.trace)
    updates = tree_map(momentum, updates, new_trace) if h.nesterov else new_trace
    return updates, TraceState(trace=tree_cast(new_trace, h.dtype))


# --------------------------------------------------------------------------------------
# Adaptive scalings
# --------------------------------------------------------------------------------------


class ScaleByRssState(NamedTuple):
    sum_of_squares: Updates


def scale_by_rss(initial_accumulator_value: Any = 0.1, eps: Any = 1e-7) -> Optimizer:
    r"""AdaGrad's scaling (Duchi et al., 2011, JMLR 12):
    :math:`s_t = s_{t-1} + |g_t|^2`, :math:`u_t = g_t / \sqrt{s_t + \epsilon}`
    (and :math:`u_t = 0` where :math:`s_t = 0`)."""
    check_hyperparameter("initial_accumulator_value", initial_accumulator_value)
    check_hyperparameter("eps", eps)
    return Optimizer(bind(_rss_init, initial=initial_accumulator_value), bind(_rss_update, eps=eps))


def _rss_init(h, params):
    return ScaleByRssState(sum_of_squares=tree_full_like(params, h.initial))


def _rss_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.sum_of_squares, "optimizer state")
    sum_sq = tree_map(lambda g, s: abs_sq(g) + s, updates, state.sum_of_squares)
    updates = tree_map(
        lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + h.eps), 0.0) * g, updates, sum_sq
    )
    return updates, ScaleByRssState(sum_of_squares=sum_sq)


class ScaleByRmsState(NamedTuple):
    nu: Updates


class ScaleByRmsWithCountState(NamedTuple):
    count: jax.Array
    nu: Updates


class ScaleByRStdDevState(NamedTuple):
    mu: Updates
    nu: Updates


class ScaleByRStdDevWithCountState(NamedTuple):
    count: jax.Array
    mu: Updates
    nu: Updates


def _check_rms_args(decay, eps, initial_scale, eps_in_sqrt, bias_correction) -> None:
    _check_probability("decay", decay)
    check_hyperparameter("eps", eps)
    check_hyperparameter("initial_scale", initial_scale)
    check_flag("eps_in_sqrt", eps_in_sqrt)
    check_flag("bias_correction", bias_correction)


def _rms_hparams(decay, eps, eps_in_sqrt, bias_correction) -> dict[str, Any]:
    return dict(
        decay=decay,
        one_minus_decay=complement(decay),
        eps=eps,
        eps_in_sqrt=Static(eps_in_sqrt),
        bias_correction=Static(bias_correction),
    )


def _rms_scaling(h, variance):
    if h.eps_in_sqrt:
        return jax.lax.rsqrt(variance + h.eps)
    return 1 / (jnp.sqrt(variance) + h.eps)


def scale_by_rms(
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> Optimizer:
    r"""RMSProp's scaling (Tieleman & Hinton, 2012, Coursera lecture 6.5):
    :math:`\nu_t = \rho\,\nu_{t-1} + (1-\rho)\, |g_t|^2`,
    :math:`u_t = g_t / \sqrt{\hat\nu_t + \epsilon}` (or
    :math:`g_t / (\sqrt{\hat\nu_t} + \epsilon)` with ``eps_in_sqrt=False``), where
    :math:`\hat\nu_t = \nu_t / (1-\rho^t)` if ``bias_correction`` else :math:`\nu_t`.
    :math:`\nu_0` = ``initial_scale``."""
    _check_rms_args(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
    return Optimizer(
        bind(_rms_init, initial=initial_scale, bias_correction=Static(bias_correction)),
        bind(_rms_update, **_rms_hparams(decay, eps, eps_in_sqrt, bias_correction)),
    )


def _rms_init(h, params):
    nu = tree_full_like(params, h.initial)
    return ScaleByRmsWithCountState(_count(), nu) if h.bias_correction else ScaleByRmsState(nu)


def _rms_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    nu = _ema(updates, state.nu, h.decay, h.one_minus_decay, 2)
    if not h.bias_correction:
        return tree_map(lambda g, n: _rms_scaling(h, n) * g, updates, nu), ScaleByRmsState(nu)
    count = safe_increment(state.count)
    nu_hat = _bias_correct(nu, h.decay, count)
    updates = tree_map(lambda g, n: _rms_scaling(h, n) * g, updates, nu_hat)
    return updates, ScaleByRmsWithCountState(count, nu)


def scale_by_stddev(
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> Optimizer:
    r"""Centered RMSProp's scaling (Graves, 2013, arXiv:1308.0850): as
    :func:`scale_by_rms` but divides by the estimated standard deviation,
    :math:`u_t = g_t / \sqrt{\hat\nu_t - |\hat\mu_t|^2 + \epsilon}`, with
    :math:`\mu_t = \rho\,\mu_{t-1} + (1-\rho)\, g_t`."""
    _check_rms_args(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
    return Optimizer(
        bind(_stddev_init, initial=initial_scale, bias_correction=Static(bias_correction)),
        bind(_stddev_update, **_rms_hparams(decay, eps, eps_in_sqrt, bias_correction)),
    )


def _stddev_init(h, params):
    mu, nu = tree_zeros_like(params), tree_full_like(params, h.initial)
    if h.bias_correction:
        return ScaleByRStdDevWithCountState(_count(), mu, nu)
    return ScaleByRStdDevState(mu, nu)


def _stddev_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    mu = _ema(updates, state.mu, h.decay, h.one_minus_decay, 1)
    nu = _ema(updates, state.nu, h.decay, h.one_minus_decay, 2)
    scaled = lambda mh, nh: tree_map(  # noqa: E731
        lambda g, m, n: _rms_scaling(h, n - abs_sq(m)) * g, updates, mh, nh
    )
    if not h.bias_correction:
        return scaled(mu, nu), ScaleByRStdDevState(mu, nu)
    count = safe_increment(state.count)
    updates = scaled(_bias_correct(mu, h.decay, count), _bias_correct(nu, h.decay, count))
    return updates, ScaleByRStdDevWithCountState(count, mu, nu)


class ScaleByAdamState(NamedTuple):
    count: jax.Array
    mu: Updates
    nu: Updates


def _check_adam_args(b1, b2, eps, eps_root) -> None:
    _check_probability("b1", b1)
    _check_probability("b2", b2)
    check_hyperparameter("eps", eps)
    check_hyperparameter("eps_root", eps_root)


def _adam_init(h, params):
    return ScaleByAdamState(
        count=_count(), mu=tree_zeros_like(params, h.mu_dtype), nu=tree_zeros_like(params)
    )


def _first_moment_hat(h, mu, updates, count):
    r""":math:`\hat m_t`; with Nesterov (Dozat, 2016) the look-ahead
    :math:`\beta_1 \hat m_{t+1} + (1-\beta_1)\, g_t / (1-\beta_1^t)`."""
    if not h.nesterov:
        return _bias_correct(mu, h.b1, count)
    return tree_map(
        lambda m, g: h.b1 * m + h.one_minus_b1 * g,
        _bias_correct(mu, h.b1, safe_increment(count)),
        _bias_correct(updates, h.b1, count),
    )


def _adam_direction(h, mu_hat, nu_hat):
    return tree_map(lambda m, v: m / (jnp.sqrt(v + h.eps_root) + h.eps), mu_hat, nu_hat)


def scale_by_adam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""Adam's scaling (Kingma & Ba, 2015, arXiv:1412.6980):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2,\quad
        u_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}.

    ``nesterov=True`` gives NAdam (Dozat, 2016). ``mu_dtype`` sets :math:`m`'s dtype.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> tx = jol.scale_by_adam()
    >>> g = jnp.array([0.3, -4.0])
    >>> u, state = tx.update(g, tx.init(g))  # first step: m/(1-b1) = g, v/(1-b2) = g^2
    >>> print(u.round(4), int(state.count))
    [ 1. -1.] 1
    """
    _check_adam_args(b1, b2, eps, eps_root)
    check_flag("nesterov", nesterov)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_adam_init, mu_dtype=mu_dtype),
        bind(
            _adam_update,
            **_betas(b1, b2),
            eps=eps,
            eps_root=eps_root,
            mu_dtype=mu_dtype,
            nesterov=Static(nesterov),
        ),
    )


def _adam_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    mu = _ema(updates, state.mu, h.b1, h.one_minus_b1, 1)
    nu = _ema(updates, state.nu, h.b2, h.one_minus_b2, 2)
    count = safe_increment(state.count)
    mu_hat = _first_moment_hat(h, mu, updates, count)
    nu_hat = _bias_correct(nu, h.b2, count)
    updates = _adam_direction(h, mu_hat, nu_hat)
    nu = tree_map(lambda n, old: n.astype(old.dtype), nu, state.nu)
    return updates, ScaleByAdamState(count=count, mu=tree_cast(mu, h.mu_dtype), nu=nu)


class ScaleByAmsgradState(NamedTuple):
    count: jax.Array
    mu: Updates
    nu: Updates
    nu_max: Updates


def scale_by_amsgrad(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> Optimizer:
    r"""AMSGrad (Reddi et al., 2018, ICLR, "On the Convergence of Adam and Beyond"):
    Adam with the running maximum of the second moment,
    :math:`\hat v^{max}_t = \max(\hat v^{max}_{t-1}, \hat v_t)`,
    :math:`u_t = \hat m_t / (\sqrt{\hat v^{max}_t + \epsilon_{root}} + \epsilon)`.
    Each bias correction can be switched off."""
    _check_adam_args(b1, b2, eps, eps_root)
    check_flag("bias_correction_mu", bias_correction_mu)
    check_flag("bias_correction_nu", bias_correction_nu)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_amsgrad_init, mu_dtype=mu_dtype),
        bind(
            _amsgrad_update,
            **_betas(b1, b2),
            eps=eps,
            eps_root=eps_root,
            mu_dtype=mu_dtype,
            correct_mu=Static(bias_correction_mu),
            correct_nu=Static(bias_correction_nu),
        ),
    )


def _amsgrad_init(h, params):
    return ScaleByAmsgradState(
        count=_count(),
        mu=tree_zeros_like(params, h.mu_dtype),
        nu=tree_zeros_like(params),
        nu_max=tree_zeros_like(params),
    )


def _amsgrad_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    mu = _ema(updates, state.mu, h.b1, h.one_minus_b1, 1)
    nu = _ema(updates, state.nu, h.b2, h.one_minus_b2, 2)
    count = safe_increment(state.count)
    mu_hat = _bias_correct(mu, h.b1, count) if h.correct_mu else mu
    nu_eff = _bias_correct(nu, h.b2, count) if h.correct_nu else nu
    nu_max = tree_map(jnp.maximum, state.nu_max, nu_eff)
    updates = _adam_direction(h, mu_hat, nu_max)
    return updates, ScaleByAmsgradState(
        count=count, mu=tree_cast(mu, h.mu_dtype), nu=nu, nu_max=nu_max
    )


def scale_by_adamax(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8) -> Optimizer:
    r"""AdaMax (Kingma & Ba, 2015, section 7.1), Adam under the infinity norm:
    :math:`u_t = \hat m_t / \nu_t` with
    :math:`\nu_t = \max(|g_t| + \epsilon, \beta_2 \nu_{t-1})`."""
    _check_adam_args(b1, b2, eps, 0.0)
    return Optimizer(
        bind(_adam_init, mu_dtype=Static(None)),
        bind(_adamax_update, b1=b1, b2=b2, one_minus_b1=complement(b1), eps=eps),
    )


def _adamax_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    count = safe_increment(state.count)
    mu = _ema(updates, state.mu, h.b1, h.one_minus_b1, 1)
    nu = tree_map(lambda g, n: jnp.maximum(jnp.abs(g) + h.eps, h.b2 * n), updates, state.nu)
    updates = tree_map(lambda m, n: m / n, _bias_correct(mu, h.b1, count), nu)
    return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


class ScaleByBeliefState(NamedTuple):
    count: jax.Array
    mu: Updates
    nu: Updates


def scale_by_belief(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""AdaBelief (Zhuang et al., 2020, arXiv:2010.07468): the second moment tracks the
    gradient's deviation from its prediction,
    :math:`s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon_{root}`,
    :math:`u_t = \hat m_t / (\sqrt{\hat s_t} + \epsilon)`."""
    _check_adam_args(b1, b2, eps, eps_root)
    check_flag("nesterov", nesterov)
    return Optimizer(
        bind(_belief_init),
        bind(
            _belief_update,
            **_betas(b1, b2),
            eps=eps,
            eps_root=eps_root,
            nesterov=Static(nesterov),
        ),
    )


def _belief_init(h, params):
    del h
    return ScaleByBeliefState(
        count=_count(), mu=tree_zeros_like(params), nu=tree_zeros_like(params)
    )


def _belief_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    mu = _ema(updates, state.mu, h.b1, h.one_minus_b1, 1)
    surprise = tree_map(lambda g, m: g - m, updates, mu)
    nu = _ema(surprise, state.nu, h.b2, h.one_minus_b2, 2)
    nu = tree_map(lambda v: v + h.eps_root, nu)
    count = safe_increment(state.count)
    mu_hat = _first_moment_hat(h, mu, updates, count)
    nu_hat = _bias_correct(nu, h.b2, count)
    updates = tree_map(lambda m, v: m / (jnp.sqrt(v) + h.eps), mu_hat, nu_hat)
    return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)


def scale_by_yogi(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-3,
    eps_root: Any = 0.0,
    initial_accumulator_value: Any = 1e-6,
) -> Optimizer:
    r"""Yogi (Zaheer et al., 2018, NeurIPS): an additive second-moment update,
    :math:`v_t = v_{t-1} - (1-\beta_2)\operatorname{sign}(v_{t-1} - |g_t|^2)\, |g_t|^2`,
    then Adam's bias-corrected step. Both moments start at
    ``initial_accumulator_value``."""
    _check_adam_args(b1, b2, eps, eps_root)
    check_hyperparameter("initial_accumulator_value", initial_accumulator_value)
    return Optimizer(
        bind(_yogi_init, initial=initial_accumulator_value),
        bind(
            _yogi_update,
            **_betas(b1, b2),
            eps=eps,
            eps_root=eps_root,
        ),
    )


def _yogi_init(h, params):
    return ScaleByAdamState(
        count=_count(), mu=tree_full_like(params, h.initial), nu=tree_full_like(params, h.initial)
    )


def _yogi_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    mu = _ema(updates, state.mu, h.b1, h.one_minus_b1, 1)
    nu = tree_map(
        lambda g, v: v - h.one_minus_b2 * jnp.sign(v - abs_sq(g)) * abs_sq(g), updates, state.nu
    )
    count = safe_increment(state.count)
    mu_hat = _bias_correct(mu, h.b1, count)
    nu_hat = _bias_correct(nu, h.b2, count)
    return _adam_direction(h, mu_hat, nu_hat), ScaleByAdamState(count=count, mu=mu, nu=nu)


def scale_by_radam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    threshold: Any = 5.0,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""Rectified Adam (Liu et al., 2020, arXiv:1908.03265). With
    :math:`\rho_\infty = 2/(1-\beta_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`: when
    :math:`\rho_t \ge` ``threshold`` the step is Adam's times
    :math:`r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}`,
    otherwise plain bias-corrected momentum :math:`\hat m_t`."""
    _check_adam_args(b1, b2, eps, eps_root)
    check_hyperparameter("threshold", threshold, low=None)
    check_flag("nesterov", nesterov)
    rho_inf = 2.0 / complement(b2) - 1.0
    return Optimizer(
        bind(_adam_init, mu_dtype=Static(None)),
        bind(
            _radam_update,
            **_betas(b1, b2),
            eps=eps,
            eps_root=eps_root,
            threshold=threshold,
            rho_inf=rho_inf,
            rho_inf_terms=(rho_inf - 4.0) * (rho_inf - 2.0),
            nesterov=Static(nesterov),
        ),
    )


def _radam_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    mu = _ema(updates, state.mu, h.b1, h.one_minus_b1, 1)
    nu = _ema(updates, state.nu, h.b2, h.one_minus_b2, 2)
    count = safe_increment(state.count)
    b2t = h.b2**count
    rho = h.rho_inf - 2 * count * b2t / (1 - b2t)
    mu_hat = _first_moment_hat(h, mu, updates, count)
    nu_hat = _bias_correct(nu, h.b2, count)
    r = jnp.sqrt((rho - 4.0) * (rho - 2.0) * h.rho_inf / (h.rho_inf_terms * rho))
    rectified = tree_map(
        lambda m, v: r.astype(m.dtype) * m / (jnp.sqrt(v + h.eps_root) + h.eps), mu_hat, nu_hat
    )
    updates = tree_map(lambda a, m: jnp.where(rho >= h.threshold, a, m), rectified, mu_hat)
    return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


class ScaleByLionState(NamedTuple):
    count: jax.Array
    mu: Updates


LION_MODES = ("hard", "smooth", "refined")


def scale_by_lion(
    b1: Any = 0.9,
    b2: Any = 0.99,
    mu_dtype: Any = None,
    *,
    mode: Literal["hard", "smooth", "refined"] = "hard",
    smooth_beta: Any = 1.0,
) -> Optimizer:
    r"""Lion (Chen et al., 2023, arXiv:2302.06675): with
    :math:`c_t = (1-\beta_1) g_t + \beta_1 m_{t-1}`,
    :math:`u_t = \operatorname{sign}(c_t)` and
    :math:`m_t = (1-\beta_2) g_t + \beta_2 m_{t-1}`.

    ``mode`` picks the sign: ``"hard"`` is :math:`\operatorname{sign}(c)`, ``"smooth"``
    :math:`\tanh(\beta_s c)` with :math:`\beta_s` = ``smooth_beta``, ``"refined"``
    :math:`c` where :math:`|c| < 1` and :math:`\operatorname{sign}(c)` elsewhere."""
    _check_probability("b1", b1)
    _check_probability("b2", b2)
    if mode not in LION_MODES:
        raise InputValueError(f"`mode` must be one of {LION_MODES}, got {mode!r}.")
    check_hyperparameter("smooth_beta", smooth_beta, low=None)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_lion_init, mu_dtype=mu_dtype),
        bind(
            _lion_update,
            **_betas(b1, b2),
            mu_dtype=mu_dtype,
            mode=Static(mode),
            smooth_beta=smooth_beta,
        ),
    )


def _lion_sign(h, c):
    if h.mode == "smooth":
        return jnp.tanh(h.smooth_beta * c)
    if h.mode == "refined":  # linear near zero, saturating to the sign
        return jnp.where(jnp.abs(c) < 1.0, c, jnp.sign(c))
    return jnp.sign(c)


def _lion_init(h, params):
    return ScaleByLionState(count=_count(), mu=tree_zeros_like(params, h.mu_dtype))


def _lion_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.mu, "optimizer state")
    signs = tree_map(lambda g, m: _lion_sign(h, h.one_minus_b1 * g + h.b1 * m), updates, state.mu)
    mu = _ema(updates, state.mu, h.b2, h.one_minus_b2, 1)
    return signs, ScaleByLionState(count=safe_increment(state.count), mu=tree_cast(mu, h.mu_dtype))


class ScaleByAdaDeltaState(NamedTuple):
    e_g: Updates
    e_x: Updates


def scale_by_adadelta(rho: Any = 0.9, eps: Any = 1e-6) -> Optimizer:
    r"""Adadelta (Zeiler, 2012, arXiv:1212.5701):
    :math:`E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2`,
    :math:`u_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t`,
    :math:`E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) u_t^2`.

    The squares are plain squares, also of complex numbers (optax's numbers; optax does
    not support Adadelta for complex params)."""
    _check_probability("rho", rho)
    check_hyperparameter("eps", eps)
    return Optimizer(
        bind(_adadelta_init),
        bind(_adadelta_update, rho=rho, one_minus_rho=complement(rho), eps=eps),
    )


def _adadelta_init(h, params):
    del h
    return ScaleByAdaDeltaState(e_g=tree_zeros_like(params), e_x=tree_zeros_like(params))


def _adadelta_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.e_g, "optimizer state")
    # g**2, not _ema's |g|^2: optax's numbers for complex params
    square_ema = lambda g, m: h.one_minus_rho * g**2 + h.rho * m  # noqa: E731
    e_g = tree_map(square_ema, updates, state.e_g)
    updates = tree_map(
        lambda g, eg, ex: jnp.sqrt(ex + h.eps) / jnp.sqrt(eg + h.eps) * g, updates, e_g, state.e_x
    )
    e_x = tree_map(square_ema, updates, state.e_x)
    return updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)


# --------------------------------------------------------------------------------------
# Trust ratio, clipping, weight decay
# --------------------------------------------------------------------------------------


def _safe_norm(x: jax.Array, min_norm) -> jax.Array:
    """Euclidean norm, ``min_norm`` below it, with a finite gradient at zero."""
    norm = jnp.linalg.norm(x, keepdims=True)
    small = norm <= min_norm
    masked_norm = jnp.linalg.norm(jnp.where(small, jnp.ones_like(x), x))
    return jnp.where(jnp.squeeze(small), min_norm, masked_norm)


def scale_by_trust_ratio(
    min_norm: Any = 0.0, trust_coefficient: Any = 1.0, eps: Any = 0.0
) -> Optimizer:
    r"""LARS/LAMB layer-wise trust ratio (You et al., 2020, arXiv:1904.00962), per leaf:
    :math:`u = g \cdot c\,\lVert p\rVert / (\lVert g\rVert + \epsilon)`, and
    :math:`u = g` where either norm is zero."""
    check_hyperparameter("min_norm", min_norm)
    check_hyperparameter("trust_coefficient", trust_coefficient)
    check_hyperparameter("eps", eps)
    return stateless(_trust_ratio, min_norm=min_norm, coefficient=trust_coefficient, eps=eps)


def _trust_ratio(h, updates, params):
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)

    def one(u, p):
        p_norm, u_norm = _safe_norm(p, h.min_norm), _safe_norm(u, h.min_norm)
        ratio = h.coefficient * p_norm / (u_norm + h.eps)
        zero = jnp.logical_or(p_norm == 0.0, u_norm == 0.0)
        return u * jnp.where(zero, jnp.array(1.0, dtype=p.dtype), ratio)

    return tree_map(one, updates, params)


def clip(max_delta: Any) -> Optimizer:
    r"""Clip each element: :math:`u = \min(\max(g, -\delta), \delta)`."""
    check_hyperparameter("max_delta", max_delta)
    return stateless(_clip, max_delta=max_delta)


def _clip(h, updates, params):
    del params
    return tree_map(lambda g: jnp.clip(g, -h.max_delta, h.max_delta), updates)


def clip_by_global_norm(max_norm: Any) -> Optimizer:
    r"""Rescale all updates together when their global norm exceeds ``max_norm``
    (Pascanu et al., 2013, arXiv:1211.5063):
    :math:`u = g` if :math:`\lVert g\rVert < c`, else :math:`u = g\, c / \lVert g\rVert`.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> tx = jol.clip_by_global_norm(1.0)
    >>> g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}  # global norm 5
    >>> u, _ = tx.update(g, tx.init(g))
    >>> round(float(u["a"][0]), 3), round(float(u["b"][0]), 3)
    (0.6, 0.8)
    """
    check_hyperparameter("max_norm", max_norm)
    return stateless(_clip_by_global_norm, max_norm=max_norm)


def _clip_by_global_norm(h, updates, params):
    del params
    norm = global_norm(updates)
    keep = jnp.squeeze(norm < h.max_norm)
    if keep.ndim != 0:
        raise InputValueError(f"`max_norm` must be a scalar, got shape {jnp.shape(h.max_norm)}.")
    return tree_map(
        lambda g: jax.lax.select(keep, g, g / norm.astype(g.dtype) * h.max_norm), updates
    )


class WeightDecayState(NamedTuple):
    count: jax.Array


def add_decayed_weights(weight_decay: ScalarOrSchedule = 0.0, mask: Any = None) -> Optimizer:
    r"""Decoupled weight decay (Loshchilov & Hutter, 2019, arXiv:1711.05101):
    :math:`u = g + \lambda_t\, p`, only where ``mask`` (a pytree of bools, a prefix of
    the params, or a function ``params -> mask``) is True. :math:`\lambda` may be a
    schedule, evaluated at the count before it is incremented."""
    check_hyperparameter("weight_decay", weight_decay, low=None, allow_schedule=True)
    hparams = dict(weight_decay=weight_decay, mask=Static(mask))
    return Optimizer(bind(_decay_init, **hparams), bind(_decay_update, **hparams))


def _decay_init(h, params):
    del params
    return WeightDecayState(count=_count()) if callable(h.weight_decay) else EmptyState()


def _decay_update(h, updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    if callable(h.weight_decay):
        decay, state = h.weight_decay(state.count), WeightDecayState(safe_increment(state.count))
    else:
        decay = h.weight_decay
    if isinstance(decay, (int, float)) and decay == 0:
        # A literal 0 (the optimizer closed over, not passed to jit: its leaves are
        # constants then) adds nothing: skip the read of the params, as optax does. A
        # traced weight decay, 0 or not, keeps the term, so every value shares a program.
        return updates, state
    add = lambda g, p: g + decay * p  # noqa: E731
    if h.mask is None:
        return tree_map(add, updates, params), state
    mask = h.mask(updates) if callable(h.mask) else h.mask
    return (
        jax.tree.map(lambda m, g, p: tree_map(add, g, p) if m else g, mask, updates, params),
        state,
    )


# --------------------------------------------------------------------------------------
# Wrappers
# --------------------------------------------------------------------------------------


class ApplyIfFiniteState(NamedTuple):
    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any


def apply_if_finite(inner: Any, max_consecutive_errors: int) -> Optimizer:
    r"""Skip updates with a NaN or inf anywhere: the output is zero and ``inner``'s
    state is left unchanged, unless more than ``max_consecutive_errors`` non-finite
    updates came in a row, in which case ``inner`` is applied anyway (so a persistent
    problem becomes visible instead of silently stalling training)."""
    check_optimizer(inner, "inner")
    check_hyperparameter("max_consecutive_errors", max_consecutive_errors)
    return Optimizer(
        bind(_if_finite_init, inner_init=inner.init),
        bind(_if_finite_update, inner_update=inner.update, max_errors=max_consecutive_errors),
    )


def _if_finite_init(h, params):
    zero = jnp.zeros([], jnp.int32)
    return ApplyIfFiniteState(zero, jnp.array(True), zero, h.inner_init(params))


def _if_finite_update(h, updates, state, params=None, **extra_args):
    finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(updates)]))
    streak = jnp.where(finite, jnp.zeros([], jnp.int32), safe_increment(state.notfinite_count))

    def apply(_):
        if accepts_extra_args(h.inner_update):
            return h.inner_update(updates, state.inner_state, params, **extra_args)
        return h.inner_update(updates, state.inner_state, params)

    def reject(_):
        return tree_zeros_like(updates), state.inner_state

    updates, inner_state = jax.lax.cond(
        jnp.logical_or(finite, streak > h.max_errors), apply, reject, None
    )
    total = jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite))
    return updates, ApplyIfFiniteState(streak, finite, total, inner_state)


__all__ = [
    "ApplyIfFiniteState",
    "ScaleByAdaDeltaState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByBeliefState",
    "ScaleByLionState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByRssState",
    "ScaleByScheduleState",
    "TraceState",
    "WeightDecayState",
    "add_decayed_weights",
    "apply_if_finite",
    "clip",
    "clip_by_global_norm",
    "global_norm",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_sign",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "trace",
]
# --------------------------------------------------------------------------------------
# The core catalogue (issue 17): transforms behind adafactor, novograd, adan, rprop, sm3,
# optimistic gradients, Polyak steps, noisy SGD, DoG and parameter-scaled steps.
# --------------------------------------------------------------------------------------


def scale_by_param_block_norm(min_scale: Any = 1e-3) -> Optimizer:
    r"""Scale each leaf by its parameter's norm (Bernstein et al., 2020, "On the distance
    between two neural networks", arXiv:2002.03432):
    :math:`u = g\,\max(\lVert p\rVert_2, s_{min})`."""
    check_hyperparameter("min_scale", min_scale)
    return stateless(_param_block_norm, min_scale=min_scale)


def _param_block_norm(h, updates, params):
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    return tree_map(lambda u, p: u * _safe_norm(p, h.min_scale), updates, params)


def _safe_rms(x: jax.Array, min_rms) -> jax.Array:
    """:math:`\\max(\\sqrt{\\mathrm{mean}|x|^2}, r_{min})` with a finite gradient at 0."""
    rms = jnp.sqrt(jnp.mean(abs_sq(x)))
    small = rms <= min_rms
    # the masked copy keeps the untaken branch's gradient finite where x is all zeros
    return jnp.where(small, min_rms, jnp.sqrt(jnp.mean(abs_sq(jnp.where(small, 1, x)))))


def scale_by_param_block_rms(min_scale: Any = 1e-3) -> Optimizer:
    r"""Scale each leaf by its parameter's root mean square, as Adafactor's
    ``multiply_by_parameter_scale`` (Shazeer & Stern, 2018, arXiv:1804.04235):
    :math:`u = g\,\max(\mathrm{rms}(p), s_{min})`."""
    check_hyperparameter("min_scale", min_scale)
    return stateless(_param_block_rms, min_scale=min_scale)


def _param_block_rms(h, updates, params):
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    return tree_map(lambda u, p: u * _safe_rms(p, h.min_scale), updates, params)


def _decay_rate_pow(i: jax.Array, exponent: Any = 0.8) -> jax.Array:
    r"""Adafactor's second-moment decay :math:`\hat\beta_{2,t} = 1 - (t+1)^{-c}` (the
    step taken in float32, as in the paper's reference code and optax)."""
    t = jnp.asarray(i + 1, jnp.float32)
    return 1.0 - t ** (-exponent)


def _factored_dims(shape: tuple, factored: bool, min_dim_size_to_factor: int):
    """The (second-largest, largest) axes to factor over, or None when the second
    largest is below ``min_dim_size_to_factor`` (or the leaf has fewer than 2 axes)."""
    if not factored or len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda axis: shape[axis])  # stable, as numpy's
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


class FactoredState(NamedTuple):
    count: jax.Array
    v_row: Updates
    v_col: Updates
    v: Updates


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: Any = 0.8,
    step_offset: Any = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: Any = 1e-30,
    decay_rate_fn: Callable[[Any, Any], Any] = _decay_rate_pow,
) -> Optimizer:
    r"""Adafactor's factored second moment (Shazeer & Stern, 2018, arXiv:1804.04235).

    With :math:`\hat\beta_t` = ``decay_rate_fn(t - step_offset, decay_rate)`` and
    :math:`G = |g_t|^2 + \epsilon`: a leaf whose two largest axes (rows :math:`r`, the
    second largest, and columns :math:`c`, the largest) are at least
    ``min_dim_size_to_factor`` keeps only their means,

    .. math::
        R_t = \hat\beta_t R_{t-1} + (1-\hat\beta_t)\,\mathrm{mean}_c G,\quad
        C_t = \hat\beta_t C_{t-1} + (1-\hat\beta_t)\,\mathrm{mean}_r G,\quad
        u_t = g_t\, \Big(\frac{R_t}{\mathrm{mean}_r R_t}\Big)^{-1/2} C_t^{-1/2};

    any other leaf keeps the full :math:`v_t = \hat\beta_t v_{t-1} + (1-\hat\beta_t) G`
    and :math:`u_t = g_t\, v_t^{-1/2}`. Unused slots hold a ``(1,)`` placeholder.
    """
    check_flag("factored", factored)
    check_hyperparameter("decay_rate", decay_rate)
    check_hyperparameter("step_offset", step_offset, low=None)
    check_count("min_dim_size_to_factor", min_dim_size_to_factor, low=0)
    check_hyperparameter("epsilon", epsilon)
    check_callable("decay_rate_fn", decay_rate_fn)
    layout = dict(factored=Static(factored), min_size=Static(min_dim_size_to_factor))
    return Optimizer(
        bind(_factored_init, **layout),
        bind(
            _factored_update,
            **layout,
            decay_rate=decay_rate,
            step_offset=step_offset,
            epsilon=epsilon,
            decay_rate_fn=decay_rate_fn,
        ),
    )


def _factored_init(h, params):
    def one(p):
        dims = _factored_dims(p.shape, h.factored, h.min_size)
        slot = jnp.zeros((1,), p.dtype)
        if dims is None:
            return slot, slot, jnp.zeros_like(p)
        rows, cols = dims
        return jnp.zeros_like(p.sum(cols)), jnp.zeros_like(p.sum(rows)), slot

    triples = jax.tree.map(one, params)
    outer, inner = jax.tree.structure(params), jax.tree.structure((0, 0, 0))
    return FactoredState(_count(), *jax.tree.transpose(outer, inner, triples))


def _factored_update(h, updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    check_same_structure(updates, state.v, "optimizer state")
    beta = h.decay_rate_fn(state.count - h.step_offset, h.decay_rate)

    def one(g, v_row, v_col, v, p):
        dims = _factored_dims(p.shape, h.factored, h.min_size)
        sq = abs_sq(g) + h.epsilon
        slot = jnp.zeros((1,), p.dtype)
        if dims is None:
            v = (beta * v + (1.0 - beta) * sq).astype(p.dtype)
            return g * v**-0.5, (slot, slot, v)
        rows, cols = dims
        v_row = (beta * v_row + (1.0 - beta) * jnp.mean(sq, axis=cols)).astype(p.dtype)
        v_col = (beta * v_col + (1.0 - beta) * jnp.mean(sq, axis=rows)).astype(p.dtype)
        # v_row lost the column axis, so the row axis moved down by one if it was after it
        row_axis = rows - 1 if rows > cols else rows
        row_factor = (v_row / jnp.mean(v_row, axis=row_axis, keepdims=True)) ** -0.5
        u = g * jnp.expand_dims(row_factor, cols) * jnp.expand_dims(v_col**-0.5, rows)
        return u, (v_row, v_col, slot)

    outer = jax.tree.structure(updates)
    pairs = jax.tree.map(one, updates, state.v_row, state.v_col, state.v, params)
    new_updates, (v_row, v_col, v) = jax.tree.transpose(
        outer, jax.tree.structure((0, (0, 0, 0))), pairs
    )
    return new_updates, FactoredState(safe_increment(state.count), v_row, v_col, v)


class ScaleByNovogradState(NamedTuple):
    count: jax.Array
    mu: Updates
    nu: Updates


def scale_by_novograd(
    b1: Any = 0.9,
    b2: Any = 0.25,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    weight_decay: Any = 0.0,
    mu_dtype: Any = None,
) -> Optimizer:
    r"""NovoGrad (Ginsburg et al., 2019, arXiv:1905.11286): a second moment per leaf, of
    the gradient's squared norm,

    .. math::
        \nu_t = \beta_2 \nu_{t-1} + (1-\beta_2)\lVert g_t\rVert^2,\quad
        m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{\nu_t + \epsilon_{root}} + \epsilon}
              + \lambda p_t,\quad u_t = m_t,

    started at the first step with :math:`\nu_1 = \lVert g_1\rVert^2` and
    :math:`m_1 = g_1/(\sqrt{\nu_1+\epsilon_{root}}+\epsilon) + \lambda p_1`."""
    _check_adam_args(b1, b2, eps, eps_root)
    check_hyperparameter("weight_decay", weight_decay, low=None)
    mu_dtype = Static(canonical_dtype("mu_dtype", mu_dtype))
    return Optimizer(
        bind(_novograd_init, mu_dtype=mu_dtype),
        bind(
            _novograd_update,
            **_betas(b1, b2),
            eps=eps,
            eps_root=eps_root,
            weight_decay=weight_decay,
            mu_dtype=mu_dtype,
        ),
    )


def _novograd_init(h, params):
    nu = jax.tree.map(lambda p: jnp.zeros([], p.dtype), params)
    return ScaleByNovogradState(count=_count(), mu=tree_zeros_like(params, h.mu_dtype), nu=nu)


def _novograd_update(h, updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    check_same_structure(updates, state.nu, "optimizer state")
    count = safe_increment(state.count)
    first = count == 1
    sq_norm = tree_map(lambda g: jnp.linalg.norm(g) ** 2, updates)
    nu = tree_map(
        lambda s, n: jnp.where(first, s.astype(n.dtype), h.one_minus_b2 * s + h.b2 * n),
        sq_norm,
        state.nu,
    )
    step = tree_map(
        lambda g, p, n: g / (jnp.sqrt(n + h.eps_root) + h.eps) + h.weight_decay * p,
        updates,
        params,
        nu,
    )
    mu = tree_map(lambda s, m: jnp.where(first, s, h.b1 * m + s), step, state.mu)
    mu = tree_cast(mu, h.mu_dtype)
    return mu, ScaleByNovogradState(count=count, mu=mu, nu=nu)


class ScaleByAdanState(NamedTuple):
    m: Updates
    v: Updates
    n: Updates
    g: Updates
    t: jax.Array


def scale_by_adan(
    b1: Any = 0.98, b2: Any = 0.92, b3: Any = 0.99, eps: Any = 1e-8, eps_root: Any = 0.0
) -> Optimizer:
    r"""Adan, Nesterov momentum estimated from gradient differences (Xie et al., 2022,
    arXiv:2208.06677, Algorithm 1). With :math:`\Delta_t = g_t - g_{t-1}`
    (:math:`\Delta_1 = 0`):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\Delta_t,\quad
        n_t = \beta_3 n_{t-1} + (1-\beta_3)\,|g_t + (1-\beta_2)\Delta_t|^2,

    .. math::
        u_t = \frac{\hat m_t + (1-\beta_2)\hat v_t}{\sqrt{\hat n_t + \epsilon_{root}}
              + \epsilon}

    with hats the bias corrections :math:`x/(1-\beta^t)`."""
    _check_adam_args(b1, b2, eps, eps_root)
    _check_probability("b3", b3)
    return Optimizer(
        bind(_adan_init),
        bind(
            _adan_update,
            **_betas(b1, b2),
            b3=b3,
            one_minus_b3=complement(b3),
            eps=eps,
            eps_root=eps_root,
        ),
    )


def _adan_init(h, params):
    del h
    zeros = lambda: tree_zeros_like(params)  # noqa: E731
    return ScaleByAdanState(m=zeros(), v=zeros(), n=zeros(), g=zeros(), t=_count())


def _adan_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.g, "optimizer state")
    diff = tree_map(
        lambda g, prev: jnp.where(state.t == 0, jnp.zeros_like(g), g - prev), updates, state.g
    )
    m = _ema(updates, state.m, h.b1, h.one_minus_b1, 1)
    v = _ema(diff, state.v, h.b2, h.one_minus_b2, 1)
    ahead = tree_map(lambda g, d: g + h.one_minus_b2 * d, updates, diff)
    n = tree_map(lambda a, n: h.one_minus_b3 * abs_sq(a) + h.b3 * n, ahead, state.n)
    t = safe_increment(state.t)
    m_hat, v_hat = _bias_correct(m, h.b1, t), _bias_correct(v, h.b2, t)
    n_hat = _bias_correct(n, h.b3, t)
    u = tree_map(
        lambda mh, vh, nh: (mh + h.one_minus_b2 * vh) / (jnp.sqrt(nh + h.eps_root) + h.eps),
        m_hat,
        v_hat,
        n_hat,
    )
    return u, ScaleByAdanState(m=m, v=v, n=n, g=updates, t=t)


class ScaleByRpropState(NamedTuple):
    step_sizes: Updates
    prev_updates: Updates


def scale_by_rprop(
    learning_rate: Any,
    eta_minus: Any = 0.5,
    eta_plus: Any = 1.2,
    min_step_size: Any = 1e-6,
    max_step_size: Any = 50.0,
) -> Optimizer:
    r"""Rprop (Riedmiller & Braun, 1993, "A direct adaptive method for faster
    backpropagation learning: the RPROP algorithm"; iRprop- variant of Igel & Hüsken,
    2000). Per element, with :math:`s_t = g_t\,\hat u_{t-1}` (:math:`\hat u` the stored
    step, :math:`\hat u_0 = 0`, step sizes starting at ``learning_rate``):

    .. math::
        \delta_t = \begin{cases}
            \mathrm{clip}(\eta^+\delta_{t-1}, \delta_{min}, \delta_{max}) & s_t > 0\\
            \mathrm{clip}(\eta^-\delta_{t-1}, \delta_{min}, \delta_{max}) & s_t < 0\\
            \delta_{t-1} & s_t = 0\end{cases},\quad
        \hat u_t = \begin{cases} 0 & s_t < 0\\ \delta_t \operatorname{sign}(g_t)
            & \text{else}\end{cases}

    The output is :math:`u_t = \hat u_{t-1}`, and 0 where :math:`s_t < 0` (skip the step
    after an overshoot): as in optax 0.2.8, the step is applied one update after it is
    computed, so the first update is zero. Chain a negative scale to descend."""
    check_hyperparameter("learning_rate", learning_rate)
    check_hyperparameter("eta_minus", eta_minus)
    check_hyperparameter("eta_plus", eta_plus)
    check_hyperparameter("min_step_size", min_step_size)
    check_hyperparameter("max_step_size", max_step_size)
    sizes = dict(
        eta_minus=eta_minus,
        eta_plus=eta_plus,
        min_step_size=min_step_size,
        max_step_size=max_step_size,
    )
    return Optimizer(bind(_rprop_init, learning_rate=learning_rate), bind(_rprop_update, **sizes))


def _rprop_init(h, params):
    return ScaleByRpropState(
        step_sizes=tree_full_like(params, h.learning_rate), prev_updates=tree_zeros_like(params)
    )


def _rprop_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.step_sizes, "optimizer state")
    agree = tree_map(lambda g, prev: g * prev, updates, state.prev_updates)

    def new_size(s, size):
        grown = size * jnp.where(s > 0, h.eta_plus, h.eta_minus)
        return jnp.where(s == 0, size, jnp.clip(grown, h.min_step_size, h.max_step_size))

    sizes = tree_map(new_size, agree, state.step_sizes)
    steps = tree_map(
        lambda s, g, size: jnp.where(s < 0, jnp.zeros_like(g), size * jnp.sign(g)),
        agree,
        updates,
        sizes,
    )
    # optax 0.2.8 returns the step stored at the previous update (zero after a sign
    # change), one update late; kept so that the numbers agree
    out = tree_map(
        lambda s, prev: jnp.where(s < 0, jnp.zeros_like(prev), prev), agree, state.prev_updates
    )
    return out, ScaleByRpropState(step_sizes=sizes, prev_updates=steps)


class ScaleBySM3State(NamedTuple):
    mu: Updates
    nu: Updates


def scale_by_sm3(b1: Any = 0.9, b2: Any = 1.0, eps: Any = 1e-8) -> Optimizer:
    r"""SM3, memory-efficient adaptive scaling (Anil et al., 2019, arXiv:1901.11150).

    A leaf of rank :math:`k \ge 2` keeps one accumulator :math:`\mu^{(i)}` per axis
    instead of one per element. With :math:`c = 1-\beta_2` (:math:`c = 1` when
    :math:`\beta_2 = 1`, plain sums as in the paper):

    .. math::
        a_t = c\,g_t^2 + \beta_2 \min_i \mu^{(i)}_{t-1},\quad
        \mu^{(i)}_t = \max_{j \ne i} a_t,\quad
        \nu_t = \beta_1 \nu_{t-1} + (1-\beta_1)\, g_t / \sqrt{a_t + \epsilon},\quad
        u_t = \nu_t

    (:math:`g/\sqrt{a+\epsilon}` is 0 where :math:`a = 0`). A leaf of rank 0 or 1
    keeps a full accumulator. Complex params are rejected, as by optax. optax 0.2.8
    fails on rank-0 leaves; here a rank-0 leaf behaves as a 1-element vector.
    """
    _check_probability("b1", b1)
    _check_probability("b2", b2)
    check_hyperparameter("eps", eps)
    return Optimizer(
        bind(_sm3_init),
        bind(
            _sm3_update,
            b1=b1,
            one_minus_b1=complement(b1),
            b2=b2,
            one_minus_b2=complement(b2),
            eps=eps,
        ),
    )


def _sm3_init(h, params):
    del h
    if any(jnp.iscomplexobj(p) for p in jax.tree.leaves(params)):
        raise InputTypeError("`params` must be real for scale_by_sm3 (and sm3), got complex.")
    mu = jax.tree.map(
        lambda p: [jnp.zeros(n, p.dtype) for n in p.shape] or [jnp.zeros((), p.dtype)], params
    )
    return ScaleBySM3State(mu=mu, nu=tree_zeros_like(params))


def _sm3_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.nu, "optimizer state")
    # with b2 = 1 the accumulators are plain sums (coefficient 1, not 1 - b2 = 0)
    coef = jnp.where(h.b2 == 1, 1.0, h.one_minus_b2)

    def accumulate(g, mu):
        if g.ndim < 2:
            return coef * g**2 + h.b2 * mu[0]
        shaped = [m.reshape([-1 if j == i else 1 for j in range(g.ndim)]) for i, m in enumerate(mu)]
        return coef * g**2 + h.b2 * functools.reduce(jnp.minimum, shaped)

    outer = jax.tree.structure(updates)
    accum = outer.unflatten(
        accumulate(g, mu)
        for g, mu in zip(outer.flatten_up_to(updates), outer.flatten_up_to(state.mu), strict=True)
    )
    scaled = tree_map(
        lambda g, a: g * jnp.where(a > 0, jax.lax.rsqrt(a + h.eps), 0.0), updates, accum
    )
    nu = _ema(scaled, state.nu, h.b1, h.one_minus_b1, 1)

    def per_axis(a):
        if a.ndim < 2:
            return [a]
        return [jnp.max(a, axis=[j for j in range(a.ndim) if j != i]) for i in range(a.ndim)]

    mu = jax.tree.map(per_axis, accum)
    return nu, ScaleBySM3State(mu=mu, nu=nu)


class ScaleByOptimisticGradientState(NamedTuple):
    is_initial_step: jax.Array
    previous_gradient: Updates


def scale_by_optimistic_gradient(alpha: Any = 1.0, beta: Any = 1.0) -> Optimizer:
    r"""Optimistic gradient (Popov, 1980; Mokhtari et al., 2019, arXiv:1901.08511):
    :math:`u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1}`, with :math:`g_0 = g_1`."""
    check_hyperparameter("alpha", alpha, low=None)
    check_hyperparameter("beta", beta, low=None)
    return Optimizer(
        bind(_optimistic_init),
        bind(_optimistic_update, alpha_plus_beta=alpha + beta, beta=beta),
    )


def _optimistic_init(h, params):
    del h
    return ScaleByOptimisticGradientState(jnp.array(True), tree_zeros_like(params))


def _optimistic_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    check_same_structure(updates, state.previous_gradient, "optimizer state")

    def one(g, prev):
        prev = jnp.where(state.is_initial_step, g, prev)
        return h.alpha_plus_beta * g - h.beta * prev

    new = tree_map(one, updates, state.previous_gradient)
    return new, ScaleByOptimisticGradientState(jnp.array(False), updates)


POLYAK_VARIANTS = ("sps", "sps+")


def scale_by_polyak(
    f_min: Any = 0.0, max_learning_rate: Any = 1.0, eps: Any = 0.0, variant: str = "sps"
) -> Optimizer:
    r"""The Polyak step size (Polyak, 1987; SPS of Loizou et al., 2021,
    arXiv:2002.10542), from the loss ``value`` passed to ``update``:

    .. math::
        u = \min\Big(\frac{f(x) - f^\star}{\lVert g\rVert^2 + \epsilon},\ \eta_{max}\Big)\, g

    and :math:`u = 0` when :math:`\lVert g\rVert^2 + \epsilon` is below float64's machine
    epsilon. ``variant="sps+"`` clips the gap :math:`f(x) - f^\star` at 0 (Garrigos et
    al., 2023, arXiv:2301.06508). Call ``update(grads, state, params, value=loss)``."""
    check_hyperparameter("f_min", f_min, low=None)
    check_hyperparameter("max_learning_rate", max_learning_rate)
    check_hyperparameter("eps", eps)
    if variant not in POLYAK_VARIANTS:
        raise InputValueError(f"`variant` must be one of {POLYAK_VARIANTS}, got {variant!r}.")
    return Optimizer(
        bind(_init_empty_state),
        bind(
            _polyak_update,
            f_min=f_min,
            max_lr=max_learning_rate,
            eps=eps,
            plus=Static(variant == "sps+"),
        ),
    )


def _init_empty_state(h, params):
    del h, params
    return EmptyState()


def _polyak_update(h, updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None:
        # a missing argument: a TypeError, as optax's (InputTypeError is both)
        raise InputTypeError("scale_by_polyak needs the loss: call update(..., value=loss).")
    sq_norm = sum(jnp.sum(abs_sq(g)) for g in jax.tree.leaves(updates))
    gap = jnp.asarray(value - h.f_min).astype(sq_norm.dtype)
    gap = jnp.maximum(gap, 0) if h.plus else gap
    denominator = sq_norm + h.eps
    # float64's epsilon whatever the dtype, as optax (jnp.finfo(float))
    step = jnp.where(
        denominator <= jnp.finfo(jnp.float64).eps,
        jnp.array(0.0),
        jnp.minimum(gap / denominator, h.max_lr),
    )
    return tree_map(lambda g: step * g, updates), state


class ScaleByDistanceOverGradientsState(NamedTuple):
    max_dist: Updates
    grad_sum_of_squares: Updates
    init_params: Params


def scale_by_distance_over_gradients(
    reps_rel: Any = 1e-6, eps: Any = 1e-8, param_dtype: Any = jnp.float32, global_scale: Any = 1.0
) -> Optimizer:
    r"""DoG, the "distance over gradients" step size, layer-wise (Ivgi et al., 2023,
    arXiv:2302.12022). Per leaf, with :math:`r_0 = r_\epsilon(1 + \lVert p_0\rVert)`:

    .. math::
        r_t = \max(r_{t-1}, \lVert p_t - p_0\rVert),\quad
        G_t = G_{t-1} + \lVert g_t\rVert^2,\quad
        u_t = c\, \frac{r_t}{\sqrt{G_t + \epsilon}}\, g_t

    (:math:`c` = ``global_scale``; :math:`p_0` is stored in ``param_dtype``). Unlike
    optax 0.2.8, whose update of a 0-d leaf comes out with shape ``(1,)``, each update
    keeps its leaf's shape; the numbers are the same."""
    check_hyperparameter("reps_rel", reps_rel)
    check_hyperparameter("eps", eps)
    check_hyperparameter("global_scale", global_scale, low=None)
    dtype = Static(canonical_dtype("param_dtype", param_dtype))
    return Optimizer(
        bind(_dog_init, reps_rel=reps_rel, dtype=dtype),
        bind(_dog_update, eps=eps, global_scale=global_scale),
    )


def _l2(x, y=0.0):
    return jnp.sqrt(jnp.sum(jnp.square(x - y)))


def _dog_init(h, params):
    return ScaleByDistanceOverGradientsState(
        max_dist=jax.tree.map(lambda p: h.reps_rel * (1 + _l2(p)), params),
        grad_sum_of_squares=jax.tree.map(lambda p: jnp.zeros(1), params),
        init_params=tree_cast(params, h.dtype),
    )


def _dog_update(h, updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
        raise InputValueError(NO_PARAMS_MSG)
    check_same_structure(updates, state.max_dist, "optimizer state")
    dist = tree_map(
        lambda d, p, p0: jnp.maximum(d, _l2(p, p0)), state.max_dist, params, state.init_params
    )
    g_sos = tree_map(lambda s, g: s + jnp.sum(jnp.square(g)), state.grad_sum_of_squares, updates)
    step = lambda g, d, s: (h.global_scale * (d / jnp.sqrt(s + h.eps)) * g).reshape(g.shape)  # noqa: E731
    updates = tree_map(step, updates, dist, g_sos)
    return updates, ScaleByDistanceOverGradientsState(dist, g_sos, state.init_params)


__all__ += [  # the catalogue's names, kept next to their section
    "FactoredState",
    "ScaleByAdanState",
    "ScaleByDistanceOverGradientsState",
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "ScaleByRpropState",
    "ScaleBySM3State",
    "scale_by_adan",
    "scale_by_distance_over_gradients",
    "scale_by_factored_rms",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_polyak",
    "scale_by_rprop",
    "scale_by_sm3",
]
