"""Event-study plots: coefficients by event time with pointwise intervals and optional uniform (sup-t) bands.

Works on any :class:`~didx.results.event.EventStudyResult` (it reads ``result.event_table()``), so every
estimator's dynamic effects share one picture. matplotlib is imported only inside the functions.

Every drawn element carries a ``gid`` (``"estimates"``, ``"ci_pointwise"``, ``"ci_uniform"``, ``"reference"``,
``"zero_line"``, ``"onset_line"``), so the figure can be inspected and restyled after the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from didx._errors import InvalidOptionError
from didx._validate import check_conf_level
from didx.inference.bands import DEFAULT_DRAWS, DEFAULT_SEED, uniform_bands

if TYPE_CHECKING:  # results.event imports this module for EventStudyResult.plot(): no runtime import back
    from didx.results.event import EventStudyResult

MAX_LABELLED_TICKS = 25
DODGE = 0.12


def _check_result(obj: Any, what: str) -> EventStudyResult:
    if not (callable(getattr(obj, "event_table", None)) and hasattr(obj, "reference_periods")):
        raise InvalidOptionError(
            f"{what}: expected an event-study result (with event times), e.g. from didx.event_study(...); "
            f"got {type(obj).__name__}. Fix: plot a dynamic (event-time) result."
        )
    return obj


def check_ax(func: str, ax: Any) -> None:
    """``ax=`` must be a matplotlib Axes (or None for a new figure): anything else is an error naming it, not a
    matplotlib AttributeError halfway through drawing. Estimators' own ``plot`` methods call this too."""
    if ax is None:
        return
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise InvalidOptionError(
            f"The 'ax' parameter of {func} must be a matplotlib Axes or None. Got {ax!r} instead. Fix: pass "
            f"ax=plt.gca() (or the Axes of a subplot), or leave it out to draw a new figure."
        )


def _onset(event_times: np.ndarray) -> float:
    """Where treatment starts: halfway between the last pre-period and the first period k >= 0."""
    pre = event_times[event_times < 0]
    post = event_times[event_times >= 0]
    last_pre = float(pre.max()) if pre.size else -1.0
    first_post = float(post.min()) if post.size else 0.0
    return 0.5 * (last_pre + first_post)


def _draw(ax: Any, result: EventStudyResult, *, offset: float, color: Any, label: str | None,
          conf_level: float, uniform: bool, n_draws: int, seed: int | None) -> np.ndarray:
    table = result.event_table(conf_level)
    refs = set(result.reference_periods)
    is_ref = table["event_time"].astype(float).isin(refs).to_numpy() & ~table["term"].isin(result.terms).to_numpy()
    est = table.loc[~is_ref]
    x = est["event_time"].to_numpy(float) + offset
    b = est["estimate"].to_numpy(float)
    se = est["std_error"].to_numpy(float)
    crit = result._critical(conf_level)
    pct = f"{100 * conf_level:g}%"
    ax.vlines(x, b - crit * se, b + crit * se, colors=[color], linewidth=1.6, gid="ci_pointwise",
              label=f"{pct} pointwise CI" if label is None else None, zorder=3)
    stored = result.extras.get("uniform_band") if result.inference.band.startswith("uniform") else None
    if uniform or stored is not None:
        if stored is not None:  # the band of with_uniform_bands(): the one tidy() and summary() report
            n_draws, seed = stored
        band = uniform_bands(result, terms=list(est["term"]), conf_level=conf_level, n_draws=n_draws, seed=seed)
        ax.vlines(x, band.conf_low, band.conf_high, colors=[color], linewidth=5.0, alpha=0.3, gid="ci_uniform",
                  label=f"{pct} uniform (sup-t) band" if label is None else None, zorder=2)
    ax.plot(x, b, linestyle="none", marker="o", markersize=5, color=color, gid="estimates",
            label=label if label is not None else "Estimate", zorder=4)
    ref_x = table.loc[is_ref, "event_time"].to_numpy(float) + offset
    if ref_x.size:
        ax.plot(ref_x, np.zeros_like(ref_x), linestyle="none", marker="o", markersize=5, color=color,
                markerfacecolor="white", markeredgecolor=color, gid="reference",
                label="Reference period (normalised to 0)" if label is None else None, zorder=4)
    return np.asarray(table["event_time"].to_numpy(float))


