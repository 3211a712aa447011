"""ppo_lessons: the helper package of the course "PPO, derived step by step".

Each lesson notebook derives one idea, lets the student implement it, and then imports
the reference version from here. The trainer (`ppo_lessons.trainer`) is built from
exactly these functions: there is one implementation of each idea.

Shape alphabet, used in every docstring and shape comment of the package:

    T   steps per rollout (the time axis, always first)
    N   parallel environments
    B   T * N, a flattened batch of transitions
    M   minibatch size
    A   action dimensions
    *O  observation shape

Modules, in lesson order:

    00  envs                  Gymnasium vector envs (and the trainer's env plumbing)
    01  policy_gradient       returns, the policy-gradient loss
    02  importance_sampling   the probability ratio, the surrogate
    03  clipping              the clipped surrogate
    04  gae                   generalized advantage estimation (`chain`: a test MDP)
    05  networks              policies, log-probabilities, entropy, ActorCritic
    06  losses, update        the value loss; ppo_loss, minibatches, the PPO update
    07  buffer, rollout,      the rollout storage and collection; the trainer, its
        trainer, ...          config, presets, checkpoints, display, CLI (`train`)
    08  experiments, doctor   seeds and ablations with intervals; run diagnosis
    09  torch_envs,           batched on-device environments; many agents trained
        population            as one batched model

Beside them: `checks` (the exercise checks), `exercises` (the exercise table),
`functions` (a student's functions in the trainer), `speed` (the trainer's speed
tricks), `history` (the metric row), `validate` (argument checks), `widgets` (the
interactive explorers), `grading` and `grade`, `release` (student notebooks),
`notebook` (helpers for the lesson notebooks).
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

QUICK_ENV_VAR = "PPO_LESSONS_QUICK"


def quick_mode() -> bool:
    """True when long notebook cells should shrink: `PPO_LESSONS_QUICK=1` or `CI=true`.

    The test command sets `PPO_LESSONS_QUICK=1`, so nbval runs every notebook in a
    few seconds per experiment; a student running JupyterLab gets the full size.
    """
    flag = os.environ.get(QUICK_ENV_VAR, "").strip().lower()
    if flag in {"1", "true", "yes", "on"}:
        return True
    if flag in {"0", "false", "no", "off"}:
        return False
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def budget(full: int, quick: int) -> int:
    """Size of an experiment: `full` normally, `quick` under the test command.

    >>> budget(full=200_000, quick=5_000)  # doctest: +SKIP
    """
    return quick if quick_mode() else full


from ppo_lessons.doctor import diagnose  # noqa: E402  (pure Python, no torch import)

__all__ = ["budget", "diagnose", "quick_mode"]
