"""Conditional (ARP) confidence sets for ``theta = l' tau_post`` when ``delta`` lies in a union of polyhedra
``{A delta <= d}``: R ``HonestDiD``'s ``.ARP_computeCI`` (several post periods: the nuisance-parameter test of
Andrews, Roth & Pakes 2023) and ``.APR_computeCI_NoNuis`` (one post period), with its three variants:

* ``"ARP"``: the conditional test alone (HonestDiD ``hybrid_flag = "ARP"``, ``method = "Conditional"``);
* ``"LF"``: the least-favorable hybrid (``"C-LF"``): reject when ``eta`` exceeds the ``1 - kappa`` quantile of
  ``eta`` over 1000 normal draws (R's ``set.seed(0)`` through ``mvtnorm::rmvnorm``'s eigen square root), else the
  conditional test at size ``(alpha - kappa) / (1 - kappa)`` with the truncation capped at that value;
* ``"FLCI"``: the FLCI hybrid (``"C-F"``): reject outside the FLCI at level ``kappa``, else the conditional test
  with the FLCI's event added to the conditioning set. HonestDiD solves a quadratic program for ``vbar`` with
  ``A' vbar = `` the FLCI weights; the test depends on ``vbar`` only through ``A' vbar`` and ``vbar' A Gamma^-1
  e_1 = 1``, so the FLCI weights are used directly (exact where HonestDiD's CVXR solution is approximate).

For each polyhedron the moments are ``Y = A beta - d`` (the test uses the rows that involve post periods), the
target enters through ``A_post Gamma^{-1}`` (``Gamma`` has ``l'`` as its first row). ``eta(theta)`` solves
``min eta s.t. y - X delta <= eta sd`` (HiGHS). The confidence set is the union over polyhedra of the accepted
grid points; its interval is from the smallest to the largest. Only those two matter, so the tests run from each
end of the grid inwards, in chunks, and stop at the first accepted point (each point's test is exactly
HonestDiD's, so the interval equals the one from testing every point). Costs are kept down by

* ``eta`` is convex in ``theta`` (the optimal value of an LP jointly linear in ``theta`` and ``delta``), so the
  least-favorable first stage ``eta <= cv`` accepts a contiguous run of grid points: it is located from a coarse
  grid and the brackets around its ends rather than by solving the LP at every point;
* the LPs of one chunk (``eta`` at several grid points; the dual-approach programs of ARP's Appendix D at several
  points) are solved as one block-diagonal HiGHS program; the blocks are separate, so each block's part is that
  block's optimum.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse, special
from scipy.stats import truncnorm

from didx._errors import DesignError

N_LF_SIMS = 1000
TOL_LAMBDA = 1e-6
COARSE_STEP = 25
CHUNK = 12

# a dual-approach check: yields (c, f) -- "is c a solution of max f'x s.t. W'x = e1, x >= 0?" -- and receives
# the LP's (value, x)
_Check = Generator[tuple[float, np.ndarray], tuple[float, np.ndarray], bool]


@dataclass(frozen=True)
class Hybrid:
    """The test variant: ``kind`` ``"ARP"``, ``"LF"`` or ``"FLCI"``; ``kappa`` the first-stage size; for the FLCI
    hybrid the FLCI's weights over all coefficients and its half-length (at level ``kappa``)."""

    kind: str
    kappa: float
    flci_l: np.ndarray | None = None
    flci_half: float = 0.0

    def second_size(self, alpha: float) -> float:
        return alpha if self.kind == "ARP" else (alpha - self.kappa) / (1.0 - self.kappa)


def _fail(what: str, message: str) -> DesignError:
    return DesignError(
        f"honest_did(): the {what} linear program failed ({message}). Fix: check that sigma is well scaled "
        f"(e.g. rescale the outcome)."
    )


def _block_diag(groups: Sequence[tuple[np.ndarray, int]]) -> sparse.csr_matrix:
    """The block-diagonal sparse matrix of ``count`` copies of each dense block ``B`` (one COO pass)."""
    rows, cols, data = [], [], []
    r0 = c0 = 0
    for B, count in groups:
        nr, nc = B.shape
        k = np.arange(count)[:, None]
        rows.append((r0 + k * nr + np.repeat(np.arange(nr), nc)[None, :]).ravel())
        cols.append((c0 + k * nc + np.tile(np.arange(nc), nr)[None, :]).ravel())
        data.append(np.tile(B.ravel(), count))
        r0, c0 = r0 + count * nr, c0 + count * nc
    return sparse.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, c0))


