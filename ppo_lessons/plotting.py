"""Plotting helpers shared by the lessons, so notebook cells hold ideas, not boilerplate.

Plots follow the course's rule for figures: labelled axes with units, a title, a
legend, and for results over several seeds the mean with a band (not one lucky seed).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "figure_png",
    "history_curves",
    "mean_and_band",
    "plot_band",
    "plot_seeds",
    "show_frames",
]


def mean_and_band(
    runs: np.ndarray | Sequence[Sequence[float]], band: str = "std"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a band around it.

    Args:
        runs: [S, X] one row per seed.
        band: "std" (mean ± one standard deviation over seeds) or "minmax".

    Returns:
        (mean, low, high), each [X].
    """
    values = np.asarray(runs, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"runs must have shape [S, X], got shape {values.shape}")
    mean = values.mean(axis=0)
    if band == "std":
        spread = values.std(axis=0)
        return mean, mean - spread, mean + spread
    if band == "minmax":
        return mean, values.min(axis=0), values.max(axis=0)
    raise ValueError(f"band must be 'std' or 'minmax', got {band!r}")


def plot_band(
    ax: Axes,
    x: np.ndarray | Sequence[float],
    runs: np.ndarray | Sequence[Sequence[float]],
    label: str,
    band: str = "std",
    color: str | None = None,
) -> None:
    """Draw the mean over seeds of `runs` [S, X] against `x` [X] with a shaded band.

    The legend entry says how many seeds and what the band is (one run has no band).
    """
    values = np.asarray(runs, dtype=float)
    mean, low, high = mean_and_band(values, band)
    what = "± 1 std" if band == "std" else "min-max"
    seeds = "1 seed" if len(values) == 1 else f"{len(values)} seeds, {what}"
    (line,) = ax.plot(x, mean, label=f"{label} ({seeds})", color=color)
    ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())


def history_curves(histories: Sequence[Sequence[Mapping]], key: str) -> np.ndarray:
    """One metric of several training runs as an array [S, U] for `plot_seeds`.

    Args:
        histories: S runs' histories (`TrainResult.history`), each U rows of the same
            length (the same config, other seeds).
        key: a history column, e.g. "episodic_return".

    Returns:
        [S, U] floats. The episodic return is nan for an update in which no episode
        ended; a nan takes the run's last value before it (leading nans stay nan).
    """
    lengths = {len(history) for history in histories}
    if len(lengths) != 1:
        raise ValueError(
            f"histories must all have the same number of updates, got {sorted(lengths)}"
        )
    out = np.array(
        [[row[key] for row in history] for history in histories], dtype=float
    )
    for u in range(1, out.shape[1]):
        out[:, u] = np.where(np.isnan(out[:, u]), out[:, u - 1], out[:, u])
    return out


def plot_seeds(
    x: np.ndarray | Sequence[float],
    curves: Mapping[str, np.ndarray | Sequence[Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    band: str = "std",
    logx: bool = False,
    logy: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """One figure: for each label in `curves`, its runs [S, X] as mean and band."""
    if ax is None:
        _, ax = plt.subplots()
    for label, runs in curves.items():
        plot_band(ax, x, runs, label, band=band)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return ax.figure


def show_frames(
    frames: Sequence[np.ndarray], steps: Sequence[int], title: str
) -> Figure:
    """A strip of RGB frames side by side, each captioned with its time step."""
    if len(frames) != len(steps):
        raise ValueError(
            f"frames and steps must have the same length, got {len(frames)} frames "
            f"and {len(steps)} steps"
        )
    fig, axes = plt.subplots(1, len(frames), figsize=(2.6 * len(frames), 2.4))
    for ax, frame, t in zip(np.atleast_1d(axes), frames, steps, strict=True):
        ax.imshow(frame)
        ax.set_title(f"t = {t}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure) -> str:
    """The figure as a base64 PNG, cropped as the notebook's inline backend crops it.

    What a stored notebook keeps of a live picture (STYLE 17b): the trainer's live
    plot and episode strip (`ppo_lessons.trainer_display`) and the explorers
    (`ppo_lessons.widgets.static`) all store their figure this way.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
