"""imputation (BJS) and did2s (Gardner) pushed into DuckDB and Spark (didx.engines.imputation).

As in tests/test_engines.py: every case fits the same call on a pandas frame and through an engine (a Parquet file
in tmp_path, a DuckDB relation, a Spark DataFrame in local mode) and checks estimates, standard errors, the full
covariance, the sample report (dropped and non-imputable rows counted) and summary() (which adds the engine) to
1e-10 relative, on mpdta, base_stagg, castle and the simulated unbalanced panel; then panels with always-treated
units and without never-treated units (treated observations that cannot be imputed). Options that need the rows
raise an error naming the in-memory alternative.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from test_engines import CLUSTER, DATA, REL, ROLES, _summary_without_engine, write

duckdb = pytest.importorskip("duckdb")

# (options, needs a cluster column): every option the engines cover
IMPUTATION_CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, False),
    ({"horizons": True}, False),
    ({"horizons": True, "leave_out": True}, False),
    ({"horizons": True, "pretrends": True}, False),
    ({"horizons": True}, True),
    ({"horizons": True, "leave_out": True}, True),
    ({"horizons": [0, 2], "pretrends": 2}, True),
]
DID2S_CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, False),
    ({"second_stage": "event_study"}, False),
    ({}, True),
    ({"second_stage": "event_study"}, True),
    ({"second_stage": "event_study", "ref": [-1, -2], "window": (-3, 2)}, False),
]


def _cases(cases: list[tuple[dict[str, Any], bool]]) -> list[Any]:
    """One case per dataset and option set (the clustered ones on the datasets with a cluster column)."""
    return [pytest.param(n, {**o, "cluster": CLUSTER[n]} if cl else o, id=f"{n}-{i}" + ("-cl" if cl else ""))
            for n in DATA for i, (o, cl) in enumerate(cases) if not cl or CLUSTER[n]]


def assert_same(mem: Any, eng: Any) -> None:
    """Estimates and SEs to 1e-10 relative; covariances to 1e-10 of sqrt(V_ii V_jj) (an off-diagonal entry near
    zero carries the rounding of the diagonal's magnitude, about 1e-13 of it in either path); term information,
    sample report, inference and summary (bar the engine)."""
    assert mem.terms == eng.terms
    np.testing.assert_allclose(eng.coef, mem.coef, rtol=REL, atol=1e-13)
    np.testing.assert_allclose(eng.std_error, mem.std_error, rtol=REL, atol=1e-14)
    scale = np.sqrt(np.outer(np.diag(mem.vcov_matrix), np.diag(mem.vcov_matrix)))
    assert np.all(np.abs(eng.vcov_matrix - mem.vcov_matrix) <= REL * scale + 1e-15)
    assert eng.sample.lines() == mem.sample.lines()
    assert eng.inference == mem.inference
    assert eng.notes == mem.notes
    for k, v in mem.term_info.items():
        np.testing.assert_allclose(eng.term_info[k], v, rtol=1e-12)
    assert _summary_without_engine(eng) == _summary_without_engine(mem)
    assert "Engine: " in eng.summary()


# ----------------------------------------------------------------------------------------------- DuckDB
@pytest.mark.parametrize(("name", "opts"), _cases(IMPUTATION_CASES))
def test_imputation_parquet_equals_in_memory(name: str, opts: dict[str, Any], tmp_path: Path) -> None:
    df = DATA[name]()
    mem = didx.imputation(df, **ROLES[name], **opts)
    eng = didx.imputation(write(df, tmp_path), **ROLES[name], **opts)
    assert_same(mem, eng)
    assert dict(eng.design)["Engine"].startswith("DuckDB")
    if opts.get("horizons") is True and "pretrends" not in opts:
        assert_same(mem.aggregate("average"), eng.aggregate("average"))


@pytest.mark.parametrize(("name", "opts"), _cases(DID2S_CASES))
def test_did2s_parquet_equals_in_memory(name: str, opts: dict[str, Any], tmp_path: Path) -> None:
    df = DATA[name]()
    mem = didx.did2s(df, **ROLES[name], **opts)
    eng = didx.did2s(write(df, tmp_path), **ROLES[name], **opts)
    assert_same(mem, eng)
    if opts.get("second_stage") == "event_study":
        assert eng.pretrend_test().statistic == pytest.approx(mem.pretrend_test().statistic, rel=1e-9)


@pytest.mark.parametrize("name", list(DATA))
def test_relation_equals_in_memory(name: str) -> None:
    df = DATA[name]()
    con = duckdb.connect()
    con.register("panel", df)
    rel = con.sql("SELECT * FROM panel")
    kw = dict(**ROLES[name], cluster=CLUSTER[name])
    assert_same(didx.imputation(df, **kw, horizons=True), didx.imputation(rel, **kw, horizons=True))
    assert_same(didx.did2s(df, **kw, second_stage="event_study"), didx.did2s(rel, **kw, second_stage="event_study"))
    assert "relation" in dict(didx.did2s(rel, **kw).design)["Engine"]


def _always_treated() -> pd.DataFrame:
    """mpdta with a ninth of the counties treated from the first period: their rows cannot be imputed."""
    df = DATA["mpdta"]()
    df.loc[df["countyreal"] % 9 == 0, "first.treat"] = 2003
    return df


def _no_never_treated() -> pd.DataFrame:
    """mpdta's treated counties only: the last period has no untreated observation (nothing to impute from)."""
    df = DATA["mpdta"]()
    return df[df["first.treat"] > 0].copy()


@pytest.mark.parametrize("make", [_always_treated, _no_never_treated], ids=["always-treated", "no-never-treated"])
@pytest.mark.parametrize("opts", [{}, {"horizons": True, "leave_out": True, "cluster": "region"}],
                         ids=["static", "horizons-leave_out-cl"])
def test_non_imputable_rows_are_counted(make: Any, opts: dict[str, Any], tmp_path: Path) -> None:
    df = make()
    path = write(df, tmp_path)
    mem = didx.imputation(df, **ROLES["mpdta"], **opts)
    eng = didx.imputation(path, **ROLES["mpdta"], **opts)
    assert_same(mem, eng)
    assert any("cannot be imputed" in d.reason for d in eng.sample.dropped)
    for kw in ({}, {"second_stage": "event_study"}):
        assert_same(didx.did2s(df, **ROLES["mpdta"], **kw), didx.did2s(path, **ROLES["mpdta"], **kw))


def test_dropped_rows_are_counted(tmp_path: Path) -> None:
    """Missing outcomes, times and units are counted as in memory."""
    df = DATA["unbalanced"]()
    df.loc[3, "time"] = np.nan
    df.loc[10, "unit"] = np.nan
    kw = dict(**ROLES["unbalanced"], cluster="cl")
    path = write(df, tmp_path)
    assert_same(didx.imputation(df, **kw, horizons=True, leave_out=True),
                didx.imputation(path, **kw, horizons=True, leave_out=True))
    assert_same(didx.did2s(df, **kw, second_stage="event_study"), didx.did2s(path, **kw, second_stage="event_study"))


@pytest.mark.parametrize("fn", [didx.imputation, didx.did2s])
def test_centring_keeps_digits_at_a_large_level(fn: Any, tmp_path: Path) -> None:
    """An outcome around 1e8 with unit spread (a float64 then holds it to about 1.5e-8): the engine centres on the
    cell means and removes the outcome's level before forming sums, so its estimates move by less than 1e-8 (the
    in-memory path's own residuals y - Yhat(0) at the 1e8 level move its estimates by about 7e-8 here)."""
    df = DATA["unbalanced"]()
    kw = dict(**ROLES["unbalanced"], cluster="cl")
    base = fn(write(df, tmp_path), **kw)
    df["y"] = df["y"] + 1e8
    (tmp_path / "big").mkdir()
    big = fn(write(df, tmp_path / "big"), **kw)
    np.testing.assert_allclose(big.coef, base.coef, rtol=0, atol=1e-8)
    np.testing.assert_allclose(big.std_error, base.std_error, rtol=1e-8)


def test_refusals(tmp_path: Path) -> None:
    df = DATA["mpdta"]()
    df["w"] = 1.0
    df["D"] = ((df["year"] >= df["first.treat"]) & (df["first.treat"] > 0)).astype(int)
    path = write(df, tmp_path)
    roles = ROLES["mpdta"]
    fix = r"not available through the engines yet. Fix: pass an in-memory data frame"
    with pytest.raises(didx.InvalidOptionError, match=r"covariates " + fix):
        didx.imputation(path, **roles, covariates="region")
    with pytest.raises(didx.InvalidOptionError, match=r"weights " + fix):
        didx.imputation(path, **roles, weights="w")
    with pytest.raises(didx.InvalidOptionError, match=r"treatment_weights= " + fix):
        didx.imputation(path, **roles, treatment_weights="w")
    with pytest.raises(didx.InvalidOptionError, match=r"fe=.*region.*" + fix):
        didx.imputation(path, **roles, fe=["countyreal", "year", "region"])
    with pytest.raises(didx.InvalidOptionError, match=r"covariates " + fix):
        didx.did2s(path, **roles, covariates="region")
    with pytest.raises(didx.InvalidOptionError, match=r"treat= .*" + fix):
        didx.did2s(path, y="lemp", unit="countyreal", time="year", treat="D")
    with pytest.raises(didx.InvalidOptionError, match=r"horizon\(s\) 9 have no imputable"):
        didx.imputation(path, **roles, horizons=[9])
    with pytest.raises(didx.InvalidOptionError, match=r"ref=-9 is not an event time"):
        didx.did2s(path, **roles, second_stage="event_study", ref=-9)
    eng = didx.imputation(path, **roles, horizons=True)
    with pytest.raises(didx.DidxError, match=r"engine|countyreal"):
        eng.with_vcov(cluster="region")
    assert_same(eng, eng.with_vcov(cluster="countyreal"))


@pytest.mark.parametrize("fn", [didx.imputation, didx.did2s])
def test_bad_input_gives_the_in_memory_errors(fn: Any, tmp_path: Path) -> None:
    """Duplicate unit-periods, a cohort varying within a unit, a missing or non-numeric outcome: the in-memory
    error types; a missing file: a DataError."""
    df = DATA["mpdta"]()
    varying = df.copy()
    varying.loc[varying.index[:2], "first.treat"] = [2004, 2006]
    text = df.assign(lemp=df["lemp"].astype(str))
    for k, (bad, roles) in enumerate([(pd.concat([df, df.head(3)]), ROLES["mpdta"]), (varying, ROLES["mpdta"]),
                                      (df, dict(ROLES["mpdta"], y="nothere")), (text, ROLES["mpdta"])]):
        with pytest.raises(didx.DidxError) as mem:
            fn(bad, **roles)
        with pytest.raises(type(mem.value)):
            fn(write(bad, tmp_path / f"bad{k}.parquet"), **roles)
    with pytest.raises(didx.DataError, match=r"no file matches"):
        fn(str(tmp_path / "missing.parquet"), **ROLES["mpdta"])


# ----------------------------------------------------------------------------------------------- Spark
SPARK_CASES = [("castle", didx.imputation, {"horizons": True, "pretrends": 2, "cluster": "region"}),
               ("unbalanced", didx.imputation, {"horizons": True, "leave_out": True}),
               ("mpdta", didx.did2s, {"second_stage": "event_study", "cluster": "region"})]


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning", "ignore::FutureWarning")
@pytest.mark.parametrize(("name", "fn", "opts"), SPARK_CASES, ids=[f"{n}-{f.__name__}" for n, f, _ in SPARK_CASES])
def test_spark_equals_in_memory(spark: Any, name: str, fn: Any, opts: dict[str, Any]) -> None:
    df = DATA[name]()
    mem = fn(df, **ROLES[name], **opts)
    eng = fn(spark.createDataFrame(df), **ROLES[name], **opts)
    assert_same(mem, eng)
    assert dict(eng.design)["Engine"].startswith("Spark")
