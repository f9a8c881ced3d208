"""Goodman-Bacon decomposition of the two-way fixed-effects DiD coefficient.

Without covariates (Goodman-Bacon 2021, Theorem 1), on a balanced panel with an absorbing 0/1 treatment, the TWFE
coefficient of ``y_it = a_i + l_t + b D_it + e_it`` is a weighted average of every 2x2 DiD between timing groups
(units first treated in the same period):

* **Treated vs Untreated**: group ``k`` against the never treated, over all periods;
* **Earlier vs Later Treated**: ``k`` against a later group ``l`` before ``l`` is treated (periods ``t < l``);
* **Later vs Earlier Treated**: ``l`` against an earlier group ``k`` after ``k`` is treated (periods ``t >= k``),
  the "forbidden" comparison in which already-treated units serve as controls;
* **Later vs Always Treated**: a group against units treated from the first period on.

Each 2x2 estimate is the DiD of group-by-period means over its window (equal to the TWFE regression on that
subsample). Its weight is proportional to the squared subsample size times the variance of the demeaned
treatment in the subsample: with ``n`` the rows of each group in the window and ``D`` the share of treated periods,
``(n_k + n_u)^2 n_ku (1 - n_ku) D_k (1 - D_k)`` against the never treated, and the corresponding expressions for
timing comparisons, normalised to sum to one. Then ``sum_j weight_j x estimate_j = b`` exactly.

With covariates (Goodman-Bacon 2021, Section 5; bacondecomp's controlled decomposition), the TWFE coefficient of
``y_it = a_i + l_t + b D_it + X_it' g + e_it`` is ``Omega b_w + (1 - Omega) sum_j s_j b_j``: ``b_w`` the
*within* timing-group estimate (variation of the treatment residual ``d_it`` — from regressing ``D`` on ``X`` and
the fixed effects — around its timing-group x period mean), ``Omega`` its variance share, and ``b_j`` the
covariate-adjusted *between* 2x2 estimates of each pair of timing groups (each pair once), weighted by ``s_j``.

The computations follow bacondecomp 0.1.3 (R, Flack & Jee) exactly, vectorised over group x period means.

Reference: Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment timing. Journal of
Econometrics 225(2), 254-277.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DataError, DesignError
from didx._frame import factorize
from didx._panel import build_panel
from didx._sample import SampleReport
from didx._validate import as_list, fmt_value
from didx.engines.source import engine_input
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols
from didx.results.base import Summary
from didx.results.plot import check_ax
from didx.results.render import fmt_num, markdown_table, text_table

TREATED_VS_UNTREATED = "Treated vs Untreated"
EARLIER_VS_LATER = "Earlier vs Later Treated"
LATER_VS_EARLIER = "Later vs Earlier Treated"
LATER_VS_ALWAYS = "Later vs Always Treated"
BOTH_TREATED = "Both Treated"
TYPES = (TREATED_VS_UNTREATED, EARLIER_VS_LATER, LATER_VS_EARLIER, LATER_VS_ALWAYS, BOTH_TREATED)
IDENTITY_TOL = 1e-8


def _ro(a: Any, dtype: Any = np.float64) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class BaconDecomposition:
    """The decomposition (immutable).

    Attributes
    ----------
    twfe : the decomposed TWFE coefficient (estimated by the regression itself).
    weighted_sum : the decomposition's reconstruction of it: ``sum(weight x estimate)`` without covariates,
        ``Omega x within + (1 - Omega) x sum(weight x estimate)`` with covariates.
    treated, control : timing groups of each 2x2 (first treated period; ``inf`` = never treated).
    type : comparison type of each 2x2; ``weight``, ``estimate`` : its weight (summing to one) and estimate.
    within, omega : with covariates, the within timing-group estimate and its weight (None otherwise).
    """

    twfe: float
    weighted_sum: float
    treated: np.ndarray
    control: np.ndarray
    type: tuple[str, ...]
    weight: np.ndarray
    estimate_2x2: np.ndarray
    n_treated_units: np.ndarray
    n_control_units: np.ndarray
    covariates: tuple[str, ...]
    within: float | None
    omega: float | None
    sample: SampleReport
    design: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("treated", "control", "weight", "estimate_2x2", "n_treated_units", "n_control_units"):
            object.__setattr__(self, name, _ro(getattr(self, name)))
        object.__setattr__(self, "type", tuple(self.type))

    estimator = "Goodman-Bacon decomposition"

    @property
    def estimate(self) -> float:
        """The decomposed TWFE coefficient (same as ``twfe``)."""
        return self.twfe

    @staticmethod
    def _label(v: float) -> str:
        return "never treated" if not np.isfinite(v) else fmt_value(v)

    def tidy(self) -> pd.DataFrame:
        """One row per 2x2: ``term, treated, control, type, weight, estimate, n_treated_units, n_control_units``.

        ``treated`` / ``control`` are the groups' first treated periods (``inf`` for the never treated).
        """
        terms = [f"{self._label(a)} vs {self._label(b)}" for a, b in zip(self.treated, self.control, strict=True)]
        return pd.DataFrame({
            "term": terms, "treated": np.array(self.treated), "control": np.array(self.control),
            "type": list(self.type), "weight": np.array(self.weight), "estimate": np.array(self.estimate_2x2),
            "n_treated_units": np.array(self.n_treated_units, dtype=np.int64),
            "n_control_units": np.array(self.n_control_units, dtype=np.int64),
        })

    def by_type(self) -> pd.DataFrame:
        """Total weight, weighted-average estimate and number of 2x2s per comparison type (bacondecomp's summary)."""
        rows = []
        t = np.asarray(self.type)
        for kind in TYPES:
            m = t == kind
            if not m.any():
                continue
            w = self.weight[m]
            avg = float(np.sum(w * self.estimate_2x2[m]) / np.sum(w)) if np.sum(w) > 0 else float("nan")
            rows.append((kind, float(np.sum(w)), avg, int(m.sum())))
        return pd.DataFrame(rows, columns=["type", "weight", "avg_estimate", "n_comparisons"])

    def _headline_lines(self) -> list[str]:
        out = [f"TWFE coefficient: {self.twfe:.6g}"]
        if self.within is None:
            out.append(f"Sum of weight x estimate over the 2x2s: {self.weighted_sum:.6g}")
        else:
            out.append(f"Within timing groups: estimate {self.within:.6g}, weight (Omega) {self.omega:.6g}")
            out.append(f"Between timing groups (the 2x2s below): weight {1 - (self.omega or 0.0):.6g}")
            out.append(f"Omega x within + (1 - Omega) x sum(weight x estimate): {self.weighted_sum:.6g}")
        return out

    def _rows(self) -> list[list[str]]:
        return [[self._label(float(a)), self._label(float(b)), k, fmt_num(float(w)), fmt_num(float(e))]
                for a, b, k, w, e in zip(self.treated, self.control, self.type, self.weight, self.estimate_2x2,
                                         strict=True)]

    def summary(self) -> Summary:
        title = f"didx · {self.estimator}"
        out = [title, "=" * len(title), "Design"]
        out += [f"  {k}: {v}" for k, v in self.design]
        out.append("Sample")
        out += ["  " + s for s in self.sample.lines()]
        out.append("Inference")
        out.append("  None: the decomposition is an algebraic identity of the point estimate (no standard errors).")
        out.append("")
        out += self._headline_lines()
        out.append("")
        bt = self.by_type()
        out.append(text_table(["type", "weight", "avg_estimate", "n_comparisons"],
                              [[str(k), fmt_num(float(w)), fmt_num(float(a)), str(c)] for k, w, a, c in
                               zip(bt["type"], bt["weight"], bt["avg_estimate"], bt["n_comparisons"], strict=True)]))
        out.append("")
        out.append(text_table(["treated", "control", "type", "weight", "estimate"], self._rows()))
        if self.notes:
            out.append("")
            out.append("Notes")
            out += ["  - " + n for n in self.notes]
        return Summary("\n".join(out))

    def to_markdown(self) -> str:
        return (markdown_table(["treated", "control", "type", "weight", "estimate"], self._rows())
                + f"\n\nGoodman-Bacon decomposition; TWFE = {self.twfe:.6g}")

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<BaconDecomposition: TWFE = {self.twfe:.6g} from {len(self.type)} 2x2 comparisons, "
                f"N = {self.sample.n_obs}>")

    def plot(self, ax: Any = None, *, title: str | None = None) -> Any:
        """Scatter of each 2x2 estimate against its weight, one marker per comparison type, with the TWFE
        coefficient as a horizontal line. Returns the matplotlib Axes."""
        import matplotlib.pyplot as plt

        check_ax("BaconDecomposition.plot", ax)
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.4))
        markers = {TREATED_VS_UNTREATED: "o", EARLIER_VS_LATER: "^", LATER_VS_EARLIER: "v",
                   LATER_VS_ALWAYS: "s", BOTH_TREATED: "D"}
        t = np.asarray(self.type)
        for kind in TYPES:
            m = t == kind
            if m.any():
                ax.scatter(self.weight[m], self.estimate_2x2[m], marker=markers[kind], label=kind, alpha=0.85)
        ax.axhline(self.twfe, color="0.3", linestyle="--", linewidth=1.0, label=f"TWFE = {self.twfe:.3g}")
        ax.axhline(0.0, color="0.7", linewidth=0.8)
        ax.set_xlabel("Weight")
        ax.set_ylabel("2x2 DiD estimate")
        ax.set_title(title if title is not None else "Goodman-Bacon decomposition")
        ax.legend(frameon=False, fontsize="small")
        return ax


