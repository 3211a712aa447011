"""Checks of lesson 07's rollout (exercise 7.1).

`check_collect_rollout` runs the student's rollout on a scripted vector env (known
terminations, truncations and final observations) with a scripted policy, and
compares every row of the buffer with what the contract says it must hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ppo_lessons.buffer import RolloutBuffer
from ppo_lessons.checks.harness import call, exercise
from ppo_lessons.rollout import collect_rollout

__all__ = ["call_student", "check_collect_rollout"]

# ---------------------------------------------------------------- 7.1 the rollout

EVENTS = {  # (env, step) -> how the episode of that env ends at that step
    (0, 1): "terminated",
    (0, 4): "terminated",
    (1, 2): "truncated",
    (2, 0): "truncated",
    (2, 3): "terminated",
}


class ScriptedEnvs:
    """N scripted envs in the shape of `ppo_lessons.envs.RolloutEnvs` (tensors in and
    out, SAME_STEP autoreset): observation = 100·(env+1) + 10·episode + step within
    the episode; reward = 1 + env + 0.1·t; episodes end as `EVENTS` says."""

    def __init__(self, num_envs: int, action_shape: tuple[int, ...]) -> None:
        self.num_envs = num_envs
        self.action_shape = action_shape
        self.t = 0
        self.episode = torch.zeros(num_envs)
        self.k = torch.zeros(num_envs)
        self.received: list[torch.Tensor] = []

    def current(self) -> torch.Tensor:
        n = torch.arange(self.num_envs, dtype=torch.float32)
        return (100 * (n + 1) + 10 * self.episode + self.k)[:, None]  # (N, 1)

    def reset(self, *args: object, **kwargs: object) -> None:
        raise AssertionError(
            "collect_rollout reset the envs: the trainer resets them once, and each "
            "rollout continues where the last one stopped (from `obs`)"
        )

    def step(self, actions: torch.Tensor):
        if not isinstance(actions, torch.Tensor) or tuple(actions.shape) != (
            self.num_envs,
            *self.action_shape,
        ):
            raise AssertionError(
                "envs.step must get the actions agent.sample returned, a tensor of "
                f"shape {[self.num_envs, *self.action_shape]}; got "
                f"{getattr(actions, 'shape', type(actions).__name__)}"
            )
        self.received.append(actions.detach().clone())
        n = torch.arange(self.num_envs)
        ends = [EVENTS.get((i, self.t)) for i in range(self.num_envs)]
        terminated = torch.tensor([e == "terminated" for e in ends])
        truncated = torch.tensor([e == "truncated" for e in ends])
        rewards = 1.0 + n.float() + 0.1 * self.t
        self.k += 1
        final = self.current()  # (N, 1) the observation each env reached
        done = terminated | truncated
        self.episode += done.float()
        self.k[done] = 0  # SAME_STEP autoreset: the returned obs starts a new episode
        self.t += 1
        return self.current(), rewards, terminated, truncated, {"final_obs": final}


class ScriptedAgent:
    """A policy and critic whose outputs identify their inputs: actions are random
    (from the generator) so a second draw differs; log π = −(action + obs / 1000);
    V(s) = 0.5 + obs / 100. Outputs carry gradients, as a network's would."""

    def __init__(self, action_shape: tuple[int, ...]) -> None:
        self.action_shape = action_shape
        self.weight = torch.ones((), requires_grad=True)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return obs * self.weight

    def sample(self, policy_out: torch.Tensor, generator=None, deterministic=False):
        N = policy_out.shape[0]
        if self.action_shape:
            actions = torch.randn((N, *self.action_shape), generator=generator)
            log_probs = -(actions.sum(-1) + policy_out[:, 0] / 1000)
        else:
            actions = torch.randint(0, 5, (N,), generator=generator)
            log_probs = -(actions.float() + policy_out[:, 0] / 1000)
        return actions, log_probs

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return 0.5 + obs.reshape(obs.shape[0], -1)[:, 0] * self.weight / 100


