"""Grade students' notebooks: run each exercise through its check, write the reports.

    python -m ppo_lessons.grade submissions/                  # a folder, searched
    python -m ppo_lessons.grade alice.ipynb bob/ --lesson 4   # files and folders
    python -m ppo_lessons.grade submissions/ --hidden hidden_cases.py --timeout 30
    python -m ppo_lessons.grade --nbgrader-export nbgrader/source/ppo

Each exercise cell (first line `# Exercise 4.1: compute_gae`) is cut out of the
notebook, preceded by the notebook's top-level import lines, and run in a process of
its own with limits on time, memory and output; the notebook as a whole is never run.
The check named in `ppo_lessons.exercises` judges it; points come from that table
only. See docs/INSTRUCTORS.md for the student-naming rule, hidden tests, the outputs
and what the isolation does and does not protect against.

Exit status: 0 when every submission was graded normally (right or wrong), 1 when
some were malformed or misbehaved (timeout, crash, sys.exit, ...), 2 for a bad command
line.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import importlib
import io
import json
import re
import runpy
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ppo_lessons import checks
from ppo_lessons.exercises import EXERCISE_HEADER, EXERCISES, Exercise
from ppo_lessons.grading.notebooks import (
    Notebook,
    exercise_cell,
    find_notebooks,
    read_notebook,
)
from ppo_lessons.grading.records import (
    MalformedRecords,
    Replayer,
    ReplayMismatch,
    recorded_exceptions,
    validate,
)
from ppo_lessons.grading.sandbox import ChildOutcome, run_child

__all__ = ["main", "grade", "load_hidden_cases", "nbgrader_export"]

ROOT = Path(__file__).resolve().parent.parent
NORMAL = {"correct", "wrong", "not_implemented", "not_submitted"}
_MEMORY_WORDS = re.compile(
    r"can't allocate memory|out of memory|not enough memory|bad_alloc|MemoryError",
    re.IGNORECASE,
)


@dataclass
class Result:
    """The grade of one exercise of one student."""

    student: str
    exercise: Exercise
    points: int
    status: str  # correct, wrong, not_implemented, not_submitted, or a problem
    message: str
    notebook: str = ""
    seconds: float | None = None


@dataclass
class Settings:
    timeout: float
    memory_mb: int
    hidden: dict[str, bytes]  # function -> torch.save'd list of cases
    jobs: int


class UsageError(Exception):
    """A bad command line or a broken instructor's file (exit status 2)."""


# ---------------------------------------------------------------------------
# Hidden test cases


