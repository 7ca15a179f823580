"""Replay memory and sum tree: every sample checked against what a fake env produced.

The fake env's frames encode (stream, episode, step), so each frame is unique and a
sampled stack can be looked up in a naive store of every transition ever added. The
checks never trust the memory's own bookkeeping: n-step returns, discounts, next
states and the set of transitions that should be sampleable are recomputed from the
naive store.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from config import AgentConfig, EnvConfig, ReplayConfig
from mario_dqn import replay_kernels
from mario_dqn.batch import Batch
from mario_dqn.replay import PrioritizedReplayMemory, ReplayMemory, make_replay
from mario_dqn.sumtree import SumTree

FRAME = (5, 6)


# ============================================================== fake env + naive store
def make_frame(stream: int, episode: int, step: int) -> np.ndarray:
    """A frame that names (stream, episode, step); the rest is a deterministic pattern."""
    frame = ((np.arange(FRAME[0] * FRAME[1]).reshape(FRAME) * (7 + step) + 3 * episode + stream) % 251).astype(np.uint8)
    frame[0, :5] = (stream, episode % 256, episode // 256, step % 256, step // 256)
    return frame


def decode(frame: np.ndarray) -> tuple[int, int, int]:
    return int(frame[0, 0]), int(frame[0, 1]) + 256 * int(frame[0, 2]), int(frame[0, 3]) + 256 * int(frame[0, 4])


@dataclass
class Transition:
    obs: np.ndarray
    action: int
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    entry: int  # ordinal (per stream) of the ring entry holding obs' newest frame


@dataclass
class Stream:
    """One env stream: reset fills the stack with the first frame, like our env."""

    index: int
    stack_size: int
    rng: np.random.Generator
    max_len: int
    min_len: int = 1
    episode: int = -1
    step: int = 0
    length: int = 0
    stack: np.ndarray | None = None
    entries: int = 0  # frames this stream has written into its ring (mirror of the memory)
    starting: bool = True
    transitions: list[Transition] = field(default_factory=list)

    def reset(self) -> None:
        self.episode += 1
        self.step = 0
        self.length = int(self.rng.integers(self.min_len, self.max_len + 1))
        first = make_frame(self.index, self.episode, 0)
        self.stack = np.repeat(first[..., None], self.stack_size, axis=-1)

    def step_env(self) -> tuple[np.ndarray, int, float, np.ndarray, bool, bool]:
        if self.stack is None:
            self.reset()
        obs = self.stack
        self.step += 1
        frame = make_frame(self.index, self.episode, self.step)
        nxt = np.concatenate([obs[..., 1:], frame[..., None]], axis=-1)
        done = self.step >= self.length
        terminated = bool(done and self.rng.random() < 0.5)
        truncated = bool(done and not terminated)
        action = int(self.rng.integers(0, 12))
        reward = float(np.float32(self.rng.normal()))
        entry = self.entries if self.starting else self.entries - 1
        self.entries += 2 if self.starting else 1
        self.transitions.append(Transition(obs, action, reward, nxt, terminated, truncated, entry))
        self.starting = done
        self.stack = nxt
        if done:
            self.stack = None
        return obs, action, reward, nxt, terminated, truncated


class Rollout:
    """N fake streams feeding one memory, plus the naive store of all transitions."""

    def __init__(self, memory: ReplayMemory, seed: int, max_len: int = 9, min_len: int = 1) -> None:
        self.memory = memory
        rng = np.random.default_rng(seed)
        self.streams = [Stream(i, memory.stack_size, rng, max_len, min_len) for i in range(memory.num_envs)]
        self.by_key: dict[tuple[int, int, int], Transition] = {}

    def step(self) -> tuple[np.ndarray, ...]:
        """Step every stream, add the batch to the memory, return the arrays added."""
        outs = [s.step_env() for s in self.streams]
        for s in self.streams:
            t = s.transitions[-1]
            self.by_key[decode(t.obs[..., -1])] = t
        args = tuple(np.array(x) for x in zip(*outs))
        self.memory.add(*args)
        return args

    # ---- brute force from the naive store
    def window(self, key: tuple[int, int, int]) -> tuple[float, np.ndarray, float, int] | None:
        """(n-step return, next stack, discount, entry ordinal of the next state) or None
        when the window is not complete yet."""
        mem = self.memory
        stream, episode, step = key
        total, t = 0.0, self.by_key[key]
        for k in range(1, mem.n_step + 1):
            total += mem.gamma ** (k - 1) * t.reward
            if t.terminated or t.truncated or k == mem.n_step:
                discount = 0.0 if t.terminated else mem.gamma**k
                return total, t.next_obs, discount, t.entry + 1
            nxt = self.by_key.get((stream, episode, step + k))
            if nxt is None:
                return None
            t = nxt
        raise AssertionError("unreachable")

    def in_ring(self, stream: Stream, t: Transition) -> bool:
        """The transition's start entry has not been overwritten."""
        return t.entry >= stream.entries - self.memory.capacity_per_env

    def expected_sampleable(self) -> dict[tuple[int, int, int], tuple]:
        """Brute force: key -> (obs bytes, action, n-step return, next bytes, discount) for
        every transition whose stack is still in the ring (the ring holds a stream's last
        capacity_per_env entries) and whose n-step window has been written."""
        expected = {}
        for s in self.streams:
            for t in reversed(s.transitions):
                if not self.in_ring(s, t):
                    break
                key = decode(t.obs[..., -1])
                oldest = t.entry - min(key[2], self.memory.stack_size - 1)  # padding stops at the first frame
                window = self.window(key)
                if oldest >= s.entries - self.memory.capacity_per_env and window is not None:
                    ret, nxt, discount, next_entry = window
                    assert next_entry < s.entries
                    expected[key] = (t.obs.tobytes(), t.action, ret, nxt.tobytes(), discount)
        return expected

    def stored(self) -> int:
        return sum(sum(1 for t in s.transitions[-2 * self.memory.capacity_per_env:] if self.in_ring(s, t))
                   for s in self.streams)

    def check_batch(self, batch: Batch, expected: dict | None = None) -> list[tuple[int, int, int]]:
        """Every field of every sample against the naive store; returns the sampled keys."""
        mem = self.memory
        expected = self.expected_sampleable() if expected is None else expected
        assert type(batch) is Batch
        b = batch.obs.shape[0]
        assert batch.obs.shape == batch.next_obs.shape == (b, *FRAME, mem.stack_size)
        dtypes = dict(obs=np.uint8, action=np.int32, reward=np.float32, next_obs=np.uint8,
                      discount=np.float32, weight=np.float32, index=np.int64)  # as batch.py documents
        assert {name: getattr(batch, name).dtype for name in Batch._fields} == dtypes
        for name in ("action", "reward", "discount", "weight", "index"):
            assert getattr(batch, name).shape == (b,), name
        keys = []
        for i in range(b):
            key = decode(batch.obs[i, ..., -1])
            assert key in expected, f"{key} is not sampleable (window unwritten or stack overwritten)"
            obs, action, ret, nxt, discount = expected[key]
            assert batch.index[i] // mem.capacity_per_env == key[0], "index names another stream"
            assert batch.obs[i].tobytes() == obs, f"{key}: obs stack differs from the env's"
            assert batch.next_obs[i].tobytes() == nxt, f"{key}: next stack differs from the env's"
            assert batch.action[i] == action
            assert math.isclose(batch.reward[i], ret, rel_tol=1e-5, abs_tol=1e-6), (key, batch.reward[i], ret)
            assert math.isclose(batch.discount[i], discount, rel_tol=1e-6), (key, batch.discount[i], discount)
            keys.append(key)
        return keys


