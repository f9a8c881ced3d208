"""Command line front end.

    didx ESTIMATOR DATA [key=value ...] [--output FORMAT] [--conf-level 0.95] [--aggregate KIND]
                                        [--plot FILE.png|svg|pdf] [--report FILE.html]
    didx ESTIMATOR --help               # that estimator's arguments and their defaults
    didx datasets                       # the shipped datasets, one line each
    didx datasets NAME [--to FILE.csv]  # print or save one
    didx --version

DATA is a CSV or Parquet file, or ``dataset:NAME`` for a shipped dataset. ESTIMATOR is any estimator of the registry
(:mod:`didx.registry`). Arguments are the estimator's keyword arguments: ``y=lemp unit=countyreal``; a comma makes a
list (``covariates=x1,x2``); numbers, ``true``/``false`` and ``none`` are converted. Every estimator uses the common
vocabulary (``y, unit, time, cohort, treat, covariates, weights, cluster, fe``), so the names are the same for all
(e.g. ``treat=`` is did2x2's treated-group dummy). Options may come before or after the estimator's name. Example::

    didx twfe dataset:mpdta y=lemp unit=countyreal time=year cohort=first.treat
    didx did2x2 dataset:card_krueger y=fte treat=nj post=d cluster=store_id --output markdown
    didx att_gt dataset:mpdta y=lemp unit=countyreal time=year cohort=first.treat --aggregate dynamic --plot es.png

The parsing is :mod:`argparse`'s (one parser per estimator, built from the function's signature and docstring);
only the ``key=value`` pairs are read here, and checked against the signature (a misspelled name gets a
suggestion).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import didx
from didx._errors import DidxError, InvalidOptionError
from didx._validate import did_you_mean
from didx.registry import REGISTRY
from didx.results.base import Result
from didx.results.render import latex_table, markdown_table

ESTIMATORS: tuple[str, ...] = tuple(REGISTRY)
OUTPUTS: tuple[str, ...] = ("summary", "text", "tidy", "csv", "markdown", "latex", "json")
PLOT_FORMATS: tuple[str, ...] = (".png", ".svg", ".pdf")
AGGREGATIONS: tuple[str, ...] = ("simple", "group", "dynamic", "calendar", "post", "pre")  # --aggregate KIND
_VALUED = ("--output", "--conf-level", "--aggregate", "--plot", "--report", "--to")  # options that take a value


# ---------------------------------------------------------------- values and data
def _convert(key: str, raw: str) -> Any:
    def scalar(s: str) -> Any:
        low = s.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "none":
            return None
        try:
            return int(s)
        except ValueError:
            pass
        try:
            return float(s)
        except ValueError:
            return s

    if "," in raw:
        parts = [scalar(p) for p in raw.split(",") if p != ""]
        return tuple(parts) if key == "window" else parts
    return scalar(raw)


def _read(path: str) -> pd.DataFrame:
    if path.startswith("dataset:"):
        return didx.datasets.load(path.split(":", 1)[1])
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _function(name: str) -> Callable[..., Any]:
    fn: Callable[..., Any] = getattr(didx, REGISTRY[name].name)  # public: didx.event_study is the comparison entry
    return fn


# ---------------------------------------------------------------- help generated from the signature
def _param_docs(func: Callable[..., Any]) -> dict[str, str]:
    """``name -> first line of its description`` from a numpy-style ``Parameters`` section (``a, b : text``)."""
    doc = inspect.getdoc(func) or ""
    section = doc.split("Parameters", 1)[1] if "Parameters" in doc else ""
    section = re.split(r"\n(Returns|Notes|Examples|Raises)\n", section)[0]
    out: dict[str, str] = {}
    for m in re.finditer(r"^([A-Za-z_][\w, ]*?) : (.*)$", section, flags=re.MULTILINE):
        for name in m.group(1).split(","):
            out.setdefault(name.strip(), m.group(2).strip())
    return out


def _arguments(func: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(func).parameters.values()
            if p.kind == inspect.Parameter.KEYWORD_ONLY]


def _fmt_default(p: inspect.Parameter) -> str:
    if p.default is inspect.Parameter.empty or type(p.default).__name__.startswith("_Required"):
        return "required"
    d = p.default
    if isinstance(d, bool) or d is None:
        return f"default {str(d).lower()}"
    if isinstance(d, tuple | list):
        return "default " + ",".join(str(v) for v in d)
    return f"default {d}"


def _required(p: inspect.Parameter) -> bool:
    return _fmt_default(p) == "required"


def estimator_help(name: str, width: int = 110) -> str:
    """The ``key=value`` arguments of estimator ``name`` with their defaults and a line of description each,
    generated from the registry's function (its signature and docstring)."""
    func = _function(name)
    docs = _param_docs(func)
    lines = [f"arguments of {name} (key=value; a comma makes a list):"]
    for p in _arguments(func):
        head = f"  {p.name}= ({_fmt_default(p)})"
        text = docs.get(p.name, "")
        room = width - 34
        if len(text) > room:
            text = text[: room - 3].rstrip() + "..."
        lines.append(f"{head:<32}  {text}" if text else head)
    return "\n".join(lines)


