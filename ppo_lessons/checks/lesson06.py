"""Checks of lesson 06: the value loss (6.1), approx KL (6.2), explained variance
(6.3), the PPO loss (6.4) and the minibatches (6.5)."""

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
    "check_minibatch_indices",
    "check_ppo_loss",
    "check_value_loss",
]

# ---------------------------------------------------------------------------
# Lesson 06: value loss, approximate KL, explained variance


def _value_mistakes(args: tuple) -> list:
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
            fn, (values, old, returns, eps), {0: "values"}, reference, _value_mistakes,
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
    """Check `approx_kl(new_log_probs, old_log_probs, estimator)` (Exercise 6.2)."""
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
    """Check `explained_variance(values, returns)` (Exercise 6.3)."""
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


# ---------------------------------------------------------------------------
# Lesson 06: the PPO loss (6.4) and the minibatches (6.5)

LOSS_RULE = (
    "loss = −mean(min(r·Â, clip(r, 1 − ε, 1 + ε)·Â)) + vf_coef · value_loss − "
    "ent_coef · mean(entropy), with r = exp(new − old) and Â the advantages, "
    "normalized ((A − mean) / (std + 1e-8), std as torch.Tensor.std) when "
    "normalize_advantages is True."
)


def _loss_variant(args: tuple, **mistake: object) -> torch.Tensor:
    """The PPO loss with one typical mistake switched on (none: the right loss)."""
    (new, old, adv, values, old_values, returns, entropy, eps, v_eps, vf, ent,
     normalize) = args  # fmt: skip
    if mistake.get("normalize", normalize):
        centre = 0.0 if mistake.get("not_centred") else adv.mean()
        std = adv.std(unbiased=not mistake.get("biased_std"))
        adv = (adv - centre) / (std + (0.0 if mistake.get("no_eps") else 1e-8))
    log_ratio = old - new if mistake.get("inverted") else new - old
    ratio = log_ratio.exp()
    clipped = ratio if mistake.get("no_clip") else ratio.clamp(1 - eps, 1 + eps)
    objective = torch.minimum(ratio * adv, clipped * adv).mean()
    half = 1.0 if mistake.get("no_half") else 0.5
    v_err = (values - returns) ** 2
    if v_eps is not None and not mistake.get("no_value_clip"):
        v_clip = old_values + (values - old_values).clamp(-v_eps, v_eps)
        v_err = torch.maximum(v_err, (v_clip - returns) ** 2)
    v_loss = half * v_err.mean()
    h = entropy.sum() if mistake.get("entropy_sum") else entropy.mean()
    policy_sign = 1.0 if mistake.get("policy_sign") else -1.0
    ent_sign = 1.0 if mistake.get("entropy_sign") else -1.0
    if mistake.get("vf_on_policy"):
        return policy_sign * vf * objective + v_loss + ent_sign * ent * h
    return policy_sign * objective + vf * v_loss + ent_sign * ent * h


LOSS_MISTAKES = (
    ({"policy_sign": True}, "the policy term has the wrong sign: the loss to MINIMIZE "
     "is −L^CLIP (minimizing it maximizes the clipped objective)."),
    ({"entropy_sign": True}, "the entropy term has the wrong sign: subtract "
     "ent_coef · mean(entropy) (a bonus for exploring, not a penalty)."),
    ({"vf_on_policy": True}, "vf_coef multiplies the wrong term: it weighs the value "
     "loss, not the policy term."),
    ({"normalize": False}, "the advantages are not normalized although "
     "normalize_advantages is True."),
    ({"normalize": True}, "the advantages are normalized although "
     "normalize_advantages is False."),
    ({"not_centred": True}, "the advantages are scaled but not centred: subtract "
     "their mean before dividing by (std + 1e-8)."),
    ({"biased_std": True}, "use torch.Tensor.std (the unbiased std) to normalize the "
     "advantages."),
    ({"no_half": True}, "the value loss lacks its ½: value_loss = 0.5 · mean(...)."),
    ({"no_value_clip": True}, "value_clip_eps is given but the value loss is not "
     "clipped: use value_loss(new_values, old_values, returns, value_clip_eps)."),
    ({"entropy_sum": True}, "the entropy is summed; the bonus uses its mean."),
    ({"inverted": True}, "the ratio is inverted: r = exp(new_log_probs − "
     "old_log_probs)."),
    ({"no_clip": True}, "the ratio is not clipped: min(r·Â, clip(r, 1 − ε, 1 + ε)·Â)."),
)  # fmt: skip


def loss_mistakes(args: tuple) -> list:
    return [(message, _loss_variant(args, **flags)) for flags, message in LOSS_MISTAKES]


def loss_reference(*args: object) -> torch.Tensor:
    return _loss_variant(args)


def _loss_case(shape: tuple[int, ...], gen: torch.Generator, settings: tuple) -> tuple:
    new, old = log_prob_pair(shape, gen, spread=0.4)
    adv = torch.randn(shape, generator=gen) * 1.5 + 0.7  # not centred, not unit
    values = torch.randn(shape, generator=gen)
    old_values = values + 0.5 * torch.randn(shape, generator=gen)
    returns = values + torch.randn(shape, generator=gen)
    entropy = torch.rand(shape, generator=gen) + 0.2
    return (new, old, adv, values, old_values, returns, entropy, *settings)


