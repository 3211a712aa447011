"""The grader on every exercise of the course, including those whose function returns
networks (5.3) or works on objects (7.1's envs and buffer, 7.2's agent, optimizer and
generator).

One run of `python -m ppo_lessons.grade` grades the solution notebooks as one
student's submission (every exercise must get its full points), a student with a
wrong version of each of those three exercises (0 points, with the check's message),
and one whose networks are of a class of their own, which the grader cannot rebuild
(left to be graded by hand, its points pending, never a silent 0). The record/replay
core is also tested in-process: every reference replays to its direct verdict, and
records no function could have produced are refused.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_grade import write_notebook  # the test's folder is on sys.path

from ppo_lessons import checks
from ppo_lessons.exercises import EXERCISES
from ppo_lessons.grading.records import (
    FORMAT,
    VERSION,
    MalformedRecords,
    NotGradable,
    Recorder,
    Replayer,
    ReplayMismatch,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- wrong versions

NETWORKS_DEFAULT_INIT = """
import torch
from torch import nn

def actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation):
    act = nn.Tanh if activation == "tanh" else nn.ReLU
    def mlp(out):
        sizes = [obs_dim, *hidden_sizes, out]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))  # PyTorch's default init
            if i < len(sizes) - 2:
                layers.append(act())
        return nn.Sequential(*layers)
    return mlp(action_dim), mlp(1)
"""

NETWORKS_OWN_CLASS = """
import torch
from torch import nn
from ppo_lessons.networks import actor_critic_networks as reference

class Wrapped(nn.Module):  # the right network, inside a class of the student's
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)

def actor_critic_networks(obs_dim, action_dim, hidden_sizes, activation):
    actor, critic = reference(obs_dim, action_dim, hidden_sizes, activation)
    return Wrapped(actor), Wrapped(critic)
"""

ROLLOUT_LATE = """
import torch
from ppo_lessons.rollout import value_rollout

@torch.no_grad()
def collect_rollout(agent, envs, buffer, obs, generator=None):
    for t in range(buffer.num_steps):
        actions, log_probs = agent.sample(agent.policy(obs), generator)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        buffer.obs[t], buffer.actions[t], buffer.log_probs[t] = obs, actions, log_probs
        buffer.rewards[t] = rewards
        buffer.terminated[t], buffer.truncated[t] = terminated, truncated
        buffer.reached_obs[t] = info["final_obs"]
    value_rollout(agent, buffer)
    return obs
"""

UPDATE_NO_ZERO_GRAD = """
import torch
from torch import nn
from ppo_lessons.update import MINIBATCH_METRICS, minibatch_indices, ppo_loss

def ppo_update(agent, optimizer, batch, settings, generator=None):
    params = [p for g in optimizer.param_groups for p in g["params"]]
    B = batch.advantages.shape[0]
    epochs = 0
    for _ in range(settings.update_epochs):
        kls = []
        for idx in minibatch_indices(B, settings.minibatch_size, generator):
            logits, values = agent.policy_and_value(batch.obs[idx])
            log_probs, entropy = agent.log_prob_entropy(logits, batch.actions[idx])
            log_ratio = log_probs - batch.log_probs[idx]
            kls.append((log_ratio.exp() - 1 - log_ratio).mean().detach())
            loss = ppo_loss(
                log_probs, batch.log_probs[idx], batch.advantages[idx], values,
                batch.values[idx], batch.returns[idx], entropy, settings.clip_coef,
                settings.clip_coef if settings.clip_vloss else None,
                settings.vf_coef, settings.ent_coef, settings.norm_adv,
            )
            loss.backward()  # no optimizer.zero_grad(): the gradients accumulate
            if settings.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
        epochs += 1
        kl = float(torch.stack(kls).mean())
        if settings.target_kl is not None and kl > settings.target_kl:
            break
    out = {name: torch.tensor(0.0) for name in MINIBATCH_METRICS}
    out["epochs"] = torch.tensor(epochs)
    return out
