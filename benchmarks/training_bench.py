"""Training throughput against the machine's limit (issue 7): the five figures in one run.

Prints `name: value unit` lines, each a median over --reps repetitions:
  1. train.emulator_limit: raw emulator frames/s with one emulator per core, all busy;
  2. train.acting_N: epsilon-greedy acting with the network through the real vector env
     (no learning), agent steps/s and its fraction of emulator_limit / frame_skip;
  3. train.update_bB_tT: one learning step on the config's batch of B with T TF intra-op
     threads, wall ms and CPU ms (core-seconds); the act forward pass's cost likewise;
  4. train.compute_bound = cores / (emulation core-s per agent step
     + update core-s / train_freq + act core-s per agent step), in agent steps/s;
  5. train.e2e_envsN: the real Trainer (the default agent config) after learning has
     started, agent steps/s and its fraction of the bound, for each num_envs in --envs;
     the best is named.

``--ab A,B`` instead compares two configurations (``defaults`` or a preset name from
config/presets/, e.g. the old defaults ``w11-a``) in alternating rounds: each side's
learning-step cost, compute bound and end-to-end rate, and each round's ratio B/A. A
configuration's --set overrides reach every worker (``--set`` on the command line).

Every TF measurement runs in its own subprocess (this script with --worker): the
intra-op thread count must be fixed before TensorFlow starts, and one measurement's
threads and caches must not skew another's. End-to-end runs use epsilon 0.05 (the
schedule's floor, where a run spends most of its steps) so the network acts on every
step; at epsilon ~1 acting skips the network and the figure would flatter the loop.

Targets on a 2-core machine: acting >= 85% of the emulator limit; end-to-end >= 85%
of the bound and >= 100 agent steps/s.
Run: .venv/bin/python benchmarks/training_bench.py [--reps 3] [--steps 2000] [--envs 1,2,4]
     .venv/bin/python benchmarks/training_bench.py --ab w11-a,defaults --envs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import config as C

ACT_EPSILON = 0.05
"""Exploration rate for acting and end-to-end runs: the default schedule's floor."""


def bench_config(sets: list[str]) -> C.Config:
    """The defaults with ``sets`` (``key=value`` strings, as ``--set`` takes) applied."""
    return C.apply_overrides(C.Config(), sets)


def side_sets(name: str) -> list[str]:
    """The overrides of an A/B side: none for ``defaults``, else the preset's, with
    ``runner.*`` dropped (the bench sets its own envs, steps and checkpoints)."""
    if name == "defaults":
        return []
    from config import presets

    return [text for text in presets.load(name)[1] if not text.startswith(("runner.", "paths."))]


# ------------------------------------------------------------------ workers (subprocesses)

def _configure_threads(threads: int) -> None:
    """Fix TF's intra-op pool size; must run before TensorFlow executes anything."""
    from mario_dqn.tf_import import import_tensorflow

    tf = import_tensorflow()

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)


