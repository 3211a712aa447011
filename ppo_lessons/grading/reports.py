"""The reports: results.csv, summary.csv, summary.md and one feedback file per
student.

results.csv grows as results come in (`ResultsLog`), so that a grader that is killed
leaves what it had graded; a later run can keep those results (`read_results`) and
grade only the rest. At the end every report, results.csv included, is written again
from the grader's memory, each file replaced at once (written beside it, then
renamed), after every process a submission started was killed.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

from ppo_lessons.exercises import EXERCISES, Exercise
from ppo_lessons.grading.judge import NORMAL, Result
from ppo_lessons.grading.names import feedback_names, printable

RESULTS_HEADER = ["student", "exercise", "function", "points", "max_points",
                  "status", "notebook", "seconds", "message"]  # fmt: skip
REGRADED = {"not_graded", "package_changed"}  # statuses a resumed run grades again
BY_HAND = "by_hand"  # the grader's check gave no verdict: the instructor grades it
PENDING = "pending"  # the points of an exercise to grade by hand, in every report
# names come from file names, which may hold bytes that are not UTF-8
TEXT = {"encoding": "utf-8", "errors": "backslashreplace"}


def _column(exercise: Exercise) -> str:
    return f"{exercise.number} {exercise.function}"


def _md_cell(text: str) -> str:
    return printable(text.replace("\n", " ")).replace("|", "\\|")


def _points(r: Result) -> int | str:
    """The points of a result as the reports show them: "pending" where the
    exercise is to be graded by hand (never a 0 the student did not earn)."""
    return PENDING if r.status == BY_HAND else r.points


def _pending(results) -> list[Result]:
    return [r for r in results if r.status == BY_HAND]


def _row(r: Result) -> list:
    seconds = "" if r.seconds is None else f"{r.seconds:.2f}"
    return [r.student, r.exercise.number, r.exercise.function, _points(r),
            r.exercise.points, r.status, r.notebook, seconds, r.message]  # fmt: skip


def _write_text(path: Path, text: str) -> None:
    """Replace `path` at once: write a file beside it, then rename it over it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with open(fd, "w", newline="", **TEXT) as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _csv_text(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def read_results(path: Path) -> list[Result]:
    """The results an earlier run wrote to results.csv (rows cut short by a killed
    grader, of unknown exercises, or to be graded again are left out)."""
    by_number = {ex.number: ex for ex in EXERCISES}
    kept = []
    with open(path, newline="", **TEXT) as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != RESULTS_HEADER:
        raise ValueError(f"{path} is not a results.csv written by this grader")
    for row in rows[1:]:
        if len(row) != len(RESULTS_HEADER) or row[1] not in by_number:
            continue
        student, number, _, points, _, status, notebook, seconds, message = row
        if status == BY_HAND and points == PENDING:
            points = "0"
        if status in REGRADED or not points.isdigit():
            continue
        exercise = by_number[number]
        kept.append(Result(student, exercise, min(int(points), exercise.points),
                           status, message, notebook,
                           float(seconds) if seconds else None))  # fmt: skip
    return kept


class ResultsLog:
    """results.csv, written row by row as results come in."""

    def __init__(self, path: Path, kept: list[Result]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_text(path, _csv_text([RESULTS_HEADER, *map(_row, kept)]))
        self.file = open(path, "a", newline="", **TEXT)  # noqa: SIM115
        self.writer = csv.writer(self.file)

    def add(self, result: Result) -> None:
        if result.status not in REGRADED:
            self.writer.writerow(_row(result))
            self.file.flush()

    def close(self) -> None:
        self.file.close()


def write_reports(
    results: list[Result],
    problems: dict[str, list[str]],
    out: Path,
    *,
    isolation: str = "",
    skipped: list[str] | None = None,
    stopped: str = "",
) -> None:
    """results.csv (one row per exercise), summary.csv / summary.md (one row per
    student), feedback/<student>.md (the report to return to each student)."""
    out.mkdir(parents=True, exist_ok=True)
    feedback = out / "feedback"
    if feedback.is_symlink():
        feedback.unlink()
    feedback.mkdir(exist_ok=True)
    for old in feedback.glob("*.md"):
        old.unlink()
    exercises = sorted({r.exercise for r in results}, key=lambda ex: ex.number)
    students = sorted({r.student for r in results} | set(problems))
    rows = {
        s: {r.exercise.number: r for r in results if r.student == s} for s in students
    }
    files = feedback_names(students)
    ordered = sorted(results, key=lambda r: (r.student, r.exercise.number))
    _write_text(out / "results.csv", _csv_text([RESULTS_HEADER, *map(_row, ordered)]))
    table = _summary_table(rows, problems, exercises)
    summary = [
        [
            "student",
            *map(_column, exercises),
            "total",
            "max_points",
            "problems",
            "feedback",
        ]  # fmt: skip
    ]
    summary += [[*row, f"feedback/{files[row[0]]}"] for row in table]
    _write_text(out / "summary.csv", _csv_text(summary))
    lines = _summary_md(table, exercises, rows, isolation, skipped or [], stopped)
    _write_text(out / "summary.md", "\n".join(lines) + "\n")
    for s in students:
        _write_feedback(s, rows[s], problems.get(s, []), exercises, feedback / files[s])


def _summary_table(
    rows: dict[str, dict[str, Result]],
    problems: dict[str, list[str]],
    exercises: list[Exercise],
) -> list[list]:
    """Per student: name, points per exercise, total, max points, problems."""
    max_points = sum(ex.points for ex in exercises)
    table = []
    for s, mine in rows.items():
        issues = list(problems.get(s, []))
        issues += [f"{r.exercise.number}: {r.status}"
                   for r in mine.values() if r.status not in NORMAL]  # fmt: skip
        issues += [f"{r.exercise.number}: grade by hand ({r.exercise.points} points "
                   "pending)" for r in _pending(mine.values())]  # fmt: skip
        points = [_points(mine[ex.number]) if ex.number in mine else 0
                  for ex in exercises]  # fmt: skip
        total = sum(r.points for r in mine.values())
        table.append([s, *points, total, max_points, "; ".join(issues)])
    return table


def _summary_md(
    table: list[list],
    exercises: list[Exercise],
    rows: dict[str, dict[str, Result]],
    isolation: str,
    skipped: list[str],
    stopped: str,
) -> list[str]:
    max_points = sum(ex.points for ex in exercises)
    lines = ["# Class summary", ""]
    if stopped:
        lines += [f"**The run stopped before the end:** {printable(stopped)}", ""]
    lines += [
        f"{len(table)} students, {len(exercises)} exercises, "
        f"{max_points} points in all.",
        "",
        f"Isolation: {isolation or 'not recorded'}.",
        "",
        "| Student | " + " | ".join(map(_column, exercises)) + " | Total | Problems |",
        "|---" * (len(exercises) + 3) + "|",
    ]
    for s, *points, total, _, issues in table:
        cells = [
            f"{p}/{ex.points}" if ex.number in rows[s] else "-"
            for p, ex in zip(points, exercises, strict=True)
        ]
        pending = sum(r.exercise.points for r in _pending(rows[s].values()))
        more = f" (+{pending} pending)" if pending else ""
        lines.append(
            f"| {_md_cell(s)} | " + " | ".join(cells)
            + f" | {total}/{max_points}{more} | {_md_cell(issues)} |"
        )  # fmt: skip
    lines += ["", "## Per exercise", "", "| Exercise | Correct | Mean points |",
              "|---|---|---|"]  # fmt: skip
    for ex in exercises:
        got = [mine[ex.number] for mine in rows.values() if ex.number in mine]
        graded = [r for r in got if r.status != BY_HAND]
        correct = sum(r.status == "correct" for r in graded)
        mean = sum(r.points for r in graded) / max(len(graded), 1)
        hand = len(got) - len(graded)
        lines.append(
            f"| {_column(ex)} | {correct}/{len(graded)} | {mean:.2f}/{ex.points}"
            + (f" ({hand} to grade by hand)" if hand else "") + " |"
        )  # fmt: skip
    hand = sorted(
        (r for mine in rows.values() for r in _pending(mine.values())),
        key=lambda r: (r.student, r.exercise.number),
    )
    if hand:
        lines += ["", "## To grade by hand", "",
                  "The grader's check could not be given what these functions "
                  "returned, so it gave no verdict: read each one and give its "
                  "points (pending in the tables above).", ""]  # fmt: skip
        lines += [f"- {_md_cell(r.student)}, Exercise {r.exercise.number} "
                  f"`{r.exercise.function}` ({r.exercise.points} points): "
                  f"{_md_cell(r.message.split(' The grader')[0])}"
                  for r in hand]  # fmt: skip
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {printable(s)}" for s in skipped]
    return lines


def _write_feedback(
    student: str,
    rows: dict[str, Result],
    problems: list[str],
    exercises: list[Exercise],
    path: Path,
) -> None:
    max_points = sum(ex.points for ex in exercises)
    total = sum(r.points for r in rows.values())
    pending = sum(r.exercise.points for r in _pending(rows.values()))
    more = (
        f" ({pending} points pending: graded by hand by your instructor)"
        if pending
        else ""
    )
    lines = [
        f"# Feedback for {printable(student)}",
        "",
        f"**Score: {total} / {max_points}**{more}",
        "",
    ]
    if problems:
        lines += ["Problems with the submission:", ""]
        lines += [f"- {printable(p)}" for p in problems] + [""]
    lines += ["| Exercise | Function | Points | Result |", "|---|---|---|---|"]
    for ex in exercises:
        r = rows.get(ex.number)
        status = r.status.replace("_", " ") if r else "not graded"
        if r and r.status == BY_HAND:
            status = "grade by hand"
        points = _points(r) if r else 0
        lines.append(
            f"| {ex.number} | `{ex.function}` | {points} / {ex.points} | {status} |"
        )
    for ex in exercises:
        r = rows.get(ex.number)
        if r is None or r.status == "correct":
            continue
        lines += ["", f"## Exercise {ex.number}: `{ex.function}` ({_points(r)} / "
                  f"{ex.points})", "", "```text", r.message.replace("```", "'''"),
                  "```"]  # fmt: skip
    _write_text(path, "\n".join(lines) + "\n")
