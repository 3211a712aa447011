"""Lesson 04's GAE explorer: how γ and λ weigh the TD errors of one trajectory.

GAE (Schulman et al., 2016) is an exponentially weighted sum of TD errors,

    A_t = Σ_l (γλ)^l δ_{t+l},      δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t),

the sum stopping after the step that ends the episode. The explorer takes one fixed
short trajectory (a sparse reward at the end, an imperfect value function), computes
the advantages with the package's `compute_gae`, and draws, for a chosen step t, the
weight (γλ)^l that each later TD error receives in A_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ppo_lessons.gae import compute_gae

__all__ = [
    "GaeView",
    "Trajectory",
    "default_trajectory",
    "draw_gae_figure",
    "gae_explorer",
    "gae_status",
    "gae_view",
]


@dataclass(frozen=True)
class Trajectory:
    """One trajectory in the layout `compute_gae` takes, each tensor [T]."""

    rewards: torch.Tensor  # (T,) r_t
    values: torch.Tensor  # (T,) V(s_t)
    next_values: torch.Tensor  # (T,) V(s_{t+1}) of the state actually reached
    terminated: torch.Tensor  # (T,) 1.0 where the episode ended in a terminal state
    truncated: torch.Tensor  # (T,) 1.0 where a time limit cut it


def default_trajectory(length: int = 12) -> Trajectory:
    """An episode of `length` steps: reward 0 on every step but the last (+1, terminal).

    The value function is imperfect: it predicts a straight ramp from 0.2 to 0.8
    instead of the true discounted value of reaching the goal.
    """
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}")
    rewards = torch.zeros(length, dtype=torch.float64)  # (T,)
    rewards[-1] = 1.0
    values = torch.linspace(0.2, 0.8, length, dtype=torch.float64)  # (T,) V(s_t)
    next_values = torch.cat([values[1:], torch.zeros(1, dtype=torch.float64)])
    terminated = torch.zeros(length, dtype=torch.float64)
    terminated[-1] = 1.0
    return Trajectory(
        rewards, values, next_values, terminated, torch.zeros_like(terminated)
    )


@dataclass(frozen=True)
class GaeView:
    """What the explorer draws for one (γ, λ, t)."""

    deltas: np.ndarray  # (T,) δ_t
    advantages: np.ndarray  # (T,) A_t from compute_gae
    td_advantages: np.ndarray  # (T,) λ = 0: A_t = δ_t
    mc_advantages: np.ndarray  # (T,) λ = 1: discounted return minus V(s_t)
    weights: np.ndarray  # (T,) weight of δ_k in A_step: (γλ)^(k − step), 0 outside
    step: int


def _gae(traj: Trajectory, gamma: float, lam: float) -> np.ndarray:
    args = (
        traj.rewards,
        traj.values,
        traj.next_values,
        traj.terminated,
        traj.truncated,
    )
    return compute_gae(*args, gamma, lam)[0].numpy()


def gae_view(
    gamma: float, lam: float, step: int = 0, trajectory: Trajectory | None = None
) -> GaeView:
    """Advantages of `trajectory` for (γ, λ) and the weights of A_step's TD errors.

    Args:
        gamma: γ in [0, 1].
        lam: λ in [0, 1].
        step: t, the step whose weights (γλ)^l are returned.
        trajectory: one [T] trajectory (default: `default_trajectory()`).
    """
    traj = default_trajectory() if trajectory is None else trajectory
    length = traj.rewards.shape[0]
    if not (isinstance(step, int) and 0 <= step < length):
        raise ValueError(f"step must be an integer in [0, {length - 1}], got {step!r}")
    advantages = _gae(traj, gamma, lam)
    not_terminal = 1.0 - traj.terminated
    deltas = traj.rewards + gamma * not_terminal * traj.next_values - traj.values
    done = (traj.terminated.bool() | traj.truncated.bool()).numpy()
    weights = np.zeros(length)  # (T,) weight of δ_k in A_step
    weight = 1.0
    for k in range(step, length):
        weights[k] = weight
        if done[k]:  # the sum stops after the step that ends the episode
            break
        weight *= gamma * lam
    return GaeView(
        deltas=deltas.numpy(),
        advantages=advantages,
        td_advantages=_gae(traj, gamma, 0.0),
        mc_advantages=_gae(traj, gamma, 1.0),
        weights=weights,
        step=step,
    )


def gae_status(gamma: float, lam: float, step: int = 0) -> str:
    """The explorer's status line: the parameters and the advantage A_step."""
    value = gae_view(gamma, lam, step).advantages[step]
    return f"γ = {gamma:.2f}, λ = {lam:.2f}: A_{step} = {value:.4f}"


