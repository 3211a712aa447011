"""Lesson 06 (`06_the_ppo_update.ipynb`): the PPO update and its diagnostics.

One update is `update_epochs` passes over the rollout in shuffled minibatches
(`minibatch_indices`, exercise 6.3). On each minibatch (`ppo_loss`, exercise 6.2) (Schulman et al., 2017; the details as in Huang et al., 2022, "The 37
Implementation Details of PPO"):

    A ← (A − mean A) / (std A + 1e-8)                  (per minibatch, if norm_adv)
    loss = −L^CLIP + vf_coef · L^V − ent_coef · H
    θ ← Adam(θ, ∇loss clipped to global norm max_grad_norm)

and two numbers tell how far the policy moved: the approximate KL divergence between
the old and new policy, and the fraction of samples whose ratio was clipped. With
`target_kl` set, the epochs stop early once the KL exceeds it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from ppo_lessons.clipping import clipped_surrogate_objective

# imported for `references()` alone, which reads it as this module's name
from ppo_lessons.importance_sampling import probability_ratio  # noqa: F401
from ppo_lessons.losses import value_loss
from ppo_lessons.networks import ActorCritic

# the trainer's flat-parameter trick lives in `ppo_lessons.speed`; re-exported here,
# where the update that profits from it is
from ppo_lessons.speed import flatten_parameters
from ppo_lessons.validate import require_float_tensors

__all__ = [
    "KL_ESTIMATORS",
    "Batch",
    "MINIBATCH_METRICS",
    "PPOLossTerms",
    "UpdateSeam",
    "UpdateSettings",
    "advantages_for_loss",
    "approx_kl",
    "clip_fraction",
    "explained_variance",
    "flatten_parameters",
    "minibatch_indices",
    "minibatch_loss",
    "minibatch_metrics",
    "normalize_advantages",
    "ppo_loss",
    "ppo_loss_terms",
    "ppo_update",
    "references",
    "shuffled_minibatches",
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
    require_float_tensors(new_log_probs=new_log_probs, old_log_probs=old_log_probs)
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
    require_float_tensors(values=values, returns=returns)
    var_returns = returns.var()
    ratio = (returns - values).var() / var_returns
    nan = torch.full_like(var_returns, float("nan"))
    return torch.where(var_returns == 0, nan, 1.0 - ratio)


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """(A − mean A) / (std A + 1e-8): zero mean, unit scale within a minibatch."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def advantages_for_loss(
    advantages: torch.Tensor, normalize: bool | torch.Tensor
) -> torch.Tensor:
    """The advantages the loss uses: `normalize_advantages(A)` where `normalize`,
    else A. `normalize` is a bool, or a 0-d bool tensor (a population's member
    `norm_adv`, mapped over the members by `vmap`)."""
    if isinstance(normalize, torch.Tensor):
        return torch.where(normalize, normalize_advantages(advantages), advantages)
    return normalize_advantages(advantages) if normalize else advantages


def clip_fraction(ratio: torch.Tensor, clip_eps: float | torch.Tensor) -> torch.Tensor:
    """The share of samples whose ratio was clipped, |r − 1| > ε, over the last axis:
    [] for ratios [M]; (K,) for a population's (K, M) with ε a (K, 1) column."""
    return (ratio.sub(1).abs() > clip_eps).float().mean(-1)


Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]
ValueLoss = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, float | None], torch.Tensor
]


class PPOLossTerms(NamedTuple):
    """The combined loss and its three terms (each a 0-d tensor)."""

    loss: torch.Tensor  # −L^CLIP + vf_coef · L^V − ent_coef · H, to minimize
    policy_loss: torch.Tensor  # −L^CLIP
    value_loss: torch.Tensor  # L^V
    entropy: torch.Tensor | None  # mean H (None when it was not computed)


