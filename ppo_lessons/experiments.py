"""Lesson 08 (`08_implementation_details.ipynb`): experiments over seeds, and the
flaws of a typical tutorial implementation as pluggable pieces.

One PPO run says little: two seeds of the same config can differ more than two
configs do. This module runs a config over several seeds with the course's trainer
(on the batched torch envs, every variant and seed of an experiment as one
population, `ppo_lessons.population`; otherwise one run after another), keeps one
record per run (seed, steps, wall time, final return, learning curve),
summarizes each variant by its mean, standard deviation and a t-based 95% confidence
interval over seeds, and says in plain words whether two variants differ beyond the
noise (Welch's t-interval of the difference of means):

    groups = run_variants(base, {"baseline": {}, "no obs norm": {"norm_obs": False}},
                          seeds=range(1, 6))
    print(results_table(groups, baseline="baseline"))
    plot_variants(groups, title="Pendulum-v1: observation normalization")

A typical tutorial implementation's flaws, reproduced with the trainer's pluggable
pieces:

    compute_gae_truncation_as_termination   the old Gym `done`: a time-limit cut is
                                            treated as a terminal state
    probability_ratio_objective             r = π_new / π_old from probabilities,
                                            not exp(log π_new − log π_old)
    train_critic_first                      advantages from a critic already fitted
                                            to the batch (Schulman et al., 2016)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.gae import compute_gae
from ppo_lessons.history import HistoryRow
from ppo_lessons.plotting import history_curves, plot_seeds
from ppo_lessons.population import (
    SHARED_FIELDS,
    Member,
    PopulationResult,
    train_population,
)
from ppo_lessons.rollout import gae_from_buffer, value_rollout
from ppo_lessons.trainer import Run, TrainResult, train
from ppo_lessons.trainer_config import PPOConfig
from ppo_lessons.update import UpdateFunctions, UpdateSettings, ppo_update

__all__ = [
    "Comparison",
    "RunRecord",
    "Summary",
    "Variant",
    "compare",
    "compute_gae_truncation_as_termination",
    "describe_runs",
    "plot_ablation",
    "plot_diagnostics",
    "plot_variants",
    "probability_ratio_objective",
    "record_run",
    "results_table",
    "run_seeds",
    "run_variants",
    "summarize",
    "t_quantile",
    "train_critic_first",
]

METRICS = ("final_return", "mean_return")

# ---------------------------------------------------------------- records of runs


@dataclass(frozen=True)
class RunRecord:
    """One training run, as the lesson's tables and figures need it.

    `curve` [U] is the episodic return logged at each update (the last value carried
    over updates where no episode ended); `steps` [U] the environment steps at each
    update. `final_return` is the mean of `curve` over the last `final_fraction` of
    the updates (the level the run ended at); `mean_return` its mean over all updates
    (the area under the learning curve: how fast it got there), skipping the updates
    before the first episode ended. Either is nan if no episode ended at all.
    """

    label: str
    seed: int
    total_steps: int
    wall_seconds: float  # in a population: its wall time divided by its members
    final_return: float
    mean_return: float
    first_step_solved: int | None
    steps: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    history: list[HistoryRow] = field(repr=False)
    population: int = 1  # the members of the population the run trained in


def record_run(
    result: TrainResult | PopulationResult,
    label: str = "",
    final_fraction: float = 0.1,
    member: Member | None = None,
) -> RunRecord:
    """A `RunRecord` of a finished run: `train`'s result, or one `member` of a
    `train_population` result."""
    if not 0.0 < final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in (0, 1], got {final_fraction!r}")
    run = result if member is None else member  # history, config, first_step_solved
    history = run.history
    if not history:
        raise ValueError("the run has no updates: total_steps < one rollout?")
    curve = history_curves([history], "episodic_return")[0]  # (U,)
    tail = curve[-max(1, math.ceil(final_fraction * len(curve))) :]
    size = 1 if member is None else len(result.members)
    return RunRecord(
        label=label,
        seed=run.config.seed,
        total_steps=result.global_step,
        wall_seconds=result.wall_seconds / size,
        final_return=float(np.nanmean(tail)) if np.isfinite(tail).any() else math.nan,
        mean_return=float(np.nanmean(curve)) if np.isfinite(curve).any() else math.nan,
        first_step_solved=run.first_step_solved,
        steps=np.array([row["step"] for row in history]),
        curve=curve,
        history=history,
        population=size,
    )


def run_seeds(
    config: PPOConfig,
    seeds: Iterable[int],
    *,
    label: str = "",
    runner: Callable[..., TrainResult] = train,
    final_fraction: float = 0.1,
    population: bool = True,
    **train_kwargs: Any,
) -> list[RunRecord]:
    """Train `config` once per seed (only the seed changes) and record each run.

    Args:
        config: the run's settings; its `seed` is replaced by each of `seeds`.
        seeds: the seeds, e.g. range(1, 6).
        label: the variant's name in tables and legends.
        runner: the training function, `train` or a variant with its signature
            (e.g. `train_critic_first`); called as runner(config, progress=False,
            **train_kwargs).
        final_fraction: the last fraction of updates that `final_return` averages.
        population: train all seeds as one population (`train_population`) where
            it can (`runner` is `train`, env_backend 'torch', train_kwargs among
            the lesson functions a population swaps); False: one run after another.
        **train_kwargs: passed on, e.g. compute_gae=... or objective=...

    Returns:
        One `RunRecord` per seed, in the order of `seeds`.
    """
    variant = Variant(train_kwargs=train_kwargs, runner=runner)
    return run_variants(
        config, {label: variant}, seeds, final_fraction=final_fraction,
        verbose=False, population=population,
    )[label]  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: config overrides, extra `train` arguments (the
    pluggable pieces) and the training function."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    train_kwargs: Mapping[str, Any] = field(default_factory=dict)
    runner: Callable[..., TrainResult] = train


# train's keyword -> the lesson function a population swaps for it
POPULATION_KWARGS = {
    "compute_gae": "compute_gae",
    "objective": "clipped_surrogate_objective",
    "value_loss": "value_loss",
}


def population_overrides(base: PPOConfig, variant: Variant) -> dict | None:
    """The variant as `train_population` takes it ({field: value, "functions":
    {...}}), or None if it needs runs of its own (another runner, a keyword a
    population cannot take, or a base config a population refuses)."""
    if (
        variant.runner is not train
        or base.env_backend != "torch"
        or base.shared_network
        or base.squash_actions
        or not set(variant.train_kwargs) <= POPULATION_KWARGS.keys()
    ):
        return None
    functions = {POPULATION_KWARGS[k]: f for k, f in variant.train_kwargs.items()}
    return {**variant.overrides, "functions": functions}


def run_variants(
    base: PPOConfig,
    variants: Mapping[str, Variant | Mapping[str, Any]],
    seeds: Iterable[int],
    *,
    final_fraction: float = 0.1,
    verbose: bool = True,
    population: bool = True,
) -> dict[str, list[RunRecord]]:
    """Every variant over the same seeds; a plain dict stands for config overrides.

    With `population` (the default), the variants a population can train run as
    populations of every (variant, seed) pair, one population per setting of the
    shared fields (`ppo_lessons.population.SHARED_FIELDS`: variants with 1 and 10
    epochs train in two populations); the others, and every variant with
    population=False, run one `runner` call after another. A member's run depends
    on its seed and settings alone, not on the population it trained in.

    With `verbose`, one line per population and per variant run on its own, when
    its runs are done: members or seeds, steps per run, wall time (the record of
    the experiment that the lesson prints).
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. range(1, 6)")
    arms = {
        label: v if isinstance(v, Variant) else Variant(overrides=dict(v))
        for label, v in variants.items()
    }
    batches: dict[str, tuple[dict, dict]] = {}  # shared fields -> (them, variants)
    for label, arm in arms.items():
        overrides = population_overrides(base, arm) if population else None
        if overrides is not None:
            shared = {
                k: overrides.pop(k) for k in list(overrides) if k in SHARED_FIELDS
            }
            batch = batches.setdefault(repr(sorted(shared.items())), (shared, {}))
            batch[1][label or "config"] = overrides  # a population's names are not ""
    groups: dict[str, list[RunRecord]] = {}
    for shared, members in batches.values():
        result = train_population(
            base.replace(**shared), seeds, members, progress=False
        )
        for name in members:
            label = name if name in arms else ""
            groups[label] = [
                record_run(result, label, final_fraction, member=m)
                for m in result.members
                if m.variant == name
            ]
        if verbose:
            print(describe_population(result, list(members)))
    for label, arm in arms.items():
        if label not in groups:
            tick = time.perf_counter()
            config = base.replace(**arm.overrides)
            groups[label] = [
                record_run(
                    arm.runner(
                        config.replace(seed=seed), progress=False, **arm.train_kwargs
                    ),
                    label,
                    final_fraction,
                )  # fmt: skip
                for seed in seeds
            ]
            if verbose:
                seconds = time.perf_counter() - tick
                print(
                    f"{label}: {describe_runs(groups[label])}, {seconds:.0f} s in all"
                )
    return {label: groups[label] for label in arms}


