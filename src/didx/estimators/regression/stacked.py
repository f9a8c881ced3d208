"""Stacked difference-in-differences (Cengiz, Dube, Lindner & Zipperer 2019) with the corrective weights of
Wing, Freedman & Hollingsworth (2024).

For every adoption cohort ``a`` a *sub-experiment* is built: the units first treated at ``a`` and the clean
controls — never-treated units (``control="never"``), or also units first treated after ``a + hi``
(``control="not_yet"``, WFH's clean controls) — observed at event times ``e = t - a`` in the window
``[lo, hi]``. A sub-experiment is kept only if the whole window is inside the data (WFH's inclusion criterion
IC1: ``a + lo >= first period`` and ``a + hi <= last period``) and it has a clean control (IC2). The
sub-experiments are stacked and the event study

    y_{ia,e} = alpha_{ia} + lambda_e + sum_{e != -1} delta_e D_{ia} 1[event time = e] + u_{ia,e}

is fitted by weighted least squares, with unit x sub-experiment effects and event-time effects absorbed
(``fixed_effects="unit_event"``, WFH's equation 3 with unit effects: on a balanced stack the same point
estimates as their ``treat + event_time`` effects) or unit x sub-experiment and period x sub-experiment effects
(``fixed_effects="subexperiment"``, Cengiz et al.). The corrective weights are 1 for treated rows and, for a
control row of sub-experiment ``a`` at event time ``e``,

    Q_{a,e} = (N^D_{a,e} / N^D_e) / (N^C_{a,e} / N^C_e),

``N^D`` / ``N^C`` counting treated / control rows at that event time in the sub-experiment (``_{a,e}``) or the
whole stack (``_e``). With them and ``fixed_effects="unit_event"``, ``delta_e`` is the *trimmed aggregate ATT*:
``sum_a (N^D_a / N^D) DiD_a(e)``, every sub-experiment's DiD against period -1 weighted by its share of treated
units. The static ``ATT`` is the average of ``delta_0 .. delta_hi``. Standard errors: clustered by unit by
default (a unit appears in several sub-experiments).

Computation: on a balanced stack with ``fixed_effects="unit_event"`` the weights are constant within each
sub-experiment's treated and control groups, and the regression is fitted from the (sub-experiment, treated,
event time) cell means by :func:`didx.estimators.sun_abraham.cells.fit_cells_wide` (no regressor matrix;
covariances from per-group residual cross products), otherwise on the stacked rows with the fixed effects absorbed.

References: Cengiz, D., Dube, A., Lindner, A. and Zipperer, B. (2019), QJE 134(3). Wing, C., Freedman, S. M.
and Hollingsworth, A. (2024), "Stacked Difference-in-Differences", NBER WP 32054 (and their reference code,
hollina/stacked-did-weights, ``compute_weights``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError, InvalidOptionError
from didx._panel import build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import check_option
from didx.estimators.regression.common import RegressionSource, default_spec
from didx.estimators.regression.event_study import event_term
from didx.estimators.sun_abraham.cells import CellFit, CellSource, fit_cells_wide
from didx.estimators.sun_abraham.design import fmt_value
from didx.inference.contract import ClusterCodes, LinearMapSource
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols
from didx.results.base import FrozenDict, Result
from didx.results.event import EventStudyResult


@dataclass(frozen=True, eq=False)
class StackedResult(EventStudyResult):
    """Stacked DiD event study: ``delta_e`` per event time and the static ``ATT`` (headline), linear in the
    regression's coefficients. ``extras["sub_experiments"]`` lists every sub-experiment with its counts and
    corrective weight; ``.regression`` is the underlying weighted regression."""

    @property
    def sub_experiments(self) -> pd.DataFrame:
        return pd.DataFrame([dict(s) for s in self.extras["sub_experiments"]])

    @property
    def regression(self) -> Result:
        reg: Result = self.extras["regression"]
        return reg


@dataclass(frozen=True, eq=False)
class _StackedRegression:
    """The weighted regression on the stacked rows (a picklable callable returning its RegressionSource)."""

    y: np.ndarray
    ev_code: np.ndarray
    D: np.ndarray
    ev_vals: np.ndarray
    unit_sub: np.ndarray
    second: np.ndarray
    fe_names: tuple[str, str]
    w: np.ndarray
    names: tuple[str, ...]
    clusters: ClusterCodes
    default: Any

    def cell_table(self) -> np.ndarray:
        """Column of each event time among the regressors (-1 for the reference period)."""
        col = {v: j for j, v in enumerate(v for v in self.ev_vals if v != -1.0)}
        return np.array([col.get(v, -1) for v in self.ev_vals], dtype=np.int64)

    def __call__(self) -> RegressionSource:
        ev_col = self.cell_table()[self.ev_code]
        X = np.zeros((self.y.shape[0], len(self.names)))
        has = (self.D == 1.0) & (ev_col >= 0)
        X[np.flatnonzero(has), ev_col[has]] = 1.0
        fes = FixedEffects([self.unit_sub, self.second], list(self.fe_names), weights=self.w)
        fit = fit_ols(self.y, X, list(self.names), fe=fes, weights=self.w, func="stacked", protected=self.names)
        return RegressionSource(fit=fit, clusters=self.clusters, default=self.default, treated_codes=self.D)


def _cell_fit(reg: _StackedRegression, sub: np.ndarray, n_sub: int) -> CellFit | None:
    """The stacked regression from cell means when every unit x sub-experiment has every event time and the
    weights are constant within (sub-experiment, treated) groups; None otherwise."""
    n_us = int(reg.unit_sub.max()) + 1
    E = reg.ev_vals.shape[0]
    if not np.all(np.bincount(reg.unit_sub, minlength=n_us) == E):
        return None
    group_row = sub * 2 + reg.D.astype(np.int64)
    gw = np.zeros(2 * n_sub)
    gw[group_row] = reg.w
    if not np.array_equal(reg.w, gw[group_row]):  # the corrective weights are exact copies within a group
        return None
    group_of_unit = np.zeros(n_us, dtype=np.int64)
    group_of_unit[reg.unit_sub] = group_row
    used = np.bincount(group_of_unit, minlength=2 * n_sub) > 0
    remap = np.cumsum(used) - 1
    group_of_unit = remap[group_of_unit].astype(np.int64)
    table = reg.cell_table()
    treated_group = (np.arange(2 * n_sub) % 2 == 1)[used]
    cgt = np.where(treated_group[:, None], table[None, :], -1)
    Y = np.empty((n_us, E))
    Y[reg.unit_sub, reg.ev_code] = reg.y
    return fit_cells_wide(Y, group_of_unit, cgt, reg.names, "stacked", unit=reg.unit_sub, time=reg.ev_code,
                          group_weight=gw[used])


def _n_distinct(codes: np.ndarray, n_levels: int) -> int:
    return int(np.count_nonzero(np.bincount(codes, minlength=n_levels)))


def _compact(key: np.ndarray, n_levels: int) -> np.ndarray:
    """Codes 0..L-1 of the levels of ``key`` (integers below ``n_levels``) that occur, in increasing order."""
    present = np.bincount(key, minlength=n_levels) > 0
    return (np.cumsum(present) - 1)[key].astype(np.int64)


def _check_window(func: str, window: Any) -> tuple[float, float]:
    ok = isinstance(window, tuple | list) and len(window) == 2 and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in window)
    if not ok or not (float(window[0]) <= -1 and float(window[1]) >= 0):
        raise InvalidOptionError(
            f"The 'window' parameter of {func} must be a pair (lo, hi) of event times with lo <= -1 <= 0 <= hi "
            f"(e.g. (-3, 3)): -1 is the reference period and 0 the first treated period. Got {window!r} instead."
        )
    return float(window[0]), float(window[1])


def stacked(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    window: tuple[float, float],
    control: str = "not_yet",
    weights: str = "corrective",
    fixed_effects: str = "unit_event",
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    ssc: SSC | None = None,
    engine: str = "auto",
) -> StackedResult:
    """Stacked DiD event study with Wing-Freedman-Hollingsworth corrective weights.

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    cohort : first treated period (0 / NaN / inf / after the last period = never treated).
    window : ``(lo, hi)``: event times ``lo .. hi`` of every sub-experiment (``lo <= -1``, ``hi >= 0``; -1 is
        the reference period). Cohorts whose window does not fit in the data are left out (noted).
    control : ``"not_yet"`` (default; never treated and units first treated after ``a + hi``, WFH's clean
        controls) or ``"never"``.
    weights : ``"corrective"`` (WFH's Q weights) or ``"none"`` (the unweighted stack of Cengiz et al.).
    fixed_effects : ``"unit_event"`` (unit x sub-experiment and event-time effects) or ``"subexperiment"``
        (unit x sub-experiment and period x sub-experiment effects).
    vcov, cluster, ssc : covariance; default CR1 clustered by ``unit``.
    engine : ``"auto"`` (cell means when the stack is balanced, ``fixed_effects="unit_event"``, else the
        regression on the stacked rows), ``"cells"`` or ``"regression"``; the numbers are the same.

    Returns
    -------
    StackedResult : terms ``event_time::<e>`` (e != -1) and ``ATT`` (the headline: the mean of the post
    coefficients).
    """
    func = "stacked"
    lo, hi = _check_window(func, window)
    check_option(func, "control", control, ("not_yet", "never"))
    check_option(func, "weights", weights, ("corrective", "none"))
    check_option(func, "fixed_effects", fixed_effects, ("unit_event", "subexperiment"))
    check_option(func, "engine", engine, ("auto", "cells", "regression"))
    panel = build_panel(data, func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cluster,
                        require_control="none")
    assert panel.unit is not None and panel.cohort is not None
    periods = panel.periods
    p = periods[panel.time]
    g = panel.cohort
    ucoh = panel.unit_cohort()
    gvals = np.unique(ucoh[np.isfinite(ucoh)])
    first, last = float(periods[0]), float(periods[-1])
    report: SampleReport = panel.report
    parts: list[dict[str, np.ndarray]] = []
    subs: list[dict[str, Any]] = []
    dropped_cohorts: list[str] = []
    for a in gvals:
        if a + lo < first or a + hi > last:
            dropped_cohorts.append(f"{fmt_value(a)} (window {fmt_value(a + lo)}..{fmt_value(a + hi)} outside the data)")
            continue
        treated_u = g == a
        clean = ~np.isfinite(g) if control == "never" else (~np.isfinite(g) | (g > a + hi))
        rows = np.flatnonzero((treated_u | clean) & (p >= a + lo) & (p <= a + hi))
        if not (clean[rows]).any():
            dropped_cohorts.append(f"{fmt_value(a)} (no clean control unit)")
            continue
        e = p[rows] - a
        parts.append({"rows": rows, "e": e, "D": treated_u[rows].astype(np.float64),
                      "sub": np.full(rows.shape[0], len(parts), dtype=np.int64)})
        units = panel.unit[rows]
        subs.append({"cohort": float(a), "n_treated_units": _n_distinct(units[treated_u[rows]], panel.n_units),
                     "n_control_units": _n_distinct(units[clean[rows]], panel.n_units)})
    if not parts:
        raise DesignError(
            f"{func}: no sub-experiment fits the window {fmt_value(lo)}..{fmt_value(hi)} with a clean control "
            f"(cohorts: {', '.join(dropped_cohorts) or 'none'}). Fix: choose a narrower window, or "
            f"control='not_yet'."
        )
    n_treated_cohorts = gvals.shape[0]
    rows = np.concatenate([x["rows"] for x in parts])
    e = np.concatenate([x["e"] for x in parts])
    D = np.concatenate([x["D"] for x in parts])
    sub = np.concatenate([x["sub"] for x in parts])
    # corrective weights by event time (WFH compute_weights)
    ev_vals = np.unique(np.concatenate([periods[(periods >= s["cohort"] + lo) & (periods <= s["cohort"] + hi)]
                                        - s["cohort"] for s in subs]))
    ev_code = np.searchsorted(ev_vals, e)
    E = ev_vals.shape[0]
    n_sub = int(sub.max()) + 1
    key = sub * E + ev_code
    nD_ae = np.bincount(key, weights=D, minlength=n_sub * E)
    nC_ae = np.bincount(key, weights=1.0 - D, minlength=n_sub * E)
    nD_e = np.bincount(ev_code, weights=D, minlength=E)
    nC_e = np.bincount(ev_code, weights=1.0 - D, minlength=E)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (nD_ae / nD_e[np.arange(n_sub * E) % E]) / (nC_ae / nC_e[np.arange(n_sub * E) % E])
    w = np.ones(rows.shape[0]) if weights == "none" else np.where(D == 1.0, 1.0, q[key])
    if not np.all(np.isfinite(w)):
        raise DesignError(f"{func}: some event time has no treated or no control row, so the corrective weights "
                          f"are undefined. Fix: narrow the window.")
    # fixed effects
    unit_sub = _compact(panel.unit[rows].astype(np.int64) * n_sub + sub, panel.n_units * n_sub)
    if fixed_effects == "unit_event":
        second = ev_code
        fe_names = [f"{unit} x sub-experiment", "event time"]
    else:
        second = _compact(sub * panel.n_periods + panel.time[rows], n_sub * panel.n_periods)
        fe_names = [f"{unit} x sub-experiment", f"{time} x sub-experiment"]
    keep_e = [v for v in ev_vals if v != -1.0]
    names = [event_term(v) for v in keep_e]
    default = default_spec([unit], "iid", ssc)
    spec = resolve_vcov(func, vcov, cluster, default, ssc)
    codes = {k: v[rows] for k, v in panel.codes.items()}
    codes.setdefault(unit, panel.unit[rows])
    codes.setdefault(time, panel.time[rows])
    general = _StackedRegression(y=panel.y[rows], ev_code=ev_code, D=D, ev_vals=ev_vals, unit_sub=unit_sub,
                                 second=second.astype(np.int64), fe_names=(fe_names[0], fe_names[1]), w=w,
                                 names=tuple(names), default=spec,
                                 clusters=ClusterCodes(codes, panel.row_index[rows], panel.report.n_input_rows,
                                                       panel.fingerprint))
    cells = None
    if engine != "regression" and fixed_effects == "unit_event" and panel.is_balanced:
        cells = _cell_fit(general, sub, n_sub)
    if engine == "cells" and cells is None:
        raise InvalidOptionError(
            f"{func}: engine='cells' needs a balanced panel, fixed_effects='unit_event' and weights constant "
            f"within each sub-experiment's treated and control groups. Fix: use engine='auto'."
        )
    source: Any
    if cells is not None:
        source = CellSource(cells=cells, clusters=general.clusters, default=spec, treated=D, general=general)
        fit = cells.fit
        fe_method = "cell means by sub-experiment x treated x event time (balanced stack)"
    else:
        source = general()
        fit = source.fit
        fe_method = fit.fe.method if fit.fe is not None else ""
    V, inf = source.compute(func, spec)
    post = [j for j, v in enumerate(keep_e) if v >= 0]
    A = np.vstack([np.eye(len(names)), np.zeros((1, len(names)))])
    A[-1, post] = 1.0 / len(post)
    weight_note = "1 for treated rows; controls (N^D_ae/N^D_e)/(N^C_ae/N^C_e) (WFH 2024)" if weights == "corrective" \
        else "none (unweighted stack)"
    for s_idx, s in enumerate(subs):
        r = (sub == s_idx) & (D == 0.0)
        s["control_weight"] = float(w[r][0]) if r.any() else float("nan")
        s["treated_share"] = s["n_treated_units"] / sum(x["n_treated_units"] for x in subs)
    design = [
        ("Estimator", "stacked DiD (Cengiz et al. 2019)" + (" with corrective weights (Wing, Freedman & "
                                                            "Hollingsworth 2024)" if weights == "corrective" else "")),
        ("Outcome", y),
        ("Event window", f"{fmt_value(lo)} .. {fmt_value(hi)} (event time = {time} - {cohort})"),
        ("Reference period", "-1"),
        ("Control group", "never treated" if control == "never"
         else f"clean controls: never treated or first treated after a + {fmt_value(hi)} (not yet treated)"),
        ("Sub-experiments", f"{len(subs)} of {n_treated_cohorts} cohorts "
                            f"({', '.join(fmt_value(s['cohort']) for s in subs)})"),
        ("Weights", weight_note),
        ("Fixed effects", " + ".join(fe_names) + f" [{fe_method}]"),
        ("Static ATT", "mean of the event-time coefficients 0.." + fmt_value(hi)),
    ]
    # input rows in no sub-experiment: outside every window, or of units neither treated in a kept cohort nor
    # a clean control of one (counted once, however many sub-experiments a used row is in)
    in_stack = np.zeros(panel.n_obs, dtype=bool)
    in_stack[rows] = True
    n_units_used = _n_distinct(panel.unit[rows], panel.n_units)
    if not in_stack.all():
        report = report.with_dropped(Dropped(
            f"observations in no sub-experiment (outside the window {fmt_value(lo)}..{fmt_value(hi)} of every kept "
            "cohort they could be treated or a clean control in)", int(np.count_nonzero(~in_stack)),
            panel.n_units - n_units_used))
        report = dataclasses.replace(report, n_obs=int(np.count_nonzero(in_stack)), n_units=n_units_used)
    if dropped_cohorts:
        report = report.with_notes("Cohorts not used as a treated sub-experiment (their units can still be clean "
                                   "controls): " + "; ".join(dropped_cohorts))
    stacked_report = report.with_notes(f"Stacked rows: {rows.shape[0]} in {len(subs)} sub-experiments "
                                       f"({n_units_used} distinct units)")
    notes = []
    if fit.dropped_collinear:
        notes.append("Dropped for collinearity: " + ", ".join(fit.dropped_collinear))
    regression = Result(
        estimator="Stacked DiD regression", terms=fit.names, coef=fit.coef, vcov_matrix=V, headline=fit.names[0],
        inference=inf, sample=stacked_report, design=tuple(design), notes=tuple(notes), _source=source,
        term_info={"event_time": np.array([dict(zip(names, keep_e, strict=True))[n] for n in fit.names])},
    )
    et = np.array([*keep_e, np.nan])
    w_stored = np.array(w, copy=True)
    w_stored.flags.writeable = False
    return StackedResult(
        estimator="Stacked DiD", terms=(*names, "ATT"), coef=A @ fit.coef, vcov_matrix=A @ V @ A.T,
        headline="ATT", inference=inf, sample=stacked_report, design=tuple(design),
        term_info={"event_time": et},
        extras={"reference": (-1.0,), "sub_experiments": tuple(FrozenDict(s) for s in subs),
                "regression": regression, "stacked_weights": w_stored},
        notes=tuple(notes), _source=LinearMapSource(source, A),
    )
