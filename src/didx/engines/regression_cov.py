"""TWFE and the TWFE event study with covariates through the engines (time-varying controls ``W``).

``y_it = a_i + l_t + X[g_i, t] b + W_it' c + e_it``: the cohort x period regressors ``X`` (the treatment, or the
event-time indicators) are constant within a group of units with the same cohort and observation pattern, the
covariates are not. With the unit effects concentrated out (each unit's rows centred on its own means) the normal
equations of ``(l, b, c)`` need

- the time and ``X`` block and its right-hand side from the outcome moments of :mod:`didx.engines.stats`, as
  without covariates (:func:`didx.engines.regression.regress`);
- the cross block ``sum_j sum_t Z~_jt' SW_jt``: the within-demeaned rows ``Z~`` of a group ``j`` times the sums of
  the within-demeaned covariates by (cohort, pattern, period);
- ``sum_it W~_it W~_it'`` and ``sum_it W~_it y~_it``, summed over any grouping.

:func:`didx.engines.plan_reg.within_sql` gets the last two in one pass (the rows centred on their unit's means
before any product, so a covariate constant within units, such as mpdta's ``lpop``, leaves rounding noise
only and is dropped for collinearity as in memory). Collinearity is judged on the two-way demeaned cross-product
(the Schur complement of the time block) with the in-memory rule (:func:`didx.linalg.ols.fit_ols` with absorbed
effects: each column's centred sum of squares, its raw one as the floor; ``twfe`` and the event study alike). A
unit's cluster score is no longer affine in sums fixed in advance (it holds products of its covariates and
residuals), so one more pass after the coefficients (:func:`didx.engines.plan_reg.scores_sql`) returns the
residuals' sums and sums of products by cohort (clustering by unit) or their sums by (cohort, cluster): with ``L``
the rows of the inverse normal matrix for ``(b, c)``, unit ``i``'s share of the sandwich ``L s_i`` is
``sum_t H[g_i, t] e_it + L_W q_i`` (``H`` a cohort x period table, ``q_i = sum_t W~_it e_it``), so the CR1
covariance needs no unit-level data. Rows with a missing or infinite covariate are dropped and counted as in
memory (:func:`prepare`); weights stay refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError
from didx._frame import _check_magnitude
from didx._sample import Dropped
from didx._validate import as_list, check_columns
from didx.engines import plan, plan_reg
from didx.engines.regcore import CellFit, _cr1_inference, ssc_k, time_dummies, within_rows
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, _check_kinds
from didx.inference.vcov import SSC
from didx.linalg.ols import independent_columns


@dataclass(frozen=True, eq=False)
class Covariates:
    """The covariates of an engine regression: names, the plans' roles, the report's drops when covariates
    dropped rows (None otherwise), the input's row count and which covariates are constant on the kept rows."""

    names: tuple[str, ...]
    roles: plan.Roles
    dropped: tuple[Dropped, ...] | None
    n_input: int
    constant: np.ndarray

    def fix_report(self, m: Moments) -> Moments:
        """The moments' report with the drops counted on the whole input (the covariates' reasons in place)."""
        if self.dropped is None:
            return m
        return dataclasses.replace(m, report=dataclasses.replace(m.report, n_input_rows=self.n_input,
                                                                  dropped=self.dropped))


