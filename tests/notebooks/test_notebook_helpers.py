"""Helpers of the lesson notebooks.

`ppo_lessons.notebook.load_exercise`: lesson 07 trains with the student's own
functions, read from their saved lesson notebooks. It must hand back the student's
function only when it passes its check, and otherwise the reference, with a message
that says why, without ever stopping the lesson. `ppo_lessons.plotting.history_curves`
and `plot_band`: the learning curves of lesson 07.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.gae import compute_gae
from ppo_lessons.notebook import load_exercise

ROOT = Path(__file__).resolve().parents[2]

HEADER = "# Exercise 4.1: compute_gae\n"
LOOP_GAE = """
def compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    not_terminal = 1.0 - terminated.to(rewards.dtype)
    not_done = 1.0 - (terminated.bool() | truncated.bool()).to(rewards.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values
"""
# a typical tutorial's flaw: a time-limit truncation treated as a termination
TRUNCATION_BUG = LOOP_GAE.replace(
    "1.0 - terminated.to(rewards.dtype)",
    "1.0 - (terminated.bool() | truncated.bool()).to(rewards.dtype)",
)
STUB = """
def compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 4.1: not written yet")
"""


def notebook(tmp_path: Path, *cells: str, name: str = "04_gae.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson 04")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_a_correct_solution_is_used(tmp_path, capsys):
    path = notebook(tmp_path, "import torch", HEADER + LOOP_GAE)
    fn = load_exercise(path, "compute_gae")
    out = capsys.readouterr().out
    assert fn is not compute_gae and fn.__name__ == "compute_gae"
    assert out == (
        "✔ using your compute_gae from 04_gae.ipynb (Exercise 4.1, correct on all "
        "13 test cases).\n"
    )


def test_the_notebooks_import_lines_are_run_first(tmp_path):
    # the cell uses torch, imported only in an earlier cell of the notebook
    path = notebook(tmp_path, "import numpy as np\nimport torch", HEADER + LOOP_GAE)
    assert load_exercise(path, "compute_gae") is not compute_gae
    # without the import the cell's function fails when called: the reference is used
    path = notebook(tmp_path, HEADER + LOOP_GAE, name="04_no_import.ipynb")
    assert load_exercise(path, "compute_gae") is compute_gae


def test_the_last_copy_of_the_exercise_cell_counts(tmp_path):
    path = notebook(tmp_path, "import torch", HEADER + STUB, HEADER + LOOP_GAE)
    assert load_exercise(path, "compute_gae") is not compute_gae


def test_an_unfinished_exercise_falls_back_to_the_reference(tmp_path, capsys):
    path = notebook(tmp_path, "import torch", HEADER + STUB)
    assert load_exercise(path, "compute_gae") is compute_gae
    assert capsys.readouterr().out == (
        "Exercise 4.1 (compute_gae) in 04_gae.ipynb is not implemented yet: using "
        "the reference ppo_lessons.gae.compute_gae instead.\n"
    )


def test_a_wrong_solution_falls_back_and_says_what_is_wrong(tmp_path, capsys):
    path = notebook(tmp_path, "import torch", HEADER + TRUNCATION_BUG)
    assert load_exercise(path, "compute_gae") is compute_gae
    out = capsys.readouterr().out
    assert "fails its check" in out and "truncation" in out
    assert "using the reference" in out


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (("import torch",), "has no cell for Exercise 4.1"),
        (("import torch", HEADER + "def compute_gae(:\n    pass"), "syntax error"),
        (("import torch", HEADER + "def gae(r):\n    return r"), "does not define"),
        (("import torch", HEADER + LOOP_GAE + "\n1 / 0"), "ZeroDivisionError"),
        (("import torch", HEADER + LOOP_GAE + "\ncompute_gae = 3"), "not a function"),
    ],
    ids=["no cell", "syntax error", "renamed", "cell raises", "not a function"],
)
def test_a_broken_exercise_cell_falls_back(tmp_path, capsys, cells, message):
    path = notebook(tmp_path, *cells)
    assert load_exercise(path, "compute_gae") is compute_gae
    out = capsys.readouterr().out
    assert message in out and "using the reference" in out


def test_a_missing_or_unreadable_notebook_falls_back(tmp_path, capsys):
    fn = load_exercise(tmp_path / "03_clipping.ipynb", "clipped_surrogate_objective")
    assert fn is clipped_surrogate_objective
    assert "no notebook at" in capsys.readouterr().out
    broken = tmp_path / "04_gae.ipynb"
    broken.write_text("{not json")
    assert load_exercise(broken, "compute_gae") is compute_gae
    assert "not a Jupyter notebook" in capsys.readouterr().out


def test_an_unknown_function_is_a_usage_error(tmp_path):
    with pytest.raises(ValueError, match="not an exercise of the course"):
        load_exercise(tmp_path / "04_gae.ipynb", "compute_gea")


@pytest.mark.parametrize(
    ("notebook_name", "function", "reference"),
    [
        (
            "03_clipping.ipynb",
            "clipped_surrogate_objective",
            clipped_surrogate_objective,
        ),
        ("04_gae.ipynb", "compute_gae", compute_gae),
    ],
)
def test_the_course_notebooks(notebook_name, function, reference):
    """What lesson 07 loads: the solution's own function; the student stub's
    reference."""
    solved = load_exercise(ROOT / "solutions" / notebook_name, function)
    assert solved is not reference and solved.__name__ == function
    assert load_exercise(ROOT / "notebooks" / notebook_name, function) is reference


# ---------------------------------------------------------------- plotting helpers


def test_history_curves_carries_the_last_return_over_updates_without_episodes():
    from ppo_lessons.plotting import history_curves

    nan = float("nan")
    runs = [
        [{"episodic_return": nan}, {"episodic_return": 10.0}, {"episodic_return": nan}],
        [{"episodic_return": 5.0}, {"episodic_return": nan}, {"episodic_return": 7.0}],
    ]
    curves = history_curves(runs, "episodic_return")
    assert curves.shape == (2, 3)
    assert np.isnan(curves[0, 0])  # nothing to carry yet
    assert curves[0, 1:].tolist() == [10.0, 10.0]
    assert curves[1].tolist() == [5.0, 5.0, 7.0]
    with pytest.raises(ValueError, match="same number of updates"):
        history_curves([runs[0], runs[1][:2]], "episodic_return")


def test_plot_band_labels_one_run_without_a_band():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ppo_lessons.plotting import plot_band

    fig, ax = plt.subplots()
    plot_band(ax, [0, 1], [[1.0, 2.0]], "one")
    plot_band(ax, [0, 1], [[1.0, 2.0], [3.0, 4.0]], "two")
    labels = [line.get_label() for line in ax.get_lines()]
    plt.close(fig)
    assert labels == ["one (1 seed)", "two (2 seeds, ± 1 std)"]
