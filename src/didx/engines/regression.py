"""Static TWFE and the TWFE event study on a balanced panel (treatment from the cohort) from the unit moments.

On a balanced panel the two-way demeaned treatment depends only on (cohort g, period t):
``D~_gt = D_gt - Dbar_g. - Dbar_.t + Dbar``, so ``beta = sum_g n_g D~_g' mu_g / sum_g n_g |D~_g|^2`` (``mu_g`` the
cohort's period means) and a unit's cluster score ``sum_t D~_gt e_it = D~_g' y'_i + c_g`` is affine in its centred
outcomes ``y'_i`` with ``c_g = D~_g' (mu_g - ybar_.t) - beta |D~_g|^2`` (``shared/design/SCALE.md``). The
cluster-robust meat is ``sum_g [n_g c_g^2 + 2 c_g D~_g' S_g + D~_g' P_g D~_g]`` by unit, or from the cluster x
cohort sums for a coarser cluster; the small-sample factor is fixest's (:func:`didx.inference.vcov.k_for_ssc`).
Numerically the in-memory ``twfe`` (fixest's ``feols(y ~ d | unit + time)``). Unbalanced panels, ``treat=``,
covariates, extra fixed effects, weights and other covariance types need the rows: an error names the in-memory
alternative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._sample import Dropped
from didx._validate import fmt_value
from didx.engines.cs import ROWS_FIX
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, unit_moments
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest
from didx.inference.vcov import SSC, k_for_ssc
from didx.linalg.absorb import EXACT_MAX_LEVELS
from didx.linalg.ols import independent_columns
from didx.results.base import Inference

FEW_CLUSTERS = 42


@dataclass(frozen=True, eq=False)
class FixedSource:
    """The covariance source of an engine regression: the fit-time covariance only (the rows are not kept)."""

    V: np.ndarray
    inference: Inference
    names: tuple[str, ...]
    n_input_rows: int

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vcov=("CR1",), max_clusters=1, new_clusters=False, ssc=False, bootstrap=(),
                            default="the fit-time CR1 covariance (the engine kept no rows)")

    @property
    def clusters(self) -> ClusterCodes:
        return ClusterCodes({n: np.empty(0, dtype=np.int64) for n in self.names}, None, self.n_input_rows, None)

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        if request.clusters and tuple(request.clusters) != self.names[-1:]:
            raise InvalidOptionError(f"{func}: the engine fit kept the sums for clustering by {self.names[-1]} only. "
                                     f"Fix: refit with cluster= that column, or {ROWS_FIX}.")
        return self.V, self.inference


def twfe_moments(src: EngineInput, result_cls: type, design: Callable[..., tuple[list[tuple[str, str]], list[str]]],
                 *, y: str, unit: str, time: str, treat: str | None, cohort: str | None,
                 covariates: Any, fe: Any, vcov: str | None, cluster: str | Sequence[str] | None, weights: str | None,
                 ssc: SSC | None, drop_singletons: bool, collapse: str | None) -> Any:
    """:func:`didx.twfe` through an engine (see the module docstring); ``result_cls`` and ``design`` are the
    in-memory estimator's result type and design text (passed in, so this module does not import it)."""
    func = "twfe"
    what = None
    if treat is not None or cohort is None:
        what = "treat= (a 0/1 column; the engines take the treatment from cohort=)"
    elif covariates:
        what = "covariates"
    elif fe:
        what = "extra fixed effects (fe=)"
    elif weights is not None:
        what = "weights"
    elif collapse is not None:
        what = "collapse="
    elif vcov not in (None, "CR1"):
        what = f"vcov={vcov!r} (the engines give the default CR1)"
    clusters = [cluster] if isinstance(cluster, str) else list(cluster or [])
    if len(clusters) > 1:
        what = "two-way clustering"
    if what is not None:
        raise InvalidOptionError(f"{func}: {what} not available through the engines yet. Fix: {ROWS_FIX}.")
    assert cohort is not None
    cl_name = clusters[0] if clusters and clusters[0] != unit else None
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="untreated_obs"))
    if not m.report.balanced:
        raise InvalidOptionError(
            f"{func}: the engines run TWFE on balanced panels ({m.report.n_units_with_gaps or 'some'} units here miss "
            f"periods; the unbalanced case needs sums by observation pattern, not done yet). Fix: {ROWS_FIX}."
        )
    ssc = ssc if ssc is not None else SSC()
    coef, V, inf, timing = _fit(m, unit, cl_name, ssc)
    fe_names = [unit, time]
    method = "exact (concentrated solve)" if min(m.n_units, m.n_periods) <= EXACT_MAX_LEVELS else \
        "alternating projections"
    des, notes = design(timing, y=y, treat=None, cohort=cohort, time=time, fe=fe_names, method=method,
                        covariates=(), weights=None, n_singletons=0, drop_singletons=drop_singletons)
    des.append(("Engine", src.describe))
    names = (unit,) if cl_name is None else (unit, cl_name)
    return result_cls(estimator="Two-way fixed effects", terms=("treated",), coef=np.array([coef]), vcov_matrix=V,
                      headline="treated", inference=inf, sample=m.report, design=tuple(des), notes=tuple(notes),
                      _source=FixedSource(V=V, inference=inf, names=names, n_input_rows=m.report.n_input_rows))


