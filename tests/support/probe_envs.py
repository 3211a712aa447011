"""Two probes the trainer must refuse (unsupported spaces), beside the course's probe
environments (`ppo_lessons.probes`, registered on import)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ppo_lessons.probes import BOX_TARGET, Probe, probe_id  # noqa: F401


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
