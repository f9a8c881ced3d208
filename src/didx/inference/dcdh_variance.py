"""The de Chaisemartin-D'Haultfoeuille variance: influence variables summed within clusters, recomputed for any
clustering from what the estimation stored (never the data).

DIDmultiplegtDYN's variance of an estimate is ``sum_c (sum_{g in c} U^var_g)^2 / G^2``, with group-level variance
influence variables

``U^var_g = sum_t w_gt a_gt (diff_gt - e_gt)``

where ``w_gt`` is the cell's coefficient in the estimate (``(G / N_l) (S_gt - N^1_gt / N^c_gt C_gt) N_gt`` on the
cells that enter), ``diff_gt`` its long difference, and ``e_gt`` / ``a_gt`` a demeaning and a small-sample factor
chosen from the *number of clusters* (groups when not clustering) in the cell's demeaning set: the switchers'
cohort, or the not-yet-switched controls of (baseline, period):

* ``n >= 2`` clusters in the cell's own set: ``e`` = the set's weighted mean of ``diff``, ``a = sqrt(n / (n - 1))``;
* exactly one, and ``m >= 2`` in the union of the switchers and controls of (baseline, period) (its *pool*):
  the pool's mean, ``a = sqrt(m / (m - 1))``;
* otherwise ``e = 0``, ``a = 1`` (also for cells outside any set).

Only those counts depend on the clustering, so a :class:`VarPiece` keeps, per DID_l (or placebo) and direction,
the cells' ``w``, ``diff``, group and set, the sets' means and the members counted in each set; a term's
variance influence variable is a fixed linear combination of pieces (switchers in and out, normalisation, the
average total effect, sums for ``trends_lin``) plus a part that does not depend on the clustering (the controls'
correction). :class:`DcdhSource` recomputes ``U^var`` for the requested clusters and sums it within them;
``dcdh()`` computes its own covariance through the same source, so ``with_vcov(cluster=c)`` and a fit with
``cluster=c`` run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DataError
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest, cluster_count_check
from didx.results.base import Inference

DCDH_CAPABILITIES = Capabilities(
    vcov=(), max_clusters=1, new_clusters=True, ssc=False,
    default="the package's analytic SEs (influence variables summed within clusters); only the clustering "
            "can change, to one column coarser than the groups",
)


@dataclass(frozen=True, eq=False)
class VarPiece:
    """One DID_l (or placebo) of one direction of switch, before the clustering-dependent factors.

    cells: ``group`` (kept group), ``own`` (demeaning set, -1: none), ``weight`` (the cell's ``w``), ``diff``, and
    ``member`` (the cell counts in the size of its set and of its set's pool). Sets: ``own_mean``, ``pool`` (the
    pool of each set) and ``pool_mean``.
    """

    group: np.ndarray  # (n,) int
    own: np.ndarray  # (n,) int
    weight: np.ndarray  # (n,) float64
    diff: np.ndarray  # (n,) float64
    member: np.ndarray  # (n,) bool
    own_mean: np.ndarray  # (n_sets,)
    pool: np.ndarray  # (n_sets,) int
    pool_mean: np.ndarray  # (n_pools,)


def _distinct(sets: np.ndarray, clusters: np.ndarray, n_cl: int, n_sets: int, one_per_group: bool) -> np.ndarray:
    """Number of distinct clusters among the members of each set (a group is at most once in a set, so with one
    cluster per group it is the number of members)."""
    if sets.size == 0:
        return np.zeros(n_sets)
    if one_per_group:
        return np.bincount(sets, minlength=n_sets).astype(np.float64)
    key = sets.astype(np.int64) * n_cl + clusters
    if n_sets * n_cl <= 4 * key.size + 1_000_000:  # a presence table is cheaper than sorting
        seen = np.zeros(n_sets * n_cl, dtype=bool)
        seen[key] = True
        return seen.reshape(n_sets, n_cl).sum(axis=1).astype(np.float64)
    key = np.sort(key)
    first = np.ones(key.shape[0], dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return np.bincount(key[first] // n_cl, minlength=n_sets).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Influence:
    """A variance influence variable as ``sum_i c_i piece_i + fixed``: linear in the pieces, so the estimators'
    combinations (directions, normalisation, average total effect) carry over to any clustering."""

    parts: tuple[tuple[VarPiece, float], ...] = ()
    fixed: np.ndarray | None = None  # (G,) part that does not depend on the clustering

    @staticmethod
    def of(piece: VarPiece) -> Influence:
        return Influence(((piece, 1.0),))

    def __add__(self, other: Influence) -> Influence:
        fixed = self.fixed if other.fixed is None else (other.fixed if self.fixed is None
                                                        else self.fixed + other.fixed)
        return Influence(self.parts + other.parts, fixed)

    def __sub__(self, other: Influence) -> Influence:
        return self + other * -1.0

    def __mul__(self, k: float) -> Influence:
        return Influence(tuple((p, c * k) for p, c in self.parts), None if self.fixed is None else self.fixed * k)

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Influence:
        return Influence(tuple((p, c / k) for p, c in self.parts), None if self.fixed is None else self.fixed / k)

    def minus_fixed(self, v: np.ndarray) -> Influence:
        return Influence(self.parts, -v if self.fixed is None else self.fixed - v)


ZERO = Influence()


@dataclass(frozen=True, eq=False)
class DcdhScores:
    """Everything the variance needs, in flat arrays: the cells of every piece, piece after piece (``start``:
    where each piece's cells begin; ``own``: each cell's set numbered across pieces, -1 for none), the sets'
    means and pools, the (pieces x terms) coefficients, the fixed parts, the number of kept groups and the
    denominator ``G`` (every group of the data, as the package's ``G_XX``)."""

    start: np.ndarray  # (n_pieces + 1,) offsets of the pieces' cells
    group: np.ndarray  # (n,)
    own: np.ndarray  # (n,)
    weight: np.ndarray  # (n,)
    diff: np.ndarray  # (n,)
    member: np.ndarray  # (n,) bool
    own_mean: np.ndarray  # (n_sets,)
    pool: np.ndarray  # (n_sets,) pool of each set, numbered across pieces
    pool_mean: np.ndarray  # (n_pools,)
    coef: np.ndarray  # (n_pieces, K)
    fixed: np.ndarray | None  # (n_groups, K) or None
    n_groups: int
    scale: float

    @staticmethod
    def build(terms: Sequence[Influence], n_groups: int, scale: float) -> DcdhScores:
        index: dict[int, int] = {}
        pieces: list[VarPiece] = []
        for t in terms:
            for p, _ in t.parts:
                if id(p) not in index:
                    index[id(p)] = len(pieces)
                    pieces.append(p)
        A = np.zeros((len(pieces), len(terms)))
        for k, t in enumerate(terms):
            for p, c in t.parts:
                A[index[id(p)], k] += c
        fixed = None
        if any(t.fixed is not None for t in terms):
            fixed = np.column_stack([np.zeros(n_groups) if t.fixed is None else t.fixed for t in terms])
        set_off = np.cumsum([0] + [p.own_mean.shape[0] for p in pieces])
        pool_off = np.cumsum([0] + [p.pool_mean.shape[0] for p in pieces])

        def cat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

        ids = np.min_scalar_type(-max(int(set_off[-1]), n_groups, len(pieces), 1))  # smallest signed int type
        return DcdhScores(
            start=np.cumsum([0] + [p.group.shape[0] for p in pieces]).astype(np.int64),
            group=cat([p.group for p in pieces], ids),
            own=cat([np.where(p.own >= 0, p.own + set_off[i], -1) for i, p in enumerate(pieces)], ids),
            weight=cat([p.weight for p in pieces], np.float64), diff=cat([p.diff for p in pieces], np.float64),
            member=cat([p.member for p in pieces], bool),
            own_mean=cat([p.own_mean for p in pieces], np.float64),
            pool=cat([p.pool + pool_off[i] for i, p in enumerate(pieces)], ids),
            pool_mean=cat([p.pool_mean for p in pieces], np.float64),
            coef=A, fixed=fixed, n_groups=int(n_groups), scale=float(scale),
        )

    def pieces_values(self, cluster_of_group: np.ndarray) -> np.ndarray:
        """(groups x pieces) ``U^var`` of every piece, with set sizes counted in distinct clusters."""
        n_pieces = self.coef.shape[0]
        group = self.group.astype(np.int64)
        own = self.own.astype(np.int64)
        cl = cluster_of_group[group]
        n_cl = int(cluster_of_group.max()) + 1 if cluster_of_group.size else 1
        m = self.member
        one = n_cl == self.n_groups  # clusters nested in groups: one cluster per group
        own_n = _distinct(own[m], cl[m], n_cl, self.own_mean.shape[0], one)
        pool = self.pool.astype(np.int64)
        pool_n = _distinct(pool[own[m]], cl[m], n_cl, self.pool_mean.shape[0], one)
        has = own >= 0
        s = np.maximum(own, 0)
        if self.own_mean.size == 0:  # no cell in a demeaning set: e = 0, a = 1
            n_own = n_pool = np.zeros(own.shape[0])
            e_own = e_pool = np.zeros(own.shape[0])
        else:
            n_own = np.where(has, own_n[s], 0.0)
            n_pool = np.where(has, pool_n[pool[s]], 0.0)
            e_own, e_pool = self.own_mean[s], self.pool_mean[pool[s]]
        use_own = n_own >= 2
        use_pool = (n_own == 1) & (n_pool >= 2)
        e = np.where(use_own, e_own, np.where(use_pool, e_pool, 0.0))
        n = np.where(use_own, n_own, np.where(use_pool, n_pool, 2.0))
        adj = np.where(use_own | use_pool, np.sqrt(n / (n - 1)), 1.0)
        u = self.weight * adj * (self.diff - e)
        piece = np.repeat(np.arange(n_pieces), np.diff(self.start))
        key = group * n_pieces + piece
        return np.bincount(key, weights=u, minlength=self.n_groups * n_pieces).reshape(self.n_groups, n_pieces)

    def influence(self, cluster_of_group: np.ndarray) -> np.ndarray:
        """(groups x terms) variance influence variables for this clustering."""
        out = self.pieces_values(cluster_of_group) @ self.coef
        return out if self.fixed is None else out + self.fixed

    def vcov(self, cluster_of_group: np.ndarray) -> np.ndarray:
        """``V = S'S / G^2`` with ``S`` the cluster sums of the variance influence variables."""
        infl = self.influence(cluster_of_group)
        n_c = int(cluster_of_group.max()) + 1 if cluster_of_group.size else 0
        S = np.zeros((n_c, infl.shape[1]))
        np.add.at(S, cluster_of_group, infl)
        return np.asarray(S.T @ S / self.scale**2)


def group_clusters(func: str, name: str, row_codes: np.ndarray, row_group: np.ndarray, n_groups: int
                   ) -> np.ndarray:
    """Cluster code (0..C-1) of each kept group from codes on the estimation rows; an error if a cluster
    column varies within a group."""
    cg = np.full(n_groups, -1, dtype=np.int64)
    cg[row_group] = row_codes
    if np.any(cg[row_group] != row_codes):
        raise DataError(
            f"{func}: the cluster column {name!r} varies within a group. Groups must be nested within clusters. "
            f"Fix: pass a coarser cluster= (e.g. the state of a county), or none."
        )
    codes, _ = pd.factorize(cg, sort=True)
    return np.asarray(codes, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class DcdhSource:
    """The covariance source of a dCDH result (see the module docstring).

    clusters.stored holds the kept group of every estimation row under the unit column's name (and the fit's
    ``cluster=`` codes, if any); ``default`` names the clustering of the fit.
    """

    scores: DcdhScores
    clusters: ClusterCodes
    unit: str
    default: str
    label: str
    details: tuple[str, ...] = ()

    @property
    def capabilities(self) -> Capabilities:
        return DCDH_CAPABILITIES

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        name = request.clusters[0] if request.clusters else self.default
        row_codes = codes[name] if name in codes else self.clusters.stored[name]
        cl = group_clusters(func, name, np.asarray(row_codes), self.clusters.stored[self.unit],
                            self.scores.n_groups)
        n_cl = int(cl.max()) + 1 if cl.size else 0
        cluster_count_check(func, name, n_cl)
        V = self.scores.vcov(cl)
        inf = Inference(vcov_type=f"{self.label}, clustered by {name}", df=None, n_clusters=(n_cl,),
                        cluster_names=(name,), details=self.details)
        return V, inf
