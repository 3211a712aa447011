"""The PPO doctor on stored histories of real runs: quiet on healthy runs whose seeds
did not set its thresholds, and naming each broken run for what broke it.

The histories (tests/data/doctor_*.json, columns of the metrics the doctor reads, 4
significant digits, null for NaN) were recorded with bench/doctor_calibration.py; each
file's `source` says how. docs/doctor.md shows the calibration they check.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ppo_lessons.doctor import diagnose

DATA = Path(__file__).parent / "data"


def load(name: str) -> list[dict]:
    return json.loads((DATA / name).read_text())["runs"]


def rows(run: dict) -> list[dict]:
    """A stored run's columns as the trainer's rows (null: NaN)."""
    columns = run["history"]
    n = len(columns["update"])
    return [
        {k: (math.nan if v[i] is None else v[i]) for k, v in columns.items()}
        for i in range(n)
    ]


def test_cli_defaults_seed_5_is_quiet():
    """`python -m ppo_lessons.train --env-id CartPole-v1 --total-steps 200000
    --seed 5` (Gymnasium backend): solved (evaluation 500), and its entropy falls
    from 0.683 to 0.05-0.1 between updates 120 and 200 of 781, after the returns
    reached 500. The rule that read single updates named it entropy_collapse; a
    nearly deterministic policy that has learned is not a collapse."""
    (run,) = load("doctor_cartpole_cli_seed5.json")
    history = rows(run)
    assert run["eval_mean"] == 500.0
    start = history[0]["entropy"]
    early = [r["entropy"] for r in history[: len(history) // 4]]
    assert sum(v < 0.1 * start for v in early) >= 10, "the pattern: a low entropy"
    assert diagnose(history) == []
