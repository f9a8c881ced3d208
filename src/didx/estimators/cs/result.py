"""Result types of :func:`didx.att_gt` and of its aggregations, and the inference shared by both.

Inference is computed from the stored influence-function representation (:class:`IFStore`) for any set of
estimands given as a linear map ``(A, U)`` of the cells (see :mod:`didx.estimators.cs.aggregate`):

- ``"analytic"``: ``V = sum_i psi_i psi_i' / n^2`` (``did``'s ``IF'IF / n`` scaled to the estimates), or with
  ``cluster=`` ``sum_c psi_c psi_c' / n^2`` over the clusters' summed influence functions (no small-sample
  factor), the analytic counterpart of the clustered multiplier bootstrap;
- ``"rademacher"`` / ``"mammen"`` multiplier bootstrap: draws are formed from per-cohort multiplier sums computed
  once at fit time, so ATT(g,t) and every aggregation use the same draws; SEs are ``did``'s IQR-based ones and
  the uniform band uses the sup-t critical value of the draws;
- ``"gaussian"`` multipliers: the draws would be exactly ``N(0, V)``, so the SEs are the analytic ones and the
  sup-t critical value is simulated from ``N(0, corr(V))`` (:func:`didx.inference.bands.sup_t_critical_value`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from didx._errors import InvalidOptionError
from didx._validate import as_list, check_conf_level
from didx.estimators.cs.aggregate import Aggregation, aggregate
from didx.inference import multiplier as mb
from didx.inference.if_store import IFStore
from didx.results.base import Inference, Result, WaldTest
from didx.results.event import EventStudyResult


@dataclass(eq=False)
class CSState:
    """What the aggregations and inference need after fitting (kept out of the printed result)."""

    store: IFStore
    group: np.ndarray
    time: np.ndarray
    att: np.ndarray
    cohort_code: np.ndarray
    reference: np.ndarray
    pg_cohort: np.ndarray
    se_type: str  # "analytic" | "rademacher" | "mammen" | "gaussian"
    clustered: bool
    basis: np.ndarray | None = None  # (B, G_all, L) multiplier sums
    scale: float = 1.0
    n_bootstrap: int = 0
    seed: int | None = None
    inference: Inference | None = None
    unit_labels: np.ndarray | None = None
    cell_terms: tuple[str, ...] = ()
    unit_name: str | None = None  # None for repeated cross sections (every row its own observation)
    cluster_name: str | None = None  # the coarser cluster variable given at fit time


@dataclass(frozen=True, eq=False)
class CSVcovSource:
    """``with_vcov`` for ATT(g,t) and its aggregations: the analytic influence-function covariance of the
    estimands ``(A, U)``, by unit or by the cluster variable given at fit time, without refitting."""

    state: CSState
    A: np.ndarray
    U: np.ndarray | None
    details: tuple[str, ...] = ()

    def recompute(self, func: str, vcov: str | None, cluster: str | Sequence[str] | None,
                  ssc: Any) -> tuple[np.ndarray, Inference]:
        st = self.state
        if ssc is not None:
            raise InvalidOptionError(f"{func}: ssc= does not apply: influence-function SEs have no small-sample "
                                     f"factor (as did). Fix: drop ssc=.")
        if vcov not in (None, "analytic"):
            raise InvalidOptionError(
                f"{func}: vcov={vcov!r} is not available; Callaway-Sant'Anna SEs come from the influence functions. "
                f"Fix: with_vcov('analytic', cluster=...), or a multiplier bootstrap: att_gt(..., n_bootstrap=999)."
            )
        names = as_list(cluster)
        if len(names) > 1:
            raise InvalidOptionError(f"{func}: cluster={names!r}: one cluster variable at most (units are always "
                                     f"clusters). Fix: pass one column.")
        name = names[0] if names else None
        if name is not None and name not in (st.unit_name, st.cluster_name):
            known = [n for n in (st.unit_name, st.cluster_name) if n is not None]
            raise InvalidOptionError(
                f"{func}: cannot cluster on {name!r} after the fit: only the cluster codes of {known or 'no column'} "
                f"are stored. Fix: re-run att_gt(..., cluster={name!r})."
            )
        clustered = name is not None and name == st.cluster_name
        V = st.store.vcov(self.A, self.U, clustered=clustered)
        names_out: tuple[str, ...]
        n_cl: tuple[int, ...]
        if clustered:
            desc, names_out, n_cl = f"clustered by {name}", (str(name),), (st.store.n_clusters,)
        elif st.unit_name is None:
            desc, names_out, n_cl = "independent observations (repeated cross sections)", (), ()
        else:
            desc, names_out, n_cl = f"clustered by unit ({st.unit_name})", (st.unit_name,), (st.store.n,)
        inf = Inference(vcov_type=f"analytic (influence function), {desc}", n_clusters=n_cl,
                        cluster_names=names_out, band="pointwise", details=self.details)
        return V, inf


@dataclass(frozen=True)
class Estimands:
    """Point estimates, covariance and (bootstrap) band information of a set of estimands."""

    estimate: np.ndarray
    vcov: np.ndarray
    draws: np.ndarray | None
    band_idx: np.ndarray


def compute_inference(state: CSState, A: np.ndarray, U: np.ndarray | None, estimate: np.ndarray,
                      band_idx: np.ndarray) -> Estimands:
    """Covariance (and bootstrap draws) of the estimands ``(A, U)``."""
    V = state.store.vcov(A, U, clustered=state.clustered)
    draws = None
    if state.se_type in ("rademacher", "mammen") and state.basis is not None:
        draws = state.store.draws(state.basis, state.scale, A, U)
        se = mb.bootstrap_se(draws)
        zero = ~(np.sqrt(np.clip(np.diag(V), 0, None)) > np.sqrt(np.finfo(float).eps) * 10)
        se[zero] = np.nan
        V = mb.draws_vcov(draws, se)
    return Estimands(estimate=np.asarray(estimate, dtype=float), vcov=V, draws=draws, band_idx=band_idx)


def band_critical_value(state: CSState, est: Estimands | None, vcov: np.ndarray, band_idx: np.ndarray,
                        conf_level: float) -> float:
    """Critical value of the uniform band over ``band_idx`` (bootstrap sup-t, or simulated for gaussian)."""
    if band_idx.size == 0:
        return float(stats.norm.ppf(0.5 + conf_level / 2))
    if est is not None and est.draws is not None:
        se = np.sqrt(np.clip(np.diag(vcov), 0, None))[band_idx]
        se = np.where(se > 0, se, np.nan)
        return mb.bootstrap_critical_value(est.draws[:, band_idx], se, conf_level)
    from didx.inference.bands import sup_t_critical_value

    return sup_t_critical_value(vcov[np.ix_(band_idx, band_idx)], conf_level=conf_level,
                                n_draws=max(int(state.n_bootstrap), 100), seed=state.seed)


def _band_info(res: Result) -> Any:
    """The stored bootstrap band, unless the covariance was replaced (``with_vcov``: pointwise intervals)."""
    return res.extras.get("_band") if res.inference.band.startswith("uniform") else None


def _uniform_tidy(res: Result, t: pd.DataFrame, conf_level: float) -> pd.DataFrame:
    info = _band_info(res)
    if info is None:
        return t
    state, est, band_idx = info
    crit = band_critical_value(state, est, res.vcov_matrix, band_idx, conf_level)
    rows = np.zeros(len(t), dtype=bool)
    rows[band_idx] = True
    se = t["std_error"].to_numpy()
    t.loc[rows, "conf_low"] = t.loc[rows, "estimate"].to_numpy() - crit * se[rows]
    t.loc[rows, "conf_high"] = t.loc[rows, "estimate"].to_numpy() + crit * se[rows]
    return t


def uniform_critical_value(res: Result, conf_level: float = 0.95) -> float:
    """The sup-t critical value of the result's uniform band (pointwise one if the band is pointwise)."""
    conf_level = check_conf_level(conf_level)
    info = _band_info(res)
    if info is None:
        return float(stats.norm.ppf(0.5 + conf_level / 2))
    state, est, band_idx = info
    return band_critical_value(state, est, res.vcov_matrix, band_idx, conf_level)


