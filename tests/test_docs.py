"""The documentation's code runs: every ```python block of README.md and docs/*.md, a page's blocks in order in one
namespace (later blocks may use earlier names), from the repository root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_code_blocks_run(page: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "docs" / "img").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # files a page writes (plots, docs/img/...) land in a temporary folder
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(_blocks(page)):
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as exc:  # the page and block in the failure, not only the traceback
            raise AssertionError(f"{page.name}, code block {i + 1} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            plt.close("all")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_stay_in_the_repository(page: Path) -> None:
    """Relative links resolve to files of the repository, and no page sends readers to the development machine's
    ``../shared`` or ``/work/shared`` (not in a clone): found in design.md, performance.md and sensitivity.md."""
    text = page.read_text()
    assert "../shared/" not in text and "/work/shared" not in text
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_readme_names_what_the_demo_writes() -> None:
    """The README says what `make demo` writes (it said "tables + figures in out/"; it writes two PNGs)."""
    demo = (ROOT / "examples" / "demo.py").read_text()
    written = re.findall(r'"([\w.]+\.png)"', demo)
    readme = (ROOT / "README.md").read_text()
    assert written and all(f"out/{name}" in readme for name in written)


FENCE = re.compile(r"^([ \t]*)(```|~~~)[ \t]*([^\s`]*)", re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_block_is_run(page: Path) -> None:
    """No Python block escapes test_code_blocks_run: every fence that opens Python code (```py, ```python3,
    ``` python, an indented fence in a list, ~~~python) is exactly the unindented ```python the test runs."""
    text = page.read_text()
    opened = [m for i, m in enumerate(FENCE.finditer(text)) if i % 2 == 0]  # fences alternate open, close
    python = [m for m in opened if m.group(3).lower() in ("py", "python", "python3", "py3", "ipython", "pycon")]
    for m in python:
        assert m.group(0) == "```python", f"{page.name}: {m.group(0)!r} is not run by the docs test; write ```python"
    assert len(python) == len(_blocks(page))


def test_pages_are_found() -> None:
    """Every Markdown page of docs/ (including new ones) and the README are checked."""
    assert ROOT / "README.md" in PAGES
    nested = [p for p in (ROOT / "docs").rglob("*.md") if p.parent != ROOT / "docs"]
    assert not nested, f"pages in sub-folders are not run by the docs test: {nested}; widen PAGES"
    assert {"coming_from_r.md", "report.md", "getting_started.md"} <= {p.name for p in PAGES}


PRIVATE_IMPORT = re.compile(r"^\s*(?:from|import)\s+didx\.(?:estimators|inference|linalg|_\w+)\b", re.M)
INTERNAL_HEADING = re.compile(r"internal|contributor", re.I)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_user_examples_use_the_public_api(page: Path) -> None:
    """A code block that imports a private module sits under a heading saying it is internal (found: drdid.md sent
    users to the cell functions of didx.estimators.drdid as if they were the API)."""
    text = page.read_text()
    for match in BLOCK.finditer(text):
        if PRIVATE_IMPORT.search(match.group(1)):
            headings = re.findall(r"^#+ (.*)$", text[: match.start()], re.M)
            heading = headings[-1] if headings else ""
            assert INTERNAL_HEADING.search(heading), (
                f"{page.name}: an example under {heading!r} imports a private module; use the public didx API or "
                f"put it under an 'Internals for contributors' heading")
