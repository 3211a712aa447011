"""Checks of lesson 05: the Gaussian log-probability (5.1), the categorical
entropy (5.2)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ppo_lessons.checks.harness import (
    compare_with_grads,
    exercise,
    generator,
)
from ppo_lessons.networks import categorical_entropy, gaussian_log_prob

__all__ = ["check_categorical_entropy", "check_gaussian_log_prob"]

# ---------------------------------------------------------------------------
# Lesson 05: log-probabilities and entropy of the policy distributions


def _gaussian_mistakes(args: tuple) -> list:
    actions, mean, log_std = args
    std = log_std.exp()
    z2 = ((actions - mean) / std) ** 2
    c = 0.5 * math.log(2 * math.pi)
    per_dim = -0.5 * z2 - log_std - c
    return [
        (
            "the log(2π) term is missing: each action dimension contributes −½·log(2π).",
            (-0.5 * z2 - log_std).sum(-1),
        ),
        (
            "sum the per-dimension log-densities over the action axis (a diagonal Gaussian's dimensions are independent, so log-probabilities add); yours averages them.",
            per_dim.mean(-1),
        ),
        (
            "the normalizer is log σ per dimension, not 2·log σ: log N = −½((a−μ)/σ)² − log σ − ½ log(2π).",
            (-0.5 * z2 - 2 * log_std - c).sum(-1),
        ),
        (
            "log_std is the LOG of the standard deviation: σ = exp(log_std). Yours uses log_std as σ.",
            (
                -0.5 * ((actions - mean) / log_std) ** 2 - torch.log(log_std.abs()) - c
            ).sum(-1),
        ),
        (
            "divide by σ, not σ²: the squared term is ((a − μ)/σ)².",
            (-0.5 * ((actions - mean) / std**2) ** 2 - log_std - c).sum(-1),
        ),
        (
            "the sign of the squared term is wrong: the density FALLS away from the mean, −½((a−μ)/σ)².",
            (0.5 * z2 - log_std - c).sum(-1),
        ),
        (
            "the factor ½ on the squared term is missing: −½((a−μ)/σ)².",
            (-z2 - log_std - c).sum(-1),
        ),
        (
            "that is the density, not its log: return the log-probability.",
            per_dim.sum(-1).exp(),
        ),
    ]


@exercise("gaussian_log_prob")
def check_gaussian_log_prob(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `gaussian_log_prob(actions, mean, log_std)` (Exercise 5.1)."""
    reference = gaussian_log_prob
    gen = generator(501)
    cases = []
    for batch, A, per_sample in [
        ((6,), 2, False),
        ((4, 3), 3, False),
        ((5,), 1, True),
        ((2, 3), 4, True),
        ((), 3, False),
    ]:
        mean = torch.randn(*batch, A, generator=gen)
        log_std = (
            torch.randn(*((*batch, A) if per_sample else (A,)), generator=gen) * 0.5
        )
        actions = mean + torch.randn(*batch, A, generator=gen) * log_std.exp() * 1.5
        cases.append((actions, mean, log_std))
    cases += [(c["actions"], c["mean"], c["log_std"]) for c in extra_cases]
    rule = (
        "log N(a; μ, σ) = Σ_a [−½((a − μ)/σ)² − log σ − ½ log(2π)], σ = exp(log_std)."
    )
    for actions, mean, log_std in cases:
        where = (
            f"evaluating actions of shape {list(actions.shape)} with log_std of shape "
            f"{list(log_std.shape)}"
        )
        compare_with_grads(
            fn, (actions, mean, log_std), {1: "mean", 2: "log_std"}, reference,
            _gaussian_mistakes, "the log-probability", actions.shape[:-1], where, rule,
        )  # fmt: skip
    return len(cases)


def _entropy_mistakes(args: tuple) -> list:
    (logits,) = args
    log_p = torch.log_softmax(logits, -1)
    p = log_p.exp()
    return [
        ("the sign is wrong: H = −Σ p log p is never negative.", (p * log_p).sum(-1)),
        (
            "normalize first: p = softmax(logits) and log p = log_softmax(logits); raw logits are not log-probabilities.",
            -(torch.softmax(logits, -1) * logits).sum(-1),
        ),
        (
            "sum over the actions, don't average: H = −Σ_a p_a log p_a.",
            -(p * log_p).mean(-1),
        ),
        (
            "the entropy is over the LAST axis (the actions), one value per state.",
            -(p * log_p).sum(0),
        ),
    ]


@exercise("categorical_entropy")
def check_categorical_entropy(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `categorical_entropy(logits)` (Exercise 5.2)."""
    reference = categorical_entropy
    gen = generator(502)
    cases = [
        torch.randn(7, 4, generator=gen) * 2,
        torch.randn(3, 5, 2, generator=gen)
        + 3.0,  # shifted: logits need not be normalized
        torch.randn(6, generator=gen),
        torch.zeros(2, 8),  # uniform: log 8
        torch.tensor([[1e4, 0.0, -1e4], [3.0, 3.0, -1e4]]),  # finite at huge logits
    ]
    cases += [c["logits"] for c in extra_cases]
    rule = "H = −Σ_a p_a log p_a with p = softmax(logits), log p = log_softmax(logits)."
    for logits in cases:
        where = f"computing the entropy of logits of shape {list(logits.shape)}"
        if logits.abs().max() >= 1e3:
            where += (
                " (huge logits: some p_a are exactly 0, and 0·log 0 must count as 0; "
                "log(softmax) gives −inf there, log_softmax stays finite)"
            )
        compare_with_grads(
            fn, (logits,), {0: "logits"}, reference, _entropy_mistakes,
            "the entropy", logits.shape[:-1], where, rule,
        )  # fmt: skip
    return len(cases)
