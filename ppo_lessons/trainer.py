"""Lesson 07 (`07_the_full_trainer.ipynb`): the full PPO trainer.

    from ppo_lessons.trainer import PPOConfig, train, evaluate

    result = train(PPOConfig(env_id="CartPole-v1", seed=1))
    evaluate(result.agent, "CartPole-v1", episodes=10)

`train` reads like CleanRL's `ppo.py`, but each phase is a named, tested function built
from the lessons' functions (one implementation of each idea):

    for update in 1..num_updates:
        collect_rollout(run, buffer)                 # T steps of N envs (lesson 07)
        advantages, returns = compute_gae(...)       # lesson 04
        metrics = ppo_update(agent, optimizer, ...)  # lessons 03, 05, 06
        row = log_update(...)                        # one host sync per update

The student's own `compute_gae`, `objective` (the clipped surrogate) and `value_loss`
can be passed to `train` in place of the references.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.checkpoint import (
    load_checkpoint,
    new_run_id,
    require_writable,
    restore_run_state,
    run_state,
    save_checkpoint,
)
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.doctor import Finding, diagnose
from ppo_lessons.envs import assert_autoreset_mode, final_observations, make_vector_env
from ppo_lessons.gae import compute_gae as reference_compute_gae
from ppo_lessons.losses import value_loss as reference_value_loss
from ppo_lessons.networks import ActorCritic
from ppo_lessons.normalize import RewardScaler
from ppo_lessons.torch_envs import TorchVectorEnv, make_torch_vector_env
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.trainer_display import LivePlot, animate_episode, progress_bar
from ppo_lessons.update import (
    UpdateSettings,
    explained_variance,
    flatten_parameters,
    ppo_update,
)

__all__ = [
    "LivePlot",
    "PPOConfig",
    "Run",
    "TrainResult",
    "TrainingDiverged",
    "animate_episode",
    "check_spaces",
    "collect_rollout",
    "evaluate",
    "load_agent",
    "make_agent",
    "make_envs",
    "resolve_device",
    "train",
    "update_settings",
]

SOLVED_WINDOW = 20  # episodes averaged to decide "solved" (the summary's definition)
LOSS_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; `history` holds the updates before it."""

    def __init__(self, message: str, history: list[dict]) -> None:
        super().__init__(message)
        self.history = history


@dataclass
class TrainResult:
    """What `train` returns: the agent and the full metric history."""

    agent: ActorCritic
    history: list[dict]
    config: PPOConfig
    global_step: int
    wall_seconds: float
    first_step_solved: int | None
    seconds_to_solve: float | None
    diagnosis: list[Finding] = field(default_factory=list)  # `diagnose(history)`


# ---------------------------------------------------------------- envs and spaces


