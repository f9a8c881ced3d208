"""Sample preparation for the de Chaisemartin-D'Haultfoeuille estimators (group x period matrices).

Three steps, each its own function:

1. :func:`read_rows` reads and validates the columns and drops rows with a missing unit, period, covariate,
   treatment or cluster (counted in the sample report, as the panel layer :func:`didx._panel.build_panel` does,
   whose period coding it reuses). Unlike ``build_panel`` it keeps rows whose outcome is missing (DIDmultiplegtDYN
   uses their treatment to date the switches; they get weight 0), accepts a discrete (non-0/1) treatment and keeps
   rows with a missing weight at weight 0, as the package does. An infinite outcome counts as missing.
2. :func:`_grid` lays the rows out as a balanced ``G x T`` grid (absent cells are NaN with weight 0).
3. :func:`_design` applies the package's sample restrictions and computes every group-level quantity of
   DIDmultiplegtDYN's ``did_multiplegt_main`` with numpy: the status-quo (baseline) treatment ``d_sq``, the
   first-switch date ``F_g``, the last period with a control of the same baseline ``T_g``, the switcher direction
   ``S_g``, the treatment at the switch ``d_fg`` and the number of estimable effects ``L_g``.

Every dropped row or group is counted in the sample report. The rows of the kept groups, with their group and the
fit's cluster codes, are kept as :class:`EstimationRows` for the covariance source (never the data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from didx._errors import DataError, DesignError
from didx._frame import factorize, numeric_column, read_columns
from didx._panel import _code_time
from didx._sample import Dropped, SampleReport
from didx.inference.contract import ClusterCodes, Fingerprint
from didx.inference.dcdh_variance import group_clusters


@dataclass(frozen=True, eq=False)
class EstimationRows:
    """The input rows of the kept groups: their position in the input frame, their group (0..G-1 on the grid)
    and the fit's ``cluster=`` codes; what ``with_vcov`` needs to cluster by any column."""

    index: np.ndarray
    group: np.ndarray
    cluster: np.ndarray | None
    n_input: int
    fingerprint: Fingerprint | None

    def cluster_codes(self, unit: str, cluster: str | None) -> ClusterCodes:
        stored = {unit: self.group}
        if cluster is not None and self.cluster is not None:
            stored[cluster] = self.cluster
        row_index = None if np.array_equal(self.index, np.arange(self.n_input)) else self.index
        return ClusterCodes(stored, row_index, self.n_input, self.fingerprint)


@dataclass(frozen=True, eq=False)
class DcdhData:
    """The prepared grid. ``tv`` are R's 1-based period codes of the kept columns."""

    Y: np.ndarray  # (G, T) outcome, NaN when missing or absent
    D: np.ndarray  # (G, T) treatment, NaN when absent
    N: np.ndarray  # (G, T) cell weight N_gt (0 when Y or D missing)
    tv: np.ndarray  # (T,) period codes (1-based, as R's time_XX)
    n_groups_total: int  # G_XX: groups before design-based drops (the denominator of every DID)
    d_sq: np.ndarray  # (G,) baseline treatment
    d_code: np.ndarray  # (G,) integer code of d_sq
    n_d: int
    F: np.ndarray  # (G,) first-switch period code (T_max + 1 for never switchers)
    T_g: np.ndarray  # (G,) last period with a not-yet-switched group of the same baseline
    S: np.ndarray  # (G,) 1 switcher in, 0 switcher out, NaN otherwise
    d_fg: np.ndarray  # (G,) treatment at F_g
    cohort_code: np.ndarray  # (G,) integer code of (d_sq, F_g, d_fg): the switchers' cohorts for the variance
    L: np.ndarray  # (G,) T_g - F_g + 1
    L_pl: np.ndarray  # (G,) number of feasible placebos, NaN if F_g < 3
    T_max: int
    group_labels: np.ndarray
    period_labels: np.ndarray
    report: SampleReport
    rows: EstimationRows
    X: np.ndarray | None = None  # (G, T, K) time-varying covariates, NaN when absent


@dataclass(frozen=True, eq=False)
class Rows:
    """The validated columns, one entry per input row, and what was dropped (``keep``: rows still in)."""

    y: np.ndarray
    d: np.ndarray
    w: np.ndarray
    x: list[np.ndarray]
    unit: np.ndarray  # codes (sorted labels), -1 missing
    unit_labels: np.ndarray
    time: np.ndarray  # codes (increasing periods), -1 missing
    time_labels: np.ndarray
    cluster: np.ndarray | None  # codes of the fit's cluster= column (None: the unit)
    keep: np.ndarray
    drops: list[Dropped]
    notes: list[str]
    fingerprint: Fingerprint | None

    @property
    def n_input(self) -> int:
        return int(self.y.shape[0])


