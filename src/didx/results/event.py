"""Event-study results: coefficients indexed by event time, shared by every dynamic estimator.

Any result whose ``term_info`` has an ``event_time`` column can be an :class:`EventStudyResult`: it gains the
joint pre-trend test, uniform (sup-t) bands and the event-study plot, all computed from the stored estimates and
covariance without refitting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError
from didx.results.base import Result, WaldTest


@dataclass(frozen=True, eq=False)
class EventStudyResult(Result):
    """A result with per-term ``event_time`` (and possibly other terms, e.g. covariates, with NaN event time).

    ``extras`` may carry ``"reference"``: the event times normalised to zero (plotted at 0 with no interval).
    """

    @property
    def event_times(self) -> np.ndarray:
        return np.asarray(self.term_info["event_time"], dtype=float)

    @property
    def reference_periods(self) -> tuple[float, ...]:
        return tuple(float(x) for x in self.extras.get("reference", ()))

    def pretrend_terms(self) -> tuple[str, ...]:
        et = self.event_times
        return tuple(t for t, e in zip(self.terms, et, strict=True) if np.isfinite(e) and e < 0)

    def pretrend_test(self) -> WaldTest:
        """Joint Wald test that every pre-treatment (lead) coefficient is zero.

        Chi-square with as many degrees of freedom as leads, and F with the result's residual degrees of freedom
        (``G - 1`` when clustered, as fixest's ``wald()``).
        """
        leads = self.pretrend_terms()
        if not leads:
            raise DesignError(
                f"{self.estimator}: there are no pre-treatment coefficients to test (every estimated event time "
                f"is >= 0). Fix: widen the window or choose a reference period further back."
            )
        return self.wald(list(leads), label="Pre-trend test (joint Wald)")

    def _summary_extra(self) -> list[str]:
        if self.pretrend_terms():
            return [str(self.pretrend_test())]
        return []

    def with_uniform_bands(self, *, n_draws: int = 100_000, seed: int | None = 0) -> EventStudyResult:
        """A copy whose intervals for the event-time terms are uniform (sup-t) bands.

        ``tidy()``, ``event_table()``, ``summary()`` and the plot then show bands that cover all event-time
        coefficients jointly at ``conf_level`` (see :func:`didx.uniform_bands`); other terms stay pointwise.
        ``summary()`` prints the band type.
        """
        from didx.inference.bands import sup_t_critical_value

        sup_t_critical_value(np.eye(2), n_draws=n_draws, seed=seed)  # validates n_draws before storing it
        k = int(np.isfinite(self.event_times).sum())
        band = (f"uniform (sup-t) over the {k} event-time coefficients ({n_draws} draws, seed {seed}); "
                f"other terms pointwise")
        inf = dataclasses.replace(self.inference, band=band)
        extras = {**self.extras, "uniform_band": (int(n_draws), seed)}
        return dataclasses.replace(self, inference=inf, extras=extras)

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """As :meth:`Result.tidy`; after :meth:`with_uniform_bands` the event-time rows carry the sup-t band."""
        t = super().tidy(conf_level)
        spec = self.extras.get("uniform_band")
        if spec is None or not self.inference.band.startswith("uniform"):
            return t
        from didx.inference.bands import uniform_bands

        band = uniform_bands(self, conf_level=conf_level, n_draws=spec[0], seed=spec[1])
        rows = t["term"].isin(band.terms).to_numpy()
        order = [band.terms.index(x) for x in t.loc[rows, "term"]]
        t.loc[rows, "conf_low"] = band.conf_low[order]
        t.loc[rows, "conf_high"] = band.conf_high[order]
        return t

    def event_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Tidy rows with an event time, plus the reference period(s) as zero rows (as plotted)."""
        t = self.tidy(conf_level)
        t = t[np.isfinite(t["event_time"].astype(float))].copy()
        refs = [r for r in self.reference_periods if r not in set(t["event_time"].astype(float))]
        if refs:
            ref_rows = pd.DataFrame({"term": [f"reference {r:g}" for r in refs], "estimate": 0.0,
                                     "std_error": 0.0, "statistic": np.nan, "p_value": np.nan,
                                     "conf_low": 0.0, "conf_high": 0.0, "event_time": refs})
            t = pd.concat([t, ref_rows], ignore_index=True)
        return t.sort_values("event_time", kind="stable").reset_index(drop=True)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """The event-study plot (see :func:`didx.results.plot.plot_event_study`); returns the Axes."""
        from didx.results.plot import plot_event_study

        return plot_event_study(self, ax=ax, **kwargs)
