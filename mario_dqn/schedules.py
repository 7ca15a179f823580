"""Annealing schedules as pure functions of the step counter.

Pure functions (no state, no object) because the step counter is already part of the
checkpointed training state: a resumed run recomputes epsilon or beta from the step it
resumes at, so there is nothing extra to save and nothing that can drift.
"""

from __future__ import annotations

import numpy as np


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


def per_env_floors(base: float, alpha: float, num_envs: int) -> np.ndarray:
    """Ape-X's exploration rates, one per env: ``base ** (1 + alpha * i / (num_envs - 1))``
    for env i (``base`` for a single env), from ``base`` down to ``base ** (1 + alpha)``.

    Ape-X (Horgan et al. 2018) gives each actor a fixed rate from this range so that a
    few explore widely while most act nearly greedily; here they are the floors the
    envs' epsilons decay to.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if num_envs == 1:
        return np.array([base], dtype=np.float64)
    return base ** (1.0 + alpha * np.arange(num_envs) / (num_envs - 1))
