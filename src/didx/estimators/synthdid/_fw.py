"""Frank-Wolfe for synthetic-control weights, batched over independent problems.

Each problem is synthdid's ``sc.weight.fw`` (Arkhangelsky et al. 2021, Algorithm 1 and the package's solver): with
the columns of ``Y = [A, b]`` centred when there is an intercept, minimise over the unit simplex

    zeta^2 ||x||^2 + ||A x - b||^2 / n        (n = rows of A)

by Frank-Wolfe steps with exact line search on the equivalent ``||A x - b||^2 + eta ||x||^2``, ``eta = n zeta^2``,
stopping after ``max_iter`` steps or when one step decreases the objective by no more than ``min_decrease^2``.
The vertex chosen at a step is the first minimum of the half gradient (R's ``which.min``). ``sparsify`` is
synthdid's ``sparsify_function``: weights at most a quarter of the largest set to zero, the rest renormalised.

Problems of the same shape (the placebo and bootstrap replications) are solved together: one numpy operation per
step for the whole batch, each problem frozen when its own stopping rule fires, so every problem follows exactly
the iterations it would follow alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np


def sparsify(x: np.ndarray) -> np.ndarray:
    """synthdid's ``sparsify_function`` row by row: entries ``<= max/4`` to zero, then normalise to sum 1."""
    x = np.atleast_2d(x)
    out = np.where(x <= x.max(axis=1, keepdims=True) / 4, 0.0, x)
    return out / out.sum(axis=1, keepdims=True)


def center_columns(Y: np.ndarray) -> np.ndarray:
    """Subtract each column's mean over rows (the intercept of synthdid's solvers); works on (B, n, k)."""
    return Y - Y.mean(axis=-2, keepdims=True)


