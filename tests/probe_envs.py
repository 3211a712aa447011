"""Probe environments: tiny tasks whose correct value function or policy is known.

After Andy Jones, "Debugging RL, Without the Agonizing Pain" (2021): each probe
isolates one part of the agent, so a failing probe says which part is broken.

    Constant      one step, reward 1                   V(s) = 1
    ObsReward     one step, reward = obs ∈ {−1, +1}     V(s) = obs
    TwoStep       obs 0 then obs 1, reward 1 at the end  V(0) = γ, V(1) = 1
    ActionReward  one step, reward 1 for the right action (discrete: 0; Box: a ≈ 0.5)
    ActionObsReward  one step, the right action depends on the observation
    Endless       reward 1 forever, cut by a time limit  V(s) = 1 / (1 − γ) only if the
                  truncation bootstraps (else it drops towards the limit); its
                  observation counts steps, 0.1 per step

Importing this module registers them as "probes/<Name>-v0" (Discrete actions) and
"probes/<Name>Box-v0" (Box actions in [−1, 1]).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

OBS_SPACE = spaces.Box(-1.0, 1.0, (1,), np.float32)
BOX_TARGET = 0.5  # the best Box action of the action probes (times the obs sign)


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


PROBES = {
    "Constant": Constant,
    "ObsReward": ObsReward,
    "TwoStep": TwoStep,
    "ActionReward": ActionReward,
    "ActionObsReward": ActionObsReward,
    "Endless": Endless,
}
ENDLESS_LIMIT = 5


def probe_id(name: str, box: bool = False) -> str:
    return f"probes/{name}{'Box' if box else ''}-v0"


def register_probes() -> None:
    for name, cls in PROBES.items():
        for box in (False, True):
            env_id = probe_id(name, box)
            if env_id in gym.registry:
                continue
            gym.register(
                env_id,
                entry_point=cls,
                kwargs={"box": box},
                max_episode_steps=ENDLESS_LIMIT if name == "Endless" else 10,
                disable_env_checker=True,
            )


register_probes()


class MultiDiscreteActions(Probe):
    """Unsupported by the trainer: MultiDiscrete actions."""

    def __init__(self, box: bool = False) -> None:
        super().__init__(box)
        self.action_space = spaces.MultiDiscrete([2, 3])

    def step(self, action):
        return self.obs(0.0), 0.0, True, False, {}


class ImageObs(Probe):
    """Unsupported by the trainer: a 3-D Box observation."""

    def __init__(self, box: bool = False) -> None:
        super().__init__(box)
        self.observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)

    def first_obs(self):
        return np.zeros((8, 8, 3), np.uint8)

    def step(self, action):
        return self.first_obs(), 0.0, True, False, {}


for _name, _cls in [
    ("MultiDiscreteActions", MultiDiscreteActions),
    ("ImageObs", ImageObs),
]:
    if probe_id(_name) not in gym.registry:
        gym.register(probe_id(_name), entry_point=_cls, disable_env_checker=True)
