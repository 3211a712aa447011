"""The command line of `python -m ppo_lessons.grade`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ppo_lessons.exercises import EXERCISES
from ppo_lessons.grading.classroom import Graded, grade_class
from ppo_lessons.grading.export import nbgrader_export
from ppo_lessons.grading.judge import (
    NORMAL,
    Result,
    Settings,
    UsageError,
    load_hidden_cases,
)
from ppo_lessons.grading.names import printable
from ppo_lessons.grading.reports import ResultsLog, read_results, write_reports
from ppo_lessons.grading.sandbox import ISOLATIONS, resolve_isolation

ROOT = Path(__file__).resolve().parent.parent.parent


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
        "--isolation",
        choices=ISOLATIONS,
        default="auto",
        help="how each exercise is isolated: 'sandbox' (bubblewrap; an error where "
        "it cannot run), 'process' (no sandbox), or 'auto' (the sandbox where "
        "bubblewrap runs; default). See docs/INSTRUCTORS.md",
    )
    _add_run_options(parser)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options about an earlier run's reports and about the nbgrader export."""
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="keep the results in OUT/results.csv of an earlier run and grade only "
        "the rest",
    )
    again.add_argument(
        "--start-over",
        action="store_true",
        help="grade everything again, replacing the reports of an earlier run in OUT",
    )
    parser.add_argument(
        "--nbgrader-export",
        type=Path,
        metavar="DIR",
        help="write the solution notebooks with nbgrader metadata to DIR and stop "
        "(those of the --lesson options only, if given)",
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=ROOT / "solutions",
        help="solution notebooks for --nbgrader-export (default: solutions/)",
    )


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
    return Settings(args.timeout, args.memory_mb, hidden, args.jobs, args.isolation)


def _earlier_results(args: argparse.Namespace, log) -> list[Result]:
    """The results of an earlier run into the same --out to keep; asks (exit 2)
    before replacing any."""
    path = args.out / "results.csv"
    if args.start_over or not path.exists():
        return []
    try:
        kept = read_results(path)
    except (OSError, ValueError) as error:
        if args.resume:
            raise UsageError(f"--resume: {error}") from None
        raise UsageError(
            f"{path} exists and cannot be read as this grader's results ({error}); "
            "pass --start-over to replace it, or choose another --out"
        ) from None
    if args.resume or not kept:
        if kept:
            log(f"resuming: {len(kept)} results kept from {path}")
        return kept
    summary = args.out / "summary.csv"
    finished = summary.exists() and summary.stat().st_mtime >= path.stat().st_mtime
    how = "which finished" if finished else "which did not finish"
    raise UsageError(
        f"{path} holds {len(kept)} results of an earlier run ({how}); pass --resume "
        "to keep them and grade only the rest, or --start-over to grade everything "
        "again"
    )


def _stop_on_sigterm() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits with status 2 on a bad option

    def log(line: str) -> None:  # one write per line: threads log at once
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    try:
        if args.nbgrader_export is not None:
            export = nbgrader_export(args.solutions, args.nbgrader_export, args.lesson)
            for path in export:
                print(f"wrote {path}")
            return 0
        settings = _settings(args)
        kept = _earlier_results(args, log)
        _stop_on_sigterm()
        graded = _grade(args, settings, kept, log)
    except UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: the results so far are in {args.out}/results.csv; run the "
            "same command with --resume to grade the rest",
            file=sys.stderr,
        )
        return 130
    except Exception as error:  # never a traceback in the instructor's face
        print(f"grading failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    _print_summary(graded, args.out)
    bad = any(graded.problems.values()) or graded.stopped
    bad = bad or any(r.status not in NORMAL for r in graded.results)
    return 1 if bad else 0


def _grade(
    args: argparse.Namespace, settings: Settings, kept: list[Result], log
) -> Graded:
    try:
        settings.isolation, isolation = resolve_isolation(settings.isolation)
    except ValueError as error:
        raise UsageError(str(error)) from None
    log(f"isolation: {isolation}")
    results_log = ResultsLog(args.out / "results.csv", kept)
    try:
        graded = grade_class(
            args.paths,
            args.lesson,
            settings,
            log=log,
            done=kept,
            on_result=results_log.add,
        )
    finally:
        results_log.close()
    graded.isolation = isolation
    if not graded.results and not any(graded.problems.values()):
        raise UsageError("no notebooks (*.ipynb) found in the paths given")
    write_reports(
        graded.results,
        graded.problems,
        args.out,
        isolation=isolation,
        skipped=graded.skipped,
        stopped=graded.stopped,
    )
    return graded


def _print_summary(graded: Graded, out: Path) -> None:
    results, problems = graded.results, graded.problems
    students = sorted({r.student for r in results} | set(problems))
    for s in students:
        mine = [r for r in results if r.student == s]
        got, top = sum(r.points for r in mine), sum(r.exercise.points for r in mine)
        flags = [
            f"{r.exercise.number} {r.status}" for r in mine if r.status not in NORMAL
        ]
        flags += problems.get(s, [])[:1]
        line = f"{s}: {got}/{top}" + (f"  ({'; '.join(flags)})" if flags else "")
        print(printable(line))
    for entry in graded.skipped:
        print(printable(f"skipped: {entry}"))
    print(f"isolation: {graded.isolation}")
    if graded.stopped:
        print(printable(f"STOPPED: {graded.stopped}"))
    print(f"reports in {out}/ (summary.md, summary.csv, results.csv, feedback/)")