@dataclass(frozen=True, eq=False)
class CSAggregateResult(Result):
    """A ``simple``, ``group`` or ``calendar`` aggregation of ATT(g,t) (R's ``aggte``)."""

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        return _uniform_tidy(self, super().tidy(conf_level), conf_level)

    def uniform_critical_value(self, conf_level: float = 0.95) -> float:
        return uniform_critical_value(self, conf_level)


@dataclass(frozen=True, eq=False)
class CSEventStudyResult(EventStudyResult):
    """The ``dynamic`` aggregation: effects by event time ``e = t - g`` (an event study)."""

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        t = super().tidy(conf_level)
        if self.extras.get("uniform_band") is not None:
            return t
        return _uniform_tidy(self, t, conf_level)

    def uniform_critical_value(self, conf_level: float = 0.95) -> float:
        return uniform_critical_value(self, conf_level)


@dataclass(frozen=True, eq=False)
class ATTgtResult(Result):
    """Group-time average treatment effects ATT(g,t) (Callaway & Sant'Anna 2021) with their influence functions.

    Terms ``ATT(g,t)`` in ``did``'s order (by cohort, then period) and, last, the headline ``ATT (simple)``: the
    ``simple`` aggregation (post-treatment cells weighted by cohort size), so ``.estimate`` / ``.std_error`` are
    the overall ATT and its SE. ``term_info`` has ``group``, ``time``, ``event_time`` and ``base_period`` (NaN for
    the headline). ``aggregate()`` computes the four aggregations without refitting; ``pretest`` is the Wald
    pre-test of all pre-treatment ATT(g,t) = 0 (``did``'s ``W``/``Wpval``).
    """

    _state: CSState | None = field(default=None, repr=False, compare=False)

    @property
    def pretest(self) -> WaldTest | None:
        """Wald test that every pre-treatment ATT(g,t) is zero (analytic covariance, as ``did``); None if
        there is no pre-treatment cell or their covariance is singular."""
        out = self.extras.get("pretest")
        return out if isinstance(out, WaldTest) else None

    def cells(self, conf_level: float = 0.95) -> pd.DataFrame:
        """The tidy table of the ATT(g,t) cells only (without the headline)."""
        t = self.tidy(conf_level)
        return t[np.isfinite(t["group"].astype(float))].reset_index(drop=True)

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        return _uniform_tidy(self, super().tidy(conf_level), conf_level)

    def uniform_critical_value(self, conf_level: float = 0.95) -> float:
        """Sup-t critical value of the uniform band over the ATT(g,t) (bootstrap); pointwise without one."""
        return uniform_critical_value(self, conf_level)

    def influence_functions(self) -> pd.DataFrame:
        """The n x K ATT(g,t) influence functions (``did``'s ``inffunc``; ``V = IF'IF / n``, SE =
        ``sqrt(sum IF^2) / n``), one row per unit (indexed by unit label; by input row position for repeated
        cross sections) and one column per cell. Built on request only: estimation never forms it."""
        st = self._need_state()
        K = st.att.shape[0]
        D = st.store.coefficients(np.eye(K))
        out = np.empty((st.store.Z.shape[0], K))
        for g in range(st.store.n_cohorts):
            lo, hi = st.store.block[g], st.store.block[g + 1]
            out[lo:hi] = st.store.Z[lo:hi] @ D[g]
        return pd.DataFrame(out, index=st.unit_labels, columns=list(st.cell_terms))

    def with_vcov(self, vcov: str | None = None, *, cluster: Any = None, ssc: Any = None,
                  data: Any = None) -> Result:
        """Analytic influence-function SEs by unit or by the fit's cluster variable (see
        :class:`CSVcovSource`); the new result's ``aggregate()`` uses the same choice."""
        out = super().with_vcov(vcov, cluster=cluster, ssc=ssc, data=data)
        st = self._need_state()
        names = as_list(cluster)
        clustered = bool(names) and names[0] == st.cluster_name
        new_state = dataclasses.replace(st, se_type="analytic", clustered=clustered, basis=None, n_bootstrap=0,
                                        inference=out.inference)
        return dataclasses.replace(self, vcov_matrix=out.vcov_matrix, inference=out.inference, _state=new_state)

    def _need_state(self) -> CSState:
        if self._state is None:
            raise ValueError("this ATTgtResult carries no influence functions")
        return self._state

    def aggregate(self, type: str = "simple", *, min_e: float = -np.inf, max_e: float = np.inf,
                  balance_e: int | None = None) -> Result:
        """Aggregate ATT(g,t) as R's ``aggte``: ``"simple"``, ``"group"``, ``"dynamic"`` or ``"calendar"``.

        Parameters
        ----------
        type : the aggregation. ``dynamic`` returns an :class:`~didx.results.event.EventStudyResult` (terms
            ``e=k`` and the average over ``e >= 0``); the others a :class:`CSAggregateResult` whose last term is
            the overall average.
        min_e, max_e : event-time window (``dynamic``); ``max_e`` also caps the cells of ``simple`` and ``group``.
        balance_e : keep only cohorts observed for at least ``balance_e`` periods after treatment (``dynamic``).

        SEs come from the stored influence functions, including the term for the estimated cohort-share weights
        (``did``'s ``wif``); with a multiplier bootstrap the same draws as the ATT(g,t) are used.
        """
        st = self._need_state()
        func = "ATTgtResult.aggregate"
        agg = aggregate(type, group=st.group, time=st.time, att=st.att, cohort_code=st.cohort_code,
                        reference=st.reference, pg_cohort=st.pg_cohort, min_e=min_e, max_e=max_e,
                        balance_e=balance_e, func=func)
        return make_aggregate_result(self, st, agg, min_e=min_e, max_e=max_e, balance_e=balance_e)


