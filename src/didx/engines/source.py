"""Where the data live: recognise an input that an engine reads, and run SQL on it.

:func:`engine_input` returns an :class:`EngineInput` for

- a path or glob of Parquet or CSV files (``"panel.parquet"``, ``"parts/*.parquet"``, a :class:`pathlib.Path`),
  read by DuckDB (``pip install didx[duckdb]``);
- a DuckDB relation (``duckdb.sql(...)``, ``con.table(...)``), queried on its own connection;
- a Spark DataFrame (``pip install didx[spark]``), queried through Spark SQL on its session;

and None for an in-memory frame (pandas, polars, pyarrow, ...), which the estimators read as before. Nothing is
read here beyond the schema: a missing file or an unsupported extension is an error before any scan. The engines
differ only in how an identifier is quoted and how a query runs; the plans (:mod:`didx.engines.plan`) are written
once.
"""

from __future__ import annotations

import glob
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from didx._errors import DataError, InvalidOptionError

MEMORY_LIMIT = os.environ.get("DIDX_DUCKDB_MEMORY", "512MB")
"""DuckDB's memory limit for file inputs (``DIDX_DUCKDB_MEMORY``); relations keep their connection's settings."""

_PARQUET = (".parquet", ".pq", ".parq")
_CSV = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt")

_DUCK_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN", "INT", "LONG")
_SPARK_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal", "boolean", "byte",
                  "short", "long", "integer")


@dataclass(eq=False)
class EngineInput:
    """A table an engine can query: its engine, schema, how to quote a name and how to run a query.

    ``table`` is the name the plans select from; ``kinds`` maps each column to ``"numeric"``, ``"datetime"``
    or ``"other"``; ``run(sql)`` returns the result as a dict of numpy arrays (one per output column);
    ``describe`` is the text ``summary()`` prints as the engine.
    """

    engine: str  # "duckdb" | "spark"
    describe: str
    table: str
    kinds: dict[str, str]
    quote: Callable[[str], str]
    _run: Callable[[str], dict[str, np.ndarray]]
    integer: dict[str, bool]  # integer-typed columns (period labels keep the column's type, as in memory)
    stream: Callable[[str, int], Iterator[Any]] | None = None  # DuckDB: a query's rows as Arrow batches, in order

    def run(self, sql: str) -> dict[str, np.ndarray]:
        return self._run(sql)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.kinds)


def is_engine_input(data: Any) -> bool:
    """True for a path/glob, a DuckDB relation or a Spark DataFrame (no reading)."""
    return isinstance(data, str | os.PathLike) or _is_duckdb_relation(data) or _is_spark_frame(data)


def engine_input(data: Any, func: str) -> EngineInput | None:
    """The :class:`EngineInput` of ``data``, or None for an in-memory frame (see the module docstring)."""
    if isinstance(data, str | os.PathLike):
        return _from_path(data, func)
    if _is_duckdb_relation(data):
        return _from_relation(data)
    if _is_spark_frame(data):
        return _from_spark(data)
    return None


# ----------------------------------------------------------------------------------------------- detection
def _is_duckdb_relation(data: Any) -> bool:
    return type(data).__module__.startswith("duckdb") and type(data).__name__ == "DuckDBPyRelation"


def _is_spark_frame(data: Any) -> bool:
    mod = type(data).__module__
    return mod.startswith("pyspark.sql") and type(data).__name__ == "DataFrame"


def _duckdb(func: str) -> Any:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is a test dependency
        raise InvalidOptionError(
            f"{func}: reading files needs DuckDB. Fix: pip install 'didx[duckdb]', or read the file into a pandas "
            f"DataFrame (pandas.read_parquet) and pass that."
        ) from exc
    return duckdb


# ----------------------------------------------------------------------------------------------- DuckDB
def _has_arrow() -> bool:
    """DuckDB streams Arrow batches only with pyarrow installed."""
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _duck_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duck_kind(type_name: str) -> str:
    t = type_name.upper()
    if t.startswith(("DATE", "TIMESTAMP", "TIME")):
        return "datetime"
    if t.startswith(_DUCK_NUMERIC):
        return "numeric"
    return "other"


def _is_int(type_name: str) -> bool:
    t = type_name.lower()
    return "int" in t or t in ("bigint", "smallint", "tinyint", "long", "short", "byte")


def _duck_run(con: Any) -> Callable[[str], dict[str, np.ndarray]]:
    def run(sql: str) -> dict[str, np.ndarray]:
        out = con.sql(sql).fetchnumpy()
        return {k: _plain(v) for k, v in out.items()}

    return run


def _plain(v: Any) -> np.ndarray:
    """A numpy array from a fetched column (masked arrays: NULL becomes NaN or None)."""
    if isinstance(v, np.ma.MaskedArray):
        if v.dtype.kind in "fiub":
            return np.asarray(np.ma.filled(v.astype(np.float64), np.nan))
        return np.asarray(np.ma.filled(v.astype(object), None))
    return np.asarray(v)


