"""Checks of lesson 03: the clipped surrogate objective (3.1)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
from ppo_lessons.checks.lesson02 import log_prob_pair
from ppo_lessons.clipping import clipped_surrogate_objective

__all__ = ["check_clipped_surrogate_objective"]

# ---------------------------------------------------------------------------
# Lesson 03: the clipped surrogate


@dataclass(frozen=True)
class _Region:
    ratio: float
    advantage: float
    clipped: bool  # True where L^CLIP is flat (zero gradient)
    words: str


def _regions(eps: float) -> list[_Region]:
    lo, hi = 1.0 - eps, 1.0 + eps
    return [
        _Region(1.0, 1.5, False, "A > 0 and r = 1 (θ = θ_old)"),
        _Region(1.0 + eps / 2, 1.5, False, "A > 0 and r inside [1 − ε, 1 + ε]"),
        _Region(hi + 0.3, 1.5, True, "A > 0 and r above 1 + ε"),
        _Region(max(lo - 0.3, lo / 2), 1.5, False, "A > 0 and r below 1 − ε"),
        _Region(1.0 - eps / 2, -2.0, False, "A < 0 and r inside [1 − ε, 1 + ε]"),
        _Region(max(lo - 0.3, lo / 2), -2.0, True, "A < 0 and r below 1 − ε"),
        _Region(hi + 0.3, -2.0, False, "A < 0 and r above 1 + ε"),
    ]


def _region_advice(region: _Region, eps: float) -> str:
    r, a = region.ratio, region.advantage
    value = min(r * a, min(max(r, 1 - eps), 1 + eps) * a)
    if region.clipped:
        bound = "1 + ε" if a > 0 else "1 − ε"
        return (
            f"When {region.words} (r = {r:.2f}, A = {a:+.1f}, ε = {eps}), the "
            f"objective must be clipped to ({bound})·A = {value:.4f} with ZERO gradient:"
            " the ratio already moved as far as the advantage asks, and L^CLIP stops "
            "rewarding further moves."
        )
    if r == 1.0:
        why = "at r = 1 nothing is clipped, L^CLIP = r·A"
    elif (a > 0 and r < 1) or (a < 0 and r > 1):
        why = (
            "the min keeps the UNCLIPPED term r·A here because it is the lower one, so "
            "the gradient that undoes a move against the advantage stays"
        )
    else:
        why = "inside the clip range nothing is clipped, L^CLIP = r·A"
    return (
        f"When {region.words} (r = {r:.2f}, A = {a:+.1f}, ε = {eps}), the objective "
        f"must be r·A = {value:.4f} with gradient A = {a:+.1f} w.r.t. r: {why}."
    )


def _probe_clipped(fn: Callable, eps: float) -> str | None:
    """Call fn on one-element inputs, one per region; describe the first wrong one."""
    for region in _regions(eps):
        old = torch.tensor([-1.0])
        new = (old + math.log(region.ratio)).requires_grad_(True)
        adv = torch.tensor([region.advantage])
        where = f"evaluating one element with r = {region.ratio:.2f}, A = {region.advantage}"
        result, (new_copy, _, _, _) = call(fn, (new, old, adv, eps), where)
        got = tensor(result, "the objective", torch.Size([]), where)
        expected = clipped_surrogate_objective(
            new.detach().double(), old.double(), adv.double(), eps
        )
        (grad,) = grad_of(got, [new_copy])
        # d/d(new) = d/dr · r, so the expected gradient w.r.t. new is (dL/dr) · r
        grad_r_expected = 0.0 if region.clipped else region.advantage
        grad_ok = grad is not None and math.isclose(
            float(grad.sum()),
            grad_r_expected * region.ratio,
            rel_tol=1e-3,
            abs_tol=1e-5,
        )
        if not close(got, expected) or not grad_ok:
            got_grad = (
                "none" if grad is None else f"{float(grad.sum()) / region.ratio:+.4f}"
            )
            return (
                _region_advice(region, eps)
                + f"\n  yours gave {fmt(got)} with gradient {got_grad} w.r.t. r."
            )
    return None


def _g_form_mistakes(r: torch.Tensor, a: torch.Tensor, eps: float) -> list:
    """Typical mistakes of Spinning Up's form min(r·A, g(ε, A)): the sign cases."""
    return [
        (
            "the bound of a sample depends on the sign of its advantage: you used "
            "(1 + ε)·A for every sample, but for A < 0 it is (1 − ε)·A (in Spinning "
            "Up's form min(r·A, g(ε, A)), g has one case per sign).",
            torch.minimum(r * a, (1 + eps) * a).mean(),
        ),
        (
            "the bound of a sample depends on the sign of its advantage: you used "
            "(1 − ε)·A for every sample, but for A > 0 it is (1 + ε)·A (in Spinning "
            "Up's form min(r·A, g(ε, A)), g has one case per sign).",
            torch.minimum(r * a, (1 - eps) * a).mean(),
        ),
        (
            "the two cases of g(ε, A) are swapped: for A ≥ 0 the cap is (1 + ε)·A, for "
            "A < 0 it is (1 − ε)·A.",
            torch.minimum(r * a, torch.where(a >= 0, 1 - eps, 1 + eps) * a).mean(),
        ),
    ]


