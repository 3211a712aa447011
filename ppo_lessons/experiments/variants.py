"""Experiments over seeds and variants (lesson 08): one config over several seeds, or
several variants over the same seeds, every run recorded.

On the batched torch envs every variant and seed of an experiment trains as one
population (`ppo_lessons.population`); otherwise one run after another.

    groups = run_variants(base, {"baseline": {}, "no obs norm": {"norm_obs": False}},
                          seeds=range(1, 6))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ppo_lessons.experiments.records import RunRecord, describe_runs, record_run
from ppo_lessons.functions import LessonFunctions
from ppo_lessons.population import (
    POPULATION_FUNCTIONS,
    SHARED_FIELDS,
    PopulationResult,
    train_population,
)
from ppo_lessons.trainer import TrainResult, train
from ppo_lessons.trainer_config import PPOConfig

__all__ = [
    "POPULATION_KWARGS",
    "Variant",
    "describe_population",
    "population_overrides",
    "run_seeds",
    "run_variants",
]


def run_seeds(
    config: PPOConfig,
    seeds: Iterable[int],
    *,
    label: str = "",
    runner: Callable[..., TrainResult] = train,
    final_fraction: float = 0.1,
    population: bool = True,
    **train_kwargs: Any,
) -> list[RunRecord]:
    """Train `config` once per seed (only the seed changes) and record each run.

    Args:
        config: the run's settings; its `seed` is replaced by each of `seeds`.
        seeds: the seeds, e.g. range(1, 6).
        label: the variant's name in tables and legends.
        runner: the training function, `train` or a variant with its signature
            (e.g. `train_critic_first`); called as runner(config, progress=False,
            **train_kwargs).
        final_fraction: the last fraction of updates that `final_return` averages.
        population: train all seeds as one population (`train_population`) where
            it can (`runner` is `train`, env_backend 'torch', train_kwargs at most
            `functions` of the names a population swaps); False: one run after
            another.
        **train_kwargs: passed on, e.g. functions={"compute_gae": ...}

    Returns:
        One `RunRecord` per seed, in the order of `seeds`.
    """
    variant = Variant(train_kwargs=train_kwargs, runner=runner)
    return run_variants(
        config, {label: variant}, seeds, final_fraction=final_fraction,
        verbose=False, population=population,
    )[label]  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: config overrides, extra `train` arguments (e.g.
    the pluggable pieces, `train_kwargs=dict(functions={"compute_gae": ...})`) and
    the training function."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    train_kwargs: Mapping[str, Any] = field(default_factory=dict)
    runner: Callable[..., TrainResult] = train


# the keywords of `train` a population takes: its lesson functions (the names in
# `ppo_lessons.population.POPULATION_FUNCTIONS`)
POPULATION_KWARGS = ("functions",)


def population_overrides(base: PPOConfig, variant: Variant) -> dict | None:
    """The variant as `train_population` takes it ({field: value, "functions":
    {...}}), or None if it needs runs of its own (another runner, a keyword of
    `train` other than `functions`, a function a population cannot take, or a base
    config a population refuses)."""
    if (
        variant.runner is not train
        or base.env_backend != "torch"
        or base.shared_network
        or base.squash_actions
        or not set(variant.train_kwargs) <= set(POPULATION_KWARGS)
    ):
        return None
    functions = variant.train_kwargs.get("functions") or {}
    given = functions.own if isinstance(functions, LessonFunctions) else functions
    if not set(given) <= set(POPULATION_FUNCTIONS):
        return None
    return {**variant.overrides, "functions": functions}


def run_variants(
    base: PPOConfig,
    variants: Mapping[str, Variant | Mapping[str, Any]],
    seeds: Iterable[int],
    *,
    final_fraction: float = 0.1,
    verbose: bool = True,
    population: bool = True,
) -> dict[str, list[RunRecord]]:
    """Every variant over the same seeds; a plain dict stands for config overrides.

    With `population` (the default), the variants a population can train run as
    populations of every (variant, seed) pair, one population per setting of the
    shared fields (`ppo_lessons.population.SHARED_FIELDS`: variants with 1 and 10
    epochs train in two populations); the others, and every variant with
    population=False, run one `runner` call after another. A member's run depends
    on its seed and settings alone, not on the population it trained in.

    With `verbose`, one line per population and per variant run on its own, when
    its runs are done: members or seeds, steps per run, wall time (the record of
    the experiment that the lesson prints).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. range(1, 6)")
    arms = {
        label: v if isinstance(v, Variant) else Variant(overrides=dict(v))
        for label, v in variants.items()
    }
    batches: dict[str, tuple[dict, dict]] = {}  # shared fields -> (them, variants)
    for label, arm in arms.items():
        overrides = population_overrides(base, arm) if population else None
        if overrides is not None:
            shared = {
                k: overrides.pop(k) for k in list(overrides) if k in SHARED_FIELDS
            }
            batch = batches.setdefault(repr(sorted(shared.items())), (shared, {}))
            batch[1][label or "config"] = overrides  # a population's names are not ""
    groups: dict[str, list[RunRecord]] = {}
    for shared, members in batches.values():
        result = train_population(
            base.replace(**shared), seeds, members, progress=False
        )
        for name in members:
            label = name if name in arms else ""
            groups[label] = [
                record_run(result, label, final_fraction, member=m)
                for m in result.members
                if m.variant == name
            ]
        if verbose:
            print(describe_population(result, list(members)))
    for label, arm in arms.items():
        if label not in groups:
            tick = time.perf_counter()
            config = base.replace(**arm.overrides)
            groups[label] = [
                record_run(
                    arm.runner(
                        config.replace(seed=seed), progress=False, **arm.train_kwargs
                    ),
                    label,
                    final_fraction,
                )  # fmt: skip
                for seed in seeds
            ]
            if verbose:
                seconds = time.perf_counter() - tick
                print(
                    f"{label}: {describe_runs(groups[label])}, {seconds:.0f} s in all"
                )
    return {label: groups[label] for label in arms}


def describe_population(result: PopulationResult, names: Sequence[str]) -> str:
    """'one population of 20 members (2 variants × 10 seeds), 60,000 steps each,
    7 s: a, b' for one population of `run_variants`."""
    seeds = len(result.members) // len(names)
    word = "variant" if len(names) == 1 else "variants"
    return (
        f"one population of {len(result.members)} members ({len(names)} {word} × "
        f"{seeds} seeds), {result.global_step:,} steps each, "
        f"{result.wall_seconds:.0f} s: {', '.join(names)}"
    )
