"""Checks of lesson 06: the value loss (6.1), approx KL (6.4), explained variance
(6.5); the PPO loss (6.2) and the minibatches (6.3) are in `lesson06_update`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ppo_lessons.checks.harness import (
    call,
    close,
    compare_with_grads,
    diagnose,
    exercise,
    fmt,
    generator,
    tensor,
)
from ppo_lessons.checks.lesson02 import log_prob_pair
from ppo_lessons.losses import value_loss
from ppo_lessons.update import approx_kl, explained_variance

__all__ = [
    "check_approx_kl",
    "check_explained_variance",
    "check_value_loss",
]

# ---------------------------------------------------------------------------
# Lesson 06: value loss, approximate KL, explained variance


def value_mistakes(args: tuple) -> list:
    """(message, the value loss with that typical mistake) for (values, old_values,
    returns, clip_eps); computed from them, so gradients flow where they require
    grad."""
    values, old_values, returns, clip_eps = args
    unclipped = (values - returns) ** 2
    mistakes = [
        (
            "the factor ½ is missing: value_loss = 0.5 · mean((V − R)²).",
            unclipped.mean(),
        ),
        ("use the mean over all elements, not the sum.", 0.5 * unclipped.sum()),
        (
            "square the error: 0.5 · mean((V − R)²), not its absolute value.",
            0.5 * (values - returns).abs().mean(),
        ),
    ]
    if clip_eps is not None:
        clipped_v = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
        clipped = (clipped_v - returns) ** 2
        mistakes += [
            (
                "take the MAX of the clipped and unclipped squared errors (a pessimistic bound, like L^CLIP), not the min.",
                0.5 * torch.minimum(unclipped, clipped).mean(),
            ),
            (
                "clip_eps was given, so clip: the clipped prediction is old_values + clamp(values − old_values, −ε, ε).",
                0.5 * unclipped.mean(),
            ),
            (
                "clip the CHANGE of the prediction around old_values (old_values + clamp(values − old_values, −ε, ε)), not the values themselves.",
                0.5
                * torch.maximum(
                    unclipped, (torch.clamp(values, -clip_eps, clip_eps) - returns) ** 2
                ).mean(),
            ),
            (
                "clip the prediction around old_values, not around the returns.",
                0.5
                * torch.maximum(
                    unclipped,
                    (
                        returns
                        + torch.clamp(values - returns, -clip_eps, clip_eps)
                        - returns
                    )
                    ** 2,
                ).mean(),
            ),
            (
                "use only max(unclipped, clipped): yours is the clipped error alone.",
                0.5 * clipped.mean(),
            ),
        ]
    return mistakes


@exercise("value_loss")
def check_value_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `value_loss(values, old_values, returns, clip_eps)` (Exercise 6.1)."""
    reference = value_loss
    gen = generator(601)
    cases = []
    for shape, eps in [
        ((12,), None),
        ((12,), 0.2),
        ((6, 3), 0.5),
        ((9,), 0.1),
        ((5, 2), None),
    ]:
        old = torch.randn(shape, generator=gen)
        values = old + torch.randn(shape, generator=gen) * 0.6
        returns = old + torch.randn(shape, generator=gen)
        cases.append((values, old, returns, eps))
    cases += [
        (c["values"], c["old_values"], c["returns"], c["clip_eps"]) for c in extra_cases
    ]
    rule = (
        "0.5·mean((V − R)²) without clipping; with clip_eps ε: 0.5·mean(max((V − R)², "
        "(V_old + clamp(V − V_old, −ε, ε) − R)²))."
    )
    for values, old, returns, eps in cases:
        where = (
            f"computing the value loss for shape {list(values.shape)}, clip_eps = {eps}"
        )
        compare_with_grads(
            fn, (values, old, returns, eps), {0: "values"}, reference, value_mistakes,
            "the value loss", torch.Size([]), where, rule,
        )  # fmt: skip
    return len(cases)


