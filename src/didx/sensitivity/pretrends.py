"""Power of pre-trend tests against a hypothesised violation of parallel trends (Roth 2022).

The pre-test is the one most papers run: reject parallel trends when *any* pre-period coefficient is individually
significant, ``|b_t / se_t| > z`` for some ``t < reference`` (``z = Phi^-1(1 - alpha/2)``). With ``b_pre ~ N(delta_pre,
Sigma_pre)`` under the hypothesised trend ``delta``:

* power = ``1 - P(-z se <= b_pre <= z se)``, a rectangle probability of the multivariate normal;
* Bayes factor = ``P(pass | delta) / P(pass | 0)`` (pass = no significant coefficient);
* likelihood ratio = ``phi(b_pre; delta_pre, Sigma_pre) / phi(b_pre; 0, Sigma_pre)`` at the estimated leads;
* the expected coefficients conditional on passing: the mean of the truncated normal for the leads (Tallis
  1961; Manjunath & Wilhelm 2012), and ``delta_post + Sigma_post,pre Sigma_pre^-1 (E[b_pre | pass] - delta_pre)``
  for the later coefficients.

These are the quantities of ``pretrends::pretrends()`` and ``slope_for_power()`` (R package by J. Roth), which
computes the rectangle probabilities with ``mvtnorm::pmvnorm`` (randomised quasi-Monte Carlo, abseps 1e-3) and
hard-codes ``z = 1.96``. Here, up to three pre-periods, the probabilities are exact to about 1e-12 (closed form
in one dimension, Owen's T in two, adaptive quadrature of the conditional bivariate normal in three); above,
scipy's quasi-Monte Carlo with abseps 1e-7 and a fixed seed (deterministic).

Reference: Roth, J. (2022). Pretest with Caution: Event-Study Estimates after Testing for Parallel Trends.
*AER: Insights* 4(3), 305-322.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special
from scipy.stats import multivariate_normal, norm

from didx._errors import DesignError, InvalidOptionError

EXACT_MAX_DIM = 3  # rectangle probabilities by nested quadrature up to this many pre-periods
QUAD_TOL = 1e-13
QMC_ABSEPS = 1e-7
QMC_SEED = 20220601

ArrayLike = Sequence[float] | np.ndarray


# --------------------------------------------------------------------------------------------------------------
# Rectangle probabilities and the truncated-normal mean of N(0, cov)
# --------------------------------------------------------------------------------------------------------------


def _box_probability(lower: np.ndarray, upper: np.ndarray, cov: np.ndarray) -> float:
    """``P(lower <= Y <= upper)`` for ``Y ~ N(0, cov)`` (bounds may be infinite)."""
    d = len(lower)
    if d == 0:
        return 1.0
    if np.any(upper <= lower):
        return 0.0
    if d == 1:
        s = np.sqrt(cov[0, 0])
        lo, hi = lower[0] / s, upper[0] / s
        if lo > 0:  # upper tail: difference of survival functions keeps the digits
            return float(norm.sf(lo) - norm.sf(hi))
        return float(norm.cdf(hi) - norm.cdf(lo))
    if d == 2:
        return _box_probability_2d(lower, upper, cov)
    if d <= EXACT_MAX_DIM:
        return _box_probability_nested(lower, upper, cov)
    value = multivariate_normal.cdf(upper, mean=np.zeros(d), cov=cov, lower_limit=lower, abseps=QMC_ABSEPS,
                                    releps=0.0, maxpts=2_000_000 * d, rng=np.random.default_rng(QMC_SEED))
    return float(np.clip(value, 0.0, 1.0))


def _bivariate_cdf(h: np.ndarray, k: np.ndarray, rho: float) -> np.ndarray:
    """``P(Z1 <= h, Z2 <= k)`` for standard normals with correlation ``rho``, exactly, with Owen's T (Owen 1956):
    ``Phi2 = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k) - 1[hk < 0] / 2``. Bounds are clipped to +-40 (the
    mass beyond is below 1e-300) and zeros moved to 1e-150, where the formula is continuous."""
    h = np.clip(h, -40.0, 40.0)
    k = np.clip(k, -40.0, 40.0)
    h = np.where(h == 0.0, 1e-150, h)
    k = np.where(k == 0.0, 1e-150, k)
    r = np.sqrt(1.0 - rho * rho)
    out = (0.5 * (norm.cdf(h) + norm.cdf(k)) - special.owens_t(h, (k - rho * h) / (h * r))
           - special.owens_t(k, (h - rho * k) / (k * r)) - 0.5 * (h * k < 0.0))
    return np.asarray(out, dtype=float)


def _box_probability_2d(lower: np.ndarray, upper: np.ndarray, cov: np.ndarray) -> float:
    s = np.sqrt(np.diag(cov))
    rho = float(cov[0, 1] / (s[0] * s[1]))
    a, b = lower / s, upper / s
    corners = _bivariate_cdf(np.array([b[0], a[0], b[0], a[0]]), np.array([b[1], b[1], a[1], a[1]]), rho)
    return float(np.clip(corners[0] - corners[1] - corners[2] + corners[3], 0.0, 1.0))


def _box_probability_nested(lower: np.ndarray, upper: np.ndarray, cov: np.ndarray) -> float:
    """Condition on the first coordinate: ``P = int phi(z) P(rest in box | Y_1 = s_1 z) dz`` (adaptive quad)."""
    s1 = np.sqrt(cov[0, 0])
    slope = cov[1:, 0] / cov[0, 0]
    cond = cov[1:, 1:] - np.outer(cov[1:, 0], cov[0, 1:]) / cov[0, 0]
    lo, hi = max(lower[0] / s1, -40.0), min(upper[0] / s1, 40.0)

    def integrand(z: float) -> float:
        y = s1 * z
        return float(norm.pdf(z)) * _box_probability(lower[1:] - slope * y, upper[1:] - slope * y, cond)

    # split at 0 where the interval straddles the mode of phi: quad then never misses the mass
    points = [p for p in (0.0,) if lo < p < hi]
    value, _ = integrate.quad(integrand, lo, hi, epsabs=QUAD_TOL, epsrel=QUAD_TOL, limit=200,
                              points=points or None)
    return float(np.clip(value, 0.0, 1.0))


def _truncated_mean(mean: np.ndarray, cov: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``E[X | lower <= X <= upper]`` for ``X ~ N(mean, cov)``: Tallis (1961), as in Manjunath & Wilhelm (2012).

    With ``Y = X - mean`` and box ``[a, b]``: ``E[Y] = Sigma F / P``, ``F_k = f_k(a_k) - f_k(b_k)``, where ``f_k(x)``
    is the density of ``Y_k`` at ``x`` times the probability that the other coordinates lie in their box given
    ``Y_k = x``.
    """
    a, b = lower - mean, upper - mean
    prob = _box_probability(a, b, cov)
    if prob <= 0.0:
        raise DesignError(
            "pretrend_power(): the probability of passing the pre-test is zero under the hypothesised trend, so "
            "the coefficients' mean conditional on passing is undefined. Fix: hypothesise a smaller trend."
        )
    d = len(mean)
    F = np.zeros(d)
    for k in range(d):
        others = np.arange(d) != k
        s_kk = cov[k, k]
        slope = cov[others, k] / s_kk
        cond = cov[np.ix_(others, others)] - np.outer(cov[others, k], cov[k, others]) / s_kk
        for x, sign in ((a[k], 1.0), (b[k], -1.0)):
            if np.isfinite(x):
                density = norm.pdf(x, scale=np.sqrt(s_kk))
                F[k] += sign * density * _box_probability(a[others] - slope * x, b[others] - slope * x, cond)
    return mean + cov @ F / prob


