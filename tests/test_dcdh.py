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
REF_NORMALIZED = load_reference("dcdh.json")["favara_normalized"]
TOL_DCDH_POINT = 1e-10  # DID_l, placebos, average total effect vs R (observed agreement ~1e-15)
TOL_DCDH_SE = 1e-10  # their analytic standard errors vs R (observed ~1e-14)
TOL_P_ABS_TINY = 1e-15  # R computes 1 - pchisq(): absolute error ~1e-16 on a p-value near 1e-11
TOL_P_GINV = 1e-9  # R's matlib::Ginv vs an exact pseudo-inverse (p_joint_placebos differs by 5e-11 relative)
TOL_RECLUSTER = 1e-12  # with_vcov(cluster=c) vs a fit with cluster=c (the same code: observed 0)

FAVARA_ARGS = dict(y="Dl_vloans_b", unit="county", time="year", treat="inter_bra")


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
    assert pd.isna(t.loc["Av_tot_eff", "event_time"])  # a nullable integer column (issue 12)
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
    res = didx.dcdh(_panel(HAND_Y, HAND_D), y="y", unit="g", time="t", treat="d", effects=2, placebo=1)
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


def test_horizon_without_switchers_has_nan_estimate_and_se():
    # both switchers' outcomes are missing at their switch: Effect_1 has no switcher; its SE is NaN, not 0
    y = HAND_Y.copy()
    y[0, 2] = y[1, 3] = np.nan
    res = didx.dcdh(_panel(y, HAND_D), y="y", unit="g", time="t", treat="d", effects=2)
    t = res.tidy().set_index("term")
    assert np.isnan(t.loc["Effect_1", "estimate"]) and np.isnan(t.loc["Effect_1", "std_error"])
    assert t.loc["Effect_1", "n_switchers"] == 0
    np.testing.assert_allclose(t.loc["Effect_2", "estimate"], 5.0, rtol=TOL_IDENTITY)  # as in the full panel
    assert np.isfinite(t.loc["Effect_2", "std_error"]) and t.loc["Effect_2", "std_error"] > 0


def test_hand_computed_did_m_and_switch_off():
    # non-absorbing: g0 joins at t=2 and leaves at t=3; g1 stays untreated; g2 stays treated
    y = np.array([[0.0, 3.0, 1.0], [1.0, 2.0, 4.0], [2.0, 2.0, 5.0]])
    d = np.array([[0, 1, 0], [0, 0, 0], [1, 1, 1]])
    res = didx.dcdh(_panel(y, d), y="y", unit="g", time="t", treat="d", estimator="did_m")
    # t=2: joiner g0 dY=3 vs 00 stayer g1 dY=1 -> 2 ; no leaver.
    # t=3: leaver g0 dY=-2 vs 11 stayer g2 dY=3 -> DID_- = 3 - (-2) = 5.  DID_M = (2 + 5)/2
    np.testing.assert_allclose(res.estimate, 3.5, rtol=TOL_IDENTITY)
    assert res.tidy()["n_switchers"].iloc[0] == 2


def test_switchers_out_mirror_switchers_in():
    rng = np.random.default_rng(3)
    df = _staggered(rng, n_groups=40, n_periods=6)
    a = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=3, placebo=2)
    df2 = df.assign(d=1 - df["d"])
    b = didx.dcdh(df2, y="y", unit="g", time="t", treat="d", effects=3, placebo=2)
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
    kw = dict(y="y", unit="g", time="t", treat="d", effects=3, placebo=2)
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
    a = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=3, placebo=2)
    n = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=3, placebo=2, normalized=True)
    for ell in (1, 2, 3):
        np.testing.assert_allclose(n.params[f"Effect_{ell}"], a.params[f"Effect_{ell}"] / ell, rtol=TOL_IDENTITY)
        np.testing.assert_allclose(n.std_errors[ell - 1], a.std_errors[ell - 1] / ell, rtol=TOL_IDENTITY)
    # placebos too (DIDmultiplegtDYN 2.2.0): the cumulated change over F_g..F_g-1+l, whatever outcomes exist
    # before the switch (2.1.2 counted only periods with a placebo difference: cohort 4 has none for l = 2)
    for ell in (1, 2):
        i = n.terms.index(f"Placebo_{ell}")
        np.testing.assert_allclose(n.params[f"Placebo_{ell}"], a.params[f"Placebo_{ell}"] / ell, rtol=TOL_IDENTITY)
        np.testing.assert_allclose(n.std_errors[i], a.std_errors[i] / ell, rtol=TOL_IDENTITY)
        np.testing.assert_allclose(n.extras["normalization"][f"Placebo_{ell}"], ell, rtol=TOL_IDENTITY)


def test_favara_normalized_placebos_as_didmultiplegtdyn_2_2_0(favara, fav_res):
    res = didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3, normalized=True)
    digits = REF_NORMALIZED["_provenance"]["digits"]
    for term, r in REF_NORMALIZED["placebos_printed"].items():
        assert round(float(res.params[term]), digits) == r["Estimate"], term
    # the placebo normalisation is the cumulated treatment change, as the effects': Placebo_3 / 3 here
    norm = res.extras["normalization"]
    for term in ("Placebo_2", "Placebo_3"):
        i = res.terms.index(term)
        np.testing.assert_allclose(res.coef[i], fav_res.coef[i] / norm[term], rtol=TOL_IDENTITY)
        np.testing.assert_allclose(res.std_errors[i], fav_res.std_errors[i] / norm[term], rtol=TOL_IDENTITY)
    assert norm["Placebo_3"] == 3.0


def test_gap_before_switch_makes_the_group_a_control_until_the_gap():
    # g0 is not observed at t=3 and treated from t=4: its switch date is unknown, so (as the package) it is used
    # as a control only while observed before the gap -- the same as dropping its later rows and its treatment.
    rng = np.random.default_rng(8)
    df = _staggered(rng, n_groups=30, n_periods=6)
    g0 = df["g"] == 0
    df.loc[g0, "d"] = (df.loc[g0, "t"] >= 4).astype(int)
    gap = df[~(g0 & (df["t"] == 3))]
    same = df[~(g0 & (df["t"] >= 3))].assign(d=lambda x: np.where(x["g"] == 0, 0, x["d"]))
    kw = dict(y="y", unit="g", time="t", treat="d", effects=2, placebo=1)
    a, b = didx.dcdh(gap, **kw), didx.dcdh(same, **kw)
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(a.std_errors, b.std_errors, rtol=TOL_IDENTITY)


