"""Record a student's function as a check calls it; replay the records to the check.

The student's code runs in a child process, where it can tamper with anything: patch
`torch.allclose`, the checks module or `print`, or write a file that claims success.
So the child never judges. It runs the check with the student's function wrapped in a
`Recorder`, which notes for every call the arguments, what came back (tensors with the
gradient of each output's sum with respect to every input that requires grad, or the
exception raised), and how the inputs were changed in place. The grader's own process
loads these records (`torch.load(weights_only=True)`: plain data only, no code) and
runs the very same check again with a `Replayer` in place of the student's function.
The checks are deterministic (own seeded generators), so the replayed check makes the
same calls; the replayer verifies each call's arguments and hands back the recorded
result. The verdict and its message come from the grader's untouched check.

Two kinds of exercise need more than return values, and the records hold them as
plain data too:

- a function that returns networks (`nn.Module`s): a network built only from standard
  layers (nn.Sequential, nn.Linear, nn.Tanh, ...: `LAYERS`) is recorded as its
  layers, their settings and their parameters (a parameter shared between networks,
  or returned by two calls, keeps one identity), and the replay rebuilds the same
  layers with the same tensors, which the check then runs, trains and inspects as
  it would the student's. A network of another kind (a class of the student's, a
  hook, an attribute that changes `forward`) cannot be rebuilt from plain data:
  the replay raises `NotGradable` and the exercise is left to be graded by hand;
- a function that works on objects (7.1's envs, buffer and agent, 7.2's agent,
  optimizer and generator): the recorder notes what the call did to its arguments
  (`effects`: a generator's state, a module's parameters and buffers, an optimizer's
  state, an object's plain attributes such as tensors, numbers and lists of them;
  PyTorch's global random state), and the events the check's own hooks watch
  (`events`: each outermost forward pass of an argument network, with its inputs
  and grad mode, and each step of an argument optimizer). The replayer repeats the
  events on the grader's own objects (their forward passes and hooks are the
  grader's) and then gives those objects the recorded state. What the records can
  claim this way is what a function could have done with its arguments.

What tampering can still do is make the records claim results that a function could
have produced, e.g. the reference's results; that earns what calling the reference
from the exercise cell would earn (the grader judges behaviour, not authorship).
"""

from __future__ import annotations

import builtins
import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.optim.optimizer import register_optimizer_step_post_hook

FORMAT = "ppo_lessons-grading-records"
VERSION = 1
MAX_ITEMS = 64  # elements of a returned tuple/list that are recorded
MAX_DEPTH = 3  # nesting of returned tuples/lists that is recorded
MAX_TEXT = 4000  # characters of an exception message or a returned string
MAX_STATE_ITEMS = 4096  # elements of a list/dict attribute recorded as an effect
MAX_STATE_DEPTH = 6  # nesting of plain data in effects (an optimizer's state_dict: 4)
MAX_MODULE_DEPTH = 8  # nesting of nn.Sequential in a returned network

# Bound before any student code runs, so that patching the torch namespace in the
# student's process cannot change how the recorder itself computes gradients.
_grad = torch.autograd.grad
_equal = torch.equal
_isnan = torch.isnan
_get_rng_state = torch.get_rng_state
_set_rng_state = torch.set_rng_state
_is_grad_enabled = torch.is_grad_enabled

# The layers a returned network may be built from, with the settings that make each
# one's forward: exactly these classes (not subclasses), so the grader's copy of a
# layer computes what the student's did.
LAYERS: dict[str, tuple[type, tuple[str, ...]]] = {
    "Sequential": (nn.Sequential, ()),
    "Linear": (nn.Linear, ("in_features", "out_features")),
    "Tanh": (nn.Tanh, ()),
    "ReLU": (nn.ReLU, ("inplace",)),
    "Sigmoid": (nn.Sigmoid, ()),
    "Identity": (nn.Identity, ()),
    "SiLU": (nn.SiLU, ("inplace",)),
    "GELU": (nn.GELU, ("approximate",)),
    "ELU": (nn.ELU, ("alpha", "inplace")),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope", "inplace")),
    "Softmax": (nn.Softmax, ("dim",)),
    "LogSoftmax": (nn.LogSoftmax, ("dim",)),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
}
_LAYER_NAMES = {cls: name for name, (cls, _) in LAYERS.items()}
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
          "_backward_pre_hooks", "_forward_hooks_with_kwargs",
          "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")  # fmt: skip


