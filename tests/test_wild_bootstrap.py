"""Wild cluster bootstrap: fwildclusterboot reference, brute-force enumeration, Wald version, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import didx
import didx.inference.wild as wild_module
from conftest import load_reference
from didx._errors import DidxError, InvalidOptionError

REF = load_reference("wild_bootstrap.json")["voters"]
TOL_ESTIMATE = 1e-10      # point estimate vs lm (exact)
TOL_T = 1e-3              # the printed t (3 decimals)
MC_P = 0.002              # |p - p_ref|: ref printed to 3 decimals (+-0.0005) plus MC sd ~0.0003 at B = 9999
MC_CI = 0.002             # CI end points: ref printed to 3 decimals plus the MC error of the inversion
TOL_BRUTE = 1e-8          # bootstrap statistics: fast algorithm vs brute-force refits (relative)
TIE = 1e-12               # the tie rule of didx.inference.wild (TIE_RTOL)
ATOL_ZERO = 1e-12         # WCU draws v = +-1 give t* = 0 (rounding noise ~1e-16)


@pytest.fixture(scope="module")
def voters_fit() -> didx.OLSResult:  # type: ignore[name-defined]
    v = didx.datasets.load("voters")
    return didx.ols(v, y="proposition_vote", x=["treatment", "log_income"], fe=["Q1_immigration", "Q2_defense"],
                    cluster="group_id1")


def test_voters_reference(voters_fit) -> None:  # type: ignore[no-untyped-def]
    wb = voters_fit.wild_bootstrap("treatment", n_bootstrap=9999, seed=20240501)
    assert wb.estimate == pytest.approx(REF["estimate"], rel=TOL_ESTIMATE)
    assert abs(wb.statistic - REF["t_stat"]) < TOL_T
    assert wb.statistic == pytest.approx(voters_fit.tidy().set_index("term").loc["treatment", "statistic"], rel=1e-12)
    assert abs(wb.p_value - REF["p_value"]) < MC_P
    assert abs(wb.conf_int[0] - REF["conf_int_95"][0]) < MC_CI
    assert abs(wb.conf_int[1] - REF["conf_int_95"][1]) < MC_CI
    assert wb.n_bootstrap == 9999 and not wb.full_enumeration and wb.method == "WCR" and wb.n_clusters == 40
    # seeded: the same seed gives the same numbers; a different seed is different draws
    again = voters_fit.wild_bootstrap("treatment", n_bootstrap=9999, seed=20240501)
    assert again.p_value == wb.p_value and again.conf_int == wb.conf_int
    assert "group_id1" in str(wb) and "WCR" in str(wb)


def test_voters_wcu_and_other_weights(voters_fit) -> None:  # type: ignore[no-untyped-def]
    for kind in ("rademacher", "webb", "mammen", "normal"):
        wb = voters_fit.wild_bootstrap("treatment", n_bootstrap=1999, seed=1, weights=kind, impose_null=False)
        assert wb.method == "WCU" and wb.weights == kind
        assert wb.p_value < 0.02
        lo, hi = wb.conf_int
        assert lo < wb.estimate < hi
        assert abs(lo - REF["conf_int_95"][0]) < 0.01 and abs(hi - REF["conf_int_95"][1]) < 0.01


def test_ci_inversion_boundary(voters_fit) -> None:  # type: ignore[no-untyped-def]
    """The WCR interval end points are where the bootstrap p-value of r crosses 1 - conf_level."""
    wb = voters_fit.wild_bootstrap("treatment", n_bootstrap=999, seed=3)
    lo, hi = wb.conf_int
    eps = 1e-6 * voters_fit.std_error
    for end, inward in ((lo, 1.0), (hi, -1.0)):
        inside = voters_fit.wild_bootstrap("treatment", n_bootstrap=999, seed=3, r=end + inward * eps)
        outside = voters_fit.wild_bootstrap("treatment", n_bootstrap=999, seed=3, r=end - inward * eps)
        assert inside.p_value > 0.05 >= outside.p_value


# ---------------------------------------------------------------- brute force
def _small_panel(seed: int, G: int, weighted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(G):
        for unit in range(3):
            for t in range(5):
                rows.append((g, f"{g}-{unit}", t))
    df = pd.DataFrame(rows, columns=["state", "unit", "year"])
    n = len(df)
    treated_state = df["state"] < G // 2
    df["treat"] = (treated_state & (df["year"] >= 3)).astype(float)
    df["x2"] = rng.normal(size=n)
    shock = rng.normal(size=G)[df["state"]]
    df["y"] = 0.3 * df["treat"] + 0.5 * df["x2"] + shock + rng.normal(size=n) * (1 + df["state"] / G)
    if weighted:
        df["w"] = rng.uniform(0.5, 2.0, size=n)
    return df


def _dummies(codes: pd.Series) -> np.ndarray:
    return pd.get_dummies(codes, drop_first=True).to_numpy(dtype=float)


def _brute_force(df: pd.DataFrame, fe: list[str], cols: list[int], r: np.ndarray, impose_null: bool,
                 weights: str | None = None) -> tuple[float, np.ndarray]:
    """Every Rademacher sign vector: re-estimate the full dummy-variable OLS, CR1 statistic (no correction
    factor: it cancels between the observed and the bootstrap statistics). Returns (observed, draws)."""
    X = np.column_stack([df["treat"], df["x2"], np.ones(len(df))] + [_dummies(df[f]) for f in fe])
    keepcols = np.linalg.matrix_rank(X)
    assert keepcols == X.shape[1]
    y = df["y"].to_numpy()
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy()
    sw = np.sqrt(w)
    cl = df["state"].to_numpy()
    G = int(cl.max()) + 1
    R = np.zeros((len(cols), X.shape[1]))
    for i, c in enumerate(cols):
        R[i, c] = 1.0

    def fit(yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.linalg.lstsq(X * sw[:, None], yy * sw, rcond=None)[0]
        return b, yy - X @ b

    def stat(b: np.ndarray, e: np.ndarray, center: np.ndarray) -> float:
        bread = np.linalg.inv(X.T @ (X * w[:, None]))
        meat = np.zeros((X.shape[1], X.shape[1]))
        for g in range(G):
            m = cl == g
            s = X[m].T @ (w[m] * e[m])
            meat += np.outer(s, s)
        V = bread @ meat @ bread
        d = R @ b - center
        RVR = R @ V @ R.T
        return float(d @ np.linalg.solve(RVR, d)) if len(cols) > 1 else float(d[0] / np.sqrt(RVR[0, 0]))

    b_hat, e_hat = fit(y)
    observed = stat(b_hat, e_hat, r)
    if impose_null:
        # restricted least squares: move the restricted regressors to the left-hand side
        free = [j for j in range(X.shape[1]) if j not in cols]
        y_r = y - X[:, cols] @ r
        g_r = np.linalg.lstsq(X[:, free] * sw[:, None], y_r * sw, rcond=None)[0]
        u = y_r - X[:, free] @ g_r
        fitted = y - u
        center = r
    else:
        u, fitted, center = e_hat, y - e_hat, R @ b_hat
    draws = []
    for signs in itertools.product([1.0, -1.0], repeat=G):
        v = np.asarray(signs)[cl]
        b_star, e_star = fit(fitted + u * v)
        draws.append(stat(b_star, e_star, center))
    return observed, np.asarray(draws)


def _p(observed: float, draws: np.ndarray, joint: bool) -> float:
    vals = draws if joint else np.abs(draws)
    obs = observed if joint else abs(observed)
    return float(np.mean(vals > obs + TIE * abs(obs)))


CASES = [
    # (G, fixed effects, weights, impose_null)
    (6, ["unit", "year"], None, True),      # unit FE nested in the clusters, year FE not: crosstab correction
    (7, ["year"], None, False),             # WCU
    (8, ["unit", "year"], "w", True),       # regression weights
    (6, [], None, True),                    # no fixed effects (intercept)
]


@pytest.mark.parametrize(("G", "fe", "weights", "impose_null"), CASES)
def test_full_enumeration_equals_brute_force(G: int, fe: list[str], weights: str | None, impose_null: bool) -> None:
    df = _small_panel(11 + G, G, weighted=weights is not None)
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=fe or None, cluster="state", weights=weights)
    wb = res.wild_bootstrap("treat", n_bootstrap=9999, impose_null=impose_null, seed=None)
    assert wb.full_enumeration and wb.n_bootstrap == 2**G and wb.n_invalid == 0
    observed, draws = _brute_force(df, fe, [0], np.array([0.0]), impose_null, weights)
    # statistics agree up to the common small-sample factor
    ratio_fast = np.sort(np.abs(wb.bootstrap_statistics / wb.statistic))
    ratio_brute = np.sort(np.abs(draws / observed))
    np.testing.assert_allclose(ratio_fast, ratio_brute, rtol=TOL_BRUTE, atol=ATOL_ZERO)
    assert wb.p_value == _p(observed, draws, joint=False)
    # exactly reproducible: no randomness under full enumeration, whatever the seed
    assert res.wild_bootstrap("treat", n_bootstrap=9999, impose_null=impose_null, seed=123).p_value == wb.p_value


def test_nonzero_null_and_demean_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    df = _small_panel(5, 7)
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=["unit", "year"], cluster="state")
    wb = res.wild_bootstrap("treat", r=0.25)
    observed, draws = _brute_force(df, ["unit", "year"], [0], np.array([0.25]), True)
    assert wb.p_value == _p(observed, draws, joint=False)
    # the demeaning fallback for many non-nested levels gives the same draws
    monkeypatch.setattr(wild_module, "MAX_CROSSTAB_LEVELS", 0)
    wb2 = res.wild_bootstrap("treat", r=0.25)
    assert "demeaning passes" in wb2.fixed_effects
    np.testing.assert_allclose(wb2.bootstrap_statistics, wb.bootstrap_statistics, rtol=TOL_BRUTE)


def test_two_nested_factors_path() -> None:
    """Two factors nested in the clusters (unit and state) plus a non-nested one: the demeaning branch of the
    L x L matrix."""
    df = _small_panel(8, 6)
    df["state_fe"] = df["state"]
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=["unit", "state_fe", "year"], cluster="state")
    wb = res.wild_bootstrap("treat")
    observed, draws = _brute_force(df, ["unit", "year"], [0], np.array([0.0]), True)
    np.testing.assert_allclose(np.sort(np.abs(wb.bootstrap_statistics / wb.statistic)),
                               np.sort(np.abs(draws / observed)), rtol=TOL_BRUTE)


@pytest.mark.parametrize("impose_null", [True, False])
def test_joint_wald_equals_brute_force(impose_null: bool) -> None:
    df = _small_panel(21, 7)
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=["unit", "year"], cluster="state")
    wb = res.wild_bootstrap(["treat", "x2"], impose_null=impose_null)
    assert wb.n_restrictions == 2 and np.isnan(wb.conf_int[0])
    # the observed Wald statistic is the analytic CR1 Wald test's chi-square
    assert wb.statistic == pytest.approx(res.wald(["treat", "x2"]).statistic, rel=1e-10)
    observed, draws = _brute_force(df, ["unit", "year"], [0, 1], np.zeros(2), impose_null)
    np.testing.assert_allclose(np.sort(wb.bootstrap_statistics / wb.statistic), np.sort(draws / observed),
                               rtol=TOL_BRUTE, atol=ATOL_ZERO)
    assert wb.p_value == _p(observed, draws, joint=True)


def test_matrix_hypothesis_single_row_equals_term() -> None:
    df = _small_panel(3, 6)
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=["unit", "year"], cluster="state")
    a = res.wild_bootstrap("treat")
    b = res.wild_bootstrap(np.array([[1.0, 0.0]]))
    assert a.p_value == b.p_value and a.statistic == pytest.approx(b.statistic, rel=1e-12)


def test_works_on_twfe_and_event_study_results(mpdta) -> None:  # type: ignore[no-untyped-def]
    small = mpdta[mpdta["countyreal"] % 7 == 0]
    res = didx.twfe(small, y="lemp", unit="countyreal", time="year", treat="treat_post", cluster="countyreal")
    wb = res.wild_bootstrap("treat_post", n_bootstrap=499, seed=2)
    assert wb.n_clusters == small["countyreal"].nunique()
    assert wb.statistic == pytest.approx(res.tidy().loc[0, "statistic"], rel=1e-10)
    # an explicit cluster= equal to the default
    wb_state = res.wild_bootstrap("treat_post", n_bootstrap=99, seed=2, cluster="countyreal")
    assert wb_state.cluster == "countyreal"


# ---------------------------------------------------------------- bad input
def test_unknown_term_did_you_mean(voters_fit) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidOptionError, match=r"'treatmnt'.*Did you mean 'treatment'"):
        voters_fit.wild_bootstrap("treatmnt")


def test_bad_weights_name(voters_fit) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidOptionError, match=r"'weights' parameter .*'rademacher'.*Got 'rademacer'.*Did you mean"):
        voters_fit.wild_bootstrap("treatment", weights="rademacer")


def test_no_clusters() -> None:
    v = didx.datasets.load("voters")
    res = didx.ols(v, y="proposition_vote", x=["treatment"])
    with pytest.raises(InvalidOptionError, match=r"not clustered.*Fix: pass cluster="):
        res.wild_bootstrap("treatment")
    # passing cluster= works on an unclustered result
    assert res.wild_bootstrap("treatment", cluster="group_id1", n_bootstrap=99, seed=1, data=v).n_clusters == 40


def test_bad_options(voters_fit) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidOptionError, match=r"The 'n_bootstrap' parameter of wild_bootstrap must be an int >= 1"):
        voters_fit.wild_bootstrap("treatment", n_bootstrap=0)
    with pytest.raises(InvalidOptionError, match="conf_level"):
        voters_fit.wild_bootstrap("treatment", conf_level=95)
    with pytest.raises(InvalidOptionError, match="R must have 2 columns"):
        voters_fit.wild_bootstrap(np.ones((1, 3)))
    with pytest.raises(InvalidOptionError, match=r"The 'r' parameter of wild_bootstrap must be a finite number"):
        voters_fit.wild_bootstrap("treatment", r=np.nan)
    with pytest.raises(DidxError, match="column 'nope'"):
        voters_fit.wild_bootstrap("treatment", cluster="nope")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("seed", "x",
     r"The 'seed' parameter of wild_bootstrap must be an int in \[0, 2\*\*32\) or None\. Got 'x' instead\."),
    ("seed", -1, r"The 'seed' parameter of wild_bootstrap must be an int in \[0, 2\*\*32\) or None\. Got -1 instead\."),
    ("seed", 1.5, r"'seed' parameter .*Got 1\.5 instead"),
    ("r", "x", r"The 'r' parameter of wild_bootstrap must be a finite number or a sequence of finite numbers.*Got 'x'"),
    ("r", [0.0, "x"], r"'r' parameter .*Got \[0\.0, 'x'\] instead"),
    ("n_bootstrap", "x", r"The 'n_bootstrap' parameter of wild_bootstrap must be an int >= 1.*Got 'x' instead"),
    ("n_bootstrap", 99.0, r"'n_bootstrap' parameter .*Got 99\.0 instead"),
    ("n_bootstrap", True, r"'n_bootstrap' parameter .*Got True instead"),
    ("weights", 5, r"The 'weights' parameter of wild_bootstrap must be one of \{'rademacher'.*Got 5 instead"),
    ("impose_null", "yes", r"The 'impose_null' parameter of wild_bootstrap must be True \(WCR\) or False.*'yes'"),
    ("conf_level", "0.9", r"The 'conf_level' parameter of wild_bootstrap must be a float in \(0, 1\).*'0\.9'"),
    ("cluster", 5, r"The 'cluster' parameter of wild_bootstrap must be a column name.*Got 5 instead"),
])
def test_options_checked_before_any_work(voters_fit, monkeypatch: pytest.MonkeyPatch, option: str, value: object,
                                         message: str) -> None:  # type: ignore[no-untyped-def]
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bootstrap started before its options were checked")

    monkeypatch.setattr(wild_module, "restriction_matrix", no_work)
    with pytest.raises(InvalidOptionError, match=message):
        voters_fit.wild_bootstrap("treatment", **{option: value})


def test_joint_pretrend_test_on_event_study(mpdta) -> None:  # type: ignore[no-untyped-def]
    """The joint (Wald) wild bootstrap of the leads: its statistic is the analytic pre-trend test's chi-square."""
    es = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    leads = list(es.pretrend_terms())
    wb = es.wild_bootstrap(leads, n_bootstrap=499, seed=7)
    assert wb.n_restrictions == len(leads) == 3
    assert wb.statistic == pytest.approx(es.pretrend_test().statistic, rel=1e-10)
    assert 0.05 < wb.p_value < 0.5  # analytic p = 0.18; 499 draws


