"""Data preparation for Callaway & Sant'Anna (2021): the sample rules of R's ``did`` 2.5.1.

From a validated :class:`didx._panel.Panel` this module applies, in order and reporting every drop:

1. units already treated in the first period (``cohort <= first period + anticipation``) are dropped;
2. with no never-treated units and ``control_group="not_yet"``: periods ``>= last cohort - anticipation`` are dropped
   and the last cohort becomes the comparison group (``did::pre_process_did``; re-checked after step 3, which can
   remove every never-treated unit);
3. panel data: units not observed in every period are dropped (balanced panel), unless ``allow_unbalanced``;
4. cohorts with fewer than ``p + 5`` units (``p`` covariates) are noted, as ``did`` warns.

A treated cohort that is not one of the periods (e.g. 2004.5 with yearly data) is an error: the unit's treatment
date is between two periods, so whether the period before it is treated is ambiguous. The cluster variable must
nest units and have at least two values.

The output, :class:`CSData`, holds units sorted by cohort (never treated last) so that every cohort is a
contiguous block, which the cohort-sum estimators and the multiplier bootstrap rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx._errors import DataError, DesignError
from didx._panel import NEVER, Panel
from didx._sample import Dropped, SampleReport
from didx.inference.contract import Fingerprint
from didx.inference.if_store import clusters_of_units


@dataclass(frozen=True, eq=False)
class CSData:
    """Rows and units ready for the ATT(g,t) computations.

    ``mode`` is ``"panel"`` (balanced panel), ``"unbalanced"`` (panel with gaps, repeated-cross-section
    estimators with influence functions summed by unit) or ``"rc"`` (repeated cross sections: every row is
    its own observation unit). Units are sorted by cohort; ``cohort_values`` lists the cohorts present (treated
    ones increasing, then ``inf`` for the comparison-only group if any); ``block`` gives each cohort's slice of
    units. Rows: ``row_unit`` (sorted unit code), ``row_time`` (period code), ``y``, ``X`` (covariates with an
    intercept first, or None).
    """

    mode: str
    n_units: int
    periods: np.ndarray
    period_labels: np.ndarray
    cohort_values: np.ndarray
    unit_cohort: np.ndarray  # cohort code (index into cohort_values) per unit, non-decreasing
    block: np.ndarray  # (G_all + 1,) boundaries of cohort blocks in the unit order
    unit_weight: np.ndarray
    row_unit: np.ndarray
    row_time: np.ndarray
    y: np.ndarray
    X: np.ndarray | None
    cluster: np.ndarray | None  # cluster code per unit (coarser than unit), or None
    n_clusters: int
    report: SampleReport
    weighted: bool
    unit_labels: np.ndarray  # label of each (sorted) unit; row positions of the input for repeated cross sections
    row_index: np.ndarray | None  # position of each row in the input frame (None: row i is input row i)
    n_input_rows: int
    fingerprint: Fingerprint | None
    cluster_name: str | None
    # rows form a unit-major grid (Panel.grid, every row kept; prepare(..., grid=True)): rows j * n_periods ..
    # + n_periods - 1 are the periods of one unit, and grid_units[i] is that block j for sorted unit i (None: no
    # grid, or a caller that may reorder the units afterwards)
    grid_units: np.ndarray | None = None

    def unit_of_row(self) -> np.ndarray:
        """``row_unit`` as int32 where it fits (no copy when it is int32 already, as on the grid)."""
        row_unit = self.row_unit
        return row_unit.astype(np.int32, copy=False) if self.n_units < np.iinfo(np.int32).max else row_unit

    def wide_outcome(self, out: np.ndarray) -> None:
        """Write the outcome into ``out`` (n_units, n_periods) at (sorted unit, period), every cell once."""
        if self.grid_units is None:
            out[self.row_unit, self.row_time] = self.y
            return
        Yw = self.y.reshape(-1, self.n_periods)
        step = 1 << 16  # whole rows (one unit's periods) in chunks: no (n_units, n_periods) temporary
        for lo in range(0, self.n_units, step):
            out[lo:lo + step] = Yw[self.grid_units[lo:lo + step]]

    @property
    def n_periods(self) -> int:
        return int(self.periods.shape[0])

    @property
    def treated_cohorts(self) -> np.ndarray:
        return self.cohort_values[np.isfinite(self.cohort_values)]

    def cohort_size(self) -> np.ndarray:
        return np.diff(self.block)


def _fmt(v: float) -> str:
    return "never" if not np.isfinite(v) else f"{v:g}"


def prepare(panel: Panel, *, func: str, control: str, anticipation: int, mode: str,
            cluster: str | None, grid: bool = False) -> CSData:
    """Apply ``did``'s sample rules to ``panel`` and sort units by cohort (see the module docstring).

    ``grid=True`` (for callers that keep the unit order returned) records, on a grid panel (``Panel.grid``) with
    every row kept, how the rows map onto the sorted units (``CSData.grid_units``), so that the outcome is laid
    out by a row gather (:meth:`CSData.wide_outcome`) instead of a scatter."""
    report = panel.report
    periods = panel.periods
    labels = panel.period_labels
    T = periods.shape[0]
    n_rows = panel.n_obs
    if mode == "rc":
        unit = np.arange(n_rows, dtype=np.int64)
        n_units = n_rows
    else:
        if panel.unit is None:
            raise DesignError(f"{func}: panel data need unit=. Fix: pass unit=, or panel=False.")
        unit = np.asarray(panel.unit, dtype=np.int64)  # not modified: no copy
        n_units = panel.n_units
    row_g = np.asarray(panel.cohort, dtype=np.float64)
    keep = np.ones(n_rows, dtype=bool)
    drops: list[Dropped] = []
    notes: list[str] = []

    def n_kept_units() -> int:
        return int(np.count_nonzero(np.bincount(unit[keep], minlength=n_units)))

    def drop_rows(mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        if newly.any():
            before = n_kept_units()
            keep[newly] = False
            drops.append(Dropped(reason=reason, n_rows=int(newly.sum()), n_units=before - n_kept_units()))

    first = periods[0]
    # on a grid panel every unit's T rows share the cohort, and the first rules drop whole units: one row per unit
    step = T if panel.grid and mode != "rc" else 1
    already = np.isfinite(row_g[::step]) & (row_g[::step] <= first + anticipation)
    if already.any():
        drop_rows(np.repeat(already, step) if step > 1 else already,
                  f"already treated in the first period (cohort <= {first:g}"
                  f"{' + anticipation' if anticipation else ''}): no untreated period to compare")
    if not (np.isfinite(row_g[::step]) & keep[::step]).any():
        raise DesignError(
            f"{func}: no treated cohort is left after dropping units treated in the first period. ATT(g,t) needs "
            f"units first treated after the first period. Fix: check the cohort column and anticipation."
        )
    def no_never_treated(after_balancing: bool, step: int = 1) -> None:
        """did's rule without never-treated units: the last cohort becomes the comparison group, later periods
        go (re-checked after balancing, which can remove every never-treated unit). ``step``: look at every
        step-th row only (grid panel, rows kept or dropped by whole units so far)."""
        nonlocal row_g
        finite, kept = np.isfinite(row_g[::step]), keep[::step]
        if (kept & ~finite).any() or not (kept & finite).any():
            return
        why = " after dropping the units not observed in every period" if after_balancing else ""
        if control == "never":
            fix = ("allow_unbalanced=True (keeps the units with gaps) or control='not_yet'" if after_balancing else
                   "control='not_yet' (units not yet treated; the last cohort then serves only as a comparison)")
            raise DesignError(
                f"{func}: there are no never-treated units{why}, so control='never' has no comparison group. "
                f"Fix: use {fix}."
            )
        gmax = float(np.max(row_g[keep]))
        drop_rows(periods[panel.time] >= gmax - anticipation,
                  f"periods >= the last cohort ({gmax:g}{' - anticipation' if anticipation else ''}): no units "
                  f"left untreated to compare with (no never-treated units{why})")
        row_g = row_g.copy()
        row_g[row_g == gmax] = NEVER
        notes.append(f"No never-treated units{why}: cohort {gmax:g} serves as the comparison group (as did "
                     f"does), periods from {gmax - anticipation:g} on are dropped.")
        if not np.isfinite(row_g[keep]).any():
            raise DesignError(f"{func}: only one treated cohort and no never-treated units{why}: nothing to "
                              f"compare. Fix: add never-treated units or another cohort.")

    no_never_treated(after_balancing=False, step=step)
    # balance
    if mode != "rc" and panel.is_balanced and bool(keep.all()):  # every unit in every period: no gaps
        if mode == "unbalanced":
            mode = "panel"
            notes.append("allow_unbalanced=True but the panel is balanced: the panel estimators are used.")
    elif mode != "rc":
        all_rows = bool(keep.all())
        counts = np.bincount(unit if all_rows else unit[keep], minlength=n_units)
        present_periods = int(np.count_nonzero(np.bincount(panel.time if all_rows else panel.time[keep],
                                                           minlength=T)))
        gaps = (counts > 0) & (counts < present_periods)
        if gaps.any():
            if mode == "panel":
                drop_rows(gaps[unit],
                          "not observed in every period (did balances the panel; allow_unbalanced=True keeps them)")
                no_never_treated(after_balancing=True)
            else:
                notes.append(f"Unbalanced panel: {int(gaps.sum())} units are not observed in every period; "
                             f"repeated-cross-section estimators with influence functions summed by unit.")
        elif mode == "unbalanced":
            mode = "panel"
            notes.append("allow_unbalanced=True but the panel is balanced: the panel estimators are used.")
    if not keep.any():
        raise DesignError(f"{func}: no rows left after the sample rules. Fix: check the panel's balance.")
    all_kept = bool(keep.all())
    rows = np.empty(0, dtype=np.int64) if all_kept else np.flatnonzero(keep)
    n_kept = n_rows if all_kept else int(rows.shape[0])

    def take(a: np.ndarray) -> np.ndarray:
        return a if all_kept else a[rows]

    # re-code periods and units
    tcode = take(panel.time)
    # every period and unit code of the panel has a row (build_panel re-codes to those present)
    present = np.ones(T, dtype=bool) if all_kept else np.bincount(tcode, minlength=T) > 0
    if not present.all():
        tcode = (np.cumsum(present) - 1)[tcode]
    periods = periods[present]
    labels = labels[present]
    if periods.shape[0] < 2:
        raise DesignError(f"{func}: fewer than two periods left after the sample rules. Fix: check the data.")
    u_old = take(unit)
    u_present = np.ones(n_units, dtype=bool) if all_kept else np.bincount(u_old, minlength=n_units) > 0
    u_new = u_old if u_present.all() else (np.cumsum(u_present) - 1)[u_old]
    n_units = int(u_present.sum())
    old_code = np.flatnonzero(u_present)  # panel unit code (or row position) of each new unit code
    on_grid = all_kept and panel.grid and mode == "panel"
    if on_grid:  # row j * T + t is unit j: the cohort (constant within unit) of its first row
        g_unit = row_g[::T].copy()
    else:
        g_unit = np.empty(n_units)
        g_unit[u_new] = take(row_g)
    cohort_values = np.unique(g_unit)  # inf sorts last
    _check_cohorts_are_periods(func, cohort_values, panel)
    cohort_code = np.searchsorted(cohort_values, g_unit)
    small_codes = cohort_code.astype(np.int16) if cohort_values.shape[0] < 2 ** 15 else cohort_code
    order = np.argsort(small_codes, kind="stable")  # 16-bit keys: numpy's stable sort is a radix sort
    rank = np.empty(n_units, dtype=np.int64)
    rank[order] = np.arange(n_units)
    if on_grid:  # int32 where it fits (as the result keeps the row -> unit map): a repeat, no gather
        row_unit = np.repeat(rank.astype(np.int32) if n_units < np.iinfo(np.int32).max else rank, T)
    else:
        row_unit = rank[u_new]
    unit_cohort = cohort_code[order]
    picked = order if all_kept else old_code[order]  # all kept: old_code is 0..n_units-1
    if mode == "rc" or panel.unit_labels is None:
        unit_labels = panel.row_index[picked]
    else:
        unit_labels = panel.unit_labels[picked]
    block = np.searchsorted(unit_cohort, np.arange(cohort_values.shape[0] + 1))
    # weights per unit
    weighted = panel.weights is not None
    if panel.weights is not None:
        w_rows = take(panel.weights)
        w_unit = np.zeros(n_units)
        w_unit[row_unit] = w_rows
        if mode != "rc" and np.any(w_unit[row_unit] != w_rows):
            raise DataError(
                f"{func}: the weights column {panel.names.get('weights')!r} varies within units. A panel "
                f"estimator of ATT(g,t) uses one sampling weight per unit. Fix: make the weight constant within each "
                f"unit."
            )
    else:
        w_unit = np.ones(n_units)
    X = None
    if panel.covariates.shape[1]:
        X = np.column_stack([np.ones(n_kept), take(panel.covariates)])
    cl_unit = None
    n_clusters = n_units
    if cluster is not None:
        cl_unit, n_clusters = clusters_of_units(func, cluster, take(panel.codes[cluster]), row_unit, n_units)
    sizes = np.diff(block)
    p = 0 if X is None else X.shape[1] - 1
    small = [float(c) for c, s in zip(cohort_values, sizes, strict=True) if s < p + 5]
    if small:
        notes.append("Small cohorts (fewer than " + str(p + 5) + " units, as did warns): "
                     + ", ".join(f"{_fmt(c)} ({int(s)} units)" for c, s in zip(cohort_values, sizes, strict=True)
                                 if s < p + 5))
    new_report = report.with_dropped(*drops).with_notes(*notes)
    from dataclasses import replace

    new_report = replace(new_report, n_obs=n_kept, n_units=None if mode == "rc" else int(n_units),
                         n_periods=int(periods.shape[0]),
                         balanced=None if mode == "rc" else mode == "panel",
                         # the units with gaps are gone from a balanced panel (counted under Dropped)
                         n_units_with_gaps=0 if mode == "panel" else new_report.n_units_with_gaps)
    if all_kept:
        row_index = panel.kept_rows
    else:
        row_index = rows if panel.kept_rows is None else panel.kept_rows[rows]
    return CSData(mode=mode, n_units=int(n_units), periods=periods, period_labels=labels,
                  cohort_values=cohort_values, unit_cohort=unit_cohort, block=block, unit_weight=w_unit,
                  row_unit=row_unit, row_time=tcode, y=take(panel.y), X=X, cluster=cl_unit,
                  n_clusters=n_clusters, report=new_report, weighted=weighted,
                  unit_labels=unit_labels, row_index=row_index, n_input_rows=report.n_input_rows,
                  fingerprint=panel.fingerprint, cluster_name=cluster, grid_units=order if grid and on_grid else None)


def _check_cohorts_are_periods(func: str, cohort_values: np.ndarray, panel: Panel) -> None:
    """Every treated cohort must be one of the periods (never-treated codings are already ``inf``)."""
    treated = cohort_values[np.isfinite(cohort_values)]
    off = treated[~np.isin(treated, panel.periods)]
    if off.size:
        name = panel.names.get("cohort") or "cohort"
        labels = panel.period_labels
        shown = ", ".join(f"{v:g}" for v in panel.periods[:8]) if labels.dtype.kind in "fiu" else "the dates"
        raise DataError(
            f"{func}: the cohort column {name!r} has the value {off[0]:g}, which is not one of the periods of the "
            f"time column ({shown}{', ...' if panel.periods.shape[0] > 8 else ''}). A cohort is the first period "
            f"in which a unit is treated; between two periods it is ambiguous whether the earlier one is treated. "
            f"Fix: code the cohort as the first observed period in which the unit is treated."
        )
