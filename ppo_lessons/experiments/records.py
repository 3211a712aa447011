"""Records of training runs: one `RunRecord` per run (seed, steps, wall time, final
return, learning curve), as the lessons' tables and figures need it (lesson 08).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ppo_lessons.history import HistoryRow
from ppo_lessons.plotting import history_curves
from ppo_lessons.population import Member, PopulationResult
from ppo_lessons.trainer import TrainResult

__all__ = ["METRICS", "RunRecord", "describe_runs", "record_run"]

METRICS = ("final_return", "mean_return")


@dataclass(frozen=True)
class RunRecord:
    """One training run, as the lesson's tables and figures need it.

    `curve` [U] is the episodic return logged at each update (the last value carried
    over updates where no episode ended); `steps` [U] the environment steps at each
    update. `final_return` is the mean of `curve` over the last `final_fraction` of
    the updates (the level the run ended at); `mean_return` its mean over all updates
    (the area under the learning curve: how fast it got there), skipping the updates
    before the first episode ended. Either is nan if no episode ended at all.
    """

    label: str
    seed: int
    total_steps: int
    wall_seconds: float  # in a population: its wall time divided by its members
    final_return: float
    mean_return: float
    first_step_solved: int | None
    steps: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    history: list[HistoryRow] = field(repr=False)
    population: int = 1  # the members of the population the run trained in


def record_run(
    result: TrainResult | PopulationResult,
    label: str = "",
    final_fraction: float = 0.1,
    member: Member | None = None,
) -> RunRecord:
    """A `RunRecord` of a finished run: `train`'s result, or one `member` of a
    `train_population` result."""
    if not 0.0 < final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in (0, 1], got {final_fraction!r}")
    run = result if member is None else member  # history, config, first_step_solved
    history = run.history
    if not history:
        raise ValueError("the run has no updates: total_steps < one rollout?")
    curve = history_curves([history], "episodic_return")[0]  # (U,)
    tail = curve[-max(1, math.ceil(final_fraction * len(curve))) :]
    size = 1 if member is None else len(result.members)
    return RunRecord(
        label=label,
        seed=run.config.seed,
        total_steps=result.global_step,
        wall_seconds=result.wall_seconds / size,
        final_return=float(np.nanmean(tail)) if np.isfinite(tail).any() else math.nan,
        mean_return=float(np.nanmean(curve)) if np.isfinite(curve).any() else math.nan,
        first_step_solved=run.first_step_solved,
        steps=np.array([row["step"] for row in history]),
        curve=curve,
        history=history,
        population=size,
    )


def describe_runs(records: Sequence[RunRecord]) -> str:
    """'5 seeds (1-5) × 60,000 steps, 4.1 s per run' for a list of records."""
    seeds = [r.seed for r in records]
    steps = sorted({r.total_steps for r in records})
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    steps_text = " or ".join(f"{s:,}" for s in steps)
    per_run = float(np.mean([r.wall_seconds for r in records]))
    word = "seed" if len(seeds) == 1 else "seeds"
    size = max(r.population for r in records)
    each = "per run" if size == 1 else f"per member of a population of {size}"
    return f"{len(seeds)} {word} ({span}) × {steps_text} steps, {per_run:.1f} s {each}"