def _first_line(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def _label(name: str) -> str:
    """The command's one-line name: the registry's label, or for an entry whose public function is another one
    (``event_study``, the comparison entry) what that function is: the general help listed it as "TWFE"."""
    spec = REGISTRY[name]
    if spec.public is None:
        return spec.label
    return f"{_first_line(_function(name)).split(':')[0]} (estimator=NAME or all: others side by side)"


# ---------------------------------------------------------------- parsers
def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="summary", choices=OUTPUTS,
                   help="summary (= text), tidy, csv, markdown, latex or json (default: summary)")
    p.add_argument("--conf-level", type=float, default=0.95, help="confidence level of the intervals")
    p.add_argument("--aggregate", metavar="KIND",
                   help="print result.aggregate(KIND) instead (att_gt: simple, group, dynamic, calendar; "
                        "event studies: post, pre)")
    p.add_argument("--plot", metavar="FILE", help="save the result's plot to FILE (.png, .svg or .pdf)")
    p.add_argument("--report", metavar="FILE", help="write a self-contained HTML report (didx.report) to FILE")


def _estimator_parser(name: str) -> argparse.ArgumentParser:
    spec = REGISTRY[name]
    p = argparse.ArgumentParser(
        prog=f"didx {name}", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_first_line(_function(name)) if spec.public else f"{spec.label}: {_first_line(_function(name))}",
        epilog=estimator_help(name))
    p.add_argument("data", help="CSV/Parquet file or dataset:NAME")
    p.add_argument("args", nargs="*", metavar="key=value", help="arguments of the estimator (listed below)")
    _common_options(p)
    return p


def dataset_descriptions() -> dict[str, str]:
    """One line per shipped dataset, read from the provenance table of :mod:`didx.datasets`' docstring."""
    doc = didx.datasets.__doc__ or ""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in doc.splitlines():
        m = re.match(r"^``(\w+)``(?:, ``(\w+)``)?\s+(.*)$", line)
        if m:
            current = [m.group(3).strip()]
            for name in m.groups()[:2]:
                if name:
                    entries[name] = current
        elif current is not None and line.startswith(" " * 20) and line.strip():
            current.append(line.strip())
        else:
            current = None
    out = {}
    for name in didx.datasets.available():
        text = " ".join(entries.get(name, [""]))
        text = text.split(" Columns:")[0].replace("``", "").strip()
        out[name] = text if len(text) <= 100 else text[:97].rstrip() + "..."
    return out


def _datasets_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="didx datasets", description="List, print or save the shipped datasets.")
    p.add_argument("name", nargs="?", help="a dataset to print (first 20 rows) or save")
    p.add_argument("--to", help="write the dataset to this CSV file")
    return p


def _general_help() -> str:
    width = max(len(n) for n in ESTIMATORS) + 2
    cmds = "\n".join(f"  {n:<{width}}{_label(n)}" for n in ESTIMATORS)
    return (f"usage: didx ESTIMATOR DATA [key=value ...] [--output FORMAT] [--conf-level L] [--aggregate KIND]\n"
            f"                               [--plot FILE] [--report FILE.html]\n"
            f"       didx ESTIMATOR --help | didx datasets [NAME [--to FILE.csv]] | didx --version\n\n"
            f"Difference-in-differences from the command line.\n\nestimators:\n{cmds}\n  "
            f"{'datasets':<{width}}list the shipped datasets\n\n"
            f"Run 'didx ESTIMATOR --help' for that estimator's arguments and their defaults.")


