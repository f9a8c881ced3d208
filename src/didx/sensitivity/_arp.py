"""Relative-magnitudes restriction ``Delta^RM(Mbar)`` with the conditional least-favorable hybrid (C-LF) test of
Andrews, Roth & Pakes, as R ``HonestDiD::computeConditionalCS_DeltaRM`` (the default of
``createSensitivityResults_relativeMagnitudes``).

``Delta^RM(Mbar)``: every post-period first difference of the trend violation is at most ``Mbar`` times the
largest pre-period first difference (in absolute value). It is the union over ``s`` (which pre-period difference
is the largest) and its sign of polyhedra ``A_s delta <= 0``; the confidence set is the union of the test
inversions over a grid of ``theta`` (HonestDiD: ``[-20 sd, 20 sd]`` of the target's estimate, 1000 points).

For each polyhedron the moments are ``Y = A beta`` (only the rows that involve post periods), the target enters
through ``A_post Gamma^{-1}`` (``Gamma`` has ``l'`` as its first row). The test at ``theta`` solves
``min eta s.t. y - X delta <= eta sd`` (HiGHS; all thetas of the grid in one block-diagonal program), rejects when
``eta`` exceeds the least-favorable critical value (the ``1 - kappa`` quantile of ``eta`` over 1000 normal
draws of R's ``set.seed(0)`` through ``mvtnorm::rmvnorm``'s eigen square root), else compares ``eta / sigma_B``
to the truncated-normal critical value with truncation from the primal (non-degenerate) or dual (bisection)
characterisation of ARP (2023). The interval needs only the outermost accepted grid points, so that second stage
(the costly one: a few small LPs per point in the dual branch) runs from each end of the grid inwards and stops at
the first accepted point; the result is identical to testing every grid point.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, sparse
from scipy.stats import truncnorm

from didx._errors import DesignError

N_LF_SIMS = 1000
GRID_POINTS = 1000
TOL_LAMBDA = 1e-6


def rm_matrix(n_pre: int, n_post: int, mbar: float, s: int, positive: bool) -> np.ndarray:
    """HonestDiD ``.create_A_RM``: rows of ``A delta <= 0`` for the polyhedron where pre-period difference ``s``
    (``s = 0``: reference minus the last pre period) with the given sign is the largest."""
    n = n_pre + n_post
    atilde = np.zeros((n, n + 1))
    rows = np.arange(n)
    atilde[rows, rows], atilde[rows, rows + 1] = -1.0, 1.0
    v = np.zeros(n + 1)
    v[n_pre + s - 1], v[n_pre + s] = -1.0, 1.0
    if not positive:
        v = -v
    a_ub = np.vstack([np.tile(v, (n_pre, 1)), np.tile(mbar * v, (n_post, 1))])
    A = np.vstack([atilde - a_ub, -atilde - a_ub])
    A = A[(A * A).sum(axis=1) > 1e-10]
    return np.delete(A, n_pre, axis=1)


def _gamma(l_vec: np.ndarray) -> np.ndarray:
    """HonestDiD ``.construct_Gamma``: ``l'`` then the unit vectors that are pivots of ``rref([l, I])``."""
    rows = [l_vec]
    for j in range(l_vec.size):
        cand = np.vstack([*rows, np.eye(l_vec.size)[j]])
        if np.linalg.matrix_rank(cand) == len(rows) + 1:
            rows.append(np.eye(l_vec.size)[j])
    return np.vstack(rows)


