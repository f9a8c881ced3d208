"""One exception hierarchy for every user-facing error.

Every message says what is wrong, names the column or value, and says how to fix it.
All errors derive from :class:`DidxError`, itself a ``ValueError``, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class DidxError(ValueError):
    """Root of every error raised by didx on bad input or options."""


class ColumnNotFoundError(DidxError, KeyError):
    """A column named in a role (``y=``, ``unit=``, ...) is not in the data."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidOptionError(DidxError):
    """An option has a value outside its allowed set or range."""


class DataError(DidxError):
    """The data cannot support the requested design (types, duplicates, codings)."""


class DesignError(DidxError):
    """The design is not identified: no treated or control units, too few periods, collinearity."""


class ConvergenceError(DidxError):
    """An iterative step (fixed-effect absorption, logit) did not converge."""
