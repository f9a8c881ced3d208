"""The panel layer: a validated, integer-coded view of a dataframe given column roles.

Every estimator starts here. :func:`build_panel` reads only the columns it needs, codes units and periods as
integers, normalises every common coding of "never treated" (0, NaN, inf, a value beyond the last period) to one
(``inf``), checks the design, and drops rows with missing values *counting them* in the sample report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._frame import Columns, check_outcome_varies, factorize, numeric_column, read_columns
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, cluster_count_check, fmt_value
from didx.inference.contract import Fingerprint

NEVER = np.inf
"""Internal coding of a never-treated cohort."""


@dataclass(frozen=True, eq=False)
class Panel:
    """Validated arrays, one entry per kept row.

    Attributes
    ----------
    y : outcome (float64).
    unit : unit codes 0..n_units-1 (None for repeated cross sections without a unit column).
    time : period codes 0..n_periods-1, in increasing order of ``periods``.
    periods : the period values (numeric time) or positions 0..T-1 (date-like time), increasing.
    period_labels : the original period values, as given.
    cohort : first treated period per row, in the units of ``periods``; ``inf`` for never treated.
    treat : 0/1 treatment indicator per row (given, or derived from the cohort as ``t >= g``).
    covariates : (n, p) float64 matrix.
    weights : sampling weights or None.
    codes : integer codes of categorical columns (clusters, extra fixed effects) by column name.
    kept_rows : position of each kept row in the input frame, or None when all were kept in order
        (``row_index`` gives the positions in both cases).
    grid : True when the rows are sorted by unit and period with every unit observed in every period (row
        ``u * n_periods + t`` is unit ``u`` in period ``t``): arrays reshape to (n_units, n_periods) without a
        scatter.
    """

    y: np.ndarray
    unit: np.ndarray | None
    unit_labels: np.ndarray | None
    time: np.ndarray
    periods: np.ndarray
    period_labels: np.ndarray
    cohort: np.ndarray | None
    treat: np.ndarray | None
    covariates: np.ndarray
    covariate_names: tuple[str, ...]
    weights: np.ndarray | None
    codes: dict[str, np.ndarray]
    kept_rows: np.ndarray | None  # positions in the input frame; None when every row was kept, in order
    report: SampleReport
    names: dict[str, Any] = field(default_factory=dict)
    fingerprint: Fingerprint | None = None  # of the input frame's outcome and unit columns (for with_vcov)
    grid: bool = False  # rows are the balanced unit-major grid: row u * n_periods + t is unit u in period t

    @property
    def all_rows_kept(self) -> bool:
        """True when every input row is in the panel, in input order (row_index is then 0..n-1)."""
        return self.kept_rows is None

    @property
    def row_index(self) -> np.ndarray:
        """Position of each kept row in the input frame (built on demand when every row was kept)."""
        if self.kept_rows is None:
            return np.arange(self.n_obs, dtype=np.int64)
        return self.kept_rows

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_units(self) -> int:
        return 0 if self.unit_labels is None else int(self.unit_labels.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.periods.shape[0])

    def unit_cohort(self) -> np.ndarray:
        """Cohort per unit (``inf`` = never treated)."""
        if self.cohort is None or self.unit is None:
            raise DesignError("This panel has no cohort or no unit column.")
        out = np.full(self.n_units, NEVER)
        out[self.unit] = self.cohort
        return out

    @property
    def is_balanced(self) -> bool:
        return bool(self.report.balanced)


def _code_time(cols: Columns, time: str, func: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Codes, numeric period values, original labels, and whether time is date-like. Missing and infinite values
    get code -1 (an infinite time is no period; the caller counts those rows apart)."""
    arr = cols.arrays[time]
    kind = cols.kinds[time]
    if kind == "numeric":
        values = np.asarray(arr)
        if time in cols.infinite:
            values = np.where(cols.infinite[time], np.nan, values)
        if values.dtype.kind in "iu" and values.size:
            lo, hi = int(values.min()), int(values.max())
            if hi - lo <= 4 * values.shape[0] + 1024:  # integer periods (years, 1..T): a lookup table, no hashing
                codes = np.subtract(values, lo, dtype=np.int64)
                present = np.bincount(codes, minlength=hi - lo + 1) > 0
                if not present.all():
                    np.take(np.cumsum(present) - 1, codes, out=codes)
                uniques = (np.flatnonzero(present) + lo).astype(values.dtype)
                return codes, uniques.astype(np.float64), uniques, False
        codes, uniques = factorize(values, sort=True)
        return codes, uniques.astype(np.float64), uniques, False
    if kind == "datetime":
        codes, uniques = factorize(arr, sort=True)
        return codes, np.arange(uniques.shape[0], dtype=np.float64), uniques, True
    example = next((v for v in arr[:50] if v is not None), None)
    raise DataError(
        f"{func}: the time column {time!r} must be numeric (e.g. a year) or date-like, but it holds "
        f"values such as {example!r}. Fix: convert it, e.g. with pandas.to_datetime or astype(int)."
    )