def _kl_mistakes(args: tuple) -> list:
    new, old, estimator = args
    log_r = new - old
    r = log_r.exp()
    if estimator == "k1":
        return [
            (
                "the sign is wrong: KL(old‖new) from samples of the old policy is mean(log π_old − log π_new) = mean(old − new).",
                (new - old).mean(),
            ),
            ("average, don't sum.", (old - new).sum()),
            (
                "k1 is the plain mean of old − new; yours is its absolute value.",
                (old - new).abs().mean(),
            ),
        ]
    return [
        (
            "k3 = mean((r − 1) − log r) with r = exp(new − old); yours uses r upside down.",
            ((1 / r - 1) + log_r).mean(),
        ),
        ("k3 = mean((r − 1) − log r): the −1 is missing.", (r - log_r).mean()),
        (
            "k3 = mean((r − 1) − log r): subtract log r, don't add it.",
            ((r - 1) + log_r).mean(),
        ),
        ("average, don't sum.", ((r - 1) - log_r).sum()),
        (
            "that is k1 = mean(old − new); the estimator argument asked for k3.",
            (old - new).mean(),
        ),
    ]


@exercise("approx_kl")
def check_approx_kl(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `approx_kl(new_log_probs, old_log_probs, estimator)` (Exercise 6.4)."""
    reference = approx_kl
    gen = generator(602)
    cases = []
    for shape in [(16,), (5, 3), (1,)]:
        new, old = log_prob_pair(shape, gen, spread=0.4)
        cases += [(new, old, "k1"), (new, old, "k3")]
    cases += [
        (c["new_log_probs"], c["old_log_probs"], c["estimator"]) for c in extra_cases
    ]
    for new, old, estimator in cases:
        where = f"estimating KL with {estimator!r} for shape {list(new.shape)}"
        rule = "k1 = mean(old − new); k3 = mean((r − 1) − log r), r = exp(new − old)."
        compare_with_grads(
            fn, (new, old, estimator), {0: "new_log_probs"}, reference, _kl_mistakes,
            "the KL estimate", torch.Size([]), where, rule,
        )  # fmt: skip
    return len(cases)


def _ev_mistakes(args: tuple) -> list:
    values, returns = args
    var = returns.var()
    return [
        (
            "swap the roles: 1 − Var[returns − values] / Var[RETURNS].",
            1 - (returns - values).var() / values.var(),
        ),
        (
            "that is the unexplained fraction Var[R − V]/Var[R]; explained variance is 1 minus it.",
            (returns - values).var() / var,
        ),
        (
            "use the variance of the residual returns − values, not the difference of variances.",
            1 - (returns.var() - values.var()) / var,
        ),
        (
            "use the same variance estimator (both biased or both unbiased) for the residual and the returns.",
            1 - (returns - values).var(unbiased=False) / var,
        ),
    ]


@exercise("explained_variance")
def check_explained_variance(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `explained_variance(values, returns)` (Exercise 6.5)."""
    reference = explained_variance
    gen = generator(603)
    cases = []
    for shape, noise in [((50,), 0.3), ((10, 4), 1.0), ((40,), 3.0)]:
        returns = torch.randn(shape, generator=gen) * 2 + 1
        cases.append((returns + torch.randn(shape, generator=gen) * noise, returns))
    cases.append((torch.randn(8, generator=gen), torch.full((8,), 2.0)))  # Var[R] = 0
    cases += [(c["values"], c["returns"]) for c in extra_cases]
    for values, returns in cases:
        where = f"computing explained variance for shape {list(values.shape)}"
        result, _ = call(fn, (values, returns), where)
        got = tensor(result, "the explained variance", torch.Size([]), where)
        expected = reference(values.double(), returns.double())
        if torch.isnan(expected):
            if not torch.isnan(got):
                raise AssertionError(
                    "when the returns are constant (Var[returns] = 0) the explained "
                    f"variance is undefined: return nan, not {fmt(got)}."
                )
            continue
        if not close(got, expected):
            message = diagnose(got, _ev_mistakes((values.double(), returns.double())))
            raise AssertionError(
                (
                    message
                    or "wrong value: 1 − Var[returns − values] / Var[returns], "
                    "over all elements."
                )
                + f"\n  while {where}: expected {fmt(expected)}, got {fmt(got)}"
            )
    return len(cases)
