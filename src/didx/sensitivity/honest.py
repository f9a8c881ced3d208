"""Robust confidence intervals under bounded violations of parallel trends (Rambachan & Roth 2023).

Built: the relative-magnitudes restriction ``Delta^RM(Mbar)`` with the C-LF test (see ``didx.sensitivity._arp``),
and the smoothness restriction ``Delta^SD(M)`` (the second differences of the trend violation ``delta``
are at most ``M`` in absolute value; ``delta`` is zero at the reference period) with the fixed-length confidence
interval (FLCI), the default of R ``HonestDiD`` for ``restriction="smoothness"``. The algorithm follows
``HonestDiD::findOptimalFLCI`` (Armstrong & Kolesar 2018, 2020) step by step:

* affine estimators ``l_pre' b_pre + l' b_post`` are parametrised by ``w`` (``l_pre = D w``, ``D`` the first
  difference, ``w`` the cumulative pre weights) under ``sum(w) = (1, ..., T) . l`` so linear trends are unbiased;
* the worst-case bias over ``Delta^SD(M)`` is ``M (c + sum_k |w_1 + ... + w_k|)``;
* ``h0`` is the standard deviation of the minimum-bias estimator, ``hMin`` that of the minimum-variance one;
* the half-length at standard deviation ``h`` is ``h * q_{1-alpha}(|N(bias/h, 1)|)``, minimised over
  ``h in [hMin, h0]`` by HonestDiD's bisection on numerical derivatives (grid of 100 points if it fails);
* the folded-normal quantile is HonestDiD's ``.qfoldednormal``: the quantile (R type 7) of ``|Z + mu|`` over the
  ``10^6`` normal draws of R's ``set.seed(0); rnorm(1e6)`` (Mersenne-Twister, inversion), regenerated here
  bit for bit, so the intervals match the R package rather than differ by its simulation error (~1e-3).

The worst-case-bias problem at a given ``h`` (a linear objective with one convex quadratic constraint) is solved
with scipy's SLSQP; the minimum-variance estimator is an equality-constrained quadratic program solved exactly.

Reference: Rambachan, A. & Roth, J. (2023). A More Credible Approach to Parallel Trends. *Review of Economic
Studies* 90(5), 2555-2591.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy.stats import norm

from didx._errors import DesignError, InvalidOptionError
from didx.results.plot import check_ax
from didx.sensitivity._arp import rm_interval
from didx.sensitivity.pretrends import _resolve_inputs

FUNC = "honest_did"
N_SIMS = 10**6
NUM_POINTS = 100
RESTRICTIONS = ("smoothness", "relative_magnitude", "combined")

ArrayLike = Sequence[float] | np.ndarray


# --------------------------------------------------------------------------------------------------------------
# HonestDiD's simulated folded-normal quantile: R's set.seed(0); rnorm(1e6), regenerated exactly
# --------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _r_normal_draws(seed: int, n: int) -> np.ndarray:
    """``set.seed(seed); rnorm(n)`` of R (Mersenne-Twister, inversion): R scrambles the seed with the LCG
    ``s -> 69069 s + 1`` (50 times, then once per state word), then draws ``qnorm((floor(2^27 u1) + u2) / 2^27)``."""
    s = seed & 0xFFFFFFFF
    for _ in range(50):
        s = (69069 * s + 1) & 0xFFFFFFFF
    key = np.empty(625, dtype=np.uint32)
    for j in range(625):
        s = (69069 * s + 1) & 0xFFFFFFFF
        key[j] = s
    gen = np.random.MT19937()
    gen.state = {"bit_generator": "MT19937", "state": {"key": key[1:], "pos": 624}}  # key[0] is R's mti slot
    u = gen.random_raw(2 * n).astype(np.float64) * 2.3283064365386963e-10
    tiny = 0.5 * 2.328306437080797e-10
    u = np.where(u <= 0.0, tiny, np.where(1.0 - u <= 0.0, 1.0 - tiny, u))
    big = 134217728.0
    v = (np.floor(big * u[0::2]) + u[1::2]) / big
    draws = special.ndtri(v)
    draws.setflags(write=False)
    return draws


def _quantile_type7(x: np.ndarray, p: float) -> float:
    index = 1.0 + (x.size - 1) * p
    lo, hi = int(np.floor(index)), int(np.ceil(index))
    part = np.partition(x, [lo - 1, hi - 1])
    q_lo, q_hi = float(part[lo - 1]), float(part[hi - 1])
    h = index - lo
    return q_lo if (h == 0.0 or q_hi == q_lo) else (1.0 - h) * q_lo + h * q_hi


def _folded_normal_quantile(p: float, mu: float) -> float:
    """HonestDiD ``.qfoldednormal(p, mu)``: quantile of ``|Z + mu|`` over R's ``set.seed(0); rnorm(1e6)``."""
    return _quantile_type7(np.abs(_r_normal_draws(0, N_SIMS) + mu), p)