class ReplayMismatch(BaseException):  # noqa: N818 - not an error of the student's code
    """The replayed check asked for something the records do not hold.

    A BaseException on purpose: the checks turn every `Exception` raised by the
    student's function into "your function raised ...", and this one must pass through.
    """


class MalformedRecords(Exception):  # noqa: N818
    """The records are not what the recorder writes."""


class NotGradable(BaseException):  # noqa: N818 - passes through the checks, as above
    """The function's results cannot be rebuilt from plain data (e.g. a network of a
    class of the student's): the exercise must be graded by hand."""


# ---------------------------------------------------------------------------
# In the student's process: the recorder


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A detached, compact copy as a plain torch.Tensor (no subclass behaviour)."""
    return tensor.detach().clone().contiguous().as_subclass(torch.Tensor)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and values, NaN equal to NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if _equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (_isnan(a) & _isnan(b))).all())
    return False


def encode_argument(value: object) -> dict:
    if isinstance(value, torch.Tensor):
        return {
            "kind": "tensor",
            "value": _plain(value),
            "requires_grad": bool(value.requires_grad),
        }
    if type(value) in (bool, int, float, str) or value is None:
        return {"kind": "py", "type": type(value).__name__, "value": value}
    return {"kind": "other", "type": type(value).__name__}


def _describe_exception(error: BaseException) -> dict:
    try:
        message = str(error)
    except Exception:  # a __str__ that raises
        message = "<the exception's message could not be read>"
    return {
        "name": type(error).__name__[:200],
        "bases": [cls.__name__[:200] for cls in type(error).__mro__[1:]],
        "message": message[:MAX_TEXT],
    }


def _gradients(output: torch.Tensor, args: Sequence[object]) -> dict:
    """Gradient of output.sum() w.r.t. each argument that requires grad."""
    grads: list = [None] * len(args)
    wanted = [
        i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad
    ]
    if not output.requires_grad or not wanted:
        return {"grads": grads, "grad_error": None}
    try:
        found = _grad(
            output.sum(),
            [args[i] for i in wanted],
            allow_unused=True,
            retain_graph=True,
        )
    except Exception as error:  # e.g. a complex output: replayed as the same failure
        return {"grads": grads, "grad_error": _describe_exception(error)["message"]}
    for i, g in zip(wanted, found, strict=True):
        grads[i] = None if g is None else _plain(g)
    return {"grads": grads, "grad_error": None}


def encode_result(
    value: object,
    args: Sequence[object],
    depth: int = 0,
    identities: Identities | None = None,
) -> dict:
    """What the student's function returned, as plain data (see `decode_result`)."""
    identities = Identities() if identities is None else identities
    if isinstance(value, nn.Module):
        return describe_module(value, identities)
    if type(value) is dict and depth < MAX_DEPTH:
        keys = list(value)[:MAX_ITEMS]
        if all(type(k) in (str, int) for k in keys):
            return {
                "kind": "dict",
                "keys": [k[:MAX_TEXT] if isinstance(k, str) else k for k in keys],
                "items": [
                    encode_result(value[k], args, depth + 1, identities) for k in keys
                ],
            }
    if isinstance(value, torch.Tensor):
        return {
            "kind": "tensor",
            "value": _plain(value),
            "requires_grad": bool(value.requires_grad),
            **_gradients(value, args),
        }
    if isinstance(value, tuple | list) and depth < MAX_DEPTH:
        return {
            "kind": "tuple" if isinstance(value, tuple) else "list",
            "items": [
                encode_result(v, args, depth + 1, identities) for v in value[:MAX_ITEMS]
            ],
        }
    kind = type(value)
    if kind in (bool, int, float) or value is None:
        return {"kind": "py", "value": value}
    if kind is str:
        return {"kind": "py", "value": value[:MAX_TEXT]}
    if kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        try:
            return {"kind": "numpy", "value": _plain(torch.as_tensor(value))}
        except Exception:
            pass  # an object array: recorded by its type only
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {
            "kind": "number",
            "base": "float" if isinstance(value, float) else "int",
            "value": float(value) if isinstance(value, float) else int(value),
            "type": kind.__name__[:200],
            "module": str(kind.__module__)[:200],
        }
    return {
        "kind": "opaque",
        "type": kind.__name__[:200],
        "module": str(kind.__module__)[:200],
    }


