"""Fine-tune lesson 10's tiny language model from a terminal.

    python -m ppo_lessons.language --method ppo --seed 3 --summary-json ppo.json
    python -m ppo_lessons.language --method grpo --seed 3 --kl-coef 0 --reward lenient

Pre-trains the model of that seed (or reuses the one already pre-trained and cached,
see `ppo_lessons.language.pretrain.cache_dir`), fine-tunes it and prints the summary:
the held-out reward before and after, the per-token KL to the reference and the times.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from ppo_lessons.language.finetune import FinetuneConfig, finetune

FLAGS = (
    "iterations",
    "kl_coef",
    "learning_rate",
    "reward",
    "aggregation",
    "group_size",
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ppo_lessons.language",
        description="Fine-tune the lesson-10 language model with PPO or GRPO.",
    )
    p.add_argument("--method", choices=["ppo", "grpo"], required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summary-json", type=Path, help="also write the summary here")
    p.add_argument("--overwrite", action="store_true", help="replace --summary-json")
    p.add_argument("--no-progress", action="store_true")
    defaults = FinetuneConfig()
    for f in fields(FinetuneConfig):
        if f.name in FLAGS:
            p.add_argument(
                "--" + f.name.replace("_", "-"),
                type=type(getattr(defaults, f.name)),
                default=getattr(defaults, f.name),
                help=f"(default {getattr(defaults, f.name)})",
            )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.summary_json and args.summary_json.exists() and not args.overwrite:
        print(
            f"--summary-json {args.summary_json} exists; pass --overwrite to replace it",
            file=sys.stderr,
        )
        return 2
    try:
        config = replace(
            FinetuneConfig(), **{name: getattr(args, name) for name in FLAGS}
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = finetune(
        args.method, args.seed, config=config, progress=not args.no_progress
    )
    summary = result.summary()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
