"""Many PPO agents trained as one batched population (lesson 09).

    from ppo_lessons.population import train_population

    result = train_population(config, seeds=[1, 2, 3], variants={"lr 1e-3": {...}})

The weights of K agents are stacked into (K, in, out) tensors and computed with
batched matmuls, the K·N envs are one batched tensor env, and one elementwise Adam
steps all members, so the fixed cost per PyTorch operation, which dominates a small
network, is paid once for the population instead of once per agent (the idea
PureJaxRL made known as "vmap over seeds"). Each member remains its own PPO agent:
its hyperparameters, gradient norm, advantage normalization, target-KL stop and
random numbers are its own.

- `trainer`: `train_population`, `PopulationResult`, `Member`
- `members`: who is in a population, per-member and shared fields, memory estimate
- `network`: the batched actor-critic and the population's Adam
- `envs`: the K·N envs with per-member normalization and episode statistics
- `update`: GAE and the PPO update of every member, from the lessons' functions
- `random`: one counter-based random stream per member
"""

from ppo_lessons.population.members import (
    NOT_IN_A_POPULATION,
    PER_MEMBER_FIELDS,
    POPULATION_FUNCTIONS,
    SHARED_FIELDS,
    estimate_memory,
)
from ppo_lessons.population.trainer import Member, PopulationResult, train_population

__all__ = [
    "NOT_IN_A_POPULATION",
    "PER_MEMBER_FIELDS",
    "POPULATION_FUNCTIONS",
    "SHARED_FIELDS",
    "Member",
    "PopulationResult",
    "estimate_memory",
    "train_population",
]
