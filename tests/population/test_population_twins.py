"""The population extends the single agent; it does not copy it (STYLE 12d).

`ppo_lessons.population` adds a member axis to `train`'s pieces. These tests read
the population's source (with `ast`) and fail when it grows a twin again: a function
or class with the name of a single-agent piece, a piece it stops importing, the PPO
loss recombined (`vf_coef * ...`) anywhere but `ppo_lessons.update`, the formulas of
the advantage normalization, the schedule, the reward scaling or "solved" written
again, or a record read by position. Each rule is also run on a planted twin, so a
rule that can no longer fail is caught too.

And the pieces with a member axis give, member by member, what the single agent's
give (`RewardScaler`, `learning_rate_at`, `clip_fraction`, the activation).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

import ppo_lessons
from ppo_lessons.networks import ActorCritic
from ppo_lessons.normalize import RewardScaler
from ppo_lessons.population.network import PopulationActorCritic
from ppo_lessons.trainer import learning_rate_at
from ppo_lessons.update import clip_fraction

PACKAGE = Path(ppo_lessons.__file__).parent
POPULATION = PACKAGE / "population"
# the single agent's modules, whose top-level names the population may not redefine
SINGLE_AGENT_MODULES = (
    "buffer", "clipping", "envs", "gae", "history", "importance_sampling", "losses",
    "networks", "normalize", "rollout", "speed", "trainer", "update",
)  # fmt: skip
# the pieces the issue named, each with the single-agent module that holds it: the
# population must import each from there (and define none of them)
PIECES = {
    "learning_rate_at": "ppo_lessons.trainer",  # the learning-rate schedule
    "note_solved": "ppo_lessons.trainer",  # the "solved" tracker
    "rollout_buffer": "ppo_lessons.trainer",  # the buffer constructor
    "history_row": "ppo_lessons.history",  # the history row
    "ppo_loss_terms": "ppo_lessons.update",  # the loss combination
    "clip_fraction": "ppo_lessons.update",
    "minibatch_metrics": "ppo_lessons.update",  # the metrics record
    # the lesson functions (the references unless a variant gives its own)
    "trainer_functions": "ppo_lessons.functions",
    "RewardScaler": "ppo_lessons.normalize",  # the reward scaler
    "RunningMeanStd": "ppo_lessons.normalize",
    "flatten_parameters": "ppo_lessons.speed",  # the flat parameters
    "linear_layers": "ppo_lessons.networks",
}
# arithmetic that belongs to one single-agent piece: (name, operators, where it is)
LOSS = "the loss combination is ppo_lessons.update.ppo_loss_terms"
FORMULAS = {
    "vf_coef": ((ast.Mult,), LOSS),
    "ent_coef": ((ast.Mult,), LOSS),
    "num_updates": ((ast.Div,), "the schedule is ppo_lessons.trainer.learning_rate_at"),
    "SOLVED_WINDOW": ((ast.Div, ast.Compare), "'solved' is trainer.note_solved"),
}
# constants of a single-agent formula, whose mere use means the formula is written again
CONSTANTS = {
    "EPSILON": "the scaling is ppo_lessons.normalize (RewardScaler, RunningMeanStd)",
    "CLIP": "the scaling is ppo_lessons.normalize (RewardScaler, RunningMeanStd)",
}


def sources(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.glob("*.py"))}


def top_level_names(text: str) -> set[str]:
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in ast.parse(text).body if isinstance(node, defs)}


def single_agent_names() -> set[str]:
    names = set()
    for module in SINGLE_AGENT_MODULES:
        names |= top_level_names((PACKAGE / f"{module}.py").read_text())
    return names


def redefined(population: Mapping[str, str]) -> list[str]:
    """A population function or class (any depth) named as a single-agent piece."""
    taken = single_agent_names() | set(PIECES)
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    found = []
    for name, text in population.items():
        for node in ast.walk(ast.parse(text)):
            top = isinstance(node, defs) and node.name in taken
            if top and not node.name.startswith("__"):
                found.append(f"{name}:{node.lineno} defines {node.name}")
    return found


def not_imported(population: Mapping[str, str]) -> list[str]:
    """Pieces no population module imports from their single-agent module."""
    imported = set()
    for text in population.values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                imported |= {(node.module, alias.name) for alias in node.names}
    return [
        f"{piece} is not imported from {module}"
        for piece, module in PIECES.items()
        if (module, piece) not in imported
    ]


def operand_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return operand_name(node.value)
    return None


def formulas(sources: Mapping[str, str]) -> list[str]:
    """Arithmetic of a single-agent formula (`FORMULAS`, `CONSTANTS`), and the
    advantage normalization (a `.std()` call), written again."""
    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            where = f"{name}:{getattr(node, 'lineno', '?')}"
            operands, kind = [], None
            if isinstance(node, ast.BinOp):
                operands, kind = [node.left, node.right], type(node.op)
            elif isinstance(node, ast.Compare):
                operands, kind = [node.left, *node.comparators], ast.Compare
            for operand in operands:
                ops, why = FORMULAS.get(operand_name(operand), ((), ""))
                if kind in ops:
                    segment = ast.get_source_segment(text, node)
                    found.append(f"{where} {segment}: {why}")
            if isinstance(node, (ast.Name, ast.Attribute, ast.alias)):
                used = getattr(node, "id", None) or getattr(node, "attr", None)
                used = used or getattr(node, "name", None)
                if used in CONSTANTS:
                    found.append(f"{where} {used}: {CONSTANTS[used]}")
            call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if call and node.func.attr == "std":
                found.append(
                    f"{where} .std(): the advantage normalization is "
                    "ppo_lessons.update.advantages_for_loss"
                )
    return found


def positional_reads(sources: Mapping[str, str]) -> list[str]:
    """A record read by position: an integer index other than 0 and -1 (the first
    or last of a sequence of like things), or a slice bound other than 0 and ±1
    (all but the first or last); shapes are exempt."""
    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Subscript):
                continue
            if isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
                continue
            parts = (
                node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            )
            bad = []
            for part in parts:
                if isinstance(part, ast.Slice):
                    bounds = (part.lower, part.upper, part.step)
                    bad += [b for b in bounds if integer(b) not in (None, 0, 1, -1)]
                elif integer(part) not in (None, 0, -1):
                    bad.append(part)
            if bad:
                found.append(
                    f"{name}:{node.lineno} {ast.get_source_segment(text, node)}"
                )
    return found


def integer(node: ast.AST | None) -> int | None:
    """The value of an integer literal (negated ones too), else None."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def loss_combinations(sources: Mapping[str, str]) -> list[str]:
    """Products with vf_coef or ent_coef: the PPO loss assembled again."""
    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
                names = {operand_name(node.left), operand_name(node.right)}
                if names & {"vf_coef", "ent_coef"}:
                    segment = ast.get_source_segment(text, node)
                    found.append(f"{name}:{node.lineno} {segment}")
    return found


