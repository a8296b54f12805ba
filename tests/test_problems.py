"""Tests for jaxopt_lab.problems: test functions, data problems, and short training runs."""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab import problems

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def x64():
    """Enable float64 for the block only (never leaks to other tests)."""
    if hasattr(jax, "enable_x64"):
        with jax.enable_x64(True):
            yield
    else:  # older JAX
        from jax.experimental import enable_x64

        with enable_x64():
            yield


@functools.lru_cache(maxsize=None)
def make_function(name: str) -> problems.TestFunction:
    return problems.TEST_FUNCTIONS[name]()


@functools.lru_cache(maxsize=None)
def make_problem(name: str) -> problems.DataProblem:
    return problems.DATA_PROBLEMS[name]()


FUNCTION_NAMES = sorted(problems.TEST_FUNCTIONS)
BOUNDED = [n for n in FUNCTION_NAMES if n != "saddle"]
PROBLEM_NAMES = sorted(problems.DATA_PROBLEMS)


def derivatives(f: problems.TestFunction):
    """One compiled function: points (m, n) -> values (m,), gradients (m, n), Hessians."""
    return jax.jit(jax.vmap(lambda x: (f.fn(x), jax.grad(f.fn)(x), jax.hessian(f.fn)(x))))


# Extra points, per function, evaluated with x0 and the minimizers (one compile each).
EXTRA_POINTS = {"saddle": [[0.0, 0.0], [0.0, 1e3]], "quartic": [[1.0]]}
NUM_RANDOM = 5


class Evaluated(NamedTuple):
    points: np.ndarray  # x0, minimizers, EXTRA_POINTS, NUM_RANDOM random points
    values: np.ndarray
    grads: np.ndarray
    hessians: np.ndarray

    def rows(self, start, stop):
        return Evaluated(*(a[start:stop] for a in self))


@functools.lru_cache(maxsize=None)
def evaluated(name: str) -> Evaluated:
    f = make_function(name)
    n = f.x0.shape[0]
    extra = jnp.asarray(EXTRA_POINTS.get(name, np.zeros((0, n))), jnp.float32).reshape(-1, n)
    rand = jax.random.normal(jax.random.key(1), (NUM_RANDOM, n))
    pts = jnp.concatenate([f.x0[None], f.minimizers, extra, rand])
    return Evaluated(np.asarray(pts), *map(np.asarray, derivatives(f)(pts)))


def at_x0(name):
    return evaluated(name).rows(0, 1)


def at_minimizers(name):
    return evaluated(name).rows(1, 1 + make_function(name).minimizers.shape[0])


def at_extra(name):
    start = 1 + make_function(name).minimizers.shape[0]
    return evaluated(name).rows(start, start + len(EXTRA_POINTS[name]))


def global_minimizers(f: problems.TestFunction, values: np.ndarray, tol: float) -> np.ndarray:
    """A boolean mask of the listed minimizers whose value is the global minimum."""
    scale = max(1.0, abs(f.minimum))
    return np.abs(np.asarray(values, np.float64) - f.minimum) <= tol * scale


def min_eigenvalue(hessians) -> np.ndarray:
    eig = np.linalg.eigvalsh(np.asarray(hessians, np.float64))
    return eig.min(axis=-1), np.abs(eig).max(axis=-1)


def tree_allclose(a, b, **kw) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.allclose(x, y, **kw)), a, b)))


# --------------------------------------------------------------------------------------
# Test functions
# --------------------------------------------------------------------------------------


def test_registry_and_records():
    assert set(problems.TEST_FUNCTIONS) == {
        "quadratic",
        "ill_conditioned_quadratic",
        "rosenbrock",
        "beale",
        "himmelblau",
        "saddle",
        "sine_bowl",
        "quartic",
    }
    for name in FUNCTION_NAMES:
        f = make_function(name)
        assert isinstance(f, problems.TestFunction)
        assert f.name == name
        n = f.x0.shape[0]
        assert f.x0.shape == (n,) and f.x0.dtype == jnp.float32
        assert f.minimizers.ndim == 2 and f.minimizers.shape[1] == n
        assert f.minimizers.dtype == jnp.float32
        assert isinstance(f.minimum, float)


