"""Command line front end.

    didx ESTIMATOR DATA [key=value ...] [--output summary|tidy|csv|markdown|latex|json] [--conf-level 0.95]
    didx datasets                       # list the shipped datasets
    didx datasets NAME [--to FILE.csv]  # print or save one

DATA is a CSV or Parquet file, or ``dataset:NAME`` for a shipped dataset. ESTIMATOR is any estimator of the registry
(:mod:`didx.registry`). Arguments are the estimator's keyword arguments: ``y=lemp unit=countyreal``; a comma makes a
list (``covariates=x1,x2``); numbers, ``true``/``false`` and ``none`` are converted. Every estimator uses the common
vocabulary (``y, unit, time, cohort, treat, covariates, weights, cluster, fe``), so the names are the same for all
(e.g. ``treat=`` is did2x2's treated-group dummy). Example::

    didx twfe dataset:mpdta y=lemp unit=countyreal time=year cohort=first.treat
    didx did2x2 dataset:card_krueger y=fte treat=nj post=d cluster=store_id --output markdown
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

import didx
from didx._errors import DidxError, InvalidOptionError
from didx._validate import did_you_mean
from didx.registry import REGISTRY
from didx.results.base import Result
from didx.results.render import markdown_table

ESTIMATORS: tuple[str, ...] = tuple(REGISTRY)


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


def _render(res: Any, output: str, conf_level: float) -> str:
    if not isinstance(res, Result):
        return _render_other(res, output, conf_level)
    if output == "summary":
        return str(res.summary(conf_level=conf_level))
    tidy = res.tidy(conf_level=conf_level)
    if output == "tidy":
        return str(tidy.to_string(index=False))
    if output == "csv":
        return str(tidy.to_csv(index=False))
    if output == "json":
        return res.to_json(conf_level=conf_level)  # full precision (pandas' to_json rounds to 10 decimals)
    if output == "markdown":
        return str(res.to_markdown(conf_level=conf_level))
    return str(res.to_latex(conf_level=conf_level))


def _num(x: float) -> float | None:  # NaN is not JSON: null
    return None if x != x else x


def _render_other(res: Any, output: str, conf_level: float) -> str:
    """Outputs that are not a :class:`~didx.Result` (a decomposition, a comparison): their summary and table."""
    if output == "summary":
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
                           "terms": json.loads(table.to_json(orient="records"))}, indent=1, allow_nan=False)
    if output == "markdown":
        return markdown_table([str(c) for c in table.columns],
                              [[str(v) for v in row] for row in table.itertuples(index=False)])
    raise InvalidOptionError(f"--output {output}: not available for {type(res).__name__}. Fix: use --output "
                             f"summary, tidy, csv, json or markdown.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="didx", description="Difference-in-differences from the command line.")
    parser.add_argument("command", help=f"an estimator ({', '.join(ESTIMATORS)}) or 'datasets'")
    parser.add_argument("data", nargs="?", help="CSV/Parquet file or dataset:NAME (for 'datasets': a name)")
    parser.add_argument("args", nargs="*", help="key=value arguments of the estimator")
    parser.add_argument("--output", default="summary",
                        choices=("summary", "tidy", "csv", "markdown", "latex", "json"))
    parser.add_argument("--conf-level", type=float, default=0.95)
    parser.add_argument("--to", help="datasets: write the dataset to this CSV file")
    ns = parser.parse_args(argv)
    try:
        if ns.command == "datasets":
            if ns.data is None:
                print("\n".join(didx.datasets.available()))
                return 0
            df = didx.datasets.load(ns.data)
            if ns.to:
                df.to_csv(ns.to, index=False)
            else:
                print(df.head(20).to_string())
            return 0
        if ns.command not in ESTIMATORS:
            raise InvalidOptionError(
                f"Unknown command {ns.command!r}.{did_you_mean(ns.command, (*ESTIMATORS, 'datasets'))} "
                f"Commands: {', '.join(ESTIMATORS)}, datasets."
            )
        if ns.data is None:
            raise InvalidOptionError(f"didx {ns.command}: give the data (a CSV/Parquet file or dataset:NAME).")
        kwargs: dict[str, Any] = {}
        for item in ns.args:
            if "=" not in item:
                raise InvalidOptionError(f"Argument {item!r} must be key=value, e.g. y=lemp.")
            k, v = item.split("=", 1)
            kwargs[k.replace("-", "_")] = _convert(k, v)
        spec = REGISTRY[ns.command]
        func = getattr(didx, spec.name)  # the public function (didx.event_study is the comparison entry)
        res = func(_read(ns.data), **kwargs)
        print(_render(res, ns.output, ns.conf_level))
        return 0
    except (DidxError, TypeError, FileNotFoundError) as exc:
        print(f"didx: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
