"""The imputation estimator of Borusyak, Jaravel & Spiess (2024).

1. Fit ``Y_it(0) = sum_f delta_f[level_f(it)] (+ W_it' b)`` (by default unit and time effects) by (weighted) least
   squares on the untreated observations only (never-treated units and the not-yet-treated periods of treated
   units).
2. Impute ``Y_it(0)`` for every treated observation and take ``tau_it = Y_it - Yhat_it(0)``.
3. Average: ``tau_w = sum_{it treated} w_it tau_it`` with weights summing to one: all treated observations
   equally (the static ATT), one horizon ``t - cohort = h`` at a time (the event study), or any weights.

Standard errors: BJS's conservative clustered variance (their Theorem 3 / equation (8)). The estimator is
linear in the outcomes, ``tau_w = sum_it v_it Y_it`` with ``v_it = w_it`` for treated and
``v_0 = -W_0 Z_0 (Z_0' W_0 Z_0)^- Z_1' w_1`` for untreated observations (``Z`` the first-stage design, never
formed: the normal equations are solved by :mod:`didx.estimators.imputation.first_stage`). Then

    Var = sum_clusters ( sum_{it in c} v_it e_it )^2,

with ``e_it`` the first-stage residual for untreated observations and ``tau_it - taubar_{g,h}`` for treated ones,
``taubar_{g,h} = sum v^2 tau / sum v^2`` within cohort ``g`` and horizon ``h`` (their equation (10)); with
``leave_out=True`` the average leaves out the observation's own cluster (their leave-out refinement). The
covariance between two weightings is the same sum of cross products, so horizons come with a full covariance
matrix. The arithmetic, shared with did2s, is :mod:`didx.inference.imputation`.

Pre-trends (BJS's test): the outcome of the *untreated* observations is regressed on the first-stage model plus
indicators of the chosen leads ``t - cohort = -1, -2, ...``; the leads' coefficients are reported with a
cluster-robust (CR1, fixest conventions) covariance, and ``pretrend_test()`` is their joint Wald test. They come
from a separate regression, so their covariance with the effects is not estimated (set to zero, and the result
says so: ``cross_covariance=False``).

Reference: Borusyak, Jaravel & Spiess (2024), "Revisiting Event-Study Designs: Robust and Efficient
Estimation", Review of Economic Studies; R package ``didimputation`` (``did_imputation``), whose numbers this
reproduces (without estimation weights; with them we use the WLS projection ``W_0 Z_0 (Z_0' W_0 Z_0)^-``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._frame import numeric_column, read_columns
from didx._panel import Panel, build_panel
from didx._sample import SampleReport
from didx.engines.source import engine_input
from didx.estimators.imputation.common import (
    check_distinct,
    check_panel_columns,
    check_weights,
    cluster_codes,
    cluster_option,
    factor_codes,
    fe_option,
    lost_rows_report,
)
from didx.estimators.imputation.first_stage import FirstStage
from didx.estimators.imputation.results import FirstStageEventResult
from didx.estimators.imputation.source import FirstStageSource
from didx.inference.contract import VcovRequest
from didx.inference.imputation import LeadRegression, TreatedScores, UntreatedProjection, compact
from didx.inference.vcov import SSC
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols
from didx.registry import PRE_PERIOD
from didx.results.base import Inference, Result

FUNC = "imputation"

PRE_PERIOD_MEANING = PRE_PERIOD["imputation"]
"""What a lead coefficient of this estimator is (one text, in the registry)."""


@dataclass(frozen=True, eq=False)
class ImputationResult(Result):
    """Static (or custom-weighted) result of :func:`imputation`."""


@dataclass(frozen=True, eq=False)
class ImputationEventResult(FirstStageEventResult):
    """Event-study result of :func:`imputation`: effects by horizon ``tau<h>`` (event time h >= 0) and, if asked,
    the pre-trend coefficients ``pre<k>`` (event time -k) from the untreated-only regression
    (``cross_covariance=False``: their covariance with the effects is not estimated).
    ``aggregate("average")`` is the ATT over the treated observations of the estimated horizons (the static
    estimate when every horizon is estimated)."""


# ---------------------------------------------------------------------------------------------------------------
# options (validated before the data are read)
@dataclass(frozen=True)
class _Options:
    horizons: bool | np.ndarray | None  # None: static; True: every horizon; else the requested horizons
    pretrends: bool | int | np.ndarray | None
    fe: tuple[str, ...]
    cluster: str | None
    treatment_weights: tuple[str, ...]
    leave_out: bool


def _check_options(*, unit: str, time: str, horizons: Any, pretrends: Any, covariates: Any, fe: Any,
                   cluster: Any, treatment_weights: Any, leave_out: Any) -> _Options:
    func = FUNC
    if not isinstance(leave_out, bool):
        raise InvalidOptionError(f"The 'leave_out' parameter of {func} must be True or False. Got {leave_out!r}.")
    hz = _horizons_option(horizons)
    pt = _pretrends_option(pretrends)
    tw = check_distinct(func, "treatment_weights", treatment_weights)
    if hz is not None and tw:
        raise InvalidOptionError(
            f"{func}: give either horizons= (effects by event time) or treatment_weights= (custom treatment "
            f"weights), not both."
        )
    check_distinct(func, "covariates", covariates)
    return _Options(horizons=hz, pretrends=pt, fe=fe_option(func, fe, unit, time),
                    cluster=cluster_option(func, cluster), treatment_weights=tuple(tw), leave_out=leave_out)


def _horizons_option(horizons: Any) -> bool | np.ndarray | None:
    if horizons is None or horizons is False:
        return None
    if horizons is True:
        return True
    vals = _integers(horizons)
    if vals is None or vals.size == 0 or np.any(vals < 0):
        raise InvalidOptionError(
            f"The 'horizons' parameter of {FUNC} must be True (every horizon) or non-negative integers (event "
            f"times t - cohort >= 0). Got {horizons!r}. Fix: horizons=True for every horizon, or e.g. "
            f"horizons=range(0, 5); for leads use pretrends=."
        )
    return np.unique(vals)


def _pretrends_option(pretrends: Any) -> bool | int | np.ndarray | None:
    if pretrends is None or pretrends is False:
        return None
    if pretrends is True:
        return True
    if isinstance(pretrends, int | np.integer):
        if pretrends < 1:
            raise InvalidOptionError(
                f"The 'pretrends' parameter of {FUNC} must be True, a positive number of leads K (event times "
                f"-K..-1) or a list of negative event times. Got {pretrends!r}."
            )
        return int(pretrends)
    vals = _integers(pretrends)
    if vals is None or vals.size == 0 or np.any(vals >= 0):
        raise InvalidOptionError(
            f"The 'pretrends' parameter of {FUNC} must be True, a positive number of leads K (event times "
            f"-K..-1) or negative integers (event times t - cohort < 0). Got {pretrends!r}."
        )
    return np.unique(vals)


def _integers(value: Any) -> np.ndarray | None:
    """``value`` as whole numbers (float64), or None if it is not a number or a list of whole numbers."""
    if isinstance(value, str | bytes | bool | Mapping):
        return None
    try:
        vals = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        return None
    if vals.ndim != 1 or not np.all(np.isfinite(vals)) or np.any(vals != np.round(vals)):
        return None
    return vals


def _parse_horizons(horizons: bool | np.ndarray, available: np.ndarray) -> np.ndarray:
    if horizons is True:
        return available
    vals = np.asarray(horizons, dtype=np.float64)
    missing = vals[~np.isin(vals, available)]
    if missing.size:
        raise InvalidOptionError(
            f"{FUNC}: horizon(s) {', '.join(f'{v:g}' for v in missing)} have no imputable treated observation. "
            f"Available horizons: {', '.join(f'{v:g}' for v in available)}. Fix: choose horizons among them."
        )
    return vals


def _parse_pretrends(pretrends: bool | int | np.ndarray, available: np.ndarray, unit_fe: bool) -> np.ndarray:
    func = FUNC
    if pretrends is True:
        vals = available[1:]  # the full set of leads is collinear with the unit fixed effects
        if vals.size == 0:
            raise InvalidOptionError(
                f"{func}: pretrends=True needs at least two distinct leads (event times < 0) among the untreated "
                f"observations of treated units; there are {available.size}."
            )
    elif isinstance(pretrends, int):
        vals = -np.arange(pretrends, 0, -1, dtype=np.float64)
    else:
        vals = np.asarray(pretrends, dtype=np.float64)
    if pretrends is not True and unit_fe and np.all(np.isin(available, vals)):
        raise InvalidOptionError(
            f"{func}: pretrends={_show(pretrends)} asks for every lead ({', '.join(f'{v:g}' for v in available)}), "
            f"which together are collinear with the unit fixed effects. Fix: leave at least one out, e.g. "
            f"pretrends=True (all but the earliest) or a shorter list."
        )
    missing = vals[~np.isin(vals, available)]
    if missing.size:
        raise InvalidOptionError(
            f"{func}: lead(s) {', '.join(f'{v:g}' for v in missing)} have no untreated observation of a treated "
            f"unit. Available leads: {', '.join(f'{v:g}' for v in available)}. Fix: choose leads among them."
        )
    return np.unique(vals)


def _show(v: Any) -> str:
    return f"[{', '.join(f'{x:g}' for x in v)}]" if isinstance(v, np.ndarray) else repr(v)


# ---------------------------------------------------------------------------------------------------------------
# entry points
def imputation(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    horizons: bool | Sequence[int] | None = None,
    pretrends: bool | int | Sequence[int] | None = None,
    covariates: str | Sequence[str] | None = None,
    fe: str | Sequence[str] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    treatment_weights: str | Sequence[str] | None = None,
    leave_out: bool = False,
) -> ImputationResult | ImputationEventResult:
    """Borusyak-Jaravel-Spiess imputation estimator of staggered-adoption treatment effects.

    ``tau_w = sum_{it: D_it = 1} w_it (Y_it - Yhat_it(0))``, with ``Yhat(0)`` from fixed effects (and
    covariates) fit on untreated observations only (see the module docstring for the variance).

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    cohort : first treated period of each unit; 0, NaN, inf or a period after the last one mean never treated.
        Treatment is absorbing: ``D_it = 1[t >= cohort]``.
    horizons : None for the static ATT (every treated observation weighted equally); True for every horizon
        ``h = t - cohort >= 0``; or a list of horizons. One effect ``tau<h>`` per horizon.
    pretrends : leads to test (BJS's pre-trend test): True (all but the earliest, which the unit fixed effects
        make collinear), an integer K (event times -K..-1) or a list of negative event times. Estimated on
        untreated observations only; ``pretrend_test()`` gives the joint Wald test.
    covariates : time-varying covariates in the Y(0) model.
    fe : the fixed-effect columns of the Y(0) model; default ``[unit, time]`` (R: ``first_stage = ~ 0 | unit +
        time``). Give the full list, e.g. ``[unit, time, "region_year"]``.
    cluster : cluster column of the variance; default ``unit``.
    weights : estimation-weight column: used in the Y(0) fit and multiplied into the treatment weights.
    treatment_weights : column(s) of custom treatment weights ``w_it`` on treated rows (R didimputation's
        ``wtr``; normalised to sum to one; values on untreated rows are ignored). One estimate per column.
        Exclusive with ``horizons``.
    leave_out : average ``tau`` within cohort x horizon leaving out the observation's own cluster when
        centring the treated residuals of the variance (BJS's leave-out refinement: an observation's own
        effect no longer pulls the average towards it, which biases the plain version down in small cells).

    Returns
    -------
    ImputationResult (static or ``treatment_weights``), or ImputationEventResult (``horizons`` or ``pretrends``
    given; an :class:`~didx.results.event.EventStudyResult`).

    References
    ----------
    Borusyak, K., Jaravel, X. & Spiess, J. (2024). Revisiting event-study designs: robust and efficient
    estimation. Review of Economic Studies 91(6). R: ``didimputation::did_imputation``.
    """
    opts = _check_options(unit=unit, time=time, horizons=horizons, pretrends=pretrends, covariates=covariates,
                          fe=fe, cluster=cluster, treatment_weights=treatment_weights, leave_out=leave_out)
    if (src := engine_input(data, FUNC)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.imputation import Parts, imputation_moments

        parts = Parts(FUNC, design_text, build_result, LOST_REASON, horizons=_parse_horizons,
                      pretrends=_parse_pretrends)
        return imputation_moments(src, opts, parts, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                                  weights=weights)
    panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=cluster, categorical=[c for c in opts.fe if c not in (unit, time)],
                        require_control="untreated_obs")
    values: dict[str, np.ndarray] = {}
    if opts.treatment_weights:
        cols = read_columns(data, list(opts.treatment_weights), FUNC, {"treatment_weights": opts.treatment_weights})
        for c in opts.treatment_weights:
            raw = numeric_column(cols, c, "treatment weights (treatment_weights)", FUNC,
                                 "Fix: pass numeric weights for the treated observations.")
            values[c] = raw[panel.row_index]
    return _fit(panel, opts, values)


def from_panel(
    panel: Panel,
    *,
    horizons: bool | Sequence[int] | None = None,
    pretrends: bool | int | Sequence[int] | None = None,
    fe: str | Sequence[str] | None = None,
    cluster: str | None = None,
    treatment_weights: Mapping[str, np.ndarray] | None = None,
    leave_out: bool = False,
) -> ImputationResult | ImputationEventResult:
    """:func:`imputation` on a panel already built by :func:`didx._panel.build_panel` (with ``unit``, ``cohort``,
    the covariates and weights, and the ``fe`` and ``cluster`` columns as categorical codes), without re-reading
    the frame. ``treatment_weights`` maps names to values aligned to the panel's rows."""
    names = panel.names
    unit, time = names.get("unit"), names.get("time")
    if panel.unit is None or panel.cohort is None or unit is None or time is None:
        raise InvalidOptionError(
            f"{FUNC}.from_panel: the panel needs a unit and a cohort column. Fix: build it with "
            f"build_panel(..., unit=, cohort=)."
        )
    given = dict(treatment_weights or {})
    opts = _check_options(unit=unit, time=time, horizons=horizons, pretrends=pretrends,
                          covariates=list(panel.covariate_names), fe=fe, cluster=cluster,
                          treatment_weights=list(given), leave_out=leave_out)
    check_panel_columns(FUNC, panel, opts.fe, opts.cluster)
    values = {}
    for c, v in given.items():
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape != (panel.n_obs,):
            raise DataError(
                f"{FUNC}: treatment_weights[{c!r}] has shape {arr.shape}; it must have one value per panel row "
                f"({panel.n_obs}). Fix: align it to the panel's rows (panel.row_index)."
            )
        values[c] = arr
    return _fit(panel, opts, values)


