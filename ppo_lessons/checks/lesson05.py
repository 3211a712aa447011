"""Checks of lesson 05: the Gaussian log-probability (5.1), the categorical
entropy (5.2), the actor and the critic (5.3)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ppo_lessons.checks.harness import (
    call,
    close,
    compare_with_grads,
    diagnose,
    exercise,
    generator,
)
from ppo_lessons.networks import categorical_entropy, gaussian_log_prob

__all__ = [
    "check_actor_critic_networks",
    "check_categorical_entropy",
    "check_gaussian_log_prob",
]

# ---------------------------------------------------------------------------
# Lesson 05: log-probabilities and entropy of the policy distributions


def _gaussian_mistakes(args: tuple) -> list:
    actions, mean, log_std = args
    std = log_std.exp()
    z2 = ((actions - mean) / std) ** 2
    c = 0.5 * math.log(2 * math.pi)
    per_dim = -0.5 * z2 - log_std - c
    return [
        (
            "the log(2π) term is missing: each action dimension contributes −½·log(2π).",
            (-0.5 * z2 - log_std).sum(-1),
        ),
        (
            "sum the per-dimension log-densities over the action axis (a diagonal Gaussian's dimensions are independent, so log-probabilities add); yours averages them.",
            per_dim.mean(-1),
        ),
        (
            "the normalizer is log σ per dimension, not 2·log σ: log N = −½((a−μ)/σ)² − log σ − ½ log(2π).",
            (-0.5 * z2 - 2 * log_std - c).sum(-1),
        ),
        (
            "log_std is the LOG of the standard deviation: σ = exp(log_std). Yours uses log_std as σ.",
            (
                -0.5 * ((actions - mean) / log_std) ** 2 - torch.log(log_std.abs()) - c
            ).sum(-1),
        ),
        (
            "divide by σ, not σ²: the squared term is ((a − μ)/σ)².",
            (-0.5 * ((actions - mean) / std**2) ** 2 - log_std - c).sum(-1),
        ),
        (
            "the sign of the squared term is wrong: the density FALLS away from the mean, −½((a−μ)/σ)².",
            (0.5 * z2 - log_std - c).sum(-1),
        ),
        (
            "the factor ½ on the squared term is missing: −½((a−μ)/σ)².",
            (-z2 - log_std - c).sum(-1),
        ),
        (
            "that is the density, not its log: return the log-probability.",
            per_dim.sum(-1).exp(),
        ),
    ]


@exercise("gaussian_log_prob")
def check_gaussian_log_prob(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `gaussian_log_prob(actions, mean, log_std)` (Exercise 5.1)."""
    reference = gaussian_log_prob
    gen = generator(501)
    cases = []
    for batch, A, per_sample in [
        ((6,), 2, False),
        ((4, 3), 3, False),
        ((5,), 1, True),
        ((2, 3), 4, True),
        ((), 3, False),
    ]:
        mean = torch.randn(*batch, A, generator=gen)
        log_std = (
            torch.randn(*((*batch, A) if per_sample else (A,)), generator=gen) * 0.5
        )
        actions = mean + torch.randn(*batch, A, generator=gen) * log_std.exp() * 1.5
        cases.append((actions, mean, log_std))
    cases += [(c["actions"], c["mean"], c["log_std"]) for c in extra_cases]
    rule = (
        "log N(a; μ, σ) = Σ_a [−½((a − μ)/σ)² − log σ − ½ log(2π)], σ = exp(log_std)."
    )
    for actions, mean, log_std in cases:
        where = (
            f"evaluating actions of shape {list(actions.shape)} with log_std of shape "
            f"{list(log_std.shape)}"
        )
        compare_with_grads(
            fn, (actions, mean, log_std), {1: "mean", 2: "log_std"}, reference,
            _gaussian_mistakes, "the log-probability", actions.shape[:-1], where, rule,
        )  # fmt: skip
    return len(cases)


def _entropy_mistakes(args: tuple) -> list:
    (logits,) = args
    log_p = torch.log_softmax(logits, -1)
    p = log_p.exp()
    return [
        ("the sign is wrong: H = −Σ p log p is never negative.", (p * log_p).sum(-1)),
        (
            "normalize first: p = softmax(logits) and log p = log_softmax(logits); raw logits are not log-probabilities.",
            -(torch.softmax(logits, -1) * logits).sum(-1),
        ),
        (
            "sum over the actions, don't average: H = −Σ_a p_a log p_a.",
            -(p * log_p).mean(-1),
        ),
        (
            "the entropy is over the LAST axis (the actions), one value per state.",
            -(p * log_p).sum(0),
        ),
    ]


