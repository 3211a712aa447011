"""Lesson 02's importance-weight explorer: how the IS estimate degrades as policies drift.

The behaviour policy (the one that collected the samples) is b = N(0, 1); the target
policy is π = N(μ, σ²), drifted by μ and rescaled by σ. From n samples x_i ∼ b the
importance-sampling estimate of E_π[x] = μ is

    μ̂ = (1/n) Σ_i w(x_i) x_i,   w(x) = π(x) / b(x).

It is unbiased for every μ and σ, but its variance, (E_b[w² x²] − μ²) / n, grows like
exp(μ²): a few samples with huge weights dominate the sum. Both moments have closed
forms for Gaussians, so the explorer draws the exact curve next to the measured one.
For σ² ≥ 2 the weights have infinite variance (π has heavier tails than b can cover).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "ImportanceEstimates",
    "draw_importance_figure",
    "exact_estimate_std",
    "gaussian_kl",
    "importance_explorer",
    "simulate_estimates",
    "weight_moments",
]


def _check(shift: float, target_std: float) -> None:
    if not math.isfinite(shift):
        raise ValueError(f"shift must be a finite number, got {shift!r}")
    if not (math.isfinite(target_std) and target_std > 0):
        raise ValueError(f"target_std must be a positive number, got {target_std!r}")


def weight_moments(shift: float, target_std: float) -> tuple[float, float]:
    """Exact (E_b[w²], E_b[w² x²]) for b = N(0, 1), π = N(shift, target_std²).

    Both are Gaussian integrals of π(x)²/b(x) = C exp(−a x² + β x − c) (times x²),
    a = 1/σ² − 1/2, β = 2μ/σ², c = μ²/σ²; they are infinite when a ≤ 0 (σ² ≥ 2).
    """
    _check(shift, target_std)
    var = target_std**2
    a = 1.0 / var - 0.5
    if a <= 0:
        return math.inf, math.inf
    beta, c = 2.0 * shift / var, shift**2 / var
    log_w2 = (
        -0.5 * math.log(2 * math.pi)
        - math.log(var)
        + 0.5 * math.log(math.pi / a)
        + beta**2 / (4 * a)
        - c
    )
    w2 = math.exp(min(log_w2, 700.0))  # beyond e^700 a float64 overflows: say "huge"
    return w2, w2 * (1 / (2 * a) + (beta / (2 * a)) ** 2)


def exact_estimate_std(shift: float, target_std: float, num_samples: int) -> float:
    """Standard deviation of the n-sample IS estimate μ̂ of E_π[x] (exact)."""
    _, w2x2 = weight_moments(shift, target_std)
    return math.sqrt(max(w2x2 - shift**2, 0.0) / num_samples)


def gaussian_kl(shift: float, target_std: float) -> float:
    """KL(b || π) = log σ + (1 + μ²) / (2σ²) − 1/2: how far the policy drifted."""
    _check(shift, target_std)
    return math.log(target_std) + (1 + shift**2) / (2 * target_std**2) - 0.5


@dataclass(frozen=True)
class ImportanceEstimates:
    """Many independent n-sample IS estimates of E_π[x] for one (μ, σ)."""

    estimates: np.ndarray  # (trials,) μ̂ of each trial
    ess: np.ndarray  # (trials,) effective sample size (Σw)² / Σw² of each trial
    true_value: float  # μ

    @property
    def std(self) -> float:
        return float(self.estimates.std())


def simulate_estimates(
    shift: float,
    target_std: float = 1.0,
    num_samples: int = 100,
    num_trials: int = 1000,
    seed: int = 0,
) -> ImportanceEstimates:
    """Draw `num_trials` batches of `num_samples` x ∼ N(0, 1); estimate E_π[x] from each."""
    _check(shift, target_std)
    for name, value in (("num_samples", num_samples), ("num_trials", num_trials)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_trials, num_samples))  # (trials, n) x_i ∼ b
    # log w = log π(x) − log b(x), exponentiated once: exact where π/b would overflow
    log_w = -0.5 * ((x - shift) / target_std) ** 2 - math.log(target_std) + 0.5 * x**2
    w = np.exp(log_w)  # (trials, n)
    ess = w.sum(axis=1) ** 2 / (w**2).sum(axis=1)
    return ImportanceEstimates((w * x).mean(axis=1), ess, float(shift))


def draw_importance_figure(
    shift: float = 1.5,
    target_std: float = 1.0,
    num_samples: int = 100,
    num_trials: int = 1000,
    seed: int = 0,
) -> Figure:
    """Three panels: the two densities and the weight w(x); the spread of μ̂ over
    trials; the standard deviation of μ̂ against the drift μ (exact and measured)."""
    result = simulate_estimates(shift, target_std, num_samples, num_trials, seed)
    fig, (ax_pdf, ax_hist, ax_std) = plt.subplots(1, 3, figsize=(13, 3.8))
    x = np.linspace(-4, 4 + shift, 400)
    b = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    p = np.exp(-0.5 * ((x - shift) / target_std) ** 2) / (
        target_std * math.sqrt(2 * math.pi)
    )
    ax_pdf.plot(x, b, label="behaviour b = N(0, 1)")
    ax_pdf.plot(x, p, label=f"target π = N({shift:.1f}, {target_std:.1f}²)")
    ax_w = ax_pdf.twinx()
    ax_w.plot(x, p / b, "k:", label="weight w(x) = π/b (right axis)")
    ax_w.set(yscale="log", ylabel="w(x) (log scale)")
    ax_w.grid(False)
    ax_pdf.set(xlabel="action x", ylabel="density", title="Policies and the weight")
    ax_pdf.set_ylim(0, 1.6 * max(b.max(), p.max()))  # headroom for the legend
    lines = ax_pdf.get_legend_handles_labels()
    extra = ax_w.get_legend_handles_labels()
    ax_pdf.legend(
        lines[0] + extra[0], lines[1] + extra[1], loc="upper left", fontsize=7
    )

    ax_hist.hist(result.estimates, bins=50, color="tab:green", alpha=0.7)
    ax_hist.axvline(shift, color="k", label=f"true E_π[x] = {shift:.2f}")
    ax_hist.set(
        xlabel="IS estimate μ̂",
        ylabel="number of trials",
        title=f"{num_trials} estimates, n = {num_samples}, "
        f"mean ESS {result.ess.mean():.1f}",
    )
    ax_hist.legend()

    _draw_std_panel(ax_std, shift, target_std, num_samples, num_trials, seed)
    fig.tight_layout()
    return fig


def _draw_std_panel(ax, shift, target_std, num_samples, num_trials, seed) -> None:
    shifts = np.linspace(0.0, 3.0, 13)
    exact = [exact_estimate_std(m, target_std, num_samples) for m in shifts]
    measured = [
        simulate_estimates(m, target_std, num_samples, num_trials, seed).std
        for m in shifts
    ]
    ax.plot(shifts, exact, label="exact")
    ax.plot(shifts, measured, "o", ms=4, label=f"measured ({num_trials} trials)")
    ax.axvline(shift, color="k", ls="--", label=f"μ = {shift:.1f}")
    kl = gaussian_kl(shift, target_std)
    ax.set(
        yscale="log",
        xlabel="drift μ of the target policy",
        ylabel="std of μ̂ (log scale)",
        title=f"Spread vs drift (now KL(b‖π) = {kl:.2f} nats)",
    )
    ax.legend()


def importance_explorer(num_trials: int = 500, seed: int = 0):
    """The live explorer: sliders for μ, σ and n redraw the figure below them.

    Returns an `ExplorerBox` (an `ipywidgets.VBox` whose stored output also holds a
    picture of the first figure).
    """
    import ipywidgets as widgets
    from IPython.display import display

    from ppo_lessons.widgets.static import ExplorerBox

    shift = widgets.FloatSlider(value=1.5, min=0.0, max=3.0, step=0.1, description="μ")
    target_std = widgets.FloatSlider(
        value=1.0, min=0.5, max=1.6, step=0.05, description="σ"
    )
    num_samples = widgets.IntSlider(
        value=100, min=10, max=1000, step=10, description="n"
    )
    out = widgets.Output()

    def redraw(_change: object = None) -> Figure:
        with out:
            out.clear_output(wait=True)
            if target_std.value**2 >= 2:
                print("σ² ≥ 2: the weights have infinite variance (see the text).")
            fig = draw_importance_figure(
                shift.value, target_std.value, num_samples.value, num_trials, seed
            )
            display(fig)
            plt.close(fig)
        return fig

    for slider in (shift, target_std, num_samples):
        slider.observe(redraw, names="value")
    return ExplorerBox(
        [widgets.HBox([shift, target_std, num_samples]), out],
        picture=redraw(),
        summary=(
            f"Importance-weight explorer, μ = {shift.value:.1f}, σ = "
            f"{target_std.value:.2f}, n = {num_samples.value} "
            "(move its sliders in JupyterLab)"
        ),
    )
