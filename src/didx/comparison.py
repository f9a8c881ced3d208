"""Every event-study estimator on the same data, with the same ``ref`` and ``window``: ``didx.event_study(...,
estimator=[...] | "all")``.

The common arguments (``y, unit, time, cohort, ref, window, covariates, cluster, weights``) are mapped onto each
estimator's own signature; an option an estimator cannot honour raises :class:`~didx.InvalidOptionError` naming
the estimator (nothing is silently ignored), and the mapping is printed by
:meth:`EventStudyComparison.summary`.

Event time is ``k = time - cohort`` in the units of the time column for every estimator (dCDH's ``Effect_l`` is
placed at ``l - 1`` and ``Placebo_l`` at ``-(l + 1)``). The estimators agree on what a post-period coefficient
estimates under their assumptions, but **not on what a pre-period coefficient is** (see :data:`PRE_PERIOD`):

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError, InvalidOptionError
from didx._frame import numeric_column, read_columns
from didx._sample import Dropped
from didx._validate import as_list, did_you_mean
from didx.inference.vcov import SSC
from didx.results.base import Summary
from didx.results.event import EventStudyResult

ESTIMATORS: tuple[str, ...] = ("twfe", "sun_abraham", "callaway_santanna", "imputation", "did2s", "dcdh",
                               "stacked")

LABELS: dict[str, str] = {
    "twfe": "TWFE",
    "sun_abraham": "Sun-Abraham",
    "callaway_santanna": "Callaway-Sant'Anna",
    "imputation": "BJS imputation",
    "did2s": "Gardner two-stage",
    "dcdh": "de Chaisemartin-D'Haultfoeuille",
    "stacked": "Stacked (WFH weights)",
}

#: How each estimator defines its pre-period (lead) coefficients.
PRE_PERIOD: dict[str, str] = {
    "twfe": (
        "b_k relative to the reference period(s) ref (normalised to 0); all leads and lags are estimated jointly "
        "in one regression with unit and time effects, never-treated and not-yet-treated observations as "
        "implicit controls. Under heterogeneous effects a lead can be contaminated by other relative periods "
        "(Sun & Abraham 2021)."
    ),
    "sun_abraham": (
        "b_k relative to the reference period(s) ref (normalised to 0), estimated jointly in the saturated cohort "
        "x relative-period regression against the never-treated (or last-treated) cohort, then averaged with "
        "cohort shares: not contaminated by other relative periods."
    ),
    "callaway_santanna_universal": (
        "universal base period: ATT(g, g+k) compares period g+k with the base g-1 (= ref; g-1-anticipation), "
        "for leads and lags alike, then averaged over cohorts by event time. Same reference as TWFE/Sun-Abraham."
    ),
    "callaway_santanna_varying": (
        "varying base period: a lead ATT(g, t), t < g, is a short gap comparing t with t-1 (a one-period "
        "placebo), NOT with g-1; event time -1 is estimated, not normalised. Lags use the base g-1."
    ),
    "imputation": (
        "BJS pre-trend test: the leads are the coefficients of lead dummies added to the unit + time model "
        "fitted on untreated observations only; they compare untreated observations k periods before treatment "
        "with the untreated observations further away (and the never treated). No reference period is "
        "normalised and the post-period effects do not depend on them: a test of a different null than the "
        "event-study leads (parallel trends of the untreated outcomes, used for imputation)."
    ),
    "did2s": (
        "leads in the second stage: the residualised outcome (Y minus the untreated-only unit + time fit) is "
        "regressed on lead and lag dummies, so a lead is the average first-stage residual of the untreated "
        "observations k periods before treatment; ref only removes those rows' dummy (they are not a base that "
        "the other leads are differenced from)."
    ),
    "dcdh": (
        "placebos are long differences from the period before the switch: Placebo_l compares "
        "Y_{F-1-l} - Y_{F-1} of the switchers with that of not-yet-switched groups with the same baseline "
        "treatment, plotted at event time -(l+1); the period before the switch (-1) is the fixed base."
    ),
    "stacked": (
        "delta_k relative to the reference period -1 within each sub-experiment (a cohort and its clean controls "
        "observed over the whole window), averaged with the cohorts' treated shares (WFH corrective weights)."
    ),
}

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
}


@dataclass(frozen=True, eq=False)
class EventStudyComparison:
    """Several event-study estimators fitted to the same data with the same ``ref`` and ``window``.

    Attributes
    ----------
    results : estimator name -> its :class:`~didx.results.event.EventStudyResult`.
    calls : estimator name -> the keyword arguments it was called with (besides the data).
    notes : estimator name -> notes on how the common options were applied.
    reference, window : the common ``ref`` (tuple) and ``window``.
    """

    results: Mapping[str, EventStudyResult]
    calls: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reference: tuple[float, ...] = (-1.0,)
    window: tuple[float, float] | None = None
    outcome: str = ""

    def __getitem__(self, name: str) -> EventStudyResult:
        return self.results[name]

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One table, one row per estimator and event time: ``estimator, term, event_time, estimate, std_error,
        conf_low, conf_high`` and ``reference`` (True for a reference period, normalised to 0, not estimated).

        Terms without an event time (overall ATTs, covariates) are left out; read them from ``.results``.
        """
        frames = []
        for name, res in self.results.items():
            t = res.event_table(conf_level)
            refs = set(res.reference_periods)
            is_ref = ~t["term"].isin(res.terms).to_numpy() & t["event_time"].astype(float).isin(refs).to_numpy()
            frames.append(pd.DataFrame({
                "estimator": name, "term": t["term"].to_numpy(), "event_time": t["event_time"].to_numpy(float),
                "estimate": t["estimate"].to_numpy(float), "std_error": t["std_error"].to_numpy(float),
                "conf_low": t["conf_low"].to_numpy(float), "conf_high": t["conf_high"].to_numpy(float),
                "reference": is_ref,
            }))
        return pd.concat(frames, ignore_index=True)

    def wide(self, column: str = "estimate") -> pd.DataFrame:
        """``column`` of :meth:`tidy` as an event time x estimator table."""
        t = self.tidy()
        return t.pivot(index="event_time", columns="estimator", values=column)[list(self.results)]

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """All event studies on one Axes (:func:`didx.plot_event_studies`: each estimator shifted by a small
        dodge, hollow points at its reference periods); keyword arguments go to it (``conf_level``, ``uniform``,
        ``dodge``, ``title``, ``labels``). With more than three estimators the legend goes below the Axes, in
        columns. Returns the Axes."""
        from didx.results.plot import plot_event_studies

        kwargs.setdefault("labels", [LABELS[n] for n in self.results])
        ax = plot_event_studies(list(self.results.values()), ax=ax, **kwargs)
        if self.outcome:
            ax.set_ylabel(f"Effect on {self.outcome}")
        if len(self.results) > 3:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize="small", frameon=False)
        return ax

    def summary(self, digits: int = 4) -> Summary:
        """The common options, then per estimator: the call, how ``window`` was applied, how its pre-period
        coefficients are defined, its sample and SEs, the pre-trend test; then the estimates side by side."""
        ref = ", ".join(f"{r:g}" for r in self.reference)
        win = "all event times" if self.window is None else f"[{self.window[0]:g}, {self.window[1]:g}]"
        lines = [f"Event-study comparison: {len(self.results)} estimators"
                 + (f" (outcome {self.outcome})" if self.outcome else ""),
                 f"Reference period(s): k = {ref}    Window: {win}",
                 "Event time k = time - cohort for every estimator. Post-period coefficients estimate the same "
                 "kind of effect; pre-period coefficients are defined differently:", ""]
        for name, res in self.results.items():
            lines.append(f"[{name}] {res.estimator}")
            call = ", ".join(f"{k}={v!r}" for k, v in self.calls.get(name, {}).items())
            lines.append(f"  call: {call}")
            lines.append(f"  pre-period coefficients: {_pre_period_text(name, self.calls.get(name, {}))}")
            lines.append(f"  window: {WINDOW_RULE[name]}")
            lines.append(f"  sample: {res.sample.n_obs} observations; SEs: {res.inference.vcov_type}")
            if res.sample.dropped:
                lines.extend(f"  dropped: {d.describe()}" for d in res.sample.dropped)
            lines.extend(f"  note: {n}" for n in self.notes.get(name, ()))
            if res.pretrend_terms():
                lines.append(f"  {res.pretrend_test()}")
            lines.append("")
        est = self.wide("estimate")
        se = self.wide("std_error")
        header = ["event time", *est.columns]
        rows = []
        for k in est.index:
            rows.append([f"{k:g}", *(_fmt(v, digits) for v in est.loc[k])])
            rows.append(["", *(f"({_fmt(v, digits)})" if np.isfinite(v) else "" for v in se.loc[k])])
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines.append("Estimates (standard errors); reference periods shown as 0 (0):")
        lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        lines.extend("  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
        return Summary("\n".join(lines))

    def __repr__(self) -> str:
        return f"EventStudyComparison({', '.join(self.results)})"


def _fmt(v: float, digits: int) -> str:
    return "" if not np.isfinite(v) else f"{v:.{digits}f}"


def _pre_period_text(name: str, call: Mapping[str, Any]) -> str:
    if name == "callaway_santanna":
        return PRE_PERIOD[f"callaway_santanna_{call.get('base_period', 'universal')}"]
    return PRE_PERIOD[name]


def parse_estimators(func: str, estimator: str | Sequence[str]) -> list[str]:
    """The estimator names requested (``"all"`` = every one), validated."""
    names = list(ESTIMATORS) if estimator == "all" else ([estimator] if isinstance(estimator, str)
                                                         else list(estimator))
    if not names:
        raise InvalidOptionError(f"{func}: estimator= got an empty list. Fix: e.g. estimator=['twfe', 'dcdh'].")
    for n in names:
        if not isinstance(n, str) or n not in ESTIMATORS:
            hint = did_you_mean(str(n), ESTIMATORS) if isinstance(n, str) else ""
            raise InvalidOptionError(
                f"The 'estimator' parameter of {func} must be one of {{{', '.join(map(repr, ESTIMATORS))}}}, "
                f"'all', or a list of them. Got {n!r} instead.{hint}"
            )
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"{func}: estimator={names!r} repeats a name. Fix: list each estimator once.")
    return names


