"""``att_gt`` with covariates through the engines (didx.engines.cs_cov): the in-memory numbers from DuckDB and Spark.

Each case fits the same call on a pandas frame and through the engine (a Parquet file, a DuckDB relation, a Spark
DataFrame) and checks the ATT(g,t), the covariance of every cell and of the four aggregations, the pre-test, the
notes and the sample report to 1e-10 relative (the covariance as correlations, see assert_same_result).
Covariates: ``lpop`` (time-invariant) on mpdta, ``x1`` on base_stagg, the time-varying ``l_police`` and
``unemployrt`` on castle (so the covariates of period min(t, b) are used), and a simulated panel with a
time-varying covariate, balanced (units with gaps dropped) and unbalanced (``allow_unbalanced=True``). Rows with a
missing or infinite covariate (mpdta with a time-varying ``xt``, the simulated panel) are dropped and counted as in
memory: the same sample report and summary() too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx

duckdb = pytest.importorskip("duckdb")

from test_engines import REL, ROLES, write  # noqa: E402
from test_engines import assert_same_fit as engines_fit  # noqa: E402


def assert_same_result(mem: Any, eng: Any) -> None:
    """Estimates and SEs to 1e-10 relative; the covariance scaled to correlations to 1e-10 absolute. (The
    propensity scores converge to a relative coefficient change of 1e-12 in both paths, from sums added in a
    different order, so a covariance that nearly cancels, e.g. -3e-6 between SEs of 0.1, agrees to ~1e-14 absolute
    only: relative to the SEs' scale that is 1e-12.)"""
    assert mem.terms == eng.terms
    np.testing.assert_allclose(eng.coef, mem.coef, rtol=REL, atol=1e-13)
    np.testing.assert_allclose(eng.std_error, mem.std_error, rtol=REL, atol=1e-14)
    se = np.sqrt(np.diag(mem.vcov_matrix))
    scale = np.outer(se, se)
    np.testing.assert_allclose(np.sqrt(np.diag(eng.vcov_matrix)), se, rtol=REL, atol=1e-15)
    np.testing.assert_allclose(eng.vcov_matrix / np.where(scale > 0, scale, 1), mem.vcov_matrix /
                               np.where(scale > 0, scale, 1), rtol=0, atol=REL)


def assert_same_fit(mem: Any, eng: Any) -> None:
    """tests/test_engines.py's check (cells, headline, pre-test, notes, sample report, the four aggregations) with
    the covariance compared as correlations."""
    engines_fit(mem, eng, same=assert_same_result)


def _mpdta() -> pd.DataFrame:
    df = didx.datasets.load("mpdta")[["year", "countyreal", "lemp", "lpop", "first.treat"]].copy()
    df["region"] = df["countyreal"] % 7
    return df


def _base_stagg() -> pd.DataFrame:
    return didx.datasets.load("base_stagg")[["id", "year", "year_treated", "y", "x1"]].copy()


def _castle() -> pd.DataFrame:
    df = didx.datasets.load("castle")
    df = df[["sid", "year", "l_homicide", "treatment_date", "l_police", "unemployrt", "south"]].copy()
    df["region"] = df["south"].astype(str)
    return df


def _simulated() -> pd.DataFrame:
    """A staggered panel with a time-varying covariate that shifts the trends, 8% of the rows removed (the default
    balancing drops the units with gaps) and a coarser cluster."""
    df = didx.datasets.simulate_staggered(300, 6, cohorts=3, seed=4)[["unit", "time", "cohort", "y"]].copy()
    rng = np.random.default_rng(2)
    x = rng.normal(size=len(df)) + 0.1 * df["time"].to_numpy()
    df["x"] = x
    df["y"] = df["y"] + 0.5 * x * df["time"] + 1e3  # a large level: the centring at work
    df = df[rng.random(len(df)) > 0.08].copy()
    df["cl"] = df["unit"] // 20
    return df.reset_index(drop=True)


DATA = {"mpdta": _mpdta, "base_stagg": _base_stagg, "castle": _castle, "simulated": _simulated}
COVS = {"mpdta": ["lpop"], "base_stagg": ["x1"], "castle": ["l_police", "unemployrt"], "simulated": ["x"]}
ROLE = {**{k: ROLES[k] for k in ("mpdta", "base_stagg", "castle")},
        "simulated": dict(y="y", unit="unit", time="time", cohort="cohort")}

CASES: list[tuple[str, dict[str, Any]]] = [
    ("mpdta", {"est_method": "reg"}),
    ("mpdta", {"est_method": "ipw", "control_group": "not_yet", "base_period": "universal"}),
    ("mpdta", {"est_method": "dr", "cluster": "region"}),
    ("mpdta", {"est_method": "dr", "anticipation": 1, "control_group": "not_yet"}),
    ("base_stagg", {"est_method": "reg", "control_group": "not_yet"}),
    ("base_stagg", {"est_method": "ipw", "base_period": "universal", "anticipation": 1}),
    ("base_stagg", {"est_method": "dr"}),
    ("castle", {"est_method": "dr", "cluster": "region"}),
    ("castle", {"est_method": "reg", "control_group": "not_yet", "base_period": "universal"}),
    ("castle", {"est_method": "ipw"}),
    ("simulated", {"est_method": "dr", "cluster": "cl"}),
    ("simulated", {"est_method": "reg", "control_group": "not_yet"}),
    ("simulated", {"est_method": "ipw", "cluster": "cl", "base_period": "universal"}),
    # unbalanced panels: the repeated-cross-section cells (reg, ipw)
    ("simulated", {"est_method": "reg", "allow_unbalanced": True, "cluster": "cl"}),
    ("simulated", {"est_method": "ipw", "allow_unbalanced": True}),
    ("simulated", {"est_method": "reg", "allow_unbalanced": True, "control_group": "not_yet",
                   "base_period": "universal"}),
    ("simulated", {"est_method": "ipw", "allow_unbalanced": True, "control_group": "not_yet", "anticipation": 1,
                   "cluster": "cl"}),
    ("simulated", {"est_method": "dr", "allow_unbalanced": True, "cluster": "cl"}),
    ("simulated", {"est_method": "dr", "allow_unbalanced": True, "control_group": "not_yet",
                   "base_period": "universal"}),
]


def case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, opts = case
    return name + "".join(f"-{k}={v}" for k, v in opts.items())


def _fit(data: Any, name: str, **opts: Any) -> Any:
    return didx.att_gt(data, **ROLE[name], covariates=COVS[name], **opts)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_covariates_parquet_equals_in_memory(case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    name, opts = case
    df = DATA[name]()
    mem = _fit(df, name, **opts)
    eng = _fit(write(df, tmp_path), name, **opts)
    assert_same_fit(mem, eng)
    assert dict(eng.design)["Engine"].startswith("DuckDB")
    assert dict(eng.design)["Covariates"] == ", ".join(COVS[name])


@pytest.mark.parametrize("name", ["mpdta", "castle"])
def test_covariates_relation_equals_in_memory(name: str) -> None:
    df = DATA[name]()
    con = duckdb.connect()
    con.register("panel", df)
    mem = _fit(df, name, cluster="region")
    eng = _fit(con.sql("SELECT * FROM panel"), name, cluster="region")
    assert_same_fit(mem, eng)
    assert "relation" in dict(eng.design)["Engine"]


def test_string_units_csv_and_summary(tmp_path: Path) -> None:
    """Units labelled by strings, a float time column, a CSV file; summary() names the engine and the covariates."""
    df = _castle()
    df = df.assign(state="s" + df["sid"].astype(str), year=df["year"].astype(float))
    kw = dict(ROLE["castle"], unit="state", covariates=COVS["castle"], est_method="dr", cluster="region")
    mem = didx.att_gt(df, **kw)
    eng = didx.att_gt(write(df, tmp_path, "csv"), **kw)
    assert_same_fit(mem, eng)
    text = eng.summary()
    assert "Engine: DuckDB" in text and "l_police, unemployrt" in text


def test_covariates_matter() -> None:
    """A check that the cases above can fail: with the trend-shifting covariate the three methods differ from the
    unconditional estimate and from each other, through the engine too."""
    df = _simulated()
    con = duckdb.connect()
    con.register("panel", df)
    rel = con.sql("SELECT * FROM panel")
    plain = didx.att_gt(rel, **ROLE["simulated"])
    fits = {m: _fit(rel, "simulated", est_method=m) for m in ("reg", "ipw", "dr")}
    assert abs(fits["dr"].estimate - plain.estimate) > 1e-3
    assert abs(fits["reg"].estimate - fits["ipw"].estimate) > 1e-6


@pytest.mark.parametrize("method", ["reg", "ipw", "dr"])
def test_cells_that_fail_are_skipped_alike(method: str, tmp_path: Path) -> None:
    """A covariate 0 for every never-treated unit: the cells compared with them alone have a singular outcome
    regression (reg, dr) or a propensity score that separates the groups perfectly (ipw) and are skipped, with the
    same note, in both paths."""
    df = _mpdta()
    df["xs"] = np.where(df["first.treat"] > 0, df["lpop"], 0.0)
    kw = dict(**ROLE["mpdta"], covariates=["xs"], est_method=method, control_group="not_yet")
    mem = didx.att_gt(df, **kw)
    eng = didx.att_gt(write(df, tmp_path), **kw)
    assert any("not estimated: the 2x2 estimator failed" in n for n in mem.notes)
    assert_same_fit(mem, eng)


def test_gaussian_bootstrap_with_cluster(tmp_path: Path) -> None:
    df = _mpdta()
    kw = dict(est_method="dr", cluster="region", n_bootstrap=499, multiplier="gaussian", seed=3)
    mem = _fit(df, "mpdta", **kw)
    eng = _fit(write(df, tmp_path), "mpdta", **kw)
    assert_same_fit(mem, eng)
    dyn_m, dyn_e = mem.aggregate("dynamic"), eng.aggregate("dynamic")
    assert dyn_e.uniform_critical_value() == pytest.approx(dyn_m.uniform_critical_value(), rel=1e-10)
    pd.testing.assert_frame_equal(dyn_e.tidy(), dyn_m.tidy(), rtol=1e-9)


def test_cluster_rademacher_bootstrap(tmp_path: Path) -> None:
    """Cluster-level draws from the engine's cluster x cohort sums (clusters in sorted label order, as a frame
    sorted by cluster numbers them in memory)."""
    df = _castle().sort_values(["region", "sid", "year"]).reset_index(drop=True)
    kw = dict(est_method="reg", cluster="region", n_bootstrap=999, seed=7)
    mem = _fit(df, "castle", **kw)
    eng = _fit(write(df, tmp_path), "castle", **kw)
    assert_same_fit(mem, eng)
    assert eng.aggregate("dynamic").uniform_critical_value() == pytest.approx(
        mem.aggregate("dynamic").uniform_critical_value(), rel=1e-10)


# ----------------------------------------------------------------------------------------------- refusals and errors
def test_unbalanced_outcome_level(tmp_path: Path) -> None:
    """The unbalanced cells regress outcome levels: the engine centres each period's outcome on its mean, so a
    level of 1e7 leaves the estimates and SEs as they are (to 1e-7 of the estimates' scale)."""
    df = _simulated()
    base = _fit(write(df, tmp_path / "a.parquet"), "simulated", allow_unbalanced=True, est_method="dr")
    df["y"] = df["y"] + 1e7
    big = _fit(write(df, tmp_path / "b.parquet"), "simulated", allow_unbalanced=True, est_method="dr")
    np.testing.assert_allclose(big.coef, base.coef, rtol=0, atol=1e-7)
    np.testing.assert_allclose(big.std_error, base.std_error, rtol=1e-7)


# ----------------------------------------------------------------------------------------------- missing covariates
def _mpdta_missing() -> pd.DataFrame:
    """mpdta with a time-varying covariate ``xt`` and missing / infinite values in it and in ``lpop``: single
    rows (the balancing then drops their units), a unit with ``lpop`` missing in every row (removed by that reason),
    a unit whose rows go by two reasons (counted under the later one) and a row with both the outcome and ``lpop``
    missing (counted under the outcome, the earlier reason)."""
    df = _mpdta()
    rng = np.random.default_rng(5)
    df["xt"] = rng.normal(size=len(df)) + 0.2 * (df["year"] - 2004) * (df["first.treat"] > 0)
    df["lemp"] = df["lemp"] + 0.3 * df["xt"]
    rows = rng.choice(np.arange(20, len(df)), 14, replace=False)
    df.loc[rows[:4], "lpop"] = np.nan
    df.loc[rows[4:6], "lpop"] = np.inf
    df.loc[rows[6:10], "xt"] = np.nan
    df.loc[rows[10:13], "xt"] = -np.inf
    df.loc[rows[13], ["lemp", "lpop"]] = np.nan
    unit = df["countyreal"]
    df.loc[unit == unit.iloc[0], "lpop"] = np.nan
    both = unit == unit.iloc[10]
    df.loc[both, "lpop"] = np.nan
    df.loc[both & (df["year"] >= 2006), ["lpop", "xt"]] = [1.0, np.inf]
    return df


def _simulated_missing() -> pd.DataFrame:
    """The simulated panel (gaps already) with the covariate missing or infinite in a few more rows."""
    df = _simulated()
    rng = np.random.default_rng(8)
    rows = rng.choice(len(df), 9, replace=False)
    df.loc[rows[:6], "x"] = np.nan
    df.loc[rows[6:], "x"] = np.inf
    return df


MISSING = {"mpdta": _mpdta_missing, "simulated": _simulated_missing}
MISSING_COVS = {"mpdta": ["lpop", "xt"], "simulated": ["x"]}
MISSING_CASES: list[tuple[str, dict[str, Any]]] = [
    ("mpdta", {"est_method": "reg"}),
    ("mpdta", {"est_method": "ipw", "control_group": "not_yet", "cluster": "region"}),
    ("mpdta", {"est_method": "dr", "base_period": "universal"}),
    ("mpdta", {"est_method": "reg", "allow_unbalanced": True, "cluster": "region"}),
    ("mpdta", {"est_method": "ipw", "allow_unbalanced": True}),
    ("mpdta", {"est_method": "dr", "allow_unbalanced": True, "control_group": "not_yet"}),
    ("simulated", {"est_method": "dr", "cluster": "cl"}),
    ("simulated", {"est_method": "reg", "allow_unbalanced": True}),
    ("simulated", {"est_method": "dr", "allow_unbalanced": True, "cluster": "cl", "base_period": "universal"}),
]


def _fit_missing(data: Any, name: str, **opts: Any) -> Any:
    return didx.att_gt(data, **ROLE[name], covariates=MISSING_COVS[name], **opts)


def _without_engine_line(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("Engine"))


@pytest.mark.parametrize("case", MISSING_CASES, ids=case_id)
def test_missing_covariates_dropped_as_in_memory(case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    """Rows with a missing or infinite covariate are dropped and counted by reason as in memory, then the sample
    rules (balancing, or the unbalanced estimators) see the units they leave with gaps: the same estimates, SEs,
    sample report, notes and summary (but its Engine line)."""
    name, opts = case
    df = MISSING[name]()
    mem = _fit_missing(df, name, **opts)
    eng = _fit_missing(write(df, tmp_path), name, **opts)
    assert_same_fit(mem, eng)
    assert _without_engine_line(eng.summary()) == _without_engine_line(mem.summary())
    assert "Engine: DuckDB" in eng.summary()
    lines = mem.sample.lines()
    assert any("missing covariate" in s for s in lines) and any("infinite covariate" in s for s in lines)
    if name == "mpdta":
        assert mem.sample.n_input_rows == len(df)
        assert any(s.endswith("missing covariate (lpop)") and "(1 units removed entirely)" in s for s in lines)
        assert any(s.endswith("infinite covariate (xt)") and "(1 units removed entirely)" in s for s in lines)
        assert any(s.endswith("(lemp)") for s in lines)
        if not opts.get("allow_unbalanced"):
            assert any("not observed in every period" in s for s in lines)


@pytest.mark.parametrize("unbalanced", [False, True])
def test_missing_covariates_and_cluster(unbalanced: bool, tmp_path: Path) -> None:
    """Missing cluster values too: a row missing both a covariate and its cluster counts under the covariate (the
    earlier reason in memory), the others under the cluster."""
    df = _mpdta_missing()
    df["region"] = df["region"].astype(float)
    df.loc[[30, 31, 47], "region"] = np.nan
    df.loc[30, "lpop"] = np.nan
    opts = {"est_method": "dr", "cluster": "region", "allow_unbalanced": unbalanced}
    mem = _fit_missing(df, "mpdta", **opts)
    eng = _fit_missing(write(df, tmp_path), "mpdta", **opts)
    assert "  2 rows (0 units removed entirely): missing cluster (region)" in mem.sample.lines()
    assert_same_fit(mem, eng)


def test_missing_covariates_relation(tmp_path: Path) -> None:
    df = _mpdta_missing()
    con = duckdb.connect()
    con.register("panel", df)
    mem = _fit_missing(df, "mpdta", est_method="dr", cluster="region")
    eng = _fit_missing(con.sql("SELECT * FROM panel"), "mpdta", est_method="dr", cluster="region")
    assert_same_fit(mem, eng)
    assert "relation" in dict(eng.design)["Engine"]


def test_missing_covariates_change_the_sample(tmp_path: Path) -> None:
    """A check that the cases above can fail: the rows the covariates drop change the fit (the same data without
    those values gives other estimates, other units)."""
    df = _mpdta_missing()
    clean = df.assign(lpop=df["lpop"].fillna(3.0).replace(np.inf, 3.0), xt=df["xt"].fillna(0.0).replace(
        [np.inf, -np.inf], 0.0), lemp=df["lemp"].fillna(5.0))
    a = _fit_missing(write(df, tmp_path / "a.parquet"), "mpdta", est_method="dr")
    b = _fit_missing(write(clean, tmp_path / "b.parquet"), "mpdta", est_method="dr")
    assert a.sample.n_units < b.sample.n_units
    assert np.max(np.abs(a.coef - b.coef)) > 1e-6


def test_covariate_column_errors(tmp_path: Path) -> None:
    df = _mpdta()
    df["name"] = "a"
    path = write(df, tmp_path)
    with pytest.raises(didx.ColumnNotFoundError, match=r"'lpopp'"):
        didx.att_gt(path, **ROLE["mpdta"], covariates=["lpopp"])
    with pytest.raises(didx.DataError, match=r"covariate column 'name' must be numeric"):
        didx.att_gt(path, **ROLE["mpdta"], covariates=["name"])
    with pytest.raises(didx.DataError):  # the in-memory path refuses it too
        didx.att_gt(df, **ROLE["mpdta"], covariates=["name"])


def test_weights_still_refused(tmp_path: Path) -> None:
    df = _mpdta()
    with pytest.raises(didx.InvalidOptionError, match=r"weights.*Fix: pass an in-memory data frame"):
        _fit(write(df, tmp_path), "mpdta", weights="region")


# ----------------------------------------------------------------------------------------------- Spark
@pytest.mark.spark
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning", "ignore::FutureWarning",
                            "ignore::UserWarning")
@pytest.mark.parametrize("case", [CASES[2], CASES[8], CASES[11], CASES[13]], ids=case_id)  # base_stagg: 40 s in Spark
def test_covariates_spark_equals_in_memory(spark: Any, case: tuple[str, dict[str, Any]]) -> None:
    name, opts = case
    df = DATA[name]()
    mem = _fit(df, name, **opts)
    eng = _fit(spark.createDataFrame(df), name, **opts)
    assert_same_fit(mem, eng)
    assert dict(eng.design)["Engine"].startswith("Spark")


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning", "ignore::FutureWarning",
                            "ignore::UserWarning")
def test_missing_covariates_spark(spark: Any) -> None:
    df = _mpdta_missing()
    opts = {"est_method": "dr", "cluster": "region"}
    mem = _fit_missing(df, "mpdta", **opts)
    eng = _fit_missing(spark.createDataFrame(df), "mpdta", **opts)
    assert_same_fit(mem, eng)
    assert dict(eng.design)["Engine"].startswith("Spark")
