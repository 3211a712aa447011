"""Lesson 06 (`06_the_ppo_update.ipynb`): the PPO update and its diagnostics.

One update is `update_epochs` passes over the rollout in shuffled minibatches. On each
minibatch (Schulman et al., 2017; the details as in Huang et al., 2022, "The 37
Implementation Details of PPO"):

    A ← (A − mean A) / (std A + 1e-8)                  (per minibatch, if norm_adv)
    loss = −L^CLIP + vf_coef · L^V − ent_coef · H
    θ ← Adam(θ, ∇loss clipped to global norm max_grad_norm)

and two numbers tell how far the policy moved: the approximate KL divergence between
the old and new policy, and the fraction of samples whose ratio was clipped. With
`target_kl` set, the epochs stop early once the KL exceeds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ppo_lessons._validate import (
    require_float_tensor,
    require_same_device,
    require_same_shape,
)
from ppo_lessons.buffer import Batch
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.losses import value_loss
from ppo_lessons.networks import ActorCritic

__all__ = [
    "KL_ESTIMATORS",
    "UpdateSettings",
    "approx_kl",
    "explained_variance",
    "flatten_parameters",
    "normalize_advantages",
    "ppo_update",
]

KL_ESTIMATORS = ("k1", "k3")


def approx_kl(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor, estimator: str
) -> torch.Tensor:
    """Estimate KL(π_old ‖ π_new) from actions sampled under π_old (Schulman, 2020,
    "Approximating KL Divergence"), with r = π_new/π_old = exp(new − old):

        "k1":  mean( log π_old − log π_new ) = mean(−log r)    unbiased, can be < 0
        "k3":  mean( (r − 1) − log r )                          unbiased, always ≥ 0

    Args:
        new_log_probs: [T] or [T, N] (or [M]) log π_new(a_t|s_t).
        old_log_probs: same shape, log π_old(a_t|s_t).
        estimator: "k1" or "k3".

    Returns:
        [] scalar estimate.
    """
    tensors = {
        "new_log_probs": require_float_tensor("new_log_probs", new_log_probs),
        "old_log_probs": require_float_tensor("old_log_probs", old_log_probs),
    }
    require_same_shape("new_log_probs", tensors)
    require_same_device(tensors)
    log_ratio = new_log_probs - old_log_probs
    if estimator == "k1":
        return (-log_ratio).mean()
    if estimator == "k3":
        return (torch.expm1(log_ratio) - log_ratio).mean()
    raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """How much of the returns' variance the value function explains:

        EV = 1 − Var[returns − values] / Var[returns]

    1 is a perfect fit, 0 no better than a constant, < 0 worse than a constant; nan
    when Var[returns] = 0 (undefined). Both variances use the same (unbiased) estimator
    over all elements.

    Args:
        values: [T] or [T, N] (or [B]) predicted V(s_t).
        returns: same shape, the targets.

    Returns:
        [] scalar, in the dtype of `returns`.
    """
    tensors = {
        "values": require_float_tensor("values", values),
        "returns": require_float_tensor("returns", returns),
    }
    require_same_shape("values", tensors)
    require_same_device(tensors)
    var_returns = returns.var()
    ratio = (returns - values).var() / var_returns
    nan = torch.full_like(var_returns, float("nan"))
    return torch.where(var_returns == 0, nan, 1.0 - ratio)


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """(A − mean A) / (std A + 1e-8): zero mean, unit scale within a minibatch."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


@dataclass(frozen=True)
class UpdateSettings:
    """The hyperparameters of one PPO update (a view of `PPOConfig`)."""

    update_epochs: int
    minibatch_size: int
    clip_coef: float
    clip_vloss: bool
    ent_coef: float
    vf_coef: float
    max_grad_norm: float | None
    norm_adv: bool
    target_kl: float | None
    kl_estimator: str


Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]
ValueLoss = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, float | None], torch.Tensor
]


