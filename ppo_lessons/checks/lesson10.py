"""Checks of lesson 10: the KL-penalized per-token rewards, whitening over real tokens,
GRPO's group advantages and the aggregation of a per-token loss.

Every case is a batch of completions of different lengths, with padding entries set to
large, finite garbage: a right answer never depends on them."""

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
    grad_of,
    tensor,
)
from ppo_lessons.language.tokens import (
    group_advantages,
    kl_penalized_rewards,
    last_token_index,
    masked_whiten,
    token_loss,
)

__all__ = [
    "check_group_advantages",
    "check_kl_penalized_rewards",
    "check_masked_whiten",
    "check_token_loss",
]

BATCH_SHAPES = [(5, 7), (3, 4), (1, 6), (6, 1), (4, 9)]


def random_mask(B: int, L: int, gen: torch.Generator) -> torch.Tensor:
    """[B, L] True on the first length_b tokens; one full row and one of length 1."""
    lengths = torch.randint(1, L + 1, (B,), generator=gen)
    lengths[0] = L
    if B > 1:
        lengths[-1] = 1
    return torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)


def with_garbage(
    x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """x with its padding entries replaced by large finite numbers."""
    garbage = 1000.0 * torch.randn(x.shape, generator=gen, dtype=x.dtype) + 500.0
    return torch.where(mask, x, garbage)


def batch_case(seed: int, B: int, L: int) -> dict[str, torch.Tensor]:
    gen = generator(seed)
    mask = random_mask(B, L, gen)
    log_probs = -torch.rand(B, L, generator=gen) * 3.0
    ref_log_probs = log_probs + 0.5 * torch.randn(B, L, generator=gen)
    return {
        "mask": mask,
        "scores": torch.rand(B, generator=gen),
        "log_probs": with_garbage(log_probs, mask, gen),
        "ref_log_probs": with_garbage(ref_log_probs, mask, gen),
        "x": with_garbage(2.0 * torch.randn(B, L, generator=gen) + 1.0, mask, gen),
    }


def same_on_garbage(
    fn: Callable,
    args: tuple,
    index: int,
    mask: torch.Tensor,
    what: str,
    where: str,
    got: torch.Tensor,
) -> None:
    """Fail when new garbage in the padding of args[index] changes the result."""
    other = list(args)
    other[index] = with_garbage(args[index], mask.bool(), generator(99))
    again, _ = call(fn, tuple(other), where)
    again = tensor(again, what, got.shape, where)
    if not close(again, got):
        raise AssertionError(
            f"{what} changed when only the PADDING entries of the input changed, while "
            f"{where}. Padding holds arbitrary numbers: mask them out (torch.where(mask, "
            "x, 0), or x[mask]) before they enter a sum, a mean or a std."
        )


# ---------------------------------------------------------------------------
# kl_penalized_rewards


def kl_mistakes(args: tuple) -> list:
    scores, log_probs, ref_log_probs, mask, kl_coef = args
    m = mask.bool()
    B, L = m.shape
    kl = torch.where(m, log_probs - ref_log_probs, torch.zeros_like(log_probs))
    rows = torch.arange(B)
    last = last_token_index(m)

    def with_score_at(base: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        out = base.clone()
        out[rows, where] += scores.to(out.dtype)
        return out

    every = -kl_coef * kl + torch.where(m, scores.unsqueeze(1), torch.zeros_like(kl))
    return [
        (
            "the KL penalty has the wrong sign: where the policy makes a token MORE "
            "likely than the reference (log π − log π_ref > 0) the reward must go DOWN: "
            "r = −kl_coef · (log_probs − ref_log_probs).",
            with_score_at(kl_coef * kl, last),
        ),
        (
            "the score belongs to the LAST real token of each row (the end token, at "
            "index mask.sum(1) − 1), not to the first token.",
            with_score_at(-kl_coef * kl, torch.zeros_like(last)),
        ),
        (
            "the score went to the last COLUMN (index L − 1), which is padding for every "
            "completion shorter than L; put it on each row's last real token, at index "
            "mask.sum(1) − 1.",
            with_score_at(-kl_coef * kl, torch.full_like(last, L - 1)),
        ),
        (
            "the score is paid once per completion, at its last real token, not added "
            "to every token.",
            every,
        ),
        (
            "the KL penalty is missing: r = −kl_coef · (log_probs − ref_log_probs) on "
            "every real token, plus the score at the last one.",
            with_score_at(torch.zeros_like(kl), last),
        ),
        (
            "the penalty is −kl_coef · (log π − log π_ref) itself, not its absolute "
            "value (the k1 estimate is negative where the policy is less likely than "
            "the reference, and that is what makes it unbiased).",
            with_score_at(-kl_coef * kl.abs(), last),
        ),
    ]


@exercise("kl_penalized_rewards")
def check_kl_penalized_rewards(fn: Callable, extra_cases: list[dict]) -> int:
    """Check Exercise 10.1: kl_penalized_rewards(scores, log_probs, ref_log_probs,
    mask, kl_coef)."""
    cases = []
    for i, (B, L) in enumerate(BATCH_SHAPES):
        c = batch_case(100 + i, B, L)
        for kl_coef in (0.1, 0.37):
            args = (c["scores"], c["log_probs"], c["ref_log_probs"], c["mask"], kl_coef)
            cases.append(args)
    cases += [
        (c["scores"], c["log_probs"], c["ref_log_probs"], c["mask"], c["kl_coef"])
        for c in extra_cases
    ]
    for args in cases:
        B, L = args[1].shape
        where = (
            f"computing the rewards of {B} completions of at most {L} tokens with "
            f"kl_coef={args[4]} (mask row 0: {args[3][0].int().tolist()})"
        )
        got = compare_with_grads(
            fn, args, {}, kl_penalized_rewards, kl_mistakes, "the rewards",
            torch.Size([B, L]), where,
            "r[b, t] = −kl_coef · (log_probs − ref_log_probs) on real tokens, 0 on "
            "padding, plus scores[b] at the last real token of row b.",
        )  # fmt: skip
        if bool((got[~args[3].bool()] != 0).any()):
            raise AssertionError(
                f"the rewards on padding must be exactly 0 while {where}."
            )
        same_on_garbage(fn, args, 1, args[3], "the rewards", where, got)
        same_on_garbage(fn, args, 2, args[3], "the rewards", where, got)
    return len(cases)


# ---------------------------------------------------------------------------
# masked_whiten


def whiten_mistakes(args: tuple) -> list:
    x, mask = args
    m = mask.bool()
    real = x[m]

    def padded(values: torch.Tensor) -> torch.Tensor:
        return torch.where(m, values, torch.zeros_like(values))

    rows_mean = (torch.where(m, x, 0).sum(1) / m.sum(1)).unsqueeze(1)
    return [
        (
            "the mean and the std include the padding: compute them over the real "
            "tokens only (x[mask]), or every short completion pulls them toward the "
            "padding's numbers.",
            padded((x - x.mean()) / (x.std() + 1e-8)),
        ),
        (
            "use the Bessel-corrected std (torch.Tensor.std, which divides by n − 1), "
            "as the contract says.",
            padded((x - real.mean()) / (real.std(unbiased=False) + 1e-8)),
        ),
        (
            "the padding must come out as exactly 0, not as the whitened padding value.",
            (x - real.mean()) / (real.std() + 1e-8),
        ),
        (
            "whiten over the whole batch of real tokens, not row by row: one μ and one "
            "σ for all completions.",
            padded(x - rows_mean),
        ),
        (
            "subtract the mean too: whitening is (x − μ) / (σ + 1e-8).",
            padded(x / (real.std() + 1e-8)),
        ),
    ]


@exercise("masked_whiten")
def check_masked_whiten(fn: Callable, extra_cases: list[dict]) -> int:
    """Check Exercise 10.2: masked_whiten(x, mask)."""
    cases = [
        (c["x"], c["mask"])
        for i, (B, L) in enumerate(BATCH_SHAPES)
        if B * L > 2
        for c in [batch_case(200 + i, B, L)]
    ]
    cases += [(c["x"], c["mask"]) for c in extra_cases]
    for args in cases:
        B, L = args[0].shape
        where = f"whitening {B} completions of at most {L} tokens ({int(args[1].sum())} real)"
        got = compare_with_grads(
            fn, args, {}, masked_whiten, whiten_mistakes, "the whitened values",
            torch.Size([B, L]), where,
            "(x − μ) / (σ + 1e-8) on real tokens with μ, σ over real tokens only; "
            "0 on padding.",
        )  # fmt: skip
        same_on_garbage(fn, args, 0, args[1], "the whitened values", where, got)
    return len(cases)


# ---------------------------------------------------------------------------
# group_advantages


def group_mistakes(args: tuple) -> list:
    scores, G, scale = args
    P = scores.shape[0] // G
    interleaved = scores.reshape(G, P).T  # prompt p's completions at p, p + P, ...

    def normalize(groups: torch.Tensor, population: bool = False) -> torch.Tensor:
        centred = groups - groups.mean(dim=1, keepdim=True)
        if scale:
            centred = centred / (
                groups.std(dim=1, keepdim=True, unbiased=not population) + 1e-4
            )
        return centred

    batch = scores - scores.mean()
    mistakes = [
        (
            "the groups were cut across prompts: the G completions of ONE prompt sit in "
            "CONSECUTIVE rows (reshape(P, G), one prompt per row), not every P-th row.",
            normalize(interleaved).T.reshape(-1),
        ),
        (
            "subtract the mean of each completion's OWN group (its prompt's G "
            "completions), not the mean of the whole batch.",
            batch / (scores.std() + 1e-4) if scale else batch,
        ),
    ]
    groups = scores.reshape(P, G)
    if scale:
        mistakes += [
            (
                "use the Bessel-corrected std of the group (torch.Tensor.std), as the "
                "contract says.",
                normalize(groups, population=True).reshape(-1),
            ),
            (
                "scale=True: divide by the group's std + 1e-4 (GRPO).",
                (groups - groups.mean(dim=1, keepdim=True)).reshape(-1),
            ),
        ]
    else:
        mistakes.append(
            (
                "scale=False (Dr. GRPO): only subtract the group mean, do not divide "
                "by the std.",
                (
                    (groups - groups.mean(1, keepdim=True))
                    / (groups.std(1, keepdim=True) + 1e-4)
                ).reshape(-1),
            )
        )
    return mistakes


@exercise("group_advantages")
def check_group_advantages(fn: Callable, extra_cases: list[dict]) -> int:
    """Check Exercise 10.3: group_advantages(scores, group_size, scale)."""
    gen = generator(300)
    cases = []
    for P, G in [(3, 4), (1, 2), (5, 3), (2, 8)]:
        scores = (torch.rand(P * G, generator=gen) < 0.5).float()
        scores += 0.1 * torch.rand(P * G, generator=gen)
        for scale in (True, False):
            cases.append((scores, G, scale))
    tied = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])  # one group all right
    cases += [(tied, 3, True), (tied, 3, False)]
    cases += [(c["scores"], c["group_size"], c["scale"]) for c in extra_cases]
    for args in cases:
        scores, G, scale = args
        where = (
            f"computing the advantages of {scores.shape[0] // G} prompts with "
            f"group_size={G}, scale={scale} (scores {fmt(scores)})"
        )
        compare_with_grads(
            fn, args, {}, group_advantages, group_mistakes, "the advantages",
            scores.shape, where,
            "score − mean of its group (÷ (std of its group + 1e-4) when scale; a "
            "group whose scores are all equal has std 0, and the + 1e-4 keeps the "
            "division finite).",
        )  # fmt: skip
    return len(cases)


