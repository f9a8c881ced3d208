"""The balanced-panel cells of ``att_gt`` with covariates through the engines (:mod:`didx.engines.cs_cov`).

:class:`_Estimator` runs the queries of :mod:`didx.engines.plan_cov` and the Sant'Anna-Zhao panel estimators
(``reg_did_panel``, ``std_ipw_did_panel``, ``drdid_panel``) on their sums; :func:`_newton` is the in-memory
logit's Newton-Raphson as a generator, so that one query serves one step of every cell's propensity score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError, DidxError, InvalidOptionError
from didx.engines import plan_cov as pc
from didx.engines.cs import FUNC, ROWS_FIX, EngineStore
from didx.engines.source import EngineInput
from didx.estimators.cs.cells import Cell, CellEstimates
from didx.estimators.cs.data import CSData
from didx.estimators.drdid.nuisance import _SEPARATION, DEFAULT_TRIM_LEVEL, _solve_sym

_EXTREME = float(np.log((1.0 - 1e-12) / 1e-12))
"""The logit index beyond which a fitted probability is within 1e-12 of 0 or 1 (fit_logit's separation test)."""

MAX_SUMS = 20_000
"""The most sums one query may return (the Gram query of the never-treated has J (J + 3) / 2 for J cells)."""



# ----------------------------------------------------------------------------------------------- estimation
def _failure(f: Callable[[], None]) -> str:
    """The skipped-cell note of the DesignError ``f`` raises."""
    try:
        f()
    except DesignError as exc:
        return f"the 2x2 estimator failed: {exc}"
    raise AssertionError("no error")  # pragma: no cover


def _singular(what: str) -> None:
    """Raise the in-memory error of a singular ``what`` design (its exact text: the same solver on a zero matrix).

    The sums are of covariates centred on their means, so a covariate that is constant in a regression's sample
    (e.g. 0 for every never-treated unit) is found from its range, not from the conditioning of the sums."""
    _solve_sym(np.zeros((1, 1)), np.zeros(1), what)


@dataclass
class _Logit:
    """The sums of one logit's Newton step at a point: gradient, Hessian, deviance."""

    grad: np.ndarray
    H: np.ndarray
    dev: float
    separated: bool  # the index puts every treated unit strictly above (or below) every comparison unit
    extreme: bool  # some fitted probability within 1e-12 of 0 or 1


def _newton(XtX: np.ndarray, SXt: np.ndarray, SXc: np.ndarray, *, max_iter: int = 100,
            tol: float = 1e-12) -> Generator[np.ndarray, _Logit, np.ndarray]:
    """:func:`didx.estimators.drdid.nuisance.fit_logit` (unit weights) as a generator: it yields the points at which
    it needs the gradient, Hessian and deviance and receives them, so that one query serves every cell's logit.
    ``XtX`` sums ``z z'`` over the cell's units, ``SXt`` / ``SXc`` sum ``z`` over treated / comparison units.
    Complete separation (an index that orders the two groups strictly, seen at any iterate) fails at once: in
    memory it fails after ``max_iter`` steps; the extreme-probability test at the end uses the last point queried.
    """
    mu = np.array([0.75, 0.25])  # glm's start (w d + 0.5) / (w + 1) for d = 1, 0
    eta0 = np.log(mu / (1.0 - mu))
    v0 = mu * (1.0 - mu)
    z0 = eta0 + (np.array([1.0, 0.0]) - mu) / v0
    beta = _solve_sym(v0[0] * XtX, v0[0] * z0[0] * SXt + v0[1] * z0[1] * SXc, "propensity score")
    info = yield beta
    dev: float | None = None
    for it in range(max_iter):
        if info.separated:  # no maximum exists: in memory the steps run on until max_iter and then fail
            raise DesignError(_SEPARATION)
        try:
            step = _solve_sym(info.H, info.grad, "propensity score")
        except DesignError:
            if it == 0:
                raise
            raise DesignError(_SEPARATION) from None
        new_beta = beta + step
        new_info: _Logit | None = None
        new_dev: float | None = None
        if float(info.grad @ step) > 0.01:
            if dev is None:
                dev = info.dev
            t = 1.0
            new_info = yield new_beta
            new_dev = new_info.dev
            for _half in range(50):
                if new_dev <= dev + 1e-12 * abs(dev):
                    break
                t *= 0.5
                new_beta = beta + t * step
                new_info = yield new_beta
                new_dev = new_info.dev
        change = np.max(np.abs(new_beta - beta) / (np.abs(new_beta) + 1e-8))
        beta, dev = new_beta, new_dev
        if not np.all(np.isfinite(beta)):
            break
        if change < tol:
            return beta
        # as in memory, a step taken unchecked leaves the deviance to be recomputed when a later step needs it
        info = new_info if new_info is not None else (yield beta)
    if not np.all(np.isfinite(beta)) or info.extreme:
        raise DesignError(_SEPARATION)
    return beta  # not converged, kept (as in memory)


@dataclass
class _Sums:
    """Per-cohort sums of :func:`~didx.engines.plan_cov.group_sums_sql` (rows: cohort codes)."""

    n: np.ndarray  # (G,)
    SX: dict[int, np.ndarray]  # s -> (G, p) sums of z = (1, x_s)
    SXX: dict[int, np.ndarray]  # s -> (G, p, p)
    SXdy: dict[int, np.ndarray]  # cell k -> (G, p) sums of z dy
    lo: dict[int, np.ndarray]  # s -> (G, k) covariate minima (inf where a cohort has no units)
    hi: dict[int, np.ndarray]

    def constant(self, s: int, codes: list[int]) -> bool:
        """Whether a covariate of period ``s`` takes one value over the units of the cohorts ``codes``."""
        return bool(np.any(self.lo[s][codes].min(axis=0) == self.hi[s][codes].max(axis=0)))


@dataclass
class _Estimator:
    src: EngineInput
    units: str
    data: CSData
    covs: tuple[str, ...]
    method: str
    cluster: str | None
    x_periods: list[int] = dataclasses.field(default_factory=list)

    @property
    def p(self) -> int:
        return len(self.covs) + 1

    def sql_cell(self, k: int, c: Cell) -> pc.CellSQL:
        s = min(c.t, c.b)
        return pc.CellSQL(k=k, g=c.g_code, controls=c.controls, t=c.t, b=c.b,
                          x=tuple(pc.xcol(j, s) for j in range(len(self.covs))))

    def run(self, cells: list[Cell]) -> CellEstimates:
        G = self.data.cohort_values.shape[0]
        act = {k: self.sql_cell(k, c) for k, c in enumerate(cells) if not c.reference and c.controls}
        J = len(act)
        if J * (J + 3) // 2 > MAX_SUMS:
            raise InvalidOptionError(
                f"{FUNC}: {J} ATT(g,t) cells with covariates need {J * (J + 3) // 2} sums in one engine query (at "
                f"most {MAX_SUMS}: about 200 cells). Fix: fewer periods or cohorts (restrict them in the query), or "
                f"{ROWS_FIX}.")
        att, terms, failed = self.estimate(act, G)
        return self.assemble(cells, att, terms, failed, G)

    def estimate(self, act: dict[int, pc.CellSQL], G: int) -> tuple[dict[int, float], dict[int, Any], dict[int, str]]:
        """The ATT, influence-function terms (for :meth:`gram_sql`) and failures of the cells ``act``."""
        self.x_periods = sorted({c.s for c in act.values()})
        sums = self._group_sums(list(act.values()), self.x_periods, G)
        failed: dict[int, str] = {}
        betas: dict[int, np.ndarray] = {}
        gammas: dict[int, np.ndarray] = {}
        if self.method in ("ipw", "dr"):
            gammas = self._logits(act, sums, failed)
        if self.method in ("reg", "dr"):
            for k, c in act.items():
                if k in failed:
                    continue
                try:
                    betas[k] = self._ols(c, sums)
                except (DidxError, np.linalg.LinAlgError) as exc:
                    failed[k] = f"the 2x2 estimator failed: {exc}"
        weights = {}
        if gammas:
            ok = [k for k in act if k not in failed]
            weights = self._weight_sums([(act[k], gammas[k], betas.get(k, np.zeros(self.p))) for k in ok], G)
        terms: dict[int, Any] = {}
        att: dict[int, float] = {}
        for k, c in act.items():
            if k in failed:
                continue
            try:
                att[k], terms[k] = self._terms(c, sums, betas.get(k), gammas.get(k), weights.get(k))
            except (DidxError, np.linalg.LinAlgError) as exc:
                failed[k] = f"the 2x2 estimator failed: {exc}"
                continue
            if not np.isfinite(att[k]):
                failed[k] = "the 2x2 estimate is not finite"
        return att, terms, failed

    def assemble(self, cells: list[Cell], att: dict[int, float], terms: dict[int, Any], failed: dict[int, str],
                 G: int) -> CellEstimates:
        """The kept cells in plan order (reference cells 0, no influence function), the skipped ones with their
        reasons, and the store."""
        kept: list[Cell] = []
        values: list[float] = []
        psi_of: list[int] = []  # kept position -> index into the Gram's psi (or -1: a reference cell)
        skipped: list[tuple[Cell, str]] = []
        order: list[Any] = []
        for k, cell in enumerate(cells):
            if cell.reference:
                kept.append(cell)
                values.append(0.0)
                psi_of.append(-1)
            elif not cell.controls:
                skipped.append((cell, "no comparison units"))
            elif k in failed:
                skipped.append((cell, failed[k]))
            else:
                kept.append(cell)
                values.append(att[k])
                psi_of.append(len(order))
                order.append(terms[k])
        store = self._store(order, psi_of, G)
        return CellEstimates(cells=kept, att=np.asarray(values, dtype=float), store=store, skipped=skipped)

    # ------------------------------------------------------------------------------------------- queries
    def _group_sums(self, cells: list[pc.CellSQL], x_periods: list[int], G: int) -> _Sums:
        out = self.src.run(pc.group_sums_sql(self.units, len(self.covs), x_periods, cells))
        gc = np.asarray(out["gc"], dtype=np.int64)
        n = np.zeros(G)
        n[gc] = np.asarray(out["n"], dtype=float)
        if int(n.sum()) != self.data.n_units:
            raise DidxError(f"{FUNC}: the engine's unit pivot has {int(n.sum())} units where the sample rules keep "
                            f"{self.data.n_units} (an internal inconsistency; please report it). Fix: {ROWS_FIX}.")
        p, k = self.p, len(self.covs)
        col = {key: np.asarray(v, dtype=float) for key, v in out.items()}
        SX: dict[int, np.ndarray] = {}
        SXX: dict[int, np.ndarray] = {}
        lo: dict[int, np.ndarray] = {}
        hi: dict[int, np.ndarray] = {}
        for s in x_periods:
            lo[s] = np.full((G, k), np.inf)
            hi[s] = np.full((G, k), -np.inf)
            for j in range(k):
                lo[s][gc, j] = col[f"lo{j}_{s}"]
                hi[s][gc, j] = col[f"hi{j}_{s}"]
            a = np.zeros((G, p))
            a[:, 0] = n
            M = np.zeros((G, p, p))
            M[:, 0, 0] = n
            for j in range(k):
                a[gc, 1 + j] = col[f"s{pc.xcol(j, s)}"]
                for m in range(j, k):
                    M[gc, 1 + j, 1 + m] = M[gc, 1 + m, 1 + j] = col[f"sxx{j}_{m}_{s}"]
            M[:, 0, 1:] = a[:, 1:]
            M[:, 1:, 0] = a[:, 1:]
            SX[s], SXX[s] = a, M
        SXdy: dict[int, np.ndarray] = {}
        for c in cells:
            a = np.zeros((G, p))
            a[gc, 0] = col[f"sdy{c.k}"]
            for j in range(k):
                a[gc, 1 + j] = col[f"sxdy{j}_{c.k}"]
            SXdy[c.k] = a
        return _Sums(n=n, SX=SX, SXX=SXX, SXdy=SXdy, lo=lo, hi=hi)

    def _s(self, c: pc.CellSQL) -> int:
        return min(c.t, c.b)

    def _ols(self, c: pc.CellSQL, sums: _Sums) -> np.ndarray:
        """:func:`didx.estimators.drdid.nuisance.wls` of dy on z among the comparison units, from the sums."""
        ctrl = list(c.controls)
        what = "outcome (comparison units)"
        n_used = int(sums.n[ctrl].sum())
        if n_used < self.p:
            raise DesignError(f"The {what} regression has {n_used} observations for {self.p} coefficients. Fix: use "
                              f"fewer covariates or a larger sample.")
        A = sums.SXX[self._s(c)][ctrl].sum(axis=0)
        b = sums.SXdy[c.k][ctrl].sum(axis=0)
        try:
            if sums.constant(self._s(c), ctrl):
                _singular(what)
            coef = _solve_sym(A, b, what)
        except DesignError:
            raise DesignError(f"The {what} regression is rank deficient: the covariates are collinear (or do not "
                              f"vary) in this sample. Fix: remove some covariates.") from None
        out: np.ndarray = coef + _solve_sym(A, b - A @ coef, what)
        return out

    def _logits(self, act: dict[int, pc.CellSQL], sums: _Sums, failed: dict[int, str]) -> dict[int, np.ndarray]:
        """Every cell's logit (its units, the covariates of period min(t, b))."""
        starts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for k, c in act.items():
            codes = list(c.codes)
            if sums.constant(c.s, codes):
                failed[k] = _failure(lambda: _singular("propensity score"))
                continue
            SX = sums.SX[c.s]
            starts[k] = (sums.SXX[c.s][codes].sum(axis=0), SX[c.g], SX[list(c.controls)].sum(axis=0))
        return self.newton_rounds(act, starts, failed, lambda cells: pc.logit_sql(
            self.units, cells, len(self.covs), self.x_periods, self.data.n_periods))

    def newton_rounds(self, act: dict[int, pc.CellSQL], starts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                      failed: dict[int, str],
                      sql: Callable[[list[tuple[pc.CellSQL, np.ndarray]]], str]) -> dict[int, np.ndarray]:
        """:func:`_newton` for every cell in ``starts`` (its ``X'X``, treated and comparison ``X`` sums), one query
        per round for all cells still iterating (``sql``: rows by cell ``k`` and cohort ``gc`` with the columns of
        :func:`~didx.engines.plan_cov.logit_sql`)."""
        gens: dict[int, Generator[np.ndarray, _Logit, np.ndarray]] = {}
        at: dict[int, np.ndarray] = {}
        done: dict[int, np.ndarray] = {}
        for k, (XtX, SXt, SXc) in starts.items():
            gens[k] = _newton(XtX, SXt, SXc)
            try:
                at[k] = next(gens[k])
            except DesignError as exc:
                failed[k] = f"the 2x2 estimator failed: {exc}"
        p = self.p
        iu = np.triu_indices(p)
        while at:
            out = self.src.run(sql([(act[k], g) for k, g in at.items()]))
            kk, gc = np.asarray(out["k"], dtype=np.int64), np.asarray(out["gc"], dtype=np.int64)
            col = {name: np.asarray(v, dtype=float) for name, v in out.items()}
            for k in list(at):
                c = act[k]
                rows = kk == k
                sp = np.array([col[f"sp{j}"][rows].sum() for j in range(p)])
                H = np.zeros((p, p))
                H[iu] = [col[f"h{j}_{m}"][rows].sum() for j, m in zip(*iu, strict=True)]
                H = H + np.triu(H, 1).T
                sl = float(col["sl"][rows].sum())
                SXt = starts[k][1]
                lo, hi, g_rows = col["elo"][rows], col["ehi"][rows], gc[rows]
                tr = g_rows == c.g
                sep = bool(lo[tr].min() > hi[~tr].max() or hi[tr].max() < lo[~tr].min())
                extreme = bool(max(hi.max(), -lo.min()) > _EXTREME)
                info = _Logit(grad=SXt - sp, H=H, dev=2.0 * (sl - float(at[k] @ SXt)), separated=sep,
                              extreme=extreme)
                try:
                    at[k] = gens[k].send(info)
                except StopIteration as stop:
                    done[k] = stop.value
                    del at[k]
                except DesignError as exc:
                    failed[k] = f"the 2x2 estimator failed: {exc}"
                    del at[k]
        return done

    def _weight_sums(self, cells: list[tuple[pc.CellSQL, np.ndarray, np.ndarray]], G: int) -> dict[int, Any]:
        if not cells:
            return {}
        out = self.src.run(pc.weight_sums_sql(self.units, cells, DEFAULT_TRIM_LEVEL, len(self.covs), self.x_periods,
                                              self.data.n_periods))
        kk = np.asarray(out["k"], dtype=np.int64)
        col = {name: np.asarray(v, dtype=float) for name, v in out.items()}
        p = self.p
        iu = np.triu_indices(p)
        res: dict[int, Any] = {}
        for c, _, _ in cells:
            rows = kk == c.k
            H = np.zeros((p, p))
            H[iu] = [col[f"h{j}_{m}"][rows].sum() for j, m in zip(*iu, strict=True)]
            H = H + np.triu(H, 1).T
            res[c.k] = (H, np.array([col[f"so{j}"][rows].sum() for j in range(p)]),
                        np.array([col[f"sor{j}"][rows].sum() for j in range(p)]))
        return res

    def _terms(self, c: pc.CellSQL, sums: _Sums, beta: np.ndarray | None, gamma: np.ndarray | None,
               weights: Any) -> tuple[float, pc.IFTerms]:
        """The cell's ATT and influence-function coefficients (the in-memory panel_reg / panel_ipw / panel_dr)."""
        N = float(self.data.n_units)
        s, p = self._s(c), self.p
        ctrl = list(c.controls)
        n1 = float(sums.n[c.g])
        n = n1 + float(sums.n[ctrl].sum())
        SXt = sums.SX[s][c.g]
        Sdy_t = float(sums.SXdy[c.k][c.g, 0])
        b0 = np.zeros(p) if beta is None else beta
        e_t = (Sdy_t - float(b0 @ SXt)) / n1  # mean over treated of r = dy - z'beta
        m_treat = n1 / n
        zero = np.zeros(p)
        if self.method == "reg":
            assert beta is not None
            XpX_inv = _solve_sym(sums.SXX[s][ctrl].sum(axis=0) / n, np.eye(p), "outcome regression")
            cvec = (N / n) * XpX_inv @ (SXt / n) / m_treat
            return e_t, pc.IFTerms(cell=c, gamma=None, beta=beta, a_t=N / n1, e_t=e_t, b=zero, c=cvec, b_c=0.0,
                                   e_c=0.0)
        assert gamma is not None and weights is not None
        Hs, So, Sor = weights
        Hinv = _solve_sym(Hs / n, np.eye(p), "propensity score")
        m_cont = So[0] / n
        e_c = Sor[0] / So[0]
        M2 = (Sor - e_c * So) / n
        bvec = (N / n) * Hinv @ M2 / m_cont
        if self.method == "dr":
            assert beta is not None
            XpX_inv = _solve_sym(sums.SXX[s][ctrl].sum(axis=0) / n, np.eye(p), "outcome regression")
            cvec = (N / n) * XpX_inv @ (SXt / n / m_treat - So / n / m_cont)
        else:
            cvec = zero
        return e_t - e_c, pc.IFTerms(cell=c, gamma=gamma, beta=b0, a_t=N / n1, e_t=e_t, b=bvec, c=cvec,
                                     b_c=(N / n) / m_cont, e_c=e_c)

    def gram_sql(self, terms: list[Any], h: int) -> str:
        return pc.gram_sql(self.units, terms, DEFAULT_TRIM_LEVEL, self.cluster is not None, h)

    def _store(self, terms: list[Any], psi_of: list[int], G: int) -> EngineStore:
        """The store of ``z = (1, w, psi of the kept cells)``: per-cohort Gram and cluster x cohort sums."""
        J = len(terms)
        gcs, cls, zs_parts, zz_parts = [], [], [], []
        for h in range(G):  # one aggregation per cohort, with the cells that involve it
            js = [j for j, f in enumerate(terms) if h in f.cell.codes]
            out = self.src.run(self.gram_sql(terms, h))
            r = np.asarray(out["n"]).shape[0]
            zs_h = np.zeros((r, J + 2))  # per row (cohort [x cluster]): sums of z
            zs_h[:, 0] = zs_h[:, 1] = np.asarray(out["n"], dtype=float)
            for j in js:
                zs_h[:, 2 + j] = np.asarray(out[f"s{j}"], dtype=float)
            zz_h = np.zeros((r, J + 2, J + 2))
            zz_h[:, :2, :] = zs_h[:, None, :]
            zz_h[:, :, :2] = zs_h[:, :, None]
            for a, j in enumerate(js):
                for m in js[a:]:
                    zz_h[:, 2 + j, 2 + m] = zz_h[:, 2 + m, 2 + j] = np.asarray(out[f"m{j}_{m}"], dtype=float)
            gcs.append(np.full(r, h, dtype=np.int64))
            if self.cluster is not None:
                cls.append(np.asarray(out["cl"]))
            zs_parts.append(zs_h)
            zz_parts.append(zz_h)
        gc = np.concatenate(gcs)
        R = gc.shape[0]
        zs, zz = np.concatenate(zs_parts), np.concatenate(zz_parts)
        # the store's layout: kept cells in order, reference cells with an all-zero column
        Kk = len(psi_of)
        idx = np.array([0, 1, *[2 + j for j in psi_of if j >= 0]])
        pos = np.array([0, 1, *[2 + i for i, j in enumerate(psi_of) if j >= 0]])
        L = Kk + 2
        zl = np.zeros((R, L))
        zl[:, pos] = zs[:, idx]
        zzl = np.zeros((R, L, L))
        zzl[np.ix_(np.arange(R), pos, pos)] = zz[np.ix_(np.arange(R), idx, idx)]
        gram = np.zeros((G, L, L))
        np.add.at(gram, gc, zzl)
        coef = np.zeros((G, L, Kk))
        for i, j in enumerate(psi_of):
            if j >= 0:
                coef[:, 2 + i, i] = 1.0
        pairs = None
        if self.cluster is not None:
            _, cl = np.unique(np.concatenate(cls), return_inverse=True)
            keys = cl.astype(np.int64) * G + gc
            order = np.argsort(keys, kind="stable")
            keys, zp = keys[order], zl[order]
            p_cohort = keys % G
            Mc = np.zeros((G, L, L))
            for g in range(G):
                Zg = zp[p_cohort == g]
                Mc[g] = Zg.T @ Zg
            pairs = (keys // G, p_cohort, zp, Mc)
        d = self.data
        return EngineStore(Z=np.empty((0, L)), block=d.block, coef=coef, n=d.n_units, cluster=d.cluster,
                           n_clusters=d.n_clusters, _gram=gram, _pairs=pairs)
