"""Data bigger than memory, with covariates: ``twfe`` with a time-varying and a time-invariant covariate from a
Parquet file through DuckDB, beside ``pandas.read_parquet`` + the in-memory path.

The panels of ``benchmarks/scale.py`` (``../shared/bench/make_panel.py N 10 5 1``; ``x2`` time-varying, enters the
outcome; ``x1`` constant within units, so dropped for collinearity), CR1 clustered by unit. Each measurement runs
in a fresh process: wall time from the call with the path (or the read) to the result, the process's CPU time,
the peak RSS of the whole process, the load average. Results: ``benchmarks/RESULTS.md`` ("twfe with covariates
through the engines").

    python benchmarks/scale_covariates.py --units 1000000 --pandas
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from scale import ROOT, panel

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
import didx
roles = dict(y="y", unit="unit", time="time", cohort="first_treat", covariates=["x2", "x1"])
if mode == "pandas":
    import pandas as pd
t0 = time.perf_counter()
u0 = resource.getrusage(resource.RUSAGE_SELF)
data = pd.read_parquet(path, columns=["unit", "time", "first_treat", "y", "x1", "x2"]) if mode == "pandas" else path
r = didx.twfe(data, **roles)
wall = time.perf_counter() - t0
u1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"mode": mode, "wall_s": round(wall, 3),
                  "cpu_s": round(u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime, 3),
                  "peak_rss_mb": round(u1.ru_maxrss / 1024, 1),
                  "load_avg": float(open("/proc/loadavg").read().split()[0]),
                  "terms": list(r.terms), "coef": [float(x) for x in r.coef],
                  "se": [float(x) for x in r.tidy()["std_error"]]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", default="1000000", help="comma-separated unit counts (10 periods each)")
    ap.add_argument("--data-dir", default="/tmp/didx_scale")
    ap.add_argument("--pandas", action="store_true", help="also pandas.read_parquet + the in-memory path")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    for units in (int(u) for u in a.units.split(",")):
        path = panel(units, Path(a.data_dir))
        for mode in ["duckdb", *(["pandas"] if a.pandas else [])]:
            for _ in range(a.repeat):
                got = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True,
                                     cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                                                    "HOME": str(Path.home())}, check=True)
                line = [s for s in got.stdout.splitlines() if s.startswith("{")][-1]
                print(json.dumps({"units": units, "rows": units * 10, **json.loads(line)}), flush=True)


if __name__ == "__main__":
    main()
