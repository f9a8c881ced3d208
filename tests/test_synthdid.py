"""Synthetic DiD, synthetic control and DiD (didx.synthdid) against synthdid 0.0.9 on Prop 99, and identities.

References: tests/reference/synthdid.json (synthdid 0.0.9 on california_prop99: estimates, every unit and time
weight, seeded placebo SEs). Staggered adoption and covariates have no R reference (synthdid has neither): they
are tested by identities (one cohort = the simultaneous estimator; a covariate constant within units changes
nothing; uniform weights = TWFE) and simulations with a known effect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import didx
from didx._validate import fmt_value

REF = json.loads((Path(__file__).parent / "reference" / "synthdid.json").read_text())
EST_RTOL = 1e-6  # estimates: synthdid's Frank-Wolfe iterations are followed step by step
WEIGHT_ATOL = 1e-8  # weights (the issue allows 1e-3: Frank-Wolfe stops at min_decrease)
PLACEBO_RTOL = 0.25  # a 200-replication placebo SE: Monte Carlo sd about 9% of the SE on Prop 99 (measured)
PROP = didx.datasets.load("california_prop99")
COLS = {"y": "PacksPerCapita", "unit": "State", "time": "Year", "treat": "treated"}


def fit(**kw: Any) -> didx.SynthDiDResult:
    res: didx.SynthDiDResult = didx.synthdid(PROP, **{**COLS, **kw})
    return res


@pytest.fixture(scope="module")
def sdid() -> didx.SynthDiDResult:
    return fit()


def _ref_weights(key: str, field: str, name: str) -> pd.Series:
    return pd.Series({d[name]: d[field] for d in REF[key]})


# ------------------------------------------------------------------ Prop 99 against synthdid
@pytest.mark.parametrize(("method", "key"), [("sdid", "synthdid"), ("sc", "sc"), ("did", "did")])
def test_prop99_estimates(method: str, key: str) -> None:
    assert fit(method=method).estimate == pytest.approx(REF["estimates"][key], rel=EST_RTOL)


def test_prop99_sdid_weights(sdid: didx.SynthDiDResult) -> None:
    om = sdid.unit_weights.set_index("unit")["weight"]
    want = _ref_weights("sdid_omega", "omega", "unit")
    np.testing.assert_allclose(om.loc[want.index].to_numpy(), want.to_numpy(), atol=WEIGHT_ATOL)
    lam = sdid.time_weights.assign(time=lambda d: d["time"].astype(str)).set_index("time")["weight"]
    want_l = _ref_weights("sdid_lambda", "lambda", "time")
    np.testing.assert_allclose(lam.loc[want_l.index].to_numpy(), want_l.to_numpy(), atol=WEIGHT_ATOL)


def test_prop99_sc_weights() -> None:
    res = fit(method="sc")
    om = res.unit_weights.set_index("unit")["weight"]
    want = _ref_weights("sc_omega", "omega", "unit")
    np.testing.assert_allclose(om.loc[want.index].to_numpy(), want.to_numpy(), atol=WEIGHT_ATOL)
    assert (res.time_weights["weight"] == 0).all()


def test_effective_sizes_and_summary(sdid: didx.SynthDiDResult) -> None:
    om = _ref_weights("sdid_omega", "omega", "unit").to_numpy()
    lam = _ref_weights("sdid_lambda", "lambda", "time").to_numpy()
    assert sdid.effective_controls()[0] == pytest.approx(1 / np.sum(om ** 2), rel=1e-6)
    assert sdid.effective_pre_periods()[0] == pytest.approx(1 / np.sum(lam ** 2), rel=1e-6)
    text = str(sdid.summary())
    for piece in ("N0.effective", "16.388", "2.783", "Synthetic DiD", "eta_omega", "not computed"):
        assert piece in text, piece
    t = sdid.tidy()
    assert list(t["term"]) == ["ATT"] and np.isnan(t["std_error"].iloc[0])


def test_fixed_weights_reproduce_the_estimate() -> None:
    """synthdid's weights passed as fixed weights give its estimate (the estimator is the weighted contrast)."""
    om = _ref_weights("sdid_omega", "omega", "unit")
    lam = _ref_weights("sdid_lambda", "lambda", "time").to_numpy()
    res = fit(unit_weights=om.to_dict(), time_weights=lam)
    assert res.estimate == pytest.approx(REF["estimates"]["synthdid"], rel=1e-10)
    assert "fixed" in str(res.summary())


