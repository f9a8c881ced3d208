"""Callaway & Sant'Anna (2021) ``att_gt``: parity with R's did 2.5.1 on mpdta, identities, robustness, errors.

Reference numbers: tests/reference/callaway_santanna.json (R 4.2.2, did 2.5.1, DRDID 1.2.3; calls inside).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import load_reference
from didx import DesignError, InvalidOptionError
from didx.results.event import EventStudyResult

REF = load_reference("callaway_santanna.json")

TOL_ATT = 1e-8          # relative, ATT(g,t) and aggregated estimates vs did 2.5.1
TOL_SE = 1e-8           # relative, analytic SEs vs did 2.5.1
TOL_WPVAL = 5e-6 + 1e-9  # absolute: R rounds the pre-test p-value to 5 decimals
TOL_BOOT_SE = 0.10      # relative, bootstrap SEs vs R's seeded run (Monte Carlo error of both)
TOL_BOOT_CRIT = 0.15    # absolute, uniform critical value vs R's seeded run
TOL_IDENTITY = 1e-10

KEYS = sorted(REF["mpdta"])
CONTROL = {"nevertreated": "never", "notyettreated": "not_yet"}


@pytest.fixture(scope="module")
def mp() -> pd.DataFrame:
    return didx.datasets.load("mpdta")


def fit(df: pd.DataFrame, **kw: object) -> didx.estimators.cs.estimator.ATTgtResult:  # type: ignore[name-defined]
    args: dict[str, object] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")
    args.update(kw)
    return didx.att_gt(df, **args)  # type: ignore[arg-type]


def fit_key(df: pd.DataFrame, key: str):  # type: ignore[no-untyped-def]
    cov, method, control, base = key.split("|")
    return fit(df, control_group=CONTROL[control], base_period=base, est_method=method,
               covariates=None if cov == "none" else ["lpop"])


def _se(values: list) -> np.ndarray:  # type: ignore[type-arg]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


# ------------------------------------------------------------------------------------------------ R parity
@pytest.mark.parametrize("key", KEYS)
def test_attgt_matches_did(mp: pd.DataFrame, key: str) -> None:
    ref = REF["mpdta"][key]
    res = fit_key(mp, key)
    cells = res.cells()
    assert list(cells["group"]) == [r["group"] for r in ref["attgt"]]
    assert list(cells["time"]) == [r["t"] for r in ref["attgt"]]
    np.testing.assert_allclose(cells["estimate"], [r["att"] for r in ref["attgt"]], rtol=TOL_ATT, atol=1e-14)
    se_ref = _se([r["se"] for r in ref["attgt"]])
    ok = np.isfinite(se_ref)
    np.testing.assert_allclose(cells["std_error"][ok], se_ref[ok], rtol=TOL_SE)
    assert np.all(cells["std_error"][~ok] == 0)  # the universal base period cell: 0 by construction (R: NA)
    assert res.pretest is not None
    assert abs(res.pretest.p_value - ref["Wpval"][0][0]) <= TOL_WPVAL


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("kind", ["simple", "group", "dynamic", "calendar"])
def test_aggregations_match_did(mp: pd.DataFrame, key: str, kind: str) -> None:
    ref = REF["mpdta"][key][f"aggte_{kind}"]
    res = fit_key(mp, key)
    agg = res.aggregate(kind)
    np.testing.assert_allclose(agg.estimate, ref["overall_att"], rtol=TOL_ATT)
    np.testing.assert_allclose(agg.std_error, ref["overall_se"], rtol=TOL_SE)
    if kind == "simple":
        np.testing.assert_allclose(res.estimate, ref["overall_att"], rtol=TOL_ATT)
        np.testing.assert_allclose(res.std_error, ref["overall_se"], rtol=TOL_SE)
        return
    _check_egt(agg, ref)


def _check_egt(agg: didx.Result, ref: dict) -> None:  # type: ignore[type-arg]
    se_ref = _se(ref["se_egt"])
    ok = np.isfinite(se_ref)  # R reports the universal reference event time with SE NA; didx as a reference
    m = len(agg.terms) - 1
    np.testing.assert_allclose(agg.coef[:m], np.asarray(ref["att_egt"], dtype=float)[ok], rtol=TOL_ATT, atol=1e-14)
    np.testing.assert_allclose(agg.std_errors[:m], se_ref[ok], rtol=TOL_SE)
    if isinstance(agg, EventStudyResult):
        np.testing.assert_array_equal(agg.event_times[:m], np.asarray(ref["egt"], dtype=float)[ok])
        assert agg.reference_periods == tuple(float(e) for e in np.asarray(ref["egt"])[~ok])


@pytest.mark.parametrize(("name", "kw"), [("dynamic_balance_e1", {"balance_e": 1}),
                                          ("dynamic_min_e_m2_max_e_2", {"min_e": -2, "max_e": 2})])
def test_dynamic_windows_match_did(mp: pd.DataFrame, name: str, kw: dict) -> None:  # type: ignore[type-arg]
    ref = REF["mpdta_extra"][name]
    agg = fit(mp).aggregate("dynamic", **kw)
    np.testing.assert_allclose(agg.estimate, ref["overall_att"], rtol=TOL_ATT)
    np.testing.assert_allclose(agg.std_error, ref["overall_se"], rtol=TOL_SE)
    _check_egt(agg, ref)


def test_bootstrap_within_monte_carlo_error(mp: pd.DataFrame) -> None:
    # R: biters = 1000 (Rademacher, BMisc); here 5000 draws so that our own Monte Carlo error is small.
    ref = REF["mpdta_bootstrap_seed1814"]
    res = fit(mp, n_bootstrap=5000, seed=1814)
    cells = res.cells()
    np.testing.assert_allclose(cells["estimate"], [r["att"] for r in ref["attgt"]], rtol=TOL_ATT)
    np.testing.assert_allclose(cells["std_error"], [r["se"] for r in ref["attgt"]], rtol=TOL_BOOT_SE)
    assert abs(res.uniform_critical_value() - ref["crit_val"]) <= TOL_BOOT_CRIT
    # the uniform band is wider than the pointwise interval and used by tidy()
    t = res.cells()
    width = (t["conf_high"] - t["estimate"]) / t["std_error"]
    np.testing.assert_allclose(width, res.uniform_critical_value(), rtol=1e-12)
    assert "uniform" in res.summary()


def test_bootstrap_seeded_and_aggregations_share_draws(mp: pd.DataFrame) -> None:
    a = fit(mp, n_bootstrap=199, seed=3)
    b = fit(mp, n_bootstrap=199, seed=3)
    np.testing.assert_array_equal(a.std_errors, b.std_errors)
    c = fit(mp, n_bootstrap=199, seed=4)
    assert not np.array_equal(a.std_errors, c.std_errors)
    dyn = a.aggregate("dynamic")
    analytic = fit(mp).aggregate("dynamic")
    np.testing.assert_allclose(dyn.std_errors, analytic.std_errors, rtol=0.25)
    assert dyn.uniform_critical_value() > 1.96


def test_mammen_and_gaussian_multipliers(mp: pd.DataFrame) -> None:
    base = fit(mp)
    mam = fit(mp, n_bootstrap=2000, seed=1, multiplier="mammen")
    np.testing.assert_allclose(mam.std_errors[:-1], base.std_errors[:-1], rtol=0.15)
    gau = fit(mp, n_bootstrap=2000, seed=1, multiplier="gaussian")
    np.testing.assert_allclose(gau.std_errors, base.std_errors, rtol=1e-12)  # exact: the analytic covariance
    crit = gau.uniform_critical_value()
    bonferroni = 2.8653  # z_{1 - 0.05 / 24}
    assert 1.96 < crit < bonferroni + 0.05


def test_clustered_bootstrap_and_analytic(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["state"] = df["countyreal"] // 1000
    res = fit(df, cluster="state")
    assert res.inference.n_clusters == (df["state"].nunique(),)
    # clustering on a variable with one unit per cluster reproduces the unit-level SEs
    df["same"] = df["countyreal"] * 10
    np.testing.assert_allclose(fit(df, cluster="same").std_errors, fit(mp).std_errors, rtol=TOL_IDENTITY)
    boot = fit(df, cluster="state", n_bootstrap=4000, seed=1)
    # the clustered bootstrap is the bootstrap of the cluster sums: its SEs approach the analytic clustered ones
    np.testing.assert_allclose(boot.std_errors, res.std_errors, rtol=0.15)
    # analytic clustered SEs: sums over clusters of the summed influence functions, / n
    psi = res.influence_functions()
    assert psi.shape == (500, 13) and list(psi.columns) == list(res.terms)  # the cells and the headline
    state = df.drop_duplicates("countyreal").set_index("countyreal")["state"]
    psi_c = psi.groupby(state.loc[psi.index].to_numpy()).sum().to_numpy()
    np.testing.assert_allclose(np.sqrt((psi_c**2).sum(axis=0)) / 500, res.std_errors, rtol=1e-10)
    assert not np.allclose(res.std_errors, fit(mp).std_errors, rtol=1e-3)


def test_with_vcov_recomputes_from_the_influence_functions(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["state"] = df["countyreal"] // 1000
    unit_res, cl_res = fit(df), fit(df, cluster="state")
    # clustered fit -> by unit, and back: the analytic SEs of fitting that way, for cells and aggregations
    np.testing.assert_allclose(cl_res.with_vcov(cluster="countyreal").std_errors, unit_res.std_errors,
                               rtol=TOL_IDENTITY)
    np.testing.assert_allclose(cl_res.with_vcov(cluster="countyreal").with_vcov(cluster="state").std_errors,
                               cl_res.std_errors, rtol=TOL_IDENTITY)
    dyn = cl_res.aggregate("dynamic").with_vcov(cluster="countyreal")
    np.testing.assert_allclose(dyn.std_errors, unit_res.aggregate("dynamic").std_errors, rtol=TOL_IDENTITY)
    # aggregating after with_vcov keeps the new choice (not the fit's clustering or bootstrap)
    for kind in ("simple", "group", "dynamic", "calendar"):
        np.testing.assert_allclose(cl_res.with_vcov(cluster="countyreal").aggregate(kind).std_errors,
                                   unit_res.aggregate(kind).std_errors, rtol=TOL_IDENTITY)
    agg_boot = fit(df, n_bootstrap=199, seed=1).with_vcov().aggregate("dynamic")
    np.testing.assert_allclose(agg_boot.std_errors, unit_res.aggregate("dynamic").std_errors, rtol=TOL_IDENTITY)
    assert agg_boot.inference.band == "pointwise" and "bootstrap" not in agg_boot.inference.vcov_type
    assert dyn.inference.cluster_names == ("countyreal",) and dyn.inference.n_clusters == (500,)
    # a bootstrap result switched to analytic SEs: pointwise intervals, not the bootstrap band with new SEs
    boot = fit(df, n_bootstrap=199, seed=1).with_vcov()
    np.testing.assert_allclose(boot.std_errors, unit_res.std_errors, rtol=TOL_IDENTITY)
    assert boot.inference.band == "pointwise" and "analytic" in boot.inference.vcov_type
    t = boot.tidy(conf_level=0.9)
    np.testing.assert_allclose(t["conf_high"], t["estimate"] + 1.6448536269514722 * t["std_error"], rtol=1e-12)
    assert boot.uniform_critical_value(0.9) == pytest.approx(1.6448536269514722)
    # a column not captured at fit time needs its values or the fitted frame (results keep no data)
    with pytest.raises(InvalidOptionError, match=r"'state' was not captured at fit time.*data="):
        unit_res.with_vcov(cluster="state")


# ------------------------------------------------------------------------------------------------ identities
def test_no_covariates_dr_ipw_reg_identical(mp: pd.DataFrame) -> None:
    r = [fit(mp, est_method=m, control_group="not_yet") for m in ("dr", "ipw", "reg")]
    for other in r[1:]:
        np.testing.assert_allclose(other.coef, r[0].coef, rtol=TOL_IDENTITY)
        np.testing.assert_allclose(other.std_errors, r[0].std_errors, rtol=TOL_IDENTITY)


def test_influence_functions_reproduce_vcov(mp: pd.DataFrame) -> None:
    for kw in ({}, {"covariates": ["lpop"]}, {"base_period": "universal", "control_group": "not_yet"}):
        res = fit(mp, **kw)
        psi = res.influence_functions().to_numpy()
        n = psi.shape[0]
        K = psi.shape[1]
        np.testing.assert_allclose(psi.T @ psi / n**2, res.vcov_matrix[:K, :K], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(psi.mean(axis=0), 0.0, atol=1e-10)


def test_influence_function_of_a_cell_by_unit(mp: pd.DataFrame) -> None:
    psi = fit(mp).influence_functions()["ATT(2004,2006)"]
    wide = mp.pivot(index="countyreal", columns="year", values="lemp")
    g = mp.drop_duplicates("countyreal").set_index("countyreal")["first.treat"].loc[wide.index]
    dy = wide[2006] - wide[2003]
    n = len(wide)
    expect = pd.Series(0.0, index=wide.index)
    for cohort, sign in ((2004, 1.0), (0, -1.0)):
        m = g == cohort
        expect[m] = sign * n * (dy[m] - dy[m].mean()) / m.sum()
    np.testing.assert_allclose(psi.loc[wide.index].to_numpy(), expect.to_numpy(), rtol=1e-9, atol=1e-12)


def test_two_periods_one_cohort_equals_did2x2_and_drdid(mp: pd.DataFrame) -> None:
    df = mp[mp["year"].isin([2005, 2006]) & mp["first.treat"].isin([0, 2006])].copy()
    res = fit(df)
    assert len(res.terms) == 2
    df["g"] = (df["first.treat"] == 2006).astype(int)
    df["post"] = (df["year"] == 2006).astype(int)
    two = didx.did2x2(df, y="lemp", treat="g", post="post", unit="countyreal", vcov="CR0",
                      ssc=didx.SSC(adj=False, cluster_adj=False))
    np.testing.assert_allclose(res.coef[0], two.estimate, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors[0], two.std_error, rtol=1e-9)
    dr = didx.drdid(df, y="lemp", treat="g", time="year", unit="countyreal", covariates=["lpop"],
                    est_method="dr_traditional")
    cov = fit(df, covariates=["lpop"])
    np.testing.assert_allclose(cov.coef[0], dr.estimate, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(cov.std_errors[0], dr.std_error, rtol=1e-9)


@pytest.mark.parametrize(("method", "drdid_method"), [("dr", "dr_traditional"), ("ipw", "ipw"), ("reg", "reg")])
def test_two_periods_one_cohort_rc_equals_drdid(mp: pd.DataFrame, method: str, drdid_method: str) -> None:
    df = mp[mp["year"].isin([2005, 2006]) & mp["first.treat"].isin([0, 2006])].copy()
    df["g"] = (df["first.treat"] == 2006).astype(int)
    a = didx.att_gt(df, y="lemp", time="year", cohort="first.treat", panel=False, covariates=["lpop"],
                    est_method=method)
    b = didx.drdid(df, y="lemp", treat="g", time="year", covariates=["lpop"], panel=False, est_method=drdid_method)
    np.testing.assert_allclose(a.coef[0], b.estimate, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(a.std_errors[0], b.std_error, rtol=1e-9)


def test_weights_constant_equal_unweighted(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["w"] = 3.0
    for kw in ({}, {"covariates": ["lpop"]}):
        a, b = fit(mp, **kw), fit(df, weights="w", **kw)
        np.testing.assert_allclose(b.coef, a.coef, rtol=1e-9)
        np.testing.assert_allclose(b.std_errors, a.std_errors, rtol=1e-9)
        np.testing.assert_allclose(b.aggregate("group").std_errors, a.aggregate("group").std_errors, rtol=1e-9)


def test_weighted_cells_are_weighted_means(mp: pd.DataFrame) -> None:
    df = mp.copy()
    rng = np.random.default_rng(0)
    wu = pd.Series(rng.uniform(0.5, 2.0, df["countyreal"].nunique()), index=df["countyreal"].unique())
    df["w"] = df["countyreal"].map(wu)
    res = fit(df, weights="w")
    wide = df.pivot(index="countyreal", columns="year", values="lemp")
    g = df.drop_duplicates("countyreal").set_index("countyreal")["first.treat"].loc[wide.index]
    w = wu.loc[wide.index]
    dy = wide[2006] - wide[2003]
    tr, co = g == 2004, g == 0
    expect = np.average(dy[tr], weights=w[tr]) - np.average(dy[co], weights=w[co])
    np.testing.assert_allclose(res.coef[res.terms.index("ATT(2004,2006)")], expect, rtol=TOL_IDENTITY)
    dr = fit(df, weights="w", covariates=["lpop"], est_method="reg")
    assert np.all(np.isfinite(dr.std_errors))


def test_invariant_to_row_order_unit_labels_and_never_coding(mp: pd.DataFrame) -> None:
    base = fit(mp, control_group="not_yet")
    shuffled = mp.sample(frac=1.0, random_state=1)
    shuffled["countyreal"] = shuffled["countyreal"] * 7 + 3
    other = fit(shuffled, control_group="not_yet")
    np.testing.assert_allclose(other.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(other.std_errors, base.std_errors, rtol=TOL_IDENTITY)
    for code in (np.nan, np.inf):
        df = mp.copy()
        df["first.treat"] = df["first.treat"].astype(float).replace(0.0, code)
        r = fit(df, control_group="not_yet")
        np.testing.assert_allclose(r.coef, base.coef, rtol=TOL_IDENTITY)
        np.testing.assert_allclose(r.std_errors, base.std_errors, rtol=TOL_IDENTITY)


# ------------------------------------------------------------------------------------------------ robustness
def test_no_never_treated_with_not_yet(mp: pd.DataFrame) -> None:
    df = mp[mp["first.treat"] > 0]
    with pytest.raises(DesignError, match="not_yet"):
        fit(df)
    res = fit(df, control_group="not_yet")
    # the last cohort (2007) becomes the comparison group; 2007 is dropped
    assert set(res.cells()["group"]) == {2004.0, 2006.0}
    assert set(res.cells()["time"]) <= {2004.0, 2005.0, 2006.0}
    assert any("2007" in d.reason for d in res.sample.dropped)
    assert "comparison group" in res.summary()
    res.aggregate("dynamic")


def test_pretest_names_its_cells_and_is_the_wald_test_of_them(mp: pd.DataFrame) -> None:
    res = fit(mp, base_period="universal")
    pre = tuple(t for t, g, tt in zip(res.terms, res.term_info["group"], res.term_info["time"], strict=True)
                if g > tt and tt != g - 1)  # the universal base cells (0, zero SE) are left out, as did
    assert res.pretest is not None and res.pretest.terms == pre and res.pretest.df == len(pre)
    w = res.wald(list(pre))
    assert w.statistic == pytest.approx(res.pretest.statistic, rel=TOL_IDENTITY)


def test_pretest_not_available_when_singular_or_empty(mp: pd.DataFrame) -> None:
    # y_2005 = y_2003 for every unit: each cohort's pre-treatment cells (2004 vs 2003, 2005 vs 2004) have
    # opposite influence functions, so their covariance is singular (did: no W, a warning)
    df = mp.copy()
    y03 = df[df.year == 2003].set_index("countyreal")["lemp"]
    later = df.year == 2005
    df.loc[later, "lemp"] = y03.loc[df.loc[later, "countyreal"]].to_numpy()
    res = fit(df)
    assert fit(mp).pretest is not None and res.pretest is None
    assert "pre-test of pre-treatment ATT(g,t) = 0: not available" in res.summary()
    # no pre-treatment cell at all (two periods, one cohort)
    two = fit(mp[mp.year.isin([2003, 2004]) & mp["first.treat"].isin([0, 2004])])
    assert two.pretest is None


def test_no_post_treatment_cell_is_a_clear_error(mp: pd.DataFrame) -> None:
    # no never-treated units and anticipation 1: periods from 2006 on are dropped (cohort 2007 is the comparison),
    # cohort 2004 is treated in the first period; cohort 2006 has only pre-treatment cells left
    df = mp[mp["first.treat"] != 0]
    with pytest.raises(DesignError, match=r"no post-treatment ATT\(g,t\).*last period is 2005.*cohorts: 2006.*"
                                          r"anticipation=1.*Fix: add never-treated units"):
        fit(df, control_group="not_yet", anticipation=1)


def test_balancing_removes_every_never_treated_unit(mp: pd.DataFrame) -> None:
    # every never-treated unit misses 2005: balancing drops them all, then did's no-never-treated rule applies
    df = mp[~((mp["first.treat"] == 0) & (mp["year"] == 2005))]
    with pytest.raises(DesignError, match=r"no never-treated units after dropping the units not observed in every "
                                          r"period.*Fix: use allow_unbalanced=True"):
        fit(df)
    res = fit(df, control_group="not_yet")
    ref = fit(mp[mp["first.treat"] != 0], control_group="not_yet")
    assert res.terms == ref.terms
    np.testing.assert_allclose(res.coef, ref.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, ref.std_errors, rtol=TOL_IDENTITY)
    assert any("cohort 2007 serves as the comparison group" in n for n in res.sample.notes)


def test_units_treated_in_first_period_dropped_and_reported(mp: pd.DataFrame) -> None:
    df = mp.copy()
    first = df["countyreal"].isin(df["countyreal"].unique()[:7])
    df.loc[first, "first.treat"] = 2003
    res = fit(df)
    d = [x for x in res.sample.dropped if "first period" in x.reason]
    assert d and d[0].n_units == 7 and d[0].n_rows == 35
    ref = fit(df[~first])
    np.testing.assert_allclose(res.coef, ref.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, ref.std_errors, rtol=TOL_IDENTITY)


def test_cohort_of_one_unit(mp: pd.DataFrame) -> None:
    df = mp.copy()
    one = df["countyreal"] == df.loc[df["first.treat"] == 0, "countyreal"].iloc[0]
    df.loc[one, "first.treat"] = 2005
    res = fit(df)
    cells = res.cells()
    assert (cells["group"] == 2005).sum() == 4
    assert np.all(np.isfinite(cells["std_error"]))
    assert any("Small cohorts" in s for s in res.sample.notes)
    for kind in ("simple", "group", "dynamic", "calendar"):
        assert np.isfinite(res.aggregate(kind).std_error)


def test_unbalanced_dropped_or_kept(mp: pd.DataFrame) -> None:
    drop_ids = mp["countyreal"].unique()[::25]
    mask = mp["countyreal"].isin(drop_ids) & (mp["year"] == 2005)
    df = mp[~mask]
    res = fit(df)
    d = [x for x in res.sample.dropped if "every period" in x.reason]
    assert d and d[0].n_units == len(drop_ids)
    ref = fit(mp[~mp["countyreal"].isin(drop_ids)])
    np.testing.assert_allclose(res.coef, ref.coef, rtol=TOL_IDENTITY)
    unb = fit(df, allow_unbalanced=True)
    assert unb.sample.n_units == 500
    assert "unbalanced" in unb.summary()
    # ATT(2004,2006): row-level cell means of the rows observed in 2003 and 2006
    sub = df[df["year"].isin([2003, 2006]) & df["first.treat"].isin([0, 2004])]
    m = sub.groupby(["first.treat", "year"])["lemp"].mean()
    expect = (m[2004, 2006] - m[2004, 2003]) - (m[0, 2006] - m[0, 2003])
    np.testing.assert_allclose(unb.coef[unb.terms.index("ATT(2004,2006)")], expect, rtol=TOL_IDENTITY)
    assert np.all(np.isfinite(unb.std_errors))
    cov = fit(df, allow_unbalanced=True, covariates=["lpop"])
    assert np.all(np.isfinite(cov.std_errors))
    # allow_unbalanced on a balanced panel is the panel estimator
    np.testing.assert_allclose(fit(mp, allow_unbalanced=True).std_errors, fit(mp).std_errors, rtol=TOL_IDENTITY)


def test_balanced_sample_report_has_no_units_with_gaps(mp: pd.DataFrame) -> None:
    df = mp.drop(index=[3, 10])  # one unit with an inner gap, one entering late: both dropped
    panel_line = next(ln for ln in fit(df).summary().splitlines() if ln.strip().startswith("Panel:"))
    assert panel_line.strip() == "Panel: balanced"
    assert fit(df).sample.n_units == 498
    assert "gaps" in fit(df, allow_unbalanced=True).summary()


def test_repeated_cross_sections(mp: pd.DataFrame) -> None:
    res = fit(mp.drop(columns="countyreal"), unit=None, panel=False)
    sub = mp[mp["year"].isin([2003, 2006]) & mp["first.treat"].isin([0, 2004])]
    m = sub.groupby(["first.treat", "year"])["lemp"].mean()
    expect = (m[2004, 2006] - m[2004, 2003]) - (m[0, 2006] - m[0, 2003])
    np.testing.assert_allclose(res.coef[res.terms.index("ATT(2004,2006)")], expect, rtol=TOL_IDENTITY)
    # cross sections: the SE treats rows as independent, so it exceeds the panel SE here
    assert res.std_errors[0] > fit(mp).std_errors[0]
    psi = res.influence_functions().to_numpy()
    K = psi.shape[1]
    np.testing.assert_allclose(psi.T @ psi / psi.shape[0] ** 2, res.vcov_matrix[:K, :K], rtol=1e-9, atol=1e-15)
    for method in ("dr", "ipw", "reg"):
        cov = fit(mp, unit=None, panel=False, covariates=["lpop"], est_method=method)
        assert np.all(np.isfinite(cov.std_errors))


def test_anticipation_shifts_base_period(mp: pd.DataFrame) -> None:
    res = fit(mp, anticipation=1)
    cells = res.cells()
    row = cells[(cells["group"] == 2006) & (cells["time"] == 2006)].iloc[0]
    assert row["base_period"] == 2004
    # cohort 2004 has no period before 2004 - 1: its units are dropped as treated in the first period
    assert 2004 not in set(cells["group"])
    assert "Anticipation: 1" in res.summary()


# ------------------------------------------------------------------------------------------------ results
def test_not_yet_control_set_with_anticipation_by_hand(mp: pd.DataFrame) -> None:
    # did: comparison cohorts g' != g with g' > period[max(t, b)] + anticipation
    m = mp.groupby(["first.treat", "year"])["lemp"].mean()
    n = mp.drop_duplicates("countyreal")["first.treat"].value_counts()

    def change(gs: list[int], t: int, b: int) -> float:  # size-weighted mean change of pooled cohorts
        return float(sum(n[g] * (m[g, t] - m[g, b]) for g in gs) / sum(n[g] for g in gs))

    def cell(res, g: int, t: int) -> float:  # type: ignore[no-untyped-def]
        return float(res.coef[res.terms.index(f"ATT({g},{t})")])

    # varying base, ATT(2007,2005) with b = 2004: anticipation 0 admits cohort 2006 (> 2005), anticipation 1 not
    a0, a1 = fit(mp, control_group="not_yet"), fit(mp, control_group="not_yet", anticipation=1)
    own = m[2007, 2005] - m[2007, 2004]
    np.testing.assert_allclose(cell(a0, 2007, 2005), own - change([0, 2006], 2005, 2004), rtol=TOL_IDENTITY)
    np.testing.assert_allclose(cell(a1, 2007, 2005), own - change([0], 2005, 2004), rtol=TOL_IDENTITY)
    # universal base with anticipation 1: cohort 2007's base is 2005 for every cell, so ATT(2007,2004) compares
    # 2004 with 2005 against units untreated until after 2005 + 1 (never treated only)
    u1 = fit(mp, control_group="not_yet", anticipation=1, base_period="universal")
    np.testing.assert_allclose(cell(u1, 2007, 2004), (m[2007, 2004] - m[2007, 2005]) - change([0], 2004, 2005),
                               rtol=TOL_IDENTITY)
    # ATT(2006,2006) with anticipation 1: base 2004, comparison g' > 2006 + 1: never treated only
    np.testing.assert_allclose(cell(a1, 2006, 2006), (m[2006, 2006] - m[2006, 2004]) - change([0], 2006, 2004),
                               rtol=TOL_IDENTITY)


def test_summary_prints_every_choice(mp: pd.DataFrame) -> None:
    s = fit(mp, control_group="not_yet", base_period="universal", n_bootstrap=199, seed=1).summary()
    for text in ("Control group: not yet treated", "Base period: universal", "Anticipation: 0",
                 "Estimation method", "multiplier bootstrap (rademacher", "Intervals: uniform", "Wald pre-test"):
        assert text in s
    a = fit(mp).summary()
    assert "Intervals: pointwise" in a and "analytic" in a


def test_dynamic_is_event_study(mp: pd.DataFrame) -> None:
    dyn = fit(mp, base_period="universal").aggregate("dynamic")
    assert isinstance(dyn, EventStudyResult)
    assert dyn.reference_periods == (-1.0,)
    table = dyn.event_table()
    assert -1.0 in set(table["event_time"])
    assert dyn.pretrend_test().df == 3
    assert dyn.headline == "ATT (average e>=0)"
    band = didx.uniform_bands(dyn)
    assert band.critical_value > 1.96


def test_headline_is_simple_aggregation(mp: pd.DataFrame) -> None:
    res = fit(mp)
    simple = res.aggregate("simple")
    assert res.headline == "ATT (simple)"
    np.testing.assert_allclose(res.estimate, simple.estimate, rtol=1e-14)
    np.testing.assert_allclose(res.std_error, simple.std_error, rtol=1e-12)


# ------------------------------------------------------------------------------------------------ errors
def test_error_bad_option(mp: pd.DataFrame) -> None:
    with pytest.raises(InvalidOptionError, match=r"'control_group' parameter of att_gt.*'not_yet'.*'nevr'"):
        fit(mp, control_group="nevr")
    with pytest.raises(InvalidOptionError, match=r"'base_period'.*'universal'"):
        fit(mp, base_period="fixed")
    with pytest.raises(InvalidOptionError, match=r"'multiplier'.*'mammen'"):
        fit(mp, n_bootstrap=200, multiplier="webb")
    with pytest.raises(InvalidOptionError, match="at least 100"):
        fit(mp, n_bootstrap=10)
    with pytest.raises(InvalidOptionError, match=r"'anticipation'.*>= 0"):
        fit(mp, anticipation=-1)
    with pytest.raises(InvalidOptionError, match=r"'kind' parameter.*'dynamic'"):
        fit(mp).aggregate("event")


def test_error_bootstrap_options_without_draws(mp: pd.DataFrame) -> None:
    # multiplier choice or seed without draws would be silently ignored (analytic SEs, pointwise intervals)
    with pytest.raises(InvalidOptionError, match=r"multiplier='gaussian'.*n_bootstrap=0.*Fix: pass n_boot"):
        fit(mp, multiplier="gaussian")
    with pytest.raises(InvalidOptionError, match=r"seed=3.*n_bootstrap=None.*drop seed="):
        fit(mp, seed=3, n_bootstrap=None)
    assert fit(mp, n_bootstrap=0).inference.band == "pointwise"


def test_error_aggregation_window_options(mp: pd.DataFrame) -> None:
    res = fit(mp)
    # options the aggregation would silently ignore (as aggte does)
    with pytest.raises(InvalidOptionError, match=r"min_e=-2 has no effect on kind='simple'.*Fix: drop it"):
        res.aggregate("simple", min_e=-2)
    with pytest.raises(InvalidOptionError, match=r"balance_e=1 has no effect on kind='group'"):
        res.aggregate("group", balance_e=1)
    with pytest.raises(InvalidOptionError, match=r"max_e=2 has no effect on kind='calendar'"):
        res.aggregate("calendar", max_e=2)
    # values that are not event times
    with pytest.raises(InvalidOptionError, match=r"'balance_e'.*integer >= 0.*-1"):
        res.aggregate("dynamic", balance_e=-1)
    with pytest.raises(InvalidOptionError, match=r"'balance_e'.*1.5"):
        res.aggregate("dynamic", balance_e=1.5)
    with pytest.raises(InvalidOptionError, match=r"'max_e'.*number.*'x'"):
        res.aggregate("dynamic", max_e="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"min_e=3 is larger than max_e=1.*swap"):
        res.aggregate("dynamic", min_e=3, max_e=1)
    np.testing.assert_allclose(res.aggregate("dynamic", balance_e=np.int64(1)).estimate,
                               res.aggregate("dynamic", balance_e=1).estimate, rtol=TOL_IDENTITY)


def test_gaussian_multipliers_print_draws_and_seed(mp: pd.DataFrame) -> None:
    # the sup-t critical value is simulated: its draws and seed (0 when none is given) are design choices
    res = fit(mp, n_bootstrap=500, multiplier="gaussian")
    assert "gaussian multipliers (exact: sup-t critical value from 500 N(0, corr) draws, seed 0)" in res.summary()
    assert res.uniform_critical_value() == fit(mp, n_bootstrap=500, multiplier="gaussian",
                                               seed=0).uniform_critical_value()


def test_error_unit_with_repeated_cross_sections(mp: pd.DataFrame) -> None:
    # the unit column would be silently ignored (rows treated as independent although units repeat)
    with pytest.raises(InvalidOptionError, match=r"unit='countyreal' is not used with panel=False.*Fix: drop unit="
                                                 r".*allow_unbalanced=True"):
        fit(mp, panel=False)


def test_unseeded_bootstrap_says_so(mp: pd.DataFrame) -> None:
    assert "(rademacher, 199 draws, unseeded)" in fit(mp, n_bootstrap=199).inference.vcov_type
    assert "(rademacher, 199 draws, seed 5)" in fit(mp, n_bootstrap=199, seed=5).inference.vcov_type


def test_error_bad_seed(mp: pd.DataFrame) -> None:
    for bad in (-1, 1.5, "a"):
        with pytest.raises(InvalidOptionError, match=rf"'seed' parameter of att_gt.*integer >= 0.*{bad!r}"):
            fit(mp, n_bootstrap=199, seed=bad)


def test_error_cluster_not_one_column(mp: pd.DataFrame) -> None:
    with pytest.raises(InvalidOptionError, match=r"got \['state', 'year'\].*Fix: pass the coarser variable alone"):
        fit(mp, cluster=["state", "year"])


def test_error_missing_column(mp: pd.DataFrame) -> None:
    with pytest.raises(didx.ColumnNotFoundError, match="first_treat"):
        didx.att_gt(mp, y="lemp", unit="countyreal", time="year", cohort="first_treat")


def test_error_panel_without_unit(mp: pd.DataFrame) -> None:
    with pytest.raises(InvalidOptionError, match="unit="):
        didx.att_gt(mp, y="lemp", time="year", cohort="first.treat")


def test_error_cluster_or_weights_vary_within_unit(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["cl"] = np.arange(len(df)) % 3
    with pytest.raises(didx.DataError, match="'cl' varies within units"):
        fit(df, cluster="cl")
    df["w"] = np.arange(len(df)) % 2 + 1.0
    with pytest.raises(didx.DataError, match="'w' varies within units"):
        fit(df, weights="w")


def test_error_everyone_treated_first_period(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["first.treat"] = np.where(df["first.treat"] > 0, 2003, 0)
    with pytest.raises(DesignError, match="first period"):
        fit(df)


def test_error_window_empty(mp: pd.DataFrame) -> None:
    with pytest.raises(DesignError, match="min_e"):
        fit(mp).aggregate("dynamic", min_e=10)


# ------------------------------------------------------------------------------------------------ more paths
def test_max_e_caps_simple_and_group(mp: pd.DataFrame) -> None:
    res = fit(mp)
    cells = res.cells()
    keep = (cells["time"] >= cells["group"]) & (cells["time"] - cells["group"] <= 1)
    size = mp.drop_duplicates("countyreal")["first.treat"].value_counts()
    w = cells.loc[keep, "group"].map(size)
    expect = float(np.average(cells.loc[keep, "estimate"], weights=w))
    np.testing.assert_allclose(res.aggregate("simple", max_e=1).estimate, expect, rtol=TOL_IDENTITY)
    grp = res.aggregate("group", max_e=1)
    np.testing.assert_allclose(grp.coef[0], cells.loc[keep & (cells["group"] == 2004), "estimate"].mean(),
                               rtol=TOL_IDENTITY)


def test_date_time_column_and_other_backends(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["date"] = pd.to_datetime(df["year"].astype(str) + "-01-01")
    df["first_date"] = pd.to_datetime(df["first.treat"].where(df["first.treat"] > 0).astype("Int64").astype(str)
                                      .replace("<NA>", None) + "-01-01")
    res = didx.att_gt(df, y="lemp", unit="countyreal", time="date", cohort="first_date")
    base = fit(mp)
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    assert res.terms[0].startswith("ATT(2004-01-01")
    pl = pytest.importorskip("polars")
    r2 = didx.att_gt(pl.from_pandas(mp), y="lemp", unit="countyreal", time="year", cohort="first.treat")
    np.testing.assert_allclose(r2.coef, base.coef, rtol=TOL_IDENTITY)


def test_covariate_bootstrap_and_clusters(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["state"] = df["countyreal"] // 1000
    base = fit(df, covariates=["lpop"])
    boot = fit(df, covariates=["lpop"], n_bootstrap=2000, seed=7)
    np.testing.assert_allclose(boot.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(boot.std_errors[:-1], base.std_errors[:-1], rtol=0.15)
    cl = fit(df, covariates=["lpop"], cluster="state", n_bootstrap=500, seed=7)
    assert np.all(np.isfinite(cl.std_errors))
    dyn = cl.aggregate("dynamic")
    assert dyn.uniform_critical_value() > 1.96


def test_unbalanced_influence_functions_reproduce_vcov(mp: pd.DataFrame) -> None:
    df = mp.drop(index=mp.index[::37])
    for kw in ({}, {"covariates": ["lpop"]}):
        res = fit(df, allow_unbalanced=True, **kw)
        psi = res.influence_functions().to_numpy()
        K = psi.shape[1]
        assert psi.shape[0] == df["countyreal"].nunique()
        np.testing.assert_allclose(psi.T @ psi / psi.shape[0] ** 2, res.vcov_matrix[:K, :K], rtol=1e-9,
                                   atol=1e-15)
        agg = res.aggregate("dynamic")
        assert np.all(np.isfinite(agg.std_errors))


def test_multiplier_draws_generic() -> None:
    from didx.inference.multiplier import bootstrap_critical_value, bootstrap_se, multiplier_draws

    rng = np.random.default_rng(0)
    psi = rng.standard_normal((4000, 3)) * np.array([1.0, 2.0, 3.0])
    analytic = np.sqrt((psi**2).sum(axis=0)) / 4000
    for kind in ("rademacher", "mammen", "gaussian"):
        d = multiplier_draws(psi, 4000, kind, seed=1)
        assert d.shape == (4000, 3)
        np.testing.assert_allclose(bootstrap_se(d), analytic, rtol=0.06)
        np.testing.assert_array_equal(d, multiplier_draws(psi, 4000, kind, seed=1))
        assert 1.96 < bootstrap_critical_value(d, bootstrap_se(d)) < 2.5
    cl = np.minimum(np.arange(4000) // 7, 400)  # unequal clusters: the SE is the cluster-sum one
    psi_c = np.stack([np.bincount(cl, weights=psi[:, j]) for j in range(3)], axis=1)
    for kind in ("rademacher", "gaussian"):
        dc = multiplier_draws(psi, 4000, kind, seed=2, cluster=cl)
        np.testing.assert_allclose(bootstrap_se(dc), np.sqrt((psi_c**2).sum(axis=0)) / 4000, rtol=0.06)


def test_gaussian_clustered_draws_form_no_draws_by_clusters_matrix() -> None:
    import tracemalloc

    from didx.inference.multiplier import multiplier_draws

    rng = np.random.default_rng(0)
    n, B = 20_000, 1_000
    psi = rng.standard_normal((n, 2))
    tracemalloc.start()
    d = multiplier_draws(psi, B, "gaussian", seed=1, cluster=np.arange(n))  # one unit per cluster
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert d.shape == (B, 2)
    assert peak < 0.25 * B * n * 8  # a B x C normal matrix alone is B * n * 8 bytes
    np.testing.assert_allclose(d.std(axis=0), np.sqrt((psi**2).sum(axis=0)) / n, rtol=0.1)


def test_cells_without_data_are_skipped_and_reported(mp: pd.DataFrame) -> None:
    df = mp[~((mp["first.treat"] == 2004) & (mp["year"] == 2005))]
    res = fit(df.drop(columns="countyreal"), unit=None, panel=False)
    skipped = res.extras["skipped"]
    assert (2004.0, 2005.0) in skipped and (2004.0, 2006.0) not in skipped
    assert any("ATT(2004,2005) not estimated" in n for n in res.notes)
    assert "ATT(2004,2005)" not in res.terms
    for kind in ("simple", "group", "dynamic", "calendar"):
        assert np.isfinite(res.aggregate(kind).std_error)


@pytest.mark.parametrize("mode", ["rc", "unbalanced", "panel"])
def test_cohort_sums_equal_the_2x2_estimators_with_an_intercept(mp: pd.DataFrame, mode: str) -> None:
    # the closed-form cohort x period path (no covariates) against the Sant'Anna-Zhao cell estimators with only an
    # intercept, weighted, for panels, unbalanced panels and repeated cross sections: estimates and SEs
    import dataclasses

    from didx._panel import build_panel
    from didx.estimators.cs.cells import estimate_covariates, estimate_sums, plan_cells
    from didx.estimators.cs.data import prepare

    rng = np.random.default_rng(0)
    w_unit = pd.Series(rng.uniform(0.5, 2.0, mp["countyreal"].nunique()), index=mp["countyreal"].unique())
    df = mp.assign(w=w_unit.loc[mp["countyreal"]].to_numpy())
    if mode == "unbalanced":
        df = df.sample(frac=0.9, random_state=1)
    unit = None if mode == "rc" else "countyreal"
    p = build_panel(df, func="t", y="lemp", time="year", unit=unit, cohort="first.treat", covariates=[], weights="w",
                    require_control="none", check_duplicates=unit is not None)
    for control in ("never", "not_yet"):
        cs = prepare(p, func="t", control=control, anticipation=0, mode=mode, cluster=None)
        cells, _ = plan_cells(cs, control=control, base_period="varying", anticipation=0)
        sums = estimate_sums(cs, cells)
        K = sums.att.shape[0]
        for method in ("dr", "ipw", "reg"):
            cell = estimate_covariates(dataclasses.replace(cs, X=np.ones((cs.y.shape[0], 1))), cells, method)
            np.testing.assert_allclose(cell.att, sums.att, rtol=TOL_IDENTITY, atol=1e-13)
            np.testing.assert_allclose(np.diag(cell.store.vcov(np.eye(K))), np.diag(sums.store.vcov(np.eye(K))),
                                       rtol=TOL_IDENTITY)


def test_clustered_vcov_fine_and_mixed_clusters(mp: pd.DataFrame) -> None:
    import tracemalloc

    from didx.inference.if_store import IFStore

    # clusters of one unit for half the counties, states (spanning cohorts) for the others: psi_c by hand
    df = mp.copy()
    odd = df["countyreal"] % 2 == 1
    df["cl"] = np.where(odd, df["countyreal"] * 10, df["countyreal"] // 1000)
    res = fit(df, cluster="cl")
    psi = res.influence_functions()
    cl = df.drop_duplicates("countyreal").set_index("countyreal")["cl"].loc[psi.index].to_numpy()
    psi_c = psi.groupby(cl).sum().to_numpy()
    np.testing.assert_allclose(np.sqrt((psi_c**2).sum(axis=0)) / psi.shape[0], res.std_errors,
                               rtol=TOL_IDENTITY)
    # no dense clusters x cohorts x features array: one cluster per unit, 6 cohorts, 12 features
    n, G, L, K = 60_000, 6, 12, 20
    rng = np.random.default_rng(0)
    block = np.linspace(0, n, G + 1).astype(np.int64)
    store = IFStore(Z=rng.standard_normal((n, L)), block=block, coef=rng.standard_normal((G, L, K)), n=n,
                    cluster=rng.permutation(n), n_clusters=n)
    tracemalloc.start()
    V = store.vcov(np.eye(K), clustered=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.5 * n * G * L * 8
    np.testing.assert_allclose(V, store.vcov(np.eye(K), clustered=False), rtol=1e-9)


def test_clustered_bootstrap_pair_sums_equal_dense_cluster_sums() -> None:
    from didx.inference.multiplier import cluster_sums, pair_sums

    rng = np.random.default_rng(3)
    n, G, L, C = 3000, 4, 5, 700
    cohort = np.sort(rng.integers(0, G, n))
    cluster = rng.integers(0, C, n)  # clusters spanning cohorts, some cohorts absent from some clusters
    Z = rng.standard_normal((n, L))
    dense = np.zeros((C, G, L))
    np.add.at(dense, (cluster, cohort), Z)
    keys, inv = np.unique(cluster * G + cohort, return_inverse=True)
    zp = np.stack([np.bincount(inv, weights=Z[:, j]) for j in range(L)], axis=1)
    for kind in ("rademacher", "mammen"):
        a = cluster_sums(dense, 300, kind, np.random.default_rng(1))
        b = pair_sums(keys // G, keys % G, zp, C, G, 300, kind, np.random.default_rng(1))
        np.testing.assert_allclose(b, a, rtol=TOL_IDENTITY, atol=1e-10)


# ------------------------------------------------------------------------------------------------ covariance contract
AGG_KINDS = ("simple", "group", "dynamic", "calendar")


def _states(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["state"] = out["countyreal"] // 1000
    return out


def _assert_same_inference(a: didx.Result, b: didx.Result) -> None:
    """Same SEs for the result, its four aggregations and the pre-test (at 1e-10)."""
    np.testing.assert_allclose(a.std_errors, b.std_errors, rtol=TOL_IDENTITY)
    assert a.inference.cluster_names == b.inference.cluster_names
    assert a.inference.n_clusters == b.inference.n_clusters
    for kind in AGG_KINDS:
        np.testing.assert_allclose(a.aggregate(kind).std_errors, b.aggregate(kind).std_errors,  # type: ignore[attr-defined]
                                   rtol=TOL_IDENTITY)
    pa, pb = a.pretest, b.pretest  # type: ignore[attr-defined]
    assert (pa is None) == (pb is None)
    if pa is not None:
        assert pa.statistic == pytest.approx(pb.statistic, rel=TOL_IDENTITY)


@pytest.mark.parametrize("kw", [{}, {"covariates": ["lpop"]}, {"control_group": "not_yet", "base_period": "universal"},
                                {"n_bootstrap": 199, "seed": 3}])
def test_with_vcov_each_declared_option_equals_refit(mp: pd.DataFrame, kw: dict) -> None:  # type: ignore[type-arg]
    df = _states(mp)
    analytic = {k: v for k, v in kw.items() if k not in ("n_bootstrap", "seed")}
    plain, by_state = fit(df, **kw), fit(df, cluster="state", **kw)
    plain_a, by_state_a = fit(df, **analytic), fit(df, cluster="state", **analytic)
    # default (None): analytic, clustered as at fit time
    _assert_same_inference(plain.with_vcov(), plain_a)
    _assert_same_inference(by_state.with_vcov(), by_state_a)
    # 'analytic' without cluster=: by unit, whatever the fit's clustering
    _assert_same_inference(by_state.with_vcov("analytic"), plain_a)
    # cluster= the unit (captured), the fit's cluster (captured), a new column (values or data=)
    _assert_same_inference(by_state.with_vcov(cluster="countyreal"), plain_a)
    _assert_same_inference(plain.with_vcov(cluster="state", data=df), by_state_a)
    _assert_same_inference(plain.with_vcov("analytic", cluster=df["state"]), by_state_a)
    _assert_same_inference(plain.with_vcov(cluster="state", data=df).with_vcov(cluster="countyreal"), plain_a)
    # aggregations made before with_vcov switch the same way
    for kind in AGG_KINDS:
        np.testing.assert_allclose(plain.aggregate(kind).with_vcov(cluster=df["state"]).std_errors,
                                   by_state_a.aggregate(kind).std_errors, rtol=TOL_IDENTITY)


def test_with_vcov_new_cluster_with_dropped_rows_and_cross_sections(mp: pd.DataFrame) -> None:
    df = _states(mp)
    df.loc[df.index[::41], "lemp"] = np.nan  # rows dropped by the panel layer, units dropped by balancing
    new = fit(df).with_vcov(cluster="state", data=df)
    _assert_same_inference(new, fit(df, cluster="state"))
    _assert_same_inference(fit(df, allow_unbalanced=True).with_vcov(cluster=df["state"]),
                           fit(df, allow_unbalanced=True, cluster="state"))
    rc = df.drop(columns="countyreal")
    _assert_same_inference(fit(rc, unit=None, panel=False).with_vcov(cluster=rc["state"]),
                           fit(rc, unit=None, panel=False, cluster="state"))
    by_state = fit(rc, unit=None, panel=False, cluster="state")
    assert by_state.with_vcov("analytic").inference.cluster_names == ()
    _assert_same_inference(by_state.with_vcov("analytic"), fit(rc, unit=None, panel=False))


def test_with_vcov_refuses_undeclared_options_in_one_message(mp: pd.DataFrame) -> None:
    df = _states(mp)
    res = fit(df)
    assert res.capabilities is not None and res.capabilities.vcov == ("analytic",)
    for bad in ({"vcov": "HC1"}, {"ssc": didx.SSC()}, {"cluster": ["state", "year"]},
                {"vcov": "HC1", "ssc": didx.SSC()}):
        with pytest.raises(InvalidOptionError, match=r"does not support .*It supports: vcov= 'analytic'; cluster= "
                                                     r"up to 1 column \(any column\); ssc= not applicable.*Fix"):
            res.with_vcov(**bad, data=df)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"vcov='HC1', ssc="):
        res.with_vcov("HC1", ssc=didx.SSC())


def test_with_vcov_data_must_be_the_fitted_frame(mp: pd.DataFrame) -> None:
    df = _states(mp)
    res = fit(df)
    with pytest.raises(didx.DataError, match=r"data= for 'state' have 2499 rows.*had 2500"):
        res.with_vcov(cluster="state", data=df.iloc[1:])
    with pytest.raises(didx.DataError, match=r"not the frame that was fitted"):
        res.with_vcov(cluster="state", data=df.sample(frac=1.0, random_state=1))
    with pytest.raises(didx.DataError, match=r"values passed as cluster= for 'state' have 2499 rows"):
        res.with_vcov(cluster=df["state"].iloc[1:])
    agg = res.aggregate("dynamic")
    with pytest.raises(didx.DataError, match=r"not the frame that was fitted"):
        agg.with_vcov(cluster="state", data=df.sort_values("year"))


def test_cluster_must_nest_units_and_have_two_values(mp: pd.DataFrame) -> None:
    df = _states(mp)
    df["one"] = 1
    with pytest.raises(didx.DataError, match=r"'one' has 1 distinct value.*at least two clusters.*Fix"):
        fit(df, cluster="one")  # was accepted with an SE of 1.7e-10
    with pytest.raises(didx.DataError, match=r"'one' has 1 distinct value"):
        fit(df).with_vcov(cluster="one", data=df)
    df["rowwise"] = np.arange(len(df))
    with pytest.raises(didx.DataError, match=r"'rowwise' varies within units.*Fix"):
        fit(df).with_vcov(cluster=df["rowwise"])


def test_bootstrap_fit_after_with_vcov_is_analytic_with_pointwise_bands(mp: pd.DataFrame) -> None:
    df = _states(mp)
    boot = fit(df, n_bootstrap=199, seed=1, cluster="state")
    assert boot.inference.band.startswith("uniform") and boot.uniform_critical_value() > 1.96
    new = boot.with_vcov(cluster="countyreal")
    assert new.inference.band == "pointwise" and "analytic" in new.inference.vcov_type
    for kind in ("dynamic", "group"):
        agg = new.aggregate(kind)
        assert agg.inference.band == "pointwise"
        assert agg.uniform_critical_value() == pytest.approx(1.959963984540054)  # type: ignore[attr-defined]
    # the band of the bootstrap fit follows its current covariance: same draws, sup-t of draw / SE
    assert boot.aggregate("dynamic").uniform_critical_value() > 1.96  # type: ignore[attr-defined]


def test_pretest_follows_the_current_covariance(mp: pd.DataFrame) -> None:
    df = _states(mp)
    plain = fit(df)
    by_state = plain.with_vcov(cluster=df["state"])
    assert plain.pretest is not None and by_state.pretest is not None
    assert by_state.pretest.statistic == pytest.approx(fit(df, cluster="state").pretest.statistic,  # type: ignore[union-attr]
                                                       rel=TOL_IDENTITY)
    assert by_state.pretest.statistic != pytest.approx(plain.pretest.statistic, rel=1e-3)
    assert "Wald pre-test of pre-treatment ATT(g,t) = 0: chi2(" in str(by_state.summary())
    assert "pretest" not in plain.extras


def test_result_keeps_no_data_frame(mp: pd.DataFrame) -> None:
    import pickle

    res = fit(mp)
    data_size = len(pickle.dumps(mp))  # 121 kB
    # the influence-function store (units x (T + 2) features; with covariates units x (cells + 2)), the unit of
    # each row (for with_vcov), the cells: 53 kB / 89 kB. A multiplier bootstrap adds its B x cohorts x features
    # sums, independent of the number of units (224 kB for 999 draws here), so it is not part of this check.
    for r in (res, res.aggregate("dynamic"), fit(mp, covariates=["lpop"])):
        assert len(pickle.dumps(r)) < 0.8 * data_size, (len(pickle.dumps(r)), data_size)
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.std_errors, res.std_errors)
    np.testing.assert_allclose(back.with_vcov(cluster=mp["countyreal"] // 1000).std_errors,
                               res.with_vcov(cluster=mp["countyreal"] // 1000).std_errors, rtol=1e-15)


def test_influence_functions_one_shape_everywhere(mp: pd.DataFrame) -> None:
    res = fit(mp)
    for r in (res, *(res.aggregate(k) for k in AGG_KINDS), res.aggregate("dynamic").aggregate("post")):
        psi = r.influence_functions()
        assert psi.shape == (500, len(r.terms)) and list(psi.columns) == list(r.terms)
        assert psi.index.name == "countyreal"
        np.testing.assert_allclose(np.sqrt((psi.to_numpy() ** 2).sum(axis=0)) / 500, r.std_errors, rtol=1e-10)


def test_dynamic_is_an_event_study_of_the_contract(mp: pd.DataFrame) -> None:
    from didx.comparison import PRE_PERIOD

    for base in ("universal", "varying"):
        dyn = fit(mp, base_period=base).aggregate("dynamic")
        assert isinstance(dyn, EventStudyResult)
        assert dyn.pre_period_meaning == PRE_PERIOD[f"callaway_santanna_{base}"]
        assert dyn.cross_covariance is True
        assert dyn.n_post == 4 and dyn.n_pre == 3  # universal: e = -4, -3, -2 (e = -1 the reference)
        post = dyn.aggregate("post")
        i = dyn.terms.index("ATT (average e>=0)")
        assert post.estimate == pytest.approx(dyn.coef[i], rel=1e-12)
        assert post.std_error == pytest.approx(dyn.std_errors[i], rel=1e-10)
        pre = dyn.aggregate("pre")
        a = np.array([1.0 if t in dyn.pre_terms else 0.0 for t in dyn.terms]) / dyn.n_pre
        assert pre.std_error == pytest.approx(float(np.sqrt(a @ dyn.vcov_matrix @ a)), rel=1e-10)
        one = dyn.aggregate({0: 1.0})
        assert one.estimate == pytest.approx(dyn.coef[dyn.terms.index("e=0")], rel=1e-14)
    boot = fit(mp, n_bootstrap=199, seed=2).aggregate("dynamic")
    i = boot.terms.index("ATT (average e>=0)")
    assert boot.aggregate("post").std_error == pytest.approx(boot.std_errors[i], rel=1e-10)  # same draws


def test_from_panel_equals_att_gt(mp: pd.DataFrame) -> None:
    from didx._panel import build_panel
    from didx.estimators.cs.estimator import from_panel

    df = _states(mp)
    p = build_panel(df, func="att_gt", y="lemp", time="year", unit="countyreal", cohort="first.treat",
                    covariates=["lpop"], cluster="state", require_control="none")
    a = from_panel(p, control_group="not_yet", cluster="state")
    b = fit(df, control_group="not_yet", covariates=["lpop"], cluster="state")
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.std_errors, b.std_errors)
    assert a.design == b.design
    _assert_same_inference(a.with_vcov(cluster="countyreal"), b.with_vcov(cluster="countyreal"))
    with pytest.raises(InvalidOptionError, match=r"cluster='region' is not among the panel's cluster columns"):
        from_panel(p, cluster="region")


def test_error_cohort_between_periods(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["first.treat"] = df["first.treat"].astype(float)
    df.loc[df["first.treat"] == 2006, "first.treat"] = 2004.5
    # was accepted: an ATT(2004.5,2004) cell (pre-treatment, left out of the simple ATT) for a between-period date
    with pytest.raises(didx.DataError, match=r"'first.treat' has the value 2004.5, which is not one of the periods"):
        fit(df)


@pytest.mark.parametrize("col", ["countyreal", "year"])
def test_error_outcome_is_the_unit_or_time_column(mp: pd.DataFrame, col: str) -> None:
    # was accepted: an ATT of 0 with an SE of 1e-14
    with pytest.raises(InvalidOptionError, match=rf"'{col}' is given as both y= and .*=.*Fix"):
        fit(mp, y=col)
