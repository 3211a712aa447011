"""Exercise checks: run a student's function on many inputs and explain what is wrong.

One check per graded function, `check_<function>(fn)`. Each calls `fn` with every
argument positional, exactly as the contract in `ppo_lessons` states, and

- prints one line and returns True when the function is right;
- prints that the exercise is not done yet and returns False when `fn` raises
  `NotImplementedError` (so an unsolved notebook still runs top to bottom);
- raises `AssertionError` whose message says what is wrong in the student's terms.

A check tests values AND gradients (where a gradient matters), inputs of shape [T] and
[T, N], random episode ends of both kinds, and parameters away from their usual
defaults. When the answer is wrong it first compares it with the typical mistakes (a
wrong sign, max instead of min, the truncation bug, ...) to name the mistake; failing
that, it probes small hand-made cases to say where the function goes wrong.

Episode-end flags are passed as 0/1 float tensors, the dtype of the rewards; a function
that only accepts bool flags is called with bool flags instead.

Instructors can add hidden cases: `check_compute_gae(fn, extra_cases=[{...}])`, where
each case is a dict of the function's arguments by name (see `ppo_lessons.grade`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.gae import compute_gae
from ppo_lessons.importance_sampling import probability_ratio, surrogate_objective
from ppo_lessons.policy_gradient import discounted_returns, policy_gradient_loss

__all__ = [
    "check_approx_kl",
    "check_cartpole_step",
    "check_categorical_entropy",
    "check_clipped_surrogate_objective",
    "check_compute_gae",
    "check_discounted_returns",
    "check_explained_variance",
    "check_gaussian_log_prob",
    "check_policy_gradient_loss",
    "check_probability_ratio",
    "check_surrogate_objective",
    "check_value_loss",
]

RTOL = 1e-4
ATOL = 1e-5


class _NotDone(Exception):
    """The student's function raised NotImplementedError."""


# ---------------------------------------------------------------------------
# Calling the student's function and reading what it returns


def _call(fn: Callable, args: Sequence[object], where: str) -> object:
    """Call fn(*args) on copies of the tensors; turn its failures into explanations."""
    copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    for copy, original in zip(copies, args, strict=True):
        if isinstance(original, torch.Tensor) and original.requires_grad:
            copy.requires_grad_(True)
    try:
        result = fn(*copies)
    except NotImplementedError as error:
        # PyTorch raises NotImplementedError for an op a dtype lacks ("bitwise_or_cpu"
        # not implemented for 'Float'): that is a bug to report, not an unsolved stub.
        if "not implemented for '" not in str(error):
            raise _NotDone from None
        raise AssertionError(
            f"your function raised NotImplementedError: {error}\n  while {where}."
        ) from None
    except Exception as error:  # the student's bug, reported in their terms
        raise AssertionError(
            f"your function raised {type(error).__name__}: {error}\n  while {where}."
        ) from None
    for copy, original in zip(copies, args, strict=True):
        if isinstance(original, torch.Tensor) and not torch.equal(
            copy.detach(), original.detach()
        ):
            raise AssertionError(
                f"your function changed one of its input tensors in place while {where}; "
                "build new tensors (e.g. torch.zeros_like) instead of writing into the "
                "inputs, which the caller still needs."
            )
    return result, copies


def _tensor(result: object, what: str, shape: torch.Size, where: str) -> torch.Tensor:
    """Require a tensor of the given shape (scalars: a single element)."""
    if not isinstance(result, torch.Tensor):
        hint = ""
        if isinstance(result, float | int):
            hint = " (.item() or float() gives a Python number and cuts the gradient)"
        elif type(result).__module__.startswith("numpy"):
            hint = " (wrap a NumPy result with torch.as_tensor)"
        raise AssertionError(
            f"{what} must be a torch.Tensor, got {type(result).__name__}{hint}; "
            f"while {where}."
        )
    if len(shape) == 0:
        if result.numel() != 1:
            raise AssertionError(
                f"{what} must be a single number (the mean over ALL elements), got shape "
                f"{list(result.shape)} while {where}; use .mean() with no dim argument."
            )
    elif result.shape != shape:
        raise AssertionError(
            f"{what} has shape {list(result.shape)}, expected {list(shape)} (the shape "
            f"of the inputs) while {where}."
        )
    if not result.is_floating_point():
        raise AssertionError(f"{what} must be floating point, got {result.dtype}.")
    return result.reshape(shape)


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return bool(
        torch.allclose(
            got.detach().double(), expected.detach().double(), rtol=RTOL, atol=ATOL
        )
    )


