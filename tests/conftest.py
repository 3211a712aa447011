"""Shared test set-up: the one device parametrization, the gpu marker's skip, a marker
per wing folder, and the fast tier.

A test that takes the `device` fixture runs once on the CPU and once on CUDA; the CUDA
run carries the `gpu` marker. Every test marked `gpu` (by the fixture or by hand) is
skipped, with its reason, on a machine without CUDA: `-m gpu` selects exactly the
tests a GPU machine should run.

Every test file sits in a wing folder, `tests/<wing>/test_*.py`, and its tests carry
the wing's marker (`-m trainer`). A new folder is a new wing at once: its marker is
registered here when pyproject.toml does not list it yet. The fast tier (`-m fast`,
`python3 scripts/course.py test --fast`) is every test of the wings in FAST_WINGS that
is not marked `slow`, `browser`, `gpu` or `heavy` (seconds of work: a learning run,
a Jupyter kernel, the grader, a check that runs the update many times).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
NOT_WINGS = {"support", "data"}  # shared helpers and recorded histories
FAST_WINGS = {"lessons", "project", "memory"}  # pure functions, checks, housekeeping
NOT_FAST = ("slow", "browser", "gpu", "heavy")


def wings() -> list[str]:
    """The folders of tests/ that hold test files."""
    return sorted(
        folder.name
        for folder in TESTS.iterdir()
        if folder.is_dir()
        and folder.name not in NOT_WINGS
        and any(folder.rglob("test_*.py"))
    )


def wing_of(path: Path) -> str | None:
    """The wing folder a test file sits in (None outside tests/)."""
    try:
        parts = path.resolve().relative_to(TESTS).parts
    except ValueError:
        return None  # nbval's notebooks
    return parts[0] if len(parts) > 1 and parts[0] not in NOT_WINGS else None


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """ "cpu", then "cuda" (marked gpu)."""
    return request.param


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":")[0].strip() for line in config.getini("markers")}
    for wing in wings():
        if wing not in known:
            config.addinivalue_line("markers", f"{wing}: tests/{wing}/ (a new wing)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`-m fast` alone skips importing the other wings' files (they hold no fast test),
    which saves each worker a few seconds."""
    if config.getoption("markexpr", "") != "fast":
        return None
    folder = collection_path.resolve()
    if (
        folder.parent == TESTS
        and folder.name in wings()
        and folder.name not in FAST_WINGS
    ):
        return True
    return None


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    for item in items:
        wing = wing_of(item.path)
        if wing is None:
            continue
        item.add_marker(wing)
        if wing in FAST_WINGS and not any(
            item.get_closest_marker(name) for name in NOT_FAST
        ):
            item.add_marker("fast")
    import torch  # here, not at the top: xdist's controller process never needs it

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
