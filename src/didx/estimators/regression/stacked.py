"""Stacked difference-in-differences (Cengiz, Dube, Lindner & Zipperer 2019) with the corrective weights of
Wing, Freedman & Hollingsworth (2024).

For every adoption cohort ``a`` a *sub-experiment* is built: the units first treated at ``a`` and the clean
controls — never-treated units (``control_group="never"``), or also units first treated after ``a + hi``
(``control_group="not_yet"``, WFH's clean controls) — observed at event times ``e = t - a`` in the window
``[lo, hi]``. A sub-experiment is kept only if the whole window is inside the data (WFH's inclusion criterion
IC1: ``a + lo >= first period`` and ``a + hi <= last period``) and it has a clean control (IC2). The
sub-experiments are stacked and the event study

    y_{ia,e} = alpha_{ia} + lambda_e + sum_{e != -1} delta_e D_{ia} 1[event time = e] + u_{ia,e}

is fitted by weighted least squares, with unit x sub-experiment effects and event-time effects absorbed
(``fe="unit_event"``, WFH's equation 3 with unit effects: on a balanced stack the same point estimates as their
``treat + event_time`` effects) or unit x sub-experiment and period x sub-experiment effects
(``fe="subexperiment"``, Cengiz et al.). The corrective weights (``weighting="corrective"``) are 1 for treated
rows and, for a control row of sub-experiment ``a`` at event time ``e``,

    Q_{a,e} = (N^D_{a,e} / N^D_e) / (N^C_{a,e} / N^C_e),

``N^D`` / ``N^C`` counting treated / control rows at that event time in the sub-experiment (``_{a,e}``) or the
whole stack (``_e``). With them and ``fe="unit_event"``, ``delta_e`` is the *trimmed aggregate ATT*:
``sum_a (N^D_a / N^D) DiD_a(e)``, every sub-experiment's DiD against period -1 weighted by its share of treated
units. The static ``ATT`` is the average of ``delta_0 .. delta_hi``. Standard errors: clustered by unit by
default (a unit appears in several sub-experiments).

Sampling weights (``weights=``, constant within a unit) multiply every row's weight, and the counts ``N`` become
sums of sampling weights, so that ``delta_e = sum_a (S^D_a / S^D) DiD^s_a(e)`` with weighted means in each DiD
and the sub-experiments weighted by their treated units' share of the sampling weight: the population version of
the same estimand (tested against the cell means).

Computation: on a balanced stack with ``fe="unit_event"`` and weights constant within each sub-experiment's
treated and control groups, the regression is fitted from the (sub-experiment, treated, event time) cell means by
:func:`didx.estimators.sun_abraham.cells.fit_cells_wide` (no regressor matrix; covariances from per-group residual
cross products), otherwise on the stacked rows with the fixed effects absorbed.

References: Cengiz, D., Dube, A., Lindner, A. and Zipperer, B. (2019), QJE 134(3). Wing, C., Freedman, S. M.
and Hollingsworth, A. (2024), "Stacked Difference-in-Differences", NBER WP 32054 (and their reference code,
hollina/stacked-did-weights, ``compute_weights``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from didx._errors import ColumnNotFoundError, DataError, DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, check_option
from didx.estimators.regression.common import RegressionSource, default_spec, wild_bootstrap_mapped
from didx.estimators.regression.event_study import event_term
from didx.estimators.sun_abraham.cells import CellFit, CellSource, fit_cells_wide
from didx.estimators.sun_abraham.design import fmt_value
from didx.inference.contract import ClusterCodes, CovarianceSource, LinearMapSource
from didx.inference.vcov import SSC, VcovSpec, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.registry import PRE_PERIOD
from didx.results.base import FrozenDict, Result
from didx.results.event import EventStudyResult

if TYPE_CHECKING:
    from didx.inference.wild import WildBootstrapResult

FUNC = "stacked"
CONTROLS = ("not_yet", "never")
WEIGHTINGS = ("corrective", "none")
FIXED_EFFECTS = ("unit_event", "subexperiment")
ENGINES = ("auto", "cells", "regression")


@dataclass(frozen=True, eq=False)
class StackedResult(EventStudyResult):
    """Stacked DiD event study: ``delta_e`` per event time and the static ``ATT`` (headline), linear in the
    regression's coefficients. ``sub_experiments`` lists every sub-experiment with its counts and corrective
    weight, ``corrective_weights`` the weight of each sub-experiment's controls at each event time;
    ``.regression`` is the underlying weighted regression."""

    @property
    def sub_experiments(self) -> pd.DataFrame:
        return pd.DataFrame([dict(s) for s in self.extras["sub_experiments"]])

    @property
    def corrective_weights(self) -> pd.DataFrame:
        """The weight of a control row (before sampling weights) by sub-experiment cohort and event time (1 for
        every row with ``weighting="none"``; treated rows always weigh 1)."""
        q = np.asarray(self.extras["corrective_weights"])
        cohorts = [s["cohort"] for s in self.extras["sub_experiments"]]
        ev = np.asarray(self.extras["event_times"])
        return pd.DataFrame({"cohort": np.repeat(cohorts, ev.shape[0]), "event_time": np.tile(ev, len(cohorts)),
                             "control_weight": q.reshape(-1)})

    @property
    def regression(self) -> Result:
        reg: Result = self.extras["regression"]
        return reg

    def _regression_map(self) -> tuple[CovarianceSource, np.ndarray]:
        src = self._source
        assert isinstance(src, LinearMapSource)  # set by stacked(): the terms are A times the coefficients
        return src.parent, np.asarray(src.matrix)

    def wild_bootstrap(
        self,
        term: str | Sequence[str] | np.ndarray,
        *,
        n_bootstrap: int = 9999,
        weights: str = "rademacher",
        impose_null: bool = True,
        seed: int | None = None,
        conf_level: float = 0.95,
        r: float | Sequence[float] | np.ndarray = 0.0,
        cluster: str | None = None,
        data: Any = None,
        progress: bool = True,
    ) -> WildBootstrapResult:
        """Wild cluster bootstrap test of ``term = r`` (or ``R theta = r`` for a list of terms or a matrix over
        this result's terms), bootstrapping the stacked regression; ``"ATT"`` is the mean of the post
        coefficients, so its hypothesis is a restriction on them. The options are those of
        :meth:`didx.estimators.regression.common.RegressionResult.wild_bootstrap`."""
        source, A = self._regression_map()
        return wild_bootstrap_mapped(self, source, A, term, r=r, n_bootstrap=n_bootstrap, weights=weights,
                                     impose_null=impose_null, seed=seed, conf_level=conf_level, cluster=cluster,
                                     data=data, progress=progress)


def stacked(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    window: tuple[float, float],
    control_group: str = "not_yet",
    weighting: str = "corrective",
    fe: str = "unit_event",
    weights: str | None = None,
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
    control_group : ``"not_yet"`` (default; never treated and units first treated after ``a + hi``, WFH's clean
        controls) or ``"never"``.
    weighting : ``"corrective"`` (WFH's Q weights) or ``"none"`` (the unweighted stack of Cengiz et al.).
    fe : the absorbed fixed effects: ``"unit_event"`` (unit x sub-experiment and event-time effects) or
        ``"subexperiment"`` (unit x sub-experiment and period x sub-experiment effects).
    weights : sampling-weights column (constant within a unit): multiplies each row's weight, and the corrective
        weights count sums of sampling weights instead of rows. Zero-weight rows are dropped and counted.
    vcov, cluster, ssc : covariance; default CR1 clustered by ``unit``.
    engine : ``"auto"`` (cell means when the stack is balanced, ``fe="unit_event"`` and the weights are constant
        within each sub-experiment's treated and control groups, else the regression on the stacked rows),
        ``"cells"`` or ``"regression"``; the numbers are the same.

    Returns
    -------
    StackedResult : terms ``event_time::<e>`` (e != -1) and ``ATT`` (the headline: the mean of the post
    coefficients). A caller that already built a :class:`didx._panel.Panel` uses :func:`from_panel`.
    """
    lo, hi = _check_options(window, control_group, weighting, fe, engine)
    try:
        panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, cohort=cohort, cluster=cluster,
                            weights=weights, require_control="none", zero_weights="drop")
    except ColumnNotFoundError:
        if weights in WEIGHTINGS:
            raise InvalidOptionError(
                f"{FUNC}: weights={weights!r} names a sampling-weights column, and there is none of that name. The "
                f"weighting scheme is weighting= ({', '.join(map(repr, WEIGHTINGS))}). Fix: pass "
                f"weighting={weights!r}."
            ) from None
        raise
    return _estimate(panel, lo=lo, hi=hi, control=control_group, weighting=weighting, fe=fe, vcov=vcov, cluster=cluster,
                     ssc=ssc, engine=engine)


