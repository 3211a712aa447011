"""Progress bars that leave their last state in a saved notebook.

    from ppo_lessons.progress import tqdm   # instead of: from tqdm.auto import tqdm

In a terminal this is tqdm's usual text bar. In a notebook it is tqdm's widget bar,
with one difference. A widget's output stores, besides the widget, a plain-text copy
made when the bar first appears: `0%| | 0/100 [00:00<?, ?it/s]`. A static page of
the notebook (GitHub, nbviewer, an HTML export), or JupyterLab reopening it without
the widget's state, shows that copy: a bar stuck at 0% above finished results. So
when the bar closes, its output is replaced by the bar's final line as plain text,
e.g. `runs: 100%|██████████| 12/12 [00:31<00:00, 2.61s/it]`, which every reader
shows.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm as auto_tqdm
from tqdm.notebook import tqdm_notebook

__all__ = ["NotebookProgress", "tqdm", "trange"]


class NotebookProgress(tqdm_notebook):
    """tqdm's notebook bar, shown under a display id and replaced by its final line
    (plain text) when it closes; with `leave=False` it leaves nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from IPython.display import display

        show = kwargs.pop("display", True)
        super().__init__(*args, display=False, **kwargs)
        self.handle = None  # the output to replace on close
        if show and not self.disable and self.delay <= 0:
            self.handle = display(self.container, display_id=True)
            self.displayed = True

    def final_line(self) -> str:
        """The bar's current state as one line of text."""
        return self.format_meter(**self.format_dict)

    def close(self) -> None:
        if self.disable:  # closed already (tqdm sets `disable` on close)
            return
        line = self.final_line() if self.leave else ""
        super().close()
        if self.handle is not None:
            self.handle.update({"text/plain": line}, raw=True)


if issubclass(auto_tqdm, tqdm_notebook):  # a Jupyter kernel with ipywidgets
    tqdm: type = NotebookProgress
else:
    tqdm = auto_tqdm


def trange(*args: Any, **kwargs: Any) -> Any:
    """`tqdm(range(*args), **kwargs)`, as tqdm's own `trange`."""
    return tqdm(range(*args), **kwargs)