def draw_gae_figure(gamma: float = 0.99, lam: float = 0.95, step: int = 0) -> Figure:
    """Two panels: δ_t and A_t (with the λ = 0 and λ = 1 limits); weights of A_step."""
    view = gae_view(gamma, lam, step)
    steps = np.arange(len(view.deltas))
    fig, (ax_adv, ax_w) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_adv.bar(steps, view.deltas, color="tab:gray", alpha=0.5, label="TD error δ_t")
    ax_adv.plot(steps, view.td_advantages, "s:", ms=4, label="A_t with λ = 0 (= δ_t)")
    ax_adv.plot(
        steps, view.mc_advantages, "^:", ms=4, label="A_t with λ = 1 (Monte Carlo)"
    )
    ax_adv.plot(steps, view.advantages, "o-", lw=2, label=f"A_t with λ = {lam:.2f}")
    ax_adv.set(
        xlabel="time step t",
        ylabel="advantage estimate",
        title=f"GAE on one episode (γ = {gamma:.2f}, reward 1 at the end)",
    )
    ax_adv.legend(fontsize=8)
    ax_w.bar(steps, view.weights, color="tab:blue", label=f"(γλ)^(k − {step})")
    horizon = 1.0 / max(1.0 - gamma * lam, 1e-9)
    ax_w.set(
        xlabel="time step k of the TD error δ_k",
        ylabel=f"weight of δ_k in A_{step}",
        title=f"Weights of the TD errors in A_{step} (1/(1 − γλ) = {horizon:.1f} steps)",
        ylim=(0, 1.1),
    )
    ax_w.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gae_explorer():
    """The live explorer: γ, λ and the step t redraw the figure.

    Returns an `ExplorerBox` (an `ipywidgets.VBox` whose stored output also holds a
    picture of the first figure) with the CSS class `ppo-gae-explorer`; its status
    line (an `HTML` widget with class `ppo-gae-status`) is rewritten on every redraw.
    """
    import ipywidgets as widgets
    from IPython.display import display

    from ppo_lessons.widgets.static import ExplorerBox

    length = default_trajectory().rewards.shape[0]
    gamma = widgets.FloatSlider(
        value=0.99, min=0.5, max=1.0, step=0.01, description="γ", readout_format=".2f"
    )
    lam = widgets.FloatSlider(
        value=0.95, min=0.0, max=1.0, step=0.01, description="λ", readout_format=".2f"
    )
    step = widgets.IntSlider(value=0, min=0, max=length - 1, description="step t")
    status = widgets.HTML()
    status.add_class("ppo-gae-status")
    out = widgets.Output()

    def redraw(_change: object = None) -> Figure:
        status.value = gae_status(gamma.value, lam.value, step.value)
        with out:
            out.clear_output(wait=True)
            fig = draw_gae_figure(gamma.value, lam.value, step.value)
            display(fig)
            plt.close(fig)
        return fig

    for control in (gamma, lam, step):
        control.observe(redraw, names="value")
    box = ExplorerBox(
        [widgets.HBox([gamma, lam, step]), status, out],
        picture=redraw(),
        summary=f"GAE explorer, {status.value} (move its sliders in JupyterLab)",
    )
    box.add_class("ppo-gae-explorer")
    return box