def clipped_mistakes(
    new: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, eps: float
) -> list:
    """(message, the objective with that typical mistake) for the given inputs;
    computed from them, so gradients flow where they require grad."""
    n, o, a = new.double(), old.double(), adv.double()
    r = torch.exp(n - o)
    clip_r = torch.clamp(r, 1 - eps, 1 + eps)
    mistakes = [
        (
            "you took the MAX of the two terms; PPO takes the min (a pessimistic "
            "bound), so the objective never rewards moving the ratio past the clip "
            "range.",
            torch.maximum(r * a, clip_r * a).mean(),
        ),
        (
            "the sign is wrong: return the OBJECTIVE +mean(min(r·A, clip(r)·A)); the "
            "trainer negates it to get a loss.",
            -torch.minimum(r * a, clip_r * a).mean(),
        ),
        (
            "use the mean over all elements, not the sum.",
            torch.minimum(r * a, clip_r * a).sum(),
        ),
        (
            "you clipped the ADVANTAGE; clip the probability RATIO: clip(r, 1 − ε, 1 + ε)·A.",
            torch.minimum(r * a, r * torch.clamp(a, 1 - eps, 1 + eps)).mean(),
        ),
        (
            "you clipped the ADVANTAGE; clip the probability RATIO: clip(r, 1 − ε, 1 + ε)·A.",
            torch.minimum(r * a, r * torch.clamp(a, -eps, eps)).mean(),
        ),
        (
            "you clipped the product r·A; clip the ratio first, then multiply: "
            "clip(r, 1 − ε, 1 + ε)·A.",
            torch.minimum(r * a, torch.clamp(r * a, 1 - eps, 1 + eps)).mean(),
        ),
        (
            "you took min(r, clip(r)) before multiplying by A; for A < 0 that picks the "
            "wrong term. Multiply first: min(r·A, clip(r)·A).",
            (torch.minimum(r, clip_r) * a).mean(),
        ),
        (
            "the min is missing: clip(r)·A alone removes the gradient also where the "
            "ratio moved AGAINST the advantage. Use min(r·A, clip(r)·A).",
            (clip_r * a).mean(),
        ),
        (
            "nothing is clipped: this is the plain surrogate mean(r·A).",
            (r * a).mean(),
        ),
        (
            "the ratio is upside down: use r = exp(new − old).",
            torch.minimum(
                torch.exp(o - n) * a,
                torch.clamp(torch.exp(o - n), 1 - eps, 1 + eps) * a,
            ).mean(),
        ),
        (
            "the inputs are LOG-probabilities: the ratio is exp(new − old), not new / old.",
            torch.minimum(n / o * a, torch.clamp(n / o, 1 - eps, 1 + eps) * a).mean(),
        ),
    ]
    mistakes += _g_form_mistakes(r, a, eps)
    for fixed in (0.2, 0.1, 0.3):
        if not math.isclose(fixed, eps):
            clip_fixed = torch.clamp(r, 1 - fixed, 1 + fixed)
            mistakes.append(
                (
                    f"your function clips at ε = {fixed} whatever clip_eps it is given "
                    f"(here clip_eps = {eps}); use the argument.",
                    torch.minimum(r * a, clip_fixed * a).mean(),
                )
            )
    return mistakes


