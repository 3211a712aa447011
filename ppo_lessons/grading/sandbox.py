"""Start `ppo_lessons.grading.child` for one exercise, with limits, and collect its
records.

The child gets:
- its own process group (`start_new_session`), killed as a whole when it is done or
  out of time, so a forgotten subprocess or thread of the student's dies with it;
- `python -I` (no user site-packages, no PYTHON* variables, not the current folder on
  sys.path) and a small environment, with HOME and TMPDIR in its scratch folder;
- a fresh, empty scratch folder as working directory, removed afterwards;
- limits it sets on itself before the student's code runs (see `child._set_limits`):
  memory (RLIMIT_AS, counted on top of what Python and PyTorch took to start), CPU
  time, size of any file written, and for a non-root user the number of processes;
- a wall-clock limit that starts when the child reports it is ready, i.e. the time
  to start Python and import PyTorch is not the student's;
- stdout and stderr in files of bounded size; the records arrive on a pipe, not in a
  file the student's code could replace or delete.

This contains accidents, not attacks: see docs/INSTRUCTORS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ppo_lessons.grading.child import READY

RECORDS_LIMIT = 64 << 20  # bytes of records accepted from one child
STARTUP_LIMIT = 120.0  # seconds to start Python and import PyTorch (not the student's)
EXIT_GRACE = 1.0  # seconds to wait for the records pipe after the child exited


@dataclass
class ChildOutcome:
    """What one child run left behind; judged by `ppo_lessons.grade`."""

    returncode: int | None
    ready: bool  # the child reached the student's code
    timed_out: bool
    records_too_large: bool
    data: bytes  # the records, as written by torch.save
    seconds: float  # time from ready to the end
    stderr_tail: str


def _environment(scratch: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONIOENCODING": "utf-8",  # ignored under -I; stdout is UTF-8 in C.UTF-8
        "MPLBACKEND": "Agg",
        "PPO_LESSONS_QUICK": "1",
    }
    return env


def _tail(path: Path, size: int = 3000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exited(pid: int) -> bool:
    """True once the child exited; it stays a zombie (its pid and group id reserved)
    until reaped, so killing its group afterwards cannot hit another process."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def run_child(job: dict, *, timeout: float, memory_mb: int) -> ChildOutcome:
    """Run one exercise in a child process and return what it wrote."""
    root = Path(tempfile.mkdtemp(prefix="ppo-grade-"))
    scratch = root / "work"
    scratch.mkdir()
    read_end, write_end = os.pipe()
    job = {**job, "record_fd": write_end, "timeout": timeout, "memory_mb": memory_mb}
    try:
        with (
            open(root / "stdout.txt", "wb") as out,
            open(root / "stderr.txt", "wb") as err,
        ):
            proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "ppo_lessons.grading.child"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=scratch,
                env=_environment(scratch),
                pass_fds=(write_end,),
                start_new_session=True,
            )
        os.close(write_end)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except OSError:
            pass  # the child died at once; its exit status says why
        outcome = _collect(proc, read_end, timeout)
        outcome.stderr_tail = _tail(root / "stderr.txt")
        return outcome
    finally:
        os.close(read_end)
        shutil.rmtree(root, ignore_errors=True)


def _collect(proc: subprocess.Popen, read_end: int, timeout: float) -> ChildOutcome:
    started = time.monotonic()
    deadline = started + STARTUP_LIMIT
    ready_at: float | None = None
    chunks: list[bytes] = []
    size = 0
    eof = exited = timed_out = too_large = False
    exited_at = 0.0
    selector = selectors.DefaultSelector()
    selector.register(read_end, selectors.EVENT_READ)
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if not eof and selector.select(min(0.05, deadline - now)):
                data = os.read(read_end, 1 << 16)
                if not data:
                    eof = True
                else:
                    if ready_at is None and data[:1] == READY:
                        ready_at = time.monotonic()
                        deadline = ready_at + timeout
                        data = data[1:]
                    size += len(data)
                    if size > RECORDS_LIMIT:
                        too_large = True
                        break
                    chunks.append(data)
            elif eof:
                time.sleep(0.02)
            if not exited and _exited(proc.pid):
                exited, exited_at = True, time.monotonic()
            # a grandchild may hold the pipe open after the child is gone
            if exited and (eof or time.monotonic() - exited_at > EXIT_GRACE):
                break
    finally:
        selector.close()
        _kill_group(proc.pid)
        proc.wait()
    end = time.monotonic()
    return ChildOutcome(
        returncode=proc.returncode,
        ready=ready_at is not None,
        timed_out=timed_out and ready_at is not None,
        records_too_large=too_large,
        data=b"".join(chunks) if ready_at is not None else b"",
        seconds=end - (ready_at if ready_at is not None else started),
        stderr_tail="",
    )