def test_cells_above_and_below_baseline_are_dropped_and_reported():
    y = np.arange(12, dtype=float).reshape(3, 4) ** 1.5
    d = np.array([[1, 2, 0, 0], [1, 1, 1, 2], [1, 1, 1, 1]])
    res = didx.dcdh(_panel(y, d), y="y", unit="g", time="t", treat="d")
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
    res = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=4)
    for ell in range(1, 5):
        np.testing.assert_allclose(res.params[f"Effect_{ell}"], _cs_not_yet_dynamic(df, ell - 1),
                                   rtol=TOL_IDENTITY)


def test_did_l_equals_didx_att_gt_not_yet_dynamic():
    from didx.estimators.cs.estimator import att_gt

    rng = np.random.default_rng(11)
    df = _staggered(rng, n_groups=60, n_periods=7)
    res = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=4)
    dyn = att_gt(df, y="y", unit="g", time="t", cohort="cohort", control_group="not_yet", est_method="reg").aggregate(
        "dynamic")
    cs = dyn.tidy().set_index("event_time")["estimate"]
    for ell in range(1, 5):
        np.testing.assert_allclose(res.params[f"Effect_{ell}"], cs.loc[float(ell - 1)], rtol=TOL_IDENTITY)


def test_did_m_equals_did_1_in_absorbing_staggered_design():
    rng = np.random.default_rng(12)
    df = _staggered(rng, n_groups=50, n_periods=6)
    a = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=1)
    m = didx.dcdh(df, y="y", unit="g", time="t", treat="d", estimator="did_m")
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


def test_with_vcov_reclusters_as_a_fit_with_that_cluster(favara, fav_res):
    st = didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3, cluster="state_n")
    for re in (fav_res.with_vcov(cluster="state_n", data=favara), fav_res.with_vcov(cluster=favara["state_n"])):
        np.testing.assert_allclose(re.vcov_matrix, st.vcov_matrix, rtol=TOL_RECLUSTER, atol=0)
        assert re.inference.cluster_names == ("state_n",) and re.inference.n_clusters == st.inference.n_clusters
        np.testing.assert_array_equal(re.coef, fav_res.coef)
    # back to the units from the state-clustered fit (both codes captured at fit time), and the fit's own default
    np.testing.assert_allclose(st.with_vcov(cluster="county").vcov_matrix, fav_res.vcov_matrix, rtol=TOL_RECLUSTER)
    np.testing.assert_allclose(st.with_vcov().vcov_matrix, st.vcov_matrix, rtol=TOL_RECLUSTER)
    np.testing.assert_allclose(fav_res.with_vcov(cluster="county").vcov_matrix, fav_res.vcov_matrix,
                               rtol=TOL_RECLUSTER)


def _uvar_by_loops(data, comp_inputs, l: int, cl: np.ndarray) -> np.ndarray:
    """U^var of one DID_l and direction written cell by cell from the package's rules: each cell's demeaning set
    (switchers' cohort, or the not-yet-switched controls of its baseline and period), set sizes counted in
    distinct clusters, the union of both when a set has one cluster, else no demeaning."""
    diff, nc, dist = comp_inputs
    n_g, n_t = diff.shape
    N, tv, F, Tg = data.N, data.tv, data.F, data.T_g
    n1 = np.nansum(dist * N)
    n1_t = np.nansum(dist * N, axis=0)
    ok = ~np.isnan(diff)
    ctrl = [(g, t) for g in range(n_g) for t in range(n_t) if ok[g, t] and nc[g, t] == 1 and n1_t[t] > 0]
    sw = [(g, t) for g in range(n_g) for t in range(n_t) if dist[g, t] == 1]

    def mean(cells):
        w = sum(N[g, t] for g, t in cells)
        return sum(N[g, t] * diff[g, t] for g, t in cells) / w if w else np.nan

    def n_clusters(cells):
        return len({cl[g] for g, t in cells if N[g, t] != 0})

    u = np.zeros(n_g)
    for g in range(n_g):
        for t in range(n_t):
            before, at_sw = tv[t] < F[g], tv[t] == F[g] - 1 + l
            if not (before or at_sw) or not ok[g, t]:
                continue
            same_dt = [(h, s) for h, s in ctrl + sw if s == t and data.d_code[h] == data.d_code[g]]
            if before and (g, t) in ctrl:
                own = [(h, s) for h, s in ctrl if s == t and data.d_code[h] == data.d_code[g]]
            elif at_sw and (g, t) in sw:
                own = [(h, s) for h, s in sw if data.cohort_code[h] == data.cohort_code[g]]
            else:
                own = None
            e, a = 0.0, 1.0
            if own is not None and n_clusters(own) >= 2:
                k = n_clusters(own)
                e, a = mean(own), np.sqrt(k / (k - 1))
            elif own is not None and n_clusters(own) == 1 and n_clusters(same_dt) >= 2:
                k = n_clusters(same_dt)
                e, a = mean(same_dt), np.sqrt(k / (k - 1))
            if not (l <= Tg[g] - 1 and l + 1 <= tv[t] <= Tg[g]):
                continue
            ctrl_w = sum(nc[h, t] * N[h, t] for h in range(n_g) if data.d_code[h] == data.d_code[g] and ok[h, t])
            sw_w = sum(dist[h, t] * N[h, t] for h in range(n_g) if data.d_code[h] == data.d_code[g] and ok[h, t])
            term = dist[g, t] - (sw_w / ctrl_w) * nc[g, t]
            u[g] += (data.n_groups_total / n1) * term * N[g, t] * a * (diff[g, t] - e)
    return u