@pytest.mark.parametrize("name", BOUNDED)
def test_minimizers_value_gradient_hessian(name):
    f = make_function(name)
    _, values, grads, hess = at_minimizers(name)
    lam_min, lam_max = min_eigenvalue(hess)
    scale = max(1.0, abs(f.minimum))
    is_global = global_minimizers(f, values, tol=1e-5)
    # the first listed minimizer is a global one; global ones have the minimum value
    assert is_global[0]
    assert np.all(np.abs(np.asarray(values)[is_global] - f.minimum) <= 1e-5 * scale)
    # every listed minimizer (global or, for the 1-D functions, local) is a strict local
    # minimum: zero gradient, positive definite Hessian, value not below the minimum
    assert np.abs(grads).max() < 1e-3
    assert np.all(lam_min > 1e-6 * lam_max)
    assert np.all(np.asarray(values) >= f.minimum - 1e-5 * scale)
    # and nothing is lower than the minimum at many random points
    pts = 4.0 * jax.random.normal(jax.random.key(0), (2048, f.x0.shape[0]))
    assert float(jnp.min(jax.jit(jax.vmap(f.fn))(pts))) >= f.minimum - 1e-4 * scale


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_x0_is_not_a_minimizer(name):
    f = make_function(name)
    _, value, grad, _ = at_x0(name)
    assert float(value[0]) > f.minimum + 1e-3
    assert float(np.linalg.norm(grad[0])) > 1e-3
    for m in f.minimizers:
        assert float(jnp.linalg.norm(f.x0 - m)) > 1e-2


@pytest.mark.parametrize("n,kappa", [(2, 100.0), (5, 1e3), (10, 10.0), (3, 1.0), (1, 1.0)])
def test_ill_conditioned_quadratic_condition_number(n, kappa):
    f = problems.ill_conditioned_quadratic(n, kappa)
    eig = np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(f.fn))(f.x0), np.float64))
    assert eig.min() == pytest.approx(1.0, rel=1e-6)
    assert eig.max() / eig.min() == pytest.approx(kappa, rel=1e-6)
    # log-spaced: consecutive ratios are equal
    if n > 2:
        ratios = eig[1:] / eig[:-1]
        assert np.allclose(ratios, ratios[0], rtol=1e-5)


