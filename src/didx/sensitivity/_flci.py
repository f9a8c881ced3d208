"""The fixed-length confidence interval (FLCI) under ``Delta^SD(M)``, as R ``HonestDiD::findOptimalFLCI``
(Armstrong & Kolesar 2018, 2020), step by step:

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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize, special

from didx._errors import DesignError

FUNC = "honest_did"
N_SIMS = 10**6
NUM_POINTS = 100


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


def flci_estimator(sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, M: float,
                   alpha: float) -> tuple[np.ndarray, float]:
    """HonestDiD ``.findOptimalFLCI_helper``: the optimal affine estimator's weights over all coefficients
    (``optimalVec``: pre then post) and its half-length."""
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
    return np.concatenate([l_pre, l_vec]), float(half)


def flci(beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, M: float,
         alpha: float) -> tuple[float, float]:
    """HonestDiD ``findOptimalFLCI``: ``optimalVec' beta -/+ optimalHalfLength``."""
    vec, half = flci_estimator(sigma, n_pre, l_vec, M, alpha)
    center = float(vec @ beta)
    return center - half, center + half
