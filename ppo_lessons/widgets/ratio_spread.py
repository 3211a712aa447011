"""Lesson 06's ratio-spread explorer: how the ratios spread over the epochs of one update.

At the start of a PPO update the policy is the one that collected the batch, so every
probability ratio r_t = π_θ(a_t|s_t) / π_old(a_t|s_t) is exactly 1. Each minibatch step
moves θ, and the ratios of the whole batch spread out around 1. Once a sample's ratio
has left the trust interval [1 − ε, 1 + ε] in the direction its advantage favours,
clipping bites: that sample's policy gradient is zero (lesson 03). The explorer runs
the package's `ppo_update` one epoch at a time on one real CartPole batch and records,
after every epoch, the ratios of the whole batch, the clip fraction
mean(|r_t − 1| > ε) and the k3 estimate of KL(π_old ‖ π_θ).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ppo_lessons.buffer import Batch
from ppo_lessons.gae import compute_gae
from ppo_lessons.networks import ActorCritic
from ppo_lessons.trainer import collect_rollout, make_buffer, start_run
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.update import UpdateSettings, approx_kl, ppo_update

__all__ = [
    "LEARNING_RATES",
    "RatioSpread",
    "batch_ratios",
    "collect_cartpole_batch",
    "draw_ratio_spread_figure",
    "ratio_spread",
    "ratio_spread_explorer",
]

LEARNING_RATES = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # the explorer's choices


@dataclass(frozen=True)
class RatioSpread:
    """The batch's ratios after each epoch of one update (row 0: before any step)."""

    ratios: np.ndarray  # (E + 1, B) r_t = π_θ(a_t|s_t) / π_old(a_t|s_t)
    clip_fractions: np.ndarray  # (E + 1,) mean(|r_t − 1| > ε)
    approx_kls: np.ndarray  # (E + 1,) k3 estimate of KL(π_old ‖ π_θ)
    clip_coef: float  # ε
    learning_rate: float

    @property
    def epochs(self) -> int:
        return len(self.ratios) - 1


def collect_cartpole_batch(
    num_envs: int = 4, num_steps: int = 128, seed: int = 0
) -> tuple[ActorCritic, Batch]:
    """One rollout of a fresh (untrained) agent on CartPole-v1, flattened to
    B = num_envs * num_steps transitions with GAE advantages and returns.

    It uses the trainer's own pieces (`start_run`, `collect_rollout`, `compute_gae`),
    so the batch is exactly what the first PPO update of a training run sees.
    """
    config = PPOConfig(
        env_id="CartPole-v1",
        num_envs=num_envs,
        num_steps=num_steps,
        total_steps=num_envs * num_steps,
        seed=seed,
        device="cpu",
    )
    run = start_run(config)
    try:
        buffer = make_buffer(run)
        collect_rollout(run, buffer)
    finally:
        run.envs.close()
    advantages, returns = compute_gae(
        buffer.rewards,
        buffer.values,
        buffer.next_values,
        buffer.terminated,
        buffer.truncated,
        config.gamma,
        config.gae_lambda,
    )
    return run.agent, buffer.flatten(advantages, returns)


@torch.no_grad()
def batch_ratios(agent: ActorCritic, batch: Batch) -> torch.Tensor:
    """[B] ratios exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t)) of the whole batch."""
    policy_out, _ = agent.policy_and_value(batch.obs)
    log_probs, _ = agent.log_prob_entropy(policy_out, batch.actions)
    return torch.exp(log_probs - batch.log_probs)


