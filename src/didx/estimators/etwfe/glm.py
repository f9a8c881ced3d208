"""Poisson and logit ETWFE: maximum likelihood with the cohort and period effects absorbed (fixest ``feglm``).

Iteratively reweighted least squares: with the canonical link, each step regresses the working response
``z = eta + (y - mu) / V(mu)`` on the regressors with weights ``V(mu)`` (``mu`` for Poisson, ``mu (1 - mu)`` for the
logit) and the cohort and period effects absorbed by :mod:`didx.linalg.absorb` (no dummy matrix); it stops when
the deviance changes by less than ``GLM_TOL`` relative. The coefficients equal those of the model with explicit
cohort and period dummies (R etwfe's ``fe = "none"`` for nonlinear families, whose outputs are the references).

Inference. The estimates ``theta = (b, fixed effects)`` solve ``sum_i z_i (y_i - mu_i) = 0`` (``z_i`` = regressors
and fixed-effect indicators), so each observation's influence is ``H^{-1} z_i r_i``: for ``b``, by Frisch-Waugh,
``(Xd' W Xd)^{-1} xd_i r_i`` (``xd`` demeaned with the weights ``W``), and for the fixed effects
``E^+ (d_i r_i - C psi_b,i)`` with ``E = D'WD``, ``C = D'WX`` (cell sums; ``E^+`` a pseudo-inverse: the effects are
identified up to a constant, which no prediction depends on). Clustered (CR1) and heteroskedasticity-robust
covariances follow fixest's small-sample conventions (``K`` = the coefficients plus the cohort and period
effects). R emfx's effects ``mean_i [F(eta_i + delta_i) - F(eta_i)]`` get delta-method SEs from their Jacobian
over ``theta`` (analytic here; marginaleffects differentiates numerically).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from didx._errors import ConvergenceError, DesignError, InvalidOptionError
from didx._panel import Panel
from didx._validate import distinct_at_most_two, fmt_value
from didx.estimators.etwfe.design import cell_dummies, covariate_terms, finish_aggregation
from didx.estimators.etwfe.result import Aggregation
from didx.estimators.etwfe.sample import Cells, aggregation_rows
from didx.estimators.regression.common import inference_info, treated_flags
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest, cluster_count_check
from didx.inference.vcov import VcovResult, VcovSpec, clustered_vcov, hc_factor, k_for_ssc, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.results.base import Inference

GLM_TOL = 1e-12
"""Relative change of the deviance that stops the iterations."""
GLM_MAXITER = 100
GLM_KINDS = ("HC0", "HC1", "hetero", "CR0", "CR1")


def _mean(family: str, eta: np.ndarray) -> np.ndarray:
    if family == "poisson":
        return np.exp(eta)
    return 0.5 * (1.0 + np.tanh(0.5 * eta))  # the logistic function without overflow


def _variance(family: str, mu: np.ndarray) -> np.ndarray:
    return mu if family == "poisson" else mu * (1.0 - mu)


def _deviance(family: str, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        if family == "poisson":
            term = np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu)
        else:
            term = -(y * np.log(mu) + (1.0 - y) * np.log1p(-mu))
    return float(2.0 * np.sum(w * term))


@dataclass(frozen=True, eq=False)
class GlmSource:
    """Covariance source of the GLM: per-observation influence of ``theta = (b, fixed effects)``."""

    influence: np.ndarray      # (n, P)
    n_coef: int                # slopes b (the first columns)
    n_fe_params: int           # identified fixed-effect parameters (levels - components)
    fe_factors: tuple[np.ndarray, np.ndarray]
    fe_levels: tuple[int, int]
    clusters: ClusterCodes
    default: VcovSpec
    treated: np.ndarray
    fit: OLSFit                # the last IRLS step (names, collinearity)

    def __post_init__(self) -> None:
        object.__setattr__(self, "treated", treated_flags(self.treated))

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vcov=GLM_KINDS, max_clusters=2, new_clusters=True, ssc=True,
                            default="the estimator's vcov= / cluster= at fit time")

    def _meat(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        _, c = np.unique(codes, return_inverse=True)
        c = c.reshape(-1)
        G = int(c.max()) + 1
        S = np.empty((G, self.influence.shape[1]))
        for j in range(S.shape[1]):
            S[:, j] = np.bincount(c, weights=self.influence[:, j], minlength=G)
        return S.T @ S, G

    def compute(self, func: str, spec: VcovSpec, given: Mapping[str, np.ndarray] | None = None
                ) -> tuple[np.ndarray, Inference]:
        if spec.kind not in GLM_KINDS:
            raise InvalidOptionError(
                f"{func}: vcov={spec.kind!r} is not available for a Poisson / logit ETWFE. Choose one of "
                f"{', '.join(map(repr, GLM_KINDS))}."
            )
        given = given or {}
        codes = {n: np.asarray(given[n] if n in given else self.clusters.stored[n]) for n in spec.clusters}
        for name, c in codes.items():
            cluster_count_check(func, name, distinct_at_most_two(c))
        n = self.influence.shape[0]
        nested = [False, False]
        if spec.ssc.fixef_k == "nested":
            for c in codes.values():
                for j, (f, L) in enumerate(zip(self.fe_factors, self.fe_levels, strict=True)):
                    first = np.full(L, -1, dtype=np.int64)
                    first[f] = c
                    nested[j] |= bool(np.array_equal(first[f], c))
        K = k_for_ssc(self.n_coef, self.n_fe_params, list(self.fe_levels), nested, spec.ssc, bool(codes))
        eye = np.eye(self.influence.shape[1])
        vr: VcovResult
        if spec.kind in ("HC0", "HC1", "hetero"):
            meat = self.influence.T @ self.influence
            factor = hc_factor(spec.kind, n, K, spec.ssc)
            vr = VcovResult(factor * meat, float(n - K), (), K, factor)
        else:
            vr = clustered_vcov(spec.kind, eye, n, K, spec.ssc, [codes[c] for c in spec.clusters], self._meat, func,
                                spec.clusters)
        return vr.matrix, inference_info(spec, vr, self.fit, codes, self.treated)

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        spec = resolve_vcov(func, request.vcov, request.clusters, self.default, request.ssc)
        return self.compute(func, spec, codes)


@dataclass(frozen=True, eq=False)
class GlmFit:
    """What :func:`didx.estimators.etwfe.estimator` needs from the GLM."""

    source: GlmSource
    params: np.ndarray         # (b, fixed effects): b first
    coef_names: list[str]
    method: str
    family: str
    eta: np.ndarray            # fitted index per row
    delta: np.ndarray          # the treatment part of the index per row (0 where no treatment coefficient)
    x_common: np.ndarray       # regressors that do not switch with the treatment (n x k, treatment columns 0)
    x_treat: np.ndarray        # the treatment columns' values when the treatment is on (n x k)
    fe_rows: tuple[np.ndarray, np.ndarray]
    n_levels: tuple[int, int]
    cohort_name: str
    time_name: str

    def aggregation(self, kind: str, cells: Cells, scale: str = "response") -> Aggregation:
        """R emfx: ``mean [F(eta0 + delta) - F(eta0)]`` over each group's treated rows (``scale="response"``), or
        the change in the index, ``mean delta`` (``scale="link"``, emfx's ``predict = "link"``)."""
        member, values = aggregation_rows(cells, kind)
        rows_in = member[:, cells.cell] > 0     # (groups, n)
        k = self.x_common.shape[1]
        Lg, Lt = self.n_levels
        if scale == "link":
            den = rows_in.sum(axis=1).astype(np.float64)
            safe = np.where(den > 0, den, 1.0)
            J = np.zeros((len(values), k + Lg + Lt))
            J[:, :k] = (rows_in @ self.x_treat) / safe[:, None]
            return finish_aggregation(kind, values, (rows_in @ self.delta) / safe, J, den, self.cohort_name,
                                      self.time_name)
        eta0 = self.eta - self.delta
        eta1 = eta0 + self.delta
        F0, F1 = _mean(self.family, eta0), _mean(self.family, eta1)
        f0, f1 = _variance(self.family, F0), _variance(self.family, F1)  # dF/deta for canonical links
        diff = F1 - F0
        den = rows_in.sum(axis=1).astype(np.float64)
        safe = np.where(den > 0, den, 1.0)
        est = (rows_in @ diff) / safe
        J = np.zeros((len(values), k + Lg + Lt))
        d = (f1 - f0)[None, :] * rows_in
        J[:, :k] = (d @ self.x_common + (f1[None, :] * rows_in) @ self.x_treat) / safe[:, None]
        g, t = self.fe_rows
        for r in range(len(values)):
            J[r, k:k + Lg] = np.bincount(g, weights=d[r], minlength=Lg) / safe[r]
            J[r, k + Lg:] = np.bincount(t, weights=d[r], minlength=Lt) / safe[r]
        return finish_aggregation(kind, values, est, J, den, self.cohort_name, self.time_name)


def _check_separation(y: np.ndarray, cells: Cells, family: str, cohort_name: str,
                      time_name: str) -> None:
    """Refuse a treatment cell, cohort or period whose outcome is all 0 (Poisson), or all 0 or all 1 (logit): its
    coefficient or fixed effect is infinite (no maximum-likelihood estimate), which IRLS would report as a large
    finite number with a small standard error."""
    G, T = cells.table.shape
    n_cell = np.bincount(cells.cell, minlength=G * T).reshape(G, T)
    s_cell = np.bincount(cells.cell, weights=y, minlength=G * T).reshape(G, T)
    what = "all 0" if family == "poisson" else "all 0 or all 1"

    def degenerate(n: np.ndarray, s: np.ndarray) -> np.ndarray:
        bad = (n > 0) & (s <= 0)
        return bad | ((n > 0) & (s >= n)) if family == "logit" else bad

    bad = np.argwhere(degenerate(n_cell, s_cell) & (cells.table >= 0))
    if bad.size:
        g, t = (int(v) for v in bad[0])
        raise DesignError(
            f"etwfe: family={family!r}: the outcome of the treatment cell {cohort_name}={fmt_value(cells.cohorts[g])}, "
            f"{time_name}={fmt_value(cells.periods[t])} ({int(n_cell[g, t])} rows) is {what}, so its coefficient is "
            f"infinite (perfect prediction; no maximum-likelihood estimate) and its effect is not identified "
            f"({int(bad.shape[0])} such cell(s)). Fix: drop that cohort or those periods, or use the linear model "
            f"(family=None)."
        )
    for axis, label, values, col in ((1, "cohort", cells.cohorts, cohort_name), (0, "period", cells.periods,
                                                                                  time_name)):
        n_l, s_l = n_cell.sum(axis=axis), s_cell.sum(axis=axis)
        bad_l = np.flatnonzero(degenerate(n_l, s_l))
        if bad_l.size:
            j = int(bad_l[0])
            raise DesignError(
                f"etwfe: family={family!r}: the outcome of {label} {col}={fmt_value(values[j])} ({int(n_l[j])} rows) "
                f"is {what}, so its fixed effect is infinite (no maximum-likelihood estimate). Fix: drop that "
                f"{label}, or use the linear model (family=None)."
            )


def fit_glm(sample: Panel, cells: Cells, *, family: str, clusters: ClusterCodes, default: VcovSpec,
            treated: np.ndarray, cohort_name: str, time_name: str, means: np.ndarray | None = None) -> GlmFit:
    """Fit the Poisson / logit ETWFE by IRLS with absorbed cohort and period effects (see the module)."""
    y = sample.y
    n = y.shape[0]
    prior = np.ones(n) if sample.weights is None else sample.weights
    _check_separation(y, cells, family, cohort_name, time_name)
    C, cnames, dm_cols, dm_names, _ = covariate_terms(sample, cells, cohort_name, time_name, means)
    D = cell_dummies(cells)
    X = np.column_stack([C, D, dm_cols])
    names = [*cnames, *cells.names, *dm_names]
    g_row, t_row = cells.cohort, sample.time
    Lg, Lt = int(cells.table.shape[0]), int(sample.n_periods)
    ybar = float(np.average(y, weights=prior))
    mu = (y + ybar) / 2.0 if family == "poisson" else (y + 0.5) / 2.0
    eta = np.log(mu) if family == "poisson" else np.log(mu / (1.0 - mu))
    dev_old = _deviance(family, y, mu, prior)
    fit: OLSFit | None = None
    for _ in range(GLM_MAXITER):
        w = prior * _variance(family, mu)
        z = eta + (y - mu) / np.where(w > 0, _variance(family, mu), 1.0)
        fe = FixedEffects([g_row, t_row], [cohort_name, time_name], weights=w)
        fit = fit_ols(z, X, names, fe=fe, weights=w, func="etwfe")
        eta = z - fit.resid
        mu = _mean(family, eta)
        dev = _deviance(family, y, mu, prior)
        if not np.isfinite(dev):
            break
        if abs(dev - dev_old) <= GLM_TOL * max(abs(dev), 0.1):
            break
        dev_old = dev
    else:
        raise ConvergenceError(
            f"etwfe: the {family} fit did not converge in {GLM_MAXITER} iterations (deviance {dev:.6g}). Fix: check "
            f"for cells whose outcome is all 0 (or all 1 for the logit): their effects are not identified."
        )
    if fit is None or not np.isfinite(dev) or not np.all(np.isfinite(fit.coef)):
        raise DesignError(
            f"etwfe: the {family} fit diverged (some fitted means are 0 or infinite). This happens when a cohort x "
            f"period cell has an outcome that is all 0 (or all 1 for the logit). Fix: drop those cells' periods."
        )
    keep = [names.index(nm) for nm in fit.names]
    Xk = X[:, keep]
    # the sandwich at the estimate: weights, demeaned regressors and (Xd' W Xd)^{-1} at the final mu (the last
    # IRLS step used the previous iterate's weights)
    w = prior * _variance(family, mu)
    r = prior * (y - mu)
    fe_final = FixedEffects([g_row, t_row], [cohort_name, time_name], weights=w)
    Xd = fe_final.demean(Xk)
    bread = np.linalg.inv(Xd.T @ (Xd * w[:, None]))
    bread = 0.5 * (bread + bread.T)
    psi_b = (Xd * r[:, None]) @ bread                   # (n, k)
    # fixed-effect part: E^+ (d_i r_i - C psi_b,i), E = D'WD, C = D'WX over the cohort and period levels
    L = Lg + Lt
    E = np.zeros((L, L))
    cell_w = np.bincount(g_row * Lt + t_row, weights=w, minlength=Lg * Lt).reshape(Lg, Lt)
    E[:Lg, :Lg] = np.diag(cell_w.sum(axis=1))
    E[Lg:, Lg:] = np.diag(cell_w.sum(axis=0))
    E[:Lg, Lg:] = cell_w
    E[Lg:, :Lg] = cell_w.T
    Cm = np.zeros((L, Xk.shape[1]))
    for j in range(Xk.shape[1]):
        Cm[:Lg, j] = np.bincount(g_row, weights=w * Xk[:, j], minlength=Lg)
        Cm[Lg:, j] = np.bincount(t_row, weights=w * Xk[:, j], minlength=Lt)
    Ep = np.linalg.pinv(E, rcond=1e-12)
    psi_fe = r[:, None] * (Ep[:, g_row] + Ep[:, Lg + t_row]).T - psi_b @ (Ep @ Cm).T
    influence = np.column_stack([psi_b, psi_fe])
    # fixed-effect values (for completeness): eta - X b decomposed into cohort + period effects, min-norm
    rhs = np.concatenate([np.bincount(g_row, weights=w * (eta - Xk @ fit.coef), minlength=Lg),
                          np.bincount(t_row, weights=w * (eta - Xk @ fit.coef), minlength=Lt)])
    fe_values = Ep @ rhs
    n_fe = fit.fe.n_params() if fit.fe is not None else Lg + Lt - 1
    source = GlmSource(influence=influence, n_coef=fit.n_coef, n_fe_params=n_fe, fe_factors=(g_row, t_row),
                       fe_levels=(Lg, Lt), clusters=clusters, default=default, treated=treated, fit=fit)
    is_treat = np.zeros(Xk.shape[1], dtype=bool)
    kept_names = list(fit.names)
    treat_names = set(cells.names) | set(dm_names)
    for j, nm in enumerate(kept_names):
        is_treat[j] = nm in treat_names
    delta = Xk[:, is_treat] @ fit.coef[is_treat]
    x_common = np.where(is_treat[None, :], 0.0, Xk)
    x_treat = np.where(is_treat[None, :], Xk, 0.0)
    method = f"{family} maximum likelihood (IRLS, cohort and period effects absorbed)"
    return GlmFit(source=source, params=np.concatenate([fit.coef, fe_values]), coef_names=kept_names,
                  method=method, family=family, eta=eta, delta=delta, x_common=x_common, x_treat=x_treat,
                  fe_rows=(g_row, t_row), n_levels=(Lg, Lt), cohort_name=cohort_name, time_name=time_name)

