"""Environment throughput: how close the wrapper stack and the vector env get to the emulator.

Prints, as medians of --reps repetitions:
  raw emulator frames/s on one core (SMB 1-1, random SIMPLE_MOVEMENT actions);
  the emulator limit with every core busy (one raw emulator per core, summed);
  wrapped single-env agent steps/s and its ratio to raw single-core emulation;
  vector-env agent steps/s for N=2 and N=4 and their ratio to the all-cores limit.

Targets on a 2-core machine: wrapped >= 90% of raw; vector >= 85% of the all-cores limit.
Run: .venv/bin/python benchmarks/env_throughput.py [--reps 5] [--frames 2000] [--steps 400]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

from config import EnvConfig
from mario_dqn.environment import ACTIONS, make_env, make_vector_env


def raw_fps(frames: int, seed: int = 0) -> float:
    """Frames/s of the bare game env (JoypadSpace only), random actions, reset on episode end."""
    from gym_super_mario_bros import SuperMarioBrosEnv
    from nes_py.wrappers import JoypadSpace

    env = JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), ACTIONS["simple"])
    env.reset()
    rng = np.random.default_rng(seed)
    actions = rng.integers(env.action_space.n, size=frames)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return frames / elapsed


def all_cores_fps(frames: int, cores: int) -> float:
    """Summed frames/s of one raw emulator per core, all running at once."""
    with mp.get_context("spawn").Pool(cores) as pool:
        pool.map(raw_fps, [10] * cores)  # warm the workers (imports, ROM load)
        return sum(pool.starmap(raw_fps, [(frames, seed) for seed in range(cores)]))


def wrapped_steps_per_s(config: EnvConfig, steps: int) -> float:
    """Agent steps/s of one env with the full wrapper stack."""
    env = make_env(config, seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(env.action_space.n, size=steps)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def vector_steps_per_s(config: EnvConfig, num_envs: int, steps: int, reps: int) -> list[float]:
    """Agent steps/s (summed over envs) of the asynchronous vector env, one figure per rep."""
    venv = make_vector_env(config, num_envs, asynchronous=True)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    n_actions = int(venv.single_action_space.n)
    venv.step(rng.integers(n_actions, size=num_envs))  # warm-up
    figures = []
    for _ in range(reps):
        batches = rng.integers(n_actions, size=(steps // num_envs, num_envs))
        start = time.perf_counter()
        for actions in batches:
            venv.step(actions)
        figures.append(batches.size / (time.perf_counter() - start))
    venv.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=2000, help="raw frames per repetition")
    parser.add_argument("--steps", type=int, default=400, help="agent steps per repetition")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    config = EnvConfig()
    skip = config.frame_skip

    raw = statistics.median(raw_fps(args.frames) for _ in range(args.reps))
    limit = statistics.median(all_cores_fps(args.frames, cores) for _ in range(args.reps))
    wrapped = statistics.median(wrapped_steps_per_s(config, args.steps) for _ in range(args.reps))
    print(f"env.raw_frames_per_s_1core: {raw:.0f} frames/s")
    print(f"env.raw_frames_per_s_{cores}cores: {limit:.0f} frames/s")
    print(f"env.wrapped_agent_steps_per_s: {wrapped:.1f} steps/s")
    print(f"env.wrapped_vs_raw_1core: {wrapped * skip / raw:.1%}")
    for n in (2, 4):
        vec = statistics.median(vector_steps_per_s(config, n, args.steps, args.reps))
        print(f"env.vector{n}_agent_steps_per_s: {vec:.1f} steps/s")
        print(f"env.vector{n}_vs_{cores}core_limit: {vec * skip / limit:.1%}")


if __name__ == "__main__":
    main()
