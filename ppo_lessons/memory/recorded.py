"""Memory (lesson 11, `11_memory.ipynb`): the recorded comparison over seeds.

`bench/bench_memory.py` trains the recurrent preset, a feed-forward policy and frame
stacking on CartPoleNoVel-v1 for several seeds and writes `over_seeds.json` beside this
module (its command, machine and date inside); lesson 11 reads it with
`recorded_runs()` instead of training 18 runs while the student waits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["RECORD", "recorded_runs"]

RECORD = Path(__file__).with_name("over_seeds.json")


def recorded_runs(path: str | Path = RECORD) -> dict[str, Any]:
    """The recorded comparison: {"command", "machine", "date", "configs": {variant:
    config dict}, "runs": {variant: [one dict per seed: seed, wall_seconds,
    first_step_solved, seconds_to_solve, eval_return_mean, eval_returns, steps,
    episodic_return, max_replay_error]}}."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
