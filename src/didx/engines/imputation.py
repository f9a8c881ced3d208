"""The imputation estimator (Borusyak, Jaravel & Spiess) and Gardner's two-stage DiD from the engine's unit moments.

Both fit ``Y_it(0) = a_i + l_t`` on the untreated observations (never-treated units and the not-yet-treated
periods of treated units). Within a group ``j`` of units with the same cohort and observation pattern, the untreated
periods ``U_j`` (``m_j`` of them) are the same, so concentrating out the unit effects leaves the T x T normal
equations ``A l = b`` with ``A = sum_j n_j M_j``, ``M_j = diag(u_j) - u_j u_j' / m_j`` and ``b = sum_j M_j Ysum_j``
(``Ysum_j`` the group's sums of the outcomes): solved by an eigendecomposition, whose null space also says which
treated observations are imputable (as :meth:`didx.estimators.imputation.first_stage.FirstStage.identified`). A
unit's residual ``y_it - a_i - l_t`` is then ``(R_j y_i - c_j)_t`` with ``R_j = I - 1 u_j' / m_j`` and
``c_j = l - 1 (u_j' l) / m_j``: linear in its outcomes with coefficients fixed by the group.

The estimates weight these residuals by (cohort, period) cell; the variance's cluster scores (BJS's conservative
variance; Gardner's GMM-corrected one: :mod:`didx.inference.imputation`) are ``psi_i = B_j y_i + a_j`` with

* the treated part ``sum_t v_t (alpha_t (R_j y_i - c_j)_t - beta_t)``: ``v`` the term's weights, ``alpha, beta``
  the centring of the residuals (BJS: on the cohort x period cell average, leaving out the own cluster with
  ``leave_out=True``; did2s: on the coefficient), all fixed per group (and cluster);
* the untreated part ``-(M_j bt)' (y_i - l)``, with ``bt`` the period block of the first-stage solve whose
  right-hand sides are the per-level sums of the term weights (the unit block drops out: a unit's first-stage
  residuals sum to zero);

so ``sum_i psi_i psi_i'`` needs the groups' sums and T x T sums of products, and cluster sums the groups by cluster.
BJS's pre-trend leads are :func:`didx.engines.regression.regress` on the untreated observations. Covariates, weights,
other fixed effects, custom treatment weights and a 0/1 ``treat=`` for did2s need the rows: an error names the
in-memory alternative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx.engines.cs import ROWS_FIX
from didx.engines.regression import FixedSource, regress
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, unit_moments
from didx.estimators.imputation.common import report_with_lost
from didx.estimators.imputation.source import first_stage_inference
from didx.inference.contract import Capabilities
from didx.inference.vcov import SSC
from didx.linalg.absorb import EXACT_MAX_LEVELS

NULL_TOL = 1e-7  # a treated observation is imputable when its design is orthogonal to A's null space (relative)


@dataclass(frozen=True)
class Parts:
    """What the in-memory estimator lends the engine fit (passed in: the engines import no estimator module)."""

    func: str
    design_text: Callable[..., tuple[tuple[str, str], ...]]
    build_result: Callable[..., Any]
    lost_reason: str
    horizons: Callable[..., np.ndarray] | None = None  # BJS: the requested horizons among those available
    pretrends: Callable[..., np.ndarray] | None = None  # BJS: the requested leads among those available
    event_times: Callable[..., np.ndarray] | None = None  # did2s: the event times estimated


@dataclass(frozen=True, eq=False)
class _Source(FixedSource):
    """The fit-time covariance of an engine fit (only the clustering given at fit time: the rows are not kept)."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vcov=(), max_clusters=1, new_clusters=False, ssc=False, bootstrap=(),
                            default=f"the fit-time {self.inference.vcov_type} (the engine kept no rows)")


