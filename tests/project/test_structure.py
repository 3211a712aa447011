"""The package's shape (a newcomer can find their way): modules readable in one
sitting, no import cycles (also through a package's `__init__`), floors in lesson
order, the grader apart from the student's code, no private name borrowed from another
module, short functions. Each test names what it catches."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ppo_lessons"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 500  # STYLE 12c
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS_ALLOWED = {"ppo_lessons.trainer.train"}  # the loop, read top to bottom

# Floors: a module imports only modules on its own floor or below. COURSE is the
# lesson-less ground floor (argument checks, plots, the exercise table, reading a
# notebook's cells, running statistics, the metric history and its doctor), which
# imports only COURSE; a lesson's module sits on its lesson's floor; TOOLS (the lab
# bench, the notebook helpers, the packages' front doors, the CLIs, the grader) may
# import anything, and no lesson's module imports them. Two placements say why:
# - the batched tensor envs sit with the trainer (07), which selects them with
#   env_backend="torch"; lesson 09 derives their CartPole step (checks.lesson09);
# - lesson 06's ratio-spread explorer steps a rollout the trainer collects, so it
#   sits on the trainer's floor (07); lesson 06's notebook imports the trainer too;
# - the recurrent policy (memory) sits with the trainer (07), which selects it with
#   recurrent="gru"; lesson 11 derives its replay (checks.lesson11).
COURSE, TOOLS = -1, 99
FLOORS = {
    COURSE: """ppo_lessons validate progress plotting exercises cells speed history
        doctor doctor_rules normalize widgets.static checks.harness""",
    0: "envs episodes",
    1: "policy_gradient checks.lesson01",
    2: "importance_sampling widgets.importance checks.lesson02",
    3: "clipping widgets.clipping_explorer checks.lesson03",
    4: "gae chain widgets.gae_explorer checks.lesson04",
    5: "networks checks.lesson05",
    6: """losses update checks.lesson06 checks.lesson06_update
        checks.lesson06_minibatches""",
    7: """buffer rollout trainer trainer_run trainer_config trainer_display functions checkpoint
        probes presets torch_envs torch_vector_env widgets.ratio_spread
        checks.lesson07 checks.lesson07_rollout memory memory.replay memory.network
        memory.rollout memory.update memory.recorded""",
    8: "experiments.flaws",
    9: """population population.envs population.members population.network
        population.random population.trainer population.update checks.lesson09""",
    10: """language language.task language.tokens language.model language.pretrain
        language.finetune language.plots checks.lesson10""",
    11: "checks.lesson11",
    TOOLS: """checks widgets experiments experiments.records experiments.intervals
        experiments.variants experiments.figures notebook train language.__main__
        grade release grading grading.child grading.classroom grading.cli
        grading.export grading.guard grading.judge grading.names grading.notebooks
        grading.records grading.record_values grading.record_modules
        grading.record_effects grading.record_layout grading.reports grading.sandbox""",
}
# the course machinery the student's code never imports (issue: floors in order)
GRADING_WING = ("ppo_lessons.grading", "ppo_lessons.grade", "ppo_lessons.release")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_table() -> dict[str, int]:
    table = {}
    for floor, names in FLOORS.items():
        for name in names.split():
            table["ppo_lessons" if name == "ppo_lessons" else f"ppo_lessons.{name}"] = (
                floor
            )
    return table


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from ppo_lessons... import names` and `import
    ppo_lessons...` anywhere in the file (top level, functions, TYPE_CHECKING),
    relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] == "ppo_lessons":
                found.append((module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ppo_lessons":
                    found.append((alias.name, []))
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules importing it runs. Importing `a.b.c` from outside
    the package `a.b` first runs `a/b/__init__.py`: that is an edge too (the loop the
    trainer's display once closed through `widgets/__init__`). A submodule's own
    packages are already running when it runs: no edge to them."""
    names = {module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        me = module_name(path)
        edges = set()
        for module, imported in imported_modules(path):
            targets = [f"{module}.{n}" for n in imported if f"{module}.{n}" in names]
            targets += [module] if module in names else []
            for target in targets:  # `from ppo_lessons import gae` imports a module
                parts = target.split(".")
                edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[me] = {
            m for m in edges if m in names and m != me and not me.startswith(m + ".")
        }
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    return [" <-> ".join(c) for c in strongly_connected(graph)]


def inversions_in(graph: dict[str, set[str]], floors: dict[str, int]) -> list[str]:
    def say(floor: int) -> str:
        return {COURSE: "course", TOOLS: "tools"}.get(floor, f"lesson {floor:02d}")

    return [
        f"{me} ({say(floors[me])}) imports {it} ({say(floors[it])})"
        for me, targets in sorted(graph.items())
        for it in sorted(targets)
        if floors[it] > floors[me]
    ]


def in_wing(module: str) -> bool:
    return any(module == w or module.startswith(w + ".") for w in GRADING_WING)


def wing_imports_in(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{me} imports {it}"
        for me, targets in sorted(graph.items())
        if not in_wing(me)
        for it in sorted(targets)
        if in_wing(it)
    ]


def notebook_imports() -> dict[str, set[str]]:
    """notebook -> the `ppo_lessons` modules its code cells import."""
    found = {}
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        source = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "code"
        )
        found[path.name] = set(
            re.findall(r"(?:from|import) (ppo_lessons[\w.]*)", source)
        )
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_is_readable_in_one_sitting(path):
    # catches a module that has grown rulers inside it and wants to be a package
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module_name(path)} has {lines} lines"