def frank_wolfe(A: np.ndarray, b: np.ndarray, x0: np.ndarray, zeta: np.ndarray | float, *,
                min_decrease: np.ndarray | float, max_iter: int,
                max_elements: int = 16_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Solve a batch of simplex-constrained ridge regressions by Frank-Wolfe (the Gram form of
    :func:`frank_wolfe_gram`, vectorised over the batch).

    Parameters
    ----------
    A : (B, n, k) regressors (already centred if an intercept is wanted).
    b : (B, n) targets.
    x0 : (B, k) starting weights (on the simplex).
    zeta : the regularisation zeta per problem (scalar or (B,)).
    min_decrease : stop when a step lowers the objective by ``<= min_decrease**2`` (scalar or (B,)).
    max_iter : at most this many steps.
    max_elements : the batch is split into chunks whose Gram matrices hold at most this many numbers.

    Returns
    -------
    x : (B, k) the weights; iterations : (B,) the steps each problem took.
    """
    A = np.asarray(A, dtype=np.float64)
    B, n, k = A.shape
    b = np.asarray(b, dtype=np.float64).reshape(B, n)
    x = np.array(np.broadcast_to(x0, (B, k)), dtype=np.float64)
    zeta2 = np.broadcast_to(np.asarray(zeta, dtype=np.float64) ** 2, (B,))
    md2 = np.broadcast_to(np.asarray(min_decrease, dtype=np.float64) ** 2, (B,))
    iterations = np.zeros(B, dtype=np.int64)
    chunk = max(1, max_elements // max(k * k, 1))
    for lo in range(0, B, chunk):
        sl = slice(lo, min(B, lo + chunk))
        x[sl], iterations[sl] = _fw_chunk(A[sl], b[sl], x[sl], n * zeta2[sl], md2[sl], max_iter)
    return x, iterations


def _fw_chunk(A: np.ndarray, b: np.ndarray, x: np.ndarray, eta: np.ndarray, md2: np.ndarray,
              max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    _, n, k = A.shape
    H = np.matmul(np.swapaxes(A, 1, 2), A)
    H[:, np.arange(k), np.arange(k)] += eta[:, None]
    c = np.matmul(b[:, None, :], A)[:, 0, :]
    diag = H[:, np.arange(k), np.arange(k)].copy()
    h = np.matmul(H, x[:, :, None])[:, :, 0]
    offset = np.arange(0, H.shape[0] * k, k)
    return _fw_loop(H.reshape(-1, k), x, h, c, diag, n * md2, max_iter, row_offset=offset)


CHUNK_ELEMENTS = 40_000  # frank_wolfe_shared iterates this many weights at a time: the step's arrays stay in cache


def frank_wolfe_shared(G: np.ndarray, S: np.ndarray, c: np.ndarray, x0: np.ndarray, eta: float, *,
                       min_decrease: float, n: int, max_iter: int,
                       chunk_elements: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`frank_wolfe` for problems whose regressors are column subsets ``A_r = A[:, S_r]`` of one matrix
    (the placebo's unit-weight problems: each keeps some controls). Each problem is embedded in the full column
    space, with weight 0 and an infinite gradient on the columns it does not have, so the Gram rows a step needs
    are contiguous rows of one ``G = A'A`` and no per-problem Gram matrix is built. (A tie between two columns'
    gradients goes to the first in ``A``'s order rather than in ``S_r``'s: floating-point ties only.)

    G : (N, N) the shared Gram matrix; S : (B, k) the columns of each problem (distinct); c : (B, k)
    ``A_r' b_r``; n : rows of A (the objective's divisor); eta = n zeta^2. The problems are iterated
    ``chunk_elements // N`` at a time (default :data:`CHUNK_ELEMENTS`): each problem's iterates do not depend on
    the others, and small chunks keep a step's arrays in cache.
    """
    B = S.shape[0]
    N = G.shape[0]
    H = np.array(G, dtype=np.float64)  # the Gram matrix of the ridge objective: G + eta I
    H[np.diag_indices(N)] += eta
    diag_g = np.diag(H).copy()
    per = max(1, (CHUNK_ELEMENTS if chunk_elements is None else chunk_elements) // N)
    n_chunks = -(-B // per)
    size = -(-B // n_chunks)  # balanced chunks
    out = np.empty(S.shape)
    iterations = np.empty(B, dtype=np.int64)

    def solve(lo: int) -> None:
        sl = slice(lo, min(B, lo + size))
        Sc = S[sl]
        rb = np.arange(Sc.shape[0])[:, None]
        x = np.zeros((Sc.shape[0], N))
        x[rb, Sc] = x0[sl]
        c_full = np.full((Sc.shape[0], N), -EXCLUDED)
        c_full[rb, Sc] = c[sl]
        h = x @ G + eta * x
        md2 = np.full(Sc.shape[0], n * min_decrease * min_decrease)
        xs, iterations[sl] = _fw_loop(H, x, h, c_full, diag_g, md2, max_iter,
                                      c_start=np.where(x > 0, c_full, 0.0))
        out[sl] = xs[rb, Sc]

    for lo in range(0, B, size):
        solve(lo)
    return out, iterations


SCALED_FROM = 256  # from this many columns the weights are kept scaled (x = sigma * xt), below updated in place
EXCLUDED = 1e300  # -c on the columns a problem lacks: a finite "infinite" gradient (0 * inf would be NaN)


_NUMBA: list[Callable[..., tuple[np.ndarray, np.ndarray]] | None] = []  # the compiled loop, once looked up


def _numba_kernel() -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """The numba-compiled :func:`_fw_loop` (``_fw_numba.fw_loop``) when numba is importable (``pip install
    didx[fast]``) and the environment variable ``DIDX_NO_NUMBA`` is not ``1``; None: the numpy loop."""
    if os.environ.get("DIDX_NO_NUMBA", "") == "1":
        return None
    if not _NUMBA:
        try:
            from didx.estimators.synthdid._fw_numba import fw_loop
        except ImportError:
            _NUMBA.append(None)
        else:
            _NUMBA.append(fw_loop)
    return _NUMBA[0]


def _fw_loop(H: np.ndarray, x: np.ndarray, h: np.ndarray, c: np.ndarray, diag: np.ndarray, md2: np.ndarray,
             max_iter: int, c_start: np.ndarray | None = None,
             row_offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The batched Frank-Wolfe iterations on ``h = H x`` (see :func:`frank_wolfe_gram`). ``H`` holds the rows
    of the problems' matrices ``H = A'A + eta I``: one (k, k) matrix shared by all, or with ``row_offset`` the
    problems' matrices stacked (B * k, k), problem ``r``'s row ``i`` at ``row_offset[r] + i``. ``md2`` is on the
    scale of ``n * objective``; ``c_start`` replaces ``c`` in the initial ``c'x`` (where ``c`` holds ``-EXCLUDED`` on
    columns a problem lacks); ``diag`` is (B, k) or, shared by all problems, (k,).

    The state is the half gradient ``g = h - c``; a step ``x <- (1-s) x + s e_i`` makes it
    ``(1-s) g + s H_i - s c``, one batched matrix product ``[1-s, s, -s] @ [g; H_i; c]`` per problem (the three
    rows stored slot-major so each is a contiguous (B, k) array and the product reads each once). With the row
    gather and the row minima a step streams about seven (B, k) arrays. With many columns the weights are kept as
    ``x = sigma * xt`` with a scale per problem, so a step updates two numbers per problem instead of a row.
    The iterates equal the plain updates up to rounding (the order of the floating-point operations differs).

    With numba importable the compiled copy of this loop (:mod:`._fw_numba`, one problem at a time) runs instead;
    ``DIDX_NO_NUMBA=1`` forces this numpy loop.
    """
    B, k = x.shape
    kernel = _numba_kernel()
    if kernel is not None:
        shared = diag.ndim == 1
        return kernel(np.ascontiguousarray(H), np.ascontiguousarray(x), np.ascontiguousarray(h),
                      np.ascontiguousarray(c), np.ascontiguousarray(c if c_start is None else c_start),
                      np.ascontiguousarray(diag[None] if shared else diag), np.ascontiguousarray(md2, dtype=np.float64),
                      int(max_iter), np.zeros(B, dtype=np.int64) if row_offset is None
                      else np.ascontiguousarray(row_offset, dtype=np.int64), k >= SCALED_FROM)
    xt = x.copy()
    sigma = np.ones(B)
    shared_diag = diag.ndim == 1
    xhx = np.einsum("bk,bk->b", x, h)
    cx = np.einsum("bk,bk->b", c if c_start is None else c_start, x)
    iterations = np.zeros(B, dtype=np.int64)
    out = x.copy()
    work = np.arange(B)
    base = np.arange(0, B * k, k)
    scaled = k >= SCALED_FROM
    prev = np.full(B, np.nan)
    # slots [g, H_i, c, g']: a step reads three consecutive slots and writes the fourth (alternately 0..2 -> 3
    # with coefficients [r, s, -s] and 1..3 -> 0 with [s, -s, r])
    V = np.empty((4, B, k))
    np.subtract(h, c, out=V[0])
    V[2] = c
    coef = np.zeros((B, 1, 3))
    t = 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        while t < max_iter and work.size:
            even = t % 2 == 0
            g = V[0] if even else V[3]
            i = g.argmin(axis=1)
            idx = i + base
            gi, ci, xi = g.ravel().take(idx), V[2].ravel().take(idx), xt.ravel().take(idx)
            hi = gi + ci
            di = diag.take(i) if shared_diag else diag.ravel().take(idx)
            den = di - 2.0 * hi + xhx
            s = ((xhx - cx) - gi) / den
            ok = den > 0
            ok &= (xi * sigma if scaled else xi) != 1.0  # x is already the vertex: no move (as synthdid)
            s = np.where(ok, s, 0.0)
            np.minimum(s, 1.0, out=s)
            np.maximum(s, 0.0, out=s)
            r = 1.0 - s
            np.take(H, i if row_offset is None else i + row_offset, axis=0, out=V[1], mode="clip")
            if even:
                coef[:, 0, 0], coef[:, 0, 1], coef[:, 0, 2] = r, s, -s
                np.matmul(coef, V[0:3].transpose(1, 0, 2), out=V[3:4].transpose(1, 0, 2))
            else:
                coef[:, 0, 0], coef[:, 0, 1], coef[:, 0, 2] = s, -s, r
                np.matmul(coef, V[1:4].transpose(1, 0, 2), out=V[0:1].transpose(1, 0, 2))
            if scaled:  # x <- r x + s e_i as sigma <- r sigma, xt_i += s / sigma (a full step restarts at e_i)
                sigma *= r
                if sigma.min() < 1e-100:
                    full = sigma == 0.0
                    xt[full] = 0.0
                    sigma[full] = 1.0
                    xt *= sigma[:, None]
                    sigma[:] = 1.0
                xt.ravel()[idx] += s / sigma
            else:
                xt *= r[:, None]
                xt.ravel()[idx] += s
            xhx = xhx + s * (2.0 * (hi - xhx) + s * den)  # x'Hx after the step: den = d'Hd, hi - xhx = d'Hx
            cx = r * cx + s * ci
            val = xhx - 2.0 * cx  # n * objective - b'b: the stopping rule compares differences
            t += 1
            if t >= 2:
                stop = prev - val <= md2
                if stop.any():
                    iterations[work] = t
                    out[work[stop]] = xt[stop] * sigma[stop, None]
                    keep = ~stop
                    work, xt, sigma, xhx, cx, val = work[keep], xt[keep], sigma[keep], xhx[keep], cx[keep], val[keep]
                    md2 = md2[keep]
                    if not shared_diag:
                        diag = diag[keep]
                    V = np.ascontiguousarray(V[:, keep])
                    coef = coef[:work.size]
                    base = base[:work.size]
                    if row_offset is not None:
                        row_offset = row_offset[keep]
            prev = val
    iterations[work] = t
    out[work] = xt * sigma[:, None]
    return out, iterations


def frank_wolfe_gram(A: np.ndarray, b: np.ndarray, x0: np.ndarray, zeta: float, *, min_decrease: float,
                     max_iter: int) -> tuple[np.ndarray, int]:
    """:func:`frank_wolfe` for one problem, from the Gram matrix ``H = A'A + eta I``: a step costs O(k) instead of
    O(n k) and a handful of numpy calls (the same iterates up to rounding).

    With ``h = H x`` and ``c = A'b``, the half gradient is ``h - c``; for the direction ``d = e_i - x`` the line
    search needs ``d'H d = H_ii - 2 h_i + x'H x``; after a step ``s``, ``h <- (1-s) h + s H_i`` and
    ``x'Hx``, ``c'x`` update as scalars; the objective is ``(x'Hx - 2 c'x + b'b) / n`` (the ridge terms cancel
    because ``eta = n zeta^2``).
    """
    n, k = A.shape
    eta = n * zeta * zeta
    H = A.T @ A
    H[np.diag_indices(k)] += eta
    c = A.T @ b
    bb = float(b @ b)
    md2 = min_decrease * min_decrease
    x = np.array(x0, dtype=np.float64, copy=True)
    h = H @ x
    xhx = float(x @ h)
    cx = float(c @ x)
    diag = np.diag(H).copy()
    prev = np.nan
    t = 0
    while t < max_iter:
        g = h - c
        i = int(np.argmin(g))
        hi, xi = float(h[i]), float(x[i])
        if xi == 1.0:  # already the vertex: no move (synthdid returns x unchanged)
            s = 0.0
        else:
            num = -(hi - float(c[i]) - (xhx - cx))
            den = float(diag[i]) - 2.0 * hi + xhx
            s = min(1.0, max(0.0, num / den)) if den > 0 else 0.0
        if s > 0.0:
            r = 1.0 - s
            x *= r
            x[i] += s
            h *= r
            h += s * H[i]
            xhx = r * r * xhx + 2.0 * s * r * hi + s * s * float(diag[i])
            cx = r * cx + s * float(c[i])
        val = (xhx - 2.0 * cx + bb) / n
        t += 1
        if t >= 2 and prev - val <= md2:
            break
        prev = val
    return x, t


def fw_step(A: np.ndarray, x: np.ndarray, b: np.ndarray, eta: float) -> np.ndarray:
    """One Frank-Wolfe step with exact line search for ``||A x - b||^2 + eta ||x||^2`` (synthdid's ``fw.step``),
    used by the covariate solver, whose regressors change at every step."""
    Ax = A @ x
    half_grad = (Ax - b) @ A + eta * x
    i = int(np.argmin(half_grad))
    dx = -x
    dx[i] = 1.0 - x[i]
    if not dx.any():
        return x
    d_err = A[:, i] - Ax
    step = -float(half_grad @ dx) / (float(d_err @ d_err) + eta * float(dx @ dx))
    return np.asarray(x + min(1.0, max(0.0, step)) * dx)


def sc_weights(Y: np.ndarray, zeta: np.ndarray | float, *, intercept: bool, init: np.ndarray | None,
               min_decrease: np.ndarray | float, max_iter: int, max_iter_pre_sparsify: int | None = 100,
               ) -> np.ndarray:
    """synthdid's two-round weight fit (``synthdid_estimate`` without covariates) for a batch.

    ``Y`` is (B, n, k + 1): the last column is the target. With ``max_iter_pre_sparsify`` (synthdid's default
    100) a first round of that many steps is followed by a second from its sparsified solution; None: one round
    of ``max_iter`` steps.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 2:
        Y = Y[None]
    if intercept:
        Y = center_columns(Y)
    A, b = Y[:, :, :-1], Y[:, :, -1]
    B, _, k = A.shape
    x0 = np.full((B, k), 1.0 / k) if init is None else np.broadcast_to(np.asarray(init, dtype=np.float64), (B, k))
    def solve(x: np.ndarray, iters: int) -> np.ndarray:
        if B == 1 and np.ndim(zeta) == 0 and np.ndim(min_decrease) == 0:
            return frank_wolfe_gram(A[0], b[0], x[0], float(zeta), min_decrease=float(min_decrease),
                                    max_iter=iters)[0][None]
        return frank_wolfe(A, b, x, zeta, min_decrease=min_decrease, max_iter=iters)[0]
    if max_iter_pre_sparsify is None:
        return solve(x0, max_iter)
    return solve(sparsify(solve(x0, max_iter_pre_sparsify)), max_iter)
