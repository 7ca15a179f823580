"""The route of one greedy episode, step by step: where Mario went and where the game sent him back.

    python -m mario_dqn.route AGENT [--stage W-S] [--seed 0] [--every 20] [--csv PATH]

``evaluate`` says where an episode ended; on a castle maze that is not where it failed.
4-4 (and 7-4, 8-4) checks Mario's height at fixed places and loops a wrong route back four
pages, and evaluation, unlike training, does not end an episode there, so a greedy episode
that reached the second check twice reads as "x_pos 1666" (docs/every-stage.md). This
plays the episode ``evaluate --seed SEED`` plays first (the same no-op start, the greedy
policy) and prints what it did: how it ended, the furthest x_pos, each setback (a step
after which x_pos fell by more than ``--drop``: the game moved Mario back) with the height
he was at, and every ``--every``-th step's x_pos, ``y_pos`` and action. ``--csv`` writes
every step. ``y_pos`` is the info's (larger is higher: 191 is RAM Y $40, 79 is $B0, the two
heights 4-4's loop table asks for).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mario_dqn.episode_start import NOOP_ACTION

Policy = Callable[[np.ndarray], int]
"""The greedy action for one observation."""

SETBACK_DROP = 200
"""x_pos falling by more than this in one agent step is the game moving Mario back: at 4
frames per step Mario runs at most ~15 px, and 4-4's loop sends him back 1,012."""


@dataclass(frozen=True)
class Point:
    """The state before agent step ``step`` (0-based) and the action taken from it."""

    step: int
    x_pos: int
    y_pos: int
    action: int


@dataclass(frozen=True)
class Route:
    """One episode: every step's :class:`Point`, how it ended ('flag', 'death' or
    'truncated': the no-progress or step limit), where, and how many no-op steps began it."""

    points: tuple[Point, ...]
    end: str
    x_pos: int
    y_pos: int
    noops: int

    @property
    def furthest(self) -> int:
        return max([self.x_pos, *(p.x_pos for p in self.points)])


@dataclass(frozen=True)
class Setback:
    """After step ``step``, taken at ``from_x`` (height ``y_pos``), Mario stood at ``to_x``."""

    step: int
    from_x: int
    to_x: int
    y_pos: int


def play_route(env: Any, policy: Policy, seed: int, noops: int) -> Route:
    """Reset ``env`` with ``seed``, take ``noops`` no-op steps, then ``policy``'s actions to
    the episode's end, recording each step's state and action."""
    obs, info = env.reset(seed=seed)
    points: list[Point] = []
    while True:
        action = NOOP_ACTION if len(points) < noops else policy(obs)
        points.append(Point(len(points), int(info.get("x_pos", 0)), int(info.get("y_pos", 0)), action))
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            flag = bool(info.get("flag_get", False))
            end = "flag" if flag else ("death" if terminated else "truncated")
            return Route(tuple(points), end, int(info.get("x_pos", 0)), int(info.get("y_pos", 0)), noops)


def setbacks(route: Route, drop: int = SETBACK_DROP) -> list[Setback]:
    """Every step after which x_pos fell by more than ``drop`` (the last step's fall is
    measured to where the episode ended)."""
    xs = [p.x_pos for p in route.points] + [route.x_pos]
    return [Setback(p.step, p.x_pos, xs[i + 1], p.y_pos)
            for i, p in enumerate(route.points) if p.x_pos - xs[i + 1] > drop]


def report(route: Route, every: int, drop: int = SETBACK_DROP) -> list[str]:
    """The lines the command prints after its header."""
    lines = [f"ended: {route.end} at x_pos {route.x_pos} (y_pos {route.y_pos}) after {len(route.points)} steps "
             f"({route.noops} no-ops); furthest x_pos {route.furthest}"]
    backs = setbacks(route, drop)
    lines.append(f"sent back {len(backs)} time(s)" + (":" if backs else ""))
    lines += [f"  after step {b.step}: x_pos {b.from_x} -> {b.to_x} (y_pos {b.y_pos})" for b in backs]
    lines.append("step  x_pos  y_pos  action")
    lines += [f"{p.step:4d}  {p.x_pos:5d}  {p.y_pos:5d}  {p.action}" for p in route.points[::every]]
    return lines


def write_csv(route: Route, path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["step", "x_pos", "y_pos", "action"])
        writer.writeheader()
        writer.writerows(asdict(p) for p in route.points)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agent", type=Path, help="a run directory, checkpoint, kept model or shipped agent")
    parser.add_argument("--stage", metavar="W-S", help="the stage (default: the agent's only stage)")
    parser.add_argument("--seed", type=int, default=0, help="the evaluation seed of the episode (default 0)")
    parser.add_argument("--every", type=int, default=20, help="print every Nth step (default 20)")
    parser.add_argument("--drop", type=int, default=SETBACK_DROP,
                        help=f"a fall of x_pos larger than this in one step is a setback (default {SETBACK_DROP})")
    parser.add_argument("--csv", type=Path, help="also write every step to this CSV file")
    args = parser.parse_args(argv)
    if args.every < 1 or args.drop < 1:
        sys.exit("error: --every and --drop must be >= 1")
    if args.csv is not None and not args.csv.parent.is_dir():
        sys.exit(f"error: --csv: no directory {args.csv.parent}")

    from mario_dqn.tf_import import import_tensorflow

    import_tensorflow()  # first, so its start-up chatter stays out of a one-line error
    from mario_dqn import shipped

    try:
        config, policy = shipped.load_one_stage(args.agent, args.stage)
    except ValueError as err:
        sys.exit(f"error: {err}")
    from mario_dqn.environment import make_env
    from mario_dqn.episode_start import evaluation_noops

    env = make_env(config.env)
    try:
        route = play_route(env, policy, args.seed, evaluation_noops(args.seed))
    finally:
        env.close()
    print(f"{args.agent}, stage {config.env.stages[0]}, seed {args.seed}")
    print("\n".join(report(route, args.every, args.drop)))
    if args.csv is not None:
        write_csv(route, args.csv)
        print(f"every step: {args.csv}")


if __name__ == "__main__":
    main()
