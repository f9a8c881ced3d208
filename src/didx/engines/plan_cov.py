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
    balanced: bool = True  # False: every unit observed in some period (allow_unbalanced)
    y_centre: np.ndarray | None = None  # per period, subtracted from the outcome (None: raw outcomes)


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
    """One row per unit of the estimation sample: ``gc``, [``cl``], ``y<p>`` per final period (NULL where not
    observed), ``x<j>_<s>`` (centred) per covariate and covariate period."""
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
    shift = [f" - {lit(v)}" if v else "" for v in (np.zeros(len(p.periods)) if p.y_centre is None else p.y_centre)]
    cols += [f"SUM(CASE WHEN {t} = {lit(v)} THEN CAST({q(r.y)} AS DOUBLE) END){shift[k]} AS y{k}"
             for k, v in enumerate(p.periods)]
    cols += [f"SUM(CASE WHEN {t} = {lit(p.periods[s])} THEN {_num(q, c)} END) - {lit(p.centre[j, s])} AS {xcol(j, s)}"
             for j, c in enumerate(p.covariates) for s in p.x_periods]
    inner = f"SELECT {', '.join(cols)} FROM {table} WHERE {_kept(r, q)} GROUP BY {q(r.unit)}"
    keep = f"nobs = {p.periods.shape[0]}" if p.balanced else "nobs >= 1"
    return f"(SELECT * FROM ({inner}) didx_a WHERE gc >= 0 AND {keep}) didx_units"


def lin(coef: np.ndarray, j_s: Sequence[str]) -> str:
    """``coef[0] + sum_j coef[j + 1] * column_j`` as SQL."""
    terms = [lit(coef[0]), *(f"{lit(c)} * {col}" for c, col in zip(coef[1:], j_s, strict=True))]
    return "(" + " + ".join(terms) + ")"


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

    def x_at(self, period: int) -> tuple[str, ...]:
        """The covariate columns of period index ``period``."""
        return tuple(xcol(j, period) for j in range(len(self.x)))

    @property
    def s(self) -> int:
        """The period of the covariates."""
        return min(self.t, self.b)

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


def _sigmoid(e: str) -> str:
    return f"(CAST(1 AS DOUBLE) / (CAST(1 AS DOUBLE) + exp(LEAST(-{e}, CAST(700 AS DOUBLE)))))"


ZERO = "CAST(0 AS DOUBLE)"


def _name(col: str) -> str:
    return col.rsplit(" AS ", 1)[-1]


def _inputs(cells: Sequence[CellSQL]) -> list[str]:
    """The unit columns the cells read: covariates and outcomes."""
    return sorted({x for c in cells for x in c.x}) + sorted({f"y{p}" for c in cells for p in (c.t, c.b)})


def _cell_table(rows: Sequence[tuple[CellSQL, np.ndarray, np.ndarray]]) -> str:
    """The cells as a small table (one row per cell and member cohort): ``k``, ``h`` (cohort), ``d`` (1: the
    treated cohort), ``s``, ``t``, ``b`` (period indices) and the coefficients ``g<j>`` (propensity score) and
    ``c<j>`` (outcome regression) on ``z = (1, x)``."""
    out = []
    for c, g, beta in rows:
        for h in c.codes:
            cols = [f"{c.k} AS k", f"{int(h)} AS h", f"{int(h == c.g)} AS d", f"{c.s} AS s", f"{c.t} AS t",
                    f"{c.b} AS b"]
            cols += [f"{lit(v)} AS g{j}" for j, v in enumerate(g)]
            cols += [f"{lit(v)} AS c{j}" for j, v in enumerate(beta)]
            out.append(f"SELECT {', '.join(cols)}")
    return "(" + " UNION ALL ".join(out) + ")"


