"""Every event-study estimator on the same data, with the same ``ref`` and ``window``: ``didx.event_study(...,
estimator=[...] | "all")``.

:func:`event_study` is the public ``didx.event_study``: the TWFE event study by default
(:mod:`didx.estimators.regression.event_study`), or any estimator of the registry (:mod:`didx.registry`) that has a
``comparison`` key, or several of them. The common arguments (``y, unit, time, cohort, ref, window, covariates,
cluster, weights``) are mapped onto each estimator's own signature; an option an estimator cannot honour raises
:class:`~didx.InvalidOptionError` naming the estimator (nothing is silently ignored), and the mapping is printed by
:meth:`EventStudyComparison.summary`.

The user's data are read once: the columns every estimator needs (and those named in ``options``). Every estimator
with a panel-level entry (``EstimatorSpec.from_panel``: TWFE, Sun-Abraham, BJS, did2s, stacked) gets the panel
built once from them (a column only one of them names, e.g. a fixed effect in ``options``, is added to its copy from
the columns read); dCDH, which cannot use ``build_panel``, and Callaway-Sant'Anna, until it has an entry, get a
pandas frame of the columns read.

Event time is ``k = time - cohort`` in the units of the time column for every estimator (dCDH's ``Effect_l`` is
placed at ``l - 1`` and ``Placebo_l`` at ``-(l + 1)``). The estimators agree on what a post-period coefficient
estimates under their assumptions, but **not on what a pre-period coefficient is** (see :data:`PRE_PERIOD`; every
result carries its text as ``pre_period_meaning``):

* TWFE and Sun-Abraham: a lead ``b_k`` is relative to the reference period ``ref`` (normalised to 0), all leads
  and lags estimated jointly in one regression.
* Callaway-Sant'Anna, universal base (the default here): ``ATT(g, g + k)`` against the base period ``g - 1``
  (= ``ref``); varying base: short gaps, period ``t`` against ``t - 1``.
* BJS imputation: the leads of BJS's pre-trend test, estimated on untreated observations only (a test of a
  different null: no reference period is normalised).
* Gardner's did2s: leads in the second stage, the mean first-stage residual at that lead.
* dCDH: placebos are long differences ``Y_{F-1-l} - Y_{F-1}`` from the period before the switch.
* Stacked: relative to the reference period -1 within each sub-experiment.

References: Roth (2024), "Interpreting event-studies from recent difference-in-differences methods" (why the
pre-period coefficients of these estimators differ); the references of each estimator's module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from didx._errors import InvalidOptionError
from didx._validate import as_list, did_you_mean
from didx.comparison_runners import (
    _MAPPED,
    _RUNNERS,
    DID2S_EVENT_STUDY,
    SPECS,
    _Common,
    _Inputs,
    _shown,
)
from didx.estimators.regression.event_study import (
    EventStudyRegressionResult,
    check_ref,
    check_window,
)
from didx.inference.vcov import SSC
from didx.registry import PRE_PERIOD, EstimatorSpec
from didx.results.comparison import EventStudyComparison
from didx.results.event import EventStudyResult

__all__ = ["DID2S_EVENT_STUDY", "ESTIMATORS", "LABELS", "PRE_PERIOD", "SPECS", "WINDOW_RULE", "EventStudyComparison",
           "event_study"]


NEEDS_COLUMNS: dict[str, tuple[str, ...]] = {"ddd": ("partition",)}
"""Estimators that need a column besides the common ones (given in ``options``); ``"all"`` leaves them out."""

ESTIMATORS: tuple[str, ...] = tuple(n for n in SPECS if n not in NEEDS_COLUMNS)
"""The estimators of ``estimator="all"``: those that run on the common columns."""

LABELS: dict[str, str] = {name: spec.label for name, spec in SPECS.items()}

WINDOW_RULE: dict[str, str] = {
    "twfe": "treated-unit observations outside the window dropped before the regression (trimmed event study)",
    "sun_abraham": "treated-unit observations outside the window dropped before the regression (as TWFE)",
    "callaway_santanna": "ATT(g,t) on all periods; the dynamic aggregation keeps event times in the window "
                         "(min_e, max_e)",
    "imputation": "horizons in [0, hi] and BJS leads in [lo, -1]; all untreated observations in the first stage",
    "did2s": "second-stage dummies for event times in the window (did2s window=); the first stage uses all "
             "untreated observations",
    "dcdh": "effects = hi + 1 (Effect_l at l - 1) and placebos = -lo - 1 (Placebo_l at -(l + 1)), at most the "
            "number of effects",
    "stacked": "the sub-experiment window (cohorts whose window is not fully observed are dropped)",
    "ddd": "ATT(g,t) on all periods; the dynamic aggregation keeps event times in the window (min_e, max_e)",
    "etwfe": "the saturated regression on all periods; the event-time averages (R emfx type='event') kept in the "
             "window",
    "lpdid": "pre_window = -lo, post_window = hi: one regression per event time in the window (all by default)",
}




@overload
def event_study(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    window: tuple[float, float] | None = None,
    bin_endpoints: bool = False,
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    collapse: str | None = None,
    estimator: Literal["twfe"] = "twfe",
    options: None = None,
) -> EventStudyRegressionResult: ...


@overload
def event_study(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    window: tuple[float, float] | None = None,
    bin_endpoints: bool = False,
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    collapse: str | None = None,
    estimator: str | Sequence[str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> EventStudyResult | EventStudyComparison: ...


def event_study(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    cohort: str,
    ref: float | Sequence[float] = -1,
    window: tuple[float, float] | None = None,
    bin_endpoints: bool = False,
    covariates: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    collapse: str | None = None,
    estimator: str | Sequence[str] = "twfe",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> EventStudyResult | EventStudyComparison:
    """TWFE event study: dynamic effects relative to a reference period -- or any other event-study estimator, or
    several side by side, with the same ``ref`` and ``window``.

    ``y_it = a_i + l_t + sum_{k not in ref} b_k 1[t - g_i = k] + W_it' c + e_it``.

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...).
    y, unit, time : outcome, unit and period columns. Event time is ``k = time - cohort`` in the units of
        ``time`` (for a date-like ``time``, in positions of the sorted periods).
    cohort : first treated period of each unit; never treated as 0, NaN, inf or any value after the last
        period (fixest's 10000 convention works). A single-date design is a cohort column equal to the
        treatment date for treated units and never-treated otherwise.
    ref : reference event time(s), normalised to 0. Default -1; ``ref=-2`` allows one period of anticipation;
        a list (``[-1, -5]``) normalises several, which identifies the model without never-treated units.
    window : ``(lo, hi)``: estimate ``b_lo .. b_hi``. Observations of treated units outside it are dropped and
        reported (a trimmed event study), unless ``bin_endpoints``.
    bin_endpoints : with ``window``, keep every observation and bin event times beyond the window into the end
        points: ``b_lo`` is the effect at ``k <= lo`` and ``b_hi`` at ``k >= hi``.
    covariates : time-varying controls (their terms have no event time).
    vcov, cluster, ssc : covariance (see :func:`didx.twfe`). Default CR1 clustered by ``unit`` (fixest).
    weights : sampling weights (weighted least squares).
    collapse : ``"group_period"`` (or ``"group_period_weighted"``, cells weighted by size): estimate on
        group x period cell means, the groups being ``cluster`` if given, else the cohorts (Bertrand, Duflo &
        Mullainathan 2004). The remedy when treatment varies at the level of few groups.
    estimator : ``"twfe"`` (default: this regression), or another event-study estimator run with the same
        ``ref`` and ``window`` -- ``"sun_abraham"``, ``"callaway_santanna"`` (universal base period, never-treated
        controls, dynamic aggregation), ``"imputation"`` (BJS), ``"did2s"`` (Gardner), ``"dcdh"``
        (de Chaisemartin-D'Haultfoeuille, treatment ``1[time >= cohort]``), ``"stacked"`` (needs ``window``) --
        or a list of them, or ``"all"``. An option an estimator cannot honour raises (e.g. ``ref=-2`` for dcdh,
        ``covariates`` for stacked). See :mod:`didx.comparison` for the mapping and for how the
        estimators' pre-period coefficients differ.
    options : per-estimator keyword arguments passed on (and overriding the mapped ones), e.g.
        ``{"callaway_santanna": {"base_period": "varying", "control_group": "not_yet"},
        "stacked": {"window": (-2, 1)}}``.

    Returns
    -------
    EventStudyRegressionResult (``estimator="twfe"``) : terms ``"event_time::k"`` (``term_info["event_time"]``
        = k; NaN for covariates) and the covariates; ``.estimate`` is ``b_0``. ``.pretrend_test()``,
        ``.plot()``, ``.event_table()``, ``.with_vcov()``.
    EventStudyResult (another single estimator) : that estimator's event study.
    EventStudyComparison (a list or ``"all"``) : ``.tidy()`` (one table: estimator, term, event_time, estimate,
        std_error, conf_low, conf_high, reference), ``.plot()`` (overlaid), ``.results``, ``.summary()``.
    Every event-study result carries ``pre_period_meaning`` (what its leads are).
    """
    func = "event_study"
    refs = check_ref(func, ref)
    win = check_window(func, window, refs)
    if isinstance(estimator, str) and estimator == "twfe" and options is None:
        twfe: EventStudyRegressionResult = SPECS["twfe"].load()(
            data, y=y, unit=unit, time=time, cohort=cohort, ref=list(refs), window=win, bin_endpoints=bin_endpoints,
            covariates=covariates, vcov=vcov, cluster=cluster, weights=weights, ssc=ssc, collapse=collapse)
        return twfe
    names = parse_estimators(func, estimator)
    return compare_event_studies(
        data, names=names, single=isinstance(estimator, str) and estimator != "all", y=y, unit=unit, time=time,
        cohort=cohort, refs=refs, window=win, bin_endpoints=bin_endpoints, covariates=covariates, vcov=vcov,
        cluster=cluster, weights=weights, ssc=ssc, collapse=collapse, options=options)


def parse_estimators(func: str, estimator: str | Sequence[str]) -> list[str]:
    """The estimator names requested (``"all"`` = every one), validated."""
    names = list(ESTIMATORS) if estimator == "all" else ([estimator] if isinstance(estimator, str)
                                                         else list(estimator))
    if not names:
        raise InvalidOptionError(f"{func}: estimator= got an empty list. Fix: e.g. estimator=['twfe', 'dcdh'].")
    for n in names:
        if not isinstance(n, str) or n not in SPECS:
            hint = did_you_mean(str(n), tuple(SPECS)) if isinstance(n, str) else ""
            raise InvalidOptionError(
                f"The 'estimator' parameter of {func} must be one of {{{', '.join(map(repr, SPECS))}}}, "
                f"'all', or a list of them. Got {n!r} instead.{hint}"
            )
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"{func}: estimator={names!r} repeats a name. Fix: list each estimator once.")
    return names


def compare_event_studies(
    data: Any, *, names: Sequence[str], single: bool, y: str, unit: str, time: str, cohort: str,
    refs: tuple[float, ...], window: tuple[float, float] | None, bin_endpoints: bool,
    covariates: str | Sequence[str] | None, vcov: str | None, cluster: str | Sequence[str] | None,
    weights: str | None, ssc: SSC | None, collapse: str | None,
    options: Mapping[str, Mapping[str, Any]] | None,
) -> EventStudyResult | EventStudyComparison:
    """Run the estimators ``names`` (the engine of ``event_study(estimator=...)``)."""
    func = "event_study"
    opts = _check_options(func, names, options)
    if "twfe" not in names or len(names) > 1 or single:
        others = [n for n in names if n != "twfe"]
        for flag, value, fix in (("bin_endpoints", bin_endpoints, False), ("collapse", collapse, None)):
            if value not in (fix, None) and others:
                raise InvalidOptionError(
                    f"{func}: {flag}={value!r} is a TWFE option that {', '.join(others)} cannot honour. Fix: drop "
                    f"{flag}=, or run estimator='twfe' alone."
                )
    common = _Common(y=y, unit=unit, time=time, cohort=cohort, refs=refs, window=window,
                     covariates=as_list(covariates), cluster=as_list(cluster), weights=weights, vcov=vcov, ssc=ssc)
    inputs = _Inputs.read(data, common, opts)
    results: dict[str, EventStudyResult] = {}
    calls: dict[str, dict[str, Any]] = {}
    notes: dict[str, tuple[str, ...]] = {}
    for name in names:
        res, call, note = _RUNNERS[name](inputs, dict(opts.get(name, {})), bin_endpoints, collapse)
        overridden = sorted(set(opts.get(name, {})) & set(_MAPPED[name]))
        if overridden:
            note = (*note, f"options overrode the common mapping of {', '.join(overridden)}")
        results[name] = _with_pre_period(res, SPECS[name], call)
        calls[name], notes[name] = _shown(call), note
    if single:
        return results[names[0]]
    return EventStudyComparison(results=results, calls=calls, notes=notes, reference=refs, window=window,
                                outcome=y, labels={n: LABELS[n] for n in results},
                                window_rules={n: WINDOW_RULE[n] for n in results})


def _check_options(func: str, names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
                   ) -> dict[str, Mapping[str, Any]]:
    opts = dict(options or {})
    for key, val in opts.items():
        if key not in names:
            raise InvalidOptionError(
                f"{func}: options has an entry for {key!r}, which is not among the estimators run ({names}). "
                f"Fix: key options by estimator name, e.g. options={{'callaway_santanna': "
                f"{{'base_period': 'varying'}}}}."
            )
        if not isinstance(val, Mapping):
            raise InvalidOptionError(f"{func}: options[{key!r}] must be a dict of keyword arguments; got {val!r}.")
    return opts


def _with_pre_period(res: EventStudyResult, spec: EstimatorSpec, call: Mapping[str, Any]) -> EventStudyResult:
    """The result with its ``pre_period_meaning`` (from :data:`PRE_PERIOD` when the estimator did not set it)."""
    if res.pre_period_meaning:
        return res
    key = spec.pre_period_key(call)
    return res if key is None else dataclasses.replace(res, pre_period_meaning=PRE_PERIOD[key])