class Recorder:
    """Stands in for the student's function and notes every call (see module doc)."""

    # no __dict__: a wrapper made with functools.update_wrapper (the trainer's call
    # counter) would copy its attributes, `calls` over the wrapper's own count
    __slots__ = ("calls", "fn", "identities")

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.calls: list[dict] = []
        self.identities = Identities()  # modules and parameters, across calls

    def __call__(self, *args: object, **kwargs: object) -> object:
        call: dict[str, Any] = {
            "args": [encode_argument(a) for a in args],
            "kwargs": {str(k): encode_argument(v) for k, v in kwargs.items()},
            "outcome": "unfinished",
        }
        self.calls.append(call)
        watch = _Watch(args)
        try:
            with watch:
                result = self.fn(*args, **kwargs)
        except Exception as error:
            call.update(watch.finish())
            call.update(_changes(args, call["args"]))
            call["outcome"] = "raise"
            call["exception"] = _describe_exception(error)
            raise
        except BaseException as error:  # sys.exit, KeyboardInterrupt: ends the run
            call["outcome"] = "stop"
            call["exception"] = _describe_exception(error)
            raise
        call.update(watch.finish())
        call.update(_changes(args, call["args"]))
        call["result"] = encode_result(result, args, identities=self.identities)
        call["outcome"] = "return"
        return result


def _changes(args: Sequence[object], before: Sequence[dict]) -> dict:
    """Which tensor arguments the call changed in place, and into what."""
    modified: list = [None] * len(args)
    requires_grad: list = [None] * len(args)
    for i, (arg, rec) in enumerate(zip(args, before, strict=True)):
        if isinstance(arg, torch.Tensor) and rec["kind"] == "tensor":
            requires_grad[i] = bool(arg.requires_grad)
            if not _same(arg.detach(), rec["value"]):
                modified[i] = _plain(arg)
    return {"modified": modified, "requires_grad_after": requires_grad}


class Identities:
    """Numbers the objects (networks, parameters) that results hold, the same number
    for the same object across calls; keeps them alive so that no id is reused."""

    def __init__(self) -> None:
        self.numbers: dict[int, tuple[int, object]] = {}

    def number(self, obj: object) -> int:
        if id(obj) not in self.numbers:
            self.numbers[id(obj)] = (len(self.numbers), obj)
        return self.numbers[id(obj)][0]


class _Opaque(Exception):  # noqa: N818
    """A network that cannot be described as standard layers."""


def _hooked(module: nn.Module) -> bool:
    return any(getattr(module, name, None) for name in _HOOKS)


def _describe(module: nn.Module, ids: Identities, depth: int) -> dict:
    name = _LAYER_NAMES.get(type(module))
    if name is None or depth > MAX_MODULE_DEPTH or _hooked(module):
        raise _Opaque
    if module._buffers:
        raise _Opaque
    cls, settings = LAYERS[name]
    config = {key: getattr(module, key) for key in settings}
    if not all(type(v) in (bool, int, float, str) for v in config.values()):
        raise _Opaque
    if name == "Linear":
        fresh: nn.Module = nn.Linear(1, 1, device="meta")
        expected = {"weight", "bias"}
    else:
        fresh = cls() if not settings else cls(**config)
        expected = set()
    # an attribute a standard layer lacks (e.g. an instance `forward`) changes it
    if set(vars(module)) != set(vars(fresh)) or set(module._parameters) != (
        expected if name == "Linear" else set()
    ):
        raise _Opaque
    params: dict = {}
    for pname, p in module._parameters.items():
        if p is None:
            params[pname] = None
            continue
        if type(p) is not nn.Parameter:
            raise _Opaque
        params[pname] = {
            "id": ids.number(p),
            "value": _plain(p),
            "requires_grad": bool(p.requires_grad),
        }
    children = []
    if name == "Sequential":
        for cname, child in module._modules.items():
            if child is None:
                raise _Opaque
            children.append([str(cname), _describe(child, ids, depth + 1)])
    elif module._modules:
        raise _Opaque
    return {
        "kind": "module",
        "id": ids.number(module),
        "layer": name,
        "training": bool(module.training),
        "config": config,
        "params": params,
        "children": children,
    }


