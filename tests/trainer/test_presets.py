"""The Box2D and MuJoCo presets: their settings are the published ones, a missing extra
gives one line naming it, and a normalized run's checkpoint evaluates as the agent did
at the end of training.

The tests that make a Box2D or MuJoCo env skip, with the reason, where the extra is
not installed (`pip install -e ".[box2d,mujoco]"`); the rest run everywhere.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ppo_lessons.presets import EXTRAS, PRESETS, SOURCES, missing_extra, preset
from ppo_lessons.trainer import evaluate, load_agent, train

LUNAR = ("LunarLander-v3", "LunarLanderContinuous-v3")
MUJOCO = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")

needs_mujoco = pytest.mark.skipif(
    missing_extra("HalfCheetah-v5") is not None,
    reason='the mujoco extra is not installed (pip install -e ".[mujoco]")',
)


@pytest.mark.parametrize("env_id", LUNAR + MUJOCO)
def test_each_new_preset_is_a_valid_config_with_its_source(env_id):
    """Catches a preset missing from PRESETS or SOURCES, or one whose minibatches do
    not divide its rollout (PPOConfig refuses those)."""
    config = preset(env_id, seed=7)
    assert config.env_id == env_id and config.seed == 7
    assert env_id in SOURCES
    assert config.total_steps == 1_000_000


@pytest.mark.parametrize("env_id", LUNAR)
def test_lunar_lander_presets_translate_the_zoo_entry(env_id):
    """The zoo's LunarLander entries: n_envs 16, n_steps 1024, batch_size 64,
    n_epochs 4, gamma 0.999, gae_lambda 0.98, ent_coef 0.01; the continuous one with
    `normalize: true`. Catches a wrong batch_size -> num_minibatches translation."""
    config = preset(env_id)
    batch = config.num_envs * config.num_steps
    assert (config.num_envs, config.num_steps) == (16, 1024)
    assert batch // config.num_minibatches == 64
    assert (config.update_epochs, config.gamma, config.gae_lambda) == (4, 0.999, 0.98)
    assert config.ent_coef == 0.01
    normalized = env_id == "LunarLanderContinuous-v3"
    assert config.norm_obs is normalized and config.norm_reward is normalized


@pytest.mark.parametrize("env_id", MUJOCO)
def test_mujoco_presets_are_cleanrls_continuous_settings(env_id):
    """CleanRL ppo_continuous_action.py: 1 env x 2048 steps, 32 minibatches (of 64),
    10 epochs (Ant: 5, measured; presets.py), annealed lr 3e-4, value clipping, obs
    and reward normalization."""
    config = preset(env_id)
    assert (config.num_envs, config.num_steps, config.num_minibatches) == (1, 2048, 32)
    epochs = 5 if env_id == "Ant-v5" else 10
    assert (config.update_epochs, config.learning_rate) == (epochs, 3e-4)
    assert config.anneal_lr and config.clip_vloss
    assert config.norm_obs and config.norm_reward
    assert (config.gamma, config.gae_lambda, config.max_grad_norm) == (0.99, 0.95, 0.5)


def test_classic_envs_need_no_extra():
    assert missing_extra("CartPole-v1") is None
    assert missing_extra("Pendulum-v1") is None


def test_an_unregistered_id_is_left_to_the_config_to_refuse():
    assert missing_extra("NoSuchEnv-v0") is None


@pytest.mark.parametrize(
    ("env_id", "module", "extra"),
    [("LunarLander-v3", "Box2D", "box2d"), ("HalfCheetah-v5", "mujoco", "mujoco")],
)
def test_cli_names_the_missing_extra_in_one_line(env_id, module, extra):
    """The module made unimportable in a child Python (sys.modules[name] = None is
    how Python blocks an import), so this runs with or without the extras. Catches
    a traceback from gym.make instead of the message, or the wrong extra named."""
    assert (
        EXTRAS[f"gymnasium.envs.{extra}"][1] == module
    )  # the module the extra installs
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from ppo_lessons.train import main\n"
        f"raise SystemExit(main(['--preset', {env_id!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f'pip install -e ".[{extra}]"' in lines[0] and env_id in lines[0]
    assert "training" not in done.stdout  # it stopped before training


@needs_mujoco
def test_normalized_mujoco_checkpoint_evaluates_as_at_the_end_of_training(
    tmp_path, monkeypatch
):
    """A short HalfCheetah-v5 run of its preset (observation normalization on): the
    checkpoint's agent carries the frozen observation statistics, so its
    deterministic evaluation equals the trained agent's, return for return.
    Catches statistics left out of the checkpoint (the loaded agent would see
    unnormalized observations) and an evaluation that updates them."""
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT where it runs
    path = tmp_path / "cheetah.pt"
    config = preset("HalfCheetah-v5", total_steps=4096, seed=5, device="cpu")
    result = train(config, save_path=path, progress=False)
    before = {k: v.clone() for k, v in result.agent.state_dict().items()}
    at_end = evaluate(result.agent, "HalfCheetah-v5", episodes=2)
    after = result.agent.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "eval changed it"
    statistics = [k for k in before if "mean" in k or "var" in k]
    assert statistics, "the agent has no observation statistics to freeze"
    loaded = load_agent(path)
    reloaded = evaluate(loaded, "HalfCheetah-v5", episodes=2)
    np.testing.assert_array_equal(reloaded, at_end)
    for key in statistics:
        assert torch.equal(loaded.state_dict()[key], before[key])
        assert not torch.all(before[key] == before[key].flatten()[0])  # not fresh


def test_presets_cover_the_issue_envs():
    """Every env of the presets table in docs/benchmarks.md has a preset."""
    assert set(LUNAR + MUJOCO) <= set(PRESETS)
    text = (Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md").read_text()
    table = text.split("| preset | seeds |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| ")]
    envs = {line.split("|")[1].split("(")[0].strip() for line in rows}
    assert envs <= set(PRESETS), envs - set(PRESETS)
    assert set(LUNAR + MUJOCO) <= envs, set(LUNAR + MUJOCO) - envs


def course_script():
    path = Path(__file__).resolve().parents[2] / "scripts" / "course.py"
    spec = importlib.util.spec_from_file_location("course_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_course_extras_reads_the_environment_variable(monkeypatch):
    course = course_script()
    monkeypatch.setenv("COURSE_EXTRAS", " mujoco,box2d ")
    assert course.course_extras() == ["box2d", "mujoco"]
    monkeypatch.delenv("COURSE_EXTRAS")
    assert course.course_extras() == []


def test_course_extras_refuses_an_unknown_extra_by_name(monkeypatch):
    """Catches a typo silently installing nothing."""
    course = course_script()
    monkeypatch.setenv("COURSE_EXTRAS", "box2d,mujuco")
    with pytest.raises(SystemExit) as stopped:
        course.course_extras()
    message = str(stopped.value)
    assert "'mujuco'" in message and "box2d, mujoco" in message