# --------------------------------------------------------------------------------------------------------------
# The FLCI under Delta^SD(M)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Affine estimators ``l_pre' b_pre + l' b_post`` with ``l_pre = D w``; variance ``w'Qw + g'w + s``."""

    Q: np.ndarray
    g: np.ndarray
    s: float
    total: float  # sum(w) = (1..T) . l
    constant: float  # bias constant of HonestDiD's objective

    @classmethod
    def build(cls, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray) -> _Problem:
        T = l_vec.size
        D = np.eye(n_pre) - np.eye(n_pre, k=-1)
        s_pre, s_pp, s_post = sigma[:n_pre, :n_pre], sigma[:n_pre, n_pre:], sigma[n_pre:, n_pre:]
        Q = D.T @ s_pre @ D
        g = 2.0 * D.T @ s_pp @ l_vec
        steps = np.arange(1, T + 1, dtype=float)
        constant = sum(abs(float(steps[:s] @ l_vec[T - s:])) for s in range(1, T + 1)) - float(steps @ l_vec)
        return cls((Q + Q.T) / 2.0, g, float(l_vec @ s_post @ l_vec), float(steps @ l_vec), constant)

    def variance(self, w: np.ndarray) -> float:
        return float(w @ self.Q @ w + self.g @ w + self.s)

    def bias(self, w: np.ndarray) -> float:
        return self.constant + float(np.abs(np.cumsum(w)).sum())

    def min_variance_w(self) -> np.ndarray:
        """argmin ``w'Qw + g'w`` s.t. ``sum(w) = total`` (KKT system, exact)."""
        k = self.g.size
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = 2.0 * self.Q
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.concatenate([-self.g, [self.total]])
        return np.asarray(np.linalg.solve(kkt, rhs)[:k])

    def min_bias_w(self) -> np.ndarray:
        w = np.zeros(self.g.size)
        w[-1] = self.total
        return w

    def _interior_start(self, w_var: np.ndarray, h: float, frac: float = 0.5) -> np.ndarray:
        """A strictly feasible start on the segment from the minimum-variance to the minimum-bias estimator."""
        d = self.min_bias_w() - w_var
        # variance along w_var + t d: a t^2 + c t + v0 (c = 0 at the minimum); target halfway to h^2
        a, v0 = float(d @ self.Q @ d), self.variance(w_var)
        goal = v0 + frac * (h * h - v0)
        t = 1.0 if a <= 0.0 else min(1.0, float(np.sqrt(max(goal - v0, 0.0) / a)))
        return np.asarray(w_var + t * d)

    def min_bias_given_h(self, h: float, M: float) -> tuple[float, np.ndarray]:
        """Worst-case bias (per unit of M) minimised over ``w`` with ``sd <= h``; HonestDiD's ECOS problem, by
        SLSQP over ``(U, w)`` with ``|w_1 + ... + w_k| <= U_k``."""
        w_var = self.min_variance_w()
        if h * h <= self.variance(w_var) * (1.0 + 1e-12):  # the feasible set is the minimum-variance estimator
            return self.bias(w_var), w_var
        k = self.g.size
        L = np.tril(np.ones((k, k)))
        # SLSQP occasionally stalls at an infeasible point from one start; other interior starts on the same
        # segment are tried before giving up (the first start is the one every reference value was solved from)
        for frac in (0.5, 0.25, 0.75, 0.9):
            w_start = self._interior_start(w_var, h, frac)
            x0 = np.concatenate([np.abs(L @ w_start) + 1e-3 * max(1.0, abs(self.total)), w_start])
            res, feasible = self._solve_slsqp(x0, h, L)
            # SLSQP's mode 8 ("positive directional derivative") at a feasible point: no descent left at precision
            if res.success or (res.status == 8 and feasible):
                w = np.asarray(res.x[k:])
                return self.bias(w), w
        raise DesignError(
            f"{FUNC}(): the worst-case-bias program failed at M={M:g} (sd bound h={h:.6g}): {res.message}. "
            f"Fix: check that sigma is well scaled (e.g. rescale the outcome), or drop this value of M."
        )

    def _solve_slsqp(self, x0: np.ndarray, h: float, L: np.ndarray) -> tuple[Any, bool]:
        k = self.g.size
        cons = [
            {"type": "ineq", "fun": lambda x: np.concatenate([x[:k] - L @ x[k:], x[:k] + L @ x[k:]]),
             "jac": lambda x: np.block([[np.eye(k), -L], [np.eye(k), L]])},
            {"type": "eq", "fun": lambda x: np.array([x[k:].sum() - self.total]),
             "jac": lambda x: np.concatenate([np.zeros(k), np.ones(k)])[None, :]},
            {"type": "ineq", "fun": lambda x: np.array([(h * h - self.variance(x[k:])) / (h * h)]),
             "jac": lambda x: np.concatenate([np.zeros(k), -(2.0 * self.Q @ x[k:] + self.g) / (h * h)])[None, :]},
        ]
        res = optimize.minimize(  # type: ignore[call-overload]
                                lambda x: x[:k].sum(), x0, jac=lambda x: np.concatenate([np.ones(k), np.zeros(k)]),
                                constraints=cons, method="SLSQP", options={"ftol": 1e-13, "maxiter": 1000})
        w = np.asarray(res.x[k:])
        feasible = (self.variance(w) <= h * h * (1.0 + 1e-9) and abs(w.sum() - self.total) <= 1e-9
                    and np.all(res.x[:k] >= np.abs(L @ w) - 1e-12))
        return res, bool(feasible)


