"""Linear algebra: fixed-effect absorption and weighted least squares."""

from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols

__all__ = ["FixedEffects", "OLSFit", "fit_ols"]
