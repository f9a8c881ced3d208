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
    table: np.ndarray  # (n cohorts, T): the cell of each cohort x period, -1 for none
    observed: np.ndarray  # relative periods observed in the cohorts with dummies (references included), sorted

    @property
    def k(self) -> int:
        return int(self.cohort.shape[0])


def make_cells(gcode: np.ndarray, time: np.ndarray, gvals: np.ndarray, periods: np.ndarray,
               dummies: np.ndarray, ref: Sequence[float], time_name: str) -> Cells:
    """Cells for the rows of cohorts with ``dummies[c]`` whose relative period is not in ``ref``.

    ``gcode`` is the row's cohort code into ``gvals`` (-1 for never treated), ``time`` its period code into
    ``periods``. Runs in O(n) without sorting the rows: the cells are looked up in a cohort x period table.
    """
    G, T = gvals.shape[0], periods.shape[0]
    if G == 0:
        index = np.full(gcode.shape[0], -1, dtype=np.int64)
        return Cells(np.empty(0), np.empty(0), (), index, np.empty((0, T), dtype=np.int64), np.empty(0))
    key = (gcode + 1) * T + time  # block 0: never treated
    present = np.bincount(key, minlength=(G + 1) * T)[T:].reshape(G, T) > 0
    rel = periods[None, :] - gvals[:, None]
    observed = np.unique(rel[present & dummies[:, None]])
    ok = present & dummies[:, None] & ~np.isin(rel, np.asarray(ref, dtype=float))
    cg, ct = np.nonzero(ok)
    order = np.lexsort((gvals[cg], rel[cg, ct]))  # event time, then cohort (fixest's order)
    cg, ct = cg[order], ct[order]
    table = np.full((G + 1) * T, -1, dtype=np.int64)
    table[(cg + 1) * T + ct] = np.arange(cg.shape[0])
    index = table[key]
    ev = rel[cg, ct]
    coh = gvals[cg]
    names = tuple(f"{time_name}::{fmt_value(e)}:cohort::{fmt_value(c)}" for e, c in zip(ev, coh, strict=True))
    return Cells(cohort=coh.astype(float), event_time=ev.astype(float), names=names, index=index,
                 table=table[T:].reshape(G, T).copy(), observed=observed.astype(float))


@dataclass(frozen=True)
class Aggregation:
    """Rows of ``A`` (over the regression's coefficients) with their names and per-row info."""

    names: tuple[str, ...]
    matrix: np.ndarray
    event_time: np.ndarray
    group: np.ndarray
    n_cells: np.ndarray

    def __post_init__(self) -> None:
        # results keep their aggregations: the arrays are private read-only copies
        for name in ("matrix", "event_time", "group", "n_cells"):
            a = np.array(getattr(self, name), copy=True)
            a.flags.writeable = False
            object.__setattr__(self, name, a)


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
