"""The synthetic-DiD design: a balanced unit x period matrix, absorbing treatment, adoption cohorts.

:func:`wide_design` turns a :class:`didx._panel.Panel` into the matrices the estimator works on and refuses what
synthdid cannot use, naming the units: an unbalanced panel, a treatment that switches off, a treated unit with no
pre-period, no never-treated unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from didx._errors import DataError, DesignError
from didx._panel import Panel
from didx._validate import fmt_value


@dataclass(frozen=True, eq=False)
class WideDesign:
    """Units ordered controls first (by label), then treated units by cohort and label.

    Y : (N, T) outcomes; X : (N, T, p) covariates; labels : unit labels in that order; order : panel unit code of
    each row; N0 : controls; cohorts : adoption period code per cohort (increasing); cohort_of : (N,) cohort index
    per row (-1 for controls); periods / period_labels : the panel's.
    """

    Y: np.ndarray
    X: np.ndarray
    labels: np.ndarray
    order: np.ndarray
    N0: int
    cohorts: np.ndarray
    cohort_of: np.ndarray
    period_labels: np.ndarray

    @property
    def N(self) -> int:
        return int(self.Y.shape[0])

    @property
    def T(self) -> int:
        return int(self.Y.shape[1])

    def cohort_rows(self, a: int) -> np.ndarray:
        return np.flatnonzero(self.cohort_of == a)

    def block_rows(self, a: int) -> np.ndarray:
        """Rows of cohort ``a``'s block: every control, then the cohort's treated units."""
        return np.concatenate([np.arange(self.N0), self.cohort_rows(a)])


def _names(labels: np.ndarray, idx: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(fmt_value(labels[i]) for i in idx[:limit])
    return shown + (f" and {idx.size - limit} more" if idx.size > limit else "")


def _sorted(labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx`` ordered by their labels (as R's ``panel.matrices``); by code if labels do not compare."""
    try:
        return idx[np.argsort(pd.Index(labels[idx]).to_numpy(), kind="stable")]
    except TypeError:
        return idx


def wide_design(panel: Panel, func: str, unit: str, treat: str) -> WideDesign:
    """The wide matrices of a validated panel; errors name the units."""
    assert panel.unit is not None and panel.unit_labels is not None and panel.treat is not None
    labels = np.asarray(panel.unit_labels, dtype=object)
    n_units, T = labels.shape[0], panel.periods.shape[0]
    counts = np.bincount(panel.unit, minlength=n_units)
    if (counts != T).any():
        short = np.flatnonzero(counts != T)
        dropped = panel.report.n_dropped_rows
        why = (f" ({dropped} rows were dropped for missing or infinite values: see the sample report)" if dropped
               else "")
        raise DataError(
            f"{func}: the panel is unbalanced: unit(s) {_names(labels, short)} of {unit!r} are not observed in all "
            f"{T} periods{why}. Synthetic DiD needs every unit in every period. Fix: keep only units observed "
            f"throughout (or fill the missing outcomes)."
        )
    Y = np.empty((n_units, T))
    Y[panel.unit, panel.time] = panel.y
    D = np.zeros((n_units, T))
    D[panel.unit, panel.time] = panel.treat
    p = panel.covariates.shape[1]
    X = np.empty((n_units, T, p))
    X[panel.unit, panel.time, :] = panel.covariates
    off = (np.diff(D, axis=1) < 0).any(axis=1)
    if off.any():
        bad = np.flatnonzero(off)
        raise DesignError(
            f"{func}: the treatment {treat!r} switches off (1 then 0) for unit(s) {_names(labels, bad)}. Synthetic "
            f"DiD needs an absorbing treatment: once treated, treated in every later period. Fix: recode the "
            f"treatment as 'treated since adoption', or drop those units."
        )
    ever = D.any(axis=1)
    first = np.where(ever, np.argmax(D, axis=1), T)
    at_start = np.flatnonzero(ever & (first == 0))
    if at_start.size:
        raise DesignError(
            f"{func}: unit(s) {_names(labels, at_start)} are treated from the first period "
            f"({fmt_value(panel.period_labels[0])}), so they have no pre-period to build weights from. Fix: drop "
            f"them, or include earlier periods."
        )
    if ever.all():
        raise DesignError(
            f"{func}: no never-treated units: every unit of {unit!r} is treated at some period. Synthetic DiD "
            f"(as Stata's sdid for staggered adoption) compares each adoption cohort with never-treated units. "
            f"Fix: include units that are never treated."
        )
    controls = _sorted(labels, np.flatnonzero(~ever))
    cohorts = np.unique(first[ever])
    treated = np.concatenate([_sorted(labels, np.flatnonzero(ever & (first == a))) for a in cohorts])
    order = np.concatenate([controls, treated])
    cohort_of = np.concatenate([np.full(controls.size, -1), np.searchsorted(cohorts, first[treated])])
    return WideDesign(Y=Y[order], X=X[order], labels=labels[order], order=order, N0=int(controls.size),
                      cohorts=cohorts, cohort_of=cohort_of, period_labels=np.asarray(panel.period_labels))
