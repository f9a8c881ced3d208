"""``didx.synthdid``: synthetic difference-in-differences, synthetic control and DiD as synthdid 0.0.9 computes
them, with staggered adoption as Stata's sdid and covariates ("optimized" as synthdid's ``X``, "projected" as
Kranz 2022).

References: Arkhangelsky, Athey, Hirshberg, Imbens & Wager (2021), "Synthetic Difference-in-Differences", AER;
Clarke, Pailañir, Athey & Imbens (2023), "Synthetic Difference-in-Differences Estimation", Stata Journal; Kranz
(2022), "Synthetic Difference-in-Differences with Time-Varying Covariates".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import InvalidOptionError
from didx._panel import Panel, build_panel
from didx._validate import check_option, fmt_value
from didx.estimators.synthdid.core import BlockOptions, fit_block, fit_block_covariates, noise_level
from didx.estimators.synthdid.design import WideDesign, wide_design
from didx.estimators.synthdid.fit import CohortFit, combine, curves
from didx.estimators.synthdid.result import SynthDiDResult, SynthDiDSource, full_matrix, replicate, unit_clusters
from didx.inference.contract import ClusterCodes

FUNC = "synthdid"
METHODS = ("sdid", "sc", "did")
LABELS = {"sdid": "Synthetic DiD", "sc": "Synthetic control", "did": "Difference-in-differences"}
WeightsArg = str | Sequence[float] | np.ndarray | Mapping[Any, float] | pd.Series | None


def _positive(name: str, value: Any, *, integer: bool = False, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | np.integer) if integer else isinstance(value, int | float | np.number)
    if isinstance(value, bool) or not ok or not np.isfinite(float(value)) or float(value) <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise InvalidOptionError(
            f"The {name!r} parameter of {FUNC} must be {kind}{' or None' if allow_none else ''}. Got {value!r} "
            f"instead."
        )
    return int(value) if integer else float(value)


def _flag(name: str, value: Any, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool | np.bool_):
        raise InvalidOptionError(f"The {name!r} parameter of {FUNC} must be True or False. Got {value!r} instead.")
    return bool(value)


def _fixed(name: str, value: WeightsArg, labels: np.ndarray) -> np.ndarray | None:
    """Fixed weights over ``labels``: "uniform", an array in that order, or a mapping / Series by label."""
    n = labels.shape[0]
    if value is None:
        return None
    if isinstance(value, str):
        if value != "uniform":
            raise InvalidOptionError(
                f"The {name!r} parameter of {FUNC} must be 'uniform', an array of {n} weights or a mapping "
                f"{{label: weight}}. Got {value!r} instead."
            )
        return np.full(n, 1.0 / n)
    if isinstance(value, Mapping | pd.Series):
        m = dict(value.items())
        missing = [lab for lab in labels if lab not in m]
        extra = [k for k in m if k not in set(labels.tolist())]
        if extra:
            raise InvalidOptionError(
                f"{FUNC}: {name}= names {fmt_value(extra[0])}, which is not one of its {n} labels. Fix: give "
                f"weights for {', '.join(fmt_value(x) for x in labels[:5])}{', ...' if n > 5 else ''}."
            )
        w = np.array([float(m.get(lab, 0.0)) for lab in labels])
        del missing  # labels left out get weight 0
    else:
        w = np.asarray(value, dtype=np.float64).ravel()
        if w.shape[0] != n:
            raise InvalidOptionError(
                f"The {name!r} parameter of {FUNC} must have one weight per label ({n}). Got {w.shape[0]} instead."
            )
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise InvalidOptionError(
            f"The {name!r} parameter of {FUNC} must hold non-negative finite weights with a positive sum. Got "
            f"{w[:5].tolist()}{'...' if n > 5 else ''} instead."
        )
    return np.asarray(w / w.sum())


def _projected(panel: Panel, design: WideDesign) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Kranz (2022): the coefficients of the covariates in a unit + period fixed-effects regression on the untreated
    observations, and the outcome net of them."""
    from didx.linalg.absorb import FixedEffects
    from didx.linalg.ols import fit_ols

    assert panel.unit is not None and panel.treat is not None
    untreated = panel.treat == 0
    fe = FixedEffects([panel.unit[untreated], panel.time[untreated]], ["unit", "time"])
    names = panel.covariate_names
    fit = fit_ols(panel.y[untreated], panel.covariates[untreated], names, fe=fe, func=FUNC)
    beta = np.zeros(len(names))
    kept = [names.index(n) for n in fit.names]
    beta[kept] = fit.coef
    return np.asarray(design.Y - design.X @ beta), beta, fit.dropped_collinear


