"""What every exercise check shares (`ppo_lessons.checks.harness`): the one line an
unsolved exercise prints, the value a check leaves in a notebook cell, and the table of
lesson notebooks the messages name."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ppo_lessons import checks
from ppo_lessons.checks.harness import NOTEBOOKS, CheckResult
from ppo_lessons.exercises import EXERCISES

ROOT = Path(__file__).resolve().parents[2]
BY_CHECK = {ex.check_name: ex for ex in EXERCISES}


def stub(*args):
    raise NotImplementedError("Exercise: not written yet")


def test_every_exercise_has_a_check_and_every_check_an_exercise():
    assert set(checks.__all__) == set(BY_CHECK)


@pytest.mark.parametrize("name", sorted(BY_CHECK))
def test_an_unsolved_exercise_prints_one_line_naming_it_and_its_notebook(name, capsys):
    exercise = BY_CHECK[name]
    result = getattr(checks, name)(stub)
    out = capsys.readouterr().out
    assert result.passed is False and not result
    assert out.count("\n") == 1, out  # one line
    assert out.startswith(f"Exercise {exercise.number} ({exercise.function}, ")
    assert NOTEBOOKS[exercise.lesson] in out and "not implemented yet" in out
    assert "…" not in out and out.count("reference") == 1


def test_the_notebooks_named_are_the_course_notebooks():
    lessons = {ex.lesson for ex in EXERCISES}
    assert lessons <= set(NOTEBOOKS)
    for name in NOTEBOOKS.values():
        assert (ROOT / "solutions" / name).is_file(), name
        assert (ROOT / "notebooks" / name).is_file(), name


def test_a_check_result_is_true_only_when_correct_and_compares_by_content():
    right, unsolved = CheckResult("f", True, 7), CheckResult("f", False)
    assert right and not unsolved
    assert right == CheckResult("f", True, 7) != CheckResult("f", True, 6)
    assert hash(right) == hash(CheckResult("f", True, 7))
    assert "correct on 7 cases" in repr(right) and "not done" in repr(unsolved)


@pytest.mark.heavy  # a Jupyter kernel
def test_a_check_on_the_last_line_of_a_cell_leaves_no_value_in_jupyter():
    """The stray `False` (or `True`) below a check's line: a real kernel must show
    the printed line and nothing else."""
    cells = [
        "from ppo_lessons.checks import check_probability_ratio\n"
        "from ppo_lessons.importance_sampling import probability_ratio\n\n"
        "def unsolved(new_log_probs, old_log_probs):\n"
        "    raise NotImplementedError",
        "check_probability_ratio(unsolved)",
        "check_probability_ratio(probability_ratio)",
        "True",  # the control: a plain value IS shown as the cell's result
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = [[o["output_type"] for o in cell.outputs] for cell in nb.cells]
    assert outputs[1:] == [["stream"], ["stream"], ["execute_result"]]
    assert "not implemented yet" in nb.cells[1].outputs[0]["text"]
    assert "✔ probability_ratio" in nb.cells[2].outputs[0]["text"]