@exercise("ppo_loss")
def check_ppo_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check ppo_loss(new_log_probs, old_log_probs, advantages, new_values, old_values,
    returns, entropy, clip_eps, value_clip_eps, vf_coef, ent_coef,
    normalize_advantages) -> [] on [T], [T, N] and batch shapes, with and without
    normalization and value clipping, values and gradients."""
    gen = generator(604)
    cases = []
    for shape, settings in [
        ((12,), (0.2, None, 0.5, 0.01, True)),
        ((6, 4), (0.3, 0.25, 0.7, 0.02, True)),
        ((32,), (0.15, 0.2, 1.3, 0.05, False)),
        ((5, 3), (0.25, None, 0.4, 0.0, False)),
    ]:
        cases.append(_loss_case(shape, gen, settings))
    for case in extra_cases:
        cases.append(tuple(case[k] for k in LOSS_ARGS))
    grads = {0: "new_log_probs", 3: "new_values", 6: "entropy"}
    for args in cases:
        where = (
            f"called with shape {list(args[0].shape)}, clip_eps={args[7]}, "
            f"value_clip_eps={args[8]}, vf_coef={args[9]}, ent_coef={args[10]}, "
            f"normalize_advantages={args[11]}"
        )
        compare_with_grads(fn, args, grads, loss_reference, loss_mistakes, "the loss",
                           torch.Size([]), where, LOSS_RULE)  # fmt: skip
    # all advantages equal: the std is 0, the loss must stay finite
    equal = list(_loss_case((8,), gen, (0.2, None, 0.5, 0.01, True)))
    equal[2] = torch.full((8,), 1.5)
    result, _ = call(fn, tuple(equal), "all advantages equal (their std is 0)")
    loss = tensor(result, "the loss", torch.Size([]), "all advantages were equal")
    if not torch.isfinite(loss).all():
        raise AssertionError(
            "with all advantages equal their std is 0 and your loss is "
            f"{fmt(loss)}: divide by (std + 1e-8), not by std."
        )
    return len(cases) + 1


LOSS_ARGS = (
    "new_log_probs", "old_log_probs", "advantages", "new_values", "old_values",
    "returns", "entropy", "clip_eps", "value_clip_eps", "vf_coef", "ent_coef",
    "normalize_advantages",
)  # fmt: skip


def _index_pieces(result: object, where: str) -> list[torch.Tensor]:
    if not isinstance(result, list | tuple) or not all(
        isinstance(p, torch.Tensor) for p in result
    ):
        raise AssertionError(
            f"minibatch_indices must return a list of 1-D index tensors, got "
            f"{type(result).__name__} while {where}."
        )
    for piece in result:
        if piece.dim() != 1 or piece.dtype not in (torch.int64, torch.int32):
            raise AssertionError(
                "each minibatch must be a 1-D integer tensor of indices, got shape "
                f"{list(piece.shape)} and dtype {piece.dtype} while {where}."
            )
    return list(result)


def _check_pieces(pieces: list[torch.Tensor], B: int, M: int, where: str) -> None:
    sizes = [len(p) for p in pieces]
    expected = [min(M, B - s) for s in range(0, B, M)]
    flat = torch.cat(pieces).tolist() if pieces else []
    if len(set(flat)) < len(flat):
        raise AssertionError(
            f"some indices appear twice (drawn with replacement?) while {where}: an "
            "epoch uses every sample exactly once; cut ONE random permutation "
            "(torch.randperm) into pieces."
        )
    if sizes == expected and sorted(flat) == list(range(B)):
        return
    if B % M and sizes == expected[:-1]:
        raise AssertionError(
            f"the last, shorter minibatch is missing while {where} (sizes {sizes}, "
            f"expected {expected}): keep it, every sample is used once per epoch."
        )
    if len(pieces) == min(M, B) and len(pieces) != len(expected):
        raise AssertionError(
            f"{len(pieces)} minibatches of sizes {sizes} while {where}: torch.chunk(x, "
            f"{M}) makes {M} pieces; torch.split(x, {M}) makes pieces of {M}."
        )
    raise AssertionError(
        f"minibatch sizes {sizes} while {where}; expected {expected} (consecutive "
        f"pieces of {M} of one permutation of range({B}), the last one shorter), "
        "covering every index exactly once."
    )


@exercise("minibatch_indices")
def check_minibatch_indices(fn: Callable, extra_cases: list[dict]) -> int:
    """Check minibatch_indices(batch_size, minibatch_size, generator) -> list of index
    tensors: sizes, every index once, shuffled, reproducible from the generator,
    independent of PyTorch's global random state, a new order each call."""
    count = 0
    for B, M in [(10, 3), (12, 4), (64, 16), (7, 7), (5, 8)]:
        where = f"called with batch_size={B}, minibatch_size={M}"
        torch.manual_seed(1)
        pieces = _index_pieces(call(fn, (B, M, generator(17)), where)[0], where)
        _check_pieces(pieces, B, M, where)
        torch.manual_seed(2)  # the global random state must not matter
        again = _index_pieces(call(fn, (B, M, generator(17)), where)[0], where)
        if B >= 10:
            _check_order(fn, pieces, again, B, M, where)
        count += 1
    return count


def _check_order(fn: Callable, pieces, again, B: int, M: int, where: str) -> None:
    order = torch.cat(pieces)
    if torch.equal(order, torch.arange(B)):
        raise AssertionError(
            f"the indices are not shuffled while {where}: draw a random permutation "
            "with torch.randperm(batch_size, generator=generator)."
        )
    if not torch.equal(order, torch.cat(again)):
        raise AssertionError(
            f"the same generator state gave two different orders while {where}: "
            "draw from the generator you are given, not from PyTorch's global "
            "random state."
        )
    gen = generator(17)
    first = torch.cat(call(fn, (B, M, gen), where)[0])
    second = torch.cat(call(fn, (B, M, gen), where)[0])
    other = torch.cat(call(fn, (B, M, generator(18)), where)[0])
    if torch.equal(first, second) or torch.equal(first, other):
        raise AssertionError(
            f"every call gives the same order while {where} (a fixed seed inside?): "
            "each epoch needs a new order drawn from the generator you are given."
        )
