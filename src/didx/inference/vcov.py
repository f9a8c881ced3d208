"""Covariance matrices for (fixed-effect) least squares, with the small-sample conventions of R.

Conventions (``n`` observations, ``k`` slope coefficients, ``K`` coefficients counted for the correction,
``G`` clusters):

================  =============================================================  ==========================
``vcov=``         matrix                                                         matches
================  =============================================================  ==========================
``"iid"``         ``s^2 (X'WX)^-1``, ``s^2 = sum w e^2 / (n - K)``                 R ``lm``; fixest ``iid``
                  (``/ (n - 1)`` with ``SSC(adj=False)``, as fixest)
``"HC0"``         ``B M B``, ``M = sum w^2 e^2 x x'``                              sandwich ``HC0``
``"HC1"``         HC0 x ``n / (n - K)``                                            sandwich ``HC1``, Stata,
``"hetero"``      the same as ``"HC1"``                                            fixest ``hetero``
``"HC2"/"HC3"``   HC0 with ``e^2 / (1 - h)`` or ``e^2 / (1 - h)^2``                 sandwich (<= 1 absorbed FE)
``"CR1"``         cluster sums, x ``G/(G-1) (n-1)/(n-K)``                          fixest, sandwich, Stata
``"CR0"``         cluster sums, no correction
``"CR3"``         jackknife ``(G-1)/G sum (b_-g - b)(b_-g - b)'``                 MacKinnon-Nielsen-Webb CV3
================  =============================================================  ==========================

``K`` counts the slope coefficients plus the fixed-effect coefficients, except that fixed effects nested in a
cluster variable are not counted (fixest's ``fixef.K = "nested"``; one is added back for each, the intercept
it subsumes: ``K = k + n_fe - sum over nested factors of (levels - 1)``). fixest's HC1 factor is
``(n-1)/(n-K)`` times the "each observation its own cluster" factor ``n/(n-1)``, i.e. sandwich's ``n/(n-K)``.
Two-way clustering follows Cameron, Gelbach & Miller (2011), ``V_A + V_B - V_{AB}``, each term with the
correction of the smaller number of clusters (fixest's ``cluster.df = "min"``); if a variance comes out negative the
matrix is repaired as fixest does (eigenvalues floored at 1e-10; an indefinite matrix with non-negative variances
is left unchanged). t tests use ``n - K`` degrees of freedom, or ``min(G) - 1``
with clustering. CR3 is the exact leave-one-cluster-out jackknife, fixed effects not nested in the cluster
re-estimated without each cluster (:func:`_jackknife`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from didx._errors import DesignError, InvalidOptionError
from didx._validate import check_option, cluster_count_check
from didx.linalg.ols import OLSFit

POSDEF_FLOOR = 1e-10
"""Eigenvalue floor of the two-way repair (fixest's ``mat_posdef_fix`` tolerance)."""

VCOV_TYPES = ("iid", "HC0", "HC1", "hetero", "HC2", "HC3", "CR0", "CR1", "CR3")


@dataclass(frozen=True)
class SSC:
    """Small-sample correction, as a value (fixest's ``ssc()``).

    adj : multiply by ``(n - 1) / (n - K)`` (``n / (n - K)`` for ``HC1``).
    fixef_k : how fixed effects count in ``K``: ``"nested"`` (not those nested in a cluster), ``"full"``, ``"none"``.
    cluster_adj : multiply clustered matrices by ``G / (G - 1)``.
    cluster_df : ``"min"`` (two-way: every term uses the smaller G) or ``"conventional"`` (each its own).
    fixef_exact : count the redundant fixed-effect levels of two factors exactly, one per connected component
        (fixest's ``fixef.force_exact = TRUE``); ``False`` counts one per factor after the first (fixest's
        default). They differ only when the two fixed effects are disconnected.
    """

    adj: bool = True
    fixef_k: str = "nested"
    cluster_adj: bool = True
    cluster_df: str = "min"
    fixef_exact: bool = True

    def __post_init__(self) -> None:
        for name in ("adj", "cluster_adj", "fixef_exact"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise InvalidOptionError(
                    f"The {name!r} parameter of SSC must be True or False. Got {value!r} instead."
                )
        check_option("SSC", "fixef_k", self.fixef_k, ("nested", "full", "none"))
        check_option("SSC", "cluster_df", self.cluster_df, ("min", "conventional"))

    def describe(self, has_fe: bool = True) -> str:
        if not self.adj and not self.cluster_adj:
            return "none"
        parts = []
        if self.adj:
            parts.append(f"(n-1)/(n-K) with fixed effects counted '{self.fixef_k}'" if has_fe else "(n-1)/(n-K)")
        if self.cluster_adj:
            parts.append(f"G/(G-1) ({self.cluster_df} G)")
        return ", ".join(parts)


SSC_NONE = SSC(adj=False, cluster_adj=False)


@dataclass(frozen=True)
class VcovSpec:
    """A resolved request: the type and the cluster variables (by name)."""

    kind: str
    clusters: tuple[str, ...] = ()
    ssc: SSC = SSC()

    def __post_init__(self) -> None:
        # column names are the str of the frame's labels (an integer label 0 is the column '0')
        object.__setattr__(self, "clusters", tuple(str(c) for c in self.clusters))

    def label(self) -> str:
        if self.clusters:
            return f"{self.kind}, clustered by {' and '.join(self.clusters)}"
        return self.kind


def resolve_vcov(func: str, vcov: str | None, cluster: str | Sequence[str] | None, default: VcovSpec,
                 ssc: SSC | None = None) -> VcovSpec:
    """Turn user arguments into a :class:`VcovSpec` (``vcov=None`` takes the estimator's default)."""
    check_ssc(func, ssc)
    check_ssc(func, default.ssc)
    clusters: tuple[str, ...] = () if cluster is None else ((cluster,) if isinstance(cluster, str) else tuple(cluster))
    s = ssc if ssc is not None else default.ssc
    if vcov is None:
        if clusters:
            return VcovSpec("CR1", clusters, s)
        return VcovSpec(default.kind, default.clusters, s)
    if not isinstance(vcov, str):
        raise InvalidOptionError(
            f"The 'vcov' parameter of {func} must be a string such as 'HC1' or 'CR1'. Got {vcov!r}."
        )
    kind = {"hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3", "cr0": "CR0", "cr1": "CR1", "cr3": "CR3",
            "iid": "iid", "hetero": "hetero", "cluster": "CR1", "crv1": "CR1", "crv3": "CR3"}.get(vcov.lower(), vcov)
    check_option(func, "vcov", kind, (*VCOV_TYPES, "cluster"))
    if kind.startswith("CR"):
        if not clusters:
            clusters = default.clusters
        if not clusters:
            raise InvalidOptionError(
                f"{func}: vcov={vcov!r} needs a cluster variable. Fix: pass cluster='column' (the level at which "
                f"treatment is assigned), or choose vcov='HC1'."
            )
        if len(clusters) > 2:
            raise InvalidOptionError(
                f"{func}: at most two cluster variables are supported, got {list(clusters)}. Fix: pass one or two "
                f"columns to cluster=."
            )
        if kind == "CR3" and len(clusters) > 1:
            raise InvalidOptionError(
                f"{func}: vcov='CR3' supports one cluster variable, got {list(clusters)}. Fix: cluster by one "
                f"column, or use vcov='CR1' for two-way clustering."
            )
        return VcovSpec(kind, clusters, s)
    if clusters:
        raise InvalidOptionError(
            f"{func}: cluster={list(clusters)} was given with vcov={vcov!r}, which does not cluster. Fix: drop "
            f"vcov= (clustering then gives CR1) or use vcov='CR1' / 'CR3'."
        )
    return VcovSpec(kind, (), s)


def check_ssc(func: str, ssc: object) -> None:
    """``ssc=`` must be a :class:`SSC` (or None for the estimator's default)."""
    if ssc is not None and not isinstance(ssc, SSC):
        raise InvalidOptionError(
            f"The 'ssc' parameter of {func} must be a didx.SSC(...) value or None. Got {ssc!r} instead. "
            f"Fix: pass e.g. ssc=didx.SSC(adj=False), or leave it out for the default correction."
        )


@dataclass(frozen=True)
class VcovResult:
    matrix: np.ndarray
    df: float | None
    n_clusters: tuple[int, ...]
    k_ssc: int
    factor: float


def k_for_ssc(k: int, n_fe: int, levels: Sequence[int], nested: Sequence[bool], ssc: SSC, clustered: bool) -> int:
    """fixest's K: ``k`` slopes plus ``n_fe`` fixed-effect coefficients, except the levels of factors nested in a
    cluster variable (``fixef_k="nested"``), keeping at least the constant they subsume."""
    if ssc.fixef_k == "none":
        return k
    if ssc.fixef_k == "full" or not clustered or not any(nested):
        return k + n_fe
    n_fe -= sum(L - 1 for L, m in zip(levels, nested, strict=True) if m)
    return max(k + n_fe, k + 1)


def _count_k(fit: OLSFit, ssc: SSC, cluster_codes: Sequence[np.ndarray]) -> int:
    fe = fit.fe
    if fe is None:
        return fit.n_coef
    nested = np.zeros(len(fe.factors), dtype=bool)
    if ssc.fixef_k == "nested":
        for codes in cluster_codes:
            nested |= np.asarray(fe.nested_in(codes))
    return k_for_ssc(fit.n_coef, fe.n_params(ssc.fixef_exact), fe.n_levels, nested.tolist(), ssc,
                     bool(cluster_codes))


def iid_vcov(B: np.ndarray, rss: float, n: int, K: int, ssc: SSC) -> VcovResult:
    """``s^2 B`` with fixest's ``s^2``: RSS/(n-K), or RSS/(n-1) without the adjustment."""
    denom = n - K if ssc.adj else n - 1
    return VcovResult(B * (rss / denom), float(n - K), (), K, 1.0 / denom)


def hc_factor(kind: str, n: int, K: int, ssc: SSC) -> float:
    """Small-sample factor of a heteroskedasticity-robust matrix: ``n/(n-K)`` for HC1 / hetero (fixest's
    ``(n-1)/(n-K)`` times the one-observation-per-cluster ``n/(n-1)``), 1 otherwise."""
    if kind not in ("HC1", "hetero"):
        return 1.0
    return ((n - 1) / (n - K) if ssc.adj else 1.0) * (n / (n - 1) if ssc.cluster_adj else 1.0)


def clustered_vcov(kind: str, B: np.ndarray, n: int, K: int, ssc: SSC, codes: Sequence[np.ndarray],
                   meat: Callable[[np.ndarray], tuple[np.ndarray, int]], func: str = "vcov",
                   names: Sequence[str] = ()) -> VcovResult:
    """CR0 / CR1, one- or two-way, from ``meat(codes) -> (sum of outer products of cluster scores, G)``.

    Two-way: ``V_A + V_B - V_AB`` (Cameron, Gelbach & Miller 2011), each term with ``G/(G-1)`` of the smaller G
    (``cluster_df="min"``) or its own; repaired as fixest does, only when a variance is negative.
    """
    adj = (n - 1) / (n - K) if ssc.adj else 1.0
    labels = list(names) or [f"cluster {i + 1}" for i in range(len(codes))]
    if len(codes) == 1:
        m, G = meat(codes[0])
        cluster_count_check(func, labels[0], G)
        cadj = G / (G - 1) if (ssc.cluster_adj and kind == "CR1") else 1.0
        factor = adj * cadj if kind == "CR1" else 1.0
        return VcovResult(factor * (B @ m @ B), float(G - 1), (G,), K, factor)
    if len(codes) != 2:
        raise InvalidOptionError(
            f"{func}: at most two cluster variables are supported, got {list(names) or len(codes)}. "
            f"Fix: pass one or two columns to cluster=."
        )
    m1, G1 = meat(codes[0])
    m2, G2 = meat(codes[1])
    cluster_count_check(func, labels[0], G1)
    cluster_count_check(func, labels[1], G2)
    m12, G12 = meat(_intersect(codes[0], codes[1]))
    Gmin = min(G1, G2)

    def cfac(G: int) -> float:
        if not (ssc.cluster_adj and kind == "CR1"):
            return 1.0
        g = Gmin if ssc.cluster_df == "min" else G
        return g / (g - 1)

    a = adj if kind == "CR1" else 1.0
    V = a * (B @ (cfac(G1) * m1 + cfac(G2) * m2 - cfac(G12) * m12) @ B)
    V = 0.5 * (V + V.T)
    if np.any(np.diag(V) < 0):
        # fixest's repair (Cameron, Gelbach & Miller 2011): only when a variance is negative, eigenvalues floored
        # at POSDEF_FLOOR; an indefinite matrix with non-negative variances is left as it is, as fixest does
        vals, vecs = np.linalg.eigh(V)
        V = (vecs * np.maximum(vals, POSDEF_FLOOR)) @ vecs.T
    return VcovResult(V, float(Gmin - 1), (G1, G2), K, a)


def _cluster_meat(S: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, int]:
    G = int(codes.max()) + 1
    sums = np.empty((G, S.shape[1]))
    for j in range(S.shape[1]):
        sums[:, j] = np.bincount(codes, weights=S[:, j], minlength=G)
    present = np.bincount(codes, minlength=G) > 0
    sums = sums[present]
    return sums.T @ sums, int(present.sum())


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    key = a.astype(np.int64) * (int(b.max()) + 1) + b
    return np.unique(key, return_inverse=True)[1].astype(np.int64)


def _leverage(fit: OLSFit, func: str, kind: str) -> np.ndarray:
    """Diagonal of the (weighted) hat matrix, ``h_i = w_i x_i' (X'WX)^-1 x_i``, plus ``w_i / W_g`` for one
    absorbed factor (the leverage of its dummies, by Frisch-Waugh-Lovell)."""
    X = fit.X
    h = np.einsum("ij,jk,ik->i", X, fit.bread, X)
    if fit.weights is not None:
        h = h * fit.weights
    fe = fit.fe
    if fe is not None:
        if len(fe.factors) != 1:
            raise InvalidOptionError(
                f"{func}: vcov={kind!r} needs the leverage of every observation, which is computed for one absorbed "
                f"factor (e.g. unit effects) but not for {len(fe.factors)} ({', '.join(map(str, fe.names))}). "
                f"Fix: use vcov='hetero' / 'HC1', or cluster."
            )
        f = fe.factors[0]
        wsum = np.bincount(f, weights=fit.weights, minlength=fe.n_levels[0])
        own = np.ones(f.shape[0]) if fit.weights is None else fit.weights
        h = h + own / np.where(wsum > 0, wsum, 1.0)[f]
    return h


def compute_vcov(
    fit: OLSFit, spec: VcovSpec, cluster_codes: Mapping[str, np.ndarray], func: str = "vcov"
) -> VcovResult:
    """The covariance matrix of ``fit.coef`` under ``spec``; ``cluster_codes`` maps names to integer codes."""
    n = fit.n_obs
    B = fit.bread
    ssc = spec.ssc
    by_name = {str(k): v for k, v in cluster_codes.items()}
    codes = [np.asarray(by_name[c]) for c in spec.clusters]
    K = _count_k(fit, ssc, codes)
    if fit.n_coef == 0:
        return VcovResult(np.zeros((0, 0)), None, (), K, 1.0)
    kind = spec.kind
    if kind == "iid":
        w = 1.0 if fit.weights is None else fit.weights
        return iid_vcov(B, float(np.sum(w * fit.resid**2)), n, K, ssc)
    if kind in ("HC0", "HC1", "hetero", "HC2", "HC3"):
        S = fit.scores()
        if kind in ("HC2", "HC3"):
            h = _leverage(fit, func, kind)
            # an observation with leverage 1 (e.g. a unit seen once, with unit effects) is fitted exactly: its
            # residual and score are 0 and it contributes nothing (instead of 0/0)
            one = h >= 1.0 - 1e-10
            room = np.where(one, 1.0, 1.0 - np.where(one, 0.0, h))
            S = S / (room ** (0.5 if kind == "HC2" else 1.0))[:, None]
            S[one] = 0.0
        factor = hc_factor(kind, n, K, ssc)
        return VcovResult(factor * (B @ (S.T @ S) @ B), float(n - K), (), K, factor)
    # clustered
    if kind == "CR3":
        return _jackknife(fit, codes[0], K, func, spec.clusters[0])
    S = fit.scores()
    return clustered_vcov(kind, B, n, K, ssc, codes, lambda c: _cluster_meat(S, c), func, spec.clusters)


JACKKNIFE_MAX_DUMMY_ENTRIES = 20_000_000
"""Largest table built for CR3 when fixed effects are not nested in the clusters: levels of the nested factor x
levels of the others (one nested factor), or observations x levels (several)."""
JACKKNIFE_CHUNK_ENTRIES = 10_000_000
"""Rows x p^2 entries of per-observation cross products held at once by CR3 (about 80 MB)."""


@dataclass(frozen=True, eq=False)
class _FreeEffects:
    """Dummies of the fixed effects not nested in the clusters, demeaned by the nested ones, built rows at a time.

    With at most one nested factor ``u`` a row is ``1[f_i = l] - share of level l of f in u_i`` (a table of
    ``L_u x L_f`` weighted shares); with several nested factors the block is demeaned once and stored.
    """

    factors: tuple[np.ndarray, ...]
    levels: tuple[int, ...]
    drop_first: tuple[bool, ...]
    nested: np.ndarray | None
    shares: tuple[np.ndarray, ...]
    stored: np.ndarray | None
    width: int

    def rows(self, idx: np.ndarray) -> np.ndarray:
        if self.stored is not None:
            return np.asarray(self.stored[idx])
        m = idx.shape[0]
        blocks = []
        for f, L, drop, share in zip(self.factors, self.levels, self.drop_first, self.shares, strict=True):
            D = np.zeros((m, L))
            D[np.arange(m), f[idx]] = 1.0
            if self.nested is not None:
                D -= share[self.nested[idx]]
            blocks.append(D[:, 1:] if drop else D)
        return np.hstack(blocks)


def _free_effects(fit: OLSFit, codes: np.ndarray, func: str) -> _FreeEffects | None:
    """What makes the demeaned-data jackknife exact when some fixed effects are not nested in the clusters.

    Leaving a cluster out removes whole levels of the nested factors, so absorbing those on the full sample is the
    same as on the subsample; the other factors' effects must be re-estimated without the cluster. Their dummies,
    demeaned by the nested factors (``Z``), are added as regressors: the leave-one-out regressions of the stored
    ``y_demeaned`` on ``[X, Z]`` give the same slopes as re-absorbing every fixed effect without the cluster
    (``X`` and ``y`` differ from their nested-only demeaned versions by multiples of ``Z``).
    """
    fe = fit.fe
    if fe is None:
        return None
    nested = fe.nested_in(codes)
    free = [j for j, m in enumerate(nested) if not m]
    if not free:
        return None
    inner = [j for j, m in enumerate(nested) if m]
    n = fit.n_obs
    sizes = [fe.n_levels[j] for j in free]
    # one level per factor is redundant (with the nested factors' constant, or with the first free factor)
    drop = tuple(i > 0 or bool(inner) for i in range(len(free)))
    width = sum(L - 1 if d else L for L, d in zip(sizes, drop, strict=True))
    factors = tuple(fe.factors[j] for j in free)
    table = (fe.n_levels[inner[0]] if len(inner) == 1 else n) * sum(sizes)
    if table > JACKKNIFE_MAX_DUMMY_ENTRIES:
        names = [fe.names[j] for j in free]
        raise InvalidOptionError(
            f"{func}: vcov='CR3' re-estimates the fixed effects {names} (not nested in the clusters) without each "
            f"cluster, which needs a table of {table} entries: too large. Fix: cluster at a level that nests "
            f"these fixed effects, or use vcov='CR1' (or the wild cluster bootstrap)."
        )
    if len(inner) <= 1:
        u = fe.factors[inner[0]] if inner else None
        shares: list[np.ndarray] = []
        if u is not None:
            Lu = fe.n_levels[inner[0]]
            wu = np.bincount(u, weights=fit.weights, minlength=Lu)
            for f, L in zip(factors, sizes, strict=True):
                cell = np.bincount(u * L + f, weights=fit.weights, minlength=Lu * L).reshape(Lu, L)
                shares.append(cell / np.where(wu > 0, wu, 1.0)[:, None])
        else:
            shares = [np.zeros((0, L)) for L in sizes]
        return _FreeEffects(factors, tuple(sizes), drop, u, tuple(shares), None, width)
    from didx.linalg.absorb import FixedEffects

    plain = _FreeEffects(factors, tuple(sizes), drop, None, tuple(np.zeros((0, L)) for L in sizes), None, width)
    Z = FixedEffects([fe.factors[j] for j in inner], [fe.names[j] for j in inner],
                     weights=fit.weights).demean(plain.rows(np.arange(n)))
    return _FreeEffects(factors, tuple(sizes), drop, None, (), Z, width)


def _jackknife(fit: OLSFit, codes: np.ndarray, K: int, func: str = "vcov", name: str = "cluster") -> VcovResult:
    """CV3: ``(G-1)/G sum_g (b_-g - b)(b_-g - b)'`` with ``b_-g`` the estimate without cluster ``g``.

    Computed from per-cluster cross products, ``b_-g - b = -(A - A_g)^{-1} X_g' W e_g``, never by refitting. Fixed
    effects nested in the clusters stay absorbed (leaving a cluster out removes their levels whole); the others are
    re-estimated without each cluster through their dummies (:func:`_free_effects`), so the result is the exact
    leave-one-cluster-out jackknife of the fixed-effects regression. Memory: O(chunk x p^2), never n x levels for
    one nested factor.
    """
    X, e = fit.X, fit.resid
    k = X.shape[1]
    free = _free_effects(fit, codes, func)
    p = k + (free.width if free is not None else 0)
    w = fit.weights

    def block(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Xs = X[rows] if free is None else np.hstack([X[rows], free.rows(rows)])
        return Xs, (Xs if w is None else Xs * w[rows][:, None])

    step = max(1, JACKKNIFE_CHUNK_ENTRIES // p)

    def cross(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        A_r, s_r = np.zeros((p, p)), np.zeros(p)
        for lo in range(0, rows.shape[0], step):
            Xs, WXs = block(rows[lo:lo + step])
            A_r += Xs.T @ WXs
            s_r += WXs.T @ e[rows[lo:lo + step]]
        return A_r, s_r

    A, _ = cross(np.arange(X.shape[0]))
    order = np.argsort(codes, kind="stable")
    sc = np.asarray(codes)[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    G = int(starts.shape[0])
    cluster_count_check(func, name, G)
    diffs = np.empty((G, k))
    bounds = np.r_[starts, sc.shape[0]]
    budget_rows = max(1, JACKKNIFE_CHUNK_ENTRIES // (p * p))
    g0 = 0
    while g0 < G:  # whole clusters in chunks of at most budget_rows rows: memory O(budget_rows x p^2)
        g1 = min(int(np.searchsorted(bounds, bounds[g0] + budget_rows, side="right")) - 1, G)
        if g1 <= g0:  # one cluster larger than the budget: its cross products in pieces
            g1 = g0 + 1
            A_one, s_one = cross(order[bounds[g0]:bounds[g1]])
            A_g, s_g = A_one[None], s_one[None]
        else:
            lo = int(bounds[g0])
            rows = order[lo:int(bounds[g1])]
            Xs, WXs = block(rows)
            local = starts[g0:g1] - lo
            A_g = np.add.reduceat(Xs[:, :, None] * WXs[:, None, :], local, axis=0)
            s_g = np.add.reduceat(WXs * e[rows][:, None], local, axis=0)
        try:
            d = -np.linalg.solve(A[None, :, :] - A_g, s_g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            raise DesignError(
                f"{func}: vcov='CR3' needs the estimate without each cluster, but leaving out one cluster makes the "
                f"regression unidentified (that cluster holds all the variation of a regressor or a fixed-effect "
                f"level). Fix: use vcov='CR1', or the wild cluster bootstrap."
            ) from None
        diffs[g0:g1] = d[:, :k]
        g0 = g1
    V = (G - 1) / G * (diffs.T @ diffs)
    return VcovResult(V, float(G - 1), (G,), K, (G - 1) / G)
