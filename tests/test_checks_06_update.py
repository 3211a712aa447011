"""The checks of exercises 6.4 (`ppo_loss`) and 6.5 (`minibatch_indices`): every
typical mistake is caught and named; correct versions written differently pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppo_lessons.checks import check_minibatch_indices, check_ppo_loss
from ppo_lessons.update import minibatch_indices, ppo_loss


def loss(
    new, old, adv, values, old_values, returns, entropy, eps, v_eps, vf, ent, norm, *,
    policy_sign=-1.0, entropy_sign=-1.0, vf_on="value", normalize=None,
    centre=True, eps_std=1e-8, half=0.5, value_clip=True, entropy_mean=True,
    inverted=False, clip=True, detach_values=False,
):  # fmt: skip
    """A PPO loss with one switchable typical mistake (defaults: correct)."""
    normalize = norm if normalize is None else normalize
    if normalize:
        adv = (adv - (adv.mean() if centre else 0.0)) / (adv.std() + eps_std)
    ratio = torch.exp(old - new) if inverted else torch.exp(new - old)
    clipped = torch.clamp(ratio, 1 - eps, 1 + eps) if clip else ratio
    surrogate = torch.min(ratio * adv, clipped * adv).mean()
    v = values.detach() if detach_values else values
    err = (v - returns) ** 2
    if v_eps is not None and value_clip:
        err = torch.max(
            err, (old_values + (v - old_values).clamp(-v_eps, v_eps) - returns) ** 2
        )
    v_loss = half * err.mean()
    h = entropy.mean() if entropy_mean else entropy.sum()
    if vf_on == "policy":
        return policy_sign * vf * surrogate + v_loss + entropy_sign * ent * h
    return policy_sign * surrogate + vf * v_loss + entropy_sign * ent * h


def loss_with(**mistake):
    return lambda *args: loss(*args, **mistake)


def loss_numpy(new, old, adv, values, old_values, returns, entropy, eps, v_eps, vf,
               ent, norm):  # fmt: skip
    """Written differently: the advantages in NumPy (they need no gradient), the
    clipped objective as a case split on the sign of A."""
    a = adv.detach().cpu().numpy().astype(np.float64)
    if norm:
        a = (a - a.mean()) / (a.std(ddof=1) + 1e-8)
    a = torch.as_tensor(a, dtype=new.dtype)
    r = torch.exp(new - old)
    bound = torch.where(
        a >= 0, torch.clamp(r, max=1 + eps), torch.clamp(r, min=1 - eps)
    )
    policy = -(bound * a).mean()
    d = values - returns
    if v_eps is None:
        value = 0.5 * (d * d).mean()
    else:
        dc = old_values + torch.clamp(values - old_values, -v_eps, v_eps) - returns
        value = 0.5 * torch.maximum(d * d, dc * dc).mean()
    return policy + vf * value - ent * entropy.mean()


@pytest.mark.parametrize("fn", [ppo_loss, loss_with(), loss_numpy],
                         ids=["reference", "switchable", "numpy"])  # fmt: skip
def test_correct_losses_pass(fn, capsys):
    assert check_ppo_loss(fn)
    assert "✔ ppo_loss" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake, words",
    [
        (dict(policy_sign=1.0), "policy term has the wrong sign"),
        (dict(entropy_sign=1.0), "entropy term has the wrong sign"),
        (dict(vf_on="policy"), "vf_coef multiplies the wrong term"),
        (dict(normalize=False), "not normalized although"),
        (dict(normalize=True), "normalized although normalize_advantages is False"),
        (dict(centre=False), "not centred"),
        (dict(eps_std=0.0), "std \\+ 1e-8"),
        (dict(half=1.0), "lacks its ½"),
        (dict(value_clip=False), "not clipped: use value_loss"),
        (dict(entropy_mean=False), "entropy is summed"),
        (dict(inverted=True), "ratio is inverted"),
        (dict(clip=False), "ratio is not clipped"),
        (dict(detach_values=True), "no gradient with respect to new_values"),
    ],
)
def test_loss_mistakes_are_caught_and_named(mistake, words):
    with pytest.raises(AssertionError, match=words):
        check_ppo_loss(loss_with(**mistake))


# ---------------------------------------------------------------- 6.5


def indices(B, M, generator, *, how="randperm"):
    """Minibatch indices with one switchable typical mistake (default: correct)."""
    if how == "randperm":
        return list(torch.randperm(B, generator=generator).split(M))
    if how == "sorted":
        return list(torch.arange(B).split(M))
    if how == "replacement":
        return list(torch.randint(0, B, (B,), generator=generator).split(M))
    if how == "drop_last":
        pieces = list(torch.randperm(B, generator=generator).split(M))
        return pieces if B % M == 0 else pieces[:-1]
    if how == "global":
        return list(torch.randperm(B).split(M))
    if how == "fixed_seed":
        return list(
            torch.randperm(B, generator=torch.Generator().manual_seed(0)).split(M)
        )
    if how == "chunk":
        return list(torch.chunk(torch.randperm(B, generator=generator), M))
    raise ValueError(how)


def indices_loop(B, M, generator):
    """Written differently: a Fisher-Yates shuffle with draws from the generator."""
    order = list(range(B))
    for i in range(B - 1, 0, -1):
        j = int(torch.randint(0, i + 1, (1,), generator=generator))
        order[i], order[j] = order[j], order[i]
    return [torch.tensor(order[s : s + M]) for s in range(0, B, M)]


def indices_argsort(B, M, generator):
    """Written differently: the order of uniform keys."""
    keys = torch.rand(B, generator=generator)
    order = keys.argsort()
    return [order[s : s + M] for s in range(0, B, M)]


@pytest.mark.parametrize("fn", [minibatch_indices, indices, indices_loop, indices_argsort],
                         ids=["reference", "randperm", "loop", "argsort"])  # fmt: skip
def test_correct_minibatches_pass(fn, capsys):
    assert check_minibatch_indices(fn)
    assert "✔ minibatch_indices" in capsys.readouterr().out


@pytest.mark.parametrize(
    "how, words",
    [
        ("sorted", "not shuffled"),
        ("replacement", "with replacement"),
        ("drop_last", "last, shorter minibatch is missing"),
        ("global", "global"),
        ("fixed_seed", "fixed seed"),
        ("chunk", "torch.chunk"),
    ],
)
def test_minibatch_mistakes_are_caught_and_named(how, words):
    with pytest.raises(AssertionError, match=words):
        check_minibatch_indices(lambda *args: indices(*args, how=how))
