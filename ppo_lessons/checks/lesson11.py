"""Checks of lesson 11: replaying a recurrent core over stored sequences (11.1).

Every case has T != N (so swapped axes cannot pass), a non-zero initial hidden state
(so ignoring it, or resetting to it, shows), and episode starts of every kind: at t = 0
in some envs and not in others, several in one env, one at the last step, none at all
in another env. The core is a real `torch.nn.GRUCell`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ppo_lessons.checks.harness import (
    call,
    close,
    diagnose,
    exercise,
    fmt,
    generator,
)
from ppo_lessons.memory.replay import replay_sequence, reset_where

__all__ = ["check_replay_sequence"]

# (T, N, D, H): time steps, envs, input features, hidden size; never T == N
SHAPES = [(7, 3, 4, 5), (5, 4, 3, 2), (9, 2, 2, 3), (1, 3, 2, 4), (6, 1, 3, 3)]


def sequence_case(seed: int, T: int, N: int, D: int, H: int) -> tuple:
    """(core, inputs, starts, initial_hidden) with starts of every kind."""
    gen = generator(seed)
    torch.manual_seed(seed)  # the core's weights
    core = nn.GRUCell(D, H)
    inputs = torch.randn(T, N, D, generator=gen)
    starts = torch.rand(T, N, generator=gen) < 0.3
    starts[0, 0] = True  # env 0 starts an episode at t = 0 ...
    if N > 1:
        starts[0, 1] = False  # ... env 1 continues one from the last rollout
        starts[:, N - 1] = False  # the last env never starts one
        starts[0, N - 1] = N == 2  # (with two envs, env 1 then starts nowhere)
    if T > 2:
        starts[T - 1, 0] = True  # a start at the last step
        starts[T // 2, 0] = True  # and one in the middle of the same env
    initial_hidden = 0.8 * torch.randn(N, H, generator=gen)
    return core, inputs, starts, initial_hidden


def describe(starts: torch.Tensor) -> str:
    T, N = starts.shape
    envs = "; ".join(
        f"env {n}: starts at t = {starts[:, n].nonzero().flatten().tolist()}"
        for n in range(min(N, 3))
    )
    return f"replaying T={T} steps of N={N} envs ({envs})"


# ---------------------------------------------------------------------------
# the classic bugs, each written out


def _loop(core, inputs, starts, h0, reset, keep_before=False, detach=False):
    h, outs = h0, []
    for t in range(inputs.shape[0]):
        h = reset(h, t)
        before = h
        h = core(inputs[t], h.detach() if detach else h)
        outs.append(before if keep_before else h)
    return torch.stack(outs)


MISTAKES = {  # the classic bugs, in the student's terms
    "late": "the hidden state is reset one step LATE: `starts[t]` marks the FIRST step "
    "of a new episode, so reset h to zeros BEFORE processing inputs[t] (starts is not a "
    "`done` flag of step t − 1's transition applied after it)",
    "never": "the hidden state is never reset: where starts[t] is True a new episode "
    "begins, and the memory of the previous one must not leak into it; set h to zeros "
    "there before calling core(inputs[t], h)",
    "first": "a start at t = 0 is ignored: when an env's episode begins at the first "
    "step of the sequence (starts[0] True), its initial_hidden belongs to the previous "
    "episode and must be reset to zeros too (check starts[t] for every t, t = 0 "
    "included)",
    "to_initial": "at an episode start the hidden state is reset to initial_hidden; it "
    "must be reset to ZEROS (initial_hidden is the memory the sequence started with, "
    "mid-episode; a new episode starts with no memory)",
    "from_zeros": "initial_hidden is ignored (the replay starts from zeros): an env "
    "whose episode continues from the previous rollout (starts[0] False) acted with the "
    "memory it had, so the replay must start from initial_hidden",
    "before": "outputs[t] holds the hidden state BEFORE processing inputs[t]; it must be "
    "the state AFTER: h = core(inputs[t], h), then outputs[t] = h",
    "all_envs": "a start in ONE env resets the hidden state of EVERY env; reset only the "
    "rows (envs) where starts[t] is True, e.g. h * (~starts[t]).unsqueeze(-1)",
    "in_place": "the reset was written in place (h[starts[t]] = 0) into the tensor "
    "already stored as outputs[t − 1], so that output changed too; build a new tensor "
    "for the reset, e.g. h = h * (~starts[t]).unsqueeze(-1) or torch.where",
}


def replay_mistakes(args: tuple) -> list[tuple[str, torch.Tensor]]:
    """(message, the outputs of that bug) for each of `MISTAKES`."""
    core, inputs, starts, h0 = args
    T, zeros = inputs.shape[0], torch.zeros_like(h0)

    def at(t: int) -> torch.Tensor:
        return starts[t] if 0 <= t < T else torch.zeros_like(starts[0])

    def right(h, t):
        return reset_where(h, at(t))

    def loop(reset, first=h0, **kwargs):
        return _loop(core, inputs, starts, first, reset, **kwargs).detach()

    in_place = loop(right).clone()
    for t in range(1, T):  # h[starts[t]] = 0 also zeroed the stored outputs[t - 1]
        in_place[t - 1][starts[t]] = 0.0
    wrong = {
        "late": loop(lambda h, t: reset_where(h, at(t - 1))),
        "never": loop(lambda h, t: h),
        "first": loop(lambda h, t: h if t == 0 else right(h, t)),
        "to_initial": loop(lambda h, t: torch.where(at(t).unsqueeze(-1), h0, h)),
        "from_zeros": loop(right, first=zeros),
        "before": loop(right, keep_before=True),
        "all_envs": loop(lambda h, t: zeros if bool(at(t).any()) else h),
        "in_place": in_place,
    }
    return [(MISTAKES[name], outputs) for name, outputs in wrong.items()]


# ---------------------------------------------------------------------------


def _outputs(result: object, T: int, N: int, H: int, where: str) -> tuple:
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise AssertionError(
            "replay_sequence must return a pair (outputs, final_hidden), got "
            f"{type(result).__name__} while {where}."
        )
    outputs, final = result
    for what, value, shape in (
        ("outputs", outputs, [T, N, H]),
        ("final_hidden", final, [N, H]),
    ):
        if not isinstance(value, torch.Tensor):
            raise AssertionError(
                f"{what} must be a torch.Tensor, got {type(value).__name__} while "
                f"{where}."
            )
        if list(value.shape) != shape:
            hint = ""
            if what == "outputs" and list(value.shape) == [N, T, H]:
                hint = (
                    " (that is [N, T, H]: the time axis comes first, inputs[t] is "
                    "the [N, D] step t of every env)"
                )
            raise AssertionError(
                f"{what} has shape {list(value.shape)}, expected {shape}{hint} while "
                f"{where}."
            )
    return outputs, final


@exercise("replay_sequence")
def check_replay_sequence(fn: Callable, extra_cases: list[dict]) -> int:
    """Check Exercise 11.1: replay_sequence(core, inputs, starts, initial_hidden)."""
    cases = [sequence_case(1100 + i, *shape) for i, shape in enumerate(SHAPES)]
    cases += [
        (c["core"], c["inputs"], c["starts"], c["initial_hidden"]) for c in extra_cases
    ]
    rule = (
        "For t = 0 .. T−1: h = zeros where starts[t] (before the step), "
        "h = core(inputs[t], h), outputs[t] = h; start from initial_hidden."
    )
    for core, inputs, starts, h0 in cases:
        T, N, _ = inputs.shape
        H = h0.shape[-1]
        where = describe(starts)
        args = (core, inputs.clone().requires_grad_(True), starts, h0.clone())
        args[3].requires_grad_(True)
        result, copies = call(fn, args, where)
        outputs, final = _outputs(result, T, N, H, where)
        expected = replay_sequence(core, args[1], starts, args[3])[0]
        if not close(outputs, expected):
            plain = (core, inputs, starts, h0)
            message = diagnose(outputs.detach(), replay_mistakes(plain))
            step = (
                (outputs.detach() - expected.detach()).abs().amax(dim=(1, 2)) > 1e-4
            ).nonzero()
            first = int(step[0]) if len(step) else 0
            raise AssertionError(
                (message or f"wrong outputs. {rule}")
                + f"\n  while {where}:\n  the first wrong step is t = {first}:"
                + f"\n  expected outputs[{first}] = {fmt(expected[first])}"
                + f"\n  got      outputs[{first}] = {fmt(outputs[first])}"
            )
        if not close(final, expected[-1]):
            raise AssertionError(
                "final_hidden must be the hidden state after the LAST step, "
                f"outputs[-1], while {where}:\n  expected {fmt(expected[-1])}\n"
                f"  got      {fmt(final)}"
            )
        _check_gradients(core, copies, outputs, final, expected, args, where)
    return len(cases)


def _check_gradients(core, copies, outputs, final, expected, args, where) -> None:
    """Gradients through time: of outputs.sum() into the inputs and initial_hidden (a
    detached step shows in both; the sum is also what the grader's replay keeps)."""
    names = ["inputs", "initial_hidden"]
    if not outputs.requires_grad:
        raise AssertionError(
            "outputs has no gradient (detached, or computed under torch.no_grad()); "
            f"the update trains the core through it. While {where}."
        )
    try:
        got = torch.autograd.grad(
            outputs.sum(), [copies[1], copies[3]], allow_unused=True
        )
    except RuntimeError as error:
        raise AssertionError(
            f"computing the gradient of your outputs failed: {error}\n  While {where}. "
            "A reset written in place (h[starts[t]] = 0) on a tensor autograd still "
            "needs breaks the backward pass: build a new tensor instead, e.g. "
            "h * (~starts[t]).unsqueeze(-1) or torch.where."
        ) from None
    want = torch.autograd.grad(expected.sum(), [args[1], args[3]], allow_unused=True)
    for name, g, w in zip(names, got, want, strict=True):
        w = torch.zeros(1) if w is None else w
        g = torch.zeros_like(w) if g is None else g
        if not close(g, w):
            how = "cut" if float(g.abs().sum()) < float(w.abs().sum()) else "wrong"
            raise AssertionError(
                f"the outputs are right but their gradient w.r.t. {name} is {how} "
                f"({fmt(g)} instead of {fmt(w)}) while {where}. Gradients must flow "
                "through time within an episode: do not .detach() the hidden state "
                "between steps (truncated backpropagation through time happens at the "
                "sequence's ends, not inside it), and only a reset cuts them."
            )
