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

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._frame import Columns, factorize, numeric_column, read_columns
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, fmt_value
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
    """Codes, numeric period values, original labels, and whether time is date-like."""
    arr = cols.arrays[time]
    kind = cols.kinds[time]
    if kind == "numeric":
        values = np.asarray(arr)
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
    raw: np.ndarray, kind: str, *, name: str, periods: np.ndarray, labels: np.ndarray, date_like: bool, func: str
) -> np.ndarray:
    """Cohort in the units of ``periods``; every never-treated coding becomes ``inf``."""
    if date_like:
        if kind != "datetime":
            # allow an all-missing or numeric-never column only if it is entirely never-treated codings
            raise DataError(
                f"{func}: the time column is date-like, so the cohort column {name!r} must hold dates too "
                f"(NaT for never treated). Fix: convert it with pandas.to_datetime."
            )
        dates = raw.astype("datetime64[ns]")
        out = np.full(dates.shape[0], NEVER)
        ok = ~np.isnat(dates)
        pos = np.searchsorted(labels.astype("datetime64[ns]"), dates[ok], side="left").astype(np.float64)
        pos[pos >= periods.shape[0]] = NEVER  # first treated after the last period
        out[ok] = pos
        return out
    if kind != "numeric":
        example = next((v for v in raw[:50] if v is not None), None)
        raise DataError(
            f"{func}: the cohort column {name!r} must be numeric (the first treated period; 0, NaN or inf for "
            f"never treated). It holds values such as {example!r}. Fix: convert it to numbers."
        )
    g = np.asarray(raw, dtype=np.float64).copy()
    zero = g == 0
    if zero.any() and periods[0] <= 0 <= periods[-1] and np.any(periods == 0):
        raise DataError(
            f"{func}: the cohort column {name!r} uses 0, but 0 is also a period of the time column, so 0 cannot "
            f"mean 'never treated'. Fix: code never-treated units as NaN or inf in {name!r}."
        )
    never = zero | np.isnan(g) | np.isinf(g) | (g > periods[-1])
    g[never] = NEVER
    return g


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
) -> Panel:
    """Validate ``data`` for a DiD design and return a :class:`Panel`.

    ``require_control`` is ``'never'`` (at least one never-treated unit), ``'untreated_obs'`` (at least one
    untreated observation) or ``'none'``. ``zero_weights="drop"`` removes rows whose weight is 0 and counts them
    (as R's ``lm`` and fixest do for regressions, so that ``n``, ``K`` and the clusters count only observations
    that enter the fit); ``"keep"`` leaves them in. ``treat_role`` names the ``treat`` column in messages (e.g.
    ``"group"`` for the 2x2's treated-group indicator).
    """
    if cohort is not None and treat is not None:
        raise InvalidOptionError(
            f"{func}: give either cohort= (first treated period) or treat= (0/1 indicator), not both: got "
            f"cohort={cohort!r} and treat={treat!r}. Fix: drop one of them."
        )
    cov_list = as_list(covariates)
    cl_list = as_list(cluster)
    cat_list = [c for c in as_list(categorical) if c not in cl_list]
    roles: dict[str, Any] = {"y": y, "time": time, "unit": unit, "cohort": cohort, "treat": treat,
                             "covariates": cov_list, "weights": weights, "cluster": cl_list, "fe": cat_list}
    wanted = [c for c in [y, time, unit, cohort, treat, weights, *cov_list, *cl_list, *cat_list] if c is not None]
    cols = read_columns(data, wanted, func, roles)
    n_input = cols.n_rows

    yv = numeric_column(cols, y, "outcome (y)", func, "Fix: pass a numeric outcome column.")
    time_codes, periods, labels, date_like = _code_time(cols, time, func)
    keep = np.ones(n_input, dtype=bool)
    drops: list[tuple[str, np.ndarray]] = []

    def drop(mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        if newly.any():
            drops.append((reason, newly))
            keep[newly] = False

    drop(time_codes < 0, f"missing time ({time})")
    unit_codes_all: np.ndarray | None = None
    if unit is not None:
        dense = _dense_int_codes(np.asarray(cols.arrays[unit])) if cols.kinds[unit] == "numeric" else None
        if dense is not None:  # units already coded 0..N-1 (as in most large panels): used as they are
            unit_codes_all, unit_uniques = dense
        else:
            unit_codes_all, unit_uniques = factorize(cols.arrays[unit], sort=False)
        drop(unit_codes_all < 0, f"missing unit ({unit})")
    drop(~np.isfinite(yv), f"missing outcome ({y})")
    cov_mat = np.empty((n_input, len(cov_list)))
    for j, c in enumerate(cov_list):
        cov_mat[:, j] = numeric_column(cols, c, "covariate", func, "Fix: encode it as numbers (dummies).")
    for j, c in enumerate(cov_list):
        drop(~np.isfinite(cov_mat[:, j]), f"missing covariate ({c})")
    w: np.ndarray | None = None
    if weights is not None:
        w = numeric_column(cols, weights, "weights", func, "Fix: pass a numeric column of weights.")
        drop(~np.isfinite(w), f"missing weight ({weights})")
        bad = keep & (w < 0)
        if bad.any():
            raise DataError(
                f"{func}: the weights column {weights!r} has {int(bad.sum())} negative values "
                f"(e.g. {fmt_value(w[bad][0])}). Fix: weights must be non-negative."
            )
        if zero_weights == "drop":
            drop(w == 0, f"zero weight ({weights})")
    cl_codes_all: dict[str, np.ndarray] = {}
    for c in [*cl_list, *cat_list]:
        if c == unit and unit_codes_all is not None:
            codes = unit_codes_all
        else:
            codes, _ = factorize(cols.arrays[c], sort=False)
        cl_codes_all[c] = codes
        drop(codes < 0, f"missing {'cluster' if c in cl_list else 'fixed effect'} ({c})")
    tr: np.ndarray | None = None
    if treat is not None:
        tr = numeric_column(cols, treat, treat_role, func, f"Fix: pass a 0/1 {treat_role} indicator.")
        drop(np.isnan(tr), f"missing {treat_role} ({treat})")
        not_binary = keep & (tr != 0.0) & (tr != 1.0)
        bad_vals = np.unique(tr[not_binary]) if not_binary.any() else np.empty(0)
        if bad_vals.size:
            raise DataError(
                f"{func}: the {treat_role} column {treat!r} must be 0/1 (or boolean), but it has the value(s) "
                f"{', '.join(fmt_value(float(v)) for v in bad_vals[:5])}. Fix: recode it as a 0/1 indicator "
                f"(for a continuous or fractional treatment, round it or use a different estimator)."
            )
    g_all: np.ndarray | None = None
    if cohort is not None:
        g_all = _normalise_cohort(cols.arrays[cohort], cols.kinds[cohort], name=cohort, periods=periods,
                                  labels=labels, date_like=date_like, func=func)

    all_kept = bool(keep.all())
    idx = np.empty(0, dtype=np.int64) if all_kept else np.flatnonzero(keep)

    def take(a: np.ndarray) -> np.ndarray:
        return a if all_kept else a[idx]

    yk = take(yv)
    tk = take(time_codes)
    # re-code periods present after dropping
    present = np.bincount(tk, minlength=periods.shape[0]) > 0
    if not present.all():
        remap = np.cumsum(present) - 1
        tk = remap[tk]
        periods = periods[present]
        labels = labels[present]
    if periods.shape[0] < 2:
        raise DesignError(
            f"{func}: the time column {time!r} has {periods.shape[0]} distinct period(s) after dropping missing "
            f"values; a difference-in-differences needs at least two. Fix: check the time column and the rows "
            f"dropped for missing values."
        )
    uk: np.ndarray | None = None
    unit_labels: np.ndarray | None = None
    if unit is not None and unit_codes_all is not None:
        if all_kept:
            uk, unit_labels = unit_codes_all, unit_uniques
        else:
            uk, old = factorize(unit_codes_all[idx], sort=False)
            unit_labels = unit_uniques[old]
    n_units = 0 if unit_labels is None else unit_labels.shape[0]
    T = periods.shape[0]
    balanced: bool | None = None
    n_gaps: int | None = None
    if uk is not None:
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
                u_lab = unit_labels[dkey // T] if unit_labels is not None else dkey // T
                n_dup = int(key.shape[0] - np.unique(key).shape[0])
                raise DataError(
                    f"{func}: {n_dup} duplicate (unit, time) rows, e.g. {unit}={fmt_value(u_lab)} at "
                    f"{time}={fmt_value(labels[dkey % T])}. Each unit may appear once per period. Fix: aggregate the "
                    f"duplicates, or if this is a repeated cross section do not pass unit= (or use panel=False)."
                )
        balanced = bool(counts.min() == T)
        if not balanced:
            tmin = np.full(n_units, T, dtype=np.int64)
            tmax = np.full(n_units, -1, dtype=np.int64)
            np.minimum.at(tmin, uk, tk)
            np.maximum.at(tmax, uk, tk)
            n_gaps = int(np.count_nonzero(tmax - tmin + 1 != counts))
    gk: np.ndarray | None = None
    if g_all is not None:
        gk = take(g_all)
        if uk is not None:
            first = np.full(n_units, np.nan)
            first[uk] = gk
            varies = first[uk] != gk
            if varies.any():
                r = int(np.flatnonzero(varies)[0])
                u_lab = unit_labels[uk[r]] if unit_labels is not None else uk[r]
                vals = np.unique(gk[uk == uk[r]])
                raise DataError(
                    f"{func}: the cohort column {cohort!r} varies within unit {fmt_value(u_lab)} (values "
                    f"{', '.join(_fmt_cohort(v) for v in vals[:4])}). A cohort is the unit's first treated period "
                    f"and must be constant within a unit. Fix: set it to the first period the unit is treated."
                )
    trk: np.ndarray | None = None
    if tr is not None:
        trk = take(tr)
    elif gk is not None:
        trk = (periods[tk] >= gk).astype(np.float64)
    # design checks
    if gk is not None:
        treated_units = np.isfinite(gk)
        if not treated_units.any():
            raise DesignError(
                f"{func}: no treated units: every value of the cohort column {cohort!r} codes 'never treated' "
                f"(0, NaN, inf or a period after the last one, {fmt_value(labels[-1])}). Fix: check the cohort column."
            )
        if require_control == "never" and treated_units.all():
            raise DesignError(
                f"{func}: no control units: every unit has a treatment date in {cohort!r}, and this estimator "
                f"compares with never-treated units. Fix: use a not-yet-treated control group if the estimator "
                f"offers one, or add never-treated units."
            )
    if trk is not None:
        if not (trk == 1).any():
            raise DesignError(
                f"{func}: no treated observations: {treat or cohort!r} is never 1 in the sample. Fix: check the "
                f"treatment column."
            )
        if require_control != "none" and not (trk == 0).any():
            raise DesignError(
                f"{func}: no control observations: every row is treated in {treat or cohort!r}. Fix: include "
                f"untreated units or periods."
            )
    dropped = []
    lost_by: np.ndarray | None = None
    if unit_codes_all is not None and drops:
        # a unit that lost every row is counted once, under the last reason that removed one of its rows
        still = np.bincount(unit_codes_all[keep], minlength=unit_uniques.shape[0]) > 0
        last = np.full(unit_uniques.shape[0], -1, dtype=np.int64)
        for r, (_, mask) in enumerate(drops):
            codes = unit_codes_all[mask]
            last[codes[codes >= 0]] = r
        lost_by = np.bincount(last[~still & (last >= 0)], minlength=len(drops))
    for r, (reason, mask) in enumerate(drops):
        n_u = None if lost_by is None else int(lost_by[r])
        dropped.append(Dropped(reason=reason, n_rows=int(mask.sum()), n_units=n_u))
    report = SampleReport(
        n_input_rows=n_input, n_obs=int(yk.shape[0]), n_units=n_units if uk is not None else None,
        n_periods=T, dropped=tuple(dropped), balanced=balanced, n_units_with_gaps=n_gaps,
    )
    covk = take(cov_mat) if cov_list else np.empty((yk.shape[0], 0))
    clk = {}
    for c, v in cl_codes_all.items():
        if c == unit and uk is not None:
            clk[c] = uk
        else:
            clk[c] = v if all_kept else factorize(v[idx], sort=False)[0]
    return Panel(
        y=yk, unit=uk, unit_labels=unit_labels, time=tk, periods=periods, period_labels=labels, cohort=gk,
        treat=trk, covariates=covk, covariate_names=tuple(cov_list), weights=None if w is None else take(w),
        codes=clk, kept_rows=None if all_kept else idx, report=report,
        names={"y": y, "unit": unit, "time": time, "cohort": cohort, "treat": treat, "weights": weights,
               "cluster": tuple(cl_list), "date_like": date_like},
        fingerprint=cols.fingerprint(y, unit),
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