def _fit(panel: Panel, opts: _Options, tw_values: Mapping[str, np.ndarray]) -> ImputationResult | ImputationEventResult:
    check_weights(FUNC, panel)
    est = _estimate(panel, opts, tw_values)
    return _assemble(panel, opts, est)


# ---------------------------------------------------------------------------------------------------------------
# estimation
@dataclass(frozen=True, eq=False)
class _Estimates:
    first: FirstStage
    treated: np.ndarray
    lost: np.ndarray
    use: np.ndarray
    coef: np.ndarray
    terms: tuple[str, ...]
    event_time: np.ndarray
    n: np.ndarray
    treated_weight: np.ndarray
    mode: str
    untreated: UntreatedProjection
    scores: TreatedScores
    leads: LeadRegression | None = None


def _estimate(panel: Panel, opts: _Options, tw_values: Mapping[str, np.ndarray]) -> _Estimates:
    assert panel.unit is not None and panel.cohort is not None and panel.treat is not None
    treated = panel.treat == 1
    factors = [factor_codes(panel, c) for c in opts.fe]
    first = FirstStage(factors, opts.fe, panel.covariates, ~treated, panel.weights, func=FUNC,
                       covariate_names=panel.covariate_names)
    resid = first.fit(panel.y)
    lost = treated & ~first.identified()
    use = treated & ~lost
    if not use.any():
        raise DesignError(
            f"{FUNC}: no treated observation can be imputed: every treated row's unit or period has no untreated "
            f"observation. Fix: include never-treated units or pre-treatment periods of the treated units."
        )
    # cohort x event time cells = cohort x period cells (event time = period - cohort): no sort of n values
    cohort_values, unit_cohort_code = np.unique(panel.unit_cohort(), return_inverse=True)
    unit_cell = unit_cohort_code.astype(np.int64) * panel.n_periods
    cell = unit_cell[panel.unit] + panel.time
    cell_event = (panel.periods[None, :] - cohort_values[:, None]).ravel()
    row, col, value, terms, event_time, treated_weight, mode = _treatment_weights(
        panel, opts, np.flatnonzero(use), cell, cell_event, tw_values)
    K = len(terms)
    tau = resid[row]
    coef = np.bincount(col, weights=value * tau, minlength=K)
    beta_q, deltas_q = first.project(row, col, value, K)
    scores = TreatedScores(row=compact(row, panel.n_obs), col=compact(col, K), value=value, resid=tau, n_cols=K,
                           cell=compact(cell[row], cell_event.shape[0]), leave_out=opts.leave_out)
    n = np.bincount(col, weights=(value != 0).astype(float), minlength=K)
    out = _Estimates(first=first, treated=treated, lost=lost, use=use, coef=coef, terms=terms,
                     event_time=event_time, n=n, treated_weight=treated_weight, mode=mode,
                     untreated=first.untreated_projection(resid, beta_q, deltas_q), scores=scores)
    if opts.pretrends is None:
        return out
    cells0 = np.bincount(cell[~treated], minlength=cell_event.shape[0]) > 0
    available = np.unique(cell_event[cells0 & np.isfinite(cell_event) & (cell_event < 0)])
    leads = _parse_pretrends(opts.pretrends, available, panel.names["unit"] in opts.fe)
    lead_coef, lead_n, lead_reg = _lead_regression(panel, factors, opts.fe, leads, ~treated)
    return dataclasses.replace(
        out, coef=np.concatenate([lead_coef, coef]), terms=tuple(f"pre{-e:g}" for e in leads) + terms,
        event_time=np.concatenate([leads, event_time]), n=np.concatenate([lead_n, n]),
        treated_weight=np.concatenate([np.full(leads.shape[0], np.nan), treated_weight]), leads=lead_reg)


