"""Callaway & Sant'Anna (2021): group-time average treatment effects ATT(g,t) and their aggregations.

For each cohort ``g`` (units first treated at ``g``) and period ``t``, ATT(g,t) is a 2x2 difference in
differences between the cohort and a comparison group (never-treated units, or units not yet treated), from a
base period ``b`` (``g - 1 - anticipation`` for post-treatment periods):

    ATT(g,t) = E[Y_t - Y_b | G = g] - E[Y_t - Y_b | C]

(with covariates, the doubly robust, IPW or regression 2x2 estimators of Sant'Anna & Zhao 2020 for each cell).
Every estimate carries its influence function, so aggregations (``result.aggregate``), clustering, the multiplier
bootstrap and uniform bands are computed without refitting. Without covariates all of it reduces to cohort x
period sums and per-cohort T x T sums of products; no n x K influence-function matrix is formed
(``shared/design/SCALE.md``).

Numerically identical to R's ``did`` 2.5.1 (``att_gt`` + ``aggte``): ATT(g,t), analytic SEs, the Wald pre-test
and all four aggregations with their SEs (tests/reference/callaway_santanna.json).

Reference: Callaway, B. and Sant'Anna, P. H. C. (2021), "Difference-in-Differences with multiple time periods",
Journal of Econometrics 225(2), 200-230.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from didx._errors import DesignError, InvalidOptionError
from didx._panel import build_panel
from didx._validate import as_list, check_option
from didx.estimators.cs.aggregate import aggregate
from didx.estimators.cs.cells import estimate_covariates, estimate_sums, plan_cells
from didx.estimators.cs.data import prepare
from didx.estimators.cs.result import (
    ATTgtResult,
    CSAggregateResult,
    CSEventStudyResult,
    CSState,
    CSVcovSource,
    compute_inference,
)
from didx.inference import multiplier as mb
from didx.results.base import Inference, WaldTest

__all__ = ["ATTgtResult", "CSAggregateResult", "CSEventStudyResult", "att_gt"]

_FUNC = "att_gt"


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise InvalidOptionError(
            f"The {name!r} parameter of {_FUNC} must be an integer >= {minimum}. Got {value!r} instead."
        )
    return int(value)


def att_gt(
    data: Any,
    *,
    y: str,
    unit: str | None = None,
    time: str,
    cohort: str,
    control: str = "never",
    base_period: str = "varying",
    method: str = "dr",
    covariates: str | Sequence[str] | None = None,
    anticipation: int = 0,
    weights: str | None = None,
    cluster: str | None = None,
    panel: bool = True,
    allow_unbalanced: bool = False,
    n_bootstrap: int | None = 0,
    bootstrap_weights: str = "rademacher",
    seed: int | None = None,
) -> ATTgtResult:
    """Group-time average treatment effects (Callaway & Sant'Anna 2021), as R's ``did::att_gt``.

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...), long format (one row per unit and period).
    y, unit, time : outcome, unit identifier and period columns (no ``unit`` with ``panel=False``).
    cohort : first treated period per unit; 0, NaN, inf or a period after the last one mean never treated.
    control : ``"never"`` (never-treated units) or ``"not_yet"`` (also units first treated after
        ``max(t, b) + anticipation``). With no never-treated units and ``"not_yet"``, the last cohort becomes
        the comparison group and later periods are dropped (as ``did``).
    base_period : ``"varying"`` (pre-treatment cells compare consecutive periods) or ``"universal"`` (every cell
        uses ``g - 1 - anticipation``; that cell is reported as 0).
    method : ``"dr"`` (doubly robust, ``DRDID::drdid_panel``), ``"ipw"`` or ``"reg"``. Without covariates all
        three coincide (the cohort x period mean formula).
    covariates : columns of the conditional parallel-trends assumption (taken at the earlier of t and b).
    anticipation : periods of anticipation ``delta`` (base period ``g - 1 - delta``).
    weights : sampling weights (constant within unit).
    cluster : a variable coarser than units (e.g. state) to cluster the SEs on; units are always clusters.
    panel : False for repeated cross sections (every row its own observation).
    allow_unbalanced : keep units not observed in every period (``did``'s ``allow_unbalanced_panel``: the
        repeated-cross-section estimators, influence functions summed by unit); default drops them (reported).
    n_bootstrap : multiplier-bootstrap draws (0 or None: analytic SEs and pointwise intervals).
    bootstrap_weights : ``"rademacher"`` (``did``'s: ``BMisc::multiplier_bootstrap`` draws Rademacher weights),
        ``"mammen"`` or ``"gaussian"`` (exact: analytic SEs, sup-t critical value simulated from the covariance).
    seed : seed of the bootstrap.

    Returns
    -------
    ATTgtResult : ATT(g,t) terms plus the headline ``ATT (simple)``; ``.aggregate(...)``, ``.pretest``.
    """
    control = check_option(_FUNC, "control", control, ("never", "not_yet"))
    base_period = check_option(_FUNC, "base_period", base_period, ("varying", "universal"))
    method = check_option(_FUNC, "method", method, ("dr", "ipw", "reg"))
    bootstrap_weights = check_option(_FUNC, "bootstrap_weights", bootstrap_weights, mb.MULTIPLIERS)
    anticipation = _check_int("anticipation", anticipation, 0)
    n_boot = 0 if n_bootstrap is None else _check_int("n_bootstrap", n_bootstrap, 0)
    seed = None if seed is None else _check_int("seed", seed, 0)
    if 0 < n_boot < 100:
        raise InvalidOptionError(
            f"The 'n_bootstrap' parameter of {_FUNC} must be 0 (analytic SEs) or at least 100 draws (e.g. 999). "
            f"Got {n_boot}."
        )
    if n_boot == 0 and (bootstrap_weights != "rademacher" or seed is not None):
        given = f"bootstrap_weights={bootstrap_weights!r}" if bootstrap_weights != "rademacher" else f"seed={seed!r}"
        raise InvalidOptionError(
            f"{_FUNC}: {given} is only used by the multiplier bootstrap, but n_bootstrap={n_bootstrap!r} asks for "
            f"analytic SEs and pointwise intervals, so it would be ignored. Fix: pass n_bootstrap= (e.g. 999) for a "
            f"bootstrap with uniform bands, or drop {given.split('=')[0]}=."
        )
    if not panel and unit is not None:
        raise InvalidOptionError(
            f"{_FUNC}: unit={unit!r} is not used with panel=False: repeated cross sections treat every row as its "
            f"own observation (SEs assume independent rows). Fix: drop unit= for true repeated cross sections, or "
            f"keep panel=True (with allow_unbalanced=True if units are missing in some periods) when the same units "
            f"are observed in several periods."
        )
    if not panel and allow_unbalanced:
        raise InvalidOptionError(f"{_FUNC}: allow_unbalanced applies to panel data; with panel=False drop it.")
    if panel and unit is None:
        raise InvalidOptionError(
            f"{_FUNC}: panel data need unit= (the unit identifier). Fix: pass unit=, or panel=False for repeated "
            f"cross sections."
        )
    if cluster is not None and not isinstance(cluster, str):
        raise InvalidOptionError(
            f"{_FUNC}: cluster= takes one column name; got {cluster!r}. Units are always clusters, so two-way "
            f"clustering is not available. Fix: pass the coarser variable alone, e.g. cluster='state'."
        )
    cov_list = as_list(covariates)
    p = build_panel(data, func=_FUNC, y=y, time=time, unit=unit, cohort=cohort, covariates=cov_list,
                    weights=weights, cluster=cluster if cluster != unit else None, require_control="none",
                    check_duplicates=panel)
    mode = "rc" if not panel else ("unbalanced" if allow_unbalanced else "panel")
    cl = cluster if (cluster is not None and cluster != unit) else None
    cs = prepare(p, func=_FUNC, control=control, anticipation=anticipation, mode=mode, cluster=cl)
    cells, plan_notes = plan_cells(cs, control=control, base_period=base_period, anticipation=anticipation)
    if cs.X is None:
        est = estimate_sums(cs, cells)
    else:
        est = estimate_covariates(cs, cells, method)
    if not est.cells:
        raise DesignError(f"{_FUNC}: no ATT(g,t) could be estimated ({len(est.skipped)} cells skipped: "
                          f"{est.skipped[0][1] if est.skipped else 'none planned'}). Fix: check that every cohort "
                          f"has a comparison group observed in its periods.")
    P = cs.periods
    labels = cs.period_labels
    group = np.array([c.g for c in est.cells])
    tvals = np.array([P[c.t] for c in est.cells])
    bvals = np.array([P[c.b] for c in est.cells])
    reference = np.array([c.reference for c in est.cells])
    cohort_code = np.array([c.g_code for c in est.cells], dtype=int)
    store = est.store
    n = store.n
    Wg = np.array([cs.unit_weight[cs.block[g]:cs.block[g + 1]].sum() for g in range(store.n_cohorts)])
    pg_cohort = Wg / n
    clustered = cl is not None
    se_type = "analytic" if n_boot == 0 else bootstrap_weights
    state = CSState(store=store, group=group, time=tvals, att=est.att, cohort_code=cohort_code,
                    reference=reference, pg_cohort=pg_cohort, se_type=se_type, clustered=clustered,
                    n_bootstrap=n_boot, seed=0 if seed is None and bootstrap_weights == "gaussian" else seed)
    if se_type in ("rademacher", "mammen"):
        rng = np.random.default_rng(seed)
        if clustered:
            p_cluster, p_cohort, zp, _ = store.cluster_pairs()
            state.basis = mb.pair_sums(p_cluster, p_cohort, zp, store.n_clusters, store.n_cohorts, n_boot, se_type,
                                       rng)
            state.scale = 1.0 / n
        else:
            state.basis = mb.block_sums(store.Z, store.block, n_boot, se_type, rng)
            state.scale = 1.0 / n
    K = est.att.shape[0]
    if not np.any(group <= tvals):
        last = _lab(labels, P, P[-1])
        raise DesignError(
            f"{_FUNC}: no post-treatment ATT(g,t) (t >= g) can be estimated: after the sample rules the last period "
            f"is {last} and no cohort left is observed from its treatment on with a comparison group "
            f"(cohorts: {', '.join(_lab(labels, P, g) for g in np.unique(group))}; anticipation={anticipation}; "
            f"see the notes and dropped rows of the sample). Fix: add never-treated units or later periods, or "
            f"lower anticipation."
        )
    simple = aggregate("simple", group=group, time=tvals, att=est.att, cohort_code=cohort_code,
                       reference=reference, pg_cohort=pg_cohort, func=_FUNC)
    A = np.column_stack([np.eye(K), simple.A])
    U = np.column_stack([np.zeros((store.n_cohorts, K)), simple.U])
    coef = np.append(est.att, simple.estimate)
    band_idx = np.flatnonzero(~reference)
    inference_est = compute_inference(state, A, U, coef, band_idx)
    V_analytic = store.vcov(np.eye(K), None, clustered=clustered)
    terms = tuple(f"ATT({_lab(labels, P, g)},{_lab(labels, P, P[c.t])})" for g, c in zip(group, est.cells, strict=True))
    pretest = _pretest(est.att, V_analytic, group, tvals, terms)
    terms = (*terms, "ATT (simple)")
    unit_name = unit if unit is not None else "unit"
    if clustered:
        cluster_desc = f"clustered by {cl}"
    elif cs.mode == "rc":
        cluster_desc = "independent observations (repeated cross sections)"
    else:
        cluster_desc = f"clustered by unit ({unit_name})"
    if se_type == "analytic":
        vcov_type = f"analytic (influence function), {cluster_desc}"
    elif se_type == "gaussian":
        vcov_type = (f"analytic (influence function), {cluster_desc}; gaussian multipliers (exact: sup-t critical "
                     f"value from {max(n_boot, 100)} N(0, corr) draws, seed {state.seed})")
    else:
        seeded = "unseeded" if seed is None else f"seed {seed}"
        vcov_type = (f"multiplier bootstrap ({se_type}, {n_boot} draws, {seeded}), {cluster_desc}; "
                     f"SE = IQR / 1.349 (did)")
    band = ("pointwise" if n_boot == 0 else
            f"uniform (sup-t) over the {band_idx.size} ATT(g,t); headline pointwise")
    details = [f"Wald pre-test of pre-treatment ATT(g,t) = 0: {_fmt_pretest(pretest)}"]
    cl_names: tuple[str, ...] = (str(cl),) if clustered else (() if cs.mode == "rc" else (unit_name,))
    inference = Inference(vcov_type=vcov_type, n_clusters=(cs.n_clusters,) if cl_names else (),
                          cluster_names=cl_names, band=band, details=tuple(details))
    state.inference = inference
    state.unit_labels = cs.unit_labels
    state.cell_terms = terms[:-1]
    state.unit_name = None if cs.mode == "rc" else unit_name
    state.cluster_name = cl
    design = _design(y=y, control=control, base_period=base_period, method=method, covariates=cov_list,
                     anticipation=anticipation, mode=cs.mode, weights=weights, n_cells=K)
    notes = list(plan_notes)
    for c, why in est.skipped:
        notes.append(f"ATT({_lab(labels, P, c.g)},{_lab(labels, P, P[c.t])}) not estimated: {why}")
    extras: dict[str, Any] = {"pretest": pretest, "n": n, "skipped": tuple((c.g, float(P[c.t])) for c, _ in
                                                                          est.skipped)}
    if band.startswith("uniform"):
        extras["_band"] = (state, inference_est, band_idx)
    term_info = {"group": np.append(group, np.nan), "time": np.append(tvals, np.nan),
                 "event_time": np.append(tvals - group, np.nan), "base_period": np.append(bvals, np.nan)}
    return ATTgtResult(estimator="Callaway & Sant'Anna (2021) ATT(g,t)", terms=terms, coef=coef,
                       vcov_matrix=inference_est.vcov, headline="ATT (simple)", inference=inference,
                       sample=cs.report, design=design, term_info=term_info, extras=extras, notes=tuple(notes),
                       _state=state, _source=CSVcovSource(state, A, U, inference.details))


def _lab(labels: np.ndarray, periods: np.ndarray, value: float) -> str:
    """A period (or cohort) value as the user wrote it: a number, or the date of a date-like time column."""
    if labels.dtype.kind in "fiu":
        return f"{float(value):g}"
    pos = int(np.clip(np.searchsorted(periods, value), 0, labels.shape[0] - 1))
    return str(labels[pos])


def _pretest(att: np.ndarray, V: np.ndarray, group: np.ndarray, time: np.ndarray,
             names: Sequence[str]) -> WaldTest | None:
    """``did``'s Wald pre-test: all ATT(g,t) with ``g > t`` and a non-zero SE are zero (analytic covariance)."""
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    pre = np.flatnonzero((group > time) & (se > np.sqrt(np.finfo(float).eps) * 10))
    if pre.size == 0:
        return None
    Vp = V[np.ix_(pre, pre)]
    if not np.all(np.isfinite(Vp)) or 1.0 / np.linalg.cond(Vp, 1) <= np.finfo(float).eps:
        return None
    b = att[pre]
    stat = float(b @ np.linalg.solve(Vp, b))
    q = int(pre.size)
    pval = float(stats.chi2.sf(stat, q))
    return WaldTest(statistic=stat, df=q, p_value=pval, f_statistic=stat / q, f_df=None, f_p_value=pval,
                    terms=tuple(names[int(k)] for k in pre), label="Wald pre-test")


def _fmt_pretest(w: WaldTest | None) -> str:
    if w is None:
        return "not available (no pre-treatment cells, or singular covariance)"
    return f"chi2({w.df}) = {w.statistic:.4f}, p = {w.p_value:.5f}"


def _design(*, y: str, control: str, base_period: str, method: str, covariates: list[str], anticipation: int,
            mode: str, weights: str | None, n_cells: int) -> tuple[tuple[str, str], ...]:
    ctrl = ("never treated" if control == "never" else
            "not yet treated (never treated and cohorts first treated after max(t, base) + anticipation)")
    base = ("varying (pre-treatment cells: t - 1; post-treatment: g - 1 - anticipation)" if base_period == "varying"
            else "universal (g - 1 - anticipation for every cell; that cell is 0)")
    methods = {"dr": "doubly robust (DRDID::drdid_panel / drdid_rc)",
               "ipw": "inverse probability weighting, normalised (std_ipw_did)",
               "reg": "outcome regression (reg_did)"}
    meth = methods[method] if covariates else f"{method}: without covariates dr = ipw = reg (cell means)"
    data_desc = {"panel": "balanced panel", "unbalanced": "unbalanced panel (repeated-cross-section estimators, "
                 "influence functions summed by unit)", "rc": "repeated cross sections"}[mode]
    return (
        ("Estimator", "Callaway & Sant'Anna (2021) group-time ATT"),
        ("Outcome", y),
        ("Control group", ctrl),
        ("Base period", base),
        ("Anticipation", f"{anticipation} period(s)"),
        ("Estimation method", meth),
        ("Covariates", ", ".join(covariates) if covariates else "none"),
        ("Data", data_desc),
        ("Weights", weights or "none"),
        ("ATT(g,t) cells", str(n_cells)),
    )
