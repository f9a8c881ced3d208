"""Aggregation of the DID_l components: switchers in and out, effects, placebos, the average total effect.

Mirrors section 5 of DIDmultiplegtDYN's ``did_multiplegt_main``:

* ``DID_l = (N^1_l DID^+_l + N^0_l DID^-_l) / (N^1_l + N^0_l)``, i.e. ``sum_g U_{G,g,l} / G`` with the
  switchers-out influence variable negated -- and the switchers-out *variance* influence variable negated as
  well (``U^var = a_1 U^var_+ - a_0 U^var_-``, as the data.table-era R code of 2.2.0, 2.3.x and the package's
  Python port do; it matters only when a cluster holds both directions' terms: a baseline value with switchers
  in and out, or clusters coarser than groups);
* the average total effect per treatment unit ``delta = sum_l w_l DID_l / sum_l w_l delta^D_l`` (weights
  ``w_l = N_l / sum_l N_l`` within each direction, the two directions combined with ``w_+``);
* variances and covariances from the variance influence variables summed within clusters:
  ``V[j, k] = sum_c S_cj S_ck / G^2`` -- the package's diagonal, and, off the diagonal, the covariance the
  package uses for its joint tests (``(Var(U_j + U_k) - Var(U_j) - Var(U_k)) / 2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from didx._errors import DesignError
from didx.estimators.dcdh.controls import fit_controls
from didx.estimators.dcdh.core import Component, Core
from didx.estimators.dcdh.prep import DcdhData, EstimationRows
from didx.estimators.dcdh.trends import trends_lin_effect, trends_lin_placebo
from didx.inference.contract import VcovRequest
from didx.inference.dcdh_variance import ZERO, DcdhScores, DcdhSource, Influence
from didx.results.base import Inference


@dataclass
class DynEstimates:
    terms: list[str]
    event_time: list[float]
    coef: np.ndarray
    infl: list[Influence]  # per term: the variance influence variables U^var (pieces before clustering)
    n_w: np.ndarray  # N (weighted cells), per term
    n_cells: np.ndarray  # N (cells), per term
    n_switchers_w: np.ndarray
    n_switchers: np.ndarray
    n_effects: int
    n_placebos: int
    avg_periods: float
    normalization: np.ndarray  # normalisation per term (1 when not normalized)
    messages: list[str] = field(default_factory=list)


def _max_or_zero(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


@dataclass(frozen=True)
class _Horizons:
    """How many effects and placebos each direction of switch has (``1``: in, ``0``: out), and how many are
    reported."""

    n_eff: dict[int, float]
    n_pl: dict[int, float]
    l_xx: int
    l_pl: int


def _horizons(data: DcdhData, effects: int, placebo: int, switchers: str, trends_lin: bool
              ) -> tuple[_Horizons, list[str]]:
    """The package's L_u / L_a (effects) and their placebo counts, and messages when fewer can be estimated."""
    S = data.S
    L = {1: _max_or_zero(data.L[S == 1]), 0: _max_or_zero(data.L[S == 0])}
    L_pl = {1: _max_or_zero(data.L_pl[S == 1]), 0: _max_or_zero(data.L_pl[S == 0])}
    if trends_lin:  # the package: one placebo fewer, as the first period is lost to the first difference
        L_pl = {s: max(v - 1, 0.0) for s, v in L_pl.items()}
    if switchers == "in":  # only switchers in: the package puts full weight on them
        L[0] = L_pl[0] = 0.0
    elif switchers == "out":
        L[1] = L_pl[1] = 0.0
    l_xx = int(min(max(L[1], L[0]), effects))
    l_pl = int(min(max(L_pl[1], L_pl[0]), placebo, effects)) if placebo else 0
    messages = []
    if l_xx < effects:
        messages.append(f"{effects} effects requested but at most {l_xx} can be estimated; {l_xx} are reported.")
    if placebo and l_pl < placebo:
        messages.append(f"{placebo} placebos requested but at most {l_pl} can be estimated; {l_pl} are reported.")
    return _Horizons(L, L_pl, l_xx, l_pl), messages


Components = dict[int, list[Component | None]]


