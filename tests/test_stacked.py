"""Stacked DiD with corrective weights: identities (no R reference exists in the fixtures)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(300, 10, [4, 5, 7], seed=2)
    df["state"] = df["unit"] % 11
    return df


def _means(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby(["cohort", "time"])["y"].mean().unstack()


def test_single_cohort_equals_twfe_event_study(panel: pd.DataFrame) -> None:
    """One cohort and never-treated controls, window = all periods: the stack is the panel itself."""
    one = panel[panel["cohort"].isin([0, 5])]
    res = didx.stacked(one, y="y", unit="unit", time="time", cohort="cohort", window=(-4, 5), control_group="never")
    es = didx.event_study(one, y="y", unit="unit", time="time", cohort="cohort")
    reg = res.regression
    assert reg.terms == es.terms
    np.testing.assert_allclose(reg.coef, es.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(reg.vcov_matrix, es.vcov_matrix, rtol=1e-9)
    sub = didx.stacked(one, y="y", unit="unit", time="time", cohort="cohort", window=(-4, 5), control_group="never",
                       fe="subexperiment")
    np.testing.assert_allclose(sub.coef, res.coef, rtol=TOL_IDENTITY)


def test_corrective_weights_match_treated_shares(panel: pd.DataFrame) -> None:
    """WFH: the weighted control share of each sub-experiment equals its treated share."""
    res = didx.stacked(panel, y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2))
    subs = res.sub_experiments
    treated_share = subs["n_treated_units"] / subs["n_treated_units"].sum()
    weighted_control = subs["control_weight"] * subs["n_control_units"]
    np.testing.assert_allclose(weighted_control / weighted_control.sum(), treated_share, rtol=1e-12)
    n_d, n_c = subs["n_treated_units"].sum(), subs["n_control_units"].sum()
    np.testing.assert_allclose(subs["control_weight"],
                               (subs["n_treated_units"] / n_d) / (subs["n_control_units"] / n_c), rtol=1e-12)
    # controls: never treated plus cohorts treated after a + hi
    units = panel.groupby("unit")["cohort"].first()
    n_never, n_7 = int((units == 0).sum()), int((units == 7).sum())
    assert list(subs["n_control_units"]) == [n_never + n_7, n_never, n_never]  # 7 > 4 + 2; nothing after 5 + 2


def test_trimmed_aggregate_att_from_cell_means(panel: pd.DataFrame) -> None:
    """delta_e = sum_a (N^D_a / N^D) [(Ybar_{a, a+e} - Ybar_{a, a-1}) - (Ybar_{C_a, a+e} - Ybar_{C_a, a-1})]."""
    lo, hi = -2, 2
    res = didx.stacked(panel, y="y", unit="unit", time="time", cohort="cohort", window=(lo, hi))
    units = panel.groupby("unit")["cohort"].first()
    tidy = res.tidy().set_index("term")
    post = []
    for e in [-2, 0, 1, 2]:
        num, den = 0.0, 0
        for a in [4, 5, 7]:
            treated = units[units == a].index
            clean = units[(units == 0) | (units > a + hi)].index

            def mean(ids: Any, t: int) -> float:
                return float(panel[panel["unit"].isin(ids) & (panel["time"] == t)]["y"].mean())

            did = (mean(treated, a + e) - mean(treated, a - 1)) - (mean(clean, a + e) - mean(clean, a - 1))
            num += len(treated) * did
            den += len(treated)
        assert tidy.loc[f"event_time::{e}", "estimate"] == pytest.approx(num / den, rel=TOL_IDENTITY)
        if e >= 0:
            post.append(num / den)
    assert res.estimate == pytest.approx(float(np.mean(post)), rel=TOL_IDENTITY)


def test_unweighted_stack_is_different_and_never_control(panel: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2))
    a = didx.stacked(panel, **kw)
    b = didx.stacked(panel, weighting="none", **kw)
    assert not np.allclose(a.coef, b.coef)
    assert "unweighted" in dict(b.design)["Weights"]
    c = didx.stacked(panel, control_group="never", **kw)
    assert c.sub_experiments["n_control_units"].nunique() == 1


def test_window_trims_cohorts_and_reports(panel: pd.DataFrame) -> None:
    res = didx.stacked(panel, y="y", unit="unit", time="time", cohort="cohort", window=(-4, 4))
    assert list(res.sub_experiments["cohort"]) == [5.0]  # 4 - 4 < 1 and 7 + 4 > 10
    assert list(res.sub_experiments["control_weight"]) == [1.0]
    reasons = " ".join(res.sample.notes)
    assert "4 (window 0..8 outside the data)" in reasons and "7 (window 3..11" in reasons
    assert "Sub-experiments: 1 of 3" in str(res.summary())


def test_inference_and_invariance(panel: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2))
    res = didx.stacked(panel, **kw)
    assert res.inference.cluster_names == ("unit",) and res.inference.n_clusters == (300,)
    refit = didx.stacked(panel, cluster="state", **kw)
    switched = res.with_vcov(cluster="state", data=panel)
    np.testing.assert_allclose(switched.vcov_matrix, refit.vcov_matrix, rtol=1e-12)
    shuffled = didx.stacked(panel.sample(frac=1.0, random_state=0), **kw)
    np.testing.assert_allclose(shuffled.coef, res.coef, rtol=1e-10)
    np.testing.assert_allclose(shuffled.vcov_matrix, res.vcov_matrix, rtol=1e-9)
    nan_never = didx.stacked(panel.assign(cohort=panel["cohort"].replace(0, np.nan)), **kw)
    np.testing.assert_allclose(nan_never.coef, res.coef, rtol=1e-12)
    assert isinstance(res, didx.EventStudyResult) and res.reference_periods == (-1.0,)
    assert res.pretrend_test().df == 1


def test_errors(panel: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort")
    with pytest.raises(didx.InvalidOptionError, match=r"'window'.*lo <= -1.*\(-3, 3\).*Got \(0, 3\)"):
        didx.stacked(panel, window=(0, 3), **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"'control_group'.*'not_yet'.*'never'.*'notyet'"):
        didx.stacked(panel, window=(-2, 2), control_group="notyet", **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"'weighting'.*'corrective'"):
        didx.stacked(panel, window=(-2, 2), weighting="wfh", **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"'fe'.*'unit_event'.*'subexperiment'"):
        didx.stacked(panel, window=(-2, 2), fe="unit", **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"weights='none' names a sampling-weights column.*weighting="):
        didx.stacked(panel, window=(-2, 2), weights="none", **kw)
    with pytest.raises(didx.DesignError, match=r"no sub-experiment fits the window -9..9.*Fix"):
        didx.stacked(panel, window=(-9, 9), **kw)
    treated_only = panel[panel["cohort"] > 0]
    with pytest.raises(didx.DesignError, match=r"no clean control"):
        didx.stacked(treated_only, window=(-1, 3), control_group="never", **kw)


def test_hand_computed_small_panel() -> None:
    """Two units adopt at 3, one at 4, two never; periods 1..5; window (-1, 1). By hand:
    DiD_3(0) = 6 - 1.5 = 4.5, DiD_3(1) = 7 - 3 = 4, DiD_4(0) = 5 - 1.5 = 3.5, DiD_4(1) = 8 - 3 = 5;
    treated shares 2/3 and 1/3, so delta_0 = 25/6, delta_1 = 13/3 and ATT = 17/4; control weights
    (2/3)/(2/4) = 4/3 and (1/3)/(2/4) = 2/3."""
    t = np.arange(1, 6)
    rows = []
    for u, (g, path) in enumerate([
        (3, t + 5.0 * (t >= 3)), (3, t + 1 + 5.0 * (t >= 3)), (4, 3.0 * t + 2.0 * (t >= 4)),
        (0, 1.0 * t), (0, 2.0 * t),
    ]):
        rows += [{"unit": u, "time": int(tt), "cohort": g, "y": float(v)} for tt, v in zip(t, path, strict=True)]
    df = pd.DataFrame(rows)
    res = didx.stacked(df, y="y", unit="unit", time="time", cohort="cohort", window=(-1, 1))
    tidy = res.tidy().set_index("term")
    assert tidy.loc["event_time::0", "estimate"] == pytest.approx(25 / 6, rel=1e-12)
    assert tidy.loc["event_time::1", "estimate"] == pytest.approx(13 / 3, rel=1e-12)
    assert res.estimate == pytest.approx(17 / 4, rel=1e-12)
    np.testing.assert_allclose(res.sub_experiments["control_weight"], [4 / 3, 2 / 3], rtol=1e-12)
    assert list(res.sub_experiments["n_control_units"]) == [2, 2]  # cohort 4 is not clean for a = 3 (4 <= 3 + 1)


@pytest.mark.parametrize(("vcov", "cluster", "kw"), [
    (None, None, {}), ("iid", None, {}), ("hetero", None, {}), (None, "state", {}), (None, ["unit", "time"], {}),
    (None, None, {"weighting": "none"}), (None, None, {"control_group": "never"}), ("CR3", "state", {}),
])
def test_cells_equal_regression(panel: pd.DataFrame, vcov: str | None, cluster: Any, kw: dict[str, Any]) -> None:
    """A balanced stack is fitted from cell means (sub-experiment x treated x event time); same numbers."""
    args: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2), vcov=vcov,
                                cluster=cluster, **kw)
    a = didx.stacked(panel, engine="cells", **args)
    b = didx.stacked(panel, engine="regression", **args)
    assert a.terms == b.terms
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=1e-9, atol=1e-15)
    assert a.inference == b.inference
    assert "cell means" in dict(a.design)["Fixed effects"]


def test_cells_need_a_balanced_stack(panel: pd.DataFrame) -> None:
    unbalanced = panel.drop(index=[3, 17, 25])
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2))
    res = didx.stacked(unbalanced, **kw)
    assert "cell means" not in dict(res.design)["Fixed effects"]
    with pytest.raises(didx.InvalidOptionError, match=r"engine='cells' needs a balanced panel.*engine='auto'"):
        didx.stacked(unbalanced, engine="cells", **kw)


def test_stored_tables_are_read_only() -> None:
    df = didx.datasets.load("mpdta")
    res = didx.stacked(df, y="lemp", unit="countyreal", time="year", cohort="first.treat", window=(-1, 1))
    with pytest.raises(TypeError):
        res.extras["sub_experiments"][0]["control_weight"] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        res.extras["corrective_weights"][...] = 0.0
    q = res.corrective_weights  # cohort x event time; a copy
    assert list(q.columns) == ["cohort", "event_time", "control_weight"] and len(q) == 2 * 3
    q.loc[:, "control_weight"] = 0.0
    assert (res.corrective_weights["control_weight"] > 0).all()
    assert list(res.sub_experiments.columns) == ["cohort", "n_treated_units", "n_control_units", "control_weight",
                                                 "treated_share"]


def test_sample_report_counts_rows_in_no_sub_experiment() -> None:
    # mpdta (2003..2007), window (-1, 1): cohort 2007 does not fit (2008 is not observed) but its units are clean
    # controls of cohort 2004 (2007 > 2004 + 1) in 2003..2005, as are cohort 2006's; cohort 2004 is used in
    # 2003..2005, cohort 2006 also in 2005..2007, the never treated in every year. Unused: 2004's and 2007's rows
    # in 2006..2007.
    df = didx.datasets.load("mpdta")
    res = didx.stacked(df, y="lemp", unit="countyreal", time="year", cohort="first.treat", window=(-1, 1))
    g, t = df["first.treat"], df["year"]
    used = (g == 0) | ((g == 2004) & (t <= 2005)) | (g == 2006) | ((g == 2007) & (t <= 2005))
    assert res.sample.n_obs == int(used.sum()) < len(df)
    assert res.sample.n_dropped_rows == len(df) - int(used.sum())
    assert res.sample.n_units == df["countyreal"].nunique()  # every unit keeps some rows
    assert [d.n_units for d in res.sample.dropped] == [0]
    assert any("2007 (window 2006..2008 outside the data)" in n for n in res.sample.notes)


# ---------------------------------------------------------------- wild bootstrap
@pytest.mark.parametrize("engine", ["cells", "regression"])
def test_wild_bootstrap_equals_twfe_event_study_on_one_cohort(panel: pd.DataFrame, engine: str) -> None:
    """One cohort, never-treated controls, window = all periods: the stack is the panel and the stacked regression
    the TWFE event study, so their wild bootstraps are the same test draw by draw (ATT: the post mean)."""
    one = panel[panel["cohort"].isin([0, 5])]
    res = didx.stacked(one, y="y", unit="unit", time="time", cohort="cohort", window=(-4, 5), control_group="never",
                       cluster="state", engine=engine)
    es = didx.event_study(one, y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    kw: dict[str, Any] = dict(n_bootstrap=999, seed=7)
    a, b = res.wild_bootstrap("event_time::1", **kw), es.wild_bootstrap("event_time::1", **kw)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12)
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    np.testing.assert_allclose(a.conf_int, b.conf_int, rtol=1e-8)
    post = [t for t, e in zip(es.terms, es.event_times, strict=True) if e >= 0]
    R = np.array([[1.0 / len(post) if t in post else 0.0 for t in es.terms]])
    a, b = res.wild_bootstrap("ATT", **kw), es.wild_bootstrap(R, **kw)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12) and a.hypothesis == "ATT = 0"
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    assert a.estimate == pytest.approx(res.estimate, rel=1e-12)


def test_wild_bootstrap_reproducible(panel: pd.DataFrame) -> None:
    res = didx.stacked(panel, y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2), cluster="state")
    a = res.wild_bootstrap("ATT", n_bootstrap=499, seed=3)
    b = res.wild_bootstrap("ATT", n_bootstrap=499, seed=3)
    assert a.p_value == b.p_value and a.conf_int == b.conf_int
    np.testing.assert_array_equal(a.bootstrap_statistics, b.bootstrap_statistics)
    reg = didx.stacked(panel, y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2), cluster="state",
                       engine="regression").wild_bootstrap("ATT", n_bootstrap=499, seed=3)
    assert reg.p_value == pytest.approx(a.p_value, abs=1e-12)


# ---------------------------------------------------------------- event-study contract, aggregation
def test_event_study_contract_and_aggregate(panel: pd.DataFrame) -> None:
    from didx.comparison import PRE_PERIOD

    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2))
    res = didx.stacked(panel, **kw)
    assert res.pre_period_meaning == PRE_PERIOD["stacked"] and res.cross_covariance is True
    assert (res.n_pre, res.n_post) == (1, 3)
    post = res.aggregate("post")
    assert post.estimate == pytest.approx(res.estimate, rel=1e-12)
    assert post.std_error == pytest.approx(res.std_error, rel=1e-12)
    refit = didx.stacked(panel, cluster="state", **kw)
    np.testing.assert_allclose(post.with_vcov(cluster="state", data=panel).vcov_matrix,
                               refit.aggregate("post").vcov_matrix, rtol=1e-12)


# ---------------------------------------------------------------- sampling weights
@pytest.fixture(scope="module")
def weighted(panel: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    unit_weight = rng.uniform(0.5, 3.0, panel["unit"].nunique())
    return panel.assign(sw=unit_weight[panel["unit"].to_numpy() - panel["unit"].min()])


def test_sampling_weights_give_the_weighted_trimmed_aggregate_att(weighted: pd.DataFrame) -> None:
    """delta_e = sum_a (S^D_a / S^D) [weighted DiD of sub-experiment a], S the treated units' sampling weights."""
    lo, hi = -2, 2
    res = didx.stacked(weighted, y="y", unit="unit", time="time", cohort="cohort", window=(lo, hi), weights="sw")
    units = weighted.groupby("unit")[["cohort", "sw"]].first()
    tidy = res.tidy().set_index("term")
    shares = []
    for e in [-2, 0, 1, 2]:
        num, den = 0.0, 0.0
        for a in [4, 5, 7]:
            treated = units[units["cohort"] == a]
            clean = units[(units["cohort"] == 0) | (units["cohort"] > a + hi)]

            def mean(u: pd.DataFrame, t: int) -> float:
                d = weighted[weighted["unit"].isin(u.index) & (weighted["time"] == t)]
                return float(np.average(d["y"], weights=d["sw"]))

            did = (mean(treated, a + e) - mean(treated, a - 1)) - (mean(clean, a + e) - mean(clean, a - 1))
            num += treated["sw"].sum() * did
            den += treated["sw"].sum()
            if e == 0:
                shares.append(treated["sw"].sum())
        assert tidy.loc[f"event_time::{e}", "estimate"] == pytest.approx(num / den, rel=TOL_IDENTITY)
    np.testing.assert_allclose(res.sub_experiments["treated_share"], np.array(shares) / sum(shares), rtol=1e-12)
    assert "sampling weights sw" in dict(res.design)["Weights"]


