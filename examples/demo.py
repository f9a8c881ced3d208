"""The didx demo, run by `make demo`: Card & Krueger's 2x2 end to end, then an event study on mpdta.

Prints the 2x2 table, the regression with its standard errors, and writes figures to out/.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import didx

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    ck = didx.datasets.load("card_krueger")

    print("Card & Krueger (1994): New Jersey's minimum-wage increase, fast-food employment (FTE)\n")
    res = didx.did2x2(ck, y="fte", treat="nj", post="d", cluster="store_id")
    print(res.table)
    print()
    print(res.summary())
    print()
    iid = res.with_vcov("iid")
    hc1 = res.with_vcov("HC1")
    fd = didx.did2x2(ck, y="fte", treat="nj", post="d", unit="store_id", first_difference=True)
    print("The same DiD under several standard errors, and the balanced first-difference version:\n")
    print(didx.compare([iid, hc1, res, fd], names=["iid", "HC1", "CR1 store", "FD, HC1"]))
    print()

    ax = res.plot(labels=("New Jersey", "Pennsylvania"), period_labels=("Feb 1992", "Nov 1992"))
    ax.figure.tight_layout()
    path = os.path.join(OUT, "card_krueger_did.png")
    ax.figure.savefig(path, dpi=120)
    plt.close(ax.figure)
    print(f"Figure written: {path}")

    mpdta = didx.datasets.load("mpdta")
    print("\nStaggered minimum-wage increases (mpdta): TWFE and its event study\n")
    tw = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    print(repr(tw))
    if hasattr(didx, "event_study"):
        es = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
        print(es.tidy()[["term", "event_time", "estimate", "std_error", "conf_low", "conf_high"]].to_string())
        print(es.pretrend_test())
        ax = es.plot()
        path = os.path.join(OUT, "mpdta_event_study.png")
        ax.figure.savefig(path, dpi=120)
        plt.close(ax.figure)
        print(f"Figure written: {path}")


if __name__ == "__main__":
    main()
