"""Static TWFE and the TWFE event study (treatment from the cohort) from the engine's unit moments.

Every regressor (the treatment ``1[t >= g]``, or the event-time indicators ``1[t - g = k]``) depends on a unit only
through its cohort, so after the unit effects are concentrated out the regression's rows are constant within a
group of units with the same cohort and observation pattern (:func:`regress`); the estimate and a unit's cluster
score, affine in its outcomes, follow from the groups' unit counts, sums and T x T sums of products
(``shared/design/SCALE.md``), on balanced and unbalanced panels alike. The cluster-robust covariance is CR1 by
unit, or by a coarser ``cluster=`` from the cluster x group sums; the small-sample factor is fixest's
(:func:`didx.inference.vcov.k_for_ssc`). Numerically the in-memory ``twfe`` and ``event_study`` (fixest's
``feols``). Covariates: :mod:`didx.engines.regression_cov` (within-unit sums by cohort and pattern, and a score
pass). ``treat=``, extra fixed effects, weights, windows and other covariance types need the rows: an error names
the in-memory alternative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._sample import Dropped, SampleReport
from didx._validate import cluster_count_check, fmt_value
from didx.engines import plan
from didx.engines.cs import ROWS_FIX
from didx.engines.regcore import CellFit, _cr1_inference, ssc_k, time_dummies, within_rows
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, pass1, unit_moments
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest
from didx.inference.vcov import SSC
from didx.linalg.absorb import EXACT_MAX_LEVELS
from didx.linalg.ols import independent_columns
from didx.results.base import Inference


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


def _options(func: str, checks: Sequence[tuple[bool, str]], cluster: str | Sequence[str] | None,
             unit: str | None) -> tuple[list[str], str | None]:
    """Refuse the first option the engines do not cover (a clear error naming the in-memory alternative); return
    the cluster columns and the one coarser than the unit (None: by unit)."""
    clusters = [cluster] if isinstance(cluster, str) else list(cluster or [])
    checks = [*checks, (len(clusters) > 1, "two-way clustering")]
    for failed, what in checks:
        if failed:
            raise InvalidOptionError(f"{func}: {what} not available through the engines yet. Fix: {ROWS_FIX}.")
    return clusters, (clusters[0] if clusters and clusters[0] != unit else None)



def twfe_moments(src: EngineInput, result_cls: type, design: Callable[..., tuple[list[tuple[str, str]], list[str]]],
                 *, y: str, unit: str, time: str, treat: str | None, cohort: str | None,
                 covariates: Any, fe: Any, vcov: str | None, cluster: str | Sequence[str] | None, weights: str | None,
                 ssc: SSC | None, drop_singletons: bool, collapse: str | None) -> Any:
    """:func:`didx.twfe` through an engine (see the module docstring); ``result_cls`` and ``design`` are the
    in-memory estimator's result type and design text (passed in, so this module does not import it)."""
    func = "twfe"
    base = [(treat is not None or cohort is None, "treat= (a 0/1 column; the engines take the treatment from cohort=)"),
            (bool(fe), "extra fixed effects (fe=)"), (weights is not None, "weights")]
    if collapse is not None:  # the cell means from the engine, the regression on them in memory
        from didx.engines.collapse import collapsed
        from didx.registry import get

        _options(func, [*base, (bool(covariates), "covariates with collapse=")], None, unit)
        assert cohort is not None
        return collapsed(src, get(func).load(), func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cluster,
                         collapse=collapse, vcov=vcov, ssc=ssc, drop_singletons=drop_singletons)
    _, cl_name = _options(func, [*base, (vcov not in (None, "CR1"), f"vcov={vcov!r} (the engines give the default "
                                                                    f"CR1)")], cluster, unit)
    assert cohort is not None
    from didx.engines.regression_cov import prepared

    src, cov = prepared(src, func, covariates, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name)
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="untreated_obs"))
    m = m if cov is None else cov.fix_report(m)
    n_singletons = _singletons(m)
    if drop_singletons and n_singletons:
        raise InvalidOptionError(f"{func}: drop_singletons=True with {n_singletons} singleton observations is not "
                                 f"available through the engines yet. Fix: {ROWS_FIX}.")
    ssc = ssc if ssc is not None else SSC()
    fit, timing = _fit(src, m, unit, cl_name, ssc, cov)
    fe_names = [unit, time]
    method = "exact (concentrated solve)" if min(m.n_units, m.n_periods) <= EXACT_MAX_LEVELS else \
        "alternating projections"
    des, notes = design(timing, y=y, treat=None, cohort=cohort, time=time, fe=fe_names, method=method,
                        covariates=cov.names if cov else (), weights=None, n_singletons=n_singletons,
                        drop_singletons=drop_singletons)
    des.append(("Engine", src.describe))
    names = (unit,) if cl_name is None else (unit, cl_name)
    all_terms = ["treated", *(cov.names if cov else ())]
    terms = tuple(all_terms[j] for j in fit.kept)
    if len(terms) < len(all_terms):
        notes.append("Dropped for collinearity: " + ", ".join(t for t in all_terms if t not in terms))
    V, inf = fit.V, fit.inference
    return result_cls(estimator="Two-way fixed effects", terms=terms, coef=fit.coef, vcov_matrix=V,
                      headline="treated", inference=inf, sample=m.report, design=tuple(des), notes=tuple(notes),
                      _source=FixedSource(V=V, inference=inf, names=names, n_input_rows=m.report.n_input_rows))