def _cpu_ms(fn, calls: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per call of ``fn``, averaged over ``calls`` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return ((time.perf_counter() - wall) / calls * 1e3, (time.process_time() - cpu) / calls * 1e3)


def worker_update(threads: int, reps: int, iters: int, sets: list[str]) -> dict[str, float]:
    """Update and act cost with ``threads`` intra-op threads, on noise (cost does not depend on content)."""
    _configure_threads(threads)
    from agent_bench import NUM_ACTIONS, OBS_SHAPE, random_batch

    from mario_dqn.agent import DQNAgent

    config = bench_config(sets).agent
    batch = random_batch(np.random.default_rng(0), config.batch_size)
    agent = DQNAgent(NUM_ACTIONS, OBS_SHAPE, config, seed=0)
    for _ in range(3):  # tracing and compilation
        agent.train_step(batch)
    result: dict[str, float] = {}
    update = [_cpu_ms(lambda: agent.train_step(batch), iters) for _ in range(reps)]
    result["update_wall_ms"] = statistics.median(w for w, _ in update)
    result["update_cpu_ms"] = statistics.median(c for _, c in update)
    for n in (1, 2):
        obs = batch.obs[:n]
        agent.act(obs, 0.0)
        act = [_cpu_ms(lambda: agent.act(obs, 0.0), iters * 5) for _ in range(reps)]
        result[f"act_b{n}_wall_ms"] = statistics.median(w for w, _ in act)
        result[f"act_b{n}_cpu_ms"] = statistics.median(c for _, c in act)
    return result


def worker_acting(num_envs: int, reps: int, steps: int, sets: list[str]) -> dict[str, float]:
    """Agent steps/s of epsilon-greedy acting through the real AsyncVectorEnv, no learning."""
    from mario_dqn.environment import make_vector_env
    from mario_dqn.build import build_agent

    config = bench_config(sets)
    venv = make_vector_env(config.env, num_envs, asynchronous=True)
    agent = build_agent(config, int(venv.single_action_space.n))
    obs, _ = venv.reset(seed=0)
    for _ in range(20):  # warm-up: tracing, env processes' caches
        obs = venv.step(agent.act(obs, ACT_EPSILON))[0]
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(steps // num_envs):
            obs = venv.step(agent.act(obs, ACT_EPSILON))[0]
        rates.append(steps // num_envs * num_envs / (time.perf_counter() - start))
    venv.close()
    return {"steps_per_s": statistics.median(rates)}


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc), 0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def worker_e2e(num_envs: int, reps: int, steps: int, learning_starts: int, capacity: int,
               sets: list[str]) -> dict[str, float]:
    """The real Trainer; agent steps/s measured between updates, once learning has started.

    ``train_step`` is wrapped to stamp (time, step, CPU) at each update: the window runs
    from the 20th update (tracing and warm-up behind us) to the last one, so the start
    (filling replay) and the final checkpoint are left out. The window is cut into
    ``reps`` equal slices; the median slice is the figure.
    """
    from mario_dqn.runner import Trainer

    config = C.replace(bench_config(sets), {
        "agent": {"learning_starts": learning_starts, "epsilon_start": ACT_EPSILON, "epsilon_end": ACT_EPSILON},
        "replay": {"capacity": capacity},
        "runner": {"num_envs": num_envs, "total_steps": learning_starts + steps, "eval_every": 0,
                   "checkpoint_every": 10**9, "save_replay": False},
    })
    with tempfile.TemporaryDirectory(prefix="training_bench_") as run_dir:
        trainer = Trainer(config, Path(run_dir), progress=False, log=lambda _: None)
        env_pids = [p.pid for p in trainer.envs.processes]
        stamps: list[tuple[float, int, float, float]] = []
        train_step = trainer.agent.train_step

        def stamped(batch):
            out = train_step(batch)
            stamps.append((time.perf_counter(), trainer.step, time.process_time(),
                           sum(_proc_cpu_s(pid) for pid in env_pids)))
            return out

        trainer.agent.train_step = stamped
        trainer.run()
    window = stamps[20:]
    if len(window) < reps + 1:
        raise SystemExit(f"only {len(stamps)} updates: raise --steps")
    cuts = np.linspace(0, len(window) - 1, reps + 1).round().astype(int)
    rates = [(window[b][1] - window[a][1]) / (window[b][0] - window[a][0]) for a, b in zip(cuts[:-1], cuts[1:])]
    (t0, s0, main0, env0), (t1, s1, main1, env1) = window[0], window[-1]
    return {"steps_per_s": statistics.median(rates), "updates_per_step": (len(window) - 1) / (s1 - s0),
            "main_cpu_cores": (main1 - main0) / (t1 - t0), "env_cpu_cores": (env1 - env0) / (t1 - t0)}


WORKERS = {"update": worker_update, "acting": worker_acting, "e2e": worker_e2e}


# ------------------------------------------------------------------------- orchestration

def run_worker(kind: str, **kwargs: int | list[str]) -> dict[str, float]:
    """Run one worker in a fresh interpreter; its last stdout line is its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--worker-args", json.dumps(kwargs)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compute_bound(config: C.Config, cores: int, limit: float, costs: list[dict[str, float]], prefix: str) -> float:
    """Agent steps/s if the cores did nothing but emulate, act and learn: ``cores`` over
    the core-seconds per agent step of each, each cost at its cheapest thread count.
    Prints the three parts and the bound under ``prefix``."""
    emulation_s = cores * config.env.frame_skip / limit
    update_s = min(c["update_cpu_ms"] for c in costs) / 1e3 / config.agent.train_freq
    act_s = min(c["act_b1_cpu_ms"] for c in costs) / 1e3
    bound = cores / (emulation_s + update_s + act_s)
    print(f"{prefix}.core_ms_per_step_emulation: {emulation_s * 1e3:.2f} ms")
    print(f"{prefix}.core_ms_per_step_update: {update_s * 1e3:.2f} ms")
    print(f"{prefix}.core_ms_per_step_act: {act_s * 1e3:.2f} ms")
    print(f"{prefix}.compute_bound: {bound:.1f} steps/s")
    return bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="repetitions behind each median")
    parser.add_argument("--frames", type=int, default=2000, help="raw emulator frames per repetition")
    parser.add_argument("--steps", type=int, default=2000,
                        help="agent steps of each end-to-end run after learning starts (acting: per rep / 2)")
    parser.add_argument("--iters", type=int, default=20, help="updates per repetition of the update cost")
    parser.add_argument("--envs", default="1,2,4", help="num_envs values for acting and end-to-end, comma-separated")
    parser.add_argument("--threads", default="1,2", help="TF intra-op thread counts for the update cost")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--capacity", type=int, default=10_000, help="replay capacity of end-to-end runs")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every measurement, as train's --set (repeatable)")
    parser.add_argument("--ab", metavar="A,B",
                        help="only an A/B of two configurations ('defaults' or a preset name), --reps rounds "
                             "alternating: update cost, compute bound and end-to-end rate at the first --envs "
                             "value, with each round's ratio B/A")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](**json.loads(args.worker_args))))
        return

    if args.ab:
        sides = args.ab.split(",")
        if len(sides) != 2:
            raise SystemExit("--ab takes two configurations, e.g. w11-a,defaults")
        ab_configs(sides, int(args.envs.split(",")[0]), args)
        return

    from env_throughput import all_cores_fps

    cores = os.cpu_count() or 1
    config = bench_config(args.sets)
    train_freq = config.agent.train_freq
    env_counts = [int(n) for n in args.envs.split(",")]
    print(f"train.cpu_cores: {cores} cores")
    print(f"train.load_average_1min_before: {os.getloadavg()[0]:.2f} runnable")

    limit = statistics.median(all_cores_fps(args.frames, cores) for _ in range(args.reps))
    print(f"train.emulator_limit: {limit:.0f} frames/s")
    print(f"train.emulator_limit_agent_steps: {limit / config.env.frame_skip:.1f} steps/s")

    for n in env_counts:
        acting = run_worker("acting", num_envs=n, reps=args.reps, steps=max(args.steps // 2, 2 * n),
                            sets=args.sets)["steps_per_s"]
        print(f"train.acting_envs{n}: {acting:.1f} steps/s")
        print(f"train.acting_envs{n}_vs_emulator_limit: {acting * config.env.frame_skip / limit:.1%}")

    costs = {}
    for threads in (int(t) for t in args.threads.split(",")):
        costs[threads] = cost = run_worker("update", threads=threads, reps=args.reps, iters=args.iters,
                                             sets=args.sets)
        print(f"train.update_b{config.agent.batch_size}_t{threads}: {cost['update_wall_ms']:.2f} ms")
        print(f"train.update_b{config.agent.batch_size}_t{threads}_cpu: {cost['update_cpu_ms']:.2f} ms")
        print(f"train.act_b1_t{threads}_cpu: {cost['act_b1_cpu_ms']:.3f} ms")

    bound = compute_bound(config, cores, limit, list(costs.values()), "train")

    best = None
    for n in env_counts:
        e2e = run_worker("e2e", num_envs=n, reps=args.reps, steps=args.steps,
                         learning_starts=args.learning_starts, capacity=args.capacity, sets=args.sets)
        rate = e2e["steps_per_s"]
        print(f"train.e2e_envs{n}: {rate:.1f} steps/s")
        print(f"train.e2e_envs{n}_vs_bound: {rate / bound:.1%}")
        print(f"train.e2e_envs{n}_updates_per_step: {e2e['updates_per_step']:.4f} (1/train_freq = {1 / train_freq})")
        print(f"train.e2e_envs{n}_cpu_main: {e2e['main_cpu_cores']:.2f} cores")
        print(f"train.e2e_envs{n}_cpu_envs: {e2e['env_cpu_cores']:.2f} cores")
        if best is None or rate > best[1]:
            best = (n, rate)
    print(f"train.e2e_best_num_envs: {best[0]} envs")
    print(f"train.load_average_1min_after: {os.getloadavg()[0]:.2f} runnable")


def ab_configs(sides: list[str], num_envs: int, args: argparse.Namespace) -> None:
    """Two configurations, alternating A, B for ``--reps`` rounds: each one's learning
    step cost (at the first --threads value), compute bound and end-to-end rate.

    On a shared machine the absolute figures drift between minutes; the ratio of the
    two halves of one round does not, so each round's B/A is printed and their median.
    """
    from env_throughput import all_cores_fps

    cores = os.cpu_count() or 1
    threads = int(args.threads.split(",")[0])
    sets = {side: side_sets(side) + args.sets for side in sides}
    for side in sides:
        print(f"train.ab_{side}_sets: {' '.join(sets[side]) or '(none)'}")
    print(f"train.ab_load_average_1min_before: {os.getloadavg()[0]:.2f} runnable")
    limit = all_cores_fps(args.frames, cores)
    print(f"train.ab_emulator_limit: {limit:.0f} frames/s")
    ratios: dict[str, list[float]] = {"e2e": [], "bound": []}
    for round_ in range(args.reps):
        rates, bounds = {}, {}
        for side in sides:
            prefix = f"train.ab_round{round_}_{side}"
            cost = run_worker("update", threads=threads, reps=1, iters=args.iters, sets=sets[side])
            config = bench_config(sets[side])
            print(f"{prefix}_update_b{config.agent.batch_size}_t{threads}_cpu: {cost['update_cpu_ms']:.2f} ms")
            bounds[side] = compute_bound(config, cores, limit, [cost], prefix)
            rates[side] = run_worker("e2e", num_envs=num_envs, reps=1, steps=args.steps,
                                     learning_starts=args.learning_starts, capacity=args.capacity,
                                     sets=sets[side])["steps_per_s"]
            print(f"{prefix}_e2e_envs{num_envs}: {rates[side]:.1f} steps/s")
        a, b = sides
        ratios["e2e"].append(rates[b] / rates[a])
        ratios["bound"].append(bounds[b] / bounds[a])
        print(f"train.ab_round{round_}_{b}_vs_{a}: e2e {ratios['e2e'][-1]:.2f}x, bound {ratios['bound'][-1]:.2f}x")
    a, b = sides
    print(f"train.ab_{b}_vs_{a}_e2e_median: {statistics.median(ratios['e2e']):.2f}x")
    print(f"train.ab_{b}_vs_{a}_bound_median: {statistics.median(ratios['bound']):.2f}x")
    print(f"train.ab_load_average_1min_after: {os.getloadavg()[0]:.2f} runnable")


if __name__ == "__main__":
    main()
