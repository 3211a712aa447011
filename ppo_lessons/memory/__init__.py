"""Memory (lesson 11, `11_memory.ipynb`): PPO with memory, a recurrent policy.

    from ppo_lessons.memory import replay_sequence          # exercise 11.1
    train(PPOConfig(env_id="CartPoleNoVel-v1", recurrent="gru", ...))

`replay` (the exercise), `network` (encoder, GRU cell, lesson 05's heads), `rollout`
(what the rollout keeps: the initial hidden state and the episode starts) and `update`
(env-wise minibatches, the replay, and the ratio-is-one check). The trainer selects them
with `PPOConfig.recurrent = "gru"`.
"""

from ppo_lessons.memory.network import RecurrentActorCritic
from ppo_lessons.memory.replay import replay_sequence, reset_where
from ppo_lessons.memory.rollout import Memory, SequenceBuffer, collect_sequences
from ppo_lessons.memory.update import recurrent_update, sequence_replay_error

__all__ = [
    "Memory",
    "RecurrentActorCritic",
    "SequenceBuffer",
    "collect_sequences",
    "recurrent_update",
    "replay_sequence",
    "reset_where",
    "sequence_replay_error",
]
