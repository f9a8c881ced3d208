"""Covariances of a regression fitted from cohort x period cell means, from cluster x period sums.

The state (:class:`CellFit`: the cell-level fit, the demeaned regressors per cell and the unit x period residual
matrix) is built by :mod:`didx.estimators.sun_abraham.cells` (Sun-Abraham, stacked); this module turns it into
iid, HC0/HC1 and one- or two-way CR0/CR1 matrices with the conventions of :mod:`didx.inference.vcov` (fixest's),
without forming an ``N T x k`` matrix (see that module's docstring and ``SCALE.md``). Other kinds (CR3) use the
row-level fit rebuilt by :meth:`CellFit.row_fit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from didx.inference.vcov import VcovResult, VcovSpec, clustered_vcov, hc_factor, iid_vcov, k_for_ssc
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit

CELL_KINDS = ("iid", "HC0", "HC1", "hetero", "CR0", "CR1")
"""Covariance kinds computed from the cell sums (others from the row-level fit)."""


@dataclass(frozen=True, eq=False)
class CellFit:
    """The cell-level fit and the unit-level residual matrix ``E`` (N x T)."""

    fit: OLSFit            # cell-level weighted fit: coef, names, bread equal to the unit-level ones
    xd: np.ndarray         # (G, T, k) demeaned regressors per cell
    resid: np.ndarray      # (N, T) unit-level residuals
    group_of_unit: np.ndarray
    n_groups: int
    unit: np.ndarray       # per row
    time: np.ndarray       # per row
    wd: np.ndarray | None = None  # (p, N, T) two-way demeaned covariates (their coefficients come first)
    group_weight: np.ndarray | None = None  # (G,) regression weight of each group's rows, or None
    n_rows: int | None = None  # observations when the panel is unbalanced (resid is 0 where unobserved)
    n_components: int = 1  # connected components of the unit-period graph (fixed-effect count)

    def score_resid(self) -> np.ndarray:
        """Residuals times the regression weights (the score weights), N x T."""
        if self.group_weight is None:
            return self.resid
        return self.resid * self.group_weight[self.group_of_unit][:, None]

    @property
    def n_obs(self) -> int:
        return int(self.resid.size) if self.n_rows is None else self.n_rows

    @property
    def n_cov(self) -> int:
        return 0 if self.wd is None else int(self.wd.shape[0])

    def unit_w_scores(self, E: np.ndarray) -> np.ndarray:
        """Per-unit covariate scores ``v_i = sum_t Wd_it e_it`` (N x p) for residual-like matrix ``E``."""
        assert self.wd is not None
        return np.einsum("pnt,nt->np", self.wd, E)

    def row_fit(self, fe_names: Sequence[str]) -> OLSFit:
        """The same regression on the rows, without refitting: the demeaned regressors of a row are its cell's
        (``xd``; the unit-demeaned dummies of units in one group are identical) and its two-way demeaned
        covariates (``wd``), its residual ``resid[i, t]``; coefficients and ``(X'WX)^{-1}`` are the cell fit's."""
        group = self.group_of_unit[self.unit]
        X = self.xd[group, self.time]
        if self.wd is not None:
            X = np.column_stack([self.wd[:, self.unit, self.time].T, X])
        w = None if self.group_weight is None else self.group_weight[group]
        fe = FixedEffects([self.unit, self.time], list(fe_names), weights=w)
        return OLSFit(coef=self.fit.coef, names=self.fit.names, X=X, resid=self.resid[self.unit, self.time],
                      weights=w, bread=self.fit.bread, fe=fe, dropped_collinear=self.fit.dropped_collinear)


def _unit_level(codes: np.ndarray, unit: np.ndarray, n_units: int) -> np.ndarray | None:
    """Cluster code per unit if constant within units, else None."""
    if codes is unit:
        return np.arange(n_units, dtype=np.int64)
    cu = np.full(n_units, -1, dtype=np.int64)
    cu[unit] = codes
    return cu if bool(np.all(cu[unit] == codes)) else None


def _group_slices(grp: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order sorting ``grp`` and the start offsets of each group (one pass, no mask per group)."""
    order = np.argsort(grp, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(grp, minlength=n_groups))])
    return order, starts


def _nested_meat(cf: CellFit, Esum: np.ndarray, Vsum: np.ndarray | None, grp: np.ndarray) -> np.ndarray:
    """Meat when every cluster lies in one cohort: rows of ``Esum`` (T) / ``Vsum`` (p) are clusters."""
    k, p = cf.xd.shape[2], cf.n_cov
    meat = np.zeros((p + k, p + k))
    order, starts = _group_slices(grp, cf.n_groups)
    for c in range(cf.n_groups):
        if starts[c + 1] == starts[c]:
            continue
        idx = order[starts[c]:starts[c + 1]]
        Ec = Esum[idx]
        meat[p:, p:] += cf.xd[c].T @ (Ec.T @ Ec) @ cf.xd[c]
        if Vsum is not None:
            cross = cf.xd[c].T @ (Ec.T @ Vsum[idx])
            meat[p:, :p] += cross
            meat[:p, p:] += cross.T
    if Vsum is not None:
        meat[:p, :p] = Vsum.T @ Vsum
    return meat


