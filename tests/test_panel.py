"""The panel layer: one test per input error (message names the column/value and the fix), drop counting,
never-treated codings and dataframe backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from didx._panel import build_panel


@pytest.fixture
def small() -> pd.DataFrame:
    return didx.datasets.simulate_staggered(20, 5, [3, 4], seed=0)


def _twfe(df: pd.DataFrame, **kw: object) -> didx.Result:
    args: dict = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort"}
    args.update(kw)
    return didx.twfe(df, **args)


def test_missing_column_did_you_mean(small: pd.DataFrame) -> None:
    with pytest.raises(didx.ColumnNotFoundError) as e:
        _twfe(small, y="yy")
    msg = str(e.value)
    assert "'yy'" in msg and "Did you mean 'y'" in msg and "Fix:" in msg and "y=" in msg
    assert isinstance(e.value, didx.DidxError) and isinstance(e.value, ValueError)


def test_non_numeric_outcome(small: pd.DataFrame) -> None:
    small["y"] = small["y"].map(lambda v: f"{v:.2f}")
    with pytest.raises(didx.DataError, match=r"outcome \(y\) column 'y' must be numeric.*Fix"):
        _twfe(small)


def test_duplicate_unit_time(small: pd.DataFrame) -> None:
    dup = pd.concat([small, small.iloc[[7]]], ignore_index=True)
    with pytest.raises(didx.DataError, match=r"1 duplicate \(unit, time\) rows, e\.g\. unit=1 at time=3.*Fix"):
        _twfe(dup)


def test_treatment_not_binary(small: pd.DataFrame) -> None:
    small["d"] = small["d"] * 0.5
    with pytest.raises(didx.DataError, match=r"treatment column 'd' must be 0/1.*0\.5.*Fix"):
        didx.twfe(small, y="y", unit="unit", time="time", treat="d")


def test_cohort_varies_within_unit(small: pd.DataFrame) -> None:
    small.loc[(small.unit == 3) & (small.time == 2), "cohort"] = 4
    small.loc[(small.unit == 3) & (small.time != 2), "cohort"] = 3
    with pytest.raises(didx.DataError, match=r"cohort column 'cohort' varies within unit 3.*Fix"):
        _twfe(small)


def test_time_not_numeric_or_date(small: pd.DataFrame) -> None:
    small["time"] = "t" + small["time"].astype(str)
    with pytest.raises(didx.DataError, match=r"time column 'time' must be numeric.*'t1'.*Fix"):
        _twfe(small)


def test_no_treated_units(small: pd.DataFrame) -> None:
    small["cohort"] = 0
    with pytest.raises(didx.DesignError, match=r"no treated units.*'cohort'.*Fix"):
        _twfe(small)


def test_no_treated_observations_with_treat(small: pd.DataFrame) -> None:
    with pytest.raises(didx.DesignError, match=r"no treated observations: 'd' is never 1.*Fix"):
        didx.twfe(small.assign(d=0), y="y", unit="unit", time="time", treat="d")


def test_no_control_units(small: pd.DataFrame) -> None:
    small = small[small.cohort > 0]
    with pytest.raises(didx.DesignError, match=r"no control units.*'cohort'.*Fix"):
        build_panel(small, func="att_gt", y="y", unit="unit", time="time", cohort="cohort",
                    require_control="never")
    small2 = small.assign(d=1)
    with pytest.raises(didx.DesignError, match=r"no control observations.*'d'.*Fix"):
        didx.twfe(small2, y="y", unit="unit", time="time", treat="d")


def test_fewer_than_two_periods(small: pd.DataFrame) -> None:
    one = small[small.time == 3]
    with pytest.raises(didx.DesignError, match=r"time column 'time' has 1 distinct period.*at least two.*Fix"):
        _twfe(one)


def test_post_not_binary(card_krueger: pd.DataFrame) -> None:
    df = card_krueger.assign(d=card_krueger["d"] + 1)
    with pytest.raises(didx.DataError, match=r"post column 'd' must be a 0/1.*Fix"):
        didx.did2x2(df, y="fte", treat="nj", post="d")


def test_bad_option_message(card_krueger: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"'vcov' parameter of did2x2 must be one of .*Got 'HC9'"):
        didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov="HC9")
    with pytest.raises(didx.InvalidOptionError, match=r"needs a cluster variable.*Fix"):
        didx.did2x2(card_krueger, y="fte", treat="nj", post="d", vcov="CR1")


def test_zero_cohort_ambiguous_when_zero_is_a_period() -> None:
    df = didx.datasets.simulate_staggered(20, 5, [3], seed=1)
    df["time"] -= 1  # periods 0..4, so cohort 0 would be ambiguous
    df["cohort"] = np.where(df["cohort"] > 0, df["cohort"] - 1, 0)
    with pytest.raises(didx.DataError, match=r"0 is also a period.*NaN or inf"):
        _twfe(df)


def test_missing_rows_dropped_and_counted(small: pd.DataFrame) -> None:
    small.loc[[0, 5, 6], "y"] = np.nan
    small.loc[[10], "x2"] = np.nan
    res = _twfe(small, covariates="x2")
    reasons = {d.reason: d for d in res.sample.dropped}
    assert reasons["missing outcome (y)"].n_rows == 3
    assert reasons["missing covariate (x2)"].n_rows == 1
    assert res.sample.n_obs == len(small) - 4
    text = str(res.summary())
    assert "3 rows (0 units removed entirely): missing outcome (y)" in text
    assert "1 rows (0 units removed entirely): missing covariate (x2)" in text


def test_never_treated_codings_normalised(small: pd.DataFrame) -> None:
    cohorts = []
    for code in (0, np.nan, np.inf, 99):
        df = small.assign(cohort=small["cohort"].astype(float).where(small["cohort"] > 0, code))
        p = build_panel(df, func="t", y="y", unit="unit", time="time", cohort="cohort")
        assert p.cohort is not None
        cohorts.append(p.unit_cohort())
    for c in cohorts[1:]:
        np.testing.assert_array_equal(c, cohorts[0])
    assert np.isinf(cohorts[0]).sum() == (small.groupby("unit")["cohort"].first() == 0).sum()


def test_date_time_column() -> None:
    df = didx.datasets.simulate_staggered(30, 6, [3, 5], seed=2)
    dates = pd.to_datetime("2020-01-01") + pd.to_timedelta((df["time"] - 1) * 31, unit="D")
    gdates = pd.to_datetime("2020-01-01") + pd.to_timedelta((df["cohort"] - 1) * 31, unit="D")
    df2 = df.assign(time=dates, cohort=gdates.where(df["cohort"] > 0, pd.NaT))
    a = _twfe(df)
    b = _twfe(df2)
    assert b.estimate == pytest.approx(a.estimate, rel=1e-12)


def test_balance_and_gap_report(small: pd.DataFrame) -> None:
    holed = small.drop(index=small.index[(small.unit == 2) & (small.time == 3)])
    p = build_panel(holed, func="t", y="y", unit="unit", time="time", cohort="cohort")
    assert p.report.balanced is False and p.report.n_units_with_gaps == 1
    assert "1 units have gaps" in "\n".join(p.report.lines())


@pytest.mark.parametrize("backend", ["polars", "pyarrow", "duckdb"])
def test_dataframe_backends(mpdta: pd.DataFrame, backend: str) -> None:
    base = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    if backend == "polars":
        import polars as pl

        data = pl.from_pandas(mpdta)
    elif backend == "pyarrow":
        import pyarrow as pa

        data = pa.Table.from_pandas(mpdta)
    else:
        import duckdb

        con = duckdb.connect()
        con.register("m", mpdta)
        data = con.sql("select * from m")
    res = didx.twfe(data, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    assert res.estimate == pytest.approx(base.estimate, rel=1e-12)
    assert res.std_error == pytest.approx(base.std_error, rel=1e-12)


def test_not_a_dataframe() -> None:
    with pytest.raises(didx.InvalidOptionError, match="must be a dataframe"):
        didx.twfe([1, 2, 3], y="y", unit="u", time="t", treat="d")


def test_negative_weights(small: pd.DataFrame) -> None:
    small["w"] = 1.0
    small.loc[4, "w"] = -2.0
    with pytest.raises(didx.DataError, match=r"weights column 'w' has 1 negative values \(e\.g\. -2\).*Fix"):
        _twfe(small, weights="w")


def test_missing_cluster_dropped_and_counted(small: pd.DataFrame) -> None:
    small["state"] = (small["unit"] // 4).astype(float)
    small.loc[small["unit"] == 5, "state"] = np.nan
    res = _twfe(small, cluster="state")
    reasons = {d.reason: d for d in res.sample.dropped}
    assert reasons["missing cluster (state)"].n_rows == 5 and reasons["missing cluster (state)"].n_units == 1
    assert res.sample.n_units == 19


def test_duplicate_column_names_are_an_error(small: pd.DataFrame) -> None:
    doubled = pd.concat([small, small[["y"]] + 5.0], axis=1)
    with pytest.raises(didx.DataError, match=r"several columns named 'y'.*Fix"):
        _twfe(doubled)
    other = pd.concat([small, small[["x1"]]], axis=1)  # a duplicate that is not used is harmless
    assert _twfe(other).estimate == pytest.approx(_twfe(small).estimate, rel=1e-12)


def test_units_lost_to_several_reasons_counted_once(small: pd.DataFrame) -> None:
    rows = small.index[small["unit"] == 4]
    small.loc[rows[:2], "y"] = np.nan
    small.loc[rows[2:], "x2"] = np.nan
    p = build_panel(small, func="t", y="y", unit="unit", time="time", cohort="cohort", covariates="x2")
    by = {d.reason: d for d in p.report.dropped}
    assert by["missing outcome (y)"].n_rows == 2 and by["missing covariate (x2)"].n_rows == 3
    assert sum(d.n_units or 0 for d in p.report.dropped) == 1 == 20 - p.n_units
    assert by["missing covariate (x2)"].n_units == 1


def test_cohort_and_treat_both_given(small: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"not both: got cohort='cohort' and treat='d'.*Fix"):
        didx.twfe(small, y="y", unit="unit", time="time", cohort="cohort", treat="d")
    with pytest.raises(didx.InvalidOptionError, match=r"first_difference=True needs unit=.*Fix"):
        didx.did2x2(small[small["time"] <= 2].assign(p=lambda d: d["time"] - 1, g=lambda d: (d["cohort"] > 0) * 1),
                    y="y", treat="g", post="p", first_difference=True)


def test_duplicate_hidden_by_equal_counts() -> None:
    """A unit with one period twice and another missing has the right row count: still a duplicate."""
    df = didx.datasets.simulate_staggered(10, 4, [3], seed=3)
    df.loc[(df.unit == 4) & (df.time == 2), "time"] = 3
    with pytest.raises(didx.DataError, match=r"duplicate \(unit, time\) rows, e\.g\. unit=4 at time=3"):
        didx.twfe(df, y="y", unit="unit", time="time", cohort="cohort")


def test_dense_integer_units_equal_hashed_units() -> None:
    """Units already coded 0..N-1 are used as codes; any other labels are hashed: same results."""
    df = didx.datasets.simulate_staggered(200, 6, [3, 5], seed=8)
    a = didx.twfe(df, y="y", unit="unit", time="time", cohort="cohort")
    b = didx.twfe(df.assign(unit=df["unit"] * 7 + 1000), y="y", unit="unit", time="time", cohort="cohort")
    assert a.estimate == pytest.approx(b.estimate, rel=1e-12)
    assert a.std_error == pytest.approx(b.std_error, rel=1e-12)
    p = build_panel(df, func="t", y="y", unit="unit", time="time", cohort="cohort")
    assert p.unit_labels is not None and list(p.unit_labels[:3]) == [0, 1, 2]


# ---------------------------------------------------------------- issue 10: every bad input a clear error
@pytest.mark.parametrize(("value", "pattern"), [
    (["y"], r"The 'y' parameter of twfe must be a column name \(a string\)\. Got \['y'\] \(a list\).*Fix: pass y='y'"),
    (5, r"The 'y' parameter of twfe must be a column name.*Got 5 \(an int\).*no column labelled 5.*Fix"),
    (None, r"The 'y' parameter of twfe must be a column name \(the outcome\)\. Got None.*Fix"),
    (2.5, r"The 'y' parameter of twfe must be a column name.*Got 2\.5 \(a float\).*Fix"),
    (True, r"The 'y' parameter of twfe must be a column name.*Got True \(a bool\).*Fix"),
])
def test_column_argument_that_is_not_a_name(small: pd.DataFrame, value: object, pattern: str) -> None:
    with pytest.raises(didx.InvalidOptionError, match=pattern):
        _twfe(small, y=value)


def test_list_role_with_a_bad_element(small: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"'covariates' parameter of twfe.*Got 5 \(an int\)"):
        _twfe(small, covariates=5)
    with pytest.raises(didx.InvalidOptionError, match=r"'time' parameter of twfe.*Got None"):
        didx.twfe(small, y="y", unit="unit", time=None, cohort="cohort")  # type: ignore[arg-type]


def test_column_listed_twice(small: pd.DataFrame) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"covariates= names the column 'x2' more than once.*Fix"):
        _twfe(small, covariates=["x2", "x2"])


def test_integer_column_labels_read_with_the_real_label(small: pd.DataFrame) -> None:
    base = _twfe(small, covariates="x2")
    renamed = small.rename(columns={"y": 0, "x2": 7})
    for y, cov in ((0, 7), ("0", "7"), (np.int64(0), [7])):
        res = _twfe(renamed, y=y, covariates=cov)
        assert res.estimate == base.estimate and res.std_error == base.std_error
    with pytest.raises(didx.ColumnNotFoundError, match=r"column '3' given as y= is not in the data"):
        _twfe(renamed, y=3)


def test_empty_frame(small: pd.DataFrame) -> None:
    with pytest.raises(didx.DataError, match=r"twfe: the data has no rows.*Fix"):
        _twfe(small.iloc[:0])


@pytest.mark.parametrize("role", ["unit", "time", "cohort"])
def test_outcome_is_a_role_column(small: pd.DataFrame, role: str) -> None:
    with pytest.raises(didx.InvalidOptionError, match=rf"outcome y='{role}' is also given as {role}=.*Fix"):
        _twfe(small, y=role)


def test_constant_outcome(small: pd.DataFrame) -> None:
    with pytest.raises(didx.DataError, match=r"outcome y='y' is constant \(every value is 2\).*fixest.*Fix"):
        _twfe(small.assign(y=2.0))
    # constant only on the rows left after dropping missing covariates: the same error, on the estimation sample
    varied = small.assign(y=2.0, x2=small["x2"].where(small["time"] > 1))
    varied.loc[varied["time"] == 1, "y"] = 5.0
    with pytest.raises(didx.DataError, match=r"constant \(every value in the estimation sample is 2\)"):
        _twfe(varied, covariates="x2")


@pytest.mark.parametrize("column", ["y", "time", "x2", "w"])
def test_infinite_values_dropped_and_counted(small: pd.DataFrame, column: str) -> None:
    small["w"] = 1.0 + small["unit"] % 2
    small["time"] = small["time"].astype(float)
    clean = _twfe(small.drop(index=[3, 8]), covariates="x2", weights="w")
    small.loc[3, column] = np.inf
    small.loc[8, column] = -np.inf
    res = _twfe(small, covariates="x2", weights="w")
    what = {"y": "outcome (y)", "time": "time (time)", "x2": "covariate (x2)", "w": "weight (w)"}[column]
    reasons = {d.reason: d.n_rows for d in res.sample.dropped}
    assert reasons == {f"infinite {what}": 2}
    assert res.sample.n_obs + res.sample.n_dropped_rows == res.sample.n_input_rows == len(small)
    assert res.sample.n_periods == 5
    assert res.estimate == pytest.approx(clean.estimate, rel=1e-12)
    assert f"2 rows (0 units removed entirely): infinite {what}" in str(res.summary())


def test_missing_and_infinite_time_counted_apart(small: pd.DataFrame) -> None:
    small["time"] = small["time"].astype(float)
    small.loc[[1, 2], "time"] = [np.nan, np.inf]
    p = build_panel(small, func="t", y="y", unit="unit", time="time", cohort="cohort")
    assert {d.reason: d.n_rows for d in p.report.dropped} == {"missing time (time)": 1, "infinite time (time)": 1}
    assert p.n_periods == 5 and np.all(np.isfinite(p.periods))


def test_cohort_that_is_not_a_period(small: pd.DataFrame) -> None:
    small["cohort"] = small["cohort"].astype(float).replace(4.0, 3.5)
    with pytest.raises(didx.DataError, match=r"cohort column 'cohort' has the value 3\.5, which is not one of the "
                                             r"periods of 'time'.*Fix"):
        _twfe(small)
    with pytest.raises(didx.DataError, match=r"3\.5.*not one of the periods"):
        build_panel(small, func="t", y="y", unit="unit", time="time", cohort="cohort")
    small["cohort"] = small["cohort"].replace(3.0, 2.5)
    with pytest.raises(didx.DataError, match=r"has the values 2\.5, 3\.5, which are not periods of 'time'"):
        build_panel(small, func="t", y="y", unit="unit", time="time", cohort="cohort")


def test_cohort_before_the_first_period_is_kept(small: pd.DataFrame) -> None:
    """Treated before the data start (always treated) is a cohort, not an error, and not never-treated."""
    small["cohort"] = small["cohort"].replace(4, -3)
    p = build_panel(small, func="t", y="y", unit="unit", time="time", cohort="cohort")
    assert p.cohort is not None and (p.cohort == -3).sum() == (small["cohort"] == -3).sum()


def test_date_cohort_that_is_not_a_period() -> None:
    df = didx.datasets.simulate_staggered(30, 6, [3, 5], seed=2)
    start = pd.Timestamp("2020-01-01")
    dates = start + pd.to_timedelta((df["time"] - 1) * 31, unit="D")
    gdates = start + pd.to_timedelta((df["cohort"] - 1) * 31 + (df["cohort"] == 5) * 3, unit="D")
    df2 = df.assign(time=dates, cohort=gdates.where(df["cohort"] > 0, pd.NaT))
    with pytest.raises(didx.DataError, match=r"cohort column 'cohort' has the value 2020-05-0.*not one of the periods"):
        _twfe(df2)


def test_all_zero_weights(small: pd.DataFrame) -> None:
    with pytest.raises(didx.DataError, match=r"weights column 'w' is zero or missing in every row.*Fix"):
        _twfe(small.assign(w=0.0), weights="w")
    # non-zero weights only on rows dropped for a missing outcome
    w = small.assign(w=np.where(small["time"] == 1, 1.0, 0.0), y=small["y"].where(small["time"] > 1))
    with pytest.raises(didx.DataError, match=r"weights column 'w' is 0 in every row with a value.*Fix"):
        _twfe(w, weights="w")
    with pytest.raises(didx.DataError, match=r"weights column 'w' is zero or missing in every row"):
        didx.did2x2(small[small.time <= 2].assign(w=0.0, p=lambda d: d.time - 1, g=lambda d: (d.cohort > 0) * 1),
                    y="y", treat="g", post="p", weights="w")


def test_every_row_dropped(small: pd.DataFrame) -> None:
    with pytest.raises(didx.DataError, match=r"no row is left after dropping.*100 rows: missing outcome \(y\).*Fix"):
        _twfe(small.assign(y=np.nan))


@pytest.mark.parametrize(("column", "role"), [("y", "y"), ("x2", "covariates"), ("w", "weights")])
def test_values_whose_squares_overflow(small: pd.DataFrame, column: str, role: str) -> None:
    small["w"] = 1.0
    small[column] = small[column] * 1e300
    with pytest.raises(didx.DataError, match=rf"the {role}= column '{column}' has values up to .*e\+300.*rescale"):
        _twfe(small, covariates="x2", weights="w")


def test_infinite_unit_or_cluster_label_dropped_and_counted(small: pd.DataFrame) -> None:
    """+-inf is no unit or cluster label: those rows are dropped and counted (a unit 'inf' was kept)."""
    small["unit"] = small["unit"].astype(float)
    small["state"] = (small["unit"] % 4).astype(float)
    small.loc[[0, 1], "unit"] = np.inf
    small.loc[[7], "state"] = -np.inf
    p = build_panel(small, func="t", y="y", unit="unit", time="time", cohort="cohort", cluster="state")
    assert {d.reason: d.n_rows for d in p.report.dropped} == {"infinite unit (unit)": 2,
                                                              "infinite cluster (state)": 1}
    assert p.unit_labels is not None and np.all(np.isfinite(p.unit_labels)) and p.n_obs == len(small) - 3
