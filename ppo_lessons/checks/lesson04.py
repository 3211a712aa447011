"""Checks of lesson 04: generalized advantage estimation (4.1)."""

from __future__ import annotations

from collections.abc import Callable

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
    tensor,
)
from ppo_lessons.gae import compute_gae

__all__ = ["check_compute_gae"]

# ---------------------------------------------------------------------------
# Lesson 04: generalized advantage estimation


def _gae_variant(
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma,
    lam,
    *,
    bootstrap="terminated",
    trace="done",
    next_from_values=False,
    coef="gamma_lam",
    shift=0,
    forward=False,
):
    """GAE with one deliberate deviation (used to name a student's mistake)."""
    r, v, nv = rewards.double(), values.double(), next_values.double()
    term, trunc = terminated.double(), truncated.double()
    if shift:
        term = torch.roll(term, shift, 0)
        trunc = torch.roll(trunc, shift, 0)
        term[0 if shift > 0 else -1] = 0
        trunc[0 if shift > 0 else -1] = 0
    done = torch.clamp(term + trunc, max=1)
    if next_from_values:
        nv = torch.cat([v[1:], nv[-1:]], 0)
    mask_b = {"terminated": term, "done": done, "none": torch.zeros_like(term)}[
        bootstrap
    ]
    mask_t = {"terminated": term, "done": done, "none": torch.zeros_like(term)}[trace]
    c = {"gamma_lam": gamma * lam, "gamma": gamma, "lam": lam}[coef]
    delta = r + gamma * (1 - mask_b) * nv - v
    adv = torch.zeros_like(r)
    running = torch.zeros_like(r[0])
    order = range(r.shape[0]) if forward else reversed(range(r.shape[0]))
    for t in order:
        running = delta[t] + c * (1 - mask_t[t]) * running
        adv[t] = running
    return adv


_GAE_MISTAKES = [
    (
        dict(bootstrap="done"),
        "at a time-limit truncation the advantage must still bootstrap from "
        "next_values: δ_t = r_t + γ(1 − terminated_t)·V(s_(t+1)) − V(s_t) uses "
        "terminated only. The episode was cut, not finished, so its future value is "
        "not zero (Pardo et al., 2018).",
    ),
    (
        dict(bootstrap="none"),
        "after a termination there is no next state to bootstrap from: multiply "
        "γ·next_values by (1 − terminated_t).",
    ),
    (
        dict(trace="terminated"),
        "the λ-trace must stop at a truncation too: the step after a truncated one "
        "belongs to a NEW episode. Multiply γλ·A_(t+1) by (1 − (terminated_t or "
        "truncated_t)).",
    ),
    (
        dict(trace="none"),
        "the λ-trace must stop where an episode ends: multiply γλ·A_(t+1) by "
        "(1 − (terminated_t or truncated_t)), or advantages leak across episodes.",
    ),
    (
        dict(bootstrap="none", trace="none"),
        "your function ignores the episode-end flags: no bootstrap after a "
        "termination, and the trace must stop at every episode end.",
    ),
    (
        dict(bootstrap="done", trace="done"),
        "you treat truncation like termination (one `done` flag): at a time-limit "
        "truncation δ_t must still bootstrap from next_values; only the trace is cut.",
    ),
    (
        dict(shift=1),
        "off by one: the flags of step t belong to step t (the transition they end); "
        "yours uses the flags of step t − 1.",
    ),
    (
        dict(shift=-1),
        "off by one: the flags of step t belong to step t (the transition they end); "
        "yours uses the flags of step t + 1.",
    ),
    (
        dict(next_from_values=True),
        "bootstrap from next_values[t], not values[t + 1]: where an episode ended, "
        "values[t + 1] is the value of the NEXT episode's first state, next_values[t] "
        "that of this episode's final state.",
    ),
    (
        dict(coef="gamma"),
        "the trace must decay by γ·λ per step; yours decays by γ only (λ is missing).",
    ),
    (
        dict(coef="lam"),
        "the trace must decay by γ·λ per step; yours decays by λ only (γ is missing).",
    ),
    (
        dict(forward=True),
        "the recursion runs BACKWARDS in time: A_t depends on A_(t+1), so start at the "
        "last step and walk to the first.",
    ),
]


