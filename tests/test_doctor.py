"""The PPO doctor on synthetic histories: each rule fires on its pattern, stays quiet on
a healthy run. (Histories of real broken training runs: tests/test_doctor_runs.py.)"""

from __future__ import annotations

import math

import pytest

from ppo_lessons import diagnose
from ppo_lessons.doctor import PROBLEMS


def healthy(n: int = 40, **overrides) -> list[dict]:
    rows = []
    for u in range(1, n + 1):
        frac = u / n
        row = {
            "update": u,
            "step": u * 512,
            "episodic_return": 20 + 400 * frac,
            "approx_kl": 0.01,
            "clip_fraction": 0.12,
            "entropy": 0.69 - 0.3 * frac,
            "explained_variance": 0.2 + 0.7 * frac,
            "value_loss": 10.0 - 5 * frac,
            "policy_loss": -0.01,
        }
        for key, fn in overrides.items():
            row[key] = fn(u, frac)
        rows.append(row)
    return rows


def problems(history) -> list[str]:
    return [f.problem for f in diagnose(history)]


def test_healthy_run_is_quiet():
    assert diagnose(healthy()) == []


@pytest.mark.parametrize(
    ("overrides", "expected", "metric"),
    [
        ({"approx_kl": lambda u, f: 0.2}, "kl_too_high", "approx_kl"),
        ({"clip_fraction": lambda u, f: 0.7}, "clip_fraction_high", "clip_fraction"),
        (
            {"entropy": lambda u, f: 0.69 if u < 3 else 0.01},
            "entropy_collapse",
            "entropy",
        ),
        (
            {
                "entropy": lambda u, f: 0.69,
                "episodic_return": lambda u, f: 20.0 + (u % 3),
            },
            "entropy_too_high",
            "entropy",
        ),
        (
            {"explained_variance": lambda u, f: -0.3},
            "value_not_learning",
            "explained_variance",
        ),
        (
            {"value_loss": lambda u, f: 10.0 if u < 20 else 1e5},
            "value_loss_exploding",
            "value_loss",
        ),
        (
            {
                "approx_kl": lambda u, f: 1e-6,
                "episodic_return": lambda u, f: 20.0 + (u % 2),
            },
            "policy_not_moving",
            "approx_kl",
        ),
        (
            {"policy_loss": lambda u, f: math.nan if u == 7 else 0.0},
            "non_finite",
            "policy_loss",
        ),
    ],
)
def test_each_rule_names_its_problem(overrides, expected, metric):
    findings = diagnose(healthy(**overrides))
    assert expected in [f.problem for f in findings]
    finding = next(f for f in findings if f.problem == expected)
    assert finding.metric == metric
    assert finding.problem in PROBLEMS
    assert finding.advice and isinstance(finding.update, int)


def test_update_points_at_where_it_shows():
    history = healthy(approx_kl=lambda u, f: 0.005 if u < 10 else 0.3)
    finding = next(f for f in diagnose(history) if f.problem == "kl_too_high")
    assert finding.update == 10


def test_nan_explained_variance_alone_is_not_an_alarm():
    """Constant returns give nan explained variance by definition: not a NaN bug."""
    history = healthy(explained_variance=lambda u, f: math.nan if u == 1 else 0.5)
    assert "non_finite" not in problems(history)


def test_bad_history_is_refused():
    with pytest.raises(TypeError, match="list of metric dicts"):
        diagnose("history.json")
