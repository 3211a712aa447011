"""Classic-control environments stepped as batched PyTorch tensor operations.

CartPole-v1 (and CartPoleNoVel-v1, its observation without the velocities), Acrobot-v1,
Pendulum-v1 and MountainCarContinuous-v0 with Gymnasium's
dynamics, rewards, termination rules, time limits and initial-state distributions,
but all N copies live in one [N, S] state tensor on one device (CPU or CUDA). A step
is a few dozen elementwise tensor operations for all N envs at once, and nothing in
`step` reads a value back to the host, so a rollout on a GPU never waits for the CPU
(the PureJaxRL recipe, here in PyTorch).

The interface is Gymnasium's vector API with `AutoresetMode.SAME_STEP`, the mode
`ppo_lessons.envs` uses, except that everything going in and out is a torch tensor
on the env's device:

    obs, info = envs.reset(seed=0)                     # obs (N, *O) float32
    obs, rewards, terminated, truncated, info = envs.step(actions)
    info["final_obs"]       # (N, *O) the observation each env reached this step
    info["episode_return"]  # (N,) total reward of the episode that just ended, else 0
    info["episode_length"]  # (N,) its length in steps, else 0

Where an episode ended (`terminated | truncated`), `obs` is already the first
observation of the next episode; `final_obs` holds the true last observation (needed
to bootstrap through a time-limit truncation) and equals `obs` everywhere else.

Randomness (the initial states) comes from one `torch.Generator` on the device,
seeded by `reset(seed=s)`: the same seed and actions give the same trajectories.
The draws do not reproduce Gymnasium's NumPy streams; the distributions are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from ppo_lessons.envs import make_vector_env, resolve_device
from ppo_lessons.torch_vector_env import TorchVectorEnv

__all__ = [
    "TORCH_ENV_IDS",
    "TorchAcrobot",
    "TorchCartPole",
    "TorchCartPoleNoVel",
    "TorchMountainCarContinuous",
    "TorchPendulum",
    "TorchVectorEnv",
    "cartpole_step",
    "make_torch_vector_env",
    "make_training_envs",
]

PI = math.pi
TWO_PI = 2.0 * math.pi


def wrap_angle(theta: torch.Tensor) -> torch.Tensor:
    """θ mapped into [−π, π) by adding a multiple of 2π; values already inside the
    range come back unchanged (bit for bit), as with Gymnasium's `wrap`."""
    return theta - TWO_PI * torch.floor((theta + PI) / TWO_PI)


class TorchCartPole(TorchVectorEnv):
    """CartPole-v1 (Barto, Sutton & Anderson, 1983), Gymnasium's Euler integration.

    State = observation = (x, ẋ, θ, θ̇); push left (action 0) or right (1) with 10 N.
    The physics of one step is the pure function `cartpole_step` (its docstring has
    the equations). Reward +1 every step; terminated when |x'| > 2.4 or |θ'| > 12°;
    truncated at 500 steps; initial state uniform in [−0.05, 0.05)⁴.
    """

    ENV_ID = "CartPole-v1"
    MAX_EPISODE_STEPS = 500
    STATE_NAMES = ("x", "x_dot", "theta", "theta_dot")
    GRAVITY, MASS_CART, MASS_POLE, HALF_LENGTH = 9.8, 1.0, 0.1, 0.5
    FORCE_MAG, TAU = 10.0, 0.02
    THETA_THRESHOLD = 12 * 2 * math.pi / 360
    X_THRESHOLD = 2.4
    TOTAL_MASS = MASS_POLE + MASS_CART
    POLEMASS_LENGTH = MASS_POLE * HALF_LENGTH

    _high = np.array([4.8, np.inf, 2 * THETA_THRESHOLD, np.inf], dtype=np.float32)
    single_observation_space = spaces.Box(-_high, _high, dtype=np.float32)
    single_action_space = spaces.Discrete(2)

    def _initial_states(self) -> torch.Tensor:
        return self._uniform(-0.05, 0.05, 4)

    def _transition(self, state, actions):
        return cartpole_step(state, actions)

    def _observe(self, state):
        return state.clone()


