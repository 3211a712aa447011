"""`python -m ppo_lessons.train --seeds ...`: seeds trained as one population."""

from __future__ import annotations

import json

import pytest

from ppo_lessons.train import main

SMALL = ["--env-id", "CartPole-v1", "--env-backend", "torch", "--total-steps", "2048",
         "--no-progress", "--device", "cpu", "--eval-episodes", "2"]  # fmt: skip


def test_seeds_train_one_population_with_a_summary_per_member(tmp_path, capsys):
    path = tmp_path / "summary.json"
    assert main([*SMALL, "--seeds", "4", "2", "--summary-json", str(path)]) == 0
    summary = json.loads(path.read_text())
    assert summary["seeds"] == [4, 2] and summary["total_steps"] == 2048
    assert summary["config"]["num_envs"] == 16  # the torch backend's fast preset
    assert summary["wall_seconds"] > 0 and summary["steps_per_second"] > 0
    assert [m["seed"] for m in summary["members"]] == [4, 2]
    keys = {"seed", "variant", "eval_return_mean", "eval_return_std",
            "first_step_solved", "seconds_to_solve", "diagnosis"}  # fmt: skip
    assert all(set(m) == keys for m in summary["members"])
    assert all(m["eval_return_mean"] > 0 for m in summary["members"])
    assert "2 seeds as one population" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds", "1", "1"], "seeds [1] appear more than once"),
        (["--seeds", "1", "--seed", "2"], "does not take --seed"),
        (["--seeds", "1", "--save", "x.pt"], "does not take --save"),
        (["--seeds", "1", "--env-backend", "gymnasium"], "needs env_backend='torch'"),
    ],
)
def test_bad_population_flags_are_one_line_errors(flags, message, capsys):
    assert main([*SMALL, *flags]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1
    assert "training" not in captured.out  # refused before anything started
