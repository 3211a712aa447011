"""Checks of lesson 06's PPO loss (6.2); the minibatches (6.3) are checked in
`ppo_lessons.checks.lesson06_minibatches`.

`check_ppo_loss` compares the loss AND its gradients with the reference. Since
new_log_probs reaches only the policy term, new_values only the value term and
entropy only the entropy bonus, the gradient with respect to each input tells which
term is wrong; that term is then compared with the typical mistakes (those of the
clipped objective, lesson 03, and of the value loss, 6.1, included), so two mistakes
at once are both named.
"""

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
    tensor,
)
from ppo_lessons.checks.lesson02 import log_prob_pair
from ppo_lessons.checks.lesson03 import clipped_mistakes
from ppo_lessons.checks.lesson06 import value_mistakes
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.losses import value_loss
from ppo_lessons.update import normalize_advantages, ppo_loss

__all__ = ["check_ppo_loss"]

# ---------------------------------------------------------------------------
# 6.2 the PPO loss

LOSS_ARGS = (
    "new_log_probs", "old_log_probs", "advantages", "new_values", "old_values",
    "returns", "entropy", "clip_eps", "value_clip_eps", "vf_coef", "ent_coef",
    "normalize_advantages",
)  # fmt: skip
GRAD_ARGS = {0: "new_log_probs", 3: "new_values", 6: "entropy"}

LOSS_RULE = (
    "loss = −mean(min(r·Â, clip(r, 1 − ε, 1 + ε)·Â)) + vf_coef · value_loss − "
    "ent_coef · mean(entropy), with r = exp(new − old) and Â the advantages, "
    "normalized ((A − mean) / (std + 1e-8), std as torch.Tensor.std) when "
    "normalize_advantages is True."
)
TERM_RULES = {
    "new_log_probs": "the policy term is wrong: it is −mean(min(r·Â, clip(r, 1 − ε, "
    "1 + ε)·Â)) with r = exp(new_log_probs − old_log_probs) and Â the advantages "
    "(normalized when normalize_advantages is True).",
    "new_values": "the value term is wrong: it is vf_coef · value_loss(new_values, "
    "old_values, returns, value_clip_eps), i.e. vf_coef · 0.5 · mean of the squared "
    "error (clipped around old_values when value_clip_eps is a number).",
    "entropy": "the entropy term is wrong: it is −ent_coef · mean(entropy).",
}
DETACHED = {
    "new_log_probs": "the policy term has no gradient with respect to new_log_probs, "
    "so the policy would never change: compute the ratio exp(new_log_probs − "
    "old_log_probs) with torch operations (no .detach(), .item() or NumPy).",
    "new_values": "the value loss has no gradient with respect to new_values, so the "
    "critic would never learn: compute it from new_values (not old_values) with "
    "torch operations (no .detach(), .item() or NumPy).",
    "entropy": "the entropy bonus has no gradient with respect to entropy: use the "
    "entropy tensor itself (no .detach(), .item() or NumPy).",
}
NO_GRAPH = (
    "your loss has no gradient at all (computed with NumPy, .item() or "
    "torch.tensor(...) of a result?), so the update could not learn from it: build it "
    "from the input tensors with torch operations."
)


def _loss(
    args: tuple,
    adv: torch.Tensor | None = None,
    policy: torch.Tensor | None = None,
    value: torch.Tensor | None = None,
    ent: torch.Tensor | None = None,
) -> torch.Tensor:
    """The PPO loss from its parts; each part given replaces the right one."""
    new, old, a, values, old_values, returns, entropy, eps, v_eps = args[:9]
    if adv is None:
        adv = normalize_advantages(a) if args[11] else a
    if policy is None:
        policy = -clipped_surrogate_objective(new, old, adv, eps)
    if value is None:
        value = args[9] * value_loss(values, old_values, returns, v_eps)
    if ent is None:
        ent = -args[10] * entropy.mean()
    return policy + value + ent