def _half_length(prob: _Problem, h: float, M: float, p: float) -> float:
    bias, _ = prob.min_bias_given_h(h, M)
    return _folded_normal_quantile(p, M * bias / h) * h


def _optimal_h_bisection(prob: _Problem, a: float, b: float, M: float, p: float) -> float | None:
    """HonestDiD ``.findOptimalCIDerivativeBisection``: the half-length is convex in h; bisect on its numerical
    derivative. None where HonestDiD's checks flag a failure (then it searches a grid)."""
    f = lambda h: _half_length(prob, h, M, p)  # noqa: E731
    failtol = np.finfo(float).eps ** 0.5
    dif = min((b - a) / NUM_POINTS, abs(b) * np.finfo(float).eps ** (1.0 / 3.0))
    if dif <= 0.0:
        return a
    fa, fb = f(a), f(b)
    fpa = (f(a + dif) - fa) / dif
    fpb = (f(b - dif) - fb) / -dif
    maxiter = 10 * int(np.ceil(np.log(abs(b - a) / dif) / np.log(2.0)))
    if fpa > fpb or np.isnan(fa) or np.isnan(fb):
        return None
    if fpb < 0:
        return b
    if fpa > 0:
        return a
    it, failed = 1, False
    while not failed and abs(b - a) > dif:
        it += 1
        x = (a + b) / 2.0
        fpx = (f(x + dif) - f(x - dif)) / (2.0 * dif)
        failed = bool(fpx > fpb + failtol or fpx + failtol < fpa or it > maxiter)
        if fpx > 0:
            b = x
        else:
            a = x
    return None if failed else (a + b) / 2.0


def _flci(beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, M: float,
          alpha: float) -> tuple[float, float]:
    prob = _Problem.build(sigma, n_pre, l_vec)
    p = 1.0 - alpha
    h0 = np.sqrt(prob.variance(prob.min_bias_w()))
    h_min = np.sqrt(prob.variance(prob.min_variance_w()))
    hstar = _optimal_h_bisection(prob, h_min, h0, M, p)
    if hstar is None:  # HonestDiD's fallback: the grid of 100 points
        grid = np.linspace(h_min, h0, NUM_POINTS)
        hstar = float(grid[int(np.argmin([_half_length(prob, h, M, p) for h in grid]))])
    bias, w = prob.min_bias_given_h(hstar, M)
    half = _folded_normal_quantile(p, M * bias / hstar) * hstar
    l_pre = w - np.concatenate([[0.0], w[:-1]])
    center = float(l_pre @ beta[:n_pre] + l_vec @ beta[n_pre:])
    return center - half, center + half


