"""Who is in a population, and what each member may set for itself.

A population is every (variant, seed) pair. A variant overrides `PPOConfig` fields
that PPO lets differ inside one batch (`PER_MEMBER_FIELDS`) and may swap lesson
functions (`functions`, as `train(functions=...)` does: a dict of exercise name ->
callable, or a `LessonFunctions`; the names of `POPULATION_FUNCTIONS`, the others
refused with the reason in `NOT_IN_A_POPULATION`). Fields that decide the
shapes of the batched tensors, the env or the device are shared (`SHARED_FIELDS`);
a variant that overrides one is refused before anything is built.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ppo_lessons.envs import resolve_device
from ppo_lessons.functions import TRAINER_EXERCISES, LessonFunctions, trainer_functions
from ppo_lessons.torch_envs import TORCH_ENV_IDS, make_torch_vector_env
from ppo_lessons.trainer_config import PPOConfig

__all__ = [
    "NOT_IN_A_POPULATION",
    "PER_MEMBER_FIELDS",
    "POPULATION_FUNCTIONS",
    "SHARED_FIELDS",
    "MemberSpec",
    "available_memory",
    "check_memory",
    "estimate_memory",
    "member_specs",
]

# fields each member may set for itself (tensors of K values inside the update)
PER_MEMBER_FIELDS = (
    "learning_rate", "anneal_lr", "adam_eps", "max_grad_norm", "target_kl",
    "kl_estimator", "gamma", "gae_lambda", "norm_adv", "clip_coef", "clip_vloss",
    "ent_coef", "vf_coef", "ortho_init", "init_log_std", "init_value", "norm_obs",
    "norm_reward",
)  # fmt: skip
SHAPES = "it sets the shapes of the batched tensors, which every member shares"
# fields every member shares, and why
SHARED_FIELDS: dict[str, str] = {
    "env_id": "the K·N envs are one batched env",
    "env_backend": "the K·N envs are one batched env",
    "async_envs": "the K·N envs are one batched env",
    "total_steps": "all members run the same number of updates",
    "num_envs": SHAPES,
    "num_steps": SHAPES,
    "num_minibatches": SHAPES,
    "update_epochs": "every member takes the same gradient steps (a member stops "
    "early only through target_kl)",
    "hidden_sizes": SHAPES,
    "activation": "the members' layers are computed as one batched network",
    "shared_network": SHAPES,
    "squash_actions": "the members' policies are one batched network",
    "device": "one population runs on one device",
    "torch_threads": "one population runs in one process",
    "seed": "the members' seeds are the `seeds` argument",
    "recurrent": "a population has no memory (lesson 11's policies train one seed "
    "at a time)",
    "frame_stack": "a population has no memory (lesson 11's policies train one "
    "seed at a time)",
}
# the exercise functions `train` takes that a population cannot take, and why
NOT_IN_A_POPULATION: dict[str, str] = {
    "collect_rollout": "the rollout is one call for all members, on the batched "
    "network, drawing from the members' counter-based streams (not a torch.Generator)",
    "ppo_update": "the update is one loop over all members at once "
    "(ppo_lessons.population.update.population_update), not one agent's update",
    "minibatch_indices": "each member's minibatch order comes from its own "
    "counter-based stream, so that a member trains the same whoever its neighbours "
    "are; minibatch_indices draws from one torch.Generator",
    "replay_sequence": "a population has no memory (lesson 11's policies train one "
    "seed at a time)",
}
# lesson functions a variant may replace: the rest of the trainer's (each called
# once per group of members that share it and their scalar settings: mapped over the
# members with `torch.func.vmap`, on the group's member-first tensors (log π and H,
# `network.PopulationActorCritic.per_head`), or for explained_variance member by
# member)
POPULATION_FUNCTIONS = tuple(
    name for name in TRAINER_EXERCISES if name not in NOT_IN_A_POPULATION
)


@dataclass(frozen=True)
class MemberSpec:
    """One member: its variant's name, its seed, its full config and functions."""

    variant: str
    seed: int
    config: PPOConfig
    functions: LessonFunctions


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """The seeds as a list; empty, repeated or non-integer seeds are refused."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(f"seeds must be a list of integers >= 0, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed, e.g. [1, 2, 3]")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise ValueError(f"seeds must be integers >= 0, got {bad[0]!r} in {seeds}")
    repeated = sorted(s for s, n in Counter(seeds).items() if n > 1)
    if repeated:
        raise ValueError(
            f"seeds {repeated} appear more than once in {seeds}; each seed once "
            "(a repeated seed would train the same member twice)"
        )
    return seeds


def check_config(config: PPOConfig) -> None:
    """Refuse what a population cannot run, saying what to do instead."""
    if not isinstance(config, PPOConfig):
        raise ValueError(f"config must be a PPOConfig, got {config!r}")
    if config.env_backend != "torch":
        raise ValueError(
            f"PPOConfig.env_backend = {config.env_backend!r}: a population needs "
            "env_backend='torch' (its K·N envs are one batched tensor env; "
            f"{', '.join(TORCH_ENV_IDS)} have one); train Gymnasium envs one seed "
            "at a time with ppo_lessons.trainer.train"
        )
    for name in ("shared_network", "squash_actions"):
        if getattr(config, name):
            raise ValueError(
                f"PPOConfig.{name} = True is not supported in a population; set "
                f"{name}=False, or train with ppo_lessons.trainer.train"
            )
    if config.recurrent != "none" or config.frame_stack > 1:
        raise ValueError(
            f"PPOConfig.recurrent = {config.recurrent!r}, frame_stack = "
            f"{config.frame_stack}: a population has no memory (lesson 11's policies "
            "train one seed at a time); set recurrent='none' and frame_stack=1, or "
            "train with ppo_lessons.trainer.train"
        )


def check_variant(name: object, overrides: object) -> None:
    """A variant's name is a non-empty string; its overrides are per-member fields
    or `functions` (`POPULATION_FUNCTIONS` names to callables, or a bundle)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a variant's name must be a non-empty string, got {name!r}")
    if not isinstance(overrides, Mapping):
        raise ValueError(
            f"variant {name!r} must map PPOConfig fields to values, got {overrides!r}"
        )
    known = {f.name for f in dataclasses.fields(PPOConfig)}
    for key in overrides:
        if key == "functions":
            check_functions(name, overrides[key])
        elif key in SHARED_FIELDS:
            raise ValueError(
                f"variant {name!r} overrides {key}, which every member shares "
                f"({SHARED_FIELDS[key]}); set it in the config, or train a separate "
                "population for it"
            )
        elif key not in known:
            raise ValueError(
                f"variant {name!r} overrides {key!r}, which is not a PPOConfig field; "
                f"a variant may set {', '.join(PER_MEMBER_FIELDS)} and functions"
            )