def _fit(m: Moments, unit: str, cl_name: str | None,
         ssc: SSC) -> tuple[float, np.ndarray, Inference, tuple[int, int, int]]:
    """beta, its CR1 covariance, the inference text and the treatment timing from the moments."""
    D = (m.periods[None, :] >= m.cohort_values[:, None]).astype(np.float64)  # (G, T); never treated: inf
    fit = regress(m, D[:, :, None], unit, cl_name, ssc, treated=np.asarray((D > 0).any(axis=1)))
    ng = np.bincount(m.gc, weights=m.n, minlength=m.cohort_values.shape[0])
    always = m.cohort_values <= m.periods[0]
    adopt = np.isfinite(m.cohort_values) & ~always & (ng > 0)
    timing = (int(adopt.sum()), int(ng[always].sum()), 0)
    return float(fit.coef[0]), fit.V, fit.inference, timing


@dataclass(frozen=True)
class CellFit:
    """A regression on cohort x period regressors: kept columns, coefficients, CR1 covariance, inference."""

    kept: np.ndarray
    coef: np.ndarray
    V: np.ndarray
    inference: Inference


def regress(m: Moments, X: np.ndarray, unit: str, cl_name: str | None, ssc: SSC, *,
            treated: np.ndarray) -> CellFit:
    """``y_it = a_i + l_t + X[g_i, t] b + e_it`` on a balanced panel, CR1 by unit or ``cl_name``.

    ``X`` (G, T, K) holds the regressors of each cohort x period cell; ``treated`` (G,) flags the cohorts counted
    as treated clusters. The two-way demeaned regressors are cell tables; ``b`` and the unit scores
    ``X~_g' y'_i + c_g`` follow from the moments (module docstring). Collinear columns are dropped as
    :func:`didx.linalg.ols.independent_columns` judges them in memory."""
    G, T = m.cohort_values.shape[0], m.n_periods
    ng = np.bincount(m.gc, weights=m.n, minlength=G)
    N = float(ng.sum())
    Xg = X.mean(axis=1)  # (G, K)
    Xt = np.tensordot(ng, X, axes=(0, 0)) / N  # (T, K)
    Xtil = X - Xg[:, None, :] - Xt[None, :, :] + (ng @ Xg) / N
    A = np.einsum("g,gtk,gtl->kl", ng, Xtil, Xtil)
    scale = np.einsum("g,gtk->k", ng, X * X)
    kept = independent_columns(A, scale)
    Xtil, A = Xtil[:, :, kept], A[np.ix_(kept, kept)]
    mu = m.cell_means()
    b = np.linalg.solve(A, np.einsum("g,gtk,gt->k", ng, Xtil, mu))
    ybar_t = ng @ mu / N
    XX = np.einsum("gtk,gtl->gkl", Xtil, Xtil)
    c = np.einsum("gtk,gt->gk", Xtil, mu - ybar_t) - np.einsum("gkl,l->gk", XX, b)  # (G, K)
    S, P = m.centred(mu)
    xk = Xtil[m.gc]  # (Kg, T, K)
    n = m.n.astype(np.float64)
    ck = c[m.gc]
    lin = np.einsum("jtk,jt->jk", xk, S)
    if cl_name is None:
        meat = (np.einsum("j,jk,jl->kl", n, ck, ck) + np.einsum("jk,jl->kl", ck, lin)
                + np.einsum("jk,jl->kl", lin, ck) + np.einsum("jtk,jts,jsl->kl", xk, P, xk))
        n_cl = int(N)
        treated_cl = int(ng[treated].sum())
    else:
        assert m.cl is not None
        score = np.zeros((m.n_clusters, len(kept)))
        np.add.at(score, m.cl, n[:, None] * ck + lin)
        meat = score.T @ score
        n_cl = m.n_clusters
        treated_cl = int(np.unique(m.cl[treated[m.gc] & (m.n > 0)]).shape[0])
    n_obs = int(N) * T
    K = k_for_ssc(len(kept), int(N) + T - 1, [int(N), T], [True, False], ssc, True)
    adj = (n_obs - 1) / (n_obs - K) if ssc.adj else 1.0
    factor = adj * (n_cl / (n_cl - 1) if ssc.cluster_adj else 1.0)
    Ainv = np.linalg.inv(A)
    V = factor * (Ainv @ (0.5 * (meat + meat.T)) @ Ainv)
    label = cl_name or unit
    details = [f"Treated clusters: {treated_cl} of {n_cl}"]
    if n_cl < FEW_CLUSTERS or treated_cl < 10:
        details.append(
            f"Few clusters ({n_cl}, {treated_cl} treated): cluster-robust SEs can over-reject. Remedies: "
            f"result.wild_bootstrap(term) (wild cluster bootstrap) or collapse='group_period' (group x period means)."
        )
    details.append(f"Coefficients counted for the small-sample factor K: {K}")
    inf = Inference(vcov_type=f"CR1, clustered by {label}", df=float(n_cl - 1), n_clusters=(n_cl,),
                    cluster_names=(label,), small_sample=ssc.describe(True), details=tuple(details))
    return CellFit(kept=kept, coef=b, V=V, inference=inf)


