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

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._validate import as_list, check_option
from didx.engines.source import engine_input
from didx.estimators.regression.common import RegressionSource, default_spec
from didx.estimators.sun_abraham.cells import (
    MAX_PATTERN_PERIODS,
    CellFit,
    CellSource,
    fit_cells,
    fit_cells_covariates,
    fit_cells_unbalanced,
)
from didx.estimators.sun_abraham.design import Aggregation, Cells, aggregate_matrix, fmt_value, make_cells
from didx.estimators.sun_abraham.result import (
    SunAbrahamAggregate,
    SunAbrahamCoefficients,
    SunAbrahamResult,
    readonly,
)
from didx.estimators.sun_abraham.sample import SASample, select_sample
from didx.inference.contract import ClusterCodes
from didx.inference.vcov import SSC, VcovSpec, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.registry import PRE_PERIOD
from didx.results.base import FrozenDict

__all__ = ["SunAbrahamAggregate", "SunAbrahamCoefficients", "SunAbrahamResult", "from_panel", "sun_abraham"]

FUNC = "sun_abraham"
CONTROLS = ("never", "last_treated")
ENGINES = ("auto", "cells", "regression")


def sun_abraham(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    control_group: str = "never",
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
    ref : reference relative period(s): no dummy is created for them (default -1, fixest's ``ref.p``). Each must
        be negative and observed in some treated cohort (fixest accepts any value silently; a value outside the
        data leaves the model unidentified, so here it is an error).
    control_group : ``"never"``: the never-treated units are the control (reference) cohort; ``"last_treated"``: the
        last-treated cohort is the control, periods from its treatment on are dropped and never-treated units
        are not used (Sun and Abraham's choice when no unit is never treated).
    covariates : time-varying controls added to the regression.
    vcov, cluster, ssc : covariance; default CR1 clustered by ``unit`` (fixest's default). ``"iid"``,
        ``"hetero"``, ``"CR1"`` with ``cluster=...`` (one or two columns), ``"CR3"``.
    weights : observation weights (the aggregation shares then use sums of weights, as fixest). Rows with a zero
        weight are dropped and counted.
    engine : ``"auto"`` (cell sums without weights: balanced panels with or without covariates, unbalanced ones
        without covariates; otherwise the regression with dummies), ``"cells"`` or ``"regression"``. Both give
        the same numbers (see :mod:`didx.estimators.sun_abraham.cells`).

    Returns
    -------
    SunAbrahamResult : an event study with one term per relative period (``<time>::<e>``), the overall
    ``ATT`` (headline) and the covariates; ``aggregate("att" | "cohort" | "period" | "post" | ...)`` gives the
    aggregations, ``.coefficients`` the raw cohort x period coefficients, ``wild_bootstrap(term)`` the wild
    cluster bootstrap of any term.

    Notes
    -----
    Relative periods are ``period - cohort`` in the units of the time column (fixest's convention). Units
    treated in the first observed period (or earlier) have no pre-period and are dropped (reported). A cohort
    observed only before its treatment is a reference cohort, like the never treated. A caller that already
    built a :class:`didx._panel.Panel` uses :func:`from_panel`.
    """
    refs = _check_options(ref, control_group, engine)
    if (src := engine_input(data, FUNC)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.sa import sun_abraham_moments

        return cast(SunAbrahamResult, sun_abraham_moments(
            src, (_aggregations, _design, _check_cells), y=y, unit=unit, time=time, cohort=cohort, refs=refs,
            control=control_group, covariates=covariates, vcov=vcov, cluster=cluster, weights=weights, ssc=ssc,
            engine=engine))
    panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=cluster,
                        require_control="never" if control_group == "never" else "none", zero_weights="drop")
    return _estimate(panel, refs=refs, control=control_group, vcov=vcov, cluster=cluster, ssc=ssc, engine=engine)


def from_panel(
    panel: Panel,
    *,
    ref: float | Sequence[float] = -1,
    control_group: str = "never",
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    ssc: SSC | None = None,
    engine: str = "auto",
) -> SunAbrahamResult:
    """:func:`sun_abraham` on a panel already built by :func:`didx._panel.build_panel` (no second read of the
    frame): the outcome, unit, time, cohort, covariates and weights are the panel's, named as in ``panel.names``.

    The panel needs ``unit=`` and ``cohort=``; a ``cluster=`` column other than the unit and time columns must have
    been given to ``build_panel`` (its codes are in ``panel.codes``). Rows with a zero weight are dropped and
    counted here. The other arguments are those of :func:`sun_abraham`.
    """
    refs = _check_options(ref, control_group, engine)
    if panel.unit is None or panel.cohort is None:
        raise InvalidOptionError(
            f"{FUNC}: the panel has no {'unit' if panel.unit is None else 'cohort'} column. Fix: build it with "
            f"build_panel(..., unit=..., cohort=...)."
        )
    known = {*panel.codes, panel.names.get("unit"), panel.names.get("time")}
    missing = [c for c in as_list(cluster) if c not in known]
    if missing:
        raise InvalidOptionError(
            f"{FUNC}: the cluster column {missing[0]!r} is not in the panel (its codes: "
            f"{sorted(str(c) for c in known if c is not None)}). Fix: build the panel with cluster={missing[0]!r}."
        )
    return _estimate(panel, refs=refs, control=control_group, vcov=vcov, cluster=cluster, ssc=ssc, engine=engine)


# ---------------------------------------------------------------------------------------------------------------
# validation
def _check_options(ref: float | Sequence[float], control: str, engine: str) -> tuple[float, ...]:
    check_option(FUNC, "control_group", control, CONTROLS)
    check_option(FUNC, "engine", engine, ENGINES)
    vals = [ref] if isinstance(ref, int | float | np.integer | np.floating) else list(ref)
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not np.isfinite(v):
            raise InvalidOptionError(
                f"The 'ref' parameter of {FUNC} must be a relative period or a list of them (e.g. -1 or "
                f"[-1, -5]). Got {ref!r} instead."
            )
        if v >= 0:
            raise InvalidOptionError(
                f"{FUNC}: ref={fmt_value(v)} is not a pre-treatment relative period; a reference period must be "
                f"negative (relative period = period - cohort < 0). Fix: use ref=-1 (the period just before "
                f"treatment) or ref=-2 to allow one period of anticipation."
            )
        out.append(float(v))
    if not out:
        raise InvalidOptionError(f"The 'ref' parameter of {FUNC} needs at least one relative period (e.g. -1).")
    return tuple(out)


def _check_cells(cells: Cells, refs: tuple[float, ...]) -> None:
    missing = [r for r in refs if not np.any(cells.observed == r)]
    if missing:
        shown = ", ".join(fmt_value(v) for v in cells.observed[:30])
        raise DesignError(
            f"{FUNC}: the reference period(s) ref={', '.join(fmt_value(r) for r in missing)} are not relative periods "
            f"of any treated cohort in the sample (observed: {shown}), so no dummy is left out for them and the "
            f"saturated regression is not identified. Fix: choose ref among the observed negative relative periods."
        )
    if cells.k == 0:
        raise DesignError(
            f"{FUNC}: no cohort x relative-period cell is left to estimate (every treated cohort is a reference "
            f"or every relative period is in ref={list(refs)}). Fix: check the cohort column and ref."
        )


# ---------------------------------------------------------------------------------------------------------------
# estimation
def _estimate(panel: Panel, *, refs: tuple[float, ...], control: str, vcov: str | None,
              cluster: str | Sequence[str] | None, ssc: SSC | None, engine: str) -> SunAbrahamResult:
    """Sample, cells, fit, result."""
    unit, time = str(panel.names["unit"]), str(panel.names["time"])
    sample = select_sample(panel, control=control, func=FUNC)
    cells = make_cells(sample.cohort_of_unit[sample.unit], sample.time, sample.cohorts, sample.periods,
                       sample.dummies, refs, time)
    _check_cells(cells, refs)
    default = default_spec([unit], "iid", ssc)
    spec = resolve_vcov(FUNC, vcov, cluster, default, ssc)
    codes = dict(sample.codes)
    codes.setdefault(unit, sample.unit)
    codes.setdefault(time, sample.time)
    clusters = ClusterCodes(codes, sample.row_index, panel.report.n_input_rows, panel.fingerprint)
    source, method = _fit(sample, cells, clusters=clusters, default=default, engine=engine, fe_names=(unit, time))
    return _assemble(sample, cells, source, spec, method, refs=refs, control=control, names=panel.names)


def _fit(sample: SASample, cells: Cells, *, clusters: ClusterCodes, default: VcovSpec, engine: str,
         fe_names: tuple[str, str]) -> tuple[CellSource | RegressionSource, str]:
    """The saturated regression: from cell sums where possible (no dummy matrix), else with dense dummies."""
    T, n_cov = sample.n_periods, sample.covariates.shape[1]
    balanced = sample.balanced
    fast_ok = sample.weights is None and (balanced or (n_cov == 0 and T <= MAX_PATTERN_PERIODS))
    if engine == "cells" and not fast_ok:
        raise InvalidOptionError(
            f"{FUNC}: engine='cells' needs a panel without weights (and, if it is unbalanced, without covariates "
            f"and with at most {MAX_PATTERN_PERIODS} periods). Fix: use engine='auto' (the regression is used "
            f"automatically)."
        )
    if not fast_ok or engine == "regression":
        return (_regression_source(sample, cells, clusters, default, fe_names),
                "least squares with unit and time effects absorbed")
    # the rows' unit and time codes are the stored cluster codes of those columns (one array each, not two)
    unit = _same(clusters.stored[fe_names[0]], sample.unit)
    time = _same(clusters.stored[fe_names[1]], sample.time)
    N, G = sample.n_units, sample.cohorts.shape[0]
    grp = np.where(sample.cohort_of_unit >= 0, sample.cohort_of_unit, G)
    table = np.vstack([cells.table, np.full((1, T), -1, dtype=np.int64)])
    cf: CellFit | None
    if not balanced:
        cf = fit_cells_unbalanced(sample.y, unit, time, N, T, grp, table, list(cells.names), FUNC)
        method = ("cohort x observed-periods x period cell means (unbalanced panel, no covariates: identical to "
                  "the regression)")
    else:
        used = np.bincount(grp, minlength=G + 1) > 0
        group_of_unit = (np.cumsum(used) - 1)[grp].astype(np.int64)
        if n_cov:
            cf = fit_cells_covariates(sample.y, sample.covariates, list(sample.covariate_names), unit, time, N, T,
                                      group_of_unit, table[used], list(cells.names))
            method = "cohort x period sums (balanced panel: identical to the regression, no dummy matrix)"
        else:
            cf = fit_cells(sample.y, unit, time, N, T, group_of_unit, table[used], list(cells.names), FUNC)
            method = "cohort x period cell means (balanced panel, no covariates: identical to the regression)"
    assert cf is not None  # fast_ok: at most MAX_PATTERN_PERIODS periods when unbalanced
    return CellSource(cells=cf, clusters=clusters, default=default, treated=sample.treated, fe_names=fe_names), method


def _same(stored: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``stored`` if it holds the same codes as ``codes`` (then one array is kept, not two), else ``codes``."""
    return stored if np.array_equal(stored, codes) else codes


def _regression_source(sample: SASample, cells: Cells, clusters: ClusterCodes, default: VcovSpec,
                       fe_names: tuple[str, str]) -> RegressionSource:
    """The regression with dense interaction dummies (weights, or covariates on an unbalanced panel)."""
    n_cov = sample.covariates.shape[1]
    X = np.zeros((sample.n_obs, n_cov + cells.k))
    if n_cov:
        X[:, :n_cov] = sample.covariates
    r = np.flatnonzero(cells.index >= 0)
    X[r, n_cov + cells.index[r]] = 1.0
    w = sample.weights
    fes = FixedEffects([sample.unit, sample.time], list(fe_names), weights=w)
    fit = fit_ols(sample.y, X, [*sample.covariate_names, *cells.names], fe=fes, weights=w, func=FUNC)
    return RegressionSource(fit=fit, clusters=clusters, default=default, treated_codes=sample.treated)


# ---------------------------------------------------------------------------------------------------------------
# result
def _aggregations(names: Sequence[str], cells: Cells, size: np.ndarray, time: str) -> dict[str, Aggregation]:
    """The event-study terms (relative periods, ATT, covariates) and fixest's aggregations, over ``names``."""
    period = aggregate_matrix("period", names, cells, size, time)
    att = aggregate_matrix("att", names, cells, size, time)
    by_cohort = aggregate_matrix("cohort", names, cells, size, time)
    if not att.n_cells[0]:
        raise DesignError(f"{FUNC}: no post-treatment cell (relative period >= 0) is estimated, so there is no ATT.")
    cell_names = set(cells.names)
    cov_kept = [n for n in names if n not in cell_names]
    cov_rows = np.zeros((len(cov_kept), len(names)))
    for r, n in enumerate(cov_kept):
        cov_rows[r, list(names).index(n)] = 1.0
    main_A = np.vstack([period.matrix, att.matrix, cov_rows])
    main = Aggregation(names=(*period.names, "ATT", *cov_kept), matrix=main_A,
                       event_time=np.concatenate([period.event_time, [np.nan], np.full(len(cov_kept), np.nan)]),
                       group=np.full(main_A.shape[0], np.nan),
                       n_cells=np.concatenate([period.n_cells, att.n_cells, np.zeros(len(cov_kept), np.int64)]))
    return {"main": main, "period": period, "att": att, "cohort": by_cohort}


def _design(sample: SASample, cells: Cells, method: str, *, refs: tuple[float, ...], control: str,
            names: Mapping[str, Any]) -> list[tuple[str, str]]:
    unit, time, cohort = names["unit"], names["time"], names["cohort"]
    g_last = sample.last_cohort
    return [
        ("Estimator", "Sun & Abraham (2021) interaction-weighted event study"),
        ("Outcome", str(names["y"])),
        ("Cohort", f"{cohort} (first treated period; relative period = {time} - {cohort})"),
        ("Control group", "never treated" if control == "never"
         else f"last-treated cohort ({fmt_value(g_last)}); periods from {fmt_value(g_last)} on dropped"),
        ("Reference period(s)", ", ".join(fmt_value(r) for r in refs) + " (no dummy; fixest ref.p)"),
        ("Interactions", f"{cells.k} cohort x relative-period cells, {np.unique(cells.cohort).shape[0]} treated "
                         f"cohorts"),
        ("Fixed effects", f"{unit}, {time}"),
        ("Covariates", ", ".join(sample.covariate_names) or "none"),
        ("Weights", names.get("weights") or "none"),
        ("Aggregation", "cell sizes in the estimation sample, held fixed (fixest aggregate())"),
        ("Computation", method),
    ]


def _assemble(sample: SASample, cells: Cells, source: CellSource | RegressionSource, spec: VcovSpec, method: str,
              *, refs: tuple[float, ...], control: str, names: Mapping[str, Any]) -> SunAbrahamResult:
    """The raw coefficients' result and the event study, both on the regression's covariance source."""
    raw_V, inf = source.compute(FUNC, spec)
    fit: OLSFit = source.cells.fit if isinstance(source, CellSource) else source.fit
    coef_names = list(fit.names)
    w = sample.weights
    has = cells.index >= 0
    size = np.bincount(cells.index[has], weights=None if w is None else w[has], minlength=cells.k).astype(np.float64)
    aggs = _aggregations(coef_names, cells, size, str(names["time"]))
    main = aggs["main"]
    notes = list(sample.notes)
    if fit.dropped_collinear:
        notes.append("Dropped for collinearity: " + ", ".join(fit.dropped_collinear))
    design = tuple(_design(sample, cells, method, refs=refs, control=control, names=names))
    pos = {n: j for j, n in enumerate(cells.names)}

    def per_coef(values: np.ndarray) -> np.ndarray:
        return np.array([values[pos[n]] if n in pos else np.nan for n in coef_names], dtype=float)

    n_cov = len(coef_names) - sum(n in pos for n in coef_names)
    raw_result = SunAbrahamCoefficients(
        estimator="Sun & Abraham (2021) cohort x period coefficients", terms=tuple(coef_names), coef=fit.coef,
        vcov_matrix=raw_V, headline=coef_names[n_cov] if n_cov < len(coef_names) else coef_names[0],
        inference=inf, sample=sample.report, design=design,
        term_info={"group": per_coef(cells.cohort), "event_time": per_coef(cells.event_time), "n": per_coef(size)},
        notes=tuple(notes), _source=source,
    )
    extras = {"reference": refs, "raw_coef": readonly(fit.coef), "raw_vcov": readonly(raw_V),
              "raw_result": raw_result, "aggregations": FrozenDict(aggs),
              "cell_size": FrozenDict(dict(zip(cells.names, size.tolist(), strict=True)))}
    A = main.matrix
    return SunAbrahamResult(
        estimator="Sun & Abraham (2021)", terms=main.names, coef=A @ fit.coef, vcov_matrix=A @ raw_V @ A.T,
        headline="ATT", inference=inf, sample=sample.report, design=design,
        term_info={"event_time": main.event_time, "n_cells": main.n_cells}, extras=extras, notes=tuple(notes),
        _source=source,  # the raw coefficients' source: _with_covariance maps it to the terms
        pre_period_meaning=PRE_PERIOD["sun_abraham"], cross_covariance=True,
    )
