"""Many agents at once: a population of K seeds against the same seeds one by one.

For each K, seeds 1..K of CartPole-v1's fast torch preset
(`preset("CartPole-v1", env_backend="torch")`) are trained as one batched population
(`ppo_lessons.population.train_population`), and the same seeds one after another
by `ppo_lessons.trainer.train`, in the same run on the same machine. The seeds of
the K lists are nested (1..K), so each seed is trained once by `train` and each
K's sequential time is the sum over its seeds. Printed per K: wall seconds of
training, member-steps per second (env steps of all agents per wall second), how
many members solved while training (mean of 20 returns >= 475) and how many
evaluate >= 475 (10 deterministic episodes on Gymnasium's CartPole), and the
speed-up of the population. And the median environment steps to solve on each side
(one member's steps; unsolved runs count as the whole budget): a population of one
matches `train` statistically, not bit for bit, and this column is how to check it
(`--first-seed` picks seeds the comparison has not seen).

With `--cli` both sides run as the command a student types (one process each):
`python -m ppo_lessons.train --env-id CartPole-v1 --env-backend torch --seeds 1 ... K`
against `... --seed s` for each seed, timed by the training time in their
`--summary-json` and by the processes' wall clock (start-up and evaluation
included).

    OMP_NUM_THREADS=1 python bench/bench_population.py
    OMP_NUM_THREADS=1 python bench/bench_population.py --k 32 --cli
    OMP_NUM_THREADS=1 python bench/bench_population.py --k 64 --first-seed 101
    python bench/bench_population.py --device cuda --k 1 128 1024 --no-sequential
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ppo_lessons.population import train_population
from ppo_lessons.presets import preset
from ppo_lessons.trainer import evaluate, train

ENV_ID = "CartPole-v1"
SOLVED = 475.0
EVAL_EPISODES = 10


def evaluations(agents) -> int:
    """How many agents evaluate >= 475 over 10 deterministic episodes."""
    return sum(
        float(evaluate(agent, ENV_ID, EVAL_EPISODES).mean()) >= SOLVED
        for agent in agents
    )


def median_steps(first_steps: list[int | None], budget: int) -> float:
    """Median steps to solve, an unsolved run counted as the whole budget."""
    return statistics.median(budget if s is None else s for s in first_steps)


def in_process(ks: list[int], config, sequential: int, first: int) -> list[dict]:
    rows = []
    for K in ks:
        seeds = list(range(first, first + K))
        result = train_population(config, seeds, progress=False)
        agents = [m.agent.to("cpu") for m in result.members]
        steps = [m.first_step_solved for m in result.members]
        rows.append(
            {
                "K": K,
                "population_s": result.wall_seconds,
                "member_steps_per_s": result.member_steps_per_second,
                "solved": result.solved,
                "eval_ok": evaluations(agents),
                "median_steps": median_steps(steps, config.total_steps),
            }
        )
        print(rows[-1], flush=True)
    if sequential:
        one_by_one = []  # (wall seconds, first step solved, evaluates >= 475)
        for seed in range(first, first + min(max(ks), sequential)):
            single = train(config.replace(seed=seed), progress=False)
            ok = evaluations([single.agent.to("cpu")])
            one_by_one.append((single.wall_seconds, single.first_step_solved, ok))
        for row in (r for r in rows if r["K"] <= sequential):
            part = one_by_one[: row["K"]]
            row["sequential_s"] = sum(wall for wall, _, _ in part)
            row["sequential_solved"] = sum(solved is not None for _, solved, _ in part)
            row["sequential_eval_ok"] = sum(ok for _, _, ok in part)
            row["sequential_median_steps"] = median_steps(
                [solved for _, solved, _ in part], config.total_steps
            )
    return rows


def command(args, *flags: str) -> tuple[dict, float]:
    """Run the training command; its summary and the process's wall seconds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "summary.json"
        base = [sys.executable, "-m", "ppo_lessons.train", "--env-id", ENV_ID,
                "--env-backend", "torch", "--device", args.device, "--no-progress",
                "--torch-threads", str(args.threads), "--summary-json", str(path)]  # fmt: skip
        if args.total_steps is not None:
            base += ["--total-steps", str(args.total_steps)]
        start = time.perf_counter()
        subprocess.run([*base, *flags], check=True, stdout=subprocess.DEVNULL)
        return json.loads(path.read_text()), time.perf_counter() - start


