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


def estimate_dyn(data: DcdhData, *, effects: int, placebo: int, normalized: bool,
                 switchers: str = "both", covariates: list[str] | None = None,
                 func: str = "dcdh", trends_lin: bool = False) -> DynEstimates:
    """Every DID_l, placebo and the average total effect, with their variance influence variables."""
    fit = None
    if covariates and data.X is not None:
        fit = fit_controls(data, float(data.n_groups_total), covariates, func)
    core = Core(data, fit)
    S = data.S
    L_u = _max_or_zero(data.L[S == 1])
    L_a = _max_or_zero(data.L[S == 0])
    L_pl_u = _max_or_zero(data.L_pl[S == 1])
    L_pl_a = _max_or_zero(data.L_pl[S == 0])
    if trends_lin:  # the package: one placebo fewer, as the first period is lost to the first difference
        L_pl_u, L_pl_a = max(L_pl_u - 1, 0.0), max(L_pl_a - 1, 0.0)
    if switchers == "in":  # only switchers in: the package puts full weight on them
        L_a = L_pl_a = 0.0
    elif switchers == "out":
        L_u = L_pl_u = 0.0
    messages: list[str] = list(fit.messages) if fit is not None else []
    l_xx = int(min(max(L_u, L_a), effects))
    l_pl = int(min(max(L_pl_u, L_pl_a), placebo, effects)) if placebo else 0
    if l_xx < effects:
        messages.append(f"{effects} effects requested but at most {l_xx} can be estimated; {l_xx} are reported.")
    if placebo and l_pl < placebo:
        messages.append(f"{placebo} placebos requested but at most {l_pl} can be estimated; {l_pl} are reported.")
    n_g, n_t = data.Y.shape
    G = core.G
    eff: dict[int, list[Component | None]] = {s: [None] * l_xx for s in (1, 0)}
    pl: dict[int, list[Component | None]] = {s: [None] * l_pl for s in (1, 0)}
    for s, L_s, Lp_s in ((1, L_u, L_pl_u), (0, L_a, L_pl_a)):
        if L_s == 0:
            continue
        n_s = int(min(L_s, l_xx))
        n_pl_s = int(min(l_pl, Lp_s))
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
    if all(c is None for s in (1, 0) for c in eff[s]):
        raise DesignError(
            f"{func}: no effect can be estimated: every switcher's cell has weight 0 (or a missing outcome) at the "
            f"horizons requested, so no DID_l has a switcher. Fix: check the weights= column and the outcome of "
            f"the switchers."
        )

    zeros_g = np.zeros(n_g)
    zeros_gt = np.zeros((n_g, n_t))

    def combine(c1: Component | None, c0: Component | None) -> tuple[float, np.ndarray, Influence, float, float,
                                                                      float, float, float, np.ndarray]:
        n1 = c1.n_switch_w if c1 else 0.0
        n0 = c0.n_switch_w if c0 else 0.0
        if n1 + n0 == 0:
            return np.nan, zeros_g, ZERO, 0.0, 0.0, 0.0, 0.0, np.nan, zeros_gt
        a1, a0 = n1 / (n1 + n0), n0 / (n1 + n0)
        u = a1 * (c1.U if c1 else zeros_g) - a0 * (c0.U if c0 else zeros_g)
        uv = a1 * (c1.U_var if c1 else ZERO) - a0 * (c0.U_var if c0 else ZERO)
        cnt = np.maximum(c1.count if c1 else zeros_gt, c0.count if c0 else zeros_gt)
        cells = (c1.cells if c1 else zeros_gt) + (c0.cells if c0 else zeros_gt) > 0
        sw = (c1.switcher_cells.sum() if c1 else 0) + (c0.switcher_cells.sum() if c0 else 0)
        dn = a1 * (c1.delta_norm if c1 else 0.0) + a0 * (c0.delta_norm if c0 else 0.0)
        return float(u.sum() / G), u, uv, float(cnt.sum()), float(cells.sum()), n1 + n0, float(sw), dn, cnt

    terms: list[str] = []
    ets: list[float] = []
    coefs: list[float] = []
    infl: list[Influence] = []
    n_w: list[float] = []
    n_c: list[float] = []
    sw_w: list[float] = []
    sw_n: list[float] = []
    norm: list[float] = []
    counts: list[np.ndarray] = []
    for i in range(l_xx):
        est, _, uv, nw, nc_, nsw, nsw_c, dn, cnt = combine(eff[1][i], eff[0][i])
        k = dn if normalized else 1.0
        terms.append(f"Effect_{i + 1}")
        ets.append(float(i))
        coefs.append(est / k)
        infl.append(uv / k)
        n_w.append(nw)
        n_c.append(nc_)
        sw_w.append(nsw)
        sw_n.append(nsw_c)
        norm.append(k)
        counts.append(cnt)
    # average total effect (not defined with trends_lin, as in the package)
    sums: dict[int, tuple[float, np.ndarray, Influence, float]] = {}
    for s in (() if trends_lin else (1, 0)):
        comps = [c for c in eff[s] if c is not None]
        tot = sum(c.n_switch_w for c in comps)
        if tot == 0:
            sums[s] = (0.0, zeros_g, ZERO, 0.0)
            continue
        num = np.sum([(c.n_switch_w / tot) * c.U for c in comps], axis=0)
        num_v = sum(((c.n_switch_w / tot) * c.U_var for c in comps), ZERO)
        den = float(sum((c.n_switch_w / tot) * c.delta_change for c in comps))
        sums[s] = (tot, num / den, num_v / den, den)
    if not trends_lin:
        (t1, u1, v1, den1), (t0, u0, v0, den0) = sums[1], sums[0]
        w_plus = den1 * t1 / (den1 * t1 + den0 * t0)
        u_ate = w_plus * u1 - (1 - w_plus) * u0
        v_ate = w_plus * v1 - (1 - w_plus) * v0
        terms.append("Av_tot_eff")
        ets.append(np.nan)
        coefs.append(float(u_ate.sum() / G))
        infl.append(v_ate)
        n_w.append(float(np.max(np.stack(counts), axis=0).sum()) if counts else 0.0)
        n_c.append(float((np.max(np.stack(counts), axis=0) > 0).sum()) if counts else 0.0)
        sw_w.append(float(sum(sw_w)))
        sw_n.append(float(sum(sw_n)))
        norm.append(1.0)
    for i in range(l_pl):
        est, _, uv, nw, nc_, nsw, nsw_c, dn, _cnt = combine(pl[1][i], pl[0][i])
        k = dn if normalized else 1.0
        terms.append(f"Placebo_{i + 1}")
        ets.append(float(-(i + 2)))
        coefs.append(est / k)
        infl.append(uv / k)
        n_w.append(nw)
        n_c.append(nc_)
        sw_w.append(nsw)
        sw_n.append(nsw_c)
        norm.append(k)
    # average number of periods over which effects accumulate
    acc_num = acc_den = 0.0
    M = np.minimum(l_xx, data.T_g - data.F + 1)
    for i in range(0 if trends_lin else l_xx):
        for s in (1, 0):
            c = eff[s][i]
            if c is not None and c.delta_g is not None:
                acc_num += float(np.sum(c.delta_g * (M - i)))
                acc_den += float(np.sum(c.delta_g))
    return DynEstimates(
        terms=terms, event_time=ets, coef=np.array(coefs), infl=infl, n_w=np.array(n_w),
        n_cells=np.array(n_c), n_switchers_w=np.array(sw_w), n_switchers=np.array(sw_n), n_effects=l_xx,
        n_placebos=l_pl, avg_periods=acc_num / acc_den if acc_den else np.nan, normalization=np.array(norm),
        messages=messages,
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
