"""didx Callaway-Sant'Anna tasks for ../shared/bench/bench_peers.py (merged by benchmarks/peer_tasks.py).

Same work as the peers' ``.cs`` tasks: ATT(g,t) with never-treated controls, doubly robust (without covariates
dr = ipw = reg), then the simple and event-study aggregations; the overall ATT and SE returned are the simple
aggregation's. The panel has columns unit, time, first_treat, y, x1, x2, d, tau.
"""

from __future__ import annotations

import time
from typing import Any


def didx_cs(df: Any, n_bootstrap: int = 0) -> dict[str, Any]:
    import didx

    t0 = time.perf_counter()
    r = didx.att_gt(df, y="y", unit="unit", time="time", cohort="first_treat", control_group="never", est_method="dr",
                    n_bootstrap=n_bootstrap, seed=1 if n_bootstrap else None)
    t1 = time.perf_counter()
    s = r.aggregate("simple")
    e = r.aggregate("dynamic")
    t2 = time.perf_counter()
    return dict(att=float(s.estimate), se=float(s.std_error), n_gt=len(r.terms) - 1,
                es_e0=float(e.coef[e.terms.index("e=0")]), fit_s=t1 - t0, agg_s=t2 - t1)


def didx_cs_boot(df: Any) -> dict[str, Any]:
    """999 multiplier-bootstrap draws (Rademacher, as R's did), clustered by unit."""
    return didx_cs(df, n_bootstrap=999)
