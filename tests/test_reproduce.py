"""Every shipped per-stage agent's "reproduce" command resolves to the configuration its
run was trained with (its frozen config.json), apart from how long the run is: a user who
copies the command trains the same recipe, seed included.

The commands are read from each agent's training.json, which README's stage table shows
(scripts/stage_table.py; tests/test_stage_table.py keeps the table equal to the records),
so a preset or a default that changes under a shipped agent fails here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

import config as C
import main
from mario_dqn import checkpoint as ckpt

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "save" / "pretrained"
RUN_LENGTH = {("runner", "total_steps")}
"""How long a run is asked to train: the shipped model is picked from its kept models,
so the reproduce command need not name the length its run happened to be given."""


def per_stage_agents() -> list[str]:
    return sorted(p.name for p in PRETRAINED.iterdir() if re.fullmatch(r"world-\d-\d", p.name))


def recorded_commands() -> dict[str, str]:
    """agent directory name -> the ``python main.py train ...`` command its training.json records."""
    commands = {}
    for agent in per_stage_agents():
        command = json.loads((PRETRAINED / agent / "training.json").read_text()).get("reproduce")
        if isinstance(command, str) and command.startswith("python main.py train"):
            commands[agent] = command
    return commands


def resolve(command: str) -> C.Config:
    """The config ``train`` would run with for ``command``, without training."""
    args = shlex.split(command)[3:]  # after "python main.py train"
    params = main.train.make_context("train", args).params
    return main._resolve_train_config(params["world"], params["stage"], params["stages"], params["steps"],
                                      params["envs"], params["seed"], params["save_dir"], params["overrides"],
                                      params["preset"])


LOOP_CASTLES = {"4-4", "7-4", "8-4"}
"""The stages whose castle loops Mario back for a wrong route (LoopbackIsDeath's docstring)."""

ONLY_AFTER_A_LOOP = {("agent", "loop_gamma"), ("env", "loop_action_set")}
"""Settings that act only once the game has looped Mario back: on any other stage a run with
them is the same run bit for bit (tests/test_runner.py: the switch happens only at a loop),
so an agent trained before any-stage took one is still reproduced by any-stage."""


def after_a_loop(config: C.Config) -> C.Config:
    """The config a run of ``config`` on a castle maze trains with once its first loop has
    started it over with ``env.loop_action_set`` (what its config.json then says)."""
    wanted = config.env.loop_action_set
    if not (LOOP_CASTLES & set(config.env.stages)) or not wanted or config.runner.init_from:
        return config
    return dataclasses.replace(config, env=dataclasses.replace(config.env, action_set=wanted))


def differences(a: C.Config, b: C.Config) -> list[tuple[str, str, object, object]]:
    left, right = dataclasses.asdict(after_a_loop(a)), dataclasses.asdict(b)
    loops = bool(LOOP_CASTLES & set(b.env.stages))
    return [(section, key, left[section][key], right[section][key]) for section in left for key in left[section]
            if left[section][key] != right[section][key] and (section, key) not in RUN_LENGTH
            and section != "paths" and (loops or (section, key) not in ONLY_AFTER_A_LOOP)]


def test_every_per_stage_agent_records_a_train_command_and_readme_shows_it():
    per_stage = per_stage_agents()
    assert per_stage, "no shipped per-stage agents found"
    assert sorted(recorded_commands()) == per_stage
    readme = (ROOT / "README.md").read_text()
    for agent, command in recorded_commands().items():
        assert f"`{command}`" in readme, agent


@pytest.mark.parametrize("agent", sorted(recorded_commands()))
def test_reproduce_command_resolves_to_the_frozen_config(agent):
    frozen = ckpt.read_run_config(PRETRAINED / agent)
    assert differences(resolve(recorded_commands()[agent]), frozen) == []


def test_the_comparison_sees_a_changed_recipe():
    """The check is not vacuous: dropping the override the 1-1 row needs is caught."""
    frozen = ckpt.read_run_config(PRETRAINED / "world-1-1")
    command = recorded_commands()["world-1-1"].replace(" --set env.end_on_ceiling=false", "")
    assert ("env", "end_on_ceiling", True, False) in differences(resolve(command), frozen)


def test_a_loop_only_setting_is_a_difference_on_a_castle_maze():
    """any-stage's agent.loop_gamma is ignored on stages without loops, and only there."""
    frozen = ckpt.read_run_config(PRETRAINED / "world-4-3")
    command = recorded_commands()["world-4-3"]
    assert differences(resolve(command), frozen) == []
    on_4_4 = dataclasses.replace(frozen, env=dataclasses.replace(frozen.env, stages=("4-4",)))
    on_4_4_differs = differences(resolve(command.replace("--stage 3", "--stage 4")), on_4_4)
    assert ("agent", "loop_gamma", 0.99, 0.0) in on_4_4_differs
    assert ("env", "loop_action_set", "simple", "") in on_4_4_differs
    # any-stage on 4-4 trains with simple's actions once the first loop started it over
    assert ("env", "action_set", "simple", "right_only") in on_4_4_differs
