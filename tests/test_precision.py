"""compute_dtype and remat (jaxopt_lab.precision) in jol.sweep, jol.fit and jol.minimize:
numbers within bfloat16 rounding of float32 (remat: the same numbers), float32 params,
gradients and states, bfloat16 products in the program, one compile for equal wrappers,
and bad input."""

from __future__ import annotations

import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab.precision import ComputeDtype, Remat, wrap_loss
from jaxopt_lab.sweep import plan as planning

sweep_module = sys.modules["jaxopt_lab.sweep"]  # `jol.sweep` is the function
loops_module = sys.modules["jaxopt_lab.loops"]
N, D, H, C = 64, 8, 16, 3
LRS = np.logspace(-3, -2, 4)


def _data():
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (N, D))
    y = jnp.argmax(x @ jax.random.normal(kw, (D, C)), axis=-1).astype(jnp.int32)
    return {"x": x, "y": y}


DATA = _data()


def _params():
    k1, k2 = jax.random.split(jax.random.key(1))
    return {"w1": jax.random.normal(k1, (D, H)) / np.sqrt(D), "b1": jnp.zeros(H),
            "w2": jax.random.normal(k2, (H, C)) / np.sqrt(H), "b2": jnp.zeros(C)}  # fmt: skip


P0 = _params()


def mlp_loss(p, batch):
    """Mean cross-entropy of a one-hidden-layer ReLU network."""
    h = jax.nn.relu(batch["x"] @ p["w1"] + p["b1"])
    logits = h @ p["w2"] + p["b2"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, batch["y"][:, None], axis=1))


