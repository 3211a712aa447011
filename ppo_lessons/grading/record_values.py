"""Plain data for the grader's records (see `ppo_lessons.grading.records`): the
format's limits and exceptions, and tensors, Python values and nested lists, tuples
and dicts turned into what `torch.load(weights_only=True)` reads back, and back again.
"""

from __future__ import annotations

import math

import torch

FORMAT = "ppo_lessons-grading-records"
VERSION = 1
MAX_ITEMS = 64  # elements of a returned tuple/list that are recorded
MAX_DEPTH = 3  # nesting of returned tuples/lists that is recorded
MAX_TEXT = 4000  # characters of an exception message or a returned string
MAX_STATE_ITEMS = 4096  # elements of a list/dict attribute recorded as an effect
MAX_STATE_DEPTH = 6  # nesting of plain data in effects (an optimizer's state_dict: 4)
MAX_MODULE_DEPTH = 8  # nesting of nn.Sequential in a returned network

# Bound before any student code runs (`records` imports this module first), so that
# patching the torch namespace in the student's process cannot change how values
# are compared.
_equal = torch.equal
_isnan = torch.isnan


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
# Tensors and Python values


def plain(tensor: torch.Tensor) -> torch.Tensor:
    """A detached, compact copy as a plain torch.Tensor (no subclass behaviour)."""
    return tensor.detach().clone().contiguous().as_subclass(torch.Tensor)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
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
            "value": plain(value),
            "requires_grad": bool(value.requires_grad),
        }
    if type(value) in (bool, int, float, str) or value is None:
        return {"kind": "py", "type": type(value).__name__, "value": value}
    return {"kind": "other", "type": type(value).__name__}


def describe_exception(error: BaseException) -> dict:
    try:
        message = str(error)
    except Exception:  # a __str__ that raises
        message = "<the exception's message could not be read>"
    return {
        "name": type(error).__name__[:200],
        "bases": [cls.__name__[:200] for cls in type(error).__mro__[1:]],
        "message": message[:MAX_TEXT],
    }


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and same(a.detach(), b)


def matches(value: object, recorded: dict) -> bool:
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


# ---------------------------------------------------------------------------
# Plain data: tensors, numbers, strings, lists/tuples/dicts of them


def encode_plain(value: object, depth: int = 0) -> dict | None:
    """Plain data (tensors, numbers, strings, lists/tuples/dicts of them) as an
    encoded value; None for anything else."""
    if isinstance(value, torch.Tensor):
        return {"kind": "tensor", "value": plain(value),
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


def plain_equal(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None or a["kind"] != b["kind"]:
        return a is b
    if a["kind"] == "tensor":
        return a["requires_grad"] == b["requires_grad"] and same(a["value"], b["value"])
    if a["kind"] == "py":
        x, y = a["value"], b["value"]
        return type(x) is type(y) and (
            x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        )
    if a["kind"] == "dict" and a["keys"] != b["keys"]:
        return False
    return len(a["items"]) == len(b["items"]) and all(
        plain_equal(x, y) for x, y in zip(a["items"], b["items"], strict=True)
    )


def decode_plain(value: dict) -> object:
    kind = value["kind"]
    if kind == "tensor":
        tensor = value["value"].clone()
        if value["requires_grad"] and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor
    if kind == "py":
        return value["value"]
    items = [decode_plain(v) for v in value["items"]]
    if kind == "dict":
        return dict(zip(value["keys"], items, strict=True))
    return tuple(items) if kind == "tuple" else items
