"""The ETWFE estimation sample and its cohort x period cells.

Follows R etwfe (``etwfe()``, grantmcdermott/etwfe ``R/etwfe.R``):

* the reference (control) cohort ``gref`` is the never treated; with ``control="not_yet"`` and no never-treated
  unit it is the last-treated cohort, and the periods from its treatment on are dropped (R sets ``.Dtreat`` to NA
  there, which drops the rows);
* ``control="not_yet"``: one treatment dummy per treated cohort ``g`` and period ``t >= g`` (R's
  ``.Dtreat = t >= g``); ``control="never"``: one per period except the cohort's reference period, the last period
  before ``g`` (R's ``t != g - 1`` with consecutive periods);
* units treated in (or before) the first period have no untreated period: they are dropped and counted (R would
  keep them with a collinear cohort effect).

Every drop is counted in the sample report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from didx._errors import DesignError
from didx._panel import Panel
from didx._sample import Dropped
from didx._validate import fmt_value
from didx.estimators.regression.event_study import subset_panel


@dataclass(frozen=True, eq=False)
class Cells:
    """The cohort x period cells of the sample.

    ``cohorts`` are the cohort values (the reference cohort last, ``inf`` when it is the never treated);
    ``cohort`` / ``cell`` the cohort code and cell code (``cohort * T + time``) of each row; ``table[g, t]`` the
    treatment coefficient of the cell (-1: none); ``names`` the coefficients' names; ``reference`` per treated
    cohort, the reference period's value (``control="never"``) or NaN.
    """

    cohorts: np.ndarray
    periods: np.ndarray
    cohort: np.ndarray
    cell: np.ndarray
    table: np.ndarray
    names: tuple[str, ...]
    ref_index: int
    control: str

    @property
    def n_cohorts(self) -> int:
        return int(self.cohorts.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.periods.shape[0])

    @property
    def k(self) -> int:
        return len(self.names)

    def coef_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(cohort code, period code) of each treatment coefficient, in coefficient order."""
        g, t = np.nonzero(self.table >= 0)
        order = np.argsort(self.table[g, t])
        return g[order], t[order]

    def event_time(self) -> np.ndarray:
        """Event time ``period - cohort`` of every cell (G x T; NaN for the reference cohort)."""
        out = self.periods[None, :] - self.cohorts[:, None]
        out[self.ref_index] = np.nan
        return out


