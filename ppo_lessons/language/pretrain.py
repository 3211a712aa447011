"""Lesson 10's pre-training: the tiny model learns to imitate the noisy teacher, once
per seed, cached on disk.

Pre-training is next-token prediction on the teacher's text (prompt, answer, end
token); only the answer tokens are predicted (the prompts are given, never written).
A model that imitates the teacher perfectly answers right about half the time when it
samples at temperature 1; fine-tuning then has room.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ppo_lessons.language.model import Completions, ModelConfig, TinyLM, real_tokens
from ppo_lessons.language.task import (
    PROMPT_LEN,
    TASK_VERSION,
    prompt_tokens,
    sample_pairs,
    teacher_answers,
)

__all__ = ["PretrainConfig", "cache_path", "pretrained", "teacher_batch"]


@dataclass(frozen=True)
class PretrainConfig:
    """How the tiny model is pre-trained."""

    steps: int = 2000
    batch_size: int = 256
    learning_rate: float = 3e-3
    teacher_right: float = 0.45  # how often the teacher writes the right answer
    teacher_ramble: float = 0.1  # how often a second guess follows the first
    model: ModelConfig = ModelConfig()  # noqa: RUF009 (frozen)


def teacher_batch(
    n: int, generator: torch.Generator, right: float, ramble: float
) -> Completions:
    """n prompts from the pre-training pairs and the teacher's answers to them."""
    pairs = sample_pairs(n, generator, held=False)
    answers = teacher_answers(pairs, generator, right, ramble)
    return Completions(prompt_tokens(pairs), answers, real_tokens(answers), None)


def cache_dir() -> Path:
    """Where pre-trained models are kept: $PPO_LESSONS_CACHE, else ~/.cache/ppo-lessons."""
    root = os.environ.get("PPO_LESSONS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "ppo-lessons"


def cache_path(seed: int, config: PretrainConfig) -> Path:
    """The cache file of one seed and config (another config or another version of
    the task's text, another file)."""
    described = {"task": TASK_VERSION, **asdict(config)}
    key = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return cache_dir() / "language" / f"tiny-lm-seed{seed}-{key[:12]}.pt"


def pretrain(seed: int, config: PretrainConfig, progress: bool = True) -> TinyLM:
    """Train a fresh TinyLM on the teacher's text for `config.steps` steps."""
    from ppo_lessons.progress import tqdm

    torch.manual_seed(seed)
    model = TinyLM(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.learning_rate, total_steps=config.steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    bar = tqdm(range(config.steps), desc="pre-training", disable=not progress)
    for _ in bar:
        batch = teacher_batch(
            config.batch_size, generator, config.teacher_right, config.teacher_ramble
        )
        text = torch.cat([batch.prompts, batch.tokens], dim=1)
        logits, _ = model(text[:, :-1])
        targets = torch.where(batch.mask, batch.tokens, -1)  # predict answers only
        answer_logits = logits[:, PROMPT_LEN - 1 :]
        loss = loss_fn(
            answer_logits.reshape(-1, answer_logits.shape[-1]), targets.reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


def pretrained(
    seed: int,
    config: PretrainConfig = PretrainConfig(),
    progress: bool = True,  # noqa: B008
) -> tuple[TinyLM, float]:
    """The pre-trained model of `seed` (from the cache when it is there, else trained
    and saved) and the seconds its pre-training took."""
    path = cache_path(seed, config)
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        model = TinyLM(config.model)
        model.load_state_dict(saved["state"])
        return model.eval(), float(saved["seconds"])
    start = time.perf_counter()
    model = pretrain(seed, config, progress)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save({"state": model.state_dict(), "seconds": seconds}, partial)
    partial.replace(path)  # never a half-written cache file
    return model, seconds
