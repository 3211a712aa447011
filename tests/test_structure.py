"""The package's shape (a newcomer can find their way): modules readable in one
sitting, no import cycles, no private name borrowed from another module, short
functions. Each test names what it catches."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ppo_lessons"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS_ALLOWED = {"ppo_lessons.trainer.train"}  # the loop, read top to bottom


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from ppo_lessons... import names` and `import
    ppo_lessons...` anywhere in the file (top level, functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "ppo_lessons":
                found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ppo_lessons":
                    found.append((alias.name, []))
    return found


def import_graph() -> dict[str, set[str]]:
    names = {module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        edges = set()
        for module, imported in imported_modules(path):
            for name in imported:  # `from ppo_lessons import gae` imports a module
                if f"{module}.{name}" in names:
                    edges.add(f"{module}.{name}")
            if module in names:
                edges.add(module)
        me = module_name(path)
        graph[me] = {m for m in edges if m != me and not me.startswith(m + ".")}
    return graph


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_is_readable_in_one_sitting(path):
    # catches a module that has grown rulers inside it and wants to be a package
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module_name(path)} has {lines} lines"


def test_no_import_cycles_between_the_package_s_modules():
    # catches persistence or display reaching back up into the trainer
    graph, state, cycles = import_graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing its own submodules is not a cycle
    cycles = [c for c in cycles if not all(m.startswith(c[0]) for m in c)]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


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
