"""Lesson 06's ratio-spread explorer: the per-epoch ratios and clip fractions it draws."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from ppo_lessons.update import approx_kl
from ppo_lessons.widgets.ratio_spread import (
    batch_ratios,
    collect_cartpole_batch,
    draw_ratio_spread_figure,
    ratio_spread,
    ratio_spread_explorer,
)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def agent_and_batch():
    return collect_cartpole_batch(num_envs=2, num_steps=64, seed=3)


def test_batch_is_a_real_cartpole_rollout(agent_and_batch) -> None:
    """Catches a batch with the wrong size or without the agent's own log-probs."""
    agent, batch = agent_and_batch
    assert batch.obs.shape == (128, 4)
    assert batch.actions.shape == (128,)
    assert set(batch.actions.tolist()) <= {0, 1}
    # the fresh agent is the one that collected the batch: every ratio is exactly 1
    np.testing.assert_allclose(batch_ratios(agent, batch).numpy(), 1.0, atol=1e-6)


def test_ratios_start_at_one_and_spread(agent_and_batch) -> None:
    """Catches recording the ratios before the step (no spread) or comparing against
    the current policy instead of the batch's old log-probs (always 1)."""
    agent, batch = agent_and_batch
    spread = ratio_spread(agent, batch, learning_rate=3e-3, epochs=6)
    assert spread.ratios.shape == (7, 128)
    np.testing.assert_allclose(spread.ratios[0], 1.0, atol=1e-6)
    assert spread.clip_fractions[0] == 0.0
    assert spread.approx_kls[0] == pytest.approx(0.0, abs=1e-7)
    log_spread = np.abs(np.log(spread.ratios)).mean(axis=1)
    assert log_spread[-1] > 10 * max(log_spread[0], 1e-6)
    assert spread.approx_kls[-1] > 0


def test_clip_fraction_and_kl_agree_with_the_ratios(agent_and_batch) -> None:
    """Catches a clip fraction that counts only one side of the band, or a KL that is
    not the k3 estimate of the recorded ratios."""
    agent, batch = agent_and_batch
    spread = ratio_spread(agent, batch, learning_rate=1e-2, epochs=4, clip_coef=0.1)
    outside = (np.abs(spread.ratios - 1) > 0.1).mean(axis=1)
    np.testing.assert_allclose(spread.clip_fractions, outside, atol=1e-7)
    below = (spread.ratios < 0.9).any() and (spread.ratios > 1.1).any()
    assert below, "a large step should push ratios out of both sides of the band"
    for ratios, kl in zip(spread.ratios, spread.approx_kls, strict=True):
        r = torch.as_tensor(ratios)
        expected = approx_kl(r.log(), torch.zeros_like(r), "k3")
        assert kl == pytest.approx(float(expected), rel=1e-5, abs=1e-8)


def test_a_larger_learning_rate_clips_more(agent_and_batch) -> None:
    """Catches a learning rate that is ignored (both runs would be identical)."""
    agent, batch = agent_and_batch
    slow = ratio_spread(agent, batch, learning_rate=1e-4, epochs=3)
    fast = ratio_spread(agent, batch, learning_rate=1e-2, epochs=3)
    assert slow.clip_fractions.max() == 0.0
    assert fast.clip_fractions.max() > 0.05


def test_the_agent_is_left_unchanged_and_runs_repeat(agent_and_batch) -> None:
    """Catches training the caller's agent in place (the explorer would then start
    each learning rate from an already-updated policy) or unseeded minibatches."""
    agent, batch = agent_and_batch
    before = [p.detach().clone() for p in agent.parameters()]
    first = ratio_spread(agent, batch, learning_rate=1e-3, epochs=2, seed=5)
    second = ratio_spread(agent, batch, learning_rate=1e-3, epochs=2, seed=5)
    for p, q in zip(agent.parameters(), before, strict=True):
        assert torch.equal(p, q)
    np.testing.assert_array_equal(first.ratios, second.ratios)


def test_bad_arguments_are_named(agent_and_batch) -> None:
    agent, batch = agent_and_batch
    with pytest.raises(ValueError, match="epochs"):
        ratio_spread(agent, batch, epochs=0)
    spread = ratio_spread(agent, batch, epochs=1)
    with pytest.raises(ValueError, match="epoch must be in"):
        draw_ratio_spread_figure(spread, epoch=2)


def test_figure_shades_the_clip_band(agent_and_batch) -> None:
    agent, batch = agent_and_batch
    spread = ratio_spread(agent, batch, learning_rate=3e-3, epochs=2, clip_coef=0.3)
    fig = draw_ratio_spread_figure(spread, epoch=1)
    ax_hist = fig.axes[0]
    spans = [p for p in ax_hist.patches if p.get_label().startswith("1 ± ε")]
    assert spans, "the clip band should be shaded"
    x0, x1 = spans[0].get_x(), spans[0].get_x() + spans[0].get_width()
    assert (x0, x1) == pytest.approx((0.7, 1.3))
    assert "epoch 1" in ax_hist.get_title()
    matplotlib.pyplot.close(fig)


def test_explorer_builds() -> None:
    box = ratio_spread_explorer(epochs=2)
    assert len(box.children) == 2
