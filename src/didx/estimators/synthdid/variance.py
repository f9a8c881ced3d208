"""Placebo, bootstrap and jackknife replications (Arkhangelsky et al. 2021, Algorithms 2-4; synthdid's vcov.R;
Clarke et al. 2023 for staggered adoption).

* placebo: controls are permuted; the last ``N1`` of the permutation get the treated units' adoption periods
  (cohort sizes kept) and the rest are the controls; every cohort is re-estimated with the fit's options, its unit
  weights started from the fit's (renormalised over the kept controls) and its time weights from the fit's. The
  replications of a cohort are solved together (:func:`didx.estimators.synthdid._fw.frank_wolfe` is batched).
* bootstrap: units (or clusters of units with ``cluster=``) drawn with replacement, sorted; draws without a
  control or without a treated unit are redrawn (as synthdid); cohorts absent from a draw drop out of its ATT.
* jackknife (fixed weights, Algorithm 3): each unit left out in turn with the weights held fixed (unit weights
  renormalised), in closed form.

Each returns per-cohort estimates (R, A), curves (R, A, T) and treated counts (R, A); the covariance of the
combined estimates is ``sum (u - mean)(u - mean)' / R`` for placebo and bootstrap (synthdid's
``sqrt((R-1)/R) sd``) and ``(n-1)/n sum (u - mean)(u - mean)'`` for the jackknife.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from didx.estimators.synthdid.core import placebo_weights
from didx.estimators.synthdid.design import WideDesign
from didx.estimators.synthdid.fit import CohortFit, curves, refit, sum_normalize

Draws = tuple[np.ndarray, np.ndarray, np.ndarray]

BLOCK_ELEMENTS = 8_000_000  # placebo replications solved together: their stacked blocks hold at most this many


def _adjusted(design: WideDesign, fit: CohortFit) -> np.ndarray:
    """The outcome matrix net of the cohort's covariate coefficients (beta is held in replications that fix it)."""
    if fit.beta.size == 0:
        return design.Y
    return np.asarray(design.Y - design.X @ fit.beta)


