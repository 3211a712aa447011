"""Every exercise function the trainer takes, written a second time, from the contracts.

`ppo_lessons.train(config, functions=...)` promises that a student's own functions,
passed by exercise name, are what it trains with. To test that promise we need
functions that are correct but are not the package's: these are written from the
contracts alone (`COURSE.md` and the docstrings of `ppo_lessons.functions`,
`ppo_lessons.rollout.collect_rollout` and `ppo_lessons.update.ppo_update`), in a
different way from the references (GAE as a loop over time, log-softmax by hand, the
minibatches cut from `torch.randperm`, the rollout valued step by step).

Nothing here imports `ppo_lessons`: the rollout and the update use only what their
contracts hand them (the agent's methods, the env's `step`, the buffer's and the
batch's fields, the optimizer). The functions call each other through this module's
globals, so a test can wrap any of them (e.g. in a call counter) with
`monkeypatch.setattr` and the wrapper is what runs.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "FUNCTION_NAMES",
    "actor_critic_networks",
    "all_functions",
    "approx_kl",
    "categorical_entropy",
    "clipped_surrogate_objective",
    "collect_rollout",
    "compute_gae",
    "explained_variance",
    "gaussian_log_prob",
    "minibatch_indices",
    "ppo_loss",
    "ppo_loss_terms",
    "ppo_update",
    "probability_ratio",
    "replay_sequence",
    "value_loss",
]

FUNCTION_NAMES = (
    "probability_ratio",
    "clipped_surrogate_objective",
    "compute_gae",
    "gaussian_log_prob",
    "categorical_entropy",
    "actor_critic_networks",
    "value_loss",
    "approx_kl",
    "explained_variance",
    "ppo_loss",
    "minibatch_indices",
    "collect_rollout",
    "ppo_update",
    "replay_sequence",
)
LOG_TWO_PI = math.log(2.0 * math.pi)


def all_functions() -> dict[str, Any]:
    """Exercise name -> this module's function, looked up now (so a wrapper set with
    `monkeypatch.setattr` on this module is what the dict holds)."""
    return {name: globals()[name] for name in FUNCTION_NAMES}


# ---------------------------------------------------------------- lessons 02-05


def actor_critic_networks(
    obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...], activation: str
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two separate MLPs, orthogonal weights (gain √2 hidden, 0.01 actor output, 1
    critic output), zero biases, the activation between layers and none after."""

    def body(out_features: int, out_gain: float) -> torch.nn.Sequential:
        sizes = [obs_dim, *hidden_sizes, out_features]
        layers: list[torch.nn.Module] = []
        for i in range(len(sizes) - 1):
            linear = torch.nn.Linear(sizes[i], sizes[i + 1])
            last = i == len(sizes) - 2
            gain = out_gain if last else math.sqrt(2.0)
            torch.nn.init.orthogonal_(linear.weight, gain)
            torch.nn.init.zeros_(linear.bias)
            layers.append(linear)
            if not last:
                layers.append(
                    torch.nn.Tanh() if activation == "tanh" else torch.nn.ReLU()
                )
        return torch.nn.Sequential(*layers)

    return body(action_dim, 0.01), body(1, 1.0)


def probability_ratio(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor
) -> torch.Tensor:
    """π_new / π_old from log-probabilities: exp(new − old)."""
    return (new_log_probs - old_log_probs).exp()


