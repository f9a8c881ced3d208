"""Run the plans and return the small tables: unit moments by (cohort, observation pattern[, cluster]).

:func:`unit_moments` checks the roles against the schema (missing column, non-numeric outcome, time or cohort:
the errors of the in-memory panel, before any scan), runs pass 1 (:func:`didx.engines.plan.cells_sql`: periods,
cohorts, drops, cell means; the cohort codings and the outcome are checked here, as :func:`didx._panel.build_panel`
checks them) and pass 2 (:func:`didx.engines.plan.moments_sql`: duplicate unit-periods and cohorts or clusters
varying within a unit are errors; otherwise the moments). The result, :class:`Moments`, is what every estimator
of :mod:`didx.engines` starts from, with the :class:`~didx._sample.SampleReport` of the rows it dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._frame import LARGEST_SAFE
from didx._sample import Dropped, SampleReport
from didx._validate import check_columns, cluster_count_check, fmt_value
from didx.engines import grid, plan
from didx.engines.source import EngineInput

NEVER = np.inf


@dataclass(frozen=True, eq=False)
class Moments:
    """Units grouped by (cohort, observation pattern[, cluster]): the sufficient statistics of the estimators.

    ``periods``/``labels`` (T,); ``cohort_values`` (G,) the value of each cohort code (``inf`` = never treated,
    last); per group k: ``gc`` cohort code, ``pattern`` bit mask of the periods observed, ``n`` units (int64),
    ``S[k, p]`` sum over its units of ``y_p - shift[k, p]`` (0 where unobserved; the shift is the cell mean of
    pass 1), ``P[k]`` the T x T sums of products of those, ``cl`` cluster code (or None). ``report`` is the
    panel-level sample report.
    """

    periods: np.ndarray
    labels: np.ndarray
    cohort_values: np.ndarray
    gc: np.ndarray
    pattern: np.ndarray
    n: np.ndarray
    S: np.ndarray
    P: np.ndarray
    shift: np.ndarray
    cl: np.ndarray | None
    n_clusters: int
    report: SampleReport

    @property
    def n_periods(self) -> int:
        return int(self.periods.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.n.sum())

    def obs(self) -> np.ndarray:
        """(K, T) True where the group's units are observed."""
        return ((self.pattern[:, None] >> np.arange(self.n_periods)) & 1).astype(bool)

    def rows(self) -> np.ndarray:
        """Rows of each group (units x periods observed), int64."""
        return self.n * self.obs().sum(axis=1)

    def select(self, keep: np.ndarray) -> Moments:
        cl = None if self.cl is None else self.cl[keep]
        return dataclasses.replace(self, gc=self.gc[keep], pattern=self.pattern[keep], n=self.n[keep],
                                   S=self.S[keep], P=self.P[keep], shift=self.shift[keep], cl=cl)

    def restrict(self, keep_periods: np.ndarray) -> Moments:
        """Drop the periods not in ``keep_periods`` (bool, T) from every group (their sums become 0), keeping the
        period columns; groups left with no period observed are removed."""
        mask = int(sum(1 << p for p in np.flatnonzero(keep_periods)))
        S = self.S * keep_periods
        P = self.P * (keep_periods[:, None] & keep_periods[None, :])
        out = dataclasses.replace(self, pattern=self.pattern & mask, S=S, P=P)
        return out.select(out.pattern != 0)

    def compact_periods(self) -> Moments:
        """Remove the period columns no group observes (re-coding the patterns)."""
        present = self.obs().any(axis=0) if self.gc.size else np.zeros(self.n_periods, dtype=bool)
        if present.all():
            return self
        idx = np.flatnonzero(present)
        obs = self.obs()[:, idx]
        pattern = (obs.astype(np.int64) << np.arange(idx.size)).sum(axis=1)
        return dataclasses.replace(self, periods=self.periods[idx], labels=self.labels[idx], pattern=pattern,
                                   S=self.S[:, idx], P=self.P[:, idx][:, :, idx], shift=self.shift[:, idx])

    def with_shape(self) -> Moments:
        """The report's rows, units, periods, balance and units with gaps, as the groups now are."""
        obs = self.obs()
        full = obs[:, obs.any(axis=0)].all(axis=1)
        T = self.n_periods
        first = np.argmax(obs, axis=1)
        last = T - 1 - np.argmax(obs[:, ::-1], axis=1)
        gaps = (last - first + 1) != obs.sum(axis=1)
        report = dataclasses.replace(self.report, n_obs=int(self.rows().sum()), n_units=self.n_units,
                                     n_periods=int(obs.any(axis=0).sum()), balanced=bool(full.all()),
                                     n_units_with_gaps=None if full.all() else int(self.n[gaps].sum()))
        return dataclasses.replace(self, report=report)

    def cell_counts(self) -> np.ndarray:
        """(G, T) units observed in each cohort x period (int64)."""
        out = np.zeros((self.cohort_values.shape[0], self.n_periods), dtype=np.int64)
        np.add.at(out, self.gc, self.obs() * self.n[:, None])
        return out

    def cell_means(self) -> np.ndarray:
        """(G, T) mean outcome of each cohort x period (0 where empty)."""
        G = self.cohort_values.shape[0]
        sums = np.zeros((G, self.n_periods))
        np.add.at(sums, self.gc, self.S + (self.n[:, None] * self.obs()) * self.shift)
        cnt = self.cell_counts()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, sums / np.where(cnt > 0, cnt, 1), 0.0)

    def centred(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sums and sums of products of ``y - mu[cohort]`` per group (exact algebra on the shifted sums)."""
        o = self.obs()
        d = (mu[self.gc] - self.shift) * o  # (K, T), 0 where unobserved
        S = self.S - self.n[:, None] * d
        P = (self.P - d[:, :, None] * self.S[:, None, :] - self.S[:, :, None] * d[:, None, :]
             + self.n[:, None, None] * d[:, :, None] * d[:, None, :])
        return S, P


@dataclass(frozen=True)
class Request:
    """What the estimator reads: the role columns and the checks that differ by estimator."""

    func: str
    y: str
    unit: str | None
    time: str
    cohort: str
    cluster: str | None = None
    require_control: str = "none"  # as build_panel: "none" | "untreated_obs" | "never"
    treat_mode: bool = False  # ``cohort`` is a 0/1 treated-group dummy over a 0/1 ``time`` (did2x2)


@dataclass(frozen=True, eq=False)
class Pass1:
    """What pass 1 established: roles, periods, cohorts and their codes, centring values, drops."""

    roles: plan.Roles
    periods: np.ndarray
    cohort_values: np.ndarray
    raw: np.ndarray
    codes: np.ndarray
    never_code: int
    shift: np.ndarray
    n_input: int
    drops: list[tuple[str, int]]

    @property
    def all_kept(self) -> bool:
        return not any(c for _, c in self.drops)


def unit_moments(src: EngineInput, req: Request) -> Moments:
    """Validate, run both passes, and return the :class:`Moments` (see the module docstring)."""
    scanned = None
    if grid.applies(src, unit=req.unit, cluster=req.cluster, treat_mode=req.treat_mode):
        _schema(src, req)  # the schema errors come before any scan
        assert req.unit is not None
        scanned = grid.scan(src, y=req.y, unit=req.unit, time=req.time, cohort=req.cohort)
    p1 = pass1(src, req, cells=None if scanned is None else scanned.cells())
    r = p1.roles
    if scanned is not None:
        out = scanned.moments(p1.raw, p1.codes, p1.never_code, p1.shift)
        if grid.ROUTE not in src.describe:  # summary() says which plan ran
            src.describe = f"{src.describe}; {grid.ROUTE}"
    else:
        sql = plan.moments_sql(r, src.quote, src.table, periods=p1.periods, cohort_raw=p1.raw, cohort_code=p1.codes,
                               never_code=p1.never_code, shift=p1.shift, all_kept=p1.all_kept)
        out = src.run(sql)
    m = _assemble(src, r, req, out, periods=p1.periods, cohort_values=p1.cohort_values, shift=p1.shift,
                  n_input=p1.n_input, drops=p1.drops, raw=p1.raw, codes=p1.codes, never_code=p1.never_code)
    _check_design(m, req)
    return m


def _check_design(m: Moments, req: Request) -> None:
    """Treated and (where the estimator requires them) control units or observations exist, as
    :func:`didx._panel.build_panel` checks them."""
    if req.treat_mode:
        return
    present = m.n > 0
    never = ~np.isfinite(m.cohort_values[m.gc])
    if req.require_control == "never" and not (never & present).any():
        raise DesignError(
            f"{req.func}: no control units: every unit has a treatment date in {req.cohort!r}, and this estimator "
            f"compares with never-treated units. Fix: use a not-yet-treated control group if the estimator "
            f"offers one, or add never-treated units."
        )
    treated = (m.periods[None, :] >= m.cohort_values[m.gc][:, None]) & m.obs() & present[:, None]
    if not treated.any():
        raise DesignError(f"{req.func}: no treated observations: {req.cohort!r} is never 1 in the sample. Fix: check "
                          f"the treatment column.")
    if req.require_control != "none" and not (~treated & m.obs() & present[:, None]).any():
        raise DesignError(f"{req.func}: no control observations: every row is treated in {req.cohort!r}. Fix: "
                          f"include untreated units or periods.")


def _schema(src: EngineInput, req: Request) -> plan.Roles:
    """The roles checked against the schema (missing columns, non-numeric outcome, time or cohort)."""
    roles: dict[str, object] = {"y": req.y, "time": req.time, "unit": req.unit, "cohort": req.cohort,
                                "cluster": req.cluster}
    check_columns(req.func, roles, list(src.columns), list(src.columns))
    _check_kinds(src, req)
    return plan.Roles(y=req.y, time=req.time, unit=req.unit, cohort=req.cohort, cluster=req.cluster,
                      unit_numeric=req.unit is not None and src.kinds[req.unit] == "numeric",
                      cluster_numeric=req.cluster is not None and src.kinds[req.cluster] == "numeric",
                      treat_mode=req.treat_mode)


def pass1(src: EngineInput, req: Request, cells: dict[str, np.ndarray] | None = None) -> Pass1:
    """The schema checks and pass 1 (periods, cohorts, drops, cell means), with the in-memory errors; ``cells``:
    pass 1's table when a grid scan (:mod:`didx.engines.grid`) already formed it."""
    func = req.func
    r = _schema(src, req)
    if cells is None:
        cells = src.run(plan.cells_sql(r, src.quote, src.table))
    t, g, reason = cells["t"].astype(float), cells["g"].astype(float), cells["reason"].astype(np.int64)
    n = cells["n"].astype(np.int64)
    n_input = int(n.sum())
    if n_input == 0:
        raise DataError(f"{func}: the data have no rows. Fix: check the file or query.")
    timed = (reason == 0) | (reason > 2)
    all_periods = np.unique(t[timed])
    if all_periods.size == 0:
        raise DesignError(f"{func}: every row has a missing time ({req.time!r}). Fix: check the time column.")
    if req.treat_mode:
        cohort_map = _treat_groups(func, req, g, all_periods)
    else:
        cohort_map = _cohorts(func, req, np.unique(g[np.isfinite(g)]), all_periods)
    kept = reason == plan.KEEP
    drops = [(plan.REASONS[k - 1], int(n[reason == k].sum())) for k in range(1, len(plan.REASONS) + 1)]
    if not kept.any():
        why = "; ".join(f"{c} rows: {w}" for w, c in drops if c)
        raise DataError(f"{func}: no row is left after dropping rows with missing or infinite values ({why}). "
                        f"Fix: check those columns.")
    _check_outcome(func, req.y, cells, kept)
    periods = np.unique(t[kept])
    if periods.size < 2:
        raise DesignError(
            f"{func}: the time column {req.time!r} has {periods.size} distinct period(s) after dropping missing "
            f"values; a difference-in-differences needs at least two. Fix: check the time column and the rows "
            f"dropped for missing values."
        )
    raw, norm = cohort_map
    if periods.size + np.unique(norm).size + 1 > plan.MAX_BITS:
        raise InvalidOptionError(f"{func}: the engines handle at most {plan.MAX_BITS} periods and cohorts together "
                                 f"({periods.size} periods here). Fix: pass an in-memory data frame.")
    cohort_values = np.append(np.unique(norm[np.isfinite(norm)]), NEVER)
    never_code = cohort_values.shape[0] - 1
    codes = np.where(np.isfinite(norm), np.searchsorted(cohort_values, norm), never_code)
    # centring values: the cohort x period means of the kept rows (pass 1)
    gcode_row = np.full(t.shape[0], never_code)
    fin = np.isfinite(g)
    gcode_row[fin] = codes[np.searchsorted(raw, g[fin])]
    T, G = periods.shape[0], cohort_values.shape[0]
    cnt = np.zeros((G, T))
    tot = np.zeros((G, T))
    pk = np.searchsorted(periods, t[kept])
    np.add.at(cnt, (gcode_row[kept], pk), n[kept])
    np.add.at(tot, (gcode_row[kept], pk), np.nan_to_num(cells["sy"].astype(float)[kept]))
    shift = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1), 0.0)
    if req.treat_mode and not np.array_equal(periods, [0.0, 1.0]):
        raise DataError(
            f"{func}: the post column {req.time!r} must be a 0/1 indicator (1 after treatment), but its values are "
            f"{', '.join(fmt_value(float(v)) for v in periods[:6])}. Fix: recode it, e.g. "
            f"(df[{req.time!r}] >= first_post_period).astype(int)."
        )
    if req.treat_mode and not (cnt[:-1].sum() > 0):
        raise DesignError(f"{func}: no treated observations: {req.cohort!r} is never 1 in the sample. Fix: check the "
                          f"treatment column.")
    if not np.isfinite(cohort_values[:-1]).any() or not (cnt[:-1].sum() > 0):
        raise DesignError(
            f"{func}: no treated units: every value of the cohort column {req.cohort!r} codes 'never treated' "
            f"(0, NaN, inf or a period after the last one, {fmt_value(all_periods[-1])}). Fix: check the cohort "
            f"column."
        )
    return Pass1(roles=r, periods=periods, cohort_values=cohort_values, raw=raw, codes=codes, never_code=never_code,
                 shift=shift, n_input=n_input, drops=drops)


