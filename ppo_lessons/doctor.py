"""The PPO doctor (`ppo_lessons.diagnose`): read a run's metric history and say what looks wrong.

    findings = diagnose(result.history)
    for f in findings:
        print(f"[{f.problem}] update {f.update}, {f.metric}: {f.advice}")

`history` is a list of per-update metric dicts, as the trainer records them (keys such as
`update`, `step`, `episodic_return`, `approx_kl`, `clip_fraction`, `entropy`,
`explained_variance`, `value_loss`, `policy_loss`, `replay_error`). Missing keys are
skipped.

One rule per problem of `PROBLEMS`, each reading the metrics against the ranges of
healthy PPO runs (approx KL about 0.001-0.03 per update, clip fraction about
0.05-0.3, entropy falling slowly, explained variance rising towards 1), with the
thresholds as named constants (below; the critic's and the replay rule's in
`ppo_lessons.doctor_rules`, which holds those rules). Every rule but non_finite and
replay_mismatch needs a few updates of history and stays quiet on shorter runs. Where each range comes from and the runs
that calibrated the rules: docs/doctor.md.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from functools import partial
from statistics import median

from ppo_lessons.doctor_rules import (  # the thresholds of the critic's rules too
    EV_LOW,
    FLAT_TARGETS,
    LEARNED_AT_COLLAPSE,
    NEAR_SOLVED,
    REPLAY_TOLERANCE,
    SUSTAIN,
    TIME_LIMIT_RATIO,
    Finding,
    critic_rules,
    first_sustained,
    flat_targets,
    near_solved,
    replay_mismatch,
    solved_share,
    sustain,
)
from ppo_lessons.doctor_rules import series as _series
from ppo_lessons.history import HistoryRow

__all__ = [
    "CLIP_HIGH",
    "COLLAPSE_DROP",
    "COLLAPSED_NATS",
    "EV_LOW",
    "FIRST_UPDATES",
    "FLAT_TARGETS",
    "KL_HIGH",
    "KL_JUMP",
    "KL_LOW",
    "KL_STILL",
    "LEARNED_AT_COLLAPSE",
    "NEAR_SOLVED",
    "POLICY_LOSS_HIGH",
    "PROBLEMS",
    "REPLAY_TOLERANCE",
    "SUSTAIN",
    "TIME_LIMIT_RATIO",
    "Finding",
    "action_dims",
    "collapsed_in_first_update",
    "diagnose",
    "flat_targets",
    "near_solved",
    "solved_share",
]

PROBLEMS: dict[str, str] = {
    "non_finite": "a loss or metric became NaN or infinite",
    "replay_mismatch": "the update's recomputed log π of the rollout's actions differs "
    "from the one the rollout stored, before any gradient step",
    "kl_too_high": "the policy moves too far per update (median approx KL above 0.03, "
    "or one update's above 0.5)",
    "clip_fraction_high": "most samples are clipped (clip fraction far above ~0.3)",
    "advantages_not_normalized": "the policy loss is far outside the ±0.1 that "
    "normalized advantages give",
    "entropy_collapse": "the policy became nearly deterministic early in training",
    "entropy_too_high": "the policy stays as random as at the start",
    "value_not_learning": "explained variance stays near or below zero (under 0.1) "
    "while the value targets still vary",
    "value_loss_exploding": "the value loss grows by orders of magnitude",
    "value_fails_at_time_limit": "the value loss jumps in the updates where episodes "
    "hit the time limit (a truncation treated as a termination)",
    "policy_not_moving": "returns stay flat while the policy, not collapsed, barely "
    "changes",
}

# median approx KL per update above this: too far, update after update (the top of
# the usual 0.001-0.03; healthy runs' medians at most 0.021, 1000 epochs 0.034-0.059)
KL_HIGH = 0.03
KL_JUMP = 0.5  # one early update above this: thrown far (solved runs: up to 1.5 later)
FIRST_UPDATES = 3  # a jump in these counts alone; later only if the policy then stops
KL_LOW = 1e-4  # median approx KL below this, with flat returns: the policy barely moves
KL_STILL = 1e-6  # median approx KL below this: the policy does not move at all
CLIP_HIGH = 0.4  # median clip fraction
POLICY_LOSS_HIGH = 1.0  # median |policy loss|; normalized advantages: ≤ ~0.1
GAUSSIAN_NATS = 0.5 * math.log(2 * math.pi * math.e)  # a unit Gaussian's entropy
COLLAPSE_DROP = 3.0  # nats per action dimension: σ shrunk e³ ≈ 20x
# below this a policy is nearly deterministic (two actions at 99:1 have 0.056 nats)
COLLAPSED_NATS = 0.05


def _non_finite(history: Sequence[HistoryRow]) -> list[Finding]:
    for i, row in enumerate(history):
        for key, value in row.items():
            if (
                isinstance(value, float)
                and not math.isfinite(value)
                and key
                not in (
                    "explained_variance",  # nan when the returns are constant
                    "episodic_return",  # nan when no episode ended in this update
                    "episodic_length",
                )
                # nan where it was not measured (a population, lesson 08's
                # critic-first update); an infinite one is a failure
                and not (key == "replay_error" and math.isnan(value))
            ):
                return [
                    Finding(
                        "non_finite",
                        key,
                        int(row.get("update", i + 1)),
                        f"{key} became {value}. Look for a division by a zero std "
                        "(advantage normalization of a single sample), log of 0, an "
                        "exploding learning rate, or unnormalized huge rewards.",
                    )  # fmt: skip
                ]
    return []


def _kl_and_clipping(history: Sequence[HistoryRow]) -> list[Finding]:
    findings = []
    kl = _series(history, "approx_kl")
    n = sustain(len(kl))
    # one jump is a failure in the first updates (a learning rate far too high), or
    # when the policy then stops moving (collapsed); later, with the policy moving on
    # as before, it is noise (a healthy CartPole-v1 read 0.44 once in 200 updates);
    # a jump too late to be followed by n updates says nothing either way (a solved
    # MountainCarContinuous-v0, 8 samples per update, read 0.50 in its last update)
    jumps = [
        (u, v)
        for i, (u, v) in enumerate(kl)
        if v > KL_JUMP
        and (
            i < FIRST_UPDATES
            or (
                len(kl) - i - 1 >= n
                and median([w for _, w in kl[i + 1 : i + 1 + n]]) < KL_LOW
            )
        )
    ]
    if len(kl) >= 3 and median([v for _, v in kl]) > KL_HIGH:
        first = next(u for u, v in kl if v > KL_HIGH)
        findings.append(
            Finding(
                "kl_too_high",
                "approx_kl",
                first,
                f"median approx KL {median([v for _, v in kl]):.3f} per update (healthy: "
                "about 0.001-0.03). The policy jumps too far on each batch: lower the "
                "learning rate, use fewer update epochs or a smaller clip_coef, or set "
                "target_kl (e.g. 0.015) to stop an update early.",
            )  # fmt: skip
        )
    elif len(kl) >= 3 and jumps:
        # a run that jumps once and then sits still (a collapsed policy's KL is ~0)
        # has a small median: the jump itself is the sign
        update, value = jumps[0]
        findings.append(
            Finding(
                "kl_too_high",
                "approx_kl",
                update,
                f"approx KL jumped to {value:.3g} in update {update} (healthy: about "
                "0.001-0.03 per update): one update threw the policy far from the one "
                "that collected the data. Lower the learning rate (target_kl cannot "
                "help when a single gradient step is already too large), or use fewer "
                "update epochs.",
            )  # fmt: skip
        )
    clip = _series(history, "clip_fraction")
    if len(clip) >= 3 and median([v for _, v in clip]) > CLIP_HIGH:
        first = next(u for u, v in clip if v > CLIP_HIGH)
        findings.append(
            Finding(
                "clip_fraction_high",
                "clip_fraction",
                first,
                f"median clip fraction {median([v for _, v in clip]):.2f} (healthy: about "
                "0.05-0.3): most ratios leave [1 − ε, 1 + ε] and their gradient is cut. "
                "Lower the learning rate or the number of epochs.",
            )  # fmt: skip
        )
    return findings


def _advantages(history: Sequence[HistoryRow]) -> list[Finding]:
    loss = _series(history, "policy_loss")
    if len(loss) < 3:
        return []
    size = median([abs(v) for _, v in loss])
    if size <= POLICY_LOSS_HIGH:
        return []
    first = next(u for u, v in loss if abs(v) > POLICY_LOSS_HIGH)
    return [
        Finding(
            "advantages_not_normalized",
            "policy_loss",
            first,
            f"median |policy loss| {size:.3g} (with advantages normalized per minibatch "
            "it stays within about ±0.1): the advantages carry the rewards' scale and "
            "offset, so while the critic is still wrong they push every sampled "
            "action the same way. Set norm_adv=True; if you wrote the update "
            "yourself, normalize each minibatch's advantages, (A − mean A) / "
            "(std A + 1e-8), and check that your objective averages over the "
            "minibatch instead of summing.",
        )  # fmt: skip
    ]


def action_dims(start: float) -> int:
    """How many action dimensions an entropy of `start` in the first update suggests:
    a Gaussian policy starts near log σ = 0, whose entropy is ½ ln(2πe) ≈ 1.42 nats
    per dimension (HalfCheetah: 8.5 for 6 dimensions, Ant: 11.3 for 8). At least 1,
    so a discrete policy (entropy ≤ ln n) counts as one dimension."""
    return max(1, round(start / GAUSSIAN_NATS)) if start > 0 else 1


def _collapsed(start: float, value: float) -> bool:
    """Has the entropy fallen from `start` to that of a nearly deterministic policy?
    (Discrete policies: entropy ≥ 0; a Gaussian's can be negative, so the drop counts,
    per action dimension: σ shrunk ~20x in each.)"""
    per_dimension = (start - value) / action_dims(start)
    return (start > 0 and value < 0.1 * start) or per_dimension > COLLAPSE_DROP


def collapsed_in_first_update(history: Sequence[HistoryRow]) -> bool:
    """Did the first update already leave a nearly deterministic policy, by a jump
    (approx KL above KL_JUMP)? Then the first entropy the doctor reads is the collapsed
    one, and no fall from it can show. (A learning rate 1,000x too high does this on
    CartPole within the first update's 20 epochs.)"""
    first = history[0] if history else None
    return (
        first is not None
        and math.isfinite(first["entropy"])
        and 0.0 <= first["entropy"] < COLLAPSED_NATS
        and first["approx_kl"] > KL_JUMP
    )


def _entropy(
    history: Sequence[HistoryRow], reward_threshold: float | None = None
) -> list[Finding]:
    entropy = _series(history, "entropy")
    if len(entropy) < 8:
        return []
    start = entropy[0][1]
    early = entropy[: max(2, len(entropy) // 4)]
    findings = []
    n = sustain(len(entropy))
    first = first_sustained(early, lambda v: _collapsed(start, v), n)
    # a policy that already learned may turn nearly deterministic for a while (a
    # solved CartPole at 0.05-0.1 nats, 0.2 again later); a collapse comes before
    # the returns rose, or lasts: the second half's median is collapsed too
    collapsed = [] if first is None else [early[first][0]]
    # the update in which the collapse has held for n updates: read the returns to it
    held = None if first is None else early[first + n - 1][0]
    second_half = [v for _, v in entropy[len(entropy) // 2 :]]
    lasts = _collapsed(start, median(second_half))
    if collapsed and not lasts and _learned_by(history, held):
        collapsed = []
    if collapsed and near_solved(history, reward_threshold, held):
        collapsed = []  # learned, then nearly solved: a deterministic policy is its end
    if collapsed_in_first_update(history):
        findings.append(
            Finding(
                "entropy_collapse",
                "entropy",
                entropy[0][0],
                f"entropy was already {start:.3f} after the first update, whose approx "
                f"KL was {history[0]['approx_kl']:.2f}: that update threw the policy to "
                "a nearly deterministic one before it learned anything. Lower the "
                "learning rate (or the epochs per update), or set target_kl.",
            )  # fmt: skip
        )
    elif collapsed:
        findings.append(
            Finding(
                "entropy_collapse",
                "entropy",
                collapsed[0],
                f"entropy fell from {start:.3f} to {early[first][1]:.3f} in the first "
                f"quarter of training and stayed there for {n} updates or more ("
                + ("to the end of the run" if lasts else "before the returns rose")
                + "): the policy stopped exploring before it learned. Raise "
                "ent_coef (e.g. 0.01), lower the learning rate, or check that the "
                "entropy bonus is added with the right sign."
                + _solved_note(history, reward_threshold, held),
            )  # fmt: skip
        )
    returns = [v for _, v in _series(history, "episodic_return") if math.isfinite(v)]
    late = [v for _, v in entropy[-max(2, len(entropy) // 4) :]]
    stuck = start > COLLAPSED_NATS and min(late) > 0.95 * start
    if stuck and len(returns) >= 8 and not _improved(returns):
        findings.append(
            Finding(
                "entropy_too_high",
                "entropy",
                entropy[-1][0],
                f"entropy stayed at {late[-1]:.3f}, about its starting value {start:.3f}, "
                "and returns did not improve: the entropy bonus outweighs the "
                "advantage term. Lower ent_coef (0.0-0.01 is usual). If ent_coef is "
                "already about 0, check that the advantages are normalized, or train "
                "longer: a slow task can look like this in its first updates.",
            )  # fmt: skip
        )
    return findings


def _solved_note(
    history: Sequence[HistoryRow], reward_threshold: float | None, collapse: int
) -> str:
    """The collapse advice's last sentence, if any: what the solved threshold said
    (with a leading space)."""
    if reward_threshold is None:
        return (
            " (If the task's best policy is deterministic and the policy had learned "
            "part of the task before it turned so, pass diagnose the task's "
            "reward_threshold.)"
        )
    then = solved_share(history, reward_threshold, until=collapse)
    end = solved_share(history, reward_threshold)
    if end is None:  # too few returns, or they met the threshold from the start
        return ""
    if then is None:  # fewer than 8 updates with finished episodes by the collapse
        came = (
            " (Too few episodes had ended when the policy turned nearly deterministic "
            "to tell how far the returns had come towards the task's solved "
            f"{reward_threshold:g}; they came {end:.2f} of the way by the end."
        )
    else:
        came = (
            f" (The returns had come {then:.2f} of the way to the task's solved "
            f"{reward_threshold:g} when the policy turned nearly deterministic, and "
            f"{end:.2f} by the end."
        )
    return (
        f"{came} Only a collapse after {LEARNED_AT_COLLAPSE:g} of the way, in a run "
        f"that ends {NEAR_SOLVED:g} of the way, is taken for the task's deterministic "
        "optimum.)"
    )


def _learned_by(history: Sequence[HistoryRow], update: int) -> bool:
    """Had the episodic returns clearly improved by `update` (at least 8 finished
    updates, the last quarter of them above the first)?"""
    returns = [
        v
        for u, v in _series(history, "episodic_return")
        if u <= update and math.isfinite(v)
    ]
    return len(returns) >= 8 and _improved(returns)


def _improved(returns: list[float]) -> bool:
    """Did the last quarter of episodic returns beat the first clearly?"""
    quarter = max(1, len(returns) // 4)
    first, last = returns[:quarter], returns[-quarter:]
    mean_first, mean_last = sum(first) / len(first), sum(last) / len(last)
    spread = max(abs(mean_first), abs(mean_last), 1e-8)
    return mean_last - mean_first > 0.1 * spread


def _policy_not_moving(history: Sequence[HistoryRow]) -> list[Finding]:
    kl = _series(history, "approx_kl")
    returns = [v for _, v in _series(history, "episodic_return") if math.isfinite(v)]
    if len(kl) < 8 or len(returns) < 8:
        return []
    entropy = [v for _, v in _series(history, "entropy")]
    if collapsed_in_first_update(history) or (
        entropy and _collapsed(entropy[0], median(entropy[len(entropy) // 2 :]))
    ):
        # a (nearly) deterministic policy barely moves: the collapse is the cause,
        # and "raise the learning rate" would be the wrong advice
        return []
    still = median([abs(v) for _, v in kl])
    # below KL_STILL the returns can only have moved by chance (a learning rate 1000x
    # too low on CartPole-v1: quarter means 20.3 and 23.4), so they need not be flat
    if still < KL_STILL or (still < KL_LOW and not _improved(returns)):
        return [
            Finding(
                "policy_not_moving",
                "approx_kl",
                kl[len(kl) // 2][0],
                f"approx KL stays near {median([abs(v) for _, v in kl]):.1e} and returns "
                "are flat: the updates barely change the policy. Raise the learning "
                "rate, check that advantages are not all ~0 (normalize them), and that "
                "the loss's gradient reaches the policy (no detached ratio).",
            )  # fmt: skip
        ]
    return []


def diagnose(
    history: Sequence[HistoryRow], *, reward_threshold: float | None = None
) -> list[Finding]:
    """What looks wrong in a run's metric history; an empty list when nothing does.

    Args:
        history: the per-update metric dicts of a run (`result.history`).
        reward_threshold: the return at which the task counts as solved (its
            Gymnasium spec's `reward_threshold`: `ppo_lessons.envs.solved_threshold`),
            or None. With it, a policy that turned nearly deterministic is not
            named `entropy_collapse` when the returns had come part of the way to
            it by then (`LEARNED_AT_COLLAPSE`) and most of the way by the end of
            the run (`NEAR_SOLVED`; `near_solved`): some tasks' best policy is
            deterministic (MountainCar-v0). A collapse that came before the policy
            learned stays named though the run then solves the task (the
            wrong-sign entropy bonus on CartPole-v1; docs/doctor.md), and so does
            a first update that collapsed the policy. The trainer passes its env's.

    Returns:
        A list of `Finding`s (problem, metric, update, advice), in the order of
        `PROBLEMS`; each problem is named at most once.

    Raises:
        TypeError: `history` is not a list of dicts, or `reward_threshold` is not a
            number (a numpy scalar is one).
        ValueError: `reward_threshold` is NaN or infinite.
    """
    if not isinstance(history, Sequence) or isinstance(history, str | bytes):
        raise TypeError(
            f"history must be a list of metric dicts, got {type(history).__name__}"
        )
    if not all(isinstance(row, dict) for row in history):
        raise TypeError("history must be a list of metric dicts (one per update)")
    if reward_threshold is not None:
        if isinstance(reward_threshold, bool) or not isinstance(
            reward_threshold, numbers.Real
        ):
            raise TypeError(
                "reward_threshold must be a finite number or None, got "
                f"{type(reward_threshold).__name__} {reward_threshold!r}"
            )
        if not math.isfinite(reward_threshold):
            raise ValueError(
                "reward_threshold must be a finite number or None, got "
                f"{reward_threshold!r}"
            )
        reward_threshold = float(reward_threshold)
    findings = _non_finite(history)
    rules = (
        replay_mismatch,
        _kl_and_clipping,
        _advantages,
        partial(_entropy, reward_threshold=reward_threshold),
        critic_rules,
        _policy_not_moving,
    )
    for rule in rules:
        findings += rule(history)
    return findings
