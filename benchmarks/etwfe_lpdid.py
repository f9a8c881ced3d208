"""Time didx.etwfe (linear, no covariates) and didx.lpdid on the shared benchmark panel, beside pyfixest's lpdid
and saturated event study.

    PYTHONPATH=src /work/peers-venv/bin/python benchmarks/etwfe_lpdid.py [--sizes 100000,1000000] [--peers]

The panel is ``../shared/bench/make_panel.py``'s (balanced, periods 1..10, 5 cohorts 4..8, 30% never treated).
Prints one JSON line per task and size: wall seconds (best of ``--repeat`` runs after a warm-up, data already
loaded), CPU seconds of one run, the peak memory allocated during one run (tracemalloc: beyond the loaded data),
and the headline numbers. didx tasks: ``etwfe`` (cohort x period cells, CR1 by unit, the four emfx
aggregations), ``lpdid`` (pre_window 3, post_window 4, joint CR1 covariance; and reweighted). Peers (``--peers``,
only with the peers venv): pyfixest ``lpdid(att=False)`` (the same horizons) and ``event_study(estimator=
"saturated")``, diff-diff ``WooldridgeDiD`` (+ event aggregation) and ``LPDiD``, each in a subprocess with a time
limit; ``--peer-tasks`` selects some.
Targets (issue 14): linear ETWFE without covariates and lpdid each under 5 s at 1M units x 10 periods.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from _common import measure as common_measure

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
if not BENCH.exists():
    BENCH = Path("/work/shared/bench")
sys.path.insert(0, str(BENCH))


def make(n_units: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    from make_panel import make_panel  # type: ignore[import-not-found]

    table, info = make_panel(n_units, 10, 5, 42)
    return table.to_pandas(), info


def measure(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    """``_common.measure`` (best wall time, tracemalloc peak) plus the CPU seconds of one call."""
    out = common_measure(fn, repeat)
    c0 = time.process_time()
    fn()
    out["cpu_seconds"] = time.process_time() - c0
    return out


def didx_tasks(df: pd.DataFrame) -> dict[str, Callable[[], Any]]:
    import didx

    def etwfe() -> Any:
        res = didx.etwfe(df, y="y", unit="unit", time="time", cohort="first_treat")
        for kind in ("group", "calendar", "event"):
            res.aggregate(kind)
        return res

    def lpdid(reweight: bool) -> Callable[[], Any]:
        return lambda: didx.lpdid(df, y="y", unit="unit", time="time", treat="d", pre_window=3, post_window=4,
                                  reweight=reweight)

    return {"didx.etwfe": etwfe, "didx.lpdid": lpdid(False), "didx.lpdid_reweighted": lpdid(True)}


PEER_CODE = {
    "pyfixest.lpdid": (
        "import pyfixest as pf\n"
        "res = pf.lpdid(df, yname='y', idname='unit', tname='time', gname='first_treat', pre_window=-3, "
        "post_window=4, att=False)\n"
        "out = float(res.tidy().loc['time_to_treatment::0', 'Estimate'])\n"
    ),
    "diff-diff.etwfe": (
        "from diff_diff import WooldridgeDiD\n"
        "res = WooldridgeDiD(cluster='unit').fit(df, outcome='y', unit='unit', time='time', "
        "first_treat='first_treat')\n"
        "res.aggregate('event')\n"
        "out = float(res.overall_att)\n"
    ),
    "diff-diff.lpdid": (
        "from diff_diff import LPDiD\n"
        "res = LPDiD(pre_window=3, post_window=4, cluster='unit').fit(df, outcome='y', unit='unit', time='time', "
        "treatment='d')\n"
        "out = 0.0\n"
    ),
    "pyfixest.saturated": (
        "import pyfixest as pf\n"
        "res = pf.event_study(df, yname='y', idname='unit', tname='time', gname='first_treat', "
        "estimator='saturated')\n"
        "out = float(res.coef().iloc[0])\n"
    ),
}


def run_peer(task: str, n_units: int, timeout: float) -> dict[str, Any]:
    """One peer task in a fresh process (the panel rebuilt there), timed around the call only."""
    script = (
        "import sys, time, json, warnings\nwarnings.filterwarnings('ignore')\n"
        f"sys.path.insert(0, {str(BENCH)!r})\nfrom make_panel import make_panel\n"
        f"df = make_panel({n_units}, 10, 5, 42)[0].to_pandas()\n"
        "t0 = time.perf_counter()\n" + PEER_CODE[task] +
        "print(json.dumps({'seconds': time.perf_counter() - t0, 'estimate': out}))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:g} s"}
    if done.returncode != 0:
        return {"status": "failed", "error": done.stderr.strip().splitlines()[-1:] or ""}
    return {"status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--peer-timeout", type=float, default=600.0)
    ap.add_argument("--peer-tasks", default=",".join(PEER_CODE))
    ap.add_argument("--no-didx", action="store_true")
    a = ap.parse_args()
    for n in (int(s) for s in a.sizes.split(",")):
        df, info = make(n)
        for task, fn in ({} if a.no_didx else didx_tasks(df)).items():
            res = fn()
            m = measure(fn, a.repeat)
            print(json.dumps({"task": task, "n_units": n, "n_rows": len(df), "estimate": res.estimate,
                              "std_error": res.std_error, "true_att": info["true_att"],
                              **{k: round(v, 3) for k, v in m.items()}}), flush=True)
        del df
        if a.peers:
            for task in a.peer_tasks.split(","):
                print(json.dumps({"task": task, "n_units": n, **run_peer(task, n, a.peer_timeout)}), flush=True)


if __name__ == "__main__":
    main()