@pytest.mark.parametrize("clusters", ["units", "pairs", "thirds"])
def test_variance_pieces_equal_the_cell_by_cell_rules(clusters):
    from didx.estimators.dcdh.core import Core
    from didx.estimators.dcdh.prep import prepare
    from didx.inference.dcdh_variance import DcdhScores

    rng = np.random.default_rng(22)
    G = 16
    df = _staggered(rng, n_groups=G, n_periods=6)
    start = (np.arange(G) % 4 == 0).astype(int)
    df["d"] = np.where(start[df["g"]] == 1, 1 - df["d"], df["d"])  # a second baseline switching out
    df["w"] = rng.uniform(0.5, 2.0, size=len(df))
    data = prepare(df, func="t", unit="g", y="y", time="t", treat="d", weights="w", cluster=None)
    cl = {"units": np.arange(data.Y.shape[0]), "pairs": np.arange(data.Y.shape[0]) // 2,
          "thirds": np.arange(data.Y.shape[0]) % 3}[clusters]
    core = Core(data)
    checked = 0
    for ell in (1, 2):
        for s in (1, 0):
            comp, nc, dist = core.effect(ell, s, normalized=False)
            if comp is None:
                continue
            diff = data.Y - np.where(np.arange(data.Y.shape[1])[None, :] >= ell,
                                     np.roll(data.Y, ell, axis=1), np.nan)
            got = DcdhScores.build([comp.U_var], data.Y.shape[0], 1.0).influence(cl)[:, 0]
            want = _uvar_by_loops(data, (diff, nc, dist), ell, cl)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
            checked += 1
    assert checked == 4


def test_distinct_cluster_counts_on_every_path():
    from didx.inference.dcdh_variance import _distinct

    rng = np.random.default_rng(3)
    sets = rng.integers(0, 40, 3000)
    for n_cl in (25, 200_000):  # a presence table, then a sort
        clusters = rng.integers(0, n_cl, 3000)
        brute = [len(set(clusters[sets == k].tolist())) for k in range(40)]
        np.testing.assert_array_equal(_distinct(sets, clusters, n_cl, 40, False), brute)
    one_each = rng.permutation(3000)  # every member its own cluster
    np.testing.assert_array_equal(_distinct(sets, one_each, 3000, 40, True), np.bincount(sets, minlength=40))


def test_with_vcov_refusals_come_from_the_contract(favara, fav_res):
    caps = fav_res.capabilities
    assert caps is not None and caps.max_clusters == 1 and caps.vcov == () and not caps.ssc
    with pytest.raises(InvalidOptionError, match=r"does not support vcov='hetero'.*only the clustering can change"):
        fav_res.with_vcov("hetero")
    with pytest.raises(InvalidOptionError, match=r"does not support cluster=\['state_n', 'year'\]"):
        fav_res.with_vcov(cluster=["state_n", "year"], data=favara)
    with pytest.raises(InvalidOptionError, match="does not support ssc="):
        fav_res.with_vcov(ssc=didx.SSC())
    with pytest.raises(InvalidOptionError, match=r"'state_n' was not captured at fit time.*Fix: pass data="):
        fav_res.with_vcov(cluster="state_n")
    with pytest.raises(DataError, match="'year' varies within a group"):
        fav_res.with_vcov(cluster="year", data=favara)


def test_with_vcov_does_not_re_estimate(favara, fav_res, monkeypatch):
    import didx.estimators.dcdh.core as core
    import didx.estimators.dcdh.estimator as estimator
    import didx.estimators.dcdh.prep as prep

    def refuse(*args, **kwargs):
        raise AssertionError("with_vcov re-ran the estimation")

    for mod, name in ((estimator, "prepare"), (estimator, "estimate_dyn"), (prep, "read_rows"),
                      (core.Core, "component")):
        monkeypatch.setattr(mod, name, refuse)
    with pytest.raises(AssertionError, match="re-ran"):  # the patches do bite a fit
        didx.dcdh(favara, **FAVARA_ARGS)
    re = fav_res.with_vcov(cluster=favara["state_n"])
    assert re.inference.cluster_names == ("state_n",)


def test_result_keeps_no_data_frame(favara, fav_res):
    import pickle

    assert len(pickle.dumps(fav_res)) < len(pickle.dumps(favara))
    src = fav_res._source
    assert not any(isinstance(v, pd.DataFrame) for v in vars(src).values())


def test_joint_tests_follow_the_current_covariance(favara, fav_res):
    # issue 10: after with_vcov, summary() printed the placebo joint p-value of the fit's covariance (0.8871)
    re = fav_res.with_vcov(cluster="state_n", data=favara)
    st = didx.dcdh(favara, **FAVARA_ARGS, effects=8, placebo=3, cluster="state_n")
    p_pl = re.pretrend_test().p_value
    np.testing.assert_allclose(p_pl, 0.5663, atol=5e-5)  # ~0.566 (issue 10)
    assert abs(p_pl - fav_res.pretrend_test().p_value) > 0.1
    s = str(re.summary())
    assert f"Joint test, all placebos = 0: p = {p_pl:.4g}" in s
    assert "0.8871" not in s
    for key, which in (("p_joint_effects", "effects"), ("p_joint_placebos", "placebos"),
                       ("p_equality_effects", "equality")):
        assert re.extras[key] == re.joint_test(which).p_value
        np.testing.assert_allclose(re.extras[key], st.extras[key], rtol=1e-9, atol=1e-300)
    assert re.extras["p_joint_placebos"] == p_pl


def test_joint_tests_are_not_stored_at_fit_time(fav_res):
    import dataclasses

    # the same estimates with another covariance: every joint p-value is recomputed from it
    V = np.diag(np.diag(fav_res.vcov_matrix)) * 4.0
    other = fav_res._with_covariance(V, fav_res.inference)
    for key, which in (("p_joint_effects", "effects"), ("p_joint_placebos", "placebos"),
                       ("p_equality_effects", "equality")):
        assert other.extras[key] != fav_res.extras[key]
        assert other.extras[key] == other.joint_test(which).p_value
    assert set(other.extras) == set(fav_res.extras)
    import pickle

    again = pickle.loads(pickle.dumps(other))
    assert again.extras["p_joint_placebos"] == other.extras["p_joint_placebos"]
    banded = fav_res.with_uniform_bands(n_draws=1000, seed=1)
    assert banded.extras["p_joint_placebos"] == fav_res.extras["p_joint_placebos"]
    assert dataclasses.replace(other).extras["p_joint_effects"] == other.extras["p_joint_effects"]


def test_event_study_contract_fields(favara, fav_res):
    from didx.comparison import PRE_PERIOD

    assert fav_res.pre_period_meaning == PRE_PERIOD["dcdh"]
    # the placebo-effect covariances are estimated (inner products of the same influence variables)
    assert fav_res.cross_covariance
    pl = [fav_res.terms.index(t) for t in fav_res.pre_terms]
    eff = [fav_res.terms.index(t) for t in fav_res.post_terms]
    assert np.abs(fav_res.vcov_matrix[np.ix_(pl, eff)]).max() > 0
    assert fav_res.n_pre == 3 and fav_res.n_post == 8
    agg = fav_res.aggregate("post")
    agg_st = agg.with_vcov(cluster=favara["state_n"])
    a = np.zeros(len(fav_res.terms))
    a[eff] = 1 / 8
    st = fav_res.with_vcov(cluster=favara["state_n"])
    np.testing.assert_allclose(agg_st.vcov_matrix[0, 0], a @ st.vcov_matrix @ a, rtol=1e-12)