def with_cli(ks: list[int], args, sequential: int) -> list[dict]:
    rows = []
    for K in ks:
        seeds = [str(s) for s in range(args.first_seed, args.first_seed + K)]
        summary, process_s = command(args, "--seeds", *seeds)
        members = summary["members"]
        rows.append(
            {
                "K": K,
                "population_s": summary["wall_seconds"],
                "population_process_s": process_s,
                "member_steps_per_s": summary["steps_per_second"],
                "solved": sum(m["first_step_solved"] is not None for m in members),
                "eval_ok": sum(m["eval_return_mean"] >= SOLVED for m in members),
            }
        )
        print(rows[-1], flush=True)
        if sequential >= K:
            singles = [command(args, "--seed", s) for s in seeds]
            rows[-1] |= {
                "sequential_s": sum(s["wall_seconds"] for s, _ in singles),
                "sequential_process_s": sum(p for _, p in singles),
                "sequential_solved": sum(
                    s["first_step_solved"] is not None for s, _ in singles
                ),
                "sequential_eval_ok": sum(
                    s["eval_return_mean"] >= SOLVED for s, _ in singles
                ),
            }
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "\n| K | population (s) | member-steps/s | solved | eval >= 475 "
        "| one after another (s) | solved | eval >= 475 | speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        seq = r.get("sequential_s")
        cells = [
            f"{r['K']}",
            f"{r['population_s']:.1f}",
            f"{r['member_steps_per_s']:,.0f}",
            f"{r['solved']}/{r['K']}",
            f"{r['eval_ok']}/{r['K']}",
            "-" if seq is None else f"{seq:.1f}",
            "-" if seq is None else f"{r['sequential_solved']}/{r['K']}",
            "-" if seq is None else f"{r['sequential_eval_ok']}/{r['K']}",
            "-" if seq is None else f"{seq / r['population_s']:.1f}x",
        ]
        print("| " + " | ".join(cells) + " |")
        if "sequential_median_steps" in r:
            print(
                f"  median steps to solve: population {r['median_steps']:,.0f}, "
                f"one after another {r['sequential_median_steps']:,.0f}"
            )
        if "population_process_s" in r and seq is not None:
            print(
                f"  with start-up and evaluation: population "
                f"{r['population_process_s']:.1f} s, one after another "
                f"{r['sequential_process_s']:.1f} s "
                f"({r['sequential_process_s'] / r['population_process_s']:.1f}x)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--total-steps", type=int, default=None)
    parser.add_argument(
        "--no-sequential", action="store_true", help="skip the one-by-one runs"
    )
    parser.add_argument(
        "--sequential-max",
        type=int,
        default=None,
        help="run the one-by-one comparison only for K up to this",
    )
    parser.add_argument(
        "--cli", action="store_true", help="time the training command (processes)"
    )
    parser.add_argument(
        "--first-seed", type=int, default=1, help="seeds first .. first + K - 1"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    changes = {"device": args.device, "torch_threads": args.threads}
    if args.total_steps is not None:
        changes["total_steps"] = args.total_steps
    config = preset(ENV_ID, env_backend="torch", **changes)
    ks = sorted(set(args.k))
    print(f"{ENV_ID}, fast torch preset, {config.total_steps} steps per member, "
          f"device {args.device}, {args.threads} thread(s)")  # fmt: skip
    sequential = 0 if args.no_sequential else (args.sequential_max or max(ks))
    if args.cli:
        rows = with_cli(ks, args, sequential)
    else:
        rows = in_process(ks, config, sequential, args.first_seed)
    print_table(rows)


if __name__ == "__main__":
    main()
