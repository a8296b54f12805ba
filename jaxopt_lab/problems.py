"""Test functions and data problems: the seed material of a course on gradient descent.

Two kinds of problem live here, each a small immutable record built by a factory:

* :class:`TestFunction` -- a deterministic objective ``fn(x) -> scalar`` on a flat vector
  ``x`` of shape ``(n,)``, with its conventional starting point ``x0``, its known
  minimizers and its minimum value. These are the classic landscapes of numerical
  optimization (quadratic bowls, an ill-conditioned valley, Rosenbrock's banana, Beale,
  Himmelblau's four minima, a saddle) and two 1-D functions for drawing gradient descent
  by hand (``sine_bowl``, ``quartic``).
* :class:`DataProblem` -- a supervised-learning task: a parameter initializer
  ``init_params(key)``, a mean loss ``loss(params, batch)``, train (and validation and
  test) data as a pytree of arrays sharing a leading axis, ``predict`` and a ``metric``.
  The data are either generated (linear regression, XOR: training data only) or
  scikit-learn's bundled 8x8 digits in a fixed, stratified train / validation / test
  split, so nothing is ever downloaded.

Design:

* **Pure JAX.** Every ``fn``, ``loss``, ``predict`` and ``metric`` is a pure function
  that works under ``jax.jit``, ``jax.vmap``, ``jax.grad``/``jax.hessian`` and inside
  ``lax.scan``. No Python branching on array values; only shapes are inspected (they are
  static under tracing), and a wrong shape raises an ``InputValueError`` (a
  ``ValueError``) that names it.
* **The dtype follows the input.** A test function evaluated at a float64 point computes
  in float64 (with ``jax_enable_x64``), at a float32 point in float32: constants are
  Python numbers (weakly typed) or are cast to ``x.dtype``. ``x0`` and ``minimizers`` are
  created in JAX's default float dtype when the factory is called, so a factory called
  under x64 gives float64 points. Known minimizers are computed in float64 (by hand, by
  Newton's method or by bisection in NumPy) and rounded once.
  Data problems hold float32 inputs and int32 labels, as a course on CPU would, and
  ``init_params`` returns float32 parameters (cast them to train in float64).
* **Cheap to build, cheap to initialize.** Data are generated or loaded at factory time,
  once; ``init_params`` draws all of a model's weights with one ``jax.random.normal``
  call inside one ``jit``, so an eager call compiles one small program, not one per
  layer shape.
* **Records, not classes.** Both records are ``NamedTuple`` s of functions and arrays; a
  factory is cheap and holds no hidden state. Pass ``problem.fn`` or ``problem.loss``
  (not the record itself) to ``jax.jit``: the records contain strings.
* **Registries.** :data:`TEST_FUNCTIONS` and :data:`DATA_PROBLEMS` map names to factories
  so that benchmarks and the CLI can iterate over them.

The digits data are loaded once per process (``functools.lru_cache``); scikit-learn is
imported lazily, so that the test functions work without it (a GPU image may lack it).

For example, Rosenbrock's valley from its usual start:

>>> import jaxopt_lab as jol
>>> from jaxopt_lab import problems
>>> f = problems.rosenbrock(2)
>>> print(f.x0, float(f.minimum))
[-1.2  1. ] 0.0
>>> res = jol.minimize(f.fn, f.x0, jol.adam(1e-2), 5000)
>>> bool(f.fn(res.params) - f.minimum < 1e-6)
True

and a data problem, its loss on the training split and its metric on the test split:

>>> import jax
>>> p = problems.digits_mlp()
>>> p.train["x"].shape, p.validation["x"].shape, p.test["x"].shape
((1077, 64), (270, 64), (450, 64))
>>> params = p.init_params(jax.random.key(0))
>>> loss, grads = jax.value_and_grad(p.loss)(params, p.train)
>>> 0.0 <= float(p.metric(params, p.test)) <= 1.0  # accuracy
True
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.errors import InputTypeError, InputValueError

Array = jax.Array
Params = Any
Batch = Any

__all__ = [
    "DATA_PROBLEMS",
    "TEST_FUNCTIONS",
    "DataProblem",
    "TestFunction",
    "beale",
    "digits_cnn",
    "digits_mlp",
    "himmelblau",
    "ill_conditioned_quadratic",
    "linear_regression",
    "logistic_regression",
    "quadratic",
    "quartic",
    "rosenbrock",
    "saddle",
    "sine_bowl",
    "xor",
]


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


class TestFunction(NamedTuple):
    """A deterministic test objective on ``R^n``.

    Attributes:
      name: the registry name of the function.
      fn: ``x -> f(x)``, ``x`` of shape ``(n,)``, a scalar of ``x``'s float dtype.
      x0: the conventional starting point, shape ``(n,)``.
      minimizers: known minimizers, shape ``(m, n)``, global ones first. For the 2-D and
        n-D functions these are all the global minimizers; for the 1-D functions
        (``sine_bowl``, ``quartic``) they are all the local minimizers, sorted by value.
        Empty (``m = 0``) for a function unbounded below.
      minimum: the global minimum value (``float('-inf')`` when unbounded below).
    """

    __test__ = False  # keep pytest from trying to collect this class as a test class

    name: str
    fn: Callable[[Array], Array]
    x0: Array
    minimizers: Array
    minimum: float


class DataProblem(NamedTuple):
    """A supervised-learning problem with its data.

    Attributes:
      name: the registry name of the problem.
      init_params: ``key -> params``, a float32 pytree; the same key gives the same params.
      loss: ``(params, batch) -> scalar`` mean loss over the batch; ``batch`` has the
        structure of ``train`` (any number of rows).
      train: a pytree of arrays sharing a leading axis, ``{"x": ..., "y": ...}``.
      test: the same structure, held out; ``None`` when the problem has no test set.
      predict: ``(params, x) -> predictions``: class ids (int32) for classifiers, values
        for regression (for ``xor``: the sigmoid outputs).
      metric: ``(params, data) -> scalar``: accuracy for classifiers, mean squared error
        for regression.
      metric_name: ``"accuracy"`` or ``"mse"``.
      validation: the same structure as ``train``, held out from training to choose
        hyperparameters on (so that ``test`` stays untouched until the end); ``None``
        when the problem has none. The digits problems carve it, stratified, out of what
        was their training part, leaving ``test`` as it was (see :func:`digits_mlp`).
        The last field, so that records built positionally without it still work.
    """

    name: str
    init_params: Callable[[Array], Params]
    loss: Callable[[Params, Batch], Array]
    train: Any
    test: Any | None
    predict: Callable[[Params, Array], Array]
    metric: Callable[[Params, Batch], Array]
    metric_name: str
    validation: Any | None = None


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise InputValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
        raise InputTypeError(f"{name} must be a real number, got a bool: {value!r}")
    if isinstance(value, (str, bytes)):  # float() would parse it; a number was meant
        raise InputTypeError(f"{name} must be a real number, got the string {value!r}")
    if not isinstance(value, numbers.Real):
        try:
            value = float(np.asarray(value))  # a concrete 0-d array is fine
        except Exception:
            raise InputTypeError(
                f"{name} must be a concrete real number, got {value!r} "
                f"of type {type(value).__name__}"
            ) from None
    value = float(value)
    if not math.isfinite(value):
        raise InputValueError(f"{name} must be finite, got {value}")
    return value


def _as_point(x: Any, n: int, fn_name: str) -> Array:
    """``x`` as a float array of shape ``(n,)``; integer input becomes the default float."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    if x.shape != (n,):
        raise InputValueError(
            f"{fn_name}: x must have shape ({n},), got {x.shape}; "
            "use jax.vmap to evaluate a batch of points"
        )
    return x


