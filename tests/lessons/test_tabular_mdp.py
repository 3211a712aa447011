"""The exact tabular computations lesson 02 uses to verify the performance-difference
identity: checked against independent oracles (power series, Bellman iteration)."""

from __future__ import annotations

import pytest
import torch

from ppo_lessons.importance_sampling import (
    TabularMDP,
    discounted_state_distribution,
    expected_return,
    policy_values,
    random_mdp,
)


def random_policy(mdp: TabularMDP, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(
        mdp.rewards.shape, generator=generator, dtype=torch.float64
    )
    return torch.softmax(logits, -1)  # (S, A)


@pytest.fixture
def mdp() -> TabularMDP:
    return random_mdp(6, 3, 0.9, torch.Generator().manual_seed(0))


def test_state_distribution_is_the_discounted_sum_of_state_probabilities(mdp):
    # catches a missing transpose (ρ₀ᵀ(I − γP)⁻¹ vs (I − γP)⁻¹ρ₀) or a missing (1 − γ)
    policy = random_policy(mdp, 1)
    step = torch.einsum("sa,sat->st", policy, mdp.transitions)
    state, series = mdp.initial.clone(), torch.zeros_like(mdp.initial)
    for t in range(600):
        series += (1 - mdp.gamma) * mdp.gamma**t * state
        state = state @ step
    d = discounted_state_distribution(mdp, policy)
    torch.testing.assert_close(d, series, rtol=0, atol=1e-12)
    assert abs(d.sum().item() - 1) < 1e-12


def test_values_solve_the_bellman_equation_found_by_iteration(mdp):
    policy = random_policy(mdp, 2)
    values, action_values = policy_values(mdp, policy)
    iterate = torch.zeros_like(values)
    for _ in range(600):
        iterate = (policy * (mdp.rewards + mdp.gamma * mdp.transitions @ iterate)).sum(
            -1
        )
    torch.testing.assert_close(values, iterate, rtol=0, atol=1e-10)
    torch.testing.assert_close((policy * action_values).sum(-1), values)


def test_expected_return_is_the_average_reward_under_the_state_distribution(mdp):
    policy = random_policy(mdp, 3)
    d = discounted_state_distribution(mdp, policy)
    mean_rewards = (policy * mdp.rewards).sum(-1)
    expected = (d @ mean_rewards) / (1 - mdp.gamma)
    assert abs(expected_return(mdp, policy).item() - expected.item()) < 1e-10


@pytest.mark.parametrize("seed", range(5))
def test_performance_difference_identity_holds_and_the_surrogate_differs(mdp, seed):
    # Kakade & Langford (2002): J(π′) − J(π) = E_{s∼d^π′, a∼π′}[A^π(s, a)] / (1 − γ)
    old, new = random_policy(mdp, 10 + seed), random_policy(mdp, 20 + seed)
    values, action_values = policy_values(mdp, old)
    advantages = action_values - values[:, None]  # (S, A) A^π
    gain = (new * advantages).sum(-1)  # (S,) E_{a∼π′}[A^π(s, a)]
    true_gain = expected_return(mdp, new) - expected_return(mdp, old)
    identity = discounted_state_distribution(mdp, new) @ gain / (1 - mdp.gamma)
    surrogate = discounted_state_distribution(mdp, old) @ gain / (1 - mdp.gamma)
    assert abs(true_gain.item() - identity.item()) < 1e-10
    assert abs(true_gain.item() - surrogate.item()) > 1e-6  # states differ: not equal


def test_bad_tables_are_refused_with_the_argument_named():
    generator = torch.Generator().manual_seed(0)
    mdp = random_mdp(4, 2, 0.5, generator)
    with pytest.raises(ValueError, match="transitions must have shape"):
        TabularMDP(mdp.transitions[:, :, :3], mdp.rewards, mdp.initial, 0.5)
    with pytest.raises(ValueError, match="initial must have shape"):
        TabularMDP(mdp.transitions, mdp.rewards, mdp.initial[:3], 0.5)
    with pytest.raises(ValueError, match="gamma must be in"):
        TabularMDP(mdp.transitions, mdp.rewards, mdp.initial, 1.0)
