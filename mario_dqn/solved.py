"""When a run counts as solved (``runner.stop_when_solved``), from its evaluations.

Kept apart from the runner, which imports TensorFlow, so the campaign's driver can tell a
solved trial from its checkpoint's state.json without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import config as C

STREAK = "solved_streak"
"""The state.json counter: evaluations in a row at or above the flag rate, the latest one included."""


def next_streak(streak: int, flag_rates: Iterable[float], threshold: float) -> int:
    """The streak after one evaluation: one longer when every stage's flag rate (one rate
    for a one-stage run) reaches ``threshold``, else back to 0."""
    return streak + 1 if all(rate >= threshold for rate in flag_rates) else 0


def is_solved(state: dict[str, Any], runner: C.RunnerConfig) -> bool:
    """Whether a run with this state.json has met its ``runner.stop_when_solved``."""
    return runner.stop_when_solved > 0 and int(state.get(STREAK, 0)) >= runner.stop_when_solved
