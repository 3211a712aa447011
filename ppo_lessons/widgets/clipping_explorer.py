"""Lesson 03's clipping explorer: the clipped surrogate and its gradient, per sample.

For one sample with probability ratio r and advantage A, PPO's objective is

    L^CLIP(r) = min( r A, clip(r, 1 − ε, 1 + ε) A )          (Schulman et al., 2017)

The explorer draws L^CLIP next to the unclipped surrogate r A for a grid of ratios,
shades the trust interval [1 − ε, 1 + ε], and draws dL^CLIP/dr, computed by autograd
through the package's own `clipped_surrogate_objective`. The gradient is zero exactly
where the ratio has left the interval in the direction the advantage favours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ppo_lessons.clipping import clipped_surrogate_objective

__all__ = [
    "PROBE_RATIO",
    "ClippingCurves",
    "clipping_curves",
    "clipping_explorer",
    "clipping_status",
    "draw_clipping_figure",
]

PROBE_RATIO = 1.5  # the ratio whose L^CLIP the status line reports


@dataclass(frozen=True)
class ClippingCurves:
    """What the explorer draws, for one (ε, A) over a grid of ratios."""

    ratio: np.ndarray  # (R,) r
    objective: np.ndarray  # (R,) L^CLIP(r) = min(r A, clip(r, 1 − ε, 1 + ε) A)
    unclipped: np.ndarray  # (R,) r A
    gradient: np.ndarray  # (R,) dL^CLIP/dr (autograd)
    low: float  # 1 − ε
    high: float  # 1 + ε
    advantage: float  # A
    clip_eps: float  # ε


def _check(clip_eps: float, advantage: float) -> None:
    if not (isinstance(clip_eps, (int, float)) and 0 < clip_eps < 1):
        raise ValueError(f"clip_eps must be a number in (0, 1), got {clip_eps!r}")
    if not (isinstance(advantage, (int, float)) and math.isfinite(advantage)):
        raise ValueError(f"advantage must be a finite number, got {advantage!r}")


def clipping_curves(
    ratios: np.ndarray | list[float], clip_eps: float, advantage: float
) -> ClippingCurves:
    """L^CLIP, r A and dL^CLIP/dr at each ratio, for one advantage A and one ε.

    Each ratio is one sample: the package's `clipped_surrogate_objective` is called on
    it alone (new log-prob log r, old log-prob 0), and its derivative with respect to
    r comes from autograd, so the figure shows exactly what the trainer optimizes.

    Args:
        ratios: [R] positive probability ratios r.
        clip_eps: ε in (0, 1).
        advantage: A, any finite number.
    """
    _check(clip_eps, advantage)
    grid = np.asarray(ratios, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not (grid > 0).all():
        raise ValueError("ratios must be a non-empty 1-D array of positive numbers")
    old = torch.zeros(1, dtype=torch.float64)
    adv = torch.full((1,), float(advantage), dtype=torch.float64)
    objective, gradient = np.empty_like(grid), np.empty_like(grid)
    for i, r in enumerate(grid):
        ratio = torch.tensor([r], dtype=torch.float64, requires_grad=True)
        value = clipped_surrogate_objective(torch.log(ratio), old, adv, clip_eps)
        (grad,) = torch.autograd.grad(value, ratio)
        objective[i], gradient[i] = value.item(), grad.item()
    return ClippingCurves(
        ratio=grid,
        objective=objective,
        unclipped=grid * advantage,
        gradient=gradient,
        low=1.0 - clip_eps,
        high=1.0 + clip_eps,
        advantage=float(advantage),
        clip_eps=float(clip_eps),
    )


def clipping_status(clip_eps: float, advantage: float) -> str:
    """The explorer's status line: the parameters and L^CLIP at r = PROBE_RATIO."""
    value = clipping_curves([PROBE_RATIO], clip_eps, advantage).objective[0]
    return (
        f"ε = {clip_eps:.2f}, A = {advantage:+.1f}: "
        f"L^CLIP at r = {PROBE_RATIO} is {value:.4f}"
    )