def _treatment_weights(panel: Panel, opts: _Options, rows1: np.ndarray, cell: np.ndarray, cell_event: np.ndarray,
                       tw_values: Mapping[str, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], np.ndarray, np.ndarray, str]:
    """Sparse treatment weights (entry j: ``value[j]`` on row ``row[j]`` in column ``col[j]``), the terms, their
    event times, their treated weight before normalising (NaN for custom weights) and the weighting's text."""
    w1 = np.ones(rows1.shape[0]) if panel.weights is None else panel.weights[rows1]
    if opts.treatment_weights:
        r_list, c_list, v_list = [], [], []
        for j, c in enumerate(opts.treatment_weights):
            raw = tw_values[c][rows1]
            if not np.all(np.isfinite(raw)):
                raise DataError(
                    f"{FUNC}: the treatment-weight column {c!r} has missing values on treated observations. "
                    f"Fix: give every treated observation a weight (0 to leave it out)."
                )
            v = raw if panel.weights is None else raw * w1
            s = float(v.sum())
            if s == 0:
                raise DataError(f"{FUNC}: the treatment weights in {c!r} sum to zero. Fix: give positive weights.")
            nz = np.flatnonzero(v != 0)
            r_list.append(rows1[nz])
            c_list.append(np.full(nz.shape[0], j, dtype=np.int64))
            v_list.append(v[nz] / s)
        K = len(opts.treatment_weights)
        return (np.concatenate(r_list), np.concatenate(c_list), np.concatenate(v_list), opts.treatment_weights,
                np.full(K, np.nan), np.full(K, np.nan), f"custom ({', '.join(opts.treatment_weights)})")
    if opts.horizons is None:
        total = float(w1.sum())
        return (rows1, np.zeros(rows1.shape[0], dtype=np.int64), w1 / total, ("ATT",), np.full(1, np.nan),
                np.array([total]), "static: every treated observation weighted equally")
    group1 = cell[rows1]
    present = np.bincount(group1, minlength=cell_event.shape[0]) > 0
    hs = _parse_horizons(opts.horizons, np.unique(cell_event[present]))
    # horizon column of each cell (-1: not requested), then of each treated row
    pos = np.minimum(np.searchsorted(hs, cell_event), hs.shape[0] - 1)
    cell_col = np.where(hs[pos] == cell_event, pos, -1)
    col1 = cell_col[group1]
    inh = col1 >= 0
    r = rows1[inh]
    k = col1[inh].astype(np.int64)
    v = w1[inh]
    sums = np.bincount(k, weights=v, minlength=hs.shape[0])
    return (r, k, v / sums[k], tuple(f"tau{h:g}" for h in hs), hs.astype(np.float64), sums,
            "by horizon (event time t - cohort), treated observations weighted equally within a horizon")


