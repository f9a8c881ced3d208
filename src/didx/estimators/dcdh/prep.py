"""Sample preparation for the de Chaisemartin-D'Haultfoeuille estimators (group x period matrices).

The rows are laid out as a balanced ``G x T`` grid (absent cells are NaN with weight 0) and every group-level
quantity of DIDmultiplegtDYN's ``did_multiplegt_main`` is computed on it with numpy: the status-quo (baseline)
treatment ``d_sq``, the first-switch date ``F_g``, the last period with a control of the same baseline ``T_g``,
the switcher direction ``S_g``, the treatment at the switch ``d_fg`` and the number of estimable effects ``L_g``.
Every dropped row or group is counted in the sample report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx._errors import DataError, DesignError
from didx._frame import factorize, numeric_column, read_columns
from didx._sample import Dropped, SampleReport


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
    cluster: np.ndarray  # (G,) cluster code per kept group (the group itself by default)
    group_labels: np.ndarray
    period_labels: np.ndarray
    report: SampleReport
    X: np.ndarray | None = None  # (G, T, K) time-varying controls, NaN when absent


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


def prepare(data: object, *, func: str, y: str, group: str, time: str, treat: str, weights: str | None,
            cluster: str | None, raw: bool = False, controls: list[str] | None = None,
            trends_lin: bool = False) -> DcdhData:
    """Read the columns and build the grid and the group-level design quantities (see module docstring)."""
    controls = list(controls or [])
    roles: dict[str, object] = {"y": y, "group": group, "time": time, "treat": treat, "weights": weights,
                                "cluster": cluster, "controls": controls}
    wanted = list(dict.fromkeys(c for c in [y, group, time, treat, weights, cluster, *controls] if c is not None))
    cols = read_columns(data, wanted, func, roles)
    n_input = cols.n_rows
    yv = numeric_column(cols, y, "outcome (y)", func, "Fix: pass a numeric outcome column.")
    dv = numeric_column(cols, treat, "treatment", func,
                        "Fix: pass a numeric treatment (binary, or discrete with ordered values).")
    if cols.kinds[time] not in ("numeric", "datetime"):
        raise DataError(
            f"{func}: the time column {time!r} must be numeric (e.g. a year) or date-like, but it holds values such "
            f"as {cols.arrays[time][0]!r}. Fix: convert it, e.g. with pandas.to_datetime or astype(int)."
        )
    g_codes, g_labels = factorize(cols.arrays[group], sort=True)
    t_raw = cols.arrays[time]
    t_codes, t_labels = factorize(t_raw if cols.kinds[time] == "datetime" else np.asarray(t_raw, dtype=np.float64),
                                  sort=True)
    xv = [numeric_column(cols, c, "control", func, "Fix: pass numeric time-varying controls (encode categories "
                         "as 0/1 columns).") for c in controls]
    wv = np.ones(n_input) if weights is None else numeric_column(cols, weights, "weights", func,
                                                                 "Fix: pass a numeric column of weights.")
    if weights is not None and np.any(wv[np.isfinite(wv)] < 0):
        raise DataError(f"{func}: the weights column {weights!r} has negative values. Fix: weights must be >= 0.")
    cl_codes = None
    if cluster is not None and cluster != group:
        cl_codes, _ = factorize(cols.arrays[cluster], sort=False)

    keep = np.ones(n_input, dtype=bool)
    drops: list[Dropped] = []

    def drop(mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        if newly.any():
            drops.append(Dropped(reason, int(newly.sum())))
            keep[newly] = False

    drop(g_codes < 0, f"missing group ({group})")
    drop(t_codes < 0, f"missing time ({time})")
    for c, x in zip(controls, xv, strict=True):  # as the package: rows with a missing control are dropped first
        drop(np.isnan(x), f"missing control ({c})")
    drop(np.isnan(dv), f"missing treatment ({treat}); treated as absent cells (no imputation)")
    if cl_codes is not None:
        drop(cl_codes < 0, f"missing cluster ({cluster})")
    # groups whose outcome is missing in every period are dropped (as the package does)
    has_y = np.zeros(max(int(g_codes.max()) + 1, 1), dtype=bool)
    ok = keep & np.isfinite(yv)
    has_y[g_codes[ok]] = True
    no_y = keep & ~has_y[np.maximum(g_codes, 0)]
    if no_y.any():
        drops.append(Dropped(f"groups whose outcome ({y}) is always missing", int(no_y.sum()),
                             int(np.unique(g_codes[no_y]).size)))
        keep[no_y] = False
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DesignError(f"{func}: no rows left after dropping missing values. Fix: check {y!r}, {treat!r}.")
    gk, g_old = factorize(g_codes[idx], sort=True)
    tk, t_old = factorize(t_codes[idx], sort=True)
    G, T = int(g_old.shape[0]), int(t_old.shape[0])
    key = gk * T + tk
    if np.bincount(key, minlength=G * T).max() > 1:
        raise DataError(
            f"{func}: duplicate ({group}, {time}) rows: each group may appear once per period. Fix: aggregate "
            f"the data to the group x period level first (weighted means, with the cell size as weights=)."
        )
    tv = t_old.astype(np.int64) + 1  # R's time_XX: 1-based rank among all periods of the data
    Y = np.full((G, T), np.nan)
    D = np.full((G, T), np.nan)
    W = np.zeros((G, T))
    Y[gk, tk] = yv[idx]
    D[gk, tk] = dv[idx]
    wk = wv[idx]
    W[gk, tk] = np.where(np.isfinite(wk), wk, 0.0)
    weight_notes = []
    n_missing_w = int(np.count_nonzero(~np.isfinite(wk)))
    if weights is not None and n_missing_w:
        weight_notes.append(f"{n_missing_w} cells with a missing weight ({weights}) kept with weight 0 (as the "
                            f"package)")
    P = np.zeros((G, T), dtype=bool)
    P[gk, tk] = True
    X = None
    if controls:
        X = np.full((G, T, len(controls)), np.nan)
        X[gk, tk, :] = np.column_stack(xv)[idx]
    cl_group = np.arange(G)
    if cl_codes is not None:
        cg = np.full(G, -1, dtype=np.int64)
        cg[gk] = cl_codes[idx]
        if np.any(cg[gk] != cl_codes[idx]):
            raise DataError(
                f"{func}: the cluster column {cluster!r} varies within a group. Groups must be nested within "
                f"clusters. Fix: pass a coarser cluster= (e.g. the state of a county), or none."
            )
        cl_group = factorize(cg, sort=True)[0]
    G_total = G
    if raw:  # the grid as given, no design-based restriction (DID_M, TWFE weights)
        nan_g = np.full(G, np.nan)
        report = SampleReport(n_input_rows=n_input, n_obs=int(P.sum()), n_units=G, n_periods=T,
                              dropped=tuple(drops), balanced=bool(P.all()))
        n_missing_y_raw = int((P & np.isnan(Y)).sum())
        if n_missing_y_raw:
            weight_notes.append(f"{n_missing_y_raw} cells with a missing outcome ({y}) kept with weight 0 (their "
                                f"treatment is kept)")
        report = report.with_notes(*weight_notes)
        return DcdhData(
            Y=Y, D=D, N=np.where(np.isnan(Y), 0.0, W), tv=tv, n_groups_total=G, d_sq=nan_g,
            d_code=np.zeros(G, dtype=np.int64), n_d=1, F=nan_g, T_g=nan_g, S=nan_g, d_fg=nan_g,
            cohort_code=np.zeros(G, dtype=np.int64), L=nan_g,
            L_pl=nan_g, T_max=int(tv.max()), cluster=cl_group, group_labels=g_labels[g_old],
            period_labels=t_labels[t_old], report=report,
        )

    # baseline treatment: at the group's first observed period
    _, first_col = _first_true(P)
    d_sq = D[np.arange(G), first_col]
    max_t_obs = np.where(P, tv[None, :], -1).max(axis=1)
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
    # gaps just before the switch: the switch date is unknown, use the group as a control until the gap
    before = P & (tv[None, :] < F[:, None])
    ldbf = np.where(before, tv[None, :], -1).max(axis=1).astype(np.float64)
    gap = (T_max + 1 > F) & (ldbf < F - 1)
    trunc = np.full(G, np.nan)
    Y = np.where(P, Y, np.nan)
    D = np.where(P, D, np.nan)
    if X is not None:
        X = np.where(P[:, :, None], X, np.nan)
    if gap.any():
        Y[gap[:, None] & (tv[None, :] > ldbf[:, None])] = np.nan
        trunc[gap] = ldbf[gap] + 1
        F[gap] = T_max + 1
    never = T_max + 1 == F
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
    Y, D, P = Y[:, tcols], D[:, tcols], P[:, tcols]
    if X is not None:
        X = X[:, tcols]
    W = W[:, tcols]
    tv = tv[tcols]
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
    d_fg = np.where(tv[pos] == F, D[np.arange(G), pos], np.nan)
    d_fg = np.where(np.isnan(d_fg) & never, d_sq, d_fg)
    L = T_g - F + 1
    L_pl = np.where(F >= 3, np.minimum(L, F - 2), np.nan)
    # keep only the alive groups
    keep_g = np.flatnonzero(alive)
    report = SampleReport(
        n_input_rows=n_input, n_obs=int(P[keep_g].sum()), n_units=int(keep_g.size), n_periods=int(tv.size),
        dropped=tuple(drops), balanced=bool(P[keep_g].all()),
    )
    n_missing_y = int((P[keep_g] & np.isnan(Y[keep_g])).sum())
    notes = [f"Groups in the denominator G of every DID (as the package): {G_total}"]
    if n_missing_y:
        notes.append(f"{n_missing_y} cells with a missing outcome kept with weight 0 (their treatment defines the "
                     f"switching dates)")
    report = report.with_notes(*notes, *weight_notes)
    d_code_k = d_code[keep_g]
    fg_code = factorize(d_fg[keep_g], sort=True)[0] + 1  # NaN -> 0
    cohort_key = (d_code_k * (T_max + 2) + F[keep_g].astype(np.int64)) * (int(fg_code.max()) + 1) + fg_code
    cohort_code = np.unique(cohort_key, return_inverse=True)[1].ravel()
    return DcdhData(
        Y=Y[keep_g], D=D[keep_g], N=N[keep_g], tv=tv, n_groups_total=G_total, d_sq=d_sq[keep_g],
        d_code=d_code_k, n_d=n_d, F=F[keep_g], T_g=T_g[keep_g], S=S[keep_g], d_fg=d_fg[keep_g],
        cohort_code=cohort_code, L=L[keep_g],
        L_pl=L_pl[keep_g], T_max=T_max, cluster=factorize(cl_group[keep_g], sort=True)[0],
        group_labels=g_labels[g_old[keep_g]], period_labels=t_labels[t_old[tcols]], report=report,
        X=None if X is None else X[keep_g],
    )
