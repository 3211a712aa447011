"""Lesson 07's capstone: a folder of solved lesson notebooks trains CartPole with every
function the student wrote, each one called; with one of them broken, that one is named
and replaced by its reference, and the run still learns.

The solution notebooks stand in for a student's folder: they are the same notebooks
with every exercise solved. Measured with OMP_NUM_THREADS=1 on the course's 2-core
machine: about 20 s per training run (the fast torch-backend CartPole preset).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ppo_lessons.functions import TRAINER_EXERCISES, function_report
from ppo_lessons.notebook import your_functions
from ppo_lessons.presets import preset
from ppo_lessons.trainer import evaluate, train

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"
SOLVED = 475.0


def capstone_config():
    return preset("CartPole-v1", env_backend="torch", seed=1, device="cpu")


def test_every_solved_function_trains_and_is_called(capsys):
    # catches: a capstone that says "your functions" while the trainer (or the
    # student's own update) calls the package's references
    yours = your_functions(SOLUTIONS)
    assert set(yours) == set(TRAINER_EXERCISES)
    config = capstone_config()
    result = train(config, functions=yours, progress=False)
    assert float(evaluate(result.agent, config.env_id, 10).mean()) >= SOLVED
    calls = result.function_calls
    # Box actions only; a recurrent policy only
    not_called = {"gaussian_log_prob", "replay_sequence"}
    assert {n for n in TRAINER_EXERCISES if calls[n] == 0} == not_called
    minibatch_steps = config.num_updates * config.update_epochs * config.num_minibatches
    assert calls["ppo_loss"] >= minibatch_steps // config.update_epochs  # target_kl
    assert calls["actor_critic_networks"] == 1
    report = function_report(calls)
    assert "gaussian_log_prob            yours, not called in this run" in report


def break_exercise(folder: Path, notebook: str, header: str, old: str, new: str):
    path = folder / notebook
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if source.startswith(header):
            assert old in source
            cell["source"] = source.replace(old, new)
            break
    else:
        raise AssertionError(f"no cell starting with {header!r} in {notebook}")
    path.write_text(json.dumps(nb))


def class_with_a_flipped_loss(tmp_path: Path) -> Path:
    """A copy of the solved folder whose Exercise 6.2 flips the policy term's sign."""
    folder = tmp_path / "class"
    shutil.copytree(SOLUTIONS, folder)
    break_exercise(
        folder,
        "06_the_ppo_update.ipynb",
        "# Exercise 6.2: ppo_loss",
        "return -objective + vf_coef",
        "return objective + vf_coef",
    )
    return folder


def test_a_broken_function_is_named_replaced_alone_and_the_run_still_learns(
    tmp_path, capsys
):
    folder = class_with_a_flipped_loss(tmp_path)
    yours = your_functions(folder)
    out = capsys.readouterr().out
    assert "your ppo_loss from 06_the_ppo_update.ipynb fails its check" in out
    assert set(yours) == set(TRAINER_EXERCISES) - {"ppo_loss"}
    config = capstone_config()
    result = train(config, functions=yours, progress=False)
    # the student's update now calls the reference loss, built on their objective
    assert result.function_calls["clipped_surrogate_objective"] > 0
    assert "ppo_loss" not in result.function_calls
    assert float(evaluate(result.agent, config.env_id, 10).mean()) >= SOLVED


@pytest.mark.parametrize("name", ["ppo_loss"])
def test_the_broken_function_alone_does_not_learn(tmp_path, name):
    # the control of the test above: the same flipped loss, given to the trainer
    # directly, stops learning, so "still learns" is not a property of any loss
    folder = class_with_a_flipped_loss(tmp_path)
    from ppo_lessons.notebook import exercise_function

    broken = exercise_function(folder / "06_the_ppo_update.ipynb", name)
    config = capstone_config()
    result = train(config, functions={name: broken}, progress=False)
    assert float(evaluate(result.agent, config.env_id, 10).mean()) < 100.0
