"""Checks of lesson 07: the rollout (exercise 7.1) and the update (exercise 7.2).

`check_collect_rollout` runs the student's rollout on a scripted vector env (known
terminations, truncations and final observations) with a scripted policy, and
compares every row of the buffer with what the contract says it must hold.

`check_ppo_update` first tests the update's mechanics on one batch (every sample used
once per epoch in minibatches of M, the epochs, the optimizer steps, gradient clipping,
the target-KL stop, the metrics it returns), then climbs the probe ladder
(`ppo_lessons.probes`) with it: tiny tasks that each isolate one part of PPO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ppo_lessons.buffer import Batch, RolloutBuffer
from ppo_lessons.checks.harness import call, exercise
from ppo_lessons.networks import ActorCritic
from ppo_lessons.probes import probe_ladder
from ppo_lessons.rollout import collect_rollout
from ppo_lessons.update import MINIBATCH_METRICS, UpdateSettings, ppo_loss

__all__ = ["check_collect_rollout", "check_ppo_update"]

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


# ---------------------------------------------------------------- 7.2 the update


def update_case(B: int, seed: int = 0) -> tuple[ActorCritic, Batch]:
    """A small discrete agent and a batch of B transitions whose observations are
    numbered (obs[i, 0] = i), so the rows each forward pass saw can be read back."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    agent = ActorCritic(3, 2, discrete=True, hidden_sizes=(8,))
    obs = torch.randn(B, 3, generator=gen)
    obs[:, 0] = torch.arange(B, dtype=torch.float32)
    with torch.no_grad():
        logits, values = agent.policy_and_value(obs)
        actions = torch.randint(0, 2, (B,), generator=gen)
        log_probs = logits.log_softmax(-1).gather(1, actions[:, None])[:, 0]
    batch = Batch(
        obs=obs, actions=actions, log_probs=log_probs - 0.1 * torch.rand(B, generator=gen),
        values=values, advantages=torch.randn(B, generator=gen) * 2 + 0.5,
        returns=values + torch.randn(B, generator=gen),
    )  # fmt: skip
    return agent, batch


def settings_for(**overrides: object) -> UpdateSettings:
    base = dict(
        update_epochs=3, minibatch_size=16, clip_coef=0.3, clip_vloss=True,
        ent_coef=0.02, vf_coef=0.7, max_grad_norm=None, norm_adv=True,
        target_kl=None, kl_estimator="k3",
    )  # fmt: skip
    return UpdateSettings(**{**base, **overrides})


@dataclass
class Recorder:
    """What an update did: the rows of each forward pass of the actor, the steps."""

    rows: list[list[int]] = field(default_factory=list)
    steps: int = 0

    def attach(self, agent: ActorCritic, optimizer: torch.optim.Optimizer) -> None:
        def seen(module, inputs, output):
            if torch.is_grad_enabled():  # the minibatch passes, not metric re-runs
                self.rows.append(inputs[0][:, 0].round().long().tolist())

        agent.actor.register_forward_hook(seen)
        optimizer.register_step_post_hook(
            lambda *_: setattr(self, "steps", self.steps + 1)
        )


def run_update(fn: Callable, call: Callable, settings: UpdateSettings, B: int,
               seed: int = 0, optimizer: str = "adam", lr: float = 1e-2,
               global_seed: int = 0):  # fmt: skip
    """Run the student's update on a fresh case, PyTorch's global random state seeded
    with `global_seed`; (agent, batch, recorder, metrics)."""
    agent, batch = update_case(B, seed)
    torch.manual_seed(global_seed)
    params = list(agent.parameters())
    opt = (
        torch.optim.SGD(params, lr=lr)
        if optimizer == "sgd"
        else torch.optim.Adam(params, lr=lr, eps=1e-5)
    )
    recorder = Recorder()
    recorder.attach(agent, opt)
    generator = torch.Generator().manual_seed(seed + 100)
    where = (
        f"updating on a batch of {B} (minibatch_size {settings.minibatch_size}, "
        f"{settings.update_epochs} epochs)"
    )
    metrics = call(fn, (agent, opt, batch, settings, generator), where)
    return agent, batch, recorder, metrics


