"""The Sun-Abraham estimation sample: which rows enter the saturated regression, and why others do not.

Follows fixest's ``sunab()`` (lrberge/fixest ``R/did.R``): a cohort observed only at relative periods >= 0 is
*always treated* (its units are dropped, counted); a cohort observed only at relative periods < 0 is a
*reference* cohort (no dummies, like the never treated). With ``control_group="last_treated"`` the never-treated units
and the periods from the last cohort's treatment on are dropped. Rows with a zero weight are dropped first (as
``lm`` and fixest do), so that ``n``, ``K`` and the clusters count only observations that enter the fit.
Every drop is counted in the sample report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from didx._errors import DataError, DesignError
from didx._panel import Panel
from didx._sample import Dropped, SampleReport
from didx.estimators.sun_abraham.design import fmt_value


@dataclass(frozen=True, eq=False)
class SASample:
    """The rows of the saturated regression, with units and periods recoded to ``0..L-1``.

    ``cohorts`` are the treated cohorts left in the sample, ``cohort_of_unit`` each unit's code into them (-1:
    never treated), ``dummies[c]`` whether cohort ``c`` gets interaction dummies (False for reference cohorts).
    ``row_index`` is each row's position in the frame given to the estimator (None: row i is input row i).
    """

    y: np.ndarray
    unit: np.ndarray
    time: np.ndarray
    periods: np.ndarray
    treated: np.ndarray  # per row: unit of a treated cohort (finite cohort)
    covariates: np.ndarray
    covariate_names: tuple[str, ...]
    weights: np.ndarray | None
    codes: Mapping[str, np.ndarray]
    row_index: np.ndarray | None
    cohorts: np.ndarray
    cohort_of_unit: np.ndarray
    dummies: np.ndarray
    report: SampleReport
    notes: tuple[str, ...]
    last_cohort: float

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.cohort_of_unit.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.periods.shape[0])

    @property
    def balanced(self) -> bool:
        counts = np.bincount(self.unit, minlength=self.n_units)
        return bool(counts.min() == self.n_periods == counts.max())


def cohort_codes(ucoh: np.ndarray, gvals: np.ndarray) -> np.ndarray:
    """Code of each unit's cohort in ``gvals`` (-1 for never treated / not listed)."""
    pos = np.searchsorted(gvals, ucoh)
    pos = np.minimum(pos, max(gvals.shape[0] - 1, 0))
    ok = np.isfinite(ucoh) & (gvals.shape[0] > 0)
    if gvals.shape[0]:
        ok &= gvals[pos] == ucoh
    return np.where(ok, pos, -1).astype(np.int64)


class _Dropper:
    """Drops rows (a ``keep`` mask) and records each reason with the rows and the units it removed entirely."""

    def __init__(self, unit: np.ndarray, n_units: int) -> None:
        self.unit = unit
        self.n_units = n_units
        self.keep = np.ones(unit.shape[0], dtype=bool)
        self.drops: list[Dropped] = []

    def units_kept(self) -> int:
        return int(np.count_nonzero(np.bincount(self.unit[self.keep], minlength=self.n_units)))

    def __call__(self, mask: np.ndarray, reason: str) -> None:
        newly = mask & self.keep
        if newly.any():
            before = self.units_kept()
            self.keep[newly] = False
            self.drops.append(Dropped(reason, int(newly.sum()), before - self.units_kept()))


