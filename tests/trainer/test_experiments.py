"""Lesson 08's experiment machinery: records, statistics over seeds, figures, and a
typical tutorial implementation's flaws as pluggable pieces. Each test names the bug it catches."""

from __future__ import annotations

import dataclasses
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_trainer_torch_backend import SMALL  # noqa: E402  (the test's folder is on sys.path)

from ppo_lessons import experiments as ex  # noqa: E402
from ppo_lessons.clipping import clipped_surrogate_objective  # noqa: E402
from ppo_lessons.functions import LessonFunctions  # noqa: E402
from ppo_lessons.gae import compute_gae  # noqa: E402
from ppo_lessons.rollout import gae_from_buffer, value_rollout  # noqa: E402
from ppo_lessons.trainer import (  # noqa: E402
    PPOConfig,
    TrainResult,
    collect_rollout,
    make_buffer,
    start_run,
    train,
)
from ppo_lessons.update import UpdateSettings, ppo_update  # noqa: E402


def record(label: str, seed: int, final: float, mean: float | None = None):
    curve = np.array([final])
    return ex.RunRecord(
        label, seed, 100, 1.0, final, final if mean is None else mean, None,
        steps=np.array([100]), curve=curve, history=[],
    )  # fmt: skip


def records(label: str, values) -> list:
    return [record(label, i + 1, v) for i, v in enumerate(values)]


# ---------------------------------------------------------------- statistics


# published two-sided 95% quantiles t_{0.975, df} (any statistics table)
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 30: 2.042,
           120: 1.980}  # fmt: skip


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_t_quantile_matches_the_table(df):
    # catches a normal quantile (1.96) for small samples, or df off by one
    assert ex.t_quantile(df) == pytest.approx(T_TABLE[df], abs=1e-3)


@pytest.mark.parametrize("df", [1.5, 2.5, 6.3])
def test_t_quantile_at_fractional_df_against_sampling(df):
    # Welch's ν is fractional; oracle: T = Z / sqrt(χ²_ν / ν) sampled (numpy's gamma
    # takes a fractional shape), its empirical 97.5% quantile of |T|
    rng = np.random.default_rng(0)
    z = rng.standard_normal(2_000_000)
    chi2 = rng.gamma(df / 2, 2.0, size=z.shape)
    sampled = np.quantile(np.abs(z / np.sqrt(chi2 / df)), 0.95)
    assert ex.t_quantile(df) == pytest.approx(sampled, rel=0.01)
    assert ex.t_quantile(df) < ex.t_quantile(math.floor(df))  # more df, narrower


def test_t_quantile_other_levels():
    assert ex.t_quantile(1, level=0.5) == pytest.approx(1.0, abs=1e-6)  # Cauchy
    assert ex.t_quantile(10_000, level=0.9) == pytest.approx(1.645, abs=2e-3)


@pytest.mark.parametrize("df", [0.5, 0, -1, math.inf, math.nan, "3"])
def test_t_quantile_rejects_bad_df(df):
    with pytest.raises(ValueError, match="df must be"):
        ex.t_quantile(df)


