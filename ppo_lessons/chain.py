"""Lesson 04 (`04_gae.ipynb`): a chain MDP whose values are known exactly.

States 0, 1, …, K − 1 lie on a line; beyond state K − 1 is the goal, a terminal state.
The agent follows a fixed policy: step right with probability p, else left (left of
state 0 is a wall: the agent stays at 0). Reaching the goal pays `goal_reward`; every
other step pays `step_reward`; every reward carries Gaussian noise of std
`reward_noise`. Because the policy is fixed and the chain is small, the true values
come from one linear solve,

    V = r_π + γ P_π V    ⇔    V = (I − γ P_π)⁻¹ r_π,
    Q(s, a) = r(s, a) + γ (1 − terminal(s, a)) V(s′(s, a)),   A(s, a) = Q(s, a) − V(s),

so any advantage estimator's bias and variance can be measured against the truth. The
expectation of an n-step return that bootstraps from a value table V̂ is exact too
(`expected_n_step_returns`): it separates an estimate's bias from its noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppo_lessons.validate import require_unit_interval

__all__ = [
    "Chain",
    "ChainRollout",
    "exact_action_values",
    "exact_values",
    "expected_n_step_returns",
    "sample_rollout",
]

LEFT, RIGHT = 0, 1


@dataclass(frozen=True)
class Chain:
    """A chain of `num_states` states and a fixed left/right policy."""

    num_states: int = 8
    """K, the number of non-terminal states."""
    p_right: float = 0.7
    """p, the policy's probability of stepping right."""
    goal_reward: float = 1.0
    """mean reward of the step that reaches the goal."""
    step_reward: float = 0.0
    """mean reward of every other step."""
    reward_noise: float = 0.5
    """std of the Gaussian noise added to every reward."""

    def __post_init__(self) -> None:
        if not isinstance(self.num_states, int) or self.num_states < 1:
            raise ValueError(
                f"num_states must be an integer >= 1, got {self.num_states!r}"
            )
        require_unit_interval("p_right", self.p_right)
        if not self.reward_noise >= 0:
            raise ValueError(f"reward_noise must be >= 0, got {self.reward_noise!r}")

    @property
    def policy(self) -> torch.Tensor:
        """[2] π(left), π(right), the same in every state."""
        return torch.tensor([1.0 - self.p_right, self.p_right], dtype=torch.float64)

    def next_state(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """s′ for each (s, a); the goal is state index K."""
        return torch.where(actions == RIGHT, states + 1, (states - 1).clamp(min=0))


def _policy_transitions(chain: Chain) -> tuple[torch.Tensor, torch.Tensor]:
    """(P_π [K, K] with the goal dropped, r_π [K]) under the chain's fixed policy."""
    k = chain.num_states
    transitions = torch.zeros(k, k, dtype=torch.float64)  # (K, K) P_π, goal dropped
    mean_rewards = torch.zeros(k, dtype=torch.float64)  # (K,) r_π(s)
    left_prob, right_prob = chain.policy.tolist()
    for s in range(k):
        transitions[s, max(s - 1, 0)] += left_prob
        if s + 1 < k:
            transitions[s, s + 1] += right_prob
        reward_right = chain.goal_reward if s + 1 == k else chain.step_reward
        mean_rewards[s] = left_prob * chain.step_reward + right_prob * reward_right
    return transitions, mean_rewards


def exact_values(chain: Chain, gamma: float) -> torch.Tensor:
    """[K] float64 V^π(s), by solving (I − γ P_π) V = r_π exactly."""
    gamma = require_unit_interval("gamma", gamma)
    transitions, mean_rewards = _policy_transitions(chain)
    system = torch.eye(chain.num_states, dtype=torch.float64) - gamma * transitions
    return torch.linalg.solve(system, mean_rewards)


def exact_action_values(chain: Chain, gamma: float) -> torch.Tensor:
    """[K, 2] float64 Q^π(s, a) for a = left (0), right (1)."""
    values = torch.cat(
        [exact_values(chain, gamma), torch.zeros(1, dtype=torch.float64)]
    )
    states = torch.arange(chain.num_states)
    q = torch.empty(chain.num_states, 2, dtype=torch.float64)  # (K, 2) Q(s, a)
    for action in (LEFT, RIGHT):
        following = chain.next_state(states, torch.full_like(states, action))
        reward = torch.where(
            following == chain.num_states, chain.goal_reward, chain.step_reward
        )
        q[:, action] = reward + gamma * values[following]  # V(goal) = 0
    return q


def expected_n_step_returns(
    chain: Chain, value_table: torch.Tensor, gamma: float, n: int | None
) -> torch.Tensor:
    """[K, 2] float64 E[G^(n) | s_0 = s, a_0 = a] for a = left (0), right (1), where

        G^(n) = Σ_{k<n} γ^k r_k + γ^n V̂(s_n)   (no bootstrap once the goal is reached)

    bootstraps from `value_table` [K] V̂ after n real rewards; n = None means no
    bootstrap at all (the Monte-Carlo return), whose expectation is Q^π(s, a). So the
    n-step advantage Â^(n) = G^(n) − V̂(s_0) has expectation this minus V̂(s).
    """
    gamma = require_unit_interval("gamma", gamma)
    if n is None:
        return exact_action_values(chain, gamma)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1 or None, got {n!r}")
    transitions, mean_rewards = _policy_transitions(chain)
    # W_m = Σ_{k<m} γ^k P^k r_π + γ^m P^m V̂: the expected return of m more steps
    following = value_table.to(torch.float64).clone()  # (K,) W_0 = V̂
    for _ in range(n - 1):
        following = mean_rewards + gamma * transitions @ following  # W_{m+1}
    following = torch.cat([following, torch.zeros(1, dtype=torch.float64)])  # goal: 0
    states = torch.arange(chain.num_states)
    expected = torch.empty(chain.num_states, 2, dtype=torch.float64)  # (K, 2)
    for action in (LEFT, RIGHT):
        reached = chain.next_state(states, torch.full_like(states, action))
        reward = torch.where(
            reached == chain.num_states, chain.goal_reward, chain.step_reward
        )
        expected[:, action] = reward + gamma * following[reached]
    return expected


@dataclass(frozen=True)
class ChainRollout:
    """N episodes-in-progress stepped T times, time first; flags are 0/1 float64."""

    states: torch.Tensor  # (T, N) s_t
    actions: torch.Tensor  # (T, N) a_t
    rewards: torch.Tensor  # (T, N) r_t
    next_states: torch.Tensor  # (T, N) the state reached (K for the goal), before reset
    terminated: torch.Tensor  # (T, N) reached the goal
    truncated: torch.Tensor  # (T, N) cut by the time limit

    def gae_inputs(self, value_table: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(rewards, values, next_values, terminated, truncated) for `compute_gae`,
        reading V(s) from `value_table` [K] (the goal's value is 0)."""
        table = torch.cat(
            [value_table.to(torch.float64), torch.zeros(1, dtype=torch.float64)]
        )
        values, next_values = table[self.states], table[self.next_states]
        return self.rewards, values, next_values, self.terminated, self.truncated


def sample_rollout(
    chain: Chain,
    num_envs: int,
    num_steps: int,
    generator: torch.Generator,
    start_state: int | None = 0,
    time_limit: int | None = None,
) -> ChainRollout:
    """Step N copies of the chain T times under the fixed policy, resetting on the same
    step an episode ends (to `start_state`, or a uniformly random state if None).

    Args:
        chain: the MDP and policy.
        num_envs: N.
        num_steps: T.
        generator: the source of randomness (results are reproducible from its seed).
        start_state: where episodes start; None for a uniformly random state.
        time_limit: cut an episode after this many steps (`truncated`); None for none.
    """
    k = chain.num_states

    def reset_states(count: int) -> torch.Tensor:
        if start_state is None:
            return torch.randint(0, k, (count,), generator=generator)
        return torch.full((count,), start_state, dtype=torch.long)

    state, elapsed = reset_states(num_envs), torch.zeros(num_envs, dtype=torch.long)
    columns: dict[str, list[torch.Tensor]] = {
        name: [] for name in ChainRollout.__annotations__
    }
    for _ in range(num_steps):
        action = (
            torch.rand(num_envs, generator=generator, dtype=torch.float64)
            < chain.p_right
        ).long()
        following = chain.next_state(state, action)
        terminated = following == k
        elapsed = elapsed + 1
        truncated = (
            ~terminated & (elapsed >= time_limit)
            if time_limit
            else torch.zeros_like(terminated)
        )
        mean = torch.where(terminated, chain.goal_reward, chain.step_reward)
        noise = chain.reward_noise * torch.randn(
            num_envs, generator=generator, dtype=torch.float64
        )
        for name, value in zip(
            columns,
            (state, action, mean + noise, following, terminated, truncated),
            strict=True,
        ):
            columns[name].append(value)
        ended = terminated | truncated
        state = torch.where(ended, reset_states(num_envs), following)
        elapsed = torch.where(ended, 0, elapsed)
    stacked = {name: torch.stack(values) for name, values in columns.items()}
    for flag in ("terminated", "truncated"):
        stacked[flag] = stacked[flag].to(torch.float64)
    return ChainRollout(**stacked)
