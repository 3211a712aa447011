"""Checkpoints: exact resume, safe loading, no silent overwrite, NaN stops training."""

from __future__ import annotations

import math

import pytest
import torch
from support.histories import same_history

from ppo_lessons.checkpoint import FORMAT, load_checkpoint
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.trainer import (
    PPOConfig,
    TrainingDiverged,
    evaluate,
    load_agent,
    train,
)


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


CONFIG = PPOConfig(
    total_steps=2048, num_envs=4, num_steps=64, num_minibatches=2, update_epochs=4,
    norm_obs=True, norm_reward=True, device="cpu",
)  # fmt: skip


def test_resume_continues_exactly_as_if_never_stopped(tmp_path):
    path = tmp_path / "run.pt"
    full = train(CONFIG, progress=False)
    part = train(CONFIG, stop_at_step=1024, save_path=path, progress=False)
    assert part.global_step == 1024 and len(part.history) == 4
    rest = train(CONFIG, resume_from=path, progress=False)
    assert rest.global_step == 2048
    assert same_history(rest.history, full.history)
    assert same_parameters(rest.agent, full.agent)


def test_checkpoint_holds_what_resume_needs(tmp_path):
    path = tmp_path / "run.pt"
    train(CONFIG, stop_at_step=512, save_path=path, progress=False)
    state = load_checkpoint(path)
    for key in ("agent", "optimizer", "generator", "torch_rng", "reward_scaler",
                "envs", "config", "global_step", "update", "history"):  # fmt: skip
        assert state[key] is not None, key
    assert "obs_rms.mean" in state["agent"]  # observation statistics travel along
    assert state["global_step"] == 512 and state["update"] == 2
    assert PPOConfig.from_dict(state["config"]) == CONFIG
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed


def test_loaded_agent_uses_frozen_statistics_and_acts_the_same(tmp_path):
    path = tmp_path / "run.pt"
    result = train(CONFIG, stop_at_step=512, save_path=path, progress=False)
    agent = load_agent(path)
    assert same_parameters(agent, result.agent)
    mean = agent.obs_rms.mean.clone()
    returns = evaluate(agent, "CartPole-v1", episodes=3)
    assert torch.equal(agent.obs_rms.mean, mean)
    assert (returns == evaluate(result.agent, "CartPole-v1", episodes=3)).all()


def test_a_resume_with_a_different_config_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    train(CONFIG, stop_at_step=512, save_path=path, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        train(CONFIG.replace(learning_rate=0.1), resume_from=path, progress=False)


class NotAllowed:
    """Any class: unpickling it would run code from the file."""


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": NotAllowed()}, path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="refusing to load"):
        train(CONFIG, resume_from=path, progress=False)


def test_another_runs_checkpoint_is_not_overwritten_without_the_flag(tmp_path):
    path = tmp_path / "run.pt"
    train(CONFIG, stop_at_step=256, save_path=path, progress=False)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train(CONFIG, stop_at_step=256, save_path=path, progress=False)
    assert path.read_bytes() == before
    other = tmp_path / "notes.pt"
    other.write_text("my own file")
    with pytest.raises(FileExistsError):
        train(CONFIG, stop_at_step=256, save_path=other, progress=False)
    train(CONFIG, stop_at_step=256, save_path=path, overwrite=True, progress=False)
    assert path.read_bytes() != before


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    calls = {"n": 0}
    per_update = CONFIG.update_epochs * CONFIG.num_minibatches

    def objective_breaking_at_update_3(new, old, advantages, clip_eps):
        calls["n"] += 1
        value = clipped_surrogate_objective(new, old, advantages, clip_eps)
        return value * math.nan if calls["n"] > 2 * per_update else value

    with pytest.raises(
        TrainingDiverged, match=r"update 3 .*policy_loss is nan"
    ) as info:
        mine = {"clipped_surrogate_objective": objective_breaking_at_update_3}
        train(CONFIG, functions=mine, save_path=path, checkpoint_every=1,
              progress=False)  # fmt: skip
    assert "last good checkpoint is kept" in str(info.value)
    assert len(info.value.history) == 2
    state = load_checkpoint(path)
    assert state["update"] == 2
    assert all(torch.isfinite(v).all() for v in state["agent"].values())


def per_layer_optimizer_state(flat_state: dict, agent: torch.nn.Module) -> dict:
    """The Adam state as checkpoints held it before the trainer flattened the
    parameters: one entry per parameter tensor, in the agent's parameter order."""
    (entry,) = flat_state["state"].values()
    state, offset = {}, 0
    for i, p in enumerate(agent.parameters()):
        n = p.numel()
        state[i] = {
            "step": entry["step"].clone(),
            **{key: entry[key][offset : offset + n].view_as(p).clone()
               for key in ("exp_avg", "exp_avg_sq")},
        }  # fmt: skip
        offset += n
    assert offset == entry["exp_avg"].numel()
    group = {**flat_state["param_groups"][0], "params": list(state)}
    return {"state": state, "param_groups": [group]}


def test_a_checkpoint_with_per_layer_optimizer_state_resumes_exactly(tmp_path):
    # checkpoints written before the parameters were flattened hold Adam's moments
    # per layer; resuming one must continue the run exactly (moments in the right
    # order), as resuming the same checkpoint in today's layout does
    path, old_path = tmp_path / "run.pt", tmp_path / "old.pt"
    full = train(CONFIG, progress=False)
    part = train(CONFIG, stop_at_step=1024, save_path=path, progress=False)
    state = load_checkpoint(path)
    state["optimizer"] = per_layer_optimizer_state(state["optimizer"], part.agent)
    assert len(state["optimizer"]["state"]) == len(list(part.agent.parameters())) > 1
    torch.save(state, old_path)
    rest = train(CONFIG, resume_from=old_path, progress=False)
    assert same_history(rest.history, full.history)
    assert same_parameters(rest.agent, full.agent)
