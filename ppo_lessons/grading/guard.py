"""What the grader keeps an eye on while the exercises run: the processes they leave
behind, and the files of the course package that every exercise imports.

- `Leftovers` makes the grader the child subreaper of everything it starts (Linux's
  `prctl(PR_SET_CHILD_SUBREAPER)`): a process a submission starts in a session of its
  own, and whose parent then exits, is re-parented to the grader instead of to init,
  so the grader can find it among its own children and kill it (`sweep`) before it
  writes any report.
- `PackageGuard` fingerprints the files of `ppo_lessons` (contents) and the start-up
  files of the Python environment (`*.pth`, `sitecustomize`), before and after each
  exercise: a submission that writes into them would poison every later exercise.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import site
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the ppo_lessons folder
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
SWEEP_ROUNDS = 200  # a fork chain re-parents one generation per round


def set_subreaper(on: bool) -> bool:
    """Make this process (not) the subreaper of its descendants; False where the
    system has no such thing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> dict[int, str]:
    """The child processes of `pid`, with their state letter (Z for a zombie)."""
    found = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and int(fields[1]) == pid:
                found[int(entry.name)] = fields[0].decode("ascii", "replace")
    return found


class Leftovers:
    """Finds and kills the processes the exercises left behind (see module doc).

    Children this process had before (`Leftovers()` was made) and the exercise
    processes registered through `launching` are never touched.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ours: set[int] = set()
        self.before = set(children(os.getpid()))
        self.active = set_subreaper(True)

    @contextlib.contextmanager
    def launching(self) -> Iterator[set[int]]:
        """Hold while starting an exercise's process; add its pid to the set given."""
        with self.lock:
            yield self.ours

    def finished(self, pid: int) -> None:
        with self.lock:
            self.ours.discard(pid)

    def kill_ours(self) -> None:
        """Kill the process group of every exercise process still running."""
        with self.lock:
            for pid in self.ours:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    def sweep(self) -> int:
        """Kill (SIGKILL) and reap every stray child; the number killed."""
        killed = 0
        for _ in range(SWEEP_ROUNDS):
            with self.lock:
                strays = {
                    pid: state
                    for pid, state in children(os.getpid()).items()
                    if pid not in self.ours and pid not in self.before
                }
                for pid, state in strays.items():
                    if state != "Z":
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                            killed += 1
                for pid in strays:  # their own children now come to us: next round
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
            if not strays:
                break
        return killed

    def close(self) -> int:
        killed = self.sweep()
        if self.active:
            set_subreaper(False)
        return killed


def _digest(path: str) -> str:
    try:
        st = os.lstat(path)
        if os.path.islink(path):
            return "link to " + os.readlink(path)
        if not os.path.isfile(path):
            return f"special file {st.st_mode:o}"
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()
    except OSError as error:
        return f"unreadable ({error.strerror})"


def fingerprint(package: Path = PACKAGE_DIR) -> dict[str, str]:
    """Path -> digest of each file of the package and each start-up file of Python."""
    found = {}
    for folder, dirs, files in os.walk(package):  # never follows links
        for name in [*files, *(d for d in dirs if os.path.islink(f"{folder}/{d}"))]:
            path = os.path.join(folder, name)
            found[path] = _digest(path)
    for folder in {*site.getsitepackages(), *sys.path}:
        if not folder or not os.path.isdir(folder) or Path(folder) == package.parent:
            continue
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                if name.endswith(".pth") or name.startswith(
                    ("sitecustomize", "usercustomize", "__editable__")
                ):
                    path = os.path.join(folder, name)
                    found[path] = _digest(path)
    return found


class PackageGuard:
    """Compares the package's files with how they were when grading started."""

    def __init__(self, package: Path = PACKAGE_DIR) -> None:
        self.package = package
        self.baseline = fingerprint(package)

    def changes(self) -> list[str]:
        """The files added, removed or changed since the start, sorted."""
        now = fingerprint(self.package)
        return sorted(
            path
            for path in self.baseline.keys() | now.keys()
            if self.baseline.get(path) != now.get(path)
        )
