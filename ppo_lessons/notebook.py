"""The first code cell of every lesson: `from ppo_lessons.notebook import setup; setup()`.

It fixes the seeds, makes matplotlib figures readable on a static page, and keeps
PyTorch to one thread under the test command (`ppo_lessons.quick_mode()`), where
several notebooks run in parallel on a small machine and would otherwise fight over
the cores.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ppo_lessons import quick_mode

__all__ = ["setup"]


def setup(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch; set plotting defaults; cap threads in quick mode.

    Args:
        seed: the seed of the lesson's random draws (printed results depend on it).
    """
    import matplotlib as mpl

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seeds the global draws students may use)
    torch.manual_seed(seed)
    if quick_mode():
        torch.set_num_threads(1)
    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 9,
        }
    )
    print(f"seed {seed}; quick mode {'on' if quick_mode() else 'off'}")