# ----------------------------------------------------------------------------------------------- checks
def _check_kinds(src: EngineInput, req: Request) -> None:
    func, kinds = req.func, src.kinds
    if kinds[req.y] != "numeric":
        raise DataError(
            f"{func}: the outcome (y) column {req.y!r} must be numeric, but it holds "
            f"{'dates' if kinds[req.y] == 'datetime' else 'non-numeric values'}. Fix: pass a numeric outcome column."
        )
    if kinds[req.time] == "datetime":
        raise InvalidOptionError(
            f"{func}: the engines need a numeric time column, and {req.time!r} holds dates. Fix: convert it to "
            f"period numbers in the query (e.g. year(date) or a month index), or pass an in-memory data frame."
        )
    if kinds[req.time] != "numeric":
        raise DataError(
            f"{func}: the time column {req.time!r} must be numeric (e.g. a year) or date-like, but it holds "
            f"non-numeric values. Fix: convert it, e.g. with CAST({req.time} AS INTEGER)."
        )
    if kinds[req.cohort] != "numeric":
        raise DataError(
            f"{func}: the cohort column {req.cohort!r} must be numeric (the first treated period; 0, NaN or inf "
            f"for never treated). Fix: convert it to numbers."
        )


def _check_outcome(func: str, y: str, cells: dict[str, np.ndarray], kept: np.ndarray) -> None:
    lo = float(np.nanmin(cells["ymin"].astype(float)[kept]))
    hi = float(np.nanmax(cells["ymax"].astype(float)[kept]))
    if lo == hi:
        raise DataError(
            f"{func}: the outcome y={y!r} is constant (every value in the estimation sample is {fmt_value(lo)}), so "
            f"every difference is 0 by construction and nothing can be estimated (fixest refuses it too). Fix: pass "
            f"y= the outcome column you meant."
        )
    top = max(abs(lo), abs(hi))
    if top > LARGEST_SAFE:
        raise DataError(
            f"{func}: the y= column {y!r} has values up to {top:.3g} in magnitude; their squares overflow double "
            f"precision (above {LARGEST_SAFE:.0e}), so variances would be inf or NaN. Fix: rescale the column."
        )


