"""de Chaisemartin-D'Haultfoeuille DID_l / DID_M: DIDmultiplegtDYN 2.2.0 reference on favara_imbs, hand-computed
panels, the identity with not-yet-treated Callaway-Sant'Anna, invariances and input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, load_reference
from didx._errors import ColumnNotFoundError, DataError, DesignError, InvalidOptionError
from didx.results.event import EventStudyResult

REF = load_reference("dcdh.json")["favara_default"]
TOL_DCDH_POINT = 1e-10  # DID_l, placebos, average total effect vs R (observed agreement ~1e-15)
TOL_DCDH_SE = 1e-10  # their analytic standard errors vs R (observed ~1e-14)
TOL_P_ABS_TINY = 1e-15  # R computes 1 - pchisq(): absolute error ~1e-16 on a p-value near 1e-11
TOL_P_GINV = 1e-9  # R's matlib::Ginv vs an exact pseudo-inverse (p_joint_placebos differs by 5e-11 relative)

FAVARA_ARGS = dict(y="Dl_vloans_b", group="county", time="year", treat="inter_bra")


@pytest.fixture(scope="module")
def favara() -> pd.DataFrame:
    return didx.datasets.load("favara_imbs")


@pytest.fixture(scope="module")
def fav_res(favara: pd.DataFrame) -> didx.EventStudyResult:
    return didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3)


# ---------------------------------------------------------------- reference
def _ref_rows() -> dict[str, dict[str, float]]:
    return {**REF["effects"], **REF["placebos"], "Av_tot_eff": REF["average_total_effect"]}


def test_favara_estimates_and_ses(fav_res):
    t = fav_res.tidy().set_index("term")
    rows = _ref_rows()
    assert list(t.index) == [f"Effect_{i}" for i in range(1, 9)] + ["Av_tot_eff"] + [
        f"Placebo_{i}" for i in range(1, 4)]
    for term, r in rows.items():
        np.testing.assert_allclose(t.loc[term, "estimate"], r["Estimate"], rtol=TOL_DCDH_POINT, err_msg=term)
        np.testing.assert_allclose(t.loc[term, "std_error"], r["SE"], rtol=TOL_DCDH_SE, err_msg=term)


def test_favara_counts_exact(fav_res):
    t = fav_res.tidy().set_index("term")
    for term, r in _ref_rows().items():
        assert t.loc[term, "n"] == r["N"], term
        assert t.loc[term, "n_switchers"] == r["Switchers"], term
        assert fav_res.extras["n_weighted"][term] == r["N"]
        assert fav_res.extras["n_switchers_weighted"][term] == r["Switchers"]


def test_favara_headline_and_accumulated_periods(fav_res):
    assert fav_res.headline == "Av_tot_eff"
    np.testing.assert_allclose(fav_res.estimate, 0.0687852609929778, rtol=TOL_DCDH_POINT)
    np.testing.assert_allclose(fav_res.std_error, 0.100931789135529, rtol=TOL_DCDH_SE)
    np.testing.assert_allclose(fav_res.extras["avg_periods_accumulated"],
                               REF["avg_number_periods_effect_accumulated"], rtol=TOL_DCDH_POINT)


def test_favara_joint_tests(fav_res):
    assert abs(fav_res.extras["p_joint_effects"] - REF["p_joint_effects"]) < TOL_P_ABS_TINY
    np.testing.assert_allclose(fav_res.extras["p_joint_placebos"], REF["p_joint_placebos"], rtol=TOL_P_GINV)
    np.testing.assert_allclose(fav_res.extras["p_joint_placebos"], REF["p_joint_placebos_python_port"],
                               rtol=1e-12)
    # the shared pre-trend test and joint_test() use the same covariance
    np.testing.assert_allclose(fav_res.pretrend_test().p_value, fav_res.extras["p_joint_placebos"], rtol=1e-12)
    np.testing.assert_allclose(fav_res.joint_test("effects").p_value, fav_res.extras["p_joint_effects"],
                               rtol=1e-9)
    np.testing.assert_allclose(fav_res.joint_test("equality").p_value, fav_res.extras["p_equality_effects"],
                               rtol=1e-9)


def test_covariance_is_positive_semidefinite(fav_res):
    ev = np.linalg.eigvalsh(fav_res.vcov_matrix)
    assert ev.min() > -1e-14


def test_event_time_axis_and_result_type(fav_res):
    assert isinstance(fav_res, EventStudyResult)
    assert fav_res.reference_periods == (-1.0,)
    t = fav_res.tidy().set_index("term")
    for i in range(1, 9):
        assert t.loc[f"Effect_{i}", "event_time"] == i - 1
    for i in range(1, 4):
        assert t.loc[f"Placebo_{i}", "event_time"] == -(i + 1)
    assert np.isnan(t.loc["Av_tot_eff", "event_time"])
    table = fav_res.event_table()
    assert -1.0 in set(table["event_time"])


def test_summary_prints_design_and_tests(fav_res):
    s = str(fav_res.summary())
    for part in ("not switched yet", "Reference period", "clustered by county", "all placebos = 0",
                 "Effects / placebos: 8 / 3"):
        assert part in s


# ---------------------------------------------------------------- hand-computed panels
def _panel(y: np.ndarray, d: np.ndarray) -> pd.DataFrame:
    G, T = y.shape
    return pd.DataFrame({"g": np.repeat(np.arange(G), T), "t": np.tile(np.arange(1, T + 1), G),
                         "y": y.ravel(), "d": d.ravel()})


HAND_Y = np.array([
    [1.0, 2.0, 6.0, 9.0],  # g0: switches at t=3
    [0.0, 1.0, 3.0, 8.0],  # g1: switches at t=4
    [2.0, 2.0, 4.0, 5.0],  # g2: never
    [1.0, 3.0, 4.0, 4.0],  # g3: never
])
HAND_D = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_hand_computed_effects_and_placebo():
    res = didx.dcdh(_panel(HAND_Y, HAND_D), y="y", group="g", time="t", treat="d", effects=2, placebo=1)
    b = res.params
    # DID_1: g0 at t=3: (6-2) - mean over not-yet-switched g1,g2,g3 of (Y3-Y2) = 4 - (2+2+1)/3 = 7/3
    #        g1 at t=4: (8-3) - mean over g2,g3 of (Y4-Y3) = 5 - (1+0)/2 = 4.5;  DID_1 = (7/3 + 4.5)/2
    np.testing.assert_allclose(b["Effect_1"], (7 / 3 + 4.5) / 2, rtol=TOL_IDENTITY)
    # DID_2: only g0 (t=4 vs t=2): (9-2) - mean over g2,g3 of (Y4-Y2) = 7 - (3+1)/2 = 5
    np.testing.assert_allclose(b["Effect_2"], 5.0, rtol=TOL_IDENTITY)
    # Placebo_1: g0: (Y1-Y2) = -1 vs g1,g2,g3: (-1+0-2)/3 = -1  -> 0 ;
    #            g1: (Y2-Y3) = -2 vs g2,g3: (-2-1)/2 = -1.5 -> -0.5;  mean = -0.25
    np.testing.assert_allclose(b["Placebo_1"], -0.25, rtol=TOL_IDENTITY)
    # average total effect: w_l = N_l / (N_1 + N_2) = 2/3, 1/3; treatment change 1 -> weighted mean of DID_l
    np.testing.assert_allclose(b["Av_tot_eff"], 2 / 3 * b["Effect_1"] + 1 / 3 * b["Effect_2"], rtol=TOL_IDENTITY)
    t = res.tidy().set_index("term")
    assert t.loc["Effect_1", "n_switchers"] == 2 and t.loc["Effect_2", "n_switchers"] == 1
    # N of DID_1: cells (g0,3) + controls (g1,3),(g2,3),(g3,3) + (g1,4) + (g2,4),(g3,4) = 7
    assert t.loc["Effect_1", "n"] == 7


def test_hand_computed_did_m_and_switch_off():
    # non-absorbing: g0 joins at t=2 and leaves at t=3; g1 stays untreated; g2 stays treated
    y = np.array([[0.0, 3.0, 1.0], [1.0, 2.0, 4.0], [2.0, 2.0, 5.0]])
    d = np.array([[0, 1, 0], [0, 0, 0], [1, 1, 1]])
    res = didx.dcdh(_panel(y, d), y="y", group="g", time="t", treat="d", estimator="did_m")
    # t=2: joiner g0 dY=3 vs 00 stayer g1 dY=1 -> 2 ; no leaver.
    # t=3: leaver g0 dY=-2 vs 11 stayer g2 dY=3 -> DID_- = 3 - (-2) = 5.  DID_M = (2 + 5)/2
    np.testing.assert_allclose(res.estimate, 3.5, rtol=TOL_IDENTITY)
    assert res.tidy()["n_switchers"].iloc[0] == 2


def test_switchers_out_mirror_switchers_in():
    rng = np.random.default_rng(3)
    df = _staggered(rng, n_groups=40, n_periods=6)
    a = didx.dcdh(df, y="y", group="g", time="t", treat="d", effects=3, placebo=2)
    df2 = df.assign(d=1 - df["d"])
    b = didx.dcdh(df2, y="y", group="g", time="t", treat="d", effects=3, placebo=2)
    np.testing.assert_allclose(b.coef, -a.coef, rtol=TOL_IDENTITY, atol=1e-12)
    np.testing.assert_allclose(b.std_errors, a.std_errors, rtol=TOL_IDENTITY)


def test_both_directions_average_in_and_out_switchers():
    # baseline 0 groups switch in, baseline 1 groups switch out; DID_l(both) is the N-weighted mean of the two
    rng = np.random.default_rng(5)
    G, T = 80, 7
    g = np.repeat(np.arange(G), T)
    t = np.tile(np.arange(1, T + 1), G)
    start = rng.integers(0, 2, G)[g]
    c = rng.choice([3, 4, 5, 0], size=G)[g]
    d = np.where((c > 0) & (t >= c), 1 - start, start)
    y = rng.normal(size=G)[g] + 0.2 * t + 1.5 * d + rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "t": t, "y": y, "d": d})
    kw = dict(y="y", group="g", time="t", treat="d", effects=3, placebo=2)
    both, sw_in, sw_out = (didx.dcdh(df, **kw, switchers=s) for s in ("both", "in", "out"))
    for term in both.terms:
        n_in = sw_in.extras["n_switchers_weighted"][term]
        n_out = sw_out.extras["n_switchers_weighted"][term]
        assert n_in > 0 and n_out > 0
        assert both.extras["n_switchers_weighted"][term] == n_in + n_out
        mixed = (n_in * sw_in.params[term] + n_out * sw_out.params[term]) / (n_in + n_out)
        np.testing.assert_allclose(both.params[term], mixed, rtol=TOL_IDENTITY)
    assert "Switchers: in only" in str(sw_in.summary())


def test_normalized_binary_absorbing_divides_by_l():
    rng = np.random.default_rng(4)
    df = _staggered(rng, n_groups=30, n_periods=6)
    a = didx.dcdh(df, y="y", group="g", time="t", treat="d", effects=3)
    n = didx.dcdh(df, y="y", group="g", time="t", treat="d", effects=3, normalized=True)
    for ell in (1, 2, 3):
        np.testing.assert_allclose(n.params[f"Effect_{ell}"], a.params[f"Effect_{ell}"] / ell, rtol=TOL_IDENTITY)
        np.testing.assert_allclose(n.std_errors[ell - 1], a.std_errors[ell - 1] / ell, rtol=TOL_IDENTITY)


def test_gap_before_switch_makes_the_group_a_control_until_the_gap():
    # g0 is not observed at t=3 and treated from t=4: its switch date is unknown, so (as the package) it is used
    # as a control only while observed before the gap -- the same as dropping its later rows and its treatment.
    rng = np.random.default_rng(8)
    df = _staggered(rng, n_groups=30, n_periods=6)
    g0 = df["g"] == 0
    df.loc[g0, "d"] = (df.loc[g0, "t"] >= 4).astype(int)
    gap = df[~(g0 & (df["t"] == 3))]
    same = df[~(g0 & (df["t"] >= 3))].assign(d=lambda x: np.where(x["g"] == 0, 0, x["d"]))
    kw = dict(y="y", group="g", time="t", treat="d", effects=2, placebo=1)
    a, b = didx.dcdh(gap, **kw), didx.dcdh(same, **kw)
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(a.std_errors, b.std_errors, rtol=TOL_IDENTITY)


def test_cells_above_and_below_baseline_are_dropped_and_reported():
    y = np.arange(12, dtype=float).reshape(3, 4) ** 1.5
    d = np.array([[1, 2, 0, 0], [1, 1, 1, 2], [1, 1, 1, 1]])
    res = didx.dcdh(_panel(y, d), y="y", group="g", time="t", treat="d")
    reasons = [x.reason for x in res.sample.dropped]
    assert any("both above and below" in r for r in reasons)
    assert next(x for x in res.sample.dropped if "both above" in x.reason).n_rows == 2


# ---------------------------------------------------------------- identities with Callaway-Sant'Anna
def _staggered(rng: np.random.Generator, n_groups: int, n_periods: int) -> pd.DataFrame:
    cohorts = rng.choice([3, 4, 5, 0], size=n_groups)  # 0 = never treated
    g = np.repeat(np.arange(n_groups), n_periods)
    t = np.tile(np.arange(1, n_periods + 1), n_groups)
    c = cohorts[g]
    d = ((c > 0) & (t >= c)).astype(int)
    y = rng.normal(size=n_groups)[g] + 0.3 * t + d * (1.0 + 0.5 * (t - c)) + rng.normal(size=g.size)
    return pd.DataFrame({"g": g, "t": t, "y": y, "d": d, "cohort": c})


def _cs_not_yet_dynamic(df: pd.DataFrame, e: int) -> float:
    """CS event-time effect: ATT(g, g+e) with not-yet-treated controls and base period g-1, cohort-size weights."""
    wide = df.pivot(index="g", columns="t", values="y")
    coh = df.groupby("g")["cohort"].first()
    never_or_late = coh.replace(0, np.inf)
    T = int(df["t"].max())
    atts, sizes = [], []
    for gc in sorted(c for c in coh.unique() if c > 0):
        if gc + e > T:
            continue
        treated = coh.index[coh == gc]
        ctrl = never_or_late.index[never_or_late > gc + e]
        if len(ctrl) == 0:
            continue
        dy_t = (wide.loc[treated, gc + e] - wide.loc[treated, gc - 1]).mean()
        dy_c = (wide.loc[ctrl, gc + e] - wide.loc[ctrl, gc - 1]).mean()
        atts.append(dy_t - dy_c)
        sizes.append(len(treated))
    return float(np.average(atts, weights=sizes))


def test_did_l_equals_not_yet_treated_callaway_santanna():
    rng = np.random.default_rng(11)
    df = _staggered(rng, n_groups=60, n_periods=7)
    res = didx.dcdh(df, y="y", group="g", time="t", treat="d", effects=4)
    for ell in range(1, 5):
        np.testing.assert_allclose(res.params[f"Effect_{ell}"], _cs_not_yet_dynamic(df, ell - 1),
                                   rtol=TOL_IDENTITY)


def test_did_l_equals_didx_att_gt_not_yet_dynamic():
    try:
        from didx.estimators.callaway_santanna import att_gt
    except ImportError:  # pragma: no cover - the CS module is written in parallel
        pytest.skip("didx.att_gt is not available")
    rng = np.random.default_rng(11)
    df = _staggered(rng, n_groups=60, n_periods=7)
    res = didx.dcdh(df, y="y", group="g", time="t", treat="d", effects=4)
    dyn = att_gt(df, y="y", unit="g", time="t", cohort="cohort", control="not_yet", method="reg").aggregate(
        "dynamic")
    cs = dyn.tidy().set_index("event_time")["estimate"]
    for ell in range(1, 5):
        np.testing.assert_allclose(res.params[f"Effect_{ell}"], cs.loc[float(ell - 1)], rtol=TOL_IDENTITY)


def test_did_m_equals_did_1_in_absorbing_staggered_design():
    rng = np.random.default_rng(12)
    df = _staggered(rng, n_groups=50, n_periods=6)
    a = didx.dcdh(df, y="y", group="g", time="t", treat="d", effects=1)
    m = didx.dcdh(df, y="y", group="g", time="t", treat="d", estimator="did_m")
    np.testing.assert_allclose(m.estimate, a.params["Effect_1"], rtol=TOL_IDENTITY)


# ---------------------------------------------------------------- invariances
def test_row_order_and_group_labels(favara, fav_res):
    shuffled = favara.sample(frac=1.0, random_state=5).reset_index(drop=True)
    shuffled["county"] = "c" + shuffled["county"].astype(str)
    res = didx.dcdh(shuffled, **FAVARA_ARGS, effects=8, placebo=3)
    np.testing.assert_allclose(res.coef, fav_res.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.vcov_matrix, fav_res.vcov_matrix, rtol=1e-9, atol=1e-16)


def test_constant_weights_change_nothing(favara, fav_res):
    res = didx.dcdh(favara.assign(w=2.0), **FAVARA_ARGS, effects=8, placebo=3, weights="w")
    np.testing.assert_allclose(res.coef, fav_res.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, fav_res.std_errors, rtol=TOL_IDENTITY)


def test_cluster_coarser_than_group(favara, fav_res):
    same = didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3, cluster="county")
    np.testing.assert_allclose(same.std_errors, fav_res.std_errors, rtol=TOL_IDENTITY)
    st = didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3, cluster="state_n")
    np.testing.assert_allclose(st.coef, fav_res.coef, rtol=TOL_IDENTITY)
    assert st.inference.n_clusters == (favara["state_n"].nunique(),)
    assert not np.allclose(st.std_errors, fav_res.std_errors)


def test_with_vcov_reclusters_without_refitting(favara, fav_res):
    st = didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3, cluster="state_n")
    re = fav_res.with_vcov(cluster="state_n")
    np.testing.assert_allclose(re.vcov_matrix, st.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-16)
    assert re.inference.cluster_names == ("state_n",)
    np.testing.assert_allclose(fav_res.with_vcov(cluster="county").vcov_matrix, fav_res.vcov_matrix,
                               rtol=TOL_IDENTITY)
    with pytest.raises(InvalidOptionError, match="only the clustering can change"):
        fav_res.with_vcov("hetero")
    with pytest.raises(DataError, match="'year' varies within a group"):
        fav_res.with_vcov(cluster="year")


def test_date_time_column(favara, fav_res):
    dated = favara.assign(date=pd.to_datetime(favara["year"].astype(str) + "-07-01"))
    res = didx.dcdh(dated, y="Dl_vloans_b", group="county", time="date", treat="inter_bra", effects=8, placebo=3)
    np.testing.assert_allclose(res.coef, fav_res.coef, rtol=TOL_IDENTITY)


def test_polars_input(favara, fav_res):
    pl = pytest.importorskip("polars")
    res = didx.dcdh(pl.from_pandas(favara), **FAVARA_ARGS, effects=8, placebo=3)
    np.testing.assert_allclose(res.coef, fav_res.coef, rtol=TOL_IDENTITY)


# ---------------------------------------------------------------- errors
def test_error_missing_column(favara):
    with pytest.raises(ColumnNotFoundError, match="inter_brah"):
        didx.dcdh(favara, y="Dl_vloans_b", group="county", time="year", treat="inter_brah")


def test_error_bad_estimator(favara):
    with pytest.raises(InvalidOptionError, match=r"'estimator'.*did_x"):
        didx.dcdh(favara, **FAVARA_ARGS, estimator="did_x")


def test_error_bad_switchers(favara):
    with pytest.raises(InvalidOptionError, match=r"'switchers'.*'inn'"):
        didx.dcdh(favara, **FAVARA_ARGS, switchers="inn")


def test_error_no_switchers_out(favara):
    # favara's branching index never decreases: there are no switchers out
    with pytest.raises(DesignError, match=r"no switchers \(out\).*'inter_bra'"):
        didx.dcdh(favara, **FAVARA_ARGS, switchers="out")


def test_error_placebo_exceeds_effects(favara):
    with pytest.raises(InvalidOptionError, match="placebo=3 exceeds effects=1"):
        didx.dcdh(favara, **FAVARA_ARGS, effects=1, placebo=3)


def test_error_effects_not_positive(favara):
    with pytest.raises(InvalidOptionError, match=r"'effects'.*integer >= 1"):
        didx.dcdh(favara, **FAVARA_ARGS, effects=0)


def test_error_controls_not_supported(favara):
    with pytest.raises(InvalidOptionError, match=r"controls= is not supported.*Dl_hpi"):
        didx.dcdh(favara, **FAVARA_ARGS, controls=["Dl_hpi"])


def test_error_duplicate_rows(favara):
    dup = pd.concat([favara, favara.iloc[:1]], ignore_index=True)
    with pytest.raises(DataError, match=r"duplicate.*county.*year"):
        didx.dcdh(dup, **FAVARA_ARGS)


def test_error_cluster_not_nested(favara):
    bad = favara.assign(cl=np.arange(len(favara)) % 3)
    with pytest.raises(DataError, match="'cl' varies within a group"):
        didx.dcdh(bad, **FAVARA_ARGS, cluster="cl")


def test_error_did_m_needs_binary_treatment(favara):
    with pytest.raises(DataError, match=r"'inter_bra' must be 0/1.*2\.0"):
        didx.dcdh(favara, **FAVARA_ARGS, estimator="did_m")


def test_error_negative_weights(favara):
    with pytest.raises(DataError, match="weights column 'w' has negative values"):
        didx.dcdh(favara.assign(w=-1.0), **FAVARA_ARGS, weights="w")


def test_error_non_numeric_time(favara):
    with pytest.raises(DataError, match="time column 'yr'"):
        didx.dcdh(favara.assign(yr=favara["year"].astype(str)), y="Dl_vloans_b", group="county", time="yr",
                  treat="inter_bra")
