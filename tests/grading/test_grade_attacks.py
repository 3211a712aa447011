"""The grader against hostile submissions, in both isolation modes.

One run of `python -m ppo_lessons.grade` per mode grades a class where a correct
neighbour (aaron) sits beside submissions that attack the grading: forged records
with missing or ill-typed fields, a notebook that is a symbolic link to /dev/zero or a
FIFO, a truncated notebook, a process that escapes into a session of its own and comes
back to rewrite the reports, a submission that SIGKILLs its neighbours' processes,
one that reads the hidden-case file found through the grader's command line, one that
SIGKILLs the grader (sandbox only: without a sandbox nothing stops that), one that
writes into the course package, and names that clash or forge console lines.

The grader runs from a copy of the package (so an attack on the package never
touches the project's own files). "sandbox" needs bubblewrap (installed with apt-get
as root, as the browser tests install Chromium; skipped with the reason elsewhere);
"process" is forced with --isolation process.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_grade import gae, gae_notebook, write_notebook

from ppo_lessons.grading.sandbox import bubblewrap_problem

PACKAGE = Path(__file__).resolve().parents[2] / "ppo_lessons"
TIMEOUT = 20
ESCAPE_DELAY_S = 3  # the escaped process acts this long after its exercise began


def bubblewrap_or_reason() -> str:
    """ "" when the sandbox can run here, installing Debian's bubblewrap as root if
    needed; else why not."""
    if shutil.which("bwrap") is None:
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            return (
                "bwrap is not installed and cannot be installed here (needs root and "
                "apt-get); install the `bubblewrap` package to run the sandbox tests"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for args in (["update"], ["install", "-y", "bubblewrap"]):
            done = subprocess.run(
                [apt, *args], env=env, capture_output=True, text=True, timeout=900
            )
            if done.returncode:
                return f"apt-get {' '.join(args)} failed: {done.stderr[-500:]}"
        bubblewrap_problem.cache_clear()
    return bubblewrap_problem() or ""


# Each attack is the body of compute_gae (it receives the check's arguments); the
# attacker's function returns zeros, which is wrong, unless it says otherwise.
ZEROS = "    return torch.zeros_like(rewards), torch.zeros_like(rewards)\n"

FORGE = """
    import io, os
    forged = {{"format": "ppo_lessons-grading-records", "version": 1,
              "status": "done", "calls": [{call}], {extra}}}
    buffer = io.BytesIO()
    torch.save(forged, buffer)
    for fd in range(3, 64):
        try:
            os.write(fd, buffer.getvalue())
        except OSError:
            pass
    os._exit(0)
"""
NO_IMPORT_FAILURES = FORGE.format(call="", extra='"detail": ""')
EXCEPTION_NOT_A_MAPPING = FORGE.format(
    call='{"args": [], "kwargs": {}, "outcome": "raise", "exception": "boom", '
    '"modified": [], "requires_grad_after": []}',
    extra='"import_failures": []',
)
ESCAPE = f"""
    import subprocess, sys
    code = (
        "import time, pathlib; time.sleep({ESCAPE_DELAY_S}); "
        "pathlib.Path({{sentinel!r}}).write_text('escaped'); "
        "[p.write_text('forged') for p in pathlib.Path({{out!r}}).rglob('*') "
        "if p.is_file()]"
    )
    subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""
