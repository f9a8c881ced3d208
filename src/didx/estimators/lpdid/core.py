"""The LP-DiD regressions: one long-difference regression per horizon on clean controls, and their unit-level
influence sums (for a joint cluster-robust covariance of all horizons).

Regression ``r`` (a horizon, or a pooled window) has, for each base period ``t``, an outcome that is a linear
combination of the unit's outcomes, ``l_it = sum_s L[t, s] y_is`` (``y_{t+h} - y_{t-1}``; ``y_{t-h} - y_{t-1}``;
the mean of ``y_t .. y_{t+H}`` minus ``y_{t-1}``; the mean of ``y_{t-Q} .. y_{t-2}`` minus ``y_{t-1}``), and a
sample of rows: the units treated at ``t`` (``Delta D_it = 1``) and the clean controls, units not treated by
``t + c`` (``c = h`` for horizon ``h >= 0``, ``H`` for the pooled post window, 0 for the leads). The regression is
``l_it = beta Delta D_it + delta_t + e_it`` (weighted by ``1 / (1 - p_t)`` when reweighted, ``p_t`` the treated share
of the sample at ``t``, which gives every treated observation the same weight).

With one regressor and period effects, ``beta = sum_t w_t [(1 - p_t) S1_t - p_t S0_t] / A`` with ``S1_t`` /
``S0_t`` the sums of ``l`` over the treated / control rows at ``t`` and ``A = sum_t w_t n1_t (1 - p_t)``, and a unit's
influence ``sum_t w_t xt_it e_it / A`` (``xt = Delta D - p_t``) is affine in its outcome vector,
``a_g + B_g y_i``, with ``a_g, B_g`` fixed by its cohort (``SCALE.md``). On a balanced panel without covariates
(:func:`fit_cells`) every regression therefore runs from cohort x period sums, and the influence sums of all units
and regressions from one product per cohort, ``Y_g B_g'``. Otherwise (:func:`fit_rows`) each regression is a
least-squares fit on its rows with the period effects absorbed. Both give the numbers of fixest's ``feols(l ~
Delta D | t, cluster = ~unit)`` on the same sample; the tests check that they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from didx._errors import DesignError
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols

_OTHER_CONTROL = ", or use control='clean' (never treated and not yet treated units)"


@dataclass(frozen=True)
class Spec:
    """One regression: its label, event time (NaN for pooled), outcome weights and clean-control horizon."""

    label: str
    event_time: float
    kind: str          # "post", "pre", "pooled_post", "pooled_pre"
    h: int             # horizon (post: h; pre: -h as a positive lag; pooled: the window end)
    clean: int         # controls must be untreated through t + clean


def lhs_matrix(spec: Spec, t: int, T: int) -> np.ndarray | None:
    """``L[t, :]``: the outcome of base period ``t`` as weights over the periods (None: not defined)."""
    row = np.zeros(T)
    if t < 1:
        return None
    if spec.kind == "post":
        if t + spec.h > T - 1:
            return None
        row[t + spec.h] += 1.0
    elif spec.kind == "pre":
        if t - spec.h < 0:
            return None
        row[t - spec.h] += 1.0
    elif spec.kind == "pooled_post":
        if t + spec.h > T - 1:
            return None
        row[t:t + spec.h + 1] += 1.0 / (spec.h + 1)
    else:  # pooled_pre: mean of y_{t-Q} .. y_{t-2}
        if t - spec.h < 0:
            return None
        row[t - spec.h:t - 1] += 1.0 / (spec.h - 1)
    row[t - 1] -= 1.0
    return row


def in_sample(spec: Spec, g: np.ndarray, t: int, control: str) -> tuple[np.ndarray, np.ndarray]:
    """Treated (``g == t``) and control flags of cohorts ``g`` (period codes; ``inf`` never treated) at ``t``."""
    treated = g == t
    clean = g > t + spec.clean
    if control == "never":
        clean &= ~np.isfinite(g)
    elif control == "not_yet":
        clean &= np.isfinite(g)
    return treated, clean


@dataclass(frozen=True)
class Fits:
    """Every regression's estimate, sample size, K and the units' influence sums (N x R)."""

    coef: np.ndarray
    n_obs: np.ndarray
    k: np.ndarray
    n_treated: np.ndarray
    influence: np.ndarray      # (N, R): sum over a unit's rows of its influence on beta_r
    present: np.ndarray        # (N, R): the unit has a row in regression r
    covariate_coef: tuple[dict[str, float], ...] = ()


def fit_cells(Y: np.ndarray, g_unit: np.ndarray, specs: Sequence[Spec], control: str, reweight: bool) -> Fits:
    """All regressions from cohort x period sums on a balanced panel (``Y``: N x T, ``g_unit``: period code of
    each unit's cohort, ``inf`` never treated)."""
    N, T = Y.shape
    cohorts, gcode = np.unique(g_unit, return_inverse=True)
    gcode = gcode.reshape(-1)
    G = cohorts.shape[0]
    n_g = np.bincount(gcode, minlength=G).astype(np.float64)
    Ysum = np.empty((G, T))
    for s in range(T):
        Ysum[:, s] = np.bincount(gcode, weights=Y[:, s], minlength=G)
    R = len(specs)
    coef, n_obs, k, n_tr = np.zeros(R), np.zeros(R), np.zeros(R), np.zeros(R)
    B = np.zeros((G, R, T))
    a = np.zeros((G, R))
    present = np.zeros((G, R), dtype=bool)
    for r, spec in enumerate(specs):
        rows = []  # (t, L_t, treated cohorts mask, control mask, w_t, p_t)
        num = den = 0.0
        for t in range(1, T):
            L = lhs_matrix(spec, t, T)
            if L is None:
                continue
            tr, cl = in_sample(spec, cohorts, t, control)
            n1, n0 = float(n_g[tr].sum()), float(n_g[cl].sum())
            if n1 + n0 == 0 or (reweight and (n1 == 0 or n0 == 0)):
                continue
            p = n1 / (n1 + n0)
            w = 1.0 / (1.0 - p) if reweight else 1.0
            lsum = Ysum @ L  # per cohort: sum of l over its units
            S1, S0 = float(lsum[tr].sum()), float(lsum[cl].sum())
            num += w * ((1.0 - p) * S1 - p * S0)
            den += w * n1 * (1.0 - p)
            rows.append((t, L, tr, cl, w, p, (S1 + S0) / (n1 + n0)))
            n_obs[r] += n1 + n0
            n_tr[r] += n1
        if den <= 0:
            raise DesignError(
                f"lpdid: no treated observation with a clean control at {spec.label} (every period has only "
                f"treated or only control units; control={control!r}). Fix: shorten the window (pre_window / "
                f"post_window){_OTHER_CONTROL if control != 'clean' else ''}."
            )
        beta = num / den
        coef[r] = beta
        k[r] = 1 + len(rows)
        for _t, L, tr, cl, w, p, lbar in rows:
            for mask, xt in ((tr, 1.0 - p), (cl, -p)):
                B[mask, r, :] += (w * xt / den) * L
                a[mask, r] -= w * xt * (lbar + beta * xt) / den
                present[mask, r] = True
    influence = np.empty((N, R))
    order = np.argsort(gcode, kind="stable")
    bounds = np.searchsorted(gcode[order], np.arange(G + 1))
    for c in range(G):
        idx = order[bounds[c]:bounds[c + 1]]
        influence[idx] = Y[idx] @ B[c].T + a[c]
    return Fits(coef=coef, n_obs=n_obs, k=k, n_treated=n_tr, influence=influence, present=present[gcode])


def fit_rows(Y: np.ndarray, observed: np.ndarray, g_unit: np.ndarray, W: np.ndarray | None,
             cov_names: Sequence[str], specs: Sequence[Spec], control: str, reweight: bool) -> Fits:
    """Each regression on its rows (unbalanced panels, covariates): least squares with period effects absorbed.

    ``Y`` is N x T with NaN where a unit is not observed; ``W`` (p, N, T) the covariates at each unit-period.
    """
    N, T = Y.shape
    R = len(specs)
    coef, n_obs, k, n_tr = np.zeros(R), np.zeros(R), np.zeros(R), np.zeros(R)
    influence = np.zeros((N, R))
    present = np.zeros((N, R), dtype=bool)
    cov_coef: list[dict[str, float]] = []
    units = np.arange(N)
    for r, spec in enumerate(specs):
        parts_u, parts_t, parts_y, parts_d = [], [], [], []
        for t in range(1, T):
            L = lhs_matrix(spec, t, T)
            if L is None:
                continue
            tr, cl = in_sample(spec, g_unit, t, control)
            use = (tr | cl) & observed[:, t]
            cols = np.flatnonzero(L)
            lhs = Y[:, cols] @ L[cols]  # NaN where an outcome it needs is missing
            use &= np.isfinite(lhs)
            idx = units[use]
            parts_u.append(idx)
            parts_t.append(np.full(idx.shape[0], t))
            parts_y.append(lhs[idx])
            parts_d.append(tr[idx].astype(np.float64))
        u = np.concatenate(parts_u) if parts_u else np.empty(0, np.int64)
        tt = np.concatenate(parts_t) if parts_t else np.empty(0, np.int64)
        yy = np.concatenate(parts_y) if parts_y else np.empty(0)
        dd = np.concatenate(parts_d) if parts_d else np.empty(0)
        wts = None
        if reweight and u.size:
            n1 = np.bincount(tt, weights=dd, minlength=T)
            nt = np.bincount(tt, minlength=T).astype(np.float64)
            ok_t = (n1 > 0) & (n1 < nt)
            keep = ok_t[tt]
            u, tt, yy, dd = u[keep], tt[keep], yy[keep], dd[keep]
            p = np.where(ok_t, n1 / np.where(nt > 0, nt, 1.0), 0.0)
            wts = (1.0 / (1.0 - p))[tt]
        if u.size == 0 or dd.min() == dd.max():
            raise DesignError(
                f"lpdid: no treated observation with a clean control at {spec.label} (control={control!r}). Fix: "
                f"shorten the window (pre_window / post_window){_OTHER_CONTROL if control != 'clean' else ''}."
            )
        X = dd[:, None]
        names = ["treat"]
        if W is not None and W.shape[0]:
            X = np.column_stack([dd, W[:, u, tt].T])
            names += list(cov_names)
        _, tcode = np.unique(tt, return_inverse=True)
        fe = FixedEffects([tcode.reshape(-1)], ["time"], weights=wts)
        fit = fit_ols(yy, X, names, fe=fe, weights=wts, func="lpdid", protected=("treat",))
        psi = fit.scores() @ fit.bread[0]
        coef[r] = fit.coef[0]
        n_obs[r] = fit.n_obs
        k[r] = fit.n_coef + fe.n_params()
        n_tr[r] = float(dd.sum())
        influence[:, r] = np.bincount(u, weights=psi, minlength=N)
        present[:, r] = np.bincount(u, minlength=N) > 0
        cov_coef.append({n: float(b) for n, b in zip(fit.names[1:], fit.coef[1:], strict=True)})
    return Fits(coef=coef, n_obs=n_obs, k=k, n_treated=n_tr, influence=influence, present=present,
                covariate_coef=tuple(cov_coef))
