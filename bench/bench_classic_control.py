"""Acrobot-v1 and Pendulum-v1: final returns of the course's trainer against published
PPO results, with the wall time it took.

Published (rl-baselines3-zoo, `benchmark.md`, "Performance of trained agents"; one
trained agent per env, deterministic evaluation over about 150,000 steps):

    PPO Acrobot-v1    -73.5 ± 18.2  after 1M steps
    PPO Pendulum-v1  -172.2 ± 104.2 after 100k steps (zoo settings use gSDE)

For each row this trains over several seeds with the batched tensor envs
(`env_backend="torch"`) and prints, per seed, the deterministic evaluation return over
20 episodes on Gymnasium's env (mean ± std) and the wall seconds of training; then
the median over seeds. Pendulum is trained twice: with the Gaussian sample clipped to
the bounds when sent to the env (the default), and squashed with tanh
(`squash_actions=True`).

    OMP_NUM_THREADS=1 python bench/bench_classic_control.py --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ppo_lessons.presets import preset
from ppo_lessons.trainer import PPOConfig, evaluate, train

PUBLISHED = {  # rl-baselines3-zoo benchmark.md (Raffin, 2020): mean, std, steps
    "Acrobot-v1": (-73.5, 18.2, "1M"),
    "Pendulum-v1": (-172.2, 104.2, "100k"),
}
EVAL_EPISODES = 20


def rows(device: str, threads: int) -> dict[str, PPOConfig]:
    common = dict(env_backend="torch", device=device, torch_threads=threads)
    pendulum = preset("Pendulum-v1", **common)
    return {
        "Acrobot-v1": preset("Acrobot-v1", **common),
        "Pendulum-v1 (clip)": pendulum,
        "Pendulum-v1 (tanh squash)": pendulum.replace(squash_actions=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads}")
    header = f"{'':<28}{'steps':>9}{'eval (median)':>15}{'wall s':>9}{'published':>22}"
    lines = []
    for name, config in rows(args.device, args.threads).items():
        evals, walls = [], []
        for seed in args.seeds:
            result = train(config.replace(seed=seed), progress=False)
            returns = evaluate(result.agent, config.env_id, episodes=EVAL_EPISODES)
            evals.append(float(returns.mean()))
            walls.append(result.wall_seconds)
            print(
                f"  {name} seed {seed}: eval {returns.mean():.1f} ± {returns.std():.1f}"
                f" over {EVAL_EPISODES} episodes, {result.wall_seconds:.1f} s",
                flush=True,
            )
        mean, std, steps = PUBLISHED[config.env_id]
        lines.append(
            f"{name:<28}{config.total_steps:>9}{statistics.median(evals):>15.1f}"
            f"{statistics.median(walls):>9.1f}{f'{mean} ± {std} ({steps})':>22}"
        )
    print(header)
    print("-" * len(header))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