def minibatch_loss(
    agent: ActorCritic,
    batch: Batch,
    idx: torch.Tensor | slice,
    settings: UpdateSettings,
    objective: Objective = clipped_surrogate_objective,
    value_loss_fn: ValueLoss = value_loss,
    with_metrics: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loss of one minibatch and its detached metrics [5]: policy loss, value
    loss, entropy, approx KL, clip fraction (None when not `with_metrics`: the
    update skips them in epochs whose metrics nobody reads)."""
    policy_out, new_values = agent.policy_and_value(batch.obs[idx])
    # with ent_coef = 0 the entropy only feeds the metrics: skip it when they are not
    # read (its term, 0 · H, would add exact zeros to the loss and the gradient)
    need_entropy = with_metrics or settings.ent_coef != 0.0
    if need_entropy:
        new_log_probs, entropy = agent.log_prob_entropy(policy_out, batch.actions[idx])
    else:
        new_log_probs = agent.log_prob(policy_out, batch.actions[idx])
    old_log_probs = batch.log_probs[idx]
    advantages = batch.advantages[idx]
    if settings.norm_adv:
        advantages = normalize_advantages(advantages)
    policy_loss = -objective(
        new_log_probs, old_log_probs, advantages, settings.clip_coef
    )
    v_clip = settings.clip_coef if settings.clip_vloss else None
    v_loss = value_loss_fn(new_values, batch.values[idx], batch.returns[idx], v_clip)
    loss = policy_loss + settings.vf_coef * v_loss
    if not need_entropy:
        return loss, None
    entropy = entropy.mean()
    loss = loss - settings.ent_coef * entropy
    if not with_metrics:
        return loss, None
    with torch.no_grad():
        kl = approx_kl(new_log_probs, old_log_probs, settings.kl_estimator)
        clipped = (new_log_probs - old_log_probs).exp().sub(
            1
        ).abs() > settings.clip_coef
        metrics = torch.stack(
            [policy_loss, v_loss, entropy, kl, clipped.float().mean()]
        ).detach()
    return loss, metrics


MINIBATCH_METRICS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
)


def shuffled_minibatches(
    batch: Batch, M: int, generator: torch.Generator | None
) -> list[tuple[Batch, torch.Tensor | slice]]:
    """One epoch's minibatches as (batch, index) pairs for `minibatch_loss`: the batch
    gathered once in a random order, cut into consecutive slices of M samples (one
    gather per field per epoch, not one per minibatch). The whole batch, unshuffled,
    when M >= B: a full-batch step does not depend on the order."""
    B = batch.advantages.shape[0]
    if M >= B:
        return [(batch, slice(None))]
    order = torch.randperm(B, generator=generator, device=batch.advantages.device)
    shuffled = Batch(*(field[order] for field in batch))
    return [(shuffled, slice(start, start + M)) for start in range(0, B, M)]


def flatten_parameters(module: nn.Module) -> torch.Tensor:
    """Put the trainable parameters of `module`, and their gradients, into one flat
    tensor each; returns the flat parameter tensor, whose `.grad` is the flat gradient.

    Every parameter becomes a view into the flat tensor (its `.grad` a view into the
    flat gradient), so an optimizer given the one flat tensor updates all of them in
    a single operation, and gradient clipping takes one norm: for the trainer's 64x64
    actor-critic the Adam step went from about 210 to 85 µs, a fifth of a gradient
    step (measured on the course's 2-core CPU machine). The values do not change.
    Backward adds into the gradient views, so zero the gradients in place
    (`optimizer.zero_grad(set_to_none=False)`, as `ppo_update` does): setting them
    to None would cut the views loose. Move the module to its device first.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(module).__name__} has no trainable parameters")
    devices = {p.device for p in params}
    dtypes = {p.dtype for p in params}
    if len(devices) > 1 or len(dtypes) > 1:
        raise ValueError(
            f"flatten_parameters needs one device and one dtype, got devices "
            f"{sorted(map(str, devices))} and dtypes {sorted(map(str, dtypes))}"
        )
    with torch.no_grad():
        flat = torch.cat([p.reshape(-1) for p in params])
    flat_grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset : offset + n].view_as(p)
        p.grad = flat_grad[offset : offset + n].view_as(p)
        offset += n
    flat.requires_grad_(True)
    flat.grad = flat_grad
    return flat


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    settings: UpdateSettings,
    generator: torch.Generator | None = None,
    objective: Objective = clipped_surrogate_objective,
    value_loss_fn: ValueLoss = value_loss,
) -> dict[str, torch.Tensor]:
    """`update_epochs` passes of minibatch gradient steps over `batch`.

    Nothing here reads a value back to the host, except one KL check per epoch when
    `target_kl` is set (stopping early needs the number).

    Returns:
        Metrics as 0-d tensors on the device, averaged over the minibatches of the
        last epoch run (policy_loss, value_loss, entropy, approx_kl, clip_fraction),
        plus `epochs` (how many ran).
    """
    B = batch.advantages.shape[0]
    M = settings.minibatch_size
    # the tensors the optimizer steps (one flat tensor after `flatten_parameters`)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    epochs_run = 0
    for epoch in range(settings.update_epochs):
        # metrics are read after the last epoch, and after every one for target_kl
        measure = settings.target_kl is not None or epoch == settings.update_epochs - 1
        totals = torch.zeros(len(MINIBATCH_METRICS), device=batch.advantages.device)
        for shuffled, idx in shuffled_minibatches(batch, M, generator):
            loss, metrics = minibatch_loss(
                agent, shuffled, idx, settings, objective, value_loss_fn, measure
            )
            optimizer.zero_grad(set_to_none=False)  # in place (flatten_parameters)
            loss.backward()
            if settings.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            if measure:
                totals += metrics
        epochs_run += 1
        epoch_means = totals / math.ceil(B / M)
        # early stop on the policy's drift (CleanRL's target_kl; Huang et al., 2022)
        if (
            settings.target_kl is not None
            and float(epoch_means[3]) > settings.target_kl
        ):
            break
    out = dict(zip(MINIBATCH_METRICS, epoch_means, strict=True))
    out["epochs"] = torch.tensor(epochs_run)
    return out
