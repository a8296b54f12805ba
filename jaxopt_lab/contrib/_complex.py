r"""Complex parameters as pairs of real ones.

:func:`split_real_and_imaginary` hands a wrapped optimizer each complex leaf
:math:`z = x + iy` as the pair :math:`(x, y)` and merges the pair it returns back into
one complex update, so the optimizer runs exactly as on twice as many real parameters
(Adam's second moment, for instance, becomes :math:`x^2` and :math:`y^2` apart rather
than :math:`|z|^2`). JAX's ``grad`` of a real loss of complex params is the *conjugate*
of the steepest-ascent direction: conjugate it before ``update`` (see
https://github.com/deepmind/optax/issues/196).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.base import Optimizer, OptState, accepts_extra_args, bind, tree_map
from jaxopt_lab.checks import check_optimizer


class SplitRealAndImaginaryArrays(NamedTuple):
    """A complex array as its real and imaginary parts."""

    real: jax.Array
    imaginary: jax.Array


class SplitRealAndImaginaryState(NamedTuple):
    """The wrapped optimizer's state (on the split, real-valued tree)."""

    inner_state: OptState


def _to_pair(x: Any) -> Any:
    return SplitRealAndImaginaryArrays(x.real, x.imag) if jnp.iscomplexobj(x) else x


def _is_pair(x: Any) -> bool:
    return isinstance(x, SplitRealAndImaginaryArrays)


def _from_pair(x: Any) -> Any:
    if not _is_pair(x):
        return x
    re, im = jnp.asarray(x.real), jnp.asarray(x.imaginary)
    if re.dtype == im.dtype and re.dtype in (jnp.float32, jnp.float64):
        return jax.lax.complex(re, im)  # exact, also where a part is inf or nan
    return re + im * 1j


def split_real_and_imaginary(inner: Any) -> Optimizer:
    r"""Run ``inner`` on complex leaves split into (real, imaginary) pairs:
    :math:`u = u_x + i\,u_y` where :math:`(u_x, u_y)` is ``inner``'s update of the pair
    :math:`(g_x, g_y)` (params split likewise). Real leaves pass through unsplit.
    ``inner`` is ours (its hyperparameters stay pytree leaves) or any object with
    ``.init``/``.update``; extra arguments of ``update`` are passed on to it."""
    check_optimizer(inner, "inner")
    return Optimizer(
        bind(_split_init, inner_init=inner.init),
        bind(_split_update, inner_update=inner.update),
    )


def _split_init(h, params):
    return SplitRealAndImaginaryState(h.inner_init(tree_map(_to_pair, params)))


def _split_update(h, updates, state, params=None, **extra_args):
    update = h.inner_update
    updates = tree_map(_to_pair, updates)
    params = None if params is None else tree_map(_to_pair, params)
    if accepts_extra_args(update):
        updates, inner = update(updates, state.inner_state, params, **extra_args)
    else:
        updates, inner = update(updates, state.inner_state, params)
    merged = jax.tree.map(_from_pair, updates, is_leaf=_is_pair)
    return merged, SplitRealAndImaginaryState(inner)
