"""Engines: estimators run where the data live (DuckDB for files and relations, Spark SQL for Spark frames).

An estimator given a path or glob of Parquet/CSV files, a DuckDB relation or a Spark DataFrame
(:func:`didx.engines.source.engine_input`) sends two group-by plans to the engine (:mod:`didx.engines.plan`) and
gets back small tables: cohort x period counts and sums and, per cohort and observation pattern, T x T sums of
products of the centred outcomes (:mod:`didx.engines.stats`). The estimator's own code then computes the estimates
and covariances from them (``shared/design/SCALE.md``). See ``docs/bigdata.md``.

Importing this package imports neither DuckDB nor Spark.
"""

from didx.engines.source import EngineInput, engine_input, is_engine_input

__all__ = ["EngineInput", "engine_input", "is_engine_input"]
