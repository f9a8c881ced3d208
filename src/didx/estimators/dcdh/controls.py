"""Time-varying covariates for the DID_l estimators (``covariates=``; DIDmultiplegtDYN's ``controls=`` option,
whose name, the paper's, this module keeps for the covariates).

For each baseline treatment ``d`` the outcome's first difference is regressed on the controls' first differences
with period fixed effects, among the not-yet-switched cells of the groups with baseline ``d`` (weights ``N_gt``):

``theta_d = Den_d^+ sum_{(g,t) in C_d} N_gt dX''_gt dY_gt``,  ``Den_d = sum_{C_d} N_gt dX''_gt dX''_gt'``

(``dX''`` the first differences demeaned within (baseline, period) among ``C_d``; ``Den_d^+`` the Moore-Penrose
inverse, as ``MASS::ginv``). Every long difference of the outcome of a group with baseline ``d`` is then
residualised: ``Y_{g,t} - Y_{g,t-l} - (X_{g,t} - X_{g,t-l})' theta_d`` (and the same for the placebos'
differences), and ``DID_l`` is computed as without controls.

The variance influence variable gets the package's correction for the estimation of ``theta_d``:

``U^{var,X}_g = U^var_g - sum_d M_d' ( 1{D_g1 = d, F_g >= 3} Den_d^{-1} rsum G in_sum_g - theta_d )``

with ``M_d = (1/G) sum_{g: D_g1 = d} sum_t 1{l <= T_g - 2} (G / N_l) (S_gt - N_tg / N^c_tg C_gt)
1{l + 1 <= t <= T_g} N_gt (X_{g,t} - X_{g,t-l})``, ``in_sum_g = sum_{t in C} sqrt(E_td / (E_td - 1))
N_gt dX''_gt (dY_gt - Ehat_gt) / N^c_d`` (``Ehat`` the fitted value of the same regression, set to 0 when fewer
than two groups of baseline ``d`` are not yet switched at t, ``E_td`` that number), ``N^c_d`` the weight of the
cells ``2 <= t <= T_d``, ``t < F_g`` of baseline ``d``, and ``rsum`` that of the cells ``2 <= t <= max F_g - 1``,
``t < F_g`` of every baseline. This transcribes the data.table-era R source of DIDmultiplegtDYN (the generation of
2.2.0, which imports ``MASS::ginv`` and ``fixest::feols`` for this step); there is no R reference run with
controls, so these numbers are not checked against R.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx._errors import DesignError
from didx.estimators.dcdh.prep import DcdhData

_GINV_TOL = float(np.sqrt(np.finfo(float).eps))  # MASS::ginv's default tolerance
_SINGULAR_DET = 1e-16  # the package flags Den_d as singular when |det| <= 1e-16


def shift3(a: np.ndarray, k: int) -> np.ndarray:
    """``a[:, c - k, :]`` (NaN for c < k) on the (G, T, K) grid."""
    out = np.full_like(a, np.nan)
    if k < a.shape[1]:
        out[:, k:] = a[:, : a.shape[1] - k]
    return out


@dataclass(frozen=True, eq=False)
class ControlsFit:
    theta: np.ndarray  # (n_d, K): theta_d (0 for baselines without groups)
    bracket: np.ndarray  # (G, K): 1{F_g >= 3} (Den_d^{-1} rsum G in_sum_g) for the group's own baseline
    present: np.ndarray  # (n_d,) bool: baselines with groups in the sample
    messages: tuple[str, ...]


def fit_controls(d: DcdhData, G: float, covariates: list[str], func: str) -> ControlsFit:
    """theta_d, and the group-level terms of the variance correction (see the module docstring)."""
    assert d.X is not None
    X, Y, N = d.X, d.Y, d.N
    n_g, n_t, K = X.shape
    n_d = d.n_d
    tv = d.tv[None, :].astype(np.float64)
    F = d.F[:, None]
    dY = Y.copy()
    dY[:, 1:] = Y[:, 1:] - Y[:, :-1]
    dY[:, 0] = np.nan
    dX = X - shift3(X, 1)
    ok_y = ~np.isnan(dY)
    C = (tv < F) & ok_y & ~np.isnan(dX).any(axis=2)
    key = (d.d_code[:, None] * n_t + np.arange(n_t)[None, :]).ravel()
    w = np.where(C, N, 0.0)
    sw = np.bincount(key, weights=w.ravel(), minlength=n_d * n_t)
    Xdd = np.zeros_like(dX)
    dX0 = np.where(C[:, :, None], dX, 0.0)
    for k in range(K):
        tot = np.bincount(key, weights=(w * dX0[:, :, k]).ravel(), minlength=n_d * n_t)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = (tot / sw)[key].reshape(n_g, n_t)
        Xdd[:, :, k] = np.where(C, dX0[:, :, k] - avg, 0.0)
    prodX = N[:, :, None] * Xdd  # sqrt(N) times the package's sqrt(N)-weighted residual
    dY0 = np.where(C, dY, 0.0)
    den_g = np.einsum("gtk,gtj->gkj", prodX, Xdd)
    xy_g = np.einsum("gtk,gt->gk", prodX, dY0)
    den = np.zeros((n_d, K, K))
    xy = np.zeros((n_d, K))
    np.add.at(den, d.d_code, den_g)
    np.add.at(xy, d.d_code, xy_g)
    n_ctrl = np.bincount(d.d_code, weights=C.sum(axis=1), minlength=n_d)
    present = np.bincount(d.d_code, minlength=n_d) > 0
    empty = present & (n_ctrl == 0)
    if empty.any():
        base = ", ".join(f"{v:g}" for v in np.unique(d.d_sq[empty[d.d_code]]))
        raise DesignError(
            f"{func}: the covariates cannot be used: for the units with baseline treatment {base} there is no "
            f"not-yet-switched cell with observed first differences of the outcome and of {covariates!r}, so their "
            f"outcome cannot be residualised (the R package drops those units). Fix: drop covariates=, or drop "
            f"the units with baseline treatment {base}."
        )
    theta = np.zeros((n_d, K))
    inv = np.zeros((n_d, K, K))
    singular = []
    d_vals = np.unique(d.d_sq)
    rmax = float(d.F.max())
    rsum = float(np.sum(np.where((tv >= 2) & (tv <= rmax - 1) & (tv < F) & ok_y, N, 0.0)))
    for j in np.flatnonzero(present):
        pinv = np.linalg.pinv(den[j], rcond=_GINV_TOL)
        theta[j] = pinv @ xy[j]
        inv[j] = pinv * rsum * G
        if abs(np.linalg.det(den[j])) <= _SINGULAR_DET:
            singular.append(j)
    # fitted values of dY on dX and period effects among C_d, and the number of not-yet-switched groups E_td
    resid_fe = dY - np.einsum("gtk,gk->gt", np.where(np.isnan(dX), np.nan, dX), theta[d.d_code])
    lam_tot = np.bincount(key, weights=np.where(C, w * resid_fe, 0.0).ravel(), minlength=n_d * n_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = (lam_tot / np.where(sw > 0, sw, np.nan))[key].reshape(n_g, n_t)
    fitted = np.einsum("gtk,gk->gt", dX, theta[d.d_code]) + lam
    fitted = np.where((tv < F), fitted, np.nan)
    E = np.bincount(key, weights=((tv < F) & ok_y).astype(np.float64).ravel(), minlength=n_d * n_t)
    E = E[key].reshape(n_g, n_t)
    e_hat = np.where(np.isnan(fitted), np.nan, np.where(E >= 2, fitted, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(E >= 2, np.sqrt(E / (E - 1)), 1.0)
    T_d = np.full(n_d, -np.inf)
    np.maximum.at(T_d, d.d_code, d.F)
    T_d -= 1
    ncell = (tv >= 2) & (tv <= T_d[d.d_code][:, None]) & (tv < F) & ok_y
    N_c = np.bincount(d.d_code, weights=np.where(ncell, N, 0.0).sum(axis=1), minlength=n_d)
    window = (tv >= 2) & (tv <= F - 1)
    with np.errstate(invalid="ignore"):
        inner = np.where(window, dof * (dY - e_hat), np.nan)
        terms = prodX * inner[:, :, None]
    in_sum = np.nansum(np.where(C[:, :, None], terms, np.nan), axis=1) / N_c[d.d_code][:, None]
    bracket = np.einsum("gkj,gj->gk", inv[d.d_code], in_sum) * (d.F >= 3)[:, None]
    messages: tuple[str, ...] = ()
    if singular:
        vals = ", ".join(f"{d_vals[j]:g}" for j in singular)
        messages = (
            f"Some covariates are not taken into account for units with baseline treatment {vals}: the "
            f"regression of the outcome's first difference on the covariates' first differences and period effects "
            f"among not-yet-switched cells has fewer observations than covariates or collinear covariates (e.g. a "
            f"covariate constant over time); the Moore-Penrose inverse is used, as the package does.",
        )
    return ControlsFit(theta=theta, bracket=bracket, present=present, messages=messages)


def residualize(diff: np.ndarray, dX: np.ndarray, theta_g: np.ndarray) -> np.ndarray:
    """``diff - dX' theta_{D_g1}`` (NaN where a control difference is missing)."""
    return diff - np.einsum("gtk,gk->gt", dX, theta_g)


def variance_correction(fit: ControlsFit, d: DcdhData, G: float, n1: float, l: int, dist: np.ndarray,
                        nc: np.ndarray, ratio: np.ndarray, dX: np.ndarray) -> np.ndarray:
    """``sum_d M_d' (bracket_g 1{D_g1 = d} - theta_d)`` per group, for one DID_l (or placebo) and direction."""
    tv = d.tv[None, :].astype(np.float64)
    T_g = d.T_g[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        core = ((l <= d.T_g - 2)[:, None] * (G / n1) * (dist - ratio * nc)
                * ((tv >= l + 1) & (tv <= T_g)) * d.N)
        m = np.nansum(core[:, :, None] * dX, axis=1)  # (G, K)
    M = np.zeros_like(fit.theta)
    np.add.at(M, d.d_code, m)
    M /= G
    own = np.einsum("gk,gk->g", M[d.d_code], fit.bracket)
    return np.asarray(own - float(np.sum(M[fit.present] * fit.theta[fit.present])))
