"""GAE and the PPO update of a population: every member's own, computed together.

The math is the lessons' functions, not a copy of them:

- GAE: `ppo_lessons.gae.compute_gae` is column-wise, so members that share (γ, λ)
  and the GAE function are one call on their columns of the (T, K·N) rollout.
- The loss: member k's loss is `ppo_loss`'s math on member k's own minibatch,

      loss_k = −L^CLIP_k + vf_coef_k · L^V_k − ent_coef_k · mean H_k,

  with `clipped_surrogate_objective` and `value_loss` mapped over the members by
  `torch.func.vmap` (each returns its mean over one member's M samples), once per
  group of members that share the scalar settings (clip_coef, clip_vloss, the
  functions). Advantages are standardized per member (`normalize_advantages`,
  mapped the same way) where the member's `norm_adv` says so.
- The step: the population minimizes Σ_k loss_k. The members' parameters are
  disjoint, so ∂(Σ_j loss_j)/∂θ_k = ∂loss_k/∂θ_k: each member gets exactly its own
  gradient, clipped to its own norm, and its own Adam step.

`target_kl`: after each epoch, a member whose epoch-mean approx KL exceeds its
target_kl stops: for the rest of this update its parameters and Adam state stay as
they are (its minibatch losses are still computed with the others', and ignored);
the other members run their epochs to the end. Its `epochs` metric counts the epochs
it ran, and its metrics are those of its last epoch. Nothing is read back to the host
for this: the stop is a mask on the device.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
from torch.func import vmap

from ppo_lessons.buffer import Batch, RolloutBuffer
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.gae import compute_gae
from ppo_lessons.importance_sampling import probability_ratio
from ppo_lessons.losses import value_loss
from ppo_lessons.population.members import MemberSpec
from ppo_lessons.population.network import (
    PopulationActorCritic,
    PopulationAdam,
    clip_member_gradients,
)
from ppo_lessons.population.random import MemberStreams
from ppo_lessons.update import (
    KL_INDEX,
    MINIBATCH_METRICS,
    approx_kl,
    normalize_advantages,
)

__all__ = [
    "MemberGroup",
    "MemberSettings",
    "member_batch",
    "member_gae",
    "member_losses",
    "member_minibatches",
    "population_update",
]

INF = float("inf")
LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"


@dataclass(frozen=True)
class MemberGroup:
    """Members that share one scalar setting (`key`): `index` (G,) which ones,
    `everyone` when all members do (then no gathering is needed)."""

    key: tuple
    index: torch.Tensor
    everyone: bool

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """The group's rows of a member-first tensor (K, ...)."""
        return x if self.everyone else x[self.index]


def group_members(keys: Sequence[Hashable], device: torch.device) -> list[MemberGroup]:
    """Members grouped by equal keys, in order of first appearance."""
    order: dict[Hashable, list[int]] = {}
    for k, key in enumerate(keys):
        order.setdefault(key, []).append(k)
    everyone = len(order) == 1
    return [
        MemberGroup(key, torch.tensor(ks, device=device), everyone)
        for key, ks in order.items()
    ]


def per_group(groups: Sequence[MemberGroup], fn: Callable, *tensors, **kw):
    """fn(group, *its rows of tensors) for each group, reassembled in member order
    (differentiable: a concatenation and one gather)."""
    if groups[0].everyone:
        return fn(groups[0], *tensors, **kw)
    parts = [fn(g, *(g.take(t) for t in tensors), **kw) for g in groups]
    inverse = torch.argsort(torch.cat([g.index for g in groups]))
    return torch.cat(parts)[inverse]


