"""The Box2D and MuJoCo presets, several seeds each: final deterministic evaluation,
wall time, steps per second and the PPO doctor's verdict, beside the published figure.

Published (each 1M steps):

    LunarLander-v3            242.1 ± 31.8    rl-baselines3-zoo benchmark.md, PPO
                                               LunarLander-v2 (one agent, deterministic)
    LunarLanderContinuous-v3  270.9 ± 32.1    same, LunarLanderContinuous-v2
    HalfCheetah-v5           1822.8 ± 928.1   CleanRL docs, ppo_continuous_action.py on
    Hopper-v5                2231.1 ± 656.7   the v2 tasks (mean ± std over seeds of the
    Walker2d-v5              3050.1 ± 1136.2  final training episodes' returns)
    Ant-v5                   1327.2 ± 451.6   rl-baselines3-zoo benchmark.md, PPO Ant-v3
                                               (the zoo's tuned settings, one agent)

Each run trains one preset with one seed in its own process, one torch thread, then
evaluates the final agent deterministically on fresh episodes (`--eval-episodes`).
`--workers N` runs N of them at once (use at most one per free core: on a shared
2-core machine keep the default 1). `--time-budget S` stops a run that has trained S
seconds at its next checkpoint (every `--checkpoint-every` updates) and evaluates the
agent of that checkpoint, so a run that could not finish is reported with the step it
reached instead of being lost. The JSON (`--json`) holds every run, with its history
when `--history` is given (the doctor's calibration reads it).

    OMP_NUM_THREADS=1 python bench/bench_presets.py --presets LunarLander-v3 \\
        --seeds 1 2 3 --json lunar.json
    OMP_NUM_THREADS=1 python bench/bench_presets.py --presets HalfCheetah-v5 Hopper-v5 \\
        Walker2d-v5 Ant-v5 --seeds 1 2 3 --workers 12 --json mujoco.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ppo_lessons.checkpoint import load_checkpoint
from ppo_lessons.doctor import diagnose
from ppo_lessons.envs import solved_threshold
from ppo_lessons.presets import PRESETS, SOURCES, missing_extra, preset
from ppo_lessons.trainer import evaluate, load_agent, train

PUBLISHED: dict[str, tuple[float, float, str]] = {
    "LunarLander-v3": (242.1, 31.8, "rl-baselines3-zoo benchmark.md (v2, one agent)"),
    "LunarLanderContinuous-v3": (
        270.9,
        32.1,
        "rl-baselines3-zoo benchmark.md (v2, one agent)",
    ),
    "HalfCheetah-v5": (1822.8, 928.1, "CleanRL docs, ppo_continuous_action (v2)"),
    "Hopper-v5": (2231.1, 656.7, "CleanRL docs, ppo_continuous_action (v2)"),
    "Walker2d-v5": (3050.1, 1136.2, "CleanRL docs, ppo_continuous_action (v2)"),
    "Ant-v5": (1327.2, 451.6, "rl-baselines3-zoo benchmark.md (v3, tuned, one agent)"),
}
NEW_PRESETS = tuple(PUBLISHED)


class OutOfTime(Exception):
    """Raised from the training callback once a run has used its time budget."""


def run_one(
    env_id: str,
    seed: int,
    total_steps: int | None,
    eval_episodes: int,
    time_budget: float | None,
    checkpoint_every: int,
    keep_history: bool,
) -> dict[str, Any]:
    """Train `env_id` with `seed` and evaluate it; a dict of what happened."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    overrides = {"seed": seed, "torch_threads": 1, "device": "cpu"}
    if total_steps is not None:
        overrides["total_steps"] = total_steps
    config = preset(env_id, **overrides)
    start = time.perf_counter()

    def stop_when_out_of_time(row: dict, history: list) -> None:
        # the trainer saves update k's checkpoint after this callback: stop in the
        # update after a saved one, so the checkpoint read back is the latest
        saved_before = row["update"] > 1 and (row["update"] - 1) % checkpoint_every == 0
        out_of_time = (
            time_budget is not None and time.perf_counter() - start > time_budget
        )
        if saved_before and out_of_time:
            raise OutOfTime

    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "run.pt"
        try:
            result = train(
                config,
                progress=False,
                save_path=checkpoint,
                checkpoint_every=checkpoint_every,
                callback=stop_when_out_of_time,
            )
            agent, history = result.agent, result.history
            steps, wall = result.global_step, result.wall_seconds
            finished = True
        except OutOfTime:
            finished = False
            state = load_checkpoint(checkpoint)
            agent, history = load_agent(checkpoint), state["history"]
            steps, wall = state["global_step"], state["elapsed"]
    returns = evaluate(agent, env_id, episodes=eval_episodes)
    findings = diagnose(history, reward_threshold=solved_threshold(env_id))
    out = {
        "env_id": env_id,
        "seed": seed,
        "total_steps": config.total_steps,
        "steps": steps,
        "finished": finished,  # False: stopped by the time budget
        "wall_seconds": round(wall, 1),
        "steps_per_second": round(steps / max(wall, 1e-9)),
        "eval_mean": float(returns.mean()),
        "eval_std": float(returns.std()),
        "eval_returns": returns.tolist(),
        "doctor": [finding.problem for finding in findings],
        "doctor_text": [str(finding) for finding in findings],
    }
    if keep_history:
        out["history"] = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()}
            for row in history
        ]  # fmt: skip
    return out


