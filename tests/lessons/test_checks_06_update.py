"""The checks of exercises 6.2 (`ppo_loss`) and 6.3 (`minibatch_indices`): every
typical mistake is caught and named; correct versions written differently pass."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from support.replay import replayed

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


def loss_loop(new, old, adv, values, old_values, returns, entropy, eps, v_eps, vf,
              ent, norm):  # fmt: skip
    """Written differently: one element at a time, in Python loops over the flat
    minibatch (mean and unbiased std by hand)."""
    new, old, adv = new.reshape(-1), old.reshape(-1), adv.reshape(-1)
    values, old_values = values.reshape(-1), old_values.reshape(-1)
    returns, entropy = returns.reshape(-1), entropy.reshape(-1)
    n = len(adv)
    a = [float(x) for x in adv]
    if norm:
        mean = sum(a) / n
        std = (sum((x - mean) ** 2 for x in a) / (n - 1)) ** 0.5
        a = [(x - mean) / (std + 1e-8) for x in a]
    total = new.sum() * 0.0
    for k in range(n):
        r = torch.exp(new[k] - old[k])
        low, high = 1 - eps, 1 + eps
        clipped = torch.clamp(r, low, high)
        total = total - torch.minimum(r * a[k], clipped * a[k]) / n
        err = (values[k] - returns[k]) ** 2
        if v_eps is not None:
            v = old_values[k] + torch.clamp(values[k] - old_values[k], -v_eps, v_eps)
            err = torch.maximum(err, (v - returns[k]) ** 2)
        total = total + vf * 0.5 * err / n - ent * entropy[k] / n
    return total


def loss_functional(new, old, adv, values, old_values, returns, entropy, eps, v_eps,
                    vf, ent, norm):  # fmt: skip
    """Written differently: torch.nn.functional and the lesson's own pieces."""
    from ppo_lessons.clipping import clipped_surrogate_objective

    if norm:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy = -clipped_surrogate_objective(new, old, adv, eps)
    if v_eps is None:
        value = 0.5 * torch.nn.functional.mse_loss(values, returns)
    else:
        v_clip = old_values + (values - old_values).clamp(-v_eps, v_eps)
        value = (
            0.5
            * torch.max(
                torch.nn.functional.mse_loss(values, returns, reduction="none"),
                torch.nn.functional.mse_loss(v_clip, returns, reduction="none"),
            ).mean()
        )
    return policy + vf * value - ent * entropy.mean()


@pytest.mark.parametrize("fn", [loss_loop, loss_functional], ids=["loop", "functional"])
def test_more_correct_losses_pass(fn):
    assert check_ppo_loss(fn).passed is True


def student(body):
    """A student's ppo_loss: `body` gets the arguments by name and returns the loss;
    the pieces it does not override are computed as they should be."""

    def fn(new, old, adv, values, old_values, returns, entropy, eps, v_eps, vf, ent,
           norm):  # fmt: skip
        p = dict(new=new, old=old, adv=adv, values=values, old_values=old_values,
                 returns=returns, entropy=entropy, eps=eps, v_eps=v_eps, vf=vf,
                 ent=ent, norm=norm)  # fmt: skip
        p["a"] = (adv - adv.mean()) / (adv.std() + 1e-8) if norm else adv
        p["r"] = torch.exp(new - old)
        p["L"] = lambda a=p["a"], r=p["r"]: torch.min(
            r * a, torch.clamp(r, 1 - eps, 1 + eps) * a
        ).mean()
        p["V"] = lambda e=v_eps, v=values: value_part(v, old_values, returns, e)
        p["H"] = entropy.mean()
        return body(p)

    return fn


def value_part(values, old_values, returns, v_eps, combine=torch.max):
    err = (values - returns) ** 2
    if v_eps is None:
        return 0.5 * err.mean()
    clipped = old_values + (values - old_values).clamp(-v_eps, v_eps)
    return 0.5 * combine(err, (clipped - returns) ** 2).mean()


def _max_instead_of_min(p):
    r, a, eps = p["r"], p["a"], p["eps"]
    objective = torch.max(r * a, torch.clamp(r, 1 - eps, 1 + eps) * a).mean()
    return -objective + p["vf"] * p["V"]() - p["ent"] * p["H"]


def _per_column(p):
    adv = p["adv"]
    if p["norm"]:
        adv = (adv - adv.mean(0)) / (adv.std(0) + 1e-8)
    return -p["L"](a=adv) + p["vf"] * p["V"]() - p["ent"] * p["H"]


def _in_place(p):
    adv = p["adv"]
    if p["norm"]:
        adv -= adv.mean()
        adv /= adv.std() + 1e-8
    return -p["L"](a=adv) + p["vf"] * p["V"]() - p["ent"] * p["H"]


def _log_ratio(p):
    r, a, eps = p["new"] - p["old"], p["a"], p["eps"]
    objective = torch.min(r * a, torch.clamp(r, 1 - eps, 1 + eps) * a).mean()
    return -objective + p["vf"] * p["V"]() - p["ent"] * p["H"]


