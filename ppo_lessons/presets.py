"""Tuned settings for the classic-control tasks, with where each comes from.

    from ppo_lessons.presets import preset
    config = preset("Pendulum-v1", seed=3)

Translated from rl-baselines3-zoo's `hyperparams/ppo.yml` (Raffin, 2020; SB3 names:
n_envs -> num_envs, n_steps -> num_steps, n_epochs -> update_epochs, batch_size ->
num_minibatches = n_envs * n_steps / batch_size, normalize -> norm_obs + norm_reward,
a `lin_` learning rate -> anneal_lr). The zoo's Pendulum and MountainCarContinuous
entries use gSDE, which this trainer does not have; their presets keep the other
settings and a plain Gaussian policy, so they may need more steps than the zoo's.
"""

from __future__ import annotations

from typing import Any

from ppo_lessons.trainer_config import PPOConfig

__all__ = ["FAST_PRESETS", "PRESETS", "SOURCES", "THROUGHPUT", "preset"]

ZOO = "rl-baselines3-zoo hyperparams/ppo.yml"

PRESETS: dict[str, dict[str, Any]] = {
    # the trainer's defaults are this entry
    "CartPole-v1": dict(
        num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20, gamma=0.98,
        gae_lambda=0.8, ent_coef=0.0, learning_rate=1e-3, anneal_lr=True,
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
}  # fmt: skip

SOURCES: dict[str, str] = {
    "CartPole-v1": ZOO,
    "Acrobot-v1": ZOO,
    "MountainCar-v0": ZOO,
    "Pendulum-v1": ZOO + " (without gSDE)",
    "MountainCarContinuous-v0": ZOO + " (without gSDE)",
}


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