def test_two_way_clustered_result_needs_a_cluster() -> None:
    df = _small_panel(2, 6)
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=["unit", "year"], cluster=["state", "year"])
    with pytest.raises(InvalidOptionError, match=r"clustered two ways.*Fix: pass cluster= one of"):
        res.wild_bootstrap("treat")
    assert res.wild_bootstrap("treat", cluster="state").n_clusters == 6


def test_single_cluster_error() -> None:
    df = _small_panel(2, 6).assign(one=1)
    res = didx.ols(df, y="y", x=["treat", "x2"], fe=["year"])
    with pytest.raises(DidxError, match=r"'one' has 1 distinct value.*at least two clusters.*Fix: cluster at a finer "
                                         r"level"):
        res.wild_bootstrap("treat", cluster="one", data=df)
    # the codes path (no frame read): the same check in the bootstrap itself
    fit = res._source.fit
    with pytest.raises(DidxError, match=r"'one' has 1 distinct value.*Fix: cluster at a finer level"):
        wild_module.wild_cluster_bootstrap(fit, np.zeros(fit.n_obs, dtype=np.int64), "one", np.eye(1, 2), np.zeros(1),
                                           "treat = 0", n_bootstrap=99, weights="rademacher", impose_null=True, seed=1,
                                           conf_level=0.95, ssc=didx.SSC())


def test_too_many_clusters_refused_before_any_set_up(voters_fit, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The G x G size check comes first: no cluster sums or fixed-effect correction are built for nothing."""
    def no_set_up(*args: object, **kwargs: object) -> None:
        raise AssertionError("set-up ran before the size check")

    monkeypatch.setattr(wild_module, "MAX_K_BYTES", 1)
    monkeypatch.setattr(wild_module, "_FECorrection", no_set_up)
    monkeypatch.setattr(wild_module, "_cluster_sums", no_set_up)
    with pytest.raises(didx.DesignError, match=r"40 clusters make the G x G matrices.*Fix:"):
        voters_fit.wild_bootstrap("treatment", n_bootstrap=99, seed=1)
