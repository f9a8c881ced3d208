"""HonestDiD's README (Medicaid expansion, ``ehec``) reproduced from the raw data with didx itself.

Every number here starts from ``didx.datasets.load("ehec")`` (the README's ``ehec_data.dta``): the estimator's
event study (Sun-Abraham, Callaway-Sant'Anna, TWFE) is compared with the coefficients and covariance the README
passed to HonestDiD (1e-6 relative), then ``didx.honest_did`` on that result with the README's relative-magnitude
(C-LF) intervals (1e-3, issue 15). References and their provenance: ``tests/reference/honestdid_staggered.json``.

The README's own runs: the Sun-Abraham and Callaway-Sant'Anna chunks pass ``gridPoints = 100`` (the CS one through
HonestDiD's ``honest_did.AGGTEobj``, whose default it is); didx's default grid has HonestDiD's 1000 points.

The relative-magnitude (C-LF) bounds are points of the grid the test is inverted on, so they are reproduced
exactly once the grid is HonestDiD's. Two grids occur in the README's knitr cache. The 2023 run of the CS chunk
(stale chunk 9) used HonestDiD's grid ``seq(-20 sd, 20 sd, length.out = gridPoints)`` (master, 0.2.8), didx's
default. The 2024 runs (chunks 4, 7, 10, 12) were knit with the unmerged branch ``issue_grid`` of HonestDiD
(888de5e, "Fixed grid to match Stata's improvement"), whose grid is centred at the estimate with half-width
``Mbar * sum_t t |l_t| * maxpre + 20 sd`` (moderndid uses it too). didx's C-LF test reproduces every bound of both
to ~1e-16 on the respective grid (``test_*_on_the_readme_grid``; through ``honest_did(grid_bounds=)`` once it
takes grid bounds, until then through the C-LF module's polyhedra). With didx's default grid the 2024 bounds
differ by up to a grid step; those beyond the issue's 1e-3 are strict xfails.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from didx.sensitivity.honest import _r_normal_draws

REF = json.loads((Path(__file__).parent / "reference" / "honestdid_staggered.json").read_text())
RTOL = 1e-6  # coefficients, covariances, FLCI (issue 15)
CLF_TOL = 1e-3  # C-LF bounds (issue 15)
MBAR = [0.5, 1.0, 1.5, 2.0]


@contextmanager
def _grid_points(n: int) -> Iterator[dict[str, Any]]:
    """Keyword arguments for ``honest_did`` that give HonestDiD's ``gridPoints = n``: ``grid_points=n`` where
    ``honest_did`` takes it (issue 15's API); until then the module constant of the C-LF grid, restored after."""
    if "grid_points" in inspect.signature(didx.honest_did).parameters:
        yield {"grid_points": n}
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("didx.sensitivity._arp.GRID_POINTS", n)
        yield {}


def _readme_grid_interval(es: Any, mbar: float, target: Any, points: int) -> tuple[float, float]:
    """The C-LF interval on the grid of the README's 2024 runs (HonestDiD branch ``issue_grid``, 888de5e): centred
    at the estimate ``l' b_post``, half-width ``Mbar * sum_t t |l_t| * maxpre + 20 sd``, ``maxpre`` the largest
    absolute first difference of ``(b_pre, 0)``."""
    raw = didx.honest_did(es, M=[0.0], target=target)  # the ordered inputs and the target's weights
    assert raw._fit is not None
    b, S, n_pre, l_vec = raw._fit.beta, raw._fit.sigma, raw._fit.n_pre, raw._fit.l_vec
    sd = float(np.sqrt(l_vec @ S[n_pre:, n_pre:] @ l_vec))
    maxpre = float(np.max(np.abs(np.diff(np.append(b[:n_pre], 0.0)))))
    centre = float(l_vec @ b[n_pre:])
    half = mbar * float(np.arange(1, l_vec.size + 1) @ np.abs(l_vec)) * maxpre + 20.0 * sd
    lo_end, hi_end = centre - half, centre + half
    if "grid_bounds" in inspect.signature(didx.honest_did).parameters:
        res = didx.honest_did(es, restriction="relative_magnitude", M=[mbar], target=target, grid_points=points,
                              grid_bounds=(lo_end, hi_end))
        return res.conf_low[0], res.conf_high[0]
    # until honest_did takes grid bounds: the same test, polyhedron by polyhedron, on that grid
    from didx.sensitivity import _arp
    from didx.sensitivity.honest import N_SIMS

    grid = np.linspace(lo_end, hi_end, points)
    polys = [_arp._Polyhedron(b, S, n_pre, l_vec, _arp.rm_matrix(n_pre, l_vec.size, mbar, s, positive), grid, 0.05,
                              _r_normal_draws(0, N_SIMS))
             for s in range(-(n_pre - 1), 1) for positive in (True, False)]
    candidates = np.flatnonzero(np.any([p.candidate for p in polys], axis=0))
    lo = next(int(i) for i in candidates if any(p.accepts(int(i)) for p in polys))
    hi = next(int(i) for i in candidates[::-1] if any(p.accepts(int(i)) for p in polys))
    return float(grid[lo]), float(grid[hi])


def _finite_non_reference(es: Any) -> np.ndarray:
    et = es.event_times
    return np.flatnonzero(np.isfinite(et) & ~np.isin(et, es.reference_periods))


@pytest.fixture(scope="module")
def ehec() -> pd.DataFrame:
    return didx.datasets.load("ehec")


# ---- Sun-Abraham on the staggered sample (README chunk 10) ----------------------------------------------------
@pytest.fixture(scope="module")
def sunab(ehec: pd.DataFrame) -> Any:
    # fixest: sunab(year_treated, year) with year_treated = Inf for the never treated, | stfips + year, clustered
    return didx.sun_abraham(ehec, y="dins", unit="stfips", time="year", cohort="yexp2", cluster="stfips")


@pytest.fixture(scope="module")
def sunab_rm(sunab: Any) -> Any:
    with _grid_points(100) as kw:
        return didx.honest_did(sunab, restriction="relative_magnitude", M=MBAR, target="first", **kw)


def test_sunab_event_study_matches_fixest(sunab: Any) -> None:
    ref = REF["sunab"]
    idx = _finite_non_reference(sunab)
    np.testing.assert_array_equal(sunab.event_times[idx], ref["event_time"])
    assert sunab.reference_periods == (-1.0,)
    np.testing.assert_allclose(sunab.coef[idx], ref["beta"], rtol=RTOL)
    np.testing.assert_allclose(sunab.vcov_matrix[np.ix_(idx, idx)], ref["sigma"], rtol=RTOL)
    np.testing.assert_allclose(sunab.std_errors[idx], ref["std_error"], rtol=RTOL)


def test_sunab_original_interval(sunab_rm: Any) -> None:
    o, ref = sunab_rm.original, REF["sunab"]["original"]
    np.testing.assert_allclose([o.conf_low, o.conf_high], [ref["lb"], ref["ub"]], rtol=RTOL)


_SUNAB_OFF = {  # (Mbar, bound) -> |didx - README| with gridPoints = 100 on didx's (HonestDiD master's) grid
    (1.0, "ub"): "1.1e-3", (1.5, "lb"): "1.4e-3", (1.5, "ub"): "2.8e-3",
    (2.0, "ub"): "2.9e-2 (0.161 lies beyond the end of HonestDiD master's grid, 20 sd = 0.1317)",
}


def _bound_cases(off: dict[tuple[float, str], str], what: str) -> list[Any]:
    cases = []
    for i, mbar in enumerate(MBAR):
        for bound in ("lb", "ub"):
            reason = off.get((mbar, bound))
            marks = [pytest.mark.xfail(strict=True, reason=f"{what} 2024 README run, off by {reason}: it ran on the "
                                       "grid of HonestDiD's branch issue_grid (centred at the estimate, widened with "
                                       "Mbar), reproduced exactly by test_*_on_the_readme_grid; this test uses "
                                       "honest_did's default grid (HonestDiD 0.2.8's)")] if reason else []
            cases.append(pytest.param(i, bound, marks=marks, id=f"Mbar={mbar:g}-{bound}"))
    return cases


@pytest.mark.parametrize(("i", "bound"), _bound_cases(_SUNAB_OFF, "Sun-Abraham"))
def test_sunab_relative_magnitudes(sunab_rm: Any, i: int, bound: str) -> None:
    ref = REF["sunab"]["relative_magnitude_clf"][i]
    assert sunab_rm.M[i] == ref["Mbar"]
    got = sunab_rm.conf_low[i] if bound == "lb" else sunab_rm.conf_high[i]
    assert abs(got - ref[bound]) < CLF_TOL


@pytest.mark.parametrize("i", range(len(MBAR)))
def test_sunab_relative_magnitudes_on_the_readme_grid(sunab: Any, i: int) -> None:
    ref = REF["sunab"]["relative_magnitude_clf"][i]
    got = _readme_grid_interval(sunab, ref["Mbar"], "first", 100)
    np.testing.assert_allclose(got, [ref["lb"], ref["ub"]], rtol=1e-9)


def test_sunab_raw_inputs_give_the_same_intervals(sunab: Any, sunab_rm: Any) -> None:
    ref = REF["sunab"]
    with _grid_points(100) as kw:
        raw = didx.honest_did(beta=ref["beta"], sigma=ref["sigma"], event_time=ref["event_time"], reference=-1,
                              restriction="relative_magnitude", M=[1.0], target="first", **kw)
    # R's inputs and didx's agree to ~1e-12: the same grid points are accepted (the grid scales with the sd)
    np.testing.assert_allclose([raw.conf_low[0], raw.conf_high[0]], [sunab_rm.conf_low[1], sunab_rm.conf_high[1]],
                               rtol=1e-9)


# ---- Callaway-Sant'Anna on the staggered sample (README chunk 12) ---------------------------------------------
@pytest.fixture(scope="module")
def cs(ehec: pd.DataFrame) -> Any:
    # did::att_gt(gname = yexp2 with NA -> 3000, control_group = "notyettreated", base_period = "universal")
    data = ehec.assign(yexp2=ehec["yexp2"].fillna(3000))
    return didx.att_gt(data, y="dins", unit="stfips", time="year", cohort="yexp2", control_group="not_yet",
                       base_period="universal")


@pytest.fixture(scope="module")
def cs_es(cs: Any) -> Any:
    return cs.aggregate("dynamic", min_e=-5, max_e=5)


@pytest.fixture(scope="module")
def cs_rm(cs_es: Any) -> Any:
    with _grid_points(100) as kw:
        return didx.honest_did(cs_es, restriction="relative_magnitude", M=MBAR, target=0, **kw)


def test_cs_att_gt_matches_did(cs: Any) -> None:
    tb = cs.tidy()
    tb = tb[np.isfinite(tb["group"])]
    got = {(int(g), int(t)): est for g, t, est in zip(tb["group"], tb["time"], tb["estimate"], strict=True)}
    ref = {(r["group"], r["t"]): r["att"] for r in REF["cs"]["attgt"]}
    assert set(got) == set(ref)
    keys = sorted(ref)
    # ATT(g, g-1) is 0 by construction (universal base period): compare with an absolute floor
    np.testing.assert_allclose([got[k] for k in keys], [ref[k] for k in keys], rtol=RTOL, atol=1e-15)


def test_cs_event_study_matches_did(cs_es: Any) -> None:
    ref = REF["cs"]
    et = np.asarray(ref["es_event_time"], dtype=float)
    idx = _finite_non_reference(cs_es)
    assert cs_es.reference_periods == (-1.0,)
    np.testing.assert_array_equal(cs_es.event_times[idx], et[et != -1])
    np.testing.assert_allclose(cs_es.coef[idx], ref["beta"], rtol=RTOL)
    # the covariance HonestDiD's honest_did builds from the influence functions (analytic): didx's own
    np.testing.assert_allclose(cs_es.vcov_matrix[np.ix_(idx, idx)], ref["sigma"], rtol=RTOL)
    overall = np.flatnonzero(~np.isfinite(cs_es.event_times))
    np.testing.assert_allclose(cs_es.coef[overall], [ref["overall_att"]], rtol=RTOL)


def test_cs_original_interval(cs_rm: Any) -> None:
    o, ref = cs_rm.original, REF["cs"]["original"]
    np.testing.assert_allclose([o.conf_low, o.conf_high], [ref["lb"], ref["ub"]], rtol=RTOL)


def test_cs_relative_magnitudes_match_the_2023_run_exactly(cs_rm: Any) -> None:
    # the README's CS chunk as cached in 2023 (same call, same inputs): bounds on the 100-point grid, reproduced
    ref = REF["cs"]["relative_magnitude_clf_2023"]
    assert list(cs_rm.M) == [r["Mbar"] for r in ref]
    np.testing.assert_allclose(cs_rm.conf_low, [r["lb"] for r in ref], rtol=1e-9)
    np.testing.assert_allclose(cs_rm.conf_high, [r["ub"] for r in ref], rtol=1e-9)


@pytest.mark.parametrize("i", range(len(MBAR)))
def test_cs_relative_magnitudes_on_the_readme_grid(cs_es: Any, i: int) -> None:
    ref = REF["cs"]["relative_magnitude_clf"][i]
    got = _readme_grid_interval(cs_es, ref["Mbar"], 0, 100)
    np.testing.assert_allclose(got, [ref["lb"], ref["ub"]], rtol=1e-9)


_CS_OFF = {(0.5, "lb"): "1.2e-3", (0.5, "ub"): "1.8e-3", (1.0, "lb"): "1.9e-3"}


@pytest.mark.parametrize(("i", "bound"), _bound_cases(_CS_OFF, "Callaway-Sant'Anna"))
def test_cs_relative_magnitudes(cs_rm: Any, i: int, bound: str) -> None:
    ref = REF["cs"]["relative_magnitude_clf"][i]
    assert cs_rm.M[i] == ref["Mbar"]
    got = cs_rm.conf_low[i] if bound == "lb" else cs_rm.conf_high[i]
    assert abs(got - ref[bound]) < CLF_TOL


def test_cs_varying_base_period_is_refused_with_the_fix(ehec: pd.DataFrame) -> None:
    # HonestDiD's honest_did.AGGTEobj stops: "Use a universal base period for honest_did"; didx says why and how
    data = ehec.assign(yexp2=ehec["yexp2"].fillna(3000))
    es = didx.att_gt(data, y="dins", unit="stfips", time="year", cohort="yexp2",
                     control_group="not_yet").aggregate("dynamic", min_e=-5, max_e=5)
    with pytest.raises(didx.DesignError, match="base_period='universal'"):
        didx.honest_did(es, M=[0.01])


# ---- TWFE on the non-staggered sample (README chunks 3-8), from the raw data ----------------------------------
def _nonstaggered(ehec: pd.DataFrame) -> pd.DataFrame:
    df = ehec[(ehec["year"] < 2016) & (ehec["yexp2"].isna() | (ehec["yexp2"] != 2015))].copy()
    df["cohort"] = np.where(df["yexp2"] == 2014, 2014.0, np.nan)
    return df


def test_twfe_original_interval_of_the_average(ehec: pd.DataFrame) -> None:
    es = didx.event_study(_nonstaggered(ehec), y="dins", unit="stfips", time="year", cohort="cohort",
                          cluster="stfips")
    res = didx.honest_did(es, M=[0.0], target="average")
    ref = REF["twfe_nonstaggered"]["original_average"]
    np.testing.assert_allclose([res.original.conf_low, res.original.conf_high], [ref["lb"], ref["ub"]], rtol=RTOL)


@pytest.mark.parametrize(("target", "mbar"), [("average", 0.0), ("average", 1.0), ("average", 2.0), ("first", 2.0)])
def test_twfe_relative_magnitudes_on_the_readme_grid(ehec: pd.DataFrame, target: str, mbar: float) -> None:
    # README chunks 4 (first) and 7 (average), 1000 grid points; the 1e-3 checks on didx's own grid are in
    # tests/test_honest_did.py
    es = didx.event_study(_nonstaggered(ehec), y="dins", unit="stfips", time="year", cohort="cohort",
                          cluster="stfips")
    ref = next(r for r in REF["twfe_nonstaggered"][f"relative_magnitude_clf_{target}"] if r["Mbar"] == mbar)
    got = _readme_grid_interval(es, mbar, target, 1000)
    np.testing.assert_allclose(got, [ref["lb"], ref["ub"]], rtol=1e-9)


def test_twfe_with_the_readme_fake_control(ehec: pd.DataFrame) -> None:
    # set.seed(0); df$control <- rnorm(NROW(df)): R's draws, regenerated exactly, in the rows' order
    df = _nonstaggered(ehec)
    df["control"] = _r_normal_draws(0, len(df))
    es = didx.event_study(df, y="dins", unit="stfips", time="year", cohort="cohort", cluster="stfips",
                          covariates="control")
    ref = REF["twfe_nonstaggered"]["with_fake_control"]
    idx = _finite_non_reference(es)
    np.testing.assert_array_equal(es.event_times[idx], [-6, -5, -4, -3, -2, 0, 1])
    np.testing.assert_allclose(es.coef[idx], ref["betahat"], rtol=RTOL)
    np.testing.assert_allclose(es.vcov_matrix[np.ix_(idx, idx)], ref["sigma"], rtol=RTOL)


# ---- any reference period ---------------------------------------------------------------------------------------
def _minus_one_is_a_pre_period() -> bool:
    """Whether honest_did counts event time -1 as a pre-period when the reference is -2 (the layout bug)."""
    res = didx.honest_did(beta=[0.0, 0.0, 0.0], sigma=np.eye(3), event_time=[-3.0, -1.0, 0.0], reference=-2.0,
                          M=[0.0])
    return -1.0 in res.pre_event_times


@pytest.mark.xfail(_minus_one_is_a_pre_period(), strict=True,
                   reason="bug in didx.sensitivity (not this file's to fix): with reference -2, event "
                   "time -1 lies between the reference and 0, and honest_did counts it as a pre-period placed before "
                   "the reference (pre = event times < 0), so the constraint layout is wrong and the interval silently "
                   "differs (M=0.01: [0.0154, 0.0757] vs HonestDiD's layout [-0.0325, 0.0286]); HonestDiD's layout "
                   "(LW example: reference -2, -1 is its first post period) or a clear error is expected")
def test_reference_before_an_anticipation_period(ehec: pd.DataFrame) -> None:
    es = didx.event_study(_nonstaggered(ehec), y="dins", unit="stfips", time="year", cohort="cohort",
                          cluster="stfips", ref=-2)
    idx = _finite_non_reference(es)
    # HonestDiD numbers periods by position: numPrePeriods = the 4 before the reference, numPostPeriods = 3 after;
    # shifting every event time by +1 puts the reference at -1 with that layout
    honest = didx.honest_did(beta=es.coef[idx], sigma=es.vcov_matrix[np.ix_(idx, idx)],
                             event_time=es.event_times[idx] + 1, reference=-1, M=[0.01])
    assert honest.pre_event_times == (-5.0, -4.0, -3.0, -2.0)
    try:
        got = didx.honest_did(es, M=[0.01])
    except didx.DidxError:
        return  # a clear refusal is acceptable too
    np.testing.assert_allclose([got.conf_low[0], got.conf_high[0]], [honest.conf_low[0], honest.conf_high[0]],
                               rtol=1e-9)
