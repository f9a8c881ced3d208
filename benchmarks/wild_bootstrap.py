"""Benchmark: wild cluster bootstrap on 1M observations in 50 clusters with 9999 draws.

A balanced panel of 50,000 units x 20 years in 50 states, unit and year fixed effects (the unit effects are
nested in the state clusters, the year effects are not, so the exact fixed-effect correction runs), a staggered
treatment and one covariate; WCR test of the treatment coefficient with its test-inversion confidence interval,
then the WCU version and a joint (Wald) test of two coefficients.

Run: ``.venv/bin/python benchmarks/wild_bootstrap.py``. Prints wall time and peak memory of the bootstrap calls
only (the regression is fitted once, beforehand): ``tracemalloc`` peak of Python/numpy allocations during the
call, and the growth of the process's maximum resident set size.
"""

from __future__ import annotations

import platform
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

import didx

N_UNITS, N_YEARS, N_STATES, B = 50_000, 20, 50, 9999


def make_data(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(N_UNITS), N_YEARS)
    year = np.tile(np.arange(N_YEARS), N_UNITS)
    state = unit % N_STATES
    adopt = np.where(np.arange(N_STATES) < 20, 5 + np.arange(N_STATES) % 10, 10**6)[state]
    treat = (year >= adopt).astype(float)
    x = rng.normal(size=unit.shape[0])
    y = (0.05 * treat + 0.3 * x + rng.normal(size=N_STATES)[state] + rng.normal(size=N_UNITS)[unit]
         + 0.1 * year + rng.normal(size=unit.shape[0]))
    return pd.DataFrame({"y": y, "treat": treat, "x": x, "unit": unit, "year": year, "state": state})


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(label: str, fn):  # type: ignore[no-untyped-def]
    rss0 = rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<58} {dt:7.2f} s   tracemalloc peak {peak / 2**20:7.1f} MB   "
          f"max RSS growth {rss_mb() - rss0:7.1f} MB")
    return out


def main() -> None:
    print(f"didx {didx.__version__ if hasattr(didx, '__version__') else ''} | numpy {np.__version__} | "
          f"{platform.python_version()} | {platform.machine()}")
    df = make_data()
    print(f"data: {len(df):,} rows, {N_STATES} clusters, {B} draws; RSS after loading {rss_mb():.0f} MB")
    t0 = time.perf_counter()
    res = didx.ols(df, y="y", x=["treat", "x"], fe=["unit", "year"], cluster="state")
    print(f"fit (ols with unit + year FE, once): {time.perf_counter() - t0:.2f} s; RSS {rss_mb():.0f} MB")
    wcr = measure("WCR t test + CI by test inversion (rademacher)",
                  lambda: res.wild_bootstrap("treat", n_bootstrap=B, seed=1))
    print("   ", wcr.summary().splitlines()[-1].strip(), f"p = {wcr.p_value:.4f}")
    measure("WCU t test + percentile-t CI (webb)",
            lambda: res.wild_bootstrap("treat", n_bootstrap=B, seed=1, impose_null=False, weights="webb"))
    measure("WCR joint Wald test of 2 coefficients",
            lambda: res.wild_bootstrap(["treat", "x"], n_bootstrap=B, seed=1))


if __name__ == "__main__":
    main()
