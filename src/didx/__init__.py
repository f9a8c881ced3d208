"""didx: difference-in-differences, from the 2x2 to staggered adoption, numerically identical to R.

Public API: estimator functions return immutable results (``.estimate``, ``.std_error``, ``.tidy()``,
``.summary()``, ``.with_vcov()``); :func:`compare` renders several side by side.
"""

from didx import datasets
from didx._errors import (
    ColumnNotFoundError,
    ConvergenceError,
    DataError,
    DesignError,
    DidxError,
    InvalidOptionError,
)
from didx.estimators.regression.ols import OLSResult, ols
from didx.estimators.regression.twfe import TWFEResult, twfe
from didx.estimators.regression.twobytwo import CellTable, DiD2x2Result, did2x2
from didx.inference.vcov import SSC
from didx.results import Inference, Result, WaldTest, compare

__version__ = "0.1.0"

# Estimators added by later modules are imported lazily: importing didx stays cheap, and the public names
# resolve to the module that defines them.
_LAZY = {
    "event_study": "didx.estimators.regression.event_study",
    "EventStudyComparison": "didx.comparison",
    "EventStudyResult": "didx.results.event",
    "plot_event_studies": "didx.results.plot",
    "uniform_bands": "didx.inference.bands",
    "drdid": "didx.estimators.drdid.estimator",
    "DRDiDResult": "didx.estimators.drdid.estimator",
    "bacon": "didx.estimators.bacon.estimator",
    "BaconDecomposition": "didx.estimators.bacon.estimator",
    "WildBootstrapResult": "didx.inference.wild",
    "att_gt": "didx.estimators.cs.estimator",
    "ATTgtResult": "didx.estimators.cs.estimator",
    "CSAggregateResult": "didx.estimators.cs.estimator",
    "CSEventStudyResult": "didx.estimators.cs.estimator",
    "sun_abraham": "didx.estimators.sun_abraham.estimator",
    "SunAbrahamResult": "didx.estimators.sun_abraham.estimator",
    "imputation": "didx.estimators.imputation.bjs",
    "ImputationResult": "didx.estimators.imputation.bjs",
    "ImputationEventResult": "didx.estimators.imputation.bjs",
    "did2s": "didx.estimators.imputation.did2s",
    "Did2sResult": "didx.estimators.imputation.did2s",
    "Did2sEventResult": "didx.estimators.imputation.did2s",
    "dcdh": "didx.estimators.dcdh.estimator",
    "DcdhResult": "didx.estimators.dcdh.estimator",
    "twfe_weights": "didx.estimators.dcdh.estimator",
    "stacked": "didx.estimators.regression.stacked",
    "StackedResult": "didx.estimators.regression.stacked",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'didx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_LAZY))

__all__ = [
    "SSC",
    "CellTable",
    "ColumnNotFoundError",
    "ConvergenceError",
    "DataError",
    "DesignError",
    "DiD2x2Result",
    "DidxError",
    "Inference",
    "InvalidOptionError",
    "OLSResult",
    "Result",
    "TWFEResult",
    "WaldTest",
    "compare",
    "datasets",
    "did2x2",
    "ols",
    "twfe",
]