def _components(core: Core, h: _Horizons, normalized: bool, trends_lin: bool) -> tuple[Components, Components]:
    """Every DID_l and placebo of each direction (None where it has no switcher)."""
    eff: Components = {s: [None] * h.l_xx for s in (1, 0)}
    pl: Components = {s: [None] * h.l_pl for s in (1, 0)}
    for s in (1, 0):
        if h.n_eff[s] == 0:
            continue
        n_s = int(min(h.n_eff[s], h.l_xx))
        n_pl_s = int(min(h.l_pl, h.n_pl[s]))
        if trends_lin:
            for i in range(1, n_s + 1):
                eff[s][i - 1] = trends_lin_effect(core, i, s, normalized)
            for i in range(1, n_pl_s + 1):
                pl[s][i - 1] = trends_lin_placebo(core, i, s, normalized)
            continue
        for i in range(1, n_s + 1):
            comp, nc, dist = core.effect(i, s, normalized)
            eff[s][i - 1] = comp
            if i <= n_pl_s:
                pl[s][i - 1] = core.placebo(i, nc, dist, normalized)
    return eff, pl


@dataclass(frozen=True)
class _Term:
    """One reported term: its estimate, variance influence variable and the package's counts."""

    name: str
    event_time: float
    coef: float
    infl: Influence
    n_w: float
    n_cells: float
    n_switchers_w: float
    n_switchers: float
    normalization: float
    count: np.ndarray | None = None  # (G, T) weights of the cells used (effects: for Av_tot_eff's N)


def _combine(name: str, event_time: float, c1: Component | None, c0: Component | None, G: float,
             shape: tuple[int, int], normalized: bool) -> _Term:
    """The switchers-in and -out estimates of one horizon, averaged with the package's weights ``N^1 / (N^1 +
    N^0)`` and ``N^0 / (N^1 + N^0)`` (the switchers-out terms negated), divided by the normalisation if asked."""
    n1 = c1.n_switch_w if c1 else 0.0
    n0 = c0.n_switch_w if c0 else 0.0
    zeros_g, zeros_gt = np.zeros(shape[0]), np.zeros(shape)
    if n1 + n0 == 0:
        # no switcher at this horizon: the estimate and its variance are NaN (not a misleading 0)
        return _Term(name, event_time, np.nan, Influence(fixed=np.full(shape[0], np.nan)), 0.0, 0.0, 0.0, 0.0,
                     np.nan if normalized else 1.0, zeros_gt)
    a1, a0 = n1 / (n1 + n0), n0 / (n1 + n0)
    u = a1 * (c1.U if c1 else zeros_g) - a0 * (c0.U if c0 else zeros_g)
    uv = a1 * (c1.U_var if c1 else ZERO) - a0 * (c0.U_var if c0 else ZERO)
    cnt = np.maximum(c1.count if c1 else zeros_gt, c0.count if c0 else zeros_gt)
    cells = (c1.cells if c1 else zeros_gt) + (c0.cells if c0 else zeros_gt) > 0
    sw = (c1.switcher_cells.sum() if c1 else 0) + (c0.switcher_cells.sum() if c0 else 0)
    k = a1 * (c1.delta_norm if c1 else 0.0) + a0 * (c0.delta_norm if c0 else 0.0) if normalized else 1.0
    return _Term(name, event_time, float(u.sum() / G) / k, uv / k, float(cnt.sum()), float(cells.sum()), n1 + n0,
                 float(sw), k, cnt)


def _average_total_effect(eff: Components, effect_terms: list[_Term], G: float, n_g: int) -> _Term:
    """``delta = sum_l w_l DID_l / sum_l w_l delta^D_l`` per direction (``w_l = N_l / sum_l N_l``), the two
    directions combined with the package's ``w_+``; its counts are those of all the effects' cells."""
    zeros_g = np.zeros(n_g)
    sums: dict[int, tuple[float, np.ndarray, Influence, float]] = {}
    for s in (1, 0):
        comps = [c for c in eff[s] if c is not None]
        tot = sum(c.n_switch_w for c in comps)
        if tot == 0:
            sums[s] = (0.0, zeros_g, ZERO, 0.0)
            continue
        num = np.sum([(c.n_switch_w / tot) * c.U for c in comps], axis=0)
        num_v = sum(((c.n_switch_w / tot) * c.U_var for c in comps), ZERO)
        den = float(sum((c.n_switch_w / tot) * c.delta_change for c in comps))
        sums[s] = (tot, num / den, num_v / den, den)
    (t1, u1, v1, den1), (t0, u0, v0, den0) = sums[1], sums[0]
    w_plus = den1 * t1 / (den1 * t1 + den0 * t0)
    u_ate = w_plus * u1 - (1 - w_plus) * u0
    v_ate = w_plus * v1 - (1 - w_plus) * v0
    counts = [t.count for t in effect_terms if t.count is not None]
    top = np.max(np.stack(counts), axis=0) if counts else None
    return _Term("Av_tot_eff", np.nan, float(u_ate.sum() / G), v_ate,
                 float(top.sum()) if top is not None else 0.0, float((top > 0).sum()) if top is not None else 0.0,
                 float(sum(t.n_switchers_w for t in effect_terms)), float(sum(t.n_switchers for t in effect_terms)),
                 1.0)


