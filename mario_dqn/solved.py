"""When a run counts as solved (``runner.stop_when_solved``), from its evaluations.

Two steps: a streak of in-training evaluations at ``runner.solved_flag_rate`` flags, then
one check on ``runner.solved_episodes`` episodes of other seeds. The streak alone misleads:
every in-training evaluation replays the same few seeds, so a policy that handles those
starts passes several in a row while the harness's 20 seeds read far less (3-1's run
ended at 925k on a streak of 100 / 80 / 100% of 5 episodes; the harness read those three
models at 40 / 35 / 60% on seeds 0-19).

Kept apart from the runner, which imports TensorFlow, so the campaign's driver can tell a
solved trial from its checkpoint's state.json without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import config as C

STREAK = "solved_streak"
"""The state.json counter: evaluations in a row at or above the flag rate, the latest one included."""

CONFIRMED = "solved_confirmed"
"""The state.json flag: the streak's check on ``runner.solved_episodes`` episodes passed."""

CHECK_SEED = 0
"""The check's episode ``i`` uses seed ``CHECK_SEED + i``: the harness's seeds
(benchmarks/time_to_solve.py) and the first of README's stage-table bars, apart from the
in-training evaluations' (``seed + EVAL_SEED_OFFSET``)."""


def next_streak(streak: int, flag_rates: Iterable[float], threshold: float) -> int:
    """The streak after one evaluation: one longer when every stage's flag rate (one rate
    for a one-stage run) reaches ``threshold``, else back to 0."""
    return streak + 1 if all(rate >= threshold for rate in flag_rates) else 0


def check_due(state: dict[str, Any], runner: C.RunnerConfig) -> bool:
    """Whether the streak has reached ``runner.stop_when_solved`` and waits for its check
    (also after a stop signal cut the check short, or in a run that ended on the streak
    alone before the check existed: its resume checks first)."""
    return (runner.stop_when_solved > 0 and runner.solved_episodes > 0
            and int(state.get(STREAK, 0)) >= runner.stop_when_solved and not state.get(CONFIRMED, False))


def is_solved(state: dict[str, Any], runner: C.RunnerConfig) -> bool:
    """Whether a run with this state.json has met its ``runner.stop_when_solved``: the
    streak, and its check unless ``runner.solved_episodes`` is 0."""
    streak = runner.stop_when_solved > 0 and int(state.get(STREAK, 0)) >= runner.stop_when_solved
    return streak and (runner.solved_episodes == 0 or bool(state.get(CONFIRMED, False)))