def test_sampling_weights_checks(weighted: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2))
    base = didx.stacked(weighted, **kw)
    constant = didx.stacked(weighted.assign(c=2.0), weights="c", **kw)
    np.testing.assert_allclose(constant.coef, base.coef, rtol=1e-10)
    with pytest.raises(didx.DataError, match=r"'sw2' varies within unit.*Fix"):
        didx.stacked(weighted.assign(sw2=weighted["sw"] + weighted["time"]), weights="sw2", **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"engine='cells' needs"):
        didx.stacked(weighted, weights="sw", engine="cells", **kw)
    # zero-weight units: dropped and counted, the same numbers as without them
    zero = weighted.assign(sw=np.where(weighted["unit"] % 10 == 0, 0.0, weighted["sw"]))
    res = didx.stacked(zero, weights="sw", **kw)
    want = didx.stacked(zero[zero["sw"] > 0], weights="sw", **kw)
    np.testing.assert_allclose(res.coef, want.coef, rtol=1e-12)
    np.testing.assert_allclose(res.vcov_matrix, want.vcov_matrix, rtol=1e-12)
    n_zero = int((zero["sw"] == 0).sum())
    assert [d.n_rows for d in res.sample.dropped if "zero weight" in d.reason] == [n_zero]
    assert res.inference.n_clusters == want.inference.n_clusters


