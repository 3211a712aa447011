"""The trainer with memory (`recurrent="gru"`): the partially observed env, what the
rollout keeps, the ratio-is-one check and the doctor's finding, exact resume, the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from support.histories import same_history

from ppo_lessons.checkpoint import load_checkpoint
from ppo_lessons.doctor import diagnose
from ppo_lessons.memory import RecurrentActorCritic, reset_where
from ppo_lessons.presets import preset
from ppo_lessons.train import main
from ppo_lessons.trainer import (
    PPOConfig,
    collect_rollout,
    evaluate,
    load_agent,
    make_buffer,
    start_run,
    train,
)

pytestmark = pytest.mark.heavy  # short training runs: not the fast tier

SHORT = dict(
    num_envs=4, num_steps=16, total_steps=256, update_epochs=2, num_minibatches=2
)


def config(backend: str = "torch", **changes) -> PPOConfig:
    return preset(
        "CartPoleNoVel-v1", env_backend=backend, seed=3, **{**SHORT, **changes}
    )


def test_cartpole_no_vel_is_cartpole_without_the_velocities():
    # catches: the wrong columns kept, or different dynamics than CartPole-v1
    full, novel = gym.make("CartPole-v1"), gym.make("CartPoleNoVel-v1")
    assert novel.observation_space.shape == (2,)
    assert novel.spec.reward_threshold == 475.0 and novel.spec.max_episode_steps == 500
    a, _ = full.reset(seed=4)
    b, _ = novel.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(300):
        np.testing.assert_array_equal(b, a[[0, 2]])
        action = int(rng.integers(2))
        a, ra, ta, ua, _ = full.step(action)
        b, rb, tb, ub, _ = novel.step(action)
        assert (ra, ta, ua) == (rb, tb, ub)
        if ta or ua:
            a, _ = full.reset(seed=5)
            b, _ = novel.reset(seed=5)


@pytest.mark.parametrize("backend", ["torch", "gymnasium"])
def test_a_recurrent_run_replays_exactly_what_it_did(backend):
    # catches: a rollout that does not keep the initial hidden state or the starts,
    # or an update that replays them wrongly (the ratio is not 1 before any step)
    result = train(config(backend), progress=False)
    assert isinstance(result.agent, RecurrentActorCritic)
    errors = [row["replay_error"] for row in result.history]
    assert len(errors) == 4 and max(errors) < 1e-5, errors
    assert not [f for f in result.diagnosis if f.problem == "replay_mismatch"]


def test_a_feed_forward_run_also_checks_its_ratio():
    # catches: the check computed only for recurrent runs (a feed-forward rollout that
    # stores log-probs of the wrong actions would pass unseen)
    result = train(
        PPOConfig(num_envs=4, num_steps=32, total_steps=256, seed=1), progress=False
    )
    errors = [row["replay_error"] for row in result.history]
    assert len(errors) == 2 and max(errors) < 1e-5, errors


def test_the_rollout_keeps_what_the_replay_needs():
    # catches: starts stored one step late, the initial state not stored (or stored
    # after the first step), values that are not V of the hidden state, next values
    # that reset the memory at an episode's last step
    run = start_run(config(num_envs=8, num_steps=40, total_steps=640))
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    first_hidden = buffer.initial_hidden.clone()
    assert bool(buffer.starts[0].all()) and bool((first_hidden == 0).all())
    done = buffer.terminated | buffer.truncated
    assert bool(done.any())
    torch.testing.assert_close(buffer.starts[1:], done[:-1])
    assert torch.equal(run.memory.starts, done[-1])
    agent = run.agent
    with torch.no_grad():
        hidden = agent.replay(buffer.obs, buffer.starts, buffer.initial_hidden)
        torch.testing.assert_close(hidden, buffer.hidden)
        torch.testing.assert_close(agent.value(hidden), buffer.values)
        continuing = ~done[:-1]
        torch.testing.assert_close(
            buffer.next_values[:-1][continuing], buffer.values[1:][continuing]
        )
    collect_rollout(run, buffer)  # the next rollout starts from the memory
    assert not bool(buffer.starts[0].all()) or bool(done[-1].all())
    assert bool((buffer.initial_hidden != 0).any())


def late_reset(core, inputs, starts, initial_hidden):
    """A replay with the classic bug: `starts` used as the previous step's `done`."""
    h, outputs = initial_hidden, []
    for t in range(inputs.shape[0]):
        if t > 0:
            h = reset_where(h, starts[t - 1])
        h = core(inputs[t], h)
        outputs.append(h)
    return torch.stack(outputs), h


