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

The parts: `record_values` (the format's limits and exceptions; tensors and plain
data), `record_modules` (networks described and rebuilt), `record_effects` (what a
call did to its arguments, noted and repeated), `record_layout` (the records' layout
checked before any replay); this module holds the recorder, the replayer and what
a function returned.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ppo_lessons.grading.record_effects import (
    Watch,
    apply_changes,
    apply_effects,
    changes,
    repeat_events,
)
from ppo_lessons.grading.record_layout import validate
from ppo_lessons.grading.record_modules import (
    LAYERS,
    Identities,
    describe_module,
    rebuild_module,
)
from ppo_lessons.grading.record_values import (
    FORMAT,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_TEXT,
    VERSION,
    MalformedRecords,
    NotGradable,
    ReplayMismatch,
    describe_exception,
    encode_argument,
    matches,
    plain,
)

__all__ = [
    "FORMAT",
    "LAYERS",
    "VERSION",
    "MalformedRecords",
    "NotGradable",
    "Recorder",
    "ReplayMismatch",
    "Replayer",
    "decode_result",
    "encode_argument",
    "encode_result",
    "rebuild_exception",
    "recorded_exceptions",
    "validate",
]

# Bound before any student code runs, so that patching the torch namespace in the
# student's process cannot change how the recorder itself computes gradients. (The
# modules imported above bind what they use in the same way, at the same moment.)
_grad = torch.autograd.grad


# ---------------------------------------------------------------------------
# In the student's process: the recorder


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
        return {"grads": grads, "grad_error": describe_exception(error)["message"]}
    for i, g in zip(wanted, found, strict=True):
        grads[i] = None if g is None else plain(g)
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
            "value": plain(value),
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
            return {"kind": "numpy", "value": plain(torch.as_tensor(value))}
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
        watch = Watch(args)
        try:
            with watch:
                result = self.fn(*args, **kwargs)
        except Exception as error:
            call.update(watch.finish())
            call.update(changes(args, call["args"]))
            call["outcome"] = "raise"
            call["exception"] = describe_exception(error)
            raise
        except BaseException as error:  # sys.exit, KeyboardInterrupt: ends the run
            call["outcome"] = "stop"
            call["exception"] = describe_exception(error)
            raise
        call.update(watch.finish())
        call.update(changes(args, call["args"]))
        call["result"] = encode_result(result, args, identities=self.identities)
        call["outcome"] = "return"
        return result


# ---------------------------------------------------------------------------
# In the grader's process: replaying the records


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
        return rebuild_module(recorded, objects)
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
            or not all(matches(a, r) for a, r in zip(args, recorded_args, strict=True))
            or not all(matches(kwargs[k], recorded_kwargs[k]) for k in kwargs)
        ):
            raise ReplayMismatch(f"call {self.index} had other arguments")
        if call["outcome"] == "stop":
            self.stopped = call["exception"]
            raise ReplayMismatch("the function stopped the check")
        if call["outcome"] == "unfinished":
            raise ReplayMismatch("the call never finished")
        try:
            repeat_events(args, call.get("events", []))
            apply_effects(args, call)
            apply_changes(args, call)
            if call["outcome"] == "raise":
                error = rebuild_exception(call["exception"])
            else:
                return decode_result(call["result"], args, self.objects)
        except Exception as bad:  # records no function could have produced
            raise ReplayMismatch(f"call {self.index}: {type(bad).__name__}") from None
        raise error


def recorded_exceptions(records: dict) -> list[dict]:
    """The exceptions the student's function raised, in call order."""
    return [c["exception"] for c in records["calls"] if c.get("exception")]
