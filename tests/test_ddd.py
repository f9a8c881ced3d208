"""Triple differences (didx.ddd): references (moderndid 0.2.0, the Python port of R triplediff), identities,
a simulation with known truth, and bad input.

Reference numbers: tests/reference/ddd.json, made by tests/reference/ddd_moderndid.py (moderndid 0.2.0; R is not
available here, and R triplediff's README outputs come from R-simulated data that cannot be regenerated without
R). Conventions: moderndid's two-period SE is sd(IF)/sqrt(n) (R ``att_dr``), checked against
``two_period(...).std_error``; its GMM (not-yet-treated) cells report ``sqrt(1 / (n 1'Omega^-1 1))`` with a
ddof=1 covariance, = didx's ``sqrt(sum IF^2) / n`` times ``sqrt(n / (n - 1))`` when every unit is in the cell.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import didx
from didx._errors import DataError, DesignError, InvalidOptionError
from didx.estimators.ddd.cells import two_period
from didx.estimators.ddd.estimator import ddd

REF = Path(__file__).parent / "reference"
REL = 1e-6  # point estimates and analytic SEs (relative)


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF / "ddd.json").read_text())


@pytest.fixture(scope="module")
def cai() -> pd.DataFrame:
    """The balanced cai2016 sample of the reference (see ddd_moderndid.py)."""
    d = didx.datasets.load("cai2016")
    b = d[d.groupby("hhno").year.transform("size") == 9].copy()
    b["group"] = np.where(b.treatment == 1, 2003, 0)
    first = b.sort_values(["hhno", "year"]).groupby("hhno")[["hhsize", "age"]].transform("first")
    b["hhsize0"] = first.hhsize
    b["age0"] = first.age
    return b


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return pd.read_csv(REF / "ddd_sim.csv")


def _close(a: float, b: float, rel: float = REL) -> None:
    assert a == pytest.approx(b, rel=rel, abs=1e-12), (a, b)


def _cells(res: didx.Result) -> pd.DataFrame:
    t = res.tidy()
    return t[np.isfinite(t["group"].astype(float))].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- references
@pytest.mark.parametrize("cov", ["nocov", "cov"])
@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_two_period_matches_moderndid(cai: pd.DataFrame, ref: dict, cov: str, method: str) -> None:
    two = cai[cai.year.isin([2002, 2003])].sort_values(["hhno", "year"])
    pre, post = two[two.year == 2002], two[two.year == 2003]
    X = np.column_stack([np.ones(len(pre)), pre[["hhsize0", "age0"]].to_numpy()]) if cov == "cov" else None
    est = two_period(post.checksaving_ratio.to_numpy() - pre.checksaving_ratio.to_numpy(),
                     pre.group.to_numpy() == 2003, pre.sector.to_numpy() == 1, X, None, method)
    r = ref[f"two_period_{cov}_{method}"]
    _close(est.att, r["att"])
    _close(est.std_error, r["se"])
    for got, key in zip(est.did_atts, ("att_4v3", "att_4v2", "att_4v1"), strict=True):
        _close(got, r["did_atts"][key])
    # the staggered estimator on the same two periods: same estimate and influence function (SE without ddof)
    res = ddd(two, y="checksaving_ratio", unit="hhno", time="year", cohort="group", partition="sector",
              covariates=["hhsize0", "age0"] if cov == "cov" else None, method=method)
    _close(res.coef[_cells(res).index[_cells(res).time == 2003][0]], est.att, 1e-9)
    n = est.inf_func.shape[0]
    _close(res.std_error, est.std_error * np.sqrt((n - 1) / n), 1e-7)


@pytest.mark.parametrize("cov", ["nocov", "cov"])
@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
@pytest.mark.parametrize("base", ["universal", "varying"])
def test_cai_multi_period_matches_moderndid(cai: pd.DataFrame, ref: dict, cov: str, method: str, base: str) -> None:
    r = ref[f"cai_{cov}_{method}_{base}"]
    res = ddd(cai, y="checksaving_ratio", unit="hhno", time="year", cohort="group", partition="sector",
              covariates=["hhsize0", "age0"] if cov == "cov" else None, method=method, base_period=base)
    cells = _cells(res)
    np.testing.assert_allclose(cells.group.astype(float), r["group"])
    np.testing.assert_allclose(cells.time.astype(float), r["time"])
    np.testing.assert_allclose(cells.estimate, r["att"], rtol=REL, atol=1e-12)
    se_ref = np.array([np.nan if v is None else v for v in r["se"]])
    ok = np.isfinite(se_ref)
    np.testing.assert_allclose(cells.std_error[ok], se_ref[ok], rtol=REL)
    if base == "universal":
        _check_aggregations(res, r)


def _se_without_weight_term(agg: didx.Result) -> np.ndarray:
    """SEs of an aggregation without the term for the estimated cohort-share weights (``did``'s ``wif``)."""
    src = agg._source
    return np.sqrt(np.diag(src.choice.store.vcov(src.A, None)))


def _check_aggregations(res: didx.Result, r: dict) -> None:
    """Point estimates against moderndid; SEs against moderndid WITHOUT the weight-estimation term, which
    moderndid 0.2.0's agg_ddd omits for the simple, event-study and calendar aggregations while R triplediff's
    compute_aggregations (like did's aggte) includes it, as didx does (the group aggregation's overall
    effect has it in both; with one cohort the term is zero)."""
    es = res.aggregate("dynamic")
    a = r["agg_eventstudy"]
    _close(es.coef[-1], a["overall_att"])
    _close(_se_without_weight_term(es)[-1], a["overall_se"])
    et = np.asarray(es.term_info["event_time"], dtype=float)[:-1]
    ref_e = {e: (v, s) for e, v, s in zip(a["egt"], a["att_egt"], a["se_egt"], strict=True)}
    for e, b, s in zip(et, es.coef[:-1], _se_without_weight_term(es)[:-1], strict=True):
        _close(b, ref_e[e][0])
        _close(s, ref_e[e][1])
    for kind, key in (("simple", "agg_simple"), ("group", "agg_group"), ("calendar", "agg_calendar")):
        agg = res.aggregate(kind)
        _close(agg.estimate, r[key]["overall_att"])
        se = np.sqrt(np.diag(agg.vcov_matrix)) if kind == "group" else _se_without_weight_term(agg)
        _close(se[-1], r[key]["overall_se"])
        if r[key]["att_egt"] is not None:
            np.testing.assert_allclose(agg.coef[:-1], r[key]["att_egt"], rtol=REL)
            np.testing.assert_allclose(se[:-1], r[key]["se_egt"], rtol=REL)


@pytest.mark.parametrize("cov", ["nocov", "cov"])
@pytest.mark.parametrize("control", ["nevertreated", "notyettreated"])
@pytest.mark.parametrize("base", ["universal", "varying"])
def test_staggered_sim_matches_moderndid(sim: pd.DataFrame, ref: dict, cov: str, control: str, base: str) -> None:
    """Two cohorts and never-treated units; with not-yet-treated comparisons ATT(2,2) combines the never-treated
    and cohort-3 DDDs by GMM (every unit is in that cell, so the GMM SEs are comparable)."""
    r = ref[f"sim_{cov}_{control}_{base}"]
    res = ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition",
              covariates=["cov1", "cov2", "cov3", "cov4"] if cov == "cov" else None,
              control="never" if control == "nevertreated" else "not_yet", base_period=base)
    cells = _cells(res)
    np.testing.assert_allclose(cells.estimate, r["att"], rtol=REL, atol=1e-10)
    se_ref = np.array([np.nan if v is None else v for v in r["se"]])
    n = sim.id.nunique()
    gmm = (control == "notyettreated") & (cells.group == 2) & (cells.time == 2)
    se = np.where(gmm, cells.std_error * np.sqrt(n / (n - 1)), cells.std_error)
    ok = np.isfinite(se_ref)
    np.testing.assert_allclose(se[ok], se_ref[ok], rtol=REL)
    if base == "universal" and control == "nevertreated":
        _check_aggregations(res, r)
        # with two cohorts the estimated-weight term matters (R triplediff and did include it)
        es = res.aggregate("dynamic")
        assert es.std_error > _se_without_weight_term(es)[-1] * (1 + 1e-4)


