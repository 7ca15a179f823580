"""Annealing schedules as pure functions of the step counter.

Pure functions (no state, no object) because the step counter is already part of the
checkpointed training state: a resumed run recomputes epsilon or beta from the step it
resumes at, so there is nothing extra to save and nothing that can drift.
"""

from __future__ import annotations


def linear_schedule(step: int, start: float, end: float, duration: int) -> float:
    """Value moving linearly from ``start`` at step 0 to ``end`` at ``duration``, then held.

    Used for the exploration rate (1.0 -> floor over ``epsilon_decay_steps`` agent
    steps) and for the prioritized-replay importance exponent (beta_start -> 1.0).
    Steps before 0 give ``start``; a ``duration`` of 0 jumps straight to ``end``.
    """
    if duration < 0:
        raise ValueError(f"duration must be >= 0, got {duration}")
    if duration == 0:
        return float(end)
    fraction = min(max(step / duration, 0.0), 1.0)
    return float(start + fraction * (end - start))
