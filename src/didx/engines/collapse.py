"""``collapse=`` through an engine: the group x period cell means computed where the data live.

Collapsing (Bertrand, Duflo & Mullainathan 2004; :mod:`didx.estimators.regression.collapse`) replaces the rows by
the means of the cells of the treatment-level group (the ``cluster=`` column, else the cohort) and period. Those
means and the cell sizes are sums of the unit moments (:func:`didx.engines.stats.unit_moments`, grouped by cohort,
observation pattern and the group column), so the engine returns them with the usual checks and drops. The
estimator then runs in memory on the cells (a few thousand rows at most) exactly as it runs after collapsing a
frame: same estimates, covariances (any ``vcov=``, ``with_vcov``, the wild bootstrap: they need only the cells),
design and summary. The sample report is the one of the rows (input rows, drops by reason), as in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError, InvalidOptionError
from didx._validate import as_list
from didx.engines.cs import ROWS_FIX
from didx.engines.source import EngineInput
from didx.engines.stats import Moments, Request, unit_moments
from didx.estimators.regression.collapse import CollapseInfo, check_collapse

_N = "didx_cell_size"
_G = "didx_group"


def collapsed(src: EngineInput, fn: Callable[..., Any], *, func: str, y: str, unit: str, time: str, cohort: str,
              cluster: str | Sequence[str] | None, collapse: str, drop_always: bool = False, **options: Any) -> Any:
    """``fn`` (the in-memory estimator) on the group x period means computed by the engine (module docstring).

    ``options`` are passed to ``fn`` unchanged (its covariance options and the like); ``drop_always``: the
    estimator drops always-treated units (the event study), which the engine refuses when there are any (their
    count is of units, not cells)."""
    weighted = check_collapse(func, collapse)
    clusters = as_list(cluster)
    if len(clusters) > 1:
        raise InvalidOptionError(
            f"{func}: collapse={collapse!r} groups by one cluster column (the level at which treatment is "
            f"assigned); got cluster={clusters!r}. Fix: pass a single column."
        )
    group = clusters[0] if clusters else None
    if group == unit:
        raise InvalidOptionError(f"{func}: collapse={collapse!r} with cluster= the unit column leaves the rows as "
                                 f"they are. Fix: cluster by the level at which treatment is assigned, or drop "
                                 f"collapse=.")
    m = unit_moments(src, Request(func=func, y=y, unit=unit, time=time, cohort=cohort, cluster=group,
                                  require_control="untreated_obs"))
    if drop_always and (m.cohort_values[m.gc] <= m.periods[0]).any():
        raise InvalidOptionError(f"{func}: collapse= with always-treated units (cohort at or before the first "
                                 f"period) is not available through the engines yet. Fix: {ROWS_FIX}.")
    col = group or _G  # the cell frame's unit column: the group
    cells, n_cells = _cells(m, func, group or "cohort", col, y=y, time=time, cohort=cohort, weighted=weighted)
    res = fn(cells, y=y, unit=col, time=time, cohort=cohort, cluster=group, collapse=collapse,
             weights=_N if weighted else None, **options)
    info = CollapseInfo(group=group or "cohort", n_groups=int(cells[col].nunique()), n_cells=n_cells,
                        n_rows=m.report.n_obs or 0, weighted=weighted)
    fake = CollapseInfo(group=info.group, n_groups=info.n_groups, n_cells=n_cells, n_rows=n_cells, weighted=weighted)
    report = dataclasses.replace(
        res.sample, n_input_rows=m.report.n_input_rows, dropped=(*m.report.dropped, *res.sample.dropped),
        notes=tuple(f"Collapsed to {info.describe()}" if n == f"Collapsed to {fake.describe()}" else n
                    for n in res.sample.notes))
    design = [(k, info.describe() if k == "Collapse" else ("none" if k == "Weights" else v))
              for k, v in res.design]
    design.append(("Engine", src.describe))
    extras = dict(res.extras)
    if "collapse" in extras:
        extras["collapse"] = info.describe()
    return dataclasses.replace(res, sample=report, design=tuple(design), extras=extras)


def _cells(m: Moments, func: str, group: str, col: str, *, y: str, time: str, cohort: str,
           weighted: bool) -> tuple[pd.DataFrame, int]:
    """One row per observed group x period cell: the group, period, cohort, mean outcome (and size)."""
    obs = m.obs() & (m.n > 0)[:, None]
    key = m.gc if m.cl is None else m.cl
    K = int(key.max()) + 1
    cnt = np.zeros((K, m.n_periods), dtype=np.int64)
    tot = np.zeros((K, m.n_periods))
    np.add.at(cnt, key, obs * m.n[:, None])
    np.add.at(tot, key, m.S + (m.n[:, None] * obs) * m.shift)
    g = m.cohort_values[m.gc]
    if m.cl is not None:  # the cohort (and so the treatment) must be constant within a group x period cell
        lo = np.full((K, m.n_periods), np.inf)
        hi = np.full((K, m.n_periods), -np.inf)
        gg = np.where(np.isfinite(g), g, np.finfo(float).max)[:, None] * np.where(obs, 1.0, np.nan)
        np.fmin.at(lo, key, gg)
        np.fmax.at(hi, key, gg)
        per = m.periods[None, :]
        varies = (cnt > 0) & (lo != hi)
        d_varies = varies & ((lo <= per) != (hi <= per))  # the treatment first, as in memory
        for what, bad in (("treatment", np.argwhere(d_varies)), ("cohort", np.argwhere(varies))):
            if bad.size:
                period = m.labels[bad[0][1]].tolist()  # a plain int or float, as in memory
                raise DesignError(
                    f"{func}: cannot collapse to {group} x period means: the {what} varies within a {group} x period "
                    f"cell (period={period!r}), so the treatment is not assigned "
                    f"at the {group!r} level. Fix: collapse by the level at which treatment is assigned "
                    f"(cluster=<that column>), or do not collapse."
                )
        gval = np.full((K, m.n_periods), np.inf)
        gval[cnt > 0] = np.where(lo == np.finfo(float).max, np.inf, lo)[cnt > 0]
    else:
        gval = np.broadcast_to(m.cohort_values[:, None], (K, m.n_periods))
    c, t = np.nonzero(cnt > 0)
    frame = pd.DataFrame({col: c, time: m.labels[t], cohort: gval[c, t], y: tot[c, t] / cnt[c, t]})
    if weighted:
        frame[_N] = cnt[c, t].astype(np.float64)
    return frame, int(c.shape[0])
