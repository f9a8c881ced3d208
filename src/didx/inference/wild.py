"""Wild cluster bootstrap for linear regressions, from cluster-level sufficient statistics.

Model and hypothesis
--------------------
``y = X b + D a + u`` where ``D`` are absorbed fixed effects, and the hypothesis is ``R b = r`` (``q`` rows).
Write ``X~`` for the fixed-effect-demeaned regressors stored in the fit, ``A = (X~' W X~)^{-1}`` (the bread) and
``W`` the regression weights. By Frisch-Waugh-Lovell the slope estimates and their clustered covariance in the
full model (fixed effects as dummies) equal those computed from ``X~``; the bootstrap below reproduces the
*full dummy model* bootstrap exactly, including when the fixed effects are not nested in the clusters (see
"Fixed effects" below).

Bootstrap DGP (Roodman, MacKinnon, Nielsen & Webb 2019, "Fast and wild", Stata Journal 19(1))
------------------------------------------------------------------------------------------------
* WCR (``impose_null=True``): residuals ``u~`` of the model estimated under ``R b = r``,
  ``b~ = b^ - A R'(R A R')^{-1}(R b^ - r)``; WCU: the unrestricted residuals ``u^``.
* ``y*_g = X_g b~ + D_g a~ + v_g u~_g`` with one weight ``v_g`` per cluster (Rademacher, Webb's six-point,
  Mammen's two-point, or standard normal).
* For each draw, the bootstrap estimate, its CR1 covariance and the t (or Wald) statistic. Because everything is
  linear in ``v``, with the cluster sums ``s_g = X~_g' W_g u~_g`` (``G x k``),
  ``a_g = R A s_g`` and the ``G x G`` (per restriction) matrix
  ``K[h, g] = 1[h = g] a_h - R A (X~_h' W_h X~_h) A s_g - T[h, g]``
  the numerator is ``R(b* - b~) = sum_g v_g a_g`` and the cluster scores of the bootstrap regression are
  ``c_h = sum_g K[h, g] v_g``, so the bootstrap CR1 variance of ``R b*`` is ``f * sum_h c_h c_h'`` (``f`` the
  same small-sample factor as the analytic CR1 covariance). A draw costs ``O(G^2 q)``: nothing of length n is
  touched after the set-up, and no ``n x B`` matrix exists (draws are processed in chunks of ``G x chunk``).
* p-value: the share of draws with ``|t*| > |t|`` (Wald: ``W* > W``), as fwildclusterboot's "two-tailed"
  p-value. Draws with a zero bootstrap variance are dropped and counted (``n_invalid``). Draws whose statistic
  equals the observed one to 12 significant digits count as ties, not exceedances (the draws ``v = +1`` and
  ``v = -1`` reproduce ``|t|`` exactly in exact arithmetic, so rounding must not decide them).
* Full enumeration: with Rademacher weights and ``2^G <= n_bootstrap`` all ``2^G`` sign vectors are used, and the
  p-value is exact and reproducible (no randomness).

Confidence interval (one restriction)
-------------------------------------
WCR: test inversion. The restricted residuals are linear in the null value, ``u~(r) = u_a + u_b r``, hence
``t*(r) = (N_a + N_b r) / sqrt(f (CC + 2 CD r + DD r^2))`` for fixed draws; the interval is
``{r : p(r) > 1 - conf_level}``, its end points found by bisection on ``p(r)`` (the same draws for every ``r``).
WCU: the bootstrap distribution does not depend on ``r``; the symmetric percentile-t interval
``b^ +- c se`` with ``c`` the ``conf_level`` quantile of ``|t*|``.

Fixed effects
-------------
Absorbed fixed effects are partialled out first (FWL), as fwildclusterboot does with its ``fe`` argument. When a
fixed-effect factor is nested in the bootstrap clusters this is harmless. When it is not (time effects with
state clusters), the bootstrap residuals ``v_g u~_g`` are not orthogonal to the dummies, and the full model's
bootstrap residuals are ``M_D(u~ o v) - X~ (b* - b~)``. The extra term ``T[h, g] = (z 1_h)' W P_D (u~ 1_g)``
with ``z = X~ A R'`` is computed exactly from (cluster x fixed-effect level) cross tabulations and the
``L x L`` matrix ``D_t' W M_{D_n} D_t`` (``D_n`` the nested factors, ``D_t`` the others, ``L`` their levels), as
fwildclusterboot does for one projected factor; with more than ``MAX_CROSSTAB_LEVELS`` non-nested levels it
falls back to ``G q`` fixed-effect demeaning passes. The result is identical to bootstrapping the regression with
the fixed effects as dummy variables (tested against a brute-force enumeration).

References
----------
Roodman, D., MacKinnon, J. G., Nielsen, M. O. & Webb, M. D. (2019). Fast and wild: Bootstrap inference in Stata
using boottest. Stata Journal 19(1), 4-60. Cameron, Gelbach & Miller (2008). Webb (2023). Fischer & Roodman,
fwildclusterboot (R).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

import numpy as np
import scipy.sparse as sp

from didx._errors import DesignError, InvalidOptionError
from didx._progress import bar, check_progress
from didx._validate import check_option, cluster_count_check, did_you_mean
from didx.inference.contract import ClusterCodes
from didx.inference.vcov import SSC, VcovSpec, compute_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit

WEIGHT_TYPES = ("rademacher", "webb", "mammen", "normal")
MAX_CROSSTAB_LEVELS = 3000
CHUNK_BYTES = 32 * 2**20
MAX_K_BYTES = 4 * 2**30
TIE_RTOL = 1e-12
BISECT_ITER = 200


@dataclass(frozen=True)
class WildBootstrapResult:
    """Outcome of a wild cluster bootstrap test (immutable).

    Attributes
    ----------
    p_value : bootstrap p-value, share of draws with ``|t*| > |t|`` (or ``W* > W`` for a joint test).
    conf_int : (low, high) interval by test inversion (WCR) or percentile-t (WCU); (nan, nan) for a joint test.
    statistic : the observed t statistic (CR1, as the analytic one), or the Wald chi-square statistic.
    estimate : ``R b^`` for one restriction (nan for a joint test).
    hypothesis : a readable form of ``R b = r``.
    n_bootstrap : draws actually used (``2^G`` under full enumeration), ``n_invalid`` dropped among them.
    full_enumeration : whether all ``2^G`` Rademacher sign vectors were used.
    """

    p_value: float
    conf_int: tuple[float, float]
    statistic: float
    estimate: float
    hypothesis: str
    n_restrictions: int
    method: str
    impose_null: bool
    weights: str
    n_bootstrap: int
    full_enumeration: bool
    n_invalid: int
    cluster: str
    n_clusters: int
    conf_level: float
    seed: int | None
    small_sample_factor: float
    fixed_effects: str
    bootstrap_statistics: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        a = np.array(self.bootstrap_statistics, dtype=np.float64, copy=True)
        a.flags.writeable = False
        object.__setattr__(self, "bootstrap_statistics", a)

    def summary(self) -> str:
        kind = "t" if self.n_restrictions == 1 else f"Wald chi2({self.n_restrictions})"
        draws = (f"{self.n_bootstrap} (full enumeration of 2^{self.n_clusters} sign vectors)" if self.full_enumeration
                 else f"{self.n_bootstrap} ({self.weights} weights, seed {self.seed})")
        lines = [
            f"Wild cluster bootstrap ({self.method}: null {'imposed' if self.impose_null else 'not imposed'})",
            f"  Hypothesis: {self.hypothesis}",
            f"  Clusters: {self.cluster} ({self.n_clusters})",
            f"  Draws: {draws}" + (f", {self.n_invalid} with zero variance dropped" if self.n_invalid else ""),
            f"  Small-sample factor of the CR1 statistic: {self.small_sample_factor:.6g}",
            f"  Fixed effects: {self.fixed_effects}",
            f"  {kind} = {self.statistic:.4f}, bootstrap p = {self.p_value:.4g}",
        ]
        if self.n_restrictions == 1:
            pct = f"{100 * self.conf_level:g}%"
            how = "test inversion" if self.impose_null else "percentile-t"
            lines.append(f"  Estimate = {self.estimate:.6g}, {pct} CI [{self.conf_int[0]:.6g}, {self.conf_int[1]:.6g}]"
                         f" ({how})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------- draws
def _draw(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    if kind == "rademacher":
        return rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
    if kind == "mammen":
        s5 = np.sqrt(5.0)
        lo, hi = (1.0 - s5) / 2.0, (1.0 + s5) / 2.0
        return np.where(rng.random(shape) < (s5 + 1.0) / (2.0 * s5), lo, hi)
    if kind == "webb":
        vals = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
        return vals[rng.integers(0, 6, size=shape)]
    return rng.standard_normal(shape)


def _enumeration(G: int, start: int, stop: int) -> np.ndarray:
    """Sign vectors ``start..stop-1`` of the ``2^G`` Rademacher vectors, as a ``G x (stop - start)`` matrix."""
    idx = np.arange(start, stop, dtype=np.int64)
    bits = (idx[None, :] >> np.arange(G, dtype=np.int64)[:, None]) & 1
    return 1.0 - 2.0 * bits.astype(np.float64)


# ---------------------------------------------------------------- options
SEED_LIMIT = 2**32


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def check_options(func: str, *, n_bootstrap: object, weights: object, impose_null: object, seed: object,
                  conf_level: object, r: object, cluster: object = None) -> None:
    """Every option of the wild bootstrap checked before any work, with scikit-learn-style messages."""
    if not _is_int(n_bootstrap) or int(n_bootstrap) < 1:
        raise InvalidOptionError(
            f"The 'n_bootstrap' parameter of {func} must be an int >= 1 (e.g. 9999). Got {n_bootstrap!r} instead."
        )
    if not isinstance(weights, str):
        raise InvalidOptionError(
            f"The 'weights' parameter of {func} must be one of {{{', '.join(repr(w) for w in WEIGHT_TYPES)}}}. "
            f"Got {weights!r} instead."
        )
    check_option(func, "weights", weights, WEIGHT_TYPES)
    if not isinstance(impose_null, bool | np.bool_):
        raise InvalidOptionError(
            f"The 'impose_null' parameter of {func} must be True (WCR) or False (WCU). Got {impose_null!r} instead."
        )
    if seed is not None and (not _is_int(seed) or not 0 <= int(seed) < SEED_LIMIT):
        raise InvalidOptionError(
            f"The 'seed' parameter of {func} must be an int in [0, 2**32) or None. Got {seed!r} instead."
        )
    if not _is_real(conf_level) or not 0.0 < float(conf_level) < 1.0:
        raise InvalidOptionError(
            f"The 'conf_level' parameter of {func} must be a float in (0, 1) (e.g. 0.95). Got {conf_level!r} instead."
        )
    values = r.ravel().tolist() if isinstance(r, np.ndarray) else (list(r) if isinstance(r, list | tuple) else [r])
    if not values or not all(_is_real(v) and np.isfinite(float(v)) for v in values):
        raise InvalidOptionError(
            f"The 'r' parameter of {func} must be a finite number or a sequence of finite numbers (one per "
            f"restriction). Got {r!r} instead."
        )
    if cluster is not None and not isinstance(cluster, str):
        raise InvalidOptionError(
            f"The 'cluster' parameter of {func} must be a column name (a string) or None. Got {cluster!r} instead."
        )


# ---------------------------------------------------------------- hypothesis
def restriction_matrix(func: str, names: Sequence[str], hypothesis: Any, r: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """``(R, r, label)`` from a term name, a list of term names (jointly zero) or a matrix ``R``."""
    k = len(names)
    if isinstance(hypothesis, str):
        hypothesis = [hypothesis]
    if isinstance(hypothesis, np.ndarray):
        R = np.atleast_2d(np.asarray(hypothesis, dtype=np.float64))
        if R.shape[1] != k or R.shape[0] == 0:
            raise InvalidOptionError(
                f"{func}: the restriction matrix R must have {k} columns (one per coefficient: {list(names)}), "
                f"got shape {R.shape}. Fix: pass a q x {k} matrix, or term names."
            )
        rows = []
        for row in R:
            parts = [f"{c:g}*{n}" for c, n in zip(row, names, strict=True) if c != 0]
            rows.append(" + ".join(parts) if parts else "0")
        labels = rows
    elif isinstance(hypothesis, Sequence) and hypothesis and all(isinstance(t, str) for t in hypothesis):
        R = np.zeros((len(hypothesis), k))
        for i, t in enumerate(hypothesis):
            if t not in names:
                raise InvalidOptionError(
                    f"{func}: {t!r} is not a coefficient of this regression.{did_you_mean(t, names)} "
                    f"Coefficients: {list(names)}. Fix: pass one of them (or a restriction matrix R)."
                )
            R[i, list(names).index(t)] = 1.0
        labels = list(hypothesis)
    else:
        raise InvalidOptionError(
            f"{func}: the hypothesis must be a term name, a list of term names or a restriction matrix R "
            f"(numpy array). Got {hypothesis!r}."
        )
    q = R.shape[0]
    rv = np.broadcast_to(np.asarray(r, dtype=np.float64), (q,)).copy() if np.ndim(r) <= 1 else None
    if rv is None or rv.shape != (q,) or not np.all(np.isfinite(rv)):
        raise InvalidOptionError(f"{func}: r must be a finite number or a vector of {q} numbers. Got {r!r}.")
    if np.linalg.matrix_rank(R) < q:
        raise InvalidOptionError(f"{func}: the rows of R are linearly dependent. Fix: drop redundant restrictions.")
    label = " and ".join(f"{lab} = {val:g}" for lab, val in zip(labels, rv, strict=True))
    return R, rv, label


# ---------------------------------------------------------------- fixed-effect correction
def _crosstab(values: np.ndarray, level: np.ndarray, n_levels: int, cluster: np.ndarray, G: int) -> np.ndarray:
    """``n_levels x G`` sums of ``values`` by (level, cluster)."""
    return np.bincount(level * G + cluster, weights=values, minlength=n_levels * G).reshape(n_levels, G)


def _sym_pinv(M: np.ndarray) -> np.ndarray:
    M = 0.5 * (M + M.T)
    vals, vecs = np.linalg.eigh(M)
    tol = max(float(np.abs(vals).max(initial=0.0)), 1.0) * M.shape[0] * 1e-12
    inv = np.where(vals > tol, 1.0 / np.where(vals > tol, vals, 1.0), 0.0)
    return np.asarray((vecs * inv) @ vecs.T)


class _FECorrection:
    """Computes ``T[h, j, g] = (z_j 1_h)' W P_D (u 1_g)`` for any residual vector ``u`` (see module docstring)."""

    def __init__(self, fe: FixedEffects | None, Z: np.ndarray, w: np.ndarray, cl: np.ndarray, G: int) -> None:
        self.active = False
        self.description = "none"
        if fe is None:
            return
        nested = fe.nested_in(cl)
        outer = [i for i, m in enumerate(nested) if not m]
        names = list(fe.names)
        if not outer:
            self.description = (f"{', '.join(names)} partialled out (Frisch-Waugh-Lovell); nested in the "
                                f"bootstrap clusters, so no correction is needed")
            return
        self.active = True
        self.cl, self.G, self.w = cl, G, w
        levels = [fe.n_levels[i] for i in outer]
        L = sum(levels)
        on = ", ".join(names[i] for i in outer)
        if L <= MAX_CROSSTAB_LEVELS:
            self.mode = "crosstab"
            self.factors = [fe.factors[i] for i in outer]
            self.levels = levels
            offsets = np.cumsum([0, *levels])[:-1]
            gcodes = [f + o for f, o in zip(self.factors, offsets, strict=True)]
            # D_t' W D_t (L x L)
            n = w.shape[0]
            rows = np.concatenate(gcodes)
            Dt = sp.csr_matrix((np.ones(rows.shape[0]), (np.tile(np.arange(n), len(gcodes)), rows)), shape=(n, L))
            mid = (Dt.T @ sp.diags(w) @ Dt).toarray()
            inner = [i for i, m in enumerate(nested) if m]
            if len(inner) == 1:
                f = fe.factors[inner[0]]
                Ln = fe.n_levels[inner[0]]
                N = sp.csr_matrix((np.tile(w, len(gcodes)), (np.tile(f, len(gcodes)), rows)), shape=(Ln, L))
                wsum = np.bincount(f, weights=w, minlength=Ln)
                inv = np.where(wsum > 0, 1.0 / np.where(wsum > 0, wsum, 1.0), 0.0)
                mid -= (N.T @ sp.diags(inv) @ N).toarray()
            elif len(inner) > 1:
                fe_in = FixedEffects([fe.factors[i] for i in inner], [names[i] for i in inner], weights=w)
                for start in range(0, L, 64):
                    block = Dt[:, start:start + 64].toarray()
                    mid[:, start:start + 64] -= (Dt.T @ (w[:, None] * (block - fe_in.demean(block))))
            mid_pinv = _sym_pinv(mid)
            # F' mid^+ : for each restriction j, a G x L matrix
            q = Z.shape[1]
            self.left = np.empty((q, G, L))
            for j in range(q):
                F = np.concatenate([_crosstab(w * Z[:, j], f, lv, cl, G) for f, lv in
                                    zip(self.factors, levels, strict=True)])  # L x G
                self.left[j] = F.T @ mid_pinv
            self.description = (f"{', '.join(names)} partialled out (Frisch-Waugh-Lovell); {on} not nested in the "
                                f"bootstrap clusters: exact correction from cluster x level cross-tabulations")
        else:
            self.mode = "demean"
            self.fe = fe
            self.Z = Z
            self.description = (f"{', '.join(names)} partialled out (Frisch-Waugh-Lovell); {on} not nested in the "
                                f"bootstrap clusters: exact correction by {G * Z.shape[1]} demeaning passes")

    def terms(self, us: Sequence[np.ndarray]) -> list[np.ndarray]:
        """For each residual vector in ``us``: ``T`` as a ``G x q x G`` array (zeros when inactive)."""
        if not self.active:
            return [np.zeros(0) for _ in us]
        G, cl, w = self.G, self.cl, self.w
        if self.mode == "crosstab":
            out = []
            for u in us:
                U = np.concatenate([_crosstab(w * u, f, lv, cl, G) for f, lv in
                                    zip(self.factors, self.levels, strict=True)])  # L x G
                out.append(np.einsum("jhl,lg->hjg", self.left, U))
            return out
        q = self.Z.shape[1]
        res = [np.empty((G, q, G)) for _ in us]
        for h in range(G):
            mask = cl == h
            for j in range(q):
                v = np.where(mask, self.Z[:, j], 0.0)
                pv = v - self.fe.demean(v)  # P_D(z_j 1_h)
                for T, u in zip(res, us, strict=True):
                    T[h, j, :] = np.bincount(cl, weights=w * u * pv, minlength=G)
        return res


