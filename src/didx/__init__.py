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
from didx.estimators.ols import OLSResult, ols
from didx.estimators.twfe import TWFEResult, twfe
from didx.estimators.twobytwo import CellTable, DiD2x2Result, did2x2
from didx.inference.vcov import SSC
from didx.results import Inference, Result, WaldTest, compare

__version__ = "0.1.0"

# Estimators added by later modules are imported lazily: importing didx stays cheap, and the public names
# resolve to the module that defines them.
_LAZY = {
    "event_study": "didx.estimators.event_study",
    "EventStudyComparison": "didx.estimators.compare_es",
    "EventStudyResult": "didx.results.event",
    "plot_event_studies": "didx.results.plot",
    "uniform_bands": "didx.inference.bands",
    "drdid": "didx.estimators.drdid",
    "DRDiDResult": "didx.estimators.drdid",
    "bacon": "didx.estimators.bacon",
    "BaconDecomposition": "didx.estimators.bacon",
    "WildBootstrapResult": "didx.inference.wild",
    "att_gt": "didx.estimators.callaway_santanna",
    "ATTgtResult": "didx.estimators.callaway_santanna",
    "CSAggregateResult": "didx.estimators.callaway_santanna",
    "CSEventStudyResult": "didx.estimators.callaway_santanna",
    "sun_abraham": "didx.estimators.sun_abraham",
    "SunAbrahamResult": "didx.estimators.sun_abraham",
    "imputation": "didx.estimators.imputation",
    "ImputationResult": "didx.estimators.imputation",
    "ImputationEventResult": "didx.estimators.imputation",
    "did2s": "didx.estimators.did2s",
    "Did2sResult": "didx.estimators.did2s",
    "Did2sEventResult": "didx.estimators.did2s",
    "dcdh": "didx.estimators.chaisemartin",
    "DcdhResult": "didx.estimators.chaisemartin",
    "twfe_weights": "didx.estimators.chaisemartin",
    "stacked": "didx.estimators.stacked",
    "StackedResult": "didx.estimators.stacked",
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
