"""event_study(estimator=...): every estimator with the same ref/window, the comparison table, identities across
estimators (2x2, imputation == did2s, Sun-Abraham == CS), invariances and errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import didx
from conftest import TOL_IDENTITY
from didx._validate import as_list
from didx.comparison import ESTIMATORS, PRE_PERIOD, EventStudyComparison
from didx.estimators.regression.event_study import EventStudyRegressionResult
from didx.results.event import EventStudyResult

MPDTA = {"y": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
SIM = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort"}
TIDY_COLUMNS = ["estimator", "term", "event_time", "estimate", "std_error", "conf_low", "conf_high", "reference"]
# Stacked needs its whole window inside the data for a cohort to enter; on mpdta (2003-2007, cohorts 2004, 2006,
# 2007) the common window (-3, 3) fits no cohort, so stacked gets its own.
STACKED_MPDTA = {"stacked": {"window": (-1, 1)}}


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def compare_mpdta(mpdta: pd.DataFrame) -> EventStudyComparison:
    res = didx.event_study(mpdta, **MPDTA, estimator="all", window=(-3, 3), options=STACKED_MPDTA)
    assert isinstance(res, EventStudyComparison)
    return res


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return didx.datasets.simulate_staggered(60, 8, cohorts=[4, 5, 6], seed=11)


# ------------------------------------------------------------------ structure
def test_tidy_structure(compare_mpdta: EventStudyComparison) -> None:
    t = compare_mpdta.tidy()
    assert list(t.columns) == TIDY_COLUMNS
    assert list(compare_mpdta.results) == list(ESTIMATORS)
    assert list(pd.unique(t["estimator"])) == list(ESTIMATORS)
    assert t["event_time"].notna().all()
    assert t["event_time"].between(-3, 3).all()
    for name, part in t.groupby("estimator", sort=False):
        assert part["event_time"].is_monotonic_increasing, name
        assert not part["event_time"].duplicated().any(), name
        ref = part[part["reference"]]
        assert (ref["estimate"] == 0).all() and (ref["std_error"] == 0).all()
        est = part[~part["reference"]]
        assert (est["conf_low"] < est["estimate"]).all() and (est["estimate"] < est["conf_high"]).all()
        assert (est["std_error"] > 0).all()
    # every estimator but BJS (no normalised period) has the reference -1 row
    has_ref = t[t["reference"]].groupby("estimator")["event_time"].apply(list).to_dict()
    assert has_ref == {n: [-1.0] for n in ESTIMATORS if n != "imputation"}
    assert set(t.loc[t["estimator"] == "imputation", "event_time"]) == {-3, -2, -1, 0, 1, 2, 3}


def test_tidy_matches_each_result(compare_mpdta: EventStudyComparison) -> None:
    t = compare_mpdta.tidy(conf_level=0.9)
    for name, res in compare_mpdta.results.items():
        own = res.tidy(conf_level=0.9)
        own = own[np.isfinite(own["event_time"].astype(float))]
        own = own.sort_values("event_time", kind="stable").set_index("term")
        part = t[(t["estimator"] == name) & ~t["reference"]].set_index("term")
        assert list(part.index) == list(own.index)
        for col in ("estimate", "std_error", "conf_low", "conf_high"):
            np.testing.assert_array_equal(part[col].to_numpy(), own[col].to_numpy(float))


def test_wide_and_getitem(compare_mpdta: EventStudyComparison) -> None:
    w = compare_mpdta.wide()
    assert list(w.columns) == list(ESTIMATORS)
    assert w.loc[-1.0, "twfe"] == 0.0 and np.isnan(w.loc[-3.0, "stacked"])
    assert compare_mpdta["dcdh"] is compare_mpdta.results["dcdh"]


def test_summary_documents_pre_period_definitions(compare_mpdta: EventStudyComparison) -> None:
    s = str(compare_mpdta.summary())
    for name in ESTIMATORS:
        assert f"[{name}]" in s
    for key in ("twfe", "sun_abraham", "callaway_santanna_universal", "imputation", "did2s", "dcdh", "stacked"):
        assert PRE_PERIOD[key] in s
    assert "options overrode the common mapping of window" in s  # the stacked override is not silent
    assert "observations of treated units outside window [-3, 3]" in s  # TWFE / SA trimming is reported
    assert "Pre-trend test" in s and "base_period='universal'" in s and "effects=4, placebo=2" in s


def test_summary_varying_base(mpdta: pd.DataFrame) -> None:
    res = didx.event_study(mpdta, **MPDTA, estimator=["callaway_santanna"] * 1 + ["twfe"],
                           options={"callaway_santanna": {"base_period": "varying"}})
    assert isinstance(res, EventStudyComparison)
    s = str(res.summary())
    assert PRE_PERIOD["callaway_santanna_varying"] in s and "short gaps" in s
    # varying base: -1 is estimated (a short gap), not a reference
    t = res.tidy()
    cs = t[t["estimator"] == "callaway_santanna"]
    assert not cs["reference"].any() and -1.0 in set(cs["event_time"])


def test_plot_overlays_every_estimator(compare_mpdta: EventStudyComparison) -> None:
    ax = compare_mpdta.plot()
    labels = [h.get_label() for h in ax.get_legend().legend_handles]
    assert labels == ["TWFE", "Sun-Abraham", "Callaway-Sant'Anna", "BJS imputation", "Gardner two-stage",
                      "de Chaisemartin-D'Haultfoeuille", "Stacked (WFH weights)", "Extended TWFE (Wooldridge)",
                      "Local-projections DiD"]
    points = [ln for ln in ax.get_lines() if ln.get_gid() == "estimates"]
    assert len(points) == len(ESTIMATORS)
    # dodged: the seven series sit at distinct offsets around event time 0
    x0 = sorted(float(np.asarray(ln.get_xdata())[np.argmin(np.abs(np.asarray(ln.get_xdata())))]) for ln in points)
    assert len(set(np.round(x0, 6))) == len(ESTIMATORS) and x0[0] < 0 < x0[-1]
    _fig, ax2 = plt.subplots()
    assert compare_mpdta.plot(ax=ax2) is ax2


# ------------------------------------------------------------------ single estimators and the default
def test_default_is_the_twfe_regression(mpdta: pd.DataFrame) -> None:
    a = didx.event_study(mpdta, **MPDTA)
    b = didx.event_study(mpdta, **MPDTA, estimator="twfe")
    assert type(a) is EventStudyRegressionResult and type(b) is EventStudyRegressionResult
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.vcov_matrix, b.vcov_matrix)


@pytest.mark.parametrize("name", [n for n in ESTIMATORS if n not in ("twfe", "stacked")])
def test_single_estimator_returns_its_event_study(name: str, mpdta: pd.DataFrame,
                                                  compare_mpdta: EventStudyComparison) -> None:
    res = didx.event_study(mpdta, **MPDTA, estimator=name, window=(-3, 3))
    assert isinstance(res, EventStudyResult) and not isinstance(res, EventStudyComparison)
    assert type(res) is type(compare_mpdta.results[name])
    np.testing.assert_array_equal(res.coef, compare_mpdta.results[name].coef)


def test_twfe_in_a_comparison_is_the_direct_call(mpdta: pd.DataFrame, compare_mpdta: EventStudyComparison) -> None:
    direct = didx.event_study(mpdta, **MPDTA, window=(-3, 3))
    np.testing.assert_array_equal(compare_mpdta["twfe"].coef, direct.coef)
    np.testing.assert_array_equal(compare_mpdta["twfe"].vcov_matrix, direct.vcov_matrix)


def test_stacked_single(mpdta: pd.DataFrame) -> None:
    res = didx.event_study(mpdta, **MPDTA, estimator="stacked", window=(-1, 1))
    direct = didx.stacked(mpdta, **MPDTA, window=(-1, 1))
    np.testing.assert_array_equal(res.coef, direct.coef)


# ------------------------------------------------------------------ identities
def _two_period_panel(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40
    unit = np.repeat(np.arange(n), 2)
    time = np.tile([1, 2], n)
    treated = np.repeat(np.arange(n) < 15, 2)
    y = rng.normal(size=2 * n) + np.repeat(rng.normal(size=n), 2) + 0.3 * time + 1.5 * (treated & (time == 2))
    return pd.DataFrame({"unit": unit, "time": time, "cohort": np.where(treated, 2, 0), "y": y,
                         "group": treated.astype(int), "post": (time == 2).astype(int)})


def test_all_estimators_equal_the_2x2_in_a_two_period_panel() -> None:
    df = _two_period_panel(3)
    two = didx.did2x2(df, y="y", treat="group", post="post", unit="unit")
    res = didx.event_study(df, **SIM, estimator="all", window=(-1, 0))
    assert isinstance(res, EventStudyComparison)
    t = res.tidy()
    at0 = t[t["event_time"] == 0].set_index("estimator")["estimate"]
    assert list(at0.index) == list(ESTIMATORS)
    for name, value in at0.items():
        assert value == pytest.approx(two.estimate, rel=TOL_IDENTITY, abs=TOL_IDENTITY), name
    # the regression estimators also share the 2x2's clustered SE (CR1 by unit, fixest conventions)
    for name in ("twfe", "sun_abraham"):
        se0 = t[(t["estimator"] == name) & (t["event_time"] == 0)]["std_error"].iloc[0]
        assert se0 == pytest.approx(two.std_error, rel=TOL_IDENTITY), name


@pytest.mark.parametrize("data", ["sim", "mpdta"])
def test_imputation_equals_did2s_by_horizon(data: str, request: pytest.FixtureRequest) -> None:
    df = request.getfixturevalue(data)
    cols = SIM if data == "sim" else MPDTA
    res = didx.event_study(df, **cols, estimator=["imputation", "did2s"])
    assert isinstance(res, EventStudyComparison)
    w = res.wide()
    post = w[w.index >= 0]
    assert post.notna().all().all() and len(post) >= 3
    np.testing.assert_allclose(post["imputation"], post["did2s"], rtol=TOL_IDENTITY, atol=TOL_IDENTITY)


@pytest.mark.parametrize("data", ["sim", "mpdta"])
def test_sun_abraham_equals_cs_universal_never(data: str, request: pytest.FixtureRequest) -> None:
    """Balanced panel with never-treated units: SA (ref -1) == CS (never, universal base, no covariates)
    aggregated by event time with cohort shares -- post and pre coefficients, and the window changes neither."""
    df = request.getfixturevalue(data)
    cols = SIM if data == "sim" else MPDTA
    for window in (None, (-2, 2)):
        res = didx.event_study(df, **cols, estimator=["sun_abraham", "callaway_santanna"], window=window)
        assert isinstance(res, EventStudyComparison)
        w = res.wide()
        assert w.notna().all().all()
        np.testing.assert_allclose(w["sun_abraham"], w["callaway_santanna"], rtol=TOL_IDENTITY, atol=TOL_IDENTITY)
        assert (w.index >= 0).sum() >= 3


def test_sun_abraham_equals_cs_with_ref_minus_two(sim: pd.DataFrame) -> None:
    """ref=-2 means the same for both: SA normalises k=-2, CS uses the universal base g-2 (anticipation 1)."""
    res = didx.event_study(sim, **SIM, estimator=["sun_abraham", "callaway_santanna", "twfe", "did2s"], ref=-2)
    assert isinstance(res, EventStudyComparison)
    for r in res.results.values():
        assert r.reference_periods == (-2.0,)
    w = res.wide()
    np.testing.assert_allclose(w["sun_abraham"], w["callaway_santanna"], rtol=TOL_IDENTITY, atol=TOL_IDENTITY)
    assert w.loc[-1.0, "sun_abraham"] != 0.0 and w.loc[-2.0, "twfe"] == 0.0


def test_window_semantics(sim: pd.DataFrame) -> None:
    res = didx.event_study(sim, **SIM, estimator="all", window=(-2, 1))
    assert isinstance(res, EventStudyComparison)
    t = res.tidy()
    for name, part in t.groupby("estimator"):
        assert set(part["event_time"]) == {-2.0, -1.0, 0.0, 1.0}, name
    # Sun-Abraham's window trims treated observations exactly as TWFE does
    k = sim["time"] - sim["cohort"]
    trimmed = sim[(sim["cohort"] == 0) | k.between(-2, 1)]
    direct = didx.sun_abraham(trimmed, **SIM)
    np.testing.assert_array_equal(res["sun_abraham"].coef, direct.coef)
    assert res["sun_abraham"].sample.dropped[-1].n_rows == len(sim) - len(trimmed)
    # dCDH: effects = hi + 1, placebos = -lo - 1
    assert [x for x in res["dcdh"].terms if x != "Av_tot_eff"] == ["Effect_1", "Effect_2", "Placebo_1"]


# ------------------------------------------------------------------ invariances
def test_row_order_and_never_treated_coding(sim: pd.DataFrame) -> None:
    base = didx.event_study(sim, **SIM, estimator="all", window=(-2, 2))
    shuffled = sim.sample(frac=1.0, random_state=5).reset_index(drop=True)
    shuffled["cohort"] = shuffled["cohort"].astype(float).replace(0.0, np.nan)
    other = didx.event_study(shuffled, **SIM, estimator="all", window=(-2, 2))
    assert isinstance(base, EventStudyComparison) and isinstance(other, EventStudyComparison)
    a, b = base.tidy(), other.tidy()
    assert list(a["term"]) == list(b["term"])
    for col in ("estimate", "std_error", "conf_low", "conf_high"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-12)


def test_polars_input(sim: pd.DataFrame) -> None:
    pl = pytest.importorskip("polars")
    a = didx.event_study(sim, **SIM, estimator=["sun_abraham", "dcdh"], window=(-2, 2))
    b = didx.event_study(pl.from_pandas(sim), **SIM, estimator=["sun_abraham", "dcdh"], window=(-2, 2))
    assert isinstance(a, EventStudyComparison) and isinstance(b, EventStudyComparison)
    np.testing.assert_allclose(a.tidy()["estimate"], b.tidy()["estimate"], rtol=TOL_IDENTITY)


# ------------------------------------------------------------------ errors
ERRORS: list[tuple[dict[str, Any], list[str]]] = [
    ({"estimator": "sunab"}, ["'estimator'", "'sunab'", "sun_abraham"]),
    ({"estimator": []}, ["empty list"]),
    ({"estimator": ["twfe", "twfe"]}, ["repeats"]),
    ({"estimator": "dcdh", "ref": -2}, ["'dcdh'", "ref=-2", "period before the switch", "Fix: use ref=-1"]),
    ({"estimator": "imputation", "ref": -2}, ["'imputation'", "ref=-2", "Fix"]),
    ({"estimator": "stacked"}, ["'stacked'", "window=", "Fix"]),
    ({"estimator": "stacked", "window": (-1, 1), "covariates": "x1"}, ["'stacked'", "covariates", "Fix"]),
    ({"estimator": "stacked", "window": (-1, 1), "weights": "x1"}, ["'stacked'", "weights='x1'", "Fix"]),
    ({"estimator": "callaway_santanna", "vcov": "hetero"}, ["'callaway_santanna'", "vcov='hetero'", "Fix"]),
    ({"estimator": "callaway_santanna", "ref": [-1, -3]},
     ["'callaway_santanna'", "ref=[-3, -1]", "anticipation", "Fix"]),
    ({"estimator": "imputation", "cluster": ["unit", "time"]}, ["'imputation'", "single cluster", "Fix"]),
    ({"estimator": ["twfe", "dcdh"], "bin_endpoints": True, "window": (-2, 2)}, ["bin_endpoints", "dcdh", "Fix"]),
    ({"estimator": "sun_abraham", "collapse": "group_period"}, ["collapse", "sun_abraham", "Fix"]),
    ({"estimator": ["twfe"], "options": {"dcdh": {"effects": 2}}}, ["options", "'dcdh'", "Fix"]),
    ({"estimator": "dcdh", "options": {"dcdh": 3}}, ["options['dcdh']", "dict"]),
    ({"estimator": "all", "window": (1, 3)}, ["window", "(1, 3)"]),
]


@pytest.mark.parametrize(("kwargs", "needles"), ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(kwargs: dict[str, Any], needles: list[str], sim: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError) as info:
        didx.event_study(sim, **SIM, **kwargs)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_dates_are_refused_with_a_fix(sim: pd.DataFrame) -> None:
    df = sim.assign(time=pd.to_datetime("2000-01-01") + pd.to_timedelta(sim["time"] * 366, unit="D"))
    with pytest.raises(didx.DataError, match=r"'time'.*numeric.*Fix"):
        didx.event_study(df, **SIM, estimator="dcdh")


def test_missing_column_is_named(sim: pd.DataFrame) -> None:
    with pytest.raises(didx.ColumnNotFoundError, match="'cohrt'"):
        didx.event_study(sim, **{**SIM, "cohort": "cohrt"}, estimator="all")


# ------------------------------------------------------------------ TWFE: closed-form demeaning on balanced panels
def _no_never(sim: pd.DataFrame) -> pd.DataFrame:
    return sim[sim["cohort"] > 0].reset_index(drop=True)


TWFE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {}),
    ("covariates", {"covariates": ["x2"]}),
    ("ref_list", {"ref": [-1, -4]}),
    ("binned", {"window": (-3, 2), "bin_endpoints": True}),
    ("hetero", {"vcov": "hetero"}),
    ("no_never_treated", {"ref": -1}),
]


@pytest.mark.parametrize(("case", "kwargs"), TWFE_CASES, ids=[c[0] for c in TWFE_CASES])
def test_twfe_balanced_closed_form_equals_the_solver(case: str, kwargs: dict[str, Any], sim: pd.DataFrame) -> None:
    """On a balanced panel the TWFE event study builds the demeaned indicators per cohort x period cell; unit
    weights send it through the dense indicators and the fixed-effect solver: same numbers, same dropped terms."""
    df = _no_never(sim) if case == "no_never_treated" else sim
    fast = didx.event_study(df, **SIM, **kwargs)
    dense = didx.event_study(df.assign(w=1.0), **SIM, **kwargs, weights="w")
    assert fast.terms == dense.terms
    np.testing.assert_allclose(fast.coef, dense.coef, rtol=TOL_IDENTITY, atol=TOL_IDENTITY)
    np.testing.assert_allclose(fast.vcov_matrix, dense.vcov_matrix, rtol=1e-9, atol=1e-14)
    if case == "no_never_treated":
        assert any("No never-treated units" in n for n in fast.notes)
        assert len(fast.terms) == len(set((df["time"] - df["cohort"]).unique())) - 2  # ref and one collinear


# ------------------------------------------------------------------ the mapping onto each estimator's signature
def _direct(name: str, df: pd.DataFrame, cov: list[str] | None, cluster: str | None) -> EventStudyResult:
    """Each estimator called by hand with what event_study(window=(-2, 2), ref=-1) should pass it."""
    if name == "twfe":
        return didx.event_study(df, **SIM, window=(-2, 2), covariates=cov, cluster=cluster)
    if name == "sun_abraham":
        k = df["time"] - df["cohort"]
        trimmed = df[(df["cohort"] == 0) | k.between(-2, 2)]
        return didx.sun_abraham(trimmed, **SIM, covariates=cov, cluster=cluster)
    if name == "callaway_santanna":
        cs = didx.att_gt(df, **SIM, base_period="universal", covariates=cov, cluster=cluster)
        out = cs.aggregate("dynamic", min_e=-2, max_e=2)
        assert isinstance(out, EventStudyResult)
        return out
    if name == "imputation":
        res = didx.imputation(df, **SIM, horizons=[0, 1, 2], pretrends=[-2, -1], covariates=cov, cluster=cluster)
        assert isinstance(res, EventStudyResult)
        return res
    if name == "did2s":
        res2 = didx.did2s(df, **SIM, second_stage="event_study", ref=-1, window=(-2, 2), covariates=cov,
                          cluster=cluster)
        assert isinstance(res2, EventStudyResult)
        return res2
    if name == "dcdh":
        d = df.assign(treat01=((df["cohort"] > 0) & (df["time"] >= df["cohort"])).astype(int))
        return didx.dcdh(d, y="y", unit="unit", time="time", treat="treat01", effects=3, placebo=1, covariates=cov,
                         cluster=cluster)
    if name == "etwfe":
        es = didx.etwfe(df, **SIM, control="never", covariates=cov, cluster=cluster).aggregate("event")
        assert isinstance(es, EventStudyResult)
        return es
    if name == "lpdid":
        return didx.lpdid(df, **SIM, pre_window=2, post_window=2, covariates=cov, cluster=cluster)
    return didx.stacked(df, **SIM, window=(-2, 2), cluster=cluster)


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("with_options", [False, True], ids=["plain", "covariates_cluster"])
def test_mapping_matches_direct_calls(name: str, with_options: bool, sim: pd.DataFrame) -> None:
    df = sim.assign(state=sim["unit"] // 4)
    cov = ["x2"] if with_options and name != "stacked" else None
    cluster = "state" if with_options else None
    res = didx.event_study(df, **SIM, estimator=name, window=(-2, 2), covariates=cov, cluster=cluster)
    direct = _direct(name, df, cov, cluster)
    et = res.event_times
    direct_et = direct.event_times
    inside = np.isfinite(direct_et) & (direct_et >= -2) & (direct_et <= 2)
    want = {e: (b, s) for e, b, s in zip(direct_et[inside], direct.coef[inside], direct.std_errors[inside],
                                         strict=True)}
    got = {e: (b, s) for e, b, s in zip(et[np.isfinite(et)], res.coef[np.isfinite(et)],
                                        res.std_errors[np.isfinite(et)], strict=True)}
    assert set(got) == set(want)
    for e, (b, s) in want.items():
        assert got[e][0] == pytest.approx(b, rel=TOL_IDENTITY, abs=TOL_IDENTITY), (name, e)
        assert got[e][1] == pytest.approx(s, rel=TOL_IDENTITY), (name, e)
    if with_options:
        assert res.inference.cluster_names == ("state",) and res.inference.n_clusters == (15,), res.inference


def test_options_reach_the_estimator(sim: pd.DataFrame) -> None:
    res = didx.event_study(sim, **SIM, estimator="callaway_santanna",
                           options={"callaway_santanna": {"control_group": "not_yet"}})
    cs = didx.att_gt(sim, **SIM, control_group="not_yet", base_period="universal").aggregate("dynamic")
    np.testing.assert_allclose(res.coef, cs.coef, rtol=TOL_IDENTITY)
    never = didx.event_study(sim, **SIM, estimator="callaway_santanna")
    assert not np.allclose(res.coef, never.coef)


def test_dcdh_placebos_capped_with_a_note(sim: pd.DataFrame) -> None:
    res = didx.event_study(sim, **SIM, estimator=["dcdh", "imputation"], window=(-5, 1))
    assert isinstance(res, EventStudyComparison)
    assert [t for t in res["dcdh"].terms if t.startswith("Placebo")] == ["Placebo_1", "Placebo_2"]
    assert any("placebos capped" in n for n in res.notes["dcdh"])
    assert "placebos capped at the number of effects (2" in str(res.summary())
    # without a window: every effect the data allow, and BJS leaves out the earliest lead (noted)
    full = didx.event_study(sim, **SIM, estimator=["dcdh", "imputation"])
    assert isinstance(full, EventStudyComparison)
    assert any("earliest lead" in n for n in full.notes["imputation"])
    k = sim.loc[sim["cohort"] > 0, "time"] - sim.loc[sim["cohort"] > 0, "cohort"]
    assert sum(t.startswith("Effect") for t in full["dcdh"].terms) == int(k.max()) + 1


def test_sun_abraham_window_counts_trimmed_rows_as_input(mpdta: pd.DataFrame) -> None:
    # the trimmed rows are reported as dropped, so they are input rows: same report as TWFE's trimmed event study
    sa = didx.event_study(mpdta, **MPDTA, estimator="sun_abraham", window=(-2, 2))
    tw = didx.event_study(mpdta, **MPDTA, estimator="twfe", window=(-2, 2))
    assert sa.sample.n_input_rows == len(mpdta) == tw.sample.n_input_rows
    assert sa.sample.n_obs + sa.sample.n_dropped_rows == len(mpdta)
    assert sa.sample.n_obs == tw.sample.n_obs


def test_imputation_restricted_to_the_window_keeps_with_vcov(mpdta: pd.DataFrame) -> None:
    res = didx.event_study(mpdta, **MPDTA, estimator="imputation", window=(-2, 2))
    full = didx.imputation(mpdta, **MPDTA, horizons=True, pretrends=[-2, -1])
    keep = [full.terms.index(t) for t in res.terms]
    assert len(keep) < len(full.terms)  # the window removed horizons 3
    re = res.with_vcov(cluster="countyreal")
    np.testing.assert_allclose(re.vcov_matrix, full.vcov_matrix[np.ix_(keep, keep)], rtol=TOL_IDENTITY)
    np.testing.assert_allclose(re.vcov_matrix, res.vcov_matrix, rtol=TOL_IDENTITY)
    assert re.terms == res.terms


def test_sun_abraham_window_result_can_recluster_by_any_data_column(mpdta: pd.DataFrame) -> None:
    # the window's trimmed fit keeps cluster codes that map to the rows of the user's frame
    kw: dict[str, Any] = dict(**MPDTA, estimator="sun_abraham", window=(-2, 2))
    direct = didx.event_study(mpdta, cluster="lpop", **kw)
    res = didx.event_study(mpdta, **kw)
    for re in (res.with_vcov(cluster=mpdta["lpop"]), res.with_vcov(cluster="lpop", data=mpdta)):
        np.testing.assert_allclose(re.vcov_matrix, direct.vcov_matrix, rtol=TOL_IDENTITY)
        assert re.inference.cluster_names == ("lpop",)
    two_way = didx.event_study(mpdta, cluster=["countyreal", "lpop"], **kw)
    np.testing.assert_allclose(res.with_vcov(cluster=["countyreal", "lpop"], data=mpdta).vcov_matrix,
                               two_way.vcov_matrix, rtol=TOL_IDENTITY)
    np.testing.assert_allclose(res.att.with_vcov(cluster=mpdta["lpop"]).vcov_matrix, direct.att.vcov_matrix,
                               rtol=TOL_IDENTITY)
    # the frame is checked: the trimmed frame, or the user's frame reordered, is not the one fitted
    trimmed = mpdta[(mpdta["first.treat"] == 0) | (mpdta["year"] - mpdta["first.treat"]).between(-2, 2)]
    with pytest.raises(didx.DataError, match="rows"):
        res.with_vcov(cluster="lpop", data=trimmed)
    with pytest.raises(didx.DataError, match="not the frame that was fitted"):
        res.with_vcov(cluster="lpop", data=mpdta.sample(frac=1.0, random_state=1))


def test_dcdh_in_a_comparison_can_recluster_by_any_data_column(mpdta: pd.DataFrame) -> None:
    kw: dict[str, Any] = dict(**MPDTA, estimator="dcdh", window=(-2, 2))
    direct = didx.event_study(mpdta, cluster="lpop", **kw)
    re = didx.event_study(mpdta, **kw).with_vcov(cluster=mpdta["lpop"])
    np.testing.assert_allclose(re.vcov_matrix, direct.vcov_matrix, rtol=TOL_IDENTITY)


# ------------------------------------------------------------------ the contract of the comparison's results
def test_every_result_carries_its_pre_period_meaning(compare_mpdta: EventStudyComparison) -> None:
    keys = {"twfe": "twfe", "sun_abraham": "sun_abraham", "callaway_santanna": "callaway_santanna_universal",
            "imputation": "imputation", "did2s": "did2s", "dcdh": "dcdh", "stacked": "stacked",
            "etwfe": "etwfe_never", "lpdid": "lpdid"}
    for name, res in compare_mpdta.results.items():
        assert res.pre_period_meaning == PRE_PERIOD[keys[name]], name
        assert f"pre-period coefficients: {res.pre_period_meaning}" in str(compare_mpdta.summary())
    direct = didx.event_study(didx.datasets.load("mpdta"), **MPDTA)
    assert direct.pre_period_meaning == PRE_PERIOD["twfe"] and direct.cross_covariance


PANEL_LEVEL = ["twfe", "sun_abraham", "imputation", "did2s", "stacked", "etwfe", "lpdid"]


def test_panel_level_entries_run_on_the_panel_built_once(mpdta: pd.DataFrame,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison reads the data once, builds one panel and gives it to every estimator with a panel-level
    entry (from the registry): with their data-level functions made unimportable they still run, one panel is built,
    and the results are those of the direct calls."""
    import dataclasses

    import didx.comparison as comparison
    import didx.comparison_runners as comparison_runners

    assert [n for n, s in comparison.SPECS.items() if s.from_panel is not None] == PANEL_LEVEL
    direct = {name: didx.event_study(mpdta, **MPDTA, estimator=name, window=(-2, 2), options=_stacked(name))
              for name in PANEL_LEVEL}
    built: list[int] = []
    real_build = comparison_runners.build_panel  # the runners build the comparison's panels

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(comparison_runners, "build_panel", counting_build)
    for name in PANEL_LEVEL:
        monkeypatch.setitem(comparison.SPECS, name, dataclasses.replace(comparison.SPECS[name],
                                                                        function="didx.no_such_module:f"))
    res = didx.event_study(mpdta, **MPDTA, estimator=PANEL_LEVEL, window=(-2, 2), options=STACKED_MPDTA)
    assert isinstance(res, EventStudyComparison) and built == [1]
    for name in PANEL_LEVEL:
        np.testing.assert_array_equal(res[name].coef, direct[name].coef)
        np.testing.assert_array_equal(res[name].vcov_matrix, direct[name].vcov_matrix)
    twfe = didx.estimators.regression.event_study.event_study(mpdta, **MPDTA, window=(-2, 2))
    np.testing.assert_array_equal(res["twfe"].vcov_matrix, twfe.vcov_matrix)
    assert res["twfe"].sample == twfe.sample
    # options naming another cluster or fixed-effect column: its codes come from the columns read, same panel
    built.clear()
    opts = {"twfe": {"cluster": "lpop"}, "imputation": {"cluster": "lpop"}, "did2s": {"fe": ["countyreal", "year"]},
            "sun_abraham": {"cluster": ["countyreal", "lpop"]}, "stacked": {"window": (-1, 1), "cluster": "lpop"},
            "etwfe": {"cluster": "lpop"}, "lpdid": {"cluster": "lpop"}}
    other = didx.event_study(mpdta, **MPDTA, estimator=PANEL_LEVEL, window=(-2, 2), options=opts)
    assert isinstance(other, EventStudyComparison) and built == [1]
    for name in PANEL_LEVEL:
        clusters = other[name].inference.cluster_names
        assert clusters == (("countyreal",) if name == "did2s" else tuple(as_list(opts[name]["cluster"]))), name
    # an option that changes a column role (covariates) builds that estimator's panel, from the columns read
    built.clear()
    z = mpdta.assign(z=np.random.default_rng(0).normal(size=len(mpdta)))
    cov = didx.event_study(z, **MPDTA, estimator=["twfe", "sun_abraham"], window=(-2, 2),
                           options={"sun_abraham": {"covariates": "z"}})
    assert isinstance(cov, EventStudyComparison) and built == [1, 1]
    assert "z" in cov["sun_abraham"].terms and "z" not in cov["twfe"].terms