def _normalise_cohort(
    raw: np.ndarray, kind: str, *, name: str, time: str, periods: np.ndarray, labels: np.ndarray, date_like: bool,
    func: str
) -> np.ndarray:
    """Cohort in the units of ``periods``; every never-treated coding becomes ``inf``.

    Never treated: 0 (unless 0 is a period), NaN, +-inf, or a value after the last period. A value before the
    first period is kept (treated before the data start). Any other value must be a period: a cohort between two
    periods (e.g. 2004.5 with yearly data) would silently become a cohort of its own, so it is an error.
    """
    if date_like:
        if kind != "datetime":
            # allow an all-missing or numeric-never column only if it is entirely never-treated codings
            raise DataError(
                f"{func}: the time column is date-like, so the cohort column {name!r} must hold dates too "
                f"(NaT for never treated). Fix: convert it with pandas.to_datetime."
            )
        dates = raw.astype("datetime64[ns]")
        stamps = labels.astype("datetime64[ns]")
        out = np.full(dates.shape[0], NEVER)
        ok = ~np.isnat(dates)
        pos = np.searchsorted(stamps, dates[ok], side="left")
        inside = (pos < stamps.shape[0]) & (dates[ok] >= stamps[0])
        off = inside & (stamps[np.minimum(pos, stamps.shape[0] - 1)] != dates[ok])
        if off.any():
            _cohort_not_period(func, name, time, np.unique(dates[ok][off]), labels)
        posf = pos.astype(np.float64)
        posf[pos >= periods.shape[0]] = NEVER  # first treated after the last period
        out[ok] = posf
        return out
    if kind != "numeric":
        example = next((v for v in raw[:50] if v is not None), None)
        raise DataError(
            f"{func}: the cohort column {name!r} must be numeric (the first treated period; 0, NaN or inf for "
            f"never treated). It holds values such as {example!r}. Fix: convert it to numbers."
        )
    g = np.array(raw, dtype=np.float64)  # one copy (asarray of integers copies already)
    zero = g == 0
    if zero.any() and periods[0] <= 0 <= periods[-1] and np.any(periods == 0):
        raise DataError(
            f"{func}: the cohort column {name!r} uses 0, but 0 is also a period of the time column, so 0 cannot "
            f"mean 'never treated'. Fix: code never-treated units as NaN or inf in {name!r}."
        )
    never = g > periods[-1]
    never |= zero
    if np.asarray(raw).dtype.kind not in "iub":  # integers hold no NaN or inf
        never |= ~np.isfinite(g)
    g[never] = NEVER
    T = periods.shape[0]
    consecutive = bool(np.all(periods == np.arange(periods[0], periods[0] + T)))  # integers (years, 1..T)
    if consecutive and np.asarray(raw).dtype.kind in "iub":
        return g  # an integer in [first, last] is a period
    with np.errstate(invalid="ignore"):
        if consecutive:
            off = (g != np.floor(g)) & (g >= periods[0])  # never-treated rows are inf: floor(inf) == inf
        else:
            off = ~never & (g >= periods[0]) & ~np.isin(g, periods)
    if off.any():
        _cohort_not_period(func, name, time, np.unique(g[off]), labels)
    return g


def _fmt_period(v: Any) -> str:
    if isinstance(v, np.datetime64):
        stamp = pd.Timestamp(v)
        return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)
    return fmt_value(v)


def _cohort_not_period(func: str, name: str, time: str, values: np.ndarray, labels: np.ndarray) -> None:
    shown = ", ".join(_fmt_period(v) for v in values[:5]) + (", ..." if values.shape[0] > 5 else "")
    which = (f"the value {shown}, which is not one of the periods" if values.shape[0] == 1
             else f"the values {shown}, which are not periods")
    raise DataError(
        f"{func}: the cohort column {name!r} has {which} of {time!r} (between {_fmt_period(labels[0])} and "
        f"{_fmt_period(labels[-1])}). A cohort is the first treated period. Fix: set it to the first period in which "
        f"the unit is observed treated (a value of {time!r}), or code never-treated units as 0, NaN or inf."
    )


