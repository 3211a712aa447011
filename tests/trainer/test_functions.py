"""`train(config, functions=...)` trains with the functions it is given.

The functions are `independent_functions`: every exercise the trainer takes, written
again from the contracts without the package's code. With them alone PPO solves
CartPole; with a `ppo_loss` whose policy term has the wrong sign it does not, so
the trainer really calls what it gets. Measured with OMP_NUM_THREADS=1 on the
course's 2-core machine: three seeds of the fast torch-backend preset solve (mean
evaluation 500), 9-17 s each; the Gymnasium-backend preset 33-42 s per seed.
"""

from __future__ import annotations

import ast
import inspect
from collections import Counter
from collections.abc import Callable

import pytest
import torch
from support import independent_functions as own

from ppo_lessons import checks
from ppo_lessons.functions import TRAINER_EXERCISES
from ppo_lessons.presets import preset
from ppo_lessons.trainer import evaluate, train
from ppo_lessons.trainer_config import PPOConfig

SOLVED = 475.0  # CartPole-v1's reward threshold
NOT_LEARNING = 100.0  # a random policy scores about 22
EVAL_EPISODES = 10


def solve_score(config: PPOConfig, functions: dict[str, Callable]) -> float:
    """Mean return of 10 deterministic evaluation episodes after training."""
    result = train(config, functions=functions, progress=False)
    return float(evaluate(result.agent, config.env_id, EVAL_EPISODES).mean())


def flipped_ppo_loss(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_eps: float,
    value_clip_eps: float | None,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool,
) -> torch.Tensor:
    """`ppo_loss` with the policy term's sign flipped: +L^CLIP instead of −L^CLIP
    (gradient descent on it makes good actions less likely)."""
    objective, critic, mean_entropy = own.ppo_loss_terms(
        new_log_probs,
        old_log_probs,
        advantages,
        new_values,
        old_values,
        returns,
        entropy,
        clip_eps,
        value_clip_eps,
        normalize_advantages,
    )
    return objective + vf_coef * critic - ent_coef * mean_entropy


def all_but(*names: str) -> dict[str, Callable]:
    return {k: v for k, v in own.all_functions().items() if k not in names}


# ---------------------------------------------------------------- the functions


def test_every_trainer_exercise_has_an_independent_version() -> None:
    # catches: an exercise added to the trainer that this proof does not cover
    assert set(own.FUNCTION_NAMES) == set(TRAINER_EXERCISES)


def test_independent_functions_do_not_import_the_package() -> None:
    # catches: a "second" implementation that is the reference re-exported
    tree = ast.parse(inspect.getsource(own))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ]
    assert not [name for name in imported if name.split(".")[0] == "ppo_lessons"]


@pytest.mark.parametrize("name", own.FUNCTION_NAMES)
def test_exercise_check_accepts_the_independent_version(name: str) -> None:
    # catches: a check that rejects a correct function written another way, or an
    # independent function that breaks its contract
    result = getattr(checks, f"check_{name}")(getattr(own, name))
    assert result


# ---------------------------------------------------------------- the trainer


