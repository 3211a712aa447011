"""The trainer's metric history: one typed row per update.

`train` appends one `HistoryRow` per update to `TrainResult.history`; the doctor,
`LivePlot`, `ppo_lessons.experiments` and the CLI read rows by these names, and
`METRIC_NAMES` lists them once, in the order a row holds them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["LOSS_METRICS", "METRIC_NAMES", "HistoryRow", "history_row"]


class HistoryRow(TypedDict):
    """The metrics of one update (Python numbers; nan where undefined)."""

    step: int  # environment steps so far (all envs)
    update: int  # 1, 2, ...
    episodic_return: float  # mean undiscounted return of the episodes that ended
    episodic_length: float  # their mean length
    episodes: int  # how many ended in this update's rollout
    policy_loss: float  # −L^CLIP, last epoch's minibatch mean
    value_loss: float  # L^V
    entropy: float  # mean H[π]
    approx_kl: float  # KL(π_old ‖ π_new) estimate
    clip_fraction: float  # share of samples with |r − 1| > clip_coef
    epochs: int  # epochs run (fewer than update_epochs after a target_kl stop)
    explained_variance: float  # of the returns by the rollout's values
    value_mean: float  # mean V(s_t) the critic predicted over the rollout
    learning_rate: float
    steps_per_second: float  # this update's wall clock, rollout to log
    # max |log π recomputed by the update − log π stored by the rollout| before the
    # first gradient step (with memory: also |h replayed − h acting|): ~0 (ratio 1)
    # when the update replays the acting policy
    replay_error: float


METRIC_NAMES: tuple[str, ...] = tuple(HistoryRow.__annotations__)
# the metrics whose nan or inf means the run diverged
LOSS_METRICS: tuple[str, ...] = ("policy_loss", "value_loss", "entropy", "approx_kl")


def history_row(
    step: int,
    update: int,
    episode_returns: torch.Tensor | np.ndarray,
    episode_lengths: torch.Tensor | np.ndarray,
    numbers: Mapping[str, float],
    learning_rate: float,
    steps_per_second: float,
) -> HistoryRow:
    """The row of one update (one agent, or one member of a population):
    `episode_returns` and `episode_lengths` are the episodes that ended (arrays),
    `numbers` the update's metrics by name (the `MINIBATCH_METRICS` of
    `ppo_lessons.update`, `epochs`, `explained_variance`, `value_mean`, and
    `replay_error` where it was measured)."""
    ended = len(episode_returns)
    return HistoryRow(
        step=step,
        update=update,
        episodic_return=float(episode_returns.mean()) if ended else math.nan,
        episodic_length=float(episode_lengths.mean()) if ended else math.nan,
        episodes=ended,
        policy_loss=float(numbers["policy_loss"]),
        value_loss=float(numbers["value_loss"]),
        entropy=float(numbers["entropy"]),
        approx_kl=float(numbers["approx_kl"]),
        clip_fraction=float(numbers["clip_fraction"]),
        epochs=int(numbers["epochs"]),
        explained_variance=float(numbers["explained_variance"]),
        value_mean=float(numbers["value_mean"]),
        learning_rate=learning_rate,
        steps_per_second=steps_per_second,
        replay_error=float(numbers.get("replay_error", math.nan)),
    )
