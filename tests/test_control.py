"""``_control.while_loop``: the solvers' loops inside ``jax.shard_map``.

Inside ``shard_map`` a loop that starts from constants (an identity inverse Hessian, a
NaN "no value yet") and updates them from params that vary over the mesh changed its
carry's type, which JAX refuses. A one-device mesh has the same types, so these run on
any machine."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxopt_lab as jol
from jaxopt_lab import _control

shard_map = getattr(jax, "shard_map", None)
if shard_map is None:  # older jax
    from jax.experimental.shard_map import shard_map

ROSEN = jol.problems.rosenbrock(2).fn
STARTS = jax.random.uniform(jax.random.PRNGKey(0), (3, 2), minval=-1.0, maxval=1.0)

SOLVERS = {
    "bfgs": jol.bfgs,
    "lbfgs": jol.lbfgs,
    "nonlinear_cg": jol.nonlinear_cg,
    "newton_cg": jol.newton_cg,
    "lbfgsb": lambda: jol.lbfgsb(lower=-0.5, upper=0.8),
    "projected_gradient": lambda: jol.projected_gradient(
        jol.projection_box, projection_args=(-0.5, 0.8)
    ),
    "zoom_linesearch": lambda: jol.chain(jol.sgd(1.0), jol.zoom_linesearch()),
}


def _per_device(fn):
    """``fn`` (a batch -> batch function) run inside shard_map over a one-device mesh."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("d",))
    return jax.jit(shard_map(fn, mesh=mesh, in_specs=P("d"), out_specs=P("d")))


@pytest.mark.parametrize("name", SOLVERS)
def test_minimize_inside_shard_map_equals_outside(name):
    opt = SOLVERS[name]()

    def solve(starts):
        return jax.vmap(lambda x: jol.minimize(ROSEN, x, opt, 30, tol=1e-5).params)(starts)

    np.testing.assert_array_equal(_per_device(solve)(STARTS), jax.jit(solve)(STARTS))


T = jnp.linspace(0.0, 1.0, 8)
DATA = 2.0 * jnp.exp(-1.5 * T) + 0.01 * jax.random.normal(jax.random.PRNGKey(1), (2, 8))


def _exp_residuals(p, y):
    return p[0] * jnp.exp(p[1] * T) - y


def test_least_squares_inside_shard_map():
    # one fit per device (vmapped fits, and implicit gradients, inside shard_map meet an
    # error of JAX's own: its batching applies pvary to a value that already varies)
    def fit(ys):
        res = jol.least_squares(_exp_residuals, jnp.array([1.0, -1.0]), "lm", 30, args=(ys[0],))
        return res.params[None]

    np.testing.assert_array_equal(_per_device(fit)(DATA[:1]), jax.jit(fit)(DATA[:1]))


def test_outside_shard_map_it_is_lax_while_loop():
    assert _control._manual_axes() == ()
    out = _control.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0), (0, 1.0))
    assert out == (3, 8.0)


# --------------------------------------------------------------------------------------
# nested: one nested computation, the same values
# --------------------------------------------------------------------------------------


def _block(x, scale):
    """A small block with repeated outputs (XLA merges those, see `nested`)."""
    zero = jnp.zeros((), jnp.int32)
    return {"y": jnp.sin(x) * scale, "n": zero, "m": zero, "ok": jnp.all(x > -10), "same": False}


def test_nested_equals_the_function_under_jit_vmap_and_grad():
    x = jnp.linspace(-1.0, 1.0, 5)
    want = _block(x, 2.0)
    got = jax.jit(lambda x: _control.nested(_block, x, 2.0))(x)
    assert jax.tree.structure(got) == jax.tree.structure(jax.tree.map(jnp.asarray, want))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
        assert jnp.result_type(a) == jnp.result_type(jnp.asarray(b))
    batched = jax.vmap(lambda s: _control.nested(_block, x, s)["y"])(jnp.arange(3.0))
    np.testing.assert_allclose(batched, jnp.sin(x)[None] * jnp.arange(3.0)[:, None])
    grad = jax.grad(lambda s: jnp.sum(_control.nested(_block, x, s)["y"]))(2.0)
    np.testing.assert_allclose(grad, jnp.sum(jnp.sin(x)), rtol=1e-6)


def test_nested_closes_over_outer_values_and_is_the_function_inside_shard_map():
    def fn(xs):
        scale = jnp.max(xs)  # a value of the outer trace, closed over by the block
        return _control.nested(lambda: jnp.cos(xs) * scale)

    xs = jnp.arange(4.0)
    np.testing.assert_allclose(jax.jit(fn)(xs), jnp.cos(xs) * 3.0, rtol=1e-6)
    np.testing.assert_array_equal(_per_device(lambda b: fn(b))(xs), jax.jit(fn)(xs))
