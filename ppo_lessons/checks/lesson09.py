"""Checks of lesson 09: CartPole's step as batched tensor code (9.1)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ppo_lessons.checks.harness import (
    ATOL,
    RTOL,
    call,
    close,
    diagnose,
    exercise,
    fmt,
    generator,
)
from ppo_lessons.torch_envs import cartpole_step

__all__ = ["check_cartpole_step"]

# ---------------------------------------------------------------------------
# Lesson 09: CartPole's step as batched tensor code

_CARTPOLE_STATE = "(x, ẋ, θ, θ̇)"
_EULER_RULE = (
    "Explicit Euler from the OLD state: (x', ẋ', θ', θ̇') = (x, ẋ, θ, θ̇) + τ·(ẋ, ẍ, θ̇, "
    "θ̈), τ = 0.02 s; temp = (F + m_p l θ̇² sin θ)/(m_c + m_p), θ̈ = (g sin θ − cos θ·"
    "temp)/(l (4/3 − m_p cos²θ/(m_c + m_p))), ẍ = temp − m_p l θ̈ cos θ/(m_c + m_p)."
)


@dataclass(frozen=True)
class _CartPoleVariant:
    """CartPole's step with at most one typical mistake (all fields default: right)."""

    semi_implicit: bool = False  # velocities first, then positions with the new ones
    force_sign: float = 1.0  # -1: action 1 pushes left
    half_length: float = 0.5  # 1.0: the full pole length
    tau: float = 0.02  # 1.0: derivatives added without the time step
    x_bound: float = 2.4  # inf: the cart never leaves the track
    theta_bound: float = 12 * 2 * math.pi / 360  # 12.0: degrees used as radians
    inclusive: bool = False  # >= instead of >
    from_old_state: bool = False  # terminated tested on the state before the step
    one_sided: bool = False  # x' > 2.4 only (no abs)
    both_bounds: bool = False  # & instead of |
    terminal_reward: float = 1.0  # 0.0: no reward on the terminating step

    def __call__(self, state: torch.Tensor, actions: torch.Tensor):
        """(next_state (N, 4), rewards (N,), terminated (N,)) in float64."""
        from ppo_lessons.torch_envs import TorchCartPole as env

        s = state.double()
        x, x_dot, theta, theta_dot = s.unbind(1)
        force = torch.where(actions == 1, 1.0, -1.0).double()
        force = force * env.FORCE_MAG * self.force_sign
        cos, sin = torch.cos(theta), torch.sin(theta)
        polemass_length = env.MASS_POLE * self.half_length
        temp = (force + polemass_length * theta_dot**2 * sin) / env.TOTAL_MASS
        theta_acc = (env.GRAVITY * sin - cos * temp) / (
            self.half_length * (4 / 3 - env.MASS_POLE * cos**2 / env.TOTAL_MASS)
        )
        x_acc = temp - polemass_length * theta_acc * cos / env.TOTAL_MASS
        new_x_dot = x_dot + self.tau * x_acc
        new_theta_dot = theta_dot + self.tau * theta_acc
        if self.semi_implicit:
            x_dot, theta_dot = new_x_dot, new_theta_dot
        x, theta = x + self.tau * x_dot, theta + self.tau * theta_dot
        next_state = torch.stack((x, new_x_dot, theta, new_theta_dot), dim=1)
        tested = s if self.from_old_state else next_state
        position, angle = tested[:, 0], tested[:, 2]
        if not self.one_sided:
            position, angle = position.abs(), angle.abs()
        beyond = torch.ge if self.inclusive else torch.gt
        out_x = beyond(position, self.x_bound)
        out_theta = beyond(angle, self.theta_bound)
        terminated = out_x & out_theta if self.both_bounds else out_x | out_theta
        rewards = torch.where(terminated, self.terminal_reward, 1.0).double()
        return next_state, rewards, terminated


_CARTPOLE_STATE_MISTAKES = [
    (
        "x' and θ' moved with the NEW velocities (semi-implicit Euler: ẋ' first, then "
        "x' = x + τ·ẋ'). CartPole-v1 integrates with explicit Euler: x' = x + τ·ẋ and "
        "θ' = θ + τ·θ̇ use the velocities from BEFORE the step.",
        _CartPoleVariant(semi_implicit=True),
    ),
    (
        "the force has the wrong sign: action 1 pushes the cart RIGHT (F = +10 N), "
        "action 0 pushes it left (F = −10 N).",
        _CartPoleVariant(force_sign=-1.0),
    ),
    (
        "l is the pole's HALF-length, 0.5 m (Gymnasium's `length = 0.5` is documented "
        "as half the pole's length); yours uses 1.0 m, in θ̈ and in m_p·l.",
        _CartPoleVariant(half_length=1.0),
    ),
    (
        "the derivatives must be multiplied by the time step: s' = s + τ·(ẋ, ẍ, θ̇, θ̈) "
        "with τ = 0.02 s.",
        _CartPoleVariant(tau=1.0),
    ),
]

