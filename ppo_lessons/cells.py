"""Lesson notebooks read as data: the import lines and exercise cells of a saved
notebook, cut out without running anything.

    nb = read_notebook(Path("04_gae.ipynb"), student="you")
    source, why = exercise_cell(nb, exercise)   # (the cell, "") or (None, the reason)

`ppo_lessons.notebook.exercise_function` runs one exercise cell of the student's own
notebook this way; the grader (`python -m ppo_lessons.grade`) reads every submitted
notebook with the same functions, so both cut a cell out alike.

Which lesson is a notebook? The lessons of the exercise markers it holds
(`# Exercise 4.1: compute_gae` -> lesson 4); without any, the `NN_` prefix of its file
name, if it has one.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ppo_lessons.exercises import EXERCISE_HEADER, EXERCISES, Exercise

MAX_NOTEBOOK_BYTES = 100 << 20
_LESSON_PREFIX = re.compile(r"^(\d{1,2})_")
_KNOWN = {ex.number for ex in EXERCISES}


@dataclass
class Notebook:
    """One saved notebook (the student's own, or one submitted), read but not run."""

    path: Path
    student: str
    problem: str | None = None  # why it could not be read
    lessons: set[int] = field(default_factory=set)
    imports: list[str] = field(default_factory=list)
    cells: dict[str, list[str]] = field(default_factory=dict)  # "4.1" -> sources


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


def read_bytes(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The contents of the regular file `path`, at most `limit` bytes.

    Never follows a symbolic link and never blocks (a FIFO is refused, not opened for
    a writer to come); raises ValueError with the reason for anything else.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(
                "is a symbolic link; only regular files are read"
            ) from None
        raise ValueError(f"cannot be opened ({error.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"is not a regular file ({_kind(mode)}); not read")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:
                raise ValueError(f"is larger than {limit >> 20} MB; not read")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket")]  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "a special file")


def read_notebook(path: Path, student: str) -> Notebook:
    """Read a submitted notebook's code cells; a problem is noted, never raised."""
    nb = Notebook(path=path, student=student, lessons=_lesson_from_name(path))
    try:
        _parse(nb, read_bytes(path))
    except ValueError as error:
        nb.problem = f"{path.name} {error}."
    except (MemoryError, RecursionError, Exception) as error:
        nb.problem = f"{path.name} could not be read ({type(error).__name__})."
    return nb


def _parse(nb: Notebook, raw: bytes) -> None:
    name = nb.path.name
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        kind = type(error).__name__
        nb.problem = f"{name} is not a Jupyter notebook (unreadable JSON: {kind})."
        return
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        nb.problem = (
            f"{name} is not a Jupyter notebook of format 4 (no list of cells); "
            "open it in Jupyter and save it again."
        )
        return
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
            f"{name} holds no exercise of this course (no cell starting with a "
            "marker such as `# Exercise 4.1: compute_gae`)."
        )


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
