"""Multiplier bootstrap for influence-function estimators, without an n x B matrix.

An asymptotically linear estimator ``theta_hat - theta ~= (1/n) sum_i psi_i`` is bootstrapped by drawing i.i.d.
multipliers ``v_i`` (mean 0, variance 1) and forming ``(1/n) sum_i v_i psi_i`` (Callaway & Sant'Anna 2021,
Algorithm 1; R's ``did::mboot``). When every ``psi_i`` is a linear function of a short per-unit feature vector
``z_i`` with coefficients that depend only on the unit's block (its cohort), ``psi_i = D_g' z_i``, every draw
of every estimand is ``sum_g D_g' (sum_{i in g} v_i z_i)``: so only the per-block sums ``R[b, g, :] =
sum_{i in g} v_ib z_i`` are needed. They are computed here in chunks of units (memory ``O(B x chunk)``), with
the multipliers generated from raw random bits:

- Rademacher ``v = +-1`` (probability 1/2 each; R's ``did`` default, via ``BMisc::multiplier_bootstrap``):
  ``v = 2u - 1`` with ``u`` a fair bit;
- Mammen ``v = (1 - sqrt 5)/2`` w.p. ``(sqrt 5 + 1)/(2 sqrt 5)``, else ``(1 + sqrt 5)/2``:
  ``v = a + (b - a) u`` with ``u`` Bernoulli from a 32-bit uniform integer.

Clustered draws (one multiplier per cluster) multiply the cluster's *summed* influence function,
``(1/n) sum_c v_c psi_c``, whose spread is the cluster-robust ``sqrt(sum_c psi_c^2) / n`` (Callaway & Sant'Anna
2021, Remark 10; the current ``did::mboot``; older ``did`` versions used cluster means, equal for equal-sized
clusters).

Standard errors follow ``did``: the interquartile range of the draws divided by that of the standard normal
(``quantile(type = 1)``), and the uniform (sup-t) critical value is the ``1 - alpha`` quantile of
``max_k |draw_k / se_k|``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from didx._errors import InvalidOptionError
from didx._progress import bar

MULTIPLIERS = ("rademacher", "mammen", "gaussian")
_SQRT5 = float(np.sqrt(5.0))
MAMMEN_LOW = (1.0 - _SQRT5) / 2.0
MAMMEN_HIGH = (1.0 + _SQRT5) / 2.0
MAMMEN_P_HIGH = (_SQRT5 - 1.0) / (2.0 * _SQRT5)
_IQR_NORMAL = float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
_CHUNK_ELEMENTS = 8_000_000  # multipliers per chunk (float32: 32 MB)


def _bits(rng: np.random.Generator, out: np.ndarray, kind: str, mask: np.ndarray) -> np.ndarray:
    """Fill ``out`` (float32) with 0/1 draws: fair bits (Rademacher) or Bernoulli(p_high) (Mammen).

    Buffers are reused across chunks: allocating fresh arrays (page faults) costs more than drawing."""
    size = out.shape[0]
    if kind == "rademacher":
        raw = rng.bit_generator.random_raw((size + 63) // 64)
        np.copyto(out, np.unpackbits(raw.view(np.uint8), count=size), casting="unsafe")
        return out
    rng.random(dtype=np.float32, out=out)
    np.less(out, np.float32(MAMMEN_P_HIGH), out=mask[:size])
    np.copyto(out, mask[:size], casting="unsafe")
    return out


def _affine(kind: str) -> tuple[float, float]:
    """``v = a + b u`` for a 0/1 draw ``u``."""
    if kind == "rademacher":
        return -1.0, 2.0
    return MAMMEN_LOW, MAMMEN_HIGH - MAMMEN_LOW


def block_sums(Z: np.ndarray, block: np.ndarray, n_draws: int, kind: str, rng: np.random.Generator, *,
               progress: bool = True) -> np.ndarray:
    """``R[b, g, :] = sum_{i in block g} v_ib Z[i, :]`` for ``n_draws`` multiplier draws, in chunks of units.

    ``Z`` (n x L) has its rows grouped by block: block ``g`` is ``Z[block[g]:block[g+1]]``. Returns (B, G, L)
    float64. Time ``O(n L B)``, memory ``O(B x chunk)``. A bar over the units when interactive
    (``progress=False``: never).
    """
    if kind not in ("rademacher", "mammen"):
        raise InvalidOptionError(f"block_sums: multipliers must be 'rademacher' or 'mammen'; got {kind!r}.")
    B = int(n_draws)
    G = block.shape[0] - 1
    L = Z.shape[1]
    a, b = _affine(kind)
    out = np.zeros((B, G, L))
    chunk = max(1, _CHUNK_ELEMENTS // max(B, 1))
    buf = np.empty(B * chunk, dtype=np.float32)
    mask = np.empty(B * chunk, dtype=bool)
    with bar(int(block[-1] - block[0]), "multiplier bootstrap", progress=progress, unit="units") as pb:
        for g in range(G):
            lo, hi = int(block[g]), int(block[g + 1])
            if hi == lo:
                continue
            acc = np.zeros((B, L))
            for s in range(lo, hi, chunk):
                e = min(hi, s + chunk)
                Zc = Z[s:e].astype(np.float32)
                U = _bits(rng, buf[: B * (e - s)], kind, mask).reshape(B, e - s)
                acc += U @ Zc
                pb.update(e - s)
            out[:, g, :] = b * acc + a * Z[lo:hi].sum(axis=0)
    return out


def cluster_sums(Zc: np.ndarray, n_draws: int, kind: str, rng: np.random.Generator, *,
                 progress: bool = True) -> np.ndarray:
    """``R[b, ...] = sum_c v_cb Zc[c, ...]`` for clustered draws (``Zc``: features summed within clusters); a bar
    over the clusters when interactive (``progress=False``: never)."""
    B = int(n_draws)
    C = Zc.shape[0]
    flat = Zc.reshape(C, -1)
    a, b = _affine(kind)
    out = np.zeros((B, flat.shape[1]))
    chunk = max(1, _CHUNK_ELEMENTS // max(B, 1))
    buf = np.empty(B * min(chunk, C), dtype=np.float32)
    mask = np.empty(B * min(chunk, C), dtype=bool)
    with bar(C, "multiplier bootstrap", progress=progress, unit="clusters") as pb:
        for s in range(0, C, chunk):
            e = min(C, s + chunk)
            U = _bits(rng, buf[: B * (e - s)], kind, mask).reshape(B, e - s).astype(np.float64)
            out += b * (U @ flat[s:e]) + a * flat[s:e].sum(axis=0)
            pb.update(e - s)
    return out.reshape((B, *Zc.shape[1:]))


def pair_sums(p_cluster: np.ndarray, p_block: np.ndarray, zp: np.ndarray, n_clusters: int, n_blocks: int,
              n_draws: int, kind: str, rng: np.random.Generator, *, progress: bool = True) -> np.ndarray:
    """Clustered draws ``R[b, g, :] = sum_c v_cb zc[c, g, :]`` from the (cluster, block) pairs present.

    ``zp`` (P x L) holds the feature sums of the pairs, sorted by cluster (``p_cluster``), with their block
    ``p_block``: no dense clusters x blocks array. The multipliers are drawn exactly as :func:`cluster_sums`
    draws them (same chunks), so both give the same draws for the same generator state. Returns (B, G, L)."""
    B = int(n_draws)
    L = zp.shape[1]
    a, b = _affine(kind)
    out = np.zeros((B, n_blocks, L))
    chunk = max(1, _CHUNK_ELEMENTS // max(B, 1))
    buf = np.empty(B * min(chunk, n_clusters), dtype=np.float32)
    mask = np.empty(B * min(chunk, n_clusters), dtype=bool)
    with bar(n_clusters, "multiplier bootstrap", progress=progress, unit="clusters") as pb:
        for s in range(0, n_clusters, chunk):
            e = min(n_clusters, s + chunk)
            U = _bits(rng, buf[: B * (e - s)], kind, mask).reshape(B, e - s).astype(np.float64)
            lo, hi = np.searchsorted(p_cluster, [s, e])
            for g in range(n_blocks):
                sel = lo + np.flatnonzero(p_block[lo:hi] == g)
                if sel.size:
                    out[:, g, :] += U[:, p_cluster[sel] - s] @ zp[sel]
            pb.update(e - s)
    total = np.zeros((n_blocks, L))
    np.add.at(total, p_block, zp)
    return b * out + a * total


def _quantile_type1(x: np.ndarray, q: float, axis: int = 0) -> np.ndarray:
    return np.asarray(np.quantile(x, q, axis=axis, method="inverted_cdf"))


def bootstrap_se(draws: np.ndarray) -> np.ndarray:
    """``did``'s bootstrap SE per column: ``(q75 - q25) / (z75 - z25)`` of the draws (NaN when degenerate)."""
    se = (_quantile_type1(draws, 0.75) - _quantile_type1(draws, 0.25)) / _IQR_NORMAL
    se = np.asarray(se, dtype=float)
    se[~(se > np.sqrt(np.finfo(float).eps) * 10)] = np.nan
    return se


