"""didx Sun-Abraham task for ../shared/bench/bench_peers.py (to be merged into ``benchmarks/peer_tasks.py``).

``didx.sa`` receives the harness's panel (columns unit, time, first_treat, y, x1, x2, d, tau; first_treat 0 =
never treated) and returns dict(att=..., se=..., fit_s=...): the overall ATT of the interaction-weighted
estimator (fixest ``summary(agg = "ATT")``) with SEs clustered by unit, plus the event-time-0 effect for the
comparison with pyfixest's saturated event study, which reports per-event-time effects only.
"""

from __future__ import annotations

import time
from typing import Any


def didx_sa(df: Any) -> dict[str, Any]:
    import didx

    t0 = time.perf_counter()
    r = didx.sun_abraham(df, y="y", unit="unit", time="time", cohort="first_treat")
    t1 = time.perf_counter()
    e0 = r.tidy().set_index("event_time").loc[0.0]
    return dict(att=r.estimate, se=r.std_error, es_e0=float(e0["estimate"]), es_e0_se=float(e0["std_error"]),
                fit_s=t1 - t0)


TASKS: dict[str, tuple[str, str, Any, list[str]]] = {
    "didx.sa": ("didx", "Sun-Abraham (period, ATT aggregation)", didx_sa, ["didx"]),
}
