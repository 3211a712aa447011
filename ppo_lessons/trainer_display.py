"""What the trainer shows while it runs: a progress bar, a live plot for notebooks,
and an inline animation of an episode.

Each leaves something a saved notebook shows on a static page too, under any
matplotlib backend: the bar its final line (`ppo_lessons.progress`), the plot its
last figure as a PNG, the animation a strip of frames beside the player.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from IPython.display import HTML
from matplotlib.figure import Figure

from ppo_lessons.envs import actions_to_env, obs_to_tensor

__all__ = [
    "EpisodeAnimation",
    "LivePlot",
    "Reporter",
    "animate_episode",
    "episode_frames",
    "progress_bar",
]


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
    """A tqdm bar counting environment steps (a widget in notebooks, which leaves its
    final line in the saved notebook: see `ppo_lessons.progress`)."""
    if not enabled:
        bar = _NoBar()
        bar.n = initial
        return bar
    from ppo_lessons.progress import tqdm

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

    def figure(self) -> Figure:
        """The panels for the history so far (x: environment steps, as 20k, 1M)."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter, MaxNLocator

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
            # six-digit step counts at the default density run into each other
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        fig.tight_layout()
        return fig

    def draw(self) -> None:
        """Show the figure, replacing the one shown before (one output per run).

        The figure goes out as a PNG made here, not as the `Figure` itself: a Figure
        becomes a picture only under the inline backend (under `MPLBACKEND=Agg`, as
        the test command sets, the saved notebook would keep the text
        `<Figure size 1400x300 with 4 Axes>`). So the last draw, the run's final
        state, is what a saved notebook shows under any backend.
        """
        import matplotlib.pyplot as plt
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display

        from ppo_lessons.plotting import figure_png

        fig = self.figure()
        self.draws += 1
        last = self.history[-1]
        self.drawn_update = last["update"]
        if InteractiveShell.initialized():  # outside IPython there is nothing to show
            picture = {
                "image/png": figure_png(fig),
                "text/plain": f"live plot at update {last['update']} "
                f"({last['step']:,} environment steps)",
            }
            if self.handle is None:
                self.handle = display(picture, raw=True, display_id=True)
            else:
                self.handle.update(picture, raw=True)
        plt.close(fig)


@torch.no_grad()
def episode_frames(
    agent: Any, env_id: str, seed: int = 0, max_steps: int = 500, deterministic=True
) -> list[np.ndarray]:
    """The rgb_array frames of one episode of `agent` (first: the reset state)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no display needed (pygame)
    env = gym.make(env_id, render_mode="rgb_array")
    device = next(agent.parameters()).device
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    policy = agent.acting(deterministic)
    starts = torch.ones(1, dtype=torch.bool, device=device)
    for step in range(max_steps):
        action = policy(obs_to_tensor(obs[None], device), starts & (step == 0))
        obs, _, terminated, truncated, _ = env.step(actions_to_env(action, env)[0])
        frames.append(env.render())
        if terminated or truncated:
            break
    env.close()
    return frames


class EpisodeAnimation(HTML):
    """An animation player (HTML and JavaScript) shown with a strip of its frames.

    The player needs JavaScript: a static page (GitHub) and an untrusted notebook in
    JupyterLab drop its scripts. So it is stored hidden (`display: none`, a style
    JupyterLab's sanitizer keeps; it drops the `hidden` attribute) and its own script
    shows it; the strip, a PNG, shows everywhere.
    """

    def __init__(self, player_html: str, strip: Figure, caption: str) -> None:
        from ppo_lessons.plotting import figure_png

        box = f"ppo-episode-{uuid.uuid4().hex}"
        super().__init__(
            f'<div id="{box}" class="ppo-episode-player" style="display: none">'
            f"{player_html}</div>"
            f'<script>document.getElementById("{box}").style.display = "";</script>'
        )
        self.strip_png = figure_png(strip)
        self.caption = caption

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display({"text/html": self.data, "text/plain": self.caption}, raw=True)
        display({"image/png": self.strip_png, "text/plain": self.caption}, raw=True)


def animate_episode(
    agent: Any,
    env_id: str,
    seed: int = 0,
    max_steps: int = 500,
    deterministic: bool = True,
    interval_ms: int = 30,
    strip_frames: int = 6,
) -> EpisodeAnimation:
    """An inline animation of one episode of `agent`, from rgb_array frames, and a
    strip of `strip_frames` of its frames (display it as a cell's last expression).
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    from ppo_lessons.plotting import show_frames

    if not (isinstance(strip_frames, int) and strip_frames >= 1):
        raise ValueError(f"strip_frames must be an int >= 1, got {strip_frames!r}")
    frames = episode_frames(agent, env_id, seed, max_steps, deterministic)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.axis("off")
    image = ax.imshow(frames[0])

    def draw(i: int) -> list:
        image.set_data(frames[i])
        return [image]

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval_ms)
    player = anim.to_jshtml()
    plt.close(fig)
    steps = sorted({round(t) for t in np.linspace(0, len(frames) - 1, strip_frames)})
    caption = f"{env_id}, one episode (seed {seed}): {len(frames) - 1} steps"
    strip = show_frames([frames[t] for t in steps], steps, caption)
    plt.close(strip)
    return EpisodeAnimation(player, strip, caption)
