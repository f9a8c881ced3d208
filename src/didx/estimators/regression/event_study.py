"""The two-way fixed-effects event study (dynamic TWFE).

    y_it = a_i + l_t + sum_{k not in ref} b_k 1[t - g_i = k] + W_it' c + e_it

with ``g_i`` the first treated period of unit ``i`` and ``k = t - g_i`` the event time, in period units.
Never-treated units have no event-time indicator: they contribute to the fixed effects (the counterfactual
time path) only. Always-treated units (treated in the first period) have no pre-period and are dropped and
reported. The coefficients of the reference event times (``ref``, default -1) are normalised to zero; with a
list (``ref=[-1, -5]``) several are, as fixest's ``i(rel, ref = c(-1, -5))`` does.

Window. ``window=(lo, hi)`` keeps the event times ``lo..hi``. Observations of treated units outside the
window are *dropped* (and counted in the sample report); never-treated units are kept whole. This is the
"trimmed" event study (Schmidheiny & Siegloch 2023). It differs from fixest's ``i(rel, keep = lo:hi)``, which
keeps those observations with all indicators zero, i.e. silently pools them with the reference period. With
``bin_endpoints=True`` nothing is dropped: the end points become ``1[k <= lo]`` and ``1[k >= hi]``.

Computation. On a balanced panel without weights the demeaned event-time indicators are built in closed form on
the cohort x period cells (an indicator depends on the unit only through its cohort) and gathered, instead of
materialising dense indicators and demeaning them column by column; otherwise the fixed-effect solver demeans
them. Both give the same numbers (tests/test_event_study_compare.py).

Standard errors follow fixest (default CR1 clustered by unit). Reference: ``fixest::feols(y ~ i(rel, ref =
c(-1, -1000)) | unit + time)`` with never-treated units coded ``rel = -1000`` (fixest 0.12.2); Borusyak,
Jaravel & Spiess (2024) and Sun & Abraham (2021) on when the TWFE event study is (not) a weighted average of
effects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, fmt_value
from didx.estimators.regression.collapse import CollapseInfo, check_collapse, collapse_by_group
from didx.estimators.regression.common import RegressionResult, default_spec, make_regression_result
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols, independent_columns
from didx.results.event import EventStudyResult

if TYPE_CHECKING:
    from didx.comparison import EventStudyComparison

TERM_PREFIX = "event_time::"


@dataclass(frozen=True, eq=False)
class EventStudyRegressionResult(RegressionResult, EventStudyResult):
    """Result of :func:`event_study`: a regression result (``with_vcov``, wild bootstrap) and an event study
    (``pretrend_test``, ``event_table``, ``plot``)."""


def event_term(k: float) -> str:
    """The term name of event time ``k`` (``"event_time::-2"``)."""
    return f"{TERM_PREFIX}{k:g}"


def _check_ref(func: str, ref: float | Sequence[float]) -> tuple[float, ...]:
    refs = [ref] if isinstance(ref, int | float | np.integer | np.floating) else list(ref)
    if not refs:
        raise InvalidOptionError(f"{func}: ref must be an event time (e.g. -1) or a list of them; got [].")
    out = []
    for r in refs:
        number = isinstance(r, int | float | np.integer | np.floating) and not isinstance(r, bool)
        if not number or not np.isfinite(r):
            raise InvalidOptionError(
                f"{func}: ref must be a pre-treatment event time such as -1 (or a list, e.g. [-1, -5]). "
                f"Got {r!r}."
            )
        if r >= 0:
            raise InvalidOptionError(
                f"{func}: ref={r!r} is not a pre-treatment event time; the reference period must be negative "
                f"(k = t - cohort < 0). Fix: use ref=-1 (the period just before treatment) or ref=-2 to "
                f"allow one period of anticipation."
            )
        out.append(float(r))
    return tuple(sorted(set(out)))


def _check_window(func: str, window: tuple[float, float] | None,
                  refs: tuple[float, ...]) -> tuple[float, float] | None:
    if window is None:
        return None
    try:
        lo, hi = (float(window[0]), float(window[1]))
        ok = len(window) == 2
    except (TypeError, ValueError, IndexError):
        ok = False
    if not ok or not (np.isfinite(lo) and np.isfinite(hi)) or lo >= 0 or hi < 0:
        raise InvalidOptionError(
            f"{func}: window must be a pair (lo, hi) of event times with lo < 0 <= hi, e.g. window=(-4, 3). "
            f"Got {window!r}."
        )
    outside = [r for r in refs if not lo <= r <= hi]
    if outside:
        raise InvalidOptionError(
            f"{func}: the reference period(s) {outside} lie outside window={window!r}. Fix: widen the "
            f"window or choose ref inside it."
        )
    return lo, hi


@overload
def event_study(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    window: tuple[float, float] | None = None,
    bin_endpoints: bool = False,
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    collapse: str | None = None,
    estimator: Literal["twfe"] = "twfe",
    options: None = None,
) -> EventStudyRegressionResult: ...


@overload
def event_study(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    window: tuple[float, float] | None = None,
    bin_endpoints: bool = False,
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    collapse: str | None = None,
    estimator: str | Sequence[str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> EventStudyResult | EventStudyComparison: ...


def event_study(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    window: tuple[float, float] | None = None,
    bin_endpoints: bool = False,
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    collapse: str | None = None,
    estimator: str | Sequence[str] = "twfe",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> EventStudyResult | EventStudyComparison:
    """TWFE event study: dynamic effects relative to a reference period.

    ``y_it = a_i + l_t + sum_{k not in ref} b_k 1[t - g_i = k] + W_it' c + e_it``.

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...).
    y, unit, time : outcome, unit and period columns. Event time is ``k = time - cohort`` in the units of
        ``time`` (for a date-like ``time``, in positions of the sorted periods).
    cohort : first treated period of each unit; never treated as 0, NaN, inf or any value after the last
        period (fixest's 10000 convention works). A single-date design is a cohort column equal to the
        treatment date for treated units and never-treated otherwise.
    ref : reference event time(s), normalised to 0. Default -1; ``ref=-2`` allows one period of anticipation;
        a list (``[-1, -5]``) normalises several, which identifies the model without never-treated units.
    window : ``(lo, hi)``: estimate ``b_lo .. b_hi``. Observations of treated units outside it are dropped and
        reported (a trimmed event study), unless ``bin_endpoints``.
    bin_endpoints : with ``window``, keep every observation and bin event times beyond the window into the end
        points: ``b_lo`` is the effect at ``k <= lo`` and ``b_hi`` at ``k >= hi``.
    covariates : time-varying controls (their terms have no event time).
    vcov, cluster, ssc : covariance (see :func:`didx.twfe`). Default CR1 clustered by ``unit`` (fixest).
    weights : sampling weights (weighted least squares).
    collapse : ``"group_period"`` (or ``"group_period_weighted"``, cells weighted by size): estimate on
        group x period cell means, the groups being ``cluster`` if given, else the cohorts (Bertrand, Duflo &
        Mullainathan 2004). The remedy when treatment varies at the level of few groups.
    estimator : ``"twfe"`` (default: this regression), or another event-study estimator run with the same
        ``ref`` and ``window`` -- ``"sun_abraham"``, ``"callaway_santanna"`` (universal base period, never-treated
        controls, dynamic aggregation), ``"imputation"`` (BJS), ``"did2s"`` (Gardner), ``"dcdh"``
        (de Chaisemartin-D'Haultfoeuille, treatment ``1[time >= cohort]``), ``"stacked"`` (needs ``window``) --
        or a list of them, or ``"all"``. An option an estimator cannot honour raises (e.g. ``ref=-2`` for dcdh,
        ``covariates`` for stacked). See :mod:`didx.comparison` for the mapping and for how the
        estimators' pre-period coefficients differ.
    options : per-estimator keyword arguments passed on (and overriding the mapped ones), e.g.
        ``{"callaway_santanna": {"base_period": "varying", "control": "not_yet"}, "stacked": {"window": (-2, 1)}}``.

    Returns
    -------
    EventStudyRegressionResult (``estimator="twfe"``) : terms ``"event_time::k"`` (``term_info["event_time"]``
        = k; NaN for covariates) and the covariates; ``.estimate`` is ``b_0``. ``.pretrend_test()``,
        ``.plot()``, ``.event_table()``, ``.with_vcov()``.
    EventStudyResult (another single estimator) : that estimator's event study.
    EventStudyComparison (a list or ``"all"``) : ``.tidy()`` (one table: estimator, term, event_time, estimate,
        std_error, conf_low, conf_high, reference), ``.plot()`` (overlaid), ``.results``, ``.summary()``.
    """
    func = "event_study"
    refs = _check_ref(func, ref)
    win = _check_window(func, window, refs)
    if not (isinstance(estimator, str) and estimator == "twfe") or options is not None:
        from didx.comparison import compare_event_studies, parse_estimators

        names = parse_estimators(func, estimator)
        return compare_event_studies(
            data, names=names, single=isinstance(estimator, str) and estimator != "all", y=y, unit=unit,
            time=time, cohort=cohort, refs=refs, window=win, bin_endpoints=bin_endpoints, covariates=covariates,
            vcov=vcov, cluster=cluster, weights=weights, ssc=ssc, collapse=collapse, options=options)
    return _twfe_event_study(data, y=y, unit=unit, time=time, cohort=cohort, refs=refs, win=win,
                             bin_endpoints=bin_endpoints, covariates=covariates, vcov=vcov, cluster=cluster,
                             weights=weights, ssc=ssc, collapse=collapse)


def _twfe_event_study(data: Any, *, y: str, unit: str, time: str, cohort: str, refs: tuple[float, ...],
                      win: tuple[float, float] | None, bin_endpoints: bool, covariates: str | Sequence[str] | None,
                      vcov: str | None, cluster: str | Sequence[str] | None, weights: str | None,
                      ssc: SSC | None, collapse: str | None) -> EventStudyRegressionResult:
    func = "event_study"
    if bin_endpoints and win is None:
        raise InvalidOptionError(
            f"{func}: bin_endpoints=True needs a window=(lo, hi) whose end points receive the binned event "
            f"times. Fix: pass window=, or drop bin_endpoints."
        )
    check_collapse(func, collapse)
    cl_list = as_list(cluster)
    panel = build_panel(data, func=func, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=cl_list, require_control="untreated_obs")
    assert panel.unit is not None and panel.cohort is not None  # unit and cohort are required arguments
    report = panel.report
    # always-treated units: no untreated period of their own
    first_period = panel.periods[0]
    always = panel.cohort <= first_period
    n_always_units = 0
    if always.any():
        n_always_units = int(np.unique(panel.unit[always]).shape[0])
        report = report.with_dropped(Dropped(
            f"always treated ({cohort} <= first period {panel.period_labels[0]!r}): no pre-treatment period",
            int(always.sum()), n_always_units))
        panel = _subset(panel, ~always, report)
    treated_row = np.isfinite(_cohort(panel))
    if not treated_row.any():
        raise DesignError(
            f"{func}: every treated unit of {cohort!r} ({n_always_units} units) is treated from the first period "
            f"{fmt_value(panel.period_labels[0])} on (always treated, dropped): no unit's treatment starts inside "
            f"the panel, so no event-time effect is identified. Fix: check the {cohort!r} column (first treated "
            f"period; never treated as 0/NaN), or use data that include periods before treatment."
        )
    k = _event_time(panel, treated_row)
    n_trimmed = 0
    if win is not None:
        lo, hi = win
        if bin_endpoints:
            k = np.where(treated_row, np.clip(k, lo, hi), np.nan)
        else:
            out = treated_row & ((k < lo) | (k > hi))
            if out.any():
                n_trimmed = int(out.sum())
                before = np.unique(_units(panel)).shape[0]
                keep = ~out
                after = np.unique(_units(panel)[keep]).shape[0]
                reason = f"observations of treated units outside window [{lo:g}, {hi:g}]"
                report = report.with_dropped(Dropped(reason, n_trimmed, before - after))
                panel = _subset(panel, keep, report)
                k = k[keep]
                treated_row = treated_row[keep]
    observed = np.unique(k[treated_row])
    missing_refs = [r for r in refs if not np.any(np.isclose(observed, r))]
    if missing_refs:
        shown = ", ".join(f"{v:g}" for v in observed[:20])
        raise DesignError(
            f"{func}: the reference event time(s) {', '.join(f'{r:g}' for r in missing_refs)} are never "
            f"observed (observed event times: {shown}). Fix: choose ref among the observed pre-treatment event times."
        )
    report = panel.report
    collapse_info: CollapseInfo | None = None
    if collapse is not None:
        panel, collapse_info = collapse_by_group(panel, func=func, collapse=collapse, cluster=cl_list,
                                                 constant={"event time": k})
        report = panel.report
        treated_row = np.isfinite(_cohort(panel))
        k = _event_time(panel, treated_row)
        if bin_endpoints and win is not None:
            k = np.where(treated_row, np.clip(k, win[0], win[1]), np.nan)
    est_k = np.array([v for v in np.unique(k[treated_row]) if not np.any(np.isclose(v, refs))])
    # the event-time column of each row (-1: no indicator)
    col_of = np.full(k.shape[0], -1, dtype=np.int64)
    pos = np.searchsorted(est_k, k[treated_row])
    pos_ok = (pos < est_k.shape[0])
    hit = np.zeros(pos.shape[0], dtype=bool)
    hit[pos_ok] = np.isclose(est_k[pos[pos_ok]], k[treated_row][pos_ok])
    tr_idx = np.flatnonzero(treated_row)
    col_of[tr_idx[hit]] = pos[hit]
    rows = np.flatnonzero(col_of >= 0)
    names = [event_term(v) for v in est_k] + list(panel.covariate_names)
    fe_unit_name = unit if collapse_info is None else collapse_info.group
    fes = FixedEffects([_units(panel), panel.time], [fe_unit_name, time], weights=panel.weights)
    if collapse_info is None and panel.weights is None and _is_balanced(panel):
        fit = _fit_balanced(panel, col_of, est_k.shape[0], names, fes, func)
    else:
        # unbalanced or weighted: dense indicators (n x K_event), demeaned by the fixed-effect solver
        D = np.zeros((panel.n_obs, est_k.shape[0]))
        D[rows, col_of[rows]] = 1.0
        X = np.column_stack([D, panel.covariates]) if panel.covariates.shape[1] else D
        fit = fit_ols(panel.y, X, names, fe=fes, weights=panel.weights, func=func)
    if not any(n.startswith(TERM_PREFIX) for n in fit.names):
        raise DesignError(
            f"{func}: no event-time coefficient is identified (all are collinear with the fixed effects). "
            f"Fix: check the cohort column and that there are untreated observations in each period."
        )
    event_of = {event_term(v): float(v) for v in est_k}
    et = np.array([event_of.get(n, np.nan) for n in fit.names])
    n_obs_k = np.bincount(col_of[rows], minlength=est_k.shape[0])
    n_of = {event_term(v): int(c) for v, c in zip(est_k, n_obs_k, strict=True)}
    n_term = np.array([n_of.get(n, panel.n_obs) for n in fit.names], dtype=float)
    headline = _headline(fit.names, et)
    default = default_spec([fe_unit_name], "iid", ssc)
    if collapse_info is not None and cl_list:
        default = default_spec([cl_list[0]], "iid", ssc)
    spec = resolve_vcov(func, vcov, cl_list or None, default, ssc)
    codes = dict(panel.codes)
    codes.setdefault(fe_unit_name, _units(panel))
    codes.setdefault(time, panel.time)
    g = _cohort(panel)
    ever = np.isfinite(g).astype(float)
    n_never = int(np.unique(_units(panel)[~np.isfinite(g)]).shape[0])
    n_cohorts = int(np.unique(g[np.isfinite(g)]).shape[0])
    design = _design(y=y, cohort=cohort, time=time, refs=refs, win=win, bin_endpoints=bin_endpoints,
                     n_trimmed=n_trimmed, n_always=n_always_units, n_never=n_never, n_cohorts=n_cohorts,
                     fe=f"{fe_unit_name}, {time} [{fes.method}]", covariates=panel.covariate_names,
                     weights=weights, collapse_info=collapse_info)
    notes = []
    if n_never == 0 and len(refs) < 2:
        notes.append("No never-treated units: with a single reference period the event-time coefficients are "
                     "identified only up to a linear trend; one is dropped for collinearity. Pin two periods "
                     "(ref=[-1, -k]) to choose which.")
    res: EventStudyRegressionResult = make_regression_result(
        EventStudyRegressionResult, estimator="TWFE event study", fit=fit, headline=headline, spec=spec,
        codes=codes, fingerprint=panel.fingerprint, row_index=panel.row_index, sample=report, design=design,
        treated=ever,
        term_info={"event_time": et, "n": n_term}, notes=notes, func=func, collapsed=collapse_info is not None,
        extras={"reference": refs, "window": win, "bin_endpoints": bin_endpoints, "outcome": y,
                "collapse": None if collapse_info is None else collapse_info.describe()},
    )
    return res


def _is_balanced(panel: Panel) -> bool:
    """Every unit observed in every period (duplicates are rejected by ``build_panel``)."""
    unit = _units(panel)
    n_units = int(unit.max()) + 1 if unit.size else 0
    return bool(n_units and panel.n_obs == n_units * panel.n_periods
                and np.bincount(unit, minlength=n_units).min() == panel.n_periods)


def _fit_balanced(panel: Panel, col_of: np.ndarray, n_event: int, names: Sequence[str], fes: FixedEffects,
                  func: str) -> OLSFit:
    """The regression on a balanced panel without weights, with the demeaned event-time indicators in closed form.

    An indicator ``x_it = f(g_i, t)`` depends on the unit only through its cohort, so its two-way demeaned value
    ``x_it - mean_s f(g_i, s) - sum_h p_h f(h, t) + sum_h p_h mean_s f(h, s)`` (``p_h`` the cohort shares) is a
    cohort x period table: built on the C x T cells and gathered, with no dense indicator matrix and no iterative
    demeaning of K columns. Covariates and the outcome go through the fixed-effect solver. Collinearity is judged
    as in :func:`didx.linalg.ols.fit_ols` (against each column's sum of squares before demeaning).
    """
    unit = _units(panel)
    T = panel.n_periods
    n_units = int(unit.max()) + 1
    unit_cohort = np.full(n_units, np.inf)
    unit_cohort[unit] = _cohort(panel)
    _, unit_code = np.unique(unit_cohort, return_inverse=True)
    n_cohorts = int(unit_code.max()) + 1
    cell = unit_code[unit] * T + panel.time
    cell_col = np.full(n_cohorts * T, -1, dtype=np.int64)
    cell_col[cell] = col_of  # constant within a cohort x period cell
    flat = np.zeros((n_cohorts * T, n_event))
    hit = np.flatnonzero(cell_col >= 0)
    flat[hit, cell_col[hit]] = 1.0
    F = flat.reshape(n_cohorts, T, n_event)
    share = np.bincount(unit_code, minlength=n_cohorts) / n_units
    unit_mean = F.mean(axis=1)  # cohort x K: the unit means
    period_mean = np.tensordot(share, F, axes=(0, 0))  # T x K: the period means
    cell_value = F - unit_mean[:, None, :] - period_mean[None, :, :] + share @ unit_mean
    Xd = np.take(cell_value.reshape(n_cohorts * T, n_event), cell, axis=0)
    scale = np.bincount(col_of[col_of >= 0], minlength=n_event).astype(np.float64)
    if panel.covariates.shape[1]:
        cov = panel.covariates
        Xd = np.column_stack([Xd, fes.demean(cov)])
        scale = np.concatenate([scale, np.einsum("ij,ij->j", cov, cov)])
    keep = independent_columns(Xd.T @ Xd, scale)
    kept = set(keep.tolist())
    dropped = tuple(n for j, n in enumerate(names) if j not in kept)
    if len(kept) < Xd.shape[1]:
        Xd = Xd[:, keep]
    fit = fit_ols(fes.demean(panel.y), Xd, [names[j] for j in keep], fe=None, func=func)
    return dataclasses.replace(fit, fe=fes, dropped_collinear=dropped)


def _cohort(panel: Panel) -> np.ndarray:
    if panel.cohort is None:
        raise DesignError("event_study needs a cohort column.")
    return panel.cohort


def _units(panel: Panel) -> np.ndarray:
    if panel.unit is None:
        raise DesignError("event_study needs a unit column.")
    return panel.unit


def _event_time(panel: Panel, treated_row: np.ndarray) -> np.ndarray:
    """``k = t - g`` for rows of treated units, NaN for never-treated rows."""
    g = np.where(treated_row, _cohort(panel), 0.0)
    return np.where(treated_row, panel.periods[panel.time] - g, np.nan)


def _headline(names: Sequence[str], et: np.ndarray) -> str:
    post = [(e, n) for n, e in zip(names, et, strict=True) if np.isfinite(e) and e >= 0]
    if post:
        return min(post)[1]
    pre = [n for n, e in zip(names, et, strict=True) if np.isfinite(e)]
    return pre[-1]


def _design(*, y: str, cohort: str, time: str, refs: tuple[float, ...], win: tuple[float, float] | None,
            bin_endpoints: bool, n_trimmed: int, n_always: int, n_never: int, n_cohorts: int, fe: str,
            covariates: Sequence[str], weights: str | None,
            collapse_info: CollapseInfo | None) -> list[tuple[str, str]]:
    if win is None:
        window_text = "all observed event times"
    elif bin_endpoints:
        window_text = (f"[{win[0]:g}, {win[1]:g}], end points binned ({win[0]:g} = all k <= {win[0]:g}; "
                       f"{win[1]:g} = all k >= {win[1]:g})")
    else:
        window_text = f"[{win[0]:g}, {win[1]:g}], treated-unit observations outside dropped ({n_trimmed} rows)"
    return [
        ("Estimator", "TWFE event study (dynamic two-way fixed effects)"),
        ("Outcome", y),
        ("Event time", f"k = {time} - {cohort}"),
        ("Reference period(s)", ", ".join(f"k = {r:g}" for r in refs) + " (normalised to 0)"),
        ("Window", window_text),
        ("Endpoint binning", "yes" if bin_endpoints else "no"),
        ("Treated cohorts", str(n_cohorts)),
        ("Control units", f"{n_never} never treated (fixed effects only) and not-yet-treated observations"),
        ("Always-treated units", f"{n_always} dropped" if n_always else "none"),
        ("Fixed effects", fe),
        ("Covariates", ", ".join(covariates) or "none"),
        ("Weights", weights or "none"),
        ("Collapse", "no (individual observations)" if collapse_info is None else collapse_info.describe()),
    ]


def _subset(panel: Panel, keep: np.ndarray, report: SampleReport) -> Panel:
    """Rows ``keep`` of a panel, with units and periods recoded to stay contiguous."""
    from didx._frame import factorize

    unit = panel.unit[keep] if panel.unit is not None else None
    unit_labels = panel.unit_labels
    if unit is not None and panel.unit_labels is not None:
        unit, old = factorize(unit, sort=False)
        unit_labels = panel.unit_labels[old.astype(np.int64)]
    time = panel.time[keep]
    present = np.bincount(time, minlength=panel.n_periods) > 0
    periods, labels = panel.periods, panel.period_labels
    if not present.all():
        time = (np.cumsum(present) - 1)[time]
        periods, labels = periods[present], labels[present]
    n_units = None if unit_labels is None else int(unit_labels.shape[0])
    balanced = report.balanced
    if unit is not None and n_units is not None:
        balanced = bool(np.bincount(unit, minlength=n_units).min() == periods.shape[0])
    report = dataclasses.replace(report, n_obs=int(keep.sum()), n_units=n_units,
                                 n_periods=int(periods.shape[0]), balanced=balanced)
    return dataclasses.replace(
        panel, y=panel.y[keep], unit=unit, unit_labels=unit_labels, time=time, periods=periods,
        period_labels=labels, cohort=None if panel.cohort is None else panel.cohort[keep],
        treat=None if panel.treat is None else panel.treat[keep], covariates=panel.covariates[keep],
        weights=None if panel.weights is None else panel.weights[keep],
        codes={c: factorize(v[keep], sort=False)[0] for c, v in panel.codes.items()},
        kept_rows=panel.row_index[keep], report=report,
    )
