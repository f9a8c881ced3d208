"""Sun & Abraham's interaction-weighted event study from the engine's unit moments.

The saturated regression's regressors ``1[G_i = g, t - g = e]`` depend on a unit only through its cohort, so it is
:func:`didx.engines.regression.regress` with one column per cohort x relative-period cell: estimates and the CR1
covariance (by unit or a coarser ``cluster=``) from the groups' counts, sums and T x T sums of products, balanced
or unbalanced. fixest's sample rules (``control_group="last_treated"``, always-treated cohorts dropped, cohorts seen
only before treatment used as references) are applied to the groups, each drop counted as in memory
(:func:`didx.estimators.sun_abraham.sample.select_sample`); the cells and aggregations are the in-memory
estimator's (:func:`didx.estimators.sun_abraham.design.make_cells`). Covariates, weights and other covariance types
need the rows: an error names the in-memory alternative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DesignError
from didx._sample import Dropped
from didx.engines.regression import FixedSource, _options, regress
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, unit_moments
from didx.estimators.sun_abraham.design import Cells, fmt_value, make_cells
from didx.inference.vcov import SSC

FUNC = "sun_abraham"


@dataclass(frozen=True)
class _SampleText:
    """What the in-memory design text reads of the sample."""

    last_cohort: float
    covariate_names: tuple[str, ...] = ()


def _drop(m: Moments, keep: np.ndarray, reason: str, drops: list[Dropped]) -> Moments:
    """Remove the groups not in ``keep``, recording their rows and units."""
    if keep.all():
        return m
    gone = ~keep
    drops.append(Dropped(reason, int(m.rows()[gone].sum()), int(m.n[gone].sum())))
    return m.select(keep)


def _sample(m: Moments, control: str, names: dict[str, str | None]) -> tuple[Moments, tuple[str, ...], float]:
    """fixest's sample rules on the groups (see :func:`didx.estimators.sun_abraham.sample.select_sample`)."""
    gvals = m.cohort_values[:-1]
    finite = np.isfinite(m.cohort_values)
    drops: list[Dropped] = []
    g_last = float(gvals.max())
    if control == "last_treated":
        if gvals.shape[0] < 2:
            raise DesignError(
                f"{FUNC}: control='last_treated' needs at least two treated cohorts in {names['cohort']!r} (the "
                f"last one is the control); there is {gvals.shape[0]}. Fix: use control='never' with never-treated "
                f"units."
            )
        m = _drop(m, finite[m.gc], "never-treated units (control='last_treated' uses the last-treated cohort)", drops)
        late = m.periods >= g_last
        if late.any():
            rows = int((m.n[:, None] * (m.obs() & late[None, :])).sum())
            before = m.n_units
            m = m.restrict(~late)
            if rows:
                drops.append(Dropped(f"periods from {fmt_value(g_last)} on, when the control cohort (last treated) "
                                     f"is treated", rows, before - m.n_units))
    rel = m.periods[None, :] - gvals[:, None]
    pres = np.zeros((gvals.shape[0] + 1, m.n_periods), dtype=bool)
    np.logical_or.at(pres, m.gc, m.obs() & (m.n > 0)[:, None])
    pres = pres[:-1]
    has_pre = (pres & (rel < 0)).any(axis=1)
    has_post = (pres & (rel >= 0)).any(axis=1)
    for c in np.flatnonzero(has_post & ~has_pre):
        m = _drop(m, m.gc != c, f"always-treated units (cohort {fmt_value(gvals[c])}: treated in every observed "
                                f"period)", drops)
    if control == "never" and not (~finite[m.gc] & (m.n > 0)).any():
        raise DesignError(f"{FUNC}: no never-treated units remain to serve as the control group. Fix: use "
                          f"control='last_treated', or add never-treated units.")
    ref_cohort = ~has_post & has_pre
    ref_extra = [gvals[c] for c in np.flatnonzero(ref_cohort) if gvals[c] != g_last or control != "last_treated"]
    notes: tuple[str, ...] = ()
    if ref_extra:
        notes = (f"Cohort(s) {', '.join(fmt_value(c) for c in ref_extra)} observed only before treatment: used "
                 f"as reference (control) cohorts, as fixest does.",)
    m = m.compact_periods()
    report = m.report.with_dropped(*drops) if drops else m.report
    report = dataclasses.replace(report, n_obs=int(m.rows().sum()), n_units=m.n_units, n_periods=m.n_periods)
    return dataclasses.replace(m, report=report), notes, g_last