@dataclass(frozen=True)
class _Roles:
    """The role arguments of :func:`build_panel`, resolved to column names."""

    y: str
    time: str
    unit: str | None
    cohort: str | None
    treat: str | None
    weights: str | None
    covariates: list[str]
    clusters: list[str]
    categorical: list[str]  # extra fixed effects that are not also clusters


def _read(data: Any, func: str, *, y: Any, time: Any, unit: Any, cohort: Any, treat: Any, covariates: Any,
          weights: Any, cluster: Any, categorical: Any) -> tuple[Columns, _Roles]:
    """Check the role arguments and read their columns (see :func:`didx._frame.read_columns`)."""
    if cohort is not None and treat is not None:
        raise InvalidOptionError(
            f"{func}: give either cohort= (first treated period) or treat= (0/1 indicator), not both: got "
            f"cohort={cohort!r} and treat={treat!r}. Fix: drop one of them."
        )
    if time is None:
        raise InvalidOptionError(
            f"The 'time' parameter of {func} must be a column name (the period). Got None instead. Fix: pass "
            f"time= the period column."
        )
    roles: dict[str, Any] = {"y": y, "time": time, "unit": unit, "cohort": cohort, "treat": treat,
                             "covariates": covariates, "weights": weights, "cluster": cluster, "fe": categorical}
    wanted = [c for r in roles.values() for c in as_list(r)]
    cols = read_columns(data, wanted, func, roles)

    def one(role: str) -> str | None:
        got = cols.roles.get(role, [])
        return got[0] if got else None

    cl_list = list(dict.fromkeys(cols.roles.get("cluster", [])))
    cat_list = [c for c in dict.fromkeys(cols.roles.get("fe", [])) if c not in cl_list]
    names = _Roles(y=cols.roles["y"][0], time=cols.roles["time"][0], unit=one("unit"), cohort=one("cohort"),
                   treat=one("treat"), weights=one("weights"), covariates=list(cols.roles.get("covariates", [])),
                   clusters=cl_list, categorical=cat_list)
    return cols, names


class _Rows:
    """The rows kept so far, and each reason rows were dropped (in order), with the rows it removed."""

    def __init__(self, n: int) -> None:
        self.keep = np.ones(n, dtype=bool)
        self.drops: list[tuple[str, np.ndarray]] = []

    def drop(self, mask: np.ndarray, reason: str) -> None:
        newly = mask & self.keep
        if newly.any():
            self.drops.append((reason, newly))
            self.keep[newly] = False

    def drop_nonfinite(self, values: np.ndarray, infinite: np.ndarray | None, what: str) -> None:
        """Rows holding +-inf (``infinite``, from the column reader) as 'infinite ...', NaN rows as 'missing ...'
        (fixest drops both and says which)."""
        missing = np.isnan(values)
        if infinite is not None:
            missing &= ~infinite
        self.drop(missing, f"missing {what}")
        if infinite is not None:
            self.drop(infinite, f"infinite {what}")

    def drop_coded(self, codes: np.ndarray, infinite: np.ndarray | None, what: str) -> None:
        """The same for a categorical column: code -1 is missing, or infinite where ``infinite``."""
        missing = codes < 0
        if infinite is not None:
            missing &= ~infinite
        self.drop(missing, f"missing {what}")
        if infinite is not None:
            self.drop(infinite, f"infinite {what}")


@dataclass
class _Values:
    """Every role column on all input rows: numbers and integer codes (-1 = missing)."""

    y: np.ndarray
    time_codes: np.ndarray
    time_inf: np.ndarray | None  # rows whose time is +-inf (coded -1 like missing ones, counted apart)
    infinite: dict[str, np.ndarray | None]  # column -> rows holding +-inf, None if none: outcome,
    # covariates, weights, unit, clusters and fixed effects
    periods: np.ndarray
    labels: np.ndarray
    date_like: bool
    unit_codes: np.ndarray | None
    unit_labels: np.ndarray | None
    covariates: np.ndarray
    weights: np.ndarray | None
    codes: dict[str, np.ndarray]
    treat: np.ndarray | None
    cohort: np.ndarray | None
    grid: bool = False  # rows sorted by unit and period, every unit in every period (see Panel.grid)


