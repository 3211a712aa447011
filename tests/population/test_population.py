"""Population training (ppo_lessons.population): each member is its own PPO agent.

The oracles are the single-agent pieces: `ppo_loss_terms`, `clip_grad_norm_`,
`torch.optim.Adam`, `compute_gae`, and a member trained without neighbours.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from ppo_lessons.buffer import Batch, RolloutBuffer
from ppo_lessons.doctor import diagnose
from ppo_lessons.gae import compute_gae
from ppo_lessons.networks import ActorCritic
from ppo_lessons.population import PER_MEMBER_FIELDS, SHARED_FIELDS, train_population
from ppo_lessons.population.members import estimate_memory, member_specs
from ppo_lessons.population.network import (
    PopulationActorCritic,
    PopulationAdam,
    clip_member_gradients,
)
from ppo_lessons.population.random import MemberStreams
from ppo_lessons.population.update import (
    MemberSettings,
    member_gae,
    member_losses,
    population_update,
)
from ppo_lessons.presets import preset
from ppo_lessons.torch_envs import make_torch_vector_env
from ppo_lessons.trainer import evaluate, train
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.update import MINIBATCH_METRICS, ppo_loss_terms

TINY = dict(
    env_id="CartPole-v1", env_backend="torch", num_envs=4, num_steps=16,
    num_minibatches=2, update_epochs=2, hidden_sizes=(8, 8), total_steps=256,
    learning_rate=3e-3, device="cpu",
)  # fmt: skip


def tiny(**changes) -> PPOConfig:
    return PPOConfig(**{**TINY, **changes})


def history_numbers(member) -> list[tuple]:
    keys = ("episodic_return", "policy_loss", "value_loss", "approx_kl", "entropy")
    return [tuple(row[k] for k in keys) for row in member.history]


# ---------------------------------------------------------------- independence


def test_a_member_does_not_depend_on_its_neighbours(device):
    """Catches any shared random source or cross-member reduction: seed 5 trained
    alone, and between other seeds and another variant, gives the same run."""
    config = tiny(device=device, norm_obs=True, norm_reward=True)
    alone = train_population(config, [5], progress=False).members[0]
    crowd = train_population(
        config,
        [3, 5, 9],
        {"other": {"learning_rate": 1e-2, "gamma": 0.9}, "config": {}},
        progress=False,
    )
    (twin,) = [m for m in crowd.members if m.variant == "config" and m.seed == 5]
    assert len(alone.history) == 4
    for a, b in zip(history_numbers(alone), history_numbers(twin), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6, nan_ok=True)
    for p, q in zip(alone.agent.parameters(), twin.agent.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone.agent.obs_rms.mean, twin.agent.obs_rms.mean)
    # and different seeds really differ (the comparison above can fail)
    other = [m for m in crowd.members if m.variant == "config" and m.seed == 3][0]
    assert history_numbers(other) != history_numbers(twin)


def test_member_streams_are_decided_by_the_seed_alone():
    one = MemberStreams([5], "cpu")
    three = MemberStreams([3, 5, 9], "cpu")
    for _ in range(2):  # second calls too
        u1, u3 = one.uniform("envs", (6, 2)), three.uniform("envs", (6, 2))
        assert torch.equal(u1[0], u3[1])
        assert not torch.equal(u3[0], u3[1])
        assert float(u3.min()) >= 0.0 and float(u3.max()) < 1.0
    perms = three.permutations("minibatches", 50)
    assert torch.equal(perms.sort(dim=1).values, torch.arange(50).expand(3, 50))
    normal = MemberStreams(list(range(200)), "cpu").normal("actions", (500,))
    assert abs(float(normal.mean())) < 0.01 and abs(float(normal.std()) - 1) < 0.01


def test_a_torch_env_draws_its_initial_states_from_a_given_source():
    draws = torch.full((3, 4), 0.75)
    env = make_torch_vector_env("CartPole-v1", 3, uniform=lambda columns: draws)
    obs, _ = env.reset()
    torch.testing.assert_close(obs, torch.full((3, 4), 0.025))  # −0.05 + 0.1·0.75
    plain = make_torch_vector_env("CartPole-v1", 3, seed=0)
    assert not torch.equal(plain.reset()[0], obs)


# ---------------------------------------------------------------- one member's step


def make_members(K: int, hidden=(8, 8), discrete=True) -> list[ActorCritic]:
    agents = []
    for k in range(K):
        torch.manual_seed(k)
        agents.append(ActorCritic(4, 2, discrete, hidden_sizes=hidden))
    return agents


def random_batch(agents, M: int, device) -> Batch:
    """A minibatch (K, M, ...) with log-probs and values of the agents themselves,
    advantages of very different scale per member."""
    g = torch.Generator().manual_seed(0)
    K = len(agents)
    obs = torch.randn(K, M, 4, generator=g)
    actions = torch.randint(0, 2, (K, M), generator=g)
    with torch.no_grad():
        outs = [a.policy_and_value(obs[k]) for k, a in enumerate(agents)]
        lp = torch.stack([a.log_prob(o[0], actions[k]) for k, (a, o) in
                          enumerate(zip(agents, outs, strict=True))])  # fmt: skip
        values = torch.stack([o[1] for o in outs])
    lp = lp + 0.3 * torch.randn(K, M, generator=g)  # an older policy
    scale = torch.tensor([1.0, 100.0, 0.01])[:K, None]
    advantages = scale * (torch.randn(K, M, generator=g) + 0.5)
    returns = values + torch.randn(K, M, generator=g)
    fields = (obs, actions, lp, values, advantages, returns)
    return Batch(*(f.to(device) for f in fields))


VARIANTS = {
    "clipped hard": dict(max_grad_norm=0.01, learning_rate=1e-2, clip_coef=0.1),
    "raw advantages": dict(
        norm_adv=False, max_grad_norm=None, vf_coef=2.0, clip_vloss=True
    ),
    "entropy": dict(ent_coef=0.05, adam_eps=1e-3, max_grad_norm=0.5),
}


def test_one_minibatch_step_is_each_members_own_single_agent_step(device):
    """Per-member gradient clipping, advantage normalization, coefficients and Adam:
    one population step equals, for every member, `ppo_loss_terms` + its own
    `clip_grad_norm_` + `torch.optim.Adam`. A global gradient norm, advantages
    normalized over the population, or one learning rate would each fail it."""
    config = tiny(device=device)
    specs = member_specs(config, [7], VARIANTS)
    settings = MemberSettings.from_specs(specs, torch.device(device))
    agents = make_members(3)
    copies = [copy.deepcopy(a) for a in agents]
    batch = random_batch(agents, 64, device)
    net = PopulationActorCritic(agents, num_envs=4).to(device)
    adam = PopulationAdam(net, settings.adam_eps)
    loss, metrics = member_losses(net, batch, settings)
    adam.zero_grad()
    loss.backward()
    norms = clip_member_gradients(adam, settings.max_grad_norm)
    adam.step(settings.learning_rate, torch.ones(3, dtype=torch.bool, device=device))
    net.to("cpu").copy_into(agents)

    expected_norms = []
    for k, (agent, spec) in enumerate(zip(copies, specs, strict=True)):
        c = spec.config
        mb = Batch(*(f[k].cpu() for f in batch))
        policy_out, values = agent.policy_and_value(mb.obs)
        lp, entropy = agent.log_prob_entropy(policy_out, mb.actions)
        terms = ppo_loss_terms(
            lp, mb.log_probs, mb.advantages, values, mb.values, mb.returns, entropy,
            c.clip_coef, c.clip_coef if c.clip_vloss else None, c.vf_coef,
            c.ent_coef, c.norm_adv,
        )  # fmt: skip
        terms.loss.backward()
        max_norm = math.inf if c.max_grad_norm is None else c.max_grad_norm
        expected_norms.append(
            float(torch.nn.utils.clip_grad_norm_(agent.parameters(), max_norm))
        )
        torch.optim.Adam(agent.parameters(), lr=c.learning_rate, eps=c.adam_eps).step()
        got = dict(zip(MINIBATCH_METRICS, metrics[k].cpu(), strict=True))
        torch.testing.assert_close(got["policy_loss"], terms.policy_loss.detach())
        torch.testing.assert_close(got["value_loss"], terms.value_loss.detach())
        torch.testing.assert_close(got["entropy"], terms.entropy.detach())
        for p, q in zip(agents[k].parameters(), agent.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(norms.cpu(), torch.tensor(expected_norms))
    assert expected_norms[0] > 0.01  # member 0's gradient was really clipped


def test_a_member_that_reaches_target_kl_stops_alone():
    """Catches a stop that ends every member's epochs (or none): the member with a
    tiny target_kl runs one epoch and keeps its weights after it; the other runs
    all epochs, exactly as in a population where nobody stops."""
    base = tiny(update_epochs=3, num_minibatches=1)
    stopping = {"stops": {"target_kl": 1e-9}, "runs": {}}
    never = {"stops": {}, "runs": {}}
    outcomes = []
    for variants in (stopping, never):
        specs = member_specs(base, [7], variants)
        settings = MemberSettings.from_specs(specs, torch.device("cpu"))
        agents = make_members(2)
        batch = random_batch(agents, 32, "cpu")
        net = PopulationActorCritic(agents, num_envs=4)
        adam = PopulationAdam(net, settings.adam_eps)
        streams = MemberStreams([1, 2], "cpu")
        metrics = population_update(
            net, adam, batch, settings, streams, settings.learning_rate
        )
        outcomes.append(
            (metrics["epochs"], [p.detach().clone() for p in net.parameters()])
        )
    (epochs, stopped), (all_epochs, free) = outcomes
    assert epochs.tolist() == [1.0, 3.0] and all_epochs.tolist() == [3.0, 3.0]
    for p, q in zip(stopped, free, strict=True):
        torch.testing.assert_close(p[1], q[1])  # the member that ran on
        assert not torch.equal(p[0], q[0])  # the one that stopped


def test_gae_groups_each_use_their_own_gamma_lambda_and_function():
    """Members with different γ, λ or GAE function: each member's columns equal
    `compute_gae` (or its variant) on that member alone."""

    def no_bootstrap(rewards, values, next_values, terminated, truncated, g, lam):
        done = terminated | truncated
        return compute_gae(rewards, values, next_values, done, done & False, g, lam)

    variants = {
        "a": {"gamma": 0.9},
        "b": {"gae_lambda": 0.5},
        "c": {"functions": {"compute_gae": no_bootstrap}},
    }
    specs = member_specs(tiny(), [1, 2], variants)
    settings = MemberSettings.from_specs(specs, torch.device("cpu"))
    T, N, K = 16, 4, 6
    buffer = RolloutBuffer(T, K * N, (4,), (), True)
    g = torch.Generator().manual_seed(1)
    for name in ("rewards", "values", "next_values"):
        getattr(buffer, name).copy_(torch.randn(T, K * N, generator=g))
    buffer.terminated.copy_(torch.rand(T, K * N, generator=g) < 0.1)
    buffer.truncated.copy_(torch.rand(T, K * N, generator=g) < 0.1)
    advantages, returns = member_gae(buffer, settings, N)
    for k, spec in enumerate(specs):
        cols = slice(k * N, (k + 1) * N)
        fn = spec.functions.compute_gae
        rows = (buffer.rewards, buffer.values, buffer.next_values)
        flags = (buffer.terminated, buffer.truncated)
        adv, ret = fn(*(x[:, cols] for x in rows + flags),
                      spec.config.gamma, spec.config.gae_lambda)  # fmt: skip
        torch.testing.assert_close(advantages[:, cols], adv)
        torch.testing.assert_close(returns[:, cols], ret)


# ---------------------------------------------------------------- results


def test_members_are_ordinary_agents_with_histories(device):
    result = train_population(
        tiny(device=device), [1, 2], {"x": {}, "y": {"anneal_lr": False}},
        progress=False,
    )  # fmt: skip
    assert [(m.variant, m.seed) for m in result.members] == [
        ("x", 1), ("x", 2), ("y", 1), ("y", 2),
    ]  # fmt: skip
    member = result.members[3]
    assert isinstance(member.agent, ActorCritic)
    assert len(evaluate(member.agent, "CartPole-v1", episodes=2)) == 2
    assert [row["update"] for row in member.history] == [1, 2, 3, 4]
    assert member.history[-1]["learning_rate"] == pytest.approx(3e-3)
    assert result.members[1].history[-1]["learning_rate"] == pytest.approx(7.5e-4)
    assert member.diagnosis == diagnose(member.history)
    assert result.global_step == 256 and result.member_steps_per_second > 0
    assert result.solved == 0


def test_box_actions_train_per_member(device):
    config = tiny(env_id="Pendulum-v1", init_log_std=-0.5, device=device)
    result = train_population(
        config, [1], {"a": {}, "b": {"init_log_std": -2.0}}, progress=False
    )
    a, b = (m.agent.log_std.detach() for m in result.members)
    assert float(a.mean()) > -1.0 > float(b.mean())
    assert math.isfinite(result.members[0].history[-1]["policy_loss"])


def test_lesson_08s_flaws_are_variants_of_one_population():
    """The typical tutorial's GAE (truncation as termination) and ratio of
    probabilities, swapped in per variant, beside the lessons' functions."""
    from ppo_lessons.experiments import (
        compute_gae_truncation_as_termination,
        probability_ratio_objective,
    )

    variants = {
        "course": {},
        "done": {"functions": {"compute_gae": compute_gae_truncation_as_termination}},
        "ratio": {"functions": {"clipped_surrogate_objective": probability_ratio_objective}},
    }  # fmt: skip
    specs = member_specs(tiny(), [1, 2], variants)
    settings = MemberSettings.from_specs(specs, torch.device("cpu"))
    assert len(settings.gae_groups) == 2 and len(settings.loss_groups) == 2
    result = train_population(tiny(), [1, 2], variants, progress=False)
    rows = {(m.variant, m.seed): m.history[-1] for m in result.members}
    assert all(math.isfinite(row["policy_loss"]) for row in rows.values())
    # same seed, same first rollout: the ratio variant differs only in its update
    first = {(m.variant, m.seed): m.history[0] for m in result.members}
    ratio, course = first["ratio", 1], first["course", 1]
    assert ratio["episodes"] == course["episodes"]
    assert ratio["explained_variance"] == pytest.approx(course["explained_variance"])