def _serialize(cases: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(cases, buffer)
    return buffer.getvalue()


def load_hidden_cases(path: Path) -> dict[str, bytes]:
    """Read HIDDEN_CASES from an instructor's file; try them on the references.

    Returns, per function, the cases serialized once, so that the student's process
    and the replay get exactly the same inputs (even if the file draws random ones).
    """
    try:
        namespace = runpy.run_path(str(path))
    except Exception as error:
        raise UsageError(f"--hidden {path}: {type(error).__name__}: {error}") from None
    cases = namespace.get("HIDDEN_CASES")
    if not isinstance(cases, dict):
        raise UsageError(f"--hidden {path} must define a dict HIDDEN_CASES")
    by_name = {ex.function: ex for ex in EXERCISES}
    hidden = {}
    for function, items in cases.items():
        if function not in by_name:
            raise UsageError(
                f"--hidden {path}: {function!r} is not an exercise function; "
                f"known: {', '.join(sorted(by_name))}"
            )
        if not isinstance(items, list | tuple) or not all(
            isinstance(c, dict) for c in items
        ):
            raise UsageError(
                f"--hidden {path}: HIDDEN_CASES[{function!r}] must be a list of dicts "
                "(argument name -> value)"
            )
        try:
            blob = _serialize(list(items))
            torch.load(io.BytesIO(blob), weights_only=True)
        except Exception as error:
            raise UsageError(
                f"--hidden {path}: the cases of {function} must hold tensors and "
                f"numbers only ({type(error).__name__}: {error})"
            ) from None
        exercise = by_name[function]
        reference = getattr(importlib.import_module(exercise.module), function)
        check = getattr(checks, exercise.check_name)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                ok = check(reference, extra_cases=_cases(blob))
        except Exception as error:
            ok, why = False, f"{type(error).__name__}: {error}"
        else:
            why = "the check returned False"
        if not ok:
            raise UsageError(
                f"--hidden {path}: the cases of {function} fail with the reference "
                f"implementation ({why}); check the argument names and values."
            )
        hidden[function] = blob
    return hidden


def _cases(blob: bytes | None) -> list[dict]:
    return [] if blob is None else torch.load(io.BytesIO(blob), weights_only=True)


# ---------------------------------------------------------------------------
# Judging one exercise from what its process left behind


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _no_records(outcome: ChildOutcome, settings: Settings) -> tuple[str, str]:
    code = outcome.returncode or 0
    stderr = outcome.stderr_tail.strip()
    memory = f"ran out of memory (limit {settings.memory_mb} MB)"
    if code < 0 and -code == signal.SIGXCPU:
        return "timeout", (
            f"used more than {settings.timeout:g} s of CPU time (an infinite loop?)"
        )
    if _MEMORY_WORDS.search(stderr):
        return "memory", memory + "; the process died."
    if code < 0:
        return "crashed", (
            f"the process running your code crashed ({_signal_name(code)}); it may "
            f"have {memory}."
        )
    return "exit", (
        f"the code ended the process itself (exit status {code}, e.g. os._exit) "
        "before the check finished; never end the process in an exercise."
    )


def _from_status(records: dict, settings: Settings) -> tuple[str, str] | None:
    status, detail = records["status"], str(records.get("detail", ""))
    error_type = str(records.get("error_type", ""))
    if status == "done":
        return None
    if status == "exit":
        return "exit", (
            f"the code called sys.exit({detail}) (or raised SystemExit), which stops "
            "the grading; never call sys.exit in an exercise."
        )
    if status == "cell_error":
        if error_type == "MemoryError":
            return "memory", (
                f"ran out of memory (limit {settings.memory_mb} MB) while running "
                "the exercise cell."
            )
        return "cell_error", (
            "running the exercise cell (defining the function) raised an error; the "
            f"cell must run on its own, with the notebook's imports:\n{detail.strip()}"
        )
    if status == "no_function":
        return "renamed", (
            f"after running the cell, the exercise's name holds a {detail}, not a "
            "function."
        )
    if status == "stopped":
        return "exit", f"the code raised {error_type}, which stops the grading."
    return "not_replayable", "the submission's results could not be replayed."


def judge(exercise: Exercise, outcome: ChildOutcome, settings: Settings) -> Result:
    """Grade one exercise: replay its records to the (untouched) check."""

    def result(status: str, message: str) -> Result:
        points = exercise.points if status == "correct" else 0
        return Result("", exercise, points, status, message, seconds=outcome.seconds)

    if not outcome.ready:
        return result(
            "crashed",
            "the grader could not start a process for this exercise:\n"
            + outcome.stderr_tail[-1500:],
        )
    if outcome.timed_out:
        return result(
            "timeout", f"took longer than {settings.timeout:g} s (an infinite loop?)"
        )
    if outcome.records_too_large:
        return result("crashed", "the check's calls produced more than 64 MB of data.")
    if not outcome.data:
        return result(*_no_records(outcome, settings))
    try:
        records = validate(torch.load(io.BytesIO(outcome.data), weights_only=True))
    except (MalformedRecords, Exception):
        return result(
            "not_replayable",
            "the submission's results could not be replayed (its process wrote "
            "something the grader cannot read).",
        )
    verdict = _from_status(records, settings)
    if verdict is not None:
        return result(*verdict)
    status, message = _replay(exercise, records, settings)
    if status == "wrong":
        raised = [e["name"] + ": " + e["message"] for e in recorded_exceptions(records)]
        if any(_MEMORY_WORDS.search(text) for text in raised):
            status = "memory"
            message = f"ran out of memory (limit {settings.memory_mb} MB).\n" + message
    if status != "correct" and records["import_failures"]:
        message += "\n(note: these imports of your notebook failed in the grader: "
        message += "; ".join(records["import_failures"]) + ")"
    return result(status, message)


def _replay(exercise: Exercise, records: dict, settings: Settings) -> tuple[str, str]:
    check: Callable = getattr(checks, exercise.check_name)
    replayer = Replayer(records["calls"])
    extra = _cases(settings.hidden.get(exercise.function))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            # the checks draw from their own seeded generators; seeding the global
            # one too keeps a check that forgot to do so replayable
            torch.manual_seed(0)
            ok = check(replayer, extra_cases=extra)
    except ReplayMismatch:
        if replayer.stopped is not None:
            name = replayer.stopped["name"]
            if name == "SystemExit":
                return "exit", (
                    f"the code called sys.exit({replayer.stopped['message']}), which "
                    "stops the grading; never call sys.exit in an exercise."
                )
            return "exit", f"the code raised {name}, which stops the grading."
        return "not_replayable", "the submission's results could not be replayed."
    except AssertionError as error:
        return "wrong", str(error)
    except Exception as error:  # the check tripped over what the function returned
        return "wrong", (
            "the check could not use what your function returned: "
            f"{type(error).__name__}: {error}"
        )
    if ok:
        return "correct", "correct."
    return "not_implemented", (
        "not implemented yet (the function still raises NotImplementedError)."
    )


# ---------------------------------------------------------------------------
# The whole class


def _job(nb: Notebook, exercise: Exercise, source: str, settings: Settings) -> dict:
    hidden = settings.hidden.get(exercise.function)
    return {
        "imports": nb.imports,
        "cell": source,
        "filename": f"<Exercise {exercise.number}>",
        "function": exercise.function,
        "check": exercise.check_name,
        "hidden": base64.b64encode(hidden).decode() if hidden else "",
    }


def _lesson_notebooks(
    notebooks: list[Notebook], lesson: int, graded: set[int]
) -> tuple[Notebook | None, str, str]:
    """A student's notebook for `lesson`: (notebook, status, message)."""
    mine = [nb for nb in notebooks if lesson in nb.lessons]
    if mine:
        return mine[0], "", ""
    broken = [nb.problem for nb in notebooks if nb.problem]
    if broken:
        return None, "malformed", " ".join(broken)
    other = sorted({lesson for nb in notebooks for lesson in nb.lessons} - graded)
    if other:
        names = ", ".join(nb.path.name for nb in notebooks)
        return (
            None,
            "wrong_lesson",
            (
                f"no notebook of lesson {lesson} found; {names} is a notebook of lesson "
                f"{', '.join(map(str, other))}."
            ),
        )
    return None, "not_submitted", f"no notebook of lesson {lesson} submitted."


def grade(
    paths: list[Path], lessons: list[int] | None, settings: Settings, log=print
) -> tuple[list[Result], dict[str, list[str]]]:
    """Grade every notebook found under `paths`.

    Returns the results (one per student and exercise) and each student's
    notebook-level problems.
    """
    by_student: dict[str, list[Notebook]] = {}
    for student, path in find_notebooks(paths):
        by_student.setdefault(student, []).append(read_notebook(path, student))
    found = {
        lesson for nbs in by_student.values() for nb in nbs for lesson in nb.lessons
    }
    graded = set(lessons) if lessons else found & {ex.lesson for ex in EXERCISES}
    exercises = [ex for ex in EXERCISES if ex.lesson in graded]
    problems: dict[str, list[str]] = {s: [] for s in by_student}
    results: list[Result] = []
    pending: list[tuple[Result, dict]] = []
    for student, notebooks in sorted(by_student.items()):
        for nb in notebooks:
            if nb.problem:
                problems[student].append(nb.problem)
        for lesson in sorted(graded):
            nb, status, message = _lesson_notebooks(notebooks, lesson, graded)
            several = [n.path.name for n in notebooks if lesson in n.lessons]
            if len(several) > 1:
                problems[student].append(
                    f"several notebooks of lesson {lesson} ({', '.join(several)}); "
                    f"graded {several[0]}."
                )
            for exercise in (ex for ex in exercises if ex.lesson == lesson):
                if nb is None:
                    results.append(Result(student, exercise, 0, status, message))
                    continue
                source, why = exercise_cell(nb, exercise)
                shown = nb.path.name
                if source is None:
                    kind = (
                        "missing_exercise" if "has no cell" in why else "syntax_error"
                    )
                    kind = "renamed" if "does not define" in why else kind
                    results.append(Result(student, exercise, 0, kind, why, shown))
                    continue
                placeholder = Result(student, exercise, 0, "", "", shown)
                pending.append((placeholder, _job(nb, exercise, source, settings)))
                results.append(placeholder)

    def run(item: tuple[Result, dict]) -> ChildOutcome:
        placeholder, job = item
        outcome = run_child(job, timeout=settings.timeout, memory_mb=settings.memory_mb)
        log(f"ran {placeholder.student}: Exercise {placeholder.exercise.number}")
        return outcome

    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        outcomes = list(pool.map(run, pending))
    for (placeholder, _), outcome in zip(pending, outcomes, strict=True):
        judged = judge(placeholder.exercise, outcome, settings)
        placeholder.points, placeholder.status = judged.points, judged.status
        placeholder.message, placeholder.seconds = judged.message, judged.seconds
    return results, problems


# ---------------------------------------------------------------------------
# Reports


def _safe_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"


def _column(exercise: Exercise) -> str:
    return f"{exercise.number} {exercise.function}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_reports(
    results: list[Result], problems: dict[str, list[str]], out: Path
) -> None:
    """results.csv (one row per exercise), summary.csv / summary.md (one row per
    student), feedback/<student>.md (the report to return to each student)."""
    out.mkdir(parents=True, exist_ok=True)
    feedback = out / "feedback"
    feedback.mkdir(exist_ok=True)
    for old in feedback.glob("*.md"):
        old.unlink()
    exercises = sorted({r.exercise for r in results}, key=lambda ex: ex.number)
    students = sorted({r.student for r in results} | set(problems))
    rows = {
        s: {r.exercise.number: r for r in results if r.student == s} for s in students
    }
    max_points = sum(ex.points for ex in exercises)

    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["student", "exercise", "function", "points", "max_points", "status",
             "notebook", "seconds", "message"]
        )  # fmt: skip
        for r in sorted(results, key=lambda r: (r.student, r.exercise.number)):
            seconds = "" if r.seconds is None else f"{r.seconds:.2f}"
            writer.writerow(
                [r.student, r.exercise.number, r.exercise.function, r.points,
                 r.exercise.points, r.status, r.notebook, seconds, r.message]
            )  # fmt: skip

    def total(s: str) -> int:
        return sum(r.points for r in rows[s].values())

    def issues(s: str) -> list[str]:
        found = list(problems.get(s, []))
        found += [
            f"{r.exercise.number}: {r.status}"
            for r in rows[s].values()
            if r.status not in NORMAL
        ]
        return found

    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["student", *map(_column, exercises), "total", "max_points", "problems"]
        )
        for s in students:
            points = [rows[s][ex.number].points if ex.number in rows[s] else 0
                      for ex in exercises]  # fmt: skip
            writer.writerow([s, *points, total(s), max_points, "; ".join(issues(s))])

    lines = [
        "# Class summary",
        "",
        f"{len(students)} students, {len(exercises)} exercises, "
        f"{max_points} points in all.",
        "",
        "| Student | " + " | ".join(map(_column, exercises)) + " | Total | Problems |",
        "|---" * (len(exercises) + 3) + "|",
    ]
    for s in students:
        cells = [
            f"{rows[s][ex.number].points}/{ex.points}" if ex.number in rows[s] else "-"
            for ex in exercises
        ]
        lines.append(
            f"| {_md_cell(s)} | " + " | ".join(cells)
            + f" | {total(s)}/{max_points} | {_md_cell('; '.join(issues(s)))} |"
        )  # fmt: skip
    lines += ["", "## Per exercise", "", "| Exercise | Correct | Mean points |",
              "|---|---|---|"]  # fmt: skip
    for ex in exercises:
        got = [rows[s][ex.number] for s in students if ex.number in rows[s]]
        correct = sum(r.status == "correct" for r in got)
        mean = sum(r.points for r in got) / max(len(got), 1)
        lines.append(
            f"| {_column(ex)} | {correct}/{len(got)} | {mean:.2f}/{ex.points} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")

    for s in students:
        _write_feedback(s, rows[s], problems.get(s, []), exercises, feedback)


