"""Where one random press is fatal: a trace of a greedy episode, press by press.

    python -m mario_dqn.press_trace AGENT --stage 1-4 [--seed 1000] [--every 2] [--horizon 30]

Issue 38's robustness bar plays with epsilon 0.05: on 5% of agent steps the action is
drawn uniformly from the action set (the greedy one among them) and held for that step's
frames. Whether an agent can pass it depends on its route: where a jump must be held to
its full height over a pit, a random release kills whatever the policy learned. This
measures that on the agent's own greedy route. It plays the greedy episode of evaluation
seed SEED (the same no-op start as ``evaluate --seed SEED``), then at every EVERY-th step
of it replaces the greedy action by each other action for that one step, lets the agent
play greedily from there, and calls the press fatal when the episode ends in a death
within HORIZON steps. Each branch is rebuilt by replaying the episode's actions from the
reset (the emulator is deterministic), so a trace costs about (steps / EVERY) x (actions
- 1) half-episodes of emulation.

From the fatal presses it estimates what epsilon-greedy play along this route gets to the
end without a fatal press: the product over the steps after the no-op start of
``1 - epsilon * fatal_t / actions`` (a drawn action is any of the ``actions``, the greedy
one included; a step between two traced ones counts as the one before it). It counts
single presses only: two close together, or a press that leaves Mario alive but off the
route, are not in it, so it is about an upper bound of the epsilon flag rate on this route
when the greedy episode itself reaches the flag (about: with EVERY > 1 a fatal window of
one step between traced steps is missed, and one at a traced step counts EVERY times). A measured epsilon rate near the bound says
the agent already recovers from what can be recovered from and a better one needs
another route; far below it says it does not recover.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

Policy = Callable[[np.ndarray], int]
"""The greedy action for one observation."""


@dataclass(frozen=True)
class Branch:
    """One traced step: its index in the episode, Mario's x_pos there, the greedy action
    and the other actions whose one-step press ended the episode in a death within the
    horizon."""

    step: int
    x_pos: int
    greedy: int
    fatal: tuple[int, ...]


@dataclass(frozen=True)
class Trace:
    """A greedy episode (its actions, no-op start included; whether it reached the flag;
    its furthest x_pos) and its traced steps."""

    actions: tuple[int, ...]
    noops: int
    flag: bool
    x_pos: int
    branches: tuple[Branch, ...]


def _died(terminated: bool, info: dict[str, Any]) -> bool:
    return bool(terminated) and not bool(info.get("flag_get", False))


def _replay(env: Any, seed: int, actions: tuple[int, ...] | list[int]) -> tuple[np.ndarray, dict[str, Any], bool]:
    """Reset with ``seed`` and take ``actions``; (obs, info, ended) after them."""
    obs, info = env.reset(seed=seed)
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return obs, info, True
    return obs, info, False


def greedy_episode(env: Any, policy: Policy, seed: int, noops: int, noop_action: int = 0
                   ) -> tuple[list[int], list[int], bool, int]:
    """The greedy episode of ``seed`` after ``noops`` no-op steps: its actions, the x_pos
    before each of them, whether it reached the flag, and its furthest x_pos."""
    obs, info = env.reset(seed=seed)
    actions: list[int] = []
    xs: list[int] = []
    furthest = int(info.get("x_pos", 0))
    while True:
        action = noop_action if len(actions) < noops else policy(obs)
        xs.append(int(info.get("x_pos", 0)))
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        furthest = max(furthest, int(info.get("x_pos", 0)))
        if terminated or truncated:
            return actions, xs, bool(info.get("flag_get", False)), furthest


def press_is_fatal(env: Any, policy: Policy, seed: int, before: list[int] | tuple[int, ...], press: int,
                   horizon: int) -> bool:
    """Whether pressing ``press`` after the actions ``before`` (from the reset with ``seed``)
    and then playing greedily ends in a death within ``horizon`` steps of the press."""
    obs, info, ended = _replay(env, seed, before)
    if ended:
        return False
    obs, _, terminated, truncated, info = env.step(press)
    if terminated or truncated:
        return _died(terminated, info)
    for _ in range(horizon - 1):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return _died(terminated, info)
    return False


def trace(env: Any, policy: Policy, seed: int, noops: int, num_actions: int, every: int = 2,
          horizon: int = 30, progress: Callable[[Any], Any] = lambda items: items) -> Trace:
    """Trace the greedy episode of ``seed`` (see the module's doc): every ``every``-th
    step after the no-op start, each non-greedy action pressed once."""
    actions, xs, flag, furthest = greedy_episode(env, policy, seed, noops)
    branches = []
    for t in progress(range(noops, len(actions), max(every, 1))):
        fatal = tuple(a for a in range(num_actions)
                      if a != actions[t] and press_is_fatal(env, policy, seed, actions[:t], a, horizon))
        branches.append(Branch(t, xs[t], actions[t], fatal))
    return Trace(tuple(actions), noops, flag, furthest, tuple(branches))


def survival_bound(result: Trace, epsilon: float, num_actions: int) -> float:
    """The chance that epsilon-greedy play along ``result``'s route makes no fatal single
    press: the product over its steps after the no-op start of ``1 - epsilon * fatal /
    num_actions``, each step taking the fatal count of the traced step at or before it."""
    if not result.branches:
        return 1.0
    starts = [b.step for b in result.branches]
    survive = 1.0
    for t in range(result.noops, len(result.actions)):
        branch = result.branches[int(np.searchsorted(starts, t, side="right")) - 1]
        survive *= 1.0 - epsilon * len(branch.fatal) / num_actions
    return survive


def fatal_stretches(result: Trace) -> list[tuple[int, int, int]]:
    """Runs of consecutive traced steps with a fatal press: (first x_pos, last x_pos,
    traced steps in the run), in episode order."""
    runs: list[tuple[int, int, int]] = []
    current: list[Branch] = []
    for branch in (*result.branches, None):
        if branch is not None and branch.fatal:
            current.append(branch)
            continue
        if current:
            runs.append((current[0].x_pos, current[-1].x_pos, len(current)))
            current = []
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agent", type=Path, help="a run directory, checkpoint or shipped agent")
    parser.add_argument("--stage", metavar="W-S", help="the stage (default: the agent's only stage)")
    parser.add_argument("--seed", type=int, default=1000, help="the evaluation seed of the episode (default 1000)")
    parser.add_argument("--every", type=int, default=2, help="trace every Nth step (default 2)")
    parser.add_argument("--horizon", type=int, default=30,
                        help="agent steps after a press within which a death counts as its doing (default 30)")
    parser.add_argument("--epsilon", type=float, default=0.05, help="epsilon of the estimate (default 0.05)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.every < 1 or args.horizon < 1 or not 0.0 <= args.epsilon <= 1.0:
        sys.exit("error: --every and --horizon must be >= 1 and --epsilon within 0..1")

    from mario_dqn.tf_import import import_tensorflow

    import_tensorflow()  # first, so its start-up chatter stays out of a one-line error
    from mario_dqn import shipped

    try:
        config, policy = shipped.load_one_stage(args.agent, args.stage)
    except ValueError as err:
        sys.exit(f"error: {err}")
    import os

    os.nice(10)  # beside a training run, this is the one that waits
    from mario_dqn.environment import ACTIONS, make_env
    from mario_dqn.episode_start import evaluation_noops

    num_actions = len(ACTIONS[config.env.action_set])

    def bar(items: Any) -> Any:
        if args.quiet:
            return items
        from tqdm import tqdm

        return tqdm(items, desc="steps", unit="step")

    env = make_env(config.env)
    try:
        result = trace(env, policy, args.seed, evaluation_noops(args.seed), num_actions, args.every,
                       args.horizon, bar)
    finally:
        env.close()
    fatal = [b for b in result.branches if b.fatal]
    print(f"{args.agent}, stage {config.env.stages[0]}, seed {args.seed}: greedy episode of {len(result.actions)} "
          f"steps ({result.noops} no-ops), {'flag' if result.flag else 'no flag'}, x_pos {result.x_pos}")
    print(f"traced {len(result.branches)} steps (every {args.every}, horizon {args.horizon}): "
          f"{len(fatal)} with a fatal press, {sum(len(b.fatal) for b in result.branches)} fatal presses "
          f"of {len(result.branches) * (num_actions - 1)}")
    for first, last, count in fatal_stretches(result):
        print(f"  x_pos {first}-{last}: {count} traced steps with a fatal press")
    print(f"no fatal single press with epsilon {args.epsilon}: {survival_bound(result, args.epsilon, num_actions):.0%}"
          + ("" if result.flag else " (the greedy episode itself does not reach the flag)"))


if __name__ == "__main__":
    main()
