"""Start a new training run from an agent's policy weights (``train --init-from``).

Why: a distilled student (``distill``, issue 40) ranks actions as its teachers do but has
never learned by RL what follows a wrong press; fine-tuning goes on from its weights with
the DQN loss on its stages. A user may also start a stage from an agent of another one.

Only the policy carries over (the weights ``play`` acts with, into the online, target and
averaged networks alike): the optimizer, the replay memory and the counters start fresh,
as the run's config says. So the run is a new run, seeded as any other; its config keeps
the path and ``init_from.json`` the source's model checksum, because a path alone is no
record (a shipped agent's directory may later hold another model). A resumed run goes on
from its own checkpoint and does not read the source again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import config as C
from mario_dqn import checkpoint as ckpt
from mario_dqn.errors import UserInputError

RECORD_FILE = "init_from.json"
"""Where a run started from an agent records which one (in the run directory)."""

SHAPE_FIELDS = (("env", "action_set"), ("env", "stack_size"), ("env", "frame_size"),
                ("agent", "network"), ("agent", "dueling"))
"""Settings that make the network's weights: the source's and the run's must agree."""


def load_start(config: C.Config) -> ckpt.Policy:
    """The policy ``config.runner.init_from`` names (a run directory, checkpoint or shipped
    agent), checked to fit the network ``config`` builds; CheckpointError for a missing or
    damaged source, UserInputError naming the first setting that differs. Reads no
    TensorFlow, so a mistake is refused before the run directory is made."""
    source = config.runner.init_from
    policy = ckpt.load_policy(Path(source))
    for section, name in SHAPE_FIELDS:
        theirs = getattr(getattr(policy.config, section), name)
        mine = getattr(getattr(config, section), name)
        if theirs != mine:
            raise UserInputError(f"--init-from {source}: it was built with {section}.{name} = {theirs!r}, this "
                                 f"run with {mine!r}; its weights fit only a network built alike")
    return policy


def record(run_dir: Path, source: str) -> dict[str, Any]:
    """Write ``init_from.json``: the source's path, model checksum, run and step."""
    from mario_dqn.checkpoint import model_source

    info = model_source(Path(source), source)
    (Path(run_dir) / RECORD_FILE).write_text(json.dumps(info, indent=1) + "\n")
    return info