def _cohorts(func: str, req: Request, raw: np.ndarray, periods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw finite cohort values and their normalised values (never treated: inf), as build_panel codes them."""
    g = raw.copy()
    if (g == 0).any() and np.any(periods == 0):
        raise DataError(
            f"{func}: the cohort column {req.cohort!r} uses 0, but 0 is also a period of the time column, so 0 "
            f"cannot mean 'never treated'. Fix: code never-treated units as NaN or inf in {req.cohort!r}."
        )
    never = (g == 0) | (g > periods[-1])
    T = periods.shape[0]
    consecutive = bool(np.all(periods == np.arange(periods[0], periods[0] + T)))
    if consecutive:
        off = ~never & (g != np.floor(g)) & (g >= periods[0])
    else:
        off = ~never & (g >= periods[0]) & ~np.isin(g, periods)
    if off.any():
        vals = ", ".join(fmt_value(float(v)) for v in g[off][:5])
        raise DataError(
            f"{func}: the cohort column {req.cohort!r} has the value(s) {vals}, not periods of {req.time!r} (between "
            f"{fmt_value(periods[0])} and {fmt_value(periods[-1])}). A cohort is the first treated period. Fix: set "
            f"it to the first period in which the unit is observed treated, or code never-treated units as 0, NaN "
            f"or inf."
        )
    return raw, np.where(never, NEVER, g)


def _treat_groups(func: str, req: Request, g: np.ndarray, periods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 0/1 treated-group dummy as a cohort: 1 is first treated in the post period (1), 0 never treated."""
    bad = np.unique(g[~np.isnan(g) & (g != 0) & (g != 1)])
    if bad.size:
        raise DataError(
            f"{func}: the treated group column {req.cohort!r} must be 0/1 (or boolean), but it has the value(s) "
            f"{', '.join(fmt_value(float(x)) for x in bad[:5])}. Fix: recode it as a 0/1 indicator (for a "
            f"continuous or fractional treatment, round it or use a different estimator)."
        )
    raw = np.unique(g[np.isfinite(g)])
    return raw, np.where(raw == 1, 1.0, NEVER)


def _example(src: EngineInput, sql: str) -> str:
    got = src.run(sql)
    if not got or not len(next(iter(got.values()))):
        return ""
    return ", ".join(f"{k}={fmt_value(v[0])}" for k, v in got.items())


def _assemble(src: EngineInput, r: plan.Roles, req: Request, out: dict[str, np.ndarray], *, periods: np.ndarray,
              cohort_values: np.ndarray, shift: np.ndarray, n_input: int, drops: list[tuple[str, int]],
              raw: np.ndarray, codes: np.ndarray, never_code: int) -> Moments:
    func = req.func
    T = periods.shape[0]
    n = out["n"].astype(np.int64)
    if (out["bad_dup"].astype(np.int64) > 0).any():
        ex = _example(src, plan.duplicate_example_sql(r, src.quote, src.table))
        n_units = int(n[out["bad_dup"].astype(np.int64) > 0].sum())
        raise DataError(
            f"{func}: duplicate (unit, time) rows in {n_units} units{', e.g. ' + ex if ex else ''}. Each unit may "
            f"appear once per period. Fix: aggregate the duplicates, or if this is a repeated cross section do not "
            f"pass unit= (or use panel=False in memory)."
        )
    if (out["bad_g"].astype(np.int64) > 0).any() or (out["gc"].astype(np.int64) < 0).any():
        got = src.run(plan.varying_example_sql(r, src.quote, src.table, raw, codes, never_code))
        ex = ""
        if len(got["u"]):
            vals = [cohort_values[int(got[k][0])] for k in ("lo", "hi")]
            ex = f"{req.unit}={fmt_value(got['u'][0])}: " + " and ".join(
                "never treated" if not np.isfinite(v) else fmt_value(float(v)) for v in vals)
        where = f" (e.g. {ex})" if ex else ""
        if req.treat_mode:
            raise DataError(
                f"{func}: the treated group column {req.cohort!r} varies within a unit{where}"
                f". The treated group must be fixed per unit (treat= is the group dummy, not the treatment status). "
                f"Fix: set {req.cohort!r} to 1 for every row of a treated unit (and use post= for the timing)."
            )
        raise DataError(
            f"{func}: the cohort column {req.cohort!r} varies within a unit{' (e.g. ' + ex + ')' if ex else ''}. A "
            f"cohort is the unit's first treated period and must be constant within a unit. Fix: set it to the first "
            f"period the unit is treated."
        )
    if (out["bad_cl"].astype(np.int64) > 0).any():
        raise DataError(
            f"{func}: the cluster column {req.cluster!r} varies within units. Through the engines clusters must nest "
            f"units (e.g. states containing counties): the engines keep sums per unit, not rows. Fix: cluster on a "
            f"variable that is constant within each unit, or (where {func} allows clusters that cut across units) "
            f"pass an in-memory data frame (e.g. duckdb.read_parquet(path).df(), or spark_df.toPandas())."
        )
    # units left with no row, by the last reason that removed one of their rows (only when rows were dropped)
    lost_units: dict[int, int] = {}
    if any(c for _, c in drops):
        lost = src.run(plan.lost_units_sql(r, src.quote, src.table))
        lost_units = {int(k): int(c) for k, c in zip(lost["last_reason"], lost["n"], strict=True)}
    dropped = tuple(Dropped(reason=f"{why} ({_role_col(req, k + 1)})", n_rows=c, n_units=lost_units.get(k + 1, 0))
                    for k, (why, c) in enumerate(drops) if c)
    gc = out["gc"].astype(np.int64)
    pattern = out["pattern"].astype(np.int64)
    nl = n
    S = np.column_stack([out[f"s{p}"].astype(float) for p in range(T)])
    P = np.empty((nl.shape[0], T, T))
    for p in range(T):
        for s in range(p, T):
            P[:, p, s] = P[:, s, p] = out[f"m{p}_{s}"].astype(float)
    cl = None
    n_clusters = 0
    if req.cluster is not None:
        labels = out["cl"]
        uniq, cl = np.unique(labels, return_inverse=True)
        n_clusters = int(uniq.shape[0])
        cluster_count_check(func, req.cluster, n_clusters)
    labels_t = periods.astype(np.int64) if src.integer.get(req.time, False) else periods
    report = SampleReport(n_input_rows=n_input, n_obs=0, dropped=dropped)
    m = Moments(periods=periods, labels=labels_t, cohort_values=cohort_values, gc=gc, pattern=pattern, n=nl, S=S,
                P=P, shift=shift[gc], cl=cl, n_clusters=n_clusters, report=report)
    return m.with_shape()


def _role_col(req: Request, reason: int) -> str:
    return {1: req.time, 2: req.time, 3: str(req.unit), 4: req.y, 5: req.y, 6: str(req.cluster),
            7: req.cohort}[reason]
