"""Progress bars (didx._progress): shown only when interactive, silenced by progress=False, never changing a
number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import didx
from didx import _progress
from didx.inference.multiplier import multiplier_draws


@pytest.fixture
def show_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars on although standard error is captured (not a terminal), and at once (no delay)."""
    monkeypatch.setenv("DIDX_PROGRESS", "1")
    monkeypatch.setattr(_progress, "DELAY", 0.0)


def test_interactive_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIDX_PROGRESS", raising=False)
    assert not _progress.interactive(True)  # pytest captures stderr: not a terminal

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert _progress.interactive(True) and not _progress.interactive(False)
    monkeypatch.setenv("DIDX_PROGRESS", "0")
    assert not _progress.interactive(True)


def test_track_and_bar(show_bars: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert list(_progress.track(range(5), "counting")) == [0, 1, 2, 3, 4]
    assert "counting" in capsys.readouterr().err
    assert list(_progress.track(range(5), "quiet", progress=False)) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""
    with _progress.bar(3, "off", progress=False) as pb:
        assert pb.disable
        pb.update(3)


def test_bad_progress_value() -> None:
    with pytest.raises(didx.InvalidOptionError, match="progress must be True"):
        _progress.check_progress("wild_bootstrap", "yes")


def test_wild_bootstrap_bar(show_bars: None, capsys: pytest.CaptureFixture[str], mpdta: pd.DataFrame) -> None:
    res = didx.twfe(mpdta, y="lemp", unit="countyreal", time="year", treat="treat_post", cluster="countyreal")
    shown = res.wild_bootstrap("treat_post", n_bootstrap=999, seed=1)
    err = capsys.readouterr().err
    assert "wild_bootstrap" in err and "999" in err
    quiet = res.wild_bootstrap("treat_post", n_bootstrap=999, seed=1, progress=False)
    assert capsys.readouterr().err == ""
    assert shown.p_value == quiet.p_value and shown.conf_int == quiet.conf_int
    np.testing.assert_array_equal(shown.bootstrap_statistics, quiet.bootstrap_statistics)
    with pytest.raises(didx.InvalidOptionError, match="progress"):
        res.wild_bootstrap("treat_post", n_bootstrap=99, progress=None)  # type: ignore[arg-type]


def test_multiplier_bootstrap_bar(show_bars: None, capsys: pytest.CaptureFixture[str]) -> None:
    psi = np.random.default_rng(0).standard_normal((400, 3))
    for cluster in (None, np.repeat(np.arange(40), 10)):
        shown = multiplier_draws(psi, 200, seed=3, cluster=cluster)
        assert "multiplier bootstrap" in capsys.readouterr().err
        quiet = multiplier_draws(psi, 200, seed=3, cluster=cluster, progress=False)
        assert capsys.readouterr().err == ""
        np.testing.assert_array_equal(shown, quiet)
