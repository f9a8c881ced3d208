"""LP-DiD (Dube, Girardi, Jordà & Taylor 2025): identities with 2x2s on long differences computed by hand, the
reweighted estimator's equal weights, a noiseless simulation with known effects, pyfixest's lpdid (a peer, as a
cross-check: tests/reference/lpdid_pyfixest.json), the two computation paths, inference and bad input.

There is no R/Stata reference output in the shared references; the identities and the simulation are the checks
(docs/lpdid.md says so).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import didx
from didx._errors import DataError, DesignError, InvalidOptionError
from didx.estimators.lpdid import core

REF = json.loads((Path(__file__).parent / "reference" / "lpdid_pyfixest.json").read_text())
RTOL = 1e-9
SIM = didx.datasets.simulate_staggered(200, 8, cohorts=[3, 4, 6], seed=3)
COLS = {"y": "y", "unit": "unit", "time": "time", "treat": "d"}


def _wide(df: pd.DataFrame, col: str = "y") -> pd.DataFrame:
    return df.pivot(index="unit", columns="time", values=col)


def _by_hand(df: pd.DataFrame, h: int, *, control: str = "clean", reweight: bool = False) -> float:
    """The horizon-h (h >= 0) or lead-h (h < -1) LP-DiD estimate as a weighted average of clean-control 2x2s on
    long differences, one per base period t: OLS weights n_t p_t (1 - p_t), reweighted n1_t."""
    Y = _wide(df)
    g = df.groupby("unit")["cohort"].first().replace(0, np.inf)
    periods = list(Y.columns)
    num = den = 0.0
    for j, t in enumerate(periods):
        if j == 0:
            continue
        if h >= 0:
            if j + h >= len(periods):
                continue
            diff = Y[periods[j + h]] - Y[periods[j - 1]]
            horizon = periods[j + h]
        else:
            if j + h < 0:
                continue
            diff = Y[periods[j + h]] - Y[periods[j - 1]]
            horizon = t
        treated = g == t
        clean = g > horizon
        if control == "never":
            clean &= ~np.isfinite(g)
        n1, n0 = int(treated.sum()), int(clean.sum())
        if n1 == 0 or n0 == 0:
            continue
        did = diff[treated].mean() - diff[clean].mean()
        p = n1 / (n1 + n0)
        wt = n1 if reweight else (n1 + n0) * p * (1 - p)
        num += wt * did
        den += wt
    return num / den


def test_equals_pyfixest_lpdid() -> None:
    res = didx.lpdid(SIM, **COLS, pre_window=3, post_window=3)
    t = res.tidy().set_index("term")
    ref = REF["event"]
    terms = [f"event::{e}" for e in ref["event_time"]]
    np.testing.assert_allclose(t.loc[terms, "estimate"], ref["estimate"], rtol=RTOL)
    np.testing.assert_allclose(t.loc[terms, "std_error"], ref["std_error"], rtol=1e-8)
    np.testing.assert_array_equal(t.loc[terms, "n_obs"], ref["n_obs"])
    pooled = REF["pooled_post"]
    assert res.estimate == pytest.approx(pooled["estimate"], rel=RTOL)
    assert res.std_error == pytest.approx(pooled["std_error"], rel=1e-8)


def test_one_cohort_horizon_equals_the_clean_control_2x2() -> None:
    one = SIM[SIM["cohort"].isin([0, 4])].reset_index(drop=True)
    res = didx.lpdid(one, **COLS, pre_window=3, post_window=3)
    Y = _wide(one)
    treated = one.groupby("unit")["cohort"].first() == 4
    for h in (0, 1, 2, 3):
        dy = Y[4 + h] - Y[3]
        want = dy[treated].mean() - dy[~treated].mean()
        assert res.coef[res.terms.index(f"event::{h}")] == pytest.approx(want, rel=1e-12)
    dy = Y[1] - Y[3]  # lead -3: y_{g-3} - y_{g-1}
    assert res.coef[res.terms.index("event::-3")] == pytest.approx(dy[treated].mean() - dy[~treated].mean(),
                                                                    rel=1e-12)
    pooled = Y[[4, 5, 6, 7]].mean(axis=1) - Y[3]
    assert res.estimate == pytest.approx(pooled[treated].mean() - pooled[~treated].mean(), rel=1e-12)


@pytest.mark.parametrize("reweight", [False, True])
@pytest.mark.parametrize("control", ["clean", "never"])
def test_staggered_estimates_are_weighted_2x2s(reweight: bool, control: str) -> None:
    res = didx.lpdid(SIM, **COLS, pre_window=3, post_window=3, reweight=reweight, control=control)
    for h in (-3, -2, 0, 1, 2, 3):
        got = res.coef[res.terms.index(f"event::{h}")]
        assert got == pytest.approx(_by_hand(SIM, h, control=control, reweight=reweight), rel=1e-10)


def test_not_yet_controls_exclude_the_never_treated() -> None:
    res = didx.lpdid(SIM, **COLS, pre_window=2, post_window=1, control="not_yet")
    later = SIM.assign(cohort=SIM["cohort"].replace(0, 99))
    ref = didx.lpdid(later[later["cohort"] != 99], **COLS, pre_window=2, post_window=1)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)


def test_reweighted_recovers_the_equally_weighted_att_without_noise() -> None:
    """y = unit + period effects + tau(cohort, event time): the reweighted LP-DiD is the average tau over the
    treated observations at each horizon that have a clean control; the unweighted one is not, in general."""
    rng = np.random.default_rng(0)
    units = pd.DataFrame({"unit": range(300), "cohort": rng.choice([3, 4, 6, 0], size=300, p=[.3, .2, .2, .3]),
                          "a": rng.normal(size=300)})
    df = units.merge(pd.DataFrame({"time": range(1, 9)}), how="cross")
    e = np.where(df["cohort"] > 0, df["time"] - df["cohort"], -99)
    tau = np.where(e >= 0, (1.0 + e) * df["cohort"] / 3.0, 0.0)  # effects differ by cohort and event time
    df["y"] = df["a"] + 0.3 * df["time"] ** 1.5 + tau
    df["d"] = (e >= 0).astype(int)
    res = didx.lpdid(df, y="y", unit="unit", time="time", treat="d", pre_window=2, post_window=2, reweight=True)
    for h in (0, 1, 2):
        have = (df["cohort"] > 0) & (e == h) & (df["cohort"] + h <= 8)
        truth = pd.Series(tau[have.to_numpy()]).mean()
        assert res.coef[res.terms.index(f"event::{h}")] == pytest.approx(truth, rel=1e-10)
    assert res.coef[res.terms.index("event::-2")] == pytest.approx(0.0, abs=1e-10)
    plain = didx.lpdid(df, y="y", unit="unit", time="time", treat="d", pre_window=2, post_window=2)
    assert abs(plain.coef[plain.terms.index("event::1")] - res.coef[res.terms.index("event::1")]) > 1e-3


def test_cell_path_equals_the_regressions() -> None:
    Y = _wide(SIM).to_numpy()
    g = SIM.groupby("unit")["cohort"].first().replace(0, np.inf).to_numpy() - 1.0  # period codes
    specs = [core.Spec("event::-3", -3.0, "pre", 3, 0), core.Spec("event::0", 0.0, "post", 0, 0),
             core.Spec("event::2", 2.0, "post", 2, 2), core.Spec("pooled_post", np.nan, "pooled_post", 2, 2),
             core.Spec("pooled_pre", np.nan, "pooled_pre", 3, 0)]
    for control in ("clean", "never", "not_yet"):
        for reweight in (False, True):
            a = core.fit_cells(Y, g, specs, control, reweight)
            b = core.fit_rows(Y, np.ones(Y.shape, dtype=bool), g, None, (), specs, control, reweight)
            np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)
            np.testing.assert_allclose(a.influence, b.influence, rtol=1e-8, atol=1e-12)
            np.testing.assert_array_equal(a.n_obs, b.n_obs)
            np.testing.assert_array_equal(a.k, b.k)
            np.testing.assert_array_equal(a.present, b.present)


def test_covariates_enter_each_regression() -> None:
    res = didx.lpdid(SIM, **COLS, pre_window=2, post_window=1, covariates="x2")
    Y = _wide(SIM)
    X = _wide(SIM, "x2")
    g = SIM.groupby("unit")["cohort"].first().replace(0, np.inf)
    rows = []
    for t in range(2, 8):
        dy = Y[t + 1] - Y[t - 1]
        use = (g == t) | (g > t + 1)
        rows.append(pd.DataFrame({"dy": dy[use], "d": (g[use] == t).astype(float), "x": X[t][use], "t": t}))
    d = pd.concat(rows)
    Z = np.column_stack([d["d"], d["x"], pd.get_dummies(d["t"]).to_numpy(float)])
    b = np.linalg.lstsq(Z, d["dy"].to_numpy(), rcond=None)[0]
    assert res.coef[res.terms.index("event::1")] == pytest.approx(b[0], rel=1e-10)
    with pytest.raises(InvalidOptionError, match="regression-adjustment"):
        didx.lpdid(SIM, **COLS, pre_window=2, post_window=1, covariates="x2", reweight=True)


def test_unbalanced_panel_and_sample_report() -> None:
    df = SIM.drop(index=[0, 9, 50]).reset_index(drop=True)
    df.loc[df["unit"] == 5, "d"] = 1  # unit 5 treated from its first period: dropped and counted
    df.loc[df["unit"] == 5, "cohort"] = 1
    res = didx.lpdid(df, **COLS, pre_window=2, post_window=2)
    drop = [d for d in res.sample.dropped if "first observed period" in d.reason]
    assert drop and drop[0].n_units == 1 and drop[0].n_rows == 8
    assert "one least-squares regression per horizon" in dict(res.design)["Computation"]
    assert "first observed period" in res.summary()


def test_inference_with_vcov_and_joint_covariance() -> None:
    df = SIM.assign(state=SIM["unit"] // 10)
    res = didx.lpdid(df, **COLS, pre_window=3, post_window=2)
    again = didx.lpdid(df, **COLS, pre_window=3, post_window=2, cluster="state")
    np.testing.assert_allclose(res.with_vcov(cluster="state", data=df).vcov_matrix, again.vcov_matrix, rtol=1e-12)
    V = res.vcov_matrix
    assert np.all(np.linalg.eigvalsh(V) > -1e-12) and abs(V[2, 3]) > 0  # cross-horizon covariance estimated
    with pytest.raises(InvalidOptionError, match="varies within units"):
        res.with_vcov(cluster=df["time"])
    with pytest.raises(InvalidOptionError):
        res.with_vcov(vcov="hetero")
    assert res.aggregate("pooled").estimate == pytest.approx(res.estimate)
    post = res.aggregate("post")
    assert post.estimate == pytest.approx(np.mean(res.coef[[res.terms.index(f"event::{h}") for h in (0, 1, 2)]]))


def test_event_study_entry_honest_did_and_plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    sim = SIM.assign(cohort=SIM["cohort"])
    es = didx.event_study(sim, y="y", unit="unit", time="time", cohort="cohort", estimator="lpdid", window=(-3, 3))
    direct = didx.lpdid(sim, **COLS, pre_window=3, post_window=3)
    np.testing.assert_allclose(es.coef, direct.coef, rtol=1e-12)
    assert es.pre_period_meaning.startswith("LP-DiD lead")
    hd = didx.honest_did(es, M=[0.0, 0.1])
    assert len(hd.conf_low) == 2
    both = didx.event_study(sim, y="y", unit="unit", time="time", cohort="cohort",
                            estimator=["twfe", "lpdid", "etwfe"], window=(-2, 2))
    assert set(both.tidy()["estimator"]) == {"twfe", "lpdid", "etwfe"}
    assert both.plot() is not None
    with pytest.raises(InvalidOptionError, match="weights"):
        didx.event_study(sim.assign(w=1.0), y="y", unit="unit", time="time", cohort="cohort", estimator="lpdid",
                         weights="w")


def test_bad_input() -> None:
    df = SIM.copy()
    df.loc[(df["unit"] == 0) & (df["time"] == 6), "d"] = 0
    with pytest.raises(DataError, match="absorbing"):
        didx.lpdid(df, **COLS, pre_window=2, post_window=1)
    with pytest.raises(InvalidOptionError, match="'pre_window' parameter"):
        didx.lpdid(SIM, **COLS, pre_window=0, post_window=1)
    with pytest.raises(InvalidOptionError, match="'post_window' parameter"):
        didx.lpdid(SIM, **COLS, pre_window=2, post_window=-1)
    with pytest.raises(InvalidOptionError, match="do not fit"):
        didx.lpdid(SIM, **COLS, pre_window=2, post_window=7)
    with pytest.raises(InvalidOptionError, match="'control' parameter"):
        didx.lpdid(SIM, **COLS, pre_window=2, post_window=1, control="nevr")
    with pytest.raises(DataError, match="0/1"):
        didx.lpdid(SIM.assign(d=SIM["d"] * 2), **COLS, pre_window=2, post_window=1)
    with pytest.raises(DesignError, match="never-treated"):
        didx.lpdid(SIM[SIM["cohort"] > 0], **COLS, pre_window=2, post_window=1, control="never")


def test_cohort_column_gives_the_same_treatment() -> None:
    a = didx.lpdid(SIM, **COLS, pre_window=2, post_window=2)
    b = didx.lpdid(SIM, y="y", unit="unit", time="time", cohort="cohort", pre_window=2, post_window=2)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-14)
    with pytest.raises(InvalidOptionError, match="exactly one"):
        didx.lpdid(SIM, y="y", unit="unit", time="time", pre_window=2, post_window=2)


def test_evenly_spaced_periods_give_event_times_in_time_units() -> None:
    every2 = SIM.assign(time=SIM["time"] * 2)
    a = didx.lpdid(SIM, **COLS, pre_window=2, post_window=2)
    b = didx.lpdid(every2, **COLS, pre_window=2, post_window=2)
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-14)
    np.testing.assert_array_equal(b.event_times[np.isfinite(b.event_times)], [-4.0, 0.0, 2.0, 4.0])
    assert b.reference_periods == (-2.0,) and "event::4" in b.terms


def test_comparison_on_evenly_spaced_periods() -> None:
    every2 = SIM.assign(time=SIM["time"] * 2, cohort=SIM["cohort"] * 2)
    both = didx.event_study(every2, y="y", unit="unit", time="time", cohort="cohort",
                            estimator=["sun_abraham", "lpdid", "etwfe"], window=(-4, 4), ref=-2)
    direct = didx.lpdid(SIM, **COLS, pre_window=2, post_window=2)
    np.testing.assert_allclose(both["lpdid"].coef, direct.coef, rtol=1e-12)
    assert list(both.wide().index) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    wide = both.wide()  # ETWFE with never-treated controls = Sun-Abraham on a balanced panel
    np.testing.assert_allclose(wide["etwfe"], wide["sun_abraham"], rtol=1e-8, atol=1e-12)
    with pytest.raises(InvalidOptionError, match="ref=-2"):
        didx.event_study(every2, y="y", unit="unit", time="time", cohort="cohort", estimator="lpdid")


def test_not_yet_without_later_treated_units_is_refused_with_the_fix() -> None:
    one = SIM[SIM["cohort"].isin([0, 4])]
    with pytest.raises(DesignError, match=r"control='not_yet' compares .* Fix: use control='clean'"):
        didx.lpdid(one, **COLS, pre_window=2, post_window=2, control="not_yet")
    two = SIM[SIM["cohort"].isin([0, 3, 4])]  # horizon 3 has no unit treated later than t + 3 = 6 or 7
    with pytest.raises(DesignError, match=r"control='not_yet'.*or use control='clean'"):
        didx.lpdid(two, **COLS, pre_window=2, post_window=3, control="not_yet")
