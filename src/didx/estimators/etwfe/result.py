"""ETWFE results: the regression's coefficients with the overall ATT, and R emfx's aggregations.

Every number is a map of the saturated regression's parameters ``b``: the coefficients themselves, and the
marginal effects averaged over the treated observations (R ``emfx()``, i.e. marginaleffects ``slopes(...,
variables = ".Dtreat", by = ...)``). In the linear model an average effect is linear in ``b`` (``J b``, exactly);
in a GLM it is ``mean_i [F(eta_i + delta_i) - F(eta_i)]``, with the delta-method Jacobian ``J`` at the estimate.
Either way its covariance is ``J V J'`` from the current ``V`` of the parameters (``with_vcov`` recomputes ``V``
once; every aggregation follows). Inference on the aggregations uses the normal distribution, as marginaleffects
does; the coefficients use the regression's (t with ``G - 1`` degrees of freedom when clustered, as fixest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from didx._validate import check_option
from didx.inference.contract import CovarianceSource, LinearMapSource
from didx.results.base import Inference, Result
from didx.results.event import EventStudyResult

KINDS = ("simple", "group", "calendar", "event")
"""R emfx's ``type=`` values."""


@dataclass(frozen=True)
class Aggregation:
    """One emfx aggregation: estimates, their Jacobian over the parameters, labels and group values."""

    kind: str
    names: tuple[str, ...]
    values: np.ndarray      # cohort / period / event time of each term (NaN for "simple")
    estimate: np.ndarray
    jacobian: np.ndarray    # (terms x parameters)
    n_obs: np.ndarray       # treated observations averaged in each term
    reference: tuple[float, ...] = ()  # event times whose effect is 0 by construction (not estimated)


def _readonly(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


def normal_inference(inf: Inference) -> Inference:
    """The same covariance, with the normal reference distribution of marginaleffects."""
    return dataclasses.replace(inf, df=None)


@dataclass(frozen=True, eq=False)
class EtwfeAggregate(Result):
    """An emfx aggregation (``"simple"``, ``"group"``, ``"calendar"``): average effects on the treated."""

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> EtwfeAggregate:
        return dataclasses.replace(self, vcov_matrix=V, inference=normal_inference(inference))


@dataclass(frozen=True, eq=False)
class EtwfeEventStudy(EventStudyResult):
    """emfx ``type = "event"``: the average effect at each event time, as an event study."""

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> EtwfeEventStudy:
        return dataclasses.replace(self, vcov_matrix=V, inference=normal_inference(inference))


@dataclass(frozen=True, eq=False)
class EtwfeResult(Result):
    """ETWFE (Wooldridge 2021, 2023): the overall ATT (the headline, emfx's ``"simple"``) and the coefficients of
    the saturated regression (cohort x period treatment effects, covariate terms).

    ``aggregate(kind)``: ``"simple"`` (every treated observation), ``"group"`` (by cohort), ``"calendar"`` (by
    period), ``"event"`` (by event time: an :class:`~didx.results.event.EventStudyResult`). ``.coefficients`` has
    the regression's coefficients with their own inference (t with the regression's degrees of freedom).
    """

    def _raw_source(self) -> CovarianceSource:
        return cast(CovarianceSource, self._source)

    def _main(self) -> np.ndarray:
        return np.asarray(self.extras["main_jacobian"])

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> EtwfeResult:
        J = self._main()
        extras = {**self.extras, "raw_vcov": _readonly(V), "raw_inference": inference}
        return dataclasses.replace(self, vcov_matrix=J @ V @ J.T, inference=normal_inference(inference),
                                   extras=extras)

    def aggregate(self, kind: str = "simple", scale: str = "response") -> EtwfeAggregate | EtwfeEventStudy:
        """R ``emfx(type = kind)``: marginal effects averaged over the treated observations (see the module).

        ``"dynamic"`` is accepted for ``"event"`` (the name of Callaway-Sant'Anna's event-time aggregation).
        ``scale="link"`` (Poisson / logit): the change in the linear index instead of the outcome (emfx's
        ``predict = "link"``); the same numbers in the linear model.
        """
        kind = "event" if kind == "dynamic" else kind
        check_option("aggregate", "kind", kind, KINDS)
        check_option("aggregate", "scale", scale, ("response", "link"))
        aggs = self.extras["aggregations"]
        agg: Aggregation = aggs.get(f"{kind}:link", aggs[kind]) if scale == "link" else aggs[kind]
        V = np.asarray(self.extras["raw_vcov"])
        J = agg.jacobian
        src = LinearMapSource(self._raw_source(), J)
        label = {"simple": "ATT (average over the treated observations)", "group": "by cohort",
                 "calendar": "by period", "event": "by event time"}[kind]
        if scale == "link" and f"{kind}:link" in aggs:
            label += ", link scale"
        common: dict[str, Any] = dict(
            estimator=f"{self.estimator} — {label}", terms=agg.names, coef=agg.estimate, vcov_matrix=J @ V @ J.T,
            headline=agg.names[0], inference=self.inference, sample=self.sample, design=self.design,
            notes=self.notes, _source=src,
        )
        if kind == "event":
            post = np.flatnonzero(agg.values >= 0)
            head = agg.names[int(post[0])] if post.size else agg.names[0]
            return EtwfeEventStudy(
                **{**common, "headline": head},
                term_info={"event_time": agg.values, "n_obs": agg.n_obs},
                extras={"reference": agg.reference}, pre_period_meaning=str(self.extras["pre_period_meaning"]),
                cross_covariance=True,
            )
        info: dict[str, np.ndarray] = {"n_obs": agg.n_obs}
        if kind == "group":
            info["group"] = agg.values
        elif kind == "calendar":
            info["time"] = agg.values
        return EtwfeAggregate(**common, term_info=info)

    @property
    def coefficients(self) -> Result:
        """The saturated regression's coefficients (link scale for a GLM), with the regression's inference."""
        names: Sequence[str] = self.extras["coef_names"]
        sel: np.ndarray = np.asarray(self.extras["coef_select"])
        V = np.asarray(self.extras["raw_vcov"])
        raw = np.asarray(self.extras["raw_coef"])
        inf: Inference = self.extras["raw_inference"]
        info: Mapping[str, np.ndarray] = self.extras["coef_info"]
        return Result(
            estimator=f"{self.estimator} — regression coefficients", terms=tuple(names), coef=sel @ raw,
            vcov_matrix=sel @ V @ sel.T, headline=names[0], inference=inf, sample=self.sample, design=self.design,
            term_info=info, notes=self.notes, _source=LinearMapSource(self._raw_source(), sel),
        )


def readonly(a: np.ndarray) -> np.ndarray:
    return _readonly(a)