@exercise("categorical_entropy")
def check_categorical_entropy(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `categorical_entropy(logits)` (Exercise 5.2)."""
    reference = categorical_entropy
    gen = generator(502)
    cases = [
        torch.randn(7, 4, generator=gen) * 2,
        torch.randn(3, 5, 2, generator=gen)
        + 3.0,  # shifted: logits need not be normalized
        torch.randn(6, generator=gen),
        torch.zeros(2, 8),  # uniform: log 8
        torch.tensor([[1e4, 0.0, -1e4], [3.0, 3.0, -1e4]]),  # finite at huge logits
    ]
    cases += [c["logits"] for c in extra_cases]
    rule = "H = −Σ_a p_a log p_a with p = softmax(logits), log p = log_softmax(logits)."
    for logits in cases:
        where = f"computing the entropy of logits of shape {list(logits.shape)}"
        if logits.abs().max() >= 1e3:
            where += (
                " (huge logits: some p_a are exactly 0, and 0·log 0 must count as 0; "
                "log(softmax) gives −inf there, log_softmax stays finite)"
            )
        compare_with_grads(
            fn, (logits,), {0: "logits"}, reference, _entropy_mistakes,
            "the entropy", logits.shape[:-1], where, rule,
        )  # fmt: skip
    return len(cases)


# ---------------------------------------------------------------------------
# Lesson 05: the actor and the critic (5.3)

SQRT2 = math.sqrt(2.0)
NET_CASES = [  # (obs_dim, action_dim, hidden_sizes, activation)
    (4, 2, (64, 64), "tanh"),  # CartPole's shapes
    (3, 1, (32,), "relu"),  # one hidden layer, one action dimension
    (11, 3, (16, 24, 8), "tanh"),  # three hidden layers of different widths
    (5, 4, (20, 20), "relu"),
]
ACTIVATION_FNS = {"tanh": torch.tanh, "relu": torch.relu}


def _build(fn: Callable, args: tuple, seed: int, where: str) -> tuple:
    """fn(*args) under torch.manual_seed(seed), required to be (actor, critic)."""
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is kept
        torch.manual_seed(seed)
        result, _ = call(fn, args, where)
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise AssertionError(
            f"return two networks, (actor, critic); got {type(result).__name__} while "
            f"{where}."
        )
    for name, net in zip(("actor", "critic"), result, strict=True):
        if not isinstance(net, nn.Module):
            raise AssertionError(
                f"your {name} is a {type(net).__name__}, not a torch.nn.Module: build it "
                "from nn.Linear layers (e.g. in an nn.Sequential) so that its parameters "
                f"are registered, trained and moved with .to(device); while {where}."
            )
    return tuple(result)


def _check_layers(name: str, net: nn.Module, sizes: list[int], where: str) -> list:
    """The network's nn.Linear layers, required to chain `sizes` and hold every
    parameter."""
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    got = [(lin.in_features, lin.out_features) for lin in layers]
    want = list(zip(sizes[:-1], sizes[1:], strict=True))
    if got != want:
        what = " → ".join(str(n) for n in sizes)
        hint = ""
        if len(got) == len(want) and got[:-1] == want[:-1]:
            hint = (
                " The critic outputs ONE value per observation: its last layer is "
                "nn.Linear(hidden, 1)."
                if name == "critic"
                else " The actor outputs action_dim numbers (logits or means)."
            )
        elif len(got) != len(want):
            hint = " One hidden layer per entry of hidden_sizes, then the output layer."
        raise AssertionError(
            f"your {name} should be nn.Linear layers of sizes {what} (in the order "
            f"they are applied); yours are {got or 'none'}.{hint} While {where}."
        )
    linear = {id(p) for lin in layers for p in lin.parameters()}
    for pname, p in net.named_parameters():
        if id(p) not in linear:
            raise AssertionError(
                f"your {name} has a parameter {pname} of shape {list(p.shape)} outside "
                "its nn.Linear layers; build it from nn.Linear layers only (the "
                f"Gaussian's log σ belongs to ActorCritic, not to the actor); while {where}."
            )
    for i, lin in enumerate(layers):
        if lin.bias is None:
            raise AssertionError(
                f"layer {i} of your {name} has no bias: keep nn.Linear's bias (it "
                f"starts at 0); while {where}."
            )
    return layers


def _layer_role(name: str, i: int, count: int) -> tuple[str, float, str]:
    """(the layer's name, its gain, the gain's name) for the message."""
    if i < count - 1:
        return f"hidden layer {i} of your {name}", SQRT2, "√2 ≈ 1.414"
    if name == "actor":
        return "the policy head (the actor's last layer)", 0.01, "0.01"
    return "the value head (the critic's last layer)", 1.0, "1.0"


def _check_init(name: str, layers: list, where: str) -> None:
    """Orthogonal weights with the stated gains, zero biases."""
    for i, lin in enumerate(layers):
        role, gain, gain_text = _layer_role(name, i, len(layers))
        s = torch.linalg.svdvals(lin.weight.detach().double())  # singular values
        if float(s.max() - s.min()) > 1e-3 * float(s.max()) + 1e-7:
            raise AssertionError(
                f"the weights of {role} are not orthogonal: their singular values run "
                f"from {s.min():.4f} to {s.max():.4f}, while an orthogonal matrix times "
                f"a gain g has all of them equal to g. Use nn.init.orthogonal_(layer."
                f"weight, gain={gain_text}) (PyTorch's default init is a uniform draw); "
                f"while {where}."
            )
        got = float(s[0])
        if abs(got - gain) > 1e-3 * gain:
            why = {
                SQRT2: "√2, the hidden layers' gain in PPO's implementations",
                0.01: "0.01 makes every first logit or mean nearly 0, so the first "
                "policy is nearly uniform whatever the state",
                1.0: "1.0 leaves the first values of order one",
            }[gain]
            raise AssertionError(
                f"{role} is orthogonal with gain {got:.4f}; it needs gain {gain_text} "
                f"({why}); while {where}."
            )
        if not bool((lin.bias == 0).all()):
            raise AssertionError(
                f"the biases of {role} are not 0: initialize them with "
                f"nn.init.zeros_(layer.bias) (or nn.init.constant_); while {where}."
            )


def _forward(name: str, net: nn.Module, x: torch.Tensor, out: int, where: str):
    """net(x), required to be a float tensor of shape [..., out]."""
    try:
        y = net(x)
    except Exception as error:
        raise AssertionError(
            f"calling your {name} on observations of shape {list(x.shape)} raised "
            f"{type(error).__name__}: {error}; it must take [..., obs_dim]; while {where}."
        ) from None
    want = [*x.shape[:-1], out]
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise AssertionError(
            f"your {name} must return a float tensor, got {type(y).__name__}; while "
            f"{where}."
        )
    if list(y.shape) != want:
        hint = " Keep every leading axis: [..., obs_dim] -> [..., out]."
        if name == "critic" and list(y.shape) == want[:-1]:
            hint = (
                " The critic returns [..., 1], as its last nn.Linear(hidden, 1) gives; "
                "the trainer squeezes that axis itself (don't .squeeze() it here)."
            )
        raise AssertionError(
            f"your {name} maps observations of shape {list(x.shape)} to shape "
            f"{list(y.shape)}; expected {want}.{hint} While {where}."
        )
    return y


def _check_forward(name, layers, y, x, activation, where) -> None:
    """y must be Linear → activation → … → Linear of the network's own layers."""

    def stack(act, after_last=None):
        h = x
        for i, lin in enumerate(layers):
            h = torch.nn.functional.linear(h, lin.weight, lin.bias)
            if i < len(layers) - 1:
                h = act(h)
        return h if after_last is None else after_last(h)

    other = "relu" if activation == "tanh" else "tanh"
    right = ACTIVATION_FNS[activation]
    with torch.no_grad():
        if close(y, stack(right)):
            return
        mistakes = [
            (
                "there is no activation between your layers: stacked nn.Linear layers "
                "without a nonlinearity are one linear map. Put "
                f"{'nn.Tanh()' if activation == 'tanh' else 'nn.ReLU()'} between them.",
                stack(lambda h: h),
            ),
            (
                f"activation={activation!r} asks for "
                f"{'nn.Tanh' if activation == 'tanh' else 'nn.ReLU'} between the layers; "
                f"yours applies {other} (read the activation argument).",
                stack(ACTIVATION_FNS[other]),
            ),
            (
                "the output layer must stay linear: no activation after the last "
                "nn.Linear (logits, means and values are unbounded numbers).",
                stack(right, right),
            ),
            (
                "your actor returns probabilities (a softmax at the end); it must return "
                "the logits: the policy takes softmax/log_softmax of them itself.",
                stack(right, lambda h: torch.softmax(h, -1)),
            ),
        ]
        message = diagnose(y, mistakes)
    raise AssertionError(
        (message or f"your {name}'s output is not Linear → {activation} → … → Linear "
         "of its own nn.Linear layers, applied in the order they were created.")
        + f" While {where}."
    )  # fmt: skip


def _check_gradients(name: str, net: nn.Module, y: torch.Tensor, where: str) -> None:
    params = dict(net.named_parameters())
    frozen = [n for n, p in params.items() if not p.requires_grad]
    if frozen:
        raise AssertionError(
            f"the parameters {frozen} of your {name} do not require gradients, so they "
            f"would never train; while {where}."
        )
    grads = torch.autograd.grad(
        y.square().sum(), list(params.values()), allow_unused=True
    )
    for (pname, _), grad in zip(params.items(), grads, strict=True):
        if grad is None or not bool(grad.abs().sum() > 0):
            raise AssertionError(
                f"no gradient reaches {pname} of your {name} from its output (detached, "
                f"unused in forward, or computed outside autograd); while {where}."
            )


def _randomize(layers: list, gen: torch.Generator) -> None:
    """Weights of a larger scale and nonzero biases, so that every activation (and
    one wrongly after the output) changes the output visibly."""
    with torch.no_grad():
        for lin in layers:
            fan_in = lin.in_features
            lin.weight.copy_(
                torch.randn(lin.weight.shape, generator=gen) * 1.5 / fan_in**0.5
            )
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=gen) * 0.5)


