"""Checks of lesson 07: the rollout (exercise 7.1, `ppo_lessons.checks.lesson07_rollout`)
and the update (exercise 7.2).

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

from ppo_lessons.buffer import Batch
from ppo_lessons.checks.harness import exercise
from ppo_lessons.checks.lesson07_rollout import call_student, check_collect_rollout
from ppo_lessons.networks import ActorCritic
from ppo_lessons.probes import probe_ladder
from ppo_lessons.update import MINIBATCH_METRICS, UpdateSettings, ppo_loss

__all__ = ["check_collect_rollout", "check_ppo_update"]

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


@exercise("ppo_update")
def check_ppo_update(fn: Callable, extra_cases: list[dict]) -> int:
    """Check an update `fn(agent, optimizer, batch, settings, generator) -> metrics`:
    its minibatches, epochs, generator, target-KL stop and metrics; two plain-SGD
    steps replayed exactly; then the probe ladder trained with it."""
    count = check_generator_and_target_kl(fn, call_student)
    check_steps(fn, call_student)
    return count + 1 + ladder_rungs(fn)
