"""Linear ETWFE without covariates from cohort x period cell sums (no dummy matrix, any balance, weights).

With cohort and period fixed effects (R etwfe's default) and one dummy per treated cell, every regressor and
fixed effect is constant within a (cohort, period) cell. The least-squares fit on the ``n`` rows therefore has the
coefficients and ``(X'WX)^{-1}`` of the cell-level regression of the (weighted) cell means on the same regressors
with cohort and period effects, weighted by the cells' sums of weights (``SCALE.md``), and the row residual is

    e_i = y_i - Ybar_cell(i) + u_cell(i),      u = the cell regression's residual.

A cluster's score is ``Xd' s_c`` with ``s_c`` the cell sums of its ``w e`` (``Xd`` the demeaned regressors per
cell); the meat is ``Xd' (sum_c s_c s_c') Xd``. When every cluster lies in one cohort (units, or anything nested in
units), ``sum_c s_c s_c'`` is block diagonal: a ``T x T`` matrix per cohort from cluster x period sums. Otherwise
the cluster x cell sums are formed directly. fixest's small-sample conventions (:mod:`didx.inference.vcov`): ``K``
counts the slopes and the cohort and period effects, less the levels of a factor nested in a cluster variable.
Equal to the row-level regression (``estimator._row_fit``) to rounding, which the tests check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from didx._validate import distinct_at_most_two
from didx.estimators.regression.common import REGRESSION_CAPABILITIES, inference_info, treated_flags
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest, cluster_count_check
from didx.inference.vcov import (
    VcovResult,
    VcovSpec,
    clustered_vcov,
    hc_factor,
    iid_vcov,
    k_for_ssc,
    resolve_vcov,
)
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.results.base import Inference

CELL_KINDS = ("iid", "HC0", "HC1", "hetero", "CR0", "CR1")
"""Covariance kinds of the cell path (leverage-based HC2/HC3 and the CR3 jackknife are not offered)."""

DENSE_CELLS = 20_000_000
"""Largest clusters x cells table formed densely for a cluster variable that is not nested in cohorts."""


@dataclass(frozen=True, eq=False)
class CellRegression:
    """The cell-level fit and the row residuals."""

    fit: OLSFit              # coefficients, names, bread (= the row-level ones); X: demeaned regressors per cell
    cells: np.ndarray        # the cell code (cohort * T + period) of each fitted cell (rows of fit.X)
    cell_of_row: np.ndarray
    cohort_of_row: np.ndarray
    time_of_row: np.ndarray
    n_periods: int
    n_cohorts: int
    score_resid: np.ndarray  # w e per row (e without weights)
    rss: float               # sum of w e^2
    unit_codes: np.ndarray | None = None  # the unit codes (each unit lies in one cohort)

    @property
    def n_obs(self) -> int:
        return int(self.cell_of_row.shape[0])

    def xd_full(self) -> np.ndarray:
        """Demeaned regressors for every cell code (G*T x k; zero for cells without rows)."""
        out = np.zeros((self.n_cohorts * self.n_periods, self.fit.n_coef))
        out[self.cells] = self.fit.X
        return out


def fit_cells(y: np.ndarray, weights: np.ndarray | None, cell: np.ndarray, cohort: np.ndarray, time: np.ndarray,
              n_cohorts: int, n_periods: int, table: np.ndarray, names: tuple[str, ...], func: str) -> CellRegression:
    """Fit the saturated regression from cell sums; ``table`` (G, T) gives each cell's coefficient (-1: none);
    ``cell = cohort * T + time`` per row."""
    G, T = n_cohorts, n_periods
    n_cells = G * T
    wsum = np.bincount(cell, weights=weights, minlength=n_cells)
    sy = np.bincount(cell, weights=y if weights is None else y * weights, minlength=n_cells)
    used = np.flatnonzero(wsum > 0)
    ybar = sy[used] / wsum[used]
    gc, tc = used // T, used % T
    X = np.zeros((used.shape[0], len(names)))
    col = table.reshape(-1)[used]
    has = col >= 0
    X[np.flatnonzero(has), col[has]] = 1.0
    fe = FixedEffects([gc, tc], ["cohort", "period"], weights=wsum[used])
    fit = fit_ols(ybar, X, list(names), fe=fe, weights=wsum[used], func=func, protected=())
    u = np.zeros(n_cells)
    u[used] = fit.resid
    shift = np.zeros(n_cells)
    shift[used] = ybar - fit.resid
    e = np.take(shift, cell)
    np.subtract(y, e, out=e)           # y - (Ybar - u)
    we = e if weights is None else e * weights
    rss = float(np.dot(e, we))
    return CellRegression(fit=fit, cells=used, cell_of_row=cell, cohort_of_row=cohort, time_of_row=time,
                          n_periods=T, n_cohorts=G, score_resid=we, rss=rss)


def _nested(factor: np.ndarray, n_levels: int, codes: np.ndarray) -> bool:
    """Every level of ``factor`` lies in a single cluster."""
    if int(codes.max()) + 1 > n_levels and np.unique(codes[: 10 * n_levels + 1000]).shape[0] > n_levels:
        return False  # more clusters than levels: some level spans two clusters
    first = np.full(n_levels, -1, dtype=np.int64)
    first[factor] = codes
    return bool(np.array_equal(first[factor], codes))


def _meat(cr: CellRegression, codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Sum over clusters of the score outer products, from cluster x cell sums of ``w e``."""
    G, T = cr.n_cohorts, cr.n_periods
    n_cells = G * T
    xd = cr.xd_full()
    we = cr.score_resid
    C = int(codes.max()) + 1
    present = np.bincount(codes, minlength=C) > 0
    n_cl = int(present.sum())
    cohort_of_cluster = np.full(C, -1, dtype=np.int64)
    cohort_of_cluster[codes] = cr.cohort_of_row
    nested = codes is cr.unit_codes or np.array_equal(cohort_of_cluster[codes], cr.cohort_of_row)
    if nested and C * T <= 4 * DENSE_CELLS:
        # every cluster in one cohort: sum_c s_c s_c' is a T x T block per cohort
        S = np.bincount(codes * T + cr.time_of_row, weights=we, minlength=C * T).reshape(C, T)
        meat = np.zeros((xd.shape[1], xd.shape[1]))
        order = np.argsort(cohort_of_cluster, kind="stable")
        bounds = np.searchsorted(cohort_of_cluster[order], np.arange(G + 1))
        for g in range(G):
            idx = order[bounds[g]:bounds[g + 1]]
            if idx.size:
                Sg = S[idx]
                xg = xd[g * T:(g + 1) * T]
                meat += xg.T @ (Sg.T @ Sg) @ xg
        return meat, n_cl
    if C * n_cells <= DENSE_CELLS:
        S = np.bincount(codes * n_cells + cr.cell_of_row, weights=we, minlength=C * n_cells).reshape(C, n_cells)
        scores = S @ xd
        return scores.T @ scores, n_cl
    uniq, inv = np.unique(codes.astype(np.int64) * n_cells + cr.cell_of_row, return_inverse=True)
    sums = np.bincount(inv.reshape(-1), weights=we, minlength=uniq.shape[0])
    scores = np.zeros((C, xd.shape[1]))
    np.add.at(scores, uniq // n_cells, sums[:, None] * xd[uniq % n_cells])
    return scores.T @ scores, n_cl


def cell_vcov(cr: CellRegression, spec: VcovSpec, codes_by_name: Mapping[str, np.ndarray], func: str) -> VcovResult:
    """The covariance of the coefficients under ``spec`` (kinds in :data:`CELL_KINDS`), as ``compute_vcov``."""
    n = cr.n_obs
    B = cr.fit.bread
    ssc = spec.ssc
    codes = [np.asarray(codes_by_name[c]) for c in spec.clusters]
    fe = cr.fit.fe
    assert fe is not None
    nested = [False, False]
    if ssc.fixef_k == "nested":
        for c in codes:
            nested[0] |= _nested(cr.cohort_of_row, cr.n_cohorts, c)
            nested[1] |= _nested(cr.time_of_row, cr.n_periods, c)
    levels = [int(np.unique(cr.cohort_of_row).shape[0]), int(np.unique(cr.time_of_row).shape[0])]
    K = k_for_ssc(cr.fit.n_coef, fe.n_params(ssc.fixef_exact), levels, nested, ssc, bool(codes))
    kind = spec.kind
    if kind == "iid":
        return iid_vcov(B, cr.rss, n, K, ssc)
    xd = cr.xd_full()
    if kind in ("HC0", "HC1", "hetero"):
        h = np.bincount(cr.cell_of_row, weights=cr.score_resid ** 2, minlength=xd.shape[0])
        meat = (xd * h[:, None]).T @ xd
        factor = hc_factor(kind, n, K, ssc)
        return VcovResult(factor * (B @ meat @ B), float(n - K), (), K, factor)
    return clustered_vcov(kind, B, n, K, ssc, codes, lambda c: _meat(cr, c), func, spec.clusters)


@dataclass(frozen=True, eq=False)
class CellSource:
    """Covariance source of the cell path (see the module docstring)."""

    regression: CellRegression
    clusters: ClusterCodes
    default: VcovSpec
    treated: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "treated", treated_flags(self.treated))

    @property
    def fit(self) -> OLSFit:
        return self.regression.fit

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(REGRESSION_CAPABILITIES, vcov=CELL_KINDS, bootstrap=())

    def compute(self, func: str, spec: VcovSpec, given: Mapping[str, np.ndarray] | None = None
                ) -> tuple[np.ndarray, Inference]:
        given = given or {}
        codes = {n: np.asarray(given[n] if n in given else self.clusters.stored[n]) for n in spec.clusters}
        for name, c in codes.items():
            cluster_count_check(func, name, distinct_at_most_two(c))
        vr = cell_vcov(self.regression, spec, codes, func)
        return vr.matrix, inference_info(spec, vr, self.regression.fit, codes, self.treated)

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        spec = resolve_vcov(func, request.vcov, request.clusters, self.default, request.ssc)
        if spec.kind not in CELL_KINDS:
            from didx._errors import InvalidOptionError

            raise InvalidOptionError(
                f"{func}: vcov={spec.kind!r} is not available for ETWFE without covariates (computed from cohort x "
                f"period sums). Choose one of {', '.join(map(repr, CELL_KINDS))}."
            )
        return self.compute(func, spec, codes)
