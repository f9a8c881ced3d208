"""The one list of didx's estimators: where each lives, what it returns and what it supports.

Everything that enumerates estimators reads this table: the lazily imported public names of :mod:`didx`, the
command line (:mod:`didx.cli`), the event-study comparison (``didx.event_study(estimator=...)``,
:mod:`didx.comparison`) and the contract tests. Adding an estimator is one :class:`EstimatorSpec` here.

Importing this module imports no estimator: functions and result types are named as ``"module:attribute"``
strings and imported on first use (:meth:`EstimatorSpec.load`).

What ``with_vcov`` accepts is *not* repeated here: the result's covariance source declares it
(``result.capabilities``, a :class:`didx.inference.contract.Capabilities`), the one source of truth, read after a
fit.

The pre-period meanings (``PRE_PERIOD``): what a lead coefficient is for each estimator. They differ (Roth 2024,
"Interpreting event-studies from recent difference-in-differences methods"); every event-study result carries its
text as ``pre_period_meaning`` and :meth:`didx.results.comparison.EventStudyComparison.summary` prints them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from didx._errors import InvalidOptionError
from didx._validate import did_you_mean

ENGINES: tuple[str, ...] = ("numpy",)
"""The default computation engines of an estimator: in memory only."""

ALL_ENGINES: tuple[str, ...] = ("numpy", "duckdb", "spark")
"""Every engine: ``"numpy"`` (in memory), ``"duckdb"`` (a path or glob of Parquet/CSV files, or a DuckDB relation)
and ``"spark"`` (a Spark DataFrame), see :mod:`didx.engines`. An estimator lists those it runs on; the engines
cover a subset of its options (e.g. no covariates) and refuse the rest with the in-memory alternative."""

#: What a pre-period (lead) coefficient is, by estimator (the key is :attr:`EstimatorSpec.pre_period`).
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
    "ddd_universal": (
        "triple differences, universal base period: a lead ATT(g, g+k) is a placebo DDD comparing period g+k with "
        "the base g-1 (= ref), for leads and lags alike, averaged over cohorts by event time (as Callaway-Sant'Anna)."
    ),
    "ddd_varying": (
        "triple differences, varying base period: a lead ATT(g, t), t < g, is a one-period placebo DDD (t vs t-1), "
        "NOT relative to g-1; event time -1 is estimated. Lags use the base g-1."
    ),
    "stacked": (
        "delta_k relative to the reference period -1 within each sub-experiment (a cohort and its clean controls "
        "observed over the whole window), averaged with the cohorts' treated shares (WFH corrective weights)."
    ),
    "synthdid": (
        "synthetic DiD effect curve: at event time e < 0 the gap between the treated mean and the synthetic "
        "control at period a+e minus its lambda-weighted pre-period average (the time weights make that average "
        "0), averaged over cohorts a with weights N1 (Clarke et al. 2023); no reference period is normalised."
    ),
    "etwfe_never": (
        "ETWFE with never-treated controls: each cohort's pre-treatment cells have their own coefficient against "
        "its reference period (the period before treatment, = ref -1), estimated jointly in the saturated "
        "regression with the never treated as the only controls (as Sun-Abraham), then averaged over the "
        "cohorts' observations at that event time (R emfx)."
    ),
    "etwfe_not_yet": (
        "ETWFE with not-yet-treated controls has no leads: every untreated cell is a control and pins the cohort "
        "and period effects (R emfx's pre-period effects would be 0 by construction and are not reported)."
    ),
    "lpdid": (
        "LP-DiD lead k: the long difference y_{t+k} - y_{t-1} (k < -1) of units treated at t against clean "
        "controls, one regression per horizon; k = -1 is the base (0). A pre-trend placebo of the same "
        "clean-control comparison, not contaminated by other event times."
    ),
}

EventStudyKind = Literal["always", "option", "aggregate"]


def load(target: str) -> Any:
    """The object named by ``"package.module:attribute"`` (imports the module)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


#: The column roles of :func:`didx._panel.build_panel` that make a panel (its arrays); the other arguments of a
#: call are options of the estimator.
PANEL_ROLES: tuple[str, ...] = ("y", "unit", "time", "cohort", "covariates", "weights")