def describe_module(module: nn.Module, ids: Identities) -> dict:
    """A network of standard layers as plain data (see `LAYERS`); any other as
    `module_opaque`, which the replay cannot rebuild."""
    try:
        return _describe(module, ids, 0)
    except _Opaque:
        kind = type(module)
        return {
            "kind": "module_opaque",
            "type": kind.__name__[:200],
            "module": str(kind.__module__)[:200],
        }


def encode_plain(value: object, depth: int = 0) -> dict | None:
    """Plain data (tensors, numbers, strings, lists/tuples/dicts of them) as an
    encoded value; None for anything else."""
    if isinstance(value, torch.Tensor):
        return {"kind": "tensor", "value": _plain(value),
                "requires_grad": bool(value.requires_grad)}  # fmt: skip
    if type(value) in (bool, int, float) or value is None:
        return {"kind": "py", "value": value}
    if type(value) is str:
        return {"kind": "py", "value": value} if len(value) <= MAX_TEXT else None
    if depth >= MAX_STATE_DEPTH:
        return None
    if type(value) in (list, tuple) and len(value) <= MAX_STATE_ITEMS:
        items = [encode_plain(v, depth + 1) for v in value]
        if any(i is None for i in items):
            return None
        return {"kind": type(value).__name__, "items": items}
    if type(value) is dict and len(value) <= MAX_STATE_ITEMS:
        if not all(type(k) in (str, int) for k in value):
            return None
        items = [encode_plain(v, depth + 1) for v in value.values()]
        if any(i is None for i in items):
            return None
        return {"kind": "dict", "keys": list(value), "items": items}
    return None


def _plain_equal(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None or a["kind"] != b["kind"]:
        return a is b
    if a["kind"] == "tensor":
        return a["requires_grad"] == b["requires_grad"] and _same(
            a["value"], b["value"]
        )
    if a["kind"] == "py":
        x, y = a["value"], b["value"]
        return type(x) is type(y) and (
            x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        )
    if a["kind"] == "dict" and a["keys"] != b["keys"]:
        return False
    return len(a["items"]) == len(b["items"]) and all(
        _plain_equal(x, y) for x, y in zip(a["items"], b["items"], strict=True)
    )


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
                   if not _plain_equal(a, before.get(n))}  # fmt: skip
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
            if encoded is not None and not _plain_equal(encoded, before.get(name)):
                changed[str(name)] = encoded
        return {"kind": "attributes", "values": changed} if changed else None
    return None


class _Watch:
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

    def __enter__(self) -> _Watch:
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
# In the grader's process: checking the records' shape, then replaying them


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise MalformedRecords(what)


def _check_encoded(value: object, depth: int = 0) -> None:
    _require(isinstance(value, dict), "an encoded value is not a dict")
    kind = value.get("kind")
    if kind == "tensor":
        _require(isinstance(value.get("value"), torch.Tensor), "tensor without value")
        _require(isinstance(value.get("requires_grad"), bool), "requires_grad")
        if "grads" in value:
            grads = value["grads"]
            _require(isinstance(grads, list), "grads is not a list")
            _require(
                all(g is None or isinstance(g, torch.Tensor) for g in grads), "grads"
            )
            _require(
                value.get("grad_error") is None or isinstance(value["grad_error"], str),
                "grad_error",
            )
    elif kind in ("tuple", "list"):
        _require(depth <= MAX_DEPTH, "too deeply nested")
        _require(isinstance(value.get("items"), list), "items is not a list")
        for item in value["items"]:
            _check_encoded(item, depth + 1)
    elif kind == "py":
        _require(
            value.get("value") is None
            or type(value["value"]) in (bool, int, float, str),
            "a Python value of an unexpected type",
        )
    elif kind == "numpy":
        _require(isinstance(value.get("value"), torch.Tensor), "numpy value")
    elif kind == "number":
        _require(value.get("base") in ("int", "float"), "number base")
        _require(type(value.get("value")) in (int, float), "number value")
        _require(isinstance(value.get("type"), str), "number type")
        _require(isinstance(value.get("module"), str), "number module")
    elif kind == "dict":
        _require(depth <= MAX_DEPTH, "too deeply nested")
        keys, items = value.get("keys"), value.get("items")
        _require(isinstance(keys, list) and isinstance(items, list), "dict")
        _require(len(keys) == len(items), "dict keys and items")
        _require(all(type(k) in (str, int) for k in keys), "dict keys")
        for item in items:
            _check_encoded(item, depth + 1)
    elif kind == "module":
        _check_module(value, 0)
    elif kind in ("opaque", "other", "module_opaque"):
        _require(isinstance(value.get("type"), str), "type name")
    else:
        _require(False, f"unknown kind {kind!r}")