@pytest.mark.parametrize("n", [2, 10, 100])
def test_rosenbrock_in_n_dimensions(n):
    f = problems.rosenbrock(n)
    assert f.minimizers.shape == (1, n) and np.all(np.asarray(f.minimizers) == 1.0)
    values, grads, hess = derivatives(f)(jnp.stack([jnp.ones(n), f.x0]))
    assert float(values[0]) == 0.0
    assert float(jnp.max(jnp.abs(grads[0]))) == 0.0
    assert np.linalg.eigvalsh(np.asarray(hess[0])).min() > 0
    expected_x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    assert np.allclose(f.x0, expected_x0)
    # f(x0): 24.2 for each (-1.2, 1) link, 484 for each (1, -1.2) link
    expected = 24.2 * (n // 2) + 484.0 * ((n - 1) // 2)
    assert float(values[1]) == pytest.approx(expected, rel=1e-5)


def test_saddle():
    f = problems.saddle()
    assert f.minimizers.shape == (0, 2)
    assert f.minimum == float("-inf")
    _, values, grads, hess = at_extra("saddle")  # (0, 0) and (0, 1e3)
    assert float(values[0]) == 0.0 and float(np.abs(grads[0]).max()) == 0.0
    assert np.allclose(np.linalg.eigvalsh(np.asarray(hess[0])), [-2.0, 2.0])  # indefinite
    assert float(values[1]) == -1e6  # unbounded below
    assert np.allclose(f.x0, [1.0, 1e-3])


def test_himmelblau_has_four_global_minima():
    f = problems.himmelblau()
    assert f.minimizers.shape == (4, 2)
    assert global_minimizers(f, at_minimizers("himmelblau").values, tol=1e-5).all()
    assert np.allclose(f.minimizers[0], [3.0, 2.0])


def test_quartic_minima_exact():
    f = problems.quartic()
    assert np.array_equal(np.asarray(f.minimizers), [[-1.0], [3.0]])
    assert f.minimum == -9.0
    assert np.array_equal(at_minimizers("quartic").values, [-9.0, -9.0])
    # the stationary point in between, x = 1, is a local maximum
    _, value, grad, hess = at_extra("quartic")
    assert float(value[0]) == 7.0 and float(grad[0, 0]) == 0.0 and float(hess[0, 0, 0]) < 0
    # the closed form f(x) = ((x - 1)^2 - 4)^2 - 9
    xs = np.linspace(-3, 5, 101)
    got = jax.jit(jax.vmap(f.fn))(jnp.asarray(xs[:, None], jnp.float32))
    assert np.allclose(got, ((xs - 1) ** 2 - 4) ** 2 - 9, atol=1e-3)


def _grid_local_minima(fn, lo=-10.0, hi=10.0, num=200_001):
    xs = np.linspace(lo, hi, num)
    vals = np.asarray(jax.jit(jax.vmap(fn))(jnp.asarray(xs[:, None])))
    inner = (vals[1:-1] < vals[:-2]) & (vals[1:-1] < vals[2:])
    return xs[1:-1][inner], vals[1:-1][inner], xs[1] - xs[0]


@pytest.mark.parametrize(
    "factory", [problems.sine_bowl, problems.quartic, functools.partial(problems.sine_bowl, 10.0)]
)
def test_one_dimensional_minimizers_match_grid_search_and_scipy(factory):
    from scipy.optimize import minimize_scalar

    with x64():
        f = factory()
        assert f.minimizers.dtype == jnp.float64
        grid_x, grid_v, h = _grid_local_minima(f.fn)
        # every local minimum of the grid is listed, and vice versa (sorted by value)
        order = np.argsort(grid_v, kind="stable")
        assert len(grid_x) == f.minimizers.shape[0]
        if f.name == "quartic":  # equal values: order by position
            order = np.argsort(grid_x)
        assert np.allclose(grid_x[order], np.asarray(f.minimizers)[:, 0], atol=2 * h)
        assert float(grid_v.min()) == pytest.approx(f.minimum, abs=1e-6)
        fn64 = jax.jit(f.fn)
        for m in np.asarray(f.minimizers)[:, 0]:
            res = minimize_scalar(
                lambda t: float(fn64(jnp.array([t]))),
                bounds=(m - 0.5, m + 0.5),
                method="bounded",
                options={"xatol": 1e-10},
            )
            assert res.x == pytest.approx(m, abs=1e-6)


def test_sine_bowl_seed_default_and_rippled_amplitude():
    g = problems.sine_bowl()  # the seed material's x^2 + 5 sin x: one minimum
    assert g.minimizers.shape == (1, 1)
    assert float(g.minimizers[0, 0]) == pytest.approx(-1.11051, abs=1e-4)
    assert g.minimum == pytest.approx(-3.24639, abs=1e-5)
    f = problems.sine_bowl(10.0)  # x^2 + 10 sin x: a local minimum too
    m = np.asarray(f.minimizers)[:, 0]
    assert m.shape == (2,)
    assert m[0] == pytest.approx(-1.30644, abs=1e-4)  # global
    assert m[1] == pytest.approx(3.83747, abs=1e-4)  # local, where x0 = 5 leads
    assert f.minimum == pytest.approx(-7.945823, abs=1e-5)
    assert float(f.x0[0]) == 5.0
    # gradient descent from x0 = 5 ends in the local minimum of the rippled bowl
    x = f.x0
    step = jax.jit(lambda x: x - 0.05 * jax.grad(f.fn)(x))
    for _ in range(300):
        x = step(x)
    assert float(x[0]) == pytest.approx(m[1], abs=1e-3)


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_jit_and_vmap(name):
    f = make_function(name)
    n = f.x0.shape[0]
    pts, values, grads, hess = evaluated(name)  # jit of vmap
    fn = jax.jit(f.fn)
    looped = np.array([float(fn(p)) for p in pts])  # jit, one point at a time
    assert values.shape == (pts.shape[0],)
    assert np.allclose(values, looped, rtol=1e-6, atol=1e-6)
    assert float(f.fn(f.x0)) == pytest.approx(looped[0], rel=1e-6)  # eager
    assert grads.shape == pts.shape and np.all(np.isfinite(grads))
    assert hess.shape == (pts.shape[0], n, n) and np.all(np.isfinite(hess))


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_float64_and_dtype_follows_input(name):
    with x64():
        f = problems.TEST_FUNCTIONS[name]()
        assert f.x0.dtype == jnp.float64 and f.minimizers.dtype == jnp.float64
        for dtype in (jnp.float64, jnp.float32, jnp.bfloat16):
            out = jax.eval_shape(f.fn, jax.ShapeDtypeStruct(f.x0.shape, dtype))
            assert out.shape == () and out.dtype == dtype
        values, grads, _ = derivatives(f)(jnp.concatenate([f.x0[None], f.minimizers]))
        assert values.dtype == jnp.float64 and grads.dtype == jnp.float64
        if f.minimizers.shape[0]:
            # float64 minimizers are accurate to float64 precision
            is_global = global_minimizers(f, values[1:], tol=1e-12)
            assert is_global[0]
            assert float(jnp.max(jnp.abs(grads[1:]))) < 1e-9
    # nothing leaked
    assert jnp.zeros(1).dtype == jnp.float32
    assert make_function(name).x0.dtype == jnp.float32


def test_integer_input_is_promoted():
    f = problems.quadratic(3)
    assert float(f.fn(jnp.array([1, 2, 3]))) == 7.0


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        problems.rosenbrock(2).fn(jnp.ones(3))
    with pytest.raises(ValueError, match="x must have shape"):
        problems.beale().fn(jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="condition_number"):
        problems.ill_conditioned_quadratic(2, 0.5)
    with pytest.raises(ValueError, match="condition_number"):
        problems.ill_conditioned_quadratic(1, 10.0)
    with pytest.raises(ValueError, match="n must be >= 2"):
        problems.rosenbrock(1)
    with pytest.raises(TypeError, match="n must be an int"):
        problems.quadratic(2.5)
    with pytest.raises(ValueError, match="condition_number must be finite"):
        problems.ill_conditioned_quadratic(2, float("inf"))


# --------------------------------------------------------------------------------------
# Data problems
# --------------------------------------------------------------------------------------

EXPECTED_PARAM_SHAPES = {
    "linear_regression": {"w": (1,), "b": ()},
    "logistic_regression": {"w": (64,), "b": ()},
    "xor": {"w1": (2, 8), "b1": (8,), "w2": (8,), "b2": ()},
    "digits_mlp": {"w1": (64, 64), "b1": (64,), "w2": (64, 10), "b2": (10,)},
    "digits_cnn": {
        "conv1": {"w": (3, 3, 1, 16), "b": (16,)},
        "conv2": {"w": (3, 3, 16, 32), "b": (32,)},
        "dense": {"w": (512, 10), "b": (10,)},
    },
}
EXPECTED_X_SHAPES = {  # (train, validation, test)
    "linear_regression": ((100, 1), None, None),
    "logistic_regression": ((216, 64), (54, 64), (90, 64)),
    "xor": ((4, 2), None, None),
    "digits_mlp": ((1077, 64), (270, 64), (450, 64)),
    "digits_cnn": ((1077, 8, 8, 1), (270, 8, 8, 1), (450, 8, 8, 1)),
}


def test_data_registry():
    assert set(problems.DATA_PROBLEMS) == set(EXPECTED_X_SHAPES)


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_data_shapes_and_dtypes(name):
    p = make_problem(name)
    assert isinstance(p, problems.DataProblem) and p.name == name
    train_shape, validation_shape, test_shape = EXPECTED_X_SHAPES[name]
    assert p.train["x"].shape == train_shape and p.train["x"].dtype == jnp.float32
    assert p.train["y"].shape == train_shape[:1]
    y_dtype = jnp.float32 if name == "linear_regression" else jnp.int32
    assert p.train["y"].dtype == y_dtype
    for data, shape in ((p.validation, validation_shape), (p.test, test_shape)):
        if shape is None:
            assert data is None
        else:
            assert data["x"].shape == shape and data["x"].dtype == jnp.float32
            assert data["y"].shape == shape[:1] and data["y"].dtype == jnp.int32
    if name.startswith("digits") or name == "logistic_regression":
        for data in (p.train, p.validation, p.test):
            assert float(data["x"].min()) >= 0.0 and float(data["x"].max()) <= 1.0
    assert p.metric_name == ("mse" if name == "linear_regression" else "accuracy")


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_init_params_deterministic(name):
    p = make_problem(name)
    a = p.init_params(jax.random.key(0))
    b = p.init_params(jax.random.key(0))
    c = p.init_params(jax.random.key(1))
    assert jax.tree.map(jnp.shape, a) == EXPECTED_PARAM_SHAPES[name]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(a))
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))
    assert not all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, c)))
    with pytest.raises(TypeError, match="key"):
        p.init_params(0)


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_loss_grad_jit_metric(name):
    p = make_problem(name)
    params = p.init_params(jax.random.key(0))

    @jax.jit
    def evaluate(params, train, validation, test):
        value, grads = jax.value_and_grad(p.loss)(params, train)
        metrics = [p.metric(params, d) for d in (train, validation, test) if d is not None]
        return value, grads, metrics, p.predict(params, train["x"])

    value, grads, metrics, pred = evaluate(params, p.train, p.validation, p.test)
    assert value.shape == () and value.dtype == jnp.float32 and bool(jnp.isfinite(value))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))
    # a mini-batch of the same structure works too, also eagerly (the CNN's eager forward
    # pass compiles op by op: skipped to keep the file fast, it is jitted everywhere else)
    small = jax.tree.map(lambda a: a[:3], p.train)
    small_loss = (jax.jit(p.loss) if name == "digits_cnn" else p.loss)(params, small)
    assert bool(jnp.isfinite(small_loss)) and small_loss.shape == ()
    # metric in range, for every split
    for m in map(float, metrics):
        if p.metric_name == "accuracy":
            assert 0.0 <= m <= 1.0
        else:
            assert m >= 0.0 and math.isfinite(m)
    if p.metric_name == "mse":
        assert float(metrics[0]) == pytest.approx(float(value), rel=1e-6)
    assert pred.shape == p.train["y"].shape
    if name.startswith("digits") or name == "logistic_regression":
        assert pred.dtype == jnp.int32


