"""2x2 DiD: Card & Krueger reference numbers (R lm + sandwich) and the identities of the 2x2."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, TOL_POINT, TOL_SE, load_reference

REF = load_reference("card_krueger.json")
TERMS = ["(Intercept)", "nj", "d", "nj:d"]


def _check(res: didx.Result, rows: list[dict], terms: list[str] | None = None) -> None:
    terms = terms or [r["term"] for r in rows]
    for row, term in zip(rows, terms, strict=True):
        i = res.terms.index(term)
        assert res.coef[i] == pytest.approx(row["estimate"], rel=TOL_POINT)
        assert res.std_errors[i] == pytest.approx(row["se"], rel=TOL_SE)


@pytest.mark.parametrize(("key", "vcov", "cluster"), [
    ("ols_iid", "iid", None), ("ols_hc0", "HC0", None), ("ols_hc1", "HC1", None),
    ("ols_cluster_store_CR1", "CR1", "store_id"),
])
def test_card_krueger_regression(card_krueger: pd.DataFrame, key: str, vcov: str, cluster: str | None) -> None:
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov=vcov, cluster=cluster)
    _check(res, REF[key], TERMS)
    assert res.sample.n_obs == REF["nobs"]
    assert res.estimate == pytest.approx(2.75360578298052, rel=TOL_POINT)


def test_hetero_is_hc1(card_krueger: pd.DataFrame) -> None:
    a = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov="hetero")
    b = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov="HC1")
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=1e-14)


def test_card_krueger_cell_means(card_krueger: pd.DataFrame) -> None:
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov="iid")
    table = res.table
    for cell in REF["cell_means"]:
        g, p = cell["nj"], cell["d"]
        assert table.means[g, p] == pytest.approx(cell["fte.mean"], rel=TOL_POINT)
        assert table.ses[g, p] == pytest.approx(cell["fte.se"], rel=TOL_SE)
        assert table.ns[g, p] == cell["fte.n"]


def test_identity_ols_equals_cell_means(card_krueger: pd.DataFrame) -> None:
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d")
    t = res.table
    cell_did = (t.means[1, 1] - t.means[1, 0]) - (t.means[0, 1] - t.means[0, 0])
    assert res.estimate == pytest.approx(cell_did, rel=TOL_IDENTITY)
    assert t.did == pytest.approx(res.estimate, rel=TOL_IDENTITY)
    # the four coefficients are the four cells
    c = dict(zip(res.terms, res.coef, strict=True))
    assert c["(Intercept)"] == pytest.approx(t.means[0, 0], rel=TOL_IDENTITY)
    assert c["(Intercept)"] + c["nj"] == pytest.approx(t.means[1, 0], rel=TOL_IDENTITY)
    assert c["(Intercept)"] + c["d"] == pytest.approx(t.means[0, 1], rel=TOL_IDENTITY)
    # SE of the DiD cell of the table is the regression SE
    assert t.did_se == pytest.approx(res.std_error, rel=TOL_IDENTITY)
    frame = t.to_frame()
    assert list(frame["group"]) == ["Treated", "Control", "Difference"]
    assert "Before" in str(t) and "Change" in str(t)


def test_balanced_first_difference(card_krueger: pd.DataFrame) -> None:
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id", first_difference=True)
    assert res.sample.n_obs == REF["balanced_nstores"]
    _check(res, REF["balanced_fd_hc1"], ["d", "nj:d"])
    _check(res.with_vcov("iid"), REF["balanced_fd_ols_iid"], ["d", "nj:d"])
    dropped = {d.reason: d for d in res.sample.dropped}
    assert dropped["unit not observed in both periods (first difference)"].n_units == 410 - 384
    assert "first difference" in str(res.summary())


def test_balanced_pooled_cluster(card_krueger: pd.DataFrame) -> None:
    both = card_krueger.dropna(subset=["fte"]).groupby("store_id")["fte"].transform("size") == 2
    bal = card_krueger.dropna(subset=["fte"])[both]
    res = didx.did2x2(bal, y="fte", treat="nj", post="d", cluster="store_id")
    _check(res, REF["balanced_ols_cluster_store_CR1"], TERMS)
    _check(res.with_vcov("iid"), REF["balanced_ols_iid"], TERMS)


def test_unit_fe_equals_pooled_on_balanced_panel(card_krueger: pd.DataFrame) -> None:
    both = card_krueger.dropna(subset=["fte"]).groupby("store_id")["fte"].transform("size") == 2
    bal = card_krueger.dropna(subset=["fte"])[both]
    pooled = didx.did2x2(bal, y="fte", treat="nj", post="d", cluster="store_id")
    fe = didx.did2x2(bal, y="fte", treat="nj", post="d", unit="store_id")
    fd = didx.did2x2(bal, y="fte", treat="nj", post="d", unit="store_id", first_difference=True)
    assert fe.estimate == pytest.approx(pooled.estimate, rel=TOL_IDENTITY)
    assert fd.estimate == pytest.approx(pooled.estimate, rel=TOL_IDENTITY)
    assert fe.std_error < pooled.with_vcov("iid").std_error  # unit effects tighten the SE
    assert fe.inference.cluster_names == ("store_id",)


def test_covariates_levels_and_trends(card_krueger: pd.DataFrame) -> None:
    df = card_krueger
    lev = didx.did2x2(df, y="fte", treat="nj", post="d", covariates=["bk", "kfc", "roys"], vcov="HC1")
    tr = didx.did2x2(df, y="fte", treat="nj", post="d", covariates=["bk", "kfc", "roys"], covariate_trends=True,
                     vcov="HC1")
    assert {"bk", "kfc", "roys"} <= set(lev.terms)
    assert {"bk:d", "kfc:d", "roys:d"} <= set(tr.terms)
    # by hand: the same regression with numpy
    d = df.dropna(subset=["fte"])
    X = np.column_stack([np.ones(len(d)), d.nj, d.d, d.nj * d.d, d.bk, d.kfc, d.roys,
                         d.bk * d.d, d.kfc * d.d, d.roys * d.d])
    b = np.linalg.lstsq(X, d.fte.to_numpy(), rcond=None)[0]
    assert tr.estimate == pytest.approx(b[3], rel=TOL_IDENTITY)


def test_cr3_jackknife_by_hand() -> None:
    rng = np.random.default_rng(3)
    n = 120
    df = pd.DataFrame({"g": rng.integers(0, 2, n), "p": rng.integers(0, 2, n), "cl": rng.integers(0, 12, n)})
    df["y"] = df.g * df.p + rng.standard_normal(n)
    res = didx.did2x2(df, y="y", treat="g", post="p", vcov="CR3", cluster="cl")
    X = np.column_stack([np.ones(n), df.g, df.p, df.g * df.p])
    yv = df.y.to_numpy()
    b = np.linalg.lstsq(X, yv, rcond=None)[0]
    diffs = []
    for c in range(12):
        m = df.cl.to_numpy() != c
        diffs.append(np.linalg.lstsq(X[m], yv[m], rcond=None)[0] - b)
    D = np.array(diffs)
    V = 11 / 12 * D.T @ D
    np.testing.assert_allclose(res.vcov_matrix, V, rtol=1e-9)


def test_weights_equal_replication() -> None:
    """Integer weights give the same point estimate as replicating rows."""
    rng = np.random.default_rng(5)
    n = 80
    df = pd.DataFrame({"g": rng.integers(0, 2, n), "p": rng.integers(0, 2, n), "w": rng.integers(1, 4, n)})
    df["y"] = 2 * df.g * df.p + rng.standard_normal(n)
    a = didx.did2x2(df, y="y", treat="g", post="p", weights="w")
    rep = df.loc[df.index.repeat(df.w)]
    b = didx.did2x2(rep, y="y", treat="g", post="p")
    assert a.estimate == pytest.approx(b.estimate, rel=TOL_IDENTITY)
    t = a.table
    assert t.did == pytest.approx(a.estimate, rel=TOL_IDENTITY)


def test_plot_structure(card_krueger: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d")
    ax = res.plot()
    lines = ax.get_lines()
    assert len(lines) == 3  # treated, control, counterfactual
    t = res.table
    np.testing.assert_allclose(lines[0].get_ydata(), t.means[1])
    np.testing.assert_allclose(lines[1].get_ydata(), t.means[0])
    cf = lines[2].get_ydata()
    assert t.means[1, 1] - cf[1] == pytest.approx(res.estimate, rel=1e-12)  # the gap is the DiD
    assert ax.get_ylabel() == "Mean of fte"
    assert [tk.get_text() for tk in ax.get_xticklabels()] == ["Before", "After"]
    plt.close(ax.figure)


def test_first_difference_table_is_on_the_estimation_sample(card_krueger: pd.DataFrame) -> None:
    """The first-difference table is built from the stores in both waves: its DiD is the estimate."""
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id", first_difference=True)
    t = res.table
    assert t.did == pytest.approx(res.estimate, rel=TOL_IDENTITY)
    assert t.did_se == pytest.approx(res.std_error, rel=TOL_IDENTITY)
    assert int(t.ns.sum()) == 2 * REF["balanced_nstores"]
    c = dict(zip(res.terms, res.coef, strict=True))
    assert t.change[0] == pytest.approx(c["d"], rel=TOL_IDENTITY)  # the intercept: the control stores' change


def test_table_hides_difference_ses_that_are_not_the_cell_differences(card_krueger: pd.DataFrame) -> None:
    """With covariates tau is not the cell-mean DiD, so the table must not print tau's SE under that DiD."""
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", covariates=["bk", "kfc", "roys"], vcov="HC1")
    t = res.table
    plain = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov="HC1").table
    assert t.did == pytest.approx(plain.did, rel=TOL_IDENTITY) and t.did != pytest.approx(res.estimate)
    assert np.isnan(t.did_se) and np.isnan(t.change_se).all() and np.isnan(t.difference_se).all()
    assert "not shown" in str(t) and "()" not in str(t)
    # unit effects on an unbalanced panel: same rule; on a balanced panel the SEs are shown
    unb = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id")
    assert np.isnan(unb.table.did_se)
    both = card_krueger.dropna(subset=["fte"]).groupby("store_id")["fte"].transform("size") == 2
    bal = didx.did2x2(card_krueger.dropna(subset=["fte"])[both], y="fte", treat="nj", post="d", unit="store_id")
    assert bal.table.did_se == pytest.approx(bal.std_error, rel=TOL_IDENTITY)
    assert bal.table.did == pytest.approx(bal.estimate, rel=TOL_IDENTITY)