def _fit(src: EngineInput, m: Moments, unit: str, cl_name: str | None, ssc: SSC,
         cov: Any) -> tuple[CellFit, tuple[int, int, int]]:
    """The fit (with covariates: :mod:`didx.engines.regression_cov`) and the treatment timing from the moments."""
    D = (m.periods[None, :] >= m.cohort_values[:, None]).astype(np.float64)  # (G, T); never treated: inf
    treated = np.asarray((D[m.gc].astype(bool) & m.obs()).any(axis=1))  # units with a treated observation
    if cov is None:
        fit = regress(m, D[:, :, None], unit, cl_name, ssc, treated=treated)
    else:
        from didx.engines.regression_cov import fit as fit_cov

        fit = fit_cov(src, m, D[:, :, None], cov, unit, cl_name, ssc, treated=treated, protect="treated")
    # treatment timing as in memory (twfe._timing), per group: first treated period observed, units treated in
    # every period they are observed
    on = D[m.gc].astype(bool) & m.obs()
    off = ~D[m.gc].astype(bool) & m.obs()
    first = np.where(on.any(axis=1), np.argmax(on, axis=1), -1)
    always = on.any(axis=1) & ~off.any(axis=1)
    dates = np.unique(first[(first >= 0) & off.any(axis=1) & (m.n > 0)])
    timing = (int(dates.shape[0]), int(m.n[always].sum()), 0)
    return fit, timing


def _singletons(m: Moments) -> int:
    """Observations alone in their unit or in their period (as twfe counts them)."""
    obs = m.obs()
    unit_single = obs.sum(axis=1) == 1
    rows = int(m.n[unit_single].sum())
    per_period = (m.n[:, None] * obs).sum(axis=0)
    for t in np.flatnonzero(per_period == 1):
        j = int(np.flatnonzero(obs[:, t] & (m.n > 0))[0])
        rows += 0 if unit_single[j] else 1
    return rows


