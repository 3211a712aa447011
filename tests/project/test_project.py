"""Project housekeeping that can silently rot: dependency lists, generated notebooks,
the tests' wing folders."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from ppo_lessons import release
from ppo_lessons.exercises import EXERCISE_HEADER, EXERCISES

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _requirement_lines(lines: list[str]) -> set[str]:
    return {
        re.sub(r"\s+", "", line.split("#")[0])
        for line in lines
        if line.split("#")[0].strip()
    }


def test_requirements_and_environment_list_the_same_packages():
    req = _requirement_lines((ROOT / "requirements.txt").read_text().splitlines())
    env_text = (ROOT / "environment.yml").read_text()
    pip_section = env_text.split("- pip:", 1)[1].splitlines()
    env = _requirement_lines([line.strip().removeprefix("- ") for line in pip_section])
    assert req == env, (
        f"only in requirements.txt: {req - env}; only in environment.yml: {env - req}"
    )


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 scripts/course.py test"
    assert command in readme
    assert ci.strip().splitlines()[-1] == command


TESTS = ROOT / "tests"
NOT_WINGS = {"support", "data"}  # as in tests/conftest.py


def test_every_test_file_sits_in_a_wing_folder():
    """tests/<wing>/test_*.py: the wing's marker (-m trainer) and the tiers reach a
    test through its folder (tests/conftest.py); a test file in tests/ itself or in
    support/ would sit outside them."""
    files = [*TESTS.rglob("test_*.py"), *TESTS.rglob("*_test.py")]
    stray = sorted(
        str(path.relative_to(ROOT))
        for path in files
        if len(parts := path.relative_to(TESTS).parts) < 2 or parts[0] in NOT_WINGS
    )
    assert not stray, f"test files outside a wing folder (tests/<wing>/): {stray}"


def test_test_file_names_are_unique_across_wings():
    """The wing folders are not packages: pytest imports each test file by its name, so
    two files of one name in two wings would collide at collection."""
    names = [path.name for path in TESTS.rglob("test_*.py")]
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"test file names used in two wing folders: {twice}"


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_link_of_the_readme_and_docs_resolves(page):
    """Relative links and pictures point at files that exist (anchors not checked)."""
    targets = re.findall(r"\]\(([^)#\s]+)[^)]*\)", page.read_text())
    local = [t for t in targets if "://" not in t]
    missing = [t for t in local if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_readme_says_where_every_folder_and_module_lives():
    """The README's "where things live" table names every top-level folder of the
    project and every module and subpackage of ppo_lessons."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    named = {
        name.rstrip("/").rsplit("/", 1)[-1]
        for row in rows
        for name in re.findall(r"`([^`]+)`", row)
    }
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    files = [Path(line).parts for line in out.stdout.splitlines()]
    folders = {parts[0] for parts in files if len(parts) > 1}
    # ppo_lessons/x.py and ppo_lessons/sub/ (a subpackage is a folder with __init__.py)
    modules = {
        parts[1]
        for parts in files
        if parts[0] == "ppo_lessons"
        and (parts[1].endswith(".py") or parts[2:] == ("__init__.py",))
    }
    missing = sorted((folders | modules) - named)
    assert not missing, f"not in the README's where-things-live table: {missing}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_student_notebook_is_up_to_date_and_clean(solution):
    student = ROOT / "notebooks" / solution.name
    assert student.exists(), (
        f"{student.name} missing: run python -m ppo_lessons.release"
    )
    expected = (
        nbformat.writes(
            release.student_notebook(nbformat.read(solution, as_version=4)), version=4
        )
        + "\n"
    )
    assert student.read_text() == expected, (
        f"notebooks/{solution.name} is out of date with solutions/{solution.name}: "
        "run python -m ppo_lessons.release"
    )
    nb = nbformat.read(student, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells)
    assert "BEGIN SOLUTION" not in student.read_text()


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercises_in_notebook_match_the_table(solution):
    """Every exercise of the lesson appears once (in any order: an exercise sits where
    the lesson derives it), followed by its check and the import of the reference; no
    exercise outside the table."""
    lesson = int(solution.name[:2])
    nb = nbformat.read(solution, as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    found = []
    for i, source in enumerate(sources):
        match = EXERCISE_HEADER.match(source.split("\n", 1)[0])
        if not match:
            continue
        found.append((f"{match[1]}.{match[2]}", match[3]))
        assert f"check_{match[3]}({match[3]})" in sources[i + 1]
        assert re.search(
            rf"from ppo_lessons\.\w+ import .*\b{match[3]}\b", sources[i + 2]
        )
    expected = [(ex.number, ex.function) for ex in EXERCISES if ex.lesson == lesson]
    assert sorted(found) == sorted(expected)


def test_student_source_replaces_the_solution_block():
    source = "# Exercise 9.1: f\ndef f(x):\n    # HINT: double it\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n# NBVAL_CHECK_OUTPUT\nprint(1)"
    out = release.student_source(source, "Exercise 9.1")
    assert "return 2 * x" not in out
    assert '    raise NotImplementedError("Exercise 9.1: not written yet")' in out
    assert "# HINT: double it" in out and "NBVAL" not in out
    with pytest.raises(ValueError, match="without"):
        release.student_source("### BEGIN SOLUTION\nx = 1", "Exercise 9.2")


def test_release_never_overwrites_student_work(tmp_path):
    solutions, out = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "# Exercise 9.1: f\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
        )
    ]
    nbformat.write(nb, solutions / "09_demo.ipynb")
    assert release.release(solutions, out) == []
    student = out / "09_demo.ipynb"
    work = nbformat.read(student, as_version=4)
    work.cells[0].source = work.cells[0].source.replace(
        "raise NotImplementedError", "return 1  #"
    )
    nbformat.write(work, student)
    nb.cells.append(nbformat.v4.new_markdown_cell("new text"))
    nbformat.write(nb, solutions / "09_demo.ipynb")
    problems = release.release(solutions, out)
    assert problems and "edited since it was generated" in problems[0]
    assert "return 1  #" in student.read_text()
    assert release.release(solutions, out, force=True) == []
    assert list(out.glob("09_demo.ipynb.bak-*")), "--force must keep a backup"
    assert "new text" in student.read_text()


def test_release_drops_the_solutions_stored_widget_state_and_nothing_else(tmp_path):
    # catches a solution stored with widget state, which a static page draws with a
    # script from the internet instead of the explorer's picture
    solutions, out = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("text")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, solutions / "03_demo.ipynb")
    assert release.release(solutions, out, check=True)  # check mode writes nothing
    assert "widgets" in nbformat.read(solutions / "03_demo.ipynb", 4).metadata
    assert release.release(solutions, out) == []
    kept = nbformat.read(solutions / "03_demo.ipynb", 4)
    assert "widgets" not in kept.metadata and kept.metadata["kernelspec"]["name"]
    assert kept.cells[0].source == "text"
