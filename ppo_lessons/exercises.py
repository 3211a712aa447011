"""The course's graded exercises, in one table.

The student-notebook generator, the checks and the grader (`python -m
ppo_lessons.grade`) all read this table; points per exercise live here and nowhere else.

In a solution notebook an exercise is a code cell whose first line is
`# Exercise <number>: <function>` (e.g. `# Exercise 4.1: compute_gae`) and whose
solution code sits between `### BEGIN SOLUTION` and `### END SOLUTION` (the same
markers nbgrader uses). The generator replaces that block by a stub that raises
`NotImplementedError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EXERCISES", "EXERCISE_HEADER", "Exercise"]

EXERCISE_HEADER = re.compile(r"^#\s*Exercise\s+(\d+)\.(\d+)\s*:\s*([A-Za-z_]\w*)\s*$")
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"


@dataclass(frozen=True)
class Exercise:
    """One graded function of a lesson."""

    number: str  # "4.1": lesson 4, exercise 1
    function: str  # the contract's function name, e.g. "compute_gae"
    module: str  # the package module holding the reference, e.g. "ppo_lessons.gae"
    points: int
    # where `train` calls it, for the exercises the trainer takes (`functions=`)
    trainer: str = ""

    @property
    def lesson(self) -> int:
        return int(self.number.split(".")[0])

    @property
    def check_name(self) -> str:
        return f"check_{self.function}"


# fmt: off
EXERCISES: tuple[Exercise, ...] = (
    Exercise("1.1", "discounted_returns", "ppo_lessons.policy_gradient", 2),
    Exercise("1.2", "policy_gradient_loss", "ppo_lessons.policy_gradient", 2),
    Exercise("2.1", "probability_ratio", "ppo_lessons.importance_sampling", 1,
             "the clip fraction of every minibatch"),
    Exercise("2.2", "surrogate_objective", "ppo_lessons.importance_sampling", 2),
    Exercise("3.1", "clipped_surrogate_objective", "ppo_lessons.clipping", 3,
             "the policy term of the loss"),
    Exercise("4.1", "compute_gae", "ppo_lessons.gae", 4,
             "advantages and returns after every rollout"),
    Exercise("5.1", "gaussian_log_prob", "ppo_lessons.networks", 2,
             "log π(a|s) of Box actions (rollout and update)"),
    Exercise("5.2", "categorical_entropy", "ppo_lessons.networks", 2,
             "the entropy of Discrete policies (update)"),
    Exercise("5.3", "actor_critic_networks", "ppo_lessons.networks", 3,
             "the actor and the critic, built once at the start"),
    Exercise("6.1", "value_loss", "ppo_lessons.losses", 2,
             "the value term of the loss"),
    Exercise("6.2", "ppo_loss", "ppo_lessons.update", 4,
             "the loss of every minibatch"),
    Exercise("6.3", "minibatch_indices", "ppo_lessons.update", 2,
             "the minibatches of every epoch"),
    Exercise("6.4", "approx_kl", "ppo_lessons.update", 2,
             "the KL metric and the target_kl stop"),
    Exercise("6.5", "explained_variance", "ppo_lessons.update", 1,
             "the explained-variance metric"),
    Exercise("7.1", "collect_rollout", "ppo_lessons.rollout", 4,
             "every rollout"),
    Exercise("7.2", "ppo_update", "ppo_lessons.update", 5,
             "every update (it then calls its own loss and minibatches)"),
    Exercise("9.1", "cartpole_step", "ppo_lessons.torch_envs", 3),
    Exercise("10.1", "kl_penalized_rewards", "ppo_lessons.language", 2),
    Exercise("10.2", "masked_whiten", "ppo_lessons.language", 2),
    Exercise("10.3", "group_advantages", "ppo_lessons.language", 2),
    Exercise("10.4", "token_loss", "ppo_lessons.language", 3),
    Exercise("11.1", "replay_sequence", "ppo_lessons.memory", 4,
             "the hidden states of every sequence a recurrent update replays"),
)
# fmt: on
