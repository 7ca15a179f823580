"""The shipped agent in save/pretrained/world-1-1 stays loadable and reproduces its results.

results.json there is the output of
``python main.py evaluate save/pretrained/world-1-1 --episodes 20 --seed 0 --json``;
replaying its first episode (seed 0) must give the same flag, x_pos, return and length.
If a code change alters the model format, the wrapper stack or the evaluation protocol,
this test fails and the shipped agent must be re-packaged (scripts/package_pretrained.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "save" / "pretrained" / "world-1-1"


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads((PRETRAINED / "results.json").read_text())


def test_shipped_files_are_there(recorded):
    for name in ("model.keras", "target.npz", "optimizer.npz", "state.json", "config.json", "COMPLETE",
                 "results.json", "episode.mp4", "episode.gif", "learning_curve.png", "training.json"):
        assert (PRETRAINED / name).is_file(), name
    assert not (PRETRAINED / "replay").exists(), "the shipped agent carries no replay memory"
    assert recorded["episodes"] == 20 and len(recorded["per_episode"]) == 20


def test_seed_0_episode_reproduces_results_json(recorded):
    done = _cli("evaluate", str(PRETRAINED), "--episodes", "1", "--seed", "0", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    replayed = json.loads(done.stdout)["per_episode"][0]
    expected = recorded["per_episode"][0]
    assert replayed["flag"] == expected["flag"]
    assert replayed["x_pos"] == expected["x_pos"]
    assert replayed["length"] == expected["length"]
    assert replayed["return"] == pytest.approx(expected["return"], abs=1e-6)


def test_play_without_a_path_plays_the_shipped_agent_from_any_directory(recorded, tmp_path):
    done = _cli("play", "--episodes", "1", "--seed", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    # TensorFlow's start-up chatter on a CPU-only machine stays out of the output (tf_import)
    assert "absl" not in done.stderr and "cuda" not in done.stderr.lower(), done.stderr[-2000:]
    expected = recorded["per_episode"][0]
    assert f"x_pos {expected['x_pos']} " in done.stdout
    assert f"flag {'yes' if expected['flag'] else 'no'}" in done.stdout
