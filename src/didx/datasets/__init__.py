"""Small real datasets shipped with didx, and a simulator of staggered panels.

Provenance (all public; copied from the reference packages' own data):

================================  =======================================================================
name                              origin and design
================================  =======================================================================
``card_krueger``                  PoEdata ``njmin3`` (Hill, Griffiths & Lim), from Card & Krueger (1994): NJ vs
                                  PA fast-food stores, Feb/Mar and Nov/Dec 1992; ``store_id`` added (store i of
                                  wave 0 is store i of wave 1). Columns: store_id, nj, d, fte, chain dummies, ...
``mpdta``                         R package did: 500 US counties 2003-2007, minimum-wage increases. countyreal,
                                  year, first.treat (0 = never), lemp, lpop, treat.
``castle``                        R package bacondecomp: castle-doctrine laws, 50 states 2000-2010 (Cheng &
                                  Hoekstra 2013). sid, year, post, l_homicide, ...
``castle_did2s``                  R package did2s: the same design, reduced.
``base_stagg``, ``base_did``      R package fixest: simulated staggered and single-date panels.
``voters``                        R package fwildclusterboot: simulated experiment with 40 clusters.
``nsw_long``                      R package DRDID: NSW job training (LaLonde) with CPS/PSID comparisons, 1975/78.
``sim_rc``                        R package DRDID: simulated repeated cross section.
``favara_imbs``                   R package DIDmultiplegtDYN: county bank-branching deregulation 1994-2005.
``ehec``                          HonestDiD / Advanced-DID examples: Medicaid expansion by state 2008-2019.
``california_prop99``             R package synthdid: California tobacco tax, 1970-2000.
``df_het_did2s``                  R package did2s: simulated staggered panel with heterogeneous effects.
``df_het_didimputation``          R package didimputation: a similar simulated panel.
``wage_panel``                    Python package linearmodels: NLSY young men 1980-1987 (Vella & Verbeek).
``cai2016``                       Python package moderndid: agricultural insurance in China (Cai 2016), households
                                  by year; the triple-differences example. hhno, year, treatment, sector, ...
================================  =======================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources

import numpy as np
import pandas as pd

from didx._errors import InvalidOptionError
from didx._validate import did_you_mean

_FILES = {
    "card_krueger": "card_krueger.csv",
    "mpdta": "mpdta.csv",
    "castle": "castle.csv",
    "castle_did2s": "castle_did2s.csv",
    "base_stagg": "base_stagg.csv",
    "base_did": "base_did.csv",
    "voters": "voters.csv",
    "nsw_long": "nsw_long.csv.gz",
    "sim_rc": "sim_rc.csv",
    "favara_imbs": "favara_imbs.csv",
    "ehec": "ehec.csv",
    "california_prop99": "california_prop99.csv",
    "df_het_did2s": "df_het_did2s.csv.gz",
    "df_het_didimputation": "df_het_didimputation.csv.gz",
    "wage_panel": "wage_panel.csv",
    "cai2016": "cai2016.csv.gz",
}

__all__ = ["available", "load", "simulate_staggered"]


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_FILES)


def load(name: str) -> pd.DataFrame:
    """Load a shipped dataset as a pandas DataFrame (see the module docstring for provenance)."""
    if name not in _FILES:
        raise InvalidOptionError(
            f"Unknown dataset {name!r}.{did_you_mean(name, _FILES)} Available: {', '.join(available())}."
        )
    path = resources.files("didx.datasets").joinpath("data", _FILES[name])
    with resources.as_file(path) as p:
        return pd.read_csv(p, compression="infer")


def simulate_staggered(
    n_units: int,
    n_periods: int,
    cohorts: int | Sequence[int] = 3,
    *,
    effects: float | Callable[[np.ndarray, np.ndarray], np.ndarray] | str = "dynamic",
    never_share: float = 0.3,
    seed: int | None = None,
) -> pd.DataFrame:
    """A balanced staggered-adoption panel with known effects.

    ``y_it = a_i + g_t + 0.5 x2_it + tau_it + e_it`` with ``a_i ~ N(0,1) + 0.5 x1_i``, ``g_t = 0.1 t``,
    ``e ~ N(0,1)``. Periods are 1..n_periods; ``cohorts`` is a number ``k`` of consecutive adoption periods
    ``max(2, n_periods - k), ...`` (ending at ``n_periods - 1``, or at ``n_periods`` when ``k = n_periods - 1``) or
    an explicit list; each unit draws one with equal probability, and a share ``never_share`` of units is never
    treated (cohort 0).

    effects : a constant, ``"dynamic"`` (``tau = (1 + 0.5 k)(1 + 0.3 e)`` for cohort index k and event time
        e >= 0: heterogeneous and growing), or a function ``f(cohort_index, event_time) -> tau``.

    Returns columns ``unit, time, cohort, y, d, x1, x2, tau`` (``d = 1[cohort > 0 and time >= cohort]``).
    """
    if n_units < 2 or n_periods < 2:
        raise InvalidOptionError("simulate_staggered needs n_units >= 2 and n_periods >= 2.")
    if isinstance(cohorts, int | np.integer):
        k = int(cohorts)
        if not 1 <= k <= n_periods - 1:
            raise InvalidOptionError(f"cohorts={k} must be between 1 and n_periods - 1 = {n_periods - 1}.")
        start = max(2, n_periods - k)
        cl = np.arange(start, start + k)
        cl = cl[cl <= n_periods]
    else:
        cl = np.asarray(sorted(cohorts), dtype=np.int64)
        if cl.size == 0 or cl.min() < 1 or cl.max() > n_periods:
            raise InvalidOptionError(f"cohorts must be periods between 1 and {n_periods}; got {list(cl)}.")
    rng = np.random.default_rng(seed)
    N, T = int(n_units), int(n_periods)
    x1 = rng.standard_normal(N)
    never = rng.random(N) < never_share
    kidx = rng.integers(0, cl.shape[0], N)
    cohort = np.where(never, 0, cl[kidx]).astype(np.int64)
    alpha = rng.standard_normal(N) + 0.5 * x1
    t = np.arange(1, T + 1)
    unit = np.repeat(np.arange(N, dtype=np.int64), T)
    time = np.tile(t, N)
    g = np.repeat(cohort, T)
    kk = np.repeat(kidx, T)
    e = time - g
    d = (g > 0) & (e >= 0)
    if isinstance(effects, str):
        if effects != "dynamic":
            raise InvalidOptionError(f"effects must be a number, 'dynamic' or a function; got {effects!r}.")
        tau = np.where(d, (1.0 + 0.5 * kk) * (1.0 + 0.3 * e), 0.0)
    elif callable(effects):
        tau = np.where(d, np.asarray(effects(kk, e), dtype=float), 0.0)
    else:
        tau = np.where(d, float(effects), 0.0)
    x2 = rng.standard_normal(N * T) + 0.3 * np.repeat(x1, T)
    y = np.repeat(alpha, T) + 0.1 * time + 0.5 * x2 + tau + rng.standard_normal(N * T)
    return pd.DataFrame({"unit": unit, "time": time, "cohort": g, "y": y, "d": d.astype(np.int8),
                         "x1": np.repeat(x1, T), "x2": x2, "tau": tau})