def synthdid(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str,
    method: str = "sdid",
    covariates: str | Sequence[str] | None = None,
    covariate_method: str = "optimized",
    se: str | None = None,
    n_reps: int = 200,
    seed: int | None = None,
    cluster: str | None = None,
    eta_omega: float | None = None,
    eta_lambda: float = 1e-6,
    omega_intercept: bool | None = None,
    lambda_intercept: bool = True,
    unit_weights: WeightsArg = None,
    time_weights: WeightsArg = None,
    max_iter: int = 10_000,
    min_decrease: float | None = None,
) -> SynthDiDResult:
    """Synthetic difference-in-differences (``method="sdid"``), synthetic control (``"sc"``) or DiD (``"did"``)
    on a balanced panel with a 0/1 absorbing treatment, as synthdid 0.0.9.

    For one adoption period: unit weights ``omega`` (controls' pre-periods matched to the treated units' average,
    with an intercept, ridge ``zeta_omega = eta_omega * sigma``, ``eta_omega = (N1 T1)^(1/4)``, sigma the sd of
    the controls' first differences before treatment) and time weights ``lambda`` (pre-periods matched to the
    post-period average, ``zeta_lambda = eta_lambda * sigma``), by Frank-Wolfe with synthdid's stopping rule
    (``min_decrease = 1e-5 sigma``, ``max_iter`` steps) and sparsification; then
    ``tau = [-omega, 1/N1]' Y [-lambda, 1/T1]``. ``"sc"`` fixes ``lambda = 0`` and drops the unit intercept with
    ``eta_omega = 1e-6``; ``"did"`` uses uniform weights. With staggered adoption each cohort is one such block
    against the never-treated units and the ATT averages them with weights ``N1 T1`` (Stata's sdid).

    Parameters
    ----------
    data : a data frame (pandas, polars, pyarrow, duckdb), one row per unit and period.
    y, unit, time, treat : outcome, unit, period and the 0/1 treatment indicator (absorbing).
    method : ``"sdid"``, ``"sc"`` or ``"did"``.
    covariates, covariate_method : time-varying covariates; ``"optimized"`` (synthdid's ``X``: coefficients found
        jointly with the weights) or ``"projected"`` (residualised first on a unit + period fixed-effects
        regression fitted on the untreated observations).
    se : None (no standard error), ``"placebo"`` (Algorithm 4; the one valid with a single treated unit),
        ``"bootstrap"`` (Algorithm 2; with ``cluster=``, clusters of units are drawn) or ``"jackknife"``
        (Algorithm 3, fixed weights).
    n_reps, seed : placebo / bootstrap replications and the seed of their random numbers.
    cluster : a column constant within units, for the clustered bootstrap.
    eta_omega, eta_lambda, omega_intercept, lambda_intercept, max_iter, min_decrease : synthdid's knobs
        (``min_decrease`` absolute, default ``1e-5 sigma``; ``omega_intercept`` default True, False for "sc").
    unit_weights, time_weights : fixed weights instead of estimated ones: ``"uniform"``, an array (controls in
        the order of ``result.unit_weights``; pre-periods in time order) or a mapping by unit / period label.

    Returns
    -------
    SynthDiDResult
    """
    method = check_option(FUNC, "method", method, METHODS)
    covariate_method = check_option(FUNC, "covariate_method", covariate_method, ("optimized", "projected"))
    if se is not None:
        se = check_option(FUNC, "se", se, ("placebo", "bootstrap", "jackknife"))
    n_reps = _positive("n_reps", n_reps, integer=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise InvalidOptionError(f"The 'seed' parameter of {FUNC} must be an integer or None. Got {seed!r} instead.")
    eta_omega = _positive("eta_omega", eta_omega, allow_none=True)
    eta_lambda = _positive("eta_lambda", eta_lambda)
    omega_intercept = _flag("omega_intercept", omega_intercept, allow_none=True)
    lambda_intercept = bool(_flag("lambda_intercept", lambda_intercept))
    max_iter = _positive("max_iter", max_iter, integer=True)
    min_decrease = _positive("min_decrease", min_decrease, allow_none=True)
    if method != "sdid" and (unit_weights is not None or (time_weights is not None and method == "did")):
        raise InvalidOptionError(
            f"{FUNC}: method={method!r} fixes its own weights; unit_weights= / time_weights= apply to method='sdid' "
            f"(and time_weights= not to 'sc', whose time weights are 0). Fix: drop them or use method='sdid'."
        )
    if method == "sc" and time_weights is not None:
        raise InvalidOptionError(
            f"{FUNC}: method='sc' has no time weights (they are 0). Fix: drop time_weights=, or use method='sdid' "
            f"with time_weights=... for a synthetic control with a time-weighted intercept."
        )
    panel = build_panel(data, func=FUNC, y=y, time=time, unit=unit, treat=treat, covariates=covariates,
                        cluster=cluster, require_control="untreated_obs")
    if cluster is not None and se != "bootstrap":
        raise InvalidOptionError(
            f"{FUNC}: cluster={cluster!r} applies to the bootstrap (whole clusters of units are drawn); got "
            f"se={se!r}. Fix: pass se='bootstrap', or drop cluster=."
        )
    design = wide_design(panel, FUNC, unit, treat)
    n_treated = design.N - design.N0
    if se in ("bootstrap", "jackknife") and n_treated == 1:
        raise InvalidOptionError(
            f"{FUNC}: se={se!r} needs more than one treated unit (with one, every replication that leaves it out "
            f"has no treated unit: synthdid returns NA). Fix: use se='placebo', the one valid with a single "
            f"treated unit."
        )
    if se == "placebo" and n_treated >= design.N0:
        raise InvalidOptionError(
            f"{FUNC}: se='placebo' needs more control units ({design.N0}) than treated units ({n_treated}): the "
            f"placebo assigns the treated units' adoption to controls. Fix: use se='bootstrap' or 'jackknife'."
        )
    if se == "jackknife":
        sizes = np.bincount(design.cohort_of[design.N0:], minlength=design.cohorts.size)
        if (sizes < 2).any():
            one = design.period_labels[design.cohorts[np.flatnonzero(sizes < 2)[0]]]
            raise InvalidOptionError(
                f"{FUNC}: se='jackknife' needs at least two treated units in every adoption cohort; the cohort "
                f"adopting at {fmt_value(one)} has one (leaving it out removes the cohort). Fix: use se='bootstrap' "
                f"or 'placebo'."
            )
    if ((unit_weights is not None and not isinstance(unit_weights, str))
            or (time_weights is not None and not isinstance(time_weights, str))) and design.cohorts.size > 1:
        raise InvalidOptionError(
            f"{FUNC}: fixed unit_weights= / time_weights= arrays apply to one adoption period; this panel has "
            f"{design.cohorts.size}. Fix: pass 'uniform', or estimate the weights."
        )
    Y = design.Y
    X = design.X
    coefs: pd.DataFrame = pd.DataFrame()
    notes: list[str] = []
    cov_names = panel.covariate_names
    if cov_names and covariate_method == "projected":
        Y, beta, dropped = _projected(panel, design)
        coefs = pd.DataFrame({"covariate": list(cov_names), "estimate": beta})
        if dropped:
            notes.append(f"Covariates collinear with the unit and period effects (coefficient 0): {list(dropped)}")
        X = np.zeros((design.N, design.T, 0))
    fits = tuple(_fit_cohort(j, Y, X, design, method=method, eta_omega=eta_omega, eta_lambda=float(eta_lambda),
                             omega_intercept=omega_intercept, lambda_intercept=lambda_intercept,
                             unit_weights=unit_weights, time_weights=time_weights, max_iter=int(max_iter),
                             min_decrease=min_decrease)
                 for j in range(design.cohorts.size))
    if cov_names and covariate_method == "optimized":
        coefs = pd.DataFrame([{"cohort": design.period_labels[f.period], **dict(zip(cov_names, f.beta,
                                                                                     strict=True))}
                              for f in fits])
    if se == "jackknife":
        single = [f for f in fits if np.count_nonzero(f.omega) == 1]
        if single:
            raise InvalidOptionError(
                f"{FUNC}: se='jackknife' holds the unit weights fixed, and the cohort adopting at "
                f"{fmt_value(design.period_labels[single[0].period])} puts all its weight on one control: leaving "
                f"it out leaves no synthetic control (synthdid returns NA). Fix: use se='placebo' or 'bootstrap'."
            )
        if method == "sc":
            notes.append("The jackknife is not recommended for synthetic control (Arkhangelsky et al. 2021, "
                         "section 5): its fixed-weights variance ignores the weights' selection.")
    work = WideDesign(Y=Y, X=X, labels=design.labels, order=design.order, N0=design.N0, cohorts=design.cohorts,
                      cohort_of=design.cohort_of, period_labels=design.period_labels)
    return _assemble(panel, work, fits, method=method, se=se, n_reps=int(n_reps), seed=seed, cluster=cluster,
                     covariates=cov_names, covariate_method=covariate_method, coefs=coefs, notes=notes)


def _fit_cohort(j: int, Y: np.ndarray, X: np.ndarray, design: WideDesign, *, method: str,
                eta_omega: float | None, eta_lambda: float, omega_intercept: bool | None, lambda_intercept: bool,
                unit_weights: WeightsArg, time_weights: WeightsArg, max_iter: int,
                min_decrease: float | None) -> CohortFit:
    a = int(design.cohorts[j])
    rows = design.block_rows(j)
    N0, T = design.N0, design.T
    Yb = Y[rows]
    n1, n_post = rows.size - N0, T - a
    sigma = noise_level(Yb, N0, a)
    if not np.isfinite(sigma) or sigma == 0.0:
        sigma_txt = "undefined (one pre-period)" if not np.isfinite(sigma) else "0 (constant controls)"
        if method != "did":
            raise InvalidOptionError(
                f"{FUNC}: the noise level of the cohort adopting at {fmt_value(design.period_labels[a])} is "
                f"{sigma_txt}: the regularisation zeta = eta * noise level is not defined. Fix: use method='did', or "
                f"include more pre-periods."
            )
        sigma = 0.0
    if method == "sc":
        eta_o = 1e-6 if eta_omega is None else eta_omega
        om_int = False if omega_intercept is None else omega_intercept
    else:
        eta_o = (n1 * n_post) ** 0.25 if eta_omega is None else eta_omega
        om_int = True if omega_intercept is None else omega_intercept
    fixed_om = _fixed("unit_weights", unit_weights, design.labels[:N0])
    fixed_lam = _fixed("time_weights", time_weights, design.period_labels[:a])
    if method == "sc":
        fixed_lam = np.zeros(a)
    elif method == "did":
        fixed_om, fixed_lam = np.full(N0, 1.0 / N0), np.full(a, 1.0 / a)
    opts = BlockOptions(zeta_omega=eta_o * sigma, zeta_lambda=eta_lambda * sigma, omega_intercept=om_int,
                        lambda_intercept=lambda_intercept, update_omega=fixed_om is None,
                        update_lambda=fixed_lam is None,
                        min_decrease=1e-5 * sigma if min_decrease is None else min_decrease, max_iter=max_iter)
    Xb = X[rows]
    if Xb.shape[2]:
        opts = BlockOptions(**{**opts.__dict__, "max_iter_pre_sparsify": None})
        bf = fit_block_covariates(Yb, Xb, N0, a, opts, omega=fixed_om, lam=fixed_lam)
        Yb = Yb - Xb @ bf.beta[0]
    else:
        bf = fit_block(Yb, N0, a, opts, omega=fixed_om, lam=fixed_lam)
    cur = curves(Yb[None], N0, a, bf.omega, bf.lam)[0]
    return CohortFit(period=a, n_treated=n1, n_post=n_post, opts=opts, noise_level=sigma, eta_omega=eta_o,
                     eta_lambda=eta_lambda, omega=bf.omega[0], lam=bf.lam[0], beta=bf.beta[0], curve=cur,
                     estimate=float(cur[a:].mean()), fixed_omega=fixed_om, fixed_lambda=fixed_lam)


def _assemble(panel: Panel, design: WideDesign, fits: tuple[CohortFit, ...], *, method: str, se: str | None,
              n_reps: int, seed: int | None, cluster: str | None, covariates: tuple[str, ...],
              covariate_method: str, coefs: pd.DataFrame, notes: list[str]) -> SynthDiDResult:
    periods = np.array([f.period for f in fits])
    est = np.array([[f.estimate for f in fits]])
    cur = np.stack([f.curve for f in fits])[None]
    n1 = np.array([[f.n_treated for f in fits]])
    comb = combine(est, cur, n1, periods, design.T)
    labels = [design.period_labels[a] for a in periods]
    terms = ("ATT",) + (tuple(f"ATT({fmt_value(g)})" for g in labels) if len(fits) > 1 else ())
    coef = np.concatenate([comb.att, comb.cohort[0]]) if len(fits) > 1 else comb.att
    # estimation rows -> rows of the wide design
    row_of_unit = np.empty(design.N, dtype=np.int64)
    row_of_unit[design.order] = np.arange(design.N)
    assert panel.unit is not None
    unit_of_row = row_of_unit[panel.unit]
    stored = {str(panel.names["unit"]): panel.unit}
    cluster_of_unit = None
    if cluster is not None:
        stored[cluster] = panel.codes[cluster]
        cluster_of_unit = unit_clusters(FUNC, cluster, panel.codes[cluster], unit_of_row, design.N)
    codes = ClusterCodes(stored, None if panel.all_rows_kept else panel.row_index, panel.report.n_input_rows,
                         panel.fingerprint)
    rep = None
    if se is not None:
        rep = replicate(se, design, fits, n_reps, seed, cluster, cluster_of_unit)
    V, inference = full_matrix(rep, len(terms))
    source = SynthDiDSource(design=design, fits=fits, replicated=rep, codes=codes, unit_of_row=unit_of_row,
                            n_terms=len(terms))
    choices = [("Estimator", LABELS[method] + (" (synthdid 0.0.9 weights)" if method != "did" else "")),
               ("Adoption", "simultaneous" if len(fits) == 1 else
                f"staggered: {len(fits)} cohorts vs never-treated units, ATT weighted by treated unit-periods"),
               ("Unit weights", _describe(fits[0], "omega")), ("Time weights", _describe(fits[0], "lambda")),
               ("Frank-Wolfe", f"max_iter = {fits[0].opts.max_iter}, min_decrease = "
                               f"{fmt_value(fits[0].opts.min_decrease)}"
                               + (", sparsified after 100 steps" if fits[0].opts.max_iter_pre_sparsify else ""))]
    if covariates:
        choices.append(("Covariates", f"{', '.join(covariates)} ({covariate_method})"))
    report = panel.report
    result = SynthDiDResult(
        estimator=LABELS[method], terms=terms, coef=coef, vcov_matrix=V, headline="ATT", inference=inference,
        sample=report, design=tuple(choices),
        extras={"event": {"event_times": comb.event_times, "coef": comb.event[0]}, "covariate_coefficients": coefs},
        notes=tuple(notes), _source=source, method=method,
    )
    return result


def _describe(fit: CohortFit, which: str) -> str:
    if which == "omega":
        if fit.fixed_omega is not None:
            return "fixed (given or uniform)"
        return (f"estimated, eta_omega = {fmt_value(fit.eta_omega)}, "
                f"{'with' if fit.opts.omega_intercept else 'no'} intercept")
    if fit.fixed_lambda is not None:
        return "fixed at 0 (synthetic control)" if not fit.fixed_lambda.any() else "fixed (given or uniform)"
    return (f"estimated, eta_lambda = {fmt_value(fit.eta_lambda)}, "
            f"{'with' if fit.opts.lambda_intercept else 'no'} intercept")


__all__ = ["SynthDiDResult", "synthdid"]
