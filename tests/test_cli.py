"""The command line front end."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
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
    df["part"] = (df["countyreal"] // 2) % 2  # a partition for the triple difference (FIPS codes are mostly odd)
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


# ---------------------------------------------------------------- every estimator x every output format
MPDTA = ["y=lemp", "unit=countyreal", "time=year", "cohort=first.treat"]
CLI_CASES: dict[str, list[str]] = {
    "did2x2": ["dataset:card_krueger", "y=fte", "treat=nj", "post=d"],
    "twfe": ["dataset:mpdta", *MPDTA],
    "ols": ["{mpdta}", "y=lemp", "x=treat_post", "fe=countyreal,year"],
    "event_study": ["dataset:mpdta", *MPDTA, "estimator=all", "window=-1,1"],
    "drdid": ["dataset:sim_rc", "y=y", "treat=d", "time=post", "covariates=x1,x2", "panel=false"],
    "bacon": ["dataset:castle", "y=l_homicide", "unit=sid", "time=year", "treat=post"],
    "sun_abraham": ["dataset:mpdta", *MPDTA],
    "att_gt": ["dataset:mpdta", *MPDTA],
    "imputation": ["dataset:mpdta", *MPDTA, "horizons=true"],
    "did2s": ["dataset:mpdta", *MPDTA, "second_stage=event_study"],
    "dcdh": ["{mpdta}", "y=lemp", "unit=countyreal", "time=year", "treat=treat_post"],
    "twfe_weights": ["{mpdta}", "y=lemp", "unit=countyreal", "time=year", "treat=treat_post"],
    "stacked": ["dataset:mpdta", *MPDTA, "window=-1,1"],
    "ddd": ["{mpdta}", *MPDTA, "partition=part"],
    "etwfe": ["dataset:mpdta", *MPDTA],
    "lpdid": ["dataset:mpdta", *MPDTA, "pre_window=2", "post_window=2"],
    "synthdid": ["dataset:california_prop99", "y=PacksPerCapita", "unit=State", "time=Year", "treat=treated"],
}
FORMATS = ("summary", "tidy", "csv", "markdown", "latex", "json")


@pytest.fixture(scope="module")
def mpdta_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    import didx

    df = didx.datasets.load("mpdta")
    df["treat_post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df["part"] = (df["countyreal"] // 2) % 2  # a partition for the triple difference (FIPS codes are mostly odd)
    path = tmp_path_factory.mktemp("cli") / "mpdta.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_every_estimator_has_a_cli_case() -> None:
    from didx.registry import REGISTRY

    assert set(CLI_CASES) == set(REGISTRY)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(CLI_CASES))
def test_every_estimator_in_every_format(name: str, fmt: str, mpdta_csv: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # found: bacon failed in every format, event_study estimator=all in markdown/latex/json ended in a traceback
    args = [a.replace("{mpdta}", mpdta_csv) for a in CLI_CASES[name]]
    code = main(["--output", fmt, name, *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    if fmt == "json":
        parsed = json.loads(out)
        assert parsed["terms"] and "estimator" in parsed
    elif fmt == "markdown":
        assert out.lstrip().startswith("|") and "| ---" in out
    elif fmt == "latex":
        assert r"\begin{tabular}" in out and r"\end{table}" in out
    elif fmt == "csv":
        assert len(pd.read_csv(io.StringIO(out))) >= 1
    elif fmt == "tidy":
        assert len(out.splitlines()) >= 2 and "Traceback" not in out  # a header and rows
    else:
        assert len(out.splitlines()) > 3


def test_json_terms_at_full_precision(capsys: pytest.CaptureFixture[str]) -> None:
    # found: the headline came at full precision but the terms rounded to 10 decimals; event_time printed as -4.0
    import didx

    assert main(["sun_abraham", "dataset:mpdta", *MPDTA, "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    direct = didx.sun_abraham(didx.datasets.load("mpdta"), y="lemp", unit="countyreal", time="year",
                              cohort="first.treat").tidy()
    assert [t["estimate"] for t in out["terms"]] == list(direct["estimate"])  # exact, not rounded
    assert [t["std_error"] for t in out["terms"]] == list(direct["std_error"])
    assert out["terms"][0]["event_time"] == -4 and isinstance(out["terms"][0]["event_time"], int)


# ---------------------------------------------------------------- help, version, suggestions
def test_estimator_help_lists_its_arguments_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    # found: `didx twfe --help` printed only the general help
    assert main(["twfe", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: didx twfe")
    assert "y= (required)" in out and "drop_singletons= (default false)" in out and "cluster= (default none)" in out
    assert main(["att_gt", "-h"]) == 0
    out = capsys.readouterr().out
    assert "control_group= (default never)" in out and "n_bootstrap= (default 0)" in out
    assert "multiplier-bootstrap draws" in out  # the docstring's description
    assert main(["stacked", "--help"]) == 0
    assert "window= (required)" in capsys.readouterr().out


def test_every_estimator_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    import inspect

    from didx.cli import _function

    for name in CLI_CASES:
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        params = [p for p in inspect.signature(_function(name)).parameters if p != "data"]
        assert all(f"  {p}= (" in out for p in params), name


def test_general_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    # found: `didx --version` failed
    import didx

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"didx {didx.__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "att_gt" in out and "Callaway-Sant'Anna" in out and "didx ESTIMATOR --help" in out
    # event_study (the comparison entry) was listed as plain "TWFE"
    assert "event_study   TWFE event study (estimator=NAME or all" in out
    assert main([]) == 2


def test_misspelled_argument_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    # found: `vcovv=iid` gave "twfe() got an unexpected keyword argument 'vcovv'" and no suggestion
    assert main(["twfe", "dataset:mpdta", *MPDTA, "vcovv=iid"]) == 2
    err = capsys.readouterr().err
    assert "unknown argument 'vcovv'" in err and "Did you mean 'vcov'?" in err and "didx twfe --help" in err
    assert main(["att_gt", "dataset:mpdta", *MPDTA, "control=not_yet"]) == 2
    assert "Did you mean 'control_group'?" in capsys.readouterr().err
    assert main(["twfe", "dataset:mpdta", "y=lemp"]) == 2
    assert "missing required argument(s) unit, time" in capsys.readouterr().err
    assert main(["twfe", "dataset:mpdta", "lemp"]) == 2
    assert "must be key=value" in capsys.readouterr().err
    assert main(["twfe", "dataset:mpdta", *MPDTA, "--output", "html"]) == 2
    assert "invalid choice: 'html'" in capsys.readouterr().err


def test_options_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twfe", "--output", "json", "dataset:mpdta", "y=lemp", "--conf-level", "0.9", *MPDTA[1:]]) == 0
    import didx

    out = json.loads(capsys.readouterr().out)
    direct = didx.twfe(didx.datasets.load("mpdta"), y="lemp", unit="countyreal", time="year",
                       cohort="first.treat").tidy(0.9)
    assert out["terms"][0]["conf_high"] == direct["conf_high"].iloc[0]


# ---------------------------------------------------------------- aggregate, plot, report
def test_aggregate(capsys: pytest.CaptureFixture[str]) -> None:
    # found: no way to aggregate att_gt from the command line
    import didx

    direct = didx.att_gt(didx.datasets.load("mpdta"), y="lemp", unit="countyreal", time="year",
                         cohort="first.treat")
    for kind in ("simple", "group", "dynamic", "calendar"):
        assert main(["att_gt", "dataset:mpdta", *MPDTA, "--aggregate", kind, "--output", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["estimate"] == pytest.approx(direct.aggregate(kind).estimate, rel=1e-12)
    assert main(["att_gt", "dataset:mpdta", *MPDTA, "--aggregate", "dinamic"]) == 2
    assert "Did you mean 'dynamic'?" in capsys.readouterr().err  # a suggestion, not only the list of kinds
    assert main(["twfe", "dataset:mpdta", *MPDTA, "--aggregate", "group"]) == 2
    assert "has no aggregations" in capsys.readouterr().err
    assert main(["event_study", "dataset:mpdta", *MPDTA, "--aggregate", "post"]) == 0
    assert "average post-period effect" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_to_file(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # found: no plot from the command line
    path = tmp_path / f"es{suffix}"
    assert main(["att_gt", "dataset:mpdta", *MPDTA, "--aggregate", "dynamic", "--plot", str(path)]) == 0
    head = path.read_bytes()[:8]
    assert {".png": head.startswith(b"\x89PNG"), ".svg": b"<?xml" in head or b"<svg" in head,
            ".pdf": head.startswith(b"%PDF")}[suffix]


def test_plot_every_kind_of_result(tmp_path: Path, mpdta_csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("att_gt", "twfe", "did2x2", "bacon", "event_study"):
        args = [a.replace("{mpdta}", mpdta_csv) for a in CLI_CASES[name]]
        path = tmp_path / f"{name}.png"
        assert main([name, *args, "--plot", str(path)]) == 0, capsys.readouterr().err
        assert path.stat().st_size > 1000
    assert main(["twfe", "dataset:mpdta", *MPDTA, "--plot", str(tmp_path / "x.jpg")]) == 2
    assert "unknown format '.jpg'" in capsys.readouterr().err


def test_report_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import didx

    assert main(["twfe", "dataset:mpdta", *MPDTA, "--report", str(tmp_path / "r.txt")]) == 2
    assert "end the name in .html" in capsys.readouterr().err
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(didx, "report", lambda results, **kw: calls.append((results, kw)), raising=False)
    assert main(["twfe", "dataset:mpdta", *MPDTA, "--report", str(tmp_path / "r.html")]) == 0
    (results, kw), = calls
    assert isinstance(results[0], didx.TWFEResult) and kw["path"] == str(tmp_path / "r.html")
    assert "Two-way fixed effects" in kw["title"]


def test_report_flag_without_report(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    import didx

    if "report" in vars(didx):  # didx.report is a lazy name (didx.__getattr__), not an attribute
        monkeypatch.delattr(didx, "report")
    monkeypatch.setattr(didx, "__getattr__", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    assert main(["twfe", "dataset:mpdta", *MPDTA, "--report", str(tmp_path / "r.html")]) == 2
    assert "--report: not available" in capsys.readouterr().err


def test_datasets_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    # found: `didx datasets` listed bare names
    import didx

    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(didx.datasets.available())
    by_name = {ln.split()[0]: ln for ln in lines}
    assert "minimum-wage" in by_name["mpdta"] and "castle-doctrine" in by_name["castle"]
    assert all(len(ln.split(None, 1)) == 2 for ln in lines)  # every dataset has a description
    assert all(len(ln) <= 130 for ln in lines) and "``" not in "".join(lines)


def test_dataset_to_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import didx

    path = tmp_path / "m.csv"
    assert main(["datasets", "mpdta", "--to", str(path)]) == 0
    assert len(pd.read_csv(path)) == len(didx.datasets.load("mpdta"))
    assert main(["datasets", "mpdtaa"]) == 2
    assert "Did you mean 'mpdta'?" in capsys.readouterr().err


def test_att_gt_summary_says_how_r_differs(capsys: pytest.CaptureFixture[str]) -> None:
    # found: att_gt's analytic pointwise default vs R did's bootstrap uniform band was easy to miss
    assert main(["att_gt", "dataset:mpdta", *MPDTA]) == 0
    out = capsys.readouterr().out
    assert ("Intervals: pointwise analytic (R did's default: multiplier bootstrap with a uniform band — use "
            "n_bootstrap=1000") in out
    assert main(["att_gt", "dataset:mpdta", *MPDTA, "--aggregate", "dynamic"]) == 0
    assert "R did's default" in capsys.readouterr().out
    assert main(["att_gt", "dataset:mpdta", *MPDTA, "n_bootstrap=100", "seed=1"]) == 0
    out = capsys.readouterr().out
    assert "R did's default" not in out and "Intervals: uniform (sup-t)" in out


def test_output_closed_early_loses_no_file(tmp_path: Path) -> None:
    """`didx ... --plot es.png | head` ended in a BrokenPipeError traceback, and the plot and report (written after
    the printing) were never saved. Now the files are written first and a closed pipe ends quietly."""
    import os
    import subprocess
    import sys

    plot, report = tmp_path / "es.png", tmp_path / "r.html"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "MPLBACKEND": "Agg"}
    with (tmp_path / "err.txt").open("w") as stderr, subprocess.Popen(
            [sys.executable, "-m", "didx.cli", "att_gt", "dataset:mpdta", *MPDTA, "--output", "csv", "--plot",
             str(plot), "--report", str(report)], stdout=subprocess.PIPE, stderr=stderr, env=env) as proc:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader leaves before anything is printed
        assert proc.wait(timeout=300) == 1
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert plot.stat().st_size > 1000 and report.read_text().startswith("<!DOCTYPE html>")


def test_tables_print_years_as_years_and_latex_uses_booktabs(capsys: pytest.CaptureFixture[str]) -> None:
    """Bacon's markdown printed its cohorts as 2005.0000; LaTeX used \\hline where didx.compare uses booktabs."""
    bacon = ["bacon", "dataset:castle", "y=l_homicide", "unit=sid", "time=year", "treat=post"]
    assert main([*bacon, "--output", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| 2005 vs 2006 | 2005 | 2006 |" in out and "2005.0000" not in out and "| inf |" in out
    assert main(["twfe", "dataset:mpdta", *MPDTA, "--output", "latex"]) == 0
    tex = capsys.readouterr().out
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\hline" not in tex
