"""Static TWFE on a balanced panel (treatment from the cohort) from the engine's unit moments.

On a balanced panel the two-way demeaned treatment depends only on (cohort g, period t):
``D~_gt = D_gt - Dbar_g. - Dbar_.t + Dbar``, so ``beta = sum_g n_g D~_g' mu_g / sum_g n_g |D~_g|^2`` (``mu_g`` the
cohort's period means) and a unit's cluster score ``sum_t D~_gt e_it = D~_g' y'_i + c_g`` is affine in its centred
outcomes ``y'_i`` with ``c_g = D~_g' (mu_g - ybar_.t) - beta |D~_g|^2`` (``shared/design/SCALE.md``). The
cluster-robust meat is ``sum_g [n_g c_g^2 + 2 c_g D~_g' S_g + D~_g' P_g D~_g]`` by unit, or from the cluster x
cohort sums for a coarser cluster; the small-sample factor is fixest's (:func:`didx.inference.vcov.k_for_ssc`).
Numerically the in-memory ``twfe`` (fixest's ``feols(y ~ d | unit + time)``). Unbalanced panels, ``treat=``,
covariates, extra fixed effects, weights and other covariance types need the rows: an error names the in-memory
alternative.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import InvalidOptionError
from didx.engines.cs import ROWS_FIX
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, unit_moments
from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest
from didx.inference.vcov import SSC, k_for_ssc
from didx.linalg.absorb import EXACT_MAX_LEVELS
from didx.results.base import Inference

FEW_CLUSTERS = 42


@dataclass(frozen=True, eq=False)
class FixedSource:
    """The covariance source of an engine regression: the fit-time covariance only (the rows are not kept)."""

    V: np.ndarray
    inference: Inference
    names: tuple[str, ...]
    n_input_rows: int

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vcov=("CR1",), max_clusters=1, new_clusters=False, ssc=False, bootstrap=(),
                            default="the fit-time CR1 covariance (the engine kept no rows)")

    @property
    def clusters(self) -> ClusterCodes:
        return ClusterCodes({n: np.empty(0, dtype=np.int64) for n in self.names}, None, self.n_input_rows, None)

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        if request.clusters and tuple(request.clusters) != self.names[-1:]:
            raise InvalidOptionError(f"{func}: the engine fit kept the sums for clustering by {self.names[-1]} only. "
                                     f"Fix: refit with cluster= that column, or {ROWS_FIX}.")
        return self.V, self.inference


def twfe_moments(src: EngineInput, result_cls: type, design: Callable[..., tuple[list[tuple[str, str]], list[str]]],
                 *, y: str, unit: str, time: str, treat: str | None, cohort: str | None,
                 covariates: Any, fe: Any, vcov: str | None, cluster: str | Sequence[str] | None, weights: str | None,
                 ssc: SSC | None, drop_singletons: bool, collapse: str | None) -> Any:
    """:func:`didx.twfe` through an engine (see the module docstring); ``result_cls`` and ``design`` are the
    in-memory estimator's result type and design text (passed in, so this module does not import it)."""
    func = "twfe"
    what = None
    if treat is not None or cohort is None:
        what = "treat= (a 0/1 column; the engines take the treatment from cohort=)"
    elif covariates:
        what = "covariates"
    elif fe:
        what = "extra fixed effects (fe=)"
    elif weights is not None:
        what = "weights"
    elif collapse is not None:
        what = "collapse="
    elif vcov not in (None, "CR1"):
        what = f"vcov={vcov!r} (the engines give the default CR1)"
    clusters = [cluster] if isinstance(cluster, str) else list(cluster or [])
    if len(clusters) > 1:
        what = "two-way clustering"
    if what is not None:
        raise InvalidOptionError(f"{func}: {what} not available through the engines yet. Fix: {ROWS_FIX}.")
    assert cohort is not None
    cl_name = clusters[0] if clusters and clusters[0] != unit else None
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="untreated_obs"))
    if not m.report.balanced:
        raise InvalidOptionError(
            f"{func}: the engines run TWFE on balanced panels ({m.report.n_units_with_gaps or 'some'} units here miss "
            f"periods; the unbalanced case needs sums by observation pattern, not done yet). Fix: {ROWS_FIX}."
        )
    ssc = ssc if ssc is not None else SSC()
    coef, V, inf, timing = _fit(m, unit, cl_name, ssc)
    fe_names = [unit, time]
    method = "exact (concentrated solve)" if min(m.n_units, m.n_periods) <= EXACT_MAX_LEVELS else \
        "alternating projections"
    des, notes = design(timing, y=y, treat=None, cohort=cohort, time=time, fe=fe_names, method=method,
                        covariates=(), weights=None, n_singletons=0, drop_singletons=drop_singletons)
    des.append(("Engine", src.describe))
    names = (unit,) if cl_name is None else (unit, cl_name)
    return result_cls(estimator="Two-way fixed effects", terms=("treated",), coef=np.array([coef]), vcov_matrix=V,
                      headline="treated", inference=inf, sample=m.report, design=tuple(des), notes=tuple(notes),
                      _source=FixedSource(V=V, inference=inf, names=names, n_input_rows=m.report.n_input_rows))


