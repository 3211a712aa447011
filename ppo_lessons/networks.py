"""Lesson 05 (`05_actor_critic_networks.ipynb`): policies and value functions.

A PPO agent is two functions of the observation: a policy π_θ(a|s), from which actions
are sampled and whose log-probabilities and entropy enter the update, and a value
function V_φ(s), the critic that GAE bootstraps from.

    Discrete actions:  π(a|s) = softmax(logits(s))_a                  (Categorical)
    Box actions:       π(a|s) = N(a; μ(s), diag(σ)²), σ = exp(log_std) (diagonal Gaussian)

The log-probability and entropy are written out here (`gaussian_log_prob`,
`categorical_entropy`) instead of calling `torch.distributions`: they are the lesson's
equations, and skipping the distribution objects also saves time per step.

The actor and the critic are two separate MLPs (`actor_critic_networks`, Exercise 5.3),
initialized orthogonally (Saxe et al., 2014) with zero biases and gain √2 for hidden
layers, 0.01 for the policy output and 1 for the value output: the gains of OpenAI
Baselines' PPO (Huang et al., 2022, detail 2). The small policy gain makes the first
policy nearly uniform; Andrychowicz et al. (2021) found a policy output layer 100
times smaller than usual among the choices that matter most. `ActorCritic` wraps them
with the distribution: for Box actions it holds the state-independent log σ itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ppo_lessons.normalize import RunningMeanStd
from ppo_lessons.validate import require_float_tensor, require_same_device

__all__ = [
    "ActorCritic",
    "actor_critic_networks",
    "categorical_entropy",
    "categorical_log_prob",
    "gaussian_entropy",
    "gaussian_log_prob",
    "layer_init",
    "tanh_log_det_jacobian",
]

LOG_2PI = math.log(2.0 * math.pi)

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def gaussian_log_prob(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """Log-density of a diagonal Gaussian, summed over the action axis.

        log N(a; μ, diag(σ)²) = Σ_a [ −½ ((a − μ)/σ)² − log σ − ½ log(2π) ],  σ = exp(log_std)

    The dimensions are independent, so their log-densities add.

    Args:
        actions: [..., A] the actions a.
        mean: [..., A] the means μ.
        log_std: [A] (one σ per dimension, shared by the batch) or [..., A].

    Returns:
        [...] one log-probability per action vector (the batch shape of `mean`).
    """
    actions = require_float_tensor("actions", actions)
    mean = require_float_tensor("mean", mean)
    log_std = require_float_tensor("log_std", log_std)
    require_same_device({"actions": actions, "mean": mean, "log_std": log_std})
    if actions.shape != mean.shape or mean.dim() < 1:
        raise ValueError(
            f"actions has shape {list(actions.shape)} and mean has shape "
            f"{list(mean.shape)}; both must be [..., A] with the same shape"
        )
    if log_std.dim() < 1 or log_std.shape[-1] != mean.shape[-1]:
        raise ValueError(
            f"log_std has shape {list(log_std.shape)}; it must be [A] or [..., A] "
            f"with A = {mean.shape[-1]} (the last axis of mean)"
        )
    z = (actions - mean) * torch.exp(-log_std)  # (..., A) standardized actions
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian, H = Σ_a [ log σ_a + ½ log(2πe) ].

    Args:
        log_std: [A] or [..., A].

    Returns:
        [] or [...] one entropy per distribution (it does not depend on the mean).
    """
    log_std = require_float_tensor("log_std", log_std)
    return (log_std + 0.5 * (LOG_2PI + 1.0)).sum(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of a Categorical distribution given unnormalized logits.

        p = softmax(logits),   H = −Σ_a p_a log p_a

    log p comes from `log_softmax` (finite for any finite logits) and 0 · log 0 counts
    as 0, so the result stays finite and correct at logits of ±1e4.

    Args:
        logits: [..., K] unnormalized log-probabilities of K actions.

    Returns:
        [...] one entropy per distribution (the last axis is summed out).
    """
    logits = require_float_tensor("logits", logits)
    if logits.dim() < 1:
        raise ValueError(
            "logits must have at least one axis (the actions), got a scalar"
        )
    log_p = torch.log_softmax(logits, dim=-1)  # (..., K) finite log p_a
    return -(log_p.exp() * log_p).sum(-1)


def tanh_log_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """Σ_a log(1 − tanh²(u_a)): the log |det ∂a/∂u| of squashing a = tanh(u).

    A squashed sample has log π(a|s) = log N(u; μ, σ²) − Σ_a log(1 − tanh²(u_a))
    (Haarnoja et al., 2018, appendix C; derived in lesson 05). Computed as
    2 (log 2 − u − softplus(−2u)), which stays finite where tanh(u) rounds to ±1.

    Args:
        pre_tanh: [..., A] the Gaussian samples u before squashing.

    Returns:
        [...] summed over the last (action) axis.
    """
    pre_tanh = require_float_tensor("pre_tanh", pre_tanh)
    u = pre_tanh
    return (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log π(a|s) = log_softmax(logits)_a for integer actions.

    Args:
        logits: [..., K] unnormalized log-probabilities.
        actions: [...] integer action indices in [0, K).

    Returns:
        [...] the log-probability of each action.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def layer_init(layer: nn.Linear, gain: float, ortho_init: bool = True) -> nn.Linear:
    """Orthogonal weights scaled by `gain` and zero biases (when `ortho_init`); else
    PyTorch's default initialization is kept."""
    if ortho_init:
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


def mlp(
    sizes: Sequence[int], activation: str, out_gain: float, ortho_init: bool
) -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them (and after the
    last one only if `out_gain` is None, i.e. when this is a trunk)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        gain = out_gain if last else math.sqrt(2.0)
        layers.append(layer_init(nn.Linear(n_in, n_out), gain, ortho_init))
        if not last:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def actor_critic_networks(
    obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str
) -> tuple[nn.Module, nn.Module]:
    """The actor and the critic of PPO, two separate MLPs (Exercise 5.3).

        actor:  [..., obs_dim] -> [..., action_dim]   logits z(s) (Categorical) or
                                                       means μ(s) (diagonal Gaussian)
        critic: [..., obs_dim] -> [..., 1]            V(s)

    Each is `nn.Linear` layers of sizes obs_dim → hidden_sizes[0] → … →
    hidden_sizes[-1] → output, with `activation` ("tanh": nn.Tanh, "relu": nn.ReLU)
    between consecutive layers and none after the last (the output is a raw logit,
    mean or value). Every layer is initialized orthogonally, W ← g·Q (all singular
    values of W equal g), with a zero bias: g = √2 for the hidden layers, 0.01 for the
    actor's output layer, 1 for the critic's. The two share no parameter, and all
    weights are drawn from torch's global generator (`torch.manual_seed` fixes them).

    Args:
        obs_dim: the length of an observation.
        action_dim: K actions (Categorical) or A action dimensions (Gaussian).
        hidden_sizes: the widths of the hidden layers, e.g. (64, 64).
        activation: "tanh" or "relu".

    Returns:
        (actor, critic), two `nn.Module`s.
    """
    actor = mlp([obs_dim, *hidden_sizes, action_dim], activation, 0.01, True)
    critic = mlp([obs_dim, *hidden_sizes, 1], activation, 1.0, True)
    return actor, critic


def linear_layers(module: nn.Module) -> list[nn.Linear]:
    """The `nn.Linear` layers of `module`, in the order they were registered."""
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


NetworksFn = Callable[[int, int, Sequence[int], str], tuple[nn.Module, nn.Module]]


def build_networks(
    networks: NetworksFn,
    obs_dim: int,
    action_dim: int,
    hidden_sizes: Sequence[int],
    activation: str,
    ortho_init: bool,
) -> tuple[nn.Module, nn.Module]:
    """(actor, critic) from `networks`; with `ortho_init=False` each of their linear
    layers is reset to PyTorch's default initialization, drawing the same random
    numbers as freshly created layers would (the networks' own init is drawn from a
    forked generator and discarded)."""
    args = (obs_dim, action_dim, tuple(hidden_sizes), activation)
    with torch.random.fork_rng(devices=[], enabled=not ortho_init):
        pair = networks(*args)
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise ValueError(
            f"the networks function must return (actor, critic), got {type(pair).__name__}"
        )
    actor, critic = pair
    for name, net in (("actor", actor), ("critic", critic)):
        if not isinstance(net, nn.Module) or not linear_layers(net):
            raise ValueError(
                f"the networks function must return (actor, critic), two nn.Modules "
                f"built of nn.Linear layers; its {name} is {type(net).__name__}"
            )
    if not ortho_init:
        for layer in linear_layers(actor) + linear_layers(critic):
            layer.reset_parameters()
    return actor, critic


class ActorCritic(nn.Module):
    """Policy and value networks for Box observations and Discrete or Box actions.

    `shared=False` (the default in the trainer) gives two separate MLPs, built by
    `networks` (`actor_critic_networks`, or a student's own of Exercise 5.3 with its
    contract); `shared=True` one trunk with a policy head and a value head (then the
    value loss also shapes the policy's features, so `vf_coef` matters more). With
    `ortho_init=False` every `nn.Linear` of the networks gets PyTorch's default
    initialization instead, drawn as if the layers had just been created (the
    ablation of lesson 08). Observation normalization lives in
    the agent (`obs_rms`), so a saved agent carries its statistics; they change only
    through `obs_rms.update`, which only the trainer calls. log π(a|s) of Box actions
    and the entropy of Categorical policies are computed with `gaussian_log_prob` and
    `categorical_entropy` (exercises 5.1 and 5.2; a student's own when the trainer
    makes the agent with them, `make_agent`).

    Attributes:
        discrete: True for a Categorical policy, False for a diagonal Gaussian.
        action_dim: K actions (discrete) or A action dimensions (Box).
        log_std: [A] state-independent log σ (Box actions only).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        shared: bool = False,
        ortho_init: bool = True,
        init_log_std: float = 0.0,
        init_value: float = 0.0,
        norm_obs: bool = False,
        squash_to: tuple[Sequence[float], Sequence[float]] | None = None,
        networks: NetworksFn = actor_critic_networks,
        *,
        gaussian_log_prob: Callable[..., torch.Tensor] = gaussian_log_prob,
        categorical_entropy: Callable[[torch.Tensor], torch.Tensor] = (
            categorical_entropy
        ),
    ) -> None:
        super().__init__()
        self.discrete = discrete
        self.action_dim = action_dim
        self.shared = shared
        hidden = list(hidden_sizes)
        if shared and networks is not actor_critic_networks:
            raise ValueError(
                "shared=True builds one trunk with two heads; a networks function "
                "builds a separate actor and critic: use shared=False with it"
            )
        if shared:
            trunk = mlp([obs_dim, *hidden], activation, math.sqrt(2.0), ortho_init)
            trunk.append(ACTIVATIONS[activation]())  # features end in an activation
            self.trunk = trunk
            self.actor = layer_init(nn.Linear(hidden[-1], action_dim), 0.01, ortho_init)
            self.critic = layer_init(nn.Linear(hidden[-1], 1), 1.0, ortho_init)
        else:
            self.trunk = nn.Identity()
            self.actor, self.critic = build_networks(
                networks, obs_dim, action_dim, hidden, activation, ortho_init
            )
        with torch.no_grad():  # the value the critic predicts before any training
            linear_layers(self.critic)[-1].bias.fill_(float(init_value))
        if not discrete:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))
        self.obs_rms = RunningMeanStd((obs_dim,)) if norm_obs else None
        # the lesson functions behind log π and H (exercises 5.1 and 5.2; a
        # student's own through `train(functions=...)`, given when the agent is made)
        self.gaussian_log_prob = gaussian_log_prob
        self.categorical_entropy = categorical_entropy
        self.squash = squash_to is not None
        if self.squash:
            if discrete:
                raise ValueError("squash_to is only for Box actions (discrete=False)")
            low, high = (torch.as_tensor(b, dtype=torch.float32) for b in squash_to)
            if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
                raise ValueError(
                    f"squash_to needs finite action bounds, got low={low.tolist()}, "
                    f"high={high.tolist()}"
                )
            self.register_buffer("action_scale", (high - low) / 2.0)  # (A,)
            self.register_buffer("action_bias", (high + low) / 2.0)  # (A,)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations standardized with the frozen running statistics (if any)."""
        return obs if self.obs_rms is None else self.obs_rms.normalize(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s): [M, *O] normalized observations -> [M] values."""
        return self.critic(self.trunk(obs)).squeeze(-1)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy output alone ([M, K] logits or [M, A] means) for [M, *O]
        normalized observations."""
        return self.actor(self.trunk(obs))

    def policy_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy output, V(s)) for [M, *O] normalized observations: the policy output
        is [M, K] logits (discrete) or [M, A] means (Box); values are [M]."""
        features = self.trunk(obs)
        return self.actor(features), self.critic(features).squeeze(-1)

    def log_prob(self, policy_out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π(a|s), [M], for the policy output of `policy_and_value`."""
        if self.discrete:
            return categorical_log_prob(policy_out, actions)
        return self._gaussian_log_prob(actions, policy_out)

    def log_prob_entropy(
        self, policy_out: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(a|s), H[π(·|s)]), each [M], for the policy output of `policy_and_value`."""
        if self.discrete:
            entropy = self.categorical_entropy(policy_out)
        else:
            entropy = gaussian_entropy(self.log_std.expand_as(policy_out))
        return self.log_prob(policy_out, actions), entropy

    def _gaussian_log_prob(
        self, actions: torch.Tensor, mean: torch.Tensor
    ) -> torch.Tensor:
        """log π(a|s) of stored Box actions; with squashing the stored action is the
        Gaussian sample u, and the density of a = bias + scale · tanh(u) is
        N(u) / (∏ scale · ∏ (1 − tanh² u)). The correction does not depend on θ, so it
        cancels in the ratio; it makes the logged log-probs those of the env's action.
        """
        log_prob = self.gaussian_log_prob(actions, mean, self.log_std)
        if self.squash:
            log_prob = log_prob - tanh_log_det_jacobian(actions)
            log_prob = log_prob - self.action_scale.log().sum()
        return log_prob

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """The action the env receives for a stored action: bias + scale · tanh(u)
        when squashing, else the action itself (clipped later, for the env only)."""
        if not self.squash:
            return actions
        return self.action_bias + self.action_scale * torch.tanh(actions)

    def sample(
        self,
        policy_out: torch.Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions, log π(a|s)): sampled, or the mode when `deterministic`.

        Box actions are NOT clipped here: the log-probability must be that of the
        sampled action; clipping to the action bounds happens only when the action
        is sent to the environment.
        """
        if self.discrete:
            if deterministic:
                actions = policy_out.argmax(-1)
            else:
                probs = torch.softmax(policy_out, dim=-1)
                actions = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            return actions, categorical_log_prob(policy_out, actions)
        actions = policy_out
        if not deterministic:
            noise = torch.randn(
                policy_out.shape,
                generator=generator,
                device=policy_out.device,
                dtype=policy_out.dtype,
            )
            actions = policy_out + self.log_std.exp() * noise
        return actions, self._gaussian_log_prob(actions, policy_out)

    def acting(self, deterministic: bool = True) -> Callable[..., torch.Tensor]:
        """A policy for playing episodes: policy(raw_obs [N, *O], starts [N] bool) ->
        env actions. `starts` (where an episode begins) matters to a policy with
        memory (`ppo_lessons.memory.RecurrentActorCritic`); this one ignores it."""
        return lambda raw_obs, starts: self.act(raw_obs, deterministic)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Env actions for [N, *O] raw observations (normalized with frozen
        statistics; squashed into the bounds when the agent squashes)."""
        policy_out, _ = self.policy_and_value(self.normalize(obs))
        return self.to_env(self.sample(policy_out, deterministic=deterministic)[0])