def test_knob_variants_of_the_paper() -> None:
    """De-meaned synthetic control (uniform time weights, eta_omega ~ 0) and regularised SC are the weighted
    contrasts of their own weights."""
    d = PROP.pivot(index="State", columns="Year", values="PacksPerCapita")
    ca = d.loc["California"].to_numpy()
    controls = d.drop(index="California")
    demeaned = fit(time_weights="uniform", eta_omega=1e-6)
    om = demeaned.unit_weights.set_index("unit")["weight"].loc[controls.index].to_numpy()
    gap = ca - om @ controls.to_numpy()
    assert demeaned.estimate == pytest.approx(gap[19:].mean() - gap[:19].mean(), rel=1e-10)
    assert np.allclose(demeaned.time_weights["weight"], 1 / 19)
    N1T1 = 1 * 12
    reg = fit(method="sc", eta_omega=N1T1 ** 0.25)
    om = reg.unit_weights.set_index("unit")["weight"].loc[controls.index].to_numpy()
    assert om.sum() == pytest.approx(1.0) and (om >= 0).all()
    assert reg.estimate == pytest.approx((ca - om @ controls.to_numpy())[19:].mean(), rel=1e-10)
    # more regularisation spreads the weights
    assert reg.effective_controls()[0] > fit(method="sc").effective_controls()[0]


def test_did_equals_twfe() -> None:
    """method='did' (uniform weights) is the TWFE coefficient on the same balanced panel."""
    cohort = np.where(PROP["State"] == "California", 1989, 0)
    tw = didx.twfe(PROP.assign(cohort=cohort), y="PacksPerCapita", unit="State", time="Year", cohort="cohort")
    assert fit(method="did").estimate == pytest.approx(tw.estimate, rel=1e-10)


# ------------------------------------------------------------------ standard errors
@pytest.mark.parametrize(("method", "key"), [("sdid", "synthdid"), ("sc", "sc"), ("did", "did")])
def test_placebo_se_within_monte_carlo_error(method: str, key: str) -> None:
    res = fit(method=method, se="placebo", seed=12345)
    assert res.std_error == pytest.approx(REF["se_placebo_seed12345"][key][0][0], rel=PLACEBO_RTOL)
    assert "placebo (200 replications, seed 12345)" in str(res.summary())


def test_placebo_did_converges_to_its_exact_value() -> None:
    """With fixed (uniform) weights a placebo draw picks one control; the placebo SE is the sd over those."""
    res = fit(method="did", se="placebo", n_reps=4000, seed=3)
    Y = PROP.pivot(index="State", columns="Year", values="PacksPerCapita").drop(index="California").to_numpy()
    d = Y[:, 19:].mean(axis=1) - Y[:, :19].mean(axis=1)
    taus = np.array([d[j] - np.delete(d, j).mean() for j in range(d.size)])
    assert res.std_error == pytest.approx(taus.std(), rel=0.03)


def test_seeded_and_reproducible() -> None:
    a = fit(method="sc", se="placebo", n_reps=30, seed=7)
    b = fit(method="sc", se="placebo", n_reps=30, seed=7)
    c = fit(method="sc", se="placebo", n_reps=30, seed=8)
    assert a.std_error == b.std_error and a.std_error != c.std_error


def _small(n_units: int = 14, T: int = 8, treated: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), T)
    time = np.tile(np.arange(2000, 2000 + T), n_units)
    tr = unit >= n_units - treated
    d = (tr & (time >= 2005)).astype(int)
    f = rng.normal(size=n_units)[unit] * np.sin(time - 2000) + rng.normal(size=n_units)[unit]
    y = f + 0.3 * (time - 2000) + 2.0 * d + rng.normal(scale=0.5, size=unit.size)
    return pd.DataFrame({"u": unit, "t": time, "y": y, "d": d, "region": unit % 5})


SMALL = _small()
SCOLS = {"y": "y", "unit": "u", "time": "t", "treat": "d"}


