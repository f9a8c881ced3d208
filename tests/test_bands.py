"""Uniform (sup-t) bands: bounds, one-coefficient case, closed forms, reproducibility, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import didx
from didx.inference.bands import sup_t_critical_value

N_DRAWS = 200_000
# Monte Carlo tolerance for a simulated 95% quantile of max|Z| with 200k draws: its SE is about
# sqrt(0.05 * 0.95 / n) / density(c) ~ 0.005 for the dimensions used here; allow 4 SE.
TOL_MC = 0.02


def _ar1_corr(k: int, rho: float) -> np.ndarray:
    i = np.arange(k)
    return np.asarray(rho ** np.abs(i[:, None] - i[None, :]))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_between_pointwise_and_bonferroni(rho: float) -> None:
    k = 8
    V = _ar1_corr(k, rho) * 0.04
    c = sup_t_critical_value(V, n_draws=N_DRAWS, seed=1)
    pointwise = stats.norm.ppf(0.975)
    bonferroni = stats.norm.ppf(1 - 0.05 / (2 * k))
    assert pointwise < c < bonferroni + TOL_MC


def test_independent_coefficients_closed_form() -> None:
    k = 5
    c = sup_t_critical_value(np.diag([1.0, 4.0, 0.25, 9.0, 1.0]), n_draws=N_DRAWS, seed=2)
    exact = stats.norm.ppf((1 + 0.95 ** (1 / k)) / 2)  # P(max|Z| <= c) = (2 Phi(c) - 1)^k
    assert c == pytest.approx(exact, abs=TOL_MC)


def test_perfectly_correlated_is_pointwise() -> None:
    V = np.full((4, 4), 2.0)
    c = sup_t_critical_value(V, n_draws=N_DRAWS, seed=3)
    assert c == pytest.approx(stats.norm.ppf(0.975), abs=TOL_MC)


def test_one_coefficient_equals_pointwise_exactly() -> None:
    assert sup_t_critical_value(np.array([[0.3]]), seed=None) == stats.norm.ppf(0.975)
    assert sup_t_critical_value(np.array([[0.3]]), df=12) == stats.t.ppf(0.975, 12)
    band = didx.uniform_bands((np.array([1.0]), np.array([[0.25]])), conf_level=0.9)
    assert band.critical_value == stats.norm.ppf(0.95)
    assert band.conf_low[0] == pytest.approx(1.0 - stats.norm.ppf(0.95) * 0.5)


def test_reproducible_with_seed_and_varies_without() -> None:
    V = _ar1_corr(6, 0.4)
    a = sup_t_critical_value(V, n_draws=10_000, seed=11)
    b = sup_t_critical_value(V, n_draws=10_000, seed=11)
    c = sup_t_critical_value(V, n_draws=10_000, seed=12)
    assert a == b
    assert a != c
    assert a == pytest.approx(c, abs=0.1)


def test_t_reference_widens_band() -> None:
    V = _ar1_corr(6, 0.4)
    normal = sup_t_critical_value(V, n_draws=N_DRAWS, seed=5)
    t5 = sup_t_critical_value(V, n_draws=N_DRAWS, seed=5, df=5)
    assert t5 > normal + 0.3


def test_result_band_covers_event_terms(mpdta: pd.DataFrame) -> None:
    res = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    band = didx.uniform_bands(res, n_draws=20_000, seed=0)
    assert band.terms == res.terms  # all terms are event times here
    assert band.df == res.inference.df
    tidy = res.tidy()
    np.testing.assert_allclose(band.estimate, tidy["estimate"])
    assert (band.conf_low < tidy["conf_low"]).all() and (band.conf_high > tidy["conf_high"]).all()
    assert band.pointwise_critical_value == pytest.approx(stats.t.ppf(0.975, 499))
    assert "uniform (sup-t) 95% band over 7 coefficients" in band.describe()
    sub = didx.uniform_bands(res, terms=["event_time::0"])
    assert sub.critical_value == pytest.approx(stats.t.ppf(0.975, 499))


def test_errors() -> None:
    with pytest.raises(didx.InvalidOptionError, match="n_draws must be an integer >= 100"):
        sup_t_critical_value(np.eye(2), n_draws=5)
    with pytest.raises(didx.InvalidOptionError, match="vcov must be 2 x 2"):
        didx.uniform_bands((np.zeros(2), np.eye(3)))
    with pytest.raises(didx.InvalidOptionError, match="conf_level must be a number strictly between 0 and 1"):
        didx.uniform_bands((np.zeros(2), np.eye(2)), conf_level=95)


def test_band_is_immutable() -> None:
    coef = np.array([1.0, 2.0])
    band = didx.uniform_bands((coef, np.eye(2)), n_draws=1000)
    coef[0] = 99.0  # the caller's array is copied, not aliased
    assert band.estimate[0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        band.estimate[0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        band.std_error[0] = 5.0


def test_error_no_terms_names_fix(mpdta: pd.DataFrame) -> None:
    es = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(didx.InvalidOptionError, match=r"no terms to cover \(terms=\[\]\).*Fix: pass terms="):
        didx.uniform_bands(es, terms=[])