@dataclass(frozen=True)
class PanelEntry:
    """A panel-level entry ``function(panel, **options)`` of an estimator and what it expects of the panel: the
    :func:`didx._panel.build_panel` options its data-level function uses, so that a caller holding the columns
    already read (the event-study comparison) can build one panel for several estimators and derive each one's.

    function : ``"module:function"`` (imported lazily).
    require_control : the design check of the data-level function's ``build_panel(require_control=...)``
        (``"untreated_obs"``, ``"never"``, ``"none"``); a panel shared by several estimators is built with
        ``"none"`` and checked for each.
    roles : the call arguments the entry reads from the panel (``build_panel``'s column roles) instead of taking
        them as options; the rest of the call is passed on.
    codes : the call arguments that name columns whose integer codes the entry reads from ``panel.codes``
        (``cluster=``; the imputation estimators' ``fe=``), other than the unit and time columns.

    Every entry takes a panel built with ``zero_weights="keep"``: one whose data-level function drops zero-weight
    rows (``build_panel(zero_weights="drop")``) drops and counts them itself.
    """

    function: str
    require_control: str = "untreated_obs"
    roles: tuple[str, ...] = PANEL_ROLES
    codes: tuple[str, ...] = ("cluster",)

    def load(self) -> Callable[..., Any]:
        fn: Callable[..., Any] = load(self.function)
        return fn


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator: its public name, where it lives, what it returns and what it supports.

    name : the public function, ``didx.<name>``.
    function : ``"module:function"`` of the estimator (imported lazily).
    results : public result types the estimator's module defines (exported lazily as ``didx.<type>``); the first
        is what the function returns by default.
    label : a human name (legends, summaries).
    event_study : how it gives an event study: ``"always"`` (it returns an :class:`~didx.results.event.
        EventStudyResult`), ``"option"`` (with an option, e.g. ``horizons=True``), ``"aggregate"`` (through
        ``result.aggregate("dynamic")``), or None.
    comparison : its key in ``didx.event_study(estimator=...)`` (None: not offered there).
    pre_period : the key of its text in :data:`PRE_PERIOD`; may name a call argument in braces
        (``"callaway_santanna_{base_period}"``), filled by :meth:`pre_period_key`.
    covariates, weights, repeated_cross_sections : whether it takes time-varying covariates, a sampling-weight
        column, and repeated cross sections (no unit panel).
    engines : computation engines it runs on (:data:`ALL_ENGINES`; beyond ``"numpy"``, for a subset of its options:
        the others raise an error naming the in-memory alternative).
    covariance : whether it returns a :class:`~didx.Result` with a covariance (False: a decomposition).
    from_panel : its panel-level entry (a :class:`PanelEntry`), which starts from a :class:`didx._panel.Panel`
        instead of a data frame; the comparison reads the data once, builds the panel once and calls it. None: the
        estimator is called with a data frame.
    public : ``"module:function"`` that ``didx.<name>`` resolves to when it is not ``function`` itself (the
        public ``didx.event_study`` is the comparison entry, which calls the TWFE event study).
    """

    name: str
    function: str
    results: tuple[str, ...]
    label: str
    event_study: EventStudyKind | None = None
    comparison: str | None = None
    pre_period: str | None = None
    covariates: bool = False
    weights: bool = False
    repeated_cross_sections: bool = False
    engines: tuple[str, ...] = ENGINES
    covariance: bool = True
    from_panel: PanelEntry | None = None
    public: str | None = None

    @property
    def module(self) -> str:
        return self.function.partition(":")[0]

    @property
    def public_module(self) -> str:
        return (self.public or self.function).partition(":")[0]

    def load(self) -> Callable[..., Any]:
        """The estimator function (imports its module)."""
        fn: Callable[..., Any] = load(self.function)
        return fn

    def load_from_panel(self) -> Callable[..., Any] | None:
        """The panel-level entry function, or None."""
        return None if self.from_panel is None else self.from_panel.load()

    def pre_period_key(self, call: Mapping[str, Any] | None = None) -> str | None:
        """The key of the pre-period text for a call (fills ``{argument}`` placeholders from ``call``)."""
        if self.pre_period is None or "{" not in self.pre_period:
            return self.pre_period
        return self.pre_period.format_map(dict(call or {}))


_R = "didx.estimators.regression"

REGISTRY: dict[str, EstimatorSpec] = {spec.name: spec for spec in (
    EstimatorSpec("did2x2", f"{_R}.twobytwo:did2x2", ("DiD2x2Result", "CellTable"), "2x2 DiD",
                  covariates=True, weights=True, repeated_cross_sections=True, engines=ALL_ENGINES),
    EstimatorSpec("twfe", f"{_R}.twfe:twfe", ("TWFEResult",), "Two-way fixed effects",
                  covariates=True, weights=True, engines=ALL_ENGINES),
    EstimatorSpec("ols", f"{_R}.ols:ols", ("OLSResult",), "OLS", weights=True, repeated_cross_sections=True),
    EstimatorSpec("event_study", f"{_R}.event_study:event_study", (), "TWFE", event_study="always",
                  comparison="twfe", pre_period="twfe", covariates=True, weights=True, engines=ALL_ENGINES,
                  from_panel=PanelEntry(f"{_R}.event_study:from_panel", roles=(*PANEL_ROLES, "cluster")),
                  public="didx.comparison:event_study"),
    EstimatorSpec("drdid", "didx.estimators.drdid.estimator:drdid", ("DRDiDResult",), "Doubly robust DiD",
                  covariates=True, weights=True, repeated_cross_sections=True),
    EstimatorSpec("bacon", "didx.estimators.bacon.estimator:bacon", ("BaconDecomposition",),
                  "Goodman-Bacon decomposition", covariates=True, covariance=False, engines=ALL_ENGINES),
    EstimatorSpec("sun_abraham", "didx.estimators.sun_abraham.estimator:sun_abraham", ("SunAbrahamResult",),
                  "Sun-Abraham", event_study="always", comparison="sun_abraham", pre_period="sun_abraham",
                  covariates=True, weights=True, engines=ALL_ENGINES,
                  # control="never" needs never-treated units: from_panel checks that itself, after its sample rules
                  from_panel=PanelEntry("didx.estimators.sun_abraham.estimator:from_panel", require_control="none")),
    EstimatorSpec("att_gt", "didx.estimators.cs.estimator:att_gt",
                  ("ATTgtResult", "CSAggregateResult", "CSEventStudyResult"), "Callaway-Sant'Anna",
                  event_study="aggregate", comparison="callaway_santanna",
                  pre_period="callaway_santanna_{base_period}", covariates=True, weights=True,
                  repeated_cross_sections=True, engines=ALL_ENGINES),
    EstimatorSpec("imputation", "didx.estimators.imputation.bjs:imputation",
                  ("ImputationResult", "ImputationEventResult"), "BJS imputation", event_study="option",
                  comparison="imputation", pre_period="imputation", covariates=True, weights=True, engines=ALL_ENGINES,
                  from_panel=PanelEntry("didx.estimators.imputation.bjs:from_panel", codes=("cluster", "fe"))),
    EstimatorSpec("did2s", "didx.estimators.imputation.did2s:did2s", ("Did2sResult", "Did2sEventResult"),
                  "Gardner two-stage", event_study="option", comparison="did2s", pre_period="did2s",
                  covariates=True, weights=True, engines=ALL_ENGINES,
                  from_panel=PanelEntry("didx.estimators.imputation.did2s:from_panel", codes=("cluster", "fe"))),
    EstimatorSpec("dcdh", "didx.estimators.dcdh.estimator:dcdh", ("DcdhResult",),
                  "de Chaisemartin-D'Haultfoeuille", event_study="always", comparison="dcdh", pre_period="dcdh",
                  covariates=True, weights=True),
    EstimatorSpec("twfe_weights", "didx.estimators.dcdh.estimator:twfe_weights", (),
                  "TWFE weights (de Chaisemartin-D'Haultfoeuille)", weights=True, covariance=False),
    EstimatorSpec("ddd", "didx.estimators.ddd.estimator:ddd", ("DDDResult",),
                  "Triple differences (Ortiz-Villavicencio & Sant'Anna)", event_study="aggregate", comparison="ddd",
                  pre_period="ddd_{base_period}", covariates=True, weights=True, repeated_cross_sections=True),
    EstimatorSpec("stacked", f"{_R}.stacked:stacked", ("StackedResult",), "Stacked (WFH weights)",
                  event_study="always", comparison="stacked", pre_period="stacked", weights=True,
                  from_panel=PanelEntry(f"{_R}.stacked:from_panel", require_control="none")),
    EstimatorSpec("synthdid", "didx.estimators.synthdid.estimator:synthdid", ("SynthDiDResult",),
                  "Synthetic DiD", event_study="aggregate", pre_period="synthdid", covariates=True),
    EstimatorSpec("etwfe", "didx.estimators.etwfe.estimator:etwfe",
                  ("EtwfeResult", "EtwfeAggregate", "EtwfeEventStudy"), "Extended TWFE (Wooldridge)",
                  event_study="aggregate", comparison="etwfe", pre_period="etwfe_never", covariates=True,
                  weights=True,
                  from_panel=PanelEntry("didx.estimators.etwfe.estimator:from_panel", require_control="none")),
    EstimatorSpec("lpdid", "didx.estimators.lpdid.estimator:lpdid", ("LpdidResult",),
                  "Local-projections DiD", event_study="always", comparison="lpdid", pre_period="lpdid",
                  covariates=True,
                  from_panel=PanelEntry("didx.estimators.lpdid.estimator:from_panel", require_control="none",
                                        roles=("y", "unit", "time", "cohort", "covariates"))),
)}
"""Every estimator, by public name, in the order the command line and the comparison list them."""


def get(name: str, func: str = "didx") -> EstimatorSpec:
    """The spec of estimator ``name``, or an error listing the estimators."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InvalidOptionError(
            f"{func}: {name!r} is not a didx estimator.{did_you_mean(name, REGISTRY)} Estimators: "
            f"{', '.join(REGISTRY)}."
        ) from None


def comparison_estimators() -> dict[str, EstimatorSpec]:
    """The estimators of ``didx.event_study(estimator=...)``, by their key there, in registry order."""
    return {s.comparison: s for s in REGISTRY.values() if s.comparison is not None}


def lazy_exports() -> dict[str, str]:
    """Public name -> module for every estimator function and result type (``didx``'s lazy attributes)."""
    out: dict[str, str] = {}
    for spec in REGISTRY.values():
        out[spec.name] = spec.public_module
        for result in spec.results:
            out[result] = spec.module
    return out