def _check_module(node: object, depth: int) -> None:
    _require(isinstance(node, dict) and node.get("kind") == "module", "module")
    _require(depth <= MAX_MODULE_DEPTH, "a network nested too deeply")
    _require(node.get("layer") in LAYERS, "a layer of an unknown kind")
    _, settings = LAYERS[node["layer"]]
    _require(type(node.get("id")) is int, "module id")
    _require(isinstance(node.get("training"), bool), "module training")
    config = node.get("config")
    _require(isinstance(config, dict) and set(config) == set(settings), "config")
    _require(all(type(v) in (bool, int, float, str) for v in config.values()), "config")
    params = node.get("params")
    wanted = {"weight", "bias"} if node["layer"] == "Linear" else set()
    _require(isinstance(params, dict) and set(params) == wanted, "params")
    _require(params.get("weight") is not None or not wanted, "a Linear without weight")
    for p in params.values():
        if p is None:
            continue
        _require(isinstance(p, dict) and type(p.get("id")) is int, "param id")
        _require(isinstance(p.get("value"), torch.Tensor), "param value")
        _require(p["value"].is_floating_point(), "param dtype")
        _require(isinstance(p.get("requires_grad"), bool), "param requires_grad")
    children = node.get("children")
    _require(isinstance(children, list), "children")
    _require(node["layer"] == "Sequential" or not children, "children of a layer")
    for child in children:
        _require(isinstance(child, list) and len(child) == 2, "child")
        _require(isinstance(child[0], str), "child name")
        _check_module(child[1], depth + 1)


def _check_plain(value: object, depth: int = 0) -> None:
    """An `encode_plain` value."""
    _require(isinstance(value, dict), "plain data is not a dict")
    _require(depth <= MAX_STATE_DEPTH + 1, "plain data nested too deeply")
    kind = value.get("kind")
    if kind == "tensor":
        _require(isinstance(value.get("value"), torch.Tensor), "tensor without value")
        _require(isinstance(value.get("requires_grad"), bool), "requires_grad")
    elif kind == "py":
        _require(
            value.get("value") is None
            or type(value["value"]) in (bool, int, float, str),
            "a Python value of an unexpected type",
        )
    elif kind in ("list", "tuple", "dict"):
        items = value.get("items")
        _require(isinstance(items, list) and len(items) <= MAX_STATE_ITEMS, "items")
        if kind == "dict":
            keys = value.get("keys")
            _require(isinstance(keys, list) and len(keys) == len(items), "keys")
            _require(all(type(k) in (str, int) for k in keys), "dict keys")
        for item in items:
            _check_plain(item, depth + 1)
    else:
        _require(False, f"unknown plain kind {kind!r}")


def _check_effects(call: dict, n: int) -> None:
    events = call.get("events", [])
    _require(isinstance(events, list), "events")
    for event in events:
        _require(isinstance(event, dict), "an event is not a dict")
        kind = event.get("kind")
        _require(kind in ("forward", "step", "unrepeatable"), "event kind")
        _require(type(event.get("arg")) is int and 0 <= event["arg"] < n, "event arg")
        if kind == "forward":
            _require(isinstance(event.get("path"), str), "event path")
            _require(isinstance(event.get("grad"), bool), "event grad")
            _require(isinstance(event.get("inputs"), list), "event inputs")
            for item in event["inputs"]:
                _check_encoded(item)
    effects = call.get("effects", [None] * n)
    _require(isinstance(effects, list) and len(effects) == n, "effects")
    for effect in effects:
        if effect is None:
            continue
        _require(isinstance(effect, dict), "an effect is not a dict")
        kind = effect.get("kind")
        if kind == "generator":
            _require(isinstance(effect.get("state"), torch.Tensor), "generator state")
        elif kind == "module_state":
            tensors = effect.get("tensors")
            _require(isinstance(tensors, dict), "module tensors")
            for name, value in tensors.items():
                _require(isinstance(name, str), "module tensor name")
                _check_plain(value)
                _require(value["kind"] == "tensor", "a module's tensor")
        elif kind == "optimizer":
            _check_plain(effect.get("state"))
            _require(effect["state"]["kind"] == "dict", "optimizer state")
        elif kind == "attributes":
            values = effect.get("values")
            _require(isinstance(values, dict), "attributes")
            for name, value in values.items():
                _require(isinstance(name, str), "attribute name")
                _check_plain(value)
        else:
            _require(kind == "unrecorded", f"unknown effect {kind!r}")
    rng = call.get("rng_after")
    _require(rng is None or isinstance(rng, torch.Tensor), "rng_after")