def _lead_regression(panel: Panel, factors: list[np.ndarray], fe_names: Sequence[str], leads: np.ndarray,
                     untreated: np.ndarray) -> tuple[np.ndarray, np.ndarray, LeadRegression]:
    """Coefficients and counts of the lead indicators in the untreated-only regression, and what their CR1
    covariance needs for any clustering."""
    assert panel.cohort is not None
    rows = np.flatnonzero(untreated)
    et0 = panel.periods[panel.time[rows]] - panel.cohort[rows]  # -inf for never treated
    L = (et0[:, None] == leads[None, :]).astype(np.float64)
    X = np.column_stack([L, panel.covariates[rows]]) if panel.covariates.shape[1] else L
    names = [f"pre{-e:g}" for e in leads] + list(panel.covariate_names)
    w = None if panel.weights is None else panel.weights[rows]
    fes = FixedEffects([np.unique(f[rows], return_inverse=True)[1].astype(np.int64) for f in factors],
                       list(fe_names), weights=w)
    P = leads.shape[0]
    fit = fit_ols(panel.y[rows], X, names, fe=fes, weights=w, func=FUNC, protected=names[:P])
    reg = LeadRegression(scores=fit.scores(), bread=fit.bread, n_leads=P, levels=tuple(fes.n_levels),
                         n_fe_params=fes.n_params(SSC().fixef_exact))
    return fit.coef[:P], L.sum(axis=0), reg


