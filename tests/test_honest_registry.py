"""``honest_did`` on the event study of every estimator of the registry (didx.registry), fitted on mpdta.

For each estimator whose registry entry gives an event study (``event_study`` field): the robust intervals under
both restrictions are finite and ordered; under relative magnitudes with ``Mbar = 0`` (no post-period change of
the trend violation: parallel trends after treatment) the interval contains the estimate; smoothness intervals do
not shrink as ``M`` grows, and a linear trend (zero at the reference) added to the coefficients leaves every
smoothness interval unchanged (linear trends are unrestricted under ``Delta^SD`` and the FLCI is unbiased for them);
the result passed as such and its raw ``beta/sigma/event_time/reference`` give identical intervals; the summary
carries the estimator's pre-period meaning; ``pretrend_power`` at the slope of ``slope_for_power(0.5)`` has
power 0.5. Event studies whose leads are not deviations from a reference period (Callaway-Sant'Anna with the
varying base period, BJS imputation's pre-trend coefficients) are refused with the fix.
``test_every_event_study_estimator_has_a_case`` fails when an estimator with an event study is added to the
registry without a case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import didx
from didx.comparison import DID2S_EVENT_STUDY
from didx.registry import REGISTRY
from didx.results.event import EventStudyResult

MPDTA = didx.datasets.load("mpdta")
MPDTA["d"] = ((MPDTA["first.treat"] > 0) & (MPDTA["year"] >= MPDTA["first.treat"])).astype(int)
MPDTA["part"] = (MPDTA["countyreal"] // 2) % 2  # a partition for the triple difference (FIPS codes are mostly odd)
PROP99 = didx.datasets.load("california_prop99")
COLS = {"y": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
M_SD = [0.0, 0.01, 0.05]


@dataclass(frozen=True)
class Case:
    """One event study of a registry estimator; ``refused``: the text honest_did's refusal must contain."""

    estimator: str
    fit: Callable[[], EventStudyResult]
    refused: str | None = None


CASES: dict[str, Case] = {
    "event_study": Case("event_study", lambda: didx.event_study(MPDTA, **COLS, cluster="countyreal")),
    "att_gt.universal": Case("att_gt", lambda: didx.att_gt(MPDTA, **COLS, base_period="universal")
                             .aggregate("dynamic")),
    "att_gt.varying": Case("att_gt", lambda: didx.att_gt(MPDTA, **COLS).aggregate("dynamic"),
                           refused="base_period='universal'"),
    "sun_abraham": Case("sun_abraham", lambda: didx.sun_abraham(MPDTA, **COLS, cluster="countyreal")),
    "imputation": Case("imputation", lambda: didx.imputation(MPDTA, **COLS, horizons=True, pretrends=True),
                       refused="BJS pre-trend test"),
    "did2s": Case("did2s", lambda: didx.did2s(MPDTA, **COLS, second_stage=DID2S_EVENT_STUDY, ref=-1)),
    "dcdh": Case("dcdh", lambda: didx.dcdh(MPDTA, y="lemp", unit="countyreal", time="year", treat="d", effects=3,
                                           placebo=3)),
    "stacked": Case("stacked", lambda: didx.stacked(MPDTA, **COLS, window=(-3, 1))),
    "ddd": Case("ddd", lambda: didx.ddd(MPDTA, **COLS, partition="part", base_period="universal")
                .aggregate("dynamic")),
    "etwfe": Case("etwfe", lambda: didx.etwfe(MPDTA, **COLS, control="never").aggregate("event")),
    "lpdid": Case("lpdid", lambda: didx.lpdid(MPDTA, **COLS, pre_window=3, post_window=3)),
    # synthetic DiD normalises no period: its leads are gaps to the lambda-weighted pre-period average
    "synthdid": Case("synthdid", lambda: didx.synthdid(PROP99, y="PacksPerCapita", unit="State", time="Year",
                                                       treat="treated", se="placebo", n_reps=20, seed=1)
                     .event_study(), refused="no reference period"),
}
RUNS = [name for name, case in CASES.items() if case.refused is None]
REFUSED = [name for name, case in CASES.items() if case.refused is not None]

_fits: dict[str, EventStudyResult] = {}


def _fitted(name: str) -> EventStudyResult:
    if name not in _fits:
        _fits[name] = CASES[name].fit()
    return _fits[name]


def _raw(es: EventStudyResult) -> dict[str, Any]:
    """The coefficients honest_did reads from a result: finite event times other than the reference."""
    et = es.event_times
    idx = np.flatnonzero(np.isfinite(et) & ~np.isin(et, es.reference_periods))
    (ref,) = es.reference_periods
    return {"beta": es.coef[idx], "sigma": es.vcov_matrix[np.ix_(idx, idx)], "event_time": et[idx],
            "reference": ref}


