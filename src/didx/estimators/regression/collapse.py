"""Collapsing a panel to group x period cell means (Bertrand, Duflo & Mullainathan 2004).

When treatment is assigned at the level of a few groups (states, regions, cohorts), individual-level
observations add little independent information: the effective sample is the set of group x period cells, and
cluster-robust standard errors with few groups over-reject. Estimating on the cell means

    ybar_gt = sum_{i in (g,t)} w_i y_it / sum_{i in (g,t)} w_i

makes that explicit. Cells are weighted equally (``collapse="group_period"``) or by their size, the sum of the
(sampling) weights in the cell (``collapse="group_period_weighted"``). On a balanced panel in which treatment
is constant within each cell, the weighted cell-mean regression with group fixed effects reproduces the
individual-level point estimate exactly; with equal cell sizes so does the unweighted one.

Reference: Bertrand, M., Duflo, E. & Mullainathan, S. (2004), "How much should we trust
differences-in-differences estimates?", QJE 119(1), section V.B (aggregating the data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._fingerprint import Fingerprint
from didx._frame import factorize
from didx._panel import Panel
from didx._validate import as_list, check_option
from didx.inference.contract import ClusterCodes

COLLAPSE_OPTIONS = ("group_period", "group_period_weighted")


@dataclass(frozen=True)
class CollapseInfo:
    """What a collapse did: printed among the design choices."""

    group: str
    n_groups: int
    n_cells: int
    n_rows: int
    weighted: bool
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)  # input row of each collapsed row
    cell: np.ndarray | None = field(default=None, repr=False, compare=False)  # its cell (0..n_cells-1)

    def cluster_codes(self, stored: Mapping[str, np.ndarray], row_index: np.ndarray | None, n_input_rows: int,
                      fingerprint: Fingerprint | None) -> ClusterCodes:
        """The fit-time cluster codes of the cell-mean regression; a column not captured at fit time must be
        constant within every cell (checked when it is passed to ``with_vcov`` or the wild bootstrap)."""
        if self.cell is None or self.n_cells == self.n_rows:  # one row per cell: nothing to check
            return ClusterCodes(stored, row_index, n_input_rows, fingerprint)
        return CellClusterCodes(stored, row_index, n_input_rows, fingerprint, group=self.group, rows=self.rows,
                                cell=self.cell)

    def describe(self) -> str:
        how = "weighted by cell size" if self.weighted else "cells weighted equally"
        return (f"{self.group} x period means ({self.n_cells} cells of {self.n_groups} groups from "
                f"{self.n_rows} rows; {how})")


@dataclass(frozen=True, eq=False)
class CellClusterCodes(ClusterCodes):
    """Cluster codes of a regression on group x period means: each estimation row is a cell (``row_index`` points
    at its first input row), so a cluster column given later must be constant within every cell (``rows``: the
    input row of every row that entered a cell, None for 0..n-1; ``cell``: its cell), else it is refused."""

    group: str = ""
    rows: np.ndarray | None = None
    cell: np.ndarray | None = None

    def resolve(self, func: str, names: Sequence[str], supplied: Mapping[str, np.ndarray], data: Any,
                new_allowed: bool = True) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
        for name in names:
            if name in supplied:
                raw = np.asarray(supplied[name])
                self._check_rows(func, name, raw.shape[0], "the values passed as cluster=")
            elif name in self.stored or data is None:
                continue
            else:
                raw = self._read(func, name, data)
            self._check_cells(func, name, raw)
        return super().resolve(func, names, supplied, data, new_allowed)

    def _check_cells(self, func: str, name: str, raw: np.ndarray) -> None:
        assert self.cell is not None
        sel = raw if self.rows is None else raw[self.rows]
        codes = np.asarray(pd.factorize(sel, sort=False, use_na_sentinel=True)[0], dtype=np.int64)
        seen = np.full(int(self.cell.max()) + 1 if self.cell.size else 0, -2, dtype=np.int64)
        seen[self.cell] = codes
        if not np.array_equal(seen[self.cell], codes):
            raise DataError(
                f"{func}: the cluster column {name!r} varies within a {self.group} x period cell, but the "
                f"estimates are on {self.group} x period means, so every cell must lie in one cluster. Fix: "
                f"cluster by {self.group!r} or a column constant within each {self.group}, or re-run without "
                f"collapse= to cluster by {name!r}."
            )


def _plain(v: object) -> object:
    """A numpy scalar as a plain Python value (for messages)."""
    item = getattr(v, "item", None)
    return item() if callable(item) else v


def check_collapse(func: str, collapse: str | None) -> bool:
    """Validate the ``collapse`` option; True for a weighted collapse."""
    if collapse is None:
        return False
    check_option(func, "collapse", collapse, COLLAPSE_OPTIONS)
    return collapse == "group_period_weighted"


def cohort_groups(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Per-row group codes and labels when the groups are the cohorts (never treated = one group)."""
    if panel.cohort is None:
        raise DesignError("cohort_groups needs a panel with a cohort column.")
    codes, uniques = factorize(panel.cohort, sort=True)
    labels = np.array(["never" if np.isinf(v) else f"{v:g}" for v in uniques], dtype=object)
    return codes.astype(np.int64), labels