def test_jackknife_equals_brute_force_leave_one_out() -> None:
    res = didx.synthdid(SMALL, **SCOLS, se="jackknife")
    om = res.unit_weights.set_index("unit")["weight"]
    lam = res.time_weights["weight"].to_numpy()
    loo = []
    for u in SMALL["u"].unique():
        keep = om.drop(index=u, errors="ignore")
        sub = SMALL[SMALL["u"] != u]
        loo.append(didx.synthdid(sub, **SCOLS, unit_weights=(keep / keep.sum()).to_dict(),
                                 time_weights=lam).estimate)
    u = np.array(loo)
    n = u.size
    assert res.std_error == pytest.approx(np.sqrt((n - 1) / n * np.sum((u - u.mean()) ** 2)), rel=1e-10)
    assert "jackknife" in res.inference.vcov_type


def test_jackknife_with_optimized_covariates_reestimates_beta_as_synthdid() -> None:
    """synthdid's jackknife_se re-runs its covariate solver in each leave-one-out sample (weights fixed, beta
    re-estimated from 0 with the fit's min_decrease): the brute force through the public API with fixed weights."""
    df = SMALL.assign(x=np.random.default_rng(0).normal(size=len(SMALL)))
    res = didx.synthdid(df, **SCOLS, covariates="x", se="jackknife")
    om = res.unit_weights.set_index("unit")["weight"]
    lam = res.time_weights["weight"].to_numpy()
    md = res.cohort_fits[0].opts.min_decrease
    loo = []
    for u in df["u"].unique():
        keep = om.drop(index=u, errors="ignore")
        loo.append(didx.synthdid(df[df["u"] != u], **SCOLS, covariates="x", unit_weights=(keep / keep.sum()).to_dict(),
                                 time_weights=lam, min_decrease=md).estimate)
    v = np.array(loo)
    assert res.std_error == pytest.approx(np.sqrt((v.size - 1) / v.size * np.sum((v - v.mean()) ** 2)), rel=1e-10)


def test_staggered_jackknife_equals_leave_one_out_with_fixed_weights() -> None:
    """With several cohorts: each unit left out, every cohort's weights fixed (a control's weight removed and the
    rest renormalised), cohort estimates recombined with the N1 T1 weights."""
    res = didx.synthdid(STAG, **SCOLS, se="jackknife")
    d = res.design_matrix
    taus = []
    for out in range(d.N):
        est, wts = [], []
        for j, f in enumerate(res.cohort_fits):
            rows = [r for r in d.block_rows(j) if r != out]
            ctrl = [r for r in rows if r < d.N0]
            om = f.omega[ctrl] / f.omega[ctrl].sum()
            Yb = d.Y[rows]
            gap = Yb[len(ctrl):].mean(axis=0) - om @ Yb[:len(ctrl)]
            est.append(gap[f.period:].mean() - f.lam @ gap[:f.period])
            wts.append((len(rows) - len(ctrl)) * f.n_post)
        taus.append(np.average(est, weights=wts))
    u = np.array(taus)
    want = np.sqrt((u.size - 1) / u.size * np.sum((u - u.mean()) ** 2))
    assert res.std_error == pytest.approx(want, rel=1e-10)


def test_staggered_bootstrap_runs_seeded() -> None:
    a = didx.synthdid(STAG, **SCOLS, method="did", se="bootstrap", n_reps=30, seed=4)
    b = didx.synthdid(STAG, **SCOLS, method="did", se="bootstrap", n_reps=30, seed=4)
    assert a.std_error == b.std_error and np.isfinite(a.std_errors).all()


def test_bootstrap_seeded_and_clustered() -> None:
    a = didx.synthdid(SMALL, **SCOLS, se="bootstrap", n_reps=40, seed=2)
    b = didx.synthdid(SMALL, **SCOLS, se="bootstrap", n_reps=40, seed=2)
    assert a.std_error == b.std_error and np.isfinite(a.std_error) and a.std_error > 0
    by_unit = didx.synthdid(SMALL, **SCOLS, se="bootstrap", n_reps=40, seed=2, cluster="u")
    assert by_unit.std_error == pytest.approx(a.std_error, rel=1e-12)  # a unit per cluster: the same draws
    by_region = didx.synthdid(SMALL, **SCOLS, se="bootstrap", n_reps=40, seed=2, cluster="region")
    assert by_region.inference.n_clusters == (5,) and by_region.std_error != a.std_error
    again = a.with_vcov(cluster="region", data=SMALL)
    assert again.std_error == pytest.approx(by_region.std_error, rel=1e-12)


