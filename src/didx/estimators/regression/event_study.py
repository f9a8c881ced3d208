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

This module is the TWFE estimator only: :func:`event_study` (from a data frame) and :func:`from_panel` (from a
:class:`~didx._panel.Panel` already built, as the event-study comparison does). ``didx.event_study`` is the
comparison entry (:mod:`didx.comparison`), which calls this one for ``estimator="twfe"``.

Standard errors follow fixest (default CR1 clustered by unit). Reference: ``fixest::feols(y ~ i(rel, ref =
c(-1, -1000)) | unit + time)`` with never-treated units coded ``rel = -1000`` (fixest 0.12.2); Borusyak,
Jaravel & Spiess (2024) and Sun & Abraham (2021) on when the TWFE event study is (not) a weighted average of
effects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, fmt_value
from didx.engines.source import engine_input
from didx.estimators.regression.collapse import CollapseInfo, check_collapse, collapse_by_group
from didx.estimators.regression.common import RegressionResult, default_spec, make_regression_result
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, _centred_sums, fit_ols, independent_columns
from didx.registry import PRE_PERIOD
from didx.results.event import EventStudyResult

TERM_PREFIX = "event_time::"
FUNC = "event_study"


@dataclass(frozen=True, eq=False)
class EventStudyRegressionResult(RegressionResult, EventStudyResult):
    """Result of :func:`event_study`: a regression result (``with_vcov``, wild bootstrap) and an event study
    (``pretrend_test``, ``event_table``, ``plot``)."""


def event_term(k: float) -> str:
    """The term name of event time ``k`` (``"event_time::-2"``)."""
    return f"{TERM_PREFIX}{k:g}"


def check_ref(func: str, ref: float | Sequence[float]) -> tuple[float, ...]:
    """``ref`` as a sorted tuple of distinct negative event times, or an error naming the value."""
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


def check_window(func: str, window: tuple[float, float] | None,
                 refs: tuple[float, ...]) -> tuple[float, float] | None:
    """``window`` as ``(lo, hi)`` with ``lo < 0 <= hi`` containing every reference period, or an error."""
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
) -> EventStudyRegressionResult:
    """TWFE event study: dynamic effects relative to a reference period.

    ``y_it = a_i + l_t + sum_{k not in ref} b_k 1[t - g_i = k] + W_it' c + e_it``. The arguments are those of
    ``didx.event_study`` (which runs this for ``estimator="twfe"``, the default; see it for their meaning).

    Returns
    -------
    EventStudyRegressionResult : terms ``"event_time::k"`` (``term_info["event_time"]`` = k; NaN for
        covariates) and the covariates; ``.estimate`` is ``b_0``. ``.pretrend_test()``, ``.plot()``,
        ``.event_table()``, ``.with_vcov()``.
    """
    refs = check_ref(FUNC, ref)
    win = check_window(FUNC, window, refs)
    _check_options(win, bin_endpoints, collapse)
    if (src := engine_input(data, FUNC)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.regression import event_study_moments

        return event_study_moments(src, EventStudyRegressionResult, _design, _headline, y=y, unit=unit, time=time,
                                   cohort=cohort, refs=refs, win=win, bin_endpoints=bin_endpoints,
                                   covariates=covariates, vcov=vcov, cluster=cluster, weights=weights, ssc=ssc,
                                   collapse=collapse)
    panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, cohort=cohort, covariates=covariates,
                        weights=weights, cluster=as_list(cluster), require_control="untreated_obs",
                        zero_weights="drop")
    return from_panel(panel, ref=refs, window=win, bin_endpoints=bin_endpoints, vcov=vcov, ssc=ssc,
                      collapse=collapse)


