"""Sun & Abraham (2021): the interaction-weighted event-study estimator.

The saturated regression

    y_it = a_i + l_t + sum_{g in treated cohorts} sum_{e not in ref} b_{g,e} 1[G_i = g, t - g = e] + W_it' c + u_it

is estimated by least squares with the unit and time effects absorbed. Each ``b_{g,e}`` is a cohort-specific
effect at relative period ``e`` against the reference cohorts (never treated, or the last-treated cohort); the
interaction-weighted estimator aggregates them with the cohort shares of each relative period,

    theta_e = sum_g s_{g,e} b_{g,e},   s_{g,e} = n_{g,e} / sum_h n_{h,e},

with ``n_{g,e}`` the number of observations (sum of weights) in the cell, and ``Var(theta) = s' V s``: the
shares are held fixed, as fixest's ``aggregate()`` does. The overall ATT weights all post cells (``e >= 0``)
by their sizes and the cohort aggregation the post cells of each cohort.

References: Sun, L. and Abraham, S. (2021), "Estimating dynamic treatment effects in event studies with
heterogeneous treatment effects", Journal of Econometrics 225(2). fixest ``sunab()`` / ``aggregate.fixest``
(Berge, lrberge/fixest ``R/did.R``) — the conventions reproduced here (reference cohorts, always-treated
removal, relative periods in the units of the time column, fixed cell-size weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped
from didx._validate import check_option
from didx.estimators.regression.common import RegressionResult, RegressionSource, default_spec
from didx.estimators.sun_abraham.cells import (
    MAX_PATTERN_PERIODS,
    CellFit,
    CellSource,
    fit_cells,
    fit_cells_covariates,
    fit_cells_unbalanced,
)
from didx.estimators.sun_abraham.design import Aggregation, aggregate_matrix, fmt_value, make_cells
from didx.inference.contract import ClusterCodes, CovarianceSource, LinearMapSource
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols
from didx.results.base import FrozenDict, Inference, Result
from didx.results.event import EventStudyResult


@dataclass(frozen=True, eq=False)
class SunAbrahamCoefficients(RegressionResult):
    """The raw cohort x relative-period coefficients (``tidy()`` has ``group`` and ``event_time`` columns)."""


@dataclass(frozen=True, eq=False)
class SunAbrahamAggregate(Result):
    """An aggregation of the Sun-Abraham cell coefficients (overall ATT or by cohort)."""


@dataclass(frozen=True, eq=False)
class SunAbrahamResult(EventStudyResult):
    """Sun-Abraham event study: one coefficient per relative period, the overall ``ATT`` (the headline) and
    the covariates, all linear in the regression's coefficients.

    ``.att`` and ``.cohort`` are the overall and by-cohort aggregations, ``.coefficients`` the raw cohort x
    relative-period coefficients; all share this result's covariance type (``with_vcov`` updates them too).
    """

    def _aggregate(self, kind: str) -> SunAbrahamAggregate:
        agg: Aggregation = self.extras["aggregations"][kind]
        raw_coef = np.asarray(self.extras["raw_coef"])
        raw_V = np.asarray(self.extras["raw_vcov"])
        A = agg.matrix
        headline = agg.names[0]
        return SunAbrahamAggregate(
            estimator=f"{self.estimator} — {'overall ATT' if kind == 'att' else 'by cohort'}",
            terms=agg.names, coef=A @ raw_coef, vcov_matrix=A @ raw_V @ A.T, headline=headline,
            inference=self.inference, sample=self.sample, design=self.design,
            term_info={"group": agg.group, "n_cells": agg.n_cells}, notes=self.notes,
            _source=LinearMapSource(cast(CovarianceSource, self._source), A),
        )

    @property
    def att(self) -> SunAbrahamAggregate:
        """The overall ATT: every post cell (e >= 0) weighted by its size (fixest ``agg = "ATT"``)."""
        return self._aggregate("att")

    @property
    def cohort(self) -> SunAbrahamAggregate:
        """The average post-treatment effect of each cohort (fixest ``agg = "cohort"``)."""
        return self._aggregate("cohort")

    @property
    def coefficients(self) -> SunAbrahamCoefficients:
        """The cohort x relative-period coefficients (and covariates) of the saturated regression."""
        raw = self.extras["raw_result"]
        assert isinstance(raw, SunAbrahamCoefficients)
        V = np.asarray(self.extras["raw_vcov"])
        return dataclasses.replace(raw, vcov_matrix=V, inference=self.inference)

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> SunAbrahamResult:
        # the source is the cohort x relative-period regression's: V is the covariance of the raw coefficients
        A = self.extras["aggregations"]["main"].matrix
        extras = {**self.extras, "raw_vcov": _readonly(V)}
        return dataclasses.replace(self, vcov_matrix=A @ V @ A.T, inference=inference, extras=extras)


def _readonly(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


def _as_ref(ref: float | Sequence[float]) -> tuple[float, ...]:
    vals = [ref] if isinstance(ref, int | float | np.integer | np.floating) else list(ref)
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not np.isfinite(v):
            raise InvalidOptionError(
                f"The 'ref' parameter of sun_abraham must be a relative period or a list of them (e.g. -1 or "
                f"[-1, -5]). Got {ref!r} instead."
            )
        out.append(float(v))
    if not out:
        raise InvalidOptionError("The 'ref' parameter of sun_abraham needs at least one relative period (e.g. -1).")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class _GeneralFit:
    """Builds the regression with dense interaction dummies (a picklable callable, kept by the cell path for
    covariance types it cannot compute from sums, e.g. CR3)."""

    arr: dict[str, Any]
    cell_index: np.ndarray
    k: int
    names: tuple[str, ...]
    fe_names: tuple[str, str]
    clusters: ClusterCodes
    default: Any
    treated: np.ndarray

    def __call__(self) -> RegressionSource:
        arr = self.arr
        n_cov = arr["covariates"].shape[1]
        X = np.zeros((arr["y"].shape[0], n_cov + self.k))
        if n_cov:
            X[:, :n_cov] = arr["covariates"]
        r = np.flatnonzero(self.cell_index >= 0)
        X[r, n_cov + self.cell_index[r]] = 1.0
        w = arr["weights"]
        fes = FixedEffects([arr["unit"], arr["time"]], list(self.fe_names), weights=w)
        fit = fit_ols(arr["y"], X, list(self.names), fe=fes, weights=w, func="sun_abraham")
        return RegressionSource(fit=fit, clusters=self.clusters, default=self.default, treated_codes=self.treated)


def _cohort_codes(ucoh: np.ndarray, gvals: np.ndarray) -> np.ndarray:
    """Code of each unit's cohort in ``gvals`` (-1 for never treated / not listed)."""
    pos = np.searchsorted(gvals, ucoh)
    pos = np.minimum(pos, max(gvals.shape[0] - 1, 0))
    ok = np.isfinite(ucoh) & (gvals.shape[0] > 0)
    if gvals.shape[0]:
        ok &= gvals[pos] == ucoh
    return np.where(ok, pos, -1).astype(np.int64)


