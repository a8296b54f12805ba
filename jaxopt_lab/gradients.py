r"""Gradients by central differences, to check ``jax.grad`` (or a hand-written gradient).

Central differences over a pytree: for every scalar entry :math:`x_i` of the flattened
params,

.. math::  \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h},

whose error is :math:`O(h^2 f''')` from truncation plus :math:`O(\varepsilon |f| / h)`
from rounding. The default step :math:`h = \varepsilon^{1/3}\max(1, |x_i|)` balances the
two: about :math:`6\cdot10^{-6}` relative in float64, where the estimate is good to
roughly :math:`10^{-10}`, but :math:`5\cdot10^{-3}` in float32, where it is good only to
about :math:`10^{-4}`. **Check gradients in float64**: ``jax.enable_x64(True)`` (a
context manager in recent JAX; ``jax.config.update("jax_enable_x64", True)`` at start-up
otherwise) and float64 params. This costs :math:`2n` evaluations of ``f`` for :math:`n`
parameters, batched with ``jax.lax.map``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.base import Params
from jaxopt_lab.checks import check_params, check_real, check_scalar_fn
from jaxopt_lab.errors import InputValueError


def numerical_grad(
    f: Callable[[Params], jax.Array], params: Params, eps: float | None = None
) -> Params:
    r"""Central-difference gradient of scalar ``f`` at ``params`` (same pytree as params).

    ``eps`` is the step :math:`h` relative to :math:`\max(1, |x_i|)`; by default
    :math:`\varepsilon_{dtype}^{1/3}`.

    >>> import jax.numpy as jnp, jaxopt_lab as jol
    >>> f = lambda p: jnp.sum(p["x"] ** 2)
    >>> g = jol.numerical_grad(f, {"x": jnp.array([0.5, -1.0])})
    >>> print(g["x"].round(3))  # 2x
    [ 1. -2.]
    """
    check_params(params)
    check_scalar_fn(f, (params,), "f")
    x, unravel = ravel_pytree(params)
    if eps is None:
        eps = float(jnp.finfo(x.dtype).eps) ** (1.0 / 3.0)
    elif not check_real("eps", eps) > 0:
        raise InputValueError(f"`eps` must be > 0, got {eps!r}.")
    steps = eps * jnp.maximum(1.0, jnp.abs(x))

    def partial(i):
        h = steps[i]
        up = f(unravel(x.at[i].add(h)))
        down = f(unravel(x.at[i].add(-h)))
        # The step actually taken, after rounding x + h, is what divides.
        taken = (x[i] + h) - (x[i] - h)
        return (up - down) / taken

    n = x.size
    grads = jax.lax.map(partial, jnp.arange(n), batch_size=min(n, 128)) if n else x
    return unravel(grads.astype(x.dtype))


def check_grad(
    f: Callable[[Params], jax.Array],
    params: Params,
    grad_fn: Callable[[Params], Params] | None = None,
    eps: float | None = None,
    floor: float = 1e-3,
) -> float:
    r"""Largest relative error between ``grad_fn(params)`` (default ``jax.grad(f)``),
    :math:`a`, and central differences, :math:`b`:

    .. math:: \max_i \frac{|a_i - b_i|}{\max(|a_i|,\ |b_i|,\ \phi \max(1, \lVert a\rVert_\infty))}

    with :math:`\phi` = ``floor``. Each entry is judged relative to itself, except
    entries smaller than :math:`\phi` times the largest (or than :math:`\phi` itself),
    which central differences cannot resolve relatively (an exactly zero gradient is
    estimated as about :math:`h^2`). Use float64 (see the module docstring): a correct
    gradient then gives about 1e-7 or less; in float32 expect 1e-3 at best.

    >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
    >>> f = lambda x: jnp.sum(jnp.sin(x) * x**2)
    >>> with jax.enable_x64(True):
    ...     err = jol.check_grad(f, jnp.array([0.5, 2.0], dtype=jnp.float64))
    >>> err < 1e-8
    True
    """
    check_params(params)
    check_scalar_fn(f, (params,), "f")
    if not check_real("floor", floor) > 0:
        raise InputValueError(f"`floor` must be > 0, got {floor!r}.")
    grad_fn = jax.grad(f) if grad_fn is None else grad_fn
    a, _ = ravel_pytree(grad_fn(params))
    b, _ = ravel_pytree(numerical_grad(f, params, eps))
    if a.shape != b.shape:
        raise InputValueError(f"`grad_fn` returned {a.size} entries; params have {b.size}.")
    if a.size == 0:
        return 0.0
    scale = floor * jnp.maximum(1.0, jnp.max(jnp.abs(a)))
    scale = jnp.maximum(jnp.maximum(jnp.abs(a), jnp.abs(b)), scale)
    return float(jnp.max(jnp.abs(a - b) / scale))


__all__ = ["check_grad", "numerical_grad"]
