"""The mpdta workflow as one shareable HTML report (run by `make check-report`, which screenshots it in Chromium).

TWFE, Callaway & Sant'Anna (simple aggregation), Sun-Abraham, BJS imputation, every event-study estimator side by
side (`event_study(estimator="all")`), the Goodman-Bacon decomposition and a HonestDiD sensitivity analysis.

Usage: python examples/report_mpdta.py [out/report_mpdta.html]
"""

from __future__ import annotations

import os
import sys

import didx


def main(path: str) -> None:
    mpdta = didx.datasets.load("mpdta")
    mpdta["treated"] = ((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int)
    kw = {"y": "lemp", "unit": "countyreal", "time": "year"}
    sa = didx.sun_abraham(mpdta, **kw, cohort="first.treat")
    results = {
        "TWFE": didx.twfe(mpdta, **kw, treat="treated"),
        "Callaway-Sant'Anna": didx.att_gt(mpdta, **kw, cohort="first.treat").aggregate("simple"),
        "Sun-Abraham": sa,
        "BJS imputation": didx.imputation(mpdta, **kw, cohort="first.treat"),
        "Event studies compared": didx.event_study(mpdta, **kw, cohort="first.treat", estimator="all",
                                                   window=(-1, 1)),
        "Bacon decomposition": didx.bacon(mpdta, **kw, treat="treated"),
        "HonestDiD (Sun-Abraham, first post period)": didx.honest_did(sa, M=[0.0, 0.01, 0.02, 0.03]),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    out = didx.report(results, path=path, title="Minimum wage and teen employment (mpdta)")
    print(f"Report written: {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/report_mpdta.html")
