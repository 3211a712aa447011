"""K actor-critics as one batched network, and one Adam that steps them all.

Member k's layer y = x Wᵀ + b becomes, for all members at once,

    y[k] = x[k] @ W[k] + b[k]     x (K, M, in), W (K, in, out), b (K, 1, out)

one `torch.baddbmm` per layer instead of K small matmuls: the per-operation cost that
dominates a small network is paid once for the population. The weights are those of
K ordinary `ActorCritic`s (built by the lessons' code, so each member's init is what
`train` would give it) stacked, and copied back into them after training.

All parameters live in one (K, P) tensor, row k member k's P parameters
(`ppo_lessons.speed.flatten_parameters` with its member axis). Adam is elementwise,
so one Adam over it, with each member's learning rate, ε and step count as (K, 1)
columns, updates every member exactly as its own Adam would; the gradient norm is
taken per row (`clip_member_gradients`), never over the whole population.

log π and H are each member's own functions (exercises 5.1 and 5.2, as its agent was
made with them; a variant's own through `functions`), one call per group of members
that share them (`per_head`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ppo_lessons.networks import (
    ACTIVATIONS,
    ActorCritic,
    categorical_log_prob,
    gaussian_entropy,
    linear_layers,
)
from ppo_lessons.population.random import MemberStreams
from ppo_lessons.speed import flatten_parameters

__all__ = [
    "PopulationActorCritic",
    "PopulationAdam",
    "clip_member_gradients",
]


def stacked_layers(mlps: Sequence[nn.Module]) -> nn.ParameterList:
    """[W₁, b₁, W₂, b₂, ...] with W (K, in, out) and b (K, 1, out) from K MLPs."""
    params = []
    for layers in zip(*(linear_layers(m) for m in mlps), strict=True):
        params.append(nn.Parameter(torch.stack([lin.weight.T for lin in layers])))
        params.append(nn.Parameter(torch.stack([lin.bias[None] for lin in layers])))
    return nn.ParameterList(params)


class PopulationActorCritic(nn.Module):
    """The K members' separate actor and critic MLPs, computed as one network.

    Two layouts of observations, both with the feature axis last:
    - `forward_members(obs)`: (K, M, *O), member first (the update's minibatches);
    - `policy(obs)`, `value(obs)`: (..., K·N, *O), rows ordered (..., member, env),
      the layout of the population's envs, so the rollout functions of lesson 07
      (`ppo_lessons.rollout`) run unchanged on a population.
    """

    def __init__(
        self, agents: Sequence[ActorCritic], num_envs: int, activation: str = "tanh"
    ) -> None:
        """`activation`: the agents' (`PPOConfig.activation`; `ActorCritic`'s
        default)."""
        super().__init__()
        first = agents[0]
        self.num_members, self.num_envs = len(agents), num_envs
        self.discrete, self.action_dim = first.discrete, first.action_dim
        self.activation = ACTIVATIONS[activation]()
        self.actor = stacked_layers([a.actor for a in agents])
        self.critic = stacked_layers([a.critic for a in agents])
        if not self.discrete:  # (K, A) each member's state-independent log σ
            self.log_std = nn.Parameter(torch.stack([a.log_std for a in agents]))
        # each member's log π and H functions (exercises 5.1, 5.2), as its agent was
        # made with them: members that share them are one call
        heads: dict[tuple, list[int]] = {}
        for k, a in enumerate(agents):
            heads.setdefault((a.gaussian_log_prob, a.categorical_entropy), []).append(k)
        self.head_groups = list(heads.items())

    @torch.no_grad()
    def check_same_as(self, agents: Sequence[ActorCritic], variants: Sequence[str]):
        """Refuse members whose actor or critic (a student's `actor_critic_networks`,
        exercise 5.3) this network does not compute: it runs them as stacked Linear
        layers with the config's activation between them, so another architecture
        (a normalization layer, another activation) would silently differ. Compared
        on random observations of a generator of its own (no global draw)."""
        generator = torch.Generator().manual_seed(0)
        K, obs_dim = len(agents), self.actor[0].shape[1]
        obs = torch.randn(K, 8, obs_dim, generator=generator)
        policy_out, values = self.forward_members(obs)
        for k, (agent, variant) in enumerate(zip(agents, variants, strict=True)):
            mine = (agent.actor(obs[k]), agent.critic(obs[k]).squeeze(-1))
            for net, a, b in zip(("actor", "critic"), mine, (policy_out[k], values[k]),
                                 strict=True):  # fmt: skip
                if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
                    raise ValueError(
                        f"variant {variant!r}: the {net} of its actor_critic_networks "
                        "is not one a population can compute (it runs the members' "
                        "networks as stacked Linear layers with the config's "
                        "activation between them); train it with "
                        "ppo_lessons.trainer.train"
                    )

    def stacked_mlp(self, params: nn.ParameterList, x: torch.Tensor) -> torch.Tensor:
        """(K, M, in) -> (K, M, out) through the stacked layers `params`."""
        layers = len(params) // 2
        for i in range(layers):
            x = torch.baddbmm(params[2 * i + 1], x, params[2 * i])
            if i < layers - 1:
                x = self.activation(x)
        return x

    def forward_members(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy output (K, M, A), values (K, M)) for (K, M, *O) observations."""
        policy_out = self.stacked_mlp(self.actor, obs)
        return policy_out, self.stacked_mlp(self.critic, obs).squeeze(-1)

    def by_member(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., K·N, O) rows ordered (..., member, env) -> (K, L, O)."""
        K, N = self.num_members, self.num_envs
        grouped = obs.reshape(-1, K, N, obs.shape[-1]).transpose(0, 1)
        return grouped.reshape(K, -1, obs.shape[-1])

    def by_row(self, out: torch.Tensor, rows: torch.Size) -> torch.Tensor:
        """(K, L, ...) -> rows ordered (..., member, env) of shape `rows` + (...)."""
        K, N = self.num_members, self.num_envs
        tail = out.shape[2:]
        back = out.reshape(K, -1, N, *tail).transpose(0, 1)
        return back.reshape(*rows, *tail)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """Policy outputs (..., K·N, A) for observations (..., K·N, O)."""
        policy_out = self.stacked_mlp(self.actor, self.by_member(obs))
        return self.by_row(policy_out, obs.shape[:-1])

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Values (..., K·N) for observations (..., K·N, O)."""
        values = self.stacked_mlp(self.critic, self.by_member(obs)).squeeze(-1)
        return self.by_row(values, obs.shape[:-1])

    def per_head(self, which: int, *tensors: torch.Tensor) -> torch.Tensor:
        """Each member's own `gaussian_log_prob` (`which` 0) or `categorical_entropy`
        (1) on its rows of the member-first tensors (K, ...): one call per group of
        members that share it, reassembled in member order (differentiable)."""
        if len(self.head_groups) == 1:
            return self.head_groups[0][0][which](*tensors)
        device = tensors[0].device
        parts, order = [], []
        for heads, members in self.head_groups:
            index = torch.tensor(members, device=device)
            parts.append(heads[which](*(t[index] for t in tensors)))
            order.append(index)
        return torch.cat(parts)[torch.argsort(torch.cat(order))]

    def sample(
        self, policy_out: torch.Tensor, streams: MemberStreams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions, log π(a|s)) for policy outputs (K·N, A), each member's draws
        from its own stream (`MemberStreams`, passed where the single-agent rollout
        passes its generator)."""
        K, N = self.num_members, self.num_envs
        out = policy_out.reshape(K, N, -1)
        if self.discrete:  # inverse CDF: the first action whose cumulative p ≥ u
            cdf = torch.softmax(out, dim=-1).cumsum(-1)  # (K, N, A)
            u = streams.uniform("actions", (N, 1))  # (K, N, 1)
            actions = (u >= cdf).sum(-1).clamp_(max=self.action_dim - 1)
            log_probs = categorical_log_prob(out, actions)
        else:
            noise = streams.normal("actions", (N, self.action_dim))  # (K, N, A)
            actions = out + self.log_std.exp()[:, None] * noise
            log_probs = self.per_head(0, actions, out, self.log_std[:, None])
        return actions.reshape(K * N, *actions.shape[2:]), log_probs.reshape(K * N)

    def log_prob_entropy(
        self, policy_out: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(a|s), H[π(·|s)]), each (K, M), for (K, M, A) policy outputs."""
        if self.discrete:
            entropy = self.per_head(1, policy_out)
            return categorical_log_prob(policy_out, actions), entropy
        log_std = self.log_std[:, None].expand_as(policy_out)  # (K, M, A)
        log_probs = self.per_head(0, actions, policy_out, log_std)
        return log_probs, gaussian_entropy(log_std)

    @torch.no_grad()
    def copy_into(self, agents: Sequence[ActorCritic]) -> None:
        """Write each member's trained weights into its `ActorCritic`."""
        for k, agent in enumerate(agents):
            for stacked, mlp in (
                (self.actor, agent.actor),
                (self.critic, agent.critic),
            ):
                for i, layer in enumerate(linear_layers(mlp)):
                    layer.weight.copy_(stacked[2 * i][k].T)
                    layer.bias.copy_(stacked[2 * i + 1][k, 0])
            if not self.discrete:
                agent.log_std.copy_(self.log_std[k])


