"""Lesson 10's tiny language model: a decoder-only transformer with a value head, and
how it writes and scores completions.

The prompt and the tokens so far are the state, the next token the action, a completion
an episode. `sample` writes completions token by token at a temperature and keeps the
log-probability of each token under the distribution that sampled it; `score` replays
prompt + completion in one pass and returns, for every completion token, its
log-probability, the entropy of its distribution and the value V(state before it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ppo_lessons.language.task import END, PAD, VOCAB

__all__ = ["Completions", "ModelConfig", "TinyLM", "sample", "score"]


@dataclass(frozen=True)
class ModelConfig:
    """The size of the tiny transformer."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    max_len: int = 16  # prompt + completion tokens


class TinyLM(nn.Module):
    """A causal transformer over the task's tokens, with a language-model head and a
    value head on the same hidden states (RLHF's PPO: the critic reads the policy's
    features; the value head starts at zero, so V = 0 before fine-tuning)."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:  # noqa: B008
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Embedding(len(VOCAB), d)
        self.position = nn.Embedding(config.max_len, d)
        layer = nn.TransformerEncoderLayer(
            d,
            config.n_heads,
            config.d_ff,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            layer, config.n_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, len(VOCAB))
        self.value_head = nn.Linear(d, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        causal = torch.triu(
            torch.ones(config.max_len, config.max_len, dtype=torch.bool), 1
        )
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, S] -> (logits [B, S, V] of the next token, hidden [B, S, d])."""
        S = tokens.shape[1]
        positions = torch.arange(S, device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        hidden = self.norm(self.blocks(x, mask=self.causal[:S, :S], is_causal=True))
        return self.lm_head(hidden), hidden


@dataclass
class Completions:
    """B sampled completions of at most L tokens."""

    prompts: torch.Tensor  # (B, P) the prompts' tokens
    tokens: torch.Tensor  # (B, L) completion tokens, PAD after the end token
    mask: torch.Tensor  # (B, L) True on real tokens (the end token included)
    log_probs: torch.Tensor  # (B, L) log-probability under the sampling distribution


@torch.no_grad()
def sample(
    model: TinyLM,
    prompts: torch.Tensor,
    max_tokens: int,
    temperature: float,
    generator: torch.Generator | None = None,
) -> Completions:
    """Write one completion per prompt, token by token, at `temperature`.

    The log-probabilities kept are those of the distribution that drew each token,
    softmax(logits / temperature): PPO's ratio compares the new policy with exactly the
    policy that sampled, so scoring must use the same temperature. A completion ends
    with its end token; if it has none after `max_tokens`, all its tokens are real.
    """
    B = prompts.shape[0]
    tokens = torch.full((B, max_tokens), PAD, dtype=torch.long, device=prompts.device)
    log_probs = torch.zeros(B, max_tokens, device=prompts.device)
    alive = torch.ones(B, dtype=torch.bool, device=prompts.device)
    text = prompts
    for t in range(max_tokens):
        logits, _ = model(text)
        logp = torch.log_softmax(logits[:, -1] / temperature, dim=-1)
        drawn = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        tokens[:, t] = torch.where(alive, drawn, PAD)
        log_probs[:, t] = torch.where(
            alive, logp.gather(1, drawn[:, None]).squeeze(1), 0.0
        )
        text = torch.cat([text, tokens[:, t : t + 1]], dim=1)
        alive = alive & (drawn != END)
        if not alive.any():
            tokens, log_probs = tokens[:, : t + 1], log_probs[:, : t + 1]
            break
    return Completions(prompts, tokens, real_tokens(tokens), log_probs)


def real_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """[B, L] True up to and including each row's first end token."""
    ended_before = torch.cumsum((tokens == END).long(), dim=1) - (tokens == END).long()
    return ended_before == 0


def score(
    model: TinyLM, batch: Completions, temperature: float, with_values: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Replay prompt + completion in one pass (with gradient): for each completion token
    t, (log π(y_t | prompt, y_<t) [B, L], the entropy of that distribution [B, L],
    V(prompt, y_<t) [B, L] or None). Padding positions hold finite numbers that the
    callers mask out; the model is causal, so padding never changes a real position."""
    P, L = batch.prompts.shape[1], batch.tokens.shape[1]
    text = torch.cat([batch.prompts, batch.tokens], dim=1)
    logits, hidden = model(text[:, :-1])
    logits = logits[:, P - 1 : P - 1 + L] / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    log_probs = logp_all.gather(2, batch.tokens.unsqueeze(2)).squeeze(2)
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1)
    values = None
    if with_values:
        values = model.value_head(hidden[:, P - 1 : P - 1 + L]).squeeze(2)
    return log_probs, entropy, values