# ---------------------------------------------------------------------------
# token_loss


def aggregation_mistakes(args: tuple) -> list:
    per_token, mask, mode = args
    m = mask.bool()
    w = m.to(per_token.dtype)
    masked = torch.where(m, per_token, torch.zeros_like(per_token))
    B, L = per_token.shape
    candidates = {
        "token": masked.sum() / w.sum(),
        "sequence": (masked.sum(1) / w.sum(1)).mean(),
        "constant": masked.sum() / (B * L),
    }
    mistakes = [
        (
            "the padding was counted: per_token.mean() averages the padding entries "
            "too; sum over real tokens only (mask) and divide as the mode says.",
            per_token.mean(),
        ),
        (
            "the padding entries entered the sum: mask them out before summing.",
            per_token.sum() / w.sum(),
        ),
        (
            '"sequence" divides each row\'s sum by ITS OWN number of real tokens '
            "(Σ_t mask), not by L.",
            (masked.sum(1) / L).mean(),
        ),
        ("divide the sum: the loss is a mean, not a sum.", masked.sum()),
    ]
    labels = {
        "token": '"token": Σ mask·ℓ / Σ mask, every real token of the batch weighs the same',
        "sequence": '"sequence": the mean over rows of each row\'s mean over its real tokens',
        "constant": '"constant": Σ mask·ℓ / (B · L), a fixed normalizer (Dr. GRPO)',
    }
    for other, value in candidates.items():
        if other != mode:
            mistakes.append(
                (
                    f"that is the {other!r} aggregation; mode {mode!r} asks for {labels[mode]}.",
                    value,
                )
            )
    return mistakes


