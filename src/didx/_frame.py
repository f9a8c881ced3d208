"""Reading columns out of any dataframe (pandas, polars, pyarrow, duckdb, ...) through narwhals.

Only the columns an estimator needs are materialised, as numpy arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from didx._errors import DataError, InvalidOptionError
from didx._validate import check_columns


@dataclass(frozen=True)
class Fingerprint:
    """A digest of some of the input frame's role columns (numeric ones), to recognise the fitted frame later."""

    columns: tuple[str, ...]
    digest: str

    @staticmethod
    def of(arrays: Mapping[str, np.ndarray]) -> Fingerprint:
        h = hashlib.sha1(usedforsecurity=False)
        used = []
        for name, a in arrays.items():
            arr = np.asarray(a)
            if arr.dtype.kind not in "biuf":
                continue  # object columns would cost a Python-level hash per row; the numeric ones suffice
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr.astype(np.float64, copy=False)).data)
            used.append(name)
        return Fingerprint(tuple(used), h.hexdigest())


@dataclass(frozen=True)
class Columns:
    """Named numpy columns read from a frame, with the kind of each ('numeric', 'datetime', 'other')."""

    arrays: dict[str, np.ndarray]
    kinds: dict[str, str]
    names: tuple[str, ...]  # every column of the source frame
    n_rows: int

    def fingerprint(self, *names: str | None) -> Fingerprint:
        """A digest of the named (numeric) columns, to recognise this frame when ``with_vcov`` reads a new
        cluster column from it later (see :class:`didx.inference.contract.ClusterCodes`)."""
        return Fingerprint.of({n: self.arrays[n] for n in dict.fromkeys(names) if n is not None and n in self.arrays})


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


def read_columns(data: Any, columns: Sequence[str], func: str, roles: dict[str, Any]) -> Columns:
    """Materialise ``columns`` of ``data`` (any narwhals-supported frame) as numpy arrays.

    ``roles`` maps each argument name to its column(s) so that a missing column is reported
    with the argument that named it.
    """
    if isinstance(data, pd.DataFrame):
        names = tuple(str(c) for c in data.columns)
        check_columns(func, roles, names)
        if data.columns.has_duplicates:
            dup = data.columns[data.columns.duplicated()]
            clash = [c for c in dict.fromkeys(columns) if c in set(map(str, dup))]
            if clash:
                raise DataError(
                    f"{func}: the data has several columns named {clash[0]!r}, so it is ambiguous which one to use. "
                    f"Fix: rename or drop the duplicates (e.g. df.loc[:, ~df.columns.duplicated()])."
                )
            data = data.loc[:, ~data.columns.duplicated()]
        frame: Any = nw.from_native(data, eager_only=True)  # columns are read without copying the frame
    else:
        try:
            native = nw.from_native(data)
        except TypeError as exc:
            raise InvalidOptionError(
                f"{func}: data must be a dataframe (pandas, polars, pyarrow, a duckdb relation, ...). "
                f"Got an object of type {type(data).__name__}. Fix: pass a dataframe."
            ) from exc
        names = tuple(str(c) for c in native.columns)
        check_columns(func, roles, names)
        frame = native.select(list(dict.fromkeys(columns)))
        if isinstance(frame, nw.LazyFrame):
            frame = frame.collect()
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for col in dict.fromkeys(columns):
        arrays[col], kinds[col] = _to_numpy(frame[col])
    n_rows = len(next(iter(arrays.values()))) if arrays else 0
    return Columns(arrays=arrays, kinds=kinds, names=names, n_rows=n_rows)


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
