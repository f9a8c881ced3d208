"""Speed of ``didx.honest_did`` beside moderndid 0.2.0's HonestDiD port, in the same process, on the same inputs.

Cases (issue 15):

* HonestDiD's README (Medicaid, ``ehec``): the TWFE event study (5 pre, 2 post) estimated by didx from
  ``didx.datasets.load("ehec")``; the six smoothness intervals (FLCI, M = 0, 0.01, ..., 0.05) and the four
  relative-magnitude intervals (C-LF, Mbar = 0.5, 1, 1.5, 2), for the first post period and for the average;
  each interval is one call (the cost of drawing the sensitivity curve point by point).
* The Lovenheim-Willen example of HonestDiD's paper (``/work/shared/reference/honestdid_LWdata_EventStudy.json``:
  9 pre, 23 post, reference -2): relative magnitudes for three Mbar (0.5, 1, 2), first post period, in one call.
  HonestDiD counts periods by position (the 9 before the reference are pre, the 23 after are post, -1 included);
  didx gets the same layout from the event times shifted by +1 (reference -1).

Targets: every README interval under 1 s; the LW three-Mbar call under 5 s. Wall and CPU seconds are reported (the
machine is shared: 2 cores, several jobs; CPU seconds are the steadier measure). The first call in a process also
regenerates R's ``set.seed(0); rnorm(1e6)`` (HonestDiD's folded-normal and LF draws), timed separately.

Run from the repository root, with the peers venv (moderndid 0.2.0 with ``cvxpy[ecos]``) and this tree's didx::

    PYTHONPATH=src /work/peers-venv/bin/python benchmarks/honest_did.py            # didx and moderndid
    PYTHONPATH=src /work/peers-venv/bin/python benchmarks/honest_did.py --didx-only
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import didx

LW_PATH = Path("/work/shared/reference/honestdid_LWdata_EventStudy.json")
README_M = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
README_MBAR = [0.5, 1.0, 1.5, 2.0]
LW_MBAR = [0.5, 1.0, 2.0]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def readme_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ehec = didx.datasets.load("ehec")
    df = ehec[(ehec.year < 2016) & (ehec.yexp2.isna() | (ehec.yexp2 != 2015))].copy()
    df["cohort"] = np.where(df.yexp2 == 2014, 2014.0, np.nan)
    es = didx.event_study(df, y="dins", unit="stfips", time="year", cohort="cohort", cluster="stfips")
    idx = np.flatnonzero(np.isfinite(es.event_times) & ~np.isin(es.event_times, es.reference_periods))
    return es.coef[idx], es.vcov_matrix[np.ix_(idx, idx)], es.event_times[idx]


def lw_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lw = json.loads(LW_PATH.read_text())
    t = np.asarray(lw["timeVec"], dtype=float) + 1.0  # HonestDiD's positional layout: reference -2 -> -1
    return np.asarray(lw["betahat"]), np.asarray(lw["sigma"]), t


def _didx(beta: np.ndarray, sigma: np.ndarray, t: np.ndarray, restriction: str, m: list[float],
          target: str) -> list[tuple[float, float]]:
    res = didx.honest_did(beta=beta, sigma=sigma, event_time=t, reference=-1, restriction=restriction, M=m,
                          target=target)
    return [(float(lo), float(hi)) for lo, hi in zip(res.conf_low, res.conf_high, strict=True)]


def _moderndid(beta: np.ndarray, sigma: np.ndarray, t: np.ndarray, restriction: str, m: list[float],
               target: str) -> list[tuple[float, float]]:
    from moderndid.didhonest import create_sensitivity_results_rm, create_sensitivity_results_sm

    n_pre, n_post = int(np.sum(t < 0)), int(np.sum(t >= 0))
    l_vec = np.eye(n_post)[0] if target == "first" else np.full(n_post, 1.0 / n_post)
    if restriction == "smoothness":
        df = create_sensitivity_results_sm(beta, sigma, n_pre, n_post, method="FLCI", m_vec=m, l_vec=l_vec)
    else:
        df = create_sensitivity_results_rm(beta, sigma, n_pre, n_post, m_bar_vec=m, l_vec=l_vec)
    return [(float(lo), float(hi)) for lo, hi in zip(df["lb"], df["ub"], strict=True)]


def run(with_moderndid: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    beta, sigma, t = readme_inputs()
    _, w, c = _timed(lambda: _didx(beta, sigma, t, "smoothness", [0.01], "first"))
    print(f"first call (R's 1e6 normal draws regenerated, then one FLCI): {w:.2f} s wall, {c:.2f} s CPU")
    impls: list[tuple[str, Callable[..., list[tuple[float, float]]]]] = [("didx", _didx)]
    if with_moderndid:
        impls.append(("moderndid 0.2.0", _moderndid))
        _timed(lambda: _moderndid(beta, sigma, t, "smoothness", [0.01], "first"))  # imports, jit, caches
    cases = [("README", beta, sigma, t, r, [m], target)
             for target in ("first", "average")
             for r, grid in (("smoothness", README_M), ("relative_magnitude", README_MBAR)) for m in grid]
    lw_beta, lw_sigma, lw_t = lw_inputs() if LW_PATH.exists() else (None, None, None)
    if lw_beta is not None:
        cases.append(("Lovenheim-Willen", lw_beta, lw_sigma, lw_t, "relative_magnitude", LW_MBAR, "first"))
    for label, b, s, tt, restriction, m, target in cases:
        for name, fn in impls:
            out, w, c = _timed(lambda fn=fn, b=b, s=s, tt=tt, r=restriction, m=m, tg=target: fn(b, s, tt, r, m, tg))
            rows.append({"case": label, "restriction": restriction, "target": target, "M": m, "impl": name,
                         "wall_s": w, "cpu_s": c, "intervals": out})
            print(f"{label:16s} {restriction:18s} {target:7s} M={m!s:16s} {name:16s} {w:7.2f} s wall {c:7.2f} s "
                  f"CPU  {[(round(lo, 6), round(hi, 6)) for lo, hi in out]}", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per case, didx and moderndid side by side, and the largest bound difference."""
    out = ["| case | restriction | target | M | didx wall / CPU s | moderndid wall / CPU s | max abs bound diff |",
           "|---|---|---|---|---:|---:|---:|"]
    keyed: dict[tuple[str, str, str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        keyed.setdefault((r["case"], r["restriction"], r["target"], str(r["M"])), {})[r["impl"]] = r
    for (case, restriction, target, m), by in keyed.items():
        d, o = by.get("didx"), by.get("moderndid 0.2.0")
        diff = ("" if d is None or o is None else
                f"{np.max(np.abs(np.asarray(d['intervals']) - np.asarray(o['intervals']))):.1e}")
        cell = lambda x: "" if x is None else f"{x['wall_s']:.2f} / {x['cpu_s']:.2f}"  # noqa: E731
        out.append(f"| {case} | {restriction} | {target} | {m} | {cell(d)} | {cell(o)} | {diff} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--didx-only", action="store_true", help="skip moderndid")
    ap.add_argument("--json", type=Path, help="write the rows to this file")
    args = ap.parse_args()
    rows = run(with_moderndid=not args.didx_only)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
