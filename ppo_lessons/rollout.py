"""Lesson 07 (`07_the_full_trainer.ipynb`): collecting a rollout (exercise 7.1).

A rollout is T steps of N environments under the current policy, written into a
`RolloutBuffer` row by row. Two things make it correct rather than almost correct:

- `next_values[t]` is V(s_{t+1}) of the observation actually REACHED at step t. Where
  an episode ended, the env has already reset (Gymnasium's SAME_STEP autoreset), so
  the returned observation belongs to the next episode; the reached one is
  `info["final_obs"]`. A truncated episode bootstraps from it (Pardo et al., 2018).
- `terminated` and `truncated` are stored apart, with the step they end.

Acting needs only the policy; the critic values every s_t and s_{t+1} in one batch
after the loop (the network does not change during a rollout), so no step asks the
host whether an episode ended, and with a batched tensor env the whole rollout stays
on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.gae import compute_gae

__all__ = [
    "RolloutAgent",
    "RolloutEnvsLike",
    "collect_rollout",
    "gae_from_buffer",
    "value_rollout",
]


class RolloutAgent(Protocol):
    """What a rollout asks of the agent: an `ActorCritic`, or a population's batched
    network (`ppo_lessons.population.network.PopulationActorCritic`, whose random
    source is its members' `MemberStreams` where one agent passes a generator)."""

    def policy(self, obs: torch.Tensor) -> torch.Tensor: ...

    def sample(
        self, policy_out: torch.Tensor, generator: Any
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def value(self, obs: torch.Tensor) -> torch.Tensor: ...


class RolloutEnvsLike(Protocol):
    """What a rollout asks of the envs: `ppo_lessons.envs.RolloutEnvs`, or a
    population's `ppo_lessons.population.envs.PopulationEnvs` (tensors in and out;
    `info["final_obs"]` the normalized observation each env reached)."""

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]: ...


@torch.inference_mode()
def collect_rollout(
    agent: RolloutAgent,
    envs: RolloutEnvsLike,
    buffer: RolloutBuffer,
    obs: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Step `envs` `buffer.num_steps` times with `agent`'s policy, filling `buffer`.

    Args:
        agent: the actor-critic; `agent.policy(obs)` then `agent.sample(out, generator)`
            give (actions, log π(a|s)); `agent.value(obs)` gives V(s).
        envs: a `ppo_lessons.envs.RolloutEnvs` (tensors in and out, N envs; any
            `RolloutEnvsLike`, such as a population's K·N envs).
        buffer: T x N storage; row t gets obs, actions, log_probs, rewards,
            terminated, truncated, reached_obs, values and next_values.
        obs: [N, *O] the (normalized) observations the rollout starts from.
        generator: the random source of the action samples.

    Returns:
        [N, *O] the observations the next rollout starts from.
    """
    for t in range(buffer.num_steps):
        actions, log_probs = agent.sample(agent.policy(obs), generator)
        buffer.obs[t], buffer.actions[t], buffer.log_probs[t] = obs, actions, log_probs
        obs, rewards, terminated, truncated, info = envs.step(actions)
        buffer.rewards[t] = rewards
        buffer.terminated[t], buffer.truncated[t] = terminated, truncated
        buffer.reached_obs[t] = info["final_obs"]  # s_{t+1}: never the reset obs
    value_rollout(agent, buffer)
    return obs


@torch.no_grad()
def value_rollout(agent: RolloutAgent, buffer: RolloutBuffer) -> None:
    """Fill `buffer.values` with V(s_t) and `buffer.next_values` with V(s_{t+1}) of
    the reached observations, in one batch of 2·T·N observations."""
    T, N = buffer.num_steps, buffer.num_envs
    both = torch.cat([buffer.obs, buffer.reached_obs])  # (2T, N, *O)
    values = agent.value(both.reshape(2 * T * N, *both.shape[2:])).reshape(2, T, N)
    buffer.values.copy_(values[0])
    buffer.next_values.copy_(values[1])


def gae_from_buffer(
    buffer: RolloutBuffer,
    gamma: float,
    gae_lambda: float,
    gae_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] = compute_gae,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), each (T, N), of the rollout in `buffer`: `gae_fn` (the
    contract of `ppo_lessons.gae.compute_gae`, exercise 4.1) on its rows."""
    return gae_fn(
        buffer.rewards, buffer.values, buffer.next_values, buffer.terminated,
        buffer.truncated, gamma, gae_lambda,
    )  # fmt: skip
