"""Callaway & Sant'Anna (2021): group-time average treatment effects ATT(g,t) and their aggregations.

For each cohort ``g`` (units first treated at ``g``) and period ``t``, ATT(g,t) is a 2x2 difference in
differences between the cohort and a comparison group (never-treated units, or units not yet treated), from a
base period ``b`` (``g - 1 - anticipation`` for post-treatment periods):

    ATT(g,t) = E[Y_t - Y_b | G = g] - E[Y_t - Y_b | C]

(with covariates, the doubly robust, IPW or regression 2x2 estimators of Sant'Anna & Zhao 2020 for each cell).
Every estimate carries its influence function, so aggregations (``result.aggregate``), clustering (also after the
fit: ``result.with_vcov(cluster=...)``), the multiplier bootstrap and uniform bands are computed without refitting.
Without covariates all of it reduces to cohort x period sums and per-cohort T x T sums of products; no n x K
influence-function matrix is formed (``shared/design/SCALE.md``). :func:`from_panel` estimates from an already
validated :class:`didx._panel.Panel` (no re-reading of the frame).

Numerically identical to R's ``did`` 2.5.1 (``att_gt`` + ``aggte``): ATT(g,t), analytic SEs, the Wald pre-test
and all four aggregations with their SEs (tests/reference/callaway_santanna.json).

Reference: Callaway, B. and Sant'Anna, P. H. C. (2021), "Difference-in-Differences with multiple time periods",
Journal of Econometrics 225(2), 200-230.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._progress import check_progress
from didx._validate import as_list, check_option
from didx.engines.source import engine_input
from didx.estimators.cs.aggregate import aggregate
from didx.estimators.cs.cells import CellEstimates, estimate_covariates, estimate_sums, plan_cells
from didx.estimators.cs.data import CSData, prepare
from didx.estimators.cs.result import (
    ATTgtResult,
    CSAggregateResult,
    CSChoice,
    CSEventStudyResult,
    CSFit,
    CSSource,
)
from didx.estimators.drdid.estimator import check_distinct_roles
from didx.inference import multiplier as mb

if TYPE_CHECKING:
    from didx.engines.cs import EngineCells

__all__ = ["ATTgtResult", "CSAggregateResult", "CSEventStudyResult", "att_gt", "from_panel"]

_FUNC = "att_gt"


@dataclass(frozen=True)
class _Options:
    """The validated options of :func:`att_gt` / :func:`from_panel` (column names for the result's text)."""

    control_group: str
    base_period: str
    est_method: str
    anticipation: int
    cluster: str | None  # coarser than units (None: by unit / observation)
    mode: str  # "panel" | "unbalanced" | "rc"
    n_bootstrap: int
    multiplier: str
    seed: int | None
    y: str
    unit: str | None
    covariates: tuple[str, ...]
    weights: str | None
    progress: bool = True  # the multiplier bootstrap's progress bar (when interactive)


def att_gt(
    data: Any,
    *,
    y: str,
    unit: str | None = None,
    time: str,
    cohort: str,
    control_group: str = "never",
    base_period: str = "varying",
    est_method: str = "dr",
    covariates: str | Sequence[str] | None = None,
    anticipation: int = 0,
    weights: str | None = None,
    cluster: str | None = None,
    panel: bool = True,
    allow_unbalanced: bool = False,
    n_bootstrap: int | None = 0,
    multiplier: str = "rademacher",
    seed: int | None = None,
    progress: bool = True,
) -> ATTgtResult:
    """Group-time average treatment effects (Callaway & Sant'Anna 2021), as R's ``did::att_gt``.

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...), long format (one row per unit and period).
    y, unit, time : outcome, unit identifier and period columns (no ``unit`` with ``panel=False``).
    cohort : first treated period per unit (one of the periods); 0, NaN, inf or a period after the last one mean
        never treated.
    control_group : ``"never"`` (never-treated units) or ``"not_yet"`` (also units first treated after
        ``max(t, b) + anticipation``). With no never-treated units and ``"not_yet"``, the last cohort becomes
        the comparison group and later periods are dropped (as ``did``).
    base_period : ``"varying"`` (pre-treatment cells compare consecutive periods) or ``"universal"`` (every cell
        uses ``g - 1 - anticipation``; that cell is reported as 0).
    est_method : ``"dr"`` (doubly robust, ``DRDID::drdid_panel``), ``"ipw"`` or ``"reg"``. Without covariates
        all three coincide (the cohort x period mean formula).
    covariates : columns of the conditional parallel-trends assumption (taken at the earlier of t and b).
    anticipation : periods of anticipation ``delta`` (base period ``g - 1 - delta``).
    weights : sampling weights column (constant within unit).
    cluster : a column coarser than units (e.g. state) to cluster the SEs on; units are always clusters.
    panel : False for repeated cross sections (every row its own observation).
    allow_unbalanced : keep units not observed in every period (``did``'s ``allow_unbalanced_panel``: the
        repeated-cross-section estimators, influence functions summed by unit); default drops them (reported).
    n_bootstrap : multiplier-bootstrap draws (0 or None: analytic SEs and pointwise intervals).
    multiplier : the bootstrap multipliers: ``"rademacher"`` (``did``'s: ``BMisc::multiplier_bootstrap`` draws
        Rademacher weights), ``"mammen"`` or ``"gaussian"`` (exact: analytic SEs, sup-t critical value simulated
        from the covariance).
    seed : seed of the bootstrap.
    progress : a progress bar over the multiplier bootstrap when the session is interactive (:mod:`didx._progress`);
        False silences it.

    Returns
    -------
    ATTgtResult : ATT(g,t) terms plus the headline ``ATT (simple)``; ``.aggregate(kind)``, ``.pretest``,
    ``.with_vcov(cluster=...)``, ``.influence_functions()``.
    """
    opts = _check_options(control_group=control_group, base_period=base_period, est_method=est_method,
                          anticipation=anticipation, cluster=cluster, panel=panel, unit=unit,
                          allow_unbalanced=allow_unbalanced, n_bootstrap=n_bootstrap, multiplier=multiplier,
                          seed=seed, y=y, covariates=as_list(covariates), weights=weights,
                          progress=progress)
    check_distinct_roles(_FUNC, {"y": y, "unit": unit, "time": time, "cohort": cohort})
    if (src := engine_input(data, _FUNC)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.cs import engine_cells, with_engine
        from didx.engines.cs_cov import engine_cells_cov

        run = engine_cells_cov if opts.covariates else engine_cells
        cells = run(src, opts, y=y, unit=unit, time=time, cohort=cohort)
        return with_engine(_assemble(_estimate(cells, opts), opts), src)
    held = [build_panel(data, func=_FUNC, y=y, time=time, unit=unit, cohort=cohort, covariates=list(opts.covariates),
                        weights=weights, cluster=opts.cluster, require_control="none", check_duplicates=panel,
                        derive_treat=False)]
    return _assemble(_estimate_once(held, opts), opts)


def from_panel(
    panel: Panel,
    *,
    control_group: str = "never",
    base_period: str = "varying",
    est_method: str = "dr",
    anticipation: int = 0,
    cluster: str | None = None,
    allow_unbalanced: bool = False,
    n_bootstrap: int | None = 0,
    multiplier: str = "rademacher",
    seed: int | None = None,
    progress: bool = True,
) -> ATTgtResult:
    """:func:`att_gt` on an already validated panel (no re-reading of the data frame).

    ``panel`` comes from :func:`didx._panel.build_panel` with ``cohort=`` (and ``require_control="none"``, as
    ``att_gt`` builds it); its ``unit`` decides panel data (given) or repeated cross sections (None), and its
    covariates, weights and outcome are used. ``cluster`` must be the unit or a column the panel was built with
    (``build_panel(..., cluster=...)``). The other options are those of :func:`att_gt`.
    """
    if not isinstance(panel, Panel):
        raise InvalidOptionError(f"from_panel: panel must be a didx._panel.Panel (from build_panel); got "
                                 f"{type(panel).__name__}. Fix: call att_gt(data, ...) on a data frame.")
    if panel.cohort is None:
        raise InvalidOptionError("from_panel: the panel has no cohort column. Fix: build it with "
                                 "build_panel(..., cohort=...).")
    names = panel.names
    unit = names.get("unit")
    opts = _check_options(control_group=control_group, base_period=base_period, est_method=est_method,
                          anticipation=anticipation, cluster=cluster, panel=panel.unit is not None, unit=unit,
                          allow_unbalanced=allow_unbalanced, n_bootstrap=n_bootstrap, multiplier=multiplier,
                          seed=seed, y=str(names.get("y", "y")), covariates=list(panel.covariate_names),
                          weights=names.get("weights"), progress=progress)
    if opts.cluster is not None and opts.cluster not in panel.codes:
        raise InvalidOptionError(
            f"from_panel: cluster={opts.cluster!r} is not among the panel's cluster columns "
            f"({sorted(panel.codes) or 'none'}). Fix: build the panel with build_panel(..., cluster={opts.cluster!r})."
        )
    return _assemble(_estimate(panel, opts), opts)


# ----------------------------------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise InvalidOptionError(
            f"The {name!r} parameter of {_FUNC} must be an integer >= {minimum}. Got {value!r} instead."
        )
    return int(value)


def _check_options(*, control_group: str, base_period: str, est_method: str, anticipation: Any, cluster: Any,
                   panel: bool, unit: str | None, allow_unbalanced: bool, n_bootstrap: Any, multiplier: str,
                   seed: Any, y: str, covariates: list[str], weights: str | None,
                   progress: Any = True) -> _Options:
    control_group = check_option(_FUNC, "control_group", control_group, ("never", "not_yet"))
    base_period = check_option(_FUNC, "base_period", base_period, ("varying", "universal"))
    est_method = check_option(_FUNC, "est_method", est_method, ("dr", "ipw", "reg"))
    multiplier = check_option(_FUNC, "multiplier", multiplier, mb.MULTIPLIERS)
    anticipation = _check_int("anticipation", anticipation, 0)
    n_boot = 0 if n_bootstrap is None else _check_int("n_bootstrap", n_bootstrap, 0)
    seed = None if seed is None else _check_int("seed", seed, 0)
    if 0 < n_boot < 100:
        raise InvalidOptionError(
            f"The 'n_bootstrap' parameter of {_FUNC} must be 0 (analytic SEs) or at least 100 draws (e.g. 999). "
            f"Got {n_boot}."
        )
    if n_boot == 0 and (multiplier != "rademacher" or seed is not None):
        given = f"multiplier={multiplier!r}" if multiplier != "rademacher" else f"seed={seed!r}"
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
    mode = "rc" if not panel else ("unbalanced" if allow_unbalanced else "panel")
    return _Options(control_group=control_group, base_period=base_period, est_method=est_method,
                    anticipation=anticipation, cluster=cluster if cluster != unit else None, mode=mode,
                    n_bootstrap=n_boot, multiplier=multiplier, seed=seed, y=y, unit=unit,
                    covariates=tuple(covariates), weights=weights, progress=check_progress(_FUNC, progress))


# ----------------------------------------------------------------------------------------------- estimation
@dataclass(frozen=True, eq=False)
class _Estimated:
    """What estimation hands to result assembly."""

    data: CSData
    cells: CellEstimates
    plan_notes: list[str]
    fit: CSFit


def _estimate_once(holder: list[Panel], opts: _Options) -> _Estimated:
    """:func:`_estimate` on the only reference to a panel (``holder``, emptied): the panel's arrays that the
    prepared data do not share (the per-row cohort) are freed before the (n_units, T + 2) features are made, which
    lowers the peak memory (and the cost of first-touching fresh pages) of ``att_gt``."""
    return _estimate(holder.pop(), opts)


def _estimate(p: Panel | EngineCells, opts: _Options) -> _Estimated:
    """Sample rules, cell plan, ATT(g,t) with their influence functions (or those of an engine), and the
    bootstrap sums."""
    if isinstance(p, Panel):
        cs = prepare(p, func=_FUNC, control=opts.control_group, anticipation=opts.anticipation, mode=opts.mode,
                     cluster=opts.cluster, grid=True)
        del p  # the last reference when called from _estimate_once
        cells, plan_notes = plan_cells(cs, control=opts.control_group, base_period=opts.base_period,
                                       anticipation=opts.anticipation)
        est = estimate_sums(cs, cells) if cs.X is None else estimate_covariates(cs, cells, opts.est_method)
    else:
        cs, est, plan_notes = p.data, p.cells, p.notes
    return fit_cells(cs, est, plan_notes, opts)


def fit_cells(cs: CSData, est: CellEstimates, plan_notes: list[str], opts: _Options, *, func: str = _FUNC,
              family: str = "Callaway & Sant'Anna (2021)", pre_period_key: str = "callaway_santanna") -> _Estimated:
    """From estimated ATT(g,t) cells (their influence-function store) to the fit every result of them shares:
    design checks, the multiplier-bootstrap sums and the :class:`CSFit`. Also used by estimators whose cells are
    ATT(g,t) of another design with the same influence-function store (triple differences, ``didx.ddd``)."""
    if not est.cells:
        raise DesignError(f"{func}: no ATT(g,t) could be estimated ({len(est.skipped)} cells skipped: "
                          f"{est.skipped[0][1] if est.skipped else 'none planned'}). Fix: check that every cohort "
                          f"has a comparison group observed in its periods.")
    P, labels = cs.periods, cs.period_labels
    group = np.array([c.g for c in est.cells])
    tvals = np.array([P[c.t] for c in est.cells])
    if not np.any(group <= tvals):
        raise DesignError(
            f"{func}: no post-treatment ATT(g,t) (t >= g) can be estimated: after the sample rules the last period "
            f"is {_lab(labels, P, P[-1])} and no cohort left is observed from its treatment on with a comparison "
            f"group (cohorts: {', '.join(_lab(labels, P, g) for g in np.unique(group))}; "
            f"anticipation={opts.anticipation}; see the notes and dropped rows of the sample). Fix: add "
            f"never-treated units or later periods, or lower anticipation."
        )
    store = est.store
    n = store.n
    Wg = np.array([cs.unit_weight[cs.block[g]:cs.block[g + 1]].sum() for g in range(store.n_cohorts)])
    n_boot = opts.n_bootstrap
    basis = None
    if n_boot and opts.multiplier in ("rademacher", "mammen"):
        rng = np.random.default_rng(opts.seed)
        if store.cluster is not None:
            p_cluster, p_cohort, zp, _ = store.cluster_pairs()
            basis = mb.pair_sums(p_cluster, p_cohort, zp, store.n_clusters, store.n_cohorts, n_boot,
                                 opts.multiplier, rng, progress=opts.progress)
        else:
            basis = mb.block_sums(store.Z, store.block, n_boot, opts.multiplier, rng, progress=opts.progress)
    compact = cs.unit_of_row()
    fit = CSFit(store=store, group=group, time=tvals, att=est.att,
                cohort_code=np.array([c.g_code for c in est.cells], dtype=int),
                reference=np.array([c.reference for c in est.cells]), pg_cohort=Wg / n,
                cell_terms=tuple(f"ATT({_lab(labels, P, c.g)},{_lab(labels, P, P[c.t])})" for c in est.cells),
                unit_labels=cs.unit_labels, mode=cs.mode, unit_name=None if cs.mode == "rc" else opts.unit,
                cluster_name=opts.cluster, base_period=opts.base_period, multiplier=opts.multiplier,
                n_bootstrap=n_boot,
                seed=0 if opts.seed is None and opts.multiplier == "gaussian" and n_boot else opts.seed,
                basis=basis, scale=1.0 / n, unit_of_row=compact, row_index=cs.row_index,
                n_input_rows=cs.n_input_rows, fingerprint=cs.fingerprint, family=family,
                pre_period_key=pre_period_key)
    return _Estimated(data=cs, cells=est, plan_notes=plan_notes, fit=fit)


# ----------------------------------------------------------------------------------------------- assembly
def _assemble(e: _Estimated, opts: _Options, *, func: str = _FUNC,
              estimator: str = "Callaway & Sant'Anna (2021) ATT(g,t)",
              design: tuple[tuple[str, str], ...] | None = None,
              result_type: type[ATTgtResult] = ATTgtResult) -> ATTgtResult:
    """The ATT(g,t) result: cells plus the simple aggregation as headline, with their covariance (``estimator``,
    ``design`` and ``result_type`` let another design with ATT(g,t) cells, e.g. ``didx.ddd``, reuse it)."""
    fit, cs = e.fit, e.data
    K = fit.n_cells
    simple = aggregate("simple", group=fit.group, time=fit.time, att=fit.att, cohort_code=fit.cohort_code,
                       reference=fit.reference, pg_cohort=fit.pg_cohort, func=func)
    A = np.column_stack([np.eye(K), simple.A])
    U = np.column_stack([np.zeros((fit.store.n_cohorts, K)), simple.U])
    band_idx = np.flatnonzero(~fit.reference)
    kind = "analytic" if opts.n_bootstrap == 0 else opts.multiplier
    source = CSSource(fit=fit, A=A, U=U, band_idx=band_idx,
                      band_text=f"the {band_idx.size} ATT(g,t); headline pointwise",
                      choice=CSChoice(kind, opts.cluster, fit.store))
    P, labels = cs.periods, cs.period_labels
    notes = list(e.plan_notes)
    for c, why in e.cells.skipped:
        notes.append(f"ATT({_lab(labels, P, c.g)},{_lab(labels, P, P[c.t])}) not estimated: {why}")
    bvals = np.array([P[c.b] for c in e.cells.cells])
    term_info = {"group": np.append(fit.group, np.nan), "time": np.append(fit.time, np.nan),
                 "event_time": np.append(fit.time - fit.group, np.nan), "base_period": np.append(bvals, np.nan)}
    extras: dict[str, Any] = {"n": fit.n_units,
                              "skipped": tuple((c.g, float(P[c.t])) for c, _ in e.cells.skipped)}
    return result_type(estimator=estimator, terms=(*fit.cell_terms, "ATT (simple)"),
                       coef=np.append(fit.att, simple.estimate), vcov_matrix=source.vcov(), headline="ATT (simple)",
                       inference=source.inference(), sample=cs.report,
                       design=_design(opts, cs.mode, K) if design is None else design,
                       term_info=term_info, extras=extras, notes=tuple(notes), _source=source)


def _lab(labels: np.ndarray, periods: np.ndarray, value: float) -> str:
    """A period (or cohort) value as the user wrote it: a number, or the date of a date-like time column."""
    if labels.dtype.kind in "fiu":
        return f"{float(value):g}"
    pos = int(np.clip(np.searchsorted(periods, value), 0, labels.shape[0] - 1))
    return str(labels[pos])


def _design(opts: _Options, mode: str, n_cells: int) -> tuple[tuple[str, str], ...]:
    covariates, base_period, method = opts.covariates, opts.base_period, opts.est_method
    ctrl = ("never treated" if opts.control_group == "never" else
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
        ("Outcome", opts.y),
        ("Control group", ctrl),
        ("Base period", base),
        ("Anticipation", f"{opts.anticipation} period(s)"),
        ("Estimation method", meth),
        ("Covariates", ", ".join(covariates) if covariates else "none"),
        ("Data", data_desc),
        ("Weights", opts.weights or "none"),
        ("ATT(g,t) cells", str(n_cells)),
    )
