"""Checks of lesson 01: discounted returns (1.1), the policy-gradient loss (1.2)."""

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
    grad_of,
    shapes,
    tensor,
)
from ppo_lessons.policy_gradient import discounted_returns, policy_gradient_loss

__all__ = ["check_discounted_returns", "check_policy_gradient_loss"]

# ---------------------------------------------------------------------------
# Lesson 01: discounted returns


def _returns_mistakes(rewards: torch.Tensor, gamma: float) -> list:
    r = rewards.double()
    T = r.shape[0]
    powers = gamma ** torch.arange(T, dtype=torch.float64)
    powers = powers.reshape((T,) + (1,) * (r.dim() - 1))
    forward = torch.zeros_like(r)
    running = torch.zeros_like(r[0])
    for t in range(T):
        running = running * gamma + r[t]
        forward[t] = running
    reward_to_go = discounted_returns(r, gamma)
    mistakes = [
        (
            "the first reward is not discounted: G_t = r_t + γ r_{t+1} + γ² r_{t+2} + …"
            " (γ⁰ = 1 for r_t); yours multiplies r_t by γ too.",
            gamma * reward_to_go,
        ),
        (
            "G_t must include r_t itself; yours starts the sum at r_{t+1}.",
            reward_to_go - r,
        ),
        (
            "you accumulated forward in time: G_t sums the rewards from t to the END of"
            " the episode. Loop backwards: G_t = r_t + γ G_{t+1}.",
            forward,
        ),
        (
            "every step got the whole episode's return: G_t is the return-to-go, the"
            " rewards from step t on, not from the start.",
            reward_to_go[:1].expand_as(r),
        ),
        (
            "you discounted from the start of the episode (γ^(t+k)); discount relative"
            " to the current step: G_t = Σ_k γ^k r_{t+k}.",
            reward_to_go * powers,
        ),
        (
            "your result ignores gamma (it equals the undiscounted sum).",
            discounted_returns(r, 1.0),
        ),
        ("your returns come out in reverse order of time.", reward_to_go.flip(0)),
    ]
    if r.dim() == 2:
        flat = discounted_returns(r.reshape(-1), gamma).reshape(r.shape)
        flat_cols = discounted_returns(r.T.reshape(-1), gamma).reshape(r.T.shape).T
        mistakes += [
            (
                "with a [T, N] input each COLUMN is its own episode; yours treats the"
                " whole tensor as one long sequence. Loop over time (axis 0) and keep"
                " the N columns apart.",
                flat,
            ),
            (
                "with a [T, N] input each column is its own episode; yours runs the"
                " columns into one another (the last step of one column picks up the"
                " next column's rewards).",
                flat_cols,
            ),
        ]
    return mistakes


def _compare_returns(fn: Callable, rewards: torch.Tensor, gamma: float) -> None:
    where = (
        f"computing returns of rewards of shape {list(rewards.shape)} with γ={gamma}"
    )
    result, _ = call(fn, (rewards, gamma), where)
    got = tensor(result, "the returns", rewards.shape, where)
    expected = discounted_returns(rewards.double(), gamma)
    if close(got, expected):
        return
    message = diagnose(got, _returns_mistakes(rewards, gamma))
    if message is None:
        wrong = (got.double() - expected).abs() > ATOL + RTOL * expected.abs()
        index = tuple(int(i) for i in wrong.nonzero()[0])
        message = (
            f"wrong return at index {index}: expected {expected[index].item():.4f}, "
            f"got {got[index].item():.4f}. G_t = r_t + γ G_(t+1), with G = 0 after "
            "the last step."
        )
    raise AssertionError(
        f"{message}\n  Case: rewards = {fmt(rewards)}, γ = {gamma}\n"
        f"  expected {fmt(expected)}\n  got      {fmt(got)}"
    )


@exercise("discounted_returns")
def check_discounted_returns(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `discounted_returns(rewards, gamma)` (Exercise 1.1)."""
    cases: list[tuple[torch.Tensor, float]] = [
        (torch.tensor([1.0, 2.0, 3.0, 4.0]), 0.9),
        (torch.tensor([1.0, 0.0, -2.0, 5.0, 1.0]), 0.5),
        (torch.tensor([3.0, -1.0, 2.0]), 0.0),
        (torch.tensor([3.0, -1.0, 2.0]), 1.0),
    ]
    gen = generator(101)
    for i, shape in enumerate(shapes()):
        rewards = torch.randn(shape, generator=gen)
        cases.append((rewards, (0.97, 0.8, 0.5, 0.99)[i]))
    cases.append((torch.randn(6, 4, generator=gen, dtype=torch.float64), 0.9))
    cases += [(c["rewards"], c["gamma"]) for c in extra_cases]
    for rewards, gamma in cases:
        _compare_returns(fn, rewards, gamma)
    return len(cases)


# ---------------------------------------------------------------------------
# Lesson 01: policy-gradient loss


def _check_loss_gradient(
    got: torch.Tensor, log_probs: torch.Tensor, weights: torch.Tensor
) -> None:
    (grad,) = grad_of(got, [log_probs])
    if grad is None:
        raise AssertionError(
            "the loss has no gradient with respect to log_probs: did you use .item(), "
            ".detach(), .numpy() or torch.tensor(...) on it? Autograd must see the "
            "computation from log_probs to the loss."
        )
    expected = -weights / weights.numel()
    if not close(grad, expected):
        raise AssertionError(
            "the gradient of the loss w.r.t. log_probs should be −weights / (number of"
            f" elements); got {fmt(grad)}, expected {fmt(expected)}."
        )


@exercise("policy_gradient_loss")
def check_policy_gradient_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `policy_gradient_loss(log_probs, weights)` (Exercise 1.2)."""
    gen = generator(102)
    cases = []
    for shape in shapes():
        log_probs = -torch.rand(shape, generator=gen) * 3 - 0.05
        cases.append((log_probs, torch.randn(shape, generator=gen) * 2))
    cases += [(c["log_probs"], c["weights"]) for c in extra_cases]
    for log_probs, weights in cases:
        where = f"computing the loss for log_probs of shape {list(log_probs.shape)}"
        log_probs = log_probs.clone().requires_grad_(True)
        result, (lp, _) = call(fn, (log_probs, weights), where)
        got = tensor(result, "the loss", torch.Size([]), where)
        expected = policy_gradient_loss(log_probs.detach().double(), weights.double())
        if not close(got, expected):
            lpd, w = log_probs.detach().double(), weights.double()
            message = diagnose(
                got,
                [
                    (
                        "the sign is wrong: the LOSS is −mean(log π · Ψ), so that "
                        "minimizing it raises the log-probability of actions with "
                        "positive weight.",
                        -expected,
                    ),
                    (
                        "use the mean over all elements, not the sum (the loss's scale"
                        " must not depend on the batch size).",
                        -(lpd * w).sum(),
                    ),
                    (
                        "weight the LOG-probabilities, not the probabilities: "
                        "−mean(log_probs · weights).",
                        -(lpd.exp() * w).mean(),
                    ),
                    (
                        "multiply element by element before averaging: "
                        "mean(log_probs · weights), not mean(log_probs) · mean(weights).",
                        -(lpd.mean() * w.mean()),
                    ),
                ],
            )
            raise AssertionError(
                (message or "wrong value: the loss is −mean(log_probs · weights).")
                + f"\n  expected {fmt(expected)}, got {fmt(got)} for log_probs of "
                f"shape {list(log_probs.shape)}."
            )
        _check_loss_gradient(got, lp, weights)
    return len(cases)
