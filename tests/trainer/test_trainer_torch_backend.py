"""The trainer with `env_backend="torch"`: batched tensor envs on the run's device."""

from __future__ import annotations

import math

import pytest
import torch
from support.histories import same_history

import ppo_lessons.trainer as trainer_module
from ppo_lessons.checkpoint import load_checkpoint
from ppo_lessons.presets import FAST_PRESETS, preset
from ppo_lessons.torch_envs import TORCH_ENV_IDS, TorchVectorEnv
from ppo_lessons.trainer import (
    PPOConfig,
    collect_rollout,
    evaluate,
    make_buffer,
    make_envs,
    start_run,
    train,
)

SMALL = dict(
    env_id="CartPole-v1", env_backend="torch", num_envs=16, num_steps=16,
    total_steps=1024, update_epochs=2, num_minibatches=2, device="cpu",
)  # fmt: skip


# ---------------------------------------------------------------- config


def test_an_env_without_a_batched_version_is_refused_with_the_list():
    with pytest.raises(ValueError) as info:
        PPOConfig(env_id="MountainCar-v0", env_backend="torch")
    message = str(info.value)
    assert "PPOConfig.env_id = 'MountainCar-v0'" in message
    for env_id in TORCH_ENV_IDS:
        assert env_id in message


def test_async_envs_are_refused_with_the_torch_backend():
    with pytest.raises(ValueError, match="async_envs = True is not allowed"):
        PPOConfig(env_backend="torch", async_envs=True)


def test_make_envs_picks_the_batched_env_on_the_run_device():
    envs = make_envs(PPOConfig(**SMALL))
    assert isinstance(envs, TorchVectorEnv) and envs.num_envs == 16
    assert envs.device == torch.device("cpu")
    assert not isinstance(make_envs(PPOConfig(env_id="CartPole-v1")), TorchVectorEnv)


# ---------------------------------------------------------------- the rollout


class HostSync(AssertionError):
    pass


def test_rollout_never_reads_a_tensor_back_to_the_host(monkeypatch):
    """The on-device path: no `.item()`, `bool(tensor)`, `.tolist()`, `.cpu()`,
    `.numpy()` or NumPy conversion of a tensor while a torch-backend rollout runs
    (each is a device-to-host copy and, on a GPU, a stall)."""
    run = start_run(PPOConfig(**SMALL))
    buffer = make_buffer(run)

    def refuse(*args, **kwargs):
        raise HostSync("a tensor was read back to the host during the rollout")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__array__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    collect_rollout(run, buffer)
    monkeypatch.undo()
    assert run.global_step == 16 * 16


def test_a_host_sync_in_the_rollout_would_be_caught(monkeypatch):
    """The test above can fail: the Gymnasium path converts actions to NumPy."""
    run = start_run(PPOConfig(**{**SMALL, "env_backend": "gymnasium"}))
    buffer = make_buffer(run)
    monkeypatch.setattr(
        torch.Tensor, "numpy", lambda *a: (_ for _ in ()).throw(HostSync())
    )
    with pytest.raises(HostSync):
        collect_rollout(run, buffer)


def test_truncation_bootstraps_from_the_true_final_observation():
    config = PPOConfig(**{**SMALL, "num_envs": 4, "num_steps": 6})
    run = start_run(config)
    envs = run.envs.envs  # the batched tensor env inside the rollout's view
    # env 0 reaches CartPole's 500-step limit on the third step of the rollout
    run.obs = run.envs.observe(
        envs.set_state(torch.zeros(4, 4), elapsed_steps=torch.tensor([497, 0, 0, 0]))
    )
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    assert buffer.truncated[:, 0].tolist() == [False, False, True, False, False, False]
    assert not buffer.terminated[:, 0].any()
    final_obs = buffer.reached_obs[2, 0]
    reset_obs = buffer.obs[3, 0]
    assert not torch.equal(final_obs, reset_obs)
    with torch.no_grad():
        v_final = run.agent.value(final_obs[None])[0]
    torch.testing.assert_close(buffer.next_values[2, 0], v_final)
    # where no episode ended, next_values[t] is V of where step t + 1 starts
    torch.testing.assert_close(buffer.next_values[3:5], buffer.values[4:6])


def test_episode_statistics_match_the_env_s_own_bookkeeping():
    config = PPOConfig(
        **{**SMALL, "num_envs": 32, "num_steps": 64, "total_steps": 2048}
    )
    run = start_run(config)
    buffer = make_buffer(run)
    ended_returns = []
    original_step = run.envs.envs.step

    def spy(actions):
        out = original_step(actions)
        ended_returns.append(out[4]["episode_return"])
        return out

    run.envs.envs.step = spy
    collect_rollout(run, buffer)
    env_side = torch.stack(ended_returns)  # (T, N) the env's episode returns
    ended = buffer.terminated | buffer.truncated
    returns, _ = run.envs.episode_stats()
    torch.testing.assert_close(returns, env_side[ended])
    assert len(returns) > 10  # random play ends many episodes