def _long(units: str, rows: Sequence[tuple[CellSQL, np.ndarray, np.ndarray]], n_cov: int, x_periods: Sequence[int],
          periods: int, trim: float, aggs: dict[str, str]) -> str:
    """The units joined with the cells they belong to (long: one row per unit and cell), each with its cell's
    covariates ``z<j>``, outcome change ``dy``, index ``e``, probability ``p``, capped score ``ps``, trimmed odds
    ``o`` (0 for the treated) and ``r`` (dy less the regression's fit), aggregated by (cell, cohort): a fixed set
    of expressions whatever the number of cells."""
    def pick(key: str, pairs: Sequence[tuple[int, str]]) -> str:
        return f"CASE {key} " + " ".join(f"WHEN {v} THEN {col}" for v, col in pairs) + " END"

    z = [pick("c.s", [(v, f"u.{xcol(j, v)}") for v in x_periods]) + f" AS z{j + 1}" for j in range(n_cov)]
    y = [pick(f"c.{w}", [(v, f"u.y{v}") for v in range(periods)]) + f" AS y{w}" for w in ("t", "b")]
    gs = [f"c.g{j}" for j in range(n_cov + 1)]
    cs = [f"c.c{j}" for j in range(n_cov + 1)]
    first = (f"SELECT c.k AS k, u.gc AS gc, c.d AS d, {', '.join([*z, *y, *gs, *cs])} "
             f"FROM (SELECT * FROM {units}) u JOIN {_cell_table(rows)} c ON u.gc = c.h")
    zs = _zs(n_cov)
    e = " + ".join(f"g{j} * {zj}" for j, zj in enumerate(zs))
    fit = " + ".join(f"c{j} * {zj}" for j, zj in enumerate(zs))
    second = (f"SELECT k, gc, d, {', '.join(zs[1:]) + ', ' if n_cov else ''}{e} AS e, yt - yb - ({fit}) AS r "
              f"FROM ({first}) didx_p")
    third = (f"SELECT *, {_sigmoid('e')} AS p, LEAST({_sigmoid('e')}, {lit(PSCORE_CAP)}) AS ps FROM ({second}) "
             f"didx_q")
    fourth = (f"SELECT *, CASE WHEN d = 1 OR ps >= {lit(trim)} THEN {ZERO} ELSE ps / (CAST(1 AS DOUBLE) - ps) END "
              f"AS o FROM ({third}) didx_r")
    cols = ["k", "gc", *(f"{v} AS {n}" for n, v in aggs.items())]
    return f"SELECT {', '.join(cols)} FROM ({fourth}) didx_s GROUP BY k, gc"


def _zs(n_cov: int) -> list[str]:
    return ["CAST(1 AS DOUBLE)", *(f"z{j + 1}" for j in range(n_cov))]


def logit_sql(units: str, cells: Sequence[tuple[CellSQL, np.ndarray]], n_cov: int, x_periods: Sequence[int],
              periods: int) -> str:
    """By (cell k, cohort), at the cell's coefficients: ``sp<j>`` = sum p z_j, ``h<j>_<m>`` = sum p(1-p) z_j z_m,
    ``sl`` = sum log(1 + exp(e)), and the range ``elo``, ``ehi`` of the index e (separation)."""
    aggs = logit_aggs(n_cov)
    rows = [(c, g, np.zeros(n_cov + 1)) for c, g in cells]
    return _long(units, rows, n_cov, x_periods, periods, 1.0, aggs)


def weight_sums_sql(units: str, cells: Sequence[tuple[CellSQL, np.ndarray, np.ndarray]], trim: float, n_cov: int,
                    x_periods: Sequence[int], periods: int) -> str:
    """By (cell k, cohort), at the final pscore: ``h<j>_<m>`` = sum ps(1-ps) z_j z_m (capped ps), ``so<j>`` = sum o
    z_j, ``sor<j>`` = sum o r z_j."""
    zs = _zs(n_cov)
    aggs = {f"h{j}_{m}": f"SUM(ps * (CAST(1 AS DOUBLE) - ps) * {zs[j]} * {zs[m]})"
            for j in range(len(zs)) for m in range(j, len(zs))}
    aggs.update({f"so{j}": f"SUM(o * {zj})" for j, zj in enumerate(zs)})
    aggs.update({f"sor{j}": f"SUM(o * r * {zj})" for j, zj in enumerate(zs)})
    return _long(units, cells, n_cov, x_periods, periods, trim, aggs)


def _scored(h: int, cells: Sequence[tuple[CellSQL, np.ndarray | None, np.ndarray]],
            trim: float) -> list[list[str]]:
    """Row projections for the units of cohort h: per cell k, ``r<k>`` (outcome change less the regression's fit)
    and, with a propensity score, ``ps<k>`` (capped) and ``o<k>`` (the trimmed odds of a comparison unit, 0 for the
    treated cohort)."""
    first = _inputs([c for c, _, _ in cells])
    second: list[str] = []
    third: list[str] = []
    for c, g, beta in cells:
        k = c.k
        first.append(f"{c.dy} - {lin(beta, c.x)} AS r{k}")
        if g is not None:
            second.append(f"LEAST({_sigmoid(lin(g, c.x))}, {lit(PSCORE_CAP)}) AS ps{k}")
            odds = (ZERO if h == c.g else
                    f"CASE WHEN ps{k} >= {lit(trim)} THEN {ZERO} ELSE ps{k} / (CAST(1 AS DOUBLE) - ps{k}) END")
            third.append(f"{odds} AS o{k}")
    return [lv for lv in (first, second, third) if lv]


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


