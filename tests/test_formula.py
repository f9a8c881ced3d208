"""fixest formulas (didx.feols): fixest's own numbers for its calls, identities with the keyword interface, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, TOL_POINT, load_reference
from didx.formula import Term, parse
from didx.results.event import EventStudyResult

ES_REF = load_reference("fixest_event_study.json")
TWFE_REF = load_reference("fixest_twfe.json")
TOL_SE = 1e-6  # clustered SEs vs fixest (as tests/test_event_study.py)


@pytest.fixture(scope="module")
def mp(mpdta: pd.DataFrame) -> pd.DataFrame:
    df = mpdta.copy()
    df["rel"] = np.where(df["first.treat"] > 0, df["year"] - df["first.treat"], -1000)
    return df


def _check(res: Any, coefs: list[dict[str, Any]]) -> None:
    tidy = res.tidy().set_index("term")
    assert list(tidy.index) == [c["term"] for c in coefs]  # fixest's term names
    for c in coefs:
        row = tidy.loc[c["term"]]
        assert row["estimate"] == pytest.approx(c["estimate"], rel=TOL_POINT)
        assert row["std_error"] == pytest.approx(c["se"], rel=TOL_SE)
        assert row["p_value"] == pytest.approx(c["p"], rel=TOL_SE)


# ---------------------------------------------------------------- fixest's numbers for the same formulas
def test_fixest_twfe(mpdta: pd.DataFrame) -> None:
    ref = TWFE_REF["mpdta_twfe"]  # feols(lemp ~ treat_post | countyreal + year, mpdta)
    _check(didx.feols("lemp ~ treat_post | countyreal + year", mpdta), ref["cluster_countyreal"])
    _check(didx.feols("lemp ~ treat_post | countyreal + year", mpdta, vcov="iid"), ref["iid"])


def test_fixest_event_study_relative_time(mp: pd.DataFrame) -> None:
    ref = ES_REF["mpdta_twfe_es"]  # feols(lemp ~ i(rel, ref=c(-1,-1000)) | countyreal + year, mpdta)
    res = didx.feols("lemp ~ i(rel, ref=c(-1,-1000)) | countyreal + year", mp)
    _check(res, ref["coefs"])
    assert isinstance(res, EventStudyResult)
    np.testing.assert_array_equal(res.event_times, [-4, -3, -2, 0, 1, 2, 3])
    assert res.reference_periods == (-1.0,)  # -1000 codes the never treated: omitted, not a period


def test_never_treated_code_absorbed_by_unit_fixed_effects(mp: pd.DataFrame) -> None:
    """``i(rel, ref=-1)`` with the never treated coded -1000: fixest drops ``rel::-1000`` (constant within units)
    for collinearity and reports the same numbers as ``ref=c(-1, -1000)``; didx raised a DesignError."""
    ref = ES_REF["mpdta_twfe_es"]
    res = didx.feols("lemp ~ i(rel, ref=-1) | countyreal + year", mp)
    _check(res, ref["coefs"])
    assert res.reference_periods == (-1.0,)
    assert any("rel::-1000" in n and "collinearity" in n for n in res.notes)
    assert "rel::-1000" in str(res.summary())
    year_only = didx.feols("lemp ~ i(rel, ref=-1) | year", mp)  # no unit effects: the dummy is estimated
    assert "rel::-1000" in year_only.terms and not any("collinearity" in n for n in year_only.notes)


def test_fixest_event_study_staggered_with_covariate() -> None:
    ref = ES_REF["base_stagg_twfe_es"]  # feols(y ~ x1 + i(time_to_treatment, ref = c(-1, -1000)) | id + year)
    res = didx.feols("y ~ x1 + i(time_to_treatment, ref = c(-1, -1000)) | id + year",
                     didx.datasets.load("base_stagg"))
    _check(res, ref["coefs"])
    assert res.sample.n_obs == int(ref["nobs"])


@pytest.mark.parametrize("fml", ["y ~ x1 + i(period, treat, 5) | id + period",
                                 "y ~ x1 + i(period, treat, ref=5) | id + period"])
def test_fixest_calendar_event_study(fml: str) -> None:
    ref = ES_REF["base_did"]  # feols(y ~ x1 + i(period, treat, 5) | id + period, base_did)
    res = didx.feols(fml, didx.datasets.load("base_did"))
    _check(res, ref["coefs"])
    # calendar factor: event time = period - (ref + 1), so the reference period 5 is k = -1
    assert res.reference_periods == (-1.0,)
    et = res.event_times
    assert np.isnan(et[0]) and list(et[1:]) == [-5, -4, -3, -2, 0, 1, 2, 3, 4]
    assert dict(res.design)["Event time"].startswith("k = period - 6")


# ---------------------------------------------------------------- identities with the keyword interface
def test_same_as_keywords(mp: pd.DataFrame) -> None:
    tw = didx.twfe(mp, y="lemp", unit="countyreal", time="year", treat="treat_post", covariates="lpop")
    f = didx.feols("lemp ~ treat_post + lpop | countyreal + year", mp)
    np.testing.assert_allclose(f.coef[0], tw.coef[0], rtol=TOL_IDENTITY)
    np.testing.assert_allclose(f.std_error, tw.std_error, rtol=TOL_IDENTITY)
    es = didx.event_study(mp, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    fe = didx.feols("lemp ~ i(rel, ref=c(-1, -1000)) | countyreal + year", mp)
    np.testing.assert_allclose(fe.coef, es.coef, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fe.std_errors, es.std_errors, rtol=1e-10)
    assert fe.pretrend_test().statistic == pytest.approx(es.pretrend_test().statistic, rel=1e-9)
    ck = didx.datasets.load("card_krueger")
    d2 = didx.did2x2(ck, y="fte", treat="nj", post="d", vcov="HC1")
    f2 = didx.feols("fte ~ nj:d + nj + d", ck, vcov="HC1")
    assert f2.estimate == pytest.approx(d2.estimate, rel=TOL_IDENTITY)
    assert f2.std_error == pytest.approx(d2.std_error, rel=TOL_IDENTITY)
    f3 = didx.feols("fte ~ nj*d", ck, vcov="HC1")  # R's a*b = a + b + a:b
    assert f3.tidy().set_index("term").loc["nj:d", "estimate"] == pytest.approx(d2.estimate, rel=TOL_IDENTITY)
    ols = didx.ols(mp, y="lemp", x=["lpop", "treat_post"])
    fo = didx.feols("lemp ~ lpop + treat_post", mp)
    np.testing.assert_allclose(fo.coef, ols.coef, rtol=TOL_IDENTITY)
    assert "iid" in fo.inference.vcov_type.lower() or "independent" in fo.inference.vcov_type.lower()


def test_formula_results_plot_and_summarise(mp: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = didx.feols("lemp ~ i(rel, ref=c(-1, -1000)) | countyreal + year", mp)
    ax = res.plot()
    assert ax.get_ylabel() == "Effect on lemp"
    plt.close("all")
    text = str(res.summary())
    assert "Formula: lemp ~ i(rel, ref=c(-1, -1000)) | countyreal + year" in text
    assert "clustered by countyreal" in text  # fixest's default: the first fixed effect


def test_any_dataframe_and_dotted_or_quoted_names(mp: pd.DataFrame) -> None:
    pl = pytest.importorskip("polars")
    a = didx.feols("lemp ~ treat_post + first.treat | year", mp)
    b = didx.feols("lemp ~ treat_post + `first.treat` | year", pl.from_pandas(mp))
    np.testing.assert_allclose(a.coef, b.coef, rtol=TOL_IDENTITY)
    assert a.terms == ("treat_post", "first.treat")
    spaced = mp.rename(columns={"lpop": "log pop"})
    c = didx.feols("lemp ~ `log pop` + treat_post", spaced)
    assert "log pop" in c.terms


def test_missing_factor_rows_are_dropped_and_counted(mp: pd.DataFrame) -> None:
    df = mp.copy()
    df["rel2"] = np.where(df["first.treat"] > 0, df["year"] - df["first.treat"], np.nan)
    res = didx.feols("lemp ~ i(rel2, ref=-1) | countyreal + year", df)
    n_never = int((df["first.treat"] == 0).sum())
    assert res.sample.n_obs == len(df) - n_never
    assert "missing outcome or regressor" in str(res.summary())


# ---------------------------------------------------------------- parsing and errors
def test_parse() -> None:
    f = parse("lemp ~ treat + lpop + i(year, treated, ref=2013) + a:b | countyreal + year")
    assert f.outcome == "lemp" and f.fixed_effects == ("countyreal", "year")
    assert f.terms == (Term("var", ("treat",)), Term("var", ("lpop",)), Term("i", ("year", "treated"), (2013,)),
                       Term("product", ("a", "b")))
    assert parse("y ~ i(k, ref=c(-1, -1000), keep=[0, 1])").terms[0] == Term("i", ("k",), (-1, -1000), (0, 1))
    assert parse("y ~ 1 + x").terms == (Term("var", ("x",)),)


@pytest.mark.parametrize(("fml", "message"), [
    ("lemp treat", "exactly one '~'"),
    ("lemp ~ treat ~ x", "exactly one '~'"),
    ("lemp ~ log(lpop)", "the only function is i()"),
    ("lemp ~ lpop^2", "not supported"),
    ("lemp ~ 0 + lpop", "no intercept"),
    ("lemp ~ lpop - 1", "'-' terms are not supported"),
    ("lemp ~ i(year, ref=2013, bin=2)", "bin are not supported"),
    ("lemp ~ x | a | b", "more than one '|'"),
    ("lemp ~ (", "not valid syntax"),
    ("lemp ~ i(year, ref=x)", "is not a value"),
    ("lemp ~ 1", "no regressor"),
])
def test_formula_errors(fml: str, message: str, mp: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("^", r"\^")):
        didx.feols(fml, mp)


def test_data_errors(mp: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match="ref=2099 is not a value of 'year'"):
        didx.feols("lemp ~ i(year, ref=2099)", mp)
    with pytest.raises(didx.DidxError, match=r"lpopp.*Did you mean 'lpop'"):
        didx.feols("lemp ~ lpopp", mp)
