"""The canonical 2x2 difference-in-differences: the cell-mean table and the interacted regression.

``y = a + b G + c T + tau G*T (+ W'beta) (+ (W x T)'gamma) + e`` with ``G`` the treated-group dummy (``treat=``)
and ``T`` the post-period dummy (``post=``); without covariates ``tau`` equals the cell-mean
difference in differences ``(Ybar_11 - Ybar_10) - (Ybar_01 - Ybar_00)`` exactly. With ``unit=`` the group dummy
and intercept are replaced by unit fixed effects (``y = a_i + c T + tau G*T + e``).

Reference: Card & Krueger (1994); the numbers of R's ``lm(fte ~ nj * d)`` with sandwich SEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DataError, InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped
from didx._validate import as_list, fmt_value
from didx.engines.source import engine_input
from didx.estimators.regression.collapse import collapse_by_group
from didx.estimators.regression.common import RegressionResult, default_spec, make_regression_result
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import OLSFit, fit_ols
from didx.results.plot import check_ax
from didx.results.render import fmt_num, latex_table, markdown_table, text_table


@dataclass(frozen=True)
class CellTable:
    """The 2x2 table: cell means (SE, n) by group and period, the changes, the differences and the DiD.

    ``means``/``ses``/``ns`` are indexed ``[group, post]`` (0 = control / before, 1 = treated / after). The SEs of
    the cells are ``sd / sqrt(n)`` of each cell; the SEs of the differences are linear combinations of the
    regression's coefficients under the chosen covariance.
    """

    means: np.ndarray
    ses: np.ndarray
    ns: np.ndarray
    change: np.ndarray  # by group: after - before
    change_se: np.ndarray
    difference: np.ndarray  # by period: treated - control
    difference_se: np.ndarray
    did: float
    did_se: float
    labels: tuple[str, str] = ("Treated", "Control")
    se_note: str = ""  # why the SEs of the differences are not shown, if they are not

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for g, name in ((1, self.labels[0]), (0, self.labels[1])):
            rows.append({"group": name, "before": self.means[g, 0], "after": self.means[g, 1],
                         "change": self.change[g], "before_se": self.ses[g, 0], "after_se": self.ses[g, 1],
                         "change_se": self.change_se[g], "n_before": int(self.ns[g, 0]),
                         "n_after": int(self.ns[g, 1])})
        rows.append({"group": "Difference", "before": self.difference[0], "after": self.difference[1],
                     "change": self.did, "before_se": self.difference_se[0], "after_se": self.difference_se[1],
                     "change_se": self.did_se, "n_before": int(self.ns[:, 0].sum()),
                     "n_after": int(self.ns[:, 1].sum())})
        return pd.DataFrame(rows)

    def _rows(self) -> list[list[str]]:
        def p(v: float) -> str:
            return "" if np.isnan(v) else f"({fmt_num(v, 2)})"

        out = []
        for g, name in ((1, self.labels[0]), (0, self.labels[1])):
            out.append([name, fmt_num(self.means[g, 0], 2), fmt_num(self.means[g, 1], 2), fmt_num(self.change[g], 2)])
            out.append(["", p(self.ses[g, 0]), p(self.ses[g, 1]), p(self.change_se[g])])
            out.append(["", f"n={int(self.ns[g, 0])}", f"n={int(self.ns[g, 1])}", ""])
        out.append(["Difference", fmt_num(self.difference[0], 2), fmt_num(self.difference[1], 2),
                    fmt_num(self.did, 2)])
        out.append(["", p(self.difference_se[0]), p(self.difference_se[1]), p(self.did_se)])
        return out

    _HEADER = ("", "Before", "After", "Change")

    def __str__(self) -> str:
        foot = ("Cell SEs: sd/sqrt(n) per cell; SEs of differences from the regression's covariance. "
                "Bottom-right: the difference in differences.")
        if self.se_note:
            foot += " " + self.se_note
        return text_table(self._HEADER, self._rows()) + "\n" + foot

    def __repr__(self) -> str:
        return str(self)

    def to_markdown(self) -> str:
        return markdown_table(self._HEADER, self._rows())

    def to_latex(self) -> str:
        return latex_table(self._HEADER, self._rows(), caption="Difference in differences: cell means")


@dataclass(frozen=True, eq=False)
class DiD2x2Result(RegressionResult):
    """Result of :func:`did2x2`; ``.table`` is the cell-mean table."""

    @property
    def table(self) -> CellTable:
        """The cell-mean table; SEs of its differences follow this result's covariance."""
        e = self.extras
        return _make_table(self, e["means"], e["ses"], e["ns"], e["treat"], e["post"], e["pooled"],
                           e.get("cell_regression", True))

    def _summary_extra(self) -> list[str]:
        return ["Cell means", str(self.table)]

    def plot(self, ax: Any = None, *, labels: tuple[str, str] = ("Treated", "Control"),  # type: ignore[override]
             period_labels: tuple[str, str] = ("Before", "After")) -> Any:
        """The 2x2 picture: group means before and after, and the treated group's counterfactual under
        parallel trends (dashed); the vertical gap at "After" is the DiD. Returns the Axes.

        ``labels``: the names of the treated and control groups; ``period_labels``: of the two periods.
        """
        check_ax("DiD2x2Result.plot", ax)
        for name, value in (("labels", labels), ("period_labels", period_labels)):
            _check_pair(name, value)
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        m = self.table.means
        x = [0, 1]
        ax.plot(x, m[1], "o-", color="C0", label=labels[0])
        ax.plot(x, m[0], "s-", color="C1", label=labels[1])
        counterfactual = [m[1, 0], m[1, 0] + (m[0, 1] - m[0, 0])]
        ax.plot(x, counterfactual, "o--", color="C0", alpha=0.5, label=f"{labels[0]}, parallel-trends counterfactual")
        ax.annotate("", xy=(1.03, m[1, 1]), xytext=(1.03, counterfactual[1]),
                    arrowprops={"arrowstyle": "<->", "color": "0.3"})
        ax.text(1.06, (m[1, 1] + counterfactual[1]) / 2, f"DiD = {self.table.did:.3g}", va="center")
        ax.set_xticks(x, list(period_labels))
        ax.set_xlim(-0.2, 1.45)
        ax.set_ylabel(f"Mean of {self.extras.get('y', 'outcome')}")
        ax.set_title("Difference in differences")
        ax.legend(loc="best", frameon=False, fontsize="small")
        return ax


