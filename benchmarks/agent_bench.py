"""Agent throughput: learning-step and acting latency on this machine.

Run standalone: ``.venv/bin/python benchmarks/agent_bench.py [--repeats 7] [--iters 30]``.
Prints ``name: value unit`` lines, each the median over ``--repeats`` repetitions of the
mean over ``--iters`` calls (after a warm-up that pays for tracing and compilation).
For the learning step it also prints the best repetition (``_best``): on a shared VM
other tenants only ever add time, so the fastest repetition is the closest reading of
what the code costs on this CPU, and the median what a run met that hour. Next to it,
the floating-point work of one update and the rate the best repetition achieved: the
update is compute-bound, so that rate against the CPU's peak says how much is left.

Why these numbers: an update per 4 agent steps must stay well under the ~22 ms that
four env steps take (~180 steps/s), or learning, not emulation, sets the pace; acting
must cost ~1 ms, which is why the loop uses a compiled forward pass and
``model.predict`` (printed for reference) is never called in it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from config.settings import NETWORKS, AgentConfig, EnvConfig
from mario_dqn.agent import DQNAgent
from mario_dqn.batch import Batch
from mario_dqn.environment import ACTIONS
from mario_dqn.tf_import import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402  (after TensorFlow, which Keras imports as its backend)

NUM_ACTIONS = len(ACTIONS[EnvConfig().action_set])  # the default action set
OBS_SHAPE = (84, 84, 4)


def timed_ms(fn: Callable[[], object], iters: int, repeats: int, warmup: int = 3) -> float:
    """Median over repeats of the mean wall time of ``fn`` in milliseconds."""
    return interleaved_ms({"fn": fn}, iters, repeats, warmup)["fn"]


def interleaved_ms(fns: dict[str, Callable[[], object]], iters: int, repeats: int,
                   warmup: int = 3) -> dict[str, float]:
    """Like :func:`timed_ms` for several variants, taking their repetitions in turn."""
    runs = interleaved_runs_ms(fns, iters, repeats, warmup)
    return {name: statistics.median(values) for name, values in runs.items()}


def interleaved_runs_ms(fns: dict[str, Callable[[], object]], iters: int, repeats: int,
                        warmup: int = 3) -> dict[str, list[float]]:
    """Mean wall time in ms of ``iters`` calls, per repetition, for each variant.

    Round-robin order spreads any background load evenly over the variants, so their
    ratio stays meaningful on a shared machine even when absolute figures drift.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    means: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            means[name].append((time.perf_counter() - start) / iters * 1e3)
    return means


def update_flop(model: keras.Model, batch_size: int) -> int:
    """Floating-point operations of one learning step, from the model's layer shapes.

    One step runs three forward passes over a batch (online net on obs under the tape,
    online and target nets on next_obs for the Double-DQN target) and one backward pass:
    weight gradients of every layer plus input gradients of every layer but the first
    (nothing needs the gradient of the observations). Each pass over a Conv2D or Dense
    layer costs its multiply-adds, two operations each; biases, activations, the loss and
    Adam are left out (they are memory-bound, not compute-bound).
    """
    macs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out_h, out_w, filters = layer.output.shape[1:]
            kernel_h, kernel_w, channels, _ = layer.kernel.shape
            macs.append(out_h * out_w * filters * kernel_h * kernel_w * channels)
        elif isinstance(layer, keras.layers.Dense):
            macs.append(int(np.prod(layer.kernel.shape)))
    per_sample = 3 * sum(macs) + sum(macs) + sum(macs[1:])
    return 2 * batch_size * per_sample


