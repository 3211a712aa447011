"""What a stored notebook keeps of a live explorer: a picture of its first state.

A cell's output is a bundle of representations, and each reader shows the richest one
it can. JupyterLab with a running kernel shows the live widget
(`application/vnd.jupyter.widget-view+json`). A static page (GitHub, nbviewer,
`jupyter nbconvert --to html`) cannot run the widget: nbconvert skips the widget view
when the notebook holds no widget state for it and takes the next representation in
its order, here the PNG of the explorer's first figure. The plain-text line replaces
the widget's `repr` (`VBox(children=(HBox(...`), which says nothing to a reader.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from ppo_lessons.plotting import figure_png  # also the trainer's display's

__all__ = ["ExplorerBox", "figure_png"]


class ExplorerBox(widgets.VBox):
    """A `VBox` whose output also holds a picture of its first state and a short text.

    Args:
        children: the widgets, as for `VBox`.
        picture: the figure the explorer shows when it opens.
        summary: one line for readers that show neither the widget nor the picture.
    """

    def __init__(
        self, children: list[widgets.Widget], picture: Figure, summary: str, **kwargs
    ) -> None:
        super().__init__(children, **kwargs)
        self.picture_png = figure_png(picture)
        self.summary = summary

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs)
        data["image/png"] = self.picture_png
        data["text/plain"] = self.summary
        return data
