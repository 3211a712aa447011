"""Stored notebooks read on a static page: what `jupyter nbconvert --to html` shows.

A static renderer (GitHub, nbviewer, an HTML export) runs no kernel and, here, no
widget JavaScript: of each output it shows the richest representation it can. So:

- every interactive explorer must leave a PNG of its first figure (not the widget's
  repr, `VBox(children=(HBox(...`);
- every progress bar must leave its final line, not the `0%| | 0/100` it started at;
- an episode animation must leave a strip of frames as a PNG (its player needs
  JavaScript, which GitHub and an untrusted notebook drop).

The first tests run the package's widgets, bars and animation in a real kernel
(nbclient, as `jupyter nbconvert --execute` does) and convert the result with
nbconvert's HTML exporter. The last one converts every stored solution notebook the
same way; it fails on a solution whose stored outputs predate these rules (re-execute
it) or that stores widget state (nbconvert then shows the widget through JavaScript
loaded from the web instead of the picture: execute with
`--ExecutePreprocessor.store_widget_state=False`, or drop `metadata.widgets`).

Bugs these tests catch: an explorer without its picture, a bar stored at 0%, a
`VBox(...)` repr in an output, an animation that shows nothing without JavaScript, a
live-plot step axis whose labels run into each other.
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

# ipywidgets' classes as their repr spells them: `VBox(children=(...`
WIDGET_REPR = re.compile(
    r"\b(?:V|H|Grid)?Box\(children=|\b(?:Float|Int)\w*(?:Slider|Progress)\(value="
    r"|\b(?:Output|ToggleButtons|Dropdown|Button|HTML|Label)\((?:layout|value|options"
    r"|description|outputs)="
)
ZERO_BAR = re.compile(r"(?<![\d.])0%\|")  # tqdm's first state: "  0%|     | 0/100"
PNG_IMAGE = re.compile(r'<img[^>]*src="data:image/png;base64,')
EXPLORER_CALL = re.compile(r"^\w+_explorer\(.*\)\s*$", re.MULTILINE)
ANIMATION_CALL = re.compile(r"\banimate_episode\(")
CELL_START = re.compile(r'<div[^>]*class="jp-Cell [^"]*"[^>]*id="cell-id=([^"]+)"')


def html_by_cell(nb: nbformat.NotebookNode) -> dict[str, str]:
    """nbconvert's HTML of `nb` (its default template), cut into cells by cell id."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    starts = list(CELL_START.finditer(body))
    assert starts, "nbconvert's HTML no longer marks cells with id='cell-id=...'"
    ends = [m.start() for m in starts[1:]] + [len(body)]
    return {m[1]: body[m.start() : end] for m, end in zip(starts, ends, strict=True)}


def outputs_html(cell_html: str) -> str:
    """The output part of one cell's HTML (the source is left out)."""
    cut = cell_html.find("jp-Cell-outputWrapper")
    return cell_html[cut:] if cut >= 0 else ""