def test_linear_regression_least_squares_recovers_coefficients():
    p = problems.linear_regression()  # intercept 2, slope 3, noise 1, n = 100
    x = np.asarray(p.train["x"], np.float64)[:, 0]
    y = np.asarray(p.train["y"], np.float64)
    assert 0.0 <= x.min() and x.max() <= 2.0
    design = np.stack([np.ones_like(x), x], axis=1)
    (b, w), *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ np.array([b, w])
    sigma = np.sqrt(resid @ resid / (len(x) - 2))
    se = sigma * np.sqrt(np.diag(np.linalg.inv(design.T @ design)))
    assert abs(b - 2.0) < 4 * se[0] and abs(w - 3.0) < 4 * se[1]
    assert 0.7 < sigma < 1.3  # the noise level
    # the least-squares solution is a stationary point of the problem's loss
    params = {"w": jnp.array([w], jnp.float32), "b": jnp.array(b, jnp.float32)}
    mse, g = jax.jit(jax.value_and_grad(p.loss))(params, p.train)
    assert float(jnp.abs(g["w"][0])) < 1e-4 and float(jnp.abs(g["b"])) < 1e-4
    assert float(mse) == pytest.approx(np.mean(resid**2), rel=1e-4)
    # noiseless data are fit exactly; other coefficients and seeds are honoured
    q = problems.linear_regression(n=100, intercept=-1.0, slope=0.5, noise=0.0, seed=3)
    assert np.allclose(q.train["y"], -1.0 + 0.5 * q.train["x"][:, 0], atol=1e-6)
    assert not np.array_equal(q.train["x"], p.train["x"])


