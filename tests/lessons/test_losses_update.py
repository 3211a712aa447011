"""Lesson 06: value loss, KL estimators, explained variance, the buffer and ppo_update."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.functions import REFERENCES, LessonFunctions
from ppo_lessons.losses import value_loss
from ppo_lessons.networks import ActorCritic
from ppo_lessons.normalize import RewardScaler, RunningMeanStd
from ppo_lessons.update import (
    UpdateSeam,
    UpdateSettings,
    approx_kl,
    explained_variance,
    flatten_parameters,
    minibatch_loss,
    normalize_advantages,
    ppo_update,
    shuffled_minibatches,
)

# ---------------------------------------------------------------- value_loss


def test_value_loss_unclipped_by_hand():
    values, returns = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    assert value_loss(values, values, returns, None).item() == pytest.approx(
        0.5 * (1 + 4) / 2
    )


def test_value_loss_clipped_takes_the_pessimistic_max():
    old, returns = torch.tensor([0.0]), torch.tensor([1.0])
    # V moved 0.9 toward R; clipped to 0.2: max((0.9-1)², (0.2-1)²) = 0.64
    values = torch.tensor([0.9], requires_grad=True)
    loss = value_loss(values, old, returns, 0.2)
    assert loss.item() == pytest.approx(0.5 * 0.64)
    (grad,) = torch.autograd.grad(loss, values)
    assert grad.item() == 0.0  # beyond the clip range, toward R: no more gradient
    # V moved AWAY from R: the unclipped error is larger and keeps its gradient
    away = torch.tensor([-0.5], requires_grad=True)
    loss = value_loss(away, old, returns, 0.2)
    assert loss.item() == pytest.approx(0.5 * 1.5**2)
    assert torch.autograd.grad(loss, away)[0].item() == pytest.approx(-1.5)


def test_value_loss_works_on_time_major_shapes_and_validates():
    x = torch.randn(5, 3)
    assert value_loss(x, x, x + 1, 0.1).shape == ()
    with pytest.raises(ValueError, match="old_values"):
        value_loss(x, x[:, :2], x, None)
    with pytest.raises(ValueError, match="clip_eps"):
        value_loss(x, x, x, -0.1)


# ---------------------------------------------------------------- approx_kl


def test_approx_kl_estimators_by_hand():
    new, old = (
        torch.log(torch.tensor([0.5, 0.25])),
        torch.log(torch.tensor([0.25, 0.5])),
    )
    log_r = new - old
    assert approx_kl(new, old, "k1").item() == pytest.approx(float((-log_r).mean()))
    k3 = ((log_r.exp() - 1) - log_r).mean()
    assert approx_kl(new, old, "k3").item() == pytest.approx(float(k3))


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_approx_kl_estimates_the_true_kl(estimator):
    torch.manual_seed(0)
    old = Categorical(logits=torch.tensor([0.0, 1.0, -1.0]))
    new = Categorical(logits=torch.tensor([0.3, 0.6, -0.8]))
    actions = old.sample((200_000,))  # actions from the OLD policy
    estimate = approx_kl(new.log_prob(actions), old.log_prob(actions), estimator)
    assert estimate.item() == pytest.approx(kl_divergence(old, new).item(), rel=0.05)


def test_k3_is_never_negative_and_bad_estimator_is_named():
    new, old = torch.randn(100), torch.randn(100)
    assert approx_kl(new, old, "k3") >= 0
    with pytest.raises(ValueError, match="k2"):
        approx_kl(new, old, "k2")


# ---------------------------------------------------------------- explained_variance


def test_explained_variance_cases():
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns, returns).item() == pytest.approx(1.0)
    constant = torch.full_like(returns, returns.mean())
    assert explained_variance(constant, returns).item() == pytest.approx(0.0)
    assert explained_variance(-returns, returns).item() < 0
    assert math.isnan(explained_variance(returns, torch.ones(4)).item())
    assert explained_variance(torch.randn(3, 2), torch.randn(3, 2)).shape == ()


def test_normalize_advantages():
    adv = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, 10.0]))
    assert adv.mean().abs() < 1e-6 and adv.std().item() == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- normalization


def test_running_mean_std_matches_batch_statistics():
    rms = RunningMeanStd((2,))
    data = torch.randn(300, 2, dtype=torch.float64) * torch.tensor([2.0, 0.5]) + 3
    for chunk in data.split(37):
        rms.update(chunk)
    torch.testing.assert_close(rms.mean, data.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        rms.var, data.var(0, unbiased=False), atol=1e-4, rtol=1e-4
    )


def test_reward_scaler_divides_by_return_std_and_resets_at_episode_ends():
    scaler = RewardScaler(num_envs=2, gamma=0.5)
    done = torch.tensor([True, False])
    rewards = torch.tensor([1.0, 3.0])
    scaled = scaler.scale(rewards, done)
    assert scaler.returns.tolist() == [0.0, 3.0]  # env 0 ended: its return restarts
    assert scaler.rms.var.item() == pytest.approx(1.0, rel=1e-3)  # Var[{1, 3}]
    torch.testing.assert_close(
        scaled, rewards / math.sqrt(1.0 + 1e-8), rtol=1e-3, atol=0
    )


# ---------------------------------------------------------------- buffer


def test_buffer_flatten_keeps_time_major_order():
    buffer = RolloutBuffer(3, 2, (4,), (), discrete=True)
    buffer.obs[:] = torch.arange(24.0).reshape(3, 2, 4)
    buffer.actions[:] = torch.tensor([[0, 1], [2, 3], [4, 5]])
    adv = torch.arange(6.0).reshape(3, 2)
    batch = buffer.flatten(adv, adv + 10)
    assert batch.obs.shape == (6, 4) and batch.actions.tolist() == [0, 1, 2, 3, 4, 5]
    assert batch.obs[3].tolist() == [12.0, 13.0, 14.0, 15.0]  # t = 1, env 1
    assert batch.returns.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]


def test_buffer_stores_box_actions_as_float_vectors():
    # catches Box actions stored as int64 (Discrete's dtype) or without their A axis
    buffer = RolloutBuffer(4, 2, (3,), (2,), discrete=False)
    assert buffer.actions.shape == (4, 2, 2) and buffer.actions.dtype == torch.float32
    buffer.actions[1, 0] = torch.tensor([0.25, -1.5])
    assert buffer.flatten(torch.zeros(4, 2), torch.zeros(4, 2)).actions[2].tolist() == [
        0.25,
        -1.5,
    ]


# ---------------------------------------------------------------- ppo_update


def settings(**kw):
    base = dict(
        update_epochs=4, minibatch_size=16, clip_coef=0.2, clip_vloss=False,
        ent_coef=0.0, vf_coef=0.5, max_grad_norm=None, norm_adv=True,
        target_kl=None, kl_estimator="k3",
    )  # fmt: skip
    base.update(kw)
    return UpdateSettings(**base)


def batch_for(agent, seed=0, B=64):
    gen = torch.Generator().manual_seed(seed)
    buffer = RolloutBuffer(B // 4, 4, (3,), (), discrete=True)
    buffer.obs[:] = torch.randn(B // 4, 4, 3, generator=gen)
    with torch.no_grad():
        out, values = agent.policy_and_value(buffer.obs.reshape(B, 3))
        actions, log_probs = agent.sample(out, gen)
    buffer.actions[:] = actions.reshape(B // 4, 4)
    buffer.log_probs[:] = log_probs.reshape(B // 4, 4)
    buffer.values[:] = values.reshape(B // 4, 4)
    adv = torch.randn(B // 4, 4, generator=gen) * 3 + 1
    return buffer.flatten(adv, adv + buffer.values)


def run_update(seed=0, **kw):
    torch.manual_seed(seed)
    agent = ActorCritic(3, 2, discrete=True)
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3)
    batch = batch_for(agent)
    metrics = ppo_update(
        agent, optimizer, batch, settings(**kw), torch.Generator().manual_seed(1)
    )
    return agent, {k: float(v) for k, v in metrics.items()}, batch


def test_ppo_update_moves_policy_within_the_trust_region():
    agent, metrics, batch = run_update()
    assert metrics["epochs"] == 4
    assert 0 < metrics["approx_kl"] < 0.5 and 0 <= metrics["clip_fraction"] <= 1
    with torch.no_grad():
        out, _ = agent.policy_and_value(batch.obs)
        new_lp, _ = agent.log_prob_entropy(out, batch.actions)
    # the update raised the probability of actions with positive advantage
    assert ((new_lp - batch.log_probs) * batch.advantages).mean() > 0


def test_target_kl_stops_the_epochs_early():
    _, metrics, _ = run_update(target_kl=1e-6)
    assert metrics["epochs"] == 1
    _, metrics, _ = run_update(target_kl=10.0)
    assert metrics["epochs"] == 4


def test_switches_change_the_update():
    base = run_update()[1]
    # vf_coef is left out: with separate networks and Adam (scale-invariant) it only
    # matters together with gradient clipping, tested below
    switches = [
        dict(norm_adv=False),
        dict(clip_vloss=True),
        dict(ent_coef=0.5),
        dict(max_grad_norm=0.01),
    ]
    for switch in switches:
        changed = run_update(**switch)[1]
        assert changed != base, f"{switch} had no effect"
    clipped = run_update(max_grad_norm=0.1)[1]
    assert run_update(max_grad_norm=0.1, vf_coef=2.0)[1] != clipped


def test_max_grad_norm_clips_the_global_norm(monkeypatch):
    norms = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        total = original(params, max_norm, *args, **kwargs)
        after = torch.norm(torch.stack([p.grad.norm() for p in params]))
        norms.append((float(total), float(after), max_norm))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    run_update(max_grad_norm=0.05)
    assert norms and all(after <= cap * 1.001 for _, after, cap in norms)
    assert any(before > 0.05 for before, _, _ in norms)


def test_ppo_update_uses_the_given_objective_and_value_loss():
    calls = {"objective": 0, "value_loss": []}

    def my_objective(new, old, adv, eps):
        calls["objective"] += 1
        return (torch.exp(new - old) * adv).mean()

    def my_value_loss(values, old_values, returns, clip_eps):
        calls["value_loss"].append(clip_eps)
        return 0.5 * ((values - returns) ** 2).mean()

    torch.manual_seed(0)
    agent = ActorCritic(3, 2, discrete=True)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3)
    mine = LessonFunctions(
        clipped_surrogate_objective=my_objective, value_loss=my_value_loss
    )
    ppo_update(agent, optimizer, batch_for(agent), settings(clip_vloss=True),
               torch.Generator(), functions=mine)  # fmt: skip
    assert calls["objective"] == 16  # 4 epochs x 4 minibatches
    assert calls["value_loss"] == [0.2] * 16  # clip_vloss passes clip_coef


def test_the_update_without_functions_calls_the_references():
    # catches: a name the update reads from the run's bundle (UpdateSeam) that the
    # update's default (`references()`, this module's names) lacks or holds wrongly
    from ppo_lessons import update

    for name in UpdateSeam.__annotations__:
        assert getattr(update.references(), name) is REFERENCES[name]
        assert getattr(LessonFunctions(), name) is REFERENCES[name]


@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
def test_minibatch_loss_without_metrics_has_the_same_loss_and_gradient(ent_coef):
    # without metrics and with ent_coef = 0 the entropy is not computed at all; the
    # loss and its gradient must still be exactly those of the full computation
    torch.manual_seed(0)
    agent = ActorCritic(3, 2, discrete=True)
    batch = batch_for(agent)
    idx = torch.arange(16)
    grads = []
    for with_metrics in (True, False):
        agent.zero_grad()
        loss, metrics = minibatch_loss(
            agent, batch, idx, settings(ent_coef=ent_coef), with_metrics=with_metrics
        )
        assert (metrics is None) == (not with_metrics)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in agent.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = grads
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))


def test_flatten_parameters_keeps_the_values_and_makes_every_parameter_a_view():
    torch.manual_seed(0)
    agent = ActorCritic(3, 2, discrete=False)  # log σ is a parameter too
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    flat = flatten_parameters(agent)
    assert all(torch.equal(before[k], v) for k, v in agent.state_dict().items())
    assert flat.is_leaf and flat.numel() == sum(p.numel() for p in agent.parameters())
    with torch.no_grad():
        flat.add_(1.0)  # an optimizer step on the flat tensor moves every parameter
    assert all(torch.equal(p, before[k] + 1.0) for k, p in agent.named_parameters())


def test_gradients_land_in_the_flat_gradient_in_parameter_order():
    torch.manual_seed(0)
    agent = ActorCritic(3, 2, discrete=True)
    flat = flatten_parameters(agent)
    loss, _ = minibatch_loss(agent, batch_for(agent), slice(None), settings())
    loss.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in agent.parameters()])
    assert expected.abs().sum() > 0 and torch.equal(flat.grad, expected)


def test_an_update_on_flat_parameters_equals_one_on_the_parameter_list():
    # the same Adam arithmetic; the clipping norm of the one flat gradient is that
    # of all gradients together (up to the rounding of the sum)
    results = []
    for flat in (False, True):
        torch.manual_seed(0)
        agent = ActorCritic(3, 2, discrete=True)
        start = torch.cat([p.detach().reshape(-1) for p in agent.parameters()])
        params = [flatten_parameters(agent)] if flat else list(agent.parameters())
        optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-5, fused=True)
        ppo_update(agent, optimizer, batch_for(agent), settings(max_grad_norm=0.05),
                   torch.Generator().manual_seed(0))  # fmt: skip
        results.append(torch.cat([p.detach().reshape(-1) for p in agent.parameters()]))
        assert (results[-1] - start).abs().max() > 1e-4  # the update moved them
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=1e-6)


def test_flatten_parameters_refuses_a_module_without_trainable_parameters():
    with pytest.raises(ValueError, match="no trainable parameters"):
        flatten_parameters(torch.nn.Tanh())


@pytest.mark.parametrize("B, M", [(64, 16), (64, 24), (64, 64), (64, 100)])
def test_shuffled_minibatches_cover_the_batch_once_in_slices_of_m(B, M):
    torch.manual_seed(0)
    agent = ActorCritic(3, 2, discrete=True)
    batch = batch_for(agent, B=B)
    pairs = shuffled_minibatches(batch, M, torch.Generator().manual_seed(0))
    sizes = [len(b.advantages[idx]) for b, idx in pairs]
    assert sizes == [min(M, B - start) for start in range(0, B, M)]
    seen = torch.cat([b.advantages[idx] for b, idx in pairs])
    assert torch.equal(seen.sort().values, batch.advantages.sort().values)
    for field in ("obs", "actions", "log_probs", "values", "returns"):  # rows stay rows
        rows = torch.cat([getattr(b, field)[idx] for b, idx in pairs])
        where = [int((batch.advantages == a).nonzero()) for a in seen]
        assert torch.equal(rows, getattr(batch, field)[where])
    if M < B:
        assert not torch.equal(seen, batch.advantages)  # shuffled