def package_sources_but_update() -> dict[str, str]:
    return {
        str(path.relative_to(PACKAGE)): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "update.py"
    }


# ---------------------------------------------------------------- the guards


def test_the_population_defines_no_single_agent_piece():
    assert redefined(sources(POPULATION)) == []


def test_the_population_imports_each_piece_from_the_single_agent():
    assert not_imported(sources(POPULATION)) == []


def test_the_loss_is_combined_only_in_the_update_module():
    """`policy + vf_coef·L^V − ent_coef·H` lives in `update.ppo_loss_terms` alone."""
    assert loss_combinations(package_sources_but_update()) == []
    assert loss_combinations({"update.py": (PACKAGE / "update.py").read_text()})


def test_the_population_writes_no_single_agent_formula_again():
    assert formulas(sources(POPULATION)) == []


def test_the_population_reads_no_record_by_position():
    assert positional_reads(sources(POPULATION)) == []


PLANTED = {
    "planted.py": """
from ppo_lessons.trainer import SOLVED_WINDOW

from ppo_lessons.normalize import EPSILON

def note_solved(members, threshold, step, seconds):
    for m in members:
        if sum(m.recent_returns) / SOLVED_WINDOW >= threshold:
            m.first_step_solved = step

def member_learning_rates(settings, update, num_updates):
    frac = 1.0 - (update - 1.0) / num_updates
    return frac * settings.learning_rate

def member_losses(policy_loss, v_loss, entropy, settings, advantages):
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    return policy_loss + settings.vf_coef * v_loss - settings.ent_coef * entropy

def log_members(v, group):
    return float(v[5]), group.key[4], v[:5]
"""
}


