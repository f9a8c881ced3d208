"""Fitting the adoption cohorts and combining them (Clarke, Pailañir, Athey & Imbens 2023, Stata's sdid).

Each cohort ``a`` (units first treated in period ``a``) is one synthdid block: every never-treated unit and the
cohort's units, pre-periods ``< a``, post-periods ``>= a``. Its effect curve over all periods is

    curve_a(t) = [mean of treated - omega' controls](t) - lambda' [mean of treated - omega' controls](pre)

whose post-period mean is the block's estimate ``tau_a`` and whose pre-period values are the placebo deviations
of Clarke et al.'s event study. The ATT averages the ``tau_a`` with weights ``N1_a T1_a`` (treated unit-periods);
the effect at event time ``e`` averages ``curve_a(a + e)`` over the cohorts observed at ``e`` with weights
``N1_a``. Replications (placebo, bootstrap, jackknife) produce the same three arrays and go through
:func:`combine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx.estimators.synthdid.core import BlockOptions, fit_block, fit_block_covariates


@dataclass(frozen=True, eq=False)
class CohortFit:
    """One cohort's block: its options, weights and effect curve."""

    period: int  # adoption period code (= T0)
    n_treated: int
    n_post: int
    opts: BlockOptions
    noise_level: float
    eta_omega: float
    eta_lambda: float
    omega: np.ndarray  # (N0,)
    lam: np.ndarray  # (T0,)
    beta: np.ndarray  # (p,)
    curve: np.ndarray  # (T,)
    estimate: float
    fixed_omega: np.ndarray | None  # the given fixed weights (None: estimated)
    fixed_lambda: np.ndarray | None


def curves(Yb: np.ndarray, n0: int, a: int, omega: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Effect curves (R, T) of a batch of blocks ``Yb`` (R, n, T) with weights (R, n0), (R, a)."""
    diff = Yb[:, n0:, :].mean(axis=1) - np.einsum("rn,rnt->rt", omega, Yb[:, :n0, :])
    return np.asarray(diff - np.einsum("rt,rt->r", diff[:, :a], lam)[:, None])


def refit(Yb: np.ndarray, Xb: np.ndarray | None, n0: int, fit: CohortFit, omega: np.ndarray,
          lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-estimate a cohort on replicated blocks (R, n, T) with the fit's options (synthdid's ``opts``: the same
    zetas and stopping rule), starting from (or fixed at) ``omega`` (R, n0) and ``lam`` (R, a).

    Returns (estimates (R,), curves (R, T)).
    """
    a = fit.period
    if Xb is None or Xb.shape[-1] == 0:
        bf = fit_block(Yb, n0, a, fit.opts, omega=omega, lam=lam)
        cur = curves(Yb, n0, a, bf.omega, bf.lam)
    else:
        cur = np.empty((Yb.shape[0], Yb.shape[2]))
        for r in range(Yb.shape[0]):
            bf = fit_block_covariates(Yb[r], Xb[r], n0, a, fit.opts, omega=omega[r], lam=lam[r])
            cur[r] = curves((Yb[r] - Xb[r] @ bf.beta[0])[None], n0, a, bf.omega, bf.lam)[0]
    return cur[:, a:].mean(axis=1), cur


def sum_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to sum one; a row of zeros becomes uniform (synthdid's ``sum_normalize``)."""
    s = x.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s != 0, x / np.where(s != 0, s, 1.0), 1.0 / x.shape[-1])


@dataclass(frozen=True)
class Combined:
    att: np.ndarray  # (R,)
    cohort: np.ndarray  # (R, A)
    event: np.ndarray  # (R, E)
    event_times: np.ndarray  # (E,)


def combine(est: np.ndarray, cur: np.ndarray, n1: np.ndarray, periods: np.ndarray, T: int) -> Combined:
    """ATT, cohort and event-time effects from per-cohort estimates (R, A), curves (R, A, T) and treated counts
    (R, A) (0: the cohort is absent from that replication)."""
    n1 = np.asarray(n1, dtype=np.float64)
    w = n1 * (T - periods)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        att = np.nansum(np.where(w > 0, w * est, 0.0), axis=1) / w.sum(axis=1)
    lo, hi = -int(periods.max()), T - 1 - int(periods.min())
    E = hi - lo + 1
    num = np.zeros((est.shape[0], E))
    den = np.zeros((est.shape[0], E))
    for j, a in enumerate(periods):
        idx = np.arange(T) - int(a) - lo
        present = n1[:, j] > 0
        num[:, idx] += np.where(present[:, None], n1[:, j, None] * cur[:, j, :], 0.0)
        den[:, idx] += np.where(present, n1[:, j], 0.0)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        event = num / den
    cohort = np.where(n1 > 0, est, np.nan)
    return Combined(att=att, cohort=cohort, event=event, event_times=np.arange(lo, hi + 1, dtype=np.float64))
