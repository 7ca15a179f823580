"""The shipped agents in save/pretrained/ stay loadable and reproduce their results.

Each agent's results.json is the output of
``python main.py evaluate save/pretrained/world-W-S --episodes 20 --seed 0 --json``;
replaying its first episode (seed 0) must give the same flag, x_pos, return and length,
and ``play --stage W-S`` from any directory must play that agent.
If a code change alters the model format, the wrapper stack or the evaluation protocol,
this test fails and the shipped agent must be re-packaged (scripts/package_pretrained.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "save" / "pretrained"
PRETRAINED = SHIPPED / "world-1-1"
"""The agent `play` plays without PATH or --stage, and the one README's Keras-only snippet loads."""
AGENTS = sorted(path for path in SHIPPED.iterdir() if path.is_dir())


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _recorded(agent: Path) -> dict:
    return json.loads((agent / "results.json").read_text())


@pytest.fixture(scope="module")
def recorded() -> dict:
    return _recorded(PRETRAINED)


def test_world_1_1_and_1_4_are_shipped():
    assert {"world-1-1", "world-1-4"} <= {agent.name for agent in AGENTS}


@pytest.mark.parametrize("agent", AGENTS, ids=lambda agent: agent.name)
def test_shipped_files_are_there(agent):
    stages = json.loads((agent / "config.json").read_text())["env"]["stages"]
    # World 1's agents also ship the mp4 and the explain gif README shows; the others leave them
    # out (package_pretrained's default) to keep save/pretrained/ small (issue 38)
    extras = ("episode.mp4", "explain.gif") if all(stage.startswith("1-") for stage in stages) else ()
    for name in ("model.keras", "state.json", "config.json", "COMPLETE", "results.json", "robustness.json",
                 "episode.gif", "learning_curve.png", "training.json", *extras):
        assert (agent / name).is_file(), name
    checks = json.loads((agent / "robustness.json").read_text())
    assert checks["epsilon_0.05_held_out"]["episodes"] == 20  # issue 38's epsilon bar: seeds 1000-1019
    assert "--seed 1000 --epsilon 0.05" in checks["epsilon_0.05_held_out"]["command"]
    for name in ("replay", "target.npz", "optimizer.npz"):  # what only training needs
        assert not (agent / name).exists(), f"the shipped agent carries no {name}"
    recorded = _recorded(agent)
    assert recorded["episodes"] == 20 and len(recorded["per_episode"]) == 20
    # one stage: world-W-S; several stages of one world: world-W (what play --stage looks for);
    # stages of worlds A to B: worlds-A-B
    worlds = sorted({int(stage.split("-")[0]) for stage in stages})
    expected = (f"world-{stages[0]}" if len(stages) == 1 else f"world-{worlds[0]}" if len(worlds) == 1
                else f"worlds-{worlds[0]}-{worlds[-1]}")
    assert agent.name == expected
    if len(stages) > 1:  # an agent of several stages is also measured on each (issue 19's target is per stage)
        per_stage = json.loads((agent / "stages.json").read_text())
        assert sorted(per_stage) == sorted(stages)
        for stage, checks in per_stage.items():
            for name in ("seeds_0_19", "other_seeds_greedy"):
                assert checks[name]["episodes"] == 20 and f"--stage {stage}" in checks[name]["command"]


@pytest.mark.parametrize("agent", AGENTS, ids=lambda agent: agent.name)
def test_seed_0_episode_reproduces_results_json(agent):
    """A per-stage agent through `evaluate --stage W-S` without PATH (which must find it),
    the others by their path."""
    per_stage = re.fullmatch(r"world-\d-\d", agent.name) and agent != PRETRAINED
    where = ["--stage", agent.name.removeprefix("world-")] if per_stage else [str(agent)]
    done = _cli("evaluate", *where, "--episodes", "1", "--seed", "0", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    replayed = json.loads(done.stdout)["per_episode"][0]
    expected = _recorded(agent)["per_episode"][0]
    assert replayed["flag"] == expected["flag"]
    assert replayed["x_pos"] == expected["x_pos"]
    assert replayed["length"] == expected["length"]
    assert replayed["return"] == pytest.approx(expected["return"], abs=1e-6)


@pytest.mark.parametrize("agent", [a for a in AGENTS if re.fullmatch(r"world-\d-\d", a.name) and a != PRETRAINED],
                         ids=lambda agent: agent.name)
def test_play_stage_plays_that_stages_shipped_agent(agent, tmp_path):
    """`play --stage W-S` (no PATH) finds save/pretrained/world-W-S from any directory."""
    stage = agent.name.removeprefix("world-")
    done = _cli("play", "--stage", stage, "--episodes", "1", "--seed", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = _recorded(agent)["per_episode"][0]
    assert f"stage {stage} " in done.stdout
    assert f"x_pos {expected['x_pos']} " in done.stdout
    assert f"flag {'yes' if expected['flag'] else 'no'}" in done.stdout


def test_play_without_a_path_plays_the_shipped_agent_from_any_directory(recorded, tmp_path):
    done = _cli("play", "--episodes", "1", "--seed", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    # TensorFlow's start-up chatter on a CPU-only machine stays out of the output (tf_import)
    assert "absl" not in done.stderr and "cuda" not in done.stderr.lower(), done.stderr[-2000:]
    expected = recorded["per_episode"][0]
    assert f"x_pos {expected['x_pos']} " in done.stdout
    assert f"flag {'yes' if expected['flag'] else 'no'}" in done.stdout


def test_readme_snippet_plays_the_shipped_model_with_keras_alone(tmp_path):
    """README's Keras-only loop, run where this package cannot be imported, reaches the
    x position and flag of the project's own greedy episode without no-op starts. The venv
    has the project installed, so the child blocks its modules first (a None in
    sys.modules makes every import of them fail)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- keras-only-snippet -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    blocked = "import sys\nsys.modules.update(dict.fromkeys(['mario_dqn', 'config', 'main']))\n"
    script = blocked + block.replace('"save/pretrained/world-1-1/model.keras"', repr(str(PRETRAINED / "model.keras")))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", blocked + "import mario_dqn"], cwd=tmp_path, env=env,
                         capture_output=True)
    assert out.returncode != 0, "the package must not be importable where the snippet runs"
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]

    from mario_dqn import checkpoint as ckpt
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent
    from mario_dqn.evaluation import evaluate

    policy = ckpt.load_policy(PRETRAINED)
    agent = build_agent(policy.config, len(ACTIONS[policy.config.env.action_set]))
    ckpt.restore_policy(policy, agent)
    ours = evaluate(agent, policy.config, 1, 0, noop_max=0)["per_episode"][0]
    assert out.stdout.split() == ["x_pos", str(ours["x_pos"]), "flag", str(ours["flag"])]
