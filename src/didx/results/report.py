"""A shareable report: one self-contained HTML file with everything needed to read and reproduce the estimates.

``didx.report(results, path="report.html", title=...)`` writes the comparison table (:func:`didx.compare`), then for
every result its design choices, sample report (every dropped row and unit), estimates and inference (its
``summary()``), and its plot where it has one (event studies, comparisons, Bacon decompositions, HonestDiD
sensitivity), and the versions of didx and of the libraries used. Figures are inline SVG drawn by matplotlib and
styles are inline: the file fetches nothing, so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import io
import platform
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from didx._errors import InvalidOptionError
from didx._validate import check_conf_level
from didx.results.base import Result
from didx.results.compare import compare, short_estimator
from didx.results.comparison import EventStudyComparison
from didx.results.render import html_sections

#: libraries whose versions the report lists (those installed)
LIBRARIES: tuple[str, ...] = ("numpy", "scipy", "pandas", "narwhals", "matplotlib", "tqdm", "polars", "pyarrow",
                              "duckdb")

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2125;
  max-width:1100px;margin:0 auto;padding:1.5rem 2rem 3rem;line-height:1.45;background:#fff}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.3rem;border-bottom:2px solid #e3e6ea;padding-bottom:.25rem;
  margin-top:2.2rem}h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
.meta{color:#5c6670;font-size:.9rem}nav ol{columns:2;font-size:.95rem}
table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.18rem .7rem;text-align:right;white-space:nowrap}th[scope=row]{text-align:left;font-weight:normal}
thead th{border-bottom:1.5px solid #333;text-align:center}tbody{border-top:1px solid #bbb}
table.didx-compare tbody:last-of-type{border-bottom:1.5px solid #333}
tfoot td{text-align:left;white-space:normal;color:#5c6670;font-size:.82rem}
table.kv th{text-align:left;color:#5c6670;font-weight:normal;vertical-align:top}
table.kv td{text-align:left;white-space:normal}
pre{background:#f6f8fa;border:1px solid #e3e6ea;border-radius:4px;padding:.7rem;overflow-x:auto;font-size:.8rem}
figure{margin:.8rem 0}figure svg{max-width:100%;height:auto}figcaption{color:#5c6670;font-size:.85rem}
.note{color:#8a4b08;background:#fff7e6;border-left:3px solid #f0a030;padding:.3rem .6rem;font-size:.88rem}
.scroll{overflow-x:auto}details summary{cursor:pointer;color:#2457a6;margin:.8rem 0 .4rem}
ul.lines{list-style:none;padding-left:.2rem;margin:.3rem 0;font-size:.9rem}ul.lines li{margin:.1rem 0}
"""


def report(results: Any, path: str | Path = "report.html", title: str | None = None, *, conf_level: float = 0.95,
           stars: bool = False, below: str | None = "se", digits: int = 4) -> Path:
    """Write one self-contained HTML report of ``results`` to ``path`` and return the path.

    Parameters
    ----------
    results : a result, a list of results or a dict ``{name: result}``: estimator results, event-study
        comparisons (``event_study(estimator="all")``), HonestDiD results, Bacon decompositions.
    path : the HTML file to write (its folder must exist).
    title : the report's title (default "didx report").
    conf_level, stars, below, digits : passed to :func:`didx.compare` for the comparison table, and
        ``conf_level`` to each ``summary()``.
    """
    out = Path(path)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InvalidOptionError(f"report(): path must end in .html; got {str(path)!r}. Fix: e.g. "
                                 f"path='report.html'.")
    if not out.parent.exists():
        raise InvalidOptionError(f"report(): the folder {str(out.parent)!r} does not exist. Fix: create it first "
                                 f"or choose another path.")
    html = report_html(results, title=title, conf_level=conf_level, stars=stars, below=below, digits=digits)
    out.write_text(html, encoding="utf-8")
    return out


