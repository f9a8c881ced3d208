"""Both passes in one scan for a panel stored as a sorted grid: DuckDB's rows streamed in Arrow batches.

Most panel files list every unit in every period, sorted by unit and then period (row ``i * T + p`` is unit ``i`` in
period ``p``). For such a file the unit-level pivot of :func:`didx.engines.plan.moments_sql` (a hash aggregation
over every unit, which dominates the engine's cost) is unnecessary: consecutive blocks of ``T`` rows already are the
units. :func:`scan` reads the role columns once through DuckDB in Arrow batches of about a million rows (memory
stays bounded whatever the file's size), checks the layout block by block, and accumulates per raw cohort value the
unit count, the mean outcome by period, its T x T centred sums of products and the outcome's range (batches are
combined with the pairwise update of Chan, Golub and LeVeque, so no sum of products is ever formed around a level
far from the data). From these :class:`GridScan` gives pass 1's cell table, which goes through the same checks as
the SQL pass 1 (:func:`didx.engines.stats.pass1`), and then pass 2's columns, centred on pass 1's cell means, so
everything downstream is unchanged.

It applies only when it cannot change a number: a DuckDB input with a numeric unit column, no ``cluster=`` and a
cohort (not a 0/1 group) column. The layout is verified, not assumed: every block of ``T`` rows must hold one unit,
the periods of the first block (finite, in increasing order), one cohort and finite outcomes, and units must
increase from block to block (so no unit appears twice). At the first departure :func:`scan` returns None and the
caller runs the two SQL passes, which also count dropped rows and raise the typed errors (duplicates, a varying
cohort) that the departure may stand for. An unsorted file departs in its first block, so the fall back costs
little. Spark keeps the SQL plan: on a cluster the rows must stay where they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROUTE = "one ordered scan of a sorted grid"
"""Appended to the engine's description (the Engine line of ``summary()``) when the scan produced the moments."""

BATCH_ROWS = 1 << 20
"""Rows per Arrow batch (about 32 MB for the four role columns)."""


def applies(src: Any, *, unit: str | None, cluster: str | None, treat_mode: bool) -> bool:
    """Whether the grid scan may be tried (see the module docstring)."""
    return (src.stream is not None and unit is not None and cluster is None and not treat_mode
            and src.kinds.get(unit) == "numeric")


@dataclass
class _Group:
    """Running statistics of the units of one raw cohort value: count, mean by period, centred sums of products,
    outcome range."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    lo: float
    hi: float

    def merge(self, n: int, mean: np.ndarray, m2: np.ndarray, lo: float, hi: float) -> None:
        total = self.n + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + np.outer(delta, delta) * (self.n * n / total)
        self.mean = self.mean + delta * (n / total)
        self.n = total
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)


@dataclass
class GridScan:
    """What one scan of a sorted grid found: the periods and, per raw cohort value (NaN read as inf: both mean
    never treated), a :class:`_Group`."""

    periods: np.ndarray | None = None
    groups: dict[float, _Group] = field(default_factory=dict)
    last_unit: Any = None

    def add(self, u: np.ndarray, t: np.ndarray, g: np.ndarray, y: np.ndarray) -> bool:
        """Add whole units (rows a multiple of T); False at the first departure from the sorted grid."""
        if self.periods is None:
            first_t = t[:_block(t)]
            # finite periods too: an infinite time is a row pass 1 drops (and counts), not a period
            if (first_t.size < 2 or not bool((first_t[1:] > first_t[:-1]).all())
                    or not bool(np.isfinite(first_t).all())):
                return False
            self.periods = first_t.astype(np.float64)
        T = self.periods.shape[0]
        if u.shape[0] % T:
            return False
        U, tt, gg, Y = (c.reshape(-1, T) for c in (u, t, g, y))
        first = U[:, 0]
        if self.last_unit is not None and not first[0] > self.last_unit:
            return False
        if not bool((first[1:] > first[:-1]).all()) or not bool((first[:, None] == U).all()):
            return False
        lo, hi = float(Y.min()), float(Y.max())  # NaN if any outcome is NaN
        if not bool((tt == self.periods).all()) or not (np.isfinite(lo) and np.isfinite(hi)):
            return False
        g0 = gg[:, 0].astype(np.float64)
        same = gg == g0[:, None]
        if not bool(same.all()) and not bool((same | (np.isnan(gg) & np.isnan(g0)[:, None])).all()):
            return False
        self.last_unit = first[-1]
        g0[np.isnan(g0)] = np.inf  # NaN and inf both code never treated (one key: NaN is no dictionary key)
        for key, rows in _by_value(g0, self.groups):
            Yk = Y[rows]
            mean = Yk.mean(axis=0)
            D = Yk - mean
            stats = (Yk.shape[0], mean, D.T @ D, lo, hi)
            if key in self.groups:
                self.groups[key].merge(*stats)
            else:
                self.groups[key] = _Group(*stats)
        return True

    def cells(self) -> dict[str, np.ndarray]:
        """Pass 1's table (:func:`didx.engines.plan.cells_sql`): every row kept."""
        assert self.periods is not None
        T = self.periods.shape[0]
        keys = list(self.groups)
        grp = [self.groups[k] for k in keys]
        ones = np.ones(T)
        return {"t": np.tile(self.periods, len(keys)), "g": np.repeat(np.array(keys, dtype=np.float64), T),
                "reason": np.zeros(T * len(keys), dtype=np.int64),
                "n": np.repeat(np.array([x.n for x in grp], dtype=np.int64), T),
                "sy": np.concatenate([x.n * x.mean for x in grp]),
                "ymin": np.concatenate([x.lo * ones for x in grp]), "ymax": np.concatenate([x.hi * ones for x in grp])}

    def moments(self, raw: np.ndarray, codes: np.ndarray, never_code: int, shift: np.ndarray) -> dict[str, np.ndarray]:
        """Pass 2's columns (:func:`didx.engines.plan.moments_sql`): one row per cohort code, every period observed,
        the sums centred on ``shift[code]``."""
        assert self.periods is not None
        T = self.periods.shape[0]
        by_code: dict[int, _Group] = {}
        for key, grp in self.groups.items():
            pos = int(np.searchsorted(raw, key)) if np.isfinite(key) else raw.size
            code = int(codes[pos]) if pos < raw.size and raw[pos] == key else never_code
            if code in by_code:
                by_code[code].merge(grp.n, grp.mean, grp.m2, grp.lo, grp.hi)
            else:
                by_code[code] = _Group(grp.n, grp.mean, grp.m2, grp.lo, grp.hi)
        gc = np.array(sorted(by_code), dtype=np.int64)
        out: dict[str, np.ndarray] = {"gc": gc, "pattern": np.full(gc.shape[0], (1 << T) - 1, dtype=np.int64)}
        for name in ("bad_g", "bad_dup", "bad_cl"):
            out[name] = np.zeros(gc.shape[0], dtype=np.int64)
        out["n"] = np.array([by_code[c].n for c in gc], dtype=np.int64)
        d = np.array([by_code[c].mean - shift[c] for c in gc])
        S = out["n"][:, None] * d
        P = np.array([by_code[c].m2 for c in gc]) + out["n"][:, None, None] * d[:, :, None] * d[:, None, :]
        for p in range(T):
            out[f"s{p}"] = S[:, p]
        for p in range(T):
            for s in range(p, T):
                out[f"m{p}_{s}"] = P[:, p, s]
        return out


