"""Start `ppo_lessons.grading.child` for one exercise, with limits, and collect its
records.

Two kinds of isolation (`isolation=`):

- "sandbox": the child runs inside bubblewrap (`bwrap`) with its own PID, network,
  IPC and UTS namespaces, no capabilities, a read-only view of only the Python
  environment and the course package, an empty private `/tmp`, its scratch folder as
  the only writable place, and a session of its own; when it exits, the PID
  namespace ends and every process it started dies with it.
- "process": no sandbox; the limits below, and the grader's guards
  (`ppo_lessons.grading.guard`).

In both, the child gets:
- its own process group (`start_new_session`), killed as a whole when it is done or
  out of time;
- `python -I -B` (no user site-packages, no PYTHON* variables, not the current folder
  on sys.path, no bytecode written) and a small environment, with HOME and TMPDIR in
  its scratch folder; it imports the very package the grader runs from;
- a fresh, empty scratch folder as working directory, removed afterwards;
- limits it sets on itself before the student's code runs (see `child._set_limits`):
  memory (RLIMIT_AS, counted on top of what Python and PyTorch took to start), CPU
  time, size of any file written, and for a non-root user the number of processes;
- a wall-clock limit that starts when the child reports it is ready, i.e. the time
  to start Python and import PyTorch is not the student's;
- stdout and stderr in files of bounded size; the records arrive on a pipe, not in a
  file the student's code could replace or delete.

See docs/INSTRUCTORS.md for what each kind guarantees.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ppo_lessons.grading.child import READY
from ppo_lessons.grading.guard import PACKAGE_DIR

SANDBOX, PROCESS = "sandbox", "process"
ISOLATIONS = ("auto", SANDBOX, PROCESS)
DESCRIPTIONS = {
    SANDBOX: "bubblewrap sandbox (own PID namespace, no network, read-only view of "
    "Python and the course package only, private /tmp)",
    PROCESS: "process isolation without a sandbox (limits, subreaper, package check)",
}
# The child imports the package the grader runs from, wherever it is installed.
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from ppo_lessons.grading.child import main; main()"
)

RECORDS_LIMIT = 64 << 20  # bytes of records accepted from one child
STARTUP_LIMIT = 120.0  # seconds to start Python and import PyTorch (not the student's)
EXIT_GRACE = 1.0  # seconds to wait for the records pipe after the child exited


@dataclass
class ChildOutcome:
    """What one child run left behind; judged by `ppo_lessons.grading.judge`."""

    returncode: int | None
    ready: bool  # the child reached the student's code
    timed_out: bool
    records_too_large: bool
    data: bytes  # the records, as written by torch.save
    seconds: float  # time from ready to the end
    stderr_tail: str
    pid: int = 0


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


def _system_binds() -> list[str]:
    """Read-only binds of the system's programs and libraries (not /etc, /home...)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"):
        args += ["--ro-bind-try", etc, etc]
    return args


def _python_binds() -> list[str]:
    """Read-only binds of the Python environment and the course package."""
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    places.add(str(PACKAGE_DIR))
    args = []
    for place in sorted(places):  # a parent before its children
        path = Path(place).resolve()
        if not path.exists() or path == Path("/") or path.is_relative_to("/usr"):
            continue
        args += ["--ro-bind", str(path), str(path)]
        if str(path) != place:
            args += ["--ro-bind", str(path), place]
    return args


def child_command(isolation: str, scratch: Path) -> list[str]:
    """The command that starts the child, in `scratch`, with the isolation asked."""
    python = [sys.executable, "-I", "-B", "-c", BOOT, str(PACKAGE_DIR.parent)]
    if isolation != SANDBOX:
        return python
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bwrap is not on PATH")
    return [
        bwrap, "--unshare-all", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        *_system_binds(), *_python_binds(),
        "--bind", str(scratch), str(scratch), "--chdir", str(scratch),
        "--", *python,
    ]  # fmt: skip


@cache
def bubblewrap_problem() -> str | None:
    """None when exercises can run in the bubblewrap sandbox here, else why not."""
    if not sys.platform.startswith("linux"):
        return "bubblewrap needs Linux"
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu package `bubblewrap`)"
    scratch = Path(tempfile.mkdtemp(prefix="ppo-grade-probe-"))
    try:
        command = child_command(SANDBOX, scratch)
        probe = command[: command.index("--") + 1] + [
            sys.executable, "-I", "-B", "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import ppo_lessons.grading",
            str(PACKAGE_DIR.parent),
        ]  # fmt: skip
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap could not be run: {error}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        return f"bwrap failed here: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


def resolve_isolation(asked: str) -> tuple[str, str]:
    """("sandbox" or "process", a sentence for the reports) for --isolation ASKED.

    Raises ValueError when the sandbox is asked for and cannot run here.
    """
    if asked not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}: {asked!r}")
    problem = bubblewrap_problem() if asked != PROCESS else None
    if asked == SANDBOX and problem:
        raise ValueError(f"--isolation sandbox: {problem}")
    if asked == PROCESS or problem:
        why = f" ({problem})" if problem else " (asked for)"
        return PROCESS, DESCRIPTIONS[PROCESS] + why
    return SANDBOX, DESCRIPTIONS[SANDBOX]


def run_child(
    job: dict,
    *,
    timeout: float,
    memory_mb: int,
    isolation: str = PROCESS,
    launching: Callable[[], ContextManager[set[int]]] | None = None,
) -> ChildOutcome:
    """Run one exercise in a child process and return what it wrote.

    The child is started inside `launching()` (see `guard.Leftovers.launching`) and
    its pid added to the set it yields, so that a sweep for leftover processes never
    takes it for a stray.
    """
    root = Path(tempfile.mkdtemp(prefix="ppo-grade-"))
    scratch = root / "work"
    scratch.mkdir()
    read_end, write_end = os.pipe()
    job = {**job, "record_fd": write_end, "timeout": timeout, "memory_mb": memory_mb}
    try:
        launch = launching() if launching else contextlib.nullcontext(set())
        with (
            open(root / "stdout.txt", "wb") as out,
            open(root / "stderr.txt", "wb") as err,
            launch as ours,
        ):
            proc = subprocess.Popen(
                child_command(isolation, scratch),
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=scratch,
                env=_environment(scratch),
                pass_fds=(write_end,),
                start_new_session=True,
            )
            ours.add(proc.pid)
        os.close(write_end)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except OSError:
            pass  # the child died at once; its exit status says why
        outcome = _collect(proc, read_end, timeout)
        code = outcome.returncode
        if isolation == SANDBOX and code is not None and 128 < code < 160:
            outcome.returncode = 128 - code  # bwrap's 128 + N for "killed by signal N"
        outcome.stderr_tail = _tail(root / "stderr.txt")
        outcome.pid = proc.pid
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
