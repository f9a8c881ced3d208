"""Estimators pushed into DuckDB (didx.engines): the in-memory numbers from files and relations.

Every case fits the same call on a pandas frame and on the same data through DuckDB (a Parquet file written in
tmp_path, a CSV file, a DuckDB relation) and checks estimates, standard errors, the four aggregations and the sample
report to 1e-10 relative. Bad input through the engine raises the in-memory error types. The Spark engine runs the
same cases in tests/test_engines_spark.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx

duckdb = pytest.importorskip("duckdb")

REL = 1e-10
AGGREGATIONS = ("simple", "group", "dynamic", "calendar")


# ----------------------------------------------------------------------------------------------- data
def _mpdta() -> pd.DataFrame:
    df = didx.datasets.load("mpdta")[["year", "countyreal", "lemp", "first.treat"]].copy()
    df["region"] = df["countyreal"] % 7  # a coarser cluster, constant within county
    return df


def _base_stagg() -> pd.DataFrame:
    return didx.datasets.load("base_stagg")[["id", "year", "year_treated", "y"]].copy()


def _castle() -> pd.DataFrame:
    df = didx.datasets.load("castle")
    df = df[["sid", "state", "year", "l_homicide", "treatment_date", "northeast", "midwest", "south"]].copy()
    df["region"] = np.select([df["northeast"] == 1, df["midwest"] == 1, df["south"] == 1],
                             ["northeast", "midwest", "south"], "west")
    return df[["sid", "state", "year", "l_homicide", "treatment_date", "region"]]


def _unbalanced() -> pd.DataFrame:
    """A simulated staggered panel with 12% of the rows removed and a few missing outcomes."""
    df = didx.datasets.simulate_staggered(400, 8, cohorts=3, seed=11)[["unit", "time", "cohort", "y"]]
    rng = np.random.default_rng(5)
    df = df[rng.random(len(df)) > 0.12].copy()
    df.loc[df.index[rng.choice(len(df), 6, replace=False)], "y"] = np.nan
    df["cl"] = df["unit"] // 25
    return df.reset_index(drop=True)


DATA: dict[str, Callable[[], pd.DataFrame]] = {"mpdta": _mpdta, "base_stagg": _base_stagg, "castle": _castle,
                                               "unbalanced": _unbalanced}
ROLES = {"mpdta": dict(y="lemp", unit="countyreal", time="year", cohort="first.treat"),
         "base_stagg": dict(y="y", unit="id", time="year", cohort="year_treated"),
         "castle": dict(y="l_homicide", unit="sid", time="year", cohort="treatment_date"),
         "unbalanced": dict(y="y", unit="unit", time="time", cohort="cohort")}
CLUSTER = {"mpdta": "region", "castle": "region", "unbalanced": "cl", "base_stagg": None}

# (dataset, options): every control group, base period, anticipation, clustering and the unbalanced modes
CASES: list[tuple[str, dict[str, Any]]] = [
    ("mpdta", {}),
    ("mpdta", {"control_group": "not_yet", "base_period": "universal"}),
    ("mpdta", {"anticipation": 1, "cluster": "region"}),
    ("base_stagg", {"control_group": "not_yet"}),
    ("base_stagg", {"base_period": "universal", "anticipation": 1}),
    ("castle", {"cluster": "region"}),
    ("castle", {"control_group": "not_yet", "base_period": "universal"}),
    ("unbalanced", {}),
    ("unbalanced", {"allow_unbalanced": True, "cluster": "cl"}),
    ("unbalanced", {"allow_unbalanced": True, "control_group": "not_yet", "base_period": "universal"}),
]


def case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, opts = case
    return name + "".join(f"-{k}={v}" for k, v in opts.items())


# ----------------------------------------------------------------------------------------------- comparisons
def assert_same_result(mem: Any, eng: Any) -> None:
    assert mem.terms == eng.terms
    np.testing.assert_allclose(eng.coef, mem.coef, rtol=REL, atol=1e-13)
    np.testing.assert_allclose(eng.std_error, mem.std_error, rtol=REL, atol=1e-14)
    np.testing.assert_allclose(eng.vcov_matrix, mem.vcov_matrix, rtol=REL, atol=1e-15)


def assert_same_fit(mem: Any, eng: Any, same: Callable[[Any, Any], None] | None = None) -> None:
    """Cells, headline, pre-test, the four aggregations and the sample report; ``same`` compares two results
    (default :func:`assert_same_result`)."""
    same = same or assert_same_result
    same(mem, eng)
    assert eng.sample.lines() == mem.sample.lines()
    assert eng.notes == mem.notes
    if mem.pretest is not None:
        assert eng.pretest.statistic == pytest.approx(mem.pretest.statistic, rel=1e-9)
    for kind in AGGREGATIONS:
        same(mem.aggregate(kind), eng.aggregate(kind))
    same(mem.aggregate("dynamic", min_e=-2, max_e=2), eng.aggregate("dynamic", min_e=-2, max_e=2))


def write(df: pd.DataFrame, tmp_path: Path, fmt: str = "parquet") -> str:
    path = tmp_path / f"panel.{fmt}" if tmp_path.suffix == "" else tmp_path
    if fmt == "parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return str(path)


# ----------------------------------------------------------------------------------------------- att_gt
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_att_gt_parquet_equals_in_memory(case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    name, opts = case
    df = DATA[name]()
    mem = didx.att_gt(df, **ROLES[name], **opts)
    eng = didx.att_gt(write(df, tmp_path), **ROLES[name], **opts)
    assert_same_fit(mem, eng)
    assert dict(eng.design)["Engine"].startswith("DuckDB")
    assert "Engine: DuckDB" in eng.summary()


@pytest.mark.parametrize("name", list(DATA))
def test_att_gt_relation_equals_in_memory(name: str) -> None:
    df = DATA[name]()
    con = duckdb.connect()
    con.register("panel", df)
    rel = con.sql("SELECT * FROM panel")
    mem = didx.att_gt(df, **ROLES[name], cluster=CLUSTER[name])
    eng = didx.att_gt(rel, **ROLES[name], cluster=CLUSTER[name])
    assert_same_fit(mem, eng)
    assert "relation" in dict(eng.design)["Engine"]


def test_csv_and_glob(tmp_path: Path) -> None:
    df = _mpdta()
    mem = didx.att_gt(df, **ROLES["mpdta"])
    assert_same_fit(mem, didx.att_gt(write(df, tmp_path, "csv"), **ROLES["mpdta"]))
    (tmp_path / "parts").mkdir()
    shuffled = df.sample(frac=1.0, random_state=1)
    for k in range(3):
        shuffled.iloc[k::3].to_parquet(tmp_path / "parts" / f"p{k}.parquet")
    eng = didx.att_gt(str(tmp_path / "parts" / "*.parquet"), **ROLES["mpdta"])
    assert_same_fit(mem, eng)
    assert "3 files" in dict(eng.design)["Engine"]


def test_dropped_rows_are_counted(tmp_path: Path) -> None:
    """Missing outcomes, times and units, units already treated, unbalanced units: the same sample report."""
    df = _unbalanced()
    df.loc[3, "time"] = np.nan
    df.loc[10, "unit"] = np.nan
    df.loc[df["unit"] == 7, "cohort"] = 1  # treated in the first period: dropped by did's rule
    mem = didx.att_gt(df, **ROLES["unbalanced"])
    eng = didx.att_gt(write(df, tmp_path), **ROLES["unbalanced"])
    assert_same_fit(mem, eng)
    reasons = [d.reason for d in eng.sample.dropped]
    assert any("missing outcome" in r for r in reasons) and any("already treated" in r for r in reasons)
    assert any("not observed in every period" in r for r in reasons)


def test_centring_keeps_digits_at_a_large_level(tmp_path: Path) -> None:
    """An outcome around 1e8 with unit spread: raw sums of products would lose about 16 digits; the engine centres
    each period on its cell means first, so estimates and SEs move by ~1e-8 relative at most (the in-memory path's
    own rounding of 1e8-level means is of that order)."""
    df = _unbalanced()
    base = didx.att_gt(write(df, tmp_path), **ROLES["unbalanced"], allow_unbalanced=True)
    df["y"] = df["y"] + 1e8
    (tmp_path / "big").mkdir()
    big = didx.att_gt(write(df, tmp_path / "big"), **ROLES["unbalanced"], allow_unbalanced=True)
    np.testing.assert_allclose(big.coef, base.coef, rtol=0, atol=1e-6)
    np.testing.assert_allclose(big.std_error, base.std_error, rtol=1e-6)


def test_gaussian_bootstrap_band(tmp_path: Path) -> None:
    df = _mpdta()
    kw = dict(**ROLES["mpdta"], n_bootstrap=499, multiplier="gaussian", seed=3)
    mem = didx.att_gt(df, **kw)
    eng = didx.att_gt(write(df, tmp_path), **kw)
    assert_same_fit(mem, eng)
    dyn_m, dyn_e = mem.aggregate("dynamic"), eng.aggregate("dynamic")
    assert dyn_e.uniform_critical_value() == pytest.approx(dyn_m.uniform_critical_value(), rel=1e-10)
    pd.testing.assert_frame_equal(dyn_e.tidy(), dyn_m.tidy(), rtol=1e-9)


def test_cluster_multiplier_bootstrap(tmp_path: Path) -> None:
    """Cluster-level Rademacher draws: the engine numbers its clusters in sorted label order, so on a frame sorted
    by cluster (where the in-memory codes follow the same order) the draws are the same."""
    df = _castle().sort_values(["region", "sid", "year"]).reset_index(drop=True)
    kw = dict(**ROLES["castle"], cluster="region", n_bootstrap=999, seed=7)
    mem = didx.att_gt(df, **kw)
    eng = didx.att_gt(write(df, tmp_path), **kw)
    assert_same_fit(mem, eng)
    assert eng.aggregate("dynamic").uniform_critical_value() == pytest.approx(
        mem.aggregate("dynamic").uniform_critical_value(), rel=1e-10)


def test_with_vcov_keeps_what_the_engine_summed(tmp_path: Path) -> None:
    df = _mpdta()
    mem = didx.att_gt(df, **ROLES["mpdta"], cluster="region")
    eng = didx.att_gt(write(df, tmp_path), **ROLES["mpdta"], cluster="region")
    assert_same_result(mem.with_vcov("analytic"), eng.with_vcov("analytic"))
    assert_same_result(mem.aggregate("group").with_vcov("analytic"), eng.aggregate("group").with_vcov("analytic"))
    with pytest.raises(didx.DidxError, match=r"not captured|engine|data="):
        eng.with_vcov(cluster="year")
    with pytest.raises(didx.InvalidOptionError, match=r"engine.*Fix"):
        eng.influence_functions()


# ----------------------------------------------------------------------------------------------- refusals and errors
@pytest.mark.parametrize(("opts", "match"), [
    # covariates run through the engines (balanced panels): tests/test_engines_cscov.py
    ({"n_bootstrap": 199}, "unit-level rademacher"),
    ({"weights": "region"}, "weights"),
])
def test_unsupported_options_name_the_alternative(opts: dict[str, Any], match: str, tmp_path: Path) -> None:
    df = _mpdta()
    df["lemp2"] = df["lemp"] * 2
    roles = dict(ROLES["mpdta"], y="lemp2")
    with pytest.raises(didx.InvalidOptionError, match=rf"{match}.*Fix: pass an in-memory data frame"):
        didx.att_gt(write(df, tmp_path), **roles, **opts)


def test_missing_file() -> None:
    with pytest.raises(didx.DataError, match=r"no file matches"):
        didx.att_gt("/nonexistent/panel.parquet", **ROLES["mpdta"])


def test_missing_column(tmp_path: Path) -> None:
    with pytest.raises(didx.ColumnNotFoundError, match=r"'lempp'.*Did you mean"):
        didx.att_gt(write(_mpdta(), tmp_path), **dict(ROLES["mpdta"], y="lempp"))


def test_non_numeric_outcome(tmp_path: Path) -> None:
    df = _mpdta()
    df["lemp"] = df["lemp"].map(lambda v: f"{v:.3f}")
    with pytest.raises(didx.DataError, match=r"outcome.*'lemp' must be numeric"):
        didx.att_gt(df, **ROLES["mpdta"])
    with pytest.raises(didx.DataError, match=r"outcome.*'lemp' must be numeric"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])


def test_cohort_varying_within_unit(tmp_path: Path) -> None:
    df = _mpdta()
    df.loc[(df["countyreal"] == df["countyreal"].iloc[0]) & (df["year"] == 2005), "first.treat"] = 2006
    with pytest.raises(didx.DataError, match=r"varies within"):
        didx.att_gt(df, **ROLES["mpdta"])
    with pytest.raises(didx.DataError, match=r"cohort column 'first.treat' varies within a unit \(e.g. "
                                             r"countyreal=\d+: 2006 and 2007\)|varies within a unit \(e.g. "
                                             r"countyreal=\d+: 2006 and never treated\)"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])
    df.loc[df.index[0], "first.treat"] = np.nan  # never treated in one row, a cohort in the others
    with pytest.raises(didx.DataError, match=r"varies within a unit \(e.g. countyreal=\d+: .* and never treated"):
        didx.att_gt(write(df, tmp_path / "nan.parquet"), **ROLES["mpdta"])


def test_duplicate_unit_period_rows(tmp_path: Path) -> None:
    df = _mpdta()
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    with pytest.raises(didx.DataError, match=r"duplicate"):
        didx.att_gt(df, **ROLES["mpdta"])
    with pytest.raises(didx.DataError, match=r"duplicate \(unit, time\) rows in 1 units, e.g. u=.*Fix"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])


def test_cluster_varying_within_unit(tmp_path: Path) -> None:
    df = _mpdta()
    df.loc[4, "region"] = 99
    with pytest.raises(didx.DataError, match=r"varies within units"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"], cluster="region")


def test_cohort_not_a_period(tmp_path: Path) -> None:
    df = _mpdta()
    df["first.treat"] = df["first.treat"].astype(float)
    df.loc[df["first.treat"] == 2006, "first.treat"] = 2005.5
    with pytest.raises(didx.DataError, match=r"2005.5"):
        didx.att_gt(df, **ROLES["mpdta"])
    with pytest.raises(didx.DataError, match=r"2005.5"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "panel.xlsx"
    path.write_text("x")
    with pytest.raises(didx.InvalidOptionError, match=r"cannot tell the format"):
        didx.att_gt(str(path), **ROLES["mpdta"])


# ----------------------------------------------------------------------------------------------- twfe
def _summary_without_engine(res: Any) -> str:
    engine = dict(res.design).get("Engine")
    return res.summary().replace(f"\n  Engine: {engine}", "") if engine else res.summary()


@pytest.mark.parametrize("name", ["mpdta", "base_stagg", "castle"])
@pytest.mark.parametrize("clustered", [False, True])
def test_twfe_parquet_equals_in_memory(name: str, clustered: bool, tmp_path: Path) -> None:
    df = DATA[name]()
    cluster = CLUSTER[name] if clustered else None
    mem = didx.twfe(df, **ROLES[name], cluster=cluster)
    eng = didx.twfe(write(df, tmp_path), **ROLES[name], cluster=cluster)
    assert_same_result(mem, eng)
    assert _summary_without_engine(eng) == _summary_without_engine(mem)
    assert "Engine: DuckDB" in eng.summary()
    assert_same_result(mem.with_vcov(cluster=cluster or ROLES[name]["unit"]),
                       eng.with_vcov(cluster=cluster or ROLES[name]["unit"]))


@pytest.mark.parametrize("clustered", [False, True])
def test_twfe_and_event_study_unbalanced(clustered: bool, tmp_path: Path) -> None:
    """Unbalanced panels: sums by (cohort, observation pattern); a few units observed once (singletons, kept and
    counted as fixest does)."""
    df = _unbalanced()
    single = df["unit"].isin(df["unit"].drop_duplicates().sample(6, random_state=2))
    df = pd.concat([df[~single], df[single].groupby("unit").head(1)], ignore_index=True)
    kw = dict(**ROLES["unbalanced"], cluster="cl" if clustered else None)
    path = write(df, tmp_path)
    for fn in (didx.twfe, didx.event_study):
        mem, eng = fn(df, **kw), fn(path, **kw)
        assert_same_result(mem, eng)
        assert _summary_without_engine(eng) == _summary_without_engine(mem)


def test_twfe_refusals(tmp_path: Path) -> None:
    mp = write(_mpdta(), tmp_path)
    with pytest.raises(didx.InvalidOptionError, match=r"weights.*in-memory"):  # covariates: test_engines_regcov
        didx.twfe(mp, **ROLES["mpdta"], covariates="region", weights="region")
    with pytest.raises(didx.InvalidOptionError, match=r"vcov='hetero'"):
        didx.twfe(mp, **ROLES["mpdta"], vcov="hetero")
    eng = didx.twfe(mp, **ROLES["mpdta"])
    with pytest.raises(didx.DidxError, match=r"not captured|engine|data="):
        eng.with_vcov(cluster="region")


def test_registry_declares_the_engines() -> None:
    """The registry's engines field says which estimators take a path, a relation or a Spark frame."""
    from didx.registry import REGISTRY

    covered = {"att_gt", "twfe", "event_study", "did2x2", "sun_abraham", "bacon", "imputation", "did2s"}
    assert {s.name for s in REGISTRY.values() if "duckdb" in s.engines} == covered
    assert {s.name for s in REGISTRY.values() if "spark" in s.engines} == covered


