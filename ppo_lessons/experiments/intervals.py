"""The course's one rule for noise (lesson 08): a difference between two settings is
real only when its 95% Welch t-interval over seeds excludes 0.

    low, high = welch_interval(returns_a, returns_b)   # of mean(b) − mean(a)
    print(compare(baseline_records, variant_records).verdict)

`t_quantile` and `welch_interval` work on plain arrays (lessons 01 and 03 compare
their own measurements with them); `summarize`, `compare` and `results_table` on the
records of training runs (`ppo_lessons.experiments.records`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ppo_lessons.experiments.records import METRICS, RunRecord

__all__ = [
    "Comparison",
    "Summary",
    "compare",
    "results_table",
    "summarize",
    "t_quantile",
    "welch_interval",
]


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


def welch_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    level: float = 0.95,
) -> tuple[float, float]:
    """(low, high): the Welch t-interval of mean(b) − mean(a) over seeds.

    d ± t_{(1+level)/2, ν} √(s_a²/n_a + s_b²/n_b), with the Welch–Satterthwaite
    ν = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1))
    (no equal-variance assumption). With no spread on either side the interval is
    the difference itself. The difference is beyond the noise when the interval
    excludes 0.

    Args:
        a: [n_a] one measurement per seed (n_a ≥ 2), e.g. the baseline's returns.
        b: [n_b] one measurement per seed (n_b ≥ 2).
        level: the interval's coverage, 0.95 for the course's rule.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or min(len(a), len(b)) < 2:
        raise ValueError(
            "a and b must be 1-D with at least 2 seeds each, got shapes "
            f"{a.shape} and {b.shape}"
        )
    diff = float(np.mean(b) - np.mean(a))
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return diff, diff
    nu = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(max(1.0, nu), level) * se
    return diff - half, diff + half


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
    low, high = welch_interval(a, b)
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
