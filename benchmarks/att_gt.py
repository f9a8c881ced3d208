"""Time didx.att_gt (Callaway & Sant'Anna) on simulate_staggered panels: 5 cohorts x 10 periods.

    .venv/bin/python benchmarks/att_gt.py [--sizes 100000,1000000] [--tasks analytic,bootstrap,covariate]

One JSON line per (task, size): wall seconds of estimation plus all four aggregations (best of ``--repeat``, data
already loaded), the peak memory allocated during one call (tracemalloc: numpy buffers, i.e. memory beyond the
data), and the process's max RSS. Tasks:

- ``analytic``: no covariates, never-treated controls, analytic SEs, simple/group/dynamic/calendar;
- ``bootstrap``: the same with 999 multiplier-bootstrap draws (Rademacher), clustered by unit;
- ``covariate``: one covariate (x1), ``est_method="dr"``, analytic SEs.

Targets (issue 4) at 1M units: analytic under 1.5 s and 1 GB beyond the data; bootstrap under 5 s;
covariate under 15 s. Side-by-side ratios to the Python peers: ../shared/bench/bench_peers.py with
BENCH_EXTRA_TASKS=benchmarks/peer_tasks.py (tasks didx.cs, didx.cs_boot).
"""

from __future__ import annotations

import argparse
import json

from _common import measure, panel

import didx

TASKS = {
    "analytic": {},
    "bootstrap": {"n_bootstrap": 999, "seed": 1},
    "covariate": {"covariates": ["x1"], "est_method": "dr"},
}


def run(df, **kw):  # type: ignore[no-untyped-def]
    r = didx.att_gt(df, y="y", unit="unit", time="time", cohort="cohort", **kw)
    aggs = [r.aggregate(k) for k in ("simple", "group", "dynamic", "calendar")]
    return r, aggs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--periods", type=int, default=10)
    ap.add_argument("--cohorts", type=int, default=5)
    ap.add_argument("--tasks", default="analytic,bootstrap,covariate")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for n in (int(s) for s in a.sizes.split(",")):
        df = panel(n, a.periods, a.cohorts)
        for task in a.tasks.split(","):
            kw = TASKS[task]
            res, aggs = run(df, **kw)
            m = measure(lambda df=df, kw=kw: run(df, **kw), repeat=a.repeat)
            print(json.dumps({"task": f"didx.att_gt.{task}", "n_units": n, "n_periods": a.periods,
                              "n_rows": len(df), "n_cells": len(res.terms) - 1, "att_simple": res.estimate,
                              "se_simple": res.std_error, "att_dynamic": aggs[2].estimate,
                              **{k: round(v, 3) for k, v in m.items()}}), flush=True)
        del df


if __name__ == "__main__":
    main()