def _psi(h: int, f: IFTerms) -> str:
    """The influence function of a unit of cohort h."""
    c = f.cell
    r = f"r{c.k}"
    if h == c.g:
        out = f"{lit(f.a_t)} * ({r} - {lit(f.e_t)})"
        if f.gamma is not None:
            out += f" - (CAST(1 AS DOUBLE) - ps{c.k}) * {lin(f.b, c.x)}"
        return out
    out = f"-{r} * {lin(f.c, c.x)}"
    if f.gamma is not None:
        out += f" - {lit(f.b_c)} * o{c.k} * ({r} - {lit(f.e_c)}) + ps{c.k} * {lin(f.b, c.x)}"
    return out


def gram_sql(units: str, terms: Sequence[IFTerms], trim: float, cluster: bool, h: int) -> str:
    """The units of cohort h [by cluster]: ``n``, ``s<j>`` = sum psi_j, ``m<j>_<l>`` = sum psi_j psi_l (j <= l) over
    the cells j that involve cohort h (``terms`` index them). A unit's cohort decides whether it is treated or a
    comparison unit in a cell, so one aggregation per cohort computes only the influence functions that are not 0
    there (with every cohort in one query, the pairs of the others would have to be returned as NULL columns)."""
    keys = ["gc", *(["cl"] if cluster else [])]
    sub = [(j, f) for j, f in enumerate(terms) if h in f.cell.codes]
    levels = _scored(h, [(f.cell, f.gamma, f.beta) for _, f in sub], trim) if sub else []
    levels.append([f"{_psi(h, f)} AS psi{j}" for j, f in sub])
    aggs = ["CAST(COUNT(*) AS BIGINT) AS n", *(f"SUM(psi{j}) AS s{j}" for j, _ in sub)]
    aggs += [f"SUM(psi{j} * psi{m}) AS m{j}_{m}" for a, (j, _) in enumerate(sub) for m, _ in sub[a:]]
    src = f"(SELECT * FROM {units} WHERE gc = {int(h)}) didx_l0"
    seen: list[str] = []
    for i, level in enumerate(lv for lv in levels if lv):
        src = f"(SELECT {', '.join([*keys, *seen, *level])} FROM {src}) didx_l{i + 1}"
        seen += [_name(c) for c in level]
    return f"SELECT {', '.join([*keys, *aggs])} FROM {src} GROUP BY {', '.join(keys)}"


# ----------------------------------------------------------------------------------------------- unbalanced panels
def _rc_cell_table(rows: Sequence[tuple[CellSQL, np.ndarray]]) -> str:
    """The cells' row slots (unbalanced panels): per cell, member cohort and period (post: t, pre: b) ``k``, ``h``,
    ``d``, ``post``, ``p`` (period index) and the propensity-score coefficients ``g<j>``."""
    out = []
    for c, g in rows:
        for h in c.codes:
            for post, per in ((1, c.t), (0, c.b)):
                cols = [f"{c.k} AS k", f"{int(h)} AS h", f"{int(h == c.g)} AS d", f"{post} AS post", f"{per} AS p"]
                cols += [f"{lit(v)} AS g{j}" for j, v in enumerate(g)]
                out.append(f"SELECT {', '.join(cols)}")
    return "(" + " UNION ALL ".join(out) + ")"


