"""Collapsing to group x period means (Bertrand, Duflo & Mullainathan 2004) in did2x2, twfe and event_study."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY

N_STATES = 12
N_PERIODS = 6


def _state_panel(units_per_state: list[int], seed: int = 0) -> pd.DataFrame:
    """Balanced panel; treatment assigned by state (4 never, 4 from period 3, 4 from period 5)."""
    rng = np.random.default_rng(seed)
    rows = []
    uid = 0
    for s, m in enumerate(units_per_state):
        cohort = 0 if s < 4 else (3 if s < 8 else 5)
        state_shock = rng.normal(size=N_PERIODS)
        for _ in range(m):
            a = rng.normal()
            for t in range(1, N_PERIODS + 1):
                eff = 0.5 * (t - cohort + 1) if cohort and t >= cohort else 0.0
                rows.append({"state": f"s{s}", "unit": uid, "t": t, "cohort": cohort, "x": rng.normal(),
                             "y": a + 0.3 * t + state_shock[t - 1] + eff + rng.normal()})
            uid += 1
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def equal() -> pd.DataFrame:
    return _state_panel([5] * N_STATES)


@pytest.fixture(scope="module")
def unequal() -> pd.DataFrame:
    return _state_panel([2, 7, 3, 5, 4, 9, 2, 6, 3, 8, 5, 4], seed=1)


ES: dict[str, Any] = {"y": "y", "unit": "unit", "time": "t", "cohort": "cohort"}


def test_event_study_equal_cells_same_estimate(equal: pd.DataFrame) -> None:
    full = didx.event_study(equal, **ES, cluster="state")
    col = didx.event_study(equal, **ES, cluster="state", collapse="group_period")
    assert col.terms == full.terms
    np.testing.assert_allclose(col.coef, full.coef, rtol=TOL_IDENTITY)
    assert col.sample.n_obs == N_STATES * N_PERIODS
    assert col.inference.n_clusters == (N_STATES,)
    text = col.summary()
    assert "Collapse: state x period means (72 cells of 12 groups from 360 rows; cells weighted equally)" in text
    assert "Few clusters (12" in text


def test_twfe_and_did2x2_equal_cells_same_estimate(equal: pd.DataFrame) -> None:
    full = didx.twfe(equal, y="y", unit="unit", time="t", cohort="cohort", cluster="state")
    col = didx.twfe(equal, y="y", unit="unit", time="t", cohort="cohort", cluster="state", collapse="group_period")
    assert col.estimate == pytest.approx(full.estimate, rel=TOL_IDENTITY)
    assert col.sample.n_obs == N_STATES * N_PERIODS
    assert any(k == "Collapse" for k, _ in col.design)
    two = equal[equal["t"].isin([2, 3]) & (equal["cohort"] != 5)].copy()
    two["post"] = (two["t"] == 3).astype(int)
    two["g"] = (two["cohort"] == 3).astype(int)
    full2 = didx.did2x2(two, y="y", treat="g", post="post", unit="unit", cluster="state")
    col2 = didx.did2x2(two, y="y", treat="g", post="post", unit="unit", cluster="state", collapse="group_period")
    assert col2.estimate == pytest.approx(full2.estimate, rel=TOL_IDENTITY)
    assert col2.sample.n_obs == 16  # 8 states x 2 periods


def test_unequal_cells_weighted_reproduces_unweighted_does_not(unequal: pd.DataFrame) -> None:
    full = didx.event_study(unequal, **ES, cluster="state")
    weighted = didx.event_study(unequal, **ES, cluster="state", collapse="group_period_weighted")
    equal_w = didx.event_study(unequal, **ES, cluster="state", collapse="group_period")
    np.testing.assert_allclose(weighted.coef, full.coef, rtol=1e-9)
    assert np.max(np.abs(equal_w.coef - full.coef)) > 1e-3
    assert "weighted by cell size" in weighted.summary()


def test_collapsed_inference_is_that_of_the_cell_mean_regression(unequal: pd.DataFrame) -> None:
    col = didx.event_study(unequal, **ES, cluster="state", covariates="x", collapse="group_period")
    cells = unequal.groupby(["state", "t"], as_index=False).agg(y=("y", "mean"), x=("x", "mean"),
                                                                  cohort=("cohort", "first"))
    by_hand = didx.event_study(cells, y="y", unit="state", time="t", cohort="cohort", covariates="x")
    assert col.terms == by_hand.terms
    np.testing.assert_allclose(col.coef, by_hand.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(col.std_errors, by_hand.std_errors, rtol=1e-9)
    assert col.inference.df == by_hand.inference.df


def test_default_groups_are_cohorts(equal: pd.DataFrame) -> None:
    col = didx.event_study(equal, **ES, collapse="group_period")
    full = didx.event_study(equal, **ES)
    np.testing.assert_allclose(col.coef, full.coef, rtol=TOL_IDENTITY)
    assert col.inference.cluster_names == ("cohort",)
    assert col.inference.n_clusters == (3,)
    assert "cohort x period means" in col.summary()


def test_errors(equal: pd.DataFrame) -> None:
    mixed = equal.copy()
    mixed["region"] = np.where(mixed["unit"] % 2 == 0, "a", "b")  # mixes cohorts within a region
    msg = r"varies within a region x period cell \(period=3, input row \d+\).*Fix: collapse by the level"
    with pytest.raises(didx.DesignError, match=msg):
        didx.event_study(mixed, **ES, cluster="region", collapse="group_period")
    with pytest.raises(didx.InvalidOptionError, match=r"'collapse' parameter of twfe must be one of"):
        didx.twfe(equal, y="y", unit="unit", time="t", cohort="cohort", collapse="state")
    two = equal[equal["t"].isin([2, 3])].copy()
    two["post"] = (two["t"] == 3).astype(int)
    two["g"] = (two["cohort"] == 3).astype(int)
    with pytest.raises(didx.InvalidOptionError, match=r"Fix: pass cluster=<that column>"):
        didx.did2x2(two, y="y", treat="g", post="post", unit="unit", collapse="group_period")
    with pytest.raises(didx.InvalidOptionError, match=r"groups by one cluster column"):
        didx.event_study(equal, **ES, cluster=["state", "t"], collapse="group_period")


def test_one_row_per_cell_is_the_identity(equal: pd.DataFrame) -> None:
    shuffled = equal.sample(frac=1.0, random_state=5).reset_index(drop=True)
    full = didx.event_study(shuffled, **ES)
    col = didx.event_study(shuffled, **ES, cluster="unit", collapse="group_period")
    np.testing.assert_allclose(col.coef, full.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(col.std_errors, full.std_errors, rtol=1e-9)
    # clustering by a column read from the data afterwards uses the right rows
    np.testing.assert_allclose(col.with_vcov(cluster="state", data=shuffled).std_errors,
                               full.with_vcov(cluster="state", data=shuffled).std_errors, rtol=1e-9)


def test_error_zero_weight_cell_names_cell_and_fix() -> None:
    df = pd.DataFrame({"id": np.repeat([1, 2, 3, 4], 3), "t": np.tile([1, 2, 3], 4),
                       "g": np.repeat([2, 2, 0, 0], 3), "y": np.arange(12.0),
                       "w": [0.0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1]})
    # event_study drops zero-weight rows (counted) before collapsing, as twfe does: the cohort-2 cell of period 1
    # is gone, and with it cohort 2's only pre-period
    with pytest.raises(didx.DesignError, match=r"reference event time\(s\) -1 are never observed.*Fix:"):
        didx.event_study(df, y="y", unit="id", time="t", cohort="g", weights="w", collapse="group_period")
    # a panel that kept them: the collapse names the cell whose mean is undefined
    from didx._panel import build_panel
    from didx.estimators.regression.collapse import collapse_by_group

    panel = build_panel(df, func="event_study", y="y", unit="id", time="t", cohort="g", weights="w")
    with pytest.raises(didx.DataError, match=r"cell cohort='2', period=1 has zero total weight.*Fix:"):
        collapse_by_group(panel, func="event_study", collapse="group_period", cluster=None)


def test_with_vcov_refuses_a_cluster_that_varies_within_cells(equal: pd.DataFrame) -> None:
    # estimates on state x period means: a column finer than the state (the unit) has no meaning as a clustering of
    # the cells, and must not be read off each cell's first row
    col = didx.twfe(equal, y="y", unit="unit", time="t", cohort="cohort", cluster="state", collapse="group_period")
    with pytest.raises(didx.DataError, match=r"'unit' varies within a state x period cell.*Fix:"):
        col.with_vcov(cluster="unit", data=equal)
    with pytest.raises(didx.DataError, match=r"'unit' varies within a state x period cell.*Fix:"):
        col.with_vcov(cluster=equal["unit"])
    with pytest.raises(didx.DataError, match=r"'unit' varies within a state x period cell.*Fix:"):
        col.wild_bootstrap("treated", cluster="unit", data=equal, n_bootstrap=99, seed=1)
    # a coarser column (constant within each state) is fine
    region = equal["state"].str[1:].astype(int) // 3
    out = col.with_vcov(cluster=region.rename("region"))
    assert out.inference.n_clusters == (4,)
