"""`train_population`: many PPO agents trained as one batched population.

    from ppo_lessons.population import train_population
    from ppo_lessons.presets import preset

    result = train_population(
        preset("CartPole-v1", env_backend="torch"),
        seeds=range(1, 33),
        variants={"preset": {}, "no adv norm": {"norm_adv": False}},
    )
    [(m.variant, m.seed, m.first_step_solved) for m in result.members]

The loop has `train`'s phases (lesson 07), each for all members at once:

    for update in 1..num_updates:
        lr = learning_rate_at(...)                 # phase 0: train's schedule, (K,)
        collect_rollout(net, envs, buffer, ...)    # 1: lesson 07's own rollout
        advantages, returns = member_gae(...)      # 2: GAE per member (lesson 04)
        population_update(...)                     # 3: ppo_update per member (03-06)
        log_members(...), note_solved(member, ...) # 4: train's row, per member

Each phase is the single agent's piece with a member axis (K,) added: the schedule,
`ppo_loss_terms`, the metrics record, `history_row`, `note_solved`, `RewardScaler`,
`rollout_buffer` are `train`'s own (tests/population/test_population_twins.py keeps it so).

A population of one is `train` with other random numbers: its initial weights are
exactly `train`'s (the same `ActorCritic` built after `torch.manual_seed(seed)`), but
its envs, actions and minibatch order come from its own counter-based stream
(`ppo_lessons.population.random`), not from `torch.Generator`s, so its run matches
`train`'s statistically (same solve rate and return distribution), not bit for bit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from ppo_lessons.doctor import Finding, diagnose
from ppo_lessons.envs import resolve_device, solved_threshold
from ppo_lessons.history import HistoryRow, history_row
from ppo_lessons.networks import ActorCritic
from ppo_lessons.population.envs import PopulationEnvs, make_population_env
from ppo_lessons.population.members import MemberSpec, member_specs
from ppo_lessons.population.network import PopulationActorCritic, PopulationAdam
from ppo_lessons.population.random import MemberStreams
from ppo_lessons.population.update import (
    MemberSettings,
    member_batch,
    member_explained_variance,
    member_gae,
    population_update,
)
from ppo_lessons.rollout import collect_rollout
from ppo_lessons.trainer import (
    SOLVED_WINDOW,
    learning_rate_at,
    make_agent,
    note_solved,
    rollout_buffer,
)
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.trainer_display import progress_bar

__all__ = ["Member", "PopulationResult", "train_population"]


@dataclass
class Member:
    """One trained member: its variant and seed, its agent and its history."""

    variant: str
    seed: int
    config: PPOConfig  # the population's config with the variant's overrides
    agent: ActorCritic  # an ordinary agent (on the CPU): evaluate, save, doctor
    history: list[HistoryRow] = field(default_factory=list)
    first_step_solved: int | None = None  # the member's own env steps
    seconds_to_solve: float | None = None  # the population's wall clock
    diagnosis: list[Finding] = field(default_factory=list)
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=SOLVED_WINDOW))


@dataclass
class PopulationResult:
    """What `train_population` returns."""

    members: list[Member]
    config: PPOConfig
    global_step: int  # env steps of each member
    wall_seconds: float

    @property
    def member_steps_per_second(self) -> float:
        """Env steps of all members together per wall second."""
        return len(self.members) * self.global_step / max(self.wall_seconds, 1e-9)

    @property
    def solved(self) -> int:
        """How many members reached the env's solved threshold while training."""
        return sum(m.first_step_solved is not None for m in self.members)


def build_members(
    specs: Sequence[MemberSpec], envs: gym.vector.VectorEnv
) -> list[Member]:
    """One `ActorCritic` per member, initialized as `train` would (its seed)."""
    members = []
    for spec in specs:
        torch.manual_seed(spec.seed)  # the member's initial weights, as in train
        agent = make_agent(  # with the member's log π and H functions
            spec.config, envs.single_observation_space, envs.single_action_space,
            functions=spec.functions,
        )  # fmt: skip
        members.append(Member(spec.variant, spec.seed, spec.config, agent))
    return members


def log_members(
    members: Sequence[Member],
    envs: PopulationEnvs,
    metrics: Mapping[str, torch.Tensor],
    lr: torch.Tensor,
    step: int,
    update: int,
    started: float,
    rollout_steps: int,
) -> None:
    """Phase 4, `ppo_lessons.trainer.log_update` with a member axis: one
    `history_row` per member from `metrics` (name -> (K,), one host transfer for
    all) and the episodes that ended. `steps_per_second` is each member's steps
    over the population's update time (from `started`, taken after the host
    transfer, so a GPU's work is timed)."""
    names = list(metrics)
    table = torch.stack([metrics[name] for name in names], dim=1).cpu().tolist()
    rates = lr.cpu().tolist()
    speed = rollout_steps / (time.perf_counter() - started)  # T·N of one member
    for member, (returns, lengths), row, rate in zip(
        members, envs.episode_stats(), table, rates, strict=True
    ):
        member.recent_returns.extend(returns.tolist())
        numbers = dict(zip(names, row, strict=True))
        member.history.append(
            history_row(step, update, returns, lengths, numbers, rate, speed)
        )


