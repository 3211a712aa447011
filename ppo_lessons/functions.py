"""The exercise functions the trainers call, as one frozen bundle, and a student's own
in their place.

    train(config, functions={"compute_gae": my_gae, "ppo_loss": my_loss})

`LessonFunctions` has one field per exercise `train` calls (the rows of the exercise
table `ppo_lessons.exercises.EXERCISES` with a `trainer` column; `TRAINER_EXERCISES`),
each defaulting to its reference. A run holds one (`Run.functions`) and passes it,
as one argument, to every place that calls a lesson function: the rollout, the agent
(made with its two functions), the update (`ppo_lessons.update.ppo_update`'s
`functions=`), the recurrent update, a population's members and the probe ladder.
The dict a student passes (`train(config, functions={name: fn})`, what
`ppo_lessons.notebook.your_functions()` returns) becomes the bundle at the door
(`trainer_functions`), which refuses unknown names and values that are not callable.

The given functions compose: inside a given function, every exercise name it calls
as a global (`ppo_loss(...)` inside a `ppo_update`, `clipped_surrogate_objective(...)`
inside a `ppo_loss`) is the run's choice for that name, the given one or else the
reference, whatever the function's own module or notebook imported under that name
(`compose`). Each given function counts its calls, so a run can show which of them
trained (`TrainResult.function_calls`).

Naming: the lesson functions keep their contract names (`clip_eps`, `lam`), the
config keeps CleanRL's (`clip_coef`, `gae_lambda`); the mapping between the two lives
where the trainer calls the functions: `ppo_lessons.update.loss_arguments` and
`ppo_lessons.rollout.gae_from_buffer`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import field
from typing import Any

import torch

from ppo_lessons import update
from ppo_lessons.exercises import EXERCISES, Exercise

__all__ = [
    "REFERENCES",
    "TRAINER_EXERCISES",
    "CallCounter",
    "FunctionsBundle",
    "LessonFunctions",
    "bundle_class",
    "compose",
    "describe",
    "function_report",
    "trainer_functions",
]


def reference(exercise: Exercise) -> Callable:
    """The package's reference of an exercise (its module's function of that name)."""
    return getattr(importlib.import_module(exercise.module), exercise.function)


# the exercise functions `train` takes, and where it calls each: read from the one
# exercise table (`ppo_lessons.exercises.EXERCISES`)
TRAINER_EXERCISES: dict[str, str] = {
    ex.function: ex.trainer for ex in EXERCISES if ex.trainer
}
REFERENCES: dict[str, Callable] = {
    ex.function: reference(ex) for ex in EXERCISES if ex.trainer
}


class FunctionsBundle:
    """What every bundle of lesson functions has besides its fields (one per
    exercise, made by `bundle_class`): the given functions' call counters."""

    counters: Mapping[str, CallCounter]
    references: Mapping[str, Callable] = {}  # the fields' defaults, in table order

    @property
    def own(self) -> tuple[str, ...]:
        """The names whose function is not the reference, in the table's order."""
        return tuple(name for name in self.references if self.given(name))

    def given(self, name: str) -> bool:
        """Whether the function of `name` is the user's (not the reference)."""
        return getattr(self, name) is not self.references[name]

    def calls(self) -> dict[str, int]:
        """{name: how many times it was called so far} for each given function."""
        return {name: counter.calls for name, counter in self.counters.items()}


def bundle_class(
    name: str, exercises: Iterable[Exercise], doc: str, module: str = __name__
) -> type:
    """A frozen dataclass `module.name` with one field per exercise (its function's
    name, the reference as default, the `Exercise` in the field's metadata), plus
    `counters`."""
    exercises = list(exercises)
    references = {ex.function: reference(ex) for ex in exercises}
    rows = [
        (ex.function, Callable, field(default=references[ex.function],
                                      metadata={"exercise": ex}))
        for ex in exercises
    ]  # fmt: skip
    counters = field(default_factory=dict, repr=False)
    cls = dataclasses.make_dataclass(
        name,
        [*rows, ("counters", Mapping[str, Any], counters)],
        bases=(FunctionsBundle,),
        frozen=True,
        namespace={"__doc__": doc, "references": references},
    )
    cls.__module__ = module
    return cls


LessonFunctions = bundle_class(
    "LessonFunctions",
    (ex for ex in EXERCISES if ex.trainer),
    """The lesson functions one run calls, one field per exercise `train` takes
    (`TRAINER_EXERCISES`), each the reference or a student's own (same contract);
    `counters` holds the given ones as they run (`CallCounter`s). Made from a dict
    by `trainer_functions` (composed and counted); one made directly is used as it
    is.""",
)


class CallCounter:
    """A function that counts its calls: `counter(*args)` is `fn(*args)`, plus one."""

    def __init__(self, name: str, fn: Callable) -> None:
        self.name = name
        self.fn = fn
        self.calls = 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"CallCounter({self.name!r}, calls={self.calls})"


