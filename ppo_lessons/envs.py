"""Lesson 00 (`00_setup_and_gymnasium.ipynb`): Gymnasium environments for the course.

The second half of the module is the plumbing between an env and the trainer (lesson
07): the device, tensors in and out, and `RolloutEnvs`, the vector env as the rollout
sees it. Which env a run makes (Gymnasium's, or lesson 09's batched tensor envs) is
chosen in `ppo_lessons.torch_envs.make_training_envs`.

Gymnasium 1.x vector environments auto-reset by default on the NEXT step: the step
after an episode ends returns the reset observation with a zero reward, a transition
that belongs to no episode. The course uses `AutoresetMode.SAME_STEP` instead, chosen
here and nowhere else: every `step` is a real transition, and when an episode ends the
returned observation is already the reset one while `info["final_obs"]` holds the
episode's true final observation (needed to bootstrap at a time-limit truncation).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from ppo_lessons.normalize import RewardScaler

__all__ = [
    "AUTORESET_MODE",
    "NoVelocity",
    "EpisodeCounter",
    "RolloutEnvs",
    "TensorVectorEnv",
    "actions_to_env",
    "assert_autoreset_mode",
    "cartpole_no_velocity",
    "check_spaces",
    "final_observations",
    "make_vector_env",
    "obs_to_tensor",
    "resolve_device",
    "solved_threshold",
    "to_device",
]

AUTORESET_MODE = AutoresetMode.SAME_STEP

# ---------------------------------------------------------------- a task that needs memory


class NoVelocity(gym.ObservationWrapper):
    """CartPole with only the cart position x and the pole angle θ observed (the
    velocities hidden): a policy must infer them from the past (lesson 11)."""

    KEEP = (0, 2)  # (x, ẋ, θ, θ̇) -> (x, θ)

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        keep = list(self.KEEP)
        self.observation_space = gym.spaces.Box(low[keep], high[keep], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[list(self.KEEP)]


def cartpole_no_velocity(**kwargs: Any) -> gym.Env:
    """`CartPoleNoVel-v1`: CartPole-v1's dynamics, rewards and limits, observing (x, θ)."""
    from gymnasium.envs.classic_control import CartPoleEnv

    return NoVelocity(CartPoleEnv(**kwargs))


if "CartPoleNoVel-v1" not in gym.registry:
    gym.register(
        id="CartPoleNoVel-v1",
        entry_point="ppo_lessons.envs:cartpole_no_velocity",
        max_episode_steps=500,
        reward_threshold=475.0,
    )


def solved_threshold(env_id: str) -> float | None:
    """The return at which `env_id` counts as solved (its Gymnasium spec's
    `reward_threshold`), or None: none set (Pendulum-v1) or the id not registered."""
    try:
        return gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None


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


# ---------------------------------------------------------------- the trainer's plumbing


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without CUDA is an error.
    A CUDA device always carries its index ('cuda' -> 'cuda:0'), so it compares
    equal to the device of the tensors made on it."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'cpu'")
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """Reject spaces the trainer does not support, saying what is supported."""
    obs_ok = isinstance(observation_space, gym.spaces.Box) and (
        len(observation_space.shape) == 1
    )
    if not obs_ok:
        raise ValueError(
            f"unsupported observation space {observation_space}: the trainer supports "
            "1-D Box observations, e.g. Box(-inf, inf, (4,), float32)"
        )
    if isinstance(action_space, gym.spaces.Discrete) and action_space.start == 0:
        return
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return
    raise ValueError(
        f"unsupported action space {action_space}: the trainer supports Discrete(n) "
        "(starting at 0) and 1-D Box actions"
    )