def rc_sql(units: str, rows: Sequence[tuple[CellSQL, np.ndarray]], n_cov: int, x_periods: Sequence[int],
           trim: float, aggs: dict[str, str]) -> str:
    """Unbalanced panels: every observed (unit, period) row of every cell (the repeated-cross-section estimators
    see a unit's rows at t and at b as two observations), with its covariates ``z<j>`` of its own period, outcome
    ``y``, index ``e``, probability ``p``, capped score ``ps`` and trimmed odds ``o``, aggregated by (cell, cohort,
    post)."""
    def pick(key: str, pairs: Sequence[tuple[int, str]]) -> str:
        return f"CASE {key} " + " ".join(f"WHEN {v} THEN {col}" for v, col in pairs) + " END"

    periods = sorted({p for c, _ in rows for p in (c.t, c.b)})
    z = [pick("c.p", [(v, f"u.{xcol(j, v)}") for v in x_periods]) + f" AS z{j + 1}" for j in range(n_cov)]
    y = pick("c.p", [(v, f"u.y{v}") for v in periods]) + " AS y"
    gs = [f"c.g{j}" for j in range(n_cov + 1)]
    first = (f"SELECT c.k AS k, u.gc AS gc, c.d AS d, c.post AS post, {', '.join([*z, y, *gs])} "
             f"FROM (SELECT * FROM {units}) u JOIN {_rc_cell_table(rows)} c ON u.gc = c.h")
    zs = _zs(n_cov)
    e = " + ".join(f"g{j} * {zj}" for j, zj in enumerate(zs))
    second = (f"SELECT k, gc, d, post, y, {', '.join(zs[1:]) + ', ' if n_cov else ''}{e} AS e FROM ({first}) "
              f"didx_p WHERE y IS NOT NULL")
    third = (f"SELECT *, {_sigmoid('e')} AS p, LEAST({_sigmoid('e')}, {lit(PSCORE_CAP)}) AS ps FROM ({second}) "
             f"didx_q")
    fourth = (f"SELECT *, CASE WHEN d = 1 OR ps >= {lit(trim)} THEN {ZERO} ELSE ps / (CAST(1 AS DOUBLE) - ps) END "
              f"AS o FROM ({third}) didx_r")
    cols = ["k", "gc", "post", *(f"{v} AS {n}" for n, v in aggs.items())]
    return f"SELECT {', '.join(cols)} FROM ({fourth}) didx_s GROUP BY k, gc, post"


def rc_sums_aggs(n_cov: int) -> dict[str, str]:
    """Rows, ``sz<j>``, ``szz<j>_<m>`` (j <= m), ``szy<j>`` (``z_0 = 1``), and the covariates' range."""
    zs = _zs(n_cov)
    aggs = {"n": "CAST(COUNT(*) AS BIGINT)"}
    aggs.update({f"sz{j}": f"SUM({zs[j]})" for j in range(1, len(zs))})
    aggs.update({f"szz{j}_{m}": f"SUM({zs[j]} * {zs[m]})" for j in range(1, len(zs)) for m in range(j, len(zs))})
    aggs.update({f"szy{j}": f"SUM({zj} * y)" for j, zj in enumerate(zs)})
    aggs.update({f"lo{j}": f"MIN({zs[j]})" for j in range(1, len(zs))})
    aggs.update({f"hi{j}": f"MAX({zs[j]})" for j in range(1, len(zs))})
    return aggs


def logit_aggs(n_cov: int, p: str = "p") -> dict[str, str]:
    """The aggregates of a Newton step (see :func:`logit_sql`)."""
    zs = _zs(n_cov)
    aggs = {f"sp{j}": f"SUM({p} * {zj})" for j, zj in enumerate(zs)}
    aggs.update({f"h{j}_{m}": f"SUM({p} * (CAST(1 AS DOUBLE) - {p}) * {zs[j]} * {zs[m]})"
                 for j in range(len(zs)) for m in range(j, len(zs))})
    aggs["sl"] = "SUM(CASE WHEN e > 0 THEN e + ln(CAST(1 AS DOUBLE) + exp(-e)) ELSE ln(CAST(1 AS DOUBLE) + exp(e)) END)"
    aggs["elo"], aggs["ehi"] = "MIN(e)", "MAX(e)"
    return aggs


def rc_weight_aggs(n_cov: int) -> dict[str, str]:
    """At the final scores: ``h<j>_<m>`` (capped ps), ``so<j>`` = sum o z_j, ``soy<j>`` = sum o y z_j, ``soz<j>_<m>``
    = sum o z_j z_m (1 <= j <= m)."""
    zs = _zs(n_cov)
    aggs = {f"h{j}_{m}": f"SUM(ps * (CAST(1 AS DOUBLE) - ps) * {zs[j]} * {zs[m]})"
            for j in range(len(zs)) for m in range(j, len(zs))}
    aggs.update({f"so{j}": f"SUM(o * {zj})" for j, zj in enumerate(zs)})
    aggs.update({f"soy{j}": f"SUM(o * y * {zj})" for j, zj in enumerate(zs)})
    aggs.update({f"soz{j}_{m}": f"SUM(o * {zs[j]} * {zs[m]})" for j in range(1, len(zs)) for m in range(j, len(zs))})
    return aggs


