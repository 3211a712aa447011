"""The exercise checks accept every correct way of writing a function and name each
typical mistake.

Each wrong implementation below is a mistake students make; the test asserts that the
check raises AssertionError AND that its message points at the mistake (a key phrase),
so a check that fails for the wrong reason, or with a useless message, fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppo_lessons import checks
from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.gae import compute_gae
from ppo_lessons.importance_sampling import probability_ratio, surrogate_objective
from ppo_lessons.policy_gradient import discounted_returns, policy_gradient_loss

# ---------------------------------------------------------------- discounted returns


def returns_loop(rewards, gamma):
    out = torch.zeros_like(rewards)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def returns_numpy(rewards, gamma):
    r = rewards.numpy()
    out = np.zeros_like(r)
    g = np.zeros_like(r[0])
    for t in reversed(range(len(r))):
        g = r[t] + gamma * g
        out[t] = g
    return torch.from_numpy(out)


def returns_matrix(rewards, gamma):
    T = rewards.shape[0]
    i = torch.arange(T)
    exponent = (i[None, :] - i[:, None]).to(rewards.dtype)
    weights = torch.where(exponent >= 0, gamma**exponent, torch.zeros_like(exponent))
    if gamma == 0:
        weights = torch.eye(T, dtype=rewards.dtype)
    return weights @ rewards


def returns_forward(rewards, gamma):
    out = torch.zeros_like(rewards)
    g = torch.zeros_like(rewards[0])
    for t in range(len(rewards)):
        g = g * gamma + rewards[t]
        out[t] = g
    return out


def returns_skip_current(rewards, gamma):
    return returns_loop(rewards, gamma) - rewards


def returns_discount_first(rewards, gamma):
    return gamma * returns_loop(rewards, gamma)


def returns_flatten(rewards, gamma):
    return returns_loop(rewards.reshape(-1), gamma).reshape(rewards.shape)


def returns_in_place(rewards, gamma):
    for t in reversed(range(len(rewards) - 1)):
        rewards[t] += gamma * rewards[t + 1]
    return rewards


def returns_episode_total(rewards, gamma):
    return returns_loop(rewards, gamma)[:1].expand_as(rewards).clone()


@pytest.mark.parametrize(
    "fn", [discounted_returns, returns_loop, returns_numpy, returns_matrix]
)
def test_returns_check_accepts_correct_versions(fn, capsys):
    assert checks.check_discounted_returns(fn).passed is True
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (returns_forward, "backwards"),
        (returns_skip_current, "include r_t"),
        (returns_discount_first, "first reward is not discounted"),
        (returns_flatten, "COLUMN is its own episode"),
        (returns_in_place, "in place"),
        (returns_episode_total, "return-to-go"),
    ],
)
def test_returns_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_discounted_returns(fn)


# ---------------------------------------------------------------- policy-gradient loss


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (lambda lp, w: (lp * w).mean(), "sign is wrong"),
        (lambda lp, w: -(lp * w).sum(), "not the sum"),
        (lambda lp, w: -(lp.exp() * w).mean(), "LOG-probabilities"),
        (lambda lp, w: torch.tensor(-(lp * w).mean().item()), "no gradient"),
        (lambda lp, w: -(lp * w).mean(dim=0), "single number"),
        (lambda lp, w: -(lp * w).mean().item(), "torch.Tensor"),
    ],
)
def test_policy_gradient_loss_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_policy_gradient_loss(fn)


def test_policy_gradient_loss_check_accepts_reference_and_variants():
    assert checks.check_policy_gradient_loss(policy_gradient_loss)
    assert checks.check_policy_gradient_loss(lambda lp, w: -torch.mean(w * lp))
    assert checks.check_policy_gradient_loss(
        lambda lp, w: -(lp * w.detach()).sum() / lp.numel()
    )


# ---------------------------------------------------------------- ratio and surrogate


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (lambda new, old: new / old, "LOG-probabilities"),
        (lambda new, old: torch.exp(old - new), "upside down"),
        (lambda new, old: new - old, "log-ratio"),
        (lambda new, old: torch.exp(new - old).detach(), "no gradient"),
        (
            lambda new, old: torch.from_numpy(
                np.exp(new.detach().numpy() - old.numpy())
            ),
            "no gradient",
        ),
    ],
)
def test_ratio_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_probability_ratio(fn)


def test_ratio_check_accepts_correct_versions():
    assert checks.check_probability_ratio(probability_ratio)
    assert checks.check_probability_ratio(lambda new, old: torch.exp(new - old))
    assert checks.check_probability_ratio(
        lambda new, old: torch.exp(-(old - new)).reshape(new.shape)
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda new, old: new.exp() / old.exp(),
        lambda new, old: torch.exp(new) * torch.exp(-old),
        lambda new, old: (new.double().exp() / old.double().exp()).float(),
    ],
)
def test_ratio_check_rejects_exponentiating_each_log_prob(fn):
    """Right in exact arithmetic, nan or inf once a log-probability leaves exp's range
    (a narrow Gaussian's +110, a long sequence's −800): the check says why."""
    with pytest.raises(AssertionError, match="Subtract first"):
        checks.check_probability_ratio(fn)


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (lambda n, o, a: -(torch.exp(n - o) * a).mean(), "sign is wrong"),
        (lambda n, o, a: (torch.exp(n - o) * a).sum(), "not the sum"),
        (lambda n, o, a: (n * a).mean(), "log-probabilities"),
        (lambda n, o, a: (torch.exp(o - n) * a).mean(), "upside down"),
        (lambda n, o, a: (torch.exp(n - o).detach() * a).mean(), "no gradient"),
        (lambda n, o, a: torch.exp(n - o).mean() * a.mean(), "element by element"),
    ],
)
def test_surrogate_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_surrogate_objective(fn)


def test_surrogate_check_accepts_correct_versions():
    assert checks.check_surrogate_objective(surrogate_objective)
    assert checks.check_surrogate_objective(
        lambda n, o, a: torch.mean(a * probability_ratio(n, o))
    )


def test_surrogate_check_rejects_exponentiating_each_log_prob():
    with pytest.raises(AssertionError, match="Subtract first"):
        checks.check_surrogate_objective(
            lambda n, o, a: torch.mean(a * (n.exp() / o.exp()))
        )


def test_surrogate_check_catches_a_gradient_only_bug():
    """A surrogate with the right value but a gradient flowing only at θ_old
    (ratio's gradient replaced by that of log π) must be caught by the gradient test."""

    def wrong_gradient(n, o, a):
        r = torch.exp(n - o)
        straight_through = r.detach() + (n - n.detach())
        return (straight_through * a).mean()

    with pytest.raises(AssertionError, match="r · A / n"):
        checks.check_surrogate_objective(wrong_gradient)


# ---------------------------------------------------------------- clipped surrogate


def clip_loop(new, old, adv, eps):
    total = 0.0
    flat_n, flat_o, flat_a = new.reshape(-1), old.reshape(-1), adv.reshape(-1)
    for i in range(flat_n.numel()):
        r = torch.exp(flat_n[i] - flat_o[i])
        total = total + torch.min(
            r * flat_a[i], torch.clamp(r, 1 - eps, 1 + eps) * flat_a[i]
        )
    return total / flat_n.numel()


def clip_where(new, old, adv, eps):
    """The form used by some codebases: pick the clipped side by the advantage's sign."""
    r = torch.exp(new - old)
    bound = torch.where(
        adv >= 0, torch.clamp(r, max=1 + eps), torch.clamp(r, min=1 - eps)
    )
    return (bound * adv).mean()


def clip_loss_form(new, old, adv, eps):
    """CleanRL's loss form: max of the negated terms, negated back."""
    r = (new - old).exp()
    loss = torch.max(-adv * r, -adv * torch.clamp(r, 1 - eps, 1 + eps)).mean()
    return -loss


def clip_g_form(new, old, adv, eps):
    """Spinning Up's form: min(r·A, g(ε, A)), g = (1 + ε)A if A ≥ 0 else (1 − ε)A."""
    r = torch.exp(new - old)
    return torch.minimum(r * adv, torch.where(adv >= 0, 1 + eps, 1 - eps) * adv).mean()


@pytest.mark.parametrize(
    "fn",
    [clipped_surrogate_objective, clip_loop, clip_where, clip_loss_form, clip_g_form],
)
def test_clipped_check_accepts_correct_versions(fn):
    assert checks.check_clipped_surrogate_objective(fn).passed is True


def _clip(r, eps):
    return torch.clamp(r, 1 - eps, 1 + eps)


@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (
            lambda n, o, a, e: torch.max(
                torch.exp(n - o) * a, _clip(torch.exp(n - o), e) * a
            ).mean(),
            "MAX",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, torch.exp(n - o) * torch.clamp(a, 1 - e, 1 + e)
            ).mean(),
            "clipped the ADVANTAGE",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, torch.exp(n - o) * torch.clamp(a, -e, e)
            ).mean(),
            "clipped the ADVANTAGE",
        ),
        (
            lambda n, o, a, e: (
                -torch.min(torch.exp(n - o) * a, _clip(torch.exp(n - o), e) * a).mean()
            ),
            "sign is wrong",
        ),
        (lambda n, o, a, e: (_clip(torch.exp(n - o), e) * a).mean(), "min is missing"),
        (lambda n, o, a, e: (torch.exp(n - o) * a).mean(), "nothing is clipped"),
        (
            lambda n, o, a, e: (
                torch.min(torch.exp(n - o), _clip(torch.exp(n - o), e)) * a
            ).mean(),
            "before multiplying",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, _clip(torch.exp(n - o), 0.2) * a
            ).mean(),
            "whatever clip_eps",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, _clip(torch.exp(n - o), e) * a
            ).sum(),
            "not the sum",
        ),
        (
            lambda n, o, a, e: (
                torch.min(torch.exp(n - o) * a, _clip(torch.exp(n - o), e) * a)
                .mean()
                .detach()
            ),
            "no gradient",
        ),
        (
            lambda n, o, a, e: torch.min(n / o * a, _clip(n / o, e) * a).mean(),
            "LOG-probabilities",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n) / torch.exp(o) * a,
                _clip(torch.exp(n) / torch.exp(o), e) * a,
            ).mean(),
            "underflows",
        ),
        (
            lambda n, o, a, e: torch.min(torch.exp(n - o) * a, (1 + e) * a).mean(),
            r"used \(1 \+ ε\)·A for every sample",
        ),
        (
            lambda n, o, a, e: torch.min(torch.exp(n - o) * a, (1 - e) * a).mean(),
            r"used \(1 − ε\)·A for every sample",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, torch.where(a >= 0, 1 - e, 1 + e) * a
            ).mean(),
            "swapped",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, torch.clamp(torch.exp(n - o) * a, 1 - e, 1 + e)
            ).mean(),
            "product",
        ),
        (
            lambda n, o, a, e: torch.min(
                torch.exp(n - o) * a, _clip(torch.exp(n - o), e) * a
            ).mean(dim=0),
            "single number",
        ),
    ],
)
def test_clipped_check_names_mistake(fn, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_clipped_surrogate_objective(fn)


def test_clipped_check_catches_a_one_sided_clip_by_region():
    """Clipping only the upper side is not in the mistake list: the region probe must
    still say where it goes wrong (A < 0, ratio below 1 − ε)."""

    def upper_only(n, o, a, e):
        r = torch.exp(n - o)
        return torch.min(r * a, torch.clamp(r, max=1 + e) * a).mean()

    with pytest.raises(AssertionError, match=r"A < 0 and r below 1 − ε"):
        checks.check_clipped_surrogate_objective(upper_only)


def test_clipped_check_catches_a_wrong_gradient_with_right_values():
    """Right values, but the clipped branch keeps its gradient (straight-through)."""

    def leaky(n, o, a, e):
        r = torch.exp(n - o)
        value = torch.min(r * a, _clip(r, e) * a)
        return (value.detach() + r * a - (r * a).detach()).mean()

    with pytest.raises(AssertionError, match="ZERO gradient"):
        checks.check_clipped_surrogate_objective(leaky)


# ---------------------------------------------------------------- GAE


def gae_loop_bool(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Element-wise loops, flags used as booleans (works with bool or 0/1 flags)."""
    adv = torch.zeros_like(rewards)
    flat = rewards.dim() == 1
    cols = 1 if flat else rewards.shape[1]
    for n in range(cols):
        running = 0.0
        for t in reversed(range(rewards.shape[0])):
            i = (t,) if flat else (t, n)
            bootstrap = 0.0 if bool(terminated[i]) else gamma * float(next_values[i])
            delta = float(rewards[i]) + bootstrap - float(values[i])
            if bool(terminated[i]) or bool(truncated[i]):
                running = 0.0
            running = delta + gamma * lam * running
            adv[i] = running
    return adv, adv + values


def gae_numpy(rewards, values, next_values, terminated, truncated, gamma, lam):
    r, v, nv = (x.numpy() for x in (rewards, values, next_values))
    term, trunc = terminated.numpy().astype(r.dtype), truncated.numpy().astype(r.dtype)
    delta = r + gamma * (1 - term) * nv - v
    adv = np.zeros_like(r)
    last = np.zeros_like(r[0])
    for t in reversed(range(len(r))):
        last = delta[t] + gamma * lam * (1 - np.maximum(term[t], trunc[t])) * last
        adv[t] = last
    return torch.from_numpy(adv), torch.from_numpy(adv + v)


def gae_bool_only(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Uses ~ and |, which only work on bool tensors."""
    done = terminated | truncated
    delta = rewards + gamma * next_values * (~terminated) - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        running = delta[t] + gamma * lam * (~done[t]) * running
        adv[t] = running
    return adv, adv + values


def _gae_with(
    *,
    bootstrap_done=False,
    trace_terminal_only=False,
    use_values_shift=False,
    forward=False,
    no_lam=False,
    returns_adv=False,
    flatten=False,
):
    def gae(rewards, values, next_values, terminated, truncated, gamma, lam):
        shape = rewards.shape
        if flatten:
            rewards, values, next_values, terminated, truncated = (
                x.reshape(-1)
                for x in (rewards, values, next_values, terminated, truncated)
            )
        term, trunc = terminated.float(), truncated.float()
        done = torch.clamp(term + trunc, max=1)
        nv = next_values
        if use_values_shift:
            nv = torch.cat([values[1:], next_values[-1:]])
        delta = rewards + gamma * (1 - (done if bootstrap_done else term)) * nv - values
        cut = term if trace_terminal_only else done
        coef = gamma if no_lam else gamma * lam
        adv = torch.zeros_like(rewards)
        running = torch.zeros_like(rewards[0])
        order = range(len(rewards)) if forward else reversed(range(len(rewards)))
        for t in order:
            running = delta[t] + coef * (1 - cut[t]) * running
            adv[t] = running
        ret = adv if returns_adv else adv + values
        return adv.reshape(shape), ret.reshape(shape)

    return gae


@pytest.mark.parametrize("fn", [compute_gae, gae_loop_bool, gae_numpy, gae_bool_only])
def test_gae_check_accepts_correct_versions(fn):
    assert checks.check_compute_gae(fn).passed is True


@pytest.mark.parametrize(
    ("bug", "phrase"),
    [
        (dict(bootstrap_done=True), "truncation the advantage must still bootstrap"),
        (dict(trace_terminal_only=True), "stop at a truncation too"),
        (dict(use_values_shift=True), r"next_values\[t\], not values\[t \+ 1\]"),
        (dict(forward=True), "BACKWARDS"),
        (dict(no_lam=True), "λ is missing"),
        (dict(returns_adv=True), "advantages \\+ values"),
        (dict(flatten=True), "each column is one environment"),
    ],
)
def test_gae_check_names_mistake(bug, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_compute_gae(_gae_with(**bug))


def test_gae_check_names_off_by_one_flags():
    def shifted(rewards, values, next_values, terminated, truncated, gamma, lam):
        term = torch.cat([torch.zeros_like(terminated[:1]), terminated[:-1]])
        trunc = torch.cat([torch.zeros_like(truncated[:1]), truncated[:-1]])
        return compute_gae(rewards, values, next_values, term, trunc, gamma, lam)

    with pytest.raises(AssertionError, match="off by one"):
        checks.check_compute_gae(shifted)


def test_gae_check_localizes_an_unlisted_bug():
    """A bug outside the mistake list (bootstrapping with γ² at terminations) still
    gets a message naming the step and its kind."""

    def odd(rewards, values, next_values, terminated, truncated, gamma, lam):
        adv, _ = compute_gae(
            rewards, values, next_values, terminated, truncated, gamma, lam
        )
        adv = adv + 0.5 * truncated.float()
        return adv, adv + values

    with pytest.raises(AssertionError, match="truncated step"):
        checks.check_compute_gae(odd)


def test_gae_check_reports_a_crash_in_students_code():
    def crashes(rewards, values, next_values, terminated, truncated, gamma, lam):
        return rewards[len(rewards)], None

    with pytest.raises(AssertionError, match="raised IndexError"):
        checks.check_compute_gae(crashes)


def test_gae_check_rejects_wrong_return_type():
    with pytest.raises(AssertionError, match="pair"):
        checks.check_compute_gae(lambda *args: compute_gae(*args)[0])


def test_gae_check_runs_hidden_cases():
    """An instructor's hidden case must be able to fail a function the public cases
    pass: here a function that is wrong only for long rollouts (T > 40)."""

    def wrong_when_long(*args):
        adv, ret = compute_gae(*args)
        if args[0].shape[0] > 40:
            adv = adv * 0
        return adv, ret

    assert checks.check_compute_gae(wrong_when_long)
    hidden = {
        "rewards": torch.ones(50),
        "values": torch.zeros(50),
        "next_values": torch.zeros(50),
        "terminated": torch.zeros(50),
        "truncated": torch.zeros(50),
        "gamma": 0.9,
        "lam": 0.9,
    }
    with pytest.raises(AssertionError, match="hidden case"):
        checks.check_compute_gae(wrong_when_long, extra_cases=[hidden])


# ---------------------------------------------------------------- all checks


ALL_CHECKS = [
    checks.check_discounted_returns,
    checks.check_policy_gradient_loss,
    checks.check_probability_ratio,
    checks.check_surrogate_objective,
    checks.check_clipped_surrogate_objective,
    checks.check_compute_gae,
]


@pytest.mark.parametrize("check", ALL_CHECKS)
def test_not_implemented_returns_false_without_raising(check, capsys):
    def stub(*args):
        raise NotImplementedError

    assert check(stub).passed is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("check", ALL_CHECKS)
def test_check_rejects_a_non_callable(check):
    with pytest.raises(TypeError, match="expects your function"):
        check("compute_gae")


@pytest.mark.parametrize("check", ALL_CHECKS)
def test_check_does_not_touch_the_global_rng(check):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    check(lambda *args: (_ for _ in ()).throw(NotImplementedError()))
    assert torch.equal(torch.rand(3), expected)
