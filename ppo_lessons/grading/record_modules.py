"""Networks in the grader's records (see `ppo_lessons.grading.records`): a network
built only from standard layers (`LAYERS`) described as plain data in the student's
process, and rebuilt as the same layers with the same tensors in the grader's.
"""

from __future__ import annotations

import torch
from torch import nn

from ppo_lessons.grading.record_values import MAX_MODULE_DEPTH, plain

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


# ---------------------------------------------------------------------------
# In the student's process: a network described


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
            "value": plain(p),
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


# ---------------------------------------------------------------------------
# In the grader's process: a network rebuilt


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


def rebuild_module(node: dict, objects: dict) -> nn.Module:
    """The standard layers `node` describes, with its parameters."""
    key = ("module", node["id"])
    cls, _ = LAYERS[node["layer"]]
    params = {n: None if p is None else _parameter(p, objects)
              for n, p in node["params"].items()}  # fmt: skip
    children = [(n, rebuild_module(c, objects)) for n, c in node["children"]]
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
