"""Lesson 04's chain MDP: exact values by hand, Monte-Carlo agreement, rollout flags."""

from __future__ import annotations

import pytest
import torch

from ppo_lessons.chain import (
    Chain,
    exact_action_values,
    exact_values,
    expected_n_step_returns,
    sample_rollout,
)
from ppo_lessons.gae import compute_gae


def test_deterministic_chain_values_by_hand():
    # always right, two states, γ = 0.5: V(1) = 1 (goal next), V(0) = 0.5 · V(1)
    chain = Chain(num_states=2, p_right=1.0, reward_noise=0.0)
    torch.testing.assert_close(
        exact_values(chain, 0.5), torch.tensor([0.5, 1.0], dtype=torch.float64)
    )
    q = exact_action_values(chain, 0.5)
    # left from 0 hits the wall and stays: 0 + 0.5 · V(0); left from 1: 0 + 0.5 · V(0)
    torch.testing.assert_close(
        q, torch.tensor([[0.25, 0.5], [0.25, 1.0]], dtype=torch.float64)
    )


def test_step_reward_enters_the_values():
    # one state, always right: a single step straight into the goal
    chain = Chain(num_states=1, p_right=1.0, goal_reward=2.0, step_reward=-1.0)
    assert exact_values(chain, 0.9).item() == pytest.approx(2.0)
    # left: −1 then back in state 0, worth 2
    assert exact_action_values(chain, 0.9)[0, 0].item() == pytest.approx(-1.0 + 0.9 * 2)


def test_bellman_consistency():
    chain = Chain(num_states=6, p_right=0.6, step_reward=-0.05)
    values, q = exact_values(chain, 0.97), exact_action_values(chain, 0.97)
    torch.testing.assert_close(q @ chain.policy, values)


def test_monte_carlo_returns_match_the_exact_value():
    chain = Chain(num_states=5, p_right=0.7, reward_noise=0.1)
    gamma = 0.95
    rollout = sample_rollout(chain, 4000, 200, torch.Generator().manual_seed(0), 2)
    zeros = torch.zeros(chain.num_states, dtype=torch.float64)
    _, returns = compute_gae(*rollout.gae_inputs(zeros), gamma, 1.0)  # G_t
    # standard error of the mean is about 0.003 here
    assert returns[0].mean().item() == pytest.approx(
        exact_values(chain, gamma)[2].item(), abs=0.015
    )


def test_rollout_flags_and_resets():
    chain = Chain(num_states=4, p_right=0.5)
    rollout = sample_rollout(
        chain, 16, 50, torch.Generator().manual_seed(1), start_state=1, time_limit=5
    )
    terminated, truncated = rollout.terminated.bool(), rollout.truncated.bool()
    assert not (terminated & truncated).any()
    assert torch.equal(terminated, rollout.next_states == chain.num_states)
    assert truncated.any() and terminated.any()
    ended = terminated | truncated
    # every episode starts again in state 1 on the step after it ended
    assert (rollout.states[1:][ended[:-1]] == 1).all()
    # no episode runs longer than the time limit: at most 5 steps between ends
    for column in ended.T:
        ends = torch.nonzero(column).flatten()
        gaps = torch.diff(torch.cat([torch.tensor([-1]), ends]))
        assert gaps.max() <= 5
    # truncations happen exactly at the limit
    assert (truncated[:4] == 0).all() and truncated[4].any()


def test_bad_chain_is_rejected():
    with pytest.raises(ValueError, match="num_states"):
        Chain(num_states=0)
    with pytest.raises(ValueError, match="p_right"):
        Chain(p_right=1.5)


def test_expected_n_step_returns_limits_and_monte_carlo():
    """n = ∞ is Q^π; with the exact V^π every n gives Q^π; a sampled mean agrees."""
    chain = Chain(num_states=5, p_right=0.7, reward_noise=0.1)
    gamma = 0.95
    values, q = exact_values(chain, gamma), exact_action_values(chain, gamma)
    torch.testing.assert_close(
        expected_n_step_returns(chain, values / 2, gamma, None), q
    )
    for n in (1, 3, 50):
        torch.testing.assert_close(expected_n_step_returns(chain, values, gamma, n), q)
    # n = 1 by hand: r(s, a) + γ V̂(s′), with V̂(goal) = 0
    critic = torch.arange(5, dtype=torch.float64)
    one = expected_n_step_returns(chain, critic, gamma, 1)
    assert one[2, 1].item() == pytest.approx(gamma * 3.0)
    assert one[0, 0].item() == pytest.approx(gamma * 0.0)  # the wall: stays at 0
    assert one[4, 1].item() == pytest.approx(1.0)  # the goal: no bootstrap
    # a 2-step return from state 2, first action right, sampled
    rollout = sample_rollout(chain, 20000, 2, torch.Generator().manual_seed(0), 2)
    r, v, nv, term, _ = rollout.gae_inputs(critic)
    alive = 1 - term[0]
    sampled = r[0] + gamma * alive * (r[1] + gamma * (1 - term[1]) * nv[1])
    right = rollout.actions[0] == 1
    expected = expected_n_step_returns(chain, critic, gamma, 2)[2, 1].item()
    # standard error of the mean is about 0.01 here
    assert sampled[right].mean().item() == pytest.approx(expected, abs=0.04)
    with pytest.raises(ValueError, match="n must be"):
        expected_n_step_returns(chain, critic, gamma, 0)
