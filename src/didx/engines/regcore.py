"""The pieces shared by the engine regressions (:mod:`didx.engines.regression`, :mod:`didx.engines.regression_cov`):
the fit's record, the within-unit demeaned rows of cohort x period regressors, and the CR1 inference text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx.engines.stats import Moments
from didx.estimators.regression.common import FEW_CLUSTERS
from didx.inference.vcov import SSC, k_for_ssc
from didx.results.base import Inference


@dataclass(frozen=True)
class CellFit:
    """A regression on cohort x period regressors: kept columns, coefficients, CR1 covariance, inference."""

    kept: np.ndarray
    coef: np.ndarray
    V: np.ndarray
    inference: Inference


def within_rows(Xg: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """The within-unit demeaned rows of (time dummies but the first, ``Xg``) of groups observed in ``obs`` (J, T);
    ``Xg`` (J, T, K) holds each group's cohort x period regressors. Unobserved periods are 0."""
    J, T = obs.shape
    Z = np.concatenate([np.broadcast_to(np.eye(T)[None, :, 1:], (J, T, T - 1)), Xg], axis=2) * obs[:, :, None]
    Tj = obs.sum(axis=1).astype(np.float64)
    return (Z - Z.sum(axis=1, keepdims=True) / Tj[:, None, None]) * obs[:, :, None]


def _components(m: Moments) -> tuple[np.ndarray, np.ndarray, int]:
    """The periods observed by some unit, each period's connected component of the unit-period graph (periods
    joined by a group's units) and the number of components."""
    from scipy.sparse.csgraph import connected_components

    obs = (m.obs() & (m.n > 0)[:, None]).astype(np.int64)
    seen = np.asarray(obs.any(axis=0), dtype=bool)
    n_comp, label = connected_components(obs.T @ obs > 0, directed=False)
    return seen, np.asarray(label), int(np.unique(label[seen]).shape[0]) if seen.any() else int(n_comp)


def time_dummies(m: Moments) -> np.ndarray:
    """The columns of :func:`within_rows`' time dummies (period ``p`` is column ``p - 1``) that are identified:
    all but the first period of each connected component of the unit-period graph and the periods no unit
    observes. Units seen in disjoint sets of periods (several components) leave one period effect per component
    to the unit effects; dropping those dummies changes no fitted value, slope or score (the in-memory solvers
    absorb the same redundancy)."""
    seen, label, _ = _components(m)
    keep = seen.copy()
    for c in np.unique(label[seen]):
        keep[np.flatnonzero(seen & (label == c))[0]] = False
    return np.flatnonzero(keep[1:])


def ssc_k(m: Moments, n_coef: int, ssc: SSC) -> int:
    """fixest's K of a unit + period regression clustered by the unit or a coarser column (unit effects nested):
    ``n_coef`` slopes and the identified effects as :meth:`didx.linalg.absorb.FixedEffects.n_params` counts them,
    units plus periods observed less one per connected component of the unit-period graph (``ssc.fixef_exact``;
    otherwise less one). Units observed in disjoint sets of periods make several components."""
    seen, _, n_comp = _components(m)
    N, T = int(m.n.sum()), int(seen.sum())
    return k_for_ssc(n_coef, N + T - (n_comp if ssc.fixef_exact else 1), [N, T], [True, False], ssc, True)


def _cr1_inference(label: str, n_cl: int, treated_cl: int, k_ssc: int, ssc: SSC, has_fe: bool) -> Inference:
    """The inference text of a CR1 fit, as :func:`didx.estimators.regression.common.inference_info` writes it."""
    details = [f"Treated clusters: {treated_cl} of {n_cl}"]
    if n_cl < FEW_CLUSTERS or treated_cl < 10:
        details.append(
            f"Few clusters ({n_cl}, {treated_cl} treated): cluster-robust SEs can over-reject. Remedies: "
            f"result.wild_bootstrap(term) (wild cluster bootstrap) or collapse='group_period' (group x period means)."
        )
    details.append(f"Coefficients counted for the small-sample factor K: {k_ssc}")
    return Inference(vcov_type=f"CR1, clustered by {label}", df=float(n_cl - 1), n_clusters=(n_cl,),
                     cluster_names=(label,), small_sample=ssc.describe(has_fe), details=tuple(details))