def regress(m: Moments, X: np.ndarray, unit: str, cl_name: str | None, ssc: SSC, *,
            treated: np.ndarray, time_effects: bool = False) -> CellFit:
    """``y_it = a_i + l_t + X[g_i, t] b + e_it``, CR1 by unit or ``cl_name``, on a balanced or unbalanced panel.

    ``X`` (G, T, K) holds the regressors of each cohort x period cell; ``treated`` (one per group) flags the
    groups whose units count as treated clusters. Concentrating out the unit effects leaves, per group of units
    with the same cohort and observation pattern, the within-unit demeaned rows ``Z~_j`` of (time dummies but the
    first, ``X``): constant within the group. So ``A = sum_j n_j Z~_j' Z~_j`` and ``Z' y = sum_j Z~_j' (n_j mu_j +
    S_j)`` (``mu`` the cell means, ``S`` the group's sums of the centred outcomes), and a unit's score
    ``Z~_j' y'_i + c_j`` is affine in its centred outcomes: the meat needs the groups' sums and T x T sums of
    products only. ``b`` and its block
    of the sandwich are those of the two-way fixed-effects regression (Frisch-Waugh-Lovell). Collinear columns
    of ``X`` (judged on its two-way demeaned cross-product) are dropped as
    :func:`didx.linalg.ols.independent_columns` judges them in memory; so are the period effects that units seen in
    disjoint sets of periods leave unidentified (:func:`didx.engines.regcore.time_dummies`). ``time_effects``: also
    return the time effects (periods but the first) as the first coefficients (the 2x2's ``post``), with their
    covariance."""
    T = m.n_periods
    mu = m.cell_means()
    S, P = m.centred(mu)
    obs = m.obs()
    n = m.n.astype(np.float64)
    Tj = obs.sum(axis=1).astype(np.float64)
    Zt = within_rows(X[m.gc], obs)
    A = np.einsum("j,jtk,jtl->kl", n, Zt, Zt)
    # collinearity among X after both effects: the Schur complement of the time block
    q = T - 1
    tk = np.arange(q) if time_effects else time_dummies(m)  # the identified period effects
    Ab = A[q:, q:] - A[q:, tk] @ np.linalg.solve(A[np.ix_(tk, tk)], A[tk, q:])
    scale = np.einsum("j,jtk->k", n, (X[m.gc] * obs[:, :, None]) ** 2)
    kept = independent_columns(Ab, scale)
    cols = np.concatenate([tk, q + kept])
    Zt, A = Zt[:, :, cols], A[np.ix_(cols, cols)]
    ymu = mu[m.gc] * obs  # net of its mean over the group's periods (the rows of Zt sum to 0): no level to cancel
    ymu = (ymu - ymu.sum(axis=1, keepdims=True) / Tj[:, None]) * obs
    theta = np.linalg.solve(A, np.einsum("jtk,jt->k", Zt, n[:, None] * ymu + S))
    ZZ = np.einsum("jtk,jtl->jkl", Zt, Zt)
    c = np.einsum("jtk,jt->jk", Zt, ymu) - np.einsum("jkl,l->jk", ZZ, theta)
    lin = np.einsum("jtk,jt->jk", Zt, S)
    if cl_name is None:
        meat = (np.einsum("j,jk,jl->kl", n, c, c) + np.einsum("jk,jl->kl", c, lin)
                + np.einsum("jk,jl->kl", lin, c) + np.einsum("jtk,jts,jsl->kl", Zt, P, Zt))
        n_cl = int(m.n.sum())
        treated_cl = int(m.n[treated].sum())
    else:
        assert m.cl is not None
        score = np.zeros((m.n_clusters, cols.shape[0]))
        np.add.at(score, m.cl, n[:, None] * c + lin)
        meat = score.T @ score
        n_cl = m.n_clusters
        treated_cl = int(np.unique(m.cl[treated & (m.n > 0)]).shape[0])
    n_obs = int((n * Tj).sum())
    k_ssc = ssc_k(m, len(kept), ssc)
    adj = (n_obs - 1) / (n_obs - k_ssc) if ssc.adj else 1.0
    factor = adj * (n_cl / (n_cl - 1) if ssc.cluster_adj else 1.0)
    Ainv = np.linalg.inv(A)
    first = 0 if time_effects else tk.shape[0]
    V = (factor * (Ainv @ (0.5 * (meat + meat.T)) @ Ainv))[first:, first:]
    inf = _cr1_inference(cl_name or unit, n_cl, treated_cl, k_ssc, ssc, True)
    return CellFit(kept=kept, coef=theta[first:], V=V, inference=inf)


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
    base = [(win is not None or bin_endpoints, "window= / bin_endpoints="), (weights is not None, "weights")]
    if collapse is not None:  # the cell means from the engine, the regression on them in memory
        from didx.engines.collapse import collapsed
        from didx.registry import get

        _options(func, [*base, (bool(covariates), "covariates with collapse=")], None, unit)
        return collapsed(src, get(func).load(), func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cluster,
                         collapse=collapse, drop_always=True, ref=list(refs), vcov=vcov, ssc=ssc)
    _, cl_name = _options(func, [*base, (vcov not in (None, "CR1"), f"vcov={vcov!r} (the engines give the default "
                                                                    f"CR1)")], cluster, unit)
    from didx.engines.regression_cov import prepared

    src, cov = prepared(src, func, covariates, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name)
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="untreated_obs"))
    m = m if cov is None else cov.fix_report(m)
    # always-treated units (cohort <= first period) are dropped, as in memory
    g_of = m.cohort_values
    always = g_of[m.gc] <= m.periods[0]
    n_always = int(m.n[always].sum())
    report = m.report
    if n_always:
        report = report.with_dropped(Dropped(
            f"always treated ({cohort} <= first period {m.labels[0]!r}): no pre-treatment period",
            int(m.rows()[always].sum()), n_always))
        m = dataclasses.replace(m.select(~always), report=report).with_shape()
        report = m.report
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
    if cov is None:
        fit = regress(m, X, unit, cl_name, ssc or SSC(), treated=present[m.gc])
    else:
        from didx.engines.regression_cov import fit as fit_cov

        fit = fit_cov(src, m, X, cov, unit, cl_name, ssc or SSC(), treated=present[m.gc])
    n_cov = len(cov.names) if cov else 0
    names = [f"event_time::{v:g}" for v in est_k] + list(cov.names if cov else ())
    kept_names = [names[j] for j in fit.kept]
    et = np.concatenate([est_k, np.full(n_cov, np.nan)])[fit.kept]
    n_term = np.concatenate([np.einsum("j,jtk->k", m.n.astype(np.float64), X[m.gc] * m.obs()[:, :, None]),
                             np.full(n_cov, float(m.report.n_obs))])[fit.kept]
    n_never = int(ng[~treated].sum())
    n_cohorts = int(present.sum())
    method = "exact (concentrated solve)" if min(m.n_units, m.n_periods) <= EXACT_MAX_LEVELS else \
        "alternating projections"
    des = design(y=y, cohort=cohort, time=time, refs=refs, win=None, bin_endpoints=False, n_trimmed=0,
                 n_always=n_always, n_never=n_never, n_cohorts=n_cohorts, fe=f"{unit}, {time} [{method}]",
                 covariates=cov.names if cov else (), weights=None, collapse_info=None)
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