def test_one_treated_unit_refuses_bootstrap_and_jackknife() -> None:
    for se in ("bootstrap", "jackknife"):
        with pytest.raises(didx.InvalidOptionError, match="placebo"):
            fit(se=se)
    with pytest.raises(didx.InvalidOptionError, match="cluster"):
        fit(se="placebo", cluster="State")


# ------------------------------------------------------------------ bad input
def test_bad_input_names_the_units() -> None:
    with pytest.raises(didx.DataError, match=r"unbalanced.*Alabama"):
        didx.synthdid(PROP[~((PROP["State"] == "Alabama") & (PROP["Year"] == 1975))], **COLS)
    off = PROP.assign(treated=np.where((PROP["State"] == "California") & (PROP["Year"] == 2000), 0,
                                       PROP["treated"]))
    with pytest.raises(didx.DesignError, match=r"switches off.*California"):
        didx.synthdid(off, **COLS)
    with pytest.raises(didx.DesignError, match="no never-treated"):
        didx.synthdid(PROP.assign(treated=(PROP["Year"] >= 1989).astype(int)), **COLS)
    first = PROP.assign(treated=np.where(PROP["State"] == "Utah", 1, PROP["treated"]))
    with pytest.raises(didx.DesignError, match=r"Utah.*first period"):
        didx.synthdid(first, **COLS)
    with pytest.raises(didx.InvalidOptionError, match="'method'"):
        fit(method="synth")
    with pytest.raises(didx.InvalidOptionError, match="unit_weights"):
        fit(unit_weights=[1.0, 2.0])
    with pytest.raises(didx.InvalidOptionError, match="at least 2 replications"):
        fit(se="placebo", n_reps=1)