def make_envs(config: PPOConfig, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The vector env of a run (the one place the env backend is chosen): Gymnasium's
    vector env, or with `env_backend="torch"` the batched tensor env on the run's
    device (`ppo_lessons.torch_envs`), whose inputs and outputs are tensors."""
    N = num_envs or config.num_envs
    if config.env_backend == "torch":
        device = resolve_device(config.device)
        return make_torch_vector_env(config.env_id, N, seed=config.seed, device=device)
    return make_vector_env(config.env_id, N, asynchronous=config.async_envs)


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """Reject spaces the trainer does not support, saying what is supported."""
    obs_ok = isinstance(observation_space, gym.spaces.Box) and (
        len(observation_space.shape) == 1
    )
    if not obs_ok:
        raise ValueError(
            f"unsupported observation space {observation_space}: the trainer supports "
            "1-D Box observations, e.g. Box(-inf, inf, (4,), float32)"
        )
    if isinstance(action_space, gym.spaces.Discrete) and action_space.start == 0:
        return
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return
    raise ValueError(
        f"unsupported action space {action_space}: the trainer supports Discrete(n) "
        "(starting at 0) and 1-D Box actions"
    )


def to_device(
    values: Any, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """`values` (a NumPy array or a tensor) as a tensor on `device`. A tensor that is
    already there with the right dtype comes back as it is (no op launched: the
    batched envs' outputs cost nothing here)."""
    if (
        isinstance(values, torch.Tensor)
        and values.device == device
        and (dtype is None or values.dtype == dtype)
    ):
        return values
    return torch.as_tensor(values, dtype=dtype).to(device, non_blocking=True)


def obs_to_tensor(obs: Any, device: torch.device) -> torch.Tensor:
    """Env observations [N, *O] as a float32 tensor on `device` (the one conversion
    point: a NumPy array from Gymnasium, or a tensor from an on-device env)."""
    return to_device(obs, device, torch.float32)


def actions_to_env(actions: torch.Tensor, envs: gym.Env | gym.vector.VectorEnv) -> Any:
    """Policy actions as the env wants them. Box actions are clipped to the bounds
    here and only here: the buffer keeps the sampled action and its log-prob. A
    batched tensor env takes the tensor as it is (it clips Box actions itself, as
    Gymnasium's envs do), so nothing leaves the device."""
    if isinstance(envs, TorchVectorEnv):
        return actions
    action_space = getattr(envs, "single_action_space", envs.action_space)
    actions = actions.cpu().numpy()
    if isinstance(action_space, gym.spaces.Box):
        return np.clip(actions, action_space.low, action_space.high).astype(
            action_space.dtype
        )
    return actions


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without CUDA is an error.
    A CUDA device always carries its index ('cuda' -> 'cuda:0'), so it compares
    equal to the device of the tensors made on it."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'cpu'")
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def make_agent(
    config: PPOConfig, observation_space: gym.Space, action_space: gym.Space
) -> ActorCritic:
    """The actor-critic for these spaces, built as `config` says."""
    check_spaces(observation_space, action_space)
    discrete = isinstance(action_space, gym.spaces.Discrete)
    return ActorCritic(
        obs_dim=observation_space.shape[0],
        action_dim=int(action_space.n) if discrete else action_space.shape[0],
        discrete=discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        shared=config.shared_network,
        ortho_init=config.ortho_init,
        init_log_std=config.init_log_std,
        norm_obs=config.norm_obs,
        squash_to=squash_bounds(config, action_space),
    )


def squash_bounds(
    config: PPOConfig, action_space: gym.Space
) -> tuple[np.ndarray, np.ndarray] | None:
    """The Box bounds the policy squashes into, when `config.squash_actions`."""
    if not config.squash_actions or isinstance(action_space, gym.spaces.Discrete):
        if config.squash_actions:
            raise ValueError(
                "PPOConfig.squash_actions = True needs a Box action space, got "
                f"{action_space}; set squash_actions=False"
            )
        return None
    low, high = action_space.low, action_space.high
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(
            f"PPOConfig.squash_actions = True needs finite action bounds, got "
            f"{action_space}; set squash_actions=False"
        )
    return low, high


# ---------------------------------------------------------------- the run's state


@dataclass
class Run:
    """Everything that changes during training (and goes into a checkpoint)."""

    config: PPOConfig
    envs: gym.vector.VectorEnv
    agent: ActorCritic
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # action sampling and minibatch order
    device: torch.device
    next_obs: torch.Tensor  # (N, *O) raw observations the next step starts from
    episode_return: torch.Tensor  # (N,) undiscounted return of the current episodes
    episode_length: torch.Tensor  # (N,)
    reward_scaler: RewardScaler | None
    run_id: str
    global_step: int = 0
    update: int = 0
    elapsed: float = 0.0  # wall seconds of training before this session
    history: list[dict] = field(default_factory=list)
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=SOLVED_WINDOW))
    first_step_solved: int | None = None
    seconds_to_solve: float | None = None


