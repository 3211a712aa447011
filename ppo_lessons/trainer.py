"""Lesson 07 (`07_the_full_trainer.ipynb`): the full PPO trainer.

    from ppo_lessons.trainer import PPOConfig, train, evaluate

    result = train(PPOConfig(env_id="CartPole-v1", seed=1))
    evaluate(result.agent, "CartPole-v1", episodes=10)

The module reads top to bottom in the order a run happens, like CleanRL's `ppo.py`,
but every phase is a named, tested function built from the lessons' functions (one
implementation of each idea):

    Run, start_run(config)                           # the run's state (trainer_run)
    for update in 1..num_updates:
        anneal_learning_rate(run)                    # phase 0
        collect_rollout(run, buffer)                 # 1: T steps of N envs (lesson 07)
        metrics, returns = update_phase(run, ...)    # 2-3: GAE (04), PPO update (03-06)
        row = log_update(run, metrics, returns, ...) # 4: one host sync per update
    train(config)                                    # the loop above, with checkpoints
    evaluate(agent, env_id), load_agent(path)        # after training

Any exercise function the trainer calls can be the student's own:
`train(config, functions={"ppo_loss": my_ppo_loss, ...})`; the dict becomes the run's
one bundle, `ppo_lessons.functions.LessonFunctions`, which every phase reads.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.checkpoint import (
    load_checkpoint,
    require_writable,
    save_checkpoint,
)
from ppo_lessons.envs import (
    actions_to_env,
    check_spaces,
    make_vector_env,
    obs_to_tensor,
    resolve_device,
)
from ppo_lessons.functions import LessonFunctions
from ppo_lessons.history import LOSS_METRICS, HistoryRow, history_row
from ppo_lessons.memory import collect_sequences, recurrent_update
from ppo_lessons.memory import sequence_replay_error as replay_error_of_sequences
from ppo_lessons.networks import ActorCritic
from ppo_lessons.rollout import gae_from_buffer
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.trainer_display import LivePlot, Reporter, animate_episode
from ppo_lessons.trainer_run import (  # the run's state and its start
    SOLVED_WINDOW,
    Run,
    TrainResult,
    make_agent,
    make_buffer,
    make_envs,
    rollout_buffer,
    start_run,
    update_settings,
)
from ppo_lessons.update import Batch, UpdateSettings, ppo_update

__all__ = [
    "LivePlot",
    "PPOConfig",
    "Run",
    "TrainResult",
    "TrainingDiverged",
    "UpdatePhase",
    "animate_episode",
    "anneal_learning_rate",
    "check_finite",
    "check_spaces",
    "collect_rollout",
    "evaluate",
    "learning_rate_at",
    "load_agent",
    "log_update",
    "make_agent",
    "make_buffer",
    "make_envs",
    "note_solved",
    "resolve_device",
    "rollout_buffer",
    "start_run",
    "train",
    "update_phase",
    "update_settings",
]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; `history` holds the updates before it."""

    def __init__(self, message: str, history: list[HistoryRow]) -> None:
        super().__init__(message)
        self.history = history


# ---------------------------------------------------------------- phase 0: schedule


def anneal_learning_rate(run: Run) -> None:
    """Set the optimizer's learning rate to this update's `learning_rate_at`, when
    `anneal_lr`."""
    config = run.config
    if config.anneal_lr:
        run.optimizer.param_groups[0]["lr"] = learning_rate_at(
            config.learning_rate, True, run.update, config.num_updates
        )


def learning_rate_at(
    learning_rate: float | torch.Tensor,
    anneal: bool | torch.Tensor,
    update: int,
    num_updates: int,
) -> float | torch.Tensor:
    """The schedule: linear decay from learning_rate at the first update towards 0
    at the last (CleanRL; Huang et al., 2022) where `anneal`, else constant. With a
    member axis (a population), `learning_rate` and `anneal` are (K,) tensors."""
    frac = 1.0 - (update - 1.0) / num_updates
    if isinstance(anneal, torch.Tensor):
        return torch.where(anneal, frac * learning_rate, learning_rate)
    return frac * learning_rate if anneal else learning_rate


# ---------------------------------------------------------------- phase 1: rollout


def collect_rollout(run: Run, buffer: RolloutBuffer) -> None:
    """T steps of N envs into `buffer`, continuing from `run.obs`: the run's
    `collect_rollout(agent, envs, buffer, obs, generator)` (exercise 7.1; the
    reference is `ppo_lessons.rollout.collect_rollout`), or with a recurrent
    policy the rollout that also keeps its memory (`ppo_lessons.memory`)."""
    if run.memory is not None:
        run.obs = collect_sequences(
            run.agent, run.envs, buffer, run.obs, run.memory, run.generator
        )
    else:
        run.obs = run.functions.collect_rollout(
            run.agent, run.envs, buffer, run.obs, run.generator
        )
    run.global_step += buffer.num_steps * buffer.num_envs


# ---------------------------------------------------------------- phases 2-3: update


UpdatePhase = Callable[
    [Run, RolloutBuffer, UpdateSettings], tuple[dict[str, torch.Tensor], torch.Tensor]
]


