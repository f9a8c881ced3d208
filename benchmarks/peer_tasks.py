"""didx tasks for ../shared/bench/bench_peers.py (BENCH_EXTRA_TASKS=benchmarks/peer_tasks.py).

Each task receives the shared harness's panel (columns unit, time, first_treat, y, x1, x2, d, tau) and returns
dict(att=..., se=..., fit_s=...), timed by the same harness, in the same run, as the peers.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def didx_twfe(df: Any) -> dict[str, Any]:
    import didx

    t0 = time.perf_counter()
    r = didx.twfe(df, y="y", unit="unit", time="time", treat="d", cluster="unit")
    return dict(att=r.estimate, se=r.std_error, fit_s=time.perf_counter() - t0)


TASKS: dict[str, tuple[str, str, Any, list[str]]] = {
    "didx.twfe": ("didx", "TWFE unit+time FE, CRV1 unit", didx_twfe, ["didx"]),
}


def _merge(filename: str, entries: dict[str, tuple[str, str]]) -> None:
    """Add the tasks another benchmark file defines (function name -> task name and label), if present."""
    path = os.path.join(HERE, filename)
    if not os.path.exists(path):
        return
    spec = importlib.util.spec_from_file_location(filename[:-3], path)
    if spec is None or spec.loader is None:
        return
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for fn_name, (task, label) in entries.items():
        fn = getattr(mod, fn_name, None)
        if fn is not None:
            TASKS[task] = ("didx", label, fn, ["didx"])


_merge("peer_tasks_cs.py", {"didx_cs": ("didx.cs", "CS ATT(g,t)+simple+event, analytic"),
                            "didx_cs_boot": ("didx.cs_boot", "CS + mult. bootstrap 999")})
_merge("peer_tasks_sa.py", {"didx_sa": ("didx.sa", "Sun-Abraham")})
_merge("peer_tasks_bjs.py", {"didx_bjs": ("didx.bjs", "BJS imputation"),
                             "didx_gardner": ("didx.gardner", "Gardner two-stage (did2s)")})
