"""TWFE: fixest references on mpdta and base_did, identities and invariances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, TOL_POINT, TOL_SE, load_reference

REF = load_reference("fixest_twfe.json")


@pytest.mark.parametrize(("key", "vcov", "cluster", "ssc"), [
    ("cluster_countyreal", None, None, None),
    ("iid", "iid", None, None),
    ("hetero", "hetero", None, None),
    ("twoway", None, ["countyreal", "year"], None),
    ("cluster_countyreal_ssc_none", None, None, didx.SSC(adj=False, cluster_adj=False)),
])
def test_mpdta_twfe(mpdta: pd.DataFrame, key: str, vcov: str | None, cluster: list[str] | None,
                    ssc: didx.SSC | None) -> None:
    ref = REF["mpdta_twfe"][key][0]
    res = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post", vcov=vcov,
                    cluster=cluster, ssc=ssc)
    assert res.estimate == pytest.approx(ref["estimate"], rel=TOL_POINT)
    assert res.std_error == pytest.approx(ref["se"], rel=TOL_SE)
    row = res.tidy().iloc[0]
    assert row["statistic"] == pytest.approx(ref["t"], rel=TOL_SE)
    assert row["p_value"] == pytest.approx(ref["p"], rel=1e-6)


def test_with_vcov_equals_refit(mpdta: pd.DataFrame) -> None:
    base = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post")
    refit = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post", vcov="iid")
    switched = base.with_vcov("iid")
    assert switched.std_error == pytest.approx(refit.std_error, rel=1e-14)
    assert base.std_error == pytest.approx(REF["mpdta_twfe"]["cluster_countyreal"][0]["se"], rel=TOL_SE)
    assert switched is not base and base.inference.cluster_names == ("countyreal",)


def test_base_did_through_ols() -> None:
    """The regression engine on fixest's base_did: y ~ x1 + i(period, treat, 5) | id + period."""
    df = didx.datasets.load("base_did")
    names = []
    for p in range(1, 11):
        if p == 5:
            continue
        col = f"period::{p}:treat"
        df[col] = ((df["period"] == p) & (df["treat"] == 1)).astype(float)
        names.append(col)
    res = didx.ols(df, y="y", x=["x1", *names], fe=["id", "period"], cluster="id")
    for row in REF["base_did"]["coefs"]:
        i = res.terms.index(row["term"])
        assert res.coef[i] == pytest.approx(row["estimate"], rel=TOL_POINT)
        assert res.std_errors[i] == pytest.approx(row["se"], rel=TOL_SE)


def test_cohort_and_treat_codings_agree(mpdta: pd.DataFrame) -> None:
    a = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post")
    b = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert b.estimate == pytest.approx(a.estimate, rel=TOL_IDENTITY)
    assert b.std_error == pytest.approx(a.std_error, rel=TOL_IDENTITY)


@pytest.mark.parametrize("never", [0, np.nan, np.inf, 9999])
def test_never_treated_coding_invariance(mpdta: pd.DataFrame, never: float) -> None:
    df = mpdta.copy()
    df["g"] = df["first.treat"].astype(float).where(df["first.treat"] > 0, never)
    res = didx.twfe(df, y="lemp", unit="countyreal", time="year", cohort="g")
    assert res.estimate == pytest.approx(REF["mpdta_twfe"]["iid"][0]["estimate"], rel=TOL_IDENTITY)


def test_row_order_and_unit_labels(mpdta: pd.DataFrame) -> None:
    base = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post")
    shuffled = mpdta.sample(frac=1.0, random_state=7)
    shuffled["countyreal"] = "county-" + (shuffled["countyreal"] * 7 + 3).astype(str)
    res = didx.twfe(shuffled, y="lemp", unit="countyreal", time="year", treat="treat_post")
    assert res.estimate == pytest.approx(base.estimate, rel=TOL_IDENTITY)
    assert res.std_error == pytest.approx(base.std_error, rel=TOL_IDENTITY)