# ---------------------------------------------------------------- sufficient statistics
@dataclass
class _Stats:
    a: np.ndarray  # G x q : a_g = R A s_g
    K: np.ndarray  # (G q) x G : scores of the bootstrap regression are K v


def _cluster_sums(M: np.ndarray, cl: np.ndarray, G: int) -> np.ndarray:
    out = np.empty((G, M.shape[1]))
    for j in range(M.shape[1]):
        out[:, j] = np.bincount(cl, weights=M[:, j], minlength=G)
    return out


def _statistics(fit: OLSFit, RA: np.ndarray, Mz: np.ndarray, corr: _FECorrection, w: np.ndarray,
                cl: np.ndarray, G: int, us: Sequence[np.ndarray]) -> list[_Stats]:
    q = RA.shape[0]
    Ts = corr.terms(us)
    out = []
    for u, T in zip(us, Ts, strict=True):
        S = _cluster_sums(fit.X * (w * u)[:, None], cl, G)  # G x k
        a = S @ RA.T  # G x q
        ASt = fit.bread @ S.T  # k x G
        K = -np.einsum("hjl,lg->hjg", Mz, ASt)  # G x q x G
        idx = np.arange(G)
        K[idx, :, idx] += a
        if corr.active:
            K -= T
        out.append(_Stats(a=a, K=K.reshape(G * q, G)))
    return out


