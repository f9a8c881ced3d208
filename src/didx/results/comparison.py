"""Several event studies side by side: one tidy table, one summary with what each estimator's pre-period
coefficients mean, one overlaid plot. Built by :func:`didx.event_study` with ``estimator=[...]`` or ``"all"``
(:mod:`didx.comparison`); it only reads the results it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from didx.results.base import Summary, integer_if_whole
from didx.results.event import EventStudyResult


@dataclass(frozen=True, eq=False)
class EventStudyComparison:
    """Several event-study estimators fitted to the same data with the same ``ref`` and ``window``.

    Attributes
    ----------
    results : estimator name -> its :class:`~didx.results.event.EventStudyResult`.
    calls : estimator name -> the keyword arguments it was called with (besides the data).
    notes : estimator name -> notes on how the common options were applied.
    reference, window : the common ``ref`` (tuple) and ``window``.
    labels : estimator name -> its label in plots; window_rules : how each applied ``window``.
    """

    results: Mapping[str, EventStudyResult]
    calls: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reference: tuple[float, ...] = (-1.0,)
    window: tuple[float, float] | None = None
    outcome: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    window_rules: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> EventStudyResult:
        return self.results[name]

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One table, one row per estimator and event time: ``estimator, term, event_time, estimate, std_error,
        conf_low, conf_high`` and ``reference`` (True for a reference period, normalised to 0, not estimated).

        Terms without an event time (overall ATTs, covariates) are left out; read them from ``.results``.
        """
        frames = []
        for name, res in self.results.items():
            t = res.event_table(conf_level)
            refs = set(res.reference_periods)
            is_ref = ~t["term"].isin(res.terms).to_numpy() & t["event_time"].astype(float).isin(refs).to_numpy()
            frames.append(pd.DataFrame({
                "estimator": name, "term": t["term"].to_numpy(),
                "event_time": integer_if_whole("event_time", t["event_time"].to_numpy(float)),
                "estimate": t["estimate"].to_numpy(float), "std_error": t["std_error"].to_numpy(float),
                "conf_low": t["conf_low"].to_numpy(float), "conf_high": t["conf_high"].to_numpy(float),
                "reference": is_ref,
            }))
        return pd.concat(frames, ignore_index=True)

    def wide(self, column: str = "estimate") -> pd.DataFrame:
        """``column`` of :meth:`tidy` as an event time x estimator table."""
        t = self.tidy()
        return t.pivot(index="event_time", columns="estimator", values=column)[list(self.results)]

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """All event studies on one Axes (:func:`didx.plot_event_studies`: each estimator shifted by a small
        dodge, hollow points at its reference periods); keyword arguments go to it (``conf_level``, ``uniform``,
        ``dodge``, ``title``, ``labels``). With more than three estimators the legend goes below the Axes, in
        columns. Returns the Axes."""
        from didx.results.plot import plot_event_studies

        kwargs.setdefault("labels", [self.labels.get(n, n) for n in self.results])
        ax = plot_event_studies(list(self.results.values()), ax=ax, **kwargs)
        if self.outcome:
            ax.set_ylabel(f"Effect on {self.outcome}")
        if len(self.results) > 3:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize="small", frameon=False)
        return ax

    def summary(self, digits: int = 4) -> Summary:
        """The common options, then per estimator: the call, how ``window`` was applied, how its pre-period
        coefficients are defined, its sample and SEs, the pre-trend test; then the estimates side by side."""
        ref = ", ".join(f"{r:g}" for r in self.reference)
        win = "all event times" if self.window is None else f"[{self.window[0]:g}, {self.window[1]:g}]"
        lines = [f"Event-study comparison: {len(self.results)} estimators"
                 + (f" (outcome {self.outcome})" if self.outcome else ""),
                 f"Reference period(s): k = {ref}    Window: {win}",
                 "Event time k = time - cohort for every estimator. Post-period coefficients estimate the same "
                 "kind of effect; pre-period coefficients are defined differently:", ""]
        for name, res in self.results.items():
            lines.append(f"[{name}] {res.estimator}")
            call = ", ".join(f"{k}={v!r}" for k, v in self.calls.get(name, {}).items())
            lines.append(f"  call: {call}")
            lines.append(f"  pre-period coefficients: {res.pre_period_meaning}")
            if name in self.window_rules:
                lines.append(f"  window: {self.window_rules[name]}")
            lines.append(f"  sample: {res.sample.n_obs} observations; SEs: {res.inference.vcov_type}")
            if res.sample.dropped:
                lines.extend(f"  dropped: {d.describe()}" for d in res.sample.dropped)
            lines.extend(f"  note: {n}" for n in self.notes.get(name, ()))
            if res.pretrend_terms():
                lines.append(f"  {res.pretrend_test()}")
            lines.append("")
        est = self.wide("estimate")
        se = self.wide("std_error")
        header = ["event time", *est.columns]
        rows = []
        for k in est.index:
            rows.append([f"{k:g}", *(_fmt(v, digits) for v in est.loc[k])])
            rows.append(["", *(f"({_fmt(v, digits)})" if np.isfinite(v) else "" for v in se.loc[k])])
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines.append("Estimates (standard errors); reference periods shown as 0 (0):")
        lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        lines.extend("  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
        return Summary("\n".join(lines))

    def __repr__(self) -> str:
        return f"EventStudyComparison({', '.join(self.results)})"


def _fmt(v: float, digits: int) -> str:
    return "" if not np.isfinite(v) else f"{v:.{digits}f}"
