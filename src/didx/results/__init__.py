"""Immutable results and their presentation."""

from didx.results.base import Inference, Result, WaldTest
from didx.results.compare import compare

__all__ = ["Inference", "Result", "WaldTest", "compare"]
