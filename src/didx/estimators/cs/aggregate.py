"""Aggregations of ATT(g,t) (R's ``did::aggte``) as linear maps of the cell influence functions.

Every aggregated parameter is ``theta = sum_k a_k ATT(g_k, t_k)`` with weights ``a_k`` proportional to the
cohort shares ``pg_k = P(G = g_k)`` over a set of cells; its influence function is ``sum_k a_k psi_k`` plus, when
the weights are estimated, the term of ``did``'s ``wif()``:

    wif_i = sum_{k in keep} att_k [ (w_i 1{G_i = g_k} - pg_k) / S
                                    - pg_k / S^2 sum_{k' in keep} (w_i 1{G_i = g_k'} - pg_k') ]

with ``S = sum_{k in keep} pg_k``. The constant parts cancel, leaving ``wif_i = (w_i / S) sum_{k in keep, g_k =
G_i} (att_k - theta)``: a coefficient per cohort on the unit's weight. Each aggregation is therefore a pair
``(A, U)``: ``A`` (cells x estimands) and ``U`` (cohorts x estimands), turned into covariances and bootstrap
draws by :class:`didx.inference.if_store.IFStore`.

Kinds (``aggte``'s ``type``): ``simple`` (post-treatment cells weighted by cohort size), ``group`` (by cohort, then
averaged with cohort-size weights), ``dynamic`` (by event time ``e = t - g``; the overall effect averages
``e >= 0``), ``calendar`` (by period, then averaged). ``max_e`` limits the post-treatment cells of ``simple``
and ``group``; ``min_e``/``max_e``/``balance_e`` select event times of ``dynamic``.

The overall ``group`` effect's weight term labels each group-level weight with its cohort (checked against
did 2.5.1's numbers: labelling by the first ATT(g,t) cells instead, as older ``compute.aggte.R`` sources read,
changes the SE by 0.25% on mpdta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx._errors import DesignError, InvalidOptionError


@dataclass(frozen=True)
class Aggregation:
    """Terms, their per-term info, point estimates and the linear maps (A, U) giving their influence functions."""

    kind: str
    terms: tuple[str, ...]
    estimate: np.ndarray
    A: np.ndarray
    U: np.ndarray
    info: dict[str, np.ndarray]
    band_terms: tuple[str, ...]  # the terms a uniform band covers (all but the overall average)
    reference: tuple[float, ...] = ()


def _wif(keep: np.ndarray, pg: np.ndarray, att: np.ndarray, labels: np.ndarray, n_cohorts: int) -> np.ndarray:
    """Per-cohort coefficient on ``w_i`` of did's weight-estimation influence function (length ``n_cohorts``)."""
    S = float(pg[keep].sum())
    theta = float(att[keep] @ pg[keep]) / S
    out = np.zeros(n_cohorts)
    np.add.at(out, labels[keep], (att[keep] - theta) / S)
    return out


