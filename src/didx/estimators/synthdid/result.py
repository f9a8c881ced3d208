"""The synthetic-DiD result, its covariance source and its event-study view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DataError, InvalidOptionError
from didx.estimators.synthdid import variance
from didx.estimators.synthdid.design import WideDesign
from didx.estimators.synthdid.fit import CohortFit, combine
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest
from didx.results.base import Inference, Result
from didx.results.event import EventStudyResult
from didx.results.render import fmt_num, text_table


def _label(v: Any) -> str:
    return str(v.item() if isinstance(v, np.generic) else v)


@dataclass(frozen=True)
class Replicated:
    """The replicated estimates behind a covariance: the vector ``[ATT, cohort effects, event-time effects]``."""

    kind: str  # "placebo" | "bootstrap" | "jackknife"
    draws: np.ndarray  # (R, K)
    n_reps: int
    seed: int | None
    cluster: str | None
    n_clusters: int | None

    def inference(self) -> Inference:
        if self.kind == "jackknife":
            text = f"jackknife (fixed weights, {self.n_reps} leave-one-unit-out estimates)"
        else:
            text = f"{self.kind} ({self.n_reps} replications, seed {self.seed})"
        if self.cluster is not None:
            return Inference(vcov_type=text.replace("bootstrap", "clustered bootstrap", 1),
                             n_clusters=(int(self.n_clusters or 0),), cluster_names=(self.cluster,))
        return Inference(vcov_type=text)

    def matrix(self) -> np.ndarray:
        return variance.covariance(self.draws, self.kind)


def replicate(kind: str, design: WideDesign, fits: Sequence[CohortFit], n_reps: int, seed: int | None,
              cluster: str | None = None, cluster_of_unit: np.ndarray | None = None) -> Replicated:
    """Run the replications of ``kind`` and stack the combined vector of each."""
    rng = np.random.default_rng(seed)
    if kind == "placebo":
        est, cur, n1 = variance.placebo(design, fits, rng, n_reps)
    elif kind == "bootstrap":
        est, cur, n1 = variance.bootstrap(design, fits, rng, n_reps, cluster_of_unit)
    else:
        est, cur, n1 = variance.jackknife(design, fits)
    periods = np.array([f.period for f in fits])
    comb = combine(est, cur, n1, periods, design.T)
    cols = [comb.att[:, None]] + ([comb.cohort] if len(fits) > 1 else []) + [comb.event]
    n_cl = None if cluster_of_unit is None else int(cluster_of_unit.max()) + 1
    return Replicated(kind=kind, draws=np.concatenate(cols, axis=1), n_reps=int(est.shape[0]), seed=seed,
                      cluster=cluster, n_clusters=n_cl)


@dataclass(frozen=True, eq=False)
class SynthDiDSource:
    """Covariance source: the fit's replications; a bootstrap fit re-draws clustered by another column (the
    outcome matrix and the weights are kept, never the frame). Placebo and jackknife fits have one covariance."""

    design: WideDesign
    fits: tuple[CohortFit, ...]
    replicated: Replicated | None
    codes: ClusterCodes | None
    unit_of_row: np.ndarray  # row of the wide design of each estimation row
    n_terms: int  # how many leading entries of the replicated vector the result's terms are

    @property
    def capabilities(self) -> Capabilities:
        kind = self.replicated.kind if self.replicated is not None else "none"
        if kind == "bootstrap":
            return Capabilities(vcov=(), max_clusters=1, new_clusters=True, bootstrap=("bootstrap",),
                                default="the bootstrap of the fit, re-drawn by clusters of units with cluster=")
        return Capabilities(vcov=(), max_clusters=0, new_clusters=False,
                            default=f"the fit's se={kind!r} (choose se= when fitting)")

    @property
    def clusters(self) -> ClusterCodes | None:
        return self.codes

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        rep = self.replicated
        if request.clusters and rep is not None:
            name = request.clusters[0]
            per_unit = unit_clusters(func, name, np.asarray(codes[name]), self.unit_of_row, self.design.N)
            rep = replicate("bootstrap", self.design, self.fits, rep.n_reps, rep.seed, name, per_unit)
        return full_matrix(rep, self.n_terms)


def full_matrix(rep: Replicated | None, n_terms: int) -> tuple[np.ndarray, Inference]:
    if rep is None:
        return np.full((n_terms, n_terms), np.nan), Inference(
            vcov_type="not computed (se=None; pass se='placebo', 'bootstrap' or 'jackknife')")
    return rep.matrix()[:n_terms, :n_terms], rep.inference()


def unit_clusters(func: str, name: str, row_codes: np.ndarray, unit_of_row: np.ndarray, n_units: int) -> np.ndarray:
    """Cluster code per unit (row of the wide design); a unit in two clusters is an error."""
    per_unit = np.full(n_units, -1, dtype=np.int64)
    per_unit[unit_of_row] = row_codes
    if (per_unit[unit_of_row] != row_codes).any():
        raise DataError(
            f"{func}: the cluster column {name!r} varies within a unit. The bootstrap draws whole units, so each "
            f"unit must belong to one cluster. Fix: pass a cluster column constant within units (e.g. a region)."
        )
    _, dense = np.unique(per_unit, return_inverse=True)
    return np.asarray(dense, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class SynthDiDResult(Result):
    """Synthetic DiD / synthetic control / DiD estimate(s), with the unit and time weights of each cohort.

    ``.estimate`` is the ATT (averaged over adoption cohorts with weights ``N1 T1``); with several cohorts the
    terms also list each cohort's estimate. ``unit_weights`` / ``time_weights`` are tidy frames;
    ``event_study()`` gives the per-period effects; ``plot()`` draws synthdid's trajectory plot and
    ``plot_weights()`` its unit-weight plot.
    """

    method: str = "sdid"

    @property
    def _src(self) -> SynthDiDSource:
        assert isinstance(self._source, SynthDiDSource)
        return self._source

    @property
    def cohort_fits(self) -> tuple[CohortFit, ...]:
        return self._src.fits

    @property
    def design_matrix(self) -> WideDesign:
        return self._src.design

    def _cohort_label(self, fit: CohortFit) -> Any:
        return self._src.design.period_labels[fit.period]

    @property
    def unit_weights(self) -> pd.DataFrame:
        """One row per cohort and control unit: ``cohort, unit, weight`` (omega)."""
        d = self._src.design
        frames = [pd.DataFrame({"cohort": self._cohort_label(f), "unit": d.labels[:d.N0], "weight": f.omega})
                  for f in self.cohort_fits]
        return pd.concat(frames, ignore_index=True)

    @property
    def time_weights(self) -> pd.DataFrame:
        """One row per cohort and pre-period: ``cohort, time, weight`` (lambda)."""
        d = self._src.design
        frames = [pd.DataFrame({"cohort": self._cohort_label(f), "time": d.period_labels[:f.period],
                                "weight": f.lam}) for f in self.cohort_fits]
        return pd.concat(frames, ignore_index=True)

    @property
    def covariate_coefficients(self) -> pd.DataFrame:
        """Covariate coefficients: per cohort (``optimized``) or one set (``projected``)."""
        out: pd.DataFrame = self.extras.get("covariate_coefficients", pd.DataFrame())
        return out.copy()

    def effective_controls(self) -> np.ndarray:
        """``1 / sum(omega^2)`` per cohort (synthdid's ``N0.effective``)."""
        return np.array([1.0 / float(f.omega @ f.omega) for f in self.cohort_fits])

    def effective_pre_periods(self) -> np.ndarray:
        """``1 / sum(lambda^2)`` per cohort (synthdid's ``T0.effective``; inf for synthetic control)."""
        sums = np.array([float(f.lam @ f.lam) for f in self.cohort_fits])
        with np.errstate(divide="ignore"):
            return np.asarray(1.0 / sums)

    def _health_notes(self) -> list[str]:
        if self._src.replicated is None:
            return []
        return super()._health_notes()

    def _summary_extra(self) -> list[str]:
        d = self._src.design
        out = ["Cohorts (synthdid's dimensions; effective = 1 / sum of squared weights)"]
        header = ["cohort", "N1", "N0", "N0.effective", "T1", "T0", "T0.effective", "noise level", "zeta.omega",
                  "zeta.lambda", "ATT weight"]
        share = np.array([f.n_treated * f.n_post for f in self.cohort_fits], dtype=np.float64)
        share /= share.sum()
        rows = [[_label(self._cohort_label(f)), str(f.n_treated), str(d.N0), fmt_num(n0e, 3), str(f.n_post),
                 str(f.period), fmt_num(t0e, 3), fmt_num(f.noise_level), fmt_num(f.opts.zeta_omega),
                 fmt_num(f.opts.zeta_lambda), fmt_num(w, 4)]
                for f, n0e, t0e, w in zip(self.cohort_fits, self.effective_controls(), self.effective_pre_periods(),
                                          share, strict=True)]
        out.extend("  " + ln for ln in text_table(header, rows).splitlines())
        for f in self.cohort_fits:
            top = np.argsort(-f.omega, kind="stable")[:5]
            names = ", ".join(f"{_label(d.labels[i])} {f.omega[i]:.3f}" for i in top if f.omega[i] > 0)
            out.append(f"  largest unit weights ({_label(self._cohort_label(f))}): {names or 'none'}")
        return out

    # ---- event-study view
    def event_study(self) -> EventStudyResult:
        """Per-period effects by event time: each cohort's effect curve (post periods: effects; pre periods: the
        deviations the time weights average to zero) averaged over cohorts with weights ``N1``. Covariance from
        the same replications as the ATT."""
        from didx.registry import PRE_PERIOD

        ev: dict[str, Any] = self.extras["event"]
        et = np.asarray(ev["event_times"])
        rep = self._src.replicated
        k = et.shape[0]
        if rep is None:
            V = np.full((k, k), np.nan)
            inf = full_matrix(None, 1)[1]
        else:
            V = rep.matrix()[-k:, -k:]
            inf = rep.inference()
        terms = tuple(f"e={int(e)}" for e in et)
        return EventStudyResult(
            estimator=f"{self.estimator} — event study", terms=terms, coef=np.asarray(ev["coef"]), vcov_matrix=V,
            headline=terms[int(np.flatnonzero(et == 0)[0])], inference=inf, sample=self.sample, design=self.design,
            term_info={"event_time": et}, notes=self.notes, pre_period_meaning=PRE_PERIOD["synthdid"],
        )

    def aggregate(self, kind: str = "dynamic") -> EventStudyResult:
        """``aggregate("dynamic")``: the event-study view (:meth:`event_study`)."""
        if kind != "dynamic":
            raise InvalidOptionError(
                f"The 'kind' parameter of SynthDiDResult.aggregate must be 'dynamic'. Got {kind!r} instead. Fix: "
                f"use .estimate for the ATT and tidy() for the cohort effects."
            )
        return self.event_study()

    # ---- plots
    def plot(self, ax: Any = None, *, cohort: Any = None, **kwargs: Any) -> Any:
        """synthdid's trajectory plot: treated vs synthetic control, the time-weight ribbon and the DiD arrow
        (one panel per cohort when ``ax`` is None and there are several); returns the Axes (or array of them)."""
        from didx.estimators.synthdid.plot import plot_trajectories

        return plot_trajectories(self, ax=ax, cohort=cohort, **kwargs)

    def plot_weights(self, ax: Any = None, *, cohort: Any = None, **kwargs: Any) -> Any:
        """synthdid's unit plot: each control's DiD against the treated units, dot size = its unit weight."""
        from didx.estimators.synthdid.plot import plot_unit_weights

        return plot_unit_weights(self, ax=ax, cohort=cohort, **kwargs)