@exercise("actor_critic_networks")
def check_actor_critic_networks(fn: Callable, extra_cases: list[dict]) -> int:
    """Check `actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)`
    (Exercise 5.3)."""
    gen = generator(503)
    cases = NET_CASES + [
        (c["obs_dim"], c["action_dim"], tuple(c["hidden_sizes"]), c["activation"])
        for c in extra_cases
    ]
    for k, (obs_dim, action_dim, hidden, activation) in enumerate(cases):
        args = (obs_dim, action_dim, hidden, activation)
        where = (
            f"building actor_critic_networks({obs_dim}, {action_dim}, {hidden}, "
            f"{activation!r})"
        )
        actor, critic = _build(fn, args, 100 + k, where)
        if actor is critic or {id(p) for p in actor.parameters()} & {
            id(p) for p in critic.parameters()
        }:
            raise AssertionError(
                "your actor and critic share parameters; this exercise asks for two "
                "separate networks (no common body), so that the value loss cannot "
                f"change the policy's features; while {where}."
            )
        nets = {"actor": (actor, action_dim), "critic": (critic, 1)}
        layers = {
            name: _check_layers(name, net, [obs_dim, *hidden, out], where)
            for name, (net, out) in nets.items()
        }
        for name in nets:
            _check_init(name, layers[name], where)
        for name, (net, out) in nets.items():
            for batch in [(7,), (5, 3)]:  # [B, obs] and [T, N, obs]
                x = torch.randn(*batch, obs_dim, generator=gen) * 2
                y = _forward(name, net, x, out, where)
            _check_gradients(name, net, y, where)
            _randomize(layers[name], gen)
            x = torch.randn(6, obs_dim, generator=gen) * 2
            y = _forward(name, net, x, out, where)
            _check_forward(name, layers[name], y, x, activation, where)
        _check_seeding(fn, args, 100 + k, actor, where)
    return len(cases)