class PopulationAdam:
    """Adam (Kingma & Ba, 2015, in PyTorch's form) over the flat parameters of all
    members, elementwise, with per-member learning rate and ε:

        m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
        θ ← θ − lr_k / (1 − β₁^t_k) · m / (√v / √(1 − β₂^t_k) + ε_k)

    t_k counts member k's steps. A member that is not `active` in a step (its epochs
    stopped at target_kl) keeps θ, m, v and t_k unchanged.
    """

    def __init__(
        self,
        net: PopulationActorCritic,
        eps: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        K = net.num_members
        self.flat = flatten_parameters(net, members=K)  # (K, P); .grad the gradients
        self.m = torch.zeros_like(self.flat)
        self.v = torch.zeros_like(self.flat)
        self.steps = torch.zeros(K, device=self.flat.device)  # (K,) t_k
        self.eps, self.betas = eps[:, None], betas  # eps (K, 1)

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor) -> None:
        """One Adam step of every active member; `lr` (K,) its learning rates."""
        beta1, beta2 = self.betas
        on = active.to(self.flat.dtype)  # (K,)
        g = self.flat.grad  # (K, P)
        self.steps += on
        self.m.lerp_(g, ((1.0 - beta1) * on)[:, None])
        self.v.lerp_(g * g, ((1.0 - beta2) * on)[:, None])
        t = self.steps.clamp(min=1.0)
        step_size = on * lr / (1.0 - beta1**t)  # (K,) 0 for an inactive member
        sqrt_bc2 = torch.sqrt(1.0 - beta2**t)
        denom = (self.v.sqrt() / sqrt_bc2[:, None]).add_(self.eps)
        self.flat.sub_(step_size[:, None] * self.m / denom)


@torch.no_grad()
def clip_member_gradients(adam: PopulationAdam, max_norm: torch.Tensor) -> torch.Tensor:
    """Scale each member's gradient to norm at most `max_norm` (K,) (inf: no
    clipping), with `clip_grad_norm_`'s formula, max_norm / (norm + 1e-6) capped at
    1, applied per member. Returns the norms (K,) before clipping."""
    g = adam.flat.grad  # (K, P)
    norms = torch.linalg.vector_norm(g, dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    g.mul_(scale[:, None])
    return norms
