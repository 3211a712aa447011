"""Helpers for the lesson notebooks themselves.

`setup()` is the first code cell of every lesson: it fixes the seeds, makes
matplotlib figures readable on a static page, and keeps PyTorch to one thread under
the test command (`ppo_lessons.quick_mode()`), where several notebooks run in parallel
on a small machine and would otherwise fight over the cores.

`load_exercise(notebook, function)` brings a function the student wrote in an earlier
lesson's notebook into a later one; `your_functions(folder)` gathers every function
the trainer takes that the student solved (lesson 07's capstone).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ppo_lessons import quick_mode

__all__ = ["exercise_function", "load_exercise", "setup", "your_functions"]


def setup(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch; set plotting defaults; cap threads in quick mode.

    Args:
        seed: the seed of the lesson's random draws (printed results depend on it).
    """
    import matplotlib as mpl

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seeds the global draws students may use)
    torch.manual_seed(seed)
    if quick_mode():
        torch.set_num_threads(1)
    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 9,
        }
    )
    print(f"seed {seed}; quick mode {'on' if quick_mode() else 'off'}")


def exercise_function(notebook: str | Path, function: str) -> Callable:
    """The function of an exercise cell of a saved lesson notebook, NOT checked.

    The exercise cell (first line `# Exercise 4.1: compute_gae`) is cut out of
    `notebook` the way the grader does it (`ppo_lessons.cells`) and run
    after the notebook's import lines in a namespace of its own. Nothing else of the
    notebook runs.

    Raises:
        ValueError: naming why there is no function: not an exercise of the course,
            no notebook, no such cell, the cell raised, or it defines no function.
    """
    from ppo_lessons.cells import exercise_cell, read_notebook
    from ppo_lessons.exercises import EXERCISES

    by_name = {ex.function: ex for ex in EXERCISES}
    if function not in by_name:
        raise ValueError(
            f"function {function!r} is not an exercise of the course; exercises: "
            f"{', '.join(by_name)}"
        )
    exercise = by_name[function]
    path = Path(notebook)
    if not path.is_file():
        raise ValueError(f"no notebook at {path}")
    nb = read_notebook(path, student="you")
    source, why = (None, nb.problem) if nb.problem else exercise_cell(nb, exercise)
    if source is None:
        raise ValueError(why)
    namespace: dict = {"__name__": f"exercise_{exercise.number.replace('.', '_')}"}
    for line in nb.imports:
        with contextlib.suppress(Exception):  # an import that fails here is not fatal
            exec(compile(line, f"<{path.name} imports>", "exec"), namespace)
    try:
        exec(
            compile(source, f"<{path.name}: Exercise {exercise.number}>", "exec"),
            namespace,
        )
    except Exception as error:
        raise ValueError(
            f"running the cell of Exercise {exercise.number} in {path.name} raised "
            f"{type(error).__name__}: {error}"
        ) from None
    yours = namespace.get(function)
    if not callable(yours):
        raise ValueError(f"{function} in {path.name} is not a function")
    return yours


def load_exercise(notebook: str | Path, function: str) -> Callable:
    """Your solution of an exercise, read from your saved lesson notebook and checked;
    the reference version when it is missing, unfinished or wrong.

    The function is read by `exercise_function` and passed to the exercise's check
    (`ppo_lessons.checks`). What happened is printed in one or two lines; this never
    raises for a problem of the notebook or the function: the lesson goes on with the
    reference.

    Args:
        notebook: the saved lesson notebook, e.g. Path("04_gae.ipynb") (the notebook
            on disk: save it first, unsaved edits in JupyterLab are not seen).
        function: the exercise's function name, e.g. "compute_gae".

    Returns:
        Your function if it passes its check, otherwise the reference from the package.
    """
    from ppo_lessons import checks
    from ppo_lessons.exercises import EXERCISES

    by_name = {ex.function: ex for ex in EXERCISES}
    if function not in by_name:
        raise ValueError(
            f"function {function!r} is not an exercise of the course; exercises: "
            f"{', '.join(by_name)}"
        )
    exercise = by_name[function]
    reference = getattr(importlib.import_module(exercise.module), function)
    fallback = f"using the reference {exercise.module}.{function} instead."
    path = Path(notebook)
    try:
        yours = exercise_function(path, function)
    except ValueError as why:
        print(f"{why}\n{fallback}" if "\n" in str(why) else f"{why}: {fallback}")
        return reference
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # one line of our own instead
            result = getattr(checks, exercise.check_name)(yours)
    except AssertionError as error:
        print(f"your {function} from {path.name} fails its check:\n{error}\n{fallback}")
        return reference
    if not result:
        print(
            f"Exercise {exercise.number} ({function}) in {path.name} is not "
            f"implemented yet: {fallback}"
        )
        return reference
    print(
        f"✔ using your {function} from {path.name} (Exercise {exercise.number}, "
        f"correct on all {result.cases} test cases)."
    )
    return yours


def your_functions(lessons_dir: str | Path = ".") -> dict[str, Callable]:
    """Every exercise function the trainer calls that you solved in your lesson
    notebooks (in `lessons_dir`), each read and checked by `load_exercise`; one printed
    line per function says whether yours or the reference is used.

    Returns:
        {exercise name: your function} for the ones that pass their checks; pass it
        to `train(config, functions=...)`.
    """
    from ppo_lessons.exercises import EXERCISES
    from ppo_lessons.functions import REFERENCES, TRAINER_EXERCISES

    folder = Path(lessons_dir)
    notebooks = {p.name[:2]: p for p in folder.glob("[0-9][0-9]_*.ipynb")}
    yours: dict[str, Callable] = {}
    for exercise in EXERCISES:
        if exercise.function not in TRAINER_EXERCISES:
            continue
        path = notebooks.get(f"{exercise.lesson:02d}")
        if path is None:
            print(f"{exercise.function}: no lesson {exercise.lesson:02d} notebook in "
                  f"{folder}; the reference is used")  # fmt: skip
            continue
        fn = load_exercise(path, exercise.function)
        if fn is not REFERENCES[exercise.function]:
            yours[exercise.function] = fn
    return yours