# --------------------------------------------------------------------------------------------------------------
# Options and the result
# --------------------------------------------------------------------------------------------------------------


def _target_weights(target: Any, post_times: np.ndarray) -> tuple[np.ndarray, str]:
    T = post_times.size
    if isinstance(target, str):
        if target == "first":
            return np.eye(T)[0], f"first post period (event time {post_times[0]:g})"
        if target == "average":
            return np.full(T, 1.0 / T), f"average of the {T} post periods"
        raise InvalidOptionError(
            f"{FUNC}(): target={target!r} is not known. Fix: 'first', 'average', a post-period event time "
            f"({post_times.tolist()}), or a weight vector of length {T}."
        )
    if isinstance(target, int | float | np.integer | np.floating) and not isinstance(target, bool):
        hit = np.flatnonzero(post_times == float(target))
        if hit.size != 1:
            raise InvalidOptionError(
                f"{FUNC}(): target={target!r} is not a post-period event time; post periods are "
                f"{post_times.tolist()}. Fix: pass one of them, 'first', 'average' or weights over them."
            )
        return np.eye(T)[hit[0]], f"event time {float(target):g}"
    w = np.asarray(target, dtype=float).ravel()
    if w.size != T or not np.all(np.isfinite(w)) or not np.any(w != 0.0):
        raise InvalidOptionError(
            f"{FUNC}(): target weights must be {T} finite numbers, not all zero, one per post period "
            f"{post_times.tolist()}; got {np.asarray(target).tolist()}. Fix: pass a weight vector of length {T}."
        )
    return w, f"weights {w.tolist()} over event times {post_times.tolist()}"


def _check_M(M: Any, restriction: str = "smoothness") -> np.ndarray:
    m = np.atleast_1d(np.asarray(M, dtype=float)).ravel()
    if m.size == 0 or not np.all(np.isfinite(m)) or np.any(m < 0.0):
        what, eg = (("a bound on the second differences of the trend", "M=[0, 0.01, 0.02]")
                    if restriction == "smoothness" else
                    ("Mbar, post-period trend changes relative to the largest pre-period one", "M=[0.5, 1, 2]"))
        raise InvalidOptionError(
            f"{FUNC}(): M must be finite and non-negative ({what}); got {np.asarray(M).tolist()}. Fix: e.g. {eg}."
        )
    return m


@dataclass(frozen=True)
class OriginalInterval:
    """The usual (parallel-trends) normal confidence interval of the target."""

    estimate: float
    std_error: float
    conf_low: float
    conf_high: float


BREAKDOWN_DOUBLINGS = 10  # the breakdown search range: up to 2^10 x its starting M (see HonestDiDResult)


@dataclass(frozen=True, eq=False)
class _Fit:
    """What one more interval needs: the ordered coefficients, covariance and target (kept for ``breakdown``)."""

    beta: np.ndarray
    sigma: np.ndarray
    n_pre: int
    l_vec: np.ndarray

    def interval(self, restriction: str, M: float, alpha: float) -> tuple[float, float]:
        if restriction == "smoothness":
            return _flci(self.beta, self.sigma, self.n_pre, self.l_vec, M, alpha)
        return rm_interval(self.beta, self.sigma, self.n_pre, self.l_vec, M, alpha, _r_normal_draws(0, N_SIMS))


def _distance_to_zero(lo: float, hi: float) -> float:
    """Signed distance of ``[lo, hi]`` to 0: positive when the interval excludes 0, <= 0 when it includes it."""
    return max(lo, -hi)


