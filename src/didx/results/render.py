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


def wrap_cell(text: str, width: int) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` characters (a longer word stays whole)."""
    import textwrap

    if len(text) <= width:
        return [text]
    out: list[str] = []
    for line in textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=True) or [""]:
        if len(line) > width and "-" in line.strip("-"):  # a long hyphenated name: break after its hyphens
            parts = [p + "-" for p in line.split("-")[:-1]] + [line.split("-")[-1]]
            cur = ""
            for p in parts:
                if cur and len(cur) + len(p) > width:
                    out.append(cur)
                    cur = ""
                cur += p
            out.append(cur)
        else:
            out.append(line)
    return out


def text_sections(header: Sequence[str], sections: Sequence[Sequence[Sequence[str]]], notes: Sequence[str] = (),
                  wrap: int | None = None) -> str:
    """A text table in sections separated by rules: the first column (row labels, never wrapped) left-aligned,
    the others right-aligned; their cells longer than ``wrap`` characters continue on the next lines of their
    row."""
    def lines_of(row: Sequence[str]) -> list[list[str]]:
        cells = [wrap_cell(c, wrap) if wrap and j > 0 else [c] for j, c in enumerate(row)]
        depth = max(len(c) for c in cells)
        return [[c[i] if i < len(c) else "" for c in cells] for i in range(depth)]

    physical = [lines_of(header)] + [[ln for row in sec for ln in lines_of(row)] for sec in sections]
    widths = [0] * len(header)
    for block in physical:
        for ln in block:
            for j, c in enumerate(ln):
                widths[j] = max(widths[j], len(c))

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(cells)).rstrip()

    total = sum(widths) + 2 * (len(widths) - 1)
    out = [fmt(ln) for ln in physical[0]]
    for block in physical[1:]:
        if block:
            out.append("-" * total)
            out.extend(fmt(ln) for ln in block)
    out.append("-" * total)
    out.extend(notes)
    return "\n".join(out)


def markdown_sections(header: Sequence[str], sections: Sequence[Sequence[Sequence[str]]],
                      notes: Sequence[str] = ()) -> str:
    rows = [r for sec in sections for r in sec]
    out = markdown_table(header, rows)
    return out + ("\n\n" + "  \n".join(notes) if notes else "")


def booktabs_table(header: Sequence[str], sections: Sequence[Sequence[Sequence[str]]], notes: Sequence[str] = (),
                   caption: str | None = None) -> str:
    """A LaTeX table with booktabs rules (``\\usepackage{booktabs}``): sections separated by ``\\midrule``, notes
    in a last row spanning every column. Stars (``*``) at the end of a cell become superscripts."""
    def cell(c: str) -> str:
        stars = len(c) - len(c.rstrip("*"))
        body = latex_escape(c[:len(c) - stars] if stars else c)
        return body + (f"$^{{{'*' * stars}}}$" if stars else "")

    n = len(header)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines += [r"\begin{tabular}{l" + "c" * (n - 1) + "}", r"\toprule",
              " & ".join(latex_escape(h) for h in header) + r" \\"]
    for sec in sections:
        if sec:
            lines.append(r"\midrule")
            lines += [" & ".join(cell(c) for c in r) + r" \\" for r in sec]
    lines.append(r"\bottomrule")
    for note in notes:
        lines.append(rf"\multicolumn{{{n}}}{{l}}{{\footnotesize {latex_escape(note)}}} \\")
    lines += [r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def html_sections(header: Sequence[str], sections: Sequence[Sequence[Sequence[str]]], notes: Sequence[str] = (),
                  css_class: str = "didx-table") -> str:
    """An HTML table (escaped text, no styles or scripts): a ``<tbody>`` per section, notes in ``<tfoot>``."""
    from html import escape

    n = len(header)
    out = [f'<table class="{escape(css_class)}">', "<thead><tr>"
           + "".join(f'<th scope="col">{escape(h)}</th>' for h in header) + "</tr></thead>"]
    for sec in sections:
        if sec:
            out.append("<tbody>")
            out += ["<tr>" + f'<th scope="row">{escape(r[0])}</th>' + "".join(f"<td>{escape(c)}</td>" for c in r[1:])
                    + "</tr>" for r in sec]
            out.append("</tbody>")
    if notes:
        out.append("<tfoot>" + "".join(f'<tr><td colspan="{n}">{escape(x)}</td></tr>' for x in notes) + "</tfoot>")
    out.append("</table>")
    return "\n".join(out)
