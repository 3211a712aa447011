"""Exercise checks: run a student's function on many inputs and explain what is wrong.

One check per graded function, `check_<function>(fn)`. Each calls `fn` with every
argument positional, exactly as the contract in `ppo_lessons` states, and

- prints one line and returns a true `CheckResult` when the function is right;
- prints one line naming the exercise and its notebook and returns a false one when
  `fn` raises `NotImplementedError` (so an unsolved notebook still runs top to
  bottom); Jupyter shows no value for the result, only the printed line;
- raises `AssertionError` whose message says what is wrong in the student's terms.

A check tests values AND gradients (where a gradient matters), inputs of shape [T] and
[T, N], random episode ends of both kinds, and parameters away from their usual
defaults. When the answer is wrong it first compares it with the typical mistakes (a
wrong sign, max instead of min, the truncation bug, ...) to name the mistake; failing
that, it probes small hand-made cases to say where the function goes wrong.

Episode-end flags are passed as 0/1 float tensors, the dtype of the rewards; a function
that only accepts bool flags is called with bool flags instead.

Instructors can add hidden cases: `check_compute_gae(fn, extra_cases=[{...}])`, where
each case is a dict of the function's arguments by name (see `ppo_lessons.grade`).

One module per lesson (`lesson01` ... `lesson11`; `lesson06_update` and
`lesson06_minibatches` for 6.2 and 6.3, `lesson07_rollout` for 7.1) holds its checks
and the typical mistakes they recognise; `harness` holds what they share. Every check is exported
here: `from ppo_lessons.checks import check_compute_gae`.
"""

from __future__ import annotations

from ppo_lessons.checks.lesson01 import (
    check_discounted_returns,
    check_policy_gradient_loss,
)
from ppo_lessons.checks.lesson02 import (
    check_probability_ratio,
    check_surrogate_objective,
)
from ppo_lessons.checks.lesson03 import check_clipped_surrogate_objective
from ppo_lessons.checks.lesson04 import check_compute_gae
from ppo_lessons.checks.lesson05 import (
    check_actor_critic_networks,
    check_categorical_entropy,
    check_gaussian_log_prob,
)
from ppo_lessons.checks.lesson06 import (
    check_approx_kl,
    check_explained_variance,
    check_value_loss,
)
from ppo_lessons.checks.lesson06_minibatches import check_minibatch_indices
from ppo_lessons.checks.lesson06_update import check_ppo_loss
from ppo_lessons.checks.lesson07 import check_collect_rollout, check_ppo_update
from ppo_lessons.checks.lesson09 import check_cartpole_step
from ppo_lessons.checks.lesson10 import (
    check_group_advantages,
    check_kl_penalized_rewards,
    check_masked_whiten,
    check_token_loss,
)
from ppo_lessons.checks.lesson11 import check_replay_sequence

__all__ = [
    "check_actor_critic_networks",
    "check_approx_kl",
    "check_cartpole_step",
    "check_categorical_entropy",
    "check_clipped_surrogate_objective",
    "check_collect_rollout",
    "check_compute_gae",
    "check_discounted_returns",
    "check_explained_variance",
    "check_gaussian_log_prob",
    "check_group_advantages",
    "check_kl_penalized_rewards",
    "check_masked_whiten",
    "check_minibatch_indices",
    "check_policy_gradient_loss",
    "check_ppo_loss",
    "check_ppo_update",
    "check_probability_ratio",
    "check_replay_sequence",
    "check_surrogate_objective",
    "check_token_loss",
    "check_value_loss",
]
