"""Gardner's (2021) two-stage difference-in-differences, with the GMM-corrected variance of Butts & Gardner.

Stage one: fit ``Y_it = sum_f delta_f[level_f(it)] (+ W_it' b) + e`` on the untreated observations only (by
default unit and time fixed effects; any fixed-effect columns may be given, e.g. state and year) -- the same first
stage as the imputation estimator (:mod:`didx.estimators.imputation.first_stage`).
Stage two: regress the residualised outcome ``Ytilde_it = Y_it - Yhat_it(0)`` on the treatment terms, without
an intercept, over the full sample: one treatment indicator (``second_stage="static"``) or one indicator per
event time ``t - cohort`` (``"event_study"``). Both second stages are sets of mutually exclusive indicators, so
the coefficients are (weighted) means of ``Ytilde`` by term.

Variance (Butts & Gardner, "did2s: Two-Stage Difference-in-Differences", R Journal 2022; R ``did2s``): with
``X1`` the first-stage design on all rows, ``X10`` the same with treated rows zeroed, ``X2`` the second-stage
design, ``u1`` the first-stage residuals (zero on treated rows) and ``u2`` the second-stage residuals,

    V = (X2'X2)^-1 ( sum_g psi_g psi_g' ) (X2'X2)^-1,
    psi_g = X2_g' u2_g - (X2'X1) (X10'X10)^-1 X10_g' u1_g,

with no small-sample factor. Nothing here is n x (number of fixed-effect levels): ``(X10'X10)^-1 X1'X2`` is a
solve of the first-stage normal equations with right-hand sides the per-level sums of ``X2`` (bincounts; two
factors solved exactly by the concentrated method, see :mod:`didx.estimators.imputation.first_stage`), and
``X10_g' u1_g`` enters only through the sparse cluster x level sums of ``u1`` (:mod:`didx.inference.imputation`,
shared with BJS's variance). Memory is O(n + levels x terms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import SampleReport
from didx._validate import check_option, fmt_value
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
from didx.inference.imputation import TreatedScores, compact
from didx.registry import PRE_PERIOD
from didx.results.base import Inference, Result

FUNC = "did2s"
SECOND_STAGES = ("static", "event_study")

PRE_PERIOD_MEANING = PRE_PERIOD["did2s"]
"""What a lead coefficient of this estimator is (one text, in the registry)."""


@dataclass(frozen=True, eq=False)
class Did2sResult(Result):
    """Static result of :func:`did2s`."""


@dataclass(frozen=True, eq=False)
class Did2sEventResult(FirstStageEventResult):
    """Event-study result of :func:`did2s` (terms ``event_time::<e>``). ``aggregate("average")`` weights the
    event times ``e >= 0`` by their treated observations: with every one estimated, the static point estimate."""


# ---------------------------------------------------------------------------------------------------------------
# options (validated before the data are read)
@dataclass(frozen=True)
class _Options:
    fe: tuple[str, ...]
    second_stage: str
    ref: tuple[float, ...]
    window: tuple[float, float] | None
    cluster: str | None


def _check_options(*, unit: str, time: str, covariates: Any, fe: Any, second_stage: Any, ref: Any, window: Any,
                   cluster: Any) -> _Options:
    func = FUNC
    check_option(func, "second_stage", second_stage, SECOND_STAGES)
    check_distinct(func, "covariates", covariates)
    if window is not None:
        if second_stage != "event_study":
            raise InvalidOptionError(f"{func}: window= applies to second_stage='event_study' only.")
        if (not isinstance(window, tuple | list) or len(window) != 2
                or not all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
                           for v in window) or window[0] > window[1]):
            raise InvalidOptionError(
                f"The 'window' parameter of {func} must be a pair (lo, hi) of event times with lo <= hi, e.g. "
                f"(-5, 10). Got {window!r}."
            )
    refs: tuple[float, ...] = ()
    if ref is not None:
        if second_stage != "event_study":
            raise InvalidOptionError(f"{func}: ref= applies to second_stage='event_study' only.")
        items = list(ref) if isinstance(ref, list | tuple | np.ndarray | range) else [ref]
        bad = [r for r in items if isinstance(r, bool) or not isinstance(r, int | float | np.integer | np.floating)
               or not float(r).is_integer()]
        if bad or not items:
            raise InvalidOptionError(
                f"The 'ref' parameter of {func} must be an event time (an integer) or a list of them. Got "
                f"{ref!r}. Fix: e.g. ref=-1, or ref=[-1, -2]."
            )
        refs = tuple(sorted({float(r) for r in items}))
    return _Options(fe=fe_option(func, fe, unit, time), second_stage=second_stage, ref=refs,
                    window=None if window is None else (float(window[0]), float(window[1])),
                    cluster=cluster_option(func, cluster))


# ---------------------------------------------------------------------------------------------------------------
# entry points
def did2s(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str | None = None,
    cohort: str | None = None,
    covariates: str | Sequence[str] | None = None,
    fe: str | Sequence[str] | None = None,
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
        ``treat = 1[t >= cohort]``. ``second_stage="event_study"`` needs the cohort (given, or derived from an
        absorbing ``treat`` as each unit's first treated period).
    covariates : time-varying covariates of the first stage.
    fe : fixed-effect columns of the first stage; default ``[unit, time]``. Any columns, e.g.
        ``["state", "year"]`` (R: ``first_stage = ~ 0 | state + year``).
    second_stage : ``"static"`` (one treatment indicator, term ``ATT``) or ``"event_study"`` (one indicator per
        event time ``t - cohort``, terms ``event_time::<e>``, never-treated rows as the reference).
    ref : event time(s) left out of the second stage (their rows join the reference); each must be an event time
        of the data. Default: none, every event time is estimated (the first stage already normalises, as R's
        ``i(rel_year, ref = Inf)``).
    window : ``(lo, hi)``: estimate only event times in ``[lo, hi]``.
    cluster : cluster column of the variance; default ``unit``.
    weights : regression-weight column of both stages.

    References
    ----------
    Gardner, J. (2021). Two-stage differences in differences. arXiv:2207.05943.
    Butts, K. & Gardner, J. (2022). did2s: Two-Stage Difference-in-Differences. The R Journal 14(3).
    """
    if treat is None and cohort is None:
        raise InvalidOptionError(
            f"{FUNC}: give treat= (a 0/1 column, 1 on treated observations) or cohort= (first treated period)."
        )
    opts = _check_options(unit=unit, time=time, covariates=covariates, fe=fe, second_stage=second_stage, ref=ref,
                          window=window, cluster=cluster)
    if (src := engine_input(data, FUNC)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.imputation import Parts, did2s_moments

        parts = Parts(FUNC, design_text, build_result, lost_reason(opts), event_times=kept_event_times)
        return did2s_moments(src, opts, parts, y=y, unit=unit, time=time, treat=treat, cohort=cohort,
                             covariates=covariates, weights=weights)
    panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, treat=treat, cohort=cohort,
                        covariates=covariates, weights=weights, cluster=cluster,
                        categorical=[c for c in opts.fe if c not in (unit, time)], require_control="untreated_obs")
    return _fit(panel, opts)


