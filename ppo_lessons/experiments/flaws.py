"""A typical tutorial implementation's flaws (lesson 08), reproduced with the trainer's
pluggable pieces (`train(config, functions={"compute_gae": ...})`, or the update phase):

    compute_gae_truncation_as_termination   the old Gym `done`: a time-limit cut is
                                            treated as a terminal state
    probability_ratio_objective             r = π_new / π_old from probabilities,
                                            not exp(log π_new − log π_old)
    train_critic_first                      advantages from a critic already fitted
                                            to the batch (Schulman et al., 2016)
"""

from __future__ import annotations

import dataclasses

import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.functions import LessonFunctions
from ppo_lessons.gae import compute_gae
from ppo_lessons.rollout import gae_from_buffer, value_rollout
from ppo_lessons.trainer import Run, TrainResult, train
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.update import UpdateSettings, ppo_update

__all__ = [
    "CriticFirstUpdate",
    "compute_gae_truncation_as_termination",
    "probability_ratio_objective",
    "train_critic_first",
    "zero_objective",
]


def compute_gae_truncation_as_termination(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE with the old Gym API's single `done = terminated or truncated`, as a typical
    tutorial implementation computes it: δ_t = r_t + γ (1 − done_t) V(s_{t+1}) − V(s_t). A time-limit
    cut then looks like a terminal state worth 0 afterwards (the flaw Pardo et al.,
    2018, measure). Same signature and shapes as `ppo_lessons.gae.compute_gae`."""
    done = terminated.bool() | truncated.bool()
    return compute_gae(
        rewards, values, next_values, done, torch.zeros_like(done), gamma, lam
    )


def probability_ratio_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """L^CLIP with a typical tutorial's ratio of probabilities,
    r = exp(log π_new) / exp(log π_old), instead of exp(log π_new − log π_old).
    Equal in exact arithmetic; in float32, exp underflows to 0 below a log-density
    of about −103 and overflows to inf above about 88.7, and then r is 0, inf or nan.
    Same signature as `ppo_lessons.clipping.clipped_surrogate_objective`."""
    ratio = torch.exp(new_log_probs) / torch.exp(old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return torch.minimum(ratio * advantages, clipped * advantages).mean()


def zero_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """No policy term: `ppo_update` with it (and ent_coef 0) only fits the critic."""
    return new_log_probs.new_zeros(())


class CriticFirstUpdate:
    """Phases 2-3 of `train` for `train_critic_first`: fit the critic to the batch,
    then step the policy (separate Adam optimizers for the two networks, made at the
    first update, so a critic-only step cannot move the actor through Adam's momentum
    and the other way round)."""

    def __init__(self, advantages_from: str) -> None:
        self.advantages_from = advantages_from
        self.critic_optimizer: torch.optim.Optimizer | None = None

    def split_optimizers(self, run: Run) -> torch.optim.Optimizer:
        agent, config = run.agent, run.config
        critic_ids = {id(p) for p in agent.critic.parameters()}
        actor_params = [p for p in agent.parameters() if id(p) not in critic_ids]
        adam = dict(lr=config.learning_rate, eps=config.adam_eps)
        run.optimizer = torch.optim.Adam(actor_params, **adam)
        return torch.optim.Adam(agent.critic.parameters(), **adam)

    def __call__(
        self, run: Run, buffer: RolloutBuffer, settings: UpdateSettings
    ) -> tuple[dict, torch.Tensor]:
        if self.critic_optimizer is None:
            self.critic_optimizer = self.split_optimizers(run)
        # the critic's learning rate follows the actor's (annealed) one
        self.critic_optimizer.param_groups[0]["lr"] = run.optimizer.param_groups[0][
            "lr"
        ]
        config = run.config
        critic_only = dataclasses.replace(settings, ent_coef=0.0, target_kl=None)
        policy_only = dataclasses.replace(settings, vf_coef=0.0)
        # from the collection-time values
        advantages, returns = gae_from_buffer(buffer, config.gamma, config.gae_lambda)
        fit = ppo_update(
            run.agent, self.critic_optimizer, buffer.flatten(advantages, returns),
            critic_only, run.generator,
            functions=LessonFunctions(clipped_surrogate_objective=zero_objective),
        )  # fmt: skip
        if self.advantages_from == "updated":
            collected_values = buffer.values.clone()
            value_rollout(run.agent, buffer)  # V of the critic just fitted
            advantages, _ = gae_from_buffer(buffer, config.gamma, config.gae_lambda)
            buffer.values.copy_(collected_values)  # logged explained variance as usual
        metrics = ppo_update(
            run.agent, run.optimizer, buffer.flatten(advantages, returns), policy_only,
            run.generator,
        )  # fmt: skip
        metrics["value_loss"] = fit["value_loss"]
        return metrics, returns


def train_critic_first(
    config: PPOConfig,
    *,
    advantages_from: str = "updated",
    progress: bool = False,
) -> TrainResult:
    """PPO that fits the critic to each batch before the policy step (separate Adam
    optimizers for the two networks), built from the trainer's own phases.

    Per update: collect a rollout; GAE with the values stored at collection gives the
    critic's targets; `update_epochs` epochs fit the critic alone; then the policy
    takes its epochs on advantages computed either

        advantages_from="collected": from the values stored at collection (correct:
            fitting the critic does not change the advantages), or
        advantages_from="updated": from the critic just fitted to this very batch
            (a typical tutorial's flaw: V already knows the returns it is subtracted from, so
            the advantages shrink towards 0 and lose their signal; Schulman et al.,
            2016, Algorithm 1, warn against it).

    Needs `shared_network=False`. `train` with the update phase replaced
    (`CriticFirstUpdate`); returns its `TrainResult`.
    """
    if advantages_from not in ("collected", "updated"):
        raise ValueError(
            f"advantages_from must be 'collected' or 'updated', got {advantages_from!r}"
        )
    if config.shared_network:
        raise ValueError("train_critic_first needs shared_network=False")
    return train(config, progress=progress, update=CriticFirstUpdate(advantages_from))
