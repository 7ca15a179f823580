"""Picking the model to ship (mario_dqn/pick.py): the rule against hand-made rows, and the
command on a run whose measurements are all in its time-to-solve cache (so it plays no
episode: what it prints comes from the cache and the rule)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import config as C
from mario_dqn.pick import pick
from mario_dqn.time_to_solve import CACHE_FILE, cache_key

ROOT = Path(__file__).resolve().parent.parent


def _row(step: int, flag_rate: float, mean_x_pos: float = 1000.0) -> dict:
    return {"step": step, "flag_rate": flag_rate, "mean_x_pos": mean_x_pos, "weights": f"step-{step}"}


def test_the_pick_is_the_best_with_epsilon_among_the_greedy_models_at_the_bar() -> None:
    greedy = [_row(100, 0.95), _row(200, 0.75), _row(300, 0.8), _row(400, 1.0)]
    # 200 is best with epsilon but below the greedy bar; 300 beats 100 and 400 with epsilon.
    noisy = [_row(100, 0.4), _row(200, 0.9), _row(300, 0.55), _row(400, 0.5)]
    chosen = pick(greedy, noisy, bar=0.8)
    assert chosen is not None and chosen["step"] == 300
    assert (chosen["flag_rate"], chosen["greedy_flag_rate"]) == (0.55, 0.8)


def test_ties_go_to_the_greedy_rate_then_the_distance_then_the_later_model() -> None:
    greedy = [_row(100, 0.9), _row(200, 1.0), _row(300, 1.0), _row(400, 1.0)]
    noisy = [_row(100, 0.6), _row(200, 0.6, 2000.0), _row(300, 0.6, 1900.0), _row(400, 0.6, 2000.0)]
    assert pick(greedy, noisy, bar=0.8)["step"] == 400
    assert pick(greedy, noisy[:3], bar=0.8)["step"] == 200  # 400 not measured with epsilon: no candidate


def test_no_pick_when_no_model_reaches_the_bar() -> None:
    assert pick([_row(100, 0.7), _row(200, 0.75)], [_row(100, 0.9)], bar=0.8) is None
    assert pick([], [], bar=0.8) is None


def _fake_run(run: Path, stage: str, greedy: dict[int, float], noisy: dict[int, float],
              noisy_episodes: int = 40) -> None:
    """A run directory with kept models (empty weight files) whose greedy results on seeds
    0-19 and epsilon 0.05 results on seeds 0..noisy_episodes-1 are already in its cache."""
    run.mkdir()
    config = C.replace(C.Config(), {"env": {"stages": (stage,)}})
    (run / "config.json").write_text(C.to_json(config))
    (run / "models").mkdir()
    for step in greedy:
        (run / "models" / f"step-{step:012d}.json").write_text(json.dumps({"step": step, "wall_s": step / 50}))
        (run / "models" / f"step-{step:012d}.weights.h5").write_bytes(b"")
    cache = {cache_key(0, episodes, epsilon, stage, (stage,)): {str(s): {"flag_rate": r, "mean_x_pos": 1500.0}
                                                              for s, r in rates.items()}
             for episodes, epsilon, rates in ((20, 0.0, greedy), (noisy_episodes, 0.05, noisy))}
    (run / CACHE_FILE).write_text(json.dumps(cache))


def _pick(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mario_dqn.pick", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          timeout=300)


def test_the_command_prints_each_model_and_the_package_line_of_its_pick(tmp_path) -> None:
    run = tmp_path / "w24"
    _fake_run(run, "2-4", {25000: 0.2, 50000: 0.85, 75000: 0.9}, {50000: 0.6, 75000: 0.45})
    done = _pick(str(run))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:3] == ["25,000", "20%", "-"] for line in lines), done.stdout
    assert any(line.split()[:3] == ["50,000", "85%", "60%"] for line in lines), done.stdout
    assert "pick: step 50,000 (85% greedy, 60% with epsilon 0.05)" in done.stdout
    assert f"scripts/package_pretrained.py {run} --model 50000" in done.stdout
    assert "epsilon: seeds 0..39" in done.stdout


def test_the_epsilon_rates_are_read_for_the_episodes_asked_for(tmp_path) -> None:
    """Measured on 20 episodes the pick is 75,000, on the default 40 it is 50,000: the
    protocol's episode count selects the cached results, one per count."""
    run = tmp_path / "w41"
    _fake_run(run, "4-1", {50000: 0.85, 75000: 0.9}, {50000: 0.45, 75000: 0.7}, noisy_episodes=20)
    cache = json.loads((run / CACHE_FILE).read_text())
    cache[cache_key(0, 40, 0.05, "4-1", ("4-1",))] = {"50000": {"flag_rate": 0.6, "mean_x_pos": 1500.0},
                                                      "75000": {"flag_rate": 0.5, "mean_x_pos": 1500.0}}
    (run / CACHE_FILE).write_text(json.dumps(cache))
    assert "pick: step 75,000 (90% greedy, 70% with epsilon 0.05)" in _pick(str(run), "--epsilon-episodes", "20").stdout
    assert "pick: step 50,000 (85% greedy, 60% with epsilon 0.05)" in _pick(str(run)).stdout
    bad = _pick(str(run), "--epsilon-episodes", "0")
    assert bad.returncode == 2 and "--epsilon-episodes must be >= 1" in bad.stderr


def test_the_command_fails_in_one_line_when_nothing_reaches_the_bar_or_the_input_is_wrong(tmp_path) -> None:
    run = tmp_path / "w24"
    _fake_run(run, "2-4", {25000: 0.2, 50000: 0.75}, {50000: 0.3})
    done = _pick(str(run))
    assert done.returncode == 1 and "no kept model has >= 80% greedy flags" in done.stdout
    lower = _pick(str(run), "--bar", "0.7")
    assert lower.returncode == 0 and "pick: step 50,000 (75% greedy, 30% with epsilon 0.05)" in lower.stdout
    missing = _pick(str(tmp_path / "nothing"))
    assert missing.returncode != 0 and missing.stderr.strip().startswith("error:") and "Traceback" not in missing.stderr
    several = tmp_path / "several"
    several.mkdir()
    (several / "config.json").write_text(C.to_json(C.replace(C.Config(), {"env": {"stages": ("1-1", "1-2")}})))
    done = _pick(str(several))
    assert done.returncode != 0 and "name one with --stage" in done.stderr