# ---------------------------------------------------------------- helpers
def _cell_means(v: np.ndarray, group: np.ndarray, time: np.ndarray, n_groups: int, T: int) -> np.ndarray:
    key = group * T + time
    s = np.bincount(key, weights=v, minlength=n_groups * T)
    c = np.bincount(key, minlength=n_groups * T)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s / c).reshape(n_groups, T)


def _pop_var(x: np.ndarray) -> float:
    return float(np.mean((x - x.mean()) ** 2))


def _pop_cov(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x - x.mean()) * (y - y.mean())))


def _weight_uncontrolled(kind: str, n_k: float, n_l: float, D_k: float, D_l: float) -> float:
    """bacondecomp's (unnormalised) weight; ``k`` the treated-role group, ``l`` the control-role group."""
    if kind == TREATED_VS_UNTREATED:
        s = n_k / (n_k + n_l)
        return (n_k + n_l) ** 2 * s * (1 - s) * D_k * (1 - D_k)
    if kind == EARLIER_VS_LATER:
        s = n_k / (n_k + n_l)
        return ((n_k + n_l) * (1 - D_l)) ** 2 * s * (1 - s) * (D_k - D_l) / (1 - D_l) * (1 - D_k) / (1 - D_l)
    # later vs earlier / always treated: the control group (earlier) is treated throughout the window
    s = n_l / (n_k + n_l)
    return ((n_k + n_l) * D_l) ** 2 * s * (1 - s) * (D_k / D_l) * (D_l - D_k) / D_l