def _clip_values_themselves(p):
    values, returns, v_eps = p["values"], p["returns"], p["v_eps"]
    value = 0.5 * ((values - returns) ** 2).mean()
    if v_eps is not None:
        clipped = torch.clamp(values, -v_eps, v_eps)
        value = (
            0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
        )
    return -p["L"]() + p["vf"] * value - p["ent"] * p["H"]


def _numpy_everything(p):
    loss = -p["L"]() + p["vf"] * p["V"]() - p["ent"] * p["H"]
    return torch.tensor(loss.detach().numpy())


MORE_LOSS_MISTAKES = {
    "coefficients swapped": (
        lambda p: -p["L"]() + p["ent"] * p["V"]() - p["vf"] * p["H"],
        "vf_coef and ent_coef are swapped",
    ),
    "vf_coef missing": (
        lambda p: -p["L"]() + p["V"]() - p["ent"] * p["H"],
        "value loss is not weighted",
    ),
    "value sign": (
        lambda p: -p["L"]() - p["vf"] * p["V"]() - p["ent"] * p["H"],
        "value term has the wrong sign",
    ),
    "entropy missing": (
        lambda p: -p["L"]() + p["vf"] * p["V"](),
        "entropy bonus is missing",
    ),
    "ent_coef missing": (
        lambda p: -p["L"]() + p["vf"] * p["V"]() - p["H"],
        "entropy is not weighted",
    ),
    "policy summed": (
        lambda p: -p["L"]() * p["new"].numel() + p["vf"] * p["V"]() - p["ent"] * p["H"],
        "in the policy term: use the mean",
    ),
    "max instead of min": (_max_instead_of_min, "MAX of the two terms"),
    "per column": (_per_column, "not per column"),
    "biased std": (
        lambda p: (
            -p["L"](
                a=(p["adv"] - p["adv"].mean()) / (p["adv"].std(unbiased=False) + 1e-8)
                if p["norm"]
                else p["adv"]
            )
            + p["vf"] * p["V"]()
            - p["ent"] * p["H"]
        ),
        "unbiased std",
    ),  # fmt: skip
    "value clip with clip_eps": (
        lambda p: -p["L"]() + p["vf"] * p["V"](e=p["eps"]) - p["ent"] * p["H"],
        "clip_eps",
    ),
    "value clip min": (
        lambda p: (
            -p["L"]()
            + p["vf"]
            * value_part(
                p["values"], p["old_values"], p["returns"], p["v_eps"], torch.min
            )
            - p["ent"] * p["H"]
        ),
        "in the value loss: take the MAX",
    ),  # fmt: skip
    "values clipped themselves": (_clip_values_themselves, "clip the CHANGE"),
    "log-ratio not exponentiated": (_log_ratio, "not the difference"),
    "clip fixed at 0.2": (
        lambda p: (
            -p["L"](a=p["a"]) * 0.0
            - torch.min(p["r"] * p["a"], p["r"].clamp(0.8, 1.2) * p["a"]).mean()
            + p["vf"] * p["V"]()
            - p["ent"] * p["H"]
        ),
        "whatever clip_eps",
    ),  # fmt: skip
    "policy detached": (
        lambda p: -p["L"](r=p["r"].detach()) + p["vf"] * p["V"]() - p["ent"] * p["H"],
        "no gradient with respect to new_log_probs",
    ),
    "entropy detached": (
        lambda p: -p["L"]() + p["vf"] * p["V"]() - p["ent"] * p["H"].detach(),
        "no gradient with respect to entropy",
    ),
    "advantages normalized in place": (_in_place, "in place"),
    "a Python float": (
        lambda p: (-p["L"]() + p["vf"] * p["V"]() - p["ent"] * p["H"]).item(),
        "must be a torch.Tensor",
    ),
    "all in NumPy": (_numpy_everything, "no gradient at all"),
    "two mistakes in the policy term": (
        lambda p: (
            -p["L"](a=p["adv"], r=torch.exp(p["old"] - p["new"]))
            + p["vf"] * p["V"]()
            - p["ent"] * p["H"]
        ),
        "not normalized although(.|\\n)*and the ratio is inverted",
    ),  # fmt: skip
    "two mistakes in the value term": (
        lambda p: (
            -p["L"]()
            + p["vf"] * ((p["values"] - p["returns"]) ** 2).sum()
            - p["ent"] * p["H"]
        ),
        "lacks its ½(.|\\n)*and in the value loss: use the mean over all elements, "
        "not the sum",
    ),
    "two mistakes": (
        lambda p: p["L"]() + p["vf"] * p["V"]() - p["ent"] * p["entropy"].sum(),
        "policy term has the wrong sign(.|\n)*and the entropy is summed",
    ),
}


@pytest.mark.parametrize("name", list(MORE_LOSS_MISTAKES))
def test_more_loss_mistakes_are_caught_and_named(name):
    body, words = MORE_LOSS_MISTAKES[name]
    with pytest.raises(AssertionError, match=words):
        check_ppo_loss(student(body))


