"""didx: difference-in-differences, from the 2x2 to staggered adoption, numerically identical to R.

Public API: estimator functions return immutable results (``.estimate``, ``.std_error``, ``.tidy()``,
``.summary()``, ``.with_vcov()``); :func:`compare` renders several side by side.
"""

from didx import datasets
from didx import registry as _registry
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

# Every other estimator and its result types come from the registry (didx.registry), imported lazily: importing
# didx stays cheap, and the public names resolve to the module that defines them.
_LAZY = {name: module for name, module in _registry.lazy_exports().items() if name not in globals()}
_LAZY.update({
    "EventStudyComparison": "didx.results.comparison",
    "EventStudyResult": "didx.results.event",
    "plot_event_studies": "didx.results.plot",
    "feols": "didx.formula",
    "HonestDiDResult": "didx.sensitivity.honest",
    "honest_did": "didx.sensitivity.honest",
    "PretrendPower": "didx.sensitivity.pretrends",
    "pretrend_power": "didx.sensitivity.pretrends",
    "slope_for_power": "didx.sensitivity.pretrends",
    "uniform_bands": "didx.inference.bands",
    "WildBootstrapResult": "didx.inference.wild",
    "report": "didx.results.report",
})


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
