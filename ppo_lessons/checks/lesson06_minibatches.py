"""Checks of lesson 06's minibatches (exercise 6.3).

`check_minibatch_indices` checks properties, not one particular order (any correct
shuffle drawn from the generator passes): the sizes, every index exactly once, a
shuffled order that mixes new minibatches each epoch, the same order from the same
generator state whatever the global random state, a new order at each call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ppo_lessons.checks.harness import (
    call,
    exercise,
    generator,
)

__all__ = ["check_minibatch_indices"]


# ---------------------------------------------------------------------------
# 6.3 the minibatches of one epoch


SAME_GROUPS = (
    "every epoch puts the same samples together while {where} (fixed blocks whose "
    "order, or whose inside, is shuffled?): shuffle the indices themselves, one "
    "torch.randperm(batch_size) cut into pieces, so that each epoch mixes new "
    "minibatches."
)


def index_pieces(result: object, where: str) -> list[torch.Tensor]:
    """The student's minibatches, required to be a list of 1-D integer tensors."""
    if not isinstance(result, list | tuple):
        raise AssertionError(
            "minibatch_indices must return a list of 1-D index tensors (one per "
            f"minibatch), got {type(result).__name__} while {where}."
        )
    for piece in result:
        if not isinstance(piece, torch.Tensor):
            raise AssertionError(
                "each minibatch must be a torch tensor of indices, got "
                f"{type(piece).__name__} while {where} (torch.as_tensor converts "
                "a NumPy array or a list)."
            )
        if piece.dim() != 1 or piece.dtype not in (torch.int64, torch.int32):
            raise AssertionError(
                "each minibatch must be a 1-D integer tensor of indices (int64), got "
                f"shape {list(piece.shape)} and dtype {piece.dtype} while {where}."
            )
    return list(result)


def check_pieces(pieces: list[torch.Tensor], B: int, M: int, where: str) -> None:
    """Sizes [M, ..., M, rest] and every index of range(B) exactly once."""
    sizes = [len(p) for p in pieces]
    expected = [min(M, B - s) for s in range(0, B, M)]
    flat = torch.cat(pieces).tolist() if pieces else []
    outside = [i for i in flat if not 0 <= i < B]
    if outside:
        raise AssertionError(
            f"index {outside[0]} is outside range({B}) while {where}: the indices of "
            f"a batch of {B} go from 0 to {B - 1}."
        )
    if len(set(flat)) < len(flat):
        twice = next(i for i in flat if flat.count(i) > 1)
        raise AssertionError(
            f"index {twice} appears more than once while {where} (drawn with "
            "replacement?): an epoch uses every sample exactly once; cut ONE random "
            "permutation (torch.randperm) into pieces."
        )
    if sizes == expected and len(flat) == B:
        return
    if B % M and sizes == expected[:-1]:
        raise AssertionError(
            f"the last, shorter minibatch is missing while {where} (sizes {sizes}, "
            f"expected {expected}): keep it, every sample is used once per epoch."
        )
    if sorted(sizes) == sorted(expected) and len(flat) == B:
        if B > M and all(p.max() - p.min() == len(p) - 1 for p in pieces):
            raise AssertionError(SAME_GROUPS.format(where=where))
        raise AssertionError(
            f"minibatch sizes {sizes} while {where}: the pieces are cut from the "
            f"front, so the shorter one comes last: {expected}."
        )
    if len(pieces) == min(M, B) and len(pieces) != len(expected):
        raise AssertionError(
            f"{len(pieces)} minibatches of sizes {sizes} while {where}: torch.chunk(x, "
            f"{M}) (like np.array_split) makes {M} pieces; torch.split(x, {M}) makes "
            f"pieces of {M}."
        )
    raise AssertionError(
        f"minibatch sizes {sizes} while {where}; expected {expected} (consecutive "
        f"pieces of {M} of one permutation of range({B}), the last one shorter), "
        "covering every index exactly once."
    )


def _order(fn: Callable, B: int, M: int, gen: torch.Generator, where: str) -> list:
    pieces = index_pieces(call(fn, (B, M, gen), where)[0], where)
    check_pieces(pieces, B, M, where)
    return [p.tolist() for p in pieces]


def check_shuffled(fn: Callable, B: int = 24, M: int = 6) -> None:
    """The order is a shuffle, not range(B) (or its reverse)."""
    where = f"called with batch_size={B}, minibatch_size={M}"
    order = sum(_order(fn, B, M, generator(653), where), [])
    if order in (sorted(order), sorted(order, reverse=True)):
        raise AssertionError(
            f"the indices are not shuffled while {where}: draw a random permutation "
            "with torch.randperm(batch_size, generator=generator)."
        )


def check_generator_use(fn: Callable, B: int = 20, M: int = 6) -> None:
    """The same generator state gives the same order whatever the global random
    state; each call (epoch) and each other generator a new one, which groups other
    samples together."""
    where = f"called with batch_size={B}, minibatch_size={M}"
    torch.manual_seed(1)
    first = _order(fn, B, M, generator(651), where)
    torch.manual_seed(2)
    if _order(fn, B, M, generator(651), where) != first:
        raise AssertionError(
            f"the same generator state gave two different orders while {where}: your "
            "function draws from a global random state (torch.randperm without "
            "generator=, np.random, random.shuffle). Draw from the generator you are "
            "given: torch.randperm(batch_size, generator=generator)."
        )
    gen = generator(651)
    epochs = [_order(fn, B, M, gen, where) for _ in range(2)]
    if epochs[0] == epochs[1] or _order(fn, B, M, generator(652), where) == first:
        raise AssertionError(
            f"every call gives the same order while {where} (a fixed seed inside, or "
            "a copy of the generator?): each call is an epoch and needs a new order, "
            "drawn from the generator you are given (it advances with each draw)."
        )
    groups = [sorted(sorted(p) for p in pieces) for pieces in epochs]
    if groups[0] == groups[1]:
        raise AssertionError(SAME_GROUPS.format(where=where))


@exercise("minibatch_indices")
def check_minibatch_indices(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `minibatch_indices(batch_size, minibatch_size, generator)` (Exercise
    6.3): sizes, every index exactly once, shuffled, reproducible from the
    generator, independent of the global random state, a new order each call."""
    cases = [(10, 3), (12, 4), (64, 16), (7, 7), (5, 8), (1, 1), (9, 1)]
    cases += [(c["batch_size"], c["minibatch_size"]) for c in extra_cases]
    with torch.random.fork_rng(devices=[]):  # the global seeds set here are put back
        for i, (B, M) in enumerate(cases):
            where = f"called with batch_size={B}, minibatch_size={M}"
            _order(fn, B, M, generator(650 + i), where)
        check_shuffled(fn)
        check_generator_use(fn)
    return len(cases) + 2
