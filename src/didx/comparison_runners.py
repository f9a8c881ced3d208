"""How ``didx.event_study(estimator=...)`` runs each estimator (internal to :mod:`didx.comparison`).

The columns are read once (:class:`_Inputs`: the common columns plus any named in ``options``, and the panels
built from them); each estimator has a runner ``_run_<key>`` that maps the common arguments onto its own call,
refuses what it cannot honour (:func:`_refuse`, naming the estimator, the option and the fix), fits it through
its panel-level entry where it has one (:func:`_fit`) and returns its event study, the call shown in the summary and
notes. :data:`_RUNNERS` and :data:`_MAPPED` list them; :func:`didx.comparison.compare_event_studies` drives them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError, InvalidOptionError
from didx._frame import Columns, factorize, numeric_column, read_columns
from didx._panel import Panel, build_panel
from didx._sample import Dropped
from didx._validate import as_list, check_columns
from didx.estimators.regression.event_study import (
    subset_panel,
)
from didx.inference.contract import LinearMapSource
from didx.inference.vcov import SSC
from didx.registry import PANEL_ROLES, EstimatorSpec, PanelEntry, comparison_estimators
from didx.results.event import EventStudyResult

SPECS: dict[str, EstimatorSpec] = comparison_estimators()
"""The estimators of ``event_study(estimator=...)``, by their key there (from :mod:`didx.registry`)."""

# Values of other estimators' options the comparison sets (one line each to change when they are renamed).
DID2S_EVENT_STUDY = "event_study"  # did2s(second_stage=...) for an event study


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


# ------------------------------------------------------------------ data: read once
@dataclass(frozen=True)
class _Info:
    treated_row: np.ndarray  # unit treated at some point within the data (finite cohort <= last period)
    event_time: np.ndarray  # time - cohort on treated rows, NaN elsewhere
    periods: np.ndarray


@dataclass(eq=False)
class _Inputs:
    """The columns the comparison needs, read once from the user's data, and the panels built from them.

    ``cols`` holds the common columns and any column named in ``options`` (row i = row i of the data);
    ``frame()`` is a pandas view of them. Nothing reads the user's data again: the panel-level entries get a panel
    built from the view (:meth:`panel`), the other estimators the view itself.
    """

    cols: Columns
    info: _Info
    common: _Common
    _frame: pd.DataFrame | None = None
    _panels: dict[tuple[Any, ...], Panel] = field(default_factory=dict)

    @classmethod
    def read(cls, data: Any, c: _Common, opts: Mapping[str, Mapping[str, Any]]) -> _Inputs:
        func = "event_study"
        needed = [c.y, c.unit, c.time, c.cohort, *c.covariates, *c.cluster, *([c.weights] if c.weights else [])]
        roles = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "covariates": c.covariates,
                 "cluster": c.cluster, "weights": c.weights}
        named = _option_columns(opts)
        if named:
            present = set(_column_names(data))
            needed += [n for n in named if n in present]
        got = read_columns(data, list(dict.fromkeys(needed)), func, {k: v for k, v in roles.items() if v})
        fix = "Fix: comparing estimators needs a numeric period (e.g. the year); convert dates to period numbers."
        t = numeric_column(got, c.time, "time", func, fix)
        g = numeric_column(got, c.cohort, "cohort", func, "Fix: code the cohort as the first treated period.")
        periods = np.unique(t[np.isfinite(t)])
        last = periods[-1] if periods.size else np.inf
        treated_row = np.isfinite(g) & (g != 0) & (g <= last)
        k = np.where(treated_row, t - np.where(treated_row, g, 0.0), np.nan)
        return cls(cols=got, info=_Info(treated_row=treated_row, event_time=k, periods=periods), common=c)

    def frame(self) -> pd.DataFrame:
        """The columns read, as a pandas frame (row i = row i of the user's data; no copy of the arrays)."""
        if self._frame is None:
            self._frame = pd.DataFrame(self.cols.arrays, copy=False)
        return self._frame

    def panel(self, func: str, entry: PanelEntry, call: Mapping[str, Any]) -> Panel:
        """The panel for a call of ``entry``: the panel of its column roles and the common clusters it uses, built
        once from the columns read (and shared by every estimator with the same roles), with the codes of the
        other columns it names (``entry.codes``) added and the rows where they are missing dropped and counted,
        then checked as the estimator's own ``build_panel(require_control=...)`` would."""
        roles = tuple((r, _column_value(r, call.get(r))) for r in PANEL_ROLES)
        named = [(arg, col) for arg in entry.codes for col in as_list(call.get(arg))]
        clusters = tuple(col for col in self.common.cluster if any(col == n for _, n in named))
        key = (roles, clusters)
        panel = self._panels.get(key)
        if panel is None:
            r = dict(roles)
            panel = build_panel(self.frame(), func="event_study", y=r["y"], unit=r["unit"], time=r["time"],
                                cohort=r["cohort"], covariates=r["covariates"], weights=r["weights"],
                                cluster=list(clusters), require_control="none")
            self._panels[key] = panel
        panel = self._with_codes(func, panel, named)
        if "cluster" in entry.roles:  # a role of the panel (names["cluster"]), not an option
            panel = dataclasses.replace(panel, names={**panel.names, "cluster": tuple(as_list(call.get("cluster")))})
        _require_control(func, panel, entry.require_control)
        return panel

    def _with_codes(self, func: str, panel: Panel, named: Sequence[tuple[str, str]]) -> Panel:
        """``panel`` with the codes of the columns ``named`` (argument, column) it lacks, from the columns read;
        rows where one is missing are dropped and reported, in order, as ``build_panel`` reports them."""
        have = {*panel.codes, panel.names.get("unit"), panel.names.get("time")}
        missing = [(arg, col) for arg, col in dict.fromkeys(named) if col not in have]
        check_columns(func, dict(missing), self.cols.names)
        for arg, col in missing:
            codes = factorize(self.cols.arrays[col][panel.row_index], sort=False)[0]
            panel = dataclasses.replace(panel, codes={**panel.codes, col: codes})
            if (codes < 0).any():
                what = "cluster" if arg == "cluster" else "fixed effect"
                report = panel.report.with_dropped(_dropped(codes >= 0, panel.unit, f"missing {what} ({col})"))
                panel = subset_panel(panel, codes >= 0, report)
        return panel


def _column_value(role: str, value: Any) -> Any:
    """A column role of a call, normalised: a name, or for the covariates a tuple of names (None for none)."""
    if role == "covariates" and isinstance(value, str | list | tuple):
        return tuple(as_list(value)) or None
    return value


def _require_control(func: str, panel: Panel, require: str) -> None:
    """The design check of ``build_panel(require_control=require)`` on a panel built without it."""
    cohort = panel.names.get("cohort")
    if require == "never" and panel.cohort is not None and np.isfinite(panel.cohort).all():
        raise DesignError(
            f"{func}: no control units: every unit has a treatment date in {cohort!r}, and this estimator "
            f"compares with never-treated units. Fix: use a not-yet-treated control group if the estimator "
            f"offers one, or add never-treated units."
        )
    if require != "none" and panel.treat is not None and not (panel.treat == 0).any():
        raise DesignError(
            f"{func}: no control observations: every row is treated in {cohort!r}. Fix: include untreated "
            f"units or periods."
        )


def _option_columns(opts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Strings (or lists of strings) among the options' values: possibly column names."""
    out: list[str] = []
    for per in opts.values():
        for v in per.values():
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
                out.extend(v)
    return out


def _column_names(data: Any) -> list[str]:
    """The column names of any frame (without reading it)."""
    if isinstance(data, pd.DataFrame):
        return [str(n) for n in data.columns]
    import narwhals as nw

    try:
        return [str(n) for n in nw.from_native(data).collect_schema().names()]
    except TypeError:  # not a frame: read_columns reports it
        return []


# ------------------------------------------------------------------ calling an estimator
@dataclass(frozen=True)
class _Rows:
    """A subset of the data's rows to fit on: ``keep`` (a boolean mask over them) and why the others go."""

    keep: np.ndarray
    reason: str


def _fit(inputs: _Inputs, spec: EstimatorSpec, call: Mapping[str, Any], *, rows: _Rows | None = None,
         data: pd.DataFrame | None = None) -> Any:
    """Call estimator ``spec`` with ``call`` (its keyword arguments besides the data).

    Through its panel-level entry when it has one (:meth:`_Inputs.panel`: the panel built once from the columns
    read); with ``rows``, on those rows of the panel only, the others reported as dropped (the result's cluster
    codes still map to the rows of the user's data, so ``with_vcov(cluster=df[col])`` and ``with_vcov(cluster=col,
    data=df)`` work). An estimator without one (dCDH, which cannot use ``build_panel``: it keeps rows with a
    missing outcome and takes a non-binary treatment; Callaway-Sant'Anna until it has an entry) is called with
    ``data``, by default the columns read as a pandas frame: it validates them itself, and the user's data are
    not read again.
    """
    entry = spec.from_panel
    if entry is None:
        assert rows is None, "only panel-level entries are fitted on a subset of the rows"
        return spec.load()(inputs.frame() if data is None else data, **call)
    panel = inputs.panel(spec.name, entry, call)
    if rows is not None:
        keep = rows.keep[panel.row_index]
        panel = subset_panel(panel, keep, panel.report.with_dropped(_dropped(keep, panel.unit, rows.reason)))
    return entry.load()(panel, **{k: v for k, v in call.items() if k not in entry.roles})


def _dropped(keep: np.ndarray, units: np.ndarray | None, reason: str) -> Dropped:
    """The rows not in ``keep`` and the units (integer codes, -1 missing) left with no row."""
    lost = 0
    if units is not None and units.size:
        n_units = int(units.max()) + 1
        kept_units = np.bincount(units[keep & (units >= 0)], minlength=n_units) > 0
        out_units = np.bincount(units[~keep & (units >= 0)], minlength=n_units) > 0
        lost = int(np.count_nonzero(out_units & ~kept_units))
    return Dropped(reason, int(np.count_nonzero(~keep)), lost)


def _trim(inputs: _Inputs, window: tuple[float, float] | None) -> _Rows | None:
    """The rows TWFE's trimmed event study keeps (treated-unit rows outside ``window`` dropped); None: all."""
    if window is None:
        return None
    info = inputs.info
    lo, hi = window
    out = info.treated_row & ((info.event_time < lo) | (info.event_time > hi))
    if not out.any():
        return None
    return _Rows(~out, f"observations of treated units outside window [{lo:g}, {hi:g}]")


# ------------------------------------------------------------------ checks of the common options
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


def _ref_arg(refs: tuple[float, ...]) -> float | list[float]:
    return list(refs) if len(refs) > 1 else refs[0]


# ------------------------------------------------------------------ runners
Run = tuple[EventStudyResult, dict[str, Any], tuple[str, ...]]


def _run_twfe(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c = inputs.common
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "ref": _ref_arg(c.refs),
                            "window": c.window, "bin_endpoints": bin_endpoints, "covariates": c.covariates or None,
                            "vcov": c.vcov, "cluster": c.cluster or None, "weights": c.weights, "ssc": c.ssc,
                            "collapse": collapse}
    call = {**call, **extra}
    return _fit(inputs, SPECS["twfe"], call), _shown(call), ()


def _run_sun_abraham(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c = inputs.common
    spec = SPECS["sun_abraham"]
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "ref": _ref_arg(c.refs),
                            "covariates": c.covariates or None, "vcov": c.vcov, "cluster": c.cluster or None,
                            "weights": c.weights, "ssc": c.ssc}
    call = {**call, **extra}
    res = _fit(inputs, spec, call, rows=_trim(inputs, c.window))
    shown = _shown(call)
    if c.window is not None:
        shown["window"] = c.window
    return res, shown, ()


def _run_callaway_santanna(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool,
                           collapse: str | None) -> Run:
    c = inputs.common
    name = "callaway_santanna"
    spec = SPECS[name]
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
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "control_group": "never",
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
    return _dynamic(_fit(inputs, spec, call), call, agg, c.window, tuple(notes))


def _dynamic(res: Any, call: dict[str, Any], agg: dict[str, Any], window: tuple[float, float] | None,
             notes: tuple[str, ...]) -> Run:
    """The dynamic aggregation of an ATT(g,t) result (``att_gt``, ``ddd``), restricted to ``window``."""
    if window is not None:
        agg.setdefault("min_e", window[0])
        agg.setdefault("max_e", window[1])
    dyn = res.aggregate("dynamic", **agg)
    if not isinstance(dyn, EventStudyResult):  # pragma: no cover - aggregate("dynamic") is an event study
        raise DesignError(f"{res.estimator}: aggregate('dynamic') did not return an event study.")
    return dyn, {**_shown(call), **{f"aggregate.{k}": v for k, v in agg.items()}}, notes


def _run_imputation(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c, info = inputs.common, inputs.info
    name = "imputation"
    spec = SPECS[name]
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
    fitted = _fit(inputs, spec, call)
    if not isinstance(fitted, EventStudyResult):
        raise InvalidOptionError(
            f"event_study: estimator='imputation' needs an event study; options {extra!r} made it static. Fix: "
            f"do not override horizons/pretrends with None or False."
        )
    res: EventStudyResult = fitted if c.window is None else _restrict(fitted, c.window)
    return res, _shown(call), tuple(notes)


def _run_did2s(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c = inputs.common
    name = "did2s"
    spec = SPECS[name]
    _no_vcov(name, c)
    bad = [r for r in c.refs if r != round(r)]
    if bad:
        _refuse(name, "ref", bad[0], "its event times are integers", "use an integer ref")
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort,
                            "second_stage": DID2S_EVENT_STUDY,
                            "ref": [int(r) for r in c.refs] if len(c.refs) > 1 else int(c.refs[0]),
                            "window": None if c.window is None else (int(np.ceil(c.window[0])),
                                                                     int(np.floor(c.window[1]))),
                            "covariates": c.covariates or None,
                            "cluster": _need_single(name, "cluster", c.cluster), "weights": c.weights}
    call = {**call, **extra}
    res = _fit(inputs, spec, call)
    if not isinstance(res, EventStudyResult):
        raise InvalidOptionError(f"event_study: estimator='did2s' needs second_stage={DID2S_EVENT_STUDY!r}; do not "
                                 f"override it.")
    return res, _shown(call), ()


def _run_dcdh(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c, info = inputs.common, inputs.info
    name = "dcdh"
    spec = SPECS[name]
    _no_vcov(name, c)
    _only_ref_minus_one(name, c, "its base is always the period before the switch (event time -1)")
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
    treat = (info.treated_row & (info.event_time >= 0)).astype(np.int64)
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "treat": treat_col, "effects": effects,
                            "placebo": placebo, "covariates": c.covariates or None,
                            "cluster": _need_single(name, "cluster", c.cluster), "weights": c.weights}
    call = {**call, **extra}
    # dCDH has no panel-level entry (it cannot use build_panel: it keeps rows with a missing outcome and takes a
    # non-binary treatment, see dcdh/prep.py): it validates the columns read once, given as a pandas frame, with
    # the treatment built from the cohort added; the user's data are not read again.
    res = _fit(inputs, spec, call, data=inputs.frame().assign(**{treat_col: treat}))
    notes.append(f"treatment built from the cohort: treat = 1[{c.time} >= {c.cohort}] (absorbing)")
    shown = _shown(call)
    shown["treat"] = f"1[{c.time} >= {c.cohort}]"
    return res, shown, tuple(notes)


def _run_stacked(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c = inputs.common
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
    return _fit(inputs, SPECS[name], call), _shown(call), ()


def _run_ddd(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c = inputs.common
    name = "ddd"
    _no_vcov(name, c)
    _only_ref_minus_one(name, c, "its base period is g - 1 (no anticipation option)")
    if "partition" not in extra:
        raise InvalidOptionError(
            "event_study: estimator='ddd' needs the partition (0/1 eligibility) column of the triple difference. "
            "Fix: pass options={'ddd': {'partition': 'your_column'}}."
        )
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "control": "never",
                            "base_period": "universal", "covariates": c.covariates or None,
                            "cluster": _need_single(name, "cluster", c.cluster), "weights": c.weights}
    agg_keys = {"min_e", "max_e", "balance_e"}
    agg = {k: extra.pop(k) for k in list(extra) if k in agg_keys}
    call = {**call, **extra}
    return _dynamic(_fit(inputs, SPECS[name], call), call, agg, c.window, ())


def _run_etwfe(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c = inputs.common
    name = "etwfe"
    gaps = np.diff(inputs.info.periods)
    step = float(gaps[0]) if gaps.size and np.all(gaps == gaps[0]) else 1.0
    if c.refs != (-step,):
        _refuse(name, "ref", _ref_value(c.refs), f"each cohort's reference period is the period before treatment "
                f"(event time {-step:g})", f"use ref={-step:g}")
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort, "control": "never",
                            "covariates": c.covariates or None, "cluster": c.cluster or None, "weights": c.weights,
                            "vcov": c.vcov, "ssc": c.ssc}
    call = {**call, **extra}
    res = _fit(inputs, SPECS[name], call).aggregate("event")
    notes = ("control='never' (leads against the period before treatment); R etwfe's default 'not_yet' has no "
             "leads: options={'etwfe': {'control': 'not_yet'}}",) if "control" not in extra else ()
    return (res if c.window is None else _restrict(res, c.window)), _shown(call), notes


def _run_lpdid(inputs: _Inputs, extra: dict[str, Any], bin_endpoints: bool, collapse: str | None) -> Run:
    c, info = inputs.common, inputs.info
    name = "lpdid"
    _no_vcov(name, c)
    gaps = np.diff(info.periods)
    step = float(gaps[0]) if gaps.size and np.all(gaps == gaps[0]) else 1.0  # lpdid's windows count periods
    if c.refs != (-step,):
        _refuse(name, "ref", _ref_value(c.refs), f"its base period is the previous period (event time "
                f"{-step:g})", f"use ref={-step:g}")
    if c.weights is not None:
        _refuse(name, "weights", c.weights, "LP-DiD has no sampling weights (reweight=True gives equal weights)")
    k = info.event_time[info.treated_row]
    k = k[np.isfinite(k)]
    lo, hi = (float(k.min()), float(k.max())) if k.size else (-1.0, 0.0)
    if c.window is not None:
        lo, hi = max(lo, c.window[0]), min(hi, c.window[1])
    n_periods = info.periods.shape[0]
    call: dict[str, Any] = {"y": c.y, "unit": c.unit, "time": c.time, "cohort": c.cohort,
                            "pre_window": int(min(max(np.ceil(-lo / step), 1), n_periods - 1)),
                            "post_window": int(min(max(np.floor(hi / step), 0), n_periods - 2)),
                            "covariates": c.covariates or None, "cluster": _need_single(name, "cluster", c.cluster)}
    call = {**call, **extra}
    notes = (f"treatment built from the cohort: 1[{c.time} >= {c.cohort}] (absorbing)",)
    return _fit(inputs, SPECS[name], call), _shown(call), notes


_RUNNERS = {"twfe": _run_twfe, "sun_abraham": _run_sun_abraham, "callaway_santanna": _run_callaway_santanna,
            "imputation": _run_imputation, "did2s": _run_did2s, "dcdh": _run_dcdh, "stacked": _run_stacked,
            "ddd": _run_ddd, "etwfe": _run_etwfe, "lpdid": _run_lpdid}

# arguments each runner derives from the common ones (an override in options= is noted)
_MAPPED: dict[str, tuple[str, ...]] = {
    "twfe": ("ref", "window", "covariates", "cluster", "weights", "vcov", "ssc"),
    "sun_abraham": ("ref", "covariates", "cluster", "weights", "vcov", "ssc"),
    "callaway_santanna": ("anticipation", "covariates", "cluster", "weights", "min_e", "max_e"),
    "imputation": ("horizons", "pretrends", "covariates", "cluster", "weights"),
    "did2s": ("ref", "window", "covariates", "cluster", "weights"),
    "dcdh": ("effects", "placebo", "covariates", "cluster", "weights"),
    "stacked": ("window", "cluster", "vcov", "ssc"),
    "ddd": ("covariates", "cluster", "weights", "min_e", "max_e"),
    "etwfe": ("control", "covariates", "cluster", "weights", "vcov", "ssc"),
    "lpdid": ("pre_window", "post_window", "covariates", "cluster"),
}


def _shown(call: Mapping[str, Any]) -> dict[str, Any]:
    """The call without its unset (None / False) arguments."""
    return {k: v for k, v in call.items() if v is not None and v is not False}


def _restrict(res: EventStudyResult, window: tuple[float, float]) -> EventStudyResult:
    """Keep the event-time terms inside ``window`` (and the terms without an event time); ``with_vcov`` on the
    result is that of the full result mapped by the selection matrix (:class:`LinearMapSource`)."""
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
    select = np.zeros((keep.size, len(res.terms)))
    select[np.arange(keep.size), keep] = 1.0
    src = res._source
    on_contract = src is not None and hasattr(src, "covariance") and not res._maps_source()
    return dataclasses.replace(
        res, terms=terms, coef=res.coef[keep], vcov_matrix=res.vcov_matrix[np.ix_(keep, keep)], headline=headline,
        term_info={k: np.asarray(v)[keep] for k, v in res.term_info.items()},
        _source=LinearMapSource(src, select) if on_contract else None)  # type: ignore[arg-type]
