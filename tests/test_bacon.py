"""Goodman-Bacon decomposition: bacondecomp reference, the TWFE identity, invariances, bad input, plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import didx
from conftest import load_reference
from didx._errors import ColumnNotFoundError, DataError, DesignError

REF = load_reference("bacondecomp.json")
TOL_2X2 = 1e-10        # every 2x2 weight and estimate vs bacondecomp (measured max 1e-12 relative)
TOL_TWFE = 1e-10       # TWFE coefficient vs fixest
TOL_IDENTITY = 1e-10   # sum(weight x estimate) vs didx.twfe
TOL_PRINTED = 5e-6     # numbers printed by bacondecomp with 5 decimals


@pytest.fixture(scope="module")
def castle() -> pd.DataFrame:
    return didx.datasets.load("castle")


@pytest.fixture(scope="module")
def decomposition(castle: pd.DataFrame) -> didx.BaconDecomposition:  # type: ignore[name-defined]
    return didx.bacon(castle, y="l_homicide", unit="state", time="year", treat="post")


def test_every_2x2_matches_bacondecomp(decomposition) -> None:  # type: ignore[no-untyped-def]
    t = decomposition.tidy()
    ref = REF["castle_nocov"]["two_by_twos"]
    assert len(t) == len(ref) == 25
    for r in ref:
        control = r.get("untreated", np.inf)
        row = t[(t["treated"] == r["treated"]) & (t["control"] == control)]
        assert len(row) == 1, r
        assert row["type"].iloc[0] == r["type"]
        assert row["weight"].iloc[0] == pytest.approx(r["weight"], rel=TOL_2X2)
        assert row["estimate"].iloc[0] == pytest.approx(r["estimate"], rel=TOL_2X2)
    assert decomposition.twfe == pytest.approx(REF["castle_twfe"]["estimate"], rel=TOL_TWFE)
    assert decomposition.weighted_sum == pytest.approx(REF["castle_nocov"]["weighted_sum"], rel=TOL_TWFE)
    assert decomposition.estimate == decomposition.twfe


def test_summary_by_type_matches_bacondecomp(decomposition) -> None:  # type: ignore[no-untyped-def]
    bt = decomposition.by_type().set_index("type")
    for r in REF["castle_nocov"]["summary"]:
        assert abs(bt.loc[r["type"], "weight"] - r["weight"]) < TOL_PRINTED
        assert abs(bt.loc[r["type"], "avg_estimate"] - r["avg_est"]) < TOL_PRINTED
    assert bt["weight"].sum() == pytest.approx(1.0, abs=1e-14)
    assert list(bt["n_comparisons"]) == [5, 10, 10]


def test_identity_equals_twfe(castle: pd.DataFrame, decomposition) -> None:  # type: ignore[no-untyped-def]
    tw = didx.twfe(castle, y="l_homicide", unit="state", time="year", treat="post")
    t = decomposition.tidy()
    assert float(np.sum(t["weight"] * t["estimate"])) == pytest.approx(tw.estimate, rel=TOL_IDENTITY)
    assert decomposition.twfe == pytest.approx(tw.estimate, rel=TOL_IDENTITY)


def test_controlled_identity_and_printed_summary(castle: pd.DataFrame) -> None:
    res = didx.bacon(castle, y="l_homicide", unit="state", time="year", treat="post", covariates=["l_pop", "l_income"])
    tw = didx.twfe(castle, y="l_homicide", unit="state", time="year", treat="post", covariates=["l_pop", "l_income"])
    t = res.tidy()
    assert res.omega is not None and res.within is not None and 0 < res.omega < 1
    between = float(np.sum(t["weight"] * t["estimate"]))
    assert res.omega * res.within + (1 - res.omega) * between == pytest.approx(tw.estimate, rel=TOL_IDENTITY)
    assert res.twfe == pytest.approx(tw.estimate, rel=TOL_IDENTITY)
    # each pair of timing groups once; types as bacondecomp's controlled decomposition
    assert len(t) == 15 and set(t["type"]) == {"Treated vs Untreated", "Both Treated"}
    bt = res.by_type().set_index("type")
    for r in REF["castle_controlled_summary_secondary"]["summary"]:
        assert abs(bt.loc[r["type"], "weight"] - r["weight"]) < TOL_PRINTED
        assert abs(bt.loc[r["type"], "avg_estimate"] - r["avg_est"]) < TOL_PRINTED
    assert "Omega" in str(res.summary())


# ---------------------------------------------------------------- simulated designs
def _staggered(seed: int, always: bool = False, never: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    T = 8
    cohorts = [3, 5, 6] + ([1] if always else []) + ([0] if never else [])
    rows = []
    uid = 0
    for g in cohorts:
        for _ in range(int(rng.integers(2, 6))):
            a = rng.normal()
            for t in range(1, T + 1):
                d = int(g > 0 and t >= g)
                rows.append((f"u{uid}", t, d, a + 0.2 * t + d * (0.5 + 0.1 * (t - g)) + rng.normal(), rng.normal()))
            uid += 1
    return pd.DataFrame(rows, columns=["id", "period", "d", "y", "x"])


@pytest.mark.parametrize(("always", "never"), [(False, True), (True, True), (True, False), (False, False)])
def test_identity_on_simulated_designs(always: bool, never: bool) -> None:
    df = _staggered(4, always=always, never=never)
    res = didx.bacon(df, y="y", unit="id", time="period", treat="d")
    tw = didx.twfe(df, y="y", unit="id", time="period", treat="d")
    t = res.tidy()
    assert float(np.sum(t["weight"] * t["estimate"])) == pytest.approx(tw.estimate, rel=TOL_IDENTITY)
    assert ("Later vs Always Treated" in set(t["type"])) == always
    assert ("Treated vs Untreated" in set(t["type"])) == never
    if always:
        assert np.all(t.loc[t["type"] == "Later vs Always Treated", "control"] == 1)
        assert any("always treated" in n for n in res.notes)
    # with a covariate: Omega x within + (1 - Omega) x between = controlled TWFE
    rc = didx.bacon(df, y="y", unit="id", time="period", treat="d", covariates="x")
    twc = didx.twfe(df, y="y", unit="id", time="period", treat="d", covariates="x")
    assert rc.weighted_sum == pytest.approx(twc.estimate, rel=TOL_IDENTITY)


def test_2x2_is_the_subsample_regression() -> None:
    """Each 2x2 estimate equals TWFE on its subsample (bacondecomp's lm on the two groups and the window)."""
    df = _staggered(9)
    res = didx.bacon(df, y="y", unit="id", time="period", treat="d")
    first = df[df["d"] == 1].groupby("id")["period"].min()
    df = df.assign(g=df["id"].map(first).fillna(np.inf))
    for r in res.tidy().itertuples():
        sub = df[df["g"].isin([r.treated, r.control])]
        if r.type == "Earlier vs Later Treated":
            sub = sub[sub["period"] < r.control]
        elif r.type in ("Later vs Earlier Treated", "Later vs Always Treated"):
            sub = sub[sub["period"] >= r.control]
        sub = sub.assign(dk=((sub["g"] == r.treated) & (sub["period"] >= r.treated)).astype(int))
        tw = didx.twfe(sub, y="y", unit="id", time="period", treat="dk")
        assert r.estimate == pytest.approx(tw.estimate, rel=TOL_IDENTITY)


def test_invariances(castle: pd.DataFrame, decomposition) -> None:  # type: ignore[no-untyped-def]
    shuffled = castle.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["state"] = "S-" + shuffled["state"].astype(str).str[::-1]
    res = didx.bacon(shuffled, y="l_homicide", unit="state", time="year", treat="post")
    a = decomposition.tidy().sort_values(["treated", "control"]).reset_index(drop=True)
    b = res.tidy().sort_values(["treated", "control"]).reset_index(drop=True)
    np.testing.assert_allclose(a["weight"], b["weight"], rtol=TOL_IDENTITY)
    np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=TOL_IDENTITY)