def _rows(*parts) -> np.ndarray:
    """Each example of ``parts`` as one row (features, then label), sorted."""
    rows = np.concatenate(
        [np.column_stack([np.asarray(d["x"]).reshape(len(d["y"]), -1), d["y"]]) for d in parts]
    )
    return rows[np.lexsort(rows.T[::-1])]


def test_digits_split_is_stratified_and_shared_between_mlp_and_cnn():
    mlp, cnn = make_problem("digits_mlp"), make_problem("digits_cnn")
    for part in ("train", "validation", "test"):
        mine, theirs = getattr(mlp, part), getattr(cnn, part)
        assert np.array_equal(np.asarray(mine["x"]).reshape(-1, 8, 8, 1), theirs["x"])
        assert np.array_equal(mine["y"], theirs["y"])
    counts = {
        part: np.bincount(np.asarray(getattr(mlp, part)["y"]), minlength=10)
        for part in ("train", "validation", "test")
    }
    total = sum(counts.values())
    assert np.all(np.abs(counts["test"] / total - 0.25) < 0.01)
    # validation: 20% of what the test set leaves, class by class (to one example)
    rest = counts["train"] + counts["validation"]
    assert np.all(np.abs(counts["validation"] - 0.2 * rest) <= 1)
    # the three parts are the whole data set, each example in exactly one of them
    x, y = problems._digits()
    assert np.array_equal(_rows(mlp.train, mlp.validation, mlp.test), _rows({"x": x, "y": y}))
    # another seed gives another split of the same data
    other = problems.digits_mlp(seed=1)
    assert not np.array_equal(other.train["y"], mlp.train["y"])
    assert not np.array_equal(other.validation["y"], mlp.validation["y"])
    assert np.array_equal(_rows(other.train, other.validation, other.test), _rows({"x": x, "y": y}))
    # the raw data are loaded once
    before = problems._digits.cache_info()
    problems.digits_mlp(seed=2)
    problems.logistic_regression((3, 8), seed=2)
    after = problems._digits.cache_info()
    assert after.misses == before.misses


