"""The probe ladder (`ppo_lessons.probes`) names the broken part: each test plants one
bug through `train(functions=...)` and checks that the rung which isolates it fails
first."""

from __future__ import annotations

import torch

from ppo_lessons.gae import compute_gae
from ppo_lessons.probes import probe_ladder
from ppo_lessons.update import ppo_loss, ppo_update


def first_failure(functions: dict) -> str | None:
    results = probe_ladder(functions=functions, verbose=False)
    failed = [r.rung.probe for r in results if not r.passed]
    return failed[0] if failed else None


def test_a_policy_term_with_the_wrong_sign_fails_the_action_rung():
    def flipped(new, old, adv, *rest):
        # the policy term pushes the wrong way: minimizing −(−L^CLIP)
        return ppo_loss(new, old, -adv, *rest)

    assert first_failure({"ppo_loss": flipped}) == "ActionReward"


def test_a_critic_without_gradient_fails_the_first_rung():
    def no_value_gradient(new_lp, old_lp, adv, new_v, *rest):
        return ppo_loss(new_lp, old_lp, adv, new_v.detach(), *rest)

    assert first_failure({"ppo_loss": no_value_gradient}) == "Constant"


def test_truncation_treated_as_termination_fails_the_endless_rung():
    def no_bootstrap(rewards, values, next_values, terminated, truncated, gamma, lam):
        ended = terminated.bool() | truncated.bool()
        return compute_gae(
            rewards, values, next_values, ended, torch.zeros_like(ended), gamma, lam
        )

    assert first_failure({"compute_gae": no_bootstrap}) == "Endless"


def test_returns_shuffled_apart_from_their_observations_fail_the_obs_rung():
    def unpaired(agent, optimizer, batch, settings, generator):
        # the bug of indexing one field with its own permutation
        shuffled = batch.returns[torch.randperm(len(batch.returns))]
        unpaired_batch = batch._replace(returns=shuffled)
        return ppo_update(agent, optimizer, unpaired_batch, settings, generator)

    assert first_failure({"ppo_update": unpaired}) == "ObsReward"