def describe_population(result: PopulationResult, names: Sequence[str]) -> str:
    """'one population of 20 members (2 variants × 10 seeds), 60,000 steps each,
    7 s: a, b' for one population of `run_variants`."""
    seeds = len(result.members) // len(names)
    word = "variant" if len(names) == 1 else "variants"
    return (
        f"one population of {len(result.members)} members ({len(names)} {word} × "
        f"{seeds} seeds), {result.global_step:,} steps each, "
        f"{result.wall_seconds:.0f} s: {', '.join(names)}"
    )


def describe_runs(records: Sequence[RunRecord]) -> str:
    """'5 seeds (1-5) × 60,000 steps, 4.1 s per run' for a list of records."""
    seeds = [r.seed for r in records]
    steps = sorted({r.total_steps for r in records})
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    steps_text = " or ".join(f"{s:,}" for s in steps)
    per_run = float(np.mean([r.wall_seconds for r in records]))
    word = "seed" if len(seeds) == 1 else "seeds"
    size = max(r.population for r in records)
    each = "per run" if size == 1 else f"per member of a population of {size}"
    return f"{len(seeds)} {word} ({span}) × {steps_text} steps, {per_run:.1f} s {each}"


# ---------------------------------------------------------------- statistics


def t_quantile(df: float, level: float = 0.95) -> float:
    """The two-sided quantile q of Student's t with `df` degrees of freedom (df ≥ 1,
    not necessarily whole, as Welch's ν): P(|T| ≤ q) = level. For level 0.95,
    q = 12.71 at df 1, 2.78 at df 4, 2.26 at df 9, towards 1.96 as df grows.

    Found by bisection on the integral of the density
    f(x) = Γ((ν+1)/2) / (Γ(ν/2) √(νπ)) · (1 + x²/ν)^(−(ν+1)/2) (trapezoid rule,
    4,000 panels: relative error below 1e-6).
    """
    if not (isinstance(df, int | float) and math.isfinite(df) and df >= 1.0):
        raise ValueError(f"df must be a finite number >= 1, got {df!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    log_c = (
        math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    )

    def central_mass(q: float) -> float:  # P(|T| <= q)
        x = np.linspace(0.0, q, 4001)
        pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
        return float(np.sum(pdf[1:] + pdf[:-1]) * (x[1] - x[0]))

    low, high = 0.0, 2.0
    while central_mass(high) < level:
        low, high = high, 2.0 * high
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if central_mass(mid) < level else (low, mid)
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Summary:
    """A variant over seeds: mean, sample std and 95% t-interval of the mean."""

    label: str
    seeds: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def _metric(records: Sequence[RunRecord], metric: str) -> np.ndarray:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not records:
        raise ValueError("records is empty: run at least one seed")
    return np.array([getattr(r, metric) for r in records], dtype=float)