def prepare(src: EngineInput, func: str, *, y: str, unit: str, time: str, cohort: str, cluster: str | None,
            covariates: str | Sequence[str]) -> tuple[EngineInput, Covariates]:
    """Check the covariates (present, numeric, not overflowing), count the rows they drop, and return the input
    without those rows (for :func:`didx.engines.stats.unit_moments`) with the :class:`Covariates`."""
    cols = list(src.columns)
    names = check_columns(func, {"y": y, "time": time, "unit": unit, "cohort": cohort,
                                 "covariates": as_list(covariates), "cluster": cluster}, cols, cols)["covariates"]
    _check_kinds(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cluster))
    for name in names:
        if src.kinds[name] != "numeric":
            qn = src.quote(name)
            got = src.run(f"SELECT {qn} AS v FROM {src.table} WHERE {qn} IS NOT NULL LIMIT 1")
            example = got["v"][0] if len(got["v"]) else None
            example = example.item() if isinstance(example, np.generic) else example
            raise DataError(
                f"{func}: the covariate column {name!r} must be numeric, but it holds "
                f"{'dates' if src.kinds[name] == 'datetime' else 'non-numeric values'} (e.g. {example!r}). Fix: "
                f"encode it as numbers (dummies)."
            )
    roles = plan.Roles(y=y, time=time, unit=unit, cohort=cohort, cluster=cluster,
                       unit_numeric=src.kinds[unit] == "numeric",
                       cluster_numeric=cluster is not None and src.kinds[cluster] == "numeric")
    out = src.run(plan_reg.reasons_sql(roles, src.quote, src.table, names))
    reason = out["reason"].astype(np.int64)
    n = out["n"].astype(np.int64)
    kept = reason == 0
    const = np.zeros(len(names), dtype=bool)
    for k, name in enumerate(names):
        lo, hi = np.nanmin(out[f"lo{k}"].astype(float)), np.nanmax(out[f"hi{k}"].astype(float))
        _check_magnitude(func, "covariates", name, None if np.isnan(lo) else (float(lo), float(hi)))
        if kept.any():
            const[k] = float(out[f"klo{k}"].astype(float)[kept][0]) == float(out[f"khi{k}"].astype(float)[kept][0])
    codes = plan_reg.reason_codes(len(names))
    counts = {int(r): int(c) for r, c in zip(reason, n, strict=True)}
    n_input = int(n.sum())
    cov_codes = [c for c in codes if 10 <= c < 10 + 2 * len(names)]
    if not any(counts.get(c, 0) for c in cov_codes):
        return src, Covariates(tuple(names), roles, None, n_input, const)
    lost = src.run(plan_reg.lost_units_sql(roles, src.quote, src.table, names))
    lost_by = {int(r): int(c) for r, c in zip(lost["last_reason"], lost["n"], strict=True)}
    role = {1: time, 2: time, 3: unit, 4: y, 5: y}
    dropped = []
    for c in codes:
        if not counts.get(c, 0):
            continue
        if c <= 5:
            text = f"{plan.REASONS[c - 1]} ({role[c]})"
        elif c < 10 + 2 * len(names):
            text = f"{'missing' if c % 2 == 0 else 'infinite'} covariate ({names[(c - 10) // 2]})"
        else:
            text = f"missing cluster ({cluster})"
        dropped.append(Dropped(reason=text, n_rows=counts[c], n_units=lost_by.get(c, 0)))
    filtered = dataclasses.replace(src, table=plan_reg.filtered_table(roles, src.quote, src.table, names))
    return filtered, Covariates(tuple(names), roles, tuple(dropped), n_input, const)


