"""Argument checks shared by the lesson functions.

Every public tensor function validates its inputs with these helpers so that a bad
call fails with a message naming the argument, the value and what is allowed, instead
of a broadcasting error from deep inside PyTorch.
"""

from __future__ import annotations

import math

import torch


def require_tensor(name: str, value: object) -> torch.Tensor:
    """Return `value` if it is a tensor, else raise `TypeError` naming `name`."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}; "
            f"convert it with torch.as_tensor({name})"
        )
    return value


def require_float_tensor(name: str, value: object) -> torch.Tensor:
    """A floating-point tensor (float16/32/64, bfloat16)."""
    tensor = require_tensor(name, value)
    if not tensor.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {tensor.dtype}; "
            f"use {name}.float()"
        )
    return tensor


def require_time_major(name: str, tensor: torch.Tensor) -> None:
    """Shape [T] (one trajectory) or [T, N] (N parallel trajectories)."""
    if tensor.dim() not in (1, 2):
        raise ValueError(
            f"{name} must have shape [T] or [T, N], got shape {list(tensor.shape)}"
        )


def require_same_shape(reference: str, tensors: dict[str, torch.Tensor]) -> None:
    """All tensors in `tensors` have the shape of `tensors[reference]`."""
    shape = tensors[reference].shape
    for name, tensor in tensors.items():
        if tensor.shape != shape:
            raise ValueError(
                f"{name} has shape {list(tensor.shape)} but {reference} has shape "
                f"{list(shape)}; they must match element for element"
            )


def require_same_device(tensors: dict[str, torch.Tensor]) -> None:
    """All tensors live on one device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listing}")


def require_flags(name: str, value: object, shape: torch.Size) -> torch.Tensor:
    """Episode-end flags: a bool or 0/1 tensor of the given shape."""
    tensor = require_tensor(name, value)
    if tensor.shape != shape:
        raise ValueError(
            f"{name} has shape {list(tensor.shape)} but rewards has shape "
            f"{list(shape)}; one flag per transition is required"
        )
    if tensor.dtype != torch.bool:
        bad = (tensor != 0) & (tensor != 1)
        if bool(bad.any()):
            raise ValueError(
                f"{name} must hold only 0/1 (or True/False), got values such as "
                f"{tensor[bad].flatten()[:3].tolist()}"
            )
    return tensor


def require_unit_interval(name: str, value: object) -> float:
    """A real number in [0, 1] (gamma, lam)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not (0.0 <= float(value) <= 1.0) or math.isnan(float(value)):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def require_positive(name: str, value: object) -> float:
    """A finite real number > 0 (clip_eps)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not (float(value) > 0.0) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def require_float_tensors(**tensors: object) -> dict[str, torch.Tensor]:
    """Same-shaped floating-point tensors on one device, named by the keywords (the
    first one is the shape reference); returns them by name."""
    checked = {name: require_float_tensor(name, t) for name, t in tensors.items()}
    require_same_shape(next(iter(checked)), checked)
    require_same_device(checked)
    return checked
