"""Callaway & Sant'Anna ``att_gt`` (no covariates) from the engine's unit moments.

The engine returns, per (cohort, observation pattern[, cluster]), unit counts, sums of the centred outcomes and
their T x T sums of products (:mod:`didx.engines.stats`). Here ``did``'s sample rules (:mod:`didx.estimators.cs.data`)
are applied to those groups, the cells are planned and estimated by the in-memory code
(:func:`~didx.estimators.cs.cells.plan_cells`, :func:`~didx.estimators.cs.cells.panel_fill` /
:func:`~didx.estimators.cs.cells.rc_fill`), and the influence-function store gets its per-cohort Gram matrices
``M_g = sum_{i in g} z_i z_i'`` (and the cluster x cohort sums) computed from the moments instead of from unit
rows. Aggregations, clustered SEs, Gaussian and cluster-level multiplier bootstraps and uniform bands then run
unchanged. What needs unit rows is refused with the in-memory alternative: unit-level (Rademacher / Mammen)
bootstrap draws, ``influence_functions()``, clustering on a column not given at fit time, weights, repeated cross
sections. Covariates: :mod:`didx.engines.cs_cov`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._sample import Dropped
from didx._validate import cluster_count_check
from didx.engines.source import EngineInput
from didx.engines.stats import NEVER, Moments, Request, unit_moments
from didx.estimators.cs.cells import Cell, CellEstimates, _collect, panel_fill, plan_cells, rc_fill
from didx.estimators.cs.data import CSData
from didx.estimators.cs.result import CS_CAPABILITIES, CSSource
from didx.inference.contract import Capabilities, ClusterCodes
from didx.inference.if_store import IFStore
from didx.results.base import Result

FUNC = "att_gt"
ROWS_FIX = "pass an in-memory data frame (e.g. duckdb.read_parquet(path).df(), or spark_df.toPandas())"


@dataclass(frozen=True, eq=False)
class EngineCells:
    """What the estimator continues from: the prepared data (no rows), the estimated cells and the plan notes."""

    data: CSData
    cells: CellEstimates
    notes: list[str]
    engine: EngineInput


def refuse(opts: Any) -> None:
    """Options that need unit rows: a clear error naming the in-memory alternative."""
    what = None
    if opts.weights is not None:
        what = "sampling weights"
    elif opts.mode == "rc":
        what = "repeated cross sections (panel=False)"
    elif opts.n_bootstrap and opts.multiplier != "gaussian" and opts.cluster is None:
        what = (f"the unit-level {opts.multiplier} multiplier bootstrap (one draw per unit and replication; the "
                f"cluster-level bootstrap with cluster= and multiplier='gaussian' run in the engine)")
    if what is not None:
        raise InvalidOptionError(f"{FUNC}: {what} not available through the engines yet. Fix: {ROWS_FIX}.")


def engine_cells(src: EngineInput, opts: Any, *, y: str, unit: str | None, time: str, cohort: str) -> EngineCells:
    """Moments from the engine, ``did``'s sample rules, the cell plan and the cell estimates with their store."""
    refuse(opts)
    assert unit is not None
    m = unit_moments(src, Request(func=FUNC, y=y, unit=unit, time=time, cohort=cohort, cluster=opts.cluster))
    m, data = _prepare(m, opts)
    cells, notes = plan_cells(data, control=opts.control_group, base_period=opts.base_period,
                              anticipation=opts.anticipation)
    return EngineCells(data=data, cells=_estimate(m, data, cells), notes=notes, engine=src)


