"""The math core of lessons 01-04 against independent float64 brute-force references,
hypothesis properties, and input validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_lessons.clipping import clipped_surrogate_objective
from ppo_lessons.gae import compute_gae
from ppo_lessons.importance_sampling import probability_ratio, surrogate_objective
from ppo_lessons.policy_gradient import discounted_returns, policy_gradient_loss

# ------------------------------------------------------------ brute-force references
# Written as literally as possible from the definitions, in float64 Python loops.


def brute_returns(rewards: list[float], gamma: float) -> list[float]:
    T = len(rewards)
    return [sum(gamma**k * rewards[t + k] for k in range(T - t)) for t in range(T)]


def brute_gae(r, v, nv, term, trunc, gamma, lam) -> tuple[list[float], list[float]]:
    """A_t = Σ_l (γλ)^l δ_{t+l}, the sum stopping after the step that ends the episode."""
    T = len(r)
    deltas = [r[t] + gamma * (1 - term[t]) * nv[t] - v[t] for t in range(T)]
    adv = []
    for t in range(T):
        total, weight = 0.0, 1.0
        for k in range(t, T):
            total += weight * deltas[k]
            if term[k] or trunc[k]:
                break
            weight *= gamma * lam
        adv.append(total)
    return adv, [a + b for a, b in zip(adv, v, strict=True)]


def random_rollout(T, N, seed, dtype=torch.float32, p_end=0.2):
    g = torch.Generator().manual_seed(seed)
    shape = (T,) if N is None else (T, N)
    r, v, nv = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(3))
    ends = torch.rand(shape, generator=g) < p_end
    kind = torch.rand(shape, generator=g) < 0.5
    return r, v, nv, ends & kind, ends & ~kind


def columns(x: torch.Tensor):
    return [x] if x.dim() == 1 else [x[:, n] for n in range(x.shape[1])]


@pytest.mark.parametrize("N", [None, 1, 4])
@pytest.mark.parametrize(
    "gamma,lam", [(0.99, 0.95), (0.5, 0.3), (1.0, 1.0), (0.9, 0.0)]
)
def test_gae_matches_brute_force(N, gamma, lam):
    r, v, nv, term, trunc = random_rollout(17, N, seed=3, dtype=torch.float64)
    adv, ret = compute_gae(r, v, nv, term, trunc, gamma, lam)
    for n, (rc, vc, nc, tc, uc) in enumerate(
        zip(*(columns(x) for x in (r, v, nv, term, trunc)), strict=True)
    ):
        exp_adv, exp_ret = brute_gae(
            rc.tolist(), vc.tolist(), nc.tolist(), tc.tolist(), uc.tolist(), gamma, lam
        )
        got_adv = columns(adv)[n]
        assert torch.allclose(got_adv, torch.tensor(exp_adv, dtype=torch.float64))
        assert torch.allclose(
            columns(ret)[n], torch.tensor(exp_ret, dtype=torch.float64)
        )


def test_gae_accepts_float_flags_like_bool_flags():
    r, v, nv, term, trunc = random_rollout(12, 3, seed=5)
    a_bool = compute_gae(r, v, nv, term, trunc, 0.9, 0.8)
    a_float = compute_gae(r, v, nv, term.float(), trunc.float(), 0.9, 0.8)
    assert torch.equal(a_bool[0], a_float[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lesson_functions_keep_dtype(dtype):
    r, v, nv, term, trunc = random_rollout(5, 2, seed=1, dtype=dtype)
    adv, ret = compute_gae(r, v, nv, term, trunc, 0.9, 0.9)
    assert adv.dtype == ret.dtype == dtype
    assert discounted_returns(r, 0.9).dtype == dtype
    assert clipped_surrogate_objective(r, v, nv, 0.2).dtype == dtype
    assert surrogate_objective(r, v, nv).dtype == dtype
    assert policy_gradient_loss(r, v).dtype == dtype


@pytest.mark.parametrize("N", [None, 3])
def test_discounted_returns_matches_brute_force(N):
    r, *_ = random_rollout(11, N, seed=7, dtype=torch.float64)
    got = discounted_returns(r, 0.93)
    for n, column in enumerate(columns(r)):
        expected = torch.tensor(
            brute_returns(column.tolist(), 0.93), dtype=torch.float64
        )
        assert torch.allclose(columns(got)[n], expected)


def test_policy_gradient_loss_gradient_is_minus_weights_over_n():
    lp = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, dtype=torch.float64)
    policy_gradient_loss(lp, w).backward()
    assert torch.allclose(lp.grad, -w / 12)


def test_probability_ratio_is_exact_for_tiny_probabilities():
    """Log-probabilities of -200 underflow exp() in float32; the ratio must not."""
    new = torch.tensor([-200.0, -150.0])
    old = torch.tensor([-201.0, -150.0])
    assert torch.allclose(probability_ratio(new, old), torch.tensor([math.e, 1.0]))


def brute_clipped(new, old, adv, eps):
    terms = []
    for n, o, a in zip(new, old, adv, strict=True):
        r = math.exp(n - o)
        terms.append(min(r * a, min(max(r, 1 - eps), 1 + eps) * a))
    return sum(terms) / len(terms)


def test_clipped_objective_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    new, old, adv = (
        torch.randn(40, generator=g, dtype=torch.float64) for _ in range(3)
    )
    for eps in (0.1, 0.2, 0.35):
        expected = brute_clipped(new.tolist(), old.tolist(), adv.tolist(), eps)
        got = clipped_surrogate_objective(new, old, adv, eps)
        assert math.isclose(got.item(), expected, rel_tol=1e-12)


# ------------------------------------------------------------ hypothesis properties

floats = st.floats(-5, 5, allow_nan=False, width=32)


@st.composite
def rollouts(draw):
    T = draw(st.integers(1, 12))
    N = draw(st.sampled_from([None, 1, 3]))
    seed = draw(st.integers(0, 10_000))
    return random_rollout(
        T, N, seed, dtype=torch.float64, p_end=draw(st.sampled_from([0.0, 0.3]))
    )


@settings(max_examples=60, deadline=None)
@given(rollouts(), st.floats(0, 1))
def test_gae_lambda_one_on_terminated_episode_is_return_minus_value(rollout, gamma):
    r, v, nv, _, _ = rollout
    nv = torch.cat([v[1:], nv[-1:]])  # within one episode, V(s_{t+1}) is values[t + 1]
    term = torch.zeros_like(r, dtype=torch.bool)
    term[-1] = True  # one episode per column, ending in a terminal state
    trunc = torch.zeros_like(term)
    adv, _ = compute_gae(r, v, nv, term, trunc, gamma, 1.0)
    expected = discounted_returns(r, gamma) - v
    assert torch.allclose(adv, expected, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rollouts(), st.floats(0, 1))
def test_gae_lambda_zero_is_td_error(rollout, gamma):
    r, v, nv, term, trunc = rollout
    adv, ret = compute_gae(r, v, nv, term, trunc, gamma, 0.0)
    delta = r + gamma * (~term).to(r.dtype) * nv - v  # (~term) alone is float32
    assert torch.allclose(adv, delta, atol=1e-12)
    assert torch.allclose(ret, adv + v)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(floats, floats, floats), min_size=1, max_size=20),
    st.floats(0.01, 0.9),
)
def test_clipped_never_above_unclipped(triples, eps):
    new, old, adv = (
        torch.tensor(x, dtype=torch.float64) for x in zip(*triples, strict=True)
    )
    clipped = clipped_surrogate_objective(new, old, adv, eps)
    unclipped = surrogate_objective(new, old, adv)
    assert clipped.item() <= unclipped.item() + 1e-9


@settings(max_examples=80, deadline=None)
@given(
    st.floats(-3, 3),
    st.floats(-4, 4).filter(lambda a: abs(a) > 1e-3),
    st.floats(0.05, 0.5),
)
def test_clipped_gradient_is_zero_exactly_where_ratio_left_range_in_advantages_favour(
    log_ratio, advantage, eps
):
    ratio = math.exp(log_ratio)
    if abs(ratio - (1 + eps)) < 1e-6 or abs(ratio - (1 - eps)) < 1e-6:
        return  # the kink itself: the gradient is one-sided there
    new = torch.tensor([log_ratio], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, dtype=torch.float64)
    adv = torch.tensor([advantage], dtype=torch.float64)
    clipped_surrogate_objective(new, old, adv, eps).backward()
    left_in_favour = (advantage > 0 and ratio > 1 + eps) or (
        advantage < 0 and ratio < 1 - eps
    )
    if left_in_favour:
        assert new.grad.item() == 0.0
    else:
        assert math.isclose(new.grad.item(), ratio * advantage, rel_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10_000))
def test_surrogate_gradient_equals_policy_gradient_at_theta_old(n, seed):
    """∇θ L^IS(θ)|θ=θold = ∇θ mean(log π_θ · A): here for a softmax policy's logits."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    actions = torch.randint(0, 5, (n,), generator=g)
    adv = torch.randn(n, dtype=torch.float64, generator=g)
    log_probs = torch.log_softmax(logits, 0)[actions]
    (grad_is,) = torch.autograd.grad(
        surrogate_objective(log_probs, log_probs.detach(), adv),
        logits,
        retain_graph=True,
    )
    (grad_pg,) = torch.autograd.grad(-policy_gradient_loss(log_probs, adv), logits)
    assert torch.allclose(grad_is, grad_pg, atol=1e-12)


