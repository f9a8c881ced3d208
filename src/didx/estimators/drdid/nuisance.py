"""Nuisance fits of the Sant'Anna-Zhao DiD estimators: logit and IPT propensity scores, weighted least squares.

Pure numpy, vectorised over observations (O(n p^2) per fit, never an n x n matrix). These reproduce the
nuisance steps of R's DRDID 1.2.3:

* :func:`fit_logit` -- the logit propensity score of ``drdid_panel``, ``std_ipw_did_panel`` ... (R: ``glm`` /
  ``fastglm`` with ``family = binomial``). Newton-Raphson (= IRLS) iterated to full convergence, so it returns the
  maximum-likelihood estimate that ``glm`` approximates (R stops at a relative deviance change of 1e-8).
* :func:`fit_ipt` -- the inverse-probability-tilting / calibrated propensity score of the *improved* estimators
  (R: ``pscore.cal``: ``trust::trust(loss.ps.cal, parinit = glm coefficients)``). The loss is the strictly convex
  ``L(g) = -mean(w * (D * x'g - (1 - D) * exp(x'g)))`` of Graham, Pinto & Egel (2012) / Tan (2020); its minimiser
  is unique, so damped Newton from the logit start reaches the same point as R's trust-region iterations.
  At the optimum the odds-weighted controls reproduce the treated covariate totals exactly:
  ``sum_{D=0} w exp(x'g) x = sum_{D=1} w x``.
* :func:`wls` -- weighted least squares on a subset (R: ``lm(..., weights=)`` / ``fastglm`` gaussian), by QR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from didx._errors import DesignError

PSCORE_CAP = 1.0 - 1e-6
"""DRDID >= 1.1.0 caps fitted propensity scores at ``1 - 1e-6`` to avoid dividing by zero."""

DEFAULT_TRIM_LEVEL = 0.995
"""DRDID >= 1.2.2: comparison units with a propensity score at or above this level get zero weight."""


@dataclass(frozen=True)
class CellEstimate:
    """One 2x2 DiD estimate with its influence function and diagnostics.

    ``inf_func`` is DRDID's ``att.inf.func``: one entry per observation (per unit for panel data, per row for
    repeated cross sections; for ``twfe`` panel, per row of the stacked pre/post data), scaled so that
    ``att - ATT ~= mean(inf_func)`` and the analytic standard error is
    ``se = sqrt(sum((inf - mean(inf))**2)) / n`` (R: ``sd(inf) * sqrt(n - 1) / n``). The TWFE estimators
    keep R's older convention ``sd(inf) / sqrt(n)`` (``twfe_did_panel`` / ``twfe_did_rc``), see ``std_error``.
    """

    att: float
    inf_func: np.ndarray
    method: str
    pscore: str = "none"  # "logit", "ipt" or "none"
    n_trimmed: int = 0  # comparison observations with pscore >= trim_level (zero weight)
    pscore_converged: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def std_error(self) -> float:
        """The analytic SE exactly as DRDID 1.2.3 reports it for this estimator."""
        if self.method == "twfe":
            n = self.inf_func.shape[0]
            return float(np.std(self.inf_func, ddof=1) / np.sqrt(n))
        return influence_se(self.inf_func)


def influence_se(inf: np.ndarray) -> float:
    """DRDID 1.2.3's analytic SE from an influence function: ``sd(inf) * sqrt(n - 1) / n``."""
    n = inf.shape[0]
    c = inf - inf.mean()
    return float(np.sqrt(c @ c) / n)