# ----------------------------------------------------------------------------------------------- sample rules
def _prepare(m: Moments, opts: Any) -> tuple[Moments, CSData]:
    """:func:`didx.estimators.cs.data.prepare` on the groups (same drops, notes and errors)."""
    anticipation, control = opts.anticipation, opts.control_group
    drops: list[Dropped] = []
    notes: list[str] = []

    def drop_groups(mask: np.ndarray, reason: str) -> None:
        nonlocal m
        if mask.any():
            drops.append(Dropped(reason=reason, n_rows=int(m.rows()[mask].sum()), n_units=int(m.n[mask].sum())))
            m = m.select(~mask)

    def drop_periods(drop: np.ndarray, reason: str) -> None:
        nonlocal m
        obs = m.obs()
        rows = int((m.n * obs[:, drop].sum(axis=1)).sum())
        if rows:
            gone = ~obs[:, ~drop].any(axis=1)
            drops.append(Dropped(reason=reason, n_rows=rows, n_units=int(m.n[gone].sum())))
            m = m.restrict(~drop)

    g_of = m.cohort_values
    first = m.periods[0]
    drop_groups(np.isfinite(g_of[m.gc]) & (g_of[m.gc] <= first + anticipation),
                f"already treated in the first period (cohort <= {first:g}{' + anticipation' if anticipation else ''})"
                f": no untreated period to compare")
    if not np.isfinite(g_of[m.gc]).any():
        raise DesignError(
            f"{FUNC}: no treated cohort is left after dropping units treated in the first period. ATT(g,t) needs "
            f"units first treated after the first period. Fix: check the cohort column and anticipation."
        )
    never_code = g_of.shape[0] - 1

    def no_never_treated(after_balancing: bool) -> None:
        nonlocal m
        finite = np.isfinite(g_of[m.gc]) & (m.gc != never_code)
        if (~finite).any() or not finite.any():
            return
        why = " after dropping the units not observed in every period" if after_balancing else ""
        if control == "never":
            fix = ("allow_unbalanced=True (keeps the units with gaps) or control='not_yet'" if after_balancing else
                   "control='not_yet' (units not yet treated; the last cohort then serves only as a comparison)")
            raise DesignError(f"{FUNC}: there are no never-treated units{why}, so control='never' has no comparison "
                              f"group. Fix: use {fix}.")
        gmax = float(np.max(g_of[m.gc]))
        drop_periods(m.periods >= gmax - anticipation,
                     f"periods >= the last cohort ({gmax:g}{' - anticipation' if anticipation else ''}): no units "
                     f"left untreated to compare with (no never-treated units{why})")
        m = dataclasses.replace(m, gc=np.where(g_of[m.gc] == gmax, never_code, m.gc))
        notes.append(f"No never-treated units{why}: cohort {gmax:g} serves as the comparison group (as did does), "
                     f"periods from {gmax - anticipation:g} on are dropped.")
        if not np.isfinite(g_of[m.gc][m.gc != never_code]).any():
            raise DesignError(f"{FUNC}: only one treated cohort and no never-treated units{why}: nothing to "
                              f"compare. Fix: add never-treated units or another cohort.")

    no_never_treated(after_balancing=False)
    mode = opts.mode
    present = m.obs().any(axis=0)
    gaps = m.obs()[:, present].sum(axis=1) < int(present.sum())
    if gaps.any():
        if mode == "panel":
            drop_groups(gaps, "not observed in every period (did balances the panel; allow_unbalanced=True keeps them)")
            no_never_treated(after_balancing=True)
        else:
            notes.append(f"Unbalanced panel: {int(m.n[gaps].sum())} units are not observed in every period; "
                         f"repeated-cross-section estimators with influence functions summed by unit.")
    elif mode == "unbalanced":
        mode = "panel"
        notes.append("allow_unbalanced=True but the panel is balanced: the panel estimators are used.")
    if m.gc.size == 0:
        raise DesignError(f"{FUNC}: no rows left after the sample rules. Fix: check the panel's balance.")
    build_periods = m.periods
    m = m.compact_periods()
    if m.n_periods < 2:
        raise DesignError(f"{FUNC}: fewer than two periods left after the sample rules. Fix: check the data.")
    # cohorts present, in order (never treated last), re-coded
    used = np.unique(m.gc)
    values = np.where(used == never_code, NEVER, g_of[used])
    treated = values[np.isfinite(values)]
    off = treated[~np.isin(treated, build_periods)]
    if off.size:
        raise DataError(f"{FUNC}: the cohort value {off[0]:g} is not one of the periods. Fix: code the cohort as the "
                        f"first observed period in which the unit is treated.")
    m = dataclasses.replace(m, cohort_values=values, gc=np.searchsorted(used, m.gc))
    sizes = np.bincount(m.gc, weights=m.n, minlength=values.shape[0]).astype(np.int64)
    n_clusters = 0
    if opts.cluster is not None:
        assert m.cl is not None
        present_cl, cl = np.unique(m.cl, return_inverse=True)
        n_clusters = int(present_cl.shape[0])
        cluster_count_check(FUNC, opts.cluster, n_clusters)
        m = dataclasses.replace(m, cl=cl, n_clusters=n_clusters)
    small = [(c, s) for c, s in zip(values, sizes, strict=True) if s < 5]
    if small:
        notes.append("Small cohorts (fewer than 5 units, as did warns): "
                     + ", ".join(f"{'never' if not np.isfinite(c) else f'{c:g}'} ({int(s)} units)" for c, s in small))
    report = m.report.with_dropped(*drops).with_notes(*notes)
    report = dataclasses.replace(report, n_obs=int(m.rows().sum()), n_units=m.n_units, n_periods=m.n_periods,
                                 balanced=mode == "panel",
                                 n_units_with_gaps=0 if mode == "panel" else report.n_units_with_gaps)
    n = m.n_units
    block = np.concatenate([[0], np.cumsum(sizes)])
    empty_i = np.empty(0, dtype=np.int64)
    data = CSData(mode=mode, n_units=n, periods=m.periods, period_labels=m.labels, cohort_values=values,
                  unit_cohort=empty_i, block=block, unit_weight=np.broadcast_to(1.0, (n,)), row_unit=empty_i,
                  row_time=empty_i, y=np.empty(0), X=None, cluster=empty_i if opts.cluster is not None else None,
                  n_clusters=n_clusters or n, report=report, weighted=False, unit_labels=empty_i, row_index=None,
                  n_input_rows=report.n_input_rows, fingerprint=None, cluster_name=opts.cluster)
    return m, data


