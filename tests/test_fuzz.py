"""Fuzz matrix (issue 10): every public estimator x every family of bad input.

For every case the outcome must be one of
* a :class:`didx.DidxError` whose message names the problem (the argument, the column or the value), or
* a finite result whose sample report accounts for every input row (``n_obs + dropped rows == input rows``) and
  whose ``summary()``, ``tidy()`` and ``plot()`` do not raise.

Never a raw Python/numpy/pandas exception, never a silently wrong number (an estimate of exactly 0 from an outcome
that is the unit column, a cohort that is no period turned into a cohort of its own, ...).

The estimators are those of :mod:`didx.registry`. The data are small (40 units x 5 periods) so the whole matrix
runs in a few seconds. Cases that fail because of
code in ``didx/estimators/*`` (owned by the estimator families) are ``xfail(strict=True)`` with the exact reason
(:data:`KNOWN`); a fix there turns the xfail into an XPASS, which fails the suite until the entry is removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import didx

pytestmark = pytest.mark.fuzz


# ---------------------------------------------------------------------------------------------------- data
def _staggered() -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(40, 5, [3, 4], never_share=0.4, seed=1)
    df["w"] = 1.0 + (df["unit"] % 3)
    df["cl"] = df["unit"] % 8
    return df


def _two_period() -> pd.DataFrame:
    """Periods 2 and 3; the cohort-3 units (treated) and the never-treated."""
    df = _staggered()
    df = df[df["time"].isin([2, 3]) & df["cohort"].isin([0, 3])].reset_index(drop=True)
    return df.assign(post=(df["time"] == 3).astype(int), group=(df["cohort"] == 3).astype(int))


STAGGERED = _staggered()
TWO_PERIOD = _two_period()
STAGGERED_DDD = STAGGERED.assign(elig=STAGGERED["unit"] % 2)  # a partition for the triple difference


# ---------------------------------------------------------------------------------------------------- estimators
@dataclass(frozen=True)
class Spec:
    """How to call one public estimator on the fuzz data, and which arguments it has."""

    name: str
    data: pd.DataFrame
    kwargs: dict[str, Any]
    unit: str | None = "unit"  # the argument naming the unit (None: none)
    time: str | None = "time"  # the argument naming the period (None: none)
    covariates: str | None = "covariates"  # the argument taking covariates (None: none)
    covariate: str = "x2"  # a column that is a valid covariate for this estimator
    unit_column: str = "unit"  # the column of units (also for estimators that take it in fe=)
    time_column: str = "time"  # the column of periods
    weights: bool = True  # has weights= (a column)
    cluster: bool = True  # has cluster=
    ssc: bool = False  # has ssc=
    vcov: bool = False  # has vcov=
    cohort: bool = True  # takes cohort= (else a 0/1 treat=)
    options: dict[str, Any] = field(default_factory=dict)  # an option given a value of the wrong type

    def call(self, data: pd.DataFrame | None = None, **over: Any) -> Any:
        return getattr(didx, self.name)(self.data if data is None else data, **{**self.kwargs, **over})


STAG = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort"}

# One entry per estimator of didx.registry (test_every_registered_estimator_is_fuzzed): how to call it on the fuzz
# data, which the registry does not say.
SPECS = [
    Spec("did2x2", TWO_PERIOD, {"y": "y", "treat": "group", "post": "post", "unit": "unit"}, time="post",
         time_column="post", ssc=True, vcov=True, cohort=False, options={"first_difference": "yes"}),
    Spec("twfe", STAGGERED, STAG, ssc=True, vcov=True, options={"drop_singletons": "yes"}),
    Spec("event_study", STAGGERED, STAG, ssc=True, vcov=True, options={"ref": "first"}),
    Spec("ols", STAGGERED, {"y": "y", "x": "d", "fe": ["unit", "time"]}, unit=None, time=None, covariates="x",
         covariate="d", ssc=True, vcov=True, cohort=False),
    Spec("drdid", TWO_PERIOD, {"y": "y", "treat": "group", "time": "post", "unit": "unit", "covariates": "x1"},
         time_column="post", covariate="x1", cohort=False, options={"trim_level": "high"}),
    Spec("bacon", STAGGERED, {"y": "y", "unit": "unit", "time": "time", "treat": "d"}, weights=False,
         cluster=False, cohort=False),
    Spec("att_gt", STAGGERED, STAG, options={"n_bootstrap": "many"}),
    Spec("sun_abraham", STAGGERED, STAG, ssc=True, vcov=True, options={"ref": "first"}),
    Spec("imputation", STAGGERED, STAG, options={"horizons": "all"}),
    Spec("did2s", STAGGERED, STAG, options={"second_stage": 5}),
    Spec("dcdh", STAGGERED, {"y": "y", "unit": "unit", "time": "time", "treat": "d"}, cohort=False,
         options={"effects": "two"}),
    Spec("twfe_weights", STAGGERED, {"y": "y", "unit": "unit", "time": "time", "treat": "d"}, covariates=None,
         cluster=False, cohort=False),
    Spec("stacked", STAGGERED, {**STAG, "window": (-1, 1)}, covariates=None, ssc=True, vcov=True,
         options={"window": 3}),
    Spec("ddd", STAGGERED_DDD, {**STAG, "partition": "elig"}, options={"method": 5}),
    Spec("synthdid", STAGGERED, {"y": "y", "unit": "unit", "time": "time", "treat": "d"}, weights=False,
         cohort=False, options={"n_reps": "many"}),
    Spec("etwfe", STAGGERED, STAG, ssc=True, vcov=True, options={"control": 3}),
    Spec("lpdid", STAGGERED, {"y": "y", "unit": "unit", "time": "time", "treat": "d", "pre_window": 2,
                              "post_window": 1}, weights=False, cohort=False, options={"pre_window": "two"}),
]
BY_NAME = {s.name: s for s in SPECS}


# ---------------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One bad input: the data and arguments, and what a clear error must mention (regex, case-insensitive).

    ``result`` adds a check on a returned result (else a result is acceptable when finite and accounted).
    ``error_only``: a returned result is wrong whatever it holds (e.g. an estimate from a constant outcome).
    """

    data: pd.DataFrame
    kwargs: dict[str, Any]
    mentions: str
    error_only: bool = True
    result: Callable[[Any, Spec], None] | None = None


