"""Data augmentation of replayed observations: DrQ's random shift.

Kostrikov et al. (2020, "Image augmentation is all you need", DrQ) pad each stacked
observation by a few pixels, repeating its edge, and crop it back to its size at a
random offset; every frame of a stack moves together, so motion between them is kept.
Applied independently to ``obs`` and ``next_obs`` of a replayed batch, it regularises
the Q-network's convolutions; with the DrQ(eps) schedule it was the largest sample-
efficiency gain of the Atari-100k baselines that cost little compute (Agarwal et al.,
2021). Done here in numpy on the uint8 stacks, with a generator the agent owns and
saves, so a resumed run draws the same shifts.
"""

from __future__ import annotations

import numpy as np


def random_shift(stacks: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """``stacks`` (N, H, W, C), each moved by up to ``pad`` pixels in both directions.

    Stack ``i`` is edge-padded to (H + 2 pad, W + 2 pad) and cropped at (dy_i, dx_i),
    both drawn uniformly from 0..2 pad (dy first, then dx, one array each): an offset of
    ``pad`` leaves it as it was. ``pad`` 0 returns the stacks unchanged and draws nothing.
    """
    if pad == 0:
        return stacks
    n, height, width, _ = stacks.shape
    padded = np.pad(stacks, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    out = np.empty_like(stacks)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
    return out
