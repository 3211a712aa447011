"""Run one exercise of one student and write the records of the check's calls.

Started by `ppo_lessons.grading.sandbox` as `python -I -m ppo_lessons.grading.child`
in an empty scratch folder. It reads its job (JSON) from stdin, imports what it needs,
tells the grader it is ready (one byte on the records pipe, which starts the exercise's
time limit), lowers its own resource limits, and only then runs the student's code:
the notebook's import lines, the exercise cell, and the check with the student's
function wrapped in a `Recorder`. At the end it writes the records (torch.save) to the
records pipe and leaves with os._exit, so no handler the student registered runs.

Nothing this process says is trusted: the grader replays the records to its own copy
of the check (see `ppo_lessons.grading.records`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import resource
import signal
import sys
import traceback

READY = b"R"
OUTPUT_LIMIT = 1 << 20  # characters of the student's prints kept (the rest dropped)
FILE_LIMIT = 32 << 20  # largest file the student's code may write (RLIMIT_FSIZE)


class _CappedOutput(io.TextIOBase):
    """Keeps the first OUTPUT_LIMIT characters written to it; drops the rest."""

    def __init__(self, target) -> None:
        self.target = target
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.written < OUTPUT_LIMIT:
            kept = text[: OUTPUT_LIMIT - self.written]
            self.target.write(kept)
            if len(kept) < len(text):
                self.target.write("\n[output cut: more than 1 MB]\n")
        self.written += len(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def _set_limits(job: dict) -> None:
    """Limits counted from here on: the imports above are the grader's, not the
    student's."""
    with open("/proc/self/statm") as f:
        address_space = int(f.read().split()[0]) * resource.getpagesize()
    memory = address_space + job["memory_mb"] * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime + job["timeout"]) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    # writes past RLIMIT_FSIZE fail with an OSError instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC
        # counts every process and thread of this user; leave room for a few more
        mine = _processes_of_this_user()
        if mine:
            resource.setrlimit(resource.RLIMIT_NPROC, (mine + 32, mine + 32))


def _processes_of_this_user() -> int:
    uid, count = os.getuid(), 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
                except OSError:
                    continue
    except OSError:
        return 0
    return count


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    fd = int(job["record_fd"])
    os.close(0)

    import torch

    from ppo_lessons import checks
    from ppo_lessons.grading.records import FORMAT, VERSION

    save = torch.save  # bound before the student's code can replace it
    torch.set_num_threads(1)
    check = getattr(checks, job["check"])
    extra_cases = []
    if job.get("hidden"):
        hidden = base64.b64decode(job["hidden"])
        extra_cases = torch.load(io.BytesIO(hidden), weights_only=True)
    records: dict = {
        "format": FORMAT,
        "version": VERSION,
        "status": "done",
        "detail": "",
        "error_type": "",
        "import_failures": [],
        "calls": [],
    }
    sys.stdout = _CappedOutput(sys.stdout)
    sys.stderr = _CappedOutput(sys.stderr)
    _set_limits(job)
    _write_all(fd, READY)
    _run(job, check, extra_cases, records)
    try:
        buffer = io.BytesIO()
        save(records, buffer)
        _write_all(fd, buffer.getvalue())
    finally:
        os._exit(0)


def _run(job: dict, check, extra_cases: list, records: dict) -> None:
    import torch

    from ppo_lessons.grading.records import Recorder

    namespace: dict = {"__name__": "__main__"}
    phase = "cell"
    try:
        for line in job["imports"]:
            try:
                exec(compile(line, "<notebook imports>", "exec"), namespace)
            except Exception as error:  # an import the grader lacks: not fatal
                records["import_failures"].append(
                    f"{line.strip()}: {type(error).__name__}: {error}"[:500]
                )
        exec(compile(job["cell"], job["filename"], "exec"), namespace)
        fn = namespace.get(job["function"])
        if not callable(fn):
            records["status"] = "no_function"
            records["detail"] = type(fn).__name__
            return
        phase = "check"
        recorder = Recorder(fn)
        records["calls"] = recorder.calls
        # the verdict is the grader's, from the replay: whatever the check says here
        with contextlib.suppress(Exception):
            torch.manual_seed(
                0
            )  # the replay does the same (see ppo_lessons.grading.judge)
            check(recorder, extra_cases=extra_cases)
    except SystemExit as stop:
        records["status"] = "exit"
        records["detail"] = repr(stop.code)[:200]
    except Exception as error:  # only the exercise cell itself gets here
        records["status"] = "cell_error"
        records["error_type"] = type(error).__name__[:200]
        try:
            lines = traceback.format_exception_only(type(error), error)
            records["detail"] = "".join(lines)[-2000:]
        except Exception:  # an exception whose message cannot be read
            records["detail"] = records["error_type"]
    except BaseException as error:  # KeyboardInterrupt and the like
        records["status"] = "stopped"
        records["error_type"] = type(error).__name__[:200]
        records["detail"] = phase


if __name__ == "__main__":
    main()
