"""Tuned settings for the classic-control, Box2D and MuJoCo tasks, with their sources.

    from ppo_lessons.presets import preset
    config = preset("Pendulum-v1", seed=3)

Translated from rl-baselines3-zoo's `hyperparams/ppo.yml` (Raffin, 2020; SB3 names:
n_envs -> num_envs, n_steps -> num_steps, n_epochs -> update_epochs, batch_size ->
num_minibatches = n_envs * n_steps / batch_size, normalize -> norm_obs + norm_reward,
a `lin_` learning rate -> anneal_lr). The zoo's Pendulum and MountainCarContinuous
entries use gSDE, which this trainer does not have; their presets keep the other
settings and a plain Gaussian policy, so they may need more steps than the zoo's.

Beyond classic control (these need an extra: `pip install -e ".[box2d]"` for
LunarLander, `".[mujoco]"` for the MuJoCo tasks; `missing_extra(env_id)` says which):

- LunarLander-v3 and LunarLanderContinuous-v3: the zoo's LunarLander-v2 and
  LunarLanderContinuous-v2 entries (Gymnasium 1.0's v3 fixes bugs of v2; the task is
  the same).
- HalfCheetah-v5, Hopper-v5, Walker2d-v5, Ant-v5: CleanRL's `ppo_continuous_action.py`
  defaults (Huang et al., 2022, "The 37 Implementation Details of PPO", the nine
  continuous-control details): one env, 2048 steps per rollout, 32 minibatches,
  10 epochs, lr 3e-4 annealed, γ 0.99, λ 0.95, value-loss clipping, observation
  normalization and reward scaling (each clipped to ±10), 1M steps. The same settings
  for every task, as CleanRL uses them; the zoo has per-task tuned entries instead
  (its benchmark.md figures for Ant come from those). Ant-v5 alone takes 5 epochs
  instead of 10: with 10, its policy moved further per update than on the other
  tasks (median clip fraction 0.48, approx KL 0.040 over a 1M-step run, which the PPO
  doctor names), and 5 epochs learned as well for half the gradient steps (seed 11,
  1M steps: deterministic evaluation 1356 against 1341; median clip fraction 0.26,
  approx KL 0.016, the doctor quiet; tests/data/ant_full_histories.json); seeds 1
  and 2 with 5 epochs evaluated 1537 and 1582, the doctor quiet (README).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from ppo_lessons.trainer_config import PPOConfig

__all__ = [
    "EXTRAS",
    "FAST_PRESETS",
    "PRESETS",
    "SOURCES",
    "THROUGHPUT",
    "missing_extra",
    "preset",
]

ZOO = "rl-baselines3-zoo hyperparams/ppo.yml"
CLEANRL = "CleanRL ppo_continuous_action.py defaults (Huang et al., 2022)"

# CleanRL's continuous-control settings, shared by the MuJoCo presets
CLEANRL_MUJOCO: dict[str, Any] = dict(
    num_envs=1, num_steps=2048, num_minibatches=32, update_epochs=10,
    learning_rate=3e-4, anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_coef=0.2,
    clip_vloss=True, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, norm_obs=True,
    norm_reward=True, total_steps=1_000_000,
)  # fmt: skip

# the zoo's LunarLander entries: 16 envs x 1024 steps, batch_size 64 -> 256 minibatches
ZOO_LUNAR: dict[str, Any] = dict(
    num_envs=16, num_steps=1024, num_minibatches=256, update_epochs=4, gamma=0.999,
    gae_lambda=0.98, ent_coef=0.01, learning_rate=3e-4, anneal_lr=False,
    clip_coef=0.2, total_steps=1_000_000,
)  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    # the trainer's defaults are this entry
    "CartPole-v1": dict(
        num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20, gamma=0.98,
        gae_lambda=0.8, ent_coef=0.0, learning_rate=1e-3, anneal_lr=True,
        total_steps=100_000,
    ),
    # the zoo's ppo_lstm entry (an LSTM of 64 there, a GRU cell of 64 here; the zoo's
    # critic has its own LSTM, this one shares the core with the policy)
    "CartPoleNoVel-v1": dict(
        num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20, gamma=0.98,
        gae_lambda=0.8, ent_coef=0.0, learning_rate=1e-3, anneal_lr=True,
        norm_obs=True, norm_reward=True, recurrent="gru", hidden_sizes=(64,),
        total_steps=100_000,
    ),
    "Acrobot-v1": dict(
        num_envs=16, num_steps=256, num_minibatches=64, update_epochs=4, gamma=0.99,
        gae_lambda=0.94, ent_coef=0.0, learning_rate=3e-4, anneal_lr=False,
        norm_obs=True, norm_reward=True, total_steps=1_000_000,
    ),
    "MountainCar-v0": dict(
        num_envs=16, num_steps=16, num_minibatches=4, update_epochs=4, gamma=0.99,
        gae_lambda=0.98, ent_coef=0.0, learning_rate=3e-4, anneal_lr=False,
        norm_obs=True, norm_reward=True, total_steps=1_000_000,
    ),
    "Pendulum-v1": dict(
        num_envs=4, num_steps=1024, num_minibatches=64, update_epochs=10, gamma=0.9,
        gae_lambda=0.95, ent_coef=0.0, learning_rate=1e-3, anneal_lr=False,
        clip_coef=0.2, total_steps=200_000,
    ),
    "MountainCarContinuous-v0": dict(
        num_envs=1, num_steps=8, num_minibatches=1, update_epochs=10, gamma=0.9999,
        gae_lambda=0.9, ent_coef=0.00429, learning_rate=7.77e-5, anneal_lr=False,
        clip_coef=0.1, max_grad_norm=5.0, vf_coef=0.19, init_log_std=-3.29,
        ortho_init=False, norm_obs=True, norm_reward=True, total_steps=20_000,
    ),
    "LunarLander-v3": dict(ZOO_LUNAR),
    "LunarLanderContinuous-v3": dict(ZOO_LUNAR, norm_obs=True, norm_reward=True),
    "HalfCheetah-v5": dict(CLEANRL_MUJOCO),
    "Hopper-v5": dict(CLEANRL_MUJOCO),
    "Walker2d-v5": dict(CLEANRL_MUJOCO),
    "Ant-v5": dict(CLEANRL_MUJOCO, update_epochs=5),  # see the module docstring
}  # fmt: skip

SOURCES: dict[str, str] = {
    "CartPole-v1": ZOO,
    "CartPoleNoVel-v1": "rl-baselines3-zoo hyperparams/ppo_lstm.yml",
    "Acrobot-v1": ZOO,
    "MountainCar-v0": ZOO,
    "Pendulum-v1": ZOO + " (without gSDE)",
    "MountainCarContinuous-v0": ZOO + " (without gSDE)",
    "LunarLander-v3": ZOO + " (LunarLander-v2)",
    "LunarLanderContinuous-v3": ZOO + " (LunarLanderContinuous-v2)",
    "HalfCheetah-v5": CLEANRL,
    "Hopper-v5": CLEANRL,
    "Walker2d-v5": CLEANRL,
    "Ant-v5": CLEANRL + ", with 5 epochs instead of 10 (measured here)",
}

# The optional dependency group of pyproject.toml an env family needs, by the package
# of its Gymnasium entry point, and the module that group installs.
EXTRAS: dict[str, tuple[str, str]] = {
    "gymnasium.envs.box2d": ("box2d", "Box2D"),
    "gymnasium.envs.mujoco": ("mujoco", "mujoco"),
}


def missing_extra(env_id: str) -> str | None:
    """The extra to install before `env_id` can be made (`"box2d"`, `"mujoco"`), or
    None when it needs none or it is installed (tried by importing its module, as
    `gym.make` would)."""
    try:
        entry_point = gym.spec(env_id).entry_point
    except gym.error.Error:
        return None  # not registered: PPOConfig's validation says so
    if not isinstance(entry_point, str):
        return None
    for package, (extra, module) in EXTRAS.items():
        if entry_point.startswith(package + ".") or entry_point.startswith(
            package + ":"
        ):
            try:
                importlib.import_module(module)
            except ImportError:
                return extra
            return None
    return None


# Settings for the batched tensor envs (`env_backend="torch"`), tuned here for wall
# time on a 2-core CPU rather than for samples. Measured with
# bench/bench_end_to_end.py (numbers in the README). The CLI starts from these when
# given `--env-backend torch` without `--preset`.
FAST_PRESETS: dict[str, dict[str, Any]] = {
    # Of the CartPole settings tried (16 seeds each, wall seconds to solve), these
    # solved soonest: few envs need few samples (once the policy is good, the solved
    # criterion still waits for 20 episodes of 500 steps, 500 steps of every env),
    # and a 32x32 network at lr 1e-2 learns as fast per sample as 64x64 at 3e-3
    # while its gradient steps cost about a fifth less.
    "CartPole-v1": dict(
        env_backend="torch", num_envs=16, num_steps=64, num_minibatches=4,
        update_epochs=4, gamma=0.98, gae_lambda=0.8, learning_rate=1e-2,
        anneal_lr=True, hidden_sizes=(32, 32), total_steps=150_000,
    ),
    # The recurrent policy: its cost is the replay, T sequential core steps (forward
    # and backward) per minibatch, whatever the number of envs in it; so many envs
    # and few minibatches (each of 16 whole sequences). Tuned on seeds 1 and 4-8: with
    # the zoo's reward scaling and a target KL, 5 of those 6 runs end at 500 (without
    # them 2 of 6 solved, then ended at 180-320). Runs still dip after first solving
    # (seeds 10-15: lowest 20k-step means 120-498) and recover (docs/benchmarks.md).
    "CartPoleNoVel-v1": dict(
        env_backend="torch", num_envs=64, num_steps=32, num_minibatches=4,
        update_epochs=8, target_kl=0.02, gamma=0.98, gae_lambda=0.8,
        learning_rate=3e-3, anneal_lr=True, norm_obs=True, norm_reward=True,
        recurrent="gru", hidden_sizes=(64,), total_steps=400_000,
    ),
    # the zoo's Acrobot entry with 4x the envs, 1/4 the rollout length and 4x the
    # minibatch size (same batch of 4096 per update, 16x fewer gradient steps)
    "Acrobot-v1": dict(
        env_backend="torch", num_envs=64, num_steps=64, num_minibatches=16,
        update_epochs=4, gamma=0.99, gae_lambda=0.94, ent_coef=0.0,
        learning_rate=1e-3, anneal_lr=False, norm_obs=True, norm_reward=True,
        total_steps=500_000,
    ),
    # the zoo's Pendulum entry (without gSDE) with 64 envs x 64 steps and minibatches
    # of 256 instead of 4 envs x 1024 steps and minibatches of 64
    "Pendulum-v1": dict(
        env_backend="torch", num_envs=64, num_steps=64, num_minibatches=16,
        update_epochs=10, gamma=0.9, gae_lambda=0.95, ent_coef=0.0,
        learning_rate=1e-3, anneal_lr=False, clip_coef=0.2, total_steps=200_000,
    ),
}  # fmt: skip

# Overrides for raw speed on a batched env: thousands of envs and one or two large
# gradient steps per rollout. It maximizes steps per second, not learning per step
# (a run needs several times more steps to solve than with FAST_PRESETS).
THROUGHPUT: dict[str, Any] = dict(
    num_envs=4096, num_steps=16, update_epochs=2, num_minibatches=4,
    total_steps=2_000_000,
)  # fmt: skip


def preset(env_id: str, env_backend: str = "gymnasium", **overrides: Any) -> PPOConfig:
    """The tuned config for `env_id`, with `overrides` applied on top.

    With `env_backend="torch"`, the fast settings for the batched env when there are
    some (`FAST_PRESETS`), else the usual preset run on the batched env.
    """
    if env_backend == "torch" and env_id in FAST_PRESETS:
        return PPOConfig(env_id=env_id, **{**FAST_PRESETS[env_id], **overrides})
    if env_id not in PRESETS:
        raise ValueError(
            f"no preset for env_id {env_id!r}; presets exist for {', '.join(PRESETS)}"
        )
    values = {**PRESETS[env_id], "env_backend": env_backend, **overrides}
    return PPOConfig(env_id=env_id, **values)