def test_string_units_and_float_times(tmp_path: Path) -> None:
    """Units labelled by strings, a float time column and never-treated coded as NaN (castle) or as a value after
    the last period (base_stagg's 10000)."""
    df = _castle()
    df["year"] = df["year"].astype(float)
    roles = dict(ROLES["castle"], unit="state")
    assert_same_fit(didx.att_gt(df, **roles), didx.att_gt(write(df, tmp_path), **roles))
    assert_same_result(didx.twfe(df, **roles), didx.twfe(write(df, tmp_path), **roles))


# ----------------------------------------------------------------------------------------------- event_study
def _balanced_unbalanced() -> pd.DataFrame:
    """The simulated panel kept balanced (its complete units)."""
    df = _unbalanced().dropna()
    return df[df.groupby("unit")["time"].transform("size") == df["time"].nunique()]


ES_DATA = {**DATA, "unbalanced": _balanced_unbalanced}


@pytest.mark.parametrize("name", list(ES_DATA))
@pytest.mark.parametrize("ref", [-1, [-1, -3]], ids=["ref-1", "ref-1-3"])
@pytest.mark.parametrize("clustered", [False, True], ids=["unit", "cluster"])
def test_event_study_parquet_equals_in_memory(name: str, ref: Any, clustered: bool, tmp_path: Path) -> None:
    df = ES_DATA[name]()
    kw = dict(**ROLES[name], ref=ref, cluster=CLUSTER[name] if clustered else None)
    mem = didx.event_study(df, **kw)
    eng = didx.event_study(write(df, tmp_path), **kw)
    assert_same_result(mem, eng)
    assert _summary_without_engine(eng) == _summary_without_engine(mem)
    np.testing.assert_array_equal(eng.term_info["n"], mem.term_info["n"])
    assert eng.pretrend_test().statistic == pytest.approx(mem.pretrend_test().statistic, rel=1e-9)
    assert_same_result(mem.aggregate("post"), eng.aggregate("post"))