def test_group_varying_within_unit_names_the_unit(card_krueger: pd.DataFrame) -> None:
    df = card_krueger.copy()
    df.loc[(df["store_id"] == 7) & (df["d"] == 1), "nj"] = 1 - df.loc[(df["store_id"] == 7) & (df["d"] == 1), "nj"]
    with pytest.raises(didx.DataError, match=r"group column 'nj' varies within unit store_id=7 .*Fix: set 'nj'"):
        didx.did2x2(df, y="fte", treat="nj", post="d", unit="store_id")


def test_summary_small_sample_text_without_fixed_effects(card_krueger: pd.DataFrame) -> None:
    pooled = str(didx.did2x2(card_krueger, y="fte", treat="nj", post="d", cluster="store_id").summary())
    assert "Small-sample correction: (n-1)/(n-K), G/(G-1) (min G)" in pooled and "effects counted" not in pooled
    fe = str(didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id").summary())
    assert "fixed effects counted 'nested'" in fe


@pytest.mark.parametrize("kind", ["HC2", "HC3"])
@pytest.mark.parametrize("weighted", [False, True])
def test_hc2_hc3_with_unit_effects_by_hand(card_krueger: pd.DataFrame, kind: str, weighted: bool) -> None:
    """HC2/HC3 with unit fixed effects: the leverage includes the unit dummies' (w_i / W_unit); stores seen in
    one wave have leverage 1 and a zero residual, and contribute nothing."""
    df = card_krueger.dropna(subset=["fte"]).reset_index(drop=True)
    rng = np.random.default_rng(2)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    res = didx.did2x2(df, y="fte", treat="nj", post="d", unit="store_id", vcov=kind,
                      weights="w" if weighted else None)
    U = pd.get_dummies(df["store_id"]).to_numpy(float)
    X = np.column_stack([df["d"], df["nj"] * df["d"], U])
    w = df["w"].to_numpy() if weighted else np.ones(len(df))
    XtWX = X.T @ (X * w[:, None])
    B = np.linalg.pinv(XtWX)
    b = B @ X.T @ (w * df["fte"].to_numpy())
    e = df["fte"].to_numpy() - X @ b
    h = np.einsum("ij,jk,ik->i", X, B, X) * w
    one = h > 1 - 1e-8
    power = 1.0 if kind == "HC2" else 2.0
    omega = np.where(one, 0.0, (w * e) ** 2 / np.where(one, 1.0, 1.0 - h) ** power)
    V = (B @ (X.T @ (X * omega[:, None])) @ B)[:2, :2]
    np.testing.assert_allclose(res.vcov_matrix, V, rtol=1e-8)
    assert one.sum() == int((df.groupby("store_id")["fte"].transform("size") == 1).sum())


def test_hc3_with_two_absorbed_factors_is_refused(mpdta: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"HC3.*one absorbed factor.*countyreal, year.*Fix"):
        didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat", vcov="HC3")


@pytest.mark.parametrize("kw", [{"cluster": "store_id"}, {"unit": "store_id"}, {"vcov": "HC3"},
                                {"unit": "store_id", "first_difference": True}])
def test_row_order_and_unit_labels(card_krueger: pd.DataFrame, kw: dict) -> None:
    base = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", **kw)
    shuffled = card_krueger.sample(frac=1.0, random_state=3)
    shuffled["store_id"] = "s" + (shuffled["store_id"] * 13 + 5).astype(str)
    res = didx.did2x2(shuffled, y="fte", treat="nj", post="d", **kw)
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.table.means, base.table.means, rtol=TOL_IDENTITY)


