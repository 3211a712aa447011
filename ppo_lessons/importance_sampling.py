"""Lesson 02 (`02_importance_sampling.ipynb`): reusing samples from an older policy.

For actions drawn from π_old, E_{a∼π_old}[ π_θ(a|s)/π_old(a|s) · A ] = E_{a∼π_θ}[ A ],
so samples collected once can drive several gradient steps. The probability ratio is
computed from log-probabilities, r = exp(log π_θ − log π_old), which stays accurate to
rounding where exp of either log-probability alone would underflow (a trajectory's
product of probabilities) or overflow (a narrow Gaussian's log-density of +110).

At θ = θ_old the ratio is 1 and ∇_θ r = ∇_θ log π_θ, so the surrogate's gradient equals
the policy-gradient estimate (Kakade & Langford, 2002; Schulman et al., 2015, TRPO).

Per-step ratios correct the distribution of the actions, not of the states: the
surrogate still visits the old policy's states. `TabularMDP` and the exact functions
below (values, the discounted state distribution d^π) let lesson 02 verify the
performance-difference identity of Kakade & Langford (2002),

    J(π′) − J(π) = 1/(1 − γ) · E_{s∼d^π′, a∼π′}[ A^π(s, a) ],

and measure how far the surrogate, the same expression with s ∼ d^π, falls from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppo_lessons.validate import require_float_tensors, require_unit_interval

__all__ = [
    "TabularMDP",
    "discounted_state_distribution",
    "expected_return",
    "policy_values",
    "probability_ratio",
    "random_mdp",
    "surrogate_objective",
]


def probability_ratio(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor
) -> torch.Tensor:
    """Probability ratio r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t) = exp(log π_θ − log π_old).

    Args:
        new_log_probs: [T] or [T, N] log π_θ(a_t|s_t), with grad.
        old_log_probs: same shape, log π_old(a_t|s_t) recorded at collection time.

    Returns:
        Same shape as the inputs, the ratios; the gradient flows through
        `new_log_probs` (and through `old_log_probs` only if it carries one).
    """
    require_float_tensors(new_log_probs=new_log_probs, old_log_probs=old_log_probs)
    return torch.exp(new_log_probs - old_log_probs)


def surrogate_objective(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
) -> torch.Tensor:
    """Importance-sampled surrogate L^IS(θ) = mean_t[ r_t(θ) · A_t ], to MAXIMIZE.

    Args:
        new_log_probs: [T] or [T, N] log π_θ(a_t|s_t), with grad.
        old_log_probs: same shape, log π_old(a_t|s_t).
        advantages: same shape, advantage estimates A_t (data, no grad needed).

    Returns:
        [] scalar objective, mean over all elements.
    """
    require_float_tensors(
        new_log_probs=new_log_probs,
        old_log_probs=old_log_probs,
        advantages=advantages,
    )
    return (probability_ratio(new_log_probs, old_log_probs) * advantages).mean()


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP given by its tables (float64), for exact computations.

    transitions[s, a, s′] = p(s′ | s, a); rewards[s, a] = r(s, a), the mean reward;
    initial[s] = ρ₀(s); discount γ in [0, 1).
    """

    transitions: torch.Tensor  # (S, A, S)
    rewards: torch.Tensor  # (S, A)
    initial: torch.Tensor  # (S,)
    gamma: float

    def __post_init__(self) -> None:
        num_states, num_actions = self.rewards.shape
        if self.transitions.shape != (num_states, num_actions, num_states):
            raise ValueError(
                f"transitions must have shape [S, A, S] = {[num_states, num_actions, num_states]}"
                f" to match rewards {list(self.rewards.shape)}, got {list(self.transitions.shape)}"
            )
        if self.initial.shape != (num_states,):
            raise ValueError(
                f"initial must have shape [S] = [{num_states}], got {list(self.initial.shape)}"
            )
        if not 0 <= self.gamma < 1:
            raise ValueError(
                f"gamma must be in [0, 1) for a discounted MDP, got {self.gamma!r}"
            )


def random_mdp(
    num_states: int, num_actions: int, gamma: float, generator: torch.Generator
) -> TabularMDP:
    """A random MDP: Dirichlet(1) next-state and initial distributions, N(0, 1) rewards."""
    require_unit_interval("gamma", gamma)
    shape = (num_states, num_actions, num_states)
    transitions = -torch.rand(shape, generator=generator, dtype=torch.float64).log()
    initial = -torch.rand(num_states, generator=generator, dtype=torch.float64).log()
    rewards = torch.randn(
        num_states, num_actions, generator=generator, dtype=torch.float64
    )
    return TabularMDP(
        transitions / transitions.sum(-1, keepdim=True),
        rewards,
        initial / initial.sum(),
        gamma,
    )


def policy_values(
    mdp: TabularMDP, policy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact V^π [S] and Q^π [S, A] of a policy [S, A] (rows sum to 1).

    V = (I − γ P_π)⁻¹ r_π, with P_π[s, s′] = Σ_a π(a|s) p(s′|s, a) and
    r_π[s] = Σ_a π(a|s) r(s, a); then Q(s, a) = r(s, a) + γ Σ_s′ p(s′|s, a) V(s′).
    """
    state_transitions = torch.einsum("sa,sat->st", policy, mdp.transitions)  # P_π
    mean_rewards = (policy * mdp.rewards).sum(-1)  # (S,) r_π
    identity = torch.eye(len(mean_rewards), dtype=mean_rewards.dtype)
    values = torch.linalg.solve(identity - mdp.gamma * state_transitions, mean_rewards)
    action_values = mdp.rewards + mdp.gamma * mdp.transitions @ values  # (S, A)
    return values, action_values


def discounted_state_distribution(
    mdp: TabularMDP, policy: torch.Tensor
) -> torch.Tensor:
    """d^π [S]: d^π(s) = (1 − γ) Σ_t γ^t P(s_t = s), which sums to 1.

    Solved exactly: d^π = (1 − γ) ρ₀ᵀ (I − γ P_π)⁻¹.
    """
    state_transitions = torch.einsum("sa,sat->st", policy, mdp.transitions)  # P_π
    identity = torch.eye(len(mdp.initial), dtype=mdp.initial.dtype)
    visits = torch.linalg.solve(
        (identity - mdp.gamma * state_transitions).T, mdp.initial
    )
    return (1 - mdp.gamma) * visits


def expected_return(mdp: TabularMDP, policy: torch.Tensor) -> torch.Tensor:
    """J(π) = E_{s₀∼ρ₀}[V^π(s₀)], the expected discounted return, exactly."""
    values, _ = policy_values(mdp, policy)
    return mdp.initial @ values
