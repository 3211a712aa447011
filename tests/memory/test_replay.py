"""Exercise 11.1, `replay_sequence`: the reference against its contract, and the check
against correct versions written other ways and the classic bugs of recurrent PPO."""

from __future__ import annotations

import pytest
import torch
from support import independent_functions as own
from torch import nn

from ppo_lessons.checks import check_replay_sequence
from ppo_lessons.memory import replay_sequence, reset_where


def case(T: int = 6, N: int = 3, D: int = 2, H: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    core = nn.GRUCell(D, H)
    inputs = torch.randn(T, N, D, generator=gen, requires_grad=True)
    starts = torch.zeros(T, N, dtype=torch.bool)
    starts[0, 0] = starts[3, 1] = True
    h0 = torch.randn(N, H, generator=gen, requires_grad=True)
    return core, inputs, starts, h0


def test_the_reference_follows_the_loop_of_its_contract():
    # catches: a reference that resets after the step, or returns the wrong final state
    core, inputs, starts, h0 = case()
    outputs, final = replay_sequence(core, inputs, starts, h0)
    h = h0
    for t in range(inputs.shape[0]):
        h = torch.where(starts[t].unsqueeze(-1), torch.zeros_like(h), h)
        h = core(inputs[t], h)
        torch.testing.assert_close(outputs[t], h)
    torch.testing.assert_close(final, outputs[-1])


def test_no_gradient_crosses_a_reset_and_every_other_path_has_one():
    # catches: a reset that keeps a path to the state before it (e.g. h - h.detach())
    core, inputs, starts, h0 = case()
    outputs, _ = replay_sequence(core, inputs, starts, h0)
    grad_h0 = torch.autograd.grad(outputs[-1].sum(), h0, retain_graph=True)[0]
    assert bool((grad_h0[0] == 0).all())  # env 0 started at t = 0: h0 forgotten
    assert bool((grad_h0[1] == 0).all())  # env 1 started at t = 3
    assert bool((grad_h0[2] != 0).any())  # env 2 never started: h0 matters
    grad_x = torch.autograd.grad(outputs[-1, 1].sum(), inputs)[0]
    assert bool((grad_x[:3, 1] == 0).all()) and bool((grad_x[3:, 1] != 0).any())


def test_the_check_accepts_correct_versions_written_other_ways(capsys):
    # catches: a check that only accepts the reference's way of writing it
    def per_env(core, inputs, starts, h0):
        columns = []
        for n in range(inputs.shape[1]):
            h, column = h0[n : n + 1], []
            for t in range(inputs.shape[0]):
                if bool(starts[t, n]):
                    h = torch.zeros_like(h)
                h = core(inputs[t, n : n + 1], h)
                column.append(h[0])
            columns.append(torch.stack(column))
        outputs = torch.stack(columns, dim=1)
        return outputs, outputs[-1]

    def clone_then_reset(core, inputs, starts, h0):
        h, outs = h0, []
        for t in range(inputs.shape[0]):
            h = h.clone()
            h[starts[t]] = 0.0
            h = core(inputs[t], h)
            outs.append(h)
        return torch.stack(outs), h

    for fn in (replay_sequence, own.replay_sequence, per_env, clone_then_reset):
        assert check_replay_sequence(fn)


def _loop(reset, *, before=False, detach=False, zeros_first=False, final_first=False):
    def replay(core, inputs, starts, h0):
        h = torch.zeros_like(h0) if zeros_first else h0
        outs = []
        for t in range(inputs.shape[0]):
            h = reset(h, t, starts, h0)
            kept = h
            h = core(inputs[t], h.detach() if detach else h)
            outs.append(kept if before else h)
        outputs = torch.stack(outs)
        return outputs, outputs[0] if final_first else outputs[-1]

    return replay


RIGHT = lambda h, t, s, h0: reset_where(h, s[t])  # noqa: E731


def _swapped(core, inputs, starts, h0):
    outputs, final = replay_sequence(core, inputs, starts, h0)
    return outputs.transpose(0, 1), final


def _in_place(core, inputs, starts, h0):
    h, outs = reset_where(h0, starts[0]), []
    for t in range(inputs.shape[0]):
        if t > 0:
            h[starts[t]] = 0.0  # writes into outputs[t - 1]
        h = core(inputs[t], h)
        outs.append(h)
    return torch.stack(outs), h


BUGS = {  # the classic bugs of issue trackers, and the words the check must say
    "reset one step late": (
        _loop(lambda h, t, s, h0: reset_where(h, s[t - 1]) if t else h),
        "one step LATE",
    ),
    "never reset": (_loop(lambda h, t, s, h0: h), "never reset"),
    "a start at t = 0 ignored": (
        _loop(lambda h, t, s, h0: h if t == 0 else reset_where(h, s[t])),
        "a start at t = 0 is ignored",
    ),
    "reset to the initial state": (
        _loop(lambda h, t, s, h0: torch.where(s[t].unsqueeze(-1), h0, h)),
        "reset to ZEROS",
    ),
    "initial state ignored": (
        _loop(RIGHT, zeros_first=True),
        "initial_hidden is ignored",
    ),
    "gradients cut between steps": (_loop(RIGHT, detach=True), "gradient w.r.t."),
    "outputs one step off": (_loop(RIGHT, before=True), "BEFORE processing"),
    "axes swapped": (_swapped, "the time axis comes first"),
    "one env's start resets all": (
        _loop(lambda h, t, s, h0: torch.zeros_like(h) if s[t].any() else h),
        "resets the hidden state of EVERY env",
    ),
    "final state is not the last": (
        _loop(RIGHT, final_first=True),
        "after the LAST step",
    ),
    "reset in place into a stored output": (_in_place, "written in place"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_the_check_names_each_classic_bug(bug):
    # catches: a check that lets the bug through, or rejects it without saying why
    fn, words = BUGS[bug]
    with pytest.raises(AssertionError, match=words.replace("(", r"\(")) as info:
        check_replay_sequence(fn)
    assert "while replaying T=" in str(info.value) or "T=" in str(info.value)
