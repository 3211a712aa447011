"""Find the submitted notebooks and cut the exercises out of them, without running
anything.

Who is the student? A notebook named on the command line, or lying directly in a
folder named on the command line, belongs to the student named by its file stem
(`submissions/alice.ipynb` -> alice). A notebook further down belongs to the student
named by the first folder below the one named on the command line
(`submissions/alice/04_gae.ipynb` and `submissions/alice/lab/03_clip.ipynb` -> alice).

Which lesson is a notebook? The lessons of the exercise markers it holds
(`# Exercise 4.1: compute_gae` -> lesson 4); without any, the `NN_` prefix of its file
name, if it has one.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ppo_lessons.exercises import EXERCISE_HEADER, EXERCISES, Exercise

MAX_NOTEBOOK_BYTES = 100 << 20
_LESSON_PREFIX = re.compile(r"^(\d{1,2})_")
_KNOWN = {ex.number for ex in EXERCISES}


@dataclass
class Notebook:
    """One submitted notebook, read but not run."""

    path: Path
    student: str
    problem: str | None = None  # why it could not be read
    lessons: set[int] = field(default_factory=set)
    imports: list[str] = field(default_factory=list)
    cells: dict[str, list[str]] = field(default_factory=dict)  # "4.1" -> sources


def find_notebooks(paths: list[Path]) -> list[tuple[str, Path]]:
    """(student, notebook) pairs for the files and folders named (see module doc)."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_file():
            found.append((path.stem, path))
            continue
        for nb in sorted(path.rglob("*.ipynb")):
            rel = nb.relative_to(path)
            if any(part.startswith(".") for part in rel.parts):
                continue  # .ipynb_checkpoints and other hidden copies
            student = nb.stem if len(rel.parts) == 1 else rel.parts[0]
            found.append((student, nb))
    return found


def _lesson_from_name(path: Path) -> set[int]:
    match = _LESSON_PREFIX.match(path.name)
    return {int(match[1])} if match else set()


def _without_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes, which are not Python."""
    return "\n".join(
        "# " + line if line.startswith(("%", "!")) else line
        for line in source.split("\n")
    )


def _imports(source: str) -> list[str]:
    """The top-level import statements of one code cell, as source text."""
    source = _without_magics(source)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # a broken cell: keep the lines that are complete import statements alone
        lines = []
        for line in source.split("\n"):
            if line.startswith(("import ", "from ")):
                try:
                    ast.parse(line)
                except (SyntaxError, ValueError):
                    continue
                lines.append(line)
        return lines
    return [
        ast.get_source_segment(source, node) or ""
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def _exercise_number(source: str) -> str | None:
    for line in source.split("\n"):
        if line.strip():
            match = EXERCISE_HEADER.match(line.strip())
            return f"{match[1]}.{match[2]}" if match else None
    return None


def read_notebook(path: Path, student: str) -> Notebook:
    """Read a submitted notebook's code cells; a problem is noted, never raised."""
    nb = Notebook(path=path, student=student, lessons=_lesson_from_name(path))
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            nb.problem = f"{path.name} is larger than 100 MB; not read."
            return nb
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        kind = type(error).__name__
        nb.problem = f"{path.name} is not a Jupyter notebook (unreadable JSON: {kind})."
        return nb
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        nb.problem = (
            f"{path.name} is not a Jupyter notebook of format 4 (no list of cells); "
            "open it in Jupyter and save it again."
        )
        return nb
    seen_imports: set[str] = set()
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            continue
        for statement in _imports(source):
            if statement not in seen_imports:
                seen_imports.add(statement)
                nb.imports.append(statement)
        number = _exercise_number(source)
        if number in _KNOWN:
            nb.cells.setdefault(number, []).append(source)
    marked = {int(number.split(".")[0]) for number in nb.cells}
    if marked:
        nb.lessons = marked
    elif not nb.lessons:
        nb.problem = (
            f"{path.name} holds no exercise of this course (no cell starting with a "
            "marker such as `# Exercise 4.1: compute_gae`)."
        )
    return nb


def exercise_cell(nb: Notebook, exercise: Exercise) -> tuple[str | None, str]:
    """(the cell's source, "") or (None, what is wrong with it), without running it."""
    sources = nb.cells.get(exercise.number)
    marker = f"# Exercise {exercise.number}: {exercise.function}"
    if not sources:
        return None, (
            f"{nb.path.name} has no cell for Exercise {exercise.number}: the first line "
            f"of the exercise cell must stay `{marker}`."
        )
    source = _without_magics(sources[-1])  # of several copies, the last one counts
    try:
        tree = ast.parse(source, filename=f"<Exercise {exercise.number}>")
    except SyntaxError as error:
        line = (error.text or "").strip()
        return None, (
            f"syntax error in the cell of Exercise {exercise.number}, line "
            f"{error.lineno}: {error.msg}" + (f"\n    {line}" if line else "")
        )
    except (ValueError, RecursionError, MemoryError) as error:
        return None, f"the cell of Exercise {exercise.number} cannot be parsed: {error}"
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    if exercise.function not in defined:
        also = f"; it defines {', '.join(defined)} (renamed?)" if defined else ""
        return None, (
            f"the cell of Exercise {exercise.number} does not define "
            f"`def {exercise.function}(...)`{also}. The grader looks for that exact "
            "name; keep the signature of the stub."
        )
    return source, ""
