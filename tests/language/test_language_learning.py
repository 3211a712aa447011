"""Lesson 10's learning claims, on a seed nobody tuned on (slow: a pre-training and a
few fine-tuning runs, several minutes on 2 cores).

- the pre-trained model samples the right answer at most 0.6 of the time on held-out
  prompts, and PPO and GRPO each lift that to at least 0.9;
- the student's ppo_loss is the one PPO calls: with its policy term's sign flipped the
  held-out reward does not rise;
- on the lenient grader, the run without a KL penalty hacks it (its true reward falls)
  and the penalized run does not.
Times are measured by `bench/bench_language.py`, not here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ppo_lessons.language.finetune import FinetuneConfig, finetune
from ppo_lessons.update import ppo_loss

pytestmark = pytest.mark.slow
SEED = 7


@pytest.mark.parametrize("method", ["ppo", "grpo"])
def test_fine_tuning_lifts_the_held_out_reward(method):
    result = finetune(method, SEED, progress=False)
    assert result.before["reward"] <= 0.6
    assert result.after["reward"] >= 0.9


def test_a_flipped_ppo_loss_does_not_learn():
    def flipped(new_lp, old_lp, adv, *rest):
        return ppo_loss(new_lp, old_lp, -adv, *rest)

    config = replace(FinetuneConfig(), iterations=40)
    result = finetune("ppo", SEED, functions={"ppo_loss": flipped}, config=config,
                      progress=False)  # fmt: skip
    assert result.function_calls["ppo_loss"] > 0
    assert result.after["reward"] < result.before["reward"] + 0.05


def test_without_a_kl_penalty_the_lenient_grader_is_hacked():
    lenient = replace(FinetuneConfig(), reward="lenient")
    free = finetune("ppo", SEED, config=replace(lenient, kl_coef=0.0), progress=False)
    held = finetune("ppo", SEED, config=replace(lenient, kl_coef=0.1), progress=False)
    assert free.after["lenient"] >= 0.9 and free.after["exact"] <= 0.2
    assert held.after["exact"] >= 0.8
