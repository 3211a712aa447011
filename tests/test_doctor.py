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


CASES = [
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
    (
        {"policy_loss": lambda u, f: -40.0 + u},
        "advantages_not_normalized",
        "policy_loss",
    ),
    (
        {
            "episodic_length": lambda u, f: 200.0 if u % 3 == 0 else math.nan,
            "value_loss": lambda u, f: 8.0 if u % 3 == 0 else 0.1,
        },
        "value_fails_at_time_limit",
        "value_loss",
    ),
]


def test_every_problem_has_a_case():
    assert sorted(expected for _, expected, _ in CASES) == sorted(PROBLEMS)


@pytest.mark.parametrize(("overrides", "expected", "metric"), CASES)
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


def test_one_kl_jump_is_named_where_it_happened():
    """lr far too high: one huge step, then a collapsed policy whose KL reads ~0,
    so the median is small; the jump itself must be reported."""
    history = healthy(approx_kl=lambda u, f: 2.0 if u == 5 else 0.0)
    finding = next(f for f in diagnose(history) if f.problem == "kl_too_high")
    assert finding.update == 5
    assert "jumped" in finding.advice


def test_one_kl_outlier_of_a_healthy_run_is_not_a_jump():
    """Healthy CartPole runs peak at an approx KL of about 0.09 in some update."""
    assert diagnose(healthy(approx_kl=lambda u, f: 0.09 if u == 5 else 0.01)) == []


def test_a_collapsed_policy_is_not_told_to_raise_the_learning_rate():
    """A deterministic policy's KL is ~0 because it cannot move: the doctor names
    the collapse, not "policy not moving, raise the learning rate"."""
    history = healthy(
        entropy=lambda u, f: 0.69 if u == 1 else 1e-6,
        approx_kl=lambda u, f: 0.0,
        episodic_return=lambda u, f: 9.0 + (u % 2),
    )
    assert "entropy_collapse" in problems(history)
    assert "policy_not_moving" not in problems(history)


def time_limit_history(loss_at_cut: float, every: int = 3) -> list[dict]:
    """Updates with an episode cut at 200 steps (every `every`-th), the others with
    no episode ending; value loss 0.1 without a cut."""
    return healthy(
        episodic_length=lambda u, f: 200.0 if u % every == 0 else math.nan,
        value_loss=lambda u, f: loss_at_cut if u % every == 0 else 0.1,
    )


def test_time_limit_rule_points_at_the_first_cut():
    finding = next(
        f
        for f in diagnose(time_limit_history(8.0))
        if f.problem == "value_fails_at_time_limit"
    )
    assert finding.update == 3


def test_time_limit_rule_is_quiet_when_the_cuts_fit_as_well():
    """Healthy runs: the value loss with a cut is 0.3-3.5x that without."""
    assert diagnose(time_limit_history(0.35)) == []


def test_time_limit_rule_needs_updates_without_a_cut():
    """Every update has a cut (Pendulum: all episodes end at 200 steps): nothing to
    compare with, so no finding, however large the value loss."""
    assert "value_fails_at_time_limit" not in problems(time_limit_history(8.0, every=1))


def test_findings_come_in_the_order_of_problems():
    history = healthy(
        approx_kl=lambda u, f: 0.2,
        policy_loss=lambda u, f: -30.0,
        explained_variance=lambda u, f: -0.3,
    )
    found = problems(history)
    assert found == ["kl_too_high", "advantages_not_normalized", "value_not_learning"]
    assert found == [p for p in PROBLEMS if p in found]


def test_nan_explained_variance_alone_is_not_an_alarm():
    """Constant returns give nan explained variance by definition: not a NaN bug."""
    history = healthy(explained_variance=lambda u, f: math.nan if u == 1 else 0.5)
    assert "non_finite" not in problems(history)


def test_bad_history_is_refused():
    with pytest.raises(TypeError, match="list of metric dicts"):
        diagnose("history.json")
