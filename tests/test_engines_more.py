"""More estimators pushed into DuckDB (didx.engines): sun_abraham, collapse, bacon, imputation / did2s.

As in tests/test_engines.py: every case fits the same call on a pandas frame and through DuckDB (a Parquet file in
tmp_path, or a DuckDB relation) and checks estimates, standard errors, the aggregations and the sample report to
1e-10 relative on mpdta, base_stagg, castle and the simulated unbalanced panel. Options that need the rows raise an
error naming the in-memory alternative. tests/test_engines_spark.py runs one case of each through Spark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import didx

duckdb = pytest.importorskip("duckdb")

from test_engines import DATA, REL, ROLES, write  # noqa: E402


def assert_same_result(mem: Any, eng: Any) -> None:
    """Terms, estimates and standard errors to 1e-10 relative; the covariance entries to 1e-10 of the product of
    the two standard errors (an off-diagonal entry near 0 by cancellation is compared on the scale of its row and
    column, as a correlation)."""
    assert mem.terms == eng.terms
    np.testing.assert_allclose(eng.coef, mem.coef, rtol=REL, atol=1e-13)
    np.testing.assert_allclose(eng.std_error, mem.std_error, rtol=REL, atol=1e-14)
    scale = np.outer(mem.std_error, mem.std_error)
    assert np.all(np.abs(eng.vcov_matrix - mem.vcov_matrix) <= REL * scale + 1e-15)


def _summary_lines(res: Any) -> list[str]:
    """summary() without the lines that name how it was computed (the engine, the computation path)."""
    return [ln for ln in res.summary().splitlines() if not ln.strip().startswith(("Engine:", "Computation:"))]


# ----------------------------------------------------------------------------------------------- sun_abraham
SA_CASES: list[tuple[str, dict[str, Any]]] = [
    ("mpdta", {}),
    ("mpdta", {"control_group": "last_treated", "cluster": "region"}),
    ("base_stagg", {"ref": [-1, -3]}),
    ("base_stagg", {"control_group": "last_treated"}),
    ("castle", {"cluster": "region"}),
    ("castle", {"control_group": "last_treated"}),
    ("unbalanced", {}),
    ("unbalanced", {"cluster": "cl", "control_group": "last_treated"}),
]


def assert_same_sa(mem: Any, eng: Any) -> None:
    assert_same_result(mem, eng)
    assert_same_result(mem.coefficients, eng.coefficients)
    for kind in ("att", "cohort", "period"):
        assert_same_result(mem.aggregate(kind), eng.aggregate(kind))
    assert eng.sample.lines() == mem.sample.lines()
    assert eng.notes == mem.notes
    assert eng.inference == mem.inference
    assert _summary_lines(eng) == _summary_lines(mem)


@pytest.mark.parametrize("case", SA_CASES, ids=lambda c: c[0] + "".join(f"-{k}={v}" for k, v in c[1].items()))
def test_sun_abraham_parquet_equals_in_memory(case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    name, opts = case
    df = DATA[name]()
    mem = didx.sun_abraham(df, **ROLES[name], **opts)
    eng = didx.sun_abraham(write(df, tmp_path), **ROLES[name], **opts)
    assert_same_sa(mem, eng)
    assert "Engine: DuckDB" in eng.summary()


def test_sun_abraham_relation_and_dropped_cohorts() -> None:
    """A DuckDB relation; an always-treated cohort (dropped, counted) and a cohort seen only before treatment (a
    reference cohort, noted)."""
    df = DATA["mpdta"]()
    df.loc[df["first.treat"] == 2004, "first.treat"] = 2003  # treated from the first period on: always treated
    df = df[~((df["first.treat"] == 2006) & (df["year"] >= 2006))]  # cohort 2006 seen only before treatment
    con = duckdb.connect()
    con.register("panel", df)
    mem = didx.sun_abraham(df, **ROLES["mpdta"])
    eng = didx.sun_abraham(con.sql("SELECT * FROM panel"), **ROLES["mpdta"])
    assert any("always-treated" in ln for ln in mem.sample.lines())
    assert any("reference" in n for n in mem.notes)
    assert_same_sa(mem, eng)


def test_sun_abraham_refusals(tmp_path: Path) -> None:
    path = write(DATA["mpdta"](), tmp_path)
    with pytest.raises(didx.InvalidOptionError, match=r"covariates.*Fix: pass an in-memory"):
        didx.sun_abraham(path, **ROLES["mpdta"], covariates="region")
    with pytest.raises(didx.InvalidOptionError, match=r"vcov='hetero'.*in-memory"):
        didx.sun_abraham(path, **ROLES["mpdta"], vcov="hetero")
    with pytest.raises(didx.InvalidOptionError, match=r"two-way clustering.*in-memory"):
        didx.sun_abraham(path, **ROLES["mpdta"], cluster=["region", "year"])
    with pytest.raises(didx.DesignError, match=r"ref=-9"):
        didx.sun_abraham(path, **ROLES["mpdta"], ref=-9)
    eng = didx.sun_abraham(path, **ROLES["mpdta"])
    with pytest.raises(didx.DidxError, match=r"in-memory|engine"):
        eng.with_vcov(cluster="region")


# ----------------------------------------------------------------------------------------------- collapse
def _with_groups(name: str) -> Any:
    """The data with a treatment-level group column: units of one cohort split into a few groups."""
    df = DATA[name]()
    g = ROLES[name]["cohort"]
    u = ROLES[name]["unit"]
    codes = df[u].astype("category").cat.codes if df[u].dtype == object else df[u]
    df["grp"] = df[g].fillna(0).astype(float) * 100 + (codes % 4)
    return df


COLLAPSE_CASES = [(name, opts) for name in DATA for opts in (
    {"collapse": "group_period"}, {"collapse": "group_period_weighted", "cluster": "grp"})]


@pytest.mark.parametrize("fn", ["twfe", "event_study"])
@pytest.mark.parametrize("case", COLLAPSE_CASES, ids=lambda c: c[0] + "-" + "-".join(map(str, c[1].values())))
def test_collapse_parquet_equals_in_memory(fn: str, case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    name, opts = case
    df = _with_groups(name)
    est = getattr(didx, fn)
    mem = est(df, **ROLES[name], **opts)
    eng = est(write(df, tmp_path), **ROLES[name], **opts)
    assert_same_result(mem, eng)
    assert eng.sample.lines() == mem.sample.lines()
    assert _summary_lines(eng) == _summary_lines(mem)
    assert "Engine: DuckDB" in eng.summary()
    # the covariance options work on the cells, as in memory
    assert_same_result(mem.with_vcov(vcov="hetero"), eng.with_vcov(vcov="hetero"))


def test_collapse_errors(tmp_path: Path) -> None:
    df = _with_groups("mpdta")
    path = write(df, tmp_path)
    for fn in (didx.twfe, didx.event_study):
        with pytest.raises(didx.DesignError, match=r"treatment varies within a region x period cell"):
            fn(df, **ROLES["mpdta"], collapse="group_period", cluster="region")
        with pytest.raises(didx.DesignError, match=r"treatment varies within a region x period cell"):
            fn(path, **ROLES["mpdta"], collapse="group_period", cluster="region")
        with pytest.raises(didx.InvalidOptionError, match=r"collapse"):
            fn(path, **ROLES["mpdta"], collapse="state_year")
    with pytest.raises(didx.InvalidOptionError, match=r"covariates.*in-memory"):
        didx.twfe(path, **ROLES["mpdta"], collapse="group_period", covariates="region")


# ----------------------------------------------------------------------------------------------- bacon
def _with_treatment(name: str) -> Any:
    """The data with the 0/1 treatment D = 1[t >= cohort] that bacon decomposes."""
    df = DATA[name]()
    r = ROLES[name]
    g = df[r["cohort"]].astype(float)
    df["D"] = ((g > 0) & (df[r["time"]] >= g)).astype(int)
    return df


def _bacon_kw(name: str) -> dict[str, str]:
    r = ROLES[name]
    return dict(y=r["y"], unit=r["unit"], time=r["time"], treat="D")


def assert_same_bacon(mem: Any, eng: Any) -> None:
    assert eng.twfe == pytest.approx(mem.twfe, rel=REL)
    np.testing.assert_allclose(eng.weight, mem.weight, rtol=REL, atol=1e-15)
    np.testing.assert_allclose(eng.estimate_2x2, mem.estimate_2x2, rtol=REL, atol=1e-13)
    assert eng.type == mem.type
    np.testing.assert_array_equal(eng.treated, mem.treated)
    np.testing.assert_array_equal(eng.control, mem.control)
    np.testing.assert_array_equal(eng.n_treated_units, mem.n_treated_units)
    np.testing.assert_array_equal(eng.n_control_units, mem.n_control_units)
    assert eng.sample.lines() == mem.sample.lines()
    assert _summary_lines(eng) == _summary_lines(mem)


@pytest.mark.parametrize("name", ["mpdta", "base_stagg", "castle"])
def test_bacon_parquet_equals_in_memory(name: str, tmp_path: Path) -> None:
    df = _with_treatment(name)
    mem = didx.bacon(df, **_bacon_kw(name))
    eng = didx.bacon(write(df, tmp_path), **_bacon_kw(name))
    assert_same_bacon(mem, eng)
    assert "Engine: DuckDB" in str(eng.summary())


def test_bacon_relation_always_treated_and_dropped_rows() -> None:
    """Always-treated units (the 'Later vs Always Treated' controls) and rows dropped for a missing outcome (the
    whole unit, so the panel stays balanced) through a DuckDB relation."""
    df = _with_treatment("castle")
    df.loc[df["sid"] <= 3, "D"] = 1  # three states treated from the first period on
    df.loc[df["sid"] == 5, "l_homicide"] = np.nan
    con = duckdb.connect()
    con.register("panel", df)
    mem = didx.bacon(df, **_bacon_kw("castle"))
    eng = didx.bacon(con.sql("SELECT * FROM panel"), **_bacon_kw("castle"))
    assert "Later vs Always Treated" in mem.type
    assert_same_bacon(mem, eng)


def test_bacon_errors(tmp_path: Path) -> None:
    un = _with_treatment("unbalanced")
    with pytest.raises(didx.DesignError, match=r"unbalanced: 263 of 400 units"):
        didx.bacon(un, **_bacon_kw("unbalanced"))
    with pytest.raises(didx.DesignError, match=r"unbalanced: 263 of 400 units"):
        didx.bacon(write(un, tmp_path / "un.parquet"), **_bacon_kw("unbalanced"))
    df = _with_treatment("mpdta")
    off = df.copy()
    first_2004 = off.loc[off["first.treat"] == 2004, "countyreal"].iloc[0]
    off.loc[(off["countyreal"] == first_2004) & (off["year"] == 2007), "D"] = 0
    two = df.copy()
    two.loc[two.index[3], "D"] = 2
    miss = df.copy()
    miss["D"] = miss["D"].astype(float)
    miss.loc[miss.index[3], "D"] = np.nan
    for frame, err, match in ((off, didx.DataError, r"not absorbing: unit \d+ is untreated in 2007"),
                              (two, didx.DataError, r"must be 0/1.*value\(s\) 2")):
        with pytest.raises(err, match=match):
            didx.bacon(frame, **_bacon_kw("mpdta"))
        with pytest.raises(err, match=match):
            didx.bacon(write(frame, tmp_path / "bad.parquet"), **_bacon_kw("mpdta"))
    with pytest.raises(didx.InvalidOptionError, match=r"missing treatment.*WHERE D IS NOT NULL"):
        didx.bacon(write(miss, tmp_path / "miss.parquet"), **_bacon_kw("mpdta"))
    with pytest.raises(didx.InvalidOptionError, match=r"covariates.*in-memory"):
        didx.bacon(write(df, tmp_path / "ok.parquet"), **_bacon_kw("mpdta"), covariates="region")


def test_design_checks_as_in_memory(tmp_path: Path) -> None:
    """No never-treated units (sun_abraham's default control) and no untreated observation (twfe): the
    in-memory errors, through the engine."""
    df = DATA["mpdta"]()
    treated_only = df[df["first.treat"] > 0]
    path = write(treated_only, tmp_path)
    for data in (treated_only, path):
        with pytest.raises(didx.DesignError, match=r"no control units: every unit has a treatment date"):
            didx.sun_abraham(data, **ROLES["mpdta"])
    late = treated_only[(treated_only["year"] >= 2006) & (treated_only["first.treat"] <= 2006)]  # all treated
    path = write(late, tmp_path / "late.parquet")
    for data in (late, path):
        with pytest.raises(didx.DesignError, match=r"no control observations: every row is treated"):
            didx.twfe(data, **ROLES["mpdta"])


@pytest.mark.parametrize("fit", ["twfe", "event_study", "sun_abraham"])
def test_wild_bootstrap_after_an_engine_fit_names_the_in_memory_route(fit: str, tmp_path: Path) -> None:
    res = getattr(didx, fit)(write(DATA["mpdta"](), tmp_path), **ROLES["mpdta"], cluster="region")
    with pytest.raises(didx.InvalidOptionError, match=r"ran in an engine \(DuckDB.*in-memory frame"):
        res.wild_bootstrap(res.terms[-1], n_bootstrap=99)