def to_device(
    values: Any, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """`values` (a NumPy array or a tensor) as a tensor on `device`. A tensor that is
    already there with the right dtype comes back as it is (no op launched: the
    batched envs' outputs cost nothing here)."""
    if (
        isinstance(values, torch.Tensor)
        and values.device == device
        and (dtype is None or values.dtype == dtype)
    ):
        return values
    return torch.as_tensor(values, dtype=dtype).to(device, non_blocking=True)


class TensorVectorEnv(gym.vector.VectorEnv):
    """A vector env whose inputs and outputs are tensors on one device, with
    Gymnasium's vector API otherwise (the batched classic-control envs of
    `ppo_lessons.torch_envs`, lesson 09): the trainer hands it the policy's action
    tensor as it is, so nothing leaves the device."""


def obs_to_tensor(obs: Any, device: torch.device) -> torch.Tensor:
    """Env observations [N, *O] as a float32 tensor on `device` (the one conversion
    point: a NumPy array from Gymnasium, or a tensor from an on-device env)."""
    return to_device(obs, device, torch.float32)


def actions_to_env(actions: torch.Tensor, envs: gym.Env | gym.vector.VectorEnv) -> Any:
    """Policy actions as the env wants them. Box actions are clipped to the bounds
    here and only here: the buffer keeps the sampled action and its log-prob. A
    batched tensor env takes the tensor as it is (it clips Box actions itself, as
    Gymnasium's envs do), so nothing leaves the device."""
    if isinstance(envs, TensorVectorEnv):
        return actions
    action_space = getattr(envs, "single_action_space", envs.action_space)
    actions = actions.cpu().numpy()
    if isinstance(action_space, gym.spaces.Box):
        return np.clip(actions, action_space.low, action_space.high).astype(
            action_space.dtype
        )
    return actions


class EpisodeCounter:
    """The undiscounted return and length of the running episode of each of N envs,
    and those of every episode that ends, kept on the device until they are read."""

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.returns = torch.zeros(num_envs, device=device)  # (N,) running episodes
        self.lengths = torch.zeros(num_envs, device=device)  # (N,)
        self.ended: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def record(self, rewards: torch.Tensor, done: torch.Tensor) -> None:
        """Add one step's [N] rewards; `done` [N] marks the episodes that ended."""
        self.returns += rewards
        self.lengths += 1
        self.ended.append((done, self.returns.clone(), self.lengths.clone()))
        self.returns.masked_fill_(done, 0.0)
        self.lengths.masked_fill_(done, 0.0)

    def read(self, clear: bool = True) -> tuple[torch.Tensor, ...] | None:
        """(done, returns, lengths), each (steps, N) on the CPU, of the steps recorded
        since the last clearing read (one host transfer); None if there were none."""
        if not self.ended:
            return None
        stacked = tuple(
            torch.stack([step[i] for step in self.ended]).cpu() for i in range(3)
        )
        if clear:
            self.ended.clear()
        return stacked


class RolloutEnvs:
    """A vector env as the rollout sees it (lesson 07): Gymnasium's `step` and
    `reset`, with tensors in and out on the training device.

        obs, rewards, terminated, truncated, info = envs.step(actions)

    `actions` are the agent's stored actions (squashed into the bounds for the env
    when the agent squashes); `obs` [N, *O] are normalized with the agent's running
    statistics (updated here, with every raw observation the env returns, as SB3's
    VecNormalize does); `rewards` [N] are scaled when a `RewardScaler` is given;
    `terminated`, `truncated` [N] bool; `info["final_obs"]` [N, *O] is the
    normalized observation each env actually reached: the episode's true final
    observation where one ended (Gymnasium's SAME_STEP autoreset), else `obs`.

    The undiscounted return and length of every episode that ends are kept, in the
    order they end, until `episode_stats` reads them.
    """

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        agent: Any,
        device: torch.device,
        reward_scaler: RewardScaler | None = None,
    ) -> None:
        assert_autoreset_mode(envs)
        self.envs, self.agent, self.device = envs, agent, device
        self.num_envs = envs.num_envs
        self.reward_scaler = reward_scaler
        self.raw_obs: torch.Tensor | None = None  # (N, *O) as the env returned it
        self.episodes = EpisodeCounter(self.num_envs, device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env; the first normalized observations [N, *O]."""
        obs, _ = self.envs.reset(seed=seed)
        return self.observe(obs_to_tensor(obs, self.device))

    def observe(self, raw_obs: torch.Tensor) -> torch.Tensor:
        """Take `raw_obs` as the envs' current observations (updating the running
        statistics) and return them normalized."""
        self.raw_obs = raw_obs
        if self.agent.obs_rms is not None:
            self.agent.obs_rms.update(raw_obs)  # what the policy sees (as SB3)
        return self.agent.normalize(raw_obs)

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        env_actions = actions_to_env(self.agent.to_env(actions), self.envs)
        next_obs, rewards, terminated, truncated, info = self.envs.step(env_actions)
        raw = obs_to_tensor(next_obs, self.device)
        reached = obs_to_tensor(
            final_observations(next_obs, terminated, truncated, info), self.device
        )  # (N, *O) the observation this step led to
        obs = self.observe(raw)
        rewards = to_device(rewards, self.device, torch.float32)
        terminated = to_device(terminated, self.device)
        truncated = to_device(truncated, self.device)
        done = terminated | truncated
        self.episodes.record(rewards, done)
        if self.reward_scaler is not None:
            rewards = self.reward_scaler.scale(rewards, done)
        return (
            obs,
            rewards,
            terminated,
            truncated,
            {"final_obs": self.agent.normalize(reached)},
        )

    def episode_stats(self, clear: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(returns, lengths) of the episodes that ended since the last clearing call,
        in the order they ended (one host transfer; the trainer calls it once per
        update). `clear=False` leaves them for the next call."""
        stacked = self.episodes.read(clear)
        if stacked is None:
            return torch.zeros(0), torch.zeros(0)
        done, returns, lengths = stacked  # (steps, N) each
        return returns[done], lengths[done]

    def close(self) -> None:
        self.envs.close()
