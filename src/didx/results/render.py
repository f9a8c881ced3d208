"""Plain-text, Markdown and LaTeX rendering of small tables (one model, three outputs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fmt_num(x: object, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, bool | np.bool_):
        return str(x)
    if isinstance(x, int | np.integer):
        return str(int(x))
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    if np.isnan(v):
        return ""
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) < 10 ** (-digits) or abs(v) >= 1e7):
        return f"{v:.{digits}e}"
    return f"{v:.{digits}f}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_left: int = 1) -> str:
    """Columns padded to width; the first ``align_left`` columns left-aligned, the rest right-aligned."""
    widths = [len(h) for h in header]
    for r in rows:
        for j, c in enumerate(r):
            widths[j] = max(widths[j], len(c))

    def line(cells: Sequence[str]) -> str:
        out = []
        for j, c in enumerate(cells):
            out.append(c.ljust(widths[j]) if j < align_left else c.rjust(widths[j]))
        return "  ".join(out).rstrip()

    sep = "-" * len(line(header))
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_left: int = 1) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    al = ["---" if j < align_left else "---:" for j in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "| " + " | ".join(al) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(s: str) -> str:
    """Escape LaTeX's special characters in one pass (so the braces of ``\\textbackslash{}`` stay braces)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in s)


def latex_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_left: int = 1,
                caption: str | None = None) -> str:
    spec = "l" * align_left + "r" * (len(header) - align_left)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\hline",
              " & ".join(latex_escape(h) for h in header) + r" \\", r"\hline"]
    lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)