def test_every_event_study_estimator_has_a_case() -> None:
    with_event_study = {name for name, spec in REGISTRY.items() if spec.event_study is not None}
    assert with_event_study, "the registry lists no estimator with an event study"
    missing = with_event_study - {case.estimator for case in CASES.values()}
    assert not missing, f"add a honest_did case for {sorted(missing)} to tests/test_honest_registry.py CASES"


@pytest.mark.parametrize("name", list(CASES))
def test_the_case_is_an_event_study_with_leads_and_lags(name: str) -> None:
    es = _fitted(name)
    assert isinstance(es, EventStudyResult)
    et = es.event_times[np.isfinite(es.event_times)]
    assert np.any(et < -1) and np.any(et >= 0), f"{name}: event times {et.tolist()}"


@pytest.fixture(scope="module", params=RUNS)
def fitted(request: pytest.FixtureRequest) -> tuple[str, EventStudyResult]:
    return request.param, _fitted(request.param)


def test_smoothness(fitted: tuple[str, EventStudyResult]) -> None:
    name, es = fitted
    res = didx.honest_did(es, M=M_SD, target="first")
    lo, hi = np.asarray(res.conf_low), np.asarray(res.conf_high)
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi), name
    assert np.all(np.diff(hi - lo) >= -1e-10), f"{name}: FLCI length shrinks with M"
    raw = _raw(es)
    first = int(np.flatnonzero(raw["event_time"] == 0)[0])
    assert res.original.estimate == pytest.approx(raw["beta"][first], rel=1e-12)
    assert res.source == es.estimator and res.pre_period_meaning == es.pre_period_meaning
    again = didx.honest_did(**raw, M=M_SD[-1:], target="first")
    assert (again.conf_low[0], again.conf_high[0]) == (res.conf_low[-1], res.conf_high[-1]), name
    assert again.original == res.original


def test_smoothness_ignores_a_linear_trend(fitted: tuple[str, EventStudyResult]) -> None:
    # a linear trend zero at the reference is in Delta^SD(0): the FLCI's affine estimator is unbiased for it, so
    # adding it to every coefficient leaves the interval where it is (the data cannot tell it from parallel trends)
    name, es = fitted
    raw = _raw(es)
    trend = 0.02 * (raw["event_time"] - raw["reference"])
    base = didx.honest_did(**raw, M=[0.05], target="average")
    moved = didx.honest_did(**{**raw, "beta": raw["beta"] + trend}, M=[0.05], target="average")
    assert moved.original.estimate == pytest.approx(base.original.estimate + float(np.mean(trend[raw["event_time"]
                                                                                                   >= 0])))
    np.testing.assert_allclose([moved.conf_low[0], moved.conf_high[0]], [base.conf_low[0], base.conf_high[0]],
                               rtol=0, atol=1e-10, err_msg=name)


def test_relative_magnitudes(fitted: tuple[str, EventStudyResult]) -> None:
    name, es = fitted
    raw = _raw(es)
    res = didx.honest_did(es, restriction="relative_magnitude", M=[0.0, 1.0], target="average")
    lo, hi = np.asarray(res.conf_low), np.asarray(res.conf_high)
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi), name
    # Mbar = 0: the trend violation does not change after the reference, the estimate is accepted
    assert lo[0] <= res.original.estimate <= hi[0], name
    assert lo[1] <= lo[0] and hi[0] <= hi[1], f"{name}: the Mbar = 1 interval does not contain the Mbar = 0 one"
    again = didx.honest_did(**raw, restriction="relative_magnitude", M=[0.0], target="average")
    assert (again.conf_low[0], again.conf_high[0]) == (res.conf_low[0], res.conf_high[0]), name


@pytest.mark.parametrize("name", REFUSED)
def test_leads_without_a_reference_are_refused_with_the_fix(name: str) -> None:
    es = _fitted(name)
    assert es.reference_periods == ()
    fix = CASES[name].refused
    assert fix is not None
    for restriction in ("smoothness", "relative_magnitude"):
        with pytest.raises(didx.DesignError, match="no reference period") as err:
            didx.honest_did(es, restriction=restriction, M=[1.0])
        assert fix in str(err.value), str(err.value)
    with pytest.raises(didx.DesignError, match="no reference period"):
        didx.pretrend_power(es, slope=0.01)


def test_pretrend_power(fitted: tuple[str, EventStudyResult]) -> None:
    # the slope the pre-test detects half the time is detected half the time, from the result and the raw inputs
    name, es = fitted
    slope = didx.slope_for_power(es, target_power=0.5)
    assert np.isfinite(slope) and slope > 0, name
    res = didx.pretrend_power(es, slope=slope)
    assert res.power == pytest.approx(0.5, abs=1e-6), name
    raw = didx.pretrend_power(**_raw(es), slope=slope)
    assert (raw.power, raw.bayes_factor, raw.likelihood_ratio) == (res.power, res.bayes_factor,
                                                                   res.likelihood_ratio), name
