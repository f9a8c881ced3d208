"""Doubly robust difference in differences with two groups and two periods (Sant'Anna & Zhao 2020).

:func:`drdid` estimates the ATT under conditional parallel trends with panel data (one row per unit and period,
``unit=`` given) or repeated cross sections (``panel=False``), by the estimators of R's DRDID 1.2.3:

=====================  ===========================================  =====================  ===================
``method``             estimator                                    panel (R)              repeated cross sec.
=====================  ===========================================  =====================  ===================
``"dr"`` (default)     improved, locally efficient doubly robust    ``drdid_imp_panel``    ``drdid_imp_rc``
``"dr_traditional"``   doubly robust, logit pscore + OLS            ``drdid_panel``        ``drdid_rc``
``"ipw"``              IPW with normalised (Hajek) weights          ``std_ipw_did_panel``  ``std_ipw_did_rc``
``"ipw_unnormalized"`` IPW, Horvitz-Thompson weights (Abadie 2005)  ``ipw_did_panel``      ``ipw_did_rc``
``"reg"``              outcome regression (Heckman et al. 1997)     ``reg_did_panel``      ``reg_did_rc``
``"twfe"``             TWFE regression with covariates in levels    ``twfe_did_panel``     ``twfe_did_rc``
=====================  ===========================================  =====================  ===================

The panel DR estimator (traditional form), with ``dY = Y_post - Y_pre``, propensity score ``p(X)`` and the
comparison-group regression ``m(X) = E[dY | X, D = 0]``::

    ATT = E_n[w1 (dY - m(X))] - E_n[w0 (dY - m(X))],   w1 = D / E_n[D],
    w0 = (1 - D) p/(1 - p) / E_n[(1 - D) p/(1 - p)]

The improved estimator fits ``p`` by inverse probability tilting and ``m`` by least squares weighted by the odds
``p/(1-p)``, which makes it locally efficient and doubly robust for inference too. Standard errors are analytic,
from the influence function (normal reference distribution): ``se = sqrt(sum (IF - mean IF)^2) / n``
(``sd(IF) / sqrt(n)`` for TWFE, as in R). Comparison units with an estimated propensity score at or above
``trim_level`` (default 0.995) get zero weight, as in DRDID; ``summary()`` reports how many.

Reference: Sant'Anna, P. H. C. and Zhao, J. (2020), "Doubly robust difference-in-differences estimators",
Journal of Econometrics 219(1), 101-122; R package DRDID 1.2.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._panel import build_panel
from didx._sample import Dropped
from didx._validate import as_list, check_option
from didx.estimators.drdid.nuisance import CellEstimate, independent_columns
from didx.estimators.drdid.panel import DEFAULT_TRIM_LEVEL, panel_estimate, panel_twfe
from didx.estimators.drdid.rc import rc_estimate, rc_twfe
from didx.results.base import Inference, Result
from didx.results.render import fmt_num

METHODS = ("dr", "dr_traditional", "ipw", "ipw_unnormalized", "reg", "twfe")

_CORE_NAME = {"dr": "dr_improved", "dr_traditional": "dr", "ipw": "ipw", "ipw_unnormalized": "ipw_unnormalized",
              "reg": "reg"}

_DESCRIPTION = {
    "dr": "improved, locally efficient doubly robust (Sant'Anna-Zhao 2020)",
    "dr_traditional": "doubly robust, traditional nuisance estimators (Sant'Anna-Zhao 2020)",
    "ipw": "inverse probability weighting, normalised (Hajek) weights",
    "ipw_unnormalized": "inverse probability weighting, unnormalised (Horvitz-Thompson) weights (Abadie 2005)",
    "reg": "outcome regression (Heckman, Ichimura and Todd 1997)",
    "twfe": "two-way fixed effects regression with covariates in levels",
}

_R_NAME = {
    ("dr", True): "drdid_imp_panel", ("dr", False): "drdid_imp_rc",
    ("dr_traditional", True): "drdid_panel", ("dr_traditional", False): "drdid_rc",
    ("ipw", True): "std_ipw_did_panel", ("ipw", False): "std_ipw_did_rc",
    ("ipw_unnormalized", True): "ipw_did_panel", ("ipw_unnormalized", False): "ipw_did_rc",
    ("reg", True): "reg_did_panel", ("reg", False): "reg_did_rc",
    ("twfe", True): "twfe_did_panel", ("twfe", False): "twfe_did_rc",
}


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Missing()


@dataclass(frozen=True, eq=False)
class DRDiDResult(Result):
    """Result of :func:`drdid`: one term, ``ATT``, with its influence function in ``.influence_function``."""

    @property
    def influence_function(self) -> np.ndarray:
        """DRDID's ``att.inf.func``: one entry per unit (panel), per row (repeated cross sections), or per stacked
        row (TWFE panel: pre rows, then post rows)."""
        out: np.ndarray = self.extras["influence_function"]
        return out

    @property
    def n_trimmed(self) -> int:
        """Comparison observations given zero weight because their propensity score is >= ``trim_level``."""
        return int(self.extras["n_trimmed"])


def drdid(
    data: Any,
    *,
    y: str,
    group: str,
    post: str,
    unit: str | None = None,
    covariates: str | Sequence[str] | None = _REQUIRED,
    method: str = "dr",
    weights: str | None = None,
    panel: bool = True,
    trim_level: float = DEFAULT_TRIM_LEVEL,
) -> DRDiDResult:
    """ATT of a two-group, two-period design under conditional parallel trends (Sant'Anna & Zhao 2020).

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...), long format: one row per unit and period.
    y : outcome column.
    group : 0/1 (or boolean) column, 1 for the treated group; constant within a unit.
    post : the period column: 0/1, or any numeric time column with exactly two values (the later is "post").
    unit : unit identifier; required with ``panel=True`` (units not observed in both periods are dropped and
        reported, as R's ``makeBalancedPanel``). Not used with ``panel=False`` (the result's notes and design
        say so).
    covariates : column(s) X for the propensity score and outcome models (an intercept is added), or ``None``
        for the unconditional DiD. Required: pass ``None`` explicitly to use no covariates. With panel data they
        must be constant within a unit (pre-treatment values). Collinear columns are dropped (reported).
    method : ``"dr"`` (improved locally efficient DR, DRDID's default), ``"dr_traditional"``, ``"ipw"``
        (normalised), ``"ipw_unnormalized"``, ``"reg"`` or ``"twfe"``; see the module docstring.
    weights : sampling weights column (normalised to mean one; constant within a unit for panel data).
    panel : True for panel data (uses ``dY`` per unit); False for repeated cross sections.
    trim_level : comparison observations with propensity score >= ``trim_level`` get zero weight (DRDID's
        ``trim.level``; not used by ``"reg"`` and ``"twfe"``).

    Returns
    -------
    DRDiDResult : ``.estimate`` / ``.std_error`` (analytic, normal), ``.tidy()`` with one row ``ATT``,
    ``.influence_function``, ``.n_trimmed``; ``.summary()`` prints the method, the propensity score and outcome
    models, the trimming and the sample.
    """
    func = "drdid"
    if isinstance(covariates, _Missing):
        raise InvalidOptionError(
            f"{func}: the 'covariates' argument is required. Pass the conditioning covariates, e.g. "
            f"covariates=['age', 'educ'], or covariates=None for the unconditional DiD (then every method equals "
            f"the 2x2 difference in means)."
        )
    check_option(func, "method", method, METHODS)
    if not isinstance(panel, bool):
        raise InvalidOptionError(f"The 'panel' parameter of {func} must be True or False. Got {panel!r}.")
    if isinstance(trim_level, bool) or not (isinstance(trim_level, int | float) and 0.0 < float(trim_level) <= 1.0):
        raise InvalidOptionError(
            f"The 'trim_level' parameter of {func} must be a number in (0, 1], e.g. 0.995 (DRDID's default). "
            f"Got {trim_level!r}."
        )
    if panel and unit is None:
        raise InvalidOptionError(
            f"{func}: panel=True needs unit= (the unit identifier column) to pair each unit's two periods. Fix: "
            f"pass unit='id', or panel=False for repeated cross sections."
        )
    cov_list = as_list(covariates)
    pnl = build_panel(data, func=func, y=y, time=post, unit=unit if panel else None, treat=group,
                      covariates=cov_list, weights=weights, require_control="untreated_obs")
    if pnl.n_periods != 2:
        raise DataError(
            f"{func}: the post column {post!r} must take exactly two values (pre and post), but it has "
            f"{pnl.n_periods}: {', '.join(fmt_num(v, 4) for v in pnl.period_labels[:6])}. Fix: keep two periods, "
            f"or for many periods use didx.att_gt."
        )
    G = np.asarray(pnl.treat, dtype=np.float64)
    report = pnl.report
    if panel:
        est, n_obs, report, cov_kept = _fit_panel(pnl, G, cov_list, method, float(trim_level), func, unit or "",
                                                  group, weights, report)
    else:
        X, cov_kept = _design(pnl.covariates, cov_list)
        _check_sizes(func, G, len(cov_list), per=2)
        if method == "twfe":
            est = rc_twfe(pnl.y, pnl.time, G, X, pnl.weights)
        else:
            est = rc_estimate(pnl.y, pnl.time.astype(np.float64), G, X, pnl.weights, _CORE_NAME[method],
                              float(trim_level))
        n_obs = pnl.n_obs
    se = est.std_error
    dropped_cov = [c for c in cov_list if c not in cov_kept]
    notes: list[str] = list(est.notes)
    if unit is not None and not panel:
        notes.append(f"unit={unit!r} is not used with panel=False: every row is treated as its own observation "
                     f"(a repeated cross section). If the units are observed in both periods, panel=True uses "
                     f"their first differences and is more efficient.")
    if dropped_cov:
        notes.append(f"collinear covariates dropped (as DRDID's pre-processing): {', '.join(dropped_cov)}")
    if not est.pscore_converged:
        notes.append("the propensity score estimation did not converge (overlap problem?)")
    design = _design_lines(method, panel, y, group, post, pnl.period_labels, cov_kept, weights, est,
                           float(trim_level), unit)
    inference = Inference(
        vcov_type="analytic (influence function)",
        df=None,
        details=(("SE = sd(IF) / sqrt(n), heteroskedasticity-robust, not clustered (as DRDID's TWFE)",)
                 if method == "twfe" else
                 (f"SE = sqrt(sum((IF - mean IF)^2)) / n over n = {n_obs} "
                  f"{'units' if panel else 'observations'} (DRDID 1.2.3)",)),
    )
    inf = np.array(est.inf_func, copy=True)
    inf.flags.writeable = False
    return DRDiDResult(
        estimator=f"DR DiD ({method})" if method.startswith("dr") else f"2x2 DiD ({method})",
        terms=("ATT",),
        coef=np.array([est.att]),
        vcov_matrix=np.array([[se * se]]),
        headline="ATT",
        inference=inference,
        sample=report,
        design=tuple(design),
        term_info={"n": np.array([n_obs])},
        extras={"influence_function": inf, "n_trimmed": est.n_trimmed, "method": method, "panel": panel,
                "r_function": _R_NAME[(method, panel)], "pscore": est.pscore,
                "pscore_converged": est.pscore_converged, "covariates": tuple(cov_kept)},
        notes=tuple(notes),
    )


def _design(W: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """``[1, W]`` with collinear columns dropped in order (DRDID's ``qr(tol = 1e-6)``)."""
    X = np.column_stack([np.ones(W.shape[0]), W]) if W.shape[1] else np.ones((W.shape[0], 1))
    keep = independent_columns(X)
    if keep.size == 0 or keep[0] != 0:
        keep = np.concatenate([[0], keep[keep != 0]])
    kept_names = [names[j - 1] for j in keep if j > 0]
    return X[:, keep], kept_names


def _check_sizes(func: str, G: np.ndarray, n_cov: int, per: int) -> None:
    """DRDID refuses groups with fewer than (number of covariates + 5) units."""
    need = n_cov + 5
    n_treated = float(np.count_nonzero(G)) / per
    n_comparison = float(G.shape[0]) / per - n_treated
    for size, label in ((n_treated, "treated"), (n_comparison, "comparison")):
        if size < need:
            raise DesignError(
                f"{func}: the {label} group has {size:g} units; with {n_cov} covariate(s) at least {need} are "
                f"needed for inference (DRDID's rule). Fix: use fewer covariates or a larger sample."
            )


def _fit_panel(pnl: Any, G: np.ndarray, cov_list: list[str], method: str, trim_level: float, func: str,
               unit: str, group: str, weights: str | None, report: Any) -> tuple[CellEstimate, int, Any, list[str]]:
    u = pnl.unit
    t = pnl.time
    n_units = pnl.n_units
    counts = np.bincount(u, minlength=n_units)
    complete = counts == 2
    n_incomplete = int(np.count_nonzero(~complete))
    if n_incomplete:
        rows = int(np.count_nonzero(~complete[u]))
        report = report.with_dropped(Dropped(reason="unit not observed in both periods (balanced panel)",
                                             n_rows=rows, n_units=n_incomplete))
    codes = np.cumsum(complete) - 1
    keep_rows = complete[u]
    uu = codes[u[keep_rows]]
    tt = t[keep_rows]
    n = int(complete.sum())
    if n == 0:
        raise DesignError(f"{func}: no unit of {unit!r} is observed in both periods. Fix: check the unit and post "
                          f"columns, or use panel=False for repeated cross sections.")
    pre = tt == 0
    post = ~pre
    y0 = np.empty(n)
    y1 = np.empty(n)
    yk = pnl.y[keep_rows]
    y0[uu[pre]] = yk[pre]
    y1[uu[post]] = yk[post]
    Gk = G[keep_rows]
    D = np.empty(n)
    D[uu[pre]] = Gk[pre]
    if np.any(D[uu[post]] != Gk[post]):
        raise DataError(
            f"{func}: the group column {group!r} varies within a unit of {unit!r}. The treated group must be fixed "
            f"per unit. Fix: set {group!r} to 1 in both periods for every treated unit."
        )
    Wk = pnl.covariates[keep_rows]
    W = np.empty((n, Wk.shape[1]))
    W[uu[pre]] = Wk[pre]
    if Wk.shape[1]:
        W_post = np.empty_like(W)
        W_post[uu[post]] = Wk[post]
        differs = np.any(np.not_equal(W, W_post), axis=0)
        if differs.any():
            bad = [c for c, d in zip(cov_list, differs, strict=True) if d]
            raise DataError(
                f"{func}: with panel data the covariates must be constant within a unit, but "
                f"{', '.join(map(repr, bad))} changes between the two periods for some units. Fix: use the "
                f"pre-period value for both rows (e.g. df[c] = df.groupby(unit)[c].transform('first')), or panel=False."
            )
    w: np.ndarray | None = None
    if pnl.weights is not None:
        wk = pnl.weights[keep_rows]
        w = np.empty(n)
        w[uu[pre]] = wk[pre]
        w_post = np.empty(n)
        w_post[uu[post]] = wk[post]
        if np.any(w != w_post):
            raise DataError(
                f"{func}: the weights column {weights!r} must be constant within a unit with panel data. Fix: use "
                f"one weight per unit."
            )
    X, kept = _design(W, cov_list)
    _check_sizes(func, D, len(cov_list), per=1)
    report = replace(report, n_units=n, n_obs=2 * n, balanced=True)
    if method == "twfe":
        est = panel_twfe(y0, y1, D, X, w)
    else:
        est = panel_estimate(y1 - y0, D, X, w, _CORE_NAME[method], trim_level)
    return est, n, report, kept


def _design_lines(method: str, panel: bool, y: str, group: str, post: str, labels: np.ndarray, covs: list[str],
                  weights: str | None, est: CellEstimate, trim_level: float, unit: str | None) -> list[tuple[str, str]]:
    pscore = {"ipt": "inverse probability tilting (Graham, Pinto and Egel 2012)", "logit": "logit (maximum likelihood)",
              "none": "none"}[est.pscore]
    if method == "dr" and est.pscore != "ipt":
        pscore = "logit (IPT did not converge)"
    outcome = {
        "dr": "least squares among comparison units, weighted by the odds p/(1-p)"
        + ("" if panel else "; treated-group OLS per period"),
        "dr_traditional": "least squares among comparison units" + ("" if panel else " and treated units, per period"),
        "reg": "least squares among comparison units" + ("" if panel else ", per period"),
        "ipw": "none", "ipw_unnormalized": "none",
        "twfe": "pooled OLS on 1, group, post, group:post and the covariates",
    }[method]
    uses_ps = method not in ("reg", "twfe")
    lines = [
        ("Estimator", _DESCRIPTION[method]),
        ("R equivalent", f"DRDID::{_R_NAME[(method, panel)]}"),
        ("Outcome", y),
        ("Treated group", f"{group} == 1"),
        ("Periods", f"pre = {fmt_num(labels[0], 6)}, post = {fmt_num(labels[1], 6)} ({post})"),
        ("Data", f"panel (unit: {unit}), outcome in first differences" if panel else
         "repeated cross sections" + ("" if unit is None else f" (unit={unit!r} not used)")),
        ("Covariates", ", ".join(covs) + " (plus intercept)" if covs else "none (intercept only)"),
        ("Propensity score", pscore if uses_ps else "not used"),
        ("Outcome model", outcome),
    ]
    if uses_ps:
        lines.append(("Trimming", f"comparison units with pscore >= {trim_level:g} get zero weight; "
                                  f"{est.n_trimmed} trimmed"))
    lines.append(("Weights", weights or "none"))
    return lines
