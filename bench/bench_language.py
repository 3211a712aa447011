"""Lesson 10's costs: pre-training the tiny language model, then fine-tuning it with
RLHF's PPO and with GRPO, for each seed given; the held-out reward before and after.

Pre-training runs in a fresh cache folder, so it is measured, not read back. Printed
per seed and method: pre-training seconds (once per seed), fine-tuning seconds, the
held-out reward before and after, the per-token KL to the reference, and the threads
PyTorch used. State the machine and whether it was quiet when you record the numbers
(docs/benchmarks.md).

    OMP_NUM_THREADS=2 python bench/bench_language.py --seeds 7 8
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from ppo_lessons.language.finetune import finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--methods", nargs="+", default=["ppo", "grpo"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["PPO_LESSONS_CACHE"] = cache
        for seed in args.seeds:
            for method in args.methods:
                s = finetune(method, seed, progress=False).summary()
                print(
                    f"seed {seed} {method:4}: pre-training {s['pretrain_seconds']:6.1f} s, "
                    f"fine-tuning {s['finetune_seconds']:6.1f} s, reward "
                    f"{s['reward_before']:.3f} -> {s['reward_after']:.3f}, "
                    f"KL/token {s['kl_per_token']:.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