def _rc_rows(d: pd.DataFrame, unit: str, time: str) -> pd.DataFrame:
    keep = (d[unit] * 7 + d[time]) % 10 >= 3
    return d[keep].reset_index(drop=True)


@pytest.mark.parametrize("cov", ["nocov", "cov"])
@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_two_period_repeated_cross_sections(cai: pd.DataFrame, ref: dict, cov: str, method: str) -> None:
    rc = _rc_rows(cai[cai.year.isin([2002, 2003])], "hhno", "year")
    r = ref[f"two_period_rc_{cov}_{method}"]
    cols = ["hhsize0", "age0"] if cov == "cov" else []
    X = np.column_stack([np.ones(len(rc)), rc[cols].to_numpy()])
    est = two_period(rc.checksaving_ratio.to_numpy(), rc.group.to_numpy() == 2003, rc.sector.to_numpy() == 1, X,
                     None, method, post=(rc.year == 2003).to_numpy())
    _close(est.att, r["att"])
    _close(est.std_error, r["se"])
    res = ddd(rc, y="checksaving_ratio", time="year", cohort="group", partition="sector", covariates=cols or None,
              method=method, panel=False)
    _close(res.estimate, est.att, 1e-9)
    n = len(rc)
    _close(res.std_error, est.std_error * np.sqrt((n - 1) / n), 1e-7)