def _check_window(kind: str, min_e: float, max_e: float, balance_e: int | None, func: str) -> None:
    """Reject options the aggregation ``kind`` would ignore, and windows that are not event times."""
    if kind not in ("simple", "group", "dynamic", "calendar"):
        raise InvalidOptionError(
            f"The 'kind' parameter of {func} must be one of {{'simple', 'group', 'dynamic', 'calendar'}}. "
            f"Got {kind!r} instead."
        )
    for name, v in (("min_e", min_e), ("max_e", max_e)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or np.isnan(v):
            raise InvalidOptionError(
                f"The {name!r} parameter of {func} must be a number (an event time t - g). Got {v!r} instead."
            )
    if min_e > max_e:
        raise InvalidOptionError(f"{func}: min_e={min_e!r} is larger than max_e={max_e!r}. Fix: swap them.")
    if balance_e is not None and (isinstance(balance_e, bool) or not isinstance(balance_e, int | np.integer)
                                  or balance_e < 0):
        raise InvalidOptionError(
            f"The 'balance_e' parameter of {func} must be None or an integer >= 0 (the event time every kept "
            f"cohort must reach). Got {balance_e!r} instead."
        )
    # as did's aggte: min_e and balance_e only shape 'dynamic'; max_e caps 'simple', 'group' and 'dynamic'
    ignored = []
    if kind != "dynamic" and np.isfinite(min_e):
        ignored.append(f"min_e={min_e!r}")
    if kind != "dynamic" and balance_e is not None:
        ignored.append(f"balance_e={balance_e!r}")
    if kind == "calendar" and np.isfinite(max_e):
        ignored.append(f"max_e={max_e!r}")
    if ignored:
        raise InvalidOptionError(
            f"{func}: {', '.join(ignored)} has no effect on kind={kind!r} (min_e and balance_e select event times "
            f"of type='dynamic'; max_e caps 'simple', 'group' and 'dynamic'). Fix: drop it, or use kind='dynamic'."
        )


def aggregate(kind: str, *, group: np.ndarray, time: np.ndarray, att: np.ndarray, cohort_code: np.ndarray,
              reference: np.ndarray, pg_cohort: np.ndarray, min_e: float = -np.inf, max_e: float = np.inf,
              balance_e: int | None = None, func: str = "aggregate") -> Aggregation:
    """Build the aggregation ``kind`` from the cells (see the module docstring)."""
    _check_window(kind, min_e, max_e, balance_e, func)
    K = att.shape[0]
    G = pg_cohort.shape[0]
    pg = pg_cohort[cohort_code]
    e_all = time - group
    A_cols: list[np.ndarray] = []
    U_cols: list[np.ndarray] = []
    est: list[float] = []
    terms: list[str] = []

    def add(sel: np.ndarray, weights: np.ndarray, with_wif: bool) -> None:
        a = np.zeros(K)
        a[sel] = weights
        A_cols.append(a)
        est.append(float(a @ att))
        U_cols.append(_wif(sel, pg, att, cohort_code, G) if with_wif else np.zeros(G))

    keepers = np.flatnonzero((group <= time) & (time <= group + max_e))
    if kind == "simple":
        if keepers.size == 0:
            raise DesignError(f"{func}: no post-treatment ATT(g,t) to aggregate. Fix: check max_e.")
        add(keepers, pg[keepers] / pg[keepers].sum(), True)
        terms.append("ATT (simple)")
        A = np.column_stack(A_cols)
        return Aggregation(kind, tuple(terms), np.asarray(est), A, np.column_stack(U_cols),
                           {"event_time": np.array([np.nan])}, ())
    if kind == "group":
        glist = np.unique(group[keepers])
        if glist.size == 0:
            raise DesignError(f"{func}: no post-treatment ATT(g,t) to aggregate. Fix: check max_e.")
        for g in glist:
            sel = keepers[group[keepers] == g]
            add(sel, pg[sel] / pg[sel].sum(), False)
            terms.append(f"ATT(g={g:g})")
        A_g = np.column_stack(A_cols)
        att_g = np.asarray(est)
        pgg = np.array([pg[keepers[group[keepers] == g][0]] for g in glist])
        w_over = pgg / pgg.sum()
        theta = float(w_over @ att_g)
        labels = np.array([cohort_code[keepers[group[keepers] == g][0]] for g in glist])
        U_over = _wif(np.arange(glist.size), pgg, att_g, labels, G)
        A = np.column_stack([A_g, A_g @ w_over])
        U = np.column_stack([np.zeros((G, glist.size)), U_over])
        terms.append("ATT (group average)")
        info = {"group": np.append(glist, np.nan), "event_time": np.full(glist.size + 1, np.nan)}
        return Aggregation(kind, tuple(terms), np.append(att_g, theta), A, U, info, tuple(terms[:-1]))
    if kind == "dynamic":
        include = np.ones(K, dtype=bool)
        eseq = np.unique(e_all)
        if balance_e is not None:
            first = float(min(time.min(), group.min()))
            last = float(time.max())
            include = (last - group) >= balance_e
            eseq = np.unique(e_all[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - last + first)]
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        ref = sorted({float(e) for e in e_all[reference]})
        eseq_est = np.array([e for e in eseq if not (float(e) in ref and np.all(reference[e_all == e]))])
        if eseq_est.size == 0:
            raise DesignError(f"{func}: no event time is left to aggregate. Fix: widen min_e / max_e / balance_e.")
        for e in eseq_est:
            sel = np.flatnonzero((e_all == e) & include)
            add(sel, pg[sel] / pg[sel].sum(), True)
            terms.append(f"e={e:g}")
        A_e = np.column_stack(A_cols)
        U_e = np.column_stack(U_cols)
        att_e = np.asarray(est)
        pos = eseq_est >= 0
        ev = eseq_est.astype(float)
        if pos.any():
            wpos = pos / pos.sum()
            A = np.column_stack([A_e, A_e @ wpos])
            U = np.column_stack([U_e, U_e @ wpos])
            terms_all = (*terms, "ATT (average e>=0)")
            estimate = np.append(att_e, float(wpos @ att_e))
            ev = np.append(ev, np.nan)
        else:
            A, U, terms_all, estimate = A_e, U_e, tuple(terms), att_e
        refs = tuple(r for r in ref if r in set(eseq.tolist()))
        return Aggregation(kind, tuple(terms_all), estimate, A, U, {"event_time": ev}, tuple(terms), refs)
    if kind == "calendar":
        tlist = np.unique(time)
        tlist = tlist[tlist >= group.min()]
        for t1 in tlist:
            sel = np.flatnonzero((time == t1) & (group <= time))
            if sel.size == 0:
                continue
            add(sel, pg[sel] / pg[sel].sum(), True)
            terms.append(f"t={t1:g}")
        if not terms:
            raise DesignError(f"{func}: no post-treatment ATT(g,t) to aggregate by calendar time.")
        m = len(terms)
        A_t = np.column_stack(A_cols)
        U_t = np.column_stack(U_cols)
        wm = np.full(m, 1.0 / m)
        A = np.column_stack([A_t, A_t @ wm])
        U = np.column_stack([U_t, U_t @ wm])
        times = np.array([float(t[2:]) for t in terms])
        info = {"time": np.append(times, np.nan), "event_time": np.full(m + 1, np.nan)}
        return Aggregation(kind, (*terms, "ATT (calendar average)"), np.append(est, float(wm @ np.asarray(est))),
                           A, U, info, tuple(terms))
    raise InvalidOptionError(
        f"The 'kind' parameter of {func} must be one of {{'simple', 'group', 'dynamic', 'calendar'}}. "
        f"Got {kind!r} instead."
    )