def from_panel(
    panel: Panel,
    *,
    fe: str | Sequence[str] | None = None,
    second_stage: str = "static",
    ref: int | Sequence[int] | None = None,
    window: tuple[int, int] | None = None,
    cluster: str | None = None,
) -> Did2sResult | Did2sEventResult:
    """:func:`did2s` on a panel already built by :func:`didx._panel.build_panel` (with ``unit``, ``treat`` or
    ``cohort``, the covariates and weights, and the ``fe`` and ``cluster`` columns as categorical codes), without
    re-reading the frame."""
    unit, time = panel.names.get("unit"), panel.names.get("time")
    if panel.unit is None or panel.treat is None or unit is None or time is None:
        raise InvalidOptionError(
            f"{FUNC}.from_panel: the panel needs a unit and a treatment (treat= or cohort=). Fix: build it with "
            f"build_panel(..., unit=, cohort=) or treat=."
        )
    opts = _check_options(unit=unit, time=time, covariates=list(panel.covariate_names), fe=fe,
                          second_stage=second_stage, ref=ref, window=window, cluster=cluster)
    check_panel_columns(FUNC, panel, opts.fe, opts.cluster)
    return _fit(panel, opts)


def _fit(panel: Panel, opts: _Options) -> Did2sResult | Did2sEventResult:
    check_weights(FUNC, panel)
    est = _estimate(panel, opts)
    return _assemble(panel, opts, est)


# ---------------------------------------------------------------------------------------------------------------
# estimation
@dataclass(frozen=True, eq=False)
class _Estimates:
    first: FirstStage
    source: FirstStageSource
    coef: np.ndarray
    terms: tuple[str, ...]
    event_time: np.ndarray | None
    n: np.ndarray
    treated_weight: np.ndarray
    lost: np.ndarray


