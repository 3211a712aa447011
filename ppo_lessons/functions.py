"""The exercise functions the trainer calls, and a student's own in their place.

    train(config, functions={"compute_gae": my_gae, "ppo_loss": my_loss})

Every name in `TRAINER_EXERCISES` is an exercise of the course (`ppo_lessons.exercises`)
with the contract of its lesson; the trainer calls what it is given at the place the
reference would be called. `ppo_lessons.notebook.your_functions()` gathers the ones a
student solved in their lesson notebooks (lesson 07's capstone).

Naming: the lesson functions keep their contract names (`clip_eps`, `lam`), the
config keeps CleanRL's (`clip_coef`, `gae_lambda`); the mapping between the two lives
where the trainer calls the functions: `ppo_lessons.update.minibatch_loss` and
`ppo_lessons.rollout.gae_from_buffer`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ppo_lessons import clipping, gae, importance_sampling, losses, networks, update
from ppo_lessons import rollout as rollout_module

__all__ = [
    "TRAINER_EXERCISES",
    "TrainerFunctions",
    "describe",
    "trainer_functions",
]

# where the trainer calls each exercise function
TRAINER_EXERCISES: dict[str, str] = {
    "probability_ratio": "the clip fraction of every minibatch",
    "clipped_surrogate_objective": "the policy term of the loss",
    "compute_gae": "advantages and returns after every rollout",
    "gaussian_log_prob": "log π(a|s) of Box actions (rollout and update)",
    "categorical_entropy": "the entropy of Discrete policies (update)",
    "actor_critic_networks": "the actor and the critic, built once at the start",
    "value_loss": "the value term of the loss",
    "approx_kl": "the KL metric and the target_kl stop",
    "explained_variance": "the explained-variance metric",
    "ppo_loss": "the loss of every minibatch",
    "minibatch_indices": "the minibatches of every epoch",
    "collect_rollout": "every rollout",
    "ppo_update": "every update (it then calls its own loss and minibatches)",
}
REFERENCES: dict[str, Callable] = {
    "probability_ratio": importance_sampling.probability_ratio,
    "clipped_surrogate_objective": clipping.clipped_surrogate_objective,
    "compute_gae": gae.compute_gae,
    "gaussian_log_prob": networks.gaussian_log_prob,
    "categorical_entropy": networks.categorical_entropy,
    "actor_critic_networks": networks.actor_critic_networks,
    "value_loss": losses.value_loss,
    "approx_kl": update.approx_kl,
    "explained_variance": update.explained_variance,
    "ppo_loss": update.ppo_loss,
    "minibatch_indices": update.minibatch_indices,
    "collect_rollout": rollout_module.collect_rollout,
    "ppo_update": update.ppo_update,
}


@dataclass(frozen=True)
class TrainerFunctions:
    """The functions one run calls (references, or a student's own)."""

    compute_gae: Callable = gae.compute_gae
    collect_rollout: Callable = rollout_module.collect_rollout
    ppo_update: Callable = update.ppo_update  # (agent, optimizer, batch, settings, gen)
    explained_variance: Callable = update.explained_variance
    gaussian_log_prob: Callable = networks.gaussian_log_prob
    categorical_entropy: Callable = networks.categorical_entropy
    actor_critic_networks: Callable = networks.actor_critic_networks
    update: update.UpdateFunctions = field(default_factory=update.UpdateFunctions)
    own: tuple[str, ...] = ()  # the names given by the user
    # given, but not called by the trainer: a given ppo_update takes their place
    bypassed: tuple[str, ...] = ()


# what the package's ppo_update calls, and a student's own ppo_update replaces
UPDATE_PIECES = (
    "probability_ratio",
    "clipped_surrogate_objective",
    "value_loss",
    "approx_kl",
    "ppo_loss",
    "minibatch_indices",
)


def trainer_functions(functions: Mapping[str, Callable] | None) -> TrainerFunctions:
    """Check `functions` (exercise name -> callable) and build the run's functions.

    Raises:
        ValueError: for a name the trainer does not take (the message lists the valid
            names) or a value that is not callable.
    """
    functions = dict(functions or {})
    for name, fn in functions.items():
        if name not in TRAINER_EXERCISES:
            raise ValueError(
                f"functions has the name {name!r}, which is not an exercise function "
                f"the trainer calls; valid names: {', '.join(TRAINER_EXERCISES)}"
            )
        if not callable(fn):
            raise ValueError(f"functions[{name!r}] must be callable, got {fn!r}")
    pick = {name: functions.get(name, REFERENCES[name]) for name in TRAINER_EXERCISES}
    update_fns = update.UpdateFunctions(
        clipped_surrogate_objective=pick["clipped_surrogate_objective"],
        value_loss=pick["value_loss"],
        ppo_loss=functions.get("ppo_loss"),  # None: assembled from the two above
        minibatch_indices=pick["minibatch_indices"],
        approx_kl=pick["approx_kl"],
        probability_ratio=pick["probability_ratio"],
    )
    ppo_update = pick["ppo_update"]
    if "ppo_update" not in functions:
        ppo_update = functools.partial(update.ppo_update, functions=update_fns)
    return TrainerFunctions(
        compute_gae=pick["compute_gae"],
        collect_rollout=pick["collect_rollout"],
        ppo_update=ppo_update,
        explained_variance=pick["explained_variance"],
        gaussian_log_prob=pick["gaussian_log_prob"],
        categorical_entropy=pick["categorical_entropy"],
        actor_critic_networks=pick["actor_critic_networks"],
        update=update_fns,
        own=tuple(name for name in TRAINER_EXERCISES if name in functions),
        bypassed=tuple(
            name
            for name in UPDATE_PIECES
            if name in functions and "ppo_update" in functions
        ),
    )


def describe(functions: TrainerFunctions) -> str:
    """What a run takes from the user: the functions it calls, and those it does not
    call itself because the user's own ppo_update takes their place (that update
    calls whatever it was written to call)."""
    if not functions.own:
        return "every function is the package's reference"
    called = [name for name in functions.own if name not in functions.bypassed]
    text = f"your functions: {', '.join(called)}; the rest are the references"
    if functions.bypassed:
        text += (
            f". Not called by the trainer, because your ppo_update takes their place "
            f"(it calls what it imports): {', '.join(functions.bypassed)}"
        )
    return text