@pytest.mark.parametrize("ref", [-1, [-1, -4]], ids=["collinear", "two-refs"])
def test_event_study_always_treated_and_no_never_treated(ref: Any, tmp_path: Path) -> None:
    """Always-treated units are dropped and counted; without never-treated units a single reference leaves one
    event time collinear (dropped and noted, as in memory)."""
    df = _mpdta()
    df = df[df["first.treat"] > 0].copy()
    df.loc[df["countyreal"] % 9 == 0, "first.treat"] = 2003
    mem = didx.event_study(df, **ROLES["mpdta"], ref=ref)
    eng = didx.event_study(write(df, tmp_path), **ROLES["mpdta"], ref=ref)
    assert_same_result(mem, eng)
    assert _summary_without_engine(eng) == _summary_without_engine(mem)
    assert any("always treated" in d.reason for d in eng.sample.dropped)


def test_event_study_refusals(tmp_path: Path) -> None:
    path = write(_mpdta(), tmp_path)
    with pytest.raises(didx.InvalidOptionError, match=r"window=.*Fix: pass an in-memory"):
        didx.event_study(path, **ROLES["mpdta"], window=(-2, 2))
    with pytest.raises(didx.DesignError, match=r"reference event time\(s\) -9"):
        didx.event_study(path, **ROLES["mpdta"], ref=-9)


