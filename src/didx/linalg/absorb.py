"""Absorbing fixed effects without dummy matrices.

Three exact or iterative strategies, chosen by :class:`FixedEffects`:

* one factor: weighted group demeaning (one pass of ``bincount``);
* two factors (e.g. unit and time) where the smaller one has at most ``EXACT_MAX_LEVELS`` levels: an exact
  concentrated solve. With ``A`` the large factor and ``B`` the small one, the residual of ``x`` on both sets of
  dummies is ``M_A x - M_A D_B g`` where ``(D_B' W M_A D_B) g = D_B' W M_A x``. The ``L_B x L_B`` matrix on the left
  is built from the sums of weights by (a, b) cell, so no dummy matrix is ever formed and the answer is exact
  for balanced and unbalanced panels alike. ``g`` is found by a Cholesky factorisation with one reference level per
  connected component of the (a, b) graph (the components are also the redundant coefficients counted by
  :meth:`FixedEffects.n_params`);
* otherwise: weighted alternating projections (method of alternating projections, as reghdfe and fixest),
  stopped when a full sweep moves no group mean by more than ``MAP_TOL`` (1e-13) times ``max |x|`` (a relative
  rule: rescaling the data does not change the precision). Plain sweeps, without acceleration: poorly connected
  designs converge slowly and raise :class:`ConvergenceError` after ``MAP_MAXITER`` sweeps.

Every threshold is relative (to the weight sums or to the data), so rescaling the weights or the outcome does not
change the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from didx._errors import ConvergenceError

EXACT_MAX_LEVELS = 5000
MAP_TOL = 1e-13
MAP_MAXITER = 100_000


def _group_mean(x: np.ndarray, codes: np.ndarray, w: np.ndarray | None, wsum: np.ndarray) -> np.ndarray:
    """Weighted mean of ``x`` by group, as a vector over groups."""
    n_levels = wsum.shape[0]
    s = np.bincount(codes, weights=x if w is None else x * w, minlength=n_levels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wsum > 0, s / wsum, 0.0)


@dataclass(frozen=True, eq=False)
class _Solver:
    """Solves ``C g = rhs`` for the concentrated two-way system (plain data, so fits pickle): ``g = 0`` at the
    reference levels, a Cholesky factor (lower) on the others; or a pseudo-inverse of ``C``."""

    n_levels: int
    free: np.ndarray
    cholesky: np.ndarray | None
    pinv: np.ndarray | None

    def __call__(self, rhs: np.ndarray) -> np.ndarray:
        if self.pinv is not None:
            return np.asarray(self.pinv @ rhs)
        g = np.zeros(self.n_levels)
        if self.free.shape[0] and self.cholesky is not None:
            g[self.free] = sla.cho_solve((self.cholesky, True), rhs[self.free], check_finite=False)
        return g


@dataclass(eq=False)
class FixedEffects:
    """A set of fixed-effect factors (integer codes 0..L-1) over the same observations."""

    factors: Sequence[np.ndarray]
    names: Sequence[str]
    weights: np.ndarray | None = None
    n_levels: list[int] = field(init=False)
    _wsum: list[np.ndarray] = field(init=False, repr=False)
    _exact2: tuple[int, int, _Solver, np.ndarray | sp.csr_matrix] | None = field(
        init=False, default=None, repr=False
    )
    _n_components: int | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.factors = [np.asarray(f, dtype=np.int64) for f in self.factors]
        self.names = list(self.names)
        self.n_levels = [int(f.max()) + 1 if f.size else 0 for f in self.factors]
        w = self.weights
        self._wsum = [
            np.bincount(f, weights=w, minlength=L).astype(np.float64)
            for f, L in zip(self.factors, self.n_levels, strict=True)
        ]
        if len(self.factors) == 2 and min(self.n_levels) <= EXACT_MAX_LEVELS:
            self._setup_exact_two()

    def __getstate__(self) -> dict[str, object]:
        # the two-factor solver (a cell table and its factorisation) is rebuilt after unpickling, not stored
        return {**self.__dict__, "_exact2": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        if len(self.factors) == 2 and min(self.n_levels) <= EXACT_MAX_LEVELS:
            self._setup_exact_two()

    @property
    def method(self) -> str:
        if len(self.factors) == 1:
            return "exact (group demeaning)"
        if self._exact2 is not None:
            return "exact (concentrated solve)"
        return "alternating projections"

    def _setup_exact_two(self) -> None:
        ia, ib = (0, 1) if self.n_levels[0] >= self.n_levels[1] else (1, 0)
        a, b = self.factors[ia], self.factors[ib]
        La, Lb = self.n_levels[ia], self.n_levels[ib]
        wa = self._wsum[ia]
        inv_wa = np.where(wa > 0, 1.0 / np.where(wa > 0, wa, 1.0), 0.0)
        P: np.ndarray | sp.csr_matrix
        if La * Lb <= 2 * a.shape[0] + 1_000_000:
            # dense cell table of weight sums by (a, b), e.g. a balanced unit x period panel: one bincount
            P = np.bincount(a * Lb + b, weights=self.weights, minlength=La * Lb).reshape(La, Lb)
            PtDP = (P * inv_wa[:, None]).T @ P
        else:
            w = np.ones(a.shape[0]) if self.weights is None else self.weights
            P = sp.csr_matrix((w, (a, b)), shape=(La, Lb))  # sums of weights by (a, b)
            P.sum_duplicates()
            PtDP = (P.T @ sp.diags(inv_wa) @ P).toarray()
        C = np.diag(self._wsum[ib]) - PtDP
        C = 0.5 * (C + C.T)
        # C is singular along one direction per connected component of the graph of (a, b) cells with positive
        # weight (g constant on a component is absorbed by A). Fixing g = 0 at one reference level of B per
        # component leaves a positive definite system: a Cholesky factorisation (Lb^3 / 3 flops, about 1 s at
        # Lb = 5000, where an eigendecomposition takes tens of seconds).
        # Two levels of B are linked when some level of A has weight in both, i.e. PtDP[i, j] > 0 (a sum of
        # non-negative products: exactly 0 when they share no level of A). Components of the (a, b) graph are the
        # components of B under these links, plus the levels of A without weight (isolated).
        link = sp.csr_matrix((PtDP > 0).astype(np.int8))
        n_comp_b, labels_b = connected_components(link, directed=False)
        n_comp = n_comp_b + int(np.count_nonzero(wa <= 0))
        _, first = np.unique(labels_b, return_index=True)
        free = np.ones(Lb, dtype=bool)
        free[first] = False
        idx = np.flatnonzero(free)
        solver: _Solver
        try:
            factor = sla.cho_factor(C[np.ix_(idx, idx)], lower=True, check_finite=False)
            solver = _Solver(Lb, idx, factor[0], None)
        except np.linalg.LinAlgError:  # numerically semi-definite: a pseudo-inverse, relative null threshold
            vals, vecs = np.linalg.eigh(C)
            tol = float(self._wsum[ib].max()) * Lb * 1e-12
            inv = np.where(vals > tol, 1.0 / np.where(vals > tol, vals, 1.0), 0.0)
            solver = _Solver(Lb, idx, None, (vecs * inv) @ vecs.T)
        self._n_components = int(n_comp)
        self._exact2 = (ia, ib, solver, P)

    def demean(self, X: np.ndarray) -> np.ndarray:
        """Residuals of each column of ``X`` (n or n x k) on all fixed effects (weighted)."""
        X = np.asarray(X, dtype=np.float64)
        one_d = X.ndim == 1
        M = X.reshape(X.shape[0], -1)
        out = np.empty_like(M)
        for j in range(M.shape[1]):
            out[:, j] = self._demean_column(M[:, j])
        return out[:, 0] if one_d else out

    def _demean_column(self, x: np.ndarray) -> np.ndarray:
        w = self.weights
        if len(self.factors) == 1:
            f = self.factors[0]
            return x - _group_mean(x, f, w, self._wsum[0])[f]
        if self._exact2 is not None:
            ia, ib, solver, P = self._exact2
            a, b = self.factors[ia], self.factors[ib]
            # two n-length buffers in all (fresh pages are a large part of the cost at 10M rows)
            xa = np.take(_group_mean(x, a, w, self._wsum[ia]), a)
            np.subtract(x, xa, out=xa)
            rhs = np.bincount(b, weights=xa if w is None else xa * w, minlength=self.n_levels[ib])
            g = solver(rhs)
            wa = self._wsum[ia]
            pg = np.where(wa > 0, (P @ g) / np.where(wa > 0, wa, 1.0), 0.0)
            tmp = np.take(g, b)
            xa -= tmp
            np.take(pg, a, out=tmp)
            xa += tmp
            return xa
        return self._map(x)

    def _map(self, x: np.ndarray) -> np.ndarray:
        w = self.weights
        r = x.copy()
        scale = float(np.abs(x).max()) if x.size else 0.0  # the stopping rule is relative: no absolute floor
        if scale == 0.0:
            return r
        for _ in range(MAP_MAXITER):
            change = 0.0
            for f, ws in zip(self.factors, self._wsum, strict=True):
                m = _group_mean(r, f, w, ws)
                change = max(change, float(np.abs(m).max()))
                r -= m[f]
            if change <= MAP_TOL * scale:
                return r
        raise ConvergenceError(
            f"Absorbing the fixed effects {list(self.names)} did not converge in {MAP_MAXITER} alternating "
            f"projections. Fix: check for nearly disconnected fixed effects, or reduce their number."
        )

    def n_params(self, exact: bool = True) -> int:
        """Number of identified fixed-effect coefficients (levels minus redundant references).

        ``exact``: for two factors, one redundant level per connected component of the bipartite graph of levels
        (fixest's ``fixef.force_exact = TRUE``); otherwise, and always for three or more factors, one per factor
        after the first, ``sum(levels) - (factors - 1)`` (fixest's default). The two agree on connected designs.
        """
        total = sum(self.n_levels)
        if len(self.factors) == 1:
            return total
        if len(self.factors) == 2 and exact:
            if self._n_components is not None:
                return total - self._n_components
            La, Lb = self.n_levels
            a, b = self.factors
            G = sp.csr_matrix((np.ones(a.shape[0]), (a, b + La)), shape=(La + Lb, La + Lb))
            n_comp, _ = connected_components(G, directed=False)
            return total - n_comp
        return total - (len(self.factors) - 1)

    def singletons(self) -> np.ndarray:
        """Boolean mask of observations alone in some fixed-effect level."""
        mask = np.zeros(self.factors[0].shape[0], dtype=bool)
        for f, L in zip(self.factors, self.n_levels, strict=True):
            mask |= (np.bincount(f, minlength=L) == 1)[f]
        return mask

    def nested_in(self, cluster: np.ndarray) -> list[bool]:
        """For each factor: is every level contained in a single cluster?"""
        out = []
        for f, L in zip(self.factors, self.n_levels, strict=True):
            if f is cluster or (f.shape == cluster.shape and np.shares_memory(f, cluster) and
                                np.array_equal(f, cluster)):
                out.append(True)  # the factor is the cluster variable itself
                continue
            first = np.full(L, -1, dtype=np.int64)
            first[f] = cluster
            head = min(f.shape[0], 100_000)  # most non-nested factors show it in the first rows
            if not np.array_equal(first[f[:head]], cluster[:head]):
                out.append(False)
                continue
            out.append(bool(np.array_equal(first[f], cluster)))
        return out
