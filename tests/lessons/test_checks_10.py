"""Lesson 10's contracts and checks: the references pass, other correct versions (loops
over rows and tokens) pass, and each typical mistake is caught and named."""

from __future__ import annotations

import pytest
import torch

from ppo_lessons.checks.lesson10 import (
    check_group_advantages,
    check_kl_penalized_rewards,
    check_masked_whiten,
    check_token_loss,
)
from ppo_lessons.language import (
    group_advantages,
    kl_penalized_rewards,
    masked_whiten,
    token_loss,
)

# ---------------------------------------------------------------- analytic cases

MASK = torch.tensor([[True, True, True], [True, False, False]])


def test_kl_penalized_rewards_by_hand():
    log_probs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, 7.0, 7.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.0, -9.0, 3.0]])
    r = kl_penalized_rewards(torch.tensor([1.0, 0.25]), log_probs, ref, MASK, 0.1)
    expected = torch.tensor([[-0.05, 0.1, 1.0], [0.1 + 0.25, 0.0, 0.0]])
    torch.testing.assert_close(r, expected)


def test_masked_whiten_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 1e6, -1e6]])
    real = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mu, sigma = 2.5, real.std().item()  # Bessel: sqrt(5/3)
    w = masked_whiten(x, MASK)
    torch.testing.assert_close(w[0], (real[:3] - mu) / (sigma + 1e-8))
    assert w[1, 0].item() == pytest.approx((4.0 - mu) / sigma)
    assert w[1, 1:].tolist() == [0.0, 0.0]