def _points(values: Any, n: int) -> Array:
    """Points in JAX's default float dtype, shape ``(m, n)``."""
    return jnp.asarray(np.asarray(values, dtype=np.float64).reshape(-1, n))


def _make(
    name: str, fn: Callable[[Array], Array], x0: Any, minimizers: Any, minimum: float
) -> TestFunction:
    x0_np = np.asarray(x0, dtype=np.float64).reshape(-1)
    n = x0_np.shape[0]
    return TestFunction(name, fn, jnp.asarray(x0_np), _points(minimizers, n), float(minimum))


# --------------------------------------------------------------------------------------
# Test functions
# --------------------------------------------------------------------------------------


def quadratic(n: int = 2) -> TestFunction:
    r"""The isotropic quadratic bowl :math:`f(x) = \tfrac12 \|x\|^2`.

    Gradient :math:`x`, Hessian :math:`I` (condition number 1): gradient descent with
    step 1 lands on the minimum in one step.

    * Global minimum: :math:`f(0) = 0`.
    * ``x0 = (1, ..., 1)``.
    """
    n = _check_int("n", n, 1)

    def fn(x: Array) -> Array:
        x = _as_point(x, n, "quadratic")
        return 0.5 * jnp.sum(x * x)

    return _make("quadratic", fn, np.ones(n), np.zeros((1, n)), 0.0)


def ill_conditioned_quadratic(n: int = 2, condition_number: float = 100.0) -> TestFunction:
    r"""An axis-aligned quadratic valley :math:`f(x) = \tfrac12 \sum_i d_i x_i^2`.

    The curvatures :math:`d_i` are log-spaced from 1 to ``condition_number``
    (``numpy.geomspace``, whose endpoints are exact), so the Hessian
    :math:`\operatorname{diag}(d)` has condition number exactly ``condition_number``
    :math:`=\kappa`. Steepest descent with exact line search reduces :math:`f - f^*` by
    the factor :math:`((\kappa-1)/(\kappa+1))^2` per step in the worst case (Nocedal &
    Wright, *Numerical Optimization*, 2nd ed., 2006, Theorem 3.3); gradient descent with a
    fixed step :math:`\alpha` converges only for :math:`\alpha < 2/\lambda_{\max} = 2/\kappa`,
    and the flattest direction then shrinks by at most :math:`|1 - \alpha|` per step.

    * Global minimum: :math:`f(0) = 0`.
    * ``x0 = (1, ..., 1)``.
    """
    n = _check_int("n", n, 1)
    kappa = _check_real("condition_number", condition_number)
    if kappa < 1.0:
        raise InputValueError(f"condition_number must be >= 1, got {kappa}")
    if n == 1 and kappa != 1.0:
        raise InputValueError(
            f"a 1-D quadratic has condition number 1; got n=1 with condition_number={kappa}"
        )
    d_np = np.geomspace(1.0, kappa, n) if n > 1 else np.ones(1)

    def fn(x: Array) -> Array:
        x = _as_point(x, n, "ill_conditioned_quadratic")
        d = jnp.asarray(d_np, dtype=x.dtype)
        return 0.5 * jnp.sum(d * x * x)

    return _make("ill_conditioned_quadratic", fn, np.ones(n), np.zeros((1, n)), 0.0)


