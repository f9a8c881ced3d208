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
from typing import Any

import numpy as np
from scipy import optimize, sparse, special
from scipy.stats import truncnorm

from didx._errors import DesignError

N_LF_SIMS = 1000
TOL_LAMBDA = 1e-6
COARSE_STEP = 25
CHUNK = 4
LP_NNZ = 300000

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


def _packs(sizes: Sequence[tuple[int, int]]) -> list[list[tuple[int, int, int]]]:
    """Split ``count`` blocks of ``nnz`` non-zeros each (per group) into programs of at most ``LP_NNZ`` non-zeros:
    the simplex prices over the whole block-diagonal program, so very large ones cost more per block. Returns
    per program the pieces ``(group, start, stop)``."""
    packs: list[list[tuple[int, int, int]]] = [[]]
    room = LP_NNZ
    for g, (count, nnz) in enumerate(sizes):
        start = 0
        while start < count:
            take = min(count - start, max(1, room // max(nnz, 1)))
            if take * nnz > room and packs[-1]:
                packs.append([])
                room = LP_NNZ
                continue
            packs[-1].append((g, start, start + take))
            room -= take * nnz
            start += take
    return [p for p in packs if p]


def _eta_multi(Ys: Sequence[np.ndarray], Xs: Sequence[np.ndarray],
               sds: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``min eta s.t. Y_j - X delta_j <= eta sd`` for every row ``Y_j`` of every ``(Y, X, sd)``, several at once
    in block-diagonal HiGHS programs (the blocks are separate, so each block's part is that block's optimum).
    Returns per group eta and the multipliers ``lambda >= 0`` (``sum lambda sd = 1``, ``X' lambda = 0``)."""
    out = [(np.empty(Y.shape[0]), np.empty(Y.shape)) for Y in Ys]
    sizes = [(Y.shape[0], Y.shape[1] * (X.shape[1] + 1)) for Y, X in zip(Ys, Xs, strict=True)]
    for pack in _packs(sizes):
        solved = _eta_pack([Ys[g][a:b] for g, a, b in pack], [Xs[g] for g, _, _ in pack],
                           [sds[g] for g, _, _ in pack])
        for (g, a, b), (eta, lam) in zip(pack, solved, strict=True):
            out[g][0][a:b], out[g][1][a:b] = eta, lam
    return out


def _eta_pack(Ys: Sequence[np.ndarray], Xs: Sequence[np.ndarray],
              sds: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One block-diagonal program of ``_eta_multi``."""
    blocks, rhs, cost, shapes = [], [], [], []
    for Y, X, sd in zip(Ys, Xs, sds, strict=True):
        C = -np.column_stack([sd, X])
        blocks.append((C, Y.shape[0]))
        rhs.append(-Y.ravel())
        c = np.zeros((Y.shape[0], C.shape[1]))
        c[:, 0] = 1.0
        cost.append(c.ravel())
        shapes.append((Y.shape[0], Y.shape[1], C.shape[1]))
    res = optimize.linprog(np.concatenate(cost), A_ub=_block_diag(blocks),  # type: ignore[call-overload]
                           b_ub=np.concatenate(rhs), bounds=(None, None), method="highs")
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
    """HonestDiD ``.max_program`` for several ``(W_j, f_j)``: ``max f_j'x s.t. W_j'x = e1, x >= 0``, in
    block-diagonal programs of at most ``LP_NNZ`` non-zeros."""
    out: list[tuple[float, np.ndarray]] = []
    for pack in _packs([(1, w.size) for w in W]):
        out.extend(_max_pack([W[g] for g, _, _ in pack], [F[g] for g, _, _ in pack]))
    return out


def _max_pack(W: Sequence[np.ndarray], F: Sequence[np.ndarray]) -> list[tuple[float, np.ndarray]]:
    """One block-diagonal program of ``_max_block``."""
    b_eq = np.concatenate([np.eye(w.shape[1])[0] for w in W])
    res = optimize.linprog(-np.concatenate(F), A_eq=_block_diag([(w.T, 1) for w in W]),  # type: ignore[call-overload]
                           b_eq=b_eq, bounds=(0, None), method="highs")
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


_Gen = Generator[tuple[float, np.ndarray], tuple[float, np.ndarray], Any]
TOL_EQ = TOL_C = 1e-6


def _check(c: float, s_T: np.ndarray, b: np.ndarray) -> _Gen:
    """HonestDiD ``.check_if_solution_helper``: is ``c`` a fixed point of ``max (s_T + b c)'x`` over the dual
    polytope? Returns ``(ok, x)``."""
    val, x = yield c, s_T + b * c
    return bool(np.isfinite(val) and abs(c - val) <= TOL_EQ), x


def _dual_bound(eta: float, s_T: np.ndarray, b: np.ndarray, sig_b: float, upper: bool) -> _Gen:
    """One side of HonestDiD ``.vlo_vup_dual_fn`` (``vup`` or ``vlo``): the fixed-point shortcut from
    ``+-max(100, 20 sigma_B)`` away, then bisection (tolerance 1e-6)."""
    eps34 = np.finfo(float).eps ** 0.75

    def shortcut(x: np.ndarray) -> float:
        num = float(x @ s_T)
        return (0.0 if abs(num) < eps34 else num) / (1.0 - float(x @ b))

    start = max(100.0, eta + 20 * sig_b) if upper else min(-100.0, eta - 20 * sig_b)
    ok, x = yield from _check(start, s_T, b)
    if ok:
        return np.inf if upper else -np.inf
    dif, iters, mid = 0.0, 1, shortcut(x)
    while True:
        ok, x = yield from _check(mid, s_T, b)
        if ok:
            break
        iters += 1
        if iters >= 10:
            dif = TOL_C + 1
            break
        mid = shortcut(x)
    lo, hi = (eta, mid) if upper else (mid, eta)
    while dif > TOL_C and iters < 10000:
        iters += 1
        mid = (lo + hi) / 2
        inside, _ = yield from _check(mid, s_T, b)
        if upper:
            lo, hi = (mid, hi) if inside else (lo, mid)
        else:
            lo, hi = (lo, mid) if inside else (mid, hi)
        dif = hi - lo
    return mid


def _lower_cut(stat: float, zup: float, size: float) -> float | None:
    """The ``z*`` at which the test's critical value ``q_{1-size}`` of N(0,1) truncated to ``[z, zup]`` equals
    ``stat`` (it increases with ``z``): the test rejects iff the lower truncation point is below ``z*``. None when
    it accepts whatever that point is."""
    low = min(-40.0, stat - 40.0)
    if truncnorm_quantile(1.0 - size, low, zup) >= stat:
        return None
    if truncnorm_quantile(1.0 - size, stat, zup) <= stat:  # zup = stat up to rounding: degenerate truncation
        return stat
    return float(optimize.brentq(lambda z: truncnorm_quantile(1.0 - size, z, zup) - stat, low, stat, xtol=1e-12))


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


def _outside(stat: float, zlo: float, zup: float) -> bool:
    """``stat`` outside ``[zlo, zup]`` (HonestDiD then accepts), up to rounding: at the ends of the C-F grid the
    FLCI's truncation point equals the statistic in exact arithmetic, and rounding must not decide the test."""
    tol = 1e-10 * max(1.0, abs(stat))
    return not (zlo - tol <= stat <= zup + tol)


def _truncated_test(stat: float, zlo: float, zup: float, size: float) -> bool:
    """Accept unless ``stat`` lies in ``[zlo, zup]`` and exceeds ``max(0, q_{1-size})`` of the truncated normal."""
    if _outside(stat, zlo, zup):
        return True
    zlo, zup = min(zlo, stat), max(zup, stat)
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
        # an upper bound on eta at any moments y: the value at the weighted least-squares delta (exact when that
        # delta is optimal), and lower bounds lambda'y from the multipliers found so far (any dual-feasible lambda)
        w = 1.0 / self.sd
        self.P = np.linalg.lstsq(self.X * w[:, None], np.diag(w), rcond=None)[0]
        self.duals: list[np.ndarray] = []
        self.lf_cv = np.inf
        if hyb.kind == "LF":
            self.xi = r_mvnorm_draws(self.sig, N_LF_SIMS, draws)
            self.candidates = np.zeros(G, dtype=bool)  # set by prepare_lf
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

    def upper(self, y: np.ndarray) -> np.ndarray:
        """Upper bounds on eta at the rows of ``y`` (the least-squares delta is feasible)."""
        r = y - (y @ self.P.T) @ self.X.T
        return np.asarray((r / self.sd[None, :]).max(axis=1))

    def lower(self, y: np.ndarray) -> np.ndarray:
        """Lower bounds on eta at the rows of ``y``: ``max lambda'y`` over the multipliers found so far."""
        if not self.duals:
            return np.full(y.shape[0], -np.inf)
        return np.asarray((y @ np.array(self.duals).T).max(axis=1))

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
            return (yield from self._dual_test(i, y, eta, lam))
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
            flo, fup = self._flci_bounds(i, gamma, y)
            vlo, vup = max(vlo, flo), min(vup, fup)
        return _truncated_test(eta / sig_b, vlo / sig_b, vup / sig_b, self.size)

    def _flci_bounds(self, i: int, gamma: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        assert self.hyb.flci_l is not None
        ag = self.A_rows.T @ gamma
        cc = float(self.hyb.flci_l @ self.sigma @ ag) / float(ag @ self.sigma @ ag)
        return _flci_vlo_vup(self.hyb, float(self.u[i]), cc, float(gamma @ y))

    def _dual_test(self, i: int, y: np.ndarray, eta: float, lam: np.ndarray) -> _Gen:
        """HonestDiD's dual approach (``.lp_dual_fn``, ``.vlo_vup_dual_fn``) deciding with the fewest programs:
        the solutions ``c`` of the fixed-point problem form the interval ``[vlo, vup]`` around ``eta``, and the
        critical value increases with both truncation points, so

        * ``vup``: the least-favorable hybrid caps it at ``lf_cv``, so one check at ``lf_cv`` settles it when
          ``lf_cv`` is a solution (else HonestDiD's search);
        * ``vlo``: the test rejects iff ``vlo < c*`` (``c*``: where the critical value equals the statistic), i.e.
          iff ``c*`` is a solution: one check instead of HonestDiD's search.

        The decision equals HonestDiD's except within its bisection tolerance (1e-6) of ``c*``."""
        sig = self.sig
        gsg = float(lam @ sig @ lam)
        if abs(gsg) < np.finfo(float).eps:
            return not eta > 0
        sig_b = float(np.sqrt(gsg))
        stat = eta / sig_b
        if stat <= 0.0:  # the critical value is >= 0: no rejection (inside or outside the truncation)
            return True
        b = (sig @ lam) / gsg
        s_T = y - b * float(lam @ y)
        if self.hyb.kind == "LF":
            ok, _ = yield from _check(self.lf_cv, s_T, b)
            vup = self.lf_cv if ok else min((yield from _dual_bound(eta, s_T, b, sig_b, True)), self.lf_cv)
            flo = -np.inf
        else:
            vup = yield from _dual_bound(eta, s_T, b, sig_b, True)
            flo = -np.inf
            if self.hyb.kind == "FLCI":
                flo, fup = self._flci_bounds(i, lam, y)
                vup = min(vup, fup)
        zup = vup / sig_b
        if _outside(stat, -np.inf, zup):
            return True
        zup = max(zup, stat)
        z_star = _lower_cut(stat, zup, self.size)
        if z_star is None:
            return True
        c_star = z_star * sig_b
        if flo >= c_star:
            return True
        ok, _ = yield from _check(c_star, s_T, b)
        return not ok


def _lf_cvs(polys: Sequence[Polyhedron], kappa: float) -> None:
    """HonestDiD ``.compute_least_favorable_cv``: the ``1 - kappa`` quantile (R type 7) of eta over the draws.
    Only the top order statistics enter it, so the programs are solved for the draws whose upper bound can reach
    them (largest bounds first, until every unsolved draw's bound is below the needed order statistic); the
    quantile is the one over all draws."""
    n = N_LF_SIMS
    need = n - int(np.floor((n - 1) * (1.0 - kappa)))
    state = []
    for p in polys:
        ub = p.upper(p.xi)
        state.append((p, ub, np.full(n, np.nan)))
    first = True
    while True:
        jobs = []
        for p, ub, ex in state:
            solved = ~np.isnan(ex)
            top = np.sort(ex[solved])[::-1]
            thr = top[need - 1] if top.size >= need else -np.inf
            open_ = np.flatnonzero(~solved & (ub >= thr))
            open_ = open_[np.argsort(-ub[open_], kind="stable")][: (2 * need + 10 if first else 200)]
            if open_.size:
                jobs.append((p, ex, open_))
        first = False
        if not jobs:
            break
        res = _eta_multi([p.xi[o] for p, _, o in jobs], [p.X for p, _, _ in jobs], [p.sd for p, _, _ in jobs])
        for (p, ex, o), (eta, lam) in zip(jobs, res, strict=True):
            ex[o] = eta
            p.duals.extend(lam[np.argsort(-eta)[:need]])
    for p, _, ex in state:
        full = np.where(np.isnan(ex), -np.inf, ex)
        p.lf_cv = _quantile7(full, 1.0 - kappa)


def prepare_lf(polys: Sequence[Polyhedron], kappa: float) -> None:
    """The least-favorable critical values and the first stage ``eta <= lf_cv`` on the grid for several
    polyhedra. Each grid point is classified by the bounds on eta where they decide, else by its program (solved in
    rounds, several points of every polyhedron per block program); ``eta`` is convex in theta, so the accepted
    points are a contiguous run and everything between two accepted points is accepted."""
    polys = [p for p in polys if p.hyb.kind == "LF"]
    if not polys:
        return
    _lf_cvs(polys, kappa)
    status = []
    for p in polys:
        y = p.Y[None, :] - p.grid[:, None] * p.a1[None, :]
        st = np.zeros(p.grid.size, dtype=int)
        st[p.upper(y) <= p.lf_cv] = 1
        st[p.lower(y) > p.lf_cv] = -1
        status.append((p, y, st))
    while True:
        work = []
        for p, y, st in status:
            known = ~np.isnan(p.eta)
            st[known] = np.where(p.eta[known] <= p.lf_cv, 1, -1)
            unknown = st == 0
            st[unknown & (p.lower(y) > p.lf_cv)] = -1
            ins = np.flatnonzero(st == 1)
            if ins.size:
                st[ins.min():ins.max() + 1] = 1
                outs = np.flatnonzero(st == -1)
                left, right = outs[outs < ins.min()], outs[outs > ins.max()]
                if left.size:
                    st[: left.max()] = -1
                if right.size:
                    st[right.min() + 1:] = -1
            todo = np.flatnonzero(st == 0)
            if todo.size:
                pick = todo[np.unique(np.linspace(0, todo.size - 1, min(todo.size, 16)).round().astype(int))]
                work.append((p, pick))
        if not work:
            break
        ensure_all(work)
        for p, pick in work:
            p.duals.extend(p.lam[pick])
    for p, _, st in status:
        p.candidates = st == 1


def ensure_all(work: Sequence[tuple[Polyhedron, np.ndarray]]) -> None:
    """``eta`` at the given grid points of several polyhedra, in one block program."""
    jobs = [(p, *p.todo(idx)) for p, idx in work]
    jobs = [j for j in jobs if j[1].size]
    if not jobs:
        return
    solved = _eta_multi([y for _, _, y in jobs], [p.X for p, _, _ in jobs], [p.sd for p, _, _ in jobs])
    for (p, todo, _), (eta, lam) in zip(jobs, solved, strict=True):
        p.eta[todo], p.lam[todo] = eta, lam


def _run_checks(tasks: list[tuple[Polyhedron, _Check]], where: list[int] | None = None) -> list[bool]:
    """Drive the second-stage generators together: each round solves every pending dual-approach program in
    one block-diagonal LP. ``where``: each task's position in the scan; a task is dropped (left False) once a
    task at the same or an earlier position accepts, since the scan stops at the first accepted point."""
    out: list[bool | None] = [None] * len(tasks)
    pending: dict[int, tuple[float, np.ndarray]] = {}
    first = np.inf

    def advance(j: int, sent: tuple[float, np.ndarray] | None) -> None:
        nonlocal first
        try:
            pending[j] = next(tasks[j][1]) if sent is None else tasks[j][1].send(sent)
        except StopIteration as stop:
            out[j] = bool(stop.value)
            pending.pop(j, None)
            if out[j] and where is not None:
                first = min(first, where[j])

    for j in range(len(tasks)):
        advance(j, None)
    while pending:
        if where is not None:
            for j in [j for j in pending if where[j] >= first]:
                pending.pop(j)
            if not pending:
                break
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
            with np.errstate(divide="ignore", invalid="ignore"):
                obj = (dbar[None, :] - z @ Abar.T) / Ac[None, :]
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
            start, size = start + size, min(2 * size, 32 * CHUNK)
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
            for w, ok in zip(where, _run_checks(tasks, where), strict=True):
                acc[w] |= ok
            if acc.any():
                return int(chunk[int(np.argmax(acc))])
        return None

    lo = scan(order)
    if lo is None:
        return -1, -1, tested
    hi = scan(order[order > lo][::-1])
    return lo, (lo if hi is None else hi), tested