_CARTPOLE_TERMINATION_MISTAKES = [
    (
        "terminated must be computed from the NEW state (x' and θ' after the step); "
        "yours tests the state before the step, so every episode ends one step late.",
        _CartPoleVariant(from_old_state=True),
    ),
    (
        "the 12° bound must be in radians, like θ: 12·2π/360 ≈ 0.2094 rad. Yours "
        "compares θ' with 12, so the pole never counts as fallen.",
        _CartPoleVariant(theta_bound=12.0),
    ),
    (
        "the bounds are strict: the episode ends when |x'| > 2.4 or |θ'| > 12°, so at "
        "exactly |x'| = 2.4 it goes on. Use >, not >=.",
        _CartPoleVariant(inclusive=True),
    ),
    (
        "check both sides: the cart leaves the track at x' < −2.4 as well as at "
        "x' > 2.4, and the pole falls to either side (θ' < −12° or θ' > 12°); compare "
        "the absolute values, .abs().",
        _CartPoleVariant(one_sided=True),
    ),
    (
        "the episode ends when EITHER bound is crossed: combine the two tests with | "
        "(or), not & (and).",
        _CartPoleVariant(both_bounds=True),
    ),
    (
        "the cart leaving the track also ends the episode: |x'| > 2.4, not only the "
        "pole's angle.",
        _CartPoleVariant(x_bound=math.inf),
    ),
]