def summarize(runs: list[dict[str, Any]]) -> str:
    """A table: per preset, the seeds' evaluation, wall time, steps/s, published."""
    lines = [
        f"{'preset':<26}{'seeds':>6}{'eval mean ± std over seeds':>30}{'wall s':>9}"
        f"{'steps/s':>9}  published",
    ]
    for env_id in dict.fromkeys(run["env_id"] for run in runs):
        mine = [run for run in runs if run["env_id"] == env_id]
        evals = [run["eval_mean"] for run in mine]
        spread = statistics.stdev(evals) if len(evals) > 1 else 0.0
        wall = statistics.mean(run["wall_seconds"] for run in mine)
        speed = statistics.mean(run["steps_per_second"] for run in mine)
        published = PUBLISHED.get(env_id)
        cite = f"{published[0]:.1f} ± {published[1]:.1f}" if published else "-"
        unfinished = sum(not run["finished"] for run in mine)
        note = f" ({unfinished} stopped early)" if unfinished else ""
        lines.append(
            f"{env_id:<26}{len(mine):>6}{f'{statistics.mean(evals):.1f} ± {spread:.1f}':>30}"
            f"{wall:>9.0f}{speed:>9.0f}  {cite}{note}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(NEW_PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=1, help="runs at once")
    parser.add_argument("--total-steps", type=int, default=None, help="override")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds")
    parser.add_argument("--checkpoint-every", type=int, default=10, help="updates")
    parser.add_argument("--history", action="store_true", help="keep histories")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    for env_id in args.presets:
        if env_id not in PRESETS:
            parser.error(f"--presets: no preset for {env_id!r}")
        extra = missing_extra(env_id)
        if extra is not None:
            parser.error(f'{env_id} needs: pip install -e ".[{extra}]"')
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [(env_id, seed) for env_id in args.presets for seed in args.seeds]
    info = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "sources": {env_id: SOURCES[env_id] for env_id in args.presets},
    }
    print(f"{len(jobs)} runs, {args.workers} at a time, {os.cpu_count()} CPUs")
    runs: list[dict[str, Any]] = []
    context = get_context("spawn")  # a fresh interpreter (and torch) per worker
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = [
            pool.submit(
                run_one,
                env_id,
                seed,
                args.total_steps,
                args.eval_episodes,
                args.time_budget,
                args.checkpoint_every,
                args.history,
            )
            for env_id, seed in jobs
        ]
        for future in as_completed(futures):
            run = future.result()
            runs.append(run)
            print(
                f"{run['env_id']} seed {run['seed']}: eval {run['eval_mean']:.1f} ± "
                f"{run['eval_std']:.1f} after {run['steps']} steps in "
                f"{run['wall_seconds']:.0f} s ({run['steps_per_second']} steps/s); "
                f"doctor: {', '.join(run['doctor']) or 'quiet'}",
                flush=True,
            )
            if args.json is not None:  # after every run: a killed bench keeps some
                args.json.write_text(json.dumps({"info": info, "runs": runs}))
    runs.sort(key=lambda run: jobs.index((run["env_id"], run["seed"])))
    print(summarize(runs))
    if args.json is not None:
        args.json.write_text(json.dumps({"info": info, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