def _check_seeding(fn: Callable, args: tuple, seed: int, actor: nn.Module, where: str):
    """New layers on every call, drawn from torch's generator (and only from it): the
    same seed gives the same actor AND critic, another seed other ones."""

    def weights(pair: tuple) -> list[list[torch.Tensor]]:  # per network
        return [[p.detach() for p in net.parameters()] for net in pair]

    def equal(xs: list, ys: list) -> bool:
        return all(torch.equal(p, q) for p, q in zip(xs, ys, strict=True))

    again = _build(fn, args, seed, where)
    if any(
        p is q for p, q in zip(again[0].parameters(), actor.parameters(), strict=False)
    ):
        raise AssertionError(
            "two calls returned the same actor: build new layers on every call "
            f"(the trainer builds one network per run); while {where}."
        )
    first, other = weights(again), weights(_build(fn, args, seed + 1, where))
    if all(equal(xs, ys) for xs, ys in zip(first, other, strict=True)):
        raise AssertionError(
            "your networks come out the same whatever torch.manual_seed says: don't "
            "seed inside the function (the trainer seeds once per run), and draw "
            f"the weights with nn.init; while {where}."
        )
    repeat = weights(_build(fn, args, seed, where))
    for name, xs, ys in zip(("actor", "critic"), first, repeat, strict=True):
        if not equal(xs, ys):
            raise AssertionError(
                f"after the same torch.manual_seed your {name} comes out different: "
                "draw every weight from torch's generator (nn.init.orthogonal_), not "
                "from NumPy or Python's random, so that a run's seed fixes them; while "
                f"{where}."
            )
