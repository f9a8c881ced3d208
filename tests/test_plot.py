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
