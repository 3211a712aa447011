"""The landing page, notebooks/index.md, which `python3 scripts/course.py lab` opens.

It is Markdown, not a notebook: JupyterLab starts a kernel for any notebook it opens
(and the kernel's `language_info` then marks the page unsaved), while the course's
JupyterLab opens Markdown rendered ("Markdown Preview", the defaults that course.py
writes), with clickable links and no kernel. GitHub renders the same page.

It must list every lesson found in solutions/ (so a new lesson fails here until it is
added), each on one line that links the student notebook and its solution, in lesson
order. tests/notebooks/test_browser.py checks the same page rendered in JupyterLab.

Bugs these tests catch: a lesson missing or listed twice, a link to a wrong path, the
landing page of course.py not the file checked here, JupyterLab defaults under a wrong
plugin id or setting name (then ignored: the page would open as source text).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INDEX = ROOT / "notebooks" / "index.md"
LESSONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LESSON_LINK = re.compile(r"\]\(((?:\.\./solutions/)?(\d\d_\w+)\.ipynb)\)")


def load_course():
    """scripts/course.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("course", ROOT / "scripts/course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lesson_lines(text: str) -> dict[str, list[str]]:
    """Lesson name -> the lines of the page that link it."""
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        for name in {m[2] for m in LESSON_LINK.finditer(line)}:
            lines.setdefault(name, []).append(line)
    return lines


@pytest.fixture(scope="module")
def index() -> str:
    return INDEX.read_text(encoding="utf-8")


def test_course_lab_opens_this_page_and_it_starts_with_a_title(index):
    assert INDEX.relative_to(ROOT).as_posix() == load_course().LANDING
    assert index.startswith("# "), "the page starts with its title"
    assert not (ROOT / "notebooks" / "index.ipynb").exists(), (
        "a notebook landing page starts a kernel; the landing page is index.md"
    )


def test_every_lesson_in_solutions_is_listed(index):
    assert LESSONS, "no lessons found in solutions/"
    listed = lesson_lines(index)
    missing = [p.stem for p in LESSONS if p.stem not in listed]
    assert not missing, f"notebooks/index.md does not list {missing}"


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
    page = (
        "- [notebook](00_a.ipynb) · [solution](../solutions/00_a.ipynb)\n"
        "- [notebook](02_c.ipynb) · [solution](../solutions/02_c.ipynb)"
    )
    assert set(lesson_lines(page)) == {"00_a", "02_c"}
    assert "01_b" not in lesson_lines(page)


def test_lab_defaults_open_markdown_rendered_in_jupyterlab(tmp_path):
    """JupyterLab's own settings code reads the file course.py writes and makes
    "Markdown Preview" the default viewer of Markdown, a setting its schema has."""
    from jupyterlab.commands import get_app_dir
    from jupyterlab_server.settings_utils import get_settings

    course = load_course()
    plugin = "@jupyterlab/docmanager-extension:plugin"
    app_settings = tmp_path / "settings"
    written = course.write_lab_defaults(app_settings / "overrides.d" / "course.json")
    assert json.loads(written.read_text()) == course.LAB_DEFAULTS
    schemas = Path(get_app_dir()) / "schemas"
    schema_file = schemas / "@jupyterlab" / "docmanager-extension" / "plugin.json"
    assert "defaultViewers" in json.loads(schema_file.read_text())["properties"]
    (tmp_path / "user").mkdir()
    found, _ = get_settings(
        str(app_settings), str(schemas), str(tmp_path / "user"), schema_name=plugin
    )
    default = found["schema"]["properties"]["defaultViewers"]["default"]
    assert default.get("markdown") == "Markdown Preview", default
    # written again unchanged: the file is left as it is
    before = written.stat().st_mtime_ns
    course.write_lab_defaults(written)
    assert written.stat().st_mtime_ns == before
