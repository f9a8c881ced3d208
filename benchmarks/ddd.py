"""Time didx.ddd (triple differences) beside moderndid's ddd on simulate_staggered panels with a partition.

    PYTHONPATH=src /work/peers-venv/bin/python benchmarks/ddd.py [--sizes 100000,1000000] [--peers 100000]

Data: ``didx.datasets.simulate_staggered(n, 10 periods, 5 cohorts)`` with a partition ``elig`` (1 for a random
half of the units; the outcome gets an eligible-specific trend and the effect only for eligible treated units).
One JSON line per (implementation, task, size): wall seconds (best of ``--repeat`` after a warm-up; data
loaded) of the ATT(g,t) fit plus the event-study aggregation, peak memory allocated during one call (tracemalloc)
and the process's max RSS. Tasks: ``nocov`` (no covariates, never-treated controls, universal base period,
analytic SEs) and ``cov`` (one covariate, ``dr``). moderndid (its ``ddd`` + ``agg_ddd(type="eventstudy",
boot=False)``) runs at the sizes of ``--peers`` only.

Target (issue 14): didx, 1M units x 10 periods without covariates, under 5 s.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pandas as pd
from _common import measure

import didx


def ddd_panel(n_units: int, n_periods: int = 10, n_cohorts: int = 5, seed: int = 42) -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(n_units, n_periods, n_cohorts, seed=seed)
    rng = np.random.default_rng(seed + 1)
    elig = (rng.random(n_units) < 0.5).astype(np.int64)
    e = elig[df["unit"].to_numpy()]  # units are 0..n-1
    df["elig"] = e
    df["y"] = df["y"] + 0.3 * e * df["time"] - (1 - e) * df["d"] * 1.0  # the effect only for the eligible
    return df


def run_didx(df: pd.DataFrame, **kw: object) -> tuple[didx.Result, didx.Result]:
    r = didx.ddd(df, y="y", unit="unit", time="time", cohort="cohort", partition="elig", **kw)  # type: ignore
    return r, r.aggregate("dynamic")


def run_moderndid(df: pd.DataFrame, covariates: bool) -> tuple[object, object]:
    import moderndid as md

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = md.ddd(data=df, yname="y", tname="time", idname="unit", gname="cohort", pname="elig",
                   xformla="~ x1" if covariates else None, control_group="nevertreated", base_period="universal",
                   est_method="dr")
        return r, md.agg_ddd(r, type="eventstudy", boot=False, cband=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--peers", default="100000", help="sizes at which moderndid runs too ('' for none)")
    ap.add_argument("--periods", type=int, default=10)
    ap.add_argument("--cohorts", type=int, default=5)
    ap.add_argument("--tasks", default="nocov,cov")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    peers = {int(s) for s in a.peers.split(",") if s}
    for n in (int(s) for s in a.sizes.split(",")):
        df = ddd_panel(n, a.periods, a.cohorts)
        for task in a.tasks.split(","):
            kw: dict[str, object] = {"covariates": ["x1"], "method": "dr"} if task == "cov" else {}
            res, es = run_didx(df, **kw)
            m = measure(lambda df=df, kw=kw: run_didx(df, **kw), repeat=a.repeat)
            print(json.dumps({"impl": "didx", "task": f"ddd.{task}", "n_units": n, "n_periods": a.periods,
                              "n_rows": len(df), "n_cells": len(res.terms) - 1, "att_simple": res.estimate,
                              "es_average": es.estimate, "es_se": es.std_error,
                              **{k: round(v, 3) for k, v in m.items()}}), flush=True)
            if n in peers:
                _, pes = run_moderndid(df, task == "cov")
                pm = measure(lambda df=df, task=task: run_moderndid(df, task == "cov"), repeat=1)
                print(json.dumps({"impl": "moderndid", "task": f"ddd.{task}", "n_units": n,
                                  "n_periods": a.periods, "es_average": float(pes.overall_att),
                                  "es_se_without_weight_term": float(pes.overall_se),
                                  **{k: round(v, 3) for k, v in pm.items()}}), flush=True)
        del df


if __name__ == "__main__":
    main()