def test_two_periods_equals_2x2(mpdta: pd.DataFrame) -> None:
    """TWFE on two periods with one treated cohort is the 2x2 with unit effects (and the pooled 2x2)."""
    df = mpdta[mpdta["year"].isin([2005, 2006]) & mpdta["first.treat"].isin([0, 2006])].copy()
    df["G"] = (df["first.treat"] == 2006).astype(int)
    df["P"] = (df["year"] == 2006).astype(int)
    tw = didx.twfe(df, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    fe = didx.did2x2(df, y="lemp", treat="G", post="P", unit="countyreal")
    pooled = didx.did2x2(df, y="lemp", treat="G", post="P")
    assert tw.estimate == pytest.approx(pooled.estimate, rel=TOL_IDENTITY)
    assert tw.estimate == pytest.approx(fe.estimate, rel=TOL_IDENTITY)
    assert tw.std_error == pytest.approx(fe.std_error, rel=1e-9)


def test_unbalanced_exact_absorption_matches_dummies() -> None:
    """Unbalanced panel: the concentrated solve equals OLS with explicit dummies (small problem)."""
    rng = np.random.default_rng(11)
    df = didx.datasets.simulate_staggered(60, 8, 3, seed=1)
    df = df.drop(index=rng.choice(len(df), 90, replace=False)).reset_index(drop=True)
    w = rng.uniform(0.5, 2.0, len(df))
    df["w"] = w
    res = didx.twfe(df, y="y", unit="unit", time="time", treat="d", covariates="x2", weights="w")
    U = pd.get_dummies(df["unit"]).to_numpy(float)
    T = pd.get_dummies(df["time"]).to_numpy(float)[:, 1:]
    X = np.column_stack([df["d"], df["x2"], U, T])
    sw = np.sqrt(w)
    b = np.linalg.lstsq(X * sw[:, None], df["y"].to_numpy() * sw, rcond=None)[0]
    assert res.coef[0] == pytest.approx(b[0], rel=1e-10)
    assert res.coef[1] == pytest.approx(b[1], rel=1e-10)
    assert res.sample.balanced is False


def test_extra_fixed_effects_use_projections_and_match_dummies() -> None:
    df = didx.datasets.simulate_staggered(40, 6, 2, seed=2)
    df["region"] = df["unit"] % 5 * 10 + df["time"] % 2  # varies within unit
    res = didx.twfe(df, y="y", unit="unit", time="time", treat="d", fe="region")
    U = pd.get_dummies(df["unit"]).to_numpy(float)
    T = pd.get_dummies(df["time"]).to_numpy(float)[:, 1:]
    R = pd.get_dummies(df["region"]).to_numpy(float)[:, 1:]
    X = np.column_stack([df["d"], U, T, R])
    b = np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0]
    assert res.estimate == pytest.approx(b[0], rel=1e-9)
    assert "alternating projections" in str(res.summary())


def test_singletons_reported_and_dropped() -> None:
    df = didx.datasets.simulate_staggered(30, 5, 2, seed=4)
    extra = pd.DataFrame({"unit": [999], "time": [3], "cohort": [0], "y": [1.0], "d": [0], "x1": [0.0],
                          "x2": [0.0], "tau": [0.0]})
    df = pd.concat([df, extra], ignore_index=True)
    kept = didx.twfe(df, y="y", unit="unit", time="time", treat="d")
    assert "1 singleton" in str(kept.summary())
    dropped = didx.twfe(df, y="y", unit="unit", time="time", treat="d", drop_singletons=True)
    assert dropped.sample.n_obs == len(df) - 1
    assert dropped.estimate == pytest.approx(kept.estimate, rel=1e-10)  # singletons do not move the estimate


def test_zero_weights_dropped_and_counted_as_fixest() -> None:
    """fixest and lm drop 0-weight observations: n, K and the clusters count only rows that enter the fit."""
    df = didx.datasets.simulate_staggered(40, 6, 2, seed=8)
    rng = np.random.default_rng(8)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df.loc[df["unit"] == 3, "w"] = 0.0  # a whole unit (one cluster fewer)
    df.loc[[10, 50, 100], "w"] = 0.0  # and single rows
    positive = df[df["w"] > 0]
    for vcov in (None, "iid", "hetero"):
        a = didx.twfe(df, y="y", unit="unit", time="time", treat="d", weights="w", vcov=vcov)
        b = didx.twfe(positive, y="y", unit="unit", time="time", treat="d", weights="w", vcov=vcov)
        assert a.estimate == pytest.approx(b.estimate, rel=TOL_IDENTITY)
        assert a.std_error == pytest.approx(b.std_error, rel=TOL_IDENTITY)
        assert a.inference.n_clusters == b.inference.n_clusters
    dropped = {d.reason: d for d in a.sample.dropped}
    assert dropped["zero weight (w)"].n_rows == int((df["w"] == 0).sum())
    assert dropped["zero weight (w)"].n_units == 1
    assert a.sample.n_obs == len(positive)
    g = didx.did2x2(df[df["time"].isin([1, 6])].assign(P=lambda d: (d["time"] == 6).astype(int),
                                                        G=lambda d: (d["cohort"] > 0).astype(int)),
                    y="y", treat="G", post="P", weights="w", vcov="HC1")
    assert "zero weight (w)" in str(g.summary())
    o = didx.ols(df, y="y", x="d", fe=["unit", "time"], weights="w", vcov="hetero")
    assert o.std_error == pytest.approx(b.with_vcov("hetero").std_error, rel=TOL_IDENTITY)
    with pytest.raises(didx.DataError, match=r"weights column 'w' has 1 negative.*Fix"):
        didx.ols(df.assign(w=np.where(df.index == 0, -1.0, df["w"])), y="y", x="d", weights="w")