def static_page_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What a static page of `nb` shows wrong, one line per cell and problem."""
    problems = []
    pages = html_by_cell(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        shown = outputs_html(pages.get(cell.get("id"), ""))
        text = html.unescape(re.sub(r"<[^>]+>", "", shown))
        where = f"cell {index} ({cell.source.splitlines()[-1][:50]!r})"
        if match := WIDGET_REPR.search(text):
            problems.append(f"{where}: a raw widget repr {match[0]!r}...")
        if ZERO_BAR.search(text):
            problems.append(f"{where}: a progress bar at 0%")
        if EXPLORER_CALL.search(cell.source) and not PNG_IMAGE.search(shown):
            problems.append(f"{where}: an explorer without a picture")
        if ANIMATION_CALL.search(cell.source) and not PNG_IMAGE.search(shown):
            problems.append(f"{where}: an animation without a strip of frames")
        if 'type="application/vnd.jupyter.widget-view+json"' in shown:
            problems.append(
                f"{where}: a widget drawn from the stored widget state by JavaScript "
                "loaded from the web (nothing offline; no picture)"
            )
    return problems


# --- the package's widgets, bars and animation, run in a real kernel ----------------

KERNEL_CELLS = {
    "clipping": "from ppo_lessons.widgets import clipping_explorer\n\nclipping_explorer()",
    "gae": "from ppo_lessons.widgets import gae_explorer\n\ngae_explorer()",
    "importance": "from ppo_lessons.widgets import importance_explorer\n\nimportance_explorer()",
    "ratio": "from ppo_lessons.widgets import ratio_spread_explorer\n\nratio_spread_explorer()",
    "loop": "from ppo_lessons.progress import tqdm\n\nfor _ in tqdm(range(30), desc='loop'):\n    pass",
    "train": (
        "from ppo_lessons.trainer import PPOConfig, train\n\n"
        "run = train(PPOConfig(total_steps=1024, num_envs=4, num_steps=128, "
        "device='cpu'))"
    ),
    "animation": (
        "from ppo_lessons.networks import ActorCritic\n"
        "from ppo_lessons.trainer import animate_episode\n\n"
        "animate_episode(ActorCritic(4, 2, discrete=True), 'CartPole-v1', max_steps=12)"
    ),
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> nbformat.NotebookNode:
    """A notebook of KERNEL_CELLS executed by nbclient (widget state stored, as
    `jupyter nbconvert --execute` stores it), with the inline figure backend."""
    pytest.importorskip("pygame")  # CartPole's rgb_array frames
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in KERNEL_CELLS.values()]
    for cell, name in zip(nb.cells, KERNEL_CELLS, strict=True):
        cell.id = name
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        patch.setenv("PPO_LESSONS_QUICK", "1")
        NotebookClient(nb, timeout=600, kernel_name="python3").execute(
            cwd=str(tmp_path_factory.mktemp("kernel"))
        )
    return nb


def without_widget_state(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    stored = copy.deepcopy(nb)
    stored.metadata.pop("widgets", None)
    return stored


def outputs(nb: nbformat.NotebookNode, name: str) -> list:
    return next(cell for cell in nb.cells if cell.id == name).outputs


def test_a_static_page_of_the_executed_notebook_has_no_problem(executed):
    assert "widgets" in executed.metadata  # nbclient stored state: the bars' too
    assert static_page_problems(without_widget_state(executed)) == []


@pytest.mark.parametrize("name", ["clipping", "gae", "importance", "ratio"])
def test_an_explorer_stores_its_widget_a_picture_and_a_line_of_text(executed, name):
    (output,) = outputs(executed, name)
    assert "application/vnd.jupyter.widget-view+json" in output.data  # live in Lab
    assert output.data["image/png"]  # static pages
    text = output.data["text/plain"]
    assert "explorer" in text and "JupyterLab" in text and "Box(" not in text
    shown = outputs_html(html_by_cell(without_widget_state(executed))[name])
    assert PNG_IMAGE.search(shown) and "widget-view" not in shown


def test_the_explorers_picture_is_its_first_figure(executed):
    """The PNG holds the figure the widget opens with (the same drawing code)."""
    import base64
    import io

    import matplotlib.image as mpimg

    from ppo_lessons.widgets.clipping_explorer import draw_clipping_figure
    from ppo_lessons.widgets.static import figure_png

    (output,) = outputs(executed, "clipping")
    stored = mpimg.imread(io.BytesIO(base64.b64decode(output.data["image/png"])))
    fig = draw_clipping_figure(0.2, 1.0, (0.0, 2.0))
    expected = mpimg.imread(io.BytesIO(base64.b64decode(figure_png(fig))))
    assert stored.shape == expected.shape
    assert np.abs(stored - expected).mean() < 0.01


@pytest.mark.parametrize(
    ("name", "line"), [("loop", "loop: 100%|"), ("train", "100%|")]
)
def test_a_finished_bar_leaves_its_final_line(executed, name, line):
    bars = [o for o in outputs(executed, name) if o.output_type == "display_data"]
    (bar,) = [o for o in bars if "|" in o.data.get("text/plain", "")]
    assert list(bar.data) == ["text/plain"]  # the widget is gone: no model to miss
    assert bar.data["text/plain"].startswith(line)
    for stored in (executed, without_widget_state(executed)):
        assert not ZERO_BAR.search(html_by_cell(stored)[name])


def test_an_animation_leaves_a_strip_and_hides_its_player_until_its_script_runs(
    executed,
):
    player, strip = outputs(executed, "animation")
    markup = player.data["text/html"]
    box = re.search(
        r'<div id="([\w-]+)" class="ppo-episode-player" style="display: none">', markup
    )
    assert box, "the player must be hidden where scripts do not run"
    assert f'document.getElementById("{box[1]}").style.display = ""' in markup
    assert strip.data["image/png"] and "12 steps" in strip.data["text/plain"]


def test_live_plot_step_labels_do_not_overlap_at_100k_steps():
    import matplotlib

    matplotlib.use("Agg")
    from ppo_lessons.trainer_display import LivePlot

    plot = LivePlot()
    plot.history = [
        {"update": u, "step": 2048 * u, "episodic_return": float(u),
         "value_loss": 1.0 / u, "entropy": 0.6, "approx_kl": 0.01}
        for u in range(1, 50)
    ]  # fmt: skip
    fig = plot.figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        labels = [
            t
            for t, x in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True)
            if t.get_text() and low <= x <= high
        ]
        boxes = [t.get_window_extent(renderer) for t in labels]
        em = renderer.points_to_pixels(labels[0].get_fontsize())
        assert len(boxes) >= 2
        for left, right in zip(boxes, boxes[1:], strict=False):
            # at least one em between labels, or they read as one number
            assert right.x0 - left.x1 >= em, [t.get_text() for t in labels]


# --- the stored solutions ------------------------------------------------------------


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_stored_solution_reads_on_a_static_page(path):
    problems = static_page_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}, converted to HTML:\n" + "\n".join(problems)
