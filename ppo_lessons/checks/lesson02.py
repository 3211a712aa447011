"""Checks of lesson 02: the probability ratio (2.1) and the surrogate (2.2)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ppo_lessons.checks.harness import (
    call,
    close,
    diagnose,
    exercise,
    fmt,
    generator,
    grad_of,
    shapes,
    tensor,
)
from ppo_lessons.importance_sampling import probability_ratio, surrogate_objective

__all__ = ["check_probability_ratio", "check_surrogate_objective"]

# ---------------------------------------------------------------------------
# Lesson 02: probability ratio and the importance-sampling surrogate


def _ratio_mistakes(new: torch.Tensor, old: torch.Tensor) -> list:
    n, o = new.double(), old.double()
    return [
        (
            "the inputs are LOG-probabilities: the ratio is exp(new − old), not new / old.",
            n / o,
        ),
        (
            "the ratio is upside down: r = π_new / π_old = exp(new − old), yours is "
            "exp(old − new).",
            torch.exp(o - n),
        ),
        (
            "you returned the log-ratio new − old; exponentiate it: exp(new − old).",
            n - o,
        ),
        (
            "exp(new) − exp(old) is a difference; the ratio is exp(new − old).",
            n.exp() - o.exp(),
        ),
    ]


def log_prob_pair(shape: tuple[int, ...], gen: torch.Generator, spread: float = 0.5):
    old = -torch.rand(shape, generator=gen) * 2.5 - 0.1
    new = old + torch.randn(shape, generator=gen) * spread
    return new, old


def extreme_log_prob_pairs(gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    """Log-probabilities outside the range where exp is finite, with ordinary ratios.

    A 30-dimensional Gaussian policy with std 0.01 has log-densities near +110; an
    unlikely high-dimensional action, or a whole sequence of tokens (lesson 10), far
    below −100. exp of either overflows or underflows in float32 (exp is finite only
    for arguments in about [−103, 88.7]; in float64 about [−745, 709.8]), so
    exp(new) / exp(old) is inf/inf or 0/0 = nan, while exp(new − old) is fine.
    """
    pairs = []
    for low in (95.0, -115.0, -800.0):
        old = low + torch.rand(6, generator=gen) * 5
        pairs.append((old + torch.randn(6, generator=gen) * 0.5, old))
    return pairs


def _finite_where_expected(
    got: torch.Tensor, expected: torch.Tensor, what: str
) -> None:
    """Name the exp(new) / exp(old) mistake: a nan or inf where the ratio is finite."""
    if bool(torch.isfinite(got.detach()).all()) or not bool(
        torch.isfinite(expected).all()
    ):
        return
    raise AssertionError(
        f"{what} is {fmt(got)} where the right answer is {fmt(expected)}: these "
        "log-probabilities are far from 0 (a narrow Gaussian's log-density is large and "
        "positive, a long sequence's very negative), so exp(new) or exp(old) alone "
        "overflows to inf or underflows to 0, and exp(new) / exp(old) (or "
        "exp(new) · exp(−old)) comes out nan or inf. Subtract first and exponentiate "
        "once: exp(new − old) is an ordinary number."
    )


@exercise("probability_ratio")
def check_probability_ratio(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `probability_ratio(new_log_probs, old_log_probs)` (Exercise 2.1)."""
    gen = generator(201)
    cases = [log_prob_pair(shape, gen) for shape in shapes()]
    cases.append((torch.tensor([-1.2, -0.3]), torch.tensor([-1.2, -0.3])))
    cases += extreme_log_prob_pairs(gen)
    cases += [(c["new_log_probs"], c["old_log_probs"]) for c in extra_cases]
    for new, old in cases:
        where = f"computing ratios for log-probs of shape {list(new.shape)}"
        new = new.clone().requires_grad_(True)
        result, (new_copy, _) = call(fn, (new, old), where)
        got = tensor(result, "the ratio", new.shape, where)
        expected = probability_ratio(new.detach().double(), old.double())
        _finite_where_expected(got, expected, "your ratio")
        if not close(got, expected):
            message = diagnose(got, _ratio_mistakes(new.detach(), old))
            raise AssertionError(
                (message or "wrong ratio: r = exp(new_log_probs − old_log_probs).")
                + f"\n  new = {fmt(new)}\n  old = {fmt(old)}\n"
                f"  expected {fmt(expected)}\n  got      {fmt(got)}"
            )
        (grad,) = grad_of(got, [new_copy])
        if grad is None:
            raise AssertionError(
                "the ratio has no gradient with respect to new_log_probs (it was "
                "detached, or computed with NumPy/.item()); PPO's update needs "
                "∂r/∂θ, so keep it in torch operations on the inputs."
            )
        if not close(grad, expected):
            raise AssertionError(
                "∂r/∂new_log_probs should equal r itself (d/dx exp(x − c) = exp(x − c));"
                f" got {fmt(grad)}, expected {fmt(expected)}."
            )
    return len(cases)