def _accumulated_periods(data: DcdhData, eff: Components, l_xx: int) -> float:
    """The package's average number of periods over which the total effect accumulates (delta_D_avg_total)."""
    acc_num = acc_den = 0.0
    M = np.minimum(l_xx, data.T_g - data.F + 1)
    for i in range(l_xx):
        for s in (1, 0):
            c = eff[s][i]
            if c is not None and c.delta_g is not None:
                acc_num += float(np.sum(c.delta_g * (M - i)))
                acc_den += float(np.sum(c.delta_g))
    return acc_num / acc_den if acc_den else np.nan


def estimate_dyn(data: DcdhData, *, effects: int, placebo: int, normalized: bool,
                 switchers: str = "both", covariates: list[str] | None = None,
                 func: str = "dcdh", trends_lin: bool = False) -> DynEstimates:
    """Every DID_l, placebo and the average total effect, with their variance influence variables."""
    fit = None
    if covariates and data.X is not None:
        fit = fit_controls(data, float(data.n_groups_total), covariates, func)
    core = Core(data, fit)
    h, messages = _horizons(data, effects, placebo, switchers, trends_lin)
    eff, pl = _components(core, h, normalized, trends_lin)
    if all(c is None for s in (1, 0) for c in eff[s]):
        raise DesignError(
            f"{func}: no effect can be estimated: every switcher's cell has weight 0 (or a missing outcome) at the "
            f"horizons requested, so no DID_l has a switcher. Fix: check the weights= column and the outcome of "
            f"the switchers."
        )
    shape = data.Y.shape
    effect_terms = [_combine(f"Effect_{i + 1}", float(i), eff[1][i], eff[0][i], core.G, shape, normalized)
                    for i in range(h.l_xx)]
    # the average total effect is not defined with trends_lin, as in the package
    ate = [] if trends_lin else [_average_total_effect(eff, effect_terms, core.G, shape[0])]
    placebo_terms = [_combine(f"Placebo_{i + 1}", float(-(i + 2)), pl[1][i], pl[0][i], core.G, shape, normalized)
                     for i in range(h.l_pl)]
    rows = [*effect_terms, *ate, *placebo_terms]
    return DynEstimates(
        terms=[t.name for t in rows], event_time=[t.event_time for t in rows],
        coef=np.array([t.coef for t in rows]), infl=[t.infl for t in rows],
        n_w=np.array([t.n_w for t in rows]), n_cells=np.array([t.n_cells for t in rows]),
        n_switchers_w=np.array([t.n_switchers_w for t in rows]), n_switchers=np.array([t.n_switchers for t in rows]),
        n_effects=h.l_xx, n_placebos=h.l_pl,
        avg_periods=np.nan if trends_lin else _accumulated_periods(data, eff, h.l_xx),
        normalization=np.array([t.normalization for t in rows]),
        messages=[*(fit.messages if fit is not None else ()), *messages],
    )


def fit_covariance(func: str, rows: EstimationRows, scores: DcdhScores, *, unit: str, cluster: str | None,
                   label: str, details: tuple[str, ...]) -> tuple[np.ndarray, Inference, DcdhSource]:
    """The fit's covariance, computed by the result's covariance source (so that ``with_vcov(cluster=c)`` and
    a fit with ``cluster=c`` run the same code), and that source."""
    default = cluster if cluster is not None and cluster != unit else unit
    source = DcdhSource(scores=scores, clusters=rows.cluster_codes(unit, None if default == unit else default),
                        unit=unit, default=default, label=label, details=details)
    V, inference = source.covariance(func, VcovRequest(), {})
    return V, inference, source
