"""The checks of lesson 07: every typical mistake in the rollout (7.1) and in the
update (7.2) is caught and named; correct versions written differently pass."""

from __future__ import annotations

import pytest
import torch

from ppo_lessons.checks import check_collect_rollout, check_ppo_update
from ppo_lessons.rollout import collect_rollout
from ppo_lessons.update import MINIBATCH_METRICS, approx_kl, ppo_loss, ppo_update

# ---------------------------------------------------------------- 7.1 rollouts


def rollout(
    agent, envs, buffer, obs, generator, *, reached_from="final", flags="apart",
    obs_late=False, resample=False, no_grad=True, values_from="obs", returns=True,
    use_generator=True, reset=False,
):  # fmt: skip
    """A rollout with one switchable typical mistake (the defaults are correct)."""
    if reset:
        envs.reset()
    with torch.no_grad() if no_grad else torch.enable_grad():
        for t in range(buffer.num_steps):
            out = agent.policy(obs)
            gen = generator if use_generator else None
            actions, log_probs = agent.sample(out, gen)
            stored = agent.sample(out, gen)[0] if resample else actions
            next_obs, rewards, terminated, truncated, info = envs.step(actions)
            buffer.obs[t] = next_obs if obs_late else obs
            buffer.actions[t], buffer.log_probs[t] = stored, log_probs
            buffer.rewards[t] = rewards
            if flags == "apart":
                buffer.terminated[t], buffer.truncated[t] = terminated, truncated
            elif flags == "swapped":
                buffer.terminated[t], buffer.truncated[t] = truncated, terminated
            else:  # merged into one done flag
                done = terminated | truncated
                buffer.terminated[t], buffer.truncated[t] = done, done
            reached = info["final_obs"] if reached_from == "final" else next_obs
            buffer.reached_obs[t] = reached
            obs = next_obs
        T, N = buffer.num_steps, buffer.num_envs
        values = agent.value(buffer.obs.reshape(T * N, -1)).reshape(T, N)
        next_values = agent.value(buffer.reached_obs.reshape(T * N, -1)).reshape(T, N)
        if values_from == "reached":
            values, next_values = next_values, values
        buffer.values[:] = values
        buffer.next_values[:] = next_values
    return obs if returns else None


def rollout_with(**mistake):
    return lambda *args: rollout(*args, **mistake)


def test_correct_rollouts_pass(capsys):
    assert check_collect_rollout(collect_rollout)
    assert check_collect_rollout(rollout_with())  # a loop written differently
    assert "collect_rollout: correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake, words",
    [
        (dict(reached_from="next"), "not the reset observation"),
        (dict(flags="swapped"), "swapped"),
        (dict(flags="merged"), "merged"),
        (dict(obs_late=True), "one step late"),
        (dict(resample=True), "as taken"),
        (dict(no_grad=False), "torch.no_grad"),
        (dict(values_from="reached"), "V of the reached"),
        (dict(returns=False), "must return the observations"),
        (dict(use_generator=False), "generator"),
        (dict(reset=True), "reset the envs"),
    ],
)
def test_rollout_mistakes_are_named(mistake, words):
    with pytest.raises(AssertionError, match=words):
        check_collect_rollout(rollout_with(**mistake))


def test_an_unsolved_rollout_is_not_an_error(capsys):
    def stub(agent, envs, buffer, obs, generator):
        raise NotImplementedError

    assert not check_collect_rollout(stub)
    assert "not implemented" in capsys.readouterr().out


# ---------------------------------------------------------------- 7.2 updates


def update(
    agent, optimizer, batch, settings, generator, *, order="shuffled", zero=True,
    clip="global", sign=1.0, normalize=True, early_stop=True, drop_last=False,
):  # fmt: skip
    """An update with one switchable typical mistake (the defaults are correct)."""
    B, M = len(batch.advantages), settings.minibatch_size
    params = list(agent.parameters())
    epochs = 0
    for _ in range(settings.update_epochs):
        if order == "shuffled":
            perm = torch.randperm(B, generator=generator)
        elif order == "global":
            perm = torch.randperm(B)
        elif order == "replacement":
            perm = torch.randint(0, B, (B,), generator=generator)
        else:
            perm = torch.arange(B)
        pieces = list(perm.split(M))
        if drop_last and len(pieces[-1]) < M:
            pieces = pieces[:-1]
        sums = torch.zeros(len(MINIBATCH_METRICS))
        for idx in pieces:
            logits, values = agent.policy_and_value(batch.obs[idx])
            log_probs, entropy = agent.log_prob_entropy(logits, batch.actions[idx])
            v_clip = settings.clip_coef if settings.clip_vloss else None
            loss = ppo_loss(
                log_probs, batch.log_probs[idx], sign * batch.advantages[idx], values,
                batch.values[idx], batch.returns[idx], entropy, settings.clip_coef,
                v_clip, settings.vf_coef, settings.ent_coef,
                settings.norm_adv and normalize,
            )  # fmt: skip
            if zero:
                optimizer.zero_grad()
            loss.backward()
            if settings.max_grad_norm is not None and clip == "global":
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            elif settings.max_grad_norm is not None and clip == "each":
                for p in params:
                    torch.nn.utils.clip_grad_norm_([p], settings.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                kl = approx_kl(log_probs, batch.log_probs[idx], settings.kl_estimator)
            sums += torch.tensor(
                [loss.item(), 0.0, entropy.mean().item(), kl.item(), 0]
            )
        epochs += 1
        means = sums / len(pieces)
        if (
            early_stop
            and settings.target_kl is not None
            and means[3] > settings.target_kl
        ):
            break
    out = dict(zip(MINIBATCH_METRICS, means, strict=True))
    out["epochs"] = torch.tensor(epochs)
    return out


def update_with(**mistake):
    return lambda *args: update(*args, **mistake)


@pytest.mark.heavy  # the full check, twice (about 18 s)
def test_correct_updates_pass(capsys):
    assert check_ppo_update(ppo_update)
    assert check_ppo_update(update_with())
    assert "ppo_update: correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake, words",
    [
        (dict(order="none"), "not shuffled"),
        (dict(order="replacement"), "exactly once"),
        (dict(order="global"), "global random state"),
        (dict(drop_last=True), "minibatch passes"),
        (dict(early_stop=False), "target_kl"),
        (dict(zero=False), "accumulate"),
        (dict(clip="none"), "not clipped"),
        (dict(clip="each"), "tensor by tensor"),
        (dict(sign=-1.0), "wrong sign"),
        (dict(normalize=False), "not normalized"),
    ],
)
def test_update_mistakes_are_named(mistake, words):
    with pytest.raises(AssertionError, match=words):
        check_ppo_update(update_with(**mistake))


def test_metrics_must_be_returned():
    def no_metrics(*args):
        update(*args)

    with pytest.raises(AssertionError, match="must return a dict of metrics"):
        check_ppo_update(no_metrics)
