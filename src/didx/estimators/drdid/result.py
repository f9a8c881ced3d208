"""The result of :func:`didx.drdid` and its covariance source (the stored influence function).

The analytic standard error of every DRDID estimator is a sum of squares of its influence function ``IF`` (DRDID's
``att.inf.func``, one entry per unit for panel data, per row for repeated cross sections, per stacked row for the
TWFE panel estimator): ``V = f * sum_i (IF_i - mean IF)^2`` with ``f = 1/N^2`` (DRDID 1.2.3), or
``f = 1/(N (N - 1))`` for the TWFE estimators (R's ``sd(IF) / sqrt(N)``). Clustered, the sum runs over the clusters'
summed influence functions, ``V = f * sum_c (sum_{i in c} (IF_i - mean IF))^2``, so one observation per cluster
gives the default back. R's DRDID has no clustered SEs; this is the cluster-robust form of its SE (the analytic
counterpart of ``did``'s clustered multiplier bootstrap, Callaway & Sant'Anna 2021, Remark 10), without a
small-sample factor. ``with_vcov`` recomputes it from the stored function: by unit / observation, or clustered by a
column captured at fit time (``cluster=``, the unit) or passed later (``data=``, or the values themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from didx.inference.contract import Capabilities, ClusterCodes, VcovRequest
from didx.inference.if_store import clusters_of_units, summed_square
from didx.results.base import Inference, Result

DRDID_CAPABILITIES = Capabilities(
    vcov=("analytic",), max_clusters=1, new_clusters=True, ssc=False, bootstrap=(),
    default="influence-function SE clustered as at fit time; 'analytic' without cluster=: by unit (panel) or by "
            "observation (repeated cross sections)",
)


@dataclass(frozen=True, eq=False)
class DRDiDSource:
    """The stored influence function and the cluster codes captured at fit time (never the data frame).

    inf : DRDID's ``att.inf.func`` (read-only).
    unit_of_row : unit code (0..n_units-1) of each estimation row, or None for repeated cross sections (every row
        is an observation and an entry of ``inf``).
    stacked : TWFE panel estimator: ``inf`` has one entry per stacked row (every unit's pre row, then its post row).
    twfe : R's ``sd(IF) / sqrt(N)`` convention instead of ``sqrt(sum (IF - mean)^2) / N``.
    codes : cluster codes per estimation row (the unit, the fit's ``cluster=``), for ``with_vcov``.
    fit_cluster : the fit's ``cluster=`` (None: by unit / observation).
    unit : the unit column's name (None for repeated cross sections).
    unit_labels : label of each unit (panel), the index of :meth:`DRDiDResult.influence_functions`.
    period_labels : the two periods (for the stacked TWFE index).
    """

    inf: np.ndarray
    unit_of_row: np.ndarray | None
    stacked: bool
    twfe: bool
    codes: ClusterCodes
    fit_cluster: str | None
    unit: str | None
    unit_labels: np.ndarray | None
    period_labels: np.ndarray

    @property
    def capabilities(self) -> Capabilities:
        return DRDID_CAPABILITIES

    @property
    def clusters(self) -> ClusterCodes:
        return self.codes

    @property
    def n(self) -> int:
        return int(self.inf.shape[0])

    @property
    def factor(self) -> float:
        n = self.n
        return 1.0 / (n * (n - 1.0)) if self.twfe else 1.0 / float(n) ** 2

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        if request.clusters:
            name: str | None = request.clusters[0]
        else:
            name = self.fit_cluster if request.vcov is None else None
        if name is None:
            return self.compute(func, None, None)
        row_codes = codes[name] if name in codes else self.codes.stored[name]
        return self.compute(func, name, np.asarray(row_codes))

    def compute(self, func: str, name: str | None, row_codes: np.ndarray | None) -> tuple[np.ndarray, Inference]:
        """The 1 x 1 covariance: by observation (``name`` None) or clustered by the per-row codes of ``name``."""
        if name is None or row_codes is None:
            V = self.factor * summed_square(self.inf)
            return np.array([[V]]), self.default_inference()
        n_units = 0 if self.unit_labels is None else int(self.unit_labels.shape[0])
        per_unit, G = clusters_of_units(func, name, row_codes, self.unit_of_row, n_units)
        per_entry = np.concatenate([per_unit, per_unit]) if self.stacked else per_unit
        V = self.factor * summed_square(self.inf, per_entry, G)
        what = "units" if self.unit_of_row is not None and not self.stacked else "observations"
        inf = Inference(
            vcov_type=f"analytic (influence function), clustered by {name}", df=None, n_clusters=(G,),
            cluster_names=(name,),
            details=(f"SE = sqrt(sum over the {G} clusters of the summed centred IF, squared) "
                     f"{'/ sqrt(N (N - 1))' if self.twfe else '/ N'} over N = {self.n} {what}; no small-sample "
                     f"factor (R's DRDID has no clustered SEs: the cluster-robust form of its SE)",),
        )
        return np.array([[V]]), inf

    def default_inference(self) -> Inference:
        if self.twfe:
            detail = "SE = sd(IF) / sqrt(n), heteroskedasticity-robust, not clustered (as DRDID's TWFE)"
        else:
            what = "units" if self.unit_of_row is not None else "observations"
            detail = f"SE = sqrt(sum((IF - mean IF)^2)) / n over n = {self.n} {what} (DRDID 1.2.3)"
        return Inference(vcov_type="analytic (influence function)", df=None, details=(detail,))

    def frame(self) -> pd.DataFrame:
        """The influence function as a one-column frame indexed by unit, (unit, period) or input row."""
        values = np.array(self.inf, copy=True)
        if self.unit_labels is None:
            ri = self.codes.row_index
            index = pd.Index(np.arange(self.n) if ri is None else np.asarray(ri), name="row")
        elif self.stacked:
            n_units = self.unit_labels.shape[0]
            index = pd.MultiIndex.from_arrays(
                [np.tile(self.unit_labels, 2), np.repeat(self.period_labels[:2], n_units)],
                names=[self.unit or "unit", "period"])
        else:
            index = pd.Index(self.unit_labels, name=self.unit or "unit")
        return pd.DataFrame({"ATT": values}, index=index)


@dataclass(frozen=True, eq=False)
class DRDiDResult(Result):
    """Result of :func:`drdid`: one term, ``ATT``; its influence function in :meth:`influence_functions`."""

    def influence_functions(self) -> pd.DataFrame:
        """DRDID's ``att.inf.func`` as a one-column frame (column ``ATT``): one row per unit (panel, indexed by
        unit label), per input row (repeated cross sections, indexed by row position), or per stacked row (TWFE
        panel: every unit's pre row, then its post row, indexed by unit and period). ``SE**2`` is
        ``sum((IF - mean IF)^2) / N**2`` (``/ (N (N - 1))`` for TWFE)."""
        src = self._source
        assert isinstance(src, DRDiDSource)
        return src.frame()

    @property
    def n_trimmed(self) -> int:
        """Comparison observations given zero weight because their propensity score is >= ``trim_level``."""
        return int(self.extras["n_trimmed"])
