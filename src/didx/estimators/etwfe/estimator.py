"""Extended two-way fixed effects (ETWFE; Wooldridge 2021, 2023), as R etwfe (``etwfe()`` + ``emfx()``).

The saturated regression

    y_it = a_g + l_t + sum_{(h, s) treated} tau_hs 1[g = h, t = s]
           + W_it' b + sum_h 1[g = h] W_it' b_h + sum_s 1[t = s] W_it' c_s
           + sum_{(h, s) treated} 1[g = h, t = s] (W_it - Wbar_h)' d_hs + u_it

with cohort effects ``a_g`` (or unit effects, ``fe="unit"``: the same point estimates in the linear model without
covariates or with covariates constant within units; time-varying covariates give other estimates), period
effects ``l_t``, one treatment effect per treated cohort x period cell and, with covariates ``W``, the covariates
interacted with cohort, period and the treated cells, the latter demeaned within cohort (``W - Wbar_h``, R etwfe's
``_dm`` variables). ``control="not_yet"`` (R's default ``cgroup = "notyet"``) puts a dummy on every cell with
``t >= g``, so the not-yet-treated and never-treated observations are the controls; ``control="never"`` puts one on
every cell of a treated cohort except its reference period (the period before ``g``), so the pre-treatment cells
are leads and only the never treated are controls. Poisson and logit (``family=``) fit the same index by maximum
likelihood with the cohort and period effects absorbed (:mod:`didx.estimators.etwfe.glm`).

The effects of interest are R ``emfx()``'s: the change in the predicted outcome when the treatment dummies are
switched on, averaged over the treated observations -- overall (``"simple"``), by cohort, period or event time --
with delta-method standard errors (:mod:`didx.estimators.etwfe.result`). Without covariates and with
``control="not_yet"`` the cell effects ``tau_gt`` equal the BJS imputation estimator's (Wooldridge 2021).

References: Wooldridge, J. M. (2021), "Two-way fixed effects, the two-way Mundlak regression, and
difference-in-differences estimators" (Empirical Economics 2025); Wooldridge, J. M. (2023), "Simple approaches to
nonlinear difference-in-differences with panel data", Econometrics Journal 26(3). R etwfe (McDermott), whose
conventions (reference cohort, reference period, demeaned covariates, emfx's averaging) are reproduced here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from didx._errors import DataError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._validate import as_list, check_option, fmt_value
from didx.estimators.etwfe.cells import CellSource, fit_cells
from didx.estimators.etwfe.design import cell_dummies, cohort_means, covariate_terms, finish_aggregation
from didx.estimators.etwfe.result import (
    KINDS,
    Aggregation,
    EtwfeAggregate,
    EtwfeEventStudy,
    EtwfeResult,
    normal_inference,
    readonly,
)
from didx.estimators.etwfe.sample import Cells, aggregation_rows, make_cells, select_sample
from didx.estimators.regression.common import RegressionSource, default_spec
from didx.inference.contract import ClusterCodes, CovarianceSource
from didx.inference.vcov import SSC, VcovSpec, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.registry import PRE_PERIOD

__all__ = ["EtwfeAggregate", "EtwfeEventStudy", "EtwfeResult", "etwfe", "from_panel"]

FUNC = "etwfe"
CONTROLS = ("not_yet", "never")
FAMILIES = (None, "poisson", "logit")
FE_CHOICES = ("cohort", "unit")
CELL_PATH = True
"""Fit the linear model without covariates from cell sums (False: the row-level regression; the tests compare)."""


def etwfe(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    control: str = "not_yet",
    family: str | None = None,
    fe: str = "cohort",
    weights: str | None = None,
    cluster: str | Sequence[str] | None = None,
    vcov: str | None = None,
    ssc: SSC | None = None,
) -> EtwfeResult:
    """Extended two-way fixed effects (Wooldridge), equal to R ``etwfe()`` + ``emfx()``.

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    cohort : first treated period of each unit (0 / NaN / inf / after the last period = never treated).
    covariates : controls; each enters alone, interacted with cohort and period, and demeaned within cohort
        interacted with every treated cell (R etwfe's ``y ~ x``).
    control : ``"not_yet"`` (default, R's ``cgroup = "notyet"``): not-yet- and never-treated observations;
        ``"never"``: never-treated units only, with a reference period (the period before treatment) per cohort,
        so the event study has leads.
    family : None (linear), ``"poisson"`` or ``"logit"`` (fixest ``feglm``; effects on the response scale).
    fe : ``"cohort"`` (default: cohort and period effects, R etwfe's) or ``"unit"`` (unit and period effects;
        the same point estimates in the linear model without covariates or with covariates constant within units,
        other residuals and SEs; time-varying covariates give other point estimates, as in R; linear only).
    weights : observation weights (weighted least squares). As R emfx, the effects average the treated
        observations unweighted.
    cluster : cluster column(s) of the CR1 covariance; default ``unit`` (R: ``vcov = ~unit``).
    vcov, ssc : another covariance (``"iid"``, ``"hetero"``, ``"CR0"``, ...) and fixest's small-sample
        correction (:class:`didx.SSC`); the default is CR1 by ``cluster`` with fixest's correction.

    Returns
    -------
    EtwfeResult : ``.estimate`` is the overall ATT (emfx ``"simple"``); ``aggregate("simple" | "group" |
    "calendar" | "event")``; ``.coefficients``; ``with_vcov(...)``.
    """
    fam = _check_options(control, family, fe)
    panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=cluster, require_control="none", zero_weights="drop")
    return _estimate(panel, control=control, family=fam, fe=fe, cluster=as_list(cluster), vcov=vcov, ssc=ssc)


def from_panel(panel: Panel, *, control: str = "not_yet", family: str | None = None, fe: str = "cohort",
               cluster: str | Sequence[str] | None = None, vcov: str | None = None,
               ssc: SSC | None = None) -> EtwfeResult:
    """:func:`etwfe` on a panel built by :func:`didx._panel.build_panel` (the event-study comparison's entry)."""
    fam = _check_options(control, family, fe)
    if panel.unit is None or panel.cohort is None:
        raise InvalidOptionError(f"{FUNC}: the panel needs unit= and cohort= columns.")
    known = {*panel.codes, panel.names.get("unit"), panel.names.get("time")}
    missing = [c for c in as_list(cluster) if c not in known]
    if missing:
        raise InvalidOptionError(
            f"{FUNC}: the cluster column {missing[0]!r} is not in the panel. Fix: build it with cluster=."
        )
    return _estimate(panel, control=control, family=fam, fe=fe, cluster=as_list(cluster), vcov=vcov, ssc=ssc)


def _check_options(control: str, family: str | None, fe: str) -> str | None:
    check_option(FUNC, "control", control, CONTROLS)
    check_option(FUNC, "fe", fe, FE_CHOICES)
    fam = family.lower() if isinstance(family, str) else family
    if fam in ("gaussian", "linear"):
        fam = None
    if fam not in FAMILIES:
        raise InvalidOptionError(
            f"The 'family' parameter of {FUNC} must be one of {{None, 'poisson', 'logit'}}. Got {family!r} instead."
        )
    if fam is not None and fe == "unit":
        raise InvalidOptionError(
            f"{FUNC}: fe='unit' is for the linear model; with family={fam!r} the cohort and period effects are used "
            f"(as R etwfe, which drops ivar for nonlinear families: unit effects would bring an incidental-parameter "
            f"bias to the logit and do not give emfx's effects). Fix: drop fe= or family=."
        )
    return fam


# ---------------------------------------------------------------------------------------------------------------
def _estimate(panel: Panel, *, control: str, family: str | None, fe: str, cluster: list[str], vcov: str | None,
              ssc: SSC | None) -> EtwfeResult:
    names = panel.names
    unit_name, time_name, cohort_name = str(names["unit"]), str(names["time"]), str(names["cohort"])
    if family is not None:
        _check_support(panel, family, str(names["y"]))
    sample, control_text = select_sample(panel, control=control, func=FUNC)
    cells = make_cells(sample, control=control, cohort_name=cohort_name, time_name=time_name)
    assert sample.unit is not None
    codes = dict(sample.codes)
    codes.setdefault(unit_name, sample.unit)
    clusters = ClusterCodes(codes, None if sample.all_rows_kept else sample.row_index, sample.report.n_input_rows,
                            sample.fingerprint)
    default = default_spec([unit_name], "iid", ssc)
    spec = resolve_vcov(FUNC, vcov, cluster or None, default, ssc)
    treated_row = np.isfinite(sample.cohort) if sample.cohort is not None else np.zeros(sample.n_obs, bool)
    p = sample.covariates.shape[1]
    means = cohort_means(panel, cells.cohorts) if p else None
    G, T = cells.table.shape
    cnt = np.bincount(cells.cell, minlength=G * T).astype(np.float64)
    xdm_sums = np.zeros((G * T, p))
    source: CovarianceSource
    if family is not None:
        from didx.estimators.etwfe.glm import fit_glm

        glm = fit_glm(sample, cells, family=family, clusters=clusters, default=default, treated=treated_row,
                      cohort_name=cohort_name, time_name=time_name, means=means)
        source, params, coef_names, method = glm.source, glm.params, glm.coef_names, glm.method
        aggs = {k: glm.aggregation(k, cells) for k in KINDS}
        aggs.update({f"{k}:link": glm.aggregation(k, cells, "link") for k in KINDS})
        n_coef = len(coef_names)
    else:
        if p == 0 and fe == "cohort" and CELL_PATH:
            cr = fit_cells(sample.y, sample.weights, cells.cell, cells.cohort, sample.time, G, T, cells.table,
                           cells.names, FUNC)
            cr = dataclasses.replace(cr, unit_codes=clusters.stored[unit_name])
            source = CellSource(regression=cr, clusters=clusters, default=default, treated=treated_row)
            fit = cr.fit
            method = "cohort x period cell sums (no covariates: identical to the row-level regression)"
        elif p == 0 and fe == "unit" and CELL_PATH and sample.weights is None and (
                unit_cells := _unit_cells(sample, cells, clusters, default, treated_row, unit_name, time_name)):
            source, fit = unit_cells
            method = ("cohort x period cell means with unit effects (no covariates: identical to the row-level "
                      "regression)")
        else:
            C, cnames, dm_cols, dm_names, Wdm = covariate_terms(sample, cells, cohort_name, time_name, means)
            for j in range(p):
                xdm_sums[:, j] = np.bincount(cells.cell, weights=Wdm[:, j], minlength=G * T)
            X = np.column_stack([C, cell_dummies(cells), dm_cols])
            factors = [cells.cohort, sample.time] if fe == "cohort" else [sample.unit, sample.time]
            fes = FixedEffects(factors, [cohort_name if fe == "cohort" else unit_name, time_name],
                               weights=sample.weights)
            fit = fit_ols(sample.y, X, [*cnames, *cells.names, *dm_names], fe=fes, weights=sample.weights,
                          func=FUNC)
            source = RegressionSource(fit=fit, clusters=clusters, default=default, treated_codes=treated_row)
            method = "least squares with the fixed effects absorbed"
        params = fit.coef
        coef_names = list(fit.names)
        n_coef = len(coef_names)
        aggs = {k: _linear_aggregation(k, cells, cnt, xdm_sums, coef_names, params, time_name, cohort_name,
                                       list(sample.covariate_names)) for k in KINDS}
    V, inf = source.compute(FUNC, spec)  # type: ignore[attr-defined]  # every source here has compute()
    return _assemble(sample, cells, source, params, V, inf, coef_names, n_coef, aggs, method=method,
                     control=control, control_text=control_text, family=family, fe=fe)


def _unit_cells(sample: Panel, cells: Cells, clusters: ClusterCodes, default: VcovSpec, treated: np.ndarray,
                unit_name: str, time_name: str) -> tuple[CovarianceSource, OLSFit] | None:
    """Unit and period effects without covariates or weights: the Sun-Abraham cell machinery (the same saturated
    regression with another table of cells), balanced or with at most ``MAX_PATTERN_PERIODS`` periods."""
    from didx.estimators.sun_abraham.cells import CellSource as UnitCellSource
    from didx.estimators.sun_abraham.cells import fit_cells as fit_unit_cells
    from didx.estimators.sun_abraham.cells import fit_cells_unbalanced

    assert sample.unit is not None
    N, T = sample.n_units, sample.n_periods
    cohort_of_unit = np.zeros(N, dtype=np.int64)
    cohort_of_unit[sample.unit] = cells.cohort
    if sample.is_balanced:
        cf = fit_unit_cells(sample.y, sample.unit, sample.time, N, T, cohort_of_unit, cells.table, list(cells.names),
                            FUNC)
    else:
        found = fit_cells_unbalanced(sample.y, sample.unit, sample.time, N, T, cohort_of_unit, cells.table,
                                     list(cells.names), FUNC)
        if found is None:
            return None
        cf = found
    src = UnitCellSource(cells=cf, clusters=clusters, default=default, treated=treated,
                         fe_names=(unit_name, time_name))
    return src, cf.fit


def _check_support(panel: Panel, family: str, y: str) -> None:
    """A GLM outcome must be in its family's support (counts >= 0; a 0/1 outcome for the logit)."""
    yv = panel.y
    if family == "poisson":
        bad = yv < 0
        if bad.any():
            raise DataError(
                f"{FUNC}: family='poisson' needs a non-negative outcome, but {y!r} has {int(bad.sum())} negative "
                f"value(s) (e.g. {fmt_value(float(yv[bad][0]))}). Fix: use the linear model (family=None) or a "
                f"non-negative outcome."
            )
    else:
        bad = (yv != 0) & (yv != 1)
        if bad.any():
            raise DataError(
                f"{FUNC}: family='logit' needs a 0/1 outcome, but {y!r} has {int(bad.sum())} other value(s) "
                f"(e.g. {fmt_value(float(yv[bad][0]))}). Fix: recode it as 0/1, or use family='poisson' for counts."
            )


def _linear_aggregation(kind: str, cells: Cells, cnt: np.ndarray, xdm_sums: np.ndarray, coef_names: list[str],
                        params: np.ndarray, time_name: str, cohort_name: str, cov_names: list[str]) -> Aggregation:
    """emfx's average of ``tau_cell + (W - Wbar_g)' d_cell`` over the treated observations of each group: a
    linear map of the coefficients."""
    member, values = aggregation_rows(cells, kind)
    den = member @ cnt
    pos = {n: j for j, n in enumerate(coef_names)}
    J = np.zeros((len(values), len(coef_names)))
    flat = cells.table.reshape(-1)
    for c in np.flatnonzero(flat >= 0):
        j = pos.get(cells.names[flat[c]])
        if j is not None:
            J[:, j] += member[:, c] * cnt[c]
        for a, x in enumerate(cov_names):
            jd = pos.get(f"{cells.names[flat[c]]}:{x}_dm")
            if jd is not None:
                J[:, jd] += member[:, c] * xdm_sums[c, a]
    J /= np.where(den > 0, den, 1.0)[:, None]
    return finish_aggregation(kind, values, J @ params, J, den, cohort_name, time_name)


def _assemble(sample: Panel, cells: Cells, source: CovarianceSource, params: np.ndarray, V: np.ndarray,
              inf: Any, coef_names: list[str], n_coef: int, aggs: Mapping[str, Aggregation], *, method: str,
              control: str, control_text: str, family: str | None, fe: str) -> EtwfeResult:
    names = sample.names
    n_par = params.shape[0]
    sel = np.zeros((n_coef, n_par))
    sel[np.arange(n_coef), np.arange(n_coef)] = 1.0
    simple = aggs["simple"]
    J = np.vstack([simple.jacobian, sel])
    pos = {n: j for j, n in enumerate(cells.names)}
    cg, ct = cells.coef_cells()
    group = np.array([cells.cohorts[cg[pos[n]]] if n in pos else np.nan for n in coef_names])
    period = np.array([cells.periods[ct[pos[n]]] if n in pos else np.nan for n in coef_names])
    notes: list[str] = []
    inner = getattr(source, "cells", None)  # a unit-effects cell source: its cell fit (not the rows rebuilt)
    fit_used = inner.fit if inner is not None else getattr(source, "fit", None)
    dropped = getattr(fit_used, "dropped_collinear", ())
    if dropped:
        notes.append("Dropped for collinearity: " + ", ".join(dropped))
    fam = ("linear (least squares)" if family is None
           else f"{family} (maximum likelihood, fixest feglm; the coefficients are on the link scale)")
    design = (
        ("Estimator", "Extended TWFE (Wooldridge 2021, 2023), R etwfe"),
        ("Outcome", str(names["y"])),
        ("Model", fam),
        ("Cohort", f"{names['cohort']} (first treated period)"),
        ("Control group", control_text),
        ("Treatment cells", f"{cells.k} cohort x period cells ("
                            + ("t >= g" if control == "not_yet" else "every period but the reference g - 1") + ")"),
        ("Fixed effects", f"{names['cohort'] if fe == 'cohort' else names['unit']}, {names['time']}"),
        ("Covariates", ", ".join(sample.covariate_names) + " (alone, by cohort, by period, and demeaned within "
         "cohort by treated cell)" if sample.covariate_names else "none"),
        ("Weights", str(names.get("weights") or "none")),
        ("Effects", "R emfx: change in the predicted outcome when the treatment turns on, averaged over the "
                    "treated observations (unweighted); delta-method SEs, normal reference"),
        ("Computation", method),
    )
    pre = PRE_PERIOD[f"etwfe_{control}"]
    extras = {"raw_coef": readonly(params), "raw_vcov": readonly(V), "raw_inference": inf,
              "main_jacobian": readonly(J), "aggregations": dict(aggs), "coef_names": tuple(coef_names),
              "coef_select": readonly(sel), "coef_info": {"group": group, "time": period},
              "pre_period_meaning": pre, "family": family, "control": control}
    return EtwfeResult(
        estimator="ETWFE" if family is None else f"ETWFE ({family})", terms=("ATT", *coef_names),
        coef=np.concatenate([simple.estimate, params[:n_coef]]), vcov_matrix=J @ V @ J.T, headline="ATT",
        inference=normal_inference(inf), sample=sample.report, design=design, extras=extras, notes=tuple(notes),
        _source=source,
    )