@dataclass(frozen=True)
class _Common:
    y: str
    unit: str
    time: str
    cohort: str
    refs: tuple[float, ...]
    window: tuple[float, float] | None
    covariates: list[str]
    cluster: list[str]
    weights: str | None
    vcov: str | None
    ssc: SSC | None


def compare_event_studies(
    data: Any, *, names: Sequence[str], single: bool, y: str, unit: str, time: str, cohort: str,
    refs: tuple[float, ...], window: tuple[float, float] | None, bin_endpoints: bool,
    covariates: str | Sequence[str] | None, vcov: str | None, cluster: str | Sequence[str] | None,
    weights: str | None, ssc: SSC | None, collapse: str | None,
    options: Mapping[str, Mapping[str, Any]] | None,
) -> EventStudyResult | EventStudyComparison:
    """Run the estimators ``names`` (the engine of ``event_study(estimator=...)``)."""
    func = "event_study"
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
    frame, info = _read(data, common)
    results: dict[str, EventStudyResult] = {}
    calls: dict[str, dict[str, Any]] = {}
    notes: dict[str, tuple[str, ...]] = {}
    for name in names:
        res, call, note = _RUNNERS[name](data, frame, info, common, dict(opts.get(name, {})), bin_endpoints,
                                          collapse)
        overridden = sorted(set(opts.get(name, {})) & set(_MAPPED[name]))
        if overridden:
            note = (*note, f"options overrode the common mapping of {', '.join(overridden)}")
        results[name], calls[name], notes[name] = res, call, note
    if single:
        return results[names[0]]
    return EventStudyComparison(results=results, calls=calls, notes=notes, reference=refs, window=window,
                                outcome=y)


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class _Info:
    treated_row: np.ndarray  # unit treated at some point within the data (finite cohort <= last period)
    event_time: np.ndarray  # time - cohort on treated rows, NaN elsewhere
    periods: np.ndarray


