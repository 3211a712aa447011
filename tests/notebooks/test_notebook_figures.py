"""Every code cell of a stored solution that draws a figure stores its picture.

A figure reaches a saved notebook only as an `image/png` output, and only when the
notebook was executed in a way that makes one: under `MPLBACKEND=Agg` (the test
command's setting) `plt.show()` stores nothing, and a `Figure` handed to `display`
stores its text, `<Figure size 1400x300 with 4 Axes>`. The prose still describes the
curve, and a reader of the static page sees none. Lesson 07 once lost four of its five
figures that way, and nothing noticed.

"Draws a figure" is read from the cell's source (its syntax tree, so a word in a
comment or a string does not count):

- a call on matplotlib or pyplot under the name the notebook imported it as
  (`plt.plot`, `plt.subplots`, `plt.show`; not `plt.close`, `plt.rcParams`, ...);
- a drawing method (`.plot`, `.imshow`, `.bar`, `.hist`, `.fill_between`, ...) on a
  receiver named as figures and axes are (`ax`, `axes[0]`, `ax2`, `fig`), so that
  `optimizer.step()` or `tensor.scatter_(...)` do not count;
- a call of one of the package's functions that draw, found by reading
  `ppo_lessons/` (not by a list kept here): every public function that returns a
  `Figure`, an `ExplorerBox` or an `EpisodeAnimation` or takes an `ax`, and every
  public class with a method returning a `Figure` (`LivePlot`);
- a call of a function defined in an earlier cell (or earlier in the same cell) of the
  notebook whose body draws.

Bugs this catches: a solution executed under a non-inline backend, a live plot whose
last draw was shown as text, a helper that stopped displaying its figure.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ppo_lessons"
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

# pyplot calls that configure or tidy up but draw nothing
NOT_DRAWING = {
    "close", "rc", "rcParams", "rcdefaults", "rc_context", "style", "use", "ion",
    "ioff", "interactive", "isinteractive", "get_backend", "switch_backend",
    "get_cmap", "colormaps", "cm", "colors", "ticker", "get_fignums", "setp",
    "cycler", "rcsetup",
}  # fmt: skip
DRAWING_METHODS = {
    "plot", "imshow", "bar", "barh", "hist", "hist2d", "scatter", "fill_between",
    "fill_betweenx", "errorbar", "semilogx", "semilogy", "loglog", "contour",
    "contourf", "pcolormesh", "pcolor", "matshow", "boxplot", "violinplot", "axhline",
    "axvline", "axhspan", "axvspan", "hlines", "vlines", "stairs", "stem", "step",
    "pie", "quiver", "hexbin", "ecdf", "add_subplot", "subplots", "savefig",
}  # fmt: skip
FIGURE_NAME = re.compile(r"^(?:ax|axs|axes|fig|figs|figure)(?:\d+|_\w+)?$|_(?:ax|fig)$")
PICTURE_TYPES = ("Figure", "ExplorerBox", "EpisodeAnimation")


# --- which of the package's names leave a picture ------------------------------------


def _annotation(node: ast.AST | None) -> str:
    return "" if node is None else ast.unparse(node)


def _returns_picture(func: ast.FunctionDef) -> bool:
    if any(kind in _annotation(func.returns) for kind in PICTURE_TYPES):
        return True
    if any(arg.arg == "ax" for arg in func.args.args + func.args.kwonlyargs):
        return True
    for node in ast.walk(func):  # builds one: `box = ExplorerBox(...)`, `return box`
        if isinstance(node, ast.Call) and ast.unparse(node.func) in PICTURE_TYPES[1:]:
            return True
    return False


def package_drawing_names(package: Path = PACKAGE) -> set[str]:
    """The public functions and classes of the package whose call leaves a picture."""
    names = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if getattr(node, "name", "_").startswith("_"):
                continue
            if isinstance(node, ast.FunctionDef) and _returns_picture(node):
                names.add(node.name)
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, ast.FunctionDef)]
                if any("Figure" in _annotation(m.returns) for m in methods):
                    names.add(node.name)
    return names


PACKAGE_DRAWING = package_drawing_names()


# --- which cells draw ----------------------------------------------------------------


def _parse(source: str) -> ast.Module | None:
    """The cell's syntax tree, with IPython's magics and shell lines blanked out."""
    lines = [
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    ]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _base_name(node: ast.AST) -> str | None:
    """`axes` for `axes[0, 1]`, `axes.flat[2]`, `ax`; None for anything else."""
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


class Notebook:
    """What the cells seen so far bound: matplotlib's aliases, drawing names."""

    def __init__(self) -> None:
        self.matplotlib: set[str] = set()  # plt, matplotlib, mpl, ...
        self.drawing: set[str] = set(PACKAGE_DRAWING)

    def learn_imports(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "matplotlib":
                        self.matplotlib.add(alias.asname or "matplotlib")
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if node.module.startswith("matplotlib") and alias.name == "pyplot":
                        self.matplotlib.add(bound)
                    elif node.module == "matplotlib.pyplot":
                        if alias.name not in NOT_DRAWING:
                            self.drawing.add(bound)
                    elif alias.name in PACKAGE_DRAWING:
                        self.drawing.add(bound)

    def why_drawn(self, nodes: Iterable[ast.AST]) -> str | None:
        """The first call among `nodes` that draws, as source text; None if none."""
        for node in nodes:
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in self.drawing:
                    return ast.unparse(func)
                if isinstance(func, ast.Attribute):
                    chain = []
                    inner: ast.AST = func
                    while isinstance(inner, ast.Attribute):
                        chain.append(inner.attr)
                        inner = inner.value
                    if isinstance(inner, ast.Name) and inner.id in self.matplotlib:
                        first = [a for a in reversed(chain) if a != "pyplot"]
                        if first and first[0] not in NOT_DRAWING:
                            return ast.unparse(func)
                    elif func.attr in self.drawing:
                        return ast.unparse(func)
                    elif func.attr in DRAWING_METHODS:
                        base = _base_name(func.value)
                        if base and FIGURE_NAME.match(base):
                            return ast.unparse(func)
                if isinstance(func, ast.Name) and func.id == "display":
                    for arg in node.args:
                        if isinstance(arg, ast.Name) and FIGURE_NAME.match(arg.id):
                            return f"display({arg.id})"
        return None

    def cell_draws(self, source: str) -> str | None:
        """Why the cell draws a figure (the call), or None; learns its definitions."""
        tree = _parse(source)
        if tree is None:
            return None
        self.learn_imports(tree)
        reason = None
        for statement in tree.body:
            if isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                if self.why_drawn(ast.walk(statement)):
                    self.drawing.add(statement.name)  # a helper of the notebook
                continue
            reason = reason or self.why_drawn(ast.walk(statement))
        last = tree.body[-1] if tree.body else None
        if (  # a figure as the cell's last expression is shown
            reason is None
            and isinstance(last, ast.Expr)
            and isinstance(last.value, ast.Name)
            and FIGURE_NAME.match(last.value.id)
        ):
            reason = last.value.id
        return reason


def has_image(cell: nbformat.NotebookNode) -> bool:
    return any("image/png" in output.get("data", {}) for output in cell.outputs)


def figure_problems(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """One line per code cell of `nb` that draws a figure but stores no PNG."""
    seen = Notebook()
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        reason = seen.cell_draws(cell.source)
        if reason and not has_image(cell):
            first = cell.source.splitlines()[0] if cell.source else ""
            problems.append(
                f"{name}, cell {index} ({first!r}): draws a figure ({reason}) but its "
                "stored outputs hold no image/png"
            )
    return problems


# --- the stored solutions ------------------------------------------------------------


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_plotting_cell_of_a_solution_stores_its_picture(path):
    problems = figure_problems(nbformat.read(path, as_version=4), path.name)
    assert not problems, "re-execute with the inline backend:\n" + "\n".join(problems)


# --- the test itself can fail --------------------------------------------------------


def notebook(*cells: tuple[str, bool]) -> nbformat.NotebookNode:
    """A notebook of code cells (source, whether its outputs hold a PNG)."""
    nb = nbformat.v4.new_notebook()
    for source, image in cells:
        cell = nbformat.v4.new_code_cell(source)
        if image:
            cell.outputs = [
                nbformat.v4.new_output(
                    "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": ""}
                )
            ]
        nb.cells.append(cell)
    return nb


def test_a_plotting_cell_without_its_picture_is_named():
    nb = notebook(
        ("import matplotlib.pyplot as plt", False),
        ("plt.plot([1, 2, 3])\nplt.show()", False),
    )
    (problem,) = figure_problems(nb, "99_memory.ipynb")
    assert problem.startswith("99_memory.ipynb, cell 1 ('plt.plot([1, 2, 3])')")
    with pytest.raises(AssertionError, match="cell 1"):
        assert not figure_problems(nb, "99_memory.ipynb"), "\n".join(
            figure_problems(nb, "99_memory.ipynb")
        )


def test_the_same_cell_with_its_picture_passes():
    nb = notebook(("import matplotlib.pyplot as plt\n\nplt.plot([1, 2])", True))
    assert figure_problems(nb, "x.ipynb") == []


@pytest.mark.parametrize(
    "source",
    [
        "from ppo_lessons.plotting import plot_seeds\n\nplot_seeds(x, c, 'a', 'b', 't')",
        "from ppo_lessons.plotting import show_frames as strip\n\nstrip(f, s, 't')",
        "import ppo_lessons.plotting as P\n\nP.plot_seeds(x, c, 'a', 'b', 't')",
        "from ppo_lessons.trainer import LivePlot, train\n\n"
        "run = train(config, callback=LivePlot(every=30))",
        "from ppo_lessons.trainer import animate_episode\n\nanimate_episode(agent, 'X')",
        "from ppo_lessons.widgets import gae_explorer\n\ngae_explorer()",
        "fig, axes = make()\naxes[0, 1].imshow(image)",
        "ax2.fill_between(x, low, high)",
        "import matplotlib\n\nmatplotlib.pyplot.figure()",
        "%matplotlib inline\nfig = get()\nfig",
    ],
)
def test_each_kind_of_drawing_call_is_seen(source):
    assert figure_problems(notebook((source, False)), "x.ipynb")


@pytest.mark.parametrize(
    "source",
    [
        "import matplotlib.pyplot as plt\n\nplt.close('all')\nplt.rcParams['a'] = 1",
        "optimizer.step()\nenvs.step(actions)\nx.scatter_(0, idx, y)",
        "# plt.plot(x) in a comment\nprint('plt.show()')",
        "from ppo_lessons.plotting import history_curves\n\nc = history_curves(h, 'k')",
        "def helper():\n    pass\n\nhelper()",
    ],
)
def test_cells_that_draw_nothing_are_not_flagged(source):
    assert figure_problems(notebook((source, False)), "x.ipynb") == []


def test_a_notebooks_own_plotting_helper_counts_where_it_is_called():
    nb = notebook(
        ("import matplotlib.pyplot as plt\n\n\ndef curve(x):\n    plt.plot(x)", False),
        ("curve([1, 2])", False),
    )
    (problem,) = figure_problems(nb, "x.ipynb")
    assert "cell 1" in problem and "(curve)" in problem


def test_the_package_drawing_names_are_read_from_the_package():
    expected = {
        "plot_band", "plot_seeds", "show_frames", "LivePlot", "animate_episode",
        "clipping_explorer", "gae_explorer", "importance_explorer",
        "ratio_spread_explorer", "plot_variants", "plot_ablation", "plot_diagnostics",
    }  # fmt: skip
    assert expected <= PACKAGE_DRAWING
    assert (
        not {"history_curves", "mean_and_band", "train", "evaluate"} & PACKAGE_DRAWING
    )


def test_a_live_plot_stores_its_last_figure_under_any_backend(tmp_path):
    """Under MPLBACKEND=Agg a `Figure` handed to `display` stores only its text; the
    live plot sends a PNG of its last draw instead (lesson 07 lost two curves so)."""
    from nbclient import NotebookClient

    nb = notebook(
        (
            "from ppo_lessons.trainer_display import LivePlot\n\n"
            "plot, history = LivePlot(every=2), []\n"
            "for u in range(1, 6):\n"
            "    history.append({'update': u, 'step': 256 * u, 'episodic_return': 1.0,"
            " 'value_loss': 1.0, 'entropy': 0.6, 'approx_kl': 0.01})\n"
            "    plot(history[-1], history)\n"
            "plot.finish()",
            False,
        )
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MPLBACKEND", "Agg")
        NotebookClient(nb, timeout=120, kernel_name="python3").execute(
            cwd=str(tmp_path)
        )
    (output,) = nb.cells[0].outputs  # one output, updated in place
    assert output.data["image/png"]
    assert (
        output.data["text/plain"] == "live plot at update 5 (1,280 environment steps)"
    )
    assert figure_problems(nb, "x.ipynb") == []