def fit(src: EngineInput, m: Moments, X: np.ndarray, cov: Covariates, unit: str, cl_name: str | None, ssc: SSC, *,
        treated: np.ndarray, protect: str | None = None, func: str = "twfe") -> CellFit:
    """``y_it = a_i + l_t + X[g_i, t] b + W_it' c + e_it``, CR1 by unit or ``cl_name`` (see the module docstring).

    ``X`` (G, T, K) are the cohort x period regressors; the cohorts present in ``m`` are those estimated (the
    event study has dropped its always-treated units from ``m``). Collinearity is judged as
    :func:`didx.linalg.ols.fit_ols` with absorbed effects (centred sums of squares, a floor on the raw ones).
    ``protect``: the name of ``X``'s first column, whose removal is an error (the treatment). ``kept`` indexes the
    columns of ``X`` then the covariates."""
    T, K, P = m.n_periods, X.shape[2], len(cov.names)
    q = T - 1
    G = m.cohort_values.shape[0]
    use_gc = np.zeros(G, dtype=bool)
    use_gc[m.gc[m.n > 0]] = True
    obs = m.obs()
    n = m.n.astype(np.float64)
    mu = m.cell_means()
    S, _ = m.centred(mu)
    Zt = within_rows(X[m.gc], obs)
    A_zz = np.einsum("j,jtk,jtl->kl", n, Zt, Zt)
    # the rows of Zt sum to 0 over a group's periods: the cell means enter net of their mean over those periods
    # (an outcome's level, e.g. 1e7, would otherwise cancel in the sum and cost digits)
    ymu = mu[m.gc] * obs
    ymu = (ymu - ymu.sum(axis=1, keepdims=True) / obs.sum(axis=1, keepdims=True)) * obs
    b_z = np.einsum("jtk,jt->k", Zt, n[:, None] * ymu + S)
    # the covariates' within-unit sums by (cohort, pattern)
    never = G - 1
    cnt = m.cell_counts()
    level = (mu * cnt).sum(axis=1) / np.maximum(cnt.sum(axis=1), 1)  # each cohort's mean outcome
    w = src.run(plan_reg.within_sql(cov.roles, src.quote, src.table, cov.names, periods=m.periods,
                                    cohort_raw=m.cohort_values[:-1], cohort_code=np.arange(never), never_code=never,
                                    level=level))
    gc_w = w["gc"].astype(np.int64)
    sel = use_gc[gc_w]
    gc_w, pat_w, tc_w = gc_w[sel], w["pattern"].astype(np.int64)[sel], w["tc"].astype(np.int64)[sel]

    def col(name: str) -> np.ndarray:
        return np.asarray(w[name], dtype=np.float64)[sel]

    keys, key_of = np.unique(np.column_stack([gc_w, pat_w]), axis=0, return_inverse=True)
    key_of = key_of.ravel()
    gc_c = keys[:, 0]
    obs_c = ((keys[:, 1][:, None] >> np.arange(T)) & 1).astype(bool)
    SW = np.zeros((keys.shape[0], T, P))
    for k in range(P):
        np.add.at(SW[:, :, k], (key_of, tc_w), col(f"sw{k}"))
    A_zw = np.einsum("ctk,ctp->kp", within_rows(X[gc_c], obs_c), SW)
    A_ww = np.empty((P, P))
    for k in range(P):
        for j in range(k, P):
            A_ww[k, j] = A_ww[j, k] = col(f"ww{k}_{j}").sum()
    b_w = np.array([col(f"wy{k}").sum() for k in range(P)])
    A = np.block([[A_zz, A_zw], [A_zw.T, A_ww]])
    b = np.concatenate([b_z, b_w])
    # collinearity after both effects (the Schur complement of the time block), as in memory
    tk = time_dummies(m)  # the identified period effects (one per component of the unit-period graph is not)
    nt = tk.shape[0]
    Ab = A[q:, q:] - A[q:, tk] @ np.linalg.solve(A[np.ix_(tk, tk)], A[tk, q:])
    n_obs = float((n * obs.sum(axis=1)).sum())
    Xo = X[m.gc] * obs[:, :, None]
    raw = np.concatenate([np.einsum("j,jtk->k", n, Xo ** 2),
                          np.diag(A_ww) + np.array([col(f"bb{k}").sum() for k in range(P)])])
    total = np.concatenate([np.einsum("j,jtk->k", n, Xo), np.array([col(f"b{k}").sum() for k in range(P)])])
    centred = np.maximum(raw - total ** 2 / n_obs, 0.0)
    x_const = np.array([np.unique(X[m.gc][obs][:, j]).shape[0] == 1 for j in range(K)], dtype=bool)
    centred[np.concatenate([x_const, cov.constant])] = 0.0
    kept = independent_columns(Ab, centred, floor=raw)
    if protect is not None and 0 not in set(kept.tolist()):
        raise DesignError(
            f"{func}: the regressor(s) {protect!r} are collinear with the fixed effects or other regressors, so the "
            f"effect is not identified. Fix: check that treatment varies within units and periods (e.g. there are "
            f"treated and untreated observations in some period)."
        )
    cols = np.concatenate([tk, q + kept])
    A_k = A[np.ix_(cols, cols)]
    theta = np.linalg.solve(A_k, b[cols])
    kx, kw = kept[kept < K], kept[kept >= K] - K
    nx = kx.shape[0]
    lam = np.zeros(T)
    lam[1 + tk] = theta[:nt]
    fitted = lam[None, :] + X[:, :, kx] @ theta[nt:nt + nx]
    gamma = theta[nt + nx:]
    # the scores: a unit's share of the sandwich is sum_t H[g, t] e_it + L_W q_i
    Ainv = np.linalg.inv(A_k)
    L = 0.5 * (Ainv + Ainv.T)[nt:, :]
    H = np.einsum("mk,gtk->gmt", L[:, nt:nt + nx], X[:, :, kx])
    H[:, :, 1 + tk] += L[:, :nt][None, :, :]
    L_W = L[:, nt + nx:]
    kept_covs = [cov.names[j] for j in kw]
    roles = cov.roles if cl_name is not None else dataclasses.replace(cov.roles, cluster=None)
    s = src.run(plan_reg.scores_sql(roles, src.quote, src.table, kept_covs, periods=m.periods,
                                    cohort_raw=m.cohort_values[:-1], cohort_code=np.arange(never), never_code=never,
                                    fitted=fitted, gamma=gamma, level=level, w_centre=total[K + kw] / n_obs,
                                    clustered=cl_name is not None))
    gc_s = s["gc"].astype(np.int64)
    rows_s = use_gc[gc_s]
    gc_s = gc_s[rows_s]
    Pk = len(kept_covs)

    def get(name: str) -> np.ndarray:
        return np.asarray(s[name], dtype=np.float64)[rows_s]

    E = np.column_stack([get(f"se{p}") for p in range(T)])
    Q = np.column_stack([get(f"sq{k}") for k in range(Pk)]) if Pk else np.zeros((E.shape[0], 0))
    if cl_name is None:
        EE = np.empty((E.shape[0], T, T))
        for p in range(T):
            for r in range(p, T):
                EE[:, p, r] = EE[:, r, p] = get(f"ee{p}_{r}")
        EQ = np.stack([np.column_stack([get(f"eq{p}_{k}") for k in range(Pk)]) if Pk else np.zeros((E.shape[0], 0))
                       for p in range(T)], axis=1)
        QQ = np.empty((E.shape[0], Pk, Pk))
        for k in range(Pk):
            for j in range(k, Pk):
                QQ[:, k, j] = QQ[:, j, k] = get(f"qq{k}_{j}")
        Hs = H[gc_s]
        cross = np.einsum("cmt,ctk,lk->ml", Hs, EQ, L_W)
        meat = (np.einsum("cmt,cts,cls->ml", Hs, EE, Hs) + cross + cross.T
                + np.einsum("mk,ckj,lj->ml", L_W, QQ, L_W))
        n_cl = int(m.n.sum())
        treated_cl = int(m.n[treated].sum())
    else:
        labels, cl = np.unique(np.asarray(s["cl"])[rows_s], return_inverse=True)
        u = np.einsum("cmt,ct->cm", H[gc_s], E) + Q @ L_W.T
        score = np.zeros((labels.shape[0], u.shape[1]))
        np.add.at(score, cl, u)
        meat = score.T @ score
        n_cl = int(labels.shape[0])
        assert m.cl is not None
        treated_cl = int(np.unique(m.cl[treated & (m.n > 0)]).shape[0])
    n_rows = int(n_obs)
    k_ssc = ssc_k(m, len(kept), ssc)
    adj = (n_rows - 1) / (n_rows - k_ssc) if ssc.adj else 1.0
    factor = adj * (n_cl / (n_cl - 1) if ssc.cluster_adj else 1.0)
    V = factor * 0.5 * (meat + meat.T)
    inf = _cr1_inference(cl_name or unit, n_cl, treated_cl, k_ssc, ssc, True)
    return CellFit(kept=kept, coef=theta[nt:], V=V, inference=inf)


def term_names(x_names: Sequence[str], cov: Covariates | None) -> list[str]:
    """The names of the columns of ``X`` then the covariates (what :attr:`CellFit.kept` indexes)."""
    return [*x_names, *(cov.names if cov is not None else ())]


def prepared(src: EngineInput, func: str, covariates: Any, **roles: Any) -> tuple[EngineInput, Covariates | None]:
    """:func:`prepare` when covariates are given; the input unchanged and None otherwise."""
    if not covariates:
        return src, None
    return prepare(src, func, covariates=covariates, **roles)
