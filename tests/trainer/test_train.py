"""The command line, `python -m ppo_lessons.train`."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from ppo_lessons.train import build_parser, config_from_args, main
from ppo_lessons.trainer import PPOConfig

SMALL = ["--total-steps", "512", "--no-progress", "--device", "cpu"]


def test_every_config_field_has_a_flag_with_its_doc_as_help():
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    for field in dataclasses.fields(PPOConfig):
        assert field.name in actions, field.name
        assert field.metadata["doc"] in actions[field.name].help
        flag = "--" + field.name.replace("_", "-")
        assert flag in actions[field.name].option_strings


def test_flags_are_typed_from_the_fields():
    args = build_parser().parse_args(
        ["--hidden-sizes", "32", "16", "--target-kl", "0.02", "--max-grad-norm", "none",
         "--no-norm-adv", "--gamma", "0.95", "--num-envs", "4"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.hidden_sizes == (32, 16) and config.target_kl == 0.02
    assert config.max_grad_norm is None and config.norm_adv is False
    assert config.gamma == 0.95 and config.num_envs == 4
    assert config.learning_rate == PPOConfig().learning_rate  # not given: default


def test_invalid_value_is_reported(capsys):
    assert main(["--gamma", "1.5", *SMALL]) == 2
    assert "PPOConfig.gamma = 1.5" in capsys.readouterr().err


def test_summary_json_save_and_resume(tmp_path):
    summary_path, ckpt = tmp_path / "s.json", tmp_path / "run.pt"
    assert main([*SMALL, "--summary-json", str(summary_path), "--save", str(ckpt)]) == 0
    summary = json.loads(summary_path.read_text())
    for key in ("env_id", "total_steps", "wall_seconds", "steps_per_second",
                "eval_return_mean", "eval_return_std", "first_step_solved",
                "seconds_to_solve", "history"):  # fmt: skip
        assert key in summary, key
    assert summary["env_id"] == "CartPole-v1" and summary["total_steps"] == 512
    assert summary["eval_episodes"] >= 10
    assert summary["first_step_solved"] is None  # 512 steps do not solve CartPole
    assert [row["step"] for row in summary["history"]] == [256, 512]
    resumed = tmp_path / "resumed.json"
    code = main(["--resume", str(ckpt), "--total-steps", "1024", "--no-progress",
                 "--save", str(ckpt), "--summary-json", str(resumed)])  # fmt: skip
    assert code == 0
    history = json.loads(resumed.read_text())["history"]
    assert [row["step"] for row in history] == [256, 512, 768, 1024]


def test_resume_with_a_changed_flag_is_one_line_naming_it(tmp_path, capsys):
    # catches the traceback from deep inside the trainer that a changed flag gave
    ckpt = tmp_path / "run.pt"
    assert main([*SMALL, "--save", str(ckpt)]) == 0
    capsys.readouterr()
    code = main(["--resume", str(ckpt), "--learning-rate", "0.01", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--learning-rate 0.01" in err and "only --total-steps may change" in err
    assert main(["--resume", str(tmp_path / "missing.pt"), "--no-progress"]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "ppo_lessons.train", *SMALL],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert "eval return" in out.stdout