def test_did_m_with_vcov_reclusters(favara):
    df = favara.assign(b=(favara.inter_bra > 0).astype(int))
    kw = dict(y="Dl_vloans_b", unit="county", time="year", treat="b", estimator="did_m")
    st = didx.dcdh(df, **kw, cluster="state_n")
    assert st.n_pre == 0 and "no pre-period coefficient" in st.pre_period_meaning
    re = didx.dcdh(df, **kw).with_vcov(cluster="state_n", data=df)
    np.testing.assert_allclose(re.vcov_matrix, st.vcov_matrix, rtol=TOL_RECLUSTER)
    assert re.inference.cluster_names == ("state_n",)


def test_date_time_column(favara, fav_res):
    dated = favara.assign(date=pd.to_datetime(favara["year"].astype(str) + "-07-01"))
    res = didx.dcdh(dated, y="Dl_vloans_b", unit="county", time="date", treat="inter_bra", effects=8, placebo=3)
    np.testing.assert_allclose(res.coef, fav_res.coef, rtol=TOL_IDENTITY)


def test_polars_input(favara, fav_res):
    pl = pytest.importorskip("polars")
    res = didx.dcdh(pl.from_pandas(favara), **FAVARA_ARGS, effects=8, placebo=3)
    np.testing.assert_allclose(res.coef, fav_res.coef, rtol=TOL_IDENTITY)


# ---------------------------------------------------------------- errors
def test_error_missing_column(favara):
    with pytest.raises(ColumnNotFoundError, match="inter_brah"):
        didx.dcdh(favara, y="Dl_vloans_b", unit="county", time="year", treat="inter_brah")


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
        didx.dcdh(favara.assign(yr=favara["year"].astype(str)), y="Dl_vloans_b", unit="county", time="yr",
                  treat="inter_bra")


def test_row_drops_count_units_removed_as_the_panel_layer(favara):
    df = favara.copy().astype({"inter_bra": float})
    first = df["county"].iloc[0]
    df.loc[df["county"] == first, "inter_bra"] = np.nan  # every row of one county
    df.loc[df.index[40], "inter_bra"] = np.nan  # one row of another
    df.loc[df.index[80], "county"] = np.nan
    res = didx.dcdh(df, **FAVARA_ARGS)
    drops = {d.reason.split(" (")[0]: (d.n_rows, d.n_units) for d in res.sample.dropped}
    n_first = int((favara["county"] == first).sum())
    assert drops["missing treatment"] == (n_first + 1, 1)
    assert drops["missing unit"] == (1, 0)
    assert "1 units removed entirely" in str(res.summary())


def test_error_cluster_given_several_columns(favara):
    # issue 10: a list of three columns raised a raw TypeError
    with pytest.raises(InvalidOptionError, match=r"cluster= must be one column name.*'state_n', 'year'.*Fix"):
        didx.dcdh(favara, **FAVARA_ARGS, cluster=["state_n", "year", "w1"])
    one = didx.dcdh(favara, **FAVARA_ARGS, effects=2, cluster=["state_n"])
    assert one.inference.cluster_names == ("state_n",)


def test_error_all_zero_weights(favara):
    # issue 10: ZeroDivisionError
    with pytest.raises(DataError, match=r"weights column 'w' is zero or missing in every row.*Fix"):
        didx.dcdh(favara.assign(w=0.0), **FAVARA_ARGS, weights="w")
    b = favara.assign(b=(favara.inter_bra > 0).astype(int), w=0.0)
    with pytest.raises(DataError, match=r"weights column 'w' is zero"):
        didx.dcdh(b, y="Dl_vloans_b", unit="county", time="year", treat="b", weights="w", estimator="did_m")
    ever = favara.groupby("county")["inter_bra"].transform("max") > 0
    with pytest.raises(DesignError, match=r"every switcher's cell has weight 0.*Fix"):
        didx.dcdh(favara.assign(w=np.where(ever, 0.0, 1.0)), **FAVARA_ARGS, weights="w")


def test_error_single_cluster(favara, fav_res):
    # issue 10: one cluster gave SE = |estimate| silently
    with pytest.raises(DataError, match=r"cluster variable 'one' has 1 distinct value.*Fix"):
        didx.dcdh(favara.assign(one=1), **FAVARA_ARGS, cluster="one")
    with pytest.raises(DataError, match=r"1 distinct value"):
        fav_res.with_vcov(cluster=pd.Series(np.ones(len(favara)), name="one"))


def test_infinite_outcome_is_a_missing_outcome_and_reported(favara):
    # issue 10: +-inf in the outcome gave inf/NaN estimates with no note
    kw = dict(**FAVARA_ARGS, effects=3, placebo=1)
    inf, nan = favara.copy(), favara.copy()
    inf.loc[[5, 40], "Dl_vloans_b"] = [np.inf, -np.inf]
    nan.loc[[5, 40], "Dl_vloans_b"] = np.nan
    a, b = didx.dcdh(inf, **kw), didx.dcdh(nan, **kw)
    assert np.all(np.isfinite(a.coef)) and np.all(np.isfinite(a.std_errors))
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.vcov_matrix, b.vcov_matrix)
    assert "2 cells with an infinite outcome (Dl_vloans_b) treated as missing" in str(a.summary())


# ---------------------------------------------------------------- controls (no R reference run with controls)
BIAS_TOL_CONTROLS = 0.15  # simulated DID_l with controls vs the true effect: ~3.5 Monte-Carlo SDs of Effect_3 at
# 5000 groups (SDs 0.03-0.04 for Effect_1..3, measured over 100 replications at 300 groups and rescaled)
BIAS_MIN_NO_CONTROLS = 0.5  # ...while without controls the confounding trend biases them by ~1.1 to 5.9


def _ctrl_panel(rng: np.random.Generator, G: int = 40, T: int = 6) -> pd.DataFrame:
    df = _staggered(rng, n_groups=G, n_periods=T)
    df["x"] = rng.integers(-5, 6, size=len(df)).astype(float)
    df["y"] = df["y"] + 0.7 * df["x"]
    return df


