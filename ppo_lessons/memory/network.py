"""Memory (lesson 11, `11_memory.ipynb`): an actor-critic with memory.

    obs_t ──encoder──▶ x_t ──GRU cell──▶ h_t ──▶ actor head: logits or means
                                 ▲        └───▶ critic head: V
                              h_{t-1} (zeros where an episode starts)

The encoder is an MLP (`hidden_sizes`, the activation after every layer); its last
width is also the size H of the hidden state. The heads are lesson 05's actor and critic
(`actor_critic_networks`, Exercise 5.3) with no hidden layer, reading h_t instead of the
observation: so everything of `ActorCritic` that starts from the policy output (the
distributions, sampling, log π, entropy, squashing) is the same code. The policy and
the critic share the encoder and the core (as CleanRL's `ppo_atari_lstm.py`); Stable-
Baselines3's RecurrentPPO gives the critic its own LSTM by default.

`ActorCritic`'s `policy`, `value` and `policy_and_value` here take hidden states
[M, H], not observations: the rollout steps the core (`step`), the update replays it
(`replay`, built on `replay_sequence`, Exercise 11.1), and both pass h to the heads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ppo_lessons.memory.replay import Core, replay_sequence, reset_where
from ppo_lessons.networks import (
    ACTIVATIONS,
    ActorCritic,
    NetworksFn,
    actor_critic_networks,
    categorical_entropy,
    gaussian_log_prob,
    mlp,
)
from ppo_lessons.normalize import RunningMeanStd

__all__ = ["FrameStackActorCritic", "RecurrentActorCritic", "ShiftRegister"]

ReplayFn = Callable[
    [Core, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]


class RecurrentActorCritic(ActorCritic):
    """Encoder, GRU cell and lesson 05's two heads (see the module's picture).

    Attributes:
        encoder: [..., obs_dim] -> [..., H] features x_t.
        core: `nn.GRUCell(H, H)`, called as core(x_t, h) -> h_next.
        hidden_size: H.
        replay_fn: the function the update replays sequences with (the contract of
            `replay_sequence`; a student's own through `train(functions=...)`).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "tanh",
        ortho_init: bool = True,
        init_log_std: float = 0.0,
        init_value: float = 0.0,
        norm_obs: bool = False,
        squash_to: tuple[Sequence[float], Sequence[float]] | None = None,
        networks: NetworksFn = actor_critic_networks,
        replay_fn: ReplayFn = replay_sequence,
        gaussian_log_prob: Callable[..., torch.Tensor] = gaussian_log_prob,
        categorical_entropy: Callable[..., torch.Tensor] = categorical_entropy,
    ) -> None:
        hidden = list(hidden_sizes)
        size = hidden[-1]
        super().__init__(  # the heads: no hidden layer, from h_t
            obs_dim=size,
            action_dim=action_dim,
            discrete=discrete,
            hidden_sizes=(),
            activation=activation,
            ortho_init=ortho_init,
            init_log_std=init_log_std,
            init_value=init_value,
            squash_to=squash_to,
            networks=networks,
            gaussian_log_prob=gaussian_log_prob,
            categorical_entropy=categorical_entropy,
        )
        encoder = mlp([obs_dim, *hidden], activation, math.sqrt(2.0), ortho_init)
        encoder.append(ACTIVATIONS[activation]())
        self.encoder = encoder
        self.core = nn.GRUCell(size, size)
        if ortho_init:  # as CleanRL's LSTM: orthogonal weights, zero biases
            for name, param in self.core.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(param, 1.0)
                else:
                    nn.init.zeros_(param)
        self.hidden_size = size
        self.obs_rms = RunningMeanStd((obs_dim,)) if norm_obs else None
        self.replay_fn = replay_fn

    def initial_state(self, num_envs: int) -> torch.Tensor:
        """[num_envs, H] zeros on the agent's device: the memory of a fresh episode."""
        device = next(self.parameters()).device
        return torch.zeros(num_envs, self.hidden_size, device=device)

    def step(
        self, obs: torch.Tensor, hidden: torch.Tensor, starts: torch.Tensor
    ) -> torch.Tensor:
        """One step while acting: h_t = core(encoder(obs_t), h_{t-1} reset where
        `starts`), for [N, *O] normalized observations, [N, H], [N] bool."""
        return self.core(self.encoder(obs), reset_where(hidden, starts))

    def replay(
        self, obs: torch.Tensor, starts: torch.Tensor, initial_hidden: torch.Tensor
    ) -> torch.Tensor:
        """[T, N, H] the hidden states of a stored sequence ([T, N, *O] normalized
        observations, [T, N] starts, [N, H] initial state), with gradients: the
        encoder on every step at once, then `replay_fn` through time."""
        outputs, _ = self.replay_fn(
            self.core, self.encoder(obs), starts, initial_hidden
        )
        return outputs

    def acting(self, deterministic: bool = True) -> Callable[..., torch.Tensor]:
        """A policy that remembers: policy(raw_obs [N, *O], starts [N] bool) -> env
        actions, keeping each env's hidden state between calls (reset where starts)."""
        memory: list[torch.Tensor] = []

        @torch.no_grad()
        def policy(raw_obs: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
            if not memory:
                memory.append(self.initial_state(raw_obs.shape[0]))
            memory[0] = self.step(self.normalize(raw_obs), memory[0], starts)
            actions, _ = self.sample(
                self.policy(memory[0]), deterministic=deterministic
            )
            return self.to_env(actions)

        return policy

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        raise TypeError(
            "a recurrent policy needs its memory to act: use agent.acting() (a policy "
            "that keeps the hidden state between calls), e.g. "
            "policy = agent.acting(); actions = policy(obs, starts)"
        )


class ShiftRegister(nn.Module):
    """Frame stacking as a recurrent core with a fixed memory: h holds the last k
    observations, newest first, [N, k·O]; core(x_t, h) = [x_t, h without its oldest]
    (no parameters). Zeros where an episode starts: zero padding before its first."""

    def __init__(self, obs_dim: int, frames: int) -> None:
        super().__init__()
        self.obs_dim, self.frames = obs_dim, frames

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, hidden[:, : (self.frames - 1) * self.obs_dim]], dim=-1)