# ---------------------------------------------------------------- the panel entry
def test_from_panel_equals_the_frame_entry(weighted: pd.DataFrame) -> None:
    from didx._panel import build_panel
    from didx.estimators.regression.stacked import from_panel

    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", weights="sw")
    p = build_panel(weighted, func="stacked", cluster="state", require_control="none", **kw)
    a = from_panel(p, window=(-2, 2), cluster="state", fe="subexperiment")
    b = didx.stacked(weighted, window=(-2, 2), cluster="state", fe="subexperiment", **kw)
    assert a.terms == b.terms and a.sample == b.sample and a.design == b.design
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.vcov_matrix, b.vcov_matrix)
    # zero weights in a panel built without dropping them are dropped (and counted) here
    zero = weighted.assign(sw=np.where(weighted["unit"] % 10 == 0, 0.0, weighted["sw"]))
    pz = build_panel(zero, func="stacked", require_control="none", **kw)
    c = from_panel(pz, window=(-2, 2))
    d = didx.stacked(zero, window=(-2, 2), **kw)
    np.testing.assert_allclose(c.coef, d.coef, rtol=1e-12)
    np.testing.assert_allclose(c.vcov_matrix, d.vcov_matrix, rtol=1e-12)
    assert c.sample.n_obs == d.sample.n_obs and c.sample.n_units == d.sample.n_units
    with pytest.raises(didx.InvalidOptionError, match=r"cluster column 'region' is not in the panel"):
        from_panel(p, window=(-2, 2), cluster="region")


# ---------------------------------------------------------------- size, clusters
def test_pickled_result_is_smaller_than_the_data() -> None:
    import pickle

    df = didx.datasets.load("mpdta")
    res = didx.stacked(df, y="lemp", unit="countyreal", time="year", cohort="first.treat", window=(-1, 1))
    assert len(pickle.dumps(res)) < len(pickle.dumps(df))
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_allclose(back.with_vcov("CR3", cluster="countyreal").vcov_matrix,
                               res.with_vcov("CR3", cluster="countyreal").vcov_matrix, rtol=1e-13)


@pytest.mark.parametrize("engine", ["cells", "regression"])
def test_a_single_cluster_is_a_data_error(panel: pd.DataFrame, engine: str) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", window=(-2, 2), engine=engine)
    df = panel.assign(one=1)
    with pytest.raises(didx.DataError, match=r"cluster variable 'one' has 1 distinct value.*Fix"):
        didx.stacked(df, cluster="one", **kw)
    with pytest.raises(didx.DataError, match=r"'one' has 1 distinct value"):
        didx.stacked(df, **kw).with_vcov(cluster="one", data=df)
