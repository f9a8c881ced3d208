"""The Sun-Abraham regression from cohort x period cell means (balanced panel, no weights).

On a balanced panel every regressor of the saturated model is constant within a (cohort, period) cell, so the
unit + time fixed-effect regression on ``N T`` rows has the same coefficients as the regression of the cell
means ``Ybar[c, t]`` on the same regressors with cohort and time effects, weighted by the cohort sizes ``n_c``
(see ``SCALE.md``). The demeaned regressors ``Xd[c, t]`` and ``(X'X)^{-1}`` are the same too. The residual of
unit ``i`` (cohort ``c``) at ``t`` is

    e_it = (y_it - ybar_i) - (Ybar_ct - Ybar_c.) + u_ct,    u = the cell regression's residual,

so every covariance matrix needs only cluster x period sums of ``e`` (and, for unit clusters nested in cohorts,
the ``T x T`` matrices ``sum_i e_i e_i'`` per cohort): no ``N T x k`` matrix is formed. Small-sample
conventions are those of :mod:`didx.inference.vcov` (fixest's), verified equal to the general path to 1e-10.
With covariates (:func:`fit_cells_covariates`) the design ``[Wd, Dd]`` is handled the same way: ``Wd`` is kept
in the wide ``p x N x T`` layout and only its cross products and cohort x period sums enter. On an unbalanced
panel (:func:`fit_cells_unbalanced`) the groups are (cohort, set of observed periods) and the residual matrix is
zero where a unit is not observed. Group weights (:func:`fit_cells_wide`) serve the stacked regression.

The covariances from the cell sums are :mod:`didx.inference.cell_sums` (with the state, :class:`CellFit`). The
row-level fit (demeaned regressors and residuals on the rows) is rebuilt from the cells when a covariance needs
the rows (CR3) or the wild bootstrap runs (``CellFit.row_fit``): the demeaned regressors of a row are
those of its cell (and its two-way demeaned covariates), its residual is ``E[i, t]``. Nothing else of the data is
kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla

from didx._validate import distinct_at_most_two
from didx.estimators.regression.common import REGRESSION_CAPABILITIES, RegressionSource, inference_info, treated_flags
from didx.inference.cell_sums import CELL_KINDS, CellFit, cell_vcov
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest, cluster_count_check
from didx.inference.vcov import (
    VcovSpec,
    resolve_vcov,
)
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols, independent_columns
from didx.results.base import Inference


def fit_cells(y: np.ndarray, unit: np.ndarray, time: np.ndarray, n_units: int, n_periods: int,
              group_of_unit: np.ndarray, cell_of_group_time: np.ndarray, names: Sequence[str],
              func: str) -> CellFit:
    """Fit the saturated regression from cell means; ``cell_of_group_time`` is (G, T) with -1 for no dummy."""
    E = np.empty((n_units, n_periods))
    E[unit, time] = y
    return fit_cells_wide(E, group_of_unit, cell_of_group_time, names, func, unit=unit, time=time)


def fit_cells_wide(E: np.ndarray, group_of_unit: np.ndarray, cell_of_group_time: np.ndarray,
                   names: Sequence[str], func: str, *, unit: np.ndarray, time: np.ndarray,
                   group_weight: np.ndarray | None = None) -> CellFit:
    """:func:`fit_cells` on the wide ``N x T`` outcome ``E`` (overwritten with the residuals).

    ``group_weight`` (one weight per group, constant within it) gives weighted least squares.
    """
    T = E.shape[1]
    G = int(cell_of_group_time.shape[0])
    k = len(names)
    n_g = np.bincount(group_of_unit, minlength=G).astype(np.float64)
    S = np.empty((G, T))
    for t in range(T):
        S[:, t] = np.bincount(group_of_unit, weights=E[:, t], minlength=G)
    ybar = S / n_g[:, None]
    gcode = np.repeat(np.arange(G), T)
    tcode = np.tile(np.arange(T), G)
    w = np.repeat(n_g if group_weight is None else n_g * group_weight, T)
    X = np.zeros((G * T, k))
    flat = cell_of_group_time.reshape(-1)
    has = flat >= 0
    X[np.flatnonzero(has), flat[has]] = 1.0
    fe = FixedEffects([gcode, tcode], ["cohort", "time"], weights=w)
    fit = fit_ols(ybar.reshape(-1), X, list(names), fe=fe, weights=w, func=func)
    u = fit.resid.reshape(G, T)
    # e_it = y_it - ybar_i - (Ybar_ct - Ybar_c.) + u_ct, in place on E
    E -= E.mean(axis=1, keepdims=True)
    E -= (ybar - ybar.mean(axis=1, keepdims=True) - u)[group_of_unit]
    xd = fit.X.reshape(G, T, -1)
    return CellFit(fit=fit, xd=xd, resid=E, group_of_unit=group_of_unit, n_groups=G, unit=unit, time=time,
                   group_weight=group_weight)


MAX_PATTERN_PERIODS = 52  # observation patterns are coded as exact float64 integers


def fit_cells_unbalanced(y: np.ndarray, unit: np.ndarray, time: np.ndarray, n_units: int, n_periods: int,
                         cohort_of_unit: np.ndarray, cell_of_cohort_time: np.ndarray, names: Sequence[str],
                         func: str) -> CellFit | None:
    """:func:`fit_cells` for an unbalanced panel: units are grouped by (cohort, set of observed periods).

    Within such a group the unit-demeaned regressors are identical, so the regression with unit effects is the
    regression of the group x period means (observed periods only) with group and period effects, weighted by
    the group sizes; the residual of unit ``i`` is ``(y_it - ybar_i) - (Ybar_ht - Ybar_h.) + u_ht`` with means
    over the group's periods. Returns None with more than ``MAX_PATTERN_PERIODS`` periods.
    """
    N, T = n_units, n_periods
    if T > MAX_PATTERN_PERIODS:
        return None
    bits = np.bincount(unit, weights=np.ldexp(1.0, time), minlength=N).astype(np.int64)  # one row per (unit, t)
    key = cohort_of_unit.astype(np.int64) * (np.int64(1) << np.int64(T)) + bits if T < 40 else None
    if key is None:
        pairs = np.column_stack([cohort_of_unit, bits])
        uniq, group_of_unit = np.unique(pairs, axis=0, return_inverse=True)
        g_cohort, g_bits = uniq[:, 0], uniq[:, 1]
    else:
        ukey, group_of_unit = np.unique(key, return_inverse=True)
        g_cohort, g_bits = ukey >> np.int64(T), ukey & ((np.int64(1) << np.int64(T)) - 1)
    group_of_unit = np.asarray(group_of_unit).reshape(-1).astype(np.int64)
    G = int(g_cohort.shape[0])
    present = ((g_bits[:, None] >> np.arange(T, dtype=np.int64)[None, :]) & 1).astype(bool)  # (G, T)
    k = len(names)
    E = np.zeros((N, T))
    E[unit, time] = y
    obs = np.zeros((N, T), dtype=bool)
    obs[unit, time] = True
    n_g = np.bincount(group_of_unit, minlength=G).astype(np.float64)
    S = np.empty((G, T))
    for t in range(T):
        S[:, t] = np.bincount(group_of_unit, weights=E[:, t], minlength=G)
    ybar = S / n_g[:, None]
    gc, tc = np.nonzero(present)
    w = n_g[gc]
    cgt = cell_of_cohort_time[g_cohort.astype(np.int64)]  # (G, T)
    X = np.zeros((gc.shape[0], k))
    flat = cgt[gc, tc]
    has = flat >= 0
    X[np.flatnonzero(has), flat[has]] = 1.0
    fe = FixedEffects([gc, tc], ["group", "time"], weights=w)
    fit = fit_ols(ybar[gc, tc], X, list(names), fe=fe, weights=w, func=func)
    u = np.zeros((G, T))
    u[gc, tc] = fit.resid
    xd = np.zeros((G, T, fit.n_coef))
    xd[gc, tc] = fit.X
    n_per = present.sum(axis=1)
    gmean = np.where(present, ybar, 0.0).sum(axis=1) / n_per  # Ybar_h. over the group's periods
    counts = np.bincount(unit, minlength=N)
    E -= (E.sum(axis=1) / counts)[:, None]
    E -= (np.where(present, ybar, 0.0) - gmean[:, None] - u)[group_of_unit]
    E[~obs] = 0.0
    n_comp = G + T - fe.n_params()
    return CellFit(fit=fit, xd=xd, resid=E, group_of_unit=group_of_unit, n_groups=G, unit=unit, time=time,
                   n_rows=int(y.shape[0]), n_components=n_comp)


def _wide(values: np.ndarray, unit: np.ndarray, time: np.ndarray, N: int, T: int) -> np.ndarray:
    out = np.empty((N, T))
    out[unit, time] = values
    return out


def _twoway(M: np.ndarray) -> np.ndarray:
    """Balanced two-way (unit, period) demeaning of a wide N x T matrix, in place."""
    M -= M.mean(axis=1, keepdims=True)
    M -= M.mean(axis=0, keepdims=True)
    return M


def fit_cells_covariates(y: np.ndarray, W: np.ndarray, cov_names: Sequence[str], unit: np.ndarray,
                         time: np.ndarray, n_units: int, n_periods: int, group_of_unit: np.ndarray,
                         cell_of_group_time: np.ndarray, names: Sequence[str]) -> CellFit:
    """The saturated regression with covariates on a balanced panel without forming the ``NT x k`` dummies.

    With ``Z = [Wd, Dd]`` the two-way demeaned covariates (row level) and cell dummies (cell level),
    ``Z'Z`` and ``Z'y`` need only ``Wd'Wd``, ``Wd'y`` and cohort x period sums of ``Wd``; the residuals are
    ``yd - Dd b - Wd c`` in the wide ``N x T`` layout.
    """
    N, T = n_units, n_periods
    G = int(cell_of_group_time.shape[0])
    k = len(names)
    p = W.shape[1]
    n_g = np.bincount(group_of_unit, minlength=G).astype(np.float64)
    gcode = np.repeat(np.arange(G), T)
    tcode = np.tile(np.arange(T), G)
    wcell = np.repeat(n_g, T)
    X = np.zeros((G * T, k))
    flat = cell_of_group_time.reshape(-1)
    has = flat >= 0
    X[np.flatnonzero(has), flat[has]] = 1.0
    fe = FixedEffects([gcode, tcode], ["cohort", "time"], weights=wcell)
    xd = fe.demean(X).reshape(G, T, k)

    def cell_sums(M: np.ndarray) -> np.ndarray:
        out = np.empty((G, T))
        for t in range(T):
            out[:, t] = np.bincount(group_of_unit, weights=M[:, t], minlength=G)
        return out

    yd = _twoway(_wide(y, unit, time, N, T))
    wd = np.empty((p, N, T))
    for a in range(p):
        wd[a] = _twoway(_wide(W[:, a], unit, time, N, T))
    K = p + k
    ZtZ = np.empty((K, K))
    Zty = np.empty(K)
    wflat = wd.reshape(p, -1)
    ZtZ[:p, :p] = wflat @ wflat.T
    Zty[:p] = wflat @ yd.reshape(-1)
    for a in range(p):
        ZtZ[p:, a] = ZtZ[a, p:] = np.einsum("gtk,gt->k", xd, cell_sums(wd[a]))
    ZtZ[p:, p:] = np.einsum("gtk,g,gtl->kl", xd, n_g, xd)
    Zty[p:] = np.einsum("gtk,gt->k", xd, cell_sums(yd))
    scale = np.concatenate([np.einsum("ij,ij->j", W, W), np.einsum("gk,g->k", X.reshape(G, T, k).sum(axis=1), n_g)])
    keep = independent_columns(ZtZ, scale)
    all_names = [*cov_names, *names]
    dropped = tuple(n for j, n in enumerate(all_names) if j not in set(keep.tolist()))
    ZtZ = ZtZ[np.ix_(keep, keep)]
    bread = sla.inv(ZtZ, check_finite=False)
    bread = 0.5 * (bread + bread.T)
    coef = bread @ Zty[keep]
    kw = [int(j) for j in keep if j < p]
    kd = [int(j) - p for j in keep if j >= p]
    wd = wd[kw]
    xd = xd[:, :, kd]
    E = yd
    E -= np.einsum("gtk,k->gt", xd, coef[len(kw):])[group_of_unit]
    for j in range(len(kw)):
        E -= coef[j] * wd[j]
    fit = OLSFit(coef=coef, names=tuple(all_names[j] for j in keep), X=np.empty((0, len(keep))),
                 resid=np.empty(0), weights=None, bread=bread, fe=fe, dropped_collinear=dropped)
    return CellFit(fit=fit, xd=xd, resid=E, group_of_unit=group_of_unit, n_groups=G, unit=unit, time=time, wd=wd)


@dataclass(frozen=True, eq=False)
class CellSource:
    """Recomputes the covariance of a cell-path fit; CR3 and the wild bootstrap use the row-level fit, rebuilt on
    demand from the cells (:meth:`didx.inference.cell_sums.CellFit.row_fit`) and not pickled."""

    cells: CellFit
    clusters: ClusterCodes
    default: VcovSpec
    treated: np.ndarray  # per row: in a treated unit / group (stored as booleans)
    fe_names: tuple[str, str]  # the absorbed factors of the row-level regression (unit, time)
    _cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "treated", treated_flags(self.treated))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}  # the row-level fit is rebuilt after unpickling, not stored

    @property
    def capabilities(self) -> Capabilities:
        # the cells stand for a regression with two absorbed factors: no leverage-based HC2 / HC3
        return dataclasses.replace(REGRESSION_CAPABILITIES,
                                   vcov=tuple(k for k in REGRESSION_CAPABILITIES.vcov if k not in ("HC2", "HC3")))

    def general_source(self) -> RegressionSource:
        """The regression on the rows (demeaned regressors n x k), built once, on demand."""
        if "general" not in self._cache:
            self._cache["general"] = RegressionSource(fit=self.cells.row_fit(self.fe_names), clusters=self.clusters,
                                                      default=self.default, treated_codes=self.treated)
        source: RegressionSource = self._cache["general"]
        return source

    @property
    def fit(self) -> OLSFit:
        """The row-level fit (for the wild bootstrap, which needs the rows)."""
        return self.general_source().fit

    def compute(self, func: str, spec: VcovSpec, given: Mapping[str, np.ndarray] | None = None
                ) -> tuple[np.ndarray, Inference]:
        if spec.kind not in CELL_KINDS or len(spec.clusters) > 2:
            V, inf = self.general_source().compute(func, spec, given)
            return np.asarray(V), inf
        given = given or {}
        codes = {n: np.asarray(given[n] if n in given else self.clusters.stored[n]) for n in spec.clusters}
        for name, c in codes.items():
            cluster_count_check(func, name, distinct_at_most_two(c))
        vr = cell_vcov(self.cells, spec, codes)
        return vr.matrix, inference_info(spec, vr, self.cells.fit, codes, self.treated)

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        spec = resolve_vcov(func, request.vcov, request.clusters, self.default, request.ssc)
        return self.compute(func, spec, codes)
