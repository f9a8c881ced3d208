"""Options, sample report and cluster codes shared by :func:`~didx.imputation` and :func:`~didx.did2s`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from didx._errors import DataError, InvalidOptionError
from didx._panel import Panel
from didx._sample import Dropped, SampleReport
from didx.inference.contract import ClusterCodes


def check_distinct(func: str, arg: str, value: Any) -> list[str]:
    """A column-or-columns argument as a list of names, each once."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence) or not all(isinstance(c, str) for c in names):
        raise InvalidOptionError(
            f"The {arg!r} parameter of {func} must be a column name or a list of column names. Got {value!r}."
        )
    seen: set[str] = set()
    for c in names:
        if c in seen:
            raise InvalidOptionError(
                f"{func}: {arg}={list(names)!r} names the column {c!r} twice (a duplicated column makes the model "
                f"singular). Fix: list each column once."
            )
        seen.add(c)
    return list(names)


def column_key(arg: Any) -> str:
    """The column name a (checked) column argument resolves to: itself, or the ``str`` of an integer label, as
    :func:`didx._validate.column_name` resolves it for :func:`~didx._panel.build_panel` (``panel.names`` and
    ``panel.codes`` are keyed by these names)."""
    return arg if isinstance(arg, str) else str(arg)


def fe_option(func: str, fe: Any, unit: str, time: str) -> tuple[str, ...]:
    """The first stage's fixed-effect columns as column names: ``fe``, by default ``(unit, time)``."""
    names = check_distinct(func, "fe", fe)
    if fe is not None and not names:
        raise InvalidOptionError(
            f"{func}: fe= is empty; the first stage needs at least one fixed effect. Fix: leave fe= out for "
            f"[{unit!r}, {time!r}], or list the columns."
        )
    return tuple(names) if names else (column_key(unit), column_key(time))


def cluster_option(func: str, cluster: Any) -> str | None:
    """One cluster column (the variances of this family cluster on one column)."""
    if cluster is None or isinstance(cluster, str):
        return cluster
    raise InvalidOptionError(
        f"The 'cluster' parameter of {func} must be one column name (the variance clusters on one column). "
        f"Got {cluster!r}. Fix: pass one column, e.g. cluster='state'."
    )


def check_panel_columns(func: str, panel: Panel, fe: Sequence[str], cluster: str | None) -> None:
    """For a panel built elsewhere: every fixed-effect and cluster column must have codes in it."""
    have = {panel.names.get("unit"), panel.names.get("time"), *panel.codes}
    for arg, cols in (("fe", list(fe)), ("cluster", [cluster] if cluster else [])):
        for c in cols:
            if c not in have:
                raise InvalidOptionError(
                    f"{func}: {arg}={c!r} has no codes in the panel (it has {sorted(str(h) for h in have if h)}). "
                    f"Fix: build the panel with build_panel(..., categorical=[{c!r}]) or cluster={c!r}."
                )


def check_weights(func: str, panel: Panel) -> None:
    """Estimation weights must be positive somewhere among the untreated and among the treated observations."""
    if panel.weights is None or panel.treat is None:
        return
    name = panel.names.get("weights")
    treated = panel.treat == 1
    for rows, what, use in ((~treated, "untreated", "fit the first stage"), (treated, "treated",
                                                                             "weight any effect")):
        if not np.any(panel.weights[rows] > 0):
            raise DataError(
                f"{func}: the weights column {name!r} is zero on every {what} observation, so nothing is left to "
                f"{use}. Fix: give those observations positive weights."
            )


def factor_codes(panel: Panel, name: str) -> np.ndarray:
    """Integer codes of a unit, time, fixed-effect or cluster column on the panel's rows (``name`` as given or
    resolved: an integer label finds the column the panel names by its ``str``)."""
    key = column_key(name)
    if key == panel.names.get("unit") and panel.unit is not None:
        return panel.unit
    if key == panel.names.get("time"):
        return panel.time
    return panel.codes[key]


def cluster_codes(panel: Panel, fe: Sequence[str], cluster: str | None) -> ClusterCodes:
    """The cluster codes captured at fit time: the unit, the fit's cluster column and the first-stage fixed
    effects other than the period (clustering candidates; the variance keeps its own compact codes of every
    fixed effect on the untreated rows)."""
    unit, time = panel.names.get("unit"), panel.names.get("time")
    fe_keys = [column_key(c) for c in fe]
    names = [unit, *(c for c in fe_keys if c != time), *([column_key(cluster)] if cluster else [])]
    stored = {n: factor_codes(panel, n) for n in dict.fromkeys(n for n in names if n is not None)}
    return ClusterCodes(stored, panel.kept_rows, panel.report.n_input_rows, panel.fingerprint)


def lost_rows_report(panel: Panel, lost: np.ndarray, reason: str) -> SampleReport:
    """The panel's sample report with the rows in ``lost`` dropped (and the units left without a row) counted."""
    if not lost.any():
        return panel.report
    assert panel.unit is not None
    kept_units = np.bincount(panel.unit[~lost], minlength=panel.n_units) > 0
    return report_with_lost(panel.report, reason, int(lost.sum()), int(np.count_nonzero(~kept_units)))


def report_with_lost(report: SampleReport, reason: str, n_rows: int, n_units: int) -> SampleReport:
    """``report`` with ``n_rows`` rows (leaving ``n_units`` units without a row) dropped for ``reason``."""
    if n_rows == 0:
        return report
    assert report.n_units is not None
    return SampleReport(n_input_rows=report.n_input_rows, n_obs=report.n_obs - n_rows,
                        n_units=report.n_units - n_units, n_periods=report.n_periods,
                        dropped=(*report.dropped, Dropped(reason, n_rows, n_units)), balanced=report.balanced,
                        n_units_with_gaps=report.n_units_with_gaps, notes=report.notes)
