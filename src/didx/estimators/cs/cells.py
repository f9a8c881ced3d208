"""The ATT(g,t) cells of Callaway & Sant'Anna (2021): which comparisons, and their estimates and influence functions.

Cell plan (R's ``did::compute.att_gt``): for each treated cohort ``g`` and period ``t``, the base period ``b`` is
``g - 1 - anticipation`` (the last period with ``period + anticipation < g``) for post-treatment periods
(``t >= g``) and for every period with ``base_period="universal"``; with ``"varying"`` pre-treatment periods
use ``b = t - 1``. The comparison group is the never-treated units, or with ``control_group="not_yet"`` also the
cohorts ``g' != g`` with ``g' > max(t, b) + anticipation``.

Without covariates every ATT(g,t) is a difference of cohort x period means,

    ATT(g,t) = (Ybar[g,t] - Ybar[g,b]) - (Ybar[C,t] - Ybar[C,b]),

(weighted by the sampling weights; ``Ybar[C,.]`` pools the comparison cohorts by size) and its influence
function is affine in the unit's outcomes: ``n w_i (dY_i - dYbar_g) / W_g`` for the cohort and
``-n w_i (dY_i - dYbar_C) / W_C`` for the comparisons (panel), or the row-level version for repeated cross
sections. With covariates each cell calls the Sant'Anna & Zhao (2020) estimators of
:mod:`didx.estimators.drdid.panel` (``dr``, ``ipw``, ``reg``), and the influence function of the ``n1`` units in
the cell is rescaled by ``n / n1`` as ``did`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from didx._errors import DidxError
from didx.estimators.cs.data import CSData
from didx.estimators.drdid.panel import panel_cell
from didx.estimators.drdid.rc import rc_cell
from didx.inference.if_store import IFStore


@dataclass(frozen=True)
class Cell:
    """One ATT(g,t) comparison: cohort value, period index, base period index, comparison cohorts (codes)."""

    g: float
    g_code: int
    t: int
    b: int
    controls: tuple[int, ...]
    reference: bool  # universal base period: the base period itself, ATT = 0 by construction


def plan_cells(data: CSData, *, control: str, base_period: str, anticipation: int) -> tuple[list[Cell], list[str]]:
    """All (g, t) cells in ``did``'s order (by cohort, then period), and notes on what could not be planned."""
    P = data.periods
    T = P.shape[0]
    cv = data.cohort_values
    sizes = data.cohort_size()
    never = [int(c) for c in np.flatnonzero(~np.isfinite(cv)) if sizes[c] > 0]
    cells: list[Cell] = []
    notes: list[str] = []
    for gc in np.flatnonzero(np.isfinite(cv)):
        g = float(cv[gc])
        pre = np.flatnonzero(P + anticipation < g)
        if pre.size == 0:
            notes.append(f"cohort {g:g}: no pre-treatment period; dropped (as did does)")
            continue
        pre_idx = int(pre[-1])
        t_range = range(1, T) if base_period == "varying" else range(T)
        for t in t_range:
            if base_period == "universal":
                b = pre_idx
            else:
                b = pre_idx if g <= P[t] else t - 1
            if control == "never":
                ctrl = never
            else:
                thr = P[max(t, b)] + anticipation
                ctrl = [int(c) for c in range(cv.shape[0])
                        if c != gc and sizes[c] > 0 and (not np.isfinite(cv[c]) or cv[c] > thr)]
            cells.append(Cell(g=g, g_code=int(gc), t=t, b=b, controls=tuple(ctrl),
                              reference=base_period == "universal" and t == b))
    return cells, notes


@dataclass
class CellEstimates:
    """Estimates of the planned cells that could be computed, with their influence-function store."""

    cells: list[Cell]
    att: np.ndarray
    store: IFStore
    skipped: list[tuple[Cell, str]]


# ----------------------------------------------------------------------------------------------- no covariates
def _wide(data: CSData) -> np.ndarray:
    Y = np.empty((data.n_units, data.n_periods))
    data.wide_outcome(Y)
    return Y


def estimate_sums(data: CSData, cells: list[Cell]) -> CellEstimates:
    """Every cell from cohort x period sums (no covariates); dr = ipw = reg here."""
    if data.mode == "panel":
        return _sums_panel(data, cells)
    return _sums_rc(data, cells)


def _sums_panel(data: CSData, cells: list[Cell]) -> CellEstimates:
    n, T = data.n_units, data.n_periods
    G = data.cohort_values.shape[0]
    block = data.block
    w = data.unit_weight
    L = T + 2
    Z = np.empty((n, L))
    Z[:, 0] = 1.0
    Z[:, 1] = w
    data.wide_outcome(Z[:, 2:])
    Wg = np.zeros(G)
    mu = np.zeros((G, T))
    for g in range(G):
        lo, hi = block[g], block[g + 1]
        if hi == lo:
            continue
        wg = w[lo:hi]
        Wg[g] = wg.sum()
        Yg = Z[lo:hi, 2:]
        mu[g] = (wg @ Yg) / Wg[g] if data.weighted else Yg.mean(axis=0)
        Yg -= mu[g]
        if data.weighted:
            Yg *= wg[:, None]
    return _collect(data, cells, Z, panel_fill(n, Wg, mu))