def _fit(m: Moments, unit: str, cl_name: str | None,
         ssc: SSC) -> tuple[float, np.ndarray, Inference, tuple[int, int, int]]:
    """beta, its CR1 covariance, the inference text and the treatment timing from the moments."""
    G = m.cohort_values.shape[0]
    T = m.n_periods
    ng = np.bincount(m.gc, weights=m.n, minlength=G)
    N = float(ng.sum())
    D = (m.periods[None, :] >= m.cohort_values[:, None]).astype(np.float64)  # (G, T); never treated: inf
    Dg = D.mean(axis=1)
    Dt = ng @ D / N
    Dtil = D - Dg[:, None] - Dt[None, :] + float(ng @ Dg) / N
    mu = m.cell_means()
    XX = float(ng @ (Dtil**2).sum(axis=1))
    beta = float(np.sum(ng[:, None] * Dtil * mu)) / XX
    ybar_t = ng @ mu / N
    c = (Dtil * (mu - ybar_t)).sum(axis=1) - beta * (Dtil**2).sum(axis=1)  # per cohort
    S, P = m.centred(mu)
    dk = Dtil[m.gc]  # (K, T)
    n = m.n.astype(np.float64)
    ck = c[m.gc]
    lin = np.einsum("kt,kt->k", dk, S)
    if cl_name is None:
        meat = float(np.sum(n * ck**2 + 2 * ck * lin + np.einsum("kt,kts,ks->k", dk, P, dk)))
        n_cl = int(N)
        treated_cl = int(ng[(D > 0).any(axis=1)].sum())
    else:
        assert m.cl is not None
        score = np.bincount(m.cl, weights=n * ck + lin, minlength=m.n_clusters)
        meat = float(score @ score)
        n_cl = m.n_clusters
        treated_cl = int(np.unique(m.cl[(D[m.gc] > 0).any(axis=1)]).shape[0])
    n_obs = int(N) * T
    K = k_for_ssc(1, int(N) + T - 1, [int(N), T], [True, False], ssc, True)
    adj = (n_obs - 1) / (n_obs - K) if ssc.adj else 1.0
    factor = adj * (n_cl / (n_cl - 1) if ssc.cluster_adj else 1.0)
    V = np.array([[factor * meat / XX**2]])
    label = cl_name or unit
    details = [f"Treated clusters: {treated_cl} of {n_cl}"]
    if n_cl < FEW_CLUSTERS or treated_cl < 10:
        details.append(
            f"Few clusters ({n_cl}, {treated_cl} treated): cluster-robust SEs can over-reject. Remedies: "
            f"result.wild_bootstrap(term) (wild cluster bootstrap) or collapse='group_period' (group x period means)."
        )
    details.append(f"Coefficients counted for the small-sample factor K: {K}")
    inf = Inference(vcov_type=f"CR1, clustered by {label}", df=float(n_cl - 1), n_clusters=(n_cl,),
                    cluster_names=(label,), small_sample=ssc.describe(True), details=tuple(details))
    always = m.cohort_values <= m.periods[0]
    adopt = np.isfinite(m.cohort_values) & ~always & (ng > 0)
    timing = (int(adopt.sum()), int(ng[always].sum()), 0)
    return beta, V, inf, timing