def clipped_surrogate_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """mean(min(r·A, clip(r, 1 − ε, 1 + ε)·A)), to maximize."""
    ratio = probability_ratio(new_log_probs, old_log_probs)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return torch.minimum(unclipped, clipped).mean()


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) over the time axis (first), one step at a time from the
    end: a termination stops the bootstrap, any episode end stops the trace."""
    dtype = values.dtype
    advantages: list[torch.Tensor] = []
    carry = torch.zeros_like(values[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        bootstrap = 1.0 - (terminated[t] != 0).to(dtype)
        episode_goes_on = 1.0 - ((terminated[t] != 0) | (truncated[t] != 0)).to(dtype)
        delta = rewards[t] + gamma * bootstrap * next_values[t] - values[t]
        carry = delta + gamma * lam * episode_goes_on * carry
        advantages.append(carry)
    advantages.reverse()
    advantage = torch.stack(advantages)
    return advantage, advantage + values


def gaussian_log_prob(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """log N(actions; mean, diag(exp(log_std))²), summed over the last axis."""
    actions, mean, log_std = torch.broadcast_tensors(actions, mean, log_std)
    z = (actions - mean) * torch.exp(-log_std)
    dims = actions.shape[-1]
    return -0.5 * z.square().sum(-1) - log_std.sum(-1) - 0.5 * dims * LOG_TWO_PI


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """−Σ p log p over the last axis, with log p = logits − logsumexp by hand (the
    largest logit subtracted first, so ±1e4 stays finite)."""
    shifted = logits - logits.max(dim=-1, keepdim=True).values.detach()
    log_p = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()
    return -(log_p.exp() * log_p).sum(dim=-1)


# ---------------------------------------------------------------- lesson 06


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_eps: float | None,
) -> torch.Tensor:
    """½ mean of the squared error, or of the larger of the plain and the clipped
    (around the old values) squared errors."""
    error = (values - returns).square()
    if clip_eps is not None:
        moved = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        error = torch.maximum(error, (moved - returns).square())
    return error.mean() / 2.0


def approx_kl(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor, estimator: str
) -> torch.Tensor:
    """KL(old ‖ new) from samples of the old policy: "k1" or "k3"."""
    log_r = new_log_probs - old_log_probs
    if estimator == "k1":
        return (-log_r).mean()
    if estimator == "k3":
        return (torch.expm1(log_r) - log_r).mean()
    raise ValueError(f"estimator must be 'k1' or 'k3', got {estimator!r}")


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """1 − Var[returns − values] / Var[returns] (unbiased variances); nan when the
    returns do not vary."""
    n = returns.numel()
    residual = (returns - values).flatten()
    target = returns.flatten()
    var_residual = (residual - residual.sum() / n).square().sum() / (n - 1)
    var_target = (target - target.sum() / n).square().sum() / (n - 1)
    if var_target == 0:
        return torch.tensor(math.nan, dtype=returns.dtype, device=returns.device)
    return (1.0 - var_residual / var_target).to(returns.dtype)


def ppo_loss_terms(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_eps: float,
    value_clip_eps: float | None,
    normalize_advantages: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L^CLIP to maximize, L^V to minimize, mean entropy) of one minibatch."""
    if normalize_advantages:
        centred = advantages - advantages.mean()
        advantages = centred / (advantages.std() + 1e-8)
    objective = clipped_surrogate_objective(
        new_log_probs, old_log_probs, advantages, clip_eps
    )
    critic = value_loss(new_values, old_values, returns, value_clip_eps)
    return objective, critic, entropy.mean()


def ppo_loss(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_eps: float,
    value_clip_eps: float | None,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool,
) -> torch.Tensor:
    """−L^CLIP + vf_coef·L^V − ent_coef·mean H: the loss to minimize."""
    objective, critic, mean_entropy = ppo_loss_terms(
        new_log_probs,
        old_log_probs,
        advantages,
        new_values,
        old_values,
        returns,
        entropy,
        clip_eps,
        value_clip_eps,
        normalize_advantages,
    )
    return vf_coef * critic - objective - ent_coef * mean_entropy


