"""Event-study results of the imputation family (BJS and did2s): the shared aggregations.

Both estimators' effects at event times ``e >= 0`` are averages of ``Y - Yhat(0)`` over the treated observations
at that event time, so weighting them by their (estimation-weighted) number of treated observations gives the ATT
over those observations: ``aggregate("average")``. With every post-treatment event time estimated this is the
static estimate (exactly for BJS, estimate and standard error alike; for did2s the point estimate, while its
standard error is the event-study second stage's, whose residuals are centred by event time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from didx._errors import InvalidOptionError
from didx.results.event import EventStudyResult

AVERAGE_LABEL = "ATT (average over the treated observations)"


@dataclass(frozen=True, eq=False)
class FirstStageEventResult(EventStudyResult):
    """An event study of the imputation family. Adds ``aggregate("average")``: the event-time effects weighted
    by their treated observations' weights (``term_info["treated_weight"]``, a ``tidy()`` column), i.e. the ATT
    over the treated observations of the estimated event times. Where the leads' covariance with the effects is
    not estimated (``cross_covariance=False``), a combination of leads and effects is refused."""

    def _weights(self, kind: str | Mapping[float, float] | Sequence[float] | np.ndarray) -> tuple[np.ndarray, str]:
        if isinstance(kind, str) and kind not in ("post", "pre", "average"):
            raise InvalidOptionError(
                f"aggregate(): kind={kind!r} is not available for {self.estimator}. Choose 'average' (the ATT over "
                f"the treated observations of the estimated event times), 'post' (equally weighted average of the "
                f"e >= 0 coefficients), 'pre' (average of the leads), a mapping {{event_time: weight}} or a weight "
                f"vector over the post-period terms."
            )
        if isinstance(kind, str) and kind == "average":
            a, label = self._average(), AVERAGE_LABEL
        else:
            a, label = super()._weights(kind)
        if not self.cross_covariance:
            pre = np.isin(np.asarray(self.terms), self.pre_terms)
            if np.any(a[pre] != 0) and np.any(a[~pre] != 0):
                raise InvalidOptionError(
                    f"aggregate(): {self.estimator} estimates its leads in a separate regression, so their "
                    f"covariance with the effects is not estimated; a combination of both would get a wrong "
                    f"standard error. Fix: aggregate the leads ('pre') and the effects separately."
                )
        return a, label

    def _average(self) -> np.ndarray:
        tw = np.asarray(self.term_info.get("treated_weight", np.full(len(self.terms), np.nan)), dtype=float)
        ok = np.isfinite(tw) & (tw > 0)
        if not ok.any():
            raise InvalidOptionError(
                f"aggregate('average'): {self.estimator} has no effect with a known share of treated observations "
                f"(custom treatment weights overlap). Fix: use a mapping {{event_time: weight}} or a weight vector."
            )
        return np.where(ok, tw, 0.0) / float(tw[ok].sum())

    def _summary_extra(self) -> list[str]:
        out = super()._summary_extra()
        if not self.cross_covariance and self.pre_terms:
            out.append("The leads come from a separate regression: their covariance with the effects is not "
                       "estimated (zero in vcov), so no test or aggregate may combine leads and effects.")
        return out
