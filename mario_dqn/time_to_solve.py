"""Time to solve: evaluate every kept model of a run on the same fixed seeds.

    python -m mario_dqn.time_to_solve RUN_DIR [--episodes 20] [--seed 0] [--epsilon 0] [--stage W-S]
                                              [--every N] [--from-step STEP] [--jobs N]

(``benchmarks/time_to_solve.py`` is the same command.) For each model the run kept
(``<run>/models/``, written with every checkpoint when ``runner.keep_models`` is on) it
plays ``--episodes`` greedy episodes with seeds ``SEED + i`` (the protocol of
``main.py evaluate``) and prints one row: agent steps, wall hours of training at that
step (metrics.csv's ``wall_s``), flag rate, mean x_pos. Then the summary: steps and wall
hours to the first training flag and to the first model with >= 50% and >= 80% flags,
and the lowest flag rate of the models in the 30 minutes after the first >= 80% one (is
the policy stable once it gets there?).

A run of several stages (``train --stages``) is measured per stage: each model plays
``--episodes`` episodes on each of its stages (or on the ``--stage`` ones), with the
same seeds, and each stage gets its table and summary (its first training flag is
the first on that stage). Pooled episodes would let the seed pick the stage, so a
stage could get few of them.

It runs at low priority (nice 10), so it can run beside training, and it caches each
model's result in ``<run>/time_to_solve.json`` (keyed by seed, episodes and epsilon):
run it again later and only the models written since are evaluated. Evaluations are
deterministic (same model, same seeds: same result), so a cached row is the row.
The campaign (``main.py campaign``) reads the same cache for its results table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from mario_dqn.metrics_log import began_at_stage_start

STABLE_WINDOW_S = 30 * 60
"""After the first >= 80% model, how long the policy must stay good (issue 18: none below 60%)."""
MARKS = (0.5, 0.8)
CACHE_FILE = "time_to_solve.json"


def first_training_flag(run_dir: Path, stage: str | None = None) -> tuple[int, float | None] | None:
    """(step, wall_s) of the first training episode that reached the flag, from metrics.csv;
    with ``stage`` ('W-S'), the first on that stage. Episodes that began along an earlier
    one (``env.restart_from_best``: restart_steps > 0) do not count: they did not start
    at the stage start."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["kind"] == "episode" and row["flag"] == "1" and (stage is None or row.get("stage") == stage)
                    and began_at_stage_start(row)):
                wall = row.get("wall_s") or ""
                return int(row["step"]), float(wall) if wall else None
    return None


def hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.2f}"


def first_at(rows: list[dict[str, Any]], mark: float) -> dict[str, Any] | None:
    """The first row (model, oldest first) with a flag rate >= ``mark``, or None."""
    return next((r for r in rows if r["flag_rate"] >= mark), None)


def summarize(rows: list[dict[str, Any]], first_flag: tuple[int, float | None] | None) -> list[str]:
    """The summary lines for ``rows`` (one per model, oldest first)."""
    lines = []
    if first_flag is None:
        lines.append("first training flag: not yet")
    else:
        lines.append(f"first training flag: step {first_flag[0]:,}, {hours(first_flag[1])} h")
    for mark in MARKS:
        hit = first_at(rows, mark)
        if hit is None:
            lines.append(f">= {mark:.0%} flags: not yet (best {max((r['flag_rate'] for r in rows), default=0):.0%})")
        else:
            lines.append(f">= {mark:.0%} flags: step {hit['step']:,}, {hours(hit['wall_s'])} h")
    hit = first_at(rows, MARKS[-1])
    if hit is not None and hit["wall_s"] is not None:
        window = [r for r in rows if r["wall_s"] is not None and hit["wall_s"] < r["wall_s"] <= hit["wall_s"] + STABLE_WINDOW_S]
        if window:
            low = min(window, key=lambda r: r["flag_rate"])
            lines.append(f"lowest flag rate in the 30 min after it: {low['flag_rate']:.0%} (step {low['step']:,}; "
                         f"{len(window)} models)")
        else:
            lines.append("lowest flag rate in the 30 min after it: no models there yet")
    return lines