def _write_feedback(
    student: str,
    rows: dict[str, Result],
    problems: list[str],
    exercises: list[Exercise],
    folder: Path,
) -> None:
    max_points = sum(ex.points for ex in exercises)
    total = sum(r.points for r in rows.values())
    lines = [f"# Feedback for {student}", "", f"**Score: {total} / {max_points}**", ""]
    if problems:
        lines += ["Problems with the submission:", ""]
        lines += [f"- {p}" for p in problems] + [""]
    lines += ["| Exercise | Function | Points | Result |", "|---|---|---|---|"]
    for ex in exercises:
        r = rows.get(ex.number)
        status = r.status.replace("_", " ") if r else "not graded"
        points = r.points if r else 0
        lines.append(
            f"| {ex.number} | `{ex.function}` | {points} / {ex.points} | {status} |"
        )
    for ex in exercises:
        r = rows.get(ex.number)
        if r is None or r.status == "correct":
            continue
        lines += ["", f"## Exercise {ex.number}: `{ex.function}` ({r.points} / "
                  f"{ex.points})", "", "```text", r.message.replace("```", "'''"),
                  "```"]  # fmt: skip
    (folder / f"{_safe_name(student)}.md").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# nbgrader


def nbgrader_export(solutions: Path, out: Path) -> list[Path]:
    """Copies of the solution notebooks with nbgrader cell metadata.

    The exercise cell becomes an nbgrader solution cell (its `### BEGIN SOLUTION` /
    `### END SOLUTION` block is what nbgrader replaces); the cell that calls the check
    becomes a locked autograder test cell worth the table's points, rewritten to
    `assert check_<function>(<function>)` because our checks return False (instead of
    failing) for an unsolved stub.
    """
    sources = sorted(solutions.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise UsageError(f"no solution notebooks (NN_name.ipynb) found in {solutions}")
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


# ---------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ppo_lessons.grade",
        description="Grade students' notebooks (see docs/INSTRUCTORS.md).",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="a submitted notebook, or a folder of them (searched recursively)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("grading-output"),
        help="folder for the reports (default: grading-output/)",
    )
    parser.add_argument(
        "--lesson",
        type=int,
        action="append",
        metavar="N",
        help="grade lesson N only (repeat for several); default: every lesson found",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="time limit per exercise (default: 60)",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=2048,
        metavar="MB",
        help="memory per exercise, on top of Python and PyTorch (default: 2048)",
    )
    parser.add_argument(
        "--hidden",
        type=Path,
        metavar="FILE.py",
        help="instructor's file defining HIDDEN_CASES = {function: [{arg: value}]}",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="exercises graded at the same time (default: 2)",
    )
    parser.add_argument(
        "--nbgrader-export",
        type=Path,
        metavar="DIR",
        help="write the solution notebooks with nbgrader metadata to DIR and stop",
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=ROOT / "solutions",
        help="solution notebooks for --nbgrader-export (default: solutions/)",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    if not args.paths:
        raise UsageError("name at least one notebook or folder to grade")
    for path in args.paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist")
    lessons = {ex.lesson for ex in EXERCISES}
    for lesson in args.lesson or []:
        if lesson not in lessons:
            raise UsageError(
                f"--lesson {lesson}: no graded exercises; lessons with exercises: "
                f"{', '.join(map(str, sorted(lessons)))}"
            )
    if not 0 < args.timeout <= 24 * 3600:
        raise UsageError(
            f"--timeout must be a positive number of seconds, got {args.timeout}"
        )
    if args.memory_mb < 64:
        raise UsageError(f"--memory-mb must be at least 64, got {args.memory_mb}")
    if not 1 <= args.jobs <= 64:
        raise UsageError(f"--jobs must be between 1 and 64, got {args.jobs}")
    hidden = {}
    if args.hidden is not None:
        if not args.hidden.is_file():
            raise UsageError(f"--hidden {args.hidden} is not a file")
        hidden = load_hidden_cases(args.hidden)
    return Settings(args.timeout, args.memory_mb, hidden, args.jobs)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits with status 2 on a bad option
    try:
        if args.nbgrader_export is not None:
            for path in nbgrader_export(args.solutions, args.nbgrader_export):
                print(f"wrote {path}")
            return 0
        settings = _settings(args)
        results, problems = grade(
            args.paths, args.lesson, settings, log=lambda s: print(s, file=sys.stderr)
        )
        if not results and not any(problems.values()):
            raise UsageError("no notebooks (*.ipynb) found in the paths given")
        write_reports(results, problems, args.out)
    except UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # never a traceback in the instructor's face
        print(f"grading failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    _print_summary(results, problems, args.out)
    bad = any(problems.values()) or any(r.status not in NORMAL for r in results)
    return 1 if bad else 0


def _print_summary(
    results: list[Result], problems: dict[str, list[str]], out: Path
) -> None:
    students = sorted({r.student for r in results} | set(problems))
    for s in students:
        mine = [r for r in results if r.student == s]
        got, top = sum(r.points for r in mine), sum(r.exercise.points for r in mine)
        flags = [
            f"{r.exercise.number} {r.status}" for r in mine if r.status not in NORMAL
        ]
        flags += problems.get(s, [])[:1]
        print(f"{s}: {got}/{top}" + (f"  ({'; '.join(flags)})" if flags else ""))
    print(f"reports in {out}/ (summary.md, summary.csv, results.csv, feedback/)")


if __name__ == "__main__":
    raise SystemExit(main())