def _finish(ax: Any, event_times: np.ndarray, ylabel: str, title: str | None) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.axhline(0.0, color="0.3", linewidth=0.8, gid="zero_line", zorder=1)
    ax.axvline(_onset(event_times), color="0.3", linewidth=0.8, linestyle="--", gid="onset_line", zorder=1)
    ticks = np.unique(event_times)
    integer = bool(np.all(ticks == np.round(ticks)))
    if ticks.size <= MAX_LABELLED_TICKS and ticks.size:
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=integer))
    ax.set_xlabel("Event time (periods relative to treatment; treatment starts at 0)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small", frameon=False)


def plot_event_study(
    result: EventStudyResult,
    ax: Any = None,
    *,
    conf_level: float = 0.95,
    uniform: bool = False,
    n_draws: int = DEFAULT_DRAWS,
    seed: int | None = DEFAULT_SEED,
    color: Any = None,
    title: str | None = None,
) -> Any:
    """Plot an event study: ``b_k`` by event time ``k`` with confidence intervals.

    Parameters
    ----------
    result : any :class:`~didx.results.event.EventStudyResult`.
    ax : a matplotlib Axes to draw on; a new figure if None.
    conf_level : confidence level of the intervals.
    uniform : also draw the uniform (sup-t) band (:func:`didx.uniform_bands`), as a wide light bar behind the
        pointwise interval; always drawn for a result made by ``with_uniform_bands()``.
    n_draws, seed : simulation of the uniform band's critical value; ignored for a result made by
        ``with_uniform_bands(n_draws=, seed=)``, whose own draws are used so the plot shows the band ``tidy()``
        reports.
    color : any matplotlib colour (default: the Axes' next colour).
    title : plot title (default: the estimator's name).

    The reference period(s) are drawn as hollow points at 0, the horizontal line marks 0 and the dashed vertical
    line the treatment onset (between the last pre-treatment event time and 0).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    result = _check_result(result, "plot_event_study")
    check_ax("plot", ax)
    conf_level = check_conf_level(conf_level)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 4.2), layout="constrained")
    if color is None:
        color = ax._get_lines.get_next_color()
    et = _draw(ax, result, offset=0.0, color=color, label=None, conf_level=conf_level, uniform=uniform,
               n_draws=n_draws, seed=seed)
    outcome = result.extras.get("outcome")
    _finish(ax, et, f"Effect on {outcome}" if outcome else "Estimate",
            title if title is not None else result.estimator)
    return ax


def plot_event_studies(
    results: Sequence[EventStudyResult],
    ax: Any = None,
    *,
    labels: Sequence[str] | None = None,
    conf_level: float = 0.95,
    uniform: bool = False,
    dodge: float = DODGE,
    n_draws: int = DEFAULT_DRAWS,
    seed: int | None = DEFAULT_SEED,
    title: str | None = None,
) -> Any:
    """Overlay several event studies (e.g. TWFE, Sun-Abraham, Callaway-Sant'Anna) on one Axes.

    Each result is shifted horizontally by a small ``dodge`` (in event-time units, centred on the true event
    time) so that intervals do not overlap. ``labels`` name the legend entries (default: estimator names).
    Returns the Axes.
    """
    import matplotlib.pyplot as plt

    res = [_check_result(r, "plot_event_studies") for r in results]
    check_ax("plot_event_studies", ax)
    if not res:
        raise InvalidOptionError("plot_event_studies: pass a non-empty list of event-study results.")
    if labels is None:
        labels = [r.estimator for r in res]
    elif len(labels) != len(res):
        raise InvalidOptionError(
            f"plot_event_studies: got {len(labels)} labels for {len(res)} results. Fix: one label per result."
        )
    conf_level = check_conf_level(conf_level)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    n = len(res)
    all_et = []
    for i, (r, lab) in enumerate(zip(res, labels, strict=True)):
        color = ax._get_lines.get_next_color()
        offset = (i - (n - 1) / 2) * dodge
        all_et.append(_draw(ax, r, offset=offset, color=color, label=lab, conf_level=conf_level,
                            uniform=uniform, n_draws=n_draws, seed=seed))
    outcomes = {r.extras.get("outcome") for r in res}
    outcome = outcomes.pop() if len(outcomes) == 1 else None
    band = "pointwise intervals and uniform bands" if uniform else "pointwise intervals"
    _finish(ax, np.concatenate(all_et), f"Effect on {outcome}" if outcome else "Estimate",
            title if title is not None else f"Event studies ({100 * conf_level:g}% {band}; hollow: reference)")
    return ax