def from_panel(
    panel: Panel,
    *,
    window: tuple[float, float],
    control_group: str = "not_yet",
    weighting: str = "corrective",
    fe: str = "unit_event",
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    ssc: SSC | None = None,
    engine: str = "auto",
) -> StackedResult:
    """:func:`stacked` on a panel already built by :func:`didx._panel.build_panel` (no second read of the frame):
    the outcome, unit, time, cohort and sampling weights are the panel's, named as in ``panel.names``.

    The panel needs ``unit=`` and ``cohort=``; a ``cluster=`` column other than the unit and time columns must have
    been given to ``build_panel``. Rows with a zero weight are dropped and counted here. The other arguments are
    those of :func:`stacked`.
    """
    lo, hi = _check_options(window, control_group, weighting, fe, engine)
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
    return _estimate(panel, lo=lo, hi=hi, control=control_group, weighting=weighting, fe=fe, vcov=vcov, cluster=cluster,
                     ssc=ssc, engine=engine)


# ---------------------------------------------------------------------------------------------------------------
# validation
def _check_options(window: Any, control: str, weighting: str, fe: str, engine: str) -> tuple[float, float]:
    ok = isinstance(window, tuple | list) and len(window) == 2 and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in window)
    if not ok or not (float(window[0]) <= -1 and float(window[1]) >= 0):
        raise InvalidOptionError(
            f"The 'window' parameter of {FUNC} must be a pair (lo, hi) of event times with lo <= -1 <= 0 <= hi "
            f"(e.g. (-3, 3)): -1 is the reference period and 0 the first treated period. Got {window!r} instead."
        )
    check_option(FUNC, "control_group", control, CONTROLS)
    check_option(FUNC, "weighting", weighting, WEIGHTINGS)
    check_option(FUNC, "fe", fe, FIXED_EFFECTS)
    check_option(FUNC, "engine", engine, ENGINES)
    return float(window[0]), float(window[1])