def from_panel(panel: Panel, *, ref: float | Sequence[float] = -1, window: tuple[float, float] | None = None,
               bin_endpoints: bool = False, vcov: str | None = None, ssc: SSC | None = None,
               collapse: str | None = None) -> EventStudyRegressionResult:
    """The TWFE event study of a panel built by :func:`didx._panel.build_panel` (with ``unit``, ``cohort`` and
    the cluster columns; ``require_control="untreated_obs"``, ``zero_weights="drop"``): :func:`event_study` after
    reading the data. Rows of a panel built with ``zero_weights="keep"`` whose weight is 0 are dropped and counted
    here (as fixest drops them), so both builds give the same fit."""
    refs = check_ref(FUNC, ref)
    win = check_window(FUNC, window, refs)
    _check_options(win, bin_endpoints, collapse)
    if panel.unit is None or panel.cohort is None:
        raise DesignError(f"{FUNC}: the panel has no unit or no cohort column. Fix: build it with unit= and "
                          f"cohort=.")
    names = panel.names
    cl_list = list(names.get("cluster", ()))
    panel = _drop_zero_weights(panel)
    panel, n_always = _drop_always_treated(panel)
    panel, k, treated_row, n_trimmed = _apply_window(panel, win, bin_endpoints)
    _check_refs_observed(refs, k, treated_row)
    collapse_info: CollapseInfo | None = None
    if collapse is not None:
        panel, collapse_info = collapse_by_group(panel, func=FUNC, collapse=collapse, cluster=cl_list,
                                                 constant={"event time": k})
        treated_row = np.isfinite(_cohort(panel))
        k = _event_time(panel, treated_row)
        if bin_endpoints and win is not None:
            k = np.where(treated_row, np.clip(k, win[0], win[1]), np.nan)
    fe_unit_name = names["unit"] if collapse_info is None else collapse_info.group
    fes = FixedEffects([_units(panel), panel.time], [fe_unit_name, names["time"]], weights=panel.weights)
    fit, est_k, col_of = _fit(panel, k, treated_row, refs, fes, closed_form=collapse_info is None)
    return _assemble(panel, fit, est_k, col_of, fes, refs=refs, win=win, bin_endpoints=bin_endpoints, vcov=vcov,
                     ssc=ssc, cl_list=cl_list, collapse_info=collapse_info, fe_unit_name=fe_unit_name,
                     n_trimmed=n_trimmed, n_always=n_always)


def _check_options(win: tuple[float, float] | None, bin_endpoints: bool, collapse: str | None) -> None:
    if bin_endpoints and win is None:
        raise InvalidOptionError(
            f"{FUNC}: bin_endpoints=True needs a window=(lo, hi) whose end points receive the binned event "
            f"times. Fix: pass window=, or drop bin_endpoints."
        )
    check_collapse(FUNC, collapse)


def _drop_zero_weights(panel: Panel) -> Panel:
    """Rows whose weight is 0 dropped and reported (they do not enter the fit, ``n`` or the cluster count)."""
    if panel.weights is None:
        return panel
    zero = panel.weights == 0
    if not zero.any():
        return panel
    units = _units(panel)
    lost = np.unique(units[zero]).shape[0] - np.intersect1d(units[zero], units[~zero]).shape[0]
    report = panel.report.with_dropped(Dropped(f"zero weight ({panel.names.get('weights')})", int(zero.sum()),
                                               int(lost)))
    return subset_panel(panel, ~zero, report)


def _drop_always_treated(panel: Panel) -> tuple[Panel, int]:
    """Units treated from the first period on (no untreated period of their own) dropped and reported."""
    cohort = panel.names["cohort"]
    always = _cohort(panel) <= panel.periods[0]
    n_always = 0
    if always.any():
        n_always = int(np.unique(_units(panel)[always]).shape[0])
        report = panel.report.with_dropped(Dropped(
            f"always treated ({cohort} <= first period {panel.period_labels[0]!r}): no pre-treatment period",
            int(always.sum()), n_always))
        panel = subset_panel(panel, ~always, report)
    if not np.isfinite(_cohort(panel)).any():
        raise DesignError(
            f"{FUNC}: every treated unit of {cohort!r} ({n_always} units) is treated from the first period "
            f"{fmt_value(panel.period_labels[0])} on (always treated, dropped): no unit's treatment starts inside "
            f"the panel, so no event-time effect is identified. Fix: check the {cohort!r} column (first treated "
            f"period; never treated as 0/NaN), or use data that include periods before treatment."
        )
    return panel, n_always


def _apply_window(panel: Panel, win: tuple[float, float] | None, bin_endpoints: bool
                  ) -> tuple[Panel, np.ndarray, np.ndarray, int]:
    """The event time of each row, with treated-unit rows outside the window dropped (or binned)."""
    treated_row = np.isfinite(_cohort(panel))
    k = _event_time(panel, treated_row)
    if win is None:
        return panel, k, treated_row, 0
    lo, hi = win
    if bin_endpoints:
        return panel, np.where(treated_row, np.clip(k, lo, hi), np.nan), treated_row, 0
    out = treated_row & ((k < lo) | (k > hi))
    if not out.any():
        return panel, k, treated_row, 0
    keep = ~out
    before = np.unique(_units(panel)).shape[0]
    after = np.unique(_units(panel)[keep]).shape[0]
    reason = f"observations of treated units outside window [{lo:g}, {hi:g}]"
    report = panel.report.with_dropped(Dropped(reason, int(out.sum()), before - after))
    return subset_panel(panel, keep, report), k[keep], treated_row[keep], int(out.sum())