def did2x2_moments(src: EngineInput, result_cls: type, *, y: str, treat: str, post: str, unit: str | None,
                   covariates: Any, covariate_trends: bool, vcov: str | None, cluster: str | Sequence[str] | None,
                   weights: str | None, ssc: SSC | None, first_difference: bool, collapse: str | None) -> Any:
    """The panel 2x2 (``did2x2`` with ``unit=``: unit effects, ``post`` and ``treat:post``) through an engine:
    the two-period case of :func:`regress` (the treated group as a cohort first treated in the post period), CR1
    by unit or ``cluster``; ``result_cls`` is the in-memory result type (passed in: no import of the estimator)."""
    func = "did2x2"
    n_cl = 1 if isinstance(cluster, str) else len(list(cluster or []))
    clusters, cl_name = _options(func, [
        (bool(covariates) or covariate_trends, "covariates"), (weights is not None, "weights"),
        (first_difference, "first_difference=True"), (collapse is not None, "collapse="),
        (vcov not in (None, "CR1", "HC1"),
         f"vcov={vcov!r} (the engines give the defaults: CR1, HC1 for the pooled 2x2 without cluster=)"),
        (vcov == "HC1" and (unit is not None or n_cl > 0), f"vcov={vcov!r} with {'cluster=' if n_cl else 'unit='}"),
    ], cluster, unit)
    if unit is None:
        return _did2x2_pooled(src, result_cls, y=y, treat=treat, post=post, cluster=clusters[0] if clusters else None,
                              ssc=ssc or SSC())
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=post, cohort=treat, cluster=cl_name,
                                  require_control="untreated_obs", treat_mode=True))
    D = (m.periods[None, :] >= m.cohort_values[:, None]).astype(np.float64)
    group = np.isfinite(m.cohort_values)[m.gc]  # units of the treated group
    fit = regress(m, D[:, :, None], unit, cl_name, ssc or SSC(), treated=group, time_effects=True)
    if fit.kept.shape[0] != 1:
        raise DesignError(f"{func}: {treat}:{post} is collinear with the unit and period effects. Fix: check the "
                          f"treated-group and post columns.")
    # the cell-mean table: means, SEs of the means (within-cell spread) and counts by (group, period)
    mu = m.cell_means()
    _, P = m.centred(mu)
    is_t = np.isfinite(m.cohort_values)
    means, ses, ns = np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2), dtype=np.int64)
    cnt = m.cell_counts()
    for gi, codes in ((1, np.flatnonzero(is_t)), (0, np.flatnonzero(~is_t))):
        for p in (0, 1):
            nn = int(cnt[codes, p].sum())
            ss = float(P[np.isin(m.gc, codes), p, p].sum())
            ns[gi, p] = nn
            means[gi, p] = float(cnt[codes, p] @ mu[codes, p]) / nn
            ses[gi, p] = np.sqrt(ss / (nn - 1)) / np.sqrt(nn) if nn > 1 else np.nan
    design = [
        ("Estimator", "2x2 difference in differences (interacted regression)"),
        ("Outcome", y),
        ("Treated group", f"{treat} == 1"),
        ("Post period", f"{post} == 1"),
        ("Fixed effects", f"unit ({unit})"),
        ("Covariates", "none"),
        ("Covariate trends (W x post)", "no"),
        ("Weights", "none"),
        ("Engine", src.describe),
    ]
    names = (unit,) if cl_name is None else (unit, cl_name)
    return result_cls(
        estimator="2x2 DiD", terms=(post, f"{treat}:{post}"), coef=fit.coef, vcov_matrix=fit.V,
        headline=f"{treat}:{post}", inference=fit.inference, sample=m.report, design=tuple(design),
        extras={"means": means, "ses": ses, "ns": ns, "treat": treat, "post": post, "pooled": False, "y": y,
                "cell_regression": bool(m.report.balanced)},
        _source=FixedSource(V=fit.V, inference=fit.inference, names=names, n_input_rows=m.report.n_input_rows))


