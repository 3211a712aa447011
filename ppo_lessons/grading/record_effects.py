"""Side effects in the grader's records (see `ppo_lessons.grading.records`): what a
call did to its arguments (tensors changed in place, a generator's state, a module's
tensors, an optimizer's state, an object's plain attributes, PyTorch's global random
state) and the events the check's hooks watch (forward passes, optimizer steps),
noted in the student's process and repeated on the grader's own objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.optim.optimizer import register_optimizer_step_post_hook

from ppo_lessons.grading.record_values import (
    NotGradable,
    decode_plain,
    encode_argument,
    encode_plain,
    plain,
    plain_equal,
    same,
)

# Bound before any student code runs (`records` imports this module first), so that
# patching the torch namespace in the student's process cannot change what the
# recorder notes.
_equal = torch.equal
_get_rng_state = torch.get_rng_state
_set_rng_state = torch.set_rng_state
_is_grad_enabled = torch.is_grad_enabled

# ---------------------------------------------------------------------------
# In the student's process: what a call did


def changes(args: Sequence[object], before: Sequence[dict]) -> dict:
    """Which tensor arguments the call changed in place, and into what."""
    modified: list = [None] * len(args)
    requires_grad: list = [None] * len(args)
    for i, (arg, rec) in enumerate(zip(args, before, strict=True)):
        if isinstance(arg, torch.Tensor) and rec["kind"] == "tensor":
            requires_grad[i] = bool(arg.requires_grad)
            if not same(arg.detach(), rec["value"]):
                modified[i] = plain(arg)
    return {"modified": modified, "requires_grad_after": requires_grad}


def _is_instance_state(value: object) -> bool:
    """An object whose attributes are its state (not a class, module or function)."""
    return (
        hasattr(value, "__dict__")
        and not isinstance(value, type)
        and not callable(value)
        and type(value).__module__ not in ("builtins", "types")
    )


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _snapshot(value: object) -> object:
    if isinstance(value, torch.Generator):
        return value.get_state()
    if isinstance(value, nn.Module):
        return {n: encode_plain(t) for n, t in _tensors(value).items()}
    if isinstance(value, torch.optim.Optimizer | torch.Tensor):
        return None
    if _is_instance_state(value):
        return {n: encode_plain(v) for n, v in vars(value).items()}
    return None


def _effect(value: object, before: object) -> dict | None:
    """What a call did to one argument (None: nothing the replay must repeat)."""
    if isinstance(value, torch.Generator):
        state = value.get_state()
        return None if _equal(state, before) else {"kind": "generator", "state": state}
    if isinstance(value, nn.Module):
        after = {n: encode_plain(t) for n, t in _tensors(value).items()}
        changed = {n: a for n, a in after.items()
                   if not plain_equal(a, before.get(n))}  # fmt: skip
        return {"kind": "module_state", "tensors": changed} if changed else None
    if isinstance(value, torch.optim.Optimizer):
        try:
            state = encode_plain(value.state_dict())
        except Exception:
            state = None
        if state is None:
            return {"kind": "unrecorded", "type": type(value).__name__[:200]}
        return {"kind": "optimizer", "state": state}
    if isinstance(before, dict) and _is_instance_state(value):
        changed = {}
        for name, item in vars(value).items():
            encoded = encode_plain(item)
            if encoded is not None and not plain_equal(encoded, before.get(name)):
                changed[str(name)] = encoded
        return {"kind": "attributes", "values": changed} if changed else None
    return None


class Watch:
    """While the student's function runs: the forward passes of the argument networks
    (the outermost ones, with their inputs and grad mode) and the steps of the
    argument optimizers, in order; afterwards, what the call did to each argument."""

    def __init__(self, args: Sequence[object]) -> None:
        self.args = args
        self.before = [_snapshot(a) for a in args]
        self.rng = _get_rng_state()
        self.events: list[dict] = []
        self.modules: dict[int, tuple[int, str]] = {}
        for i, arg in enumerate(args):
            if isinstance(arg, nn.Module):
                for path, module in arg.named_modules():
                    self.modules.setdefault(id(module), (i, path))
        self.optimizers = {id(a): i for i, a in enumerate(args)
                           if isinstance(a, torch.optim.Optimizer)}  # fmt: skip
        self.depth = 0
        self.open: dict | None = None
        self.handles: list = []

    def __enter__(self) -> Watch:
        if self.modules:
            self.handles.append(register_module_forward_pre_hook(self._pre))
            self.handles.append(
                register_module_forward_hook(
                    self._post, with_kwargs=True, always_call=True
                )
            )
        if self.optimizers:
            self.handles.append(register_optimizer_step_post_hook(self._step))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _pre(self, module: nn.Module, inputs: tuple) -> None:
        where = self.modules.get(id(module))
        if where is None:
            return
        if self.depth == 0:
            self.open = {
                "kind": "forward",
                "arg": where[0],
                "path": where[1],
                "inputs": [encode_argument(x) for x in inputs],
                "grad": bool(_is_grad_enabled()),
            }
            self.events.append(self.open)
        self.depth += 1

    def _post(self, module: nn.Module, inputs: tuple, kwargs: dict, output) -> None:
        if id(module) not in self.modules or self.depth == 0:
            return
        self.depth -= 1
        if self.depth == 0 and self.open is not None:
            if kwargs:  # not seen by the pre-hook: the pass cannot be repeated
                self.open["kind"] = "unrepeatable"
            self.open = None

    def _step(self, optimizer: object, *_: object) -> None:
        if id(optimizer) in self.optimizers:
            self.events.append({"kind": "step", "arg": self.optimizers[id(optimizer)]})

    def finish(self) -> dict:
        self.__exit__()
        rng = _get_rng_state()
        return {
            "events": self.events,
            "effects": [
                _effect(a, b) for a, b in zip(self.args, self.before, strict=True)
            ],  # fmt: skip
            "rng_after": None if _equal(rng, self.rng) else rng,
        }


# ---------------------------------------------------------------------------
# In the grader's process: the same done to the grader's objects


def apply_changes(args: Sequence[object], call: dict) -> None:
    for arg, after, requires_grad in zip(
        args, call["modified"], call["requires_grad_after"], strict=True
    ):
        if not isinstance(arg, torch.Tensor):
            continue
        if after is not None:
            with torch.no_grad():
                if after.shape == arg.shape and after.dtype == arg.dtype:
                    arg.copy_(after)
                else:
                    arg.data = after.clone()
        if requires_grad is not None and requires_grad != arg.requires_grad:
            # the student's process did it; where torch refuses, the check will notice
            with contextlib.suppress(RuntimeError):
                arg.requires_grad_(requires_grad)


def _assign(current: object, value: dict) -> object:
    """`current` given the recorded value: a tensor or list changed in place where it
    can be (others may hold it), else the recorded value itself."""
    if value["kind"] == "tensor" and isinstance(current, torch.Tensor):
        new, grad = value["value"], value["requires_grad"]
        if current.shape == new.shape and current.dtype == new.dtype:
            try:
                if grad and not current.requires_grad and new.is_floating_point():
                    with torch.enable_grad():  # as a copy from a tensor with grad
                        current.copy_(new.clone().requires_grad_(True))
                    return current
                if grad == current.requires_grad or current.is_leaf:
                    with torch.no_grad():
                        current.copy_(new)
                    current.requires_grad_(grad)
                    return current
            except RuntimeError:
                pass
        return decode_plain(value)
    if value["kind"] == "list" and isinstance(current, list):
        current[:] = decode_plain(value)
        return current
    if value["kind"] == "dict" and isinstance(current, dict):
        new = decode_plain(value)
        current.clear()
        current.update(new)
        return current
    return decode_plain(value)


def _decode_input(value: dict) -> object:
    if value["kind"] == "tensor":
        tensor = value["value"].clone()
        return tensor.requires_grad_(True) if value["requires_grad"] else tensor
    if value["kind"] == "py":
        return value["value"]
    raise NotGradable(f"a network was called with a {value['type']}")


def repeat_events(args: Sequence[object], events: list[dict]) -> None:
    """The recorded forward passes and optimizer steps, on the grader's objects, so
    that the check's hooks see them as they saw the student's."""
    for event in events:
        target = args[event["arg"]]
        if event["kind"] == "unrepeatable":
            raise NotGradable("a network was called with keyword arguments")
        if event["kind"] == "forward":
            if not isinstance(target, nn.Module):
                raise ValueError("a forward pass of something not a network")
            module = target.get_submodule(event["path"])
            inputs = [_decode_input(x) for x in event["inputs"]]
            with torch.set_grad_enabled(event["grad"]):
                module(*inputs)
            continue
        if not isinstance(target, torch.optim.Optimizer):
            raise ValueError("a step of something not an optimizer")
        params = [p for group in target.param_groups for p in group["params"]]
        grads = [p.grad for p in params]
        for p in params:
            p.grad = None  # the step's hooks run; the parameters are left alone
        try:
            target.step()
        finally:
            for p, g in zip(params, grads, strict=True):
                p.grad = g


def apply_effects(args: Sequence[object], call: dict) -> None:
    """Give the grader's arguments the state the call left the student's in."""
    for arg, effect in zip(args, call.get("effects", []), strict=False):
        if effect is None:
            continue
        kind = effect["kind"]
        if kind == "unrecorded":
            raise NotGradable(f"the state of a {effect['type']} could not be recorded")
        if kind == "generator":
            if not isinstance(arg, torch.Generator):
                raise ValueError("a generator's state for something else")
            arg.set_state(effect["state"])
        elif kind == "module_state":
            if not isinstance(arg, nn.Module):
                raise ValueError("a network's state for something else")
            tensors = _tensors(arg)
            for name, value in effect["tensors"].items():
                target, new = tensors[name], value["value"]
                if target.shape != new.shape or target.dtype != new.dtype:
                    raise ValueError("a parameter of another shape")
                with torch.no_grad():
                    target.copy_(new)
                if target.is_leaf:
                    target.requires_grad_(value["requires_grad"])
        elif kind == "optimizer":
            if not isinstance(arg, torch.optim.Optimizer):
                raise ValueError("an optimizer's state for something else")
            arg.load_state_dict(decode_plain(effect["state"]))
        elif kind == "attributes":
            if not _is_instance_state(arg):
                raise ValueError("attributes for something without any")
            state = vars(arg)
            for name, value in effect["values"].items():
                if name in state:  # only what the object had: no new attributes
                    state[name] = _assign(state[name], value)
    if call.get("rng_after") is not None:
        _set_rng_state(call["rng_after"])