def random_batch(rng: np.random.Generator, size: int) -> Batch:
    """A replay-shaped batch of noise (the cost of an update does not depend on content)."""
    return Batch(
        obs=rng.integers(0, 256, (size, *OBS_SHAPE), dtype=np.uint8),
        action=rng.integers(0, NUM_ACTIONS, size).astype(np.int32),
        reward=rng.standard_normal(size).astype(np.float32),
        next_obs=rng.integers(0, 256, (size, *OBS_SHAPE), dtype=np.uint8),
        discount=np.full(size, 0.99**3, np.float32),
        weight=np.ones(size, np.float32),
        index=np.arange(size, dtype=np.int64),
    )


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
    print(f"load_average_1min_before: {os.getloadavg()[0]:.2f} runnable")
    agents = {}
    for dueling in (True, False):
        for jit in (False, True):
            name = f"update_b{config.batch_size}_{'dueling' if dueling else 'linear'}_{'xla' if jit else 'no_xla'}"
            agents[name] = DQNAgent(NUM_ACTIONS, OBS_SHAPE, AgentConfig(dueling=dueling, policy_average_steps=0),
                                    seed=0, jit_compile=jit)
    # The other torsos on the default path (dueling, per-op), in the same rounds: their
    # ratio to the Nature torso is what a change of network buys, whatever the hour.
    for torso in NETWORKS[1:]:
        agents[f"update_b{config.batch_size}_{torso}_dueling_no_xla"] = DQNAgent(
            NUM_ACTIONS, OBS_SHAPE, AgentConfig(network=torso, policy_average_steps=0), seed=0)
    # With a policy average (agent.policy_average_steps): the update plus the average's
    # pass over the weights, against the same update without it.
    averaged = f"update_b{config.batch_size}_dueling_averaged_no_xla"
    agents[averaged] = DQNAgent(NUM_ACTIONS, OBS_SHAPE, AgentConfig(policy_average_steps=25_000), seed=0)
    updates = {name: (lambda agent=agent: agent.train_step(batch)) for name, agent in agents.items()}
    runs = interleaved_runs_ms(updates, args.iters, args.repeats)
    for name, values in runs.items():
        print(f"{name}: {statistics.median(values):.2f} ms")
        print(f"{name}_best: {min(values):.2f} ms")
    reference = f"update_b{config.batch_size}_dueling_no_xla"
    flop = update_flop(agents[reference].online, config.batch_size)
    best_ms = min(runs[reference])
    print(f"update_b{config.batch_size}_flop: {flop / 1e9:.2f} GFLOP")
    print(f"{reference}_best_rate: {flop / best_ms / 1e6:.1f} GFLOP/s")
    for torso in NETWORKS[1:]:
        name = f"update_b{config.batch_size}_{torso}_dueling_no_xla"
        torso_flop = update_flop(agents[name].online, config.batch_size)
        ratios = [a / b for a, b in zip(runs[name], runs[reference])]
        print(f"update_b{config.batch_size}_{torso}_flop: {torso_flop / 1e9:.2f} GFLOP")
        print(f"{name}_vs_nature: {statistics.median(ratios):.2f}x time, {torso_flop / flop:.2f}x FLOP")

    ratios = [a / b for a, b in zip(runs[averaged], runs[reference])]
    print(f"{averaged}_vs_without: {statistics.median(ratios):.3f}x time")

    agent = DQNAgent(NUM_ACTIONS, OBS_SHAPE, config, seed=0)
    acting = {f"act_b{n}": lambda obs=batch.obs[:n]: agent.act(obs, 0.0) for n in (1, 2, 4)}
    for torso in NETWORKS[1:]:
        other = DQNAgent(NUM_ACTIONS, OBS_SHAPE, AgentConfig(network=torso), seed=0)
        acting[f"act_b4_{torso}"] = lambda obs=batch.obs[:4], other=other: other.act(obs, 0.0)
    one = batch.obs[:1]
    acting["q_values_b1"] = lambda: agent.q_values(one)
    for name, ms in interleaved_ms(acting, args.iters * 5, args.repeats).items():
        print(f"{name}: {ms:.3f} ms")
    predict_ms = timed_ms(lambda: agent.online.predict(one, verbose=0), max(args.iters // 3, 3), args.repeats)
    print(f"model_predict_b1 (reference, never in the loop): {predict_ms:.2f} ms")
    print(f"load_average_1min_after: {os.getloadavg()[0]:.2f} runnable")


if __name__ == "__main__":
    main()
