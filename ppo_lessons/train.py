"""Command line: `python -m ppo_lessons.train --env-id CartPole-v1 --seed 1`.

There is one flag per `PPOConfig` field, derived from the dataclass (its help text is
the field's documentation), plus:

    --preset ENV_ID     start from a tuned preset (ppo_lessons.presets)
    --env-backend torch without --preset starts from the batched env's fast settings
                        (ppo_lessons.presets.FAST_PRESETS) where there are some
    --save PATH         write a checkpoint at the end (and every --checkpoint-every)
    --resume PATH       continue a saved run exactly, with its config; only
                        --total-steps may change (to train longer)
    --overwrite         allow replacing a checkpoint of a different run
    --summary-json PATH write a JSON summary (returns, speed, time to solve, history)
    --eval-episodes K   deterministic evaluation episodes after training (>= 10)
    --tensorboard DIR   log the metrics to TensorBoard
    --seeds S1 S2 ...   train these seeds as one batched population
                        (ppo_lessons.population; env backend torch); the summary
                        gets one entry per member in "members"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from ppo_lessons.checkpoint import load_checkpoint
from ppo_lessons.population import train_population
from ppo_lessons.population.members import member_specs
from ppo_lessons.presets import FAST_PRESETS, PRESETS, missing_extra, preset
from ppo_lessons.trainer import PPOConfig, evaluate, train
from ppo_lessons.trainer_config import field_help

__all__ = [
    "build_parser",
    "config_from_args",
    "main",
    "population_main",
    "population_summary",
    "summary",
]


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "off") else float(text)


def _add_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
    """One flag for one config field, typed from its annotation."""
    flag = "--" + field.name.replace("_", "-")
    hint = typing.get_type_hints(PPOConfig)[field.name]
    common: dict[str, Any] = {
        "dest": field.name,
        "default": argparse.SUPPRESS,  # so only flags the user gave are applied
        "help": f"{field_help(field.name)} (default: {field.default})",
    }
    args = typing.get_args(hint)
    if hint is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
    elif typing.get_origin(hint) is tuple:
        parser.add_argument(flag, type=int, nargs="+", metavar="N", **common)
    elif typing.get_origin(hint) in (typing.Union, types.UnionType) and float in args:
        parser.add_argument(
            flag, type=_parse_optional_float, metavar="X|none", **common
        )
    else:
        parser.add_argument(flag, type=hint, **common)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ppo_lessons.train",
        description="Train a PPO agent (the course's trainer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    config = parser.add_argument_group("PPOConfig fields")
    for field in dataclasses.fields(PPOConfig):
        _add_field(config, field)
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset")
    run.add_argument("--save", type=Path, help="checkpoint path")
    run.add_argument(
        "--resume",
        type=Path,
        help="checkpoint to continue from, with its config (only --total-steps may "
        "be given, to train longer)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace another run's checkpoint"
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="updates between checkpoints (0: only at the end)",
    )
    run.add_argument("--summary-json", type=Path, help="write a JSON summary here")
    run.add_argument(
        "--eval-episodes",
        type=int,
        default=10,
        help="evaluation episodes (>= 10 for the summary)",
    )
    run.add_argument("--tensorboard", type=Path, help="TensorBoard log directory")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="train these seeds at once as one batched population (env backend "
        "torch; instead of --seed)",
    )
    return parser  # fmt: skip


def config_from_args(args: argparse.Namespace) -> PPOConfig:
    """Defaults, then the preset or the resumed run's config, then the flags given."""
    names = {f.name for f in dataclasses.fields(PPOConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "hidden_sizes" in given:
        given["hidden_sizes"] = tuple(given["hidden_sizes"])
    if args.resume is not None:
        base = PPOConfig.from_dict(load_checkpoint(args.resume)["config"])
        changed = {
            k: v
            for k, v in given.items()
            if k != "total_steps" and getattr(base, k) != v
        }
        if changed:
            flags = ", ".join(
                f"--{k.replace('_', '-')} {v!r} (saved: {getattr(base, k)!r})"
                for k, v in changed.items()
            )
            raise ValueError(
                f"--resume continues {args.resume} with its saved config; only "
                f"--total-steps may change, but you gave {flags}"
            )
        return base.replace(**given)
    if args.preset is not None:
        if given.pop("env_id", args.preset) != args.preset:
            raise ValueError(
                f"--preset {args.preset} sets the env id; drop --env-id or make it "
                f"{args.preset}"
            )
        return preset(args.preset, **given)
    env_id = given.pop("env_id", PPOConfig().env_id)
    if given.get("env_backend") == "torch" and env_id in FAST_PRESETS:
        return preset(env_id, **given)  # the batched env's fast settings
    given["env_id"] = env_id
    return PPOConfig(**given)


def summary(result: Any, eval_returns: Sequence[float]) -> dict[str, Any]:
    """The --summary-json object (NaN written as null)."""
    wall = result.wall_seconds
    history = [{k: _json_number(v) for k, v in row.items()} for row in result.history]
    return {
        "env_id": result.config.env_id,
        "config": result.config.to_dict(),
        "total_steps": result.global_step,
        "wall_seconds": wall,
        "steps_per_second": result.global_step / wall if wall > 0 else None,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(sum(eval_returns) / len(eval_returns)),
        "eval_return_std": float(statistics.pstdev(eval_returns)),
        "first_step_solved": result.first_step_solved,
        "seconds_to_solve": result.seconds_to_solve,
        "diagnosis": [finding.as_dict() for finding in result.diagnosis],
        "history": history,
    }


def population_summary(
    result: Any, eval_returns: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """The --summary-json object of a population (`--seeds`): the population's
    time and speed (env steps of all members per second), and one entry per member
    with its evaluation, time to solve and the doctor's findings."""
    members = []
    for member, returns in zip(result.members, eval_returns, strict=True):
        members.append(
            {
                "seed": member.seed,
                "variant": member.variant,
                "eval_return_mean": float(sum(returns) / len(returns)),
                "eval_return_std": float(statistics.pstdev(returns)),
                "first_step_solved": member.first_step_solved,
                "seconds_to_solve": member.seconds_to_solve,
                "diagnosis": [finding.as_dict() for finding in member.diagnosis],
            }
        )
    return {
        "env_id": result.config.env_id,
        "config": {k: v for k, v in result.config.to_dict().items() if k != "seed"},
        "seeds": [m.seed for m in result.members],
        "total_steps": result.global_step,
        "wall_seconds": result.wall_seconds,
        "steps_per_second": result.member_steps_per_second,
        "eval_episodes": len(eval_returns[0]),
        "members": members,
    }


def population_main(args: argparse.Namespace, config: PPOConfig) -> int:
    """`--seeds`: train the seeds as one population, evaluate every member."""
    refused = [
        flag
        for flag, value in (
            ("--resume", args.resume),
            ("--save", args.save),
            ("--tensorboard", args.tensorboard),
            ("--checkpoint-every", args.checkpoint_every),
            ("--seed", "seed" in vars(args)),
        )
        if value
    ]
    if refused:
        print(
            f"error: --seeds trains a population, which does not take "
            f"{', '.join(refused)}; drop it, or train one seed with --seed",
            file=sys.stderr,
        )
        return 2
    seeds = args.seeds
    try:
        member_specs(config, seeds, None)  # every check, before any output
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"training {config.env_id} for {config.total_steps} steps, "
        f"{len(seeds)} seeds as one population"
    )
    result = train_population(config, seeds, progress=not args.no_progress)
    episodes = max(args.eval_episodes, 1)
    returns = [evaluate(m.agent, config.env_id, episodes) for m in result.members]
    threshold = gym.spec(config.env_id).reward_threshold
    good = sum(float(r.mean()) >= threshold for r in returns) if threshold else None
    print(
        f"done: {len(seeds)} members x {result.global_step} steps in "
        f"{result.wall_seconds:.1f} s ({result.member_steps_per_second:.0f} member "
        f"steps/s); {result.solved} solved while training; evaluation >= "
        f"{threshold}: {good} of {len(seeds)}"
    )
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_obj = population_summary(result, [r.tolist() for r in returns])
        args.summary_json.write_text(json.dumps(summary_obj, indent=1))
    return 0


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    extra = missing_extra(config.env_id)
    if extra is not None:
        print(
            f"error: {config.env_id} needs the {extra} extra: "
            f'pip install -e ".[{extra}]" (or pip install "gymnasium[{extra}]")',
            file=sys.stderr,
        )
        return 2
    if args.seeds is not None:
        return population_main(args, config)
    print(
        f"training {config.env_id} for {config.total_steps} steps (seed {config.seed})"
    )
    result = train(
        config,
        resume_from=args.resume,
        save_path=args.save,
        checkpoint_every=args.checkpoint_every,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        tensorboard_dir=args.tensorboard,
    )
    returns = evaluate(result.agent, config.env_id, episodes=max(args.eval_episodes, 1))
    print(
        f"done: {result.global_step} steps in {result.wall_seconds:.1f} s "
        f"({result.global_step / max(result.wall_seconds, 1e-9):.0f} steps/s); "
        f"eval return {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} "
        f"episodes; solved at step {result.first_step_solved}"
    )
    for finding in result.diagnosis:
        print(f"doctor: {finding}")
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(
            json.dumps(summary(result, returns.tolist()), indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
