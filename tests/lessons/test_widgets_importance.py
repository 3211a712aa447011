"""The importance-weight explorer's numbers (lesson 02): exact moments, simulation, KL.

The exact formulas are checked against numerical integration and the simulation against
the exact formulas, so a wrong closed form and a wrong simulator cannot agree by accident.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from ppo_lessons.widgets.importance import (
    draw_importance_figure,
    exact_estimate_std,
    gaussian_kl,
    importance_explorer,
    simulate_estimates,
    weight_moments,
)

matplotlib.use("Agg")


def _numeric_moments(shift: float, std: float) -> tuple[float, float]:
    x = np.linspace(-30, 30, 600_001)
    b = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    p = np.exp(-0.5 * ((x - shift) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    integrand = p**2 / b
    dx = x[1] - x[0]
    return float(integrand.sum() * dx), float((integrand * x**2).sum() * dx)


@pytest.mark.parametrize(
    ("shift", "std"), [(0.0, 1.0), (1.3, 1.0), (-0.7, 0.6), (0.5, 1.3)]
)
def test_weight_moments_match_numerical_integration(shift: float, std: float) -> None:
    """Catches a wrong Gaussian-integral constant (a, β or c) in the closed form."""
    w2, w2x2 = weight_moments(shift, std)
    n_w2, n_w2x2 = _numeric_moments(shift, std)
    assert w2 == pytest.approx(n_w2, rel=1e-6)
    assert w2x2 == pytest.approx(n_w2x2, rel=1e-6)


def test_same_policy_has_unit_weights() -> None:
    """Catches a formula that is off when π = b: then w = 1, E[w²] = 1, E[w²x²] = 1."""
    assert weight_moments(0.0, 1.0) == pytest.approx((1.0, 1.0))
    assert exact_estimate_std(0.0, 1.0, 100) == pytest.approx(0.1)


def test_heavy_tailed_target_has_infinite_variance() -> None:
    """Catches returning a finite (negative-a) value when σ² ≥ 2, where the integral diverges."""
    assert weight_moments(0.0, math.sqrt(2.0)) == (math.inf, math.inf)
    assert math.isinf(exact_estimate_std(1.0, 1.5, 10))


@pytest.mark.parametrize(("shift", "std"), [(0.0, 1.0), (1.0, 1.0), (0.5, 0.8)])
def test_simulation_is_unbiased_with_the_exact_spread(shift: float, std: float) -> None:
    """Catches a wrong weight (e.g. b/π, or a missing log σ term): the estimates would
    be biased or spread differently from the exact formula."""
    result = simulate_estimates(shift, std, num_samples=50, num_trials=4000, seed=1)
    exact = exact_estimate_std(shift, std, 50)
    assert result.true_value == shift
    assert abs(result.estimates.mean() - shift) < 4 * exact / math.sqrt(4000)
    assert result.std == pytest.approx(exact, rel=0.1)


def test_effective_sample_size_falls_with_drift() -> None:
    """Catches an ESS formula that ignores the weights (it would stay at n)."""
    near = simulate_estimates(0.0, 1.0, num_samples=100, num_trials=200, seed=0)
    far = simulate_estimates(2.0, 1.0, num_samples=100, num_trials=200, seed=0)
    assert near.ess == pytest.approx(np.full(200, 100.0))
    assert far.ess.mean() < 30


def test_simulation_is_reproducible() -> None:
    """Catches drawing from a global random state instead of the seeded generator."""
    a = simulate_estimates(1.0, seed=3, num_trials=10)
    b = simulate_estimates(1.0, seed=3, num_trials=10)
    assert np.array_equal(a.estimates, b.estimates)


def test_gaussian_kl() -> None:
    """Catches a KL with the arguments swapped or a missing term: KL(N(0,1)‖N(μ,σ²))."""
    assert gaussian_kl(0.0, 1.0) == 0.0
    assert gaussian_kl(2.0, 1.0) == pytest.approx(2.0)
    assert gaussian_kl(0.0, 2.0) == pytest.approx(math.log(2) + 1 / 8 - 0.5)


def test_bad_arguments_are_named() -> None:
    """Catches silently accepting a non-positive σ or an empty sample."""
    with pytest.raises(ValueError, match="target_std"):
        weight_moments(0.0, 0.0)
    with pytest.raises(ValueError, match="num_samples"):
        simulate_estimates(0.0, num_samples=0)


def test_figure_and_widget_build() -> None:
    """Catches a drawing or widget-wiring error (a panel or slider that raises)."""
    fig = draw_importance_figure(shift=1.0, num_trials=50)
    assert len(fig.axes) == 4  # three panels and the weight's twin axis
    titles = [ax.get_title() for ax in fig.axes]
    assert any("KL" in title for title in titles)
    matplotlib.pyplot.close(fig)
    ui = importance_explorer(num_trials=20)
    sliders = ui.children[0].children
    sliders[0].value = 2.0  # moving a slider redraws without raising
    assert [s.description for s in sliders] == ["μ", "σ", "n"]
