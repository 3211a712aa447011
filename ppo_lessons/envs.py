"""Lesson 00 (`00_setup_and_gymnasium.ipynb`): Gymnasium environments for the course.

Gymnasium 1.x vector environments auto-reset by default on the NEXT step: the step
after an episode ends returns the reset observation with a zero reward, a transition
that belongs to no episode. The course uses `AutoresetMode.SAME_STEP` instead, chosen
here and nowhere else: every `step` is a real transition, and when an episode ends the
returned observation is already the reset one while `info["final_obs"]` holds the
episode's true final observation (needed to bootstrap at a time-limit truncation).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

__all__ = [
    "AUTORESET_MODE",
    "assert_autoreset_mode",
    "final_observations",
    "make_vector_env",
]

AUTORESET_MODE = AutoresetMode.SAME_STEP


def make_vector_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    asynchronous: bool = False,
    **env_kwargs: object,
) -> gym.vector.VectorEnv:
    """N copies of `env_id` as one Gymnasium vector env, auto-resetting on the same step.

    Args:
        env_id: a registered Gymnasium id, e.g. "CartPole-v1".
        num_envs: N >= 1.
        seed: seeds env i with seed + i at the first reset (None: unseeded).
        asynchronous: one subprocess per env (`AsyncVectorEnv`) instead of stepping
            them in this process (`SyncVectorEnv`, the default and usually faster for
            cheap classic-control envs).
        env_kwargs: passed to `gym.make` (e.g. `max_episode_steps=200`).
    """
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    try:
        gym.spec(env_id)
    except gym.error.Error as error:
        raise ValueError(
            f"env_id {env_id!r} is not a registered Gymnasium id: {error}"
        ) from None
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="async" if asynchronous else "sync",
        vector_kwargs={"autoreset_mode": AUTORESET_MODE},
        **env_kwargs,
    )
    if seed is not None:
        envs.action_space.seed(seed)
        envs.observation_space.seed(seed)
    assert_autoreset_mode(envs)
    return envs


def assert_autoreset_mode(envs: gym.vector.VectorEnv) -> None:
    """Fail loudly if `envs` does not auto-reset the way the rollout code assumes."""
    mode = envs.metadata.get("autoreset_mode")
    if mode != AUTORESET_MODE:
        raise ValueError(
            f"the vector env auto-resets with mode {mode}, but the course's rollout "
            f"code needs {AUTORESET_MODE} (make it with ppo_lessons.envs.make_vector_env)"
        )


def final_observations(
    next_obs: np.ndarray | torch.Tensor,
    terminated: np.ndarray | torch.Tensor,
    truncated: np.ndarray | torch.Tensor,
    info: dict,
) -> np.ndarray | torch.Tensor:
    """The observation each env actually reached: the episode's final observation where
    an episode just ended (SAME_STEP autoreset puts it in `info["final_obs"]`), else
    `next_obs`.

    Args:
        next_obs: [N, *O] observations returned by `step` (reset ones where episodes
            ended): a NumPy array, or a tensor from a batched tensor env
            (`ppo_lessons.torch_envs`), whose `final_obs` is a full [N, *O] tensor.
        terminated, truncated: [N] episode-end flags of this step.
        info: the info dict returned by `step`.

    Returns:
        [N, *O] a new array (or tensor); `next_obs` is not modified.
    """
    if isinstance(next_obs, torch.Tensor):  # no host sync: select on the device
        ended = (terminated | truncated).reshape(-1, *([1] * (next_obs.dim() - 1)))
        return torch.where(ended, info["final_obs"], next_obs)
    reached = np.array(next_obs, copy=True)
    ended = np.logical_or(terminated, truncated)
    if ended.any():
        for i in np.flatnonzero(ended):
            reached[i] = info["final_obs"][i]
    return reached
