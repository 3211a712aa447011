"""The batched tensor vector env that `ppo_lessons.torch_envs`' classic-control tasks
share: step counters, time limits, SAME_STEP auto-reset, `final_obs`, per-env episode
statistics and the state a checkpoint saves, for N copies in one [N, S] state tensor.

A task only defines its physics (`_initial_states`, `_transition`, `_observe`); the
interface, Gymnasium's vector API with tensors in and out, is described in
`ppo_lessons.torch_envs`.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from ppo_lessons.envs import TensorVectorEnv

__all__ = ["TorchVectorEnv"]


class TorchVectorEnv(TensorVectorEnv):
    """N copies of one classic-control env in a single [N, S] state tensor.

    Subclasses define the physics as three pure tensor functions:
    `_initial_states()` (N fresh states), `_transition(state, actions)` (next state,
    reward, terminated) and `_observe(state)` (observation). This class adds what
    Gymnasium's `TimeLimit` wrapper and SAME_STEP vector env do: step counters,
    truncation, auto-reset, `final_obs`, and per-env episode statistics.

    Attributes (all on `device`, readable and set together by `set_state`):
        state: (N, S) the physical state of every env (`STATE_NAMES` lists S), of
            dtype `STATE_DTYPE`.
        elapsed_steps: (N,) int64 steps since each env's last reset.
        current_return: (N,) float32 reward summed since each env's last reset.
    """

    ENV_ID: str
    MAX_EPISODE_STEPS: int
    STATE_NAMES: tuple[str, ...]
    STATE_DTYPE: torch.dtype = torch.float32
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        uniform: Callable[[int], torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.num_envs = num_envs
        # a source of U[0, 1) draws used instead of the generator (see
        # `make_torch_vector_env`)
        self.uniform_source = uniform
        # normalise "cuda" to "cuda:0" so the device check in `step` compares equal
        self.device = torch.empty(0, device=device).device
        self.spec = gym.spec(self.ENV_ID)
        self.max_episode_steps = self.MAX_EPISODE_STEPS
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._generator = torch.Generator(device=self.device)
        self._seed_generator(seed)
        self._make_constants()
        self.state = self._initial_states()  # (N, S), so `step` works before `reset`
        if seed is not None:
            self._seed_generator(seed)  # so that reset() gives what reset(seed) gives
            self.action_space.seed(seed)
            self.observation_space.seed(seed)
        self.elapsed_steps = torch.zeros(
            num_envs, dtype=torch.int64, device=self.device
        )
        self.current_return = torch.zeros(num_envs, device=self.device)  # (N,)

    def _seed_generator(self, seed: int | None) -> None:
        if seed is None:
            self._generator.seed()  # a fresh nondeterministic seed, like NumPy's
            return
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        self._generator.manual_seed(seed)

    # ---- the Gymnasium vector API ------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[torch.Tensor, dict]:
        """Start a new episode in every env.

        Args:
            seed: reseeds the env's generator (None: continue its stream).
            options: not supported; must be None or empty.

        Returns:
            obs (N, *O) float32 and an empty info dict.
        """
        if options:
            raise ValueError(
                f"options are not supported by {type(self).__name__}, got {options!r}"
            )
        if seed is not None:
            self._seed_generator(seed)
        return self.set_state(self._initial_states()), {}

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Advance every env one step, resetting those whose episode ends.

        Args:
            actions: (N,) int64 for a Discrete action space, (N, A) float for a Box
                one (clipped to the bounds inside, as Gymnasium's envs do), on the
                env's device. Discrete values are not range-checked (that would need
                a host sync).

        Returns:
            obs (N, *O) float32, reset ones where an episode ended; rewards (N,)
            float32; terminated, truncated (N,) bool; info with "final_obs",
            "episode_return" and "episode_length" (see the module docstring).
        """
        actions = self._check_actions(actions)
        next_state, rewards, terminated = self._transition(self.state, actions)
        elapsed = self.elapsed_steps + 1
        # Gymnasium's TimeLimit: truncated once the step count reaches the limit, even
        # on the step that also terminates
        truncated = elapsed >= self.max_episode_steps
        ended = terminated | truncated
        returns = self.current_return + rewards
        final_obs = self._observe(next_state)
        self.state = torch.where(ended[:, None], self._initial_states(), next_state)
        info = {
            "final_obs": final_obs,
            "episode_return": torch.where(ended, returns, 0.0),
            "episode_length": torch.where(ended, elapsed, 0),
        }
        self.elapsed_steps = elapsed.masked_fill(ended, 0)
        self.current_return = returns.masked_fill(ended, 0.0)
        return self._observe(self.state), rewards, terminated, truncated, info

    # ---- for tests and experiments -----------------------------------------------

    def set_state(
        self, state: torch.Tensor, elapsed_steps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Put every env in a given state, starting a new episode's bookkeeping.

        Args:
            state: (N, S) physical states, in the order of `STATE_NAMES`.
            elapsed_steps: (N,) steps already taken in the episode (default 0), so a
                test can make the time limit fall on the next step.

        Returns:
            obs (N, *O) float32 of the new states.
        """
        expected = (self.num_envs, len(self.STATE_NAMES))
        if tuple(state.shape) != expected:
            raise ValueError(
                f"state must have shape {expected} (num_envs, {self.STATE_NAMES}), "
                f"got {tuple(state.shape)}"
            )
        self.state = state.to(device=self.device, dtype=self.STATE_DTYPE).clone()
        if elapsed_steps is None:
            self.elapsed_steps = torch.zeros_like(self.elapsed_steps)
        else:
            if tuple(elapsed_steps.shape) != (self.num_envs,):
                raise ValueError(
                    f"elapsed_steps must have shape ({self.num_envs},), "
                    f"got {tuple(elapsed_steps.shape)}"
                )
            self.elapsed_steps = elapsed_steps.to(self.device, torch.int64).clone()
        self.current_return = torch.zeros_like(self.current_return)
        return self._observe(self.state)

    def env_state(self) -> dict[str, torch.Tensor]:
        """Everything that decides the future of these envs (for a checkpoint):
        physical states, step counters, running returns and the generator's state."""
        return {
            "state": self.state.clone(),
            "elapsed_steps": self.elapsed_steps.clone(),
            "current_return": self.current_return.clone(),
            "generator": self._generator.get_state(),
        }

    def load_env_state(self, saved: dict[str, torch.Tensor]) -> None:
        """Restore what `env_state` returned (a resumed run continues exactly)."""
        self.set_state(saved["state"], saved["elapsed_steps"])
        self.current_return = saved["current_return"].to(self.device).clone()
        self._generator.set_state(saved["generator"])

    def _check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(np.asarray(actions), device=self.device)
        if actions.device != self.device:
            raise ValueError(
                f"actions must be on the env's device {self.device}, "
                f"got a tensor on {actions.device}"
            )
        expected = self.action_space.shape
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"actions must have shape {expected} for {self.ENV_ID} with "
                f"num_envs={self.num_envs}, got {tuple(actions.shape)}"
            )
        return actions

    # ---- the physics, defined by each subclass ------------------------------------

    def _uniform(self, low: float, high: float, columns: int) -> torch.Tensor:
        """(N, columns) drawn uniformly from [low, high) by the env's generator, or
        from its `uniform_source` when it has one."""
        if self.uniform_source is not None:
            draws = self.uniform_source(columns).to(self.STATE_DTYPE)  # (N, columns)
            return (
                draws * (high - low) + low
            )  # not in place: the draws are the source's
        out = torch.empty(
            self.num_envs, columns, dtype=self.STATE_DTYPE, device=self.device
        )
        return out.uniform_(low, high, generator=self._generator)

    def _make_constants(self) -> None:
        """Create once the constant tensors `step` needs (a tensor built from Python
        numbers inside `step` would be a host-to-device copy every step)."""

    def _initial_states(self) -> torch.Tensor:
        raise NotImplementedError

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        """(N, *O) float32, a new tensor (never a view of `state`)."""
        raise NotImplementedError
