"""A population takes the student's functions as `train` does (one bundle,
`LessonFunctions`): every exercise function that can run batched over the members,
each tested here with a second, independent implementation of its contract
(tests/support/independent_functions.py); the others are refused, saying why."""

from __future__ import annotations

import functools

import pytest
import torch
from support import independent_functions as own

from ppo_lessons.experiments import Variant, population_overrides
from ppo_lessons.functions import LessonFunctions, trainer_functions
from ppo_lessons.population import train_population
from ppo_lessons.population.members import (
    NOT_IN_A_POPULATION,
    POPULATION_FUNCTIONS,
    member_specs,
)
from ppo_lessons.trainer_config import PPOConfig

TINY = dict(
    env_id="CartPole-v1", env_backend="torch", num_envs=4, num_steps=16,
    num_minibatches=2, update_epochs=2, hidden_sizes=(8, 8), total_steps=128,
    learning_rate=3e-3, device="cpu",
)  # fmt: skip
NUMBERS = ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "entropy",
           "explained_variance", "episodic_return")  # fmt: skip


def counted(fn, calls: dict):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        return fn(*args, **kwargs)

    return wrapper


def test_the_population_takes_every_function_but_the_refused_ones():
    # catches: a trainer function neither taken nor refused with a reason
    taken, refused = set(POPULATION_FUNCTIONS), set(NOT_IN_A_POPULATION)
    assert taken | refused == set(LessonFunctions.references) and not taken & refused
    assert taken == {
        "compute_gae", "clipped_surrogate_objective", "value_loss", "ppo_loss",
        "approx_kl", "probability_ratio", "explained_variance", "gaussian_log_prob",
        "categorical_entropy", "actor_critic_networks",
    }  # fmt: skip


@pytest.mark.parametrize("name", POPULATION_FUNCTIONS)
def test_a_variants_own_function_is_called_and_trains_like_the_reference(name):
    # catches: a given function that the population ignores (not called), or one
    # wired to the wrong place (the run would differ from the reference's)
    calls = {"n": 0}
    variants = {
        "reference": {},
        "yours": {"functions": {name: counted(getattr(own, name), calls)}},
    }
    env_id = "Pendulum-v1" if name == "gaussian_log_prob" else "CartPole-v1"
    config = PPOConfig(**{**TINY, "env_id": env_id})
    result = train_population(config, [1], variants, progress=False)
    assert calls["n"] > 0
    reference, yours = (m.history for m in result.members)
    for a, b in zip(reference, yours, strict=True):
        for key in NUMBERS:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6, nan_ok=True)


@pytest.mark.parametrize("name", sorted(NOT_IN_A_POPULATION))
def test_a_function_a_population_cannot_take_is_refused_saying_why(name):
    why = NOT_IN_A_POPULATION[name]
    with pytest.raises(ValueError, match=rf"functions\['{name}'\]") as refused:
        member_specs(PPOConfig(**TINY), [1], {"v": {"functions": {name: print}}})
    assert why in str(refused.value)


def test_networks_a_population_cannot_compute_are_refused_saying_why():
    # catches: a student's architecture silently replaced by the stacked layers
    def with_a_norm(obs_dim, action_dim, hidden_sizes, activation):
        actor, critic = own.actor_critic_networks(
            obs_dim, action_dim, hidden_sizes, activation
        )
        return torch.nn.Sequential(torch.nn.LayerNorm(obs_dim), actor), critic

    variants = {"norm": {"functions": {"actor_critic_networks": with_a_norm}}}
    with pytest.raises(
        ValueError, match="'norm': the actor of its actor_critic_networks is not"
    ):
        train_population(PPOConfig(**TINY), [1], variants, progress=False)


def test_a_bundle_goes_in_as_the_dict_does():
    # catches: a variant's bundle rebuilt (its counters lost) or refused
    bundle = trainer_functions({"compute_gae": own.compute_gae})
    (spec,) = member_specs(PPOConfig(**TINY), [1], {"v": {"functions": bundle}})
    assert spec.functions is bundle
    train_population(PPOConfig(**TINY), [1], {"v": {"functions": bundle}},
                     progress=False)  # fmt: skip
    assert bundle.calls()["compute_gae"] > 0


def test_run_variants_trains_functions_in_a_population_where_it_can():
    # catches: lesson 08's `functions=` variants falling back to runs one by one
    base = PPOConfig(**TINY)
    gae = Variant(train_kwargs=dict(functions={"compute_gae": own.compute_gae}))
    update = Variant(train_kwargs=dict(functions={"ppo_update": own.ppo_update}))
    assert population_overrides(base, gae) == {
        "functions": {"compute_gae": own.compute_gae}
    }
    assert population_overrides(base, update) is None  # trains with `train`