def _split_command(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The command (first token that is neither an option nor an option's value) and the other tokens."""
    rest = list(argv)
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok.startswith("-") and not _is_number(tok):
            i += 2 if tok in _VALUED else 1
            continue
        return tok, rest[:i] + rest[i + 1:]
    return None, rest


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- rendering
def _num(x: float) -> float | None:  # NaN is not JSON: null
    return None if x != x else x


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts at full precision (NaN -> null; integral event times as integers)."""
    out = []
    for row in table.to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float):
                if v != v:
                    v = None
                elif np.isinf(v):
                    v = "inf" if v > 0 else "-inf"
                elif k == "event_time" and v == int(v):
                    v = int(v)
            rec[str(k)] = v
        out.append(rec)
    return out


def _render(res: Any, output: str, conf_level: float) -> str:
    if not isinstance(res, Result):
        return _render_other(res, output, conf_level)
    if output in ("summary", "text"):
        return str(res.summary(conf_level=conf_level))
    tidy = res.tidy(conf_level=conf_level)
    if output == "tidy":
        return str(tidy.to_string(index=False))
    if output == "csv":
        return str(tidy.to_csv(index=False))
    if output == "json":
        return json.dumps({"estimator": res.estimator, "estimate": _num(res.estimate),
                           "std_error": _num(res.std_error), "terms": _records(tidy)}, indent=1, allow_nan=False)
    if output == "markdown":
        return str(res.to_markdown(conf_level=conf_level))
    return str(res.to_latex(conf_level=conf_level))


def _cell(v: Any) -> str:
    from didx.results.render import fmt_num

    return fmt_num(v) if isinstance(v, float | np.floating) else str(v)


def _render_other(res: Any, output: str, conf_level: float) -> str:
    """Outputs that are not a :class:`~didx.Result` (a decomposition, a comparison): their summary and table."""
    if output in ("summary", "text"):
        return str(res.summary())
    if hasattr(res, "tidy"):
        params = inspect.signature(res.tidy).parameters
        table = res.tidy(conf_level) if "conf_level" in params else res.tidy()
    else:
        table = res.weights
    if output == "tidy":
        return str(table.to_string(index=False))
    if output == "csv":
        return str(table.to_csv(index=False))
    if output == "json":
        estimate = getattr(res, "estimate", None)
        return json.dumps({"estimator": str(getattr(res, "estimator", type(res).__name__)),
                           "estimate": None if estimate is None else _num(float(estimate)),
                           "terms": _records(table)}, indent=1, allow_nan=False)
    header = [str(c) for c in table.columns]
    table = table.copy()
    for c in table.columns:  # years and counts stored as floats (a cohort column with inf) print as 2005, not 2005.0000
        v = table[c]
        if v.dtype.kind == "f" and bool(np.all(np.isnan(v) | np.isinf(v) | (v == np.round(v)))):
            table[c] = [str(int(x)) if np.isfinite(x) else _cell(x) for x in v]
    rows = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    if output == "markdown":
        return markdown_table(header, rows)
    return latex_table(header, rows, caption=str(getattr(res, "estimator", type(res).__name__)))


# ---------------------------------------------------------------- actions
def _kwargs(name: str, items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs checked against the estimator's signature (a suggestion for a misspelled name)."""
    params = {p.name: p for p in _arguments(_function(name))}
    kwargs: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InvalidOptionError(f"didx {name}: argument {item!r} must be key=value, e.g. y=lemp.")
        k, v = item.split("=", 1)
        k = k.replace("-", "_")
        if k not in params:
            raise InvalidOptionError(
                f"didx {name}: unknown argument {k!r}.{did_you_mean(k, params)} Arguments: {', '.join(params)} "
                f"(see 'didx {name} --help')."
            )
        kwargs[k] = _convert(k, v)
    missing = [p for p, par in params.items() if _required(par) and p not in kwargs]
    if missing:
        raise InvalidOptionError(
            f"didx {name}: missing required argument(s) {', '.join(missing)}, e.g. {missing[0]}=COLUMN "
            f"(see 'didx {name} --help')."
        )
    return kwargs


def _aggregate(res: Any, kind: str, name: str) -> Any:
    if not callable(getattr(res, "aggregate", None)):
        raise InvalidOptionError(
            f"--aggregate {kind}: the {name} result ({type(res).__name__}) has no aggregations. Fix: drop "
            f"--aggregate, or use an estimator with one (att_gt: simple, group, dynamic, calendar; event studies: "
            f"post, pre)."
        )
    try:
        return res.aggregate(kind)
    except InvalidOptionError as exc:  # a misspelled kind gets a suggestion, as a misspelled argument does
        if "Did you mean" in str(exc):
            raise
        hint = did_you_mean(kind, AGGREGATIONS)
        if not hint:
            raise
        raise InvalidOptionError(f"{exc}{hint}") from None


def _check_plot_path(path: str) -> None:
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise InvalidOptionError(f"--plot {path}: unknown format {suffix or '(none)'!r}. Fix: end the file name "
                                 f"in {', '.join(PLOT_FORMATS)}.")


def _save_plot(res: Any, path: str) -> None:
    _check_plot_path(path)
    if not callable(getattr(res, "plot", None)):
        raise InvalidOptionError(f"--plot: {type(res).__name__} has no plot. Fix: drop --plot.")
    import matplotlib

    matplotlib.use("Agg")  # files only: no window
    import matplotlib.pyplot as plt

    ax = res.plot()
    first = np.ravel(np.asarray(ax, dtype=object))[0]
    fig = first.figure
    fig.savefig(path)
    plt.close(fig)


def _save_report(res: Any, path: str, title: str) -> None:
    if not path.lower().endswith((".html", ".htm")):
        raise InvalidOptionError(f"--report {path}: the report is an HTML file. Fix: end the name in .html.")
    try:
        report: Any = didx.report  # resolved by didx.__getattr__ when the report module exists
    except AttributeError:
        raise InvalidOptionError(
            "--report: not available in this version of didx (no didx.report). Fix: drop --report, or update didx."
        ) from None
    report([res], path=path, title=title)


def _datasets(argv: Sequence[str]) -> int:
    ns = _datasets_parser().parse_args(argv)
    if ns.name is None:
        desc = dataset_descriptions()
        width = max(len(n) for n in desc) + 2
        print("\n".join(f"{n:<{width}}{d}".rstrip() for n, d in desc.items()))
        return 0
    df = didx.datasets.load(ns.name)
    if ns.to:
        df.to_csv(ns.to, index=False)
    else:
        print(df.head(20).to_string())
    return 0


def _run(name: str, argv: Sequence[str]) -> int:
    ns = _estimator_parser(name).parse_intermixed_args(argv)
    kwargs = _kwargs(name, ns.args)
    if ns.plot:  # check the file name before fitting
        _check_plot_path(ns.plot)
    res = _function(name)(_read(ns.data), **kwargs)
    if ns.aggregate:
        res = _aggregate(res, ns.aggregate, name)
    text = _render(res, ns.output, ns.conf_level)
    if ns.plot:  # files first: a reader that closes the output early (`| head`) does not lose them
        _save_plot(res, ns.plot)
    if ns.report:
        _save_report(res, ns.report, f"didx {name}: {_label(name)}")
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = _split_command(args)
    try:
        if command is None:
            if "--version" in rest:
                print(f"didx {didx.__version__}")
                return 0
            print(_general_help())
            return 0 if {"-h", "--help"} & set(rest) else 2
        if command == "datasets":
            return _datasets(rest)
        if command not in ESTIMATORS:
            raise InvalidOptionError(
                f"Unknown command {command!r}.{did_you_mean(command, (*ESTIMATORS, 'datasets'))} "
                f"Commands: {', '.join(ESTIMATORS)}, datasets."
            )
        return _run(command, rest)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    except (DidxError, TypeError, FileNotFoundError) as exc:
        print(f"didx: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `didx ... | head`: the reader left; stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else the flush at exit fails again
        except (OSError, ValueError, AttributeError):  # no file descriptor (an in-process caller's stream)
            pass
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
