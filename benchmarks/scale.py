"""Data bigger than memory: att_gt (+ the four aggregations) and twfe from a Parquet file through the engines.

Each measurement runs in a fresh Python process and reports its wall time (from the call with the file path to
the last aggregation; imports excluded), the CPU time of the process over the same span (all its threads: DuckDB
runs in-process; the machine is shared, so CPU time is the steadier number; for Spark it misses the JVM's work),
the 1-minute load average, and the peak resident memory of the whole process (``ru_maxrss``; for Spark, of the
Python driver only: the JVM is a separate process, its heap capped by ``spark.driver.memory``).

    python benchmarks/scale.py --units 1000000 --pandas --spark      # the 1M-unit comparisons
    python benchmarks/scale.py --units 1000000 --pandas --repeat 5 --interleave   # modes alternating
    python benchmarks/scale.py --units 5000000                       # 50M rows through DuckDB

Panels: ``../shared/bench/make_panel.py N 10 5 1 OUT.parquet`` (N units x 10 periods, 5 cohorts, 30% never
treated), written to ``--data-dir`` when missing. Results: ``benchmarks/RESULTS.md`` ("Data bigger than memory").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE_PANEL = ROOT.parent / "shared" / "bench" / "make_panel.py"  # ../shared beside the repository

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
import numpy as np
import didx
roles = dict(y="y", unit="unit", time="time", cohort="first_treat")
spark = None
if mode.startswith("spark"):
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "2g").config("spark.sql.shuffle.partitions", "8").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
if mode.startswith("pandas"):
    import pandas as pd
t0 = time.perf_counter()
u0 = resource.getrusage(resource.RUSAGE_SELF)
if mode.startswith("pandas"):
    data = pd.read_parquet(path, columns=["unit", "time", "first_treat", "y"])
elif spark is not None:
    data = spark.read.parquet(path)
else:
    data = path
t_read = time.perf_counter() - t0
out = {}
if mode.endswith("att_gt"):
    r = didx.att_gt(data, **roles)
    aggs = {k: r.aggregate(k) for k in ("simple", "group", "dynamic", "calendar")}
    out = {"att_simple": float(r.estimate), "se_simple": float(r.std_error),
           "att_dynamic_post": float(aggs["dynamic"].estimate), "se_group": float(aggs["group"].std_error)}
else:
    r = didx.twfe(data, **roles)
    out = {"beta": float(r.estimate), "se": float(r.std_error)}
wall = time.perf_counter() - t0
u1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime
rss = u1.ru_maxrss / 1024
load = open("/proc/loadavg").read().split()[0]
print(json.dumps({"mode": mode, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "read_s": round(t_read, 3),
                  "peak_rss_mb": round(rss, 1), "load_avg": float(load), **out}))
if spark is not None:
    spark.stop()
"""


def panel(units: int, data_dir: Path) -> Path:
    path = data_dir / f"panel_{units}.parquet"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(MAKE_PANEL), str(units), "10", "5", "1", str(path)], check=True)
    return path


def run(mode: str, path: Path) -> dict[str, object]:
    got = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                                        "HOME": str(Path.home())})
    if got.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{got.stderr[-3000:]}")
    line = [s for s in got.stdout.splitlines() if s.startswith("{")][-1]
    out: dict[str, object] = json.loads(line)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", default="1000000", help="comma-separated unit counts (10 periods each)")
    ap.add_argument("--data-dir", default="/tmp/didx_scale")
    ap.add_argument("--pandas", action="store_true", help="also pandas.read_parquet + the in-memory path")
    ap.add_argument("--spark", action="store_true", help="also Spark local[2] (needs pyspark and Java)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--interleave", action="store_true",
                    help="repeat the whole list of modes (DuckDB, pandas, DuckDB, ...) instead of each mode in turn: "
                         "no process follows one of its own kind (pandas' read is faster right after another "
                         "pandas process on the development VM)")
    a = ap.parse_args()
    for units in (int(u) for u in a.units.split(",")):
        path = panel(units, Path(a.data_dir))
        modes = ["duckdb_att_gt", "duckdb_twfe"]
        if a.pandas:
            modes += ["pandas_att_gt", "pandas_twfe"]
        if a.spark:
            modes += ["spark_att_gt", "spark_twfe"]
        order = [m for _ in range(a.repeat) for m in modes] if a.interleave else [m for m in modes
                                                                                 for _ in range(a.repeat)]
        for mode in order:
            print(json.dumps({"units": units, "rows": units * 10, **run(mode, path)}), flush=True)


if __name__ == "__main__":
    main()
