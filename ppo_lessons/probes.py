"""Probe environments and the probe ladder: the first thing to run on a PPO that does
not learn (lesson 07, and the debugging part of lesson 08).

After Andy Jones, "Debugging RL, Without the Agonizing Pain" (2021): each probe is a
tiny task whose correct value function or policy is known, and isolates one part of
the agent, so the first rung that fails says which part is broken.

    Constant         one step, reward 1                      V(s) = 1
    ObsReward        one step, reward = obs ∈ {−1, +1}        V(s) = obs
    TwoStep          obs 0 then obs 1, reward 1 at the end    V(0) = γ, V(1) = 1
    ActionReward     one step, reward 1 for the right action  π(right) → 1
    ActionObsReward  the right action depends on the obs      π(right | obs) → 1
    Endless          reward 1 forever, cut by a time limit    V(s) = 1/(1 − γ), only if
                     (obs counts steps, 0.1 per step)          the truncation bootstraps

Importing this module registers them as "probes/<Name>-v0" (Discrete(2) actions; the
right one is 0 for a positive sign) and "probes/<Name>Box-v0" (Box actions in [−1, 1];
the best is 0.5 times the sign).

    from ppo_lessons.probes import probe_ladder
    probe_ladder(functions={"ppo_update": my_ppo_update})   # prints one line a rung
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from ppo_lessons.functions import LessonFunctions, trainer_functions
from ppo_lessons.trainer import PPOConfig, train

__all__ = [
    "BOX_TARGET",
    "ENDLESS_LIMIT",
    "PROBES",
    "RUNGS",
    "Probe",
    "ProbeResult",
    "Rung",
    "probe_config",
    "probe_id",
    "probe_ladder",
]

OBS_SPACE = spaces.Box(-1.0, 1.0, (1,), np.float32)
BOX_TARGET = 0.5  # the best Box action of the action probes (times the obs sign)
ENDLESS_LIMIT = 5  # steps before the time limit cuts an Endless episode
GAMMA = 0.9  # the ladder's discount (short horizons, clear targets)


class Probe(gym.Env):
    """Common parts: a 1-D observation, Discrete(2) or Box(-1, 1, (1,)) actions."""

    def __init__(self, box: bool = False) -> None:
        self.box = box
        self.observation_space = OBS_SPACE
        self.action_space = (
            spaces.Box(-1.0, 1.0, (1,), np.float32) if box else spaces.Discrete(2)
        )
        self.sign = 1.0
        self.t = 0

    def obs(self, value: float) -> np.ndarray:
        return np.array([value], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.sign = float(self.np_random.choice([-1.0, 1.0]))
        return self.first_obs(), {}

    def first_obs(self) -> np.ndarray:
        return self.obs(0.0)

    def action_reward(self, action: object, target_sign: float) -> float:
        """1 for the right action: discrete 0 (sign +) or 1 (sign −); Box: a
        Gaussian bump around 0.5 * sign (so the best mean is known)."""
        if self.box:
            a = float(np.asarray(action).reshape(-1)[0])
            return float(np.exp(-8.0 * (a - BOX_TARGET * target_sign) ** 2))
        right = 0 if target_sign > 0 else 1
        return 1.0 if int(action) == right else 0.0


class Constant(Probe):
    def step(self, action):
        return self.obs(0.0), 1.0, True, False, {}


class ObsReward(Probe):
    def first_obs(self):
        return self.obs(self.sign)

    def step(self, action):
        return self.obs(0.0), self.sign, True, False, {}


class TwoStep(Probe):
    def step(self, action):
        self.t += 1
        if self.t == 1:
            return self.obs(1.0), 0.0, False, False, {}
        return self.obs(0.0), 1.0, True, False, {}


class ActionReward(Probe):
    def step(self, action):
        return self.obs(0.0), self.action_reward(action, 1.0), True, False, {}


class ActionObsReward(Probe):
    def first_obs(self):
        return self.obs(self.sign)

    def step(self, action):
        return self.obs(0.0), self.action_reward(action, self.sign), True, False, {}


class Endless(Probe):
    """The observation counts the steps (0, 0.1, 0.2, ...), so an episode's final
    observation differs from the reset one; the value is the same everywhere."""

    def step(self, action):
        self.t += 1
        return self.obs(0.1 * self.t), 1.0, False, False, {}


PROBES: dict[str, type[Probe]] = {
    "Constant": Constant,
    "ObsReward": ObsReward,
    "TwoStep": TwoStep,
    "ActionReward": ActionReward,
    "ActionObsReward": ActionObsReward,
    "Endless": Endless,
}


def probe_id(name: str, box: bool = False) -> str:
    """The registered id of a probe, e.g. "probes/TwoStep-v0"."""
    return f"probes/{name}{'Box' if box else ''}-v0"


def register_probes() -> None:
    for name, cls in PROBES.items():
        for box in (False, True):
            if probe_id(name, box) not in gym.registry:
                gym.register(
                    probe_id(name, box),
                    entry_point=cls,
                    kwargs={"box": box},
                    max_episode_steps=ENDLESS_LIMIT if name == "Endless" else 10,
                    disable_env_checker=True,
                )


register_probes()


def probe_config(name: str, box: bool = False, **overrides: object) -> PPOConfig:
    """A small config that learns every probe in a few seconds (4,096 steps)."""
    base = dict(
        env_id=probe_id(name, box), num_envs=8, num_steps=16, total_steps=4096,
        update_epochs=4, num_minibatches=2, gamma=GAMMA, gae_lambda=0.95,
        learning_rate=3e-3, anneal_lr=False, device="cpu",
    )  # fmt: skip
    return PPOConfig(**{**base, **overrides})


# ---------------------------------------------------------------- the ladder


def value_at(agent: torch.nn.Module, *obs: float) -> list[float]:
    with torch.no_grad():
        return agent.value(torch.tensor([[o] for o in obs])).tolist()


def right_action_at(agent: torch.nn.Module, *signs: float) -> list[float]:
    """How right the policy is at observation = sign: P(right action) for a discrete
    agent; for a Box agent 1 − |mean − 0.5·sign| / 0.5 (1 at the best mean)."""
    with torch.no_grad():
        out, _ = agent.policy_and_value(torch.tensor([[s] for s in signs]))
    if agent.discrete:
        p = out.softmax(-1)
        return [float(p[i, 0 if s > 0 else 1]) for i, s in enumerate(signs)]
    return [
        1 - abs(float(out[i, 0]) - BOX_TARGET * s) / BOX_TARGET
        for i, s in enumerate(signs)
    ]


@dataclass(frozen=True)
class Rung:
    """One probe: what it isolates, what the trained agent should show."""

    probe: str
    isolates: str
    measure: Callable[[torch.nn.Module], list[float]]
    expected: list[float]
    tolerance: float
    what: str  # how the measured numbers read


RUNGS: tuple[Rung, ...] = (
    Rung("Constant", "the value loss and its gradient reaching the critic",
         lambda a: value_at(a, 0.0), [1.0], 0.1, "V(s)"),
    Rung("ObsReward", "the critic seeing each observation with its own return "
         "(minibatch fields indexed together)",
         lambda a: value_at(a, -1.0, 1.0), [-1.0, 1.0], 0.1, "V(−1), V(+1)"),
    Rung("TwoStep", "value targets through time: γ, GAE's returns and next_values",
         lambda a: value_at(a, 0.0, 1.0), [GAMMA, 1.0], 0.1, "V(0), V(1)"),
    Rung("ActionReward", "the policy term: the surrogate's sign, the ratio of the "
         "actions taken", lambda a: right_action_at(a, 1.0), [1.0], 0.15,
         "how right the policy is"),
    Rung("ActionObsReward", "the policy conditioned on the observation (actions "
         "paired with their own observations)",
         lambda a: right_action_at(a, -1.0, 1.0), [1.0, 1.0], 0.15,
         "how right the policy is at obs −1, +1"),
    Rung("Endless", "bootstrapping at a time-limit truncation (V of the final "
         "observation, not the reset one)",
         lambda a: value_at(a, 0.0, 0.2, 0.4), [1 / (1 - GAMMA)] * 3, 1.0,
         "V at steps 0, 2, 4"),
)  # fmt: skip


@dataclass(frozen=True)
class ProbeResult:
    rung: Rung
    measured: list[float]

    @property
    def passed(self) -> bool:
        return all(
            abs(m - e) <= self.rung.tolerance
            for m, e in zip(self.measured, self.rung.expected, strict=True)
        )

    def __str__(self) -> str:
        got = ", ".join(f"{m:.2f}" for m in self.measured)
        want = ", ".join(f"{e:.2f}" for e in self.rung.expected)
        mark = "✔" if self.passed else "✘"
        return (
            f"{mark} {self.rung.probe}: {self.rung.what} = {got} (expected {want} "
            f"± {self.rung.tolerance}); isolates {self.rung.isolates}"
        )


def probe_ladder(
    functions: Mapping[str, Callable] | LessonFunctions | None = None,
    box: bool = False,
    seed: int = 1,
    stop_at_first_failure: bool = True,
    verbose: bool = True,
) -> list[ProbeResult]:
    """Train on each probe in turn (with `functions` as `train` takes them: one
    bundle, `LessonFunctions`, for every rung, its counters summing the calls) and
    compare what the agent learned with the known answer, printing one line a rung.

    Returns:
        The results up to the first failing rung (all of them when
        `stop_at_first_failure` is False).
    """
    functions = trainer_functions(functions)  # names checked once, before any run
    results = []
    for rung in RUNGS:
        config = probe_config(rung.probe, box, seed=seed)
        agent = train(config, functions=functions, progress=False).agent
        result = ProbeResult(rung, rung.measure(agent))
        results.append(result)
        if verbose:
            print(result)
        if stop_at_first_failure and not result.passed:
            break
    return results
