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