def test_a_path_to_an_estimator_without_engine(tmp_path: Path) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"is a path; stacked needs a data frame.*Fix: read it"):
        didx.stacked(write(_mpdta(), tmp_path), **ROLES["mpdta"], window=(-2, 2))


# ----------------------------------------------------------------------------------------------- did2x2
def _two_periods() -> pd.DataFrame:
    df = _mpdta()
    df = df[df["year"].isin([2003, 2004]) & df["first.treat"].isin([0, 2004])].copy()
    df["post"] = (df["year"] == 2004).astype(int)
    df["g"] = (df["first.treat"] == 2004).astype(int)
    return df


@pytest.mark.parametrize(("name", "kw"), [
    ("card_krueger", dict(y="fte", treat="nj", post="d", unit="store_id")),  # unbalanced, missing outcomes
    ("card_krueger", dict(y="fte", treat="nj", post="d")),  # pooled: HC1
    ("card_krueger", dict(y="fte", treat="nj", post="d", cluster="store_id")),  # pooled, CR1
    ("card_krueger", dict(y="fte", treat="nj", post="d", cluster="chain")),  # pooled, CR1 by a coarser column
    ("mpdta", dict(y="lemp", treat="g", post="post", unit="countyreal")),
    ("mpdta", dict(y="lemp", treat="g", post="post", unit="countyreal", cluster="region")),
])
def test_did2x2_panel_parquet_equals_in_memory(name: str, kw: dict[str, Any], tmp_path: Path) -> None:
    df = didx.datasets.load("card_krueger") if name == "card_krueger" else _two_periods()
    if name == "card_krueger":
        df["chain"] = df["bk"] + 2 * df["kfc"] + 3 * df["roys"]
    mem = didx.did2x2(df, **kw)
    eng = didx.did2x2(write(df, tmp_path), **kw)
    assert_same_result(mem, eng)
    assert _summary_without_engine(eng) == _summary_without_engine(mem)  # the cell-mean table included