def _cells(m: Moments, refs: tuple[float, ...], time: str) -> tuple[Cells, np.ndarray, np.ndarray, np.ndarray]:
    """The in-memory cells (one pseudo-row per observed cohort x period), the regressors (G, T, k) by the moments'
    cohort codes, the cell sizes and the treated flag of each group."""
    gvals_all = m.cohort_values[:-1]
    obs = m.obs() & (m.n > 0)[:, None]
    present_g = np.zeros(m.cohort_values.shape[0], dtype=bool)
    present_g[m.gc] = True
    cohorts = gvals_all[present_g[:-1]]  # the treated cohorts left (sample.cohorts)
    # reference cohorts: observed only before treatment
    rel = m.periods[None, :] - cohorts[:, None]
    code = np.full(m.cohort_values.shape[0], -1, dtype=np.int64)  # moments' cohort code -> sample cohort code
    code[np.flatnonzero(present_g[:-1])] = np.arange(cohorts.shape[0])
    pres = np.zeros((cohorts.shape[0] + 1, m.n_periods), dtype=bool)
    np.logical_or.at(pres, code[m.gc], obs)  # -1: the never treated (last row)
    pres = pres[:-1]
    dummies = (pres & (rel >= 0)).any(axis=1)
    cg, ct = np.nonzero(pres)
    cells = make_cells(cg.astype(np.int64), ct.astype(np.int64), cohorts, m.periods, dummies, refs, time)
    G = m.cohort_values.shape[0]
    X = np.zeros((G, m.n_periods, cells.k))
    for g in range(G - 1):
        if code[g] >= 0:
            tab = cells.table[code[g]]
            t = np.flatnonzero(tab >= 0)
            X[g, t, tab[t]] = 1.0
    size = np.einsum("j,jtk->k", m.n.astype(np.float64), X[m.gc] * obs[:, :, None])
    return cells, X, size, np.isfinite(m.cohort_values)[m.gc]


def sun_abraham_moments(src: EngineInput, parts: tuple[Callable[..., Any], ...], *, y: str, unit: str, time: str,
                        cohort: str, refs: tuple[float, ...],
                        control: str, covariates: Any, vcov: str | None, cluster: str | Sequence[str] | None,
                        weights: str | None, ssc: SSC | None, engine: str) -> Any:
    """:func:`didx.sun_abraham` through an engine (see the module docstring); ``parts`` are the in-memory
    estimator's aggregations, design text and cell check (passed in, so this module does not import it)."""
    aggregations, design_text, check_cells = parts
    from didx.estimators.sun_abraham.result import SunAbrahamCoefficients, SunAbrahamResult, readonly
    from didx.registry import PRE_PERIOD
    from didx.results.base import FrozenDict

    _, cl_name = _options(FUNC, [
        (bool(covariates), "covariates"), (weights is not None, "weights"),
        (engine == "regression", "engine='regression' (the engines compute from sums)"),
        (vcov not in (None, "CR1"), f"vcov={vcov!r} (the engines give the default CR1)")], cluster, unit)
    names = {"y": y, "unit": unit, "time": time, "cohort": cohort, "weights": None}
    m = unit_moments(src, Request(func=FUNC, y=y, unit=unit, time=time, cohort=cohort, cluster=cl_name,
                                  require_control="never" if control == "never" else "none"))
    m, notes, g_last = _sample(m, control, names)
    cells, X, size, treated = _cells(m, refs, time)
    check_cells(cells, refs)
    fit = regress(m, X, unit, cl_name, ssc or SSC(), treated=treated)
    coef_names = [cells.names[j] for j in fit.kept]
    dropped = [n for j, n in enumerate(cells.names) if j not in set(fit.kept.tolist())]
    all_notes = [*notes, *(["Dropped for collinearity: " + ", ".join(dropped)] if dropped else [])]
    aggs = aggregations(coef_names, cells, size, time)
    main = aggs["main"]
    design = tuple([*design_text(_SampleText(g_last), cells, "cohort x observation-pattern sums in the engine "
                                "(identical to the regression, no dummy matrix)", refs=refs, control=control,
                                names=names), ("Engine", src.describe)])
    source = FixedSource(V=fit.V, inference=fit.inference, names=(unit,) if cl_name is None else (unit, cl_name),
                         n_input_rows=m.report.n_input_rows)
    pos = {n: j for j, n in enumerate(cells.names)}

    def per_coef(values: np.ndarray) -> np.ndarray:
        return np.array([values[pos[n]] for n in coef_names], dtype=float)

    raw = SunAbrahamCoefficients(
        estimator="Sun & Abraham (2021) cohort x period coefficients", terms=tuple(coef_names), coef=fit.coef,
        vcov_matrix=fit.V, headline=coef_names[0], inference=fit.inference, sample=m.report, design=design,
        term_info={"group": per_coef(cells.cohort), "event_time": per_coef(cells.event_time), "n": per_coef(size)},
        notes=tuple(all_notes), _source=source)
    extras = {"reference": refs, "raw_coef": readonly(fit.coef), "raw_vcov": readonly(fit.V), "raw_result": raw,
              "aggregations": FrozenDict(aggs),
              "cell_size": FrozenDict(dict(zip(cells.names, size.tolist(), strict=True)))}
    A = main.matrix
    return SunAbrahamResult(
        estimator="Sun & Abraham (2021)", terms=main.names, coef=A @ fit.coef, vcov_matrix=A @ fit.V @ A.T,
        headline="ATT", inference=fit.inference, sample=m.report, design=design,
        term_info={"event_time": main.event_time, "n_cells": main.n_cells}, extras=extras, notes=tuple(all_notes),
        _source=source, pre_period_meaning=PRE_PERIOD["sun_abraham"], cross_covariance=True)
