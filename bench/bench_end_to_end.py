"""End-to-end PPO on CartPole-v1: the batched tensor env against Gymnasium's vector env.

Trains CartPole-v1 with the course's trainer over several seeds, in one run on one
machine, and prints a table of medians:

  - torch, fast preset      `preset("CartPole-v1", env_backend="torch")`, what
                            `python -m ppo_lessons.train --env-backend torch` runs
  - gymnasium, same config  the very same settings on Gymnasium's SyncVectorEnv
  - gymnasium, default      the trainer's default (rl-baselines3-zoo) settings
  - torch, throughput       `THROUGHPUT` (many envs, one large update), steps/second
                            only: it is not meant to solve quickly

For each: end-to-end steps per second (all of training: rollout, GAE, update,
logging), `seconds_to_solve` (wall seconds from the start of training to the first
update where the mean of the last 20 episodic returns reached 475; start-up such as
making the envs is not counted), how many seeds solved, and the deterministic
evaluation return over 20 episodes (on Gymnasium's CartPole) after training.

    OMP_NUM_THREADS=2 python bench/bench_end_to_end.py --threads 2
    python bench/bench_end_to_end.py --device cuda --seeds 1 2 3 4 5

Raw env steps per second (no learning) are measured by bench/bench_torch_envs.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ppo_lessons.presets import THROUGHPUT, preset
from ppo_lessons.trainer import PPOConfig, evaluate, train

SOLVE_EVAL_EPISODES = 20


def run_one(config: PPOConfig) -> dict:
    result = train(config, progress=False)
    returns = evaluate(result.agent, config.env_id, episodes=SOLVE_EVAL_EPISODES)
    return {
        "sps": result.global_step / result.wall_seconds,
        "seconds_to_solve": result.seconds_to_solve,
        "first_step_solved": result.first_step_solved,
        "eval": float(returns.mean()),
        "wall": result.wall_seconds,
    }


def median_or_none(values: list[float | None]) -> float | None:
    """Median with unsolved seeds (None) counted as infinitely slow."""
    filled = [v if v is not None else float("inf") for v in values]
    middle = statistics.median(filled)
    return None if middle == float("inf") else middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--skip-gym-default", action="store_true", help="skip the slowest row"
    )
    parser.add_argument(
        "--throughput-steps",
        type=int,
        default=524_288,
        help="steps per run of the throughput row (its steps/second is steady)",
    )
    args = parser.parse_args()
    common = dict(device=args.device, torch_threads=args.threads)
    fast = preset("CartPole-v1", env_backend="torch", **common)
    rows = {
        "torch, fast preset": fast,
        "gymnasium, same config": fast.replace(env_backend="gymnasium"),
        "gymnasium, default": PPOConfig(env_id="CartPole-v1", **common),
        "torch, throughput": fast.replace(
            **{**THROUGHPUT, "total_steps": args.throughput_steps}
        ),
    }
    if args.skip_gym_default:
        del rows["gymnasium, default"]
    print(
        f"CartPole-v1, seeds {args.seeds}, device {args.device}, torch threads "
        f"{args.threads}, torch {torch.__version__}; medians over seeds"
    )
    results: dict[str, list[dict]] = {}
    for name, config in rows.items():
        start = time.perf_counter()
        results[name] = [run_one(config.replace(seed=s)) for s in args.seeds]
        runs = results[name]
        print(
            f"  {name}: {config.num_envs} envs x {config.num_steps} steps, "
            f"{config.update_epochs} epochs, {config.num_minibatches} minibatches, "
            f"{config.total_steps} steps; seconds to solve "
            f"{[_fmt(r['seconds_to_solve']) for r in runs]}; eval "
            f"{[round(r['eval']) for r in runs]} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    header = (
        f"{'':<24}{'steps/s':>10}{'s to solve':>12}{'solved':>8}{'eval':>8}"
        f"{'x sps':>8}{'x solve':>9}"
    )
    print(header)
    print("-" * len(header))
    base = results["torch, fast preset"]
    base_sps = statistics.median(r["sps"] for r in base)
    base_solve = median_or_none([r["seconds_to_solve"] for r in base])
    for name, runs in results.items():
        sps = statistics.median(r["sps"] for r in runs)
        solve = median_or_none([r["seconds_to_solve"] for r in runs])
        solved = sum(
            r["seconds_to_solve"] is not None and r["eval"] >= 475 for r in runs
        )
        x_solve = (
            "-" if solve is None or base_solve is None else f"{solve / base_solve:.1f}"
        )
        print(
            f"{name:<24}{sps:>10.0f}{_fmt(solve):>12}{solved:>5}/{len(runs):<2}"
            f"{statistics.median(r['eval'] for r in runs):>8.1f}"
            f"{base_sps / sps:>8.1f}{x_solve:>9}"
        )
    print(
        "x sps / x solve: how many times faster the fast preset is than that row "
        "(steps per second; median seconds to solve). solved: first_step_solved "
        f"reached and {SOLVE_EVAL_EPISODES}-episode evaluation >= 475."
    )


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


if __name__ == "__main__":
    main()
