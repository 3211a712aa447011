"""Lesson 10's package: the task, the model's sampling and scoring, per-token GAE, the
pre-training cache, fine-tuning with the student's functions, and the command line.
Everything here uses a model pre-trained for a few steps: fast, and enough to test the
plumbing (the learning itself is measured by the lesson and the slow test)."""

from __future__ import annotations

import json

import pytest
import torch

from ppo_lessons.gae import compute_gae
from ppo_lessons.language import finetune as ft
from ppo_lessons.language.__main__ import main
from ppo_lessons.language.model import ModelConfig, TinyLM, real_tokens, sample, score
from ppo_lessons.language.pretrain import PretrainConfig, cache_path, pretrained
from ppo_lessons.language.task import (
    END,
    PAD,
    answer_tokens,
    decode,
    exact_reward,
    held_out,
    lenient_reward,
    prompt_tokens,
    sample_pairs,
    teacher_answers,
)

TINY = PretrainConfig(steps=20, batch_size=64, model=ModelConfig(d_model=32, d_ff=64))
SHORT = ft.FinetuneConfig(iterations=2, completions=32, group_size=4, eval_prompts=64)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PPO_LESSONS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------- the task


def test_prompts_and_answers_are_written_as_the_lesson_says():
    pairs = torch.tensor([[7, 45], [99, 99], [0, 3]])
    assert [decode(p) for p in prompt_tokens(pairs)] == ["07+45=", "99+99=", "00+03="]
    assert [decode(a) for a in answer_tokens(pairs.sum(1))] == ["25;", "891;", "3;"]


def test_the_right_answer_scores_one_and_a_changed_digit_zero():
    pairs = torch.tensor([[7, 45], [7, 45], [7, 45], [7, 45]])
    tokens = torch.tensor(
        [[2, 5, END, PAD], [2, 6, END, PAD], [2, 5, 5, END], [2, 5, PAD, PAD]]
    )
    assert exact_reward(pairs, tokens).tolist() == [1.0, 0.0, 0.0, 0.0]
    # the lenient grader finds "25" in "255;" and in the unfinished "25"
    assert lenient_reward(pairs, tokens).tolist() == [1.0, 0.0, 1.0, 1.0]


def test_the_teacher_is_right_half_the_time_and_otherwise_off_by_one_digit():
    g = torch.Generator().manual_seed(0)
    pairs = sample_pairs(20_000, g, held=False)
    answers = teacher_answers(pairs, g, right=0.5)
    right = answer_tokens(pairs.sum(1))
    correct = exact_reward(pairs, answers)
    assert 0.48 < correct.mean().item() < 0.52
    wrong = correct == 0
    differing = (answers[wrong, : right.shape[1]] != right[wrong]).sum(1)
    assert differing.eq(1).all()  # one digit, same length
    assert (answers[:, right.shape[1] :] == PAD).all()  # no second guess


def test_a_rambling_teacher_writes_two_guesses_that_never_grade_as_exact():
    g = torch.Generator().manual_seed(4)
    pairs = sample_pairs(4_000, g, held=False)
    answers = teacher_answers(pairs, g, right=1.0, ramble=0.25)
    one_guess = (answers != PAD).sum(1) == answer_tokens(pairs.sum(1)).ne(PAD).sum(1)
    assert 0.70 < one_guess.float().mean().item() < 0.80
    assert exact_reward(pairs, answers)[one_guess].eq(1).all()
    assert exact_reward(pairs, answers)[~one_guess].eq(0).all()
    assert lenient_reward(pairs, answers).eq(1).all()  # the right answer is in there


def test_held_out_pairs_never_reach_pre_training():
    g = torch.Generator().manual_seed(1)
    train_pairs = sample_pairs(5_000, g, held=False)
    eval_pairs = sample_pairs(500, g, held=True)
    assert not held_out(train_pairs[:, 0], train_pairs[:, 1]).any()
    assert held_out(eval_pairs[:, 0], eval_pairs[:, 1]).all()


# ---------------------------------------------------------------- the model


def test_scoring_replays_the_sampling_log_probs_exactly():
    # catches: scoring at another temperature than sampling, or off by one position
    # (PPO's ratio must start at exactly 1)
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(d_model=32, d_ff=64))
    prompts = prompt_tokens(sample_pairs(64, torch.Generator().manual_seed(2), False))
    for temperature in (1.0, 0.7):
        batch = sample(model, prompts, 6, temperature, torch.Generator().manual_seed(3))
        log_probs, entropy, values = score(model, batch, temperature)
        m = batch.mask
        torch.testing.assert_close(log_probs[m], batch.log_probs[m], atol=1e-5, rtol=0)
        assert (entropy[m] > 0).all() and values.shape == m.shape