@dataclass(frozen=True, eq=False)
class FirstStage:
    """The untreated-only two-way model on the groups (see the module docstring); arrays (J, T) unless noted."""

    m: Moments
    S: np.ndarray  # sums of the outcomes centred on the cohort x period means
    P: np.ndarray  # (J, T, T) their sums of products
    ymu: np.ndarray  # the cell means on each group's observed periods, less the outcome's level
    untreated: np.ndarray
    treated: np.ndarray
    imputable: np.ndarray  # treated observations whose Y(0) is identified
    inv_m: np.ndarray  # (J,) 1 / untreated periods (0: none)
    l: np.ndarray  # (T,) period effects (one solution)
    A_pinv: np.ndarray  # (T, T)
    R: np.ndarray  # (J, T, T)
    c: np.ndarray
    adj: np.ndarray  # sums over the group's units of y - Yhat(0) (untreated: the first-stage residuals)

    @property
    def n(self) -> np.ndarray:
        return self.m.n.astype(np.float64)

    @property
    def event(self) -> np.ndarray:
        """(J, T) event time t - cohort (-inf for never treated)."""
        return self.m.periods[None, :] - self.m.cohort_values[self.m.gc][:, None]

    def lost(self) -> tuple[int, int]:
        """Treated rows that cannot be imputed, and the units left without a row."""
        lost = self.treated & ~self.imputable
        rows = int((self.m.n * lost.sum(axis=1)).sum())
        obs = self.untreated | self.treated
        units = int(self.m.n[(lost == obs).all(axis=1) & obs.any(axis=1)].sum())
        return rows, units

    def scores(self, W: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A unit's cluster score ``B_j y~_i + a_j`` ((J, K, T) and (J, K); ``y~`` centred on the cell means) for
        term weights ``W`` and treated residuals ``alpha (y - Yhat(0)) - beta`` ((J, K, T) each)."""
        n, u = self.n, self.untreated.astype(np.float64)
        Wa = W * alpha
        a_time = np.einsum("j,jkt->kt", n, W)
        rhs = a_time - np.einsum("j,jk,jt->kt", n * self.inv_m, W.sum(axis=2), u)
        bt = rhs @ self.A_pinv  # (K, T): the period block of (Z0'Z0)^- Z_on' W
        Mbt = u[:, None, :] * (bt[None, :, :] - (self.inv_m[:, None] * (u @ bt.T))[:, :, None])
        B = np.einsum("jkt,jts->jks", Wa, self.R) - Mbt
        a = (-np.einsum("jkt,jt->jk", Wa, self.c) - np.einsum("jkt,jkt->jk", W, beta)
             + np.einsum("jkt,t->jk", Mbt, self.l) + np.einsum("jkt,jt->jk", B, self.ymu))
        return B, a

    def meat(self, B: np.ndarray, a: np.ndarray, cl: np.ndarray | None, n_clusters: int) -> np.ndarray:
        """``sum_c psi_c psi_c'`` over units (``cl`` None) or the clusters ``cl`` of the groups."""
        n = self.n
        lin = np.einsum("jkt,jt->jk", B, self.S)
        if cl is None:
            out = (np.einsum("jkt,jts,jls->kl", B, self.P, B) + lin.T @ a + a.T @ lin
                   + np.einsum("j,jk,jl->kl", n, a, a))
        else:
            psi = np.zeros((n_clusters, B.shape[1]))
            np.add.at(psi, cl, lin + n[:, None] * a)
            out = psi.T @ psi
        return 0.5 * (out + out.T)


def first_stage(m: Moments) -> FirstStage:
    """Fit the untreated-only unit + period model on the groups (see the module docstring)."""
    T = m.n_periods
    obs = m.obs() & (m.n > 0)[:, None]
    treated = obs & (m.periods[None, :] >= m.cohort_values[m.gc][:, None])
    untreated = obs & ~treated
    u = untreated.astype(np.float64)
    mj = u.sum(axis=1)
    inv_m = np.where(mj > 0, 1.0 / np.where(mj > 0, mj, 1.0), 0.0)
    n = m.n.astype(np.float64)
    mu = m.cell_means()
    S, P = m.centred(mu)
    # the model is unchanged by a constant (the unit effects absorb it): remove the outcome's level, so that the
    # sums below are formed at the scale of its spread
    cnt = m.cell_counts()
    level = float((cnt * mu).sum() / cnt.sum())
    ymu = (mu[m.gc] - level) * obs
    Ysum = S + n[:, None] * ymu
    uy = u * Ysum
    A = np.diag((n[:, None] * u).sum(axis=0)) - np.einsum("j,jt,js->ts", n * inv_m, u, u)
    b = uy.sum(axis=0) - np.einsum("j,jt->t", inv_m * uy.sum(axis=1), u)
    vals, vecs = np.linalg.eigh(0.5 * (A + A.T))
    tol = max(float(vals.max()), 1.0) * T * 1e-12
    inv = np.where(vals > tol, 1.0 / np.where(vals > tol, vals, 1.0), 0.0)
    A_pinv = (vecs * inv) @ vecs.T
    null = vecs[:, vals <= tol]
    l = A_pinv @ b
    # imputable: the unit has untreated periods and e_t - u_j / m_j is orthogonal to the null space of A
    proj = null[None, :, :] - (inv_m[:, None] * (u @ null))[:, None, :]  # (J, T, nullity)
    imputable = treated & (mj > 0)[:, None] & (np.abs(proj).max(axis=2, initial=0.0) <= NULL_TOL)
    R = (np.eye(T)[None, :, :] - (u * inv_m[:, None])[:, None, :]) * obs[:, :, None]
    c = (l[None, :] - (inv_m * (u @ l))[:, None]) * obs
    adj = np.einsum("jts,js->jt", R, Ysum) - n[:, None] * c
    return FirstStage(m=m, S=S, P=P, ymu=ymu, untreated=untreated, treated=treated, imputable=imputable,
                      inv_m=inv_m, l=l, A_pinv=A_pinv, R=R, c=c, adj=adj)


# ----------------------------------------------------------------------------------------------- shared pieces
def _moments(src: EngineInput, func: str, opts: Any, checks: list[tuple[bool, str]], *, y: str, unit: str,
             time: str, cohort: str) -> tuple[Moments, str | None]:
    """Refuse what needs the rows, then the moments (by the cluster column when coarser than the unit)."""
    checks = [*checks, (set(opts.fe) != {unit, time}, f"fe={list(opts.fe)!r} (the engines fit unit and time "
                                                       f"effects only)")]
    for failed, what in checks:
        if failed:
            raise InvalidOptionError(f"{func}: {what} not available through the engines yet. Fix: {ROWS_FIX}.")
    cl_name = opts.cluster if opts.cluster not in (None, unit) else None
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="untreated_obs"))
    return m, cl_name