def check_minibatches(
    recorder: Recorder, B: int, settings: UpdateSettings, epochs: int
):
    M = settings.minibatch_size
    per_epoch = math.ceil(B / M)
    if len(recorder.rows) != epochs * per_epoch:
        raise AssertionError(
            f"with B = {B}, minibatch_size = {M} and {epochs} epochs your update ran "
            f"{len(recorder.rows)} minibatch passes; expected {epochs} x ceil(B / M) "
            f"= {epochs * per_epoch} (use minibatch_indices for each epoch)"
        )
    orders = []
    for e in range(epochs):
        chunk = recorder.rows[e * per_epoch : (e + 1) * per_epoch]
        sizes = [len(c) for c in chunk]
        expected_sizes = [min(M, B - s) for s in range(0, B, M)]
        if sizes != expected_sizes:
            raise AssertionError(
                f"epoch {e + 1}: minibatch sizes {sizes}, expected {expected_sizes}"
            )
        flat = [i for c in chunk for i in c]
        if sorted(flat) != list(range(B)):
            raise AssertionError(
                f"epoch {e + 1} did not use every sample exactly once (rows seen "
                f"{len(set(flat))} of {B}): cut one random permutation into minibatches"
            )
        orders.append(flat)
    if orders and orders[0] == list(range(B)):
        raise AssertionError("the minibatches are not shuffled: each epoch needs a new "
                             "random order (minibatch_indices with the generator)")  # fmt: skip
    if len(orders) > 1 and orders[0] == orders[1]:
        raise AssertionError("every epoch uses the same order: draw a new permutation "
                             "per epoch from the generator")  # fmt: skip
    if recorder.steps != len(recorder.rows):
        raise AssertionError(
            f"{recorder.steps} optimizer steps for {len(recorder.rows)} minibatches: "
            "take one optimizer.step() per minibatch"
        )


def check_metrics(metrics: object, settings: UpdateSettings, epochs: int) -> None:
    if not isinstance(metrics, dict):
        raise AssertionError(
            "ppo_update must return a dict of metrics (names "
            f"{', '.join(MINIBATCH_METRICS)} and 'epochs'), got {type(metrics).__name__}"
        )
    missing = [k for k in (*MINIBATCH_METRICS, "epochs") if k not in metrics]
    if missing:
        raise AssertionError(f"the metrics dict lacks {', '.join(missing)}")
    for key in MINIBATCH_METRICS:
        if not math.isfinite(float(metrics[key])):
            raise AssertionError(f"metrics[{key!r}] is {float(metrics[key])}")
    if int(metrics["epochs"]) != epochs:
        raise AssertionError(
            f"metrics['epochs'] is {int(metrics['epochs'])}, but {epochs} epochs ran"
        )


def replay_steps(batch: Batch, settings: UpdateSettings, lr: float, seed: int,
                 B: int, minibatches: list[list[int]], variant: str = "") -> torch.Tensor:  # fmt: skip
    """The parameters after plain SGD steps on the reference loss over `minibatches`
    (the rows the student's update used, in its order), or with one of the typical
    mistakes named by `variant`."""
    agent, _ = update_case(B, seed)
    params = list(agent.parameters())
    accumulated = [torch.zeros_like(p) for p in params]
    whole = batch.advantages
    for rows in minibatches:
        idx = torch.tensor(rows)
        logits, values = agent.policy_and_value(batch.obs[idx])
        log_probs, entropy = agent.log_prob_entropy(logits, batch.actions[idx])
        advantages = batch.advantages[idx]
        if variant == "policy sign":
            advantages = -advantages
        normalize = settings.norm_adv and variant not in ("no normalization", "whole")
        if variant == "whole":
            advantages = (advantages - whole.mean()) / (whole.std() + 1e-8)
        loss = ppo_loss(
            log_probs, batch.log_probs[idx], advantages, values, batch.values[idx],
            batch.returns[idx], entropy, settings.clip_coef,
            settings.clip_coef if settings.clip_vloss else None, settings.vf_coef,
            settings.ent_coef, normalize,
        )  # fmt: skip
        grads = list(torch.autograd.grad(loss, params))
        if variant == "no zero_grad":  # .grad keeps the last (clipped) gradient
            grads = [a + g for a, g in zip(accumulated, grads, strict=True)]
        grads = accumulated = clipped(grads, settings.max_grad_norm, variant)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= lr * g
    return torch.cat([p.detach().reshape(-1) for p in params])


def clipped(grads: list[torch.Tensor], max_norm: float | None, variant: str) -> list:
    if max_norm is None or variant == "no clipping":
        return grads
    if variant == "per-parameter clipping":
        return [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in grads]
    total = float(torch.sqrt(sum((g**2).sum() for g in grads)))
    return [g * min(1.0, max_norm / (total + 1e-6)) for g in grads]


