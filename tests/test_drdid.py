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
    res = didx.drdid(nsw, y="re", group="experimental", post="year", unit="id", covariates=COVS, method=method)
    assert _rel(res.estimate, REF[key]["ATT"]) < TOL_ATT
    assert _rel(res.std_error, REF[key]["se"]) < tol_se
    assert res.sample.n_units == 16417


def test_rc_improved_reference(nsw: pd.DataFrame) -> None:
    res = didx.drdid(nsw, y="re", group="experimental", post="year", covariates=COVS, panel=False)
    ref = REF["drdid_imp_rc_on_nsw_long"]
    assert _rel(res.estimate, ref["ATT"]) < TOL_ATT
    assert _rel(res.std_error, ref["se"]) < TOL_SE_IPT
    assert res.influence_function.shape == (32834,)


def test_r_interval_is_1_96_se(nsw: pd.DataFrame) -> None:
    """The reference intervals are ATT -/+ 1.96 se; ours use the exact normal quantile at presentation."""
    res = didx.drdid(nsw, y="re", group="experimental", post="year", unit="id", covariates=COVS)
    ref = REF["drdid_imp_panel"]
    assert ref["lci"] == pytest.approx(ref["ATT"] - 1.96 * ref["se"], rel=1e-12)
    row = res.tidy(conf_level=0.95).iloc[0]
    z = (row["conf_high"] - row["conf_low"]) / (2 * row["std_error"])
    assert z == pytest.approx(1.959963984540054, rel=1e-12)


def test_summary_and_tidy(nsw: pd.DataFrame) -> None:
    res = didx.drdid(nsw, y="re", group="experimental", post="year", unit="id", covariates=COVS)
    text = str(res.summary())
    for piece in ("improved, locally efficient doubly robust", "drdid_imp_panel", "inverse probability tilting",
                  "Trimming", "0.995", "0 trimmed", "odds p/(1-p)", "age, educ"):
        assert piece in text
    tidy = res.tidy()
    assert list(tidy["term"]) == ["ATT"]
    assert {"estimate", "std_error", "p_value", "conf_low", "conf_high"} <= set(tidy.columns)
    assert res.n_trimmed == 0
    assert res.influence_function.shape == (16417,)
    with pytest.raises(ValueError):
        res.influence_function[0] = 1.0


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
    ests = {m: didx.drdid(df, y="y", group="d", post="t", unit=unit, covariates=None, method=m, panel=panel)
            for m in [*ALL_METHODS, "twfe"]}
    ref = didx.did2x2(df, y="y", group="d", post="t").estimate
    for m, r in ests.items():
        assert r.estimate == pytest.approx(ref, rel=TOL_IDENTITY), m
    # the IF-based SEs coincide for the covariate-free DR / IPW / OR estimators
    se = ests["reg"].std_error
    for m in ["dr", "dr_traditional", "ipw"]:
        assert ests[m].std_error == pytest.approx(se, rel=TOL_IDENTITY), m


def test_no_covariates_weighted_equals_weighted_2x2() -> None:
    df = _simulated_panel()
    ref = didx.did2x2(df, y="y", group="d", post="t", weights="w").estimate
    for m in ALL_METHODS:
        r = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None, method=m, weights="w")
        assert r.estimate == pytest.approx(ref, rel=TOL_IDENTITY), m


@pytest.mark.parametrize("method", ["reg", "dr"])
def test_panel_and_rc_agree_on_balanced_panel(method: str) -> None:
    """With time-invariant covariates on a balanced panel, OR and improved DR give the same ATT either way."""
    df = _simulated_panel()
    p = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1", "x2"], method=method)
    r = didx.drdid(df, y="y", group="d", post="t", covariates=["x1", "x2"], method=method, panel=False)
    assert r.estimate == pytest.approx(p.estimate, rel=TOL_IDENTITY)


@pytest.mark.parametrize("method", [*ALL_METHODS, "twfe"])
@pytest.mark.parametrize("panel", [True, False])
def test_row_order_and_unit_labels_invariance(method: str, panel: bool) -> None:
    df = _simulated_panel()
    kw = {"y": "y", "group": "d", "post": "t", "covariates": ["x1", "x2"], "method": method, "weights": "w",
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
    a = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1"], method=method)
    b = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1"], method=method, weights="w3")
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
    res = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates="x", method="ipw", trim_level=0.9)
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
    untrimmed = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates="x", method="ipw", trim_level=1.0)
    assert untrimmed.n_trimmed == 0
    assert untrimmed.estimate != res.estimate