def cartpole_cases(
    gen: torch.Generator,
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, state (N, 4), actions (N,)) cases; no next |x| or |θ| within 1e-4 of
    its bound except where a case puts it exactly on the bound on purpose."""
    theta_bound = _CartPoleVariant().theta_bound
    wide = torch.tensor([2.6, 3.0, 0.25, 3.0])

    def uniform(n: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, 4, generator=gen)

    def sides(n: int) -> torch.Tensor:
        return torch.randint(2, (n,), generator=gen) * 2.0 - 1.0  # (n,) ±1

    near_x = uniform(
        48, torch.tensor([-0.06, -3.0, -0.1, -1.0]), torch.tensor([0.06, 3.0, 0.1, 1.0])
    )
    near_x[:, 0] += 2.4 * sides(48)
    near_theta = uniform(
        48, torch.tensor([-1.0, -1.0, -0.06, -3.0]), torch.tensor([1.0, 1.0, 0.06, 3.0])
    )
    near_theta[:, 2] += theta_bound * sides(48)
    cases = [
        ("random states", uniform(64, -wide, wide)),
        ("states near |x| = 2.4", near_x),
        ("states near |θ| = 12°", near_theta),
        ("random states in float64", uniform(32, -wide, wide).double()),
        ("one env", torch.tensor([[0.01, -0.2, 0.03, 0.4]])),
    ]
    out = []
    for label, state in cases:
        for action in (0, 1):  # keep the rows far from the bounds under both actions
            next_state = _CartPoleVariant()(state, torch.full((len(state),), action))[0]
            gap_x = (next_state[:, 0].abs() - 2.4).abs()
            gap_theta = (next_state[:, 2].abs() - theta_bound).abs()
            state = state[(gap_x > 1e-4) & (gap_theta > 1e-4)]
        actions = torch.randint(2, (len(state),), generator=gen)
        out.append((label, state, actions))
    # exactly on the bound (x' = ±2.4: still alive) and just past it, in float64
    on_bound = torch.tensor(
        [[2.4, 0.0, 0.05, 0.1], [-2.4, 0.0, -0.05, 0.2], [2.4, 1e-3, 0.0, 0.0],
         [-2.4, -1e-3, 0.0, 0.0], [0.0, 0.0, 0.2, 1.0], [0.0, 0.0, 0.22, -1.5]],
        dtype=torch.float64,
    )  # fmt: skip
    out.append(
        ("states on the bounds, float64", on_bound, torch.tensor([1, 0, 1, 0, 0, 1]))
    )
    # the same states under both actions
    twice = uniform(8, -wide / 2, wide / 2)
    out.append(
        ("each state with both actions", twice.repeat(2, 1), torch.arange(16) // 8)
    )
    return out


def _call_step(fn: Callable, state: torch.Tensor, actions: torch.Tensor, where: str):
    try:
        result, _ = call(fn, (state, actions), where)
    except AssertionError as error:
        if "ambiguous" not in str(error):
            raise
        raise AssertionError(
            f"{error}\n  Python's `or`, `and`, `if` and `max` need ONE True/False, and "
            "these are tensors of N values: combine boolean tensors with | and &, and "
            "pick between values with torch.where(condition, a, b)."
        ) from None
    if not isinstance(result, tuple | list) or len(result) != 3:
        raise AssertionError(
            "return three tensors, (next_state, rewards, terminated); got "
            f"{type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, tuple | list) else "")
            + f" while {where}."
        )
    return result


def _state_message(got: torch.Tensor, expected: torch.Tensor, args: tuple) -> str:
    """Name the mistake in next_state, or say which column is wrong."""
    message = diagnose(
        got, ((text, variant(*args)[0]) for text, variant in _CARTPOLE_STATE_MISTAKES)
    )
    if message is not None:
        return message
    if close(got[:, [0, 2, 1, 3]], expected):
        return (
            f"the columns of next_state are out of order: keep {_CARTPOLE_STATE}, the "
            "order of state's columns."
        )
    wrong = ~torch.isclose(got.double(), expected, rtol=RTOL, atol=ATOL)
    columns = [c for c in range(4) if bool(wrong[:, c].any())]
    names = ["x'", "ẋ'", "θ'", "θ̇'"]
    if set(columns) <= {0, 2}:
        hint = (
            "x' = x + τ·ẋ and θ' = θ + τ·θ̇, with the velocities from BEFORE the step."
        )
    elif columns == [1]:
        hint = "ẋ' = ẋ + τ·ẍ with ẍ = temp − m_p l θ̈ cos θ / (m_c + m_p)."
    elif columns == [3]:
        hint = (
            "θ̇' = θ̇ + τ·θ̈ with θ̈ = (g sin θ − cos θ·temp) / (l (4/3 − m_p cos²θ / "
            "(m_c + m_p))), temp = (F + m_p l θ̇² sin θ) / (m_c + m_p)."
        )
    else:
        hint = _EULER_RULE
    return f"wrong {', '.join(names[c] for c in columns)} in next_state. {hint}"


def _termination_message(
    got: torch.Tensor, expected: torch.Tensor, args: tuple, next_state: torch.Tensor
) -> str:
    row = int((got != expected).nonzero()[0])
    example = (
        f"\n  env {row}: after the step x' = {next_state[row, 0].item():.6f}, θ' = "
        f"{next_state[row, 2].item():.6f} rad (before it x = {args[0][row, 0].item():.4f}"
        f", θ = {args[0][row, 2].item():.4f}): terminated should be "
        f"{bool(expected[row])}, yours is {bool(got[row])}"
    )
    for text, variant in _CARTPOLE_TERMINATION_MISTAKES:
        if torch.equal(got, variant(*args)[2]):
            return text + example
    return (
        "wrong terminated: terminated = |x'| > 2.4 or |θ'| > 12° (12·2π/360 rad), "
        "tested on the state after the step." + example
    )


def _compare_cartpole(fn: Callable, label: str, state, actions) -> None:
    n = len(state)
    where = f"stepping {n} envs ({label}, state of dtype {str(state.dtype)[6:]})"
    next_state, rewards, terminated = _call_step(fn, state, actions, where)
    args = (state.double(), actions)
    expected_state, _, expected_terminated = cartpole_step(*args)
    case = f"\n  while {where}."
    for what, value, shape in [
        ("next_state", next_state, (n, 4)),
        ("rewards", rewards, (n,)),
        ("terminated", terminated, (n,)),
    ]:
        if not isinstance(value, torch.Tensor):
            raise AssertionError(
                f"{what} must be a torch.Tensor, got {type(value).__name__}{case}"
            )
        if tuple(value.shape) != shape:
            raise AssertionError(
                f"{what} has shape {list(value.shape)}, expected {list(shape)} (N = {n} "
                f"envs{', 4 state columns' if what == 'next_state' else ''}).{case}"
            )
    if next_state.dtype != state.dtype:
        raise AssertionError(
            f"next_state has dtype {next_state.dtype}, but state is {state.dtype}: keep "
            "the state's dtype (compute from its columns, or pass dtype=state.dtype)."
            + case
        )
    if not close(next_state, expected_state):
        near = torch.isclose(next_state.double(), expected_state, RTOL, ATOL)
        row = int((~near.all(dim=1)).nonzero()[0])  # the first env that is wrong
        raise AssertionError(
            _state_message(next_state, expected_state, args)
            + f"{case}\n  env {row}: state {fmt(state[row])}, action "
            f"{int(actions[row])}\n  expected next_state {fmt(expected_state[row])}\n"
            f"  got                 {fmt(next_state[row])}"
        )
    if terminated.dtype != torch.bool:
        raise AssertionError(
            f"terminated must be a bool tensor, got {terminated.dtype}: comparisons "
            f"such as x.abs() > 2.4 give one; combine them with |.{case}"
        )
    if not torch.equal(terminated, expected_terminated):
        message = _termination_message(
            terminated, expected_terminated, args, expected_state
        )
        raise AssertionError(message.replace("\n", case + "\n", 1))
    if not rewards.is_floating_point() or not bool((rewards == 1).all()):
        late = bool((rewards[terminated] != 1).any()) and bool(
            (rewards[~terminated] == 1).all()
        )
        raise AssertionError(
            (
                "CartPole-v1 pays +1 on EVERY step, the one that terminates included; "
                "yours pays something else when terminated."
                if late
                else "rewards must be 1.0 for every env (a float tensor of ones)."
            )
            + f"{case}\n  got {fmt(rewards.double())}"
        )


@exercise("cartpole_step")
def check_cartpole_step(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `cartpole_step(state, actions)` (Exercise 9.1)."""
    cases = cartpole_cases(generator(901))
    cases += [("an extra case", c["state"], c["actions"]) for c in extra_cases]
    for label, state, actions in cases:
        _compare_cartpole(fn, label, state, actions)
    return len(cases)