def start_run(config: PPOConfig) -> Run:
    """A fresh run: seeded networks, optimizer, envs reset with `config.seed`."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # the networks' initial weights
    envs = make_envs(config)
    agent = make_agent(config, envs.single_observation_space, envs.single_action_space)
    agent.to(device)
    optimizer = torch.optim.Adam(
        [flatten_parameters(agent)],  # one tensor: one Adam step, one clipping norm
        lr=config.learning_rate,
        eps=config.adam_eps,
        fused=True,  # one kernel for all parameters: ~3x faster steps for small MLPs
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    N = config.num_envs
    scaler = RewardScaler(N, config.gamma).to(device) if config.norm_reward else None
    run = Run(
        config=config,
        envs=envs,
        agent=agent,
        optimizer=optimizer,
        generator=generator,
        device=device,
        next_obs=obs_to_tensor(obs, device),
        episode_return=torch.zeros(N, device=device),
        episode_length=torch.zeros(N, device=device),
        reward_scaler=scaler,
        run_id=new_run_id(),
    )
    if agent.obs_rms is not None:
        agent.obs_rms.update(run.next_obs)
    return run


# ---------------------------------------------------------------- phase 1: rollout


@torch.inference_mode()
def collect_rollout(run: Run, buffer: RolloutBuffer) -> None:
    """Step the envs `num_steps` times with the current policy, filling `buffer`.

    Observation statistics are updated here (and only here). `next_values[t]` is
    V(s_{t+1}) of the observation each env actually reached at step t: where an
    episode ended, its true final observation (SAME_STEP autoreset puts it in
    info["final_obs"]), so a truncation bootstraps (Pardo et al., 2018). Acting needs
    only the policy: the observations and the reached observations are stored and
    valued in one batch after the loop (the network does not change during a
    rollout), so no step needs to ask the host whether an episode ended, and with a
    batched tensor env the whole rollout stays on the device.
    """
    agent, envs = run.agent, run.envs
    assert_autoreset_mode(envs)
    for t in range(buffer.num_steps):
        obs = agent.normalize(run.next_obs)  # (N, *O)
        actions, log_probs = agent.sample(agent.policy(obs), run.generator)
        buffer.obs[t], buffer.actions[t], buffer.log_probs[t] = obs, actions, log_probs
        next_obs, rewards, terminated, truncated, info = envs.step(
            actions_to_env(agent.to_env(actions), envs)
        )
        run.next_obs = obs_to_tensor(next_obs, run.device)
        if agent.obs_rms is not None:
            agent.obs_rms.update(run.next_obs)  # what the policy sees (as SB3)
        reached = obs_to_tensor(
            final_observations(next_obs, terminated, truncated, info), run.device
        )  # (N, *O) the observation step t led to
        buffer.reached_obs[t] = agent.normalize(reached)
        record_step(run, buffer, t, rewards, terminated, truncated)
        run.global_step += envs.num_envs
    # the critic is not needed to act: value every s_t and s_{t+1} in one batch
    T, N = buffer.num_steps, buffer.num_envs
    both = torch.cat([buffer.obs, buffer.reached_obs])  # (2T, N, *O)
    values = agent.value(both.reshape(2 * T * N, *both.shape[2:])).reshape(2, T, N)
    buffer.values.copy_(values[0])
    buffer.next_values.copy_(values[1])


def record_step(
    run: Run,
    buffer: RolloutBuffer,
    t: int,
    rewards: Any,
    terminated: Any,
    truncated: Any,
) -> None:
    """Store row t's rewards and episode ends; track episodic returns and lengths."""
    device = run.device
    rewards = to_device(rewards, device, torch.float32)
    terminated = to_device(terminated, device)
    truncated = to_device(truncated, device)
    buffer.terminated[t], buffer.truncated[t] = terminated, truncated
    done = terminated | truncated
    run.episode_return += rewards
    run.episode_length += 1
    buffer.episode_returns[t] = torch.where(done, run.episode_return, 0.0)
    buffer.episode_lengths[t] = torch.where(done, run.episode_length, 0.0)
    run.episode_return.masked_fill_(done, 0.0)
    run.episode_length.masked_fill_(done, 0.0)
    if run.reward_scaler is not None:
        rewards = run.reward_scaler.scale(rewards, done)
    buffer.rewards[t] = rewards


# ---------------------------------------------------------------- phase 4: log