def test_every_config_field_is_per_member_or_shared():
    names = {f.name for f in dataclasses.fields(PPOConfig)}
    assert set(PER_MEMBER_FIELDS) | set(SHARED_FIELDS) == names
    assert not set(PER_MEMBER_FIELDS) & set(SHARED_FIELDS)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "seeds, variants, message",
    [
        ([1, 2, 1], None, r"seeds \[1\] appear more than once"),
        ([], None, "seeds is empty"),
        ([1, True], None, "seeds must be integers >= 0, got True"),
        ([1], {"wide": {"hidden_sizes": (64, 64)}}, "overrides hidden_sizes, which"),
        ([1], {"more envs": {"num_envs": 8}}, "overrides num_envs, which every"),
        ([1], {"typo": {"learning_rte": 1e-3}}, "'learning_rte', which is not a"),
        ([1], {"bad": {"learning_rate": -1.0}}, "PPOConfig.learning_rate = -1.0"),
        ([1], {"f": {"functions": {"ppo_update": print}}}, "functions\\['ppo_upd"),
        ([1], {}, "variants must be a non-empty mapping"),
    ],
)
def test_bad_input_is_refused_before_training(seeds, variants, message):
    with pytest.raises(ValueError, match=message):
        train_population(tiny(), seeds, variants, progress=False)