@pytest.mark.parametrize("cov", ["nocov", "cov"])
@pytest.mark.parametrize("control", ["nevertreated", "notyettreated"])
@pytest.mark.parametrize("base", ["universal", "varying"])
def test_staggered_repeated_cross_sections(sim: pd.DataFrame, ref: dict, cov: str, control: str, base: str) -> None:
    """Repeated cross sections; GMM cells (not yet treated, ATT(2,2)) differ from moderndid's reported SE by design
    (its sqrt(1 / (n 1' Omega^-1 1)) puts all n rows against a covariance over the cell's rows): their estimates are
    checked, and their SE against the influence-function formula computed here."""
    r = ref[f"sim_rc_{cov}_{control}_{base}"]
    rc = _rc_rows(sim, "id", "time")
    res = ddd(rc, y="y", time="time", cohort="group", partition="partition", panel=False,
              covariates=["cov1", "cov2"] if cov == "cov" else None,
              control="never" if control == "nevertreated" else "not_yet", base_period=base)
    cells = _cells(res)
    np.testing.assert_allclose(cells.estimate, r["att"], rtol=REL, atol=1e-10)
    se_ref = np.array([np.nan if v is None else v for v in r["se"]])
    gmm = ((control == "notyettreated") & (cells.group == 2) & (cells.time == 2)).to_numpy()
    ok = np.isfinite(se_ref) & ~gmm
    np.testing.assert_allclose(cells.std_error[ok], se_ref[ok], rtol=REL)
    if gmm.any():
        inf = res.influence_functions()[res.terms[int(np.flatnonzero(gmm)[0])]].to_numpy()
        _close(float(cells.std_error[gmm].iloc[0]), float(np.sqrt(inf @ inf) / len(rc)), 1e-10)


