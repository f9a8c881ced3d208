"""honest_did options beyond the defaults: ci= (FLCI, C-LF, ARP "Conditional", C-F hybrid), sign and shape
restrictions, Delta^SDRM (restriction="combined" / bound="deviation_from_linear"), a single post period, any
reference period (HonestDiD's two paper examples), the comparability warning, bad input.

No R run of these variants is available here: the Conditional intervals are checked against moderndid 0.2.0
(a Python port of HonestDiD, run on the same inputs; see tests/reference/honestdid_moderndid_crosscheck.json),
the rest by identities (exactness of the shortcuts against testing every grid point is in test_honest_did.py).
"""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import didx
from didx._errors import DesignError, InvalidOptionError

REFDIR = Path(__file__).parent / "reference"
BC = json.loads((REFDIR / "honestdid_BCdata_EventStudy.json").read_text())
LW = json.loads((REFDIR / "honestdid_LWdata_EventStudy.json").read_text())
XCHECK = json.loads((REFDIR / "honestdid_moderndid_crosscheck.json").read_text())


@pytest.fixture(scope="module")
def ehec():
    df = didx.datasets.load("ehec")
    df = df[(df.year < 2016) & (df.yexp2.isna() | (df.yexp2 != 2015))].copy()
    df["cohort"] = np.where(df.yexp2 == 2014, 2014.0, np.nan)
    es = didx.event_study(df, y="dins", unit="stfips", time="year", cohort="cohort", cluster="stfips")
    keep = ~np.isin(es.event_times, es.reference_periods)
    idx = np.flatnonzero(keep)
    return es, es.coef[idx], es.vcov_matrix[np.ix_(idx, idx)], es.event_times[idx]


def _raw(ehec, **kw):
    _, b, S, t = ehec
    return didx.honest_did(beta=b, sigma=S, event_time=t, reference=-1, **kw)


# ---- method resolution: HonestDiD's defaults and refusals ---------------------------------------------------


@pytest.mark.parametrize(("kw", "method", "delta"), [
    (dict(restriction="smoothness"), "FLCI", "DeltaSD"),
    (dict(restriction="smoothness", bias_sign="positive"), "C-F", "DeltaSDPB"),
    (dict(restriction="smoothness", monotonicity="decreasing", ci="arp"), "Conditional", "DeltaSDD"),
    (dict(restriction="smoothness", ci="c-lf"), "C-LF", "DeltaSD"),
    (dict(restriction="relative_magnitude"), "C-LF", "DeltaRM"),
    (dict(restriction="relative_magnitude", ci="hybrid", bias_sign="negative"), "C-LF", "DeltaRMNB"),
    (dict(restriction="relative_magnitude", ci="arp", monotonicity="increasing"), "Conditional", "DeltaRMI"),
    (dict(restriction="combined"), "C-LF", "DeltaSDRM"),
])
def test_defaults_and_names(ehec, kw, method, delta):
    res = _raw(ehec, M=0.01 if kw["restriction"] == "smoothness" else 1.0, grid_points=100, **kw)
    assert (res.method, res.delta) == (method, delta)
    assert set(res.tidy().delta) == {delta}
    s = res.summary()
    assert delta in s and method in s and "grid_points=100" in s


def test_refusals(ehec):
    es = ehec[0]
    with pytest.raises(InvalidOptionError, match="not available for relative magnitudes"):
        didx.honest_did(es, restriction="relative_magnitude", M=1.0, ci="flci")
    with pytest.raises(InvalidOptionError, match="not both"):
        didx.honest_did(es, M=0.01, bias_sign="positive", monotonicity="increasing")
    with pytest.raises(InvalidOptionError, match="relative magnitudes only"):
        didx.honest_did(es, M=0.01, bound="deviation_from_linear")
    with pytest.raises(InvalidOptionError, match="contradicts"):
        didx.honest_did(es, M=1.0, restriction="combined", bound="deviation")
    for bad in (dict(ci="ARP"), dict(bias_sign="up"), dict(monotonicity="flat"), dict(bound="linear"),
                dict(grid_points=1), dict(grid_points=10.5), dict(grid_bounds=(1.0, 0.0)),
                dict(restriction="convex")):
        with pytest.raises(InvalidOptionError):
            didx.honest_did(es, M=0.01, **bad)
    _, b, S, t = ehec
    two = t >= -2  # one pre-period besides the reference: no pre-period second difference
    with pytest.raises(DesignError, match="at least 2 pre-periods"):
        didx.honest_did(beta=b[two], sigma=S[np.ix_(two, two)], event_time=t[two], reference=-1, M=1.0,
                        restriction="combined")