def _read(data: Any, c: _Common) -> tuple[pd.DataFrame, _Info]:
    """The columns every estimator needs, as a pandas frame (numeric time and cohort), and the event times."""
    func = "event_study"
    cols = [c.y, c.unit, c.time, c.cohort, *c.covariates, *c.cluster, *([c.weights] if c.weights else [])]
    roles = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "covariates": c.covariates,
             "cluster": c.cluster, "weights": c.weights}
    got = read_columns(data, list(dict.fromkeys(cols)), func, {k: v for k, v in roles.items() if v})
    fix = "Fix: comparing estimators needs a numeric period (e.g. the year); convert dates to period numbers."
    t = numeric_column(got, c.time, "time", func, fix)
    g = numeric_column(got, c.cohort, "cohort", func, "Fix: code the cohort as the first treated period.")
    frame = pd.DataFrame({k: got.arrays[k] for k in dict.fromkeys(cols)})
    periods = np.unique(t[np.isfinite(t)])
    last = periods[-1] if periods.size else np.inf
    treated_row = np.isfinite(g) & (g != 0) & (g <= last)
    k = np.where(treated_row, t - np.where(treated_row, g, 0.0), np.nan)
    return frame, _Info(treated_row=treated_row, event_time=k, periods=periods)


def _need_single(name: str, what: str, values: list[str]) -> str | None:
    if len(values) > 1:
        raise InvalidOptionError(
            f"event_study: estimator={name!r} takes a single {what} column; got {values}. Fix: pass one column "
            f"(multi-way clustering is available for twfe, sun_abraham and stacked)."
        )
    return values[0] if values else None


