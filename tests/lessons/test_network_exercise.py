"""Exercise 5.3, `actor_critic_networks`: its check, and the trainer training with it.

The check must pass the reference and a correct version written another way (a
module class of its own, orthogonal weights from a QR decomposition), and fail each
planted mistake with a message that names it. `train(config, functions=...)` must
build its agent from the given function, and learn with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ppo_lessons.checks import check_actor_critic_networks
from ppo_lessons.functions import REFERENCES, TRAINER_EXERCISES
from ppo_lessons.networks import ActorCritic, actor_critic_networks
from ppo_lessons.presets import preset
from ppo_lessons.trainer import evaluate, train

ACT = {"tanh": nn.Tanh, "relu": nn.ReLU}


# ---------------------------------------------------------------- a correct version


def orthogonal(out_features: int, in_features: int, gain: float) -> torch.Tensor:
    """gain · Q with orthonormal rows or columns, from a QR decomposition."""
    rows, cols = max(out_features, in_features), min(out_features, in_features)
    q, r = torch.linalg.qr(torch.randn(rows, cols))
    q = q * torch.sign(torch.diagonal(r))  # a uniformly random Q
    return gain * (q if out_features >= in_features else q.T)


class Net(nn.Module):
    """Another way to write it: a ModuleList and a functional activation."""

    def __init__(self, sizes: list[int], activation: str, out_gain: float) -> None:
        super().__init__()
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.act = torch.tanh if activation == "tanh" else torch.relu
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                last = i == len(self.layers) - 1
                gain = out_gain if last else math.sqrt(2.0)
                layer.weight.copy_(orthogonal(*layer.weight.shape, gain))
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def written_another_way(obs_dim, action_dim, hidden_sizes, activation):
    sizes = [obs_dim, *hidden_sizes]
    return Net([*sizes, action_dim], activation, 0.01), Net(
        [*sizes, 1], activation, 1.0
    )


# ---------------------------------------------------------------- planted mistakes


def sequential(sizes, activation, gains, after_last=None, init=True):
    """Linear layers with `gains[i]` on layer i (orthogonal, zero bias when `init`)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layer = nn.Linear(a, b)
        if init:
            nn.init.orthogonal_(layer.weight, gains[i])
            nn.init.zeros_(layer.bias)
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(ACT[activation]())
    if after_last is not None:
        layers.append(after_last)
    return nn.Sequential(*layers)


SQRT2 = math.sqrt(2.0)


def variant(actor_gain=0.01, critic_gain=1.0, hidden_gain=SQRT2, **kw):
    """actor_critic_networks with one thing changed."""

    def build(obs_dim, action_dim, hidden_sizes, activation):
        hidden = list(kw.get("hidden", hidden_sizes))
        act = kw.get("activation", activation)
        n = len(hidden)
        actor = sequential(
            [obs_dim, *hidden, action_dim], act, [hidden_gain] * n + [actor_gain],
            kw.get("actor_after"), kw.get("init", True),
        )  # fmt: skip
        critic = sequential(
            [obs_dim, *hidden, kw.get("critic_out", 1)], act,
            [hidden_gain] * n + [critic_gain], kw.get("critic_after"), kw.get("init", True),
        )  # fmt: skip
        return actor, critic

    return build


class NoActivation(nn.Module):
    def forward(self, x):
        return x


class Squeezed(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(-1)


class Flattened(nn.Module):
    def __init__(self, net, obs_dim):
        super().__init__()
        self.net, self.obs_dim = net, obs_dim

    def forward(self, x):
        return self.net(x.reshape(-1, self.obs_dim))


class WithLogStd(nn.Module):
    def __init__(self, net, action_dim):
        super().__init__()
        self.net = net
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, x):
        return self.net(x)


