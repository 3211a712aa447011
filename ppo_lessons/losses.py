"""Lesson 06 (`06_the_ppo_update.ipynb`): the losses of the PPO update.

The update minimizes one scalar (Schulman et al., 2017, eq. 9, written as a loss):

    loss = −L^CLIP(θ) + c_v · L^V(φ) − c_e · H[π_θ]

with L^CLIP from `ppo_lessons.clipping`, the value loss L^V below and the entropy bonus
H (`ppo_lessons.networks`). Value clipping (always on in OpenAI's baselines, the switch
`clip_vloss` here) removes the gradient of a sample whose prediction has moved more than
ε from the one made at collection time towards its target (or past it); it does not
bound the prediction (shared weights and Adam's momentum still move it), and an
overshoot of the target is not pulled back (Engstrom et al., 2020, found it rarely
helps).
"""

from __future__ import annotations

import torch

from ppo_lessons.validate import require_float_tensors, require_positive

__all__ = ["value_loss"]


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_eps: float | None,
) -> torch.Tensor:
    """Squared-error value loss, optionally clipped around the old prediction.

        clip_eps None:  L^V = ½ mean( (V − R)² )
        otherwise:      V^clip = V_old + clamp(V − V_old, −ε, ε)
                        L^V = ½ mean( max( (V − R)², (V^clip − R)² ) )

    The max makes the clipped version a pessimistic (upper) bound of the unclipped
    loss, like L^CLIP: moving the prediction more than ε from V_old towards R earns
    no further reduction, so that sample's gradient is zero. It bounds nothing: for
    R > V_old + ε the loss is flat for V from V_old + ε to 2R − V_old − ε, so a
    prediction that overshot the target by less than R − V_old − ε is not pulled back.

    Args:
        values: [T] or [T, N] (or a flat minibatch [M]) V_φ(s_t), with grad.
        old_values: same shape, V(s_t) predicted when the rollout was collected.
        returns: same shape, the regression targets R_t (λ-returns from GAE).
        clip_eps: ε > 0, or None for the unclipped loss.

    Returns:
        [] scalar loss to MINIMIZE, mean over all elements.
    """
    require_float_tensors(values=values, old_values=old_values, returns=returns)
    unclipped = (values - returns).pow(2)
    if clip_eps is None:
        return 0.5 * unclipped.mean()
    clip_eps = require_positive("clip_eps", clip_eps)
    clipped_values = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
    clipped = (clipped_values - returns).pow(2)
    return 0.5 * torch.maximum(unclipped, clipped).mean()
