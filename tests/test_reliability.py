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
    lambda d, **k: didx.did2x2(two_periods(d), y="y", treat="g", post="p", **k),
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


# ---------------------------------------------------------------- the column reader: +-inf read as missing
def test_reader_records_infinite_values() -> None:
    """The reader records where a role column holds +-inf (not the cohort, where inf means never treated) and
    leaves the values as read; its value checks ignore inf."""
    from didx._frame import read_columns

    df = pd.DataFrame({"y": [1.0, np.inf, 3.0, -np.inf], "t": [1, 2, 1, 2], "g": [np.inf, 0.0, 2.0, 2.0]})
    cols = read_columns(df, ["y", "t", "g"], "f", {"y": "y", "time": "t", "cohort": "g"})
    np.testing.assert_array_equal(cols.infinite_rows("y"), [False, True, False, True])
    np.testing.assert_array_equal(cols.arrays["y"], df["y"].to_numpy())
    assert "g" not in cols.infinite and not cols.infinite_rows("t").any()
    # the outcome is not 'constant' because of inf, nor 'too large'
    with pytest.raises(didx.DataError, match=r"outcome y='y' is constant \(every value is 1\)"):
        read_columns(df.assign(y=[1.0, np.inf, 1.0, 1.0]), ["y"], "f", {"y": "y"})


# ---------------------------------------------------------------- fewer than two clusters, for every estimator
@pytest.mark.parametrize("call", [
    lambda d: didx.att_gt(d, **STAGGERED, cluster="state"),
    lambda d: didx.imputation(d, **STAGGERED, cluster="state"),
    lambda d: didx.did2s(d, **STAGGERED, cluster="state"),
    lambda d: didx.dcdh(d, y="y", unit="unit", time="time", treat="d", cluster="state"),
    lambda d: didx.twfe(d, **STAGGERED, cluster="state"),
], ids=["att_gt", "imputation", "did2s", "dcdh", "twfe"])
def test_a_single_cluster_is_an_error(small: pd.DataFrame, call: Any) -> None:
    """One cluster gave a standard error of 0 (att_gt, imputation, did2s) or of |estimate| (dcdh)."""
    with pytest.raises(didx.DataError, match=r"cluster variable 'state' has 1 distinct value.*at least two.*Fix"):
        call(small.assign(state="TX"))


def test_a_single_cluster_left_after_dropping_rows(small: pd.DataFrame) -> None:
    """Two clusters in the data, one in the estimation sample: the panel layer counts the kept rows."""
    df = small.assign(state=np.where(small["unit"] < 3, "CA", "TX"), y=small["y"].where(small["unit"] >= 3))
    with pytest.raises(didx.DataError, match=r"'state' has 1 distinct value in the estimation sample"):
        didx.imputation(df, **STAGGERED, cluster="state")


# ---------------------------------------------------------------- integer column labels in the covariance layer
@pytest.mark.parametrize("call", [
    lambda d, u: didx.event_study(d, y="y", unit=u, time="time", cohort="cohort"),
    lambda d, u: didx.sun_abraham(d, y="y", unit=u, time="time", cohort="cohort"),
    lambda d, u: didx.stacked(d, y="y", unit=u, time="time", cohort="cohort", window=(-1, 1)),
], ids=["event_study", "sun_abraham", "stacked"])
def test_integer_unit_label_as_default_cluster(small: pd.DataFrame, call: Any) -> None:
    """The unit (the default cluster) labelled 11: cluster names are column names (str) in VcovSpec and
    ClusterCodes, so the covariance is the same (was TypeError joining the cluster names)."""
    base = call(small, "unit")
    res = call(small.rename(columns={"unit": 11}), 11)
    assert res.estimate == base.estimate and res.std_error == pytest.approx(base.std_error, rel=1e-12)
    assert res.inference.cluster_names == ("11",)
    again = res.with_vcov(cluster="11")
    assert again.std_error == pytest.approx(base.std_error, rel=1e-12)


def test_cluster_codes_are_keyed_by_column_name() -> None:
    """A cluster column labelled 0 is the column '0'; either spelling finds its codes."""
    from didx.inference.contract import ClusterCodes

    cc = ClusterCodes({0: np.array([0, 1, 1])}, None, 3)
    assert cc.names == ("0",)
    assert "0" in cc.stored and 0 in cc.stored
    np.testing.assert_array_equal(cc.stored["0"], cc.stored[0])
