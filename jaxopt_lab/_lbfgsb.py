r"""L-BFGS-B's linear algebra (BLNZ 1995, see :mod:`jaxopt_lab.bounded`): the memory of
pairs and its compact form :math:`B = \theta I - W M W^\top` (or, for :math:`n \le 2m`,
:math:`B` itself as an :math:`n \times n` array), the generalized Cauchy point, and the
subspace minimization. Pure, fixed-shape JAX: free sets are masks, the breakpoint search
is a ``while_loop``, the small dense solves are unrolled.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg

from jaxopt_lab._box import dot
from jaxopt_lab._control import while_loop

_HIGHEST = jax.lax.Precision.HIGHEST  # small f32 matrix products exact on TPU/GPU too


def _mv(a: jax.Array, v: jax.Array) -> jax.Array:
    # Matrix products of the small (m x m, 2m x 2m) matrices: a batched matmul under
    # vmap measured 2-9x faster than multiply-and-sum here (1000 members, m = 10,
    # jax 0.10 on CPU), unlike the vector dots of `dot`.
    return jnp.matmul(a, v, precision=_HIGHEST)


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision=_HIGHEST)


def _spd_solve(a: jax.Array, rhs: jax.Array) -> jax.Array:
    """:math:`A^{-1} R` for a small symmetric positive definite :math:`A` and a matrix or
    vector :math:`R`, by Gauss-Jordan elimination of ``[A | R]`` without pivoting (stable
    for such matrices), unrolled over its static size: elementwise ops, which fuse and
    batch under ``vmap`` (for the inverse, :math:`R = I`: measured 1.5x faster than a
    batched Cholesky solve and 1.05x than ``inv`` for 1000 members, m = 10). Solving for
    the needed right-hand sides only is cheaper than forming the inverse."""
    n, vec = a.shape[0], rhs.ndim == 1
    aug = jnp.concatenate([a, rhs[:, None] if vec else rhs], axis=1)
    idx = jnp.arange(n)
    for k in range(n):
        row = aug[k] / aug[k, k]
        col = jnp.where(idx == k, 0.0, aug[:, k])
        aug = jnp.where((idx == k)[:, None], row[None, :], aug - col[:, None] * row[None, :])
    return aug[:, n] if vec else aug[:, n:]


def _spd_inverse(a: jax.Array) -> jax.Array:
    return _spd_solve(a, jnp.eye(a.shape[0], dtype=a.dtype))


# --------------------------------------------------------------------------------------
# L-BFGS-B: the compact limited-memory matrix
# --------------------------------------------------------------------------------------


CHOLESKY_MIN = 8  # the n from which dense_subspace_point factors by LAPACK
DENSE_FACTOR = 2  # measured: the dense form is faster at n = 2, 10, 15 with m = 10


def dense_max(m: int) -> int:
    """The largest :math:`n` for which :func:`dense_form` is used with memory ``m``: the
    compact form's :math:`2m \\times 2m` matrices are then no smaller than :math:`B`."""
    return int(DENSE_FACTOR * m)


class Memory(NamedTuple):
    """The last ``m`` pairs, oldest first (the last ``min(count, m)`` rows are pairs, the
    others zero; where :func:`dense_form` is used, which reads only those rows, the others
    may also hold forgotten pairs), their inner products (none where :func:`dense_form` is
    used, which needs none), and :math:`\\theta` (:math:`B_0 = \\theta I`)."""

    s: jax.Array  # (m, n)
    y: jax.Array  # (m, n)
    sy: jax.Array  # (m, m): sy[i, j] = s_i' y_j; (0, 0) for dense_form
    ss: jax.Array  # (m, m): ss[i, j] = s_i' s_j; (0, 0) for dense_form
    theta: jax.Array
    count: jax.Array