def log_update(
    run: Run, buffer: RolloutBuffer, metrics: dict, returns: torch.Tensor, sps: float
) -> dict:
    """One history row: the update's metrics as Python numbers (the one host sync)."""
    ep_returns, ep_lengths = buffer.episode_stats()
    run.recent_returns.extend(ep_returns.tolist())
    ev = explained_variance(buffer.values.flatten(), returns.flatten())
    row = {
        "step": run.global_step,
        "update": run.update,
        "episodic_return": float(ep_returns.mean()) if len(ep_returns) else math.nan,
        "episodic_length": float(ep_lengths.mean()) if len(ep_lengths) else math.nan,
        "episodes": len(ep_returns),
        **{key: float(value) for key, value in metrics.items()},
        "explained_variance": float(ev),
        "learning_rate": run.optimizer.param_groups[0]["lr"],
        "steps_per_second": sps,
    }
    row["epochs"] = int(row["epochs"])
    return row


def check_finite(run: Run, row: dict, save_path: Path | None) -> None:
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


def note_solved(run: Run, threshold: float | None, seconds: float) -> None:
    """Record the first step at which the mean of the last 20 returns reached the
    env's solved threshold (its spec's reward_threshold)."""
    if run.first_step_solved is not None or threshold is None:
        return
    recent = run.recent_returns
    if len(recent) == SOLVED_WINDOW and sum(recent) / SOLVED_WINDOW >= threshold:
        run.first_step_solved = run.global_step
        run.seconds_to_solve = seconds


# ---------------------------------------------------------------- the loop


def update_settings(config: PPOConfig) -> UpdateSettings:
    return UpdateSettings(
        update_epochs=config.update_epochs,
        minibatch_size=config.minibatch_size,
        clip_coef=config.clip_coef,
        clip_vloss=config.clip_vloss,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        norm_adv=config.norm_adv,
        target_kl=config.target_kl,
        kl_estimator=config.kl_estimator,
    )


def make_buffer(run: Run) -> RolloutBuffer:
    agent, config = run.agent, run.config
    action_shape = () if agent.discrete else (agent.action_dim,)
    return RolloutBuffer(
        config.num_steps,
        config.num_envs,
        tuple(run.envs.single_observation_space.shape),
        action_shape,
        agent.discrete,
        run.device,
    )


def open_run(
    config: PPOConfig, resume_from: str | Path | None
) -> tuple[Run, PPOConfig]:
    """A fresh run, or the one saved in a checkpoint (its config, except that
    `total_steps` may be raised to train longer)."""
    if resume_from is None:
        return start_run(config), config
    checkpoint = load_checkpoint(resume_from)
    saved = PPOConfig.from_dict(checkpoint["config"])
    if saved.replace(total_steps=config.total_steps) != config:
        changed = [
            k
            for k, v in config.to_dict().items()
            if k != "total_steps" and saved.to_dict()[k] != v
        ]
        raise ValueError(
            f"the checkpoint {resume_from} was trained with a different config "
            f"(fields {', '.join(changed)} differ); resume with its config, "
            "PPOConfig.from_dict(load_checkpoint(path)['config'])"
        )
    run = start_run(config)
    restore_run_state(run, checkpoint)
    return run, config