def count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Wrap every independent function in a call counter, in the module itself, so
    their calls of one another are counted too."""
    calls: Counter = Counter()

    def counted(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name in own.FUNCTION_NAMES:
        monkeypatch.setattr(own, name, counted(name, getattr(own, name)))
    return calls


SHORT_RUNS = {  # two updates, every option that calls a function switched on
    "CartPole-v1": dict(num_envs=4, num_steps=32, total_steps=256),
    "Pendulum-v1": dict(num_envs=4, num_steps=32, total_steps=256),
}
GIVEN = {
    "every function": own.FUNCTION_NAMES,
    "the reference update with the pieces": tuple(
        n for n in own.FUNCTION_NAMES if n not in ("ppo_update", "collect_rollout")
    ),
    "the reference loss from objective and value loss": (
        "clipped_surrogate_objective",
        "value_loss",
        "compute_gae",
    ),
}
UNUSED = {  # Box or Discrete actions only; the replay in recurrent runs only
    "CartPole-v1": {"gaussian_log_prob", "replay_sequence"},
    "Pendulum-v1": {"categorical_entropy", "replay_sequence"},
}


@pytest.mark.parametrize("given", list(GIVEN))
@pytest.mark.parametrize("env_id", list(SHORT_RUNS))
def test_trainer_calls_every_function_it_is_given(
    monkeypatch: pytest.MonkeyPatch, env_id: str, given: str
) -> None:
    # catches: a name the trainer accepts and then ignores (the reference runs
    # instead), e.g. the entropy or the minibatches never reaching the update
    calls = count_calls(monkeypatch)
    functions = {name: getattr(own, name) for name in GIVEN[given]}
    config = preset(
        env_id,
        env_backend="torch",
        seed=0,
        update_epochs=2,
        num_minibatches=2,
        clip_vloss=True,
        target_kl=1.0,
        ent_coef=0.01,
        **SHORT_RUNS[env_id],
    )
    result = train(config, functions=functions, progress=False)
    assert len(result.history) == 2
    expected = set(GIVEN[given]) - UNUSED[env_id]
    assert {name for name in expected if calls[name] == 0} == set()
    assert calls["compute_gae"] == 2  # once after each rollout


def test_a_recurrent_run_calls_every_function_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # catches: a recurrent update that replays with the reference instead of the
    # given replay_sequence, or skips the given loss, minibatches or GAE
    calls = count_calls(monkeypatch)
    feed_forward = {"ppo_update", "collect_rollout", "gaussian_log_prob"}
    given = [name for name in own.FUNCTION_NAMES if name not in feed_forward]
    config = preset(
        "CartPoleNoVel-v1", seed=0, num_envs=4, num_steps=16, total_steps=128,
        update_epochs=2, num_minibatches=2, clip_vloss=True, target_kl=1.0,
        ent_coef=0.01,
    )  # fmt: skip
    result = train(
        config, functions={n: getattr(own, n) for n in given}, progress=False
    )
    assert len(result.history) == 2
    assert {name for name in given if calls[name] == 0} == set()
    # per update: the ratio-is-one check, then 2 epochs x 2 minibatches
    assert calls["replay_sequence"] == 2 * (1 + 2 * 2)
    with pytest.raises(ValueError, match="ppo_update .* are feed-forward"):
        train(config, functions={"ppo_update": own.ppo_update}, progress=False)


def test_the_flipped_loss_differs_only_in_the_policy_sign() -> None:
    # catches: the flipped loss of the next test differing from ppo_loss in more
    # than the policy term's sign
    gen = torch.Generator().manual_seed(5)
    new, old, adv, v, v_old, ret, ent = (
        torch.randn(12, generator=gen) for _ in range(7)
    )
    args = (new, old, adv, v, v_old, ret, ent, 0.2, 0.3, 0.7, 0.05, True)
    objective = own.ppo_loss_terms(*args[:9], True)[0]
    torch.testing.assert_close(
        flipped_ppo_loss(*args), own.ppo_loss(*args) + 2 * objective
    )


# ---------------------------------------------------------------- learning


def test_independent_functions_solve_cartpole() -> None:
    # catches: a trainer that needs something of the references to learn
    config = preset("CartPole-v1", env_backend="torch", seed=1)
    assert solve_score(config, own.all_functions()) >= SOLVED


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_independent_functions_solve_cartpole_other_seeds(seed: int) -> None:
    config = preset("CartPole-v1", env_backend="torch", seed=seed)
    assert solve_score(config, own.all_functions()) >= SOLVED


@pytest.mark.slow
def test_independent_functions_solve_cartpole_on_gymnasium_envs() -> None:
    # catches: a rollout that only works with the batched tensor envs
    config = preset("CartPole-v1", env_backend="gymnasium", seed=1)
    assert solve_score(config, own.all_functions()) >= SOLVED


@pytest.mark.slow
def test_reference_update_with_independent_pieces_solves_cartpole() -> None:
    # the control of the next test: the same functions, the loss's sign right
    config = preset("CartPole-v1", env_backend="torch", seed=1)
    assert solve_score(config, all_but("ppo_update")) >= SOLVED


def test_a_flipped_policy_term_stops_learning() -> None:
    # catches: a trainer that accepts `ppo_loss` and trains with the reference
    config = preset("CartPole-v1", env_backend="torch", seed=1)
    functions = all_but("ppo_update") | {"ppo_loss": flipped_ppo_loss}
    assert solve_score(config, functions) < NOT_LEARNING


# ---------------------------------------------------------------- refused


def test_an_unknown_name_is_refused_with_the_valid_names() -> None:
    config = preset("CartPole-v1", env_backend="torch", seed=1)
    with pytest.raises(ValueError, match="'compute_advantages'") as raised:
        train(config, functions={"compute_advantages": own.compute_gae})
    missing = [name for name in TRAINER_EXERCISES if name not in str(raised.value)]
    assert missing == []


def test_a_value_that_is_not_callable_is_refused() -> None:
    config = preset("CartPole-v1", env_backend="torch", seed=1)
    with pytest.raises(ValueError, match=r"functions\['compute_gae'\].*callable"):
        train(config, functions={"compute_gae": "gae.py"})