def _fmt(x: torch.Tensor | float) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().double()
        if x.numel() == 1:
            return f"{x.item():.4f}"
        return (
            "["
            + ", ".join(f"{v:.4f}" for v in x.flatten().tolist()[:8])
            + (", ...]" if x.numel() > 8 else "]")
        )
    return f"{x:.4f}"


def _diagnose(
    got: torch.Tensor, mistakes: Iterable[tuple[str, torch.Tensor]]
) -> str | None:
    """The message of the first typical mistake whose result equals `got`."""
    for message, wrong in mistakes:
        if wrong.shape == got.shape and _close(got, wrong):
            return message
    return None


def _grad_of(output: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list:
    """Gradients of output.sum() w.r.t. inputs (None where there is no path)."""
    if not output.requires_grad:
        return [None] * len(inputs)
    grads = torch.autograd.grad(
        output.sum(), list(inputs), allow_unused=True, retain_graph=True
    )
    return list(grads)


# ---------------------------------------------------------------------------
# The check wrapper: one line on success, "not yet" on NotImplementedError


def _exercise(function: str) -> Callable:
    def decorate(body: Callable[..., int]) -> Callable[..., bool]:
        @functools.wraps(body)
        def check(fn: Callable, *, extra_cases: Iterable[dict] = ()) -> bool:
            if not callable(fn):
                raise TypeError(
                    f"check_{function} expects your function itself, e.g. "
                    f"check_{function}({function}), got {type(fn).__name__}"
                )
            try:
                count = body(fn, list(extra_cases))
            except _NotDone:
                print(
                    f"… {function}: not implemented yet (it raises "
                    "NotImplementedError). The notebook continues with the reference "
                    "version; come back to this exercise when you are ready."
                )
                return False
            print(f"✔ {function}: correct on all {count} test cases.")
            return True

        check.__doc__ = (body.__doc__ or "") + (
            "\n\nReturns True when correct, False when not implemented yet; raises "
            "AssertionError explaining the mistake otherwise."
        )
        return check

    return decorate


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shapes() -> list[tuple[int, ...]]:
    return [(9,), (7, 3), (1,), (12, 1)]


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
    result, _ = _call(fn, (rewards, gamma), where)
    got = _tensor(result, "the returns", rewards.shape, where)
    expected = discounted_returns(rewards.double(), gamma)
    if _close(got, expected):
        return
    message = _diagnose(got, _returns_mistakes(rewards, gamma))
    if message is None:
        wrong = (got.double() - expected).abs() > ATOL + RTOL * expected.abs()
        index = tuple(int(i) for i in wrong.nonzero()[0])
        message = (
            f"wrong return at index {index}: expected {expected[index].item():.4f}, "
            f"got {got[index].item():.4f}. G_t = r_t + γ G_(t+1), with G = 0 after "
            "the last step."
        )
    raise AssertionError(
        f"{message}\n  Case: rewards = {_fmt(rewards)}, γ = {gamma}\n"
        f"  expected {_fmt(expected)}\n  got      {_fmt(got)}"
    )


@_exercise("discounted_returns")
def check_discounted_returns(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `discounted_returns(rewards, gamma)` (Exercise 1.1)."""
    cases: list[tuple[torch.Tensor, float]] = [
        (torch.tensor([1.0, 2.0, 3.0, 4.0]), 0.9),
        (torch.tensor([1.0, 0.0, -2.0, 5.0, 1.0]), 0.5),
        (torch.tensor([3.0, -1.0, 2.0]), 0.0),
        (torch.tensor([3.0, -1.0, 2.0]), 1.0),
    ]
    gen = _generator(101)
    for i, shape in enumerate(_shapes()):
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
    (grad,) = _grad_of(got, [log_probs])
    if grad is None:
        raise AssertionError(
            "the loss has no gradient with respect to log_probs: did you use .item(), "
            ".detach(), .numpy() or torch.tensor(...) on it? Autograd must see the "
            "computation from log_probs to the loss."
        )
    expected = -weights / weights.numel()
    if not _close(grad, expected):
        raise AssertionError(
            "the gradient of the loss w.r.t. log_probs should be −weights / (number of"
            f" elements); got {_fmt(grad)}, expected {_fmt(expected)}."
        )


@_exercise("policy_gradient_loss")
def check_policy_gradient_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `policy_gradient_loss(log_probs, weights)` (Exercise 1.2)."""
    gen = _generator(102)
    cases = []
    for shape in _shapes():
        log_probs = -torch.rand(shape, generator=gen) * 3 - 0.05
        cases.append((log_probs, torch.randn(shape, generator=gen) * 2))
    cases += [(c["log_probs"], c["weights"]) for c in extra_cases]
    for log_probs, weights in cases:
        where = f"computing the loss for log_probs of shape {list(log_probs.shape)}"
        log_probs = log_probs.clone().requires_grad_(True)
        result, (lp, _) = _call(fn, (log_probs, weights), where)
        got = _tensor(result, "the loss", torch.Size([]), where)
        expected = policy_gradient_loss(log_probs.detach().double(), weights.double())
        if not _close(got, expected):
            lpd, w = log_probs.detach().double(), weights.double()
            message = _diagnose(
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
                + f"\n  expected {_fmt(expected)}, got {_fmt(got)} for log_probs of "
                f"shape {list(log_probs.shape)}."
            )
        _check_loss_gradient(got, lp, weights)
    return len(cases)


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


def _log_prob_pair(shape: tuple[int, ...], gen: torch.Generator, spread: float = 0.5):
    old = -torch.rand(shape, generator=gen) * 2.5 - 0.1
    new = old + torch.randn(shape, generator=gen) * spread
    return new, old


@_exercise("probability_ratio")
def check_probability_ratio(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `probability_ratio(new_log_probs, old_log_probs)` (Exercise 2.1)."""
    gen = _generator(201)
    cases = [_log_prob_pair(shape, gen) for shape in _shapes()]
    cases.append((torch.tensor([-1.2, -0.3]), torch.tensor([-1.2, -0.3])))
    cases += [(c["new_log_probs"], c["old_log_probs"]) for c in extra_cases]
    for new, old in cases:
        where = f"computing ratios for log-probs of shape {list(new.shape)}"
        new = new.clone().requires_grad_(True)
        result, (new_copy, _) = _call(fn, (new, old), where)
        got = _tensor(result, "the ratio", new.shape, where)
        expected = probability_ratio(new.detach().double(), old.double())
        if not _close(got, expected):
            message = _diagnose(got, _ratio_mistakes(new.detach(), old))
            raise AssertionError(
                (message or "wrong ratio: r = exp(new_log_probs − old_log_probs).")
                + f"\n  new = {_fmt(new)}\n  old = {_fmt(old)}\n"
                f"  expected {_fmt(expected)}\n  got      {_fmt(got)}"
            )
        (grad,) = _grad_of(got, [new_copy])
        if grad is None:
            raise AssertionError(
                "the ratio has no gradient with respect to new_log_probs (it was "
                "detached, or computed with NumPy/.item()); PPO's update needs "
                "∂r/∂θ, so keep it in torch operations on the inputs."
            )
        if not _close(grad, expected):
            raise AssertionError(
                "∂r/∂new_log_probs should equal r itself (d/dx exp(x − c) = exp(x − c));"
                f" got {_fmt(grad)}, expected {_fmt(expected)}."
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


@_exercise("surrogate_objective")
def check_surrogate_objective(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `surrogate_objective(new_log_probs, old_log_probs, advantages)` (Ex. 2.2)."""
    gen = _generator(202)
    cases = []
    for shape in _shapes():
        new, old = _log_prob_pair(shape, gen)
        cases.append((new, old, torch.randn(shape, generator=gen) * 2))
    # at θ = θ_old the gradient must be the policy-gradient estimate A / n
    same = -torch.rand(8, generator=gen) - 0.2
    cases.append((same.clone(), same.clone(), torch.randn(8, generator=gen)))
    cases += [
        (c["new_log_probs"], c["old_log_probs"], c["advantages"]) for c in extra_cases
    ]
    for new, old, adv in cases:
        where = f"computing the surrogate for inputs of shape {list(new.shape)}"
        new = new.clone().requires_grad_(True)
        result, (new_copy, _, _) = _call(fn, (new, old, adv), where)
        got = _tensor(result, "the surrogate", torch.Size([]), where)
        expected = surrogate_objective(
            new.detach().double(), old.double(), adv.double()
        )
        if not _close(got, expected):
            message = _diagnose(got, _surrogate_mistakes(new.detach(), old, adv))
            raise AssertionError(
                (message or "wrong value: L^IS = mean(exp(new − old) · A).")
                + f"\n  expected {_fmt(expected)}, got {_fmt(got)}."
            )
        (grad,) = _grad_of(got, [new_copy])
        if grad is None:
            raise AssertionError(
                "the surrogate has no gradient with respect to new_log_probs: the ratio "
                "was detached or computed outside torch. Its gradient is what PPO "
                "follows."
            )
        ratio = torch.exp(new.detach().double() - old.double())
        expected_grad = ratio * adv.double() / adv.numel()
        if not _close(grad, expected_grad):
            at_old = bool(torch.equal(new.detach(), old))
            raise AssertionError(
                "∂L^IS/∂new_log_probs should be r · A / n"
                + (
                    " — here θ = θ_old, where it must equal the policy-gradient "
                    "estimate A / n"
                    if at_old
                    else ""
                )
                + f"; got {_fmt(grad)}, expected {_fmt(expected_grad)}."
            )
    return len(cases)


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
        result, (new_copy, _, _, _) = _call(fn, (new, old, adv, eps), where)
        got = _tensor(result, "the objective", torch.Size([]), where)
        expected = clipped_surrogate_objective(
            new.detach().double(), old.double(), adv.double(), eps
        )
        (grad,) = _grad_of(got, [new_copy])
        # d/d(new) = d/dr · r, so the expected gradient w.r.t. new is (dL/dr) · r
        grad_r_expected = 0.0 if region.clipped else region.advantage
        grad_ok = grad is not None and math.isclose(
            float(grad.sum()),
            grad_r_expected * region.ratio,
            rel_tol=1e-3,
            abs_tol=1e-5,
        )
        if not _close(got, expected) or not grad_ok:
            got_grad = (
                "none" if grad is None else f"{float(grad.sum()) / region.ratio:+.4f}"
            )
            return (
                _region_advice(region, eps)
                + f"\n  yours gave {_fmt(got)} with gradient {got_grad} w.r.t. r."
            )
    return None


def _clipped_mistakes(new, old, adv, eps: float) -> list:
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


@_exercise("clipped_surrogate_objective")
def check_clipped_surrogate_objective(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `clipped_surrogate_objective(new_log_probs, old_log_probs, advantages,
    clip_eps)` (Exercise 3.1)."""
    gen = _generator(301)
    cases = []
    for shape, eps in zip(_shapes(), (0.2, 0.1, 0.3, 0.25), strict=True):
        new, old = _log_prob_pair(shape, gen, spread=0.4)
        cases.append((new, old, torch.randn(shape, generator=gen) * 2, eps))
    new, old = _log_prob_pair((6, 4), gen, spread=0.4)
    cases.append(
        (
            new.double(),
            old.double(),
            torch.randn(6, 4, generator=gen, dtype=torch.float64),
            0.15,
        )
    )
    cases += [
        (c["new_log_probs"], c["old_log_probs"], c["advantages"], c["clip_eps"])
        for c in extra_cases
    ]
    for new, old, adv, eps in cases:
        where = f"computing L^CLIP for inputs of shape {list(new.shape)}, ε = {eps}"
        new = new.clone().requires_grad_(True)
        result, (new_copy, _, _, _) = _call(fn, (new, old, adv, eps), where)
        got = _tensor(result, "the objective", torch.Size([]), where)
        expected = clipped_surrogate_objective(
            new.detach().double(), old.double(), adv.double(), eps
        )
        (grad,) = _grad_of(got, [new_copy])
        if grad is None:
            raise AssertionError(
                "the objective has no gradient with respect to new_log_probs: the ratio"
                " was detached or computed outside torch (.item(), .numpy(), "
                "torch.tensor(...)). PPO follows this gradient."
            )
        ref_new = new.detach().double().requires_grad_(True)
        ref = clipped_surrogate_objective(ref_new, old.double(), adv.double(), eps)
        (expected_grad,) = torch.autograd.grad(ref, ref_new)
        if _close(got, expected) and _close(grad, expected_grad):
            continue
        message = None
        if not _close(got, expected):
            message = _diagnose(got, _clipped_mistakes(new.detach(), old, adv, eps))
        message = message or _probe_clipped(fn, eps)
        if message is None:
            message = (
                "the value or gradient is wrong on a batch although each region is "
                "right on its own: average over ALL elements (mean, not sum or a "
                "per-column mean)."
            )
        raise AssertionError(
            f"{message}\n  (batch of shape {list(new.shape)}, ε = {eps}: expected "
            f"{_fmt(expected)}, got {_fmt(got)})"
        )
    for eps in (0.2, 0.1):
        message = _probe_clipped(fn, eps)
        if message:
            raise AssertionError(message)
    return len(cases) + 2 * len(_regions(0.2))


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
            return _call(fn, self.args(args), where)
        except AssertionError as float_error:
            if self.as_bool or "raised" not in str(float_error):
                raise
            self.as_bool = True
            try:
                return _call(fn, self.args(args), where)
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
    got_adv = _tensor(result[0], "advantages", rewards.shape, where)
    got_ret = _tensor(result[1], "returns", rewards.shape, where)
    double = tuple(a.double() if isinstance(a, torch.Tensor) else a for a in args)
    exp_adv, exp_ret = compute_gae(*double)
    case = (
        f"\n  Case ({label}, γ = {args[5]}, λ = {args[6]}):\n"
        f"    rewards    = {_fmt(args[0])}\n    values     = {_fmt(args[1])}\n"
        f"    next_values= {_fmt(args[2])}\n    terminated = {_fmt(args[3])}\n"
        f"    truncated  = {_fmt(args[4])}\n"
    )
    if not _close(got_adv, exp_adv):
        message = _diagnose(got_adv, _gae_mistakes(double))
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
            message + case + f"  expected advantages {_fmt(exp_adv)}\n"
            f"  your advantages     {_fmt(got_adv)}"
        )
    if not _close(got_ret, exp_ret):
        message = _diagnose(
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
            + f"  expected returns {_fmt(exp_ret)}\n  your returns     {_fmt(got_ret)}"
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


@_exercise("compute_gae")
def check_compute_gae(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `compute_gae(rewards, values, next_values, terminated, truncated, gamma,
    lam)` (Exercise 4.1)."""
    gen = _generator(401)
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


# ---------------------------------------------------------------------------
# Lesson 05: log-probabilities and entropy of the policy distributions


def _reference(module: str, name: str) -> Callable:
    """The package's reference (imported late: lesson 05-06 modules import torch.nn)."""
    import importlib

    return getattr(importlib.import_module(module), name)


def _compare_with_grads(
    fn: Callable,
    args: tuple,
    grad_names: dict[int, str],
    reference: Callable,
    mistakes: Callable[[tuple], list],
    what: str,
    shape: torch.Size,
    where: str,
    rule: str,
) -> None:
    """Compare value and gradients (w.r.t. args at the indices in grad_names)."""
    args = tuple(
        a.clone().requires_grad_(True) if i in grad_names else a
        for i, a in enumerate(args)
    )
    result, copies = _call(fn, args, where)
    got = _tensor(result, what, shape, where)
    double = tuple(
        a.detach().double().requires_grad_(i in grad_names)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else a
        for i, a in enumerate(args)
    )
    expected = reference(*double)
    if not (torch.isfinite(got).all() or not torch.isfinite(expected).all()):
        raise AssertionError(
            f"{what} holds inf or NaN while {where}; expected {_fmt(expected)}, got "
            f"{_fmt(got)}. {rule}"
        )
    if not _close(got, expected):
        plain = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in double)
        message = _diagnose(got, mistakes(plain))
        raise AssertionError(
            (message or f"wrong {what}. {rule}")
            + f"\n  while {where}:\n  expected {_fmt(expected)}\n  got      {_fmt(got)}"
        )
    inputs = [copies[i] for i in grad_names]
    grads = _grad_of(got, inputs)
    expected_grads = torch.autograd.grad(
        expected.sum(), [double[i] for i in grad_names], allow_unused=True
    )
    for (i, name), grad, exp in zip(
        grad_names.items(), grads, expected_grads, strict=True
    ):
        exp = torch.zeros_like(double[i]) if exp is None else exp
        if grad is None:
            if not bool((exp == 0).all()):
                raise AssertionError(
                    f"{what} has no gradient with respect to {name} (detached, or computed "
                    "with NumPy/.item()); the update needs it. " + where
                )
            continue
        if not _close(grad, exp):
            raise AssertionError(
                f"the value of {what} is right but its gradient w.r.t. {name} is not "
                f"({_fmt(grad)} instead of {_fmt(exp)}) while {where}: did you detach "
                "part of the computation?"
            )


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


@_exercise("gaussian_log_prob")
def check_gaussian_log_prob(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `gaussian_log_prob(actions, mean, log_std)` (Exercise 5.1)."""
    reference = _reference("ppo_lessons.networks", "gaussian_log_prob")
    gen = _generator(501)
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
        _compare_with_grads(
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


@_exercise("categorical_entropy")
def check_categorical_entropy(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `categorical_entropy(logits)` (Exercise 5.2)."""
    reference = _reference("ppo_lessons.networks", "categorical_entropy")
    gen = _generator(502)
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
        _compare_with_grads(
            fn, (logits,), {0: "logits"}, reference, _entropy_mistakes,
            "the entropy", logits.shape[:-1], where, rule,
        )  # fmt: skip
    return len(cases)


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


@_exercise("value_loss")
def check_value_loss(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `value_loss(values, old_values, returns, clip_eps)` (Exercise 6.1)."""
    reference = _reference("ppo_lessons.losses", "value_loss")
    gen = _generator(601)
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
        _compare_with_grads(
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


@_exercise("approx_kl")
def check_approx_kl(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `approx_kl(new_log_probs, old_log_probs, estimator)` (Exercise 6.2)."""
    reference = _reference("ppo_lessons.update", "approx_kl")
    gen = _generator(602)
    cases = []
    for shape in [(16,), (5, 3), (1,)]:
        new, old = _log_prob_pair(shape, gen, spread=0.4)
        cases += [(new, old, "k1"), (new, old, "k3")]
    cases += [
        (c["new_log_probs"], c["old_log_probs"], c["estimator"]) for c in extra_cases
    ]
    for new, old, estimator in cases:
        where = f"estimating KL with {estimator!r} for shape {list(new.shape)}"
        rule = "k1 = mean(old − new); k3 = mean((r − 1) − log r), r = exp(new − old)."
        _compare_with_grads(
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


@_exercise("explained_variance")
def check_explained_variance(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `explained_variance(values, returns)` (Exercise 6.3)."""
    reference = _reference("ppo_lessons.update", "explained_variance")
    gen = _generator(603)
    cases = []
    for shape, noise in [((50,), 0.3), ((10, 4), 1.0), ((40,), 3.0)]:
        returns = torch.randn(shape, generator=gen) * 2 + 1
        cases.append((returns + torch.randn(shape, generator=gen) * noise, returns))
    cases.append((torch.randn(8, generator=gen), torch.full((8,), 2.0)))  # Var[R] = 0
    cases += [(c["values"], c["returns"]) for c in extra_cases]
    for values, returns in cases:
        where = f"computing explained variance for shape {list(values.shape)}"
        result, _ = _call(fn, (values, returns), where)
        got = _tensor(result, "the explained variance", torch.Size([]), where)
        expected = reference(values.double(), returns.double())
        if torch.isnan(expected):
            if not torch.isnan(got):
                raise AssertionError(
                    "when the returns are constant (Var[returns] = 0) the explained "
                    f"variance is undefined: return nan, not {_fmt(got)}."
                )
            continue
        if not _close(got, expected):
            message = _diagnose(got, _ev_mistakes((values.double(), returns.double())))
            raise AssertionError(
                (
                    message
                    or "wrong value: 1 − Var[returns − values] / Var[returns], "
                    "over all elements."
                )
                + f"\n  while {where}: expected {_fmt(expected)}, got {_fmt(got)}"
            )
    return len(cases)


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


def _cartpole_cases(
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
        result, _ = _call(fn, (state, actions), where)
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
    message = _diagnose(
        got, ((text, variant(*args)[0]) for text, variant in _CARTPOLE_STATE_MISTAKES)
    )
    if message is not None:
        return message
    if _close(got[:, [0, 2, 1, 3]], expected):
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
    expected_state, _, expected_terminated = _reference(
        "ppo_lessons.torch_envs", "cartpole_step"
    )(*args)
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
    if not _close(next_state, expected_state):
        close = torch.isclose(next_state.double(), expected_state, RTOL, ATOL)
        row = int((~close.all(dim=1)).nonzero()[0])  # the first env that is wrong
        raise AssertionError(
            _state_message(next_state, expected_state, args)
            + f"{case}\n  env {row}: state {_fmt(state[row])}, action "
            f"{int(actions[row])}\n  expected next_state {_fmt(expected_state[row])}\n"
            f"  got                 {_fmt(next_state[row])}"
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
            + f"{case}\n  got {_fmt(rewards.double())}"
        )


@_exercise("cartpole_step")
def check_cartpole_step(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `cartpole_step(state, actions)` (Exercise 9.1)."""
    cases = _cartpole_cases(_generator(901))
    cases += [("an extra case", c["state"], c["actions"]) for c in extra_cases]
    for label, state, actions in cases:
        _compare_cartpole(fn, label, state, actions)
    return len(cases)
