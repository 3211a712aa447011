"""Lesson 04's GAE explorer: advantages and TD-error weights against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppo_lessons.widgets.gae_explorer import (
    Trajectory,
    default_trajectory,
    draw_gae_figure,
    gae_explorer,
    gae_status,
    gae_view,
)


def _two_episodes() -> Trajectory:
    """Steps 0-1: an episode cut by a time limit at step 1; steps 2-3: one that ends."""
    f = torch.float64
    return Trajectory(
        rewards=torch.tensor([1.0, 2.0, 0.0, 4.0], dtype=f),
        values=torch.tensor([0.5, 1.0, 2.0, 1.0], dtype=f),
        next_values=torch.tensor([1.0, 3.0, 1.0, 9.0], dtype=f),
        terminated=torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=f),
        truncated=torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=f),
    )


def test_advantages_by_hand():
    view = gae_view(0.5, 0.5, step=0, trajectory=_two_episodes())
    # δ = r + γ(1 − term) V' − V
    np.testing.assert_allclose(view.deltas, [1.0, 2.5, -1.5, 3.0])
    # A_1 = δ_1 (truncated: trace cut); A_0 = δ_0 + γλ A_1; A_3 = δ_3; A_2 = δ_2 + γλ δ_3
    np.testing.assert_allclose(view.advantages, [1.625, 2.5, -0.75, 3.0])
    np.testing.assert_allclose(view.td_advantages, view.deltas)
    np.testing.assert_allclose(view.mc_advantages, [2.25, 2.5, 0.0, 3.0])


def test_weights_are_powers_of_gamma_lambda_and_stop_at_the_episode_end():
    view = gae_view(0.5, 0.5, step=2, trajectory=_two_episodes())
    np.testing.assert_allclose(view.weights, [0.0, 0.0, 1.0, 0.25])
    view = gae_view(0.9, 0.5, step=0, trajectory=_two_episodes())
    np.testing.assert_allclose(view.weights, [1.0, 0.45, 0.0, 0.0])


def test_advantage_is_the_weighted_sum_of_td_errors():
    for gamma, lam in ((0.99, 0.95), (0.8, 0.3)):
        for step in (0, 5, 11):
            view = gae_view(gamma, lam, step)
            assert view.advantages[step] == pytest.approx(view.weights @ view.deltas)


def test_default_trajectory_limits():
    traj = default_trajectory()
    values = traj.values.numpy()
    # γ = 1, λ = 1: A_t = (sum of the remaining rewards) − V(s_t) = 1 − V(s_t)
    np.testing.assert_allclose(gae_view(1.0, 1.0).advantages, 1.0 - values)
    # λ = 0: only the last step sees a reward, δ_T−1 = 1 − V(s_T−1)
    np.testing.assert_allclose(gae_view(1.0, 0.0).advantages[-1], 1.0 - values[-1])


def test_status_line():
    # γ = λ = 1 on the default ramp 0.2 … 0.8: A_0 = 1 − 0.2
    assert gae_status(1.0, 1.0) == "γ = 1.00, λ = 1.00: A_0 = 0.8000"
    assert gae_status(0.5, 0.0, step=11) == "γ = 0.50, λ = 0.00: A_11 = 0.2000"


def test_bad_step_is_rejected():
    with pytest.raises(ValueError, match="step"):
        gae_view(0.9, 0.9, step=12)


def test_figure_is_labelled():
    fig = draw_gae_figure(0.9, 0.5, 3)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None


def test_live_explorer_redraws_and_rewrites_its_status():
    box = gae_explorer()
    assert "ppo-gae-explorer" in box._dom_classes
    controls = {w.description: w for w in box.children[0].children}
    status = next(w for w in box.children if "ppo-gae-status" in w._dom_classes)
    assert status.value == gae_status(0.99, 0.95)
    controls["λ"].value = 1.0
    controls["γ"].value = 1.0
    assert status.value == "γ = 1.00, λ = 1.00: A_0 = 0.8000"