def _values(cols: Columns, r: _Roles, func: str, treat_role: str) -> _Values:
    """Numeric and coded versions of the role columns (type errors name the column and the fix)."""
    yv = numeric_column(cols, r.y, "outcome (y)", func, "Fix: pass a numeric outcome column.")
    time_codes, periods, labels, date_like = _code_time(cols, r.time, func)
    time_inf = cols.infinite.get(r.time)
    unit_codes: np.ndarray | None = None
    unit_labels: np.ndarray | None = None
    grid = False
    if r.unit is not None:
        dense = None
        if cols.kinds[r.unit] == "numeric":
            raw_unit = np.asarray(cols.arrays[r.unit])
            grid = _is_grid(raw_unit, time_codes, periods.shape[0])
            dense = _grid_codes(raw_unit, periods.shape[0]) if grid else _dense_int_codes(raw_unit)
        if dense is not None:  # units already coded 0..N-1 (as in most large panels): used as they are
            unit_codes, unit_labels = dense
        else:
            unit_codes, unit_labels = factorize(_finite_or_nan(cols, r.unit), sort=False)
    cov = np.empty((cols.n_rows, len(r.covariates)))
    for j, c in enumerate(r.covariates):
        cov[:, j] = numeric_column(cols, c, "covariate", func, "Fix: encode it as numbers (dummies).")
    w = None
    if r.weights is not None:
        w = numeric_column(cols, r.weights, "weights", func, "Fix: pass a numeric column of weights.")
    codes: dict[str, np.ndarray] = {}
    for c in [*r.clusters, *r.categorical]:
        codes[c] = (unit_codes if c == r.unit and unit_codes is not None
                    else factorize(_finite_or_nan(cols, c), sort=False)[0])
    tr = None
    if r.treat is not None:
        tr = numeric_column(cols, r.treat, treat_role, func, f"Fix: pass a 0/1 {treat_role} indicator.")
    g = None
    if r.cohort is not None and periods.shape[0]:
        g = _normalise_cohort(cols.arrays[r.cohort], cols.kinds[r.cohort], name=r.cohort, time=r.time,
                              periods=periods,
                              labels=labels, date_like=date_like, func=func)
    elif r.cohort is not None:
        g = np.full(cols.n_rows, NEVER)
    infinite = {c: cols.infinite.get(c) for c in [r.y, *r.covariates, *([r.weights] if r.weights else []),
                                                  *([r.unit] if r.unit else []), *r.clusters, *r.categorical]}
    return _Values(y=yv, time_codes=time_codes, time_inf=time_inf, infinite=infinite, periods=periods,
                   labels=labels, date_like=date_like, unit_codes=unit_codes, unit_labels=unit_labels, covariates=cov,
                   weights=w, codes=codes, treat=tr, cohort=g, grid=grid)


def _finite_or_nan(cols: Columns, name: str) -> np.ndarray:
    """A categorical column with +-inf read as missing (inf is no unit or cluster label)."""
    arr = cols.arrays[name]
    return np.where(cols.infinite[name], np.nan, arr) if name in cols.infinite else arr


