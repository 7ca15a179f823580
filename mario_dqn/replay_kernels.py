"""Compiled inner loops of the replay memory's sampling (numba).

Why compiled: a batch of 32 rebuilds 64 stacks from 256 frames scattered over a
700 MB ring. With numpy that takes a gather into scratch planes, an interleave of the
planes into channels-last stacks (two passes over 1.8 MB) and some twenty small array
operations for the index arithmetic, each costing microseconds of dispatch for 32
numbers. These kernels read each frame once and write each stack once, and do the
per-sample arithmetic in one loop, which halves the time of a sample (see
``benchmarks/replay_bench.py``).

What the arrays mean is documented in :mod:`mario_dqn.replay`; here every entry is a
flat id ``stream * capacity + position`` and the ring of a stream wraps at ``capacity``.
Column ``c`` of a sample's *window* is the entry ``c - (stack_size - 1)`` steps after
the sample's own entry (column ``stack_size - 1`` is the entry itself).

``cache=True`` keeps the compiled code in ``__pycache__`` so only the first process on a
machine pays the compilation (a few seconds); ``nogil`` lets a caller's other threads run.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def inspect(flat: np.ndarray, capacity: int, cursor: np.ndarray, count: np.ndarray,
            episode_step: np.ndarray, last: np.ndarray, stack_size: int, n_step: int,
            valid: np.ndarray, k: np.ndarray, back: np.ndarray) -> None:  # pragma: no cover - compiled
    """For candidate entries ``flat``, fill ``valid`` (may be sampled), ``k`` (steps in the
    n-step window) and ``back`` (frames of the episode behind the entry, at most S-1).

    ``k`` is the first successor 1..n that is an episode's final observation among the
    ones already written, else n. Valid: the entry is not a final observation, its
    window is written (k <= age, age 0 = the stream's newest entry) and its stack does
    not reach past the oldest entry still in the ring.
    """
    for i in range(flat.size):
        entry = flat[i]
        stream = entry // capacity
        base = stream * capacity
        pos = entry - base
        age = (cursor[stream] - 1 - pos) % capacity
        behind = min(np.int64(episode_step[entry]), stack_size - 1)
        steps = n_step
        for j in range(1, min(n_step, age) + 1):
            if last[base + (pos + j) % capacity]:
                steps = j
                break
        k[i] = steps
        back[i] = behind
        valid[i] = steps <= age and age + behind < count[stream] and not last[entry]


@njit(cache=True, nogil=True)
def transitions(flat: np.ndarray, k: np.ndarray, back: np.ndarray, capacity: int,
                stack_cols: np.ndarray, action: np.ndarray, reward: np.ndarray,
                terminated: np.ndarray, return_coef: np.ndarray, discount_of_k: np.ndarray,
                frame_ids: np.ndarray, out_action: np.ndarray, out_reward: np.ndarray,
                out_discount: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per valid sample (entry, k, back): the frame ids of its two stacks and its scalars.

    ``frame_ids[i]`` gets the 2S entries of the obs stack then of the next stack (oldest
    channel first): columns ``stack_cols[back, k]`` of the window (padding at an
    episode start and the shorter window at its end are in that table). The reward is
    the discounted sum of the k rewards inside the window (coefficients 0 past it); the
    discount is gamma**k, or 0 when step k-1 of the window terminated the episode.
    """
    stack_size = stack_cols.shape[2] // 2
    n_step = return_coef.shape[1]
    for i in range(flat.size):
        entry = flat[i]
        base = (entry // capacity) * capacity
        pos = entry - base
        steps = k[i]
        cols = stack_cols[back[i], steps]
        for c in range(cols.size):
            frame_ids[i, c] = base + (pos + cols[c] - (stack_size - 1)) % capacity
        total = 0.0
        for m in range(n_step):
            total += return_coef[steps, m] * reward[base + (pos + m) % capacity]
        out_reward[i] = total
        out_action[i] = action[entry]
        out_discount[i] = 0.0 if terminated[base + (pos + steps - 1) % capacity] else discount_of_k[steps]


@njit(cache=True, nogil=True)
def stacks4(frames: np.ndarray, ids: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:  # pragma: no cover
    """Both 4-channel stacks of every sample from the ring ``frames`` (N, H*W).

    ``ids[i, 0..3]`` are the frames of sample i's obs stack and ``ids[i, 4..7]`` those of
    its next stack (oldest channel first, as :func:`transitions` writes them).
    ``obs[i, p]`` and ``next_obs[i, p]`` are uint32s holding pixel p of the four frames,
    channel 0 in the lowest byte (= first in memory on a little-endian machine). A
    stack's frames are read straight from the ring and each pixel is written once as one
    4-byte word: the memory traffic of a plain gather, with the channels-last interleave
    for free. A sample's two stacks are built one after the other, so the frames they
    share are read from cache the second time.
    """
    for i in range(ids.shape[0]):
        for side in range(2):
            row = obs[i] if side == 0 else next_obs[i]
            first = 4 * side
            f0 = frames[ids[i, first]]
            f1 = frames[ids[i, first + 1]]
            f2 = frames[ids[i, first + 2]]
            f3 = frames[ids[i, first + 3]]
            for p in range(row.size):
                row[p] = (np.uint32(f0[p]) | (np.uint32(f1[p]) << 8)
                          | (np.uint32(f2[p]) << 16) | (np.uint32(f3[p]) << 24))


@njit(cache=True, nogil=True)
def stacks_any(frames: np.ndarray, ids: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:  # pragma: no cover
    """Any stack size S (and any byte order): ``obs[i, p, c] = frames[ids[i, c], p]`` and
    ``next_obs[i, p, c] = frames[ids[i, S + c], p]``."""
    size = obs.shape[2]
    for i in range(ids.shape[0]):
        for side in range(2):
            out = obs[i] if side == 0 else next_obs[i]
            for c in range(size):
                frame = frames[ids[i, side * size + c]]
                for p in range(frame.size):
                    out[p, c] = frame[p]
