"""Find the submitted notebooks and cut the exercises out of them, without running
anything.

Who is the student? A notebook named on the command line, or lying directly in a
folder named on the command line, belongs to the student named by its file stem
(`submissions/alice.ipynb` -> alice). A notebook further down belongs to the student
named by the first folder below the one named on the command line
(`submissions/alice/04_gae.ipynb` and `submissions/alice/lab/03_clip.ipynb` -> alice).

Below the paths named, symbolic links are never followed and hidden entries are
skipped (and listed); only regular files are read, up to a size limit.

Reading one notebook (its import lines and exercise cells) is `ppo_lessons.cells`, on
the lessons' side: the student's helpers use it too and never import the grader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# a notebook is read as the lesson helpers read one (`ppo_lessons.cells`): the student's
# own `exercise_function` and the grader cut an exercise cell out alike
from ppo_lessons.cells import (
    MAX_NOTEBOOK_BYTES,
    Notebook,
    exercise_cell,
    read_bytes,
    read_notebook,
)

__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "Found",
    "Notebook",
    "exercise_cell",
    "find_notebooks",
    "read_bytes",
    "read_notebook",
]


@dataclass
class Found:
    """What `find_notebooks` found: (student, notebook) pairs, and what it skipped."""

    notebooks: list[tuple[str, Path]] = field(default_factory=list)
    # (student or "" when the entry belongs to nobody, what was skipped and why)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def find_notebooks(paths: list[Path]) -> Found:
    """(student, notebook) pairs for the files and folders named (see module doc).

    Below the paths named, symbolic links are never followed and hidden entries (a
    name starting with `.`) are skipped; every skipped entry is listed in
    `Found.skipped`. A notebook-named entry that is a link or a special file is
    listed as a notebook, for `read_notebook` to refuse with a message.
    """
    found = Found()
    for path in paths:
        if not path.is_dir():  # named by the instructor: a link to it is followed
            found.notebooks.append((path.stem, path.resolve()))
            continue
        stack = [(path, "")]
        while stack:
            folder, student = stack.pop()
            _scan(folder, path, student, stack, found)
    return found


def _scan(folder: Path, top: Path, student: str, stack: list, found: Found) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
    except OSError as error:
        found.skipped.append((student, f"{folder}: not readable ({error.strerror})"))
        return
    for entry in entries:
        path = Path(entry.path)
        rel = path.relative_to(top)
        owner = student or (path.stem if entry.name.endswith(".ipynb") else entry.name)
        try:
            is_link = entry.is_symlink()
            is_dir = not is_link and entry.is_dir(follow_symlinks=False)
        except OSError:
            is_link = is_dir = False
        if entry.name.startswith("."):
            if is_dir and entry.name == ".ipynb_checkpoints":
                found.skipped.append(("", f"{rel}/ (Jupyter's checkpoints)"))
            elif is_dir or entry.name.endswith(".ipynb"):
                kind = "folder" if is_dir else "notebook"
                found.skipped.append(
                    (owner, f"hidden {kind} {rel} skipped (its name starts with '.')")
                )
            continue
        if is_dir:
            stack.append((path, owner))
        elif entry.name.endswith(".ipynb"):
            found.notebooks.append((owner, path))
        elif is_link:
            found.skipped.append(
                (student, f"{rel} is a symbolic link; links are not followed")
            )
