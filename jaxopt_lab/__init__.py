"""jaxopt_lab: JAX-accelerated functional optimizers, vmapped sweeps and benchmarks.

Optimizers are pure ``(init, update)`` pairs over pytrees, and pytrees themselves::

    import jaxopt_lab as jol

    opt = jol.adam(learning_rate=1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = jol.apply_updates(params, updates)

This module only re-exports; see ``base``, ``transforms``, ``optimizers`` and
``schedules`` for the definitions.
"""

from jaxopt_lab.base import (
    EmptyState,
    HyperFunction,
    Optimizer,
    Static,
    apply_updates,
    chain,
    identity,
)
from jaxopt_lab.gradients import check_grad, numerical_grad
from jaxopt_lab.linesearch import backtracking_linesearch, zoom_linesearch
from jaxopt_lab.loops import OptimizeResult, fit, minimize, trajectory
from jaxopt_lab.optimizers import (
    adabelief,
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    amsgrad,
    lamb,
    lion,
    nadam,
    radam,
    rmsprop,
    sgd,
    sign_sgd,
    yogi,
)
from jaxopt_lab.quasi_newton import bfgs, lbfgs, newton_cg, nonlinear_cg
from jaxopt_lab.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
    warmup_cosine_decay_schedule,
)
from jaxopt_lab.sweep import GridEdgeWarning, SweepResult, sweep
from jaxopt_lab.transforms import (
    ApplyIfFiniteState,
    ScaleByAdaDeltaState,
    ScaleByAdamState,
    ScaleByAmsgradState,
    ScaleByBeliefState,
    ScaleByLionState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRssState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    ScaleByScheduleState,
    TraceState,
    WeightDecayState,
    add_decayed_weights,
    apply_if_finite,
    clip,
    clip_by_global_norm,
    global_norm,
    scale,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_belief,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_radam,
    scale_by_rms,
    scale_by_rss,
    scale_by_schedule,
    scale_by_sign,
    scale_by_stddev,
    scale_by_trust_ratio,
    scale_by_yogi,
    trace,
)


from jaxopt_lab import problems  # noqa: E402  (test functions and data sets)

__version__ = "0.1.0"
