"""The grader (`python -m ppo_lessons.grade`) on a fake class.

One run of the command grades a folder of fake submissions built here: correct,
partly correct, unsolved, and one for each way a submission can go wrong or try to
cheat (raise, loop forever, hog memory, print megabytes, sys.exit, os._exit, delete
files, patch torch.allclose or the checks or print, forge the records, not a notebook,
wrong lesson, missing exercise, renamed function, syntax error). The tests read that
run's CSV and Markdown outputs. The record/replay core and the nbgrader export are
also tested in-process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
import torch
from support.replay import replayed

from ppo_lessons import checks, grade
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.grading.records import (
    Recorder,
    Replayer,
    ReplayMismatch,
)
from ppo_lessons.importance_sampling import probability_ratio

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10  # seconds per exercise in the fake class's run
MEMORY_MB = 256
LESSONS = ("2", "3", "4")

# ---------------------------------------------------------------- exercise bodies

RATIO = """
def probability_ratio(new_log_probs, old_log_probs):
    ### BEGIN SOLUTION
    return torch.exp(new_log_probs - old_log_probs)
    ### END SOLUTION
"""

SURROGATE = """
def surrogate_objective(new_log_probs, old_log_probs, advantages):
    return (torch.exp(new_log_probs - old_log_probs) * advantages).mean()