def _by_value(g: np.ndarray, known: dict[float, _Group]) -> list[tuple[float, np.ndarray]]:
    """The rows of each cohort value (no NaN): comparisons with the values already seen, a sort only when a new
    value appears."""
    out: list[tuple[float, np.ndarray]] = []
    covered = 0
    for key in known:
        rows = g == key
        count = int(rows.sum())
        if count:
            out.append((key, rows))
            covered += count
    if covered < g.shape[0]:
        seen = np.array(list(known), dtype=np.float64)
        for key in np.unique(g[~np.isin(g, seen)]):
            out.append((float(key), g == key))
    return out


def _block(t: np.ndarray) -> int:
    """Rows of the first unit's block: up to the first period that does not increase."""
    steps = np.flatnonzero(~(t[1:] > t[:-1]))
    return int(steps[0]) + 1 if steps.size else int(t.shape[0])


def scan(src: Any, *, y: str, unit: str, time: str, cohort: str) -> GridScan | None:
    """One ordered scan of the role columns; None when the rows are not a sorted grid (module docstring)."""
    q = src.quote
    out = GridScan()
    carry: list[np.ndarray] = []
    sql = (f"SELECT {q(unit)}, CAST({q(time)} AS DOUBLE), CAST({q(cohort)} AS DOUBLE), CAST({q(y)} AS DOUBLE) "
           f"FROM {src.table}")
    for batch in src.stream(sql, BATCH_ROWS):
        cols = [np.asarray(batch.column(j).to_numpy(zero_copy_only=False)) for j in range(4)]
        if cols[0].dtype == object:  # NULLs: pass 1 counts and drops them
            return None
        if out.periods is None:
            cols = [np.concatenate([a, b]) for a, b in zip(carry, cols, strict=True)] if carry else cols
            carry = []
            if _block(cols[1]) == cols[1].shape[0]:  # the first unit may continue in the next batch
                carry = cols
                continue
        size, start = cols[0].shape[0], 0
        T = 0 if out.periods is None else out.periods.shape[0]
        if carry and T:  # a unit split between two batches: its block is stitched from both
            start = min(T - carry[0].shape[0], size)
            carry = [np.concatenate([a, b[:start]]) for a, b in zip(carry, cols, strict=True)]
            if carry[0].shape[0] < T:
                continue
            if not out.add(*carry):
                return None
        T = T or _block(cols[1])
        stop = start + (size - start) // T * T
        if stop > start and not out.add(*(c[start:stop] for c in cols)):
            return None
        carry = [c[stop:] for c in cols] if stop < size else []
    if carry or out.last_unit is None:
        return None
    return out
