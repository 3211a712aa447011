"""Interactive explorers for the lessons (ipywidgets + matplotlib).

Each explorer has a pure part (the numbers it draws, tested with pytest), a function
that draws the static default figure (so the notebook reads without a kernel), and a
function that builds the live widget.
"""

from ppo_lessons.widgets.clipping_explorer import clipping_explorer  # noqa: F401
from ppo_lessons.widgets.gae_explorer import gae_explorer  # noqa: F401
