"""Event-study plots: structure of the drawn figure (points, intervals, reference, lines, labels)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import didx
from didx.estimators.regression.event_study import EventStudyRegressionResult
from didx.results.plot import plot_event_study

EVENT_TIMES = [-4, -3, -2, 0, 1, 2, 3]


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def es(mpdta: pd.DataFrame) -> EventStudyRegressionResult:
    return didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")


def _by_gid(ax: Any, gid: str) -> list[Any]:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _segments(coll: Any) -> np.ndarray:
    return np.array(coll.get_segments())  # (n, 2, 2): [[x, low], [x, high]]


def test_single_plot_structure(es: EventStudyRegressionResult) -> None:
    ax = es.plot()
    (points,) = _by_gid(ax, "estimates")
    np.testing.assert_array_equal(points.get_xdata(), EVENT_TIMES)
    np.testing.assert_allclose(points.get_ydata(), es.coef)
    (ci,) = _by_gid(ax, "ci_pointwise")
    seg = _segments(ci)
    tidy = es.tidy()
    assert seg.shape == (7, 2, 2)
    np.testing.assert_array_equal(seg[:, 0, 0], EVENT_TIMES)
    np.testing.assert_allclose(seg[:, 0, 1], tidy["conf_low"])
    np.testing.assert_allclose(seg[:, 1, 1], tidy["conf_high"])
    assert _by_gid(ax, "ci_uniform") == []
    (ref,) = _by_gid(ax, "reference")
    np.testing.assert_array_equal(ref.get_xdata(), [-1.0])
    np.testing.assert_array_equal(ref.get_ydata(), [0.0])
    (zero,) = _by_gid(ax, "zero_line")
    np.testing.assert_array_equal(zero.get_ydata(), [0.0, 0.0])
    (onset,) = _by_gid(ax, "onset_line")
    np.testing.assert_array_equal(onset.get_xdata(), [-0.5, -0.5])
    assert "Event time" in ax.get_xlabel()
    assert ax.get_ylabel() == "Effect on lemp"
    np.testing.assert_array_equal(ax.get_xticks(), [-4, -3, -2, -1, 0, 1, 2, 3])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-4", "-3", "-2", "-1", "0", "1", "2", "3"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "95% pointwise CI" in legend and "Reference period (normalised to 0)" in legend


def test_uniform_band_drawn_and_wider(es: EventStudyRegressionResult) -> None:
    ax = es.plot(uniform=True, conf_level=0.9, n_draws=20_000, seed=4)
    (uni,) = _by_gid(ax, "ci_uniform")
    (pw,) = _by_gid(ax, "ci_pointwise")
    u, p = _segments(uni), _segments(pw)
    band = didx.uniform_bands(es, conf_level=0.9, n_draws=20_000, seed=4)
    np.testing.assert_allclose(u[:, 0, 1], band.conf_low)
    np.testing.assert_allclose(u[:, 1, 1], band.conf_high)
    assert ((u[:, 1, 1] - u[:, 0, 1]) > (p[:, 1, 1] - p[:, 0, 1])).all()
    assert "90% uniform (sup-t) band" in [t.get_text() for t in ax.get_legend().get_texts()]
    # a result carrying uniform bands draws them without asking, and its pointwise bars stay pointwise
    ax2 = es.with_uniform_bands(n_draws=20_000, seed=4).plot(conf_level=0.9, n_draws=20_000, seed=4)
    np.testing.assert_allclose(_segments(_by_gid(ax2, "ci_pointwise")[0]), p)
    assert len(_by_gid(ax2, "ci_uniform")) == 1


def test_draws_on_given_axes(es: EventStudyRegressionResult) -> None:
    _, ax = plt.subplots()
    out = plot_event_study(es, ax=ax, title="mine", color="red")
    assert out is ax
    assert ax.get_title() == "mine"
    assert matplotlib.colors.same_color(_by_gid(ax, "estimates")[0].get_color(), "red")


def test_overlay_dodges_and_labels(es: EventStudyRegressionResult, mpdta: pd.DataFrame) -> None:
    es2 = didx.event_study(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat", ref=-2)
    ax = didx.plot_event_studies([es, es2], labels=["ref -1", "ref -2"], dodge=0.2)
    pts = _by_gid(ax, "estimates")
    assert len(pts) == 2
    np.testing.assert_allclose(pts[0].get_xdata(), np.array(EVENT_TIMES) - 0.1)
    np.testing.assert_allclose(pts[1].get_xdata(), np.array([-4, -3, -1, 0, 1, 2, 3]) + 0.1)
    refs = _by_gid(ax, "reference")
    np.testing.assert_allclose([r.get_xdata()[0] for r in refs], [-1.1, -1.9])
    assert len(_by_gid(ax, "ci_pointwise")) == 2
    assert len(_by_gid(ax, "onset_line")) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ref -1", "ref -2"]
    assert pts[0].get_color() != pts[1].get_color()


def test_errors(es: EventStudyRegressionResult, mpdta: pd.DataFrame) -> None:
    tw = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(didx.InvalidOptionError, match=r"expected an event-study result.*TWFEResult"):
        didx.plot_event_studies([tw])
    with pytest.raises(didx.InvalidOptionError, match="got 1 labels for 2 results"):
        didx.plot_event_studies([es, es], labels=["a"])
    with pytest.raises(didx.InvalidOptionError, match="non-empty list"):
        didx.plot_event_studies([])
    with pytest.raises(didx.InvalidOptionError, match="conf_level"):
        es.plot(conf_level=1.5)


def test_plot_uses_the_band_stored_by_with_uniform_bands(es: EventStudyRegressionResult) -> None:
    """The band drawn is the one tidy() reports (same draws and seed), not a fresh one with the plot defaults."""
    banded = es.with_uniform_bands(n_draws=500, seed=7)
    ax = banded.plot()
    (band,) = _by_gid(ax, "ci_uniform")
    seg = _segments(band)
    tidy = banded.tidy()
    rows = tidy["event_time"].notna().to_numpy()
    np.testing.assert_array_equal(seg[:, 0, 1], tidy.loc[rows, "conf_low"].to_numpy())
    np.testing.assert_array_equal(seg[:, 1, 1], tidy.loc[rows, "conf_high"].to_numpy())


def test_ax_must_be_an_axes(es: EventStudyRegressionResult) -> None:
    with pytest.raises(didx.InvalidOptionError, match=r"The 'ax' parameter of plot must be a matplotlib Axes or None\. "
                                                      r"Got 'x' instead\..*Fix"):
        es.plot(ax="x")
    with pytest.raises(didx.InvalidOptionError, match=r"'ax' parameter of plot_event_studies .*Got 3 instead"):
        didx.plot_event_studies([es], ax=3)


def test_plot_of_a_result_without_standard_errors(es: EventStudyRegressionResult) -> None:
    """A returned result whose covariance is not finite still plots (points, no intervals)."""
    import dataclasses

    broken = dataclasses.replace(es, vcov_matrix=np.full(es.vcov_matrix.shape, np.nan))
    ax = broken.plot()
    assert len(_by_gid(ax, "estimates")) == 1


# ---------------------------------------------------------------- ATT(g,t), aggregations, TWFE, overlays
KW = {"y": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}


@pytest.fixture(scope="module")
def cs(mpdta: pd.DataFrame) -> Any:
    return didx.att_gt(mpdta, **KW)


@pytest.fixture(scope="module")
def cs_boot(mpdta: pd.DataFrame) -> Any:
    return didx.att_gt(mpdta, **KW, n_bootstrap=199, seed=3)


def test_att_gt_one_panel_per_cohort(cs: Any) -> None:
    # found: no plot for ATTgtResult (R's ggdid)
    axes = cs.plot()
    assert len(axes) == 3
    cells = cs.cells()
    for g, ax in zip((2004, 2006, 2007), axes, strict=True):
        assert ax.get_title(loc="left") == f"Cohort {g}"
        assert ax.get_ylabel() == "Effect on lemp"
        rows = cells[cells["group"] == g]
        pre, post = rows[rows["time"] < g], rows[rows["time"] >= g]
        (p,) = _by_gid(ax, "post")
        np.testing.assert_array_equal(p.get_xdata(), post["time"])
        np.testing.assert_allclose(p.get_ydata(), post["estimate"])
        if len(pre):
            (q,) = _by_gid(ax, "pre")
            np.testing.assert_allclose(q.get_ydata(), pre["estimate"])
            assert q.get_color() != p.get_color()
        else:
            assert _by_gid(ax, "pre") == []
        segs = np.concatenate([_segments(c) for c in _by_gid(ax, "ci_pointwise")])
        lows = np.sort(segs[:, 0, 1])
        np.testing.assert_allclose(lows, np.sort(rows["conf_low"]))
        assert _by_gid(ax, "ci_uniform") == []  # analytic fit: pointwise only
        (onset,) = _by_gid(ax, "onset_line")
        assert onset.get_xdata()[0] == g - 0.5
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "Pre-treatment" in legend and "Post-treatment" in legend  # cohort 2004 has no pre cell


def test_att_gt_uniform_band_from_the_bootstrap(cs_boot: Any) -> None:
    axes = cs_boot.plot()
    cells = cs_boot.cells()  # tidy() of a bootstrap fit: the uniform band
    band = np.concatenate([_segments(c) for a in axes for c in _by_gid(a, "ci_uniform")])
    np.testing.assert_allclose(np.sort(band[:, 0, 1]), np.sort(cells["conf_low"]))
    pw = np.concatenate([_segments(c) for a in axes for c in _by_gid(a, "ci_pointwise")])
    z = 1.959963984540054
    np.testing.assert_allclose(np.sort(pw[:, 1, 1]), np.sort(cells["estimate"] + z * cells["std_error"]))
    assert (np.sort(band[:, 1, 1] - band[:, 0, 1]) > np.sort(pw[:, 1, 1] - pw[:, 0, 1]) - 1e-12).all()
    assert "uniform band" in axes[0].figure.get_suptitle()
    assert _by_gid(cs_boot.plot(uniform=False)[0], "ci_uniform") == []


def test_att_gt_simulated_band_reference_cells_and_axes(mpdta: pd.DataFrame, cs: Any) -> None:
    axes = cs.plot(uniform=True, n_draws=5000, seed=1)
    band = didx.uniform_bands(cs, terms=list(cs.cells()["term"]), n_draws=5000, seed=1)
    got = np.concatenate([_segments(c) for a in axes for c in _by_gid(a, "ci_uniform")])
    np.testing.assert_allclose(np.sort(got[:, 0, 1]), np.sort(band.conf_low))
    uni = didx.att_gt(mpdta, **KW, base_period="universal")
    axes = uni.plot()
    refs = [r.get_xdata()[0] for a in axes for r in _by_gid(a, "reference")]
    assert refs == [2003, 2005, 2006]  # g - 1, normalised to 0
    _, given = plt.subplots(1, 2)
    out = uni.plot(ax=given, cohorts=[2006, 2007])
    assert list(out) == list(given) and given[1].get_title(loc="left") == "Cohort 2007"
    _, one = plt.subplots()
    assert uni.plot(ax=one, cohorts=[2004])[0] is one
    with pytest.raises(didx.InvalidOptionError, match="got 1 Axes for 3 cohorts"):
        uni.plot(ax=one)
    with pytest.raises(didx.InvalidOptionError, match="not among the cohorts 2004, 2006, 2007"):
        uni.plot(cohorts=[2005])


@pytest.mark.parametrize("kind", ["simple", "group", "calendar"])
def test_aggregations_plot(cs: Any, cs_boot: Any, kind: str) -> None:
    agg = cs.aggregate(kind)
    ax = agg.plot()
    (head,) = _by_gid(ax, "headline")
    np.testing.assert_allclose(head.get_ydata(), [agg.estimate])
    t = agg.tidy()
    seg = _segments(_by_gid(ax, "ci_pointwise")[0])
    np.testing.assert_allclose(seg[:, 0, 1], t["conf_low"])
    assert [x.get_text() for x in ax.get_xticklabels()] == list(agg.terms)
    assert ax.get_ylabel() == "Effect on lemp"
    if kind != "simple":
        (pts,) = _by_gid(ax, "estimates")
        np.testing.assert_allclose(pts.get_ydata(), agg.coef[:-1])
        boot = cs_boot.aggregate(kind)
        bx = boot.plot()
        band = _segments(_by_gid(bx, "ci_uniform")[0])
        np.testing.assert_allclose(band[:, 0, 1], boot.tidy()["conf_low"].iloc[:-1])  # headline pointwise


def test_dynamic_aggregation_is_an_event_study_plot(cs: Any) -> None:
    ax = cs.aggregate("dynamic").plot()
    assert ax.get_ylabel() == "Effect on lemp"  # found: event-study y-axes said "Estimate"
    np.testing.assert_array_equal(_by_gid(ax, "estimates")[0].get_xdata(), [-3, -2, -1, 0, 1, 2, 3])


def test_twfe_and_2x2_plots(mpdta: pd.DataFrame) -> None:
    tw = didx.twfe(mpdta, **KW)
    ax = tw.plot()
    (head,) = _by_gid(ax, "headline")
    np.testing.assert_allclose(head.get_ydata(), [tw.estimate])
    seg = _segments(_by_gid(ax, "ci_pointwise")[0])
    np.testing.assert_allclose(seg[0, :, 1], tw.conf_int().to_numpy()[0])
    assert ax.get_ylabel() == "Effect on lemp" and ax.get_title() == tw.estimator
    _, mine = plt.subplots()
    assert tw.plot(ax=mine, title="t", conf_level=0.9) is mine and mine.get_title() == "t"
    with pytest.raises(didx.InvalidOptionError, match="not terms of"):
        tw.plot(terms=["nope"])
    ck = didx.datasets.load("card_krueger")
    r2 = didx.did2x2(ck, y="fte", treat="nj", post="d")
    assert r2.plot().get_ylabel() == "Mean of fte"


def test_plot_event_studies_takes_a_dict(es: EventStudyRegressionResult, mpdta: pd.DataFrame, cs: Any) -> None:
    # found: plot_event_studies({"TWFE": es, ...}) failed with "...got str"
    sa = didx.sun_abraham(mpdta, **KW)
    ax = didx.plot_event_studies({"TWFE": es, "Sun-Abraham": sa, "CS": cs.aggregate("dynamic")})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["TWFE", "Sun-Abraham", "CS"]
    assert ax.get_ylabel() == "Effect on lemp"
    ax2 = didx.plot_event_studies([es, cs])  # an ATT(g,t) result: its dynamic aggregation
    np.testing.assert_allclose(_by_gid(ax2, "estimates")[1].get_ydata(), cs.aggregate("dynamic").coef[:-1])
    comp = didx.event_study(mpdta, **KW, estimator=["twfe", "sun_abraham"])
    ax3 = didx.plot_event_studies(comp)
    assert len(_by_gid(ax3, "estimates")) == 2
    with pytest.raises(didx.InvalidOptionError, match="got 1 labels for 2 results"):
        didx.plot_event_studies({"a": es, "b": sa}, labels=["x"])


def test_bootstrap_event_study_draws_its_own_band(cs_boot: Any) -> None:
    """A bootstrap CS event study draws did's bootstrap band (the one tidy() reports), as ggdid does."""
    dyn = cs_boot.aggregate("dynamic")
    ax = dyn.plot()
    (band,) = _by_gid(ax, "ci_uniform")
    t = dyn.tidy()
    rows = t["event_time"].notna().to_numpy()
    np.testing.assert_array_equal(_segments(band)[:, 0, 1], t.loc[rows, "conf_low"].to_numpy())
    pw = _segments(_by_gid(ax, "ci_pointwise")[0])
    np.testing.assert_allclose(pw[:, 1, 1], (t["estimate"] + 1.959963984540054 * t["std_error"])[rows])


def test_overlay_title_names_a_stored_band(es: EventStudyRegressionResult, cs_boot: Any) -> None:
    """Overlaying a bootstrap CS event study draws its uniform band (shaded) although uniform=False; the title
    said "95% pointwise intervals" only. It now names the shaded bands, and says nothing of them when none is."""
    ax = didx.plot_event_studies({"TWFE": es, "CS (bootstrap)": cs_boot.aggregate("dynamic")})
    assert len(_by_gid(ax, "ci_uniform")) == 1
    assert ax.get_title() == "Event studies (95% pointwise intervals; shaded: uniform bands; hollow: reference)"
    assert "uniform" not in didx.plot_event_studies([es]).get_title()