def _method_text(n_pre: int) -> str:
    if n_pre == 1:
        return "normal CDF (closed form)"
    if n_pre == 2:
        return "bivariate normal CDF by Owen's T (exact)"
    if n_pre <= EXACT_MAX_DIM:
        return "adaptive quadrature of the conditional bivariate normal (exact to ~1e-12)"
    return f"scipy quasi-Monte Carlo (abseps {QMC_ABSEPS:g}, fixed seed {QMC_SEED})"


# --------------------------------------------------------------------------------------------------------------
# Inputs: an event-study result or raw (beta, sigma, event_time, reference)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    beta: np.ndarray | None
    sigma: np.ndarray
    event_time: np.ndarray
    reference: float
    source: str
    pre_period_meaning: str

    @property
    def pre(self) -> np.ndarray:
        return self.event_time < self.reference


def _resolve_inputs(func: str, es: Any, beta: ArrayLike | None, sigma: ArrayLike | None,
                    event_time: ArrayLike | None, reference: float | None, *, need_beta: bool) -> _Inputs:
    if es is not None:
        if beta is not None or sigma is not None or event_time is not None:
            raise InvalidOptionError(
                f"{func}(): pass either an event-study result or raw inputs (beta=, sigma=, event_time=), not both. "
                f"Fix: drop the raw inputs, or drop the result."
            )
        return _from_result(func, es, reference)
    missing = [name for name, v in (("beta", beta), ("sigma", sigma), ("event_time", event_time),
                                    ("reference", reference)) if v is None and (name != "beta" or need_beta)]
    if missing or sigma is None or event_time is None or reference is None:
        raise InvalidOptionError(
            f"{func}(): without an event-study result, {', '.join(missing)} must be given. Fix: pass an "
            f"EventStudyResult (e.g. didx.event_study(...)), or beta=, sigma=, event_time= and reference=."
        )
    return _checked(func, beta, sigma, event_time, reference, source="raw inputs", meaning="")