def advantage_mistakes(adv: torch.Tensor, normalize: bool) -> list:
    """(message, the advantages a typical mistake uses) for the given flag."""
    if not normalize:
        return [
            (
                "the advantages are normalized although normalize_advantages is "
                "False: use them as given.",
                normalize_advantages(adv),
            )
        ]
    centred = adv - adv.mean()
    mistakes = [
        ("the advantages are not normalized although normalize_advantages is "
         "True: Â = (A − mean A) / (std A + 1e-8).", adv),
        ("the advantages are scaled but not centred: subtract their mean before "
         "dividing by (std + 1e-8).", adv / (adv.std() + 1e-8)),
        ("the advantages are centred but not scaled: divide A − mean A by "
         "(std A + 1e-8).", centred),
        ("normalize the advantages with the unbiased std (torch.Tensor.std, or "
         "np.std(..., ddof=1)), not the biased one.",
         centred / (adv.std(unbiased=False) + 1e-8)),
        ("divide the centred advantages by their std, not their variance.",
         centred / (adv.var() + 1e-8)),
    ]  # fmt: skip
    if adv.dim() > 1:
        mistakes.append(
            (
                "normalize over ALL elements of the minibatch, not per column "
                "(per environment): mean and std without a dim argument.",
                (adv - adv.mean(0)) / (adv.std(0) + 1e-8),
            )
        )
    return mistakes


def policy_shapes(args: tuple, adv_hat: torch.Tensor) -> list:
    """(message, the policy term −L^CLIP with that mistake) for advantages adv_hat:
    the mistakes of the ratio, the clip and the sign."""
    new, old, eps = args[0], args[1], args[7]
    log_ratio = new - old
    mistakes = [
        ("the policy term has the wrong sign: the loss to MINIMIZE is −L^CLIP "
         "(minimizing it maximizes the clipped objective).",
         clipped_surrogate_objective(new, old, adv_hat, eps)),
        ("the ratio is inverted: r = exp(new_log_probs − old_log_probs).",
         -clipped_surrogate_objective(old, new, adv_hat, eps)),
        ("the ratio is not clipped: min(r·Â, clip(r, 1 − ε, 1 + ε)·Â).",
         -(log_ratio.exp() * adv_hat).mean()),
        ("the ratio is r = exp(new_log_probs − old_log_probs), not the difference "
         "of the log-probabilities.",
         -torch.minimum(log_ratio * adv_hat,
                        log_ratio.clamp(1 - eps, 1 + eps) * adv_hat).mean()),
    ]  # fmt: skip
    return mistakes + [
        (f"in the policy term: {message}", -wrong)
        for message, wrong in clipped_mistakes(new, old, adv_hat, eps)
    ]


def value_shapes(args: tuple) -> list:
    """(message, the value loss with that mistake, before vf_coef)."""
    values, old_values, returns, eps, v_eps = *args[3:6], args[7], args[8]
    if v_eps is None:
        mistakes = [("value_clip_eps is None, so the value loss is not clipped "
                     "(clip_eps is the policy's ε).", eps)]  # fmt: skip
    else:
        mistakes = [
            ("value_clip_eps is given but the value loss is not clipped: use "
             "value_loss(new_values, old_values, returns, value_clip_eps).", None),
            ("the value loss is clipped with clip_eps; the value clip has its own ε, "
             "value_clip_eps.", eps),
        ]  # fmt: skip
    shapes = [(m, value_loss(values, old_values, returns, e)) for m, e in mistakes]
    return shapes + [
        (f"in the value loss: {message}", wrong)
        for message, wrong in value_mistakes((values, old_values, returns, v_eps))
    ]


def value_scales(args: tuple) -> list:
    """(message, the factor the value loss is multiplied by with that mistake)."""
    vf = args[9]
    return [
        ("the value loss lacks its ½: value_loss = 0.5 · mean(...).", 2 * vf),
        ("the value term has the wrong sign: ADD vf_coef · value_loss (minimizing "
         "the loss must shrink the value error).", -vf),
        ("the value loss is not weighted: the term is vf_coef · value_loss.", 1.0),
    ]  # fmt: skip


def _coefficient_and_entropy_mistakes(args: tuple) -> list:
    new, old, eps, vf, ent, entropy = (
        args[0],
        args[1],
        args[7],
        args[9],
        args[10],
        args[6],
    )
    adv_hat = normalize_advantages(args[2]) if args[11] else args[2]
    v_loss = value_loss(*args[3:6], args[8])
    own = [
        ("vf_coef multiplies the wrong term: it weighs the value loss, not the "
         "policy term.",
         {"policy": -vf * clipped_surrogate_objective(new, old, adv_hat, eps),
          "value": v_loss}),
        ("vf_coef and ent_coef are swapped: vf_coef weighs the value loss, ent_coef "
         "the entropy.",
         {"value": ent * v_loss, "ent": -vf * entropy.mean()}),
        ("the entropy term has the wrong sign: subtract ent_coef · mean(entropy) "
         "(a bonus for exploring, not a penalty).", {"ent": ent * entropy.mean()}),
        ("the entropy is summed; the bonus uses its mean: −ent_coef · "
         "mean(entropy).", {"ent": -ent * entropy.sum()}),
        ("the entropy is not weighted: the term is −ent_coef · mean(entropy).",
         {"ent": -entropy.mean()}),
        ("the entropy bonus is missing: subtract ent_coef · mean(entropy).",
         {"ent": 0.0 * entropy.sum()}),
    ]  # fmt: skip
    return [(message, _loss(args, **parts)) for message, parts in own]