def test_an_unrecognised_wrong_policy_term_is_located_by_its_gradient():
    # a made-up mistake (the ratio squared): no typical mistake, but the gradients
    # show that the policy term is the wrong one, and the others are right
    def body(p):
        return -p["L"](r=p["r"] ** 2) + p["vf"] * p["V"]() - p["ent"] * p["H"]

    with pytest.raises(AssertionError) as error:
        check_ppo_loss(student(body))
    message = str(error.value)
    assert message.startswith("the policy term is wrong")
    assert "gradient w.r.t. new_log_probs" in message
    assert "w.r.t. new_values" not in message and "w.r.t. entropy" not in message


def test_the_student_helper_is_right_without_a_mistake():
    # the helper above builds every wrong version: without a mistake it must pass
    assert check_ppo_loss(student(lambda p: -p["L"]() + p["vf"] * p["V"]()
                                  - p["ent"] * p["H"])).passed  # fmt: skip


# ---------------------------------------------------------------- 6.3


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


def indices_numpy(B, M, generator):
    """Written differently: NumPy's shuffle, seeded from a draw of the generator."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    order = np.random.default_rng(seed).permutation(B)
    return [torch.as_tensor(order[s : s + M]) for s in range(0, B, M)]


@pytest.mark.parametrize(
    "fn",
    [indices_numpy, lambda B, M, g: torch.randperm(B, generator=g).split(M)],
    ids=["numpy", "a tuple from split"],
)
def test_more_correct_minibatches_pass(fn):
    assert check_minibatch_indices(fn).passed is True


def _np_global(B, M, generator):
    order = np.random.permutation(B)  # noqa: NPY002 (the mistake under test)
    return [torch.as_tensor(order[s : s + M]) for s in range(0, B, M)]


def _python_random(B, M, generator):
    order = list(range(B))
    random.shuffle(order)
    return [torch.tensor(order[s : s + M]) for s in range(0, B, M)]


def _blocks_shuffled(B, M, generator):
    blocks = list(torch.arange(B).split(M))
    return [blocks[i] for i in torch.randperm(len(blocks), generator=generator)]


def _inside_shuffled(B, M, generator):
    blocks = torch.arange(B).split(M)
    return [b[torch.randperm(len(b), generator=generator)] for b in blocks]


def _copied_generator(B, M, generator):
    mine = torch.Generator().manual_seed(0)
    mine.set_state(generator.get_state())
    return list(torch.randperm(B, generator=mine).split(M))


MORE_MINIBATCH_MISTAKES = {
    "numpy global": (_np_global, "global random state"),
    "python random": (_python_random, "global random state"),
    "blocks shuffled": (_blocks_shuffled, "same samples together"),
    "shuffled inside blocks": (_inside_shuffled, "same samples together"),
    "reversed": (lambda B, M, g: list(torch.arange(B).flip(0).split(M)),
                 "not shuffled"),
    "one-based": (lambda B, M, g: list((torch.randperm(B, generator=g) + 1).split(M)),
                  "outside range"),
    "array_split": (
        lambda B, M, g: [torch.as_tensor(a) for a in np.array_split(
            torch.randperm(B, generator=g).numpy(), M)],
        "torch.chunk",
    ),
    "copied generator": (_copied_generator, "same order"),
    "new unseeded generator": (
        lambda B, M, g: list(torch.randperm(B, generator=torch.Generator()).split(M)),
        "same order",
    ),
    "one 2-D tensor": (
        lambda B, M, g: torch.randperm(B, generator=g)[: B // M * M].view(-1, M),
        "must return a list",
    ),
    "lists of ints": (
        lambda B, M, g: [p.tolist() for p in torch.randperm(B, generator=g).split(M)],
        "must be a torch tensor",
    ),
    "float indices": (
        lambda B, M, g: [p.float() for p in torch.randperm(B, generator=g).split(M)],
        "integer tensor",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MORE_MINIBATCH_MISTAKES))
def test_more_minibatch_mistakes_are_caught_and_named(name):
    fn, words = MORE_MINIBATCH_MISTAKES[name]
    with pytest.raises(AssertionError, match=words):
        check_minibatch_indices(fn)


def test_the_minibatch_check_puts_the_global_random_state_back():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert check_minibatch_indices(minibatch_indices).passed
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("check", "fn"),
    [
        (check_ppo_loss, ppo_loss),
        (check_ppo_loss, student(MORE_LOSS_MISTAKES["two mistakes"][0])),
        (check_ppo_loss, loss_with(detach_values=True)),
        (check_minibatch_indices, indices_numpy),
        (check_minibatch_indices, _np_global),
    ],
    ids=["loss", "loss-two-mistakes", "loss-detached", "indices", "indices-global"],
)
def test_the_grader_replays_the_same_verdict(check, fn):
    """The grader runs the check on the records of the student's calls (plain data,
    through torch.save and its validation), not on the function: same verdict, same
    message."""
    direct, again = replayed(check, fn)
    assert again == direct