def _filter_rows(v: _Values, r: _Roles, func: str, *, zero_weights: str, treat_role: str) -> _Rows:
    """Drop (and record) rows with a missing or infinite value in a role column; refuse values no row may have
    (negative or all-zero weights, a non-binary treatment)."""
    rows = _Rows(v.y.shape[0])
    if not v.grid:  # on the grid every row has a period and an integer unit (see _is_grid)
        rows.drop_coded(v.time_codes, v.time_inf, f"time ({r.time})")
    if v.unit_codes is not None and r.unit is not None and not v.grid:
        rows.drop_coded(v.unit_codes, v.infinite[r.unit], f"unit ({r.unit})")
    rows.drop_nonfinite(v.y, v.infinite[r.y], f"outcome ({r.y})")
    for j, c in enumerate(r.covariates):
        rows.drop_nonfinite(v.covariates[:, j], v.infinite[c], f"covariate ({c})")
    if v.weights is not None and r.weights is not None:
        w = v.weights
        rows.drop_nonfinite(w, v.infinite[r.weights], f"weight ({r.weights})")
        bad = rows.keep & (w < 0)
        if bad.any():
            raise DataError(
                f"{func}: the weights column {r.weights!r} has {int(bad.sum())} negative values "
                f"(e.g. {fmt_value(w[bad][0])}). Fix: weights must be non-negative."
            )
        if rows.drops and rows.keep.any() and not w[rows.keep].any():
            raise DataError(
                f"{func}: the weights column {r.weights!r} is 0 in every row with a value for each role column, so "
                f"no observation has any weight. Fix: pass the intended weights column, or drop weights=."
            )
        if zero_weights == "drop":
            rows.drop(w == 0, f"zero weight ({r.weights})")
    for c, codes in v.codes.items():
        rows.drop_coded(codes, v.infinite[c], f"{'cluster' if c in r.clusters else 'fixed effect'} ({c})")
    if v.treat is not None:
        tr = v.treat
        rows.drop(np.isnan(tr), f"missing {treat_role} ({r.treat})")
        not_binary = rows.keep & (tr != 0.0) & (tr != 1.0)
        bad_vals = np.unique(tr[not_binary]) if not_binary.any() else np.empty(0)
        if bad_vals.size:
            raise DataError(
                f"{func}: the {treat_role} column {r.treat!r} must be 0/1 (or boolean), but it has the value(s) "
                f"{', '.join(fmt_value(float(x)) for x in bad_vals[:5])}. Fix: recode it as a 0/1 indicator "
                f"(for a continuous or fractional treatment, round it or use a different estimator)."
            )
    if not rows.keep.any():
        reasons = "; ".join(f"{int(m.sum())} rows: {why}" for why, m in rows.drops)
        raise DataError(
            f"{func}: no row is left after dropping rows with missing or infinite values ({reasons}). Fix: check "
            f"those columns."
        )
    if rows.drops:  # with every row kept, read_columns checked these rows already
        check_outcome_varies(func, r.y, v.y[rows.keep], " in the estimation sample")
    return rows


@dataclass
class _Kept:
    """The role columns on the kept rows, with units, periods and clusters re-coded to what is present."""

    y: np.ndarray
    time: np.ndarray
    periods: np.ndarray
    labels: np.ndarray
    unit: np.ndarray | None
    unit_labels: np.ndarray | None
    cohort: np.ndarray | None
    treat: np.ndarray | None
    covariates: np.ndarray
    weights: np.ndarray | None
    codes: dict[str, np.ndarray]
    index: np.ndarray | None  # positions of the kept rows in the input; None when every row was kept
    grid: bool = False  # see Panel.grid


def _keep(v: _Values, rows: _Rows, r: _Roles, derive_treat: bool = True) -> _Kept:
    """Take the kept rows and re-code periods, units and clusters to those present (and derive the treatment
    indicator from the cohort unless ``derive_treat`` is False)."""
    all_kept = bool(rows.keep.all())
    idx = np.empty(0, dtype=np.int64) if all_kept else np.flatnonzero(rows.keep)

    def take(a: np.ndarray) -> np.ndarray:
        return a if all_kept else a[idx]

    tk = take(v.time_codes)
    periods, labels = v.periods, v.labels
    # every code of v.time_codes has a row (_code_time codes the values present): re-code only after drops
    present = np.ones(periods.shape[0], dtype=bool) if all_kept else np.bincount(tk, minlength=periods.shape[0]) > 0
    if not present.all():
        tk = (np.cumsum(present) - 1)[tk]
        periods = periods[present]
        labels = labels[present]
    uk: np.ndarray | None = None
    unit_labels: np.ndarray | None = None
    if v.unit_codes is not None and v.unit_labels is not None:
        if all_kept:
            uk, unit_labels = v.unit_codes, v.unit_labels
        else:
            uk, old = factorize(v.unit_codes[idx], sort=False)
            unit_labels = v.unit_labels[old]
    gk = None if v.cohort is None else take(v.cohort)
    trk: np.ndarray | None = None
    if v.treat is not None:
        trk = take(v.treat)
    elif gk is not None and not derive_treat:
        trk = None
    elif gk is not None and all_kept and v.grid:  # no n-length gather of the period values
        trk = (periods >= gk.reshape(-1, periods.shape[0])).astype(np.float64).reshape(-1)
    elif gk is not None:
        trk = (periods[tk] >= gk).astype(np.float64)
    codes = {}
    for c, cv in v.codes.items():
        if c == r.unit and uk is not None:
            codes[c] = uk
        else:
            codes[c] = cv if all_kept else factorize(cv[idx], sort=False)[0]
    cov = take(v.covariates) if r.covariates else np.empty((tk.shape[0], 0))
    return _Kept(y=take(v.y), time=tk, periods=periods, labels=labels, unit=uk, unit_labels=unit_labels, cohort=gk,
                 treat=trk, covariates=cov, weights=None if v.weights is None else take(v.weights), codes=codes,
                 index=None if all_kept else idx, grid=all_kept and v.grid)