@dataclass(frozen=True, eq=False)
class HonestDiDResult:
    """Robust confidence intervals for the target, one per M. ``tidy()``, ``original``, ``summary()``, ``plot()``,
    and ``breakdown``: the smallest M at which the robust interval includes 0 (computed on first access)."""

    M: tuple[float, ...]
    conf_low: tuple[float, ...]
    conf_high: tuple[float, ...]
    original: OriginalInterval
    restriction: str
    method: str
    target: str
    target_weights: tuple[float, ...]
    alpha: float
    reference: float
    pre_event_times: tuple[float, ...]
    post_event_times: tuple[float, ...]
    source: str
    pre_period_meaning: str
    _fit: _Fit | None = field(default=None, repr=False, compare=False)

    def tidy(self) -> pd.DataFrame:
        n = len(self.M)
        return pd.DataFrame({"M": list(self.M), "conf_low": list(self.conf_low), "conf_high": list(self.conf_high),
                             "method": [self.method] * n, "restriction": [self.restriction] * n})

    def summary(self) -> str:
        o = self.original
        lines = [
            "HonestDiD sensitivity analysis (Rambachan & Roth 2023)",
            f"  source: {self.source}",
            f"  restriction: {self.restriction} ({_RESTRICTION_TEXT[self.restriction]})",
            f"  method: {self.method}   alpha: {self.alpha:g}",
            f"  target: {self.target}",
            f"  reference period: {self.reference:g}; pre-periods {list(self.pre_event_times)}, post-periods "
            f"{list(self.post_event_times)}",
            f"  original CI: {o.estimate:.6g} [{o.conf_low:.6g}, {o.conf_high:.6g}] (se {o.std_error:.6g})",
        ]
        if self.pre_period_meaning:
            lines.append(f"  pre-period coefficients: {self.pre_period_meaning}")
        # smoothness: the breakdown costs about 20 FLCI fits (under a second), so the summary computes it;
        # relative magnitudes: each fit takes seconds, so it is reported only once `.breakdown` has been read
        if self.restriction == "smoothness" or "_breakdown" in self.__dict__:
            lines.append(f"  breakdown: {self.breakdown_note}")
        elif self._fit is not None:
            lines.append("  breakdown: not computed (read `.breakdown`; each step refits a C-LF interval)")
        lines.append(self.tidy().to_string(index=False))
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------------------------------
    # breakdown value
    # ----------------------------------------------------------------------------------------------------------

    @cached_property
    def _breakdown(self) -> tuple[float | None, str]:
        return self.find_breakdown()

    @property
    def breakdown(self) -> float | None:
        """The smallest M at which the robust interval includes 0 (the breakdown value of Rambachan & Roth),
        found by root bracketing and Brent's method on the interval's signed distance to 0, not read off the grid.

        Computed on first access and cached; ``breakdown_note`` says how it was found or why it is None: None when
        the interval includes 0 already at M = 0, or does not include it anywhere in the search range (up to
        ``2^10`` times the starting M: the smallest grid M whose interval includes 0 brackets the root directly;
        otherwise the search doubles M from the largest grid M, or from the original standard error (smoothness)
        or Mbar = 1 (relative magnitudes) when the grid is only 0). ``find_breakdown(m_max=...)`` searches a
        range of your choice.

        Cost: each step refits the interval for one M. For ``restriction="smoothness"`` (FLCI) that is about 50 ms,
        so the whole search takes under a second. For ``restriction="relative_magnitude"`` (C-LF) each fit takes
        1-12 s, so the search (about 10-20 fits) can take minutes; the C-LF bounds also move in steps of its
        1000-point grid, so the interval at the breakdown touches 0 only to within that grid's spacing.
        """
        return self._breakdown[0]

    @property
    def breakdown_note(self) -> str:
        """How ``breakdown`` was found, or why it is None (computes it if needed)."""
        return self._breakdown[1]

    def find_breakdown(self, *, m_max: float | None = None, xtol: float = 1e-10,
                       rtol: float = 1e-8) -> tuple[float | None, str]:
        """The breakdown value and a sentence on it: ``(M, note)``, ``M`` None when there is none in
        ``[0, m_max]`` (default range: see ``breakdown``). ``xtol``/``rtol``: Brent's tolerances on M."""
        if self._fit is None:
            raise InvalidOptionError(
                f"{FUNC}(): this result keeps no inputs to refit the interval. Fix: rerun didx.honest_did(...)."
            )
        if m_max is not None and (not np.isfinite(m_max) or m_max <= 0.0):
            raise InvalidOptionError(f"{FUNC}(): m_max must be a positive number; got {m_max!r}. Fix: e.g. "
                                     f"m_max=1.0.")
        fit, name = self._fit, ("M" if self.restriction == "smoothness" else "Mbar")
        known = dict(zip(self.M, zip(self.conf_low, self.conf_high, strict=True), strict=True))

        def dist(m: float) -> float:
            if m not in known:
                known[m] = fit.interval(self.restriction, m, self.alpha)
            return _distance_to_zero(*known[m])

        if dist(0.0) <= 0.0:
            return None, f"none: the robust interval includes 0 already at {name} = 0"
        grid = sorted(m for m in self.M if m > 0.0 and (m_max is None or m <= m_max))
        upper = next((m for m in grid if dist(m) <= 0.0), None)
        if upper is None:  # no grid value includes 0: double M from the largest grid value
            start = grid[-1] if grid else (self.original.std_error if self.restriction == "smoothness" else 1.0)
            limit = m_max if m_max is not None else start * 2.0**BREAKDOWN_DOUBLINGS
            m = min(start, limit)
            while dist(m) > 0.0 and m < limit:
                m = min(2.0 * m, limit)
            if dist(m) > 0.0:
                return None, (f"none in the search range: the robust interval excludes 0 for every {name} "
                              f"up to {limit:.6g}; find_breakdown(m_max=...) searches further")
            upper = m
        lower = max(m for m in known if m < upper and dist(m) > 0.0)
        if dist(upper) == 0.0:
            root = upper
        else:
            root = float(optimize.brentq(dist, lower, upper, xtol=xtol, rtol=rtol))
        return root, (f"{name} = {root:.6g}: the smallest {name} at which the robust interval includes 0 "
                      f"(Brent's method between {lower:.6g} and {upper:.6g})")

    # ----------------------------------------------------------------------------------------------------------
    # plot
    # ----------------------------------------------------------------------------------------------------------

    def plot(self, ax: Any = None, *, color: Any = "C0", original_color: Any = "C3", show_zero: bool = True) -> Any:
        """HonestDiD's sensitivity plot: the robust interval for each M (error bars at x = M, their line collection
        has gid ``"robust"``)
        beside the original confidence interval of the target (to the left of the smallest M, gid
        ``"original"``), a dashed line at 0 (gid ``"zero_line"``). Returns the matplotlib Axes."""
        check_ax(f"{type(self).__name__}.plot()", ax)
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        m = np.asarray(self.M, dtype=float)
        lo, hi = np.asarray(self.conf_low), np.asarray(self.conf_high)
        step = float(np.min(np.diff(np.unique(m)))) if np.unique(m).size > 1 else max(abs(float(m[0])), 1.0) * 0.5
        x_orig = float(m.min()) - step
        mid = (lo + hi) / 2.0
        robust = ax.errorbar(m, mid, yerr=[mid - lo, hi - mid], fmt="none", ecolor=color, capsize=3, linewidth=1.6,
                             label=f"{self.method} ({self.restriction})")
        for bar in robust.lines[2]:
            bar.set_gid("robust")
        o = self.original
        omid = (o.conf_low + o.conf_high) / 2.0
        orig = ax.errorbar([x_orig], [omid], yerr=[[omid - o.conf_low], [o.conf_high - omid]], fmt="none",
                           ecolor=original_color, capsize=3, linewidth=1.6, label="original")
        for bar in orig.lines[2]:
            bar.set_gid("original")
        if show_zero:
            ax.axhline(0.0, color="0.5", linestyle="--", linewidth=0.8, gid="zero_line")
        name = "M" if self.restriction == "smoothness" else r"$\bar{M}$"
        ax.set_xlabel(name)
        ax.set_ylabel(f"{100 * (1 - self.alpha):g}% confidence interval")
        ax.set_title(f"Sensitivity: {self.target}")
        ax.legend(loc="best", frameon=False)
        return ax


