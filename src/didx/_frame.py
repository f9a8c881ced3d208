"""Reading columns out of any dataframe (pandas, polars, pyarrow, duckdb, ...) through narwhals.

Only the columns an estimator needs are materialised, as numpy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import narwhals as nw
import numpy as np
import pandas as pd

from didx._errors import DataError, InvalidOptionError
from didx._fingerprint import Fingerprint
from didx._validate import check_columns, cluster_count_check, column_name, fmt_value

V = TypeVar("V")

LARGEST_SAFE = 1e150
"""Largest magnitude accepted in a numeric role column whose squares enter a variance (outcome, weights,
covariates): the square of anything larger overflows double precision (max about 1.8e308)."""

SQUARED_ROLES = ("y", "weights", "covariates", "x", "controls")
"""Roles whose values are squared in sums of squares and covariances."""

FINITE_ROLES = ("y", "time", "weights", "covariates", "x", "controls", "unit", "group", "cluster", "fe")
"""Roles in which +-inf is no value (nor a label): the rows holding it are recorded in ``Columns.infinite``, and
the panel layer drops them as it drops missing ones, saying 'infinite' in the sample report; the value checks
ignore it. (In a cohort column inf means never treated; in a 0/1 treatment it is an error.)"""


class ByName(dict[str, V]):
    """A dict keyed by column name (``str`` of the frame's label) that also accepts the label itself, so
    ``arrays[0]`` and ``arrays['0']`` read the same column labelled ``0``."""

    def __missing__(self, key: object) -> V:
        if not isinstance(key, str) and dict.__contains__(self, str(key)):
            return self[str(key)]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (not isinstance(key, str) and dict.__contains__(self, str(key)))


@dataclass(frozen=True)
class Columns:
    """Named numpy columns read from a frame, with the kind of each ('numeric', 'datetime', 'other').

    ``arrays`` and ``kinds`` are keyed by column name, the ``str`` of the frame's label (an integer label also
    works as a key); ``names`` lists every column of the source frame; ``roles`` the resolved column names of
    each role argument; ``infinite`` the rows of a column of :data:`FINITE_ROLES` that hold +-inf, for columns
    that have any (the values are left as read: an estimator that reads columns itself decides what inf means).
    """

    arrays: dict[str, np.ndarray]
    kinds: dict[str, str]
    names: tuple[str, ...]  # every column of the source frame
    n_rows: int
    roles: dict[str, list[str]] = field(default_factory=dict)
    infinite: dict[str, np.ndarray] = field(default_factory=dict)

    def infinite_rows(self, name: str) -> np.ndarray:
        """Rows whose value in column ``name`` is +-inf; all False when none is."""
        mask = self.infinite.get(str(name))
        return np.zeros(self.n_rows, dtype=bool) if mask is None else mask

    def fingerprint(self, *names: object) -> Fingerprint:
        """A digest of the named (numeric) columns, to recognise this frame when ``with_vcov`` reads a new
        cluster column from it later (see :class:`didx.inference.contract.ClusterCodes`)."""
        keys = [str(n) for n in names if n is not None]
        return Fingerprint.of({n: self.arrays[n] for n in dict.fromkeys(keys) if n in self.arrays})


def _to_numpy(series: Any) -> tuple[np.ndarray, str]:
    dtype = series.dtype
    if dtype.is_numeric():
        kind = "numeric"
        if dtype == nw.Boolean:
            arr = series.cast(nw.Int8).to_numpy()
        else:
            arr = series.to_numpy()
        if arr.dtype == object:  # pandas nullable numbers with NA
            arr = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=np.float64)
        return np.asarray(arr), kind
    if dtype == nw.Boolean:
        return np.asarray(series.cast(nw.Int8).to_numpy()), "numeric"
    if dtype in (nw.Date, nw.Datetime):
        arr = series.to_numpy()
        return np.asarray(arr).astype("datetime64[ns]"), "datetime"
    return np.asarray(series.to_numpy(), dtype=object), "other"


def _native(data: Any, func: str) -> tuple[Any, tuple[Any, ...]]:
    """The narwhals frame of ``data`` and its column labels as the frame holds them."""
    if isinstance(data, pd.DataFrame):
        return data, tuple(data.columns)
    if isinstance(data, str | os.PathLike):  # estimators with an engine (registry: engines) dispatch paths earlier
        raise InvalidOptionError(
            f"{func}: data={os.fspath(data)!r} is a path; {func} needs a data frame (a path or glob of Parquet/CSV "
            f"files is read in DuckDB only by the estimators that run there, see docs/bigdata.md). Fix: read it "
            f"first, e.g. pandas.read_parquet(path) or duckdb.read_parquet(path)."
        )
    try:
        native = nw.from_native(data)
    except TypeError as exc:
        raise InvalidOptionError(
            f"{func}: data must be a dataframe (pandas, polars, pyarrow, a duckdb relation, ...). "
            f"Got an object of type {type(data).__name__}. Fix: pass a dataframe."
        ) from exc
    return native, tuple(native.collect_schema().names())


def frame_labels(data: Any, func: str) -> tuple[Any, ...]:
    """The column labels of ``data`` (any narwhals-supported frame), without reading a column."""
    return _native(data, func)[1]


def read_columns(data: Any, columns: Sequence[Any], func: str, roles: Mapping[str, Any]) -> Columns:
    """Materialise ``columns`` of ``data`` (any narwhals-supported frame) as numpy arrays.

    ``roles`` maps each argument name to its column(s): every argument is checked first (a column name, or a
    list where the role takes several; the outcome not also another role), so that a bad or missing column is
    reported with the argument that named it. Columns are found by name, the ``str`` of the frame's labels, and
    read with the label itself (integer labels work). Then the values are checked where a role says what they
    must be: the data has rows, the outcome is not constant, weights are not all zero, and no outcome, weight or
    covariate is so large that its square overflows. +-inf in a role column other than the cohort is recorded in
    ``Columns.infinite``.
    """
    native, labels = _native(data, func)
    names = tuple(str(c) for c in labels)
    resolved = check_columns(func, roles, names, labels)
    role_of = {name: role for role, cols in resolved.items() for name in cols}
    wanted = list(dict.fromkeys(column_name(func, "columns", c, names, labels) for c in columns))
    label_of: dict[str, Any] = {}
    repeated: set[str] = set()
    for name, label in zip(names, labels, strict=True):
        if name in label_of:
            repeated.add(name)
        else:
            label_of[name] = label
    clash = [c for c in wanted if c in repeated]
    if clash:
        given = f" (given as {role_of[clash[0]]}=)" if clash[0] in role_of else ""
        raise DataError(
            f"{func}: the data has several columns named {clash[0]!r}{given}, so it is ambiguous which one to use. "
            f"Fix: rename or drop the duplicates (e.g. df.loc[:, ~df.columns.duplicated()])."
        )
    series: dict[str, Any] = {}
    if isinstance(native, pd.DataFrame):  # columns are read without copying the frame
        for c in wanted:
            series[c] = nw.from_native(native[label_of[c]], series_only=True)
    else:
        frame = native.select([label_of[c] for c in wanted])
        if isinstance(frame, nw.LazyFrame):
            frame = frame.collect()
        for c in wanted:
            series[c] = frame.get_column(label_of[c])
    arrays: ByName[np.ndarray] = ByName()
    kinds: ByName[str] = ByName()
    for c in wanted:
        arrays[c], kinds[c] = _to_numpy(series[c])
    n_rows = len(next(iter(arrays.values()))) if arrays else _n_rows(native)
    infinite: ByName[np.ndarray] = ByName()
    ranges: dict[str, tuple[float, float] | None] = {}
    for role in FINITE_ROLES:
        for name in resolved.get(role, []):
            arr = arrays[name]
            if name in ranges or kinds[name] != "numeric" or arr.dtype.kind != "f" or not arr.size:
                continue  # integers hold no inf; their range is computed only where a check needs it
            lo, hi = arr.min(), arr.max()  # both finite: no NaN and no inf anywhere (the common case)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                mask = np.isinf(arr)
                if mask.any():
                    infinite[name] = mask
                    ranges[name] = value_range(np.where(mask, np.nan, arr))
                else:
                    ranges[name] = value_range(arr)
            else:
                ranges[name] = (float(lo), float(hi))
    cols = Columns(arrays=arrays, kinds=kinds, names=names, n_rows=n_rows, roles=resolved, infinite=infinite)
    _check_values(cols, func, ranges)
    return cols


def _n_rows(native: Any) -> int:
    if isinstance(native, pd.DataFrame):
        return int(native.shape[0])
    if isinstance(native, nw.LazyFrame):
        return 0  # not counted without materialising (no column was asked for)
    return int(native.shape[0])


def _check_values(cols: Columns, func: str, ranges: Mapping[str, tuple[float, float] | None]) -> None:
    """Checks of the values a role implies, on every input row (the panel layer repeats the outcome check on the
    estimation sample), from each column's range (min and max ignoring NaN, computed once by the reader)."""
    if cols.n_rows == 0 and cols.arrays:
        raise DataError(
            f"{func}: the data has no rows. Fix: pass a non-empty dataframe (check the filter that produced it)."
        )

    def span(name: str) -> tuple[float, float] | None:
        return ranges[name] if name in ranges else value_range(cols.arrays[name])

    for name in cols.roles.get("y", [])[:1]:
        if cols.kinds[name] == "numeric":
            _check_constant(func, name, span(name), "")
    for name in cols.roles.get("weights", [])[:1]:
        if cols.kinds[name] == "numeric" and span(name) == (0.0, 0.0):
            raise DataError(
                f"{func}: the weights column {name!r} is zero or missing in every row, so no observation has any "
                f"weight. "
                f"Fix: pass the intended weights column, or drop weights=."
            )
    for name in cols.roles.get("cluster", []):
        if cols.kinds[name] == "numeric":
            sp = span(name)
            distinct = 0 if sp is None else (1 if sp[0] == sp[1] else 2)
        else:
            distinct = _distinct_up_to_two(cols.arrays[name])
        cluster_count_check(func, name, distinct)
    for role in SQUARED_ROLES:
        for name in cols.roles.get(role, []):
            if cols.kinds[name] == "numeric" and cols.arrays[name].dtype.kind == "f":
                _check_magnitude(func, role, name, span(name))


