"""Running statistics for observation normalization and reward scaling.

Both follow what Stable-Baselines3's `VecNormalize` and CleanRL's wrappers do
(Engstrom et al., 2020, "Implementation Matters in Deep RL"; Andrychowicz et al., 2021):

    observation:  (o − μ_o) / √(σ²_o + ε), clipped to ±10
    reward:       r / √(σ²_G + ε), clipped to ±10, where σ²_G is the running variance
                  of the discounted return G ← γ G + r (reset at every episode end)

The statistics are module buffers, so they travel with the agent's `state_dict` into a
checkpoint. They change only through `update`, which only the trainer's rollout calls:
evaluation and a loaded agent use them frozen.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CLIP", "EPSILON", "RewardScaler", "RunningMeanStd"]

EPSILON = 1e-8
CLIP = 10.0  # SB3 VecNormalize's clip_obs and clip_reward defaults


class RunningMeanStd(nn.Module):
    """Mean and variance of a stream of batches (Chan et al., 1979, parallel update).

    Buffers (float64 for a long stream): `mean` and `var` of shape `shape`, `count` [].
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        # a tiny prior count, as in SB3, so the first update is not a division by zero
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Fold a batch [N, *shape] into the statistics."""
        batch = batch.to(torch.float64)
        batch_mean = batch.mean(0)
        batch_var = batch.var(0, unbiased=False)
        batch_count = batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = (
            self.var * self.count
            + batch_var * batch_count
            + delta.pow(2) * self.count * batch_count / total
        )
        self.mean += delta * batch_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x − mean) / √(var + ε), clipped to ±CLIP, in the dtype of `x`."""
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var + EPSILON).to(x.dtype)
        return torch.clamp((x - mean) / std, -CLIP, CLIP)


class RewardScaler(nn.Module):
    """Divides rewards by the running standard deviation of the discounted return.

    Buffers: `returns` [N] (the discounted return G of each env's current episode) and
    the statistics `rms` of G. With a member axis (a population of K agents),
    `gamma` is a (K,) tensor of the members' γ: `returns` is [N, K] and `rms` keeps
    each member's statistics (K,).
    """

    def __init__(self, num_envs: int, gamma: float | torch.Tensor) -> None:
        super().__init__()
        members = tuple(gamma.shape) if isinstance(gamma, torch.Tensor) else ()
        if members:
            self.register_buffer("gamma", gamma.to(torch.float64))
        else:
            self.gamma = gamma
        self.rms = RunningMeanStd(members)
        self.register_buffer(
            "returns", torch.zeros((num_envs, *members), dtype=torch.float64)
        )

    @torch.no_grad()
    def scale(self, rewards: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Update the statistics with this step's rewards [N] (or [N, K]) and return
        them scaled; `done`, the same shape, marks envs whose episode ended at this
        step."""
        self.returns.mul_(self.gamma).add_(rewards.to(torch.float64))
        self.rms.update(self.returns)
        scaled = rewards / torch.sqrt(self.rms.var + EPSILON).to(rewards.dtype)
        self.returns.masked_fill_(done, 0.0)
        return torch.clamp(scaled, -CLIP, CLIP)