def _method(m: Moments) -> str:
    """The first-stage method the in-memory fit reports (its design text)."""
    return ("exact (concentrated solve)" if min(m.n_units, m.n_periods) <= EXACT_MAX_LEVELS
            else "conjugate gradients on the sparse normal equations")


def _clusters(fs: FirstStage, used: np.ndarray) -> tuple[int, int]:
    """Clusters (units or the cluster column's) and those with a used treated observation."""
    m = fs.m
    has = (used & (m.n > 0)[:, None]).any(axis=1)
    if m.cl is None:
        return m.n_units, int(m.n[has].sum())
    return int(np.unique(m.cl[m.n > 0]).shape[0]), int(np.unique(m.cl[has]).shape[0])


def _cell_sums(fs: FirstStage, W: np.ndarray, by_cluster: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts and sums of the residuals of each term's entries by cohort (and cluster) x period: ((Q, K, T) each,
    and each group's row ``q`` among the Q keys)."""
    m = fs.m
    key = m.gc if not by_cluster or m.cl is None else m.gc * (m.n_clusters + 1) + m.cl
    _, q = np.unique(key, return_inverse=True)
    on = (W != 0).astype(np.float64)
    cnt = np.zeros((int(q.max()) + 1, W.shape[1], W.shape[2]))
    tot = np.zeros_like(cnt)
    np.add.at(cnt, q, fs.n[:, None, None] * on)
    np.add.at(tot, q, on * fs.adj[:, None, :])
    return cnt, tot, q


def _bjs_centring(fs: FirstStage, W: np.ndarray, leave_out: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """BJS's ``tau - taubar`` as ``alpha tau - beta`` per entry, and the leave-out fall-backs (as
    :func:`didx.inference.imputation.bjs_centred`)."""
    on = W != 0
    cnt, tot, q = _cell_sums(fs, W, by_cluster=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1.0), 0.0)[q]
    alpha = np.ones_like(W)
    if not leave_out:
        return alpha, mean, 0
    if fs.m.cl is None:  # each unit is its own cluster: the average of the others in its cell
        n_cell = cnt[q]
        ok = n_cell > 1
        alpha = np.where(ok, n_cell / np.where(ok, n_cell - 1, 1.0), 1.0)
        beta = np.where(ok, tot[q] / np.where(ok, n_cell - 1, 1.0), mean)
        fallback = int((fs.n[:, None, None] * (on & ~ok)).sum())
        return alpha, beta, fallback
    cnt_c, tot_c, qc = _cell_sums(fs, W, by_cluster=True)
    out = cnt[q] - cnt_c[qc]
    ok = out > 0
    beta = np.where(ok, (tot[q] - tot_c[qc]) / np.where(ok, out, 1.0), mean)
    fallback = int((fs.n[:, None, None] * (on & ~ok)).sum())
    return alpha, beta, fallback


def _covariance(fs: FirstStage, W: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                scale: np.ndarray | None) -> np.ndarray:
    B, a = fs.scores(W, alpha, beta)
    V = fs.meat(B, a, fs.m.cl, fs.m.n_clusters)
    return V if scale is None else scale[:, None] * V * scale[None, :]


# ----------------------------------------------------------------------------------------------- imputation
def imputation_moments(src: EngineInput, opts: Any, parts: Parts, *, y: str, unit: str, time: str, cohort: str,
                       covariates: Any, weights: str | None) -> Any:
    """:func:`didx.imputation` through an engine (see the module docstring); ``opts`` are its checked options."""
    func = parts.func
    m, cl_name = _moments(src, func, opts, [
        (bool(covariates), "covariates"), (weights is not None, "weights"),
        (bool(opts.treatment_weights), "treatment_weights=")], y=y, unit=unit, time=time, cohort=cohort)
    fs = first_stage(m)
    use = fs.imputable
    if not use.any():
        raise DesignError(
            f"{func}: no treated observation can be imputed: every treated row's unit or period has no untreated "
            f"observation. Fix: include never-treated units or pre-treatment periods of the treated units."
        )
    W, terms, event_time, treated_weight, mode = _bjs_weights(fs, opts.horizons, parts)
    coef = np.einsum("jkt,jt->k", W, fs.adj)
    n_terms = np.einsum("j,jkt->k", fs.n, (W != 0).astype(np.float64))
    alpha, beta, n_fallback = _bjs_centring(fs, W, opts.leave_out)
    V = _covariance(fs, W, alpha, beta, None)
    P = 0
    if opts.pretrends is not None:
        leads, lead_coef, lead_n, VL = _leads(fs, opts.pretrends, unit, cl_name, parts)
        P = leads.shape[0]
        coef = np.concatenate([lead_coef, coef])
        terms = tuple(f"pre{-e:g}" for e in leads) + terms
        event_time = np.concatenate([leads, event_time])
        n_terms = np.concatenate([lead_n, n_terms])
        treated_weight = np.concatenate([np.full(P, np.nan), treated_weight])
        full = np.zeros((P + V.shape[0],) * 2)
        full[:P, :P] = VL
        full[P:, P:] = V
        V = full
    name = opts.cluster if opts.cluster is not None else unit
    G, n_treated = _clusters(fs, use)
    inference = first_stage_inference("bjs", name, G, n_treated, n_fallback, leave_out=opts.leave_out,
                                      leads=P > 0)
    report = report_with_lost(m.report, parts.lost_reason, *fs.lost())
    never = int(m.n[~np.isfinite(m.cohort_values[m.gc])].sum())
    names = {"y": y, "unit": unit, "time": time, "cohort": cohort}
    method = _method(m)
    design = parts.design_text(names, opts, n_untreated=int((fs.n * fs.untreated.sum(axis=1)).sum()), never=never,
                             method=method, mode=mode, covariate_names=(), leads=event_time[:P])
    design = (*design, ("Engine", src.describe))
    source = _Source(V=V, inference=inference, names=(unit,) if cl_name is None else (unit, cl_name),
                     n_input_rows=m.report.n_input_rows)
    return parts.build_result(opts, P, terms=terms, coef=coef, vcov=V, inference=inference, report=report,
                            design=design, source=source, event_time=event_time, n=n_terms,
                            treated_weight=treated_weight, method=method)


def _bjs_weights(fs: FirstStage, horizons: Any, parts: Parts
                 ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray, str]:
    """The treatment weights per unit entry (J, K, T), the terms, their event times, treated weights and text (as
    :func:`didx.estimators.imputation.bjs._treatment_weights` without custom weights)."""
    use = fs.imputable
    n = fs.n
    if horizons is None:
        total = float((n[:, None] * use).sum())
        return (use[:, None, :] / total, ("ATT",), np.full(1, np.nan), np.array([total]),
                "static: every treated observation weighted equally")
    ev = fs.event
    assert parts.horizons is not None
    hs = parts.horizons(horizons, np.unique(ev[use & (fs.m.n > 0)[:, None]]))
    sel = use[:, None, :] & (ev[:, None, :] == hs[None, :, None])  # (J, K, T)
    sums = np.einsum("j,jkt->k", n, sel.astype(np.float64))
    return (sel / sums[None, :, None], tuple(f"tau{h:g}" for h in hs), hs.astype(np.float64), sums,
            "by horizon (event time t - cohort), treated observations weighted equally within a horizon")


def _leads(fs: FirstStage, pretrends: Any, unit: str, cl_name: str | None,
           parts: Parts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BJS's pre-trend regression on the untreated observations: the leads, their coefficients, counts and CR1
    covariance (fixest's conventions, as :func:`didx.inference.imputation.lead_covariance`)."""
    m = fs.m
    ev = fs.event
    U = fs.untreated
    available = np.unique(ev[U & np.isfinite(ev) & (ev < 0)])
    assert parts.pretrends is not None
    leads = parts.pretrends(pretrends, available, True)
    mask = (U.astype(np.int64) << np.arange(m.n_periods)).sum(axis=1)
    m0 = dataclasses.replace(m, pattern=mask, S=m.S * U, P=m.P * (U[:, :, None] & U[:, None, :]))
    m0 = m0.select(mask != 0).compact_periods()
    if m0.cl is not None:
        labels, cl = np.unique(m0.cl, return_inverse=True)
        m0 = dataclasses.replace(m0, cl=cl, n_clusters=int(labels.shape[0]))
    ev0 = m0.periods[None, :] - m0.cohort_values[:, None]  # (G, T)
    X = (ev0[:, :, None] == leads[None, None, :]).astype(np.float64)
    fit = regress(m0, X, unit, cl_name, SSC(), treated=np.zeros(m0.gc.shape[0], dtype=bool))
    if fit.kept.shape[0] != leads.shape[0]:
        raise DesignError(f"imputation: the lead indicators {', '.join(f'{e:g}' for e in leads)} are collinear with "
                          f"the unit and period effects among the untreated observations. Fix: test fewer leads.")
    lead_n = np.einsum("j,jtk->k", m0.n.astype(np.float64), X[m0.gc] * m0.obs()[:, :, None])
    return leads, fit.coef, lead_n, fit.V


# ----------------------------------------------------------------------------------------------- did2s
def did2s_moments(src: EngineInput, opts: Any, parts: Parts, *, y: str, unit: str, time: str, treat: str | None,
                  cohort: str | None, covariates: Any, weights: str | None) -> Any:
    """:func:`didx.did2s` through an engine (see the module docstring); ``opts`` are its checked options."""
    func = parts.func
    m, cl_name = _moments(src, func, opts, [
        (bool(covariates), "covariates"), (weights is not None, "weights"),
        (treat is not None, "treat= (a 0/1 treatment column; give cohort=, the first treated period)")],
        y=y, unit=unit, time=time, cohort=str(cohort))
    fs = first_stage(m)
    if opts.second_stage == "static":
        W = fs.imputable[:, None, :].astype(np.float64)
        terms: tuple[str, ...] = ("ATT",)
        term_et = None
    else:
        assert parts.event_times is not None
        W, term_et = _event_terms(fs, opts, parts.event_times)
        terms = tuple(f"event_time::{v:g}" for v in term_et)
    wsum = np.einsum("j,jkt->k", fs.n, W)
    if np.any(wsum <= 0):  # pragma: no cover - every term comes from a present cell
        raise DesignError(f"{func}: a second-stage term has no observation.")
    coef = np.einsum("jkt,jt->k", W, fs.adj) / wsum
    V = _covariance(fs, W, np.ones_like(W), np.broadcast_to(coef[None, :, None], W.shape), 1.0 / wsum)
    treated_weight = np.where(term_et >= 0, wsum, np.nan) if term_et is not None else wsum
    name = opts.cluster if opts.cluster is not None else unit
    G, n_treated = _clusters(fs, fs.imputable)
    inference = first_stage_inference("two_stage", name, G, n_treated, 0, leave_out=False, leads=False)
    report = report_with_lost(m.report, parts.lost_reason, *fs.lost())
    names = {"y": y, "unit": unit, "time": time, "cohort": cohort}
    method = _method(m)
    design = parts.design_text(names, opts, n_untreated=int((fs.n * fs.untreated.sum(axis=1)).sum()),
                               method=method, covariate_names=(), event_study=term_et is not None)
    design = (*design, ("Engine", src.describe))
    source = _Source(V=V, inference=inference, names=(unit,) if cl_name is None else (unit, cl_name),
                     n_input_rows=m.report.n_input_rows)
    return parts.build_result(opts, terms=terms, coef=coef, vcov=V, inference=inference, report=report,
                              design=design, source=source, event_time=term_et, n=wsum.copy(),
                              treated_weight=treated_weight, method=method)


def _event_terms(fs: FirstStage, opts: Any, kept_event_times: Callable[..., np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The second stage's event-time indicators per unit entry (J, K, T) and their event times (as
    :func:`didx.estimators.imputation.did2s._event_terms`)."""
    ev = fs.event
    rows = (fs.untreated | fs.imputable) & np.isfinite(ev) & (fs.m.n > 0)[:, None]
    values = np.unique(ev[rows])
    keep = kept_event_times(opts, values)
    W = (rows[:, None, :] & (ev[:, None, :] == keep[None, :, None])).astype(np.float64)
    return W, keep.astype(np.float64)
