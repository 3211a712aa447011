"""The speed tricks (`ppo_lessons.speed`): the flat-parameter Adam must not change
what ordinary PyTorch training code does."""

from __future__ import annotations

import pytest
import torch

from ppo_lessons.networks import ActorCritic
from ppo_lessons.speed import FlatAdam, flatten_parameters


def regression_steps(optimizer, agent, zero_grad, steps=5):
    """A few gradient steps of the value head on a fixed regression target."""
    torch.manual_seed(1)
    obs, target = torch.randn(32, 3), torch.randn(32)
    for _ in range(steps):
        zero_grad()
        loss = ((agent.value(obs) - target) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
        optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in agent.parameters()])


def fresh_agent():
    torch.manual_seed(0)
    return ActorCritic(3, 2, discrete=True, hidden_sizes=(8, 8))


def plain_adam_result():
    agent = fresh_agent()
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2, eps=1e-5)
    return regression_steps(optimizer, agent, optimizer.zero_grad)


@pytest.mark.parametrize(
    "how",
    ["optimizer.zero_grad()", "zero_grad(set_to_none=False)", "agent.zero_grad()"],
)
def test_flat_adam_learns_like_adam_whatever_zero_grad_is_called(how):
    # catches the silent stop: zero_grad() setting the flat gradient to None (or the
    # module's gradients to None) cuts the parameters' gradients off the optimizer
    agent = fresh_agent()
    start = torch.cat([p.detach().reshape(-1) for p in agent.parameters()])
    optimizer = FlatAdam(agent, lr=1e-2, eps=1e-5)
    zero_grad = {
        "optimizer.zero_grad()": optimizer.zero_grad,
        "zero_grad(set_to_none=False)": lambda: optimizer.zero_grad(set_to_none=False),
        "agent.zero_grad()": agent.zero_grad,
    }[how]
    got = regression_steps(optimizer, agent, zero_grad)
    assert (got - start).abs().max() > 1e-3  # it learned
    torch.testing.assert_close(got, plain_adam_result(), rtol=0, atol=1e-6)


def test_without_flat_adam_the_zero_grad_pitfall_is_real():
    # the test above can fail: a plain Adam over the flat tensor stops learning
    # silently after the default zero_grad() (set_to_none=True)
    agent = fresh_agent()
    start = torch.cat([p.detach().reshape(-1) for p in agent.parameters()])
    optimizer = torch.optim.Adam([flatten_parameters(agent)], lr=1e-2, eps=1e-5)
    got = regression_steps(optimizer, agent, optimizer.zero_grad)
    assert torch.equal(got, start)
