"""Event-study results: coefficients indexed by event time, shared by every dynamic estimator.

:class:`EventStudyResult` is the one typed input that pre-trend tests, sensitivity analysis, power calculations,
plots and comparisons read. Every dynamic estimator returns one, carrying:

* ``event_times`` (per term; NaN for non-event terms such as covariates) and ``reference_periods`` (normalised
  to zero, plotted at 0 with no interval);
* ``pre_period_meaning``: what a pre-period coefficient is for this estimator (they differ: Roth 2024);
* the full covariance ``vcov_matrix`` and ``cross_covariance``: False where the estimator does not estimate the
  covariance between pre- and post-period coefficients (it is then zero in the matrix, and said so);
* ``n_pre`` / ``n_post``, ``pre_terms`` / ``post_terms``;
* ``aggregate(kind)``: a linear map of the coefficients with its covariance (``"post"``, ``"pre"``, or weights);
* ``influence_functions()`` where the estimator stores them.

Joint tests, bands and plots are computed from the current covariance (after ``with_vcov`` too), never stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError, InvalidOptionError
from didx.results.base import Result, WaldTest, integer_if_whole


@dataclass(frozen=True, eq=False)
class EventStudyResult(Result):
    """A result with per-term ``event_time`` (and possibly other terms, e.g. covariates, with NaN event time).

    ``extras`` may carry ``"reference"``: the event times normalised to zero (plotted at 0 with no interval).
    ``pre_period_meaning`` says what a lead coefficient is for this estimator; ``cross_covariance`` is False where
    the covariance between pre- and post-period coefficients is not estimated (zero in ``vcov_matrix``).
    """

    pre_period_meaning: str = ""
    cross_covariance: bool = True

    @property
    def event_times(self) -> np.ndarray:
        return np.asarray(self.term_info["event_time"], dtype=float)

    @property
    def reference_periods(self) -> tuple[float, ...]:
        return tuple(float(x) for x in self.extras.get("reference", ()))

    def pretrend_terms(self) -> tuple[str, ...]:
        et = self.event_times
        return tuple(t for t, e in zip(self.terms, et, strict=True) if np.isfinite(e) and e < 0)

    @property
    def pre_terms(self) -> tuple[str, ...]:
        """Terms with a negative event time (leads), in order."""
        return self.pretrend_terms()

    @property
    def post_terms(self) -> tuple[str, ...]:
        """Terms with an event time >= 0 (lags), in order."""
        et = self.event_times
        return tuple(t for t, e in zip(self.terms, et, strict=True) if np.isfinite(e) and e >= 0)

    @property
    def n_pre(self) -> int:
        return len(self.pre_terms)

    @property
    def n_post(self) -> int:
        return len(self.post_terms)

    def aggregate(self, kind: str | Mapping[float, float] | Sequence[float] | np.ndarray = "post") -> Result:
        """A linear combination of the event-time coefficients, with its covariance ``a' V a``.

        ``"post"``: the equally weighted average of the post-period coefficients (e >= 0); ``"pre"``: of the leads;
        a mapping ``{event_time: weight}``; or a weight vector over ``post_terms``. Estimators add their own
        kinds (e.g. Sun-Abraham's ``"att"``, Callaway-Sant'Anna's ``"simple"``).
        """
        a, label = self._weights(kind)
        from didx.inference.contract import LinearMapSource

        src = self._source
        A = a[None, :]
        return Result(
            estimator=f"{self.estimator} — {label}", terms=(label,), coef=A @ self.coef,
            vcov_matrix=A @ self.vcov_matrix @ A.T, headline=label, inference=self.inference, sample=self.sample,
            design=self.design, notes=self.notes,
            _source=None if src is None or self._maps_source() else LinearMapSource(src, A),
        )

    def _maps_source(self) -> bool:
        """True when ``_source`` gives the covariance of other estimates than ``coef`` (then no with_vcov on an
        aggregate built here)."""
        return False

    def _weights(self, kind: str | Mapping[float, float] | Sequence[float] | np.ndarray) -> tuple[np.ndarray, str]:
        et = self.event_times
        a = np.zeros(len(self.terms))
        if isinstance(kind, str):
            if kind not in ("post", "pre"):
                raise InvalidOptionError(
                    f"aggregate(): kind={kind!r} is not available for {self.estimator}. Choose 'post' (average of "
                    f"the e >= 0 coefficients), 'pre' (average of the leads), a mapping {{event_time: weight}} or a "
                    f"weight vector over the post-period terms."
                )
            terms = self.post_terms if kind == "post" else self.pre_terms
            if not terms:
                raise DesignError(f"aggregate(): {self.estimator} has no {kind}-period coefficients to average.")
            for t in terms:
                a[self._index(t)] = 1.0 / len(terms)
            return a, f"average {'post' if kind == 'post' else 'pre'}-period effect"
        if isinstance(kind, Mapping):
            for e, wt in kind.items():
                if not isinstance(e, int | float | np.number) or not isinstance(wt, int | float | np.number):
                    raise InvalidOptionError(
                        f"aggregate(): a mapping must be {{event_time: weight}} with numbers; got {e!r}: {wt!r}. "
                        f"Fix: e.g. {{0: 0.5, 1: 0.5}}."
                    )
                hit = np.flatnonzero(et == float(e))
                if hit.size != 1:
                    raise InvalidOptionError(
                        f"aggregate(): event time {e!r} is not an estimated event time of {self.estimator} "
                        f"(estimated: {[float(x) for x in et[np.isfinite(et)]]})."
                    )
                a[hit[0]] = float(wt)
            return a, "weighted combination of event times"
        post = self.post_terms
        vec = np.asarray(kind)
        if vec.dtype.kind not in "biuf" or vec.shape != (len(post),):
            raise InvalidOptionError(
                f"aggregate(): a weight vector must have one number per post-period term ({len(post)}); got shape "
                f"{vec.shape}, dtype {vec.dtype}."
            )
        for t, x in zip(post, vec.astype(float), strict=True):
            a[self._index(t)] = x
        return a, "weighted combination of post-period effects"

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
        leads = self.pretrend_terms()
        if not leads:
            return []
        reason = self._untestable(leads)
        if reason is not None:
            out = [f"Pre-trend test (joint Wald) of {', '.join(leads)} = 0: not computable ({reason})"]
        else:
            out = [str(self.pretrend_test())]
        if self.pre_period_meaning:
            out.append(f"What a pre-period coefficient is here: {self.pre_period_meaning}")
        return out

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
            for col in ("event_time", "n"):  # the concatenation made them float: integers again where whole
                if col in t:
                    t[col] = integer_if_whole(col, t[col].to_numpy(float, na_value=np.nan))
        return t.sort_values("event_time", kind="stable").reset_index(drop=True)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """The event-study plot (see :func:`didx.results.plot.plot_event_study`); returns the Axes."""
        from didx.results.plot import plot_event_study

        return plot_event_study(self, ax=ax, **kwargs)