def rosenbrock(n: int = 2) -> TestFunction:
    r"""Rosenbrock's banana valley, in its chained n-dimensional form.

    .. math:: f(x) = \sum_{i=1}^{n-1} 100\,(x_{i+1} - x_i^2)^2 + (1 - x_i)^2

    (the form of ``scipy.optimize.rosen``). The minimum lies at the end of a long, curved,
    flat-bottomed valley that first-order methods crawl along.

    * Global minimum: :math:`f(1, \dots, 1) = 0`. For :math:`4 \le n \le 7` there is also
      a local minimum near :math:`(-1, 1, \dots, 1)` (Shang & Qiu 2006); it is not listed.
    * ``x0 = (-1.2, 1, -1.2, 1, ...)``, Rosenbrock's own starting point, repeated.

    References: H. H. Rosenbrock, "An automatic method for finding the greatest or least
    value of a function", *The Computer Journal* 3(3):175-184, 1960; Y.-W. Shang and
    Y.-H. Qiu, "A note on the extended Rosenbrock function", *Evolutionary Computation*
    14(1):119-126, 2006.

    >>> import jax.numpy as jnp
    >>> from jaxopt_lab import problems
    >>> rosen = problems.rosenbrock(2)
    >>> float(rosen.fn(jnp.ones(2))), rosen.minimizers.tolist()
    (0.0, [[1.0, 1.0]])
    """
    n = _check_int("n", n, 2)

    def fn(x: Array) -> Array:
        x = _as_point(x, n, "rosenbrock")
        head, tail = x[:-1], x[1:]
        return jnp.sum(100.0 * (tail - head * head) ** 2 + (1.0 - head) ** 2)

    x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    return _make("rosenbrock", fn, x0, np.ones((1, n)), 0.0)


def beale() -> TestFunction:
    r"""Beale's function on :math:`\mathbb R^2`.

    .. math:: f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2

    Flat plateaus and steep ridges along the axes; the sharp corners make step sizes hard
    to pick.

    * Global minimum: :math:`f(3, 0.5) = 0`.
    * ``x0 = (1, 1)`` (Moré, Garbow & Hillstrom 1981, problem 5).

    References: E. M. L. Beale, "On an iterative method for finding a local minimum of a
    function of more than one variable", Tech. Rep. 25, Statistical Techniques Research
    Group, Princeton University, 1958; J. J. Moré, B. S. Garbow and K. E. Hillstrom,
    "Testing unconstrained optimization software", *ACM TOMS* 7(1):17-41, 1981.
    """

    def fn(p: Array) -> Array:
        p = _as_point(p, 2, "beale")
        x, y = p[0], p[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return _make("beale", fn, [1.0, 1.0], [[3.0, 0.5]], 0.0)


# The four minimizers of Himmelblau's function, refined by Newton's method in float64.
_HIMMELBLAU_MINIMIZERS = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.283185991286169),
    (3.5844283403304917, -1.8481265269644034),
)


def himmelblau() -> TestFunction:
    r"""Himmelblau's function on :math:`\mathbb R^2`.

    .. math:: f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2

    Four global minima, all of value 0, so where gradient descent ends up depends on
    where it starts:

    * :math:`(3, 2)`, :math:`(-2.805118, 3.131313)`, :math:`(-3.779310, -3.283186)`,
      :math:`(3.584428, -1.848127)` (the last three to 16 digits in ``minimizers``);
      a local maximum at :math:`(-0.270845, -0.923039)`.
    * ``x0 = (0, 0)``.

    Reference: D. M. Himmelblau, *Applied Nonlinear Programming*, McGraw-Hill, 1972.
    """

    def fn(p: Array) -> Array:
        p = _as_point(p, 2, "himmelblau")
        x, y = p[0], p[1]
        return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2

    return _make("himmelblau", fn, [0.0, 0.0], _HIMMELBLAU_MINIMIZERS, 0.0)


def saddle() -> TestFunction:
    r"""The saddle :math:`f(x, y) = x^2 - y^2`.

    The origin is a stationary point with Hessian :math:`\operatorname{diag}(2, -2)`
    (indefinite): a saddle, not a minimum. The function is unbounded below along the
    :math:`y` axis, so ``minimizers`` is empty (shape ``(0, 2)``) and ``minimum`` is
    :math:`-\infty`. Started at ``x0 = (1, 1e-3)``, just off the stable manifold
    :math:`y = 0`, gradient descent first approaches the saddle and then escapes it along
    :math:`y`, slowly at first because the escaping component starts tiny.
    """

    def fn(p: Array) -> Array:
        p = _as_point(p, 2, "saddle")
        return p[0] ** 2 - p[1] ** 2

    return _make("saddle", fn, [1.0, 1e-3], np.zeros((0, 2)), float("-inf"))


