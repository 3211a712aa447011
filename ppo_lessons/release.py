"""Generate the student notebooks from the solution notebooks.

    python -m ppo_lessons.release            # solutions/*.ipynb -> notebooks/*.ipynb
    python -m ppo_lessons.release --check    # exit 1 if a student notebook is out of date
    python -m ppo_lessons.release --out release/   # a copy to hand out to a class

The solution notebooks are the source. In each code cell, the code between
`### BEGIN SOLUTION` and `### END SOLUTION` is replaced by a stub that raises
`NotImplementedError` (hint comments written just before the block stay); outputs and
execution counts are dropped, and `# NBVAL_CHECK_OUTPUT` markers are removed (a
student notebook has no stored outputs to compare against).

The solutions themselves lose only the widget state an executed notebook stores
(`metadata.widgets`), which a static page would draw from a script on the internet
instead of showing the explorers' pictures.

A student notebook that was edited after it was generated (a student's work) is never
overwritten silently: the command stops and names it; `--force` overwrites after
saving a backup copy next to it.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import nbformat

from ppo_lessons.exercises import BEGIN_SOLUTION, END_SOLUTION, EXERCISE_HEADER

__all__ = ["drop_widget_state", "release", "student_notebook", "student_source"]

ROOT = Path(__file__).resolve().parent.parent
NBVAL_MARKERS = ("# NBVAL_CHECK_OUTPUT", "# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")
METADATA_KEY = "ppo_lessons"


def student_source(source: str, exercise: str = "this exercise") -> str:
    """Replace every solution block of one code cell's source by a stub."""
    lines = source.split("\n")
    out: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"nested {BEGIN_SOLUTION} in {exercise}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(
                f'{indent}raise NotImplementedError("{exercise}: not written yet")'
            )
        elif stripped == END_SOLUTION:
            if not inside:
                raise ValueError(
                    f"{END_SOLUTION} without {BEGIN_SOLUTION} in {exercise}"
                )
            inside = False
        elif not inside and stripped not in NBVAL_MARKERS:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN_SOLUTION} without {END_SOLUTION} in {exercise}")
    return "\n".join(out)


def _cells_digest(nb: nbformat.NotebookNode) -> str:
    sources = [[cell.cell_type, cell.source] for cell in nb.cells]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new object)."""
    nb = copy.deepcopy(solution)
    for cell in nb.cells:  # cell ids stay those of the solution: stable diffs
        if cell.cell_type != "code":
            continue
        first = cell.source.split("\n", 1)[0]
        match = EXERCISE_HEADER.match(first)
        name = f"Exercise {match[1]}.{match[2]}" if match else "this exercise"
        cell.source = student_source(cell.source, name)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    drop_widget_state(nb)
    nb.metadata[METADATA_KEY] = {"student_digest": _cells_digest(nb)}
    return nb


def drop_widget_state(nb: nbformat.NotebookNode) -> bool:
    """Remove the widget state a notebook run stores (`metadata.widgets`); True if
    there was some. A static page (GitHub, nbviewer, an HTML export) given that state
    draws the widgets with a script from the internet instead of showing the pictures
    the explorers leave beside them (`ppo_lessons.widgets.static`)."""
    return nb.metadata.pop("widgets", None) is not None


def _dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def _is_untouched(path: Path) -> bool:
    """True if `path` still holds exactly what the generator wrote (no student work)."""
    existing = nbformat.read(path, as_version=4)
    digest = existing.metadata.get(METADATA_KEY, {}).get("student_digest")
    return digest == _cells_digest(existing) and not any(
        cell.get("outputs") for cell in existing.cells
    )


def release(
    solutions: Path, out: Path, check: bool = False, force: bool = False
) -> list[str]:
    """Write (or with `check`, compare) the student version of each solution notebook.

    Returns a list of problems (out-of-date files for `check`, refused overwrites
    otherwise); empty when everything is in order.
    """
    problems: list[str] = []
    sources = sorted(solutions.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        return [f"no solution notebooks (NN_name.ipynb) found in {solutions}"]
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        solution = nbformat.read(source, as_version=4)
        if not check and drop_widget_state(solution):
            source.write_text(_dumps(solution))
            print(f"removed the stored widget state from {source}")
        text = _dumps(student_notebook(solution))
        target = out / source.name
        current = target.read_text() if target.exists() else None
        if current == text:
            continue
        if check:
            problems.append(f"{target} is out of date with {source}")
            continue
        if current is not None and not _is_untouched(target):
            if not force:
                problems.append(
                    f"{target} was edited since it was generated (student work?); "
                    "not overwritten. Use --force to overwrite it after a backup copy."
                )
                continue
            backup = target.with_suffix(f".ipynb.bak-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.copy2(target, backup)
            print(f"saved a backup of {target} as {backup}")
        target.write_text(text)
        print(f"wrote {target}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ppo_lessons.release", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=ROOT / "solutions",
        help="folder of solution notebooks (default: solutions/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "notebooks",
        help="folder for the student notebooks (default: notebooks/)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report out-of-date student notebooks (exit 1 if any)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite edited student notebooks (after a backup copy)",
    )
    args = parser.parse_args(argv)
    if not args.solutions.is_dir():
        parser.error(f"--solutions {args.solutions} is not a folder")
    problems = release(args.solutions, args.out, check=args.check, force=args.force)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
