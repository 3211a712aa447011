"""Lesson 04 (`04_gae.ipynb`): generalized advantage estimation.

Schulman et al. (2016), "High-Dimensional Continuous Control Using Generalized
Advantage Estimation", eq. (16), written with explicit episode ends:

    δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t)
    A_t = δ_t + γ λ (1 − done_t) A_{t+1},      done_t = terminated_t or truncated_t

At a termination there is nothing after s_{t+1}: no bootstrap. At a time-limit
truncation the episode was cut, not finished, so δ_t still bootstraps from the value of
the episode's true final observation (Pardo et al., 2018, "Time Limits in Reinforcement
Learning"); only the trace A_{t+1}, which belongs to the next episode, is cut.
"""

from __future__ import annotations

import torch

from ppo_lessons.validate import (
    require_flags,
    require_float_tensor,
    require_same_device,
    require_same_shape,
    require_time_major,
    require_unit_interval,
)

__all__ = ["compute_gae"]


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) advantages and λ-returns of a rollout.

        δ_t = r_t + γ (1 − terminated_t) next_values_t − values_t
        A_t = δ_t + γ λ (1 − (terminated_t ∨ truncated_t)) A_{t+1},   A_T = 0
        returns_t = A_t + values_t

    λ = 0 gives the one-step TD error; λ = 1 the Monte-Carlo return minus the value.

    Args:
        rewards: [T] or [T, N] r_t (time first; each column one environment).
        values: same shape, V(s_t).
        next_values: same shape, V(s_{t+1}) of the observation actually reached after
            step t; for a step that ended an episode, the value of that episode's
            final observation (not of the reset observation that follows it). At the
            last step of the rollout, the value of the observation the rollout stopped
            at, so an unfinished episode bootstraps.
        terminated: same shape, bool or 0/1: the episode ended in a terminal state.
        truncated: same shape, bool or 0/1: the episode was cut (time limit).
        gamma: discount γ in [0, 1].
        lam: GAE λ in [0, 1].

    Returns:
        (advantages, returns), each the shape, dtype and device of `rewards`.
    """
    rewards = require_float_tensor("rewards", rewards)
    require_time_major("rewards", rewards)
    values = require_float_tensor("values", values)
    next_values = require_float_tensor("next_values", next_values)
    tensors = {"rewards": rewards, "values": values, "next_values": next_values}
    require_same_shape("rewards", tensors)
    terminated = require_flags("terminated", terminated, rewards.shape)
    truncated = require_flags("truncated", truncated, rewards.shape)
    require_same_device({**tensors, "terminated": terminated, "truncated": truncated})
    gamma = require_unit_interval("gamma", gamma)
    lam = require_unit_interval("lam", lam)

    dtype = rewards.dtype
    not_terminal = 1.0 - terminated.to(dtype)  # (T, N) no bootstrap after a terminal
    not_done = 1.0 - (terminated.bool() | truncated.bool()).to(dtype)  # (T, N) trace
    deltas = rewards + gamma * not_terminal * next_values.to(dtype) - values.to(dtype)
    advantages = torch.empty_like(rewards)  # (T, N) A_t
    running = torch.zeros_like(rewards[0])  # (N,) A_{t+1}
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values.to(dtype)
