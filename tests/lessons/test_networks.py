"""Lesson 05: log-probabilities, entropies and the actor-critic networks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, Normal

from ppo_lessons.networks import (
    ActorCritic,
    actor_critic_networks,
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
    tanh_log_det_jacobian,
)

# ---------------------------------------------------------------- gaussian_log_prob


def test_gaussian_log_prob_by_hand():
    # one dimension, a = μ + σ: −½ − log σ − ½ log 2π
    actions, mean, log_std = (
        torch.tensor([[3.0]]),
        torch.tensor([[1.0]]),
        torch.tensor([math.log(2.0)]),
    )
    expected = -0.5 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    assert gaussian_log_prob(actions, mean, log_std).item() == pytest.approx(expected)


@pytest.mark.parametrize("per_sample_std", [False, True])
@pytest.mark.parametrize("batch", [(5,), (4, 3), ()])
def test_gaussian_log_prob_matches_torch_distributions(batch, per_sample_std):
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(*batch, 3, generator=gen, dtype=torch.float64)
    std_shape = (*batch, 3) if per_sample_std else (3,)
    log_std = torch.randn(std_shape, generator=gen, dtype=torch.float64) * 0.5
    actions = mean + torch.randn(*batch, 3, generator=gen, dtype=torch.float64)
    got = gaussian_log_prob(actions, mean, log_std)
    expected = Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    assert got.shape == expected.shape == batch
    torch.testing.assert_close(got, expected)


def test_gaussian_log_prob_gradients_match_torch_distributions():
    mean = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    log_std = torch.randn(2, dtype=torch.float64, requires_grad=True)
    actions = torch.randn(6, 2, dtype=torch.float64)
    grads = torch.autograd.grad(
        gaussian_log_prob(actions, mean, log_std).sum(), [mean, log_std]
    )
    expected = Normal(mean, log_std.exp()).log_prob(actions).sum()
    for got, want in zip(
        grads, torch.autograd.grad(expected, [mean, log_std]), strict=True
    ):
        torch.testing.assert_close(got, want)


def test_gaussian_log_prob_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="log_std"):
        gaussian_log_prob(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="actions"):
        gaussian_log_prob(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(2))
    with pytest.raises(TypeError, match="actions"):
        gaussian_log_prob([0.0, 1.0], torch.zeros(2), torch.zeros(2))


def test_gaussian_entropy_matches_torch_distributions():
    log_std = torch.tensor([-0.3, 0.2, 1.1], dtype=torch.float64)
    expected = (
        Normal(torch.zeros(3, dtype=torch.float64), log_std.exp()).entropy().sum()
    )
    torch.testing.assert_close(gaussian_entropy(log_std), expected)


# ---------------------------------------------------------------- categorical


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=2, max_size=6), st.floats(-50, 50))
def test_categorical_entropy_matches_torch_and_ignores_shifts(logits, shift):
    logits = torch.tensor(logits, dtype=torch.float64)
    expected = Categorical(logits=logits).entropy()
    torch.testing.assert_close(categorical_entropy(logits), expected)
    torch.testing.assert_close(categorical_entropy(logits + shift), expected)


def test_categorical_entropy_by_hand_and_shape():
    assert categorical_entropy(torch.zeros(4)).item() == pytest.approx(math.log(4))
    assert categorical_entropy(torch.zeros(3, 5, 2)).shape == (3, 5)


def test_categorical_entropy_finite_and_correct_at_huge_logits():
    logits = torch.tensor([[1e4, 0.0, -1e4], [3.0, 3.0, -1e4]], requires_grad=True)
    entropy = categorical_entropy(logits)
    assert torch.isfinite(entropy).all()
    torch.testing.assert_close(entropy.detach(), torch.tensor([0.0, math.log(2)]))
    (grad,) = torch.autograd.grad(entropy.sum(), logits)
    assert torch.isfinite(grad).all()


def test_categorical_log_prob_matches_torch():
    logits = torch.randn(7, 3)
    actions = torch.randint(0, 3, (7,))
    expected = Categorical(logits=logits).log_prob(actions)
    torch.testing.assert_close(categorical_log_prob(logits, actions), expected)


# ---------------------------------------------------------------- ActorCritic


def make(discrete=True, shared=False, **kw):
    return ActorCritic(obs_dim=4, action_dim=3, discrete=discrete, shared=shared, **kw)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("discrete", [True, False])
def test_actor_critic_shapes(discrete, shared):
    agent = make(discrete, shared)
    obs = torch.randn(5, 4)
    policy_out, values = agent.policy_and_value(obs)
    assert policy_out.shape == (5, 3) and values.shape == (5,)
    actions, log_probs = agent.sample(policy_out, torch.Generator().manual_seed(0))
    assert actions.shape == ((5,) if discrete else (5, 3))
    new_log_probs, entropy = agent.log_prob_entropy(policy_out, actions)
    torch.testing.assert_close(new_log_probs, log_probs)
    assert entropy.shape == (5,)
    torch.testing.assert_close(agent.value(obs), values)


def test_shared_network_shares_the_trunk():
    separate, shared = make(shared=False), make(shared=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # separate: two 4-64-64 MLPs; shared: one trunk plus two heads
    assert count(separate) == 2 * (4 * 64 + 64 + 64 * 64 + 64) + (64 * 3 + 3) + (64 + 1)
    assert count(shared) == (4 * 64 + 64 + 64 * 64 + 64) + (64 * 3 + 3) + (64 + 1)


def test_orthogonal_init_gains_and_zero_biases():
    torch.manual_seed(0)
    agent = make(ortho_init=True)
    hidden = agent.actor[2].weight  # 64x64, gain √2
    torch.testing.assert_close(
        hidden @ hidden.T, 2.0 * torch.eye(64), atol=1e-4, rtol=0
    )
    policy_out = agent.actor[-1].weight  # 3x64, gain 0.01: nearly uniform first policy
    torch.testing.assert_close(
        policy_out @ policy_out.T, 1e-4 * torch.eye(3), atol=1e-8, rtol=0
    )
    assert all(
        (m.bias == 0).all() for m in agent.modules() if isinstance(m, torch.nn.Linear)
    )
    default = make(ortho_init=False)
    assert not (default.actor[0].bias == 0).all()  # PyTorch's default init kept


def test_deterministic_actions_are_the_mode():
    agent = make(discrete=True)
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    actions, _ = agent.sample(logits, deterministic=True)
    assert actions.tolist() == [1, 0]
    gauss = make(discrete=False)
    means = torch.randn(2, 3)
    torch.testing.assert_close(gauss.sample(means, deterministic=True)[0], means)


def test_sampled_box_actions_are_not_clipped_and_logprob_is_theirs():
    agent = make(discrete=False, init_log_std=1.0)  # σ = e: samples often beyond ±1
    means = torch.zeros(1000, 3)
    actions, log_probs = agent.sample(means, torch.Generator().manual_seed(1))
    assert actions.abs().max() > 2.0
    expected = Normal(means, math.e).log_prob(actions).sum(-1)
    torch.testing.assert_close(log_probs, expected)


def test_sampling_follows_the_generator():
    agent = make(discrete=True)
    logits = torch.randn(50, 3)
    a1, _ = agent.sample(logits, torch.Generator().manual_seed(3))
    a2, _ = agent.sample(logits, torch.Generator().manual_seed(3))
    a3, _ = agent.sample(logits, torch.Generator().manual_seed(4))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)


def test_categorical_sampling_frequencies():
    agent = make(discrete=True)
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(20000, 3)
    actions, _ = agent.sample(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(actions, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.015, rtol=0)


def test_obs_normalization_is_frozen_outside_update():
    agent = make(norm_obs=True)
    agent.obs_rms.update(torch.randn(100, 4) * 3 + 5)
    mean = agent.obs_rms.mean.clone()
    agent.act(torch.randn(8, 4) * 100)
    torch.testing.assert_close(agent.obs_rms.mean, mean)
    normalized = agent.normalize(torch.full((1, 4), 5.0))
    assert normalized.abs().max() < 0.5  # close to the running mean -> near 0


# ---------------------------------------------------------------- tanh squashing


def test_tanh_log_det_jacobian_matches_torch_distributions_and_stays_finite():
    from torch.distributions.transforms import TanhTransform

    u = torch.linspace(-8.0, 8.0, 101, dtype=torch.float64).reshape(-1, 1)
    expected = TanhTransform().log_abs_det_jacobian(u, torch.tanh(u)).sum(-1)
    torch.testing.assert_close(tanh_log_det_jacobian(u), expected)
    far = tanh_log_det_jacobian(torch.tensor([[-50.0, 50.0]]))
    assert torch.isfinite(far).all() and far.item() < -190  # log(1 - tanh²) ≈ -2|u|


def test_squashed_policy_log_prob_is_the_density_of_the_env_action():
    """Oracle: torch.distributions' Normal -> tanh -> affine into [low, high]."""
    from torch.distributions import Normal, TransformedDistribution
    from torch.distributions.transforms import AffineTransform, TanhTransform

    torch.manual_seed(0)
    low, high = [-2.0, 0.0], [2.0, 1.0]
    agent = ActorCritic(3, 2, discrete=False, init_log_std=-0.3, squash_to=(low, high))
    obs = torch.randn(64, 3)
    policy_out, _ = agent.policy_and_value(obs)
    u, log_prob = agent.sample(policy_out)
    env_action = agent.to_env(u)
    scale, bias = torch.tensor([2.0, 0.5]), torch.tensor([0.0, 0.5])
    oracle = TransformedDistribution(
        Normal(policy_out, agent.log_std.exp()),
        [TanhTransform(), AffineTransform(bias, scale)],
    )
    expected = oracle.log_prob(env_action).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=1e-4, rtol=1e-4)
    assert (env_action >= torch.tensor(low)).all()
    assert (env_action <= torch.tensor(high)).all()
    new_log_prob, _ = agent.log_prob_entropy(policy_out, u)
    torch.testing.assert_close(new_log_prob, log_prob)  # same density in the update