def _start(fit: CohortFit, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starting (or fixed) unit and time weights for replications keeping control ``rows`` (R, n0)."""
    base = fit.fixed_omega if fit.fixed_omega is not None else fit.omega
    om = sum_normalize(base[rows])
    lam = fit.fixed_lambda if fit.fixed_lambda is not None else fit.lam
    return om, np.broadcast_to(lam, (rows.shape[0], lam.shape[0]))


def placebo(design: WideDesign, fits: Sequence[CohortFit], rng: np.random.Generator, n_reps: int) -> Draws:
    N0, T, A = design.N0, design.T, len(fits)
    sizes = np.array([f.n_treated for f in fits])
    N1 = int(sizes.sum())
    perms = np.argsort(rng.random((n_reps, N0)), axis=1)
    n0 = N0 - N1
    est = np.empty((n_reps, A))
    cur = np.empty((n_reps, A, T))
    bounds = np.concatenate([[0], np.cumsum(sizes)]) + n0
    has_x = design.X.shape[2] > 0
    for j, fit in enumerate(fits):
        chunk = max(1, BLOCK_ELEMENTS // ((n0 + int(sizes[j])) * T))
        for lo in range(0, n_reps, chunk):
            p = perms[lo:lo + chunk]
            rows = np.concatenate([p[:, :n0], p[:, bounds[j]:bounds[j + 1]]], axis=1)
            Yb = design.Y[rows]
            om, lam = _start(fit, p[:, :n0])
            if has_x:
                est[lo:lo + chunk, j], cur[lo:lo + chunk, j] = refit(Yb, design.X[rows], n0, fit, om, lam)
                continue
            om, lam = placebo_weights(design.Y, N0, fit.period, p[:, :n0], p[:, bounds[j]:bounds[j + 1]],
                                      fit.opts, om, lam)
            c = curves(Yb, n0, fit.period, om, lam)
            est[lo:lo + chunk, j], cur[lo:lo + chunk, j] = c[:, fit.period:].mean(axis=1), c
    return est, cur, np.broadcast_to(sizes, (n_reps, A)).copy()


def bootstrap(design: WideDesign, fits: Sequence[CohortFit], rng: np.random.Generator, n_reps: int,
              cluster_of_unit: np.ndarray | None) -> Draws:
    N, T, A, N0 = design.N, design.T, len(fits), design.N0
    if cluster_of_unit is None:
        cluster_of_unit = np.arange(N)
    n_clusters = int(cluster_of_unit.max()) + 1
    order = np.argsort(cluster_of_unit, kind="stable")
    starts = np.searchsorted(cluster_of_unit[order], np.arange(n_clusters + 1))
    members = [order[starts[g]:starts[g + 1]] for g in range(n_clusters)]
    est = np.full((n_reps, A), np.nan)
    cur = np.full((n_reps, A, T), np.nan)
    n1 = np.zeros((n_reps, A))
    has_x = design.X.shape[2] > 0
    count = 0
    while count < n_reps:
        draw = rng.integers(0, n_clusters, n_clusters)
        units = np.sort(np.concatenate([members[g] for g in draw]))
        ctrl = units[units < N0]
        if ctrl.size == 0 or ctrl.size == units.size:
            continue
        for j, fit in enumerate(fits):
            tr = units[design.cohort_of[units] == j]
            if tr.size == 0:
                continue
            rows = np.concatenate([ctrl, tr])
            Xb = design.X[rows][None] if has_x else None
            om, lam = _start(fit, ctrl[None])
            e, c = refit(design.Y[rows][None], Xb, ctrl.size, fit, om, lam)
            est[count, j], cur[count, j], n1[count, j] = e[0], c[0], tr.size
        count += 1
    return est, cur, n1


def jackknife(design: WideDesign, fits: Sequence[CohortFit]) -> Draws:
    """Leave-one-unit-out estimates with every weight fixed, for all units at once."""
    N, T, A, N0 = design.N, design.T, len(fits), design.N0
    est = np.empty((N, A))
    cur = np.empty((N, A, T))
    n1 = np.empty((N, A))
    for j, fit in enumerate(fits):
        a = fit.period
        Y = _adjusted(design, fit)
        dv = Y - (Y[:, :a] @ fit.lam)[:, None]  # (N, T): each unit's deviation from its lambda-weighted pre mean
        tr_rows = design.cohort_rows(j)
        tr_sum = dv[tr_rows].sum(axis=0)
        om = fit.omega
        synth = om @ dv[:N0]
        base = tr_sum / tr_rows.size - synth
        cur[:, j, :] = base
        n1[:, j] = tr_rows.size
        # a control left out: its weight removed, the others renormalised
        keep = 1.0 - om
        with np.errstate(invalid="ignore", divide="ignore"):
            synth_wo = (synth[None, :] - om[:, None] * dv[:N0]) / keep[:, None]
        cur[:N0, j, :] = tr_sum / tr_rows.size - synth_wo
        # one of the cohort's treated units left out
        cur[tr_rows, j, :] = (tr_sum[None, :] - dv[tr_rows]) / (tr_rows.size - 1) - synth[None, :]
        n1[tr_rows, j] = tr_rows.size - 1
        est[:, j] = cur[:, j, a:].mean(axis=1)
    return est, cur, n1


def covariance(draws: np.ndarray, kind: str) -> np.ndarray:
    """(K, K) covariance of replicated vectors (R, K); NaN entries (an event time absent from a draw) are left
    out pairwise."""
    R = draws.shape[0]
    ok = np.isfinite(draws)
    filled = np.where(ok, draws, 0.0)
    cnt = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / cnt
    dev = np.where(ok, draws - mean, 0.0)
    pairs = ok.T.astype(np.float64) @ ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "jackknife":
            V = (R - 1) / R * (dev.T @ dev)
        else:
            V = (dev.T @ dev) / pairs
    V[pairs == 0] = np.nan
    return np.asarray(V)


__all__ = ["bootstrap", "covariance", "curves", "jackknife", "placebo"]
