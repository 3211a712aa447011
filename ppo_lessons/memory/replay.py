"""Memory (lesson 11, `11_memory.ipynb`): replaying a recurrent policy over a stored sequence
(exercise 11.1).

A recurrent policy carries a hidden state h from step to step. The rollout computes
h_t step by step as it acts; the update must compute the SAME h_t again, with
gradients, from what the rollout stored: the features x_t of every step, where each
episode started, and the hidden state the sequence started from. Any difference and
the update optimizes a policy other than the one that acted: the ratio π_θ / π_old is
not 1 before the first gradient step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["reset_where", "replay_sequence"]

Core = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def reset_where(hidden: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """`hidden` [N, H] with the rows of the envs whose episode starts now ([N] bool)
    set to zeros. A product, not an in-place write: the gradient of a reset row is
    zero, and every other row keeps its graph."""
    return hidden * (~starts).unsqueeze(-1).to(hidden.dtype)


def replay_sequence(
    core: Core,
    inputs: torch.Tensor,
    starts: torch.Tensor,
    initial_hidden: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states of a recurrent core over T steps of N envs (Exercise 11.1).

        h = initial_hidden
        for t in 0 .. T-1:
            h = 0 where starts[t]          (a new episode: no memory of the last one)
            h = core(inputs[t], h)
            outputs[t] = h

    Args:
        core: a recurrent cell, `core(x_t, h) -> h_next` with x_t [N, D] and h [N, H]
            (`torch.nn.GRUCell`'s interface).
        inputs: [T, N, D] the features of each step's observation.
        starts: [T, N] bool, True where step t is the first step of a new episode:
            there the hidden state is reset to zeros BEFORE x_t is processed.
        initial_hidden: [N, H] the hidden state the sequence started from (kept by
            the rollout).

    Returns:
        (outputs, final_hidden): [T, N, H] the hidden state after each step, and
        [N, H] = outputs[-1]. Gradients flow through time within the sequence (into
        the core's parameters, the inputs and initial_hidden), not across a reset.
    """
    hidden, outputs = initial_hidden, []
    for x, start in zip(inputs, starts, strict=True):
        hidden = core(x, reset_where(hidden, start))
        outputs.append(hidden)
    stacked = torch.stack(outputs)
    return stacked, stacked[-1]