# ---------------------------------------------------------------- the estimator
def bacon(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str,
    covariates: str | Sequence[str] | None = None,
) -> BaconDecomposition:
    """Goodman-Bacon decomposition of the TWFE DiD coefficient into all 2x2 comparisons.

    Parameters
    ----------
    data : a balanced panel (pandas, polars, pyarrow, duckdb).
    y, unit, time : outcome, unit and period columns.
    treat : the 0/1 treatment indicator ``D_it``; it must be absorbing (once 1, 1 thereafter).
    covariates : time-varying controls; then the within/between decomposition of the controlled TWFE.

    Returns
    -------
    BaconDecomposition with ``twfe``, ``tidy()`` (one row per 2x2: treated, control, type, weight, estimate),
    ``by_type()``, ``summary()`` and ``plot()``.

    Notes
    -----
    Units treated from the first period ("always treated") are kept: they are the controls of "Later vs Always
    Treated" comparisons. Rows with missing values are dropped and reported; if that unbalances the panel,
    :class:`~didx.DesignError` explains it, since the decomposition is an identity only for balanced panels.
    Reference: Goodman-Bacon (2021), Journal of Econometrics 225(2); R package bacondecomp.
    """
    func = "bacon"
    if (src := engine_input(data, func)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.bacon import bacon_moments

        return bacon_moments(src, BaconDecomposition, (_uncontrolled, _group_labels, _identity_notes), y=y, unit=unit,
                             time=time, treat=treat, covariates=covariates)
    covs = as_list(covariates)
    panel = build_panel(data, func=func, y=y, time=time, unit=unit, treat=treat, covariates=covs or None,
                        require_control="untreated_obs")
    assert panel.unit is not None and panel.treat is not None and panel.unit_labels is not None
    if not panel.is_balanced:
        n_gap = panel.report.n_units_with_gaps
        dropped = panel.report.n_dropped_rows
        why = f" ({dropped} rows were dropped for missing values, see the sample report)" if dropped else ""
        counts = np.bincount(panel.unit, minlength=panel.n_units)
        n_short = int(np.count_nonzero(counts < panel.n_periods))
        raise DesignError(
            f"{func}: the panel is unbalanced: {n_short} of {panel.n_units} units are not observed in all "
            f"{panel.n_periods} periods{why}"
            f"{f'; {n_gap} of them have gaps' if n_gap else ''}. The Goodman-Bacon decomposition is an identity "
            f"of the TWFE coefficient only on a balanced panel (the weights are variance shares of the demeaned "
            f"treatment, which unbalancedness breaks). Fix: keep the units observed in every period (and fill or "
            f"drop missing outcomes), then decompose."
        )
    u, t, D, yv = panel.unit, panel.time, panel.treat, panel.y
    T, N = panel.n_periods, panel.n_units
    # timing groups: first treated period per unit (T = never)
    first = np.full(N, T, dtype=np.int64)
    tr = D == 1
    np.minimum.at(first, u[tr], t[tr])
    absorbing = (t >= first[u]).astype(np.float64) == D
    if not absorbing.all():
        r = int(np.flatnonzero(~absorbing)[0])
        raise DataError(
            f"{func}: the treatment {treat!r} is not absorbing: unit {fmt_value(panel.unit_labels[u[r]])} is "
            f"untreated in {fmt_value(panel.period_labels[t[r]])} after its first treated period "
            f"{fmt_value(panel.period_labels[first[u[r]]])}. The decomposition requires staggered adoption (once "
            f"treated, always treated). Fix: recode {treat!r} so it stays 1, or use an estimator for treatments "
            f"that switch off (didx.dcdh)."
        )
    levels, group_of_unit = np.unique(first, return_inverse=True)  # sorted: earlier groups first, never last
    n_groups = levels.shape[0]
    group = group_of_unit[u]
    units_per_group = np.bincount(group_of_unit, minlength=n_groups).astype(np.float64)
    periods = panel.periods

    def value(level: int) -> float:
        return float("inf") if level >= T else float(periods[level])

    fe = FixedEffects([u, t], [unit, time])
    X = np.column_stack([D, panel.covariates]) if covs else D[:, None]
    fit = fit_ols(yv, X, [treat, *covs], fe=fe, func=func, protected=[treat])
    twfe = float(fit.coef[0])

    design = [("Estimator", "Goodman-Bacon decomposition of two-way fixed effects"), ("Outcome", y),
              ("Treatment", treat), ("Unit", unit), ("Time", time),
              ("Covariates", ", ".join(f"{c} (dropped: collinear with the fixed effects)" if c in fit.dropped_collinear
                                       else c for c in covs) if covs else "none"),
              ("Timing groups", ", ".join(_group_labels(levels, periods, T)))]
    notes: list[str] = []
    if fit.dropped_collinear:
        notes.append(f"Covariate(s) {', '.join(fit.dropped_collinear)} dropped: collinear with the unit and time "
                     f"fixed effects (e.g. constant within units), so they control for nothing.")
    if covs:
        res = _controlled(yv, D, panel.covariates, u, t, group, levels, T, N, units_per_group, value)
    else:
        res = _uncontrolled(yv, group, t, levels, T, units_per_group, value)
    treated_v, control_v, kinds, weights, estimates, n_tr, n_co, within, omega = res
    if covs:
        assert within is not None and omega is not None
        weighted_sum = float(omega * within + (1 - omega) * np.sum(weights * estimates))
    else:
        weighted_sum = float(np.sum(weights * estimates))
    notes += _identity_notes(weighted_sum, twfe, levels, units_per_group, T)
    return BaconDecomposition(
        twfe=twfe, weighted_sum=weighted_sum, treated=treated_v, control=control_v, type=tuple(kinds),
        weight=weights, estimate_2x2=estimates, n_treated_units=n_tr, n_control_units=n_co,
        covariates=tuple(covs), within=within, omega=omega, sample=panel.report, design=tuple(design),
        notes=tuple(notes),
    )


def _identity_notes(weighted_sum: float, twfe: float, levels: np.ndarray, units_per_group: np.ndarray,
                    T: int) -> list[str]:
    """Notes on the reconstruction, the always-treated units and the absence of never-treated units."""
    notes: list[str] = []
    if abs(weighted_sum - twfe) > IDENTITY_TOL * max(1.0, abs(twfe)):
        notes.append(f"The reconstruction {weighted_sum:.10g} differs from the TWFE coefficient {twfe:.10g}; "
                     f"check for collinear covariates.")
    n_always = int(units_per_group[levels == 0].sum()) if levels[0] == 0 else 0
    if n_always:
        notes.append(f"{n_always} units are treated in every period (always treated): they serve only as controls "
                     f"('{LATER_VS_ALWAYS}').")
    if not np.any(levels >= T):
        notes.append("No never-treated units: every comparison is between timing groups.")
    return notes


def _group_labels(levels: np.ndarray, periods: np.ndarray, T: int) -> list[str]:
    out = []
    for lv in levels:
        if lv >= T:
            out.append("never treated")
        elif lv == 0:
            out.append(f"{fmt_value(periods[lv])} (always treated)")
        else:
            out.append(fmt_value(periods[lv]))
    return out


Parts = tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray,
              float | None, float | None]


