"""The harness every exercise check shares: calling the student's function on
copies of its inputs, reading what it returns, comparing values and gradients,
naming a typical mistake, and the `exercise` wrapper (one line when right, "not
implemented yet" for a stub, an AssertionError in the student's terms otherwise)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import torch

from ppo_lessons.exercises import EXERCISES

RTOL = 1e-4
ATOL = 1e-5


class _NotDone(Exception):
    """The student's function raised NotImplementedError."""


# ---------------------------------------------------------------------------
# Calling the student's function and reading what it returns


def call(fn: Callable, args: Sequence[object], where: str) -> object:
    """Call fn(*args) on copies of the tensors; turn its failures into explanations."""
    copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    for copy, original in zip(copies, args, strict=True):
        if isinstance(original, torch.Tensor) and original.requires_grad:
            copy.requires_grad_(True)
    try:
        result = fn(*copies)
    except NotImplementedError as error:
        # PyTorch raises NotImplementedError for an op a dtype lacks ("bitwise_or_cpu"
        # not implemented for 'Float'): that is a bug to report, not an unsolved stub.
        if "not implemented for '" not in str(error):
            raise _NotDone from None
        raise AssertionError(
            f"your function raised NotImplementedError: {error}\n  while {where}."
        ) from None
    except Exception as error:  # the student's bug, reported in their terms
        raise AssertionError(
            f"your function raised {type(error).__name__}: {error}\n  while {where}."
        ) from None
    for copy, original in zip(copies, args, strict=True):
        if isinstance(original, torch.Tensor) and not torch.equal(
            copy.detach(), original.detach()
        ):
            raise AssertionError(
                f"your function changed one of its input tensors in place while {where}; "
                "build new tensors (e.g. torch.zeros_like) instead of writing into the "
                "inputs, which the caller still needs."
            )
    return result, copies


def tensor(result: object, what: str, shape: torch.Size, where: str) -> torch.Tensor:
    """Require a tensor of the given shape (scalars: a single element)."""
    if not isinstance(result, torch.Tensor):
        hint = ""
        if isinstance(result, float | int):
            hint = " (.item() or float() gives a Python number and cuts the gradient)"
        elif type(result).__module__.startswith("numpy"):
            hint = " (wrap a NumPy result with torch.as_tensor)"
        raise AssertionError(
            f"{what} must be a torch.Tensor, got {type(result).__name__}{hint}; "
            f"while {where}."
        )
    if len(shape) == 0:
        if result.numel() != 1:
            raise AssertionError(
                f"{what} must be a single number (the mean over ALL elements), got shape "
                f"{list(result.shape)} while {where}; use .mean() with no dim argument."
            )
    elif result.shape != shape:
        raise AssertionError(
            f"{what} has shape {list(result.shape)}, expected {list(shape)} (the shape "
            f"of the inputs) while {where}."
        )
    if not result.is_floating_point():
        raise AssertionError(f"{what} must be floating point, got {result.dtype}.")
    return result.reshape(shape)


def close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return bool(
        torch.allclose(
            got.detach().double(), expected.detach().double(), rtol=RTOL, atol=ATOL
        )
    )


def fmt(x: torch.Tensor | float) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().double()
        if x.numel() == 1:
            return f"{x.item():.4f}"
        return (
            "["
            + ", ".join(f"{v:.4f}" for v in x.flatten().tolist()[:8])
            + (", ...]" if x.numel() > 8 else "]")
        )
    return f"{x:.4f}"


def diagnose(
    got: torch.Tensor, mistakes: Iterable[tuple[str, torch.Tensor]]
) -> str | None:
    """The message of the first typical mistake whose result equals `got`."""
    for message, wrong in mistakes:
        if wrong.shape == got.shape and close(got, wrong):
            return message
    return None


def grad_of(output: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list:
    """Gradients of output.sum() w.r.t. inputs (None where there is no path)."""
    if not output.requires_grad:
        return [None] * len(inputs)
    grads = torch.autograd.grad(
        output.sum(), list(inputs), allow_unused=True, retain_graph=True
    )
    return list(grads)


# ---------------------------------------------------------------------------
# The check wrapper: one line on success, "not yet" on NotImplementedError

NOTEBOOKS = {  # lesson -> its notebook (the student's and the solution's share names)
    1: "01_policy_gradients.ipynb",
    2: "02_importance_sampling.ipynb",
    3: "03_clipping.ipynb",
    4: "04_gae.ipynb",
    5: "05_actor_critic_networks.ipynb",
    6: "06_the_ppo_update.ipynb",
    7: "07_the_full_trainer.ipynb",
    9: "09_scaling_up.ipynb",
    10: "10_ppo_on_a_language_model.ipynb",
    11: "11_memory.ipynb",
}


class CheckResult:
    """What a check returns: true when the function passed, false when it is not
    implemented yet (a wrong function raises instead).

    Jupyter shows nothing for it, so a check on the last line of a cell leaves only
    the line it printed (no stray `True` or `False` as the cell's value); the grader
    and `assert check_...(...)` read its truth value.
    """

    __slots__ = ("cases", "function", "passed")

    def __init__(self, function: str, passed: bool, cases: int = 0) -> None:
        self.function = function
        self.passed = passed
        self.cases = cases

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckResult):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, bool, int]:
        return (self.function, self.passed, self.cases)

    def __repr__(self) -> str:
        verdict = f"correct on {self.cases} cases" if self.passed else "not done yet"
        return f"<check of {self.function}: {verdict}>"

    def _ipython_display_(self) -> None:
        """Nothing to display: the check already printed its one line."""


