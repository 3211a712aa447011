"""Judge one exercise from what its process left behind; the instructor's hidden cases.

The records a student's process wrote are replayed to the grader's own, untouched
check (see `ppo_lessons.grading.records`); the verdict and its message come from there.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import runpy
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ppo_lessons import checks
from ppo_lessons.exercises import EXERCISES, Exercise
from ppo_lessons.grading.records import (
    NotGradable,
    Replayer,
    ReplayMismatch,
    recorded_exceptions,
    validate,
)
from ppo_lessons.grading.sandbox import ChildOutcome

NORMAL = {"correct", "wrong", "not_implemented", "not_submitted", "by_hand"}
BY_HAND = (
    "not gradable automatically: grade by hand ({why}). The grader's check could not "
    "be given what your function returned, so it gave no verdict; your instructor "
    "reads this exercise and gives its points."
)
MEMORY_WORDS = re.compile(
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
    isolation: str = "auto"  # "sandbox" (bubblewrap), "process", or "auto"


class UsageError(Exception):
    """A bad command line or a broken instructor's file (exit status 2)."""


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
                ok = check(reference, extra_cases=hidden_case_list(blob))
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


def hidden_case_list(blob: bytes | None) -> list[dict]:
    return [] if blob is None else torch.load(io.BytesIO(blob), weights_only=True)


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
    if MEMORY_WORDS.search(stderr):
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
    """Grade one exercise: replay its records to the (untouched) check.

    The records are untrusted: whatever goes wrong while judging them (a field of the
    wrong type, a value the check cannot replay, even running out of memory) makes
    this exercise `not_replayable`, with the error named in `Result.message`; it never
    raises.
    """
    try:
        return _judge(exercise, outcome, settings)
    except (Exception, ReplayMismatch) as error:
        return Result(
            "",
            exercise,
            0,
            "not_replayable",
            "the submission's results could not be replayed (judging them failed: "
            f"{type(error).__name__}).",
            seconds=outcome.seconds,
        )


def _judge(exercise: Exercise, outcome: ChildOutcome, settings: Settings) -> Result:
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
    except Exception:  # MalformedRecords, or what torch.load refuses
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
        if any(MEMORY_WORDS.search(text) for text in raised):
            status = "memory"
            message = f"ran out of memory (limit {settings.memory_mb} MB).\n" + message
    if status != "correct" and records["import_failures"]:
        message += "\n(note: these imports of your notebook failed in the grader: "
        message += "; ".join(records["import_failures"]) + ")"
    return result(status, message)


def _replay(exercise: Exercise, records: dict, settings: Settings) -> tuple[str, str]:
    check: Callable = getattr(checks, exercise.check_name)
    replayer = Replayer(records["calls"])
    extra = hidden_case_list(settings.hidden.get(exercise.function))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            # the checks draw from their own seeded generators; seeding the global
            # one too keeps a check that forgot to do so replayable
            torch.manual_seed(0)
            ok = check(replayer, extra_cases=extra)
    except NotGradable as why:
        return "by_hand", BY_HAND.format(why=why)
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