def _cell_table(n: np.ndarray, mean: np.ndarray, within: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2x2 table (group x period): means, SEs of the means (within-cell spread, ddof 1) and counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ses = np.where(n > 1, np.sqrt(within / np.maximum(n - 1, 1)) / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, ses, n.astype(np.int64)


def _did2x2_pooled(src: EngineInput, result_cls: type, *, y: str, treat: str, post: str, cluster: str | None,
                   ssc: SSC) -> Any:
    """The pooled 2x2 ``y = a + b G + c post + tau G post`` (saturated in the four cells, so the residuals are
    deviations from the cell means): estimates from the cell means, HC1 from the within-cell sums of squares, CR1
    by ``cluster`` from the cluster x cell sums."""
    func = "did2x2"
    p1 = pass1(src, Request(func=func, y=y, unit=None, time=post, cohort=treat, cluster=cluster,
                            require_control="untreated_obs", treat_mode=True))
    out = src.run(plan.cell_moments_sql(p1.roles, src.quote, src.table, periods=p1.periods, cohort_raw=p1.raw,
                                        cohort_code=p1.codes, never_code=p1.never_code, shift=p1.shift))
    tc = out["tc"].astype(np.int64)
    grp = np.isfinite(p1.cohort_values)[out["gc"].astype(np.int64)].astype(np.int64)  # 1: treated group
    cell = grp * 2 + tc  # (G, post) -> 0..3
    n_k, s_k, ss_k = out["n"].astype(np.int64), out["s"].astype(float), out["ss"].astype(float)
    n_c = np.bincount(cell, weights=n_k, minlength=4)
    s_c = np.bincount(cell, weights=s_k, minlength=4)
    ss_c = np.bincount(cell, weights=ss_k, minlength=4)
    shift_c = np.array([p1.shift[p1.never_code, 0], p1.shift[p1.never_code, 1], 0.0, 0.0])
    treated_code = int(np.flatnonzero(np.isfinite(p1.cohort_values))[0])
    shift_c[2:] = p1.shift[treated_code]
    d = s_c / n_c
    mean = shift_c + d
    within = ss_c - s_c * d
    x = np.array([[1.0, g, p, g * p] for g in (0.0, 1.0) for p in (0.0, 1.0)])  # cells (0,0), (0,1), (1,0), (1,1)
    XtX = np.einsum("c,ck,cl->kl", n_c, x, x)
    B = np.linalg.inv(XtX)
    coef = B @ (x.T @ (n_c * mean))
    n_obs, K = int(n_c.sum()), 4
    if cluster is None:
        meat = np.einsum("c,ck,cl->kl", within, x, x)
        factor = (n_obs / (n_obs - K)) if ssc.adj else 1.0
        inf = Inference(vcov_type="HC1", df=float(n_obs - K), small_sample=(
            "n/(n-K) (sandwich, Stata and fixest convention)" if ssc.adj else ssc.describe(False)),
            details=(f"Coefficients counted for the small-sample factor K: {K}",))
    else:
        labels, cl = np.unique(out["didx_cl"], return_inverse=True)
        G = int(labels.shape[0])
        cluster_count_check(func, cluster, G)
        esum = s_k - n_k * d[cell]  # the residuals summed by cluster x cell
        score = np.zeros((G, K))
        np.add.at(score, cl, esum[:, None] * x[cell])
        meat = score.T @ score
        factor = ((n_obs - 1) / (n_obs - K) if ssc.adj else 1.0) * (G / (G - 1) if ssc.cluster_adj else 1.0)
        inf = _cr1_inference(cluster, G, int(np.unique(cl[grp == 1]).shape[0]), K, ssc, False)
    V = factor * (B @ meat @ B)
    V = 0.5 * (V + V.T)
    means, ses, ns = _cell_table(n_c.reshape(2, 2), mean.reshape(2, 2), within.reshape(2, 2))
    dropped = tuple(Dropped(reason=f"{why} ({_role(k, y=y, post=post, treat=treat, cluster=cluster)})", n_rows=c,
                            n_units=None) for k, (why, c) in enumerate(p1.drops) if c)
    report = SampleReport(n_input_rows=p1.n_input, n_obs=n_obs, n_units=None, n_periods=2, dropped=dropped)
    design = [
        ("Estimator", "2x2 difference in differences (interacted regression)"),
        ("Outcome", y),
        ("Treated group", f"{treat} == 1"),
        ("Post period", f"{post} == 1"),
        ("Fixed effects", "none (group and period dummies)"),
        ("Covariates", "none"),
        ("Covariate trends (W x post)", "no"),
        ("Weights", "none"),
        ("Engine", src.describe),
    ]
    return result_cls(
        estimator="2x2 DiD", terms=("(Intercept)", treat, post, f"{treat}:{post}"), coef=coef, vcov_matrix=V,
        headline=f"{treat}:{post}", inference=inf, sample=report, design=tuple(design),
        extras={"means": means, "ses": ses, "ns": ns, "treat": treat, "post": post, "pooled": True, "y": y,
                "cell_regression": True},
        _source=FixedSource(V=V, inference=inf, names=(cluster,) if cluster else (), n_input_rows=p1.n_input))


def _role(k: int, *, y: str, post: str, treat: str, cluster: str | None) -> str:
    return {0: post, 1: post, 2: "", 3: y, 4: y, 5: str(cluster), 6: treat}[k]