def _sine_bowl_minimizers(a: float) -> np.ndarray:
    """Local minimizers of ``x^2 + a sin x`` in float64, sorted by value (global first).

    Stationary points solve ``2x + a cos x = 0``, hence lie in ``|x| <= |a|/2``; they are
    bracketed on a dense grid and refined by bisection.
    """
    if a == 0.0:
        return np.zeros(1)
    df = lambda x: 2.0 * x + a * np.cos(x)  # noqa: E731
    half = abs(a) / 2.0
    grid = np.linspace(-half - 1.0, half + 1.0, 20001)
    values = df(grid)
    roots = []
    for i in np.nonzero(np.sign(values[:-1]) != np.sign(values[1:]))[0]:
        lo, hi = grid[i], grid[i + 1]
        flo = values[i]
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            fmid = df(mid)
            if fmid == 0.0 or mid in (lo, hi):
                break
            if np.sign(fmid) == np.sign(flo):
                lo, flo = mid, fmid
            else:
                hi = mid
        roots.append(0.5 * (lo + hi))
    roots = np.asarray(roots)
    minima = roots[2.0 - a * np.sin(roots) > 0.0]  # f''(x) = 2 - a sin x
    f = minima**2 + a * np.sin(minima)
    return minima[np.argsort(f, kind="stable")]


def sine_bowl(amplitude: float = 5.0) -> TestFunction:
    r"""A 1-D bowl with a sine ripple, :math:`f(x) = x^2 + a \sin x`, ``x`` of shape ``(1,)``.

    The default :math:`a = 5` is the seed material's function: its only minimum is
    :math:`x^* \approx -1.11051`, :math:`f(x^*) \approx -3.24639`, reached by gradient
    descent from ``x0 = 5.0`` with learning rate 0.1.

    With :math:`a = 10` (the example of the SciPy Lecture Notes) there are two minima:

    * global: :math:`x^* \approx -1.30644`, :math:`f(x^*) \approx -7.94582`;
    * local:  :math:`x \approx 3.83747`, :math:`f \approx 8.31558`;

    and ``x0 = 5.0`` lies in the basin of the *local* one, so plain gradient descent gets
    stuck there -- the point of the example. ``minimizers`` lists the global minimizer
    first, then the local one. They are computed in float64 for any amplitude
    (stationary points solve :math:`2x + a\cos x = 0`, so :math:`|x| \le |a|/2`). For
    :math:`|a| < 5.9434` the ripple is too weak to make a second minimum and
    ``minimizers`` has one row.

    Reference: G. Varoquaux et al., *Scipy Lecture Notes*, "Mathematical optimization:
    finding minima of functions", example ``f(x) = x**2 + 10*np.sin(x)``.
    """
    a = _check_real("amplitude", amplitude)
    xs = _sine_bowl_minimizers(a)
    minimum = float(xs[0] ** 2 + a * np.sin(xs[0]))

    def fn(x: Array) -> Array:
        x = _as_point(x, 1, "sine_bowl")
        return jnp.sum(x * x + a * jnp.sin(x))

    return _make("sine_bowl", fn, [5.0], xs.reshape(-1, 1), minimum)


def quartic() -> TestFunction:
    r"""A 1-D double well, :math:`f(x) = x^4 - 4x^3 - 2x^2 + 12x`, ``x`` of shape ``(1,)``.

    :math:`f'(x) = 4x^3 - 12x^2 - 4x + 12 = 4(x - 3)(x - 1)(x + 1)`, and in fact
    :math:`f(x) = \big((x - 1)^2 - 4\big)^2 - 9`: a well symmetric about :math:`x = 1`.
    Hence

    * two minima, *both global*: :math:`f(-1) = f(3) = -9` (``minimizers`` = ``[[-1], [3]]``);
    * a local maximum :math:`f(1) = 7`, where the gradient vanishes too.

    Gradient descent from ``x0 = 0.0`` (:math:`f'(0) = 12`) goes to :math:`-1`; from any
    :math:`x_0 > 1` it goes to :math:`3`.
    """

    def fn(x: Array) -> Array:
        x = _as_point(x, 1, "quartic")
        x2 = x * x
        return jnp.sum(x2 * x2 - 4.0 * x2 * x - 2.0 * x2 + 12.0 * x)

    return _make("quartic", fn, [0.0], [[-1.0], [3.0]], -9.0)


TEST_FUNCTIONS: dict[str, Callable[..., TestFunction]] = {
    "quadratic": quadratic,
    "ill_conditioned_quadratic": ill_conditioned_quadratic,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "saddle": saddle,
    "sine_bowl": sine_bowl,
    "quartic": quartic,
}
"""Name -> factory of every :class:`TestFunction`; each factory works with no argument."""


# --------------------------------------------------------------------------------------
# Data problems: shared pieces
# --------------------------------------------------------------------------------------


def _mse(pred: Array, y: Array) -> Array:
    return jnp.mean((pred - y) ** 2)


def _softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean of ``-log softmax(logits)[label]``; ``labels`` are int class ids."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1))


def _binary_cross_entropy(logits: Array, labels: Array) -> Array:
    r"""Mean of :math:`-[y \log\sigma(z) + (1-y)\log(1-\sigma(z))]`, computed stably.

    Uses :math:`\log\sigma(z)` and :math:`\log(1-\sigma(z)) = \log\sigma(-z)`, so large
    :math:`|z|` neither overflows nor gives ``log(0)``.
    """
    y = labels.astype(logits.dtype)
    return -jnp.mean(y * jax.nn.log_sigmoid(logits) + (1.0 - y) * jax.nn.log_sigmoid(-logits))


def _accuracy(pred: Array, labels: Array) -> Array:
    return jnp.mean((pred == labels).astype(jnp.float32))


class _Normal(NamedTuple):
    """An initializer leaf: ``std * N(0, 1)`` of this shape, float32; ``std = 0``: zeros."""

    shape: tuple[int, ...]
    std: float = 0.0


