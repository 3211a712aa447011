"""The batched PyTorch envs against Gymnasium's own, transition by transition.

Gymnasium is the oracle: each test puts `gym.make(env_id)` (its `TimeLimit` wrapper
included) in the very state the batched env is in, takes the same action in both, and
compares what comes out. States are drawn wider than the initial distribution so
that both terminations and truncations happen.
"""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppo_lessons.envs import assert_autoreset_mode
from ppo_lessons.torch_envs import (
    TORCH_ENV_IDS,
    TorchVectorEnv,
    make_torch_vector_env,
)

RTOL = ATOL = 1e-5  # float32 arithmetic against Gymnasium's float64
# (low, high) per state component: wider than the start distribution, so that
# states leave the termination bounds
WIDE_STATES = {
    "CartPole-v1": [(-2.6, 2.6), (-3.0, 3.0), (-0.25, 0.25), (-3.0, 3.0)],
    "Acrobot-v1": [(-math.pi, math.pi)] * 2
    + [(-4 * math.pi, 4 * math.pi)]
    + [(-9 * math.pi, 9 * math.pi)],
    "Pendulum-v1": [(-12.0, 12.0), (-8.0, 8.0)],
    "MountainCarContinuous-v0": [(-1.2, 0.6), (-0.07, 0.07)],
}
WIDE_STATES["CartPoleNoVel-v1"] = WIDE_STATES["CartPole-v1"]  # observes (x, θ)
# [low, high) of each state component at reset, from Gymnasium's `reset` methods
INITIAL_BOUNDS = {
    "CartPole-v1": [(-0.05, 0.05)] * 4,
    "Acrobot-v1": [(-0.1, 0.1)] * 4,
    "Pendulum-v1": [(-math.pi, math.pi), (-1.0, 1.0)],
    "MountainCarContinuous-v0": [(-0.6, -0.4), (0.0, 0.0)],
}
INITIAL_BOUNDS["CartPoleNoVel-v1"] = INITIAL_BOUNDS["CartPole-v1"]


def _uniform_states(env_id: str, n: int, generator: torch.Generator) -> torch.Tensor:
    low, high = torch.tensor(WIDE_STATES[env_id], dtype=torch.float64).T
    return low + (high - low) * torch.rand(n, len(low), generator=generator).double()


def _random_actions(
    envs: TorchVectorEnv, generator: torch.Generator, spread: float = 1.5
) -> torch.Tensor:
    """(N,) valid discrete actions, or (N, A) Box actions up to `spread` times past
    the bounds (to exercise clipping)."""
    space = envs.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(int(space.n), (envs.num_envs,), generator=generator)
    high = float(space.high[0])
    shape = (envs.num_envs, *space.shape)
    return (torch.rand(shape, generator=generator) * 2 - 1) * spread * high


def _gym_action(action: torch.Tensor) -> int | np.ndarray:
    return int(action) if action.ndim == 0 else action.numpy().astype(np.float32)


def _make_gym_env(env_id: str) -> gym.Env:
    env = gym.make(env_id)  # TimeLimit(OrderEnforcing(PassiveEnvChecker(env)))
    assert isinstance(env, gym.wrappers.TimeLimit)
    env.reset(seed=0)
    return env


def _gym_step(env: gym.Env, state: np.ndarray, elapsed: int, action):
    """One step of Gymnasium's env from `state`, `elapsed` steps into the episode."""
    core = env.unwrapped
    core.state = np.array(state, dtype=np.float64)
    if hasattr(core, "steps_beyond_terminated"):
        core.steps_beyond_terminated = None  # CartPole: a fresh, live episode
    env._elapsed_steps = elapsed  # the TimeLimit wrapper's counter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the env checker on out-of-range states
        obs, reward, terminated, truncated, _ = env.step(action)
    return obs, float(reward), terminated, truncated, np.array(core.state, np.float64)