def panel_fill(n: int, Wg: np.ndarray, mu: np.ndarray) -> Callable[[Cell, np.ndarray], float | str]:
    """The balanced-panel cell: ATT from the cohort weights ``Wg`` and means ``mu`` (G, T), influence-function
    coefficients on ``z_i = (1, w_i, w_i y'_i1, ..)`` (also used by :mod:`didx.engines`)."""

    def fill(c: Cell, coef: np.ndarray) -> float | str:
        ctrl = list(c.controls)
        WC = float(Wg[ctrl].sum()) if ctrl else 0.0
        if WC <= 0:
            return "no comparison units"
        d_own = mu[c.g_code, c.t] - mu[c.g_code, c.b]
        d_ctrl = mu[ctrl, c.t] - mu[ctrl, c.b]
        d_C = float(Wg[ctrl] @ d_ctrl) / WC
        s = n / Wg[c.g_code]
        coef[c.g_code, 2 + c.t] += s
        coef[c.g_code, 2 + c.b] -= s
        sc = n / WC
        for j, h in enumerate(ctrl):
            coef[h, 2 + c.t] -= sc
            coef[h, 2 + c.b] += sc
            coef[h, 1] -= sc * (d_ctrl[j] - d_C)
        return float(d_own - d_C)

    return fill


def _sums_rc(data: CSData, cells: list[Cell]) -> CellEstimates:
    """Repeated cross sections and unbalanced panels: row-level cell means, IFs summed by unit."""
    n, T = data.n_units, data.n_periods
    G = data.cohort_values.shape[0]
    w_unit = data.unit_weight
    w = w_unit[data.row_unit]
    gcode = data.unit_cohort[data.row_unit]
    key = gcode * T + data.row_time
    Wc = np.bincount(key, weights=w, minlength=G * T).reshape(G, T)
    Sy = np.bincount(key, weights=w * data.y, minlength=G * T).reshape(G, T)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(Wc > 0, Sy / np.where(Wc > 0, Wc, 1.0), 0.0)
    L = 2 * T + 2
    Z = np.zeros((n, L))
    Z[:, 0] = 1.0
    Z[:, 1] = w_unit
    Z[data.row_unit, 2 + data.row_time] = w
    Z[data.row_unit, 2 + T + data.row_time] = w * (data.y - mu[gcode, data.row_time])
    return _collect(data, cells, Z, rc_fill(n, Wc, mu))


def rc_fill(n: int, Wc: np.ndarray, mu: np.ndarray) -> Callable[[Cell, np.ndarray], float | str]:
    """The repeated-cross-section / unbalanced cell from cohort x period weights ``Wc`` and means ``mu`` (G, T),
    coefficients on ``z_i = (1, w_i, w_i o_i., w_i o_i. y'_i.)`` (also used by :mod:`didx.engines`)."""
    T = Wc.shape[1]

    def fill(c: Cell, coef: np.ndarray) -> float | str:
        ctrl = list(c.controls)
        gc = c.g_code
        WCt = float(Wc[ctrl, c.t].sum()) if ctrl else 0.0
        WCb = float(Wc[ctrl, c.b].sum()) if ctrl else 0.0
        if Wc[gc, c.t] <= 0 or Wc[gc, c.b] <= 0:
            return "no treated observations in the period or base period"
        if WCt <= 0 or WCb <= 0:
            return "no comparison observations in the period or base period"
        muCt = float(Wc[ctrl, c.t] @ mu[ctrl, c.t]) / WCt
        muCb = float(Wc[ctrl, c.b] @ mu[ctrl, c.b]) / WCb
        coef[gc, 2 + T + c.t] += n / Wc[gc, c.t]
        coef[gc, 2 + T + c.b] -= n / Wc[gc, c.b]
        for h in ctrl:
            coef[h, 2 + T + c.t] -= n / WCt
            coef[h, 2 + c.t] -= n * (mu[h, c.t] - muCt) / WCt
            coef[h, 2 + T + c.b] += n / WCb
            coef[h, 2 + c.b] += n * (mu[h, c.b] - muCb) / WCb
        return float((mu[gc, c.t] - mu[gc, c.b]) - (muCt - muCb))

    return fill