def _set(df: pd.DataFrame, column: str, rows: list[int], value: float) -> pd.DataFrame:
    out = df.copy()
    out[column] = out[column].astype(float)
    out.loc[rows, column] = value
    return out


def _headline(res: Any) -> float | None:
    """The result's headline number (``estimate``; ``beta`` for the TWFE weights)."""
    for name in ("estimate", "beta"):
        value = getattr(res, name, None)
        if value is not None:
            return float(value)
    return None


def _same_as_clean(res: Any, spec: Spec) -> None:
    """An integer column label is read with the real label: the same numbers as the original column name."""
    clean = spec.call()
    assert _headline(res) == pytest.approx(_headline(clean), rel=1e-12)
    if hasattr(clean, "std_error"):
        assert res.std_error == pytest.approx(clean.std_error, rel=1e-12, nan_ok=True)


def _infinite_dropped(res: Any, spec: Spec) -> None:
    reasons = " ".join(d.reason for d in res.sample.dropped) + " ".join(res.sample.notes)
    assert re.search("infinite|missing", reasons), f"rows with inf not reported as dropped: {reasons!r}"


def _unit_as(spec: Spec, label: Any) -> dict[str, Any]:
    """The arguments naming the unit column as ``label`` (an argument of its own, or an entry of fe=)."""
    if spec.unit is not None:
        return {spec.unit: label}
    return {"fe": [label if f == spec.unit_column else f for f in spec.kwargs["fe"]]}


