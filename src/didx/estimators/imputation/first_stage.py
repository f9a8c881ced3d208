"""The untreated-only first stage shared by the imputation (BJS) and two-stage (Gardner) estimators.

Both estimators fit ``Y_it(0) = X_it' beta + sum_f delta_f[level_f(i, t)]`` by weighted least squares on the
untreated observations only, and both need more than the absorbed slopes: the *levels* of the fixed effects (to
predict ``Y(0)`` for treated observations) and solves of the first-stage normal equations with other right-hand
sides (BJS's ``v_it`` weights, Gardner's GMM correction). With ``Z0 = [X0, D0]`` (``D0`` the fixed-effect
incidence on untreated rows, never formed), everything reduces to one operation,

    solve  (Z0' W0 Z0) b = a,

done by block elimination: ``S = D0' W0 D0`` (the fixed-effect block) is solved

* for one factor: exactly, ``delta = r / (sum of weights by level)``;
* for two or more factors whose levels, all but the largest factor's, total at most ``EXACT_MAX_LEVELS``:
  exactly, by the concentrated method of :mod:`didx.linalg.absorb` generalised to several small factors
  (``C g = r_B - P' diag(1/w_A) r_A`` with ``C = D_B'W D_B - P' diag(1/w_A) P`` built from cell sums of
  weights, pseudo-inverted by an eigendecomposition); e.g. unit + period + region x period;
* otherwise: by Jacobi-preconditioned conjugate gradients on the sparse ``S`` (levels x levels, never n x levels);

and the covariates by their Schur complement ``X0'W0X0 - R' S^- R`` with ``R = D0' W0 X0``. Any generalised
inverse gives the same predictions for identified observations; :meth:`FirstStage.identified` says which rows
those are (with the exact solver: the row's design orthogonal to the null space of the normal equations).

:meth:`FirstStage.project` is the solve both variances need (right-hand sides: the per-level sums of BJS's
treatment weights or of did2s's second-stage indicators); :meth:`FirstStage.untreated_projection` hands its
result, with the untreated rows' ``w e``, to the shared variance engine (:mod:`didx.inference.imputation`), which
is all a result keeps of the first stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

from didx._errors import ConvergenceError, DesignError
from didx.inference.imputation import UntreatedProjection, compact

EXACT_MAX_LEVELS = 5000
DENSE_CELLS_EXTRA = 1_000_000  # dense (a, b) cell table when La * Lb <= 2 n + this, else sparse
CG_RTOL = 1e-13
CG_MAXITER = 20_000


def level_sums(codes: np.ndarray, n_levels: int, rows: np.ndarray | None, cols: np.ndarray | None,
               values: np.ndarray, n_cols: int) -> np.ndarray:
    """Dense ``(n_levels, n_cols)`` sums of ``values`` by (level, column).

    ``rows`` selects the observations the entries belong to (None = all, in order) and ``cols`` gives each
    entry's column (None = a single column).
    """
    c = codes if rows is None else codes[rows]
    if cols is None or n_cols == 1:
        return np.bincount(c, weights=values, minlength=n_levels).reshape(n_levels, 1)
    if n_levels * n_cols <= 50_000_000:
        key = c * n_cols + cols
        return np.bincount(key, weights=values, minlength=n_levels * n_cols).reshape(n_levels, n_cols)
    M = sp.coo_matrix((values, (c, cols)), shape=(n_levels, n_cols)).tocsr()
    return np.asarray(M.toarray())


@dataclass(eq=False)
class FirstStage:
    """Weighted least squares of ``y`` on covariates and fixed effects, on the rows where ``fit_rows`` is True.

    ``factors`` are integer codes (0..L-1) for *all* rows, so that levels estimated on the untreated rows can be
    used to predict treated ones.
    """

    factors: Sequence[np.ndarray]
    names: Sequence[str]
    X: np.ndarray
    fit_rows: np.ndarray
    weights: np.ndarray | None = None
    func: str = "first stage"
    covariate_names: tuple[str, ...] = ()
    n_levels: list[int] = field(init=False)
    beta: np.ndarray = field(init=False)
    deltas: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.factors = [np.asarray(f, dtype=np.int64) for f in self.factors]
        self.names = list(self.names)
        self.X = np.asarray(self.X, dtype=np.float64).reshape(self.fit_rows.shape[0], -1)
        self.n_levels = [int(f.max()) + 1 if f.size else 0 for f in self.factors]
        self._rows0 = np.flatnonzero(self.fit_rows)
        self._w0 = None if self.weights is None else self.weights[self._rows0]
        self._codes0 = [f[self._rows0] for f in self.factors]
        w0 = np.ones(self._rows0.shape[0]) if self._w0 is None else self._w0
        self._wsum = [np.bincount(c, weights=w0, minlength=L).astype(np.float64)
                      for c, L in zip(self._codes0, self.n_levels, strict=True)]
        self._setup_solver()
        self._setup_covariates()

    # ------------------------------------------------------------------ fixed-effect block
    @property
    def method(self) -> str:
        if len(self.factors) == 1:
            return "exact (group sums)"
        if self._exact is not None:
            return "exact (concentrated solve)"
        return "conjugate gradients on the sparse normal equations"

    def _setup_solver(self) -> None:
        """Concentrate the largest factor A out exactly; the other factors B (all their levels stacked, at most
        ``EXACT_MAX_LEVELS``) solve ``C g = r_B - P' diag(1/w_A) r_A`` with the dense
        ``C = D_B'W D_B - P' diag(1/w_A) P`` and ``P = D_A' W D_B``, pseudo-inverted by an eigendecomposition
        whose null space also decides which predictions are identified."""
        self._exact: tuple[int, list[int], list[int], np.ndarray, np.ndarray | sp.csr_matrix, np.ndarray] | None = None
        self._S: sp.csr_matrix | None = None
        F = len(self.factors)
        if F < 2:
            return
        ia = int(np.argmax(self.n_levels))
        others = [j for j in range(F) if j != ia]
        sizes = [self.n_levels[j] for j in others]
        LB = int(sum(sizes))
        if LB <= EXACT_MAX_LEVELS:
            offs = [int(o) for o in np.concatenate([[0], np.cumsum(sizes)])[:-1]]
            a = self._codes0[ia]
            La = self.n_levels[ia]
            n0 = a.shape[0]
            w0 = self._w0
            wa = self._wsum[ia]
            inv_wa = np.where(wa > 0, 1.0 / np.where(wa > 0, wa, 1.0), 0.0)
            DBB = np.zeros((LB, LB))
            for p_, (j, oj) in enumerate(zip(others, offs, strict=True)):
                Lj = self.n_levels[j]
                DBB[oj:oj + Lj, oj:oj + Lj] = np.diag(self._wsum[j])
                for k, ok in zip(others[p_ + 1:], offs[p_ + 1:], strict=True):
                    Lk = self.n_levels[k]
                    blk = np.bincount(self._codes0[j] * Lk + self._codes0[k], weights=w0,
                                      minlength=Lj * Lk).reshape(Lj, Lk)
                    DBB[oj:oj + Lj, ok:ok + Lk] = blk
                    DBB[ok:ok + Lk, oj:oj + Lj] = blk.T
            P: np.ndarray | sp.csr_matrix
            if La * LB <= 2 * n0 + DENSE_CELLS_EXTRA:
                # dense table of weight sums by (a, b) cell (e.g. unit x period): one bincount per B factor
                P = np.empty((La, LB))
                for j, oj in zip(others, offs, strict=True):
                    Lj = self.n_levels[j]
                    P[:, oj:oj + Lj] = np.bincount(a * Lj + self._codes0[j], weights=w0,
                                                   minlength=La * Lj).reshape(La, Lj)
                PtDP = np.zeros((LB, LB))
                step = max(1, 4_000_000 // max(LB, 1))  # row blocks: no La x LB temporary
                for i in range(0, La, step):
                    part = P[i:i + step]
                    PtDP += (part * inv_wa[i:i + step, None]).T @ part
            else:
                w = np.ones(n0) if w0 is None else w0
                cols = np.concatenate([self._codes0[j] + oj for j, oj in zip(others, offs, strict=True)])
                P = sp.csr_matrix((np.tile(w, len(others)), (np.tile(a, len(others)), cols)), shape=(La, LB))
                P.sum_duplicates()
                PtDP = (P.T @ sp.diags(inv_wa) @ P).toarray()
            C = DBB - PtDP
            C = 0.5 * (C + C.T)
            vals, vecs = np.linalg.eigh(C)
            tol = max(float(vals.max()), 1.0) * LB * 1e-12
            inv = np.where(vals > tol, 1.0 / np.where(vals > tol, vals, 1.0), 0.0)
            null = vecs[:, vals <= tol]
            self._exact = (ia, others, offs, (vecs * inv) @ vecs.T, P, null)
            return
        offsets = np.concatenate([[0], np.cumsum(self.n_levels)])
        n0 = self._rows0.shape[0]
        cols = np.concatenate([c + offsets[j] for j, c in enumerate(self._codes0)])
        rows = np.tile(np.arange(n0), F)
        w = np.ones(n0) if self._w0 is None else self._w0
        D = sp.csr_matrix((np.ones(n0 * F), (rows, cols)), shape=(n0, int(offsets[-1])))
        self._S = (D.T @ sp.diags(w) @ D).tocsr()
        self._offsets = offsets

    def solve_fe(self, r: list[np.ndarray]) -> list[np.ndarray]:
        """A solution ``delta`` of ``S delta = r`` (``r``: one ``(L_f, K)`` block per factor)."""
        F = len(self.factors)
        if F == 0:
            return []
        if F == 1:
            ws = self._wsum[0][:, None]
            return [np.where(ws > 0, r[0] / np.where(ws > 0, ws, 1.0), 0.0)]
        if self._exact is not None:
            ia, others, offs, C_pinv, P, _ = self._exact
            wa = self._wsum[ia]
            inv_wa = np.where(wa > 0, 1.0 / np.where(wa > 0, wa, 1.0), 0.0)[:, None]
            rA = r[ia]
            rB = r[others[0]] if len(others) == 1 else np.vstack([r[j] for j in others])
            buf = rA * inv_wa  # (L_A, K): the only large temporary
            g = C_pinv @ (rB - np.asarray(P.T @ buf))
            if isinstance(P, np.ndarray):
                np.matmul(P, g, out=buf)
            else:
                buf[...] = P @ g
            np.subtract(rA, buf, out=buf)
            buf *= inv_wa
            out: list[np.ndarray] = [np.empty(0)] * F
            out[ia] = buf
            for j, oj in zip(others, offs, strict=True):
                out[j] = g[oj:oj + self.n_levels[j]]
            return out
        return self._solve_cg(r)

    def _solve_cg(self, r: list[np.ndarray]) -> list[np.ndarray]:
        assert self._S is not None
        S = self._S
        diag = S.diagonal()
        active = np.flatnonzero(diag > 0)
        Sa = S[active][:, active]
        M = sp.diags(1.0 / diag[active])
        rhs = np.vstack(r)
        sol = np.zeros_like(rhs)
        for k in range(rhs.shape[1]):
            b = rhs[active, k]
            if not np.any(b):
                continue
            x, info = spla.cg(Sa, b, rtol=CG_RTOL, atol=0.0, maxiter=CG_MAXITER, M=M)
            if info != 0:
                resid = float(np.linalg.norm(Sa @ x - b)) / max(float(np.linalg.norm(b)), 1e-300)
                if resid > 1e-8:
                    raise ConvergenceError(
                        f"{self.func}: solving the fixed-effect normal equations ({', '.join(self.names)}) did not "
                        f"converge (relative residual {resid:.2e}). Fix: check for nearly disconnected fixed "
                        f"effects, or use fewer fixed-effect factors."
                    )
            sol[active, k] = x
        return [sol[self._offsets[j]:self._offsets[j + 1]] for j in range(len(self.factors))]

    # ------------------------------------------------------------------ covariates (Schur complement)
    def _setup_covariates(self) -> None:
        p = self.X.shape[1]
        self._H_inv = np.zeros((0, 0))
        self._Qx: list[np.ndarray] = [np.zeros((L, 0)) for L in self.n_levels]
        self._R: list[np.ndarray] = [np.zeros((L, 0)) for L in self.n_levels]
        if p == 0:
            return
        X0 = self.X[self._rows0]
        wX0 = X0 if self._w0 is None else X0 * self._w0[:, None]
        self._R = [np.column_stack([np.bincount(c, weights=wX0[:, j], minlength=L) for j in range(p)])
                   for c, L in zip(self._codes0, self.n_levels, strict=True)]
        self._Qx = self.solve_fe(self._R)
        H = X0.T @ wX0 - sum((R.T @ Q for R, Q in zip(self._R, self._Qx, strict=True)), np.zeros((p, p)))
        H = 0.5 * (H + H.T)
        scale = np.sqrt(np.clip(np.diag(H), 0.0, None))
        bad = scale <= 1e-10 * np.sqrt(np.clip(np.einsum("ij,ij->j", X0, wX0), 1e-300, None))
        if bad.any():
            raise DesignError(
                f"{self.func}: the first-stage covariate(s) "
                f"{', '.join(repr(n) for n in np.asarray(self.covariate_names)[bad])} are collinear with the fixed "
                f"effects among the untreated observations. Fix: drop them from the covariates."
            )
        self._H_inv = np.linalg.inv(H)

    def solve(self, a_x: np.ndarray, a_d: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``b = (Z0' W0 Z0)^- a`` with ``a = [a_x; a_d]`` (``a_x``: (p, K); ``a_d``: (L_f, K) per factor)."""
        delta_a = self.solve_fe(a_d)
        p = self.X.shape[1]
        K = a_d[0].shape[1] if a_d else a_x.shape[1]
        if p == 0:
            return np.zeros((0, K)), delta_a
        rhs = a_x - sum((Q.T @ a for Q, a in zip(self._Qx, a_d, strict=True)), np.zeros((p, K)))
        beta = self._H_inv @ rhs
        deltas = [d - Q @ beta for d, Q in zip(delta_a, self._Qx, strict=True)]
        return beta, deltas

    def predict(self, beta: np.ndarray, deltas: list[np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """``X beta + sum_f delta_f[level]`` for ``rows`` (all rows if None); (n, K) or (n,) for vectors."""
        X = self.X if rows is None else self.X[rows]
        out = X @ beta if X.shape[1] else np.zeros((X.shape[0], *beta.shape[1:]))
        for f, d in zip(self.factors, deltas, strict=True):
            out += d[f if rows is None else f[rows]]
        return out

    def fit(self, y: np.ndarray) -> np.ndarray:
        """Fit the first stage to ``y`` (all rows; only ``fit_rows`` are used) and return ``y - prediction``
        for every row."""
        y0 = y[self._rows0]
        wy0 = y0 if self._w0 is None else y0 * self._w0
        a_x = (self.X[self._rows0].T @ wy0).reshape(-1, 1)
        a_d = [np.bincount(c, weights=wy0, minlength=L).reshape(L, 1)
               for c, L in zip(self._codes0, self.n_levels, strict=True)]
        beta, deltas = self.solve(a_x, a_d)
        self.beta = beta[:, 0]
        self.deltas = [d[:, 0] for d in deltas]
        return y - self.predict(self.beta, self.deltas)

    def project(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_cols: int
                ) -> tuple[np.ndarray, list[np.ndarray]]:
        """``b = (Z0' W0 Z0)^- Z_r' V``: the first-stage solve whose right-hand sides are the per-level (and
        covariate) sums of ``values`` on ``rows`` by column ``cols`` (BJS's treatment weights, the two-stage
        indicators times their weights). ``-W0 Z0 b`` is how the untreated observations enter each estimate."""
        p = self.X.shape[1]
        a_x = np.zeros((p, n_cols))
        for j in range(p):
            a_x[j] = np.bincount(cols, weights=values * self.X[rows, j], minlength=n_cols)
        a_d = [level_sums(f, L, rows, cols, values, n_cols) for f, L in zip(self.factors, self.n_levels, strict=True)]
        return self.solve(a_x, a_d)

    def untreated_projection(self, resid: np.ndarray, beta: np.ndarray, deltas: list[np.ndarray]
                             ) -> UntreatedProjection:
        """What the variance keeps of the first stage: ``w e``, the covariates and the fixed-effect codes on the
        untreated rows, and the solved projection ``b``."""
        e0 = resid[self._rows0]
        we = e0 if self._w0 is None else e0 * self._w0
        codes = tuple(compact(c, L) for c, L in zip(self._codes0, self.n_levels, strict=True))
        return UntreatedProjection(fit_rows=self.fit_rows, we=we, X=self.X[self._rows0], codes=codes,
                                   beta=beta, deltas=tuple(deltas))

    # ------------------------------------------------------------------ identification
    def identified(self) -> np.ndarray:
        """Rows whose fixed-effect prediction is identified by the untreated rows.

        Exact solver: a row's design ``z`` must be orthogonal to the null space of ``S`` (each null vector is
        ``(n_A, n_B)`` with ``n_B`` in the null space of ``C`` and ``n_A = -diag(1/w_A) P n_B``); tested on three
        fixed random combinations of the null vectors. Otherwise: every level seen and all of a row's levels in
        one connected component of the untreated graph.
        """
        ok = np.ones(self.fit_rows.shape[0], dtype=bool)
        for f, ws in zip(self.factors, self._wsum, strict=True):
            ok &= (ws > 0)[f]
        F = len(self.factors)
        if F < 2:
            return ok
        if self._exact is not None:
            ia, others, offs, _, P, null = self._exact
            # null directions that only flag empty B levels are covered by the presence test
            sizes = [self.n_levels[j] for j in others]
            present_b = np.concatenate([self._wsum[j] > 0 for j in others]) if sizes else np.zeros(0, bool)
            null = null[:, np.abs(null[present_b]).max(axis=0) > 1e-9] if null.size and present_b.any() else null
            if null.shape[1] == 0 or (F == 2 and null.shape[1] == 1):
                return ok  # one component (the usual shift between the two factors): presence suffices
            rng = np.random.default_rng(20240101)
            nb = null @ rng.standard_normal((null.shape[1], 3))
            wa = self._wsum[ia]
            inv_wa = np.where(wa > 0, 1.0 / np.where(wa > 0, wa, 1.0), 0.0)[:, None]
            na = -np.asarray(P @ nb) * inv_wa
            check = np.flatnonzero(ok & ~self.fit_rows)
            val = na[self.factors[ia][check]]
            for j, oj in zip(others, offs, strict=True):
                val += nb[oj + self.factors[j][check]]
            scale = float(np.abs(nb).max())
            bad = np.abs(val).max(axis=1) > 1e-7 * scale
            ok[check[bad]] = False
            return ok
        offsets = np.concatenate([[0], np.cumsum(self.n_levels)])
        total = int(offsets[-1])
        c0 = [c + offsets[j] for j, c in enumerate(self._codes0)]
        src = np.concatenate([c0[0]] * (len(c0) - 1))
        dst = np.concatenate(c0[1:])
        G = sp.coo_matrix((np.ones(src.shape[0]), (src, dst)), shape=(total, total))
        _, comp = connected_components(G, directed=False)
        first = comp[self.factors[0] + offsets[0]]
        for j in range(1, len(self.factors)):
            ok &= comp[self.factors[j] + offsets[j]] == first
        return ok
