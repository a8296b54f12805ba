r"""Optimizers: each one a short :func:`~jaxopt_lab.base.chain` of transforms.

The math lives in :mod:`jaxopt_lab.transforms`; here is only the recipe. Argument names
and defaults are optax's, and so are the numbers (the test suite checks them to 1e-6 in
float32 and 1e-12 in float64). ``learning_rate`` is a number, an array, a tracer or a
schedule ``step -> lr``; every other numeric hyperparameter a number, an array or a
tracer.
"""

# No ``from __future__ import annotations`` here: annotations stay objects, so code that
# inspects ``learning_rate``'s annotation (optax's schedule tests) sees ScalarOrSchedule.
from typing import Any

import jax.numpy as jnp

from jaxopt_lab import transforms as T
from jaxopt_lab import wrappers as W
from jaxopt_lab.base import Optimizer, ScalarOrSchedule, bind, chain, identity
from jaxopt_lab.checks import canonical_dtype, check_flag, check_hyperparameter


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Any = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> Optimizer:
    r"""Stochastic gradient descent (Robbins & Monro, 1951), :math:`p \leftarrow p - \eta g`,
    with optional heavy-ball (Polyak, 1964) or Nesterov (1983) momentum
    (:func:`~jaxopt_lab.transforms.trace`) applied before the learning rate.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> res = jol.minimize(f, jnp.zeros(2), jol.sgd(0.1, momentum=0.9), 200)
    >>> print(res.params.round(4))
    [1. 1.]
    """
    check_flag("nesterov", nesterov)
    momentum_tx = (
        identity()
        if momentum is None
        else T.trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    )
    return chain(momentum_tx, T.scale_by_learning_rate(learning_rate))


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: Any = 0.1, eps: Any = 1e-7
) -> Optimizer:
    r"""AdaGrad (Duchi et al., 2011): :math:`p \leftarrow p - \eta\, g/\sqrt{\sum g^2 + \epsilon}`."""
    return chain(
        T.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps),
        T.scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Any = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> Optimizer:
    r"""RMSProp (Tieleman & Hinton, 2012): scale by the root mean square of recent
    gradients (:func:`~jaxopt_lab.transforms.scale_by_rms`, or the standard deviation
    with ``centered=True``), then the learning rate, then optional momentum on the
    scaled step."""
    check_flag("centered", centered)
    check_flag("nesterov", nesterov)
    scaling = T.scale_by_stddev if centered else T.scale_by_rms
    return chain(
        scaling(
            decay=decay,
            eps=eps,
            initial_scale=initial_scale,
            eps_in_sqrt=eps_in_sqrt,
            bias_correction=bias_correction,
        ),
        T.scale_by_learning_rate(learning_rate),
        identity() if momentum is None else T.trace(momentum, nesterov=nesterov),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""Adam (Kingma & Ba, 2015): :func:`~jaxopt_lab.transforms.scale_by_adam`, then
    :math:`-\eta`.

    >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> opt = jol.adam(learning_rate=0.1)
    >>> params = jnp.zeros(2)
    >>> state = opt.init(params)
    >>> for _ in range(300):
    ...     updates, state = opt.update(jax.grad(f)(params), state, params)
    ...     params = jol.apply_updates(params, updates)
    >>> print(params.round(4))
    [1. 1.]
    """
    return chain(
        T.scale_by_adam(
            b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
        ),
        T.scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> Optimizer:
    r"""NAdam (Dozat, 2016): Adam with a Nesterov look-ahead first moment."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""AdamW (Loshchilov & Hutter, 2019): Adam's direction plus decoupled weight
    decay, :math:`p \leftarrow p - \eta(u^{adam} + \lambda p)`, where ``mask``."""
    return chain(
        T.scale_by_adam(
            b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
        ),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
) -> Optimizer:
    r"""AdaMax (Kingma & Ba, 2015, section 7.1): Adam under the infinity norm."""
    return chain(T.scale_by_adamax(b1=b1, b2=b2, eps=eps), T.scale_by_learning_rate(learning_rate))


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> Optimizer:
    r"""AMSGrad (Reddi et al., 2018): Adam with a non-decreasing second moment."""
    return chain(
        T.scale_by_amsgrad(
            b1=b1,
            b2=b2,
            eps=eps,
            eps_root=eps_root,
            mu_dtype=mu_dtype,
            bias_correction_mu=bias_correction_mu,
            bias_correction_nu=bias_correction_nu,
        ),
        T.scale_by_learning_rate(learning_rate),
    )


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""AdaBelief (Zhuang et al., 2020): step size adapted to the belief in the gradient."""
    return chain(
        T.scale_by_belief(b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov),
        T.scale_by_learning_rate(learning_rate),
    )


def radam(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    threshold: Any = 5.0,
    *,
    nesterov: bool = False,
) -> Optimizer:
    r"""RAdam (Liu et al., 2020): Adam with its early-step variance rectified."""
    return chain(
        T.scale_by_radam(
            b1=b1, b2=b2, eps=eps, eps_root=eps_root, threshold=threshold, nesterov=nesterov
        ),
        T.scale_by_learning_rate(learning_rate),
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> Optimizer:
    r"""Lion (Chen et al., 2023): the sign of an interpolated momentum, plus decoupled
    weight decay."""
    return chain(
        T.scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-6,
    eps_root: Any = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""LAMB (You et al., 2020): Adam plus weight decay, rescaled per leaf by the trust
    ratio :math:`\lVert p\rVert / \lVert u\rVert`."""
    return chain(
        T.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
        T.add_decayed_weights(weight_decay=weight_decay, mask=mask),
        T.scale_by_trust_ratio(),
        T.scale_by_learning_rate(learning_rate),
    )


def yogi(
    learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-3
) -> Optimizer:
    r"""Yogi (Zaheer et al., 2018): Adam with an additive, sign-controlled second moment."""
    return chain(T.scale_by_yogi(b1=b1, b2=b2, eps=eps), T.scale_by_learning_rate(learning_rate))


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: Any = 0.9,
    eps: Any = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adadelta (Zeiler, 2012): weight decay added to the gradient, then the
    unit-corrected step of :func:`~jaxopt_lab.transforms.scale_by_adadelta`, then
    :math:`-\eta` (no learning rate at all when ``learning_rate`` is None)."""
    return chain(
        T.add_decayed_weights(weight_decay, mask=weight_decay_mask),
        T.scale_by_adadelta(rho=rho, eps=eps),
        T.scale_by_learning_rate(learning_rate),
    )


def sign_sgd(learning_rate: ScalarOrSchedule) -> Optimizer:
    r"""signSGD (Bernstein et al., 2018): :math:`p \leftarrow p - \eta\,\operatorname{sign}(g)`."""
    return chain(T.scale_by_sign(), T.scale_by_learning_rate(learning_rate))


__all__ = [
    "adabelief",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "lamb",
    "lion",
    "nadam",
    "radam",
    "rmsprop",
    "sgd",
    "sign_sgd",
    "yogi",
]
# --------------------------------------------------------------------------------------
# The core catalogue (issue 17): optax's other core optimizers, same names and defaults.
# --------------------------------------------------------------------------------------


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: Any = 0.8,
    decay_offset: Any = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: Any = 1.0,
    momentum: Any = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: Any = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adafactor (Shazeer & Stern, 2018, arXiv:1804.04235): the factored second moment
    of :func:`~jaxopt_lab.transforms.scale_by_factored_rms`, then, each when enabled,
    per-leaf update clipping at RMS ``clipping_threshold``, :math:`\eta`, the
    parameter-scale factor :math:`\max(\mathrm{rms}(p), 10^{-3})`, an undebiased
    momentum (held in ``dtype_momentum``), decoupled weight decay, and a descent sign."""
    check_flag("multiply_by_parameter_scale", multiply_by_parameter_scale)
    canonical_dtype("dtype_momentum", dtype_momentum)  # ema() would say accumulator_dtype
    # the transforms name these differently (step_offset, epsilon, weight_decay)
    check_hyperparameter("decay_offset", decay_offset, low=None)
    check_hyperparameter("eps", eps)
    check_hyperparameter(
        "weight_decay_rate", weight_decay_rate, low=None, allow_schedule=True, allow_none=True
    )
    check_hyperparameter("clipping_threshold", clipping_threshold, allow_none=True)
    check_hyperparameter("momentum", momentum, high=1.0, allow_none=True)
    steps = [
        T.scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)
    ]
    if clipping_threshold is not None:
        steps.append(W.clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        steps.append(T.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        steps.append(T.scale_by_param_block_rms())
    if momentum is not None:
        steps.append(W.ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        steps.append(T.add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
    return chain(*steps, T.scale(-1.0))


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
) -> Optimizer:
    r"""NAdamW (Dozat, 2016; Loshchilov & Hutter, 2019): AdamW with NAdam's Nesterov
    look-ahead first moment."""
    return adamw(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov
    )


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
) -> Optimizer:
    r"""AdaMaxW: AdaMax (Kingma & Ba, 2015, section 7.1) plus decoupled weight decay
    (Loshchilov & Hutter, 2019), :math:`p \leftarrow p - \eta(u^{adamax} + \lambda p)`."""
    return chain(
        T.scale_by_adamax(b1=b1, b2=b2, eps=eps),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: Any = 0.001,
    eps: Any = 0.0,
    trust_ratio_mask: Any = True,
    momentum: Any = 0.9,
    nesterov: bool = False,
) -> Optimizer:
    r"""LARS (You et al., 2017, arXiv:1708.03888): weight decay, then per leaf the trust
    ratio :math:`c\,\lVert p\rVert / (\lVert g + \lambda p\rVert + \epsilon)` (where
    ``trust_ratio_mask``), then :math:`-\eta`, then (Nesterov) momentum."""
    check_flag("nesterov", nesterov)
    check_hyperparameter("momentum", momentum)  # trace() would call it `decay`
    return chain(
        # True (optax's default) decays every leaf, which is what no mask does
        T.add_decayed_weights(
            weight_decay, mask=None if weight_decay_mask is True else weight_decay_mask
        ),
        W.masked(
            T.scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask
        ),
        T.scale_by_learning_rate(learning_rate),
        T.trace(decay=momentum, nesterov=nesterov),
    )


def signum(
    learning_rate: ScalarOrSchedule, beta: Any = 0.9, accumulator_dtype: Any = None
) -> Optimizer:
    r"""Signum (Bernstein et al., 2018, arXiv:1802.04434): the sign of an undebiased
    momentum, :math:`m_t = \beta m_{t-1} + (1-\beta) g_t`,
    :math:`p \leftarrow p - \eta \operatorname{sign}(m_t)`."""
    check_hyperparameter("beta", beta, high=1.0)  # ema() would call it `decay`
    return chain(
        W.ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        T.scale_by_sign(),
        T.scale_by_learning_rate(learning_rate),
    )


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.25,
    eps: Any = 1e-6,
    eps_root: Any = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
) -> Optimizer:
    r"""NovoGrad (Ginsburg et al., 2019): layer-wise normalised gradients with momentum
    (:func:`~jaxopt_lab.transforms.scale_by_novograd`), then :math:`-\eta`."""
    return chain(
        T.scale_by_novograd(b1=b1, b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay),
        T.scale_by_learning_rate(learning_rate),
    )


def adan(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.98,
    b2: Any = 0.92,
    b3: Any = 0.99,
    eps: Any = 1e-8,
    eps_root: Any = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> Optimizer:
    r"""Adan (Xie et al., 2022): :func:`~jaxopt_lab.transforms.scale_by_adan`, decoupled
    weight decay, then :math:`-\eta`."""
    return chain(
        T.scale_by_adan(b1=b1, b2=b2, b3=b3, eps=eps, eps_root=eps_root),
        T.add_decayed_weights(weight_decay, mask),
        T.scale_by_learning_rate(learning_rate),
    )


def rprop(
    learning_rate: Any,
    eta_minus: Any = 0.5,
    eta_plus: Any = 1.2,
    min_step_size: Any = 1e-6,
    max_step_size: Any = 50.0,
) -> Optimizer:
    r"""Rprop (Riedmiller & Braun, 1993): sign steps whose per-element sizes grow by
    ``eta_plus`` while the gradient keeps its sign and shrink by ``eta_minus`` when it
    flips (:func:`~jaxopt_lab.transforms.scale_by_rprop`); ``learning_rate`` is the
    initial step size."""
    return chain(
        T.scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
        T.scale(-1.0),
    )


def sm3(learning_rate: Any, momentum: Any = 0.9) -> Optimizer:
    r"""SM3 (Anil et al., 2019): :func:`~jaxopt_lab.transforms.scale_by_sm3` with
    ``b1=momentum``, then :math:`-\eta` (a number, not a schedule)."""
    check_hyperparameter("learning_rate", learning_rate)
    check_hyperparameter("momentum", momentum, high=1.0)  # scale_by_sm3 calls it `b1`
    return chain(T.scale_by_sm3(momentum), T.scale(-learning_rate))


def fromage(learning_rate: ScalarOrSchedule, min_norm: Any = 1e-6) -> Optimizer:
    r"""Fromage (Bernstein et al., 2020, arXiv:2002.03432): with
    :math:`k_t = 1/\sqrt{1+\eta_t^2}`,
    :math:`p \leftarrow k_t\big(p - \eta_t\, g\,\lVert p\rVert/\lVert g\rVert\big)`
    per leaf (the trust ratio with ``min_norm``)."""
    check_hyperparameter("learning_rate", learning_rate, allow_schedule=True)
    if callable(learning_rate):
        step = bind(_fromage_step, schedule=learning_rate)
        shrink = bind(_fromage_shrink, schedule=learning_rate)
    else:
        # derived once, as leaves (in float64 for a Python float, as optax)
        mult = _fromage_multiplier(learning_rate)
        step, shrink = learning_rate * mult, mult - 1
    return chain(
        T.scale_by_trust_ratio(min_norm),
        T.scale_by_learning_rate(step),
        T.add_decayed_weights(shrink),
    )


def _fromage_multiplier(lr):
    return 1 / (1 + lr**2) ** 0.5


def _fromage_step(h, count):
    lr = h.schedule(count)
    return _fromage_multiplier(lr) * lr


def _fromage_shrink(h, count):
    return _fromage_multiplier(h.schedule(count)) - 1


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: Any = 0.01,
    gamma: Any = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> Optimizer:
    r"""Noisy SGD (Neelakantan et al., 2015, arXiv:1511.06807):
    :math:`p \leftarrow p - \eta_t\,(g_t + \sigma_t \xi_t)` with
    :math:`\sigma_t^2 = \eta / t^\gamma`. Same key, same draws as optax: ``key`` is a
    ``jax.random.key`` or an int seed for one (default 0; ``seed`` is the deprecated
    spelling)."""
    return chain(W.add_noise(eta, gamma, key, seed=seed), T.scale_by_learning_rate(learning_rate))


def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule, alpha: Any = 1.0, beta: Any = 1.0
) -> Optimizer:
    r"""Optimistic gradient descent (Mokhtari et al., 2019, arXiv:1901.08511), for
    min-max games: :math:`p \leftarrow p - \eta\,((\alpha+\beta) g_t - \beta g_{t-1})`."""
    return chain(
        T.scale_by_optimistic_gradient(alpha=alpha, beta=beta),
        T.scale_by_learning_rate(learning_rate),
    )


def optimistic_adam(
    learning_rate: Any,
    optimism: Any = None,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> Optimizer:
    r"""Optimistic Adam (Daskalakis et al., 2018, arXiv:1711.00141): Adam's direction
    :math:`d_t`, then :math:`p \leftarrow p - ((\eta + o)\, d_t - o\, d_{t-1})` with
    optimism :math:`o` (default :math:`\eta`). ``learning_rate`` is a number, not a
    schedule (as in optax's version, which deprecates this name)."""
    check_hyperparameter("learning_rate", learning_rate)
    check_hyperparameter("optimism", optimism, low=None, allow_none=True)
    optimism = learning_rate if optimism is None else optimism
    return chain(
        T.scale_by_adam(
            b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
        ),
        T.scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
        T.scale_by_learning_rate(1.0),
    )


def polyak_sgd(
    max_learning_rate: Any = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: Any = 0.0,
    eps: Any = 0.0,
    variant: str = "sps",
) -> Optimizer:
    r"""SGD with the Polyak step size (Loizou et al., 2021, arXiv:2002.10542):
    :math:`p \leftarrow p - s_t \min\big(\frac{f(p) - f^\star}{\lVert g\rVert^2 + \epsilon},
    \eta_{max}\big)\, g` with :math:`s_t` = ``scaling``. Call
    ``update(grads, state, params, value=loss)``; ``jol.minimize`` passes the value."""
    check_hyperparameter("scaling", scaling, allow_schedule=True)  # sgd would say learning_rate
    return chain(
        sgd(learning_rate=scaling),
        T.scale_by_polyak(
            max_learning_rate=max_learning_rate, f_min=f_min, eps=eps, variant=variant
        ),
    )


__all__ += [  # the catalogue's names, kept next to their section
    "adafactor",
    "adamaxw",
    "adan",
    "fromage",
    "lars",
    "nadamw",
    "noisy_sgd",
    "novograd",
    "optimistic_adam",
    "optimistic_gradient_descent",
    "polyak_sgd",
    "rprop",
    "signum",
    "sm3",
]