def test_the_test_set_is_the_one_before_validation_existed():
    """The validation set comes out of the old training part: the test set, and so every
    test number measured before, is unchanged, and train + validation is the old train."""
    from sklearn.model_selection import train_test_split

    x, y = problems._digits()
    for seed in (0, 3):
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=0.25, stratify=y, random_state=seed
        )
        p = problems.digits_mlp(seed=seed)
        assert np.array_equal(p.test["x"], x_te) and np.array_equal(p.test["y"], y_te)
        old = {"x": x_tr, "y": y_tr}
        assert np.array_equal(_rows(p.train, p.validation), _rows(old))
        whole = problems.digits_mlp(seed=seed, validation_fraction=0)
        assert whole.validation is None and np.array_equal(whole.train["x"], x_tr)


def test_the_split_is_deterministic():
    a, b = problems.digits_mlp(), problems.digits_mlp()
    for part in ("train", "validation", "test"):
        assert np.array_equal(getattr(a, part)["x"], getattr(b, part)["x"])
        assert np.array_equal(getattr(a, part)["y"], getattr(b, part)["y"])
    lr = problems.logistic_regression((3, 8), seed=1, validation_fraction=0.5)
    # half of the old training part (267 examples), the odd one to validation (rounded up)
    assert (len(lr.train["y"]), len(lr.validation["y"])) == (133, 134)
    assert np.array_equal(
        lr.validation["y"], problems.logistic_regression((3, 8), 1, 0.5).validation["y"]
    )


def test_data_problem_records_without_validation_still_work():
    p = make_problem("xor")
    old_style = problems.DataProblem(*p[:8])  # the eight fields of before, positionally
    assert old_style.validation is None and old_style.metric_name == "accuracy"
    assert problems.DataProblem._fields[-1] == "validation"


@pytest.mark.parametrize(
    ("value", "error"),
    [(1.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError), ("0.2", TypeError),
     (True, TypeError), (0.001, ValueError)],
)  # fmt: skip
def test_bad_validation_fraction_is_named(value, error):
    with pytest.raises(error, match="validation_fraction") as info:
        problems.logistic_regression(validation_fraction=value)  # 0.001: 1 of 270, 2 classes
    assert isinstance(info.value, jol.InputError)


def test_logistic_regression_classes():
    p = problems.logistic_regression((3, 8), seed=1)
    y = np.concatenate([p.train["y"], p.validation["y"], p.test["y"]])
    assert set(y.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="digits"):
        problems.logistic_regression((3, 3))
    with pytest.raises(TypeError, match="digits"):
        problems.logistic_regression((3,))


def test_digits_without_sklearn_raises_clear_import_error(monkeypatch):
    for mod in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, mod, None)
    for factory in (problems.digits_mlp, problems.digits_cnn, problems.logistic_regression):
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            factory(seed=123)