def _check_weights(panel: Panel) -> None:
    """Sampling weights must be constant within a unit (each unit's weight multiplies all its rows)."""
    w, u = panel.weights, panel.unit
    if w is None or u is None:
        return
    first = np.full(panel.n_units, np.nan)
    first[u] = w
    varies = first[u] != w
    if varies.any():
        r = int(np.flatnonzero(varies)[0])
        label = panel.unit_labels[u[r]] if panel.unit_labels is not None else u[r]
        raise DataError(
            f"{FUNC}: the weights column {panel.names.get('weights')!r} varies within unit {label!r}; stacked "
            f"sampling weights are unit weights (the corrective weights balance units across sub-experiments). "
            f"Fix: pass a weight that is constant within each unit (e.g. the unit's first-period weight)."
        )


# ---------------------------------------------------------------------------------------------------------------
# the stack
@dataclass(frozen=True, eq=False)
class _Stack:
    """The stacked rows: ``rows`` index the panel; per row the event time code, treated flag and sub-experiment."""

    rows: np.ndarray
    ev_code: np.ndarray
    ev_vals: np.ndarray
    D: np.ndarray
    sub: np.ndarray
    subs: list[dict[str, Any]]
    left_out: list[str]
    dropped: tuple[Dropped, ...]  # before stacking (zero weights)

    @property
    def n_sub(self) -> int:
        return len(self.subs)