# ------------------------------------------------------------------ staggered adoption
def _staggered(seed: int = 4, tau: float = 3.0, noise: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, T = 60, 12
    unit = np.repeat(np.arange(n), T)
    time = np.tile(np.arange(T), n)
    adopt = np.select([np.arange(n) < 6, np.arange(n) < 12], [6, 9], 99)[unit]
    d = (time >= adopt).astype(int)
    load = rng.normal(size=n)[unit]
    y = rng.normal(size=n)[unit] + 0.2 * time + load * np.cos(time / 2) + tau * d + rng.normal(scale=noise,
                                                                                               size=unit.size)
    return pd.DataFrame({"u": unit, "t": time, "y": y, "d": d, "x_const": rng.normal(size=n)[unit],
                         "x": rng.normal(size=unit.size)})


STAG = _staggered()


def test_one_cohort_equals_the_simultaneous_estimator() -> None:
    full = didx.synthdid(STAG, **SCOLS)
    assert full.terms == ("ATT", "ATT(6)", "ATT(9)")
    only9 = didx.synthdid(STAG[~STAG["u"].between(0, 5)], **SCOLS)
    assert only9.estimate == pytest.approx(full.params["ATT(9)"], rel=1e-12)
    w = np.array([6 * 6, 6 * 3])
    assert full.estimate == pytest.approx(w @ full.coef[1:] / w.sum(), rel=1e-12)
    assert set(full.unit_weights["cohort"]) == {6, 9}


def test_staggered_summary_prints_every_cohorts_regularisation() -> None:
    """eta_omega = (N1 T1)^(1/4) and min_decrease = 1e-5 sigma differ by cohort: the design lists each, not the
    first cohort's; with every weight fixed no Frank-Wolfe is run, and the summary says so."""
    res = didx.synthdid(STAG, **SCOLS)
    design = dict(res.design)
    for f in res.cohort_fits:
        assert f"{f.period}: {fmt_value(f.eta_omega)}" in design["Unit weights"]
        assert fmt_value(f.opts.min_decrease) in design["Frank-Wolfe"]
    assert res.cohort_fits[0].eta_omega != res.cohort_fits[1].eta_omega
    assert dict(didx.synthdid(STAG, **SCOLS, method="did").design)["Frank-Wolfe"].startswith("not used")


def test_staggered_recovers_a_known_effect_and_event_study() -> None:
    res = didx.synthdid(STAG, **SCOLS, se="placebo", n_reps=50, seed=1)
    assert res.estimate == pytest.approx(3.0, abs=0.3)
    es = res.aggregate("dynamic")
    post = es.tidy().query("event_time >= 0")
    assert np.allclose(post["estimate"], 3.0, atol=0.6)
    assert np.isfinite(es.std_errors).all() and es.n_pre > 0


def test_event_study_averages_to_the_estimate(sdid: didx.SynthDiDResult) -> None:
    es = sdid.event_study()
    t = es.tidy()
    assert t.query("event_time >= 0")["estimate"].mean() == pytest.approx(sdid.estimate, rel=1e-10)
    lam = sdid.time_weights["weight"].to_numpy()
    assert float(lam @ t.query("event_time < 0")["estimate"].to_numpy()) == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ covariates
@pytest.mark.parametrize("how", ["optimized", "projected"])
def test_a_covariate_constant_within_units_changes_nothing(how: str) -> None:
    base = didx.synthdid(STAG, **SCOLS)
    with_x = didx.synthdid(STAG, **SCOLS, covariates="x_const", covariate_method=how)
    coefs = with_x.covariate_coefficients
    beta = coefs["x_const"] if how == "optimized" else coefs["estimate"]
    assert np.abs(beta.to_numpy()).max() < 1e-10
    if how == "projected":  # the same outcome matrix, so the same fit
        np.testing.assert_allclose(with_x.coef, base.coef, rtol=1e-12)
    else:  # synthdid's covariate solver (joint steps, no sparsification) reaches the weights by another path
        np.testing.assert_allclose(with_x.coef, base.coef, rtol=1e-3)


@pytest.mark.parametrize("how", ["optimized", "projected"])
def test_covariates_remove_a_confounder(how: str) -> None:
    rng = np.random.default_rng(9)
    df = STAG.copy()
    df["z"] = rng.normal(size=len(df)) + 2.0 * df["d"]  # a covariate moving with treatment
    df["y"] = df["y"] + 1.5 * df["z"]
    naive = didx.synthdid(df, **SCOLS)
    adj = didx.synthdid(df, **SCOLS, covariates="z", covariate_method=how)
    assert abs(naive.estimate - 3.0) > 2.0
    assert adj.estimate == pytest.approx(3.0, abs=0.4)
    assert not adj.covariate_coefficients.empty


# ------------------------------------------------------------------ plots
def test_plots_return_axes(sdid: didx.SynthDiDResult) -> None:
    ax = sdid.plot()
    assert ax.get_title().startswith("Synthetic DiD")
    assert sdid.plot_weights() is not None
    assert fit(method="sc").plot() is not None
    axes = didx.synthdid(STAG, **SCOLS).plot()
    assert len(axes) == 2
    with pytest.raises(didx.InvalidOptionError, match="'ax' parameter"):
        sdid.plot(ax="x")
    plt.close("all")


def test_shared_gram_placebo_solver_equals_the_block_solver(sdid: didx.SynthDiDResult) -> None:
    """The placebo's unit weights from one shared Gram matrix equal synthdid's solver run on each replication's
    own block (the same Frank-Wolfe iterates, up to rounding)."""
    from didx.estimators.synthdid.core import fit_block, placebo_weights
    from didx.estimators.synthdid.fit import sum_normalize

    d, f = sdid.design_matrix, sdid.cohort_fits[0]
    rng = np.random.default_rng(0)
    perms = np.argsort(rng.random((4, d.N0)), axis=1)
    ctrl, tr = perms[:, :-1], perms[:, -1:]
    om0 = sum_normalize(f.omega[ctrl])
    om, lam = placebo_weights(d.Y, d.N0, f.period, ctrl, tr, f.opts, om0, np.broadcast_to(f.lam, (4, f.period)))
    for r in range(4):
        block = fit_block(d.Y[np.concatenate([ctrl[r], tr[r]])], d.N0 - 1, f.period, f.opts, omega=om0[r],
                          lam=f.lam)
        np.testing.assert_allclose(om[r], block.omega[0], atol=1e-10)
        np.testing.assert_allclose(lam[r], block.lam[0], atol=1e-10)


# ------------------------------------------------------------------ the batched Frank-Wolfe kernels
def _fw_problems(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A (12 x 9) regressor matrix, 7 problems each keeping 6 of its columns, their targets and starting points
    (one starts at a vertex)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(12, 9)) + np.linspace(0.0, 2.0, 9)
    S = np.argsort(rng.random((7, 9)), axis=1)[:, :6]
    b = rng.normal(size=(7, 12))
    x0 = rng.dirichlet(np.ones(6), size=7)
    x0[3] = np.eye(6)[2]
    return A, S, b, x0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_frank_wolfe_equals_one_problem_at_a_time(seed: int) -> None:
    """The placebo kernel (shared Gram matrix, several cache-sized chunks, each problem stopped on its own) and
    the per-problem batched kernel give each problem the iterates of the sequential solver: the same number of
    steps (synthdid's stopping rule per replication) and the same weights up to rounding."""
    from didx.estimators.synthdid._fw import frank_wolfe, frank_wolfe_gram, frank_wolfe_shared

    A, S, b, x0 = _fw_problems(seed)
    zeta, md = 0.3, np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-2])
    n = A.shape[0]
    want = [frank_wolfe_gram(A[:, S[r]], b[r], x0[r], zeta, min_decrease=float(md[r]), max_iter=300)
            for r in range(7)]
    iters = np.array([w[1] for w in want])
    assert len(set(iters.tolist())) > 2  # the problems stop at different steps
    got, it = frank_wolfe(A[:, S].transpose(1, 0, 2), b, x0, zeta, min_decrease=md, max_iter=300)
    np.testing.assert_array_equal(it, iters)
    np.testing.assert_allclose(got, np.array([w[0] for w in want]), atol=1e-12, rtol=0)
    for r in range(7):  # the shared-Gram kernel takes one min_decrease: one problem at a time, 2 per chunk
        sel = np.full(2, r)
        got, it = frank_wolfe_shared(A.T @ A, S[sel], b[sel] @ A[:, S[r]], x0[sel], n * zeta ** 2,
                                     min_decrease=float(md[r]), n=n, max_iter=300, chunk_elements=9)
        assert it.tolist() == [iters[r], iters[r]]
        np.testing.assert_allclose(got, np.broadcast_to(want[r][0], got.shape), atol=1e-12, rtol=0)