def _from_result(func: str, es: Any, reference: float | None) -> _Inputs:
    from didx.results.event import EventStudyResult

    if not isinstance(es, EventStudyResult):
        raise InvalidOptionError(
            f"{func}(): es must be an event-study result of didx (with event times); got {type(es).__name__}. "
            f"Fix: pass e.g. didx.event_study(...), or raw inputs beta=, sigma=, event_time=, reference=."
        )
    refs = es.reference_periods
    if reference is None:
        if len(refs) != 1:
            what = "no reference period" if not refs else f"several reference periods {list(refs)}"
            cs = "Callaway" in es.estimator
            fix = ("estimate with base_period='universal', whose leads share the reference period -1 with the lags"
                   if cs else "pass reference=<event time> explicitly if the leads are deviations from that period")
            raise DesignError(
                f"{func}(): {es.estimator} has {what}: no event time at which the coefficients are normalised to "
                f"zero, the period that violations of parallel trends are measured from. {es.pre_period_meaning} "
                f"Fix: {fix}."
            )
        reference = refs[0]
    et = es.event_times
    keep = np.isfinite(et) & ~np.isin(et, np.asarray(refs, dtype=float))
    idx = np.flatnonzero(keep)
    return _checked(func, es.coef[idx], es.vcov_matrix[np.ix_(idx, idx)], et[idx], reference,
                    source=es.estimator, meaning=es.pre_period_meaning)


def _checked(func: str, beta: ArrayLike | None, sigma: ArrayLike, event_time: ArrayLike, reference: float,
             *, source: str, meaning: str) -> _Inputs:
    t = np.asarray(event_time, dtype=float).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or np.unique(t).size != t.size:
        raise InvalidOptionError(
            f"{func}(): event_time must be finite, distinct numbers, one per coefficient; got {t.tolist()}. "
            f"Fix: pass the event time of each coefficient once."
        )
    ref = float(reference)
    if not np.isfinite(ref) or ref in t:
        raise InvalidOptionError(
            f"{func}(): reference={reference!r} must be a finite event time that is not among the estimated ones "
            f"(it is normalised to zero). Fix: pass the omitted period, e.g. reference=-1."
        )
    S = np.asarray(sigma, dtype=float)
    if S.shape != (t.size, t.size):
        raise InvalidOptionError(
            f"{func}(): sigma must be a {t.size} x {t.size} covariance matrix (one row per event time); got shape "
            f"{S.shape}. Fix: pass the covariance of exactly the coefficients listed in event_time."
        )
    if not np.all(np.isfinite(S)) or not np.allclose(S, S.T, rtol=1e-10, atol=0.0):
        raise InvalidOptionError(
            f"{func}(): sigma must be a finite symmetric matrix. Fix: pass the estimated covariance matrix."
        )
    S = (S + S.T) / 2.0
    try:
        np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise InvalidOptionError(
            f"{func}(): sigma is not positive definite (smallest eigenvalue {np.linalg.eigvalsh(S)[0]:.3g}). "
            f"Fix: drop coefficients normalised to zero or collinear ones from beta/sigma/event_time."
        ) from None
    b = None
    if beta is not None:
        b = np.asarray(beta, dtype=float).ravel()
        if b.shape != t.shape or not np.all(np.isfinite(b)):
            raise InvalidOptionError(
                f"{func}(): beta must hold {t.size} finite coefficients, one per event time; got {b.size}. "
                f"Fix: pass beta, sigma and event_time of the same coefficients."
            )
    if not np.any(t < ref):
        raise DesignError(
            f"{func}(): there are no pre-period coefficients (event time < reference {ref:g}; estimated event "
            f"times {t.tolist()}), so there is no pre-test. Fix: estimate leads (widen the event window)."
        )
    return _Inputs(b, S, t, ref, source, meaning)


