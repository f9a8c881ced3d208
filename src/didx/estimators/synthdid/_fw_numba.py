"""The Frank-Wolfe iterations of :func:`didx.estimators.synthdid._fw._fw_loop` compiled with numba (optional:
``pip install didx[fast]``).

Same state, same step and same per-problem stopping rule as the numpy loop: the half gradient ``g = h - c``, the
vertex ``i`` = first minimum of ``g``, the exact line search ``s = ((x'Hx - c'x) - g_i) / (H_ii - 2 h_i + x'Hx)``
clipped to [0, 1] (0 when the denominator is not positive or ``x`` is already the vertex), the updates
``g <- (1-s) g + s H_i - s c`` (skipped when ``s = 0``, where it changes nothing),
``x'Hx <- x'Hx + s (2 (h_i - x'Hx) + s den)`` and ``c'x <- (1-s) c'x + s c_i``, and the stop after a step that
lowers ``x'Hx - 2 c'x`` by ``<= md2``. With ``scaled`` the weights are kept as ``x = sigma * xt`` as there. The
problems are solved one after another (each one's gradient stays in cache), so the iterates equal the numpy
loop's up to the order of floating-point operations (the numpy loop forms ``g`` with a small matrix product and
``x'Hx``, ``c'x`` with ``einsum``).

No ``fastmath``: the operations are the IEEE ones written here. Imported lazily by ``_fw`` (numba is optional).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def first_min(g: np.ndarray) -> int:  # pragma: no cover - compiled
    """The index of the first minimum of ``g`` (numpy's ``argmin`` on finite values), four independent running
    minima so the comparisons overlap (about twice as fast as one running minimum at 800 entries). ``g`` is
    finite here: the panel builder drops missing and infinite outcomes, so a NaN (which numpy's ``argmin`` would
    pick) cannot occur."""
    k = g.shape[0]
    m0 = m1 = m2 = m3 = np.inf
    i0 = i1 = i2 = i3 = 0
    k4 = k - k % 4
    for j in range(0, k4, 4):
        if g[j] < m0:
            m0, i0 = g[j], j
        if g[j + 1] < m1:
            m1, i1 = g[j + 1], j + 1
        if g[j + 2] < m2:
            m2, i2 = g[j + 2], j + 2
        if g[j + 3] < m3:
            m3, i3 = g[j + 3], j + 3
    for j in range(k4, k):  # the tail: after all of lane 0's entries, so lane 0 still keeps its first minimum
        if g[j] < m0:
            m0, i0 = g[j], j
    best, i = m0, i0
    if m1 < best or (m1 == best and i1 < i):
        best, i = m1, i1
    if m2 < best or (m2 == best and i2 < i):
        best, i = m2, i2
    if m3 < best or (m3 == best and i3 < i):
        i = i3
    return i


@njit(cache=True)
def fw_loop(H: np.ndarray, x: np.ndarray, h: np.ndarray, c: np.ndarray, c_start: np.ndarray, diag: np.ndarray,
            md2: np.ndarray, max_iter: int, row_offset: np.ndarray,
            scaled: bool) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``H`` (rows, k); ``x``, ``h``, ``c``, ``c_start`` (B, k); ``diag`` (B, k) or (1, k) when shared; ``md2``
    (B,); ``row_offset`` (B,): problem ``b``'s row ``i`` of ``H`` is ``H[row_offset[b] + i]``."""
    B, k = x.shape
    out = np.empty((B, k))
    iterations = np.zeros(B, dtype=np.int64)
    g = np.empty(k)
    xt = np.empty(k)
    shared_diag = diag.shape[0] == 1
    for b in range(B):
        xhx = 0.0
        cx = 0.0
        for j in range(k):
            g[j] = h[b, j] - c[b, j]
            xt[j] = x[b, j]
            xhx += x[b, j] * h[b, j]
            cx += c_start[b, j] * x[b, j]
        drow = 0 if shared_diag else b
        sigma = 1.0
        prev = np.nan
        t = 0
        while t < max_iter:
            i = first_min(g)
            gi = g[i]
            ci = c[b, i]
            hi = gi + ci
            den = diag[drow, i] - 2.0 * hi + xhx
            xi = xt[i] * sigma if scaled else xt[i]
            if den > 0.0 and xi != 1.0:
                s = ((xhx - cx) - gi) / den
                if s > 1.0:
                    s = 1.0
                if s < 0.0:
                    s = 0.0
            else:
                s = 0.0
            r = 1.0 - s
            if s != 0.0:  # s == 0 leaves g unchanged (the numpy loop's update is then exact)
                Hi = H[row_offset[b] + i]
                for j in range(k):
                    g[j] = r * g[j] + s * Hi[j] - s * c[b, j]
            if scaled:
                sigma *= r
                if sigma < 1e-100:
                    if sigma == 0.0:
                        for j in range(k):
                            xt[j] = 0.0
                    else:
                        for j in range(k):
                            xt[j] *= sigma
                    sigma = 1.0
                xt[i] += s / sigma
            else:
                for j in range(k):
                    xt[j] *= r
                xt[i] += s
            xhx = xhx + s * (2.0 * (hi - xhx) + s * den)
            cx = r * cx + s * ci
            val = xhx - 2.0 * cx
            t += 1
            if t >= 2 and prev - val <= md2[b]:
                break
            prev = val
        iterations[b] = t
        for j in range(k):
            out[b, j] = xt[j] * sigma
    return out, iterations