def test_shared_kernel_chunks_do_not_change_results() -> None:
    from didx.estimators.synthdid._fw import frank_wolfe_shared

    A, S, b, x0 = _fw_problems(3)
    c = np.take_along_axis(b @ A, S, axis=1)
    one = frank_wolfe_shared(A.T @ A, S, c, x0, 0.5, min_decrease=3e-3, n=12, max_iter=500, chunk_elements=10 ** 6)
    for ce in (9, 18, 30):
        got = frank_wolfe_shared(A.T @ A, S, c, x0, 0.5, min_decrease=3e-3, n=12, max_iter=500, chunk_elements=ce)
        np.testing.assert_array_equal(got[1], one[1])
        np.testing.assert_allclose(got[0], one[0], atol=1e-13, rtol=0)


# Seeded SEs recorded with the solver before the batched-product kernel (commit 861cca6): the replications follow
# the same iterations, so they agree to floating-point rounding (the order of the operations changed; measured
# relative differences 1e-15 to 5e-13).
SEEDED_SE = {"sdid": 10.794833910668356, "sc": 13.246516197872808, "stag": 0.07730058395780882,
             "stag_bootstrap": 0.08367701492032287}


@pytest.mark.parametrize("method", ["sdid", "sc"])
def test_seeded_placebo_se_unchanged_by_the_fast_solver(method: str) -> None:
    res = fit(method=method, se="placebo", n_reps=100, seed=11)
    assert res.std_error == pytest.approx(SEEDED_SE[method], rel=1e-10)


def test_seeded_staggered_se_unchanged_by_the_fast_solver() -> None:
    res = didx.synthdid(STAG, **SCOLS, se="placebo", n_reps=40, seed=5)
    assert res.std_error == pytest.approx(SEEDED_SE["stag"], rel=1e-10)
    res = didx.synthdid(STAG, **SCOLS, se="bootstrap", n_reps=40, seed=5)
    assert res.std_error == pytest.approx(SEEDED_SE["stag_bootstrap"], rel=1e-10)