def loss_mistakes(args: tuple) -> list:
    """(message, the loss with that one typical mistake) for the arguments `args`
    (computed from them, so gradients flow where they require grad)."""
    adv_hat = normalize_advantages(args[2]) if args[11] else args[2]
    v_loss = value_loss(*args[3:6], args[8])
    mistakes = [(m, _loss(args, policy=p)) for m, p in policy_shapes(args, adv_hat)]
    mistakes += [
        (m, _loss(args, adv=a)) for m, a in advantage_mistakes(args[2], args[11])
    ]
    mistakes += [(m, _loss(args, value=k * v_loss)) for m, k in value_scales(args)]
    mistakes += [(m, _loss(args, value=args[9] * v)) for m, v in value_shapes(args)]
    return mistakes + _coefficient_and_entropy_mistakes(args)


def two_mistakes(args: tuple, term: str) -> list:
    """(messages, the loss) for two mistakes in one term: the advantages and the
    shape of the policy term, or the factor and the shape of the value loss."""
    if term == "new_log_probs":
        return [
            (f"{m}\n  and {n}", _loss(args, policy=p))
            for m, a in advantage_mistakes(args[2], args[11])
            for n, p in policy_shapes(args, a)
        ]
    if term == "new_values":
        return [
            (f"{m}\n  and {n}", _loss(args, value=k * v))
            for m, k in value_scales(args)
            for n, v in value_shapes(args)
        ]
    return []


def _grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    if not loss.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    found = torch.autograd.grad(loss, inputs, allow_unused=True, retain_graph=True)
    return [
        torch.zeros_like(x) if g is None else g
        for g, x in zip(found, inputs, strict=True)
    ]


def _grad_close(got: torch.Tensor | None, expected: torch.Tensor) -> bool:
    if got is None:
        return bool((expected == 0).all())
    return got.shape == expected.shape and close(got, expected)


def _why_not_finite(args: tuple, got: torch.Tensor, where: str) -> str:
    adv = args[2]
    if args[11] and adv.numel() > 1 and float(adv.std()) == 0.0:
        return (
            f"all advantages are equal here, so their std is 0 and your loss is "
            f"{fmt(got)}: divide by (std + 1e-8), not by std, so that the loss stays "
            f"finite.\n  while {where}."
        )
    return f"your loss is {fmt(got)} (inf or NaN) while {where}. {LOSS_RULE}"


def _name_term(grad: torch.Tensor, k: int, variants: list, double: tuple) -> str | None:
    """The mistake(s) whose gradient w.r.t. the k-th input equals `grad`."""
    for message, _, grads in variants:
        if _grad_close(grad, grads[k]):
            return message
    inputs = [double[i] for i in GRAD_ARGS]
    for message, wrong in two_mistakes(double, list(GRAD_ARGS.values())[k]):
        if _grad_close(grad, _grads(wrong, inputs)[k]):
            return message
    return None


def _explain(got, got_grads, expected, expected_grads, double, where) -> str:
    inputs = [double[i] for i in GRAD_ARGS]
    variants = [(m, w, _grads(w, inputs)) for m, w in loss_mistakes(double)]
    details = (
        f"\n  while {where}:\n  expected loss {fmt(expected)}\n  got      {fmt(got)}"
    )
    for message, wrong, grads in variants:  # one mistake explains everything
        if close(got, wrong) and all(map(_grad_close, got_grads, grads)):
            return message + details
    if all(g is None for g in got_grads) and any(g.any() for g in expected_grads):
        named = diagnose(got, [(m, w) for m, w, _ in variants])
        if named is None and not close(got, expected):
            named = f"wrong loss. {LOSS_RULE}"
        return (f"{named}\n  and " if named else "") + NO_GRAPH + details
    reasons: list[str] = []
    for k, name in enumerate(GRAD_ARGS.values()):
        g, e = got_grads[k], expected_grads[k]
        if _grad_close(g, e):
            continue
        details += f"\n  gradient w.r.t. {name}: expected {fmt(e)}, got "
        details += "none" if g is None else fmt(g)
        if g is None or not g.any():
            reason = DETACHED[name]
        else:
            reason = _name_term(g, k, variants, double) or TERM_RULES[name]
        if reason not in reasons:
            reasons.append(reason)
    if not reasons:  # every gradient right, the value not: a constant is off
        reasons.append(
            diagnose(got, [(m, w) for m, w, _ in variants])
            or "the gradients are right but the value is not: the loss is off by a "
            f"constant. {LOSS_RULE}"
        )
    return "\n  and ".join(reasons) + details