@exercise("clipped_surrogate_objective")
def check_clipped_surrogate_objective(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `clipped_surrogate_objective(new_log_probs, old_log_probs, advantages,
    clip_eps)` (Exercise 3.1)."""
    gen = generator(301)
    cases = []
    for shape, eps in zip(shapes(), (0.2, 0.1, 0.3, 0.25), strict=True):
        new, old = log_prob_pair(shape, gen, spread=0.4)
        cases.append((new, old, torch.randn(shape, generator=gen) * 2, eps))
    new, old = log_prob_pair((6, 4), gen, spread=0.4)
    cases.append(
        (
            new.double(),
            old.double(),
            torch.randn(6, 4, generator=gen, dtype=torch.float64),
            0.15,
        )
    )
    # unlikely actions (a continuous action in many dimensions): exp(log π) underflows
    # to 0 in float32 below about −104, so a ratio of probabilities is 0/0
    new, old = log_prob_pair((16,), gen, spread=0.2)
    cases.append((new - 110.0, old - 110.0, torch.randn(16, generator=gen), 0.2))
    cases += [
        (c["new_log_probs"], c["old_log_probs"], c["advantages"], c["clip_eps"])
        for c in extra_cases
    ]
    for new, old, adv, eps in cases:
        where = f"computing L^CLIP for inputs of shape {list(new.shape)}, ε = {eps}"
        new = new.clone().requires_grad_(True)
        result, (new_copy, _, _, _) = call(fn, (new, old, adv, eps), where)
        got = tensor(result, "the objective", torch.Size([]), where)
        expected = clipped_surrogate_objective(
            new.detach().double(), old.double(), adv.double(), eps
        )
        (grad,) = grad_of(got, [new_copy])
        if grad is None:
            raise AssertionError(
                "the objective has no gradient with respect to new_log_probs: the ratio"
                " was detached or computed outside torch (.item(), .numpy(), "
                "torch.tensor(...)). PPO follows this gradient."
            )
        ref_new = new.detach().double().requires_grad_(True)
        ref = clipped_surrogate_objective(ref_new, old.double(), adv.double(), eps)
        (expected_grad,) = torch.autograd.grad(ref, ref_new)
        if close(got, expected) and close(grad, expected_grad):
            continue
        message = None
        if not torch.isfinite(got).all() and float(old.max()) < -100:
            message = (
                "your objective is not finite for log-probabilities near −110 (unlikely"
                " actions): exp(log π) underflows to 0 in float32, so a ratio of "
                "probabilities is 0/0. Compute r = exp(new_log_probs − old_log_probs)."
            )
        elif not close(got, expected):
            message = diagnose(got, clipped_mistakes(new.detach(), old, adv, eps))
        message = message or _probe_clipped(fn, eps)
        if message is None:
            message = (
                "the value or gradient is wrong on a batch although each region is "
                "right on its own: average over ALL elements (mean, not sum or a "
                "per-column mean)."
            )
        raise AssertionError(
            f"{message}\n  (batch of shape {list(new.shape)}, ε = {eps}: expected "
            f"{fmt(expected)}, got {fmt(got)})"
        )
    for eps in (0.2, 0.1):
        message = _probe_clipped(fn, eps)
        if message:
            raise AssertionError(message)
    return len(cases) + 2 * len(_regions(0.2))
