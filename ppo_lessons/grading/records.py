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

FORMAT = "ppo_lessons-grading-records"
VERSION = 1
MAX_ITEMS = 64  # elements of a returned tuple/list that are recorded
MAX_DEPTH = 3  # nesting of returned tuples/lists that is recorded
MAX_TEXT = 4000  # characters of an exception message or a returned string

# Bound before any student code runs, so that patching the torch namespace in the
# student's process cannot change how the recorder itself computes gradients.
_grad = torch.autograd.grad
_equal = torch.equal
_isnan = torch.isnan


class ReplayMismatch(BaseException):  # noqa: N818 - not an error of the student's code
    """The replayed check asked for something the records do not hold.

    A BaseException on purpose: the checks turn every `Exception` raised by the
    student's function into "your function raised ...", and this one must pass through.
    """


class MalformedRecords(Exception):  # noqa: N818
    """The records are not what the recorder writes."""


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


def encode_result(value: object, args: Sequence[object], depth: int = 0) -> dict:
    """What the student's function returned, as plain data (see `decode_result`)."""
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
            "items": [encode_result(v, args, depth + 1) for v in value[:MAX_ITEMS]],
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

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.calls: list[dict] = []

    def __call__(self, *args: object, **kwargs: object) -> object:
        call: dict[str, Any] = {
            "args": [encode_argument(a) for a in args],
            "kwargs": {str(k): encode_argument(v) for k, v in kwargs.items()},
            "outcome": "unfinished",
        }
        self.calls.append(call)
        try:
            result = self.fn(*args, **kwargs)
        except Exception as error:
            call.update(_changes(args, call["args"]))
            call["outcome"] = "raise"
            call["exception"] = _describe_exception(error)
            raise
        except BaseException as error:  # sys.exit, KeyboardInterrupt: ends the run
            call["outcome"] = "stop"
            call["exception"] = _describe_exception(error)
            raise
        call.update(_changes(args, call["args"]))
        call["result"] = encode_result(result, args)
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
    elif kind in ("opaque", "other"):
        _require(isinstance(value.get("type"), str), "type name")
    else:
        _require(False, f"unknown kind {kind!r}")


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


def decode_result(recorded: dict, args: Sequence[object]) -> object:
    """Rebuild what the student's function returned (tensors with their gradient)."""
    kind = recorded["kind"]
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
        items = [decode_result(item, args) for item in recorded["items"]]
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

    def __init__(self, calls: list[dict]) -> None:
        self.calls = calls
        self.index = 0
        self.stopped: dict | None = None

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
            _apply_changes(args, call)
            if call["outcome"] == "raise":
                error = rebuild_exception(call["exception"])
            else:
                return decode_result(call["result"], args)
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


def recorded_exceptions(records: dict) -> list[dict]:
    """The exceptions the student's function raised, in call order."""
    return [c["exception"] for c in records["calls"] if c.get("exception")]