def _surrogate_mistakes(new, old, adv) -> list:
    n, o, a = new.double(), old.double(), adv.double()
    r = torch.exp(n - o)
    return [
        (
            "the sign is wrong: the surrogate is an OBJECTIVE to maximize, "
            "+mean(r · A); the trainer negates it to get a loss.",
            -(r * a).mean(),
        ),
        ("use the mean over all elements, not the sum.", (r * a).sum()),
        (
            "you weighted the log-probabilities (the policy-gradient objective); the "
            "importance-sampling surrogate uses the ratio r = exp(new − old). Both have "
            "the same gradient at θ = θ_old, but only the ratio stays right after the "
            "policy moves.",
            (n * a).mean(),
        ),
        (
            "the ratio is upside down: use exp(new − old).",
            (torch.exp(o - n) * a).mean(),
        ),
        (
            "multiply element by element before averaging: mean(r · A), not mean(r) ·"
            " mean(A).",
            r.mean() * a.mean(),
        ),
        (
            "the inputs are LOG-probabilities: the ratio is exp(new − old), not new / old.",
            (n / o * a).mean(),
        ),
    ]


@exercise("surrogate_objective")
def check_surrogate_objective(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `surrogate_objective(new_log_probs, old_log_probs, advantages)` (Ex. 2.2)."""
    gen = generator(202)
    cases = []
    for shape in shapes():
        new, old = log_prob_pair(shape, gen)
        cases.append((new, old, torch.randn(shape, generator=gen) * 2))
    # at θ = θ_old the gradient must be the policy-gradient estimate A / n
    same = -torch.rand(8, generator=gen) - 0.2
    cases.append((same.clone(), same.clone(), torch.randn(8, generator=gen)))
    cases += [
        (n, o, torch.randn(6, generator=gen)) for n, o in extreme_log_prob_pairs(gen)
    ]
    cases += [
        (c["new_log_probs"], c["old_log_probs"], c["advantages"]) for c in extra_cases
    ]
    for new, old, adv in cases:
        where = f"computing the surrogate for inputs of shape {list(new.shape)}"
        new = new.clone().requires_grad_(True)
        result, (new_copy, _, _) = call(fn, (new, old, adv), where)
        got = tensor(result, "the surrogate", torch.Size([]), where)
        expected = surrogate_objective(
            new.detach().double(), old.double(), adv.double()
        )
        _finite_where_expected(got, expected, "your surrogate")
        if not close(got, expected):
            message = diagnose(got, _surrogate_mistakes(new.detach(), old, adv))
            raise AssertionError(
                (message or "wrong value: L^IS = mean(exp(new − old) · A).")
                + f"\n  expected {fmt(expected)}, got {fmt(got)}."
            )
        (grad,) = grad_of(got, [new_copy])
        if grad is None:
            raise AssertionError(
                "the surrogate has no gradient with respect to new_log_probs: the ratio "
                "was detached or computed outside torch. Its gradient is what PPO "
                "follows."
            )
        ratio = torch.exp(new.detach().double() - old.double())
        expected_grad = ratio * adv.double() / adv.numel()
        if not close(grad, expected_grad):
            at_old = bool(torch.equal(new.detach(), old))
            raise AssertionError(
                "∂L^IS/∂new_log_probs should be r · A / n"
                + (
                    " — here θ = θ_old, where it must equal the policy-gradient "
                    "estimate A / n"
                    if at_old
                    else ""
                )
                + f"; got {fmt(grad)}, expected {fmt(expected_grad)}."
            )
    return len(cases)
