"""The landing page, notebooks/index.ipynb, which `python3 scripts/course.py lab` opens.

It must list every lesson found in solutions/ (so a new lesson fails here until it is
added), each on one line that links the student notebook and its solution, in lesson
order. tests/test_browser.py checks the same page rendered in JupyterLab.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
INDEX = ROOT / "notebooks" / "index.ipynb"
LESSONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LESSON_LINK = re.compile(r"\]\(((?:\.\./solutions/)?(\d\d_\w+)\.ipynb)\)")


@pytest.fixture(scope="module")
def index() -> nbformat.NotebookNode:
    return nbformat.read(INDEX, as_version=4)


def lesson_lines(index: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Lesson name -> the lines of the page that link it."""
    lines: dict[str, list[str]] = {}
    for cell in index.cells:
        for line in cell.source.splitlines():
            for name in {m[2] for m in LESSON_LINK.finditer(line)}:
                lines.setdefault(name, []).append(line)
    return lines


def test_index_is_markdown_only_and_opens_without_a_kernel_dialog(index):
    nbformat.validate(index)
    assert index.cells and all(c.cell_type == "markdown" for c in index.cells)
    # without a kernelspec JupyterLab asks for a kernel before showing the page
    assert index.metadata.get("kernelspec", {}).get("name") == "python3"
    assert index.cells[0].source.startswith("# "), "the first cell is the title"


def test_every_lesson_in_solutions_is_listed(index):
    assert LESSONS, "no lessons found in solutions/"
    listed = lesson_lines(index)
    missing = [p.stem for p in LESSONS if p.stem not in listed]
    assert not missing, f"notebooks/index.ipynb does not list {missing}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_one_line_linking_notebook_and_solution(index, lesson):
    lines = lesson_lines(index).get(lesson.stem, [])
    assert len(lines) == 1, f"{lesson.stem} should have exactly one line: {lines}"
    links = {m[1] for m in LESSON_LINK.finditer(lines[0])}
    # links are relative to notebooks/, where the page lives
    assert links == {f"{lesson.stem}.ipynb", f"../solutions/{lesson.stem}.ipynb"}
    for link in links:
        assert (INDEX.parent / link).resolve().exists(), f"{link} does not exist"


def test_lessons_are_listed_in_order_without_gaps(index):
    numbers = [int(name[:2]) for name in lesson_lines(index)]
    assert numbers == list(range(len(numbers))), numbers


def test_a_missing_lesson_is_detected():
    page = nbformat.v4.new_notebook()
    page.cells = [
        nbformat.v4.new_markdown_cell(
            "- [notebook](00_a.ipynb) · [solution](../solutions/00_a.ipynb)\n"
            "- [notebook](02_c.ipynb) · [solution](../solutions/02_c.ipynb)"
        )
    ]
    assert set(lesson_lines(page)) == {"00_a", "02_c"}
    assert "01_b" not in lesson_lines(page)