@dataclass
class RolloutCase:
    num_envs: int
    num_steps: int
    action_shape: tuple[int, ...]
    envs: ScriptedEnvs = field(init=False)
    agent: ScriptedAgent = field(init=False)
    buffer: RolloutBuffer = field(init=False)

    def __post_init__(self) -> None:
        self.envs = ScriptedEnvs(self.num_envs, self.action_shape)
        self.agent = ScriptedAgent(self.action_shape)
        self.buffer = RolloutBuffer(
            self.num_steps, self.num_envs, (1,), self.action_shape,
            discrete=not self.action_shape,
        )  # fmt: skip

    def run(self, fn: Callable, generator_seed: int = 7):
        generator = torch.Generator().manual_seed(generator_seed)
        obs = self.envs.current()
        return fn(self.agent, self.envs, self.buffer, obs, generator), obs


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double()))


def _rows(where: torch.Tensor) -> str:
    t, n = where.nonzero()[0].tolist()
    return f"(first at step t={t}, env {n})"


def compare_rollout(case: RolloutCase, expected: RolloutCase, returned: object) -> None:
    """Raise AssertionError naming the first thing the student's buffer gets wrong."""
    got, want, T = case.buffer, expected.buffer, case.num_steps
    if len(case.envs.received) != T:
        raise AssertionError(
            f"your rollout called envs.step {len(case.envs.received)} times; it must "
            f"step exactly buffer.num_steps = {T} times (one row per step)"
        )
    stored = {k: getattr(got, k) for k in ("obs", "log_probs", "values", "next_values")}
    if any(t.requires_grad for t in stored.values()):
        raise AssertionError(
            "the buffer's tensors carry gradients: collect the rollout under "
            "torch.no_grad() (or store .detach()ed values). The stored log-probs and "
            "values are data for the update, not part of its graph."
        )
    if not isinstance(returned, torch.Tensor) or not _same(
        returned, case.envs.current()
    ):
        raise AssertionError(
            "collect_rollout must return the observations the next rollout starts "
            "from: the obs the last envs.step returned"
        )
    if not _same(got.obs, want.obs):
        late = _same(got.obs[:-1], want.obs[1:])
        raise AssertionError(
            "buffer.obs[t] is not the observation the action of step t was chosen from"
            + (
                ": yours are one step late (the obs envs.step returned). Store obs "
                "BEFORE stepping, then move on to the new one"
                if late
                else "; store the obs you pass to agent.policy, before envs.step"
            )
        )
    received = torch.stack(case.envs.received)
    if not _same(got.actions.to(received.dtype), received):
        raise AssertionError(
            "buffer.actions must hold the very actions you passed to envs.step (as "
            "taken): sample once per step and store that sample"
        )
    if not _same(got.actions.to(received.dtype), want.actions.to(received.dtype)):
        raise AssertionError(
            "your actions differ from agent.sample(agent.policy(obs), generator): draw "
            "them with the generator you are given (it makes a run reproducible), once "
            "per step"
        )
    _compare_log_probs_and_rewards(got, want)
    _compare_episode_ends(got, want)
    _compare_values(case, got, want)


def _compare_log_probs_and_rewards(got: RolloutBuffer, want: RolloutBuffer) -> None:
    if not _same(got.log_probs, want.log_probs):
        raise AssertionError(
            "buffer.log_probs[t] must be the log π(a_t|s_t) that agent.sample returned "
            "together with the actions of step t (the old policy's, for the ratio)"
        )
    if not _same(got.rewards, want.rewards):
        shifted = _same(got.rewards[1:], want.rewards[:-1])
        raise AssertionError(
            "buffer.rewards[t] must be the reward envs.step returned at step t"
            + (" (yours are one row late)" if shifted else "")
        )


