"""The check of lesson 09 (`cartpole_step`) accepts correct implementations however
they are written and names each typical mistake; the grader grades it."""

from __future__ import annotations

import io
import math
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from support.replay import replayed

from ppo_lessons import checks, grade
from ppo_lessons.checks.harness import generator
from ppo_lessons.checks.lesson09 import cartpole_cases
from ppo_lessons.exercises import EXERCISES
from ppo_lessons.torch_envs import cartpole_step

GRAVITY, MASS_CART, MASS_POLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASS_CART + MASS_POLE
THETA_BOUND = 12 * 2 * math.pi / 360


def accelerations(theta, theta_dot, force, length=LENGTH):
    """(ẍ, θ̈) of Gymnasium's CartPole, elementwise (tensors, arrays or floats)."""
    lib = {torch.Tensor: torch, np.ndarray: np}.get(type(theta), math)
    sin, cos = lib.sin(theta), lib.cos(theta)
    temp = (force + MASS_POLE * length * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (
        length * (4 / 3 - MASS_POLE * cos**2 / TOTAL_MASS)
    )
    return temp - MASS_POLE * length * theta_acc * cos / TOTAL_MASS, theta_acc


def student_step(
    state,
    actions,
    *,
    semi_implicit=False,
    force_sign=1.0,
    length=LENGTH,
    theta_bound=THETA_BOUND,
    compare=torch.gt,
    terminated_from_old=False,
    one_sided=False,
    reward_at_end=1.0,
):
    """A student's vectorized cartpole_step, with one mistake switched on."""
    x, x_dot, theta, theta_dot = state[:, 0], state[:, 1], state[:, 2], state[:, 3]
    force = force_sign * FORCE_MAG * (2 * actions - 1)  # (N,) ±10
    x_acc, theta_acc = accelerations(theta, theta_dot, force, length)
    new_x_dot = x_dot + TAU * x_acc
    new_theta_dot = theta_dot + TAU * theta_acc
    if semi_implicit:
        new_x, new_theta = x + TAU * new_x_dot, theta + TAU * new_theta_dot
    else:
        new_x, new_theta = x + TAU * x_dot, theta + TAU * theta_dot
    next_state = torch.stack([new_x, new_x_dot, new_theta, new_theta_dot], dim=1)
    tested_x, tested_theta = (x, theta) if terminated_from_old else (new_x, new_theta)
    if not one_sided:
        tested_x, tested_theta = tested_x.abs(), tested_theta.abs()
    terminated = compare(tested_x, 2.4) | compare(tested_theta, theta_bound)
    rewards = torch.where(terminated, reward_at_end, 1.0).to(state.dtype)
    return next_state, rewards, terminated


def loop_step(state, actions):
    """Correct, one env at a time with Python floats (slow, but right)."""
    rows, rewards, terminated = [], [], []
    for (x, x_dot, theta, theta_dot), action in zip(
        state.tolist(), actions.tolist(), strict=True
    ):
        force = FORCE_MAG if action == 1 else -FORCE_MAG
        x_acc, theta_acc = accelerations(theta, theta_dot, force)
        x, x_dot = x + TAU * x_dot, x_dot + TAU * x_acc
        theta, theta_dot = theta + TAU * theta_dot, theta_dot + TAU * theta_acc
        rows.append([x, x_dot, theta, theta_dot])
        rewards.append(1.0)
        terminated.append(x < -2.4 or x > 2.4 or abs(theta) > math.radians(12))
    return (
        torch.tensor(rows, dtype=state.dtype).reshape(-1, 4),
        torch.tensor(rewards),
        torch.tensor(terminated, dtype=torch.bool),
    )


def numpy_step(state, actions):
    """Correct, in NumPy float64, converted back."""
    s, a = state.numpy().astype(np.float64), actions.numpy()
    force = np.where(a == 1, FORCE_MAG, -FORCE_MAG)
    x_acc, theta_acc = accelerations(s[:, 2], s[:, 3], force)
    derivative = np.stack([s[:, 1], x_acc, s[:, 3], theta_acc], axis=1)
    next_state = s + TAU * derivative
    terminated = (np.abs(next_state[:, 0]) > 2.4) | (
        np.abs(next_state[:, 2]) > np.deg2rad(12.0)
    )
    return (
        torch.from_numpy(next_state).to(state.dtype),
        torch.ones(len(s), dtype=state.dtype),
        torch.from_numpy(terminated),
    )


def float64_inside(state, actions):
    """Correct: computes in float64 whatever comes in, returns the input's dtype."""
    next_state, rewards, terminated = student_step(state.double(), actions)
    return next_state.to(state.dtype), rewards.float(), terminated


@pytest.mark.parametrize(
    "fn",
    [cartpole_step, student_step, loop_step, numpy_step, float64_inside],
    ids=["reference", "vectorized", "loop-over-envs", "numpy", "float64-inside"],
)
def test_check_accepts_correct_versions(fn, capsys):
    assert checks.check_cartpole_step(fn).passed is True
    assert capsys.readouterr().out.startswith("✔ cartpole_step: correct")


def test_the_cases_reach_both_bounds_both_actions_and_float64():
    cases = cartpole_cases(generator(901))
    ended = {"x": 0, "theta": 0}
    dtypes = set()
    for _, state, actions in cases:
        next_state, _, terminated = cartpole_step(state.double(), actions)
        ended["x"] += int((next_state[:, 0].abs() > 2.4).sum())
        ended["theta"] += int((next_state[:, 2].abs() > THETA_BOUND).sum())
        dtypes.add(state.dtype)
        assert set(actions.tolist()) <= {0, 1}
    assert min(ended.values()) >= 10
    assert dtypes == {torch.float32, torch.float64}
    all_actions = torch.cat([a for *_, a in cases])
    assert 0.3 < all_actions.double().mean() < 0.7


def _mistake(**kwargs):
    return lambda s, a: student_step(s, a, **kwargs)


def _in_place(state, actions):
    state[:, 0] += TAU * state[:, 1]  # writes into the caller's tensor
    return cartpole_step(state, actions)


def _python_or(state, actions):
    next_state, rewards, _ = cartpole_step(state, actions)
    terminated = next_state[:, 0].abs() > 2.4 or next_state[:, 2].abs() > THETA_BOUND
    return next_state, rewards, terminated


def _columns_swapped(state, actions):
    next_state, rewards, terminated = cartpole_step(state, actions)
    return next_state[:, [0, 2, 1, 3]], rewards, terminated


def _float_flags(state, actions):
    next_state, rewards, terminated = cartpole_step(state, actions)
    return next_state, rewards, terminated.float()


def _always_float32(state, actions):
    next_state, rewards, terminated = cartpole_step(state, actions)
    return next_state.float(), rewards, terminated


def _both_bounds(state, actions):
    next_state, rewards, _ = cartpole_step(state, actions)
    terminated = (next_state[:, 0].abs() > 2.4) & (next_state[:, 2].abs() > THETA_BOUND)
    return next_state, rewards, terminated


def _theta_only(state, actions):
    next_state, rewards, _ = cartpole_step(state, actions)
    return next_state, rewards, next_state[:, 2].abs() > THETA_BOUND


def _wrong_column(column):
    def step(state, actions):
        next_state, rewards, terminated = cartpole_step(state, actions)
        next_state = next_state.clone()
        next_state[5:, column] += 0.01  # wrong from env 5 on
        return next_state, rewards, terminated

    return step


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (_mistake(semi_implicit=True), "semi-implicit Euler"),
        (_mistake(force_sign=-1.0), "the force has the wrong sign"),
        (_mistake(length=1.0), "HALF-length"),
        (_mistake(theta_bound=12.0), "must be in radians"),
        (_mistake(compare=torch.ge), r"Use >, not >="),
        (_mistake(terminated_from_old=True), "from the NEW state"),
        (_mistake(one_sided=True), "check both sides"),
        (_mistake(reward_at_end=0.0), "the one that terminates included"),
        (_both_bounds, "EITHER bound"),
        (_theta_only, "cart leaving the track"),
        (_in_place, "changed one of its input tensors in place"),
        (_python_or, r"combine boolean tensors with \| and &"),
        (_columns_swapped, "out of order"),
        (_float_flags, "terminated must be a bool tensor"),
        (_always_float32, "keep the state's dtype"),
        (_wrong_column(1), "wrong ẋ' in next_state.*\n.*\n  env 5:"),
        (_wrong_column(3), "wrong θ̇' in next_state. θ̇' = θ̇ \\+ τ·θ̈"),
        (_wrong_column(0), "wrong x' in next_state. x' = x \\+ τ·ẋ"),
        (lambda s, a: cartpole_step(s, a)[:2], "return three tensors"),
        (lambda s, a: (cartpole_step(s, a)[0][:1],) + cartpole_step(s, a)[1:], "shape"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_check_names_the_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_cartpole_step(fn)


def test_unsolved_stub_is_not_done(capsys):
    def stub(state, actions):
        raise NotImplementedError("Exercise 9.1: not written yet")

    assert checks.check_cartpole_step(stub).passed is False
    assert "not implemented yet" in capsys.readouterr().out


def test_extra_cases_are_used():
    state = torch.tensor([[0.0, 0.0, 0.5, 0.0]])  # fallen already: ends at once
    extra = [{"state": state, "actions": torch.tensor([1])}]

    def no_reward_when_fallen_far(state, actions):  # right on the usual cases
        next_state, rewards, terminated = cartpole_step(state, actions)
        return next_state, torch.where(state[:, 2] > 0.4, 0.0, rewards), terminated

    with redirect_stdout(io.StringIO()):
        assert checks.check_cartpole_step(cartpole_step, extra_cases=extra)
        assert checks.check_cartpole_step(no_reward_when_fallen_far)
    with pytest.raises(AssertionError, match="an extra case"):
        checks.check_cartpole_step(no_reward_when_fallen_far, extra_cases=extra)


def test_exercise_is_in_the_table():
    (exercise,) = [ex for ex in EXERCISES if ex.number == "9.1"]
    assert exercise.function == "cartpole_step"
    assert exercise.module == "ppo_lessons.torch_envs"
    assert exercise.check_name == "check_cartpole_step"


# ---------------------------------------------------------------- the grader


@pytest.mark.parametrize(
    "fn",
    [cartpole_step, loop_step, _mistake(semi_implicit=True), _float_flags, _in_place],
    ids=["right", "loop", "semi-implicit", "float-flags", "in-place"],
)
def test_replay_gives_the_verdict_of_the_direct_check(fn):
    direct, again = replayed(checks.check_cartpole_step, fn)
    assert direct == again


STUDENT_CELL = """
def cartpole_step(state, actions):
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = torch.where(actions == 1, 10.0, -10.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = (force + 0.05 * theta_dot**2 * sin) / 1.1
    theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4 / 3 - 0.1 * cos**2 / 1.1))
    x_acc = temp - 0.05 * theta_acc * cos / 1.1
    {update}
    next_state = torch.stack([x, x_dot, theta, theta_dot], dim=1)
    terminated = (x.abs() > 2.4) | (theta.abs() > math.radians(12))
    return next_state, torch.ones_like(x), terminated
"""
EXPLICIT = "x, x_dot, theta, theta_dot = (x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot, theta_dot + 0.02 * theta_acc)"
SEMI_IMPLICIT = "x_dot = x_dot + 0.02 * x_acc; x = x + 0.02 * x_dot; theta_dot = theta_dot + 0.02 * theta_acc; theta = theta + 0.02 * theta_dot"


def _lesson_09_notebook(path: Path, update: str) -> None:
    nb = nbformat.v4.new_notebook()
    sources = [
        "import math\n\nimport torch\nfrom ppo_lessons.checks import check_cartpole_step",
        "# Exercise 9.1: cartpole_step\n" + STUDENT_CELL.format(update=update),
        "check_cartpole_step(cartpole_step)",
        "from ppo_lessons.torch_envs import cartpole_step",
    ]
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(s).strip()) for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.mark.heavy  # the grader
def test_the_grader_grades_exercise_9_1(tmp_path):
    _lesson_09_notebook(tmp_path / "ada" / "09_scaling_up.ipynb", EXPLICIT)
    _lesson_09_notebook(tmp_path / "bo" / "09_scaling_up.ipynb", SEMI_IMPLICIT)
    settings = grade.Settings(timeout=30, memory_mb=1024, hidden={}, jobs=2)
    results, problems = grade.grade([tmp_path], [9], settings, log=lambda _: None)
    by_student = {r.student: r for r in results}
    assert by_student["ada"].status == "correct", by_student["ada"].message
    assert by_student["ada"].points == by_student["ada"].exercise.points
    assert by_student["bo"].status == "wrong"
    assert "semi-implicit Euler" in by_student["bo"].message
    assert by_student["bo"].points == 0
    assert not any(problems.values())