def _refuse(name: str, option: str, value: Any, why: str, fix: str | None = None) -> None:
    raise InvalidOptionError(
        f"event_study: estimator={name!r} cannot honour {option}={value!r}: {why}. Fix: "
        f"{fix or f'drop {option}='} or leave {name!r} out of estimator=."
    )


def _ref_value(refs: tuple[float, ...]) -> Any:
    return f"{refs[0]:g}" if len(refs) == 1 else "[" + ", ".join(f"{r:g}" for r in refs) + "]"


def _only_ref_minus_one(name: str, c: _Common, why: str) -> None:
    if c.refs != (-1.0,):
        raise InvalidOptionError(
            f"event_study: estimator={name!r} cannot honour ref={_ref_value(c.refs)}: {why}. Fix: use ref=-1 "
            f"(the default) or leave {name!r} out of estimator=."
        )


def _no_vcov(name: str, c: _Common) -> None:
    if c.vcov is not None:
        _refuse(name, "vcov", c.vcov, "its variance is its own (clustered by unit, or by cluster=)")
    if c.ssc is not None:
        _refuse(name, "ssc", c.ssc, "its variance has no fixest small-sample options")


# ------------------------------------------------------------------ runners
def _run_twfe(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any], bin_endpoints: bool,
              collapse: str | None) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.regression.event_study import event_study

    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort,
                            "ref": list(c.refs) if len(c.refs) > 1 else c.refs[0], "window": c.window,
                            "bin_endpoints": bin_endpoints, "covariates": c.covariates or None,
                            "vcov": c.vcov, "cluster": c.cluster or None, "weights": c.weights, "ssc": c.ssc,
                            "collapse": collapse}
    call = {**call, **extra}
    res = event_study(data, **call)
    return res, _shown(call), ()


def _run_sun_abraham(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any],
                     bin_endpoints: bool, collapse: str | None
                     ) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.sun_abraham.estimator import sun_abraham

    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort,
                            "ref": list(c.refs) if len(c.refs) > 1 else c.refs[0],
                            "covariates": c.covariates or None, "vcov": c.vcov, "cluster": c.cluster or None,
                            "weights": c.weights, "ssc": c.ssc}
    call = {**call, **extra}
    used, dropped = _trim(frame, info, c.window, c.unit)
    if dropped is not None:  # trim every column of the data, so with_vcov can recluster by any of them
        used, _ = _trim(_all_columns(data), info, c.window, c.unit)
    res = sun_abraham(used, **call)
    if dropped is not None:  # the trimmed rows are input rows too
        res = dataclasses.replace(res, sample=dataclasses.replace(
            res.sample.with_dropped(dropped), n_input_rows=res.sample.n_input_rows + dropped.n_rows))
    shown = _shown(call)
    if c.window is not None:
        shown["window"] = c.window
    return res, shown, ()