def report_html(results: Any, title: str | None = None, *, conf_level: float = 0.95, stars: bool = False,
                below: str | None = "se", digits: int = 4) -> str:
    """The HTML text that :func:`report` writes."""
    conf_level = check_conf_level(conf_level)
    items = _named(results)
    title = title or "didx report"
    toc: list[tuple[str, str]] = []
    body: list[str] = []

    options: dict[str, Any] = {"stars": stars, "below": below, "conf_level": conf_level, "digits": digits}
    # one table of the estimator results; an event-study comparison (several estimators already side by side) gets
    # its own table in its section, and sensitivity analyses and decompositions show their numbers in theirs
    table_items = {n: r for n, r in items if isinstance(r, Result)}
    if table_items:
        toc.append(("comparison", "Comparison of estimates"))
        body.append('<section id="comparison"><h2>Comparison of estimates</h2>'
                    f'<div class="scroll">{compare(table_items, **options, format="html")}</div></section>')
    for i, (name, obj) in enumerate(items):
        anchor = f"result-{i + 1}"
        toc.append((anchor, name))
        body.append(_section(anchor, name, obj, conf_level, f"fig{i + 1}-", options))
    anchor = "versions"
    toc.append((anchor, "Versions"))
    body.append(f'<section id="{anchor}"><h2>Versions</h2>{_kv(versions())}</section>')

    import didx

    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t in toc)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<header><h1>{escape(title)}</h1><p class=\"meta\">Generated by didx {escape(didx.__version__)} on "
        f"{now}. Self-contained: figures are inline SVG, nothing is fetched.</p></header>",
        f"<nav><ol>{nav}</ol></nav>", *body, "</body>", "</html>", "",
    ])