def bootstrap_critical_value(draws: np.ndarray, se: np.ndarray, conf_level: float = 0.95) -> float:
    """The ``conf_level`` quantile of ``max_k |draw_k / se_k|`` over columns with a finite SE (``did``)."""
    ok = np.isfinite(se) & (se > 0)
    if not ok.any():
        return float(stats.norm.ppf(0.5 + conf_level / 2))
    t = np.abs(draws[:, ok] / se[ok]).max(axis=1)
    t = t[np.isfinite(t)]
    return float(_quantile_type1(t, conf_level))


def draws_vcov(draws: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Covariance with the bootstrap SEs on the diagonal and the draws' correlations off it."""
    k = draws.shape[1]
    C = np.cov(draws, rowvar=False).reshape(k, k)
    sd = np.sqrt(np.clip(np.diag(C), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        R = C / np.outer(sd, sd)
    R[~np.isfinite(R)] = 0.0
    s = np.where(np.isfinite(se), se, 0.0)
    np.fill_diagonal(R, 1.0)
    return np.asarray(R * np.outer(s, s))


def multiplier_draws(psi: np.ndarray, n_draws: int, kind: str = "rademacher", *, seed: int | None = None,
                     cluster: np.ndarray | None = None, progress: bool = True) -> np.ndarray:
    """Multiplier-bootstrap draws ``(B, K)`` of estimators with influence functions ``psi`` (n x K).

    Unit level: ``(1/n) sum_i v_i psi_i``; with ``cluster`` codes (0..C-1 per row): ``(1/n) sum_c v_c psi_c``
    with ``psi_c`` the cluster's summed influence function. Gaussian multipliers give ``N(0, V)`` draws with
    ``V`` the (cluster-)robust ``sum psi psi' / n^2``. Memory ``O(B x chunk)``; ``psi`` is read once.
    """
    if kind not in MULTIPLIERS:
        raise InvalidOptionError(f"multipliers must be one of {MULTIPLIERS}; got {kind!r}.")
    P = np.atleast_2d(np.asarray(psi, dtype=float).T).T
    n = P.shape[0]
    rng = np.random.default_rng(seed)
    if cluster is not None:
        codes = np.asarray(cluster, dtype=np.int64)
        C = int(codes.max()) + 1
        sums = np.stack([np.bincount(codes, weights=P[:, j], minlength=C) for j in range(P.shape[1])], axis=1)
        if kind != "gaussian":
            return np.asarray(cluster_sums(sums, n_draws, kind, rng, progress=progress) / n)
        P = sums  # gaussian: N(0, sum_c psi_c psi_c' / n^2), drawn from its K x K root (no B x C matrix)
    if kind == "gaussian":
        V = P.T @ P / float(n) ** 2
        lam, U = np.linalg.eigh(V)
        L = U * np.sqrt(np.clip(lam, 0.0, None))
        return np.asarray(rng.standard_normal((int(n_draws), V.shape[0])) @ L.T)
    return np.asarray(block_sums(P, np.array([0, n]), n_draws, kind, rng, progress=progress)[:, 0, :] / n)