def _run_callaway_santanna(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any],
                           bin_endpoints: bool, collapse: str | None
                           ) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.cs.estimator import att_gt

    name = "callaway_santanna"
    _no_vcov(name, c)
    if len(c.refs) > 1:
        raise InvalidOptionError(
            f"event_study: estimator={name!r} cannot honour ref={_ref_value(c.refs)}: its base period is a single "
            f"period, g - 1 - anticipation. Fix: pass one reference period (ref=-1, or ref=-2 for one period of "
            f"anticipation) or leave {name!r} out of estimator=."
        )
    ref = c.refs[0]
    if ref != round(ref):
        _refuse(name, "ref", ref, "the reference must be an integer event time (-1 - anticipation)", "use ref=-1")
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "control": "never",
                            "base_period": "universal", "anticipation": int(-1 - ref),
                            "covariates": c.covariates or None,
                            "cluster": _need_single(name, "cluster", c.cluster), "weights": c.weights}
    agg_keys = {"min_e", "max_e", "balance_e"}
    agg = {k: extra.pop(k) for k in list(extra) if k in agg_keys}
    call = {**call, **extra}
    notes: list[str] = []
    if call["base_period"] == "varying":
        notes.append(f"base_period='varying': ref={ref:g} fixes only the anticipation ({call['anticipation']}); "
                     f"the leads are short gaps (t vs t-1), not relative to ref")
    res = att_gt(data, **call)
    if c.window is not None:
        agg.setdefault("min_e", c.window[0])
        agg.setdefault("max_e", c.window[1])
    dyn = res.aggregate("dynamic", **agg)
    if not isinstance(dyn, EventStudyResult):  # pragma: no cover - aggregate("dynamic") is an event study
        raise DesignError("att_gt(...).aggregate('dynamic') did not return an event study.")
    return dyn, {**_shown(call), **{f"aggregate.{k}": v for k, v in agg.items()}}, tuple(notes)


def _run_imputation(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any],
                    bin_endpoints: bool, collapse: str | None
                    ) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.imputation.bjs import imputation

    name = "imputation"
    _no_vcov(name, c)
    _only_ref_minus_one(name, c, "BJS imputation normalises no reference period (its leads are a separate test)")
    notes: list[str] = []
    # leads BJS can estimate: event times < 0 of untreated observations of treated units, minus the earliest
    k = info.event_time[info.treated_row]
    leads = np.unique(k[k < 0])
    lo, hi = (-np.inf, np.inf) if c.window is None else c.window
    want = leads[(leads >= lo) & (leads <= hi)]
    if want.size == leads.size and want.size:
        notes.append(f"earliest lead {want[0]:g} left out of the BJS pre-trend regression (all leads together "
                     f"are collinear with the unit effects)")
        want = want[1:]
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "horizons": True,
                            "pretrends": [int(v) for v in want] if want.size else None,
                            "covariates": c.covariates or None,
                            "cluster": _need_single(name, "cluster", c.cluster), "weights": c.weights}
    call = {**call, **extra}
    fitted = imputation(data, **call)
    if not isinstance(fitted, EventStudyResult):
        raise InvalidOptionError(
            f"event_study: estimator='imputation' needs an event study; options {extra!r} made it static. Fix: "
            f"do not override horizons/pretrends with None or False."
        )
    res: EventStudyResult = fitted if c.window is None else _restrict(fitted, c.window)
    return res, _shown(call), tuple(notes)