KILL_NEIGHBOURS = """
    import os, signal, time
    me, parent = os.getpid(), os.getppid()
    end = time.monotonic() + 6
    while time.monotonic() < end:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == parent and int(pid) != me:
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        time.sleep(0.05)
"""
KILL_GRADER = """
    import os, signal
    os.kill(os.getppid(), signal.SIGKILL)
"""
READ_HIDDEN = """
    import os
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            words = f.read().split(b"\\0")
        path = words[words.index(b"--hidden") + 1].decode()
        with open(path) as f:
            leaked = f.read()
    except (OSError, ValueError):
        leaked = ""
    if leaked:
        raise RuntimeError("LEAKED " + leaked[:40])
"""
WRITE_PACKAGE = """
    import os, ppo_lessons
    folder = os.path.dirname(ppo_lessons.__file__)
    for name in ("exercises.py", "poison.py"):
        try:
            with open(os.path.join(folder, name), "a") as f:
                f.write("\\n# poisoned\\n")
        except OSError:
            pass
"""
HIDDEN = """
import torch

HIDDEN_CASES = {"compute_gae": [{
    "rewards": torch.tensor([[1.0], [0.5], [2.0]]),
    "values": torch.tensor([[0.1], [0.2], [0.3]]),
    "next_values": torch.tensor([[0.2], [0.3], [0.4]]),
    "terminated": torch.tensor([[0.0], [0.0], [1.0]]),
    "truncated": torch.tensor([[0.0], [1.0], [0.0]]),
    "gamma": 0.9,
    "lam": 0.8,
}]}
"""


def _function(body: str) -> str:
    header = (
        "def compute_gae(rewards, values, next_values, terminated, truncated, "
        "gamma, lam):\n"
    )
    return header + textwrap.indent(textwrap.dedent(body), "    ") + "\n" + ZEROS


# student -> status of 4.1 expected in (sandbox, process); None: not in that run
EXPECTED: dict[str, tuple[str | None, str | None]] = {
    "aaron": ("correct", "correct"),
    "alice smith": ("correct", "correct"),
    "alice_smith": ("malformed", "malformed"),
    "forger_keys": ("not_replayable", "not_replayable"),
    "forger_types": ("not_replayable", "not_replayable"),
    "eve": ("wrong", "wrong"),
    "kim": ("wrong", "wrong"),
    "hal": ("wrong", None),  # without a sandbox it can read the file: documented
    # in the sandbox its parent is the namespace's init, which ignores the signal;
    # without a sandbox it kills the grader: documented
    "gus": ("wrong", None),
    "pam": ("wrong", None),  # without a sandbox: the run stops (its own test)
    "sym": ("malformed", "malformed"),
    "fifo": ("malformed", "malformed"),
    "tina": ("malformed", "malformed"),
    "zoé": ("malformed", "malformed"),
    "zoë": ("malformed", "malformed"),
    "王伟": ("malformed", "malformed"),
    "李娜": ("malformed", "malformed"),
    "mallory\naaron: 0 of 4": ("malformed", "malformed"),
}


