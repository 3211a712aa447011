"""The grader's defences, in-process: untrusted records, special files, names,
leftover processes, the package fingerprint, the nbgrader export of one lesson."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
from test_grade import gae, lesson_notebook

from ppo_lessons import checks
from ppo_lessons.exercises import EXERCISES
from ppo_lessons.grade import Settings, UsageError, judge, nbgrader_export
from ppo_lessons.grading.guard import Leftovers, PackageGuard
from ppo_lessons.grading.names import feedback_names, printable
from ppo_lessons.grading.notebooks import read_bytes
from ppo_lessons.grading.records import FORMAT, VERSION, Recorder
from ppo_lessons.grading.sandbox import ChildOutcome
from ppo_lessons.importance_sampling import probability_ratio

RATIO = next(ex for ex in EXERCISES if ex.function == "probability_ratio")
SETTINGS = Settings(timeout=10, memory_mb=256, hidden={}, jobs=1)


def recorded() -> dict:
    """The records of the reference probability_ratio under its check."""
    recorder = Recorder(probability_ratio)
    with redirect_stdout(io.StringIO()):
        checks.check_probability_ratio(recorder)
    return {"format": FORMAT, "version": VERSION, "status": "done", "detail": "",
            "error_type": "", "import_failures": [], "calls": recorder.calls}  # fmt: skip


def judged(records: object) -> str:
    buffer = io.BytesIO()
    torch.save(records, buffer)
    outcome = ChildOutcome(0, True, False, False, buffer.getvalue(), 0.1, "")
    return judge(RATIO, outcome, SETTINGS).status


def _without_import_failures(r: dict) -> None:
    del r["import_failures"]


def _exception_not_a_mapping(r: dict) -> None:
    r["calls"][0]["exception"] = "boom"
    r["calls"][0]["outcome"] = "raise"


def _detail_not_text(r: dict) -> None:
    r["status"], r["detail"] = "exit", {"a": 1}


def _result_missing(r: dict) -> None:
    del r["calls"][0]["result"]


def _gradient_of_wrong_shape(r: dict) -> None:
    for call in r["calls"]:
        grads = call["result"].get("grads") or []
        for i, g in enumerate(grads):
            if g is not None:
                grads[i] = torch.zeros(g.numel() + 3)


def _exception_name_with_nul(r: dict) -> None:
    call = r["calls"][0]
    call.update(outcome="raise", exception={"name": "a\0b", "bases": [],
                                            "message": "x"})  # fmt: skip


@pytest.mark.parametrize(
    "spoil",
    [_without_import_failures, _exception_not_a_mapping, _detail_not_text,
     _result_missing, _gradient_of_wrong_shape, _exception_name_with_nul],
)  # fmt: skip
def test_spoilt_records_are_not_replayable_and_never_raise(spoil):
    assert judged(recorded()) == "correct"  # the unspoilt records
    records = recorded()
    spoil(records)
    assert judged(records) == "not_replayable"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_records_that_are_not_a_dict_are_not_replayable():
    assert judged(["not", "records"]) == "not_replayable"
    outcome = ChildOutcome(0, True, False, False, b"\x80garbage", 0.1, "")
    assert judge(RATIO, outcome, SETTINGS).status == "not_replayable"


def test_only_regular_files_are_read_without_blocking(tmp_path):
    link = tmp_path / "zero.ipynb"
    link.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    big = tmp_path / "big.ipynb"
    big.write_bytes(b"x" * 2048)
    signal.alarm(10)  # a FIFO opened the blocking way would hang here
    try:
        with pytest.raises(ValueError, match="symbolic link"):
            read_bytes(link)
        with pytest.raises(ValueError, match="FIFO"):
            read_bytes(fifo)
        with pytest.raises(ValueError, match="larger than"):
            read_bytes(big, limit=1024)
    finally:
        signal.alarm(0)
    assert read_bytes(big) == b"x" * 2048


def test_feedback_names_are_distinct_readable_and_stable():
    students = ["zoé", "zoë", "王伟", "李娜", "alice smith", "alice_smith", "Bob",
                "bob", "", "mallory\nbob"]  # fmt: skip
    names = feedback_names(students)
    assert len({n.casefold() for n in names.values()}) == len(students)
    assert names["zoé"] == "zoé.md" and names["zoë"] == "zoë.md"
    assert names["王伟"] == "王伟.md" and names["李娜"] == "李娜.md"
    assert names["alice smith"].startswith("alice_smith-")
    assert names["alice_smith"].startswith("alice_smith-")
    assert all("\n" not in n and "/" not in n for n in names.values())
    assert feedback_names(list(reversed(students))) == names
    # the same letters, composed differently: two folders on Linux, two files
    twins = feedback_names(["zoé", "zoe\u0301"])
    assert len(set(twins.values())) == 2
    assert all(name.startswith("zoé-") for name in twins.values())


def test_printable_escapes_what_moves_the_cursor():
    assert printable("a\nb\x1b[2J\u202ec d") == "a\\nb\\x1b[2J\\u202ec d"
    assert printable("zoé 王伟") == "zoé 王伟"


def test_leftover_processes_are_killed(tmp_path):
    leftovers = Leftovers()
    if not leftovers.active:
        leftovers.close()
        pytest.skip("no child subreaper on this system (Linux only)")
    escape = (
        "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)'], start_new_session=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )
    done = subprocess.run([sys.executable, "-c", escape], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    escaped = int(done.stdout)
    time.sleep(0.2)
    assert Path(f"/proc/{escaped}").exists()  # re-parented to us, still running
    assert leftovers.close() >= 1
    assert not Path(f"/proc/{escaped}").exists()


def test_package_guard_sees_added_and_changed_files(tmp_path):
    package = tmp_path / "ppo_lessons"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    guard = PackageGuard(package)
    assert guard.changes() == []
    (package / "a.py").write_text("x = 2\n")
    (package / "poison.py").write_text("")
    assert guard.changes() == [str(package / "a.py"), str(package / "poison.py")]


def test_nbgrader_export_writes_the_lessons_asked_for(tmp_path):
    solutions = tmp_path / "solutions"
    lesson_notebook(solutions / "04_gae.ipynb", "4.1", "compute_gae", gae())
    lesson_notebook(solutions / "02_ratio.ipynb", "2.1", "probability_ratio",
                    "def probability_ratio(n, o):\n    return (n - o).exp()\n")  # fmt: skip
    written = nbgrader_export(solutions, tmp_path / "lesson04", [4])
    assert [p.name for p in written] == ["04_gae.ipynb"]
    assert sorted(p.name for p in (tmp_path / "lesson04").iterdir()) == ["04_gae.ipynb"]
    with pytest.raises(UsageError, match="lesson 7"):
        nbgrader_export(solutions, tmp_path / "none", [7])
