"""Lesson 10 (`10_ppo_on_a_language_model.ipynb`): PPO on a language model.

Tokens as actions: the prompt and the tokens so far are the state, the next token the
action, a completion an episode. The four exercise functions of the lesson live in
`ppo_lessons.language.tokens` and are re-exported here:

    kl_penalized_rewards(scores, log_probs, ref_log_probs, mask, kl_coef) -> [B, L]
    masked_whiten(x, mask) -> [B, L]
    group_advantages(scores, group_size, scale) -> [B]
    token_loss(per_token, mask, mode) -> []
"""

from __future__ import annotations

from ppo_lessons.language.tokens import (
    group_advantages,
    kl_penalized_rewards,
    masked_whiten,
    token_loss,
)

__all__ = [
    "group_advantages",
    "kl_penalized_rewards",
    "masked_whiten",
    "token_loss",
]
