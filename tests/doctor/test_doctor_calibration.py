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

import pytest

from ppo_lessons.doctor import diagnose

DATA = Path(__file__).resolve().parents[1] / "data"


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


# the held-out runs: seeds that set no threshold (the calibration read seeds 1-6 of
# CartPole-v1 on the torch env, the CLI's seed 5 on Gymnasium's, seed 1 of Acrobot-v1
# and Pendulum-v1, and the preset histories of tests/doctor/test_presets_doctor.py)
HELD_OUT = load("doctor_healthy_held_out.json")
CALIBRATION_SEEDS = {
    ("CartPole-v1", "torch"): range(1, 7),
    ("CartPole-v1", "gymnasium"): [5],
    ("Acrobot-v1", "torch"): [1],
    ("Pendulum-v1", "torch"): [1],
}


@pytest.mark.parametrize(
    "run",
    HELD_OUT,
    ids=lambda run: f"{run['env_id']}-{run['env_backend']}-seed{run['seed']}",
)
def test_held_out_healthy_run_is_quiet(run):
    assert run["seed"] not in CALIBRATION_SEEDS[run["env_id"], run["env_backend"]]
    assert diagnose(rows(run)) == []


def test_the_held_out_set_covers_the_cli_defaults_on_both_backends():
    """CartPole-v1 with the CLI's defaults (200,000 steps, 781 updates) on both
    backends, shorter CartPole-v1 runs, and the presets of Acrobot-v1 and
    Pendulum-v1."""
    full = [r for r in HELD_OUT if len(r["history"]["update"]) == 781]
    assert {r["env_backend"] for r in full} == {"torch", "gymnasium"}
    assert len(full) >= 15
    assert {r["env_id"] for r in HELD_OUT} == {
        "CartPole-v1",
        "Acrobot-v1",
        "Pendulum-v1",
    }


def test_a_solved_run_with_large_kl_jumps_is_quiet():
    """CartPole-v1 on the torch env, seed 112: solved, then, with its entropy at
    0.1-0.15, seven updates between 371 and 412 read an approx KL of 0.7-1.5, and
    the policy kept moving after each (the next updates' median above 1e-4). The
    rule that named any update above 0.5 named it; a later jump counts only when
    the policy then stops moving."""
    (run,) = [r for r in HELD_OUT if r["seed"] == 112]
    kl = run["history"]["approx_kl"]
    assert sum(v > 0.5 for v in kl) >= 5, "the pattern: several jumps"
    assert diagnose(rows(run)) == []


# CartPole-v1 on the torch env, seed 1, each run broken in one way; what the doctor
# must name (it may name more: a learning rate 100x too high also collapses the policy)
BROKEN = {
    "learning rate 0.1 (100x)": "kl_too_high",
    "learning rate 1e-6 (1/1000)": "policy_not_moving",
    "1000 epochs (no annealing)": "clip_fraction_high",
    "vf_coef 0": "value_not_learning",
    "clip_coef 0.001": "clip_fraction_high",
    "entropy bonus, wrong sign (0.5)": "entropy_collapse",
}
BROKEN_RUNS = {run["name"]: run for run in load("doctor_broken_cartpole.json")}


def test_every_broken_run_is_stored():
    assert sorted(BROKEN_RUNS) == sorted(BROKEN)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_run_is_named(name):
    findings = [f.problem for f in diagnose(rows(BROKEN_RUNS[name]))]
    assert BROKEN[name] in findings, f"{name}: the doctor said {findings}"