def _initializer(spec: Any) -> Callable[[Array], Params]:
    """``key -> params`` with the structure of ``spec``, whose leaves are :class:`_Normal`.

    All the noise is drawn by one ``jax.random.normal`` call and sliced, inside one
    ``jax.jit``: an eager ``init_params(key)`` compiles one small program per problem
    instead of one random-number kernel per layer shape (seconds on CPU). Under an outer
    ``jit``/``vmap`` it simply inlines.
    """
    leaves, treedef = jax.tree.flatten(spec, is_leaf=lambda x: isinstance(x, _Normal))
    sizes = [math.prod(leaf.shape) if leaf.std else 0 for leaf in leaves]

    @jax.jit
    def draw(key: Array) -> Params:
        noise = jax.random.normal(key, (sum(sizes),), dtype=jnp.float32)
        out, offset = [], 0
        for leaf, size in zip(leaves, sizes, strict=True):
            if leaf.std:
                out.append(leaf.std * noise[offset : offset + size].reshape(leaf.shape))
            else:
                out.append(jnp.zeros(leaf.shape, jnp.float32))
            offset += size
        return jax.tree.unflatten(treedef, out)

    def init_params(key: Array) -> Params:
        if not isinstance(key, jax.Array):
            raise InputTypeError(
                "key must be a JAX PRNG key (jax.random.key(seed) or "
                f"jax.random.PRNGKey(seed)), got {type(key).__name__}"
            )
        return draw(key)

    return init_params


def _data(x: np.ndarray, y: np.ndarray) -> dict[str, Array]:
    return {"x": jnp.asarray(x, dtype=jnp.float32), "y": jnp.asarray(y, dtype=jnp.int32)}


# --------------------------------------------------------------------------------------
# Linear regression
# --------------------------------------------------------------------------------------


def linear_regression(
    n: int = 100,
    intercept: float = 2.0,
    slope: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
) -> DataProblem:
    r"""Fit a line to noisy points: :math:`y = b + w x + \sigma\varepsilon`.

    Data: :math:`x \sim U(0, 2)`, :math:`\varepsilon \sim N(0, 1)`, ``n`` points drawn
    with ``jax.random`` from ``seed``. The true coefficients are ``intercept`` (:math:`b`,
    default 2) and ``slope`` (:math:`w`, default 3), the noise standard deviation is
    ``noise`` (:math:`\sigma`, default 1). The least-squares fit differs from the truth by
    about :math:`\sigma/\sqrt n` (intercept) and :math:`\sigma\sqrt{3/n}` (slope).

    * ``train = {"x": (n, 1) float32, "y": (n,) float32}``; ``test = None`` and
      ``validation = None``: the problem is about fitting these points (the least-squares
      solution is the target), not about generalising; draw another ``seed`` for fresh
      points.
    * ``params = {"w": (1,), "b": ()}``, initialized standard normal from the key.
    * ``loss`` = mean squared error :math:`\frac1N \sum (x_i w + b - y_i)^2`; its minimizer
      is the least-squares solution. ``metric`` is the same MSE.

    After A. Géron, *Hands-On Machine Learning with Scikit-Learn, Keras & TensorFlow*,
    ch. 4 (``X = 2 * np.random.rand(100, 1); y = 4 + 3 * X + np.random.randn(100, 1)``).
    """
    n = _check_int("n", n, 1)
    b_true = _check_real("intercept", intercept)
    w_true = _check_real("slope", slope)
    sigma = _check_real("noise", noise)
    if sigma < 0:
        raise InputValueError(f"noise must be >= 0, got {sigma}")
    seed = _check_int("seed", seed, 0)

    kx, ke = jax.random.split(jax.random.PRNGKey(seed))
    x = 2.0 * jax.random.uniform(kx, (n, 1), dtype=jnp.float32)
    eps = jax.random.normal(ke, (n,), dtype=jnp.float32)
    y = (b_true + w_true * x[:, 0] + sigma * eps).astype(jnp.float32)
    train = {"x": x, "y": y}

    init_params = _initializer({"w": _Normal((1,), 1.0), "b": _Normal((), 1.0)})

    def predict(params: Params, x: Array) -> Array:
        return x @ params["w"] + params["b"]

    def loss(params: Params, batch: Batch) -> Array:
        return _mse(predict(params, batch["x"]), batch["y"])

    return DataProblem(
        name="linear_regression",
        init_params=init_params,
        loss=loss,
        train=train,
        test=None,
        predict=predict,
        metric=loss,
        metric_name="mse",
    )


# --------------------------------------------------------------------------------------
# XOR
# --------------------------------------------------------------------------------------