def test_summary_by_hand():
    # catches the population std (ddof=0), z = 1.96 instead of t, or df = n
    s = ex.summarize(records("a", [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert (s.label, s.seeds, s.mean) == ("a", 5, 3.0)
    assert s.std == pytest.approx(math.sqrt(2.5))
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert (s.ci_low, s.ci_high) == pytest.approx((3.0 - half, 3.0 + half), abs=1e-3)


def test_summary_of_one_seed_has_no_interval():
    s = ex.summarize(records("a", [7.0]))
    assert s.mean == 7.0 and math.isnan(s.std) and math.isnan(s.ci_low)


def test_summary_uses_the_metric_asked_for():
    runs = [record("a", 1, final=10.0, mean=1.0), record("a", 2, final=20.0, mean=3.0)]
    assert ex.summarize(runs, "final_return").mean == 15.0
    assert ex.summarize(runs, "mean_return").mean == 2.0
    with pytest.raises(ValueError, match="metric must be one of"):
        ex.summarize(runs, "return")


def test_welch_interval_by_hand():
    # catches a pooled-variance interval or the wrong degrees of freedom
    a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0, 10.0]
    c = ex.compare(records("a", a), records("b", b))
    va, vb = 1.0 / 3, (20.0 / 3) / 4
    nu = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    half = ex.t_quantile(nu) * math.sqrt(va + vb)
    assert c.difference == pytest.approx(5.0)
    assert (c.ci_low, c.ci_high) == pytest.approx((5.0 - half, 5.0 + half))
    assert c.beyond_noise is True and c.verdict.startswith("higher by 5.0")


def test_welch_interval_on_arrays_is_compare_s_interval():
    # catches the array-level interval (lessons 01 and 03) drifting from compare's:
    # a flipped sign, a pooled variance, or one seed accepted
    a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0, 10.0]
    c = ex.compare(records("a", a), records("b", b))
    assert ex.welch_interval(a, b) == pytest.approx((c.ci_low, c.ci_high))
    assert ex.welch_interval(b, a) == pytest.approx((-c.ci_high, -c.ci_low))
    assert ex.welch_interval([2.0, 2.0], [5.0, 5.0]) == (3.0, 3.0)  # no spread
    wide = ex.welch_interval(a, b, level=0.99)
    assert wide[0] < c.ci_low and wide[1] > c.ci_high
    with pytest.raises(ValueError, match="at least 2 seeds"):
        ex.welch_interval([1.0], b)


def test_overlapping_seeds_are_inside_the_noise_and_the_sign_is_kept():
    # catches a verdict that calls any nonzero difference real
    a, b = (
        records("a", [10.0, 30.0, 20.0, 25.0]),
        records("b", [12.0, 28.0, 26.0, 15.0]),
    )
    c = ex.compare(a, b)
    assert c.beyond_noise is False and "inside the noise" in c.verdict
    assert c.ci_low < 0 < c.ci_high
    down = ex.compare(records("a", [10.0, 11.0, 12.0]), records("b", [1.0, 2.0, 3.0]))
    assert down.beyond_noise and down.difference == -9.0
    assert down.verdict.startswith("lower by 9.0")


def test_too_few_seeds_are_said_to_be_too_few():
    c = ex.compare(records("a", [1.0, 2.0]), records("b", [5.0, 6.0]))
    assert c.beyond_noise is None and "too few seeds to conclude" in c.verdict


def test_identical_constant_runs_do_not_differ():
    c = ex.compare(records("a", [500.0] * 3), records("b", [500.0] * 3))
    assert c.beyond_noise is False and c.difference == 0.0


def test_results_table_lists_every_variant_with_its_verdict():
    # catches a table that compares the baseline with itself or drops a metric
    groups = {
        "baseline": records("baseline", [10.0, 11.0, 12.0]),
        "worse": records("worse", [1.0, 2.0, 3.0]),
    }
    table = ex.results_table(groups, baseline="baseline")
    lines = table.splitlines()
    assert len(lines) == 3 and lines[0].startswith("final_return over seeds")
    assert "11.0 ±   1.0" in lines[1] and "noise" not in lines[1]
    assert "lower by 9.0" in lines[2] and "beyond the noise" in lines[2]
    both = ex.results_table(groups, "baseline", ("final_return", "mean_return"))
    assert len(both.splitlines()) == 6 and "mean_return over seeds" in both
    with pytest.raises(ValueError, match="baseline 'nope'"):
        ex.results_table(groups, baseline="nope")


# ---------------------------------------------------------------- records


def fake_result(history: list[dict], seed: int = 3) -> TrainResult:
    config = PPOConfig(**SMALL, seed=seed)
    return TrainResult(
        agent=None, history=history, config=config, global_step=history[-1]["step"],
        wall_seconds=2.5, first_step_solved=None, seconds_to_solve=None,
    )  # fmt: skip


def test_record_carries_returns_over_updates_without_episodes():
    # catches a nan in the curve (no episode ended) poisoning the final return
    returns = [math.nan, 10.0, math.nan, 20.0, math.nan, math.nan, 40.0, math.nan,
               math.nan, 30.0]  # fmt: skip
    history = [
        {"step": 100 * (i + 1), "episodic_return": r} for i, r in enumerate(returns)
    ]
    r = ex.record_run(fake_result(history), "x", final_fraction=0.2)
    assert np.isnan(r.curve[0]) and r.curve[2] == 10.0 and r.curve[8] == 40.0
    assert r.final_return == pytest.approx((40.0 + 30.0) / 2)  # last 2 of 10 updates
    assert r.mean_return == pytest.approx(np.mean([10, 10, 20, 20, 20, 40, 40, 40, 30]))
    assert (r.seed, r.total_steps, r.wall_seconds, r.label) == (3, 1000, 2.5, "x")
    assert list(r.steps) == [100 * (i + 1) for i in range(10)]


def test_record_rejects_an_empty_run_and_a_bad_fraction():
    with pytest.raises(ValueError, match="final_fraction"):
        ex.record_run(fake_result([{"step": 1, "episodic_return": 1.0}]), "", 0.0)
    result = fake_result([{"step": 1, "episodic_return": 1.0}])
    result.history = []
    with pytest.raises(ValueError, match="no updates"):
        ex.record_run(result)


def test_run_seeds_trains_each_seed_and_is_reproducible():
    # catches a loop that forgets to set the seed (every "seed" the same run)
    config = PPOConfig(**SMALL)
    first = ex.run_seeds(config, [1, 2], label="tiny")
    again = ex.run_seeds(config, [1], label="tiny")
    assert [r.seed for r in first] == [1, 2] and first[0].label == "tiny"
    assert all(r.total_steps == 1024 and len(r.curve) == 4 for r in first)
    assert not np.array_equal(
        first[0].history[0]["value_loss"], first[1].history[0]["value_loss"]
    )
    assert first[0].history[0]["value_loss"] == again[0].history[0]["value_loss"]
    with pytest.raises(ValueError, match="seeds is empty"):
        ex.run_seeds(config, [])


def test_run_variants_applies_each_variant_and_reports(capsys):
    # catches variants that all run the base config, and train kwargs that are lost
    seen = []

    def runner(config, progress, **kwargs):
        seen.append((config.seed, config.norm_obs, kwargs.get("marker")))
        history = [{"step": 256, "episodic_return": float(config.seed)}]
        return fake_result(history, seed=config.seed)

    base = PPOConfig(**SMALL)
    groups = ex.run_variants(
        base,
        {
            "base": ex.Variant(runner=runner),
            "obs": ex.Variant({"norm_obs": True}, {"marker": "m"}, runner),
        },
        seeds=[4, 5],
    )
    assert seen == [(4, False, None), (5, False, None), (4, True, "m"), (5, True, "m")]
    assert [r.final_return for r in groups["obs"]] == [4.0, 5.0]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("base: 2 seeds (4-5) × 256 steps, 2.5 s per run")


def test_run_variants_trains_populations_one_per_setting_of_the_shared_fields(capsys):
    # catches a shape-changing variant run with the base's shapes (or refused), a
    # swapped lesson function that never reaches the population, records filed
    # under the wrong variant, and a runner variant forced into a population
    calls = []

    def counting_gae(*args):
        calls.append(args[0].shape)
        return compute_gae(*args)

    def runner(config, progress, **kwargs):
        return train(config, progress=progress)

    base = PPOConfig(**SMALL)
    groups = ex.run_variants(
        base,
        {
            "base": {},
            "1 epoch": {"update_epochs": 1},
            "their gae": ex.Variant(
                train_kwargs={"functions": {"compute_gae": counting_gae}}
            ),
            "gamma 0.9": {"gamma": 0.9},
            "one by one": ex.Variant(runner=runner),
        },
        seeds=[3, 4],
    )
    assert list(groups) == ["base", "1 epoch", "their gae", "gamma 0.9", "one by one"]
    for label, records in groups.items():
        assert [r.seed for r in records] == [3, 4] and {r.label for r in records} == {
            label
        }
    assert [r.population for r in groups["base"]] == [6, 6]  # 3 variants × 2 seeds
    assert [r.population for r in groups["1 epoch"]] == [2, 2]
    assert [r.population for r in groups["one by one"]] == [1, 1]
    assert {row["epochs"] for r in groups["1 epoch"] for row in r.history} == {1}
    assert {row["epochs"] for r in groups["base"] for row in r.history} == {2}
    assert calls, "the variant's compute_gae was never called"
    first = [row["value_loss"] for row in groups["base"][0].history]
    assert first != [row["value_loss"] for row in groups["gamma 0.9"][0].history]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("one population of 6 members (3 variants × 2 seeds)")
    assert out[1].startswith("one population of 2 members (1 variant × 2 seeds)")
    assert out[2].startswith("one by one: 2 seeds (3-4) × 1,024 steps")


def test_a_population_record_is_the_members_run_and_population_false_is_train():
    # catches records that mix members up, and population=False not running train
    base = PPOConfig(**SMALL)
    together = ex.run_seeds(base, [3, 4], label="x")
    alone = ex.run_seeds(base, [4], label="x")
    assert [r.population for r in together] == [2, 2]
    np.testing.assert_allclose(together[1].curve, alone[0].curve, rtol=1e-5)
    assert together[0].history[0]["value_loss"] != together[1].history[0]["value_loss"]
    one_by_one = ex.run_seeds(base, [4], label="x", population=False)
    direct = train(base.replace(seed=4), progress=False)
    assert one_by_one[0].population == 1
    assert [row["value_loss"] for row in one_by_one[0].history] == [
        row["value_loss"] for row in direct.history
    ]


def test_a_gymnasium_config_runs_one_by_one():
    # catches a Gymnasium config sent to a population (which refuses it)
    base = PPOConfig(**{**SMALL, "env_backend": "gymnasium", "total_steps": 512})
    records = ex.run_seeds(base, [1, 2])
    assert [r.population for r in records] == [1, 1] and len(records[0].curve) == 2


def test_plot_variants_draws_mean_and_band_with_the_seed_count():
    groups = {
        name: [
            ex.RunRecord(
                name,
                s,
                300,
                1.0,
                0.0,
                0.0,
                None,
                steps=np.array([100, 200, 300]),
                curve=np.array([1.0, 2.0, 3.0]) * s * k,
                history=[],
            )  # fmt: skip
            for s in (1, 2, 3)
        ]
        for name, k in (("a", 1.0), ("b", 2.0))
    }
    fig = ex.plot_variants(groups, title="t")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a (3 seeds, ± 1 std)", "b (3 seeds, ± 1 std)"]
    assert ax.get_xlabel() == "environment steps" and ax.get_title() == "t"
    assert list(ax.lines[0].get_ydata()) == [2.0, 4.0, 6.0]  # the mean over seeds
    plt.close(fig)
    groups["b"][0] = record("b", 1, 0.0)  # a run of another length
    with pytest.raises(ValueError, match="same number of updates"):
        ex.plot_variants(groups, title="t")


def test_plot_ablation_puts_each_variant_next_to_the_baseline():
    # catches panels that lose the baseline or show it as a variant
    groups = {
        name: [
            ex.RunRecord(
                name,
                s,
                200,
                1.0,
                0.0,
                0.0,
                None,
                steps=np.array([100, 200]),
                curve=np.array([1.0, 2.0]) * s,
                history=[],
            )  # fmt: skip
            for s in (1, 2)
        ]
        for name in ("base", "x", "y", "z")
    }
    fig = ex.plot_ablation(groups, baseline="base", title="T", ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["x", "y", "z"]
    for ax in visible:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[0].startswith("base (2 seeds") and len(labels) == 2
    assert fig._suptitle.get_text() == "T"
    plt.close(fig)
    with pytest.raises(ValueError, match="only the baseline"):
        ex.plot_ablation({"base": groups["base"]}, baseline="base", title="T")


def test_plot_diagnostics_draws_every_metric_of_every_run():
    history = [
        {
            "step": 100 * (u + 1),
            "episodic_return": float(u),
            "value_loss": 1.0 + u,
            "explained_variance": 0.1 * u,
            "approx_kl": 0.01,
            "clip_fraction": 0.1,
            "entropy": 0.6,
        }  # fmt: skip
        for u in range(4)
    ]
    fig = ex.plot_diagnostics({"a": history, "b": history}, title="T")
    assert len(fig.axes) == 6 and all(len(ax.lines) == 2 for ax in fig.axes)
    assert (
        fig.axes[1].get_yscale() == "log"
        and fig.axes[0].get_xlabel() == "environment steps"
    )
    plt.close(fig)


# ---------------------------------------------------------------- the seed's flaws


def episode_ends():
    g = torch.Generator().manual_seed(0)
    T, N = 12, 3
    rewards, values, next_values = (torch.randn(T, N, generator=g) for _ in range(3))
    terminated = torch.zeros(T, N, dtype=torch.bool)
    truncated = torch.zeros(T, N, dtype=torch.bool)
    terminated[4, 0] = True
    truncated[7, 1] = True
    return rewards, values, next_values, terminated, truncated


def test_truncation_as_termination_drops_the_bootstrap_only_at_truncations():
    # catches a variant that changes nothing (it must differ at the cut) or breaks
    # terminations and ordinary steps
    rewards, values, next_values, terminated, truncated = episode_ends()
    good, _ = compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 0.8)
    bad, bad_returns = ex.compute_gae_truncation_as_termination(
        rewards, values, next_values, terminated, truncated, 0.9, 0.8
    )
    seed_style, _ = compute_gae(
        rewards, values, next_values, terminated | truncated, truncated, 0.9, 0.8
    )
    torch.testing.assert_close(bad, seed_style)
    assert bad[7, 1] == pytest.approx(float(rewards[7, 1] - values[7, 1]))
    assert not torch.isclose(bad[7, 1], good[7, 1])
    torch.testing.assert_close(bad[:, [0, 2]], good[:, [0, 2]])
    torch.testing.assert_close(bad[8:, 1], good[8:, 1])
    torch.testing.assert_close(bad_returns, bad + values)


def test_probability_ratio_objective_equals_the_log_ratio_one_where_exp_is_finite():
    # catches a flawed objective that is not the same L^CLIP in exact arithmetic
    g = torch.Generator().manual_seed(1)
    old = torch.randn(64, generator=g) - 2.0
    new = (old + 0.3 * torch.randn(64, generator=g)).requires_grad_()
    adv = torch.randn(64, generator=g)
    flawed = ex.probability_ratio_objective(new, old, adv, 0.2)
    (g_flawed,) = torch.autograd.grad(flawed, new)
    reference = clipped_surrogate_objective(new, old, adv, 0.2)
    (g_ref,) = torch.autograd.grad(reference, new)
    torch.testing.assert_close(flawed, reference)
    torch.testing.assert_close(g_flawed, g_ref)


@pytest.mark.parametrize("log_p", [-110.0, 95.0])
def test_probability_ratio_objective_breaks_where_float32_exp_does(log_p):
    # the flaw itself: exp underflows (log p < -103) or overflows (log p > 88.7)
    old = torch.full((4,), log_p)
    new = old + torch.tensor([0.0, 0.1, -0.1, 0.05])
    adv = torch.ones(4)
    assert torch.isfinite(clipped_surrogate_objective(new, old, adv, 0.2))
    assert not torch.isfinite(ex.probability_ratio_objective(new, old, adv, 0.2))


def test_critic_first_optimizers_keep_actor_and_critic_apart():
    # catches one Adam over both networks: its momentum would move the actor on
    # critic-only steps (and the critic on policy-only steps)
    run = start_run(PPOConfig(**SMALL))
    critic_optimizer = ex.CriticFirstUpdate("collected").split_optimizers(run)

    def owned(optimizer):
        return {id(p) for group in optimizer.param_groups for p in group["params"]}

    critic_ids = {id(p) for p in run.agent.critic.parameters()}
    assert owned(critic_optimizer) == critic_ids
    assert owned(run.optimizer) == {id(p) for p in run.agent.parameters()} - critic_ids
    buffer = make_buffer(run)
    for _ in range(2):  # the second round runs with Adam's momentum from the first
        collect_rollout(run, buffer)
        advantages, returns = gae_from_buffer(
            buffer, run.config.gamma, run.config.gae_lambda
        )
        batch = buffer.flatten(advantages, returns)
        settings = UpdateSettings.from_config(run.config)
        ppo_update(run.agent, run.optimizer, batch, settings, run.generator)
        actor = [p.detach().clone() for p in run.agent.actor.parameters()]
        critic = [p.detach().clone() for p in run.agent.critic.parameters()]
        only = dataclasses.replace(settings, ent_coef=0.0)
        critic_only = LessonFunctions(clipped_surrogate_objective=ex.zero_objective)
        ppo_update(
            run.agent, critic_optimizer, batch, only, run.generator,
            functions=critic_only,
        )  # fmt: skip
        for before, after in zip(actor, run.agent.actor.parameters(), strict=True):
            torch.testing.assert_close(after, before, rtol=0, atol=0)
        assert any(
            not torch.equal(b, a)
            for b, a in zip(critic, run.agent.critic.parameters(), strict=True)
        )


def test_value_rollout_uses_the_current_critic_on_the_right_observations():
    # catches V(s_{t+1}) computed from s_t (obs and reached_obs mixed up)
    run = start_run(PPOConfig(**SMALL))
    buffer = make_buffer(run)
    collect_rollout(run, buffer)
    stored = buffer.values.clone(), buffer.next_values.clone()
    value_rollout(run.agent, buffer)  # same critic as at collection: nothing changes
    torch.testing.assert_close(buffer.values, stored[0])
    torch.testing.assert_close(buffer.next_values, stored[1])
    with torch.no_grad():
        for p in run.agent.critic.parameters():
            p.add_(0.1)
    value_rollout(run.agent, buffer)
    assert not torch.allclose(buffer.next_values, stored[1])


def test_train_critic_first_modes_share_the_critic_fit_but_not_the_policy_step():
    # catches an `advantages_from` flag that is ignored
    config = PPOConfig(**SMALL)
    collected = ex.train_critic_first(config, advantages_from="collected")
    updated = ex.train_critic_first(config, advantages_from="updated")
    for result in (collected, updated):
        assert len(result.history) == config.num_updates
        assert result.global_step == config.total_steps
        assert all(math.isfinite(row["value_loss"]) for row in result.history)
    first_c, first_u = collected.history[0], updated.history[0]
    assert first_c["value_loss"] == first_u["value_loss"]  # the same fit of the critic
    assert first_c["approx_kl"] != first_u["approx_kl"]  # other advantages
    with pytest.raises(ValueError, match="advantages_from must be"):
        ex.train_critic_first(config, advantages_from="later")
    with pytest.raises(ValueError, match="shared_network=False"):
        ex.train_critic_first(config.replace(shared_network=True))
