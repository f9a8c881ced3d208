"""Time didx.imputation (BJS) and didx.did2s (Gardner) on simulate_staggered panels.

    .venv/bin/python benchmarks/imputation_did2s.py [--sizes 100000,1000000] [--tasks bjs,gardner,bjs_es,gardner_es]

Prints one JSON line per (task, size): wall seconds of estimation (best of 3, data already loaded) and the peak
memory allocated during the call (tracemalloc: memory beyond the loaded data). Targets (issue 5): at 1M units x
10 periods each under 5 s and under 2 GB beyond the data. Tasks: static ATT with the default first stage (unit
+ time FE) and SEs clustered by unit; ``*_es``: the same with one effect per horizon / event time.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from _common import measure, panel

import didx

TASKS: dict[str, Callable[[Any], Any]] = {
    "bjs": lambda df: didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort"),
    "gardner": lambda df: didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort"),
    "bjs_es": lambda df: didx.imputation(df, y="y", unit="unit", time="time", cohort="cohort", horizons=True),
    "gardner_es": lambda df: didx.did2s(df, y="y", unit="unit", time="time", cohort="cohort",
                                        second_stage="event_study"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--periods", type=int, default=10)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for n in (int(s) for s in a.sizes.split(",")):
        df = panel(n, a.periods)
        for task in a.tasks.split(","):
            fn = TASKS[task]
            res = fn(df)
            m = measure(lambda df=df, fn=fn: fn(df), repeat=a.repeat)
            print(json.dumps({"task": f"didx.{task}", "n_units": n, "n_periods": a.periods, "n_rows": len(df),
                              "estimate": res.estimate, "se": res.std_error,
                              **{k: round(v, 3) for k, v in m.items()}}), flush=True)
        del df


if __name__ == "__main__":
    main()
