"""Where a run's training episodes end (mario_dqn/failures.py): the tally against a
hand-made metrics.csv whose counts are worked out below, and the command on it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mario_dqn.failures import (flags_by_restart, flags_per_window, model_report, read_failures, read_model_failures,
                                report, restart_report, window_report)
from mario_dqn.metrics_log import METRIC_FIELDS

ROOT = Path(__file__).resolve().parent.parent


def _episode(step: int, x_pos: int, flag: int = 0, stage: str = "3-4", restart_steps: str = "0") -> dict:
    return {"kind": "episode", "step": step, "x_pos": x_pos, "flag": flag, "stage": stage,
            "restart_steps": restart_steps}


def _write(run: Path, rows: list[dict]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return run


ROWS = [
    _episode(100, 450), _episode(200, 499), _episode(300, 1650), _episode(400, 1699),
    _episode(500, 1600), _episode(600, 2300, flag=1), _episode(700, 420),
    _episode(800, 1610, restart_steps="32"),  # restarted along a kept episode: not counted
    _episode(900, 2301, flag=1, restart_steps="64"),  # likewise, though it flagged
    {"kind": "eval", "step": 1000, "x_pos": 1800, "flag_rate": 0.4, "flag": ""},  # an evaluation: not an episode
    _episode(1100, 250, stage="3-3"), _episode(1200, 2900, stage="3-3", flag=1),
]


def test_failures_are_counted_per_stage_and_bin_from_the_stage_start_only(tmp_path: Path) -> None:
    stages = read_failures(_write(tmp_path / "run", ROWS) / "metrics.csv")
    assert list(stages) == ["3-3", "3-4"]
    three_four = stages["3-4"]
    # 7 episodes from the start (steps 100-700), 1 flag; failures 450, 499, 420 -> 400; 1650, 1699, 1600 -> 1600.
    assert (three_four.episodes, three_four.flags, three_four.failures) == (7, 1, 6)
    assert dict(three_four.bins) == {400: 3, 1600: 3}
    assert three_four.top(1) == [(400, 3)]  # a tie goes to the bin nearer the start
    assert (stages["3-3"].episodes, stages["3-3"].flags, dict(stages["3-3"].bins)) == (2, 1, {200: 1})


def test_the_steps_and_the_bin_width_select_and_group(tmp_path: Path) -> None:
    metrics = _write(tmp_path / "run", ROWS) / "metrics.csv"
    window = read_failures(metrics, from_step=300, to_step=600)["3-4"]  # 1650, 1699, 1600 and the flag at 600
    assert (window.episodes, window.flags, dict(window.bins)) == (4, 1, {1600: 3})
    wide = read_failures(metrics, bin_width=1000)["3-4"]
    assert dict(wide.bins) == {0: 3, 1000: 3}
    with pytest.raises(ValueError):
        read_failures(metrics, bin_width=0)


def test_the_report_names_the_bins_with_their_share(tmp_path: Path) -> None:
    text = report(read_failures(_write(tmp_path / "run", ROWS) / "metrics.csv"), 100, top=5)
    assert "3-4: 7 episodes from the stage start, 1 reached the flag (14%); where the 6 others ended:" in text
    assert "  x_pos 400-499: 3 (50%)" in text and "  x_pos 1600-1699: 3 (50%)" in text
    assert report({}, 100, 5) == "no training episodes from the stage start in these steps"


def test_flags_per_window_count_each_stage_over_time(tmp_path: Path) -> None:
    """Windows of 500 steps over ROWS' episodes from the start: 3-4 at 100-400 (no flag),
    500-700 (the flag at 600); 3-3 at 1100 and 1200 (its flag); the restarted ones and the
    evaluation row not counted."""
    metrics = _write(tmp_path / "run", ROWS) / "metrics.csv"
    windows = flags_per_window(metrics, 500)
    assert windows == {0: {"3-4": (0, 4)}, 500: {"3-4": (1, 3)}, 1000: {"3-3": (1, 2)}}
    assert flags_per_window(metrics, 500, from_step=200, to_step=600) == {0: {"3-4": (0, 3)}, 500: {"3-4": (1, 2)}}
    lines = window_report(windows, 500).splitlines()
    assert lines[1].split() == ["agent", "steps", "3-3", "3-4"]
    assert lines[2].split() == ["0-499", "-", "0/4", "(0%)"]
    assert lines[4].split() == ["1,000-1,499", "1/2", "(50%)", "-"]
    with pytest.raises(ValueError):
        flags_per_window(metrics, 0)


def test_past_counts_the_episodes_that_got_that_far_per_window(tmp_path: Path) -> None:
    """--past 1650 over ROWS' windows of 500: 3-4's 100-400 end at 450, 499, 1650, 1699 (two
    past), 500-700 at 1600, the flag, 420 (the flag only); 3-3's 250 and its flag (one)."""
    metrics = _write(tmp_path / "run", ROWS) / "metrics.csv"
    windows = flags_per_window(metrics, 500, past=1650)
    assert windows == {0: {"3-4": (2, 4)}, 500: {"3-4": (1, 3)}, 1000: {"3-3": (1, 2)}}
    lines = window_report(windows, 500, past=1650).splitlines()
    assert lines[0] == "x_pos >= 1,650 (or the flag) of the training episodes from the stage start"
    assert lines[2].split() == ["0-499", "-", "2/4", "(50%)"]
    done = _command(str(metrics.parent), "--every", "500", "--past", "1650", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["windows"][0] == {"from_step": 0, "stages": {"3-4": {"past": 2, "episodes": 4}}}
    alone = _command(str(metrics.parent), "--past", "1650")
    assert alone.returncode == 1 and alone.stderr.count("\n") == 1 and "give --every too" in alone.stderr


def test_flags_by_restart_group_every_episode_by_where_it_began(tmp_path: Path) -> None:
    """Windows of 50 replayed steps over ROWS: 3-4's seven from the start (one flag; end
    x_pos 420, 450, 499, 1600, 1650, 1699, 2300: median 1600), the one after 32 steps
    (no flag, 1610) and the one after 64 (its flag, 2301); 3-3's two from the start."""
    metrics = _write(tmp_path / "run", ROWS) / "metrics.csv"
    stages = flags_by_restart(metrics, 50)
    assert stages == {"3-3": {-1: (1, 2, 1575.0)},
                      "3-4": {-1: (1, 7, 1600.0), 0: (0, 1, 1610.0), 50: (1, 1, 2301.0)}}
    assert flags_by_restart(metrics, 50, from_step=850, to_step=1150) == {"3-3": {-1: (0, 1, 250.0)},
                                                                         "3-4": {50: (1, 1, 2301.0)}}
    lines = restart_report(stages, 50).splitlines()
    assert "  the stage start: 1/7 (14%), median end x_pos 1600" in lines
    assert "  after 50-99 replayed steps: 1/1 (100%), median end x_pos 2301" in lines
    assert restart_report({}, 50) == "no training episodes in these steps"
    with pytest.raises(ValueError):
        flags_by_restart(metrics, 0)


def _command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mario_dqn.failures", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_command_prints_json_and_refuses_a_directory_without_metrics(tmp_path: Path) -> None:
    run = _write(tmp_path / "run", ROWS)
    done = _command(str(run), "--json", "--from-step", "1000")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"bin": 100, "stages": {"3-3": {
        "episodes": 2, "flags": 1, "failures": 1, "bins": {"200": 1}}}}
    over_time = _command(str(run), "--json", "--every", "1000")
    assert over_time.returncode == 0, over_time.stderr
    assert json.loads(over_time.stdout) == {"every": 1000, "windows": [
        {"from_step": 0, "stages": {"3-4": {"flags": 1, "episodes": 7}}},
        {"from_step": 1000, "stages": {"3-3": {"flags": 1, "episodes": 2}}}]}
    both = _command(str(run), "--every", "1000", "--models")
    assert both.returncode == 1 and both.stderr.count("\n") == 1 and "give one" in both.stderr
    by_start = _command(str(run), "--json", "--restarts", "100", "--to-step", "900")
    assert by_start.returncode == 0, by_start.stderr
    assert json.loads(by_start.stdout) == {"restarts": 100, "stages": {"3-4": [
        {"replayed_from": -1, "flags": 1, "episodes": 7, "median_x_pos": 1600.0},
        {"replayed_from": 0, "flags": 1, "episodes": 2, "median_x_pos": 1955.5}]}}
    missing = _command(str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == f"error: {tmp_path / 'nothing' / 'metrics.csv'} not found: give a run directory (save/runs/NAME)"


CACHE = {
    "seed=0,episodes=20,epsilon=0.0": {
        "200": {"flag_rate": 0.5, "mean_x_pos": 1500.0, "failed_x_pos": [410, 1650, 1699, 1700]},
        "100": {"flag_rate": 0.0, "mean_x_pos": 300.0},  # measured before failures were kept
        "300": {"flag_rate": 1.0, "mean_x_pos": 2300.0, "failed_x_pos": []},
    },
    "seed=0,episodes=20,epsilon=0.05": {"200": {"flag_rate": 0.25, "mean_x_pos": 900.0, "failed_x_pos": [480]}},
}


def test_model_failures_bin_each_models_failed_episodes() -> None:
    models, without = read_model_failures(CACHE)
    assert without == 1
    assert [(m.protocol, m.step) for m in models] == [("seed=0,episodes=20,epsilon=0.0", 200),
                                                      ("seed=0,episodes=20,epsilon=0.0", 300),
                                                      ("seed=0,episodes=20,epsilon=0.05", 200)]
    assert dict(models[0].bins) == {400: 1, 1600: 2, 1700: 1} and dict(models[1].bins) == {}
    later, without = read_model_failures(CACHE, from_step=250)
    assert [m.step for m in later] == [300] and without == 0
    text = model_report(*read_model_failures(CACHE), bin_width=100, top=2)
    assert "  step 200: 50% flags; x_pos 1600-1699: 2, x_pos 400-499: 1" in text
    assert "  step 300: 100% flags; none" in text
    assert text.endswith("1 model(s) measured before the harness kept where episodes ended (not shown)")


def test_the_command_reads_the_harness_cache_or_says_how_to_make_it(tmp_path: Path) -> None:
    run = _write(tmp_path / "run", ROWS)
    missing = _command(str(run), "--models")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "time_to_solve.json not found: measure the run's models first" in missing.stderr
    (run / "time_to_solve.json").write_text(json.dumps(CACHE))
    done = _command(str(run), "--models", "--json", "--bin", "1000")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["models_without_failures"] == 1
    assert out["models"][0] == {"protocol": "seed=0,episodes=20,epsilon=0.0", "step": 200, "flag_rate": 0.5,
                                "bins": {"0": 1, "1000": 3}}
