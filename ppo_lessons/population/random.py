"""One random stream per member, drawn for all members in one batched operation.

A population must give every member its own randomness: a member's initial states,
actions and minibatch order may depend on its seed only, never on which other members
share the batch or where it sits in it. One `torch.Generator` per member would need K
calls per draw; one shared generator would tie the members together. Instead each
draw is a pure function of (member seed, stream, call number, element index), hashed
with SplitMix64's finalizer (Steele, Lea & Flood, 2014, "Fast splittable
pseudorandom number generators"): a counter-based generator, the design of JAX's
keys and of Philox (Salmon et al., 2011, "Parallel random numbers: as easy as 1, 2,
3"). The hash runs as a dozen int64 tensor operations on the device for all members
at once. It is a statistical generator, not a cryptographic one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["MemberStreams", "mix64"]

GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / φ, SplitMix64's increment
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # SplitMix64's multipliers
STREAMS = ("envs", "actions", "minibatches")


def signed64(value: int) -> int:
    """A 64-bit pattern as the int64 that holds it (torch has no uint64 math)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (`>>` on int64 keeps the sign)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer on int64 tensors (multiplication wraps around mod 2^64):
    every input bit changes about half of the output bits."""
    x = (x ^ shift_right(x, 30)) * signed64(MIX1)
    x = (x ^ shift_right(x, 27)) * signed64(MIX2)
    return x ^ shift_right(x, 31)


def mix64_int(value: int) -> int:
    """`mix64` of one Python integer (the per-call offsets), in Python arithmetic."""
    mask = (1 << 64) - 1
    value &= mask
    value = ((value ^ (value >> 30)) * MIX1) & mask
    value = ((value ^ (value >> 27)) * MIX2) & mask
    return signed64(value ^ (value >> 31))


class MemberStreams:
    """Independent random streams for K members, each decided by its seed alone.

    Every call draws for all members at once; its result for member k depends only
    on seed_k, the stream's name and how many times that stream was called before,
    so a member draws the same numbers in any population (members with equal seeds,
    e.g. the same seed in two variants, draw equal numbers: paired comparisons).

    Args:
        seeds: the K members' seeds (integers >= 0).
        device: where the draws are made.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str) -> None:
        keys = torch.tensor([signed64(GOLDEN * (s + 1)) for s in seeds], device=device)
        self.keys = mix64(keys)[:, None]  # (K, 1)
        self.device = torch.device(device)
        self.calls = dict.fromkeys(STREAMS, 0)
        self.indices: dict[int, torch.Tensor] = {}  # count -> (count,) i · GOLDEN

    def bits(self, stream: str, count: int) -> torch.Tensor:
        """(K, count) int64 random bit patterns; each call of `stream` draws new ones."""
        call = self.calls[stream]
        self.calls[stream] = call + 1
        offset = mix64_int(STREAMS.index(stream) << 40 | call)  # this call's counter
        index = self.indices.get(count)
        if index is None:
            index = torch.arange(count, device=self.device) * signed64(GOLDEN)
            self.indices[count] = index
        return mix64(self.keys + (index + offset))

    def uniform(self, stream: str, shape: Sequence[int]) -> torch.Tensor:
        """(K, *shape) float32 draws from U[0, 1) (24 random bits each)."""
        count = math.prod(shape)
        top24 = shift_right(self.bits(stream, count), 40)
        return (top24.float() * 2.0**-24).reshape(-1, *shape)

    def normal(self, stream: str, shape: Sequence[int]) -> torch.Tensor:
        """(K, *shape) float32 draws from N(0, 1) (Box & Muller, 1958)."""
        u1 = self.uniform(stream, shape)
        u2 = self.uniform(stream, shape)
        radius = torch.sqrt(-2.0 * torch.log1p(-u1))  # 1 − u1 in (0, 1]: finite
        return radius * torch.cos(2.0 * math.pi * u2)

    def permutations(self, stream: str, size: int) -> torch.Tensor:
        """(K, size) int64: a random permutation of range(size) for each member."""
        return torch.argsort(self.bits(stream, size), dim=1)