def finish_members(
    members: Sequence[Member], net: PopulationActorCritic, envs: PopulationEnvs
) -> None:
    """Copy the trained weights and observation statistics into each member's
    agent, and let the doctor read its history."""
    agents = [m.agent for m in members]
    net.to("cpu").copy_into(agents)
    for k, member in enumerate(members):
        if member.agent.obs_rms is not None:
            stats = envs.obs_statistics(k)
            member.agent.obs_rms.load_state_dict({n: t.cpu() for n, t in stats.items()})
        member.diagnosis = diagnose(
            member.history, reward_threshold=solved_threshold(member.config.env_id)
        )


def train_population(
    config: PPOConfig,
    seeds: Sequence[int],
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    progress: bool = True,
) -> PopulationResult:
    """Train every (variant, seed) pair of `config` as one batched population.

    Args:
        config: the shared settings (`PPOConfig`, env_backend='torch').
        seeds: the members' seeds, each once (member k's init, envs, actions and
            minibatch order depend on its seed alone, never on its neighbours).
        variants: name -> overrides of per-member fields
            (`ppo_lessons.population.PER_MEMBER_FIELDS`) and optionally
            `functions` (lesson functions to swap, as `train` takes them: a dict
            or a `LessonFunctions`, of the names in `POPULATION_FUNCTIONS`);
            None: one variant, "config". A variant overriding a shared field
            (shapes, env, device: `SHARED_FIELDS`) is refused, naming the field.
        progress: show a progress bar (member steps, and members solved).

    Returns:
        `PopulationResult`: members in the order variant by variant, seed by seed.
    """
    specs = member_specs(config, seeds, variants)  # every check before any work
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    device = resolve_device(config.device)
    streams = MemberStreams([s.seed for s in specs], device)
    env = make_population_env(config.env_id, config.num_envs, streams)
    members = build_members(specs, env)
    return run_population(config, members, specs, env, streams, progress)


def run_population(
    config: PPOConfig,
    members: list[Member],
    specs: Sequence[MemberSpec],
    env: gym.vector.VectorEnv,
    streams: MemberStreams,
    progress: bool,
) -> PopulationResult:
    """The training loop of `train_population` (its phases in the module docstring)."""
    K, T, N = len(members), config.num_steps, config.num_envs
    device = streams.device
    settings = MemberSettings.from_specs(specs, device)
    agents = [m.agent for m in members]
    net = PopulationActorCritic(agents, N, config.activation)
    if any(s.functions.given("actor_critic_networks") for s in specs):
        net.check_same_as(agents, [s.variant for s in specs])
    net = net.to(device)
    adam = PopulationAdam(net, settings.adam_eps)
    envs = PopulationEnvs(
        env, K, settings.norm_obs, settings.norm_reward, settings.gamma
    )
    observation_space = env.single_observation_space
    buffer = rollout_buffer(config, observation_space, net, device, members=K)
    threshold = env.spec.reward_threshold if env.spec else None
    bar = progress_bar(K * config.total_steps, 0, progress)
    obs, start, step = envs.reset(), time.perf_counter(), 0
    try:
        for update in range(1, config.num_updates + 1):
            tick = time.perf_counter()
            lr = learning_rate_at(
                settings.learning_rate, settings.anneal_lr, update, config.num_updates
            )
            obs = collect_rollout(net, envs, buffer, obs, streams)
            step += T * N
            advantages, returns = member_gae(buffer, settings, N)
            batch = member_batch(buffer, advantages, returns, K)
            metrics = population_update(net, adam, batch, settings, streams, lr)
            metrics["explained_variance"] = member_explained_variance(batch, settings)
            metrics["value_mean"] = batch.values.mean(dim=1)  # (K,) the mean V
            log_members(members, envs, metrics, lr, step, update, tick, T * N)
            seconds = time.perf_counter() - start
            for member in members:
                note_solved(member, threshold, step, seconds)
            solved = sum(m.first_step_solved is not None for m in members)
            bar.update(K * T * N)
            bar.set_postfix(solved=f"{solved}/{K}", refresh=False)
        wall = time.perf_counter() - start
    finally:
        bar.close()
        envs.close()
    finish_members(members, net, envs)
    return PopulationResult(members, config, step, wall)
