"""One replayed batch, typed: what the replay memory produces and the learning step reads.

A NamedTuple (Stable-Baselines3's ``ReplayBufferSamples`` is the model) instead of a
dict of strings: a misspelt field is an AttributeError at once rather than a KeyError
deep in a run, and the dtypes are stated here once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """``B`` n-step transitions.

    The replay memory fills every field with exactly these dtypes; the learning step
    reads them as they are.
    """

    obs: np.ndarray
    """uint8 (B, H, W, S): the stacked observation the action was taken in."""
    action: np.ndarray
    """int32 (B,)."""
    reward: np.ndarray
    """float32 (B,): the n-step discounted return, stopped at the episode's end."""
    next_obs: np.ndarray
    """uint8 (B, H, W, S): the observation k <= n steps later."""
    discount: np.ndarray
    """float32 (B,): gamma**k, or 0 when the episode terminated inside the window (a
    truncation keeps gamma**k: the state after a time limit still has a value)."""
    weight: np.ndarray
    """float32 (B,): importance-sampling weights (ones for uniform replay)."""
    index: np.ndarray
    """int64 (B,): the transitions' ids in the memory, for ``update_priorities``."""