def test_the_gymnasium_backend_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="env_backend='torch'"):
        train_population(tiny(env_backend="gymnasium"), [1], progress=False)


def test_a_population_too_large_for_memory_is_refused_from_an_estimate():
    config = tiny(hidden_sizes=(4096, 4096))
    need = estimate_memory(config, 100_000, 4)
    assert need > 2**40  # about 100,000 x 4 x 2 x 16.8M parameters x 4 bytes
    with pytest.raises(ValueError, match="members needs about .* GiB .* use at most"):
        train_population(config, list(range(100_000)), progress=False)


# ---------------------------------------------------------------- learning


@pytest.mark.slow
def test_learning_rate_is_per_member():
    """The issue's check: in one population, members at lr 1e-6 do not learn while
    members at the preset's rate solve CartPole."""
    config = preset("CartPole-v1", env_backend="torch", device="cpu")
    result = train_population(
        config, [1, 2, 3, 4], {"preset": {}, "lr 1e-6": {"learning_rate": 1e-6}},
        progress=False,
    )  # fmt: skip
    scores = {
        (m.variant, m.seed): float(evaluate(m.agent, "CartPole-v1", 10).mean())
        for m in result.members
    }
    preset_scores = [v for (name, _), v in scores.items() if name == "preset"]
    frozen_scores = [v for (name, _), v in scores.items() if name == "lr 1e-6"]
    assert sum(s >= 475 for s in preset_scores) >= 3, scores
    assert max(frozen_scores) < 475, scores
    # while training, the frozen members' returns stay those of their first policy
    # (the deterministic evaluation of an untrained policy can still score ~100)
    for m in result.members:
        late = [row["episodic_return"] for row in m.history[-10:]]
        if m.variant == "lr 1e-6":
            assert sum(late) / len(late) < 60, (m.seed, late)


