"""The grid fast path of the panel layer (rows sorted by unit and period, every unit in every period): the same
panel, the same errors and bit-for-bit the same Callaway-Sant'Anna results as the general path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from didx._panel import build_panel


def _grid(n_units: int = 60, T: int = 6, seed: int = 3) -> pd.DataFrame:
    """A balanced panel sorted by unit and period, units coded 0..N-1 (int64)."""
    df = didx.datasets.simulate_staggered(n_units, T, [3, 4, 5], seed=seed)
    df = df.sort_values(["unit", "time"], kind="stable").reset_index(drop=True)
    df["unit"] = pd.factorize(df["unit"])[0].astype(np.int64)
    return df


def _panel(df: pd.DataFrame) -> didx._panel.Panel:
    return build_panel(df, func="t", y="y", time="time", unit="unit", cohort="cohort", require_control="none")


def test_grid_detected_only_when_sorted_and_balanced() -> None:
    df = _grid()
    assert _panel(df).grid
    assert _panel(df.assign(unit=df["unit"] + 1000)).grid  # not 0..N-1: factorised, still a grid
    assert not _panel(df.sample(frac=1.0, random_state=0)).grid  # shuffled rows
    assert not _panel(df.iloc[1:]).grid  # one unit misses a period
    assert not _panel(df.assign(unit=df["unit"].astype(float))).grid  # float labels: general path
    swapped = df.copy()
    swapped.loc[[6, 7], "time"] = swapped.loc[[7, 6], "time"].to_numpy()  # one unit's periods out of order
    assert not _panel(swapped).grid
    missing = df.copy()
    missing.loc[5, "y"] = np.nan  # a dropped row breaks the grid
    assert not _panel(missing).grid


def test_grid_panel_equals_general_panel() -> None:
    df = _grid()
    a, b = _panel(df), _panel(df.assign(unit=df["unit"].astype(float)))  # float units: no grid
    assert a.grid and not b.grid
    for name in ("y", "unit", "time", "periods", "cohort", "treat"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.report == b.report


@pytest.mark.parametrize("kw", [{}, {"control_group": "not_yet"}, {"base_period": "universal"},
                                {"anticipation": 1}, {"cluster": "state"}, {"covariates": "x"}])
def test_att_gt_bit_identical_on_the_grid(kw: dict) -> None:
    df = _grid()
    df["state"] = df["unit"] % 7
    df["x"] = np.random.default_rng(0).normal(size=df.shape[0]).round(3)
    df["x"] = df.groupby("unit")["x"].transform("first")
    general = df.assign(unit=df["unit"].astype(float))  # same order, general path
    assert _panel(df).grid and not _panel(general).grid
    args = dict(y="y", unit="unit", time="time", cohort="cohort", **kw)
    r1, r2 = didx.att_gt(df, **args), didx.att_gt(general, **args)
    np.testing.assert_array_equal(r1.coef, r2.coef)
    np.testing.assert_array_equal(r1.vcov, r2.vcov)
    for kind in ("simple", "dynamic", "group", "calendar"):
        a1, a2 = r1.aggregate(kind), r2.aggregate(kind)
        np.testing.assert_array_equal(a1.coef, a2.coef)
        np.testing.assert_array_equal(a1.vcov, a2.vcov)
    assert r1.sample == r2.sample


def test_att_gt_grid_with_units_treated_before_the_data() -> None:
    """Units dropped by the sample rules leave the grid path for the general one: same numbers."""
    df = _grid()
    df.loc[df["unit"] < 5, "cohort"] = 1  # treated in the first period: dropped
    general = df.assign(unit=df["unit"].astype(float))
    r1, r2 = (didx.att_gt(d, y="y", unit="unit", time="time", cohort="cohort") for d in (df, general))
    np.testing.assert_array_equal(r1.coef, r2.coef)
    np.testing.assert_array_equal(r1.vcov, r2.vcov)
    assert r1.sample == r2.sample


def test_cohort_varies_within_unit_on_the_grid() -> None:
    df = _grid()
    for u in (4, 7):
        row = (df.unit == u) & (df.time == 2)
        df.loc[row, "cohort"] = 4 if float(df.loc[row, "cohort"].iloc[0]) == 3 else 3
    assert pd.Series(df["unit"]).is_monotonic_increasing
    for d in (df, df.assign(unit=df["unit"].astype(float))):  # grid and general: the same message
        with pytest.raises(didx.DataError, match=r"cohort column 'cohort' varies within unit 4 \(values"):
            didx.att_gt(d, y="y", unit="unit", time="time", cohort="cohort")


def test_att_gt_grid_without_never_treated() -> None:
    """did's rule without never-treated units (the last cohort becomes the comparison, later periods dropped)."""
    df = _grid()
    df = df[df["cohort"].isin([3, 4, 5])].copy()
    df["unit"] = pd.factorize(df["unit"])[0].astype(np.int64)
    general = df.assign(unit=df["unit"].astype(float))
    assert _panel(df).grid
    r1, r2 = (didx.att_gt(d, y="y", unit="unit", time="time", cohort="cohort", control_group="not_yet")
              for d in (df, general))
    np.testing.assert_array_equal(r1.coef, r2.coef)
    np.testing.assert_array_equal(r1.vcov, r2.vcov)
    assert r1.sample == r2.sample and r1.notes == r2.notes
    with pytest.raises(didx.DesignError, match="no never-treated units"):
        didx.att_gt(df, y="y", unit="unit", time="time", cohort="cohort")


def test_with_vcov_on_the_grid() -> None:
    """The row -> unit map kept by a grid fit (a broadcast view) reclusters as the general path's."""
    df = _grid()
    df["state"] = df["unit"] % 7
    general = df.assign(unit=df["unit"].astype(float))
    r1, r2 = (didx.att_gt(d, y="y", unit="unit", time="time", cohort="cohort") for d in (df, general))
    for by_name in (True, False):
        if by_name:
            v1, v2 = r1.with_vcov(cluster="state", data=df), r2.with_vcov(cluster="state", data=general)
        else:
            v1, v2 = (r.with_vcov(cluster=df["state"].to_numpy()) for r in (r1, r2))
        np.testing.assert_array_equal(v1.vcov, v2.vcov)
        np.testing.assert_array_equal(v1.aggregate("dynamic").vcov, v2.aggregate("dynamic").vcov)
    c1 = didx.att_gt(df, y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    np.testing.assert_array_equal(c1.with_vcov(cluster="unit").vcov, r1.vcov)
    np.testing.assert_array_equal(c1.vcov, r1.with_vcov(cluster="state", data=df).vcov)


def test_ddd_bit_identical_on_the_grid() -> None:
    """Triple differences reuse the CS sample rules and reorder the units (by partition): the same numbers."""
    df = _grid(80)
    df["part"] = (df["unit"] % 2).astype(np.int64)
    general = df.assign(unit=df["unit"].astype(float))
    assert _panel(df).grid and not _panel(general).grid
    r1, r2 = (didx.ddd(d, y="y", unit="unit", time="time", cohort="cohort", partition="part") for d in (df, general))
    np.testing.assert_array_equal(r1.coef, r2.coef)
    np.testing.assert_array_equal(r1.vcov, r2.vcov)
    np.testing.assert_array_equal(r1.aggregate("dynamic").vcov, r2.aggregate("dynamic").vcov)
