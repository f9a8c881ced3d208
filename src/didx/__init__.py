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
