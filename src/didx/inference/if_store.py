"""Influence functions of ATT(g,t) stored as cohort-level coefficients on short per-unit features.

Every influence function of the Callaway-Sant'Anna estimator and of its aggregations is, for a unit ``i`` of
cohort ``g``, ``psi_i = D_g' z_i``: a cohort-specific coefficient vector times a short feature vector ``z_i``.

- Without covariates ``z_i = (1, w_i, w_i y'_i1, ..., w_i y'_iT)`` (balanced panel) or, for repeated cross
  sections and unbalanced panels, ``(1, w_i, w_i o_i1, .., w_i o_iT, w_i o_i1 y'_i1, .., w_i o_iT y'_iT)`` with
  ``o_it`` the indicator that unit i is observed at t and ``y'`` the outcome centred on its cohort x period
  mean (for numerical accuracy). The ATT(g,t) coefficients follow from cohort x period sums.
- With covariates ``z_i = (1, w_i, psi_i1, ..., psi_iK)``: the per-cell influence functions themselves.

So the covariance of any set of estimands with coefficients ``D = coef @ A`` plus a weight-estimation term ``U``
(on the ``w_i`` feature) is ``sum_g D_g' M_g D_g / n^2`` with ``M_g = sum_{i in g} z_i z_i'`` (an L x L matrix
per cohort), or for clusters ``sum_c psi_c psi_c' / n^2`` with ``psi_c = sum_g D_g' (sum_{i in c, g} z_i)``,
from the sums over the (cluster, cohort) pairs present: per-cohort Grams of those sums, plus ``psi_c`` rows only
for the clusters spanning several cohorts. No n x K matrix is formed (see ``shared/design/SCALE.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from didx._errors import DataError
from didx.inference.contract import cluster_count_check

W_COL = 1
"""Index of the ``w_i`` feature (the weight-estimation terms of the aggregations load on it)."""


@dataclass(eq=False)
class IFStore:
    """Per-unit features (units grouped by cohort), cell coefficients and the sums that give covariances.

    Attributes
    ----------
    Z : (n, L) features, rows grouped by cohort (``block``).
    coef : (G_all, L, K) coefficients of the K cell influence functions by cohort.
    n : number of units (the ``n`` of ``did``'s ``V = IF'IF / n``).
    cluster : cluster code per unit (coarser than units) or None.
    """

    Z: np.ndarray
    block: np.ndarray
    coef: np.ndarray
    n: int
    cluster: np.ndarray | None = None
    n_clusters: int = 0
    _gram: np.ndarray | None = field(default=None, repr=False)
    _pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_cohorts(self) -> int:
        return int(self.block.shape[0] - 1)

    @property
    def n_cells(self) -> int:
        return int(self.coef.shape[2])

    def gram(self) -> np.ndarray:
        """``M_g = sum_{i in g} z_i z_i'`` per cohort, (G_all, L, L)."""
        if self._gram is None:
            G, L = self.n_cohorts, self.Z.shape[1]
            M = np.zeros((G, L, L))
            for g in range(G):
                Zg = self.Z[self.block[g]:self.block[g + 1]]
                if Zg.shape[0] == 0:
                    continue
                # only the features that are not identically zero in this cohort (cells not involving it)
                nz = np.flatnonzero(np.any(Zg != 0, axis=0))
                Zs = np.ascontiguousarray(Zg if nz.size == L else Zg[:, nz])
                M[g][np.ix_(nz, nz)] = Zs.T @ Zs
            self._gram = M
        return self._gram

    def cluster_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sums of ``z`` over the (cluster, cohort) pairs present, without a dense clusters x cohorts array.

        Returns the pairs' cluster codes and cohorts (sorted by cluster, then cohort), their (P, L) feature sums
        and the per-cohort Gram ``sum_{pairs of g} zc zc'`` (G_all, L, L). P is at most the number of units."""
        if self._pairs is None:
            if self.cluster is None:
                raise ValueError("no clusters")
            G, L = self.n_cohorts, self.Z.shape[1]
            cohort = np.repeat(np.arange(G), np.diff(self.block))
            keys, inv = np.unique(self.cluster.astype(np.int64) * G + cohort, return_inverse=True)
            zp = np.empty((keys.shape[0], L))
            for j in range(L):
                zp[:, j] = np.bincount(inv, weights=self.Z[:, j], minlength=keys.shape[0])
            p_cohort = keys % G
            M = np.zeros((G, L, L))
            for g in range(G):
                Zg = zp[p_cohort == g]
                M[g] = Zg.T @ Zg
            self._pairs = (keys // G, p_cohort, zp, M)
        return self._pairs

    def reclustered(self, cluster: np.ndarray | None, n_clusters: int) -> IFStore:
        """The same influence functions with other cluster codes (one per unit, 0..n_clusters-1; None: by unit),
        sharing the features, coefficients and per-cohort Gram (no copy)."""
        return dataclasses.replace(self, cluster=cluster, n_clusters=n_clusters, _gram=self._gram, _pairs=None)

    def influence(self, A: np.ndarray, U: np.ndarray | None = None) -> np.ndarray:
        """The dense (n, m) influence functions of the estimands ``(A, U)`` (units in the store's order). Built on
        request only (``influence_functions()``): covariances and draws never form it."""
        D = self.coefficients(A, U)
        out = np.empty((self.Z.shape[0], D.shape[2]))
        for g in range(self.n_cohorts):
            lo, hi = self.block[g], self.block[g + 1]
            out[lo:hi] = self.Z[lo:hi] @ D[g]
        return out

    def coefficients(self, A: np.ndarray, U: np.ndarray | None = None) -> np.ndarray:
        """(G_all, L, m) coefficients of ``m`` estimands ``psi = Psi_cells @ A + U[g] * w_i``."""
        D = np.einsum("glk,km->glm", self.coef, A)
        if U is not None:
            D[:, W_COL, :] += U
        return D

    def vcov(self, A: np.ndarray, U: np.ndarray | None = None, clustered: bool = False) -> np.ndarray:
        """Covariance of the estimands: ``sum_i psi_i psi_i' / n^2`` (or by cluster sums of ``psi``)."""
        D = self.coefficients(A, U)
        m = D.shape[2]
        if clustered and self.cluster is not None:
            # sum_c psi_c psi_c' with psi_c = sum_g D_g' zc[c, g]: the per-cohort Gram of the pair sums, plus the
            # cross-cohort products of the clusters that span several cohorts (only those get a psi row)
            p_cluster, p_cohort, zp, Mc = self.cluster_pairs()
            S = sum((D[g].T @ Mc[g] @ D[g] for g in range(self.n_cohorts)), np.zeros((m, m)))
            n_pairs = np.bincount(p_cluster)
            mixed = n_pairs[p_cluster] > 1
            if mixed.any():
                idx = np.flatnonzero(mixed)
                psi_p = np.empty((idx.shape[0], m))
                for g in range(self.n_cohorts):
                    sel = p_cohort[idx] == g
                    if sel.any():
                        psi_p[sel] = zp[idx[sel]] @ D[g]
                starts = np.flatnonzero(np.r_[True, p_cluster[idx][1:] != p_cluster[idx][:-1]])
                psi_c = np.add.reduceat(psi_p, starts, axis=0)
                S = S + psi_c.T @ psi_c - psi_p.T @ psi_p
        else:
            M = self.gram()
            S = sum((D[g].T @ M[g] @ D[g] for g in range(self.n_cohorts)), np.zeros((D.shape[2], D.shape[2])))
        S = 0.5 * (S + S.T)
        return np.asarray(S / float(self.n) ** 2)

    def draws(self, basis: np.ndarray, scale: float, A: np.ndarray, U: np.ndarray | None = None) -> np.ndarray:
        """Bootstrap draws (B, m) of the estimands from block sums ``basis`` (B, G_all, L)."""
        D = self.coefficients(A, U)
        return np.asarray(np.einsum("bgl,glm->bm", basis, D) * scale)


def clusters_of_units(func: str, name: str, row_codes: np.ndarray, unit_of_row: np.ndarray | None,
                      n_units: int) -> tuple[np.ndarray, int]:
    """Cluster codes per unit (0..G-1) from codes per row, and G.

    ``unit_of_row`` is the unit (0..n_units-1) of each row, or None when every row is its own unit (repeated cross
    sections). Clusters must nest units: a code that varies within a unit is a :class:`DataError`; fewer than two
    clusters too (:func:`~didx.inference.contract.cluster_count_check`). O(rows), no Python loop.
    """
    rc = np.asarray(row_codes, dtype=np.int64)
    if unit_of_row is None:
        codes = rc
    else:
        codes = np.full(n_units, -1, dtype=np.int64)
        codes[unit_of_row] = rc
        if np.any(codes[unit_of_row] != rc):
            raise DataError(
                f"{func}: the cluster column {name!r} varies within units. Clusters must nest units (e.g. states "
                f"containing counties), because the influence functions are per unit. Fix: cluster on a variable "
                f"that is constant within each unit."
            )
    present = np.bincount(codes[codes >= 0]) > 0 if codes.size else np.zeros(0, dtype=bool)
    G = int(present.sum())
    cluster_count_check(func, name, G)
    if not present.all():
        codes = np.where(codes >= 0, (np.cumsum(present) - 1)[np.clip(codes, 0, None)], -1)
    return codes, G


def summed_square(inf: np.ndarray, cluster: np.ndarray | None = None, n_clusters: int = 0) -> float:
    """``sum_c (sum_{i in c} (inf_i - mean inf))^2`` for one influence function (``sum_i (inf_i - mean)^2``
    without clusters): the numerator of the analytic (cluster-robust) variance of a 2x2 estimate."""
    c = np.asarray(inf, dtype=np.float64) - float(np.mean(inf))
    if cluster is None:
        return float(c @ c)
    sums = np.bincount(cluster, weights=c, minlength=n_clusters)
    return float(sums @ sums)
