"""The sorted-grid scan (didx.engines.grid): used when the file is a sorted balanced grid, the same numbers as the
SQL plan and as in memory, and a fall back to the SQL plan (with its errors and drop counts) at any departure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import didx
from didx.engines import grid

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from test_engines import DATA, ROLES, assert_same_fit, assert_same_result, write


def _sorted(name: str) -> pd.DataFrame:
    r = ROLES[name]
    return DATA[name]().sort_values([r["unit"], r["time"]]).reset_index(drop=True)


@pytest.mark.parametrize("name", ["mpdta", "base_stagg", "castle"])
def test_a_sorted_grid_streams_and_equals_in_memory(name: str, spy: list[bool], tmp_path: Path) -> None:
    df = _sorted(name)
    path = write(df, tmp_path)
    mem = didx.att_gt(df, **ROLES[name])
    eng = didx.att_gt(path, **ROLES[name])
    assert spy == [True]
    assert dict(eng.design)["Engine"].endswith("; one ordered scan of a sorted grid")
    assert_same_fit(mem, eng)
    assert_same_result(didx.twfe(df, **ROLES[name]), didx.twfe(path, **ROLES[name]))


def test_a_relation_streams_too(spy: list[bool]) -> None:
    import duckdb

    df = _sorted("mpdta")
    rel = duckdb.from_df(df)
    assert_same_fit(didx.att_gt(df, **ROLES["mpdta"]), didx.att_gt(rel, **ROLES["mpdta"]))
    assert spy == [True]


def test_units_split_between_batches(spy: list[bool], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Batches whose size is not a multiple of the periods: the unit cut between two batches is stitched."""
    monkeypatch.setattr(grid, "BATCH_ROWS", 2048 * 3 + 7)
    df = didx.datasets.simulate_staggered(3000, 7, cohorts=3, seed=4)[["unit", "time", "cohort", "y"]]
    df = df.sort_values(["unit", "time"]).reset_index(drop=True)
    path = write(df, tmp_path)
    roles = dict(y="y", unit="unit", time="time", cohort="cohort")
    assert_same_fit(didx.att_gt(df, **roles), didx.att_gt(path, **roles))
    assert spy == [True]


def test_unsorted_rows_fall_back_to_the_sql_plan(spy: list[bool], tmp_path: Path) -> None:
    df = DATA["mpdta"]().sample(frac=1.0, random_state=3)
    eng = didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])
    assert_same_fit(didx.att_gt(df, **ROLES["mpdta"]), eng)
    assert spy == [False]
    assert "sorted grid" not in dict(eng.design)["Engine"]


def test_sorted_but_descending_units_fall_back(spy: list[bool], tmp_path: Path) -> None:
    r = ROLES["mpdta"]
    df = DATA["mpdta"]().sort_values([r["unit"], r["time"]], ascending=[False, True])
    assert_same_fit(didx.att_gt(df, **r), didx.att_gt(write(df, tmp_path), **r))
    assert spy == [False]


def test_a_duplicate_in_a_sorted_file_is_the_sql_plans_error(spy: list[bool], tmp_path: Path) -> None:
    """A duplicated unit-period (replacing another period, so the row count stays a multiple of T) breaks the
    period order: the stream falls back and the SQL plan names the duplicate."""
    df = _sorted("mpdta")
    df.loc[1, "year"] = df.loc[0, "year"]
    with pytest.raises(didx.DataError, match="duplicate"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])
    assert spy == [False]


def test_a_varying_cohort_in_a_sorted_file_is_the_sql_plans_error(spy: list[bool], tmp_path: Path) -> None:
    df = _sorted("mpdta")
    first_treated = df.index[df["first.treat"] > 0][0]
    df.loc[first_treated, "first.treat"] = 0
    with pytest.raises(didx.DataError, match="varies within a unit"):
        didx.att_gt(write(df, tmp_path), **ROLES["mpdta"])
    assert spy == [False]


def test_what_the_stream_does_not_take(spy: list[bool], tmp_path: Path) -> None:
    """A cluster column or string units go to the SQL plan directly; dropped rows or an unbalanced panel after a
    scan that stops at the first departure."""
    df = _sorted("mpdta")
    path = write(df, tmp_path)
    didx.att_gt(path, **ROLES["mpdta"], cluster="region")
    gaps = df.drop(index=[3, 17])
    didx.att_gt(write(gaps, tmp_path / "gaps.parquet"), **ROLES["mpdta"])
    missing = df.copy()
    missing.loc[5, "lemp"] = np.nan
    didx.att_gt(write(missing, tmp_path / "missing.parquet"), **ROLES["mpdta"])
    names = df.assign(countyreal="c" + df["countyreal"].astype(str).str.zfill(5))
    didx.att_gt(write(names, tmp_path / "names.parquet"), **ROLES["mpdta"])
    assert spy == [False, False]


def test_centring_keeps_digits_at_a_large_level(spy: list[bool], tmp_path: Path) -> None:
    """An outcome around 1e8: the stream centres each period on pass 1's cell means before the products, so the
    fit moves by no more than the rounding of 1e8-level numbers (as tests/test_engines.py checks the SQL plan)."""
    df = _sorted("base_stagg")
    base = didx.att_gt(write(df, tmp_path), **ROLES["base_stagg"])
    df["y"] = df["y"] + 1e8
    big = didx.att_gt(write(df, tmp_path / "big.parquet"), **ROLES["base_stagg"])
    np.testing.assert_allclose(big.coef, base.coef, rtol=0, atol=1e-6)
    np.testing.assert_allclose(big.std_error, base.std_error, rtol=1e-6)
    assert spy == [True, True]


def test_never_treated_codings_and_uneven_periods(spy: list[bool], tmp_path: Path) -> None:
    """Never treated as NaN and as a date after the last period, periods two years apart: the scan's cohort
    codes and periods are pass 1's."""
    df = _sorted("mpdta")
    df["year"] = 2003 + 2 * (df["year"] - 2003)
    g = df["first.treat"].astype(float)
    g = g.where(g == 0, 2003 + 2 * (g - 2003))
    units = df["countyreal"].unique()
    g[(g == 0) & df["countyreal"].isin(units[::2])] = np.nan
    g[(g == 0)] = 2030.0
    df["first.treat"] = g
    assert_same_fit(didx.att_gt(df, **ROLES["mpdta"]), didx.att_gt(write(df, tmp_path), **ROLES["mpdta"]))
    assert spy == [True]


def test_null_outcomes_fall_back_and_are_counted(spy: list[bool], tmp_path: Path) -> None:
    df = _sorted("base_stagg")
    df.loc[df.index[-3], "y"] = np.nan  # late in the file: the scan stops there
    eng = didx.att_gt(write(df, tmp_path), **ROLES["base_stagg"])
    assert_same_fit(didx.att_gt(df, **ROLES["base_stagg"]), eng)
    assert spy == [False]
    assert "missing outcome" in "\n".join(eng.sample.lines())