def _n_distinct(codes: np.ndarray, n_levels: int) -> int:
    return int(np.count_nonzero(np.bincount(codes, minlength=n_levels)))


def _compact(key: np.ndarray, n_levels: int) -> np.ndarray:
    """Codes 0..L-1 of the levels of ``key`` (integers below ``n_levels``) that occur, in increasing order."""
    present = np.bincount(key, minlength=n_levels) > 0
    return (np.cumsum(present) - 1)[key].astype(np.int64)


def _build_stack(panel: Panel, lo: float, hi: float, control: str) -> _Stack:
    """One sub-experiment per cohort whose window fits in the data and that has a clean control (IC1, IC2)."""
    assert panel.unit is not None and panel.cohort is not None
    periods = panel.periods
    p = periods[panel.time]
    g = panel.cohort
    usable = np.ones(panel.n_obs, dtype=bool)
    dropped: tuple[Dropped, ...] = ()
    if panel.weights is not None and (panel.weights == 0).any():  # a panel built with zero_weights="keep"
        usable = panel.weights != 0
        lost = panel.n_units - _n_distinct(panel.unit[usable], panel.n_units)
        dropped = (Dropped(f"zero weight ({panel.names.get('weights')})", int((~usable).sum()), lost),)
    ucoh = panel.unit_cohort()
    gvals = np.unique(ucoh[np.isfinite(ucoh)])
    first, last = float(periods[0]), float(periods[-1])
    parts: list[np.ndarray] = []
    subs: list[dict[str, Any]] = []
    left_out: list[str] = []
    for a in gvals:
        if a + lo < first or a + hi > last:
            left_out.append(f"{fmt_value(a)} (window {fmt_value(a + lo)}..{fmt_value(a + hi)} outside the data)")
            continue
        treated_u = g == a
        clean = ~np.isfinite(g) if control == "never" else (~np.isfinite(g) | (g > a + hi))
        rows = np.flatnonzero((treated_u | clean) & (p >= a + lo) & (p <= a + hi) & usable)
        if not (clean[rows]).any():
            left_out.append(f"{fmt_value(a)} (no clean control unit)")
            continue
        parts.append(rows)
        units = panel.unit[rows]
        subs.append({"cohort": float(a), "n_treated_units": _n_distinct(units[treated_u[rows]], panel.n_units),
                     "n_control_units": _n_distinct(units[clean[rows]], panel.n_units)})
    if not parts:
        raise DesignError(
            f"{FUNC}: no sub-experiment fits the window {fmt_value(lo)}..{fmt_value(hi)} with a clean control "
            f"(cohorts: {', '.join(left_out) or 'none'}). Fix: choose a narrower window, or control='not_yet'."
        )
    rows = np.concatenate(parts)
    sub = np.repeat(np.arange(len(parts), dtype=np.int64), [r.shape[0] for r in parts])
    a_row = np.array([s["cohort"] for s in subs])[sub]
    e = p[rows] - a_row
    ev_vals = np.unique(np.concatenate([periods[(periods >= s["cohort"] + lo) & (periods <= s["cohort"] + hi)]
                                        - s["cohort"] for s in subs]))
    return _Stack(rows=rows, ev_code=np.searchsorted(ev_vals, e), ev_vals=ev_vals,
                  D=(g[rows] == a_row).astype(np.float64), sub=sub, subs=subs, left_out=left_out, dropped=dropped)