def squeezed_critic(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    return actor, Squeezed(critic)


def flattened_actor(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    return Flattened(actor, obs_dim), critic


def log_std_in_actor(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    return WithLogStd(actor, action_dim), critic


def shared_body(obs_dim, action_dim, hidden_sizes, activation):
    body = sequential([obs_dim, *hidden_sizes], activation, [math.sqrt(2.0)] * 9)
    body.append(ACT[activation]())
    actor = nn.Sequential(body, sequential([hidden_sizes[-1], action_dim], "", [0.01]))
    critic = nn.Sequential(body, sequential([hidden_sizes[-1], 1], "", [1.0]))
    return actor, critic


def seeded_inside(obs_dim, action_dim, hidden_sizes, activation):
    torch.manual_seed(0)
    return actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)


def numpy_weights(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    rng = np.random.default_rng()  # not seeded by torch.manual_seed
    with torch.no_grad():
        for net in (actor, critic):
            for layer in net:
                if isinstance(layer, nn.Linear):
                    out, inp = layer.weight.shape
                    gain = torch.linalg.svdvals(layer.weight)[0].item()
                    q, _ = np.linalg.qr(
                        rng.standard_normal((max(out, inp), min(out, inp)))
                    )
                    w = gain * (q if out >= inp else q.T)
                    layer.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
    return actor, critic


def numpy_critic(obs_dim, action_dim, hidden_sizes, activation):
    # the actor right, only the critic drawn outside torch's generator
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    _, numpy_drawn = numpy_weights(obs_dim, action_dim, hidden_sizes, activation)
    return actor, numpy_drawn


def frozen_head(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    actor[-1].weight.requires_grad_(False)
    return actor, critic


def default_biases(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)
    with torch.no_grad():
        critic[0].bias.uniform_(-0.1, 0.1)
    return actor, critic


CACHE: dict = {}


def built_once(obs_dim, action_dim, hidden_sizes, activation):
    key = (obs_dim, action_dim, tuple(hidden_sizes), activation)
    if key not in CACHE:
        CACHE[key] = actor_critic_networks(
            obs_dim, action_dim, hidden_sizes, activation
        )
    return CACHE[key]


def not_a_pair(obs_dim, action_dim, hidden_sizes, activation):
    return actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation)[0]


MISTAKES = {
    "policy head with the hidden gain": (
        variant(actor_gain=math.sqrt(2.0)),
        r"policy head.*gain 1\.4142; it needs gain 0\.01",
    ),
    "value head with the policy's gain": (
        variant(critic_gain=0.01),
        r"value head.*gain 0\.0100; it needs gain 1\.0",
    ),
    "hidden layers with gain 1": (
        variant(hidden_gain=1.0),
        r"hidden layer 0 of your actor.*gain 1\.0000; it needs gain √2",
    ),
    "no orthogonal init": (
        variant(init=False),
        r"not orthogonal.*nn\.init\.orthogonal_",
    ),
    "biases left at PyTorch's default": (default_biases, r"biases of .* are not 0"),
    "no activation between layers": (
        variant(activation=None),
        r"no activation between your layers",
    ),
    "activation after the last layer": (
        variant(critic_after=nn.Tanh()),
        r"output layer must stay linear",
    ),
    "always tanh": (variant(activation="tanh"), r"activation='relu' asks for nn\.ReLU"),
    "softmax on the logits": (
        variant(actor_after=nn.Softmax(-1)),
        r"returns probabilities",
    ),
    "critic output squeezed to [B]": (squeezed_critic, r"critic returns \[\.\.\., 1\]"),
    "critic with action_dim outputs": (
        variant(critic_out=2),
        r"critic outputs ONE value",
    ),
    "hidden sizes hard-coded": (
        variant(hidden=(64, 64)),
        r"should be nn\.Linear layers of sizes 3 → 32 → 1",
    ),
    "flattened leading axes": (flattened_actor, r"Keep every leading axis"),
    "a shared body": (shared_body, r"share parameters"),
    "log σ inside the actor": (log_std_in_actor, r"log σ belongs to ActorCritic"),
    "seeding inside the function": (seeded_inside, r"whatever torch\.manual_seed says"),
    "weights drawn with NumPy": (numpy_weights, r"not from NumPy"),
    "critic weights drawn with NumPy": (
        numpy_critic,
        r"your critic comes out different",
    ),
    "a parameter that cannot train": (frozen_head, r"do not require gradients"),
    "one network returned": (not_a_pair, r"return two networks"),
    "the same networks on every call": (built_once, r"build new layers on every call"),
}


def no_activation_patch():
    ACT[None] = NoActivation


no_activation_patch()


# ---------------------------------------------------------------- the check


@pytest.mark.parametrize("fn", [actor_critic_networks, written_another_way])
def test_the_check_passes_correct_versions(fn, capsys) -> None:
    # catches: a check that demands the reference's own way of writing it
    result = check_actor_critic_networks(fn)
    assert result and result.cases == 4
    assert capsys.readouterr().out.strip() == (
        "✔ actor_critic_networks: correct on all 4 test cases."
    )


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_each_planted_mistake(mistake: str) -> None:
    fn, message = MISTAKES[mistake]
    with pytest.raises(AssertionError, match=message):
        check_actor_critic_networks(fn)


def test_the_check_of_a_stub_says_not_done(capsys) -> None:
    def stub(obs_dim, action_dim, hidden_sizes, activation):
        raise NotImplementedError("Exercise 5.3: not written yet")

    assert not check_actor_critic_networks(stub)
    assert "Exercise 5.3 (actor_critic_networks" in capsys.readouterr().out


def test_the_check_keeps_the_callers_random_stream() -> None:
    # catches: a check that reseeds torch's global generator behind the notebook
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_actor_critic_networks(actor_critic_networks)
    torch.testing.assert_close(torch.rand(3), expected)


def test_the_check_takes_hidden_cases() -> None:
    case = dict(obs_dim=2, action_dim=5, hidden_sizes=[7], activation="relu")
    result = check_actor_critic_networks(written_another_way, extra_cases=[case])
    assert result.cases == 5

    def wrong_for_five_actions(obs_dim, action_dim, hidden_sizes, activation):
        gains = variant(actor_gain=1.0) if action_dim == 5 else actor_critic_networks
        return gains(obs_dim, action_dim, hidden_sizes, activation)

    assert check_actor_critic_networks(wrong_for_five_actions)
    with pytest.raises(AssertionError, match=r"actor_critic_networks\(2, 5, \(7,\)"):
        check_actor_critic_networks(wrong_for_five_actions, extra_cases=[case])


# ---------------------------------------------------------------- the trainer


def test_the_exercise_is_one_the_trainer_takes() -> None:
    assert "actor_critic_networks" in TRAINER_EXERCISES
    assert REFERENCES["actor_critic_networks"] is actor_critic_networks


def test_actor_critic_takes_the_networks_it_is_given() -> None:
    built = {}

    def networks(obs_dim, action_dim, hidden_sizes, activation):
        built["pair"] = written_another_way(
            obs_dim, action_dim, hidden_sizes, activation
        )
        return built["pair"]

    agent = ActorCritic(3, 2, discrete=False, hidden_sizes=(8,), networks=networks)
    assert (agent.actor, agent.critic) == built["pair"]
    out, values = agent.policy_and_value(torch.randn(5, 3))
    assert out.shape == (5, 2) and values.shape == (5,)
    assert agent.log_std.shape == (2,)  # log σ stays the agent's own parameter
    with pytest.raises(ValueError, match="shared=False"):
        ActorCritic(3, 2, discrete=True, shared=True, networks=networks)


def test_ortho_init_false_resets_the_given_networks_to_pytorchs_default() -> None:
    # the ablation of lesson 08: same random draws as freshly created layers
    torch.manual_seed(3)
    agent = ActorCritic(
        4, 2, discrete=True, ortho_init=False, networks=written_another_way
    )
    torch.manual_seed(3)
    fresh = [nn.Linear(4, 64), nn.Linear(64, 64), nn.Linear(64, 2)]
    for got, want in zip(agent.actor.layers, fresh, strict=True):
        torch.testing.assert_close(got.weight, want.weight)
        torch.testing.assert_close(got.bias, want.bias)


@pytest.mark.heavy  # a learning run
def test_train_builds_and_trains_the_given_network() -> None:
    # catches: a trainer that accepts the name and builds the reference network
    built = []

    def networks(obs_dim, action_dim, hidden_sizes, activation):
        built.append(written_another_way(obs_dim, action_dim, hidden_sizes, activation))
        return built[-1]

    config = preset("CartPole-v1", env_backend="torch", seed=1, total_steps=40_000)
    result = train(
        config, functions={"actor_critic_networks": networks}, progress=False
    )
    assert len(built) == 1
    actor, critic = built[0]
    assert result.agent.actor is actor and result.agent.critic is critic
    assert isinstance(result.agent.actor, Net)
    assert result.function_calls == {"actor_critic_networks": 1}  # built once
    # it learned: a random policy scores about 22 on CartPole
    assert float(evaluate(result.agent, config.env_id, 5).mean()) >= 200.0