# ----------------------------------------------------------------------------------------------- identities
def test_no_covariates_methods_coincide(sim: pd.DataFrame) -> None:
    fits = [ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition", method=m,
                control="not_yet") for m in ("dr", "ipw", "reg")]
    for f in fits[1:]:
        np.testing.assert_allclose(f.coef, fits[0].coef, rtol=1e-12)
        np.testing.assert_allclose(f.vcov_matrix, fits[0].vcov_matrix, rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_sums_path_equals_three_comparisons(sim: pd.DataFrame, weighted: bool) -> None:
    """Without covariates every cell (cell-mean path, IF stored as cohort coefficients) equals the two-period
    estimator of three intercept-only DR comparisons on the cell's units, influence functions rescaled by n / m
    (also with sampling weights)."""
    sim = sim.assign(w=1.0 + (sim.id % 4) * 0.5)
    res = ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition", base_period="varying",
              weights="w" if weighted else None)
    inf = res.influence_functions()
    wide = sim.pivot(index="id", columns="time", values="y")
    unit = sim.groupby("id")[["group", "partition", "w"]].first()
    n = len(unit)
    cells = _cells(res)
    for j, row in cells.iterrows():
        g, t = float(row.group), float(row.time)
        b = g - 1 if t >= g else t - 1
        keep = unit.group.isin([g, 0]).to_numpy()
        ids = unit.index[keep]
        est = two_period((wide.loc[ids, t] - wide.loc[ids, b]).to_numpy(), unit.group[keep].to_numpy() == g,
                         unit.partition[keep].to_numpy() == 1, None, unit.w[keep].to_numpy() if weighted else None,
                         "dr")
        _close(row.estimate, est.att, 1e-10)
        full = np.zeros(n)
        full[np.flatnonzero(keep)] = est.inf_func * n / keep.sum()
        np.testing.assert_allclose(inf[res.terms[j]].reindex(unit.index).to_numpy(), full, rtol=1e-8, atol=1e-9)


def test_one_cohort_two_periods_equals_two_period(sim: pd.DataFrame) -> None:
    s = sim[(sim.group != 3) & sim.time.isin([1, 2])].sort_values(["id", "time"])
    res = ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition",
              covariates=["cov1", "cov2"])
    pre, post = s[s.time == 1], s[s.time == 2]
    X = np.column_stack([np.ones(len(pre)), pre[["cov1", "cov2"]].to_numpy()])
    est = two_period(post.y.to_numpy() - pre.y.to_numpy(), pre.group.to_numpy() == 2,
                     pre.partition.to_numpy() == 1, X)
    _close(res.estimate, est.att, 1e-10)
    inf = res.influence_functions()
    np.testing.assert_allclose(inf.loc[pre.id.to_numpy(), "ATT (simple)"].to_numpy(), est.inf_func, rtol=1e-9,
                               atol=1e-10)


def test_not_difference_of_two_dids_and_unbiased() -> None:
    """Known truth (ATT = 2): covariate X shifts the trend differently by partition and its distribution differs
    across the four subgroups. The difference of two covariate-adjusted DiDs (eligible vs ineligible, each against
    its own untreated comparison) reweights each to a different population and is biased; DDD is not."""
    rng = np.random.default_rng(3)
    n = 40_000
    S = rng.random(n) < 0.5
    Q = rng.random(n) < 0.5
    # X's distribution depends on the subgroup
    X = rng.normal(loc=0.8 * S + 0.8 * Q - 1.2 * S * Q, scale=1.0)
    # conditional DDD parallel trends hold (the S-specific trend 2 X S is the same for both partitions), DiD
    # parallel trends do not: each DiD carries E[2 X | S = 1, Q = q], which differs by partition
    trend = 1.0 + 1.5 * X * Q + 0.5 * X + 2.0 * X * S
    y0 = X + rng.normal(size=n)
    y1 = y0 + trend + 2.0 * (S & Q) * (1 + 0 * X) + rng.normal(size=n)
    dat = pd.DataFrame({"id": np.repeat(np.arange(n), 2), "t": np.tile([1, 2], n),
                        "y": np.column_stack([y0, y1]).ravel(), "g": np.repeat(np.where(S, 2, 0), 2),
                        "q": np.repeat(Q.astype(int), 2), "x": np.repeat(X, 2)})
    res = ddd(dat, y="y", unit="id", time="t", cohort="g", partition="q", covariates=["x"])
    assert abs(res.estimate - 2.0) < 4 * res.std_error
    assert abs(res.estimate - 2.0) < 0.06
    # difference of two DR DiDs: DiD(S, Q=1) - DiD(S, Q=0), each with covariates
    dat["s"] = (dat.g > 0).astype(int)
    d_e = didx.drdid(dat[dat.q == 1], y="y", unit="id", time="t", treat="s", covariates=["x"])
    d_i = didx.drdid(dat[dat.q == 0], y="y", unit="id", time="t", treat="s", covariates=["x"])
    diff = d_e.estimate - d_i.estimate
    assert abs(diff - 2.0) > 0.5  # biased
    for m in ("ipw", "reg"):
        r = ddd(dat, y="y", unit="id", time="t", cohort="g", partition="q", covariates=["x"], method=m)
        assert abs(r.estimate - 2.0) < 0.1


