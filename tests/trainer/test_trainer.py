"""The trainer: config validation, spaces, the rollout, probes, learning, determinism."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from support import probe_envs as probes  # noqa: F401  (registers two)
from support.histories import same_history

import ppo_lessons.envs as envs_module
from ppo_lessons import clipping, gae, losses, networks, update
from ppo_lessons.networks import gaussian_log_prob
from ppo_lessons.presets import PRESETS, preset
from ppo_lessons.probes import RUNGS, probe_config, probe_ladder
from ppo_lessons.trainer import (
    PPOConfig,
    check_spaces,
    collect_rollout,
    evaluate,
    make_buffer,
    start_run,
    train,
)

# ---------------------------------------------------------------- config

BAD_VALUES = {
    "env_id": "NoSuchEnv-v9",
    "total_steps": 0,
    "seed": -1,
    "num_envs": 0,
    "num_steps": 1.5,
    "async_envs": "yes",
    "env_backend": "jax",
    "learning_rate": 0.0,
    "anneal_lr": 1,
    "adam_eps": -1e-5,
    "num_minibatches": 0,
    "update_epochs": 0,
    "max_grad_norm": 0.0,
    "target_kl": -0.01,
    "kl_estimator": "k2",
    "gamma": 1.01,
    "gae_lambda": -0.1,
    "norm_adv": None,
    "clip_coef": 0.0,
    "clip_vloss": "no",
    "ent_coef": -0.1,
    "vf_coef": float("nan"),
    "hidden_sizes": (0,),
    "activation": "gelu",
    "recurrent": "lstm",
    "frame_stack": 0,
    "shared_network": 0,
    "ortho_init": "True",
    "init_log_std": 100.0,
    "init_value": float("inf"),
    "squash_actions": "yes",
    "norm_obs": 1,
    "norm_reward": None,
    "device": "gpu",
    "torch_threads": -1,
}


def test_every_field_has_a_bad_value_case_and_documentation():
    fields = dataclasses.fields(PPOConfig)
    assert {f.name for f in fields} == set(BAD_VALUES)
    for f in fields:
        assert len(f.metadata["doc"]) > 15, f.name
        assert f.name in PPOConfig.__doc__


@pytest.mark.parametrize(("name", "value"), list(BAD_VALUES.items()))
def test_invalid_field_is_rejected_naming_field_value_and_range(name, value):
    with pytest.raises(ValueError) as info:
        PPOConfig(**{name: value})
    message = str(info.value)
    assert f"PPOConfig.{name}" in message and repr(value) in message
    assert "must be" in message


def test_cross_field_sizes_are_checked():
    with pytest.raises(ValueError, match="num_minibatches = 3 must divide"):
        PPOConfig(num_envs=4, num_steps=32, num_minibatches=3)
    with pytest.raises(ValueError, match="total_steps = 100"):
        PPOConfig(total_steps=100)
    # a recurrent minibatch is whole env sequences: 3 minibatches of 4 envs cannot be
    with pytest.raises(ValueError, match="must divide num_envs = 4 with recurrent"):
        PPOConfig(num_envs=4, num_steps=48, num_minibatches=3, recurrent="gru")
    with pytest.raises(ValueError, match="shared_network = True is not allowed"):
        PPOConfig(recurrent="gru", shared_network=True)
    with pytest.raises(ValueError, match="choose one memory"):
        PPOConfig(recurrent="gru", frame_stack=2)
    with pytest.raises(ValueError, match="must divide num_envs = 4 with frame_stack=3"):
        PPOConfig(num_envs=4, num_steps=48, num_minibatches=3, frame_stack=3)


def test_config_is_frozen_and_round_trips():
    config = PPOConfig(hidden_sizes=[32, 16], target_kl=0.02)
    assert config.hidden_sizes == (32, 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    assert PPOConfig.from_dict(config.to_dict()) == config
    assert config.batch_size == 256 and config.minibatch_size == 256
    with pytest.raises(ValueError, match="unknown PPOConfig fields: typo"):
        PPOConfig.from_dict({"typo": 1})


def test_presets_are_valid_configs():
    for env_id in PRESETS:
        assert preset(env_id).env_id == env_id
    # the defaults are the CartPole preset (apart from its shorter budget)
    assert preset("CartPole-v1", total_steps=PPOConfig().total_steps) == PPOConfig()
    with pytest.raises(ValueError, match="no preset"):
        preset("Pong-v5")


# ---------------------------------------------------------------- spaces


@pytest.mark.parametrize(
    ("obs_space", "action_space", "phrase"),
    [
        (gym.spaces.Discrete(3), gym.spaces.Discrete(2), "observation space Discrete"),
        (gym.spaces.Box(0, 1, (4, 4)), gym.spaces.Discrete(2), "1-D Box observations"),
        (gym.spaces.Box(0, 1, (4,)), gym.spaces.MultiDiscrete([2, 2]), "MultiDiscrete"),
        (gym.spaces.Box(0, 1, (4,)), gym.spaces.Discrete(3, start=1), "starting at 0"),
        (gym.spaces.Box(0, 1, (4,)), gym.spaces.Box(0, 1, (2, 2)), "1-D Box actions"),
    ],
)
def test_unsupported_spaces_are_named(obs_space, action_space, phrase):
    with pytest.raises(ValueError, match=phrase):
        check_spaces(obs_space, action_space)


@pytest.mark.parametrize("name", ["MultiDiscreteActions", "ImageObs"])
def test_train_rejects_an_env_with_unsupported_spaces(name):
    with pytest.raises(ValueError, match="unsupported (action|observation) space"):
        train(probe_config(name, total_steps=128), progress=False)


# ---------------------------------------------------------------- the rollout


def test_rollout_bootstraps_from_the_true_final_observation():
    config = probe_config("Endless", num_envs=2, num_steps=12, total_steps=24)
    run = start_run(config)
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    truncated = buffer.truncated
    assert truncated[4].all() and truncated[9].all()  # the limit is 5 steps
    assert not buffer.terminated.any()
    with torch.no_grad():
        v_final = run.agent.value(torch.tensor([[0.5]]))  # obs after 5 steps
        v_reset = run.agent.value(torch.tensor([[0.0]]))
    assert not torch.isclose(v_final, v_reset)
    torch.testing.assert_close(buffer.next_values[4], v_final.expand(2))
    # elsewhere the reached observation is where the next step starts
    torch.testing.assert_close(buffer.next_values[5:9], buffer.values[6:10])
    peek = run.envs.episode_stats(clear=False)
    returns, lengths = run.envs.episode_stats()  # two episodes per env, 5 steps each
    assert returns.tolist() == [5.0] * 4 and lengths.tolist() == [5.0] * 4
    assert torch.equal(peek[0], returns)  # peeking left them
    assert len(run.envs.episode_stats()[0]) == 0  # read once per update
    assert run.global_step == 24


def test_box_actions_are_clipped_only_for_the_env(monkeypatch):
    sent = []
    original = envs_module.actions_to_env

    def spy(actions, space):
        out = original(actions, space)
        sent.append(out.copy())
        return out

    monkeypatch.setattr(envs_module, "actions_to_env", spy)
    config = probe_config("ActionReward", box=True, init_log_std=1.0, total_steps=128)
    run = start_run(config)
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    assert buffer.actions.abs().max() > 1.5  # stored as sampled (σ = e)
    assert max(np.abs(a).max() for a in sent) <= 1.0  # the env saw them clipped
    with torch.no_grad():
        means, _ = run.agent.policy_and_value(buffer.obs.reshape(-1, 1))
    expected = gaussian_log_prob(
        buffer.actions.reshape(-1, 1), means, run.agent.log_std
    )
    torch.testing.assert_close(buffer.log_probs.reshape(-1), expected)


def test_the_trainer_uses_the_lessons_functions():
    # catches a second, private copy of a lesson function inside the trainer
    run = start_run(probe_config("Constant", total_steps=128))
    fns = run.functions
    assert fns.compute_gae is gae.compute_gae
    assert fns.clipped_surrogate_objective is clipping.clipped_surrogate_objective
    assert fns.value_loss is losses.value_loss
    assert fns.explained_variance is update.explained_variance
    assert fns.approx_kl is update.approx_kl
    assert fns.minibatch_indices is update.minibatch_indices
    assert fns.ppo_update is update.ppo_update
    assert run.agent.categorical_entropy is networks.categorical_entropy
    assert fns.own == ()
    run.envs.close()


# ---------------------------------------------------------------- probes


@pytest.mark.parametrize("box", [False, True], ids=["discrete", "box"])
def test_the_trainer_climbs_every_rung_of_the_probe_ladder(box):
    # values (constant, from the observation, through two steps of γ), policies (one
    # right action; the right action for the observation) and the time-limit
    # bootstrap: V = 1/(1 − γ) = 10, where treating the cut as termination gives < 5
    results = probe_ladder(box=box, stop_at_first_failure=False, verbose=False)
    assert [r.rung.probe for r in results] == [r.probe for r in RUNGS]
    assert all(r.passed for r in results), [str(r) for r in results if not r.passed]


# ---------------------------------------------------------------- learning


def test_cartpole_learns_with_the_default_config():
    result = train(PPOConfig(total_steps=16_384, seed=1, device="cpu"), progress=False)
    returns = [r["episodic_return"] for r in result.history[-15:]]
    returns = [r for r in returns if not math.isnan(r)]
    assert returns and np.mean(returns) > 100, returns  # random play: about 22
    assert np.mean(evaluate(result.agent, "CartPole-v1", episodes=10)) > 100


def test_pendulum_continuous_actions_run_a_few_updates():
    config = preset("Pendulum-v1", num_envs=2, num_steps=64, num_minibatches=4,
                    update_epochs=2, total_steps=512, device="cpu")  # fmt: skip
    result = train(config, progress=False)
    assert len(result.history) == 4
    for row in result.history:
        for key in ("policy_loss", "value_loss", "entropy", "approx_kl"):
            assert math.isfinite(row[key]), key
    assert not result.agent.discrete and result.agent.log_std.shape == (1,)
    assert not torch.equal(result.agent.log_std.detach(), torch.zeros(1))
    returns = evaluate(result.agent, "Pendulum-v1", episodes=2)
    assert returns.shape == (2,) and (returns < 0).all()


def test_history_rows_have_the_stable_metric_keys():
    result = train(PPOConfig(total_steps=512, device="cpu"), progress=False)
    keys = {
        "step", "update", "episodic_return", "episodic_length", "policy_loss",
        "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
        "learning_rate", "steps_per_second",
    }  # fmt: skip
    assert [r["update"] for r in result.history] == [1, 2]
    assert [r["step"] for r in result.history] == [256, 512]
    for row in result.history:
        assert keys <= row.keys()
    # learning-rate annealing: 1e-3 at the first update, half of it at the second
    assert [r["learning_rate"] for r in result.history] == [1e-3, 5e-4]


def test_same_seed_same_learning_curve_other_seed_differs():
    config = PPOConfig(total_steps=1024, device="cpu")
    first = train(config, progress=False).history
    second = train(config, progress=False).history
    other = train(config.replace(seed=2), progress=False).history
    assert same_history(first, second)
    assert not same_history(first, other)


def test_students_own_functions_are_used():
    calls = {"gae": 0, "objective": 0}

    def my_compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
        calls["gae"] += 1
        return gae.compute_gae(
            rewards, values, next_values, terminated, truncated, gamma, lam
        )

    def my_objective(new_log_probs, old_log_probs, advantages, clip_eps):
        calls["objective"] += 1
        return clipping.clipped_surrogate_objective(
            new_log_probs, old_log_probs, advantages, clip_eps
        )

    config = PPOConfig(total_steps=512, device="cpu")
    mine = train(
        config,
        functions={
            "compute_gae": my_compute_gae,
            "clipped_surrogate_objective": my_objective,
        },
        progress=False,
    )
    assert calls == {"gae": 2, "objective": 2 * 20}
    reference = train(config, progress=False)
    assert same_history(mine.history, reference.history)

    def no_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
        return torch.zeros_like(rewards), values.clone()

    broken = train(config, functions={"compute_gae": no_advantages}, progress=False)
    assert broken.history[-1]["policy_loss"] == 0.0


@pytest.mark.parametrize(
    "switches",
    [
        dict(norm_obs=True, norm_reward=True),
        dict(shared_network=True, clip_vloss=True, ortho_init=False, activation="relu"),
        dict(target_kl=0.001, num_minibatches=4, kl_estimator="k1"),
        dict(anneal_lr=False, norm_adv=False, max_grad_norm=None, ent_coef=0.01),
    ],
)
def test_switch_combinations_train(switches):
    config = PPOConfig(total_steps=512, device="cpu", **switches)
    result = train(config, progress=False)
    assert all(math.isfinite(r["value_loss"]) for r in result.history)
    if "target_kl" in switches:
        assert any(r["epochs"] < 20 for r in result.history)
    if switches.get("anneal_lr") is False:
        assert {r["learning_rate"] for r in result.history} == {1e-3}


def test_obs_statistics_update_only_while_training():
    result = train(
        PPOConfig(total_steps=512, norm_obs=True, device="cpu"), progress=False
    )
    rms = result.agent.obs_rms
    assert rms.count > 512  # one update per step, plus the reset observation
    mean, var = rms.mean.clone(), rms.var.clone()
    evaluate(result.agent, "CartPole-v1", episodes=3)
    assert torch.equal(rms.mean, mean) and torch.equal(rms.var, var)


def test_async_envs_and_callbacks(tmp_path):
    rows = []
    config = PPOConfig(
        total_steps=512, num_envs=2, num_steps=128, async_envs=True, device="cpu"
    )
    result = train(
        config,
        progress=False,
        callback=lambda row, history: rows.append((row["update"], len(history))),
        tensorboard_dir=tmp_path / "tb",
    )
    assert rows == [(1, 1), (2, 2)]
    assert len(result.history) == 2
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


@pytest.mark.gpu  # skipped without CUDA (conftest.py)
def test_training_on_cuda_keeps_the_update_on_the_device():
    config = PPOConfig(total_steps=512, device="cuda")
    run = start_run(config)
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    assert buffer.obs.is_cuda and buffer.next_values.is_cuda
    assert next(run.agent.parameters()).is_cuda
    result = train(config, progress=False)
    assert len(result.history) == 2 and math.isfinite(result.history[-1]["value_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_config_solves_cartpole(seed):
    result = train(PPOConfig(seed=seed, device="cpu"), progress=False)
    assert np.mean(evaluate(result.agent, "CartPole-v1", episodes=10)) >= 475
    assert result.first_step_solved is not None


def test_animate_episode_and_live_plot(capsys):
    pytest.importorskip("pygame")  # CartPole's rgb_array rendering
    from ppo_lessons.networks import ActorCritic
    from ppo_lessons.trainer import LivePlot, animate_episode

    agent = ActorCritic(4, 2, discrete=True)
    html = animate_episode(agent, "CartPole-v1", seed=0, max_steps=3)
    assert "<img" in html.data or "animation" in html.data.lower()
    plot = LivePlot(every=2)
    rows = [{"update": u, "step": 256 * u, "episodic_return": 20.0 + u,
             "value_loss": 1.0, "entropy": 0.6, "approx_kl": 0.01} for u in (1, 2)]  # fmt: skip
    plot(rows[0], rows[:1])
    assert plot.draws == 0  # only every 2nd update
    plot(rows[1], rows)
    assert plot.draws == 1
    plot.finish()
    assert plot.draws == 1  # the last update is already drawn
    rows.append({**rows[1], "update": 3, "step": 768})
    plot(rows[2], rows)
    plot.finish()
    assert plot.draws == 2  # the final update is drawn at the end
