"""Memory (lesson 11, `11_memory.ipynb`): the PPO update of a recurrent policy.

Two things change from lesson 06's update, nothing else:
- a minibatch is a set of whole env sequences (all T steps of some envs, drawn by
  `minibatch_indices` over the N envs), since h_t depends on every step before it;
- the policy's outputs come from replaying the core over each sequence from its stored
  initial state, with resets where episodes started (`replay_sequence`, exercise 11.1).
The replayed hidden states then go through lesson 06's `minibatch_loss` unchanged: the
heads read them as the feed-forward heads read observations.

The ratio-is-one check (`replay_error`): before the first gradient step the policy is
the one that acted, so every log-probability the update recomputes must equal the one
the rollout stored (ratio exactly 1, episode boundaries included). A reset one step
late, a replay from zeros instead of the stored state, swapped axes: each breaks it.
"""

from __future__ import annotations

import torch
from torch import nn

from ppo_lessons.memory.network import RecurrentActorCritic
from ppo_lessons.memory.rollout import SequenceBuffer
from ppo_lessons.update import (
    KL_INDEX,
    MINIBATCH_METRICS,
    Batch,
    UpdateSeam,
    UpdateSettings,
    minibatch_loss,
    references,
)

__all__ = ["recurrent_update", "sequence_minibatch", "sequence_replay_error"]


def sequence_minibatch(
    agent: RecurrentActorCritic,
    buffer: SequenceBuffer,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    envs: torch.Tensor | slice,
) -> Batch:
    """The sequences of `envs` replayed, as a flat `Batch` of T·E rows whose `obs` are
    the replayed hidden states (with gradients), ready for `minibatch_loss`."""
    hidden = agent.replay(
        buffer.obs[:, envs], buffer.starts[:, envs], buffer.initial_hidden[envs]
    )
    rows = hidden.shape[0] * hidden.shape[1]
    actions = buffer.actions[:, envs]
    return Batch(
        obs=hidden.reshape(rows, hidden.shape[-1]),
        actions=actions.reshape(rows, *actions.shape[2:]),
        log_probs=buffer.log_probs[:, envs].reshape(rows),
        values=buffer.values[:, envs].reshape(rows),
        advantages=advantages[:, envs].reshape(rows),
        returns=returns[:, envs].reshape(rows),
    )


@torch.no_grad()
def sequence_replay_error(
    agent: RecurrentActorCritic, buffer: SequenceBuffer
) -> torch.Tensor:
    """The ratio-is-one check of a recurrent policy, a 0-d tensor (no host sync): the
    larger of max |log π_θ(a_t|h_t) replayed − log π stored by the rollout| and max
    |h_t replayed − h_t of the rollout|; ~1e-7 when the replay is right.

    The hidden states are compared too because at the start of training the policy is
    nearly uniform (its output layer's gain is 0.01): a replay that resets one step
    late then moves log π by only ~1e-4, while it moves h by ~0.1."""
    zeros = torch.zeros_like(buffer.values)
    batch = sequence_minibatch(agent, buffer, zeros, zeros, slice(None))
    new_log_probs = agent.log_prob(agent.policy(batch.obs), batch.actions)
    log_prob_error = (new_log_probs - batch.log_probs).abs().max()
    hidden_error = (batch.obs - buffer.hidden.reshape(batch.obs.shape)).abs().max()
    return torch.maximum(log_prob_error, hidden_error)


def recurrent_update(
    agent: RecurrentActorCritic,
    optimizer: torch.optim.Optimizer,
    buffer: SequenceBuffer,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    settings: UpdateSettings,
    generator: torch.Generator | None = None,
    *,
    functions: UpdateSeam | None = None,
) -> dict[str, torch.Tensor]:
    """`update_epochs` passes over the rollout's sequences, env-wise minibatches of
    `settings.minibatch_size // T` envs; metrics as `ppo_lessons.update.ppo_update`,
    `functions` the run's bundle as there (None: the references)."""
    functions = references() if functions is None else functions
    # its twin without memory, line for line: ppo_lessons.update.ppo_update
    # (there the minibatches index transitions; here they index whole env sequences)
    T, N = buffer.num_steps, buffer.num_envs
    envs_per_minibatch = max(1, settings.minibatch_size // T)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    generator = torch.default_generator if generator is None else generator
    epochs_run = 0
    for epoch in range(settings.update_epochs):
        measure = settings.target_kl is not None or epoch == settings.update_epochs - 1
        totals = torch.zeros(len(MINIBATCH_METRICS), device=advantages.device)
        minibatches = functions.minibatch_indices(N, envs_per_minibatch, generator)
        for envs in minibatches:
            batch = sequence_minibatch(agent, buffer, advantages, returns, envs)
            loss, metrics = minibatch_loss(
                agent, batch, slice(None), settings, functions, measure
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