@exercise("token_loss")
def check_token_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check Exercise 10.4: token_loss(per_token, mask, mode)."""
    cases = []
    for i, (B, L) in enumerate(BATCH_SHAPES):
        c = batch_case(400 + i, B, L)
        for mode in ("token", "sequence", "constant"):
            cases.append((c["x"], c["mask"], mode))
    cases += [(c["per_token"], c["mask"], c["mode"]) for c in extra_cases]
    for per_token, mask, mode in cases:
        B, L = per_token.shape
        where = (
            f'aggregating a [{B}, {L}] per-token loss with mode "{mode}" (real tokens '
            f"per row {mask.sum(1).tolist()})"
        )
        args = (per_token.clone().requires_grad_(True), mask, mode)
        result, copies = call(fn, args, where)
        got = tensor(result, "the loss", torch.Size([]), where)
        expected = token_loss(per_token.double(), mask, mode)
        if not close(got, expected):
            message = diagnose(
                got.reshape(()), aggregation_mistakes((per_token.double(), mask, mode))
            )
            raise AssertionError(
                (message or "wrong loss.")
                + f"\n  while {where}:\n  expected {fmt(expected)}\n  got      {fmt(got)}"
            )
        (grad,) = grad_of(got, [copies[0]])
        if grad is None:
            raise AssertionError(
                f"the loss has no gradient with respect to per_token while {where}; "
                "the update needs it (no .item(), NumPy or .detach())."
            )
        if bool((grad[~mask.bool()] != 0).any()):
            raise AssertionError(
                f"the padding entries of per_token get a gradient while {where}: padding "
                "must not count (multiply by the mask or use torch.where before summing)."
            )
        reference = per_token.double().requires_grad_(True)
        (exp_grad,) = torch.autograd.grad(
            token_loss(reference, mask, mode), [reference]
        )
        if not close(grad, exp_grad):
            raise AssertionError(
                f"the value of the loss is right but its gradient is not ({fmt(grad)} "
                f"instead of {fmt(exp_grad)}) while {where}: did you detach part of it?"
            )
        same_on_garbage(
            fn,
            (per_token, mask, mode),
            0,
            mask,
            "the loss",
            where,
            got.detach().reshape(()),
        )
    return len(cases)
