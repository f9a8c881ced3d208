"""The variance engine of the imputation family: BJS's conservative variance and Gardner's two-stage GMM variance.

Both estimators are linear in the outcome after an untreated-only first stage
``Y_it(0) = X_it' beta + sum_f delta_f[level_f(it)]`` (:mod:`didx.estimators.imputation.first_stage`). Each
estimate (column ``k``) puts weight ``v_it`` on treated observations, and the untreated observations enter through
the first stage with ``v_0 = -W_0 Z_0 (Z_0' W_0 Z_0)^- a`` (``Z`` the first-stage design, ``a = Z_1' v_1`` its
per-level sums on the weighted treated rows). Both variances are the sum over clusters of outer products of

    psi_c = sum_{it in c, treated} v_it e_it  -  sum_{it in c, untreated} w_it e_it z_it' b,   b = (Z_0'W_0Z_0)^- a,

possibly scaled per column (``V = S psi'psi S``):

* BJS (their Theorem 3): ``v`` the treatment weights, ``e`` on treated rows ``tau_it - taubar`` with ``taubar`` the
  ``v^2``-weighted average of ``tau`` in the observation's cohort x period cell (optionally leaving out its own
  cluster: this centring is the only piece that depends on the clustering besides the sums), ``S = I``;
* two-stage (Butts & Gardner): ``v`` the estimation weights on the rows of each second-stage indicator, ``e`` the
  second-stage residual, ``S = diag(1 / sum of weights by term)`` (the bread ``(X2'WX2)^-1``).

The fixed pieces (the solved projection ``b``, the first-stage residuals, the treated weights and residuals) are
stored at fit time in the results' covariance source (:mod:`didx.estimators.imputation.source`);
``with_vcov(cluster=...)`` only recomputes the cluster sums.
Nothing is n x levels: the untreated part is ``-(sum_{i in c} w_i e_i z_i)' b`` from cluster x level sums.

BJS's pre-trend leads come from a separate regression on the untreated observations; :class:`LeadRegression` keeps
its scores and bread so that their CR1 covariance (fixest's conventions) is recomputed for another clustering too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from didx.inference.vcov import SSC, clustered_vcov, k_for_ssc

DENSE_CELLS_EXTRA = 1_000_000
"""Cluster x level sums are a dense table when ``clusters x levels <= 2 n + this``, else a sparse matrix."""


# ---------------------------------------------------------------------------------------------------------------
# the stored pieces
@dataclass(frozen=True, eq=False)
class UntreatedProjection:
    """The untreated observations' part of the scores, ``-(w_i e_i z_i)' b`` for every column of ``b``.

    fit_rows : mask of the first-stage (untreated) rows among the estimation rows.
    we : ``w_i e_i`` on those rows (first-stage residual times the estimation weight).
    X : first-stage covariates on those rows, ``(n0, p)``.
    codes : the first-stage fixed effects' codes on those rows (the smallest integer type that holds them).
    beta, deltas : ``b = (Z_0'W_0Z_0)^- a`` split into covariates ``(p, K)`` and one ``(L_f, K)`` block per factor.
    """

    fit_rows: np.ndarray
    we: np.ndarray
    X: np.ndarray
    codes: tuple[np.ndarray, ...]
    beta: np.ndarray
    deltas: tuple[np.ndarray, ...]

    @property
    def n_cols(self) -> int:
        return int(self.beta.shape[1])


@dataclass(frozen=True, eq=False)
class TreatedScores:
    """The treated observations' part: entry ``j`` puts ``value[j] * e_j`` on estimation row ``row[j]`` in column
    ``col[j]``.

    row, col, cell : integer arrays (the smallest type that holds them: :func:`compact`).
    resid : BJS: ``tau`` (centred on its cohort x period cell average, see ``cell``, for each clustering);
        two-stage: the second-stage residual (already centred).
    cell : BJS: cohort x period cell of each entry; None for the two-stage variance.
    leave_out : BJS's leave-out refinement (cell averages without the entry's own cluster).
    scale : per column, a factor applied on both sides of ``psi'psi`` (the two-stage bread); None for BJS.
    """

    row: np.ndarray
    col: np.ndarray
    value: np.ndarray | None  # None: every entry has weight one
    resid: np.ndarray
    n_cols: int
    cell: np.ndarray | None = None
    leave_out: bool = False
    scale: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class LeadRegression:
    """BJS's pre-trend regression (untreated rows on the first-stage model plus lead indicators): what its CR1
    covariance (fixest's small-sample conventions) needs for any clustering.

    scores : per untreated row ``x_i w_i e_i`` (demeaned regressors: the leads first, then covariates).
    bread : ``(X'WX)^-1``.
    Its fixed effects are the first stage's (codes in :class:`UntreatedProjection`); ``levels``: levels of each
    present on the untreated rows; ``n_fe_params``: identified fixed-effect coefficients.
    """

    scores: np.ndarray
    bread: np.ndarray
    n_leads: int
    levels: tuple[int, ...]
    n_fe_params: int


# ---------------------------------------------------------------------------------------------------------------
# the engine
def compact(codes: np.ndarray, n_levels: int | None = None) -> np.ndarray:
    """Non-negative integer codes in the smallest signed type holding ``0..n_levels-1`` (stored results stay
    small: e.g. periods in one byte per row)."""
    a = np.asarray(codes)
    top = (int(a.max()) + 1 if a.size else 0) if n_levels is None else n_levels
    for t in (np.int8, np.int16, np.int32):
        if top <= np.iinfo(t).max:
            return a.astype(t, copy=False)
    return a.astype(np.int64, copy=False)


def dense_codes(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes renumbered 0..G-1 over the values present (unchanged when they already are), and G."""
    c = np.asarray(codes, dtype=np.int64)
    if c.size == 0:
        return c, 0
    present = np.bincount(c) > 0
    if present.all():
        return c, int(present.shape[0])
    return (np.cumsum(present) - 1)[c], int(present.sum())


def untreated_cluster_sums(we: np.ndarray, X: np.ndarray, factor_codes: Sequence[np.ndarray], beta: np.ndarray,
                           deltas: Sequence[np.ndarray], cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """``sum_{i in c} w_i e_i z_i' b`` for every cluster ``c`` and column of ``b``: (G, K), all on the untreated rows.

    ``z_i`` is the row's first-stage design (covariates ``X`` and level indicators ``factor_codes``) and
    ``b = [beta; deltas]``. Few columns: a gather per column; many: cluster x level sums of ``w e`` (by level for
    factors nested in the clusters, a dense table when small, else sparse) times ``b``.
    """
    K = beta.shape[1]
    out = np.zeros((n_clusters, K))
    p = X.shape[1]
    if K <= 4:
        for k in range(K):
            zb = X @ beta[:, k] if p else None
            for codes, d in zip(factor_codes, deltas, strict=True):
                if zb is None:
                    zb = d[:, k][codes]
                else:
                    zb += d[:, k][codes]
            if zb is None:
                continue
            zb *= we
            out[:, k] = np.bincount(cluster, weights=zb, minlength=n_clusters)
        return out
    if p:
        RX = np.column_stack([np.bincount(cluster, weights=we * X[:, j], minlength=n_clusters) for j in range(p)])
        out += RX @ beta
    n0 = cluster.shape[0]
    for codes, d in zip(factor_codes, deltas, strict=True):
        L = d.shape[0]
        first = np.full(L, -1, dtype=np.int64)
        first[codes] = cluster
        if np.array_equal(first[codes], cluster):
            # the factor is nested in the clusters (e.g. units within unit or state clusters): level sums
            s_l = np.bincount(codes, weights=we, minlength=L)
            lv = np.flatnonzero(first >= 0)
            M = sp.csr_matrix((s_l[lv], (first[lv], lv)), shape=(n_clusters, L))
            out += np.asarray(M @ d)
        elif n_clusters * L <= 2 * n0 + DENSE_CELLS_EXTRA:
            # dense cluster x level table (e.g. unit clusters x periods): one bincount
            tab = np.bincount(cluster * L + codes, weights=we, minlength=n_clusters * L).reshape(n_clusters, L)
            out += tab @ d
        else:
            M = sp.csr_matrix((we, (cluster, codes)), shape=(n_clusters, L))
            out += np.asarray(M @ d)
    return out


def bjs_centred(tau: np.ndarray, value: np.ndarray, col: np.ndarray, n_cols: int, cell: np.ndarray,
                cluster: np.ndarray | None, n_clusters: int) -> tuple[np.ndarray, int]:
    """BJS's treated residuals ``tau - taubar`` (their equation 10) and how many leave-out averages fell back to the
    full cell average.

    ``taubar = sum v^2 tau / sum v^2`` within the entry's cohort x period cell and column; with ``cluster`` (the
    leave-out refinement) the sums leave out the entry's own cluster, unless that leaves nothing.
    """
    K = n_cols
    gk = cell.astype(np.int64) * K + col
    n_gk = int(gk.max()) + 1 if gk.size else 0
    w2 = value * value
    num = np.bincount(gk, weights=w2 * tau, minlength=n_gk)
    den = np.bincount(gk, weights=w2, minlength=n_gk)
    with np.errstate(invalid="ignore", divide="ignore"):
        tbar = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)[gk]
    n_fallback = 0
    if cluster is not None:
        key = gk.astype(np.int64) * n_clusters + cluster
        _, inv = np.unique(key, return_inverse=True)
        num_c = np.bincount(inv, weights=w2 * tau)[inv]
        den_c = np.bincount(inv, weights=w2)[inv]
        den_out = den[gk] - den_c
        ok = den_out > 1e-14 * den[gk]
        with np.errstate(invalid="ignore", divide="ignore"):
            loo = (num[gk] - num_c) / np.where(ok, den_out, 1.0)
        n_fallback = int(np.count_nonzero(~ok & (value != 0)))
        tbar = np.where(ok, loo, tbar)
    return tau - tbar, n_fallback


def first_stage_covariance(untreated: UntreatedProjection, treated: TreatedScores, cluster: np.ndarray,
                           n_clusters: int) -> tuple[np.ndarray, int]:
    """``S psi'psi S`` with ``psi`` the cluster sums above; ``cluster`` holds the codes on every estimation row.

    Returns the covariance and the number of BJS leave-out averages that fell back to the full cell average.
    """
    G, K = n_clusters, treated.n_cols
    rows0 = np.flatnonzero(untreated.fit_rows)
    psi = -untreated_cluster_sums(untreated.we, untreated.X, untreated.codes, untreated.beta,
                                  list(untreated.deltas), cluster[rows0], G)
    cl = cluster[treated.row]
    n_fallback = 0
    if treated.cell is not None:
        assert treated.value is not None
        e, n_fallback = bjs_centred(treated.resid, treated.value, treated.col, K, treated.cell,
                                    cl if treated.leave_out else None, G)
    else:
        e = treated.resid
    psi += np.bincount(cl * K + treated.col, weights=e if treated.value is None else treated.value * e,
                       minlength=G * K).reshape(G, K)
    if treated.scale is None:
        V = psi.T @ psi
    else:
        V = treated.scale[:, None] * (psi.T @ psi) * treated.scale[None, :]
    return 0.5 * (V + V.T), n_fallback


def lead_covariance(leads: LeadRegression, factor_codes: Sequence[np.ndarray], cluster: np.ndarray
                    ) -> tuple[np.ndarray, int]:
    """CR1 covariance of the leads (fixest's conventions: fixed effects nested in the clusters not counted in K)
    and the number of clusters, for codes ``cluster`` on the untreated rows."""
    c, G = dense_codes(cluster)
    ssc = SSC()
    nested = [_nested(f, c) for f in factor_codes]
    k = leads.bread.shape[0]
    K = k_for_ssc(k, leads.n_fe_params, list(leads.levels), nested, ssc, True)
    S = leads.scores

    def meat(codes: np.ndarray) -> tuple[np.ndarray, int]:
        sums = np.column_stack([np.bincount(codes, weights=S[:, j], minlength=G) for j in range(S.shape[1])])
        return sums.T @ sums, G

    vr = clustered_vcov("CR1", leads.bread, int(S.shape[0]), K, ssc, [c], meat)
    P = leads.n_leads
    return vr.matrix[:P, :P], G


def _nested(factor: np.ndarray, cluster: np.ndarray) -> bool:
    """Is every level of ``factor`` in a single cluster?"""
    first = np.full(int(factor.max()) + 1 if factor.size else 0, -1, dtype=np.int64)
    first[factor] = cluster
    return bool(np.array_equal(first[factor], cluster))
