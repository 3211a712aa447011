"""Lesson 08 (`08_implementation_details.ipynb`): experiments over seeds, and the
flaws of a typical tutorial implementation as pluggable pieces (every lesson from 00
on runs its seeds and intervals through this package).

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

One module per concern:

    records      one `RunRecord` per run; `record_run`, `describe_runs`
    intervals    the one rule for noise: `t_quantile`, `welch_interval` (on arrays),
                 `summarize`, `compare`, `results_table` (on records)
    variants     `run_seeds`, `run_variants` (as populations where they can)
    figures      `plot_variants`, `plot_ablation`, `plot_diagnostics`
    flaws        the tutorial's flaws above
"""

from ppo_lessons.experiments.figures import (
    DIAGNOSTICS,
    plot_ablation,
    plot_diagnostics,
    plot_variants,
)
from ppo_lessons.experiments.flaws import (
    CriticFirstUpdate,
    compute_gae_truncation_as_termination,
    probability_ratio_objective,
    train_critic_first,
    zero_objective,
)
from ppo_lessons.experiments.intervals import (
    Comparison,
    Summary,
    compare,
    results_table,
    summarize,
    t_quantile,
    welch_interval,
)
from ppo_lessons.experiments.records import (
    METRICS,
    RunRecord,
    describe_runs,
    record_run,
)
from ppo_lessons.experiments.variants import (
    POPULATION_KWARGS,
    Variant,
    describe_population,
    population_overrides,
    run_seeds,
    run_variants,
)

__all__ = [
    "DIAGNOSTICS",
    "METRICS",
    "POPULATION_KWARGS",
    "Comparison",
    "CriticFirstUpdate",
    "RunRecord",
    "Summary",
    "Variant",
    "compare",
    "compute_gae_truncation_as_termination",
    "describe_population",
    "describe_runs",
    "plot_ablation",
    "plot_diagnostics",
    "plot_variants",
    "population_overrides",
    "probability_ratio_objective",
    "record_run",
    "results_table",
    "run_seeds",
    "run_variants",
    "summarize",
    "t_quantile",
    "train_critic_first",
    "welch_interval",
    "zero_objective",
]