def test_a_replay_that_resets_late_is_named_on_the_first_update():
    # catches: a ratio-is-one check or a doctor rule that misses the classic bug
    result = train(config(), functions={"replay_sequence": late_reset}, progress=False)
    assert result.history[0]["replay_error"] > 1e-3
    found = [f for f in diagnose(result.history) if f.problem == "replay_mismatch"]
    assert found and found[0].update == 1
    assert result.function_calls["replay_sequence"] > 0


def test_resume_continues_exactly_with_the_memory(tmp_path):
    # catches: a checkpoint without the hidden state (a resumed recurrent run would
    # act from zeros mid-episode and diverge from the uninterrupted run)
    path = tmp_path / "run.pt"
    cfg = config(total_steps=384)
    full = train(cfg, progress=False)
    train(cfg, stop_at_step=192, save_path=path, progress=False)
    assert load_checkpoint(path)["memory"]["hidden"].abs().sum() > 0
    rest = train(cfg, resume_from=path, progress=False)
    assert same_history(rest.history, full.history)
    agent = load_agent(path)
    assert isinstance(agent, RecurrentActorCritic)


def test_a_recurrent_agent_evaluates_with_its_memory_and_refuses_act():
    # catches: evaluate calling the memoryless act (TypeError) or never resetting
    result = train(config(), progress=False)
    returns = evaluate(result.agent, "CartPoleNoVel-v1", episodes=3)
    assert returns.shape == (3,) and bool((returns >= 1).all())
    with pytest.raises(TypeError, match="agent.acting"):
        result.agent.act(torch.zeros(1, 2))


def test_the_cli_trains_a_recurrent_policy(tmp_path):
    # catches: --recurrent missing from the CLI, or its summary without the check
    out = tmp_path / "s.json"
    code = main(["--env-id", "CartPoleNoVel-v1", "--recurrent", "gru",
                 "--env-backend", "torch", "--total-steps", "256", "--num-envs", "4",
                 "--num-steps", "16", "--hidden-sizes", "16", "--no-progress",
                 "--summary-json", str(out), "--eval-episodes", "10"])  # fmt: skip
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["config"]["recurrent"] == "gru"
    assert all(row["replay_error"] < 1e-5 for row in summary["history"])


def test_frame_stacking_is_a_memory_of_the_last_k_observations():
    # catches: frames in the wrong order, a stack not zeroed at an episode's start, or
    # the oldest frame kept instead of dropped
    run = start_run(config(recurrent="none", frame_stack=3, hidden_sizes=(16,)))
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    obs, starts, stacks = buffer.obs, buffer.starts, buffer.hidden
    steps, envs, size = obs.shape
    for n in range(envs):
        frames = [torch.zeros(size)] * 3
        for t in range(steps):
            if bool(starts[t, n]):
                frames = [torch.zeros(size)] * 3
            frames = [obs[t, n], *frames[:2]]  # newest first
            torch.testing.assert_close(stacks[t, n], torch.cat(frames))
    result = train(config(recurrent="none", frame_stack=2), progress=False)
    assert max(row["replay_error"] for row in result.history) < 1e-6


@pytest.mark.parametrize("memory", [{"recurrent": "gru"}, {"frame_stack": 2}])
def test_a_population_refuses_a_policy_with_memory(memory):
    # catches: a population silently training a memoryless policy for a memory config
    from ppo_lessons.population import train_population

    cfg = preset("CartPole-v1", env_backend="torch", **memory)
    with pytest.raises(ValueError, match="a population has no memory"):
        train_population(cfg, seeds=[1, 2], progress=False)