def _jackknife_by_refit(df: pd.DataFrame, cluster: str, weighted: bool) -> np.ndarray:
    def fit(d: pd.DataFrame) -> np.ndarray:
        U = pd.get_dummies(d["unit"]).to_numpy(float)
        T = pd.get_dummies(d["time"]).to_numpy(float)[:, 1:]
        X = np.column_stack([d["d"], d["x2"], U, T])
        sw = np.sqrt(d["w"].to_numpy()) if weighted else np.ones(len(d))
        return np.linalg.lstsq(X * sw[:, None], d["y"].to_numpy() * sw, rcond=None)[0][:2]

    b = fit(df)
    diffs = np.array([fit(df[df[cluster] != g]) - b for g in df[cluster].unique()])
    G = diffs.shape[0]
    return (G - 1) / G * diffs.T @ diffs


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("cluster", ["unit", "state", "time"])
def test_cr3_is_the_leave_one_cluster_out_jackknife(monkeypatch: pytest.MonkeyPatch, cluster: str,
                                                   weighted: bool) -> None:
    """CR3 with unit and time effects equals refitting without each cluster (time effects re-estimated too)."""
    import didx.inference.vcov as vcov_module

    rng = np.random.default_rng(12)
    df = didx.datasets.simulate_staggered(36, 6, 2, seed=12)
    df = df.drop(index=rng.choice(len(df), 20, replace=False)).reset_index(drop=True)  # unbalanced
    df["state"] = df["unit"] // 4
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    kw = {"weights": "w"} if weighted else {}
    res = didx.twfe(df, y="y", unit="unit", time="time", treat="d", covariates="x2", vcov="CR3", cluster=cluster,
                    **kw)
    V = _jackknife_by_refit(df, cluster, weighted)
    np.testing.assert_allclose(res.vcov_matrix, V, rtol=1e-9)
    monkeypatch.setattr(vcov_module, "JACKKNIFE_CHUNK_ENTRIES", 200)  # chunks of clusters, and one-cluster chunks
    small = didx.twfe(df, y="y", unit="unit", time="time", treat="d", covariates="x2", vcov="CR3",
                      cluster=cluster, **kw)
    np.testing.assert_allclose(small.vcov_matrix, V, rtol=1e-9)


def test_cr3_unidentified_without_a_cluster() -> None:
    df = pd.DataFrame({"g": [1, 1, 0, 0, 0, 0, 0, 0] * 3, "p": [0, 1] * 12, "cl": np.repeat(np.arange(12), 2)})
    df["y"] = np.arange(24.0) % 5 + df["g"] * df["p"]
    df.loc[df["g"] == 1, "cl"] = 0  # the treated rows all in one cluster
    with pytest.raises(didx.DesignError, match=r"CR3.*leaving out one cluster.*Fix"):
        didx.did2x2(df, y="y", treat="g", post="p", vcov="CR3", cluster="cl")


def test_option_errors_name_the_fix(mpdta: pd.DataFrame) -> None:
    kw = {"y": "lemp", "unit": "countyreal", "time": "year"}
    with pytest.raises(didx.InvalidOptionError, match=r"give the treatment.*treat=.*cohort=.*Fix"):
        didx.twfe(mpdta, **kw)
    with pytest.raises(didx.InvalidOptionError, match=r"CR3.*one cluster variable.*\['countyreal', 'year'\].*Fix"):
        didx.twfe(mpdta, **kw, cohort="first.treat", vcov="CR3", cluster=["countyreal", "year"])
    with pytest.raises(didx.InvalidOptionError, match=r"at most two cluster.*'lpop'\].*Fix"):
        didx.twfe(mpdta, **kw, cohort="first.treat", cluster=["countyreal", "year", "lpop"])


