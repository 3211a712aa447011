"""GAE and the PPO update of a population: every member's own, computed together.

The math is the lessons' functions, not a copy of them:

- GAE: `ppo_lessons.gae.compute_gae` is column-wise, so members that share (γ, λ)
  and the GAE function are one call on their columns of the (T, K·N) rollout.
- The loss: member k's loss is `ppo_lessons.update.ppo_loss_terms` itself (the one
  place the loss is assembled, advantages normalized where `norm_adv`) on member k's
  own minibatch, mapped over the members by `torch.func.vmap` with each member's
  vf_coef, ent_coef and norm_adv, once per group of members that share the scalar
  settings and functions (clip_coef, clip_vloss, the objective, the value loss, the
  KL and the ratio). A member's own `ppo_loss` is mapped the same way, its group
  sharing vf_coef, ent_coef and norm_adv too (a Python bool, as the contract says).
- The lesson functions a variant gives (`MemberSpec.functions`, the run's bundle as
  `train` takes it) run where the references would; the ones a population cannot
  take are refused with the reason (`members.NOT_IN_A_POPULATION`).
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
from typing import Any, NamedTuple

import torch
from torch.func import vmap
from torch.utils._pytree import tree_map

from ppo_lessons.buffer import Batch, RolloutBuffer
from ppo_lessons.functions import REFERENCES
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
    PPOLossTerms,
    clip_fraction,
    explained_variance,
    minibatch_metrics,
    ppo_loss_terms,
)

__all__ = [
    "GaeKey",
    "LossKey",
    "MemberGroup",
    "MemberSettings",
    "member_batch",
    "member_explained_variance",
    "member_gae",
    "member_losses",
    "member_minibatches",
    "population_update",
]

INF = float("inf")
LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"


class GaeKey(NamedTuple):
    """What members must share to be one GAE call."""

    gamma: float
    gae_lambda: float
    compute_gae: Callable


class OwnLossScalars(NamedTuple):
    """What members with a given `ppo_loss` share besides: its Python arguments."""

    vf_coef: float
    ent_coef: float
    norm_adv: bool


class LossKey(NamedTuple):
    """What members must share to be one `vmap` of the loss (and of the KL)."""

    clip_coef: float
    clip_vloss: bool
    clipped_surrogate_objective: Callable
    value_loss: Callable
    ppo_loss: Callable
    own_loss: OwnLossScalars | None  # None: the reference loss (tensors per member)
    approx_kl: Callable
    probability_ratio: Callable
    kl_estimator: str


@dataclass(frozen=True)
class MemberGroup:
    """Members that share one scalar setting (`key`): `index` (G,) which ones,
    `everyone` when all members do (then no gathering is needed)."""

    key: Any  # a GaeKey, a LossKey or an explained_variance function
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
    (differentiable: a concatenation and one gather per tensor `fn` returns, also
    inside a NamedTuple such as `PPOLossTerms`)."""
    if groups[0].everyone:
        return fn(groups[0], *tensors, **kw)
    parts = [fn(g, *(g.take(t) for t in tensors), **kw) for g in groups]
    inverse = torch.argsort(torch.cat([g.index for g in groups]))
    return tree_map(lambda *xs: torch.cat(xs)[inverse], *parts)


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
    gae_groups: list[MemberGroup]  # key a GaeKey
    loss_groups: list[MemberGroup]  # key a LossKey
    metric_groups: list[MemberGroup]  # key the explained_variance function
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
            GaeKey(
                gamma=c.gamma,
                gae_lambda=c.gae_lambda,
                compute_gae=s.functions.compute_gae,
            )
            for c, s in zip(configs, specs, strict=True)
        ]
        loss_keys = [loss_key(c, s) for c, s in zip(configs, specs, strict=True)]
        metric_keys = [s.functions.explained_variance for s in specs]
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
            metric_groups=group_members(metric_keys, device),
            update_epochs=configs[0].update_epochs,
            minibatch_size=configs[0].minibatch_size,
            any_target_kl=any(c.target_kl is not None for c in configs),
        )


