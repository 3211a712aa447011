"""The layout of the grader's records (see `ppo_lessons.grading.records`): the
grader's process checks that what it loaded is what the recorder writes before
anything is replayed (`validate`).
"""

from __future__ import annotations

import torch

from ppo_lessons.grading.record_modules import LAYERS
from ppo_lessons.grading.record_values import (
    FORMAT,
    MAX_DEPTH,
    MAX_MODULE_DEPTH,
    MAX_STATE_DEPTH,
    MAX_STATE_ITEMS,
    VERSION,
    MalformedRecords,
)


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
