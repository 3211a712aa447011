"""Grade a whole class: find the notebooks, run each exercise, judge it.

While the exercises run, the grader (see `ppo_lessons.grading.guard`) is the
subreaper of whatever they start and kills what they leave behind, checks the course
package's files after each exercise (a change stops the run), and retries, one at a
time, each exercise whose process died before it started or was killed by a signal
it did not send itself (another submission may have killed it).
"""

from __future__ import annotations

import base64
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ppo_lessons.exercises import EXERCISES, Exercise
from ppo_lessons.grading.guard import Leftovers, PackageGuard
from ppo_lessons.grading.judge import Result, Settings, UsageError, judge
from ppo_lessons.grading.names import printable
from ppo_lessons.grading.notebooks import (
    Notebook,
    exercise_cell,
    find_notebooks,
    read_notebook,
)
from ppo_lessons.grading.sandbox import (
    PROCESS,
    ChildOutcome,
    resolve_isolation,
    run_child,
)

Log = Callable[[str], None]


@dataclass
class Graded:
    """What grading a class produced."""

    results: list[Result]  # one per student and exercise
    problems: dict[str, list[str]]  # per student, notebook-level problems
    skipped: list[str] = field(default_factory=list)  # entries of nobody, skipped
    isolation: str = ""  # a sentence: which isolation was in effect
    stopped: str = ""  # why the run stopped before the end; "" when it did not


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
    mine = [nb for nb in notebooks if lesson in nb.lessons and not nb.problem]
    if mine:
        return mine[0], "", ""
    broken = [
        nb.problem
        for nb in notebooks
        if nb.problem and (lesson in nb.lessons or not nb.lessons)
    ]
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
    paths: list[Path], lessons: list[int] | None, settings: Settings, log: Log = print
) -> tuple[list[Result], dict[str, list[str]]]:
    """Grade every notebook found under `paths`.

    Returns the results (one per student and exercise) and each student's
    notebook-level problems; `grade_class` tells more.
    """
    graded = grade_class(paths, lessons, settings, log=log)
    return graded.results, graded.problems