def test_did2x2_errors_and_refusals(tmp_path: Path) -> None:
    df = _two_periods()
    kw = dict(y="lemp", treat="g", post="post", unit="countyreal")
    with pytest.raises(didx.InvalidOptionError, match=r"first_difference=True.*Fix: pass an in-memory"):
        didx.did2x2(write(df, tmp_path), **kw, first_difference=True)
    with pytest.raises(didx.InvalidOptionError, match=r"vcov='HC3'.*Fix: pass an in-memory"):
        didx.did2x2(write(df, tmp_path), **kw, vcov="HC3")
    bad = df.copy()
    bad["post"] = bad["year"]
    with pytest.raises(didx.DataError, match=r"post column 'post' must be a 0/1 indicator"):
        didx.did2x2(write(bad, tmp_path / "a.parquet"), **kw)
    bad = df.copy()
    bad.loc[bad.index[0], "g"] = 2
    with pytest.raises(didx.DataError, match=r"treated group column 'g' must be 0/1"):
        didx.did2x2(write(bad, tmp_path / "b.parquet"), **kw)
    bad = df.copy()
    bad.loc[(bad["countyreal"] == bad["countyreal"].iloc[0]) & (bad["post"] == 1), "g"] = 1 - bad["g"].iloc[0]
    with pytest.raises(didx.DataError, match=r"treated group column 'g' varies within a unit"):
        didx.did2x2(write(bad, tmp_path / "c.parquet"), **kw)
    bad = df.copy()
    bad.loc[bad.index[:3], "g"] = np.nan
    mem, eng = didx.did2x2(bad, **kw), didx.did2x2(write(bad, tmp_path / "d.parquet"), **kw)
    assert eng.sample.lines() == mem.sample.lines()  # "missing treated group (g)" counted