# ---------------------------------------------------------------------------------------------------------------
# result assembly
def _assemble(panel: Panel, opts: _Options, est: _Estimates) -> ImputationResult | ImputationEventResult:
    names = panel.names
    unit = names["unit"]
    cluster_name = opts.cluster if opts.cluster is not None else unit
    source = FirstStageSource(
        untreated=est.untreated, treated=est.scores,
        clusters=cluster_codes(panel, opts.fe, opts.cluster),
        default_cluster=cluster_name, imputed=est.use, variance="bjs", leads=est.leads)
    V, inference = source.covariance(FUNC, VcovRequest(), {})
    P = est.leads.n_leads if est.leads is not None else 0
    report = lost_rows_report(panel, est.lost, LOST_REASON)
    design = design_text(names, opts, n_untreated=int((~est.treated).sum()),
                         never=int(np.count_nonzero(~np.isfinite(panel.unit_cohort()))), method=est.first.method,
                         mode=est.mode, covariate_names=panel.covariate_names, leads=est.event_time[:P])
    return build_result(opts, P, terms=est.terms, coef=est.coef, vcov=V, inference=inference, report=report,
                        design=design, source=source, event_time=est.event_time, n=est.n,
                        treated_weight=est.treated_weight, method=est.first.method)


LOST_REASON = ("treated observations whose Y(0) cannot be imputed (their unit or period has no untreated "
               "observation, e.g. units treated in every period)")