def test_invariances(sim: pd.DataFrame) -> None:
    base = ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition", control="not_yet")
    shuffled = sim.sample(frac=1.0, random_state=1)
    s2 = shuffled.assign(id=shuffled.id.astype(str) + "u", group=shuffled.group.replace(0, np.nan))
    other = ddd(s2, y="y", unit="id", time="time", cohort="group", partition="partition", control="not_yet")
    np.testing.assert_allclose(other.coef, base.coef, rtol=1e-10)
    np.testing.assert_allclose(other.vcov_matrix, base.vcov_matrix, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------------------------- machinery reuse
def test_aggregate_bootstrap_cluster_and_honest(sim: pd.DataFrame) -> None:
    res = ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition",
              covariates=["cov1"], n_bootstrap=199, seed=1)
    assert isinstance(res, didx.DDDResult)
    es = res.aggregate("dynamic")
    assert isinstance(es, didx.EventStudyResult)
    assert "triple differences" in es.pre_period_meaning
    assert res.uniform_critical_value() > 1.96
    cl = ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition", cluster="cluster")
    by_refit = cl.std_error
    later = ddd(sim, y="y", unit="id", time="time", cohort="group", partition="partition").with_vcov(
        cluster="cluster", data=sim)
    _close(later.std_error, by_refit, 1e-10)
    text = res.summary()
    assert "partition" in str(text).lower()
    h = didx.honest_did(es, restriction="smoothness", M=0.0)
    assert np.isfinite(np.asarray(h.tidy()["conf_low"], dtype=float)).all()


def test_weights_constant_scaling_invariant(sim: pd.DataFrame) -> None:
    s = sim.assign(w=1.0 + (sim.id % 3))
    a = ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition", weights="w")
    b = ddd(s.assign(w=s.w * 7.0), y="y", unit="id", time="time", cohort="group", partition="partition", weights="w")
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)
    c = ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition", weights="w",
            covariates=["cov1"], method="reg")
    assert np.all(np.isfinite(c.coef))


# ----------------------------------------------------------------------------------------------- bad input
def test_partition_varying_within_unit(sim: pd.DataFrame) -> None:
    s = sim.copy()
    s.loc[s.index[1], "partition"] = 1 - s.loc[s.index[1], "partition"]
    with pytest.raises(DataError, match=r"partition.*varies within a unit"):
        ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition")


def test_partition_not_binary(sim: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="0/1"):
        ddd(sim.assign(partition=sim.partition * 2), y="y", unit="id", time="time", cohort="group",
            partition="partition")
    with pytest.raises(DesignError, match="only the value"):
        ddd(sim.assign(partition=1), y="y", unit="id", time="time", cohort="group", partition="partition")


def test_cohort_varying_within_unit(sim: pd.DataFrame) -> None:
    s = sim.copy()
    s.loc[s.index[0], "group"] = 3 if s.loc[s.index[0], "group"] != 3 else 2
    with pytest.raises(DataError, match="constant within a unit"):
        ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition")


def test_bad_options(sim: pd.DataFrame) -> None:
    kw = dict(y="y", unit="id", time="time", cohort="group", partition="partition")
    with pytest.raises(InvalidOptionError, match="method"):
        ddd(sim, method="dml", **kw)
    with pytest.raises(InvalidOptionError, match="control"):
        ddd(sim, control="nevertreated", **kw)
    with pytest.raises(InvalidOptionError, match="both"):
        ddd(sim, y="y", unit="id", time="time", cohort="group", partition="group")
    with pytest.raises(InvalidOptionError, match="covariates"):
        ddd(sim, covariates=["partition"], **kw)
    with pytest.raises(DesignError, match="never"):
        ddd(sim[sim.group != 0], **kw)


