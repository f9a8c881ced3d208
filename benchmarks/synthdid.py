"""Synthetic DiD timings (issue 13): Prop 99 (estimate; 200 placebo replications) and a simulated panel of
1,000 units x 100 periods with 5 adoption cohorts (200 placebo replications), beside diff-diff's SyntheticDiD in
the same run when it is importable (run with ../peers-venv/bin/python and PYTHONPATH=src).

    PYTHONPATH=src ../peers-venv/bin/python benchmarks/synthdid.py [--skip-large] [--peer-large]

diff-diff's SyntheticDiD takes one adoption period, so beside didx's staggered run it is timed on the
simultaneous version of the same panel (every treated unit adopting at the middle cohort's period), and didx on
that one too.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

import didx


def seconds(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def simulated(n_units: int = 1000, T: int = 100, n_cohorts: int = 5, treated_share: float = 0.2,
              seed: int = 1, simultaneous: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_tr = int(n_units * treated_share)
    starts = np.linspace(T // 2, T - 10, n_cohorts).astype(int)
    adopt = np.full(n_units, 10 ** 6)
    adopt[:n_tr] = starts[T // 2 % n_cohorts] if simultaneous else starts[np.arange(n_tr) % n_cohorts]
    unit = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    load = rng.normal(size=(n_units, 2))
    factors = np.cumsum(rng.normal(size=(T, 2)), axis=0)
    d = (t >= adopt[unit]).astype(int)
    y = (rng.normal(size=n_units)[unit] + (load @ factors.T).ravel() + 2.0 * d
         + rng.normal(scale=0.5, size=unit.size))
    return pd.DataFrame({"unit": unit, "time": t, "y": y, "d": d,
                         "ever": (adopt[unit] < 10 ** 6).astype(int)})


def peer(df: pd.DataFrame, outcome: str, unit: str, time_col: str, ever: str, post: list[Any],
         reps: int) -> tuple[float, float, float] | None:
    try:
        from diff_diff import SyntheticDiD
    except ImportError:
        return None
    est = SyntheticDiD(variance_method="placebo", n_bootstrap=reps, seed=1)
    s, res = seconds(lambda: est.fit(df, outcome=outcome, treatment=ever, unit=unit, time=time_col,
                                     post_periods=post))
    return s, float(res.att), float(res.se)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--peer-large", action="store_true", help="also time diff-diff on the 1000 x 100 panel")
    args = ap.parse_args()
    prop = didx.datasets.load("california_prop99")
    cols = {"y": "PacksPerCapita", "unit": "State", "time": "Year", "treat": "treated"}
    s, r = seconds(lambda: didx.synthdid(prop, **cols), repeat=5)
    print(json.dumps({"task": "prop99 estimate", "tool": "didx", "seconds": s, "att": r.estimate}))
    s, r = seconds(lambda: didx.synthdid(prop, **cols, se="placebo", n_reps=200, seed=1))
    print(json.dumps({"task": "prop99 + 200 placebo", "tool": "didx", "seconds": s, "att": r.estimate,
                      "se": r.std_error}))
    ever = prop.assign(ever=(prop["State"] == "California").astype(int))
    got = peer(ever, "PacksPerCapita", "State", "Year", "ever", list(range(1989, 2001)), 200)
    if got is not None:
        print(json.dumps({"task": "prop99 + 200 placebo", "tool": "diff-diff", "seconds": got[0], "att": got[1],
                          "se": got[2]}))
    if args.skip_large:
        return
    big = simulated()
    s, r = seconds(lambda: didx.synthdid(big, y="y", unit="unit", time="time", treat="d", se="placebo",
                                         n_reps=200, seed=1))
    print(json.dumps({"task": "1000x100, 5 cohorts + 200 placebo", "tool": "didx", "seconds": s,
                      "att": r.estimate, "se": r.std_error}))
    sim = simulated(simultaneous=True)
    s, r = seconds(lambda: didx.synthdid(sim, y="y", unit="unit", time="time", treat="d", se="placebo",
                                         n_reps=200, seed=1))
    print(json.dumps({"task": "1000x100, one cohort + 200 placebo", "tool": "didx", "seconds": s,
                      "att": r.estimate, "se": r.std_error}))
    if args.peer_large:
        first = int(sim.loc[sim["d"] == 1, "time"].min())
        got = peer(sim, "y", "unit", "time", "ever", list(range(first, 100)), 200)
        if got is not None:
            print(json.dumps({"task": "1000x100, one cohort + 200 placebo", "tool": "diff-diff",
                              "seconds": got[0], "att": got[1], "se": got[2]}))


if __name__ == "__main__":
    main()