@pytest.mark.slow
def test_a_population_solves_like_single_agent_training():
    """Statistically, not bit for bit (other random numbers): eight members of the
    fast preset solve as often as `train` does on the same seeds."""
    from ppo_lessons.trainer import train

    config = preset("CartPole-v1", env_backend="torch", device="cpu")
    seeds = list(range(1, 9))
    population = train_population(config, seeds, progress=False)
    pop_scores = [float(evaluate(m.agent, "CartPole-v1", 10).mean())
                  for m in population.members]  # fmt: skip
    single = [train(config.replace(seed=s), progress=False) for s in seeds]
    single_scores = [float(evaluate(r.agent, "CartPole-v1", 10).mean())
                     for r in single]  # fmt: skip
    assert sum(s >= 475 for s in pop_scores) >= 7, pop_scores
    assert sum(s >= 475 for s in single_scores) >= 7, single_scores
    assert population.solved >= 7


def test_init_value_is_per_member_and_value_mean_is_logged():
    # catches init_value shared across members (or dropped when the agents are
    # stacked), and a value_mean column read from the wrong place
    config = tiny()
    result = train_population(
        config, [1, 2], {"zero": {}, "low": {"init_value": -50.0}}, progress=False
    )
    first = {(m.variant, m.seed): m.history[0]["value_mean"] for m in result.members}
    assert all(abs(first[("zero", s)]) < 10.0 for s in (1, 2)), first
    assert all(abs(first[("low", s)] + 50.0) < 10.0 for s in (1, 2)), first
    single = train(config.replace(seed=1, init_value=-50.0), progress=False)
    assert abs(single.history[0]["value_mean"] + 50.0) < 10.0
