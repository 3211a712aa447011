"""Lesson 07 (`07_the_full_trainer.ipynb`): storage for one rollout.

A rollout is T steps of N environments. Every tensor is allocated once, on the
training device, with the time axis first; the rollout writes row t at step t. The
buffer only stores: advantages are computed by `ppo_lessons.gae.compute_gae`, a pure
function, from the rows stored here.

Episode ends are stored with the transition they end, and `next_values[t]` holds
V(s_{t+1}) of the observation actually reached (the true final observation where an
episode ended), so nothing downstream needs a `[t + 1]` shift.
"""

from __future__ import annotations

import torch

# what the update of lesson 06 takes: a rollout flattened (re-exported here)
from ppo_lessons.update import Batch

__all__ = ["Batch", "RolloutBuffer"]


class RolloutBuffer:
    """Preallocated (T, N, ...) tensors for one rollout on one device."""

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        discrete: bool,
        device: torch.device | str = "cpu",
    ) -> None:
        T, N = num_steps, num_envs
        action_dtype = torch.int64 if discrete else torch.float32
        self.num_steps, self.num_envs = T, N
        self.obs = torch.zeros((T, N, *obs_shape), device=device)  # (T, N, *O) s_t
        self.actions = torch.zeros(
            (T, N, *action_shape), dtype=action_dtype, device=device
        )  # (T, N) or (T, N, A) a_t
        self.log_probs = torch.zeros((T, N), device=device)  # (T, N) log π_old(a_t|s_t)
        self.rewards = torch.zeros((T, N), device=device)  # (T, N) r_t (scaled if on)
        self.values = torch.zeros((T, N), device=device)  # (T, N) V(s_t)
        # (T, N, *O) normalized observation reached by step t (the true final one
        # where an episode ended), valued in one batch into next_values
        self.reached_obs = torch.zeros((T, N, *obs_shape), device=device)
        self.next_values = torch.zeros((T, N), device=device)  # (T, N) V(s_{t+1})
        self.terminated = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, device=device)

    def flatten(self, advantages: torch.Tensor, returns: torch.Tensor) -> Batch:
        """The rollout and its (T, N) advantages and returns as B = T * N rows."""
        B = self.num_steps * self.num_envs
        return Batch(
            obs=self.obs.reshape(B, *self.obs.shape[2:]),
            actions=self.actions.reshape(B, *self.actions.shape[2:]),
            log_probs=self.log_probs.reshape(B),
            values=self.values.reshape(B),
            advantages=advantages.reshape(B),
            returns=returns.reshape(B),
        )
