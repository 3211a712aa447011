"""Lesson 10's fine-tuning: RLHF's PPO and GRPO on the tiny pre-trained model, with the
student's functions wherever the lessons defined one.

    result = finetune("ppo", seed=3)                   # or "grpo"
    result.summary()  # method, seed, reward_before, reward_after, kl_per_token, ...

PPO (Ziegler et al., 2019; Ouyang et al., 2022): one completion per prompt; the reward of
each token is the KL penalty to the frozen reference, plus the completion's score at its
last token (`kl_penalized_rewards`); per-token GAE with γ = 1 (`compute_gae`: the end
token terminates, padding is its own terminated step, so nothing leaks back); advantages
whitened over real tokens (`masked_whiten`); the loss of lesson 06 (`ppo_loss`) on the
real tokens, the value head on the policy's hidden states.

GRPO (Shao et al., 2024): G completions per prompt, no critic: every token of a
completion gets its group-relative advantage (`group_advantages`); the KL to the
reference is a loss term, the k3 estimator of lesson 06 per token; the per-token loss
becomes one number by `token_loss`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace

import torch

from ppo_lessons import update
from ppo_lessons.exercises import EXERCISES
from ppo_lessons.functions import bundle_class, bundle_of
from ppo_lessons.language import tokens as token_fns
from ppo_lessons.language.model import Completions, TinyLM, sample, score
from ppo_lessons.language.pretrain import PretrainConfig, pretrained
from ppo_lessons.language.task import (
    MAX_ANSWER,
    decode,
    exact_reward,
    lenient_reward,
    prompt_tokens,
    sample_pairs,
)

__all__ = [
    "LANGUAGE_FUNCTIONS",
    "FinetuneConfig",
    "FinetuneResult",
    "LanguageFunctions",
    "finetune",
]

# the exercise functions fine-tuning calls, one field each with its reference, read
# from the table: the two of lessons 06 and 04 it reuses, then lesson 10's. Its own
# bundle class, made as `train`'s (`ppo_lessons.functions.bundle_class`): lesson 07's
# `LessonFunctions` cannot hold lesson 10's references (a floor below them)
REUSED = ("ppo_loss", "compute_gae")
LanguageFunctions = bundle_class(
    "LanguageFunctions",
    sorted(
        (ex for ex in EXERCISES if ex.lesson == 10 or ex.function in REUSED),
        key=lambda ex: REUSED.index(ex.function) if ex.function in REUSED else 2,
    ),
    """The lesson functions one fine-tuning run calls (the reference or a student's
    own, same contracts); `counters` holds the given ones as they run.""",
    module=__name__,
)
LANGUAGE_FUNCTIONS: dict[str, Callable] = dict(LanguageFunctions.references)
REWARDS = {"exact": exact_reward, "lenient": lenient_reward}


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run (the defaults are the lesson's)."""

    method: str = "ppo"  # "ppo" (RLHF's) or "grpo"
    iterations: int = 100  # sample -> score -> update
    completions: int = 256  # per iteration (GRPO: prompts x group_size)
    group_size: int = 8  # GRPO's G
    max_tokens: int = MAX_ANSWER  # per completion (room for the teacher's rambles)
    temperature: float = 1.0
    learning_rate: float = 3e-4
    update_epochs: int = 2
    num_minibatches: int = 4
    clip_coef: float = 0.2
    kl_coef: float = 0.05  # PPO: β of the reward penalty; GRPO: of the k3 loss term
    vf_coef: float = 0.5
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    scale_advantages: bool = True  # GRPO divides by the group's std; False: Dr. GRPO
    aggregation: str = "token"  # GRPO's token_loss mode
    reward: str = "exact"  # "exact", or "lenient" (the grader with a loophole)
    eval_prompts: int = 1000

    def __post_init__(self) -> None:
        if self.method not in ("ppo", "grpo"):
            raise ValueError(f"method must be 'ppo' or 'grpo', got {self.method!r}")
        if self.reward not in REWARDS:
            raise ValueError(
                f"reward must be one of {list(REWARDS)}, got {self.reward!r}"
            )
        if self.aggregation not in token_fns.AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {token_fns.AGGREGATIONS}, got "
                f"{self.aggregation!r}"
            )
        if self.method == "grpo" and self.completions % self.group_size:
            raise ValueError(
                f"completions={self.completions} must be a multiple of "
                f"group_size={self.group_size} for GRPO"
            )