def _first_true(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(has any, column index of first True) per row."""
    has = np.asarray(mask.any(axis=1))
    return has, np.where(has, mask.argmax(axis=1), -1)


def _first_difference_by_row(P: np.ndarray, Y: np.ndarray,
                             X: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``v - v[previous present row of the group]`` (the package differences row by row within group)."""
    G, T = P.shape
    cols = np.where(P, np.arange(T)[None, :], -1)
    last = np.maximum.accumulate(cols, axis=1)  # last present column at or before c
    prev = np.full((G, T), -1)
    prev[:, 1:] = last[:, :-1]
    rows = np.arange(G)[:, None]
    has = P & (prev >= 0)
    pc = np.maximum(prev, 0)
    Yd = np.where(has, Y - Y[rows, pc], np.nan)
    Xd = None
    if X is not None:
        Xd = np.where(has[:, :, None], X - X[rows, pc], np.nan)
    return Yd, Xd


def read_rows(data: object, *, func: str, y: str, unit: str, time: str, treat: str, weights: str | None,
              cluster: str | None, covariates: list[str]) -> Rows:
    """Read and validate the columns; drop (and count) rows with a missing unit, period, covariate, treatment or
    cluster, and the units whose outcome is always missing (see the module docstring)."""
    roles: dict[str, object] = {"y": y, "unit": unit, "time": time, "treat": treat, "weights": weights,
                                "cluster": cluster, "covariates": covariates}
    # read_columns checks every argument (and drops repeated columns) before anything is hashed
    wanted = [c for c in [y, unit, time, treat, weights, cluster, *covariates] if c is not None]
    cols = read_columns(data, wanted, func, roles)
    n_input = cols.n_rows
    yv = numeric_column(cols, y, "outcome (y)", func, "Fix: pass a numeric outcome column.")
    dv = numeric_column(cols, treat, "treatment", func,
                        "Fix: pass a numeric treatment (binary, or discrete with ordered values).")
    t_codes, _, t_labels, _ = _code_time(cols, time, func)
    g_codes, g_labels = factorize(cols.arrays[unit], sort=True)
    xv = [numeric_column(cols, c, "covariate", func, "Fix: pass numeric time-varying covariates (encode "
                         "categories as 0/1 columns).") for c in covariates]
    wv = np.ones(n_input) if weights is None else numeric_column(cols, weights, "weights", func,
                                                                 "Fix: pass a numeric column of weights.")
    if weights is not None and np.any(wv[np.isfinite(wv)] < 0):
        raise DataError(f"{func}: the weights column {weights!r} has negative values. Fix: weights must be >= 0.")
    cl_codes = None
    if cluster is not None and cluster != unit:
        cl_codes, _ = factorize(cols.arrays[cluster], sort=False)
    notes: list[str] = []
    infinite = np.isinf(yv)
    if infinite.any():
        notes.append(f"{int(infinite.sum())} cells with an infinite outcome ({y}) treated as missing")
        yv = np.where(infinite, np.nan, yv)

    keep = np.ones(n_input, dtype=bool)
    masks: list[tuple[str, np.ndarray]] = []

    def drop(mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        if newly.any():
            masks.append((reason, newly))
            keep[newly] = False

    drop(g_codes < 0, f"missing unit ({unit})")
    drop(t_codes < 0, f"missing time ({time})")
    for c, x in zip(covariates, xv, strict=True):  # as the package: rows with a missing covariate go first
        drop(~np.isfinite(x), f"missing covariate ({c})")
    drop(~np.isfinite(dv), f"missing treatment ({treat}); treated as absent cells (no imputation)")
    if cl_codes is not None:
        drop(cl_codes < 0, f"missing cluster ({cluster})")
    # units whose outcome is missing in every period are dropped (as the package does)
    has_y = np.zeros(max(int(g_codes.max()) + 1, 1), dtype=bool)
    ok = keep & np.isfinite(yv)
    has_y[g_codes[ok]] = True
    drop(~has_y[np.maximum(g_codes, 0)], f"groups whose outcome ({y}) is always missing")
    if not keep.any():
        raise DesignError(f"{func}: no rows left after dropping missing values. Fix: check {y!r}, {treat!r}.")
    drops = _dropped(masks, g_codes, keep, int(g_labels.shape[0]))
    return Rows(y=yv, d=dv, w=wv, x=xv, unit=g_codes, unit_labels=g_labels, time=t_codes, time_labels=t_labels,
                cluster=cl_codes, keep=keep, drops=drops, notes=notes, fingerprint=cols.fingerprint(y, unit))


def _dropped(masks: list[tuple[str, np.ndarray]], unit: np.ndarray, keep: np.ndarray, n_units: int
             ) -> list[Dropped]:
    """The rows dropped per reason, and the units left with no row, each counted once under the last reason
    that removed one of its rows (the panel layer's convention)."""
    still = np.bincount(unit[keep & (unit >= 0)], minlength=n_units) > 0
    last = np.full(n_units, -1, dtype=np.int64)
    for r, (_, mask) in enumerate(masks):
        codes = unit[mask]
        last[codes[codes >= 0]] = r
    lost_by = np.bincount(last[~still & (last >= 0)], minlength=len(masks))
    return [Dropped(reason, int(mask.sum()), int(lost_by[r])) for r, (reason, mask) in enumerate(masks)]


@dataclass(eq=False)
class _Grid:
    """The kept rows as a balanced G x T grid (NaN / weight 0 where absent)."""

    Y: np.ndarray
    D: np.ndarray
    W: np.ndarray
    P: np.ndarray  # (G, T) cell present
    X: np.ndarray | None
    tv: np.ndarray  # (T,) 1-based period ranks
    idx: np.ndarray  # input positions of the kept rows
    gk: np.ndarray  # grid row of each kept row
    g_old: np.ndarray  # unit code of each grid row
    t_old: np.ndarray  # period code of each grid column
    notes: list[str] = field(default_factory=list)


def _grid(r: Rows, *, func: str, y: str, unit: str, time: str, weights: str | None) -> _Grid:
    """Lay the kept rows out on the group x period grid; an error for duplicate (unit, period) rows or weights
    that are zero or missing in every row."""
    idx = np.flatnonzero(r.keep)
    gk, g_old = factorize(r.unit[idx], sort=True)
    tk, t_old = factorize(r.time[idx], sort=True)
    G, T = int(g_old.shape[0]), int(t_old.shape[0])
    key = gk * T + tk
    if np.bincount(key, minlength=G * T).max() > 1:
        raise DataError(
            f"{func}: duplicate ({unit}, {time}) rows: each unit may appear once per period. Fix: aggregate "
            f"the data to the unit x period level first (weighted means, with the cell size as weights=)."
        )
    Y = np.full((G, T), np.nan)
    D = np.full((G, T), np.nan)
    W = np.zeros((G, T))
    Y[gk, tk] = r.y[idx]
    D[gk, tk] = r.d[idx]
    wk = r.w[idx]
    W[gk, tk] = np.where(np.isfinite(wk), wk, 0.0)
    notes = list(r.notes)
    n_missing_w = int(np.count_nonzero(~np.isfinite(wk)))
    if weights is not None and n_missing_w:
        notes.append(f"{n_missing_w} cells with a missing weight ({weights}) kept with weight 0 (as the package)")
    if weights is not None and not np.any(W[np.isfinite(Y)] > 0):
        raise DataError(
            f"{func}: the weights column {weights!r} is zero or missing in every row with an observed outcome "
            f"({y}), so no cell enters the estimate. Fix: check the weights (they are the cells' sizes N_gt)."
        )
    P = np.zeros((G, T), dtype=bool)
    P[gk, tk] = True
    X = None
    if r.x:
        X = np.full((G, T, len(r.x)), np.nan)
        X[gk, tk, :] = np.column_stack(r.x)[idx]
    tv = t_old.astype(np.int64) + 1  # R's time_XX: 1-based rank among all periods of the data
    return _Grid(Y=Y, D=D, W=W, P=P, X=X, tv=tv, idx=idx, gk=gk, g_old=g_old, t_old=t_old, notes=notes)


def _rows_of(r: Rows, g: _Grid, kept_groups: np.ndarray, func: str, unit: str, cluster: str | None
             ) -> EstimationRows:
    """The input rows of the kept groups; the fit's cluster must be constant within each of them."""
    new = np.full(g.g_old.shape[0], -1, dtype=np.int64)
    new[kept_groups] = np.arange(kept_groups.shape[0])
    grp = new[g.gk]
    sel = grp >= 0
    codes = None if r.cluster is None else r.cluster[g.idx[sel]]
    rows = EstimationRows(index=g.idx[sel], group=grp[sel], cluster=codes, n_input=r.n_input,
                          fingerprint=r.fingerprint)
    if codes is not None:
        group_clusters(func, str(cluster), codes, rows.group, int(kept_groups.shape[0]))
    return rows


def prepare(data: object, *, func: str, y: str, unit: str, time: str, treat: str, weights: str | None,
            cluster: str | None, raw: bool = False, covariates: list[str] | None = None,
            trends_lin: bool = False) -> DcdhData:
    """Read the columns and build the grid and the group-level design quantities (see module docstring).

    ``raw=True``: the grid as given, with no design-based restriction (DID_M, TWFE weights)."""
    covariates = list(covariates or [])
    r = read_rows(data, func=func, y=y, unit=unit, time=time, treat=treat, weights=weights, cluster=cluster,
                  covariates=covariates)
    g = _grid(r, func=func, y=y, unit=unit, time=time, weights=weights)
    if raw:
        return _raw(r, g, func=func, y=y, unit=unit, cluster=cluster)
    return _design(r, g, func=func, treat=treat, unit=unit, cluster=cluster, trends_lin=trends_lin)


def _raw(r: Rows, g: _Grid, *, func: str, y: str, unit: str, cluster: str | None) -> DcdhData:
    """The grid as given, with no design-based restriction (DID_M, TWFE weights)."""
    G, T = g.P.shape
    nan_g = np.full(G, np.nan)
    report = SampleReport(n_input_rows=r.n_input, n_obs=int(g.P.sum()), n_units=G, n_periods=T,
                          dropped=tuple(r.drops), balanced=bool(g.P.all()))
    notes = list(g.notes)
    n_missing_y_raw = int((g.P & np.isnan(g.Y)).sum())
    if n_missing_y_raw:
        notes.append(f"{n_missing_y_raw} cells with a missing outcome ({y}) kept with weight 0 (their treatment "
                     f"is kept)")
    return DcdhData(
        Y=g.Y, D=g.D, N=np.where(np.isnan(g.Y), 0.0, g.W), tv=g.tv, n_groups_total=G, d_sq=nan_g,
        d_code=np.zeros(G, dtype=np.int64), n_d=1, F=nan_g, T_g=nan_g, S=nan_g, d_fg=nan_g,
        cohort_code=np.zeros(G, dtype=np.int64), L=nan_g, L_pl=nan_g, T_max=int(g.tv.max()),
        group_labels=r.unit_labels[g.g_old], period_labels=r.time_labels[g.t_old],
        report=report.with_notes(*notes), rows=_rows_of(r, g, np.arange(G), func, unit, cluster),
    )


@dataclass(eq=False)
class _Switches:
    """The result of the package's sample restrictions on the grid (arrays over all G grid rows)."""

    P: np.ndarray
    F: np.ndarray
    d_sq: np.ndarray
    d_code: np.ndarray
    n_d: int
    changed: np.ndarray
    alive: np.ndarray
    tcols: np.ndarray
    T_max: int
    drops: list[Dropped]


def _restrict(g: _Grid, func: str, treat: str) -> _Switches:
    """Baselines, first-switch dates and the package's drops: cells after a group was both above and below its
    baseline, baselines without variation in the switching date, periods without a not-yet-switched group."""
    P = g.P.copy()
    D, tv = g.D, g.tv
    G, T = P.shape
    drops: list[Dropped] = []
    # baseline treatment: at the group's first observed period
    _, first_col = _first_true(P)
    d_sq = D[np.arange(G), first_col]
    # drop cells after which the group has been both strictly above and strictly below its baseline
    with np.errstate(invalid="ignore"):
        inc = np.logical_or.accumulate(P & (d_sq[:, None] < D), axis=1)
        dec = np.logical_or.accumulate(P & (d_sq[:, None] > D), axis=1)
    both = P & inc & dec
    if both.any():
        drops.append(Dropped("cells after the group's treatment was both above and below its baseline",
                             int(both.sum())))
        P &= ~both
    with np.errstate(invalid="ignore"):
        changed = np.logical_or.accumulate(P & (np.abs(D - d_sq[:, None]) > 0), axis=1)
    has_sw, f_col = _first_true(changed & P)
    F = np.where(has_sw, tv[np.maximum(f_col, 0)], 0).astype(np.float64)
    alive = np.ones(G, dtype=bool)
    # baseline values whose groups all share one switching date: no comparison possible
    d_vals, d_code = np.unique(d_sq, return_inverse=True)
    n_d = int(d_vals.shape[0])
    fmin = np.full(n_d, np.inf)
    fmax = np.full(n_d, -np.inf)
    np.minimum.at(fmin, d_code, F)
    np.maximum.at(fmax, d_code, F)
    rows_per_g = P.sum(axis=1)
    nrow_d = np.bincount(d_code, weights=rows_per_g, minlength=n_d)
    novar = ~(fmax[d_code] > fmin[d_code]) | (nrow_d[d_code] < 2)
    if novar.any():
        drops.append(Dropped("groups whose baseline treatment value has no variation in the first-switch date",
                             int(rows_per_g[novar].sum()), int(novar.sum())))
        alive &= ~novar
        P &= alive[:, None]
    # periods with no not-yet-switched group of the same baseline
    cell_d = np.broadcast_to(d_code[:, None], P.shape)
    nc_any = np.zeros((n_d, T), dtype=bool)
    gi, ti = np.nonzero(P & ~changed)
    nc_any[d_code[gi], ti] = True
    no_ctrl = P & ~nc_any[cell_d, np.broadcast_to(np.arange(T)[None, :], P.shape)]
    if no_ctrl.any():
        drops.append(Dropped("periods in which no group with the same baseline treatment has kept it",
                             int(no_ctrl.sum())))
        P &= ~no_ctrl
    alive &= P.any(axis=1)
    if not P.any():
        raise DesignError(
            f"{func}: no treatment effect can be estimated: no group keeps its baseline treatment while another "
            f"group with the same baseline switches (Assumption 1 of de Chaisemartin & D'Haultfoeuille). "
            f"Fix: check {treat!r}; every switching date needs not-yet-switched groups with the same baseline."
        )
    tcols = np.flatnonzero(P.any(axis=0))
    T_max = int(tv[tcols].max())
    F[F == 0] = T_max + 1
    return _Switches(P=P, F=F, d_sq=d_sq, d_code=d_code, n_d=n_d, changed=changed, alive=alive, tcols=tcols,
                     T_max=T_max, drops=drops)


def _design(r: Rows, g: _Grid, *, func: str, treat: str, unit: str, cluster: str | None,
            trends_lin: bool) -> DcdhData:
    """The package's restrictions (:func:`_restrict`), gaps before the switch, ``trends_lin``'s differencing,
    and the group-level quantities of the kept groups."""
    sw = _restrict(g, func, treat)
    P, F, alive, tcols, T_max, drops = sw.P, sw.F, sw.alive, sw.tcols, sw.T_max, sw.drops
    tv = g.tv
    max_t_obs = np.where(g.P, tv[None, :], -1).max(axis=1)
    # gaps just before the switch: the switch date is unknown, use the group as a control until the gap
    before = P & (tv[None, :] < F[:, None])
    ldbf = np.where(before, tv[None, :], -1).max(axis=1).astype(np.float64)
    gap = (T_max + 1 > F) & (ldbf < F - 1)
    trunc = np.full(F.shape[0], np.nan)
    Y = np.where(P, g.Y, np.nan)
    D = np.where(P, g.D, np.nan)
    X = None if g.X is None else np.where(P[:, :, None], g.X, np.nan)
    if gap.any():
        Y[gap[:, None] & (tv[None, :] > ldbf[:, None])] = np.nan
        trunc[gap] = ldbf[gap] + 1
        F[gap] = T_max + 1
    never = np.asarray(T_max + 1 == F)
    trunc[never] = max_t_obs[never] + 1
    if trends_lin:  # as the package: drop groups switching at period 2, first-difference Y (and X), drop period 1
        f2 = alive & (F == 2)
        if f2.any():
            drops.append(Dropped("groups whose treatment first changes at the second period (trends_lin)",
                                 int(P[f2].sum()), int(f2.sum())))
            alive &= ~f2
            P &= alive[:, None]
        Y, X = _first_difference_by_row(P, Y, X)
        first = tv == 1
        if (P[:, first]).any():
            drops.append(Dropped("first period (trends_lin: outcomes in first differences)",
                                 int(P[:, first].sum())))
        P[:, first] = False
        Y[:, first] = np.nan
        D = np.where(P, D, np.nan)
        if X is not None:
            X[:, first] = np.nan
        tcols = tcols[~first[tcols]]
    # keep the period columns still present (the balanced panel of the remaining rows)
    Y, D, P, W = Y[:, tcols], D[:, tcols], P[:, tcols], g.W[:, tcols]
    if X is not None:
        X = X[:, tcols]
    tv = tv[tcols]
    return _groups(r, g, sw, Y=Y, D=D, P=P, W=W, X=X, tv=tv, trunc=trunc, never=never, tcols=tcols,
                   func=func, unit=unit, cluster=cluster)


def _groups(r: Rows, g: _Grid, sw: _Switches, *, Y: np.ndarray, D: np.ndarray, P: np.ndarray, W: np.ndarray,
            X: np.ndarray | None, tv: np.ndarray, trunc: np.ndarray, never: np.ndarray, tcols: np.ndarray,
            func: str, unit: str, cluster: str | None) -> DcdhData:
    """``T_g``, the switchers' direction ``S_g``, ``d_fg``, ``L_g``, the drop of switchers without a first stage,
    and the prepared data of the kept groups with their sample report."""
    F, d_sq, d_code, n_d, alive, T_max, drops = sw.F, sw.d_sq, sw.d_code, sw.n_d, sw.alive, sw.T_max, sw.drops
    G_total = F.shape[0]
    N = np.where(np.isnan(Y) | np.isnan(D), 0.0, W)
    F_trunc = np.where(np.isnan(trunc), F, np.minimum(F, trunc))
    Tmax_d = np.full(n_d, -np.inf)
    np.maximum.at(Tmax_d, d_code[alive], F_trunc[alive])
    T_g = Tmax_d[d_code] - 1
    # switcher direction: average treatment from F_g to T_g above (in) or below (out) the baseline
    post = (tv[None, :] >= F[:, None]) & (tv[None, :] <= T_g[:, None]) & ~np.isnan(D)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_post = np.where(post, D, 0.0).sum(axis=1) / post.sum(axis=1)
        bad = ((avg_post == d_sq) | np.isnan(avg_post)) & (T_g + 1 != F) & alive
    if bad.any():
        drops.append(Dropped("switchers whose post-switch treatment averages their baseline (no first stage)",
                             int(P[bad].sum()), int(bad.sum())))
        alive &= ~bad
    S = np.where(T_max + 1 != F, (avg_post > d_sq).astype(np.float64), np.nan)
    S[np.isnan(avg_post)] = np.nan
    pos = np.minimum(np.searchsorted(tv, F), tv.size - 1)
    d_fg = np.where(tv[pos] == F, D[np.arange(G_total), pos], np.nan)
    d_fg = np.where(np.isnan(d_fg) & never, d_sq, d_fg)
    L = T_g - F + 1
    L_pl = np.where(F >= 3, np.minimum(L, F - 2), np.nan)
    # keep only the alive groups
    keep_g = np.flatnonzero(alive)
    report = SampleReport(
        n_input_rows=r.n_input, n_obs=int(P[keep_g].sum()), n_units=int(keep_g.size), n_periods=int(tv.size),
        dropped=tuple(r.drops + drops), balanced=bool(P[keep_g].all()),
    )
    n_missing_y = int((P[keep_g] & np.isnan(Y[keep_g])).sum())
    notes = [f"Groups in the denominator G of every DID (as the package): {G_total}"]
    if n_missing_y:
        notes.append(f"{n_missing_y} cells with a missing outcome kept with weight 0 (their treatment defines the "
                     f"switching dates)")
    report = report.with_notes(*notes, *g.notes)
    d_code_k = d_code[keep_g]
    fg_code = factorize(d_fg[keep_g], sort=True)[0] + 1  # NaN -> 0
    cohort_key = (d_code_k * (T_max + 2) + F[keep_g].astype(np.int64)) * (int(fg_code.max()) + 1) + fg_code
    cohort_code = np.unique(cohort_key, return_inverse=True)[1].ravel()
    return DcdhData(
        Y=Y[keep_g], D=D[keep_g], N=N[keep_g], tv=tv, n_groups_total=G_total, d_sq=d_sq[keep_g],
        d_code=d_code_k, n_d=n_d, F=F[keep_g], T_g=T_g[keep_g], S=S[keep_g], d_fg=d_fg[keep_g],
        cohort_code=cohort_code, L=L[keep_g], L_pl=L_pl[keep_g], T_max=T_max,
        group_labels=r.unit_labels[g.g_old[keep_g]], period_labels=r.time_labels[g.t_old[tcols]], report=report,
        rows=_rows_of(r, g, keep_g, func, unit, cluster), X=None if X is None else X[keep_g],
    )