def train(
    config: PPOConfig,
    *,
    compute_gae: Callable = reference_compute_gae,
    objective: Callable = clipped_surrogate_objective,
    value_loss: Callable = reference_value_loss,
    resume_from: str | Path | None = None,
    save_path: str | Path | None = None,
    checkpoint_every: int = 0,
    overwrite: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    callback: Callable[[dict, list[dict]], None] | None = None,
    tensorboard_dir: str | Path | None = None,
) -> TrainResult:
    """Train a PPO agent as `config` says.

    Args:
        config: the hyperparameters (`PPOConfig`).
        compute_gae, objective, value_loss: the lesson functions the trainer uses,
            with the contracts' signatures; pass your own to train with your code.
        resume_from: a checkpoint to continue from, exactly where it stopped.
        save_path: checkpoint written at the end (and every `checkpoint_every`
            updates, atomically, so the last good one survives a crash or a NaN).
        overwrite: allow replacing a checkpoint written by a different run.
        stop_at_step: stop early once this many steps are done (the learning-rate
            schedule still follows `config.total_steps`, so a resume continues it).
        progress: show a tqdm progress bar.
        callback: called as callback(row, history) after every update (e.g. LivePlot).
        tensorboard_dir: also log every metric to TensorBoard there.

    Returns:
        TrainResult with the trained agent and the per-update history.
    """
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    run, config = open_run(config, resume_from)
    save_path = Path(save_path) if save_path is not None else None
    if save_path is not None:
        require_writable(save_path, run.run_id, overwrite)
    settings = update_settings(config)
    buffer = make_buffer(run)
    threshold = run.envs.spec.reward_threshold if run.envs.spec else None
    reporter = Reporter(config, run.global_step, progress, tensorboard_dir, callback)
    start = time.perf_counter() - run.elapsed
    last_stop = min(config.total_steps, stop_at_step or config.total_steps)
    try:
        while run.update < config.num_updates and run.global_step < last_stop:
            run.update += 1
            tick = time.perf_counter()
            anneal_learning_rate(run)
            collect_rollout(run, buffer)
            advantages, returns = compute_gae(
                buffer.rewards,
                buffer.values,
                buffer.next_values,
                buffer.terminated,
                buffer.truncated,
                config.gamma,
                config.gae_lambda,
            )
            batch = buffer.flatten(advantages, returns)
            metrics = ppo_update(
                run.agent, run.optimizer, batch, settings, run.generator, objective,
                value_loss,
            )  # fmt: skip
            sps = config.batch_size / (time.perf_counter() - tick)
            row = log_update(run, buffer, metrics, returns, sps)
            check_finite(run, row, save_path)
            run.history.append(row)
            note_solved(run, threshold, time.perf_counter() - start)
            reporter.report(row, run.history)
            if save_path and checkpoint_every and run.update % checkpoint_every == 0:
                run.elapsed = time.perf_counter() - start
                save_checkpoint(save_path, run_state(run))
        run.elapsed = time.perf_counter() - start
        if save_path is not None:
            save_checkpoint(save_path, run_state(run))
    finally:
        reporter.close()
        run.envs.close()
    return TrainResult(
        agent=run.agent,
        history=run.history,
        config=config,
        global_step=run.global_step,
        wall_seconds=run.elapsed,
        first_step_solved=run.first_step_solved,
        seconds_to_solve=run.seconds_to_solve,
        diagnosis=diagnose(run.history),
    )


class Reporter:
    """Progress bar, TensorBoard and the user's callback (e.g. a live plot)."""

    def __init__(
        self,
        config: PPOConfig,
        initial_step: int,
        progress: bool,
        tensorboard_dir: str | Path | None,
        callback: Callable[[dict, list[dict]], None] | None,
    ) -> None:
        self.bar = progress_bar(config.total_steps, initial_step, progress)
        self.callback = callback
        self.writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # optional

            self.writer = SummaryWriter(str(tensorboard_dir))

    def report(self, row: dict, history: list[dict]) -> None:
        self.bar.update(row["step"] - self.bar.n)
        if not math.isnan(row["episodic_return"]):
            self.bar.set_postfix(ret=f"{row['episodic_return']:.1f}", refresh=False)
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("step", "update"):
                    self.writer.add_scalar(f"ppo/{key}", value, row["step"])
        if self.callback is not None:
            self.callback(row, history)

    def close(self) -> None:
        finish = getattr(self.callback, "finish", None)
        if callable(finish):
            finish()
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def anneal_learning_rate(run: Run) -> None:
    """Linear decay from learning_rate at the first update towards 0 at the last
    (CleanRL; Huang et al., 2022), when `anneal_lr`."""
    config = run.config
    if config.anneal_lr:
        frac = 1.0 - (run.update - 1.0) / config.num_updates
        run.optimizer.param_groups[0]["lr"] = frac * config.learning_rate


# ---------------------------------------------------------------- evaluation


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
    while running.any():
        actions = agent.act(obs_to_tensor(obs, device), deterministic)
        step = envs.step(actions_to_env(actions, envs))
        obs, rewards, terminated, truncated, _ = step
        totals += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
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
