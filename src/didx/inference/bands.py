"""Uniform (sup-t) confidence bands for a vector of coefficients.

A pointwise 95% interval covers each coefficient with probability 0.95; a *uniform* band covers all of them
simultaneously. With t-statistics ``t = D^{-1/2}(b - beta)`` approximately ``N(0, C)``, ``C`` the correlation
matrix of ``b``, the band is ``b_j +/- c * se_j`` with ``c`` the ``conf_level`` quantile of ``max_j |t_j|``.
``c`` is simulated from ``N(0, C)`` (seeded); when the result uses a t reference distribution with ``df``
degrees of freedom, the draws are multivariate t (the normal draws divided by one ``sqrt(chi2_df / df)`` per
draw), so that with one coefficient the band is the pointwise interval. ``c`` lies between the pointwise
critical value and the Bonferroni one.

References: Montiel Olea, J. L. & Plagborg-Moller, M. (2019), "Simultaneous confidence bands: theory,
implementation, and an application to SVARs", JAE 34(1); Callaway & Sant'Anna (2021) use the same sup-t
construction with a multiplier bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from didx._errors import InvalidOptionError
from didx._validate import check_conf_level

DEFAULT_DRAWS = 100_000
DEFAULT_SEED = 0
_CHUNK = 20_000


@dataclass(frozen=True)
class UniformBand:
    """A sup-t band: ``estimate +/- critical_value * std_error`` for every term at once (immutable)."""

    terms: tuple[str, ...]
    estimate: np.ndarray
    std_error: np.ndarray
    critical_value: float
    pointwise_critical_value: float
    conf_level: float
    n_draws: int
    seed: int | None
    df: float | None

    def __post_init__(self) -> None:
        for name in ("estimate", "std_error"):
            a = np.array(getattr(self, name), dtype=np.float64, copy=True)
            a.flags.writeable = False
            object.__setattr__(self, name, a)

    @property
    def conf_low(self) -> np.ndarray:
        return np.asarray(self.estimate - self.critical_value * self.std_error)

    @property
    def conf_high(self) -> np.ndarray:
        return np.asarray(self.estimate + self.critical_value * self.std_error)

    def describe(self) -> str:
        dist = "normal" if self.df is None else f"t({self.df:g})"
        return (f"uniform (sup-t) {100 * self.conf_level:g}% band over {len(self.terms)} coefficients: critical "
                f"value {self.critical_value:.4f} (pointwise {self.pointwise_critical_value:.4f}); "
                f"{self.n_draws} {dist} draws, seed {self.seed}")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"term": list(self.terms), "estimate": self.estimate, "std_error": self.std_error,
                             "conf_low": self.conf_low, "conf_high": self.conf_high})


def pointwise_critical_value(conf_level: float, df: float | None) -> float:
    a = 1.0 - conf_level
    if df is None:
        return float(stats.norm.ppf(1 - a / 2))
    return float(stats.t.ppf(1 - a / 2, df))


def sup_t_critical_value(vcov: np.ndarray, *, conf_level: float = 0.95, n_draws: int = DEFAULT_DRAWS,
                         seed: int | None = DEFAULT_SEED, df: float | None = None) -> float:
    """The ``conf_level`` quantile of ``max_j |Z_j|``, ``Z ~ N(0, corr(vcov))`` (multivariate t if ``df``).

    Coefficients with zero variance are ignored. With one coefficient the exact pointwise quantile is returned.
    Memory is bounded: draws are made in chunks of ``_CHUNK`` rows.
    """
    conf_level = check_conf_level(conf_level)
    if not isinstance(n_draws, int | np.integer) or isinstance(n_draws, bool) or n_draws < 100:
        raise InvalidOptionError(f"n_draws must be an integer >= 100 (e.g. 100000). Got {n_draws!r}.")
    V = np.atleast_2d(np.asarray(vcov, dtype=float))
    if V.shape[0] != V.shape[1]:
        raise InvalidOptionError(f"uniform_bands: the covariance must be square; got shape {V.shape}.")
    sd = np.sqrt(np.clip(np.diag(V), 0.0, None))
    ok = sd > 0
    k = int(ok.sum())
    if k <= 1:
        return pointwise_critical_value(conf_level, df)
    C = V[np.ix_(ok, ok)] / np.outer(sd[ok], sd[ok])
    lam, U = np.linalg.eigh(0.5 * (C + C.T))
    L = U * np.sqrt(np.clip(lam, 0.0, None))  # C = L L'
    rng = np.random.default_rng(seed)
    maxima = np.empty(int(n_draws))
    done = 0
    while done < n_draws:
        m = min(_CHUNK, int(n_draws) - done)
        Z = rng.standard_normal((m, k)) @ L.T
        if df is not None:
            Z /= np.sqrt(rng.chisquare(df, size=m) / df)[:, None]
        maxima[done:done + m] = np.abs(Z).max(axis=1)
        done += m
    return float(np.quantile(maxima, conf_level))


def uniform_bands(
    result: Any,
    *,
    terms: Sequence[str] | None = None,
    conf_level: float = 0.95,
    n_draws: int = DEFAULT_DRAWS,
    seed: int | None = DEFAULT_SEED,
) -> UniformBand:
    """Sup-t uniform confidence band for several coefficients.

    Parameters
    ----------
    result : a :class:`~didx.results.base.Result` (by default the band covers its event-time terms if it is an
        event study, else every term; the reference distribution is the result's), or a pair ``(coef, vcov)``
        (normal reference distribution).
    terms : the terms to cover jointly (a result only).
    conf_level : simultaneous coverage.
    n_draws : simulation draws of ``max |t|``.
    seed : seed of the simulation (default 0, so bands are reproducible; None draws fresh entropy).

    Returns
    -------
    UniformBand : ``critical_value``, ``conf_low``, ``conf_high`` per term, and how they were simulated.
    """
    conf_level = check_conf_level(conf_level)
    if isinstance(result, tuple):
        if len(result) != 2 or terms is not None:
            raise InvalidOptionError(
                "uniform_bands: pass a result, or a pair (coef, vcov) without terms=. Got a tuple of length "
                f"{len(result)}."
            )
        b = np.atleast_1d(np.asarray(result[0], dtype=float))
        V = np.atleast_2d(np.asarray(result[1], dtype=float))
        if V.shape != (b.shape[0], b.shape[0]):
            raise InvalidOptionError(
                f"uniform_bands: vcov must be {b.shape[0]} x {b.shape[0]} to match coef; got {V.shape}."
            )
        names = tuple(f"b{j + 1}" for j in range(b.shape[0]))
        df = None
    else:
        all_terms = tuple(result.terms)
        if terms is None:
            info = getattr(result, "term_info", {})
            if "event_time" in info:
                et = np.asarray(info["event_time"], dtype=float)
                names = tuple(t for t, e in zip(all_terms, et, strict=True) if np.isfinite(e))
            else:
                names = all_terms
        else:
            names = tuple(terms)
        if not names:
            what = f"terms={list(terms)!r}" if terms is not None else "the result has no event-time term"
            raise InvalidOptionError(
                f"uniform_bands: no terms to cover ({what}). Fix: pass terms= a list of the result's terms, "
                f"e.g. {list(all_terms)[:3]!r}."
            )
        idx = [result._index(t) for t in names]
        b = np.asarray(result.coef, dtype=float)[idx]
        V = np.asarray(result.vcov_matrix, dtype=float)[np.ix_(idx, idx)]
        df = result.inference.df
    crit = sup_t_critical_value(V, conf_level=conf_level, n_draws=n_draws, seed=seed, df=df)
    se = np.sqrt(np.clip(np.diag(V), 0.0, None))
    return UniformBand(terms=names, estimate=b, std_error=se, critical_value=crit,
                       pointwise_critical_value=pointwise_critical_value(conf_level, df), conf_level=conf_level,
                       n_draws=int(n_draws), seed=seed, df=df)
