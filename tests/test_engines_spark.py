"""The Spark engine: the cases of tests/test_engines.py through Spark SQL in local mode (the session-wide
``spark`` fixture of conftest.py).

Skipped when pyspark or Java is missing. Kept small (the whole module runs in well under two minutes): a Spark
query has a fixed cost of a few hundred milliseconds, so each dataset is fitted once or twice.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

import didx

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - Java 17 is on the project's machines
    pytest.skip("Spark needs Java", allow_module_level=True)

from test_engines import CASES, CLUSTER, DATA, ROLES, assert_same_fit, assert_same_result, case_id  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                                        "ignore::FutureWarning", "ignore::UserWarning")]

SPARK_CASES = [CASES[2], CASES[3], CASES[8]]  # mpdta clustered, base_stagg not-yet, unbalanced clustered


@pytest.mark.parametrize("case", SPARK_CASES, ids=case_id)
def test_att_gt_spark_equals_in_memory(spark: Any, case: tuple[str, dict[str, Any]]) -> None:
    name, opts = case
    df = DATA[name]()
    mem = didx.att_gt(df, **ROLES[name], **opts)
    eng = didx.att_gt(spark.createDataFrame(df), **ROLES[name], **opts)
    assert_same_fit(mem, eng)
    assert dict(eng.design)["Engine"].startswith("Spark")


@pytest.mark.parametrize("name", ["castle"])
def test_twfe_spark_equals_in_memory(spark: Any, name: str) -> None:
    df = DATA[name]()
    mem = didx.twfe(df, **ROLES[name], cluster=CLUSTER[name])
    eng = didx.twfe(spark.createDataFrame(df), **ROLES[name], cluster=CLUSTER[name])
    assert_same_result(mem, eng)
    assert eng.sample.lines() == mem.sample.lines()


def test_event_study_spark_equals_in_memory(spark: Any) -> None:
    df = DATA["castle"]()
    mem = didx.event_study(df, **ROLES["castle"], cluster="region")
    eng = didx.event_study(spark.createDataFrame(df), **ROLES["castle"], cluster="region")
    assert_same_result(mem, eng)


def test_did2x2_spark_equals_in_memory(spark: Any) -> None:
    df = didx.datasets.load("card_krueger")
    kw = dict(y="fte", treat="nj", post="d", unit="store_id")
    mem = didx.did2x2(df, **kw)
    eng = didx.did2x2(spark.createDataFrame(df), **kw)
    assert_same_result(mem, eng)
    assert eng.sample.lines() == mem.sample.lines()


def test_spark_errors(spark: Any) -> None:
    df = DATA["mpdta"]()
    with pytest.raises(didx.ColumnNotFoundError, match=r"'lempp'"):
        didx.att_gt(spark.createDataFrame(df), **dict(ROLES["mpdta"], y="lempp"))
    dup = df.iloc[[0, *range(len(df))]]
    with pytest.raises(didx.DataError, match=r"duplicate"):
        didx.att_gt(spark.createDataFrame(dup), **ROLES["mpdta"])
    with pytest.raises(didx.InvalidOptionError, match=r"weights.*in-memory"):  # covariates run: test_engines_cscov
        didx.att_gt(spark.createDataFrame(df), **ROLES["mpdta"], weights="region")


def test_sun_abraham_spark_equals_in_memory(spark: Any) -> None:
    from test_engines_more import assert_same_sa

    df = DATA["unbalanced"]()
    mem = didx.sun_abraham(df, **ROLES["unbalanced"], cluster="cl", control_group="last_treated")
    eng = didx.sun_abraham(spark.createDataFrame(df), **ROLES["unbalanced"], cluster="cl",
                           control_group="last_treated")
    assert_same_sa(mem, eng)
    assert dict(eng.design)["Engine"].startswith("Spark")


def test_collapse_spark_equals_in_memory(spark: Any) -> None:
    from test_engines_more import _with_groups, assert_same_result

    df = _with_groups("castle")
    kw = dict(**ROLES["castle"], collapse="group_period_weighted", cluster="grp")
    mem = didx.twfe(df, **kw)
    eng = didx.twfe(spark.createDataFrame(df), **kw)
    assert_same_result(mem, eng)
    assert eng.sample.lines() == mem.sample.lines()


def test_bacon_spark_equals_in_memory(spark: Any) -> None:
    from test_engines_more import _bacon_kw, _with_treatment, assert_same_bacon

    df = _with_treatment("castle")
    mem = didx.bacon(df, **_bacon_kw("castle"))
    eng = didx.bacon(spark.createDataFrame(df), **_bacon_kw("castle"))
    assert_same_bacon(mem, eng)


@pytest.mark.parametrize("name", list(DATA))
def test_every_covered_estimator_on_every_dataset_through_spark(spark: Any, name: str) -> None:
    """One Spark frame per dataset; att_gt, twfe, the TWFE event study, sun_abraham, imputation, did2s, collapse=
    and (balanced panels) bacon equal the in-memory fits."""
    from test_engines_imputation import assert_same as assert_same_imputation
    from test_engines_more import _bacon_kw, _with_groups, assert_same_bacon, assert_same_sa
    from test_engines_more import assert_same_result as assert_same_cov

    df = _with_groups(name)
    if name != "unbalanced":
        df["D"] = ((df[ROLES[name]["cohort"]].astype(float) > 0)
                   & (df[ROLES[name]["time"]] >= df[ROLES[name]["cohort"]].astype(float))).astype(int)
    sdf = spark.createDataFrame(df)
    cl = CLUSTER[name]
    for fit in (didx.twfe, didx.event_study):
        assert_same_cov(fit(df, **ROLES[name], cluster=cl), fit(sdf, **ROLES[name], cluster=cl))
    assert_same_sa(didx.sun_abraham(df, **ROLES[name]), didx.sun_abraham(sdf, **ROLES[name]))
    opts = {"allow_unbalanced": True} if name == "unbalanced" else {}
    assert_same_fit(didx.att_gt(df, **ROLES[name], **opts), didx.att_gt(sdf, **ROLES[name], **opts))
    assert_same_imputation(didx.imputation(df, **ROLES[name], horizons=True),
                           didx.imputation(sdf, **ROLES[name], horizons=True))
    assert_same_imputation(didx.did2s(df, **ROLES[name], second_stage="event_study"),
                           didx.did2s(sdf, **ROLES[name], second_stage="event_study"))
    kw = dict(**ROLES[name], collapse="group_period_weighted", cluster="grp")
    assert_same_cov(didx.twfe(df, **kw), didx.twfe(sdf, **kw))
    if name != "unbalanced":
        assert_same_bacon(didx.bacon(df, **_bacon_kw(name)), didx.bacon(sdf, **_bacon_kw(name)))