def ppo_loss_terms(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor | None,
    clip_eps: float,
    value_clip_eps: float | None,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool,
    *,
    objective: Objective = clipped_surrogate_objective,
    value_loss_fn: ValueLoss = value_loss,
) -> PPOLossTerms:
    """`ppo_loss` and its terms; `objective` and `value_loss_fn` (the contracts of
    exercises 3.1 and 6.1) can be a student's own. `entropy` may be None only when
    `ent_coef` is 0 (the trainer skips computing it when nobody reads it).

    The one place the loss is assembled: a population maps it over its members
    with `vmap` (`ppo_lessons.population.update.loss_terms`), each member's
    vf_coef, ent_coef and normalize_advantages then 0-d tensors."""
    if entropy is None and ent_coef != 0.0:
        raise ValueError(
            f"entropy is None but ent_coef is {ent_coef}; pass [B] entropies"
        )
    advantages = advantages_for_loss(advantages, normalize_advantages)
    policy_loss = -objective(new_log_probs, old_log_probs, advantages, clip_eps)
    v_loss = value_loss_fn(new_values, old_values, returns, value_clip_eps)
    loss = policy_loss + vf_coef * v_loss
    if entropy is None:
        return PPOLossTerms(loss, policy_loss, v_loss, None)
    entropy = entropy.mean()
    return PPOLossTerms(loss - ent_coef * entropy, policy_loss, v_loss, entropy)


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
    """The PPO loss of one minibatch, to MINIMIZE (Schulman et al., 2017, eq. 9, with
    the signs of a loss):

        Â = (A − mean A) / (std A + 1e-8)      if normalize_advantages, else A
        loss = −L^CLIP(Â; clip_eps) + vf_coef · L^V(value_clip_eps) − ent_coef · mean H

    L^CLIP is `clipped_surrogate_objective`, L^V is `value_loss` (clipped around the
    old values when value_clip_eps is a number). Mean and std (torch's unbiased std)
    are over all elements of this minibatch; the 1e-8 keeps the loss finite when all
    advantages are equal.

    Args:
        new_log_probs: [B] log π_θ(a|s) (with gradient).
        old_log_probs, advantages: [B] from the rollout.
        new_values: [B] V_θ(s) (with gradient).
        old_values, returns: [B] V_old(s) and the value targets.
        entropy: [B] H[π_θ(·|s)] (with gradient).
        clip_eps, value_clip_eps: ε of the policy clip; ε of the value clip or None.
        vf_coef, ent_coef: weights of the value loss and of the entropy bonus.
        normalize_advantages: standardize the advantages within this minibatch.

    Returns:
        [] scalar loss; gradients reach new_log_probs, new_values and entropy.
    """
    return ppo_loss_terms(
        new_log_probs, old_log_probs, advantages, new_values, old_values, returns,
        entropy, clip_eps, value_clip_eps, vf_coef, ent_coef, normalize_advantages,
    ).loss  # fmt: skip