def empty_memory(m: int, x: jax.Array) -> Memory:
    """No pairs. Where :func:`dense_form` will be used the inner products are (0, 0)
    arrays: the state that every iteration selects and carries is then 6x smaller (n = 2,
    m = 10), which shows in a vmapped batch of small problems."""
    n, dt = x.size, x.dtype
    k = 0 if n <= dense_max(m) else m
    return Memory(jnp.zeros((m, n), dt), jnp.zeros((m, n), dt), jnp.zeros((k, k), dt),
                   jnp.zeros((k, k), dt), jnp.ones((), dt), jnp.zeros((), jnp.int32))  # fmt: skip


def remember(mem: Memory, s: jax.Array, y: jax.Array) -> Memory:
    """Append the pair (s, y), dropping the oldest, unless :math:`s^\\top y \\le
    \\varepsilon\\, y^\\top y` (BLNZ section 4: the update would not be positive definite).
    The inner products (if kept) are updated in :math:`O(mn)`: shifted, plus one new
    row/column."""
    sy_new, yy = dot(s, y), dot(y, y)
    ok = jnp.isfinite(sy_new) & (sy_new > jnp.finfo(s.dtype).eps * yy)
    S = jnp.concatenate([mem.s[1:], s[None]])
    Y = jnp.concatenate([mem.y[1:], y[None]])

    def shifted(old, col, row):  # drop the oldest row and column, append the new ones
        top = jnp.concatenate([old[1:, 1:], col[:-1, None]], axis=1)
        return jnp.concatenate([top, row[None, :]])

    if mem.sy.size:  # static
        SY = shifted(mem.sy, jnp.sum(S * y, axis=1), jnp.sum(Y * s, axis=1))
        row = jnp.sum(S * s, axis=1)
        SS = shifted(mem.ss, row, row)
    else:
        SY, SS = mem.sy, mem.ss
    new = Memory(S, Y, SY, SS, yy / jnp.where(ok, sy_new, 1.0), mem.count + 1)
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, mem)


def compact_form(mem: Memory) -> tuple[jax.Array, jax.Array]:
    r"""BNS's compact form :math:`B = \theta I - W M W^\top`: the rows of :math:`W^\top =
    [Y; \theta S]` (2m, n) and :math:`M = K^{-1}`,
    :math:`K = \begin{pmatrix} -D & L^\top \\ L & \theta S^\top S \end{pmatrix}`
    (BLNZ eq. 3.3-3.4), :math:`D = \mathrm{diag}(s_i^\top y_i)`, :math:`L_{ij} =
    s_i^\top y_j` for :math:`i > j`. :math:`M` is formed by blocks through the Schur
    complement :math:`T = \theta S^\top S + L D^{-1} L^\top` (positive definite; a
    Cholesky solve), so no indefinite matrix is inverted. Empty slots get :math:`D = T =
    1` on their diagonal and zero columns in :math:`W`: they drop out."""
    m = mem.s.shape[0]
    valid = jnp.arange(m) >= m - jnp.minimum(mem.count, m)
    d = jnp.where(valid, jnp.diagonal(mem.sy), 1.0)
    low = jnp.tril(mem.sy, -1)  # zero on empty rows and columns (their s and y are zero)
    t = mem.theta * mem.ss + _mm(low / d[None, :], low.T)
    t_inv = _spd_inverse(t + jnp.diag(jnp.where(valid, 0.0, 1.0).astype(t.dtype)))
    m12 = _mm(low.T, t_inv) / d[:, None]  # D^-1 L' T^-1
    m11 = _mm(m12, low) / d[None, :] - jnp.diag(1.0 / d)
    big_m = jnp.block([[m11, m12], [m12.T, t_inv]])
    return jnp.concatenate([mem.y, mem.theta * mem.s]), big_m