@dataclass(frozen=True)
class MemberSettings:
    """Each member's hyperparameters as (K,) tensors on the device, and the groups
    of members that share a scalar setting or a lesson function."""

    learning_rate: torch.Tensor
    anneal_lr: torch.Tensor  # bool
    adam_eps: torch.Tensor
    max_grad_norm: torch.Tensor  # inf: no clipping
    target_kl: torch.Tensor  # inf: never stops early
    norm_adv: torch.Tensor  # bool
    clip_coef: torch.Tensor
    ent_coef: torch.Tensor
    vf_coef: torch.Tensor
    gamma: torch.Tensor
    norm_obs: torch.Tensor  # bool
    norm_reward: torch.Tensor  # bool
    gae_groups: list[MemberGroup]  # key (γ, λ, compute_gae)
    loss_groups: list[MemberGroup]  # key (ε, clip_vloss, objective, value_loss, kl)
    update_epochs: int
    minibatch_size: int
    any_target_kl: bool

    @classmethod
    def from_specs(
        cls, specs: Sequence[MemberSpec], device: torch.device
    ) -> MemberSettings:
        configs = [s.config for s in specs]

        def column(name: str, none: float = INF, dtype=torch.float32) -> torch.Tensor:
            values = [getattr(c, name) for c in configs]
            values = [none if v is None else v for v in values]
            return torch.tensor(values, dtype=dtype, device=device)

        gae_keys = [
            (c.gamma, c.gae_lambda, s.functions.get("compute_gae", compute_gae))
            for c, s in zip(configs, specs, strict=True)
        ]
        loss_keys = [
            (
                c.clip_coef, c.clip_vloss,
                s.functions.get("clipped_surrogate_objective",
                                clipped_surrogate_objective),
                s.functions.get("value_loss", value_loss), c.kl_estimator,
            )
            for c, s in zip(configs, specs, strict=True)
        ]  # fmt: skip
        flags = {n: column(n, dtype=torch.bool) for n in ("anneal_lr", "norm_adv")}
        flags |= {n: column(n, dtype=torch.bool) for n in ("norm_obs", "norm_reward")}
        return cls(
            **flags,
            **{n: column(n) for n in ("learning_rate", "adam_eps", "max_grad_norm")},
            **{n: column(n) for n in ("target_kl", "clip_coef", "ent_coef")},
            vf_coef=column("vf_coef"),
            gamma=column("gamma", dtype=torch.float64),
            gae_groups=group_members(gae_keys, device),
            loss_groups=group_members(loss_keys, device),
            update_epochs=configs[0].update_epochs,
            minibatch_size=configs[0].minibatch_size,
            any_target_kl=any(c.target_kl is not None for c in configs),
        )


# ---------------------------------------------------------------- GAE


def member_gae(
    buffer: RolloutBuffer, settings: MemberSettings, num_envs: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), each (T, K·N): each group's GAE function on its
    members' columns (rows ordered (member, env))."""
    rows = (buffer.rewards, buffer.values, buffer.next_values)
    flags = (buffer.terminated, buffer.truncated)
    advantages = torch.empty_like(buffer.rewards)  # (T, K·N)
    returns = torch.empty_like(buffer.rewards)
    for group in settings.gae_groups:
        gamma, lam, gae_fn = group.key
        if group.everyone:
            return gae_fn(*rows, *flags, gamma, lam)
        envs = torch.arange(num_envs, device=group.index.device)
        cols = (group.index[:, None] * num_envs + envs).reshape(-1)  # (G·N,)
        adv, ret = gae_fn(*(x[:, cols] for x in rows + flags), gamma, lam)
        advantages[:, cols], returns[:, cols] = adv, ret
    return advantages, returns


def member_batch(
    buffer: RolloutBuffer, advantages: torch.Tensor, returns: torch.Tensor, K: int
) -> Batch:
    """The rollout as K per-member batches: every field (K, B, ...), B = T·N."""

    def per_member(x: torch.Tensor) -> torch.Tensor:  # (T, K·N, ...) -> (K, T·N, ...)
        T, tail = x.shape[0], x.shape[2:]
        return x.reshape(T, K, -1, *tail).transpose(0, 1).reshape(K, -1, *tail)

    fields = (buffer.obs, buffer.actions, buffer.log_probs, buffer.values)
    return Batch(*(per_member(x) for x in (*fields, advantages, returns)))


def member_minibatches(batch: Batch, M: int, streams: MemberStreams) -> list[Batch]:
    """One epoch's minibatches, each member's samples in its own random order
    (the batch gathered once per epoch, then cut into slices of M)."""
    K, B = batch.advantages.shape
    if M >= B:  # a full-batch step does not depend on the order
        return [batch]
    order = streams.permutations("minibatches", B)  # (K, B)
    rows = torch.arange(K, device=order.device)[:, None]
    shuffled = Batch(*(field[rows, order] for field in batch))
    return [Batch(*(f[:, s : s + M] for f in shuffled)) for s in range(0, B, M)]


# ---------------------------------------------------------------- the loss


