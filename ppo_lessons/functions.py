"""The exercise functions the trainer calls, and a student's own in their place.

    train(config, functions={"compute_gae": my_gae, "ppo_loss": my_loss})

Every name in `TRAINER_EXERCISES` is an exercise of the course (`ppo_lessons.exercises`)
with the contract of its lesson; the trainer calls what it is given at the place the
reference would be called. `ppo_lessons.notebook.your_functions()` gathers the ones a
student solved in their lesson notebooks (lesson 07's capstone).

The given functions compose: inside a given function, every exercise name it calls
as a global (`ppo_loss(...)` inside a `ppo_update`, `clipped_surrogate_objective(...)`
inside a `ppo_loss`) is the run's choice for that name, the given one or else the
reference, whatever the function's own module or notebook imported under that name
(`compose`). Each given function counts its calls, so a run can show which of them
trained (`TrainResult.function_calls`).

Naming: the lesson functions keep their contract names (`clip_eps`, `lam`), the
config keeps CleanRL's (`clip_coef`, `gae_lambda`); the mapping between the two lives
where the trainer calls the functions: `ppo_lessons.update.minibatch_loss` and
`ppo_lessons.rollout.gae_from_buffer`.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import torch

from ppo_lessons import gae, networks, update
from ppo_lessons import rollout as rollout_module
from ppo_lessons.memory import replay as memory_replay
from ppo_lessons.exercises import EXERCISES, Exercise

__all__ = [
    "TRAINER_EXERCISES",
    "CallCounter",
    "TrainerFunctions",
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


@dataclass(frozen=True)
class TrainerFunctions:
    """The functions one run calls (references, or a student's own)."""

    compute_gae: Callable = gae.compute_gae
    collect_rollout: Callable = rollout_module.collect_rollout
    ppo_update: Callable = update.ppo_update  # (agent, optimizer, batch, settings, gen)
    explained_variance: Callable = update.explained_variance
    gaussian_log_prob: Callable = networks.gaussian_log_prob
    categorical_entropy: Callable = networks.categorical_entropy
    actor_critic_networks: Callable = networks.actor_critic_networks
    replay_sequence: Callable = memory_replay.replay_sequence  # recurrent runs only
    update: update.UpdateFunctions = field(default_factory=update.UpdateFunctions)
    own: tuple[str, ...] = ()  # the names given by the user
    # the given functions as they run, each counting its calls
    counters: Mapping[str, CallCounter] = field(default_factory=dict)

    def calls(self) -> dict[str, int]:
        """{name: how many times it was called so far} for each given function."""
        return {name: counter.calls for name, counter in self.counters.items()}


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


def trainer_functions(functions: Mapping[str, Callable] | None) -> TrainerFunctions:
    """Check `functions` (exercise name -> callable) and build the run's functions
    (the given ones composed and counted by `compose`, the references for the rest).

    Raises:
        ValueError: for a name the trainer does not take (the message lists the valid
            names) or a value that is not callable.
    """
    functions = dict(functions or {})
    for name, fn in functions.items():
        if name not in TRAINER_EXERCISES:
            raise ValueError(
                f"functions has the name {name!r}, which is not an exercise function "
                f"the trainer calls; valid names: {', '.join(TRAINER_EXERCISES)}"
            )
        if not callable(fn):
            raise ValueError(f"functions[{name!r}] must be callable, got {fn!r}")
    counters = compose(functions)
    pick = {name: counters.get(name, REFERENCES[name]) for name in TRAINER_EXERCISES}
    update_fns = update.UpdateFunctions(
        clipped_surrogate_objective=pick["clipped_surrogate_objective"],
        value_loss=pick["value_loss"],
        ppo_loss=counters.get("ppo_loss"),  # None: assembled from the two above
        minibatch_indices=pick["minibatch_indices"],
        approx_kl=pick["approx_kl"],
        probability_ratio=pick["probability_ratio"],
    )
    ppo_update = pick["ppo_update"]
    if "ppo_update" not in functions:
        ppo_update = functools.partial(update.ppo_update, functions=update_fns)
    return TrainerFunctions(
        compute_gae=pick["compute_gae"],
        collect_rollout=pick["collect_rollout"],
        ppo_update=ppo_update,
        explained_variance=pick["explained_variance"],
        gaussian_log_prob=pick["gaussian_log_prob"],
        categorical_entropy=pick["categorical_entropy"],
        actor_critic_networks=pick["actor_critic_networks"],
        replay_sequence=pick["replay_sequence"],
        update=update_fns,
        own=tuple(name for name in TRAINER_EXERCISES if name in functions),
        counters=counters,
    )


def describe(functions: TrainerFunctions) -> str:
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
        inner = [n for n in TRAINER_EXERCISES if n in set(global_names(code))]
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
