"""Memory (lesson 11, `11_memory.ipynb`): what a rollout of a recurrent policy must keep.

Besides lesson 07's rollout, for the update to replay the policy exactly:
- `initial_hidden` [N, H]: the hidden state each env's sequence started from (the
  memory carried over from the previous rollout, mid-episode);
- `starts` [T, N]: where a new episode began, so the replay resets there and only there.

The values come from the hidden states the rollout computed: V(s_t) = critic(h_t), and
V(s_{t+1}) of the observation actually reached (lesson 07) from one more core step,
core(x_{t+1}, h_t), batched after the loop, with no reset: the reached observation
belongs to the episode of step t, also where that episode ended.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.memory.network import RecurrentActorCritic
from ppo_lessons.rollout import RolloutEnvsLike

__all__ = ["Memory", "SequenceBuffer", "collect_sequences"]


@dataclass
class Memory:
    """What a recurrent run carries from one rollout to the next."""

    hidden: torch.Tensor  # (N, H) the hidden state after the last step
    starts: torch.Tensor  # (N,) bool: the next step is an episode's first

    @classmethod
    def fresh(cls, agent: RecurrentActorCritic, num_envs: int) -> Memory:
        """Zeros, and every env at an episode's first step (just reset)."""
        hidden = agent.initial_state(num_envs)
        return cls(hidden, torch.ones(num_envs, dtype=torch.bool, device=hidden.device))


class SequenceBuffer(RolloutBuffer):
    """Lesson 07's (T, N) storage plus the two things a replay needs."""

    def __init__(self, *args, hidden_size: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        T, N, device = self.num_steps, self.num_envs, self.obs.device
        self.starts = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.initial_hidden = torch.zeros((N, hidden_size), device=device)
        self.hidden = torch.zeros((T, N, hidden_size), device=device)  # h_t, acting


@torch.inference_mode()
def collect_sequences(
    agent: RecurrentActorCritic,
    envs: RolloutEnvsLike,
    buffer: SequenceBuffer,
    obs: torch.Tensor,
    memory: Memory,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """T steps of N envs with a recurrent policy, as `ppo_lessons.rollout.collect_rollout`
    (exercise 7.1) plus the memory: `memory` is read at the start and updated at the end.

    Returns:
        [N, *O] the observations the next rollout starts from.
    """
    hidden, starts = memory.hidden, memory.starts
    buffer.initial_hidden.copy_(hidden)
    for t in range(buffer.num_steps):
        buffer.starts[t] = starts
        hidden = agent.step(obs, hidden, starts)
        buffer.hidden[t] = hidden
        actions, log_probs = agent.sample(agent.policy(hidden), generator)
        buffer.obs[t], buffer.actions[t], buffer.log_probs[t] = obs, actions, log_probs
        obs, rewards, terminated, truncated, info = envs.step(actions)
        buffer.rewards[t] = rewards
        buffer.terminated[t], buffer.truncated[t] = terminated, truncated
        buffer.reached_obs[t] = info["final_obs"]  # s_{t+1}: never the reset obs
        starts = terminated | truncated
    value_sequences(agent, buffer)
    memory.hidden, memory.starts = hidden.clone(), starts.clone()
    return obs


@torch.no_grad()
def value_sequences(agent: RecurrentActorCritic, buffer: SequenceBuffer) -> None:
    """`buffer.values` = critic(h_t); `buffer.next_values` = critic(core(x_{t+1}, h_t))
    of the reached observations, all T·N in one batch."""
    T, N, H = buffer.num_steps, buffer.num_envs, buffer.initial_hidden.shape[-1]
    flat = buffer.hidden.reshape(T * N, H)
    reached = buffer.reached_obs.reshape(T * N, *buffer.reached_obs.shape[2:])
    next_hidden = agent.core(agent.encoder(reached), flat)
    buffer.values.copy_(agent.value(flat).reshape(T, N))
    buffer.next_values.copy_(agent.value(next_hidden).reshape(T, N))
