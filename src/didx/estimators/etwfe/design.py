"""The ETWFE design shared by the linear and the GLM fits: covariate terms, treatment dummies, aggregation names."""

from __future__ import annotations

import numpy as np

from didx._panel import Panel
from didx._validate import fmt_value
from didx.estimators.etwfe.result import Aggregation
from didx.estimators.etwfe.sample import Cells


def cohort_means(full: Panel, cohorts: np.ndarray) -> np.ndarray:
    """Unweighted means of the covariates within each cohort of ``cohorts`` (``inf``: the never treated) over every
    row of ``full``, the panel before ETWFE's sample rules, as R etwfe's ``demean(x ~ gvar, data)`` (it demeans the
    whole data, rows later dropped from the regression included; (G, p))."""
    assert full.cohort is not None
    c = np.where(np.isfinite(full.cohort), full.cohort, np.inf)
    out = np.zeros((cohorts.shape[0], full.covariates.shape[1]))
    for g, value in enumerate(cohorts):
        rows = c == value
        if rows.any():
            out[g] = full.covariates[rows].mean(axis=0)
    return out


def covariate_terms(panel: Panel, cells: Cells, cohort_name: str, time_name: str, means: np.ndarray | None = None
                    ) -> tuple[np.ndarray, list[str], np.ndarray, list[str], np.ndarray]:
    """The covariate columns (x, x by cohort, x by period), the cell x demeaned-covariate columns, and the
    demeaned covariates (``means``: the cohort means to subtract, from :func:`cohort_means`; default the sample's)."""
    W = panel.covariates
    names = list(panel.covariate_names)
    G, T = cells.table.shape
    cnt = np.bincount(cells.cohort, minlength=G).astype(np.float64)
    Wdm = np.empty_like(W)
    for j in range(W.shape[1]):
        mj = (np.bincount(cells.cohort, weights=W[:, j], minlength=G) / np.where(cnt > 0, cnt, 1.0)
              if means is None else means[:, j])
        Wdm[:, j] = W[:, j] - mj[cells.cohort]
    cols: list[np.ndarray] = []
    cnames: list[str] = []
    for j, x in enumerate(names):
        cols.append(W[:, j])
        cnames.append(x)
    for j, x in enumerate(names):
        for g in range(G):
            if g != cells.ref_index:
                cols.append(np.where(cells.cohort == g, W[:, j], 0.0))
                cnames.append(f"{cohort_name}::{fmt_value(cells.cohorts[g])}:{x}")
    for j, x in enumerate(names):
        for t in range(1, T):
            cols.append(np.where(panel.time == t, W[:, j], 0.0))
            cnames.append(f"{time_name}::{fmt_value(cells.periods[t])}:{x}")
    coef_of_row = cells.table.reshape(-1)[cells.cell]
    treated = np.flatnonzero(coef_of_row >= 0)
    dm_cols = np.zeros((panel.n_obs, cells.k * W.shape[1]))
    dm_names: list[str] = []
    for j, x in enumerate(names):
        dm_cols[treated, j * cells.k + coef_of_row[treated]] = Wdm[treated, j]
        dm_names += [f"{n}:{x}_dm" for n in cells.names]
    C = np.column_stack(cols) if cols else np.empty((panel.n_obs, 0))
    return C, cnames, dm_cols, dm_names, Wdm


def cell_dummies(cells: Cells) -> np.ndarray:
    n = cells.cell.shape[0]
    D = np.zeros((n, cells.k))
    coef_of_row = cells.table.reshape(-1)[cells.cell]
    r = np.flatnonzero(coef_of_row >= 0)
    D[r, coef_of_row[r]] = 1.0
    return D


def finish_aggregation(kind: str, values: list[float], est: np.ndarray, J: np.ndarray, den: np.ndarray,
                       cohort_name: str, time_name: str) -> Aggregation:
    """Names; event times whose effect is 0 by construction (only reference cells) become reference periods."""
    vals = np.asarray(values, dtype=float)
    keep = np.ones(vals.shape[0], dtype=bool)
    reference: tuple[float, ...] = ()
    if kind == "event":
        zero = ~np.any(J != 0, axis=1)
        reference = tuple(float(v) for v in vals[zero])
        keep = ~zero
    names: tuple[str, ...]
    if kind == "simple":
        names = ("ATT",)
        vals = np.array([np.nan])
    elif kind == "group":
        names = tuple(f"{cohort_name}::{fmt_value(v)}" for v in vals)
    elif kind == "calendar":
        names = tuple(f"{time_name}::{fmt_value(v)}" for v in vals)
    else:
        names = tuple(f"event::{fmt_value(v)}" for v in vals)
    idx = np.flatnonzero(keep)
    return Aggregation(kind=kind, names=tuple(names[i] for i in idx), values=vals[idx], estimate=est[idx],
                       jacobian=J[idx], n_obs=den[idx], reference=reference)