def _cluster_meat(cf: CellFit, codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Sum over clusters of the score outer products, from cluster x period sums of the residuals.

    The score of cluster ``c`` is ``[sum Wd_it e_it ; sum_g Xd_g' E_cg]`` with ``E_cg`` the period sums of the
    residuals of the cluster's units in cohort ``g``.
    """
    N, T = cf.resid.shape
    G = cf.n_groups
    k, p = cf.xd.shape[2], cf.n_cov
    R = cf.score_resid()
    V = cf.unit_w_scores(R) if p else None
    if codes is cf.unit:  # clustered by unit: every unit its own cluster, nested in its cohort
        return _nested_meat(cf, R, V, cf.group_of_unit), N
    cu = _unit_level(codes, cf.unit, N)
    if cu is not None:
        key = cu * G + cf.group_of_unit
        uniq, inv = np.unique(key, return_inverse=True)
        inv = inv.reshape(-1)
        Esum = np.empty((uniq.shape[0], T))
        for t in range(T):
            Esum[:, t] = np.bincount(inv, weights=R[:, t], minlength=uniq.shape[0])
        Vsum = None
        if V is not None:
            Vsum = np.empty((uniq.shape[0], p))
            for a in range(p):
                Vsum[:, a] = np.bincount(inv, weights=V[:, a], minlength=uniq.shape[0])
        grp = uniq % G
        _, clus_code = np.unique(uniq // G, return_inverse=True)
        clus_code = clus_code.reshape(-1)
        n_cl = int(clus_code.max()) + 1
        if n_cl == uniq.shape[0]:  # clusters nested in cohorts: T x T per cohort
            return _nested_meat(cf, Esum, Vsum, grp), n_cl
        scores = np.zeros((n_cl, p + k))
        order, starts = _group_slices(grp, G)
        for c in range(G):
            idx = order[starts[c]:starts[c + 1]]
            if idx.size:
                scores[clus_code[idx], p:] += Esum[idx] @ cf.xd[c]  # a cluster appears once per cohort
        if Vsum is not None:
            for a in range(p):
                scores[:, a] = np.bincount(clus_code, weights=Vsum[:, a], minlength=n_cl)
        return scores.T @ scores, n_cl
    # cluster varies within units: sums by (cluster, cell)
    _, cl_row = np.unique(codes, return_inverse=True)
    cl_row = cl_row.reshape(-1).astype(np.int64)
    n_cl = int(cl_row.max()) + 1
    e_row = R[cf.unit, cf.time]
    cell = cf.group_of_unit[cf.unit] * T + cf.time
    uniq, inv = np.unique(cl_row * (G * T) + cell, return_inverse=True)
    sums = np.bincount(inv.reshape(-1), weights=e_row, minlength=uniq.shape[0])
    clus_code = uniq // (G * T)
    xflat = cf.xd.reshape(G * T, k)
    scores = np.zeros((n_cl, p + k))
    cells_u = uniq % (G * T)
    for j in np.unique(cells_u):
        m = cells_u == j
        scores[clus_code[m], p:] += sums[m][:, None] * xflat[j]
    if cf.wd is not None:
        for a in range(p):
            scores[:, a] = np.bincount(cl_row, weights=cf.wd[a][cf.unit, cf.time] * e_row, minlength=n_cl)
    return scores.T @ scores, n_cl


def _count_k(cf: CellFit, spec: VcovSpec, codes: Sequence[np.ndarray]) -> int:
    """fixest's K (:func:`didx.inference.vcov.k_for_ssc`) for unit + time effects."""
    N, T = cf.resid.shape
    n_fe = N + T - (cf.n_components if spec.ssc.fixef_exact else 1)
    nested = [any(_unit_level(c, cf.unit, N) is not None for c in codes),
              any(_unit_level(c, cf.time, T) is not None for c in codes)]
    return k_for_ssc(cf.fit.n_coef, n_fe, [N, T], nested, spec.ssc, bool(codes))


def cell_vcov(cf: CellFit, spec: VcovSpec, cluster_codes: Mapping[str, np.ndarray]) -> VcovResult:
    """The covariance of the coefficients under ``spec`` (kinds in ``CELL_KINDS``), as :func:`compute_vcov`."""
    n = cf.n_obs
    B = cf.fit.bread
    ssc = spec.ssc
    codes = [np.asarray(cluster_codes[c]) for c in spec.clusters]
    K = _count_k(cf, spec, codes)
    if cf.fit.n_coef == 0:
        return VcovResult(np.zeros((0, 0)), None, (), K, 1.0)
    kind = spec.kind
    E = cf.resid
    if kind == "iid":
        return iid_vcov(B, float(np.einsum("ij,ij->", E, cf.score_resid())), n, K, ssc)
    if kind in ("HC0", "HC1", "hetero"):
        G, T = cf.n_groups, E.shape[1]
        p = cf.n_cov
        E2 = cf.score_resid() ** 2
        h = np.empty((G, T))
        for t in range(T):
            h[:, t] = np.bincount(cf.group_of_unit, weights=E2[:, t], minlength=G)
        kk = cf.xd.shape[2]
        meat = np.zeros((p + kk, p + kk))
        meat[p:, p:] = np.einsum("gtk,gt,gtl->kl", cf.xd, h, cf.xd)
        if cf.wd is not None:
            we = cf.wd * E2[None]
            meat[:p, :p] = we.reshape(p, -1) @ cf.wd.reshape(p, -1).T
            for j in range(p):
                sa = np.empty((G, T))
                for t in range(T):
                    sa[:, t] = np.bincount(cf.group_of_unit, weights=we[j][:, t], minlength=G)
                meat[p:, j] = meat[j, p:] = np.einsum("gtk,gt->k", cf.xd, sa)
        factor = hc_factor(kind, n, K, ssc)
        return VcovResult(factor * (B @ meat @ B), float(n - K), (), K, factor)
    return clustered_vcov(kind, B, n, K, ssc, codes, lambda c: _cluster_meat(cf, c), "sun_abraham", spec.clusters)