def xor(hidden: int = 8) -> DataProblem:
    r"""XOR with a one-hidden-layer sigmoid network, the problem a perceptron cannot solve.

    Data: the four points of :math:`\{0,1\}^2` with labels :math:`x_1 \oplus x_2`
    (``0, 1, 1, 0``); ``train = {"x": (4, 2) float32, "y": (4,) int32}``, ``test = None``,
    ``validation = None`` (four points: nothing can be held out).

    Model: :math:`p(x) = \sigma(w_2^\top \sigma(W_1^\top x + b_1) + b_2)` with ``hidden``
    sigmoid units. ``params = {"w1": (2, H), "b1": (H,), "w2": (H,), "b2": ()}``, weights
    standard normal from the key, biases zero.

    Two hidden units suffice in principle, but gradient descent then often stalls in a
    local minimum where one input pattern is misclassified (loss about 0.48). Measured with
    full-batch ``adam(0.1)`` for 500 steps over 500 keys: H = 2 solves 48%, H = 4 94%,
    H = 8 (the default) 100%.

    * ``loss``: mean binary cross-entropy of :math:`p(x)`, computed from the logit.
    * ``predict``: the sigmoid outputs :math:`p(x)` (shape ``(N,)``), not class ids.
    * ``metric``: accuracy of ``round(predict)``.

    Reference: D. E. Rumelhart, G. E. Hinton and R. J. Williams, "Learning
    representations by back-propagating errors", *Nature* 323:533-536, 1986.
    """
    hidden = _check_int("hidden", hidden, 1)
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    train = _data(x, y)

    init_params = _initializer(
        {
            "w1": _Normal((2, hidden), 1.0),
            "b1": _Normal((hidden,)),
            "w2": _Normal((hidden,), 1.0),
            "b2": _Normal(()),
        }
    )

    def logit(params: Params, x: Array) -> Array:
        h = jax.nn.sigmoid(x @ params["w1"] + params["b1"])
        return h @ params["w2"] + params["b2"]

    def predict(params: Params, x: Array) -> Array:
        return jax.nn.sigmoid(logit(params, x))

    def loss(params: Params, batch: Batch) -> Array:
        return _binary_cross_entropy(logit(params, batch["x"]), batch["y"])

    def metric(params: Params, data: Batch) -> Array:
        labels = (logit(params, data["x"]) > 0).astype(jnp.int32)  # == round(sigmoid)
        return _accuracy(labels, data["y"])

    return DataProblem("xor", init_params, loss, train, None, predict, metric, "accuracy")


# --------------------------------------------------------------------------------------
# Digits (scikit-learn's bundled 8x8 images; no download)
# --------------------------------------------------------------------------------------


def _require_sklearn(caller: str) -> Any:
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as err:
        raise ImportError(
            f"jaxopt_lab.problems.{caller} needs scikit-learn for its bundled digits data "
            "set (nothing is downloaded). Install it with `pip install scikit-learn` "
            "(or `pip install jaxopt-lab[test]`)."
        ) from err
    return sklearn


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: features ``(1797, 64)`` float32 in [0, 1] (pixel / 16), labels int32."""
    sklearn = _require_sklearn("digits")
    bunch = sklearn.datasets.load_digits()
    x = np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)
    y = np.asarray(bunch.target, dtype=np.int32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


VALIDATION_FRACTION = 0.2
"""The share of the digits' training part (75% of the data) held out for validation."""


class _Split(NamedTuple):
    """Features and labels of the three parts of a data set (read-only numpy arrays)."""

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]


def _digits_split(
    classes: tuple[int, int] | None, seed: int, validation_fraction: Any, caller: str
) -> _Split:
    """The fixed, stratified train / validation / test split of the digits (optionally
    only ``classes``), cached: the test part is the 25% of the data that
    ``train_test_split(test_size=0.25, stratify=y, random_state=seed)`` holds out (as it
    was before there was a validation part, so test numbers stay comparable), and the
    validation part is ``validation_fraction`` of the rest, split off the same way
    (stratified, ``random_state=seed``). ``validation_fraction=0``: no validation part.

    ``caller`` only names the factory in the ImportError raised without scikit-learn.
    """
    fraction = _check_real("validation_fraction", validation_fraction)
    if not 0.0 <= fraction < 1.0:
        raise InputValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    _require_sklearn(caller)
    return _cached_split(classes, seed, fraction)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    out = tuple(np.ascontiguousarray(a) for a in arrays)
    for a in out:
        a.setflags(write=False)  # cached and shared by every problem built from them
    return out


@functools.lru_cache(maxsize=None)
def _cached_split(classes: tuple[int, int] | None, seed: int, fraction: float) -> _Split:
    sklearn = _require_sklearn("digits")
    x, y = _digits()
    if classes is not None:
        keep = np.isin(y, classes)
        x = x[keep]
        y = (y[keep] == classes[1]).astype(np.int32)  # class id: index into `classes`
    x_tr, x_te, y_tr, y_te = sklearn.model_selection.train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=seed
    )
    test = _read_only(x_te, y_te)
    if fraction == 0.0:
        return _Split(_read_only(x_tr, y_tr), None, test)
    # sklearn rounds the held-out count up; stratifying needs one example of every class
    # on each side, and its own message would not name our argument
    n_val, n_classes = math.ceil(fraction * len(y_tr)), len(np.unique(y_tr))
    if min(n_val, len(y_tr) - n_val) < n_classes:
        raise InputValueError(
            f"validation_fraction={fraction} leaves {n_val} of the {len(y_tr)} training "
            f"examples for validation and {len(y_tr) - n_val} for training; each needs at "
            f"least one per class ({n_classes})"
        )
    x_tr, x_va, y_tr, y_va = sklearn.model_selection.train_test_split(
        x_tr, y_tr, test_size=fraction, stratify=y_tr, random_state=seed
    )
    return _Split(_read_only(x_tr, y_tr), _read_only(x_va, y_va), test)


def _split_data(split: _Split, image_shape: tuple[int, ...] = (64,)) -> dict[str, Any]:
    """``train``, ``validation`` and ``test`` of a :class:`DataProblem` from a split, the
    features reshaped to ``(N, *image_shape)``."""

    def part(xy: tuple[np.ndarray, np.ndarray] | None) -> Any:
        return None if xy is None else _data(xy[0].reshape(-1, *image_shape), xy[1])

    return {name: part(getattr(split, name)) for name in ("train", "validation", "test")}


