"""Doubly robust difference in differences with two groups and two periods (Sant'Anna & Zhao 2020).

:func:`drdid` estimates the ATT under conditional parallel trends with panel data (one row per unit and period,
``unit=`` given) or repeated cross sections (``panel=False``), by the estimators of R's DRDID 1.2.3:

=====================  ===========================================  =====================  ===================
``est_method``         estimator                                    panel (R)              repeated cross sec.
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
(``sd(IF) / sqrt(n)`` for TWFE, as in R); with ``cluster=`` (or ``result.with_vcov(cluster=...)``) the sum runs over
the clusters' summed influence functions (see :mod:`didx.estimators.drdid.result`). Comparison units with an
estimated propensity score at or above ``trim_level`` (default 0.995) get zero weight, as in DRDID; ``summary()``
reports how many.

Reference: Sant'Anna, P. H. C. and Zhao, J. (2020), "Doubly robust difference-in-differences estimators",
Journal of Econometrics 219(1), 101-122; R package DRDID 1.2.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, check_option, role_columns
from didx.estimators.drdid.nuisance import CellEstimate, independent_columns
from didx.estimators.drdid.panel import DEFAULT_TRIM_LEVEL, panel_estimate, panel_twfe
from didx.estimators.drdid.rc import rc_estimate, rc_twfe
from didx.estimators.drdid.result import DRDiDResult, DRDiDSource
from didx.inference.contract import ClusterCodes
from didx.results.render import fmt_num

__all__ = ["DRDiDResult", "drdid"]

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

_FUNC = "drdid"


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Missing()


@dataclass(frozen=True)
class _Options:
    """The validated arguments of :func:`drdid`."""

    y: str
    treat: str
    time: str
    unit: str | None
    covariates: list[str]
    est_method: str
    weights: str | None
    cluster: str | None
    panel: bool
    trim_level: float


@dataclass(frozen=True, eq=False)
class _Fit:
    """What estimation returns to result assembly."""

    est: CellEstimate
    n_obs: int
    report: SampleReport
    covariates_kept: list[str]
    source: DRDiDSource


def drdid(
    data: Any,
    *,
    y: str,
    treat: str,
    time: str,
    unit: str | None = None,
    covariates: str | Sequence[str] | None = _REQUIRED,
    est_method: str = "dr",
    weights: str | None = None,
    cluster: str | None = None,
    panel: bool = True,
    trim_level: float = DEFAULT_TRIM_LEVEL,
) -> DRDiDResult:
    """ATT of a two-group, two-period design under conditional parallel trends (Sant'Anna & Zhao 2020).

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...), long format: one row per unit and period.
    y : outcome column.
    treat : the treated-group indicator (DRDID's ``dname``): 0/1 (or boolean), 1 for units of the treated group
        in both periods; constant within a unit.
    time : the period column: 0/1, or any numeric time column with exactly two values (the later is "post").
    unit : unit identifier; required with ``panel=True`` (units not observed in both periods are dropped and
        reported, as R's ``makeBalancedPanel``). Not used with ``panel=False`` (the result's notes and design
        say so).
    covariates : column(s) X for the propensity score and outcome models (an intercept is added), or ``None``
        for the unconditional DiD. Required: pass ``None`` explicitly to use no covariates. With panel data they
        must be constant within a unit (pre-treatment values). Collinear columns are dropped (reported).
    est_method : ``"dr"`` (improved locally efficient DR, DRDID's default), ``"dr_traditional"``, ``"ipw"``
        (normalised), ``"ipw_unnormalized"``, ``"reg"`` or ``"twfe"``; see the module docstring.
    weights : sampling weights column (normalised to mean one; constant within a unit for panel data).
    cluster : a column to cluster the SE on (constant within a unit for panel data): the influence function is
        summed within clusters (see :mod:`didx.estimators.drdid.result`; R's DRDID does not cluster).
    panel : True for panel data (uses ``dY`` per unit); False for repeated cross sections.
    trim_level : comparison observations with propensity score >= ``trim_level`` get zero weight (DRDID's
        ``trim.level``; not used by ``"reg"`` and ``"twfe"``).

    Returns
    -------
    DRDiDResult : ``.estimate`` / ``.std_error`` (analytic, normal), ``.tidy()`` with one row ``ATT``,
    ``.influence_functions()``, ``.n_trimmed``, ``.with_vcov(cluster=...)``; ``.summary()`` prints the method,
    the propensity score and outcome models, the trimming and the sample.
    """
    opts = _check_options(y=y, treat=treat, time=time, unit=unit, covariates=covariates, est_method=est_method,
                          weights=weights, cluster=cluster, panel=panel, trim_level=trim_level)
    cl = opts.cluster if opts.cluster != opts.unit else None
    pnl = build_panel(data, func=_FUNC, y=y, time=time, unit=unit if panel else None, treat=treat,
                      covariates=opts.covariates, weights=weights, cluster=cl, require_control="untreated_obs",
                      treat_role="treat (treated-group indicator)")
    if pnl.n_periods != 2:
        raise DataError(
            f"{_FUNC}: the time column {time!r} must take exactly two values (pre and post), but it has "
            f"{pnl.n_periods}: {', '.join(fmt_num(v, 4) for v in pnl.period_labels[:6])}. Fix: keep two periods, "
            f"or for many periods use didx.att_gt."
        )
    fit = _estimate_panel(pnl, opts) if panel else _estimate_rc(pnl, opts)
    return _assemble(fit, opts, pnl.period_labels)


# ----------------------------------------------------------------------------------------------- validation
def _check_options(*, y: str, treat: str, time: str, unit: str | None, covariates: Any, est_method: str,
                   weights: str | None, cluster: str | None, panel: bool, trim_level: float) -> _Options:
    if isinstance(covariates, _Missing):
        raise InvalidOptionError(
            f"{_FUNC}: the 'covariates' argument is required. Pass the conditioning covariates, e.g. "
            f"covariates=['age', 'educ'], or covariates=None for the unconditional DiD (then every method equals "
            f"the 2x2 difference in means)."
        )
    check_option(_FUNC, "est_method", est_method, METHODS)
    if not isinstance(panel, bool):
        raise InvalidOptionError(f"The 'panel' parameter of {_FUNC} must be True or False. Got {panel!r}.")
    if isinstance(trim_level, bool) or not (isinstance(trim_level, int | float) and 0.0 < float(trim_level) <= 1.0):
        raise InvalidOptionError(
            f"The 'trim_level' parameter of {_FUNC} must be a number in (0, 1], e.g. 0.995 (DRDID's default). "
            f"Got {trim_level!r}."
        )
    if panel and unit is None:
        raise InvalidOptionError(
            f"{_FUNC}: panel=True needs unit= (the unit identifier column) to pair each unit's two periods. Fix: "
            f"pass unit='id', or panel=False for repeated cross sections."
        )
    if cluster is not None and not isinstance(cluster, str):
        raise InvalidOptionError(
            f"{_FUNC}: cluster= takes one column name; got {cluster!r}. Fix: pass one column, e.g. cluster='state'."
        )
    if not panel and cluster is not None and cluster == unit:
        raise InvalidOptionError(
            f"{_FUNC}: cluster={cluster!r} is the unit column, which panel=False does not use. Fix: use panel=True "
            f"for a panel, or cluster on another column."
        )
    check_distinct_roles(_FUNC, {"y": y, "treat": treat, "time": time, "unit": unit if panel else None})
    return _Options(y=y, treat=treat, time=time, unit=unit, covariates=as_list(covariates), est_method=est_method,
                    weights=weights, cluster=cluster, panel=panel, trim_level=float(trim_level))


def check_distinct_roles(func: str, roles: dict[str, str | None]) -> None:
    """One column cannot play two of the roles y, unit, time, cohort/treat (the outcome would be constant within
    units or periods, giving 0 with a zero SE instead of an error).

    Each argument is first checked by :func:`didx._validate.role_columns` (a list where one column is expected is
    an error naming the argument), and compared by the column name it resolves to (``str`` of an integer label,
    so ``unit=11`` and ``y='11'`` are the same column). Arguments that are no column name (a float, a boolean) are
    left to the column reader's message."""
    seen: dict[str, str] = {}
    for role, col in roles.items():
        for arg in role_columns(func, role, col):
            if not isinstance(arg, str | int | np.integer) or isinstance(arg, bool | np.bool_):
                continue
            name = str(arg)
            if name in seen:
                raise InvalidOptionError(
                    f"{func}: the column {name!r} is given as both {seen[name]}= and {role}=. Each role needs its "
                    f"own column. Fix: pass the intended column for {role}=."
                )
            seen[name] = role


# ----------------------------------------------------------------------------------------------- estimation
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


def _estimate_rc(pnl: Panel, opts: _Options) -> _Fit:
    """Repeated cross sections: every row is an observation."""
    G = np.asarray(pnl.treat, dtype=np.float64)
    X, cov_kept = _design(pnl.covariates, opts.covariates)
    _check_sizes(_FUNC, G, len(opts.covariates), per=2)
    if opts.est_method == "twfe":
        est = rc_twfe(pnl.y, pnl.time, G, X, pnl.weights)
    else:
        est = rc_estimate(pnl.y, pnl.time.astype(np.float64), G, X, pnl.weights, _CORE_NAME[opts.est_method],
                          opts.trim_level)
    stored = {} if opts.cluster is None else {opts.cluster: pnl.codes[opts.cluster]}
    codes = ClusterCodes(stored, pnl.kept_rows, pnl.report.n_input_rows, pnl.fingerprint)
    source = _source(est, opts, codes, None, None, pnl.period_labels)
    return _Fit(est=est, n_obs=pnl.n_obs, report=pnl.report, covariates_kept=cov_kept, source=source)


def _estimate_panel(pnl: Panel, opts: _Options) -> _Fit:
    """Panel data: units observed in both periods, one row per unit (first differences)."""
    assert pnl.unit is not None and pnl.unit_labels is not None
    u, t = pnl.unit, pnl.time
    complete = np.bincount(u, minlength=pnl.n_units) == 2
    report = pnl.report
    n_incomplete = int(np.count_nonzero(~complete))
    if n_incomplete:
        report = report.with_dropped(Dropped(reason="unit not observed in both periods (balanced panel)",
                                             n_rows=int(np.count_nonzero(~complete[u])), n_units=n_incomplete))
    keep_rows = complete[u]
    uu = (np.cumsum(complete) - 1)[u[keep_rows]]
    n = int(complete.sum())
    if n == 0:
        raise DesignError(f"{_FUNC}: no unit of {opts.unit!r} is observed in both periods. Fix: check the unit and "
                          f"time columns, or use panel=False for repeated cross sections.")
    pre = t[keep_rows] == 0
    wide = _UnitPairs(uu, pre, n)
    y0, y1 = wide.values(pnl.y[keep_rows])
    D = wide.constant(np.asarray(pnl.treat, dtype=np.float64)[keep_rows], _varies(
        f"the treat column {opts.treat!r} (treated-group indicator) varies within a unit of {opts.unit!r}. The "
        f"treated group must be fixed per unit. Fix: set {opts.treat!r} to 1 in both periods for every treated "
        f"unit."))
    W = wide.constant(pnl.covariates[keep_rows], lambda bad: DataError(
        f"{_FUNC}: with panel data the covariates must be constant within a unit, but "
        f"{', '.join(repr(c) for c, d in zip(opts.covariates, bad, strict=True) if d)} changes between the two "
        f"periods for some units. Fix: use the pre-period value for both rows (e.g. df[c] = "
        f"df.groupby(unit)[c].transform('first')), or panel=False."))
    w = None if pnl.weights is None else wide.constant(pnl.weights[keep_rows], _varies(
        f"the weights column {opts.weights!r} must be constant within a unit with panel data. Fix: use one weight "
        f"per unit."))
    X, kept = _design(W, opts.covariates)
    _check_sizes(_FUNC, D, len(opts.covariates), per=1)
    report = replace(report, n_units=n, n_obs=2 * n, balanced=True)
    if opts.est_method == "twfe":
        est = panel_twfe(y0, y1, D, X, w)
    else:
        est = panel_estimate(y1 - y0, D, X, w, _CORE_NAME[opts.est_method], opts.trim_level)
    stored = {str(opts.unit): uu}
    if opts.cluster is not None and opts.cluster != opts.unit:
        stored[opts.cluster] = pnl.codes[opts.cluster][keep_rows]
    row_index = pnl.row_index[keep_rows] if (n_incomplete or not pnl.all_rows_kept) else None
    codes = ClusterCodes(stored, row_index, report.n_input_rows, pnl.fingerprint)
    source = _source(est, opts, codes, uu, pnl.unit_labels[complete], pnl.period_labels)
    return _Fit(est=est, n_obs=n, report=report, covariates_kept=kept, source=source)


def _varies(message: str) -> Any:
    return lambda _bad: DataError(f"{_FUNC}: {message}")


class _UnitPairs:
    """The two rows of every unit (codes ``uu``, ``pre`` flags) laid out per unit."""

    def __init__(self, uu: np.ndarray, pre: np.ndarray, n: int) -> None:
        self.uu, self.pre, self.post, self.n = uu, pre, ~pre, n

    def values(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out0 = np.empty((self.n, *a.shape[1:]))
        out1 = np.empty_like(out0)
        out0[self.uu[self.pre]] = a[self.pre]
        out1[self.uu[self.post]] = a[self.post]
        return out0, out1

    def constant(self, a: np.ndarray, error: Any) -> np.ndarray:
        """The per-unit value of ``a`` (pre-period row); ``error(columns that differ)`` when it changes."""
        v0, v1 = self.values(a)
        differs = np.not_equal(v0, v1)
        if differs.ndim > 1:
            differs = np.any(differs, axis=0)
            if differs.any():
                raise error(differs)
        elif differs.any():
            raise error(differs)
        return v0


def _source(est: CellEstimate, opts: _Options, codes: ClusterCodes, unit_of_row: np.ndarray | None,
            unit_labels: np.ndarray | None, period_labels: np.ndarray) -> DRDiDSource:
    inf = np.array(est.inf_func, dtype=np.float64, copy=True)
    inf.flags.writeable = False
    twfe = opts.est_method == "twfe"
    return DRDiDSource(inf=inf, unit_of_row=unit_of_row, stacked=twfe and opts.panel, twfe=twfe, codes=codes,
                       fit_cluster=opts.cluster, unit=opts.unit if opts.panel else None, unit_labels=unit_labels,
                       period_labels=np.asarray(period_labels))


# ----------------------------------------------------------------------------------------------- assembly
def _assemble(fit: _Fit, opts: _Options, period_labels: np.ndarray) -> DRDiDResult:
    est = fit.est
    V, inference = fit.source.compute(_FUNC, opts.cluster, None if opts.cluster is None
                                      else fit.source.codes.stored[opts.cluster])
    dropped_cov = [c for c in opts.covariates if c not in fit.covariates_kept]
    notes: list[str] = list(est.notes)
    if opts.unit is not None and not opts.panel:
        notes.append(f"unit={opts.unit!r} is not used with panel=False: every row is treated as its own observation "
                     f"(a repeated cross section). If the units are observed in both periods, panel=True uses "
                     f"their first differences and is more efficient.")
    if dropped_cov:
        notes.append(f"collinear covariates dropped (as DRDID's pre-processing): {', '.join(dropped_cov)}")
    if not est.pscore_converged:
        notes.append("the propensity score estimation did not converge (overlap problem?)")
    design = _design_lines(opts, period_labels, fit.covariates_kept, est)
    method = opts.est_method
    return DRDiDResult(
        estimator=f"DR DiD ({method})" if method.startswith("dr") else f"2x2 DiD ({method})",
        terms=("ATT",),
        coef=np.array([est.att]),
        vcov_matrix=V,
        headline="ATT",
        inference=inference,
        sample=fit.report,
        design=tuple(design),
        term_info={"n": np.array([fit.n_obs])},
        extras={"n_trimmed": est.n_trimmed, "method": method, "panel": opts.panel,
                "r_function": _R_NAME[(method, opts.panel)], "pscore": est.pscore,
                "pscore_converged": est.pscore_converged, "covariates": tuple(fit.covariates_kept)},
        notes=tuple(notes),
        _source=fit.source,
    )


def _design_lines(opts: _Options, labels: np.ndarray, covs: list[str], est: CellEstimate) -> list[tuple[str, str]]:
    method, panel = opts.est_method, opts.panel
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
        ("Outcome", opts.y),
        ("Treated group", f"{opts.treat} == 1"),
        ("Periods", f"pre = {fmt_num(labels[0], 6)}, post = {fmt_num(labels[1], 6)} ({opts.time})"),
        ("Data", f"panel (unit: {opts.unit}), outcome in first differences" if panel else
         "repeated cross sections" + ("" if opts.unit is None else f" (unit={opts.unit!r} not used)")),
        ("Covariates", ", ".join(covs) + " (plus intercept)" if covs else "none (intercept only)"),
        ("Propensity score", pscore if uses_ps else "not used"),
        ("Outcome model", outcome),
    ]
    if uses_ps:
        lines.append(("Trimming", f"comparison units with pscore >= {opts.trim_level:g} get zero weight; "
                                  f"{est.n_trimmed} trimmed"))
    lines.append(("Weights", opts.weights or "none"))
    return lines