def collapse_panel(panel: Panel, *, func: str, group_codes: np.ndarray, group_name: str, weighted: bool,
                   constant: dict[str, np.ndarray | None] | None = None,
                   group_labels: np.ndarray | None = None) -> tuple[Panel, CollapseInfo]:
    """Replace the panel's rows by group x period cell means.

    The returned panel's ``unit`` is the group (so unit fixed effects become group fixed effects and the
    default clustering is by group), ``y`` and ``covariates`` are cell means, ``weights`` the cell sizes when
    ``weighted`` (else None), and ``row_index`` points at the first input row of each cell. Arrays in
    ``constant`` (treatment, cohort, ...) must be constant within every cell; otherwise the treatment varies
    below the group level and collapsing would average it away, which is an error.
    """
    g = np.asarray(group_codes, dtype=np.int64)
    n = panel.n_obs
    T = panel.n_periods
    key = g * T + panel.time
    cell_keys, first, inv = np.unique(key, return_index=True, return_inverse=True)
    n_cells = int(cell_keys.shape[0])
    # cells in order of their first row: with one row per cell the rows keep their input order
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(n_cells)
    first, inv = first[order], rank[inv.ravel()]
    checks: dict[str, np.ndarray | None] = {"treatment": panel.treat, "cohort": panel.cohort}
    checks.update(constant or {})
    for what, arr in checks.items():
        if arr is None:
            continue
        a = np.asarray(arr)
        same = (a == a[first][inv]) | (np.isnan(a) & np.isnan(a[first][inv])) if a.dtype.kind == "f" else (
            a == a[first][inv])
        if not same.all():
            r = int(np.flatnonzero(~same)[0])
            period = _plain(panel.period_labels[panel.time[r]])
            where = (f"the cell {group_name}={_plain(group_labels[g[r]])!r}, period={period!r}"
                     if group_labels is not None else
                     f"a {group_name} x period cell (period={period!r}, input row {int(panel.row_index[r])})")
            raise DesignError(
                f"{func}: cannot collapse to {group_name} x period means: the {what} varies within {where}, so "
                f"the treatment is not assigned at the {group_name!r} level. Fix: collapse by the level at "
                f"which treatment is assigned (cluster=<that column>), or do not collapse."
            )
    w = np.ones(n) if panel.weights is None else panel.weights
    size = np.bincount(inv, weights=w, minlength=n_cells)
    if np.any(size <= 0):
        zero = int(first[np.flatnonzero(size <= 0)[0]])
        period = _plain(panel.period_labels[panel.time[zero]])
        label = _plain(group_labels[g[zero]]) if group_labels is not None else None
        where = (f"the cell {group_name}={label!r}, period={period!r}" if label is not None else
                 f"the {group_name} x period cell of input row {int(panel.row_index[zero])} (period={period!r})")
        raise DataError(
            f"{func}: {where} has zero total weight ({int(np.count_nonzero(size <= 0))} such cells), so its "
            f"mean is undefined. Fix: drop the rows with zero weight, or give them positive weights."
        )
    y = np.bincount(inv, weights=w * panel.y, minlength=n_cells) / size
    if panel.covariates.shape[1]:
        cov = np.column_stack([np.bincount(inv, weights=w * panel.covariates[:, j], minlength=n_cells) / size
                               for j in range(panel.covariates.shape[1])])
    else:
        cov = np.empty((n_cells, 0))
    cell_group_raw = g[first]
    cell_group, used = factorize(cell_group_raw, sort=True)
    cell_group = cell_group.astype(np.int64)
    labels = (group_labels[used.astype(np.int64)] if group_labels is not None
              else used.astype(np.int64))
    codes: dict[str, np.ndarray] = {}
    for name, c in panel.codes.items():
        c = np.asarray(c)
        if name == group_name or np.array_equal(c, c[first][inv]):
            codes[name] = factorize(c[first], sort=False)[0]
    codes[group_name] = cell_group
    n_groups = int(labels.shape[0])
    counts = np.bincount(cell_group, minlength=n_groups)
    report = dataclasses.replace(panel.report, n_obs=n_cells, n_units=n_groups,
                                 balanced=bool(counts.min() == T), n_units_with_gaps=None)
    info = CollapseInfo(group=group_name, n_groups=n_groups, n_cells=n_cells, n_rows=n, weighted=weighted,
                        rows=None if panel.all_rows_kept else panel.row_index, cell=inv.astype(np.int64))
    report = report.with_notes(f"Collapsed to {info.describe()}")
    out = dataclasses.replace(
        panel, y=y, unit=cell_group, unit_labels=np.asarray(labels), time=panel.time[first],
        cohort=None if panel.cohort is None else panel.cohort[first],
        treat=None if panel.treat is None else panel.treat[first], covariates=cov,
        weights=size if weighted else None, codes=codes, kept_rows=panel.row_index[first], report=report,
    )
    return out, info


def collapse_by_group(panel: Panel, *, func: str, collapse: str, cluster: str | Sequence[str] | None,
                      constant: dict[str, np.ndarray | None] | None = None) -> tuple[Panel, CollapseInfo]:
    """Collapse to cells of the treatment-level group: ``cluster`` if given, else the cohorts.

    The shared entry point of ``collapse=`` in :func:`didx.did2x2`, :func:`didx.twfe` and
    :func:`didx.event_study`.
    """
    weighted = check_collapse(func, collapse)
    cl = as_list(cluster)
    if len(cl) > 1:
        raise InvalidOptionError(
            f"{func}: collapse={collapse!r} groups by one cluster column (the level at which treatment is "
            f"assigned); got cluster={cl!r}. Fix: pass a single column."
        )
    if cl:
        return collapse_panel(panel, func=func, group_codes=panel.codes[cl[0]], group_name=cl[0],
                              weighted=weighted, constant=constant)
    if panel.cohort is None:
        raise InvalidOptionError(
            f"{func}: collapse={collapse!r} needs the groups at which treatment is assigned. Fix: pass "
            f"cluster=<that column> (e.g. the state); with a treated-group/control split only there would be "
            f"just 4 cells and no degrees of freedom left for inference."
        )
    codes, labels = cohort_groups(panel)
    return collapse_panel(panel, func=func, group_codes=codes, group_name="cohort", weighted=weighted,
                          constant=constant, group_labels=labels)
