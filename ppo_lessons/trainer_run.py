"""Lesson 07 (`07_the_full_trainer.ipynb`): the trainer's run and how a run starts.

    run = start_run(PPOConfig(env_id="CartPole-v1", seed=1))
    buffer = make_buffer(run)

`Run` holds everything that changes during training (and goes into a checkpoint);
`start_run` makes a fresh one: seeded networks (`make_agent`), optimizer, envs
(`make_envs`) reset with the config's seed. `TrainResult` is what `train` returns.
The phases that step a run, and the loop, are in `ppo_lessons.trainer`, which
re-exports every name here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.checkpoint import (
    FORMAT,
    env_state,
    flat_optimizer_state,
    new_run_id,
    restore_env_state,
)
from ppo_lessons.doctor import Finding, diagnose
from ppo_lessons.envs import (
    RolloutEnvs,
    check_spaces,
    resolve_device,
    solved_threshold,
)
from ppo_lessons.functions import LessonFunctions, trainer_functions
from ppo_lessons.history import HistoryRow
from ppo_lessons.memory import (
    FEED_FORWARD_ONLY,
    FrameStackActorCritic,
    Memory,
    RecurrentActorCritic,
    SequenceBuffer,
)
from ppo_lessons.networks import ActorCritic
from ppo_lessons.normalize import RewardScaler
from ppo_lessons.speed import FlatAdam
from ppo_lessons.torch_envs import make_training_envs
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.update import UpdateSettings

__all__ = [
    "SOLVED_WINDOW",
    "Run",
    "TrainResult",
    "make_agent",
    "make_buffer",
    "make_envs",
    "rollout_buffer",
    "squash_bounds",
    "start_run",
    "update_settings",
]

SOLVED_WINDOW = 20  # episodes averaged to decide "solved" (the summary's definition)


# ---------------------------------------------------------------- the run's state


@dataclass
class Run:
    """Everything that changes during training (and goes into a checkpoint)."""

    config: PPOConfig
    envs: RolloutEnvs  # the vector env, tensors in and out (ppo_lessons.envs)
    agent: ActorCritic
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # action sampling and minibatch order
    device: torch.device
    obs: torch.Tensor  # (N, *O) normalized observations the next step starts from
    functions: LessonFunctions  # the lesson functions this run calls (one bundle)
    run_id: str
    memory: Memory | None = None  # a recurrent policy's state between rollouts
    global_step: int = 0
    update: int = 0
    elapsed: float = 0.0  # wall seconds of training before this session
    history: list[HistoryRow] = field(default_factory=list)
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=SOLVED_WINDOW))
    first_step_solved: int | None = None
    seconds_to_solve: float | None = None

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as tensors and plain values (a checkpoint)."""
        scaler = self.envs.reward_scaler
        return {
            "format": FORMAT,
            "run_id": self.run_id,
            "config": self.config.to_dict(),
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "reward_scaler": None if scaler is None else scaler.state_dict(),
            "envs": env_state(self.envs.envs),
            "next_obs": self.envs.raw_obs,  # raw: normalized again on resume
            "episode_return": self.envs.episodes.returns,
            "episode_length": self.envs.episodes.lengths,
            "memory": None if self.memory is None else vars(self.memory).copy(),
            "global_step": self.global_step,
            "update": self.update,
            "elapsed": self.elapsed,
            "history": self.history,
            "recent_returns": list(self.recent_returns),
            "first_step_solved": self.first_step_solved,
            "seconds_to_solve": self.seconds_to_solve,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put this freshly started run into the saved `state`."""
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(flat_optimizer_state(state["optimizer"]))
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.envs.reward_scaler is not None:
            self.envs.reward_scaler.load_state_dict(state["reward_scaler"])
        if state["envs"] is not None:  # else (async envs): fresh episodes
            restore_env_state(self.envs.envs, state["envs"])
            self.envs.raw_obs = state["next_obs"].to(self.device)
            self.envs.episodes.returns = state["episode_return"].to(self.device)
            self.envs.episodes.lengths = state["episode_length"].to(self.device)
            if self.memory is not None:
                saved = state["memory"]
                self.memory = Memory(
                    saved["hidden"].to(self.device), saved["starts"].to(self.device)
                )
        self.obs = self.agent.normalize(self.envs.raw_obs)  # the saved statistics
        self.run_id = state["run_id"]
        self.global_step, self.update = state["global_step"], state["update"]
        self.elapsed = state["elapsed"]
        self.history = list(state["history"])
        self.recent_returns = deque(state["recent_returns"], maxlen=SOLVED_WINDOW)
        self.first_step_solved = state["first_step_solved"]
        self.seconds_to_solve = state["seconds_to_solve"]


@dataclass
class TrainResult:
    """What `train` returns: the agent and the full metric history."""

    agent: ActorCritic
    history: list[HistoryRow]
    config: PPOConfig
    global_step: int
    wall_seconds: float
    first_step_solved: int | None
    seconds_to_solve: float | None
    # `diagnose(history, reward_threshold=solved_threshold(env_id))`
    diagnosis: list[Finding] = field(default_factory=list)
    # {exercise name: calls during the run} for each function given to `train`
    function_calls: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: Run) -> TrainResult:
        return cls(
            agent=run.agent,
            history=run.history,
            config=run.config,
            global_step=run.global_step,
            wall_seconds=run.elapsed,
            first_step_solved=run.first_step_solved,
            seconds_to_solve=run.seconds_to_solve,
            diagnosis=diagnose(
                run.history, reward_threshold=solved_threshold(run.config.env_id)
            ),
            function_calls=run.functions.calls(),
        )


def start_run(
    config: PPOConfig,
    functions: Mapping[str, Callable] | LessonFunctions | None = None,
) -> Run:
    """A fresh run: seeded networks, optimizer, envs reset with `config.seed`;
    `functions` as `train` takes them (a dict becomes the run's bundle here)."""
    fns = trainer_functions(functions)
    if config.recurrent != "none" or config.frame_stack > 1:
        feed_forward = [n for n in FEED_FORWARD_ONLY if fns.given(n)]
        if feed_forward:
            raise ValueError(
                f"functions {', '.join(feed_forward)} (exercises 7.1, 7.2) are "
                "feed-forward; a policy with memory (recurrent or frame_stack) uses "
                "ppo_lessons.memory's rollout and update: leave them out (the names "
                "in ppo_lessons.memory.FEED_FORWARD_ONLY) and give replay_sequence, "
                "the loss and its pieces"
            )
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # the networks' initial weights
    envs = make_envs(config)
    agent = make_agent(
        config,
        envs.single_observation_space,
        envs.single_action_space,
        functions=fns,
    )
    agent.to(device)
    optimizer = FlatAdam(  # one flat tensor: one Adam step, one clipping norm
        agent,
        lr=config.learning_rate,
        eps=config.adam_eps,
        fused=True,  # one kernel for all parameters: ~3x faster steps for small MLPs
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    N = config.num_envs
    scaler = RewardScaler(N, config.gamma).to(device) if config.norm_reward else None
    rollout_envs = RolloutEnvs(envs, agent, device, scaler)
    obs = rollout_envs.reset(seed=config.seed)
    recurrent = isinstance(agent, RecurrentActorCritic)
    return Run(
        config=config,
        envs=rollout_envs,
        agent=agent,
        optimizer=optimizer,
        generator=generator,
        device=device,
        obs=obs,
        functions=fns,
        run_id=new_run_id(),
        memory=Memory.fresh(agent, N) if recurrent else None,
    )


def make_envs(config: PPOConfig, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The vector env of a run: Gymnasium's, or the batched tensor env on the run's
    device with `env_backend="torch"` (`ppo_lessons.torch_envs.make_training_envs`)."""
    return make_training_envs(
        config.env_id,
        num_envs or config.num_envs,
        config.env_backend,
        config.device,
        config.seed,
        config.async_envs,
    )


def make_agent(
    config: PPOConfig,
    observation_space: gym.Space,
    action_space: gym.Space,
    functions: LessonFunctions | None = None,
) -> ActorCritic:
    """The actor-critic for these spaces, built as `config` says, with the run's
    lesson functions (default: the references): its separate actor and critic come
    from `functions.actor_critic_networks` (Exercise 5.3), its log π and H from
    `gaussian_log_prob` and `categorical_entropy` (5.1, 5.2). With
    `config.recurrent = "gru"` a `RecurrentActorCritic` (lesson 11) whose update
    replays with `functions.replay_sequence` (Exercise 11.1)."""
    functions = LessonFunctions() if functions is None else functions
    check_spaces(observation_space, action_space)
    discrete = isinstance(action_space, gym.spaces.Discrete)
    common = dict(
        obs_dim=observation_space.shape[0],
        action_dim=int(action_space.n) if discrete else action_space.shape[0],
        discrete=discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        ortho_init=config.ortho_init,
        init_log_std=config.init_log_std,
        init_value=config.init_value,
        norm_obs=config.norm_obs,
        squash_to=squash_bounds(config, action_space),
        networks=functions.actor_critic_networks,
    )
    heads = dict(
        gaussian_log_prob=functions.gaussian_log_prob,
        categorical_entropy=functions.categorical_entropy,
    )
    if config.recurrent == "gru" or config.frame_stack > 1:
        memory = dict(**common, **heads, replay_fn=functions.replay_sequence)
        if config.recurrent == "gru":
            return RecurrentActorCritic(**memory)
        return FrameStackActorCritic(frames=config.frame_stack, **memory)
    return ActorCritic(shared=config.shared_network, **common, **heads)


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


def make_buffer(run: Run) -> RolloutBuffer:
    """The run's T x N rollout storage, on its device."""
    observation_space = run.envs.envs.single_observation_space
    return rollout_buffer(run.config, observation_space, run.agent, run.device)


def rollout_buffer(
    config: PPOConfig,
    observation_space: gym.Space,
    agent: Any,
    device: torch.device,
    members: int = 1,
) -> RolloutBuffer:
    """T x (members · N) storage for the actions of `agent` (an `ActorCritic`, or a
    population's batched network with its `members`; rows ordered (member, env))."""
    action_shape = () if agent.discrete else (agent.action_dim,)
    shapes = (
        config.num_steps,
        members * config.num_envs,
        tuple(observation_space.shape),
        action_shape,
        agent.discrete,
        device,
    )
    if isinstance(agent, RecurrentActorCritic):  # plus what a replay needs
        return SequenceBuffer(*shapes, hidden_size=agent.hidden_size)
    return RolloutBuffer(*shapes)


def update_settings(config: PPOConfig) -> UpdateSettings:
    """The update's hyperparameters (`UpdateSettings.from_config`)."""
    return UpdateSettings.from_config(config)