def prepare(n: int, X: np.ndarray | None, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The covariate matrix as float (n x p; intercept only when None) and weights normalised to mean 1."""
    if X is None:
        Xf = np.ones((n, 1))
    else:
        Xf = np.asarray(X, dtype=np.float64)
        if Xf.ndim == 1:
            Xf = Xf[:, None]
        if Xf.shape[0] != n:
            raise DesignError(f"The covariate matrix has {Xf.shape[0]} rows but there are {n} observations.")
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise DesignError(f"weights must have one entry per observation ({n}); got shape {w.shape}.")
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise DesignError("weights must be finite and non-negative.")
        m = w.mean()
        if m <= 0:
            raise DesignError("weights are all zero.")
        w = w / m
    return Xf, w


def _crossprod(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``X' diag(w) X`` without forming diag(w)."""
    return (X * w[:, None]).T @ X


def _solve_sym(A: np.ndarray, b: np.ndarray, what: str) -> np.ndarray:
    """Solve ``A x = b`` for a symmetric positive (semi)definite ``A``; a singular ``A`` is a design error."""
    scale = np.sqrt(np.clip(np.diag(A), 1e-300, None))
    As = A / np.outer(scale, scale)
    if np.linalg.cond(As) > 1.0 / np.finfo(float).eps:
        raise DesignError(
            f"The {what} design matrix is singular: the covariates are collinear (or do not vary) in this "
            f"sample. Fix: remove some covariates."
        )
    bs = b / (scale if b.ndim == 1 else scale[:, None])
    x = np.linalg.solve(As, bs)
    return x / (scale if x.ndim == 1 else scale[:, None])


def inverse_crossprod(X: np.ndarray, w: np.ndarray, what: str) -> np.ndarray:
    """``(X' diag(w) X / n)^{-1}``, the bread of the asymptotic linear representations."""
    n = X.shape[0]
    A = _crossprod(X, w) / n
    return _solve_sym(A, np.eye(A.shape[0]), what)


def wls(X: np.ndarray, y: np.ndarray, w: np.ndarray, mask: np.ndarray, what: str) -> np.ndarray:
    """Weighted least-squares coefficients of ``y`` on ``X`` over the rows in ``mask``.

    Normal equations on equilibrated columns with one step of iterative refinement (accurate to a few ulps of
    the fitted values for the designs met here; one pass over the data instead of a QR of the subset); a
    numerically singular design is an error, as R's NA coefficients are in DRDID.
    """
    ws = np.where(mask, w, 0.0)
    n_used = int(np.count_nonzero(ws > 0))
    if n_used < X.shape[1]:
        raise DesignError(
            f"The {what} regression has {n_used} observations for {X.shape[1]} coefficients. Fix: use "
            f"fewer covariates or a larger sample."
        )
    A = _crossprod(X, ws)
    try:
        coef = _solve_sym(A, X.T @ (ws * y), what)
    except DesignError:
        raise DesignError(
            f"The {what} regression is rank deficient: the covariates are collinear (or do not vary) in this "
            f"sample. Fix: remove some covariates."
        ) from None
    resid = y - X @ coef
    coef = coef + _solve_sym(A, X.T @ (ws * resid), what)
    out: np.ndarray = coef
    return out


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    out: np.ndarray = expit(eta)
    return out


@dataclass(frozen=True)
class PscoreFit:
    coef: np.ndarray
    pscore: np.ndarray  # fitted probabilities, not yet capped
    converged: bool
    kind: str


def _logit_deviance(d: np.ndarray, w: np.ndarray, eta: np.ndarray) -> float:
    # -2 * weighted log likelihood; log(1 + exp(eta)) computed stably
    return float(2.0 * np.sum(w * (np.logaddexp(0.0, eta) - d * eta)))


_SEPARATION = (
    "The propensity score (logit) does not converge: the covariates perfectly separate treated and comparison units "
    "(fitted probabilities 0 or 1), so there is no overlap. Fix: remove the covariates that predict the group "
    "perfectly, or restrict the sample to units with common support."
)


def fit_logit(X: np.ndarray, d: np.ndarray, w: np.ndarray, *, max_iter: int = 100, tol: float = 1e-12) -> PscoreFit:
    """Weighted logit MLE of ``d`` on ``X`` (no intercept added) by Newton-Raphson with step halving.

    Starts like R's ``glm`` (``mustart = (w d + 0.5) / (w + 1)``, one weighted LS step), then iterates until the
    largest relative coefficient change is below ``tol``. Separation shows up as ``converged=False``.
    """
    mu0 = (w * d + 0.5) / (w + 1.0)
    eta0 = np.log(mu0 / (1.0 - mu0))
    v0 = w * mu0 * (1.0 - mu0)
    z0 = eta0 + (d - mu0) / (mu0 * (1.0 - mu0))
    beta = _solve_sym(_crossprod(X, v0), X.T @ (v0 * z0), "propensity score")
    eta = X @ beta
    p = _sigmoid(eta)
    dev: float | None = None  # computed only when a step needs checking
    converged = False
    for it in range(max_iter):
        grad = X.T @ (w * (d - p))
        H = _crossprod(X, w * p * (1.0 - p))
        try:
            step = _solve_sym(H, grad, "propensity score")
        except DesignError:
            if it == 0:
                raise
            raise DesignError(_SEPARATION) from None
        new_beta = beta + step
        new_eta = X @ new_beta
        # Newton decrement grad' H^{-1} grad (log-likelihood units, free of the covariates' scales): far from the
        # optimum, halve the step until the deviance falls; close to it, Newton converges quadratically.
        new_dev: float | None = None
        if float(grad @ step) > 0.01:
            if dev is None:
                dev = _logit_deviance(d, w, eta)
            t = 1.0
            new_dev = _logit_deviance(d, w, new_eta)
            for _half in range(50):
                if new_dev <= dev + 1e-12 * abs(dev):
                    break
                t *= 0.5
                new_beta = beta + t * step
                new_eta = X @ new_beta
                new_dev = _logit_deviance(d, w, new_eta)
        change = np.max(np.abs(new_beta - beta) / (np.abs(new_beta) + 1e-8))
        beta, eta, dev = new_beta, new_eta, new_dev
        p = _sigmoid(eta)
        if change < tol:
            converged = True
            break
    if not np.all(np.isfinite(beta)) or (not converged and np.any(np.minimum(p, 1.0 - p) < 1e-12)):
        raise DesignError(_SEPARATION)
    return PscoreFit(coef=beta, pscore=p, converged=converged, kind="logit")


def _ipt_loss(X: np.ndarray, d: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    eta = X @ g
    e = np.exp(np.minimum(eta, 700.0))
    val = -float(np.mean(w * np.where(d == 1, eta, -e)))
    grad = -(X.T @ (w * np.where(d == 1, 1.0, -e))) / X.shape[0]
    return val, grad, e


def fit_ipt(X: np.ndarray, d: np.ndarray, w: np.ndarray, *, max_iter: int = 1000,
            tol: float = 1e-12) -> PscoreFit:
    """Inverse probability tilting propensity score (DRDID ``pscore.cal``; Graham, Pinto & Egel 2012).

    Minimises ``-mean(w * (D x'g - (1 - D) exp(x'g)))`` by damped Newton from the logit MLE (R: trust region
    from the ``glm`` coefficients). Returns ``pscore = plogis(x'g)``. If it does not converge (no overlap), the
    logit fit is returned with ``converged=False`` and ``kind="logit (IPT did not converge)"``; R's intermediate
    fallback (``nlm`` on the Graham et al. quadratic-extrapolation loss) is not reproduced.
    """
    start = fit_logit(X, d, w)
    g = start.coef.copy()
    n = X.shape[0]
    c = (1.0 - d) * w
    val, grad, e = _ipt_loss(X, d, w, g)
    converged = False
    for _ in range(max_iter):
        H = _crossprod(X, c * e) / n
        try:
            step = -_solve_sym(H, grad, "propensity score (IPT)")
        except DesignError:
            break
        t = 1.0
        slope = float(grad @ step)
        ok = False
        for _half in range(60):
            new_g = g + t * step
            new_val, new_grad, new_e = _ipt_loss(X, d, w, new_g)
            if np.isfinite(new_val) and new_val <= val + 1e-4 * t * slope + 1e-15 * abs(val):
                ok = True
                break
            t *= 0.5
        if not ok:
            break
        change = np.max(np.abs(new_g - g) / (np.abs(new_g) + 1e-8))
        g, val, grad, e = new_g, new_val, new_grad, new_e
        if change < tol:
            converged = True
            break
    if not converged or not np.all(np.isfinite(g)):
        return PscoreFit(coef=start.coef, pscore=start.pscore, converged=False,
                         kind="logit (IPT did not converge)")
    return PscoreFit(coef=g, pscore=_sigmoid(X @ g), converged=True, kind="ipt")


def cap_and_trim(ps: np.ndarray, d: np.ndarray, trim_level: float) -> tuple[np.ndarray, np.ndarray]:
    """DRDID's ``pmin(ps, 1 - 1e-6)`` and trimming indicator: comparison units with ``ps >= trim_level`` drop out."""
    ps = np.minimum(ps, PSCORE_CAP)
    keep = np.ones(ps.shape[0], dtype=np.float64)
    ctrl = d == 0
    keep[ctrl] = (ps[ctrl] < trim_level).astype(np.float64)
    return ps, keep


def independent_columns(X: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Indices of columns kept when collinear ones are dropped in order (like R's ``qr(X, tol = 1e-6)`` pivoting
    in ``pre_process_drdid``): a column is dropped if less than ``tol`` of its norm is outside the span of the
    columns kept before it."""
    keep: list[int] = []
    Q = np.empty((X.shape[0], 0))
    for j in range(X.shape[1]):
        col = X[:, j].astype(np.float64)
        norm = float(np.linalg.norm(col))
        if norm == 0.0:
            continue
        r = col - Q @ (Q.T @ col)
        r = r - Q @ (Q.T @ r)
        rn = float(np.linalg.norm(r))
        if rn > tol * norm:
            keep.append(j)
            Q = np.column_stack([Q, r / rn])
    return np.asarray(keep, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------------------
# shared by the panel (panel.py) and repeated cross-section (rc.py) estimators
class LogitEffect:
    """The logit's asymptotic linear representation ``score %*% (X'WX / n)^{-1}`` (R: ``asy.lin.rep.ps``),
    applied to a derivative vector without forming the n x p matrix."""

    def __init__(self, X: np.ndarray, D: np.ndarray, w: np.ndarray, ps: np.ndarray) -> None:
        self.X = X
        self.score = w * (D - ps)
        self.H = inverse_crossprod(X, ps * (1.0 - ps) * w, "propensity score")

    def __matmul__(self, M: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.score * (self.X @ (self.H @ M))
        return out


@dataclass(frozen=True)
class OddsWeights:
    """The logit propensity score and the IPW weights shared by the IPW and DR estimators (panel and RC)."""

    ps: np.ndarray
    converged: bool
    logit: LogitEffect
    trim: np.ndarray  # 0 for comparison observations with ps >= trim_level
    treat: np.ndarray  # trim w D
    odds: np.ndarray  # trim w (1 - D) p / (1 - p)


def odds_weights(X: np.ndarray, D: np.ndarray, w: np.ndarray, trim_level: float) -> OddsWeights:
    """Fit the logit propensity score (capped at ``1 - 1e-6``), trim it (DRDID's ``trim.level``), and form the
    IPW weights and the logit's estimation-effect operator."""
    fit = fit_logit(X, D, w)
    ps = np.minimum(fit.pscore, PSCORE_CAP)
    logit = LogitEffect(X, D, w, ps)
    ps, trim = cap_and_trim(ps, D, trim_level)
    return OddsWeights(ps=ps, converged=fit.converged, logit=logit, trim=trim, treat=trim * w * D,
                       odds=trim * w * ps * (1.0 - D) / (1.0 - ps))


def n_trimmed(trim: np.ndarray, D: np.ndarray) -> int:
    """Comparison observations given zero weight by the trimming."""
    return int(np.count_nonzero((trim == 0) & (D == 0)))


def drop_intercept(X: np.ndarray) -> np.ndarray:
    """``X`` without its leading intercept column (the TWFE designs add their own)."""
    if X.shape[1] and np.all(X[:, 0] == 1.0):
        return X[:, 1:]
    return X


def twfe_fit(y: np.ndarray, Z: np.ndarray, w: np.ndarray) -> CellEstimate:
    """Weighted OLS of ``y`` on ``Z`` (treatment x post last) and the heteroskedasticity-robust influence function
    of the last coefficient (DRDID's ``twfe_did_panel`` / ``twfe_did_rc``)."""
    coef = wls(Z, y, w, np.ones(y.shape[0], dtype=bool), "TWFE")
    resid = y - Z @ coef
    bread = inverse_crossprod(Z, w, "TWFE regression")
    inf = (w * resid) * (Z @ bread[:, -1])
    return CellEstimate(att=float(coef[-1]), inf_func=inf, method="twfe")
