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


@pytest.mark.parametrize("cluster", [None, "state"])
def test_att_gt_bootstrap_bar(show_bars: None, capsys: pytest.CaptureFixture[str], mpdta: pd.DataFrame,
                              cluster: str | None) -> None:
    """att_gt's multiplier bootstrap had a bar that only DIDX_PROGRESS=0 could silence: now progress=False does,
    by unit and clustered, and the numbers do not change."""
    data = mpdta.assign(state=mpdta["countyreal"] % 40)
    kw = {"y": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat", "n_bootstrap": 199,
          "seed": 7, "cluster": cluster}
    shown = didx.att_gt(data, **kw)
    assert "multiplier bootstrap" in capsys.readouterr().err
    quiet = didx.att_gt(data, **kw, progress=False)
    assert capsys.readouterr().err == ""
    pd.testing.assert_frame_equal(shown.tidy(), quiet.tidy())
    pd.testing.assert_frame_equal(shown.aggregate("dynamic").tidy(), quiet.aggregate("dynamic").tidy())
    with pytest.raises(didx.InvalidOptionError, match="progress must be True"):
        didx.att_gt(data, **kw, progress="no")  # type: ignore[arg-type]


def test_honest_did_grid_bar(show_bars: None, capsys: pytest.CaptureFixture[str]) -> None:
    beta, sigma = np.array([0.01, -0.02, 0.3, 0.4]), np.diag([0.01, 0.01, 0.02, 0.02])
    raw = {"beta": beta, "sigma": sigma, "event_time": [-3, -2, 0, 1], "reference": -1, "M": [0.0, 0.1]}
    shown = didx.honest_did(**raw)
    assert "honest_did: M grid" in capsys.readouterr().err
    quiet = didx.honest_did(**raw, progress=False)
    assert capsys.readouterr().err == ""
    assert shown.conf_low == quiet.conf_low and shown.conf_high == quiet.conf_high
    with pytest.raises(didx.DidxError, match="progress must be True"):
        didx.honest_did(**raw, progress="yes")  # type: ignore[arg-type]
