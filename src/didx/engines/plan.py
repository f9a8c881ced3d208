"""The plans: SQL text generated once from a description of the roles, run unchanged by DuckDB and Spark SQL.

Two passes over the rows (``shared/design/SCALE.md``):

1. :func:`cells_sql` — rows grouped by (period, raw cohort, drop reason): counts, outcome sums and ranges. It gives
   the periods, the cohorts, every dropped row by reason, and the cell means used to centre the outcome.
2. :func:`moments_sql` — one row per unit (its observation pattern, cohort, cluster and outcomes by period, the
   checks: duplicate periods, a cohort or cluster varying within the unit), then grouped by (cohort, observation
   pattern[, cluster]): unit counts, sums of the centred outcomes and their T x T sums of products. The centring
   (each period on its cohort's cell mean from pass 1) keeps the sums of products accurate when the outcome's
   level is large against its spread.

Only standard SQL is used (CASE, CAST, SUM/MIN/MAX, GROUP BY, WITH), so one text serves both engines; they differ
in the identifier quote only. Numbers enter the text as ``CAST('<repr>' AS DOUBLE)``: exact in both engines (a
bare ``0.1`` is a DECIMAL in Spark).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# drop reasons, in the order the in-memory panel applies them (didx._panel._filter_rows)
REASONS = ("missing time", "infinite time", "missing unit", "missing outcome", "infinite outcome",
           "missing cluster", "missing treated group")
KEEP = 0
MAX_BITS = 62  # periods + cohorts: observation patterns and cohorts are bit masks in a BIGINT


def lit(x: float) -> str:
    """A double literal both engines read exactly."""
    v = float(x)
    if v.is_integer() and abs(v) < 2**53:
        return f"CAST({int(v)} AS DOUBLE)"
    return f"CAST('{v!r}' AS DOUBLE)"


@dataclass(frozen=True)
class Roles:
    """Column names of the roles (as in the data) and whether unit / cluster are numeric (NaN = missing)."""

    y: str
    time: str
    unit: str | None  # None: no unit column (the pooled 2x2)
    cohort: str
    cluster: str | None
    unit_numeric: bool
    cluster_numeric: bool
    treat_mode: bool = False  # the cohort column is a 0/1 treated-group dummy (did2x2): missing is dropped


_INF = "CAST('Infinity' AS DOUBLE)"


def _missing(col: str, numeric: bool) -> str:
    return f"({col} IS NULL OR isnan(CAST({col} AS DOUBLE)))" if numeric else f"({col} IS NULL)"


def _rows(r: Roles, q: Callable[[str], str], table: str) -> str:
    """The role columns renamed, with the drop reason of each row (0: kept)."""
    t, y, g = (f"{q(c)}" for c in (r.time, r.y, r.cohort))
    u = "NULL" if r.unit is None else q(r.unit)
    whens = [f"WHEN {_missing(t, True)} THEN 1", f"WHEN abs(CAST({t} AS DOUBLE)) = {_INF} THEN 2",
             *([f"WHEN {_missing(u, r.unit_numeric)} THEN 3"] if r.unit is not None else []),
             f"WHEN {_missing(y, True)} THEN 4", f"WHEN abs(CAST({y} AS DOUBLE)) = {_INF} THEN 5"]
    cl = "NULL"
    if r.cluster is not None:
        cl = q(r.cluster)
        whens.append(f"WHEN {_missing(cl, r.cluster_numeric)} THEN 6")
    if r.treat_mode:
        whens.append(f"WHEN {_missing(g, True)} THEN 7")
    reason = "CASE " + " ".join(whens) + " ELSE 0 END"
    return (f"SELECT CAST({t} AS DOUBLE) AS didx_t, CAST({g} AS DOUBLE) AS didx_g, CAST({y} AS DOUBLE) AS didx_y, "
            f"{u} AS didx_u, {cl} AS didx_cl, {reason} AS didx_reason FROM {table}")


def cells_sql(r: Roles, q: Callable[[str], str], table: str) -> str:
    """Pass 1: (period, raw cohort, reason) -> rows, outcome sum / min / max over the kept rows."""
    return (f"SELECT didx_t AS t, didx_g AS g, didx_reason AS reason, CAST(COUNT(*) AS BIGINT) AS n, "
            f"SUM(CASE WHEN didx_reason = 0 THEN didx_y END) AS sy, "
            f"MIN(CASE WHEN didx_reason = 0 THEN didx_y END) AS ymin, "
            f"MAX(CASE WHEN didx_reason = 0 THEN didx_y END) AS ymax "
            f"FROM ({_rows(r, q, table)}) didx_r GROUP BY didx_t, didx_g, didx_reason")


def _key(x: float) -> str:
    """A value to compare a column with: an integer literal where exact (no cast of the column per row)."""
    v = float(x)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else lit(v)


def _case(expr: str, pairs: Sequence[tuple[float, str]], default: str) -> str:
    if not pairs:
        return default
    return f"CASE {expr} " + " ".join(f"WHEN {_key(v)} THEN {out}" for v, out in pairs) + f" ELSE {default} END"


def _kept_rows(r: Roles, q: Callable[[str], str], table: str, all_kept: bool) -> str:
    """The kept rows with the role columns renamed; when pass 1 found no dropped row, straight from the table
    (no per-row reason test)."""
    if not all_kept:
        return f"SELECT * FROM ({_rows(r, q, table)}) a WHERE didx_reason = 0"
    cl = q(r.cluster) if r.cluster is not None else "NULL"
    return (f"SELECT {q(r.time)} AS didx_t, {q(r.cohort)} AS didx_g, CAST({q(r.y)} AS DOUBLE) AS didx_y, "
            f"{'NULL' if r.unit is None else q(r.unit)} AS didx_u, {cl} AS didx_cl FROM {table}")


def moments_sql(r: Roles, q: Callable[[str], str], table: str, *, periods: np.ndarray, cohort_raw: np.ndarray,
                cohort_code: np.ndarray, never_code: int, shift: np.ndarray, all_kept: bool = False) -> str:
    """Pass 2: the kept rows pivoted to one row per unit, grouped by (cohort code, observation pattern, checks[,
    cluster]).

    ``cohort_raw`` -> ``cohort_code`` maps every raw finite cohort value to its code (anything else: never
    treated, ``never_code``); ``shift[code, p]`` is the centring value of period ``p`` in cohort ``code``.
    Output columns: gc, bad_g, bad_dup, bad_cl, pattern, [cl], n, s<p> (sum of centred outcomes), m<p>_<s> (sum of
    products, p <= s). The pivot's aggregates are few on purpose (one bit_or for the observation pattern, one sum
    per period): they dominate the cost.
    """
    T = int(periods.shape[0])
    G = int(shift.shape[0])
    # one bit per period (bits 0..T-1) and one per cohort code (bits T..T+G-1): a single bit_or per unit gives its
    # observation pattern and whether its cohort varies; COUNT(*) against the pattern's popcount finds duplicates
    bit = _case("didx_t", [(float(p), str(2**j)) for j, p in enumerate(periods)], "0")
    gbit = _case("didx_g", [(float(v), str(2 ** (T + int(c)))) for v, c in zip(cohort_raw, cohort_code, strict=True)],
                 str(2 ** (T + never_code)))
    rows = (f"SELECT didx_u, didx_y, didx_cl, CAST({bit} + {gbit} AS BIGINT) AS didx_bits, "
            f"CAST({bit} AS BIGINT) AS didx_bit FROM ({_kept_rows(r, q, table, all_kept)}) a")
    unit_cols = ["CAST(COUNT(*) AS BIGINT) AS n_keep", "bit_or(didx_bits) AS bits"]
    if r.cluster is not None:
        unit_cols += ["MIN(didx_cl) AS clmin", "MAX(didx_cl) AS clmax"]
    unit_cols += [f"SUM(CASE WHEN didx_bit = {2**p} THEN didx_y END) AS y{p}" for p in range(T)]
    units = f"SELECT {', '.join(unit_cols)} FROM ({rows}) b GROUP BY didx_u"
    gcode = _case(f"CAST(bits - (bits % {2**T}) AS DOUBLE)",
                  [(float(2 ** (T + g)), str(g)) for g in range(G)], "-1")  # -1: several cohorts
    units = f"SELECT *, {gcode} AS gc FROM ({units}) u"
    d_cols = [
        "gc",
        f"CASE WHEN bit_count(CAST(bits - (bits % {2**T}) AS BIGINT)) > 1 THEN 1 ELSE 0 END AS bad_g",
        f"CASE WHEN n_keep <> bit_count(CAST(bits % {2**T} AS BIGINT)) THEN 1 ELSE 0 END AS bad_dup",
        ("CASE WHEN clmin <> clmax THEN 1 ELSE 0 END AS bad_cl" if r.cluster is not None else "0 AS bad_cl"),
        f"CAST(bits % {2**T} AS BIGINT) AS pattern",
    ]
    if r.cluster is not None:
        d_cols.append("clmin AS cl")
    for p in range(T):
        m = _case("gc", [(float(g), lit(shift[g, p])) for g in range(G)], "CAST(0 AS DOUBLE)")
        d_cols.append(f"COALESCE(y{p} - {m}, CAST(0 AS DOUBLE)) AS d{p}")
    d = f"SELECT {', '.join(d_cols)} FROM ({units}) c"
    keys = ["gc", "bad_g", "bad_dup", "bad_cl", "pattern", *(["cl"] if r.cluster is not None else [])]
    out = [*keys, "CAST(COUNT(*) AS BIGINT) AS n"]
    out += [f"SUM(d{p}) AS s{p}" for p in range(T)]
    out += [f"SUM(d{p} * d{s}) AS m{p}_{s}" for p in range(T) for s in range(p, T)]
    return f"SELECT {', '.join(out)} FROM ({d}) e GROUP BY {', '.join(keys)}"


def cell_moments_sql(r: Roles, q: Callable[[str], str], table: str, *, periods: np.ndarray,
                     cohort_raw: np.ndarray, cohort_code: np.ndarray, never_code: int, shift: np.ndarray) -> str:
    """The kept rows grouped by (period, cohort code[, cluster]): rows, and sums and sums of squares of the outcome
    centred on its cell mean from pass 1 (the pooled 2x2's cells; no unit)."""
    gc = _case("didx_g", [(float(v), str(int(c))) for v, c in zip(cohort_raw, cohort_code, strict=True)],
               str(never_code))
    tc = _case("didx_t", [(float(p), str(j)) for j, p in enumerate(periods)], "-1")
    m = "CASE " + " ".join(f"WHEN gc = {g} AND tc = {j} THEN {lit(shift[g, j])}"
                           for g in range(shift.shape[0]) for j in range(shift.shape[1])) + " ELSE 0 END"
    keys = ["tc", "gc", *(["didx_cl"] if r.cluster is not None else [])]
    return (f"SELECT {', '.join(keys)}, CAST(COUNT(*) AS BIGINT) AS n, SUM(d) AS s, SUM(d * d) AS ss FROM "
            f"(SELECT *, didx_y - {m} AS d FROM (SELECT didx_y, didx_cl, {gc} AS gc, {tc} AS tc FROM "
            f"({_rows(r, q, table)}) a WHERE didx_reason = 0) b) c GROUP BY {', '.join(keys)}")


def lost_units_sql(r: Roles, q: Callable[[str], str], table: str) -> str:
    """Units left with no kept row, counted by the last reason that removed one of their rows (run only when pass
    1 found dropped rows)."""
    return (f"SELECT last_reason, CAST(COUNT(*) AS BIGINT) AS n FROM (SELECT didx_u, MAX(didx_reason) AS last_reason, "
            f"SUM(CASE WHEN didx_reason = 0 THEN 1 ELSE 0 END) AS n_keep FROM ({_rows(r, q, table)}) a "
            f"WHERE NOT {_missing('didx_u', r.unit_numeric)} GROUP BY didx_u) b WHERE n_keep = 0 GROUP BY last_reason")


def duplicate_example_sql(r: Roles, q: Callable[[str], str], table: str) -> str:
    """One (unit, period) that appears twice among the kept rows (the error path only)."""
    return (f"SELECT didx_u AS u, didx_t AS t FROM ({_rows(r, q, table)}) a WHERE didx_reason = 0 "
            f"GROUP BY didx_u, didx_t HAVING COUNT(*) > 1 LIMIT 1")


def varying_example_sql(r: Roles, q: Callable[[str], str], table: str, cohort_raw: np.ndarray,
                        cohort_code: np.ndarray, never_code: int) -> str:
    """One unit whose cohort code varies among its kept rows (the error path only), with two of its codes."""
    gc = _case("didx_g", [(float(v), str(int(c))) for v, c in zip(cohort_raw, cohort_code, strict=True)],
               str(never_code))
    return (f"SELECT didx_u AS u, MIN({gc}) AS lo, MAX({gc}) AS hi FROM ({_rows(r, q, table)}) a "
            f"WHERE didx_reason = 0 GROUP BY didx_u HAVING MIN({gc}) <> MAX({gc}) LIMIT 1")


# ----------------------------------------------------------------------------------------------- a 0/1 treatment
def _kept_cond(q: Callable[[str], str], *, y: str, time: str, unit: str, unit_numeric: bool) -> str:
    """A row that pass 1 keeps (time, unit and outcome present and finite)."""
    t, yy, u = q(time), q(y), q(unit)
    return (f"NOT {_missing(t, True)} AND abs(CAST({t} AS DOUBLE)) <> {_INF} AND NOT {_missing(u, unit_numeric)} "
            f"AND NOT {_missing(yy, True)} AND abs(CAST({yy} AS DOUBLE)) <> {_INF}")


def timing_table(q: Callable[[str], str], table: str, *, y: str, time: str, unit: str, treat: str,
                 unit_numeric: bool, name: str) -> str:
    """The table with each unit's first period with ``treat = 1`` among its kept rows (NULL: never treated) as
    column ``name``: a per-unit minimum joined back, so the cohort plans run on a 0/1 treatment (a derived table
    to select from)."""
    keep = _kept_cond(q, y=y, time=time, unit=unit, unit_numeric=unit_numeric)
    first = (f"SELECT {q(unit)} AS didx_uk, MIN(CASE WHEN {keep} AND CAST({q(treat)} AS DOUBLE) = 1 THEN "
             f"CAST({q(time)} AS DOUBLE) END) AS {q(name)} FROM {table} GROUP BY {q(unit)}")
    # a group-by joined back (a hash aggregate and a hash join: cheaper than a window's sort by unit)
    return f"(SELECT a.*, b.{q(name)} FROM {table} a LEFT JOIN ({first}) b ON a.{q(unit)} = b.didx_uk) didx_w"


def treat_check_sql(q: Callable[[str], str], derived: str, *, y: str, time: str, unit: str, treat: str,
                    unit_numeric: bool, first: str) -> str:
    """Among the kept rows: treatments missing, not 0/1, and switching off after the first treated period."""
    keep = _kept_cond(q, y=y, time=time, unit=unit, unit_numeric=unit_numeric)
    d, t, f = f"CAST({q(treat)} AS DOUBLE)", f"CAST({q(time)} AS DOUBLE)", q(first)
    return (f"SELECT SUM(CASE WHEN {_missing(q(treat), True)} THEN 1 ELSE 0 END) AS n_missing, "
            f"SUM(CASE WHEN {d} <> 0 AND {d} <> 1 THEN 1 ELSE 0 END) AS n_bad, "
            f"SUM(CASE WHEN {d} = 0 AND {f} IS NOT NULL AND {t} >= {f} THEN 1 ELSE 0 END) AS n_switch "
            f"FROM {derived} WHERE {keep}")


def treat_values_sql(q: Callable[[str], str], table: str, treat: str) -> str:
    """A few values of a treatment column that are not 0/1 (the error path only)."""
    d = f"CAST({q(treat)} AS DOUBLE)"
    return f"SELECT DISTINCT {d} AS v FROM {table} WHERE {d} <> 0 AND {d} <> 1 ORDER BY v LIMIT 5"


def switch_example_sql(q: Callable[[str], str], derived: str, *, y: str, time: str, unit: str, treat: str,
                       unit_numeric: bool, first: str) -> str:
    """One kept row untreated after its unit's first treated period (the error path only)."""
    keep = _kept_cond(q, y=y, time=time, unit=unit, unit_numeric=unit_numeric)
    t = f"CAST({q(time)} AS DOUBLE)"
    return (f"SELECT {q(unit)} AS u, {t} AS t, {q(first)} AS f FROM {derived} WHERE {keep} AND "
            f"CAST({q(treat)} AS DOUBLE) = 0 AND {q(first)} IS NOT NULL AND {t} >= {q(first)} LIMIT 1")