def design_text(names: Mapping[str, Any], opts: _Options, *, n_untreated: int, never: int, method: str, mode: str,
                covariate_names: Sequence[str], leads: np.ndarray) -> tuple[tuple[str, str], ...]:
    """The result's design lines (shared with the engines' fit, :mod:`didx.engines.imputation`)."""
    time = names["time"]
    return (
        ("Estimator", "imputation (Borusyak, Jaravel & Spiess 2024)"),
        ("Outcome", names["y"]),
        ("Treatment", f"1[{time} >= {names['cohort']}] (absorbing)"),
        ("Model for Y(0)", " + ".join(opts.fe) + " fixed effects"
         + (" + " + ", ".join(covariate_names) if covariate_names else "") + f" [{method}]"),
        ("Fitted on", f"untreated observations ({n_untreated}; {never} never-treated units)"),
        ("Treatment weights", mode),
        ("Reference period", "none (Y(0) imputed from all untreated periods)"),
        ("Estimation weights", names.get("weights") or "none"),
        ("Variance", "BJS conservative" + (", leave-out averages" if opts.leave_out else "")),
        ("Pre-trend test", "leads " + ", ".join(f"{e:g}" for e in leads) if leads.size else "none"),
    )


def build_result(opts: _Options, n_leads: int, *, terms: tuple[str, ...], coef: np.ndarray, vcov: np.ndarray,
                 inference: Inference, report: SampleReport, design: tuple[tuple[str, str], ...], source: Any,
                 event_time: np.ndarray, n: np.ndarray, treated_weight: np.ndarray,
                 method: str) -> ImputationResult | ImputationEventResult:
    """The static or event-study result (shared with the engines' fit)."""
    P = n_leads
    notes: tuple[str, ...] = ()
    if P:
        notes = ("Pre-trend coefficients (pre<k> = event time -k) come from a regression of the untreated "
                 "observations on the Y(0) model plus lead indicators (BJS test); their covariance with the "
                 "effects is not estimated (set to zero).",)
    extras = {"reference": (), "first_stage_method": method}
    common: dict[str, Any] = dict(
        estimator="Imputation (BJS)", terms=terms, coef=coef, vcov_matrix=vcov, headline=terms[P],
        inference=inference, sample=report, design=design, notes=notes, extras=extras, _source=source)
    if P or opts.horizons is not None:
        return ImputationEventResult(term_info={"event_time": event_time, "n": n, "treated_weight": treated_weight},
                                     pre_period_meaning=PRE_PERIOD_MEANING, cross_covariance=P == 0, **common)
    return ImputationResult(term_info={"n": n}, **common)


__all__ = ["ImputationEventResult", "ImputationResult", "from_panel", "imputation"]

