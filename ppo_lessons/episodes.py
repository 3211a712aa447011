"""Lesson 00 (`00_setup_and_gymnasium.ipynb`): running whole episodes.

Lessons 00-02 work with complete episodes (REINFORCE needs the return of the whole
episode); from lesson 04 on, the trainer works with fixed-length rollouts instead.
Everything here goes through the course's vector env (`ppo_lessons.envs`), so the
SAME_STEP autoreset rule holds: when an episode ends, its true final observation is in
`info["final_obs"]` and the observation returned by `step` is already the reset one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from ppo_lessons.envs import final_observations, make_vector_env

__all__ = [
    "Episode",
    "average_return",
    "collect_episodes",
    "render_frames",
    "run_episode",
]

Policy = Callable[[torch.Tensor], torch.Tensor]  # [N, *O] observations -> [N] actions


@dataclass
class Episode:
    """One episode, time axis first.

    observations[t] is s_t, the observation the action a_t was chosen from; the
    observation reached after the last step is `final_observation` (terminal, or where
    the time limit cut the episode).
    """

    observations: torch.Tensor  # (T, *O) s_t
    actions: torch.Tensor  # (T,) a_t (or (T, A) for continuous actions)
    rewards: torch.Tensor  # (T,) r_t, float32
    final_observation: torch.Tensor  # (*O,) s_T
    terminated: bool  # ended in a terminal state (no future reward)
    truncated: bool  # cut by a time limit (the task itself goes on)
    frames: list[np.ndarray] = field(default_factory=list)  # RGB images, if rendered

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def total_reward(self) -> float:
        """Undiscounted return Σ_t r_t."""
        return float(self.rewards.sum())


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def run_episode(
    env: gym.Env,
    policy: Callable[[np.ndarray], object],
    seed: int | None = None,
    render: bool = False,
) -> Episode:
    """Play one episode in a single (non-vector) env and record it.

    Args:
        env: a Gymnasium env; with `render=True` it must be made with
            `render_mode="rgb_array"`.
        policy: maps one observation [*O] (NumPy) to an action of `env.action_space`.
        seed: passed to `env.reset` (None: continue the env's random stream).
        render: also keep one RGB frame per state, s_0 ... s_T (T + 1 frames).
    """
    if render and env.render_mode != "rgb_array":
        raise ValueError(
            f"render=True needs an env made with render_mode='rgb_array', "
            f"got render_mode={env.render_mode!r}"
        )
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, frames = [], [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        if render:
            frames.append(env.render())
        action = policy(obs)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
    if render:
        frames.append(env.render())
    return Episode(
        observations=torch.as_tensor(np.array(observations), dtype=torch.float32),
        actions=torch.as_tensor(np.array(actions)),
        rewards=torch.as_tensor(np.array(rewards), dtype=torch.float32),
        final_observation=torch.as_tensor(obs, dtype=torch.float32),
        terminated=bool(terminated),
        truncated=bool(truncated),
        frames=frames,
    )


def render_frames(
    env_id: str,
    policy: Callable[[np.ndarray], object],
    seed: int = 0,
    num_frames: int = 6,
    stride: int = 2,
) -> tuple[list[np.ndarray], list[int], Episode]:
    """Play one rendered episode and pick `num_frames` evenly spaced frames from it.

    Args:
        env_id: a registered Gymnasium id with an "rgb_array" render mode.
        policy: maps one observation [*O] (NumPy) to an action.
        seed: the episode's reset seed.
        num_frames: how many frames to keep (first and last state included).
        stride: keep every `stride`-th pixel row and column (smaller images).

    Returns:
        (frames, steps, episode): the chosen frames [H, W, 3] uint8, the time step t of
        each, and the episode itself.
    """
    _check_count("num_frames", num_frames)
    _check_count("stride", stride)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # rgb_array draws off-screen; without a display, SDL's dummy video driver
        # keeps pygame from failing (or complaining) when it initializes one
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    try:
        episode = run_episode(env, policy, seed=seed, render=True)
    finally:
        env.close()
    steps = np.unique(np.linspace(0, len(episode), num_frames).round().astype(int))
    frames = [episode.frames[t][::stride, ::stride] for t in steps]
    return frames, [int(t) for t in steps], episode


@torch.no_grad()
def collect_episodes(
    env_id: str, policy: Policy, num_episodes: int, seed: int | None = None
) -> list[Episode]:
    """The first episode of each of `num_episodes` parallel envs, played by `policy`.

    Taking the first episode of every env (rather than the first episodes to finish)
    keeps the sample unbiased: short episodes would otherwise be over-represented.

    Args:
        env_id: a registered Gymnasium id, e.g. "CartPole-v1".
        policy: maps observations [N, *O] (float32 tensor) to actions [N] (tensor);
            called without gradient tracking.
        num_episodes: N, the number of episodes (and of parallel envs).
        seed: env i is reset with seed + i (None: unseeded).

    Returns:
        N episodes, in env order.
    """
    _check_count("num_episodes", num_episodes)
    envs = make_vector_env(env_id, num_episodes, seed=seed)
    try:
        obs, _ = envs.reset(seed=seed)
        steps: list[list[tuple]] = [[] for _ in range(num_episodes)]
        episodes: list[Episode | None] = [None] * num_episodes
        while any(ep is None for ep in episodes):
            obs_t = torch.as_tensor(obs, dtype=torch.float32)  # (N, *O) s_t
            actions = policy(obs_t)  # (N,) a_t
            next_obs, rewards, terminated, truncated, info = envs.step(actions.numpy())
            reached = final_observations(next_obs, terminated, truncated, info)
            for i in range(num_episodes):
                if episodes[i] is not None:
                    continue  # this env already gave its episode
                steps[i].append((obs_t[i], actions[i], float(rewards[i])))
                if terminated[i] or truncated[i]:
                    episodes[i] = _episode(steps[i], reached[i], terminated[i])
            obs = next_obs
    finally:
        envs.close()
    return episodes  # type: ignore[return-value]


def _episode(steps: list[tuple], final_obs: np.ndarray, terminated: bool) -> Episode:
    observations, actions, rewards = zip(*steps, strict=True)
    return Episode(
        observations=torch.stack(observations),
        actions=torch.stack(actions),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        final_observation=torch.as_tensor(final_obs, dtype=torch.float32),
        terminated=bool(terminated),
        truncated=not bool(terminated),
    )


def average_return(
    env_id: str, policy: Policy, num_episodes: int, seed: int | None = None
) -> float:
    """Mean undiscounted return of `num_episodes` fresh episodes of `policy`."""
    episodes = collect_episodes(env_id, policy, num_episodes, seed=seed)
    return float(np.mean([ep.total_reward for ep in episodes]))
