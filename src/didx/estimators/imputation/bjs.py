"""The imputation estimator of Borusyak, Jaravel & Spiess (2024).

1. Fit ``Y_it(0) = a_i + l_t (+ W_it' b) (+ other fixed effects)`` by (weighted) least squares on the untreated
   observations only (never-treated units and the not-yet-treated periods of treated units).
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
matrix.

Pre-trends (BJS's test): the outcome of the *untreated* observations is regressed on the first-stage model plus
indicators of the chosen leads ``t - cohort = -1, -2, ...``; the leads' coefficients are reported with a
cluster-robust (CR1, fixest conventions) covariance, and ``pretrend_test()`` is their joint Wald test. They come
from a separate regression, so their covariance with the effects is not estimated (set to zero).

Reference: Borusyak, Jaravel & Spiess (2024), "Revisiting Event-Study Designs: Robust and Efficient
Estimation", Review of Economic Studies; R package ``didimputation`` (``did_imputation``), whose numbers this
reproduces (without estimation weights; with them we use the WLS projection ``W_0 Z_0 (Z_0' W_0 Z_0)^-``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._frame import numeric_column, read_columns
from didx._panel import Panel, build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list
from didx.estimators.imputation.first_stage import FirstStage, level_sums
from didx.estimators.regression.common import lookup_cluster_codes
from didx.inference.vcov import SSC, VcovSpec, compute_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.results.base import Inference, Result
from didx.results.event import EventStudyResult


@dataclass(frozen=True, eq=False)
class ImputationResult(Result):
    """Static (or custom-weighted) result of :func:`imputation`."""


@dataclass(frozen=True, eq=False)
class ImputationEventResult(EventStudyResult):
    """Event-study result of :func:`imputation`: effects by horizon ``tau<h>`` (event time h >= 0) and, if asked,
    the pre-trend coefficients ``pre<k>`` (event time -k) from the untreated-only regression."""


@dataclass(frozen=True)
class TreatmentWeights:
    """Sparse treatment weights: entry j puts ``value[j]`` on treated row ``row[j]`` in column ``col[j]``."""

    row: np.ndarray  # positions in the full (kept) sample
    col: np.ndarray
    value: np.ndarray
    names: tuple[str, ...]

    @property
    def n_cols(self) -> int:
        return len(self.names)


def _inference(cluster_name: str, n_clusters: int, n_treated_clusters: int, leave_out: bool,
               pretrends: bool) -> Inference:
    return Inference(
        vcov_type=f"BJS conservative, clustered by {cluster_name}", df=None, n_clusters=(n_clusters,),
        cluster_names=(cluster_name,), small_sample="none (BJS)",
        details=(f"Treated clusters: {n_treated_clusters} of {n_clusters}",
                 "tau averaged within cohort x event time for the residuals"
                 + (" (leaving out the own cluster)" if leave_out else ""))
        + ((f"Pre-trend coefficients: CR1 clustered by {cluster_name} (fixest conventions)",) if pretrends else ()),
    )


@dataclass(frozen=True, eq=False)
class ImputationVcovSource:
    """The stored pieces of the BJS variance: ``with_vcov(cluster=...)`` reclusters without refitting.

    The first stage, the residuals ``Y - Yhat(0)`` and the treatment weights do not depend on the clustering, so
    only the cluster sums are recomputed (and, with pre-trends, the CR1 covariance of the lead regression).
    """

    first: FirstStage
    resid: np.ndarray
    tw: TreatmentWeights
    group: np.ndarray
    use: np.ndarray  # treated rows that are imputed
    codes: dict[str, np.ndarray]
    data: Any
    row_index: np.ndarray | None
    default_cluster: str
    leave_out: bool
    pretrend: tuple[OLSFit, np.ndarray, int] | None  # fit, its rows, number of leads

    def recompute(self, func: str, vcov: str | None, cluster: str | Sequence[str] | None,
                  ssc: Any) -> tuple[np.ndarray, Inference]:
        if vcov not in (None, "cluster", "CR0") or ssc is not None:
            raise InvalidOptionError(
                f"{func}: the imputation standard errors are BJS's conservative cluster sums; only the clustering "
                f"can change (got vcov={vcov!r}, ssc={ssc!r}). Fix: call with_vcov(cluster='col')."
            )
        names = [cluster] if isinstance(cluster, str) else list(cluster or [self.default_cluster])
        if len(names) != 1:
            raise InvalidOptionError(
                f"{func}: the BJS variance clusters on one column; got cluster={names!r}. Fix: pass one column.")
        name = names[0]
        cl = _recode(lookup_cluster_codes(func, [name], self.codes, self.data, self.row_index)[name])
        G = int(cl.max()) + 1
        _, V, _ = bjs_estimate(self.first, self.resid, self.tw, self.group, cl, G, leave_out=self.leave_out)
        if self.pretrend is not None:
            fit, rows, P = self.pretrend
            vr = compute_vcov(fit, VcovSpec("CR1", (name,), SSC()), {name: _recode(cl[rows])}, func)
            full = np.zeros((P + V.shape[0],) * 2)
            full[:P, :P] = vr.matrix[:P, :P]
            full[P:, P:] = V
            V = full
        n_treated = int(np.count_nonzero(np.bincount(cl[self.use], minlength=G)))
        return V, _inference(name, G, n_treated, self.leave_out, self.pretrend is not None)


def bjs_estimate(first: FirstStage, resid: np.ndarray, tw: TreatmentWeights, group: np.ndarray,
                 cluster: np.ndarray, n_clusters: int, *, leave_out: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Estimates ``sum w tau`` and the BJS conservative covariance for each column of treatment weights.

    ``resid`` is ``Y - Yhat(0)`` for every row (``tau_it`` on treated rows); ``group`` gives each weight entry's
    cohort x event-time cell.
    Returns (estimates, covariance, number of leave-out averages that fell back to the full average).
    """
    K = tw.n_cols
    G = n_clusters
    r, k, w = tw.row, tw.col, tw.value
    tau = resid[r]
    est = np.bincount(k, weights=w * tau, minlength=K)
    # v for untreated rows: -W0 Z0 b with b = (Z0'W0Z0)^- Z1' w1 ; their part of the cluster sums is
    # sum_{i in c} v_i e_i = -(sum_{i in c} w_i e_i z_i)' b.
    p = first.X.shape[1]
    a_x = np.zeros((p, K))
    for j in range(p):
        a_x[j] = np.bincount(k, weights=w * first.X[r, j], minlength=K)
    a_d = [level_sums(f, L, r, k, w, K) for f, L in zip(first.factors, first.n_levels, strict=True)]
    beta, deltas = first.solve(a_x, a_d)
    psi = -first.cluster_sums(resid, cluster, G, beta, deltas)
    # treated rows: v = w, residual tau - taubar(cohort x horizon)
    gk = group * K + k
    n_gk = int(gk.max()) + 1 if gk.size else 0
    w2 = w * w
    num = np.bincount(gk, weights=w2 * tau, minlength=n_gk)
    den = np.bincount(gk, weights=w2, minlength=n_gk)
    with np.errstate(invalid="ignore", divide="ignore"):
        tbar = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)[gk]
    n_fallback = 0
    cl = cluster[r]
    if leave_out:
        key = gk.astype(np.int64) * G + cl
        _, inv = np.unique(key, return_inverse=True)
        num_c = np.bincount(inv, weights=w2 * tau)[inv]
        den_c = np.bincount(inv, weights=w2)[inv]
        den_out = den[gk] - den_c
        ok = den_out > 1e-14 * den[gk]
        with np.errstate(invalid="ignore", divide="ignore"):
            loo = (num[gk] - num_c) / np.where(ok, den_out, 1.0)
        n_fallback = int(np.count_nonzero(~ok & (w != 0)))
        tbar = np.where(ok, loo, tbar)
    psi += np.bincount(cl * K + k, weights=w * (tau - tbar), minlength=G * K).reshape(G, K)
    V = psi.T @ psi
    return est, 0.5 * (V + V.T), n_fallback