def dense_form(mem: Memory) -> tuple[None, jax.Array]:
    r"""The same matrix for a small problem (:math:`n \le` :func:`dense_max`), formed as an
    :math:`n \times n` array by the BFGS recursion from :math:`B_0 = \theta I` over the
    stored pairs, oldest first (which the compact form represents, BNS 1994):

    .. math:: B \leftarrow B - \frac{B s s^\top B}{s^\top B s} + \frac{y y^\top}{s^\top y}.

    :math:`O(m n^2)` elementwise work instead of the :math:`2m \times 2m` inverses
    (measured over 20x less for n = 2, m = 10, 1000 members under ``vmap``).
    Returned in the compact shape, :math:`W^\top = I` (as None) and :math:`M = \theta I -
    B`, so that :func:`cauchy_point` serves both forms."""
    m, n = mem.s.shape
    valid = jnp.arange(m) >= m - jnp.minimum(mem.count, m)
    eye = jnp.eye(n, dtype=mem.s.dtype)
    b = mem.theta * eye
    for i in range(m):  # unrolled: m is static and small, the chain is sequential anyway
        s, y = mem.s[i], mem.y[i]
        bs = jnp.sum(b * s[None, :], axis=1)  # vmapped n = 2: 1.8x faster than matmul
        sbs = jnp.where(valid[i], dot(s, bs), 1.0)
        sy = jnp.where(valid[i], dot(s, y), 1.0)
        upd = b - bs[:, None] * bs[None, :] / sbs + y[:, None] * y[None, :] / sy
        b = jnp.where(valid[i], upd, b)
    return None, mem.theta * eye - b


# --------------------------------------------------------------------------------------
# L-BFGS-B: generalized Cauchy point and subspace minimization
# --------------------------------------------------------------------------------------


class _Path(NamedTuple):
    b: jax.Array  # the next breakpoint (an index of x)
    tb: jax.Array  # its path parameter (inf: none left)
    left: jax.Array  # the breakpoints not passed yet (inf where passed or never)
    t_old: jax.Array  # the path parameter at the last breakpoint
    dt_min: jax.Array  # the model's minimizer on the current segment, from t_old
    fp: jax.Array  # f' and f'' of the model on the current segment
    fpp: jax.Array
    p: jax.Array  # W' d (2m)
    c: jax.Array  # W' (x_cp - x) (2m)


def cauchy_point(x, g, lo, hi, wt, big_m, theta):
    r"""The generalized Cauchy point (BLNZ section 4, Algorithm CP): the first local
    minimizer of the quadratic model :math:`m(z) = g^\top(z - x) + \frac12 (z - x)^\top
    B (z - x)` along the projected steepest-descent path :math:`x(t) = P(x - t g)`,
    found segment by segment between the breakpoints
    :math:`t_i = (x_i - u_i)/g_i` (:math:`g_i < 0`), :math:`(x_i - l_i)/g_i`
    (:math:`g_i > 0`), :math:`\infty` otherwise, taken in increasing order. On each
    segment :math:`f' = g^\top d + \theta d^\top z - p^\top M c`,
    :math:`f'' = \theta d^\top d - p^\top M p` (:math:`p = W^\top d`,
    :math:`c = W^\top z`), updated in :math:`O(m^2)` per breakpoint (BLNZ eq. 4.9-4.10).
    The next breakpoint is the smallest one left (an ``argmin``, the first index on ties,
    as a stable sort orders them): the search usually stops after a few of the :math:`n`,
    and sorting them all cost 6 of its 10 µs at n = 100.
    ``wt=None`` means :math:`W = I` (:func:`dense_form`). Returns the point, :math:`c`,
    and the mask of free variables (not at a bound)."""
    dt = x.dtype
    t = jnp.where(g < 0, (x - hi) / g, jnp.where(g > 0, (x - lo) / g, jnp.inf))
    t = jnp.where(lo == hi, 0.0, t)  # a fixed variable never moves
    d = jnp.where(t > 0, -g, 0.0)
    left = jnp.where(t > 0, t, jnp.inf)  # variables that cannot move are never passed
    p = d if wt is None else jnp.sum(wt * d, axis=1)
    fp = -dot(d, d)
    fpp = -theta * fp - dot(p, _mv(big_m, p))
    fpp0 = fpp
    tiny = jnp.finfo(dt).eps

    def seg_min(fp, fpp):
        return jnp.where(fpp > 0, -fp / jnp.where(fpp > 0, fpp, 1.0), 0.0)

    def cond(s: _Path):
        return jnp.isfinite(s.tb) & (s.dt_min >= s.tb - s.t_old)

    def body(s: _Path) -> _Path:
        b, step = s.b, s.tb - s.t_old
        gb = g[b]
        zb = jnp.where(d[b] > 0, hi[b], lo[b]) - x[b]
        c = s.c + step * s.p
        if wt is None:  # W = I: w_b = e_b, M w_b is a column of M
            mwb, wmw, p = big_m[:, b], big_m[b, b], s.p.at[b].add(gb)
        else:  # M symmetric: the three w_b' M v share one product
            wb = wt[:, b]
            mwb = _mv(big_m, wb)
            wmw, p = dot(mwb, wb), s.p + gb * wb
        fp = s.fp + step * s.fpp + gb * gb + theta * gb * zb - gb * dot(mwb, c)
        fpp = s.fpp - theta * gb * gb - 2 * gb * dot(mwb, s.p) - gb * gb * wmw
        fpp = jnp.maximum(tiny * fpp0, fpp)  # rounding must not make the model concave
        left = s.left.at[b].set(jnp.inf)
        nxt = jnp.argmin(left)
        return _Path(nxt, left[nxt], left, s.tb, seg_min(fp, fpp), fp, fpp, p, c)

    b0 = jnp.argmin(left)
    s0 = _Path(b0, left[b0], left, jnp.zeros((), dt), seg_min(fp, fpp), fp, fpp, p,
               jnp.zeros_like(p))  # fmt: skip
    s = while_loop(cond, body, s0)
    dt_min = jnp.maximum(s.dt_min, 0.0)
    t_cp = s.t_old + dt_min
    passed = (t > 0) & jnp.isfinite(t) & ~jnp.isfinite(s.left)
    x_cp = jnp.where(passed, jnp.where(g < 0, hi, lo), x + t_cp * d)
    free = (t > 0) & ~passed
    return x_cp, s.c + dt_min * s.p, free