def _subset(panel: Panel, keep: np.ndarray) -> dict[str, Any]:
    """Arrays of the kept rows with units and periods recoded to 0..L-1."""
    assert panel.unit is not None and panel.cohort is not None
    if keep.all():  # nothing dropped: no copies
        return {
            "y": panel.y, "unit": panel.unit, "time": panel.time, "periods": panel.periods, "cohort": panel.cohort,
            "covariates": panel.covariates, "weights": panel.weights, "codes": dict(panel.codes),
            "row_index": panel.row_index,
        }
    idx = np.flatnonzero(keep)
    _, unit = np.unique(panel.unit[idx], return_inverse=True)
    tpresent, time = np.unique(panel.time[idx], return_inverse=True)
    arrays = {
        "y": panel.y[idx], "unit": unit.reshape(-1).astype(np.int64), "time": time.reshape(-1).astype(np.int64),
        "periods": panel.periods[tpresent], "cohort": panel.cohort[idx],
        "covariates": panel.covariates[idx], "weights": None if panel.weights is None else panel.weights[idx],
        "codes": {k: v[idx] for k, v in panel.codes.items()}, "row_index": panel.row_index[idx],
    }
    return arrays


def sun_abraham(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    control: str = "never",
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    engine: str = "auto",
) -> SunAbrahamResult:
    """Sun & Abraham (2021) interaction-weighted event study (fixest's ``sunab()``).

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    cohort : first treated period of each unit (0 / NaN / inf / after the last period = never treated).
    ref : reference relative period(s): no dummy is created for them (default -1, fixest's ``ref.p``).
    control : ``"never"``: the never-treated units are the control (reference) cohort; ``"last_treated"``: the
        last-treated cohort is the control, periods from its treatment on are dropped and never-treated units
        are not used (Sun and Abraham's choice when no unit is never treated).
    covariates : time-varying controls added to the regression.
    vcov, cluster, ssc : covariance; default CR1 clustered by ``unit`` (fixest's default). ``"iid"``,
        ``"hetero"``, ``"CR1"`` with ``cluster=...`` (one or two columns), ``"CR3"``.
    weights : observation weights (the aggregation shares then use sums of weights, as fixest).
    engine : ``"auto"`` (cell sums without weights: balanced panels with or without covariates, unbalanced ones
        without covariates; otherwise the regression with dummies), ``"cells"`` or ``"regression"``. Both give
        the same numbers (see ``_sa_cells``).

    Returns
    -------
    SunAbrahamResult : an event study with one term per relative period (``<time>::<e>``), the overall
    ``ATT`` (headline) and the covariates; ``.att``, ``.cohort`` and ``.coefficients`` give the other
    aggregations and the raw cohort x period coefficients.

    Notes
    -----
    Relative periods are ``period - cohort`` in the units of the time column (fixest's convention). Units
    treated in the first observed period (or earlier) have no pre-period and are dropped (reported). A cohort
    observed only before its treatment is a reference cohort, like the never treated.
    """
    func = "sun_abraham"
    check_option(func, "control", control, ("never", "last_treated"))
    check_option(func, "engine", engine, ("auto", "cells", "regression"))
    refs = _as_ref(ref)
    panel = build_panel(data, func=func, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=cluster, require_control="never" if control == "never" else "none")
    assert panel.unit is not None and panel.cohort is not None
    report = panel.report
    periods = panel.periods
    T0 = panel.n_periods
    ucoh = panel.unit_cohort()
    gvals = np.unique(ucoh[np.isfinite(ucoh)])
    early = gvals < periods[0]
    odd = gvals[~early & ~np.isin(gvals, periods)]
    if odd.size:
        raise DataError(
            f"{func}: the cohort column {cohort!r} has the value(s) {', '.join(fmt_value(v) for v in odd[:5])}, "
            f"which are not periods of {time!r}. A cohort is the first treated period. Fix: set it to the first "
            f"period in which the unit is observed treated."
        )
    gcode = _cohort_codes(ucoh, gvals)[panel.unit]
    finite = gcode >= 0
    keep = np.ones(panel.n_obs, dtype=bool)
    notes: list[str] = []
    drops: list[Dropped] = []

    def n_units_kept() -> int:
        return int(np.count_nonzero(np.bincount(panel.unit[keep], minlength=panel.n_units)))  # type: ignore[index]

    def drop(mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        if newly.any():
            before = n_units_kept()
            keep[newly] = False
            drops.append(Dropped(reason, int(newly.sum()), before - n_units_kept()))

    g_last = float(gvals.max())
    if control == "last_treated":
        if gvals.shape[0] < 2:
            raise DesignError(
                f"{func}: control='last_treated' needs at least two treated cohorts in {cohort!r} (the last one is "
                f"the control); there is {gvals.shape[0]}. Fix: use control='never' with never-treated units."
            )
        drop(~finite, "never-treated units (control='last_treated' uses the last-treated cohort)")
        drop(periods[panel.time] >= g_last,
             f"periods from {fmt_value(g_last)} on, when the control cohort (last treated) is treated")
    # fixest: a cohort seen only at e >= 0 is always treated (dropped); one seen only at e < 0 is a reference
    rel_tab = periods[None, :] - gvals[:, None]
    Gv = gvals.shape[0]

    def presence() -> np.ndarray:
        key = (gcode + 1) * T0 + panel.time  # block 0: never treated
        counts = np.bincount(key if keep.all() else key[keep], minlength=(Gv + 1) * T0)
        return counts[T0:].reshape(Gv, T0) > 0

    pres = presence()
    has_pre = (pres & (rel_tab < 0)).any(axis=1)
    has_post = (pres & (rel_tab >= 0)).any(axis=1)
    always = has_post & ~has_pre
    if always.any():
        for c in np.flatnonzero(always):
            drop(gcode == c, f"always-treated units (cohort {fmt_value(gvals[c])}: treated in every observed period)")
    ref_cohort = ~has_post & has_pre
    if control == "never" and not (keep & ~finite).any():
        raise DesignError(
            f"{func}: no never-treated units remain to serve as the control group. Fix: use "
            f"control='last_treated', or add never-treated units."
        )
    ref_extra = [gvals[c] for c in np.flatnonzero(ref_cohort) if gvals[c] != g_last or control != "last_treated"]
    if ref_extra:
        notes.append(f"Cohort(s) {', '.join(fmt_value(c) for c in ref_extra)} observed only before treatment: used "
                     f"as reference (control) cohorts, as fixest does.")
    if drops:
        report = report.with_dropped(*drops)
    arr = _subset(panel, keep)
    n_kept = int(arr["y"].shape[0])
    n_units = int(arr["unit"].max()) + 1
    T = int(arr["periods"].shape[0])
    report = dataclasses.replace(report, n_obs=n_kept, n_units=n_units, n_periods=T)
    g_k = arr["cohort"]
    ucoh_k = np.full(n_units, np.inf)
    ucoh_k[arr["unit"]] = g_k
    gvals_k = gvals[np.isin(gvals, ucoh_k)]
    gcode_unit = _cohort_codes(ucoh_k, gvals_k)
    dummies = ~np.isin(gvals_k, gvals[ref_cohort])
    cells = make_cells(gcode_unit[arr["unit"]], arr["time"], gvals_k, arr["periods"], dummies, refs, time)
    if cells.k == 0:
        raise DesignError(
            f"{func}: no cohort x relative-period cell is left to estimate (every treated cohort is a reference "
            f"or every relative period is in ref={list(refs)}). Fix: check the cohort column and ref."
        )
    counts = np.bincount(arr["unit"], minlength=n_units)
    balanced = bool(counts.min() == T == counts.max())
    n_cov = arr["covariates"].shape[1]
    fast_ok = arr["weights"] is None and (balanced or (n_cov == 0 and T <= MAX_PATTERN_PERIODS))
    if engine == "cells" and not fast_ok:
        raise InvalidOptionError(
            f"{func}: engine='cells' needs a panel without weights (and, if it is unbalanced, without covariates "
            f"and with at most {MAX_PATTERN_PERIODS} periods). Fix: use engine='auto' (the regression is used "
            f"automatically)."
        )
    use_cells = fast_ok and engine != "regression"
    default = default_spec([unit], "iid", ssc)
    spec = resolve_vcov(func, vcov, cluster, default, ssc)
    codes = dict(arr["codes"])
    codes.setdefault(unit, arr["unit"])
    codes.setdefault(time, arr["time"])
    clusters = ClusterCodes(codes, arr["row_index"], panel.report.n_input_rows, panel.fingerprint)
    treated_row = np.isfinite(g_k).astype(np.float64)
    w = arr["weights"]
    size = np.bincount(cells.index[cells.index >= 0], minlength=cells.k).astype(np.float64) if w is None else \
        np.bincount(cells.index[cells.index >= 0], weights=w[cells.index >= 0], minlength=cells.k)
    cov_names = list(panel.covariate_names)
    all_names = [*cov_names, *cells.names]

    general_source = _GeneralFit(arr=arr, cell_index=cells.index, k=cells.k, names=tuple(all_names),
                                 fe_names=(unit, time), clusters=clusters, default=default,
                                 treated=treated_row)

    source: Any
    cf: CellFit | None = None
    method = "least squares with unit and time effects absorbed"
    if use_cells and not balanced:
        Gk = gvals_k.shape[0]
        grp = np.where(gcode_unit >= 0, gcode_unit, Gk)
        table = np.vstack([cells.table, np.full((1, T), -1, dtype=np.int64)])
        cf = fit_cells_unbalanced(arr["y"], arr["unit"], arr["time"], n_units, T, grp, table, list(cells.names),
                                  func)
        method = ("cohort x observed-periods x period cell means (unbalanced panel, no covariates: identical to "
                  "the regression)")
    elif use_cells:
        Gk = gvals_k.shape[0]
        grp = np.where(gcode_unit >= 0, gcode_unit, Gk)
        used = np.bincount(grp, minlength=Gk + 1) > 0
        remap = np.cumsum(used) - 1
        group_of_unit = remap[grp].astype(np.int64)
        cgt = np.vstack([cells.table, np.full((1, T), -1, dtype=np.int64)])[used]
        if n_cov:
            cf = fit_cells_covariates(arr["y"], arr["covariates"], cov_names, arr["unit"], arr["time"], n_units, T,
                                      group_of_unit, cgt, list(cells.names))
        else:
            cf = fit_cells(arr["y"], arr["unit"], arr["time"], n_units, T, group_of_unit, cgt, list(cells.names),
                           func)
        method = ("cohort x period sums (balanced panel: identical to the regression, no dummy matrix)" if n_cov
                  else "cohort x period cell means (balanced panel, no covariates: identical to the regression)")
    if cf is not None:
        source = CellSource(cells=cf, clusters=clusters, default=default, treated=treated_row,
                            general=general_source)
        fit = cf.fit
    else:
        source = general_source()
        fit = source.fit
    raw_V, inf = source.compute(func, spec)
    names = list(fit.names)
    raw_notes = list(notes)
    if fit.dropped_collinear:
        raw_notes.append("Dropped for collinearity: " + ", ".join(fit.dropped_collinear))
    info_pos = {n: j for j, n in enumerate(cells.names)}
    raw_group = np.array([cells.cohort[info_pos[n]] if n in info_pos else np.nan for n in names])
    raw_et = np.array([cells.event_time[info_pos[n]] if n in info_pos else np.nan for n in names])
    raw_n = np.array([size[info_pos[n]] if n in info_pos else np.nan for n in names])
    cov_kept = [n for n in names if n not in info_pos]

    def cov_rows() -> np.ndarray:
        A = np.zeros((len(cov_kept), len(names)))
        for r, n in enumerate(cov_kept):
            A[r, names.index(n)] = 1.0
        return A

    period = aggregate_matrix("period", names, cells, size, time)
    att = aggregate_matrix("att", names, cells, size, time)
    by_cohort = aggregate_matrix("cohort", names, cells, size, time)
    if not att.n_cells[0]:
        raise DesignError(f"{func}: no post-treatment cell (relative period >= 0) is estimated, so there is no ATT.")
    main_A = np.vstack([period.matrix, att.matrix, cov_rows()])
    main = Aggregation(names=(*period.names, "ATT", *cov_kept), matrix=main_A,
                       event_time=np.concatenate([period.event_time, [np.nan], np.full(len(cov_kept), np.nan)]),
                       group=np.full(main_A.shape[0], np.nan),
                       n_cells=np.concatenate([period.n_cells, att.n_cells, np.zeros(len(cov_kept), np.int64)]))
    n_treated_cohorts = int(np.unique(cells.cohort).shape[0])
    design = [
        ("Estimator", "Sun & Abraham (2021) interaction-weighted event study"),
        ("Outcome", y),
        ("Cohort", f"{cohort} (first treated period; relative period = {time} - {cohort})"),
        ("Control group", "never treated" if control == "never"
         else f"last-treated cohort ({fmt_value(g_last)}); periods from {fmt_value(g_last)} on dropped"),
        ("Reference period(s)", ", ".join(fmt_value(r) for r in refs) + " (no dummy; fixest ref.p)"),
        ("Interactions", f"{cells.k} cohort x relative-period cells, {n_treated_cohorts} treated cohorts"),
        ("Fixed effects", f"{unit}, {time}"),
        ("Covariates", ", ".join(cov_names) or "none"),
        ("Weights", weights or "none"),
        ("Aggregation", "cell sizes in the estimation sample, held fixed (fixest aggregate())"),
        ("Computation", method),
    ]
    raw_result = SunAbrahamCoefficients(
        estimator="Sun & Abraham (2021) cohort x period coefficients", terms=tuple(names), coef=fit.coef,
        vcov_matrix=raw_V, headline=names[len(cov_kept)] if len(cov_kept) < len(names) else names[0],
        inference=inf, sample=report, design=tuple(design),
        term_info={"group": raw_group, "event_time": raw_et, "n": raw_n}, notes=tuple(raw_notes),
        _source=source,
    )
    extras = {"reference": refs, "raw_coef": _readonly(fit.coef), "raw_vcov": _readonly(raw_V),
              "raw_result": raw_result,
              "aggregations": FrozenDict({"main": main, "period": period, "att": att, "cohort": by_cohort}),
              "cell_size": FrozenDict(dict(zip(cells.names, size.tolist(), strict=True)))}
    return SunAbrahamResult(
        estimator="Sun & Abraham (2021)", terms=main.names, coef=main_A @ fit.coef,
        vcov_matrix=main_A @ raw_V @ main_A.T,
        headline="ATT", inference=inf, sample=report, design=tuple(design),
        term_info={"event_time": main.event_time, "n_cells": main.n_cells}, extras=extras, notes=tuple(raw_notes),
        _source=source,  # the raw coefficients' source: _with_covariance maps it to the terms
    )
