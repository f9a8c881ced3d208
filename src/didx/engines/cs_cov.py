"""Callaway & Sant'Anna ``att_gt`` with covariates through the engines (``dr``, ``ipw``, ``reg``).

In memory, each ATT(g,t) cell calls a Sant'Anna-Zhao 2x2 estimator (:func:`didx.estimators.drdid.panel.panel_cell`)
on the units of cohort ``g`` and of its comparison cohorts, with the outcome change ``dy = y_t - y_b`` and the
covariates (intercept first) of period ``min(t, b)``. Every ingredient of those estimators is a sum over units,
and units enter through their cohort only, so here everything is a GROUP BY cohort in the engine:

1. the rows with a missing or infinite covariate, counted by reason in the in-memory order and the units they
   leave with no row by the last reason (:func:`didx.engines.regression_cov.prepare`, as ``twfe`` does); every
   later query reads the input without them (a derived table), so the sample rules below see the units they leave
   with gaps (a balanced panel drops those, counted; ``allow_unbalanced=True`` keeps them), as in memory;
2. the unit moments of :mod:`didx.engines.cs` (the sample rules, the cell plan; no covariates yet);
3. per period, the covariates' means (to centre them);
4. by cohort, ``X'X`` and, per cell, ``X'dy`` (:func:`~didx.engines.plan_cov.group_sums_sql`): the outcome
   regressions of ``reg`` and ``dr`` are solved from them in Python;
5. ``ipw`` and ``dr``: each cell's logit propensity score by Newton-Raphson (the in-memory
   :func:`~didx.estimators.drdid.nuisance.fit_logit`: the same start, step halving and stopping rule), every
   iteration of every cell's logit in ONE aggregation (:func:`~didx.engines.plan_cov.logit_sql`), then one
   aggregation at the final scores (the Hessian and the odds-weighted sums);
6. the influence function of every cell is then an expression of a unit's outcomes, covariates and propensity
   score with known coefficients; one aggregation per cohort (:func:`~didx.engines.plan_cov.gram_sql`, over the
   cells that involve it) returns, by cluster if any, the sums of those functions and of their products: the
   per-cohort Gram matrices (and cluster x cohort sums) of the in-memory store's features ``(1, w, psi_1, ..)``.

Aggregations, clustered SEs, the Gaussian and cluster-level multiplier bootstraps and uniform bands then run
unchanged. The balanced-panel cells: :mod:`didx.engines.cs_cov_panel`; unbalanced panels (``allow_unbalanced=True``
with gaps): :mod:`didx.engines.cs_cov_rc`. Limits: no weights, at most
:data:`~didx.engines.cs_cov_panel.MAX_SUMS` sums in one query (about 200 ATT(g,t) cells); beyond them an error
names the in-memory route.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import numpy as np

from didx.engines import plan
from didx.engines import plan_cov as pc
from didx.engines.cs import FUNC, EngineCells, _prepare, refuse
from didx.engines.cs_cov_panel import _Estimator
from didx.engines.cs_cov_rc import RCEstimator
from didx.engines.regression_cov import prepare
from didx.engines.source import EngineInput
from didx.engines.stats import Request, unit_moments
from didx.estimators.cs.cells import plan_cells
from didx.estimators.cs.data import CSData


def engine_cells_cov(src: EngineInput, opts: Any, *, y: str, unit: str | None, time: str,
                     cohort: str) -> EngineCells:
    """:func:`didx.engines.cs.engine_cells` with covariates (see the module docstring)."""
    refuse(opts)
    assert unit is not None
    # rows with a missing or infinite covariate: counted by reason (in the in-memory order) and left out of every
    # later query, as the twfe path does; the sample rules then see the units they leave with gaps
    src_in = src
    src, cov = prepare(src, FUNC, y=y, unit=unit, time=time, cohort=cohort, cluster=opts.cluster,
                       covariates=list(opts.covariates))
    covs = cov.names
    m = cov.fix_report(unit_moments(src, Request(func=FUNC, y=y, unit=unit, time=time, cohort=cohort,
                                                 cluster=opts.cluster)))
    first = float(m.periods[0])
    pass1_cohorts = m.cohort_values
    m, data = _prepare(m, opts)
    balanced = data.mode == "panel"
    data = _small_cohort_note(data, len(covs))
    cells, notes = plan_cells(data, control=opts.control_group, base_period=opts.base_period,
                              anticipation=opts.anticipation)
    roles = cov.roles
    centre = _centres(src, roles, covs, data.periods)
    y_centre = None
    if not balanced:
        # rows of different periods share a regression: one centre per covariate (an affine change of it); the
        # outcome of each period on its mean (every estimate and influence function of the repeated-cross-section
        # estimators is invariant to a shift of the outcome by period, and their sums are then accurate when its
        # level is large against its spread)
        centre[:] = centre.mean(axis=1, keepdims=True)
        cnt = m.cell_counts().sum(axis=0)
        y_centre = (m.cell_means() * m.cell_counts()).sum(axis=0) / np.where(cnt > 0, cnt, 1)
    active = [c for c in cells if not c.reference and c.controls]
    # the covariates of period min(t, b) (balanced), of both periods (unbalanced: every row its own covariates)
    x_periods = tuple(sorted({p for c in active for p in ((min(c.t, c.b),) if balanced else (c.t, c.b))}))
    cmap = _cohort_map(pass1_cohorts, data.cohort_values, first + opts.anticipation)
    up = pc.UnitPlan(roles=roles, covariates=covs, periods=data.periods, x_periods=x_periods, centre=centre,
                     balanced=balanced, y_centre=y_centre, **cmap)
    units = pc.units_sql(up, src.quote, src.table)
    cached = _cache(src, units, own_connection=src_in.table == "didx_input")
    try:
        kind = _Estimator if balanced else RCEstimator
        est = kind(src=src, units=cached or units, data=data, covs=covs, method=opts.est_method,
                   cluster=opts.cluster)
        return EngineCells(data=data, cells=est.run(cells), notes=notes, engine=src)
    finally:
        if cached is not None:
            _uncache(src, cached)


def _cache(src: EngineInput, units: str, *, own_connection: bool) -> str | None:
    """Keep the unit pivot that every later query starts from: a cached view in Spark, a temporary table in a
    DuckDB connection of a file input (``own_connection``; a relation's ``query`` takes one statement, so there
    it is recomputed)."""
    name = "didx_units_" + uuid.uuid4().hex[:8]
    if src.engine == "spark":
        src.run(f"CACHE TABLE {name} AS SELECT * FROM {units}")
    elif own_connection:
        src.run(f"CREATE TEMP TABLE {name} AS SELECT * FROM {units}; SELECT 1 AS ok")
    else:
        return None
    return name


def _uncache(src: EngineInput, name: str) -> None:
    if src.engine == "spark":
        src.run(f"UNCACHE TABLE IF EXISTS {name}")
        src.run(f"DROP VIEW IF EXISTS {name}")
    else:
        src.run(f"DROP TABLE IF EXISTS {name}; SELECT 1 AS ok")


def _small_cohort_note(data: CSData, p: int) -> CSData:
    """The in-memory note on small cohorts uses ``p + 5`` units (p covariates), as ``did`` warns."""
    notes = list(data.report.notes)
    at = next((i for i, s in enumerate(notes) if s.startswith("Small cohorts (fewer than 5 units")), len(notes))
    if at < len(notes):
        notes.pop(at)
    sizes = data.cohort_size()
    small = [(c, s) for c, s in zip(data.cohort_values, sizes, strict=True) if s < p + 5]
    if small:
        notes.insert(at, f"Small cohorts (fewer than {p + 5} units, as did warns): "
                     + ", ".join(f"{'never' if not np.isfinite(c) else f'{c:g}'} ({int(s)} units)" for c, s in small))
    return dataclasses.replace(data, report=dataclasses.replace(data.report, notes=tuple(notes)))


def _centres(src: EngineInput, roles: plan.Roles, covs: tuple[str, ...], periods: np.ndarray) -> np.ndarray:
    """Covariate means per (covariate, final period), over the input without the rows :func:`prepare` dropped."""
    out = src.run(pc.covariate_check_sql(roles, src.quote, src.table, covs))
    t = np.asarray(out["t"], dtype=float)
    assert np.nan_to_num(np.asarray(out["bad"], dtype=float)).sum() == 0  # prepare's table has none left
    n = np.asarray(out["n"], dtype=float)
    centre = np.zeros((len(covs), periods.shape[0]))
    pos = {float(v): i for i, v in enumerate(t)}
    for s, v in enumerate(periods):
        i = pos.get(float(v))
        if i is None or n[i] == 0:
            continue
        for j in range(len(covs)):
            centre[j, s] = float(out[f"sx{j}"][i]) / n[i]
    return centre


def _cohort_map(pass1: np.ndarray, final: np.ndarray, threshold: float) -> dict[str, Any]:
    """Raw cohort value -> final cohort code: treated values kept by the sample rules keep their place; the last
    cohort turned comparison group (no never-treated units) and every never-treated coding map to the final
    never code; cohorts treated by the first period (and anticipation) are dropped (-1)."""
    never = int(np.flatnonzero(~np.isfinite(final))[0]) if (~np.isfinite(final)).any() else -1
    treated: list[tuple[float, int]] = []
    for v in pass1[np.isfinite(pass1)]:
        hit = np.flatnonzero(final == v)
        if hit.size:
            treated.append((float(v), int(hit[0])))
        elif v <= threshold:
            treated.append((float(v), -1))
        else:  # the recoded last cohort, or a cohort none of whose units is balanced (filtered by nobs)
            treated.append((float(v), never))
    return {"treated": tuple(treated), "never": never}