def _critical_value(func: str, alpha: float, critical_value: float | None) -> float:
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise InvalidOptionError(
            f"{func}(): alpha must be a number in (0, 1); got {alpha!r}. Fix: e.g. alpha=0.05."
        )
    if critical_value is None:
        return float(norm.ppf(1.0 - float(alpha) / 2.0))
    if not isinstance(critical_value, int | float) or not 0.0 < float(critical_value) < np.inf:
        raise InvalidOptionError(
            f"{func}(): critical_value must be a positive number; got {critical_value!r}. Fix: leave it out "
            f"(two-sided normal quantile at alpha), or e.g. critical_value=1.96 as the R package pretrends."
        )
    return float(critical_value)


def _pass_probability(mean_pre: np.ndarray, sigma_pre: np.ndarray, z: float) -> float:
    """P(no pre-period coefficient significant) for ``b_pre ~ N(mean_pre, sigma_pre)``."""
    bound = z * np.sqrt(np.diag(sigma_pre))
    return _box_probability(-bound - mean_pre, bound - mean_pre, sigma_pre)


# --------------------------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PretrendPower:
    """Power of the pre-test against a hypothesised trend, with pretrends' Bayes factor and likelihood ratio.

    ``power``: probability that some pre-period coefficient is significant under ``delta``; ``size``: the same
    under parallel trends (``delta = 0``); ``bayes_factor = (1 - power) / (1 - size)``; ``likelihood_ratio``: the
    density of the estimated leads under ``delta`` over that under 0; ``conditional_mean``: the expected
    coefficients given that the pre-test passes, under ``delta``. Arrays are per coefficient, in the order of
    ``event_time`` (the reference period is not among them; it is zero).
    """

    power: float
    size: float
    bayes_factor: float
    likelihood_ratio: float
    event_time: np.ndarray
    estimate: np.ndarray
    std_error: np.ndarray
    delta: np.ndarray
    conditional_mean: np.ndarray
    reference: float
    alpha: float
    critical_value: float
    slope: float | None
    source: str
    pre_period_meaning: str
    method: str

    @property
    def is_pre(self) -> np.ndarray:
        return self.event_time < self.reference

    @property
    def n_pre(self) -> int:
        return int(self.is_pre.sum())

    def tidy(self) -> pd.DataFrame:
        """One row per coefficient: ``event_time, period ("pre"/"post"), estimate, std_error, delta,
        conditional_mean``."""
        return pd.DataFrame({
            "event_time": self.event_time, "period": np.where(self.is_pre, "pre", "post"),
            "estimate": self.estimate, "std_error": self.std_error, "delta": self.delta,
            "conditional_mean": self.conditional_mean,
        })

    def summary(self) -> str:
        trend = (f"linear, slope {self.slope:.8g} x (event time - ({self.reference:g}))" if self.slope is not None
                 else "as given (delta=)")
        lines = [
            "Pre-trend power (Roth 2022; R package pretrends)",
            f"Event study: {self.source}",
        ]
        if self.pre_period_meaning:
            lines.append(f"Pre-period coefficients: {self.pre_period_meaning}")
        lines += [
            f"Reference period: {self.reference:g} (normalised to 0; the hypothesised trend is 0 there)",
            f"Pre-periods tested: {self.n_pre} (event times {self.event_time[self.is_pre].tolist()})",
            f"Pre-test: reject if any |estimate / std_error| > {self.critical_value:.6g} "
            f"(two-sided, alpha = {self.alpha:g}, each coefficient separately)",
            f"Hypothesised trend: {trend}",
            f"Rectangle probabilities: {_method_text(self.n_pre)}",
            "",
            f"Power against the trend:       {self.power:.7f}",
            f"Rejection rate under delta=0:  {self.size:.7f}",
            f"Bayes factor P(pass|delta)/P(pass|0): {self.bayes_factor:.7f}",
            f"Likelihood ratio of the estimated leads, delta vs 0: {self.likelihood_ratio:.7f}",
            "",
            "conditional_mean: expected coefficient given that the pre-test passes, under delta",
            self.tidy().to_string(index=False, float_format=lambda x: f"{x:.6g}"),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"PretrendPower(power={self.power:.6g}, bayes_factor={self.bayes_factor:.6g}, "
                f"likelihood_ratio={self.likelihood_ratio:.6g}, n_pre={self.n_pre}, reference={self.reference:g})")

    def plot(self, ax: Any = None, *, conditional: bool = True) -> Any:
        """The event study (pointwise intervals at the pre-test's critical value), the hypothesised trend, and
        (``conditional=True``) the expected coefficients after passing the pre-test. Returns the Axes."""
        import matplotlib.pyplot as plt

        from didx.results.plot import check_ax

        check_ax("PretrendPower.plot", ax)
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        order = np.argsort(np.append(self.event_time, self.reference))
        t_all = np.append(self.event_time, self.reference)[order]
        half = self.critical_value * self.std_error
        ax.errorbar(self.event_time, self.estimate, yerr=half, fmt="o", color="black", capsize=3,
                    label="Estimated coefficients", gid="estimates")
        ax.plot([self.reference], [0.0], "o", color="black", markerfacecolor="white", gid="reference")
        ax.plot(t_all, np.append(self.delta, 0.0)[order], "-^", color="tab:red", label="Hypothesised trend",
                gid="trend")
        if conditional:
            ax.plot(t_all, np.append(self.conditional_mean, 0.0)[order], "--s", color="tab:blue",
                    label="Expectation after passing the pre-test", gid="conditional_mean")
        ax.axhline(0.0, color="grey", linewidth=0.8, gid="zero_line")
        ax.set_xlabel("Event time")
        ax.set_title(f"Pre-test power {self.power:.3f} against the hypothesised trend")
        ax.legend(loc="best", fontsize="small")
        return ax


