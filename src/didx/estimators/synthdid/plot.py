"""synthdid's plots in matplotlib (imported lazily): the trajectory plot with the time-weight ribbon and the DiD
arrow (synthdid_plot), and the unit plot (synthdid_units_plot)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from didx._errors import InvalidOptionError
from didx.results.plot import check_ax

if TYPE_CHECKING:
    from didx.estimators.synthdid.fit import CohortFit
    from didx.estimators.synthdid.result import SynthDiDResult


def _cohorts(res: SynthDiDResult, cohort: Any) -> list[int]:
    fits = res.cohort_fits
    labels = [res.design_matrix.period_labels[f.period] for f in fits]
    if cohort is None:
        return list(range(len(fits)))
    for j, lab in enumerate(labels):
        if lab == cohort:
            return [j]
    raise InvalidOptionError(
        f"The 'cohort' parameter of plot must be one of the adoption periods {[str(x) for x in labels]}. Got "
        f"{cohort!r} instead."
    )


def _axes(func: str, ax: Any, n: int) -> tuple[Any, list[Any]]:
    check_ax(func, ax)
    import matplotlib.pyplot as plt

    if ax is not None:
        if n > 1:
            raise InvalidOptionError(
                f"{func}: this result has {n} cohorts and one Axes was given. Fix: pass cohort= to choose one, or "
                f"ax=None for one panel per cohort."
            )
        return ax, [ax]
    _fig, axes = plt.subplots(n, 1, figsize=(7, 3.6 * n), squeeze=False)
    return (axes[0, 0] if n == 1 else axes[:, 0]), list(axes[:, 0])


def _times(res: SynthDiDResult) -> np.ndarray:
    labels = res.design_matrix.period_labels
    try:
        return np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        return np.arange(labels.shape[0], dtype=np.float64)


def _block(res: SynthDiDResult, j: int) -> tuple[CohortFit, np.ndarray, int]:
    d = res.design_matrix
    fit = res.cohort_fits[j]
    Y = d.Y[d.block_rows(j)]
    if fit.beta.size:
        Y = Y - d.X[d.block_rows(j)] @ fit.beta
    return fit, Y, d.N0


def plot_trajectories(res: SynthDiDResult, ax: Any = None, *, cohort: Any = None, lambda_scale: float = 3.0,
                      treated_label: str = "treated", control_label: str = "synthetic control") -> Any:
    """Treated mean and synthetic control over time; below, the time weights as a ribbon over the pre-periods;
    the DiD parallelogram (lambda-weighted pre point to post mean) and the effect arrow. Synthetic control
    (lambda = 0) is drawn without the diagram, as synthdid does."""
    which = _cohorts(res, cohort)
    out, axes = _axes("SynthDiDResult.plot", ax, len(which))
    time = _times(res)
    for a_ax, j in zip(axes, which, strict=True):
        fit, Y, N0 = _block(res, j)
        T0 = fit.period
        treated = Y[N0:].mean(axis=0)
        synth = fit.omega @ Y[:N0]
        a_ax.plot(time, treated, color="C1", label=treated_label)
        a_ax.plot(time, synth, color="C0", label=control_label)
        a_ax.axvline(time[T0], color="black", alpha=0.3)
        lo = min(treated.min(), synth.min())
        height = (max(treated.max(), synth.max()) - lo) / lambda_scale
        post_t = time[T0:].mean()
        tr_post = treated[T0:].mean()
        co_post = synth[T0:].mean()
        if fit.lam.any():
            bottom = lo - height
            a_ax.fill_between(time[:T0], bottom, bottom + height * fit.lam / fit.lam.max(), color="C0", alpha=0.4,
                              step=None, label="time weights")
            pre_t = float(fit.lam @ time[:T0])
            tr_pre, co_pre = float(fit.lam @ treated[:T0]), float(fit.lam @ synth[:T0])
            counterfactual = co_post + tr_pre - co_pre
            a_ax.plot([pre_t, post_t], [co_pre, co_post], "o-", color="C0", lw=1)
            a_ax.plot([pre_t, post_t], [tr_pre, tr_post], "o-", color="C1", lw=1)
            a_ax.plot([pre_t, post_t], [tr_pre, counterfactual], "--", color="black", alpha=0.6, lw=1)
        else:
            counterfactual = co_post
        a_ax.annotate("", xy=(post_t, tr_post), xytext=(post_t, counterfactual),
                      arrowprops={"arrowstyle": "->", "color": "black"})
        label = res.design_matrix.period_labels[T0]
        a_ax.set_title(f"{res.estimator}, cohort {label}: {fit.estimate:.4g}" if len(res.cohort_fits) > 1
                       else f"{res.estimator}: {fit.estimate:.4g}")
        a_ax.legend(loc="best", fontsize="small")
    if ax is None:
        axes[0].figure.tight_layout()
    return out


def plot_unit_weights(res: SynthDiDResult, ax: Any = None, *, cohort: Any = None,
                      negligible: float = 0.001) -> Any:
    """Each control unit's DiD against the treated units (with the cohort's time weights), dot area
    proportional to its unit weight; units with weight <= ``negligible`` as small crosses; the estimate as a
    horizontal line (and its 95% interval when a standard error was computed)."""
    which = _cohorts(res, cohort)
    out, axes = _axes("SynthDiDResult.plot_weights", ax, len(which))
    d = res.design_matrix
    se = res.std_error if len(res.cohort_fits) == 1 else float("nan")
    for a_ax, j in zip(axes, which, strict=True):
        fit, Y, N0 = _block(res, j)
        T0, T1 = fit.period, fit.n_post
        contrast = np.concatenate([-fit.lam, np.full(T1, 1.0 / T1)])
        diffs = float(Y[N0:].mean(axis=0) @ contrast) - Y[:N0] @ contrast
        x = np.arange(N0)
        big = fit.omega > negligible
        a_ax.scatter(x[big], diffs[big], s=400 * fit.omega[big], color="C0")
        a_ax.scatter(x[~big], diffs[~big], marker="x", alpha=0.3, color="C0")
        a_ax.axhline(fit.estimate, color="black")
        if np.isfinite(se):
            for s in (-1.96, 1.96):
                a_ax.axhline(fit.estimate + s * se, color="black", alpha=0.5, lw=0.8)
        a_ax.set_xticks(x, [str(lab) for lab in d.labels[:N0]], rotation=90, fontsize="x-small")
        a_ax.set_title(f"unit weights, cohort {d.period_labels[T0]}")
    if ax is None:
        axes[0].figure.tight_layout()
    return out