def _estimate(panel: Panel, opts: _Options) -> _Estimates:
    assert panel.unit is not None and panel.treat is not None
    treated = panel.treat == 1
    first = FirstStage([factor_codes(panel, c) for c in opts.fe], opts.fe, panel.covariates, ~treated,
                       panel.weights, func=FUNC, covariate_names=panel.covariate_names)
    adj = first.fit(panel.y)
    lost = ~first.identified()
    if opts.second_stage == "static":
        on = np.flatnonzero(treated & ~lost)
        term = np.zeros(on.shape[0], dtype=np.int64)
        terms: tuple[str, ...] = ("ATT",)
        term_et = None
    else:
        on, term, term_et = _event_terms(panel, opts, lost)
        terms = tuple(f"event_time::{v:g}" for v in term_et)
    K = len(terms)
    w_on = None if panel.weights is None else panel.weights[on]
    wsum = np.bincount(term, weights=w_on, minlength=K)
    if np.any(wsum <= 0):
        empty = [terms[j] for j in np.flatnonzero(wsum <= 0)]
        weights = panel.names.get("weights")
        raise DesignError(
            f"{FUNC}: the second-stage term(s) {', '.join(empty)} have no observation with a positive weight"
            + (f" in {weights!r}" if weights else "") + ". Fix: give those observations positive weights, or "
            "leave the event time(s) out with ref= or window=."
        )
    adj_on = adj[on]
    coef = np.bincount(term, weights=adj_on if w_on is None else w_on * adj_on, minlength=K) / wsum
    u2 = adj_on - coef[term]
    del adj_on
    beta_q, delta_q = first.project(on, term, np.ones(on.shape[0]) if w_on is None else w_on, K)
    source = FirstStageSource(
        untreated=first.untreated_projection(adj, beta_q, delta_q),
        treated=TreatedScores(row=compact(on, panel.n_obs), col=compact(term, K), value=w_on, resid=u2, n_cols=K,
                              scale=1.0 / wsum),
        clusters=cluster_codes(panel, opts.fe, opts.cluster),
        default_cluster=opts.cluster if opts.cluster is not None else panel.names["unit"],
        imputed=treated & ~lost, variance="two_stage")
    treated_weight = np.where(term_et >= 0, wsum, np.nan) if term_et is not None else wsum
    return _Estimates(first=first, source=source, coef=coef, terms=terms, event_time=term_et,
                      n=np.bincount(term, minlength=K).astype(float), treated_weight=treated_weight, lost=lost)


