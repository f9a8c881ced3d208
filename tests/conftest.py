"""Shared test helpers: reference fixtures and named tolerances."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REFERENCE_DIR = Path(__file__).parent / "reference"

# Named tolerances (relative), per quantity.
TOL_POINT = 1e-8       # point estimates vs the R reference
TOL_SE = 1e-8          # analytic standard errors vs the R reference (foundation estimators)
TOL_IDENTITY = 1e-10   # algebraic identities inside didx


def load_reference(name: str) -> Any:
    with open(REFERENCE_DIR / name) as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def mpdta() -> Any:
    import didx

    df = didx.datasets.load("mpdta")
    df["treat_post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    return df


@pytest.fixture(scope="session")
def card_krueger() -> Any:
    import didx

    return didx.datasets.load("card_krueger")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One Spark session in local mode for the whole run (a session costs seconds to start); tests using it skip
    without pyspark or Java and carry ``pytest.mark.spark``."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:  # pragma: no cover - Java 17 is on the project's machines
        pytest.skip("Spark needs Java")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("didx-tests")
               .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.driver.memory", "1g").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The engines' sorted-grid scan (didx.engines.grid.scan) watched: for every scan, whether it produced the
    moments (True) or fell back to the SQL plan (False)."""
    from didx.engines import grid

    calls: list[bool] = []
    real = grid.scan

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(grid, "scan", wrapped)
    return calls