def _uncontrolled(yv: np.ndarray, group: np.ndarray, t: np.ndarray, levels: np.ndarray, T: int,
                  units_per_group: np.ndarray, value: Any) -> Parts:
    n_groups = levels.shape[0]
    Ybar = _cell_means(yv, group, t, n_groups, T)  # groups x periods
    cums = np.concatenate([np.zeros((n_groups, 1)), np.cumsum(Ybar, axis=1)], axis=1)

    def mean_over(gi: int, lo: int, hi: int) -> float:  # mean of Ybar[gi, lo:hi]
        return float((cums[gi, hi] - cums[gi, lo]) / (hi - lo))

    rows: list[tuple[float, float, str, float, float, float, float]] = []
    for gk in range(n_groups):
        k = int(levels[gk])
        if k >= T or k == 0:  # never-treated and always-treated groups are never the treated side
            continue
        for gl in range(n_groups):
            if gl == gk:
                continue
            lv = int(levels[gl])
            if lv >= T:
                kind, lo, hi = TREATED_VS_UNTREATED, 0, T
            elif k < lv:
                kind, lo, hi = EARLIER_VS_LATER, 0, lv
            else:
                kind, lo, hi = (LATER_VS_ALWAYS if lv == 0 else LATER_VS_EARLIER), lv, T
            # 2x2 DiD of means: the treated group's post (t >= k) minus pre, against the same for the control
            est = ((mean_over(gk, k, hi) - mean_over(gk, lo, k)) - (mean_over(gl, k, hi) - mean_over(gl, lo, k)))
            width = hi - lo
            n_k = units_per_group[gk] * width
            n_l = units_per_group[gl] * width
            D_k = (hi - k) / width
            D_l = 0.0 if kind in (TREATED_VS_UNTREATED, EARLIER_VS_LATER) else 1.0
            w = _weight_uncontrolled(kind, n_k, n_l, D_k, D_l)
            rows.append((value(k), value(lv), kind, w, est, units_per_group[gk], units_per_group[gl]))
    if not rows:
        raise DesignError("bacon: there is no 2x2 comparison: the data need at least one timing group treated after "
                          "the first period and a second group to compare with.")
    arr = np.array([(r[0], r[1], r[3], r[4], r[5], r[6]) for r in rows])
    weights = arr[:, 2] / arr[:, 2].sum()
    return (arr[:, 0], arr[:, 1], [r[2] for r in rows], weights, arr[:, 3], arr[:, 4], arr[:, 5], None, None)


