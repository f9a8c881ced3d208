"""Regenerate tests/reference/ddd.json with moderndid 0.2.0 (the peer implementation of R triplediff's ddd).

Run with the peers' python (moderndid installed), from the repository root:
    /work/peers-venv/bin/python tests/reference/ddd_moderndid.py /work/shared/data/cai2016.csv.gz
Writes tests/reference/ddd.json and tests/reference/ddd_sim.csv (moderndid's staggered DDD simulation, saved so
that the tests do not need moderndid).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")
import moderndid as md  # noqa: E402
from moderndid.didtriple.dgp import gen_dgp_mult_periods  # noqa: E402

HERE = Path(__file__).parent


def cai_balanced(path: str) -> pd.DataFrame:
    """cai2016 households observed in all 9 years; group = 2003 for the treated region, 0 otherwise; hhsize0 and
    age0 = the household's 2000 values (time-invariant covariates, as R triplediff requires)."""
    d = pd.read_csv(path)
    b = d[d.groupby("hhno").year.transform("size") == 9].copy()
    b["group"] = np.where(b.treatment == 1, 2003, 0)
    first = b.sort_values(["hhno", "year"]).groupby("hhno")[["hhsize", "age"]].transform("first")
    b["hhsize0"] = first.hhsize
    b["age0"] = first.age
    return b


def fl(x) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(x, dtype=float)]


def rc_rows(d: pd.DataFrame, unit: str, time: str) -> pd.DataFrame:
    """A deterministic 70% of the rows, each its own observation (repeated cross sections): row = 0..n-1."""
    keep = (d[unit] * 7 + d[time]) % 10 >= 3
    return d[keep].reset_index(drop=True).assign(row=lambda x: np.arange(len(x)))


def multi(data: pd.DataFrame, y: str, idname: str, tname: str, gname: str, pname: str, xf: str | None,
          control: str, bp: str, meth: str, aggs: bool, panel: bool = True) -> dict:
    r = md.ddd(data=data, yname=y, tname=tname, idname=idname, gname=gname, pname=pname, xformla=xf,
               control_group=control, base_period=bp, est_method=meth, panel=panel)
    out = {"call": f"moderndid.ddd(data, yname={y!r}, tname={tname!r}, idname={idname!r}, gname={gname!r}, "
                   f"pname={pname!r}, xformla={xf!r}, control_group={control!r}, base_period={bp!r}, "
                   f"est_method={meth!r}, panel={panel})",
           "group": fl(r.groups), "time": fl(r.times), "att": fl(r.att), "se": fl(r.se)}
    if aggs:
        for typ in ("eventstudy", "simple", "group", "calendar"):
            a = md.agg_ddd(r, type=typ, boot=False, cband=False)
            out["agg_" + typ] = {"overall_att": float(a.overall_att), "overall_se": float(a.overall_se),
                                 "egt": None if a.egt is None else fl(a.egt),
                                 "att_egt": None if a.att_egt is None else fl(a.att_egt),
                                 "se_egt": None if a.se_egt is None else fl(a.se_egt)}
    return out


def main(path: str) -> None:
    b = cai_balanced(path)
    ref: dict = {"provenance": {
        "package": f"moderndid {md.__version__} (Python port of R triplediff)",
        "script": "tests/reference/ddd_moderndid.py",
        "data_cai": "cai2016.csv.gz (moderndid's example data): households observed in all 9 years (3298), "
                    "group = 2003 if treatment == 1 else 0, partition = sector; hhsize0/age0 = 2000 values",
        "data_rc": "repeated cross sections: rc_rows() keeps the rows with (unit * 7 + period) % 10 >= 3, each "
                   "row its own observation",
        "data_sim": "ddd_sim.csv = moderndid.didtriple.dgp.gen_dgp_mult_periods(n=500, dgp_type=1, "
                    "random_state=42)['data'] (3 periods, cohorts 2, 3 and never)",
        "aggregations": "moderndid.agg_ddd(result, type=..., boot=False, cband=False) (analytic SEs)",
        "conventions": "two-period SE = sd(IF)/sqrt(n) (R att_dr); multi-period SE = sqrt(sum IF^2)/n except GMM "
                       "cells, whose SE is sqrt(1/(n 1'Omega^-1 1)) (triplediff)",
    }}
    two = b[b.year.isin([2002, 2003])]
    for xf in (None, "~ hhsize0 + age0"):
        for meth in ("dr", "ipw", "reg"):
            r = md.ddd(data=two, yname="checksaving_ratio", tname="year", idname="hhno", gname="group",
                       pname="sector", xformla=xf, est_method=meth)
            ref[f"two_period_{'cov' if xf else 'nocov'}_{meth}"] = {
                "call": f"moderndid.ddd(cai years 2002-2003, yname='checksaving_ratio', tname='year', "
                        f"idname='hhno', gname='group', pname='sector', xformla={xf!r}, est_method={meth!r})",
                "att": float(r.att), "se": float(r.se), "did_atts": {k: float(v) for k, v in r.did_atts.items()}}
    for xf in (None, "~ hhsize0 + age0"):
        for meth in ("dr", "ipw", "reg"):
            for bp in ("universal", "varying"):
                ref[f"cai_{'cov' if xf else 'nocov'}_{meth}_{bp}"] = multi(
                    b, "checksaving_ratio", "hhno", "year", "group", "sector", xf, "nevertreated", bp, meth,
                    aggs=bp == "universal")
    sim = gen_dgp_mult_periods(n=500, dgp_type=1, random_state=42)["data"].to_pandas()
    sim.to_csv(HERE / "ddd_sim.csv", index=False)
    for xf in (None, "~ cov1 + cov2 + cov3 + cov4"):
        for control in ("nevertreated", "notyettreated"):
            for bp in ("universal", "varying"):
                ref[f"sim_{'cov' if xf else 'nocov'}_{control}_{bp}"] = multi(
                    sim, "y", "id", "time", "group", "partition", xf, control, bp, "dr", aggs=bp == "universal")
    rc_two = rc_rows(two, "hhno", "year")
    for xf in (None, "~ hhsize0 + age0"):
        for meth in ("dr", "ipw", "reg"):
            r = md.ddd(data=rc_two, yname="checksaving_ratio", tname="year", idname="row", gname="group",
                       pname="sector", xformla=xf, est_method=meth, panel=False)
            ref[f"two_period_rc_{'cov' if xf else 'nocov'}_{meth}"] = {
                "call": f"moderndid.ddd(rc_rows(cai years 2002-2003), yname='checksaving_ratio', tname='year', "
                        f"idname='row', gname='group', pname='sector', xformla={xf!r}, est_method={meth!r}, "
                        f"panel=False)",
                "att": float(r.att), "se": float(r.se)}
    sim_rc = rc_rows(sim, "id", "time")
    for xf in (None, "~ cov1 + cov2"):
        for control in ("nevertreated", "notyettreated"):
            for bp in ("universal", "varying"):
                ref[f"sim_rc_{'cov' if xf else 'nocov'}_{control}_{bp}"] = multi(
                    sim_rc, "y", "row", "time", "group", "partition", xf, control, bp, "dr", aggs=False, panel=False)
    (HERE / "ddd.json").write_text(json.dumps(ref, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