def _run_did2s(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any],
               bin_endpoints: bool, collapse: str | None
               ) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.imputation.did2s import did2s

    name = "did2s"
    _no_vcov(name, c)
    bad = [r for r in c.refs if r != round(r)]
    if bad:
        _refuse(name, "ref", bad[0], "its event times are integers", "use an integer ref")
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "second_stage": "event",
                            "ref": [int(r) for r in c.refs] if len(c.refs) > 1 else int(c.refs[0]),
                            "window": None if c.window is None else (int(np.ceil(c.window[0])),
                                                                     int(np.floor(c.window[1]))),
                            "first_stage_covariates": c.covariates or None,
                            "cluster": _need_single(name, "cluster", c.cluster), "weights": c.weights}
    call = {**call, **extra}
    res = did2s(data, **call)
    if not isinstance(res, EventStudyResult):
        raise InvalidOptionError("event_study: estimator='did2s' needs second_stage='event'; do not override it.")
    return res, _shown(call), ()


def _run_dcdh(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any],
              bin_endpoints: bool, collapse: str | None
              ) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.dcdh.estimator import dcdh

    name = "dcdh"
    _no_vcov(name, c)
    _only_ref_minus_one(name, c, "its base is always the period before the switch (event time -1)")
    if c.covariates:
        _refuse(name, "covariates", c.covariates, "dcdh does not support controls yet")
    notes: list[str] = []
    k = info.event_time[info.treated_row]
    k = k[np.isfinite(k)]
    max_effects = int(max(k.max(), 0.0)) + 1 if k.size else 1
    max_placebo = int(max(-k.min() - 1, 0.0)) if k.size else 0
    if c.window is None:
        effects, placebo = max_effects, max_placebo
    else:
        effects = int(np.floor(c.window[1])) + 1
        placebo = max(int(np.floor(-c.window[0])) - 1, 0)
    if placebo > effects:
        notes.append(f"placebos capped at the number of effects ({effects}; DIDmultiplegtDYN requires "
                     f"placebo <= effects): event times below {-(effects + 1)} are not estimated")
        placebo = effects
    treat_col = "__didx_treat__"
    # every column of the data (with_vcov(cluster=...) and options may name any of them) plus the treatment
    used = _all_columns(data).assign(**{treat_col: info.treated_row & (info.event_time >= 0)})
    used[treat_col] = used[treat_col].astype(np.int64)
    call: dict[str, Any] = {"y": c.y, "group": c.unit, "time": c.time, "treat": treat_col, "effects": effects,
                            "placebo": placebo, "cluster": _need_single(name, "cluster", c.cluster),
                            "weights": c.weights}
    call = {**call, **extra}
    res = dcdh(used, **call)
    notes.append(f"treatment built from the cohort: treat = 1[{c.time} >= {c.cohort}] (absorbing)")
    shown = _shown(call)
    shown["treat"] = f"1[{c.time} >= {c.cohort}]"
    return res, shown, tuple(notes)


def _run_stacked(data: Any, frame: pd.DataFrame, info: _Info, c: _Common, extra: dict[str, Any],
                 bin_endpoints: bool, collapse: str | None
                 ) -> tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]:
    from didx.estimators.regression.stacked import stacked

    name = "stacked"
    _only_ref_minus_one(name, c, "each sub-experiment is normalised at event time -1")
    if c.covariates:
        _refuse(name, "covariates", c.covariates, "the stacked regression has no covariates")
    if c.weights is not None:
        _refuse(name, "weights", c.weights, "its weights are the WFH corrective weights (no sampling weights)")
    window = extra.pop("window", c.window)
    if window is None:
        raise InvalidOptionError(
            "event_study: estimator='stacked' needs window=(lo, hi): every sub-experiment is observed over the "
            "same event times. Fix: pass window=, e.g. window=(-3, 3), or options={'stacked': {'window': "
            "(-2, 1)}} to give stacked its own (it keeps only cohorts whose whole window is in the data)."
        )
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "window": window,
                            "vcov": c.vcov, "cluster": c.cluster or None, "ssc": c.ssc}
    call = {**call, **extra}
    res = stacked(data, **call)
    return res, _shown(call), ()