# --------------------------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------------------------


def _hypothesis(inputs: _Inputs, delta: ArrayLike | None, slope: float | None) -> tuple[np.ndarray, float | None]:
    if (delta is None) == (slope is None):
        raise InvalidOptionError(
            "pretrend_power(): give exactly one of delta= (the hypothesised trend at every event time) and "
            "slope= (a linear trend slope * (event_time - reference)). Fix: e.g. slope=0.05."
        )
    if slope is not None:
        if not isinstance(slope, int | float) or not np.isfinite(slope):
            raise InvalidOptionError(f"pretrend_power(): slope must be a finite number; got {slope!r}.")
        return float(slope) * (inputs.event_time - inputs.reference), float(slope)
    d = np.asarray(delta, dtype=float).ravel()
    if d.shape != inputs.event_time.shape or not np.all(np.isfinite(d)):
        raise InvalidOptionError(
            f"pretrend_power(): delta must hold {inputs.event_time.size} finite numbers, one per event time "
            f"{inputs.event_time.tolist()} (not the reference period); got {d.size}. Fix: pass the trend at "
            f"exactly these event times."
        )
    return d, None


def pretrend_power(es: Any = None, *, beta: ArrayLike | None = None, sigma: ArrayLike | None = None,
                   event_time: ArrayLike | None = None, reference: float | None = None,
                   delta: ArrayLike | None = None, slope: float | None = None, alpha: float = 0.05,
                   critical_value: float | None = None) -> PretrendPower:
    """Power of the pre-test against a hypothesised violation of parallel trends (``pretrends::pretrends``).

    Parameters
    ----------
    es : an event-study result of didx (its coefficients with a finite event time, their current covariance,
        and its reference period), or None with the raw inputs ``beta``, ``sigma``, ``event_time``,
        ``reference`` (the omitted period, normalised to zero and not among ``event_time``).
    delta : the hypothesised trend at every event time (same order as the coefficients), or
    slope : a linear trend ``slope * (event_time - reference)``.
    alpha : level of each two-sided t-test of the pre-test; ``critical_value`` overrides it (the R package
        pretrends uses 1.96).

    The pre-test rejects when any coefficient with ``event_time < reference`` is individually significant.
    """
    z = _critical_value("pretrend_power", alpha, critical_value)
    inputs = _resolve_inputs("pretrend_power", es, beta, sigma, event_time, reference, need_beta=True)
    trend, slope_value = _hypothesis(inputs, delta, slope)
    assert inputs.beta is not None  # need_beta=True
    pre = inputs.pre
    S, S_pre = inputs.sigma, inputs.sigma[np.ix_(pre, pre)]
    pass_delta = _pass_probability(trend[pre], S_pre, z)
    pass_zero = _pass_probability(np.zeros(int(pre.sum())), S_pre, z)
    b_pre = inputs.beta[pre]
    log_lr = (multivariate_normal.logpdf(b_pre, mean=trend[pre], cov=S_pre)
              - multivariate_normal.logpdf(b_pre, mean=np.zeros_like(b_pre), cov=S_pre))
    bound = z * np.sqrt(np.diag(S_pre))
    cond = trend.copy()
    cond[pre] = _truncated_mean(trend[pre], S_pre, -bound, bound)
    post = ~pre
    if post.any():
        shift = np.linalg.solve(S_pre, cond[pre] - trend[pre])
        cond[post] = trend[post] + S[np.ix_(post, pre)] @ shift
    return PretrendPower(
        power=1.0 - pass_delta, size=1.0 - pass_zero, bayes_factor=pass_delta / pass_zero,
        likelihood_ratio=float(np.exp(log_lr)), event_time=_frozen(inputs.event_time),
        estimate=_frozen(inputs.beta), std_error=_frozen(np.sqrt(np.diag(S))), delta=_frozen(trend),
        conditional_mean=_frozen(cond), reference=inputs.reference, alpha=float(alpha), critical_value=z,
        slope=slope_value, source=inputs.source, pre_period_meaning=inputs.pre_period_meaning,
        method=_method_text(int(pre.sum())),
    )


