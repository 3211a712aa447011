"""Shared test set-up: the one device parametrization, and the gpu marker's skip.

A test that takes the `device` fixture runs once on the CPU and once on CUDA; the CUDA
run carries the `gpu` marker. Every test marked `gpu` (by the fixture or by hand) is
skipped, with its reason, on a machine without CUDA: `-m gpu` selects exactly the
tests a GPU machine should run.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """ "cpu", then "cuda" (marked gpu)."""
    return request.param


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
