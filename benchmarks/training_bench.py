"""Training throughput against the machine's limit (issue 7): the five figures in one run.

Prints `name: value unit` lines, each a median over --reps repetitions:
  1. train.emulator_limit: raw emulator frames/s with one emulator per core, all busy;
  2. train.acting_N: epsilon-greedy acting with the network through the real vector env
     (no learning), agent steps/s and its fraction of emulator_limit / frame_skip;
  3. train.update_tT: one learning step on a batch of 32 with T TF intra-op threads,
     wall ms and CPU ms (core-seconds); the act forward pass's cost likewise;
  4. train.compute_bound = cores / (emulation core-s per agent step
     + update core-s / train_freq + act core-s per agent step), in agent steps/s;
  5. train.e2e_envsN: the real Trainer (default agent config: train_freq 4, batch 32)
     after learning has started, agent steps/s and its fraction of the bound, for each
     num_envs in --envs; the best is named.

Every TF measurement runs in its own subprocess (this script with --worker): the
intra-op thread count must be fixed before TensorFlow starts, and one measurement's
threads and caches must not skew another's. End-to-end runs use epsilon 0.05 (the
schedule's floor, where a run spends most of its steps) so the network acts on every
step; at epsilon ~1 acting skips the network and the figure would flatter the loop.

Targets on a 2-core machine: acting >= 85% of the emulator limit; end-to-end >= 85%
of the bound and >= 100 agent steps/s.
Run: .venv/bin/python benchmarks/training_bench.py [--reps 3] [--steps 2000] [--envs 1,2,4]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import config as C  # noqa: E402

ACT_EPSILON = 0.05
"""Exploration rate for acting and end-to-end runs: the default schedule's floor."""


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


def worker_update(threads: int, reps: int, iters: int, network: str = "nature") -> dict[str, float]:
    """Update and act cost with ``threads`` intra-op threads, on noise (cost does not depend on content)."""
    _configure_threads(threads)
    from agent_bench import NUM_ACTIONS, OBS_SHAPE, random_batch

    from mario_dqn.agent import DQNAgent

    config = C.AgentConfig(network=network)
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


def worker_acting(num_envs: int, reps: int, steps: int, network: str = "nature") -> dict[str, float]:
    """Agent steps/s of epsilon-greedy acting through the real AsyncVectorEnv, no learning."""
    from mario_dqn.environment import make_vector_env
    from mario_dqn.runner import build_agent

    config = C.replace(C.Config(), {"agent": {"network": network}})
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
               network: str = "nature") -> dict[str, float]:
    """The real Trainer; agent steps/s measured between updates, once learning has started.

    ``train_step`` is wrapped to stamp (time, step, CPU) at each update: the window runs
    from the 20th update (tracing and warm-up behind us) to the last one, so the start
    (filling replay) and the final checkpoint are left out. The window is cut into
    ``reps`` equal slices; the median slice is the figure.
    """
    from mario_dqn.runner import Trainer

    config = C.replace(C.Config(), {
        "agent": {"learning_starts": learning_starts, "epsilon_start": ACT_EPSILON, "epsilon_end": ACT_EPSILON,
                  "network": network},
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

def run_worker(kind: str, **kwargs: int | str) -> dict[str, float]:
    """Run one worker in a fresh interpreter; its last stdout line is its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--worker-args", json.dumps(kwargs)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
    parser.add_argument("--network", default=C.AgentConfig().network, choices=C.NETWORKS,
                        help="the Q-network torso of every measurement (default: the config's)")
    parser.add_argument("--ab-networks", metavar="A,B",
                        help="only an A/B of end-to-end training between two torsos at the first --envs value, "
                             "--reps rounds alternating, with each round's ratio B/A")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](**json.loads(args.worker_args))))
        return

    if args.ab_networks:
        ab_networks(args.ab_networks.split(","), int(args.envs.split(",")[0]), args)
        return

    from env_throughput import all_cores_fps

    cores = os.cpu_count() or 1
    config = C.Config()
    skip, train_freq = config.env.frame_skip, config.agent.train_freq
    env_counts = [int(n) for n in args.envs.split(",")]
    print(f"train.cpu_cores: {cores} cores")
    print(f"train.load_average_1min_before: {os.getloadavg()[0]:.2f} runnable")

    limit = statistics.median(all_cores_fps(args.frames, cores) for _ in range(args.reps))
    print(f"train.emulator_limit: {limit:.0f} frames/s")
    print(f"train.emulator_limit_agent_steps: {limit / skip:.1f} steps/s")

    for n in env_counts:
        acting = run_worker("acting", num_envs=n, reps=args.reps, steps=max(args.steps // 2, 2 * n),
                            network=args.network)["steps_per_s"]
        print(f"train.acting_envs{n}: {acting:.1f} steps/s")
        print(f"train.acting_envs{n}_vs_emulator_limit: {acting * skip / limit:.1%}")

    costs = {}
    for threads in (int(t) for t in args.threads.split(",")):
        costs[threads] = cost = run_worker("update", threads=threads, reps=args.reps, iters=args.iters,
                                             network=args.network)
        print(f"train.update_b{config.agent.batch_size}_t{threads}: {cost['update_wall_ms']:.2f} ms")
        print(f"train.update_b{config.agent.batch_size}_t{threads}_cpu: {cost['update_cpu_ms']:.2f} ms")
        print(f"train.act_b1_t{threads}_cpu: {cost['act_b1_cpu_ms']:.3f} ms")

    # Core-seconds per agent step of each cost, at its cheapest thread count.
    emulation_s = cores * skip / limit
    update_s = min(c["update_cpu_ms"] for c in costs.values()) / 1e3
    act_s = min(c["act_b1_cpu_ms"] for c in costs.values()) / 1e3
    bound = cores / (emulation_s + update_s / train_freq + act_s)
    print(f"train.core_ms_per_step_emulation: {emulation_s * 1e3:.2f} ms")
    print(f"train.core_ms_per_step_update: {update_s / train_freq * 1e3:.2f} ms")
    print(f"train.core_ms_per_step_act: {act_s * 1e3:.2f} ms")
    print(f"train.compute_bound: {bound:.1f} steps/s")

    best = None
    for n in env_counts:
        e2e = run_worker("e2e", num_envs=n, reps=args.reps, steps=args.steps,
                         learning_starts=args.learning_starts, capacity=args.capacity, network=args.network)
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


def ab_networks(networks: list[str], num_envs: int, args: argparse.Namespace) -> None:
    """End-to-end training speed of two torsos, alternating A, B for ``--reps`` rounds.

    On a shared machine the absolute figures drift between minutes; the ratio of the
    two halves of one round does not, so each round's B/A is printed and their median.
    """
    a, b = networks
    print(f"train.ab_load_average_1min_before: {os.getloadavg()[0]:.2f} runnable")
    ratios = []
    for round_ in range(args.reps):
        rates = {}
        for network in (a, b):
            rates[network] = run_worker("e2e", num_envs=num_envs, reps=1, steps=args.steps,
                                        learning_starts=args.learning_starts, capacity=args.capacity,
                                        network=network)["steps_per_s"]
            print(f"train.ab_round{round_}_e2e_envs{num_envs}_{network}: {rates[network]:.1f} steps/s")
        ratios.append(rates[b] / rates[a])
        print(f"train.ab_round{round_}_{b}_vs_{a}: {ratios[-1]:.2f}x")
    print(f"train.ab_{b}_vs_{a}_median: {statistics.median(ratios):.2f}x")
    print(f"train.ab_load_average_1min_after: {os.getloadavg()[0]:.2f} runnable")


if __name__ == "__main__":
    main()
