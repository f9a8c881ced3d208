"""``att_gt`` with covariates on unbalanced panels (``allow_unbalanced=True``) through the engines.

In memory (:func:`didx.estimators.cs.cells.estimate_covariates`), a panel with gaps runs the repeated-cross-section
estimators of Sant'Anna and Zhao on each cell's rows: a unit's rows at t and at b are two observations, each with
the covariates of its own period, and the row influence functions are summed by unit. Here every sum they need is
a GROUP BY (cell, cohort, post) of the units' observed rows (:func:`didx.engines.plan_cov.rc_sql`): the outcome
regressions of ``reg_did_rc`` (comparison group by period) and ``drdid_rc`` (both groups by period) from ``X'X``
and ``X'y``, the logit of ``std_ipw_did_rc`` and ``drdid_rc`` by the Newton rounds of :mod:`didx.engines.cs_cov`,
and the odds-weighted sums at the final scores; then one aggregation per cohort returns the Gram matrices of the
units' summed influence functions (:func:`didx.engines.plan_cov.rc_gram_sql`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError, DidxError
from didx.engines import plan_cov as pc
from didx.engines.cs_cov_panel import _Estimator, _failure, _singular
from didx.estimators.drdid.nuisance import DEFAULT_TRIM_LEVEL, _solve_sym

EMPTY = "an empty treated or comparison cell in the period or base period"


@dataclass
class _Group:
    """Sums over one cell's rows of a role (treated or not, post or pre): rows, ``z``, ``z z'``, ``z y`` with
    ``z = (1, x)``, and the covariates' range."""

    n: float
    Z: np.ndarray
    ZZ: np.ndarray
    ZY: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __add__(self, other: _Group) -> _Group:
        return _Group(self.n + other.n, self.Z + other.Z, self.ZZ + other.ZZ, self.ZY + other.ZY,
                      np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi))

    @property
    def constant(self) -> bool:
        return bool(np.any(self.lo == self.hi))


