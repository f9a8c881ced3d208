"""Shared helpers of the benchmark scripts: panels, timing and peak memory beyond the loaded data."""

from __future__ import annotations

import gc
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pandas as pd

import didx


def panel(n_units: int, n_periods: int = 10, n_cohorts: int = 5, seed: int = 42) -> pd.DataFrame:
    return didx.datasets.simulate_staggered(n_units, n_periods, n_cohorts, seed=seed)


def measure(fn: Callable[[], Any], repeat: int = 3) -> dict[str, float]:
    """Best wall time of ``repeat`` runs, and the peak of memory allocated during one run (tracemalloc sees
    numpy's buffers), i.e. memory beyond the data already loaded."""
    gc.collect()
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": min(times), "peak_mb_beyond_data": peak / 2**20, "process_max_rss_mb": rss}
