"""Lesson 03's clipping explorer: the numbers it draws, checked against hand values."""

from __future__ import annotations

import numpy as np
import pytest

from ppo_lessons.widgets.clipping_explorer import (
    clipping_curves,
    clipping_explorer,
    clipping_status,
    draw_clipping_figure,
)

# ε = 0.2: ratios below, inside and above the trust interval [0.8, 1.2]
RATIOS = [0.5, 1.0, 1.5]


def test_positive_advantage_is_capped_above_one_plus_eps():
    curves = clipping_curves(RATIOS, clip_eps=0.2, advantage=2.0)
    # min(r A, clip(r) A) with A = 2: 0.5·2, 1·2, min(3, 1.2·2)
    np.testing.assert_allclose(curves.objective, [1.0, 2.0, 2.4])
    np.testing.assert_allclose(curves.unclipped, [1.0, 2.0, 3.0])
    # slope A where r·A is the smaller term, exactly 0 once r > 1 + ε
    np.testing.assert_allclose(curves.gradient, [2.0, 2.0, 0.0])
    assert (curves.low, curves.high) == pytest.approx((0.8, 1.2))


def test_negative_advantage_is_capped_below_one_minus_eps():
    curves = clipping_curves(RATIOS, clip_eps=0.2, advantage=-1.0)
    # min(-r, -clip(r)): -0.8 below the interval (clipped), -1.5 above (not clipped)
    np.testing.assert_allclose(curves.objective, [-0.8, -1.0, -1.5])
    np.testing.assert_allclose(curves.gradient, [0.0, -1.0, -1.0])


def test_clipped_objective_never_exceeds_the_unclipped_one():
    ratios = np.linspace(0.05, 3.0, 60)
    for advantage in (-1.5, 0.7):
        curves = clipping_curves(ratios, clip_eps=0.3, advantage=advantage)
        assert (curves.objective <= curves.unclipped + 1e-12).all()
        inside = (ratios >= 0.7) & (ratios <= 1.3)
        np.testing.assert_allclose(curves.objective[inside], curves.unclipped[inside])


def test_status_line_reports_the_objective_at_r_one_and_a_half():
    assert (
        clipping_status(0.2, 1.0) == "ε = 0.20, A = +1.0: L^CLIP at r = 1.5 is 1.2000"
    )
    assert clipping_status(0.3, -0.5) == (
        "ε = 0.30, A = -0.5: L^CLIP at r = 1.5 is -0.7500"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratios": [1.0], "clip_eps": 0.0, "advantage": 1.0},
        {"ratios": [1.0], "clip_eps": 0.2, "advantage": float("nan")},
        {"ratios": [0.0, 1.0], "clip_eps": 0.2, "advantage": 1.0},
    ],
)
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        clipping_curves(**kwargs)


def test_figure_is_labelled():
    fig = draw_clipping_figure(0.2, -1.0)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
    assert "ε = 0.20" in fig.axes[0].get_title()


def test_live_explorer_redraws_and_rewrites_its_status():
    box = clipping_explorer()
    assert "ppo-clip-explorer" in box._dom_classes
    controls = {
        w.description: w
        for row in box.children
        if hasattr(row, "children")
        for w in row.children
    }
    status = next(w for w in box.children if "ppo-clip-status" in w._dom_classes)
    assert status.value == clipping_status(0.2, 1.0)
    controls["ε"].value = 0.3
    assert status.value == clipping_status(0.3, 1.0)
    controls["advantage sign"].value = "A < 0"
    controls["|A|"].value = 2.0
    assert status.value == "ε = 0.30, A = -2.0: L^CLIP at r = 1.5 is -3.0000"