def test_tidy_and_summary(decomposition) -> None:  # type: ignore[no-untyped-def]
    t = decomposition.tidy()
    for col in ("term", "treated", "control", "type", "weight", "estimate"):
        assert col in t.columns
    assert t.loc[t["control"] == np.inf, "term"].str.endswith("never treated").all()
    s = str(decomposition.summary())
    for text in ("Treated vs Untreated", "Later vs Earlier Treated", "TWFE coefficient: 0.0818116", "Units: 50",
                 "balanced", "no standard errors"):
        assert text in s
    assert "| treated |" in decomposition.to_markdown()
    assert "25 2x2" in repr(decomposition)


def test_plot_structure(decomposition) -> None:  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots()
    out = decomposition.plot(ax=ax)
    assert out is ax
    assert ax.get_xlabel() == "Weight" and ax.get_ylabel() == "2x2 DiD estimate"
    assert len(ax.collections) == 3  # one scatter per comparison type
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [5, 10, 10]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Later vs Earlier Treated" in labels and any(lab.startswith("TWFE") for lab in labels)
    twfe_line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("TWFE"))
    assert twfe_line.get_ydata()[0] == pytest.approx(decomposition.twfe)
    plt.close(fig)


# ---------------------------------------------------------------- bad input
def test_unbalanced_panel_error(castle: pd.DataFrame) -> None:
    df = castle.drop(index=[3, 40]).reset_index(drop=True)
    with pytest.raises(DesignError, match=r"unbalanced: 2 of 50 units.*balanced panel.*Fix: keep the units"):
        didx.bacon(df, y="l_homicide", unit="state", time="year", treat="post")