def test_controls_constant_or_linear_in_time_within_baseline_change_nothing():
    # a control constant over time has zero first differences; one equal to a group intercept plus a slope in
    # time common to the groups of a baseline has first differences constant within (baseline, period), so
    # its demeaned differences are 0: theta_d = 0, nothing is residualised and the variance term is 0.
    rng = np.random.default_rng(11)
    df = _staggered(rng, n_groups=30, n_periods=6)
    start = rng.integers(0, 2, 30)  # two baselines: groups starting treated switch out
    df["d"] = np.where(start[df["g"]] == 1, 1 - df["d"], df["d"])
    kw = dict(y="y", unit="g", time="t", treat="d", effects=3, placebo=2)
    base = didx.dcdh(df, **kw)
    slope = np.where(start[df["g"]] == 1, 3, -2)
    variants = {"const": 7.0 + 0 * df["t"], "group": (df["g"] * 5).astype(float),
                "trend": (df["g"] * 5 + slope * df["t"]).astype(float)}
    for name, col in variants.items():
        res = didx.dcdh(df.assign(xc=col), **kw, covariates="xc")
        np.testing.assert_array_equal(res.coef, base.coef, err_msg=name)
        np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=1e-13, err_msg=name)
        assert ("Covariates", "none") not in res.design
        # Den_d = 0 for all three: the package's "some controls are not taken into account" warning, as a note
        assert any("Some covariates are not taken into account" in n for n in res.notes)


def _theta_by_hand(df: pd.DataFrame) -> float:
    """Weighted-by-1 regression of dY on dX with period effects among not-yet-switched cells (t >= 2)."""
    w = df.pivot(index="g", columns="t", values="y").to_numpy()
    x = df.pivot(index="g", columns="t", values="x").to_numpy()
    d = df.pivot(index="g", columns="t", values="d").to_numpy()
    G, T = w.shape
    F = np.array([np.argmax(d[g] != d[g, 0]) if (d[g] != d[g, 0]).any() else T for g in range(G)])  # 0-based
    num = den = 0.0
    for t in range(1, T):
        ctrl = [g for g in range(G) if t < F[g]]
        dx = np.array([x[g, t] - x[g, t - 1] for g in ctrl])
        dy = np.array([w[g, t] - w[g, t - 1] for g in ctrl])
        num += np.sum((dx - dx.mean()) * dy)
        den += np.sum((dx - dx.mean()) ** 2)
    return num / den


def test_controls_hand_computed_small_panel():
    y = np.array([[1.0, 2.0, 6.0, 9.0], [0.0, 1.0, 3.0, 8.0], [2.0, 2.0, 4.0, 5.0], [1.0, 3.0, 4.0, 4.0],
                  [0.0, 2.0, 2.0, 3.0]])
    d = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    x = np.array([[0.0, 1.0, 3.0, 2.0], [1.0, 1.0, 0.0, 2.0], [2.0, 4.0, 5.0, 5.0], [0.0, 0.0, 2.0, 1.0],
                  [1.0, 3.0, 3.0, 6.0]])
    y = y + 2.0 * x  # theta is then 2 plus the (small) slope of the original outcome
    df = _panel(y, d).assign(x=x.ravel())
    th = _theta_by_hand(df)

    def r(g: int, t1: int, t0: int) -> float:  # residualised long difference, 1-based periods
        return (y[g, t1 - 1] - y[g, t0 - 1]) - th * (x[g, t1 - 1] - x[g, t0 - 1])

    res = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=2, placebo=1, covariates=["x"])
    b = res.params
    e1 = ((r(0, 3, 2) - np.mean([r(c, 3, 2) for c in (1, 2, 3, 4)]))
          + (r(1, 4, 3) - np.mean([r(c, 4, 3) for c in (2, 3, 4)]))) / 2
    e2 = r(0, 4, 2) - np.mean([r(c, 4, 2) for c in (2, 3, 4)])
    p1 = ((r(0, 1, 2) - np.mean([r(c, 1, 2) for c in (1, 2, 3, 4)]))
          + (r(1, 2, 3) - np.mean([r(c, 2, 3) for c in (2, 3, 4)]))) / 2
    np.testing.assert_allclose([b["Effect_1"], b["Effect_2"], b["Placebo_1"]], [e1, e2, p1], rtol=TOL_IDENTITY)
    assert abs(th) > 0.1 and not np.isclose(b["Effect_1"], didx.dcdh(
        df, y="y", unit="g", time="t", treat="d", effects=2).params["Effect_1"])


def test_controls_point_estimates_equal_outcome_residualised_in_levels():
    # long differences of y - theta_{D_g1} x are the residualised long differences: same point estimates (only
    # the standard errors differ, by the variance term for the estimation of theta)
    rng = np.random.default_rng(12)
    df = _ctrl_panel(rng, G=60, T=7)
    th = _theta_by_hand(df)
    kw = dict(unit="g", time="t", treat="d", effects=3, placebo=2)
    a = didx.dcdh(df, y="y", **kw, covariates=["x"])
    b = didx.dcdh(df.assign(ys=df["y"] - th * df["x"]), y="ys", **kw)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10, atol=1e-12)
    assert not np.allclose(a.std_errors, b.std_errors, rtol=1e-6)
    # the controls' term is one more (group-level) sum of squares: the SEs stay finite and positive
    assert np.all(np.isfinite(a.std_errors)) and np.all(a.std_errors > 0)


def test_controls_remove_confounding_trend_bias():
    # the time-varying covariate trends up for groups that switch early; y loads on it. Without controls the
    # switchers' outcome trends differ from the not-yet-switched; with controls theta removes it.
    rng = np.random.default_rng(2024)
    G, T = 5000, 8
    F = rng.choice([4, 5, 6, 9], size=G)  # 9 = never
    g = np.repeat(np.arange(G), T)
    t = np.tile(np.arange(1, T + 1), G)
    slope = np.where(F[g] < 9, 1.0, 0.0) + 0.3 * rng.normal(size=G)[g]
    x = slope * t + rng.normal(size=g.size)
    d = (t >= F[g]).astype(int)
    effect = 1.0
    y = rng.normal(size=G)[g] + 0.2 * t + 2.0 * x + effect * d + rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "t": t, "y": y, "d": d, "x": x})
    kw = dict(y="y", unit="g", time="t", treat="d", effects=3, placebo=2)
    naive = didx.dcdh(df, **kw)
    adj = didx.dcdh(df, **kw, covariates=["x"])
    for ell in (1, 2, 3):
        assert abs(naive.params[f"Effect_{ell}"] - effect) > BIAS_MIN_NO_CONTROLS
        assert abs(adj.params[f"Effect_{ell}"] - effect) < BIAS_TOL_CONTROLS
    for pl in (1, 2):
        assert abs(adj.params[f"Placebo_{pl}"]) < BIAS_TOL_CONTROLS
    assert "Covariates: x (first differences" in str(adj.summary())