_WORKER: dict[str, Any] = {}
"""Per evaluation process: the run's config, an agent to load weights into, the protocol."""


def _start_worker(run_dir: str, episodes: int, seed: int, epsilon: float) -> None:
    from mario_dqn.signals import exit_with_parent

    exit_with_parent()  # a harness killed alone must not leave its worker evaluating
    os.nice(10)  # beside a training run, this must be the one that waits
    from mario_dqn import checkpoint as ckpt
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent

    config = ckpt.read_run_config(Path(run_dir))
    _WORKER.update(config=config, agent=build_agent(config, len(ACTIONS[config.env.action_set])),
                   protocol=(episodes, seed, epsilon))


def _evaluate_model(weights: str, stage: str) -> dict[str, Any]:
    """Flag rate and mean x_pos of one kept model on ``stage`` over the protocol's fixed
    seeds, and where its episodes that missed the flag ended (``failed_x_pos``, sorted:
    what ``python -m mario_dqn.failures RUN --models`` bins)."""
    import config as C
    from mario_dqn.evaluation import evaluate

    agent, (episodes, seed, epsilon) = _WORKER["agent"], _WORKER["protocol"]
    agent.load_weights_file(weights)
    config = C.replace(_WORKER["config"], {"env": {"stages": (stage,)}})
    result = evaluate(agent, config, episodes, seed, epsilon)
    return {"flag_rate": result["flag_rate"], "mean_x_pos": result["mean_x_pos"],
            "failed_x_pos": sorted(row.x_pos for row in result.per_episode if not row.flag)}


def cache_key(seed: int, episodes: int, epsilon: float, stage: str, run_stages: tuple[str, ...]) -> str:
    """The cache's key for one protocol on one stage; a one-stage run on its own stage keeps
    the key the harness used before it measured stages, so older caches stay valid."""
    key = f"seed={seed},episodes={episodes},epsilon={epsilon}"
    return key if tuple(run_stages) == (stage,) else f"{key},stage={stage}"


