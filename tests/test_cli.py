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


def test_json_is_valid_with_a_missing_standard_error() -> None:
    import numpy as np

    from didx._sample import SampleReport
    from didx.cli import _render
    from didx.results.base import Inference, Result

    r = Result(estimator="e", terms=("a",), coef=np.array([1.0]), vcov_matrix=np.array([[-1.0]]), headline="a",
               inference=Inference("iid"), sample=SampleReport(1, 1))
    out = json.loads(_render(r, "json", 0.95))
    assert out["std_error"] is None and out["terms"][0]["std_error"] is None
