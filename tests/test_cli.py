"""The command line front end."""

from __future__ import annotations

import json
from pathlib import Path

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
    code = main(["did2x2", "dataset:card_krueger", "y=fte", "treat=nj", "post=d", "covariates=bk,kfc",
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


def test_commands_are_the_registry() -> None:
    from didx.cli import ESTIMATORS
    from didx.registry import REGISTRY

    assert tuple(REGISTRY) == ESTIMATORS


def test_bacon_renders_without_standard_errors(capsys: pytest.CaptureFixture[str]) -> None:
    # a decomposition has no conf_level: it used to fail with "summary() got an unexpected keyword argument"
    import didx

    args = ["bacon", "dataset:castle", "y=l_homicide", "unit=state", "time=year", "treat=post"]
    direct = didx.bacon(didx.datasets.load("castle"), y="l_homicide", unit="state", time="year", treat="post")
    assert main(args) == 0
    assert "Goodman-Bacon decomposition" in capsys.readouterr().out
    assert main([*args, "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["estimate"] == pytest.approx(direct.twfe, rel=1e-12)
    assert [t["weight"] for t in out["terms"]] == pytest.approx(list(direct.weight), abs=1e-10)  # JSON: 10 decimals
    assert main([*args, "--output", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("| term | treated | control |")


def test_common_vocabulary_reaches_every_estimator(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # every estimator takes the common names (dcdh and twfe_weights call the unit unit=): passed on as given
    import didx

    df = didx.datasets.load("mpdta")
    df["treat_post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    path = tmp_path / "mpdta.csv"
    df.to_csv(path, index=False)
    args = [str(path), "y=lemp", "unit=countyreal", "time=year", "treat=treat_post", "--output", "json"]
    assert main(["twfe_weights", *args]) == 0
    out = json.loads(capsys.readouterr().out)
    direct = didx.twfe_weights(df, y="lemp", time="year", treat="treat_post", unit="countyreal")
    assert [t["weight"] for t in out["terms"]] == pytest.approx(list(direct.weights["weight"]), abs=1e-10)
    assert main(["dcdh", *args]) == 0
    est = json.loads(capsys.readouterr().out)["estimate"]
    dc = didx.dcdh(df, y="lemp", time="year", treat="treat_post", unit="countyreal")
    assert est == pytest.approx(dc.estimate, rel=1e-12)


def test_event_study_comparison_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["event_study", "dataset:mpdta", "y=lemp", "unit=countyreal", "time=year", "cohort=first.treat",
            "estimator=twfe,sun_abraham", "window=-2,2"]
    assert main([*args, "--output", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("estimator,term,event_time") and "sun_abraham" in out
    assert main(args) == 0
    assert "Event-study comparison: 2 estimators" in capsys.readouterr().out
