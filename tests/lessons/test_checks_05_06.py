"""Checks of lessons 05-06 accept correct implementations and name typical mistakes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Normal

from ppo_lessons import checks

LOG_2PI = math.log(2 * math.pi)

# ---------------------------------------------------------------- gaussian_log_prob


def gauss_distributions(actions, mean, log_std):
    return Normal(mean, log_std.exp()).log_prob(actions).sum(-1)


def gauss_loop(actions, mean, log_std):
    log_std = log_std.expand_as(mean)
    total = torch.zeros(mean.shape[:-1], dtype=mean.dtype)
    for a in range(mean.shape[-1]):
        z = (actions[..., a] - mean[..., a]) / torch.exp(log_std[..., a])
        total = total - 0.5 * z**2 - log_std[..., a] - 0.5 * LOG_2PI
    return total


@pytest.mark.parametrize("fn", [gauss_distributions, gauss_loop])
def test_gaussian_check_accepts_correct_versions(fn):
    assert checks.check_gaussian_log_prob(fn).passed is True


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (lambda a, m, s: Normal(m, s.exp()).log_prob(a), "shape"),
        (
            lambda a, m, s: Normal(m, s.exp()).log_prob(a).mean(-1),
            "sum the per-dimension",
        ),
        (lambda a, m, s: (-0.5 * ((a - m) / s.exp()) ** 2 - s).sum(-1), "log\\(2π\\)"),
        (
            lambda a, m, s: (
                -0.5 * ((a - m) / s.exp()) ** 2 - 2 * s - 0.5 * LOG_2PI
            ).sum(-1),
            "2·log σ",
        ),
        (
            lambda a, m, s: (
                -0.5 * ((a - m) / s.exp() ** 2) ** 2 - s - 0.5 * LOG_2PI
            ).sum(-1),
            "σ²",
        ),
        (
            lambda a, m, s: (0.5 * ((a - m) / s.exp()) ** 2 - s - 0.5 * LOG_2PI).sum(
                -1
            ),
            "sign",
        ),
        (lambda a, m, s: Normal(m.detach(), s.exp()).log_prob(a).sum(-1), "gradient"),
    ],
)
def test_gaussian_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_gaussian_log_prob(fn)


# ---------------------------------------------------------------- categorical_entropy


def entropy_log_softmax(logits):
    log_p = torch.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1)


@pytest.mark.parametrize(
    "fn", [entropy_log_softmax, lambda logits: Categorical(logits=logits).entropy()]
)
def test_entropy_check_accepts_correct_versions(fn):
    assert checks.check_categorical_entropy(fn).passed is True


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (
            lambda x: -(torch.softmax(x, -1) * torch.log(torch.softmax(x, -1))).sum(-1),
            "inf or NaN",
        ),
        (lambda x: (torch.softmax(x, -1) * torch.log_softmax(x, -1)).sum(-1), "sign"),
        (lambda x: -(torch.softmax(x, -1) * x).sum(-1), "normalize first"),
        (
            lambda x: -(torch.softmax(x, -1) * torch.log_softmax(x, -1)).mean(-1),
            "don't average",
        ),
        (lambda x: entropy_log_softmax(x).detach(), "gradient"),
    ],
)
def test_entropy_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_categorical_entropy(fn)


# ---------------------------------------------------------------- value_loss


def value_loss_explicit(values, old_values, returns, clip_eps):
    unclipped = (values - returns) ** 2
    if clip_eps is None:
        return 0.5 * unclipped.mean()
    clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    return 0.5 * torch.max(unclipped, (clipped - returns) ** 2).mean()


def test_value_loss_check_accepts_correct_version():
    assert checks.check_value_loss(value_loss_explicit).passed is True


def _vl(**bug):
    def fn(values, old_values, returns, clip_eps):
        unclipped = (values - returns) ** 2
        if clip_eps is None or bug.get("ignore_clip"):
            return (0.5 if not bug.get("no_half") else 1.0) * unclipped.mean()
        clipped = (
            old_values + (values - old_values).clamp(-clip_eps, clip_eps) - returns
        ) ** 2
        pick = torch.min if bug.get("use_min") else torch.max
        return 0.5 * pick(unclipped, clipped).mean()

    return fn


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (_vl(no_half=True), "½ is missing"),
        (_vl(use_min=True), "MAX"),
        (_vl(ignore_clip=True), "clip_eps was given"),
        (lambda v, o, r, e: 0.5 * ((v - r) ** 2).sum(), "not the sum"),
    ],
)
def test_value_loss_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_value_loss(fn)


def test_value_loss_check_requires_handling_none():
    def crashes_on_none(values, old_values, returns, clip_eps):
        clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        return 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()

    with pytest.raises(AssertionError, match="raised TypeError"):
        checks.check_value_loss(crashes_on_none)


# ---------------------------------------------------------------- approx_kl


def kl_explicit(new, old, estimator):
    if estimator == "k1":
        return (old - new).mean()
    log_r = new - old
    return (log_r.exp() - 1 - log_r).mean()


def test_kl_check_accepts_correct_version():
    assert checks.check_approx_kl(kl_explicit).passed is True


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (
            lambda n, o, e: (n - o).mean() if e == "k1" else kl_explicit(n, o, e),
            "sign is wrong",
        ),
        (
            lambda n, o, e: (
                kl_explicit(n, o, e) if e == "k1" else ((n - o).exp() - (n - o)).mean()
            ),
            "−1 is missing",
        ),
        (
            lambda n, o, e: (
                kl_explicit(n, o, e)
                if e == "k1"
                else ((o - n).exp() - 1 - (o - n)).mean()
            ),
            "upside down",
        ),
        (lambda n, o, e: kl_explicit(n, o, "k1"), "asked for k3"),
    ],
)
def test_kl_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_approx_kl(fn)


# ---------------------------------------------------------------- explained_variance


def ev_explicit(values, returns):
    var = returns.var()
    if var == 0:
        return torch.tensor(float("nan"))
    return 1 - (returns - values).var() / var


def test_ev_check_accepts_correct_versions():
    assert checks.check_explained_variance(ev_explicit).passed is True

    def biased(values, returns):
        var = torch.var(returns, unbiased=False)
        ratio = torch.var(returns - values, unbiased=False) / var
        return torch.where(var == 0, torch.full_like(var, float("nan")), 1 - ratio)

    assert checks.check_explained_variance(biased)


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (lambda v, r: (r - v).var() / r.var(), "1 minus it"),
        (lambda v, r: 1 - (r - v).var() / v.var(), "swap"),
        (lambda v, r: 1 - (r - v).var() / r.var().clamp(min=1e-8), "return nan"),
    ],
)
def test_ev_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_explained_variance(fn)


NEW_CHECKS = [
    checks.check_gaussian_log_prob,
    checks.check_categorical_entropy,
    checks.check_actor_critic_networks,
    checks.check_value_loss,
    checks.check_approx_kl,
    checks.check_explained_variance,
]


@pytest.mark.parametrize("check", NEW_CHECKS)
def test_new_checks_report_not_implemented(check, capsys):
    def stub(*args):
        raise NotImplementedError

    assert check(stub).passed is False
    assert "not implemented yet" in capsys.readouterr().out
