"""de Chaisemartin-D'Haultfoeuille (2020) weights of the TWFE coefficient: the paper's example, the exact
decomposition of didx.twfe's coefficient, sigma_fe, invariances and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY
from didx._errors import ColumnNotFoundError, DataError


def _panel(n_groups: int, n_periods: int, seed: int, heterogeneous: bool, noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cohorts = rng.choice([2, 3, 4, 5, 0], size=n_groups)
    g = np.repeat(np.arange(n_groups), n_periods)
    t = np.tile(np.arange(1, n_periods + 1), n_groups)
    c = cohorts[g]
    d = ((c > 0) & (t >= c)).astype(int)
    effect = 2.0 + (1.5 * (t - c) + 0.7 * c if heterogeneous else 0.0)
    y = rng.normal(size=n_groups)[g] + rng.normal(size=n_periods)[t - 1] + d * effect + noise * rng.normal(size=g.size)
    return pd.DataFrame({"g": g, "t": t, "y": y, "d": d, "effect": np.where(d == 1, effect, np.nan)})


def test_paper_example_two_groups_three_periods():
    # Group 1 treated at t = 2, 3; group 2 at t = 3 only (the two-group example of de Chaisemartin &
    # D'Haultfoeuille 2020). By hand: D = [[0,1,1],[0,0,1]], row means 2/3, 1/3, column means 0, 1/2, 1, grand
    # mean 1/2, so eps = D - row - column + grand = [[-1/6, 1/3, -1/6], [1/6, -1/3, 1/6]]. Treated cells:
    # eps(1,2) = 1/3, eps(1,3) = -1/6, eps(2,3) = 1/6, sum 1/3, hence
    # beta_fe = Delta(1,2) - 1/2 Delta(1,3) + 1/2 Delta(2,3).
    df = pd.DataFrame({"g": [1, 1, 1, 2, 2, 2], "t": [1, 2, 3, 1, 2, 3], "y": [0.0, 1.0, 5.0, 0.0, 0.3, 2.0],
                       "d": [0, 1, 1, 0, 0, 1]})
    res = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d")
    w = res.weights.set_index(["g", "t"])["weight"]
    np.testing.assert_allclose([w[(1, 2)], w[(1, 3)], w[(2, 3)]], [1.0, -0.5, 0.5], rtol=TOL_IDENTITY)
    assert res.n_negative == 1 and res.n_positive == 2
    np.testing.assert_allclose(res.sum_negative, -0.5, rtol=TOL_IDENTITY)
    y = df["y"].to_numpy()
    # the coefficient itself: sum over cells of eps * Y / sum of treated eps
    eps = np.array([-1, 2, -1, 1, -2, 1]) / 6
    np.testing.assert_allclose(res.beta, float(eps @ y) / (1 / 3), rtol=TOL_IDENTITY)


@pytest.mark.parametrize("heterogeneous", [False, True])
def test_weighted_cell_effects_reproduce_twfe(heterogeneous):
    df = _panel(40, 7, seed=1, heterogeneous=heterogeneous, noise=0.0)
    res = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d")
    fit = didx.twfe(df, y="y", unit="g", time="t", treat="d")
    np.testing.assert_allclose(res.weights["weight"].sum(), 1.0, rtol=TOL_IDENTITY)
    eff = df[df["d"] == 1].set_index(["g", "t"])["effect"]
    cell = res.weights.set_index(["g", "t"])
    weighted = float((cell["weight"] * eff.loc[cell.index]).sum())
    np.testing.assert_allclose(weighted, fit.estimate, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.beta, fit.estimate, rtol=TOL_IDENTITY)
    if not heterogeneous:
        np.testing.assert_allclose(fit.estimate, 2.0, rtol=TOL_IDENTITY)


def test_beta_equals_twfe_with_noise_and_sigma_fe():
    df = _panel(50, 6, seed=2, heterogeneous=True, noise=1.0)
    res = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d")
    fit = didx.twfe(df, y="y", unit="g", time="t", treat="d")
    np.testing.assert_allclose(res.beta, fit.estimate, rtol=TOL_IDENTITY)
    w = res.weights["w"].to_numpy()
    n1 = len(w)
    np.testing.assert_allclose(res.weights["weight"], w / n1, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.sigma_fe, abs(res.beta) / np.sqrt(np.mean((w - 1) ** 2)), rtol=TOL_IDENTITY)
    assert res.n_positive + res.n_negative == res.n_treated_cells == int(df["d"].sum())


def test_weights_option_matches_cell_weights():
    df = _panel(30, 5, seed=3, heterogeneous=True, noise=0.5)
    df["w"] = np.random.default_rng(0).uniform(0.5, 2.0, size=len(df))
    res = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d", weights="w")
    fit = didx.twfe(df, y="y", unit="g", time="t", treat="d", weights="w")
    np.testing.assert_allclose(res.beta, fit.estimate, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.weights["weight"].sum(), 1.0, rtol=TOL_IDENTITY)


def test_row_order_invariance():
    df = _panel(30, 5, seed=4, heterogeneous=True, noise=0.5)
    a = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d")
    b = didx.twfe_weights(df.sample(frac=1.0, random_state=1), y="y", unit="g", time="t", treat="d")
    wa = a.weights.set_index(["g", "t"])["weight"].sort_index()
    wb = b.weights.set_index(["g", "t"])["weight"].sort_index()
    np.testing.assert_allclose(wa.to_numpy(), wb.to_numpy(), rtol=TOL_IDENTITY)
    assert "Negative weights" in a.summary()


def test_error_non_binary_treatment():
    df = _panel(10, 4, seed=5, heterogeneous=False, noise=0.1)
    df.loc[0, "d"] = 2
    with pytest.raises(DataError, match=r"'d' must be 0/1.*2\.0"):
        didx.twfe_weights(df, y="y", unit="g", time="t", treat="d")


def test_error_missing_column():
    df = _panel(10, 4, seed=6, heterogeneous=False, noise=0.1)
    with pytest.raises(ColumnNotFoundError, match="'grp'"):
        didx.twfe_weights(df, y="y", unit="grp", time="t", treat="d")


def test_missing_outcome_and_weight_cells_are_reported():
    # a cell with a missing outcome or weight gets weight 0: the sample report says so (it was silent)
    df = _panel(20, 5, seed=7, heterogeneous=True, noise=0.5)
    df["w"] = 1.0
    df.loc[3, "y"] = np.nan
    df.loc[[5, 6], "w"] = np.nan
    res = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d", weights="w")
    notes = " ".join(res.sample.notes)
    assert "1 cells with a missing outcome (y)" in notes
    assert "2 cells with a missing weight (w)" in notes
    assert "missing weight" in res.summary()
    did_m = didx.dcdh(df, y="y", unit="g", time="t", treat="d", weights="w", estimator="did_m")
    assert "1 cells with a missing outcome (y)" in " ".join(did_m.sample.notes)
    did_l = didx.dcdh(df, y="y", unit="g", time="t", treat="d", weights="w")
    assert "2 cells with a missing weight (w)" in " ".join(did_l.sample.notes)


def test_weights_table_cannot_be_changed_through_the_result():
    df = _panel(10, 4, seed=8, heterogeneous=True, noise=0.1)
    res = didx.twfe_weights(df, y="y", unit="g", time="t", treat="d")
    before = res.weights["weight"].to_numpy().copy()
    table = res.weights
    table["weight"] = 0.0
    np.testing.assert_array_equal(res.weights["weight"].to_numpy(), before)


def test_infinite_outcome_is_a_missing_outcome_and_reported():
    # issue 10: an infinite outcome was kept (beta = inf, no note)
    df = _panel(20, 5, seed=9, heterogeneous=True, noise=0.5)
    inf = df.assign(y=df["y"].where(df.index != 7, np.inf))
    nan = df.assign(y=df["y"].where(df.index != 7, np.nan))
    a = didx.twfe_weights(inf, y="y", unit="g", time="t", treat="d")
    b = didx.twfe_weights(nan, y="y", unit="g", time="t", treat="d")
    assert np.isfinite(a.beta) and a.beta == b.beta
    np.testing.assert_array_equal(a.weights["weight"], b.weights["weight"])
    assert "1 cells with an infinite outcome (y) treated as missing" in a.summary()


def test_error_all_zero_weights():
    df = _panel(10, 4, seed=10, heterogeneous=False, noise=0.1).assign(w=0.0)
    with pytest.raises(DataError, match=r"weights column 'w' is zero or missing in every row.*Fix"):
        didx.twfe_weights(df, y="y", unit="g", time="t", treat="d", weights="w")