def test_no_import_cycles_between_the_package_s_modules():
    # catches persistence or display reaching back up into the trainer, also through
    # a package's __init__ (trainer -> trainer_display -> widgets.static runs
    # widgets/__init__, which imports ratio_spread, which imports the trainer)
    cycles = cycles_in(import_graph())
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_every_module_has_a_floor_and_a_lesson_module_says_its_lesson():
    # catches a new module nobody placed, and a table that disagrees with the
    # module's own first docstring line ("Lesson 04 (`04_gae.ipynb`): ...")
    floors, problems = floor_table(), []
    for path in MODULES:
        name = module_name(path)
        if name not in floors:
            problems.append(f"{name} has no floor in FLOORS")
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        said = re.match(r"Lesson (\d\d) \(", doc)
        if said and floors[name] not in (int(said[1]), TOOLS):
            problems.append(f"{name} says lesson {said[1]}, FLOORS {floors[name]}")
    stale = set(floors) - {module_name(p) for p in MODULES}
    problems += [f"{name} in FLOORS is not a module" for name in sorted(stale)]
    assert not problems, problems


def test_no_module_imports_a_later_lesson_s_module():
    # catches lesson 00's envs importing lesson 09's torch_envs, or a lesson's module
    # importing a tool (the notebook helpers, the grader) that sits above every lesson
    inversions = inversions_in(import_graph(), floor_table())
    assert not inversions, inversions


def test_the_student_s_code_never_imports_the_grader():
    # catches a lesson helper reaching into ppo_lessons.grading (the grader reads the
    # student's notebooks; never the other way round), in the package or a notebook
    offenders = wing_imports_in(import_graph())
    offenders += [
        f"{notebook} imports {module}"
        for notebook, modules in notebook_imports().items()
        for module in sorted(modules)
        if in_wing(module)
    ]
    assert not offenders, offenders


def test_no_private_name_is_imported_from_another_module():
    # catches `from ppo_lessons.x import _helper`: a private name is free to change
    offenders = [
        f"{module_name(path)} imports {name} from {module}"
        for path in MODULES
        for module, names in imported_modules(path)
        for name in names
        if name.startswith("_") or any(p.startswith("_") for p in module.split("."))
    ]
    assert not offenders, offenders


def test_functions_are_short():
    # catches a function that should be split into named, testable steps
    long = []
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                qualified = f"{module_name(path)}.{node.name}"
                size = node.end_lineno - node.lineno + 1
                if (
                    size > MAX_FUNCTION_LINES
                    and qualified not in LONG_FUNCTIONS_ALLOWED
                ):
                    long.append(f"{qualified} ({size} lines)")
    assert not long, long