class Row(dict):
    """One iteration's metrics (a dict with the names below)."""


@dataclass
class FinetuneResult:
    """What `finetune` returns."""

    config: FinetuneConfig
    seed: int
    model: TinyLM
    reference: TinyLM
    before: dict[str, float]  # evaluation of the pre-trained model
    after: dict[str, float]  # evaluation of the fine-tuned model
    history: list[dict[str, float]]
    pretrain_seconds: float
    finetune_seconds: float
    function_calls: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "method": self.config.method,
            "seed": self.seed,
            "reward": self.config.reward,
            "reward_before": self.before["reward"],
            "reward_after": self.after["reward"],
            "exact_before": self.before["exact"],
            "exact_after": self.after["exact"],
            "lenient_after": self.after["lenient"],
            "kl_per_token": self.after["kl_per_token"],
            "length_after": self.after["length"],
            "pretrain_seconds": round(self.pretrain_seconds, 1),
            "finetune_seconds": round(self.finetune_seconds, 1),
            "function_calls": self.function_calls,
            "config": asdict(self.config),
        }


def eval_pairs(n: int) -> torch.Tensor:
    """The fixed held-out prompts every evaluation uses (never seen in pre-training)."""
    return sample_pairs(n, torch.Generator().manual_seed(2026), held=True)


@torch.no_grad()
def evaluate(
    model: TinyLM, reference: TinyLM, config: FinetuneConfig, seed: int
) -> tuple[dict[str, float], Completions, torch.Tensor]:
    """Mean rewards of completions sampled as in training on the held-out prompts, and
    the mean per-token KL (k1) to the reference on them."""
    pairs = eval_pairs(config.eval_prompts)
    generator = torch.Generator().manual_seed(seed + 10_000)
    batch = sample(
        model, prompt_tokens(pairs), config.max_tokens, config.temperature, generator
    )
    ref_log_probs, _, _ = score(reference, batch, config.temperature, with_values=False)
    kl = ((batch.log_probs - ref_log_probs) * batch.mask).sum() / batch.mask.sum()
    exact = exact_reward(pairs, batch.tokens).mean().item()
    lenient = lenient_reward(pairs, batch.tokens).mean().item()
    metrics = {
        "reward": exact if config.reward == "exact" else lenient,
        "exact": exact,
        "lenient": lenient,
        "kl_per_token": kl.item(),
        "length": batch.mask.sum(dim=1).float().mean().item(),
    }
    return metrics, batch, pairs