# ---------------------------------------------------------------- training


def test_two_seeded_runs_give_the_same_history():
    a = train(PPOConfig(**SMALL, seed=3), progress=False)
    b = train(PPOConfig(**SMALL, seed=3), progress=False)
    c = train(PPOConfig(**SMALL, seed=4), progress=False)
    assert same_history(a.history, b.history)
    assert not same_history(a.history, c.history)


def test_resume_continues_exactly_with_the_env_state(tmp_path):
    path = tmp_path / "run.pt"
    config = PPOConfig(**{**SMALL, "total_steps": 2048})
    full = train(config, progress=False)
    train(config, stop_at_step=1024, save_path=path, progress=False)
    saved = load_checkpoint(path)["envs"]
    assert set(saved) == {"state", "elapsed_steps", "current_return", "generator"}
    rest = train(config, resume_from=path, progress=False)
    assert same_history(rest.history, full.history)


def test_the_fast_cartpole_preset_learns_quickly():
    """A short run of the torch backend's CartPole preset learns far above random
    play (about 22) within 40,000 steps."""
    config = preset("CartPole-v1", env_backend="torch", total_steps=40_960, seed=1)
    result = train(config, progress=False)
    # the last update's rollout may end no episode (nan) once episodes are long
    returns = [row["episodic_return"] for row in result.history]
    assert [r for r in returns if not math.isnan(r)][-1] > 150
    assert evaluate(result.agent, "CartPole-v1", episodes=10).mean() > 150


def test_fast_presets_exist_only_for_batched_envs():
    assert set(FAST_PRESETS) <= set(TORCH_ENV_IDS)
    for env_id in FAST_PRESETS:
        assert preset(env_id, env_backend="torch").env_backend == "torch"


def test_pendulum_trains_a_few_updates_on_the_torch_backend():
    config = PPOConfig(
        env_id="Pendulum-v1", env_backend="torch", num_envs=16, num_steps=32,
        total_steps=2048, device="cpu",
    )  # fmt: skip
    result = train(config, progress=False)
    assert len(result.history) == 4
    assert all(row["episodes"] == 0 for row in result.history[:6])  # 200-step limit
    assert result.history[-1]["value_loss"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_fast_cartpole_preset_solves_every_seed(seed):
    """The issue's target, as a (slow) test: solved, then 20 evaluation episodes
    >= 475. Its wall time is measured by bench/bench_end_to_end.py, not here."""
    result = train(
        preset("CartPole-v1", env_backend="torch", seed=seed), progress=False
    )
    assert result.first_step_solved is not None
    assert evaluate(result.agent, "CartPole-v1", episodes=20).mean() >= 475


@pytest.mark.gpu  # skipped without CUDA (conftest.py)
def test_the_torch_backend_runs_on_cuda():
    result = train(PPOConfig(**{**SMALL, "device": "cuda"}), progress=False)
    assert isinstance(trainer_module.resolve_device("cuda"), torch.device)
    assert next(result.agent.parameters()).is_cuda
    assert len(result.history) == 4


def test_squashed_actions_stay_inside_the_bounds_and_train():
    config = PPOConfig(
        env_id="Pendulum-v1", env_backend="torch", num_envs=16, num_steps=32,
        total_steps=1024, device="cpu", squash_actions=True, init_log_std=1.0,
    )  # fmt: skip
    run = start_run(config)
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    assert buffer.actions.abs().max() > 2.0  # the stored u is unbounded (σ = e) ...
    sent = run.agent.to_env(buffer.actions)
    assert sent.abs().max() <= 2.0  # ... the env gets tanh(u) scaled to [-2, 2]
    assert len(train(config, progress=False).history) == 2


def test_squashing_a_discrete_action_space_is_refused():
    with pytest.raises(ValueError, match="squash_actions = True needs a Box"):
        train(PPOConfig(**SMALL, squash_actions=True), progress=False)


def test_cli_env_backend_torch_starts_from_the_fast_settings():
    from ppo_lessons.train import build_parser, config_from_args

    def config(*argv: str) -> PPOConfig:
        return config_from_args(build_parser().parse_args(list(argv)))

    fast = config("--env-id", "CartPole-v1", "--env-backend", "torch", "--seed", "7")
    assert fast == preset("CartPole-v1", env_backend="torch", seed=7)
    assert fast.num_envs == FAST_PRESETS["CartPole-v1"]["num_envs"]
    tuned = config("--env-backend", "torch", "--num-envs", "32")  # a flag wins
    assert tuned.num_envs == 32 and tuned.env_backend == "torch"
    plain = config("--env-id", "CartPole-v1")  # the Gymnasium defaults stay
    assert plain == PPOConfig(env_id="CartPole-v1")
    with pytest.raises(ValueError, match="--preset Acrobot-v1 sets the env id"):
        config("--preset", "Acrobot-v1", "--env-id", "CartPole-v1")