def summarize(records: Sequence[RunRecord], metric: str = "final_return") -> Summary:
    """Mean ± t_{0.975, n−1} · std/√n over the seeds (nan interval for one seed)."""
    x = _metric(records, metric)
    n, mean = len(x), float(np.mean(x))
    if n < 2:
        return Summary(records[0].label, 1, mean, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Summary(records[0].label, n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """Variant minus baseline: difference of means with a 95% Welch t-interval.

    `beyond_noise` is True when the interval excludes 0, False when it contains it,
    None when there are too few seeds to say.
    """

    difference: float
    ci_low: float
    ci_high: float
    beyond_noise: bool | None
    verdict: str


def compare(
    baseline: Sequence[RunRecord],
    variant: Sequence[RunRecord],
    metric: str = "final_return",
    min_seeds: int = 3,
) -> Comparison:
    """Does `variant` differ from `baseline` beyond the seed-to-seed noise?

    Welch's t-interval for the difference of the means (no equal-variance
    assumption): d ± t_{0.975, ν} √(s_a²/n_a + s_b²/n_b), with the Welch–Satterthwaite
    ν. The verdict is a sentence; with fewer than `min_seeds` seeds on either side it
    says there are too few to conclude. One comparison in twenty crosses the line by
    chance alone when nothing differs, so among many comparisons expect a few.
    """
    a, b = _metric(baseline, metric), _metric(variant, metric)
    diff = float(np.mean(b) - np.mean(a))
    if min(len(a), len(b)) < max(2, min_seeds):
        return Comparison(
            diff, math.nan, math.nan, None,
            f"too few seeds to conclude ({len(a)} and {len(b)}; "
            f"at least {max(2, min_seeds)} each)",
        )  # fmt: skip
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        beyond = diff != 0.0
        low = high = diff
    else:
        nu = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        half = t_quantile(max(1.0, nu)) * se
        low, high = diff - half, diff + half
        beyond = low > 0.0 or high < 0.0
    interval = f"95% CI {low:+.1f} to {high:+.1f}"
    if beyond:
        word = "higher" if diff > 0 else "lower"
        verdict = f"{word} by {abs(diff):.1f} ({interval}): beyond the noise"
    else:
        verdict = f"inside the noise ({diff:+.1f}, {interval} contains 0)"
    return Comparison(diff, low, high, beyond, verdict)


def results_table(
    groups: Mapping[str, Sequence[RunRecord]],
    baseline: str,
    metrics: Sequence[str] = ("final_return",),
    min_seeds: int = 3,
) -> str:
    """A text table per metric: for each variant, mean ± std over seeds, the 95%
    interval of the mean, and the verdict of its comparison with `baseline`
    (numbers rounded to 0.1)."""
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not one of {list(groups)}")
    if isinstance(metrics, str):
        metrics = (metrics,)
    width = max(len(label) for label in groups)
    lines = []
    for metric in metrics:
        lines.append(f"{metric} over seeds (mean ± std [95% CI of the mean]):")
        for label, records in groups.items():
            s = summarize(records, metric)
            row = f"  {label:<{width}}  {s.mean:7.1f} ± {s.std:5.1f}"
            row += f" [{s.ci_low:7.1f}, {s.ci_high:7.1f}]"
            if label != baseline:
                c = compare(groups[baseline], records, metric, min_seeds)
                row += "  " + c.verdict
            lines.append(row)
    return "\n".join(lines)


# ---------------------------------------------------------------- figures


def plot_variants(
    groups: Mapping[str, Sequence[RunRecord]],
    title: str,
    ax: Axes | None = None,
    ylabel: str = "episodic return (mean of the episodes ending per update)",
) -> Figure:
    """Learning curves of several variants: mean over seeds ± one std band against
    environment steps; the legend says how many seeds each line averages."""
    if not groups:
        raise ValueError("groups is empty: nothing to plot")
    lengths = {len(r.curve) for records in groups.values() for r in records}
    if len(lengths) != 1:
        raise ValueError(
            f"all runs must have the same number of updates, got {sorted(lengths)}"
        )
    steps = next(iter(groups.values()))[0].steps
    curves = {label: np.stack([r.curve for r in rs]) for label, rs in groups.items()}
    return plot_seeds(
        steps, curves, xlabel="environment steps", ylabel=ylabel, title=title, ax=ax
    )


def plot_ablation(
    groups: Mapping[str, Sequence[RunRecord]],
    baseline: str,
    title: str,
    ncols: int = 3,
) -> Figure:
    """One small panel per variant, each against `baseline` (mean ± std over seeds),
    with the same y axis: a figure of many variants that stays readable."""
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not one of {list(groups)}")
    others = [label for label in groups if label != baseline]
    if not others:
        raise ValueError("groups holds only the baseline: nothing to compare")
    nrows = math.ceil(len(others) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    for ax, label in zip(axes.flat, others, strict=False):
        pair = {baseline: groups[baseline], label: groups[label]}
        plot_variants(pair, title=label, ax=ax, ylabel="episodic return")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(others) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


DIAGNOSTICS = (
    ("episodic_return", "episodic return", False),
    ("value_loss", "value loss", True),
    ("explained_variance", "explained variance", False),
    ("approx_kl", "approx KL (nats)", True),
    ("clip_fraction", "clip fraction", False),
    ("entropy", "policy entropy (nats)", False),
)


def plot_diagnostics(runs: Mapping[str, Sequence[HistoryRow]], title: str) -> Figure:
    """The diagnostics of lesson 06 for a few runs (label -> history), one panel per
    metric against environment steps, value loss and KL on log scales."""
    if not runs:
        raise ValueError("runs is empty: nothing to plot")
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.4))
    for ax, (key, label, logy) in zip(axes.flat, DIAGNOSTICS, strict=True):
        for name, history in runs.items():
            steps = [row["step"] for row in history]
            ax.plot(steps, history_curves([history], key)[0], label=f"{name} (1 seed)")
        ax.set(xlabel="environment steps", ylabel=label, title=label)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- a tutorial's flaws


def compute_gae_truncation_as_termination(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE with the old Gym API's single `done = terminated or truncated`, as a typical
    tutorial implementation computes it: δ_t = r_t + γ (1 − done_t) V(s_{t+1}) − V(s_t). A time-limit
    cut then looks like a terminal state worth 0 afterwards (the flaw Pardo et al.,
    2018, measure). Same signature and shapes as `ppo_lessons.gae.compute_gae`."""
    done = terminated.bool() | truncated.bool()
    return compute_gae(
        rewards, values, next_values, done, torch.zeros_like(done), gamma, lam
    )


def probability_ratio_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """L^CLIP with a typical tutorial's ratio of probabilities,
    r = exp(log π_new) / exp(log π_old), instead of exp(log π_new − log π_old).
    Equal in exact arithmetic; in float32, exp underflows to 0 below a log-density
    of about −103 and overflows to inf above about 88.7, and then r is 0, inf or nan.
    Same signature as `ppo_lessons.clipping.clipped_surrogate_objective`."""
    ratio = torch.exp(new_log_probs) / torch.exp(old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return torch.minimum(ratio * advantages, clipped * advantages).mean()


def zero_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """No policy term: `ppo_update` with it (and ent_coef 0) only fits the critic."""
    return new_log_probs.new_zeros(())


class CriticFirstUpdate:
    """Phases 2-3 of `train` for `train_critic_first`: fit the critic to the batch,
    then step the policy (separate Adam optimizers for the two networks, made at the
    first update, so a critic-only step cannot move the actor through Adam's momentum
    and the other way round)."""

    def __init__(self, advantages_from: str) -> None:
        self.advantages_from = advantages_from
        self.critic_optimizer: torch.optim.Optimizer | None = None

    def split_optimizers(self, run: Run) -> torch.optim.Optimizer:
        agent, config = run.agent, run.config
        critic_ids = {id(p) for p in agent.critic.parameters()}
        actor_params = [p for p in agent.parameters() if id(p) not in critic_ids]
        adam = dict(lr=config.learning_rate, eps=config.adam_eps)
        run.optimizer = torch.optim.Adam(actor_params, **adam)
        return torch.optim.Adam(agent.critic.parameters(), **adam)

    def __call__(
        self, run: Run, buffer: RolloutBuffer, settings: UpdateSettings
    ) -> tuple[dict, torch.Tensor]:
        if self.critic_optimizer is None:
            self.critic_optimizer = self.split_optimizers(run)
        # the critic's learning rate follows the actor's (annealed) one
        self.critic_optimizer.param_groups[0]["lr"] = run.optimizer.param_groups[0][
            "lr"
        ]
        config = run.config
        critic_only = dataclasses.replace(settings, ent_coef=0.0, target_kl=None)
        policy_only = dataclasses.replace(settings, vf_coef=0.0)
        # from the collection-time values
        advantages, returns = gae_from_buffer(buffer, config.gamma, config.gae_lambda)
        fit = ppo_update(
            run.agent, self.critic_optimizer, buffer.flatten(advantages, returns),
            critic_only, run.generator, UpdateFunctions(zero_objective),
        )  # fmt: skip
        if self.advantages_from == "updated":
            collected_values = buffer.values.clone()
            value_rollout(run.agent, buffer)  # V of the critic just fitted
            advantages, _ = gae_from_buffer(buffer, config.gamma, config.gae_lambda)
            buffer.values.copy_(collected_values)  # logged explained variance as usual
        metrics = ppo_update(
            run.agent, run.optimizer, buffer.flatten(advantages, returns), policy_only,
            run.generator,
        )  # fmt: skip
        metrics["value_loss"] = fit["value_loss"]
        return metrics, returns


def train_critic_first(
    config: PPOConfig,
    *,
    advantages_from: str = "updated",
    progress: bool = False,
) -> TrainResult:
    """PPO that fits the critic to each batch before the policy step (separate Adam
    optimizers for the two networks), built from the trainer's own phases.

    Per update: collect a rollout; GAE with the values stored at collection gives the
    critic's targets; `update_epochs` epochs fit the critic alone; then the policy
    takes its epochs on advantages computed either

        advantages_from="collected": from the values stored at collection (correct:
            fitting the critic does not change the advantages), or
        advantages_from="updated": from the critic just fitted to this very batch
            (a typical tutorial's flaw: V already knows the returns it is subtracted from, so
            the advantages shrink towards 0 and lose their signal; Schulman et al.,
            2016, Algorithm 1, warn against it).

    Needs `shared_network=False`. `train` with the update phase replaced
    (`CriticFirstUpdate`); returns its `TrainResult`.
    """
    if advantages_from not in ("collected", "updated"):
        raise ValueError(
            f"advantages_from must be 'collected' or 'updated', got {advantages_from!r}"
        )
    if config.shared_network:
        raise ValueError("train_critic_first needs shared_network=False")
    return train(config, progress=progress, update=CriticFirstUpdate(advantages_from))