def _collect(data: CSData, cells: list[Cell], Z: np.ndarray,
             fill: Callable[[Cell, np.ndarray], float | str]) -> CellEstimates:
    """Run ``fill(cell, coef)`` (writes the cell's (G, L) influence-function coefficients, returns its ATT or the
    reason it cannot be estimated) over the planned cells; reference cells (universal base) are 0 with no IF."""
    G, L = data.cohort_values.shape[0], Z.shape[1]
    kept: list[Cell] = []
    att: list[float] = []
    cols: list[np.ndarray] = []
    skipped: list[tuple[Cell, str]] = []
    for c in cells:
        coef = np.zeros((G, L))
        out = 0.0 if c.reference else fill(c, coef)
        if isinstance(out, str):
            skipped.append((c, out))
            continue
        kept.append(c)
        att.append(out)
        cols.append(coef)
    C = np.stack(cols, axis=2) if cols else np.zeros((G, L, 0))
    store = IFStore(Z=Z, block=data.block, coef=C, n=data.n_units, cluster=data.cluster, n_clusters=data.n_clusters)
    return CellEstimates(cells=kept, att=np.asarray(att, dtype=float), store=store, skipped=skipped)


# ----------------------------------------------------------------------------------------------- covariates
def estimate_covariates(data: CSData, cells: list[Cell], method: str) -> CellEstimates:
    """Every cell with the Sant'Anna-Zhao estimator ``method`` (one dense influence function per cell)."""
    assert data.X is not None
    n, T = data.n_units, data.n_periods
    block = data.block
    K = len(cells)
    # column-major: every cell writes one contiguous column
    Z = np.zeros((n, K + 2), order="F")
    Z[:, 0] = 1.0
    Z[:, 1] = data.unit_weight
    unit_code = data.unit_cohort
    weights = data.unit_weight if data.weighted else None
    if data.mode == "panel":
        Y = np.empty((T, n))
        Y[data.row_time, data.row_unit] = data.y
        p = data.X.shape[1]
        Xw = np.empty((T, n, p))
        Xw[data.row_time, data.row_unit, :] = data.X
    kept_idx: list[int] = []
    att: list[float] = []
    skipped: list[tuple[Cell, str]] = []
    for k, c in enumerate(cells):
        if c.reference:
            kept_idx.append(k)
            att.append(0.0)
            continue
        if not c.controls:
            skipped.append((c, "no comparison units"))
            continue
        codes = np.array([c.g_code, *c.controls])
        try:
            if data.mode == "panel":
                units = np.concatenate([np.arange(block[h], block[h + 1]) for h in codes])
                dy = Y[c.t][units] - Y[c.b][units]
                treated = unit_code[units] == c.g_code
                X = Xw[min(c.t, c.b)][units]
                wk = None if weights is None else weights[units]
                est, inf = panel_cell(dy, treated, X, wk, method)
                Z[units, 2 + k] = np.asarray(inf) * (n / units.shape[0])
            else:
                rows = np.flatnonzero(np.isin(data.row_time, (c.t, c.b))
                                      & np.isin(unit_code[data.row_unit], codes))
                ru = data.row_unit[rows]
                post = (data.row_time[rows] == c.t).astype(float)
                treated = unit_code[ru] == c.g_code
                if (not (treated & (post == 1)).any() or not (treated & (post == 0)).any()
                        or not (~treated & (post == 1)).any() or not (~treated & (post == 0)).any()):
                    skipped.append((c, "an empty treated or comparison cell in the period or base period"))
                    continue
                wk = None if weights is None else weights[ru]
                est, inf = rc_cell(data.y[rows], post, treated, data.X[rows], wk, method)
                Z[:, 2 + k] = np.bincount(ru, weights=np.asarray(inf) * (n / rows.shape[0]), minlength=n)
        except (DidxError, np.linalg.LinAlgError) as exc:
            skipped.append((c, f"the 2x2 estimator failed: {exc}"))
            continue
        if not np.isfinite(est):
            skipped.append((c, "the 2x2 estimate is not finite"))
            continue
        kept_idx.append(k)
        att.append(float(est))
    return dense_store(data, cells, Z, kept_idx, att, skipped)


def dense_store(data: CSData, cells: list[Cell], Z: np.ndarray, kept_idx: list[int], att: list[float],
                skipped: list[tuple[Cell, str]]) -> CellEstimates:
    """The estimates of the cells ``kept_idx`` whose influence functions are the columns ``2 + k`` of ``Z`` (after
    ``1, w``): a store with identity coefficients (the columns of cells not kept are dropped)."""
    G, K = data.cohort_values.shape[0], len(cells)
    if len(kept_idx) < K:
        Z = np.asfortranarray(Z[:, [0, 1, *[2 + k for k in kept_idx]]])
    Kk = len(kept_idx)
    coef = np.zeros((G, Kk + 2, Kk))
    for j in range(Kk):
        if not cells[kept_idx[j]].reference:
            coef[:, 2 + j, j] = 1.0
    store = IFStore(Z=Z, block=data.block, coef=coef, n=data.n_units, cluster=data.cluster,
                    n_clusters=data.n_clusters)
    return CellEstimates(cells=[cells[k] for k in kept_idx], att=np.asarray(att, dtype=float), store=store,
                         skipped=skipped)