def _gae_mistakes(args: tuple) -> list[tuple[str, torch.Tensor]]:
    rewards, values, next_values, term, trunc, gamma, lam = args
    mistakes = [
        (message, _gae_variant(*args, **kwargs)) for kwargs, message in _GAE_MISTAKES
    ]
    if rewards.dim() == 2:
        T, N = rewards.shape
        flat = [a.reshape(-1) if isinstance(a, torch.Tensor) else a for a in args]
        mistakes.append(
            (
                "with [T, N] inputs each column is one environment's trajectory and "
                "time is axis 0; yours treats the flattened tensor as one trajectory. "
                "Run the recursion over t with all N environments at once.",
                _gae_variant(*flat).reshape(T, N),
            )
        )
        cols = [a.T.reshape(-1) if isinstance(a, torch.Tensor) else a for a in args]
        mistakes.append(
            (
                "with [T, N] inputs each column is one environment; yours chains the "
                "columns into one trajectory, so one environment's last step picks up "
                "the next environment's advantages.",
                _gae_variant(*cols).reshape(N, T).T,
            )
        )
        trans = [a.T if isinstance(a, torch.Tensor) else a for a in args]
        if T != N:
            pass  # a transposed recursion would fail the shape check already
        else:
            mistakes.append(
                (
                    "time is axis 0 ([T, N]); yours runs the recursion over axis 1.",
                    _gae_variant(*trans).T,
                )
            )
    return mistakes


def _step_kind(args: tuple, index: tuple[int, ...]) -> str:
    _, _, _, term, trunc, _, _ = args
    T = args[0].shape[0]
    kinds = []
    if bool(term[index]):
        kinds.append("a terminated step")
    if bool(trunc[index]):
        kinds.append("a truncated step")
    if index[0] == T - 1:
        kinds.append("the last step of the rollout (bootstrap from next_values)")
    return " and ".join(kinds) or "an ordinary step"


class _FlagMode:
    """Passes flags as float 0/1 first; switches to bool if the student needs it."""

    def __init__(self) -> None:
        self.as_bool = False

    def args(self, args: tuple) -> tuple:
        r, v, nv, term, trunc, gamma, lam = args
        dtype = torch.bool if self.as_bool else r.dtype
        return (r, v, nv, term.to(dtype), trunc.to(dtype), gamma, lam)

    def call(self, fn: Callable, args: tuple, where: str):
        try:
            return call(fn, self.args(args), where)
        except AssertionError as float_error:
            if self.as_bool or "raised" not in str(float_error):
                raise
            self.as_bool = True
            try:
                return call(fn, self.args(args), where)
            except AssertionError:
                raise float_error from None


def _compare_gae(fn: Callable, args: tuple, flags: _FlagMode, label: str) -> None:
    rewards = args[0]
    where = f"computing GAE for {label} (shape {list(rewards.shape)}, γ={args[5]}, λ={args[6]})"
    result, _ = flags.call(fn, args, where)
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise AssertionError(
            "compute_gae must return a pair (advantages, returns); got "
            f"{type(result).__name__} while {where}."
        )
    got_adv = tensor(result[0], "advantages", rewards.shape, where)
    got_ret = tensor(result[1], "returns", rewards.shape, where)
    double = tuple(a.double() if isinstance(a, torch.Tensor) else a for a in args)
    exp_adv, exp_ret = compute_gae(*double)
    case = (
        f"\n  Case ({label}, γ = {args[5]}, λ = {args[6]}):\n"
        f"    rewards    = {fmt(args[0])}\n    values     = {fmt(args[1])}\n"
        f"    next_values= {fmt(args[2])}\n    terminated = {fmt(args[3])}\n"
        f"    truncated  = {fmt(args[4])}\n"
    )
    if not close(got_adv, exp_adv):
        message = diagnose(got_adv, _gae_mistakes(double))
        if message is None:
            wrong = (got_adv.double() - exp_adv).abs() > ATOL + RTOL * exp_adv.abs()
            index = tuple(int(i) for i in wrong.nonzero()[-1])
            message = (
                f"wrong advantage at index {index}, {_step_kind(args, index)}: expected"
                f" {exp_adv[index].item():.4f}, got {got_adv[index].item():.4f}. "
                "(The first wrong one counting back from the end; errors flow "
                "backwards through the recursion.)"
            )
        raise AssertionError(
            message + case + f"  expected advantages {fmt(exp_adv)}\n"
            f"  your advantages     {fmt(got_adv)}"
        )
    if not close(got_ret, exp_ret):
        message = diagnose(
            got_ret,
            [
                (
                    "returns must be advantages + values (the λ-return, the critic's "
                    "target); yours equal the advantages.",
                    exp_adv,
                ),
                (
                    "returns must be advantages + values; yours look like advantages − "
                    "values.",
                    exp_adv - double[1],
                ),
                (
                    "returns must be advantages + VALUES (V(s_t)), not advantages + "
                    "next_values.",
                    exp_adv + double[2],
                ),
            ],
        )
        raise AssertionError(
            (
                message
                or "the advantages are right but the returns are not: "
                "returns = advantages + values."
            )
            + case
            + f"  expected returns {fmt(exp_ret)}\n  your returns     {fmt(got_ret)}"
        )


