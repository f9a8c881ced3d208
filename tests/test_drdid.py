"""didx.drdid and the DRDID building blocks vs R's DRDID 1.2.3; identities, invariances, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import load_reference
from didx._errors import ColumnNotFoundError, DataError, DesignError, InvalidOptionError
from didx.estimators.drdid import panel as core
from didx.estimators.drdid import rc
from didx.estimators.drdid.nuisance import fit_ipt, fit_logit

REF = load_reference("drdid.json")["drdid"]
COVS = ["age", "educ", "black", "married", "nodegree", "hisp", "re74"]

TOL_ATT = 1e-10  # point estimates vs R (observed <= 4e-13)
TOL_SE = 1e-10  # analytic SEs vs R, logit / OLS nuisance fits (observed <= 6e-14)
# The improved DR estimators use the IPT propensity score, which R fits with trust::trust and stops at its
# default tolerance; we solve the strictly convex IPT problem to machine precision. The ATT is insensitive to
# that (its derivative in the pscore coefficients is zero by construction), the SE is not: observed 3.5e-8.
TOL_SE_IPT = 1e-6
TOL_IDENTITY = 1e-9  # identities between didx estimators (relative)


@pytest.fixture(scope="module")
def nsw() -> pd.DataFrame:
    df = didx.datasets.load("nsw_long")
    return df[(df["treated"] == 0) | (df["sample"] == 2)].reset_index(drop=True)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


PANEL_CASES = [
    ("drdid_imp_panel", "dr", TOL_SE_IPT),
    ("drdid_trad_panel", "dr_traditional", TOL_SE),
    ("ordid_panel", "reg", TOL_SE),
    ("ipwdid_panel_normalized", "ipw", TOL_SE),
    ("ipwdid_panel_unnormalized", "ipw_unnormalized", TOL_SE),
    ("twfe_did_panel", "twfe", TOL_SE),
]


@pytest.mark.parametrize(("key", "method", "tol_se"), PANEL_CASES)
def test_panel_reference(nsw: pd.DataFrame, key: str, method: str, tol_se: float) -> None:
    res = didx.drdid(nsw, y="re", treat="experimental", time="year", unit="id", covariates=COVS, est_method=method)
    assert _rel(res.estimate, REF[key]["ATT"]) < TOL_ATT
    assert _rel(res.std_error, REF[key]["se"]) < tol_se
    assert res.sample.n_units == 16417


def test_rc_improved_reference(nsw: pd.DataFrame) -> None:
    res = didx.drdid(nsw, y="re", treat="experimental", time="year", covariates=COVS, panel=False)
    ref = REF["drdid_imp_rc_on_nsw_long"]
    assert _rel(res.estimate, ref["ATT"]) < TOL_ATT
    assert _rel(res.std_error, ref["se"]) < TOL_SE_IPT
    psi = res.influence_functions()
    assert psi.shape == (32834, 1) and list(psi.columns) == ["ATT"]
    assert psi.index.name == "row" and psi.index[-1] == len(nsw) - 1


def test_r_interval_is_1_96_se(nsw: pd.DataFrame) -> None:
    """The reference intervals are ATT -/+ 1.96 se; ours use the exact normal quantile at presentation."""
    res = didx.drdid(nsw, y="re", treat="experimental", time="year", unit="id", covariates=COVS)
    ref = REF["drdid_imp_panel"]
    assert ref["lci"] == pytest.approx(ref["ATT"] - 1.96 * ref["se"], rel=1e-12)
    row = res.tidy(conf_level=0.95).iloc[0]
    z = (row["conf_high"] - row["conf_low"]) / (2 * row["std_error"])
    assert z == pytest.approx(1.959963984540054, rel=1e-12)


def test_summary_and_tidy(nsw: pd.DataFrame) -> None:
    res = didx.drdid(nsw, y="re", treat="experimental", time="year", unit="id", covariates=COVS)
    text = str(res.summary())
    for piece in ("improved, locally efficient doubly robust", "drdid_imp_panel", "inverse probability tilting",
                  "Trimming", "0.995", "0 trimmed", "odds p/(1-p)", "age, educ"):
        assert piece in text
    tidy = res.tidy()
    assert list(tidy["term"]) == ["ATT"]
    assert {"estimate", "std_error", "p_value", "conf_low", "conf_high"} <= set(tidy.columns)
    assert res.n_trimmed == 0
    psi = res.influence_functions()
    assert psi.shape == (16417, 1) and psi.index.name == "id" and psi.index.is_unique
    psi.iloc[0, 0] = 1.0  # a copy: the result's influence function is unchanged
    assert res.influence_functions().iloc[0, 0] != 1.0


# ---------------------------------------------------------------- core interface used by Callaway-Sant'Anna
def _nsw_arrays(nsw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    s = nsw.sort_values(["id", "year"])
    pre = s[s["year"] == 1975]
    post = s[s["year"] == 1978]
    dy = post["re"].to_numpy() - pre["re"].to_numpy()
    D = pre["experimental"].to_numpy() == 1
    X = np.column_stack([np.ones(len(pre)), pre[COVS].to_numpy(float)])
    return dy, D, X, pre["re"].to_numpy(), post["re"].to_numpy()


@pytest.mark.parametrize(("method", "key"), [("dr", "drdid_trad_panel"), ("ipw", "ipwdid_panel_normalized"),
                                             ("reg", "ordid_panel")])
def test_panel_cell_matches_reference(nsw: pd.DataFrame, method: str, key: str) -> None:
    dy, D, X, _, _ = _nsw_arrays(nsw)
    att, inf = core.panel_cell(dy, D, X, None, method)
    assert _rel(att, REF[key]["ATT"]) < TOL_ATT
    assert _rel(core.influence_se(inf), REF[key]["se"]) < TOL_SE
    assert inf.shape == dy.shape
    # the influence function is centred: the SE convention sqrt(sum(inf^2))/n agrees
    assert abs(inf.mean()) < 1e-8 * np.abs(inf).mean()


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_rc_cell_on_stacked_panel(nsw: pd.DataFrame, method: str) -> None:
    """RC versions on the stacked balanced panel: same ATT as the panel versions (time-invariant X)."""
    dy, D, X, y0, y1 = _nsw_arrays(nsw)
    n = dy.shape[0]
    att_p, _ = core.panel_cell(dy, D, X, None, method)
    y = np.concatenate([y0, y1])
    post = np.repeat([0.0, 1.0], n)
    att_rc, inf_rc = rc.rc_cell(y, post, np.concatenate([D, D]), np.vstack([X, X]), None, method)
    assert att_rc == pytest.approx(att_p, rel=TOL_IDENTITY)
    assert inf_rc.shape == (2 * n,)


def test_cell_methods_validated() -> None:
    with pytest.raises(InvalidOptionError, match="method must be one of"):
        core.panel_cell(np.zeros(4), np.array([1, 0, 1, 0], bool), None, None, "imp")
    with pytest.raises(InvalidOptionError, match="method must be one of"):
        rc.rc_cell(np.zeros(4), np.zeros(4), np.array([1, 0, 1, 0], bool), None, None, "twfe")


def test_ipt_balances_covariates(nsw: pd.DataFrame) -> None:
    """At the IPT optimum the odds-weighted comparison units reproduce the treated covariate totals."""
    _, D, X, _, _ = _nsw_arrays(nsw)
    d = D.astype(float)
    w = np.ones_like(d)
    fit = fit_ipt(X, d, w)
    assert fit.converged and fit.kind == "ipt"
    odds = fit.pscore / (1 - fit.pscore)
    np.testing.assert_allclose(((1 - d) * odds) @ X, d @ X, rtol=1e-9)
    logit = fit_logit(X, d, w)
    score = X.T @ (d - logit.pscore)
    assert np.max(np.abs(score) / (np.abs(X).T @ np.ones_like(d))) < 1e-12


# ---------------------------------------------------------------- identities
def _simulated_panel(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, size=n).astype(float)
    d = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.3 * x1 - 0.5 * x2)))).astype(int)
    y0 = 1 + x1 + 0.5 * x2 + rng.normal(size=n)
    y1 = y0 + 0.5 + 0.3 * x1 + 1.0 * d + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    ids = np.arange(n) + 1000
    return pd.DataFrame({
        "id": np.concatenate([ids, ids]), "t": np.repeat([0, 1], n), "y": np.concatenate([y0, y1]),
        "d": np.concatenate([d, d]), "x1": np.concatenate([x1, x1]), "x2": np.concatenate([x2, x2]),
        "w": np.concatenate([w, w]),
    })


ALL_METHODS = ["dr", "dr_traditional", "ipw", "ipw_unnormalized", "reg"]


@pytest.mark.parametrize("panel", [True, False])
def test_no_covariates_all_methods_equal_2x2(panel: bool) -> None:
    df = _simulated_panel()
    unit = "id" if panel else None
    ests = {m: didx.drdid(df, y="y", treat="d", time="t", unit=unit, covariates=None, est_method=m, panel=panel)
            for m in [*ALL_METHODS, "twfe"]}
    ref = didx.did2x2(df, y="y", treat="d", post="t").estimate
    for m, r in ests.items():
        assert r.estimate == pytest.approx(ref, rel=TOL_IDENTITY), m
    # the IF-based SEs coincide for the covariate-free DR / IPW / OR estimators
    se = ests["reg"].std_error
    for m in ["dr", "dr_traditional", "ipw"]:
        assert ests[m].std_error == pytest.approx(se, rel=TOL_IDENTITY), m


def test_no_covariates_weighted_equals_weighted_2x2() -> None:
    df = _simulated_panel()
    ref = didx.did2x2(df, y="y", treat="d", post="t", weights="w").estimate
    for m in ALL_METHODS:
        r = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None, est_method=m, weights="w")
        assert r.estimate == pytest.approx(ref, rel=TOL_IDENTITY), m


@pytest.mark.parametrize("method", ["reg", "dr"])
def test_panel_and_rc_agree_on_balanced_panel(method: str) -> None:
    """With time-invariant covariates on a balanced panel, OR and improved DR give the same ATT either way."""
    df = _simulated_panel()
    p = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1", "x2"], est_method=method)
    r = didx.drdid(df, y="y", treat="d", time="t", covariates=["x1", "x2"], est_method=method, panel=False)
    assert r.estimate == pytest.approx(p.estimate, rel=TOL_IDENTITY)


@pytest.mark.parametrize("method", [*ALL_METHODS, "twfe"])
@pytest.mark.parametrize("panel", [True, False])
def test_row_order_and_unit_labels_invariance(method: str, panel: bool) -> None:
    df = _simulated_panel()
    kw = {"y": "y", "treat": "d", "time": "t", "covariates": ["x1", "x2"], "est_method": method, "weights": "w",
          "panel": panel}
    base = didx.drdid(df, unit="id", **kw)
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["id"] = shuffled["id"].map(lambda i: f"unit-{(i * 7919) % 100003}")
    other = didx.drdid(shuffled, unit="id", **kw)
    assert other.estimate == pytest.approx(base.estimate, rel=TOL_IDENTITY)
    assert other.std_error == pytest.approx(base.std_error, rel=TOL_IDENTITY)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_constant_weights_change_nothing(method: str) -> None:
    df = _simulated_panel()
    df["w3"] = 3.0
    a = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1"], est_method=method)
    b = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1"], est_method=method, weights="w3")
    assert b.estimate == pytest.approx(a.estimate, rel=TOL_IDENTITY)
    assert b.std_error == pytest.approx(a.std_error, rel=TOL_IDENTITY)


def test_trimming_counts_and_zero_weights() -> None:
    rng = np.random.default_rng(5)
    n = 600
    x = rng.normal(size=n)
    d = (rng.uniform(size=n) < 1 / (1 + np.exp(-(4.0 * x - 3)))).astype(int)
    y0 = x + rng.normal(size=n)
    y1 = y0 + 1 + d + rng.normal(size=n)
    df = pd.DataFrame({"id": np.tile(np.arange(n), 2), "t": np.repeat([0, 1], n), "y": np.concatenate([y0, y1]),
                       "d": np.tile(d, 2), "x": np.tile(x, 2)})
    res = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates="x", est_method="ipw", trim_level=0.9)
    assert res.n_trimmed > 0
    assert f"{res.n_trimmed} trimmed" in str(res.summary())
    # trimmed comparison units do not enter the estimate or its influence function
    dy = y1 - y0
    full = core.panel_ipw(dy, d == 1, np.column_stack([np.ones(n), x]), None, trim_level=0.9)
    assert full.att == pytest.approx(res.estimate, rel=1e-12)
    ps = fit_logit(np.column_stack([np.ones(n), x]), d.astype(float), np.ones(n)).pscore
    trimmed = (d == 0) & (ps >= 0.9)
    assert trimmed.sum() == res.n_trimmed
    # by hand: treated mean minus the odds-weighted mean of the untrimmed comparison units
    odds = np.where((d == 0) & ~trimmed, ps / (1 - ps), 0.0)
    by_hand = dy[d == 1].mean() - np.sum(odds * dy) / np.sum(odds)
    assert res.estimate == pytest.approx(by_hand, rel=1e-10)
    untrimmed = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates="x", est_method="ipw", trim_level=1.0)
    assert untrimmed.n_trimmed == 0
    assert untrimmed.estimate != res.estimate


# ---------------------------------------------------------------- sample handling and bad input
def test_missing_covariate_rows_counted_and_units_dropped() -> None:
    df = _simulated_panel()
    df.loc[[0, 5], "x1"] = np.nan  # pre rows of two units
    res = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1", "x2"])
    reasons = {d.reason: d for d in res.sample.dropped}
    assert reasons["missing covariate (x1)"].n_rows == 2
    assert reasons["unit not observed in both periods (balanced panel)"].n_units == 2
    assert res.sample.n_units == 398
    text = str(res.summary())
    assert "missing covariate (x1)" in text and "unit not observed in both periods" in text


def test_collinear_covariate_dropped_and_reported() -> None:
    df = _simulated_panel()
    df["x1_copy"] = 2 * df["x1"]
    a = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1", "x2"])
    b = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1", "x2", "x1_copy"])
    assert b.estimate == pytest.approx(a.estimate, rel=TOL_IDENTITY)
    assert any("x1_copy" in n for n in b.notes)


def test_error_covariates_required() -> None:
    df = _simulated_panel()
    with pytest.raises(InvalidOptionError, match=r"'covariates' argument is required.*covariates=None"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id")


def test_error_group_not_binary() -> None:
    df = _simulated_panel()
    df["d"] = df["d"] * 2
    with pytest.raises(DataError, match=r"'d' must be 0/1.*Fix"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None)


def test_error_group_varies_within_unit() -> None:
    df = _simulated_panel()
    df.loc[0, "d"] = 1 - df.loc[0, "d"]
    with pytest.raises(DataError, match=r"treat column 'd' \(treated-group indicator\) varies within a unit of 'id'"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None)


def test_error_covariate_varies_within_unit() -> None:
    df = _simulated_panel()
    df.loc[df["t"] == 1, "x1"] += 1.0
    with pytest.raises(DataError, match=r"'x1' changes between the two periods.*Fix"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1"])


def test_error_three_periods() -> None:
    df = _simulated_panel()
    df.loc[df.index[:10], "t"] = 2
    with pytest.raises(DataError, match=r"time column 't' must take exactly two values.*att_gt"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None)


def test_error_panel_without_unit() -> None:
    with pytest.raises(InvalidOptionError, match=r"unit=.*panel=False"):
        didx.drdid(_simulated_panel(), y="y", treat="d", time="t", covariates=None)


def test_error_bad_method_and_trim() -> None:
    df = _simulated_panel()
    with pytest.raises(InvalidOptionError, match=r"'est_method' parameter of drdid.*'dr_traditional'"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None, est_method="dr_trad")
    with pytest.raises(InvalidOptionError, match="trim_level"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None, trim_level=1.5)
    with pytest.raises(InvalidOptionError, match=r"'trim_level'.*Got True"):  # a bool is not a level
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None, trim_level=True)


def test_error_unknown_covariate_column() -> None:
    with pytest.raises(ColumnNotFoundError, match=r"'x9' given as covariates=.*Fix"):
        didx.drdid(_simulated_panel(), y="y", treat="d", time="t", unit="id", covariates=["x9"])


def test_error_small_group() -> None:
    df = _simulated_panel(n=60)
    treated_ids = df.loc[df["d"] == 1, "id"].unique()[3:]
    df = df[~df["id"].isin(treated_ids)]
    with pytest.raises(DesignError, match=r"treated group has 3 units.*at least 7.*Fix"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1", "x2"])


def test_error_time_varying_weights() -> None:
    df = _simulated_panel()
    df.loc[df["t"] == 1, "w"] *= 2
    with pytest.raises(DataError, match=r"weights column 'w' must be constant within a unit"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None, weights="w")


def test_error_rc_empty_cell() -> None:
    with pytest.raises(DesignError, match="treated group has none in the pre period"):
        rc.rc_reg(np.arange(6.0), np.array([0, 1, 0, 1, 1, 1]), np.array([0, 0, 0, 0, 1, 1]))


# ---------------------------------------------------------------- influence functions = empirical derivatives
def _gateaux_data(n: int = 200, seed: int = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x2 = rng.binomial(1, 0.5, n).astype(float)
    d = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.5 * x - 0.3)))).astype(float)
    post = rng.integers(0, 2, n).astype(float)
    y = x + 0.5 * x2 + post * (1 + 0.3 * x) + d * post + rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, x2])
    return y, post, d, X, rng.uniform(0.5, 2.0, n)


PANEL_FUNCS = [core.panel_dr, core.panel_ipw, core.panel_reg, core.panel_dr_improved, core.panel_ipw_unnormalized]
RC_FUNCS = [rc.rc_ipw, rc.rc_reg, rc.rc_ipw_unnormalized, rc.rc_twfe]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("func", PANEL_FUNCS + RC_FUNCS, ids=lambda f: getattr(f, "__name__", str(f)))
def test_influence_function_is_the_empirical_derivative(func: object, weighted: bool) -> None:
    """inf_i = n * d att / d (weight of i) * w_i / mean(w), by central differences (exact nuisance fits).

    Not for ``rc_dr`` (R's drdid_rc adds, rather than subtracts, the pre-period OLS estimation effects; the
    difference vanishes when the propensity score balances X) nor ``rc_dr_improved`` (R keeps the leading term,
    exact only asymptotically); with unequal weights not for ``rc_ipw_unnormalized`` (R's IF treats the weights as
    data: ``w D - mean(w D)``)."""
    if weighted and func is rc.rc_ipw_unnormalized:
        pytest.skip("R's ipw_did_rc influence function treats the weights as data")
    y, post, d, X, w = _gateaux_data()
    if not weighted:
        w = np.ones_like(w)
    n = y.shape[0]

    def fit(ww: np.ndarray) -> core.CellEstimate:
        if func in PANEL_FUNCS:
            return func(y, d, X, ww)  # type: ignore[operator,no-any-return]
        return func(y, post, d, X, ww)  # type: ignore[operator,no-any-return]

    base = fit(w)
    eps = 1e-6
    for i in (0, 3, 50, 199):
        up, down = w.copy(), w.copy()
        up[i] += eps * w.mean()
        down[i] -= eps * w.mean()
        numeric = n * (fit(up).att - fit(down).att) / (2 * eps) * w[i] / w.mean()
        assert numeric == pytest.approx(base.inf_func[i], abs=1e-6 * np.abs(base.inf_func).max())


@pytest.mark.parametrize("method", ["dr", "dr_traditional", "ipw"])
def test_error_perfect_separation(method: str) -> None:
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    d = (x > 0.5).astype(int)
    y0 = rng.normal(size=n)
    df = pd.DataFrame({"id": np.tile(np.arange(n), 2), "t": np.repeat([0, 1], n),
                       "y": np.concatenate([y0, y0 + d + rng.normal(size=n)]), "d": np.tile(d, 2),
                       "x": np.tile(x, 2)})
    with pytest.raises(DesignError, match=r"perfectly separate treated and comparison units.*Fix"):
        didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates="x", est_method=method)


def test_polars_input_same_result() -> None:
    pl = pytest.importorskip("polars")
    df = _simulated_panel()
    a = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1", "x2"], weights="w")
    b = didx.drdid(pl.from_pandas(df), y="y", treat="d", time="t", unit="id", covariates=["x1", "x2"], weights="w")
    assert b.estimate == a.estimate
    assert b.std_error == a.std_error


def test_unit_with_repeated_cross_sections_is_reported_not_silently_ignored() -> None:
    """With panel=False the unit column is not used (as DRDID's idname); the result says so."""
    df = _simulated_panel()
    r = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1"], panel=False)
    plain = didx.drdid(df, y="y", treat="d", time="t", covariates=["x1"], panel=False)
    assert r.estimate == plain.estimate
    assert "unit='id' not used" in dict(r.design)["Data"]
    assert any("unit='id'" in n and "panel=True" in n for n in r.notes)


# ---------------------------------------------------------------- covariance contract: with_vcov from the IF
def _clustered_panel() -> pd.DataFrame:
    df = _simulated_panel()
    df["state"] = (df["id"] - 1000) // 17  # 24 states nesting units
    return df


@pytest.mark.parametrize("method", ["dr", "dr_traditional", "ipw", "reg", "twfe"])
@pytest.mark.parametrize("panel", [True, False])
def test_with_vcov_equals_refit_with_that_option(method: str, panel: bool) -> None:
    df = _clustered_panel()
    kw = {"y": "y", "treat": "d", "time": "t", "unit": "id" if panel else None, "covariates": ["x1", "x2"],
          "est_method": method, "panel": panel}
    plain = didx.drdid(df, **kw)
    clustered = didx.drdid(df, cluster="state", **kw)
    assert clustered.inference.cluster_names == ("state",) and clustered.inference.n_clusters == (24,)
    assert clustered.estimate == plain.estimate and clustered.std_error != pytest.approx(plain.std_error, rel=1e-3)
    # a column not captured at fit time: from data= (checked) or the values themselves
    for new in (plain.with_vcov(cluster="state", data=df), plain.with_vcov(cluster=df["state"])):
        assert new.std_error == pytest.approx(clustered.std_error, rel=1e-10)
        assert new.inference.cluster_names == ("state",)
    # default = as at fit time; 'analytic' without cluster = by unit / observation
    assert clustered.with_vcov().std_error == pytest.approx(clustered.std_error, rel=1e-10)
    assert clustered.with_vcov("analytic").std_error == pytest.approx(plain.std_error, rel=1e-10)
    assert plain.with_vcov().std_error == pytest.approx(plain.std_error, rel=1e-10)
    if panel:  # the unit is captured at fit time
        by_unit = didx.drdid(df, cluster="id", **kw)
        assert plain.with_vcov(cluster="id").std_error == pytest.approx(by_unit.std_error, rel=1e-10)
        if method != "twfe":  # one influence-function entry per unit: clustering by unit is the default
            assert by_unit.std_error == pytest.approx(plain.std_error, rel=1e-10)


@pytest.mark.parametrize("method", ["dr", "twfe"])
def test_clustered_se_is_the_sum_of_the_influence_function_by_cluster(method: str) -> None:
    df = _clustered_panel()
    res = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=["x1"], est_method=method,
                     cluster="state")
    psi = res.influence_functions()["ATT"]
    units = psi.index.get_level_values(0)
    state = (np.asarray(units) - 1000) // 17
    c = psi.to_numpy() - psi.mean()
    sums = pd.Series(c).groupby(state).sum().to_numpy()
    n = len(psi)
    scale = n * (n - 1) if method == "twfe" else n * n
    assert res.std_error == pytest.approx(np.sqrt((sums**2).sum() / scale), rel=1e-12)
    if method == "twfe":  # stacked rows: (unit, period), pre rows first
        assert psi.index.names == ["id", "period"] and list(psi.index.get_level_values(1)[[0, -1]]) == [0, 1]