def _compare_episode_ends(got: RolloutBuffer, want: RolloutBuffer) -> None:
    term, trunc = got.terminated.bool(), got.truncated.bool()
    w_term, w_trunc = want.terminated.bool(), want.truncated.bool()
    if torch.equal(term, w_term) and torch.equal(trunc, w_trunc):
        return
    if torch.equal(term, w_trunc) and torch.equal(trunc, w_term):
        raise AssertionError("terminated and truncated are swapped in your buffer")
    done = w_term | w_trunc
    if torch.equal(term, done) or torch.equal(trunc, done):
        raise AssertionError(
            "terminated and truncated are merged into one flag: store them apart. A "
            "truncation (time limit) still bootstraps from V(s_{t+1}); a termination "
            "does not"
        )
    wrong = (term != w_term) | (trunc != w_trunc)
    raise AssertionError(
        "buffer.terminated[t] / truncated[t] must be the flags envs.step returned at "
        f"step t {_rows(wrong)}"
    )


def _compare_values(case: RolloutCase, got: RolloutBuffer, want: RolloutBuffer) -> None:
    if not _same(got.reached_obs, want.reached_obs):
        ended = want.terminated | want.truncated
        reset_used = _same(got.reached_obs[~ended], want.reached_obs[~ended])
        raise AssertionError(
            "buffer.reached_obs[t] must be the observation step t reached: "
            + (
                "where an episode ended, that is info['final_obs'], not the reset "
                "observation envs.step returned"
                if reset_used
                else "info['final_obs'] (the obs after step t; the final one where an "
                "episode ended)"
            )
        )
    if not _same(got.values, want.values):
        swapped = _same(got.values, want.next_values)
        raise AssertionError(
            "buffer.values[t] must be V(s_t) of buffer.obs[t]"
            + (" (yours are V of the reached observations)" if swapped else "")
        )
    if not _same(got.next_values, want.next_values):
        ended = want.truncated
        reset = case.agent.value(got.obs.reshape(-1, 1)).reshape(got.obs.shape[:2])
        if ended.any() and _same(
            got.next_values[:-1][ended[:-1]], reset[1:][ended[:-1]]
        ):
            raise AssertionError(
                "at a time-limit truncation your next_values bootstrap from the reset "
                "observation of the next episode; V(s_{t+1}) must be V of "
                "info['final_obs'], the observation the episode actually reached"
            )
        raise AssertionError(
            "buffer.next_values[t] must be V(s_{t+1}) of buffer.reached_obs[t]"
        )


ROLLOUT_CASES = ((3, 6, ()), (3, 6, (2,)))  # (N, T, action shape): Discrete, Box


def rollout_cases(fn: Callable, call: Callable) -> int:
    """Run `fn` on every case (twice in a row: the second rollout continues from the
    first's returned observations); `call(fn, args, where)` is the harness's call."""
    count = 0
    for N, T, action_shape in ROLLOUT_CASES:
        kind = "Box" if action_shape else "Discrete"
        case, expected = (
            RolloutCase(N, T, action_shape),
            RolloutCase(N, T, action_shape),
        )
        generator = torch.Generator().manual_seed(7)
        generator_ref = torch.Generator().manual_seed(7)
        obs, obs_ref = case.envs.current(), expected.envs.current()
        for round_ in (1, 2):
            where = f"collecting rollout {round_} of {N} envs x {T} steps ({kind})"
            returned = call(
                fn, (case.agent, case.envs, case.buffer, obs, generator), where
            )
            obs_ref = collect_rollout(
                expected.agent, expected.envs, expected.buffer, obs_ref, generator_ref
            )
            compare_rollout(case, expected, returned)
            case.envs.received.clear()
            expected.envs.received.clear()
            obs = returned
            count += 1
    return count


# ---------------------------------------------------------------- the check


def call_student(fn: Callable, args: tuple, where: str) -> object:
    """The harness's call, returning only the function's result."""
    return call(fn, args, where)[0]


@exercise("collect_rollout")
def check_collect_rollout(fn: Callable, extra_cases: list[dict]) -> int:
    """Check a rollout `fn(agent, envs, buffer, obs, generator) -> obs` on scripted
    envs (episodes ending by termination and by truncation at known steps) with a
    scripted policy: every row of the buffer, in Discrete and Box action spaces, two
    rollouts in a row."""
    return rollout_cases(fn, call_student)
