"""Agent throughput: learning-step and acting latency on this machine.

Run standalone: ``.venv/bin/python benchmarks/agent_bench.py [--repeats 7] [--iters 30]``.
Prints ``name: value unit`` lines, each the median over ``--repeats`` repetitions of the
mean over ``--iters`` calls (after a warm-up that pays for tracing and compilation).

Why these numbers: an update per 4 agent steps must stay well under the ~22 ms that
four env steps take (~180 steps/s), or learning, not emulation, sets the pace; acting
must cost ~1 ms, which is why the loop uses a compiled forward pass and
``model.predict`` (printed for reference) is never called in it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from config.settings import AgentConfig  # noqa: E402
from mario_dqn.agent import DQNAgent  # noqa: E402

NUM_ACTIONS = 7  # the "simple" action set
OBS_SHAPE = (84, 84, 4)


def timed_ms(fn: Callable[[], object], iters: int, repeats: int, warmup: int = 3) -> float:
    """Median over repeats of the mean wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    means = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        means.append((time.perf_counter() - start) / iters * 1e3)
    return statistics.median(means)


def random_batch(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """A replay-shaped batch of noise (the cost of an update does not depend on content)."""
    return {
        "obs": rng.integers(0, 256, (size, *OBS_SHAPE), dtype=np.uint8),
        "action": rng.integers(0, NUM_ACTIONS, size).astype(np.int32),
        "reward": rng.standard_normal(size).astype(np.float32),
        "next_obs": rng.integers(0, 256, (size, *OBS_SHAPE), dtype=np.uint8),
        "discount": np.full(size, 0.99**3, np.float32),
        "weight": np.ones(size, np.float32),
        "index": np.arange(size, dtype=np.int64),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--deterministic", action="store_true",
                        help="enable TF op determinism first (as the reproducibility tests do)")
    args = parser.parse_args()
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()

    rng = np.random.default_rng(0)
    config = AgentConfig()
    batch = random_batch(rng, config.batch_size)
    print(f"cpu_cores: {os.cpu_count()} cores")
    for dueling in (True, False):
        for jit in (False, True):
            agent = DQNAgent(NUM_ACTIONS, OBS_SHAPE, AgentConfig(dueling=dueling), seed=0, jit_compile=jit)
            head = "dueling" if dueling else "linear"
            xla = "xla" if jit else "no_xla"
            ms = timed_ms(lambda: agent.train_step(batch), args.iters, args.repeats)
            print(f"update_b{config.batch_size}_{head}_{xla}: {ms:.2f} ms")

    agent = DQNAgent(NUM_ACTIONS, OBS_SHAPE, config, seed=0)
    for n in (1, 2, 4):
        obs = batch["obs"][:n]
        print(f"act_b{n}: {timed_ms(lambda: agent.act(obs, 0.0), args.iters * 5, args.repeats):.3f} ms")
    one = batch["obs"][:1]
    print(f"q_values_b1: {timed_ms(lambda: agent.q_values(one), args.iters * 5, args.repeats):.3f} ms")
    predict_ms = timed_ms(lambda: agent.online.predict(one, verbose=0), max(args.iters // 3, 3), args.repeats)
    print(f"model_predict_b1 (reference, never in the loop): {predict_ms:.2f} ms")


if __name__ == "__main__":
    main()
