"""Lesson 10 (`10_ppo_on_a_language_model.ipynb`): per-token rewards, advantages and
losses of completions.

A batch holds B completions of at most L tokens, row b one completion, padded after its
end token. `mask[b, t]` is True on completion b's real tokens (its end token included)
and False on the padding; each row's real tokens are contiguous from t = 0 and every row
has at least one. Padding entries of any input may hold any finite value: they never
change a result.

RLHF's PPO (Ziegler et al., 2019; Ouyang et al., 2022) scores a whole completion once and
pays a KL penalty on every token; GRPO (Shao et al., 2024, "DeepSeekMath") drops the
critic and compares the G completions of one prompt with each other; Dr. GRPO (Liu et
al., 2025, "Understanding R1-Zero-Like Training") removes the length and difficulty
biases of GRPO's normalizations.
"""

from __future__ import annotations

import torch

from ppo_lessons.validate import require_float_tensor, require_float_tensors

__all__ = [
    "AGGREGATIONS",
    "group_advantages",
    "kl_penalized_rewards",
    "last_token_index",
    "masked_whiten",
    "token_loss",
]

AGGREGATIONS = ("token", "sequence", "constant")


def check_mask(mask: torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
    """`mask` as bool, after checking its shape and that every row has a token."""
    if not isinstance(mask, torch.Tensor) or mask.shape != like.shape[:2]:
        shape = getattr(mask, "shape", type(mask).__name__)
        raise ValueError(
            f"mask must be a [B, L] tensor matching {name} {list(like.shape)}, got "
            f"{list(shape) if isinstance(shape, torch.Size) else shape}"
        )
    if like.dim() != 2:
        raise ValueError(f"{name} must be [B, L], got shape {list(like.shape)}")
    mask = mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError(
            "mask has a row with no real token; every row needs at least one"
        )
    return mask


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] the index of each row's last real token (its end token or its last one)."""
    return mask.long().sum(dim=1) - 1


def kl_penalized_rewards(
    scores: torch.Tensor,
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """RLHF's per-token reward: a KL penalty on every token, the score at the last.

        r[b, t] = −β (log π(y_t | ·) − log π_ref(y_t | ·))     on real tokens
                  + score[b]                                    at the last real token
        r[b, t] = 0                                             on padding

    The penalty is the k1 estimate of KL(π ‖ π_ref) on the sampled token (lesson 06);
    summed over a completion it estimates the completion's KL to the reference.

    Args:
        scores: [B] the reward of each whole completion.
        log_probs: [B, L] the sampling policy's log-probability of each token.
        ref_log_probs: [B, L] the frozen reference model's, of the same tokens.
        mask: [B, L] bool, True on real tokens.
        kl_coef: β >= 0.

    Returns:
        [B, L] rewards, zero on padding.
    """
    require_float_tensors(log_probs=log_probs, ref_log_probs=ref_log_probs)
    mask = check_mask(mask, log_probs, "log_probs")
    kl = torch.where(mask, log_probs - ref_log_probs, torch.zeros_like(log_probs))
    rewards = -kl_coef * kl
    last = last_token_index(mask)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def masked_whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Standardize over the real tokens only: (x − μ) / (σ + 1e-8) there, 0 on padding.

    μ and σ are the mean and the Bessel-corrected standard deviation (as
    `torch.Tensor.std`) of x over the real tokens of the whole batch; padding counts in
    neither, so short completions do not pull μ toward the padding's value.

    Args:
        x: [B, L] values (e.g. advantages).
        mask: [B, L] bool, True on real tokens.

    Returns:
        [B, L] standardized values, zero on padding.
    """
    require_float_tensor("x", x)
    mask = check_mask(mask, x, "x")
    real = x[mask]
    whitened = (x - real.mean()) / (real.std() + 1e-8)
    return torch.where(mask, whitened, torch.zeros_like(x))


def group_advantages(
    scores: torch.Tensor, group_size: int, scale: bool
) -> torch.Tensor:
    """GRPO's advantage: each completion's score against its own prompt's group.

        A[b] = score[b] − mean(group of b)                       scale False (Dr. GRPO)
        A[b] = (score[b] − mean(group of b)) / (std(group of b) + 1e-4)     scale True

    The G = group_size completions of each of P prompts sit in consecutive rows
    (B = P · G); std is Bessel-corrected, as `torch.Tensor.std`.

    Args:
        scores: [B] the reward of each completion.
        group_size: G >= 2 completions per prompt.
        scale: divide by the group's standard deviation (GRPO) or not (Dr. GRPO).

    Returns:
        [B] advantages, one per completion (every token of it gets this one).
    """
    require_float_tensor("scores", scores)
    if not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an integer >= 2, got {group_size!r}")
    if scores.ndim != 1 or scores.shape[0] % group_size:
        raise ValueError(
            f"scores must be [B] with B a multiple of group_size={group_size}, got shape "
            f"{list(scores.shape)}"
        )
    groups = scores.reshape(-1, group_size)  # (P, G): one prompt per row
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + 1e-4)
    return centred.reshape(-1)


def token_loss(per_token: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One number from a [B, L] per-token loss; padding never counts.

        "token":    Σ mask·ℓ / Σ mask                 every token weighs the same
        "sequence": mean_b (Σ_t mask·ℓ / Σ_t mask)    every completion weighs the same
        "constant": Σ mask·ℓ / (B · L)                Dr. GRPO: a fixed normalizer

    "sequence" (GRPO's paper) gives each token of a long completion less weight than a
    token of a short one: a wrong long answer is punished less per token, so lengths
    drift upward. "token" and "constant" weigh tokens equally.

    Args:
        per_token: [B, L] the loss of each token (with gradient).
        mask: [B, L] bool, True on real tokens.
        mode: "token", "sequence" or "constant".

    Returns:
        [] scalar; padding entries of per_token get zero gradient.
    """
    require_float_tensor("per_token", per_token)
    mask = check_mask(mask, per_token, "per_token")
    if mode not in AGGREGATIONS:
        raise ValueError(f"mode must be one of {AGGREGATIONS}, got {mode!r}")
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))
    weights = mask.to(per_token.dtype)
    if mode == "token":
        return masked.sum() / weights.sum()
    if mode == "sequence":
        return (masked.sum(dim=1) / weights.sum(dim=1)).mean()
    return masked.sum() / per_token.numel()