def _eta_block(Y: np.ndarray, X: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``min eta s.t. Y_j - X delta_j <= eta sd`` for every row ``Y_j`` at once (one block-diagonal HiGHS
    program; the blocks are separate, so each block's part is that block's optimum). Returns eta and the
    multipliers ``lambda >= 0`` (``sum lambda sd = 1``, ``X' lambda = 0``)."""
    n, m = Y.shape
    C = -np.column_stack([sd, X])
    A_ub = sparse.kron(sparse.eye(n, format="csr"), sparse.csr_matrix(C), format="csr")
    c = np.zeros(n * C.shape[1])
    c[:: C.shape[1]] = 1.0
    res = optimize.linprog(c, A_ub=A_ub, b_ub=-Y.ravel(), bounds=(None, None),  # type: ignore[call-overload]
                           method="highs")
    if res.status != 0:
        raise DesignError(
            f"honest_did(): the ARP linear program failed ({res.message}). Fix: check that sigma is well scaled "
            f"(e.g. rescale the outcome)."
        )
    eta = res.x[:: C.shape[1]]
    lam = -np.asarray(res.ineqlin.marginals).reshape(n, m)
    return eta, lam


def _r_mvnorm_draws(sigma: np.ndarray, n: int, draws: np.ndarray) -> np.ndarray:
    """``set.seed(0); mvtnorm::rmvnorm(n, sigma = sigma)`` (method eigen: the symmetric square root, filled by
    row from ``rnorm``)."""
    vals, vecs = np.linalg.eigh(sigma)
    root = (vecs * np.sqrt(np.maximum(vals, 0.0))) @ vecs.T
    z = draws[: n * sigma.shape[0]].reshape(n, sigma.shape[0])
    return np.asarray(z @ root)


def _max_program(s_T: np.ndarray, gamma: np.ndarray, sigma: np.ndarray, W: np.ndarray, c: float) -> tuple:
    """HonestDiD ``.max_program``: ``max f'x s.t. W'x = e1, x >= 0`` with ``f = s_T + Sigma gamma c / g'Sg``."""
    f = s_T + (sigma @ gamma) / float(gamma @ sigma @ gamma) * c
    beq = np.zeros(W.shape[1])
    beq[0] = 1.0
    res = optimize.linprog(-f, A_eq=W.T, b_eq=beq, bounds=(0, None), method="highs")
    if res.status != 0:
        return np.nan, None
    return -float(res.fun), res.x  # type: ignore[arg-type]


def _vlo_vup_dual(eta: float, s_T: np.ndarray, gamma: np.ndarray, sigma: np.ndarray,
                  W: np.ndarray) -> tuple[float, float]:
    """HonestDiD ``.vlo_vup_dual_fn``: truncation points by the fixed-point shortcut, then bisection."""
    tol_c = tol_eq = 1e-6
    sig_b = float(np.sqrt(gamma @ sigma @ gamma))
    b = (sigma @ gamma) / float(gamma @ sigma @ gamma)
    eps34 = np.finfo(float).eps ** 0.75

    def check(c: float) -> tuple[bool, np.ndarray | None]:
        val, x = _max_program(s_T, gamma, sigma, W, c)
        return bool(np.isfinite(val) and abs(c - val) <= tol_eq), x

    def shortcut(x: np.ndarray) -> float:
        num = float(x @ s_T)
        return (0.0 if abs(num) < eps34 else num) / (1.0 - float(x @ b))

    ok, _ = check(eta)
    if not ok:
        return eta, np.inf
    bounds = []
    for start, upper in ((max(100.0, eta + 20 * sig_b), True), (min(-100.0, eta - 20 * sig_b), False)):
        ok, x = check(start)
        if ok:
            bounds.append(np.inf if upper else -np.inf)
            continue
        dif, iters, mid = 0.0, 1, shortcut(x)  # type: ignore[arg-type]
        while True:
            ok, x = check(mid)
            if ok:
                break
            iters += 1
            if iters >= 10:
                dif = tol_c + 1
                break
            mid = shortcut(x)  # type: ignore[arg-type]
        lo, hi = (eta, mid) if upper else (mid, eta)
        while dif > tol_c and iters < 10000:
            iters += 1
            mid = (lo + hi) / 2
            inside = check(mid)[0]
            if upper:
                lo, hi = (mid, hi) if inside else (lo, mid)
            else:
                lo, hi = (lo, mid) if inside else (mid, hi)
            dif = hi - lo
        bounds.append(mid)
    return bounds[1], bounds[0]


def _accept(y: np.ndarray, X: np.ndarray, sigma: np.ndarray, eta: float, lam: np.ndarray, lf_cv: float,
            mod_size: float) -> bool:
    """The second stage of HonestDiD's ``.lp_conditional_test_fn`` (LF hybrid) for one theta."""
    k = X.shape[1]
    sd = np.sqrt(np.diag(sigma))
    B = lam > TOL_LAMBDA
    XB = X[B]
    full_rank = min(XB.shape) > 0 and np.linalg.matrix_rank(XB) == min(XB.shape)
    if not full_rank or B.sum() != k + 1:  # dual approach
        W = np.column_stack([sd, X])
        gsg = float(lam @ sigma @ lam)
        s_T = y - (sigma @ lam) * float(lam @ y) / gsg
        vlo, vup = _vlo_vup_dual(eta, s_T, lam, sigma, W)
        if abs(gsg) < np.finfo(float).eps:
            return not eta > 0
        sig_b = np.sqrt(gsg)
    else:  # primal approach
        WB_inv = np.linalg.inv(np.column_stack([sd[B], XB]))
        S = np.eye(y.size)
        gamma_b = np.column_stack([sd[~B], X[~B]]) @ WB_inv @ S[B] - S[~B]
        v_b = (WB_inv[0] @ S[B])
        s2 = float(v_b @ sigma @ v_b)
        sig_b = np.sqrt(s2)
        rho = gamma_b @ sigma @ v_b / s2
        with np.errstate(divide="ignore", invalid="ignore"):
            mm = (-gamma_b @ y) / rho + float(v_b @ y)
        vlo = float(mm[rho > 0].max()) if np.any(rho > 0) else -np.inf
        vup = float(mm[rho < 0].min()) if np.any(rho < 0) else np.inf
    zlo, zup = vlo / sig_b, min(vup, lf_cv) / sig_b
    stat = eta / sig_b
    if not (zlo <= stat <= zup):
        return True
    cval = max(0.0, float(truncnorm.ppf(1.0 - mod_size, zlo, zup)))
    return not stat > cval


def _quantile7(x: np.ndarray, p: float) -> float:
    return float(np.quantile(x, p, method="linear"))


class _Polyhedron:
    """HonestDiD ``.ARP_computeCI`` with the LF hybrid for one polyhedron ``A delta <= 0`` (the moments that
    involve post periods only, as ``postPeriodMomentsOnly = TRUE``): the first stage (``eta`` on the whole grid
    and the least-favorable critical value) at construction; the second stage per grid point on demand
    (``accepts``), since the interval needs only the outermost accepted points."""

    def __init__(self, beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, A: np.ndarray,
                 grid: np.ndarray, alpha: float, draws: np.ndarray) -> None:
        kappa = alpha / 10.0
        self.mod_size = (alpha - kappa) / (1.0 - kappa)
        rows = np.flatnonzero(np.any(A[:, n_pre:] != 0.0, axis=1))
        AG = A[:, n_pre:] @ np.linalg.inv(_gamma(l_vec))
        a_theta, self.X = AG[rows, 0], AG[rows, 1:]
        Y = (A @ beta)[rows]
        self.sig = (A @ sigma @ A.T)[np.ix_(rows, rows)]
        sd = np.sqrt(np.diag(self.sig))
        xi = _r_mvnorm_draws(self.sig, N_LF_SIMS, draws)
        eta_sims, _ = _eta_block(xi, self.X, sd)
        self.lf_cv = _quantile7(eta_sims, 1.0 - kappa)
        self.y_grid = Y[None, :] - grid[:, None] * a_theta[None, :]
        self.eta, self.lam = _eta_block(self.y_grid, self.X, sd)
        # first stage: eta above the LF critical value rejects
        self.candidate = self.eta <= self.lf_cv

    def accepts(self, i: int) -> bool:
        """Whether grid point ``i`` is accepted (both stages)."""
        if not self.candidate[i]:
            return False
        return _accept(self.y_grid[i], self.X, self.sig, float(self.eta[i]), self.lam[i], self.lf_cv,
                       self.mod_size)


def polyhedron_accepts(beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, A: np.ndarray,
                       grid: np.ndarray, alpha: float, draws: np.ndarray) -> np.ndarray:
    """HonestDiD ``.ARP_computeCI`` with the LF hybrid for one polyhedron: acceptance on the whole grid."""
    poly = _Polyhedron(beta, sigma, n_pre, l_vec, A, grid, alpha, draws)
    return np.array([poly.accepts(i) for i in range(grid.size)], dtype=bool)


def rm_interval(beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, mbar: float, alpha: float,
                draws: np.ndarray) -> tuple[float, float]:
    """HonestDiD ``computeConditionalCS_DeltaRM`` (C-LF): the union over the ``2 n_pre`` polyhedra on the default
    grid; the interval from the smallest to the largest accepted grid point (NaN when none is accepted).

    Only the endpoints matter, so the second stage runs from each end of the grid inwards and stops at the first
    grid point some polyhedron accepts; each grid point's test is unchanged, so the interval is exactly the one
    of testing every point."""
    n_post = l_vec.size
    sd_theta = float(np.sqrt(l_vec @ sigma[n_pre:, n_pre:] @ l_vec))
    grid = np.linspace(-20.0 * sd_theta, 20.0 * sd_theta, GRID_POINTS)
    polys = [_Polyhedron(beta, sigma, n_pre, l_vec, rm_matrix(n_pre, n_post, mbar, s, positive), grid, alpha,
                         draws)
             for s in range(-(n_pre - 1), 1) for positive in (True, False)]
    candidates = np.flatnonzero(np.any([p.candidate for p in polys], axis=0))

    def first_accepted(order: np.ndarray) -> int | None:
        for i in order:
            if any(p.accepts(int(i)) for p in polys):
                return int(i)
        return None

    lo = first_accepted(candidates)
    if lo is None:
        return float("nan"), float("nan")
    hi = first_accepted(candidates[candidates > lo][::-1])
    return float(grid[lo]), float(grid[lo if hi is None else hi])