def _corrective_weights(stack: _Stack, weighting: str, s: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Row weights and the (sub-experiment x event time) table of control weights Q (WFH ``compute_weights``;
    with sampling weights ``s`` the counts are sums of ``s`` and every row's weight is multiplied by its ``s``)."""
    E, n_sub = stack.ev_vals.shape[0], stack.n_sub
    D = stack.D
    key = stack.sub * E + stack.ev_code
    mass = np.ones(D.shape[0]) if s is None else s
    nD_ae = np.bincount(key, weights=D * mass, minlength=n_sub * E)
    nC_ae = np.bincount(key, weights=(1.0 - D) * mass, minlength=n_sub * E)
    nD_e = np.bincount(stack.ev_code, weights=D * mass, minlength=E)
    nC_e = np.bincount(stack.ev_code, weights=(1.0 - D) * mass, minlength=E)
    e_of = np.arange(n_sub * E) % E
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (nD_ae / nD_e[e_of]) / (nC_ae / nC_e[e_of])
    if weighting == "none":
        q = np.ones(n_sub * E)
    w = np.where(D == 1.0, 1.0, q[key]) * mass
    if not np.all(np.isfinite(w)):
        raise DesignError(f"{FUNC}: some event time has no treated or no control row, so the corrective weights "
                          f"are undefined. Fix: narrow the window.")
    return w, q.reshape(n_sub, E)


# ---------------------------------------------------------------------------------------------------------------
# estimation
def _estimate(panel: Panel, *, lo: float, hi: float, control: str, weighting: str, fe: str, vcov: str | None,
              cluster: str | Sequence[str] | None, ssc: SSC | None, engine: str) -> StackedResult:
    """Stack, weights, fit, result."""
    assert panel.unit is not None
    _check_weights(panel)
    unit, time = str(panel.names["unit"]), str(panel.names["time"])
    stack = _build_stack(panel, lo, hi, control)
    rows = stack.rows
    s = None if panel.weights is None else panel.weights[rows]
    w, q = _corrective_weights(stack, weighting, s)
    unit_sub = _compact(panel.unit[rows].astype(np.int64) * stack.n_sub + stack.sub, panel.n_units * stack.n_sub)
    if fe == "unit_event":
        second, fe_names = stack.ev_code, (f"{unit} x sub-experiment", "event time")
    else:
        second = _compact(stack.sub * panel.n_periods + panel.time[rows], stack.n_sub * panel.n_periods)
        fe_names = (f"{unit} x sub-experiment", f"{time} x sub-experiment")
    keep_e = [float(v) for v in stack.ev_vals if v != -1.0]
    names = tuple(event_term(v) for v in keep_e)
    default = default_spec([unit], "iid", ssc)
    spec = resolve_vcov(FUNC, vcov, cluster, default, ssc)
    codes = {k: v[rows] for k, v in panel.codes.items()}
    codes.setdefault(unit, panel.unit[rows])
    codes.setdefault(time, panel.time[rows])
    clusters = ClusterCodes(codes, panel.row_index[rows], panel.report.n_input_rows, panel.fingerprint)
    cells = None
    if engine != "regression" and fe == "unit_event" and panel.is_balanced:
        cells = _cell_fit(panel.y[rows], stack, unit_sub, w, names)
    if engine == "cells" and cells is None:
        raise InvalidOptionError(
            f"{FUNC}: engine='cells' needs a balanced panel, fe='unit_event' and weights constant within each "
            f"sub-experiment's treated and control groups. Fix: use engine='auto'."
        )
    source: CellSource | RegressionSource
    if cells is not None:
        source = CellSource(cells=cells, clusters=clusters, default=spec, treated=stack.D, fe_names=fe_names)
        method = "cell means by sub-experiment x treated x event time (balanced stack)"
    else:
        X = np.zeros((rows.shape[0], len(names)))
        col = _event_columns(stack.ev_vals)[stack.ev_code]
        has = (stack.D == 1.0) & (col >= 0)
        X[np.flatnonzero(has), col[has]] = 1.0
        fes = FixedEffects([unit_sub, second.astype(np.int64)], list(fe_names), weights=w)
        fit = fit_ols(panel.y[rows], X, list(names), fe=fes, weights=w, func=FUNC, protected=names)
        source = RegressionSource(fit=fit, clusters=clusters, default=spec, treated_codes=stack.D)
        method = fes.method
    return _assemble(panel, stack, source, spec, q, keep_e, method=method, fe_names=fe_names, lo=lo, hi=hi,
                     control=control, weighting=weighting)


def _event_columns(ev_vals: np.ndarray) -> np.ndarray:
    """Column of each event time among the regressors (-1 for the reference period)."""
    col = {v: j for j, v in enumerate(v for v in ev_vals if v != -1.0)}
    return np.array([col.get(v, -1) for v in ev_vals], dtype=np.int64)


def _cell_fit(y: np.ndarray, stack: _Stack, unit_sub: np.ndarray, w: np.ndarray,
              names: Sequence[str]) -> CellFit | None:
    """The stacked regression from cell means when every unit x sub-experiment has every event time and the
    weights are constant within (sub-experiment, treated) groups; None otherwise."""
    n_us = int(unit_sub.max()) + 1
    E, n_sub = stack.ev_vals.shape[0], stack.n_sub
    if not np.all(np.bincount(unit_sub, minlength=n_us) == E):
        return None
    group_row = stack.sub * 2 + stack.D.astype(np.int64)
    gw = np.zeros(2 * n_sub)
    gw[group_row] = w
    if not np.array_equal(w, gw[group_row]):  # the corrective weights are exact copies within a group
        return None
    group_of_unit = np.zeros(n_us, dtype=np.int64)
    group_of_unit[unit_sub] = group_row
    used = np.bincount(group_of_unit, minlength=2 * n_sub) > 0
    group_of_unit = (np.cumsum(used) - 1)[group_of_unit].astype(np.int64)
    treated_group = (np.arange(2 * n_sub) % 2 == 1)[used]
    cgt = np.where(treated_group[:, None], _event_columns(stack.ev_vals)[None, :], -1)
    Y = np.empty((n_us, E))
    Y[unit_sub, stack.ev_code] = y
    # the per-row codes are kept by the result: the smallest integer type that holds them
    return fit_cells_wide(Y, group_of_unit, cgt, names, FUNC, unit=unit_sub.astype(np.int32),
                          time=stack.ev_code.astype(np.int32), group_weight=gw[used])


# ---------------------------------------------------------------------------------------------------------------
# result
def _report(panel: Panel, stack: _Stack, lo: float, hi: float) -> SampleReport:
    """Input rows in no sub-experiment (outside every window, or of units neither treated in a kept cohort nor a
    clean control of one) are dropped (counted once, however many sub-experiments a used row is in)."""
    assert panel.unit is not None
    report: SampleReport = panel.report.with_dropped(*stack.dropped)
    in_stack = np.zeros(panel.n_obs, dtype=bool)
    in_stack[stack.rows] = True
    zero = int(sum(d.n_rows for d in stack.dropped))
    n_units_used = _n_distinct(panel.unit[stack.rows], panel.n_units)
    if int(np.count_nonzero(~in_stack)) > zero:
        lost = panel.n_units - n_units_used - sum(d.n_units or 0 for d in stack.dropped)
        report = report.with_dropped(Dropped(
            f"observations in no sub-experiment (outside the window {fmt_value(lo)}..{fmt_value(hi)} of every kept "
            "cohort they could be treated or a clean control in)", int(np.count_nonzero(~in_stack)) - zero, lost))
    report = dataclasses.replace(report, n_obs=int(np.count_nonzero(in_stack)), n_units=n_units_used)
    if stack.left_out:
        report = report.with_notes("Cohorts not used as a treated sub-experiment (their units can still be clean "
                                   "controls): " + "; ".join(stack.left_out))
    return report.with_notes(f"Stacked rows: {stack.rows.shape[0]} in {stack.n_sub} sub-experiments "
                             f"({n_units_used} distinct units)")


def _design(panel: Panel, stack: _Stack, method: str, *, fe_names: Sequence[str], lo: float, hi: float,
            control: str, weighting: str) -> tuple[tuple[str, str], ...]:
    names = panel.names
    corrective = weighting == "corrective"
    scheme = ("1 for treated rows; controls (N^D_ae/N^D_e)/(N^C_ae/N^C_e) (WFH 2024)" if corrective
              else "none (unweighted stack)")
    if names.get("weights"):
        scheme += f"; times the sampling weights {names['weights']}" + (" (N: sums of them)" if corrective else "")
    n_cohorts = np.unique(panel.cohort[np.isfinite(panel.cohort)]).shape[0] if panel.cohort is not None else 0
    return (
        ("Estimator", "stacked DiD (Cengiz et al. 2019)" + (" with corrective weights (Wing, Freedman & "
                                                            "Hollingsworth 2024)" if corrective else "")),
        ("Outcome", str(names["y"])),
        ("Event window", f"{fmt_value(lo)} .. {fmt_value(hi)} (event time = {names['time']} - {names['cohort']})"),
        ("Reference period", "-1"),
        ("Control group", "never treated" if control == "never"
         else f"clean controls: never treated or first treated after a + {fmt_value(hi)} (not yet treated)"),
        ("Sub-experiments", f"{stack.n_sub} of {n_cohorts} cohorts "
                            f"({', '.join(fmt_value(s['cohort']) for s in stack.subs)})"),
        ("Weights", scheme),
        ("Fixed effects", " + ".join(fe_names) + f" [{method}]"),
        ("Static ATT", "mean of the event-time coefficients 0.." + fmt_value(hi)),
    )


def _treated_mass(panel: Panel, stack: _Stack) -> np.ndarray:
    """Per sub-experiment: its treated units, or the sum of their sampling weights (each unit once)."""
    assert panel.unit is not None
    n = panel.n_units
    tr = stack.D == 1.0
    key = np.unique(stack.sub[tr] * n + panel.unit[stack.rows[tr]])
    unit_weight = np.ones(n)
    if panel.weights is not None:
        unit_weight[panel.unit] = panel.weights  # constant within a unit (checked)
    return np.bincount(key // n, weights=unit_weight[key % n], minlength=stack.n_sub)


def _assemble(panel: Panel, stack: _Stack, source: CellSource | RegressionSource, spec: VcovSpec, q: np.ndarray,
              keep_e: list[float], *, method: str, fe_names: Sequence[str], lo: float, hi: float, control: str,
              weighting: str) -> StackedResult:
    V, inf = source.compute(FUNC, spec)
    fit: OLSFit = source.cells.fit if isinstance(source, CellSource) else source.fit
    k = len(keep_e)
    post = [j for j, v in enumerate(keep_e) if v >= 0]
    A = np.vstack([np.eye(k), np.zeros((1, k))])
    A[-1, post] = 1.0 / len(post)
    ref_col = int(np.flatnonzero(stack.ev_vals == -1.0)[0])
    treated_mass = _treated_mass(panel, stack)
    subs = [FrozenDict({**sub, "control_weight": float(q[i, ref_col]),
                        "treated_share": float(treated_mass[i] / treated_mass.sum())})
            for i, sub in enumerate(stack.subs)]
    report = _report(panel, stack, lo, hi)
    design = _design(panel, stack, method, fe_names=fe_names, lo=lo, hi=hi, control=control, weighting=weighting)
    notes = ("Dropped for collinearity: " + ", ".join(fit.dropped_collinear),) if fit.dropped_collinear else ()
    event_of = dict(zip((event_term(v) for v in keep_e), keep_e, strict=True))
    regression = Result(
        estimator="Stacked DiD regression", terms=fit.names, coef=fit.coef, vcov_matrix=V, headline=fit.names[0],
        inference=inf, sample=report, design=design, notes=notes, _source=source,
        term_info={"event_time": np.array([event_of[n] for n in fit.names])},
    )
    q_ro = np.array(q, copy=True)
    q_ro.flags.writeable = False
    extras: Mapping[str, Any] = {"reference": (-1.0,), "sub_experiments": tuple(subs), "regression": regression,
                                 "corrective_weights": q_ro, "event_times": tuple(float(v) for v in stack.ev_vals)}
    return StackedResult(
        estimator="Stacked DiD", terms=(*(event_term(v) for v in keep_e), "ATT"), coef=A @ fit.coef,
        vcov_matrix=A @ V @ A.T, headline="ATT", inference=inf, sample=report, design=design,
        term_info={"event_time": np.array([*keep_e, np.nan])}, extras=extras, notes=notes,
        _source=LinearMapSource(source, A), pre_period_meaning=PRE_PERIOD["stacked"], cross_covariance=True,
    )
