"""Raw environment steps per second: the batched PyTorch envs against Gymnasium.

For each env id and each N, steps N copies with random actions for about `--seconds`
seconds, once as `ppo_lessons.torch_envs` (one tensor step for all N) and once as
Gymnasium's `SyncVectorEnv` from `ppo_lessons.envs.make_vector_env` (a Python loop
over N envs), and prints env steps per second (N x vector steps per second), their
ratio, and the number of PyTorch operations one batched step launches. Each rate is
the best of three equal windows, to keep other processes' noise out.

    python bench/bench_torch_envs.py                       # CPU, all four envs
    python bench/bench_torch_envs.py --device cuda --max-gym-envs 256

Actions are drawn before timing (a pool of 16 batches, used in turn), so both sides
time the env alone. Gymnasium's vector env is skipped above `--max-gym-envs` (making
and stepping thousands of Python envs takes long and says little more).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from ppo_lessons.envs import make_vector_env
from ppo_lessons.torch_envs import TORCH_ENV_IDS, make_torch_vector_env

ACTION_POOL = 16


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_loop(
    step, seconds: float, device: torch.device | None = None, windows: int = 3
) -> float:
    """Vector steps per second of `step(i)` after a short warm-up: the best of
    `windows` runs of `seconds / windows` each (the best is the least disturbed by
    other processes on a shared machine)."""
    for i in range(5):
        step(i)
    best, count = 0.0, 0
    for _ in range(windows):
        if device is not None:
            _synchronize(device)
        start, first = time.perf_counter(), count
        while True:
            for _ in range(10):
                step(count)
                count += 1
            if device is not None:
                _synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                break
        best = max(best, (count - first) / elapsed)
    return best


def torch_steps_per_second(
    env_id: str, num_envs: int, device: str, seconds: float
) -> tuple[float, int]:
    """(env steps per second, PyTorch operations per step) of the batched env."""
    envs = make_torch_vector_env(env_id, num_envs, seed=0, device=device)
    envs.reset()
    envs.action_space.seed(0)
    pool = [
        torch.as_tensor(envs.action_space.sample(), device=envs.device)
        for _ in range(ACTION_POOL)
    ]
    rate = _timed_loop(lambda i: envs.step(pool[i % ACTION_POOL]), seconds, envs.device)
    return rate * num_envs, count_ops(envs, pool[0])


def count_ops(envs, actions: torch.Tensor) -> int:
    """Top-level aten operations launched by one `envs.step(actions)`."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        envs.step(actions)
    return sum(
        1
        for event in prof.events()
        if event.name.startswith("aten::") and event.cpu_parent is None
    )


def gym_steps_per_second(env_id: str, num_envs: int, seconds: float) -> float:
    envs = make_vector_env(env_id, num_envs, seed=0)
    envs.reset(seed=0)
    pool = [envs.action_space.sample() for _ in range(ACTION_POOL)]
    rate = _timed_loop(lambda i: envs.step(pool[i % ACTION_POOL]), seconds)
    envs.close()
    return rate * num_envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the torch envs run")
    parser.add_argument("--env-ids", nargs="+", default=list(TORCH_ENV_IDS))
    parser.add_argument(
        "--num-envs", nargs="+", type=int, default=[1, 16, 256, 4096, 16384]
    )
    parser.add_argument("--max-gym-envs", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"device={args.device} torch threads={torch.get_num_threads()} "
        f"torch {torch.__version__}; env steps per second (N x vector steps/s)"
    )
    header = f"{'env':<26}{'N':>7}{'torch':>14}{'gymnasium':>14}{'ratio':>9}{'ops':>6}"
    print(header)
    print("-" * len(header))
    for env_id in args.env_ids:
        for num_envs in args.num_envs:
            ours, ops = torch_steps_per_second(
                env_id, num_envs, args.device, args.seconds
            )
            if num_envs <= args.max_gym_envs:
                theirs = gym_steps_per_second(env_id, num_envs, args.seconds)
                theirs_text, ratio_text = f"{theirs:14,.0f}", f"{ours / theirs:8.2f}x"
            else:
                theirs_text, ratio_text = f"{'(skipped)':>14}", f"{'':>9}"
            print(
                f"{env_id:<26}{num_envs:>7}{ours:14,.0f}{theirs_text}{ratio_text}"
                f"{ops:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()