def test_group_advantages_by_hand():
    scores = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # prompts (1,0,1), (1,0,0)
    a = group_advantages(scores, 3, False)
    torch.testing.assert_close(a, torch.tensor([1, -2, 1, 2, -1, -1]) / 3.0)
    std = torch.tensor([1.0, 0.0, 1.0]).std()
    scaled = group_advantages(scores, 3, True)
    torch.testing.assert_close(scaled[:3], a[:3] / (std + 1e-4))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("token", (1 + 2 + 3 + 4) / 4), ("sequence", (2 + 4) / 2), ("constant", 10 / 6)],
)
def test_token_loss_by_hand(mode, expected):
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9e9, -9e9]], requires_grad=True)
    loss = token_loss(per_token, MASK, mode)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert per_token.grad[1, 1:].tolist() == [0.0, 0.0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode must be one of"):
        token_loss(torch.zeros(2, 3), MASK, "mean")
    with pytest.raises(ValueError, match="group_size must be an integer >= 2"):
        group_advantages(torch.zeros(4), 1, True)
    with pytest.raises(ValueError, match="multiple of group_size=3"):
        group_advantages(torch.zeros(4), 3, True)
    with pytest.raises(ValueError, match="row with no real token"):
        masked_whiten(torch.zeros(2, 3), torch.tensor([[1, 0, 0], [0, 0, 0]]).bool())


# ---------------------------------------------------------------- correct, other ways


def rewards_loop(scores, log_probs, ref_log_probs, mask, kl_coef):
    out = torch.zeros_like(log_probs)
    for b in range(out.shape[0]):
        n = int(mask[b].sum())
        for t in range(n):
            out[b, t] = kl_coef * (ref_log_probs[b, t] - log_probs[b, t])
        out[b, n - 1] = out[b, n - 1] + scores[b]
    return out


def whiten_numpy(x, mask):
    import numpy as np

    a, m = x.numpy(), mask.numpy().astype(bool)
    real = a[m]
    out = np.where(m, (a - real.mean()) / (real.std(ddof=1) + 1e-8), 0.0)
    return torch.as_tensor(out, dtype=x.dtype)


def group_loop(scores, group_size, scale):
    out = []
    for start in range(0, len(scores), group_size):
        g = scores[start : start + group_size]
        a = g - g.mean()
        out.append(a / (g.std() + 1e-4) if scale else a)
    return torch.cat(out)


def token_loss_rows(per_token, mask, mode):
    w = mask.float()
    rows = [(per_token[b] * w[b]).sum() for b in range(per_token.shape[0])]
    if mode == "sequence":
        return torch.stack([r / w[b].sum() for b, r in enumerate(rows)]).mean()
    total = torch.stack(rows).sum()
    return total / (w.sum() if mode == "token" else per_token.numel())


@pytest.mark.parametrize(
    ("check", "fn"),
    [
        (check_kl_penalized_rewards, kl_penalized_rewards),
        (check_kl_penalized_rewards, rewards_loop),
        (check_masked_whiten, masked_whiten),
        (check_masked_whiten, whiten_numpy),
        (check_group_advantages, group_advantages),
        (check_group_advantages, group_loop),
        (check_token_loss, token_loss),
    ],
)
def test_correct_versions_pass(check, fn, capsys):
    assert check(fn)
    assert "✔" in capsys.readouterr().out


def test_a_token_loss_that_multiplies_by_the_mask_passes():
    # catches a check stricter than the contract: per_token * mask is right for the
    # finite padding the contract promises (torch.where is not required)
    assert check_token_loss(token_loss_rows)


def test_stubs_are_not_done(capsys):
    def stub(*args):
        raise NotImplementedError

    for check in (
        check_kl_penalized_rewards,
        check_masked_whiten,
        check_group_advantages,
        check_token_loss,
    ):
        assert not check(stub)
    assert "not implemented yet" in capsys.readouterr().out


# ---------------------------------------------------------------- typical mistakes


def last(mask):
    return mask.long().sum(1) - 1


def kl_sign(scores, lp, ref, mask, c):
    return kl_penalized_rewards(scores, lp, ref, mask, -c)


def kl_first_token(scores, lp, ref, mask, c):
    r = kl_penalized_rewards(torch.zeros_like(scores), lp, ref, mask, c)
    r[:, 0] += scores
    return r


def kl_last_column(scores, lp, ref, mask, c):
    r = kl_penalized_rewards(torch.zeros_like(scores), lp, ref, mask, c)
    r[:, -1] += scores
    return r


def kl_padding_counted(scores, lp, ref, mask, c):
    r = -c * (lp - ref)
    r[torch.arange(len(scores)), last(mask)] += scores
    return r


def whiten_over_padding(x, mask):
    return torch.where(mask, (x - x.mean()) / (x.std() + 1e-8), 0.0)


def whiten_population_std(x, mask):
    real = x[mask]
    return torch.where(mask, (x - real.mean()) / (real.std(unbiased=False) + 1e-8), 0.0)


def whiten_padding_kept(x, mask):
    real = x[mask]
    return (x - real.mean()) / (real.std() + 1e-8)


def groups_across_prompts(scores, G, scale):
    P = len(scores) // G
    g = scores.reshape(G, P)
    a = g - g.mean(0)
    if scale:
        a = a / (g.std(0) + 1e-4)
    return a.reshape(-1)


def groups_batch_mean(scores, G, scale):
    a = scores - scores.mean()
    return a / (scores.std() + 1e-4) if scale else a


def groups_scale_ignored(scores, G, scale):
    return group_advantages(scores, G, False)


def loss_padding_counted(per_token, mask, mode):
    return per_token.mean()


def loss_sequence_by_L(per_token, mask, mode):
    if mode == "sequence":
        return (torch.where(mask, per_token, 0.0).sum(1) / per_token.shape[1]).mean()
    return token_loss(per_token, mask, mode)


def loss_always_token(per_token, mask, mode):
    return token_loss(per_token, mask, "token")


def loss_detached(per_token, mask, mode):
    return token_loss(per_token.detach(), mask, mode)


@pytest.mark.parametrize(
    ("check", "fn", "message"),
    [
        (check_kl_penalized_rewards, kl_sign, "wrong sign"),
        (check_kl_penalized_rewards, kl_first_token, "not to the first token"),
        (check_kl_penalized_rewards, kl_last_column, "last COLUMN"),
        (check_kl_penalized_rewards, kl_padding_counted, "padding"),
        (check_masked_whiten, whiten_over_padding, "include the padding"),
        (check_masked_whiten, whiten_population_std, "Bessel"),
        (check_masked_whiten, whiten_padding_kept, "exactly 0"),
        (check_group_advantages, groups_across_prompts, "cut across prompts"),
        (check_group_advantages, groups_batch_mean, "OWN group"),
        (check_group_advantages, groups_scale_ignored, "scale=True"),
        (check_token_loss, loss_padding_counted, "padding was counted"),
        (check_token_loss, loss_sequence_by_L, "not by L"),
        (check_token_loss, loss_always_token, "that is the 'token' aggregation"),
        (check_token_loss, loss_detached, "no gradient"),
    ],
)
def test_typical_mistakes_are_named(check, fn, message):
    with pytest.raises(AssertionError, match=message):
        check(fn)