_RESTRICTION_TEXT = {
    "smoothness": "Delta^SD(M): |second differences of the trend| <= M, zero at the reference",
    "relative_magnitude": "Delta^RM(Mbar): |post-period first differences of the trend| <= Mbar x the largest "
                          "|pre-period first difference|, zero at the reference",
}


def _check_options(restriction: str, alpha: float) -> None:
    if restriction not in RESTRICTIONS:
        raise InvalidOptionError(
            f"{FUNC}(): restriction={restriction!r} is not known. Fix: restriction='smoothness' or "
            f"'relative_magnitude'."
        )
    if restriction == "combined":
        raise InvalidOptionError(
            f"{FUNC}(): restriction={restriction!r} is not built yet in didx; restriction='smoothness' (FLCI) and "
            f"'relative_magnitude' (C-LF) are. Fix: use one of those."
        )
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise InvalidOptionError(f"{FUNC}(): alpha must be in (0, 1); got {alpha!r}. Fix: e.g. alpha=0.05.")


def _split_periods(event_time: np.ndarray, reference: float) -> tuple[np.ndarray, np.ndarray]:
    """HonestDiD's layout: pre = event times < 0 (the reference excluded), post = event times >= 0, sorted."""
    allt = np.sort(np.append(event_time, reference))
    if np.any(np.abs(np.diff(allt) - 1.0) > 1e-9):
        raise InvalidOptionError(
            f"{FUNC}(): event times (with the reference {reference:g}) must be consecutive, the smoothness bound "
            f"is on second differences of adjacent periods; got {allt.tolist()}. Fix: estimate every event time "
            f"in the window (no gaps), or drop the coefficients beyond the gap."
        )
    order = np.argsort(event_time)
    pre, post = order[event_time[order] < 0], order[event_time[order] >= 0]
    if post.size == 0:
        raise DesignError(
            f"{FUNC}(): there are no post-period coefficients (event time >= 0). Fix: estimate lags (event "
            f"times >= 0)."
        )
    if pre.size == 0:
        raise DesignError(
            f"{FUNC}(): there are no pre-period coefficients (event time < 0 besides the reference). Fix: "
            f"estimate leads (widen the event window)."
        )
    return pre, post