def ratio_spread(
    agent: ActorCritic,
    batch: Batch,
    learning_rate: float = 1e-3,
    epochs: int = 10,
    clip_coef: float = 0.2,
    num_minibatches: int = 4,
    seed: int = 0,
) -> RatioSpread:
    """Run `epochs` epochs of PPO minibatch steps on a copy of `agent` (the agent
    itself is not changed) and record the batch's ratios after each epoch."""
    if epochs < 1 or num_minibatches < 1:
        raise ValueError(
            f"epochs and num_minibatches must be >= 1, got {epochs} and "
            f"{num_minibatches}"
        )
    agent = copy.deepcopy(agent)
    optimizer = torch.optim.Adam(agent.parameters(), lr=learning_rate, eps=1e-5)
    B = batch.advantages.shape[0]
    settings = UpdateSettings(
        update_epochs=1,  # one epoch per call, so the ratios can be read in between
        minibatch_size=max(1, B // num_minibatches),
        clip_coef=clip_coef,
        clip_vloss=False,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        norm_adv=True,
        target_kl=None,
        kl_estimator="k3",
    )
    generator = torch.Generator().manual_seed(seed)
    rows = [batch_ratios(agent, batch)]  # (B,) all exactly 1 before the first step
    for _ in range(epochs):
        ppo_update(agent, optimizer, batch, settings, generator)
        rows.append(batch_ratios(agent, batch))
    ratios = torch.stack(rows)  # (E + 1, B)
    clipped = ((ratios - 1).abs() > clip_coef).float().mean(dim=1)
    kls = [approx_kl(r.log(), torch.zeros_like(r), "k3") for r in ratios]
    return RatioSpread(
        ratios=ratios.numpy(),
        clip_fractions=clipped.numpy(),
        approx_kls=torch.stack(kls).numpy(),
        clip_coef=float(clip_coef),
        learning_rate=float(learning_rate),
    )


def _histogram(ax, spread: RatioSpread, epoch: int, ratio_range: float) -> None:
    eps = spread.clip_coef
    low, high = 1 - ratio_range, 1 + ratio_range
    ax.axvspan(
        1 - eps, 1 + eps, color="tab:green", alpha=0.15, label=f"1 ± ε, ε = {eps}"
    )
    ratios = np.clip(spread.ratios[epoch], low, high)  # outliers drawn at the edges
    bins = np.linspace(low, high, 61)
    ax.hist(
        ratios, bins=bins, color="tab:blue", alpha=0.8, label=f"after epoch {epoch}"
    )
    ax.set(
        xlabel="ratio r_t = π_θ / π_old (outliers piled at the edges)",
        ylabel="number of samples",
        title=f"Ratios after epoch {epoch}: {spread.clip_fractions[epoch]:.0%} "
        "outside the band",
    )
    ax.legend(loc="upper right")


def draw_ratio_spread_figure(
    spread: RatioSpread, epoch: int | None = None, ratio_range: float = 0.6
) -> Figure:
    """Two panels: the histogram of the batch's ratios after `epoch` (default: the
    last) with the clip band shaded; the clip fraction and approx KL per epoch."""
    epoch = spread.epochs if epoch is None else int(epoch)
    if not 0 <= epoch <= spread.epochs:
        raise ValueError(f"epoch must be in [0, {spread.epochs}], got {epoch}")
    fig, (ax_hist, ax_curve) = plt.subplots(1, 2, figsize=(12, 3.8))
    _histogram(ax_hist, spread, epoch, ratio_range)
    x = np.arange(spread.epochs + 1)
    ax_curve.plot(x, spread.clip_fractions, "o-", label="clip fraction (left axis)")
    ax_curve.axvline(epoch, color="k", ls="--", label=f"epoch {epoch}")
    ax_curve.set(
        xlabel="epochs done on this batch",
        ylabel="fraction of samples with |r − 1| > ε",
        title=f"One update, learning rate {spread.learning_rate:g}",
        ylim=(0, 1),
    )
    ax_kl = ax_curve.twinx()
    ax_kl.plot(x, spread.approx_kls, "s:", color="tab:red", label="approx KL, k3")
    ax_kl.set(ylabel="approx KL (nats, right axis)")
    ax_kl.grid(False)
    handles = [ax.get_legend_handles_labels() for ax in (ax_curve, ax_kl)]
    ax_curve.legend(handles[0][0] + handles[1][0], handles[0][1] + handles[1][1])
    fig.tight_layout()
    return fig


def ratio_spread_explorer(epochs: int = 10, seed: int = 0):
    """The live explorer: a slider for the epoch and one for the learning rate.

    The batch is collected once; each learning rate's update is computed the first
    time it is chosen and then reused. Returns an `ExplorerBox` (an `ipywidgets.VBox`
    whose stored output also holds a picture of the first figure).
    """
    import ipywidgets as widgets
    from IPython.display import display

    from ppo_lessons.widgets.static import ExplorerBox

    agent, batch = collect_cartpole_batch(seed=seed)
    cache: dict[float, RatioSpread] = {}
    epoch = widgets.IntSlider(value=epochs, min=0, max=epochs, description="epoch")
    lr = widgets.SelectionSlider(
        options=[(f"{v:g}", v) for v in LEARNING_RATES],
        value=1e-3,
        description="learning rate",
    )
    out = widgets.Output()

    def redraw(_change: object = None) -> Figure:
        if lr.value not in cache:
            cache[lr.value] = ratio_spread(agent, batch, lr.value, epochs, seed=seed)
        with out:
            out.clear_output(wait=True)
            fig = draw_ratio_spread_figure(cache[lr.value], epoch.value)
            display(fig)
            plt.close(fig)
        return fig

    for control in (epoch, lr):
        control.observe(redraw, names="value")
    return ExplorerBox(
        [widgets.HBox([epoch, lr]), out],
        picture=redraw(),
        summary=(
            f"Ratio-spread explorer, epoch {epoch.value} of {epochs}, learning rate "
            f"{lr.value:g} (move its sliders in JupyterLab)"
        ),
    )