def check_functions(name: str, functions: object) -> LessonFunctions:
    """The variant's functions as the members' bundle (`trainer_functions`, the
    door of `train`); a name a population cannot take is refused, saying why."""
    if not isinstance(functions, (Mapping, LessonFunctions)):
        raise ValueError(
            f"variant {name!r}: functions must map names to callables, "
            f"got {functions!r}"
        )
    given = (  # of a bundle, the functions that are not the references
        {n: getattr(functions, n) for n in functions.own}
        if isinstance(functions, LessonFunctions)
        else functions
    )
    for fn_name, fn in given.items():
        if fn_name not in POPULATION_FUNCTIONS or not callable(fn):
            why = NOT_IN_A_POPULATION.get(fn_name)
            raise ValueError(
                f"variant {name!r}: functions[{fn_name!r}] = {fn!r} is not allowed"
                + (f" ({why})" if why and callable(fn) else "")
                + f"; a population can swap {', '.join(POPULATION_FUNCTIONS)} "
                "(each a callable with the lesson's contract)"
            )
    return trainer_functions(functions)


def member_specs(
    config: PPOConfig,
    seeds: Sequence[int],
    variants: Mapping[str, Mapping[str, Any]] | None,
) -> list[MemberSpec]:
    """Every (variant, seed) pair, variant by variant, validated before anything is
    built (the memory estimate first). Without `variants`, one variant named
    "config" (the config as it is)."""
    check_config(config)
    seeds = check_seeds(seeds)
    if variants is None:
        variants = {"config": {}}
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError(
            f"variants must be a non-empty mapping of names to overrides, got "
            f"{variants!r}"
        )
    obs_space = make_torch_vector_env(config.env_id, 1).single_observation_space
    device = resolve_device(config.device)
    check_memory(config, len(seeds) * len(variants), obs_space.shape[0], device)
    specs = []
    for name, overrides in variants.items():
        check_variant(name, overrides)
        fields = {k: v for k, v in overrides.items() if k != "functions"}
        functions = check_functions(name, overrides.get("functions", {}))
        for seed in seeds:
            member = config.replace(seed=seed, **fields)  # validates the values
            specs.append(MemberSpec(name, seed, member, functions))
    return specs


def estimate_memory(config: PPOConfig, members: int, obs_dim: int) -> int:
    """Bytes a population of `members` needs, roughly: for each member its
    parameters (with gradient and Adam's two moments), the rollout, the batch and
    its shuffled copy, and one minibatch's activations through both networks."""
    widths = [obs_dim, *config.hidden_sizes]
    per_net = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    params = 2 * per_net + 2 * config.hidden_sizes[-1] + 8  # heads, log σ
    T, N = config.num_steps, config.num_envs
    rollout = T * N * (2 * obs_dim + 12)  # obs, reached obs, the (T, N) rows
    batch = 2 * T * N * (obs_dim + 8)  # the per-member batch and its shuffle
    activations = 8 * config.minibatch_size * sum(config.hidden_sizes)
    return 4 * members * (4 * params + rollout + batch + activations)


def available_memory(device: torch.device) -> int:
    """Bytes free on `device` (CUDA's free memory; the host's available memory)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    _name, kibibytes, *_unit = line.split()  # "MemAvailable: n kB"
                    return int(kibibytes) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(
    config: PPOConfig, members: int, obs_dim: int, device: torch.device
) -> None:
    """Refuse a population whose estimate exceeds 80% of the free memory."""
    need, free = estimate_memory(config, members, obs_dim), available_memory(device)
    if need > 0.8 * free:
        most = max(0, math.floor(0.8 * free * members / need))
        raise ValueError(
            f"a population of {members} members needs about {need / 2**30:.1f} GiB "
            f"on {device}, but {free / 2**30:.1f} GiB is free; use at most about "
            f"{most} members, or smaller networks, num_envs or num_steps"
        )