@dataclass
class RCEstimator(_Estimator):
    """:class:`didx.engines.cs_cov._Estimator` for unbalanced panels (the repeated-cross-section cells)."""

    def estimate(self, act: dict[int, pc.CellSQL], G: int) -> tuple[dict[int, float], dict[int, Any], dict[int, str]]:
        self.x_periods = sorted({p for c in act.values() for p in (c.t, c.b)})
        groups = self._groups(act)
        failed: dict[int, str] = {}
        for k, gr in groups.items():
            if any(g.n == 0 for g in gr.values()):
                failed[k] = EMPTY
        gammas: dict[int, np.ndarray] = {}
        weights: dict[int, Any] = {}
        if self.method in ("ipw", "dr"):
            starts = {}
            for k, gr in groups.items():
                if k in failed:
                    continue
                tr, co = gr[(True, True)] + gr[(True, False)], gr[(False, True)] + gr[(False, False)]
                if (tr + co).constant:
                    failed[k] = _failure(lambda: _singular("propensity score"))
                    continue
                starts[k] = ((tr + co).ZZ, tr.Z, co.Z)
            gammas = self.newton_rounds(act, starts, failed, lambda cells: pc.rc_sql(
                self.units, cells, len(self.covs), self.x_periods, 1.0, pc.logit_aggs(len(self.covs))))
            weights = self._weights([(act[k], g) for k, g in gammas.items() if k not in failed])
        att: dict[int, float] = {}
        terms: dict[int, Any] = {}
        for k, c in act.items():
            if k in failed:
                continue
            try:
                with np.errstate(invalid="ignore", divide="ignore"):
                    if self.method == "reg":
                        att[k], terms[k] = self._reg(c, groups[k])
                    elif self.method == "ipw":
                        att[k], terms[k] = self._ipw(c, groups[k], gammas[k], weights[k])
                    else:
                        att[k], terms[k] = self._dr(c, groups[k], gammas[k], weights[k])
            except (DidxError, np.linalg.LinAlgError) as exc:
                failed[k] = f"the 2x2 estimator failed: {exc}"
                continue
            if not np.isfinite(att[k]):
                failed[k] = "the 2x2 estimate is not finite"
        return att, terms, failed

    def gram_sql(self, terms: list[Any], h: int) -> str:
        return pc.rc_gram_sql(self.units, terms, DEFAULT_TRIM_LEVEL, self.cluster is not None, h)

    # ------------------------------------------------------------------------------------------- sums
    def _groups(self, act: dict[int, pc.CellSQL]) -> dict[int, dict[tuple[bool, bool], _Group]]:
        """Per cell, the sums of its four (treated, post) row groups."""
        k_cov, p = len(self.covs), self.p
        zeros = np.zeros(p)
        out = self.src.run(pc.rc_sql(self.units, [(c, zeros) for c in act.values()], k_cov, self.x_periods, 1.0,
                                     pc.rc_sums_aggs(k_cov)))
        kk = np.asarray(out["k"], dtype=np.int64)
        gc = np.asarray(out["gc"], dtype=np.int64)
        post = np.asarray(out["post"], dtype=np.int64)
        col = {name: np.asarray(v, dtype=float) for name, v in out.items()}
        res: dict[int, dict[tuple[bool, bool], _Group]] = {}
        for k, c in act.items():
            gr: dict[tuple[bool, bool], _Group] = {}
            for treated in (True, False):
                for is_post in (True, False):
                    rows = (kk == k) & ((gc == c.g) == treated) & ((post == 1) == is_post)
                    n = float(col["n"][rows].sum())
                    Z = np.array([n, *(col[f"sz{j}"][rows].sum() for j in range(1, p))])
                    ZZ = np.zeros((p, p))
                    ZZ[0] = ZZ[:, 0] = Z
                    for j in range(1, p):
                        for m in range(j, p):
                            ZZ[j, m] = ZZ[m, j] = col[f"szz{j}_{m}"][rows].sum()
                    ZY = np.array([col[f"szy{j}"][rows].sum() for j in range(p)])
                    lo = np.array([col[f"lo{j}"][rows].min() if rows.any() else np.inf for j in range(1, p)])
                    hi = np.array([col[f"hi{j}"][rows].max() if rows.any() else -np.inf for j in range(1, p)])
                    gr[(treated, is_post)] = _Group(n, Z, ZZ, ZY, lo, hi)
            res[k] = gr
        return res

    def _weights(self, cells: list[tuple[pc.CellSQL, np.ndarray]]) -> dict[int, Any]:
        """At the final scores: the Hessian over the cell's rows and the comparison rows' odds-weighted sums."""
        if not cells:
            return {}
        k_cov, p = len(self.covs), self.p
        out = self.src.run(pc.rc_sql(self.units, cells, k_cov, self.x_periods, DEFAULT_TRIM_LEVEL,
                                     pc.rc_weight_aggs(k_cov)))
        kk = np.asarray(out["k"], dtype=np.int64)
        gc = np.asarray(out["gc"], dtype=np.int64)
        post = np.asarray(out["post"], dtype=np.int64)
        col = {name: np.asarray(v, dtype=float) for name, v in out.items()}
        iu = np.triu_indices(p)
        res: dict[int, Any] = {}
        for c, _ in cells:
            rows = kk == c.k
            H = np.zeros((p, p))
            H[iu] = [col[f"h{j}_{m}"][rows].sum() for j, m in zip(*iu, strict=True)]
            H = H + np.triu(H, 1).T
            per = {}
            for is_post in (True, False):
                r = rows & (gc != c.g) & ((post == 1) == is_post)
                So = np.array([col[f"so{j}"][r].sum() for j in range(p)])
                SoZZ = np.zeros((p, p))
                SoZZ[0] = SoZZ[:, 0] = So
                for j in range(1, p):
                    for m in range(j, p):
                        SoZZ[j, m] = SoZZ[m, j] = col[f"soz{j}_{m}"][r].sum()
                per[is_post] = (So, np.array([col[f"soy{j}"][r].sum() for j in range(p)]), SoZZ)
            res[c.k] = (H, per)
        return res

    # ------------------------------------------------------------------------------------------- cells
    def _ols_rows(self, g: _Group, what: str) -> np.ndarray:
        """:func:`didx.estimators.drdid.nuisance.wls` of y on z over the rows of ``g``."""
        if g.n < self.p:
            raise DesignError(f"The {what} regression has {int(g.n)} observations for {self.p} coefficients. Fix: "
                              f"use fewer covariates or a larger sample.")
        try:
            if g.constant:
                _singular(what)
            coef = _solve_sym(g.ZZ, g.ZY, what)
        except DesignError:
            raise DesignError(f"The {what} regression is rank deficient: the covariates are collinear (or do not "
                              f"vary) in this sample. Fix: remove some covariates.") from None
        out: np.ndarray = coef + _solve_sym(g.ZZ, g.ZY - g.ZZ @ coef, what)
        return out

    def _reg(self, c: pc.CellSQL, gr: dict[tuple[bool, bool], _Group]) -> tuple[float, pc.RCTerms]:
        """``reg_did_rc``: comparison-group regressions by period, the treated rows' means."""
        tp, tb, cp, cb = gr[(True, True)], gr[(True, False)], gr[(False, True)], gr[(False, False)]
        n = tp.n + tb.n + cp.n + cb.n
        scale = float(self.data.n_units) / n
        b_pre = self._ols_rows(cb, "outcome (comparison, pre)")
        b_post = self._ols_rows(cp, "outcome (comparison, post)")
        p = self.p
        A_pre = _solve_sym(cb.ZZ / n, np.eye(p), "outcome regression (pre)")
        A_post = _solve_sym(cp.ZZ / n, np.eye(p), "outcome regression (post)")
        eta_tp, eta_tb = tp.ZY[0] / tp.n, tb.ZY[0] / tb.n
        ZD, nD = tp.Z + tb.Z, tp.n + tb.n
        d_beta = b_post - b_pre
        eta_cont = float(d_beta @ ZD) / nD
        m_D = nD / n
        cvec = -scale * d_beta / m_D
        cvec[0] += scale * eta_cont / m_D
        M1 = ZD / n
        rows = {(True, True): pc.RCRow(b=scale / (tp.n / n), a=eta_tp, c=cvec),
                (True, False): pc.RCRow(b=-scale / (tb.n / n), a=eta_tb, c=cvec),
                (False, True): pc.RCRow(beta=b_post, v=-scale * (A_post @ M1) / m_D),
                (False, False): pc.RCRow(beta=b_pre, v=scale * (A_pre @ M1) / m_D)}
        return float((eta_tp - eta_tb) - eta_cont), pc.RCTerms(cell=c, gamma=None, rows=rows)

    def _ipw(self, c: pc.CellSQL, gr: dict[tuple[bool, bool], _Group], gamma: np.ndarray,
             weights: Any) -> tuple[float, pc.RCTerms]:
        """``std_ipw_did_rc``: four normalised weighted means and the logit's estimation effect."""
        tp, tb, cp, cb = gr[(True, True)], gr[(True, False)], gr[(False, True)], gr[(False, False)]
        n = tp.n + tb.n + cp.n + cb.n
        scale = float(self.data.n_units) / n
        H, per = weights
        Hinv = _solve_sym(H / n, np.eye(self.p), "propensity score")
        (So_p, Soy_p, _), (So_b, Soy_b, _) = per[True], per[False]
        a_tp, a_tb = tp.ZY[0] / tp.n, tb.ZY[0] / tb.n
        a_cp, a_cb = Soy_p[0] / So_p[0], Soy_b[0] / So_b[0]
        m_cp, m_cb = So_p[0] / n, So_b[0] / n
        M2 = (Soy_p - a_cp * So_p) / n / m_cp - (Soy_b - a_cb * So_b) / n / m_cb
        hv = scale * (Hinv @ M2)
        rows = {(True, True): pc.RCRow(b=scale / (tp.n / n), a=a_tp, hv=hv, delta=1.0),
                (True, False): pc.RCRow(b=-scale / (tb.n / n), a=a_tb, hv=hv, delta=1.0),
                (False, True): pc.RCRow(b_o=-scale / m_cp, a=a_cp, hv=hv),
                (False, False): pc.RCRow(b_o=scale / m_cb, a=a_cb, hv=hv)}
        return float((a_tp - a_tb) - (a_cp - a_cb)), pc.RCTerms(cell=c, gamma=gamma, rows=rows)

    def _dr(self, c: pc.CellSQL, gr: dict[tuple[bool, bool], _Group], gamma: np.ndarray,
            weights: Any) -> tuple[float, pc.RCTerms]:
        """``drdid_rc``: the logit, outcome regressions of both groups in both periods, and their estimation
        effects (R's form, see :func:`didx.estimators.drdid.rc.rc_dr`)."""
        tp, tb, cp, cb = gr[(True, True)], gr[(True, False)], gr[(False, True)], gr[(False, False)]
        n = tp.n + tb.n + cp.n + cb.n
        scale = float(self.data.n_units) / n
        p = self.p
        H, per = weights
        Hinv = _solve_sym(H / n, np.eye(p), "propensity score")
        b_cb = self._ols_rows(cb, "outcome (cpre)")
        b_cp = self._ols_rows(cp, "outcome (cpost)")
        b_tb = self._ols_rows(tb, "outcome (tpre)")
        b_tp = self._ols_rows(tp, "outcome (tpost)")
        (So_p, Soy_p, SoZZ_p), (So_b, Soy_b, SoZZ_b) = per[True], per[False]
        m_tp, m_tb, nD = tp.n / n, tb.n / n, tp.n + tb.n
        m_d = nD / n
        m_cp, m_cb = So_p[0] / n, So_b[0] / n
        ZD = tp.Z + tb.Z
        a_tp = (tp.ZY[0] - float(b_cp @ tp.Z)) / tp.n
        a_tb = (tb.ZY[0] - float(b_cb @ tb.Z)) / tb.n
        Sor_p = Soy_p - SoZZ_p @ b_cp  # sum o r z over the comparison rows, r = y - z'beta_c
        Sor_b = Soy_b - SoZZ_b @ b_cb
        a_cp, a_cb = Sor_p[0] / So_p[0], Sor_b[0] / So_b[0]
        g_post, g_pre = b_tp - b_cp, b_tb - b_cb
        a_d_post, a_dt1_post = float(g_post @ ZD) / nD, float(g_post @ tp.Z) / tp.n
        a_d_pre, a_dt0_pre = float(g_pre @ ZD) / nD, float(g_pre @ tb.Z) / tb.n
        att = ((a_tp - a_tb) - (a_cp - a_cb) + (a_d_post - a_dt1_post) - (a_d_pre - a_dt0_pre))
        inv = {key: _solve_sym(g.ZZ / n, np.eye(p), f"outcome regression ({name})")
               for key, g, name in ((0, cb, "comparison, pre"), (1, cp, "comparison, post"),
                                    (2, tb, "treated, pre"), (3, tp, "treated, post"))}
        M1_post, M1_pre = -tp.Z / n / m_tp, -tb.Z / n / m_tb
        M2 = (Sor_p - a_cp * So_p) / n / m_cp - (Sor_b - a_cb * So_b) / n / m_cb
        M3_post, M3_pre = -So_p / n / m_cp, -So_b / n / m_cb
        mom_post, mom_pre = (ZD / m_d - tp.Z / m_tp) / n, (ZD / m_d - tb.Z / m_tb) / n
        hv = scale * (Hinv @ M2)
        # the efficiency terms of the treated rows: linear in z
        eff_tp = g_post / m_d - g_post / m_tp - g_pre / m_d
        eff_tp[0] += -a_d_post / m_d + a_dt1_post / m_tp + a_d_pre / m_d
        eff_tb = g_post / m_d - g_pre / m_d + g_pre / m_tb
        eff_tb[0] += -a_d_post / m_d + a_d_pre / m_d - a_dt0_pre / m_tb
        rows = {
            (True, True): pc.RCRow(fit=b_cp, b=scale / m_tp, a=a_tp, c=scale * eff_tp, beta=b_tp,
                                   v=scale * (inv[3] @ mom_post), hv=hv, delta=1.0),
            (True, False): pc.RCRow(fit=b_cb, b=-scale / m_tb, a=a_tb, c=scale * eff_tb, beta=b_tb,
                                    v=-scale * (inv[2] @ mom_pre), hv=hv, delta=1.0),
            (False, True): pc.RCRow(fit=b_cp, b_o=-scale / m_cp, a=a_cp, beta=b_cp,
                                    v=scale * (inv[1] @ (M1_post - M3_post - mom_post)), hv=hv),
            (False, False): pc.RCRow(fit=b_cb, b_o=scale / m_cb, a=a_cb, beta=b_cb,
                                     v=scale * (inv[0] @ (M1_pre - M3_pre + mom_pre)), hv=hv),
        }
        return float(att), pc.RCTerms(cell=c, gamma=gamma, rows=rows)
