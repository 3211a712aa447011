"""Copies of the solution notebooks with nbgrader's cell metadata."""

from __future__ import annotations

import json
from pathlib import Path

from ppo_lessons.exercises import EXERCISE_HEADER, EXERCISES
from ppo_lessons.grading.judge import UsageError


def nbgrader_export(
    solutions: Path, out: Path, lessons: list[int] | None = None
) -> list[Path]:
    """Copies of the solution notebooks with nbgrader cell metadata.

    The exercise cell becomes an nbgrader solution cell (its `### BEGIN SOLUTION` /
    `### END SOLUTION` block is what nbgrader replaces); the cell that calls the check
    becomes a locked autograder test cell worth the table's points, rewritten to
    `assert check_<function>(<function>)` because our checks return False (instead of
    failing) for an unsolved stub. With `lessons`, only those lessons' notebooks
    (by their `NN_` prefix) are written: one nbgrader assignment.
    """
    sources = sorted(solutions.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise UsageError(f"no solution notebooks (NN_name.ipynb) found in {solutions}")
    if lessons:
        sources = [s for s in sources if int(s.name[:2]) in lessons]
        if not sources:
            raise UsageError(
                f"no solution notebook of lesson {', '.join(map(str, lessons))} "
                f"in {solutions}"
            )
    by_number = {ex.number: ex for ex in EXERCISES}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        nb = json.loads(source.read_text())
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            text = cell["source"]
            text = "".join(text) if isinstance(text, list) else text
            first = text.split("\n", 1)[0].strip()
            match = EXERCISE_HEADER.match(first)
            meta = None
            if match and f"{match[1]}.{match[2]}" in by_number:
                ex = by_number[f"{match[1]}.{match[2]}"]
                meta = {"grade": False, "solution": True, "locked": False,
                        "grade_id": f"exercise-{ex.number.replace('.', '-')}"}  # fmt: skip
            else:
                for ex in EXERCISES:
                    call = f"{ex.check_name}({ex.function})"
                    lines = text.split("\n")
                    if call in (line.strip() for line in lines):
                        cell["source"] = "\n".join(
                            f"assert {line.strip()}" if line.strip() == call else line
                            for line in lines
                        )
                        meta = {"grade": True, "solution": False, "locked": True,
                                "points": ex.points,
                                "grade_id": f"check-{ex.number.replace('.', '-')}"}  # fmt: skip
                        break
            if meta is not None:
                cell.setdefault("metadata", {})["nbgrader"] = {
                    **meta,
                    "schema_version": 3,
                }
        target = out / source.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written
