"""Sun-Abraham: fixest references (base_stagg, mpdta), the cell-means path, identities, invariances, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, load_reference

REF = load_reference("fixest_sunab.json")
TOL_POINT = 1e-9      # point estimates vs fixest (observed agreement ~1e-11)
TOL_SE = 1e-9         # analytic SEs vs fixest (observed ~1e-12)
TOL_P = 1e-6          # p-values (t distribution tails)
TOL_PATH = 1e-10      # cell-means path vs the regression path


def _check(res: Any, rows: list[dict[str, Any]], *, p_values: bool = True) -> None:
    t = res.tidy().set_index("term")
    for r in rows:
        assert r["term"] in t.index, f"missing term {r['term']}"
        got = t.loc[r["term"]]
        assert got["estimate"] == pytest.approx(r["estimate"], rel=TOL_POINT), r["term"]
        assert got["std_error"] == pytest.approx(r["se"], rel=TOL_SE), r["term"]
        assert got["statistic"] == pytest.approx(r["t"], rel=TOL_SE), r["term"]
        if p_values:
            assert got["p_value"] == pytest.approx(r["p"], rel=TOL_P), r["term"]


@pytest.fixture(scope="module")
def base_stagg() -> pd.DataFrame:
    return didx.datasets.load("base_stagg")


@pytest.fixture(scope="module")
def sa_stagg(base_stagg: pd.DataFrame) -> Any:
    return didx.sun_abraham(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1")


# ---------------------------------------------------------------- fixest references
def test_base_stagg_period(sa_stagg: Any) -> None:
    _check(sa_stagg, REF["base_stagg"]["sunab_period_agg"])
    assert sa_stagg.sample.n_obs == REF["base_stagg"]["nobs"]
    assert dict(sa_stagg.design)["Computation"].startswith("cohort x period sums")  # balanced: no dummy matrix


@pytest.mark.parametrize("vcov", [None, "iid"])
def test_base_stagg_regression_engine(base_stagg: pd.DataFrame, vcov: str | None) -> None:
    res = didx.sun_abraham(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1",
                           vcov=vcov, engine="regression")
    _check(res, REF["base_stagg"]["sunab_period_agg" if vcov is None else "sunab_period_agg_iid"])
    assert dict(res.design)["Computation"].startswith("least squares")


def test_base_stagg_att_and_cohort(sa_stagg: Any) -> None:
    _check(sa_stagg.att, [r for r in REF["base_stagg"]["sunab_att"] if r["term"] == "ATT"])
    _check(sa_stagg.cohort, [r for r in REF["base_stagg"]["sunab_cohort_agg"] if r["term"] != "x1"])
    # the headline of the event study is the overall ATT
    att = next(r for r in REF["base_stagg"]["sunab_att"] if r["term"] == "ATT")
    assert sa_stagg.estimate == pytest.approx(att["estimate"], rel=TOL_POINT)
    assert sa_stagg.std_error == pytest.approx(att["se"], rel=TOL_SE)


def test_base_stagg_no_agg(sa_stagg: Any) -> None:
    coefs = sa_stagg.coefficients
    _check(coefs, REF["base_stagg"]["sunab_no_agg"])
    t = coefs.tidy().set_index("term")
    assert t.loc["year::-9:cohort::10", "group"] == 10 and t.loc["year::-9:cohort::10", "event_time"] == -9
    assert pd.isna(t.loc["x1", "event_time"])  # a nullable integer column (issue 12)
    assert len(coefs.terms) == len(REF["base_stagg"]["sunab_no_agg"])


def test_base_stagg_iid(base_stagg: pd.DataFrame) -> None:
    res = didx.sun_abraham(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1",
                           vcov="iid")
    _check(res, REF["base_stagg"]["sunab_period_agg_iid"])


def test_base_stagg_hetero(base_stagg: pd.DataFrame, sa_stagg: Any) -> None:
    rows = REF["base_stagg"]["sunab_att_hetero"]
    res = didx.sun_abraham(base_stagg, y="y", unit="id", time="year", cohort="year_treated", covariates="x1",
                           vcov="hetero")
    _check(res.att, [r for r in rows if r["term"] == "ATT"])
    _check(res, [r for r in rows if r["term"] == "x1"])
    # with_vcov gives the same without refitting, for the event study and its aggregations
    switched = sa_stagg.with_vcov("hetero")
    _check(switched.att, [r for r in rows if r["term"] == "ATT"])
    assert switched.att.with_vcov("hetero").std_error == pytest.approx(switched.att.std_error, rel=1e-13)


@pytest.mark.parametrize("engine", ["auto", "cells", "regression"])
def test_mpdta(mpdta: pd.DataFrame, engine: str) -> None:
    ref = REF["mpdta_sunab"]
    res = didx.sun_abraham(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat", engine=engine,
                           cluster="countyreal")
    _check(res, ref["period_agg"])
    _check(res.att, ref["att"])
    _check(res.coefficients, ref["no_agg"])


def test_mpdta_never_coded_10000_as_in_the_r_call(mpdta: pd.DataFrame) -> None:
    df = mpdta.assign(g_sa=np.where(mpdta["first.treat"] == 0, 10000, mpdta["first.treat"]))
    res = didx.sun_abraham(df, y="lemp", unit="countyreal", time="year", cohort="g_sa")
    _check(res.att, REF["mpdta_sunab"]["att"])


# ---------------------------------------------------------------- the cell-means path equals the regression
@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(400, 8, [3, 4, 6, 7], seed=3)
    df["state"] = df["unit"] % 13
    cohort_state = {0: 0, 3: 1, 4: 2, 6: 3, 7: 4}
    df["state_nested"] = df["cohort"].map(cohort_state) * 100 + df["unit"] % 7
    return df


@pytest.mark.parametrize(("vcov", "cluster"), [
    (None, None), ("iid", None), ("hetero", None), ("HC0", None), (None, "state"), (None, "state_nested"),
    ("CR0", "state"), (None, ["unit", "time"]), (None, ["state", "time"]), ("CR3", "state"), (None, "time"),
])
def test_cells_equal_regression(sim: pd.DataFrame, vcov: str | None, cluster: Any) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", vcov=vcov, cluster=cluster)
    a = didx.sun_abraham(sim, engine="cells", **kw)
    b = didx.sun_abraham(sim, engine="regression", **kw)
    assert a.terms == b.terms
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_PATH, atol=1e-12)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=TOL_PATH, atol=1e-15)
    np.testing.assert_allclose(a.coefficients.vcov_matrix, b.coefficients.vcov_matrix, rtol=TOL_PATH, atol=1e-15)
    assert a.inference.df == b.inference.df and a.inference.n_clusters == b.inference.n_clusters
    assert a.inference == b.inference  # same printed inference block (K, small-sample text, clusters)
    assert "cell means" in dict(a.design)["Computation"]


@pytest.mark.parametrize(("vcov", "cluster"), [
    (None, None), ("iid", None), ("hetero", None), (None, "state"), (None, "state_nested"), (None, ["unit", "time"]),
])
def test_cells_equal_regression_with_covariates(sim: pd.DataFrame, vcov: str | None, cluster: Any) -> None:
    """Covariates on a balanced panel: cohort x period sums and Wd'Wd instead of the dummy matrix; x1 is
    time-invariant, hence absorbed by the unit effects and dropped by both paths."""
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", covariates=["x2", "x1"],
                              vcov=vcov, cluster=cluster)
    a = didx.sun_abraham(sim, engine="cells", **kw)
    b = didx.sun_abraham(sim, engine="regression", **kw)
    assert a.terms == b.terms and "x2" in a.terms and "x1" not in a.terms
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_PATH, atol=1e-12)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=TOL_PATH, atol=1e-15)
    assert a.inference == b.inference
    assert "Dropped for collinearity: x1" in " ".join(a.notes)


def test_cells_equal_regression_with_two_reference_periods(sim: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", ref=[-1, -3])
    a = didx.sun_abraham(sim, engine="cells", **kw)
    b = didx.sun_abraham(sim, engine="regression", **kw)
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_PATH)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=TOL_PATH)
    assert -3.0 not in set(a.event_times) and a.reference_periods == (-1.0, -3.0)


def test_with_vcov_on_cells_equals_refit(sim: pd.DataFrame) -> None:
    base = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort")
    refit = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    switched = base.with_vcov(cluster="state", data=sim)
    np.testing.assert_allclose(switched.vcov_matrix, refit.vcov_matrix, rtol=1e-13)
    assert switched.cohort.std_error == pytest.approx(refit.cohort.std_error, rel=1e-13)
    assert switched.coefficients.inference.cluster_names == ("state",)


# ---------------------------------------------------------------- identities
def _cell_means(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby(["cohort", "time"])["y"].mean().unstack()


def test_post_coefficients_equal_cs_cell_mean_form(sim: pd.DataFrame) -> None:
    """b_{g,e} = (Ybar_{g,t} - Ybar_{g,g-1}) - (Ybar_{never,t} - Ybar_{never,g-1}): CS never-treated, no
    covariates, universal base period; the period aggregation weights them by cohort shares."""
    res = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort")
    m = _cell_means(sim)
    n = sim[sim["time"] == 1].groupby("cohort").size()
    coefs = res.coefficients.tidy()
    expected = {}
    for g in [3, 4, 6, 7]:
        for t in range(1, 9):
            if t == g - 1:
                continue
            expected[(g, t - g)] = (m.loc[g, t] - m.loc[g, g - 1]) - (m.loc[0, t] - m.loc[0, g - 1])
    assert len(coefs) == len(expected)
    for r in coefs.itertuples():
        assert r.estimate == pytest.approx(expected[(int(r.group), int(r.event_time))], rel=TOL_IDENTITY, abs=1e-12)
    tidy = res.tidy().set_index("event_time")
    for e in range(-6, 6):
        if e == -1:
            continue
        cs = [(g, expected[(g, e)]) for g in [3, 4, 6, 7] if (g, e) in expected]
        w = np.array([n[g] for g, _ in cs], dtype=float)
        agg = float(np.dot(w / w.sum(), [v for _, v in cs]))
        assert tidy.loc[float(e), "estimate"] == pytest.approx(agg, rel=TOL_IDENTITY, abs=1e-12)
    post = [(n[g], v) for (g, e), v in expected.items() if e >= 0]
    w = np.array([p[0] for p in post], dtype=float)
    assert res.estimate == pytest.approx(float(np.dot(w / w.sum(), [p[1] for p in post])), rel=TOL_IDENTITY)


def test_post_coefficients_equal_att_gt(sim: pd.DataFrame) -> None:
    res = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort")
    cs = didx.att_gt(sim, y="y", unit="unit", time="time", cohort="cohort", control_group="never",
                     base_period="universal")
    t = cs.tidy()
    coefs = res.coefficients.tidy()
    assert len(coefs) > 0
    for r in coefs.itertuples():
        row = t[(t["group"] == r.group) & (t["time"] == r.group + r.event_time)]
        assert len(row) == 1
        assert r.estimate == pytest.approx(float(row["estimate"].iloc[0]), rel=TOL_IDENTITY, abs=1e-12)


def test_last_treated_control_cell_mean_form(sim: pd.DataFrame) -> None:
    res = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort", control_group="last_treated")
    m = _cell_means(sim)
    for r in res.coefficients.tidy().itertuples():
        g, t = int(r.group), int(r.group + r.event_time)
        assert t < 7 and g != 7
        want = (m.loc[g, t] - m.loc[g, g - 1]) - (m.loc[7, t] - m.loc[7, g - 1])
        assert r.estimate == pytest.approx(want, rel=TOL_IDENTITY, abs=1e-12)
    reasons = " ".join(d.reason for d in res.sample.dropped)
    assert "never-treated" in reasons and "periods from 7" in reasons
    assert "last-treated cohort (7)" in dict(res.design)["Control group"]


# ---------------------------------------------------------------- invariances
def test_invariances(mpdta: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")
    base = didx.sun_abraham(mpdta, **kw)
    shuffled = mpdta.sample(frac=1.0, random_state=1)
    relabelled = mpdta.assign(countyreal=mpdta["countyreal"].astype(str) + "_x")
    nan_never = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, np.nan)})
    inf_never = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, np.inf)})
    for df in (shuffled, relabelled, nan_never, inf_never):
        other = didx.sun_abraham(df, **kw)
        assert other.terms == base.terms
        np.testing.assert_allclose(other.coef, base.coef, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(other.vcov_matrix, base.vcov_matrix, rtol=1e-10, atol=1e-16)


def test_constant_weights_do_not_change_estimates(mpdta: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")
    base = didx.sun_abraham(mpdta, **kw)
    w = didx.sun_abraham(mpdta.assign(w=2.0), weights="w", **kw)
    np.testing.assert_allclose(w.coef, base.coef, rtol=1e-10)
    assert dict(w.design)["Computation"].startswith("least squares")


def test_always_treated_dropped_and_reported(mpdta: pd.DataFrame) -> None:
    extra = mpdta[mpdta["countyreal"].isin(mpdta["countyreal"].unique()[:3])].copy()
    extra["countyreal"] += 100000
    extra["first.treat"] = 2003
    df = pd.concat([mpdta, extra], ignore_index=True)
    res = didx.sun_abraham(df, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    _check(res.att, REF["mpdta_sunab"]["att"])
    drop = [d for d in res.sample.dropped if "always-treated" in d.reason]
    assert len(drop) == 1 and drop[0].n_rows == 15 and drop[0].n_units == 3
    assert "always-treated" in str(res.summary())


def test_event_study_interface(sa_stagg: Any) -> None:
    table = sa_stagg.event_table()
    assert -1.0 in set(table["event_time"]) and sa_stagg.reference_periods == (-1.0,)
    assert len(sa_stagg.pretrend_terms()) == 8
    assert sa_stagg.pretrend_test().df == 8
    text = str(sa_stagg.summary())
    for word in ("Control group: never treated", "Reference period(s): -1", "clustered by id", "Aggregation"):
        assert word in text
    assert isinstance(sa_stagg, didx.EventStudyResult)


# ---------------------------------------------------------------- errors
def test_errors(mpdta: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(didx.InvalidOptionError, match=r"'control_group'.*'never'.*'last_treated'.*'nevr'"):
        didx.sun_abraham(mpdta, control_group="nevr", **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"'ref'.*e\.g\. -1"):
        didx.sun_abraham(mpdta, ref="first", **kw)  # type: ignore[arg-type]
    with pytest.raises(didx.InvalidOptionError, match=r"engine='cells' needs a panel without weights.*engine='auto'"):
        didx.sun_abraham(mpdta.assign(w=1.0), engine="cells", weights="w", **kw)
    with pytest.raises(didx.ColumnNotFoundError, match=r"'first_treat'.*Did you mean 'first.treat'"):
        didx.sun_abraham(mpdta, y="lemp", unit="countyreal", time="year", cohort="first_treat")
    odd = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(2006, 2005.5)})
    with pytest.raises(didx.DataError, match=r"'first.treat'.*2005.5.*not one of the periods of 'year'.*Fix"):
        didx.sun_abraham(odd, **kw)
    treated_only = mpdta[mpdta["first.treat"] > 0]
    with pytest.raises(didx.DesignError, match=r"control.*never-treated.*Fix"):
        didx.sun_abraham(treated_only, **kw)
    one_cohort = mpdta[mpdta["first.treat"].isin([0, 2006])]
    with pytest.raises(didx.DesignError, match=r"last_treated.*at least two treated cohorts.*Fix"):
        didx.sun_abraham(one_cohort, control_group="last_treated", **kw)


def test_last_treated_without_never_treated(mpdta: pd.DataFrame) -> None:
    treated_only = mpdta[mpdta["first.treat"] > 0]
    res = didx.sun_abraham(treated_only, y="lemp", unit="countyreal", time="year", cohort="first.treat",
                           control_group="last_treated")
    assert res.sample.n_obs == int((treated_only["year"] < 2007).sum())
    assert set(res.coefficients.tidy()["group"]) == {2004.0, 2006.0}


def test_single_cohort_equals_twfe_event_study(sim: pd.DataFrame) -> None:
    """With one treated cohort the saturated regression is the TWFE event study (same dummies)."""
    one = sim[sim["cohort"].isin([0, 4])]
    res = didx.sun_abraham(one, y="y", unit="unit", time="time", cohort="cohort")
    es = didx.event_study(one, y="y", unit="unit", time="time", cohort="cohort")
    coefs = res.coefficients
    np.testing.assert_allclose(coefs.coef, es.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(coefs.vcov_matrix, es.vcov_matrix, rtol=1e-9)
    np.testing.assert_allclose(coefs.tidy()["event_time"], es.tidy()["event_time"])


def test_weighted_shares_use_sums_of_weights(mpdta: pd.DataFrame) -> None:
    """fixest aggregate(): shares are column sums of weights x sign(model matrix), i.e. weighted cell sizes."""
    w = 1.0 + (mpdta["countyreal"] % 5)
    res = didx.sun_abraham(mpdta.assign(w=w), y="lemp", unit="countyreal", time="year", cohort="first.treat",
                           weights="w")
    raw = res.coefficients.tidy()
    df = mpdta.assign(w=w, e=mpdta["year"] - mpdta["first.treat"])
    size = df[df["first.treat"] > 0].groupby(["first.treat", "e"])["w"].sum()
    raw["size"] = [size[(g, e)] for g, e in zip(raw["group"], raw["event_time"], strict=True)]
    t = res.tidy().set_index("term")
    for e, grp in raw.groupby("event_time"):
        want = float(np.dot(grp["size"] / grp["size"].sum(), grp["estimate"]))
        assert t.loc[f"year::{int(e)}", "estimate"] == pytest.approx(want, rel=TOL_IDENTITY)
    post = raw[raw["event_time"] >= 0]
    assert res.estimate == pytest.approx(float(np.dot(post["size"] / post["size"].sum(), post["estimate"])),
                                         rel=TOL_IDENTITY)


def test_results_pickle(mpdta: pd.DataFrame) -> None:
    import pickle

    res = didx.sun_abraham(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.coef, res.coef)
    np.testing.assert_allclose(back.with_vcov("CR3", cluster="countyreal").vcov_matrix,
                               res.with_vcov("CR3", cluster="countyreal").vcov_matrix, rtol=1e-14)
    st = didx.stacked(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat", window=(-1, 1))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(st)).coef, st.coef)


@pytest.mark.parametrize("kw", [
    {"control_group": "last_treated"},
    {"ssc": didx.SSC(adj=False, cluster_adj=False)},
    {"ssc": didx.SSC(fixef_k="full")},
    {"ssc": didx.SSC(fixef_k="none"), "vcov": "iid"},
    {"ssc": didx.SSC(cluster_df="conventional"), "cluster": ["state", "time"]},
])
def test_cells_equal_regression_options(sim: pd.DataFrame, kw: dict[str, Any]) -> None:
    args: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", **kw)
    a = didx.sun_abraham(sim, engine="cells", **args)
    b = didx.sun_abraham(sim, engine="regression", **args)
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_PATH, atol=1e-12)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=TOL_PATH, atol=1e-15)
    assert a.inference.df == b.inference.df


@pytest.mark.parametrize(("vcov", "cluster"), [
    (None, None), ("iid", None), ("hetero", None), (None, "state"), (None, ["unit", "time"]), (None, "time"),
    ("CR3", "state"),
])
def test_cells_equal_regression_unbalanced(sim: pd.DataFrame, vcov: str | None, cluster: Any) -> None:
    """Unbalanced panel (gaps, and units seen once): units grouped by cohort and observed periods."""
    unbalanced = sim.sample(frac=0.85, random_state=2)
    single = sim[sim["unit"].isin([5, 6]) & (sim["time"] == 4)]
    unbalanced = pd.concat([unbalanced[~unbalanced["unit"].isin([5, 6])], single])
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", vcov=vcov, cluster=cluster)
    a = didx.sun_abraham(unbalanced, engine="cells", **kw)
    b = didx.sun_abraham(unbalanced, engine="regression", **kw)
    assert a.terms == b.terms and a.sample.n_obs == b.sample.n_obs == len(unbalanced)
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_PATH, atol=1e-12)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=TOL_PATH, atol=1e-15)
    assert a.inference == b.inference
    assert "unbalanced" in dict(a.design)["Computation"]


def test_wild_bootstrap_on_cell_path_uses_the_rows(sim: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    a = didx.sun_abraham(sim, engine="cells", **kw).coefficients
    b = didx.sun_abraham(sim, engine="regression", **kw).coefficients
    term = "time::0:cohort::4"
    wa = a.wild_bootstrap(term, n_bootstrap=499, seed=3)
    wb = b.wild_bootstrap(term, n_bootstrap=499, seed=3)
    assert wa.p_value == pytest.approx(wb.p_value, rel=1e-12)
    assert wa.statistic == pytest.approx(wb.statistic, rel=1e-9)


def test_stored_arrays_are_read_only(mpdta: pd.DataFrame) -> None:
    # the aggregations (.att, .cohort) are computed from extras: writing into them must be impossible
    res = didx.sun_abraham(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    att = res.att.estimate
    for name in ("raw_coef", "raw_vcov"):
        with pytest.raises(ValueError, match="read-only"):
            res.extras[name][...] = 0.0
    for kind in ("main", "period", "att", "cohort"):
        with pytest.raises(ValueError, match="read-only"):
            res.extras["aggregations"][kind].matrix[...] = 0.0
    with pytest.raises(TypeError):
        res.extras["cell_size"]["x"] = 1.0  # type: ignore[index]
    assert res.att.estimate == att
    with pytest.raises(ValueError, match="read-only"):
        res.with_vcov("hetero").extras["raw_vcov"][...] = 0.0


# ---------------------------------------------------------------- wild bootstrap of the aggregated terms
def _single_cohort(sim: pd.DataFrame) -> pd.DataFrame:
    return sim[sim["cohort"].isin([0, 4])]


@pytest.mark.parametrize("engine", ["cells", "regression"])
def test_wild_bootstrap_equals_twfe_event_study_on_one_cohort(sim: pd.DataFrame, engine: str) -> None:
    """One treated cohort: each relative-period term is the event study's coefficient, and the overall ATT the
    (size-weighted, here equal) mean of the post coefficients, so the bootstraps are the same test, draw by draw."""
    one = _single_cohort(sim)
    res = didx.sun_abraham(one, y="y", unit="unit", time="time", cohort="cohort", cluster="state", engine=engine)
    es = didx.event_study(one, y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    kw: dict[str, Any] = dict(n_bootstrap=999, seed=11)
    a, b = res.wild_bootstrap("time::2", **kw), es.wild_bootstrap("event_time::2", **kw)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12) and a.n_bootstrap == b.n_bootstrap
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    np.testing.assert_allclose(a.conf_int, b.conf_int, rtol=1e-8)
    assert a.hypothesis == "time::2 = 0"
    post = [t for t, e in zip(es.terms, es.event_times, strict=True) if e >= 0]
    R = np.array([[1.0 / len(post) if t in post else 0.0 for t in es.terms]])
    a, b = res.wild_bootstrap("ATT", **kw), es.wild_bootstrap(R, **kw)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12)
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    assert a.estimate == pytest.approx(res.estimate, rel=1e-12) and a.hypothesis == "ATT = 0"
    # a joint hypothesis over several terms
    joint = res.wild_bootstrap(["time::-2", "time::-3"], **kw)
    assert joint.p_value == pytest.approx(es.wild_bootstrap(["event_time::-2", "event_time::-3"], **kw).p_value,
                                          abs=1e-12)


def test_wild_bootstrap_reproducible_and_cells_equal_regression(sim: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    a = didx.sun_abraham(sim, engine="cells", **kw)
    b = didx.sun_abraham(sim, engine="regression", **kw)
    first = a.wild_bootstrap("ATT", n_bootstrap=499, seed=5)
    again = a.wild_bootstrap("ATT", n_bootstrap=499, seed=5)
    assert first.p_value == again.p_value and first.conf_int == again.conf_int
    np.testing.assert_array_equal(first.bootstrap_statistics, again.bootstrap_statistics)
    other = b.wild_bootstrap("ATT", n_bootstrap=499, seed=5)
    assert other.p_value == pytest.approx(first.p_value, abs=1e-12)
    assert other.statistic == pytest.approx(first.statistic, rel=1e-9)
    with pytest.raises(didx.InvalidOptionError, match=r"'ATT2' is not a coefficient.*Did you mean 'ATT'"):
        a.wild_bootstrap("ATT2", n_bootstrap=99, seed=1)


# ---------------------------------------------------------------- aggregation in one idiom
def test_aggregate_kinds_are_linear_maps_with_their_covariance(sim: pd.DataFrame) -> None:
    res = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort")
    raw = res.coefficients
    for kind, shortcut in (("att", res.att), ("cohort", res.cohort)):
        agg = res.aggregate(kind)
        np.testing.assert_array_equal(agg.coef, shortcut.coef)
        np.testing.assert_array_equal(agg.vcov_matrix, shortcut.vcov_matrix)
    period = res.aggregate("period")
    events = [t for t in res.terms if t.startswith("time::")]
    assert period.terms == tuple(events)
    np.testing.assert_allclose(period.coef, res.coef[: len(events)], rtol=1e-12)
    np.testing.assert_allclose(period.vcov_matrix, res.vcov_matrix[: len(events), : len(events)], rtol=1e-12)
    # generic event-study kinds: a = weights over the event-time terms, then A V A' over the raw coefficients
    et = res.event_times
    post = (et >= 0) & np.isfinite(et)
    for kind, mask in (("post", post), ("pre", (et < 0) & np.isfinite(et))):
        a = np.where(mask, 1.0 / mask.sum(), 0.0)
        agg = res.aggregate(kind)
        assert agg.estimate == pytest.approx(float(a @ res.coef), rel=1e-12)
        assert agg.std_error == pytest.approx(float(np.sqrt(a @ res.vcov_matrix @ a)), rel=1e-10)
    mapped = res.aggregate({0: 0.5, 1: 0.5})
    assert mapped.estimate == pytest.approx(0.5 * (res.coef[res.terms.index("time::0")]
                                                   + res.coef[res.terms.index("time::1")]), rel=1e-12)
    vec = res.aggregate(np.ones(int(post.sum())) / post.sum())
    assert vec.estimate == pytest.approx(res.aggregate("post").estimate, rel=1e-12)
    assert raw.vcov_matrix.shape[0] == len(raw.terms)
    with pytest.raises(didx.InvalidOptionError, match=r"kind='simple'.*'att'.*'cohort'.*'period'.*'post'"):
        res.aggregate("simple")


def test_aggregate_with_vcov_equals_refit(sim: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort")
    base = didx.sun_abraham(sim, **kw)
    refit = didx.sun_abraham(sim, cluster="state", **kw)
    for kind in ("att", "cohort", "period", "post", "pre"):
        switched = base.aggregate(kind).with_vcov(cluster="state", data=sim)
        want = refit.aggregate(kind)
        np.testing.assert_allclose(switched.vcov_matrix, want.vcov_matrix, rtol=1e-12)
        assert switched.inference.cluster_names == ("state",)
    # after with_vcov on the event study, aggregates use its covariance
    np.testing.assert_allclose(base.with_vcov(cluster="state", data=sim).aggregate("post").vcov_matrix,
                               refit.aggregate("post").vcov_matrix, rtol=1e-12)
    assert base.aggregate("att").with_vcov("CR3", cluster="unit").std_error > 0


def test_event_study_contract_fields(sim: pd.DataFrame) -> None:
    from didx.comparison import PRE_PERIOD

    res = didx.sun_abraham(sim, y="y", unit="unit", time="time", cohort="cohort")
    assert res.pre_period_meaning == PRE_PERIOD["sun_abraham"] and res.cross_covariance is True
    assert res.n_post == 6 and res.n_pre == 5


# ---------------------------------------------------------------- the panel entry
def test_from_panel_equals_the_frame_entry(sim: pd.DataFrame) -> None:
    from didx._panel import build_panel
    from didx.estimators.sun_abraham.estimator import from_panel

    kw: dict[str, Any] = dict(y="y", unit="unit", time="time", cohort="cohort", covariates="x2", cluster="state")
    panel = build_panel(sim, func="sun_abraham", require_control="never", **kw)
    a = from_panel(panel, cluster="state", ref=[-1, -3])
    b = didx.sun_abraham(sim, ref=[-1, -3], **kw)
    assert a.terms == b.terms
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.vcov_matrix, b.vcov_matrix)
    assert a.sample == b.sample and a.design == b.design
    with pytest.raises(didx.InvalidOptionError, match=r"cluster column 'region' is not in the panel.*cluster='region'"):
        from_panel(panel, cluster="region")
    no_cohort = build_panel(sim, func="sun_abraham", y="y", unit="unit", time="time", treat="d")
    with pytest.raises(didx.InvalidOptionError, match=r"no cohort column.*cohort="):
        from_panel(no_cohort)


# ---------------------------------------------------------------- size of a result
def test_pickled_result_is_smaller_than_the_data(mpdta: pd.DataFrame) -> None:
    """The result keeps scores and cluster codes, not the data (the row-level fit for CR3 and the wild bootstrap
    is rebuilt from the cells on demand and not pickled)."""
    import pickle

    df = didx.datasets.load("mpdta")
    data_size = len(pickle.dumps(df))
    res = didx.sun_abraham(df, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    size = len(pickle.dumps(res))
    assert size < data_size, (size, data_size)
    res.with_vcov("CR3", cluster="countyreal")  # builds and caches the row-level fit
    assert len(pickle.dumps(res)) == size


# ---------------------------------------------------------------- issue 10
def test_ref_must_be_an_observed_negative_relative_period(mpdta: pd.DataFrame) -> None:
    """fixest accepts any ref.p: one outside the data removes no dummy, and the collinear saturated model then
    drops an arbitrary cell (ATT +0.0315 instead of -0.0400 on mpdta). Here it is an error."""
    kw: dict[str, Any] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(didx.InvalidOptionError, match=r"ref=100 is not a pre-treatment relative period"):
        didx.sun_abraham(mpdta, ref=100, **kw)
    with pytest.raises(didx.DesignError, match=r"ref=-100 are not relative periods.*observed: -4, -3.*Fix"):
        didx.sun_abraham(mpdta, ref=-100, **kw)
    with pytest.raises(didx.DesignError, match=r"ref=-7 are not relative periods"):
        didx.sun_abraham(mpdta, ref=[-1, -7], **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"ref=1 is not a pre-treatment relative period.*Fix: use ref=-1"):
        didx.sun_abraham(mpdta, ref=1, **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"ref=0 is not a pre-treatment"):
        didx.sun_abraham(mpdta, ref=[-1, 0], **kw)
    assert didx.sun_abraham(mpdta, ref=-4, **kw).reference_periods == (-4.0,)


def test_zero_weight_rows_are_dropped_and_counted(mpdta: pd.DataFrame) -> None:
    """Zero-weight rows do not enter the fit (lm / fixest): the same n, K, clusters and SEs as without them."""
    kw: dict[str, Any] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat", weights="w")
    w = np.where(mpdta["countyreal"] % 7 == 0, 0.0, 1.0 + (mpdta["countyreal"] % 3))
    df = mpdta.assign(w=w)
    res = didx.sun_abraham(df, **kw)
    dropped = df[df["w"] > 0].reset_index(drop=True)
    want = didx.sun_abraham(dropped, **kw)
    n_zero = int((w == 0).sum())
    assert res.sample.n_obs == len(df) - n_zero == want.sample.n_obs
    drop = [d for d in res.sample.dropped if "zero weight" in d.reason]
    assert len(drop) == 1 and drop[0].n_rows == n_zero and drop[0].n_units == n_zero // 5
    np.testing.assert_allclose(res.coef, want.coef, rtol=1e-12)
    np.testing.assert_allclose(res.vcov_matrix, want.vcov_matrix, rtol=1e-12)
    assert res.inference.n_clusters == want.inference.n_clusters
    # a panel built without dropping them: from_panel drops and counts them too
    from didx._panel import build_panel
    from didx.estimators.sun_abraham.estimator import from_panel

    panel = build_panel(df, func="sun_abraham", y="lemp", unit="countyreal", time="year", cohort="first.treat",
                        weights="w")
    again = from_panel(panel)
    np.testing.assert_allclose(again.vcov_matrix, want.vcov_matrix, rtol=1e-12)
    assert [d.n_rows for d in again.sample.dropped if "zero weight" in d.reason] == [n_zero]


@pytest.mark.parametrize("engine", ["cells", "regression"])
def test_a_single_cluster_is_a_data_error(mpdta: pd.DataFrame, engine: str) -> None:
    df = mpdta.assign(one=1)
    kw: dict[str, Any] = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat", engine=engine)
    with pytest.raises(didx.DataError, match=r"cluster variable 'one' has 1 distinct value.*Fix"):
        didx.sun_abraham(df, cluster="one", **kw)
    res = didx.sun_abraham(df, **kw)
    for call in (lambda: res.with_vcov(cluster="one", data=df), lambda: res.att.with_vcov(cluster=df["one"]),
                 lambda: res.with_vcov("CR3", cluster="one", data=df)):
        with pytest.raises(didx.DataError, match=r"'one' has 1 distinct value"):
            call()
