"""Sun-Abraham results: the event study, its aggregations and the raw cohort x relative-period coefficients.

Every number of a :class:`SunAbrahamResult` is a linear map ``A b`` of the saturated regression's coefficients
``b``; its covariance source is that regression's, and each map (the event-study terms, ``aggregate(kind)``) has
covariance ``A V A'`` from the current ``V`` (``with_vcov`` recomputes ``V`` once, every map follows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from didx._errors import InvalidOptionError
from didx.estimators.regression.common import RegressionResult, wild_bootstrap_mapped
from didx.estimators.sun_abraham.design import Aggregation
from didx.inference.contract import CovarianceSource, LinearMapSource
from didx.results.base import Inference, Result
from didx.results.event import EventStudyResult

if TYPE_CHECKING:
    from didx.inference.wild import WildBootstrapResult

OWN_KINDS = ("att", "cohort", "period")
"""Sun-Abraham's own aggregations (fixest ``aggregate.fixest``), besides the event-study kinds."""


@dataclass(frozen=True, eq=False)
class SunAbrahamCoefficients(RegressionResult):
    """The raw cohort x relative-period coefficients (``tidy()`` has ``group`` and ``event_time`` columns)."""


@dataclass(frozen=True, eq=False)
class SunAbrahamAggregate(Result):
    """An aggregation of the Sun-Abraham cell coefficients (overall ATT, by cohort, by period, or weights)."""


@dataclass(frozen=True, eq=False)
class SunAbrahamResult(EventStudyResult):
    """Sun-Abraham event study: one coefficient per relative period, the overall ``ATT`` (the headline) and
    the covariates, all linear in the regression's coefficients.

    ``aggregate(kind)`` gives ``"att"`` (every post cell weighted by its size), ``"cohort"`` (post cells by cohort),
    ``"period"`` (the event-time terms), and the event-study kinds (``"post"``, ``"pre"``, a mapping
    ``{event_time: weight}``, a weight vector over the post terms); ``.att`` and ``.cohort`` are shortcuts and
    ``.coefficients`` the raw cohort x relative-period coefficients. All use this result's covariance
    (``with_vcov`` updates them too) and keep ``with_vcov`` of their own.
    """

    # ---- the maps
    def _main(self) -> np.ndarray:
        """``A`` of the terms: rows over the regression's coefficients."""
        agg: Aggregation = self.extras["aggregations"]["main"]
        return agg.matrix

    def _raw_source(self) -> CovarianceSource:
        return cast(CovarianceSource, self._source)  # the regression's: _with_covariance maps it to the terms

    def _maps_source(self) -> bool:
        return True

    def _mapped(self, A: np.ndarray, names: tuple[str, ...], label: str,
                term_info: Mapping[str, np.ndarray]) -> SunAbrahamAggregate:
        raw_coef = np.asarray(self.extras["raw_coef"])
        raw_V = np.asarray(self.extras["raw_vcov"])
        return SunAbrahamAggregate(
            estimator=f"{self.estimator} — {label}", terms=names, coef=A @ raw_coef, vcov_matrix=A @ raw_V @ A.T,
            headline=names[0], inference=self.inference, sample=self.sample, design=self.design,
            term_info=term_info, notes=self.notes, _source=LinearMapSource(self._raw_source(), A),
        )

    def aggregate(self, kind: str | Mapping[float, float] | Sequence[float] | np.ndarray = "post"
                  ) -> SunAbrahamAggregate:
        """A linear map of the cell coefficients with its covariance ``A V A'`` (shares held fixed, as fixest).

        ``"att"``: every post cell (e >= 0) weighted by its size (fixest ``agg = "ATT"``, the headline);
        ``"cohort"``: the post cells of each cohort (fixest ``agg = "cohort"``); ``"period"``: one term per relative
        period (the event-study terms); ``"post"`` / ``"pre"``: the equally weighted average of the post-period /
        lead terms; a mapping ``{event_time: weight}`` or a weight vector over the post-period terms.
        ``with_vcov`` on the aggregate recomputes it from the regression (no refit).
        """
        if isinstance(kind, str) and kind in OWN_KINDS:
            agg: Aggregation = self.extras["aggregations"][kind]
            info = {"group": agg.group, "n_cells": agg.n_cells}
            if kind == "period":
                info = {"event_time": agg.event_time, "n_cells": agg.n_cells}
            label = {"att": "overall ATT", "cohort": "by cohort", "period": "by relative period"}[kind]
            return self._mapped(agg.matrix, agg.names, label, info)
        if isinstance(kind, str) and kind not in ("post", "pre"):
            raise InvalidOptionError(
                f"aggregate(): kind={kind!r} is not available for {self.estimator}. Choose 'att' (post cells "
                f"weighted by size), 'cohort', 'period', 'post' (average of the e >= 0 terms), 'pre' (average of "
                f"the leads), a mapping {{event_time: weight}} or a weight vector over the post-period terms."
            )
        a, label = self._weights(kind)
        return self._mapped(a[None, :] @ self._main(), (label,), label, {})

    @property
    def att(self) -> SunAbrahamAggregate:
        """The overall ATT: every post cell (e >= 0) weighted by its size (``aggregate("att")``)."""
        return self.aggregate("att")

    @property
    def cohort(self) -> SunAbrahamAggregate:
        """The average post-treatment effect of each cohort (``aggregate("cohort")``)."""
        return self.aggregate("cohort")

    @property
    def coefficients(self) -> SunAbrahamCoefficients:
        """The cohort x relative-period coefficients (and covariates) of the saturated regression."""
        raw = self.extras["raw_result"]
        assert isinstance(raw, SunAbrahamCoefficients)
        V = np.asarray(self.extras["raw_vcov"])
        return dataclasses.replace(raw, vcov_matrix=V, inference=self.inference)

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> SunAbrahamResult:
        # the source is the cohort x relative-period regression's: V is the covariance of the raw coefficients
        A = self._main()
        extras = {**self.extras, "raw_vcov": readonly(V)}
        return dataclasses.replace(self, vcov_matrix=A @ V @ A.T, inference=inference, extras=extras)

    def wild_bootstrap(
        self,
        term: str | Sequence[str] | np.ndarray,
        *,
        n_bootstrap: int = 9999,
        weights: str = "rademacher",
        impose_null: bool = True,
        seed: int | None = None,
        conf_level: float = 0.95,
        r: float | Sequence[float] | np.ndarray = 0.0,
        cluster: str | None = None,
        data: Any = None,
        progress: bool = True,
    ) -> WildBootstrapResult:
        """Wild cluster bootstrap test of ``term = r`` (or ``R theta = r`` for a list of terms or a matrix over
        this result's terms), bootstrapping the saturated regression.

        A term is a linear combination ``a' b`` of the cell coefficients (e.g. ``"ATT"`` or ``"year::2"``), so the
        hypothesis is the restriction ``(R A) b = r`` on the regression's coefficients; the options are those of
        :meth:`didx.estimators.regression.common.RegressionResult.wild_bootstrap`. For one cell coefficient use
        ``.coefficients.wild_bootstrap(...)``.
        """
        return wild_bootstrap_mapped(self, self._raw_source(), self._main(), term, r=r, n_bootstrap=n_bootstrap,
                                     weights=weights, impose_null=impose_null, seed=seed, conf_level=conf_level,
                                     cluster=cluster, data=data, progress=progress)


def readonly(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out