def _check_refs_observed(refs: tuple[float, ...], k: np.ndarray, treated_row: np.ndarray) -> None:
    observed = np.unique(k[treated_row])
    missing_refs = [r for r in refs if not np.any(np.isclose(observed, r))]
    if missing_refs:
        shown = ", ".join(f"{v:g}" for v in observed[:20])
        raise DesignError(
            f"{FUNC}: the reference event time(s) {', '.join(f'{r:g}' for r in missing_refs)} are never "
            f"observed (observed event times: {shown}). Fix: choose ref among the observed pre-treatment event times."
        )


def _fit(panel: Panel, k: np.ndarray, treated_row: np.ndarray, refs: tuple[float, ...], fes: FixedEffects, *,
         closed_form: bool) -> tuple[OLSFit, np.ndarray, np.ndarray]:
    """The regression: the fit, the estimated event times and the event-time column of each row (-1: none)."""
    est_k = np.array([v for v in np.unique(k[treated_row]) if not np.any(np.isclose(v, refs))])
    col_of = np.full(k.shape[0], -1, dtype=np.int64)
    pos = np.searchsorted(est_k, k[treated_row])
    pos_ok = (pos < est_k.shape[0])
    hit = np.zeros(pos.shape[0], dtype=bool)
    hit[pos_ok] = np.isclose(est_k[pos[pos_ok]], k[treated_row][pos_ok])
    tr_idx = np.flatnonzero(treated_row)
    col_of[tr_idx[hit]] = pos[hit]
    rows = np.flatnonzero(col_of >= 0)
    names = [event_term(v) for v in est_k] + list(panel.covariate_names)
    if closed_form and panel.weights is None and _is_balanced(panel):
        fit = _fit_balanced(panel, col_of, est_k.shape[0], names, fes, FUNC)
    else:
        # unbalanced or weighted: dense indicators (n x K_event), demeaned by the fixed-effect solver
        D = np.zeros((panel.n_obs, est_k.shape[0]))
        D[rows, col_of[rows]] = 1.0
        X = np.column_stack([D, panel.covariates]) if panel.covariates.shape[1] else D
        fit = fit_ols(panel.y, X, names, fe=fes, weights=panel.weights, func=FUNC)
    if not any(n.startswith(TERM_PREFIX) for n in fit.names):
        raise DesignError(
            f"{FUNC}: no event-time coefficient is identified (all are collinear with the fixed effects). "
            f"Fix: check the cohort column and that there are untreated observations in each period."
        )
    return fit, est_k, col_of