class FrameStackActorCritic(RecurrentActorCritic):
    """A feed-forward policy on the last `frames` observations (frame stacking, Mnih
    et al., 2015): lesson 05's actor and critic (with `hidden_sizes`) read the stack
    h_t = [o_t, o_{t−1}, …, o_{t−k+1}] kept by a `ShiftRegister`, so the rollout, the
    replay and the ratio-is-one check are those of the recurrent policy."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        frames: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        ortho_init: bool = True,
        init_log_std: float = 0.0,
        init_value: float = 0.0,
        norm_obs: bool = False,
        squash_to: tuple[Sequence[float], Sequence[float]] | None = None,
        networks: NetworksFn = actor_critic_networks,
        replay_fn: ReplayFn = replay_sequence,
        gaussian_log_prob: Callable[..., torch.Tensor] = gaussian_log_prob,
        categorical_entropy: Callable[..., torch.Tensor] = categorical_entropy,
    ) -> None:
        ActorCritic.__init__(
            self,
            obs_dim=frames * obs_dim,
            action_dim=action_dim,
            discrete=discrete,
            hidden_sizes=hidden_sizes,
            activation=activation,
            ortho_init=ortho_init,
            init_log_std=init_log_std,
            init_value=init_value,
            squash_to=squash_to,
            networks=networks,
            gaussian_log_prob=gaussian_log_prob,
            categorical_entropy=categorical_entropy,
        )
        self.encoder = nn.Identity()
        self.core = ShiftRegister(obs_dim, frames)
        self.hidden_size = frames * obs_dim
        self.obs_rms = RunningMeanStd((obs_dim,)) if norm_obs else None
        self.replay_fn = replay_fn