def select_sample(panel: Panel, *, control: str, func: str) -> tuple[Panel, str]:
    """The rows ETWFE uses (always-treated units and, with a last-treated control, its treated periods dropped)
    and the text of the control group."""
    assert panel.unit is not None and panel.cohort is not None
    names = panel.names
    periods = panel.periods
    cohort = panel.cohort
    keep = np.ones(panel.n_obs, dtype=bool)
    drops: list[Dropped] = []

    def drop(mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        if newly.any():
            assert panel.unit is not None
            before = np.bincount(panel.unit[keep], minlength=panel.n_units) > 0
            keep[newly] = False
            after = np.bincount(panel.unit[keep], minlength=panel.n_units) > 0
            drops.append(Dropped(reason, int(newly.sum()), int(np.count_nonzero(before & ~after))))

    drop(np.isfinite(cohort) & (cohort <= periods[0]),
         f"always-treated units (cohort at or before the first period, {fmt_value(periods[0])}: no untreated period)")
    if panel.weights is not None:
        drop(panel.weights == 0, f"zero weight ({names.get('weights')})")
    never = ~np.isfinite(cohort) & keep
    if never.any():
        text = "never treated" if control == "never" else "not yet treated and never treated"
    elif control == "never":
        raise DesignError(
            f"{func}: control='never' needs never-treated units, but every unit of {names.get('cohort')!r} has a "
            f"treatment date. Fix: use control='not_yet' (the last-treated cohort is then the control, as in R "
            f"etwfe), or add never-treated units."
        )
    else:
        treated = np.unique(cohort[keep])
        if treated.shape[0] < 2:
            raise DesignError(
                f"{func}: no control units: there are no never-treated units and only one treated cohort "
                f"({fmt_value(treated[0]) if treated.size else 'none'}). Fix: add never-treated units or more "
                f"cohorts."
            )
        g_last = float(treated[-1])
        drop(periods[panel.time] >= g_last,
             f"periods from {fmt_value(g_last)} on, when the control cohort (the last treated, no never-treated "
             f"units) is treated")
        text = f"not yet treated; the last-treated cohort {fmt_value(g_last)} is the reference (no never treated)"
    if not keep.any():
        raise DesignError(f"{func}: no observation is left after the sample rules. Fix: check the cohort column.")
    if keep.all():
        return panel, text
    report = panel.report.with_dropped(*drops)
    return subset_panel(panel, keep, report), text


def make_cells(panel: Panel, *, control: str, cohort_name: str, time_name: str) -> Cells:
    """Cohort codes, cells and the treatment-coefficient table of a sample from :func:`select_sample`."""
    assert panel.cohort is not None
    periods = panel.periods
    T = periods.shape[0]
    assert panel.unit is not None
    g_unit = panel.unit_cohort()  # one value per unit: the codes are found per unit, then spread to the rows
    values = np.unique(g_unit)
    if np.isfinite(values[-1]):  # no never treated: the last-treated cohort is the reference
        ref_value = values[-1]
    else:
        ref_value = np.inf
    treated = values[values != ref_value]
    cohorts = np.concatenate([treated, [ref_value]])
    code_unit = np.searchsorted(treated, g_unit)
    code_unit[g_unit == ref_value] = treated.shape[0]
    code = np.take(code_unit.astype(np.int64), panel.unit)
    cell = code * T
    cell += panel.time
    present = np.bincount(cell, minlength=cohorts.shape[0] * T).reshape(-1, T) > 0
    table = np.full((cohorts.shape[0], T), -1, dtype=np.int64)
    names: list[str] = []
    for g in range(treated.shape[0]):
        if control == "not_yet":
            want = periods >= treated[g]
        else:
            before = np.flatnonzero(periods < treated[g])
            want = np.ones(T, dtype=bool)
            if before.size:
                want[before[-1]] = False
        for t in np.flatnonzero(want & present[g]):
            table[g, t] = len(names)
            names.append(f"{cohort_name}::{fmt_value(treated[g])}:{time_name}::{fmt_value(periods[t])}")
    if not names:
        raise DesignError(
            "etwfe: no treated cohort x period cell is left to estimate. Fix: check the cohort column (treated "
            "cohorts must be observed in some period from their first treated period on)."
        )
    return Cells(cohorts=cohorts, periods=periods, cohort=code, cell=cell, table=table, names=tuple(names),
                 ref_index=int(treated.shape[0]), control=control)


def aggregation_rows(cells: Cells, kind: str) -> tuple[np.ndarray, list[float]]:
    """Which cells each aggregation averages over (R emfx's data): a (n_groups, G*T) 0/1 matrix over cells and the
    group values (``simple``: one group; ``group``: cohorts; ``calendar``: periods; ``event``: event times).

    ``control="not_yet"`` (and every non-event kind): the treated cells (``.Dtreat`` true, ``t >= g``);
    ``control="never"`` with ``kind="event"``: every cell of the treated cohorts (the reference cells average in
    a zero), so that leads are estimated.
    """
    G, T = cells.table.shape
    gi, ti = np.meshgrid(np.arange(G), np.arange(T), indexing="ij")
    # only cells with observations (an unbalanced panel may have none in some cohort x period): a group made only
    # of empty cells has no treated observation to average (R emfx has no row for it), not an effect of 0
    observed = np.bincount(cells.cell, minlength=G * T).reshape(G, T) > 0
    treated_cohort = (gi != cells.ref_index) & observed
    post = cells.periods[None, :] >= np.where(treated_cohort, cells.cohorts[:, None], np.inf)
    if kind == "event" and cells.control == "never":
        use = treated_cohort
    else:
        use = post & (cells.table >= 0) if cells.control == "not_yet" else post & treated_cohort
    if kind == "simple":
        keys = np.zeros((G, T))
        values: Sequence[float] = [0.0]
    elif kind == "group":
        keys = cells.cohorts[gi]
        values = sorted(set(keys[use].tolist()))
    elif kind == "calendar":
        keys = cells.periods[ti]
        values = sorted(set(keys[use].tolist()))
    else:
        keys = cells.periods[ti] - np.where(treated_cohort, cells.cohorts[gi], 0.0)
        values = sorted(set(keys[use].tolist()))
    member = np.zeros((len(values), G * T))
    for r, v in enumerate(values):
        member[r] = (use & (keys == v)).reshape(-1)
    return member, [float(v) for v in values]

