"""The trainer's configuration: one frozen dataclass, every field documented and
validated when the config is made.

Each field's documentation (its meaning and typical range) is stored in the field's
metadata, so the CLI's `--help` (`python -m ppo_lessons.train`) and `PPOConfig.__doc__`
are generated from this one place. Names follow CleanRL (`num_envs`, `num_steps`,
`clip_coef`, ...), so a learner can compare line by line.

The defaults are rl-baselines3-zoo's tuned CartPole-v1 settings (hyperparams/ppo.yml),
which solve CartPole-v1 within 100,000 steps for most seeds; `ppo_lessons.presets`
has tuned settings for the other classic-control tasks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from ppo_lessons.torch_envs import TORCH_ENV_IDS

__all__ = ["PPOConfig", "field_help"]


@dataclass(frozen=True)
class Rule:
    """What a field accepts: a predicate and the sentence that describes it."""

    accepts: Callable[[Any], bool]
    allowed: str


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(float(v))


def integer(low: int, high: int | None = None) -> Rule:
    top = "" if high is None else f" and <= {high}"
    return Rule(
        lambda v: _is_int(v) and v >= low and (high is None or v <= high),
        f"an integer >= {low}{top}",
    )


def real(low: float, high: float, low_open: bool = False) -> Rule:
    left = "(" if low_open else "["
    return Rule(
        lambda v: _is_real(v) and (v > low if low_open else v >= low) and v <= high,
        f"a number in {left}{low}, {high}]",
    )


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.accepts(v), f"None or {rule.allowed}")


def choice(*options: str) -> Rule:
    return Rule(lambda v: v in options, f"one of {', '.join(map(repr, options))}")


BOOL = Rule(lambda v: isinstance(v, bool), "True or False")
DEVICE = Rule(
    lambda v: (
        isinstance(v, str)
        and (
            v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        )
    ),
    "'auto', 'cpu', 'cuda' or 'cuda:<index>'",
)
HIDDEN = Rule(
    lambda v: (
        isinstance(v, tuple)
        and 1 <= len(v) <= 8
        and all(_is_int(n) and 1 <= n <= 4096 for n in v)
    ),
    "a tuple of 1 to 8 layer widths, each an integer in [1, 4096], e.g. (64, 64)",
)


def _registered(env_id: object) -> bool:
    if not isinstance(env_id, str) or not env_id:
        return False
    try:
        gym.spec(env_id)
    except gym.error.Error:
        return False
    return True


ENV_BACKENDS = ("gymnasium", "torch")

ENV_ID = Rule(_registered, "a registered Gymnasium id such as 'CartPole-v1'")


def setting(default: Any, rule: Rule, doc: str) -> Any:
    """A config field with its validation rule and documentation."""
    return field(default=default, metadata={"rule": rule, "doc": doc})


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of one PPO run (frozen; validated on creation)."""

    # ---- environment and run size
    env_id: str = setting(
        "CartPole-v1",
        ENV_ID,
        "Gymnasium environment id (Box observations; Discrete or Box actions).",
    )
    total_steps: int = setting(
        200_000,
        integer(1),
        "Environment steps to train for, summed over all envs "
        "(CartPole: 1e5-5e5; MuJoCo: 1e6).",
    )
    seed: int = setting(
        1,
        integer(0),
        "Seed of the network init, the action sampling, minibatch order and the envs.",
    )
    num_envs: int = setting(
        8,
        integer(1, 65_536),
        "N parallel environments (1-64 with Gymnasium envs; 64-65536 with the "
        "torch backend).",
    )
    num_steps: int = setting(
        32,
        integer(1),
        "T steps per env per rollout; a rollout is T*N transitions (16-2048).",
    )
    async_envs: bool = setting(
        False,
        BOOL,
        "Step the envs in subprocesses (AsyncVectorEnv) instead of in-process.",
    )
    env_backend: str = setting(
        "gymnasium",
        choice(*ENV_BACKENDS),
        "'gymnasium': Gymnasium's vector env (any registered id); 'torch': the "
        "batched tensor env of ppo_lessons.torch_envs on the run's device, so the "
        "rollout never leaves it (CartPole-v1, Acrobot-v1, Pendulum-v1, "
        "MountainCarContinuous-v0).",
    )
    # ---- optimization
    learning_rate: float = setting(
        1e-3, real(0.0, 1.0, low_open=True), "Adam step size (1e-4 to 3e-3)."
    )
    anneal_lr: bool = setting(
        True, BOOL, "Decay the learning rate linearly to 0 over the run."
    )
    adam_eps: float = setting(
        1e-5,
        real(0.0, 1.0, low_open=True),
        "Adam's epsilon (1e-5 as in OpenAI baselines; PyTorch's default is 1e-8).",
    )
    num_minibatches: int = setting(
        1, integer(1), "Minibatches per epoch; must divide num_envs*num_steps (1-64)."
    )
    update_epochs: int = setting(
        20, integer(1, 1000), "Passes over each rollout (3-30)."
    )
    max_grad_norm: float | None = setting(
        0.5,
        optional(real(0.0, 1e6, low_open=True)),
        "Clip the global gradient norm to this (0.5-5); None disables clipping.",
    )
    target_kl: float | None = setting(
        None,
        optional(real(0.0, 10.0, low_open=True)),
        "Stop the epochs of an "
        "update once approx KL exceeds this (0.01-0.05); None never stops early.",
    )
    kl_estimator: str = setting(
        "k3", choice("k1", "k3"), "approx_kl estimator used for logging and target_kl."
    )
    # ---- returns and advantages
    gamma: float = setting(0.98, real(0.0, 1.0), "Discount factor γ (0.9-0.999).")
    gae_lambda: float = setting(
        0.8, real(0.0, 1.0), "GAE λ: 0 one-step TD, 1 Monte Carlo (0.8-0.98)."
    )
    norm_adv: bool = setting(
        True, BOOL, "Normalize advantages per minibatch to zero mean and unit std."
    )
    # ---- the loss
    clip_coef: float = setting(
        0.2, real(0.0, 1.0, low_open=True), "PPO clip range ε of the ratio (0.1-0.3)."
    )
    clip_vloss: bool = setting(
        False,
        BOOL,
        "Clip the value loss around the old values with clip_coef (OpenAI baselines).",
    )
    ent_coef: float = setting(
        0.0, real(0.0, 1.0), "Weight of the entropy bonus (0-0.01)."
    )
    vf_coef: float = setting(0.5, real(0.0, 100.0), "Weight of the value loss (0.5-1).")
    # ---- networks
    hidden_sizes: tuple[int, ...] = setting(
        (64, 64), HIDDEN, "Widths of the hidden layers."
    )
    activation: str = setting(
        "tanh", choice("tanh", "relu"), "Hidden-layer activation."
    )
    recurrent: str = setting(
        "none",
        choice("none", "gru"),
        "'gru': a policy with memory (an encoder of hidden_sizes, a GRU cell of the "
        "last width, the heads on its hidden state; lesson 11) for partially observed "
        "tasks such as CartPoleNoVel-v1; minibatches are whole env sequences, so "
        "num_minibatches must divide num_envs.",
    )
    frame_stack: int = setting(
        1,
        integer(1, 64),
        "k > 1: the policy and the critic see the last k observations concatenated "
        "(zeros before an episode's first; frame stacking, the simple memory of lesson "
        "11); minibatches are then whole env sequences, so num_minibatches must divide "
        "num_envs.",
    )
    shared_network: bool = setting(
        False,
        BOOL,
        "One trunk with policy and value heads instead of two separate MLPs.",
    )
    ortho_init: bool = setting(
        True,
        BOOL,
        "Orthogonal init (gain √2 hidden, 0.01 policy, 1 value) and zero biases.",
    )
    init_log_std: float = setting(
        0.0,
        real(-10.0, 5.0),
        "Initial log σ of the Gaussian policy (Box actions; -1 to 0).",
    )
    init_value: float = setting(
        0.0,
        real(-1e6, 1e6),
        "Initial output of the critic (its last layer's bias): the value it predicts "
        "before training (in the units of the rewards it learns from).",
    )
    squash_actions: bool = setting(
        False,
        BOOL,
        "Box actions: squash the Gaussian sample into the bounds with tanh (log-prob "
        "corrected) instead of clipping it when it is sent to the env.",
    )
    # ---- normalization
    norm_obs: bool = setting(
        False,
        BOOL,
        "Standardize observations with running "
        "statistics (updated only while training).",
    )
    norm_reward: bool = setting(
        False, BOOL, "Scale rewards by the running std of the discounted return."
    )
    # ---- hardware
    device: str = setting(
        "auto",
        DEVICE,
        "Where the networks and the update live; 'auto' picks CUDA when available.",
    )
    torch_threads: int = setting(
        1,
        integer(0, 256),
        "torch.set_num_threads for the "
        "run (1 is fastest for small MLPs); 0 leaves "
        "PyTorch's default.",
    )

    def __post_init__(self) -> None:
        if isinstance(self.hidden_sizes, list):  # accept a list, store a tuple
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            rule: Rule = f.metadata["rule"]
            if not rule.accepts(value):
                raise ValueError(
                    f"PPOConfig.{f.name} = {value!r} is not allowed: it must be "
                    f"{rule.allowed} ({f.metadata['doc']})"
                )
        self._check_backend()
        self._check_sizes()
        self._check_recurrent()

    def _check_backend(self) -> None:
        if self.env_backend != "torch":
            return
        if self.env_id not in TORCH_ENV_IDS:
            raise ValueError(
                f"PPOConfig.env_id = {self.env_id!r} has no batched version for "
                f"env_backend='torch'; choose one of {', '.join(TORCH_ENV_IDS)}, or "
                "env_backend='gymnasium'"
            )
        if self.async_envs:
            raise ValueError(
                "PPOConfig.async_envs = True is not allowed with env_backend='torch' "
                "(the batched env steps all envs in one call); set async_envs=False"
            )

    def _check_recurrent(self) -> None:
        if self.recurrent == "none" and self.frame_stack == 1:
            return
        memory = (
            f"recurrent={self.recurrent!r}"
            if self.recurrent != "none"
            else f"frame_stack={self.frame_stack}"
        )
        if self.recurrent != "none" and self.frame_stack > 1:
            raise ValueError(
                f"PPOConfig.frame_stack = {self.frame_stack} is not allowed with "
                f"recurrent={self.recurrent!r}: choose one memory (frame_stack=1, or "
                "recurrent='none')"
            )
        if self.num_envs % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches = {self.num_minibatches} must divide "
                f"num_envs = {self.num_envs} with {memory} (a minibatch is a set of "
                "whole env sequences)"
            )
        if self.shared_network:
            raise ValueError(
                f"PPOConfig.shared_network = True is not allowed with {memory} (it "
                "builds a separate actor and critic on the memory); set "
                "shared_network=False"
            )

    def _check_sizes(self) -> None:
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches = {self.num_minibatches} must divide the "
                f"batch size num_envs * num_steps = {self.batch_size}"
            )
        if self.total_steps < self.batch_size:
            raise ValueError(
                f"PPOConfig.total_steps = {self.total_steps} is less than one rollout "
                f"(num_envs * num_steps = {self.batch_size}); it must be >= "
                f"{self.batch_size}"
            )

    @property
    def batch_size(self) -> int:
        """B = num_envs * num_steps transitions per rollout."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """M = B / num_minibatches."""
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Rollout + update iterations: total_steps // B."""
        return self.total_steps // self.batch_size

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only (tuples as lists), for JSON and checkpoints."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPOConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown PPOConfig fields: {', '.join(unknown)}")
        return cls(**values)


def field_help(name: str) -> str:
    """The documentation of one field: meaning, typical range and what is allowed."""
    f = {f.name: f for f in dataclasses.fields(PPOConfig)}[name]
    return f"{f.metadata['doc']} Allowed: {f.metadata['rule'].allowed}."


PPOConfig.__doc__ = (
    (PPOConfig.__doc__ or "")
    + "\n\nFields:\n"
    + "\n".join(
        f"    {f.name} (default {f.default!r}): {field_help(f.name)}"
        for f in dataclasses.fields(PPOConfig)
    )
)