def _episode_flags(shape, gen: torch.Generator, p: float = 0.2):
    ends = torch.rand(shape, generator=gen) < p
    kind = torch.rand(shape, generator=gen) < 0.5
    return (ends & kind).float(), (ends & ~kind).float()


def _gae_cases(gen: torch.Generator) -> list[tuple[str, tuple]]:
    cases = []
    T = 6
    r = torch.tensor([1.0, 0.5, -1.0, 2.0, 0.0, 1.0])
    v = torch.tensor([0.5, 1.0, 0.2, -0.3, 0.8, 0.4])
    nv = torch.cat([v[1:], torch.tensor([0.7])])
    zeros = torch.zeros(T)
    one_at = lambda i: torch.nn.functional.one_hot(torch.tensor(i), T).float()  # noqa: E731
    nv_end = nv.clone()
    nv_end[2] = -1.5  # the true final observation's value differs from values[3]
    cases += [
        ("no episode ends, λ = 1", (r, v, nv, zeros, zeros, 0.9, 1.0)),
        (
            "no episode ends, λ = 0 (one-step TD errors)",
            (r, v, nv, zeros, zeros, 0.9, 0.0),
        ),
        ("no episode ends", (r, v, nv, zeros, zeros, 0.8, 0.7)),
        ("a termination at t = 2", (r, v, nv_end, one_at(2), zeros, 0.9, 0.8)),
        (
            "a time-limit truncation at t = 2",
            (r, v, nv_end, zeros, one_at(2), 0.9, 0.8),
        ),
        ("a truncation at the last step", (r, v, nv, zeros, one_at(T - 1), 0.95, 0.9)),
        ("a termination at the last step", (r, v, nv, one_at(T - 1), zeros, 0.95, 0.9)),
    ]
    for shape, gamma, lam in [
        ((16,), 0.99, 0.95),
        ((10, 3), 0.9, 0.8),
        ((12, 4), 0.97, 0.5),
        ((5, 5), 0.8, 1.0),
        ((1, 2), 0.5, 0.5),
    ]:
        rewards = torch.randn(shape, generator=gen)
        values = torch.randn(shape, generator=gen)
        next_values = torch.randn(shape, generator=gen)
        term, trunc = _episode_flags(shape, gen, p=0.25)
        cases.append(
            (
                "random episode ends",
                (rewards, values, next_values, term, trunc, gamma, lam),
            )
        )
    shape = (8, 3)
    term, trunc = _episode_flags(shape, gen, p=0.3)
    cases.append(
        (
            "float64 inputs",
            tuple(
                torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(3)
            )
            + (term.double(), trunc.double(), 0.9, 0.9),
        )
    )
    return cases


@exercise("compute_gae")
def check_compute_gae(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `compute_gae(rewards, values, next_values, terminated, truncated, gamma,
    lam)` (Exercise 4.1)."""
    gen = generator(401)
    cases = _gae_cases(gen)
    names = (
        "rewards",
        "values",
        "next_values",
        "terminated",
        "truncated",
        "gamma",
        "lam",
    )
    cases += [("a hidden case", tuple(c[name] for name in names)) for c in extra_cases]
    flags = _FlagMode()
    for label, args in cases:
        _compare_gae(fn, args, flags, label)
    return len(cases)
