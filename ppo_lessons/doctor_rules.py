"""The PPO doctor's shared pieces and its rules for the critic and for the replayed
log-probabilities (`ppo_lessons.doctor` runs every rule; docs/doctor.md says where each
threshold comes from).

- `Finding`, `series`, `sustain`, `first_sustained`: what every rule reports and reads.
- `solved_share`, `near_solved`: how far the returns came towards the task's solved
  threshold, by a given update and by the end (the entropy-collapse rule's excuse for
  a task whose optimum is deterministic).
- value_not_learning, value_loss_exploding, value_fails_at_time_limit: the critic.
- replay_mismatch: the update recomputes log π_θ(a|s) of the rollout's actions before
  its first gradient step, when the policy has not changed yet, so it must equal the
  log π the rollout stored (float32 noise: below 1e-5). A recurrent policy replayed
  from the wrong hidden state, or observations normalized differently in the update,
  break that on the first update already; one update is the failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import median

from ppo_lessons.history import HistoryRow

__all__ = [
    "EV_LOW",
    "FLAT_TARGETS",
    "LEARNED_AT_COLLAPSE",
    "NEAR_SOLVED",
    "REPLAY_TOLERANCE",
    "SUSTAIN",
    "TIME_LIMIT_RATIO",
    "Finding",
    "critic_rules",
    "first_sustained",
    "flat_targets",
    "near_solved",
    "replay_mismatch",
    "series",
    "solved_share",
    "sustain",
]

TIME_LIMIT_RATIO = 10.0  # value loss with a time-limit cut / without: bug 20-1000x
FLAT_TARGETS = 1e-3  # value loss / its peak so far below this: the targets barely vary
EV_LOW = 0.1  # median late explained variance below this: the critic is not learning
# the largest |log π recomputed − log π stored| over a rollout, before the update's
# first gradient step (the history's `replay_error`; with memory, also |h replayed − h
# of the rollout|): float32 noise stays below 1e-5
REPLAY_TOLERANCE = 1e-4
# a pattern of one update is noise: entropy collapse and an exploding value loss count
# only when they hold for this many consecutive updates (fewer in short runs: n // 40,
# at least 3); a NaN and the first update's jump count at once
SUSTAIN = 10
# with the task's solved threshold, a collapse is not named when the policy had
# learned part of the task by the update in which it had held for sustain(n) updates
# (the returns so far LEARNED_AT_COLLAPSE of the way from the first updates' returns
# to the threshold) and the run ends near solving it (NEAR_SOLVED of the way): the
# task's optimum is deterministic. MountainCar-v0: seed 1 0.57 at its collapse and
# 0.89 at the end, held-out seeds 2-9 0.37-0.57 and 0.83-0.91; the wrong-sign entropy
# bonus on CartPole-v1: 0.07 at its collapse and 0.13 at the end in 80 updates,
# 0.004-0.04 at its collapse in 781 (seeds 1-3), though those then solve the task,
# 1.01-1.06 of the way by the end (docs/doctor.md)
LEARNED_AT_COLLAPSE = 0.25
NEAR_SOLVED = 0.75


def sustain(n: int) -> int:
    """Consecutive updates a pattern must hold for in a run of `n` updates."""
    return min(SUSTAIN, max(3, n // 40))


def first_sustained(series: Sequence[tuple[int, float]], holds, n: int) -> int | None:
    """Index into `series` of the first of `n` consecutive values for which
    `holds(value)` is true; None when there is no such run."""
    streak = 0
    for i, (_, value) in enumerate(series):
        streak = streak + 1 if holds(value) else 0
        if streak == n:
            return i - n + 1
    return None


@dataclass(frozen=True)
class Finding:
    """One thing that looks wrong: which problem, seen in which metric and update."""

    problem: str  # a key of PROBLEMS
    metric: str
    update: int
    advice: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.problem}] {self.metric} at update {self.update}: {self.advice}"


def series(history: Sequence[HistoryRow], key: str) -> list[tuple[int, float]]:
    """(update, value) pairs of one metric, skipping updates without it."""
    out = []
    for i, row in enumerate(history):
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append((int(row.get("update", i + 1)), float(value)))
    return out


def solved_share(
    history: Sequence[HistoryRow],
    reward_threshold: float | None,
    until: int | None = None,
) -> float | None:
    """How far the run's returns came towards the task's solved threshold: the mean
    episodic return of the last quarter of the updates in which episodes ended (up
    to update `until`, when given), minus that of the run's first `sustain(n)` of
    them (the start of training), as a share of the threshold minus the latter (1
    or more: reached it). None without a threshold (Pendulum-v1 has none), with
    fewer than 8 such updates (up to `until`), or when the first returns already
    met it."""
    if reward_threshold is None:
        return None
    ended = [(u, v) for u, v in series(history, "episodic_return") if math.isfinite(v)]
    returns = [v for _, v in ended]
    so_far = [v for u, v in ended if until is None or u <= until]
    if len(so_far) < 8:
        return None
    first = returns[: sustain(len(returns))]
    last = so_far[-max(1, len(so_far) // 4) :]
    start, end = sum(first) / len(first), sum(last) / len(last)
    if start >= reward_threshold:
        return None
    return (end - start) / (reward_threshold - start)


def near_solved(
    history: Sequence[HistoryRow], reward_threshold: float | None, collapse: int
) -> bool:
    """Had the policy learned part of the task when it turned nearly deterministic
    (update `collapse`: the returns so far LEARNED_AT_COLLAPSE of the way to the
    solved threshold), and did the run end near solving it (NEAR_SOLVED of the
    way)? See `solved_share`."""
    end = solved_share(history, reward_threshold)
    then = solved_share(history, reward_threshold, until=collapse)
    return (
        end is not None
        and end >= NEAR_SOLVED
        and then is not None
        and then >= LEARNED_AT_COLLAPSE
    )


def _value(history: Sequence[HistoryRow]) -> list[Finding]:
    findings = []
    ev = [(u, v) for u, v in series(history, "explained_variance") if math.isfinite(v)]
    flat = flat_targets(history)
    second_half = ev[len(ev) // 2 :]
    late = [(u, v) for u, v in second_half if u not in flat]
    varied = len(late) >= max(4, len(second_half) / 2)  # most targets still vary
    if len(ev) >= 8 and varied and median([v for _, v in late]) < EV_LOW:
        findings.append(
            Finding(
                "value_not_learning",
                "explained_variance",
                late[0][0],
                f"explained variance stays at {median([v for _, v in late]):.2f} (below "
                f"{EV_LOW}: the critic predicts the returns hardly better than their "
                "mean). Check that the value loss reaches the critic (vf_coef > 0), "
                "the value targets (returns = advantages + values; bootstrap at "
                "time-limit truncations, don't treat them as terminal), scale the "
                "rewards, or raise vf_coef / the learning rate.",
            )  # fmt: skip
        )
    loss = series(history, "value_loss")
    if len(loss) >= 8:
        base = median([v for _, v in loss[: max(3, len(loss) // 5)]])
        start = first_sustained(
            loss, lambda v: v > 100 * max(base, 1e-3) and v > 1e3, sustain(len(loss))
        )
        blown = [] if start is None else [loss[start]]
        if blown:
            findings.append(
                Finding(
                    "value_loss_exploding",
                    "value_loss",
                    blown[0][0],
                    f"value loss reached {blown[0][1]:.3g}, over 100x its early level "
                    f"{base:.3g}, and stayed there for {sustain(len(loss))} updates or "
                    "more. Normalize or scale the rewards, clip the value loss, "
                    "lower the learning rate or max_grad_norm.",
                )  # fmt: skip
            )
    return findings


def flat_targets(history: Sequence[HistoryRow]) -> set[int]:
    """Updates whose value loss fell below FLAT_TARGETS x its peak so far: the value
    targets barely vary (a solved task whose episodes all run to the time limit), so
    explained variance, a ratio over their variance, says nothing there."""
    flat, peak = set(), 0.0
    for update, loss in series(history, "value_loss"):
        if not math.isfinite(loss):
            continue
        peak = max(peak, loss)
        if loss < FLAT_TARGETS * peak:
            flat.add(update)
    return flat


def _time_limit(history: Sequence[HistoryRow]) -> list[Finding]:
    """Value loss of the updates in which every episode that ended reached the run's
    longest length (the time limit), against updates in which no episode ended."""
    lengths = series(history, "episodic_length")
    finite = [v for _, v in lengths if math.isfinite(v)]
    if not finite:
        return []
    cap = max(finite)
    loss = dict(series(history, "value_loss"))
    cut = [(u, loss[u]) for u, v in lengths if v >= cap and u in loss]
    uncut = [loss[u] for u, v in lengths if math.isnan(v) and u in loss]
    if len(cut) < 3 or len(uncut) < 3:  # e.g. every update has a cut (Pendulum)
        return []
    base = max(median(uncut), 1e-12)
    at_cut = median([v for _, v in cut])
    peak = max((v for v in loss.values() if math.isfinite(v)), default=0.0)
    # a solved task's flat targets (value loss 1e-6 .. 1e-4 of its peak, with or
    # without a cut) make a ratio of noise: a healthy CartPole-v1 read 11x
    if at_cut <= TIME_LIMIT_RATIO * base or at_cut < FLAT_TARGETS * peak:
        return []
    first = next(u for u, v in cut if v > TIME_LIMIT_RATIO * base)
    return [
        Finding(
            "value_fails_at_time_limit",
            "value_loss",
            first,
            f"value loss {at_cut:.3g} in the updates where episodes were cut at the "
            f"time limit ({cap:.0f} steps), {at_cut / base:.0f}x the {base:.3g} of "
            "updates where no episode ended (healthy: about the same). The value "
            "target drops at the cut, but the observation does not say how much time "
            "is left, so the critic cannot fit it: a truncation must still bootstrap, "
            "δ = r + γ V(final observation) − V(s). If you wrote compute_gae "
            "yourself, check that only `terminated` (not terminated or truncated) "
            "removes the γ · next_values term.",
        )  # fmt: skip
    ]


def critic_rules(history: Sequence[HistoryRow]) -> list[Finding]:
    """value_not_learning, value_loss_exploding and value_fails_at_time_limit."""
    return _value(history) + _time_limit(history)


def replay_mismatch(history: Sequence[HistoryRow]) -> list[Finding]:
    """The first update whose `replay_error` exceeds REPLAY_TOLERANCE (rows without
    the key, as in histories recorded before the trainer wrote it, are skipped)."""
    for update, error in series(history, "replay_error"):
        if error > REPLAY_TOLERANCE:  # NaN: not measured; inf: non_finite names it
            return [
                Finding(
                    "replay_mismatch",
                    "replay_error",
                    update,
                    f"log π (or, with memory, the hidden state) recomputed by the "
                    f"update differs from the rollout's by up to {error:.3g} before "
                    f"the first gradient "
                    f"step (float32 noise: below 1e-5), so the ratios start away "
                    "from 1 and the clip works on the wrong policy. The update does "
                    "not recompute the log-probabilities the rollout stored: for a "
                    "recurrent policy, the hidden state is reset at the wrong step, "
                    "replayed from the wrong initial state, or the sequence axes "
                    "(time, env) are mixed; for any policy, the observations are "
                    "normalized differently in the update, or the rollout stored "
                    "the log-probabilities of other actions.",
                )  # fmt: skip
            ]
    return []