def event_study_moments(src: EngineInput, result_cls: type, design: Callable[..., list[tuple[str, str]]],
                        headline: Callable[[Sequence[str], np.ndarray], str], *, y: str, unit: str, time: str,
                        cohort: str, refs: tuple[float, ...], win: tuple[float, float] | None, bin_endpoints: bool,
                        covariates: Any, vcov: str | None, cluster: str | Sequence[str] | None,
                        weights: str | None, ssc: SSC | None, collapse: str | None) -> Any:
    """The TWFE event study (``didx.event_study``, estimator ``"twfe"``) through an engine: balanced panels, all
    observed event times (no window), CR1 by unit or ``cluster``; ``result_cls``, ``design`` and ``headline``
    are the in-memory estimator's (passed in, so this module does not import it)."""
    from didx.registry import PRE_PERIOD

    func = "event_study"
    what = None
    if win is not None or bin_endpoints:
        what = "window= / bin_endpoints="
    elif covariates:
        what = "covariates"
    elif weights is not None:
        what = "weights"
    elif collapse is not None:
        what = "collapse="
    elif vcov not in (None, "CR1"):
        what = f"vcov={vcov!r} (the engines give the default CR1)"
    clusters = [cluster] if isinstance(cluster, str) else list(cluster or [])
    if len(clusters) > 1:
        what = "two-way clustering"
    if what is not None:
        raise InvalidOptionError(f"{func}: {what} not available through the engines yet. Fix: {ROWS_FIX}.")
    cl_name = clusters[0] if clusters and clusters[0] != unit else None
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="untreated_obs"))
    if not m.report.balanced:
        raise InvalidOptionError(
            f"{func}: the engines run the TWFE event study on balanced panels ({m.report.n_units_with_gaps or 'some'}"
            f" units here miss periods). Fix: {ROWS_FIX}."
        )
    # always-treated units (cohort <= first period) are dropped, as in memory
    g_of = m.cohort_values
    always = g_of[m.gc] <= m.periods[0]
    n_always = int(m.n[always].sum())
    report = m.report
    if n_always:
        report = report.with_dropped(Dropped(
            f"always treated ({cohort} <= first period {m.labels[0]!r}): no pre-treatment period",
            int(m.rows()[always].sum()), n_always))
        m = m.select(~always)
        report = dataclasses.replace(report, n_obs=int(m.rows().sum()), n_units=m.n_units)
    treated = np.isfinite(g_of)
    if not (treated[m.gc] & (m.n > 0)).any():
        raise DesignError(
            f"{func}: every treated unit of {cohort!r} ({n_always} units) is treated from the first period "
            f"{fmt_value(m.labels[0])} on (always treated, dropped): no unit's treatment starts inside the panel, so "
            f"no event-time effect is identified. Fix: check the {cohort!r} column (first treated period; never "
            f"treated as 0/NaN), or use data that include periods before treatment."
        )
    ng = np.bincount(m.gc, weights=m.n, minlength=g_of.shape[0])
    present = treated & (ng > 0)
    k = np.where(present[:, None], m.periods[None, :] - np.where(present, g_of, 0.0)[:, None], np.nan)  # (G, T)
    observed = np.unique(k[np.isfinite(k)])
    missing_refs = [r for r in refs if not np.any(np.isclose(observed, r))]
    if missing_refs:
        shown = ", ".join(f"{v:g}" for v in observed[:20])
        raise DesignError(
            f"{func}: the reference event time(s) {', '.join(f'{r:g}' for r in missing_refs)} are never "
            f"observed (observed event times: {shown}). Fix: choose ref among the observed pre-treatment event times."
        )
    est_k = np.array([v for v in observed if not np.any(np.isclose(v, refs))])
    X = np.isclose(k[:, :, None], est_k[None, None, :]).astype(np.float64)  # NaN rows: all 0
    fit = regress(m, X, unit, cl_name, ssc or SSC(), treated=present)
    names = [f"event_time::{v:g}" for v in est_k]
    kept_names = [names[j] for j in fit.kept]
    et = est_k[fit.kept]
    n_term = (ng @ X.sum(axis=1))[fit.kept]
    n_never = int(ng[~treated].sum())
    n_cohorts = int(present.sum())
    method = "exact (concentrated solve)" if min(m.n_units, m.n_periods) <= EXACT_MAX_LEVELS else \
        "alternating projections"
    des = design(y=y, cohort=cohort, time=time, refs=refs, win=None, bin_endpoints=False, n_trimmed=0,
                 n_always=n_always, n_never=n_never, n_cohorts=n_cohorts, fe=f"{unit}, {time} [{method}]",
                 covariates=(), weights=None, collapse_info=None)
    des.append(("Engine", src.describe))
    notes = []
    if n_never == 0 and len(refs) < 2:
        notes.append("No never-treated units: with a single reference period the event-time coefficients are "
                     "identified only up to a linear trend; one is dropped for collinearity. Pin two periods "
                     "(ref=[-1, -k]) to choose which.")
    dropped = [n for j, n in enumerate(names) if j not in set(fit.kept.tolist())]
    if dropped:
        notes.append("Dropped for collinearity: " + ", ".join(dropped))
    names_cl = (unit,) if cl_name is None else (unit, cl_name)
    return result_cls(
        estimator="TWFE event study", terms=tuple(kept_names), coef=fit.coef, vcov_matrix=fit.V,
        headline=headline(kept_names, et), inference=fit.inference, sample=report, design=tuple(des),
        term_info={"event_time": et, "n": n_term}, notes=tuple(notes),
        extras={"reference": refs, "window": None, "bin_endpoints": False, "outcome": y, "collapse": None},
        pre_period_meaning=PRE_PERIOD["twfe"], cross_covariance=True,
        _source=FixedSource(V=fit.V, inference=fit.inference, names=names_cl, n_input_rows=report.n_input_rows))