def select_sample(panel: Panel, *, control: str, func: str) -> SASample:
    """The estimation sample of :func:`~didx.estimators.sun_abraham.estimator.sun_abraham` (see the module)."""
    assert panel.unit is not None and panel.cohort is not None  # checked by the callers
    names = panel.names
    periods = panel.periods
    T0 = panel.n_periods
    ucoh = panel.unit_cohort()
    gvals = np.unique(ucoh[np.isfinite(ucoh)])
    early = gvals < periods[0]
    odd = gvals[~early & ~np.isin(gvals, periods)]
    if odd.size:
        raise DataError(
            f"{func}: the cohort column {names.get('cohort')!r} has the value(s) "
            f"{', '.join(fmt_value(v) for v in odd[:5])}, which are not periods of {names.get('time')!r}. A cohort "
            f"is the first treated period. Fix: set it to the first period in which the unit is observed treated."
        )
    gcode = cohort_codes(ucoh, gvals)[panel.unit]
    finite = gcode >= 0
    drop = _Dropper(panel.unit, panel.n_units)
    if panel.weights is not None:
        drop(panel.weights == 0, f"zero weight ({names.get('weights')})")
    g_last = float(gvals.max())
    if control == "last_treated":
        if gvals.shape[0] < 2:
            raise DesignError(
                f"{func}: control='last_treated' needs at least two treated cohorts in {names.get('cohort')!r} (the "
                f"last one is the control); there is {gvals.shape[0]}. Fix: use control='never' with never-treated "
                f"units."
            )
        drop(~finite, "never-treated units (control='last_treated' uses the last-treated cohort)")
        drop(periods[panel.time] >= g_last,
             f"periods from {fmt_value(g_last)} on, when the control cohort (last treated) is treated")
    # fixest: a cohort seen only at e >= 0 is always treated (dropped); one seen only at e < 0 is a reference
    rel_tab = periods[None, :] - gvals[:, None]
    G = gvals.shape[0]
    key = (gcode + 1) * T0 + panel.time  # block 0: never treated
    pres = np.bincount(key[drop.keep], minlength=(G + 1) * T0)[T0:].reshape(G, T0) > 0
    has_pre = (pres & (rel_tab < 0)).any(axis=1)
    has_post = (pres & (rel_tab >= 0)).any(axis=1)
    for c in np.flatnonzero(has_post & ~has_pre):
        drop(gcode == c, f"always-treated units (cohort {fmt_value(gvals[c])}: treated in every observed period)")
    ref_cohort = ~has_post & has_pre
    if control == "never" and not (drop.keep & ~finite).any():
        raise DesignError(
            f"{func}: no never-treated units remain to serve as the control group. Fix: use "
            f"control='last_treated', or add never-treated units."
        )
    notes = []
    ref_extra = [gvals[c] for c in np.flatnonzero(ref_cohort) if gvals[c] != g_last or control != "last_treated"]
    if ref_extra:
        notes.append(f"Cohort(s) {', '.join(fmt_value(c) for c in ref_extra)} observed only before treatment: used "
                     f"as reference (control) cohorts, as fixest does.")
    return _subset(panel, drop, gvals, ref_cohort, tuple(notes), g_last)


def _subset(panel: Panel, drop: _Dropper, gvals: np.ndarray, ref_cohort: np.ndarray, notes: tuple[str, ...],
            g_last: float) -> SASample:
    """The kept rows, units and periods recoded to 0..L-1 (no copies when nothing was dropped)."""
    assert panel.unit is not None and panel.cohort is not None
    keep = drop.keep
    if keep.all():
        unit, time, periods = panel.unit, panel.time, panel.periods
        y, cohort, covariates, weights = panel.y, panel.cohort, panel.covariates, panel.weights
        codes = dict(panel.codes)
        row_index = None if panel.all_rows_kept else panel.row_index
    else:
        idx = np.flatnonzero(keep)
        unit = np.unique(panel.unit[idx], return_inverse=True)[1].reshape(-1).astype(np.int64)
        tpresent, time = np.unique(panel.time[idx], return_inverse=True)
        time = time.reshape(-1).astype(np.int64)
        periods = panel.periods[tpresent]
        y, cohort, covariates = panel.y[idx], panel.cohort[idx], panel.covariates[idx]
        weights = None if panel.weights is None else panel.weights[idx]
        codes = {k: v[idx] for k, v in panel.codes.items()}
        row_index = panel.row_index[idx]
    n_units = int(unit.max()) + 1
    report = panel.report.with_dropped(*drop.drops) if drop.drops else panel.report
    report = dataclasses.replace(report, n_obs=int(y.shape[0]), n_units=n_units, n_periods=int(periods.shape[0]))
    ucoh = np.full(n_units, np.inf)
    ucoh[unit] = cohort
    cohorts = gvals[np.isin(gvals, ucoh)]
    dummies = ~np.isin(cohorts, gvals[ref_cohort])
    return SASample(y=y, unit=unit, time=time, periods=periods, treated=np.isfinite(cohort), covariates=covariates,
                    covariate_names=panel.covariate_names, weights=weights, codes=codes, row_index=row_index,
                    cohorts=cohorts, cohort_of_unit=cohort_codes(ucoh, cohorts), dummies=dummies, report=report,
                    notes=notes, last_cohort=g_last)
