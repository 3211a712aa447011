"""Checkpoints: everything needed to resume a run exactly, stored safely.

A checkpoint is a dict of tensors and plain Python values, written with `torch.save`
to a temporary file and renamed over the target (an atomic replace), so a crash while
saving never destroys the last good checkpoint. It is read with
`torch.load(..., weights_only=True)`: a file holding a pickled object (which could run
arbitrary code when loaded) is refused.

What it holds (`ppo_lessons.trainer.Run.state_dict` makes it): the config, the
networks (with the observation statistics), the
optimizer, the random-number generators, the reward-scaling statistics, the step
counters and history, and the environments' own state (physics state, time-limit
counters, their random generators), so that a resumed run continues as if it had
never stopped. The env state is captured generically from the plain attributes of
each wrapper layer; this works for in-process (`SyncVectorEnv`) envs and for the
batched tensor envs of `ppo_lessons.torch_envs`. Async envs
live in subprocesses: a resumed async run starts fresh episodes instead.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ppo_lessons.torch_envs import TorchVectorEnv

__all__ = [
    "FORMAT",
    "env_state",
    "flat_optimizer_state",
    "load_checkpoint",
    "new_run_id",
    "require_writable",
    "restore_env_state",
    "save_checkpoint",
]

FORMAT = "ppo_lessons.checkpoint/1"
PLAIN = (bool, int, float, str, type(None))


def new_run_id() -> str:
    """A random id that tells runs apart (it never affects learning)."""
    return uuid.uuid4().hex


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: temporary file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; refuse anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"refusing to load {path}: it holds pickled Python objects, which could "
            f"run arbitrary code (torch.load weights_only=True said: {error})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ppo_lessons checkpoint ({FORMAT})")
    return state


def require_writable(path: Path, run_id: str, overwrite: bool) -> None:
    """Never replace a checkpoint of a different run without `overwrite=True`."""
    if overwrite or not path.exists():
        return
    try:
        existing = load_checkpoint(path).get("run_id")
    except (ValueError, RuntimeError, OSError):
        existing = None
    if existing != run_id:
        raise FileExistsError(
            f"{path} already holds a checkpoint of a different run (or another file); "
            "pass overwrite=True (CLI: --overwrite) to replace it, or choose another "
            "path"
        )


# ---------------------------------------------------------------- env state


def _layers(env: gym.Env) -> list[gym.Env]:
    """The wrapper chain of one env, outermost first, down to the unwrapped env."""
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _plain_vars(obj: object) -> dict[str, Any]:
    """An object's attributes that are plain values, arrays or NumPy generators."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if isinstance(value, np.random.Generator):
            out[name] = {"rng": value.bit_generator.state}
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[name] = {"array": torch.from_numpy(value.copy())}
        elif isinstance(value, PLAIN) or (
            isinstance(value, tuple) and all(isinstance(v, PLAIN) for v in value)
        ):
            out[name] = {"value": value}
    return out


def _restore_vars(obj: object, saved: dict[str, Any]) -> None:
    for name, entry in saved.items():
        if "rng" in entry:
            rng = np.random.Generator(np.random.PCG64())
            rng.bit_generator.state = entry["rng"]
            setattr(obj, name, rng)
        elif "array" in entry:
            setattr(obj, name, entry["array"].numpy().copy())
        else:
            setattr(obj, name, entry["value"])


def env_state(envs: gym.vector.VectorEnv) -> list | dict | None:
    """The state of every sub-env of an in-process vector env, or of a batched
    tensor env (None for async)."""
    if isinstance(envs, TorchVectorEnv):
        return envs.env_state()
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        return None
    return [[_plain_vars(layer) for layer in _layers(env)] for env in envs.envs]


def restore_env_state(envs: gym.vector.VectorEnv, saved: list | dict) -> None:
    if isinstance(envs, TorchVectorEnv):
        envs.load_env_state(saved)
        return
    for env, layers in zip(envs.envs, saved, strict=True):
        for layer, values in zip(_layers(env), layers, strict=True):
            _restore_vars(layer, values)


# ---------------------------------------------------------------- optimizer state


def flat_optimizer_state(saved: dict[str, Any]) -> dict[str, Any]:
    """The Adam state of a checkpoint as the trainer's single flat parameter tensor
    holds it (`ppo_lessons.speed.FlatAdam`). Checkpoints written before
    the parameters were flattened hold one state per parameter tensor, in the
    agent's parameter order: their moments are concatenated in that order (the
    step count is the same for all), so those runs resume where they stopped."""
    groups = saved["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) <= 1:
        return saved
    per_param = [saved["state"].get(i) for i in groups[0]["params"]]
    if all(entry is None for entry in per_param):  # saved before the first step
        return {"state": {}, "param_groups": [{**groups[0], "params": [0]}]}
    if any(entry is None for entry in per_param):
        raise ValueError(
            "the checkpoint's optimizer state covers only some of the agent's "
            "parameters; it cannot be resumed"
        )
    state = {
        0: {
            "step": per_param[0]["step"],
            **{
                key: torch.cat([entry[key].reshape(-1) for entry in per_param])
                for key in ("exp_avg", "exp_avg_sq")
            },
        }
    }
    return {"state": state, "param_groups": [{**groups[0], "params": [0]}]}