class TorchCartPoleNoVel(TorchCartPole):
    """CartPoleNoVel-v1: CartPole-v1 observing only (x, θ), the velocities hidden
    (`ppo_lessons.envs.NoVelocity`; lesson 11)."""

    ENV_ID = "CartPoleNoVel-v1"
    _high = np.array([4.8, 2 * TorchCartPole.THETA_THRESHOLD], dtype=np.float32)
    single_observation_space = spaces.Box(-_high, _high, dtype=np.float32)

    def _observe(self, state):
        return state[:, 0::2].clone()  # (x, θ): a slice, no index tensor to copy


def cartpole_step(
    state: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of CartPole-v1 for N envs at once, as tensor operations (Exercise 9.1).

    Gymnasium's dynamics (Florian, 2007, with the pole's half-length l = 0.5 m,
    g = 9.8, m_c = 1.0, m_p = 0.1, τ = 0.02 s) and its explicit Euler update, in
    which every component moves with the derivatives at the OLD state:
        F      = +10 N if the action is 1 (push right), −10 N if it is 0
        temp   = (F + m_p l θ̇² sin θ) / (m_c + m_p)
        θ̈      = (g sin θ − cos θ · temp) / (l (4/3 − m_p cos²θ / (m_c + m_p)))
        ẍ      = temp − m_p l θ̈ cos θ / (m_c + m_p)
        (x', ẋ', θ', θ̇') = (x, ẋ, θ, θ̇) + τ · (ẋ, ẍ, θ̇, θ̈)
        reward = 1 on every step, the terminating one included
        terminated = |x'| > 2.4 or |θ'| > 12° (= 12·2π/360 rad), from the NEW state

    Args:
        state: (N, 4) float, the columns (x, ẋ, θ, θ̇) of every env.
        actions: (N,) int64 in {0, 1}.

    Returns:
        (next_state, rewards, terminated): (N, 4) with the dtype and device of
        `state`; (N,) ones of that dtype; (N,) bool. The input is not changed, and
        nothing is read back to the host (the step runs on a GPU without a sync).
    """
    env = TorchCartPole  # the constants, as Gymnasium names them
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = torch.where(actions == 1, env.FORCE_MAG, -env.FORCE_MAG)
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = (force + env.POLEMASS_LENGTH * theta_dot.square() * sin) / env.TOTAL_MASS
    theta_acc = (env.GRAVITY * sin - cos * temp) / (
        env.HALF_LENGTH * (4.0 / 3.0 - env.MASS_POLE / env.TOTAL_MASS * cos.square())
    )
    x_acc = temp - env.POLEMASS_LENGTH / env.TOTAL_MASS * theta_acc * cos
    derivative = torch.stack((x_dot, x_acc, theta_dot, theta_acc), dim=1)
    next_state = torch.add(state, derivative, alpha=env.TAU)  # explicit Euler
    # Python-number bounds: compared in the state's dtype, no host-to-device copy
    terminated = (next_state[:, 0].abs() > env.X_THRESHOLD) | (
        next_state[:, 2].abs() > env.THETA_THRESHOLD
    )
    rewards = torch.ones_like(theta)
    return next_state, rewards, terminated


class TorchAcrobot(TorchVectorEnv):
    """Acrobot-v1 (Sutton, 1996; the "book" dynamics), one RK4 step of dt = 0.2 s.

    State (θ₁, θ₂, θ̇₁, θ̇₂); observation (cos θ₁, sin θ₁, cos θ₂, sin θ₂, θ̇₁, θ̇₂);
    actions 0, 1, 2 apply torque −1, 0, +1 at the middle joint. After the RK4 step
    the angles are wrapped into [−π, π] and the velocities clipped to ±4π and ±9π.
    Reward −1 per step and 0 on the step that terminates, when the tip is above the
    bar: −cos θ₁ − cos(θ₁ + θ₂) > 1. Truncated at 500 steps; initial state uniform in
    [−0.1, 0.1)⁴.

    The state is float64, as in Gymnasium's `rk4`: in float32 the four stages lose
    up to 5e-4 rad/s on the fastest states (5e-7 in float64). It costs nothing
    while per-operation overhead dominates (N ≲ 1000 on a CPU, any N on a GPU) and
    about 2x at N = 16384 on a CPU; observations are float32 as everywhere.
    """

    ENV_ID = "Acrobot-v1"
    MAX_EPISODE_STEPS = 500
    STATE_NAMES = ("theta1", "theta2", "theta1_dot", "theta2_dot")
    STATE_DTYPE = torch.float64
    DT = 0.2
    LINK_LENGTH_1, LINK_MASS_1, LINK_MASS_2 = 1.0, 1.0, 1.0
    LINK_COM_POS_1, LINK_COM_POS_2, LINK_MOI = 0.5, 0.5, 1.0
    GRAVITY = 9.8
    MAX_VEL_1, MAX_VEL_2 = 4 * math.pi, 9 * math.pi

    _high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
    single_observation_space = spaces.Box(-_high, _high, dtype=np.float32)
    single_action_space = spaces.Discrete(3)

    def _make_constants(self) -> None:
        self._max_vel = torch.tensor(
            [self.MAX_VEL_1, self.MAX_VEL_2], dtype=self.STATE_DTYPE, device=self.device
        )

    def _initial_states(self) -> torch.Tensor:
        return self._uniform(-0.1, 0.1, 4)

    def _derivative(self, state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """(N, 4) ds/dt of the double pendulum (Sutton & Barto's equations)."""
        m1, m2 = self.LINK_MASS_1, self.LINK_MASS_2
        l1, lc1, lc2 = self.LINK_LENGTH_1, self.LINK_COM_POS_1, self.LINK_COM_POS_2
        inertia, g = self.LINK_MOI, self.GRAVITY
        theta1, theta2, dtheta1, dtheta2 = state.unbind(1)
        cos2 = torch.cos(theta2)
        coupling = (m2 * l1 * lc2) * torch.sin(theta2)  # m₂ l₁ l_c2 sin θ₂
        d1 = (m1 * lc1**2 + m2 * (l1**2 + lc2**2) + 2 * inertia) + (
            2 * m2 * l1 * lc2
        ) * cos2
        d2 = (m2 * lc2**2 + inertia) + (m2 * l1 * lc2) * cos2
        # Gymnasium writes cos(θ − π/2); sin θ is the same and one operation fewer
        phi2 = (m2 * lc2 * g) * torch.sin(theta1 + theta2)
        phi1 = (
            ((m1 * lc1 + m2 * l1) * g) * torch.sin(theta1)
            + phi2
            - torch.add(dtheta2, dtheta1, alpha=2.0) * dtheta2 * coupling
        )
        d2_over_d1 = d2 / d1
        ddtheta2 = (torque + d2_over_d1 * phi1 - dtheta1.square() * coupling - phi2) / (
            (m2 * lc2**2 + inertia) - d2_over_d1 * d2
        )
        ddtheta1 = (d2 * ddtheta2 + phi1) / -d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=1)

    def _transition(self, state, actions):
        torque = actions - 1.0  # AVAIL_TORQUE = [-1, 0, +1]
        # classic RK4 over one step, as Gymnasium's `rk4(derivs, y0, [0, dt])`
        half = self.DT / 2.0
        k1 = self._derivative(state, torque)
        k2 = self._derivative(torch.add(state, k1, alpha=half), torque)
        k3 = self._derivative(torch.add(state, k2, alpha=half), torque)
        k4 = self._derivative(torch.add(state, k3, alpha=self.DT), torque)
        slope = (k1 + k4).add_(k2 + k3, alpha=2.0)
        next_state = torch.add(state, slope, alpha=self.DT / 6.0)
        max_vel = self._max_vel
        next_state = torch.cat(
            (wrap_angle(next_state[:, :2]), next_state[:, 2:].clamp(-max_vel, max_vel)),
            dim=1,
        )
        theta1, theta2 = next_state[:, 0], next_state[:, 1]
        terminated = -torch.cos(theta1) - torch.cos(theta1 + theta2) > 1.0
        rewards = torch.where(terminated, 0.0, -1.0)
        return next_state, rewards, terminated

    def _observe(self, state):
        angles = state[:, :2]
        cos, sin = torch.cos(angles), torch.sin(angles)
        obs = torch.stack(
            (cos[:, 0], sin[:, 0], cos[:, 1], sin[:, 1], state[:, 2], state[:, 3]),
            dim=1,
        )
        return obs.to(torch.float32)


