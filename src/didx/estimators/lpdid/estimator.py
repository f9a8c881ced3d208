"""Local-projections difference-in-differences (LP-DiD; Dube, Girardi, Jordà & Taylor 2025).

For each horizon ``h = 0 .. H`` (``post_window``) and lead ``h = 2 .. Q`` (``pre_window``) one regression

    y_{i,t+h} - y_{i,t-1} = beta_h Delta D_it + delta_t + e_it        (leads: y_{i,t-h} - y_{i,t-1}, at -h)

on the rows of units entering treatment at ``t`` (``Delta D_it = 1``) and of clean controls: units not treated by
``t + h`` (leads: by ``t``), i.e. never treated or treated later (``control="clean"``, the paper's), only the never
treated (``"never"``, Stata lpdid's ``nevertreated``) or only units treated later (``"not_yet"``). Event time -1 is
the base (0). Without reweighting ``beta_h`` is a variance-weighted ATT (positive weights
``n_t p_t (1 - p_t)``); ``reweight=True`` weights the rows of period ``t`` by ``1 / (1 - p_t)`` (``p_t`` the treated
share at ``t``), which gives every treated observation the same weight: the equally weighted ATT (the paper's
reweighted LP-DiD, as its R example's weighted regression). The pooled estimates replace the outcome by
``mean(y_t .. y_{t+H}) - y_{t-1}`` (post, clean controls through ``t + H``, the horizon-``H`` weights) and
``mean(y_{t-Q} .. y_{t-2}) - y_{t-1}`` (pre).

Standard errors: each regression's CR1 (fixest / reghdfe conventions: ``(n-1)/(n-K) G/(G-1)``, ``K`` = 1 + the
period effects), and the covariance between regressions from the same cluster sums of their influence functions
(stacked, as Stata's ``suest``; each term scaled by the square root of the two regressions' factors), so that joint
tests, aggregations and ``honest_did`` use a full covariance. Clusters must be constant within units.

References: Dube, A., Girardi, D., Jordà, Ò. & Taylor, A. M. (2025), "A local projections approach to
difference-in-differences", Journal of Applied Econometrics 40(7); Stata ``lpdid`` (Busch & Girardi) and the
authors' R examples (github.com/danielegirardi/lpdid), whose definitions are reproduced here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped
from didx._validate import as_list, check_option, cluster_count_check, fmt_value
from didx.estimators.lpdid.core import Fits, Spec, fit_cells, fit_rows
from didx.estimators.regression.event_study import subset_panel
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest
from didx.registry import PRE_PERIOD
from didx.results.base import Inference
from didx.results.event import EventStudyResult

__all__ = ["LpdidResult", "from_panel", "lpdid"]

FUNC = "lpdid"
CONTROLS = ("clean", "not_yet", "never")
POOLED = ("pooled_post", "pooled_pre")


@dataclass(frozen=True, eq=False)
class LpdidResult(EventStudyResult):
    """LP-DiD: one coefficient per horizon (``event::h``, ``h = -Q .. -2, 0 .. H``; -1 is the base), and the pooled
    post- and pre-window estimates (``pooled_post``, the headline, and ``pooled_pre``; no event time).

    ``aggregate("pooled")`` is the pooled post estimate as its own result; the event-study kinds (``"post"``,
    ``"pre"``, weights) work as for every event study, with the joint covariance of the regressions.
    """

    def aggregate(self, kind: str | Mapping[float, float] | Sequence[float] | np.ndarray = "post") -> Any:
        if isinstance(kind, str) and kind == "pooled":
            a = np.zeros(len(self.terms))
            a[self.terms.index("pooled_post")] = 1.0
            from didx.inference.contract import LinearMapSource
            from didx.results.base import Result

            return Result(estimator=f"{self.estimator} — pooled post-treatment effect", terms=("pooled_post",),
                          coef=a[None, :] @ self.coef, vcov_matrix=a[None, :] @ self.vcov_matrix @ a[:, None],
                          headline="pooled_post", inference=self.inference, sample=self.sample, design=self.design,
                          notes=self.notes, _source=LinearMapSource(self._source, a[None, :])
                          if self._source is not None else None)
        return super().aggregate(kind)


@dataclass(frozen=True, eq=False)
class LpdidSource:
    """Covariance of the LP-DiD regressions from the units' influence sums (clusters constant within units)."""

    influence: np.ndarray   # (N, R)
    present: np.ndarray     # (N, R)
    n_obs: np.ndarray
    k: np.ndarray
    unit_of_row: np.ndarray
    n_units: int
    clusters: ClusterCodes
    default_cluster: str
    treated_unit: np.ndarray  # per unit: treated at some point

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vcov=("CR0", "CR1"), max_clusters=1, new_clusters=True, ssc=False,
                            default=f"CR1 clustered by {self.default_cluster}")

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        kind = request.vcov or "CR1"
        if kind not in ("CR0", "CR1"):
            raise InvalidOptionError(f"{func}: lpdid offers vcov='CR1' or 'CR0' (cluster-robust); got {kind!r}.")
        if len(request.clusters) > 1:
            raise InvalidOptionError(f"{func}: lpdid clusters by one column; got {list(request.clusters)}.")
        name = request.clusters[0] if request.clusters else self.default_cluster
        row_codes = np.asarray(codes[name] if name in codes else self.clusters.stored[name])
        return self.compute(func, kind, name, row_codes)

    def compute(self, func: str, kind: str, name: str, row_codes: np.ndarray) -> tuple[np.ndarray, Inference]:
        if row_codes is self.unit_of_row:
            cu = np.arange(self.n_units, dtype=np.int64)
        else:
            cu = np.full(self.n_units, -1, dtype=np.int64)
            cu[self.unit_of_row] = row_codes
            if not np.array_equal(cu[self.unit_of_row], row_codes):
                raise InvalidOptionError(
                    f"{func}: the cluster column {name!r} varies within units; LP-DiD's covariance is computed from "
                    f"the units' influence sums, so clusters must contain whole units. Fix: cluster by the unit or a "
                    f"coarser level (e.g. the state)."
                )
            if cu.min() < 0 or cu.max() >= 2 * self.n_units:
                _, cu = np.unique(cu, return_inverse=True)
                cu = cu.reshape(-1)
        C = int(cu.max()) + 1
        R = self.influence.shape[1]
        if self.n_units == C and row_codes is self.unit_of_row:
            S = self.influence
            G = self.present.sum(axis=0).astype(np.float64)
        else:
            S = np.empty((C, R))
            G = np.empty(R)
            for r in range(R):
                S[:, r] = np.bincount(cu, weights=self.influence[:, r], minlength=C)
                G[r] = np.count_nonzero(np.bincount(cu[self.present[:, r]], minlength=C))
        for g in G:
            cluster_count_check(func, name, int(g))
        if kind == "CR1":
            f = (self.n_obs - 1) / (self.n_obs - self.k) * G / (G - 1)
        else:
            f = np.ones_like(G)
        root = np.sqrt(f)
        V = (S.T @ S) * np.outer(root, root)
        n_treated_cl = int(np.count_nonzero(np.bincount(cu[self.treated_unit], minlength=C)))
        inf = Inference(
            vcov_type=f"{kind}, clustered by {name}", df=float(G.min() - 1), n_clusters=(int(G.max()),),
            cluster_names=(name,),
            small_sample="(n-1)/(n-K) G/(G-1) per regression (fixest / reghdfe)" if kind == "CR1" else "none",
            details=(f"Treated clusters: {n_treated_cl} of {C}",
                     "Covariance between regressions: stacked cluster sums of their influence functions (suest)"),
        )
        return V, inf