def subspace_point(x, g, lo, hi, x_cp, c, free, mem, wt, big_m):
    r"""Minimize the model over the free variables from the Cauchy point (BLNZ section
    5.1, direct primal method): with the reduced gradient :math:`r = Z^\top(g + \theta
    (x^c - x) - W M c)` and :math:`U = Z^\top W`, the Newton step is, by
    Sherman-Morrison-Woodbury,

    .. math:: d_u = -\hat B^{-1} r = -\frac{r}{\theta} - \frac{1}{\theta^2} U
        \Bigl(K - \frac{U^\top U}{\theta}\Bigr)^{-1} U^\top r, \qquad
        K - \frac{U^\top U}{\theta} = \begin{pmatrix} -P & C^\top \\ C & Q
        \end{pmatrix}

    with :math:`P = D + Y_F^\top Y_F / \theta` (positive definite),
    :math:`C = L - S_F^\top Y_F`, :math:`Q = \theta S_A^\top S_A` (:math:`F`, :math:`A`:
    the free and the active variables). It is solved by block elimination through the
    positive definite Schur complement :math:`Q + C P^{-1} C^\top` (the structure that
    L-BFGS-B's factorization uses, BLNZ section 5.1). Then, as in Morales and Nocedal
    (2011), the point :math:`\hat x = x^c + d_u` is projected onto the box and kept if it
    gives a descent direction from :math:`x`; otherwise the step is backtracked onto the
    box, :math:`x^c + \alpha^* d_u` with the largest feasible :math:`\alpha^* \le 1`
    (BLNZ eq. 5.8)."""
    m, theta = mem.s.shape[0], mem.theta
    valid = jnp.arange(m) >= m - jnp.minimum(mem.count, m)
    r = jnp.where(free, g + theta * (x_cp - x) - jnp.sum(wt * _mv(big_m, c)[:, None], axis=0), 0.0)
    wf = jnp.where(free[None, :], wt, 0.0)
    a = _mm(wf, wt.T)  # U'U: [[Y_F'Y_F, theta Y_F'S_F], [theta S_F'Y_F, theta^2 S_F'S_F]]
    p_inv = _spd_inverse(jnp.diag(jnp.where(valid, jnp.diagonal(mem.sy), 1.0)) + a[:m, :m] / theta)
    cc = jnp.tril(mem.sy, -1) - a[m:, :m] / theta
    q = theta * mem.ss - a[m:, m:] / theta + jnp.diag(jnp.where(valid, 0.0, 1.0).astype(a.dtype))
    v = jnp.sum(wf * r, axis=1)
    v1, v2 = v[:m], v[m:]
    w2 = _mv(_spd_inverse(q + _mm(_mm(cc, p_inv), cc.T)), v2 + _mv(cc, _mv(p_inv, v1)))
    w1 = _mv(p_inv, _mv(cc.T, w2) - v1)
    w = jnp.concatenate([w1, w2])
    d_u = jnp.where(free, -r / theta - jnp.sum(wf * w[:, None], axis=0) / theta**2, 0.0)
    return _in_box(x, g, lo, hi, x_cp, d_u)


