"""Gardner two-stage DiD: R did2s references, the GMM variance against dense matrices, options, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY, load_reference

REF = load_reference("did2s_didimputation.json")
# With state + year fixed effects fixest's iterative FE solution is exact to ~1e-12 here; with unit + year
# (1500 levels) it carries ~3e-8 relative noise (fixef.tol), hence the looser tolerance for that entry.
TOL_REF = 1e-10
TOL_REF_ITERATIVE = 1e-7
TOL_DENSE = 1e-9


@pytest.fixture(scope="module")
def df_het() -> pd.DataFrame:
    return didx.datasets.load("df_het_did2s")


def test_static_matches_did2s(df_het: pd.DataFrame) -> None:
    ref = REF["df_het_static"]["coefs"][0]
    res = didx.did2s(df_het, y="dep_var", unit="unit", time="year", treat="treat",
                     fe=["state", "year"], cluster="state")
    assert res.estimate == pytest.approx(ref["estimate"], rel=TOL_REF)
    assert res.std_error == pytest.approx(ref["se"], rel=TOL_REF)
    assert res.sample.n_obs == len(df_het) == 46500
    assert res.inference.n_clusters == (40,)


def test_static_unit_fe_matches_did2s(df_het: pd.DataFrame) -> None:
    ref = REF["df_het_static_unitFE"]["coefs"][0]
    res = didx.did2s(df_het, y="dep_var", unit="unit", time="year", treat="treat",
                     fe=["unit", "year"], cluster="state")
    assert res.estimate == pytest.approx(ref["estimate"], rel=TOL_REF_ITERATIVE)
    assert res.std_error == pytest.approx(ref["se"], rel=TOL_REF_ITERATIVE)


def test_event_study_matches_did2s(df_het: pd.DataFrame) -> None:
    ref = REF["df_het_es"]["coefs"]
    res = didx.did2s(df_het, y="dep_var", unit="unit", time="year", cohort="g", fe=["state", "year"],
                     cluster="state", second_stage="event_study")
    assert list(res.terms) == [r["term"].replace("rel_year", "event_time") for r in ref]
    np.testing.assert_allclose(res.coef, [r["estimate"] for r in ref], rtol=TOL_REF)
    np.testing.assert_allclose(res.std_errors, [r["se"] for r in ref], rtol=TOL_REF)
    assert isinstance(res, didx.EventStudyResult)
    assert res.headline == "event_time::0"
    # the same from the 0/1 treatment column (cohort derived from an absorbing treatment)
    res_t = didx.did2s(df_het, y="dep_var", unit="unit", time="year", treat="treat",
                       fe=["state", "year"], cluster="state", second_stage="event_study")
    np.testing.assert_allclose(res_t.coef, res.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res_t.vcov_matrix, res.vcov_matrix, rtol=1e-10)


def _simulated(seed: int = 1, n_units: int = 60) -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(n_units, 6, cohorts=3, seed=seed)
    rng = np.random.default_rng(seed)
    df["state"] = np.repeat(rng.integers(0, 8, n_units), 6)
    df["w"] = np.repeat(rng.uniform(0.5, 2.0, n_units), 6)
    df["cell"] = (df["state"] % 3).astype(str) + "_" + df["time"].astype(str)
    return df


def _dense_did2s(df: pd.DataFrame, *, fe: list[str], covariates: list[str], weights: str | None,
                 cluster: str) -> tuple[np.ndarray, np.ndarray]:
    """Butts-Gardner two-stage estimate and GMM covariance with dense matrices (the R formula)."""
    tr = df["d"].to_numpy() == 1
    X1 = np.column_stack([df[covariates].to_numpy(float)]
                         + [pd.get_dummies(df[f], dtype=float).to_numpy()[:, (1 if j else 0):]
                            for j, f in enumerate(fe)])
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy(float)
    sw = np.sqrt(w)
    y = df["y"].to_numpy(float)
    X10 = X1.copy()
    X10[tr] = 0
    b1 = np.linalg.lstsq(X10 * sw[:, None], y * sw * ~tr, rcond=None)[0]
    adj = y - X1 @ b1
    X2 = tr[:, None].astype(float)
    b2 = np.linalg.lstsq(X2 * sw[:, None], adj * sw, rcond=None)[0]
    u2 = (adj - X2 @ b2) * sw
    u1 = np.where(tr, 0.0, adj) * sw
    x1, x10, x2 = X1 * sw[:, None], X10 * sw[:, None], X2 * sw[:, None]
    V = (x2.T @ x1) @ np.linalg.pinv(x10.T @ x10)
    cl = pd.factorize(df[cluster])[0]
    contrib = x2 * u2[:, None] - (x10 * u1[:, None]) @ V.T
    psi = np.zeros((cl.max() + 1, 1))
    np.add.at(psi, cl, contrib)
    bread = np.linalg.inv(x2.T @ x2)
    return b2, bread @ psi.T @ psi @ bread


@pytest.mark.parametrize(("fe", "covariates", "weights", "cluster"), [
    (["unit", "time"], [], None, "unit"),
    (["state", "time"], ["x2"], "w", "state"),
    (["unit", "time", "cell"], ["x2"], "w", "state"),  # three factors (concentrated on unit)
    (["cell"], [], None, "unit"),
])
def test_gmm_variance_matches_dense(fe: list[str], covariates: list[str], weights: str | None,
                                    cluster: str) -> None:
    df = _simulated()
    b, V = _dense_did2s(df, fe=fe, covariates=covariates, weights=weights, cluster=cluster)
    res = didx.did2s(df, y="y", unit="unit", time="time", treat="d", fe=fe,
                     covariates=covariates or None, weights=weights, cluster=cluster)
    assert res.estimate == pytest.approx(float(b[0]), rel=TOL_DENSE)
    assert res.std_error == pytest.approx(float(np.sqrt(V[0, 0])), rel=TOL_DENSE)


def test_ref_and_window_select_terms() -> None:
    df = _simulated(seed=3)
    full = didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study")
    sub = didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study", ref=-1,
                     window=(-2, 1))
    assert list(sub.tidy()["event_time"]) == [-2.0, 0.0, 1.0]
    assert sub.reference_periods == (-1.0,)
    # no intercept: the coefficients are means by term, unaffected by which other terms are estimated
    f = full.tidy().set_index("event_time")["estimate"]
    np.testing.assert_allclose(sub.coef, f.loc[[-2.0, 0.0, 1.0]].to_numpy(), rtol=TOL_IDENTITY)


def test_invariances() -> None:
    df = _simulated(seed=8)
    base = didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study")
    shuffled = df.sample(frac=1.0, random_state=2)
    shuffled["unit"] = "id" + shuffled["unit"].astype(str)
    r2 = didx.did2s(shuffled, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study")
    np.testing.assert_allclose(r2.coef, base.coef, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(r2.vcov_matrix, base.vcov_matrix, rtol=1e-8)
    for never in (np.nan, np.inf):
        alt = df.assign(cohort=df["cohort"].where(df["cohort"] > 0, never))
        r3 = didx.did2s(alt, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study")
        np.testing.assert_allclose(r3.coef, base.coef, rtol=TOL_IDENTITY)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"second_stage": "dynamic"}, "second_stage"),
    ({"treat": None, "cohort": None}, "treat= .* or cohort="),
    ({"second_stage": "event_study", "window": (3, 1)}, "window"),
    ({"window": (0, 3)}, "second_stage='event_study'"),
    ({"fe": ["unit", "unit"]}, "'unit' twice"),
    ({"fe": ["stat"]}, "stat"),
    ({"cluster": "clus"}, "clus"),
])
def test_errors(kwargs: dict[str, object], match: str) -> None:
    df = _simulated(seed=9)
    args: dict[str, object] = {"y": "y", "unit": "unit", "time": "time", "treat": "d", **kwargs}
    with pytest.raises(didx.DidxError, match=match):
        didx.did2s(df, **args)  # type: ignore[arg-type]


def test_event_needs_absorbing_treatment() -> None:
    df = _simulated(seed=10)
    switch = df["d"].to_numpy().copy()
    treated_units = df.loc[df["d"] == 1, "unit"].unique()[:2]
    last = df["time"] == df["time"].max()
    switch[(df["unit"].isin(treated_units) & last).to_numpy()] = 0
    df["d2"] = switch
    with pytest.raises(didx.DidxError, match=r"'d2' switches off"):
        didx.did2s(df, y="y", unit="unit", time="time", treat="d2", second_stage="event_study")
    # the static second stage accepts a non-absorbing treatment
    res = didx.did2s(df, y="y", unit="unit", time="time", treat="d2")
    assert np.isfinite(res.estimate)


@pytest.mark.parametrize("cluster", ["unit", "state", "cell"])
def test_cluster_sums_paths_agree(monkeypatch: pytest.MonkeyPatch, cluster: str) -> None:
    """Many terms use cluster x level tables (nested / dense / sparse); few terms a gather per term."""
    import didx.estimators.imputation.first_stage as fs
    import didx.inference.imputation as engine

    df = _simulated(seed=14)
    kwargs = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort", "second_stage": "event_study",
              "cluster": cluster}
    calls = {"n": 0}
    csr = fs.sp.csr_matrix

    def counting_csr(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        return csr(*args, **kw)

    monkeypatch.setattr(fs.sp, "csr_matrix", counting_csr)
    many = didx.did2s(df, **kwargs)  # type: ignore[arg-type]
    n_dense = calls["n"]
    assert len(many.terms) > 4
    monkeypatch.setattr(fs, "DENSE_CELLS_EXTRA", -10**9)  # sparse tables everywhere: first stage
    monkeypatch.setattr(engine, "DENSE_CELLS_EXTRA", -10**9)  # and cluster x level sums
    sparse = didx.did2s(df, **kwargs)  # type: ignore[arg-type]
    assert calls["n"] - n_dense > n_dense  # the sparse tables were really used (not the same path twice)
    np.testing.assert_allclose(sparse.vcov_matrix, many.vcov_matrix, rtol=1e-9, atol=1e-15)
    # one term at a time (the gather path) gives the same variances
    for e in (-2.0, 0.0, 2.0):
        one = didx.did2s(df, **kwargs, window=(int(e), int(e)))  # type: ignore[arg-type]
        j = list(many.tidy()["event_time"]).index(e)
        assert one.std_error == pytest.approx(float(many.std_errors[j]), rel=1e-9)


@pytest.mark.parametrize("solver", ["exact", "conjugate_gradients"])
def test_unidentified_rows_are_dropped(monkeypatch: pytest.MonkeyPatch, solver: str) -> None:
    """Two components of the untreated (unit, period) graph: treated rows linking them are not identified."""
    import didx.estimators.imputation.first_stage as fs

    if solver == "conjugate_gradients":
        monkeypatch.setattr(fs, "EXACT_MAX_LEVELS", 0)
    rng = np.random.default_rng(17)
    rows = []
    for u in range(30):
        group = "A" if u < 10 else ("B" if u < 20 else "C")
        periods = range(1, 5) if group == "C" else range(1, 7)
        for t in periods:
            d = (group == "A" and t >= 4) or (group == "B" and t <= 4)
            rows.append({"unit": u, "time": t, "d": int(d), "y": rng.standard_normal() + 0.2 * t + d})
    df = pd.DataFrame(rows)
    res = didx.did2s(df, y="y", unit="unit", time="time", treat="d")
    # A at periods 5-6 and B at periods 1-4 cannot be imputed; A at period 4 can (via the C units)
    assert res.sample.n_obs == len(df) - (10 * 2 + 10 * 4)
    assert res.sample.dropped[-1].n_rows == 60
    keep = ~(((df["unit"] < 10) & (df["time"] >= 5)) | ((df["unit"].between(10, 19)) & (df["time"] <= 4)))
    sub = didx.did2s(df[keep], y="y", unit="unit", time="time", treat="d")
    assert res.estimate == pytest.approx(sub.estimate, rel=TOL_IDENTITY)
    assert res.std_error == pytest.approx(sub.std_error, rel=1e-9)


def test_with_vcov_reclusters_without_refitting(df_het: pd.DataFrame) -> None:
    # fitted with the default clustering (unit), reclustered by state: R did2s's numbers (cluster_var = "state")
    ref = REF["df_het_es"]["coefs"]
    kw = dict(y="dep_var", unit="unit", time="year", cohort="g", fe=["state", "year"],
              second_stage="event_study")
    res = didx.did2s(df_het, **kw)  # type: ignore[arg-type]
    assert res.inference.cluster_names == ("unit",)
    re = res.with_vcov(cluster="state")
    np.testing.assert_array_equal(re.coef, res.coef)
    np.testing.assert_allclose(re.std_errors, [r["se"] for r in ref], rtol=TOL_REF)
    fresh = didx.did2s(df_het, cluster="state", **kw)  # type: ignore[arg-type]
    assert re.inference == fresh.inference
    np.testing.assert_allclose(re.vcov_matrix, fresh.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
    back = re.with_vcov()
    np.testing.assert_allclose(back.vcov_matrix, res.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
    assert back.inference == res.inference
    with pytest.raises(didx.InvalidOptionError, match="only the clustering can change"):
        res.with_vcov("hetero")
    with pytest.raises(didx.InvalidOptionError, match="up to 1 column"):
        res.with_vcov(cluster=["state", "year"])


def test_errors_name_the_term_and_the_fix() -> None:
    df = _simulated(seed=9)
    et = df["time"] - df["cohort"]
    df.loc[(df["cohort"] > 0) & (et == 2), "w"] = 0.0  # every row of event time 2 has weight 0
    with pytest.raises(didx.DesignError, match=r"event_time::2.*Fix"):
        didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study", weights="w")
    with pytest.raises(didx.DesignError, match=r"ref=\[0, 1\].*window=\(0, 1\).*estimated event times.*Fix"):
        didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study", ref=[0, 1],
                   window=(0, 1))


# ------------------------------------------------------------------ with_vcov on the covariance contract
def test_with_vcov_equals_refitting() -> None:
    """A captured column (a first-stage fixed effect), or a new one from data= or as values, equals a refit."""
    df = _simulated(seed=21)
    kw = dict(y="y", unit="unit", time="time", cohort="cohort", second_stage="event_study", weights="w",
              covariates="x2")
    res = didx.did2s(df, **kw)  # type: ignore[arg-type]
    fresh = didx.did2s(df, cluster="state", **kw)  # type: ignore[arg-type]
    for re in (res.with_vcov(cluster="state", data=df), res.with_vcov(cluster=df["state"])):
        np.testing.assert_array_equal(re.coef, res.coef)
        np.testing.assert_allclose(re.vcov_matrix, fresh.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
        assert re.inference.n_clusters == fresh.inference.n_clusters == (8,)
        back = re.with_vcov()
        np.testing.assert_allclose(back.vcov_matrix, res.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
        assert back.inference == res.inference
    with_fe = didx.did2s(df, **{**kw, "fe": ["state", "time"]})  # type: ignore[arg-type]
    fresh_fe = didx.did2s(df, **{**kw, "fe": ["state", "time"]}, cluster="state")  # type: ignore[arg-type]
    re_fe = with_fe.with_vcov(cluster="state")  # a first-stage fixed effect is captured: no data needed
    np.testing.assert_allclose(re_fe.vcov_matrix, fresh_fe.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-300)
    assert re_fe.inference == fresh_fe.inference


def test_with_vcov_refuses_a_changed_frame_and_undeclared_options() -> None:
    df = _simulated(seed=21)
    res = didx.did2s(df, y="y", unit="unit", time="time", treat="d")
    with pytest.raises(didx.InvalidOptionError, match=r"'state' was not captured at fit time.*Fix"):
        res.with_vcov(cluster="state")
    with pytest.raises(didx.DataError, match="rows"):
        res.with_vcov(cluster="state", data=df.iloc[6:])
    with pytest.raises(didx.DataError, match="not the frame that was fitted"):
        res.with_vcov(cluster="state", data=df.iloc[::-1])
    with pytest.raises(didx.InvalidOptionError) as err:
        res.with_vcov("HC1", ssc=didx.SSC())
    msg = str(err.value)
    assert "vcov='HC1'" in msg and "ssc=" in msg and "It supports:" in msg and "only the clustering" in msg
    with pytest.raises(didx.DataError, match="1 distinct value"):
        res.with_vcov(cluster=np.zeros(len(df)))


# ------------------------------------------------------------------ issue 10: errors that were raw or silent
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"covariates": ["x2", "x2"]}, didx.InvalidOptionError, r"covariates=\['x2', 'x2'\] names the column 'x2' twice"),
    ({"second_stage": "event_study", "ref": "a"}, didx.InvalidOptionError, r"'ref' parameter.*Got 'a'"),
    ({"second_stage": "event_study", "ref": 1.5}, didx.InvalidOptionError, r"'ref' parameter.*Got 1.5"),
    ({"second_stage": "event_study", "ref": 100}, didx.InvalidOptionError,
     r"ref=100 is not an event time of the data \(.*-1, 0.*\).*Fix"),
    ({"second_stage": "event_study", "ref": [-1, 100]}, didx.InvalidOptionError, "ref=100 is not an event time"),
    ({"cluster": "one"}, didx.DataError, r"'one' has 1 distinct value.*Fix"),
    ({"weights": "w_zero"}, didx.DataError, r"'w_zero' is zero on every untreated observation.*Fix"),
    ({"fe": []}, didx.InvalidOptionError, "fe= is empty"),
])
def test_option_errors_are_clear(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    df = _simulated(seed=9)
    df["one"] = 1
    df["w_zero"] = np.where((df["cohort"] > 0) & (df["time"] >= df["cohort"]), 1.0, 0.0)  # (all-zero: panel layer)
    with pytest.raises(error, match=match):
        didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ event-study contract, aggregation, panel entry
def test_event_study_contract_and_average() -> None:
    from didx.comparison import PRE_PERIOD
    from didx.estimators.imputation.did2s import PRE_PERIOD_MEANING

    assert PRE_PERIOD["did2s"] == PRE_PERIOD_MEANING
    df = _simulated(seed=4)
    es = didx.did2s(df, y="y", unit="unit", time="time", treat="d", second_stage="event_study", weights="w")
    assert isinstance(es, didx.EventStudyResult)
    assert es.pre_period_meaning == PRE_PERIOD["did2s"] and es.cross_covariance  # one second stage: joint
    assert es.n_pre == 4 and es.n_post == 4
    static = didx.did2s(df, y="y", unit="unit", time="time", treat="d", weights="w")
    # the point estimate is the static one; the SE is the event-study second stage's (residuals centred by event
    # time), not the static one's
    assert es.aggregate("average").estimate == pytest.approx(static.estimate, rel=1e-12)
    assert es.aggregate("pre").std_error > 0
    sub = didx.did2s(df, y="y", unit="unit", time="time", treat="d", second_stage="event_study", weights="w",
                     window=(0, 1))
    w = sub.tidy()["treated_weight"].to_numpy()
    assert sub.aggregate("average").estimate == pytest.approx(float(w @ sub.coef / w.sum()), rel=1e-12)


def test_from_panel_equals_the_frame_entry() -> None:
    from didx._panel import build_panel
    from didx.estimators.imputation.did2s import from_panel

    df = _simulated(seed=5)
    kw = dict(fe=["unit", "time", "cell"], second_stage="event_study", ref=-1, window=(-3, 3), cluster="state")
    res = didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort", covariates="x2", weights="w",
                     **kw)  # type: ignore[arg-type]
    panel = build_panel(df, func="did2s", y="y", unit="unit", time="time", cohort="cohort", covariates="x2",
                        weights="w", cluster="state", categorical=["cell"])
    got = from_panel(panel, **kw)  # type: ignore[arg-type]
    assert got.terms == res.terms
    np.testing.assert_array_equal(got.coef, res.coef)
    np.testing.assert_array_equal(got.vcov_matrix, res.vcov_matrix)