# ============================================================== rollout tests
def check_rollout(memory: ReplayMemory, roll: Rollout, steps: int, check_every: int) -> set[tuple[int, int, int]]:
    """Step the rollout; at checkpoints compare counts and samples with the naive store.

    Returns every key ever sampled. With uniform sampling it also checks coverage:
    every sampleable transition shows up, so the validity checks reject nothing valid.
    """
    rng = np.random.default_rng(3)
    sampled_ever: set[tuple[int, int, int]] = set()
    for step in range(steps):
        roll.step()
        if step % check_every and step > 40:  # every step while the rings fill, then now and then
            continue
        expected = roll.expected_sampleable()
        assert len(memory) == roll.stored()
        assert memory.num_sampleable() == len(expected)
        assert memory.can_sample(len(expected)) and not memory.can_sample(len(expected) + 1)
        if not expected:
            with pytest.raises(ValueError):
                memory.sample(8)
            continue
        keys: set[tuple[int, int, int]] = set()
        # Uniform: ~16 draws per key, so each key is missed with probability ~e^-16.
        for _ in range(4 if memory.prioritized else 1 + len(expected) // 2):
            batch = memory.sample(32, beta=0.5)
            keys.update(roll.check_batch(batch, expected))
            if memory.prioritized:
                memory.update_priorities(batch.index, rng.exponential(size=32))
        if not memory.prioritized:
            assert keys == expected.keys()
        sampled_ever |= keys
    return sampled_ever


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("stack_size,n_step", [(4, 3), (2, 1)])
def test_long_rollout_samples_match_env(num_envs: int, prioritized: bool, stack_size: int, n_step: int) -> None:
    """Episodes of 1-9 steps, rings of 30 per stream: ~30 wraps, many episode edges."""
    cls = PrioritizedReplayMemory if prioritized else ReplayMemory
    memory = cls(capacity=30 * num_envs, num_envs=num_envs, frame_shape=FRAME, stack_size=stack_size,
                 n_step=n_step, gamma=0.9, seed=1)
    roll = Rollout(memory, seed=2)
    sampled = check_rollout(memory, roll, steps=900, check_every=29)
    ends = {t.terminated for s in roll.streams for t in s.transitions if t.terminated or t.truncated}
    assert ends == {True, False}, "rollout should end episodes both ways"
    assert len(sampled) > 200


def test_episodes_longer_than_the_ring() -> None:
    """Episode starts get overwritten mid-episode, and episodes pass 255 steps (the
    uint8 episode_step cap)."""
    memory = ReplayMemory(capacity=50, num_envs=2, frame_shape=FRAME, stack_size=4, n_step=3, gamma=0.9)
    roll = Rollout(memory, seed=4, max_len=400, min_len=260)
    check_rollout(memory, roll, steps=1000, check_every=37)
    assert max(t.entry for s in roll.streams for t in s.transitions) > 900
    assert sum(t.terminated or t.truncated for s in roll.streams for t in s.transitions) >= 4


def test_hand_computed_n_step_returns_and_termination() -> None:
    """Episode A terminates after 3 steps, B is truncated after 2, C runs on."""
    memory = ReplayMemory(capacity=40, frame_shape=FRAME, stack_size=2, n_step=3, gamma=0.5, seed=0)
    plan = [(0, [1.0, 2.0, 4.0], "terminated"), (1, [8.0, 16.0], "truncated"), (2, [1.0] * 6, None)]
    finals = []
    for episode, rewards, ending in plan:
        stack = np.repeat(make_frame(0, episode, 0)[..., None], 2, axis=-1)
        for step, r in enumerate(rewards, start=1):
            nxt = np.concatenate([stack[..., 1:], make_frame(0, episode, step)[..., None]], axis=-1)
            end = step == len(rewards)
            memory.add(stack[None], np.array([step]), np.array([r]), nxt[None],
                       np.array([end and ending == "terminated"]), np.array([end and ending == "truncated"]))
            stack = nxt
        finals.append(stack)
    seen: dict[tuple[int, int, int], tuple[float, float, np.ndarray]] = {}
    for _ in range(50):
        batch = memory.sample(64)
        for i in range(64):
            key = decode(batch.obs[i, ..., -1])
            seen[key] = (float(batch.reward[i]), float(batch.discount[i]), batch.next_obs[i])
    expected = {
        (0, 0, 0): (1 + 0.5 * 2 + 0.25 * 4, 0.0, finals[0]),
        (0, 0, 1): (2 + 0.5 * 4, 0.0, finals[0]),
        (0, 0, 2): (4.0, 0.0, finals[0]),
        (0, 1, 0): (8 + 0.5 * 16, 0.25, finals[1]),  # truncation keeps bootstrapping
        (0, 1, 1): (16.0, 0.5, finals[1]),
    }
    for key, (ret, discount, nxt) in expected.items():
        assert seen[key][:2] == (ret, discount), key
        np.testing.assert_array_equal(seen[key][2], nxt)
    # Episode C (6 steps so far): steps 0..3 have full windows; 4 and 5 wait for steps not taken yet.
    assert {k for k in seen if k[1] == 2} == {(0, 2, 0), (0, 2, 1), (0, 2, 2), (0, 2, 3)}
    assert seen[(0, 2, 0)][:2] == (1 + 0.5 + 0.25, 0.125)
    # The final observations were stored (they are next states) but never start a transition.
    assert (0, 0, 3) not in seen and (0, 1, 2) not in seen
    assert len(memory) == 3 + 2 + 6
    # Episode-start padding: the first stack of C repeats its first frame.
    first_c = np.repeat(make_frame(0, 2, 0)[..., None], 2, axis=-1)
    batch = memory.sample(256)
    starts = [i for i in range(256) if decode(batch.obs[i, ..., -1]) == (0, 2, 0)]
    assert starts
    np.testing.assert_array_equal(batch.obs[starts[0]], first_c)


@pytest.mark.parametrize("cls", [ReplayMemory, PrioritizedReplayMemory])
def test_a_new_gamma_discounts_what_is_stored_already(cls) -> None:
    """agent.loop_gamma changes the discount mid-run: returns are summed when sampled, so
    the transitions stored under the old gamma come out with the new one (hand-computed)."""
    memory = cls(capacity=40, frame_shape=FRAME, stack_size=2, n_step=3, gamma=0.5, seed=0)
    stack = np.repeat(make_frame(0, 0, 0)[..., None], 2, axis=-1)
    for step, r in enumerate([1.0, 2.0, 4.0, 8.0], start=1):
        nxt = np.concatenate([stack[..., 1:], make_frame(0, 0, step)[..., None]], axis=-1)
        memory.add(stack[None], np.array([step]), np.array([r]), nxt[None], np.array([False]), np.array([False]))
        stack = nxt

    def first_transition() -> tuple[float, float]:
        batch = memory.sample(64)
        i = next(i for i in range(64) if decode(batch.obs[i, ..., -1]) == (0, 0, 0))
        return float(batch.reward[i]), float(batch.discount[i])

    assert first_transition() == (1 + 0.5 * 2 + 0.25 * 4, 0.125)
    memory.set_gamma(0.75)
    assert memory.gamma == 0.75
    assert first_transition() == (1 + 0.75 * 2 + 0.5625 * 4, 0.421875)
    with pytest.raises(ValueError):
        memory.set_gamma(1.5)
    assert memory.gamma == 0.75


def test_sampling_needs_a_complete_window() -> None:
    memory = ReplayMemory(capacity=20, frame_shape=FRAME, stack_size=2, n_step=3, seed=0)
    roll = Rollout(memory, seed=0, max_len=100, min_len=100)
    with pytest.raises(ValueError):
        memory.sample(1)
    for _ in range(2):  # transition 0's window (steps 0, 1, 2) needs the third step's frame
        roll.step()
        assert not memory.can_sample(1)
        with pytest.raises(ValueError):
            memory.sample(4)
    roll.step()
    assert memory.can_sample(1) and not memory.can_sample(2)
    batch = memory.sample(16)
    assert {decode(o[..., -1]) for o in batch.obs} == {(0, 0, 0)}


def test_add_rejects_bad_input() -> None:
    memory = ReplayMemory(capacity=20, num_envs=2, frame_shape=FRAME, stack_size=2, n_step=1)
    obs = np.zeros((2, *FRAME, 2), np.uint8)
    ok = dict(obs=obs, action=np.array([0, 1]), reward=np.zeros(2), next_obs=obs,
              terminated=np.zeros(2, bool), truncated=np.zeros(2, bool))
    memory.add(**ok)
    for bad in (dict(obs=obs.astype(np.float32)), dict(next_obs=obs[:1]), dict(action=np.array([0, 256])),
                dict(reward=np.array([0.0, np.nan])), dict(terminated=np.zeros(3, bool))):
        with pytest.raises(ValueError):
            memory.add(**{**ok, **bad})
    with pytest.raises(ValueError):
        ReplayMemory(capacity=10, frame_shape=FRAME, stack_size=4, n_step=5)


@pytest.mark.parametrize("stack", [4, 1, 3, 6])
def test_stack_kernels_build_channels_last_stacks(stack: int) -> None:
    """Both stack kernels (packed 4-channel and any-size) put frame ids[i, c] in channel c
    of the obs stack and ids[i, S + c] in channel c of the next stack."""
    frames = np.random.default_rng(stack).integers(0, 256, (9, 5, 7), dtype=np.uint8)
    ids = np.random.default_rng(1).integers(0, 9, (3, 2 * stack))
    expected = [np.stack([frames[ids[:, half * stack + c]] for c in range(stack)], axis=-1)  # (3, 5, 7, S)
                for half in (0, 1)]
    flat = frames.reshape(9, -1)
    obs, next_obs = np.zeros((2, 3, 5, 7, stack), np.uint8)
    replay_kernels.stacks_any(flat, ids, obs.reshape(3, 35, stack), next_obs.reshape(3, 35, stack))
    np.testing.assert_array_equal(obs, expected[0])
    np.testing.assert_array_equal(next_obs, expected[1])
    if stack == 4:
        obs, next_obs = np.zeros((2, 3, 5, 7, 4), np.uint8)
        replay_kernels.stacks4(flat, ids, obs.reshape(3, -1).view(np.uint32), next_obs.reshape(3, -1).view(np.uint32))
        np.testing.assert_array_equal(obs, expected[0])
        np.testing.assert_array_equal(next_obs, expected[1])


def test_returned_stacks_are_never_overwritten_while_referenced() -> None:
    """sample() reuses its output arrays only once the caller has let go of them."""
    memory = ReplayMemory(capacity=60, frame_shape=FRAME, stack_size=3, n_step=2, seed=0)
    roll = Rollout(memory, seed=0)
    for _ in range(80):
        roll.step()
    held = memory.sample(8)
    held_copy = Batch(*(v.copy() for v in held))
    view = memory.sample(8).obs[2:5]  # the Batch is dropped, a view of its obs is kept
    view_copy = view.copy()
    exported = memoryview(memory.sample(8).next_obs)  # a buffer export, like a tensor aliasing it
    exported_copy = bytes(exported)
    addresses = set()
    batch = None
    for _ in range(30):  # the usual loop: the previous batch is still bound during the call
        batch = memory.sample(8)
        roll.check_batch(batch)
        addresses.add(batch.obs.ctypes.data)
    assert_same_batch(held, held_copy)
    np.testing.assert_array_equal(view, view_copy)
    assert bytes(exported) == exported_copy
    assert len(addresses) <= 2, "dropped outputs should be reused (no fresh allocation per call)"


# ============================================================== sum tree
def test_sumtree_hand_computed_binary() -> None:
    tree = SumTree(4, fanout=2)
    tree.set(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    u = np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    np.testing.assert_array_equal(tree.find(u), [0, 0, 1, 1, 2, 2, 3, 3])
    tree.set(np.array([1]), np.array([0.0]))
    assert tree.total == 8.0
    np.testing.assert_array_equal(tree.find(np.array([0.5, 1.0, 3.99, 4.0])), [0, 2, 2, 3])


def test_sumtree_hand_computed_ternary_with_zero_leaves() -> None:
    tree = SumTree(5, fanout=3)  # top row of 2 nodes over 6 leaves, the last one padding
    tree.set(np.arange(5), np.array([0.0, 5.0, 1.0, 0.0, 4.0]))
    assert tree.total == 10.0
    u = np.array([0.0, 4.99, 5.0, 5.99, 6.0, 9.99])
    np.testing.assert_array_equal(tree.find(u), [1, 1, 2, 2, 4, 4])


@pytest.mark.parametrize("size,fanout", [(1, 2), (7, 2), (1000, 3), (1000, 32), (5000, 16)])
def test_sumtree_matches_cumsum_search(size: int, fanout: int) -> None:
    rng = np.random.default_rng(size + fanout)
    tree = SumTree(size, fanout=fanout)
    values = np.zeros(size)
    for _ in range(5):  # batched updates, integer values so sums are exact
        idx = rng.choice(size, size=min(size, 50), replace=False)
        values[idx] = rng.integers(0, 5, idx.size)
        tree.set(idx, values[idx])
    if values.sum() == 0:
        values[0] = 1.0
        tree.set(np.array([0]), np.array([1.0]))
    assert tree.total == values.sum()
    np.testing.assert_array_equal(tree.leaves, values)
    u = rng.random(2000) * values.sum()
    np.testing.assert_array_equal(tree.find(u), np.searchsorted(np.cumsum(values), u, side="right"))
    with pytest.raises(ValueError):
        tree.set(np.array([0]), np.array([-1.0]))
    with pytest.raises(IndexError):
        tree.set(np.array([size]), np.array([1.0]))


def filled_prioritized(capacity: int = 26, alpha: float = 1.0) -> PrioritizedReplayMemory:
    memory = PrioritizedReplayMemory(capacity=capacity, frame_shape=FRAME, stack_size=2, n_step=1,
                                     alpha=alpha, priority_epsilon=1e-9, seed=5)
    roll = Rollout(memory, seed=5, max_len=1000, min_len=1000)
    for _ in range(capacity + 10):
        roll.step()
    return memory


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z=3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_prioritized_frequencies_follow_priorities() -> None:
    memory = filled_prioritized()
    ids = memory._valid_ids()
    assert ids.size >= 20
    memory.update_priorities(ids, np.arange(1, ids.size + 1, dtype=np.float64))  # p_i = i (alpha=1)
    counts = dict.fromkeys(ids.tolist(), 0)
    draws = 0
    for _ in range(800):
        for i in memory.sample(128).index:
            counts[int(i)] += 1  # KeyError if an invalid id were drawn
            draws += 1
    observed = np.array([counts[i] for i in ids.tolist()], dtype=np.float64)
    p = memory.get_priorities(ids)
    expected = draws * p / p.sum()
    stat = ((observed - expected) ** 2 / expected).sum()
    critical = chi2_critical(ids.size - 1)
    assert stat < critical, (stat, critical)
    # The same statistic against uniform expectations is far off: the check has power.
    uniform = np.full(ids.size, draws / ids.size)
    assert ((observed - uniform) ** 2 / uniform).sum() > 100 * critical


def test_importance_weights() -> None:
    memory = filled_prioritized(alpha=0.6)
    ids = memory._valid_ids()
    memory.update_priorities(ids, np.random.default_rng(0).exponential(size=ids.size))
    for beta in (0.0, 0.4, 1.0):
        batch = memory.sample(64, beta=beta)
        p = memory.get_priorities(batch.index) / memory.total_priority
        w = (len(memory) * p) ** -beta
        np.testing.assert_allclose(batch.weight, w / w.max(), rtol=1e-5)
    assert batch.weight.min() < 0.5  # not trivially all ones
    uniform = ReplayMemory(capacity=30, frame_shape=FRAME, stack_size=2, n_step=1)
    roll = Rollout(uniform, seed=0)
    for _ in range(20):
        roll.step()
    batch = uniform.sample(16, beta=0.4)
    np.testing.assert_array_equal(batch.weight, np.ones(16, np.float32))
    uniform.update_priorities(batch.index, np.abs(batch.reward))  # a no-op, so callers need not branch


def test_new_transitions_get_max_priority_and_stale_updates_are_ignored() -> None:
    memory = PrioritizedReplayMemory(capacity=30, frame_shape=FRAME, stack_size=2, n_step=1,
                                     alpha=0.5, priority_epsilon=1e-6, seed=0)
    roll = Rollout(memory, seed=0, max_len=1000, min_len=1000)
    for _ in range(10):
        roll.step()
    everything = np.arange(memory.capacity)
    ids = memory._valid_ids()
    memory.update_priorities(ids, np.full(ids.size, 0.01))
    memory.update_priorities(ids[:1], np.array([99.0]))  # max priority is now (99 + 1e-6) ** 0.5
    before = memory.get_priorities(everything)
    pending = np.flatnonzero(before == 0.0)
    memory.update_priorities(pending, np.full(pending.size, 5.0))  # slots without a transition
    np.testing.assert_array_equal(memory.get_priorities(everything), before)
    roll.step()
    after = memory.get_priorities(everything)
    new = np.flatnonzero((before == 0.0) & (after > 0.0))
    assert new.size == 1
    assert after[new[0]] == pytest.approx((99.0 + 1e-6) ** 0.5)
    # Repeated ids: the last value wins.
    memory.update_priorities(np.array([ids[2], ids[2]]), np.array([4.0, 9.0]))
    assert memory.get_priorities(ids[2:3])[0] == pytest.approx((9.0 + 1e-6) ** 0.5)


# ============================================================== save / load
def filled(cls: type[ReplayMemory], seed: int = 0, steps: int = 100) -> tuple[ReplayMemory, Rollout]:
    memory = cls(capacity=60, num_envs=2, frame_shape=FRAME, stack_size=3, n_step=2, gamma=0.9, seed=seed)
    roll = Rollout(memory, seed=7)
    for _ in range(steps):
        roll.step()
    if memory.prioritized:
        batch = memory.sample(32)
        memory.update_priorities(batch.index, np.random.default_rng(1).exponential(size=32))
    return memory, roll


def assert_same_batch(a: Batch, b: Batch) -> None:
    for name, x, y in zip(Batch._fields, a, b, strict=True):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("cls", [ReplayMemory, PrioritizedReplayMemory])
def test_save_load_round_trip_is_exact(cls: type[ReplayMemory], tmp_path: Path) -> None:
    original, roll = filled(cls)
    original.save(tmp_path / "a")
    restored = cls(capacity=60, num_envs=2, frame_shape=FRAME, stack_size=3, n_step=2, gamma=0.9, seed=123)
    restored.load(tmp_path / "a")
    restored.save(tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "frames.npy" in names and ("priority_tree.npy" in names) == cls.prioritized
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert len(restored) == len(original) and restored.num_sampleable() == original.num_sampleable()
    assert_same_batch(original.sample(32, beta=0.4), restored.sample(32, beta=0.4))
    # Both keep going identically: adds (episode-start bookkeeping restored), updates, samples.
    for _ in range(15):
        restored.add(*roll.step())
        a, b = original.sample(16), restored.sample(16)
        assert_same_batch(a, b)
        roll.check_batch(b)
        original.update_priorities(a.index, np.abs(a.reward))
        restored.update_priorities(b.index, np.abs(b.reward))


def test_load_refuses_missing_and_malformed_files(tmp_path: Path) -> None:
    memory, _ = filled(PrioritizedReplayMemory)
    memory.save(tmp_path / "good")
    fresh = lambda **kw: PrioritizedReplayMemory(**{**dict(capacity=60, num_envs=2, frame_shape=FRAME,  # noqa: E731
                                                           stack_size=3, n_step=2, gamma=0.9, seed=9), **kw})

    def broken(name: str, change) -> Path:  # a copy of the good save with one file changed
        target = tmp_path / f"bad_{name}_{len(list(tmp_path.iterdir()))}"
        target.mkdir()
        for p in (tmp_path / "good").iterdir():
            (target / p.name).write_bytes(p.read_bytes())
        change(target / name)
        return target

    cases = [
        ("action.npy", lambda p: p.unlink()),
        ("replay.json", lambda p: p.unlink()),
        ("priority_tree.npy", lambda p: p.unlink()),
        ("reward.npy", lambda p: np.save(p, np.zeros((2, 31), np.float32))),
        ("terminated.npy", lambda p: np.save(p, np.zeros((2, 30), np.uint8))),
        ("frames.npy", lambda p: p.write_bytes(p.read_bytes()[:-100])),  # truncated
        ("priority_tree.npy", lambda p: np.save(p, -np.load(p) - 1.0)),
    ]
    for name, change in cases:
        target = broken(name, change)
        victim = fresh()
        reference = fresh()
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            victim.load(target)
        victim.save(tmp_path / "after")  # a refused load leaves the memory untouched
        reference.save(tmp_path / "ref")
        for p in (tmp_path / "ref").iterdir():
            assert (tmp_path / "after" / p.name).read_bytes() == p.read_bytes(), (name, p.name)
    with pytest.raises(ValueError, match="replay.json"):  # another layout
        fresh(capacity=80).load(tmp_path / "good")
    with pytest.raises(ValueError, match="replay.json"):  # uniform memory, prioritized save
        ReplayMemory(capacity=60, num_envs=2, frame_shape=FRAME, stack_size=3, n_step=2).load(tmp_path / "good")


# ============================================================== memory + factory
@pytest.mark.parametrize("cls", [ReplayMemory, PrioritizedReplayMemory])
def test_bytes_per_transition_at_100k(cls: type[ReplayMemory]) -> None:
    memory = cls(capacity=100_000, frame_shape=(84, 84), stack_size=4, n_step=3)  # zeros: pages not touched
    assert 84 * 84 <= memory.bytes_per_transition() <= 7100
    assert memory.nbytes >= 100_000 * (84 * 84 + 4 + 1 + 3)


def test_make_replay_from_config() -> None:
    env = EnvConfig(frame_size=32, stack_size=3)
    agent = AgentConfig(n_step=2, gamma=0.95)
    memory = make_replay(ReplayConfig(capacity=1000, prioritized=False), agent, env, num_envs=4, seed=3)
    assert type(memory) is ReplayMemory
    assert (memory.frame_shape, memory.stack_size, memory.n_step, memory.gamma) == ((32, 32), 3, 2, 0.95)
    assert (memory.num_envs, memory.capacity_per_env) == (4, 250)
    per = make_replay(dataclasses.replace(ReplayConfig(capacity=1000), prioritized=True, alpha=0.5,
                                          priority_epsilon=1e-3), agent, env, num_envs=1, seed=0)
    assert isinstance(per, PrioritizedReplayMemory) and (per.alpha, per.priority_epsilon) == (0.5, 1e-3)