# ---------------------------------------------------------------- sample handling and bad input
def test_missing_covariate_rows_counted_and_units_dropped() -> None:
    df = _simulated_panel()
    df.loc[[0, 5], "x1"] = np.nan  # pre rows of two units
    res = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1", "x2"])
    reasons = {d.reason: d for d in res.sample.dropped}
    assert reasons["missing covariate (x1)"].n_rows == 2
    assert reasons["unit not observed in both periods (balanced panel)"].n_units == 2
    assert res.sample.n_units == 398
    text = str(res.summary())
    assert "missing covariate (x1)" in text and "unit not observed in both periods" in text


def test_collinear_covariate_dropped_and_reported() -> None:
    df = _simulated_panel()
    df["x1_copy"] = 2 * df["x1"]
    a = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1", "x2"])
    b = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1", "x2", "x1_copy"])
    assert b.estimate == pytest.approx(a.estimate, rel=TOL_IDENTITY)
    assert any("x1_copy" in n for n in b.notes)


def test_error_covariates_required() -> None:
    df = _simulated_panel()
    with pytest.raises(InvalidOptionError, match=r"'covariates' argument is required.*covariates=None"):
        didx.drdid(df, y="y", group="d", post="t", unit="id")


def test_error_group_not_binary() -> None:
    df = _simulated_panel()
    df["d"] = df["d"] * 2
    with pytest.raises(DataError, match=r"'d' must be 0/1.*Fix"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None)


def test_error_group_varies_within_unit() -> None:
    df = _simulated_panel()
    df.loc[0, "d"] = 1 - df.loc[0, "d"]
    with pytest.raises(DataError, match=r"group column 'd' varies within a unit of 'id'.*Fix"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None)


def test_error_covariate_varies_within_unit() -> None:
    df = _simulated_panel()
    df.loc[df["t"] == 1, "x1"] += 1.0
    with pytest.raises(DataError, match=r"'x1' changes between the two periods.*Fix"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1"])


def test_error_three_periods() -> None:
    df = _simulated_panel()
    df.loc[df.index[:10], "t"] = 2
    with pytest.raises(DataError, match=r"post column 't' must take exactly two values.*att_gt"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None)


def test_error_panel_without_unit() -> None:
    with pytest.raises(InvalidOptionError, match=r"unit=.*panel=False"):
        didx.drdid(_simulated_panel(), y="y", group="d", post="t", covariates=None)


def test_error_bad_method_and_trim() -> None:
    df = _simulated_panel()
    with pytest.raises(InvalidOptionError, match=r"'method' parameter of drdid.*'dr_traditional'"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None, method="dr_trad")
    with pytest.raises(InvalidOptionError, match="trim_level"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None, trim_level=1.5)
    with pytest.raises(InvalidOptionError, match=r"'trim_level'.*Got True"):  # a bool is not a level
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None, trim_level=True)


def test_error_unknown_covariate_column() -> None:
    with pytest.raises(ColumnNotFoundError, match=r"'x9' given as covariates=.*Fix"):
        didx.drdid(_simulated_panel(), y="y", group="d", post="t", unit="id", covariates=["x9"])


def test_error_small_group() -> None:
    df = _simulated_panel(n=60)
    treated_ids = df.loc[df["d"] == 1, "id"].unique()[3:]
    df = df[~df["id"].isin(treated_ids)]
    with pytest.raises(DesignError, match=r"treated group has 3 units.*at least 7.*Fix"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1", "x2"])


def test_error_time_varying_weights() -> None:
    df = _simulated_panel()
    df.loc[df["t"] == 1, "w"] *= 2
    with pytest.raises(DataError, match=r"weights column 'w' must be constant within a unit"):
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=None, weights="w")


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
        didx.drdid(df, y="y", group="d", post="t", unit="id", covariates="x", method=method)


def test_polars_input_same_result() -> None:
    pl = pytest.importorskip("polars")
    df = _simulated_panel()
    a = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1", "x2"], weights="w")
    b = didx.drdid(pl.from_pandas(df), y="y", group="d", post="t", unit="id", covariates=["x1", "x2"], weights="w")
    assert b.estimate == a.estimate
    assert b.std_error == a.std_error


def test_unit_with_repeated_cross_sections_is_reported_not_silently_ignored() -> None:
    """With panel=False the unit column is not used (as DRDID's idname); the result says so."""
    df = _simulated_panel()
    r = didx.drdid(df, y="y", group="d", post="t", unit="id", covariates=["x1"], panel=False)
    plain = didx.drdid(df, y="y", group="d", post="t", covariates=["x1"], panel=False)
    assert r.estimate == plain.estimate
    assert "unit='id' not used" in dict(r.design)["Data"]
    assert any("unit='id'" in n and "panel=True" in n for n in r.notes)