def _stacked(name: str) -> dict[str, Any] | None:
    return STACKED_MPDTA if name == "stacked" else None


def _count_reads(monkeypatch: pytest.MonkeyPatch, df: Any) -> list[str]:
    """Record every read of ``df``: each call of ``read_columns`` on it (in every didx module that imported it)
    and each narwhals conversion of it. Every estimator module is imported first."""
    import sys

    import narwhals

    import didx._frame
    from didx.comparison import SPECS

    for spec in SPECS.values():
        spec.load()
        spec.load_from_panel()
    reads: list[str] = []
    real_read, real_native = didx._frame.read_columns, narwhals.from_native

    def read_columns(data: Any, *args: Any, **kwargs: Any) -> Any:
        if data is df:
            reads.append("read_columns")
        return real_read(data, *args, **kwargs)

    def from_native(data: Any, *args: Any, **kwargs: Any) -> Any:
        if data is df:
            reads.append("narwhals")
        return real_native(data, *args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("didx") and getattr(module, "read_columns", None) is real_read:
            monkeypatch.setattr(module, "read_columns", read_columns)
    monkeypatch.setattr(narwhals, "from_native", from_native)
    return reads


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_the_users_frame_is_read_once(backend: str, sim: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """estimator="all": the user's frame is read once (one read_columns, one narwhals conversion), whatever the
    estimator: the panel-level entries get the panel built from the columns read, dCDH and Callaway-Sant'Anna a
    pandas view of those columns. Each result equals the estimator run alone."""
    df: Any = sim.assign(state=sim["unit"] // 4)
    if backend == "polars":
        pl = pytest.importorskip("polars")
        df = pl.from_pandas(df)
    alone = {name: didx.event_study(df, **SIM, estimator=name, window=(-2, 2), cluster="state")
             for name in ESTIMATORS}
    reads = _count_reads(monkeypatch, df)
    res = didx.event_study(df, **SIM, estimator="all", window=(-2, 2), cluster="state",
                           options={"dcdh": {"covariates": "x1"}, "imputation": {"fe": ["unit", "time", "state"]}})
    # pandas columns are read without a narwhals conversion (at most one); polars: the column names are looked up
    # first (the schema, to know which option strings are columns)
    assert reads.count("read_columns") == 1
    assert reads.count("narwhals") <= (1 if backend == "pandas" else 2)
    assert isinstance(res, EventStudyComparison) and list(res.results) == list(ESTIMATORS)
    for name in ESTIMATORS:
        if name in ("dcdh", "imputation"):  # their options differ from the single runs
            continue
        np.testing.assert_array_equal(res[name].coef, alone[name].coef)
        np.testing.assert_array_equal(res[name].vcov_matrix, alone[name].vcov_matrix)
    # one read per call also when a single estimator is run
    reads.clear()
    for name in ESTIMATORS:
        didx.event_study(df, **SIM, estimator=name, window=(-2, 2))
    assert reads.count("read_columns") == len(ESTIMATORS)
    assert reads.count("narwhals") <= len(ESTIMATORS) * (1 if backend == "pandas" else 2)


def _messy(sim: pd.DataFrame) -> pd.DataFrame:
    """Missing outcomes, covariates and clusters, and two units of weight 0 (constant within unit, for CS)."""
    rng = np.random.default_rng(1)
    df = sim.assign(state=(sim["unit"] // 4).astype(float))
    df.loc[rng.random(len(df)) < 0.03, "y"] = np.nan
    df.loc[rng.random(len(df)) < 0.03, "x2"] = np.nan
    df.loc[df["unit"] == 9, "state"] = np.nan
    wu = rng.uniform(0.5, 2.0, sim["unit"].nunique())
    wu[[5, 17]] = 0.0
    return df.assign(w=wu[df["unit"].to_numpy()], state2=df["unit"] // 6)


CONTRACT = list(ESTIMATORS)  # every estimator of the comparison is on the covariance contract




@pytest.mark.parametrize("name", CONTRACT)
def test_every_result_accounts_for_the_input_rows_and_reclusters_by_a_data_column(name: str,
                                                                                  sim: pd.DataFrame) -> None:
    """In a comparison ("all"; stacked without covariates and weights, which it refuses) every result's sample
    report accounts for every input row (n_obs + dropped == input rows, as the direct call), and its cluster codes
    map to the user's rows: with_vcov(cluster=df[col]) and with_vcov(cluster=col, data=df) equal the comparison
    run with cluster=col."""
    df = _messy(sim)
    extra: dict[str, Any] = ({} if name == "stacked" else {"covariates": "x2"} if name == "lpdid"
                             else {"covariates": "x2", "weights": "w"})
    kw: dict[str, Any] = dict(**SIM, window=(-2, 2), cluster="state", **extra)
    refuses = {"stacked": ("covariates", "weights"), "lpdid": ("weights",)}  # options they cannot honour
    runs = [n for n in ESTIMATORS if not set(refuses.get(n, ())) & set(extra)]
    res = didx.event_study(df, **kw, estimator=runs)[name]
    single = didx.event_study(df, **kw, estimator=name)
    np.testing.assert_array_equal(res.coef, single.coef)
    assert res.sample.n_input_rows == len(df) == res.sample.n_obs + res.sample.n_dropped_rows
    assert res.sample.n_obs == single.sample.n_obs
    assert any(d.reason == "missing cluster (state)" for d in res.sample.dropped)
    # the fit's sample has no row with a missing state: so has the refit with cluster="state2"
    want = didx.event_study(df[df["state"].notna()], **{**kw, "cluster": "state2"}, estimator=name)
    for again in (res.with_vcov(cluster=df["state2"]), res.with_vcov(cluster="state2", data=df)):
        np.testing.assert_allclose(again.vcov_matrix, want.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-15)
        assert again.inference.cluster_names == ("state2",)


def test_options_naming_columns_match_direct_calls(sim: pd.DataFrame) -> None:
    """A cluster or fixed-effect column named only in options gets its codes from the columns read; rows where it
    is missing are dropped and reported as the direct call reports them."""
    df = _messy(sim).drop(columns="w")
    df.loc[df["unit"] == 11, "state2"] = np.nan
    res = didx.event_study(df, **SIM, estimator=["twfe", "imputation", "did2s"], window=(-2, 2),
                           options={"twfe": {"cluster": "state2"}, "imputation": {"fe": ["unit", "time", "state2"]},
                                    "did2s": {"cluster": "state2"}})
    assert isinstance(res, EventStudyComparison)
    direct = {
        "twfe": didx.event_study(df, **SIM, window=(-2, 2), cluster="state2"),
        "imputation": didx.imputation(df, **SIM, horizons=[0, 1, 2], pretrends=[-2, -1],
                                      fe=["unit", "time", "state2"]),
        "did2s": didx.did2s(df, **SIM, second_stage="event_study", ref=-1, window=(-2, 2), cluster="state2"),
    }
    for name, want in direct.items():
        got = res[name]
        keep = [want.terms.index(t) for t in got.terms]
        np.testing.assert_allclose(got.coef, want.coef[keep], rtol=TOL_IDENTITY, atol=TOL_IDENTITY)
        np.testing.assert_allclose(got.vcov_matrix, want.vcov_matrix[np.ix_(keep, keep)], rtol=TOL_IDENTITY)
        if name != "twfe":  # TWFE's report also has the window's trimmed rows
            assert got.sample == want.sample, name
        assert any(d.reason.startswith("missing") and "(state2)" in d.reason for d in got.sample.dropped), name


def test_dcdh_takes_the_covariates(sim: pd.DataFrame) -> None:
    """dCDH's covariates (the package's controls: first differences, coefficients from not-yet-switched cells,
    a linear time-varying adjustment as TWFE's and the imputation estimators') are passed on."""
    res = didx.event_study(sim, **SIM, estimator="dcdh", window=(-2, 2), covariates="x2")
    d = sim.assign(treat01=((sim["cohort"] > 0) & (sim["time"] >= sim["cohort"])).astype(int))
    direct = didx.dcdh(d, y="y", unit="unit", time="time", treat="treat01", effects=3, placebo=1, covariates="x2")
    np.testing.assert_array_equal(res.coef, direct.coef)
    plain = didx.event_study(sim, **SIM, estimator="dcdh", window=(-2, 2))
    assert not np.allclose(res.coef, plain.coef)


# ------------------------------------------------------------------ issue 10
def test_all_with_unit_ids_of_mixed_types(sim: pd.DataFrame) -> None:
    """Unit ids mixing None, int and str: rows without a unit are dropped by every estimator, and the numbers
    are those of the same data with integer ids (the Sun-Abraham window used to sort the mixed labels)."""
    labels = np.array([f"u{u}" if u % 3 == 0 else (int(u) if u % 3 == 1 else float(u) + 0.5)
                       for u in sim["unit"]], dtype=object)
    labels[sim["unit"].to_numpy() == 7] = None
    mixed = sim.assign(unit=labels)
    res = didx.event_study(mixed, **SIM, estimator="all", window=(-2, 2))
    ref = didx.event_study(sim[sim["unit"] != 7].reset_index(drop=True), **SIM, estimator="all", window=(-2, 2))
    assert isinstance(res, EventStudyComparison) and isinstance(ref, EventStudyComparison)
    a, b = res.tidy(), ref.tidy()
    assert list(a["term"]) == list(b["term"])
    for col in ("estimate", "std_error"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-12)
    assert any(d.reason.startswith("missing unit") for d in res["twfe"].sample.dropped)


def test_all_with_a_duplicated_unused_column(sim: pd.DataFrame) -> None:
    """A pandas frame with two columns of one name that no estimator uses (dcdh and the Sun-Abraham window used
    to read every column)."""
    dup = pd.concat([sim, sim[["x1"]].rename(columns={"x1": "z"}), sim[["x2"]].rename(columns={"x2": "z"})],
                    axis=1)
    assert dup.columns.duplicated().any()
    res = didx.event_study(dup, **SIM, estimator="all", window=(-2, 2))
    ref = didx.event_study(sim, **SIM, estimator="all", window=(-2, 2))
    assert isinstance(res, EventStudyComparison) and isinstance(ref, EventStudyComparison)
    pd.testing.assert_frame_equal(res.tidy(), ref.tidy())


def test_plot_with_an_ax_that_is_not_an_axes_is_an_error(compare_mpdta: EventStudyComparison) -> None:
    for plot in (compare_mpdta.plot, compare_mpdta["twfe"].plot):
        with pytest.raises(didx.InvalidOptionError, match="ax"):
            plot(ax="x")


# ------------------------------------------------------------------ the TWFE event study: zero weights (issue 10)
def test_twfe_event_study_drops_and_counts_zero_weight_rows(sim: pd.DataFrame) -> None:
    """Rows with weight 0 are dropped and reported (fixest drops them): the fit equals the fit without those rows,
    the small-sample factor and the cluster count included, and every input row is accounted for."""
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 2.0, len(sim))
    w[rng.random(len(sim)) < 0.1] = 0.0
    w[sim["unit"].to_numpy() == 3] = 0.0  # a unit with no weight at all: not a cluster
    df = sim.assign(w=w)
    res = didx.event_study(df, **SIM, weights="w", window=(-3, 3))
    kept = didx.event_study(df[df["w"] > 0].reset_index(drop=True), **SIM, weights="w", window=(-3, 3))
    assert res.terms == kept.terms
    np.testing.assert_allclose(res.coef, kept.coef, rtol=TOL_IDENTITY, atol=TOL_IDENTITY)
    np.testing.assert_allclose(res.vcov_matrix, kept.vcov_matrix, rtol=TOL_IDENTITY, atol=1e-15)
    assert res.inference.n_clusters == kept.inference.n_clusters == (sim["unit"].nunique() - 1,)
    n_zero = int((w == 0).sum())
    zero = [d for d in res.sample.dropped if d.reason == "zero weight (w)"]
    assert len(zero) == 1 and zero[0].n_rows == n_zero and zero[0].n_units == 1
    assert res.sample.n_obs == kept.sample.n_obs <= len(df) - n_zero
    assert res.sample.n_obs + res.sample.n_dropped_rows == res.sample.n_input_rows == len(df)
    # re-clustering by a column of the user's frame maps the kept rows to it
    by_state = res.with_vcov(cluster=df["unit"] // 4)
    direct = didx.event_study(df.assign(state=df["unit"] // 4), **SIM, weights="w", window=(-3, 3), cluster="state")
    np.testing.assert_allclose(by_state.vcov_matrix, direct.vcov_matrix, rtol=TOL_IDENTITY)
    # a panel built keeping the zero-weight rows: from_panel drops and counts them the same way
    from didx._panel import build_panel
    from didx.estimators.regression import event_study as es_module

    panel = build_panel(df, func="event_study", y="y", unit="unit", time="time", cohort="cohort", weights="w")
    again = es_module.from_panel(panel, window=(-3, 3))
    np.testing.assert_array_equal(again.coef, res.coef)
    np.testing.assert_array_equal(again.vcov_matrix, res.vcov_matrix)
    assert again.sample.n_obs == res.sample.n_obs and again.sample.n_dropped_rows == res.sample.n_dropped_rows


def test_twfe_event_study_stores_no_row_index_when_every_row_is_used(sim: pd.DataFrame) -> None:
    full = didx.event_study(sim, **SIM)
    assert full.sample.n_obs == len(sim) and full._source.clusters.row_index is None
    trimmed = didx.event_study(sim, **SIM, window=(-2, 2))
    assert trimmed._source.clusters.row_index is not None  # rows dropped: the kept rows' positions
    assert trimmed.with_vcov(cluster=sim["unit"] // 4).inference.n_clusters == (15,)


def test_design_checks_of_the_shared_panel_are_each_estimators(sim: pd.DataFrame) -> None:
    """The shared panel is built without a control requirement and checked for each estimator as its own
    build_panel would: every row treated is the direct call's error; an unknown column in options is named."""
    df = sim.assign(cohort=1)
    direct = {"twfe": lambda: didx.event_study(df, **SIM),
              "imputation": lambda: didx.imputation(df, **SIM, horizons=True),
              "did2s": lambda: didx.did2s(df, **SIM, second_stage="event_study")}
    for name, call in direct.items():
        with pytest.raises(didx.DesignError) as want:
            call()
        with pytest.raises(didx.DesignError) as got:
            didx.event_study(df, **SIM, estimator=[name, "stacked"], window=(-1, 1))
        assert str(got.value) == str(want.value) and "no control observations" in str(got.value), name
    with pytest.raises(didx.ColumnNotFoundError, match=r"'stat' given as fe=.*Did you mean 'state'"):
        didx.event_study(sim.assign(state=sim["unit"] // 4), **SIM, estimator=["twfe", "imputation"],
                         options={"imputation": {"fe": ["unit", "time", "stat"]}})
