"""Triple-difference ATT(g,t) cells (Ortiz-Villavicencio & Sant'Anna 2025): estimates and influence functions.

A unit belongs to a treatment-enabling group ``S`` (its cohort: the period its group enables treatment, or never)
and a partition ``Q`` (1: eligible for treatment, 0: not). For a cell (g, t) with base period b and one
comparison cohort c, the four subgroups are

    4: S = g, Q = 1 (treated and eligible)      3: S = g, Q = 0 (treated, ineligible)
    2: S = c, Q = 1 (untreated, eligible)       1: S = c, Q = 0 (untreated, ineligible)

and the DDD estimate is built from THREE doubly robust 2x2 DiD comparisons of subgroup 4 with each other subgroup
(paper eq. 3.5 / 4.8; R's ``triplediff::att_dr``), each one the Sant'Anna-Zhao estimator of
:func:`didx.estimators.drdid.panel.panel_cell` on ``dY = Y_t - Y_b``:

    DDD = DiD(4 vs 3) + DiD(4 vs 2) - DiD(4 vs 1).

With covariates this is not the difference of two DiDs (4 vs 2 minus 3 vs 1): each comparison reweights its
comparison subgroup to the covariate distribution of subgroup 4, the target population. The influence function of
the two-period estimate (over the ``m`` units of the cell) is ``sum_k +-(m / m_k) psi_k`` with ``psi_k`` the 2x2
influence function over its ``m_k`` units (``triplediff``'s rescaling); in the staggered design it is rescaled to
all ``n`` units by ``n / m`` (as ``did`` does for ATT(g,t)).

Not-yet-treated comparisons (``control="not_yet"``): when several cohorts c_1..c_J can serve as comparison, the
cell combines their DDD estimates with the optimal GMM weights ``w = Omega^-1 1 / (1' Omega^-1 1)``, ``Omega``
the covariance of their influence functions (paper eq. 4.11-4.12; ``triplediff``'s GMM step); the influence
function of the cell is ``sum_j w_j phi_j``.

Without covariates dr = ipw = reg = the cell-mean formula
``(Ybar[g,1] - Ybar[g,0]) - (Ybar[c,1] - Ybar[c,0])`` of the changes ``Y_t - Y_b``, and the influence function of a
unit of subgroup (h, q) is ``+-n w_i (dY_i - dYbar[h,q]) / W[h,q]``: affine in the unit's outcomes with a
coefficient per cohort and partition, so it is stored as cohort coefficients on the features
``(1, w, w (1-Q) y', w Q y')`` of :class:`didx.inference.if_store.IFStore` (no n x K matrix; SCALE.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from didx._errors import DesignError, DidxError
from didx.estimators.cs.cells import Cell, CellEstimates, dense_store
from didx.estimators.cs.data import CSData
from didx.estimators.drdid.panel import panel_cell
from didx.estimators.drdid.rc import rc_cell
from didx.inference.if_store import IFStore

#: (comparison subgroup, sign) of the three DiDs, in triplediff's order
COMPARISONS: tuple[tuple[int, float], ...] = ((3, 1.0), (2, 1.0), (1, -1.0))


@dataclass(frozen=True)
class TwoPeriodDDD:
    """The two-period DDD estimate (R's ``triplediff::att_dr``).

    ``inf_func`` has one entry per unit passed (``att - ATT ~= mean(inf_func)``); ``std_error`` is R's
    ``sd(inf_func) / sqrt(n)``. ``did_atts`` are the three DiDs (4 vs 3, 4 vs 2, 4 vs 1), ``counts`` the units of
    subgroups 4, 3, 2, 1.
    """

    att: float
    inf_func: np.ndarray
    did_atts: tuple[float, float, float]
    counts: tuple[int, int, int, int]

    @property
    def std_error(self) -> float:
        n = self.inf_func.shape[0]
        return float(np.std(self.inf_func, ddof=1) / np.sqrt(n))


def subgroups(treated: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Subgroup codes 4 (treated, eligible), 3 (treated, ineligible), 2 (eligible), 1 (neither)."""
    t = np.asarray(treated).astype(bool)
    e = np.asarray(eligible).astype(bool)
    return np.where(t, np.where(e, 4, 3), np.where(e, 2, 1)).astype(np.int8)


def two_period(dy: np.ndarray, treated: np.ndarray, eligible: np.ndarray, X: np.ndarray | None = None,
               weights: np.ndarray | None = None, method: str = "dr", post: np.ndarray | None = None
               ) -> TwoPeriodDDD:
    """The two-period DDD of Ortiz-Villavicencio & Sant'Anna (2025, eq. 3.5): panel data, or repeated cross
    sections when ``post`` is given (R's ``att_dr_rc``: each DiD is :func:`~didx.estimators.drdid.rc.rc_cell`).

    Parameters
    ----------
    dy : ``Y_post - Y_pre`` per unit (panel); the outcome per row with ``post``.
    treated : True for units of the treatment-enabling group (S = 2), False for the comparison group.
    eligible : the partition Q (True: eligible).
    X : (n x p) covariates INCLUDING the intercept column, or None (intercept only).
    weights : None or one sampling weight per unit.
    method : ``"dr"`` (``drdid_panel`` / ``drdid_rc``-type doubly robust), ``"ipw"`` (normalised IPW) or ``"reg"``
        (outcome regression) for each of the three DiDs.
    post : None (panel data) or the 0/1 post-period indicator per row (repeated cross sections; one entry per row
        in every other argument, and ``inf_func`` per row).
    """
    y = np.asarray(dy, dtype=np.float64)
    sub = subgroups(treated, eligible)
    counts = tuple(int(np.count_nonzero(sub == k)) for k in (4, 3, 2, 1))
    missing = [name for name, c in zip(("treated and eligible", "treated but ineligible", "eligible but untreated",
                                        "untreated and ineligible"), counts, strict=True) if c == 0]
    if missing:
        raise DesignError(f"ddd: the subgroup(s) {', '.join(missing)} have no units; the triple difference needs all "
                          f"four subgroups of treatment group x partition.")
    m = y.shape[0]
    inf = np.zeros(m)
    atts: list[float] = []
    att = 0.0
    for k, sign in COMPARISONS:
        mask = (sub == 4) | (sub == k)
        Xk = None if X is None else X[mask]
        wk = None if weights is None else np.asarray(weights)[mask]
        if post is None:
            est, psi = panel_cell(y[mask], sub[mask] == 4, Xk, wk, method)
        else:
            est, psi = rc_cell(y[mask], np.asarray(post, dtype=float)[mask], sub[mask] == 4, Xk, wk, method)
        inf[mask] += sign * (m / int(mask.sum())) * np.asarray(psi)
        atts.append(float(est))
        att += sign * float(est)
    return TwoPeriodDDD(att=att, inf_func=inf, did_atts=(atts[0], atts[1], atts[2]),
                        counts=(counts[0], counts[1], counts[2], counts[3]))


def gmm_weights(omega: np.ndarray) -> np.ndarray:
    """``Omega^-1 1 / (1' Omega^-1 1)`` (paper eq. 4.11)."""
    ones = np.ones(omega.shape[0])
    try:
        a = np.linalg.solve(omega, ones)
    except np.linalg.LinAlgError:
        a = np.linalg.pinv(omega) @ ones
    return np.asarray(a / a.sum())


# ----------------------------------------------------------------------------------------------- no covariates
def sort_by_partition(data: CSData, Q: np.ndarray) -> tuple[CSData, np.ndarray]:
    """Units reordered so that every cohort block lists its ineligible units, then its eligible ones (each
    cohort x partition group a contiguous slice); the cohort blocks are unchanged."""
    perm = np.argsort(data.unit_cohort.astype(np.int64) * 2 + Q, kind="stable")
    if np.array_equal(perm, np.arange(perm.shape[0])):
        return data, Q
    rank = np.empty_like(perm)
    rank[perm] = np.arange(perm.shape[0])
    return dataclasses.replace(
        data, unit_cohort=data.unit_cohort[perm], unit_weight=data.unit_weight[perm], row_unit=rank[data.row_unit],
        unit_labels=data.unit_labels[perm], cluster=None if data.cluster is None else data.cluster[perm],
    ), Q[perm]


def _features(data: CSData, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z = (1, w, w (1-Q) y', w Q y') with y' centred on its (cohort, partition, period) mean; the means (G, 2, T)
    and the weight sums (G, 2). Units must be sorted by cohort, then partition (:func:`sort_by_partition`)."""
    n, T = data.n_units, data.n_periods
    G = data.cohort_values.shape[0]
    w = data.unit_weight
    Y = np.empty((n, T))
    Y[data.row_unit, data.row_time] = data.y
    Z = np.zeros((n, 2 * T + 2))
    Z[:, 0] = 1.0
    Z[:, 1] = w
    mu = np.zeros((G, 2, T))
    W = np.zeros((G, 2))
    for g in range(G):
        lo, hi = int(data.block[g]), int(data.block[g + 1])
        mid = lo + int(np.count_nonzero(Q[lo:hi] == 0))
        for q, (a, b) in enumerate(((lo, mid), (mid, hi))):
            if b == a:
                continue
            wq = w[a:b]
            W[g, q] = wq.sum()
            Yq = Y[a:b]
            mu[g, q] = (wq @ Yq) / W[g, q] if data.weighted else Yq.mean(axis=0)
            Zq = Z[a:b, 2 + q * T: 2 + (q + 1) * T]
            np.subtract(Yq, mu[g, q], out=Zq)
            if data.weighted:
                Zq *= wq[:, None]
    return Z, mu, W


def _gram(data: CSData, Q: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Per-cohort ``sum z z'`` of the features, each partition slice over its own nonzero columns
    (``1, w`` and its T outcome columns): what :meth:`IFStore.gram` computes, with a quarter of the products."""
    G, L = data.cohort_values.shape[0], Z.shape[1]
    T = (L - 2) // 2
    M = np.zeros((G, L, L))
    for g in range(G):
        lo, hi = int(data.block[g]), int(data.block[g + 1])
        mid = lo + int(np.count_nonzero(Q[lo:hi] == 0))
        for q, (a, b) in enumerate(((lo, mid), (mid, hi))):
            if b > a:
                cols = np.r_[0, 1, 2 + q * T: 2 + (q + 1) * T]
                Zs = Z[a:b][:, cols]
                M[g][np.ix_(cols, cols)] += Zs.T @ Zs
    return M


def estimate_sums(data: CSData, cells: list[Cell], Q: np.ndarray) -> CellEstimates:
    """Every cell from cohort x partition x period means (no covariates; dr = ipw = reg)."""
    n, T = data.n_units, data.n_periods
    G = data.cohort_values.shape[0]
    Z, mu, W = _features(data, Q)
    L = Z.shape[1]
    store = IFStore(Z=Z, block=data.block, coef=np.zeros((G, L, 0)), n=n, cluster=data.cluster,
                    n_clusters=data.n_clusters, _gram=_gram(data, Q, Z))

    def col(q: int, t: int) -> int:
        return 2 + q * T + t

    def one(c: Cell, h: int) -> tuple[float, np.ndarray] | str:
        g = c.g_code
        if W[g, 1] <= 0 or W[g, 0] <= 0:
            return "the treated cohort lacks eligible or ineligible units"
        if W[h, 1] <= 0 or W[h, 0] <= 0:
            return "the comparison cohort lacks eligible or ineligible units"
        coef = np.zeros((G, L))
        att = 0.0
        for h_, q, sign in ((g, 1, 1.0), (g, 0, -1.0), (h, 1, -1.0), (h, 0, 1.0)):
            s = sign * n / W[h_, q]
            coef[h_, col(q, c.t)] += s
            coef[h_, col(q, c.b)] -= s
            att += sign * (mu[h_, q, c.t] - mu[h_, q, c.b])
        return float(att), coef

    kept: list[Cell] = []
    att_list: list[float] = []
    cols: list[np.ndarray] = []
    skipped: list[tuple[Cell, str]] = []
    for c in cells:
        if c.reference:
            kept.append(c)
            att_list.append(0.0)
            cols.append(np.zeros((G, L)))
            continue
        if not c.controls:
            skipped.append((c, "no comparison units"))
            continue
        outs = [one(c, h) for h in c.controls]
        ok = [o for o in outs if not isinstance(o, str)]
        if not ok:
            skipped.append((c, str(outs[0])))
            continue
        if len(ok) == 1:
            att, coef = ok[0]
        else:
            C = np.stack([o[1] for o in ok], axis=2)  # (G, L, J)
            M = store.gram()
            omega = np.einsum("glj,glm,gmk->jk", C, M, C) / n
            wts = gmm_weights(0.5 * (omega + omega.T))
            att = float(wts @ np.array([o[0] for o in ok]))
            coef = C @ wts
        kept.append(c)
        att_list.append(att)
        cols.append(coef)
    C_all = np.stack(cols, axis=2) if cols else np.zeros((G, L, 0))
    final = IFStore(Z=Z, block=data.block, coef=C_all, n=n, cluster=data.cluster, n_clusters=data.n_clusters,
                    _gram=store._gram)
    return CellEstimates(cells=kept, att=np.asarray(att_list, dtype=float), store=final, skipped=skipped)


# ----------------------------------------------------------------------------------------------- covariates
def estimate_covariates(data: CSData, cells: list[Cell], Q: np.ndarray, method: str) -> CellEstimates:
    """Every cell with three Sant'Anna-Zhao comparisons per comparison cohort (dense influence function per cell).

    Panel data: covariates are taken in the earlier of the cell's two periods (as ``did``). Repeated cross
    sections (``data.mode == "rc"``): every row is its own unit (``did``'s and ``triplediff``'s ``panel = FALSE``).
    """
    if data.X is None:
        raise DesignError("ddd: estimate_covariates needs covariates (an intercept column at least).")
    X = data.X
    n, T, block = data.n_units, data.n_periods, data.block
    K = len(cells)
    Z = np.zeros((n, K + 2), order="F")
    Z[:, 0] = 1.0
    Z[:, 1] = data.unit_weight
    weights = data.unit_weight if data.weighted else None
    if data.mode == "rc":
        cohort = data.unit_cohort[data.row_unit]

        def fit(c: Cell, h: int) -> tuple[TwoPeriodDDD, np.ndarray, int]:
            rows = np.flatnonzero(np.isin(data.row_time, (c.t, c.b)) & np.isin(cohort, (c.g_code, h)))
            ru = data.row_unit[rows]
            res = two_period(data.y[rows], cohort[rows] == c.g_code, Q[ru], X[rows],
                             None if weights is None else weights[ru], method,
                             post=(data.row_time[rows] == c.t).astype(float))
            return res, ru, rows.shape[0]
    else:
        Y = np.empty((T, n))
        Y[data.row_time, data.row_unit] = data.y
        Xw = np.empty((T, n, X.shape[1]))
        Xw[data.row_time, data.row_unit, :] = X

        def fit(c: Cell, h: int) -> tuple[TwoPeriodDDD, np.ndarray, int]:
            units = np.concatenate([np.arange(block[c.g_code], block[c.g_code + 1]), np.arange(block[h],
                                                                                           block[h + 1])])
            res = two_period(Y[c.t][units] - Y[c.b][units], data.unit_cohort[units] == c.g_code, Q[units],
                             Xw[min(c.t, c.b)][units], None if weights is None else weights[units], method)
            return res, units, units.shape[0]

    kept_idx: list[int] = []
    att_list: list[float] = []
    skipped: list[tuple[Cell, str]] = []
    for k, c in enumerate(cells):
        if c.reference:
            kept_idx.append(k)
            att_list.append(0.0)
            continue
        ests: list[float] = []
        phis: list[tuple[np.ndarray, np.ndarray]] = []
        why = "no comparison units"
        for h in c.controls:
            try:
                res, idx, m = fit(c, h)
            except (DidxError, np.linalg.LinAlgError) as exc:
                why = f"the DDD estimator failed: {exc}"
                continue
            if not np.isfinite(res.att):
                why = "the DDD estimate is not finite"
                continue
            ests.append(res.att)
            phis.append((idx, res.inf_func * (n / m)))
        if not ests:
            skipped.append((c, why))
            continue
        att_list.append(_combine(ests, phis, Z[:, 2 + k], n))
        kept_idx.append(k)
    return dense_store(data, cells, Z, kept_idx, att_list, skipped)


def _combine(ests: list[float], phis: list[tuple[np.ndarray, np.ndarray]], out: np.ndarray, n: int) -> float:
    """One comparison's estimate, or the GMM combination of several; writes the cell's influence function (per
    unit, summed over a unit's rows) into ``out``."""
    if len(ests) == 1:
        idx, phi = phis[0]
        out[:] = np.bincount(idx, weights=phi, minlength=out.shape[0])
        return ests[0]
    # influence functions of the J comparisons on the union of their units
    union = np.unique(np.concatenate([u for u, _ in phis]))
    Phi = np.zeros((union.shape[0], len(phis)))
    for j, (u, ph) in enumerate(phis):
        np.add.at(Phi[:, j], np.searchsorted(union, u), ph)
    wts = gmm_weights(Phi.T @ Phi / n)
    out[union] = Phi @ wts
    return float(wts @ np.asarray(ests))
