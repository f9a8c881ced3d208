"""Sun-Abraham design: which cohort x relative-period cells get a dummy, and the aggregation weights.

Follows fixest's ``sunab()`` (lrberge/fixest ``R/did.R``): the relative period is ``period - cohort`` in the
units of the time column; a cohort observed only at relative periods >= 0 is *always treated* and removed; a
cohort observed only at relative periods < 0 (and the never treated) is a *reference* cohort (no dummies, it
identifies the time effects); every other cohort gets one dummy per observed relative period except the
reference periods ``ref`` (default -1). Aggregations (fixest's ``aggregate.fixest``) weight the cell
coefficients by the cell sizes in the estimation sample (sums of weights if weighted), held fixed:
``theta = s' b`` and ``Var(theta) = s' V s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def fmt_value(v: float) -> str:
    """A period or cohort value as fixest prints it (integers without a decimal point)."""
    f = float(v)
    if np.isfinite(f) and f == int(f):
        return str(int(f))
    return repr(f)


@dataclass(frozen=True)
class Cells:
    """The interaction cells of the saturated regression.

    ``cohort``/``event_time`` per cell (ordered by event time, then cohort, as fixest), ``names`` the
    regressor names ``"<time>::<e>:cohort::<g>"`` and ``index`` the cell of each row (-1: no dummy).
    """

    cohort: np.ndarray
    event_time: np.ndarray
    names: tuple[str, ...]
    index: np.ndarray

    @property
    def k(self) -> int:
        return int(self.cohort.shape[0])


def make_cells(g: np.ndarray, rel: np.ndarray, ref_cohort: np.ndarray, ref: Sequence[float],
               time_name: str) -> Cells:
    """Cells for rows with finite, non-reference cohort ``g`` and relative period ``rel`` not in ``ref``."""
    use = np.isfinite(g) & ~ref_cohort & ~np.isin(rel, np.asarray(ref, dtype=float))
    rows = np.flatnonzero(use)
    pairs = np.column_stack([rel[rows], g[rows]]) if rows.size else np.empty((0, 2))
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)  # lexicographic: event time, then cohort
    index = np.full(g.shape[0], -1, dtype=np.int64)
    index[rows] = np.asarray(inv).reshape(-1)
    names = tuple(f"{time_name}::{fmt_value(e)}:cohort::{fmt_value(c)}" for e, c in uniq)
    return Cells(cohort=uniq[:, 1].copy(), event_time=uniq[:, 0].copy(), names=names, index=index)


@dataclass(frozen=True)
class Aggregation:
    """Rows of ``A`` (over the regression's coefficients) with their names and per-row info."""

    names: tuple[str, ...]
    matrix: np.ndarray
    event_time: np.ndarray
    group: np.ndarray
    n_cells: np.ndarray


def aggregate_matrix(kind: str, coef_names: Sequence[str], cells: Cells, size: np.ndarray,
                     time_name: str) -> Aggregation:
    """Aggregation weights over ``coef_names`` (cells dropped for collinearity are skipped).

    ``size`` is the number of observations (or sum of weights) in each cell. ``kind``: ``"period"`` (one row
    per relative period), ``"att"`` (one row: all post cells, e >= 0) or ``"cohort"`` (post cells by cohort).
    """
    pos = {n: j for j, n in enumerate(coef_names)}
    kept = np.array([n in pos for n in cells.names], dtype=bool)
    col = np.array([pos.get(n, -1) for n in cells.names], dtype=np.int64)
    post = cells.event_time >= 0
    if kind == "period":
        keys = np.unique(cells.event_time[kept])
        groups = [(f"{time_name}::{fmt_value(e)}", kept & (cells.event_time == e), float(e), np.nan) for e in keys]
    elif kind == "att":
        groups = [("ATT", kept & post, np.nan, np.nan)]
    elif kind == "cohort":
        keys = np.unique(cells.cohort[kept & post])
        groups = [(f"cohort::{fmt_value(c)}", kept & post & (cells.cohort == c), np.nan, float(c)) for c in keys]
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    A = np.zeros((len(groups), len(coef_names)))
    for r, (_, m, _, _) in enumerate(groups):
        s = size[m]
        A[r, col[m]] = s / s.sum()
    return Aggregation(names=tuple(x[0] for x in groups), matrix=A,
                       event_time=np.array([x[2] for x in groups], dtype=float),
                       group=np.array([x[3] for x in groups], dtype=float),
                       n_cells=np.array([int(x[1].sum()) for x in groups], dtype=np.int64))
