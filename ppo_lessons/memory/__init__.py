"""Memory (lesson 11, `11_memory.ipynb`): PPO with memory, a recurrent policy.

    from ppo_lessons.memory import replay_sequence          # exercise 11.1
    train(PPOConfig(env_id="CartPoleNoVel-v1", recurrent="gru", ...))

`replay` (the exercise), `network` (encoder, GRU cell, lesson 05's heads), `rollout`
(what the rollout keeps: the initial hidden state and the episode starts) and `update`
(env-wise minibatches, the replay, and the ratio-is-one check). The trainer selects them
with `PPOConfig.recurrent = "gru"`; frame stacking (`PPOConfig.frame_stack = k`) is the
same machinery with a fixed memory, the last k observations (`FrameStackActorCritic`).
"""

from ppo_lessons.memory.network import (
    FrameStackActorCritic,
    RecurrentActorCritic,
    ShiftRegister,
)
from ppo_lessons.memory.replay import replay_sequence, reset_where
from ppo_lessons.memory.rollout import Memory, SequenceBuffer, collect_sequences
from ppo_lessons.memory.update import recurrent_update, sequence_replay_error

__all__ = [
    "FEED_FORWARD_ONLY",
    "FrameStackActorCritic",
    "Memory",
    "RecurrentActorCritic",
    "SequenceBuffer",
    "ShiftRegister",
    "collect_sequences",
    "recurrent_update",
    "replay_sequence",
    "reset_where",
    "sequence_replay_error",
]

# the exercises that only a feed-forward run calls (lesson 07's rollout and update): a
# run with memory uses this package's rollout and update instead
FEED_FORWARD_ONLY = ("collect_rollout", "ppo_update")
