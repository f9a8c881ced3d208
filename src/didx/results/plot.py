"""Plots of results: event studies, ATT(g,t) by cohort, and coefficients of any result.

* :func:`plot_event_study` / :func:`plot_event_studies`: coefficients by event time with pointwise intervals and
  optional uniform (sup-t) bands, for any :class:`~didx.results.event.EventStudyResult` (it reads
  ``result.event_table()``), so every estimator's dynamic effects share one picture;
* :func:`plot_att_gt`: R did's ``ggdid`` picture of ATT(g,t), one panel per cohort, pre- and post-treatment cells
  coloured differently;
* :func:`plot_coefficients`: point estimates with intervals for any :class:`~didx.Result` (TWFE, the ``simple``,
  ``group`` and ``calendar`` aggregations, ...), the headline term marked.

Every plot labels the y-axis with the outcome ("Effect on lemp"), accepts ``ax=`` and returns the Axes (an array
of Axes for the one-panel-per-cohort plot). matplotlib is imported only inside the functions.

Every drawn element carries a ``gid`` (``"estimates"``, ``"ci_pointwise"``, ``"ci_uniform"``, ``"reference"``,
``"zero_line"``, ``"onset_line"``), so the figure can be inspected and restyled after the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from didx._errors import InvalidOptionError
from didx._validate import check_conf_level
from didx.inference.bands import DEFAULT_DRAWS, DEFAULT_SEED, uniform_bands

if TYPE_CHECKING:  # results.event imports this module for EventStudyResult.plot(): no runtime import back
    from didx.results.base import Result
    from didx.results.event import EventStudyResult

MAX_LABELLED_TICKS = 25
DODGE = 0.12


def outcome_name(result: Any) -> str | None:
    """The outcome's column name: ``extras["outcome"]``, else the ``Outcome`` row of the design, else None."""
    extras = getattr(result, "extras", {}) or {}
    name = extras.get("outcome") or extras.get("y") or dict(getattr(result, "design", ())).get("Outcome")
    return None if name is None else str(name)


