"""Lesson 03 (`03_clipping.ipynb`): PPO's clipped surrogate objective.

Schulman et al. (2017), "Proximal Policy Optimization Algorithms", eq. (7):

    L^CLIP(θ) = E_t[ min( r_t(θ) A_t, clip(r_t(θ), 1 − ε, 1 + ε) A_t ) ]

The min makes it a pessimistic (lower) bound of the unclipped surrogate r_t A_t. Its
gradient is zero exactly where the ratio has left [1 − ε, 1 + ε] in the direction the
advantage favours (r > 1 + ε with A > 0, r < 1 − ε with A < 0), so one batch of data
cannot push the policy arbitrarily far.
"""

from __future__ import annotations

import torch

from ppo_lessons.importance_sampling import probability_ratio
from ppo_lessons.validate import require_float_tensors, require_positive

__all__ = ["clipped_surrogate_objective"]


def clipped_surrogate_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """Clipped surrogate L^CLIP = mean_t[ min(r_t A_t, clip(r_t, 1 − ε, 1 + ε) A_t) ].

    To MAXIMIZE (the trainer minimizes its negative).

    Args:
        new_log_probs: [T] or [T, N] (or a flat minibatch [M]) log π_θ(a_t|s_t).
        old_log_probs: same shape, log π_old(a_t|s_t) recorded at collection time.
        advantages: same shape, advantage estimates A_t.
        clip_eps: ε > 0, half-width of the trust interval of the ratio (0.1 to 0.3).

    Returns:
        [] scalar objective, mean over all elements.
    """
    require_float_tensors(
        new_log_probs=new_log_probs,
        old_log_probs=old_log_probs,
        advantages=advantages,
    )
    clip_eps = require_positive("clip_eps", clip_eps)
    ratio = probability_ratio(new_log_probs, old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return torch.minimum(unclipped, clipped).mean()