def _eta_multi(Ys: Sequence[np.ndarray], Xs: Sequence[np.ndarray],
               sds: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``min eta s.t. Y_j - X delta_j <= eta sd`` for every row ``Y_j`` of every ``(Y, X, sd)`` at once (one
    block-diagonal HiGHS program; the blocks are separate, so each block's part is that block's optimum).
    Returns per group eta and the multipliers ``lambda >= 0`` (``sum lambda sd = 1``, ``X' lambda = 0``)."""
    blocks, rhs, cost, shapes = [], [], [], []
    for Y, X, sd in zip(Ys, Xs, sds, strict=True):
        C = -np.column_stack([sd, X])
        blocks.append((C, Y.shape[0]))
        rhs.append(-Y.ravel())
        c = np.zeros((Y.shape[0], C.shape[1]))
        c[:, 0] = 1.0
        cost.append(c.ravel())
        shapes.append((Y.shape[0], Y.shape[1], C.shape[1]))
    res = optimize.linprog(np.concatenate(cost), A_ub=_block_diag(blocks), b_ub=np.concatenate(rhs),
                           bounds=(None, None), method="highs")
    if res.status != 0:
        raise _fail("ARP", res.message)
    out, xs, ms = [], 0, 0
    marg = -np.asarray(res.ineqlin.marginals)
    for n, m, k in shapes:
        out.append((res.x[xs:xs + n * k:k], marg[ms:ms + n * m].reshape(n, m)))
        xs, ms = xs + n * k, ms + n * m
    return out


def _eta_block(Y: np.ndarray, X: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _eta_multi([Y], [X], [sd])[0]


def _max_block(W: Sequence[np.ndarray], F: Sequence[np.ndarray]) -> list[tuple[float, np.ndarray]]:
    """HonestDiD ``.max_program`` for several ``(W_j, f_j)`` at once: ``max f_j'x s.t. W_j'x = e1, x >= 0``."""
    b_eq = np.concatenate([np.eye(w.shape[1])[0] for w in W])
    res = optimize.linprog(-np.concatenate(F), A_eq=_block_diag([(w.T, 1) for w in W]), b_eq=b_eq, bounds=(0, None),
                           method="highs")
    if res.status != 0:
        raise _fail("ARP dual-approach", res.message)
    out, start = [], 0
    for w, f in zip(W, F, strict=True):
        x = res.x[start:start + w.shape[0]]
        out.append((float(f @ x), x))
        start += w.shape[0]
    return out


def r_mvnorm_draws(sigma: np.ndarray, n: int, draws: np.ndarray) -> np.ndarray:
    """``set.seed(0); mvtnorm::rmvnorm(n, sigma = sigma)`` (method eigen: the symmetric square root, filled by
    row from ``rnorm``)."""
    vals, vecs = np.linalg.eigh(sigma)
    root = (vecs * np.sqrt(np.maximum(vals, 0.0))) @ vecs.T
    z = draws[: n * sigma.shape[0]].reshape(n, sigma.shape[0])
    return np.asarray(z @ root)


def _quantile7(x: np.ndarray, p: float) -> float:
    return float(np.quantile(x, p, method="linear"))


def _vlo_vup_dual(eta: float, s_T: np.ndarray, gamma: np.ndarray, sigma: np.ndarray) -> Generator[
        tuple[float, np.ndarray], tuple[float, np.ndarray], tuple[float, float]]:
    """HonestDiD ``.vlo_vup_dual_fn``: truncation points by the fixed-point shortcut, then bisection. A generator
    of the ``c`` values to check (see ``_Check``)."""
    tol_c = tol_eq = 1e-6
    gsg = float(gamma @ sigma @ gamma)
    sig_b = float(np.sqrt(gsg))
    b = (sigma @ gamma) / gsg
    eps34 = np.finfo(float).eps ** 0.75

    def check(c: float) -> Generator[tuple[float, np.ndarray], tuple[float, np.ndarray], tuple[bool, np.ndarray]]:
        val, x = yield c, s_T + b * c
        return bool(np.isfinite(val) and abs(c - val) <= tol_eq), x

    def shortcut(x: np.ndarray) -> float:
        num = float(x @ s_T)
        return (0.0 if abs(num) < eps34 else num) / (1.0 - float(x @ b))

    ok, _ = yield from check(eta)
    if not ok:
        return eta, np.inf
    bounds = []
    for start, upper in ((max(100.0, eta + 20 * sig_b), True), (min(-100.0, eta - 20 * sig_b), False)):
        ok, x = yield from check(start)
        if ok:
            bounds.append(np.inf if upper else -np.inf)
            continue
        dif, iters, mid = 0.0, 1, shortcut(x)
        while True:
            ok, x = yield from check(mid)
            if ok:
                break
            iters += 1
            if iters >= 10:
                dif = tol_c + 1
                break
            mid = shortcut(x)
        lo, hi = (eta, mid) if upper else (mid, eta)
        while dif > tol_c and iters < 10000:
            iters += 1
            mid = (lo + hi) / 2
            inside, _ = yield from check(mid)
            if upper:
                lo, hi = (mid, hi) if inside else (lo, mid)
            else:
                lo, hi = (lo, mid) if inside else (mid, hi)
            dif = hi - lo
        bounds.append(mid)
    return bounds[1], bounds[0]


def _flci_vlo_vup(hyb: Hybrid, u: float, cc: float, g: float) -> tuple[float, float]:
    """HonestDiD ``.FLCI_computeVloVup`` written with the FLCI weights: ``u = flci_l' beta - theta``, ``cc =
    vbar' c`` and ``g = gamma' y``."""
    h = hyb.flci_half
    if cc > 0:
        return g - (h + u) / cc, g + (h - u) / cc
    if cc < 0:
        return g + (h - u) / cc, g - (h + u) / cc
    return -np.inf, np.inf


def truncnorm_quantile(p: float, a: float, b: float) -> float:
    """Quantile ``p`` of the standard normal truncated to ``[a, b]`` (``TruncatedNormal::norminvp``): by the cdf
    on the left of 0 and the survival function on the right, so tails keep their precision; scipy's
    ``truncnorm.ppf`` (slower) where both are outside the range doubles represent."""
    if a > 0.0:
        sa, sb = special.ndtr(-a), special.ndtr(-b)
        if sa > 1e-300:
            return float(-special.ndtri(sa - p * (sa - sb)))
    else:
        fa, fb = special.ndtr(a), special.ndtr(b)
        if fb > 1e-300:
            return float(special.ndtri(fa + p * (fb - fa)))
    return float(truncnorm.ppf(p, a, b))


def _truncated_test(stat: float, zlo: float, zup: float, size: float) -> bool:
    """Accept unless ``stat`` lies in ``[zlo, zup]`` and exceeds ``max(0, q_{1-size})`` of the truncated normal."""
    if not (zlo <= stat <= zup):
        return True
    cval = max(0.0, truncnorm_quantile(1.0 - size, zlo, zup))
    return not stat > cval


class Polyhedron:
    """HonestDiD ``.ARP_computeCI`` for one polyhedron ``A delta <= d`` and several post periods. ``rows``: the
    moments the test uses (``rowsForARP``). ``eta`` is computed lazily (``ensure``); ``candidates`` marks the
    grid points that pass the first stage; ``second_stage(i)`` is a generator (see ``_Check``)."""

    def __init__(self, beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, A: np.ndarray,
                 d: np.ndarray, rows: np.ndarray, grid: np.ndarray, alpha: float, hyb: Hybrid,
                 draws: np.ndarray) -> None:
        self.hyb, self.grid, self.size = hyb, grid, hyb.second_size(alpha)
        AG = A[:, n_pre:] @ np.linalg.inv(gamma_matrix(l_vec))
        self.a1, self.X = AG[rows, 0], AG[rows, 1:]
        self.Y = (A @ beta - d)[rows]
        self.sig = (A @ sigma @ A.T)[np.ix_(rows, rows)]
        self.sd = np.sqrt(np.diag(self.sig))
        self.W = np.column_stack([self.sd, self.X])
        self.A_rows = A[rows]
        self.sigma = sigma
        self.beta = beta
        G = grid.size
        self.eta = np.full(G, np.nan)
        self.lam = np.zeros((G, rows.size))
        if hyb.kind == "LF":
            xi = r_mvnorm_draws(self.sig, N_LF_SIMS, draws)
            eta_sims, _ = _eta_block(xi, self.X, self.sd)
            self.lf_cv = _quantile7(eta_sims, 1.0 - hyb.kappa)
            self.candidates = self._lf_candidates()
        elif hyb.kind == "FLCI":
            assert hyb.flci_l is not None
            self.u = float(hyb.flci_l @ beta) - grid
            self.candidates = ~(np.abs(self.u) > hyb.flci_half)
        else:
            self.candidates = np.ones(G, dtype=bool)

    def ensure(self, idx: np.ndarray) -> None:
        """Solve the ``eta`` programs at grid points ``idx`` not solved yet (one block program)."""
        ensure_all([(self, np.asarray(idx))])

    def todo(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The grid points of ``idx`` without ``eta`` yet, and their moments ``Y - a1 theta``."""
        todo = idx[np.isnan(self.eta[idx])]
        return todo, self.Y[None, :] - self.grid[todo, None] * self.a1[None, :]

    def _lf_candidates(self) -> np.ndarray:
        """``eta <= lf_cv`` on the grid. ``eta`` is convex in theta, so the accepted points are a contiguous run:
        found from a coarse grid, then the brackets around its ends (or around the coarse minimum)."""
        G = self.grid.size
        coarse = np.unique(np.append(np.arange(0, G, COARSE_STEP), G - 1))
        self.ensure(coarse)
        inside = coarse[self.eta[coarse] <= self.lf_cv]
        if inside.size == 0:
            k = int(coarse[np.argmin(self.eta[coarse])])
            near = np.arange(max(0, k - COARSE_STEP), min(G, k + COARSE_STEP + 1))
            self.ensure(near)
            inside = near[self.eta[near] <= self.lf_cv]
            if inside.size == 0:
                return np.zeros(G, dtype=bool)
        lo, hi = int(inside.min()), int(inside.max())
        left = np.arange(max(0, lo - COARSE_STEP + 1), lo)
        right = np.arange(hi + 1, min(G, hi + COARSE_STEP))
        self.ensure(np.concatenate([left, right]))
        out = np.zeros(G, dtype=bool)
        below = left[self.eta[left] <= self.lf_cv]
        above = right[self.eta[right] <= self.lf_cv]
        out[(below.min() if below.size else lo):(above.max() if above.size else hi) + 1] = True
        return out

    def accept_every_point(self) -> np.ndarray:
        """Both stages at every grid point, with ``eta`` solved at each (no shortcut): the reference that
        ``union_interval``'s interval must equal (used by the tests)."""
        G = self.grid.size
        self.ensure(np.arange(G))
        first = np.ones(G, dtype=bool)
        if self.hyb.kind == "LF":
            first = ~(self.eta > self.lf_cv)
        elif self.hyb.kind == "FLCI":
            first = self.candidates
        pts = np.flatnonzero(first)
        out = np.zeros(G, dtype=bool)
        out[pts] = _run_checks([(self, self.second_stage(int(i))) for i in pts])
        return out

    def second_stage(self, i: int) -> _Check:
        """The rest of HonestDiD's ``.lp_conditional_test_fn`` at grid point ``i`` (``True`` = accept)."""
        y = self.Y - self.grid[i] * self.a1
        eta, lam, X, sig, sd = float(self.eta[i]), self.lam[i], self.X, self.sig, self.sd
        k = X.shape[1]
        B = lam > TOL_LAMBDA
        XB = X[B]
        full_rank = min(XB.shape) > 0 and np.linalg.matrix_rank(XB) == min(XB.shape)
        if not full_rank or B.sum() != k + 1:  # dual approach
            gsg = float(lam @ sig @ lam)
            if abs(gsg) < np.finfo(float).eps:
                return not eta > 0
            s_T = y - (sig @ lam) * float(lam @ y) / gsg
            vlo, vup = yield from _vlo_vup_dual(eta, s_T, lam, sig)
            gamma, sig_b = lam, np.sqrt(gsg)
        else:  # primal approach
            WB_inv = np.linalg.inv(np.column_stack([sd[B], XB]))
            S = np.eye(y.size)
            gamma_b = np.column_stack([sd[~B], X[~B]]) @ WB_inv @ S[B] - S[~B]
            gamma = WB_inv[0] @ S[B]
            s2 = float(gamma @ sig @ gamma)
            sig_b = np.sqrt(s2)
            rho = gamma_b @ sig @ gamma / s2
            with np.errstate(divide="ignore", invalid="ignore"):
                mm = (-gamma_b @ y) / rho + float(gamma @ y)
            vlo = float(mm[rho > 0].max()) if np.any(rho > 0) else -np.inf
            vup = float(mm[rho < 0].min()) if np.any(rho < 0) else np.inf
        if self.hyb.kind == "LF":
            vup = min(vup, self.lf_cv)
        elif self.hyb.kind == "FLCI":
            assert self.hyb.flci_l is not None
            ag = self.A_rows.T @ gamma
            cc = float(self.hyb.flci_l @ self.sigma @ ag) / float(ag @ self.sigma @ ag)
            flo, fup = _flci_vlo_vup(self.hyb, float(self.u[i]), cc, float(gamma @ y))
            vlo, vup = max(vlo, flo), min(vup, fup)
        return _truncated_test(eta / sig_b, vlo / sig_b, vup / sig_b, self.size)


def ensure_all(work: Sequence[tuple[Polyhedron, np.ndarray]]) -> None:
    """``eta`` at the given grid points of several polyhedra, in one block program."""
    jobs = [(p, *p.todo(idx)) for p, idx in work]
    jobs = [j for j in jobs if j[1].size]
    if not jobs:
        return
    solved = _eta_multi([y for _, _, y in jobs], [p.X for p, _, _ in jobs], [p.sd for p, _, _ in jobs])
    for (p, todo, _), (eta, lam) in zip(jobs, solved, strict=True):
        p.eta[todo], p.lam[todo] = eta, lam


def _run_checks(tasks: list[tuple[Polyhedron, _Check]]) -> list[bool]:
    """Drive the second-stage generators together: each round solves every pending dual-approach program in
    one block-diagonal LP."""
    out: list[bool | None] = [None] * len(tasks)
    pending: dict[int, tuple[float, np.ndarray]] = {}

    def advance(j: int, sent: tuple[float, np.ndarray] | None) -> None:
        try:
            pending[j] = next(tasks[j][1]) if sent is None else tasks[j][1].send(sent)
        except StopIteration as stop:
            out[j] = bool(stop.value)
            pending.pop(j, None)

    for j in range(len(tasks)):
        advance(j, None)
    while pending:
        keys = list(pending)
        solved = _max_block([tasks[j][0].W for j in keys], [pending[j][1] for j in keys])
        for j, res in zip(keys, solved, strict=True):
            advance(j, res)
    return [bool(v) for v in out]


class NoNuisance:
    """HonestDiD ``.APR_computeCI_NoNuis`` for one polyhedron and one post period, on the whole grid at once
    (closed-form truncation points: ``.testInIdentifiedSet``, its LF and FLCI hybrids)."""

    def __init__(self, beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, A: np.ndarray,
                 d: np.ndarray, grid: np.ndarray, alpha: float, hyb: Hybrid, draws: np.ndarray) -> None:
        size = hyb.second_size(alpha)
        sigY = A @ sigma @ A.T
        st = np.sqrt(np.diag(sigY))
        At, dt = A / st[:, None], d / st
        # y(theta) = beta - e_post theta / l (HonestDiD: l = 1)
        e = np.zeros(beta.size)
        e[n_pre] = 1.0 / float(l_vec[0])
        base, slope = At @ beta - dt, At @ e
        moments = base[None, :] - grid[:, None] * slope[None, :]
        loc = np.argmax(moments, axis=1)
        maxm = moments[np.arange(grid.size), loc]
        accept = np.ones(grid.size, dtype=bool)
        first = np.ones(grid.size, dtype=bool)  # passes the first stage
        extra_A, extra_d = np.zeros((0, beta.size)), np.zeros(0)
        if hyb.kind == "LF":
            xi = r_mvnorm_draws(sigY, N_LF_SIMS, draws) / st[None, :]
            self.lf_cv = _quantile7(xi.max(axis=1), 1.0 - hyb.kappa)
            first = ~(maxm > self.lf_cv)
        elif hyb.kind == "FLCI":
            assert hyb.flci_l is not None
            first = ~(np.abs(float(hyb.flci_l @ beta) - grid) > hyb.flci_half)
            extra_A, extra_d = np.vstack([hyb.flci_l, -hyb.flci_l]), np.full(2, hyb.flci_half)
        accept &= first
        for j in np.unique(loc[first]):
            pts = np.flatnonzero(first & (loc == j))
            gamma = At[j]
            Abar = np.vstack([At - gamma[None, :], extra_A])
            dbar = np.concatenate([dt - dt[j], extra_d])
            gsg = float(gamma @ sigma @ gamma)
            c = sigma @ gamma / gsg
            y = beta[None, :] - grid[pts, None] * e[None, :]
            z = y - np.outer(y @ gamma, c)
            Ac = Abar @ c
            obj = (dbar[None, :] - z @ Abar.T) / Ac[None, :]
            with np.errstate(invalid="ignore"):
                vlo = np.where(Ac < 0, obj, -np.inf).max(axis=1)
                vup = np.where(Ac > 0, obj, np.inf).min(axis=1)
            sb = np.sqrt(gsg)
            mu = dt[j]
            q = mu + sb * truncnorm.ppf(1.0 - size, (vlo - mu) / sb, (vup - mu) / sb)
            accept[pts] = ~(maxm[pts] + mu > np.maximum(0.0, q))
        self.accept = accept


def gamma_matrix(l_vec: np.ndarray) -> np.ndarray:
    """HonestDiD ``.construct_Gamma``: ``l'`` then the unit vectors that are pivots of ``rref([l, I])``."""
    rows = [l_vec]
    for j in range(l_vec.size):
        cand = np.vstack([*rows, np.eye(l_vec.size)[j]])
        if np.linalg.matrix_rank(cand) == len(rows) + 1:
            rows.append(np.eye(l_vec.size)[j])
    return np.vstack(rows)


def union_interval(polys: Sequence[Polyhedron | NoNuisance], G: int) -> tuple[int, int, int]:
    """The smallest and largest grid index accepted by any polyhedron (``-1, -1`` when none), scanning from each
    end of the grid inwards in chunks. Returns ``(lo, hi, n_second_stage_tests)``."""
    nuis = [p for p in polys if isinstance(p, Polyhedron)]
    fixed = np.zeros(G, dtype=bool)
    for p in polys:
        if isinstance(p, NoNuisance):
            fixed |= p.accept
    cand = fixed.copy()
    for p in nuis:
        cand |= p.candidates
    order = np.flatnonzero(cand)
    tested = 0

    def scan(seq: np.ndarray) -> int | None:
        nonlocal tested
        start, size = 0, CHUNK
        while start < seq.size:
            chunk = seq[start:start + size]
            start, size = start + size, min(2 * size, 8 * CHUNK)
            acc = fixed[chunk].copy()
            tasks: list[tuple[Polyhedron, _Check]] = []
            where: list[int] = []
            work = [(p, chunk[p.candidates[chunk] & ~acc]) for p in nuis]
            ensure_all(work)
            for p, pts in work:
                for i in pts:
                    tasks.append((p, p.second_stage(int(i))))
                    where.append(int(np.flatnonzero(chunk == i)[0]))
            tested += len(tasks)
            for w, ok in zip(where, _run_checks(tasks), strict=True):
                acc[w] |= ok
            if acc.any():
                return int(chunk[int(np.argmax(acc))])
        return None

    lo = scan(order)
    if lo is None:
        return -1, -1, tested
    hi = scan(order[order > lo][::-1])
    return lo, (lo if hi is None else hi), tested
