"""The covariance contract itself (didx.inference.contract): request parsing, declared capabilities, cluster codes
captured at fit time, pickling. The per-estimator checks against refits are in test_registry.py."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import didx
from didx.inference.contract import Capabilities, ClusterCodes, parse_request

TWFE = dict(y="lemp", unit="countyreal", time="year", cohort="first.treat")


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    df = didx.datasets.load("mpdta")
    return df.assign(state=df["countyreal"] // 1000)


def test_parse_request_spellings_and_values() -> None:
    r = parse_request("f", "hc1", ["a", pd.Series([1, 2], name="b")], None)
    assert r.vcov == "HC1" and r.clusters == ("a", "b") and list(r.supplied) == ["b"]
    assert parse_request("f", "cluster", "a", None).vcov == "CR1"
    assert parse_request("f", None, np.array([1, 2, 3]), None).clusters == ("cluster",)
    with pytest.raises(didx.InvalidOptionError, match="'vcov' parameter of f must be a string"):
        parse_request("f", 3, None, None)
    with pytest.raises(didx.InvalidOptionError, match=r"'ssc' parameter of f must be a didx\.SSC"):
        parse_request("f", None, None, "bogus")
    with pytest.raises(didx.InvalidOptionError, match="'cluster' parameter of f must be a column name"):
        parse_request("f", None, 3.5, None)
    with pytest.raises(didx.InvalidOptionError, match="more than once"):
        parse_request("f", None, ["a", "a"], None)


def test_capabilities_describe_what_is_supported() -> None:
    caps = Capabilities(vcov=("analytic",), max_clusters=1, new_clusters=False, default="by unit")
    text = caps.describe()
    assert "'analytic'" in text and "up to 1 column (the columns captured at fit time)" in text
    assert "ssc= not applicable" in text and "default: by unit" in text


def test_leverage_kinds_are_not_declared_with_two_absorbed_factors(mpdta: pd.DataFrame) -> None:
    res = didx.twfe(mpdta, **TWFE)
    assert res.capabilities is not None and "HC2" not in res.capabilities.vcov
    with pytest.raises(didx.InvalidOptionError, match=r"does not support vcov='HC2'.*It supports:"):
        res.with_vcov("HC2")
    one_fe = didx.ols(mpdta, y="lemp", x="treat", fe="year")
    assert one_fe.capabilities is not None and "HC2" in one_fe.capabilities.vcov
    assert np.isfinite(one_fe.with_vcov("HC2").std_error)


def test_results_keep_codes_not_the_frame(mpdta: pd.DataFrame) -> None:
    res = didx.event_study(mpdta, **TWFE)
    clusters = res._source.clusters  # type: ignore[union-attr]
    assert isinstance(clusters, ClusterCodes)
    assert set(clusters.stored) == {"countyreal", "year"}
    blob = pickle.dumps(res)
    assert b"pandas" not in blob  # no frame, series or index inside
    # what it stores is the regression's inference state (demeaned regressors and residuals, codes): O(n k) for k
    # regressors, independent of how many columns the data has
    wide = mpdta.assign(**{f"extra{i}": np.arange(len(mpdta), dtype=float) for i in range(10)})
    assert len(pickle.dumps(didx.event_study(wide, **TWFE))) == pytest.approx(len(blob), rel=0.01)


def test_a_pickled_result_recomputes_the_same_covariance(mpdta: pd.DataFrame) -> None:
    # the two-factor solver of the fixed effects is not pickled but rebuilt: CR3 after a round trip is the same
    res = didx.twfe(mpdta, **TWFE)
    back = pickle.loads(pickle.dumps(res))
    for kw in ({"vcov": "CR3"}, {"cluster": "year"}, {"cluster": "state", "data": mpdta}):
        np.testing.assert_allclose(back.with_vcov(**kw).vcov_matrix, res.with_vcov(**kw).vcov_matrix, rtol=1e-13)


def test_new_cluster_values_say_where_they_came_from(mpdta: pd.DataFrame) -> None:
    res = didx.twfe(mpdta, **TWFE)
    by_values = res.with_vcov(cluster=mpdta["state"])
    by_frame = res.with_vcov(cluster="state", data=mpdta)
    assert by_values.std_error == pytest.approx(by_frame.std_error, rel=1e-15)
    assert any("values passed to with_vcov" in d for d in by_values.inference.details)
    assert any("read from the data passed to with_vcov" in d and "fingerprint" in d
               for d in by_frame.inference.details)
    assert "fingerprint" in str(by_frame.summary())


def test_a_reordered_frame_is_refused_with_string_units_and_a_binary_outcome(mpdta: pd.DataFrame) -> None:
    # the fingerprint covers the (string) unit column too: rows swapped between equal outcomes are not the fitted frame
    df = mpdta.assign(yb=(mpdta["lemp"] > mpdta["lemp"].median()).astype(float), u=mpdta["countyreal"].astype(str))
    res = didx.twfe(df, y="yb", unit="u", time="year", cohort="first.treat")
    assert res._source.clusters.fingerprint.columns == ("yb", "u")  # type: ignore[union-attr]
    i = int(np.flatnonzero(df["yb"] == 1)[0])
    j = int(np.flatnonzero((df["yb"] == 1) & (df["state"] != df["state"].iloc[i]))[0])
    order = np.arange(len(df))
    order[[i, j]] = order[[j, i]]
    swapped = df.iloc[order].reset_index(drop=True)
    with pytest.raises(didx.DataError, match="not the frame that was fitted"):
        res.with_vcov(cluster="state", data=swapped)
    assert np.isfinite(res.with_vcov(cluster="state", data=df).std_error)


def test_data_without_the_fitted_columns_is_refused_naming_data(mpdta: pd.DataFrame) -> None:
    res = didx.twfe(mpdta, **TWFE)
    with pytest.raises(didx.DataError, match=r"lacks the column\(s\) \['lemp', 'countyreal'\].*cluster=df\['state'\]"):
        res.with_vcov(cluster="state", data=mpdta[["state"]])


def test_a_string_array_is_cluster_values_not_names(mpdta: pd.DataFrame) -> None:
    # an array is always the cluster values (names come as a str or a list of str): a numpy array of strings was
    # read as a list of column names before
    res = didx.twfe(mpdta, **TWFE)
    as_str = res.with_vcov(cluster=mpdta["state"].astype(str).to_numpy(dtype=str))
    assert as_str.std_error == pytest.approx(res.with_vcov(cluster=mpdta["state"]).std_error, rel=1e-15)