def minibatch_indices(
    batch_size: int, minibatch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """One epoch's minibatches: a random permutation of range(batch_size), drawn from
    `generator`, cut into consecutive pieces of `minibatch_size` (the last one shorter
    when minibatch_size does not divide batch_size). Every index appears exactly once;
    the same generator state gives the same order, each call (epoch) a new one.

    Args:
        batch_size: B >= 1 transitions in the rollout.
        minibatch_size: M >= 1.
        generator: a torch.Generator (its device is the indices' device).

    Returns:
        ceil(B / M) 1-D int64 index tensors.
    """
    for name, value in (("batch_size", batch_size), ("minibatch_size", minibatch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
    order = torch.randperm(batch_size, generator=generator, device=generator.device)
    return list(order.split(minibatch_size))


class Batch(NamedTuple):
    """A rollout flattened to B = T * N transitions (what the minibatches index)."""

    obs: torch.Tensor  # (B, *O) normalized observations the policy saw
    actions: torch.Tensor  # (B,) int64 or (B, A) float, unclipped
    log_probs: torch.Tensor  # (B,) log π_old(a_t|s_t)
    values: torch.Tensor  # (B,) V_old(s_t)
    advantages: torch.Tensor  # (B,) A_t
    returns: torch.Tensor  # (B,) λ-returns, the value targets


@dataclass(frozen=True)
class UpdateSettings:
    """The hyperparameters of one PPO update (a view of `PPOConfig`: same names)."""

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

    @classmethod
    def from_config(cls, config: Any) -> UpdateSettings:
        """The update's fields read from a `PPOConfig` (or anything with them)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


class UpdateSeam(Protocol):
    """The fields of the run's one bundle (`ppo_lessons.functions.LessonFunctions`,
    lesson 07's, built on this module) that the update reads; any can be a student's
    own. `ppo_loss` the reference: the loss is assembled from the objective and the
    value loss given (so an objective alone reaches the update)."""

    clipped_surrogate_objective: Objective
    value_loss: ValueLoss
    ppo_loss: Callable[..., torch.Tensor]
    minibatch_indices: Callable[..., list[torch.Tensor]]
    approx_kl: Callable[..., torch.Tensor]
    probability_ratio: Callable[..., torch.Tensor]


def references() -> UpdateSeam:
    """The update's default: this module, whose names (`ppo_loss`, `approx_kl`,
    ...) are the references (a module satisfies a Protocol)."""
    return sys.modules[__name__]


MINIBATCH_METRICS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
)
KL_INDEX = MINIBATCH_METRICS.index("approx_kl")


def minibatch_metrics(
    terms: PPOLossTerms, kl: torch.Tensor, clipped: torch.Tensor
) -> torch.Tensor:
    """One minibatch's metrics stacked on the last axis in the order of
    `MINIBATCH_METRICS`, detached: (5,) for one agent, (K, 5) for a population
    (each term (K,))."""
    named = {
        "policy_loss": terms.policy_loss,
        "value_loss": terms.value_loss,
        "entropy": terms.entropy,
        "approx_kl": kl,
        "clip_fraction": clipped,
    }
    return torch.stack([named[name] for name in MINIBATCH_METRICS], dim=-1).detach()


def loss_arguments(
    new_log_probs: torch.Tensor,
    new_values: torch.Tensor,
    entropy: torch.Tensor | None,
    batch: Batch,
    idx: torch.Tensor | slice,
    settings: UpdateSettings,
) -> dict[str, object]:
    """The arguments of `ppo_loss` (exercise 6.2) for minibatch `batch[idx]`, by the
    lesson's names, in the contract's order. The one place where the config's names
    (CleanRL's `clip_coef`, `clip_vloss`, `norm_adv`) become the lesson's (`clip_eps`,
    `value_clip_eps`, `normalize_advantages`)."""
    return {
        "new_log_probs": new_log_probs,
        "old_log_probs": batch.log_probs[idx],
        "advantages": batch.advantages[idx],
        "new_values": new_values,
        "old_values": batch.values[idx],
        "returns": batch.returns[idx],
        "entropy": entropy,
        "clip_eps": settings.clip_coef,
        "value_clip_eps": settings.clip_coef if settings.clip_vloss else None,
        "vf_coef": settings.vf_coef,
        "ent_coef": settings.ent_coef,
        "normalize_advantages": settings.norm_adv,
    }


def minibatch_loss(
    agent: ActorCritic,
    batch: Batch,
    idx: torch.Tensor | slice,
    settings: UpdateSettings,
    functions: UpdateSeam | None = None,
    with_metrics: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loss of minibatch `batch[idx]` and its detached metrics, one value per
    name of `MINIBATCH_METRICS` (None when not `with_metrics`: the update skips
    them in epochs whose metrics nobody reads); `functions` the run's lesson
    functions (None: the references)."""
    functions = references() if functions is None else functions
    policy_out, new_values = agent.policy_and_value(batch.obs[idx])
    # with ent_coef = 0 the entropy only feeds the metrics: skip it when they are not
    # read (its term, 0 · H, would add exact zeros to the loss and the gradient)
    own_loss = functions.ppo_loss is not ppo_loss  # else: assembled from its pieces
    if with_metrics or own_loss or settings.ent_coef != 0.0:
        new_log_probs, entropy = agent.log_prob_entropy(policy_out, batch.actions[idx])
    else:
        new_log_probs, entropy = agent.log_prob(policy_out, batch.actions[idx]), None
    arguments = loss_arguments(new_log_probs, new_values, entropy, batch, idx, settings)
    if own_loss:  # a student's function: positional, in the contract's order
        loss = functions.ppo_loss(*arguments.values())
        if not with_metrics:
            return loss, None
        with torch.no_grad():  # the terms, for the metrics only
            terms = ppo_loss_terms(**arguments)
    else:
        terms = ppo_loss_terms(
            **arguments,
            objective=functions.clipped_surrogate_objective,
            value_loss_fn=functions.value_loss,
        )
        loss = terms.loss
        if not with_metrics:
            return loss, None
    with torch.no_grad():
        old_log_probs = batch.log_probs[idx]
        kl = functions.approx_kl(new_log_probs, old_log_probs, settings.kl_estimator)
        ratio = functions.probability_ratio(new_log_probs, old_log_probs)
        clipped = clip_fraction(ratio, settings.clip_coef)
        metrics = minibatch_metrics(terms, kl, clipped)
    return loss, metrics


def shuffled_minibatches(
    batch: Batch,
    M: int,
    generator: torch.Generator | None,
    indices_fn: Callable[..., list[torch.Tensor]] = minibatch_indices,
) -> list[tuple[Batch, torch.Tensor | slice]]:
    """One epoch's minibatches as (batch, index) pairs for `minibatch_loss`: the
    batch gathered once in the order of `indices_fn` (`minibatch_indices`), cut into
    consecutive slices of the pieces' sizes (one gather per field per epoch, not one
    per minibatch). With the reference `minibatch_indices` and M >= B, the whole batch
    unshuffled: a full-batch step does not depend on the order (and draws nothing)."""
    B = batch.advantages.shape[0]
    if M >= B and indices_fn is minibatch_indices:
        return [(batch, slice(None))]
    if generator is None:  # PyTorch's global random source on the batch's device
        device = batch.advantages.device
        generator = (
            torch.cuda.default_generators[device.index or 0]
            if device.type == "cuda"
            else torch.default_generator
        )
    pieces = indices_fn(B, M, generator)
    order = torch.cat(list(pieces))
    shuffled = type(batch)(*(field[order] for field in batch))
    out, start = [], 0
    for piece in pieces:
        out.append((shuffled, slice(start, start + len(piece))))
        start += len(piece)
    return out


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    settings: UpdateSettings,
    generator: torch.Generator | None = None,
    *,
    functions: UpdateSeam | None = None,
) -> dict[str, torch.Tensor]:
    """`update_epochs` passes of minibatch gradient steps over `batch` (a `Batch`).

    Exercise 7.2's contract is the first five arguments; `functions` is the run's
    bundle of lesson functions (`ppo_lessons.functions.LessonFunctions`; None: the
    references), through which a student's loss, objective, value loss, minibatches,
    KL and ratio reach the reference update.

    Per minibatch: the loss (`ppo_loss`), a gradient step of `optimizer` with the
    gradient clipped to global norm `max_grad_norm`. With `target_kl`, the epochs
    stop once an epoch's mean approx KL exceeds it (CleanRL; Huang et al., 2022).
    Nothing here reads a value back to the host, except one KL check per epoch when
    `target_kl` is set (stopping early needs the number).

    Returns:
        Metrics as 0-d tensors on the device, averaged over the minibatches of the
        last epoch run (the names of MINIBATCH_METRICS), plus `epochs` (how many ran).
    """
    # its twin with a member axis, line for line: population.update.population_update
    # (where this loop breaks at target_kl, a member leaves its `active` mask)
    functions = references() if functions is None else functions
    M = settings.minibatch_size
    # the tensors the optimizer steps (one flat tensor with `speed.FlatAdam`)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    epochs_run = 0
    for epoch in range(settings.update_epochs):
        # metrics are read after the last epoch, and after every one for target_kl
        measure = settings.target_kl is not None or epoch == settings.update_epochs - 1
        totals = torch.zeros(len(MINIBATCH_METRICS), device=batch.advantages.device)
        minibatches = shuffled_minibatches(
            batch, M, generator, functions.minibatch_indices
        )
        for shuffled, idx in minibatches:
            loss, metrics = minibatch_loss(
                agent, shuffled, idx, settings, functions, measure
            )
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            if settings.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            if measure:
                totals += metrics
        epochs_run += 1
        epoch_means = totals / len(minibatches)
        if (
            settings.target_kl is not None
            and float(epoch_means[KL_INDEX]) > settings.target_kl
        ):
            break
    out = dict(zip(MINIBATCH_METRICS, epoch_means, strict=True))
    out["epochs"] = torch.tensor(epochs_run)
    return out