def lpdid(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str | None = None,
    pre_window: int,
    post_window: int,
    cohort: str | None = None,
    control: str = "clean",
    reweight: bool = False,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    vcov: str | None = None,
) -> LpdidResult:
    """Local-projections DiD (Dube, Girardi, Jordà & Taylor 2025), absorbing binary treatment.

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    treat : 0/1 treatment indicator, absorbing (once 1, it stays 1).
    cohort : instead of ``treat``, the first treated period of each unit (never treated: 0, NaN, inf); the
        treatment is then ``1[time >= cohort]``.
    pre_window : Q >= 1: leads ``-Q .. -2`` (event time -1 is the base; ``pre_window=1`` estimates none).
    post_window : H >= 0: horizons ``0 .. H`` and the pooled post window.
    control : ``"clean"`` (default): never treated and not yet treated at ``t + h``; ``"not_yet"``: only units
        treated later than ``t + h``; ``"never"``: only never-treated units.
    reweight : equally weighted ATT (rows of period ``t`` weighted by ``1 / (1 - p_t)``); default the
        variance-weighted one.
    covariates : controls added to every regression (values in the row's period ``t``, when the treated units enter
        treatment, as Stata's ``controls()``; not the base period ``t - 1``); not with ``reweight``
        (that needs the paper's regression adjustment, not implemented).
    cluster : cluster column (constant within units); default ``unit``.
    vcov : ``"CR1"`` (default; fixest / reghdfe small-sample factors) or ``"CR0"``.

    Returns
    -------
    LpdidResult : event study (``event::h``) plus ``pooled_post`` (headline) and ``pooled_pre``.
    """
    _check_options(pre_window, post_window, control, reweight, covariates, vcov)
    if (treat is None) == (cohort is None):
        raise InvalidOptionError(
            f"{FUNC}: give the treatment as treat= (a 0/1 column) or cohort= (first treated period), exactly one of "
            f"them; got treat={treat!r}, cohort={cohort!r}."
        )
    panel = build_panel(data, func=FUNC, y=y, unit=unit, time=time, treat=treat, cohort=cohort,
                        covariates=covariates, cluster=cluster, require_control="none")
    return _estimate(panel, pre_window=pre_window, post_window=post_window, control=control, reweight=reweight,
                     cluster=cluster, vcov=vcov)


