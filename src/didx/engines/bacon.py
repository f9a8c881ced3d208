"""The Goodman-Bacon decomposition (no covariates) from the engine's cohort x period sums.

Every 2x2 estimate and weight of the decomposition is a function of the timing-group x period means and the
group sizes (:mod:`didx.estimators.bacon.estimator`), and the decomposed TWFE coefficient is
:func:`didx.engines.regression.regress` on the unit moments. The timing group (first period with ``treat == 1``
among a unit's kept rows) is a per-unit minimum computed in the engine (:func:`didx.engines.plan.timing_table`);
one count query checks the treatment (0/1, absorbing, not missing) before the unit pass. Covariates (the
within/between decomposition) need the rows: an error names the in-memory alternative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._validate import as_list, check_columns, fmt_value
from didx.engines import plan
from didx.engines.cs import ROWS_FIX
from didx.engines.regression import regress
from didx.engines.source import EngineInput
from didx.engines.stats import Request, unit_moments
from didx.inference.vcov import SSC

FUNC = "bacon"
_FIRST = "didx_first_treated"


def bacon_moments(src: EngineInput, result_cls: type, parts: tuple[Callable[..., Any], ...], *, y: str, unit: str,
                  time: str, treat: str, covariates: str | Sequence[str] | None) -> Any:
    """:func:`didx.bacon` through an engine (see the module docstring); ``result_cls`` and ``parts`` (the 2x2s
    from the group x period means, the timing-group labels, the notes) are the in-memory estimator's, passed in
    so that this module does not import it."""
    uncontrolled, group_labels, identity_notes = parts
    if as_list(covariates):
        raise InvalidOptionError(f"{FUNC}: covariates not available through the engines yet. Fix: {ROWS_FIX}.")
    check_columns(FUNC, {"y": y, "time": time, "unit": unit, "treat": treat}, list(src.columns), list(src.columns))
    if src.kinds[treat] != "numeric":
        raise DataError(f"{FUNC}: the treatment column {treat!r} must be 0/1 (or boolean), but it holds non-numeric "
                        f"values. Fix: recode it as a 0/1 indicator.")
    q = src.quote
    unit_numeric = src.kinds[unit] == "numeric"
    derived = plan.timing_table(q, src.table, y=y, time=time, unit=unit, treat=treat, unit_numeric=unit_numeric,
                                name=_FIRST)
    chk = src.run(plan.treat_check_sql(q, derived, y=y, time=time, unit=unit, treat=treat,
                                       unit_numeric=unit_numeric, first=_FIRST))
    n_missing, bad, n_switch = (int(np.nan_to_num(chk[k][0])) for k in ("n_missing", "n_bad", "n_switch"))
    if n_missing:
        raise InvalidOptionError(
            f"{FUNC}: {n_missing} rows have a missing treatment ({treat}); through the engines the treatment must "
            f"be present on every row with an outcome. Fix: filter them in the query (WHERE {treat} IS NOT NULL), "
            f"or {ROWS_FIX}.")
    if bad:
        vals = src.run(plan.treat_values_sql(q, src.table, treat))["v"]
        raise DataError(
            f"{FUNC}: the treatment column {treat!r} must be 0/1 (or boolean), but it has the value(s) "
            f"{', '.join(fmt_value(float(x)) for x in vals[:5])}. Fix: recode it as a 0/1 indicator (for a "
            f"continuous or fractional treatment, round it or use a different estimator).")
    if n_switch:
        ex = src.run(plan.switch_example_sql(q, derived, y=y, time=time, unit=unit, treat=treat,
                                             unit_numeric=unit_numeric, first=_FIRST))
        raise DataError(
            f"{FUNC}: the treatment {treat!r} is not absorbing: unit {fmt_value(ex['u'][0])} is untreated in "
            f"{fmt_value(ex['t'][0])} after its first treated period {fmt_value(ex['f'][0])}. The decomposition "
            f"requires staggered adoption (once treated, always treated). Fix: recode {treat!r} so it stays 1, or "
            f"use an estimator for treatments that switch off (didx.dcdh).")
    view = dataclasses.replace(src, table=derived, kinds={**src.kinds, _FIRST: "numeric"})
    m = unit_moments(view, Request(func=FUNC, y=y, unit=unit, time=time, cohort=_FIRST,
                                   require_control="untreated_obs"))
    if not m.report.balanced:
        obs = m.obs()
        n_short = int(m.n[~obs.all(axis=1)].sum())
        n_gap = m.report.n_units_with_gaps
        dropped = m.report.n_dropped_rows
        why = f" ({dropped} rows were dropped for missing values, see the sample report)" if dropped else ""
        raise DesignError(
            f"{FUNC}: the panel is unbalanced: {n_short} of {m.n_units} units are not observed in all "
            f"{m.n_periods} periods{why}"
            f"{f'; {n_gap} of them have gaps' if n_gap else ''}. The Goodman-Bacon decomposition is an identity "
            f"of the TWFE coefficient only on a balanced panel (the weights are variance shares of the demeaned "
            f"treatment, which unbalancedness breaks). Fix: keep the units observed in every period (and fill or "
            f"drop missing outcomes), then decompose.")
    T = m.n_periods
    periods = m.periods
    # timing groups: the first treated period's index (T: never), ordered earlier first, as in memory
    level_of_code = np.where(np.isfinite(m.cohort_values), np.searchsorted(periods, m.cohort_values), T)
    ng = np.bincount(m.gc, weights=m.n, minlength=m.cohort_values.shape[0])
    present = ng > 0
    levels = level_of_code[present]
    units_per_group = ng[present].astype(np.float64)
    mu = m.cell_means()[present]  # (groups, T): one pseudo-row per cell gives these means back
    gi, ti = np.nonzero(np.ones_like(mu, dtype=bool))

    def value(level: int) -> float:
        return float("inf") if level >= T else float(periods[level])

    D = (periods[None, :] >= m.cohort_values[:, None]).astype(np.float64)
    fit = regress(m, D[:, :, None], unit, None, SSC(), treated=np.isfinite(m.cohort_values)[m.gc])
    if fit.kept.shape[0] != 1:
        raise DesignError(f"{FUNC}: the treatment {treat!r} is collinear with the unit and time effects. Fix: check "
                          f"the treatment column.")
    twfe = float(fit.coef[0])
    treated_v, control_v, kinds, weights, estimates, n_tr, n_co, _, _ = uncontrolled(
        mu[gi, ti], gi, ti, levels, T, units_per_group, value)
    weighted_sum = float(np.sum(weights * estimates))
    design = [("Estimator", "Goodman-Bacon decomposition of two-way fixed effects"), ("Outcome", y),
              ("Treatment", treat), ("Unit", unit), ("Time", time), ("Covariates", "none"),
              ("Timing groups", ", ".join(group_labels(levels, periods, T))), ("Engine", src.describe)]
    notes = identity_notes(weighted_sum, twfe, levels, units_per_group, T)
    return result_cls(
        twfe=twfe, weighted_sum=weighted_sum, treated=treated_v, control=control_v, type=tuple(kinds),
        weight=weights, estimate_2x2=estimates, n_treated_units=n_tr, n_control_units=n_co, covariates=(),
        within=None, omega=None, sample=m.report, design=tuple(design), notes=tuple(notes))