def test_predict_batch_shapes():
    mlp, cnn = make_problem("digits_mlp"), make_problem("digits_cnn")
    pm = mlp.init_params(jax.random.key(0))
    pc = cnn.init_params(jax.random.key(0))
    x = mlp.test["x"][:6]
    shape = lambda predict, params, x: jax.eval_shape(predict, params, x).shape  # noqa: E731
    assert shape(mlp.predict, pm, x[0]) == ()
    assert shape(mlp.predict, pm, x.reshape(2, 3, 64)) == (2, 3)
    assert shape(cnn.predict, pc, cnn.test["x"][0]) == ()
    assert shape(cnn.predict, pc, x.reshape(2, 3, 64)) == (2, 3)
    # flat rows and images give the same predictions
    both = jax.jit(lambda params, a, b: (cnn.predict(params, a), cnn.predict(params, b)))
    from_rows, from_images = both(pc, x, cnn.test["x"][:6])
    assert np.array_equal(from_rows, from_images)
    with pytest.raises(ValueError, match="digits_cnn"):
        cnn.predict(pc, jnp.ones((2, 7, 7, 1)))
    with pytest.raises(ValueError, match="digits_mlp"):
        mlp.predict(pm, jnp.ones((2, 63)))
    xp = make_problem("xor")
    probs = xp.predict(xp.init_params(jax.random.PRNGKey(0)), xp.train["x"])  # raw keys work
    assert probs.dtype == jnp.float32 and bool(jnp.all((probs > 0) & (probs < 1)))


def test_cnn_gradients_match_plain_lax_conv_and_support_forward_mode():
    """The custom JVP of the convolution gives XLA-autodiff's numbers, in both modes."""
    p = make_problem("digits_cnn")
    params = p.init_params(jax.random.key(3))
    batch = jax.tree.map(lambda a: a[:16], p.train)

    def reference_loss(params, batch):
        def conv(x, layer):
            y = jax.lax.conv_general_dilated(
                x, layer["w"], (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return jax.nn.relu(y + layer["b"])

        h = conv(conv(batch["x"], params["conv1"]), params["conv2"])
        logits = h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, batch["y"][:, None], axis=-1))

    def derivs(loss):
        """Value, gradient, and a Hessian-vector product (forward over reverse)."""

        @jax.jit
        def run(params, batch):
            v = jax.tree.map(jnp.ones_like, params)
            grad = functools.partial(jax.grad(loss), batch=batch)
            return loss(params, batch), grad(params), jax.jvp(grad, (params,), (v,))[1]

        return run(params, batch)

    # Full float32 products: by default a GPU may run convolutions and matmuls in TF32.
    with jax.default_matmul_precision("highest"):
        (value, grad, hvp), (value_ref, grad_ref, hvp_ref) = derivs(p.loss), derivs(reference_loss)
    assert float(value) == pytest.approx(float(value_ref), rel=1e-6)
    assert tree_allclose(grad, grad_ref, rtol=1e-4, atol=1e-6)
    assert tree_allclose(hvp, hvp_ref, rtol=1e-3, atol=1e-4)


def test_data_problems_in_float64():
    """Cast params to float64 (under x64) and the losses compute in float64."""
    mlp, cnn = make_problem("digits_mlp"), make_problem("digits_cnn")
    params32 = mlp.init_params(jax.random.key(0))
    cnn_params32 = cnn.init_params(jax.random.key(0))
    batch = jax.tree.map(lambda a: a[:4], mlp.train)
    cnn_batch = jax.tree.map(lambda a: a[:4], cnn.train)
    to64 = functools.partial(jax.tree.map, lambda a: a.astype(jnp.float64))
    with x64(), jax.default_matmul_precision("highest"):  # no TF32 on a GPU
        params = to64(params32)
        value, value32 = jax.jit(lambda a, b: (mlp.loss(a, batch), mlp.loss(b, batch)))(
            params, params32
        )
        assert value.dtype == jnp.float64 and value32.dtype == jnp.float32
        assert abs(float(value) - float(value32)) < 1e-5
        # the CNN (custom-JVP convolutions included): traced, not compiled, to stay fast
        value, grads = jax.eval_shape(jax.value_and_grad(cnn.loss), to64(cnn_params32), cnn_batch)
        assert value.dtype == jnp.float64
        assert all(g.dtype == jnp.float64 for g in jax.tree.leaves(grads))
        lr = problems.linear_regression()
        assert lr.train["x"].dtype == jnp.float32  # data stay float32
    assert jnp.zeros(1).dtype == jnp.float32