def _controlled(yv: np.ndarray, D: np.ndarray, Xc: np.ndarray, u: np.ndarray, t: np.ndarray, group: np.ndarray,
                levels: np.ndarray, T: int, N: int, units_per_group: np.ndarray, value: Any) -> Parts:
    n_groups = levels.shape[0]
    fe = FixedEffects([u, t], ["unit", "time"])
    # treatment on covariates and the two-way fixed effects: residual d, fitted p
    Dd = fe.demean(D)
    Xd = fe.demean(Xc)
    gamma = np.linalg.lstsq(Xd, Dd, rcond=None)[0]
    d = Dd - Xd @ gamma
    p = D - d
    d_i = (np.bincount(u, weights=d, minlength=N) / np.bincount(u, minlength=N))[u]
    d_t = (np.bincount(t, weights=d, minlength=T) / np.bincount(t, minlength=T))[t]
    d_bar = float(d.mean())
    d_it_til = d - d_i - d_t + d_bar
    d_kt = _cell_means(d, group, t, n_groups, T)[group, t]
    d_k = (np.bincount(group, weights=d, minlength=n_groups) / np.bincount(group, minlength=n_groups))[group]
    d_ikt_til = d - d_i - (d_kt - d_k)
    omega = _pop_var(d_ikt_til) / _pop_var(d_it_til)
    within = _pop_cov(yv, d_ikt_til) / _pop_var(d_ikt_til)
    # group x period means of the covariates and of the fitted treatment
    gX = np.column_stack([_cell_means(Xc[:, j], group, t, n_groups, T)[group, t] for j in range(Xc.shape[1])])
    gp = _cell_means(p, group, t, n_groups, T)[group, t]
    rows: list[tuple[float, float, str, float, float, float, float]] = []
    for gi in range(n_groups):
        i = int(levels[gi])
        if i >= T:
            continue
        for gj in range(gi + 1, n_groups):
            j = int(levels[gj])
            m = (group == gi) | (group == gj)
            sub_u = factorize(u[m], sort=False)[0]
            fe_s = FixedEffects([sub_u, t[m]], ["unit", "time"])
            Dt = fe_s.demean(D[m])
            VD = _pop_var(Dt)
            pg = fe_s.demean(gX[m])
            Z = np.column_stack([np.ones(pg.shape[0]), pg])
            coef = np.linalg.lstsq(Z, Dt, rcond=None)[0]
            pgj = Z @ coef
            sst = float(np.sum((Dt - Dt.mean()) ** 2))
            rsq = 1.0 - float(np.sum((Dt - pgj) ** 2)) / sst if sst > 0 else 0.0
            ptil = fe_s.demean(gp[m])
            dp = pgj - ptil
            Vdp = _pop_var(dp)
            ys = yv[m]
            if VD > 1e-14:
                bd_fit = fit_ols(ys, np.column_stack([D[m], gX[m]]), ["D", *[f"g{c}" for c in range(gX.shape[1])]],
                                 fe=fe_s, func="bacon", protected=["D"])
                BD = float(bd_fit.coef[0])
            else:
                BD = 0.0
            if Vdp > 1e-14:
                Bb = float(fit_ols(ys, dp[:, None], ["dp"], fe=fe_s, func="bacon").coef[0])
            else:
                Bb = 0.0
            a = (1.0 - rsq) * VD
            s_kl = float(m.sum()) ** 2 * (a + Vdp)
            est = (a * BD + Vdp * Bb) / (a + Vdp) if (a + Vdp) > 0 else float("nan")
            if j >= T:
                kind = TREATED_VS_UNTREATED
            elif i == 0 or j == 0:
                kind = LATER_VS_ALWAYS
            else:
                kind = BOTH_TREATED
            rows.append((value(i), value(j), kind, s_kl, est, units_per_group[gi], units_per_group[gj]))
    if not rows:
        raise DesignError("bacon: there is no pair of timing groups to compare.")
    arr = np.array([(r[0], r[1], r[3], r[4], r[5], r[6]) for r in rows])
    weights = arr[:, 2] / arr[:, 2].sum()
    return (arr[:, 0], arr[:, 1], [r[2] for r in rows], weights, arr[:, 3], arr[:, 4], arr[:, 5], within, omega)