def _sweep(lrs=LRS, **kw):
    return jol.sweep(jol.adam, mlp_loss, P0, lrs, data=DATA, batch_size=N, epochs=30,
                     vmap_width=4, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def f32_sweep():
    return _sweep()


def _float_dtypes(tree):
    return {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_sweep_agrees_with_float32_and_keeps_float32_state(f32_sweep):
    res = _sweep(compute_dtype=jnp.bfloat16)
    assert _float_dtypes(res.params) == _float_dtypes(res.state) == {np.dtype(np.float32)}
    assert res.losses.dtype == np.float32
    np.testing.assert_allclose(res.losses, f32_sweep.losses, rtol=3e-2, atol=1e-2)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(f32_sweep.params), strict=True):
        np.testing.assert_allclose(a, b, atol=3e-2)
    assert not np.array_equal(res.losses, f32_sweep.losses)  # it did compute in bfloat16
    assert res.config["compute_dtype"] == "bfloat16" and "compute_dtype" not in f32_sweep.config


def test_the_program_multiplies_in_bfloat16_and_returns_float32_gradients():
    loss = jol.with_compute_dtype(mlp_loss, jnp.bfloat16)
    step = jax.jit(jax.value_and_grad(loss))
    text = step.lower(P0, DATA).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots and all(re.search(r"-> tensor<[0-9x]*bf16>", d) for d in dots), dots
    value, grad = step(P0, DATA)
    assert value.dtype == jnp.float32 and _float_dtypes(grad) == {np.dtype(np.float32)}
    # the sweep's members run this wrapper (the plan holds it)
    _sweep(compute_dtype=jnp.bfloat16)
    assert any(p.spec.loss_fn == loss for p in planning._plans.values())


def test_integer_leaves_are_not_cast():
    seen = {}

    def loss(p, batch):
        seen.update(x=batch["x"].dtype, y=batch["y"].dtype, w=p["w1"].dtype)
        return mlp_loss(p, batch)

    jax.eval_shape(jax.grad(jol.with_compute_dtype(loss, "float16")), P0, DATA)
    assert seen == {"x": jnp.float16, "y": jnp.int32, "w": jnp.float16}


def test_remat_gives_the_same_numbers(f32_sweep):
    for remat in (True, jax.checkpoint_policies.dots_saveable):
        res = _sweep(remat=remat)
        np.testing.assert_allclose(res.losses, f32_sweep.losses, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(res.grad_norms, f32_sweep.grad_norms, rtol=1e-5, atol=1e-6)
    grad = jax.grad(jol.with_remat(mlp_loss))(P0, DATA)
    want = jax.grad(mlp_loss)(P0, DATA)
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_equal_wrappers_are_equal_and_hit_the_caches():
    a = wrap_loss(mlp_loss, jnp.bfloat16, True, False)
    b = wrap_loss(mlp_loss, "bfloat16", True, False)
    assert a == b and hash(a) == hash(b) and isinstance(a, Remat)
    assert isinstance(a.loss_fn, ComputeDtype)
    assert a != wrap_loss(mlp_loss, jnp.float16, True, False)
    assert wrap_loss(mlp_loss, None, False, False) is mlp_loss
    _sweep(compute_dtype=jnp.bfloat16, remat=True)
    before = sweep_module._run_chunk._cache_size()
    plans = len(planning._plans)
    _sweep(compute_dtype=jnp.bfloat16, remat=True)  # the same plan
    assert len(planning._plans) == plans
    _sweep(LRS * 2, compute_dtype=jnp.bfloat16, remat=True)  # a new plan, the same program
    assert sweep_module._run_chunk._cache_size() == before


def _fit(**kw):
    return jol.fit(mlp_loss, P0, jol.adam(3e-3), DATA, batch_size=16, epochs=5,
                   key=jax.random.key(2), **kw)  # fmt: skip


def test_fit_with_compute_dtype_and_remat():
    plain = _fit()
    low = _fit(compute_dtype=jnp.bfloat16)
    assert _float_dtypes(low.params) == _float_dtypes(low.state) == {np.dtype(np.float32)}
    np.testing.assert_allclose(low.losses, plain.losses, rtol=3e-2, atol=1e-2)
    again = loops_module._fit._cache_size()
    _fit(compute_dtype=jnp.bfloat16)
    assert loops_module._fit._cache_size() == again  # an equal wrapper: no new compile
    remat = _fit(remat=True)
    np.testing.assert_allclose(remat.losses, plain.losses, rtol=1e-6, atol=1e-6)
    both = _fit(compute_dtype=jnp.bfloat16, remat=True)
    np.testing.assert_allclose(both.losses, low.losses, rtol=1e-2, atol=1e-2)


def test_fit_has_aux_and_minimize():
    def with_aux(p, batch):
        return mlp_loss(p, batch), {"n": batch["y"].shape[0]}

    res = jol.fit(with_aux, P0, jol.adam(3e-3), DATA, batch_size=16, epochs=1,
                  key=jax.random.key(2), has_aux=True, compute_dtype=jnp.bfloat16)  # fmt: skip
    assert res.aux == {"n": 16} and res.losses.dtype == jnp.float32
    full = jol.minimize(mlp_loss, P0, jol.adam(3e-3), 50, args=(DATA,))
    low = jol.minimize(mlp_loss, P0, jol.adam(3e-3), 50, args=(DATA,),
                       compute_dtype=jnp.bfloat16, remat=True)  # fmt: skip
    assert _float_dtypes(low.params) == {np.dtype(np.float32)}
    np.testing.assert_allclose(low.losses, full.losses, rtol=3e-2, atol=1e-2)


@pytest.mark.parametrize(
    "kw, error, words",
    [
        ({"compute_dtype": jnp.int32}, jol.InputValueError, "compute_dtype"),
        ({"compute_dtype": "not a dtype"}, jol.InputTypeError, "compute_dtype"),
        ({"compute_dtype": jnp.complex64}, jol.InputValueError, "compute_dtype"),
        ({"remat": "yes"}, jol.InputTypeError, "remat"),
    ],
)
def test_bad_input(kw, error, words):
    with pytest.raises(error, match=words):
        _sweep(**kw)
    with pytest.raises(error, match=words):
        _fit(**kw)
    with pytest.raises(error, match=words):
        jol.minimize(mlp_loss, P0, jol.adam(1e-3), 2, args=(DATA,), **kw)
    with pytest.raises(jol.InputValueError, match="remat"):
        jol.with_remat(mlp_loss, False)