def dense_subspace_point(x, g, lo, hi, x_cp, c, free, theta, big_m):
    r""":func:`subspace_point` for the dense form (:func:`dense_form`, :math:`B = \theta
    I - M`): the reduced Newton step solves :math:`Z^\top B Z\, d_u = -r` directly, as
    an :math:`n \times n` system with unit rows and columns for the active variables
    (positive definite, since :math:`B` is): by unrolled elimination for tiny :math:`n`
    (elementwise, the fastest under ``vmap``), else by a Cholesky factorization."""
    b = theta * jnp.eye(x.size, dtype=x.dtype) - big_m
    r = jnp.where(free, g + theta * (x_cp - x) - _mv(big_m, c), 0.0)
    a = jnp.where(free[:, None] & free[None, :], b, jnp.eye(x.size, dtype=x.dtype))
    if x.size < CHOLESKY_MIN:  # static; vmapped n = 2: 1.7x faster than LAPACK's
        d_u = _spd_solve(a, r)
    else:  # LAPACK: 3 calls, not 3n small kernels (1.5 us less at n = 15; vmapped: same)
        d_u = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(a), True), r)
    return _in_box(x, g, lo, hi, x_cp, -d_u)


def _in_box(x, g, lo, hi, x_cp, d_u):
    r"""Morales and Nocedal (2011): :math:`x^c + d_u` projected onto the box if that is
    downhill from :math:`x`, else backtracked onto the box (BLNZ eq. 5.8). Downhill means
    clearly so: an angle with :math:`-g` whose cosine is above :math:`\sqrt{\varepsilon}`.
    A projection that cuts a long Newton step (an ill-conditioned :math:`B`) can leave a
    direction whose slope is rounding (-1e-14 against :math:`|g||d|` = 0.08, seen near
    a corner of 2-D Rosenbrock's box): its line search then spends its whole budget,
    while the backtracked point is a plain descent step."""
    projected = jnp.clip(x_cp + d_u, lo, hi)
    reach = jnp.minimum(
        jnp.where(d_u > 0, (hi - x_cp) / d_u, jnp.inf),
        jnp.where(d_u < 0, (lo - x_cp) / d_u, jnp.inf),
    )
    backtracked = x_cp + jnp.clip(jnp.min(reach), 0.0, 1.0) * d_u
    step = projected - x
    margin = jnp.sqrt(jnp.finfo(x.dtype).eps * dot(g, g) * dot(step, step))
    return jnp.where(dot(g, step) < -margin, projected, jnp.clip(backtracked, lo, hi))


def max_feasible_step(x, d, lo, hi):
    """The largest :math:`\\alpha` with :math:`l \\le x + \\alpha d \\le u`."""
    up = jnp.where(d > 0, (hi - x) / jnp.where(d > 0, d, 1.0), jnp.inf)
    down = jnp.where(d < 0, (lo - x) / jnp.where(d < 0, d, 1.0), jnp.inf)
    return jnp.min(jnp.minimum(up, down), initial=jnp.inf)