def not_done_message(function: str) -> str:
    """The one line a check prints for an exercise that raises NotImplementedError."""
    exercise = next((ex for ex in EXERCISES if ex.function == function), None)
    if exercise is None:
        return f"{function} is not implemented yet: the reference version is used."
    notebook = NOTEBOOKS.get(exercise.lesson, f"lesson {exercise.lesson:02d}")
    return (
        f"Exercise {exercise.number} ({function}, {notebook}) is not implemented yet: "
        "the rest of the notebook uses the reference version."
    )


def exercise(function: str) -> Callable:
    """Turn a check body `body(fn, extra_cases) -> number of cases` into the check:
    it prints one line and returns a true `CheckResult` when fn is right, prints
    `not_done_message` and returns a false one when fn raises NotImplementedError, and
    lets the body's AssertionError (the explained mistake) through."""

    def decorate(body: Callable[..., int]) -> Callable[..., CheckResult]:
        @functools.wraps(body)
        def check(fn: Callable, *, extra_cases: Iterable[dict] = ()) -> CheckResult:
            if not callable(fn):
                raise TypeError(
                    f"check_{function} expects your function itself, e.g. "
                    f"check_{function}({function}), got {type(fn).__name__}"
                )
            try:
                count = body(fn, list(extra_cases))
            except _NotDone:
                print(not_done_message(function))
                return CheckResult(function, False)
            print(f"✔ {function}: correct on all {count} test cases.")
            return CheckResult(function, True, count)

        check.__doc__ = (body.__doc__ or "") + (
            "\n\nReturns a CheckResult, true when correct, false when not implemented "
            "yet; raises AssertionError explaining the mistake otherwise."
        )
        return check

    return decorate


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shapes() -> list[tuple[int, ...]]:
    return [(9,), (7, 3), (1,), (12, 1)]


def compare_with_grads(
    fn: Callable,
    args: tuple,
    grad_names: dict[int, str],
    reference: Callable,
    mistakes: Callable[[tuple], list],
    what: str,
    shape: torch.Size,
    where: str,
    rule: str,
) -> torch.Tensor:
    """Compare value and gradients (w.r.t. args at the indices in grad_names; none: the
    value only); returns the student's result, reshaped to `shape`."""
    args = tuple(
        a.clone().requires_grad_(True) if i in grad_names else a
        for i, a in enumerate(args)
    )
    result, copies = call(fn, args, where)
    got = tensor(result, what, shape, where)
    double = tuple(
        a.detach().double().requires_grad_(i in grad_names)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else a
        for i, a in enumerate(args)
    )
    expected = reference(*double)
    if not (torch.isfinite(got).all() or not torch.isfinite(expected).all()):
        raise AssertionError(
            f"{what} holds inf or NaN while {where}; expected {fmt(expected)}, got "
            f"{fmt(got)}. {rule}"
        )
    if not close(got, expected):
        plain = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in double)
        message = diagnose(got, mistakes(plain))
        raise AssertionError(
            (message or f"wrong {what}. {rule}")
            + f"\n  while {where}:\n  expected {fmt(expected)}\n  got      {fmt(got)}"
        )
    if not grad_names:  # a value check only (e.g. rewards and advantages: data)
        return got
    inputs = [copies[i] for i in grad_names]
    grads = grad_of(got, inputs)
    expected_grads = torch.autograd.grad(
        expected.sum(), [double[i] for i in grad_names], allow_unused=True
    )
    for (i, name), grad, exp in zip(
        grad_names.items(), grads, expected_grads, strict=True
    ):
        exp = torch.zeros_like(double[i]) if exp is None else exp
        if grad is None:
            if not bool((exp == 0).all()):
                raise AssertionError(
                    f"{what} has no gradient with respect to {name} (detached, or computed "
                    "with NumPy/.item()); the update needs it. " + where
                )
            continue
        if not close(grad, exp):
            raise AssertionError(
                f"the value of {what} is right but its gradient w.r.t. {name} is not "
                f"({fmt(grad)} instead of {fmt(exp)}) while {where}: did you detach "
                "part of the computation?"
            )
    return got
