"""Time didx.twfe (unit + time FE, clustered by unit) on simulate_staggered panels.

    .venv/bin/python benchmarks/twfe.py [--sizes 100000,1000000]

Prints one line per size: wall seconds of estimation (best of 3, data already loaded) and the peak memory
allocated during the call. Targets (issue 2): at 1M units x 10 periods under 3 s and under 1 GB beyond the data.
The side-by-side ratio to pyfixest is measured with ../shared/bench/bench_peers.py (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json

from _common import measure, panel

import didx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--periods", type=int, default=10)
    a = ap.parse_args()
    for n in (int(s) for s in a.sizes.split(",")):
        df = panel(n, a.periods)
        res = didx.twfe(df, y="y", unit="unit", time="time", treat="d", cluster="unit")
        m = measure(lambda df=df: didx.twfe(df, y="y", unit="unit", time="time", treat="d", cluster="unit"))
        print(json.dumps({"task": "didx.twfe", "n_units": n, "n_periods": a.periods, "n_rows": len(df),
                          "estimate": res.estimate, "se": res.std_error, **{k: round(v, 3) for k, v in m.items()}}))
        del df


if __name__ == "__main__":
    main()