def slope_for_power(es: Any = None, *, sigma: ArrayLike | None = None, event_time: ArrayLike | None = None,
                    reference: float | None = None, target_power: float = 0.5, alpha: float = 0.05,
                    critical_value: float | None = None) -> float:
    """The slope of the linear trend ``slope * (event_time - reference)`` that the pre-test detects with
    probability ``target_power`` (``pretrends::slope_for_power``); a magnitude (power is symmetric in the sign).

    Found by Brent's method (scipy ``brentq``, xtol 1e-12) on the exact power curve, which rises from the
    pre-test's size at slope 0 to 1.
    """
    z = _critical_value("slope_for_power", alpha, critical_value)
    inputs = _resolve_inputs("slope_for_power", es, None, sigma, event_time, reference, need_beta=False)
    pre = inputs.pre
    S_pre = inputs.sigma[np.ix_(pre, pre)]
    distance = inputs.event_time[pre] - inputs.reference
    size = 1.0 - _pass_probability(np.zeros(int(pre.sum())), S_pre, z)
    if not isinstance(target_power, int | float) or not size < float(target_power) < 1.0:
        raise InvalidOptionError(
            f"slope_for_power(): target_power must be in ({size:.6g}, 1), above the pre-test's rejection rate "
            f"under parallel trends; got {target_power!r}. Fix: e.g. target_power=0.5 or 0.8."
        )

    def gap(s: float) -> float:
        return 1.0 - _pass_probability(s * distance, S_pre, z) - float(target_power)

    upper = 8.0 * float(np.sqrt(np.diag(S_pre)).max())  # pretrends' bracket; widened until it holds the root
    while gap(upper) < 0.0:
        upper *= 2.0
    return float(optimize.brentq(gap, 0.0, upper, xtol=1e-12, rtol=4 * np.finfo(float).eps, maxiter=500))


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


__all__ = ["PretrendPower", "pretrend_power", "slope_for_power"]