def test_controls_with_cluster_and_with_vcov():
    rng = np.random.default_rng(13)
    df = _ctrl_panel(rng, G=60, T=6).assign(region=lambda z: z["g"] % 12)
    kw = dict(y="y", unit="g", time="t", treat="d", effects=2, covariates=["x"])
    a = didx.dcdh(df, **kw, cluster="region")
    b = didx.dcdh(df, **kw).with_vcov(cluster="region", data=df)
    np.testing.assert_allclose(b.vcov_matrix, a.vcov_matrix, rtol=TOL_RECLUSTER)
    np.testing.assert_array_equal(a.coef, b.coef)


def test_controls_missing_values_dropped_and_reported():
    rng = np.random.default_rng(14)
    df = _ctrl_panel(rng, G=40, T=6)
    df.loc[[3, 17, 50], "x"] = np.nan
    res = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=2, covariates=["x"])
    drops = {d.reason: d.n_rows for d in res.sample.dropped}
    assert drops["missing covariate (x)"] == 3
    assert "missing covariate (x)" in str(res.summary())
    same = didx.dcdh(df.drop(index=[3, 17, 50]), y="y", unit="g", time="t", treat="d", effects=2,
                     covariates=["x"])
    np.testing.assert_array_equal(res.coef, same.coef)


def test_error_control_not_numeric(favara):
    with pytest.raises(DataError, match=r"covariate column 'cname' must be numeric.*Fix"):
        didx.dcdh(favara.assign(cname="a"), **FAVARA_ARGS, covariates=["Dl_hpi", "cname"])


def test_error_control_named_twice(favara):
    with pytest.raises(InvalidOptionError, match=r"'Dl_hpi' is named more than once.*Fix: list each"):
        didx.dcdh(favara, **FAVARA_ARGS, covariates=["Dl_hpi", "Dl_hpi"])


def test_error_control_is_another_role(favara):
    with pytest.raises(InvalidOptionError, match=r"'inter_bra' is both a covariate.*Fix"):
        didx.dcdh(favara, **FAVARA_ARGS, covariates=["inter_bra"])


def test_error_control_missing_column(favara):
    with pytest.raises(ColumnNotFoundError, match="Dl_hpii"):
        didx.dcdh(favara, **FAVARA_ARGS, covariates=["Dl_hpii"])


def test_error_controls_with_did_m(favara):
    with pytest.raises(InvalidOptionError, match=r"covariates= applies to estimator='did_l' only.*Dl_hpi"):
        didx.dcdh(favara.assign(b=(favara.inter_bra > 0).astype(int)), y="Dl_vloans_b", unit="county",
                  time="year", treat="b", estimator="did_m", covariates=["Dl_hpi"])


def _correction_by_loops(d, G: float, n1: float, l: int, dist, nc, ratio, dXl) -> np.ndarray:
    """The package's part2 term written cell by cell (its row-level formulas), for the vectorised version."""
    n_g, n_t, K = d.X.shape
    tv = d.tv
    levels = sorted(set(d.d_code.tolist()))
    fd = lambda a, g, t: a[g, t] - a[g, t - 1] if t >= 1 else np.nan  # noqa: E731
    ctrl = {(g, t) for g in range(n_g) for t in range(n_t)
            if tv[t] < d.F[g] and not np.isnan(fd(d.Y, g, t)) and not np.isnan(fd(d.X[:, :, 0], g, t))}
    theta, inv, bracket = {}, {}, np.zeros((n_g, K))
    rmax = d.F.max()
    rsum = sum(d.N[g, t] for g in range(n_g) for t in range(n_t)
               if 2 <= tv[t] <= rmax - 1 and tv[t] < d.F[g] and not np.isnan(fd(d.Y, g, t)))
    for lev in levels:
        cells = [(g, t) for (g, t) in ctrl if d.d_code[g] == lev]
        xbar = {}
        for t in range(n_t):
            ct = [(g, tt) for (g, tt) in cells if tt == t]
            if ct:
                w = np.array([d.N[g, t] for g, _ in ct])
                xbar[t] = sum(w[i] * np.array([fd(d.X[:, :, k], g, t) for k in range(K)])
                              for i, (g, _) in enumerate(ct)) / w.sum()
        xdd = {(g, t): np.array([fd(d.X[:, :, k], g, t) for k in range(K)]) - xbar[t] for (g, t) in cells}
        den = sum(d.N[g, t] * np.outer(xdd[g, t], xdd[g, t]) for (g, t) in cells)
        xy = sum(d.N[g, t] * xdd[g, t] * fd(d.Y, g, t) for (g, t) in cells)
        pinv = np.linalg.pinv(den)
        theta[lev] = pinv @ xy
        inv[lev] = pinv * rsum * G
        lam = {}
        for t in xbar:
            ct = [(g, tt) for (g, tt) in cells if tt == t]
            w = np.array([d.N[g, t] for g, _ in ct])
            r = np.array([fd(d.Y, g, t) - theta[lev] @ np.array([fd(d.X[:, :, k], g, t) for k in range(K)])
                          for g, _ in ct])
            lam[t] = np.sum(w * r) / w.sum()
        T_d = max(d.F[g] for g in range(n_g) if d.d_code[g] == lev) - 1
        N_c = sum(d.N[g, t] for g in range(n_g) for t in range(n_t) if d.d_code[g] == lev
                  and 2 <= tv[t] <= T_d and tv[t] < d.F[g] and not np.isnan(fd(d.Y, g, t)))
        for g in range(n_g):
            if d.d_code[g] != lev or d.F[g] < 3:
                continue
            s = np.zeros(K)
            for t in range(n_t):
                if (g, t) not in ctrl or not (2 <= tv[t] <= d.F[g] - 1):
                    continue
                E = sum(1 for h in range(n_g) if d.d_code[h] == lev and tv[t] < d.F[h]
                        and not np.isnan(fd(d.Y, h, t)))
                fit = theta[lev] @ np.array([fd(d.X[:, :, k], g, t) for k in range(K)]) + lam[t]
                ehat, dof = (fit, np.sqrt(E / (E - 1))) if E >= 2 else (0.0, 1.0)
                s += d.N[g, t] * xdd[g, t] * dof * (fd(d.Y, g, t) - ehat)
            bracket[g] = inv[lev] @ (s / N_c)
    M = {lev: np.zeros(K) for lev in levels}
    for g in range(n_g):
        if not l <= d.T_g[g] - 2:
            continue
        for t in range(n_t):
            if not (l + 1 <= tv[t] <= d.T_g[g]) or np.isnan(dist[g, t]):
                continue
            c = (G / n1) * (dist[g, t] - ratio[g, t] * nc[g, t]) * d.N[g, t]
            if c != 0:
                M[d.d_code[g]] += c * dXl[g, t] / G
    const = sum(M[lev] @ theta[lev] for lev in levels)
    return np.array([M[d.d_code[g]] @ bracket[g] - const for g in range(n_g)])


