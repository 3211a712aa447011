"""Lesson 10's live plot: the reward and the KL to the reference while fine-tuning.

    plot = FinetunePlot(every=10)
    result = finetune("ppo", seed=1, callback=plot)
    plot.finish()

Like the trainer's `LivePlot` (`ppo_lessons.trainer_display`), each draw goes out as a
PNG made here and replaces the one before, so the last draw, the run's final state, is
what a saved notebook shows under any matplotlib backend (STYLE 17b).
"""

from __future__ import annotations

from matplotlib.figure import Figure

__all__ = ["FinetunePlot"]


class FinetunePlot:
    """A callback for `finetune` that redraws, every `every` iterations, the training
    reward with both graders, the per-token KL to the reference and the completions'
    mean length; `finish()` draws the final state."""

    PANELS = (
        (("score", "exact", "lenient"), "reward (training batch)"),
        (("kl_per_token",), "KL to the reference (nats per token)"),
        (("length",), "completion length (tokens)"),
    )
    LABELS = {
        "score": "the reward trained on",
        "exact": "exact grader (true)",
        "lenient": "lenient grader",
        "kl_per_token": "k1 per token",
        "length": "mean tokens",
    }

    def __init__(self, every: int = 10, title: str = "fine-tuning") -> None:
        self.every = every
        self.title = title
        self.history: list[dict[str, float]] = []
        self.handle = None  # the notebook output being updated in place
        self.drawn = 0  # the iteration of the last draw

    def __call__(self, row: dict[str, float]) -> None:
        self.history.append(dict(row))
        if int(row["iteration"]) % self.every == 0:
            self.draw()

    def finish(self) -> None:
        """Draw the final state if the last iteration was not drawn yet."""
        if self.history and int(self.history[-1]["iteration"]) != self.drawn:
            self.draw()

    def figure(self) -> Figure:
        """The panels for the history so far (x: fine-tuning iterations)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(self.PANELS), figsize=(14, 3.2))
        x = [row["iteration"] for row in self.history]
        for ax, (keys, label) in zip(axes, self.PANELS, strict=True):
            for key in keys:
                ax.plot(x, [row[key] for row in self.history], label=self.LABELS[key])
            ax.set(xlabel="iteration", ylabel=label, title=f"{self.title}: {label}")
            ax.title.set_fontsize(10)
            if len(keys) > 1:
                ax.set_ylim(-0.02, 1.02)
                ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def draw(self) -> None:
        """Show the figure as a PNG, replacing the one shown before."""
        import matplotlib.pyplot as plt
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display

        from ppo_lessons.plotting import figure_png

        fig = self.figure()
        last = self.history[-1]
        self.drawn = int(last["iteration"])
        if InteractiveShell.initialized():  # outside IPython there is nothing to show
            picture = {
                "image/png": figure_png(fig),
                "text/plain": f"{self.title}: live plot at iteration {self.drawn}",
            }
            if self.handle is None:
                self.handle = display(picture, raw=True, display_id=True)
            else:
                self.handle.update(picture, raw=True)
        plt.close(fig)