def one_member_terms(
    new_lp: torch.Tensor,
    old_lp: torch.Tensor,
    advantages: torch.Tensor,
    norm_adv: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    *,
    objective: Callable,
    value_fn: Callable,
    clip_coef: float,
    value_clip: float | None,
) -> torch.Tensor:
    """(−L^CLIP, L^V) of ONE member's minibatch, each (M,) argument: advantages
    standardized first where `norm_adv` (0-d bool), as in `ppo_loss`."""
    advantages = torch.where(norm_adv, normalize_advantages(advantages), advantages)
    policy_loss = -objective(new_lp, old_lp, advantages, clip_coef)
    return torch.stack(
        [policy_loss, value_fn(new_values, old_values, returns, value_clip)]
    )


def loss_terms(group: MemberGroup, *tensors: torch.Tensor) -> torch.Tensor:
    """(G, 2) `one_member_terms` of the group's members, mapped over them by one
    `vmap` (the functions take the group's scalar settings)."""
    clip_coef, clip_vloss, objective, value_fn, _ = group.key
    terms = functools.partial(
        one_member_terms,
        objective=objective,
        value_fn=value_fn,
        clip_coef=clip_coef,
        value_clip=clip_coef if clip_vloss else None,
    )
    return vmap(terms)(*tensors)


def kl_terms(group: MemberGroup, new_lp, old_lp) -> torch.Tensor:
    estimator = group.key[4]
    return vmap(approx_kl, in_dims=(0, 0, None))(new_lp, old_lp, estimator)


def member_losses(
    net: PopulationActorCritic,
    mb: Batch,
    settings: MemberSettings,
    with_metrics: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Σ_k loss_k, metrics (K, 5) in the order of MINIBATCH_METRICS or None) for
    one minibatch `mb` whose fields are (K, M, ...)."""
    policy_out, new_values = net.forward_members(mb.obs)
    new_lp, entropy = net.log_prob_entropy(policy_out, mb.actions)  # (K, M) each
    groups = settings.loss_groups
    terms = per_group(
        groups, loss_terms, new_lp, mb.log_probs, mb.advantages, settings.norm_adv,
        new_values, mb.values, mb.returns,
    )  # fmt: skip
    policy_loss, v_loss = terms.unbind(1)  # (K,) each
    mean_entropy = entropy.mean(-1)  # (K,)
    losses = policy_loss + settings.vf_coef * v_loss - settings.ent_coef * mean_entropy
    if not with_metrics:
        return losses.sum(), None
    with torch.no_grad():
        kl = per_group(groups, kl_terms, new_lp, mb.log_probs)
        ratio = probability_ratio(new_lp, mb.log_probs)
        clipped = (ratio - 1.0).abs() > settings.clip_coef[:, None]
        terms = (policy_loss, v_loss, mean_entropy, kl, clipped.float().mean(-1))
        metrics = torch.stack(terms, dim=1).detach()  # (K, 5)
    return losses.sum(), metrics


# ---------------------------------------------------------------- the update


def population_update(
    net: PopulationActorCritic,
    adam: PopulationAdam,
    batch: Batch,
    settings: MemberSettings,
    streams: MemberStreams,
    lr: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`update_epochs` passes of minibatch steps over every member's batch (see the
    module docstring for target_kl). Returns (metrics (K, 5), the means over the
    minibatches of each member's last epoch; epochs run (K,))."""
    K = batch.advantages.shape[0]
    active = torch.ones(K, dtype=torch.bool, device=lr.device)
    epochs_run = torch.zeros(K, device=lr.device)
    final = torch.zeros(K, len(MINIBATCH_METRICS), device=lr.device)
    for epoch in range(settings.update_epochs):
        measure = settings.any_target_kl or epoch == settings.update_epochs - 1
        totals = torch.zeros_like(final)
        minibatches = member_minibatches(batch, settings.minibatch_size, streams)
        for mb in minibatches:
            loss, metrics = member_losses(net, mb, settings, measure)
            adam.zero_grad()
            with warnings.catch_warnings():
                # the (K, 1, 1) bias of the value heads is a strided view of the
                # flat gradient, on purpose (network.member_flat_parameters)
                warnings.filterwarnings("ignore", message=LAYOUT_WARNING)
                loss.backward()
            clip_member_gradients(adam, settings.max_grad_norm)
            adam.step(lr, active)
            if measure:
                totals += metrics
        epochs_run += active.float()
        if measure:
            means = totals / len(minibatches)
            final = torch.where(active[:, None], means, final)
            active = active & ~(means[:, KL_INDEX] > settings.target_kl)
    return final, epochs_run