def test_treat_errors_say_treated_group(card_krueger: pd.DataFrame) -> None:
    with pytest.raises(didx.DataError, match=r"the treated group column 'nj' must be 0/1 .*value\(s\) 2\. Fix"):
        didx.did2x2(card_krueger.assign(nj=card_krueger["nj"] * 2), y="fte", treat="nj", post="d")
    res = didx.did2x2(card_krueger.assign(nj=card_krueger["nj"].where(card_krueger.index != 3)), y="fte",
                      treat="nj", post="d")
    assert "missing treated group (nj)" in {d.reason for d in res.sample.dropped}


def test_treat_is_the_treated_group_dummy(card_krueger: pd.DataFrame) -> None:
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", cluster="store_id")
    assert res.headline == "nj:d" and dict(res.design)["Treated group"] == "nj == 1"
    with pytest.raises(didx.InvalidOptionError, match=r"treat= is required.*Fix"):
        didx.did2x2(card_krueger, y="fte", post="d")


def test_plot_labels_must_be_pairs_of_strings(card_krueger: pd.DataFrame) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d")
    with pytest.raises(didx.InvalidOptionError, match=r"'labels' parameter of DiD2x2Result.plot must be a pair of "
                                                      r"strings.*\('Treated', 'Control'\). Got \('a',\)"):
        res.plot(labels=("a",))
    with pytest.raises(didx.InvalidOptionError, match=r"'period_labels'.*pair of strings.*Got 'ab'"):
        res.plot(period_labels="ab")  # type: ignore[arg-type]
    ax = res.plot(labels=("NJ", "PA"), period_labels=("Feb", "Nov"))
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["NJ", "PA"]
    plt.close("all")