def finetune(
    method: str,
    seed: int,
    functions: Mapping[str, Callable] | LanguageFunctions | None = None,
    config: FinetuneConfig | None = None,
    pretrain_config: PretrainConfig | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, float]], None] | None = None,
    pretrain_seed: int | None = None,
) -> FinetuneResult:
    """Pre-train (or load from the cache) the tiny model of `seed`, then fine-tune it.

    Args:
        method: "ppo" or "grpo".
        seed: seeds pre-training, sampling and the minibatch order.
        functions: the student's exercise functions by name (`LANGUAGE_FUNCTIONS`):
            each one given is the one called, and they compose as in `train`.
        config: the fine-tuning settings (method is taken from `method`).
        pretrain_config: the pre-training settings.
        progress: show progress bars.
        callback: called with each iteration's metrics (a live plot).
        pretrain_seed: the seed of the pre-trained model to start from (default:
            `seed`); experiments over fine-tuning seeds share one pre-trained model.
    """
    from ppo_lessons.progress import tqdm

    config = replace(config or FinetuneConfig(), method=method)
    fns = language_functions(functions)
    reference, pretrain_seconds = pretrained(
        seed if pretrain_seed is None else pretrain_seed,
        pretrain_config or PretrainConfig(),
        progress,
    )
    for p in reference.parameters():
        p.requires_grad_(False)
    model = copy.deepcopy(reference).train()
    for p in model.parameters():
        p.requires_grad_(True)
    before, before_batch, eval_prompts = evaluate(reference, reference, config, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    step = ppo_iteration if config.method == "ppo" else grpo_iteration
    for i in tqdm(
        range(config.iterations), desc=f"{method} fine-tuning", disable=not progress
    ):
        row = step(model, reference, optimizer, config, fns, generator)
        row["iteration"] = i + 1
        history.append(row)
        if callback is not None:
            callback(row)
    seconds = time.perf_counter() - start
    model.eval()
    after, after_batch, _ = evaluate(model, reference, config, seed)
    shown = range(6)
    samples = {
        "prompts": [decode(before_batch.prompts[i]) for i in shown],
        "before": [decode(before_batch.tokens[i]) for i in shown],
        "after": [decode(after_batch.tokens[i]) for i in shown],
        "right": [str(int(eval_prompts[i].sum())) for i in shown],
    }
    return FinetuneResult(
        config=config,
        seed=seed,
        model=model,
        reference=reference,
        before=before,
        after=after,
        history=history,
        pretrain_seconds=pretrain_seconds,
        finetune_seconds=seconds,
        function_calls=fns.calls(),
        samples=samples,
    )


def language_functions(
    functions: Mapping[str, Callable] | LanguageFunctions | None,
) -> LanguageFunctions:
    """The run's functions: the given ones composed and counted, the rest the
    references. Raises ValueError for a name fine-tuning does not take."""
    return bundle_of(LanguageFunctions, functions, "fine-tuning does not call")


def rollout(
    model: TinyLM,
    reference: TinyLM,
    config: FinetuneConfig,
    generator: torch.Generator,
    group_size: int,
) -> tuple[Completions, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample completions of training prompts, `group_size` per prompt in consecutive
    rows; (batch, pairs [B, 2], scores [B], ref log-probs [B, L])."""
    n_prompts = config.completions // group_size
    pairs = sample_pairs(n_prompts, generator, held=False).repeat_interleave(
        group_size, 0
    )
    model.eval()
    batch = sample(
        model, prompt_tokens(pairs), config.max_tokens, config.temperature, generator
    )
    model.train()
    scores = REWARDS[config.reward](pairs, batch.tokens)
    with torch.no_grad():
        ref_log_probs, _, _ = score(
            reference, batch, config.temperature, with_values=False
        )
    return batch, pairs, scores, ref_log_probs


def minibatches(B: int, config: FinetuneConfig, generator: torch.Generator):
    """One epoch's row minibatches (whole completions)."""
    size = max(1, B // config.num_minibatches)
    return update.minibatch_indices(B, size, generator)


def step_optimizer(model: TinyLM, optimizer, loss: torch.Tensor, config) -> None:
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()


def subset(batch: Completions, idx: torch.Tensor) -> Completions:
    return Completions(
        batch.prompts[idx], batch.tokens[idx], batch.mask[idx], batch.log_probs[idx]
    )


def ppo_iteration(
    model, reference, optimizer, config, fns, generator
) -> dict[str, float]:
    """One iteration of RLHF's PPO; returns its metrics."""
    batch, pairs, scores, ref_log_probs = rollout(
        model, reference, config, generator, 1
    )
    mask = batch.mask
    with torch.no_grad():
        _, _, values = score(model, batch, config.temperature)
        values = values * mask
        rewards = fns.kl_penalized_rewards(
            scores, batch.log_probs, ref_log_probs, mask, config.kl_coef
        )
        advantages, returns = token_gae(fns, rewards, values, mask, config.gae_lambda)
        advantages = fns.masked_whiten(advantages, mask)
    clipped = []
    for _ in range(config.update_epochs):
        for idx in minibatches(len(scores), config, generator):
            mb = subset(batch, idx)
            log_probs, entropy, new_values = score(model, mb, config.temperature)
            m = mb.mask
            loss = fns.ppo_loss(
                log_probs[m], mb.log_probs[m], advantages[idx][m], new_values[m],
                values[idx][m], returns[idx][m], entropy[m], config.clip_coef,
                config.clip_coef, config.vf_coef, config.ent_coef, False,
            )  # fmt: skip
            step_optimizer(model, optimizer, loss, config)
            with torch.no_grad():
                ratio = (log_probs[m] - mb.log_probs[m]).exp()
                clipped.append(((ratio - 1).abs() > config.clip_coef).float().mean())
    return iteration_metrics(batch, pairs, scores, ref_log_probs, clipped)


def token_gae(
    fns: LanguageFunctions | Mapping[str, Callable],
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token GAE with γ = 1 through lesson 04's `compute_gae` (time first).

    A completion is an episode: its end token terminates it (nothing after it is
    bootstrapped), and every padding step is a terminated step of its own, so no
    padding value or reward reaches a real token's advantage. next_values[t] is
    V(s_{t+1}), the value at the next token of the same completion.

    `fns` is a run's `LanguageFunctions`, or a dict by name as `finetune` takes it
    (lesson 10 passes {"compute_gae": ...}): it becomes the bundle here.

    Returns:
        ([B, L] advantages, [B, L] returns); padding entries are to be masked out.
    """
    if not isinstance(fns, LanguageFunctions):
        fns = language_functions(fns)
    real = mask.float()
    values = values * real
    last = mask & ~torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    ends = (last | ~mask).float()
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    advantages, returns = fns.compute_gae(
        rewards.T, values.T, next_values.T, ends.T, torch.zeros_like(ends.T), 1.0, lam
    )
    return advantages.T, returns.T


def grpo_iteration(
    model, reference, optimizer, config, fns, generator
) -> dict[str, float]:
    """One iteration of GRPO; returns its metrics."""
    G = config.group_size
    batch, pairs, scores, ref_log_probs = rollout(
        model, reference, config, generator, G
    )
    with torch.no_grad():
        advantages = fns.group_advantages(scores, G, config.scale_advantages)
    clipped = []
    for _ in range(config.update_epochs):
        for idx in minibatches(len(scores), config, generator):
            mb = subset(batch, idx)
            log_probs, _, _ = score(model, mb, config.temperature, with_values=False)
            ratio = (log_probs - mb.log_probs).exp()
            A = advantages[idx].unsqueeze(1)
            eps = config.clip_coef
            surrogate = torch.minimum(ratio * A, ratio.clamp(1 - eps, 1 + eps) * A)
            log_ref_ratio = ref_log_probs[idx] - log_probs  # k3 of KL(π ‖ π_ref)
            k3 = log_ref_ratio.exp() - 1 - log_ref_ratio
            per_token = -surrogate + config.kl_coef * k3
            # "constant" divides by B · L with L the generation budget, max_tokens,
            # whatever the longest completion of the minibatch: pad (zeros, masked out)
            pad = config.max_tokens - per_token.shape[1]
            mask = mb.mask
            if config.aggregation == "constant" and pad > 0:
                per_token = torch.nn.functional.pad(per_token, (0, pad))
                mask = torch.nn.functional.pad(mask, (0, pad), value=False)
            loss = fns.token_loss(per_token, mask, config.aggregation)
            step_optimizer(model, optimizer, loss, config)
            with torch.no_grad():
                clipped.append(((ratio - 1).abs() > eps)[mb.mask].float().mean())
    return iteration_metrics(batch, pairs, scores, ref_log_probs, clipped)


def iteration_metrics(batch, pairs, scores, ref_log_probs, clipped) -> dict[str, float]:
    """The iteration's metrics: the training reward (`score`), both graders' rewards
    (`exact` is the true one), the per-token KL to the reference (k1), the mean
    length and the clip fraction."""
    mask = batch.mask
    kl = ((batch.log_probs - ref_log_probs) * mask).sum() / mask.sum()
    return {
        "score": scores.mean().item(),
        "exact": exact_reward(pairs, batch.tokens).mean().item(),
        "lenient": lenient_reward(pairs, batch.tokens).mean().item(),
        "kl_per_token": kl.item(),
        "length": mask.sum(dim=1).float().mean().item(),
        "clip_fraction": torch.stack(clipped).mean().item(),
    }