def _assemble(panel: Panel, fit: OLSFit, est_k: np.ndarray, col_of: np.ndarray, fes: FixedEffects, *,
              refs: tuple[float, ...], win: tuple[float, float] | None, bin_endpoints: bool, vcov: str | None,
              ssc: SSC | None, cl_list: list[str], collapse_info: CollapseInfo | None, fe_unit_name: str,
              n_trimmed: int, n_always: int) -> EventStudyRegressionResult:
    """The result: event times and counts per term, the covariance choice, the design and sample report."""
    names = panel.names
    event_of = {event_term(v): float(v) for v in est_k}
    et = np.array([event_of.get(n, np.nan) for n in fit.names])
    rows = col_of >= 0
    n_obs_k = np.bincount(col_of[rows], minlength=est_k.shape[0])
    n_of = {event_term(v): int(c) for v, c in zip(est_k, n_obs_k, strict=True)}
    n_term = np.array([n_of.get(n, panel.n_obs) for n in fit.names], dtype=float)
    default = default_spec([fe_unit_name], "iid", ssc)
    if collapse_info is not None and cl_list:
        default = default_spec([cl_list[0]], "iid", ssc)
    spec = resolve_vcov(FUNC, vcov, cl_list or None, default, ssc)
    codes = dict(panel.codes)
    codes.setdefault(fe_unit_name, _units(panel))
    codes.setdefault(names["time"], panel.time)
    g = _cohort(panel)
    n_never = int(np.unique(_units(panel)[~np.isfinite(g)]).shape[0])
    n_cohorts = int(np.unique(g[np.isfinite(g)]).shape[0])
    design = _design(y=names["y"], cohort=names["cohort"], time=names["time"], refs=refs, win=win,
                     bin_endpoints=bin_endpoints, n_trimmed=n_trimmed, n_always=n_always, n_never=n_never,
                     n_cohorts=n_cohorts, fe=f"{fe_unit_name}, {names['time']} [{fes.method}]",
                     covariates=panel.covariate_names, weights=names.get("weights"), collapse_info=collapse_info)
    notes = []
    if n_never == 0 and len(refs) < 2:
        notes.append("No never-treated units: with a single reference period the event-time coefficients are "
                     "identified only up to a linear trend; one is dropped for collinearity. Pin two periods "
                     "(ref=[-1, -k]) to choose which.")
    res: EventStudyRegressionResult = make_regression_result(
        EventStudyRegressionResult, estimator="TWFE event study", fit=fit, headline=_headline(fit.names, et),
        spec=spec, codes=codes, fingerprint=panel.fingerprint,
        row_index=None if panel.all_rows_kept else panel.row_index, sample=panel.report,
        design=design, treated=np.isfinite(g).astype(float), term_info={"event_time": et, "n": n_term},
        notes=notes, func=FUNC, collapse_info=collapse_info,
        extras={"reference": refs, "window": win, "bin_endpoints": bin_endpoints, "outcome": names["y"],
                "collapse": None if collapse_info is None else collapse_info.describe()},
        pre_period_meaning=PRE_PERIOD["twfe"], cross_covariance=True,
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
    as in :func:`didx.linalg.ols.fit_ols` with absorbed effects (against each column's centred sum of squares,
    with its raw one as the floor), as on an unbalanced panel.
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
    # the rule of fit_ols with absorbed effects (as twfe and the unbalanced path): each column against its centred
    # sum of squares, its raw one as the floor (a covariate at 1e6 +- 1 is identified; a constant is not)
    floor = np.bincount(col_of[col_of >= 0], minlength=n_event).astype(np.float64)  # 0/1 indicators: counts
    scale = floor - floor ** 2 / panel.n_obs
    if panel.covariates.shape[1]:
        cov = panel.covariates
        Xd = np.column_stack([Xd, fes.demean(cov)])
        c_scale, c_floor = _centred_sums(cov, None)
        scale, floor = np.concatenate([scale, c_scale]), np.concatenate([floor, c_floor])
    keep = independent_columns(Xd.T @ Xd, scale, floor=floor)
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


def subset_panel(panel: Panel, keep: np.ndarray, report: SampleReport) -> Panel:
    """Rows ``keep`` (a boolean mask) of a panel, with units and periods recoded to stay contiguous; ``report``
    is the new sample report (the caller adds what was dropped and why). ``row_index`` still points into the
    frame the panel was built from."""
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
    balanced, n_gaps = report.balanced, report.n_units_with_gaps
    if unit is not None and n_units is not None:
        counts = np.bincount(unit, minlength=n_units)
        balanced = bool(counts.min() == periods.shape[0])
        n_gaps = None if balanced else _units_with_gaps(unit, time, counts, periods.shape[0])
    report = dataclasses.replace(report, n_obs=int(keep.sum()), n_units=n_units, n_periods=int(periods.shape[0]),
                                 balanced=balanced, n_units_with_gaps=n_gaps)
    return dataclasses.replace(
        panel, y=panel.y[keep], unit=unit, unit_labels=unit_labels, time=time, periods=periods,
        period_labels=labels, cohort=None if panel.cohort is None else panel.cohort[keep],
        treat=None if panel.treat is None else panel.treat[keep], covariates=panel.covariates[keep],
        weights=None if panel.weights is None else panel.weights[keep],
        codes={c: factorize(v[keep], sort=False)[0] for c, v in panel.codes.items()},
        kept_rows=panel.row_index[keep], report=report,
    )


def _units_with_gaps(unit: np.ndarray, time: np.ndarray, counts: np.ndarray, n_periods: int) -> int:
    """Units whose observed periods are not contiguous (as :func:`didx._panel.build_panel` counts them)."""
    n_units = counts.shape[0]
    tmin = np.full(n_units, n_periods, dtype=np.int64)
    tmax = np.full(n_units, -1, dtype=np.int64)
    np.minimum.at(tmin, unit, time)
    np.maximum.at(tmax, unit, time)
    return int(np.count_nonzero(tmax - tmin + 1 != counts))
