"""A review of the engine paths (didx.engines) on inputs the other engine tests do not cover.

Each case fits the same call in memory and through DuckDB (a Parquet file, sometimes a glob or a relation) and
checks the numbers to 1e-10 relative and the sample report (tests/test_engines.py's helpers): the sorted-grid
scan at every cut of a unit between batches and across files, with infinite times, float and negative periods and
every never-treated coding; imputation/did2s on unbalanced panels with missing clusters and with disconnected
periods; twfe/event_study with covariates constant within some units only, missing covariates and clusters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from didx.engines import grid
from test_engines import DATA, ROLES, assert_same_fit, assert_same_result, write

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")


def _sorted_mpdta(n_units: int | None = None) -> pd.DataFrame:
    r = ROLES["mpdta"]
    df = DATA["mpdta"]().sort_values([r["unit"], r["time"]]).reset_index(drop=True)
    if n_units is not None:
        df = df[df[r["unit"]].isin(df[r["unit"]].unique()[:n_units])].reset_index(drop=True)
    return df


# ----------------------------------------------------------------------------------------------- grid scan
@pytest.mark.parametrize("where", ["last", "first"])
def test_grid_infinite_times_are_dropped_and_counted(where: str, spy: list[bool], tmp_path: Path) -> None:
    """A row per unit at time +inf (or -inf, first in each block) is a sorted grid of T + 1 increasing 'periods':
    the scan must not take inf as a period (it did: 6 periods, nothing dropped) but fall back to the SQL plan,
    which drops and counts those rows as in memory."""
    r = ROLES["mpdta"]
    df = _sorted_mpdta().astype({"year": float})
    extra = df.groupby(r["unit"]).head(1).copy()
    extra["year"] = np.inf if where == "last" else -np.inf
    df = pd.concat([df, extra]).sort_values([r["unit"], r["time"]]).reset_index(drop=True)
    mem = didx.att_gt(df, **r)
    eng = didx.att_gt(write(df, tmp_path), **r)
    assert "infinite time (year)" in "\n".join(eng.sample.lines())
    assert_same_fit(mem, eng)
    assert_same_result(didx.twfe(df, **r), didx.twfe(write(df, tmp_path / "b.parquet"), **r))
    assert spy == [False, False]


@pytest.mark.parametrize("rows", [1, 2, 4, 5, 6, 9, 11, 2047, 2049])
def test_grid_any_cut_between_batches(rows: int, spy: list[bool], monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    """Batches of 1 row up to a little over DuckDB's vector: units (5 periods) cut at every position, the first
    unit longer than a batch, the last batch partial."""
    monkeypatch.setattr(grid, "BATCH_ROWS", rows)
    df = _sorted_mpdta(60)
    assert_same_fit(didx.att_gt(df, **ROLES["mpdta"]), didx.att_gt(write(df, tmp_path), **ROLES["mpdta"]))
    assert spy == [True]


@pytest.mark.parametrize("rows", [3, 1 << 20])
def test_grid_glob_with_units_straddling_files(rows: int, spy: list[bool], monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """A glob of files cut inside units (a file of 1 row, one of 6): read in file order, one sorted grid."""
    monkeypatch.setattr(grid, "BATCH_ROWS", rows)
    df = _sorted_mpdta(60)
    cuts = [0, 7, 13, 14, 20, 101, len(df)]
    for i in range(len(cuts) - 1):
        df.iloc[cuts[i]:cuts[i + 1]].to_parquet(tmp_path / f"part{i}.parquet")
    assert_same_fit(didx.att_gt(df, **ROLES["mpdta"]), didx.att_gt(str(tmp_path / "*.parquet"), **ROLES["mpdta"]))
    assert spy == [True]


def _sim() -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(300, 6, cohorts=3, seed=2)[["unit", "time", "cohort", "y"]]
    return df.sort_values(["unit", "time"]).reset_index(drop=True).astype({"cohort": float})


ROLES_SIM = dict(y="y", unit="unit", time="time", cohort="cohort")


@pytest.mark.parametrize("code", [np.nan, np.inf, 0.0, 99.0, -np.inf], ids=["nan", "inf", "zero", "late", "-inf"])
def test_grid_never_treated_codings(code: float, spy: list[bool], tmp_path: Path) -> None:
    df = _sim()
    df.loc[df["cohort"] == 0, "cohort"] = code
    path = write(df, tmp_path)
    assert_same_fit(didx.att_gt(df, **ROLES_SIM), didx.att_gt(path, **ROLES_SIM))
    assert_same_result(didx.twfe(df, **ROLES_SIM), didx.twfe(path, **ROLES_SIM))
    assert spy == [True, True]


def test_grid_float_negative_periods_float_units_always_treated(spy: list[bool], tmp_path: Path) -> None:
    """Quarter periods below zero, float unit ids, a tenth of the units treated before the first period."""
    df = _sim()
    df["time"] = (df["time"] - 10) / 4
    df["cohort"] = np.where(df["cohort"] > 0, (df["cohort"] - 10) / 4, np.nan)
    df["unit"] = df["unit"] + 0.5
    df.loc[df["unit"] % 10 < 1, "cohort"] = -5.0
    path = write(df, tmp_path)
    assert_same_fit(didx.att_gt(df, **ROLES_SIM), didx.att_gt(path, **ROLES_SIM))
    assert_same_result(didx.twfe(df, **ROLES_SIM), didx.twfe(path, **ROLES_SIM))
    assert spy == [True, True]


def test_grid_one_unit_falls_back_to_the_in_memory_error(spy: list[bool], tmp_path: Path) -> None:
    df = _sim()
    df = df[df["unit"] == df.loc[df["cohort"] > 0, "unit"].iloc[0]]
    with pytest.raises(didx.DidxError) as mem:
        didx.att_gt(df, **ROLES_SIM)
    with pytest.raises(type(mem.value)):
        didx.att_gt(write(df, tmp_path), **ROLES_SIM)
    assert spy == [False]


# ----------------------------------------------------------------------------------------------- wild bootstrap
@pytest.mark.parametrize("fn", [didx.twfe, didx.event_study], ids=["twfe", "event_study"])
@pytest.mark.parametrize("opts", [{"collapse": "group_period"},
                                  {"collapse": "group_period_weighted", "cluster": "grp"}], ids=["cohort", "grp"])
def test_wild_bootstrap_after_a_collapsed_engine_fit(fn: Any, opts: dict[str, Any], tmp_path: Path) -> None:
    """collapse= through an engine fits the in-memory estimator on the cells, so the wild bootstrap works as in
    memory (engines/collapse.py says so); the refusal for engine fits refused it too. With every sign vector
    enumerated (2^G draws <= n_bootstrap) the bootstrap does not depend on the clusters' order: equal to 1e-10.
    With random draws the clusters may be met in another order (same distribution, other draws)."""
    from test_engines_more import _with_groups

    df = _with_groups("mpdta")
    mem = fn(df, **ROLES["mpdta"], **opts)
    eng = fn(write(df, tmp_path), **ROLES["mpdta"], **opts)
    term = mem.terms[-1]
    a = mem.wild_bootstrap(term, n_bootstrap=9999, seed=1, progress=False)
    b = eng.wild_bootstrap(term, n_bootstrap=9999, seed=1, progress=False)
    assert "full enumeration" in str(b)
    assert b.p_value == pytest.approx(a.p_value, rel=1e-10)
    assert b.statistic == pytest.approx(a.statistic, rel=1e-10)
    np.testing.assert_allclose(b.conf_int, a.conf_int, rtol=1e-10)


# ------------------------------------------------------------------------------------ regression with covariates
def _mpdta_x() -> pd.DataFrame:
    from test_engines_regcov import _mpdta

    return _mpdta()


@pytest.mark.parametrize("balanced", [True, False], ids=["balanced", "unbalanced"])
def test_event_study_keeps_a_covariate_far_from_zero(balanced: bool, tmp_path: Path) -> None:
    """A covariate at 1e6 with spread ~1: identified (adding a constant to a covariate changes no coefficient
    under unit effects). The balanced event study judged it against its raw sum of squares (1e12 per row) and
    dropped it, unlike twfe and the unbalanced path; now every path keeps it, in memory and through DuckDB."""
    df = _mpdta_x()
    if not balanced:
        df = df.drop(index=[5])
    df["big"] = 1e6 + df["x"]
    r = ROLES["mpdta"]
    for fn in (didx.event_study, didx.twfe):
        mem = fn(df, **r, covariates=["big"])
        assert mem.terms[-1] == "big" and not any("collinearity" in n for n in mem.notes)
        shifted = fn(df, **r, covariates=["x"])
        np.testing.assert_allclose(mem.coef, shifted.coef, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(mem.std_error, shifted.std_error, rtol=1e-8)
        eng = fn(write(df, tmp_path / f"{fn.__name__}.parquet"), **r, covariates=["big"])
        assert_same_result(mem, eng)
        assert eng.notes == mem.notes


def test_event_study_still_drops_a_covariate_absorbed_by_the_unit_effects(tmp_path: Path) -> None:
    """The centred rule keeps its floor: lpop (constant within counties) and a constant are dropped and noted,
    on the balanced path, in memory and through DuckDB."""
    df = _mpdta_x()
    df["one"] = 7.0
    kw = dict(**ROLES["mpdta"], covariates=["x", "lpop", "one"])
    mem = didx.event_study(df, **kw)
    assert mem.terms[-1] == "x" and mem.notes[-1] == "Dropped for collinearity: lpop, one"
    eng = didx.event_study(write(df, tmp_path), **kw)
    assert_same_result(mem, eng)
    assert eng.notes == mem.notes


def _regcov_cases() -> list[Any]:
    """(name, data, roles, options) of twfe/event_study with covariates on inputs the regcov tests do not cover."""
    from test_engines_regcov import _unbalanced

    r = ROLES["mpdta"]
    out = []
    a = _mpdta_x()
    half = a["countyreal"] % 2 == 0
    a.loc[half, "x"] = a.loc[half, "countyreal"] * 0.01  # constant within half of the units only
    out.append(("const-in-some-units", a, r, {"covariates": ["x"], "cluster": "region"}))
    b = _mpdta_x()
    b["z"] = 1.0
    b.loc[b["countyreal"] == b["countyreal"].iloc[0], "z"] = np.arange(5.0)  # varies in one unit only
    out.append(("varies-in-one-unit", b, r, {"covariates": ["x", "z"]}))
    u = _unbalanced()
    u["cls"] = "c" + u["cl"].astype(str)
    u.loc[u.index[::29], "cls"] = None  # a string cluster with NULLs
    out.append(("string-cluster-nulls", u, ROLES["unbalanced"], {"covariates": ["w", "level"], "cluster": "cls"}))
    for code in (np.nan, np.inf, 3000.0):
        d = _mpdta_x().astype({"first.treat": float})
        d.loc[d["first.treat"] == 0, "first.treat"] = code
        out.append((f"never={code}", d, r, {"covariates": ["x"], "cluster": "region"}))
    e = _mpdta_x()
    e["k"] = 2.0
    e.loc[e.index[:3], "lemp"] = np.nan
    e.loc[e.index[:3], "k"] = [5.0, 6.0, 7.0]  # constant on the kept rows only
    out.append(("constant-on-kept-rows", e, r, {"covariates": ["x", "k"]}))
    f = _mpdta_x()
    f["year"] = (f["year"] - 2000) / 4
    f["first.treat"] = np.where(f["first.treat"] > 0, (f["first.treat"] - 2000) / 4, 0)
    out.append(("quarter-periods", f, r, {"covariates": ["x"]}))
    g = _mpdta_x().rename(columns={"x": 'my "x" col', "lemp": "y.v"})
    out.append(("quoted-names", g, dict(r, y="y.v"), {"covariates": ['my "x" col'], "cluster": "region"}))
    h = _mpdta_x()
    h["first.treat"] = h["first.treat"].astype("Int64")
    h.loc[h["first.treat"] == 0, "first.treat"] = pd.NA  # an integer cohort with NULLs
    h["ix"] = (h["x"] * 1000).round().astype("int64")  # an integer covariate
    out.append(("int-cohort-nulls-int-covariate", h, r, {"covariates": ["ix"]}))
    return out


REGCOV_CASES = _regcov_cases()


@pytest.mark.parametrize("fn", [didx.twfe, didx.event_study], ids=["twfe", "event_study"])
@pytest.mark.parametrize("case", REGCOV_CASES, ids=[c[0] for c in REGCOV_CASES])
def test_covariates_on_more_inputs(case: Any, fn: Any, tmp_path: Path) -> None:
    from test_engines_regcov import _check

    _, df, roles, opts = case
    _check(fn(df, **roles, **opts), fn(write(df, tmp_path), **roles, **opts))



# ----------------------------------------------------------------------------------------------- disconnected designs
def _split() -> pd.DataFrame:
    """Half of the units seen in periods 1-4 only, the other half in 5-8 only: the unit-period graph has two
    connected components, so one more unit or period effect is redundant."""
    df = DATA["unbalanced"]()
    df["w"] = np.sin(df["unit"] * 1.1 + df["time"])
    half = df["unit"] % 2 == 0
    return df[(half & (df["time"] <= 4)) | (~half & (df["time"] > 4))].reset_index(drop=True)


SPLIT_FITS = [(didx.twfe, {}), (didx.twfe, {"cluster": "cl"}), (didx.twfe, {"covariates": "w"}),
              (didx.twfe, {"ssc": didx.SSC(fixef_exact=False)}), (didx.event_study, {}),
              (didx.event_study, {"covariates": "w", "cluster": "cl"}), (didx.sun_abraham, {})]


@pytest.mark.parametrize(("fn", "opts"), SPLIT_FITS, ids=[f"{f.__name__}-{i}" for i, (f, _) in enumerate(SPLIT_FITS)])
def test_small_sample_k_counts_the_components(fn: Any, opts: dict[str, Any], tmp_path: Path) -> None:
    """fixest's K (and didx's in memory, ssc.fixef_exact) counts the identified effects: units + periods less one
    per connected component. The engines counted N + T - 1 always, so their SEs were 0.04% too large here."""
    df = _split()
    r = ROLES["unbalanced"]
    mem, eng = fn(df, **r, **opts), fn(write(df, tmp_path), **r, **opts)
    assert_same_result(mem, eng)
    assert eng.inference.details == mem.inference.details


def test_imputation_pretrends_on_disconnected_periods(tmp_path: Path) -> None:
    """BJS's lead regression (untreated rows, unit and period effects) on the same design: the CR1 factor's K;
    and with two leads its period block was exactly singular (numpy's LinAlgError): the redundant period effect
    of the second component is now left out, as the in-memory solver absorbs it."""
    from test_engines_imputation import assert_same

    df = _split()
    r = ROLES["unbalanced"]
    for kw in ({"pretrends": True}, {"horizons": True, "pretrends": 2, "cluster": "cl"}):
        assert_same(didx.imputation(df, **r, **kw), didx.imputation(write(df, tmp_path), **r, **kw))


# ----------------------------------------------------------------------------------------------- imputation
def _imputation_cases() -> list[Any]:
    un = DATA["unbalanced"]()
    cl_nan = un.astype({"cl": float})
    cl_nan.loc[cl_nan["unit"] % 37 == 0, "cl"] = np.nan  # units without a cluster
    cl_nan.loc[cl_nan.index[::17], "cl"] = np.nan  # and rows without one
    step = un.copy()
    step["time"] = step["time"] * 2 + 1
    step["cohort"] = np.where(step["cohort"] > 0, step["cohort"] * 2 + 1, 0)
    late = un["unit"] % 5 == 0
    early = (un["unit"] % 5 == 1) & (un["cohort"] == 0)
    gaps = un[~(late & (un["time"] <= 3)) & ~(early & (un["time"] > 3))]  # units seen early or late only
    half = un["unit"] % 2 == 0
    split = un[(half & (un["time"] <= 4)) | (~half & (un["time"] > 4))]  # two blocks of periods bridged by none
    return [("cluster-nan", cl_nan, {"cluster": "cl"}), ("periods-2-apart", step, {}),
            ("early-or-late-units", gaps, {}), ("disconnected-periods", split, {})]


IMP_CASES = _imputation_cases()


@pytest.mark.parametrize("case", IMP_CASES, ids=[c[0] for c in IMP_CASES])
def test_imputation_and_did2s_on_more_inputs(case: Any, tmp_path: Path) -> None:
    from test_engines_imputation import assert_same

    _, df, opts = case
    r = ROLES["unbalanced"]
    path = write(df, tmp_path)
    for kw in ({"horizons": True, "leave_out": True}, {"horizons": True, "pretrends": True}):
        assert_same(didx.imputation(df, **r, **opts, **kw), didx.imputation(path, **r, **opts, **kw))
    for kw in ({}, {"second_stage": "event_study"}):
        assert_same(didx.did2s(df, **r, **opts, **kw), didx.did2s(path, **r, **opts, **kw))


@pytest.mark.parametrize("fn", [didx.twfe, didx.event_study], ids=["twfe", "event_study"])
def test_disconnected_design_with_covariates_and_a_period_nobody_bridges(fn: Any, tmp_path: Path) -> None:
    """Three blocks of periods, each seen by its own units (three components), covariates and clusters: the
    redundant period effects are left out (their Gram block was singular up to rounding), every slope, SE and
    the inference text as in memory."""
    df = DATA["unbalanced"]()
    df["w"] = np.cos(df["unit"] * 0.7 + 2 * df["time"])
    third = df["unit"] % 3
    df = df[((third == 0) & (df["time"] <= 3)) | ((third == 1) & (df["time"].between(4, 6)))
            | ((third == 2) & (df["time"] >= 7))].reset_index(drop=True)
    r = ROLES["unbalanced"]
    for opts in ({"covariates": "w"}, {"covariates": "w", "cluster": "cl"}, {}):
        mem = fn(df, **r, **opts)
        eng = fn(write(df, tmp_path / f"{len(opts)}.parquet"), **r, **opts)
        assert_same_result(mem, eng)
        assert eng.inference.details == mem.inference.details
        assert eng.notes == mem.notes


# ----------------------------------------------------------------------------------------------- messages
@pytest.mark.parametrize("fn", [didx.twfe, didx.imputation, didx.did2s], ids=["twfe", "imputation", "did2s"])
def test_a_cluster_cutting_across_units_names_the_in_memory_route(fn: Any, tmp_path: Path) -> None:
    """These estimators cluster on any column in memory; through the engines the error said clusters must nest
    units 'because the influence functions are per unit' (untrue of them) and gave no way to fit: it now says
    what the engines need and names the in-memory route."""
    df = DATA["mpdta"]()
    df["period_group"] = df["year"] % 3
    kw = dict(**ROLES["mpdta"], cluster="period_group")
    fn(df, **kw)  # in memory: fine
    with pytest.raises(didx.DataError, match=r"varies within units\. Through the engines .*in-memory data frame"):
        fn(write(df, tmp_path), **kw)


# ----------------------------------------------------------------------------------------------- file inputs
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_glob_whose_files_store_a_column_with_different_types(fmt: str, tmp_path: Path) -> None:
    """The outcome stored as integers in the first file and as floats in the next (e.g. a part written after a
    unit change): DuckDB read a Parquet glob with the first file's types, rounding the floats to integers silently
    (att_gt moved by 0.3%); the files are now read with union_by_name (types unified, columns matched by name:
    a part with its columns in another order is read right too). CSV (types sniffed over the files) as a control."""
    df = DATA["mpdta"]()
    df["lemp"] = df["lemp"] * 100
    parts = [df.iloc[:1500].copy(), df.iloc[1500:2200].copy(), df.iloc[2200:].copy()]
    parts[0]["lemp"] = parts[0]["lemp"].round().astype("int64")
    parts[2] = parts[2][list(reversed(parts[2].columns))]
    for i, part in enumerate(parts):
        write(part, tmp_path / f"part{i}.{fmt}", fmt)
    full = pd.concat(parts)[df.columns]
    r = ROLES["mpdta"]
    glob = str(tmp_path / f"*.{fmt}")
    assert_same_fit(didx.att_gt(full, **r), didx.att_gt(glob, **r))
    assert_same_result(didx.twfe(full, **r, cluster="region"), didx.twfe(glob, **r, cluster="region"))


def test_a_glob_whose_parts_lack_a_column_is_an_error(tmp_path: Path) -> None:
    """Read by name, a part without the cohort column would give NULL cohorts (never treated): a DataError naming
    the part and the column instead (before the change: DuckDB's own schema-mismatch error at the first scan)."""
    df = DATA["mpdta"]()
    write(df.iloc[:1500], tmp_path / "part0.parquet")
    write(df.iloc[1500:].drop(columns=["first.treat"]), tmp_path / "part1.parquet")
    with pytest.raises(didx.DataError, match=r"not hold the same columns: .*part1\.parquet' lacks \['first\.treat'"):
        didx.att_gt(str(tmp_path / "*.parquet"), **ROLES["mpdta"])