def build_class(root: Path, mode: str, out: Path, sentinel: Path) -> Path:
    subs = root / "subs"
    column = 0 if mode == "sandbox" else 1
    bodies = {
        "aaron": gae(),
        "alice smith": gae(),
        "forger_keys": _function(NO_IMPORT_FAILURES),
        "forger_types": _function(EXCEPTION_NOT_A_MAPPING),
        "eve": _function(ESCAPE.format(sentinel=str(sentinel), out=str(out))),
        "kim": _function(KILL_NEIGHBOURS),
        "hal": _function(READ_HIDDEN),
        "gus": _function(KILL_GRADER),
        "pam": _function(WRITE_PACKAGE),
    }
    for student, body in bodies.items():
        if EXPECTED[student][column] is not None:
            gae_notebook(subs / student / "04_gae.ipynb", body)
    for student in (
        "alice_smith",
        "zoé",
        "zoë",
        "王伟",
        "李娜",
        "mallory\naaron: 0 of 4",
    ):
        write_notebook(subs / student / "04_gae.ipynb", raw="not a notebook {")
    (subs / "sym").mkdir()
    (subs / "sym" / "04_gae.ipynb").symlink_to("/dev/zero")
    (subs / "fifo").mkdir()
    os.mkfifo(subs / "fifo" / "04_gae.ipynb")
    gae_notebook(subs / "tina" / "04_gae.ipynb", gae())
    whole = (subs / "tina" / "04_gae.ipynb").read_text()
    (subs / "tina" / "04_gae.ipynb").write_text(whole[: len(whole) // 2])
    gae_notebook(subs / ".hidden_student" / "04_gae.ipynb", gae())
    return subs


def package_copy(root: Path) -> Path:
    """A copy of ppo_lessons to run the grader from (attacks may write into it)."""
    home = root / "pkg"
    shutil.copytree(PACKAGE, home / "ppo_lessons", ignore=shutil.ignore_patterns(
        "__pycache__"))  # fmt: skip
    return home


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def run_grader(home: Path, *args: str, timeout: float = 240) -> tuple:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_lessons.grade", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - start


@pytest.fixture(scope="module", params=["sandbox", "process"])
def attacked(request, tmp_path_factory):
    mode = request.param
    if mode == "sandbox" and (why := bubblewrap_or_reason()):
        pytest.skip(why)
    root = tmp_path_factory.mktemp(f"attacks-{mode}")
    out, sentinel = root / "out", root / "escaped.txt"
    home = package_copy(root)
    subs = build_class(root, mode, out, sentinel)
    (root / "hidden_cases.py").write_text(HIDDEN)
    before = digests(home / "ppo_lessons")
    proc, seconds = run_grader(
        home, str(subs), "--out", str(out), "--lesson", "4",
        "--isolation", mode, "--timeout", str(TIMEOUT), "--memory-mb", "512",
        "--hidden", str(root / "hidden_cases.py"),
    )  # fmt: skip
    reports = digests(out)
    time.sleep(ESCAPE_DELAY_S + 3)  # what escaped would act now
    with open(out / "results.csv", newline="") as f:
        results = {row["student"]: row for row in csv.DictReader(f)}
    return {
        "mode": mode,
        "column": 0 if mode == "sandbox" else 1,
        "proc": proc,
        "seconds": seconds,
        "out": out,
        "results": results,
        "reports_at_exit": reports,
        "reports_later": digests(out),
        "sentinel": sentinel,
        "package_before": before,
        "package_after": digests(home / "ppo_lessons"),
    }


def test_the_run_ends_in_time_with_a_report_for_everyone(attacked):
    proc = attacked["proc"]
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert attacked["seconds"] < 120, attacked["seconds"]
    column = attacked["column"]
    expected = {s: v[column] for s, v in EXPECTED.items() if v[column] is not None}
    got = {s: attacked["results"][s]["status"] for s in expected}
    assert got == expected, {s: attacked["results"][s]["message"] for s in expected}
    feedback = attacked["out"] / "feedback"
    assert len(list(feedback.glob("*.md"))) == len(expected) + 1  # + .hidden_student


def test_the_neighbour_gets_full_marks_and_attackers_zero(attacked):
    results = attacked["results"]
    for student in ("aaron", "alice smith"):
        assert results[student]["points"] == results[student]["max_points"]
    for student, row in results.items():
        if student not in ("aaron", "alice smith"):
            assert row["points"] == "0", (student, row["message"])


def test_nothing_changes_after_the_grader_exits(attacked):
    assert attacked["reports_later"] == attacked["reports_at_exit"]
    assert not attacked["sentinel"].exists(), "the escaped process outlived the grader"


def test_the_console_says_which_isolation_and_cannot_be_forged(attacked):
    proc, mode = attacked["proc"], attacked["mode"]
    word = "bubblewrap sandbox" if mode == "sandbox" else "without a sandbox"
    assert word in proc.stdout and word in proc.stderr.splitlines()[0]
    assert word in (attacked["out"] / "summary.md").read_text()
    # the newline in a folder name is printed escaped: no forged "aaron" line
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line.startswith("aaron")] == ["aaron: 4/4"]
    assert any(line.startswith("mallory\\naaron: 0 of 4: 0/4") for line in lines)


def test_skipped_folders_and_special_files_are_reported(attacked):
    summary = attacked["out"] / "summary.csv"
    with open(summary, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert "skipped" in rows[".hidden_student"]["problems"]
    assert "symbolic link" in rows["sym"]["problems"]
    assert "FIFO" in rows["fifo"]["problems"]
    assert "not a Jupyter notebook" in rows["tina"]["problems"]


def test_feedback_files_are_distinct_and_keep_letters(attacked):
    with open(attacked["out"] / "summary.csv", newline="") as f:
        files = {row["student"]: row["feedback"] for row in csv.DictReader(f)}
    assert len(set(files.values())) == len(files)
    assert files["zoé"] == "feedback/zoé.md" and files["zoë"] == "feedback/zoë.md"
    assert files["王伟"] == "feedback/王伟.md"
    alice = (attacked["out"] / files["alice smith"]).read_text()
    assert "Score: 4 / 4" in alice and "alice smith" in alice
    assert "Score: 0 / 4" in (attacked["out"] / files["alice_smith"]).read_text()


def test_forged_records_name_the_student(attacked):
    stderr = attacked["proc"].stderr
    for student in ("forger_keys", "forger_types"):
        assert f"{student}: Exercise 4.1: the submission's results could not" in stderr


def test_the_sandbox_hides_the_grader_and_the_package(attacked):
    if attacked["mode"] != "sandbox":
        pytest.skip("without a sandbox these attacks succeed (docs/INSTRUCTORS.md)")
    results = attacked["results"]
    assert "LEAKED" not in results["hal"]["message"]
    assert attacked["package_after"] == attacked["package_before"]


def test_without_a_sandbox_a_changed_package_stops_the_run(tmp_path):
    home = package_copy(tmp_path)
    subs = tmp_path / "subs"
    gae_notebook(subs / "aaron.ipynb", gae())
    gae_notebook(subs / "pam.ipynb", _function(WRITE_PACKAGE))
    gae_notebook(subs / "quentin.ipynb", gae())
    out = tmp_path / "out"
    proc, _ = run_grader(
        home, str(subs), "--out", str(out), "--isolation", "process", "--jobs", "1",
        "--timeout", str(TIMEOUT),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "STOPPED: the course package's files changed" in proc.stdout
    assert "poison.py" in proc.stdout
    with open(out / "results.csv", newline="") as f:
        status = {row["student"]: row["status"] for row in csv.DictReader(f)}
    assert status["aaron"] == "correct"
    assert status["pam"] == "package_changed"
    assert status["quentin"] == "not_graded"
    # a resumed run keeps aaron, grades the others again
    again, _ = run_grader(home, str(subs), "--out", str(out), "--resume",
                          "--isolation", "process", "--jobs", "1")  # fmt: skip
    assert "resuming: 1 results kept" in again.stderr, again.stderr[-2000:]


@pytest.mark.slow  # four runs of the grader, about 50 s
def test_a_killed_grader_leaves_its_results_and_a_second_run_asks(tmp_path):
    home = package_copy(tmp_path)
    subs = tmp_path / "subs"
    for student in ("ann", "bea", "cyd", "dan"):
        gae_notebook(subs / f"{student}.ipynb", gae())
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ppo_lessons.grade", str(subs), "--out",
               str(out), "--jobs", "1", "--isolation", "process"]  # fmt: skip
    grader = subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    results = out / "results.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.1)
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) < 4 and all(r["status"] == "correct" for r in rows)
    asked, _ = run_grader(home, str(subs), "--out", str(out))
    assert asked.returncode == 2
    assert "--resume" in asked.stderr and "--start-over" in asked.stderr
    assert "did not finish" in asked.stderr
    resumed, _ = run_grader(home, str(subs), "--out", str(out), "--resume",
                            "--isolation", "process")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ran = [line for line in resumed.stderr.splitlines() if line.startswith("ran ")]
    assert len(ran) == 4 - len(rows)
    with open(results, newline="") as f:
        assert sorted(r["student"] for r in csv.DictReader(f)) == [
            "ann", "bea", "cyd", "dan"]  # fmt: skip
    over, _ = run_grader(home, str(subs), "--out", str(out), "--start-over",
                         "--isolation", "process")  # fmt: skip
    assert over.returncode == 0
    assert len([x for x in over.stderr.splitlines() if x.startswith("ran ")]) == 4, (
        over.stderr
    )