def _classifier(
    name: str,
    init_params: Callable[[Array], Params],
    logits_fn: Callable[[Params, Array], Array],
    parts: dict[str, Any],
) -> DataProblem:
    """A softmax classifier problem from its logits function and its data parts."""

    def predict(params: Params, x: Array) -> Array:
        return jnp.argmax(logits_fn(params, x), axis=-1).astype(jnp.int32)

    def loss(params: Params, batch: Batch) -> Array:
        return _softmax_cross_entropy(logits_fn(params, batch["x"]), batch["y"])

    def metric(params: Params, data: Batch) -> Array:
        return _accuracy(predict(params, data["x"]), data["y"])

    return DataProblem(name, init_params, loss, parts["train"], parts["test"], predict, metric,
                       "accuracy", parts["validation"])  # fmt: skip


def logistic_regression(
    digits: tuple[int, int] = (0, 1),
    seed: int = 0,
    validation_fraction: float = VALIDATION_FRACTION,
) -> DataProblem:
    r"""Binary logistic regression on two classes of scikit-learn's bundled digits.

    Data: the 8x8 images of the two digits ``digits = (a, b)``, flattened to 64 features
    scaled to [0, 1] (pixel / 16); label 0 for digit ``a`` and 1 for digit ``b``. A fixed
    stratified split (``sklearn.model_selection.train_test_split`` with
    ``random_state=seed``): 25% test, then ``validation_fraction`` (default 0.2) of the
    remaining 75% for validation, the rest train. For ``(0, 1)`` (360 images): 216
    train, 54 validation, 90 test (``validation_fraction=0``: 270 train, no
    validation). ``x`` is ``(N, 64)`` float32, ``y`` is ``(N,)`` int32.

    Model: :math:`p(y=1 \mid x) = \sigma(x^\top w + b)`,
    ``params = {"w": (64,), "b": ()}`` (``w`` normal with std 0.01 from the key, ``b = 0``).

    * ``loss``: mean binary cross-entropy
      :math:`-\frac1N\sum y\log\sigma(z) + (1-y)\log\sigma(-z)`, computed with
      ``log_sigmoid`` (stable for large :math:`|z|`); convex in the params.
    * ``predict``: class ids 0/1 (int32), i.e. :math:`[z > 0]`; ``metric``: accuracy.

    Data: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI
    Machine Learning Repository, 1998 (the test part, as bundled with scikit-learn).
    Requires scikit-learn.
    """
    if (
        not isinstance(digits, (tuple, list))
        or len(digits) != 2
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in digits)
    ):
        raise InputTypeError(f"digits must be a pair of ints in 0..9, got {digits!r}")
    pair = (int(digits[0]), int(digits[1]))
    if not all(0 <= d <= 9 for d in pair) or pair[0] == pair[1]:
        raise InputValueError(f"digits must be two different ints in 0..9, got {digits!r}")
    seed = _check_int("seed", seed, 0)
    parts = _split_data(_digits_split(pair, seed, validation_fraction, "logistic_regression"))

    init_params = _initializer({"w": _Normal((64,), 0.01), "b": _Normal(())})

    def logit(params: Params, x: Array) -> Array:
        return x @ params["w"] + params["b"]

    def predict(params: Params, x: Array) -> Array:
        return (logit(params, x) > 0).astype(jnp.int32)

    def loss(params: Params, batch: Batch) -> Array:
        return _binary_cross_entropy(logit(params, batch["x"]), batch["y"])

    def metric(params: Params, data: Batch) -> Array:
        return _accuracy(predict(params, data["x"]), data["y"])

    return DataProblem("logistic_regression", init_params, loss, parts["train"], parts["test"],
                       predict, metric, "accuracy", parts["validation"])  # fmt: skip


def digits_mlp(
    hidden: int = 64, seed: int = 0, validation_fraction: float = VALIDATION_FRACTION
) -> DataProblem:
    r"""A one-hidden-layer ReLU network on the 10-class digits.

    Data: all 1797 8x8 digits as 64 features in [0, 1] (pixel / 16), labels 0..9, in a
    fixed stratified split (``random_state=seed``): 450 test (25%, the same test set as
    before there was a validation part), then ``validation_fraction`` (default 0.2) of
    the other 1347 for validation: 1077 train, 270 validation, 450 test.
    ``validation_fraction=0`` gives the old 1347 train and no validation set. Choose
    hyperparameters on ``validation`` and report ``test`` once, at the end.
    ``x`` is ``(N, 64)`` float32, ``y`` is ``(N,)`` int32.

    Model: :math:`\text{logits} = \operatorname{relu}(x W_1 + b_1) W_2 + b_2`,
    ``params = {"w1": (64, H), "b1": (H,), "w2": (H, 10), "b2": (10,)}``; weights He
    normal (std :math:`\sqrt{2/\text{fan\_in}}`, He et al. 2015) from the key, biases zero.

    * ``loss``: mean softmax cross-entropy. ``predict``: argmax class ids (int32).
      ``metric``: accuracy. ``predict`` accepts any leading batch shape, or none.

    Requires scikit-learn. See :func:`logistic_regression` for the data reference.
    """
    hidden = _check_int("hidden", hidden, 1)
    seed = _check_int("seed", seed, 0)
    parts = _split_data(_digits_split(None, seed, validation_fraction, "digits_mlp"))

    init_params = _initializer(
        {
            "w1": _Normal((64, hidden), math.sqrt(2.0 / 64)),
            "b1": _Normal((hidden,)),
            "w2": _Normal((hidden, 10), math.sqrt(2.0 / hidden)),
            "b2": _Normal((10,)),
        }
    )

    def logits(params: Params, x: Array) -> Array:
        if x.shape[-1:] != (64,):
            raise InputValueError(f"digits_mlp: x must have shape (..., 64), got {x.shape}")
        h = jax.nn.relu(x @ params["w1"] + params["b1"])
        return h @ params["w2"] + params["b2"]

    return _classifier("digits_mlp", init_params, logits, parts)