def grade_class(
    paths: list[Path],
    lessons: list[int] | None,
    settings: Settings,
    *,
    log: Log = print,
    done: list[Result] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> Graded:
    """Grade every notebook found under `paths`.

    `done`: results of an earlier run, kept as they are (their exercises are not run
    again). `on_result` is called with each new result as soon as it is final, in
    the calling thread. A bad `settings.isolation` raises UsageError.
    """
    try:
        mode, isolation = resolve_isolation(settings.isolation)
    except ValueError as error:
        raise UsageError(str(error)) from None
    graded, pending = _plan(paths, lessons, settings, done or [])
    graded.isolation = isolation
    report = on_result or (lambda _: None)
    kept = {id(r) for r in done or []}
    waiting = {id(placeholder) for placeholder, _ in pending}
    for result in graded.results:
        if id(result) not in kept and id(result) not in waiting:
            report(result)
    graded.stopped = _Runner(settings, mode, log, report).run(pending)
    return graded


def _plan(
    paths: list[Path], lessons: list[int] | None, settings: Settings, done: list[Result]
) -> tuple[Graded, list[tuple[Result, dict]]]:
    """Read every notebook; the results known without running anything, and the
    exercises to run (a placeholder result and its job)."""
    found = find_notebooks(paths)
    by_student: dict[str, list[Notebook]] = {}
    for student, path in found.notebooks:
        by_student.setdefault(student, []).append(read_notebook(path, student))
    problems: dict[str, list[str]] = {s: [] for s in by_student}
    skipped = []
    for owner, what in found.skipped:
        if owner:
            problems.setdefault(owner, []).append(what)
        else:
            skipped.append(what)
    seen = {
        lesson for nbs in by_student.values() for nb in nbs for lesson in nb.lessons
    }
    graded_lessons = set(lessons) if lessons else seen & {ex.lesson for ex in EXERCISES}
    exercises = [ex for ex in EXERCISES if ex.lesson in graded_lessons]
    earlier = {(r.student, r.exercise.number): r for r in done}
    results: list[Result] = []
    pending: list[tuple[Result, dict]] = []
    for student, notebooks in sorted(by_student.items()):
        problems[student] += [nb.problem for nb in notebooks if nb.problem]
        for lesson in sorted(graded_lessons):
            nb, status, message = _lesson_notebooks(notebooks, lesson, graded_lessons)
            several = [n.path.name for n in notebooks if lesson in n.lessons]
            if len(several) > 1:
                problems[student].append(
                    f"several notebooks of lesson {lesson} ({', '.join(several)}); "
                    f"graded {several[0]}."
                )
            for exercise in (ex for ex in exercises if ex.lesson == lesson):
                if (student, exercise.number) in earlier:
                    results.append(earlier[(student, exercise.number)])
                elif nb is None:
                    results.append(Result(student, exercise, 0, status, message))
                else:
                    result, job = _prepare(nb, exercise, settings)
                    results.append(result)
                    if job is not None:
                        pending.append((result, job))
    return Graded(results, problems, skipped), pending


def _prepare(
    nb: Notebook, exercise: Exercise, settings: Settings
) -> tuple[Result, dict | None]:
    source, why = exercise_cell(nb, exercise)
    shown = nb.path.name
    if source is None:
        kind = "missing_exercise" if "has no cell" in why else "syntax_error"
        kind = "renamed" if "does not define" in why else kind
        return Result(nb.student, exercise, 0, kind, why, shown), None
    placeholder = Result(nb.student, exercise, 0, "", "", shown)
    return placeholder, _job(nb, exercise, source, settings)


def _needs_retry(outcome: ChildOutcome) -> bool:
    """The process died before it started, or of a signal it did not raise on itself
    (the grader's limits end it with SIGXCPU or a timeout, not counted here)."""
    if not outcome.ready:
        return True
    code = outcome.returncode or 0
    killed = code < 0 and -code != signal.SIGXCPU
    return killed and not outcome.timed_out and not outcome.data


class _Runner:
    """Runs the pending exercises (see module doc) and fills in their results."""

    def __init__(self, settings: Settings, mode: str, log: Log, report) -> None:
        self.settings, self.mode, self.log, self.report = settings, mode, log, report
        self.lock = threading.Lock()
        self.running: set[int] = set()  # id() of the placeholders running now
        self.suspects: set[int] = set()  # running when the package changed
        self.stopped = ""

    def run(self, pending: list[tuple[Result, dict]]) -> str:
        self.leftovers, self.guard = Leftovers(), PackageGuard()
        writes_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # only a submission may change the package
        try:
            retry = self._first_pass(pending)
            for item in retry:  # one at a time: nothing else runs beside it
                self._finish(item, self._run_one(item), final=True)
        finally:
            killed = self.leftovers.close()
            sys.dont_write_bytecode = writes_bytecode
            if killed and self.mode == PROCESS:
                self.log(f"killed {killed} process(es) left behind by submissions")
        return self.stopped

    def _first_pass(self, pending: list[tuple[Result, dict]]) -> list:
        retry = []
        pool = ThreadPoolExecutor(max_workers=self.settings.jobs)
        try:
            futures = {pool.submit(self._run_one, item): item for item in pending}
            for future in as_completed(futures):
                item, outcome = futures[future], future.result()
                if outcome is not None and _needs_retry(outcome) and not self.stopped:
                    retry.append(item)
                else:
                    self._finish(item, outcome, final=False)
        except BaseException:  # Ctrl-C, SIGTERM: start nothing more, end what runs
            with self.lock:
                self.stopped = self.stopped or "interrupted"
            pool.shutdown(wait=False, cancel_futures=True)
            self.leftovers.kill_ours()
            raise
        pool.shutdown()
        return retry

    def _run_one(self, item: tuple[Result, dict]) -> ChildOutcome | None:
        placeholder, job = item
        with self.lock:
            if self.stopped:
                return None
            self.running.add(id(placeholder))
        who = (
            f"{printable(placeholder.student)}: Exercise {placeholder.exercise.number}"
        )
        try:
            outcome = run_child(
                job,
                timeout=self.settings.timeout,
                memory_mb=self.settings.memory_mb,
                isolation=self.mode,
                launching=self.leftovers.launching,
            )
            self.leftovers.finished(outcome.pid)
            killed = self.leftovers.sweep()
            if killed and self.mode == PROCESS:  # bwrap's own helpers come here too
                self.log(f"killed {killed} process(es) left behind (after {who})")
            self._check_package(placeholder)
        finally:
            with self.lock:
                self.running.discard(id(placeholder))
        self.log(f"ran {who}")
        return outcome

    def _check_package(self, placeholder: Result) -> None:
        with self.lock:
            if self.stopped:
                return
            changed = self.guard.changes()
            if not changed:
                return
            self.suspects = set(self.running)
            shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
            self.stopped = (
                f"the course package's files changed while grading ({shown}); the run "
                "stopped. Reinstall the package, then grade again with --resume."
            )
        self.log(self.stopped)

    def _finish(
        self, item: tuple[Result, dict], outcome: ChildOutcome | None, final: bool
    ) -> None:
        placeholder, _ = item
        if outcome is None:
            placeholder.status = "not_graded"
            placeholder.message = "not graded: " + self.stopped
            return
        if id(placeholder) in self.suspects:
            placeholder.status = "package_changed"
            placeholder.message = (
                "the course package's files changed while this exercise ran; it, or "
                "an exercise running at the same time, wrote into them. " + self.stopped
            )
        else:
            judged = judge(placeholder.exercise, outcome, self.settings)
            placeholder.points, placeholder.status = judged.points, judged.status
            placeholder.message = judged.message
            if judged.message.startswith("the submission's results could not be"):
                self.log(
                    f"{printable(placeholder.student)}: Exercise "
                    f"{placeholder.exercise.number}: {judged.message}"
                )
        placeholder.seconds = outcome.seconds
        if final and not outcome.ready:
            placeholder.message += " (tried twice)"
        self.report(placeholder)
