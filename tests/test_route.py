"""The route of one greedy episode (mario_dqn/route.py): on a corridor that loops a wrong
route back, by hand-counted steps, and through its command on a shipped agent."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mario_dqn.route import Point, Route, main, play_route, report, setbacks

ROOT = Path(__file__).resolve().parent.parent
NOOP, LOW, HIGH = 0, 1, 2


class Maze:
    """x advances 100 per LOW or HIGH step (NOOP stays), y is 0 after LOW and 1 after HIGH.
    At x 500 the check sends a Mario at y 0 back to x 100; at y 1 he goes on to the flag
    at x 800. An episode longer than ``limit`` steps is truncated."""

    CHECK, BACK, FLAG = 500, 100, 800

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.x = self.y = self.steps = 0
        self.seeds: list[int | None] = []

    def _info(self, flag: bool = False) -> dict:
        return {"x_pos": self.x, "y_pos": self.y, "flag_get": flag}

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        self.seeds.append(seed)
        self.x = self.y = self.steps = 0
        return np.array([self.x]), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        if action != NOOP:
            self.x += 100
            self.y = 1 if action == HIGH else 0
        if self.x == self.CHECK and self.y == 0:
            self.x = self.BACK
        flag = self.x >= self.FLAG
        return np.array([self.x]), 0.0, flag, self.steps >= self.limit and not flag, self._info(flag)


def test_a_wrong_route_loops_until_truncated_and_each_setback_is_found() -> None:
    env = Maze(limit=12)
    route = play_route(env, lambda obs: LOW, seed=7, noops=2)
    assert env.seeds == [7]
    # 2 no-ops at x 0, then x 100, 200, 300, 400, 100 (looped), 200, 300, 400, 100, 200: 12 steps
    assert [p.action for p in route.points] == [NOOP, NOOP] + [LOW] * 10
    assert [p.x_pos for p in route.points] == [0, 0, 0, 100, 200, 300, 400, 100, 200, 300, 400, 100]
    assert (route.end, route.x_pos, route.furthest, route.noops) == ("truncated", 200, 400, 2)
    # the steps taken at x 400 (steps 6 and 10) are the ones the check sent back, 300 each
    backs = setbacks(route)
    assert [(b.step, b.from_x, b.to_x, b.y_pos) for b in backs] == [(6, 400, 100, 0), (10, 400, 100, 0)]
    assert setbacks(route, drop=299) == backs and setbacks(route, drop=300) == []  # a fall must exceed drop


def test_the_right_route_reaches_the_flag_without_a_setback() -> None:
    route = play_route(Maze(), lambda obs: HIGH, seed=0, noops=0)
    assert (route.end, route.x_pos, len(route.points)) == ("flag", 800, 8)
    assert setbacks(route, drop=1) == []


def test_a_fall_on_the_last_step_counts_to_where_the_episode_ended() -> None:
    route = Route((Point(0, 900, 79, 1), Point(1, 1000, 79, 1)), "truncated", 10, 79, 0)
    assert [(b.step, b.from_x, b.to_x) for b in setbacks(route)] == [(1, 1000, 10)]
    assert route.furthest == 1000


def test_the_report_names_the_end_the_setbacks_and_every_nth_step() -> None:
    route = play_route(Maze(limit=12), lambda obs: LOW, seed=0, noops=2)
    lines = report(route, every=5, drop=250)
    assert lines[0] == "ended: truncated at x_pos 200 (y_pos 0) after 12 steps (2 no-ops); furthest x_pos 400"
    assert lines[1:4] == ["sent back 2 time(s):", "  after step 6: x_pos 400 -> 100 (y_pos 0)",
                          "  after step 10: x_pos 400 -> 100 (y_pos 0)"]
    assert [line.split()[0] for line in lines[5:]] == ["0", "5", "10"]


def _route(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mario_dqn.route", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)


def test_the_command_traces_a_shipped_agent_and_refuses_bad_input_in_one_line(tmp_path) -> None:
    out = tmp_path / "route.csv"
    done = _route("save/pretrained/world-1-1", "--every", "100", "--csv", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "save/pretrained/world-1-1, stage 1-1, seed 0"
    assert lines[1].startswith("ended: flag at x_pos ") and lines[2] == "sent back 0 time(s)"
    with out.open() as f:
        rows = list(csv.DictReader(f))
    steps = int(lines[1].split(" after ")[1].split()[0])
    assert len(rows) == steps and [int(r["step"]) for r in rows] == list(range(steps))
    assert lines[4:-1] == [f"{int(r['step']):4d}  {int(r['x_pos']):5d}  {int(r['y_pos']):5d}  {r['action']}"
                           for r in rows[::100]]
    for args in (["save/pretrained/world-1-1", "--every", "0"],
                 ["save/pretrained/world-1-1", "--csv", str(tmp_path / "no/x.csv")]):
        bad = _route(*args)
        assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr, args


def test_an_agent_that_is_not_there_or_plays_several_stages_is_refused_in_one_line(tmp_path) -> None:
    """In this process (a command start each costs TensorFlow's import): the same main()."""
    for args, says in (([str(tmp_path / "nothing")], "error: "),
                       (["save/pretrained/world-1"], "error: save/pretrained/world-1 plays 4 stages; name one")):
        with pytest.raises(SystemExit) as stopped:
            main(args)
        assert str(stopped.value.code).startswith(says), args
