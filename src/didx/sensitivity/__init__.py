"""Sensitivity of event studies to violations of parallel trends.

:mod:`didx.sensitivity.pretrends`: power of the conventional pre-trend test against a hypothesised trend, and the
linear trend it detects with a given probability (Roth 2022, "Pretest with Caution"; R package ``pretrends``).
"""

from __future__ import annotations

from didx.sensitivity.pretrends import PretrendPower, pretrend_power, slope_for_power

__all__ = ["PretrendPower", "pretrend_power", "slope_for_power"]
