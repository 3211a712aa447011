"""Grade students' notebooks: run each exercise through its check, write the reports.

    python -m ppo_lessons.grade submissions/                  # a folder, searched
    python -m ppo_lessons.grade alice.ipynb bob/ --lesson 4   # files and folders
    python -m ppo_lessons.grade submissions/ --hidden hidden_cases.py --timeout 30
    python -m ppo_lessons.grade --nbgrader-export nbgrader/source/ppo

Each exercise cell (first line `# Exercise 4.1: compute_gae`) is cut out of the
notebook, preceded by the notebook's top-level import lines, and run in a process of
its own with limits on time, memory and output; the notebook as a whole is never run.
The check named in `ppo_lessons.exercises` judges it; points come from that table
only. See docs/INSTRUCTORS.md for the student-naming rule, hidden tests, the outputs
and what the isolation does and does not protect against.

Exit status: 0 when every submission was graded normally (right or wrong), 1 when
some were malformed or misbehaved (timeout, crash, sys.exit, ...), 2 for a bad command
line.
"""

from __future__ import annotations

from ppo_lessons.grading.classroom import Graded, grade, grade_class
from ppo_lessons.grading.cli import main
from ppo_lessons.grading.export import nbgrader_export
from ppo_lessons.grading.judge import (
    Result,
    Settings,
    UsageError,
    judge,
    load_hidden_cases,
)
from ppo_lessons.grading.reports import write_reports

__all__ = [
    "Graded",
    "Result",
    "Settings",
    "UsageError",
    "grade",
    "grade_class",
    "judge",
    "load_hidden_cases",
    "main",
    "nbgrader_export",
    "write_reports",
]

if __name__ == "__main__":
    raise SystemExit(main())