def _event_terms(panel: Panel, opts: _Options, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with an event-time indicator, their term and the terms' event times (cohort x period cells: event time
    = period - cohort, no per-row float temporaries)."""
    assert panel.unit is not None and panel.treat is not None
    unit_g = panel.unit_cohort() if panel.cohort is not None else _cohort_from_treat(
        panel.unit, panel.time, panel.periods, panel.treat, panel.n_units, panel.names.get("treat"))
    cohort_values, unit_code = np.unique(unit_g, return_inverse=True)
    # only rows of ever-treated units can carry an event-time indicator
    rows_e = np.flatnonzero(np.isfinite(unit_g)[panel.unit])
    if lost.any():
        rows_e = rows_e[~lost[rows_e]]
    cell = unit_code.astype(np.int64)[panel.unit[rows_e]] * panel.n_periods + panel.time[rows_e]
    cell_event = (panel.periods[None, :] - cohort_values[:, None]).ravel()
    present = np.bincount(cell, minlength=cell_event.shape[0]) > 0
    values = np.unique(cell_event[present & np.isfinite(cell_event)])
    keep_vals = kept_event_times(opts, values)
    pos = np.minimum(np.searchsorted(keep_vals, cell_event), keep_vals.shape[0] - 1)
    cell_term = np.where(keep_vals[pos] == cell_event, pos, -1)
    row_term = cell_term[cell]
    sel = row_term >= 0
    return rows_e[sel], row_term[sel], keep_vals.astype(float)


def kept_event_times(opts: _Options, values: np.ndarray) -> np.ndarray:
    """The event times the second stage estimates among those observed (``values``): all but ``ref``, within
    ``window`` (shared with the engines' fit)."""
    missing = [r for r in opts.ref if r not in set(values.tolist())]
    if missing:
        raise InvalidOptionError(
            f"{FUNC}: ref={fmt_value(missing[0])} is not an event time of the data (event times with an "
            f"observation: {', '.join(f'{v:g}' for v in values)}). Fix: choose ref among them, or leave it out."
        )
    keep_vals = values[~np.isin(values, opts.ref)]
    if opts.window is not None:
        keep_vals = keep_vals[(keep_vals >= opts.window[0]) & (keep_vals <= opts.window[1])]
    if keep_vals.size == 0:
        refs = [int(r) for r in opts.ref]
        win = None if opts.window is None else tuple(fmt_value(v) for v in opts.window)
        raise DesignError(
            f"{FUNC}: no event time left to estimate after ref={refs[0] if len(refs) == 1 else refs!r} and "
            f"window={'None' if win is None else '(' + ', '.join(win) + ')'} (estimated event times: "
            f"{', '.join(f'{v:g}' for v in values)}). Fix: widen the window or leave fewer event times in ref."
        )
    return keep_vals


def _cohort_from_treat(unit: np.ndarray, time: np.ndarray, periods: np.ndarray, treat: np.ndarray, n_units: int,
                       treat_name: str | None) -> np.ndarray:
    """First treated period of each unit (inf if never), checking that treatment is absorbing."""
    T = periods.shape[0]
    first = np.full(n_units, T, dtype=np.int64)
    on = treat == 1
    np.minimum.at(first, unit[on], time[on])
    g = np.where(first < T, periods[np.minimum(first, T - 1)], np.inf)
    bad = (time >= first[unit]) != (treat == 1)
    if bad.any():
        raise DataError(
            f"{FUNC}: second_stage='event_study' needs an absorbing treatment, but {treat_name!r} switches off "
            f"after switching on for {int(np.count_nonzero(np.bincount(unit[bad], minlength=n_units)))} units. "
            f"Fix: pass cohort= (first treated period), or use second_stage='static'."
        )
    return np.asarray(g)


# ---------------------------------------------------------------------------------------------------------------
# result assembly
def _assemble(panel: Panel, opts: _Options, est: _Estimates) -> Did2sResult | Did2sEventResult:
    V, inference = est.source.covariance(FUNC, VcovRequest(), {})
    assert panel.treat is not None
    report = lost_rows_report(panel, est.lost, lost_reason(opts))
    design = design_text(panel.names, opts, n_untreated=int(np.count_nonzero(panel.treat != 1)),
                         method=est.first.method, covariate_names=panel.covariate_names,
                         event_study=est.event_time is not None)
    return build_result(opts, terms=est.terms, coef=est.coef, vcov=V, inference=inference, report=report,
                        design=design, source=est.source, event_time=est.event_time, n=est.n,
                        treated_weight=est.treated_weight, method=est.first.method)


def lost_reason(opts: _Options) -> str:
    return ("treated observations whose first-stage fixed effects are not identified by the untreated observations "
            f"(a level of {', '.join(opts.fe)} never untreated)")


def design_text(names: Mapping[str, Any], opts: _Options, *, n_untreated: int, method: str,
                covariate_names: Sequence[str], event_study: bool) -> tuple[tuple[str, str], ...]:
    """The result's design lines (shared with the engines' fit, :mod:`didx.engines.imputation`)."""
    treat = names.get("treat")
    design = [
        ("Estimator", "two-stage DiD (Gardner 2021)"),
        ("Outcome", names["y"]),
        ("Treatment", f"{treat} (0/1)" if treat else f"1[{names['time']} >= {names['cohort']}] (absorbing)"),
        ("First stage", " + ".join(opts.fe) + " fixed effects"
         + (" + " + ", ".join(covariate_names) if covariate_names else "")
         + f" on untreated observations ({n_untreated}) [{method}]"),
        ("Second stage", "treatment indicator, no intercept" if not event_study
         else "event-time indicators, no intercept; never-treated"
         + (f" and event times {', '.join(f'{r:g}' for r in opts.ref)}" if opts.ref else "") + " as reference"),
        ("Weights", names.get("weights") or "none"),
    ]
    if event_study:
        design.insert(5, ("Window", "all event times" if opts.window is None
                          else f"[{opts.window[0]:g}, {opts.window[1]:g}]"))
    return tuple(design)


def build_result(opts: _Options, *, terms: tuple[str, ...], coef: np.ndarray, vcov: np.ndarray,
                 inference: Inference, report: SampleReport, design: tuple[tuple[str, str], ...], source: Any,
                 event_time: np.ndarray | None, n: np.ndarray, treated_weight: np.ndarray,
                 method: str) -> Did2sResult | Did2sEventResult:
    """The static or event-study result (shared with the engines' fit)."""
    extras: dict[str, Any] = {"reference": opts.ref, "first_stage_method": method}
    common: dict[str, Any] = dict(estimator="Two-stage DiD (Gardner)", terms=terms, coef=coef, vcov_matrix=vcov,
                                  inference=inference, sample=report, design=design, extras=extras, _source=source)
    if event_time is None:
        return Did2sResult(headline="ATT", term_info={"n": n}, **common)
    post = [j for j, e in enumerate(event_time) if e >= 0]
    return Did2sEventResult(headline=terms[post[0] if post else 0],
                            term_info={"event_time": event_time, "n": n, "treated_weight": treated_weight},
                            pre_period_meaning=PRE_PERIOD_MEANING, cross_covariance=True, **common)


__all__ = ["Did2sEventResult", "Did2sResult", "did2s", "from_panel"]