# ------------------------------------------------------------ input validation

R = torch.zeros(4)
F = torch.zeros(4, dtype=torch.bool)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (
            lambda: compute_gae(R, R, R, F, F, 1.5, 0.9),
            ValueError,
            r"gamma must be in \[0, 1\], got 1.5",
        ),
        (
            lambda: compute_gae(R, R, R, F, F, 0.9, -0.1),
            ValueError,
            r"lam must be in \[0, 1\], got -0.1",
        ),
        (lambda: compute_gae(R, R, R, F, F, float("nan"), 0.9), ValueError, "gamma"),
        (
            lambda: compute_gae(R, torch.zeros(5), R, F, F, 0.9, 0.9),
            ValueError,
            r"values has shape \[5\]",
        ),
        (
            lambda: compute_gae(R, R, R, torch.zeros(3), F, 0.9, 0.9),
            ValueError,
            "terminated has shape",
        ),
        (
            lambda: compute_gae(R, R, R, F, torch.full((4,), 2.0), 0.9, 0.9),
            ValueError,
            "truncated must hold only 0/1",
        ),
        (
            lambda: compute_gae(R.tolist(), R, R, F, F, 0.9, 0.9),
            TypeError,
            "rewards must be a torch.Tensor, got list",
        ),
        (
            lambda: compute_gae(
                torch.zeros(2, 2, 2), *[torch.zeros(2, 2, 2)] * 4, 0.9, 0.9
            ),
            ValueError,
            r"shape \[T\] or \[T, N\]",
        ),
        (
            lambda: compute_gae(R, R, R, F, F, "0.9", 0.9),
            TypeError,
            "gamma must be a number",
        ),
        (
            lambda: discounted_returns(torch.arange(4), 0.9),
            TypeError,
            "rewards must be a floating-point",
        ),
        (lambda: discounted_returns(R, 2.0), ValueError, "gamma"),
        (
            lambda: policy_gradient_loss(R, torch.zeros(3)),
            ValueError,
            "weights has shape",
        ),
        (
            lambda: probability_ratio(R, None),
            TypeError,
            "old_log_probs must be a torch.Tensor",
        ),
        (
            lambda: surrogate_objective(R, R, torch.zeros(2, 2)),
            ValueError,
            "advantages has shape",
        ),
        (
            lambda: clipped_surrogate_objective(R, R, R, 0.0),
            ValueError,
            r"clip_eps must be a finite number > 0, got 0.0",
        ),
        (lambda: clipped_surrogate_objective(R, R, R, -0.2), ValueError, "clip_eps"),
        (lambda: clipped_surrogate_objective(R, R, R, None), TypeError, "clip_eps"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
