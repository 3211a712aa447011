"""Lesson 02 (`02_importance_sampling.ipynb`): reusing samples from an older policy.

For actions drawn from π_old, E_{a∼π_old}[ π_θ(a|s)/π_old(a|s) · A ] = E_{a∼π_θ}[ A ],
so samples collected once can drive several gradient steps. The probability ratio is
computed from log-probabilities, r = exp(log π_θ − log π_old), which is exact where a
ratio of two tiny probabilities would underflow.

At θ = θ_old the ratio is 1 and ∇_θ r = ∇_θ log π_θ, so the surrogate's gradient equals
the policy-gradient estimate (Kakade & Langford, 2002; Schulman et al., 2015, TRPO).
"""

from __future__ import annotations

import torch

from ppo_lessons.validate import require_float_tensors

__all__ = ["probability_ratio", "surrogate_objective"]


def probability_ratio(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor
) -> torch.Tensor:
    """Probability ratio r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t) = exp(log π_θ − log π_old).

    Args:
        new_log_probs: [T] or [T, N] log π_θ(a_t|s_t), with grad.
        old_log_probs: same shape, log π_old(a_t|s_t) recorded at collection time.

    Returns:
        Same shape as the inputs, the ratios; the gradient flows through
        `new_log_probs` (and through `old_log_probs` only if it carries one).
    """
    require_float_tensors(new_log_probs=new_log_probs, old_log_probs=old_log_probs)
    return torch.exp(new_log_probs - old_log_probs)


def surrogate_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
) -> torch.Tensor:
    """Importance-sampled surrogate L^IS(θ) = mean_t[ r_t(θ) · A_t ], to MAXIMIZE.

    Args:
        new_log_probs: [T] or [T, N] log π_θ(a_t|s_t), with grad.
        old_log_probs: same shape, log π_old(a_t|s_t).
        advantages: same shape, advantage estimates A_t (data, no grad needed).

    Returns:
        [] scalar objective, mean over all elements.
    """
    require_float_tensors(
        new_log_probs=new_log_probs,
        old_log_probs=old_log_probs,
        advantages=advantages,
    )
    return (probability_ratio(new_log_probs, old_log_probs) * advantages).mean()
