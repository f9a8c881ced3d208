"""Several results side by side (text, Markdown, LaTeX)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from didx._errors import InvalidOptionError
from didx._validate import check_option
from didx.results.base import Result
from didx.results.render import fmt_num, latex_table, markdown_table, text_table


@dataclass(frozen=True)
class Comparison:
    """A side-by-side table: estimates with standard errors in parentheses, and the sample and SE type."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __str__(self) -> str:
        return text_table(self.header, self.rows)

    def __repr__(self) -> str:
        return str(self)

    def to_markdown(self) -> str:
        return markdown_table(self.header, self.rows)

    def to_latex(self) -> str:
        return latex_table(self.header, self.rows)


def compare(results: Sequence[Result], *, names: Sequence[str] | None = None, terms: Sequence[str] | None = None,
            digits: int = 4, output: str = "text") -> Comparison | str:
    """Render ``results`` side by side.

    Parameters
    ----------
    results : the results to compare.
    names : column headers (default "(1)", "(2)", ...).
    terms : the terms to show, in order (default: every term, in order of first appearance).
    output : ``"text"`` returns a :class:`Comparison` (prints as text); ``"markdown"`` or ``"latex"`` return
        strings.
    """
    check_option("compare", "output", output, ("text", "markdown", "latex"))
    results = list(results)
    if not results or not all(isinstance(r, Result) for r in results):
        raise InvalidOptionError("compare() takes a non-empty list of didx results.")
    if names is None:
        names = [f"({i + 1})" for i in range(len(results))]
    if len(names) != len(results):
        raise InvalidOptionError(f"compare(): {len(names)} names for {len(results)} results.")
    if terms is None:
        seen: dict[str, None] = {}
        for r in results:
            for t in r.terms:
                seen.setdefault(t, None)
        terms = list(seen)
    rows: list[tuple[str, ...]] = []
    for t in terms:
        est, se = [t], [""]
        for r in results:
            if t in r.terms:
                i = r.terms.index(t)
                est.append(fmt_num(r.coef[i], digits))
                se.append("(" + fmt_num(r.std_errors[i], digits) + ")")
            else:
                est.append("")
                se.append("")
        rows += [tuple(est), tuple(se)]
    rows.append(tuple(["Estimator"] + [r.estimator for r in results]))
    rows.append(tuple(["Observations"] + [str(r.sample.n_obs) for r in results]))
    if any(r.sample.n_units is not None for r in results):
        rows.append(tuple(["Units"] + ["" if r.sample.n_units is None else str(r.sample.n_units) for r in results]))
    rows.append(tuple(["Standard errors"] + [r.inference.vcov_type for r in results]))
    if any(r.inference.n_clusters for r in results):
        rows.append(tuple(["Clusters"] + [", ".join(str(g) for g in r.inference.n_clusters) for r in results]))
    table = Comparison(header=tuple(["", *names]), rows=tuple(rows))
    if output == "markdown":
        return table.to_markdown()
    if output == "latex":
        return table.to_latex()
    return table