def test_with_vcov_refuses_what_it_does_not_support() -> None:
    df = _clustered_panel()
    res = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None)
    for bad in ({"vcov": "HC1"}, {"ssc": didx.SSC()}, {"cluster": ["state", "id"]}):
        with pytest.raises(InvalidOptionError, match=r"does not support.*It supports: vcov= 'analytic'.*Fix"):
            res.with_vcov(**bad, data=df)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"'state' was not captured at fit time.*data="):
        res.with_vcov(cluster="state")
    assert res.capabilities is not None and res.capabilities.vcov == ("analytic",)


def test_with_vcov_data_must_be_the_fitted_frame() -> None:
    df = _clustered_panel()
    res = didx.drdid(df, y="y", treat="d", time="t", unit="id", covariates=None)
    with pytest.raises(DataError, match=r"data= for .state. have 799 rows.*had 800"):
        res.with_vcov(cluster="state", data=df.iloc[1:])
    with pytest.raises(DataError, match=r"not the frame that was fitted"):
        res.with_vcov(cluster="state", data=df.iloc[::-1].reset_index(drop=True))
    with pytest.raises(DataError, match=r"have 799 rows.*had 800"):
        res.with_vcov(cluster=df["state"].iloc[1:])


def test_cluster_errors() -> None:
    df = _clustered_panel()
    kw = {"y": "y", "treat": "d", "time": "t", "unit": "id", "covariates": None}
    df["one"] = 1
    with pytest.raises(DataError, match=r"'one' has 1 distinct value.*at least two clusters"):
        didx.drdid(df, cluster="one", **kw)
    df["rowwise"] = np.arange(len(df))
    with pytest.raises(DataError, match=r"'rowwise' varies within units.*Fix"):
        didx.drdid(df, cluster="rowwise", **kw)
    with pytest.raises(DataError, match=r"'rowwise' varies within units"):
        didx.drdid(df, **kw).with_vcov(cluster="rowwise", data=df)


