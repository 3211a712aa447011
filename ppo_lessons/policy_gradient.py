"""Lesson 01 (`01_policy_gradients.ipynb`): returns and the policy-gradient loss.

The policy-gradient theorem in its score-function form (Williams, 1992; Sutton et al.,
2000):

    ∇_θ J(θ) = E_{τ∼π_θ} [ Σ_t ∇_θ log π_θ(a_t | s_t) · Ψ_t ]

where Ψ_t is the return-to-go G_t (REINFORCE), G_t − b(s_t) (with a baseline) or an
advantage estimate A_t (lesson 04). Autograd computes the gradient for us once we write
a scalar whose gradient is that estimate: the policy-gradient loss.
"""

from __future__ import annotations

import torch

from ppo_lessons.validate import (
    require_float_tensor,
    require_same_device,
    require_same_shape,
    require_time_major,
    require_unit_interval,
)

__all__ = ["discounted_returns", "policy_gradient_loss"]


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted return-to-go of one episode, G_t = Σ_{k≥0} γ^k r_{t+k}.

    Computed backwards with the recursion G_t = r_t + γ G_{t+1}, G_T = 0.

    Args:
        rewards: [T] rewards of one episode, or [T, N] for N episodes of equal length
            (each column is its own episode).
        gamma: discount factor γ in [0, 1].

    Returns:
        [T] (or [T, N]) returns-to-go, same dtype and device as `rewards`.
    """
    rewards = require_float_tensor("rewards", rewards)
    require_time_major("rewards", rewards)
    gamma = require_unit_interval("gamma", gamma)
    returns = torch.empty_like(rewards)  # (T,) or (T, N) G_t
    running = torch.zeros_like(rewards[0])  # () or (N,) G_{t+1}
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def policy_gradient_loss(
    log_probs: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Policy-gradient loss, L(θ) = −mean_t[ log π_θ(a_t | s_t) · Ψ_t ].

    Minimizing it follows the policy-gradient estimate: −∇_θ L is the sample mean of
    ∇_θ log π_θ(a_t|s_t) · Ψ_t. The weights Ψ_t are treated as given data; pass them
    detached if they come from a network (a critic's baseline, say).

    Args:
        log_probs: [T] or [T, N] log π_θ(a_t | s_t) of the actions taken (with grad).
        weights: same shape, the weights Ψ_t (returns, or advantages).

    Returns:
        [] scalar loss, mean over all elements.
    """
    log_probs = require_float_tensor("log_probs", log_probs)
    weights = require_float_tensor("weights", weights)
    tensors = {"log_probs": log_probs, "weights": weights}
    require_same_shape("log_probs", tensors)
    require_same_device(tensors)
    return -(log_probs * weights).mean()
