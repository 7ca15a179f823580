"""Time to solve: evaluate every kept model of a run on the same fixed seeds.

    python benchmarks/time_to_solve.py RUN_DIR [--episodes 20] [--seed 0] [--epsilon 0] [--stage W-S]
                                               [--every N] [--from-step STEP] [--jobs N]

The harness lives in the package (:mod:`mario_dqn.time_to_solve`, whose docstring says
what it measures), so that ``main.py campaign`` reads each trial's kept models the same
way; this script is its command, kept where the benchmarks are.
"""

from __future__ import annotations

from mario_dqn.time_to_solve import (  # noqa: F401  (the names the harness has always had here)
    MARKS,
    STABLE_WINDOW_S,
    cache_key,
    first_training_flag,
    hours,
    main,
    summarize,
)

if __name__ == "__main__":
    main()