# ----------------------------------------------------------------------------------------------- comparison
def test_event_study_comparison(sim: pd.DataFrame) -> None:
    cols = dict(y="y", unit="id", time="time", cohort="group")
    single = didx.event_study(sim, **cols, estimator="ddd", options={"ddd": {"partition": "partition"}})
    direct = ddd(sim, **cols, partition="partition").aggregate("dynamic")
    np.testing.assert_array_equal(single.coef, direct.coef)
    assert "triple differences" in single.pre_period_meaning
    both = didx.event_study(sim, **cols, estimator=["callaway_santanna", "ddd"],
                            options={"ddd": {"partition": "partition"}}, window=(-2, 1))
    assert set(both.tidy()["estimator"]) == {"callaway_santanna", "ddd"}
    with pytest.raises(InvalidOptionError, match="partition"):
        didx.event_study(sim, **cols, estimator="ddd")
    from didx.comparison import ESTIMATORS

    assert "ddd" not in ESTIMATORS  # estimator="all" runs the estimators of the common columns only


def test_partition_missing(sim: pd.DataFrame) -> None:
    s = sim.assign(partition=sim.partition.astype(float))
    s.loc[s.index[3], "partition"] = np.nan
    with pytest.raises(DataError, match="missing in 1 rows"):
        ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition")
    # a row dropped for another reason (missing outcome) may lack the partition: counted in the sample
    s.loc[s.index[3], "y"] = np.nan
    res = ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition")
    assert res.sample.n_obs < len(s)


def test_unbalanced_units_dropped_and_reported(cai: pd.DataFrame) -> None:
    full = didx.datasets.load("cai2016").assign(group=lambda d: np.where(d.treatment == 1, 2003, 0))
    res = ddd(full, y="checksaving_ratio", unit="hhno", time="year", cohort="group", partition="sector")
    bal = ddd(cai, y="checksaving_ratio", unit="hhno", time="year", cohort="group", partition="sector")
    np.testing.assert_allclose(res.coef, bal.coef, rtol=1e-12)
    dropped = sum(d.n_units for d in res.sample.dropped)
    assert dropped == full.hhno.nunique() - cai.hhno.nunique()
    assert "not observed in every period" in str(res.summary())


def test_no_never_treated_last_cohort_is_the_comparison(sim: pd.DataFrame) -> None:
    """Without never-enabled units and control='not_yet', the last cohort serves only as the comparison and the
    periods from it on are dropped (R triplediff / did): the same as calling it never enabled on those periods."""
    s = sim[sim.group != 0]
    a = ddd(s, y="y", unit="id", time="time", cohort="group", partition="partition", control="not_yet")
    b = ddd(s[s.time < 3].assign(group=s.group.where(s.group != 3, 0)), y="y", unit="id", time="time",
            cohort="group", partition="partition", control="never")
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-12)
    np.testing.assert_allclose(a.vcov_matrix, b.vcov_matrix, rtol=1e-10)
    assert any("comparison group" in n for n in a.sample.notes)


def test_frame_types(sim: pd.DataFrame) -> None:
    """polars (eager) and a duckdb relation (lazy: read once, so the partition and the panel columns line up)."""
    import duckdb
    import polars as pl

    kw = dict(y="y", unit="id", time="time", cohort="group", partition="partition", cluster="cluster")
    base = ddd(sim, **kw)
    for frame in (pl.from_pandas(sim), duckdb.connect().from_df(sim)):
        other = ddd(frame, **kw)
        np.testing.assert_allclose(other.coef, base.coef, rtol=1e-12)
        np.testing.assert_allclose(other.vcov_matrix, base.vcov_matrix, rtol=1e-10, atol=1e-14)


def test_partition_gram_equals_the_store_gram(sim: pd.DataFrame) -> None:
    from didx.inference.if_store import IFStore

    res = ddd(sim.assign(w=1.0 + sim.id % 3), y="y", unit="id", time="time", cohort="group", partition="partition",
              weights="w")
    store = res._source.fit.store
    fresh = IFStore(Z=store.Z, block=store.block, coef=store.coef, n=store.n)
    np.testing.assert_allclose(store.gram(), fresh.gram(), rtol=1e-12, atol=1e-9)