@pytest.mark.parametrize("kw", [{}, {"unit": "store_id", "first_difference": True}])
def test_a_single_cluster_is_a_data_error(card_krueger: pd.DataFrame, kw: dict[str, Any]) -> None:
    df = card_krueger.assign(one=1)
    with pytest.raises(didx.DataError, match=r"cluster variable 'one' has 1 distinct value.*Fix"):
        didx.did2x2(df, y="fte", treat="nj", post="d", cluster="one", **kw)
    with pytest.raises(didx.DataError, match=r"'one' has 1 distinct value"):
        didx.did2x2(df, y="fte", treat="nj", post="d", **kw).with_vcov(cluster="one", data=df)


@pytest.mark.parametrize(("option", "value"), [("first_difference", "yes"), ("first_difference", 1),
                                               ("covariate_trends", "no"), ("covariate_trends", None)])
def test_boolean_options_must_be_bools(card_krueger: pd.DataFrame, option: str, value: object) -> None:
    """A string or number is not read as its truth value ('no' would be True)."""
    with pytest.raises(didx.InvalidOptionError, match=rf"The '{option}' parameter of did2x2 must be a bool\. "
                                                      rf"Got {re.escape(repr(value))} instead\. Fix"):
        didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id", **{option: value})
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id", **{option: np.bool_(True)})
    ref = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", unit="store_id", **{option: True})
    assert res.estimate == ref.estimate


def test_plot_ax_of_the_wrong_type_is_refused(card_krueger: pd.DataFrame) -> None:
    res = didx.did2x2(card_krueger, y="fte", treat="nj", post="d")
    with pytest.raises(didx.InvalidOptionError, match=r"The 'ax' parameter of DiD2x2Result\.plot must be a "
                                                      r"matplotlib Axes or None\. Got 'x' instead"):
        res.plot(ax="x")


@pytest.mark.parametrize("kw", [{"cluster": "store_id"}, {"unit": "store_id"},
                                {"unit": "store_id", "first_difference": True}])
def test_integer_column_labels(card_krueger: pd.DataFrame, kw: dict[str, Any]) -> None:
    """Columns labelled by integers give the same numbers, with the labels' names in terms and clusters."""
    base = didx.did2x2(card_krueger, y="fte", treat="nj", post="d", **kw)
    labels = {"fte": 0, "nj": 1, "d": 2, "store_id": 3}
    res = didx.did2x2(card_krueger.rename(columns=labels), y=0, treat=1, post=2,
                      **{k: labels[v] if isinstance(v, str) else v for k, v in kw.items()})
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=TOL_IDENTITY)
    assert res.headline == "1:2"
    assert res.inference.cluster_names == tuple("3" for _ in base.inference.cluster_names)