def loss_key(config: Any, spec: MemberSpec) -> LossKey:
    """A member's `LossKey`: its scalar settings and lesson functions."""
    fns = spec.functions
    own = fns.ppo_loss is not REFERENCES["ppo_loss"]
    return LossKey(
        clip_coef=config.clip_coef,
        clip_vloss=config.clip_vloss,
        clipped_surrogate_objective=fns.clipped_surrogate_objective,
        value_loss=fns.value_loss,
        ppo_loss=fns.ppo_loss,
        own_loss=(
            OwnLossScalars(config.vf_coef, config.ent_coef, config.norm_adv)
            if own
            else None
        ),
        approx_kl=fns.approx_kl,
        probability_ratio=fns.probability_ratio,
        kl_estimator=config.kl_estimator,
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
        key: GaeKey = group.key
        if group.everyone:
            return key.compute_gae(*rows, *flags, key.gamma, key.gae_lambda)
        envs = torch.arange(num_envs, device=group.index.device)
        cols = (group.index[:, None] * num_envs + envs).reshape(-1)  # (G·N,)
        columns = (x[:, cols] for x in rows + flags)
        adv, ret = key.compute_gae(*columns, key.gamma, key.gae_lambda)
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


def loss_terms(
    group: MemberGroup,
    new_log_probs: torch.Tensor,
    *tensors: torch.Tensor,
) -> PPOLossTerms:
    """`ppo_loss_terms` of each of the group's members, mapped over them by one
    `vmap`: every argument (G, M) or (G,) (the members' vf_coef, ent_coef and
    norm_adv), the group's scalar settings shared. Each field (G,). With a given
    `ppo_loss` (its group shares vf_coef, ent_coef and norm_adv), the loss is
    that function's, the terms (for the metrics) the reference's, as
    `ppo_lessons.update.minibatch_loss` does."""
    key: LossKey = group.key
    (old_log_probs, advantages, new_values, old_values, returns, entropy,
     vf_coef, ent_coef, norm_adv) = tensors  # fmt: skip
    value_clip = key.clip_coef if key.clip_vloss else None
    if key.own_loss is not None:
        scalars = key.own_loss
        own_in_dims = (0, 0, 0, 0, 0, 0, 0, None, None, None, None, None)
        loss = vmap(key.ppo_loss, in_dims=own_in_dims)(
            new_log_probs, old_log_probs, advantages, new_values, old_values,
            returns, entropy, key.clip_coef, value_clip, scalars.vf_coef,
            scalars.ent_coef, scalars.norm_adv,
        )  # fmt: skip
        with torch.no_grad():  # the terms, for the metrics only
            terms = vmap(ppo_loss_terms, in_dims=own_in_dims)(
                new_log_probs, old_log_probs, advantages, new_values, old_values,
                returns, entropy, key.clip_coef, value_clip, scalars.vf_coef,
                scalars.ent_coef, scalars.norm_adv,
            )  # fmt: skip
        return terms._replace(loss=loss)
    terms = functools.partial(
        ppo_loss_terms,
        objective=key.clipped_surrogate_objective,
        value_loss_fn=key.value_loss,
    )
    in_dims = (0, 0, 0, 0, 0, 0, 0, None, None, 0, 0, 0)  # ε's are the group's
    return vmap(terms, in_dims=in_dims)(
        new_log_probs, old_log_probs, advantages, new_values, old_values, returns,
        entropy, key.clip_coef, value_clip, vf_coef, ent_coef, norm_adv,
    )  # fmt: skip


def kl_terms(group: MemberGroup, new_log_probs, old_log_probs) -> torch.Tensor:
    """`approx_kl` of each of the group's members (G,), with the group's estimator."""
    key: LossKey = group.key
    return vmap(key.approx_kl, in_dims=(0, 0, None))(
        new_log_probs, old_log_probs, key.kl_estimator
    )


def ratio_terms(group: MemberGroup, new_log_probs, old_log_probs) -> torch.Tensor:
    """`probability_ratio` of the group's members (G, M): its contract takes [T, N]."""
    return group.key.probability_ratio(new_log_probs, old_log_probs)


def member_losses(
    net: PopulationActorCritic,
    mb: Batch,
    settings: MemberSettings,
    with_metrics: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Σ_k loss_k, metrics (K, 5) in the order of MINIBATCH_METRICS or None) for
    one minibatch `mb` whose fields are (K, M, ...): each member's `ppo_loss_terms`,
    as `ppo_lessons.update.minibatch_loss` (its twin) for one agent."""
    policy_out, new_values = net.forward_members(mb.obs)
    new_log_probs, entropy = net.log_prob_entropy(policy_out, mb.actions)  # (K, M)
    groups = settings.loss_groups
    terms = per_group(
        groups, loss_terms, new_log_probs, mb.log_probs, mb.advantages, new_values,
        mb.values, mb.returns, entropy, settings.vf_coef, settings.ent_coef,
        settings.norm_adv,
    )  # fmt: skip
    loss = terms.loss.sum()  # the members' parameters are disjoint
    if not with_metrics:
        return loss, None
    with torch.no_grad():
        kl = per_group(groups, kl_terms, new_log_probs, mb.log_probs)
        ratio = per_group(groups, ratio_terms, new_log_probs, mb.log_probs)
        clipped = clip_fraction(ratio, settings.clip_coef[:, None])
        metrics = minibatch_metrics(terms, kl, clipped)
    return loss, metrics


def member_explained_variance(batch: Batch, settings: MemberSettings) -> torch.Tensor:
    """Each member's explained variance (K,) of its batch: the reference mapped over
    the members by `vmap`, a given function member by member (a metric, once per
    update; a student's may branch on a value, which `vmap` cannot)."""

    def ev(group: MemberGroup, values, returns) -> torch.Tensor:
        if group.key is explained_variance:
            return torch.vmap(explained_variance)(values, returns)
        return torch.stack(
            [group.key(v, r) for v, r in zip(values, returns, strict=True)]
        )

    return per_group(settings.metric_groups, ev, batch.values, batch.returns)


# ---------------------------------------------------------------- the update


def population_update(
    net: PopulationActorCritic,
    adam: PopulationAdam,
    batch: Batch,
    settings: MemberSettings,
    streams: MemberStreams,
    lr: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """`update_epochs` passes of minibatch steps over every member's batch, line for
    line `ppo_lessons.update.ppo_update` (its twin) with a member axis: where one
    agent `break`s at target_kl, a member leaves `active` (see the module
    docstring). Returns each member's metrics (K,) by name: the means over the
    minibatches of its last epoch (MINIBATCH_METRICS), and `epochs` it ran."""
    M = settings.minibatch_size
    K = batch.advantages.shape[0]
    active = torch.ones(K, dtype=torch.bool, device=lr.device)  # still stepping
    epochs_run = torch.zeros(K, device=lr.device)
    epoch_means = torch.zeros(K, len(MINIBATCH_METRICS), device=lr.device)
    for epoch in range(settings.update_epochs):
        # metrics are read after the last epoch, and after every one for target_kl
        measure = settings.any_target_kl or epoch == settings.update_epochs - 1
        totals = torch.zeros(K, len(MINIBATCH_METRICS), device=lr.device)
        minibatches = member_minibatches(batch, M, streams)
        for mb in minibatches:
            loss, metrics = member_losses(net, mb, settings, measure)
            adam.zero_grad()
            with warnings.catch_warnings():
                # the (K, 1, 1) bias of the value heads is a strided view of the
                # flat gradient, on purpose (speed.flatten_parameters)
                warnings.filterwarnings("ignore", message=LAYOUT_WARNING)
                loss.backward()
            clip_member_gradients(adam, settings.max_grad_norm)  # inf: no clipping
            adam.step(lr, active)
            if measure:
                totals += metrics
        epochs_run += active.float()
        means = totals / len(minibatches)
        epoch_means = torch.where(active[:, None], means, epoch_means)
        # one agent's `break`: a member past its target_kl (inf: none) stops
        active = active & ~(epoch_means[:, KL_INDEX] > settings.target_kl)
    out = dict(zip(MINIBATCH_METRICS, epoch_means.unbind(-1), strict=True))
    out["epochs"] = epochs_run
    return out