def _check_pair(name: str, value: Any) -> None:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(
        isinstance(v, str) for v in value)
    if not ok:
        example = "('Treated', 'Control')" if name == "labels" else "('Before', 'After')"
        raise InvalidOptionError(
            f"The {name!r} parameter of DiD2x2Result.plot must be a pair of strings, e.g. {name}={example}. "
            f"Got {value!r} instead."
        )


def check_bool(func: str, name: str, value: Any) -> bool:
    """A True/False option (numpy booleans too), or an error naming it: a string such as ``'yes'`` or a number is
    not silently read as its truth value. (Local to the regression estimators: :mod:`didx._validate` has no
    boolean check yet.)"""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise InvalidOptionError(
        f"The {name!r} parameter of {func} must be a bool. Got {value!r} instead. Fix: pass {name}=True or "
        f"{name}=False."
    )


def _cell_stats(y: np.ndarray, g: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
    means = np.zeros((2, 2))
    ses = np.zeros((2, 2))
    ns = np.zeros((2, 2), dtype=np.int64)
    for gi in (0, 1):
        for pi in (0, 1):
            m = (g == gi) & (p == pi)
            yy = y[m]
            n = int(m.sum())
            ns[gi, pi] = n
            if w is None:
                means[gi, pi] = yy.mean()
                ses[gi, pi] = yy.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
            else:
                ww = w[m]
                mu = float(np.sum(ww * yy) / np.sum(ww))
                means[gi, pi] = mu
                ses[gi, pi] = (np.sqrt(np.sum(ww**2 * (yy - mu) ** 2)) / np.sum(ww) * np.sqrt(n / (n - 1))
                               if n > 1 else np.nan)
    return means, ses, ns


def did2x2(
    data: Any,
    *,
    y: str,
    treat: str | None = None,
    post: str,
    unit: str | None = None,
    covariates: str | Sequence[str] | None = None,
    covariate_trends: bool = False,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    first_difference: bool = False,
    collapse: str | None = None,
) -> DiD2x2Result:
    """Two-group, two-period difference in differences.

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...).
    y : outcome column.
    treat : 0/1 treated-group dummy ``G``: 1 on every row of a treated unit, before and after (constant within a
        unit); the treatment itself is ``treat x post``.
    post : 0/1 period indicator, 1 for the period after treatment (a 0/1 column, not a general time column: the
        design has exactly two periods).
    unit : optional unit column; adds unit fixed effects (the panel version) and clusters by unit by default.
    covariates : columns entered in levels (precision); with ``covariate_trends=True`` also interacted with
        ``post`` (conditional parallel trends: the trend may depend on W).
    vcov : ``"iid"``, ``"HC0"``, ``"HC1"``, ``"hetero"``, ``"HC2"``, ``"HC3"``, ``"CR1"``, ``"CR3"``. Default: CR1
        by ``cluster`` if given, else by ``unit`` if given, else HC1. See :mod:`didx.inference.vcov`.
    cluster : cluster column(s); two for two-way clustering.
    weights : sampling weights (weighted least squares); zero-weight rows are dropped and counted.
    ssc : small-sample correction (:class:`didx.SSC`).
    first_difference : with ``unit=``, estimate ``dy_i = c + tau G_i (+ dW_i'b) (+ W_i0'g) + e_i`` on the units
        observed in both periods (the others are dropped and counted). On a balanced panel ``tau`` equals the
        unit fixed-effects and pooled estimates; its SEs are those of a cross-section of units (default HC1),
        e.g. Card & Krueger's balanced first-difference regression.
    collapse : ``"group_period"`` / ``"group_period_weighted"``: estimate on ``cluster`` x period cell means with
        ``cluster`` fixed effects (Bertrand, Duflo & Mullainathan 2004), see :mod:`didx.estimators.regression.collapse`.

    Returns
    -------
    DiD2x2Result : ``.estimate`` is tau (the coefficient of ``treat:post``); ``.table`` is the cell-mean table.
    """
    func = "did2x2"
    treat = _treat_column(func, treat)
    first_difference = check_bool(func, "first_difference", first_difference)
    covariate_trends = check_bool(func, "covariate_trends", covariate_trends)
    if (src := engine_input(data, func)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.regression import did2x2_moments

        return did2x2_moments(src, DiD2x2Result, y=y, treat=treat, post=post, unit=unit, covariates=covariates,
                              covariate_trends=covariate_trends, vcov=vcov, cluster=cluster, weights=weights,
                              ssc=ssc, first_difference=first_difference, collapse=collapse)
    panel = build_panel(data, func=func, y=y, time=post, unit=unit, treat=treat, covariates=as_list(covariates),
                        weights=weights, cluster=cluster, require_control="untreated_obs", zero_weights="drop",
                        treat_role="treated group")
    # from here on the resolved column names (the str of an integer label), not the arguments as given
    names = panel.names
    y, treat, post, unit, weights = names["y"], names["treat"], names["time"], names["unit"], names["weights"]
    cluster = list(names["cluster"]) or None
    cov_list = list(panel.covariate_names)
    _check_design(func, panel, treat=treat, post=post, unit=unit)
    collapsed = None
    if collapse is not None:
        panel, collapsed = collapse_by_group(panel, func=func, collapse=collapse, cluster=cluster)
        unit = collapsed.group
    if first_difference:
        return _first_difference(panel, y=y, treat=treat, post=post, unit=unit, cov_list=cov_list,
                                 covariate_trends=covariate_trends, vcov=vcov, cluster=cluster, weights=weights,
                                 ssc=ssc)
    fit = _fit_levels(panel, treat=treat, post=post, unit=unit, cov_list=cov_list,
                      covariate_trends=covariate_trends)
    spec = resolve_vcov(func, vcov, cluster, default_spec([unit] if unit is not None else [], "HC1", ssc), ssc)
    codes = dict(panel.codes)
    if unit is not None and panel.unit is not None:
        codes.setdefault(unit, panel.unit)
    G = np.asarray(panel.treat)
    means, ses, ns = _cell_stats(panel.y, G, panel.time, panel.weights)
    design = [
        ("Estimator", "2x2 difference in differences (interacted regression)"),
        ("Outcome", y),
        ("Treated group", f"{treat} == 1"),
        ("Post period", f"{post} == 1"),
        ("Fixed effects", f"unit ({unit})" if unit else "none (group and period dummies)"),
        ("Covariates", ", ".join(cov_list) if cov_list else "none"),
        ("Covariate trends (W x post)", "yes" if covariate_trends else "no"),
        ("Weights", weights or "none"),
    ]
    if collapsed is not None:
        design.append(("Collapse", collapsed.describe()))
    res: DiD2x2Result = make_regression_result(
        DiD2x2Result, estimator="2x2 DiD", fit=fit, headline=f"{treat}:{post}", spec=spec, codes=codes,
        fingerprint=panel.fingerprint,
        row_index=None if panel.all_rows_kept else panel.row_index, sample=panel.report, design=design, treated=G,
        func=func, collapse_info=collapsed,
        extras={"means": means, "ses": ses, "ns": ns, "treat": treat, "post": post, "pooled": panel.unit is None,
                "y": y, "cell_regression": not cov_list and (panel.unit is None or bool(panel.report.balanced))},
    )
    return res


def _treat_column(func: str, treat: str | None) -> str:
    name = treat
    if name is None:
        raise InvalidOptionError(
            f"{func}: treat= is required: the 0/1 treated-group column (1 on every row of a treated unit, before "
            f"and after). Fix: e.g. did2x2(df, y='fte', treat='nj', post='d')."
        )
    return name


def _check_design(func: str, panel: Panel, *, treat: str, post: str, unit: str | None) -> None:
    """``post`` is a 0/1 indicator; the treated group is fixed within a unit."""
    if not np.array_equal(panel.periods, [0.0, 1.0]):
        raise DataError(
            f"{func}: the post column {post!r} must be a 0/1 indicator (1 after treatment), but its values are "
            f"{', '.join(fmt_num(v, 4) for v in panel.period_labels[:6])}. Fix: recode it, e.g. "
            f"(df[{post!r}] >= first_post_period).astype(int)."
        )
    if panel.unit is None:
        return
    G = np.asarray(panel.treat)
    first = np.full(panel.n_units, np.nan)
    first[panel.unit] = G
    varies = first[panel.unit] != G
    if varies.any():
        u = int(panel.unit[np.flatnonzero(varies)[0]])
        label = panel.unit_labels[u] if panel.unit_labels is not None else u
        raise DataError(
            f"{func}: the treated group column {treat!r} varies within unit {unit}={fmt_value(label)} (it is 0 in "
            f"one period and 1 in the other). The treated group must be fixed per unit (treat= is the group dummy, "
            f"not the treatment status). Fix: set {treat!r} to 1 for every row of a treated unit (and use post= for "
            f"the timing)."
        )


def _fit_levels(panel: Panel, *, treat: str, post: str, unit: str | None, cov_list: list[str],
                covariate_trends: bool) -> OLSFit:
    """``y = a + b G + c T + tau G T (+ W) (+ W T)``, or with unit effects instead of ``a + b G``."""
    G = np.asarray(panel.treat)
    T = panel.time.astype(np.float64)
    cols: list[np.ndarray] = []
    names: list[str] = []
    fe = None
    if panel.unit is None:
        cols += [np.ones_like(T), G, T, G * T]
        names += ["(Intercept)", treat, post, f"{treat}:{post}"]
    else:
        fe = FixedEffects([panel.unit], [unit or "unit"], weights=panel.weights)
        cols += [T, G * T]
        names += [post, f"{treat}:{post}"]
    W = panel.covariates
    for j, c in enumerate(cov_list):
        cols.append(W[:, j])
        names.append(c)
    if covariate_trends:
        for j, c in enumerate(cov_list):
            cols.append(W[:, j] * T)
            names.append(f"{c}:{post}")
    return fit_ols(panel.y, np.column_stack(cols), names, fe=fe, weights=panel.weights, func="did2x2",
                   protected=[f"{treat}:{post}"])


def _first_difference(panel: Panel, *, y: str, treat: str, post: str, unit: str | None,
                      cov_list: list[str], covariate_trends: bool, vcov: str | None,
                      cluster: str | Sequence[str] | None, weights: str | None, ssc: SSC | None) -> DiD2x2Result:
    func = "did2x2"
    if panel.unit is None:
        raise InvalidOptionError(
            f"{func}: first_difference=True needs unit= (the column identifying a unit across the two periods). "
            f"Fix: pass unit='your_unit_id', or drop first_difference=True for the pooled regression."
        )
    n_units = panel.n_units
    both = np.bincount(panel.unit, minlength=n_units) == 2
    pre_row = np.full(n_units, -1, dtype=np.int64)
    post_row = np.full(n_units, -1, dtype=np.int64)
    rows = np.arange(panel.n_obs)
    pre_row[panel.unit[panel.time == 0]] = rows[panel.time == 0]
    post_row[panel.unit[panel.time == 1]] = rows[panel.time == 1]
    units = np.flatnonzero(both)
    r0, r1 = pre_row[units], post_row[units]
    n_lost = int(n_units - units.shape[0])
    report = panel.report.with_dropped(
        Dropped("unit not observed in both periods (first difference)", int(panel.n_obs - 2 * units.shape[0]),
                n_lost))
    report = replace(report, n_obs=int(units.shape[0]), n_units=int(units.shape[0]))
    dy = panel.y[r1] - panel.y[r0]
    Gu = np.asarray(panel.treat)[r0]
    cols = [np.ones(units.shape[0]), Gu]
    names = [post, f"{treat}:{post}"]
    W = panel.covariates
    for j, c in enumerate(cov_list):
        cols.append(W[r1, j] - W[r0, j])
        names.append(f"d({c})")
    if covariate_trends:
        for j, c in enumerate(cov_list):
            cols.append(W[r0, j])
            names.append(f"{c}:{post}")
    w = None if panel.weights is None else panel.weights[r0]
    headline = f"{treat}:{post}"
    fit = fit_ols(dy, np.column_stack(cols), names, weights=w, func=func, protected=[headline])
    spec = resolve_vcov(func, vcov, cluster, default_spec([], "HC1", ssc), ssc)
    codes: dict[str, np.ndarray] = {}
    for name, cl in panel.codes.items():
        if np.any(cl[r0] != cl[r1]):
            raise DataError(
                f"{func}: the cluster column {name!r} changes between the two periods for some units; with "
                f"first_difference=True each unit is one observation. Fix: cluster by a unit-level variable."
            )
        codes[name] = cl[r0]
    rows_fd = np.concatenate([r0, r1])  # the cells of the units that enter the first differences
    means, ses, ns = _cell_stats(panel.y[rows_fd], np.asarray(panel.treat)[rows_fd], panel.time[rows_fd],
                                 None if w is None else np.concatenate([w, w]))  # the unit's weight, as in the fit
    design = [
        ("Estimator", "2x2 difference in differences (first differences of a balanced panel)"),
        ("Outcome", f"change in {y} between {post} == 0 and {post} == 1"),
        ("Treated group", f"{treat} == 1"),
        ("Unit", unit or ""),
        ("Covariates", ", ".join(f"d({c})" for c in cov_list) if cov_list else "none"),
        ("Covariate trends (W x post)", "yes (baseline W)" if covariate_trends else "no"),
        ("Weights", weights or "none"),
    ]
    res: DiD2x2Result = make_regression_result(
        DiD2x2Result, estimator="2x2 DiD (first differences)", fit=fit, headline=headline, spec=spec,
        codes=codes, fingerprint=panel.fingerprint, row_index=panel.row_index[r0], sample=report, design=design,
        treated=Gu,
        func=func,
        extras={"means": means, "ses": ses, "ns": ns, "treat": treat, "post": post, "pooled": False, "y": y,
                "cell_regression": not cov_list},
    )
    return res


def _make_table(res: RegressionResult, means: np.ndarray, ses: np.ndarray, ns: np.ndarray, treat: str, post: str,
                pooled: bool, cell_regression: bool = True) -> CellTable:
    """Differences of cell means with SEs from the regression covariance (linear combinations of b).

    The SEs of the differences are shown only when the regression's coefficients *are* those differences
    (``cell_regression``: no covariates, and pooled, first-differenced or unit effects on a balanced panel);
    otherwise they would be the SEs of covariate-adjusted (or unbalanced-FE) coefficients printed next to raw
    cell-mean differences.
    """
    terms = res.terms
    V = res.vcov_matrix
    if not cell_regression:
        nan2 = np.array([np.nan, np.nan])
        change = means[:, 1] - means[:, 0]
        return CellTable(means=means, ses=ses, ns=ns, change=change, change_se=nan2,
                         difference=means[1, :] - means[0, :], difference_se=nan2, did=float(change[1] - change[0]),
                         did_se=float("nan"),
                         se_note=("SEs of the differences are not shown: with covariates or unit effects on an "
                                  "unbalanced panel the regression's tau is not this cell-mean DiD (see the "
                                  "estimates)."))

    def lin(weights: dict[str, float]) -> float:
        a = np.zeros(len(terms))
        for t, v in weights.items():
            if t not in terms:
                return float("nan")
            a[terms.index(t)] = v
        return float(np.sqrt(a @ V @ a))

    gp = f"{treat}:{post}"
    change = means[:, 1] - means[:, 0]
    difference = means[1, :] - means[0, :]
    did = float(change[1] - change[0])
    change_se = np.array([lin({post: 1.0}), lin({post: 1.0, gp: 1.0})])
    if pooled:
        difference_se = np.array([lin({treat: 1.0}), lin({treat: 1.0, gp: 1.0})])
    else:
        difference_se = np.array([np.nan, np.nan])
    return CellTable(means=means, ses=ses, ns=ns, change=change, change_se=change_se, difference=difference,
                     difference_se=difference_se, did=did, did_se=lin({gp: 1.0}))
