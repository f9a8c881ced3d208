"""TWFE event study: fixest references, the pre-trend test, identities, invariances and errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import didx
from conftest import TOL_IDENTITY, TOL_POINT, load_reference
from didx.estimators.regression.common import RegressionResult
from didx.estimators.regression.event_study import EventStudyRegressionResult
from didx.results.event import EventStudyResult

REF = load_reference("fixest_event_study.json")
TOL_SE_CLUSTERED = 1e-6  # clustered SEs vs fixest (acceptance criterion; they agree to ~1e-12)
TOL_P = 1e-6  # p-values vs fixest (t distribution with G - 1 df)


@pytest.fixture(scope="module")
def base_stagg() -> pd.DataFrame:
    return didx.datasets.load("base_stagg")


@pytest.fixture(scope="module")
def base_did() -> pd.DataFrame:
    df = didx.datasets.load("base_did")
    df["cohort"] = np.where(df["treat"] == 1, 6, 0)
    return df


@pytest.fixture(scope="module")
def es_mpdta(mpdta: pd.DataFrame) -> EventStudyRegressionResult:
    return didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")


def _base_did_term(t: str) -> str:
    if t == "x1":
        return t
    period = int(t.split("::")[1].split(":")[0])
    return f"event_time::{period - 6}"


CASES: list[tuple[str, Callable[[str], str]]] = [
    ("base_stagg_twfe_es", lambda t: t.replace("time_to_treatment::", "event_time::")),
    ("mpdta_twfe_es", lambda t: t.replace("rel::", "event_time::")),
    ("base_did", _base_did_term),
]


def _fit_case(key: str, base_stagg: pd.DataFrame, base_did: pd.DataFrame, mpdta: pd.DataFrame) -> Any:
    if key == "base_stagg_twfe_es":
        return didx.event_study(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1")
    if key == "mpdta_twfe_es":
        return didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    return didx.event_study(base_did, y="y", unit="id", time="period", cohort="cohort", covariates="x1")


@pytest.mark.parametrize(("key", "rename"), CASES, ids=[c[0] for c in CASES])
def test_fixest_reference(key: str, rename: Callable[[str], str], base_stagg: pd.DataFrame,
                          base_did: pd.DataFrame, mpdta: pd.DataFrame) -> None:
    res = _fit_case(key, base_stagg, base_did, mpdta)
    coefs = REF[key]["coefs"]
    assert len(res.terms) == len(coefs)
    tidy = res.tidy().set_index("term")
    for c in coefs:
        row = tidy.loc[rename(c["term"])]
        assert row["estimate"] == pytest.approx(c["estimate"], rel=TOL_POINT)
        assert row["std_error"] == pytest.approx(c["se"], rel=TOL_SE_CLUSTERED)
        assert row["statistic"] == pytest.approx(c["t"], rel=TOL_SE_CLUSTERED)
        assert row["p_value"] == pytest.approx(c["p"], rel=TOL_P)
    if "nobs" in REF[key]:
        assert res.sample.n_obs == REF[key]["nobs"]


def test_result_types_and_term_info(es_mpdta: EventStudyRegressionResult) -> None:
    assert isinstance(es_mpdta, RegressionResult)
    assert isinstance(es_mpdta, EventStudyResult)
    assert es_mpdta.headline == "event_time::0"
    np.testing.assert_array_equal(es_mpdta.event_times, [-4, -3, -2, 0, 1, 2, 3])
    assert es_mpdta.reference_periods == (-1.0,)
    # number of treated observations at each event time: -4 only for the 2007 cohort (131 counties)
    n = dict(zip(es_mpdta.terms, es_mpdta.term_info["n"], strict=True))
    assert n["event_time::-4"] == 131
    hetero = es_mpdta.with_vcov("hetero")
    assert isinstance(hetero, EventStudyRegressionResult)
    np.testing.assert_array_equal(hetero.coef, es_mpdta.coef)
    assert hetero.inference.vcov_type.startswith("hetero")


def test_covariate_terms_have_nan_event_time(base_stagg: pd.DataFrame) -> None:
    res = didx.event_study(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1")
    et = dict(zip(res.terms, res.event_times, strict=True))
    assert np.isnan(et["x1"])
    assert "x1" not in res.pretrend_terms()
    assert "x1" not in set(res.event_table()["term"])


def test_pretrend_test_by_hand(es_mpdta: EventStudyRegressionResult) -> None:
    wt = es_mpdta.pretrend_test()
    leads = ["event_time::-4", "event_time::-3", "event_time::-2"]
    assert wt.terms == tuple(leads)
    idx = [es_mpdta.terms.index(t) for t in leads]
    b = es_mpdta.coef[idx]
    V = es_mpdta.vcov_matrix[np.ix_(idx, idx)]
    chi2 = float(b @ np.linalg.solve(V, b))
    G = 500
    assert wt.statistic == pytest.approx(chi2, rel=TOL_IDENTITY)
    assert wt.df == 3
    assert wt.p_value == pytest.approx(stats.chi2.sf(chi2, 3), rel=TOL_IDENTITY)
    assert wt.f_statistic == pytest.approx(chi2 / 3, rel=TOL_IDENTITY)
    assert wt.f_df == (3.0, G - 1.0)
    assert wt.f_p_value == pytest.approx(stats.f.sf(chi2 / 3, 3, G - 1), rel=TOL_IDENTITY)
    # wald() with a restriction matrix gives the same test
    R = np.zeros((3, len(es_mpdta.terms)))
    R[np.arange(3), idx] = 1.0
    assert es_mpdta.wald(R).statistic == pytest.approx(chi2, rel=TOL_IDENTITY)
    assert "Pre-trend test" in es_mpdta.summary()


def test_single_date_one_post_period_equals_2x2(base_did: pd.DataFrame) -> None:
    two = base_did[base_did["period"].isin([5, 6])].copy()
    two["post"] = (two["period"] == 6).astype(int)
    es = didx.event_study(two, y="y", unit="id", time="period", cohort="cohort")
    dd = didx.did2x2(two, y="y", treat="treat", post="post", unit="id")
    assert es.terms == ("event_time::0",)
    assert es.estimate == pytest.approx(dd.estimate, rel=TOL_IDENTITY)
    assert es.std_error == pytest.approx(dd.std_error, rel=TOL_IDENTITY)


def test_single_date_saturated_equals_cell_mean_dids(base_did: pd.DataFrame) -> None:
    """With every lead and lag dummied, b_k = (treated - control) mean gap at k minus the gap at ref."""
    res = didx.event_study(base_did, y="y", unit="id", time="period", cohort="cohort")
    means = base_did.groupby(["treat", "period"])["y"].mean().unstack()
    gap = means.loc[1] - means.loc[0]
    for term, k in zip(res.terms, res.event_times, strict=True):
        expected = gap[6 + k] - gap[5]
        assert res.params[term] == pytest.approx(expected, rel=TOL_IDENTITY)


@pytest.mark.parametrize("dataset", ["mpdta", "base_stagg"])
def test_ref_minus_two_rebases_ref_minus_one(dataset: str, mpdta: pd.DataFrame, base_stagg: pd.DataFrame) -> None:
    if dataset == "mpdta":
        kw: dict[str, Any] = {"data": mpdta, "y": "lemp", "unit": "countyreal", "time": "year",
                              "cohort": "first.treat"}
    else:
        kw = {"data": base_stagg, "y": "y", "unit": "id", "time": "year", "cohort": "year_treated",
              "covariates": "x1"}
    r1 = didx.event_study(**kw, ref=-1)
    r2 = didx.event_study(**kw, ref=-2)
    b1 = r1.params
    # c_k = b_k - b_{-2} for event-time terms, c_{-1} = -b_{-2}; covariates unchanged
    A = np.zeros((len(r2.terms), len(r1.terms)))
    for i, t in enumerate(r2.terms):
        if t == "event_time::-1":
            A[i, r1.terms.index("event_time::-2")] = -1.0
        elif t.startswith("event_time::"):
            A[i, r1.terms.index(t)] = 1.0
            A[i, r1.terms.index("event_time::-2")] = -1.0
        else:
            A[i, r1.terms.index(t)] = 1.0
    np.testing.assert_allclose(r2.coef, A @ b1.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r2.vcov_matrix, A @ r1.vcov_matrix @ A.T, rtol=1e-8, atol=1e-14)
    assert r2.reference_periods == (-2.0,)


def test_invariant_to_row_order_unit_labels_and_never_coding(base_stagg: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"y": "y", "unit": "id", "time": "year", "cohort": "year_treated", "covariates": "x1"}
    base = didx.event_study(base_stagg, **kw)
    shuffled = base_stagg.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["id"] = "u" + (shuffled["id"] * 7 + 11).astype(str)
    r = didx.event_study(shuffled, **kw)
    assert r.terms == base.terms
    np.testing.assert_allclose(r.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(r.std_errors, base.std_errors, rtol=1e-9)
    for code in (0, np.nan, np.inf):
        d = base_stagg.copy()
        d["year_treated"] = np.where(d["year_treated"] == 10000, code, d["year_treated"])
        rc = didx.event_study(d, **kw)
        np.testing.assert_allclose(rc.coef, base.coef, rtol=TOL_IDENTITY)


def test_always_treated_dropped_and_reported(base_stagg: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"y": "y", "unit": "id", "time": "year", "cohort": "year_treated"}
    base = didx.event_study(base_stagg, **kw)
    extra = base_stagg[base_stagg["id"].isin([1, 2])].copy()
    extra["id"] = extra["id"] + 10_000
    extra["year_treated"] = 1  # treated from the first period on
    extra["y"] = extra["y"] + 50.0
    res = didx.event_study(pd.concat([base_stagg, extra], ignore_index=True), **kw)
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    dropped = [d for d in res.sample.dropped if "always treated" in d.reason]
    assert len(dropped) == 1 and dropped[0].n_units == 2 and dropped[0].n_rows == len(extra)
    text = res.summary()
    assert "Always-treated units: 2 dropped" in text
    assert "always treated" in text


def test_reference_list_pins_two_periods(base_stagg: pd.DataFrame) -> None:
    res = didx.event_study(base_stagg, y="y", unit="id", time="year", cohort="year_treated", ref=[-1, -5])
    assert "event_time::-5" not in res.terms and "event_time::-1" not in res.terms
    assert res.reference_periods == (-5.0, -1.0)
    tab = res.event_table()
    ref_rows = tab[tab["term"].str.startswith("reference")]
    assert list(ref_rows["event_time"]) == [-5.0, -1.0]
    assert (ref_rows["estimate"] == 0).all()
    assert "k = -5, k = -1" in res.summary()


def test_no_never_treated_needs_two_references(base_stagg: pd.DataFrame) -> None:
    treated_only = base_stagg[base_stagg["year_treated"] < 10000]
    one = didx.event_study(treated_only, y="y", unit="id", time="year", cohort="year_treated")
    assert any("linear trend" in n for n in one.notes)
    assert any("Dropped for collinearity" in n for n in one.notes)
    two = didx.event_study(treated_only, y="y", unit="id", time="year", cohort="year_treated", ref=[-1, -9])
    assert not any("Dropped for collinearity" in n for n in two.notes)


def test_window_trims_treated_observations(base_stagg: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"y": "y", "unit": "id", "time": "year", "cohort": "year_treated"}
    res = didx.event_study(base_stagg, **kw, window=(-3, 2))
    np.testing.assert_array_equal(res.event_times, [-3, -2, 0, 1, 2])
    rel = base_stagg["time_to_treatment"]
    outside = (base_stagg["year_treated"] < 10000) & ((rel < -3) | (rel > 2))
    manual = didx.event_study(base_stagg[~outside], **kw)
    np.testing.assert_allclose(res.coef, manual.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, manual.std_errors, rtol=1e-9)
    assert res.sample.n_obs == int((~outside).sum())
    trimmed = [d for d in res.sample.dropped if "outside window" in d.reason]
    assert trimmed[0].n_rows == int(outside.sum())
    assert "treated-unit observations outside dropped" in res.summary()


def test_bin_endpoints_equals_manual_binned_regression(base_stagg: pd.DataFrame) -> None:
    res = didx.event_study(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1",
                           window=(-3, 2), bin_endpoints=True)
    assert res.sample.n_obs == len(base_stagg)
    d = base_stagg.copy()
    treated = d["year_treated"] < 10000
    k = d["time_to_treatment"].clip(-3, 2)
    names = []
    for v in (-3, -2, 0, 1, 2):
        col = f"k{v}"
        d[col] = (treated & (k == v)).astype(float)
        names.append(col)
    manual = didx.ols(d, y="y", x=[*names, "x1"], fe=["id", "year"], cluster="id")
    for v, col in zip((-3, -2, 0, 1, 2), names, strict=True):
        assert res.params[f"event_time::{v}"] == pytest.approx(manual.params[col], rel=1e-9)
    assert "end points binned" in res.summary()


def test_few_clusters_summary_names_remedies(base_did: pd.DataFrame) -> None:
    small = base_did[base_did["id"].isin(list(range(1, 11)) + list(range(60, 70)))]
    assert small["treat"].groupby(small["id"]).first().sum() > 0
    res = didx.event_study(small, y="y", unit="id", time="period", cohort="cohort")
    text = res.summary()
    assert "Few clusters (20" in text
    assert "wild_bootstrap" in text and "collapse='group_period'" in text


def test_summary_prints_design(es_mpdta: EventStudyRegressionResult) -> None:
    text = es_mpdta.summary()
    for needle in ("TWFE event study", "Reference period(s): k = -1", "Window: all observed event times",
                   "Endpoint binning: no", "Always-treated units: none", "CR1, clustered by countyreal",
                   "Intervals: pointwise", "Event time: k = year - first.treat"):
        assert needle in text, needle


def test_uniform_band_in_summary_and_tidy(es_mpdta: EventStudyRegressionResult) -> None:
    u = es_mpdta.with_uniform_bands(n_draws=20_000, seed=1)
    assert u.inference.band.startswith("uniform (sup-t)")
    assert "Intervals: uniform (sup-t)" in u.summary()
    pw = es_mpdta.tidy()
    ut = u.tidy()
    assert (ut["conf_high"] - ut["conf_low"] > pw["conf_high"] - pw["conf_low"]).all()
    np.testing.assert_array_equal(ut["estimate"], pw["estimate"])


def test_date_like_time_uses_period_positions(mpdta: pd.DataFrame) -> None:
    d = mpdta.copy()
    d["date"] = pd.to_datetime(d["year"].astype(str) + "-01-01")
    d["first_date"] = pd.to_datetime(
        np.where(d["first.treat"] > 0, d["first.treat"].astype(str) + "-01-01", None))
    a = didx.event_study(d, y="lemp", unit="countyreal", time="date", cohort="first_date")
    b = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert a.terms == b.terms
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_IDENTITY)


# ---- errors


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"ref": 0}, r"ref=0 is not a pre-treatment event time.*Fix: use ref=-1"),
    ({"ref": "a"}, r"ref must be a pre-treatment event time.*Got 'a'"),
    ({"ref": []}, r"ref must be an event time"),
    ({"ref": -7}, r"reference event time\(s\) -7 are never observed.*Fix: choose ref"),
    ({"window": (1, 3)}, r"window must be a pair \(lo, hi\).*lo < 0 <= hi"),
    ({"window": (-2, 2), "ref": -3}, r"reference period\(s\) \[-3.0\] lie outside window.*Fix"),
    ({"bin_endpoints": True}, r"bin_endpoints=True needs a window.*Fix: pass window="),
    ({"collapse": "group"}, r"'collapse' parameter of event_study must be one of.*Got 'group'"),
])
def test_errors(mpdta: pd.DataFrame, kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(didx.DidxError, match=pattern):
        didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat", **kwargs)


def test_missing_cohort_column_error(mpdta: pd.DataFrame) -> None:
    with pytest.raises(didx.ColumnNotFoundError, match=re.escape("'first_treat'")):
        didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first_treat")


def test_weights_equal_manual_weighted_regression(base_stagg: pd.DataFrame) -> None:
    d = base_stagg.copy()
    d["w"] = 1.0 + (d["id"] % 3)
    res = didx.event_study(d, y="y", unit="id", time="year", cohort="year_treated", weights="w")
    treated = d["year_treated"] < 10000
    names = []
    for k in res.event_times:
        col = f"k{int(k) + 20}"
        d[col] = (treated & (d["time_to_treatment"] == k)).astype(float)
        names.append(col)
    manual = didx.ols(d, y="y", x=names, fe=["id", "year"], cluster="id", weights="w")
    np.testing.assert_allclose(res.coef, manual.params[names].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(res.std_errors, manual.std_errors, rtol=1e-9)
    assert "Weights: w" in res.summary()


def test_error_only_always_treated_names_cohort_and_fix() -> None:
    df = pd.DataFrame({"id": np.repeat([1, 2, 3, 4], 3), "t": np.tile([1, 2, 3], 4),
                       "g": np.repeat([1, 1, 0, 0], 3), "y": np.arange(12.0)})
    with pytest.raises(didx.DesignError, match=r"every treated unit of 'g' \(2 units\).*first period 1.*Fix:"):
        didx.event_study(df, y="y", unit="id", time="t", cohort="g")


# ------------------------------------------------------------------ the TWFE module: from a panel
def test_from_panel_is_the_data_level_estimator(base_stagg: pd.DataFrame) -> None:
    """event_study(data) = from_panel(build_panel(data)): same numbers, sample report, with_vcov, and the result
    says what its leads are."""
    from didx._panel import build_panel
    from didx.estimators.regression import event_study as es_module
    from didx.registry import PRE_PERIOD

    d = base_stagg.assign(state=base_stagg["id"] // 3)
    kw: dict[str, Any] = {"window": (-5, 4), "ref": [-1, -5], "vcov": "CR1"}
    direct = es_module.event_study(d, y="y", unit="id", time="year", cohort="year_treated", covariates="x1",
                                   cluster="state", **kw)
    panel = build_panel(d, func="event_study", y="y", unit="id", time="year", cohort="year_treated",
                        covariates="x1", cluster=["state"], require_control="untreated_obs")
    res = es_module.from_panel(panel, **kw)
    assert res.terms == direct.terms and res.sample == direct.sample and res.design == direct.design
    np.testing.assert_array_equal(res.coef, direct.coef)
    np.testing.assert_array_equal(res.vcov_matrix, direct.vcov_matrix)
    np.testing.assert_allclose(res.with_vcov(cluster=d["x1"].round(1)).vcov_matrix,
                               direct.with_vcov(cluster=d["x1"].round(1)).vcov_matrix, rtol=TOL_IDENTITY)
    assert res.pre_period_meaning == PRE_PERIOD["twfe"] and res.cross_covariance
    with pytest.raises(didx.InvalidOptionError, match="window must be a pair"):
        es_module.from_panel(panel, window=(2, 3))


def test_subset_panel_keeps_rows_of_the_input_frame(mpdta: pd.DataFrame) -> None:
    from didx._panel import build_panel
    from didx.estimators.regression.event_study import subset_panel

    df = mpdta.sample(frac=1.0, random_state=2).reset_index(drop=True)
    panel = build_panel(df, func="t", y="lemp", unit="countyreal", time="year", cohort="first.treat")
    keep = (df["year"] >= 2005).to_numpy()
    sub = subset_panel(panel, keep, panel.report)
    np.testing.assert_array_equal(sub.row_index, np.flatnonzero(keep))
    np.testing.assert_array_equal(sub.y, df["lemp"].to_numpy()[keep])
    assert sub.n_periods == 3 and list(sub.period_labels) == [2005, 2006, 2007]
    np.testing.assert_array_equal(sub.unit_labels[sub.unit], df["countyreal"].to_numpy()[keep])
    assert sub.report.n_obs == int(keep.sum()) and sub.report.balanced


def test_aggregate_refuses_non_numeric_weights(es_mpdta: EventStudyRegressionResult) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"\{event_time: weight\} with numbers; got 'a'"):
        es_mpdta.aggregate({"a": 1.0})
    with pytest.raises(didx.InvalidOptionError, match="one number per post-period term"):
        es_mpdta.aggregate(["a"] * es_mpdta.n_post)
    assert es_mpdta.aggregate([1, 0, 0, 0]).coef[0] == es_mpdta.coef[es_mpdta._index(es_mpdta.post_terms[0])]
