"""The result contract: immutability, tidy columns, confidence levels recomputed, rendering, compare, Wald."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import didx


@pytest.fixture(scope="module")
def res(mpdta: pd.DataFrame) -> didx.TWFEResult:
    return didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post", covariates="lpop")


def test_immutable(res: didx.TWFEResult) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimator = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        res.coef[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        res.vcov_matrix[0, 0] = 1.0


def test_term_info_and_extras_are_read_only(mpdta: pd.DataFrame) -> None:
    import copy
    import pickle

    info = {"n": np.array([5.0])}
    extras = {"note": "x"}
    r = didx.Result(estimator="e", terms=("a",), coef=np.array([1.0]), vcov_matrix=np.eye(1), headline="a",
                    inference=didx.results.base.Inference("iid"), sample=didx._sample.SampleReport(1, 1),
                    term_info=info, extras=extras)
    with pytest.raises(TypeError):
        r.term_info["n"] = np.array([6.0])  # type: ignore[index]
    with pytest.raises(TypeError):
        r.extras["note"] = "y"  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        r.term_info["n"][0] = 6.0
    extras["note"] = "changed after construction"  # the caller's dict is not the result's
    info["n"] = np.array([7.0])
    assert r.extras["note"] == "x" and r.term_info["n"][0] == 5.0
    assert dict(pickle.loads(pickle.dumps(r)).extras) == {"note": "x"}
    assert copy.deepcopy(r).tidy()["n"].iloc[0] == 5.0
    tw = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post")
    assert {**tw.with_vcov("iid").extras} == {**tw.extras}


def test_tidy_columns_and_conf_level(res: didx.TWFEResult) -> None:
    t95 = res.tidy()
    assert list(t95.columns)[:7] == ["term", "estimate", "std_error", "statistic", "p_value", "conf_low",
                                      "conf_high"]
    t90 = res.tidy(conf_level=0.90)
    df = res.inference.df
    assert df is not None
    for t, lvl in ((t95, 0.95), (t90, 0.90)):
        crit = stats.t.ppf(1 - (1 - lvl) / 2, df)
        np.testing.assert_allclose(t["conf_high"] - t["estimate"], crit * t["std_error"], rtol=1e-12)
    assert (t90["conf_high"] < t95["conf_high"]).all()
    with pytest.raises(didx.InvalidOptionError, match="conf_level"):
        res.tidy(conf_level=95)


def test_headline_and_vcov_labels(res: didx.TWFEResult) -> None:
    assert res.estimate == res.coef[0]
    assert res.std_error == pytest.approx(np.sqrt(res.vcov_matrix[0, 0]))
    assert list(res.vcov.index) == ["treat_post"]  # lpop is time-invariant: absorbed by the county effects
    assert "Dropped for collinearity: lpop" in res.notes
    assert isinstance(res.estimate, float) and isinstance(res.std_error, float)


def test_summary_prints_every_choice(res: didx.TWFEResult) -> None:
    s = str(res.summary())
    for needle in ("Two-way fixed effects", "Fixed effects: countyreal, year", "CR1, clustered by countyreal",
                   "Clusters: countyreal: 500", "Observations: 2500", "Dropped: nothing", "t with 499 df",
                   "Small-sample correction"):
        assert needle in s, needle


def test_markdown_and_latex(res: didx.TWFEResult) -> None:
    md = res.to_markdown()
    assert md.startswith("| term | estimate |") and "treat_post" in md
    tex = res.to_latex()
    assert r"\begin{tabular}" in tex and r"treat\_post" in tex


def test_compare(mpdta: pd.DataFrame, res: didx.TWFEResult) -> None:
    iid = res.with_vcov("iid")
    table = didx.compare([res, iid], names=["cluster", "iid"])
    text = str(table)
    assert "ATT" in text and "cluster" in text and "(" in text
    rows = {row[0]: row[1:] for row in table.rows}  # type: ignore[union-attr]
    assert rows["Units"] == ("500", "500") and rows["Clusters"] == ("500", "")
    assert "| ATT |" in didx.compare([res, iid], format="markdown")
    assert r"\begin{tabular}" in didx.compare([res, iid], format="latex")
    with pytest.raises(didx.InvalidOptionError):
        didx.compare([])


def test_event_time_prints_as_an_integer(mpdta: pd.DataFrame) -> None:
    """Issue 12: event_time printed as a float (-4.0), counts too (131.0)."""
    es = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    t = es.tidy()
    assert t["event_time"].dtype == np.int64 and t["n"].dtype == np.int64
    assert "-4.0" not in t["event_time"].to_string() and "131.0" not in t["n"].to_string()
    table = es.event_table()  # the reference row keeps the integers (its n is missing)
    assert list(table["event_time"]) == [-4, -3, -2, -1, 0, 1, 2, 3]
    assert "-1.0" not in table["event_time"].to_string()
    # a term without an event time (an overall ATT) is missing in a nullable integer column
    dyn = didx.att_gt(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat").aggregate("dynamic")
    d = dyn.tidy()
    assert str(d["event_time"].dtype) == "Int64" and d["event_time"].isna().sum() == 1
    assert "-3.0" not in d["event_time"].to_string()
    np.testing.assert_array_equal(d["event_time"].to_numpy(float, na_value=np.nan)[:-1], dyn.event_times[:-1])
    # values that are not whole stay floats
    r = didx.Result(estimator="e", terms=("a",), coef=np.array([1.0]), vcov_matrix=np.eye(1), headline="a",
                    inference=didx.Inference("iid"), sample=didx._sample.SampleReport(1, 1),
                    term_info={"event_time": np.array([0.5]), "n": np.array([2.5])})
    assert r.tidy()["event_time"].iloc[0] == 0.5 and r.tidy()["n"].iloc[0] == 2.5


def test_json_keeps_full_precision(res: didx.TWFEResult, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: JSON gave the headline at full precision but the terms rounded to 10 decimals."""
    import json

    from didx.cli import main

    out = json.loads(res.to_json())
    for row, b, se in zip(out["terms"], res.coef, res.std_errors, strict=True):
        assert row["estimate"] == b and row["std_error"] == se  # exact: the shortest repr round-trips
    assert out["estimate"] == res.estimate and out["headline"] == res.headline
    assert main(["twfe", "dataset:mpdta", "y=lemp", "unit=countyreal", "time=year", "cohort=first.treat",
                 "--output", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    direct = didx.twfe(didx.datasets.load("mpdta"), y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert cli["terms"][0]["estimate"] == direct.coef[0] and cli["terms"][0]["conf_low"] == direct.tidy()[
        "conf_low"].iloc[0]


def test_pretrend_f_line_has_degrees_of_freedom(mpdta: pd.DataFrame) -> None:
    """Issue 12: the dynamic aggregation's pre-trend line printed "F = 2.4426" without degrees of freedom."""
    dyn = didx.att_gt(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat").aggregate("dynamic")
    line = str(dyn.pretrend_test())
    assert "F(3, inf) = 2.4426" in line and "F = " not in line
    assert "F(3, inf) = 2.4426" in str(dyn.summary())
    es = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert "F(3, 499) = " in str(es.pretrend_test())  # a t reference keeps its residual degrees of freedom


def test_wald_matches_t_squared(res: didx.TWFEResult) -> None:
    w = res.wald(["treat_post"])
    t = res.tidy().iloc[0]["statistic"]
    assert w.statistic == pytest.approx(t**2, rel=1e-12)
    assert w.f_p_value == pytest.approx(res.tidy().iloc[0]["p_value"], rel=1e-9)
    R = np.zeros((1, len(res.terms)))
    R[0, 0] = 1.0
    assert res.wald(R).statistic == pytest.approx(w.statistic, rel=1e-12)
    with pytest.raises(didx.InvalidOptionError, match="Did you mean 'treat_post'"):
        res.wald(["treat_pst"])


def test_with_vcov_new_cluster_column(mpdta: pd.DataFrame, res: didx.TWFEResult) -> None:
    df = mpdta.copy()
    df["state"] = df["countyreal"] // 1000
    r = didx.twfe(df, y="lemp", unit="countyreal", time="year", treat="treat_post")
    by_state = r.with_vcov(cluster="state", data=df)
    assert by_state.std_error == pytest.approx(r.with_vcov(cluster=df["state"]).std_error, rel=1e-15)
    direct = didx.twfe(df, y="lemp", unit="countyreal", time="year", treat="treat_post", cluster="state")
    assert by_state.std_error == pytest.approx(direct.std_error, rel=1e-13)
    assert "Few clusters" in str(by_state.summary())


def test_datasets() -> None:
    assert "mpdta" in didx.datasets.available()
    assert didx.datasets.load("card_krueger").shape == (820, 15)
    with pytest.raises(didx.InvalidOptionError, match="Did you mean 'mpdta'"):
        didx.datasets.load("mpdt")


def test_simulate_staggered_truth() -> None:
    df = didx.datasets.simulate_staggered(2000, 6, 2, effects=2.0, seed=1)
    assert set(df.columns) >= {"unit", "time", "cohort", "y", "d", "tau"}
    assert (df.loc[df.d == 1, "tau"] == 2.0).all()
    r = didx.twfe(df, y="y", unit="unit", time="time", cohort="cohort")
    assert abs(r.estimate - 2.0) < 4 * r.std_error  # constant effect: TWFE is unbiased


def test_latex_escape_single_pass() -> None:
    from didx.results.render import latex_escape

    assert latex_escape("a\\b") == r"a\textbackslash{}b"
    assert latex_escape("x_1 & 5% {y}") == r"x\_1 \& 5\% \{y\}"
    assert latex_escape("~^") == r"\textasciitilde{}\^{}"


def test_negative_variance_is_nan_not_zero() -> None:
    V = np.diag([-0.5, 4.0, -1e-20])
    r = didx.Result(estimator="e", terms=("a", "b", "c"), coef=np.array([1.0, 2.0, 3.0]), vcov_matrix=V,
                    headline="a", inference=didx.results.base.Inference("iid"),
                    sample=didx._sample.SampleReport(1, 1))
    se = r.std_errors
    assert np.isnan(se[0]) and se[1] == 2.0 and se[2] == 0.0  # -1e-20: rounding of a zero variance
    assert np.isnan(r.std_error)
    t = r.tidy()
    assert np.isnan(t["conf_low"].iloc[0]) and np.isnan(t["p_value"].iloc[0])


def test_wald_on_zero_variance_terms_is_an_error() -> None:
    r = didx.Result(estimator="e", terms=("a", "b"), coef=np.array([0.0, 2.0]), vcov_matrix=np.diag([0.0, 4.0]),
                    headline="b", inference=didx.results.base.Inference("iid"),
                    sample=didx._sample.SampleReport(1, 1))
    with pytest.raises(didx.InvalidOptionError, match=r"\['a'\] have zero variance.*Fix"):
        r.wald(["a"])
    assert r.wald(["a", "b"]).df == 1


def test_fit_is_read_only(res: didx.TWFEResult) -> None:
    fit = res.fit
    for a in (fit.coef, fit.X, fit.resid, fit.bread):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1.0


def test_collapsed_result_does_not_suggest_collapsing(mpdta: pd.DataFrame) -> None:
    df = mpdta.assign(state=mpdta["countyreal"] // 1000)
    raw = didx.twfe(df, y="lemp", unit="countyreal", time="year", treat="treat_post", cluster="state")
    assert "collapse='group_period'" in str(raw.summary())
    col = didx.twfe(df, y="lemp", unit="countyreal", time="year", treat="treat_post", cluster="state",
                    collapse="group_period")
    text = str(col.summary())
    assert "Few clusters" in text and "wild_bootstrap" in text and "collapse='group_period'" not in text


def test_with_vcov_refuses_a_changed_frame(mpdta: pd.DataFrame) -> None:
    df = mpdta.assign(state=mpdta["countyreal"] // 1000)
    r = didx.twfe(df, y="lemp", unit="countyreal", time="year", treat="treat_post")
    df.loc[10_000] = df.iloc[0]  # the user's frame grows in place after the fit
    with pytest.raises(didx.DataError, match=r"have 2501 rows, but the data given to the estimator had 2500.*Fix"):
        r.with_vcov(cluster="state", data=df)
    with pytest.raises(didx.DataError, match=r"have 2501 rows, but the data given to the estimator had 2500.*Fix"):
        r.with_vcov(cluster=df["state"])
    shuffled = df.iloc[:2500].sample(frac=1.0, random_state=1)  # same rows, another order
    with pytest.raises(didx.DataError, match=r"not the frame that was fitted.*reordered.*Fix"):
        r.with_vcov(cluster="state", data=shuffled)
    with pytest.raises(didx.InvalidOptionError, match=r"'state' was not captured at fit time.*data="):
        r.with_vcov(cluster="state")


def _event_study_with(mpdta: pd.DataFrame, V: Any) -> Any:
    es = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    return dataclasses.replace(es, vcov_matrix=V(es.vcov_matrix))


@pytest.mark.parametrize(("make", "reason"), [
    (lambda V: np.zeros_like(V), "they have zero variance under this covariance"),
    (lambda V: np.where(np.eye(V.shape[0]) > 0, np.inf, V), "their covariance has non-finite (inf or NaN) entries"),
    (lambda V: np.full_like(V, np.nan), "their covariance has non-finite (inf or NaN) entries"),
])
def test_summary_never_raises_on_a_returned_result(mpdta: pd.DataFrame, make: Any, reason: str) -> None:
    """The pre-trend Wald in summary() says why it is not computable instead of raising."""
    es = _event_study_with(mpdta, make)
    text = str(es.summary())
    assert f"Pre-trend test (joint Wald) of event_time::-4, event_time::-3, event_time::-2 = 0: not computable " \
           f"({reason})" in text
    t = es.tidy()
    assert list(t["term"]) == list(es.terms)
    assert es.to_markdown() and es.to_latex() and repr(es)


def test_non_finite_covariance_is_noted(mpdta: pd.DataFrame) -> None:
    es = _event_study_with(mpdta, lambda V: np.where(np.eye(V.shape[0]) > 0, np.inf, V))
    text = str(es.summary())
    assert "The covariance matrix has non-finite (inf or NaN) entries for event_time::-4" in text
    assert "Fix: rescale the outcome" in text
    fine = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert "non-finite" not in str(fine.summary())


def test_wald_on_a_non_finite_covariance_is_a_clear_error(mpdta: pd.DataFrame) -> None:
    es = _event_study_with(mpdta, lambda V: np.full_like(V, np.nan))
    with pytest.raises(didx.DesignError, match=r"wald\(\): the test of \['event_time::0'\] is not computable: their "
                                               r"covariance has non-finite.*Fix"):
        es.wald(["event_time::0"])
