"""Where a run's training episodes end: the x_pos trace of its failures, per stage.

    python -m mario_dqn.failures RUN_DIR [--from-step STEP] [--to-step STEP] [--bin 100]
                                         [--top 5] [--json]

Issue 38 asks of every stage that a recipe does not solve: where does the agent fail?
The answer is in metrics.csv already, one row per training episode with the x_pos it
ended at; this reads it the same way for every run, so a report says "most episodes from
the stage start ended at x_pos 1600-1699" from a count, not from reading a curve.

Only episodes that began at the stage start count (one that ``env.restart_from_best``
started along an earlier episode ends where that one led it, not where the agent got
by itself, see :func:`~mario_dqn.metrics_log.began_at_stage_start`). Episodes that did
not reach the flag are failures; each ends in a bin of ``--bin`` x_pos (1600-1699 for
100). The bins with the most failures are printed with their share of all failures.
Training episodes explore (epsilon-greedy, ``agent.epsilon_end`` after the decay), so the
trace is of the exploring policy, the one a run learns from; ``python -m
mario_dqn.time_to_solve`` measures the greedy one.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mario_dqn.metrics_log import began_at_stage_start


@dataclass
class StageFailures:
    """The training episodes of one stage from its start, in the steps read."""

    episodes: int = 0
    flags: int = 0
    bins: Counter[int] = field(default_factory=Counter)
    """Failures per bin, keyed by the bin's lowest x_pos."""

    @property
    def failures(self) -> int:
        return self.episodes - self.flags

    def top(self, count: int) -> list[tuple[int, int]]:
        """The ``count`` bins with the most failures as (lowest x_pos, failures), most
        first; a tie goes to the bin nearer the stage start (where more episodes pass)."""
        return sorted(self.bins.items(), key=lambda item: (-item[1], item[0]))[:count]


def read_failures(metrics_csv: Path, from_step: int = 0, to_step: int | None = None,
                  bin_width: int = 100) -> dict[str, StageFailures]:
    """Tally the training episodes of ``metrics_csv`` that began at the stage start and
    ended at an agent step in [``from_step``, ``to_step``]: per stage (the ``stage``
    column; ``""`` for records written before it), how many, how many reached the flag,
    and where the others ended, in bins of ``bin_width`` x_pos."""
    if bin_width < 1:
        raise ValueError(f"the bin width must be >= 1 x_pos, not {bin_width}")
    stages: dict[str, StageFailures] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] != "episode" or not began_at_stage_start(row):
                continue
            step = int(row["step"])
            if step < from_step or (to_step is not None and step > to_step):
                continue
            part = stages.setdefault(row.get("stage") or "", StageFailures())
            part.episodes += 1
            if row["flag"] == "1":
                part.flags += 1
            else:
                part.bins[int(float(row["x_pos"])) // bin_width * bin_width] += 1
    return dict(sorted(stages.items()))


def report(stages: dict[str, StageFailures], bin_width: int, top: int) -> str:
    """Lines for people: per stage, the episodes, flags and the ``top`` bins of failures."""
    if not stages:
        return "no training episodes from the stage start in these steps"
    lines = []
    for stage, part in stages.items():
        name = stage or "the run's stage"
        lines.append(f"{name}: {part.episodes:,} episodes from the stage start, {part.flags:,} reached the flag "
                     f"({part.flags / part.episodes:.0%}); where the {part.failures:,} others ended:")
        for low, count in part.top(top):
            lines.append(f"  x_pos {low}-{low + bin_width - 1}: {count:,} ({count / part.failures:.0%})")
    return "\n".join(lines)


def as_json(stages: dict[str, StageFailures], bin_width: int) -> dict[str, Any]:
    """The tally as JSON: per stage, its counts and every bin of failures (as strings of
    their lowest x_pos, sorted)."""
    return {"bin": bin_width,
            "stages": {stage: {**{k: v for k, v in asdict(part).items() if k != "bins"},
                               "failures": part.failures,
                               "bins": {str(low): part.bins[low] for low in sorted(part.bins)}}
                       for stage, part in stages.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--from-step", type=int, default=0, metavar="STEP",
                        help="only episodes that ended at or after this agent step (default: all)")
    parser.add_argument("--to-step", type=int, default=None, metavar="STEP",
                        help="only episodes that ended at or before this agent step (default: all)")
    parser.add_argument("--bin", type=int, default=100, metavar="X", help="x_pos per bin (default: 100)")
    parser.add_argument("--top", type=int, default=5, metavar="N", help="bins printed per stage (default: 5)")
    parser.add_argument("--json", action="store_true", help="print every bin as JSON instead")
    args = parser.parse_args(argv)
    metrics = args.run_dir / "metrics.csv"
    if not metrics.is_file():
        sys.exit(f"error: {metrics} not found: give a run directory (save/runs/NAME)")
    if args.bin < 1 or args.top < 1:
        sys.exit("error: --bin and --top must be >= 1")
    try:
        stages = read_failures(metrics, args.from_step, args.to_step, args.bin)
    except (KeyError, ValueError) as err:
        sys.exit(f"error: {metrics} is not a metrics.csv this version reads ({type(err).__name__}: {err})")
    print(json.dumps(as_json(stages, args.bin), indent=1) if args.json else report(stages, args.bin, args.top))


if __name__ == "__main__":
    main()
