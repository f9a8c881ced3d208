"""twfe and the TWFE event study with covariates through the engines (didx.engines.regression_cov).

Every case fits the same call on a pandas frame and through DuckDB (a Parquet file, a DuckDB relation) or Spark
local mode, and checks estimates, standard errors and covariance matrices (CR1 by unit and by a coarser column) to
1e-10 relative, the sample report, the notes (a covariate collinear with the unit effects, such as mpdta's
time-invariant ``lpop``, is dropped and noted as in memory) and the summary. Bad covariates give the in-memory
errors; rows with a missing or infinite covariate are dropped and counted as in memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from test_engines import DATA, ROLES, _summary_without_engine, assert_same_result, write

duckdb = pytest.importorskip("duckdb")


# ----------------------------------------------------------------------------------------------- data
def _mpdta() -> pd.DataFrame:
    df = DATA["mpdta"]()
    df["lpop"] = didx.datasets.load("mpdta")["lpop"].to_numpy()
    # a time-varying covariate (deterministic, so the case does not depend on a seed)
    df["x"] = np.sin(df["countyreal"] * 0.37 + df["year"] * 1.3) + 0.01 * (df["year"] - 2003) ** 2
    return df


def _castle() -> pd.DataFrame:
    df = DATA["castle"]()
    full = didx.datasets.load("castle")
    for c in ("l_police", "unemployrt", "poverty", "popwt"):  # popwt: constant within state, level 6e6
        df[c] = full[c].to_numpy()
    return df


def _base_stagg() -> pd.DataFrame:
    return didx.datasets.load("base_stagg")[["id", "year", "year_treated", "y", "x1"]].copy()


def _unbalanced() -> pd.DataFrame:
    """The simulated unbalanced panel of test_engines with a time-varying covariate that moves the outcome, one
    far from zero, a few missing and infinite covariate values, and a few singletons."""
    df = DATA["unbalanced"]()
    rng = np.random.default_rng(3)
    df["w"] = 0.3 * df["time"] + rng.normal(size=len(df)) + 0.5 * (df["unit"] % 3)
    df["y"] = df["y"] + 0.8 * df["w"]
    df["level"] = 1e4 + rng.normal(size=len(df))
    df.loc[df.index[rng.choice(len(df), 8, replace=False)], "w"] = np.nan
    df.loc[df.index[rng.choice(len(df), 2, replace=False)], "level"] = np.inf
    single = df["unit"].isin(df["unit"].drop_duplicates().sample(4, random_state=1))
    return pd.concat([df[~single], df[single].groupby("unit").head(1)], ignore_index=True)


CASES: dict[str, tuple[Any, Any, str | None]] = {  # data, covariates, coarser cluster
    "mpdta-lpop": (_mpdta, "lpop", "region"),
    "mpdta-x-lpop": (_mpdta, ["x", "lpop"], "region"),
    "castle": (_castle, ["l_police", "unemployrt", "poverty", "popwt"], "region"),
    "base_stagg": (_base_stagg, "x1", None),
    "unbalanced": (_unbalanced, ["w", "level"], "cl"),
}


def _roles(case: str) -> dict[str, str]:
    return ROLES[case.split("-")[0]]


def _check(mem: Any, eng: Any) -> None:
    assert_same_result(mem, eng)
    assert eng.sample.lines() == mem.sample.lines()
    assert eng.notes == mem.notes
    assert _summary_without_engine(eng) == _summary_without_engine(mem)
    if hasattr(mem, "pretrend_test"):  # the event study: term information, pre-test and aggregation
        np.testing.assert_array_equal(eng.term_info["n"], mem.term_info["n"])
        np.testing.assert_array_equal(eng.term_info["event_time"], mem.term_info["event_time"])
        assert eng.pretrend_test().statistic == pytest.approx(mem.pretrend_test().statistic, rel=1e-9)
        assert_same_result(mem.aggregate("post"), eng.aggregate("post"))


# ----------------------------------------------------------------------------------------------- DuckDB
@pytest.mark.parametrize("fn", [didx.twfe, didx.event_study], ids=["twfe", "event_study"])
@pytest.mark.parametrize("clustered", [False, True], ids=["unit", "cluster"])
@pytest.mark.parametrize("case", list(CASES))
def test_parquet_equals_in_memory(case: str, clustered: bool, fn: Any, tmp_path: Path) -> None:
    make, covs, cl = CASES[case]
    if clustered and cl is None:
        pytest.skip("no coarser cluster column")
    df = make()
    kw = dict(**_roles(case), covariates=covs, cluster=cl if clustered else None)
    mem = fn(df, **kw)
    eng = fn(write(df, tmp_path), **kw)
    _check(mem, eng)
    assert "Engine: DuckDB" in eng.summary()


def test_collinear_and_dropped_rows_are_reported(tmp_path: Path) -> None:
    """lpop is constant within counties: dropped for collinearity (the fit is the one without it); missing and
    infinite covariate values drop rows, counted by reason as in memory."""
    df = _mpdta()
    path = write(df, tmp_path)
    eng = didx.twfe(path, **ROLES["mpdta"], covariates="lpop")
    assert eng.terms == ("treated",) and eng.notes[-1] == "Dropped for collinearity: lpop"
    assert_same_result(didx.twfe(path, **ROLES["mpdta"]), eng)
    un = _unbalanced()
    eng = didx.twfe(write(un, tmp_path / "u.parquet"), **ROLES["unbalanced"], covariates=["w", "level"])
    reasons = [d.reason for d in eng.sample.dropped]
    assert reasons == ["missing outcome (y)", "missing covariate (w)", "infinite covariate (level)"]
    assert eng.terms == ("treated", "w", "level")


def test_units_lost_to_covariates_are_counted(tmp_path: Path) -> None:
    """A unit whose rows all lose their covariate, and one that loses its outcome in one row and its covariate in
    the others, are counted under the covariate (the last reason that removed one of their rows), as in memory."""
    df = _mpdta()
    units = df["countyreal"].unique()
    df.loc[df["countyreal"] == units[0], "x"] = np.nan
    rows = df.index[df["countyreal"] == units[1]]
    df.loc[rows[0], "lemp"] = np.nan
    df.loc[rows[1:], "x"] = np.inf
    df.loc[df.index[df["countyreal"] == units[2]][0], "region"] = np.nan  # a missing cluster: after the covariates
    kw = dict(**ROLES["mpdta"], covariates="x", cluster="region")
    mem, eng = didx.twfe(df, **kw), didx.twfe(write(df, tmp_path), **kw)
    _check(mem, eng)
    assert [(d.reason, d.n_rows, d.n_units) for d in eng.sample.dropped] == [
        ("missing outcome (lemp)", 1, 0), ("missing covariate (x)", 5, 1), ("infinite covariate (x)", 4, 1),
        ("missing cluster (region)", 1, 0)]


def test_relation_and_csv_equal_in_memory(tmp_path: Path) -> None:
    df = _unbalanced()
    con = duckdb.connect()
    con.register("panel", df)
    kw = dict(**ROLES["unbalanced"], covariates=["w", "level"], cluster="cl")
    for fn in (didx.twfe, didx.event_study):
        _check(fn(df, **kw), fn(con.sql("SELECT * FROM panel"), **kw))
    mp = _mpdta()
    kw = dict(**ROLES["mpdta"], covariates=["x", "lpop"])
    _check(didx.event_study(mp, **kw, ref=[-1, -3]), didx.event_study(write(mp, tmp_path, "csv"), **kw, ref=[-1, -3]))


def test_large_level_outcome_and_covariate(tmp_path: Path) -> None:
    """An outcome and a covariate far from zero (earnings in dollars): the sums are centred before products."""
    df = _mpdta()
    df["lemp"] = 1e7 + 1e3 * df["lemp"]
    df["x"] = 1e3 + df["x"]  # far from 0: kept (judged on its centred sum of squares, as in memory)
    kw = dict(**ROLES["mpdta"], covariates="x", cluster="region")
    for fn in (didx.twfe, didx.event_study):
        _check(fn(df, **kw), fn(write(df, tmp_path), **kw))


@pytest.mark.parametrize("never", [True, False], ids=["with-never-treated", "no-never-treated"])
def test_always_treated_units_with_covariates(never: bool, tmp_path: Path) -> None:
    """The event study drops always-treated units (and their rows' covariates); twfe keeps them. Without
    never-treated units one event time is collinear: dropped and noted with the collinear covariate."""
    df = _mpdta()
    if not never:
        df = df[df["first.treat"] > 0].copy()
    df.loc[df["countyreal"] % 9 == 0, "first.treat"] = 2003
    kw = dict(**ROLES["mpdta"], covariates=["x", "lpop"])
    path = write(df, tmp_path)
    for fn in (didx.twfe, didx.event_study):
        _check(fn(df, **kw), fn(path, **kw))


def test_string_units_float_times_boolean_covariate(tmp_path: Path) -> None:
    df = _castle()
    df["year"] = df["year"].astype(float)
    df["high_police"] = df["l_police"] > 5.7
    kw = dict(ROLES["castle"], unit="state", covariates=["unemployrt", "high_police"])
    path = write(df, tmp_path)
    for fn in (didx.twfe, didx.event_study):
        _check(fn(df, **kw, cluster="region"), fn(path, **kw, cluster="region"))


def test_bad_covariates(tmp_path: Path) -> None:
    df = _mpdta()
    df["s"] = "a"
    df["huge"] = 1e200
    path = write(df, tmp_path)
    for fn in (didx.twfe, didx.event_study):
        for cov, err in (("nope", didx.ColumnNotFoundError), ("s", didx.DataError), ("huge", didx.DataError),
                         ("lemp", didx.InvalidOptionError)):
            with pytest.raises(err) as mem_err:
                fn(df, **ROLES["mpdta"], covariates=cov)
            with pytest.raises(err) as eng_err:
                fn(path, **ROLES["mpdta"], covariates=cov)
            assert str(eng_err.value) == str(mem_err.value)
    with pytest.raises(didx.InvalidOptionError, match=r"weights.*in-memory"):
        didx.twfe(path, **ROLES["mpdta"], covariates="x", weights="lpop")
    with pytest.raises(didx.InvalidOptionError, match=r"covariates with collapse="):
        didx.twfe(path, **ROLES["mpdta"], covariates="x", collapse="group_period")


def test_treatment_collinear_with_a_covariate(tmp_path: Path) -> None:
    """A covariate equal to the treatment makes it unidentified... in memory the treatment is protected: the
    covariate (later) is dropped instead. A covariate that is the treatment plus a unit effect is the same."""
    df = _mpdta()
    df["d"] = (df["year"] >= df["first.treat"]) & (df["first.treat"] > 0)
    df["d"] = df["d"].astype(float) + 0.5 * (df["countyreal"] % 4)
    kw = dict(**ROLES["mpdta"], covariates=["d", "x"])
    mem = didx.twfe(df, **kw)
    eng = didx.twfe(write(df, tmp_path), **kw)
    assert mem.terms == ("treated", "x")
    _check(mem, eng)


# ----------------------------------------------------------------------------------------------- Spark
spark_ok = shutil.which("java") is not None


@pytest.mark.spark
@pytest.mark.skipif(not spark_ok, reason="Spark needs Java")
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning", "ignore::FutureWarning",
                            "ignore::UserWarning")
@pytest.mark.parametrize(("case", "fn", "clustered"), [("castle", didx.twfe, True),
                                                       ("unbalanced", didx.event_study, False),
                                                       ("mpdta-x-lpop", didx.event_study, True),
                                                       ("base_stagg", didx.twfe, False)],
                         ids=["castle-twfe-cluster", "unbalanced-event_study-unit", "mpdta-event_study-cluster",
                              "base_stagg-twfe-unit"])
def test_spark_equals_in_memory(spark: Any, case: str, fn: Any, clustered: bool) -> None:
    """One fit per case (a Spark query costs about a second here): the other combinations run through DuckDB on
    the same SQL text."""
    make, covs, cl = CASES[case]
    df = make()
    covs = ["l_police", "popwt"] if case == "castle" else covs  # narrower queries: Spark compiles them faster
    kw = dict(**_roles(case), covariates=covs, cluster=cl if clustered else None)
    eng = fn(spark.createDataFrame(df), **kw)
    _check(fn(df, **kw), eng)
    assert dict(eng.design)["Engine"].startswith("Spark")