class TorchPendulum(TorchVectorEnv):
    """Pendulum-v1: swing a pendulum up and hold it, torque u ∈ [−2, 2].

    State (θ, θ̇) with θ = 0 upright (not wrapped, as in Gymnasium); observation
    (cos θ, sin θ, θ̇). With u clipped to ±2 and g = 10, m = l = 1, dt = 0.05:
        r = −(normalize(θ)² + 0.1 θ̇² + 0.001 u²)      (from the state before the step)
        θ̇' = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, −8, 8),   θ' = θ + θ̇' dt
    Never terminates; truncated at 200 steps; θ uniform in [−π, π), θ̇ in [−1, 1).
    """

    ENV_ID = "Pendulum-v1"
    MAX_EPISODE_STEPS = 200
    STATE_NAMES = ("theta", "theta_dot")
    MAX_SPEED, MAX_TORQUE, DT, GRAVITY, MASS, LENGTH = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0

    _high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
    single_observation_space = spaces.Box(-_high, _high, dtype=np.float32)
    single_action_space = spaces.Box(-MAX_TORQUE, MAX_TORQUE, (1,), dtype=np.float32)

    def _make_constants(self) -> None:
        self._initial_high = torch.tensor([math.pi, 1.0], device=self.device)

    def _initial_states(self) -> torch.Tensor:
        return self._uniform(-1.0, 1.0, 2).mul_(self._initial_high)

    def _transition(self, state, actions):
        theta, theta_dot = state.unbind(1)
        u = actions[:, 0].to(torch.float32).clamp(-self.MAX_TORQUE, self.MAX_TORQUE)
        costs = (
            wrap_angle(theta).square() + 0.1 * theta_dot.square() + 0.001 * u.square()
        )
        g, m, length, dt = self.GRAVITY, self.MASS, self.LENGTH, self.DT
        angular_acc = (3 * g / (2 * length)) * torch.sin(theta) + (
            3.0 / (m * length**2)
        ) * u
        next_theta_dot = torch.add(theta_dot, angular_acc, alpha=dt).clamp(
            -self.MAX_SPEED, self.MAX_SPEED
        )
        next_theta = torch.add(theta, next_theta_dot, alpha=dt)
        next_state = torch.stack((next_theta, next_theta_dot), dim=1)
        terminated = torch.zeros_like(theta, dtype=torch.bool)
        return next_state, -costs, terminated

    def _observe(self, state):
        theta = state[:, 0]
        return torch.stack((torch.cos(theta), torch.sin(theta), state[:, 1]), dim=1)


