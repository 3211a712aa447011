"""The PPO doctor on recorded runs of the LunarLander and MuJoCo presets: healthy
runs get no finding.

tests/data/lunar_preset_histories.json: three full LunarLander-v3 runs of its preset
(seeds 1, 2, 4; deterministic evaluation 245.7-253.9) and three of
LunarLanderContinuous-v3 (seeds 1-3; 274.5-279.4).

tests/data/mujoco_preset_histories.json holds the per-update metrics of
bench/bench_presets.py runs of HalfCheetah-v5, Hopper-v5 and Walker2d-v5 (seeds 1-3,
CleanRL's settings; their source line says how they were made). Each run learned
(deterministic evaluation: HalfCheetah 1410-1679, Hopper 2357-3424, Walker2d
1101-3942 after about half of the 1M steps) while its Gaussian policy's entropy
fell by several nats: normal learning for a policy whose σ shrinks, which the
doctor's first calibration (on classic control) named entropy_collapse. Ant-v5 runs
are in the file too, with CleanRL's 10 epochs: the doctor names their clip fraction
(median 0.46), and they are not asserted on here.

tests/data/ant_full_histories.json: two full 1M-step Ant-v5 runs of seed 11, with
CleanRL's 10 epochs (evaluation 1341.2; median clip fraction 0.48, named) and with the
preset's 5 epochs (1356.3; 0.26, quiet): why the Ant preset takes 5 epochs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ppo_lessons.doctor import COLLAPSE_DROP, action_dims, diagnose
from ppo_lessons.presets import preset

DATA = Path(__file__).resolve().parents[1] / "data"
RUNS = json.loads((DATA / "mujoco_preset_histories.json").read_text())["runs"]
HEALTHY = [run for run in RUNS if run["env_id"] != "Ant-v5"]
LUNAR = json.loads((DATA / "lunar_preset_histories.json").read_text())["runs"]
ANT = {
    run["update_epochs"]: run
    for run in json.loads((DATA / "ant_full_histories.json").read_text())["runs"]
}


def history(run: dict) -> list[dict]:
    """The stored rows, with the JSON nulls back as the NaNs the trainer logs."""
    return [
        {k: (math.nan if v is None else v) for k, v in row.items()}
        for row in run["history"]
    ]


@pytest.mark.parametrize(
    "run", HEALTHY, ids=lambda run: f"{run['env_id']}-seed{run['seed']}"
)
def test_healthy_mujoco_run_is_quiet(run):
    assert diagnose(history(run)) == []


@pytest.mark.parametrize(
    "run", LUNAR, ids=lambda run: f"{run['env_id']}-seed{run['seed']}"
)
def test_healthy_lunar_lander_run_is_quiet(run):
    assert run["eval_mean"] >= 200  # it learned
    assert diagnose(history(run)) == []


def test_the_entropy_of_these_runs_fell_by_more_than_the_old_rule_allowed():
    """The case this calibration is for: at least one healthy run whose entropy fell
    more than 3 nats in its first quarter (the old, per-policy threshold), so the
    quiet verdicts above are not quiet for lack of a falling entropy."""
    drops = []
    for run in HEALTHY:
        entropy = [row["entropy"] for row in run["history"]]
        early = entropy[: max(2, len(entropy) // 4)]
        drops.append(entropy[0] - min(early))
    assert max(drops) > 3.0


def test_a_gaussian_that_collapses_in_every_dimension_is_still_named():
    """A six-dimensional policy whose σ shrinks e^4-fold in each dimension within
    the first quarter: named. Catches a calibration that silenced the rule."""
    rows = history(HEALTHY[0])
    start = rows[0]["entropy"]
    dims = action_dims(start)
    assert dims == 6  # HalfCheetah-v5
    for row in rows[1 : len(rows) // 8]:
        row["entropy"] = start - (COLLAPSE_DROP + 1.0) * dims
    assert "entropy_collapse" in [f.problem for f in diagnose(rows)]


def test_a_full_ant_run_with_the_presets_epochs_is_quiet():
    """The Ant preset's 5 epochs: a run that learned (evaluation above 1000) over the
    whole 1M-step budget gets no finding."""
    run = ANT[5]
    assert run["eval_mean"] > 1000 and run["steps"] > 990_000
    assert preset("Ant-v5").update_epochs == 5
    assert diagnose(history(run)) == []


def test_a_full_ant_run_with_cleanrls_ten_epochs_is_named_for_its_clip_fraction():
    """The same seed with 10 epochs learned as well but clipped half its samples,
    with a median approx KL of 0.040 per update (healthy runs: at most 0.021): the
    doctor names both (catches a calibration that silenced the clip rule), and the
    preset takes 5 epochs instead."""
    findings = [f.problem for f in diagnose(history(ANT[10]))]
    assert findings == ["kl_too_high", "clip_fraction_high"]