def test_each_guard_fails_on_a_planted_twin():
    """The rules above can fail: each catches its piece in a planted copy."""
    assert redefined(PLANTED) == ["planted.py:6 defines note_solved"]
    assert len(not_imported(PLANTED)) == len(PIECES)
    assert len(loss_combinations(PLANTED)) == 2
    found = "\n".join(formulas(PLANTED))
    expected_formulas = ("SOLVED_WINDOW", "num_updates", "vf_coef", ".std()", "EPSILON")
    for expected in expected_formulas:
        assert expected in found, (expected, found)
    reads = "\n".join(positional_reads(PLANTED))
    for expected in ("v[5]", "group.key[4]", "v[:5]"):
        assert expected in reads, (expected, reads)


# ---------------------------------------------------------------- the member axis


def test_a_reward_scaler_with_a_member_axis_is_one_scaler_per_member():
    """Catches statistics shared across members, or one member's γ used for all."""
    gammas = torch.tensor([0.99, 0.9, 0.5], dtype=torch.float64)
    N, K, T = 4, 3, 30
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(T, N, K, generator=g) * torch.tensor([1.0, 10.0, 0.1])
    done = torch.rand(T, N, K, generator=g) < 0.1
    members = RewardScaler(N, gammas)
    singles = [RewardScaler(N, float(gamma)) for gamma in gammas]
    for t in range(T):
        got = members.scale(rewards[t], done[t])  # (N, K)
        for k, single in enumerate(singles):
            expected = single.scale(rewards[t, :, k], done[t, :, k])
            torch.testing.assert_close(got[:, k], expected)
    assert set(RewardScaler(N, 0.99).state_dict()) == {
        "returns",
        "rms.mean",
        "rms.var",
        "rms.count",
    }  # a single agent's checkpoint keeps its keys


def test_the_schedule_with_a_member_axis_is_each_members_schedule():
    rates = torch.tensor([1e-3, 3e-4, 2.5e-4])
    anneal = torch.tensor([True, False, True])
    for update in (1, 5, 10):
        got = learning_rate_at(rates, anneal, update, 10)
        expected = [
            learning_rate_at(float(r), bool(a), update, 10)
            for r, a in zip(rates, anneal, strict=True)
        ]
        torch.testing.assert_close(got, torch.tensor(expected))
    assert learning_rate_at(1e-3, True, 1, 10) == 1e-3
    assert learning_rate_at(1e-3, True, 10, 10) == pytest.approx(1e-4)
    assert learning_rate_at(1e-3, False, 10, 10) == 1e-3


def test_the_clip_fraction_with_a_member_axis_is_each_members():
    ratio = torch.tensor([[1.0, 1.15, 0.7, 1.3], [1.0, 1.15, 0.7, 1.3]])
    eps = torch.tensor([[0.1], [0.2]])
    got = clip_fraction(ratio, eps)
    assert got.tolist() == [clip_fraction(ratio[0], 0.1), clip_fraction(ratio[1], 0.2)]
    assert got.tolist() == [0.75, 0.5]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_population_network_computes_the_configs_activation(activation):
    """Catches an activation guessed, or fixed, instead of read from the config."""
    torch.manual_seed(0)
    agents = [
        ActorCritic(4, 2, discrete=True, hidden_sizes=(8, 8), activation=activation)
        for _ in range(3)
    ]
    net = PopulationActorCritic(agents, num_envs=1, activation=activation)
    obs = torch.randn(3, 5, 4)
    logits, values = net.forward_members(obs)
    for k, agent in enumerate(agents):
        out, value = agent.policy_and_value(obs[k])
        torch.testing.assert_close(logits[k], out)
        torch.testing.assert_close(values[k], value)
