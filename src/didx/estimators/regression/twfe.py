"""Two-way fixed effects over many periods.

``y_it = a_i + l_t + tau D_it (+ W_it' b) (+ other fixed effects) + e_it``, the fixed effects absorbed without
dummy matrices (:mod:`didx.linalg.absorb`): exact for one or two factors, alternating projections beyond.
Standard errors follow fixest (default: clustered by unit). Reference: ``fixest::feols(y ~ d | unit + time)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from didx._errors import InvalidOptionError
from didx._panel import Panel, build_panel
from didx._sample import Dropped, SampleReport
from didx._validate import as_list
from didx.engines.source import engine_input
from didx.estimators.regression.collapse import collapse_by_group
from didx.estimators.regression.common import RegressionResult, default_spec, make_regression_result
from didx.estimators.regression.twobytwo import check_bool
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols


@dataclass(frozen=True, eq=False)
class TWFEResult(RegressionResult):
    """Result of :func:`twfe`."""


def twfe(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str | None = None,
    cohort: str | None = None,
    covariates: str | Sequence[str] | None = None,
    fe: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    drop_singletons: bool = False,
    collapse: str | None = None,
) -> TWFEResult:
    """Static two-way fixed-effects DiD.

    Parameters
    ----------
    y, unit, time : outcome, unit and period columns.
    treat : 0/1 column, ``D_it`` (treated at t). Or:
    cohort : first treated period per unit (0 / NaN / inf / after the last period = never treated); then
        ``D_it = 1[t >= cohort]``.
    covariates : time-varying controls W.
    fe : extra fixed effects absorbed besides unit and time.
    vcov : ``"iid"``, ``"hetero"``, ``"HC1"``, ``"CR1"``, ``"CR3"`` ... Default: CR1 clustered by ``cluster`` or,
        if not given, by ``unit`` (fixest's default).
    cluster : one or two cluster columns.
    ssc : small-sample correction; ``didx.SSC(adj=False, cluster_adj=False)`` switches it off.
    drop_singletons : drop observations alone in a fixed-effect level, repeatedly until none is left (as reghdfe;
        fixest's ``fixef.rm = "singleton"``). By default they are kept, counted and reported, as fixest does;
        they do not move the estimate, only the counts of ``n`` and ``K``.
    collapse : ``"group_period"`` / ``"group_period_weighted"``: estimate on group x period cell means (groups:
        ``cluster`` if given, else the cohorts), see :mod:`didx.estimators.regression.collapse`.
    """
    func = "twfe"
    if treat is None and cohort is None:
        raise InvalidOptionError(
            f"{func}: give the treatment, either treat= (a 0/1 column D_it) or cohort= (each unit's first treated "
            f"period; 0, NaN or inf for never treated). Fix: add treat='your_indicator' or cohort='first_treated'."
        )
    drop_singletons = check_bool(func, "drop_singletons", drop_singletons)
    if (src := engine_input(data, func)) is not None:  # a file, a DuckDB relation or a Spark frame: didx.engines
        from didx.engines.regression import twfe_moments

        return twfe_moments(src, TWFEResult, _design, y=y, unit=unit, time=time, treat=treat,
                            cohort=cohort, covariates=covariates, fe=fe, vcov=vcov, cluster=cluster,
                            weights=weights, ssc=ssc, drop_singletons=drop_singletons, collapse=collapse)
    panel = build_panel(data, func=func, y=y, unit=unit, time=time, treat=treat, cohort=cohort,
                        covariates=covariates, weights=weights, cluster=cluster, categorical=as_list(fe),
                        require_control="untreated_obs", zero_weights="drop")
    # from here on the resolved column names (the str of an integer label), not the arguments as given
    names = panel.names
    y, unit, time, treat, cohort, weights = (names["y"], names["unit"], names["time"], names["treat"],
                                             names["cohort"], names["weights"])
    cluster = list(names["cluster"]) or None
    fe_list = [str(c) for c in as_list(fe)]  # build_panel checked each with column_name: its name is str(label)
    collapsed = None
    if collapse is not None:
        panel, collapsed = collapse_by_group(panel, func=func, collapse=collapse, cluster=cluster,
                                             constant={f"fixed effect {c}": panel.codes[c] for c in fe_list})
        unit = collapsed.group
    assert panel.unit is not None and panel.treat is not None
    fe_names = [unit, time, *fe_list]
    factors = [panel.unit, panel.time] + [panel.codes[c] for c in fe_list]
    keep, factors, report, n_singletons = _singleton_sample(panel, factors, drop_singletons)
    all_kept = bool(keep.all())
    idx = np.flatnonzero(keep)

    def take(a: np.ndarray) -> np.ndarray:
        return a if all_kept else a[idx]

    w = None if panel.weights is None else take(panel.weights)
    fes = FixedEffects(factors, fe_names, weights=w)
    D = take(panel.treat)
    treat_name = treat if treat is not None else "treated"
    X = np.column_stack([D, take(panel.covariates)]) if panel.covariates.shape[1] else D[:, None]
    fit = fit_ols(take(panel.y), X, [treat_name, *panel.covariate_names], fe=fes, weights=w, func=func,
                  protected=[treat_name])
    spec = resolve_vcov(func, vcov, cluster, default_spec([unit], "iid", ssc), ssc)
    codes = {k: take(v) for k, v in panel.codes.items()}
    codes.setdefault(unit, factors[0])
    codes.setdefault(time, factors[1])
    timing = _timing(take(panel.unit), take(panel.time), D, panel.n_units, panel.n_periods)
    design, notes = _design(timing, y=y, treat=treat, cohort=cohort, time=time, fe=fe_names, method=fes.method,
                            covariates=panel.covariate_names, weights=weights, n_singletons=n_singletons,
                            drop_singletons=drop_singletons)
    if collapsed is not None:
        design.append(("Collapse", collapsed.describe()))
    res: TWFEResult = make_regression_result(
        TWFEResult, estimator="Two-way fixed effects", fit=fit, headline=treat_name, spec=spec, codes=codes,
        fingerprint=panel.fingerprint, row_index=None if (all_kept and panel.all_rows_kept) else panel.row_index[idx],
        sample=report, design=design, treated=D,
        notes=notes, func=func, collapse_info=collapsed,
    )
    return res


def _singleton_sample(panel: Panel, factors: list[np.ndarray], drop_singletons: bool
                      ) -> tuple[np.ndarray, list[np.ndarray], SampleReport, int]:
    """Rows kept, the factors on them, the report and the singleton count. Singletons (alone in a level of some
    factor) are counted; with ``drop_singletons`` they are dropped repeatedly until none is left (reghdfe)."""
    keep = np.ones(panel.n_obs, dtype=bool)
    single = _singletons(factors, keep)
    n_singletons = int(single.sum())
    if not (drop_singletons and n_singletons):
        return keep, factors, panel.report, n_singletons
    while single.any():  # dropping singletons can create new ones: repeat until none is left
        keep &= ~single
        single = _singletons(factors, keep)
    total = int((~keep).sum())  # every round counted
    assert panel.unit is not None
    units_left = np.unique(panel.unit[keep]).shape[0]
    report = panel.report.with_dropped(Dropped("singleton in a fixed effect (drop_singletons=True)", total,
                                               panel.n_units - units_left))
    report = replace(report, n_obs=int(keep.sum()), n_units=units_left)
    return keep, [_recode(f[keep]) for f in factors], report, total


def _design(timing: tuple[int, int, int], *, y: str, treat: str | None, cohort: str | None, time: str,
            fe: Sequence[str], method: str, covariates: Sequence[str], weights: str | None, n_singletons: int,
            drop_singletons: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """The design lines and notes (treatment timing, staggered adoption, singletons)."""
    n_dates, n_always, n_off = timing
    notes = []
    if n_singletons and not drop_singletons:
        notes.append(f"{n_singletons} singleton observations (alone in a fixed-effect level) kept, as fixest "
                     f"does; drop_singletons=True removes them.")
    text = f"{n_dates} adoption date{'s' if n_dates != 1 else ''}"
    if n_dates > 1:
        text += " (staggered)"
        notes.append(
            "Staggered adoption: the TWFE coefficient also compares newly treated with already-treated units "
            "(Goodman-Bacon 2021); with effects that change over time it can be biased, even of the wrong sign. "
            "didx.bacon shows the comparisons and their weights; didx.att_gt, didx.imputation and "
            "didx.sun_abraham are robust to heterogeneous effects."
        )
    if n_always:
        text += f"; {n_always} units treated in every period observed (they identify the time effects only)"
    if n_off:
        text += f"; treatment switches off in {n_off} units"
    design = [
        ("Estimator", "two-way fixed effects (static)"),
        ("Outcome", y),
        ("Treatment", f"{treat} (0/1)" if treat else f"1[{time} >= {cohort}]"),
        ("Treatment timing", text),
        ("Fixed effects", ", ".join(fe) + f" [{method}]"),
        ("Covariates", ", ".join(covariates) or "none"),
        ("Weights", weights or "none"),
        ("Singletons", f"{n_singletons} {'dropped' if drop_singletons else 'kept'}"),
    ]
    return design, notes


def _timing(unit: np.ndarray, time: np.ndarray, D: np.ndarray, n_units: int,
            n_periods: int) -> tuple[int, int, int]:
    """Distinct adoption periods, units treated in every observed period, units whose treatment switches off."""
    on = D > 0
    first = np.full(n_units, n_periods, dtype=np.int64)
    np.minimum.at(first, unit[on], time[on])
    adopters = first < n_periods
    n_rows = np.bincount(unit, minlength=n_units)
    n_on = np.bincount(unit, weights=on, minlength=n_units)
    off_after = np.bincount(unit, weights=(~on) & (time > first[unit]), minlength=n_units) > 0
    n_dates = int(np.unique(first[adopters & (n_on < n_rows)]).shape[0])
    return n_dates, int(np.count_nonzero((n_on == n_rows) & (n_rows > 0))), int(np.count_nonzero(off_after))


def _singletons(factors: Sequence[np.ndarray], keep: np.ndarray) -> np.ndarray:
    """Kept observations alone in their level of some factor (counted among the kept observations only)."""
    out = np.zeros(keep.shape[0], dtype=bool)
    for f in factors:
        counts = np.bincount(f, weights=keep.astype(np.float64)) if not keep.all() else np.bincount(f)
        if (counts == 1).any():  # the n-length gather only when some level has one observation
            out |= counts[f] == 1
    return out & keep


def _recode(codes: np.ndarray) -> np.ndarray:
    return np.unique(codes, return_inverse=True)[1].astype(np.int64)