def _parse_horizons(horizons: Any, available: np.ndarray, func: str) -> np.ndarray:
    if horizons is True:
        return available
    vals = np.atleast_1d(np.asarray(horizons, dtype=np.float64))
    if vals.size == 0 or np.any(vals < 0) or np.any(vals != np.round(vals)):
        raise InvalidOptionError(
            f"The 'horizons' parameter of {func} must be True (every horizon) or non-negative integers (event "
            f"times t - cohort >= 0). Got {horizons!r}. Fix: e.g. horizons=range(0, 5); for leads use pretrends=."
        )
    missing = vals[~np.isin(vals, available)]
    if missing.size:
        raise InvalidOptionError(
            f"{func}: horizon(s) {', '.join(f'{v:g}' for v in missing)} have no imputable treated observation. "
            f"Available horizons: {', '.join(f'{v:g}' for v in available)}. Fix: choose horizons among them."
        )
    return np.unique(vals)


def _parse_pretrends(pretrends: Any, available: np.ndarray, func: str) -> np.ndarray:
    if pretrends is True:
        vals = available[1:]  # the full set of leads is collinear with the unit fixed effects
        if vals.size == 0:
            raise InvalidOptionError(
                f"{func}: pretrends=True needs at least two distinct leads (event times < 0) among the untreated "
                f"observations of treated units; there are {available.size}."
            )
    elif isinstance(pretrends, int | np.integer) and not isinstance(pretrends, bool):
        if pretrends < 1:
            raise InvalidOptionError(
                f"The 'pretrends' parameter of {func} must be True, a positive number of leads K (event times "
                f"-K..-1) or a list of negative event times. Got {pretrends!r}."
            )
        vals = -np.arange(int(pretrends), 0, -1, dtype=np.float64)
    else:
        vals = np.atleast_1d(np.asarray(pretrends, dtype=np.float64))
        if vals.size == 0 or np.any(vals >= 0) or np.any(vals != np.round(vals)):
            raise InvalidOptionError(
                f"The 'pretrends' parameter of {func} must be True, a positive number of leads K (event times "
                f"-K..-1) or negative integers (event times t - cohort < 0). Got {pretrends!r}."
            )
    if pretrends is not True and np.all(np.isin(available, vals)):
        raise InvalidOptionError(
            f"{func}: pretrends={pretrends!r} asks for every lead ({', '.join(f'{v:g}' for v in available)}), "
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


def _recode(codes: np.ndarray) -> np.ndarray:
    return np.unique(codes, return_inverse=True)[1].astype(np.int64)


def _pretrend_fit(panel: Panel, factors: list[np.ndarray], fe_names: list[str], event_time: np.ndarray,
                  leads: np.ndarray, untreated: np.ndarray, cluster: np.ndarray, cluster_name: str, func: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, OLSFit]:
    """Coefficients, CR1 covariance and counts of the lead indicators in the untreated-only regression (and the
    fit, to recompute the covariance for another clustering)."""
    rows = np.flatnonzero(untreated)
    et0 = event_time[rows]
    L = (et0[:, None] == leads[None, :]).astype(np.float64)
    counts = L.sum(axis=0)
    X = np.column_stack([L, panel.covariates[rows]]) if panel.covariates.shape[1] else L
    names = [f"pre{int(-e)}" for e in leads] + list(panel.covariate_names)
    w = None if panel.weights is None else panel.weights[rows]
    fes = FixedEffects([_recode(f[rows]) for f in factors], fe_names, weights=w)
    fit = fit_ols(panel.y[rows], X, names, fe=fes, weights=w, func=func, protected=names[: leads.shape[0]])
    codes = {cluster_name: _recode(cluster[rows])}
    vr = compute_vcov(fit, VcovSpec("CR1", (cluster_name,), SSC()), codes, func)
    P = leads.shape[0]
    return fit.coef[:P], vr.matrix[:P, :P], counts, int(vr.n_clusters[0]), fit


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
    wtr: str | Sequence[str] | None = None,
    leave_out: bool = False,
) -> ImputationResult | ImputationEventResult:
    """Borusyak-Jaravel-Spiess imputation estimator of staggered-adoption treatment effects.

    ``tau_w = sum_{it: D_it = 1} w_it (Y_it - Yhat_it(0))``, with ``Yhat(0)`` from the model
    ``a_i + l_t (+ W'b) (+ fe)`` fit on untreated observations only (see the module docstring for the variance).

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    cohort : first treated period of each unit; 0, NaN, inf or a period after the last one mean never treated.
        Treatment is absorbing: ``D_it = 1[t >= cohort]``.
    horizons : None for the static ATT (every treated observation weighted equally); True for every horizon
        ``h = t - cohort >= 0``; or a list of horizons. One effect ``tau<h>`` per horizon.
    pretrends : leads to test (BJS's pre-trend test): True (all but the earliest, which the unit fixed effects
        make collinear), an integer K (event times -K..-1) or a list
        of negative event times. Estimated on untreated observations only; ``pretrend_test()`` gives the joint
        Wald test.
    covariates : time-varying covariates in the Y(0) model.
    fe : extra fixed effects in the Y(0) model, besides unit and time.
    cluster : cluster column of the variance; default ``unit``.
    weights : estimation weights: used in the Y(0) fit and multiplied into the treatment weights.
    wtr : custom treatment weights: column(s) holding ``w_it`` on treated rows (normalised to sum to one; values
        on untreated rows are ignored). One estimate per column. Exclusive with ``horizons``.
    leave_out : average ``tau`` within cohort x horizon leaving out the observation's own cluster when
        centring the treated residuals of the variance (BJS's leave-out refinement: an observation's own
        effect no longer pulls the average towards it, which biases the plain version down in small cells).

    Returns
    -------
    ImputationResult (static or ``wtr``), or ImputationEventResult (``horizons`` or ``pretrends`` given).

    References
    ----------
    Borusyak, K., Jaravel, X. & Spiess, J. (2024). Revisiting event-study designs: robust and efficient
    estimation. Review of Economic Studies 91(6). R: ``didimputation::did_imputation``.
    """
    func = "imputation"
    if horizons is not None and horizons is not False and wtr is not None:
        raise InvalidOptionError(
            f"{func}: give either horizons= (effects by event time) or wtr= (custom treatment weights), not both."
        )
    if not isinstance(leave_out, bool):
        raise InvalidOptionError(f"The 'leave_out' parameter of {func} must be True or False. Got {leave_out!r}.")
    fe_list = as_list(fe)
    wtr_list = as_list(wtr)
    for c in fe_list:
        if c in (unit, time):
            raise InvalidOptionError(
                f"{func}: fe={c!r} repeats the {'unit' if c == unit else 'time'} column, which is always in the "
                f"model for Y(0). Fix: pass only extra fixed effects in fe=."
            )
    panel = build_panel(data, func=func, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=cluster, categorical=fe_list, require_control="untreated_obs")
    assert panel.unit is not None and panel.cohort is not None and panel.treat is not None
    treated = panel.treat == 1
    factors = [panel.unit, panel.time] + [panel.codes[c] for c in fe_list]
    fe_names = [unit, time, *fe_list]
    first = FirstStage(factors, fe_names, panel.covariates, ~treated, panel.weights, func=func,
                       covariate_names=panel.covariate_names)
    resid = first.fit(panel.y)
    ident = first.identified()
    lost = treated & ~ident
    report = panel.report
    if lost.any():
        kept_units = np.bincount(panel.unit[~lost], minlength=panel.n_units) > 0
        n_lost_units = int(np.count_nonzero(~kept_units))
        report = report.with_dropped(Dropped(
            "treated observations whose Y(0) cannot be imputed (their unit or period has no untreated "
            "observation, e.g. units treated in every period)", int(lost.sum()), n_lost_units))
    use = treated & ident
    if not use.any():
        raise DesignError(
            f"{func}: no treated observation can be imputed: every treated row's unit or period has no untreated "
            f"observation. Fix: include never-treated units or pre-treatment periods of the treated units."
        )
    rows1 = np.flatnonzero(use)
    # treatment weights
    # cohort x event time cells = cohort x period cells (event time = period - cohort): no sort of n values
    unit_cohort = panel.unit_cohort()
    cohort_values, unit_cohort_code = np.unique(unit_cohort, return_inverse=True)
    T = panel.n_periods
    unit_cell = unit_cohort_code.astype(np.int64) * T
    unit_codes = panel.unit

    def cells(rows: np.ndarray) -> np.ndarray:
        return unit_cell[unit_codes[rows]] + panel.time[rows]

    group1 = cells(rows1)
    cell_event = (panel.periods[None, :] - cohort_values[:, None]).ravel()  # event time of each cell
    if wtr_list:
        cols = read_columns(data, wtr_list, func, {"wtr": wtr_list})
        r_list, c_list, v_list = [], [], []
        for j, c in enumerate(wtr_list):
            raw = numeric_column(cols, c, "treatment weights (wtr)", func,
                                 "Fix: pass numeric weights for the treated observations.")[panel.row_index][rows1]
            if not np.all(np.isfinite(raw)):
                raise DataError(
                    f"{func}: the treatment-weight column {c!r} has missing values on treated observations. "
                    f"Fix: give every treated observation a weight (0 to leave it out)."
                )
            v = raw if panel.weights is None else raw * panel.weights[rows1]
            s = float(v.sum())
            if s == 0:
                raise DataError(f"{func}: the treatment weights in {c!r} sum to zero. Fix: give positive weights.")
            nz = np.flatnonzero(v != 0)
            r_list.append(rows1[nz])
            c_list.append(np.full(nz.shape[0], j, dtype=np.int64))
            v_list.append(v[nz] / s)
        tw = TreatmentWeights(np.concatenate(r_list), np.concatenate(c_list), np.concatenate(v_list),
                              tuple(wtr_list))
        term_et = np.full(len(wtr_list), np.nan)
        mode = f"custom ({', '.join(wtr_list)})"
    elif horizons is not None and horizons is not False:
        present = np.bincount(group1, minlength=cell_event.shape[0]) > 0
        available = np.unique(cell_event[present])
        hs = _parse_horizons(horizons, available, func)
        # horizon column of each cell (-1: not requested), then of each treated row
        pos = np.minimum(np.searchsorted(hs, cell_event), hs.shape[0] - 1)
        cell_col = np.where(hs[pos] == cell_event, pos, -1)
        col1 = cell_col[group1]
        inh = col1 >= 0
        r = rows1[inh]
        k = col1[inh].astype(np.int64)
        v = np.ones(r.shape[0]) if panel.weights is None else panel.weights[r]
        v = v / np.bincount(k, weights=v, minlength=hs.shape[0])[k]
        tw = TreatmentWeights(r, k, v, tuple(f"tau{int(h)}" for h in hs))
        term_et = hs.astype(np.float64)
        mode = "by horizon (event time t - cohort), treated observations weighted equally within a horizon"
    else:
        v = np.ones(rows1.shape[0]) if panel.weights is None else panel.weights[rows1]
        tw = TreatmentWeights(rows1, np.zeros(rows1.shape[0], dtype=np.int64), v / v.sum(), ("ATT",))
        term_et = np.full(1, np.nan)
        mode = "static: every treated observation weighted equally"
    cluster_name = cluster if cluster is not None else unit
    cl = panel.codes[cluster] if cluster is not None else panel.unit
    G = int(cl.max()) + 1
    del group1
    tw_cells = cells(tw.row)
    est, V, n_fallback = bjs_estimate(first, resid, tw, tw_cells, cl, G, leave_out=leave_out)
    n_terms = np.bincount(tw.col, weights=(tw.value != 0).astype(float), minlength=tw.n_cols)
    terms = list(tw.names)
    coef = est
    vcov = V
    et_all = term_et
    n_all = n_terms
    notes: list[str] = []
    pre_block = None
    pre_fit = None
    if pretrends is not None and pretrends is not False:
        untreated = ~treated
        event_time = panel.periods[panel.time] - panel.cohort  # -inf for never treated
        cells0 = np.bincount(cells(np.flatnonzero(untreated)), minlength=cell_event.shape[0]) > 0
        leads_avail = np.unique(cell_event[cells0 & np.isfinite(cell_event) & (cell_event < 0)])
        leads = _parse_pretrends(pretrends, leads_avail, func)
        pc, pv, pn, _, pre_fit = _pretrend_fit(panel, factors, fe_names, event_time, leads, untreated, cl,
                                                cluster_name, func)
        P = leads.shape[0]
        terms = [f"pre{int(-e)}" for e in leads] + terms
        coef = np.concatenate([pc, est])
        vcov = np.zeros((P + len(tw.names),) * 2)
        vcov[:P, :P] = pv
        vcov[P:, P:] = V
        et_all = np.concatenate([leads, term_et])
        n_all = np.concatenate([pn, n_terms])
        pre_block = P
        notes.append("Pre-trend coefficients (pre<k> = event time -k) come from a regression of the untreated "
                     "observations on the Y(0) model plus lead indicators (BJS test); their covariance with the "
                     "effects is not estimated (set to zero).")
    if n_fallback:
        notes.append(f"leave_out: {n_fallback} treated observations are the only cluster in their cohort x horizon "
                     f"cell; their residual is centred on the full-cell average.")
    n_used = int(np.count_nonzero(~lost))
    sample = SampleReport(n_input_rows=report.n_input_rows, n_obs=n_used,
                          n_units=panel.n_units if not lost.any() else int(np.count_nonzero(
                              np.bincount(panel.unit[~lost], minlength=panel.n_units))),
                          n_periods=report.n_periods, dropped=report.dropped, balanced=report.balanced,
                          n_units_with_gaps=report.n_units_with_gaps, notes=report.notes)
    n_treated_cl = int(np.count_nonzero(np.bincount(cl[use], minlength=G)))
    inference = _inference(cluster_name, G, n_treated_cl, leave_out, pre_block is not None)
    never = int(np.count_nonzero(~np.isfinite(panel.unit_cohort())))
    design = [
        ("Estimator", "imputation (Borusyak, Jaravel & Spiess 2024)"),
        ("Outcome", y),
        ("Treatment", f"1[{time} >= {cohort}] (absorbing)"),
        ("Model for Y(0)", " + ".join(fe_names) + " fixed effects"
         + (" + " + ", ".join(panel.covariate_names) if panel.covariate_names else "") + f" [{first.method}]"),
        ("Fitted on", f"untreated observations ({int((~treated).sum())}; {never} never-treated units)"),
        ("Treatment weights", mode),
        ("Reference period", "none (Y(0) imputed from all untreated periods)"),
        ("Estimation weights", weights or "none"),
        ("Variance", "BJS conservative" + (", leave-out averages" if leave_out else "")),
        ("Pre-trend test", "leads " + ", ".join(f"{e:g}" for e in et_all[:pre_block]) if pre_block else "none"),
    ]
    extras = {"reference": (), "first_stage_method": first.method}
    known = dict(panel.codes)
    known.setdefault(unit, panel.unit)
    source = ImputationVcovSource(
        first=first, resid=resid, tw=tw, group=tw_cells, use=use, codes=known, data=data,
        row_index=panel.row_index, default_cluster=cluster_name, leave_out=leave_out,
        pretrend=None if pre_fit is None or pre_block is None else (pre_fit, np.flatnonzero(~treated), pre_block))
    common = dict(estimator="Imputation (BJS)", terms=tuple(terms), coef=coef, vcov_matrix=vcov,
                  inference=inference, sample=sample, design=tuple(design), notes=tuple(notes), _source=source)
    headline = terms[pre_block or 0]
    if pre_block is not None or (horizons is not None and horizons is not False):
        return ImputationEventResult(headline=headline, term_info={"event_time": et_all, "n": n_all},
                                     extras=extras, **common)  # type: ignore[arg-type]
    return ImputationResult(headline=headline, term_info={"n": n_all}, extras=extras,
                            **common)  # type: ignore[arg-type]