def _from_path(path: str | os.PathLike[str], func: str) -> EngineInput:
    text = os.fspath(path)
    files = sorted(glob.glob(text)) if glob.has_magic(text) else ([text] if Path(text).exists() else [])
    if not files:
        raise DataError(
            f"{func}: no file matches {text!r} (working directory {os.getcwd()}). Fix: pass the path of a Parquet or "
            f"CSV file, or a glob such as 'panel/*.parquet', or an in-memory data frame."
        )
    lower = files[0].lower()
    if Path(files[0]).is_dir():
        raise DataError(f"{func}: {files[0]!r} is a directory. Fix: pass a glob of its files, e.g. "
                        f"'{files[0].rstrip('/')}/*.parquet'.")
    if lower.endswith(_PARQUET):
        reader = "read_parquet"
    elif lower.endswith(_CSV):
        reader = "read_csv_auto"
    else:
        raise InvalidOptionError(
            f"{func}: cannot tell the format of {files[0]!r} (expected a name ending in .parquet or .csv). Fix: "
            f"rename the file, or open it with duckdb (duckdb.read_parquet / duckdb.read_csv) and pass the relation."
        )
    duckdb = _duckdb(func)
    # a bounded buffer pool: the unit-level aggregation spills to disk instead of growing with the number of units
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": False,
                                 "temp_directory": os.path.join(tempfile.gettempdir(), "didx_duckdb")})
    literal = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    # Parquet parts: their types unified by name (else the first file's: a DOUBLE column stored as BIGINT in the
    # first part rounds the others silently), once every part is checked to hold the same columns
    unify = reader == "read_parquet" and len(files) > 1
    try:
        if unify:
            _same_columns(con, literal, text, func)
        con.execute(f"CREATE VIEW didx_input AS SELECT * FROM {reader}({literal}"
                    f"{', union_by_name = true' if unify else ''})")
        schema = con.execute("DESCRIBE didx_input").fetchall()
    except duckdb.Error as exc:
        raise DataError(f"{func}: DuckDB cannot read {text!r}: {exc}. Fix: check the file.") from exc
    kinds = {str(r[0]): _duck_kind(str(r[1])) for r in schema}
    integer = {str(r[0]): _is_int(str(r[1])) for r in schema}
    what = f"{len(files)} files" if len(files) > 1 else repr(files[0])

    def stream(sql: str, rows: int) -> Iterator[Any]:
        # the connection drops insertion order for speed; a stream read in order turns it back on for its query
        con.execute("SET preserve_insertion_order = true")
        try:
            yield from con.sql(sql).to_arrow_reader(rows)
        finally:
            con.execute("SET preserve_insertion_order = false")

    return EngineInput(engine="duckdb", describe=f"DuckDB {duckdb.__version__} ({reader} of {what})",
                       table="didx_input", kinds=kinds, quote=_duck_quote, _run=_duck_run(con), integer=integer,
                       stream=stream if _has_arrow() else None)


def _same_columns(con: Any, literal: str, text: str, func: str) -> None:
    """Every Parquet file of a glob holds the same columns (read from the footers): union_by_name would give a
    column missing from a part NULLs, and a missing cohort would then read as never treated."""
    rows = con.execute(f"SELECT file_name, list(name ORDER BY name) FROM parquet_schema({literal}) "
                       f"WHERE coalesce(num_children, 0) = 0 GROUP BY file_name ORDER BY file_name").fetchall()
    first_file, first = rows[0][0], set(rows[0][1])
    for name, cols in rows[1:]:
        if set(cols) != first:
            missing, extra = sorted(first - set(cols)), sorted(set(cols) - first)
            raise DataError(
                f"{func}: the files of {text!r} do not hold the same columns: {name!r} "
                f"{'lacks ' + repr(missing) if missing else ''}{' and ' if missing and extra else ''}"
                f"{'has ' + repr(extra) + ' too' if extra else ''} (against {first_file!r}). Fix: write every part "
                f"with the same columns, or pass a glob of the parts that match."
            )


def _from_relation(rel: Any) -> EngineInput:
    import duckdb

    name = "didx_rel_" + uuid.uuid4().hex[:8]
    kinds = {str(c): _duck_kind(str(t)) for c, t in zip(rel.columns, rel.types, strict=True)}
    integer = {str(c): _is_int(str(t)) for c, t in zip(rel.columns, rel.types, strict=True)}

    def run(sql: str) -> dict[str, np.ndarray]:
        return {k: _plain(v) for k, v in rel.query(name, sql).fetchnumpy().items()}

    def stream(sql: str, rows: int) -> Iterator[Any]:
        yield from rel.query(name, sql).to_arrow_reader(rows)

    return EngineInput(engine="duckdb", describe=f"DuckDB {duckdb.__version__} (relation)", table=name,
                       kinds=kinds, quote=_duck_quote, _run=run, integer=integer,
                       stream=stream if _has_arrow() else None)


# ----------------------------------------------------------------------------------------------- Spark
def _spark_kind(type_name: str) -> str:
    t = type_name.lower()
    if t.startswith(("date", "timestamp")):
        return "datetime"
    if t.startswith(_SPARK_NUMERIC):
        return "numeric"
    return "other"


def _spark_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _from_spark(df: Any) -> EngineInput:
    spark = df.sparkSession
    name = "didx_spark_" + uuid.uuid4().hex[:8]
    df.createOrReplaceTempView(name)
    kinds = {str(c): _spark_kind(str(t)) for c, t in df.dtypes}
    integer = {str(c): _is_int(str(t)) for c, t in df.dtypes}

    def run(sql: str) -> dict[str, np.ndarray]:
        out = spark.sql(sql)
        cols = out.columns
        rows = out.collect()
        return {c: _column([r[j] for r in rows]) for j, c in enumerate(cols)}

    return EngineInput(engine="spark", describe=f"Spark {spark.version} SQL (master {spark.sparkContext.master})",
                       table=name, kinds=kinds, quote=_spark_quote, _run=run, integer=integer)


def _column(values: list[Any]) -> np.ndarray:
    """Values collected from Spark as a numpy array: numbers as float64 (None: NaN) where all are numbers."""
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=object)