@pytest.mark.parametrize("col", ["id", "t"])
def test_error_outcome_is_the_unit_or_time_column(col: str) -> None:
    with pytest.raises(InvalidOptionError, match=rf"'{col}' is given as both y= and .*=.*Fix"):
        didx.drdid(_simulated_panel(), y=col, treat="d", time="t", unit="id", covariates=None)


def test_a_list_for_a_one_column_role_is_refused_by_name() -> None:
    """y=['y'] (and treat=, time=, unit=) is an error naming the argument, for drdid and att_gt alike (the role
    check runs before any argument is used as a key)."""
    df = _simulated_panel()
    for role in ("y", "treat", "time", "unit"):
        kw: dict[str, object] = {"y": "y", "treat": "d", "time": "t", "unit": "id", role: [role]}
        with pytest.raises(InvalidOptionError, match=rf"The '{role}' parameter of drdid must be a column name.*"
                                                     rf"Got \['{role}'\] \(a list\)"):
            didx.drdid(df, covariates=None, **kw)  # type: ignore[arg-type]
    stag = didx.datasets.simulate_staggered(30, 5, [3, 4], never_share=0.4, seed=1)
    with pytest.raises(InvalidOptionError, match=r"The 'y' parameter of att_gt must be a column name.*Got \['y'\]"):
        didx.att_gt(stag, y=["y"], unit="unit", time="time", cohort="cohort")  # type: ignore[arg-type]


def test_one_column_in_two_roles_by_integer_label_and_name() -> None:
    """treat=11 and time='11' name the same column (labelled 11): refused as for two equal strings."""
    df = _simulated_panel().rename(columns={"t": 11})
    with pytest.raises(InvalidOptionError, match=r"the column '11' is given as both treat= and time="):
        didx.drdid(df, y="y", treat=11, time="11", unit="id", covariates=None)  # type: ignore[arg-type]
    res = didx.drdid(df, y="y", treat="d", time=11, unit="id", covariates=None)  # type: ignore[arg-type]
    assert res.estimate == didx.drdid(_simulated_panel(), y="y", treat="d", time="t", unit="id",
                                      covariates=None).estimate