# ----------------------------------------------------------------------------------------------- estimation
class EngineStore(IFStore):
    """An influence-function store whose per-cohort Gram matrices (and cluster x cohort sums) came from the
    engine: no unit rows, so what needs them says so."""

    def influence(self, A: np.ndarray, U: np.ndarray | None = None) -> np.ndarray:
        raise InvalidOptionError(
            f"influence_functions(): the fit ran in an engine, which keeps only per-cohort sums (no unit rows). "
            f"Fix: {ROWS_FIX}."
        )

    def reclustered(self, cluster: np.ndarray | None, n_clusters: int) -> IFStore:
        raise InvalidOptionError(
            f"with_vcov(cluster=...): the fit ran in an engine, which kept the sums for its own clustering only. "
            f"Fix: refit with cluster= that column, or {ROWS_FIX}."
        )


def _features(m: Moments, mu: np.ndarray, balanced: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Per group: the sum of ``z_i`` (K, L) and of ``z_i z_i'`` (K, L, L), and L."""
    S, P = m.centred(mu)
    T = m.n_periods
    n = m.n.astype(np.float64)
    K = n.shape[0]
    o = m.obs().astype(np.float64)
    L = T + 2 if balanced else 2 * T + 2
    z = np.zeros((K, L))
    zz = np.zeros((K, L, L))
    z[:, 0] = z[:, 1] = n
    zz[:, :2, :2] = n[:, None, None]
    y0 = 2 if balanced else 2 + T
    z[:, y0:] = S
    zz[:, :2, y0:] = S[:, None, :]
    zz[:, y0:, :2] = S[:, :, None]
    zz[:, y0:, y0:] = P
    if not balanced:
        cnt = n[:, None] * o
        z[:, 2:2 + T] = cnt
        zz[:, :2, 2:2 + T] = cnt[:, None, :]
        zz[:, 2:2 + T, :2] = cnt[:, :, None]
        zz[:, 2:2 + T, 2:2 + T] = n[:, None, None] * o[:, :, None] * o[:, None, :]
        zz[:, 2:2 + T, y0:] = o[:, :, None] * S[:, None, :]
        zz[:, y0:, 2:2 + T] = S[:, :, None] * o[:, None, :]
    return z, zz, L


def _estimate(m: Moments, data: CSData, cells: list[Cell]) -> CellEstimates:
    balanced = data.mode == "panel"
    G = data.cohort_values.shape[0]
    n = data.n_units
    mu = m.cell_means()
    z, zz, L = _features(m, mu, balanced)
    gram = np.zeros((G, L, L))
    np.add.at(gram, m.gc, zz)
    if balanced:
        Wg = np.bincount(m.gc, weights=m.n, minlength=G).astype(np.float64)
        fill = panel_fill(n, Wg, mu)
    else:
        fill = rc_fill(n, m.cell_counts().astype(np.float64), mu)
    est = _collect(data, cells, np.empty((0, L)), fill)
    pairs = None
    if m.cl is not None:
        keys, inv = np.unique(m.cl.astype(np.int64) * G + m.gc, return_inverse=True)
        zp = np.zeros((keys.shape[0], L))
        np.add.at(zp, inv, z)
        p_cohort = keys % G
        Mc = np.zeros((G, L, L))
        for g in range(G):
            Zg = zp[p_cohort == g]
            Mc[g] = Zg.T @ Zg
        pairs = (keys // G, p_cohort, zp, Mc)
    store = EngineStore(Z=np.empty((0, L)), block=data.block, coef=est.store.coef, n=n, cluster=data.cluster,
                        n_clusters=data.n_clusters, _gram=gram, _pairs=pairs)
    return dataclasses.replace(est, store=store)


# ----------------------------------------------------------------------------------------------- the result
ENGINE_CAPABILITIES = dataclasses.replace(
    CS_CAPABILITIES, new_clusters=False,
    default="analytic influence-function SEs clustered as at fit time; the engine kept the sums for the unit and "
            "the fit's cluster= only",
)


@dataclass(frozen=True, eq=False)
class EngineCSSource(CSSource):
    """:class:`CSSource` of an engine fit: ``with_vcov`` offers the unit and the fit's ``cluster=`` only."""

    @property
    def capabilities(self) -> Capabilities:
        return ENGINE_CAPABILITIES

    @property
    def clusters(self) -> ClusterCodes:
        fit = self.fit
        stored = {str(k): np.empty(0, dtype=np.int64) for k in (fit.unit_name, fit.cluster_name) if k is not None}
        return ClusterCodes(stored, None, fit.n_input_rows, None)


def with_engine(res: Result, engine: EngineInput) -> Any:
    """The result with the engine named in its design and an engine covariance source."""
    src = res._source
    assert isinstance(src, CSSource)
    new_src = EngineCSSource(**{f.name: getattr(src, f.name) for f in dataclasses.fields(src)})
    return dataclasses.replace(res, design=(*res.design, ("Engine", engine.describe)), _source=new_src)
