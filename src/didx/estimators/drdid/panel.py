"""The Sant'Anna & Zhao (2020) 2x2 DiD building blocks, panel data: estimates and influence functions.

Pure numpy, vectorised, no dataframe handling; used by :func:`didx.drdid` and by the Callaway-Sant'Anna
estimator (one call per ATT(g,t) cell). Each function reproduces the R function of DRDID 1.2.3 named in its
docstring, including the normalisation of the weights to mean one, the cap ``pscore <= 1 - 1e-6`` and the trimming
of comparison units with ``pscore >= trim_level`` (default 0.995).

The stable interface (keep it):

    panel_cell(dy, treated, X, weights, method) -> (att, inf_func)
    rc.rc_cell(y, post, treated, X, weights, method) -> (att, inf_func)    (in :mod:`didx.estimators.drdid.rc`)

with ``method`` in ``{"dr", "ipw", "reg"}`` = R's ``drdid_panel`` (traditional DR, logit pscore),
``std_ipw_did_panel`` (normalised IPW) and ``reg_did_panel`` (outcome regression), and their repeated
cross-section versions ``drdid_rc``, ``std_ipw_did_rc``, ``reg_did_rc`` -- the functions ``did::att_gt`` calls for
``est_method = "dr" | "ipw" | "reg"``. ``X`` is the n x p covariate matrix INCLUDING the intercept column (``None``
= intercept only); ``weights`` None or length n (normalised to mean 1 internally).

Influence function scaling (DRDID's ``att.inf.func``): ``att_hat - ATT ~= mean(inf_func)``; the analytic SE is
``sqrt(sum((inf - mean(inf))^2)) / n`` (R: ``sd(inf) * sqrt(n - 1) / n``), ``n`` the number of observations
passed in. ``did::att_gt`` rescales each cell's function by ``n_total / n_cell`` before aggregating.

Further variants used by :func:`didx.drdid`: :func:`panel_dr_improved` (``drdid_imp_panel``, IPT pscore and
pscore-weighted OLS), :func:`panel_ipw_unnormalized` (``ipw_did_panel``), :func:`panel_twfe`
(``twfe_did_panel``), and for repeated cross sections :mod:`didx.estimators.drdid.rc`. The helpers both
modules share (odds weights, the logit's estimation effect, trimming counts, the TWFE fit) are in
:mod:`didx.estimators.drdid.nuisance`.

Reference: Sant'Anna, P. H. C. and Zhao, J. (2020), "Doubly robust difference-in-differences estimators",
Journal of Econometrics 219(1), 101-122; R package DRDID 1.2.3 (pedrohcgs/DRDID).
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
    influence_se,
    inverse_crossprod,
    n_trimmed,
    odds_weights,
    prepare,
    twfe_fit,
    wls,
)

__all__ = [
    "DEFAULT_TRIM_LEVEL",
    "CellEstimate",
    "influence_se",
    "panel_cell",
    "panel_dr",
    "panel_dr_improved",
    "panel_estimate",
    "panel_ipw",
    "panel_ipw_unnormalized",
    "panel_reg",
    "panel_twfe",
]

CELL_METHODS = ("dr", "ipw", "reg")


def _check(dy: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(dy, dtype=np.float64)
    D = np.asarray(treated).astype(np.float64)
    if y.ndim != 1 or D.shape != y.shape:
        raise DesignError(f"outcome and treated must be 1-d arrays of equal length; got {y.shape} and {D.shape}.")
    n1 = int(np.count_nonzero(D == 1))
    if n1 == 0 or n1 == D.shape[0]:
        raise DesignError(
            f"A 2x2 DiD needs treated and comparison observations; got {n1} treated of {D.shape[0]}."
        )
    return y, D


def panel_reg(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
              weights: np.ndarray | None = None) -> CellEstimate:
    """Outcome-regression DiD, panel data (Heckman, Ichimura & Todd 1997; R: ``DRDID::reg_did_panel``).

    ``ATT = mean_w(dy | D=1) - mean_w(X'b | D=1)`` with ``b`` the weighted OLS of ``dy`` on ``X`` among
    comparison units.
    """
    y, D = _check(dy, treated)
    n = y.shape[0]
    X, w = prepare(n, X, weights)
    ctrl = D == 0
    beta = wls(X, y, w, ctrl, "outcome (comparison units)")
    out = X @ beta
    w_treat = w * D
    m_treat = w_treat.mean()
    eta_treat = float(np.mean(w_treat * y) / m_treat)
    eta_cont = float(np.mean(w_treat * out) / m_treat)
    att = eta_treat - eta_cont
    w_ols = w * (1.0 - D)
    XpX_inv = inverse_crossprod(X, w_ols, "outcome regression")
    M1 = (w_treat @ X) / n
    inf_ols = (w_ols * (y - out)) * (X @ (XpX_inv @ M1))
    inf_treat = (w_treat * y - w_treat * eta_treat) / m_treat
    inf_control = (w_treat * out - w_treat * eta_cont + inf_ols) / m_treat
    return CellEstimate(att=att, inf_func=inf_treat - inf_control, method="reg")


def panel_ipw(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
              weights: np.ndarray | None = None, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Normalised (Hajek) IPW DiD, panel data (Abadie 2005 with stabilised weights; R: ``std_ipw_did_panel``).

    ``ATT = sum(w D dy)/sum(w D) - sum(w (1-D) o dy)/sum(w (1-D) o)`` with the odds ``o = p/(1-p)`` of a logit
    propensity score; trimmed comparison units get zero weight.
    """
    y, D = _check(dy, treated)
    n = y.shape[0]
    X, w = prepare(n, X, weights)
    ow = odds_weights(X, D, w, trim_level)
    converged, asy_ps, trim, w_treat, w_cont = ow.converged, ow.logit, ow.trim, ow.treat, ow.odds
    m_treat, m_cont = w_treat.mean(), w_cont.mean()
    eta_treat = float(np.mean(w_treat * y) / m_treat)
    eta_cont = float(np.mean(w_cont * y) / m_cont)
    inf_treat = (w_treat * y - w_treat * eta_treat) / m_treat
    M2 = ((w_cont * (y - eta_cont)) @ X) / n
    inf_control = (w_cont * y - w_cont * eta_cont + asy_ps @ M2) / m_cont
    return CellEstimate(att=eta_treat - eta_cont, inf_func=inf_treat - inf_control, method="ipw", pscore="logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=converged)


def panel_ipw_unnormalized(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
                           weights: np.ndarray | None = None,
                           trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Unnormalised (Horvitz-Thompson) IPW DiD, panel data (Abadie 2005; R: ``DRDID::ipw_did_panel``).

    ``ATT = mean(w (D - (1-D) o) dy) / mean(w D)``, the comparison odds not rescaled to sum to one.
    """
    y, D = _check(dy, treated)
    n = y.shape[0]
    X, w = prepare(n, X, weights)
    ow = odds_weights(X, D, w, trim_level)
    converged, asy_ps, trim, w_treat, w_cont = ow.converged, ow.logit, ow.trim, ow.treat, ow.odds
    att_treat = w_treat * y
    att_cont = w_cont * y
    m_d = float(np.mean(w * D))
    att = float(np.mean(att_treat) / m_d - np.mean(att_cont) / m_d)
    mom = (att_cont @ X) / n
    inf = (att_treat - att_cont - asy_ps @ mom - w * D * att) / m_d
    return CellEstimate(att=att, inf_func=inf, method="ipw_unnormalized", pscore="logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=converged)


def panel_dr(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
             weights: np.ndarray | None = None, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Traditional doubly robust DiD, panel data (Sant'Anna & Zhao 2020, eq. 3.1; R: ``DRDID::drdid_panel``).

    Logit propensity score ``p``, OLS of ``dy`` on ``X`` among comparison units (fitted ``m``), and
    ``ATT = mean_w(dy - m | D=1) - sum(w (1-D) o (dy - m)) / sum(w (1-D) o)``. The influence function includes
    the estimation effects of the logit and OLS coefficients.
    """
    y, D = _check(dy, treated)
    n = y.shape[0]
    X, w = prepare(n, X, weights)
    ow = odds_weights(X, D, w, trim_level)
    converged, asy_ps, trim, w_treat, w_cont = ow.converged, ow.logit, ow.trim, ow.treat, ow.odds
    ctrl = D == 0
    beta = wls(X, y, w, ctrl, "outcome (comparison units)")
    out = X @ beta
    resid = y - out
    m_treat, m_cont = w_treat.mean(), w_cont.mean()
    eta_treat = float(np.mean(w_treat * resid) / m_treat)
    eta_cont = float(np.mean(w_cont * resid) / m_cont)
    w_ols = w * (1.0 - D)
    XpX_inv = inverse_crossprod(X, w_ols, "outcome regression")
    e_ols = w_ols * resid
    M1 = (w_treat @ X) / n
    M2 = ((w_cont * (resid - eta_cont)) @ X) / n
    M3 = (w_cont @ X) / n
    inf_treat = (w_treat * resid - w_treat * eta_treat - e_ols * (X @ (XpX_inv @ M1))) / m_treat
    inf_control = (w_cont * resid - w_cont * eta_cont + asy_ps @ M2 - e_ols * (X @ (XpX_inv @ M3))) / m_cont
    return CellEstimate(att=eta_treat - eta_cont, inf_func=inf_treat - inf_control, method="dr", pscore="logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=converged)


def panel_dr_improved(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
                      weights: np.ndarray | None = None, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Improved, locally efficient doubly robust DiD, panel data (Sant'Anna & Zhao 2020, sec. 3.1;
    R: ``DRDID::drdid_imp_panel``, the default of ``DRDID::drdid``).

    The propensity score is the inverse-probability-tilting fit (:func:`fit_ipt`) and the outcome model is the OLS
    of ``dy`` on ``X`` among comparison units weighted by the odds ``o = p/(1-p)``. Then
    ``ATT = mean(w (D - (1-D) o) (dy - m)) / mean(w D)``. Both nuisance estimates solve moment conditions that
    make their estimation effects vanish, so the influence function is the leading term only
    (doubly robust for inference).
    """
    y, D = _check(dy, treated)
    n = y.shape[0]
    X, w = prepare(n, X, weights)
    fit = fit_ipt(X, D, w)
    ps, trim = cap_and_trim(fit.pscore, D, trim_level)
    odds = ps / (1.0 - ps)
    ctrl = D == 0
    beta = wls(X, y, w * odds, ctrl, "outcome (comparison units, odds-weighted)")
    out = X @ beta
    summand = trim * (1.0 - (1.0 - D) / (1.0 - ps)) * (y - out)
    m_d = float(np.mean(D * w))
    att = float(np.mean(w * summand) / m_d)
    inf = w * trim * (summand - D * att) / m_d
    notes = () if fit.converged else ("the IPT propensity score did not converge; the logit fit was used",)
    return CellEstimate(att=att, inf_func=inf, method="dr_improved", pscore="ipt" if fit.converged else "logit",
                        n_trimmed=n_trimmed(trim, D), pscore_converged=fit.converged, notes=notes)


def panel_twfe(y0: np.ndarray, y1: np.ndarray, treated: np.ndarray, X: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> CellEstimate:
    """Two-way fixed effects DiD on the stacked panel (R: ``DRDID::twfe_did_panel``).

    OLS of ``y`` on ``1, D, post, D*post`` and the covariates in levels (``X`` without its intercept column) over
    the 2n stacked rows (pre rows first, then post rows). The influence function has 2n entries, one per stacked
    row, ``(w x e)' (X'WX / 2n)^{-1}`` selected at ``D*post``; its SE is the ``influence_se`` of that vector,
    i.e. heteroskedasticity-robust and NOT clustered by unit (as in R).
    """
    y0 = np.asarray(y0, dtype=np.float64)
    y1 = np.asarray(y1, dtype=np.float64)
    _, D = _check(y1 - y0, treated)
    n = D.shape[0]
    Xf, w = prepare(n, X, weights)
    Xc = drop_intercept(Xf)
    post = np.concatenate([np.zeros(n), np.ones(n)])
    dd = np.concatenate([D, D])
    ys = np.concatenate([y0, y1])
    ws = np.concatenate([w, w])
    Z = np.column_stack([np.ones(2 * n), post, dd, np.vstack([Xc, Xc]), dd * post])
    return twfe_fit(ys, Z, ws)


_PANEL_TRIMMED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, float],
                                    CellEstimate]] = {
    "dr": panel_dr,
    "ipw": panel_ipw,
    "dr_improved": panel_dr_improved,
    "ipw_unnormalized": panel_ipw_unnormalized,
}


def panel_estimate(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None, weights: np.ndarray | None,
                   method: str, trim_level: float = DEFAULT_TRIM_LEVEL) -> CellEstimate:
    """Dispatch on ``method`` in {"dr", "ipw", "reg", "dr_improved", "ipw_unnormalized"} (panel data)."""
    if method == "reg":
        return panel_reg(dy, treated, X, weights)
    if method not in _PANEL_TRIMMED:
        raise InvalidOptionError(f"Unknown 2x2 DiD method {method!r}; expected one of "
                                 f"{sorted([*_PANEL_TRIMMED, 'reg'])}.")
    return _PANEL_TRIMMED[method](dy, treated, X, weights, trim_level)


def panel_cell(dy: np.ndarray, treated: np.ndarray, X: np.ndarray | None, weights: np.ndarray | None,
               method: str) -> tuple[float, np.ndarray]:
    """One ATT(g,t) cell with panel data, as ``did::att_gt`` computes it.

    Parameters
    ----------
    dy : ``Y_post - Y_pre`` per unit.
    treated : boolean, True for the treated group.
    X : (n x p) covariates INCLUDING the intercept column, or None (intercept only).
    weights : None or length n (normalised to mean one internally).
    method : "dr" (``DRDID::drdid_panel``), "ipw" (``std_ipw_did_panel``) or "reg" (``reg_did_panel``).

    Returns
    -------
    (att, inf_func) : the estimate and DRDID's ``att.inf.func`` (length n; SE = ``influence_se(inf_func)``).
    """
    if method not in CELL_METHODS:
        raise InvalidOptionError(f"panel_cell: method must be one of {CELL_METHODS}; got {method!r}.")
    est = panel_estimate(dy, treated, X, weights, method)
    return est.att, est.inf_func