def validate(records: object) -> dict:
    """Return `records` if it has the recorder's layout; raise MalformedRecords."""
    _require(isinstance(records, dict), "the records are not a dict")
    _require(records.get("format") == FORMAT, "not a records file")
    _require(records.get("version") == VERSION, "records of another version")
    _require(isinstance(records.get("status"), str), "no status")
    for key in ("detail", "error_type"):
        _require(isinstance(records.get(key, ""), str), key)
    failures = records.get("import_failures")
    _require(
        isinstance(failures, list) and all(isinstance(f, str) for f in failures),
        "import_failures",
    )
    calls = records.get("calls")
    _require(isinstance(calls, list), "calls is not a list")
    for call in calls:
        _require(isinstance(call, dict), "a call is not a dict")
        _require(isinstance(call.get("args"), list), "args")
        _require(isinstance(call.get("kwargs"), dict), "kwargs")
        for arg in [*call["args"], *call["kwargs"].values()]:
            _check_encoded(arg)
        outcome = call.get("outcome")
        _require(outcome in ("return", "raise", "stop", "unfinished"), "outcome")
        if outcome in ("return", "raise"):
            n = len(call["args"])
            _check_effects(call, n)
            for key in ("modified", "requires_grad_after"):
                _require(isinstance(call.get(key), list) and len(call[key]) == n, key)
            _require(
                all(m is None or isinstance(m, torch.Tensor) for m in call["modified"]),
                "modified",
            )
        if outcome == "return":
            _require("result" in call, "a call that returned has no result")
            _check_encoded(call["result"])
        if outcome in ("raise", "stop"):
            exc = call.get("exception")
            _require(isinstance(exc, dict), "exception")
            _require(isinstance(exc.get("name"), str), "exception name")
            _require(isinstance(exc.get("message"), str), "exception message")
            _require(
                isinstance(exc.get("bases"), list)
                and all(isinstance(b, str) for b in exc["bases"]),
                "exception bases",
            )
    return records


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and _same(a.detach(), b)


def _matches(value: object, recorded: dict) -> bool:
    kind = recorded["kind"]
    if kind == "tensor":
        return (
            isinstance(value, torch.Tensor)
            and bool(value.requires_grad) == recorded["requires_grad"]
            and _nan_equal(value, recorded["value"])
        )
    if kind == "py":
        other = recorded["value"]
        if type(value).__name__ != recorded["type"]:
            return False
        if isinstance(value, float) and isinstance(other, float):
            return value == other or (math.isnan(value) and math.isnan(other))
        return value == other
    return type(value).__name__ == recorded["type"]


class _RecordedGraph(torch.autograd.Function):
    """The recorded output, with the recorded gradient of its sum w.r.t. the inputs.

    Only the vector-Jacobian product with ones (the gradient of out.sum()) was
    recorded; a backward pass with another output gradient g gets it scaled by mean(g),
    which is exact for the sums the checks differentiate.
    """

    @staticmethod
    def forward(ctx, value, grads, error, *inputs):  # type: ignore[override]
        ctx.grads = grads
        ctx.error = error
        ctx.dtypes = [x.dtype for x in inputs]
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        if ctx.error is not None:
            raise RuntimeError(ctx.error)
        scale = grad_output.sum() / max(grad_output.numel(), 1)
        out = []
        for g, dtype in zip(ctx.grads, ctx.dtypes, strict=True):
            out.append(None if g is None else (g * scale).to(dtype))
        return (None, None, None, *out)


