r"""Optimizers: each one a short :func:`~jaxopt_lab.base.chain` of transforms.

The math lives in :mod:`jaxopt_lab.transforms`; here is only the recipe. Argument names
and defaults are optax's, and so are the numbers (the test suite checks them to 1e-6 in
float32 and 1e-12 in float64). ``learning_rate`` is a number, an array, a tracer or a
schedule ``step -> lr``; every other numeric hyperparameter a number, an array or a
tracer.
"""

from __future__ import annotations

from typing import Any

from jaxopt_lab import transforms as T
from jaxopt_lab.base import Optimizer, ScalarOrSchedule, chain, identity
from jaxopt_lab.checks import check_flag


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Any = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> Optimizer:
    r"""Stochastic gradient descent, :math:`p \leftarrow p - \eta g`, with optional
    heavy-ball or Nesterov momentum (:func:`~jaxopt_lab.transforms.trace`) applied
    before the learning rate."""
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
    :math:`-\eta`."""
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
