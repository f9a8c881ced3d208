"""The Sant'Anna & Zhao (2020) 2x2 DiD building blocks, repeated cross sections (stationary samples).

Same conventions as :mod:`didx.estimators.drdid.panel` (weights normalised to mean one, pscore capped at
``1 - 1e-6``, comparison observations with ``pscore >= trim_level`` trimmed; influence function per row with
``se = sqrt(sum((inf - mean(inf))^2)) / n``). Each function names the R function of DRDID 1.2.3 it reproduces.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx.estimators.drdid.nuisance import (
    DEFAULT_TRIM_LEVEL,
    CellEstimate,
    cap_and_trim,
    drop_intercept,
    fit_ipt,
    inverse_crossprod,
    n_trimmed,
    odds_weights,
    prepare,
    twfe_fit,
    wls,
)


class _OLSEffect:
    """Asymptotic linear representation of a (weighted) OLS fit on a subset: ``w_s e x' (X' W_s X / n)^{-1}``
    (R: ``asy.lin.rep.ols``), applied to a derivative vector."""

    def __init__(self, X: np.ndarray, w_sub: np.ndarray, resid: np.ndarray, what: str) -> None:
        self.X = X
        self.e = w_sub * resid
        self.inv = inverse_crossprod(X, w_sub, what)

    def __matmul__(self, M: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.e * (self.X @ (self.inv @ M))
        return out


def _check_rc(y: np.ndarray, post: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yv = np.asarray(y, dtype=np.float64)
    T = np.asarray(post).astype(np.float64)
    D = np.asarray(treated).astype(np.float64)
    if yv.ndim != 1 or T.shape != yv.shape or D.shape != yv.shape:
        raise DesignError(f"y, post and treated must be 1-d arrays of equal length; got {yv.shape}, {T.shape}, "
                          f"{D.shape}.")
    if not (np.all(np.isin(D, (0.0, 1.0))) and np.all(np.isin(T, (0.0, 1.0)))):
        raise DesignError("treated and post must be 0/1 (or boolean).")
    counts = np.bincount((2 * D + T).astype(np.int64), minlength=4)
    for cell in range(4):
        if counts[cell] == 0:
            grp = "treated" if cell >= 2 else "comparison"
            per = "post" if cell % 2 else "pre"
            raise DesignError(f"A repeated cross-section 2x2 DiD needs observations in every group x period "
                              f"cell; the {grp} group has none in the {per} period.")
    return yv, T, D


def _mean(a: np.ndarray) -> float:
    return float(np.mean(a))


def rc_reg(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
           weights: np.ndarray | None = None) -> CellEstimate:
    """Outcome-regression DiD, repeated cross sections (R: ``DRDID::reg_did_rc``).

    ``ATT = (mean_w(y | D=1, post) - mean_w(y | D=1, pre)) - mean_w(X'(b_post - b_pre) | D=1)`` with ``b_t`` the
    weighted OLS among comparison observations of period t.
    """
    yv, T, D = _check_rc(y, post, treated)
    n = yv.shape[0]
    X, w = prepare(n, X, weights)
    w_ols_pre = w * (1.0 - D) * (1.0 - T)
    w_ols_post = w * (1.0 - D) * T
    out_pre = X @ wls(X, yv, w, (D == 0) & (T == 0), "outcome (comparison, pre)")
    out_post = X @ wls(X, yv, w, (D == 0) & (T == 1), "outcome (comparison, post)")
    w_tpre = w * D * (1.0 - T)
    w_tpost = w * D * T
    w_cont = w * D
    eta_tpre = _mean(w_tpre * yv) / _mean(w_tpre)
    eta_tpost = _mean(w_tpost * yv) / _mean(w_tpost)
    reg_cont = w_cont * (out_post - out_pre)
    eta_cont = _mean(reg_cont) / _mean(w_cont)
    att = (eta_tpost - eta_tpre) - eta_cont
    ols_pre = _OLSEffect(X, w_ols_pre, yv - out_pre, "outcome regression (pre)")
    ols_post = _OLSEffect(X, w_ols_post, yv - out_post, "outcome regression (post)")
    inf_treat = ((w_tpost * yv - w_tpost * eta_tpost) / _mean(w_tpost)
                 - (w_tpre * yv - w_tpre * eta_tpre) / _mean(w_tpre))
    M1 = (w_cont @ X) / n
    inf_control = (reg_cont - w_cont * eta_cont + ols_post @ M1 - ols_pre @ M1) / _mean(w_cont)
    return CellEstimate(att=att, inf_func=inf_treat - inf_control, method="reg")


def rc_ipw(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
           weights: np.ndarray | None = None, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Normalised (Hajek) IPW DiD, repeated cross sections (R: ``DRDID::std_ipw_did_rc``)."""
    yv, T, D = _check_rc(y, post, treated)
    n = yv.shape[0]
    X, w = prepare(n, X, weights)
    ow = odds_weights(X, D, w, trim_level)
    converged, logit, trim = ow.converged, ow.logit, ow.trim
    odds_w = ow.odds
    w_tpre = ow.treat * (1.0 - T)
    w_tpost = ow.treat * T
    w_cpre = odds_w * (1.0 - T)
    w_cpost = odds_w * T
    parts = []
    for wt in (w_tpre, w_tpost, w_cpre, w_cpost):
        m = _mean(wt)
        att_part = _mean(wt * yv) / m
        parts.append((wt, m, att_part))
    (_, _, a_tpre), (_, _, a_tpost), (_, m_cpre, a_cpre), (_, m_cpost, a_cpost) = parts
    att = (a_tpost - a_tpre) - (a_cpost - a_cpre)
    lead = [(wt * yv - wt * a) / m for wt, m, a in parts]
    inf_treat = lead[1] - lead[0]
    inf_cont = lead[3] - lead[2]
    M2_pre = ((w_cpre * (yv - a_cpre)) @ X) / n / m_cpre
    M2_post = ((w_cpost * (yv - a_cpost)) @ X) / n / m_cpost
    inf_cont = inf_cont + logit @ (M2_post - M2_pre)
    return CellEstimate(att=att, inf_func=inf_treat - inf_cont, method="ipw", pscore="logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=converged)


def rc_ipw_unnormalized(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
                        weights: np.ndarray | None = None,
                        trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Unnormalised (Horvitz-Thompson) IPW DiD, repeated cross sections (R: ``DRDID::ipw_did_rc``).

    Each of the four cell means divides by ``mean(w D) * mean(w post)`` (or ``mean(w (1 - post))``) instead of
    the sum of its own weights.
    """
    yv, T, D = _check_rc(y, post, treated)
    n = yv.shape[0]
    X, w = prepare(n, X, weights)
    ow = odds_weights(X, D, w, trim_level)
    converged, logit, trim = ow.converged, ow.logit, ow.trim
    w_tpre = ow.treat * (1.0 - T)
    w_tpost = ow.treat * T
    w_cpre = ow.odds * (1.0 - T)
    w_cpost = ow.odds * T
    pi = _mean(w * D)
    lam = _mean(w * T)
    one_lam = _mean(w * (1.0 - T))
    eta_tpre = w_tpre * yv / (pi * one_lam)
    eta_tpost = w_tpost * yv / (pi * lam)
    eta_cpre = w_cpre * yv / (pi * one_lam)
    eta_cpost = w_cpost * yv / (pi * lam)
    a_tpre, a_tpost, a_cpre, a_cpost = (_mean(e) for e in (eta_tpre, eta_tpost, eta_cpre, eta_cpost))
    att = (a_tpost - a_tpre) - (a_cpost - a_cpre)
    dD = w * D - pi
    dpost = w * T - lam
    dpre = w * (1.0 - T) - one_lam

    def lin_post(eta: np.ndarray, a: float) -> np.ndarray:
        out: np.ndarray = eta - a - dD * a / pi - dpost * a / lam
        return out

    def lin_pre(eta: np.ndarray, a: float) -> np.ndarray:
        out: np.ndarray = eta - a - dD * a / pi - dpre * a / one_lam
        return out

    mom_pre = -(eta_cpre @ X) / n
    mom_post = -(eta_cpost @ X) / n
    inf = ((lin_post(eta_tpost, a_tpost) - lin_pre(eta_tpre, a_tpre))
           - (lin_post(eta_cpost, a_cpost) - lin_pre(eta_cpre, a_cpre))
           + logit @ (mom_post - mom_pre))
    return CellEstimate(att=att, inf_func=inf, method="ipw_unnormalized", pscore="logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=converged)


def rc_dr(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
          weights: np.ndarray | None = None, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Locally efficient doubly robust DiD with a logit pscore and unweighted OLS, repeated cross sections
    (Sant'Anna & Zhao 2020, eq. 3.4 with traditional nuisance estimators; R: ``DRDID::drdid_rc``).

    Outcome regressions for comparison AND treated observations in each period; the influence function includes
    the estimation effects of the logit and of the four OLS fits. As in R, the estimation effects of the
    comparison-group OLS on the treated and comparison terms are summed over periods
    (``inf.treat.or.post + inf.treat.or.pre``), where the exact derivative would subtract the pre-period term; the
    two agree when the propensity score balances X, and parity with ``did::att_gt(panel = FALSE)`` needs R's form.
    """
    yv, T, D = _check_rc(y, post, treated)
    n = yv.shape[0]
    X, w = prepare(n, X, weights)
    ow = odds_weights(X, D, w, trim_level)
    converged, logit, trim = ow.converged, ow.logit, ow.trim
    masks = {
        "cpre": (D == 0) & (T == 0), "cpost": (D == 0) & (T == 1),
        "tpre": (D == 1) & (T == 0), "tpost": (D == 1) & (T == 1),
    }
    fitted = {k: X @ wls(X, yv, w, m, f"outcome ({k})") for k, m in masks.items()}
    out_cpre, out_cpost, out_tpre, out_tpost = fitted["cpre"], fitted["cpost"], fitted["tpre"], fitted["tpost"]
    out_cont = T * out_cpost + (1.0 - T) * out_cpre
    odds_w = ow.odds
    w_tpre = ow.treat * (1.0 - T)
    w_tpost = ow.treat * T
    w_cpre = odds_w * (1.0 - T)
    w_cpost = odds_w * T
    w_d = ow.treat
    w_dt1 = w_tpost
    w_dt0 = w_tpre
    r = yv - out_cont
    m = {k: _mean(v) for k, v in (("tpre", w_tpre), ("tpost", w_tpost), ("cpre", w_cpre), ("cpost", w_cpost),
                                  ("d", w_d))}
    eta_tpre = w_tpre * r / m["tpre"]
    eta_tpost = w_tpost * r / m["tpost"]
    eta_cpre = w_cpre * r / m["cpre"]
    eta_cpost = w_cpost * r / m["cpost"]
    g_post = out_tpost - out_cpost
    g_pre = out_tpre - out_cpre
    eta_d_post = w_d * g_post / m["d"]
    eta_dt1_post = w_dt1 * g_post / m["tpost"]
    eta_d_pre = w_d * g_pre / m["d"]
    eta_dt0_pre = w_dt0 * g_pre / m["tpre"]
    a = {k: _mean(v) for k, v in (("tpre", eta_tpre), ("tpost", eta_tpost), ("cpre", eta_cpre),
                                  ("cpost", eta_cpost), ("d_post", eta_d_post), ("dt1_post", eta_dt1_post),
                                  ("d_pre", eta_d_pre), ("dt0_pre", eta_dt0_pre))}
    att = ((a["tpost"] - a["tpre"]) - (a["cpost"] - a["cpre"])
           + (a["d_post"] - a["dt1_post"]) - (a["d_pre"] - a["dt0_pre"]))
    ols_cpre = _OLSEffect(X, w * masks["cpre"], yv - out_cpre, "outcome regression (comparison, pre)")
    ols_cpost = _OLSEffect(X, w * masks["cpost"], yv - out_cpost, "outcome regression (comparison, post)")
    ols_tpre = _OLSEffect(X, w * masks["tpre"], yv - out_tpre, "outcome regression (treated, pre)")
    ols_tpost = _OLSEffect(X, w * masks["tpost"], yv - out_tpost, "outcome regression (treated, post)")
    inf_tpre = eta_tpre - w_tpre * a["tpre"] / m["tpre"]
    inf_tpost = eta_tpost - w_tpost * a["tpost"] / m["tpost"]
    M1_post = -((w_tpost * T) @ X) / n / m["tpost"]
    M1_pre = -((w_tpre * (1.0 - T)) @ X) / n / m["tpre"]
    inf_treat_or = ols_cpost @ M1_post + ols_cpre @ M1_pre
    inf_cpre = eta_cpre - w_cpre * a["cpre"] / m["cpre"]
    inf_cpost = eta_cpost - w_cpost * a["cpost"] / m["cpost"]
    M2_pre = ((w_cpre * (r - a["cpre"])) @ X) / n / m["cpre"]
    M2_post = ((w_cpost * (r - a["cpost"])) @ X) / n / m["cpost"]
    inf_cont_ps = logit @ (M2_post - M2_pre)
    M3_post = -((w_cpost * T) @ X) / n / m["cpost"]
    M3_pre = -((w_cpre * (1.0 - T)) @ X) / n / m["cpre"]
    inf_cont_or = ols_cpost @ M3_post + ols_cpre @ M3_pre
    inf_eff = ((eta_d_post - w_d * a["d_post"] / m["d"]) - (eta_dt1_post - w_dt1 * a["dt1_post"] / m["tpost"])
               - ((eta_d_pre - w_d * a["d_pre"] / m["d"]) - (eta_dt0_pre - w_dt0 * a["dt0_pre"] / m["tpre"])))
    mom_post = ((w_d / m["d"] - w_dt1 / m["tpost"]) @ X) / n
    mom_pre = ((w_d / m["d"] - w_dt0 / m["tpre"]) @ X) / n
    inf_or = (ols_tpost @ mom_post - ols_cpost @ mom_post) - (ols_tpre @ mom_pre - ols_cpre @ mom_pre)
    inf_treat = inf_tpost - inf_tpre + inf_treat_or
    inf_cont = inf_cpost - inf_cpre + inf_cont_ps + inf_cont_or
    inf = inf_treat - inf_cont + inf_eff + inf_or
    return CellEstimate(att=att, inf_func=inf, method="dr", pscore="logit", n_trimmed=n_trimmed(trim, D),
                        pscore_converged=converged)


def rc_dr_improved(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
                   weights: np.ndarray | None = None, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Improved, locally efficient doubly robust DiD, repeated cross sections (Sant'Anna & Zhao 2020, sec. 3.2;
    R: ``DRDID::drdid_imp_rc``, the default of ``DRDID::drdid(panel = FALSE)``).

    IPT propensity score, comparison-group outcome regressions weighted by the odds ``p/(1-p)`` in each period,
    treated-group OLS in each period; the influence function is the leading term only (R's choice: the estimation
    effects vanish asymptotically, but not exactly in a sample, unlike the panel version).
    """
    yv, T, D = _check_rc(y, post, treated)
    n = yv.shape[0]
    X, w = prepare(n, X, weights)
    fit = fit_ipt(X, D, w)
    ps, trim = cap_and_trim(fit.pscore, D, trim_level)
    or_w = w * ps / (1.0 - ps)
    out_cpre = X @ wls(X, yv, or_w, (D == 0) & (T == 0), "outcome (comparison, pre, odds-weighted)")
    out_cpost = X @ wls(X, yv, or_w, (D == 0) & (T == 1), "outcome (comparison, post, odds-weighted)")
    out_cont = T * out_cpost + (1.0 - T) * out_cpre
    out_tpre = X @ wls(X, yv, w, (D == 1) & (T == 0), "outcome (treated, pre)")
    out_tpost = X @ wls(X, yv, w, (D == 1) & (T == 1), "outcome (treated, post)")
    w_tpre = w * D * (1.0 - T)
    w_tpost = w * D * T
    odds_w = trim * w * ps * (1.0 - D) / (1.0 - ps)
    w_cpre = odds_w * (1.0 - T)
    w_cpost = odds_w * T
    w_d = w * D
    r = yv - out_cont
    g_post = out_tpost - out_cpost
    g_pre = out_tpre - out_cpre
    terms = [  # (weights, value) pairs: each enters as mean(w v)/mean(w), leading IF (w v - w a)/mean(w)
        (w_tpost, r, 1.0), (w_tpre, r, -1.0), (w_cpost, r, -1.0), (w_cpre, r, 1.0),
        (w_d, g_post, 1.0), (w_tpost, g_post, -1.0), (w_d, g_pre, -1.0), (w_tpre, g_pre, 1.0),
    ]
    att = 0.0
    inf = np.zeros(n)
    for wt, v, sign in terms:
        mw = _mean(wt)
        eta = wt * v / mw
        a = _mean(eta)
        att += sign * a
        inf += sign * (eta - wt * a / mw)
    notes = () if fit.converged else ("the IPT propensity score did not converge; the logit fit was used",)
    return CellEstimate(att=att, inf_func=inf, method="dr_improved", pscore="ipt" if fit.converged else "logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=fit.converged, notes=notes)


def rc_twfe(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> CellEstimate:
    """TWFE DiD on repeated cross sections (R: ``DRDID::twfe_did_rc``): OLS of ``y`` on ``1, post, D, D*post``
    and the covariates in levels; heteroskedasticity-robust influence function."""
    yv, T, D = _check_rc(y, post, treated)
    n = yv.shape[0]
    Xf, w = prepare(n, X, weights)
    Z = np.column_stack([np.ones(n), T, D, drop_intercept(Xf), D * T])
    return twfe_fit(yv, Z, w)


_RC_TRIMMED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, float],
                                 CellEstimate]] = {
    "dr": rc_dr,
    "ipw": rc_ipw,
    "dr_improved": rc_dr_improved,
    "ipw_unnormalized": rc_ipw_unnormalized,
}


def rc_estimate(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None,
                weights: np.ndarray | None, method: str, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Dispatch on ``method`` in {"dr", "ipw", "reg", "dr_improved", "ipw_unnormalized"} (repeated cross sections)."""
    if method == "reg":
        return rc_reg(y, post, treated, X, weights)
    if method not in _RC_TRIMMED:
        raise InvalidOptionError(f"Unknown 2x2 DiD method {method!r}; expected one of "
                                 f"{sorted([*_RC_TRIMMED, 'reg'])}.")
    return _RC_TRIMMED[method](y, post, treated, X, weights, trim_level)


CELL_METHODS = ("dr", "ipw", "reg")


def rc_cell(y: np.ndarray, post: np.ndarray, treated: np.ndarray, X: np.ndarray | None,
            weights: np.ndarray | None, method: str) -> tuple[float, np.ndarray]:
    """One ATT(g,t) cell with repeated cross sections, as ``did::att_gt(panel = FALSE)`` computes it.

    ``method``: "dr" (``DRDID::drdid_rc``), "ipw" (``std_ipw_did_rc``) or "reg" (``reg_did_rc``). ``y`` per row,
    ``post`` 0/1 per row, ``treated`` boolean per row, ``X`` with the intercept column (None: intercept only),
    ``weights`` None or per row. Returns the estimate and the influence function (one entry per row).
    """
    if method not in CELL_METHODS:
        raise InvalidOptionError(f"rc_cell: method must be one of {CELL_METHODS}; got {method!r}.")
    est = rc_estimate(y, post, treated, X, weights, method)
    return est.att, est.inf_func
