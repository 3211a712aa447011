"""Comparing two runs' metric histories (a seeded rerun, a resumed run)."""

from __future__ import annotations

import math

TIMING_KEYS = ("steps_per_second",)  # wall-clock: never the same twice


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def same_history(a: list[dict], b: list[dict]) -> bool:
    """Equal row for row but for the timing keys (NaN equals NaN: an update without a
    finished episode, a metric not measured)."""
    a, b = without_timing(a), without_timing(b)
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for key in ra.keys() | rb.keys():
            x, y = ra.get(key), rb.get(key)
            if not (
                x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
            ):
                return False
    return True