@dataclass(frozen=True)
class RCRow:
    """A row's influence function in a cell (unbalanced panels), by its role (treated or not, post or pre):
    ``b (r - a) + b_o o (r - a) + z'c + (y - z'beta) z'v + (ps - delta) z'hv`` with ``r = y - z'fit`` (``y``
    without ``fit``); terms with None are left out."""

    fit: np.ndarray | None = None
    b: float = 0.0
    b_o: float = 0.0
    a: float = 0.0
    c: np.ndarray | None = None
    beta: np.ndarray | None = None
    v: np.ndarray | None = None
    hv: np.ndarray | None = None
    delta: float = 0.0

    def sql(self, y: str, x: Sequence[str], ps: str, o: str) -> str:
        parts = []
        r = y if self.fit is None else f"({y} - {lin(self.fit, x)})"
        if self.b:
            parts.append(f"{lit(self.b)} * ({r} - {lit(self.a)})")
        if self.b_o:
            parts.append(f"{lit(self.b_o)} * {o} * ({r} - {lit(self.a)})")
        if self.c is not None:
            parts.append(lin(self.c, x))
        if self.v is not None and self.beta is not None:
            parts.append(f"({y} - {lin(self.beta, x)}) * {lin(self.v, x)}")
        if self.hv is not None:
            parts.append(f"({ps} - {lit(self.delta)}) * {lin(self.hv, x)}")
        return " + ".join(parts) if parts else ZERO


@dataclass(frozen=True)
class RCTerms:
    """A cell's influence function per unit: the sum over its observed rows (post at t, pre at b) of
    :class:`RCRow` by role; ``rows[(treated, post)]``."""

    cell: CellSQL
    gamma: np.ndarray | None
    rows: dict[tuple[bool, bool], RCRow]


def rc_gram_sql(units: str, terms: Sequence[RCTerms], trim: float, cluster: bool, h: int) -> str:
    """:func:`gram_sql` for unbalanced panels: a unit's influence function in a cell sums its rows at t and b."""
    keys = ["gc", *(["cl"] if cluster else [])]
    sub = [(j, f) for j, f in enumerate(terms) if h in f.cell.codes]
    first = sorted({col for _, f in sub for col in (*f.cell.x_at(f.cell.t), *f.cell.x_at(f.cell.b),
                                                   f"y{f.cell.t}", f"y{f.cell.b}")})
    second: list[str] = []
    third: list[str] = []
    psi: list[str] = []
    for j, f in sub:
        c = f.cell
        treated = h == c.g
        ends = []
        for post, per in ((True, c.t), (False, c.b)):
            tag = f"{j}{'t' if post else 'b'}"
            x = c.x_at(per)
            ps, o = f"ps{tag}", f"o{tag}"
            if f.gamma is not None:
                second.append(f"LEAST({_sigmoid(lin(f.gamma, x))}, {lit(PSCORE_CAP)}) AS {ps}")
                odds = f"CASE WHEN {ps} >= {lit(trim)} THEN {ZERO} ELSE {ps} / (CAST(1 AS DOUBLE) - {ps}) END"
                third.append(f"{ZERO if treated else odds} AS {o}")
            expr = f.rows[(treated, post)].sql(f"y{per}", x, ps, o)
            ends.append(f"CASE WHEN y{per} IS NULL THEN {ZERO} ELSE {expr} END")
        psi.append(f"{' + '.join(ends)} AS psi{j}")
    levels = [lv for lv in (first, second, third, psi) if lv]
    aggs = ["CAST(COUNT(*) AS BIGINT) AS n", *(f"SUM(psi{j}) AS s{j}" for j, _ in sub)]
    aggs += [f"SUM(psi{j} * psi{m}) AS m{j}_{m}" for a, (j, _) in enumerate(sub) for m, _ in sub[a:]]
    src = f"(SELECT * FROM {units} WHERE gc = {int(h)}) didx_l0"
    seen: list[str] = []
    for i, level in enumerate(levels):
        src = f"(SELECT {', '.join([*keys, *seen, *level])} FROM {src}) didx_l{i + 1}"
        seen += [_name(c) for c in level]
    return f"SELECT {', '.join([*keys, *aggs])} FROM {src} GROUP BY {', '.join(keys)}"
