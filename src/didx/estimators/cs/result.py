"""Result types of :func:`didx.att_gt` and of its aggregations, their covariance source and shared inference.

Every Callaway-Sant'Anna result is a set of estimands given as a linear map ``(A, U)`` of the ATT(g,t) cells (see
:mod:`didx.estimators.cs.aggregate`), whose influence functions live in the :class:`IFStore` of the fit
(:class:`CSFit`, shared by a fit, its aggregations and their ``with_vcov`` results; never a data frame). Inference
follows the result's current *choice* (:class:`CSChoice`):

- ``"analytic"``: ``V = sum_i psi_i psi_i' / n^2`` (``did``'s ``IF'IF / n`` scaled to the estimates), or
  clustered ``sum_c psi_c psi_c' / n^2`` over the clusters' summed influence functions (no small-sample factor),
  the analytic counterpart of the clustered multiplier bootstrap; intervals pointwise;
- ``"rademacher"`` / ``"mammen"`` multiplier bootstrap (fit time only): draws are formed from per-cohort multiplier
  sums computed once at fit time, so ATT(g,t) and every aggregation use the same draws; SEs are ``did``'s
  IQR-based ones and the uniform band uses the sup-t critical value of the draws;
- ``"gaussian"`` multipliers (fit time only): the draws would be exactly ``N(0, V)``, so the SEs are the analytic
  ones and the sup-t critical value is simulated from ``N(0, corr(V))``
  (:func:`didx.inference.bands.sup_t_critical_value`).

``with_vcov`` (through :class:`CSSource`) gives analytic SEs by unit, by the fit's ``cluster=``, or by any column
nesting units (passed as values or read from ``data=``); the new result's ``aggregate()``, bands and pre-test use
that choice. Bands and the Wald pre-test are computed from the current covariance when asked, never stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from didx._validate import check_conf_level
from didx.estimators.cs.aggregate import Aggregation, aggregate
from didx.inference import multiplier as mb
from didx.inference.contract import Capabilities, ClusterCodes, Fingerprint, VcovRequest
from didx.inference.if_store import IFStore, clusters_of_units
from didx.results.base import Inference, Result, WaldTest
from didx.results.event import EventStudyResult

BOOTSTRAP_KINDS = ("rademacher", "mammen")

CS_CAPABILITIES = Capabilities(
    vcov=("analytic",), max_clusters=1, new_clusters=True, ssc=False, bootstrap=("multiplier",),
    default="analytic influence-function SEs clustered as at fit time (a multiplier bootstrap is not redrawn); "
            "'analytic' without cluster=: by unit (by observation for repeated cross sections)",
)


@dataclass(frozen=True, eq=False)
class CSFit:
    """What every result of one ``att_gt`` fit needs afterwards (kept out of the printed result; no data frame).

    ``store`` holds the cell influence functions (clustered as the fit's ``cluster=``); ``group``, ``time``,
    ``att``, ``cohort_code``, ``reference`` describe the cells, ``pg_cohort`` the cohort shares. ``basis`` and
    ``scale`` are the multiplier-bootstrap sums (rademacher / mammen). ``unit_of_row`` (the unit of each estimation
    row, compact integers), ``row_index``, ``n_input_rows`` and ``fingerprint`` let ``with_vcov`` match a cluster
    column to the units.
    """

    store: IFStore
    group: np.ndarray
    time: np.ndarray
    att: np.ndarray
    cohort_code: np.ndarray
    reference: np.ndarray
    pg_cohort: np.ndarray
    cell_terms: tuple[str, ...]
    unit_labels: np.ndarray
    mode: str  # "panel" | "unbalanced" | "rc"
    unit_name: str | None  # None for repeated cross sections (every row its own observation)
    cluster_name: str | None  # the fit's cluster= (coarser than units), or None
    base_period: str
    multiplier: str  # the fit's multipliers ("rademacher", "mammen", "gaussian")
    n_bootstrap: int
    seed: int | None
    basis: np.ndarray | None  # (B, G_all, L) multiplier sums
    scale: float
    unit_of_row: np.ndarray
    row_index: np.ndarray | None
    n_input_rows: int
    fingerprint: Fingerprint | None
    family: str = "Callaway & Sant'Anna (2021)"  # the estimator's name in the aggregations' titles
    pre_period_key: str = "callaway_santanna"  # PRE_PERIOD[f"{key}_{base_period}"] of the dynamic aggregation

    @property
    def n_cells(self) -> int:
        return int(self.att.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.store.n)

    def cluster_codes(self) -> ClusterCodes:
        """Codes per estimation row of the unit and of the fit's cluster variable (built on request)."""
        rows = np.asarray(self.unit_of_row, dtype=np.int64)
        stored: dict[str, np.ndarray] = {}
        if self.unit_name is not None:
            stored[self.unit_name] = rows
        if self.cluster_name is not None and self.store.cluster is not None:
            stored[self.cluster_name] = self.store.cluster[rows]
        return ClusterCodes(stored, self.row_index, self.n_input_rows, self.fingerprint)

    def choice(self, func: str, name: str | None, codes: Mapping[str, np.ndarray],
               supplied: Sequence[str] = ()) -> CSChoice:
        """Analytic SEs clustered by ``name`` (None or the unit: by unit / observation); ``codes`` has the codes
        per estimation row of ``name``, ``supplied`` the names whose values were passed to ``with_vcov``."""
        if name is None or (name == self.unit_name and name not in supplied):
            return CSChoice("analytic", None, self.store)
        if name == self.cluster_name and name not in supplied:
            return CSChoice("analytic", name, self.store)
        per_unit, G = clusters_of_units(func, name, codes[name], np.asarray(self.unit_of_row, dtype=np.int64),
                                        self.n_units)
        return CSChoice("analytic", name, self.store.reclustered(per_unit, G))


@dataclass(frozen=True, eq=False)
class CSChoice:
    """The covariance a result reports: its kind and clustering (``store`` carries that clustering's codes)."""

    kind: str  # "analytic" | "rademacher" | "mammen" | "gaussian"
    cluster: str | None  # None: by unit (by observation for repeated cross sections)
    store: IFStore

    @property
    def clustered(self) -> bool:
        return self.cluster is not None

    @property
    def n_clusters(self) -> int:
        return self.store.n_clusters if self.clustered else self.store.n


@dataclass(frozen=True)
class CSInference(Inference):
    """:class:`Inference` that also carries the choice it describes, so that ``_with_covariance`` can give the
    new result the same choice for its aggregations and bands."""

    choice: CSChoice | None = field(default=None, repr=False, compare=False)

    def lines(self) -> list[str]:
        """As :meth:`Inference.lines`; with analytic SEs the intervals line says how R's did differs (its default
        is a multiplier bootstrap with a uniform band), so an R user cannot miss why didx's intervals are
        narrower."""
        out = super().lines()
        if self.choice is not None and self.choice.kind == "analytic" and self.band == "pointwise":
            out = [R_DID_INTERVALS if line == "Intervals: pointwise" else line for line in out]
        return out


R_DID_INTERVALS = ("Intervals: pointwise analytic (R did's default: multiplier bootstrap with a uniform band — "
                   "use n_bootstrap=1000, did's biters, for its bootstrap SEs and uniform band)")


@dataclass(frozen=True, eq=False)
class CSSource:
    """The covariance source of every Callaway-Sant'Anna result: the estimands ``(A, U)`` of the fit's cells,
    the indices of the terms a uniform band covers, and the current choice."""

    fit: CSFit
    A: np.ndarray
    U: np.ndarray
    band_idx: np.ndarray
    band_text: str  # what the uniform band covers, e.g. "the 12 ATT(g,t); headline pointwise"
    choice: CSChoice

    @property
    def capabilities(self) -> Capabilities:
        return CS_CAPABILITIES

    @property
    def clusters(self) -> ClusterCodes:
        return self.fit.cluster_codes()

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        if request.clusters:
            name: str | None = request.clusters[0]
        else:  # None: as at fit time; "analytic": by unit / observation
            name = self.fit.cluster_name if request.vcov is None else None
        choice = self.fit.choice(func, name, codes, tuple(request.supplied))
        return self.vcov(choice), self.inference(choice)

    def with_choice(self, choice: CSChoice) -> CSSource:
        return dataclasses.replace(self, choice=choice)

    def linear_map(self, A: np.ndarray, U: np.ndarray, band_idx: np.ndarray, band_text: str) -> CSSource:
        return dataclasses.replace(self, A=A, U=U, band_idx=band_idx, band_text=band_text)

    # ---- numbers
    def draws(self, choice: CSChoice | None = None) -> np.ndarray | None:
        """Bootstrap draws (B, m) of the estimands, from the fit's multiplier sums (bootstrap choices only)."""
        fit = self.fit
        if (choice or self.choice).kind not in BOOTSTRAP_KINDS or fit.basis is None:
            return None
        return fit.store.draws(fit.basis, fit.scale, self.A, self.U)

    def vcov(self, choice: CSChoice | None = None) -> np.ndarray:
        """The covariance of the estimands under ``choice`` (default: the current one)."""
        ch = choice or self.choice
        V = ch.store.vcov(self.A, self.U, clustered=ch.clustered)
        if ch.kind in BOOTSTRAP_KINDS:
            draws = self.draws(ch)
            assert draws is not None
            se = mb.bootstrap_se(draws)
            zero = ~(np.sqrt(np.clip(np.diag(V), 0, None)) > np.sqrt(np.finfo(float).eps) * 10)
            se[zero] = np.nan
            V = mb.draws_vcov(draws, se)
        return np.asarray(V)

    def critical_value(self, vcov: np.ndarray, conf_level: float) -> float:
        """Critical value of the uniform band over ``band_idx`` under the current choice (pointwise for analytic
        SEs), computed from the current covariance ``vcov`` and, for the bootstrap, the draws."""
        pointwise = float(stats.norm.ppf(0.5 + conf_level / 2))
        if self.choice.kind == "analytic" or self.band_idx.size == 0:
            return pointwise
        if self.choice.kind in BOOTSTRAP_KINDS:
            draws = self.draws()
            assert draws is not None
            se = np.sqrt(np.clip(np.diag(vcov), 0, None))[self.band_idx]
            se = np.where(se > 0, se, np.nan)
            return mb.bootstrap_critical_value(draws[:, self.band_idx], se, conf_level)
        from didx.inference.bands import sup_t_critical_value

        return sup_t_critical_value(vcov[np.ix_(self.band_idx, self.band_idx)], conf_level=conf_level,
                                    n_draws=max(int(self.fit.n_bootstrap), 100), seed=self.fit.seed)

    # ---- text
    def inference(self, choice: CSChoice | None = None, details: Sequence[str] = ()) -> CSInference:
        """How the SEs of ``choice`` are computed, and what the intervals are."""
        ch = choice or self.choice
        fit = self.fit
        names: tuple[str, ...]
        if ch.clustered:
            desc, names = f"clustered by {ch.cluster}", (str(ch.cluster),)
        elif fit.mode == "rc":
            desc, names = "independent observations (repeated cross sections)", ()
        else:
            desc, names = f"clustered by unit ({fit.unit_name})", (str(fit.unit_name),)
        B = fit.n_bootstrap
        if ch.kind == "analytic":
            vcov_type = f"analytic (influence function), {desc}"
        elif ch.kind == "gaussian":
            vcov_type = (f"analytic (influence function), {desc}; gaussian multipliers (exact: sup-t critical "
                         f"value from {max(B, 100)} N(0, corr) draws, seed {fit.seed})")
        else:
            seeded = "unseeded" if fit.seed is None else f"seed {fit.seed}"
            vcov_type = (f"multiplier bootstrap ({ch.kind}, {B} draws, {seeded}), {desc}; SE = IQR / 1.349 (did)")
        uniform = ch.kind != "analytic" and self.band_idx.size > 0
        band = f"uniform (sup-t) over {self.band_text}" if uniform else "pointwise"
        return CSInference(vcov_type=vcov_type, n_clusters=(ch.n_clusters,) if names else (), cluster_names=names,
                           band=band, details=tuple(details), choice=ch)


def _cs(res: Result) -> CSSource:
    src = res._source
    if not isinstance(src, CSSource):
        raise ValueError(f"{type(res).__name__} carries no Callaway-Sant'Anna influence functions")
    return src


def _with_covariance(res: Any, V: np.ndarray, inference: Inference) -> Any:
    """The result with the covariance and choice of ``with_vcov`` (its aggregations and bands follow it)."""
    src = _cs(res)
    choice = inference.choice if isinstance(inference, CSInference) else None
    new_src = src if choice is None else src.with_choice(choice)
    return dataclasses.replace(res, vcov_matrix=V, inference=inference, _source=new_src)


def _uniform_tidy(res: Result, t: pd.DataFrame, conf_level: float) -> pd.DataFrame:
    src = _cs(res)
    if src.choice.kind == "analytic" or src.band_idx.size == 0:
        return t
    crit = src.critical_value(res.vcov_matrix, conf_level)
    rows = np.zeros(len(t), dtype=bool)
    rows[src.band_idx] = True
    se = t["std_error"].to_numpy()
    t.loc[rows, "conf_low"] = t.loc[rows, "estimate"].to_numpy() - crit * se[rows]
    t.loc[rows, "conf_high"] = t.loc[rows, "estimate"].to_numpy() + crit * se[rows]
    return t


def _uniform_critical_value(res: Result, conf_level: float) -> float:
    conf_level = check_conf_level(conf_level)
    return _cs(res).critical_value(res.vcov_matrix, conf_level)


def _influence_frame(res: Result) -> pd.DataFrame:
    src = _cs(res)
    fit = src.fit
    psi = src.choice.store.influence(src.A, src.U)
    index = pd.Index(fit.unit_labels, name=fit.unit_name if fit.unit_name is not None else "row")
    return pd.DataFrame(psi, index=index, columns=list(res.terms))


_INFLUENCE_DOC = """The influence functions of the terms (``did``'s ``inffunc``; ``V = IF'IF / n^2``, SE =
        ``sqrt(sum IF^2) / n``), one row per unit (indexed by unit label; by input row position for repeated cross
        sections) and one column per term, including the weight-estimation part of aggregated terms (``did``'s
        ``wif``). Built on request only: estimation and inference never form this n x K matrix."""


@dataclass(frozen=True, eq=False)
class CSAggregateResult(Result):
    """A ``simple``, ``group`` or ``calendar`` aggregation of ATT(g,t) (R's ``aggte``), or a linear combination
    of an event study's terms."""

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        return _uniform_tidy(self, super().tidy(conf_level), conf_level)

    def uniform_critical_value(self, conf_level: float = 0.95) -> float:
        """Sup-t critical value of the uniform band (bootstrap fits); the pointwise one otherwise."""
        return _uniform_critical_value(self, conf_level)

    def influence_functions(self) -> pd.DataFrame:
        return _influence_frame(self)

    influence_functions.__doc__ = _INFLUENCE_DOC

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> Result:
        out: Result = _with_covariance(self, V, inference)
        return out


@dataclass(frozen=True, eq=False)
class CSEventStudyResult(EventStudyResult):
    """The ``dynamic`` aggregation: effects by event time ``e = t - g`` (an event study).

    ``pre_period_meaning`` says what a lead is (universal base: against ``g - 1 - anticipation``, as TWFE; varying
    base: a one-period placebo ``t`` vs ``t - 1``); ``cross_covariance`` is True (leads and lags share the
    influence functions). ``aggregate(kind)`` takes the generic kinds (``"post"``, ``"pre"``, a mapping
    ``{event_time: weight}`` or weights over the post-period terms) and computes them from the influence
    functions, with the bootstrap draws when the fit has them.
    """

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        t = super().tidy(conf_level)
        if self.extras.get("uniform_band") is not None:
            return t
        return _uniform_tidy(self, t, conf_level)

    def uniform_critical_value(self, conf_level: float = 0.95) -> float:
        """Sup-t critical value of the uniform band over the event times (bootstrap fits); pointwise otherwise."""
        return _uniform_critical_value(self, conf_level)

    def influence_functions(self) -> pd.DataFrame:
        return _influence_frame(self)

    influence_functions.__doc__ = _INFLUENCE_DOC

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> Result:
        out: Result = _with_covariance(self, V, inference)
        return out

    def aggregate(self, kind: str | Mapping[float, float] | Sequence[float] | np.ndarray = "post") -> Result:
        a, label = self._weights(kind)
        src = _cs(self)
        new = src.linear_map(src.A @ a[:, None], src.U @ a[:, None], np.zeros(0, dtype=int), "")
        est = np.array([float(a @ self.coef)])
        inf = new.inference(details=self.inference.details)
        return CSAggregateResult(
            estimator=f"{self.estimator} — {label}", terms=(label,), coef=est, vcov_matrix=new.vcov(),
            headline=label, inference=inf, sample=self.sample, design=self.design, notes=self.notes, _source=new)


@dataclass(frozen=True, eq=False)
class ATTgtResult(Result):
    """Group-time average treatment effects ATT(g,t) (Callaway & Sant'Anna 2021) with their influence functions.

    Terms ``ATT(g,t)`` in ``did``'s order (by cohort, then period) and, last, the headline ``ATT (simple)``: the
    ``simple`` aggregation (post-treatment cells weighted by cohort size), so ``.estimate`` / ``.std_error`` are
    the overall ATT and its SE. ``term_info`` has ``group``, ``time``, ``event_time`` and ``base_period`` (NaN for
    the headline). ``aggregate()`` computes the four aggregations without refitting; ``pretest`` is the Wald
    pre-test of all pre-treatment ATT(g,t) = 0 (``did``'s ``W``/``Wpval``). ``with_vcov`` changes the
    clustering (analytic SEs) for this result and for the aggregations made from it.
    """

    @property
    def pretest(self) -> WaldTest | None:
        """Wald test that every pre-treatment ATT(g,t) is zero, from the analytic covariance with the result's
        current clustering (the analytic one for a bootstrap fit too, as ``did``); None if there is no
        pre-treatment cell or their covariance is singular."""
        src = _cs(self)
        fit = src.fit
        V = src.choice.store.vcov(np.eye(fit.n_cells), None, clustered=src.choice.clustered)
        return pretest(fit.att, V, fit.group, fit.time, fit.cell_terms)

    def cells(self, conf_level: float = 0.95) -> pd.DataFrame:
        """The tidy table of the ATT(g,t) cells only (without the headline)."""
        t = self.tidy(conf_level)
        return t[np.isfinite(t["group"].astype(float))].reset_index(drop=True)

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        return _uniform_tidy(self, super().tidy(conf_level), conf_level)

    def uniform_critical_value(self, conf_level: float = 0.95) -> float:
        """Sup-t critical value of the uniform band over the ATT(g,t) (bootstrap); pointwise without one."""
        return _uniform_critical_value(self, conf_level)

    def influence_functions(self) -> pd.DataFrame:
        return _influence_frame(self)

    influence_functions.__doc__ = _INFLUENCE_DOC

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> Result:
        out: Result = _with_covariance(self, V, inference)
        return out

    def _summary_extra(self) -> list[str]:
        return [f"Wald pre-test of pre-treatment ATT(g,t) = 0: {fmt_pretest(self.pretest)}"]

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """R did's ``ggdid``: ATT(g,t) by period, one panel per cohort, pre- and post-treatment cells coloured,
        pointwise intervals and the uniform band (see :func:`didx.results.plot.plot_att_gt`: ``cohorts=``,
        ``conf_level=``, ``uniform=``, ``title=``). Returns an array of Axes, one per cohort."""
        from didx.results.plot import plot_att_gt

        return plot_att_gt(self, ax=ax, **kwargs)

    def aggregate(self, kind: str = "simple", *, min_e: float = -np.inf, max_e: float = np.inf,
                  balance_e: int | None = None) -> Result:
        """Aggregate ATT(g,t) as R's ``aggte(type=)``: ``"simple"``, ``"group"``, ``"dynamic"`` or ``"calendar"``.

        Parameters
        ----------
        kind : the aggregation. ``dynamic`` returns a :class:`CSEventStudyResult` (an
            :class:`~didx.results.event.EventStudyResult`: terms ``e=k`` and the average over ``e >= 0``); the others
            a :class:`CSAggregateResult` whose last term is the overall average.
        min_e, max_e : event-time window (``dynamic``); ``max_e`` also caps the cells of ``simple`` and ``group``.
        balance_e : keep only cohorts observed for at least ``balance_e`` periods after treatment (``dynamic``).

        SEs come from the stored influence functions, including the term for the estimated cohort-share weights
        (``did``'s ``wif``), with this result's covariance choice (its clustering; with a multiplier bootstrap the
        same draws as the ATT(g,t)).
        """
        src = _cs(self)
        fit = src.fit
        agg = aggregate(kind, group=fit.group, time=fit.time, att=fit.att, cohort_code=fit.cohort_code,
                        reference=fit.reference, pg_cohort=fit.pg_cohort, min_e=min_e, max_e=max_e,
                        balance_e=balance_e, func="ATTgtResult.aggregate")
        return make_aggregate_result(self, src, agg, min_e=min_e, max_e=max_e, balance_e=balance_e)


_AGG_NAMES = {"simple": "simple (post-treatment ATT(g,t) weighted by cohort size)",
              "group": "group (by cohort, then averaged with cohort-size weights)",
              "dynamic": "dynamic (by event time e = t - g; overall = average over e >= 0)",
              "calendar": "calendar (by period, then averaged)"}


def make_aggregate_result(parent: Result, src: CSSource, agg: Aggregation, *, min_e: float, max_e: float,
                          balance_e: int | None) -> Result:
    """The result of one aggregation, with the parent's covariance choice."""
    band_idx = np.array([agg.terms.index(t) for t in agg.band_terms], dtype=int)
    what = "event times" if agg.kind == "dynamic" else f"{agg.kind} effects"
    new = src.linear_map(agg.A, agg.U, band_idx, f"the {band_idx.size} {what}; overall average pointwise")
    inf = new.inference(details=parent.inference.details)
    design = [*parent.design, ("Aggregation", _AGG_NAMES[agg.kind])]
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
    common: dict[str, Any] = dict(estimator=f"{src.fit.family}, {agg.kind} aggregation",
                                  terms=agg.terms, coef=agg.estimate, vcov_matrix=new.vcov(), headline=agg.terms[-1],
                                  inference=inf, sample=parent.sample, design=tuple(design),
                                  term_info=dict(agg.info), notes=parent.notes, _source=new,
                                  extras={"aggregation": agg.kind})
    if agg.kind == "dynamic":
        from didx.registry import PRE_PERIOD

        common["extras"]["reference"] = agg.reference
        return CSEventStudyResult(pre_period_meaning=PRE_PERIOD[f"{src.fit.pre_period_key}_{src.fit.base_period}"],
                                  cross_covariance=True, **common)
    return CSAggregateResult(**common)


def pretest(att: np.ndarray, V: np.ndarray, group: np.ndarray, time: np.ndarray,
            names: Sequence[str]) -> WaldTest | None:
    """``did``'s Wald pre-test: all ATT(g,t) with ``g > t`` and a non-zero SE are zero."""
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    pre = np.flatnonzero((group > time) & (se > np.sqrt(np.finfo(float).eps) * 10))
    if pre.size == 0:
        return None
    Vp = V[np.ix_(pre, pre)]
    if not np.all(np.isfinite(Vp)) or 1.0 / np.linalg.cond(Vp, 1) <= np.finfo(float).eps:
        return None
    b = att[pre]
    stat = float(b @ np.linalg.solve(Vp, b))
    q = int(pre.size)
    pval = float(stats.chi2.sf(stat, q))
    return WaldTest(statistic=stat, df=q, p_value=pval, f_statistic=stat / q, f_df=None, f_p_value=pval,
                    terms=tuple(names[int(k)] for k in pre), label="Wald pre-test")


def fmt_pretest(w: WaldTest | None) -> str:
    if w is None:
        return "not available (no pre-treatment cells, or singular covariance)"
    return f"chi2({w.df}) = {w.statistic:.4f}, p = {w.p_value:.5f}"