class TorchMountainCarContinuous(TorchVectorEnv):
    """MountainCarContinuous-v0 (Moore, 1990): drive an underpowered car up a hill.

    State = observation = (position, velocity); force = clip(a, −1, 1):
        v' = clip(v + 0.0015 force − 0.0025 cos(3 p), −0.07, 0.07)
        p' = clip(p + v', −1.2, 0.6),   v' = 0 if p' = −1.2 and v' < 0 (the left wall)
    Terminated when p' ≥ 0.45 and v' ≥ 0; reward 100 on that step, minus 0.1 a² on
    every step, where a is the action as given, unclipped (Gymnasium's reward does
    not clip it). Truncated at 999 steps; p uniform in [−0.6, −0.4), v = 0.
    """

    ENV_ID = "MountainCarContinuous-v0"
    MAX_EPISODE_STEPS = 999
    STATE_NAMES = ("position", "velocity")
    MIN_ACTION, MAX_ACTION = -1.0, 1.0
    MIN_POSITION, MAX_POSITION, MAX_SPEED = -1.2, 0.6, 0.07
    GOAL_POSITION, GOAL_VELOCITY, POWER = 0.45, 0.0, 0.0015

    single_observation_space = spaces.Box(
        np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32),
        np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = spaces.Box(MIN_ACTION, MAX_ACTION, (1,), dtype=np.float32)

    def _initial_states(self) -> torch.Tensor:
        position = self._uniform(-0.6, -0.4, 1)
        return torch.cat((position, torch.zeros_like(position)), dim=1)

    def _transition(self, state, actions):
        position, velocity = state.unbind(1)
        action = actions[:, 0].to(torch.float32)
        force = action.clamp(self.MIN_ACTION, self.MAX_ACTION)
        velocity = (
            velocity + self.POWER * force - 0.0025 * torch.cos(3.0 * position)
        ).clamp(-self.MAX_SPEED, self.MAX_SPEED)
        position = (position + velocity).clamp(self.MIN_POSITION, self.MAX_POSITION)
        # inelastic collision with the left wall
        velocity = torch.where(
            position == self.MIN_POSITION, velocity.clamp(min=0.0), velocity
        )
        terminated = (position >= self.GOAL_POSITION) & (velocity >= self.GOAL_VELOCITY)
        rewards = torch.where(terminated, 100.0, 0.0) - 0.1 * action.square()
        return torch.stack((position, velocity), dim=1), rewards, terminated

    def _observe(self, state):
        return state.clone()


