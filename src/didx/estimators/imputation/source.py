"""The covariance source shared by :func:`~didx.imputation` (BJS) and :func:`~didx.did2s` (Gardner) results.

Both keep the same pieces (the solved first-stage projection, the treated weights and residuals, the cluster codes
captured at fit time) and differ only in how the treated residuals are centred and scaled; the arithmetic is in
:mod:`didx.inference.imputation`. The fit's covariance is computed by this source too, so ``with_vcov`` and the
fit are one path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest, cluster_count_check
from didx.inference.imputation import (
    LeadRegression,
    TreatedScores,
    UntreatedProjection,
    dense_codes,
    first_stage_covariance,
    lead_covariance,
)
from didx.results.base import Inference

VARIANCES = {
    "bjs": ("BJS conservative", "none (BJS)"),
    "two_stage": ("two-stage GMM (Butts & Gardner)", "none (as R did2s)"),
}


@dataclass(frozen=True, eq=False)
class FirstStageSource:
    """The covariance source of :func:`~didx.imputation` and :func:`~didx.did2s` results.

    Stored at fit time: the solved first-stage projection and residuals (:class:`UntreatedProjection`), the
    treated weights and residuals (:class:`TreatedScores`), BJS's lead regression if any, and the cluster codes
    (the unit, the fit's cluster column and the extra first-stage fixed effects) -- never the data frame. Only the
    clustering can change (one column); every call recomputes only the cluster sums (and the leads' CR1).
    """

    untreated: UntreatedProjection
    treated: TreatedScores
    clusters: ClusterCodes
    default_cluster: str
    imputed: np.ndarray  # mask of the treated rows that enter the estimates (counted as treated clusters)
    variance: str  # "bjs" or "two_stage"
    leads: LeadRegression | None = None

    @property
    def capabilities(self) -> Capabilities:
        what = ("BJS's conservative cluster sums" if self.variance == "bjs"
                else "the two-stage GMM cluster sums of R did2s")
        leads = "; the pre-trend leads' CR1 is recomputed with it" if self.leads is not None else ""
        return Capabilities(
            vcov=(), max_clusters=1, new_clusters=True, ssc=False,
            default=f"{what}, clustered by {self.default_cluster!r}; only the clustering can change{leads}",
        )

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        name = request.clusters[0] if request.clusters else self.default_cluster
        raw = codes[name] if name in codes else self.clusters.stored[name]
        cl, G = dense_codes(raw)
        cluster_count_check(func, name, G)
        V, n_fallback = first_stage_covariance(self.untreated, self.treated, cl, G)
        if self.leads is not None:
            VL, _ = lead_covariance(self.leads, self.untreated.codes, cl[self.untreated.fit_rows])
            P = self.leads.n_leads
            full = np.zeros((P + V.shape[0],) * 2)
            full[:P, :P] = VL
            full[P:, P:] = V
            V = full
        n_treated = int(np.count_nonzero(np.bincount(cl[self.imputed], minlength=G)))
        return V, self._inference(name, G, n_treated, n_fallback)

    def _inference(self, name: str, G: int, n_treated: int, n_fallback: int) -> Inference:
        return first_stage_inference(self.variance, name, G, n_treated, n_fallback, leave_out=self.treated.leave_out,
                                     leads=self.leads is not None)


def first_stage_inference(variance: str, name: str, G: int, n_treated: int, n_fallback: int, *, leave_out: bool,
                          leads: bool) -> Inference:
    """The inference text of a BJS (``variance="bjs"``) or two-stage fit clustered by ``name`` (``G`` clusters,
    ``n_treated`` of them with an imputed treated observation); shared with the engines' fit."""
    label, ssc = VARIANCES[variance]
    details = [f"Treated clusters: {n_treated} of {G}"]
    if variance == "bjs":
        details.append("tau averaged within cohort x event time for the residuals"
                       + (" (leaving out the own cluster)" if leave_out else ""))
        if n_fallback:
            details.append(f"leave_out: {n_fallback} treated observations are the only cluster in their cohort "
                           f"x horizon cell; their residual is centred on the full-cell average")
    else:
        details.append("First-stage estimation error propagated into the second-stage covariance")
    if leads:
        details.append(f"Pre-trend coefficients: CR1 clustered by {name} (fixest conventions)")
    return Inference(vcov_type=f"{label}, clustered by {name}", df=None, n_clusters=(G,), cluster_names=(name,),
                     small_sample=ssc, details=tuple(details))