def minibatch_indices(
    batch_size: int, minibatch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """One epoch: a permutation of range(batch_size) from `generator`, cut into
    consecutive pieces of minibatch_size (the last may be shorter)."""
    for name, value in (("batch_size", batch_size), ("minibatch_size", minibatch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    device = generator.device if generator is not None else None
    order = torch.randperm(batch_size, generator=generator, device=device)
    starts = range(0, batch_size, minibatch_size)
    return [order[start : start + minibatch_size] for start in starts]


# ---------------------------------------------------------------- lesson 07


@torch.no_grad()
def collect_rollout(
    agent: Any,
    envs: Any,
    buffer: Any,
    obs: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """T steps of N envs into `buffer`, each row valued as it is written; the
    observation reached at step t (info["final_obs"]) gives next_values[t]."""
    for t in range(buffer.num_steps):
        actions, log_probs = agent.sample(agent.policy(obs), generator)
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        reached = info["final_obs"]
        row = {
            "obs": obs,
            "actions": actions,
            "log_probs": log_probs,
            "rewards": rewards,
            "terminated": terminated,
            "truncated": truncated,
            "reached_obs": reached,
            "values": agent.value(obs),
            "next_values": agent.value(reached),
        }
        for field, value in row.items():
            getattr(buffer, field)[t] = value
        obs = next_obs
    return obs


def minibatch_step(
    agent: Any,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    idx: torch.Tensor,
    settings: Any,
) -> dict[str, torch.Tensor]:
    """One gradient step on `batch[idx]`; its metrics (detached, before the step)."""
    policy_out, new_values = agent.policy_and_value(batch.obs[idx])
    new_log_probs, entropy = agent.log_prob_entropy(policy_out, batch.actions[idx])
    old_log_probs = batch.log_probs[idx]
    value_clip = settings.clip_coef if settings.clip_vloss else None
    args = (
        new_log_probs,
        old_log_probs,
        batch.advantages[idx],
        new_values,
        batch.values[idx],
        batch.returns[idx],
        entropy,
        settings.clip_coef,
        value_clip,
    )
    loss = ppo_loss(*args, settings.vf_coef, settings.ent_coef, settings.norm_adv)
    optimizer.zero_grad()
    loss.backward()
    if settings.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(agent.parameters(), settings.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        objective, critic, mean_entropy = ppo_loss_terms(*args, settings.norm_adv)
        new = new_log_probs.detach()
        off = (probability_ratio(new, old_log_probs) - 1.0).abs() > settings.clip_coef
        return {
            "policy_loss": -objective,
            "value_loss": critic,
            "entropy": mean_entropy,
            "approx_kl": approx_kl(new, old_log_probs, settings.kl_estimator),
            "clip_fraction": off.float().mean(),
        }


def ppo_update(
    agent: Any,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    settings: Any,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """`settings.update_epochs` epochs of shuffled minibatch steps, stopping after an
    epoch whose mean approx KL exceeds `settings.target_kl`; the last epoch's mean
    metrics and "epochs" (how many ran), as 0-d tensors."""
    size = batch.obs.shape[0]
    epochs = 0
    means: dict[str, torch.Tensor] = {}
    for _ in range(settings.update_epochs):
        pieces = minibatch_indices(size, settings.minibatch_size, generator)
        rows = [minibatch_step(agent, optimizer, batch, i, settings) for i in pieces]
        means = {key: torch.stack([r[key] for r in rows]).mean() for key in rows[0]}
        epochs += 1
        if settings.target_kl is not None and means["approx_kl"] > settings.target_kl:
            break
    device = batch.obs.device
    means["epochs"] = torch.tensor(epochs, device=device)
    return means


# ---------------------------------------------------------------- lesson 11


def replay_sequence(
    core: Any, inputs: torch.Tensor, starts: torch.Tensor, initial_hidden: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 11.1: the hidden state after each step, reset to zeros before the
    first step of an episode (written with torch.where and a preallocated output)."""
    steps = inputs.shape[0]
    outputs = inputs.new_zeros(steps, *initial_hidden.shape)
    hidden = initial_hidden
    for t in range(steps):
        fresh = starts[t].reshape(-1, 1)
        hidden = core(inputs[t], torch.where(fresh, torch.zeros_like(hidden), hidden))
        outputs[t] = hidden
    return outputs, hidden
