"""Tiny fakes for tests: a pixel corridor whose optimal policy and return are known.

The corridor is small enough to learn in a few thousand agent steps, yet it is a
real pixel task for the real network: the goal sits at the left or the right end
(drawn in the frame, drawn again each reset), so no constant action is optimal and
the network has to read the picture to choose a direction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from mario_dqn.wrappers import FrameStackLast

LEFT, RIGHT, NOOP = 0, 1, 2
GOAL_REWARD = 1.0
STEP_REWARD = -0.1


class CorridorEnv(gym.Env):
    """A 1-D corridor drawn as 84x84 grayscale frames.

    The agent (a bright block in the upper band) starts in an interior cell; the goal
    (a grey block in the lower band) is at cell 0 or cell ``length - 1``. Actions:
    0 = left, 1 = right, 2 = noop (moves into a wall are noops). Reaching the goal
    gives +1 and terminates; every other step gives -0.1. Start cell and goal side
    are drawn from the env's seeded RNG, or fixed with
    ``reset(options={"start": cell, "goal": cell})`` for exhaustive evaluation.
    """

    metadata = {"render_modes": []}

    def __init__(self, length: int = 7, size: int = 84) -> None:
        if length < 3 or size // length < 1:
            raise ValueError(f"corridor needs length >= 3 and at least 1 px per cell, got {length}, {size}")
        self.length = length
        self.size = size
        self.cell = size // length
        self.observation_space = spaces.Box(0, 255, (size, size), np.uint8)
        self.action_space = spaces.Discrete(3)
        self.position = 1
        self.goal = 0

    def _frame(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size), np.uint8)
        third = self.size // 3
        frame[third // 2: third, self.position * self.cell:(self.position + 1) * self.cell] = 255
        frame[2 * third: 2 * third + third // 2, self.goal * self.cell:(self.goal + 1) * self.cell] = 128
        return frame

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self.goal = int(options.get("goal", self.np_random.choice([0, self.length - 1])))
        self.position = int(options.get("start", self.np_random.integers(1, self.length - 1)))
        if self.goal not in (0, self.length - 1) or not 0 <= self.position < self.length \
                or self.position == self.goal:
            raise ValueError(f"invalid corridor start {self.position} / goal {self.goal}")
        return self._frame(), {"position": self.position, "goal": self.goal}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        move = {LEFT: -1, RIGHT: 1, NOOP: 0}[int(action)]
        self.position = min(max(self.position + move, 0), self.length - 1)
        terminated = self.position == self.goal
        reward = GOAL_REWARD if terminated else STEP_REWARD
        return self._frame(), reward, terminated, False, {"position": self.position, "goal": self.goal}


def make_corridor_env(length: int = 7, stack_size: int = 4, max_episode_steps: int = 20) -> gym.Env:
    """The corridor behind the project's own frame stack and Gymnasium's time limit.

    Using :class:`mario_dqn.wrappers.FrameStackLast` means the observations are built
    exactly like Mario's (last frames, reset-padded, channels last), so the replay
    memory's stack reconstruction is exercised against the real convention.
    """
    return TimeLimit(FrameStackLast(CorridorEnv(length), stack_size), max_episode_steps=max_episode_steps)


def optimal_return(start: int, goal: int) -> float:
    """Undiscounted return of walking straight to the goal: d - 1 step penalties, then +1."""
    distance = abs(goal - start)
    return GOAL_REWARD + STEP_REWARD * (distance - 1)


def all_starts(length: int = 7) -> list[tuple[int, int]]:
    """Every (start, goal) pair a reset can draw, for exhaustive greedy evaluation."""
    return [(start, goal) for goal in (0, length - 1) for start in range(1, length - 1)]