# --------------------------------------------------------------------------------------
# Training smoke tests: one jitted lax.scan per run, data passed as arguments
# --------------------------------------------------------------------------------------


def train(p, opt, steps, key, data, batch_size=None):
    """Train ``p`` from ``p.init_params(key)`` for ``steps`` steps of ``opt``."""
    n = jax.tree.leaves(data)[0].shape[0]

    @jax.jit
    def run(params, data, key):
        def step(carry, k):
            params, state = carry
            if batch_size is None:
                batch = data
            else:
                idx = jax.random.permutation(k, n)[:batch_size]
                batch = jax.tree.map(lambda a: a[idx], data)
            loss, grads = jax.value_and_grad(p.loss)(params, batch)
            updates, state = opt.update(grads, state, params)
            return (jol.apply_updates(params, updates), state), loss

        params0 = params
        (params, _), losses = jax.lax.scan(
            step, (params0, opt.init(params0)), jax.random.split(key, steps)
        )
        return params, losses

    k_init, k_data = jax.random.split(key)
    return run(p.init_params(k_init), data, k_data)


@pytest.fixture(scope="module")
def mlp_accuracy():
    p = make_problem("digits_mlp")
    params, losses = train(p, jol.adam(1e-2), 300, jax.random.key(0), p.train)
    assert float(losses[-1]) < float(losses[0])
    return float(p.metric(params, p.test))


def test_train_digits_mlp(mlp_accuracy):
    print(f"digits_mlp test accuracy: {mlp_accuracy:.4f}")
    assert mlp_accuracy >= 0.95


def test_train_digits_cnn(mlp_accuracy):
    p = make_problem("digits_cnn")
    # mini-batches of 128 (about 19 epochs in 200 steps) keep this a few seconds on CPU
    params, losses = train(p, jol.adam(1e-2), 200, jax.random.key(0), p.train, batch_size=128)
    acc = float(p.metric(params, p.test))
    print(f"digits_cnn test accuracy: {acc:.4f} (mlp {mlp_accuracy:.4f})")
    assert float(losses[-20:].mean()) < 0.1
    assert acc >= 0.95 and acc >= mlp_accuracy - 0.01


def test_train_logistic_regression():
    p = make_problem("logistic_regression")
    params, losses = train(p, jol.adam(1e-1), 100, jax.random.key(0), p.train)
    acc = float(p.metric(params, p.test))
    print(f"logistic_regression (0 vs 1) test accuracy: {acc:.4f}")
    assert acc >= 0.99


def test_train_xor_reliably():
    p = make_problem("xor")
    opt = jol.adam(0.1)
    keys = jax.random.split(jax.random.key(0), 16)

    @jax.jit
    @jax.vmap
    def run(key):
        params, _ = train(p, opt, 300, key, p.train)
        return jnp.round(p.predict(params, p.train["x"])), p.metric(params, p.train)

    rounded, accuracy = run(keys)
    assert np.array_equal(rounded[0], [0, 1, 1, 0])
    solved = np.all(np.asarray(rounded) == np.array([0, 1, 1, 0]), axis=1)
    print(f"xor solved for {solved.sum()}/16 keys")
    assert solved.all()
    assert np.all(np.asarray(accuracy) == 1.0)


def test_train_linear_regression_reaches_least_squares():
    p = make_problem("linear_regression")
    params, _ = train(p, jol.adam(5e-2), 1000, jax.random.key(0), p.train)
    x = np.asarray(p.train["x"], np.float64)[:, 0]
    (b, w), *_ = np.linalg.lstsq(
        np.stack([np.ones_like(x), x], 1), np.asarray(p.train["y"], np.float64), rcond=None
    )
    assert float(params["b"]) == pytest.approx(b, abs=1e-2)
    assert float(params["w"][0]) == pytest.approx(w, abs=1e-2)