_ENV_CLASSES: dict[str, type[TorchVectorEnv]] = {
    cls.ENV_ID: cls
    for cls in (
        TorchCartPole,
        TorchCartPoleNoVel,
        TorchAcrobot,
        TorchPendulum,
        TorchMountainCarContinuous,
    )
}
TORCH_ENV_IDS: tuple[str, ...] = tuple(_ENV_CLASSES)


def make_torch_vector_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    uniform: Callable[[int], torch.Tensor] | None = None,
) -> TorchVectorEnv:
    """N copies of `env_id` stepped as tensor operations on `device`.

    Args:
        env_id: one of `TORCH_ENV_IDS`, e.g. "CartPole-v1".
        num_envs: N >= 1.
        seed: seeds the env's generator (and its action space), so `reset()` with no
            seed is reproducible; None draws a fresh seed.
        device: where the states live and every returned tensor is, e.g. "cuda".
        uniform: optional source of the initial states' randomness instead of the
            generator: `uniform(columns)` returns (N, columns) draws from U[0, 1) on
            `device` (e.g. one random stream per group of envs, as
            `ppo_lessons.population` uses for its members).
    """
    if env_id not in _ENV_CLASSES:
        raise ValueError(
            f"env_id {env_id!r} has no batched PyTorch version; "
            f"choose one of {', '.join(TORCH_ENV_IDS)} "
            "(or use ppo_lessons.envs.make_vector_env for any Gymnasium id)"
        )
    return _ENV_CLASSES[env_id](num_envs, seed=seed, device=device, uniform=uniform)


def make_training_envs(
    env_id: str,
    num_envs: int,
    backend: str = "gymnasium",
    device: str = "cpu",
    seed: int | None = None,
    asynchronous: bool = False,
) -> gym.vector.VectorEnv:
    """The vector env of a run (the one place the env backend is chosen): Gymnasium's
    vector env (`ppo_lessons.envs.make_vector_env`), or with `backend="torch"` the
    batched tensor env on `device`, whose inputs and outputs are tensors."""
    if backend == "torch":
        return make_torch_vector_env(
            env_id, num_envs, seed=seed, device=resolve_device(device)
        )
    return make_vector_env(env_id, num_envs, asynchronous=asynchronous)
