"""Where a run's training episodes end: the x_pos trace of its failures, per stage.

    python -m mario_dqn.failures RUN_DIR [--from-step STEP] [--to-step STEP] [--bin 100]
                                         [--top 5] [--json] [--models | --every STEPS [--past X] |
                                          --restarts STEPS]

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
trace is of the exploring policy, the one a run learns from.

``--models`` reads the greedy one instead: where the kept models' evaluation episodes
that missed the flag ended, as the time-to-solve harness (and ``mario_dqn.pick``, which
uses it) recorded them in ``<run>/time_to_solve.json``, per model and protocol (models
measured before the harness kept them have none and are counted apart).

``--every STEPS`` reads the same training episodes over time instead: per window of that
many agent steps and per stage, how many of them reached the flag. Training plays with
epsilon, so this is the run's flag rate under random presses as it learns. With ``--past X``
it counts those that got to x_pos X (or the flag) instead: how often the agent gets past
one barrier by itself as it learns, long before any flag (4-4's first loop check,
docs/every-stage.md).

``--restarts STEPS`` reads every training episode, restarted ones too, by where it began:
per stage and per window of that many replayed steps (``env.restart_from_best``; the
stage start is its own row), how many reached the flag and the median x_pos they ended
at. A run with restarts learns a stage backwards from the flag: the deepest rows reach it
first, and the row where the flag rate falls off is the agent's frontier (what
``env.restart_frontier`` trains at).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mario_dqn.metrics_log import began_at_stage_start
from mario_dqn.time_to_solve import CACHE_FILE


def worst_bins(bins: Counter[int], count: int) -> list[tuple[int, int]]:
    """The ``count`` bins with the most failures as (lowest x_pos, failures), most first;
    a tie goes to the bin nearer the stage start (where more episodes pass)."""
    return sorted(bins.items(), key=lambda item: (-item[1], item[0]))[:count]


def bins_json(bins: Counter[int]) -> dict[str, int]:
    """Every bin as JSON: its lowest x_pos (a string) -> failures, in x_pos order."""
    return {str(low): bins[low] for low in sorted(bins)}


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
        """The ``count`` bins with the most failures (:func:`worst_bins`)."""
        return worst_bins(self.bins, count)


def episode_rows(metrics_csv: Path, from_step: int = 0,
                 to_step: int | None = None) -> Iterator[dict[str, str]]:
    """The metrics.csv rows of the training episodes that ended at an agent step in
    [``from_step``, ``to_step``] (evaluation rows are left out)."""
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] != "episode":
                continue
            step = int(row["step"])
            if from_step <= step and (to_step is None or step <= to_step):
                yield row


def episodes_from_start(metrics_csv: Path, from_step: int = 0,
                        to_step: int | None = None) -> Iterator[tuple[int, str, bool, int]]:
    """(step, stage, flag, x_pos) of each training episode of ``metrics_csv`` that began at
    the stage start and ended at an agent step in [``from_step``, ``to_step``]; the stage
    is ``""`` in records written before the ``stage`` column."""
    for row in episode_rows(metrics_csv, from_step, to_step):
        if began_at_stage_start(row):
            yield int(row["step"]), row.get("stage") or "", row["flag"] == "1", int(float(row["x_pos"]))


def read_failures(metrics_csv: Path, from_step: int = 0, to_step: int | None = None,
                  bin_width: int = 100) -> dict[str, StageFailures]:
    """Tally the training episodes of ``metrics_csv`` that began at the stage start and
    ended at an agent step in [``from_step``, ``to_step``]: per stage, how many, how many
    reached the flag, and where the others ended, in bins of ``bin_width`` x_pos."""
    if bin_width < 1:
        raise ValueError(f"the bin width must be >= 1 x_pos, not {bin_width}")
    stages: dict[str, StageFailures] = {}
    for _, stage, flag, x_pos in episodes_from_start(metrics_csv, from_step, to_step):
        part = stages.setdefault(stage, StageFailures())
        part.episodes += 1
        if flag:
            part.flags += 1
        else:
            part.bins[x_pos // bin_width * bin_width] += 1
    return dict(sorted(stages.items()))


def flags_per_window(metrics_csv: Path, every: int, from_step: int = 0, to_step: int | None = None,
                     past: int | None = None) -> dict[int, dict[str, tuple[int, int]]]:
    """Per window of ``every`` agent steps (keyed by its first step) and stage: (flags,
    episodes) of the training episodes from the stage start that ended in it. Training
    plays with epsilon (its floor after the decay), so this is the run's flag rate under
    random presses as it learns: what the epsilon bar measures, and, in a fine-tuning run,
    whether the agent it started from gets better or forgets (docs/world-1.md). With
    ``past``, an episode counts when it reached the flag or ended at x_pos >= ``past``."""
    if every < 1:
        raise ValueError(f"the window must be >= 1 agent step, not {every}")
    windows: dict[int, dict[str, list[int]]] = {}
    for step, stage, flag, x_pos in episodes_from_start(metrics_csv, from_step, to_step):
        counts = windows.setdefault(step // every * every, {}).setdefault(stage, [0, 0])
        counts[0] += flag or (past is not None and x_pos >= past)
        counts[1] += 1
    return {start: {stage: (c[0], c[1]) for stage, c in sorted(parts.items())}
            for start, parts in sorted(windows.items())}


def flags_by_restart(metrics_csv: Path, width: int, from_step: int = 0,
                     to_step: int | None = None) -> dict[str, dict[int, tuple[int, int, float]]]:
    """Per stage and per window of ``width`` replayed steps (keyed by its first; -1 for the
    episodes from the stage start): (flags, episodes, median end x_pos) of the training
    episodes that ended at an agent step in [``from_step``, ``to_step``]."""
    if width < 1:
        raise ValueError(f"the window must be >= 1 replayed step, not {width}")
    ends: dict[str, dict[int, list[tuple[bool, int]]]] = defaultdict(lambda: defaultdict(list))
    for row in episode_rows(metrics_csv, from_step, to_step):
        replayed = -1 if began_at_stage_start(row) else int(row["restart_steps"]) // width * width
        ends[row.get("stage") or ""][replayed].append((row["flag"] == "1", int(float(row["x_pos"]))))
    return {stage: {start: (sum(flag for flag, _ in episodes), len(episodes),
                            float(np.median([x for _, x in episodes])))
                    for start, episodes in sorted(windows.items())}
            for stage, windows in sorted(ends.items())}


def restart_report(stages: dict[str, dict[int, tuple[int, int, float]]], width: int) -> str:
    """Lines for people: per stage, one row per window of replayed steps."""
    if not stages:
        return "no training episodes in these steps"
    lines = []
    for stage, windows in stages.items():
        name = stage or "the run's stage"
        lines.append(f"{name}: flags by where the episode began")
        for start, (flags, episodes, median_x) in windows.items():
            where = "the stage start" if start < 0 else f"after {max(start, 1):,}-{start + width - 1:,} replayed steps"
            lines.append(f"  {where}: {flags:,}/{episodes:,} ({flags / episodes:.0%}), median end x_pos {median_x:.0f}")
    return "\n".join(lines)


def window_report(windows: dict[int, dict[str, tuple[int, int]]], every: int, past: int | None = None) -> str:
    """A table for people: one row per window, one column per stage, 'flags/episodes (rate)'
    (with ``past``: those past that x_pos, flags included)."""
    if not windows:
        return "no training episodes from the stage start in these steps"
    stages = sorted({stage for parts in windows.values() for stage in parts})
    cells = [[f"{start:,}-{start + every - 1:,}"]
             + [f"{f}/{n} ({f / n:.0%})" if (f, n) != (0, 0) else "-" for f, n in
                (parts.get(stage, (0, 0)) for stage in stages)]
             for start, parts in windows.items()]
    header = ["agent steps"] + [stage or "the run's stage" for stage in stages]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in [header, *cells]]
    what = "flags" if past is None else f"x_pos >= {past:,} (or the flag)"
    return f"{what} of the training episodes from the stage start\n" + "\n".join(lines)


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
                               "bins": bins_json(part.bins)}
                       for stage, part in stages.items()}}


@dataclass
class ModelFailures:
    """Where one kept model's harness episodes that missed the flag ended."""

    protocol: str
    """The harness's cache key: seeds, episodes, epsilon (and stage, for a run of several)."""
    step: int
    flag_rate: float
    bins: Counter[int]