def test_flci_with_sign_restriction_warns_and_ignores_it(ehec):
    with pytest.warns(UserWarning, match="ignores the sign restriction"):
        res = _raw(ehec, M=0.02, bias_sign="positive", ci="flci")
    plain = _raw(ehec, M=0.02)
    assert (res.conf_low, res.conf_high) == (plain.conf_low, plain.conf_high)
    assert res.delta == "DeltaSDPB" and "ignores the sign restriction" in res.summary()


def test_combined_is_relative_magnitude_from_linear(ehec):
    a = _raw(ehec, restriction="combined", M=[0.5, 1.0], grid_points=200)
    b = _raw(ehec, restriction="relative_magnitude", bound="deviation_from_linear", M=[0.5, 1.0], grid_points=200)
    assert (a.conf_low, a.conf_high, a.delta) == (b.conf_low, b.conf_high, b.delta)


# ---- cross-check against moderndid's port of HonestDiD (deterministic methods) ------------------------------


@pytest.mark.parametrize("case", XCHECK["cases"], ids=lambda c: c["id"])
def test_conditional_matches_moderndid(case):
    res = didx.honest_did(beta=XCHECK["betahat"], sigma=XCHECK["sigma"], event_time=XCHECK["event_time"],
                          reference=XCHECK["reference"], **case["didx"])
    np.testing.assert_allclose(res.conf_low, case["moderndid"]["lb"], rtol=1e-9)
    np.testing.assert_allclose(res.conf_high, case["moderndid"]["ub"], rtol=1e-9)


# ---- identities ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(ci="arp"), dict(ci="hybrid"), dict(ci="c-lf", target="average")])
def test_smoothness_methods_absorb_linear_trends(ehec, kw):
    # Delta^SD restricts second differences: a linear trend through the reference is unrestricted, the moments
    # A beta, the FLCI weights and the default grids do not change, so neither does the interval
    _, b, S, t = ehec
    base = didx.honest_did(beta=b, sigma=S, event_time=t, reference=-1, M=0.01, grid_points=200, **kw)
    moved = didx.honest_did(beta=b + 0.02 * (t + 1), sigma=S, event_time=t, reference=-1, M=0.01,
                            grid_points=200, **kw)
    np.testing.assert_allclose([moved.conf_low[0], moved.conf_high[0]], [base.conf_low[0], base.conf_high[0]],
                               atol=1e-12)


def test_single_post_period_relative_magnitudes(ehec):
    # HonestDiD's no-nuisance ARP test (numPostPeriods = 1): C-LF by default, Conditional with ci="arp"
    _, b, S, t = ehec
    one = t <= 0
    kw = dict(beta=b[one], sigma=S[np.ix_(one, one)], event_time=t[one], reference=-1)
    res = didx.honest_did(**kw, restriction="relative_magnitude", M=[0.0, 0.5, 1.0, 2.0])
    assert res.method == "C-LF" and res.post_event_times == (0.0,)
    lo, hi = np.asarray(res.conf_low), np.asarray(res.conf_high)
    assert np.all(np.isfinite(lo)) and np.all(np.diff(hi - lo) >= 0)
    assert lo[0] < res.original.estimate < hi[0]
    arp = didx.honest_did(**kw, restriction="relative_magnitude", M=1.0, ci="arp")
    assert arp.method == "Conditional" and arp.conf_low[0] < res.original.estimate < arp.conf_high[0]
    # the target's weight scales theta: weights [2] give twice the interval (the grid scales with it)
    double = didx.honest_did(**kw, restriction="relative_magnitude", M=[0.5, 1.0], target=[2.0])
    np.testing.assert_allclose(double.conf_low, 2 * lo[1:3], rtol=1e-12)
    np.testing.assert_allclose(double.conf_high, 2 * hi[1:3], rtol=1e-12)
    sm = didx.honest_did(**kw, M=0.01, bias_sign="positive")  # C-F, no-nuisance FLCI hybrid
    assert sm.method == "C-F" and sm.conf_low[0] < sm.conf_high[0]


# ---- any reference period: HonestDiD's paper examples --------------------------------------------------------


def _bc(shift: float, **kw):
    t = np.asarray(BC["timeVec"], float) - shift
    return didx.honest_did(beta=BC["betahat"], sigma=BC["sigma"], event_time=t, reference=BC["referencePeriod"] - shift,
                           **kw)


@pytest.mark.parametrize("kw", [dict(M=[0.0, 0.01, 0.03]), dict(M=[0.5, 1.0], restriction="relative_magnitude"),
                                dict(M=[0.01], bias_sign="negative", grid_points=200)])
