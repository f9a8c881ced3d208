"""Issue 10, the shared layers: options checked with clear errors (ssc=, clusters), results whose summary(),
tidy() and plot() never raise, and notes where a returned result has a non-finite covariance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from didx.inference.vcov import SSC, VcovSpec, compute_vcov
from didx.linalg.ols import fit_ols


@pytest.fixture
def small() -> pd.DataFrame:
    df = didx.datasets.simulate_staggered(30, 5, [3, 4], seed=4)
    df["state"] = df["unit"] % 6
    return df


STAGGERED = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort"}


def two_periods(df: pd.DataFrame) -> pd.DataFrame:
    """Periods 2 and 3; the cohort-3 units (treated) against the never-treated."""
    out = df[df.time.isin([2, 3]) & df.cohort.isin([0, 3])]
    return out.assign(p=(out.time == 3).astype(int), g=(out.cohort == 3).astype(int))


# ---------------------------------------------------------------- ssc= and the small-sample correction
@pytest.mark.parametrize("call", [
    lambda d, **k: didx.twfe(d, **STAGGERED, **k),
    lambda d, **k: didx.event_study(d, **STAGGERED, **k),
    lambda d, **k: didx.sun_abraham(d, **STAGGERED, **k),
    lambda d, **k: didx.stacked(d, **STAGGERED, window=(-1, 1), **k),
    lambda d, **k: didx.ols(d, y="y", x="d", fe=["unit", "time"], **k),
    lambda d, **k: didx.did2x2(two_periods(d), y="y", group="g", post="p", **k),
], ids=["twfe", "event_study", "sun_abraham", "stacked", "ols", "did2x2"])
def test_ssc_must_be_an_ssc_value(small: pd.DataFrame, call: Any) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"The 'ssc' parameter of \w+ must be a didx\.SSC\(\.\.\.\) "
                                                      r"value or None\. Got 'bogus' instead\..*Fix"):
        call(small, ssc="bogus")


def test_ssc_in_with_vcov(small: pd.DataFrame) -> None:
    res = didx.twfe(small, **STAGGERED)
    with pytest.raises(didx.InvalidOptionError, match=r"'ssc' parameter of .*Got 'none' instead.*Fix"):
        res.with_vcov("hetero", ssc="none")


def test_ssc_flags_must_be_booleans() -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"The 'adj' parameter of SSC must be True or False\. Got 'no'"):
        SSC(adj="no")  # type: ignore[arg-type]
    with pytest.raises(didx.InvalidOptionError, match=r"'cluster_adj' parameter of SSC.*Got 1 instead"):
        SSC(cluster_adj=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["CR1", "CR0", "CR3"])
def test_single_cluster_in_the_covariance_code(kind: str) -> None:
    """compute_vcov itself refuses one cluster (was ZeroDivisionError in G / (G - 1))."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(50), rng.normal(size=50)])
    fit = fit_ols(rng.normal(size=50), X, ["(Intercept)", "x"])
    with pytest.raises(didx.DataError, match=r"cluster variable 'g' has 1 distinct value.*at least two clusters.*Fix"):
        compute_vcov(fit, VcovSpec(kind, ("g",)), {"g": np.zeros(50, dtype=np.int64)}, "test")
    with pytest.raises(didx.DataError, match=r"cluster variable 'h' has 1 distinct value"):
        compute_vcov(fit, VcovSpec("CR1", ("g", "h")), {"g": np.arange(50) % 5, "h": np.zeros(50, dtype=np.int64)},
                     "test")