def read_model_failures(cache: dict[str, Any], from_step: int = 0, to_step: int | None = None,
                        bin_width: int = 100) -> tuple[list[ModelFailures], int]:
    """The models of a time-to-solve cache (``time_to_solve.json``'s content) with their
    failures binned by ``bin_width`` x_pos, by protocol then step; and how many models in
    the steps asked for were measured before the harness kept ``failed_x_pos``."""
    if bin_width < 1:
        raise ValueError(f"the bin width must be >= 1 x_pos, not {bin_width}")
    models, without = [], 0
    for protocol in sorted(cache):
        for step_text, result in sorted(cache[protocol].items(), key=lambda item: int(item[0])):
            step = int(step_text)
            if step < from_step or (to_step is not None and step > to_step):
                continue
            if "failed_x_pos" not in result:
                without += 1
                continue
            bins = Counter(int(x) // bin_width * bin_width for x in result["failed_x_pos"])
            models.append(ModelFailures(protocol, step, float(result["flag_rate"]), bins))
    return models, without


def model_report(models: list[ModelFailures], without: int, bin_width: int, top: int) -> str:
    """Lines for people: per protocol, each model's flag rate and its ``top`` failure bins."""
    lines, protocol = [], None
    for model in models:
        if model.protocol != protocol:
            protocol = model.protocol
            lines.append(f"{protocol}: where each model's episodes that missed the flag ended")
        where = ", ".join(f"x_pos {low}-{low + bin_width - 1}: {count}"
                          for low, count in worst_bins(model.bins, top)) or "none"
        lines.append(f"  step {model.step:,}: {model.flag_rate:.0%} flags; {where}")
    if without:
        lines.append(f"{without} model(s) measured before the harness kept where episodes ended (not shown)")
    return "\n".join(lines) if lines else "no models measured by the time-to-solve harness in these steps"


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
    parser.add_argument("--every", type=int, default=None, metavar="STEPS",
                        help="instead of where episodes end: the flags from the stage start per window of this "
                             "many agent steps, per stage (training's exploring play: its flag rate as it learns)")
    parser.add_argument("--past", type=int, default=None, metavar="X",
                        help="with --every: count the episodes that got to x_pos X or the flag, not only the "
                             "flag (how often one barrier is passed from the stage start as the run learns)")
    parser.add_argument("--restarts", type=int, default=None, metavar="STEPS",
                        help="instead: every training episode by where it began, per window of this many replayed "
                             "steps (env.restart_from_best) and the stage start: its flags and median end x_pos")
    parser.add_argument("--models", action="store_true",
                        help="the kept models' harness episodes (time_to_solve.json: greedy, and with epsilon "
                             "where pick measured them), not training's")
    args = parser.parse_args(argv)
    if args.bin < 1 or args.top < 1 or any(value is not None and value < 1 for value in (args.every, args.restarts)):
        sys.exit("error: --bin, --top, --every and --restarts must be >= 1")
    if sum((args.every is not None, args.restarts is not None, args.models)) > 1:
        sys.exit("error: --every, --restarts and --models each read the episodes another way: give one")
    if args.past is not None and args.every is None:
        sys.exit("error: --past counts per window of --every STEPS: give --every too")
    if args.models:
        cache = args.run_dir / CACHE_FILE
        if not cache.is_file():
            sys.exit(f"error: {cache} not found: measure the run's models first "
                     "(python -m mario_dqn.time_to_solve RUN or python -m mario_dqn.pick RUN)")
        try:
            models, without = read_model_failures(json.loads(cache.read_text()), args.from_step, args.to_step,
                                                  args.bin)
        except (KeyError, ValueError, AttributeError, TypeError) as err:
            sys.exit(f"error: {cache} is not a time-to-solve cache this version reads ({type(err).__name__}: {err})")
        if args.json:
            print(json.dumps({"bin": args.bin, "models_without_failures": without, "models": [
                {"protocol": m.protocol, "step": m.step, "flag_rate": m.flag_rate,
                 "bins": bins_json(m.bins)} for m in models]}, indent=1))
        else:
            print(model_report(models, without, args.bin, args.top))
        return
    metrics = args.run_dir / "metrics.csv"
    if not metrics.is_file():
        sys.exit(f"error: {metrics} not found: give a run directory (save/runs/NAME)")
    try:
        if args.restarts is not None:
            by_start = flags_by_restart(metrics, args.restarts, args.from_step, args.to_step)
        elif args.every is not None:
            windows = flags_per_window(metrics, args.every, args.from_step, args.to_step, args.past)
        else:
            stages = read_failures(metrics, args.from_step, args.to_step, args.bin)
    except (KeyError, ValueError) as err:
        sys.exit(f"error: {metrics} is not a metrics.csv this version reads ({type(err).__name__}: {err})")
    if args.restarts is not None:
        print(json.dumps({"restarts": args.restarts, "stages": {stage: [
            {"replayed_from": start, "flags": f, "episodes": n, "median_x_pos": x}
            for start, (f, n, x) in windows.items()] for stage, windows in by_start.items()}}, indent=1)
              if args.json else restart_report(by_start, args.restarts))
        return
    if args.every is not None:
        counted = "flags" if args.past is None else "past"
        print(json.dumps({"every": args.every, **({"past": args.past} if args.past is not None else {}), "windows": [
            {"from_step": start, "stages": {stage: {counted: f, "episodes": n} for stage, (f, n) in parts.items()}}
            for start, parts in windows.items()]}, indent=1) if args.json
              else window_report(windows, args.every, args.past))
        return
    print(json.dumps(as_json(stages, args.bin), indent=1) if args.json else report(stages, args.bin, args.top))


if __name__ == "__main__":
    main()
