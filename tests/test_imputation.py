"""BJS imputation: didimputation references, identities with did2s and the 2x2, invariances, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, load_reference

REF = load_reference("did2s_didimputation.json")
# R's fixest estimates the fixed-effect levels iteratively (fixef.tol), so the reference carries ~1e-8 relative
# noise in the point estimates; the SEs agree to ~3e-9.
TOL_REF_POINT = 1e-7
TOL_REF_SE = 1e-7
TOL_DENSE = 1e-9  # sparse/concentrated algebra vs a dense-matrix implementation of the same formula


@pytest.fixture(scope="module")
def df_het() -> pd.DataFrame:
    return didx.datasets.load("df_het_didimputation")


def test_static_matches_didimputation(df_het: pd.DataFrame) -> None:
    ref = REF["didimp_df_het_static"]["result"][0]
    res = didx.imputation(df_het, y="dep_var", unit="unit", time="year", cohort="g")
    assert res.estimate == pytest.approx(ref["estimate"], rel=TOL_REF_POINT)
    assert res.std_error == pytest.approx(ref["std.error"], rel=TOL_REF_SE)
    assert res.sample.n_obs == len(df_het) == 31000
    assert isinstance(res, didx.estimators.imputation.bjs.ImputationResult)


def test_event_study_matches_didimputation(df_het: pd.DataFrame) -> None:
    ref = REF["didimp_df_het_es"]["result"]
    res = didx.imputation(df_het, y="dep_var", unit="unit", time="year", cohort="g", horizons=True,
                          pretrends=[-5, -4, -3, -2, -1])
    tidy = res.tidy()
    assert list(tidy["event_time"]) == [float(r["term"]) for r in ref]
    np.testing.assert_allclose(tidy["estimate"], [r["estimate"] for r in ref], rtol=TOL_REF_POINT)
    np.testing.assert_allclose(tidy["std_error"], [r["std.error"] for r in ref], rtol=TOL_REF_SE)
    assert isinstance(res, didx.EventStudyResult)
    assert res.headline == "tau0"
    test = res.pretrend_test()
    assert test.df == 5 and 0.0 < test.p_value < 1.0
    # pretrends=5 means the same leads
    res5 = didx.imputation(df_het, y="dep_var", unit="unit", time="year", cohort="g", pretrends=5)
    np.testing.assert_allclose(res5.coef[:5], res.coef[:5], rtol=1e-12)


def _single_cohort_two_periods() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    unit = np.repeat(np.arange(n), 2)
    t = np.tile([1, 2], n)
    g = np.repeat(np.where(np.arange(n) < 15, 2, 0), 2)
    y = rng.standard_normal(2 * n) + 0.5 * t + np.where((g > 0) & (t >= g), 1.5, 0.0)
    return pd.DataFrame({"unit": unit, "time": t, "g": g, "y": y,
                         "grp": (g > 0).astype(int), "post": (t == 2).astype(int),
                         "d": ((g > 0) & (t >= g)).astype(int)})


def test_two_by_two_identity() -> None:
    df = _single_cohort_two_periods()
    imp = didx.imputation(df, y="y", unit="unit", time="time", cohort="g")
    two = didx.did2s(df, y="y", unit="unit", time="time", cohort="g")
    dd = didx.did2x2(df, y="y", treat="grp", post="post", unit="unit")
    assert imp.estimate == pytest.approx(dd.estimate, rel=TOL_IDENTITY)
    assert two.estimate == pytest.approx(dd.estimate, rel=TOL_IDENTITY)


def test_agrees_with_did2s_static_and_by_horizon(df_het: pd.DataFrame) -> None:
    imp = didx.imputation(df_het, y="dep_var", unit="unit", time="year", cohort="g")
    two = didx.did2s(df_het, y="dep_var", unit="unit", time="year", cohort="g")
    assert imp.estimate == pytest.approx(two.estimate, rel=TOL_IDENTITY)
    imp_h = didx.imputation(df_het, y="dep_var", unit="unit", time="year", cohort="g", horizons=[0, 1, 2, 5])
    two_e = didx.did2s(df_het, y="dep_var", unit="unit", time="year", cohort="g", second_stage="event_study",
                       window=(0, 20))
    t2 = two_e.tidy().set_index("event_time")["estimate"]
    np.testing.assert_allclose(imp_h.coef, t2.loc[[0.0, 1.0, 2.0, 5.0]].to_numpy(), rtol=TOL_IDENTITY)


def _simulated(seed: int = 1, n_units: int = 60) -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(n_units, 6, cohorts=3, seed=seed)
    rng = np.random.default_rng(seed)
    df["region"] = np.repeat(rng.integers(0, 4, n_units), 6)
    df["w"] = np.repeat(rng.uniform(0.5, 2.0, n_units), 6)
    return df


def _dense_bjs(df: pd.DataFrame, *, covariates: list[str], fe: list[str], weights: str | None,
               leave_out: bool = False, cluster: str = "unit") -> tuple[float, float]:
    """BJS static ATT and conservative SE (clustered by unit) with dense matrices, straight from the formulas."""
    tr = ((df["cohort"] > 0) & (df["time"] >= df["cohort"])).to_numpy()
    cols = [pd.get_dummies(df["unit"], dtype=float), pd.get_dummies(df["time"], dtype=float).iloc[:, 1:]]
    cols += [pd.get_dummies(df[f], dtype=float).iloc[:, 1:] for f in fe]
    Z = np.column_stack([df[covariates].to_numpy(float)] + [c.to_numpy() for c in cols])
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy(float)
    y = df["y"].to_numpy(float)
    Z0, W0 = Z[~tr], w[~tr]
    A = Z0.T @ (Z0 * W0[:, None])
    b = np.linalg.lstsq(A, Z0.T @ (W0 * y[~tr]), rcond=None)[0]
    resid = y - Z @ b
    w1 = w[tr] / w[tr].sum()
    est = float(w1 @ resid[tr])
    v = np.zeros(len(df))
    v[~tr] = -W0 * (Z0 @ np.linalg.lstsq(A, Z[tr].T @ w1, rcond=None)[0])
    v[tr] = w1
    et = (df["time"] - df["cohort"]).to_numpy(float)
    key = pd.Series(list(zip(df["cohort"], et, strict=True)))
    e = resid.copy()
    frame = pd.DataFrame({"k": key, "v2": v**2, "v2t": v**2 * resid, "u": df[cluster].to_numpy(), "tr": tr})
    if leave_out:
        tot = frame.groupby("k")[["v2", "v2t"]].transform("sum")
        own = frame.groupby(["k", "u"])[["v2", "v2t"]].transform("sum")
        tbar = (tot["v2t"] - own["v2t"]) / (tot["v2"] - own["v2"])
    else:
        tot = frame.groupby("k")[["v2", "v2t"]].transform("sum")
        tbar = tot["v2t"] / tot["v2"]
    e[tr] = resid[tr] - tbar.to_numpy()[tr]
    psi = pd.Series(v * e).groupby(df[cluster].to_numpy()).sum().to_numpy()
    return est, float(np.sqrt(psi @ psi))


@pytest.mark.parametrize(("covariates", "fe", "weights", "balanced"), [
    ([], [], None, True), (["x2"], [], None, True), ([], [], "w", True), (["x2"], ["region"], "w", True),
    (["x2"], [], "w", False),
])
def test_matches_dense_formula(covariates: list[str], fe: list[str], weights: str | None, balanced: bool) -> None:
    df = _simulated()
    if not balanced:
        df = df.sample(frac=0.93, random_state=5).reset_index(drop=True)
    df["region"] = df["region"].astype(str) + "_" + df["time"].astype(str)  # varies within units
    est, se = _dense_bjs(df, covariates=covariates, fe=fe, weights=weights)
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", covariates=covariates or None,
                          fe=["unit", "time", *fe] if fe else None, weights=weights)
    assert res.sample.n_obs == len(df)
    assert res.estimate == pytest.approx(est, rel=TOL_DENSE)
    assert res.std_error == pytest.approx(se, rel=TOL_DENSE)


def test_leave_out_matches_dense_formula() -> None:
    df = _simulated(seed=4, n_units=80)
    est, se = _dense_bjs(df, covariates=[], fe=[], weights=None, leave_out=True)
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", leave_out=True)
    assert res.estimate == pytest.approx(est, rel=TOL_DENSE)
    assert res.std_error == pytest.approx(se, rel=TOL_DENSE)
    plain = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort")
    assert res.std_error != plain.std_error


@pytest.mark.parametrize("leave_out", [False, True])
def test_cluster_by_region_matches_dense_formula(leave_out: bool) -> None:
    df = _simulated(seed=13, n_units=90)
    df["region"] = np.repeat(np.random.default_rng(13).integers(0, 12, 90), 6)  # constant within units
    est, se = _dense_bjs(df, covariates=[], fe=[], weights=None, leave_out=leave_out, cluster="region")
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", cluster="region",
                          leave_out=leave_out)
    assert res.inference.n_clusters == (12,)
    assert res.estimate == pytest.approx(est, rel=TOL_DENSE)
    assert res.std_error == pytest.approx(se, rel=TOL_DENSE)


def test_custom_weights_and_horizon_covariance() -> None:
    df = _simulated(seed=2)
    df["ones"] = 1.0
    df["late"] = (df["time"] - df["cohort"] >= 1).astype(float)
    static = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort")
    custom = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", treatment_weights=["ones", "late"])
    assert custom.coef[0] == pytest.approx(static.estimate, rel=TOL_IDENTITY)
    assert np.sqrt(custom.vcov_matrix[0, 0]) == pytest.approx(static.std_error, rel=TOL_IDENTITY)
    assert custom.terms == ("ones", "late")
    # the covariance of horizons: a weighted sum of horizons has the variance of the combined weights
    hz = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True)
    n = hz.tidy()["n"].to_numpy()
    share = n / n.sum()
    assert share @ hz.coef == pytest.approx(static.estimate, rel=TOL_IDENTITY)
    assert np.sqrt(share @ hz.vcov_matrix @ share) != pytest.approx(0.0)


def test_invariances() -> None:
    df = _simulated(seed=5)
    base = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True, pretrends=True)
    shuffled = df.sample(frac=1.0, random_state=1)
    shuffled["unit"] = "u" + (shuffled["unit"] * 7 % 1000).astype(str)
    r2 = didx.imputation(shuffled, y="y", unit="unit", time="time", cohort="cohort", horizons=True,
                         pretrends=True)
    np.testing.assert_allclose(r2.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(r2.vcov_matrix, base.vcov_matrix, rtol=1e-8, atol=1e-14)
    for never in (np.nan, np.inf):
        alt = df.assign(cohort=df["cohort"].where(df["cohort"] > 0, never))
        r3 = didx.imputation(alt, y="y", unit="unit", time="time", cohort="cohort", horizons=True,
                             pretrends=True)
        np.testing.assert_allclose(r3.coef, base.coef, rtol=TOL_IDENTITY)


def test_always_treated_units_are_dropped_and_reported() -> None:
    df = _simulated(seed=6)
    df.loc[df["unit"] < 3, "cohort"] = 1  # treated in every period: Y(0) not imputable
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort")
    assert res.sample.n_obs == len(df) - 18
    assert res.sample.dropped[-1].n_rows == 18 and res.sample.dropped[-1].n_units == 3
    assert "cannot be imputed" in str(res.summary())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"horizons": [-1]}, "horizons"),
    ({"horizons": [99]}, "99"),
    ({"pretrends": [-99]}, "-99"),
    ({"pretrends": [1]}, "pretrends"),
    ({"horizons": True, "treatment_weights": "x2"}, "not both"),
    ({"fe": ["unit", "unit"]}, "'unit' twice"),
    ({"cohort": "cohrt"}, "cohort"),
    ({"leave_out": "yes"}, "leave_out"),
])
def test_errors(kwargs: dict[str, object], match: str) -> None:
    df = _simulated(seed=7)
    args: dict[str, object] = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort", **kwargs}
    with pytest.raises(didx.DidxError, match=match):
        didx.imputation(df, **args)  # type: ignore[arg-type]


def test_all_leads_is_an_error() -> None:
    df = _simulated(seed=11)
    with pytest.raises(didx.DidxError, match="collinear with the unit fixed effects"):
        didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", pretrends=[-1, -2, -3, -4])


@pytest.mark.parametrize(("path", "fe"), [("sparse_cells", None), ("conjugate_gradients", None),
                                          ("sparse_cells", "region"), ("conjugate_gradients", "region")])
def test_first_stage_solver_paths_agree(monkeypatch: pytest.MonkeyPatch, path: str, fe: str | None) -> None:
    import didx.estimators.imputation.first_stage as fs
    import didx.inference.imputation as engine

    df = _simulated(seed=12).sample(frac=0.9, random_state=3)  # unbalanced
    df["region"] = df["region"].astype(str) + "_" + df["time"].astype(str)  # region x period, nests the period
    kwargs = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort", "horizons": True,
              "fe": None if fe is None else ["unit", "time", fe]}
    calls = {"n": 0}
    csr = fs.sp.csr_matrix

    def counting_csr(*args: object, **kw: object) -> object:
        calls["n"] += 1
        return csr(*args, **kw)

    monkeypatch.setattr(fs.sp, "csr_matrix", counting_csr)
    base = didx.imputation(df, **kwargs)  # type: ignore[arg-type]
    n_base = calls["n"]
    if path == "sparse_cells":
        monkeypatch.setattr(fs, "DENSE_CELLS_EXTRA", -10**9)
        monkeypatch.setattr(engine, "DENSE_CELLS_EXTRA", -10**9)
    else:
        monkeypatch.setattr(fs, "EXACT_MAX_LEVELS", 0)
    other = didx.imputation(df, **kwargs)  # type: ignore[arg-type]
    if path == "sparse_cells":  # the sparse tables were really used (not the same path twice)
        assert calls["n"] - n_base > n_base
    else:
        assert other.extras["first_stage_method"] != base.extras["first_stage_method"]
    np.testing.assert_allclose(other.coef, base.coef, rtol=TOL_DENSE)
    np.testing.assert_allclose(other.std_errors, base.std_errors, rtol=TOL_DENSE)


@pytest.mark.parametrize(("covariates", "weights"), [(["x2"], None), (None, "w"), (["x2"], "w")])
def test_agrees_with_did2s_with_covariates_and_weights(covariates: list[str] | None, weights: str | None) -> None:
    df = _simulated(seed=15)
    imp = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", covariates=covariates,
                          weights=weights, horizons=True)
    two = didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", covariates=covariates,
                     weights=weights, second_stage="event_study", window=(0, 100))
    np.testing.assert_allclose(imp.coef, two.coef, rtol=TOL_IDENTITY)


def test_custom_weight_errors() -> None:
    df = _simulated(seed=16)
    treated = (df["cohort"] > 0) & (df["time"] >= df["cohort"])
    df["w_nan"] = np.where(treated & (df["unit"] == df.loc[treated, "unit"].iloc[0]), np.nan, 1.0)
    df["w_zero"] = 0.0
    df["w_text"] = "a"
    for col, match in (("w_nan", "'w_nan' has missing values on treated"), ("w_zero", "'w_zero' sum to zero"),
                       ("w_text", "'w_text' must be numeric"), ("w_missing", "w_missing")):
        with pytest.raises(didx.DidxError, match=match):
            didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", treatment_weights=col)


@pytest.mark.parametrize("kw", [{}, {"horizons": True, "pretrends": True, "leave_out": True},
                                {"treatment_weights": ["w"], "weights": "w"}])
def test_with_vcov_equals_refitting(kw: dict[str, object]) -> None:
    """Each declared option (a captured column; a new column from data= or as values) equals a refit."""
    df = _simulated(seed=13, n_units=90)
    df["region"] = np.repeat(np.random.default_rng(13).integers(0, 12, 90), 6)  # constant within units
    args = dict(y="y", unit="unit", time="time", cohort="cohort", **kw)
    res = didx.imputation(df, **args)  # type: ignore[arg-type]
    fresh = didx.imputation(df, cluster="region", **args)  # type: ignore[arg-type]
    for re in (res.with_vcov(cluster="region", data=df), res.with_vcov(cluster=df["region"])):
        np.testing.assert_array_equal(re.coef, res.coef)
        np.testing.assert_allclose(re.vcov_matrix, fresh.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
        assert re.inference.vcov_type == fresh.inference.vcov_type
        assert re.inference.n_clusters == fresh.inference.n_clusters == (12,)
        assert re.inference.details[: len(fresh.inference.details)] == fresh.inference.details
        back = re.with_vcov()  # the default clustering (the unit) again, from the codes captured at fit time
        np.testing.assert_allclose(back.vcov_matrix, res.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
        assert back.inference == res.inference
    # the fit's cluster column is captured: no data needed, and back to the unit
    unit = fresh.with_vcov(cluster="unit")
    np.testing.assert_allclose(unit.vcov_matrix, res.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
    np.testing.assert_allclose(fresh.with_vcov(cluster="region").vcov_matrix, fresh.vcov_matrix, rtol=1e-15)


def test_with_vcov_refuses_a_changed_frame_and_undeclared_options() -> None:
    df = _simulated(seed=13, n_units=90)
    df["region"] = np.repeat(np.random.default_rng(13).integers(0, 12, 90), 6)
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True, pretrends=True)
    with pytest.raises(didx.InvalidOptionError, match=r"'region' was not captured at fit time.*Fix: pass data="):
        res.with_vcov(cluster="region")
    with pytest.raises(didx.DataError, match="rows"):
        res.with_vcov(cluster="region", data=df.iloc[:-6])  # shrunken (was a raw IndexError)
    with pytest.raises(didx.DataError, match="not the frame that was fitted"):
        res.with_vcov(cluster="region", data=df.sample(frac=1.0, random_state=0))  # reordered
    with pytest.raises(didx.DataError, match="rows"):
        res.with_vcov(cluster=df["region"].iloc[:-6])
    with pytest.raises(didx.InvalidOptionError) as err:
        res.with_vcov("HC1", ssc=didx.SSC())
    msg = str(err.value)
    assert "vcov='HC1'" in msg and "ssc=" in msg and "It supports:" in msg
    assert "only the clustering can change" in msg and "pre-trend leads' CR1" in msg
    with pytest.raises(didx.InvalidOptionError, match="up to 1 column"):
        res.with_vcov(cluster=["unit", "time"])
    assert res.capabilities is not None and res.capabilities.vcov == () and not res.capabilities.ssc


def test_with_vcov_leads_match_a_direct_cr1() -> None:
    """The pre-trend leads recomputed for another clustering equal fixest-convention CR1 of the lead regression."""
    from didx.inference.vcov import VcovSpec, compute_vcov
    from didx.linalg.absorb import FixedEffects
    from didx.linalg.ols import fit_ols

    df = _simulated(seed=21, n_units=90)
    df["region"] = np.repeat(np.random.default_rng(21).integers(0, 12, 90), 6)
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", covariates="x2",
                          pretrends=[-1, -2]).with_vcov(cluster=df["region"])
    u = df[(df["cohort"] == 0) | (df["time"] < df["cohort"])]
    et = (u["time"] - u["cohort"]).where(u["cohort"] > 0, -99).to_numpy()
    assert res.terms[:2] == ("pre2", "pre1")
    X = np.column_stack([(et == -2), (et == -1), u["x2"]]).astype(float)
    fe = FixedEffects([pd.factorize(u["unit"])[0], pd.factorize(u["time"])[0]], ["unit", "time"])
    fit = fit_ols(u["y"].to_numpy(float), X, ["pre2", "pre1", "x2"], fe=fe)
    V = compute_vcov(fit, VcovSpec("CR1", ("region",), didx.SSC()), {"region": pd.factorize(u["region"])[0]})
    np.testing.assert_allclose(res.coef[:2], fit.coef[:2], rtol=1e-10)
    np.testing.assert_allclose(res.vcov_matrix[:2, :2], V.matrix[:2, :2], rtol=1e-10)
    assert not res.cross_covariance and np.all(res.vcov_matrix[:2, 2:] == 0)


# ------------------------------------------------------------------ issue 10: errors that were raw or silent
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"covariates": ["x2", "x2"]}, didx.InvalidOptionError, r"covariates=\['x2', 'x2'\] names the column 'x2' twice"),
    ({"horizons": "all"}, didx.InvalidOptionError, r"'horizons' parameter.*Got 'all'.*Fix: horizons=True"),
    ({"pretrends": "all"}, didx.InvalidOptionError, r"'pretrends' parameter.*Got 'all'"),
    ({"horizons": [0, 1.5]}, didx.InvalidOptionError, "'horizons' parameter"),
    ({"treatment_weights": ["w", "w"]}, didx.InvalidOptionError, "'w' twice"),
    ({"cluster": ["unit", "region"]}, didx.InvalidOptionError, "'cluster' parameter.*one column"),
    ({"cluster": "one"}, didx.DataError, r"'one' has 1 distinct value.*Fix"),
    ({"weights": "w_zero"}, didx.DataError, r"'w_zero' is zero on every untreated observation.*Fix"),
    ({"weights": "w_zero_treated"}, didx.DataError, r"'w_zero_treated' is zero on every treated observation"),
])
def test_option_errors_are_clear(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    df = _simulated(seed=7)
    df["one"] = 1
    df["w_zero"] = np.where((df["cohort"] > 0) & (df["time"] >= df["cohort"]), 1.0, 0.0)  # (all-zero: panel layer)
    df["w_zero_treated"] = np.where((df["cohort"] > 0) & (df["time"] >= df["cohort"]), 0.0, 1.0)
    with pytest.raises(error, match=match):
        didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", **kwargs)  # type: ignore[arg-type]


def test_fractional_cohort_terms_are_distinct() -> None:
    """A cohort between periods gave two terms named tau0 (event times 0 and 0.5); the panel layer now refuses
    such a cohort (issue 10), naming the value."""
    df = _simulated(seed=7)
    df["cohort"] = np.where(df["cohort"] == df["cohort"].max(), df["cohort"] - 0.5, df["cohort"])
    with pytest.raises(didx.DataError, match=r"cohort column .cohort. has the value \d+\.5, which is not one of"):
        didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True)


# ------------------------------------------------------------------ event-study contract and aggregation
@pytest.mark.parametrize("kw", [{}, {"weights": "w"}, {"leave_out": True, "cluster": "region"},
                                {"covariates": "x2", "pretrends": True}])
def test_average_of_horizons_is_the_static_estimate(kw: dict[str, object]) -> None:
    """With every horizon estimated, aggregate('average') weights them by their treated observations: the static
    ATT exactly, and the same BJS variance (the cohort x period centring cells lie within horizons)."""
    df = _simulated(seed=2)
    args = dict(y="y", unit="unit", time="time", cohort="cohort", **kw)
    static = didx.imputation(df, **{k: v for k, v in args.items() if k != "pretrends"})  # type: ignore[arg-type]
    es = didx.imputation(df, horizons=True, **args)  # type: ignore[arg-type]
    avg = es.aggregate("average")
    assert avg.estimate == pytest.approx(static.estimate, rel=1e-12)
    assert avg.std_error == pytest.approx(static.std_error, rel=1e-10)
    # and after reclustering, from the same stored pieces
    re_avg = es.with_vcov(cluster=df["region"]).aggregate("average")
    re_static = static.with_vcov(cluster=df["region"])
    assert re_avg.std_error == pytest.approx(re_static.std_error, rel=1e-10)
    post = es.aggregate("post")  # the generic equally weighted average of the horizons
    h = es.post_terms
    assert post.estimate == pytest.approx(float(np.mean([es.coef[es.terms.index(t)] for t in h])), rel=1e-12)


def test_static_with_pretrends_average_is_the_att() -> None:
    df = _simulated(seed=2)
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", pretrends=True)
    assert isinstance(res, didx.EventStudyResult) and res.headline == "ATT"
    assert res.aggregate("average").estimate == pytest.approx(res.estimate, rel=1e-14)
    assert res.aggregate("pre").std_error > 0


def test_event_study_contract_fields() -> None:
    from didx.comparison import PRE_PERIOD
    from didx.estimators.imputation.bjs import PRE_PERIOD_MEANING

    assert PRE_PERIOD["imputation"] == PRE_PERIOD_MEANING
    df = _simulated(seed=3)
    es = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True)
    assert es.pre_period_meaning == PRE_PERIOD["imputation"] and es.cross_covariance
    assert es.n_pre == 0 and es.n_post == len(es.terms)
    both = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True, pretrends=True)
    assert not both.cross_covariance
    assert both.n_pre == 3 and both.pre_terms == ("pre3", "pre2", "pre1")  # all but the earliest (-4)
    np.testing.assert_array_equal(both.vcov_matrix[:3, 3:], 0.0)
    assert "covariance with the effects is not estimated" in str(both.summary())
    with pytest.raises(didx.InvalidOptionError, match=r"leads .* separately"):
        both.aggregate({-2: 1.0, 0: 1.0})
    with pytest.raises(didx.InvalidOptionError, match="'average'"):
        both.aggregate("simple")
    custom = didx.imputation(df.assign(one=1.0), y="y", unit="unit", time="time", cohort="cohort",
                             treatment_weights="one", pretrends=True)
    with pytest.raises(didx.InvalidOptionError, match="average"):
        custom.aggregate("average")


def test_from_panel_equals_the_frame_entry() -> None:
    from didx._panel import build_panel
    from didx.estimators.imputation.bjs import from_panel

    df = _simulated(seed=9)
    df["rt"] = df["region"].astype(str) + "_" + df["time"].astype(str)
    kw = dict(horizons=True, pretrends=[-2, -1], fe=["unit", "time", "rt"], cluster="region", leave_out=True)
    res = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", covariates="x2", weights="w",
                          **kw)  # type: ignore[arg-type]
    panel = build_panel(df, func="imputation", y="y", unit="unit", time="time", cohort="cohort",
                        covariates="x2", weights="w", cluster="region", categorical=["rt"])
    got = from_panel(panel, **kw)  # type: ignore[arg-type]
    assert got.terms == res.terms
    np.testing.assert_array_equal(got.coef, res.coef)
    np.testing.assert_array_equal(got.vcov_matrix, res.vcov_matrix)
    tw = from_panel(panel, treatment_weights={"w": df["w"].to_numpy()})
    ref = didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", covariates="x2", weights="w",
                          treatment_weights="w")
    np.testing.assert_array_equal(tw.coef, ref.coef)
    with pytest.raises(didx.InvalidOptionError, match="'state' has no codes in the panel"):
        from_panel(panel, cluster="state")


def test_result_keeps_no_data_frame() -> None:
    import pickle

    mpdta = didx.datasets.load("mpdta")
    size = len(pickle.dumps(mpdta))
    kw = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")
    for res in (didx.imputation(mpdta, **kw), didx.imputation(mpdta, **kw, horizons=True),  # type: ignore[arg-type]
                didx.did2s(mpdta, **kw), didx.did2s(mpdta, **kw, second_stage="event_study")):  # type: ignore[arg-type]
        blob = pickle.dumps(res)
        assert len(blob) < size, res.estimator
        assert b"pandas" not in blob  # no frame, series or index anywhere in the result
        again = pickle.loads(blob)
        np.testing.assert_array_equal(again.with_vcov(cluster=mpdta["year"]).vcov_matrix,
                                      res.with_vcov(cluster=mpdta["year"]).vcov_matrix)
    with_leads = didx.imputation(mpdta, **kw, horizons=True, pretrends=True)  # type: ignore[arg-type]
    assert b"pandas" not in pickle.dumps(with_leads)  # keeps the leads' regression scores (n0 x leads), no frame


@pytest.mark.parametrize(("func", "kw"), [("imputation", {}), ("imputation", {"horizons": True, "pretrends": True}),
                                          ("did2s", {}), ("did2s", {"second_stage": "event_study"})])
def test_integer_unit_label(func: str, kw: dict[str, object]) -> None:
    """A unit column labelled by an integer (unit=11): the first stage's default fixed effects and the default
    cluster are that column (as for a string name), with the same numbers."""
    df = _simulated(seed=3)
    base = getattr(didx, func)(df, y="y", unit="unit", time="time", cohort="cohort", **kw)
    res = getattr(didx, func)(df.rename(columns={"unit": 11}), y="y", unit=11, time="time", cohort="cohort", **kw)
    np.testing.assert_allclose(res.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.vcov_matrix, base.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-14)
    assert res.inference.cluster_names == ("11",)
