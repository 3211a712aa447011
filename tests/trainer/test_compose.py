"""A student's functions compose: whoever gathers them, each calls the others.

In a lesson notebook the student writes `ppo_loss`, and after its check the notebook
imports the reference under the same name; their `ppo_update` (lesson 07) then calls
that reference unless the trainer wires the given functions to each other
(`ppo_lessons.functions.compose`). These tests build functions exactly that way, in
namespaces where the exercise names are the references, and count what training calls.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from support import independent_functions as own

from ppo_lessons.functions import (
    REFERENCES,
    LessonFunctions,
    compose,
    describe,
    trainer_functions,
)
from ppo_lessons.presets import preset
from ppo_lessons.trainer import train

# a lesson-07 style update: its globals are the references, imported by name
STUDENT_UPDATE = textwrap.dedent(
    """
    import torch
    from ppo_lessons.update import approx_kl, minibatch_indices, ppo_loss


    def ppo_update(agent, optimizer, batch, settings, generator):
        B = batch.advantages.shape[0]
        v_clip = settings.clip_coef if settings.clip_vloss else None
        for _ in range(settings.update_epochs):
            for idx in minibatch_indices(B, settings.minibatch_size, generator):
                out, values = agent.policy_and_value(batch.obs[idx])
                log_probs, entropy = agent.log_prob_entropy(out, batch.actions[idx])
                loss = ppo_loss(
                    log_probs, batch.log_probs[idx], batch.advantages[idx], values,
                    batch.values[idx], batch.returns[idx], entropy, settings.clip_coef,
                    v_clip, settings.vf_coef, settings.ent_coef, settings.norm_adv,
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        kl = approx_kl(log_probs.detach(), batch.log_probs[idx], "k3")
        zero = torch.zeros(())
        return {"policy_loss": zero, "value_loss": zero, "entropy": zero,
                "approx_kl": kl, "clip_fraction": zero, "epochs": torch.tensor(1)}
    """
)


def student_update():
    namespace: dict = {}
    exec(compile(STUDENT_UPDATE, "<lesson 07>", "exec"), namespace)
    return namespace["ppo_update"]


def short_config(**changes):
    fields = dict(
        env_backend="torch", seed=0, num_envs=4, num_steps=32, total_steps=256,
        update_epochs=2, num_minibatches=2, target_kl=None,
    )  # fmt: skip
    fields.update(changes)
    return preset("CartPole-v1", **fields)


def test_a_given_update_calls_the_given_loss_not_the_reference_it_imported():
    # catches: the capstone's "every function you wrote" while the student's update
    # calls the reference ppo_loss its notebook cell imported
    config = short_config()
    result = train(
        config,
        functions={"ppo_update": student_update(), "ppo_loss": own.ppo_loss},
        progress=False,
    )
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    assert result.function_calls["ppo_update"] == config.num_updates
    assert result.function_calls["ppo_loss"] == steps


def test_the_chain_reaches_the_innermost_given_function():
    # catches: composition one level deep only (update -> loss, but the loss still
    # calling the reference objective its own namespace imported)
    namespace: dict = {}
    exec(
        "from ppo_lessons.clipping import clipped_surrogate_objective\n"
        "from ppo_lessons.losses import value_loss\n"
        "def ppo_loss(*args):\n"
        "    return (-clipped_surrogate_objective(*args[:3], args[7])\n"
        "            + args[9] * value_loss(args[3], args[4], args[5], args[8])\n"
        "            - args[10] * args[6].mean())\n",
        namespace,
    )
    config = short_config(norm_adv=False)
    result = train(
        config,
        functions={
            "ppo_update": student_update(),
            "ppo_loss": namespace["ppo_loss"],
            "clipped_surrogate_objective": own.clipped_surrogate_objective,
            "value_loss": own.value_loss,
            "minibatch_indices": own.minibatch_indices,
        },
        progress=False,
    )
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    calls = result.function_calls
    assert calls["clipped_surrogate_objective"] == steps
    assert calls["value_loss"] == steps
    assert calls["minibatch_indices"] == config.num_updates * config.update_epochs


def test_a_given_objective_reaches_the_reference_loss_inside_a_given_update():
    # catches: a student whose ppo_loss failed its check (so the reference is used)
    # losing their objective too, because the reference loss calls the reference one
    config = short_config()
    result = train(
        config,
        functions={
            "ppo_update": student_update(),
            "clipped_surrogate_objective": own.clipped_surrogate_objective,
        },
        progress=False,
    )
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    assert result.function_calls["clipped_surrogate_objective"] == steps


def test_a_broken_inner_function_changes_the_run():
    # catches: counts that go up while the reference does the work
    def flipped_objective(new_log_probs, old_log_probs, advantages, clip_eps):
        return -REFERENCES["clipped_surrogate_objective"](
            new_log_probs, old_log_probs, advantages, clip_eps
        )

    config = short_config()
    given = {"ppo_update": student_update(), "ppo_loss": own.ppo_loss}
    right = train(config, functions=given, progress=False)
    wrong = train(
        config,
        functions={**given, "clipped_surrogate_objective": flipped_objective},
        progress=False,
    )
    a = torch.nn.utils.parameters_to_vector(right.agent.parameters())
    b = torch.nn.utils.parameters_to_vector(wrong.agent.parameters())
    assert not torch.equal(a, b)


def test_the_original_functions_are_left_as_they_were():
    # catches: composition that rewrites the student's notebook namespace in place
    update = student_update()
    before = update.__globals__["ppo_loss"]
    composed = compose({"ppo_update": update, "ppo_loss": own.ppo_loss})
    assert update.__globals__["ppo_loss"] is before is REFERENCES["ppo_loss"]
    assert composed["ppo_update"].fn.__globals__["ppo_loss"] is composed["ppo_loss"]


def test_a_bundle_trains_as_the_dict_it_was_made_from():
    # catches: a LessonFunctions given to train rebuilt, refused, or read elsewhere
    # than the dict's functions (the seam has one door, and a bundle passes it)
    mine = {"compute_gae": own.compute_gae, "ppo_update": own.ppo_update}
    bundle = trainer_functions(mine)
    from_dict = train(short_config(), functions=mine, progress=False)
    from_bundle = train(short_config(), functions=bundle, progress=False)
    keys = ("policy_loss", "value_loss", "approx_kl", "entropy", "explained_variance")
    for a, b in zip(from_dict.history, from_bundle.history, strict=True):
        assert [a[k] for k in keys] == [b[k] for k in keys]
    assert from_bundle.function_calls == from_dict.function_calls
    assert bundle.own == ("compute_gae", "ppo_update") and bundle.given("ppo_update")


def test_no_given_function_means_no_counter_and_the_references_untouched():
    # catches: wrapping references (which breaks the trainer's identity checks, e.g.
    # the full-batch shortcut of the reference minibatch_indices)
    fns = trainer_functions({})
    assert fns.counters == {}
    assert fns.minibatch_indices is REFERENCES["minibatch_indices"]
    assert fns == LessonFunctions()  # every field the reference
    assert describe(fns) == "every function is the package's reference"


def test_describe_names_what_each_given_function_calls():
    text = describe(
        trainer_functions({"ppo_update": student_update(), "ppo_loss": own.ppo_loss})
    )
    assert text.splitlines()[0].startswith("your functions: ppo_loss, ppo_update")
    calls = text.splitlines()[-1]
    assert calls.startswith("  your ppo_update calls ")
    for named in (
        "approx_kl (reference)",
        "ppo_loss (yours)",
        "minibatch_indices (reference)",
    ):
        assert named in calls


@pytest.mark.parametrize("name", ["ppo_loss", "ppo_update"])
def test_a_partial_is_counted_but_not_rewired(name):
    import functools

    fn = functools.partial(REFERENCES[name])
    composed = compose({name: fn})
    assert composed[name].fn is fn