def from_panel(panel: Panel, *, pre_window: int, post_window: int, control: str = "clean", reweight: bool = False,
               cluster: str | None = None, vcov: str | None = None) -> LpdidResult:
    """:func:`lpdid` on a panel from :func:`didx._panel.build_panel` (its ``treat``, or the one its cohort gives)."""
    _check_options(pre_window, post_window, control, reweight, panel.covariate_names or None, vcov)
    return _estimate(panel, pre_window=pre_window, post_window=post_window, control=control, reweight=reweight,
                     cluster=cluster, vcov=vcov)


def _check_options(pre_window: Any, post_window: Any, control: str, reweight: Any, covariates: Any,
                   vcov: Any = None) -> None:
    check_option(FUNC, "control", control, CONTROLS)
    if vcov is not None:
        check_option(FUNC, "vcov", vcov, ("CR1", "CR0"))
    for name, value, low in (("pre_window", pre_window, 1), ("post_window", post_window, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise InvalidOptionError(
                f"The '{name}' parameter of {FUNC} must be an integer >= {low} (a number of periods). Got "
                f"{value!r} instead."
            )
    if not isinstance(reweight, bool | np.bool_):
        raise InvalidOptionError(f"The 'reweight' parameter of {FUNC} must be True or False. Got {reweight!r}.")
    if reweight and as_list(covariates):
        raise InvalidOptionError(
            f"{FUNC}: reweight=True with covariates needs the paper's regression-adjustment estimator, which is not "
            f"implemented. Fix: drop covariates= or reweight=True."
        )


def _cohorts(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's first treated period code (``inf``: never) and its first observed period code; errors if the
    treatment is not absorbing (a 0 observed after the first 1)."""
    assert panel.unit is not None and panel.treat is not None
    N, T = panel.n_units, panel.n_periods
    u, t = panel.unit, panel.time
    flat = u * T + t
    observed_flat = np.zeros(N * T, dtype=bool)
    observed_flat[flat] = True
    treated_flat = np.zeros(N * T, dtype=bool)
    treated_flat[flat[panel.treat == 1]] = True
    observed = observed_flat.reshape(N, T)
    treated = treated_flat.reshape(N, T)
    ever = treated.any(axis=1)
    first = np.where(ever, treated.argmax(axis=1), T)
    bad = observed & ~treated & (np.arange(T)[None, :] > first[:, None])
    if bad.any():
        unit, period = np.argwhere(bad)[0]
        label = panel.unit_labels[unit] if panel.unit_labels is not None else unit
        raise DataError(
            f"{FUNC}: the treatment {panel.names.get('treat')!r} of unit {fmt_value(label)} goes back to 0 at "
            f"{panel.names.get('time')}={fmt_value(panel.period_labels[period])} after being 1; this lpdid handles "
            f"absorbing treatments only. Fix: code the treatment as 1 from the first treated period on, or use "
            f"didx.dcdh for non-absorbing treatments."
        )
    g = np.where(ever, first.astype(np.float64), np.inf)
    return g, observed.argmax(axis=1)


def _specs(pre_window: int, post_window: int) -> list[Spec]:
    specs = [Spec(f"event::{-h}", float(-h), "pre", h, 0) for h in range(pre_window, 1, -1)]
    specs += [Spec(f"event::{h}", float(h), "post", h, h) for h in range(post_window + 1)]
    specs.append(Spec("pooled_post", np.nan, "pooled_post", post_window, post_window))
    if pre_window >= 2:
        specs.append(Spec("pooled_pre", np.nan, "pooled_pre", pre_window, 0))
    return specs


def _estimate(panel: Panel, *, pre_window: int, post_window: int, control: str, reweight: bool,
              cluster: str | None, vcov: str | None) -> LpdidResult:
    if panel.unit is None or panel.treat is None:
        raise InvalidOptionError(f"{FUNC}: the panel needs unit= and a treatment (treat= or cohort=).")
    names = panel.names
    unit_name = str(names["unit"])
    g, first_obs = _cohorts(panel)
    always = np.isfinite(g) & (g <= first_obs)
    if always.any():
        keep = ~always[panel.unit]
        lost = Dropped("units treated in their first observed period (no untreated base period)",
                       int((~keep).sum()), int(always.sum()))
        panel = subset_panel(panel, keep, panel.report.with_dropped(lost))
        g, first_obs = _cohorts(panel)
    assert panel.unit is not None
    if not np.isfinite(g).any():
        raise DesignError(f"{FUNC}: no unit enters treatment in the sample. Fix: check {names.get('treat')!r}.")
    if control == "never" and np.isfinite(g).all():
        raise DesignError(f"{FUNC}: control='never' needs never-treated units. Fix: use control='clean'.")
    if control == "not_yet" and np.unique(g[np.isfinite(g)]).shape[0] < 2:
        raise DesignError(
            f"{FUNC}: control='not_yet' compares units entering treatment with units treated later (the never treated "
            f"excluded), but every treated unit enters treatment at the same period. Fix: use control='clean' (never "
            f"treated and not yet treated) or control='never'."
        )
    N, T = panel.n_units, panel.n_periods
    if post_window > T - 2 or pre_window > T - 1:
        raise InvalidOptionError(
            f"{FUNC}: pre_window={pre_window} / post_window={post_window} do not fit in {T} periods (at most "
            f"pre_window={T - 1}, post_window={T - 2}). Fix: shorten the window."
        )
    specs = _specs(pre_window, post_window)
    Y = np.full((N, T), np.nan)
    Y[panel.unit, panel.time] = panel.y
    p = panel.covariates.shape[1]
    fits: Fits
    if panel.is_balanced and p == 0:
        fits = fit_cells(Y, g, specs, control, reweight)
        method = "cohort x period sums (balanced panel, no covariates: identical to the regressions)"
    else:
        observed = np.zeros((N, T), dtype=bool)
        observed[panel.unit, panel.time] = True
        W = None
        if p:
            W = np.zeros((p, N, T))
            for j in range(p):
                W[j, panel.unit, panel.time] = panel.covariates[:, j]
        fits = fit_rows(Y, observed, g, W, panel.covariate_names, specs, control, reweight)
        method = "one least-squares regression per horizon with period effects absorbed"
    codes = dict(panel.codes)
    codes.setdefault(unit_name, panel.unit)
    clusters = ClusterCodes(codes, None if panel.all_rows_kept else panel.row_index, panel.report.n_input_rows,
                            panel.fingerprint)
    cl = cluster or unit_name
    source = LpdidSource(influence=fits.influence, present=fits.present, n_obs=fits.n_obs, k=fits.k,
                         unit_of_row=panel.unit, n_units=N, clusters=clusters, default_cluster=cl,
                         treated_unit=np.isfinite(g))
    V, inf = source.compute(FUNC, vcov or "CR1", cl, np.asarray(clusters.stored[cl]))
    periods = panel.periods
    # leads and lags are consecutive observed periods (Stata's L. and F. on the period index); with evenly spaced
    # periods (every 2 years, say) event times are reported in the time column's units, as the other estimators
    gaps = np.diff(periods)
    step = float(gaps[0]) if gaps.size and bool(np.all(gaps == gaps[0])) else 1.0
    unit_text = (f"event times in units of {names['time']} (periods every {fmt_value(step)})" if gaps.size and
                 bool(np.all(gaps == gaps[0])) else "uneven periods: event times count periods, not time units")
    design = (
        ("Estimator", "Local-projections DiD (Dube, Girardi, Jordà & Taylor 2025)"),
        ("Outcome", str(names["y"])),
        ("Treatment", f"{names.get('treat') or names.get('cohort')} (absorbing; Delta D = 1 in the first treated "
                      f"period)"),
        ("Control group", {"clean": "clean controls: never treated and not yet treated at t + h (leads: at t)",
                           "not_yet": "units treated later than t + h (leads: than t; never treated excluded)",
                           "never": "never-treated units only"}[control]),
        ("Weighting", "reweighted: every treated observation weighted equally (1 / (1 - p_t))" if reweight
         else "OLS: variance-weighted ATT (weights n_t p_t (1 - p_t))"),
        ("Window", f"leads -{pre_window}..-2, horizons 0..{post_window}; base period t - 1 (event time -1)"),
        ("Pooled", f"post: mean(y_t..y_t+{post_window}) - y_t-1; pre: mean(y_t-{pre_window}..y_t-2) - y_t-1"),
        ("Fixed effects", f"{names['time']} (one regression per horizon)"),
        ("Covariates", ", ".join(panel.covariate_names) + " (values at t, the treatment-entry period)"
         if panel.covariate_names else "none"),
        ("Computation", method),
        ("Periods", f"{fmt_value(periods[0])} .. {fmt_value(periods[-1])} ({T}); {unit_text}"),
    )
    terms = tuple(s.label if not np.isfinite(s.event_time) else f"event::{fmt_value(s.event_time * step)}"
                  for s in specs)
    return LpdidResult(
        estimator="LP-DiD" + (" (reweighted)" if reweight else ""), terms=terms, coef=fits.coef, vcov_matrix=V,
        headline="pooled_post", inference=inf, sample=panel.report, design=design,
        term_info={"event_time": np.array([s.event_time * step for s in specs]), "n_obs": fits.n_obs,
                   "n_treated": fits.n_treated},
        extras={"reference": (-step,)}, notes=(), _source=source, pre_period_meaning=PRE_PERIOD["lpdid"],
        cross_covariance=True,
    )