def _cases(spec: Spec) -> Iterator[tuple[str, Callable[[], Case]]]:
    """Every bad-input case that applies to ``spec`` (lazily built)."""
    d = spec.data
    yield "y_list", lambda: Case(d, {"y": ["y"]}, r"'y' parameter")
    yield "y_int_not_a_label", lambda: Case(d, {"y": 5}, r"'y' parameter|column '?5'? ")
    yield "y_none", lambda: Case(d, {"y": None}, r"'y' parameter")
    yield "y_float", lambda: Case(d, {"y": 2.5}, r"'y' parameter")
    yield "int_label_int", lambda: Case(d.rename(columns={"y": 0}), {"y": 0}, "", error_only=False,
                                        result=_same_as_clean)
    yield "int_label_str", lambda: Case(d.rename(columns={"y": 0}), {"y": "0"}, "", error_only=False,
                                        result=_same_as_clean)
    yield "int_label_unit", lambda: Case(d.rename(columns={spec.unit_column: 11}), _unit_as(spec, 11), "",
                                         error_only=False, result=_same_as_clean)
    yield "empty_frame", lambda: Case(d.iloc[:0], {}, r"no rows")
    yield "y_is_unit", lambda: Case(d, {"y": spec.unit_column}, r"outcome|both y=")
    yield "y_is_time", lambda: Case(d, {"y": spec.time_column}, r"outcome|both y=")
    yield "constant_y", lambda: Case(d.assign(y=1.0), {}, r"constant")
    yield "inf_y", lambda: Case(_set(d, "y", [3, 8], np.inf), {}, r"infinite|missing|unbalanced",
                                error_only=False, result=_infinite_dropped)
    if spec.time is not None:  # (ols takes the period only as a fixed effect, where inf is just a label)
        yield "inf_time", lambda: Case(_set(d, spec.time_column, [3], np.inf), {},
                                       r"infinite|missing|unbalanced|0/1|two values", error_only=False,
                                       result=_infinite_dropped)
    yield "y_1e300", lambda: Case(d.assign(y=d["y"] * 1e300), {}, r"rescale")
    if spec.weights:
        yield "weights_all_zero", lambda: Case(d.assign(w=0.0), {"weights": "w"},
                                               r"'w' is zero or missing in every row")
        yield "inf_weights", lambda: Case(_set(d, "w", [3], np.inf), {"weights": "w"}, r"infinite|missing",
                                          error_only=False, result=_infinite_dropped)
        yield "weights_1e300", lambda: Case(d.assign(w=d["w"] * 1e300), {"weights": "w"}, r"rescale")
    if spec.covariates is not None:
        cov = spec.covariate
        yield "covariate_1e300", lambda: Case(d.assign(**{cov: d[cov] * 1e300}), {spec.covariates: cov},
                                              r"rescale")
        yield "covariate_twice", lambda: Case(d, {spec.covariates: [cov, cov]}, r"more than once|twice")
    if spec.cohort:
        yield "cohort_not_a_period", lambda: Case(d.assign(cohort=d["cohort"].astype(float).replace(4.0, 3.5)), {},
                                                  r"3\.5")
    if spec.cluster:
        yield "single_cluster", lambda: Case(d.assign(cl=1), {"cluster": "cl"}, r"'cl'.*(1 distinct|single)")
        yield "cluster_int", lambda: Case(d, {"cluster": 5}, r"cluster.*\b5\b")
    if spec.ssc:
        yield "ssc_bogus", lambda: Case(d, {"ssc": "bogus"}, r"'ssc' parameter")
    if spec.vcov:
        yield "vcov_int", lambda: Case(d, {"vcov": 5}, r"'vcov' parameter")
    for option, value in spec.options.items():
        yield f"option_{option}", lambda o=option, v=value: Case(d, {o: v}, rf"'?{o}'?")


KNOWN: dict[tuple[str, str], str] = {}


def _params() -> Iterator[Any]:
    for spec in SPECS:
        for case_name, make in _cases(spec):
            marks = []
            if (spec.name, case_name) in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[(spec.name, case_name)]))
            yield pytest.param(spec.name, make, id=f"{spec.name}-{case_name}", marks=marks)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _check_result(res: Any, spec: Spec) -> None:
    """A returned result: finite headline, every input row accounted for, presentation does not raise."""
    est = _headline(res)
    if est is not None:
        assert np.isfinite(est), f"{spec.name}: non-finite estimate {est}"
    sample = getattr(res, "sample", None)
    assert sample is not None, f"{spec.name}: no sample report"
    assert sample.n_obs + sample.n_dropped_rows == sample.n_input_rows, (
        f"{spec.name}: {sample.n_obs} observations + {sample.n_dropped_rows} dropped != {sample.n_input_rows} rows")
    assert str(res.summary())
    if hasattr(res, "tidy"):
        assert len(res.tidy()) > 0
    if hasattr(res, "plot"):
        res.plot()


