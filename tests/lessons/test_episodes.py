"""Whole-episode helpers of lesson 00 (`ppo_lessons.episodes`) and the frame strip."""

from __future__ import annotations

import gymnasium as gym
import matplotlib
import numpy as np
import pytest
import torch

from ppo_lessons.episodes import (
    average_return,
    collect_episodes,
    render_frames,
    run_episode,
)
from ppo_lessons.plotting import mean_and_band, show_frames

matplotlib.use("Agg")


def balancing(obs: np.ndarray) -> int:
    return int(obs[2] + 0.5 * obs[3] > 0)


def test_run_episode_records_a_truncated_episode() -> None:
    """Catches mixing up terminated and truncated, or an off-by-one in the recording:
    a balanced CartPole episode is cut by its 50-step time limit."""
    env = gym.make("CartPole-v1", max_episode_steps=50)
    ep = run_episode(env, balancing, seed=0)
    assert len(ep) == 50 and ep.observations.shape == (50, 4)
    assert ep.truncated and not ep.terminated
    assert ep.total_reward == 50.0


def test_run_episode_records_a_terminated_episode_and_its_start() -> None:
    """Catches recording s_{t+1} instead of s_t: observations[0] must be the reset one."""
    env = gym.make("CartPole-v1")
    start, _ = env.reset(seed=3)
    ep = run_episode(env, lambda obs: 0, seed=3)
    assert ep.terminated and not ep.truncated
    assert np.allclose(ep.observations[0].numpy(), start)
    assert abs(ep.final_observation[2]) > 0.2 or abs(ep.final_observation[0]) > 2.4


def test_collect_episodes_keeps_the_true_final_observation() -> None:
    """Catches using the autoreset observation as the final one: the final observation
    of a terminated CartPole episode is out of bounds, a reset one never is."""
    episodes = collect_episodes(
        "CartPole-v1", lambda o: torch.zeros(len(o), dtype=torch.long), 5, seed=0
    )
    assert len(episodes) == 5
    for ep in episodes:
        assert ep.terminated
        fallen = (
            abs(ep.final_observation[2]) > 0.2095 or abs(ep.final_observation[0]) > 2.4
        )
        assert fallen
        assert ep.rewards.shape == ep.actions.shape == (len(ep),)


def test_collect_episodes_takes_the_first_episode_of_every_env() -> None:
    """Catches collecting the first episodes to *finish* (biased to short ones), or
    appending steps of an env after its episode ended: each episode must match the
    same env played alone."""
    policy = lambda o: torch.ones(len(o), dtype=torch.long)  # noqa: E731
    episodes = collect_episodes("CartPole-v1", policy, 3, seed=10)
    for i, ep in enumerate(episodes):
        alone = run_episode(gym.make("CartPole-v1"), lambda obs: 1, seed=10 + i)
        assert len(ep) == len(alone)
        assert torch.allclose(ep.observations, alone.observations)


def test_average_return_of_a_fixed_policy() -> None:
    """Catches averaging over steps instead of episodes (CartPole pays 1 per step)."""
    policy = lambda o: torch.zeros(len(o), dtype=torch.long)  # noqa: E731
    episodes = collect_episodes("CartPole-v1", policy, 4, seed=0)
    expected = np.mean([len(ep) for ep in episodes])
    assert average_return("CartPole-v1", policy, 4, seed=0) == pytest.approx(expected)


def test_render_frames_picks_first_and_last() -> None:
    """Catches frames that skip the final state or ignore the stride."""
    frames, steps, ep = render_frames(
        "CartPole-v1", lambda obs: 0, seed=0, num_frames=4, stride=4
    )
    assert steps[0] == 0 and steps[-1] == len(ep)
    assert frames[0].shape == (100, 150, 3) and frames[0].dtype == np.uint8
    fig = show_frames(frames, steps, "test")
    assert len(fig.axes) == len(frames)
    matplotlib.pyplot.close(fig)


def test_bad_arguments_are_named() -> None:
    """Catches accepting zero episodes, or rendering from an env that cannot render."""
    with pytest.raises(ValueError, match="num_episodes"):
        collect_episodes("CartPole-v1", lambda o: o, 0)
    with pytest.raises(ValueError, match="render_mode"):
        run_episode(gym.make("CartPole-v1"), balancing, render=True)
    with pytest.raises(ValueError, match="same length"):
        show_frames([np.zeros((2, 2, 3))], [0, 1], "x")


def test_mean_and_band() -> None:
    """Catches a band over the wrong axis (over x instead of over seeds)."""
    runs = np.array([[0.0, 2.0], [2.0, 6.0]])
    mean, low, high = mean_and_band(runs)
    assert np.allclose(mean, [1.0, 4.0]) and np.allclose(high - mean, [1.0, 2.0])
    _, low, high = mean_and_band(runs, band="minmax")
    assert np.allclose(low, [0.0, 2.0]) and np.allclose(high, [2.0, 6.0])