"""

STUB = """
def {name}(*args):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: not written yet")
"""

CLIPPED = """
def clipped_surrogate_objective(new_log_probs, old_log_probs, advantages, clip_eps):
    ratio = torch.exp(new_log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    return torch.{pick}(ratio * advantages, clipped * advantages).mean()
"""

CLIPPED_DETACHED = """
def clipped_surrogate_objective(new_log_probs, old_log_probs, advantages, clip_eps):
    ratio = torch.exp(new_log_probs - old_log_probs).detach()
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    return torch.min(ratio * advantages, clipped * advantages).mean()
"""

GAE = """
def compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    {prologue}
    term = terminated.to(rewards.dtype)
    done = torch.clamp(term + truncated.to(rewards.dtype), max=1)
    bootstrap = 1 - {bootstrap}
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * bootstrap[t] * next_values[t] - values[t]
        last = delta + gamma * lam * (1 - done[t]) * last
        advantages[t] = last
    {epilogue}
    return advantages, advantages + values
"""


def gae(prologue: str = "pass", epilogue: str = "pass", bug: bool = False) -> str:
    return GAE.format(
        prologue=prologue, epilogue=epilogue, bootstrap="done" if bug else "term"
    )


FAKE_RECORDS = """
import io, os, json
import torch
fake = {"format": "ppo_lessons-grading-records", "version": 1, "status": "done",
        "detail": "", "error_type": "", "import_failures": [], "calls": [],
        "verdict": True, "points": 4}
buffer = io.BytesIO()
torch.save(fake, buffer)
with open("records.pt", "wb") as f:
    f.write(buffer.getvalue())
with open("result.json", "w") as f:
    json.dump({"compute_gae": "correct", "points": 4}, f)
for fd in range(3, 64):  # wherever the grader's channel is
    try:
        os.write(fd, buffer.getvalue())
    except OSError:
        pass
os._exit(0)
"""

# ---------------------------------------------------------------- notebooks


def write_notebook(path: Path, *cells: str, raw: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        path.write_text(raw)
        return
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# A lesson"))
    for source in cells:
        nb.cells.append(nbformat.v4.new_code_cell(textwrap.dedent(source).strip()))
    nbformat.write(nb, path)


def lesson_notebook(path: Path, number: str, function: str, body: str, *extra) -> None:
    """Imports, the exercise cell, the check cell, the reference import."""
    module = {
        "2": "ppo_lessons.importance_sampling",
        "3": "ppo_lessons.clipping",
        "4": "ppo_lessons.gae",
        "1": "ppo_lessons.policy_gradient",
    }[number[0]]
    write_notebook(
        path,
        f"import torch\nfrom ppo_lessons.checks import check_{function}",
        *extra,
        f"# Exercise {number}: {function}\n" + textwrap.dedent(body),
        f"from ppo_lessons.checks import check_{function}\n\ncheck_{function}({function})",
        f"from {module} import {function}  # the reference, for the rest",
    )


def gae_notebook(path: Path, body: str, *extra: str) -> None:
    lesson_notebook(path, "4.1", "compute_gae", body, *extra)


# student -> (points expected out of 10, {exercise: status})
EXPECTED: dict[str, tuple[int, dict[str, str]]] = {}


def build_class(root: Path) -> None:
    def expect(student: str, points: int, **statuses: str) -> None:
        EXPECTED[student] = (
            points,
            {k.lstrip("_").replace("_", "."): v for k, v in statuses.items()},
        )

    # alice: one folder, three notebooks, all right
    lesson_notebook(
        root / "alice/02_importance.ipynb", "2.1", "probability_ratio", RATIO
    )
    nb = nbformat.read(root / "alice/02_importance.ipynb", as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "# Exercise 2.2: surrogate_objective\n" + textwrap.dedent(SURROGATE)
        )
    )
    nbformat.write(nb, root / "alice/02_importance.ipynb")
    lesson_notebook(
        root / "alice/lab/03_clipping.ipynb",
        "3.1",
        "clipped_surrogate_objective",
        CLIPPED.format(pick="min"),
    )
    gae_notebook(root / "alice/04_gae.ipynb", gae())
    expect("alice", 10, _2_1="correct", _2_2="correct", _3_1="correct", _4_1="correct")

    # bob: correct ratio, surrogate left as the stub, max instead of min
    write_notebook(
        root / "bob/02_importance.ipynb",
        "import torch",
        "# Exercise 2.1: probability_ratio\n" + textwrap.dedent(RATIO),
        "# Exercise 2.2: surrogate_objective\n"
        + textwrap.dedent(STUB.format(name="surrogate_objective")),
    )
    lesson_notebook(
        root / "bob/03_clipping.ipynb",
        "3.1",
        "clipped_surrogate_objective",
        CLIPPED.format(pick="max"),
    )
    expect(
        "bob", 1, _2_1="correct", _2_2="not_implemented", _3_1="wrong",
        _4_1="not_submitted",
    )  # fmt: skip
    # nick: no gradient through the ratio
    lesson_notebook(
        root / "nick.ipynb", "3.1", "clipped_surrogate_objective", CLIPPED_DETACHED
    )
    expect("nick", 0, _3_1="wrong")

    flat = {
        "carol": (gae(bug=True), "wrong"),  # the truncation bug
        "dave": (STUB.format(name="compute_gae"), "not_implemented"),
        "erin": (gae(prologue="raise ValueError('shapes confuse me')"), "wrong"),
        "frank": (gae(prologue="while True:\n        pass"), "timeout"),
        "grace": (
            gae(prologue="hog = [torch.ones(10**7) for _ in range(10**5)]"),
            "memory",
        ),
        "heidi": (gae(prologue="print('x' * 5_000_000)"), "correct"),
        "ivan": (gae(prologue="import sys; sys.exit(0)"), "exit"),
        "judy": (gae(prologue="import os; os._exit(3)"), "exit"),
        "mallory": (
            gae(
                prologue="import os, shutil\n    try:\n        "
                "for p in os.listdir('.') + ['../' + q for q in os.listdir('..')]:"
                "\n            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)"
                "\n    except OSError:\n        pass"
            ),
            "correct",
        ),
        "oscar": (
            "import torch\ntorch.allclose = lambda *a, **k: True\n"
            "torch.equal = lambda *a, **k: True\n"
            "def compute_gae(rewards, values, *rest):\n"
            "    return torch.zeros_like(rewards), torch.zeros_like(rewards)\n",
            "wrong",
        ),
        "peggy": (
            "import torch\nimport ppo_lessons.checks as c\n"
            "import ppo_lessons.checks.harness as h\n"
            "h.close = lambda *a: True\nh.diagnose = lambda *a: None\n"
            "c.check_compute_gae = lambda fn, **k: True\n"
            "def compute_gae(rewards, values, *rest):\n"
            "    return rewards, rewards\n",
            "wrong",
        ),
        "trudy": (
            "import builtins, torch\n_p = builtins.print\n"
            "builtins.print = lambda *a, **k: _p('✔ compute_gae: correct')\n"
            "def compute_gae(rewards, values, *rest):\n"
            "    return values, values\n",
            "wrong",
        ),
        "walter": (
            "def compute_gae(*args):\n"
            + textwrap.indent(textwrap.dedent(FAKE_RECORDS), "    "),
            "not_replayable",
        ),
        "hank": (  # right on the public cases, wrong on long rollouts (hidden case)
            gae(
                epilogue="if rewards.shape[0] > 20:\n        advantages = advantages * 2"
            ),
            "wrong",
        ),
        "victor": ("x = undefined_name + 1\n" + gae(), "cell_error"),
        "quinn": (gae().replace("def compute_gae(", "def compute_gae_v2("), "renamed"),
        "rupert": (gae().replace("for t in", "for t within"), "syntax_error"),
    }
    for student, (body, status) in flat.items():
        gae_notebook(root / f"{student}.ipynb", body)
        points = 4 if status == "correct" else 0
        expect(student, points, _4_1=status)
    # sybil: right, with magics and an import the grader cannot do
    gae_notebook(
        root / "sybil.ipynb",
        gae(prologue="terminated, truncated = terminated.bool(), truncated.bool()"),
        "%matplotlib inline\nimport not_a_real_package\n!echo hi",
    )
    expect("sybil", 4, _4_1="correct")

    write_notebook(root / "xavier.ipynb", raw="this is not JSON {")
    expect("xavier", 0, _4_1="malformed")
    lesson_notebook(root / "yvonne.ipynb", "1.1", "discounted_returns", STUB.format(
        name="discounted_returns"))  # fmt: skip
    expect("yvonne", 0, _4_1="wrong_lesson", _3_1="wrong_lesson")
    write_notebook(  # the marker line deleted
        root / "zoe/04_gae.ipynb", "import torch", textwrap.dedent(gae())
    )
    expect("zoe", 0, _4_1="missing_exercise")


HIDDEN = """
import torch

g = torch.Generator().manual_seed(7)
T, N = 25, 2
HIDDEN_CASES = {
    "compute_gae": [
        {
            "rewards": torch.randn(T, N, generator=g),
            "values": torch.randn(T, N, generator=g),
            "next_values": torch.randn(T, N, generator=g),
            "terminated": (torch.rand(T, N, generator=g) < 0.1).float(),
            "truncated": (torch.rand(T, N, generator=g) < 0.1).float(),
            "gamma": 0.99,
            "lam": 0.95,
        }
    ]
}
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Run the grader once over the whole fake class."""
    root = tmp_path_factory.mktemp("class")
    submissions = root / "submissions"
    build_class(submissions)
    (root / "hidden_cases.py").write_text(HIDDEN)
    out = root / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ppo_lessons.grade", str(submissions),
               "--out", str(out), "--timeout", str(TIMEOUT),
               "--memory-mb", str(MEMORY_MB), "--hidden", str(root / "hidden_cases.py")]  # fmt: skip
    for lesson in LESSONS:
        command += ["--lesson", lesson]
    start = time.monotonic()
    # from a copy of the package: the grader stops when the package's files change,
    # and the project's may be edited while the tests run
    home = root / "pkg"
    shutil.copytree(
        ROOT / "ppo_lessons",
        home / "ppo_lessons",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=home, timeout=600
    )
    seconds = time.monotonic() - start
    with open(out / "results.csv", newline="") as f:
        results = list(csv.DictReader(f))
    with open(out / "summary.csv", newline="") as f:
        summary = {row["student"]: row for row in csv.DictReader(f)}
    return {
        "proc": proc,
        "seconds": seconds,
        "out": out,
        "root": root,
        "results": {(r["student"], r["exercise"]): r for r in results},
        "summary": summary,
    }


def test_the_run_finishes_with_status_1_and_no_traceback(graded):
    proc = graded["proc"]
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(EXPECTED) >= 20


def test_every_student_gets_the_expected_score(graded):
    summary = graded["summary"]
    assert set(summary) == set(EXPECTED)
    wrong = {
        student: (row["total"], EXPECTED[student][0])
        for student, row in summary.items()
        if int(row["total"]) != EXPECTED[student][0]
    }
    assert not wrong, wrong
    assert {row["max_points"] for row in summary.values()} == {"10"}


def test_every_exercise_gets_the_expected_status(graded):
    results = graded["results"]
    mismatched = {}
    for student, (_, statuses) in EXPECTED.items():
        for number, status in statuses.items():
            got = results[(student, number)]["status"]
            if got != status:
                mismatched[(student, number)] = (
                    got,
                    results[(student, number)]["message"],
                )
    assert not mismatched, mismatched


def test_points_come_from_the_exercise_table(graded):
    summary = graded["summary"]["alice"]
    assert summary["2.1 probability_ratio"] == "1"
    assert summary["2.2 surrogate_objective"] == "2"
    assert summary["3.1 clipped_surrogate_objective"] == "3"
    assert summary["4.1 compute_gae"] == "4"


def test_no_exercise_runs_past_its_time_limit(graded):
    results = graded["results"].values()
    slowest = max(float(r["seconds"]) for r in results if r["seconds"])
    assert slowest <= TIMEOUT + 2, slowest
    assert graded["results"][("frank", "4.1")]["message"].startswith(
        f"took longer than {TIMEOUT} s (an infinite loop?)"
    )
    # about 25 processes, 2 at a time, one of them a full time limit
    assert graded["seconds"] < 240, graded["seconds"]


def test_messages_tell_the_student_what_to_fix(graded):
    results = graded["results"]
    truncation = results[("carol", "4.1")]["message"]
    assert "truncation" in truncation and "bootstrap" in truncation
    assert "terminated" in truncation
    clipping = results[("bob", "3.1")]["message"]
    assert "MAX" in clipping and "min" in clipping
    assert "no gradient" in results[("nick", "3.1")]["message"]
    assert "raised ValueError: shapes confuse me" in results[("erin", "4.1")]["message"]
    assert "hidden case" in results[("hank", "4.1")]["message"]
    assert (
        f"ran out of memory (limit {MEMORY_MB} MB)"
        in (results[("grace", "4.1")]["message"])
    )
    assert "sys.exit" in results[("ivan", "4.1")]["message"]
    assert "os._exit" in results[("judy", "4.1")]["message"]
    assert "could not be replayed" in results[("walter", "4.1")]["message"]
    assert "compute_gae_v2" in results[("quinn", "4.1")]["message"]
    assert "line" in results[("rupert", "4.1")]["message"]
    assert "NameError" in results[("victor", "4.1")]["message"]
    assert "not a Jupyter notebook" in results[("xavier", "4.1")]["message"]
    assert "lesson 1" in results[("yvonne", "4.1")]["message"]
    assert "# Exercise 4.1: compute_gae" in results[("zoe", "4.1")]["message"]


def test_tampering_with_the_check_earns_nothing(graded):
    results = graded["results"]
    for student in ("oscar", "peggy", "trudy", "walter"):
        assert results[(student, "4.1")]["points"] == "0", student
    # oscar returns zeros: the untouched check names what is wrong with them
    assert "advantage" in results[("oscar", "4.1")]["message"]


def test_misbehaviour_does_not_affect_other_students(graded):
    # mallory deletes what she can around her; heidi prints 5 MB per call
    results = graded["results"]
    assert results[("mallory", "4.1")]["status"] == "correct"
    assert results[("heidi", "4.1")]["status"] == "correct"
    assert graded["summary"]["alice"]["total"] == "10"
    assert (graded["root"] / "hidden_cases.py").exists()


def test_reports_for_the_class_and_each_student(graded):
    out = graded["out"]
    summary = (out / "summary.md").read_text()
    assert "# Class summary" in summary
    for student in EXPECTED:
        assert f"| {student} |" in summary
        assert (out / "feedback" / f"{student}.md").exists()
    carol = (out / "feedback" / "carol.md").read_text()
    assert "Score: 0 / 10" in carol and "time-limit truncation" in carol
    alice = (out / "feedback" / "alice.md").read_text()
    assert "Score: 10 / 10" in alice
    assert "frank" in graded["proc"].stdout


# ---------------------------------------------------------------- in-process


@pytest.mark.parametrize(
    ("check", "fn"),
    [
        (checks.check_probability_ratio, probability_ratio),
        (checks.check_clipped_surrogate_objective, clipped_surrogate_objective),
        (checks.check_probability_ratio, lambda n, o: torch.exp(n - o).detach()),
        (checks.check_probability_ratio, lambda n, o: (n - o.add_(1.0) + 1.0).exp()),
        (checks.check_clipped_surrogate_objective, lambda n, o, a, e: (n - o).sum()),
        (checks.check_probability_ratio, lambda n, o: [1.0]),
    ],
    ids=["ratio", "clipped", "detached", "in-place", "wrong", "a-list"],
)
def test_replay_gives_the_verdict_of_the_direct_check(check, fn):
    direct, again = replayed(check, fn)
    assert direct == again


def test_replay_refuses_records_of_other_arguments():
    recorder = Recorder(probability_ratio)
    with redirect_stdout(io.StringIO()):
        checks.check_probability_ratio(recorder)
    recorder.calls[1]["args"][0]["value"] += 0.5
    with pytest.raises(ReplayMismatch), redirect_stdout(io.StringIO()):
        checks.check_probability_ratio(Replayer(recorder.calls))


def test_hidden_case_file_is_checked_against_the_reference(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(HIDDEN)
    assert set(grade.load_hidden_cases(good)) == {"compute_gae"}
    bad = tmp_path / "bad.py"
    bad.write_text(HIDDEN.replace('"lam"', '"lambda"'))
    with pytest.raises(grade.UsageError, match="fail with the reference"):
        grade.load_hidden_cases(bad)


def test_bad_command_lines_exit_with_status_2(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing")]) == 2
    assert grade.main([str(tmp_path), "--lesson", "99"]) == 2
    assert grade.main([str(tmp_path), "--timeout", "0"]) == 2
    assert grade.main([str(tmp_path)]) == 2  # no notebooks
    with pytest.raises(SystemExit) as stop:
        grade.main(["--timeout", "soon"])
    assert stop.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_nbgrader_export_marks_exercise_and_check_cells(tmp_path):
    solutions = tmp_path / "solutions"
    lesson_notebook(solutions / "04_gae.ipynb", "4.1", "compute_gae", gae())
    (written,) = grade.nbgrader_export(solutions, tmp_path / "nbgrader")
    cells = json.loads(written.read_text())["cells"]
    exercise = next(c for c in cells if "".join(c["source"]).startswith("# Exercise"))
    check = next(c for c in cells if "_gae(compute_gae)" in "".join(c["source"]))
    assert exercise["metadata"]["nbgrader"] == {
        "grade": False, "solution": True, "locked": False,
        "grade_id": "exercise-4-1", "schema_version": 3,
    }  # fmt: skip
    assert check["metadata"]["nbgrader"]["points"] == 4
    assert check["metadata"]["nbgrader"]["grade"] is True
    assert "\nassert check_compute_gae(compute_gae)" in "".join(check["source"])