def update_phase(
    run: Run, buffer: RolloutBuffer, settings: UpdateSettings
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """GAE over the rollout, then the PPO update: (metrics, returns). Before the
    update's first step, the ratio-is-one check: `replay_error` (lesson 11)."""
    config, fns, agent = run.config, run.functions, run.agent
    advantages, returns = gae_from_buffer(
        buffer, config.gamma, config.gae_lambda, fns.compute_gae
    )
    if run.memory is not None:  # whole sequences, replayed (ppo_lessons.memory)
        error = replay_error_of_sequences(agent, buffer)
        metrics = recurrent_update(
            agent, run.optimizer, buffer, advantages, returns, settings,
            run.generator, functions=fns,
        )  # fmt: skip
        return {**metrics, "replay_error": error}, returns
    batch = buffer.flatten(advantages, returns)
    error = replay_error(agent, batch)
    arguments = (agent, run.optimizer, batch, settings, run.generator)
    if fns.given("ppo_update"):  # Exercise 7.2's five arguments; it calls its own
        metrics = fns.ppo_update(*arguments)  # pieces by name (`compose`)
    else:  # the reference calls the run's pieces (loss, minibatches, KL, ratio)
        metrics = ppo_update(*arguments, functions=fns)
    return {**metrics, "replay_error": error}, returns


@torch.no_grad()
def replay_error(agent: ActorCritic, batch: Batch) -> torch.Tensor:
    """The ratio-is-one check: max |log π_θ(a|s) − log π stored by the rollout| over
    the batch, before any gradient step (a 0-d tensor, read with the metrics). ~1e-7
    when the update sees what the rollout saw; more when the stored log-probs are of
    other actions or observations (a rollout bug)."""
    new_log_probs = agent.log_prob(agent.policy(batch.obs), batch.actions)
    return (new_log_probs - batch.log_probs).abs().max()


# ---------------------------------------------------------------- phase 4: log


def log_update(
    run: Run,
    buffer: RolloutBuffer,
    metrics: Mapping[str, torch.Tensor],
    returns: torch.Tensor,
    started: float,
) -> HistoryRow:
    """One history row: the update's metrics as Python numbers (the one host sync).
    Steps per second are taken after the sync, so on a GPU they time the work, not
    the kernel launches; `started` is the update's `time.perf_counter()`."""
    ep_returns, ep_lengths = run.envs.episode_stats()
    run.recent_returns.extend(ep_returns.tolist())
    ev = run.functions.explained_variance(buffer.values.flatten(), returns.flatten())
    numbers = {key: float(value) for key, value in metrics.items()}
    numbers["explained_variance"] = float(ev)
    numbers["value_mean"] = float(buffer.values.mean())
    speed = buffer.num_steps * buffer.num_envs / (time.perf_counter() - started)
    lr = run.optimizer.param_groups[0]["lr"]
    return history_row(
        run.global_step, run.update, ep_returns, ep_lengths, numbers, lr, speed
    )


def check_finite(run: Run, row: HistoryRow, save_path: Path | None) -> None:
    """Stop with a clear message if a loss became NaN or infinite."""
    for key in LOSS_METRICS:
        if not math.isfinite(row[key]):
            where = (
                f"the last good checkpoint is kept at {save_path}"
                if save_path is not None and save_path.exists()
                else "no checkpoint was written"
            )
            raise TrainingDiverged(
                f"training stopped at update {row['update']} (step {row['step']}): "
                f"{key} is {row[key]}; {where}. Try a smaller learning_rate, "
                "max_grad_norm, or norm_obs/norm_reward.",
                run.history,
            )


class SolvedRecord(Protocol):
    """Who keeps a "solved" record: a `Run`, or a population's `Member`."""

    recent_returns: deque  # the last SOLVED_WINDOW episode returns
    first_step_solved: int | None
    seconds_to_solve: float | None


def note_solved(
    record: SolvedRecord, threshold: float | None, step: int, seconds: float
) -> None:
    """Record `step` as the first at which the mean of the last 20 returns reached
    the env's solved threshold (its spec's reward_threshold)."""
    if record.first_step_solved is not None or threshold is None:
        return
    recent = record.recent_returns
    if len(recent) == SOLVED_WINDOW and sum(recent) / SOLVED_WINDOW >= threshold:
        record.first_step_solved = step
        record.seconds_to_solve = seconds


# ---------------------------------------------------------------- the loop


def open_run(
    config: PPOConfig,
    resume_from: str | Path | None,
    functions: Mapping[str, Callable] | LessonFunctions | None = None,
) -> Run:
    """A fresh run, or the one saved in a checkpoint (its config, except that
    `total_steps` may be raised to train longer)."""
    if resume_from is None:
        return start_run(config, functions)
    checkpoint = load_checkpoint(resume_from)
    saved = PPOConfig.from_dict(checkpoint["config"])
    if saved.replace(total_steps=config.total_steps) != config:
        mine, theirs = config.to_dict(), saved.to_dict()
        changed = [k for k in mine if k != "total_steps" and theirs[k] != mine[k]]
        raise ValueError(
            f"the checkpoint {resume_from} was trained with a different config "
            f"({', '.join(f'{k}={theirs[k]!r}, not {mine[k]!r}' for k in changed)}); "
            "a resumed run keeps its config, except total_steps"
        )
    run = start_run(config, functions)
    run.load_state_dict(checkpoint)
    return run


def train(
    config: PPOConfig,
    *,
    functions: Mapping[str, Callable] | LessonFunctions | None = None,
    resume_from: str | Path | None = None,
    save_path: str | Path | None = None,
    checkpoint_every: int = 0,
    overwrite: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    callback: Callable[[HistoryRow, list[HistoryRow]], None] | None = None,
    tensorboard_dir: str | Path | None = None,
    update: UpdatePhase = update_phase,
) -> TrainResult:
    """Train a PPO agent as `config` says.

    Args:
        config: the hyperparameters (`PPOConfig`).
        functions: exercise functions to train with instead of the references, by
            exercise name ({"ppo_loss": my_ppo_loss, ...}; the valid names are
            `ppo_lessons.functions.TRAINER_EXERCISES`), or a `LessonFunctions`
            bundle; the run calls each one where the reference would be called.
        resume_from: a checkpoint to continue from, exactly where it stopped.
        save_path: checkpoint written at the end (and every `checkpoint_every`
            updates, atomically, so the last good one survives a crash or a NaN).
        overwrite: allow replacing a checkpoint written by a different run.
        stop_at_step: stop early once this many steps are done (the learning-rate
            schedule still follows `config.total_steps`, so a resume continues it).
        progress: show a progress bar.
        callback: called as callback(row, history) after every update (e.g. LivePlot).
        tensorboard_dir: also log every metric to TensorBoard there.
        update: phases 2-3 (`update_phase`: GAE, then the PPO update). The one
            phase hook, there for lesson 08's critic-first variant
            (`ppo_lessons.experiments.CriticFirstUpdate`, `train_critic_first`);
            the student's functions go in through `functions`, not here.

    Returns:
        TrainResult with the trained agent and the per-update history.
    """
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    run = open_run(config, resume_from, functions)
    save_path = Path(save_path) if save_path is not None else None
    if save_path is not None:
        require_writable(save_path, run.run_id, overwrite)
    settings = update_settings(config)
    buffer = make_buffer(run)
    spec = run.envs.envs.spec
    threshold = spec.reward_threshold if spec else None
    reporter = Reporter(
        config.total_steps, run.global_step, progress, tensorboard_dir, callback
    )
    start = time.perf_counter() - run.elapsed
    last_stop = min(config.total_steps, stop_at_step or config.total_steps)
    try:
        while run.update < config.num_updates and run.global_step < last_stop:
            run.update += 1
            tick = time.perf_counter()
            anneal_learning_rate(run)
            collect_rollout(run, buffer)
            metrics, returns = update(run, buffer, settings)
            row = log_update(run, buffer, metrics, returns, tick)
            check_finite(run, row, save_path)
            run.history.append(row)
            note_solved(run, threshold, run.global_step, time.perf_counter() - start)
            reporter.report(row, run.history)
            if save_path and checkpoint_every and run.update % checkpoint_every == 0:
                run.elapsed = time.perf_counter() - start
                save_checkpoint(save_path, run.state_dict())
        run.elapsed = time.perf_counter() - start
        if save_path is not None:
            save_checkpoint(save_path, run.state_dict())
    finally:
        reporter.close()
        run.envs.close()
    return TrainResult.from_run(run)


# ---------------------------------------------------------------- after training


@torch.no_grad()
def evaluate(
    agent: ActorCritic,
    env_id: str,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int = 10_000,
) -> np.ndarray:
    """Undiscounted returns of `episodes` episodes of `agent` (no learning, frozen
    observation statistics).

    Each of `episodes` envs plays exactly one episode, so short episodes are not
    over-represented. Returns a float array of shape [episodes].
    """
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    envs = make_vector_env(env_id, episodes)
    device = next(agent.parameters()).device
    was_training = agent.training
    agent.eval()
    obs, _ = envs.reset(seed=seed)
    totals = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    policy = agent.acting(deterministic)
    starts = torch.ones(episodes, dtype=torch.bool, device=device)
    while running.any():
        actions = policy(obs_to_tensor(obs, device), starts)
        step = envs.step(actions_to_env(actions, envs))
        obs, rewards, terminated, truncated, _ = step
        totals += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
        starts = torch.as_tensor(terminated | truncated, device=device)
    envs.close()
    agent.train(was_training)
    return totals


def load_agent(path: str | Path, device: str = "cpu") -> ActorCritic:
    """The trained agent saved in a checkpoint (with its frozen obs statistics)."""
    checkpoint = load_checkpoint(path)
    config = PPOConfig.from_dict(checkpoint["config"])
    envs = make_envs(config, num_envs=1)
    agent = make_agent(config, envs.single_observation_space, envs.single_action_space)
    envs.close()
    agent.load_state_dict(checkpoint["agent"])
    return agent.to(device)