def _patches(x: Array, kh: int, kw: int) -> Array:
    """``(N, H, W, C) -> (N, H-kh+1, W-kw+1, kh*kw*C)``: each VALID window, (i, j, c) order."""
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return jnp.concatenate(
        [x[:, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)], axis=-1
    )


def _conv_as_matmul(x: Array, w: Array) -> Array:
    kh, kw, c, o = w.shape
    return _patches(x, kh, kw) @ w.reshape(kh * kw * c, o)


@jax.custom_jvp
def _conv2d_valid(x: Array, w: Array) -> Array:
    """``lax.conv_general_dilated``, stride 1, VALID, NHWC x HWIO -> NHWC.

    The value is XLA's convolution. The derivative (a custom JVP, so forward mode,
    reverse mode and Hessian-vector products all work) is the same linear map written as
    patches @ kernel. Reason: on XLA:CPU the convolutions that JAX's own transpose rules
    emit for the gradient run ~15x slower inside a ``lax.scan``/``while`` body than outside
    one (jax-ml/jax#12868), and scanned training loops are this package's norm; the
    matmul form is fast in both places and gives the same numbers to float32 rounding.
    """
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(1, 1),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


@_conv2d_valid.defjvp
def _conv2d_valid_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]):
    x, w = primals
    dx, dw = tangents
    return _conv2d_valid(x, w), _conv_as_matmul(dx, w) + _conv_as_matmul(x, dw)


def digits_cnn(seed: int = 0, validation_fraction: float = VALIDATION_FRACTION) -> DataProblem:
    r"""A small convolutional network on the 10-class digits (NHWC images).

    Data: the same split as :func:`digits_mlp` (``random_state=seed``; 1077 train, 270
    validation, 450 test by default), but ``x`` holds images of shape ``(N, 8, 8, 1)``
    (float32, in [0, 1]); ``y`` is ``(N,)`` int32.

    Model (``jax.lax.conv_general_dilated``, "VALID" padding, stride 1)::

        (8, 8, 1) -conv 3x3, 16-> relu (6, 6, 16) -conv 3x3, 32-> relu (4, 4, 32)
                  -flatten 512-> dense 10

    ``params = {"conv1": {"w": (3, 3, 1, 16), "b": (16,)}, "conv2": {"w": (3, 3, 16, 32),
    "b": (32,)}, "dense": {"w": (512, 10), "b": (10,)}}``; kernels HWIO, He normal
    (std :math:`\sqrt{2/\text{fan\_in}}`) from the key, biases zero.

    * ``loss``: mean softmax cross-entropy. ``predict``: argmax class ids (int32).
      ``metric``: accuracy. ``predict`` takes images ``(..., 8, 8, 1)`` or flat
      ``(..., 64)`` rows, with any leading batch shape (or none).

    The convolutions' derivatives are computed as patches @ kernel rather than by JAX's
    convolution transpose rules, which are slow inside ``lax.scan`` on CPU (see
    ``_conv2d_valid``); the values are the same.

    Requires scikit-learn.
    """
    seed = _check_int("seed", seed, 0)
    parts = _split_data(_digits_split(None, seed, validation_fraction, "digits_cnn"), (8, 8, 1))

    init_params = _initializer(
        {
            "conv1": {"w": _Normal((3, 3, 1, 16), math.sqrt(2.0 / 9)), "b": _Normal((16,))},
            "conv2": {"w": _Normal((3, 3, 16, 32), math.sqrt(2.0 / 144)), "b": _Normal((32,))},
            "dense": {"w": _Normal((512, 10), math.sqrt(2.0 / 512)), "b": _Normal((10,))},
        }
    )

    def conv_relu(x: Array, layer: Params) -> Array:
        return jax.nn.relu(_conv2d_valid(x, layer["w"].astype(x.dtype)) + layer["b"])

    def logits(params: Params, x: Array) -> Array:
        if x.shape[-3:] == (8, 8, 1):
            batch_shape = x.shape[:-3]
        elif x.shape[-1:] == (64,):
            batch_shape = x.shape[:-1]
        else:
            raise InputValueError(
                f"digits_cnn: x must have shape (..., 8, 8, 1) or (..., 64), got {x.shape}"
            )
        dtype = jnp.result_type(x.dtype, params["conv1"]["w"].dtype)
        h = x.reshape(-1, 8, 8, 1).astype(dtype)
        h = conv_relu(conv_relu(h, params["conv1"]), params["conv2"])
        out = h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]
        return out.reshape(*batch_shape, 10)

    return _classifier("digits_cnn", init_params, logits, parts)


DATA_PROBLEMS: dict[str, Callable[..., DataProblem]] = {
    "linear_regression": linear_regression,
    "logistic_regression": logistic_regression,
    "xor": xor,
    "digits_mlp": digits_mlp,
    "digits_cnn": digits_cnn,
}
"""Name -> factory of every :class:`DataProblem`; each factory works with no argument."""