def test_controls_variance_term_equals_cell_by_cell_formula():
    from didx.estimators.dcdh.controls import fit_controls, shift3, variance_correction
    from didx.estimators.dcdh.core import Core
    from didx.estimators.dcdh.prep import prepare

    rng = np.random.default_rng(21)
    G, T = 14, 6
    df = _staggered(rng, n_groups=G, n_periods=T)
    start = (np.arange(G) % 3 == 0).astype(int)
    df["d"] = np.where(start[df["g"]] == 1, 1 - df["d"], df["d"])  # a second baseline switching out
    df["x1"] = rng.normal(size=len(df))
    df["x2"] = rng.normal(size=len(df)) + 0.5 * df["t"] * (df["g"] % 2)
    df["w"] = rng.uniform(0.5, 2.0, size=len(df))
    data = prepare(df, func="t", y="y", unit="g", time="t", treat="d", weights="w", cluster=None,
                   covariates=["x1", "x2"])
    assert data.n_d == 2
    fit = fit_controls(data, float(data.n_groups_total), ["x1", "x2"], "t")
    core = Core(data, fit)
    for ell in (1, 2):
        for s in (1, 0):
            _, nc, dist = core.effect_inputs(ell, s)
            n1 = float(np.nansum(dist * data.N))
            if n1 == 0:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = core.by_dt(dist * data.N) / core.by_dt(nc * data.N)
            dXl = data.X - shift3(data.X, ell)
            vec = variance_correction(fit, data, core.G, n1, ell, dist, nc, ratio, dXl)
            loop = _correction_by_loops(data, core.G, n1, ell, dist, nc, ratio, dXl)
            np.testing.assert_allclose(vec, loop, rtol=1e-10, atol=1e-12)
            assert np.abs(loop).max() > 1e-3 and np.ptp(loop) > 1e-3  # not a trivial (zero or constant) term


def test_error_controls_baseline_without_control_cells():
    # baseline-1 groups (switching out at t=3 and t=4) have no observed outcome before t=4: no first difference
    # among their not-yet-switched cells, so theta for that baseline cannot be estimated
    rng = np.random.default_rng(0)
    rows = []
    for g in range(12):
        F = [3, 4, 0][g % 3]
        rows += [(g, t, rng.normal(), int(0 < F <= t), rng.normal()) for t in range(1, 6)]
    for g, F in ((20, 3), (21, 4)):
        rows += [(g, t, np.nan if t <= 3 else rng.normal(), int(t < F), rng.normal()) for t in range(1, 6)]
    df = pd.DataFrame(rows, columns=["g", "t", "y", "d", "x"])
    with pytest.raises(DesignError, match=r"baseline treatment 1 there is no not-yet-switched.*Fix: drop covariates="):
        didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=2, covariates=["x"])


# ---------------------------------------------------------------- trends_lin (no R reference run with trends_lin)
BIAS_TOL_TRENDS = 0.15  # simulated Effect_l with trends_lin vs the truth: 2.5 (Effect_3) to 5 (Effect_1) SEs
BIAS_MIN_NO_TRENDS = 0.5  # ...while without trends_lin the trends bias them by 0.9 to 4.5


def test_trends_lin_invariant_to_group_linear_trends():
    rng = np.random.default_rng(31)
    df = _ctrl_panel(rng, G=60, T=8)
    kw = dict(y="y", unit="g", time="t", treat="d", effects=3, placebo=2, trends_lin=True)
    base = didx.dcdh(df, **kw)
    a, b = rng.normal(size=60), rng.normal(size=60)
    moved = df.assign(y=df["y"] + a[df["g"]] + b[df["g"]] * df["t"])
    res = didx.dcdh(moved, **kw)
    np.testing.assert_allclose(res.coef, base.coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=1e-10)
    plain = didx.dcdh(moved, **{**kw, "trends_lin": False})
    assert np.max(np.abs(plain.coef[:3] - base.coef[:3])) > 0.1  # without trends_lin the trends matter
    # with controls too (the controls are first-differenced as well)
    c0 = didx.dcdh(df, **kw, covariates=["x"])
    c1 = didx.dcdh(moved, **kw, covariates=["x"])
    np.testing.assert_allclose(c1.coef, c0.coef, rtol=1e-10, atol=1e-12)
    assert base.headline == "Effect_1" and "Av_tot_eff" not in base.terms
    assert "Group-specific linear trends: yes" in str(base.summary())