def _chunks(G: int, q: int, B: int) -> int:
    return max(1, min(B, CHUNK_BYTES // (8 * G * max(q, 1) * 2)))


# ---------------------------------------------------------------- the test
def wild_cluster_bootstrap(
    fit: OLSFit,
    codes: np.ndarray,
    cluster_name: str,
    R: np.ndarray,
    r: np.ndarray,
    label: str,
    *,
    n_bootstrap: int,
    weights: str,
    impose_null: bool,
    seed: int | None,
    conf_level: float,
    ssc: SSC,
    func: str = "wild_bootstrap",
    progress: bool = True,
) -> WildBootstrapResult:
    """Wild cluster bootstrap test of ``R b = r`` for the stored fit ``fit`` clustered by ``codes``.

    See the module docstring for the algorithm. ``codes`` are integer cluster codes per observation. A progress
    bar over the draws is shown when interactive (:mod:`didx._progress`); ``progress=False`` silences it.
    """
    check_options(func, n_bootstrap=n_bootstrap, weights=weights, impose_null=impose_null, seed=seed,
                  conf_level=conf_level, r=r)
    conf_level = float(conf_level)
    cl = np.unique(np.asarray(codes), return_inverse=True)[1].astype(np.int64).ravel()
    G = int(cl.max()) + 1
    cluster_count_check(func, cluster_name, G)
    q = R.shape[0]
    n = fit.n_obs
    if 2.0 * G * G * q * 8 > MAX_K_BYTES:
        raise DesignError(
            f"{func}: {G} clusters make the G x G matrices of the fast algorithm too large "
            f"({2.0 * G * G * q * 8 / 2**30:.1f} GB). With this many clusters the analytic cluster-robust "
            f"standard errors are reliable. Fix: use result.tidy() / result.wald(), or bootstrap over a coarser "
            f"cluster variable (cluster=)."
        )
    w = np.ones(n) if fit.weights is None else np.asarray(fit.weights, dtype=np.float64)
    A = fit.bread
    b = fit.coef
    # observed statistic, with the analytic CR1 covariance and its small-sample factor
    vr = compute_vcov(fit, VcovSpec("CR1", (cluster_name,), ssc), {cluster_name: cl}, func)
    factor = float(vr.factor)
    est = R @ b
    RVR = R @ vr.matrix @ R.T
    diff = est - r
    if q == 1:
        se = float(np.sqrt(RVR[0, 0]))
        stat = float(diff[0] / se)
    else:
        stat = float(diff @ np.linalg.solve(RVR, diff))
    RA = R @ A  # q x k
    Z = fit.X @ RA.T  # n x q : z = X~ A R'
    Mz = np.empty((G, q, fit.n_coef))
    for j in range(q):
        Mz[:, j, :] = _cluster_sums(fit.X * (w * Z[:, j])[:, None], cl, G)
    corr = _FECorrection(fit.fe, Z, w, cl, G)
    H = np.linalg.inv(R @ A @ R.T)
    if impose_null and q == 1:
        # u~(r) = u^ + Z H (R b^ - r) = u_a + u_b r, and every statistic is linear in u: K(r) = K_a + r K_b
        u_a = fit.resid + Z[:, 0] * float(H[0, 0] * est[0])
        u_b = -Z[:, 0] * float(H[0, 0])
        sa, sb = _statistics(fit, RA, Mz, corr, w, cl, G, [u_a, u_b])
        r0 = float(r[0])
        stats_list = [_Stats(a=sa.a + r0 * sb.a, K=sa.K + r0 * sb.K), sa, sb]
    elif impose_null:
        stats_list = _statistics(fit, RA, Mz, corr, w, cl, G, [fit.resid + Z @ (H @ (est - r))])
    else:
        stats_list = _statistics(fit, RA, Mz, corr, w, cl, G, [fit.resid])

    full = weights == "rademacher" and G < 63 and n_bootstrap >= 2**G
    B = 2**G if full else int(n_bootstrap)
    rng = np.random.default_rng(seed)
    chunk = _chunks(G, q, B)
    boot = np.empty(B)
    keep_ci = q == 1
    if keep_ci and impose_null:
        parts = {k: np.empty(B) for k in ("Na", "Nb", "CC", "CD", "DD")}
    with bar(B, func, progress=progress, unit="draws") as pb:
        for start in range(0, B, chunk):
            stop = min(B, start + chunk)
            V = _enumeration(G, start, stop) if full else _draw(rng, weights, (G, stop - start))
            st = stats_list[0]
            num = st.a.T @ V  # q x m
            C = st.K @ V  # (G q) x m
            if q == 1:
                den2 = factor * np.einsum("gm,gm->m", C, C)
                with np.errstate(divide="ignore", invalid="ignore"):
                    boot[start:stop] = np.where(den2 > 0, num[0] / np.sqrt(den2), np.nan)
                if keep_ci and impose_null:
                    sa, sb = stats_list[1], stats_list[2]
                    Ca, Cb = sa.K @ V, sb.K @ V
                    parts["Na"][start:stop] = sa.a[:, 0] @ V
                    parts["Nb"][start:stop] = sb.a[:, 0] @ V
                    parts["CC"][start:stop] = np.einsum("gm,gm->m", Ca, Ca)
                    parts["CD"][start:stop] = np.einsum("gm,gm->m", Ca, Cb)
                    parts["DD"][start:stop] = np.einsum("gm,gm->m", Cb, Cb)
            else:
                C3 = C.reshape(G, q, -1)
                meat = factor * np.einsum("hjm,hlm->mjl", C3, C3)
                boot[start:stop] = _batched_wald(meat, num.T)
            pb.update(stop - start)
    valid = np.isfinite(boot)
    n_invalid = int((~valid).sum())
    if not valid.any():
        raise DesignError(f"{func}: every bootstrap draw has a zero variance; the hypothesis cannot be tested "
                          f"with the wild bootstrap on {G} clusters.")
    tb = boot[valid]
    if q == 1:
        p = _exceed_share(np.abs(tb), abs(stat))
    else:
        p = _exceed_share(tb, stat)
    alpha = 1.0 - conf_level
    ci = (float("nan"), float("nan"))
    if q == 1:
        e = float(est[0])
        if impose_null:
            arrays = {k: v[valid] for k, v in parts.items()}
            ci = _invert(arrays, e, se, factor, alpha)
        else:
            c = float(np.quantile(np.abs(tb), conf_level))
            ci = (e - c * se, e + c * se)
    return WildBootstrapResult(
        p_value=float(p), conf_int=ci, statistic=stat, estimate=float(est[0]) if q == 1 else float("nan"),
        hypothesis=label, n_restrictions=q, method="WCR" if impose_null else "WCU", impose_null=impose_null,
        weights=weights, n_bootstrap=B, full_enumeration=full, n_invalid=n_invalid, cluster=cluster_name,
        n_clusters=G, conf_level=conf_level, seed=None if full else seed, small_sample_factor=factor,
        fixed_effects=corr.description, bootstrap_statistics=boot,
    )


def _exceed_share(values: np.ndarray, observed: float) -> float:
    thresh = observed + TIE_RTOL * max(abs(observed), 1e-300)
    return float(np.mean(values > thresh))


def _batched_wald(meat: np.ndarray, num: np.ndarray) -> np.ndarray:
    try:
        sol = np.linalg.solve(meat, num[:, :, None])[:, :, 0]
        out = np.einsum("mj,mj->m", num, sol)
    except np.linalg.LinAlgError:
        out = np.einsum("mj,mjl,ml->m", num, np.linalg.pinv(meat), num)
        det = np.linalg.det(meat)
        out = np.where(det > 0, out, np.nan)
    return np.asarray(out)


def _invert(parts: dict[str, np.ndarray], est: float, se: float, factor: float,
            alpha: float) -> tuple[float, float]:
    """End points of ``{r : p(r) > alpha}`` by bisection on the bootstrap p-value (WCR)."""
    Na, Nb, CC, CD, DD = (parts[k] for k in ("Na", "Nb", "CC", "CD", "DD"))

    def pval(r: float) -> float:
        den2 = factor * (CC + 2.0 * CD * r + DD * r * r)
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = np.abs(Na + Nb * r) / np.sqrt(den2)
        tb = np.where(den2 > 0, tb, 0.0)
        return _exceed_share(tb, abs((est - r) / se))

    def end(direction: float) -> float:
        inside = est
        if pval(inside) <= alpha:
            return float("nan")
        step = 2.0 * se
        outside = est + direction * step
        tries = 0
        while pval(outside) > alpha:
            inside = outside
            step *= 2.0
            outside = est + direction * step
            tries += 1
            if tries > 60:
                return direction * float("inf")
        for _ in range(BISECT_ITER):
            mid = 0.5 * (inside + outside)
            if mid in (inside, outside) or abs(outside - inside) <= 1e-13 * max(abs(est), se):
                break
            if pval(mid) > alpha:
                inside = mid
            else:
                outside = mid
        return 0.5 * (inside + outside)

    return (end(-1.0), end(1.0))


Hypothesis = str | Sequence[str] | np.ndarray


class WildSource(Protocol):
    """What the wild bootstrap reads from a covariance source that declares ``bootstrap=("wild",)``."""

    @property
    def fit(self) -> OLSFit: ...

    @property
    def clusters(self) -> ClusterCodes: ...

    @property
    def default(self) -> VcovSpec: ...


def wild_bootstrap(result: Any, hypothesis: Hypothesis, *, n_bootstrap: int = 9999, weights: str = "rademacher",
                   impose_null: bool = True, seed: int | None = None, conf_level: float = 0.95,
                   r: float | Sequence[float] | np.ndarray = 0.0,
                   cluster: str | None = None, data: Any = None, progress: bool = True) -> WildBootstrapResult:
    """Wild cluster bootstrap of a regression result (called by ``RegressionResult.wild_bootstrap``).

    The result's covariance source must offer the ``"wild"`` bootstrap (:class:`WildSource`: the stored fit, the
    fit-time cluster codes and the default small-sample correction)."""
    func = "wild_bootstrap"
    progress = check_progress(func, progress)
    check_options(func, n_bootstrap=n_bootstrap, weights=weights, impose_null=impose_null, seed=seed,
                  conf_level=conf_level, r=r, cluster=cluster)
    source = result._source
    caps = getattr(source, "capabilities", None)
    engine = dict(getattr(result, "design", None) or ()).get("Engine")
    # an engine fit's own source has no rows to resample; a collapsed one (the cells in memory) bootstraps as usual
    if engine is not None and (caps is None or "wild" not in caps.bootstrap):
        raise InvalidOptionError(
            f"{func}: this {result.estimator} fit ran in an engine ({engine}), which returns sums by cohort and "
            f"period, not the per-observation scores the wild bootstrap resamples. Fix: fit on an in-memory frame "
            f"(e.g. duckdb.read_parquet(path).df() or spark_df.toPandas()) and bootstrap that result."
        )
    if caps is None or "wild" not in caps.bootstrap:
        raise InvalidOptionError(
            f"{func}: {result.estimator} results have no wild cluster bootstrap (it needs the regression's "
            f"scores). Fix: use the estimator's own inference options."
        )
    src: WildSource = source
    fit: OLSFit = src.fit
    if cluster is None:
        names = tuple(result.inference.cluster_names)
        if not names:
            raise InvalidOptionError(
                f"{func}: this {result.estimator} result is not clustered, so there is no cluster variable to "
                f"bootstrap over. Fix: pass cluster='column' (the level at which treatment is assigned), or "
                f"re-estimate with cluster=."
            )
        if len(names) > 1:
            raise InvalidOptionError(
                f"{func}: the result is clustered two ways ({list(names)}); the wild bootstrap here draws one weight "
                f"per cluster of a single variable. Fix: pass cluster= one of {list(names)}."
            )
        cluster = names[0]
    R, rv, label = restriction_matrix(func, fit.names, hypothesis, r)
    codes = src.clusters.resolve(func, [cluster], {}, data, caps.new_clusters)[0][cluster]
    ssc = src.default.ssc
    return wild_cluster_bootstrap(fit, codes, cluster, R, rv, label, n_bootstrap=n_bootstrap, weights=weights,
                                  impose_null=impose_null, seed=seed, conf_level=conf_level, ssc=ssc, func=func,
                                  progress=progress)