def _ylabel(results: Sequence[Any]) -> str:
    names = {outcome_name(r) for r in results}
    name = names.pop() if len(names) == 1 else None
    return f"Effect on {name}" if name else "Estimate"


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
    low = high = None
    if result.inference.band.startswith("uniform"):
        # the band the result reports in tidy() and summary(): with_uniform_bands()' draws, or a multiplier
        # bootstrap's sup-t band (Callaway-Sant'Anna with n_bootstrap)
        low, high = est["conf_low"].to_numpy(float), est["conf_high"].to_numpy(float)
    elif uniform:
        band = uniform_bands(result, terms=list(est["term"]), conf_level=conf_level, n_draws=n_draws, seed=seed)
        low, high = band.conf_low, band.conf_high
    if low is not None:
        ax.vlines(x, low, high, colors=[color], linewidth=5.0, alpha=0.3, gid="ci_uniform",
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
        pointwise interval; a result that reports a uniform band (``with_uniform_bands()``, a multiplier bootstrap)
        always has it drawn: the band ``tidy()`` reports.
    n_draws, seed : simulation of the uniform band's critical value; not used for a result that reports its
        own band.
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
    _finish(ax, et, _ylabel([result]), title if title is not None else result.estimator)
    return ax


def _event_studies(results: Any, labels: Sequence[str] | None) -> tuple[list[Any], list[str] | None]:
    """Results and labels from a list, a dict ``{label: result}`` or an :class:`EventStudyComparison`; an
    ATT(g,t) result becomes its ``dynamic`` aggregation."""
    if hasattr(results, "results") and isinstance(results.results, Mapping):  # an EventStudyComparison
        comp = results
        results = {comp.labels.get(k, k): v for k, v in comp.results.items()}
    if isinstance(results, Mapping):
        keys = [str(k) for k in results]
        return list(results.values()), (keys if labels is None else list(labels))
    if isinstance(results, str) or not isinstance(results, Sequence | tuple):
        results = [results]
    return list(results), None if labels is None else list(labels)


def _as_event_study(obj: Any, what: str) -> EventStudyResult:
    info = getattr(obj, "term_info", {})
    if not hasattr(obj, "event_table") and "group" in info and "time" in info and callable(
            getattr(obj, "aggregate", None)):
        obj = obj.aggregate("dynamic")  # ATT(g,t): its event study, as R's aggte(type="dynamic")
    return _check_result(obj, what)


def plot_event_studies(
    results: Sequence[EventStudyResult] | Mapping[str, EventStudyResult] | Any,
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

    ``results``: a list of event-study results, a dict ``{label: result}`` (the keys label the legend), or an
    :class:`~didx.results.comparison.EventStudyComparison`; an ATT(g,t) result is drawn as its ``dynamic``
    aggregation. Each result is shifted horizontally by a small ``dodge`` (in event-time units, centred on the
    true event time) so that intervals do not overlap. ``labels`` name the legend entries (default: the dict's
    keys, else the estimator names). Returns the Axes.
    """
    import matplotlib.pyplot as plt

    items, labels = _event_studies(results, labels)
    res = [_as_event_study(r, "plot_event_studies") for r in items]
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
    stored = any(str(r.inference.band).startswith("uniform") for r in res)  # drawn although uniform=False
    band = ("pointwise intervals and uniform bands" if uniform else
            "pointwise intervals; shaded: uniform bands" if stored else "pointwise intervals")
    _finish(ax, np.concatenate(all_et), _ylabel(res),
            title if title is not None else f"Event studies ({100 * conf_level:g}% {band}; hollow: reference)")
    return ax


# ---------------------------------------------------------------- any result: coefficients with intervals
def _stored_band(result: Any, conf_level: float, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The uniform band the result reports in ``tidy()`` (a bootstrap fit's sup-t band), for ``terms``; None
    when its intervals are pointwise."""
    if not str(result.inference.band).startswith("uniform"):
        return None
    t = result.tidy(conf_level).set_index("term").loc[list(terms)]
    return t["conf_low"].to_numpy(float), t["conf_high"].to_numpy(float)


def _intervals(result: Any, terms: Sequence[str], *, conf_level: float, uniform: bool | None, n_draws: int,
               seed: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Estimates, standard errors, the pointwise critical value and the uniform band (stored, simulated on
    request with ``uniform=True``, or None) of ``terms``."""
    idx = [result.terms.index(t) for t in terms]
    b = np.asarray(result.coef, float)[idx]
    se = np.sqrt(np.clip(np.diag(np.asarray(result.vcov_matrix, float)), 0, None))[idx]
    band = None if uniform is False else _stored_band(result, conf_level, terms)
    if band is None and uniform and len(terms):
        ub = uniform_bands(result, terms=list(terms), conf_level=conf_level, n_draws=n_draws, seed=seed)
        band = (np.asarray(ub.conf_low, float), np.asarray(ub.conf_high, float))
    return b, se, np.full(len(terms), result._critical(conf_level)), band


def plot_coefficients(
    result: Result,
    ax: Any = None,
    *,
    terms: Sequence[str] | None = None,
    conf_level: float = 0.95,
    uniform: bool | None = None,
    n_draws: int = DEFAULT_DRAWS,
    seed: int | None = DEFAULT_SEED,
    color: Any = None,
    title: str | None = None,
) -> Any:
    """Point estimates with confidence intervals for the terms of any :class:`~didx.Result` (TWFE's ``treated``,
    the ``simple``/``group``/``calendar`` aggregations of ATT(g,t), covariates, ...).

    Parameters
    ----------
    result : a result.
    ax : a matplotlib Axes to draw on; a new figure if None.
    terms : the terms to draw, in order (default: all).
    conf_level : confidence level.
    uniform : draw the uniform (sup-t) band over the non-headline terms as a wide light bar: None (default) when
        the result reports one (a bootstrap fit), True to simulate one from the covariance (``n_draws``,
        ``seed``), False never.
    color : any matplotlib colour; title : default the estimator's name.

    The headline term (``.estimate``) is drawn as a diamond, separated from the others by a dotted line when
    there are both. Elements carry ``gid`` s ``"estimates"``, ``"headline"``, ``"ci_pointwise"``,
    ``"ci_uniform"``, ``"zero_line"``. Returns the Axes.
    """
    import matplotlib.pyplot as plt

    check_ax("plot", ax)
    conf_level = check_conf_level(conf_level)
    names = list(result.terms if terms is None else terms)
    unknown = [t for t in names if t not in result.terms]
    if unknown or not names:
        raise InvalidOptionError(
            f"plot: terms={unknown or names!r} {'are not terms of' if unknown else 'is empty for'} "
            f"{result.estimator}. Terms: {', '.join(result.terms)}."
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.5, min(10.0, 1.5 + 0.9 * len(names))), 4.2), layout="constrained")
    if color is None:
        color = ax._get_lines.get_next_color()
    head = result.headline
    others = [t for t in names if t != head]
    x = np.arange(len(names), dtype=float)
    pos = {t: float(i) for i, t in enumerate(names)}
    pct = f"{100 * conf_level:g}%"
    b, se, crit, band = _intervals(result, names, conf_level=conf_level, uniform=uniform and bool(others),
                                   n_draws=n_draws, seed=seed)
    ax.vlines(x, b - crit * se, b + crit * se, colors=[color], linewidth=1.6, gid="ci_pointwise",
              label=f"{pct} pointwise CI", zorder=3)
    if band is not None and others:
        keep = np.array([t != head for t in names])
        ax.vlines(x[keep], band[0][keep], band[1][keep], colors=[color], linewidth=5.0, alpha=0.3,
                  gid="ci_uniform", label=f"{pct} uniform band", zorder=2)
    rest = [pos[t] for t in others]
    if rest:
        ax.plot(rest, [b[int(p)] for p in rest], linestyle="none", marker="o", markersize=5, color=color,
                gid="estimates", label="Estimate", zorder=4)
    if head in pos:
        ax.plot([pos[head]], [b[int(pos[head])]], linestyle="none", marker="D", markersize=6, color=color,
                gid="headline", label=f"{head} (headline)", zorder=4)
        if rest:
            ax.axvline(pos[head] - 0.5 if pos[head] > max(rest) else pos[head] + 0.5, color="0.6",
                       linewidth=0.8, linestyle=":", zorder=1)
    ax.axhline(0.0, color="0.3", linewidth=0.8, gid="zero_line", zorder=1)
    ax.set_xticks(x)
    crowded = sum(len(t) for t in names) > 8 * len(names) or len(names) > 8
    ax.set_xticklabels(names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel(_ylabel([result]))
    ax.set_title(title if title is not None else result.estimator)
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


# ---------------------------------------------------------------- ATT(g,t): one panel per cohort (R's ggdid)
PRE_COLOR = "#d55e00"
POST_COLOR = "#0072b2"


def plot_att_gt(
    result: Result,
    ax: Any = None,
    *,
    cohorts: Sequence[float] | None = None,
    conf_level: float = 0.95,
    uniform: bool | None = None,
    n_draws: int = DEFAULT_DRAWS,
    seed: int | None = DEFAULT_SEED,
    title: str | None = None,
) -> Any:
    """ATT(g,t) by period, one panel per cohort g, as R did's ``ggdid(att_gt(...))``: pre-treatment cells
    (``t < g``) and post-treatment cells in two colours, pointwise intervals as thin bars, the uniform (sup-t)
    band as wide light bars, the treatment onset as a dashed line.

    Parameters
    ----------
    result : an :class:`~didx.ATTgtResult` (any result whose ``tidy()`` has ``group`` and ``time`` columns).
    ax : None (a new figure, panels stacked), or a sequence of Axes, one per cohort drawn (a single Axes when
        one cohort is drawn).
    cohorts : the cohorts to draw (default: all).
    conf_level : confidence level.
    uniform : the band over all ATT(g,t): None (default) draws the one the result reports (with
        ``n_bootstrap``: did's multiplier-bootstrap band; R's ggdid draws only that one), True simulates a sup-t
        band from the covariance when the result has none (``n_draws``, ``seed``; :func:`didx.uniform_bands`),
        False draws pointwise intervals only.
    title : the figure's title (default: the estimator and the interval types).

    A reference cell (``base_period="universal"``: normalised to 0, no SE) is a hollow point. Elements carry
    ``gid`` s ``"pre"``, ``"post"``, ``"reference"``, ``"ci_pointwise"``, ``"ci_uniform"``, ``"onset_line"``.

    Returns
    -------
    numpy.ndarray of matplotlib Axes, one per cohort (in cohort order).
    """
    conf_level = check_conf_level(conf_level)
    cells = result.tidy(conf_level)
    if "group" not in cells or "time" not in cells:
        raise InvalidOptionError(
            f"plot_att_gt: expected group-time effects (terms with a cohort and a period, from didx.att_gt); got "
            f"{type(result).__name__}. Fix: plot the ATT(g,t) result itself."
        )
    cells = cells[np.isfinite(cells["group"].astype(float))].reset_index(drop=True)
    all_g = sorted(cells["group"].astype(float).unique())
    chosen = all_g if cohorts is None else [float(g) for g in cohorts]
    missing = [g for g in chosen if g not in all_g]
    if missing or not chosen:
        raise InvalidOptionError(
            f"plot_att_gt: cohorts={list(cohorts or [])!r}: {missing or 'none chosen'} not among the cohorts "
            f"{', '.join(f'{g:g}' for g in all_g)}."
        )
    axes = _panel_axes(ax, len(chosen))
    terms = list(cells["term"])
    est = cells["estimate"].to_numpy(float)
    se = cells["std_error"].to_numpy(float)
    is_ref = (se == 0) & (est == 0)
    live = [t for t, r in zip(terms, is_ref, strict=True) if not r]
    b, s, crit, band = _intervals(result, live, conf_level=conf_level, uniform=uniform, n_draws=n_draws, seed=seed)
    low = dict(zip(live, b - crit * s, strict=True))
    high = dict(zip(live, b + crit * s, strict=True))
    ulow = {} if band is None else dict(zip(live, band[0], strict=True))
    uhigh = {} if band is None else dict(zip(live, band[1], strict=True))
    times = np.sort(cells["time"].astype(float).unique())
    pct = f"{100 * conf_level:g}%"
    for g, a in zip(chosen, axes, strict=True):
        rows = cells[cells["group"].astype(float) == g]
        for phase, color, mask in (("pre", PRE_COLOR, rows["time"] < g), ("post", POST_COLOR, rows["time"] >= g)):
            part = rows[mask.to_numpy() & ~is_ref[rows.index]]
            if part.empty:
                continue
            t = part["term"].tolist()
            x = part["time"].to_numpy(float)
            a.vlines(x, [low[v] for v in t], [high[v] for v in t], colors=[color], linewidth=1.6, gid="ci_pointwise",
                     label=f"{pct} pointwise CI", zorder=3)
            if ulow:
                a.vlines(x, [ulow[v] for v in t], [uhigh[v] for v in t], colors=[color], linewidth=5.0, alpha=0.3,
                         gid="ci_uniform", label=f"{pct} uniform band", zorder=2)
            a.plot(x, part["estimate"].to_numpy(float), linestyle="none", marker="o", markersize=5, color=color,
                   gid=phase, label="Pre-treatment" if phase == "pre" else "Post-treatment", zorder=4)
        ref = rows[is_ref[rows.index]]
        if not ref.empty:
            a.plot(ref["time"].to_numpy(float), np.zeros(len(ref)), linestyle="none", marker="o", markersize=5,
                   markerfacecolor="white", markeredgecolor="0.3", gid="reference",
                   label="Reference (normalised to 0)", zorder=4)
        a.axhline(0.0, color="0.3", linewidth=0.8, gid="zero_line", zorder=1)
        a.axvline(g - 0.5, color="0.3", linewidth=0.8, linestyle="--", gid="onset_line", zorder=1)
        a.set_xticks(times)
        a.set_xticklabels([f"{t:g}" for t in times])
        a.set_title(f"Cohort {g:g}", fontsize="medium", loc="left")
        a.set_ylabel(_ylabel([result]))
    axes[-1].set_xlabel("Period")
    legend: dict[str, Any] = {}  # one entry per label over all panels (the first cohort may have no pre cells)
    for a in axes:
        for h, lab in zip(*a.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    order = [f"{pct} pointwise CI", f"{pct} uniform band", "Pre-treatment", "Post-treatment",
             "Reference (normalised to 0)"]
    labs = [lab for lab in order if lab in legend]
    axes[0].legend([legend[lab] for lab in labs], labs, loc="best", fontsize="small", frameon=False)
    kind = "pointwise intervals" + (" and uniform band" if ulow else "")
    axes[0].figure.suptitle(title if title is not None else f"{result.estimator}: ATT(g,t) ({pct} {kind})",
                            fontsize="medium")
    return np.asarray(axes, dtype=object)


def _panel_axes(ax: Any, n: int) -> list[Any]:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if ax is None:
        _, axs = plt.subplots(n, 1, figsize=(7.0, 1.2 + 2.0 * n), sharex=True, sharey=True, layout="constrained",
                              squeeze=False)
        return list(axs[:, 0])
    seq = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    for a in seq:
        check_ax("ATTgtResult.plot", a)
    if len(seq) != n:
        raise InvalidOptionError(
            f"ATTgtResult.plot: got {len(seq)} Axes for {n} cohorts. Fix: pass one Axes per cohort drawn (e.g. "
            f"plt.subplots({n}, 1)[1]), choose cohorts=[...], or leave ax out."
        )
    return seq