def _check_periods(k: _Kept, r: _Roles, func: str) -> None:
    if k.periods.shape[0] < 2:
        raise DesignError(
            f"{func}: the time column {r.time!r} has {k.periods.shape[0]} distinct period(s) after dropping missing "
            f"values; a difference-in-differences needs at least two. Fix: check the time column and the rows "
            f"dropped for missing values."
        )


def _check_units(k: _Kept, r: _Roles, func: str, check_duplicates: bool) -> tuple[bool | None, int | None]:
    """Duplicate (unit, period) rows and cohorts varying within a unit are errors; returns (balanced, units
    with gaps), None without units."""
    if k.unit is None:
        return None, None
    uk, tk, T = k.unit, k.time, k.periods.shape[0]
    n_units = 0 if k.unit_labels is None else k.unit_labels.shape[0]
    if k.grid:  # every unit once in every period, in order: no duplicates, balanced
        if k.cohort is not None:
            g2 = k.cohort.reshape(n_units, T)
            if not (g2 == g2[:, :1]).all():
                _cohort_varies(k, r, func, int(np.flatnonzero((g2 != g2[:, :1]).any(axis=1))[0]))
        return True, None
    counts = np.bincount(uk, minlength=n_units)
    if check_duplicates and counts.max() > 1 and not _distinct_periods(uk, tk, counts, T):
        key = uk * T + tk
        if n_units * T <= 50_000_000:
            dup = np.bincount(key, minlength=n_units * T) > 1
            dkey = int(np.flatnonzero(dup)[0]) if dup.any() else -1
        else:
            s = np.sort(key)
            d = np.flatnonzero(s[1:] == s[:-1])
            dkey = int(s[d[0]]) if d.size else -1
        if dkey >= 0:
            u_lab = k.unit_labels[dkey // T] if k.unit_labels is not None else dkey // T
            n_dup = int(key.shape[0] - np.unique(key).shape[0])
            raise DataError(
                f"{func}: {n_dup} duplicate (unit, time) rows, e.g. {r.unit}={fmt_value(u_lab)} at "
                f"{r.time}={fmt_value(k.labels[dkey % T])}. Each unit may appear once per period. Fix: aggregate "
                f"the duplicates, or if this is a repeated cross section do not pass unit= (or use panel=False)."
            )
    balanced = bool(counts.min() == T)
    n_gaps: int | None = None
    if not balanced:
        tmin = np.full(n_units, T, dtype=np.int64)
        tmax = np.full(n_units, -1, dtype=np.int64)
        np.minimum.at(tmin, uk, tk)
        np.maximum.at(tmax, uk, tk)
        n_gaps = int(np.count_nonzero(tmax - tmin + 1 != counts))
    if k.cohort is not None:
        gk = k.cohort
        first = np.full(n_units, np.nan)
        first[uk] = gk
        varies = first[uk] != gk
        if varies.any():
            _cohort_varies(k, r, func, int(uk[int(np.flatnonzero(varies)[0])]))
    return balanced, n_gaps


def _cohort_varies(k: _Kept, r: _Roles, func: str, unit: int) -> None:
    """The error for a cohort that is not constant within unit code ``unit``."""
    assert k.unit is not None and k.cohort is not None
    u_lab = k.unit_labels[unit] if k.unit_labels is not None else unit
    vals = np.unique(k.cohort[k.unit == unit])
    raise DataError(
        f"{func}: the cohort column {r.cohort!r} varies within unit {fmt_value(u_lab)} (values "
        f"{', '.join(_fmt_cohort(x) for x in vals[:4])}). A cohort is the unit's first treated period "
        f"and must be constant within a unit. Fix: set it to the first period the unit is treated."
    )


def _check_design(k: _Kept, r: _Roles, func: str, require_control: str) -> None:
    """Treated and (where required) control units or observations must exist."""
    if k.cohort is not None:
        treated_units = np.isfinite(k.cohort)
        if not treated_units.any():
            raise DesignError(
                f"{func}: no treated units: every value of the cohort column {r.cohort!r} codes 'never treated' "
                f"(0, NaN, inf or a period after the last one, {fmt_value(k.labels[-1])}). Fix: check the cohort "
                f"column."
            )
        if require_control == "never" and treated_units.all():
            raise DesignError(
                f"{func}: no control units: every unit has a treatment date in {r.cohort!r}, and this estimator "
                f"compares with never-treated units. Fix: use a not-yet-treated control group if the estimator "
                f"offers one, or add never-treated units."
            )
    treated_rows = k.treat == 1 if k.treat is not None else None
    if treated_rows is None and k.cohort is not None and not k.grid:  # not derived (derive_treat=False)
        treated_rows = k.periods[k.time] >= k.cohort
    # on the grid every unit is observed in the last period, so a finite cohort (checked above) has treated rows
    if treated_rows is not None:
        if not treated_rows.any():
            raise DesignError(
                f"{func}: no treated observations: {r.treat or r.cohort!r} is never 1 in the sample. Fix: check the "
                f"treatment column."
            )
        if require_control != "none" and treated_rows.all():
            raise DesignError(
                f"{func}: no control observations: every row is treated in {r.treat or r.cohort!r}. Fix: include "
                f"untreated units or periods."
            )


def _dropped(v: _Values, rows: _Rows) -> tuple[Dropped, ...]:
    """One entry per drop reason; a unit that lost every row is counted once, under the last reason that removed
    one of its rows."""
    lost_by: np.ndarray | None = None
    if v.unit_codes is not None and v.unit_labels is not None and rows.drops:
        n_u = v.unit_labels.shape[0]
        still = np.bincount(v.unit_codes[rows.keep], minlength=n_u) > 0
        last = np.full(n_u, -1, dtype=np.int64)
        for i, (_, mask) in enumerate(rows.drops):
            codes = v.unit_codes[mask]
            last[codes[codes >= 0]] = i
        lost_by = np.bincount(last[~still & (last >= 0)], minlength=len(rows.drops))
    return tuple(Dropped(reason=reason, n_rows=int(mask.sum()), n_units=None if lost_by is None else int(lost_by[i]))
                 for i, (reason, mask) in enumerate(rows.drops))


def build_panel(
    data: Any,
    *,
    func: str,
    y: str,
    time: str,
    unit: str | None = None,
    cohort: str | None = None,
    treat: str | None = None,
    covariates: str | Sequence[str] | None = None,
    weights: str | None = None,
    cluster: str | Sequence[str] | None = None,
    categorical: str | Sequence[str] | None = None,
    require_control: str = "untreated_obs",
    check_duplicates: bool = True,
    zero_weights: str = "keep",
    treat_role: str = "treatment",
    derive_treat: bool = True,
) -> Panel:
    """Validate ``data`` for a DiD design and return a :class:`Panel`.

    Four steps: read and check the role arguments and their columns (:func:`didx._frame.read_columns`: column
    names, integer labels, an outcome that is another role, an empty frame, all-zero weights, overflowing
    values); code the values (types, periods, units, cohorts: a cohort must be a period or code never treated);
    drop rows with missing or infinite values, counting each reason (a constant outcome on the rows left is an
    error, as in fixest); then check the design on the kept rows (two periods, two clusters in each cluster=
    column, no duplicate unit-periods, a cohort constant within a unit, treated and control units).

    ``require_control`` is ``'never'`` (at least one never-treated unit), ``'untreated_obs'`` (at least one
    untreated observation) or ``'none'``. ``zero_weights="drop"`` removes rows whose weight is 0 and counts them
    (as R's ``lm`` and fixest do for regressions, so that ``n``, ``K`` and the clusters count only observations
    that enter the fit); ``"keep"`` leaves them in. ``treat_role`` names the ``treat`` column in messages (e.g.
    ``"group"`` for the 2x2's treated-group indicator). ``derive_treat=False`` leaves ``Panel.treat`` None when
    only a cohort is given (for estimators that use the cohort alone: one n-length array less).
    """
    cols, r = _read(data, func, y=y, time=time, unit=unit, cohort=cohort, treat=treat, covariates=covariates,
                    weights=weights, cluster=cluster, categorical=categorical)
    v = _values(cols, r, func, treat_role)
    rows = _filter_rows(v, r, func, zero_weights=zero_weights, treat_role=treat_role)
    k = _keep(v, rows, r, derive_treat)
    _check_periods(k, r, func)
    for c in r.clusters:  # a cluster-robust covariance needs two clusters, whichever estimator computes it
        cluster_count_check(func, c, int(k.codes[c].max()) + 1 if k.codes[c].size else 0)
    balanced, n_gaps = _check_units(k, r, func, check_duplicates)
    _check_design(k, r, func, require_control)
    n_units = None if k.unit_labels is None else int(k.unit_labels.shape[0])
    report = SampleReport(
        n_input_rows=cols.n_rows, n_obs=int(k.y.shape[0]), n_units=n_units if k.unit is not None else None,
        n_periods=int(k.periods.shape[0]), dropped=_dropped(v, rows), balanced=balanced, n_units_with_gaps=n_gaps,
    )
    return Panel(
        y=k.y, unit=k.unit, unit_labels=k.unit_labels, time=k.time, periods=k.periods, period_labels=k.labels,
        cohort=k.cohort, treat=k.treat, covariates=k.covariates, covariate_names=tuple(r.covariates),
        weights=k.weights, codes=k.codes, kept_rows=k.index, report=report,
        names={"y": r.y, "unit": r.unit, "time": r.time, "cohort": r.cohort, "treat": r.treat, "weights": r.weights,
               "cluster": tuple(r.clusters), "date_like": v.date_like},
        fingerprint=cols.fingerprint(r.y, r.unit), grid=k.grid,
    )


def _distinct_periods(unit: np.ndarray, time: np.ndarray, counts: np.ndarray, T: int) -> bool:
    """True when no unit has two rows in one period, checked without a (unit, period) table when T <= 52.

    The sum of k powers of two has fewer than k one-bits exactly when two of them are equal, so with
    ``s_u = sum over u's rows of 2^t`` (exact in float64 for t < 53) unit u has a duplicate iff
    ``popcount(s_u) < count_u``. False means "maybe duplicates": the caller then finds them exactly.
    """
    if T > 52:
        return False
    sums = np.bincount(unit, weights=np.ldexp(1.0, time), minlength=counts.shape[0]).astype(np.uint64)
    bits = np.zeros(sums.shape[0], dtype=np.int64)
    while True:
        nz = sums != 0
        if not nz.any():
            break
        bits += nz
        sums &= sums - np.uint64(1)  # clears the lowest set bit
    return bool(np.array_equal(bits, counts))


def _is_grid(unit: np.ndarray, time_codes: np.ndarray, T: int) -> bool:
    """True when the rows are sorted by unit and period with every unit in every period exactly once: row
    ``j * T + t`` is the j-th unit in period ``t``, and the units' values strictly increase (each unit is one
    block). Integer unit columns only; a few passes without n-length buffers other than booleans."""
    n = unit.shape[0]
    if unit.dtype.kind not in "iu" or T == 0 or n == 0 or n % T or n < 2 * T:
        return False
    steps = np.arange(T)
    if not np.array_equal(time_codes[:T], steps) or not np.array_equal(unit[:T], np.full(T, unit[0])):
        return False  # the cheap look at the first unit fails on data in another order
    U = unit.reshape(-1, T)
    first = U[:, 0]
    return bool((time_codes.reshape(-1, T) == steps).all() and (first[:, None] == U).all()
                and (first[1:] > first[:-1]).all())


def _grid_codes(unit: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes and labels of the units of a grid panel (:func:`_is_grid`) as :func:`didx._frame.factorize` gives
    them (order of appearance, which is increasing here): the column itself when it holds 0..N-1 (int64)."""
    first = unit[::T]
    if unit.dtype == np.int64 and first[0] == 0 and first[-1] == first.shape[0] - 1:  # increasing: 0..N-1
        return unit, np.arange(first.shape[0], dtype=np.int64)
    return None


def _dense_int_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes and labels of an integer column that already holds every value of 0..K-1 (no hashing, no copy)."""
    if values.dtype != np.int64 or values.size == 0:
        return None
    lo, hi = int(values.min()), int(values.max())
    if lo != 0 or hi >= values.shape[0]:
        return None
    if not (np.bincount(values, minlength=hi + 1) > 0).all():
        return None
    return values, np.arange(hi + 1, dtype=np.int64)


def _fmt_cohort(v: float) -> str:
    return "never" if np.isinf(v) else fmt_value(float(v))
