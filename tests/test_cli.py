"""The command line front end."""

from __future__ import annotations

import json

import pytest

from didx.cli import main


def test_twfe_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["twfe", "dataset:mpdta", "y=lemp", "unit=countyreal", "time=year", "cohort=first.treat",
                 "--output", "json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["estimate"] == pytest.approx(-0.036548936674067, rel=1e-10)
    assert out["std_error"] == pytest.approx(0.0132651554293389, rel=1e-10)


def test_did2x2_summary_and_lists(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code = main(["did2x2", "dataset:card_krueger", "y=fte", "group=nj", "post=d", "covariates=bk,kfc",
                 "vcov=HC1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2x2 DiD" in out and "Covariates: bk, kfc" in out


def test_errors_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twfee", "dataset:mpdta"]) == 2
    assert "Did you mean 'twfe'" in capsys.readouterr().err
    assert main(["twfe", "dataset:mpdta", "y=lemp", "unit=countyreal", "time=yr", "cohort=first.treat"]) == 2
    assert "Did you mean 'year'" in capsys.readouterr().err


def test_datasets_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    assert "mpdta" in capsys.readouterr().out
