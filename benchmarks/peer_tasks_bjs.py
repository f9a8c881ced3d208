"""didx BJS imputation and Gardner two-stage tasks for ../shared/bench/bench_peers.py.

Merged into ``benchmarks/peer_tasks.py`` (BENCH_EXTRA_TASKS=benchmarks/peer_tasks.py) as ``didx.bjs`` and
``didx.gardner``. Each receives the harness's panel (columns unit, time, first_treat, y, x1, x2, d, tau) and
returns dict(att=..., se=..., fit_s=...): the overall ATT with unit + time fixed effects fit on untreated
observations and SEs clustered by unit, as the peers' tasks.
"""

from __future__ import annotations

import time
from typing import Any


def didx_bjs(df: Any) -> dict[str, Any]:
    import didx

    t0 = time.perf_counter()
    r = didx.imputation(df, y="y", unit="unit", time="time", cohort="first_treat")
    return dict(att=r.estimate, se=r.std_error, fit_s=time.perf_counter() - t0)


def didx_gardner(df: Any) -> dict[str, Any]:
    import didx

    t0 = time.perf_counter()
    r = didx.did2s(df, y="y", unit="unit", time="time", treat="d", cluster="unit")
    return dict(att=r.estimate, se=r.std_error, fit_s=time.perf_counter() - t0)


TASKS: dict[str, tuple[str, str, Any, list[str]]] = {
    "didx.bjs": ("didx", "BJS imputation", didx_bjs, ["didx"]),
    "didx.gardner": ("didx", "Gardner two-stage (did2s)", didx_gardner, ["didx"]),
}
