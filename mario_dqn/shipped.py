"""The agents shipped in save/pretrained/, and loading any agent to play it.

``world-W-S`` holds one stage's agent, ``world-W`` one agent of a whole world, ``worlds-A-B``
one agent of stages in worlds A to B (played with its path and ``--stage``). They are
found from the repository, wherever a command is run from; records name them relative
to it (:func:`shown`), so a shipped agent's record reads the same on every clone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import config as C
from mario_dqn import checkpoint as ckpt
from mario_dqn.errors import UserInputError

ROOT = Path(__file__).resolve().parent.parent
"""The repository (the package's parent directory)."""
SHIPPED = ROOT / "save" / "pretrained"
"""Shipped agents: ``world-W-S`` for one stage, ``world-W`` for one agent of a whole world,
``worlds-A-B`` for one agent of several worlds."""
PRETRAINED = SHIPPED / "world-1-1"
"""What ``play`` plays without PATH or --stage."""


def shown(path: Path) -> str:
    """``path`` as a record keeps it: relative to the repository when inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_one_stage(path: Path, stage: str | None) -> tuple[C.Config, Any]:
    """(config, greedy policy: observation -> action) of the agent at ``path`` on one stage,
    for the tools that trace one episode (press_trace, route). ``stage`` is the 'W-S' text
    as typed, or None for the agent's only stage. A bad stage, an agent that is not there
    or one of several stages without ``stage`` raises ValueError with a one-line reason."""
    name = "-".join(map(str, C.parse_stage(stage))) if stage else None
    config, agent = load_for_play(Path(path), name)
    if len(config.env.stages) != 1:
        raise ValueError(f"{path} plays {len(config.env.stages)} stages; name one with --stage")

    def policy(obs: Any) -> int:
        return int(agent.act(obs[None], 0.0, policy=True)[0])

    return config, policy


def shipped_agent(stage: str | None = None) -> Path:
    """The shipped agent for ``stage`` ('W-S': its own, else its world's), or the 1-1 agent."""
    if stage is None:
        candidates = [PRETRAINED]
    else:
        candidates = [SHIPPED / f"world-{stage}", SHIPPED / f"world-{stage.split('-')[0]}"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    what = f"for stage {stage}" if stage else f"at {PRETRAINED}"
    raise UserInputError(f"no shipped agent {what} yet; pass a run directory or checkpoint")


def teacher_paths(stages: Sequence[str], given: dict[str, Path]) -> dict[str, Path]:
    """Each of ``stages`` ('W-S') and its teacher: ``given``'s, else the stage's shipped agent."""
    paths = {}
    for stage in stages:
        paths[stage] = Path(given.get(stage, SHIPPED / f"world-{stage}"))
        if not paths[stage].exists():
            raise UserInputError(f"no teacher for stage {stage}: {paths[stage]} does not exist; "
                                 f"pass --teacher {stage}=PATH")
    return paths


def load_for_play(path: Path, stage: str | None = None) -> tuple[C.Config, Any]:
    """(config, agent) from a run directory, checkpoint, agent directory or one of a run's
    kept models (``<run>/models/step-<N>.weights.h5``, so any model the harness measured
    can be watched): the saved config, never today's defaults; ``stage`` ('W-S') replaces
    its stages (the wrapper stack stays the one it was trained with). A wrong path is
    refused (CheckpointError) before TensorFlow starts; a kept model that does not fit its
    run's network, once the network is built."""
    kept_in = ckpt.kept_model_run(Path(path))
    policy = None if kept_in is not None else ckpt.load_policy(Path(path))
    config = ckpt.read_run_config(kept_in) if kept_in is not None else policy.config
    from mario_dqn.build import build_agent  # TensorFlow: only once the files are known to be there
    from mario_dqn.environment import ACTIONS

    agent = build_agent(config, len(ACTIONS[config.env.action_set]))
    if policy is not None:
        ckpt.restore_policy(policy, agent)
    else:
        try:
            agent.load_weights_file(path)
        except Exception as err:  # noqa: BLE001 - h5py and Keras raise many kinds
            raise ckpt.CheckpointError(f"{path} does not match the model built from "
                                       f"{kept_in / 'config.json'} ({type(err).__name__})") from None
    if stage is not None:
        config = C.replace(config, {"env": {"stages": (stage,)}})
    return config, agent
