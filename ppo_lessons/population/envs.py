"""The K·N envs of a population as the rollout sees them.

One batched tensor env (`ppo_lessons.torch_envs`) of K·N copies, rows ordered
(member, env): member k owns rows k·N ... k·N + N − 1, and its initial states come
from its own random stream. `PopulationEnvs` is a
`ppo_lessons.rollout.RolloutEnvsLike` (so lesson 07's `collect_rollout` runs on it,
as on `ppo_lessons.envs.RolloutEnvs`), with each member's observation statistics and
reward scaling its own, switched on per member (`norm_obs`, `norm_reward`:
`ppo_lessons.normalize`'s `RunningMeanStd` and `RewardScaler` with a member axis),
and episode statistics kept per member.
"""

from __future__ import annotations

import numpy as np
import torch

from ppo_lessons.envs import EpisodeCounter
from ppo_lessons.normalize import RewardScaler, RunningMeanStd
from ppo_lessons.population.random import MemberStreams
from ppo_lessons.torch_envs import TorchVectorEnv, make_torch_vector_env

__all__ = ["PopulationEnvs", "make_population_env"]


def make_population_env(
    env_id: str, num_envs: int, streams: MemberStreams
) -> TorchVectorEnv:
    """K·N copies of `env_id`; member k's envs draw from member k's stream."""
    K = streams.keys.shape[0]

    def uniform(columns: int) -> torch.Tensor:  # (K·N, columns)
        return streams.uniform("envs", (num_envs, columns)).reshape(K * num_envs, -1)

    return make_torch_vector_env(
        env_id, K * num_envs, device=streams.device, uniform=uniform
    )


class PopulationEnvs:
    """Tensors in and out, K·N rows ordered (member, env).

    `step(actions)` returns normalized observations (each member's running
    statistics, where its `norm_obs`), rewards scaled by the running std of each
    member's discounted return (where its `norm_reward`: one `RewardScaler` with a
    member axis, each member's γ), terminated,
    truncated, and `info["final_obs"]`, the normalized observation each env reached.
    """

    def __init__(
        self,
        envs: TorchVectorEnv,
        num_members: int,
        norm_obs: torch.Tensor,
        norm_reward: torch.Tensor,
        gamma: torch.Tensor,
    ) -> None:
        self.envs, self.device = envs, envs.device
        K, N = num_members, envs.num_envs // num_members
        self.num_members, self.num_envs = K, N
        obs_dim = envs.single_observation_space.shape[0]
        self.obs_rms = RunningMeanStd((K, obs_dim)).to(self.device)  # per member
        # one RewardScaler with a member axis: each member's γ and statistics
        self.reward_scaler = RewardScaler(N, gamma).to(self.device)
        self.norm_obs, self.norm_reward = norm_obs, norm_reward
        # skip the statistics altogether when no member uses them
        self.any_norm_obs = bool(norm_obs.any())
        self.any_norm_reward = bool(norm_reward.any())
        self.raw_obs: torch.Tensor | None = None
        self.episodes = EpisodeCounter(K * N, self.device)  # (K·N,) envs

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """(K·N, O) raw observations, standardized for the members with norm_obs."""
        if not self.any_norm_obs:
            return obs
        K, N = self.num_members, self.num_envs
        by_env = obs.reshape(K, N, -1).transpose(0, 1)  # (N, K, O), stats are (K, O)
        normalized = self.obs_rms.normalize(by_env).transpose(0, 1)  # (K, N, O)
        grouped = obs.reshape(K, N, -1)
        chosen = torch.where(self.norm_obs[:, None, None], normalized, grouped)
        return chosen.reshape(K * N, -1)

    def observe(self, raw_obs: torch.Tensor) -> torch.Tensor:
        self.raw_obs = raw_obs
        K, N = self.num_members, self.num_envs
        if self.any_norm_obs:
            self.obs_rms.update(raw_obs.reshape(K, N, -1).transpose(0, 1))
        return self.normalize(raw_obs)

    def reset(self) -> torch.Tensor:
        obs, _ = self.envs.reset()
        return self.observe(obs)

    @torch.no_grad()
    def scale_rewards(self, rewards: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """(K·N,) rewards through the members' `RewardScaler` on their (N, K) view,
        kept scaled where the member's norm_reward is on."""
        K, N = self.num_members, self.num_envs
        by_env = rewards.reshape(K, N).T  # (N, K)
        scaled = self.reward_scaler.scale(by_env, done.reshape(K, N).T)
        return torch.where(self.norm_reward, scaled, by_env).T.reshape(K * N)

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
        obs = self.observe(next_obs)
        done = terminated | truncated
        self.episodes.record(rewards, done)
        if self.any_norm_reward:
            rewards = self.scale_rewards(rewards, done)
        final = {"final_obs": self.normalize(info["final_obs"])}
        return obs, rewards, terminated, truncated, final

    def episode_stats(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each member's (returns, lengths) of the episodes that ended since the last
        call, in the order they ended (one host transfer)."""
        K, N = self.num_members, self.num_envs
        stacked = self.episodes.read()
        if stacked is None:
            return [(np.zeros(0), np.zeros(0)) for _ in range(K)]
        done, returns, lengths = (x.numpy().reshape(-1, K, N) for x in stacked)
        return [
            (returns[:, k][done[:, k]], lengths[:, k][done[:, k]]) for k in range(K)
        ]

    def obs_statistics(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's observation statistics, as its `ActorCritic.obs_rms` holds them."""
        return {
            "mean": self.obs_rms.mean[k].clone(),
            "var": self.obs_rms.var[k].clone(),
            "count": self.obs_rms.count.clone(),
        }

    def close(self) -> None:
        self.envs.close()