"""


def exercise_notebook(path: Path, number: str, function: str, body: str) -> None:
    write_notebook(
        path,
        "import torch",
        f"# Exercise {number}: {function}\n" + textwrap.dedent(body).strip(),
        f"from ppo_lessons.checks import check_{function}\n\ncheck_{function}({function})",
    )


# ---------------------------------------------------------------- one run


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("stateful")
    submissions = root / "submissions"
    shutil.copytree(ROOT / "solutions", submissions / "solutions",
                    ignore=shutil.ignore_patterns(".*"))  # fmt: skip
    wrong = submissions / "wrong"
    exercise_notebook(wrong / "05_networks.ipynb", "5.3", "actor_critic_networks",
                      NETWORKS_DEFAULT_INIT)  # fmt: skip
    write_notebook(
        wrong / "07_trainer.ipynb",
        "import torch",
        "# Exercise 7.1: collect_rollout\n" + textwrap.dedent(ROLLOUT_LATE).strip(),
        "# Exercise 7.2: ppo_update\n" + textwrap.dedent(UPDATE_NO_ZERO_GRAD).strip(),
    )
    exercise_notebook(submissions / "own_class" / "05_networks.ipynb", "5.3",
                      "actor_critic_networks", NETWORKS_OWN_CLASS)  # fmt: skip
    out = root / "out"
    # from a copy of the package: the grader stops when the package's files change,
    # and the project's may be edited while the tests run
    home = root / "pkg"
    shutil.copytree(ROOT / "ppo_lessons", home / "ppo_lessons",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_lessons.grade", str(submissions), "--out",
         str(out), "--timeout", "120", "--jobs", "2"],
        capture_output=True, text=True, cwd=home, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    with open(out / "results.csv", newline="") as f:
        results = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    return {"proc": proc, "out": out, "results": results}


def test_every_exercise_of_the_solutions_gets_full_points(graded):
    results = graded["results"]
    got = {
        ex.number: (results[("solutions", ex.number)]["points"],
                    results[("solutions", ex.number)]["status"])
        for ex in EXERCISES
    }  # fmt: skip
    assert got == {ex.number: (str(ex.points), "correct") for ex in EXERCISES}, graded[
        "proc"
    ].stdout[-3000:]
    feedback = (graded["out"] / "feedback" / "solutions.md").read_text()
    total = sum(ex.points for ex in EXERCISES)
    assert f"**Score: {total} / {total}**\n" in feedback


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("5.3", "are not orthogonal"),
        ("7.1", "yours are one step late"),
        ("7.2", "call optimizer.zero_grad() before each loss.backward()"),
    ],
)
def test_a_wrong_version_gets_zero_with_the_checks_message(graded, number, message):
    row = graded["results"][("wrong", number)]
    assert (row["points"], row["status"]) == ("0", "wrong"), row
    assert message in row["message"], row["message"]


def test_a_network_the_grader_cannot_rebuild_is_left_to_grade_by_hand(graded):
    row = graded["results"][("own_class", "5.3")]
    assert (row["points"], row["status"]) == ("pending", "by_hand"), row
    assert "not gradable automatically: grade by hand" in row["message"]
    assert "Wrapped" in row["message"]
    feedback = (graded["out"] / "feedback" / "own_class.md").read_text()
    assert "(3 points pending: graded by hand by your instructor)" in feedback
    assert "| 5.3 | `actor_critic_networks` | pending / 3 | grade by hand |" in feedback
    summary = (graded["out"] / "summary.md").read_text()
    assert "## To grade by hand" in summary
    assert "5.3: grade by hand (3 points pending)" in summary
    with open(graded["out"] / "summary.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert rows["own_class"]["5.3 actor_critic_networks"] == "pending"
    # to grade by hand is no misbehaviour of the submission (5.1 and 5.2 are missing
    # from this notebook: those are)
    assert "5.3: by_hand" not in rows["own_class"]["problems"]


# ---------------------------------------------------------------- in-process


def _saved(calls: list[dict]) -> dict:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "status": "done",
                "import_failures": [], "calls": calls}, buffer)  # fmt: skip
    return validate(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))


def _verdict(check, fn) -> object:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            torch.manual_seed(0)  # as the child and the judge do
            return bool(check(fn))
    except AssertionError as error:
        return str(error)


def _direct_and_replayed(check, fn) -> tuple[object, object, list[dict]]:
    recorder = Recorder(fn)
    direct = _verdict(check, recorder)
    calls = _saved(recorder.calls)["calls"]
    return direct, _verdict(check, Replayer(calls)), calls


FAST = [ex for ex in EXERCISES if ex.number != "7.2"]  # 7.2 is the run's (a minute)


@pytest.mark.parametrize("exercise", FAST, ids=[ex.number for ex in FAST])
def test_every_reference_replays_to_its_direct_verdict(exercise):
    fn = getattr(importlib.import_module(exercise.module), exercise.function)
    direct, again, _ = _direct_and_replayed(getattr(checks, exercise.check_name), fn)
    assert direct is True
    assert again is True


def _namespace(source: str) -> dict:
    namespace: dict = {}
    exec(textwrap.dedent(source), namespace)  # noqa: S102 - the tests' own code
    return namespace


@pytest.mark.parametrize(
    ("source", "function", "message"),
    [
        (NETWORKS_DEFAULT_INIT, "actor_critic_networks", "are not orthogonal"),
        (ROLLOUT_LATE, "collect_rollout", "yours are one step late"),
        (UPDATE_NO_ZERO_GRAD, "ppo_update", "call optimizer.zero_grad() before each"),
    ],
)
def test_a_wrong_version_replays_to_the_same_message(source, function, message):
    check = getattr(checks, f"check_{function}")
    direct, again, _ = _direct_and_replayed(check, _namespace(source)[function])
    assert message in direct
    assert again == direct


def test_a_network_of_the_students_class_is_not_gradable():
    fn = _namespace(NETWORKS_OWN_CLASS)["actor_critic_networks"]
    recorder = Recorder(fn)
    assert _verdict(checks.check_actor_critic_networks, recorder) is True
    calls = _saved(recorder.calls)["calls"]
    with pytest.raises(NotGradable, match="Wrapped"):
        _verdict(checks.check_actor_critic_networks, Replayer(calls))


def test_a_hook_or_an_instance_forward_makes_a_network_not_gradable():
    from ppo_lessons.networks import actor_critic_networks

    def hooked(*args):
        actor, critic = actor_critic_networks(*args)
        actor[0].register_forward_hook(lambda m, i, o: o * 0)
        return actor, critic

    def own_forward(*args):
        actor, critic = actor_critic_networks(*args)
        critic.forward = lambda x: torch.zeros(*x.shape[:-1], 1)
        return actor, critic

    for fn in (hooked, own_forward):
        recorder = Recorder(fn)
        with contextlib.suppress(Exception):  # whatever the check says of it
            _verdict(checks.check_actor_critic_networks, recorder)
        with pytest.raises(NotGradable):
            _verdict(
                checks.check_actor_critic_networks,
                Replayer(_saved(recorder.calls)["calls"]),
            )


def test_one_network_returned_twice_stays_one_object_in_the_replay():
    from ppo_lessons.networks import actor_critic_networks

    cache: dict = {}

    def cached(*args):
        if args not in cache:
            cache[args] = actor_critic_networks(*args)
        return cache[args]

    direct, again, _ = _direct_and_replayed(checks.check_actor_critic_networks, cached)
    assert "two calls returned the same actor" in direct
    assert again == direct


def test_records_of_a_network_that_does_not_fit_its_sizes_are_refused():
    from ppo_lessons.networks import actor_critic_networks

    recorder = Recorder(actor_critic_networks)
    _verdict(checks.check_actor_critic_networks, recorder)
    calls = _saved(recorder.calls)["calls"]
    linear = calls[0]["result"]["items"][0]["children"][0][1]
    assert linear["layer"] == "Linear"
    linear["config"]["in_features"] = 10**9  # never allocated: refused first
    with pytest.raises(ReplayMismatch):
        _verdict(checks.check_actor_critic_networks, Replayer(calls))
    linear["layer"] = "Conv2d"
    with pytest.raises(MalformedRecords):
        _saved(calls)


def test_effects_set_only_the_attributes_an_argument_already_has():
    from ppo_lessons.checks.lesson07_rollout import RolloutCase

    case = RolloutCase(3, 6, ())
    replayer = Replayer([{
        "args": [{"kind": "other", "type": "ScriptedEnvs"}], "kwargs": {},
        "outcome": "return", "modified": [None], "requires_grad_after": [None],
        "events": [], "rng_after": None,
        "effects": [{"kind": "attributes", "values": {
            "t": {"kind": "py", "value": 4},
            "step": {"kind": "py", "value": "not a method any more"},
        }}],
        "result": {"kind": "py", "value": None},
    }])  # fmt: skip
    replayer(case.envs)
    assert case.envs.t == 4
    assert callable(case.envs.step)
