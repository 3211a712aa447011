"""What the grader sees of a check: the check run on the student's function, and run
again on the records of its calls after they went through torch.save and the
grader's validation (shared by the tests of the grader and of the checks)."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stdout

import torch

from ppo_lessons.grading.records import FORMAT, VERSION, Recorder, Replayer, validate


def verdict(check: Callable, fn: Callable) -> object:
    """The check's result on `fn`, or its AssertionError's message."""
    try:
        with redirect_stdout(io.StringIO()):
            return check(fn)
    except AssertionError as error:
        return str(error)


def replayed(check: Callable, fn: Callable) -> tuple[object, object]:
    """(direct verdict or message, replayed verdict or message)."""
    recorder = Recorder(fn)
    direct = verdict(check, recorder)
    buffer = io.BytesIO()
    records = {"format": FORMAT, "version": VERSION, "status": "done",
               "import_failures": [], "calls": recorder.calls}  # fmt: skip
    torch.save(records, buffer)
    loaded = validate(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    return direct, verdict(check, Replayer(loaded["calls"]))