def versions() -> dict[str, str]:
    """didx, Python, the platform and the installed libraries of :data:`LIBRARIES` with their versions."""
    from importlib import metadata

    import didx

    out = {"didx": didx.__version__, "Python": platform.python_version(), "Platform": platform.platform()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


# ---- pieces --------------------------------------------------------------------------------------------------

def _named(results: Any) -> list[tuple[str, Any]]:
    if isinstance(results, Mapping):
        pairs = [(str(k), v) for k, v in results.items()]
    else:
        seq = list(results) if isinstance(results, Sequence) and not isinstance(results, str) else [results]
        pairs = []
        seen: dict[str, int] = {}
        for r in seq:
            base = short_estimator(str(getattr(r, "estimator", "") or type(r).__name__))
            if isinstance(r, EventStudyComparison):
                base = "Event-study comparison"
            elif not isinstance(r, Result) and hasattr(r, "restriction"):
                base = f"HonestDiD ({r.restriction.replace('_', ' ')})"
            seen[base] = seen.get(base, 0) + 1
            pairs.append((base if seen[base] == 1 else f"{base} ({seen[base]})", r))
    if not pairs:
        raise InvalidOptionError("report() takes a result, a non-empty list of results or a dict {name: result}.")
    for name, obj in pairs:
        if not (_comparable(obj) or hasattr(obj, "summary")):
            raise InvalidOptionError(f"report(): {name!r} is a {type(obj).__name__}, not a didx result.")
    return pairs


def _comparable(obj: Any) -> bool:
    return (isinstance(obj, Result | EventStudyComparison)
            or all(hasattr(obj, a) for a in ("M", "conf_low", "conf_high", "original", "restriction"))
            or (hasattr(obj, "by_type") and hasattr(obj, "twfe")))


def _section(anchor: str, name: str, obj: Any, conf_level: float, prefix: str, table: dict[str, Any]) -> str:
    parts = [f'<section id="{anchor}"><h2>{escape(name)}</h2>']
    estimator = getattr(obj, "estimator", None)
    if isinstance(estimator, str) and estimator != name:
        parts.append(f'<p class="meta">{escape(estimator)}</p>')
    design = getattr(obj, "design", None)
    if design:
        parts.append("<h3>Design choices</h3>" + _kv(dict(design)))
    sample = getattr(obj, "sample", None)
    if sample is not None and hasattr(sample, "lines"):
        parts.append("<h3>Sample</h3>" + _lines(sample.lines()))
    if isinstance(obj, Result):
        parts.append("<h3>Inference</h3>" + _lines(obj.inference.lines()))
        header, rows = obj._table_rows(conf_level)
        parts.append("<h3>Estimates</h3>" + '<div class="scroll">' + html_sections(header, [rows]) + "</div>")
        tests = [*obj._summary_extra(), *obj.notes, *obj._health_notes()]
        if tests:
            parts.append("<h3>Tests and notes</h3>" + _lines(tests))
    elif _comparable(obj):  # a comparison, a sensitivity analysis, a decomposition: its numbers as compare() shows
        parts.append("<h3>Estimates</h3>" + '<div class="scroll">' + str(compare({name: obj}, **table, format="html"))
                     + "</div>")
    figure = _figure(obj, prefix)
    if figure:
        parts.append(figure)
    text = escape(_summary(obj, conf_level))
    if isinstance(obj, Result):
        parts.append(f"<details><summary>Full summary() text</summary><pre>{text}</pre></details>")
    else:
        parts.append(f"<h3>Summary</h3><pre>{text}</pre>")
    parts.append("</section>")
    return "\n".join(parts)


def _lines(lines: Sequence[str]) -> str:
    return '<ul class="lines">' + "".join(f"<li>{escape(x)}</li>" for x in lines) + "</ul>"


def _summary(obj: Any, conf_level: float) -> str:
    if isinstance(obj, Result):
        return str(obj.summary(conf_level=conf_level))
    return str(obj.summary())


def _kv(pairs: Mapping[str, Any]) -> str:
    rows = "".join(f'<tr><th scope="row">{escape(str(k))}</th><td>{escape(str(v))}</td></tr>'
                   for k, v in pairs.items())
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _figure(obj: Any, prefix: str) -> str:
    """The object's plot as inline SVG (empty when it has none or holds a single estimate), or a note saying why
    it could not be drawn.

    The SVG's element ids (glyphs, markers, clip paths) get ``prefix``, so that several figures in one page never
    share an id."""
    if not callable(getattr(obj, "plot", None)):
        return ""
    if isinstance(obj, Result) and len(obj.terms) == 1:  # one number: its table row says all a plot would
        return ""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.4), layout="constrained")
    ax = fig.add_subplot()
    try:
        with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "didx"}):
            takes_ax = "ax" in inspect.signature(obj.plot).parameters
            drawn = obj.plot(ax=ax) if takes_ax else obj.plot()  # a multi-panel plot may draw its own figure
            figs: set[Any] = {getattr(a, "figure", None) for a in _axes(drawn)} - {None}
            target: Any = fig if not figs or fig in figs else next(iter(figs))
            buf = io.StringIO()
            target.savefig(buf, format="svg")
            if target is not fig:  # a plot that drew its own figure (several panels): release it
                import matplotlib.pyplot as plt

                plt.close(target)
    except Exception as exc:  # the report still shows everything else, and says why the plot is missing
        return f'<p class="note">No plot: {escape(type(exc).__name__)}: {escape(str(exc))}</p>'
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE (which points to a remote DTD)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    seen: dict[str, int] = {}

    def unique(m: re.Match[str]) -> str:  # matplotlib repeats a gid on several artists: ids must be unique
        seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        return m.group(0) if seen[m.group(1)] == 1 else f'id="{m.group(1)}-{seen[m.group(1)]}"'

    svg = re.sub(r'\bid="([^"]+)"', unique, svg)
    kind = type(obj).__name__
    return f'<figure><div class="scroll">{svg}</div><figcaption>{escape(kind)}.plot()</figcaption></figure>'


def _axes(drawn: Any) -> list[Any]:
    if drawn is None:
        return []
    if hasattr(drawn, "flat"):
        return list(drawn.flat)
    if isinstance(drawn, list | tuple):
        return list(drawn)
    if hasattr(drawn, "savefig"):  # a Figure
        return [drawn.axes[0]] if drawn.axes else []
    return [drawn]