def draw_clipping_figure(
    clip_eps: float = 0.2,
    advantage: float = 1.0,
    ratio_range: tuple[float, float] = (0.0, 2.0),
) -> Figure:
    """Two panels: L^CLIP and r A against r; dL^CLIP/dr against r."""
    low_r, high_r = max(ratio_range[0], 1e-3), ratio_range[1]
    curves = clipping_curves(np.linspace(low_r, high_r, 401), clip_eps, advantage)
    fig, (ax_obj, ax_grad) = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax in (ax_obj, ax_grad):
        ax.axvspan(
            curves.low,
            curves.high,
            color="tab:green",
            alpha=0.15,
            label=f"trust interval [1 − ε, 1 + ε] = [{curves.low:.2f}, {curves.high:.2f}]",
        )
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax_obj.plot(
        curves.ratio, curves.unclipped, "--", color="tab:gray", label="unclipped r·A"
    )
    ax_obj.plot(
        curves.ratio,
        curves.objective,
        color="tab:blue",
        lw=2,
        label="L^CLIP = min(r·A, clip(r)·A)",
    )
    ax_obj.set(
        xlabel="probability ratio r = π_θ(a|s) / π_old(a|s)",
        ylabel="objective (per sample)",
        title=f"Clipped surrogate, ε = {clip_eps:.2f}, A = {advantage:+.1f}",
    )
    ax_obj.legend(fontsize=8)
    ax_grad.plot(
        curves.ratio,
        curves.gradient,
        color="tab:red",
        lw=2,
        label="dL^CLIP/dr (autograd)",
    )
    zero = np.where(curves.gradient == 0, 0.0, np.nan)
    ax_grad.plot(
        curves.ratio,
        zero,
        color="k",
        lw=4,
        alpha=0.6,
        label="gradient exactly 0: this sample stops pushing",
    )
    span = max(abs(advantage), 0.1) * 1.3
    ax_grad.set(
        xlabel="probability ratio r",
        ylabel="dL^CLIP / dr",
        title="Where the gradient vanishes",
        ylim=(-span, span),
    )
    ax_grad.legend(fontsize=8)
    fig.tight_layout()
    return fig


def clipping_explorer():
    """The live explorer: ε, the sign of A, |A| and the ratio range redraw the figure.

    Returns an `ExplorerBox` (an `ipywidgets.VBox` whose stored output also holds a
    picture of the first figure) with the CSS class `ppo-clip-explorer`; its status
    line (an `HTML` widget with class `ppo-clip-status`) is rewritten on every redraw.
    """
    import ipywidgets as widgets
    from IPython.display import display

    from ppo_lessons.widgets.static import ExplorerBox

    eps = widgets.FloatSlider(
        value=0.2, min=0.05, max=0.5, step=0.01, description="ε", readout_format=".2f"
    )
    sign = widgets.ToggleButtons(
        options=["A > 0", "A < 0"], value="A > 0", description="advantage sign"
    )
    magnitude = widgets.FloatSlider(
        value=1.0, min=0.1, max=2.0, step=0.1, description="|A|", readout_format=".1f"
    )
    ratio_range = widgets.FloatRangeSlider(
        value=(0.0, 2.0), min=0.0, max=4.0, step=0.1, description="ratio range"
    )
    status = widgets.HTML()
    status.add_class("ppo-clip-status")
    out = widgets.Output()

    def redraw(_change: object = None) -> Figure:
        advantage = magnitude.value if sign.value == "A > 0" else -magnitude.value
        status.value = clipping_status(eps.value, advantage)
        lo, hi = ratio_range.value
        with out:
            out.clear_output(wait=True)
            fig = draw_clipping_figure(eps.value, advantage, (lo, max(hi, lo + 0.1)))
            display(fig)
            plt.close(fig)
        return fig

    for control in (eps, sign, magnitude, ratio_range):
        control.observe(redraw, names="value")
    box = ExplorerBox(
        [
            widgets.HBox([eps, magnitude]),
            widgets.HBox([sign, ratio_range]),
            status,
            out,
        ],
        picture=redraw(),
        summary=f"Clipping explorer, {status.value} (move its sliders in JupyterLab)",
    )
    box.add_class("ppo-clip-explorer")
    return box
