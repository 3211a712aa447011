"""Interactive explorers for the lessons (ipywidgets + matplotlib).

Each explorer has a pure part (the numbers it draws, tested with pytest), a function
that draws the static default figure (so the notebook reads without a kernel), and a
function that builds the live widget. The live widget is an `ExplorerBox`: its stored
output also holds a PNG of its first figure, which a static page shows in its place.
"""

from ppo_lessons.widgets.clipping_explorer import clipping_explorer
from ppo_lessons.widgets.gae_explorer import gae_explorer
from ppo_lessons.widgets.importance import importance_explorer
from ppo_lessons.widgets.ratio_spread import ratio_spread_explorer

__all__ = [
    "clipping_explorer",
    "gae_explorer",
    "importance_explorer",
    "ratio_spread_explorer",
]
