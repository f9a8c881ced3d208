"""Triple differences (Ortiz-Villavicencio & Sant'Anna 2025): the two-period and staggered DDD ATT(g,t).

Units belong to a treatment-enabling group ``S`` (the ``cohort``: the period from which their group is treated; 0,
NaN or inf for never) and a ``partition`` ``Q`` (1 = eligible for treatment). The target is

    ATT(g,t) = E[Y_t(g) - Y_t(never) | S = g, Q = 1],

identified under DDD (conditional) parallel trends: the eligible-minus-ineligible trend is the same across
treatment-enabling groups. Each ATT(g,t) combines three doubly robust 2x2 DiD comparisons of the treated eligible
units with the treated ineligible, the untreated eligible and the untreated ineligible ones
(:mod:`didx.estimators.ddd.cells`); with ``control="not_yet"`` and several not-yet-treated cohorts available,
their DDD estimates are combined with optimal GMM weights, as R's ``triplediff`` does.

Every ATT(g,t) carries its influence function in the same store as Callaway-Sant'Anna's ``att_gt``, so the
result IS an ATT(g,t) result: ``aggregate("simple" | "group" | "dynamic" | "calendar")``, the multiplier bootstrap
with sup-t bands, ``with_vcov(cluster=...)``, the pre-test and ``honest_did`` work exactly as for ``att_gt`` (the
machinery of :mod:`didx.estimators.cs` is reused, not copied). Without covariates everything runs from cohort x
partition x period sums (no per-cell regressions).

Conventions (R ``triplediff`` 0.2.4 and moderndid 0.2.0 where they agree): base period ``g - 1`` for
post-treatment cells; ``base_period="universal"`` reports ATT(g, g-1) = 0; pre-treatment cells with ``"varying"``
compare t with t - 1; the panel is balanced (units with gaps dropped and counted); units treated in the first
period are dropped; without never-treated units and ``control="not_yet"`` the last cohort serves only as a
comparison. SEs are ``did``'s analytic ones, ``sqrt(sum IF^2) / n``. Covariates are taken in the earlier of the
cell's two periods (as ``did``; R's ``triplediff`` asks for time-invariant covariates).

Reference: Ortiz-Villavicencio, M. and Sant'Anna, P. H. C. (2025), "Better Understanding Triple Differences
Estimators", arXiv:2505.09942; R package ``triplediff`` (marcelortizv/triplediff).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._frame import numeric_column, read_columns
from didx._panel import build_panel
from didx._validate import as_list, check_option
from didx.estimators.cs.cells import plan_cells
from didx.estimators.cs.data import CSData, prepare
from didx.estimators.cs.estimator import _assemble, _Options, fit_cells
from didx.estimators.cs.result import ATTgtResult
from didx.estimators.ddd.cells import estimate_covariates, estimate_sums, sort_by_partition
from didx.estimators.drdid.estimator import check_distinct_roles
from didx.inference import multiplier as mb

__all__ = ["DDDResult", "ddd"]

_FUNC = "ddd"
FAMILY = "Ortiz-Villavicencio & Sant'Anna (2025) DDD"


@dataclass(frozen=True, eq=False)
class DDDResult(ATTgtResult):
    """Triple-difference group-time effects ATT(g,t) (Ortiz-Villavicencio & Sant'Anna 2025).

    The same contract as :class:`~didx.estimators.cs.result.ATTgtResult`: terms ``ATT(g,t)`` (by cohort, then
    period) and the headline ``ATT (simple)``; ``aggregate(kind)`` (R's ``agg_ddd``: ``"simple"``, ``"group"``,
    ``"dynamic"`` = event study, ``"calendar"``), ``pretest``, ``with_vcov(cluster=...)``,
    ``influence_functions()``, and bootstrap uniform bands when fitted with ``n_bootstrap``.
    """


def ddd(
    data: Any,
    *,
    y: str,
    unit: str | None = None,
    time: str,
    cohort: str,
    partition: str,
    covariates: str | Sequence[str] | None = None,
    method: str = "dr",
    control: str = "never",
    base_period: str = "universal",
    panel: bool = True,
    weights: str | None = None,
    cluster: str | None = None,
    n_bootstrap: int | None = 0,
    multiplier: str = "rademacher",
    seed: int | None = None,
) -> DDDResult:
    """Triple-difference ATT(g,t) (Ortiz-Villavicencio & Sant'Anna 2025), as R's ``triplediff::ddd``.

    Parameters
    ----------
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...), long format (one row per unit and period).
    y, unit, time : outcome, unit identifier (panel data) and period columns.
    cohort : the period from which the unit's group is treatment-enabling (constant within unit); 0, NaN, inf or
        a period after the last one mean never. With two periods and one cohort this is the two-period DDD.
    partition : the 0/1 eligibility indicator Q (constant within unit).
    covariates : columns of the conditional DDD parallel-trends assumption (taken in the earlier of the cell's
        two periods).
    method : ``"dr"`` (doubly robust), ``"ipw"`` (normalised IPW) or ``"reg"`` (outcome regression) for each of
        the three DiD comparisons; without covariates all three coincide.
    control : ``"never"`` (never-enabled units) or ``"not_yet"`` (also cohorts enabled after max(t, base); several
        of them are combined with GMM weights, as ``triplediff``).
    base_period : ``"universal"`` (every cell against g - 1; that cell is 0) or ``"varying"`` (pre-treatment
        cells compare t with t - 1).
    panel : False for repeated cross sections (every row its own observation; no ``unit``), as R's
        ``panel = FALSE``: each DiD is the repeated-cross-section estimator (``drdid_rc``, ``std_ipw_did_rc``,
        ``reg_did_rc``).
    weights : sampling weights column (constant within unit).
    cluster : a column coarser than units (e.g. a state) to cluster the SEs on.
    n_bootstrap, multiplier, seed : the multiplier bootstrap with sup-t bands, as :func:`didx.att_gt`.

    Returns
    -------
    DDDResult : ATT(g,t) terms plus the headline ``ATT (simple)``.
    """
    covs = as_list(covariates)
    opts = _check_options(method=method, control=control, base_period=base_period, panel=panel, unit=unit,
                          cluster=cluster, n_bootstrap=n_bootstrap, multiplier=multiplier, seed=seed, y=y,
                          covariates=covs, weights=weights)
    check_distinct_roles(_FUNC, {"y": y, "unit": unit, "time": time, "cohort": cohort, "partition": partition})
    if str(partition) in {str(c) for c in covs}:
        raise InvalidOptionError(f"{_FUNC}: the partition column {partition!r} is also among covariates=. Fix: drop "
                                 f"it from covariates (the partition defines the subgroups).")
    data = _one_read(data, {"y": y, "unit": unit, "time": time, "cohort": cohort, "partition": partition,
                            "covariates": covs, "weights": weights, "cluster": opts.cluster})
    p = build_panel(data, func=_FUNC, y=y, time=time, unit=unit, cohort=cohort, covariates=covs or None,
                    weights=weights, cluster=opts.cluster, require_control="none", check_duplicates=panel)
    part = _read_partition(data, partition)
    _check_partition(part if p.kept_rows is None else part[p.kept_rows], p.unit, partition)
    cs = prepare(p, func=_FUNC, control=control, anticipation=0, mode=opts.mode, cluster=opts.cluster)
    Q = np.zeros(cs.n_units, dtype=np.intp)
    Q[cs.row_unit] = part if cs.row_index is None else part[cs.row_index]
    X = cs.X
    if X is None and opts.mode == "rc":  # repeated cross sections: always the 2x2 estimators (intercept only)
        X = np.ones((cs.y.shape[0], 1))
    cs, Q = sort_by_partition(dataclasses.replace(cs, X=X), Q)
    cells, plan_notes = plan_cells(cs, control=control, base_period=base_period, anticipation=0)
    est = estimate_sums(cs, cells, Q) if X is None else estimate_covariates(cs, cells, Q, method)
    e = fit_cells(cs, est, plan_notes, opts, func=_FUNC, family=FAMILY, pre_period_key="ddd")
    res = _assemble(e, opts, func=_FUNC, estimator=f"{FAMILY} ATT(g,t)", design=_design(opts, cs, Q, partition,
                                                                                          e.fit.n_cells),
                    result_type=DDDResult)
    assert isinstance(res, DDDResult)
    return res


# ----------------------------------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise InvalidOptionError(
            f"The {name!r} parameter of {_FUNC} must be an integer >= {minimum}. Got {value!r} instead."
        )
    return int(value)


def _check_options(*, method: str, control: str, base_period: str, panel: bool, unit: str | None, cluster: Any,
                   n_bootstrap: Any, multiplier: str, seed: Any, y: str, covariates: list[str],
                   weights: str | None) -> _Options:
    method = check_option(_FUNC, "method", method, ("dr", "ipw", "reg"))
    control = check_option(_FUNC, "control", control, ("never", "not_yet"))
    base_period = check_option(_FUNC, "base_period", base_period, ("universal", "varying"))
    multiplier = check_option(_FUNC, "multiplier", multiplier, mb.MULTIPLIERS)
    n_boot = 0 if n_bootstrap is None else _check_int("n_bootstrap", n_bootstrap, 0)
    seed = None if seed is None else _check_int("seed", seed, 0)
    if 0 < n_boot < 100:
        raise InvalidOptionError(f"The 'n_bootstrap' parameter of {_FUNC} must be 0 (analytic SEs) or at least 100 "
                                 f"draws (e.g. 999). Got {n_boot}.")
    if n_boot == 0 and (multiplier != "rademacher" or seed is not None):
        raise InvalidOptionError(f"{_FUNC}: multiplier= and seed= are only used by the multiplier bootstrap, but "
                                 f"n_bootstrap={n_bootstrap!r} asks for analytic SEs. Fix: pass n_bootstrap= (e.g. "
                                 f"999), or drop them.")
    if panel and unit is None:
        raise InvalidOptionError(f"{_FUNC}: panel data need unit= (the unit identifier). Fix: pass unit=, or "
                                 f"panel=False for repeated cross sections.")
    if not panel and unit is not None:
        raise InvalidOptionError(f"{_FUNC}: unit={unit!r} is not used with panel=False: repeated cross sections treat "
                                 f"every row as its own observation. Fix: drop unit=, or keep panel=True for panel "
                                 f"data.")
    if cluster is not None and not isinstance(cluster, str):
        raise InvalidOptionError(f"{_FUNC}: cluster= takes one column name; got {cluster!r}. Units are always "
                                 f"clusters. Fix: pass the coarser variable alone, e.g. cluster='state'.")
    return _Options(control_group=control, base_period=base_period, est_method=method, anticipation=0,
                    cluster=cluster if cluster != unit else None, mode="panel" if panel else "rc",
                    n_bootstrap=n_boot,
                    multiplier=multiplier, seed=seed, y=y, unit=unit, covariates=tuple(covariates), weights=weights)


def _one_read(data: Any, roles: dict[str, Any]) -> Any:
    """A lazy frame (duckdb, spark, ...) is read once into pandas: the partition is read separately from the panel's
    columns, and two scans of a lazy query need not return the rows in the same order. Eager frames as given."""
    if isinstance(data, pd.DataFrame):
        return data
    try:
        native = nw.from_native(data)
    except TypeError:
        return data  # not a frame: build_panel's message
    if not isinstance(native, nw.LazyFrame):
        return data
    wanted = [c for r in roles.values() for c in as_list(r)]
    cols = read_columns(data, wanted, _FUNC, {k: v for k, v in roles.items() if v is not None and v != []})
    return pd.DataFrame(cols.arrays, copy=False)


def _read_partition(data: Any, name: str) -> np.ndarray:
    """The partition column as float, one value per input row."""
    cols = read_columns(data, [name], _FUNC, {"partition": name})
    return numeric_column(cols, str(name), "partition", _FUNC,
                          "Fix: code eligible units as 1 and ineligible units as 0.")


def _check_partition(values: np.ndarray, unit: np.ndarray | None, name: str) -> None:
    """The partition (on the estimation rows) must be 0/1 without missing values, constant within unit, and take
    both values."""
    missing = np.isnan(values)
    if missing.any():
        raise DataError(f"{_FUNC}: the partition column {name!r} is missing in {int(missing.sum())} rows that are "
                        f"otherwise complete. A unit's eligibility decides its subgroup. Fix: fill it, or drop those "
                        f"rows (or units) before calling ddd.")
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise DataError(f"{_FUNC}: the partition column {name!r} must be a 0/1 eligibility indicator, but it has the "
                        f"value {bad[0]!r}. Fix: code eligible units as 1 and ineligible units as 0.")
    if unit is not None and unit.size:
        ones = np.bincount(unit, weights=values)
        rows = np.bincount(unit)
        varies = np.flatnonzero((ones > 0) & (ones < rows))
        if varies.size:
            raise DataError(f"{_FUNC}: the partition column {name!r} varies within a unit (unit code "
                            f"{int(varies[0])} has both 0 and 1). Eligibility is a fixed characteristic of the "
                            f"unit in a triple difference. Fix: make {name!r} constant within each unit.")
    if not ((values == 1).any() and (values == 0).any()):
        raise DesignError(f"{_FUNC}: the partition column {name!r} takes only the value {values[0]:g}; a triple "
                          f"difference needs eligible (1) and ineligible (0) units. Fix: check the column.")


def _design(opts: _Options, cs: CSData, Q: np.ndarray, partition: str, n_cells: int) -> tuple[tuple[str, str], ...]:
    ctrl = ("never enabled" if opts.control_group == "never" else
            "not yet enabled (never and cohorts enabled after max(t, base)); several combined by GMM weights")
    base = ("universal (g - 1 for every cell; that cell is 0)" if opts.base_period == "universal"
            else "varying (pre-treatment cells: t - 1; post-treatment: g - 1)")
    methods = {"dr": "doubly robust (three DRDID-type comparisons)", "ipw": "inverse probability weighting "
               "(normalised)", "reg": "outcome regression"}
    meth = methods[opts.est_method] if opts.covariates else \
        f"{opts.est_method}: without covariates dr = ipw = reg (cell means)"
    counts = []
    for g, val in enumerate(cs.cohort_values):
        lo, hi = int(cs.block[g]), int(cs.block[g + 1])
        q1 = int(np.count_nonzero(Q[lo:hi]))
        label = "never" if not np.isfinite(val) else f"{val:g}"
        counts.append(f"{label}: {q1} eligible / {hi - lo - q1} ineligible")
    return (
        ("Estimator", "Ortiz-Villavicencio & Sant'Anna (2025) triple differences, ATT(g,t)"),
        ("Outcome", opts.y),
        ("Partition (eligibility)", partition),
        ("Control group", ctrl),
        ("Base period", base),
        ("Estimation method", meth),
        ("Covariates", ", ".join(opts.covariates) if opts.covariates else "none"),
        ("Data", "balanced panel" if opts.mode == "panel" else "repeated cross sections (every row its own "
                 "observation)"),
        ("Weights", opts.weights or "none"),
        ("Units by cohort", "; ".join(counts)),
        ("ATT(g,t) cells", str(n_cells)),
    )