def value_range(values: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of a numeric array ignoring NaN, None when it has no value (one pass each, no copy)."""
    if values.size == 0:
        return None
    if values.dtype.kind in "iub":
        return float(values.min()), float(values.max())
    lo, hi = np.fmin.reduce(values), np.fmax.reduce(values)
    return None if np.isnan(lo) else (float(lo), float(hi))


def _distinct_up_to_two(values: np.ndarray) -> int:
    """The number of distinct non-missing values of a non-numeric column, counted up to 2."""
    present = pd.notna(values)
    if not present.any():
        return 0
    first = values[int(np.argmax(present))]
    return 2 if bool(np.any((values != first) & present)) else 1


def check_outcome_varies(func: str, name: str, values: np.ndarray, where: str) -> None:
    """A constant outcome is an error (as fixest's "The dependent variable is a constant"): every comparison is
    0 by construction. NaN values are ignored; ``where`` says which rows (e.g. ' in the estimation sample')."""
    _check_constant(func, name, value_range(values), where)


def _check_constant(func: str, name: str, span: tuple[float, float] | None, where: str) -> None:
    if span is not None and span[0] == span[1]:
        raise DataError(
            f"{func}: the outcome y={name!r} is constant (every value{where} is {fmt_value(span[0])}), so every "
            f"difference is 0 by construction and nothing can be estimated (fixest refuses it too). Fix: pass "
            f"y= the outcome column you meant."
        )


def _check_magnitude(func: str, role: str, name: str, span: tuple[float, float] | None) -> None:
    """Values whose squares overflow double precision make every variance inf or NaN: an error with the fix."""
    top = 0.0 if span is None else max(abs(span[0]), abs(span[1]))
    if top > LARGEST_SAFE:
        raise DataError(
            f"{func}: the {role}= column {name!r} has values up to {top:.3g} in magnitude; their squares overflow "
            f"double precision (above {LARGEST_SAFE:.0e}), so variances would be inf or NaN. Fix: rescale the column "
            f"(e.g. divide it by {10 ** np.floor(np.log10(top)):.0e})."
        )


def numeric_column(cols: Columns, name: str, role: str, func: str, fix: str) -> np.ndarray:
    """A column as float64, or a :class:`DataError` naming the column, its type and ``fix``."""
    arr = cols.arrays[name]
    if cols.kinds[name] != "numeric":
        example = next((v for v in arr[:50] if v is not None), None)
        raise DataError(
            f"{func}: the {role} column {name!r} must be numeric, but it holds "
            f"{'dates' if cols.kinds[name] == 'datetime' else 'non-numeric values'} (e.g. {example!r}). {fix}"
        )
    return np.asarray(arr, dtype=np.float64)


def factorize(values: np.ndarray, *, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..K-1 and the K unique values (sorted when ``sort``); missing values get -1."""
    codes, uniques = pd.factorize(values, sort=sort, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques)