def test_bc_reference_expressed_any_way(kw):
    years = _bc(0.0, **kw)  # event time in calendar years, reference 2008
    for shift in (2008.0, 2009.0, 2000.5):  # reference 0, -1, 7.5
        other = _bc(shift, **kw)
        np.testing.assert_allclose(other.conf_low, years.conf_low, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(other.conf_high, years.conf_high, rtol=1e-12, atol=1e-15)
    assert years.pre_event_times == (2004.0, 2005.0, 2006.0, 2007.0)
    assert years.post_event_times == (2009.0, 2010.0, 2011.0, 2012.0)


def test_bc_flci_length_and_average():
    res = _bc(0.0, M=np.linspace(0, 0.1, 6), target="average")
    length = np.asarray(res.conf_high) - np.asarray(res.conf_low)
    assert np.all(np.diff(length) >= -1e-12)
    w = _bc(0.0, M=np.linspace(0, 0.1, 6), target=[0.25] * 4)
    assert (w.conf_low, w.conf_high) == (res.conf_low, res.conf_high)


def test_lw_reference_minus_two():
    # HonestDiD's Lovenheim-Willen example: reference -2, so event time -1 is the first of 23 post periods
    t = np.asarray(LW["timeVec"], float)
    kw = dict(beta=LW["betahat"], sigma=LW["sigma"], event_time=t, reference=LW["referencePeriod"])
    res = didx.honest_did(**kw, M=[0.0, 0.01, 0.02])
    assert len(res.pre_event_times) == 9 and len(res.post_event_times) == 23
    assert res.post_event_times[0] == -1.0 and "event time -1" in res.target
    length = np.asarray(res.conf_high) - np.asarray(res.conf_low)
    assert np.all(np.diff(length) >= -1e-12)
    shifted = didx.honest_did(beta=LW["betahat"], sigma=LW["sigma"], event_time=t + 1, reference=-1,
                              M=[0.0, 0.01, 0.02])
    assert (shifted.conf_low, shifted.conf_high) == (res.conf_low, res.conf_high)
    rm = didx.honest_did(**kw, restriction="relative_magnitude", M=1.0, grid_points=200)
    assert rm.conf_low[0] < rm.original.estimate < rm.conf_high[0]


# ---- comparability of pre-period coefficients ----------------------------------------------------------------


def test_comparability_warning(ehec):
    from didx.registry import PRE_PERIOD

    es = ehec[0]
    assert _raw(ehec, M=0.01).warning == "" and "WARNING" not in didx.honest_did(es, M=0.01).summary()
    for key, text in (("callaway_santanna_varying", "base_period='universal'"), ("imputation", "different null"),
                      ("did2s", "not comparable")):
        fake = dataclasses.replace(es, pre_period_meaning=PRE_PERIOD[key])
        res = didx.honest_did(fake, M=0.01)
        assert text in res.warning and f"WARNING: {res.warning}" in res.summary()
    for key in ("twfe", "sun_abraham", "callaway_santanna_universal", "dcdh", "stacked"):
        assert didx.honest_did(dataclasses.replace(es, pre_period_meaning=PRE_PERIOD[key]), M=0.01).warning == ""


def test_comparability_warning_on_cs_varying_base():
    mp = didx.datasets.load("mpdta")
    es = didx.att_gt(mp, y="lemp", unit="countyreal", time="year", cohort="first.treat").aggregate("dynamic")
    with pytest.raises(DesignError, match="base_period='universal'"):
        didx.honest_did(es, M=0.01)  # no normalised reference: HonestDiD refuses too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keep = np.isfinite(es.event_times) & (np.asarray(es.event_times) != -1)
        idx = np.flatnonzero(keep)
        res = didx.honest_did(beta=es.coef[idx], sigma=es.vcov_matrix[np.ix_(idx, idx)],
                              event_time=es.event_times[idx], reference=-1, M=0.01)
    assert res.warning == ""  # raw inputs carry no meaning; the result does:
    universal = didx.att_gt(mp, y="lemp", unit="countyreal", time="year", cohort="first.treat",
                            base_period="universal").aggregate("dynamic")
    assert didx.honest_did(universal, M=0.01).warning == ""


# ---- bad input (acceptance) ----------------------------------------------------------------------------------


def test_bad_input_each_with_its_error(ehec):
    es, b, S, t = ehec
    raw = dict(beta=b, sigma=S, event_time=t, reference=-1)
    with pytest.raises(InvalidOptionError, match="not positive definite"):
        didx.honest_did(**{**raw, "sigma": S - np.eye(t.size) * np.abs(np.linalg.eigvalsh(S)).max()}, M=0.01)
    with pytest.raises(InvalidOptionError, match="sigma must be a 7 x 7"):
        didx.honest_did(**{**raw, "sigma": S[:6, :6]}, M=0.01)
    for restriction in ("smoothness", "relative_magnitude", "combined"):
        with pytest.raises(InvalidOptionError, match="non-negative"):
            didx.honest_did(es, M=[0.0, -1.0], restriction=restriction)
    with pytest.raises(InvalidOptionError, match="not a post-period event time"):
        didx.honest_did(es, M=0.01, target=-3)
    with pytest.raises(InvalidOptionError, match="weights must be 2"):
        didx.honest_did(es, M=0.01, target=[1.0, 0.0, 0.0])
    post = t >= 0
    with pytest.raises(DesignError, match="no pre-period coefficients"):
        didx.honest_did(beta=b[post], sigma=S[np.ix_(post, post)], event_time=t[post], reference=-1, M=0.01)
    pre = t < 0
    with pytest.raises(DesignError, match="no post-period coefficients"):
        didx.honest_did(beta=b[pre], sigma=S[np.ix_(pre, pre)], event_time=t[pre], reference=-1, M=0.01)
    gap = t != 0
    with pytest.raises(InvalidOptionError, match="consecutive"):
        didx.honest_did(beta=b[gap], sigma=S[np.ix_(gap, gap)], event_time=t[gap], reference=-1, M=0.01,
                        restriction="relative_magnitude")


def test_grid_options(ehec):
    S = ehec[2]
    sd = float(np.sqrt(S[5, 5]))
    default = _raw(ehec, restriction="relative_magnitude", M=1.0, grid_points=300)
    assert default.grid_bounds == ((-20 * sd, 20 * sd),) and "grid_points=300" in default.summary()
    same = _raw(ehec, restriction="relative_magnitude", M=1.0, grid_points=300, grid_bounds=(-20 * sd, 20 * sd))
    assert (same.conf_low, same.conf_high) == (default.conf_low, default.conf_high)
    narrow = _raw(ehec, restriction="relative_magnitude", M=1.0, grid_points=50, grid_bounds=(0.03, 0.2))
    assert narrow.conf_low[0] == 0.03 and narrow.grid_bounds == ((0.03, 0.2),)
    assert any("reaches an end of the test grid" in n for n in narrow.notes)
    assert "reaches an end of the test grid" in narrow.summary()
    # C-F: the default grid is the FLCI at level alpha / 10; user bounds replace it
    cf = _raw(ehec, M=0.01, monotonicity="increasing", target="average", grid_points=100,
              grid_bounds=(-0.1, 0.3))
    assert cf.grid_bounds == ((-0.1, 0.3),) and -0.1 < cf.conf_low[0] < cf.conf_high[0] < 0.3


def test_flci_hybrid_truncation_equals_honestdid_vbar_form(ehec):
    # HonestDiD's C-F conditions on |vbar'y_T - ...| <= halflength with vbar solving a QP (A'vbar = FLCI weights);
    # didx writes the same bounds with the FLCI weights directly: compare with HonestDiD's formulas literally
    from didx.sensitivity._arp import Hybrid, Polyhedron
    from didx.sensitivity._deltas import Restriction, post_rows
    from didx.sensitivity._flci import _r_normal_draws, flci_estimator

    _, b, S, _t = ehec
    n_pre, l_vec = 5, np.array([0.5, 0.5])
    flci_l, half = flci_estimator(S, n_pre, l_vec, 0.01, 0.005)
    for restr in (Restriction("SD"), Restriction("SD", monotonicity="increasing")):
        (A, d), = restr.polyhedra(n_pre, 2, 0.01)
        vbar = np.linalg.lstsq(A.T, flci_l, rcond=None)[0]
        np.testing.assert_allclose(A.T @ vbar, flci_l, atol=1e-12)  # the QP's optimum is exact
        grid = float(flci_l @ b) + np.linspace(-half, half, 7)
        rows = post_rows(A, n_pre)
        p = Polyhedron(b, S, n_pre, l_vec, A, d, rows, grid, 0.05, Hybrid("FLCI", 0.005, flci_l, half),
                       _r_normal_draws(0, 10**6))
        p.ensure(np.arange(grid.size))
        AG = A[:, n_pre:] @ np.linalg.inv(np.vstack([l_vec, [1.0, 0.0]]))
        sigY = A @ S @ A.T
        for i, theta in enumerate(grid):
            y_full = A @ b - d - AG[:, 0] * theta
            gamma = np.zeros(A.shape[0])
            gamma[rows] = p.lam[i]
            dbar = np.array([half - vbar @ d + (1 - vbar @ AG[:, 0]) * theta,
                             half + vbar @ d - (1 - vbar @ AG[:, 0]) * theta])
            sg = sigY @ gamma / (gamma @ sigY @ gamma)
            Sv = y_full - sg * (gamma @ y_full)
            V = np.vstack([vbar, -vbar])
            obj = (dbar - V @ Sv) / (V @ sg)
            ref = (obj[(V @ sg) < 0].max(), obj[(V @ sg) > 0].min())
            np.testing.assert_allclose(p._flci_bounds(i, p.lam[i], p.Y - theta * p.a1), ref, rtol=1e-9, atol=1e-12)