def test_every_registered_estimator_is_fuzzed() -> None:
    """The matrix covers exactly the estimators of didx.registry, with the registry's weights= support."""
    from didx.registry import REGISTRY

    assert sorted(BY_NAME) == sorted(REGISTRY)
    assert {n: s.weights for n, s in BY_NAME.items()} == {n: s.weights for n, s in REGISTRY.items()}


@pytest.mark.parametrize(("name", "make"), list(_params()))
def test_bad_input(name: str, make: Callable[[], Case]) -> None:
    spec = BY_NAME[name]
    case = make()
    try:
        res = spec.call(case.data, **case.kwargs)
    except didx.DidxError as exc:
        assert case.mentions, f"{name}: a valid input raised {type(exc).__name__}: {exc}"
        assert re.search(case.mentions, str(exc), flags=re.IGNORECASE), (
            f"{name}: the message does not name the problem ({case.mentions!r}): {exc}")
        assert "Fix" in str(exc) or "Got" in str(exc), f"{name}: the message gives no fix: {exc}"
        return
    assert not case.error_only, f"{name}: returned a result ({_headline(res)}) for an input that must be refused"
    _check_result(res, spec)
    if case.result is not None:
        case.result(res, spec)


BASELINE_KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("name", [pytest.param(s.name, marks=[pytest.mark.xfail(strict=True,
                                                                                  reason=BASELINE_KNOWN[s.name])]
                                               if s.name in BASELINE_KNOWN else []) for s in SPECS])
def test_valid_input_gives_an_accounted_result(name: str) -> None:
    """The fuzz data themselves are valid: every estimator returns a result that passes the result checks."""
    spec = BY_NAME[name]
    _check_result(spec.call(), spec)


PLOT_KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("name", [pytest.param(s.name, marks=[pytest.mark.xfail(strict=True,
                                                                                  reason=PLOT_KNOWN[s.name])]
                                               if s.name in PLOT_KNOWN else []) for s in SPECS])
def test_plot_ax_of_the_wrong_type(name: str) -> None:
    spec = BY_NAME[name]
    res = spec.call()
    if not hasattr(res, "plot"):
        pytest.skip(f"{name} results have no plot()")
    with pytest.raises(didx.InvalidOptionError, match=r"'ax' parameter .*Got 'x' instead"):
        res.plot(ax="x")


WITH_VCOV_KNOWN: dict[tuple[str, str], str] = {}


def _with_vcov_params() -> Iterator[Any]:
    for spec in SPECS:
        for case in ("one_cluster_values", "one_cluster_column", "ssc_bogus", "vcov_int"):
            marks = []
            if (spec.name, case) in WITH_VCOV_KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=WITH_VCOV_KNOWN[(spec.name, case)]))
            yield pytest.param(spec.name, case, id=f"{spec.name}-{case}", marks=marks)


@pytest.mark.parametrize(("name", "case"), list(_with_vcov_params()))
def test_with_vcov_bad_input(name: str, case: str) -> None:
    """with_vcov on a returned result: a single cluster, a bad ssc= or vcov= is a DidxError naming it."""
    spec = BY_NAME[name]
    res = spec.call()
    if not hasattr(res, "with_vcov"):
        pytest.skip(f"{name} results have no with_vcov()")
    one = spec.data.assign(one=1)
    kwargs: dict[str, Any] = {
        "one_cluster_values": {"cluster": pd.Series(np.ones(len(one)), name="one")},
        "one_cluster_column": {"cluster": "one", "data": one},
        "ssc_bogus": {"ssc": "bogus"},
        "vcov_int": {"vcov": 5},
    }[case]
    mentions = {"one_cluster_values": r"cluster", "one_cluster_column": r"'one'|data=|cluster",
                "ssc_bogus": r"ssc", "vcov_int": r"vcov"}[case] + "|cannot recompute its covariance"
    try:
        new = res.with_vcov(**kwargs)
    except didx.DidxError as exc:
        assert re.search(mentions, str(exc)), f"{name}: the message does not name the problem: {exc}"
        return
    pytest.fail(f"{name}: with_vcov({kwargs}) returned a result (SE {getattr(new, 'std_error', None)})")
