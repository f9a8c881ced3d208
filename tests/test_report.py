"""didx.report(): one self-contained HTML file, checked by parsing it (make check-report also opens it in headless
Chromium and screenshots it)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import didx
from didx.results.report import report_html, versions

KW: dict[str, Any] = {"y": "lemp", "unit": "countyreal", "time": "year"}


class Page(HTMLParser):
    """Every start tag with its attributes, the text of each tag, and the style sheets."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}
        self.stack: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.text.setdefault(self.stack[-1], []).append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


@pytest.fixture(scope="module")
def workflow(mpdta: pd.DataFrame) -> dict[str, Any]:
    sa = didx.sun_abraham(mpdta, **KW, cohort="first.treat")
    return {
        "TWFE": didx.twfe(mpdta, **KW, treat="treat_post"),
        "Callaway-Sant'Anna": didx.att_gt(mpdta, **KW, cohort="first.treat").aggregate("simple"),
        "Sun-Abraham": sa,
        "BJS": didx.imputation(mpdta, **KW, cohort="first.treat"),
        "Event studies": didx.event_study(mpdta, **KW, cohort="first.treat", estimator="all", window=(-1, 1)),
        "Bacon": didx.bacon(mpdta, **KW, treat="treat_post"),
        "HonestDiD": didx.honest_did(sa, M=[0.0, 0.02]),
    }


@pytest.fixture(scope="module")
def page(workflow: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Page, str]:
    path = tmp_path_factory.mktemp("report") / "mpdta.html"
    out = didx.report(workflow, path=path, title="mpdta <workflow>")
    assert out == path and path.exists()
    html = path.read_text(encoding="utf-8")
    p = Page()
    p.feed(html)
    return path, p, html


def test_self_contained(page: tuple[Path, Page, str]) -> None:
    _, p, html = page
    assert p.doctype.lower() == "doctype html"
    for bad in ("script", "link", "img", "iframe", "object", "embed"):
        assert p.count(bad) == 0, bad
    for tag, attrs in p.tags:
        for key in ("src", "href", "xlink:href", "action", "data"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith("#"), (tag, key, value)  # only links inside the page
    assert "<!DOCTYPE svg" not in html  # matplotlib's DOCTYPE names a remote DTD
    styles = "".join(p.text.get("style", []))
    assert "@import" not in styles and "url(" not in styles
    assert "http://" not in styles and "https://" not in styles


def test_structure(page: tuple[Path, Page, str], workflow: dict[str, Any]) -> None:
    _, p, html = page
    assert p.text["title"] == ["mpdta <workflow>"]  # escaped in the file, read back as text
    assert "mpdta &lt;workflow&gt;" in html
    h2 = p.text["h2"]
    assert h2[0] == "Comparison of estimates" and h2[-1] == "Versions"
    assert all(name in h2 for name in workflow)
    # one figure per result with a plot of more than one estimate: at least the event studies (Sun-Abraham, the
    # comparison), the Bacon decomposition and HonestDiD
    plottable = sum(callable(getattr(r, "plot", None)) and not (isinstance(r, didx.Result) and len(r.terms) == 1)
                    for r in workflow.values())  # a single estimate is not plotted
    assert plottable >= 4 and p.count("svg") == plottable and p.count("figure") == plottable
    tables = [a.get("class") for t, a in p.tags if t == "table"]
    assert tables.count("didx-compare") == 4  # the main table + comparison, Bacon and HonestDiD sections
    assert tables.count("didx-table") == 4  # the estimates of each estimator result
    # ids unique, every internal link resolves
    ids = [a["id"] for _, a in p.tags if a.get("id")]
    assert len(ids) == len(set(ids))
    targets = {a.get("href") or a.get("xlink:href") for _, a in p.tags} - {None}
    assert {t[1:] for t in targets if t} <= set(ids)


def test_content(page: tuple[Path, Page, str], workflow: dict[str, Any]) -> None:
    _, p, html = page
    for needle in ("Design choices", "Control group", "Observations: 2500 of 2500 input rows", "Dropped: nothing",
                   "Standard errors: CR1, clustered by countyreal", "Pre-trend test (joint Wald)",
                   "HonestDiD sensitivity analysis", "Full summary() text", "event_time = -4"):
        assert needle in html, needle
    v = versions()
    assert v["didx"] == didx.__version__ and "numpy" in v
    cells = p.text.get("td", [])
    assert f"{v['numpy']}" in cells and f"{v['matplotlib']}" in cells
    # the comparison table is didx.compare's
    main = didx.compare({k: r for k, r in workflow.items() if isinstance(r, didx.Result)}, format="html")
    assert str(main) in html


def test_a_plot_that_fails_is_reported(workflow: dict[str, Any]) -> None:
    class Broken:
        estimator = "broken"

        def summary(self) -> str:
            return "a summary"

        def plot(self, ax: Any = None) -> Any:
            raise ValueError("cannot draw this")

    html = report_html({"ok": workflow["Sun-Abraham"], "broken": Broken()})
    assert "No plot: ValueError: cannot draw this" in html and "a summary" in html


def test_a_plot_with_its_own_panels(workflow: dict[str, Any]) -> None:
    """A plot that draws its own figure of several panels (no ax=) is embedded, and its figure released."""
    import matplotlib.pyplot as plt

    class Panels:
        estimator = "panels"

        def summary(self) -> str:
            return "panels"

        def plot(self) -> Any:
            _, axes = plt.subplots(1, 2)
            axes[0].plot([0, 1], [0, 1])
            axes[1].set_title("second panel")
            return axes

    before = plt.get_fignums()
    html = report_html({"panels": Panels()})
    assert html.count("<svg") == 1 and "No plot" not in html
    assert plt.get_fignums() == before


def test_inputs(workflow: dict[str, Any], tmp_path: Path) -> None:
    one = didx.report(workflow["TWFE"], path=tmp_path / "one.html")
    assert "Two-way fixed effects" in one.read_text(encoding="utf-8")
    listed = report_html([workflow["Sun-Abraham"], workflow["Sun-Abraham"], workflow["Event studies"]])
    assert "Sun &amp; Abraham (2)" in listed and "Event-study comparison" in listed
    with pytest.raises(didx.InvalidOptionError, match=r"must end in \.html"):
        didx.report(workflow["TWFE"], path=tmp_path / "r.pdf")
    with pytest.raises(didx.InvalidOptionError, match="does not exist"):
        didx.report(workflow["TWFE"], path=tmp_path / "missing" / "r.html")
    with pytest.raises(didx.InvalidOptionError, match="not a didx result"):
        report_html([1.5])
    with pytest.raises(didx.InvalidOptionError, match="non-empty"):
        report_html([])


def test_command_line_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``didx ... --report FILE.html`` writes this report."""
    from didx.cli import main

    path = tmp_path / "cli.html"
    assert main(["sun_abraham", "dataset:mpdta", "y=lemp", "unit=countyreal", "time=year", "cohort=first.treat",
                 "--report", str(path)]) == 0
    capsys.readouterr()
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    assert p.count("svg") == 1 and "Comparison of estimates" in p.text["h2"]