# ------------------------------------------------------------------ the optional numba kernel (didx[fast])
def _numba_on(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    monkeypatch.setenv("DIDX_NO_NUMBA", "0" if on else "1")


def test_no_numba_env_var_selects_the_numpy_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from didx.estimators.synthdid._fw import _numba_kernel

    _numba_on(monkeypatch, False)
    assert _numba_kernel() is None
    _numba_on(monkeypatch, True)
    try:
        import numba  # noqa: F401
    except ImportError:
        assert _numba_kernel() is None  # without numba: the numpy loop, silently
    else:
        assert _numba_kernel() is not None


def test_without_numba_the_numpy_loop_runs_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from didx.estimators.synthdid import _fw

    _numba_on(monkeypatch, True)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "didx.estimators.synthdid._fw_numba", raising=False)
    monkeypatch.setattr(_fw, "_NUMBA", [])
    assert _fw._numba_kernel() is None
    A, S, b, x0 = _fw_problems(0)
    x, it = _fw.frank_wolfe(A[:, S].transpose(1, 0, 2), b, x0, 0.3, min_decrease=1e-3, max_iter=50)
    assert np.allclose(x.sum(axis=1), 1.0) and (it >= 2).all()


def _both_paths(monkeypatch: pytest.MonkeyPatch, run: Any) -> tuple[Any, Any]:
    pytest.importorskip("numba")
    _numba_on(monkeypatch, False)
    numpy_out = run()
    _numba_on(monkeypatch, True)
    return numpy_out, run()


@pytest.mark.parametrize(("seed", "k"), [(0, 6), (1, 40), (2, 300)])  # 300 >= SCALED_FROM: weights kept scaled
def test_numba_kernel_equals_the_numpy_loop(monkeypatch: pytest.MonkeyPatch, seed: int, k: int) -> None:
    """Both Frank-Wolfe entry points (per-problem Gram matrices, and the placebo's shared Gram matrix) give the
    same step counts and the same weights (to rounding) with the compiled loop as with the numpy loop, problems
    stopping at different steps, one starting at a vertex."""
    from didx.estimators.synthdid._fw import frank_wolfe, frank_wolfe_shared

    rng = np.random.default_rng(seed)
    n, N, B = 15, k + 5, 6
    A = rng.normal(size=(n, N)) + np.linspace(0.0, 2.0, N)
    S = np.sort(np.argsort(rng.random((B, N)), axis=1)[:, :k], axis=1)
    b = rng.normal(size=(B, n))
    x0 = rng.dirichlet(np.ones(k), size=B)
    x0[2] = np.eye(k)[1]
    md = np.array([1e-1, 3e-2, 1e-2, 1e-3, 1e-5, 1e-9])
    c = np.take_along_axis(b @ A, S, axis=1)

    def run() -> list[tuple[np.ndarray, np.ndarray]]:
        out = [frank_wolfe(A[:, S].transpose(1, 0, 2), b, x0, 0.3, min_decrease=md, max_iter=2000)]
        out += [frank_wolfe_shared(A.T @ A, S, c, x0, 0.4, min_decrease=m, n=n, max_iter=2000, chunk_elements=2 * N)
                for m in (1e-2, 1e-6)]
        return out

    want, got = _both_paths(monkeypatch, run)
    assert len(set(want[0][1].tolist())) > 2  # the problems stop at different steps
    for (xw, iw), (xg, ig) in zip(want, got, strict=True):
        np.testing.assert_array_equal(ig, iw)
        np.testing.assert_allclose(xg, xw, atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", ["prop99 sdid", "prop99 sc", "staggered placebo", "staggered bootstrap"])
def test_numba_and_numpy_give_the_same_estimates(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    def run() -> didx.SynthDiDResult:
        if case.startswith("prop99"):
            return fit(method=case.split()[1], se="placebo", n_reps=30, seed=3)
        res: didx.SynthDiDResult = didx.synthdid(STAG, **SCOLS, se=case.split()[1], n_reps=30, seed=3)
        return res

    want, got = _both_paths(monkeypatch, run)
    assert got.estimate == pytest.approx(want.estimate, rel=1e-10)
    assert got.std_error == pytest.approx(want.std_error, rel=1e-10)
    for fw, fg in zip(want.cohort_fits, got.cohort_fits, strict=True):
        np.testing.assert_allclose(fg.omega, fw.omega, atol=1e-12, rtol=0)
        np.testing.assert_allclose(fg.lam, fw.lam, atol=1e-12, rtol=0)