def test_missing_outcome_unbalances_with_reason(castle: pd.DataFrame) -> None:
    df = castle.copy()
    df.loc[5, "l_homicide"] = np.nan
    with pytest.raises(DesignError, match=r"1 rows were dropped for missing values"):
        didx.bacon(df, y="l_homicide", unit="state", time="year", treat="post")


def test_fractional_treatment_error(castle: pd.DataFrame) -> None:
    """castle's ``cdl`` is the share of the adoption year under the law (fractional); ``post`` is 0/1."""
    with pytest.raises(DataError, match=r"treatment column 'cdl' must be 0/1.*Fix: recode"):
        didx.bacon(castle, y="l_homicide", unit="state", time="year", treat="cdl")


def test_non_absorbing_treatment_error() -> None:
    df = _staggered(1)
    i = df.index[(df["d"] == 1)][2]
    df.loc[i, "d"] = 0
    with pytest.raises(DataError, match=r"not absorbing: unit .* untreated in .*Fix: recode 'd'"):
        didx.bacon(df, y="y", unit="id", time="period", treat="d")


def test_unknown_column(castle: pd.DataFrame) -> None:
    with pytest.raises(ColumnNotFoundError, match=r"'pots'.*Did you mean 'post'"):
        didx.bacon(castle, y="l_homicide", unit="state", time="year", treat="pots")


def test_covariate_absorbed_by_fixed_effects_is_reported(castle: pd.DataFrame) -> None:
    """A time-invariant covariate is collinear with the unit effects: said in the notes, not silently dropped."""
    df = castle.copy()  # de-fragmented, so adding a column raises no PerformanceWarning
    df["tinv"] = df.groupby("state")["l_pop"].transform("first")
    res = didx.bacon(df, y="l_homicide", unit="state", time="year", treat="post", covariates=["l_pop", "tinv"])
    plain = didx.bacon(castle, y="l_homicide", unit="state", time="year", treat="post", covariates=["l_pop"])
    assert res.twfe == pytest.approx(plain.twfe, rel=1e-9)
    assert any("tinv" in n and "collinear" in n for n in res.notes)
    assert "tinv (dropped: collinear" in dict(res.design)["Covariates"]


def test_plot_ax_of_the_wrong_type_is_refused(decomposition) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(didx.InvalidOptionError, match=r"The 'ax' parameter of BaconDecomposition\.plot must be a "
                                                      r"matplotlib Axes or None\. Got 'x' instead"):
        decomposition.plot(ax="x")
