"""Benchmark: this course's PPO trainer against Stable-Baselines3's PPO on CartPole-v1.

Both train with the same hyperparameters (the trainer's defaults, which are
rl-baselines3-zoo's CartPole-v1 settings), the same Gymnasium CartPole-v1 envs in the
same number, and one PyTorch thread each, for several seeds. Printed per trainer, as
medians over the seeds: steps per second, wall seconds until the mean of the last 20
episodic returns reached 475 (CartPole-v1's reward_threshold), and the mean return of
10 deterministic evaluation episodes after training; then the ratios.

This is a benchmark, not a test: run it by hand. Stable-Baselines3 lives in its own
virtual environment so the course's environment stays small:

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0 stable-baselines3 -e .
    .venv-bench/bin/python bench/bench_sb3.py --seeds 1 2 3 4 5 --total-steps 100000
    .venv-bench/bin/python bench/bench_sb3.py --config fast --total-steps 150000

`--config fast` gives both trainers the fast preset's hyperparameters (the settings of
`preset("CartPole-v1", env_backend="torch")`: its number of envs, rollout length,
epochs, minibatches, network and learning rate) on Gymnasium CartPole-v1 envs.

(On Linux, add `--index-url https://download.pytorch.org/whl/cpu
--extra-index-url https://pypi.org/simple` to the pip line for a CPU-only torch.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from ppo_lessons.presets import preset
from ppo_lessons.trainer import PPOConfig, evaluate, train

SOLVED = 475.0  # CartPole-v1 reward_threshold
WINDOW = 20  # episodes averaged


def run_ours(config: PPOConfig) -> dict:
    result = train(config, progress=False)
    returns = evaluate(result.agent, config.env_id, episodes=10)
    return {
        "steps_per_second": result.global_step / result.wall_seconds,
        "wall_seconds": result.wall_seconds,
        "seconds_to_solve": result.seconds_to_solve,
        "eval_return": float(returns.mean()),
    }


def sb3_kwargs(config: PPOConfig) -> dict:
    """The same hyperparameters in Stable-Baselines3's names."""
    from torch import nn

    lr = config.learning_rate
    return dict(
        learning_rate=(lambda remaining: remaining * lr) if config.anneal_lr else lr,
        n_steps=config.num_steps,
        batch_size=config.minibatch_size,
        n_epochs=config.update_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_coef,
        clip_range_vf=config.clip_coef if config.clip_vloss else None,
        normalize_advantage=config.norm_adv,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        target_kl=config.target_kl,
        policy_kwargs=dict(
            net_arch=dict(pi=list(config.hidden_sizes), vf=list(config.hidden_sizes)),
            activation_fn=nn.Tanh,
            ortho_init=config.ortho_init,
            optimizer_kwargs=dict(eps=config.adam_eps),
        ),
        seed=config.seed,
        device="cpu",
        verbose=0,
    )


def run_sb3(config: PPOConfig) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    class SolvedClock(BaseCallback):
        """Wall time at which the mean of the last 20 episodic returns reached 475."""

        def __init__(self, start: float) -> None:
            super().__init__()
            self.start, self.returns, self.solved_at = start, deque(maxlen=WINDOW), None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            full = len(self.returns) == WINDOW
            if self.solved_at is None and full and np.mean(self.returns) >= SOLVED:
                self.solved_at = time.perf_counter() - self.start
            return True

    envs = make_vec_env(config.env_id, n_envs=config.num_envs, seed=config.seed)
    model = PPO("MlpPolicy", envs, **sb3_kwargs(config))
    start = time.perf_counter()
    clock = SolvedClock(start)
    model.learn(total_timesteps=config.total_steps, callback=clock)
    wall = time.perf_counter() - start
    eval_env = make_vec_env(config.env_id, n_envs=1, seed=10_000)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return {
        "steps_per_second": model.num_timesteps / wall,
        "wall_seconds": wall,
        "seconds_to_solve": clock.solved_at,
        "eval_return": float(mean),
    }


def base_config(name: str) -> PPOConfig:
    """The hyperparameters both trainers get, on Gymnasium's CartPole-v1 envs."""
    if name == "fast":
        fast = preset("CartPole-v1", env_backend="torch", device="cpu")
        return fast.replace(env_backend="gymnasium")
    return PPOConfig(device="cpu")


def median(values: list[float | None]) -> float | None:
    """Median, counting a run that never solved as +inf (None if most never did)."""
    filled = [np.inf if v is None else v for v in values]
    m = statistics.median(filled)
    return None if m == np.inf else m


def report(results: dict[str, list[dict]]) -> dict:
    keys = ("steps_per_second", "seconds_to_solve", "eval_return")
    table = {
        name: {k: median([r[k] for r in runs]) for k in keys}
        for name, runs in results.items()
    }
    print(f"\n{'':8}{'steps/s':>12}{'s to solve':>14}{'eval return':>14}   (medians)")
    for name, row in table.items():
        cells = [f"{row[k]:.1f}" if row[k] is not None else "never" for k in keys]
        print(f"{name:8}{cells[0]:>12}{cells[1]:>14}{cells[2]:>14}")
    ours, sb3 = table["ours"], table["sb3"]
    speed = ours["steps_per_second"] / sb3["steps_per_second"]
    print(f"\nsteps/s ratio (ours / SB3): {speed:.2f}x (target >= 5x)")
    if ours["seconds_to_solve"] and sb3["seconds_to_solve"]:
        solve = sb3["seconds_to_solve"] / ours["seconds_to_solve"]
        print(f"time-to-solve ratio (SB3 / ours): {solve:.2f}x (target >= 3x)")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument(
        "--config",
        choices=("default", "fast"),
        default="default",
        help="hyperparameters for both trainers: the trainer's defaults (the zoo's), or "
        "the fast preset's (`preset('CartPole-v1', env_backend='torch')`) on the same "
        "Gymnasium envs",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads for both trainers"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the same for both trainers
    results: dict[str, list[dict]] = {"ours": [], "sb3": []}
    for seed in args.seeds:
        config = base_config(args.config).replace(
            seed=seed, total_steps=args.total_steps, torch_threads=args.threads
        )
        for name, runner in (("ours", run_ours), ("sb3", run_sb3)):
            results[name].append(runner(config))
            print(f"seed {seed} {name:4}: {json.dumps(results[name][-1])}", flush=True)
    table = report(results)
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": results, "medians": table}, indent=1))


if __name__ == "__main__":
    main()
