"""Gardner's (2021) two-stage difference-in-differences, with the GMM-corrected variance of Butts & Gardner.

Stage one: fit ``Y_it = sum_f delta_f[level_f(it)] (+ W_it' b) + e`` on the untreated observations only (by
default unit and time fixed effects; any fixed-effect columns may be given, e.g. state and year).
Stage two: regress the residualised outcome ``Ytilde_it = Y_it - Yhat_it(0)`` on the treatment terms, without
an intercept, over the full sample: one treatment indicator (``second_stage="static"``) or one indicator per
event time ``t - cohort`` (``"event"``). Both second stages are sets of mutually exclusive indicators, so the
coefficients are (weighted) means of ``Ytilde`` by term.

Variance (Butts & Gardner, "did2s: Two-Stage Difference-in-Differences", R Journal 2022; R ``did2s``): with
``X1`` the first-stage design on all rows, ``X10`` the same with treated rows zeroed, ``X2`` the second-stage
design, ``u1`` the first-stage residuals (zero on treated rows) and ``u2`` the second-stage residuals,

    V = (X2'X2)^-1 ( sum_g psi_g psi_g' ) (X2'X2)^-1,
    psi_g = X2_g' u2_g - (X2'X1) (X10'X10)^-1 X10_g' u1_g,

with no small-sample factor. Nothing here is n x (number of fixed-effect levels): ``(X10'X10)^-1 X1'X2`` is a
solve of the first-stage normal equations with right-hand sides the per-level sums of ``X2`` (bincounts; two
factors solved exactly by the concentrated method, see :mod:`didx.estimators.imputation.first_stage`), and
``X10_g' u1_g`` enters only through the sparse cluster x level sums of ``u1``. Memory is O(n + levels x terms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._panel import build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, check_option
from didx.estimators.imputation.first_stage import FirstStage, level_sums
from didx.estimators.regression.common import lookup_cluster_codes
from didx.results.base import Inference, Result
from didx.results.event import EventStudyResult


@dataclass(frozen=True, eq=False)
class Did2sResult(Result):
    """Static result of :func:`did2s`."""


@dataclass(frozen=True, eq=False)
class Did2sEventResult(EventStudyResult):
    """Event-study result of :func:`did2s` (terms ``event_time::<e>``)."""


def two_stage_variance(first: FirstStage, resid: np.ndarray, on: np.ndarray, term: np.ndarray, u2: np.ndarray,
                       n_terms: int, cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """The GMM-corrected covariance of second-stage coefficients on mutually exclusive indicators.

    ``on`` are the rows with a second-stage indicator, ``term`` their indicator (0..n_terms-1) and ``u2`` their
    second-stage residuals (the other rows have none); ``resid`` is the first-stage residual, read on the
    first-stage (untreated) rows only.
    """
    w = None if first.weights is None else first.weights[on]
    K, G = n_terms, n_clusters
    # (X10'W X10)^- X1'W X2: per-level sums of the indicators (all rows), solved by the first stage
    p = first.X.shape[1]
    a_x = np.zeros((p, K))
    for j in range(p):
        xj = first.X[on, j]
        a_x[j] = np.bincount(term, weights=xj if w is None else w * xj, minlength=K)
    ones = np.ones(on.shape[0]) if w is None else w
    a_d = [level_sums(f, L, on, term, ones, K) for f, L in zip(first.factors, first.n_levels, strict=True)]
    del ones
    beta_q, delta_q = first.solve(a_x, a_d)
    del a_d
    psi = -first.cluster_sums(resid, cluster, G, beta_q, delta_q)
    del delta_q
    psi += np.bincount(cluster[on] * K + term, weights=u2 if w is None else w * u2, minlength=G * K).reshape(G, K)
    bread = 1.0 / np.bincount(term, weights=w, minlength=K)
    V = bread[:, None] * (psi.T @ psi) * bread[None, :]
    return 0.5 * (V + V.T)


def _inference(cluster_name: str, n_clusters: int, n_treated_clusters: int) -> Inference:
    return Inference(
        vcov_type=f"two-stage GMM (Butts & Gardner), clustered by {cluster_name}", df=None,
        n_clusters=(n_clusters,), cluster_names=(cluster_name,), small_sample="none (as R did2s)",
        details=(f"Treated clusters: {n_treated_clusters} of {n_clusters}",
                 "First-stage estimation error propagated into the second-stage covariance"),
    )


@dataclass(frozen=True, eq=False)
class Did2sVcovSource:
    """The stored pieces of the two-stage variance: ``with_vcov(cluster=...)`` reclusters without refitting (the
    first stage, its residuals and the second-stage terms and residuals do not depend on the clustering)."""

    first: FirstStage
    resid: np.ndarray
    on: np.ndarray
    term: np.ndarray
    u2: np.ndarray
    n_terms: int
    treated_used: np.ndarray
    codes: dict[str, np.ndarray]
    data: Any
    row_index: np.ndarray | None
    default_cluster: str

    def recompute(self, func: str, vcov: str | None, cluster: str | Sequence[str] | None,
                  ssc: Any) -> tuple[np.ndarray, Inference]:
        if vcov not in (None, "cluster", "CR0") or ssc is not None:
            raise InvalidOptionError(
                f"{func}: the two-stage standard errors are the GMM cluster sums of R did2s; only the clustering "
                f"can change (got vcov={vcov!r}, ssc={ssc!r}). Fix: call with_vcov(cluster='col')."
            )
        names = [cluster] if isinstance(cluster, str) else list(cluster or [self.default_cluster])
        if len(names) != 1:
            raise InvalidOptionError(
                f"{func}: the two-stage variance clusters on one column; got cluster={names!r}. Fix: pass one "
                f"column.")
        name = names[0]
        raw = lookup_cluster_codes(func, [name], self.codes, self.data, self.row_index)[name]
        cl = np.unique(raw, return_inverse=True)[1].astype(np.int64)
        G = int(cl.max()) + 1
        V = two_stage_variance(self.first, self.resid, self.on, self.term, self.u2, self.n_terms, cl, G)
        n_treated = int(np.count_nonzero(np.bincount(cl[self.treated_used], minlength=G)))
        return V, _inference(name, G, n_treated)


def did2s(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str | None = None,
    cohort: str | None = None,
    first_stage_fe: str | Sequence[str] | None = None,
    first_stage_covariates: str | Sequence[str] | None = None,
    second_stage: str = "static",
    ref: int | Sequence[int] | None = None,
    window: tuple[int, int] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
) -> Did2sResult | Did2sEventResult:
    """Gardner's two-stage DiD: untreated-only first stage, second stage on the residualised outcome.

    ``beta = (X2'X2)^-1 X2' (Y - Yhat(0))`` with ``Yhat(0)`` from fixed effects (and covariates) fit on the
    untreated observations; GMM-corrected clustered covariance (see the module docstring).

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    treat : 0/1 column, 1 on treated observations (the first stage uses the rows where it is 0). Or:
    cohort : first treated period per unit (0 / NaN / inf / after the last period = never treated); then
        ``treat = 1[t >= cohort]``. ``second_stage="event"`` needs the cohort (given, or derived from an absorbing
        ``treat`` as each unit's first treated period).
    first_stage_fe : fixed-effect columns of the first stage; default ``[unit, time]``. Any columns, e.g.
        ``["state", "year"]`` (R: ``first_stage = ~ 0 | state + year``).
    first_stage_covariates : time-varying covariates of the first stage.
    second_stage : ``"static"`` (one treatment indicator, term ``ATT``) or ``"event"`` (one indicator per event
        time ``t - cohort``, terms ``event_time::<e>``, never-treated rows as the reference).
    ref : event time(s) left out of the second stage (their rows join the reference). Default: none, every
        event time is estimated (the first stage already normalises, as R's ``i(rel_year, ref = Inf)``).
    window : ``(lo, hi)``: estimate only event times in ``[lo, hi]``.
    cluster : cluster column of the variance; default ``unit``.
    weights : regression weights of both stages.

    References
    ----------
    Gardner, J. (2021). Two-stage differences in differences. arXiv:2207.05943.
    Butts, K. & Gardner, J. (2022). did2s: Two-Stage Difference-in-Differences. The R Journal 14(3).
    """
    func = "did2s"
    check_option(func, "second_stage", second_stage, ("static", "event"))
    if treat is None and cohort is None:
        raise InvalidOptionError(
            f"{func}: give treat= (a 0/1 column, 1 on treated observations) or cohort= (first treated period)."
        )
    fe_list = as_list(first_stage_fe) or [unit, time]
    if len(set(fe_list)) != len(fe_list):
        raise InvalidOptionError(f"{func}: first_stage_fe={fe_list!r} repeats a column. Fix: list each once.")
    extra = [c for c in fe_list if c not in (unit, time)]
    if window is not None:
        if second_stage != "event":
            raise InvalidOptionError(f"{func}: window= applies to second_stage='event' only.")
        if (not isinstance(window, tuple | list)) or len(window) != 2 or window[0] > window[1]:
            raise InvalidOptionError(
                f"The 'window' parameter of {func} must be a pair (lo, hi) of event times with lo <= hi, e.g. "
                f"(-5, 10). Got {window!r}."
            )
    if ref is not None and second_stage != "event":
        raise InvalidOptionError(f"{func}: ref= applies to second_stage='event' only.")
    panel = build_panel(data, func=func, y=y, unit=unit, time=time, treat=treat, cohort=cohort,
                        covariates=first_stage_covariates, weights=weights, cluster=cluster, categorical=extra,
                        require_control="untreated_obs")
    assert panel.unit is not None and panel.treat is not None
    names_map = {unit: panel.unit, time: panel.time}
    factors = [names_map[c] if c in names_map else panel.codes[c] for c in fe_list]
    treated = panel.treat == 1
    first = FirstStage(factors, fe_list, panel.covariates, ~treated, panel.weights, func=func,
                       covariate_names=panel.covariate_names)
    adj = first.fit(panel.y)
    ident = first.identified()
    report = panel.report
    lost = ~ident
    if lost.any():
        n_lost_units = int(np.count_nonzero(np.bincount(panel.unit[~lost], minlength=panel.n_units) == 0))
        report = report.with_dropped(Dropped(
            "treated observations whose first-stage fixed effects are not identified by the untreated "
            f"observations (a level of {', '.join(fe_list)} never untreated)", int(lost.sum()), n_lost_units))
    use = ident
    # second-stage terms, by cohort x period cell (event time = period - cohort): no per-row float temporaries
    if second_stage == "static":
        on = np.flatnonzero(treated & use)
        term = np.zeros(on.shape[0], dtype=np.int64)
        names = ["ATT"]
        term_et = None
        refs: tuple[float, ...] = ()
    else:
        unit_g = panel.unit_cohort() if panel.cohort is not None else _cohort_from_treat(
            panel.unit, panel.time, panel.periods, panel.treat, panel.n_units, treat, func)
        cohort_values, unit_code = np.unique(unit_g, return_inverse=True)
        T = panel.n_periods
        # only rows of ever-treated units can carry an event-time indicator
        rows_e = np.flatnonzero(np.isfinite(unit_g)[panel.unit])
        if lost.any():
            rows_e = rows_e[~lost[rows_e]]
        cell = unit_code.astype(np.int64)[panel.unit[rows_e]] * T + panel.time[rows_e]
        cell_event = (panel.periods[None, :] - cohort_values[:, None]).ravel()
        present = np.bincount(cell, minlength=cell_event.shape[0]) > 0
        values = np.unique(cell_event[present & np.isfinite(cell_event)])
        refs = tuple(float(r) for r in np.atleast_1d(np.asarray(ref, dtype=float))) if ref is not None else ()
        keep_vals = values[~np.isin(values, refs)]
        if window is not None:
            keep_vals = keep_vals[(keep_vals >= window[0]) & (keep_vals <= window[1])]
        if keep_vals.size == 0:
            raise DesignError(
                f"{func}: no event time left to estimate after ref={ref!r} and window={window!r} (estimated event "
                f"times: {', '.join(f'{v:g}' for v in values)}). Fix: widen the window or leave fewer event times "
                f"in ref."
            )
        pos = np.minimum(np.searchsorted(keep_vals, cell_event), keep_vals.shape[0] - 1)
        cell_term = np.where(keep_vals[pos] == cell_event, pos, -1)
        row_term = cell_term[cell]
        del cell
        sel = row_term >= 0
        on = rows_e[sel]
        term = row_term[sel]
        del row_term, rows_e
        names = [f"event_time::{v:g}" for v in keep_vals]
        term_et = keep_vals.astype(float)
    K = len(names)
    w_on = None if panel.weights is None else panel.weights[on]
    wsum = np.bincount(term, weights=w_on, minlength=K)
    if np.any(wsum <= 0):
        empty = [names[j] for j in np.flatnonzero(wsum <= 0)]
        raise DesignError(
            f"{func}: the second-stage term(s) {', '.join(empty)} have no observation with a positive weight"
            + (f" in {weights!r}" if weights else "") + ". Fix: give those observations positive weights, or "
            "leave the event time(s) out with ref= or window=."
        )
    adj_on = adj[on]
    coef = np.bincount(term, weights=adj_on if w_on is None else w_on * adj_on, minlength=K) / wsum
    u2 = adj_on - coef[term]
    del adj_on
    cluster_name = cluster if cluster is not None else unit
    cl = panel.codes[cluster] if cluster is not None else panel.unit
    G = int(cl.max()) + 1
    V = two_stage_variance(first, adj, on, term, u2, K, cl, G)
    n_terms = np.bincount(term, minlength=K).astype(float)
    n_used = int(use.sum())
    sample = SampleReport(n_input_rows=report.n_input_rows, n_obs=n_used,
                          n_units=panel.n_units if not lost.any() else int(np.count_nonzero(
                              np.bincount(panel.unit[use], minlength=panel.n_units))),
                          n_periods=report.n_periods, dropped=report.dropped, balanced=report.balanced,
                          n_units_with_gaps=report.n_units_with_gaps, notes=report.notes)
    n_treated_cl = int(np.count_nonzero(np.bincount(cl[treated & use], minlength=G)))
    inference = _inference(cluster_name, G, n_treated_cl)
    design = [
        ("Estimator", "two-stage DiD (Gardner 2021)"),
        ("Outcome", y),
        ("Treatment", f"{treat} (0/1)" if treat else f"1[{time} >= {cohort}] (absorbing)"),
        ("First stage", " + ".join(fe_list) + " fixed effects"
         + (" + " + ", ".join(panel.covariate_names) if panel.covariate_names else "")
         + f" on untreated observations ({int((~treated).sum())}) [{first.method}]"),
        ("Second stage", "treatment indicator, no intercept" if second_stage == "static"
         else "event-time indicators, no intercept; never-treated"
         + (f" and event times {', '.join(f'{r:g}' for r in refs)}" if refs else "") + " as reference"),
        ("Weights", weights or "none"),
    ]
    if second_stage == "event":
        design.insert(5, ("Window", "all event times" if window is None else f"[{window[0]}, {window[1]}]"))
    extras: dict[str, Any] = {"reference": refs, "first_stage_method": first.method}
    known = dict(panel.codes)
    known.setdefault(unit, panel.unit)
    source = Did2sVcovSource(first=first, resid=adj, on=on, term=term, u2=u2, n_terms=K,
                             treated_used=treated & use, codes=known, data=data, row_index=panel.row_index,
                             default_cluster=cluster_name)
    common: dict[str, Any] = dict(estimator="Two-stage DiD (Gardner)", terms=tuple(names), coef=coef,
                                  vcov_matrix=V, inference=inference, sample=sample, design=tuple(design),
                                  extras=extras, _source=source)
    if term_et is None:
        return Did2sResult(headline="ATT", term_info={"n": n_terms}, **common)
    post = [j for j, e in enumerate(term_et) if e >= 0]
    headline = names[post[0]] if post else names[0]
    return Did2sEventResult(headline=headline, term_info={"event_time": term_et, "n": n_terms}, **common)


def _cohort_from_treat(unit: np.ndarray, time: np.ndarray, periods: np.ndarray, treat: np.ndarray, n_units: int,
                       treat_name: str | None, func: str) -> np.ndarray:
    """First treated period of each unit (inf if never), checking that treatment is absorbing."""
    T = periods.shape[0]
    first = np.full(n_units, T, dtype=np.int64)
    on = treat == 1
    np.minimum.at(first, unit[on], time[on])
    g = np.where(first < T, periods[np.minimum(first, T - 1)], np.inf)
    bad = (time >= first[unit]) != (treat == 1)
    if bad.any():
        raise DataError(
            f"{func}: second_stage='event' needs an absorbing treatment, but {treat_name!r} switches off after "
            f"switching on for {int(np.count_nonzero(np.bincount(unit[bad], minlength=n_units)))} units. Fix: pass "
            f"cohort= (first treated period), or use second_stage='static'."
        )
    return np.asarray(g)
