"""The fatal-press trace (mario_dqn/press_trace.py): on a corridor whose one pit is known,
by hand-computed bounds, and through its command on a shipped agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mario_dqn.press_trace import Branch, Trace, fatal_stretches, survival_bound, trace

ROOT = Path(__file__).resolve().parent.parent
NOOP, RIGHT, JUMP = 0, 1, 2


class Corridor:
    """x from 0 to the flag at 6; RIGHT and JUMP move one cell, NOOP stays. Leaving cell
    3 any way but JUMP falls into its pit (a death); NOOP there is safe."""

    PIT, FLAG = 3, 6

    def __init__(self) -> None:
        self.x = 0
        self.steps = 0

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        self.x = 0
        return np.array([self.x]), {"x_pos": self.x}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        if self.x == self.PIT and action == RIGHT:
            return np.array([self.x]), 0.0, True, False, {"x_pos": self.x, "flag_get": False}
        if action != NOOP:
            self.x += 1
        flag = self.x == self.FLAG
        return np.array([self.x]), 0.0, flag, False, {"x_pos": self.x, "flag_get": flag}


def jumper(obs: np.ndarray) -> int:
    """The greedy player: JUMP at the pit, RIGHT elsewhere."""
    return JUMP if int(obs[0]) == Corridor.PIT else RIGHT


def test_only_the_missed_jump_is_fatal_and_the_bound_counts_it_once_per_step() -> None:
    result = trace(Corridor(), jumper, seed=0, noops=1, num_actions=3, every=1, horizon=10)
    assert result.actions == (NOOP, RIGHT, RIGHT, RIGHT, JUMP, RIGHT, RIGHT) and result.flag and result.x_pos == 6
    assert [b.step for b in result.branches] == [1, 2, 3, 4, 5, 6]  # after the no-op start
    assert [(b.x_pos, b.greedy, b.fatal) for b in result.branches if b.fatal] == [(3, JUMP, (RIGHT,))]
    # 6 steps after the no-op, one with 1 fatal action of 3: 1 - 0.3 / 3
    assert survival_bound(result, 0.3, 3) == pytest.approx(0.9)
    assert fatal_stretches(result) == [(3, 3, 1)]


def test_an_untraced_step_counts_as_the_traced_one_before_it() -> None:
    result = trace(Corridor(), jumper, seed=0, noops=0, num_actions=3, every=3, horizon=10)
    assert [b.step for b in result.branches] == [0, 3]  # the jump is step 3 without a no-op
    # steps 3, 4 and 5 take step 3's fatal count: (1 - 0.3 / 3) ** 3
    assert survival_bound(result, 0.3, 3) == pytest.approx(0.729)


class FallingCorridor(Corridor):
    """As :class:`Corridor`, but a missed jump kills 3 steps later (Mario falls first)."""

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        self.falling = 0
        return super().reset(seed)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.falling:
            self.falling -= 1
            dead = self.falling == 0
            return np.array([self.x]), 0.0, dead, False, {"x_pos": self.x, "flag_get": False}
        if self.x == self.PIT and action == RIGHT:
            self.falling = 3
            return np.array([self.x]), 0.0, False, False, {"x_pos": self.x, "flag_get": False}
        return super().step(action)


def test_a_death_after_the_horizon_is_not_the_press_s_doing() -> None:
    # the missed jump at x 3 (step 3) kills on the 4th step from the press
    assert trace(FallingCorridor(), jumper, seed=0, noops=0, num_actions=3, every=1, horizon=4).branches[3].fatal \
        == (RIGHT,)
    assert trace(FallingCorridor(), jumper, seed=0, noops=0, num_actions=3, every=1, horizon=3).branches[3].fatal \
        == ()


def test_stretches_group_consecutive_fatal_steps() -> None:
    branches = tuple(Branch(t, 100 * t, RIGHT, fatal) for t, fatal in
                     enumerate([(), (0,), (0, 2), (), (), (3,), ()]))
    result = Trace(tuple([RIGHT] * 7), 0, True, 600, branches)
    assert fatal_stretches(result) == [(100, 200, 2), (500, 500, 1)]
    # 1 - 0.05 * k / 5 per step: k = 0, 1, 2, 0, 0, 1, 0
    assert survival_bound(result, 0.05, 5) == pytest.approx(0.99 * 0.98 * 0.99)


def _trace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mario_dqn.press_trace", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          timeout=600)


def test_the_command_traces_a_shipped_agent_and_refuses_bad_input_in_one_line(tmp_path) -> None:
    done = _trace("save/pretrained/world-1-4", "--every", "150", "--horizon", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("save/pretrained/world-1-4, stage 1-4, seed 1000: greedy episode of ")
    assert "traced " in lines[1] and "(every 150, horizon 5)" in lines[1]
    assert lines[-1].startswith("no fatal single press with epsilon 0.05: ")
    for args in (["save/pretrained/world-1-4", "--every", "0"], [str(tmp_path / "nothing")],
                 ["save/pretrained/world-1"]):
        bad = _trace(*args)
        assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr, args