def test_summary_reports_treatment_timing(mpdta: pd.DataFrame) -> None:
    res = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    text = str(res.summary())
    assert "Treatment timing: 3 adoption dates (staggered)" in text and "Goodman-Bacon" in text
    two = mpdta[mpdta["year"].isin([2005, 2006]) & mpdta["first.treat"].isin([0, 2006])]
    single = didx.twfe(two, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert "Treatment timing: 1 adoption date" in str(single.summary()) and not single.notes
    df = pd.DataFrame({"u": np.repeat([1, 2, 3, 4], 3), "t": np.tile([1, 2, 3], 4),
                       "d": [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0], "y": np.arange(12.0) ** 1.5})
    timing = dict(didx.twfe(df, y="y", unit="u", time="t", treat="d").design)["Treatment timing"]
    assert timing.startswith("2 adoption dates (staggered); 1 units treated in every period")
    assert timing.endswith("treatment switches off in 1 units")


def test_singletons_dropped_until_none_left() -> None:
    """Dropping a singleton can make another: unit 900 (periods 1, 2) loses period 2 (alone in time 7)."""
    df = didx.datasets.simulate_staggered(30, 5, 2, seed=4)
    extra = pd.DataFrame({"unit": [900, 900], "time": [1, 7], "cohort": [0, 0], "y": [1.0, 2.0], "d": [0, 0],
                          "x1": [0.0, 0.0], "x2": [0.0, 0.0], "tau": [0.0, 0.0]})
    df = pd.concat([df, extra], ignore_index=True)
    res = didx.twfe(df, y="y", unit="unit", time="time", treat="d", drop_singletons=True)
    dropped = {d.reason: d for d in res.sample.dropped}["singleton in a fixed effect (drop_singletons=True)"]
    assert dropped.n_rows == 2 and dropped.n_units == 1
    assert res.sample.n_obs == len(df) - 2 and res.sample.n_units == 30
    assert "Singletons: 2 dropped" in str(res.summary())


def test_iid_without_adjustment_is_fixest(mpdta: pd.DataFrame) -> None:
    """fixest's iid matrix is RSS/(n-1) (X'X)^-1 times (n-1)/(n-K): with ssc(adj = FALSE), RSS/(n-1)."""
    res = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post", vcov="iid")
    off = res.with_vcov("iid", ssc=didx.SSC(adj=False))
    n, K = res.sample.n_obs, 1 + 500 + 5 - 1
    assert off.std_error**2 == pytest.approx(res.std_error**2 * (n - K) / (n - 1), rel=TOL_IDENTITY)


def test_cr3_with_several_nested_effects_and_the_size_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two factors nested in the state clusters (unit, and pairs of units) and time effects re-estimated."""
    import didx.inference.vcov as vcov_module

    df = didx.datasets.simulate_staggered(32, 5, 2, seed=13)
    df["state"] = df["unit"] // 4
    df["pair"] = df["unit"] // 2
    res = didx.twfe(df, y="y", unit="unit", time="time", treat="d", fe="pair", vcov="CR3", cluster="state")

    def fit(d: pd.DataFrame) -> float:
        U = pd.get_dummies(d["unit"]).to_numpy(float)
        T = pd.get_dummies(d["time"]).to_numpy(float)[:, 1:]
        return float(np.linalg.lstsq(np.column_stack([d["d"], U, T]), d["y"].to_numpy(), rcond=None)[0][0])

    b = fit(df)
    diffs = np.array([fit(df[df["state"] != g]) - b for g in df["state"].unique()])
    G = diffs.shape[0]
    assert res.std_error == pytest.approx(np.sqrt((G - 1) / G * np.sum(diffs**2)), rel=1e-7)
    monkeypatch.setattr(vcov_module, "JACKKNIFE_MAX_DUMMY_ENTRIES", 100)
    with pytest.raises(didx.InvalidOptionError, match=r"CR3.*\['time'\].*too large.*Fix"):
        didx.twfe(df, y="y", unit="unit", time="time", treat="d", vcov="CR3", cluster="state")


def test_pickled_result_is_smaller_than_the_data() -> None:
    """A result keeps the demeaned regressor, the residuals and the codes of the absorbed factors, which are also
    the stored cluster codes of the unit and time columns (one array each, not two), never the data."""
    import pickle

    df = didx.datasets.load("mpdta")
    res = didx.twfe(df, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert len(pickle.dumps(res)) < len(pickle.dumps(df))
    src = res._source
    assert src.fit.fe.factors[0] is src.clusters.stored["countyreal"]
    assert src.fit.fe.factors[1] is src.clusters.stored["year"]
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_allclose(back.with_vcov(cluster=["countyreal", "year"]).vcov_matrix,
                               res.with_vcov(cluster=["countyreal", "year"]).vcov_matrix, rtol=1e-14)
    assert back.wild_bootstrap(res.headline, n_bootstrap=99, seed=1).p_value == \
        res.wild_bootstrap(res.headline, n_bootstrap=99, seed=1).p_value


@pytest.mark.parametrize("estimator", ["twfe", "ols"])
def test_a_single_cluster_is_a_data_error(mpdta: pd.DataFrame, estimator: str) -> None:
    df = mpdta.assign(one=1)
    fit: Any = (lambda **kw: didx.twfe(df, y="lemp", unit="countyreal", time="year", cohort="first.treat", **kw)) \
        if estimator == "twfe" else (lambda **kw: didx.ols(df, y="lemp", x="treat_post", **kw))
    with pytest.raises(didx.DataError, match=r"cluster variable 'one' has 1 distinct value.*Fix"):
        fit(cluster="one")
    with pytest.raises(didx.DataError, match=r"'one' has 1 distinct value"):
        fit().with_vcov(cluster="one", data=df)


def test_drop_singletons_must_be_a_bool(mpdta: pd.DataFrame) -> None:
    """'no' is not read as its truth value (it would drop the singletons)."""
    for value in ("no", 0, None):
        with pytest.raises(didx.InvalidOptionError, match=r"The 'drop_singletons' parameter of twfe must be a bool\. "
                                                          rf"Got {value!r} instead\. Fix"):
            didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post", drop_singletons=value)


def test_integer_column_labels() -> None:
    """Unit, time, extra fixed effect, cluster, covariate and weights columns labelled by integers: the same
    numbers as with string names, and the labels' names in the design and the inference."""
    df = didx.datasets.simulate_staggered(40, 5, [3, 4], never_share=0.4, seed=1)
    df = df.assign(w=1.0 + df["unit"] % 3, cl=df["unit"] % 8, region=df["unit"] % 4)
    kw = dict(fe="region", cluster="cl", covariates="x2", weights="w")
    base = didx.twfe(df, y="y", unit="unit", time="time", cohort="cohort", **kw)  # type: ignore[arg-type]
    labels = {"y": 0, "unit": 11, "time": 12, "region": 13, "cl": 14, "x2": 15, "w": 16}
    res = didx.twfe(df.rename(columns=labels), y=0, unit=11, time=12, cohort="cohort", fe=[13], cluster=14,
                    covariates=[15], weights=16)  # type: ignore[arg-type]
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=TOL_IDENTITY)
    assert dict(res.design)["Fixed effects"].startswith("11, 12, 13 [")
    assert res.inference.cluster_names == ("14",)
    default = didx.twfe(df.rename(columns=labels), y=0, unit=11, time=12, cohort="cohort")  # type: ignore[arg-type]
    assert default.inference.cluster_names == ("11",)
    assert default.std_error == pytest.approx(
        didx.twfe(df, y="y", unit="unit", time="time", cohort="cohort").std_error, rel=TOL_IDENTITY)


def test_ols_integer_column_labels_and_a_list_outcome() -> None:
    df = didx.datasets.simulate_staggered(40, 5, [3, 4], never_share=0.4, seed=1)
    df = df.assign(w=1.0 + df["unit"] % 3, cl=df["unit"] % 8)
    base = didx.ols(df, y="y", x=["d", "x2"], fe=["unit", "time"], cluster="cl", weights="w")
    labels = {"y": 0, "d": 1, "x2": 2, "unit": 11, "time": 12, "cl": 14, "w": 16}
    res = didx.ols(df.rename(columns=labels), y=0, x=[1, 2], fe=[11, 12], cluster=14,  # type: ignore[arg-type]
                   weights=16)  # type: ignore[arg-type]
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=TOL_IDENTITY)
    assert list(res.terms) == ["1", "2"] and res.inference.cluster_names == ("14",)
    assert dict(res.design)["Fixed effects"].startswith("11, 12 [")
    with pytest.raises(didx.InvalidOptionError, match=r"The 'y' parameter of ols must be a column name.*Got \['y'\]"):
        didx.ols(df, y=["y"], x="d")  # type: ignore[arg-type]