def honest_did(es: Any = None, *, beta: ArrayLike | None = None, sigma: ArrayLike | None = None,
               event_time: ArrayLike | None = None, reference: float | None = None,
               restriction: str = "smoothness", M: float | ArrayLike = 0.0, target: Any = "first",
               alpha: float = 0.05) -> HonestDiDResult:
    """Robust confidence intervals for a post-period target when parallel trends may fail smoothly.

    ``es``: an event-study result of didx, or raw ``beta=, sigma=, event_time=, reference=`` (HonestDiD's
    ``betahat``, ``sigma``; pre-periods are the event times below 0 other than the reference, post-periods those
    at or above 0). ``restriction="smoothness"``: ``Delta^SD(M)``, intervals by the FLCI (HonestDiD's default);
    ``restriction="relative_magnitude"``: ``Delta^RM(Mbar)`` (``M`` holds the ``Mbar`` values), intervals by
    the conditional least-favorable hybrid test (C-LF, HonestDiD's default; at least two post periods).
    ``M``: one bound or several. ``target``: ``"first"``, ``"average"``, a
    post-period event time, or weights over the post periods.
    """
    _check_options(restriction, alpha)
    m_values = _check_M(M, restriction)
    inp = _resolve_inputs(FUNC, es, beta, sigma, event_time, reference, need_beta=True)
    assert inp.beta is not None
    pre, post = _split_periods(inp.event_time, inp.reference)
    idx = np.concatenate([pre, post])
    b, S = inp.beta[idx], inp.sigma[np.ix_(idx, idx)]
    post_times = inp.event_time[post]
    l_vec, target_text = _target_weights(target, post_times)
    est = float(l_vec @ b[pre.size:])
    se = float(np.sqrt(l_vec @ S[pre.size:, pre.size:] @ l_vec))
    z = float(norm.ppf(1.0 - alpha / 2.0))
    if restriction == "smoothness":
        method = "FLCI"
        bounds = [_flci(b, S, pre.size, l_vec, float(m), float(alpha)) for m in m_values]
    else:
        method = "C-LF"
        if post.size < 2:
            raise DesignError(
                f"{FUNC}(): restriction='relative_magnitude' with a single post period (HonestDiD's no-nuisance "
                f"ARP test) is not built yet in didx. Fix: estimate at least two post periods (event times >= 0)."
            )
        draws = _r_normal_draws(0, N_SIMS)
        bounds = [rm_interval(b, S, pre.size, l_vec, float(m), float(alpha), draws) for m in m_values]
    return HonestDiDResult(
        M=tuple(float(m) for m in m_values), conf_low=tuple(lo for lo, _ in bounds),
        conf_high=tuple(hi for _, hi in bounds), original=OriginalInterval(est, se, est - z * se, est + z * se),
        restriction=restriction, method=method, target=target_text, target_weights=tuple(l_vec.tolist()),
        alpha=float(alpha), reference=inp.reference, pre_event_times=tuple(inp.event_time[pre].tolist()),
        post_event_times=tuple(post_times.tolist()), source=inp.source, pre_period_meaning=inp.pre_period_meaning,
        _fit=_Fit(b, S, int(pre.size), l_vec),
    )
