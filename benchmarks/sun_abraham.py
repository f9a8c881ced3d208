"""Time didx.sun_abraham (saturated cohort x period regression, clustered by unit) on simulate_staggered panels.

    .venv/bin/python benchmarks/sun_abraham.py [--sizes 100000,1000000] [--periods 10] [--cohorts 5]

Prints one JSON line per size and path: wall seconds of estimation (best of 3, data already loaded, including the
period, ATT and cohort aggregations), the peak memory allocated during the call (tracemalloc: memory beyond the
loaded data) and the CPU seconds of one call. ``engine="auto"`` takes the cohort x period cell-means path on these
balanced panels without covariates; ``--regression`` also times the general path (dense interaction regressors;
only sensible at 100k).
Targets (issue 5): at 1M units x 10 periods under 5 s and under 2 GB beyond the data.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import measure, panel

import didx


def run(df: Any, engine: str, covariates: list[str] | None = None) -> Any:
    res = didx.sun_abraham(df, y="y", unit="unit", time="time", cohort="cohort", engine=engine,
                           covariates=covariates)
    _ = res.att, res.cohort  # the other aggregations are part of the job
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--periods", type=int, default=10)
    ap.add_argument("--cohorts", type=int, default=5)
    ap.add_argument("--regression", action="store_true", help="also time engine='regression' (dense regressors)")
    ap.add_argument("--covariates", action="store_true", help="also time with the time-varying covariate x2")
    ap.add_argument("--unbalanced", action="store_true", help="drop 10%% of the rows at random first")
    a = ap.parse_args()
    for n in (int(s) for s in a.sizes.split(",")):
        df = panel(n, a.periods, a.cohorts)
        if a.unbalanced:
            df = df.sample(frac=0.9, random_state=1).sort_values(["unit", "time"]).reset_index(drop=True)
        engines = ["auto", "regression"] if a.regression else ["auto"]
        jobs = [(e, None) for e in engines] + ([("auto", ["x2"])] if a.covariates else [])
        for engine, cov in jobs:
            res = run(df, engine, cov)
            m = measure(lambda df=df, engine=engine, cov=cov: run(df, engine, cov))
            c0 = time.process_time()
            run(df, engine, cov)
            m["cpu_seconds"] = time.process_time() - c0  # less sensitive than wall time to a loaded machine
            print(json.dumps({"task": "didx.sun_abraham", "engine": engine, "covariates": cov,
                              "unbalanced": a.unbalanced, "n_units": n,
                              "n_periods": a.periods,
                              "n_rows": len(df), "n_cells": len(res.coefficients.terms), "att": res.estimate,
                              "se": res.std_error, **{k: round(v, 3) for k, v in m.items()}}), flush=True)
        del df


if __name__ == "__main__":
    main()