def compare_loss(fn: Callable, args: tuple, where: str) -> None:
    """Call fn on args; raise an AssertionError naming what is wrong, if anything."""
    args = tuple(
        a.clone().requires_grad_(True) if i in GRAD_ARGS else a
        for i, a in enumerate(args)
    )
    result, copies = call(fn, args, where)
    got = tensor(result, "the loss", torch.Size([]), where)
    double = tuple(
        a.detach().double().requires_grad_(i in GRAD_ARGS)
        if isinstance(a, torch.Tensor)
        else a
        for i, a in enumerate(args)
    )
    expected = ppo_loss(*double)
    if not torch.isfinite(expected):
        return  # an instructor's case the contract leaves undefined (B = 1 normalized)
    if not torch.isfinite(got).all():
        raise AssertionError(_why_not_finite(args, got, where))
    got_grads = grad_of(got, [copies[i] for i in GRAD_ARGS])
    expected_grads = _grads(expected, [double[i] for i in GRAD_ARGS])
    if close(got, expected) and all(map(_grad_close, got_grads, expected_grads)):
        return
    raise AssertionError(
        _explain(got, got_grads, expected, expected_grads, double, where)
    )


def loss_case(shape: tuple[int, ...], gen: torch.Generator, settings: tuple) -> tuple:
    """Random arguments of one ppo_loss call: ratios inside and outside the clip
    range, values inside and outside the value clip, advantages neither centred nor
    of unit scale; `settings` = (clip_eps, value_clip_eps, vf_coef, ent_coef,
    normalize_advantages)."""
    new, old = log_prob_pair(shape, gen, spread=0.4)
    adv = torch.randn(shape, generator=gen) * 1.5 + 0.7
    values = torch.randn(shape, generator=gen)
    old_values = values + 0.5 * torch.randn(shape, generator=gen)
    returns = values + torch.randn(shape, generator=gen)
    entropy = torch.rand(shape, generator=gen) + 0.2
    return (new, old, adv, values, old_values, returns, entropy, *settings)


@exercise("ppo_loss")
def check_ppo_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `ppo_loss(new_log_probs, old_log_probs, advantages, new_values,
    old_values, returns, entropy, clip_eps, value_clip_eps, vf_coef, ent_coef,
    normalize_advantages)` (Exercise 6.2): value and gradients on [B], [T, N] and a
    batch of one, with and without normalization and value clipping, coefficients
    away from their defaults, and all advantages equal."""
    gen = generator(604)
    cases = [
        loss_case(shape, gen, settings)
        for shape, settings in [
            ((12,), (0.2, None, 0.75, 0.01, True)),
            ((6, 4), (0.3, 0.25, 0.7, 0.02, True)),
            ((32,), (0.15, 0.2, 1.3, 0.05, False)),
            ((5, 3), (0.25, None, 0.4, 0.0, False)),
            ((16,), (0.1, 0.5, 2.0, 0.1, True)),
            ((1,), (0.2, 0.2, 0.5, 0.01, False)),
        ]
    ]
    equal = list(loss_case((8,), gen, (0.2, None, 0.5, 0.01, True)))
    equal[2] = torch.full((8,), 1.5)  # std 0: the loss must stay finite
    cases.append(tuple(equal))
    cases += [tuple(case[k] for k in LOSS_ARGS) for case in extra_cases]
    for args in cases:
        equal_note = ", all advantages equal" if args is cases[6] else ""
        where = (
            f"called with shape {list(args[0].shape)}, clip_eps={args[7]}, "
            f"value_clip_eps={args[8]}, vf_coef={args[9]}, ent_coef={args[10]}, "
            f"normalize_advantages={args[11]}{equal_note}"
        )
        compare_loss(fn, args, where)
    return len(cases)