_RUNNERS = {"twfe": _run_twfe, "sun_abraham": _run_sun_abraham, "callaway_santanna": _run_callaway_santanna,
            "imputation": _run_imputation, "did2s": _run_did2s, "dcdh": _run_dcdh, "stacked": _run_stacked}

# arguments each runner derives from the common ones (an override in options= is noted)
_MAPPED: dict[str, tuple[str, ...]] = {
    "twfe": ("ref", "window", "covariates", "cluster", "weights", "vcov", "ssc"),
    "sun_abraham": ("ref", "covariates", "cluster", "weights", "vcov", "ssc"),
    "callaway_santanna": ("anticipation", "covariates", "cluster", "weights", "min_e", "max_e"),
    "imputation": ("horizons", "pretrends", "covariates", "cluster", "weights"),
    "did2s": ("ref", "window", "first_stage_covariates", "cluster", "weights"),
    "dcdh": ("effects", "placebo", "cluster", "weights"),
    "stacked": ("window", "cluster", "vcov", "ssc"),
}


def _shown(call: Mapping[str, Any]) -> dict[str, Any]:
    """The call without its unset (None / False) arguments."""
    return {k: v for k, v in call.items() if v is not None and v is not False}


def _trim(frame: pd.DataFrame, info: _Info, window: tuple[float, float] | None, unit: str
          ) -> tuple[pd.DataFrame, Dropped | None]:
    """Drop treated-unit rows at event times outside ``window`` (TWFE's trimmed event study)."""
    if window is None:
        return frame, None
    lo, hi = window
    out = info.treated_row & ((info.event_time < lo) | (info.event_time > hi))
    if not out.any():
        return frame, None
    units = frame[unit].to_numpy()
    lost = int(np.setdiff1d(pd.unique(units[out]), pd.unique(units[~out])).shape[0])
    return (frame.loc[~out].reset_index(drop=True),
            Dropped(f"observations of treated units outside window [{lo:g}, {hi:g}]", int(out.sum()), lost))


def _all_columns(data: Any) -> pd.DataFrame:
    """Every column of ``data`` as a pandas frame (rows in the order :func:`_read` reads them)."""
    import narwhals as nw

    names = [str(n) for n in nw.from_native(data).collect_schema().names()]
    got = read_columns(data, names, "event_study", {})
    return pd.DataFrame({k: got.arrays[k] for k in dict.fromkeys(names)})


def _restrict(res: EventStudyResult, window: tuple[float, float]) -> EventStudyResult:
    """Keep the event-time terms inside ``window`` (and the terms without an event time)."""
    et = res.event_times
    keep = np.flatnonzero(~np.isfinite(et) | ((et >= window[0]) & (et <= window[1])))
    if keep.size == len(res.terms):
        return res
    terms = tuple(res.terms[i] for i in keep)
    if not any(np.isfinite(et[i]) for i in keep):
        raise DesignError(
            f"{res.estimator}: no event time is estimated inside window {window!r} (estimated: "
            f"{', '.join(f'{v:g}' for v in et[np.isfinite(et)])}). Fix: widen the window."
        )
    headline = res.headline if res.headline in terms else next(
        (t for t, e in zip(terms, et[keep], strict=True) if np.isfinite(e) and e >= 0), terms[0])
    return dataclasses.replace(
        res, terms=terms, coef=res.coef[keep], vcov_matrix=res.vcov_matrix[np.ix_(keep, keep)], headline=headline,
        term_info={k: np.asarray(v)[keep] for k, v in res.term_info.items()},
        _source=None if res._source is None else _SubsetSource(res._source, keep))


@dataclass(frozen=True, eq=False)
class _SubsetSource:
    """Recomputes the covariance of the terms ``keep`` of a result (``with_vcov`` after :func:`_restrict`)."""

    raw: Any
    keep: np.ndarray

    def recompute(self, func: str, vcov: str | None, cluster: str | Sequence[str] | None,
                  ssc: Any) -> tuple[np.ndarray, Any]:
        V, inf = self.raw.recompute(func, vcov, cluster, ssc)
        return V[np.ix_(self.keep, self.keep)], inf
