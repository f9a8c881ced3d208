"""Pass 2 for a panel stored as a sorted grid: the unit moments from DuckDB's scan streamed in Arrow batches.

Most panel files list every unit in every period, sorted by unit and then period (row ``i * T + p`` is unit ``i`` in
period ``p``). For such a file the unit-level pivot of :func:`didx.engines.plan.moments_sql` (a hash aggregation
over every unit, which dominates the engine's cost) is unnecessary: consecutive blocks of ``T`` rows already are the
units. :func:`grid_moments` reads the role columns through DuckDB in Arrow batches of about a million rows (so
memory stays bounded whatever the file's size), checks the layout block by block, and forms the same sums as the SQL
plan with numpy: per cohort, unit counts, sums of the centred outcomes and their T x T sums of products (one
matrix product per cohort and batch). The result has the SQL plan's columns, so everything downstream is unchanged.

It applies only when it cannot change a number: a DuckDB input whose pass 1 dropped no row, a numeric unit column,
no ``cluster=``, and rows a multiple of the number of periods. The layout is verified, not assumed: every block of
``T`` rows must hold one unit, the periods in order and one cohort, and units must increase from block to block
(so no unit appears twice). At the first departure it returns None and the caller runs the SQL plan, which also
raises the typed errors (duplicates, a varying cohort) the departure may stand for. Spark keeps the SQL plan: on a
cluster the rows must stay where they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH_ROWS = 1 << 20
"""Rows per Arrow batch (about 32 MB for the four role columns)."""


def applies(src: Any, *, all_kept: bool, unit: str | None, cluster: str | None, n_rows: int, n_periods: int) -> bool:
    """Whether the grid stream may be tried (see the module docstring)."""
    return (src.stream is not None and all_kept and unit is not None and cluster is None
            and src.kinds.get(unit) == "numeric" and n_rows % n_periods == 0)


def grid_moments(src: Any, *, y: str, unit: str, time: str, cohort: str, periods: np.ndarray, raw: np.ndarray,
                 codes: np.ndarray, never_code: int, shift: np.ndarray) -> dict[str, np.ndarray] | None:
    """The SQL plan's output columns from a sorted-grid scan, or None when the rows are not such a grid.

    ``raw`` -> ``codes`` maps the finite raw cohort values to cohort codes (anything else: ``never_code``);
    ``shift[code, p]`` centres period ``p`` of cohort ``code`` (pass 1's cell means).
    """
    q = src.quote
    T = int(periods.shape[0])
    acc = _Sums(T, shift, raw, codes, never_code, periods)
    carry: list[np.ndarray] = []
    sql = f"SELECT {q(unit)}, {q(time)}, {q(cohort)}, CAST({q(y)} AS DOUBLE) FROM {src.table}"
    for batch in src.stream(sql, BATCH_ROWS):
        cols = [np.asarray(batch.column(j).to_numpy(zero_copy_only=False)) for j in range(4)]
        size, start = cols[0].shape[0], 0
        if carry:  # a unit split between two batches: its block is stitched from both
            start = min(T - carry[0].shape[0], size)
            carry = [np.concatenate([a, b[:start]]) for a, b in zip(carry, cols, strict=True)]
            if carry[0].shape[0] < T:
                continue
            if not acc.add(*carry):
                return None
        stop = start + (size - start) // T * T
        if stop > start and not acc.add(*(c[start:stop] for c in cols)):
            return None
        carry = [c[stop:] for c in cols] if stop < size else []
    if carry or acc.last_unit is None:
        return None
    return _columns(acc.n, acc.S, acc.P, T)


class _Sums:
    """The per-cohort sums accumulated block by block, and the layout checks."""

    def __init__(self, T: int, shift: np.ndarray, raw: np.ndarray, codes: np.ndarray, never_code: int,
                 periods: np.ndarray) -> None:
        G = int(shift.shape[0])
        self.T, self.shift, self.raw, self.codes, self.never_code, self.periods = T, shift, raw, codes, never_code, \
            periods
        self.n = np.zeros(G, dtype=np.int64)
        self.S = np.zeros((G, T))
        self.P = np.zeros((G, T, T))
        self.last_unit: Any = None

    def add(self, u: np.ndarray, t: np.ndarray, g: np.ndarray, y: np.ndarray) -> bool:
        """Add whole units (rows a multiple of T); False at the first departure from the sorted grid."""
        T = self.T
        U, tt, gg, Y = (c.reshape(-1, T) for c in (u, t, g, y))
        first = U[:, 0]
        if self.last_unit is not None and not first[0] > self.last_unit:
            return False
        if not bool((first[1:] > first[:-1]).all()) or not bool((first[:, None] == U).all()):
            return False
        if not bool((tt == self.periods).all()):
            return False
        g0 = gg[:, 0]
        same = gg == g0[:, None]
        if not bool(same.all()) and (gg.dtype.kind != "f" or not bool((same | (np.isnan(gg) & np.isnan(g0)[:, None]))
                                                                           .all())):
            return False
        self.last_unit = first[-1]
        gc = _codes(g0, self.raw, self.codes, self.never_code)
        for k in np.unique(gc):
            D = Y[gc == k] - self.shift[k]
            self.n[k] += D.shape[0]
            self.S[k] += D.sum(axis=0)
            self.P[k] += D.T @ D
        return True


def _codes(g: np.ndarray, raw: np.ndarray, codes: np.ndarray, never_code: int) -> np.ndarray:
    """Cohort codes of raw cohort values (one per unit)."""
    out = np.full(g.shape[0], never_code, dtype=np.int64)
    if raw.size == 0:
        return out
    gf = g.astype(np.float64)
    pos = np.clip(np.searchsorted(raw, gf), 0, raw.size - 1)
    hit = raw[pos] == gf
    out[hit] = codes[pos[hit]]
    return out


def _columns(n: np.ndarray, S: np.ndarray, P: np.ndarray, T: int) -> dict[str, np.ndarray]:
    """The accumulated sums laid out as the SQL plan's output (one row per cohort present, every period
    observed)."""
    k = np.flatnonzero(n > 0)
    zeros = np.zeros(k.shape[0], dtype=np.int64)
    out: dict[str, np.ndarray] = {"gc": k.astype(np.int64), "bad_g": zeros, "bad_dup": zeros, "bad_cl": zeros,
                                  "pattern": np.full(k.shape[0], (1 << T) - 1, dtype=np.int64), "n": n[k]}
    for p in range(T):
        out[f"s{p}"] = S[k, p]
    for p in range(T):
        for s in range(p, T):
            out[f"m{p}_{s}"] = P[k, p, s]
    return out