def _assert_states_close(env_id: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    difference = ours - theirs
    if env_id == "Acrobot-v1":  # angles are equal modulo 2π (±π may wrap either way)
        difference[:, :2] = (difference[:, :2] + np.pi) % (2 * np.pi) - np.pi
    excess = np.abs(difference) - (ATOL + RTOL * np.abs(theirs))
    assert (excess <= 0).all(), f"states differ by up to {np.abs(difference).max()}"


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_random_transitions_match_gymnasium(env_id: str) -> None:
    num_envs = 2000
    generator = torch.Generator().manual_seed(1)
    envs = make_torch_vector_env(env_id, num_envs, seed=0)
    states = _uniform_states(env_id, num_envs, generator)
    limit = envs.max_episode_steps
    assert limit == gym.spec(env_id).max_episode_steps
    elapsed = torch.randint(limit, (num_envs,), generator=generator)
    elapsed[::10] = limit - 1  # every tenth env reaches the time limit now
    actions = _random_actions(envs, generator)
    envs.set_state(states, elapsed)
    states = envs.state.double().numpy()  # as stored (float32 for most envs)
    obs, rewards, terminated, truncated, info = envs.step(actions)

    gym_env = _make_gym_env(env_id)
    results = [
        _gym_step(gym_env, state, int(steps), _gym_action(action))
        for state, steps, action in zip(states, elapsed, actions, strict=True)
    ]
    gym_obs, gym_rewards, gym_terminated, gym_truncated, gym_states = map(
        np.array, zip(*results, strict=True)
    )
    np.testing.assert_allclose(info["final_obs"].numpy(), gym_obs, RTOL, ATOL)
    np.testing.assert_allclose(rewards.numpy(), gym_rewards, RTOL, ATOL)
    np.testing.assert_array_equal(terminated.numpy(), gym_terminated)
    np.testing.assert_array_equal(truncated.numpy(), gym_truncated)
    going_on = ~(gym_terminated | gym_truncated)
    _assert_states_close(
        env_id, envs.state.double().numpy()[going_on], gym_states[going_on]
    )
    # both kinds of episode end were exercised, and continuing episodes too
    assert gym_truncated.any() and going_on.any()
    assert gym_terminated.any() or env_id == "Pendulum-v1"  # it never terminates


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_rollouts_match_gymnasium_and_report_episodes(env_id: str) -> None:
    """Along real trajectories with auto-resets: every step matches Gymnasium from
    the same state; ended envs restart from a fresh initial state; the episode
    statistics in info are the sums the test keeps itself."""
    num_envs = 3
    envs = make_torch_vector_env(env_id, num_envs, seed=2)
    obs, _ = envs.reset()
    gym_env = _make_gym_env(env_id)
    generator = torch.Generator().manual_seed(3)
    returns, lengths, episodes = np.zeros(num_envs), np.zeros(num_envs, int), 0
    bounds = torch.tensor(INITIAL_BOUNDS[env_id], dtype=envs.STATE_DTYPE)
    for _ in range(envs.max_episode_steps + 5):
        states, elapsed = envs.state.double().numpy(), envs.elapsed_steps.clone()
        actions = _random_actions(envs, generator)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        for i in range(num_envs):
            expected = _gym_step(
                gym_env, states[i], int(elapsed[i]), _gym_action(actions[i])
            )
            np.testing.assert_allclose(info["final_obs"][i], expected[0], RTOL, ATOL)
            np.testing.assert_allclose(rewards[i], expected[1], RTOL, ATOL)
            assert (bool(terminated[i]), bool(truncated[i])) == expected[2:4]
        returns += rewards.double().numpy()
        lengths += 1
        ended = terminated | truncated
        np.testing.assert_allclose(
            info["episode_return"], np.where(ended, returns, 0), rtol=1e-5, atol=1e-4
        )
        np.testing.assert_array_equal(
            info["episode_length"], np.where(ended, lengths, 0)
        )
        # SAME_STEP autoreset: a fresh start where an episode ended, else final_obs
        torch.testing.assert_close(obs[~ended], info["final_obs"][~ended])
        fresh = envs.state[ended]
        assert ((fresh >= bounds[:, 0]) & (fresh <= bounds[:, 1])).all()
        assert (envs.elapsed_steps[ended] == 0).all()
        returns[ended.numpy()], lengths[ended.numpy()] = 0.0, 0
        episodes += int(ended.sum())
    assert episodes >= num_envs  # every env ended at least once (the time limit)


def test_autoreset_returns_the_reset_obs_and_final_obs() -> None:
    envs = make_torch_vector_env("CartPole-v1", 2, seed=0)
    envs.reset()
    # env 0 falls over on this step; env 1 stays up but hits the time limit
    envs.set_state(
        torch.tensor([[0.0, 0.0, 0.2, 2.0], [0.0, 0.0, 0.0, 0.0]]),
        elapsed_steps=torch.tensor([3, 499]),
    )
    obs, rewards, terminated, truncated, info = envs.step(torch.tensor([1, 1]))
    assert terminated.tolist() == [True, False]
    assert truncated.tolist() == [False, True]
    assert rewards.tolist() == [1.0, 1.0]
    # the final observations are the stepped states, not the reset ones
    assert info["final_obs"][0, 2] > 0.2
    assert info["final_obs"][1, 2] == pytest.approx(0.0)
    assert info["final_obs"][1, 1] > 0.1  # pushed right from rest
    assert (obs.abs() < 0.05).all(), "ended envs must return their reset obs"
    torch.testing.assert_close(obs, envs.state)
    assert info["episode_length"].tolist() == [4, 500]
    # set_state starts the return bookkeeping at 0, so one step's reward each
    assert info["episode_return"].tolist() == [1.0, 1.0]
    assert envs.elapsed_steps.tolist() == [0, 0]
    obs, *_, info = envs.step(torch.tensor([0, 0]))
    assert info["episode_length"].tolist() == [0, 0]


def test_truncation_at_the_time_limit_with_episode_statistics() -> None:
    envs = make_torch_vector_env("Pendulum-v1", 4, seed=0)
    envs.reset()
    total = torch.zeros(4)
    for step in range(1, 201):
        obs, rewards, terminated, truncated, info = envs.step(torch.zeros(4, 1))
        total += rewards
        assert not terminated.any()
        assert bool(truncated.all()) == (step == 200)
    torch.testing.assert_close(info["episode_return"], total)
    assert info["episode_length"].tolist() == [200] * 4
    assert not torch.allclose(obs, info["final_obs"])
    assert (envs.current_return == 0).all()


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_same_seed_same_trajectory_different_seed_different(env_id: str) -> None:
    def rollout(envs: TorchVectorEnv, **reset_kwargs) -> torch.Tensor:
        observations = [envs.reset(**reset_kwargs)[0]]
        generator = torch.Generator().manual_seed(0)  # the same actions each time
        for _ in range(300):  # long enough for auto-resets in CartPole
            observations.append(envs.step(_random_actions(envs, generator))[0])
        return torch.stack(observations)

    envs = make_torch_vector_env(env_id, 8)
    first = rollout(envs, seed=7)
    torch.testing.assert_close(rollout(envs, seed=7), first, rtol=0, atol=0)
    seeded_at_creation = make_torch_vector_env(env_id, 8, seed=7)
    torch.testing.assert_close(rollout(seeded_at_creation), first, rtol=0, atol=0)
    assert not torch.equal(rollout(envs, seed=8)[0], first[0])
    assert not torch.equal(first[0, 0], first[0, 1]), "envs must not share a start"


@pytest.mark.parametrize(
    ("env_id", "outside", "bound"),
    [("Pendulum-v1", 5.0, 2.0), ("Pendulum-v1", -7.0, -2.0)]
    + [("MountainCarContinuous-v0", 3.0, 1.0), ("MountainCarContinuous-v0", -2, -1)],
)
def test_box_actions_are_clipped(env_id: str, outside: float, bound: float) -> None:
    envs = make_torch_vector_env(env_id, 2, seed=0)
    start = torch.tensor([[-0.5, 0.01], [-0.5, 0.01]])
    envs.set_state(start)
    _, rewards, *_ = envs.step(torch.tensor([[outside], [bound]]))
    torch.testing.assert_close(envs.state[0], envs.state[1])
    if env_id == "Pendulum-v1":  # the torque cost uses the clipped torque
        torch.testing.assert_close(rewards[0], rewards[1])
    else:  # Gymnasium's MountainCarContinuous charges 0.1·a² on the raw action
        assert float(rewards[1] - rewards[0]) == pytest.approx(
            0.1 * (outside**2 - bound**2), rel=1e-5
        )


@pytest.mark.parametrize("env_id", ["MountainCar-v0", "Pong-v5", "cartpole"])
def test_unknown_env_id_lists_the_batched_ones(env_id: str) -> None:
    with pytest.raises(ValueError, match=env_id) as error:
        make_torch_vector_env(env_id, 4)
    for known in TORCH_ENV_IDS:
        assert known in str(error.value)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="num_envs"):
        make_torch_vector_env("CartPole-v1", 0)
    envs = make_torch_vector_env("CartPole-v1", 4)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        envs.step(torch.zeros(4, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="state must have shape"):
        envs.set_state(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="options"):
        envs.reset(options={"low": -0.1})
    with pytest.raises(ValueError, match="seed"):
        envs.reset(seed=-1)


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_initial_states_follow_gymnasium_bounds(env_id: str) -> None:
    """Uniform over Gymnasium's ranges: inside them, and filling them out."""
    envs = make_torch_vector_env(env_id, 20_000, seed=0)
    envs.reset()
    ours = envs.state.double()
    gym_env = gym.make(env_id).unwrapped
    theirs = []
    for seed in range(500):
        gym_env.reset(seed=seed)
        theirs.append(np.array(gym_env.state, dtype=np.float64))
    theirs = torch.tensor(np.array(theirs))
    low, high = torch.tensor(INITIAL_BOUNDS[env_id], dtype=torch.float64).T
    width = high - low
    for states in (ours, theirs):  # the bounds are Gymnasium's too
        assert ((states >= low) & (states <= high)).all()
    # min and max near the ends, mean mid-way, spread of a uniform (width / √12)
    assert ((ours.min(0).values - low).abs() <= 1e-3 * width).all()
    assert ((ours.max(0).values - high).abs() <= 1e-3 * width).all()
    assert ((ours.mean(0) - (low + high) / 2).abs() <= 0.01 * width).all()
    assert torch.allclose(ours.std(0), width / math.sqrt(12), rtol=0.02, atol=1e-9)
    obs_space = envs.single_observation_space
    assert obs_space.contains(envs.reset()[0][0].numpy())


@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_vector_env_interface(env_id: str) -> None:
    envs = make_torch_vector_env(env_id, 5, seed=0)
    reference = gym.make(env_id)
    assert isinstance(envs, gym.vector.VectorEnv)
    assert_autoreset_mode(envs)
    assert envs.single_observation_space == reference.observation_space
    assert envs.single_action_space == reference.action_space
    assert envs.observation_space.shape == (5, *reference.observation_space.shape)
    assert envs.action_space.shape[0] == 5
    obs, info = envs.reset(seed=0)
    assert obs.shape == envs.observation_space.shape and obs.dtype == torch.float32
    assert info == {}
    actions = torch.as_tensor(envs.action_space.sample())
    obs, rewards, terminated, truncated, info = envs.step(actions)
    assert obs.shape == envs.observation_space.shape and obs.dtype == torch.float32
    assert rewards.shape == (5,) and rewards.dtype == torch.float32
    assert terminated.dtype == truncated.dtype == torch.bool
    assert terminated.shape == truncated.shape == (5,)
    assert info["final_obs"].shape == obs.shape
    assert info["final_obs"].dtype == torch.float32
    assert info["episode_return"].shape == info["episode_length"].shape == (5,)


@pytest.mark.gpu  # skipped without CUDA (conftest.py)
@pytest.mark.parametrize("env_id", TORCH_ENV_IDS)
def test_cuda_matches_cpu_without_host_syncs(env_id: str) -> None:
    cpu = make_torch_vector_env(env_id, 1000, seed=0)
    cuda = make_torch_vector_env(env_id, 1000, seed=0, device="cuda")
    generator = torch.Generator().manual_seed(0)
    states = _uniform_states(env_id, 1000, generator)
    elapsed = torch.randint(cpu.max_episode_steps, (1000,), generator=generator)
    actions = _random_actions(cpu, generator)
    cpu.set_state(states, elapsed)
    cuda.set_state(states.cuda(), elapsed.cuda())
    expected = cpu.step(actions)
    cuda_actions = actions.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync in step raises
    try:
        outputs = cuda.step(cuda_actions)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert outputs[0].device.type == "cuda"
    # (the reset observations differ: CPU and CUDA generators draw different streams)
    for name, ours, theirs in zip(
        ("rewards", "terminated", "truncated"), outputs[1:4], expected[1:4], strict=True
    ):
        torch.testing.assert_close(ours.cpu(), theirs, msg=name)
    torch.testing.assert_close(
        outputs[4]["final_obs"].cpu(), expected[4]["final_obs"], rtol=RTOL, atol=ATOL
    )
