"""SQL plans of ``att_gt`` with covariates (:mod:`didx.engines.cs_cov`), one text for DuckDB and Spark.

Every plan selects from :func:`units_sql`, the kept rows pivoted to one row per unit of the estimation sample
(its cohort code after ``did``'s sample rules, its cluster, its outcome in every period and its covariates, centred
on their period means, in the periods the cells take them from). The other plans aggregate expressions of those
columns with the cells' coefficients written in as literals:

- :func:`covariate_check_sql` — per period, rows, covariate sums and rows with a missing or infinite covariate;
- :func:`group_sums_sql` — by cohort: units, covariate sums and cross products, and per cell the sums of the
  outcome change and of its products with the covariates (the regressions' ``X'X`` and ``X'y``);
- :func:`logit_sql` — by cohort, for every logit still iterating: ``sum p x``, ``sum p (1 - p) x x'`` and the sum of
  ``log(1 + exp(x'g))`` at its current coefficients (one Newton step of every cell's propensity score per query);
- :func:`weight_sums_sql` — by cohort, at the final propensity scores: the Hessian and the odds-weighted sums;
- :func:`gram_sql` — by cohort (and cluster): units, the sums of every cell's influence function and of their
  products, which is what the influence-function store keeps.

Only standard SQL (CASE, CAST, SUM, MIN, COUNT, EXP, LN, LEAST, GROUP BY) is used; numbers enter through
:func:`didx.engines.plan.lit`, names through the engine's quote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from didx.engines.plan import Roles, _kept_cond, _missing, lit

PSCORE_CAP = 1.0 - 1e-6
INF = "CAST('Infinity' AS DOUBLE)"


@dataclass(frozen=True)
class UnitPlan:
    """What :func:`units_sql` needs: the roles, the covariates, the final periods (values), the periods the
    covariates are read in (indices into ``periods``), their centring values ``centre[j, s]``, and the map from
    a raw cohort value to its final code (``treated``: value -> code, -1 drops; ``never``: the code of everything
    else, -1 if none)."""

    roles: Roles
    covariates: tuple[str, ...]
    periods: np.ndarray
    x_periods: tuple[int, ...]
    centre: np.ndarray
    treated: tuple[tuple[float, int], ...]
    never: int


def xcol(j: int, s: int) -> str:
    return f"x{j}_{s}"


def _num(q: Callable[[str], str], c: str) -> str:
    return f"CAST({q(c)} AS DOUBLE)"


def _kept(r: Roles, q: Callable[[str], str]) -> str:
    """Rows that pass 1 keeps (the cluster present too, when clustering)."""
    assert r.unit is not None
    cond = _kept_cond(q, y=r.y, time=r.time, unit=r.unit, unit_numeric=r.unit_numeric)
    if r.cluster is not None:
        cond += f" AND NOT {_missing(q(r.cluster), r.cluster_numeric)}"
    return cond


def covariate_check_sql(r: Roles, q: Callable[[str], str], table: str, covariates: Sequence[str]) -> str:
    """Per period among the kept rows: rows with every covariate finite (``n``), covariate sums over those
    (``sx<j>``) and rows with a missing or infinite covariate (``bad``)."""
    bad = " OR ".join(f"{_missing(q(c), True)} OR abs({_num(q, c)}) = {INF}" for c in covariates)
    ok = f"NOT ({bad})"
    cols = [f"CAST({q(r.time)} AS DOUBLE) AS t", f"SUM(CASE WHEN {ok} THEN 1 ELSE 0 END) AS n",
            f"SUM(CASE WHEN {ok} THEN 0 ELSE 1 END) AS bad"]
    cols += [f"SUM(CASE WHEN {ok} THEN {_num(q, c)} END) AS sx{j}" for j, c in enumerate(covariates)]
    return f"SELECT {', '.join(cols)} FROM {table} WHERE {_kept(r, q)} GROUP BY CAST({q(r.time)} AS DOUBLE)"


def units_sql(p: UnitPlan, q: Callable[[str], str], table: str) -> str:
    """One row per unit of the (balanced) estimation sample: ``gc``, [``cl``], ``y<p>`` per final period,
    ``x<j>_<s>`` (centred) per covariate and covariate period."""
    r = p.roles
    assert r.unit is not None
    t = f"CAST({q(r.time)} AS DOUBLE)"
    g = f"CAST({q(r.cohort)} AS DOUBLE)"
    whens = " ".join(f"WHEN {g} = {lit(v)} THEN {c}" for v, c in p.treated)
    gmap = f"CASE {whens} ELSE {p.never} END" if whens else str(p.never)
    in_periods = " OR ".join(f"{t} = {lit(v)}" for v in p.periods)
    cols = [f"MIN({gmap}) AS gc", f"SUM(CASE WHEN {in_periods} THEN 1 ELSE 0 END) AS nobs"]
    if r.cluster is not None:
        cols.append(f"MIN({q(r.cluster)}) AS cl")
    cols += [f"SUM(CASE WHEN {t} = {lit(v)} THEN CAST({q(r.y)} AS DOUBLE) END) AS y{k}"
             for k, v in enumerate(p.periods)]
    cols += [f"SUM(CASE WHEN {t} = {lit(p.periods[s])} THEN {_num(q, c)} END) - {lit(p.centre[j, s])} AS {xcol(j, s)}"
             for j, c in enumerate(p.covariates) for s in p.x_periods]
    inner = f"SELECT {', '.join(cols)} FROM {table} WHERE {_kept(r, q)} GROUP BY {q(r.unit)}"
    return f"(SELECT * FROM ({inner}) didx_a WHERE gc >= 0 AND nobs = {p.periods.shape[0]}) didx_units"


def lin(coef: np.ndarray, j_s: Sequence[str]) -> str:
    """``coef[0] + sum_j coef[j + 1] * column_j`` as SQL."""
    terms = [lit(coef[0]), *(f"{lit(c)} * {col}" for c, col in zip(coef[1:], j_s, strict=True))]
    return "(" + " + ".join(terms) + ")"


def _in(codes: Sequence[int]) -> str:
    return f"gc IN ({', '.join(str(int(c)) for c in codes)})"


@dataclass(frozen=True)
class CellSQL:
    """A cell as the plans see it: its index, treated cohort code, comparison codes, periods (indices) and the
    covariate columns of its covariate period."""

    k: int
    g: int
    controls: tuple[int, ...]
    t: int
    b: int
    x: tuple[str, ...]

    @property
    def codes(self) -> tuple[int, ...]:
        return (self.g, *self.controls)

    @property
    def dy(self) -> str:
        return f"(y{self.t} - y{self.b})"


def group_sums_sql(units: str, n_cov: int, x_periods: Sequence[int], cells: Sequence[CellSQL]) -> str:
    """By cohort: ``n``; per covariate period s: ``sx<j>_<s>``, ``sxx<j>_<l>_<s>`` (j <= l) and the range
    ``lo<j>_<s>``, ``hi<j>_<s>`` (a covariate constant in a regression's sample makes it rank deficient); per cell k:
    ``sdy<k>`` and ``sxdy<j>_<k>``."""
    cols = ["gc", "CAST(COUNT(*) AS BIGINT) AS n"]
    for s in x_periods:
        cols += [f"SUM({xcol(j, s)}) AS s{xcol(j, s)}" for j in range(n_cov)]
        cols += [f"SUM({xcol(j, s)} * {xcol(m, s)}) AS sxx{j}_{m}_{s}" for j in range(n_cov) for m in range(j, n_cov)]
        cols += [f"MIN({xcol(j, s)}) AS lo{j}_{s}, MAX({xcol(j, s)}) AS hi{j}_{s}" for j in range(n_cov)]
    for c in cells:
        cols.append(f"SUM({c.dy}) AS sdy{c.k}")
        cols += [f"SUM({x} * {c.dy}) AS sxdy{j}_{c.k}" for j, x in enumerate(c.x)]
    return f"SELECT {', '.join(cols)} FROM {units} GROUP BY gc"


def _pscore(c: CellSQL, gamma: np.ndarray) -> str:
    """The cell's logit index (NULL outside its cohorts), as a column ``e<k>``."""
    return f"CASE WHEN {_in(c.codes)} THEN {lin(gamma, c.x)} END AS e{c.k}"


def _sigmoid(e: str) -> str:
    return f"(CAST(1 AS DOUBLE) / (CAST(1 AS DOUBLE) + exp(LEAST(-{e}, CAST(700 AS DOUBLE)))))"


def _products(prefix: str, w: str, x: Sequence[str]) -> list[str]:
    """``sum w z_j z_m`` (j <= m) for ``z = (1, x)``, named ``<prefix><j>_<m>``."""
    z = ["CAST(1 AS DOUBLE)", *x]
    return [f"SUM({w} * {z[j]} * {z[m]}) AS {prefix}{j}_{m}" for j in range(len(z)) for m in range(j, len(z))]


def logit_sql(units: str, cells: Sequence[tuple[CellSQL, np.ndarray]]) -> str:
    """By cohort, per cell k at its coefficients: ``sp<k>_<j>`` = sum p z_j, ``h<k>_<j>_<m>`` = sum p(1-p) z_j z_m,
    ``sl<k>`` = sum log(1 + exp(e)), and the range ``elo<k>``, ``ehi<k>`` of the index e (separation)."""
    xs = sorted({x for c, _ in cells for x in c.x})
    inner = ", ".join(["gc", *xs, *(_pscore(c, g) for c, g in cells)])
    mid = ["gc", *xs]
    for c, _ in cells:
        e = f"e{c.k}"
        mid += [f"{e}", f"{_sigmoid(e)} AS p{c.k}"]
    cols = ["gc"]
    for c, _ in cells:
        p, e, z = f"p{c.k}", f"e{c.k}", ["CAST(1 AS DOUBLE)", *c.x]
        cols += [f"SUM({p} * {zj}) AS sp{c.k}_{j}" for j, zj in enumerate(z)]
        cols += _products(f"h{c.k}_", f"{p} * (CAST(1 AS DOUBLE) - {p})", c.x)
        cols.append(f"SUM(CASE WHEN {e} > 0 THEN {e} + ln(CAST(1 AS DOUBLE) + exp(-{e})) "
                    f"ELSE ln(CAST(1 AS DOUBLE) + exp({e})) END) AS sl{c.k}")
        cols.append(f"MIN({e}) AS elo{c.k}, MAX({e}) AS ehi{c.k}")
    return (f"SELECT {', '.join(cols)} FROM (SELECT {', '.join(mid)} FROM (SELECT {inner} FROM {units}) didx_b) "
            f"didx_c GROUP BY gc")


def _capped(c: CellSQL, gamma: np.ndarray) -> str:
    return f"LEAST({_sigmoid(f'e{c.k}')}, {lit(PSCORE_CAP)})"


def _odds(c: CellSQL, trim: float) -> str:
    """The trimmed odds of a comparison unit (0 for the treated cohort and trimmed units)."""
    p = f"ps{c.k}"
    return (f"CASE WHEN gc = {c.g} THEN CAST(0 AS DOUBLE) WHEN {p} >= {lit(trim)} THEN CAST(0 AS DOUBLE) "
            f"ELSE {p} / (CAST(1 AS DOUBLE) - {p}) END")


def _scored(units: str, cells: Sequence[tuple[CellSQL, np.ndarray, np.ndarray]], trim: float,
            extra: Sequence[str] = ()) -> str:
    """The units with, per cell, ``ps<k>`` (capped pscore), ``o<k>`` (trimmed odds) and ``r<k>`` (outcome change
    less the regression's fit; NULL outside the cell's cohorts)."""
    xs = sorted({x for c, _, _ in cells for x in c.x})
    inner = ["gc", *extra, *xs, *sorted({f"y{p}" for c, _, _ in cells for p in (c.t, c.b)})]
    inner += [_pscore(c, g) for c, g, _ in cells]
    mid = ["gc", *extra, *xs]
    for c, g, beta in cells:
        mid += [f"{_capped(c, g)} AS ps{c.k}",
                f"CASE WHEN {_in(c.codes)} THEN {c.dy} - {lin(beta, c.x)} END AS r{c.k}"]
    outer = ["gc", *extra, *xs]
    for c, _, _ in cells:
        outer += [f"ps{c.k}", f"r{c.k}", f"{_odds(c, trim)} AS o{c.k}"]
    return (f"(SELECT {', '.join(outer)} FROM (SELECT {', '.join(mid)} FROM (SELECT {', '.join(inner)} FROM {units}) "
            f"didx_b) didx_c) didx_d")


def weight_sums_sql(units: str, cells: Sequence[tuple[CellSQL, np.ndarray, np.ndarray]], trim: float) -> str:
    """By cohort, per cell k at its final pscore: ``h<k>_<j>_<m>`` = sum ps(1-ps) z_j z_m (capped ps),
    ``so<k>_<j>`` = sum o z_j, ``sor<k>_<j>`` = sum o r z_j."""
    cols = ["gc"]
    for c, _, _ in cells:
        k = c.k
        z = ["CAST(1 AS DOUBLE)", *c.x]
        cols += _products(f"h{k}_", f"ps{k} * (CAST(1 AS DOUBLE) - ps{k})", c.x)
        cols += [f"SUM(o{k} * {zj}) AS so{k}_{j}" for j, zj in enumerate(z)]
        cols += [f"SUM(o{k} * r{k} * {zj}) AS sor{k}_{j}" for j, zj in enumerate(z)]
    return f"SELECT {', '.join(cols)} FROM {_scored(units, cells, trim)} GROUP BY gc"


@dataclass(frozen=True)
class IFTerms:
    """A cell's influence function per unit (:mod:`didx.engines.cs_cov`): treated cohort
    ``a_t (r - e_t) - (1 - ps) z'b``; comparison cohorts ``-r z'c - b_c o (r - e_c) + ps z'b``, with ``z = (1, x)``
    and ``r`` the outcome change less ``z'beta``."""

    cell: CellSQL
    gamma: np.ndarray | None  # None: no propensity score (reg)
    beta: np.ndarray
    a_t: float
    e_t: float
    b: np.ndarray
    c: np.ndarray
    b_c: float
    e_c: float


def _psi(f: IFTerms) -> str:
    c = f.cell
    r = f"r{c.k}"
    if f.gamma is None:
        treated = f"{lit(f.a_t)} * ({r} - {lit(f.e_t)})"
        control = f"-{r} * {lin(f.c, c.x)}"
    else:
        ps = f"ps{c.k}"
        zb = lin(f.b, c.x)
        treated = f"{lit(f.a_t)} * ({r} - {lit(f.e_t)}) - (CAST(1 AS DOUBLE) - {ps}) * {zb}"
        control = (f"-{r} * {lin(f.c, c.x)} - {lit(f.b_c)} * o{c.k} * ({r} - {lit(f.e_c)}) "
                   f"+ {ps} * {zb}")
    return (f"CASE WHEN gc = {c.g} THEN {treated} WHEN {_in(c.controls)} THEN {control} "
            f"ELSE CAST(0 AS DOUBLE) END")


def gram_sql(units: str, terms: Sequence[IFTerms], trim: float, cluster: bool) -> str:
    """By cohort [and cluster]: ``n``, ``s<j>`` = sum psi_j, ``m<j>_<l>`` = sum psi_j psi_l (j <= l), where j
    indexes ``terms``."""
    extra = ["cl"] if cluster else []
    scored = _scored(units, [(f.cell, np.zeros(1 + len(f.cell.x)) if f.gamma is None else f.gamma, f.beta)
                             for f in terms], trim, extra)
    psi = ", ".join(["gc", *extra, *(f"{_psi(f)} AS psi{j}" for j, f in enumerate(terms))])
    keys = ["gc", *extra]
    J = len(terms)
    cols = [*keys, "CAST(COUNT(*) AS BIGINT) AS n"]
    cols += [f"SUM(psi{j}) AS s{j}" for j in range(J)]
    cols += [f"SUM(psi{j} * psi{m}) AS m{j}_{m}" for j in range(J) for m in range(j, J)]
    return f"SELECT {', '.join(cols)} FROM (SELECT {psi} FROM {scored}) didx_e GROUP BY {', '.join(keys)}"