def global_names(code: types.CodeType) -> Iterator[str]:
    """The global (and attribute) names a function's code reads, nested code included."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from global_names(const)


def compose(
    functions: Mapping[str, Callable],
    references: Mapping[str, Callable] | None = None,
) -> dict[str, CallCounter]:
    """The given functions wired to each other, each wrapped in a `CallCounter`.

    A given Python function runs with a copy of its namespace (its module's or its
    notebook's globals) in which every exercise name is the run's choice for that name:
    the given function's counter, or the reference when that name was not given. The
    other functions defined in that namespace (a student's own helpers) run with the
    same copy; the function given for a name sees under that name what its namespace
    held. So a student's `ppo_update` calls their `ppo_loss`, which calls their
    `clipped_surrogate_objective`, even though each notebook imported the references
    under those names after the check. The namespace itself is left as it was. Other
    callables (a `partial`, an object with `__call__`) are counted but not rewired.
    The references are never wrapped: the trainer recognizes some of them (e.g. the
    reference `minibatch_indices`' full-batch shortcut), and a run with no given
    function is exactly the run of the references. `references` are the names a
    caller takes and their references (default: the trainer's, `REFERENCES`).
    """
    references = REFERENCES if references is None else references
    counters = {name: CallCounter(name, fn) for name, fn in functions.items()}
    choice: dict[str, Callable] = {**references, **counters}
    if "ppo_loss" not in counters:  # the reference loss, with the given pieces
        choice["ppo_loss"] = functools.partial(
            reference_loss,
            objective=choice.get(
                "clipped_surrogate_objective", REFERENCES["clipped_surrogate_objective"]
            ),
            value_loss_fn=choice.get("value_loss", REFERENCES["value_loss"]),
        )
    for name, counter in counters.items():
        if isinstance(counter.fn, types.FunctionType):
            space = counter.fn.__globals__
            # its own name keeps its meaning: a given `ppo_loss` that wraps the
            # reference `ppo_loss` calls the reference, not itself
            own = {name: space.get(name, references[name])}
            counter.fn = with_globals(
                counter.fn, rewired_namespace(space, {**choice, **own})
            )
    return counters


def rewired_namespace(space: dict, choice: Mapping[str, Callable]) -> dict:
    """A copy of the namespace `space` with the exercise names set to `choice` and
    its own functions (helpers the given ones call) running in the copy."""
    copy = dict(space)
    for key, value in space.items():
        if isinstance(value, types.FunctionType) and value.__globals__ is space:
            copy[key] = with_globals(value, copy)
    copy.update(choice)
    return copy


def with_globals(fn: types.FunctionType, space: dict) -> types.FunctionType:
    """`fn` with the same code, defaults and closure, reading its globals from `space`."""
    copy = types.FunctionType(
        fn.__code__, space, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__dict__.update(fn.__dict__)
    copy.__qualname__ = fn.__qualname__
    return copy


def reference_loss(*args, objective: Callable, value_loss_fn: Callable) -> torch.Tensor:
    """The reference `ppo_loss` (exercise 6.2) built on the given L^CLIP and L^V."""
    return update.ppo_loss_terms(
        *args, objective=objective, value_loss_fn=value_loss_fn
    ).loss


def bundle_of(
    cls: type,
    functions: Mapping[str, Callable] | FunctionsBundle | None,
    not_called: str,
) -> Any:
    """The bundle `cls` of `functions` (exercise name -> callable): the given ones
    composed and counted by `compose`, the references for the rest. A bundle of
    `cls` is returned as it is.

    Raises:
        ValueError: for a name `cls` has no field for (the message says the caller
            `not_called` it and lists the valid names) or a value that is not
            callable.
    """
    if isinstance(functions, cls):
        return functions
    functions = dict(functions or {})
    for name, fn in functions.items():
        if name not in cls.references:
            raise ValueError(
                f"functions has the name {name!r}, which {not_called}; "
                f"valid names: {', '.join(cls.references)}"
            )
        if not callable(fn):
            raise ValueError(f"functions[{name!r}] must be callable, got {fn!r}")
    counters = compose(functions, cls.references)
    return cls(**counters, counters=counters)


def trainer_functions(
    functions: Mapping[str, Callable] | LessonFunctions | None,
) -> LessonFunctions:
    """The run's `LessonFunctions` from `functions` as `train` takes them (a dict of
    exercise name -> callable, or a bundle already made); the door of the seam.

    Raises:
        ValueError: for a name the trainer does not take (the message lists the valid
            names) or a value that is not callable.
    """
    return bundle_of(
        LessonFunctions, functions, "is not an exercise function the trainer calls"
    )


def describe(functions: FunctionsBundle) -> str:
    """What a run takes from the user, before it runs: the given functions, and for
    each the exercise functions it calls by name (which `compose` wired to the run's
    choices)."""
    if not functions.own:
        return "every function is the package's reference"
    lines = [f"your functions: {', '.join(functions.own)}; the rest are the references"]
    for name in functions.own:
        fn = functions.counters[name].fn
        code = getattr(fn, "__code__", None)
        if code is None:
            continue
        inner = [n for n in functions.references if n in set(global_names(code))]
        inner = [n for n in inner if n != name]
        if inner:
            whose = ", ".join(
                f"{n} ({'yours' if n in functions.own else 'reference'})" for n in inner
            )
            lines.append(f"  your {name} calls {whose}")
    return "\n".join(lines)


def function_report(function_calls: Mapping[str, int]) -> str:
    """One line per function the trainer takes: yours (with the calls it got during
    the run, from `TrainResult.function_calls`) or the reference."""
    lines = []
    for name in TRAINER_EXERCISES:
        if name not in function_calls:
            lines.append(f"  {name:28} the reference")
            continue
        calls = function_calls[name]
        said = (
            "not called in this run"
            if calls == 0
            else "called once"
            if calls == 1
            else f"called {calls:,} times"
        )
        lines.append(f"  {name:28} yours, {said}")
    return "\n".join(lines)