def test_trends_lin_hand_computed_same_switchers():
    y = np.array([[1.0, 2.0, 6.0, 9.0, 9.5], [0.0, 1.0, 3.0, 8.0, 12.0], [2.0, 2.0, 4.0, 5.0, 5.0],
                  [1.0, 3.0, 4.0, 4.0, 6.0], [0.0, 2.0, 2.0, 3.0, 2.0]])
    d = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    dy = np.full_like(y, np.nan)
    dy[:, 1:] = np.diff(y, axis=1)

    def ld(g: int, t1: int, t0: int) -> float:  # long difference of the first-differenced outcome (1-based t)
        return dy[g, t1 - 1] - dy[g, t0 - 1]

    def did(cells: list[tuple[int, int, int, tuple[int, ...]]]) -> float:
        return float(np.mean([ld(g, t1, t0) - np.mean([ld(c, t1, t0) for c in ctrl]) for g, t1, t0, ctrl in cells]))

    res = didx.dcdh(_panel(y, d), y="y", unit="g", time="t", treat="d", effects=3, placebo=1, trends_lin=True)
    b = res.params
    d1 = did([(0, 3, 2, (1, 2, 3, 4)), (1, 4, 3, (2, 3, 4))])
    d2 = did([(0, 4, 2, (2, 3, 4)), (1, 5, 3, (2, 3, 4))])
    # Effect_3: only g0 is observed 3 periods after its switch -> the same-switcher sums use g0 alone
    e3 = (did([(0, 3, 2, (1, 2, 3, 4))]) + did([(0, 4, 2, (2, 3, 4))]) + did([(0, 5, 2, (2, 3, 4))]))
    # Placebo_1: g0's placebo would need dY at period 1 (lost to the first difference): g1 only
    p1 = did([(1, 2, 3, (2, 3, 4))])
    np.testing.assert_allclose([b["Effect_1"], b["Effect_2"], b["Effect_3"], b["Placebo_1"]],
                               [d1, d1 + d2, e3, p1], rtol=TOL_IDENTITY)
    t = res.tidy().set_index("term")
    assert list(t["n_switchers"]) == [2, 2, 1, 1]


def test_trends_lin_drops_groups_switching_at_period_2():
    rng = np.random.default_rng(32)
    df = _staggered(rng, n_groups=30, n_periods=6)
    df.loc[df["g"] < 3, "d"] = (df.loc[df["g"] < 3, "t"] >= 2).astype(int)
    res = didx.dcdh(df, y="y", unit="g", time="t", treat="d", effects=2, trends_lin=True)
    drops = {d.reason: (d.n_rows, d.n_units) for d in res.sample.dropped}
    assert drops["groups whose treatment first changes at the second period (trends_lin)"] == (18, 3)
    assert res.extras["n_groups"] == 30  # G still counts them, as the package's G_XX
    kept = didx.dcdh(df[df["g"] >= 3], y="y", unit="g", time="t", treat="d", effects=2, trends_lin=True)
    # DID_l and its variance do not depend on G (U = G/N_l ..., summed and divided by G): same as without them
    np.testing.assert_allclose(res.coef, kept.coef, rtol=1e-12)
    np.testing.assert_allclose(res.std_errors, kept.std_errors, rtol=1e-12)


def test_trends_lin_removes_adoption_correlated_trend_bias():
    rng = np.random.default_rng(33)
    G, T = 4000, 8
    F = rng.choice([4, 5, 6, 9], size=G)
    g = np.repeat(np.arange(G), T)
    t = np.tile(np.arange(1, T + 1), G)
    slope = np.where(F < 9, 0.5, -1.0)[g]  # switchers trend up, never-switchers down
    d = (t >= F[g]).astype(int)
    y = rng.normal(size=G)[g] + slope * t + 1.0 * d + 0.5 * rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "t": t, "y": y, "d": d})
    kw = dict(y="y", unit="g", time="t", treat="d", effects=3, placebo=1)
    plain = didx.dcdh(df, **kw)
    tl = didx.dcdh(df, **kw, trends_lin=True)
    for ell in (1, 2, 3):
        assert abs(plain.params[f"Effect_{ell}"] - 1.0) > BIAS_MIN_NO_TRENDS
        assert abs(tl.params[f"Effect_{ell}"] - 1.0) < BIAS_TOL_TRENDS
    assert abs(tl.params["Placebo_1"]) < BIAS_TOL_TRENDS


def test_error_trends_lin_bad_value_or_did_m(favara):
    with pytest.raises(InvalidOptionError, match=r"trends_lin must be True or False.*'yes'"):
        didx.dcdh(favara, **FAVARA_ARGS, trends_lin="yes")
    with pytest.raises(InvalidOptionError, match=r"normalized must be True or False.*'no'"):
        didx.dcdh(favara, **FAVARA_ARGS, normalized="no")  # a non-empty string was truthy: normalised
    with pytest.raises(InvalidOptionError, match="trends_lin=True applies to estimator='did_l' only"):
        didx.dcdh(favara.assign(b=(favara.inter_bra > 0).astype(int)), y="Dl_vloans_b", unit="county",
                  time="year", treat="b", estimator="did_m", trends_lin=True)


def test_with_vcov_refuses_data_changed_after_the_fit(favara):
    # the cluster column is read from data= after checking the frame is the fitted one: if it was changed in
    # place since the fit, its rows cannot be matched to the stored estimation rows
    df = favara.copy()
    res = didx.dcdh(df, **FAVARA_ARGS, effects=2, placebo=1)
    df.loc[df.index[:50], "Dl_vloans_b"] += 1.0
    with pytest.raises(DataError, match="not the frame that was fitted"):
        res.with_vcov(cluster="state_n", data=df)
    with pytest.raises(DataError, match="have 1156 rows"):
        res.with_vcov(cluster="state_n", data=favara.iloc[1:])


def test_extras_tables_are_read_only(fav_res):
    for key in ("n_weighted", "n_switchers_weighted", "normalization"):
        with pytest.raises(TypeError):
            fav_res.extras[key]["Effect_1"] = 0.0


@pytest.mark.parametrize(("kw", "name"), [({"effects": 3}, "effects=3"), ({"placebo": 1, "effects": 1}, "placebo=1"),
                                         ({"normalized": True}, "normalized=True")])
def test_error_did_l_options_with_did_m(favara, kw, name):
    # DID_M is the instantaneous effect only: these options were silently ignored
    with pytest.raises(InvalidOptionError, match=rf"{name}.*estimator='did_l' only.*Fix"):
        didx.dcdh(favara.assign(b=(favara.inter_bra > 0).astype(int)), y="Dl_vloans_b", unit="county",
                  time="year", treat="b", estimator="did_m", **kw)


@pytest.mark.parametrize("func", ["dcdh", "twfe_weights"])
def test_error_a_list_for_a_one_column_role(favara, func):
    """y=['...'] is an error naming the argument (checked before any argument is used as a key)."""
    for role in ("y", "unit", "time", "treat"):
        kw = {**FAVARA_ARGS, role: [FAVARA_ARGS[role]]}
        with pytest.raises(InvalidOptionError, match=rf"The '{role}' parameter of {func} must be a column name.*"
                                                     r"\(a list\)"):
            getattr(didx, func)(favara, **kw)