def test_squashing_needs_finite_box_bounds():
    with pytest.raises(ValueError, match="finite action bounds"):
        ActorCritic(3, 1, discrete=False, squash_to=([-float("inf")], [1.0]))
    with pytest.raises(ValueError, match="only for Box actions"):
        ActorCritic(3, 2, discrete=True, squash_to=([0.0], [1.0]))


def test_log_prob_is_the_first_half_of_log_prob_entropy():
    for discrete in (True, False):
        torch.manual_seed(0)
        agent = ActorCritic(3, 2, discrete)
        policy_out = agent.policy(torch.randn(5, 3))
        actions, _ = agent.sample(policy_out)
        log_prob, _ = agent.log_prob_entropy(policy_out, actions)
        assert torch.equal(agent.log_prob(policy_out, actions), log_prob)


@pytest.mark.parametrize("shared", [False, True])
def test_init_value_is_what_the_critic_predicts_before_training(shared):
    # catches init_value set on the wrong layer (or not at all): with the value
    # output's weights zeroed, V(s) is its bias alone
    agent = ActorCritic(4, 2, discrete=True, shared=shared, init_value=-99.0)
    last = agent.critic if shared else agent.critic[-1]
    with torch.no_grad():
        last.weight.zero_()
    assert agent.value(torch.randn(5, 4)).tolist() == [-99.0] * 5
    plain = ActorCritic(4, 2, discrete=True, shared=shared)
    assert float((plain.critic if shared else plain.critic[-1]).bias) == 0.0


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_actor_critic_builds_exactly_the_exercise_reference(activation):
    # catches: ActorCritic and the reference of Exercise 5.3 drifting apart (the
    # trainer's seeded runs rely on ActorCritic drawing what the reference draws)
    torch.manual_seed(11)
    agent = ActorCritic(
        5, 3, discrete=True, hidden_sizes=(16, 8), activation=activation
    )
    torch.manual_seed(11)
    actor, critic = actor_critic_networks(5, 3, (16, 8), activation)
    for mine, reference in ((agent.actor, actor), (agent.critic, critic)):
        assert str(mine) == str(reference)
        for p, q in zip(mine.parameters(), reference.parameters(), strict=True):
            assert torch.equal(p, q)


def test_a_networks_function_is_refused_with_a_shared_trunk():
    with pytest.raises(ValueError, match="shared=True"):
        ActorCritic(4, 2, discrete=True, shared=True, networks=lambda *a: None)