def _dynamic(name: str, base: type, module: str, namespace: dict | None = None) -> type:
    return type(name, (base,), {"__module__": module, **(namespace or {})})


def decode_result(
    recorded: dict, args: Sequence[object], objects: dict | None = None
) -> object:
    """Rebuild what the student's function returned (tensors with their gradient,
    networks as the same standard layers; `objects`: the networks and parameters
    rebuilt so far, by number, so that one object returned twice stays one)."""
    objects = {} if objects is None else objects
    kind = recorded["kind"]
    if kind == "module":
        return _rebuild_module(recorded, objects)
    if kind == "module_opaque":
        raise NotGradable(
            f"the function returned a network of class {recorded['type']} (module "
            f"{recorded['module']}), which is not built only from standard layers "
            f"({', '.join(LAYERS)}) and cannot be rebuilt for the grader's check"
        )
    if kind == "dict":
        return {
            k: decode_result(v, args, objects)
            for k, v in zip(recorded["keys"], recorded["items"], strict=True)
        }
    if kind == "tensor":
        value = recorded["value"].clone()
        grads = recorded.get("grads") or [None] * len(args)
        error = recorded.get("grad_error")
        linked = [
            i
            for i, a in enumerate(args)
            if isinstance(a, torch.Tensor)
            and a.requires_grad
            and i < len(grads)
            and (grads[i] is not None or error is not None)
        ]
        if linked and value.is_floating_point():
            inputs = [args[i] for i in linked]
            for i in linked:
                g = grads[i]
                if g is not None and g.shape != args[i].shape:
                    raise ValueError("a gradient has the wrong shape")
            return _RecordedGraph.apply(
                value, [grads[i] for i in linked], error, *inputs
            )
        if recorded["requires_grad"] and value.is_floating_point():
            return value.requires_grad_(True)
        return value
    if kind in ("tuple", "list"):
        items = [decode_result(item, args, objects) for item in recorded["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "py":
        return recorded["value"]
    if kind == "numpy":
        return recorded["value"].numpy()
    if kind == "number":
        base = float if recorded["base"] == "float" else int
        return _dynamic(recorded["type"], base, recorded["module"])(recorded["value"])
    return _dynamic(recorded["type"], object, recorded["module"])()


def _parameter(recorded: dict, objects: dict) -> nn.Parameter:
    value = recorded["value"]
    known = objects.get(("param", recorded["id"]))
    if known is None:
        known = nn.Parameter(value.clone(), requires_grad=recorded["requires_grad"])
        objects[("param", recorded["id"])] = known
        return known
    if known.shape != value.shape or known.dtype != value.dtype:
        raise ValueError("one parameter recorded with two shapes")
    with torch.no_grad():
        known.copy_(value)
    known.requires_grad_(recorded["requires_grad"])
    return known


def _rebuild_module(node: dict, objects: dict) -> nn.Module:
    """The standard layers `node` describes, with its parameters."""
    key = ("module", node["id"])
    cls, _ = LAYERS[node["layer"]]
    params = {n: None if p is None else _parameter(p, objects)
              for n, p in node["params"].items()}  # fmt: skip
    children = [(n, _rebuild_module(c, objects)) for n, c in node["children"]]
    module = objects.get(key)
    if module is not None:  # returned before: the same object, in its new state
        if type(module) is not cls:
            raise ValueError("one network recorded as two kinds of layer")
    elif node["layer"] == "Linear":
        config = node["config"]
        weight = params["weight"]
        if tuple(weight.shape) != (config["out_features"], config["in_features"]):
            raise ValueError("a Linear whose weight does not fit its sizes")
        # built on the meta device: its own tensors are replaced, never allocated
        module = nn.Linear(1, 1, bias=params["bias"] is not None, device="meta")
        module.in_features = config["in_features"]
        module.out_features = config["out_features"]
    elif node["layer"] == "Sequential":
        module = nn.Sequential()
    else:
        module = cls(**node["config"])
    for name, p in params.items():
        if (
            name == "bias"
            and p is not None
            and p.shape != (node["config"]["out_features"],)
        ):
            raise ValueError("a Linear whose bias does not fit its sizes")
        setattr(module, name, p)
    if node["layer"] == "Sequential":
        module._modules.clear()
        for name, child in children:
            module.add_module(name, child)
    module.train(node["training"])
    objects[key] = module
    return module


def rebuild_exception(info: dict) -> Exception:
    """An exception with the recorded class name and message.

    Its class derives from the first builtin exception class among the recorded
    class's bases (RuntimeError if none), so `except NotImplementedError` still
    catches a recorded NotImplementedError.
    """
    message = info["message"]
    candidates = [info["name"], *info["bases"], "RuntimeError"]
    for name in candidates:
        base = getattr(builtins, name, None)
        if not (isinstance(base, type) and issubclass(base, Exception)):
            continue
        cls = _dynamic(info["name"], base, "builtins", {"__str__": lambda _: message})
        try:
            return cls()
        except Exception:  # a builtin whose constructor needs arguments
            continue
    return RuntimeError(message)  # unreachable: RuntimeError() always works


class Replayer:
    """Stands in for the student's function in the grader's check (see module doc)."""

    __slots__ = ("calls", "index", "objects", "stopped")  # no __dict__, as Recorder

    def __init__(self, calls: list[dict]) -> None:
        self.calls = calls
        self.index = 0
        self.stopped: dict | None = None
        self.objects: dict = {}  # the networks and parameters rebuilt, by number

    def __call__(self, *args: object, **kwargs: object) -> object:
        if self.index >= len(self.calls):
            raise ReplayMismatch("the check called the function more often")
        call = self.calls[self.index]
        self.index += 1
        recorded_args, recorded_kwargs = call["args"], call["kwargs"]
        if (
            len(args) != len(recorded_args)
            or set(kwargs) != set(recorded_kwargs)
            or not all(_matches(a, r) for a, r in zip(args, recorded_args, strict=True))
            or not all(_matches(kwargs[k], recorded_kwargs[k]) for k in kwargs)
        ):
            raise ReplayMismatch(f"call {self.index} had other arguments")
        if call["outcome"] == "stop":
            self.stopped = call["exception"]
            raise ReplayMismatch("the function stopped the check")
        if call["outcome"] == "unfinished":
            raise ReplayMismatch("the call never finished")
        try:
            _repeat_events(args, call.get("events", []))
            _apply_effects(args, call)
            _apply_changes(args, call)
            if call["outcome"] == "raise":
                error = rebuild_exception(call["exception"])
            else:
                return decode_result(call["result"], args, self.objects)
        except Exception as bad:  # records no function could have produced
            raise ReplayMismatch(f"call {self.index}: {type(bad).__name__}") from None
        raise error


def _apply_changes(args: Sequence[object], call: dict) -> None:
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


def _decode_plain(value: dict) -> object:
    kind = value["kind"]
    if kind == "tensor":
        tensor = value["value"].clone()
        if value["requires_grad"] and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor
    if kind == "py":
        return value["value"]
    items = [_decode_plain(v) for v in value["items"]]
    if kind == "dict":
        return dict(zip(value["keys"], items, strict=True))
    return tuple(items) if kind == "tuple" else items


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
        return _decode_plain(value)
    if value["kind"] == "list" and isinstance(current, list):
        current[:] = _decode_plain(value)
        return current
    if value["kind"] == "dict" and isinstance(current, dict):
        new = _decode_plain(value)
        current.clear()
        current.update(new)
        return current
    return _decode_plain(value)


def _decode_input(value: dict) -> object:
    if value["kind"] == "tensor":
        tensor = value["value"].clone()
        return tensor.requires_grad_(True) if value["requires_grad"] else tensor
    if value["kind"] == "py":
        return value["value"]
    raise NotGradable(f"a network was called with a {value['type']}")


def _repeat_events(args: Sequence[object], events: list[dict]) -> None:
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


def _apply_effects(args: Sequence[object], call: dict) -> None:
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
            arg.load_state_dict(_decode_plain(effect["state"]))
        elif kind == "attributes":
            if not _is_instance_state(arg):
                raise ValueError("attributes for something without any")
            state = vars(arg)
            for name, value in effect["values"].items():
                if name in state:  # only what the object had: no new attributes
                    state[name] = _assign(state[name], value)
    if call.get("rng_after") is not None:
        _set_rng_state(call["rng_after"])


def recorded_exceptions(records: dict) -> list[dict]:
    """The exceptions the student's function raised, in call order."""
    return [c["exception"] for c in records["calls"] if c.get("exception")]