STEP_MISTAKES = {
    "policy sign": "the policy term has the wrong sign: the loss to MINIMIZE is "
    "−L^CLIP (maximize the clipped objective)",
    "no normalization": "the advantages are not normalized although settings.norm_adv "
    "is True (per minibatch: (A − mean) / (std + 1e-8))",
    "whole": "the advantages are normalized over the whole batch; ppo_loss normalizes "
    "each minibatch's own advantages (pass the raw minibatch advantages)",
    "no zero_grad": "the gradients accumulate from one minibatch to the next: call "
    "optimizer.zero_grad() before each loss.backward()",
    "no clipping": "the gradient is not clipped: call torch.nn.utils.clip_grad_norm_("
    "agent.parameters(), settings.max_grad_norm) between backward() and step()",
    "per-parameter clipping": "the gradient is clipped tensor by tensor; clip the "
    "global norm of all parameters' gradients together (clip_grad_norm_ on all of them)",
}


def check_steps(fn: Callable, call: Callable) -> None:
    """One epoch of two minibatches with plain SGD: each step must move the
    parameters by exactly −lr · clip(∇ppo_loss of that minibatch)."""
    B, lr, seed = 24, 0.5, 3
    settings = settings_for(update_epochs=1, minibatch_size=12, max_grad_norm=0.05)
    agent, batch, recorder, _ = run_update(fn, call, settings, B, seed, "sgd", lr)
    check_minibatches(recorder, B, settings, 1)
    got = torch.cat([p.detach().reshape(-1) for p in agent.parameters()])
    rows = recorder.rows

    def matches(variant: str = "") -> bool:
        expected = replay_steps(batch, settings, lr, seed, B, rows, variant)
        return bool(torch.allclose(got, expected, atol=1e-5))

    if matches():
        return
    for variant, message in STEP_MISTAKES.items():
        if matches(variant):
            raise AssertionError(message)
    raise AssertionError(
        "with plain SGD, each minibatch step must move the parameters by −lr · (the "
        "clipped gradient of ppo_loss on that minibatch), and yours do not: check the "
        "loss's arguments (batch.log_probs are the OLD log-probs, batch.values the OLD "
        "values), the settings you pass (clip_coef, the value clip when clip_vloss, "
        "vf_coef, ent_coef, norm_adv) and the order zero_grad -> backward -> clip -> step"
    )


def check_generator_and_target_kl(fn: Callable, call: Callable) -> int:
    B = 40
    settings = settings_for(max_grad_norm=0.5)
    runs = []
    for global_seed in (11, 12):  # the global RNG differs; the generator does not
        agent, batch, recorder, metrics = run_update(
            fn, call, settings, B, global_seed=global_seed
        )
        runs.append(recorder.rows)
    check_minibatches(recorder, B, settings, settings.update_epochs)
    check_metrics(metrics, settings, settings.update_epochs)
    if runs[0] != runs[1]:
        raise AssertionError(
            "the minibatch order depends on PyTorch's global random state: draw it "
            "from the generator you are given (minibatch_indices(B, M, generator))"
        )
    tiny = settings_for(max_grad_norm=0.5, target_kl=1e-12)
    _, _, recorder, metrics = run_update(fn, call, tiny, B)
    if len(recorder.rows) != math.ceil(B / tiny.minibatch_size):
        raise AssertionError(
            "with settings.target_kl set, the epochs must stop once an epoch's mean "
            "approx KL exceeds it: with target_kl = 1e-12 only the first epoch runs"
        )
    check_metrics(metrics, tiny, 1)
    return 3


def ladder_rungs(fn: Callable) -> int:
    results = probe_ladder(functions={"ppo_update": fn}, verbose=False)
    for result in results:
        if not result.passed:
            raise AssertionError(
                f"training with your ppo_update fails the probe '{result.rung.probe}': "
                f"{result.rung.what} = "
                + ", ".join(f"{m:.2f}" for m in result.measured)
                + " (expected "
                + ", ".join(f"{e:.2f}" for e in result.rung.expected)
                + f" ± {result.rung.tolerance}). This probe isolates "
                f"{result.rung.isolates}."
            )
    return len(results)


# ---------------------------------------------------------------- the checks


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


@exercise("ppo_update")
def check_ppo_update(fn: Callable, extra_cases: list[dict]) -> int:
    """Check an update `fn(agent, optimizer, batch, settings, generator) -> metrics`:
    its minibatches, epochs, generator, target-KL stop and metrics; two plain-SGD
    steps replayed exactly; then the probe ladder trained with it."""
    count = check_generator_and_target_kl(fn, call_student)
    check_steps(fn, call_student)
    return count + 1 + ladder_rungs(fn)
