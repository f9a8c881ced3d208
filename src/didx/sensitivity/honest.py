"""Robust confidence intervals under bounded violations of parallel trends (Rambachan & Roth 2023), as R
``HonestDiD``'s ``createSensitivityResults`` (smoothness) and ``createSensitivityResults_relativeMagnitudes``.

Restrictions on the trend violation ``delta`` (zero at the reference period):

* ``restriction="smoothness"``: ``Delta^SD(M)``, second differences at most ``M`` in absolute value;
* ``restriction="relative_magnitude"``: ``Delta^RM(Mbar)`` (``bound="deviation"``), post-period first differences
  at most ``Mbar`` times the largest pre-period one; ``bound="deviation_from_linear"`` is ``Delta^SDRM(Mbar)``,
  the same with second differences (HonestDiD's ``bound = "deviation from linear trend"``);
* ``restriction="combined"``: ``Delta^SDRM(Mbar)`` (smoothness relative to the pre-period's largest second
  difference);
* ``bias_sign=`` / ``monotonicity=`` add HonestDiD's sign (``Delta^SDPB``, ``Delta^RMNB``, ...) or shape
  (``Delta^SDI``, ``Delta^RMD``, ...) rows.

Methods (``ci=``): the FLCI (``didx.sensitivity._flci``), and the conditional test of Andrews, Roth & Pakes with
its least-favorable ("C-LF") and FLCI ("C-F") hybrids (``didx.sensitivity._arp``), inverted on HonestDiD's grid;
``ci=None`` is HonestDiD's default (``didx.sensitivity._methods``).

Reference: Rambachan, A. & Roth, J. (2023). A More Credible Approach to Parallel Trends. *Review of Economic
Studies* 90(5), 2555-2591.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.stats import norm

from didx._errors import DesignError, InvalidOptionError
from didx.results.plot import check_ax
from didx.sensitivity._flci import FUNC, _r_normal_draws
from didx.sensitivity._methods import Interval, Method, interval, resolve
from didx.sensitivity.pretrends import _resolve_inputs

__all__ = ["HonestDiDResult", "OriginalInterval", "_r_normal_draws", "honest_did"]

RESTRICTIONS = ("smoothness", "relative_magnitude", "combined")

ArrayLike = Sequence[float] | np.ndarray


# --------------------------------------------------------------------------------------------------------------
# Options and the result
# --------------------------------------------------------------------------------------------------------------


def _target_weights(target: Any, post_times: np.ndarray) -> tuple[np.ndarray, str]:
    T = post_times.size
    if isinstance(target, str):
        if target == "first":
            return np.eye(T)[0], f"first post period (event time {post_times[0]:g})"
        if target == "average":
            return np.full(T, 1.0 / T), f"average of the {T} post periods"
        raise InvalidOptionError(
            f"{FUNC}(): target={target!r} is not known. Fix: 'first', 'average', a post-period event time "
            f"({post_times.tolist()}), or a weight vector of length {T}."
        )
    if isinstance(target, int | float | np.integer | np.floating) and not isinstance(target, bool):
        hit = np.flatnonzero(post_times == float(target))
        if hit.size != 1:
            raise InvalidOptionError(
                f"{FUNC}(): target={target!r} is not a post-period event time; post periods are "
                f"{post_times.tolist()}. Fix: pass one of them, 'first', 'average' or weights over them."
            )
        return np.eye(T)[hit[0]], f"event time {float(target):g}"
    w = np.asarray(target, dtype=float).ravel()
    if w.size != T or not np.all(np.isfinite(w)) or not np.any(w != 0.0):
        raise InvalidOptionError(
            f"{FUNC}(): target weights must be {T} finite numbers, not all zero, one per post period "
            f"{post_times.tolist()}; got {np.asarray(target).tolist()}. Fix: pass a weight vector of length {T}."
        )
    return w, f"weights {w.tolist()} over event times {post_times.tolist()}"


def _check_M(M: Any, restriction: str = "smoothness") -> np.ndarray:
    m = np.atleast_1d(np.asarray(M, dtype=float)).ravel()
    if m.size == 0 or not np.all(np.isfinite(m)) or np.any(m < 0.0):
        what, eg = (("a bound on the second differences of the trend", "M=[0, 0.01, 0.02]")
                    if restriction == "smoothness" else
                    ("Mbar, post-period trend changes relative to the largest pre-period one", "M=[0.5, 1, 2]"))
        raise InvalidOptionError(
            f"{FUNC}(): M must be finite and non-negative ({what}); got {np.asarray(M).tolist()}. Fix: e.g. {eg}."
        )
    return m


@dataclass(frozen=True)
class OriginalInterval:
    """The usual (parallel-trends) normal confidence interval of the target."""

    estimate: float
    std_error: float
    conf_low: float
    conf_high: float


BREAKDOWN_DOUBLINGS = 10  # the breakdown search range: up to 2^10 x its starting M (see HonestDiDResult)


@dataclass(frozen=True, eq=False)
class _Fit:
    """What one more interval needs: the ordered coefficients, covariance, target and method (for ``breakdown``)."""

    beta: np.ndarray
    sigma: np.ndarray
    n_pre: int
    l_vec: np.ndarray
    method: Method

    def fit(self, M: float, alpha: float) -> Interval:
        return interval(self.method, self.beta, self.sigma, self.n_pre, self.l_vec, M, alpha)

    def interval(self, restriction: str, M: float, alpha: float) -> tuple[float, float]:
        """The robust interval at one more ``M`` (``restriction`` is kept for callers; the method is fixed)."""
        out = self.fit(M, alpha)
        return out.low, out.high


def _distance_to_zero(lo: float, hi: float) -> float:
    """Signed distance of ``[lo, hi]`` to 0: positive when the interval excludes 0, <= 0 when it includes it."""
    return max(lo, -hi)


@dataclass(frozen=True, eq=False)
class HonestDiDResult:
    """Robust confidence intervals for the target, one per M. ``tidy()``, ``original``, ``summary()``, ``plot()``,
    and ``breakdown``: the smallest M at which the robust interval includes 0 (computed on first access).

    ``method``: HonestDiD's name (``FLCI``, ``C-LF``, ``C-F``, ``Conditional``); ``delta``: HonestDiD's name of the
    restriction set (``DeltaSD``, ``DeltaRMPB``, ``DeltaSDRM``, ...); ``options``: the options as passed;
    ``grid_bounds``: the test grid's bounds per M (empty for the FLCI); ``warning``: set when the estimator's
    pre-period coefficients are not deviations from parallel trends relative to the reference (with the fix);
    ``notes``: other remarks (an interval reaching an end of the grid, an empty interval, an ignored option)."""

    M: tuple[float, ...]
    conf_low: tuple[float, ...]
    conf_high: tuple[float, ...]
    original: OriginalInterval
    restriction: str
    method: str
    target: str
    target_weights: tuple[float, ...]
    alpha: float
    reference: float
    pre_event_times: tuple[float, ...]
    post_event_times: tuple[float, ...]
    source: str
    pre_period_meaning: str
    delta: str = ""
    options: tuple[tuple[str, str], ...] = ()
    grid_bounds: tuple[tuple[float, float], ...] = ()
    warning: str = ""
    notes: tuple[str, ...] = ()
    _fit: _Fit | None = field(default=None, repr=False, compare=False)

    def tidy(self) -> pd.DataFrame:
        """One row per M: ``M``, ``conf_low``, ``conf_high``, ``method`` and ``restriction`` (didx's words), and
        ``delta`` (HonestDiD's name of the set: ``DeltaSD``, ``DeltaRMPB``, ...)."""
        n = len(self.M)
        return pd.DataFrame({"M": list(self.M), "conf_low": list(self.conf_low), "conf_high": list(self.conf_high),
                             "method": [self.method] * n, "restriction": [self.restriction] * n,
                             "delta": [self.delta] * n})

    def summary(self) -> str:
        o = self.original
        lines = [
            "HonestDiD sensitivity analysis (Rambachan & Roth 2023)",
            f"  source: {self.source}",
            f"  restriction: {self.restriction}, {self.delta} ({_restriction_text(self.delta)})",
            f"  method: {self.method} ({_METHOD_TEXT[self.method]})   alpha: {self.alpha:g}",
            f"  target: {self.target}",
            f"  reference period: {self.reference:g}; pre-periods {list(self.pre_event_times)}, post-periods "
            f"{list(self.post_event_times)}",
            f"  original CI: {o.estimate:.6g} [{o.conf_low:.6g}, {o.conf_high:.6g}] (se {o.std_error:.6g})",
        ]
        if self.options:
            lines.append("  options: " + ", ".join(f"{k}={v}" for k, v in self.options))
        if self.grid_bounds and self.method != "FLCI":
            lo, hi = min(g[0] for g in self.grid_bounds), max(g[1] for g in self.grid_bounds)
            lines.append(f"  test grid: {self.options_dict.get('grid_points', '')} points on HonestDiD's bounds "
                         f"(from {lo:.6g} to {hi:.6g} over the M values)")
        if self.pre_period_meaning:
            lines.append(f"  pre-period coefficients: {self.pre_period_meaning}")
        if self.warning:
            lines.append(f"  WARNING: {self.warning}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        # the FLCI: the breakdown costs about 20 FLCI fits (under a second), so the summary computes it; the
        # conditional methods refit a test inversion per step, so it is reported only once `.breakdown` was read
        if self.method == "FLCI" or "_breakdown" in self.__dict__:
            lines.append(f"  breakdown: {self.breakdown_note}")
        elif self._fit is not None:
            lines.append(f"  breakdown: not computed (read `.breakdown`; each step refits a {self.method} interval)")
        lines.append(self.tidy().to_string(index=False))
        return "\n".join(lines)

    @property
    def options_dict(self) -> dict[str, str]:
        return dict(self.options)

    # ----------------------------------------------------------------------------------------------------------
    # breakdown value
    # ----------------------------------------------------------------------------------------------------------

    @cached_property
    def _breakdown(self) -> tuple[float | None, str]:
        return self.find_breakdown()

    @property
    def breakdown(self) -> float | None:
        """The smallest M at which the robust interval includes 0 (the breakdown value of Rambachan & Roth),
        found by root bracketing and Brent's method on the interval's signed distance to 0, not read off the grid.

        Computed on first access and cached; ``breakdown_note`` says how it was found or why it is None: None when
        the interval includes 0 already at M = 0, or does not include it anywhere in the search range (up to
        ``2^10`` times the starting M: the smallest grid M whose interval includes 0 brackets the root directly;
        otherwise the search doubles M from the largest grid M, or from the original standard error (smoothness)
        or Mbar = 1 (relative magnitudes) when the grid is only 0). ``find_breakdown(m_max=...)`` searches a
        range of your choice.

        Cost: each step refits the interval for one M. For the FLCI that is about 50 ms, so the whole search takes
        under a second. For the conditional methods (C-LF, C-F, Conditional) each fit takes a fraction of a second
        to seconds, so the search (about 10-20 fits) takes longer; their bounds also move in steps of the test
        grid (``grid_points``), so the interval at the breakdown touches 0 only to within that grid's spacing.
        """
        return self._breakdown[0]

    @property
    def breakdown_note(self) -> str:
        """How ``breakdown`` was found, or why it is None (computes it if needed)."""
        return self._breakdown[1]

    def find_breakdown(self, *, m_max: float | None = None, xtol: float = 1e-10,
                       rtol: float = 1e-8) -> tuple[float | None, str]:
        """The breakdown value and a sentence on it: ``(M, note)``, ``M`` None when there is none in
        ``[0, m_max]`` (default range: see ``breakdown``). ``xtol``/``rtol``: Brent's tolerances on M."""
        if self._fit is None:
            raise InvalidOptionError(
                f"{FUNC}(): this result keeps no inputs to refit the interval. Fix: rerun didx.honest_did(...)."
            )
        if m_max is not None and (not np.isfinite(m_max) or m_max <= 0.0):
            raise InvalidOptionError(f"{FUNC}(): m_max must be a positive number; got {m_max!r}. Fix: e.g. "
                                     f"m_max=1.0.")
        fit, name = self._fit, ("M" if self.restriction == "smoothness" else "Mbar")
        known = dict(zip(self.M, zip(self.conf_low, self.conf_high, strict=True), strict=True))

        def dist(m: float) -> float:
            if m not in known:
                known[m] = fit.interval(self.restriction, m, self.alpha)
            return _distance_to_zero(*known[m])

        if dist(0.0) <= 0.0:
            return None, f"none: the robust interval includes 0 already at {name} = 0"
        grid = sorted(m for m in self.M if m > 0.0 and (m_max is None or m <= m_max))
        upper = next((m for m in grid if dist(m) <= 0.0), None)
        if upper is None:  # no grid value includes 0: double M from the largest grid value
            start = grid[-1] if grid else (self.original.std_error if self.restriction == "smoothness" else 1.0)
            limit = m_max if m_max is not None else start * 2.0**BREAKDOWN_DOUBLINGS
            m = min(start, limit)
            while dist(m) > 0.0 and m < limit:
                m = min(2.0 * m, limit)
            if dist(m) > 0.0:
                return None, (f"none in the search range: the robust interval excludes 0 for every {name} "
                              f"up to {limit:.6g}; find_breakdown(m_max=...) searches further")
            upper = m
        lower = max(m for m in known if m < upper and dist(m) > 0.0)
        if dist(upper) == 0.0:
            root = upper
        else:
            root = float(optimize.brentq(dist, lower, upper, xtol=xtol, rtol=rtol))
        return root, (f"{name} = {root:.6g}: the smallest {name} at which the robust interval includes 0 "
                      f"(Brent's method between {lower:.6g} and {upper:.6g})")

    # ----------------------------------------------------------------------------------------------------------
    # plot
    # ----------------------------------------------------------------------------------------------------------

    def plot(self, ax: Any = None, *, color: Any = "C0", original_color: Any = "C3", show_zero: bool = True) -> Any:
        """HonestDiD's sensitivity plot: the robust interval for each M (error bars at x = M, their line collection
        has gid ``"robust"``)
        beside the original confidence interval of the target (to the left of the smallest M, gid
        ``"original"``), a dashed line at 0 (gid ``"zero_line"``). Returns the matplotlib Axes."""
        check_ax(f"{type(self).__name__}.plot()", ax)
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        m = np.asarray(self.M, dtype=float)
        lo, hi = np.asarray(self.conf_low), np.asarray(self.conf_high)
        step = float(np.min(np.diff(np.unique(m)))) if np.unique(m).size > 1 else max(abs(float(m[0])), 1.0) * 0.5
        x_orig = float(m.min()) - step
        mid = (lo + hi) / 2.0
        robust = ax.errorbar(m, mid, yerr=[mid - lo, hi - mid], fmt="none", ecolor=color, capsize=3, linewidth=1.6,
                             label=f"{self.method} ({self.restriction})")
        for bar in robust.lines[2]:
            bar.set_gid("robust")
        o = self.original
        omid = (o.conf_low + o.conf_high) / 2.0
        orig = ax.errorbar([x_orig], [omid], yerr=[[omid - o.conf_low], [o.conf_high - omid]], fmt="none",
                           ecolor=original_color, capsize=3, linewidth=1.6, label="original")
        for bar in orig.lines[2]:
            bar.set_gid("original")
        if show_zero:
            ax.axhline(0.0, color="0.5", linestyle="--", linewidth=0.8, gid="zero_line")
        name = "M" if self.restriction == "smoothness" else r"$\bar{M}$"
        ax.set_xlabel(name)
        ax.set_ylabel(f"{100 * (1 - self.alpha):g}% confidence interval")
        ax.set_title(f"Sensitivity: {self.target}")
        ax.legend(loc="best", frameon=False)
        return ax


_FAMILY_TEXT = {
    "SD": "|second differences of the trend| <= M",
    "RM": "|post-period first differences of the trend| <= Mbar x the largest |pre-period first difference|",
    "SDRM": "|post-period second differences of the trend| <= Mbar x the largest |pre-period second difference|",
}
_EXTRA_TEXT = {"PB": "post-period bias >= 0", "NB": "post-period bias <= 0", "I": "trend weakly increasing",
               "D": "trend weakly decreasing"}
_METHOD_TEXT = {
    "FLCI": "fixed-length confidence interval",
    "Conditional": "ARP conditional test inverted on a grid",
    "C-F": "conditional-FLCI hybrid test inverted on a grid",
    "C-LF": "conditional least-favorable hybrid test inverted on a grid",
}


def _restriction_text(delta: str) -> str:
    family = next(f for f in ("SDRM", "SD", "RM") if delta[len("Delta"):].startswith(f))
    extra = delta[len("Delta") + len(family):]
    text = _FAMILY_TEXT[family] + (f", {_EXTRA_TEXT[extra]}" if extra else "")
    return text + ", zero at the reference"


def _comparability_warning(meaning: str) -> str:
    """When the estimator's pre-period coefficients are not "deviation from parallel trends relative to the
    reference" (``didx.registry.PRE_PERIOD``), the restrictions compare unlike things: say so, and the fix."""
    from didx.registry import PRE_PERIOD

    if meaning == PRE_PERIOD["callaway_santanna_varying"]:
        return ("the pre-period coefficients use a varying base period (short one-period gaps), so they are not "
                "the trend relative to the reference that the restriction bounds (HonestDiD's authors refuse this "
                "case). Fix: estimate att_gt(..., base_period='universal') and aggregate('dynamic') again.")
    if meaning == PRE_PERIOD["imputation"]:
        return ("the BJS imputation pre-trend coefficients test a different null (parallel trends of untreated "
                "outcomes, fitted on untreated observations only) and are not deviations from parallel trends "
                "relative to a reference period, so the restriction compares unlike things. Fix: run the "
                "sensitivity analysis on an event study whose leads are relative to the reference (e.g. "
                "didx.event_study, Sun-Abraham, or att_gt(..., base_period='universal')).")
    if meaning == PRE_PERIOD["did2s"]:
        return ("the did2s leads are average first-stage residuals of untreated observations, not differences "
                "from the reference period, so they are not comparable with the post-period coefficients the "
                "restriction bounds. Fix: use an event study whose leads are relative to the reference (e.g. "
                "didx.event_study, Sun-Abraham, or att_gt(..., base_period='universal')).")
    return ""


def _check_alpha(restriction: str, alpha: float) -> None:
    if restriction not in RESTRICTIONS:
        raise InvalidOptionError(
            f"{FUNC}(): restriction={restriction!r} is not known. Fix: restriction='smoothness', "
            f"'relative_magnitude' or 'combined'."
        )
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise InvalidOptionError(f"{FUNC}(): alpha must be in (0, 1); got {alpha!r}. Fix: e.g. alpha=0.05.")


def _split_periods(event_time: np.ndarray, reference: float) -> tuple[np.ndarray, np.ndarray]:
    """HonestDiD's layout: pre-periods are the event times before the reference, post-periods those after it
    (so with reference -2, event time -1 is a post period, as in HonestDiD's Lovenheim-Willen example)."""
    allt = np.sort(np.append(event_time, reference))
    if np.any(np.abs(np.diff(allt) - 1.0) > 1e-9):
        raise InvalidOptionError(
            f"{FUNC}(): event times (with the reference {reference:g}) must be consecutive, the restrictions are "
            f"on differences of adjacent periods; got {allt.tolist()}. Fix: estimate every event time in the "
            f"window (no gaps), or drop the coefficients beyond the gap."
        )
    order = np.argsort(event_time)
    pre, post = order[event_time[order] < reference], order[event_time[order] > reference]
    if post.size == 0:
        raise DesignError(
            f"{FUNC}(): there are no post-period coefficients (event times after the reference {reference:g}). "
            f"Fix: estimate lags (event times >= 0)."
        )
    if pre.size == 0:
        raise DesignError(
            f"{FUNC}(): there are no pre-period coefficients (event times before the reference {reference:g}). "
            f"Fix: estimate leads (widen the event window)."
        )
    return pre, post


def honest_did(es: Any = None, *, beta: ArrayLike | None = None, sigma: ArrayLike | None = None,
               event_time: ArrayLike | None = None, reference: float | None = None,
               restriction: str = "smoothness", M: float | ArrayLike = 0.0, target: Any = "first",
               ci: str | None = None, bias_sign: str | None = None, monotonicity: str | None = None,
               bound: str | None = None, alpha: float = 0.05, grid_points: int = 1000,
               grid_bounds: tuple[float, float] | None = None) -> HonestDiDResult:
    """Robust confidence intervals for a post-period target when parallel trends may fail (Rambachan & Roth).

    ``es``: an event-study result of didx, or raw ``beta=, sigma=, event_time=, reference=`` (HonestDiD's
    ``betahat``, ``sigma``; pre-periods are the event times before the reference, post-periods those after it).

    ``restriction``: ``"smoothness"`` (``Delta^SD(M)``), ``"relative_magnitude"`` (``Delta^RM(Mbar)``, or with
    ``bound="deviation_from_linear"`` ``Delta^SDRM(Mbar)``), ``"combined"`` (``Delta^SDRM(Mbar)``); ``M`` holds
    the bound(s) (``Mbar`` for the relative magnitudes). ``bias_sign="positive"|"negative"`` or
    ``monotonicity="increasing"|"decreasing"`` add HonestDiD's sign or shape restriction.

    ``ci``: ``None`` (HonestDiD's default: FLCI for plain smoothness, C-F with a sign/shape restriction, C-LF for
    relative magnitudes), ``"flci"``, ``"c-lf"``, ``"arp"`` (the conditional test) or ``"hybrid"`` (C-F for
    smoothness, C-LF for relative magnitudes). ``grid_points``/``grid_bounds``: the test-inversion grid
    (HonestDiD's ``gridPoints``, ``grid.lb``/``grid.ub``; default bounds as HonestDiD computes them).

    ``target``: ``"first"``, ``"average"``, a post-period event time, or weights over the post periods.
    """
    _check_alpha(restriction, alpha)
    meth = resolve(restriction, ci, bias_sign, monotonicity, bound, grid_points, grid_bounds)
    m_values = _check_M(M, "smoothness" if meth.restr.family == "SD" else restriction)
    inp = _resolve_inputs(FUNC, es, beta, sigma, event_time, reference, need_beta=True)
    assert inp.beta is not None
    pre, post = _split_periods(inp.event_time, inp.reference)
    idx = np.concatenate([pre, post])
    b, S = inp.beta[idx], inp.sigma[np.ix_(idx, idx)]
    post_times = inp.event_time[post]
    l_vec, target_text = _target_weights(target, post_times)
    est = float(l_vec @ b[pre.size:])
    se = float(np.sqrt(l_vec @ S[pre.size:, pre.size:] @ l_vec))
    z = float(norm.ppf(1.0 - alpha / 2.0))
    fit = _Fit(b, S, int(pre.size), l_vec, meth)
    fits = [fit.fit(float(m), float(alpha)) for m in m_values]
    notes = list(meth.notes)
    opened = [f"{m:g}" for m, f in zip(m_values, fits, strict=True) if f.open_end]
    if opened:
        notes.append(f"the interval reaches an end of the test grid for M = {', '.join(opened)} (HonestDiD: 'CI "
                     f"is open at one of the endpoints'), so it may be longer. Fix: wider grid_bounds=(low, high).")
    empty = [f"{m:g}" for m, f in zip(m_values, fits, strict=True) if not np.isfinite(f.low)]
    if empty:
        notes.append(f"no grid point is accepted for M = {', '.join(empty)}: the interval is empty (NaN), e.g. "
                     f"the restriction is rejected by the data. Fix: a larger M, or other grid_bounds.")
    options = (("ci", repr(ci)), ("bias_sign", repr(bias_sign)), ("monotonicity", repr(monotonicity)),
               ("bound", repr(bound)), ("grid_points", str(grid_points)), ("grid_bounds", repr(grid_bounds)))
    return HonestDiDResult(
        M=tuple(float(m) for m in m_values), conf_low=tuple(f.low for f in fits),
        conf_high=tuple(f.high for f in fits), original=OriginalInterval(est, se, est - z * se, est + z * se),
        restriction=restriction, method=meth.name, target=target_text, target_weights=tuple(l_vec.tolist()),
        alpha=float(alpha), reference=inp.reference, pre_event_times=tuple(inp.event_time[pre].tolist()),
        post_event_times=tuple(post_times.tolist()), source=inp.source, pre_period_meaning=inp.pre_period_meaning,
        delta=meth.restr.name, options=options,
        grid_bounds=() if meth.kind == "FLCI" else tuple(f.grid for f in fits),
        warning=_comparability_warning(inp.pre_period_meaning), notes=tuple(notes), _fit=fit,
    )
