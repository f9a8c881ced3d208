"""The plans of the regressions with covariates (:mod:`didx.engines.regression_cov`): SQL text written once.

Three queries besides the two of :mod:`didx.engines.stats` (which run on the rows :func:`filtered_table` keeps):

1. :func:`reasons_sql` — rows by drop reason, the covariates' reasons inserted where the in-memory panel applies
   them (after the outcome, before the cluster), and each covariate's range (the overflow and constant checks).
   :func:`lost_units_sql` counts the units left with no row, by the last reason, when covariates dropped rows.
2. :func:`within_sql` — each unit's means and observation pattern (a group-by joined back to its rows), each row
   centred on its unit's means (the within-unit demeaning, done on the row values so that a covariate constant
   within units leaves rounding noise only), then grouped by (cohort, observation pattern, period): the sums of
   the demeaned covariates and of their products with each other and with the demeaned outcome.
3. :func:`scores_sql` — after the coefficients: each unit's residuals by period (its rows minus the fitted cohort x
   period part and the covariates' part, centred on the unit's mean) and the sums over periods of the demeaned
   covariates times the residuals, grouped by cohort (with the sums of products, for clustering by unit) or by
   (cohort, cluster) (the sums).

Standard SQL only, as :mod:`didx.engines.plan`: both engines run the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from didx.engines import plan
from didx.engines.plan import Roles, lit

Quote = Callable[[str], str]


def _missing(col: str, numeric: bool) -> str:
    return plan._missing(col, numeric)


def _inf(col: str) -> str:
    return f"abs(CAST({col} AS DOUBLE)) = {plan._INF}"


def reason_codes(n_cov: int) -> dict[int, int]:
    """Extended reason code -> position: 1..5 as :data:`didx.engines.plan.REASONS`; covariate ``k`` missing
    ``10 + 2k`` and infinite ``11 + 2k``; the cluster missing ``10 + 2 n_cov`` (increasing in the order the
    in-memory panel drops rows, so a unit's last reason is its largest code)."""
    codes = [1, 2, 3, 4, 5, *[c for k in range(n_cov) for c in (10 + 2 * k, 11 + 2 * k)], 10 + 2 * n_cov]
    return {c: i for i, c in enumerate(codes)}


def _reason(r: Roles, q: Quote, covs: Sequence[str]) -> str:
    t, y = q(r.time), q(r.y)
    assert r.unit is not None
    u = q(r.unit)
    whens = [f"WHEN {_missing(t, True)} THEN 1", f"WHEN {_inf(t)} THEN 2", f"WHEN {_missing(u, r.unit_numeric)} THEN 3",
             f"WHEN {_missing(y, True)} THEN 4", f"WHEN {_inf(y)} THEN 5"]
    for k, c in enumerate(covs):
        whens += [f"WHEN {_missing(q(c), True)} THEN {10 + 2 * k}", f"WHEN {_inf(q(c))} THEN {11 + 2 * k}"]
    if r.cluster is not None:
        whens.append(f"WHEN {_missing(q(r.cluster), r.cluster_numeric)} THEN {10 + 2 * len(covs)}")
    return "CASE " + " ".join(whens) + " ELSE 0 END"


def reasons_sql(r: Roles, q: Quote, table: str, covs: Sequence[str]) -> str:
    """Rows by extended reason (:func:`reason_codes`); per covariate ``k`` the range of its finite values
    (``lo<k>``, ``hi<k>``) and of its values in the kept rows (``klo<k>``, ``khi<k>``)."""
    cols = [f"{_reason(r, q, covs)} AS didx_reason"]
    cols += [f"CAST({q(c)} AS DOUBLE) AS didx_w{k}" for k, c in enumerate(covs)]
    out = ["didx_reason AS reason", "CAST(COUNT(*) AS BIGINT) AS n"]
    for k in range(len(covs)):
        fin = f"CASE WHEN NOT isnan(didx_w{k}) AND abs(didx_w{k}) <> {plan._INF} THEN didx_w{k} END"
        out += [f"MIN({fin}) AS lo{k}", f"MAX({fin}) AS hi{k}", f"MIN(CASE WHEN didx_reason = 0 THEN didx_w{k} END) "
                f"AS klo{k}", f"MAX(CASE WHEN didx_reason = 0 THEN didx_w{k} END) AS khi{k}"]
    return (f"SELECT {', '.join(out)} FROM (SELECT {', '.join(cols)} FROM {table}) a GROUP BY didx_reason")


def lost_units_sql(r: Roles, q: Quote, table: str, covs: Sequence[str]) -> str:
    """Units left with no kept row, counted by the last (largest) extended reason among their rows."""
    assert r.unit is not None
    u = q(r.unit)
    return (f"SELECT last_reason, CAST(COUNT(*) AS BIGINT) AS n FROM (SELECT MAX(didx_reason) AS last_reason, "
            f"SUM(CASE WHEN didx_reason = 0 THEN 1 ELSE 0 END) AS n_keep FROM (SELECT {u} AS didx_u, "
            f"{_reason(r, q, covs)} AS didx_reason FROM {table} WHERE NOT {_missing(u, r.unit_numeric)}) a "
            f"GROUP BY didx_u) b WHERE n_keep = 0 GROUP BY last_reason")


def filtered_table(r: Roles, q: Quote, table: str, covs: Sequence[str]) -> str:
    """The table without the rows the covariates drop (every earlier role present and finite, a covariate missing
    or infinite): a derived table for the plans of :mod:`didx.engines.stats`, which count the other reasons."""
    assert r.unit is not None
    earlier = plan._kept_cond(q, y=r.y, time=r.time, unit=r.unit, unit_numeric=r.unit_numeric)
    bad = " OR ".join(f"{_missing(q(c), True)} OR {_inf(q(c))}" for c in covs)
    return f"(SELECT * FROM {table} WHERE NOT ({earlier} AND ({bad}))) didx_cf"


def _kept_rows(r: Roles, q: Quote, table: str, covs: Sequence[str], *, periods: np.ndarray, cohort_raw: np.ndarray,
               cohort_code: np.ndarray, never_code: int, cluster: bool) -> str:
    """The kept rows: didx_u, didx_bit (the period's bit), didx_tc (its index), didx_gc (cohort code), didx_y,
    didx_cl (or NULL) and didx_w<k>."""
    assert r.unit is not None
    keep = plan._kept_cond(q, y=r.y, time=r.time, unit=r.unit, unit_numeric=r.unit_numeric)
    if r.cluster is not None:
        keep += f" AND NOT {_missing(q(r.cluster), r.cluster_numeric)}"
    bit = plan._case("didx_t", [(float(p), str(2**j)) for j, p in enumerate(periods)], "0")
    tc = plan._case("didx_t", [(float(p), str(j)) for j, p in enumerate(periods)], "-1")
    gc = plan._case("didx_g", [(float(v), str(int(c))) for v, c in zip(cohort_raw, cohort_code, strict=True)],
                    str(never_code))
    wcols = [f"CAST({q(c)} AS DOUBLE) AS didx_w{k}" for k, c in enumerate(covs)]
    rows = (f"SELECT {q(r.unit)} AS didx_u, CAST({q(r.time)} AS DOUBLE) AS didx_t, CAST({q(r.cohort)} AS DOUBLE) AS "
            f"didx_g, CAST({q(r.y)} AS DOUBLE) AS didx_y, {q(r.cluster) if cluster and r.cluster else 'NULL'} AS "
            f"didx_cl{''.join(', ' + w for w in wcols)} FROM {table} WHERE {keep}")
    return f"SELECT *, CAST({bit} AS BIGINT) AS didx_bit, {tc} AS didx_tc, {gc} AS didx_gc FROM ({rows}) a"


def _unit_pivot(r: Roles, q: Quote, table: str, covs: Sequence[str], *, periods: np.ndarray,
                cohort_raw: np.ndarray, cohort_code: np.ndarray, never_code: int, y_expr: str,
                cluster: bool) -> str:
    """One row per unit of the kept rows: n_keep, pattern, gc[, cl], v<p> (``y_expr`` by period) and w<k>_<p> (a
    pivot: for the score pass, where it is cheaper than a group-by joined back and grouped again by unit)."""
    T = int(periods.shape[0])
    rows = _kept_rows(r, q, table, covs, periods=periods, cohort_raw=cohort_raw, cohort_code=cohort_code,
                      never_code=never_code, cluster=cluster)
    cols = ["CAST(COUNT(*) AS BIGINT) AS n_keep", "CAST(bit_or(didx_bit) AS BIGINT) AS pattern", "MIN(didx_gc) AS gc"]
    if cluster:
        cols.append("MIN(didx_cl) AS cl")
    cols += [f"SUM(CASE WHEN didx_bit = {2**p} THEN {y_expr} END) AS v{p}" for p in range(T)]
    cols += [f"SUM(CASE WHEN didx_bit = {2**p} THEN didx_w{k} END) AS w{k}_{p}"
             for k in range(len(covs)) for p in range(T)]
    return f"SELECT {', '.join(cols)} FROM ({rows}) b GROUP BY didx_u"


def _centred(inner: str, T: int, n_cov: int, keys: Sequence[str], v_of: Callable[[int], str]) -> str:
    """Per unit: ``e<p>`` = ``v_of(p)`` minus its unit mean and ``d<k>_<p>`` = the covariate minus its unit mean
    (0 where the period is unobserved), with the keys and n_keep; ``wb<k>`` the covariates' unit means."""
    def mean(fmt: str) -> str:
        return "(" + " + ".join(f"COALESCE({fmt.format(p=p)}, CAST(0 AS DOUBLE))" for p in range(T)) + ") / n_keep"

    means = [f"{mean('r{p}')} AS vb"] + [f"{mean(f'w{k}_{{p}}')} AS wb{k}" for k in range(n_cov)]
    lvl = (f"SELECT {', '.join([*keys, 'n_keep'])}, {', '.join(f'{v_of(p)} AS r{p}' for p in range(T))}"
           f"{''.join(f', w{k}_{p}' for k in range(n_cov) for p in range(T))} FROM ({inner}) c")
    lvl = f"SELECT *, {', '.join(means)} FROM ({lvl}) d"
    cols = [*keys, "n_keep", *[f"wb{k}" for k in range(n_cov)]]
    cols += [f"COALESCE(r{p} - vb, CAST(0 AS DOUBLE)) AS e{p}" for p in range(T)]
    cols += [f"COALESCE(w{k}_{p} - wb{k}, CAST(0 AS DOUBLE)) AS d{k}_{p}" for k in range(n_cov) for p in range(T)]
    return f"SELECT {', '.join(cols)} FROM ({lvl}) e"


def _dot(a: str, b: str, T: int) -> str:
    """``sum_p a_p * b_p`` of two column-name patterns with a ``{p}`` field."""
    return " + ".join(f"{a.format(p=p)} * {b.format(p=p)}" for p in range(T))


def within_sql(r: Roles, q: Quote, table: str, covs: Sequence[str], *, periods: np.ndarray, cohort_raw: np.ndarray,
               cohort_code: np.ndarray, never_code: int, level: np.ndarray) -> str:
    """Pass 2 of the covariates (see the module docstring): each unit's means (a group-by joined back to its rows)
    subtracted from its rows, then grouped by (gc, pattern, tc): n_rows, sw<k> (sums of the demeaned covariate
    ``k``), ww<k>_<j> (of the products of the demeaned covariates, k <= j), wy<k> (of the demeaned covariate and
    outcome), bb<k> (of the unit mean squared) and b<k> (of the unit mean). The outcome is taken net of
    ``level[gc]`` (a constant per cohort, removed with the unit's mean: no level to cancel). A group-by joined
    back is cheaper than a pivot of every period's values (and than a window's sort by unit)."""
    P = len(covs)
    rows = _kept_rows(r, q, table, covs, periods=periods, cohort_raw=cohort_raw, cohort_code=cohort_code,
                      never_code=never_code, cluster=False)
    y_expr = "didx_y - " + plan._case("didx_gc", [(float(g), lit(v)) for g, v in enumerate(level)], "CAST(0 AS DOUBLE)")
    rows = f"SELECT didx_u, didx_bit, didx_tc, didx_gc, {y_expr} AS didx_y" + "".join(
        f", didx_w{k}" for k in range(P)) + f" FROM ({rows}) b"
    units = ("SELECT didx_u AS didx_mu, CAST(bit_or(didx_bit) AS BIGINT) AS pattern, AVG(didx_y) AS yb"
             + "".join(f", AVG(didx_w{k}) AS wb{k}" for k in range(P)) + f" FROM ({rows}) c GROUP BY didx_u")
    joined = ("SELECT a.didx_gc AS gc, m.pattern AS pattern, a.didx_tc AS tc, a.didx_y - m.yb AS e"
              + "".join(f", a.didx_w{k} - m.wb{k} AS d{k}, m.wb{k} AS wb{k}" for k in range(P))
              + f" FROM ({rows}) a JOIN ({units}) m ON a.didx_u = m.didx_mu")
    out = ["gc", "pattern", "tc", "CAST(COUNT(*) AS BIGINT) AS n_rows"]
    out += [f"SUM(d{k}) AS sw{k}" for k in range(P)]
    out += [f"SUM(d{k} * d{j}) AS ww{k}_{j}" for k in range(P) for j in range(k, P)]
    out += [f"SUM(d{k} * e) AS wy{k}" for k in range(P)]
    out += [f"SUM(wb{k} * wb{k}) AS bb{k}" for k in range(P)] + [f"SUM(wb{k}) AS b{k}" for k in range(P)]
    return f"SELECT {', '.join(out)} FROM ({joined}) d GROUP BY gc, pattern, tc"


def scores_sql(r: Roles, q: Quote, table: str, covs: Sequence[str], *, periods: np.ndarray,
               cohort_raw: np.ndarray, cohort_code: np.ndarray, never_code: int, fitted: np.ndarray,
               gamma: np.ndarray, level: np.ndarray, w_centre: np.ndarray, clustered: bool) -> str:
    """Pass 3 (see the module docstring): ``fitted[g, p]`` the cohort x period part of the fit (time effect and
    cohort regressors), ``gamma`` the coefficients of ``covs``. Per unit the residuals ``e<p>`` and ``q<k> =
    sum_p (w<k>_p - mean) e<p>``; grouped by gc[, cl]: n, se<p>, sq<k> and, without ``clustered``, ee<p>_<s>
    (p <= s), eq<p>_<k> and qq<k>_<j> (k <= j). Each row is first taken net of ``level[gc]`` and the covariates
    of ``w_centre`` (constants within a unit, removed with its mean): the residuals lose no digits to a level."""
    T, P = int(periods.shape[0]), len(covs)
    y_expr = ("(didx_y - " + plan._case("didx_gc", [(float(g), lit(v)) for g, v in enumerate(level)],
                                        "CAST(0 AS DOUBLE)") + ")"
              + "".join(f" - {lit(gamma[k])} * (didx_w{k} - {lit(w_centre[k])})" for k in range(P)))
    units = _unit_pivot(r, q, table, covs, periods=periods, cohort_raw=cohort_raw, cohort_code=cohort_code,
                        never_code=never_code, y_expr=f"({y_expr})", cluster=clustered)
    G = int(fitted.shape[0])
    keys = ["gc", *(["cl"] if clustered else [])]

    def resid(p: int) -> str:
        return f"v{p} - " + plan._case("gc", [(float(g), lit(fitted[g, p])) for g in range(G)], "CAST(0 AS DOUBLE)")

    c = _centred(units, T, P, keys, resid)
    qs = [f"{_dot(f'd{k}_{{p}}', 'e{p}', T)} AS q{k}" for k in range(P)]
    c = f"SELECT {', '.join(keys)}, {', '.join(f'e{p}' for p in range(T))}{''.join(', ' + s for s in qs)} FROM ({c}) g"
    out = [*keys, "CAST(COUNT(*) AS BIGINT) AS n"]
    out += [f"SUM(e{p}) AS se{p}" for p in range(T)] + [f"SUM(q{k}) AS sq{k}" for k in range(P)]
    if not clustered:
        out += [f"SUM(e{p} * e{s}) AS ee{p}_{s}" for p in range(T) for s in range(p, T)]
        out += [f"SUM(e{p} * q{k}) AS eq{p}_{k}" for p in range(T) for k in range(P)]
        out += [f"SUM(q{k} * q{j}) AS qq{k}_{j}" for k in range(P) for j in range(k, P)]
    return f"SELECT {', '.join(out)} FROM ({c}) h GROUP BY {', '.join(keys)}"
