"""What the trainer shows while it runs: a progress bar, a live plot for notebooks,
and an inline animation of an episode.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import torch

__all__ = ["LivePlot", "Reporter", "animate_episode", "progress_bar"]


class _NoBar:
    """Stands in for tqdm when the progress bar is off."""

    n = 0

    def update(self, n: int) -> None:
        self.n += n

    def set_postfix(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar counting environment steps (tqdm.auto: a widget in notebooks)."""
    if not enabled:
        bar = _NoBar()
        bar.n = initial
        return bar
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


class Reporter:
    """What `train` reports after every update: the progress bar, TensorBoard and
    the user's callback (e.g. a `LivePlot`)."""

    def __init__(
        self,
        total_steps: int,
        initial_step: int,
        progress: bool,
        tensorboard_dir: str | os.PathLike | None,
        callback: Callable[[dict, list[dict]], None] | None,
    ) -> None:
        self.bar = progress_bar(total_steps, initial_step, progress)
        self.callback = callback
        self.writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # optional

            self.writer = SummaryWriter(str(tensorboard_dir))

    def report(self, row: Mapping[str, Any], history: list) -> None:
        self.bar.update(row["step"] - self.bar.n)
        if not math.isnan(row["episodic_return"]):
            self.bar.set_postfix(ret=f"{row['episodic_return']:.1f}", refresh=False)
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("step", "update"):
                    self.writer.add_scalar(f"ppo/{key}", value, row["step"])
        if self.callback is not None:
            self.callback(row, history)

    def close(self) -> None:
        finish = getattr(self.callback, "finish", None)
        if callable(finish):
            finish()
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


class LivePlot:
    """A callback for `train` that redraws return, losses and KL every `every`
    updates (and after the last one) in a notebook:

        train(config, callback=LivePlot())
    """

    PANELS = (
        ("episodic_return", "episodic return"),
        ("value_loss", "value loss"),
        ("entropy", "policy entropy (nats)"),
        ("approx_kl", "approx KL (old ‖ new)"),
    )

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.handle = None  # the notebook output being updated in place
        self.draws = 0
        self.history: list[dict] = []
        self.drawn_update = 0

    def __call__(self, row: dict, history: list[dict]) -> None:
        self.history = history
        if row["update"] % self.every == 0:
            self.draw()

    def finish(self) -> None:
        """Draw the final state (`train` calls this when it ends)."""
        if self.history and self.history[-1]["update"] != self.drawn_update:
            self.draw()

    def draw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, axes = plt.subplots(1, len(self.PANELS), figsize=(14, 3))
        for ax, (key, label) in zip(axes, self.PANELS, strict=True):
            # updates in which no episode ended have no return: skip, do not break
            points = [
                (r["step"], r[key])
                for r in self.history
                if isinstance(r.get(key), float) and math.isfinite(r[key])
            ]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
            ax.set_xlabel("environment steps")
            ax.set_ylabel(label)
            ax.set_title(f"{label} (one run)")
        fig.tight_layout()
        self.draws += 1
        self.drawn_update = self.history[-1]["update"]
        if self.handle is None:
            self.handle = display(fig, display_id=True)  # None outside a notebook
        else:
            self.handle.update(fig)
        plt.close(fig)


@torch.no_grad()
def animate_episode(
    agent: Any,
    env_id: str,
    seed: int = 0,
    max_steps: int = 500,
    deterministic: bool = True,
    interval_ms: int = 30,
) -> Any:
    """An IPython HTML animation of one episode of `agent`, from rgb_array frames.

    Returns `IPython.display.HTML` (display it as a cell's last expression).
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation

    from ppo_lessons.trainer import actions_to_env, obs_to_tensor

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no display needed (pygame)
    env = gym.make(env_id, render_mode="rgb_array")
    device = next(agent.parameters()).device
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    for _ in range(max_steps):
        action = agent.act(obs_to_tensor(obs[None], device), deterministic)
        obs, _, terminated, truncated, _ = env.step(actions_to_env(action, env)[0])
        frames.append(env.render())
        if terminated or truncated:
            break
    env.close()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.axis("off")
    image = ax.imshow(frames[0])

    def draw(i: int) -> list:
        image.set_data(frames[i])
        return [image]

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval_ms)
    html = HTML(anim.to_jshtml())
    plt.close(fig)
    return html