def make_aggregate_result(parent: Result, st: CSState, agg: Aggregation, *, min_e: float, max_e: float,
                          balance_e: int | None) -> Result:
    band_idx = np.array([agg.terms.index(t) for t in agg.band_terms], dtype=int)
    est = compute_inference(st, agg.A, agg.U, agg.estimate, band_idx)
    inf = st.inference or parent.inference
    if band_idx.size and inf.band.startswith("uniform"):
        inf = dataclasses.replace(inf, band=f"uniform (sup-t) over the {band_idx.size} "
                                  f"{'event times' if agg.kind == 'dynamic' else agg.kind + ' effects'}; "
                                  f"overall average pointwise")
    else:
        inf = dataclasses.replace(inf, band="pointwise")
    names = {"simple": "simple (post-treatment ATT(g,t) weighted by cohort size)",
             "group": "group (by cohort, then averaged with cohort-size weights)",
             "dynamic": "dynamic (by event time e = t - g; overall = average over e >= 0)",
             "calendar": "calendar (by period, then averaged)"}
    design = [*parent.design, ("Aggregation", names[agg.kind])]
    if agg.kind == "dynamic":
        window = []
        if np.isfinite(min_e):
            window.append(f"min_e = {min_e:g}")
        if np.isfinite(max_e):
            window.append(f"max_e = {max_e:g}")
        if balance_e is not None:
            window.append(f"balance_e = {balance_e} (cohorts observed at least e = {balance_e})")
        design.append(("Event window", ", ".join(window) if window else "all event times"))
    elif np.isfinite(max_e):
        design.append(("Cells", f"post-treatment with t - g <= {max_e:g}"))
    headline = agg.terms[-1]
    extras: dict[str, Any] = {"aggregation": agg.kind}
    if inf.band.startswith("uniform"):
        extras["_band"] = (st, est, band_idx)
    common: dict[str, Any] = dict(estimator=f"Callaway & Sant'Anna (2021), {agg.kind} aggregation",
                                  terms=agg.terms, coef=agg.estimate, vcov_matrix=est.vcov, headline=headline,
                                  inference=inf, sample=parent.sample, design=tuple(design),
                                  term_info=dict(agg.info), notes=parent.notes,
                                  _source=CSVcovSource(st, agg.A, agg.U, inf.details))
    if agg.kind == "dynamic":
        extras["reference"] = agg.reference
        return CSEventStudyResult(extras=extras, **common)
    return CSAggregateResult(extras=extras, **common)