def read_cache(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CACHE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def measured_rows(run_dir: Path, stage: str, episodes: int = 20, seed: int = 0, epsilon: float = 0.0,
                  cache: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The kept models of ``run_dir`` measured so far on ``stage`` with this protocol, oldest
    first, as rows of step, wall_s, flag_rate, mean_x_pos and weights (the file): what
    :func:`summarize` reads. Models not measured yet are left out."""
    from mario_dqn import checkpoint as ckpt

    run_stages = ckpt.read_run_config(run_dir).env.stages
    cache = read_cache(run_dir) if cache is None else cache
    done = cache.get(cache_key(seed, episodes, epsilon, stage, run_stages), {})
    return [{"step": info["step"], "wall_s": info.get("wall_s"), "weights": str(weights), **done[str(info["step"])]}
            for weights, info in ckpt.kept_models(run_dir) if str(info["step"]) in done]


def measure(run_dir: Path, stages: list[str], episodes: int, seed: int, epsilon: float, *, every: int = 1,
            from_step: int = 0, jobs: int = 1, only: set[int] | None = None,
            progress: Callable[[Any, int], Any] = lambda items, total: items) -> dict[str, Any]:
    """Evaluate the kept models of ``run_dir`` not yet in its cache, on each of ``stages``
    (every ``every``-th model, those of ``from_step`` on, and with ``only`` just the
    models of those steps), ``jobs`` at once; return the cache.

    The cache file is rewritten as each result comes, so a killed measurement keeps the rest.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from mario_dqn import checkpoint as ckpt

    config = ckpt.read_run_config(run_dir)
    models = ckpt.kept_models(run_dir)[:: max(every, 1)]
    cache_path = run_dir / CACHE_FILE
    cache = read_cache(run_dir)
    done = {stage: cache.setdefault(cache_key(seed, episodes, epsilon, stage, config.env.stages), {})
            for stage in stages}
    todo = [(str(weights), info["step"], stage) for stage in stages for weights, info in models
            if str(info["step"]) not in done[stage] and info["step"] >= from_step
            and (only is None or info["step"] in only)]
    if not todo:
        return cache
    task = (str(run_dir), episodes, seed, epsilon)
    with ProcessPoolExecutor(max(jobs, 1), mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=task) as pool:
        results = pool.map(_evaluate_model, [weights for weights, _, _ in todo], [stage for _, _, stage in todo])
        for (_, step, stage), result in progress(zip(todo, results), len(todo)):
            done[stage][str(step)] = result
            tmp = cache_path.with_name(cache_path.name + ".tmp")
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, cache_path)
    return cache


def model_bar(quiet: bool) -> Callable[[Any, int], Any]:
    """:func:`measure`'s ``progress``: a tqdm bar over the models measured, none when ``quiet``."""
    def bar(items: Any, total: int) -> Any:
        if quiet:
            return items
        from tqdm import tqdm

        return tqdm(items, total=total, desc="models", unit="model")

    return bar


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per model (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED+i (default 0)")
    parser.add_argument("--epsilon", type=float, default=0.0, help="exploration rate (default 0: greedy)")
    parser.add_argument("--every", type=int, default=1, help="evaluate every Nth kept model (default 1)")
    parser.add_argument("--from-step", type=int, default=0, metavar="STEP",
                        help="only the kept models of step STEP on (default 0: all); a run of several stages "
                             "costs an evaluation per model and stage, and its early models rarely need one")
    parser.add_argument("--stage", action="append", metavar="W-S",
                        help="measure on this stage (repeatable; default: each of the run's stages)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="models evaluated at once, each in a process of its own (default 1; use the "
                             "machine's cores when nothing else runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    import config as C
    from mario_dqn import checkpoint as ckpt

    try:
        config = ckpt.read_run_config(args.run_dir)
        stages = [f"{w}-{s}" for w, s in map(C.parse_stage, args.stage)] if args.stage else list(config.env.stages)
    except (ckpt.CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    models = ckpt.kept_models(args.run_dir)[:: max(args.every, 1)]
    if not models:
        sys.exit(f"error: {args.run_dir / ckpt.MODELS_DIR} holds no kept models (runner.keep_models)")

    bar = model_bar(args.quiet)
    cache = measure(args.run_dir, stages, args.episodes, args.seed, args.epsilon, every=args.every,
                    from_step=args.from_step, jobs=args.jobs, progress=bar)
    for stage in stages:
        kept = {info["step"] for _, info in models}  # --every's models; those before --from-step if cached
        rows = [row for row in measured_rows(args.run_dir, stage, args.episodes, args.seed, args.epsilon, cache)
                if row["step"] in kept]
        skipped = len(models) - len(rows)
        print(f"{'step':>10} {'wall_h':>7} {'flags':>6} {'mean_x':>7}   stage {stage}")
        for row in rows:
            print(f"{row['step']:>10,} {hours(row['wall_s']):>7} {row['flag_rate']:>6.0%} {row['mean_x_pos']:>7.0f}")
        print(f"time_to_solve ({args.run_dir}, stage {stage}, {args.episodes} episodes, "
              f"seeds {args.seed}..{args.seed + args.episodes - 1}, epsilon {args.epsilon}"
              + (f"; {skipped} earlier models not measured" if skipped else "") + "):")
        own = tuple(config.env.stages) == (stage,)  # metrics.csv of older one-stage runs has no stage column
        for line in summarize(rows, first_training_flag(args.run_dir, None if own else stage)):
            print("  " + line)


if __name__ == "__main__":
    main()