def test_the_mask_ends_at_the_first_end_token():
    tokens = torch.tensor([[1, END, 3, END], [1, 2, 3, 4], [END, 5, 5, 5]])
    assert real_tokens(tokens).int().tolist() == [
        [1, 1, 0, 0],
        [1, 1, 1, 1],
        [1, 0, 0, 0],
    ]


# ---------------------------------------------------------------- per-token GAE


def test_token_gae_is_the_return_minus_the_value_and_padding_never_leaks():
    # catches: padding bootstrapped into the last real token, or the end token not
    # terminating the completion
    mask = torch.tensor([[True, True, True], [True, False, False]])
    rewards = torch.tensor([[0.0, -0.1, 1.0], [0.5, 0.0, 0.0]])
    values = torch.tensor([[0.2, 0.4, 0.6], [0.3, 9.0, -9.0]])
    fns = ft.LanguageFunctions(compute_gae=compute_gae)
    adv, ret = ft.token_gae(fns, rewards, values, mask, lam=1.0)
    # λ = γ = 1: the advantage is the rest of the completion's reward minus V
    torch.testing.assert_close(adv[0], torch.tensor([0.9, 0.9, 1.0]) - values[0])
    assert adv[1, 0].item() == pytest.approx(0.5 - 0.3)
    garbage = values.clone()
    garbage[1, 1:] = torch.tensor([1e4, -1e4])
    again, _ = ft.token_gae(fns, rewards, garbage, mask, lam=0.9)
    first, _ = ft.token_gae(fns, rewards, values, mask, lam=0.9)
    torch.testing.assert_close(again[mask], first[mask])


# ---------------------------------------------------------------- pre-training cache


def test_pre_training_is_cached_per_seed_and_config(cache):
    model, seconds = pretrained(0, TINY, progress=False)
    path = cache_path(0, TINY)
    assert path.is_file() and seconds > 0
    again, seconds_again = pretrained(0, TINY, progress=False)
    assert seconds_again == seconds  # read back, not trained again
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    other = PretrainConfig(steps=21, batch_size=64, model=TINY.model)
    assert cache_path(0, other) != path and cache_path(1, TINY) != path


# ---------------------------------------------------------------- fine-tuning


@pytest.mark.parametrize("method", ["ppo", "grpo"])
def test_finetune_calls_every_function_it_is_given(method):
    from ppo_lessons.language import tokens
    from ppo_lessons.update import ppo_loss

    given = {
        "ppo_loss": lambda *a: ppo_loss(*a),
        "compute_gae": lambda *a: compute_gae(*a),
        "kl_penalized_rewards": lambda *a: tokens.kl_penalized_rewards(*a),
        "masked_whiten": lambda *a: tokens.masked_whiten(*a),
        "group_advantages": lambda *a: tokens.group_advantages(*a),
        "token_loss": lambda *a: tokens.token_loss(*a),
    }
    result = ft.finetune(
        method, 0, functions=given, config=SHORT, pretrain_config=TINY, progress=False
    )
    used = {
        "ppo": ["ppo_loss", "compute_gae", "kl_penalized_rewards", "masked_whiten"],
        "grpo": ["group_advantages", "token_loss"],
    }[method]
    steps = SHORT.iterations * SHORT.update_epochs * SHORT.num_minibatches
    calls = result.function_calls
    assert all(calls[name] > 0 for name in used), calls
    assert calls["ppo_loss" if method == "ppo" else "token_loss"] == steps
    summary = result.summary()
    for key in ("method", "seed", "reward_before", "reward_after", "kl_per_token"):
        assert key in summary
    assert 0.0 <= summary["reward_after"] <= 1.0 and summary["method"] == method


def test_an_unknown_function_name_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="valid names: ppo_loss, compute_gae"):
        ft.finetune("ppo", 0, functions={"gae": compute_gae}, config=SHORT)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "dpo"}, "method must be 'ppo' or 'grpo'"),
        ({"reward": "fuzzy"}, "reward must be one of"),
        ({"method": "grpo", "completions": 30, "group_size": 8}, "multiple of"),
    ],
)
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        ft.FinetuneConfig(**changes)


def test_the_command_line_writes_the_summary_and_never_overwrites(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(ft, "PretrainConfig", lambda: TINY)
    out = tmp_path / "ppo.json"
    args = ["--method", "ppo", "--seed", "0", "--iterations", "1", "--no-progress"]
    assert main([*args, "--summary-json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["method"] == "ppo" and summary["seed"] == 0
    assert main([*args, "--summary-json", str(out)]) == 2  # exists: refused
