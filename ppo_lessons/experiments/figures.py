"""Figures of experiments over seeds (lesson 08): learning curves of variants with
their spread, small panels against a baseline, and the diagnostics of a few runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ppo_lessons.experiments.records import RunRecord
from ppo_lessons.history import HistoryRow
from ppo_lessons.plotting import history_curves, plot_seeds

__all__ = ["DIAGNOSTICS", "plot_ablation", "plot_diagnostics", "plot_variants"]


def plot_variants(
    groups: Mapping[str, Sequence[RunRecord]],
    title: str,
    ax: Axes | None = None,
    ylabel: str = "episodic return (mean of the episodes ending per update)",
) -> Figure:
    """Learning curves of several variants: mean over seeds ± one std band against
    environment steps; the legend says how many seeds each line averages."""
    if not groups:
        raise ValueError("groups is empty: nothing to plot")
    lengths = {len(r.curve) for records in groups.values() for r in records}
    if len(lengths) != 1:
        raise ValueError(
            f"all runs must have the same number of updates, got {sorted(lengths)}"
        )
    steps = next(iter(groups.values()))[0].steps
    curves = {label: np.stack([r.curve for r in rs]) for label, rs in groups.items()}
    return plot_seeds(
        steps, curves, xlabel="environment steps", ylabel=ylabel, title=title, ax=ax
    )


def plot_ablation(
    groups: Mapping[str, Sequence[RunRecord]],
    baseline: str,
    title: str,
    ncols: int = 3,
) -> Figure:
    """One small panel per variant, each against `baseline` (mean ± std over seeds),
    with the same y axis: a figure of many variants that stays readable."""
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not one of {list(groups)}")
    others = [label for label in groups if label != baseline]
    if not others:
        raise ValueError("groups holds only the baseline: nothing to compare")
    nrows = math.ceil(len(others) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    for ax, label in zip(axes.flat, others, strict=False):
        pair = {baseline: groups[baseline], label: groups[label]}
        plot_variants(pair, title=label, ax=ax, ylabel="episodic return")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(others) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


DIAGNOSTICS = (
    ("episodic_return", "episodic return", False),
    ("value_loss", "value loss", True),
    ("explained_variance", "explained variance", False),
    ("approx_kl", "approx KL (nats)", True),
    ("clip_fraction", "clip fraction", False),
    ("entropy", "policy entropy (nats)", False),
)


def plot_diagnostics(runs: Mapping[str, Sequence[HistoryRow]], title: str) -> Figure:
    """The diagnostics of lesson 06 for a few runs (label -> history), one panel per
    metric against environment steps, value loss and KL on log scales."""
    if not runs:
        raise ValueError("runs is empty: nothing to plot")
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.4))
    for ax, (key, label, logy) in zip(axes.flat, DIAGNOSTICS, strict=True):
        for name, history in runs.items():
            steps = [row["step"] for row in history]
            ax.plot(steps, history_curves([history], key)[0], label=f"{name} (1 seed)")
        ax.set(xlabel="environment steps", ylabel=label, title=label)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
