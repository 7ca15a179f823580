"""A vectorised k-ary sum tree for proportional prioritized replay.

Every internal node holds the sum of its ``fanout`` children, so the tree answers
"which leaf holds the cumulative mass u?" by descending from the top, and a priority
change costs one pass up the tree. Both directions are written over whole batches with
numpy, one level at a time, so a batch of 32 costs a handful of array operations per
level instead of 32 Python-level walks.

Why k-ary instead of binary: with numpy, the cost of a descent or an update is set by
the number of levels (each level is a few array calls of fixed overhead), not by the
work inside a level. A fanout of 64 turns the 17 levels a binary tree needs for 100k
leaves into 3, and the internal nodes take 1/63 of the leaf storage instead of as much
again. ``fanout=2`` gives the classic binary tree (the tests use it on hand-computed
examples).

Layout: a "top row" of at most ``fanout`` nodes, then ``depth`` levels, each ``fanout``
times wider than the one above; node ``j`` of a level has children
``j*fanout .. j*fanout + fanout - 1`` on the level below. All levels live in one flat
float64 array (top row first), which is what :meth:`SumTree.state` hands out for saving.
Leaves past ``size`` are padding and stay 0.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Sums of non-negative leaf values, with batched prefix-sum search and batched updates."""

    def __init__(self, size: int, fanout: int = 64) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if fanout < 2:
            raise ValueError(f"fanout must be >= 2, got {fanout}")
        self.size = int(size)
        self.fanout = int(fanout)
        depth = 0
        while fanout ** (depth + 1) < size:
            depth += 1
        top_width = -(-size // fanout**depth)  # ceil: the top row covers every leaf
        self.depth = depth
        widths = [top_width * fanout**level for level in range(depth + 1)]
        offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        self._nodes = np.zeros(int(offsets[-1]), dtype=np.float64)
        # Views into the one flat array, top row first, leaves last.
        self._levels = [self._nodes[offsets[i]:offsets[i + 1]] for i in range(depth + 1)]
        self._child_offsets = np.arange(fanout, dtype=np.int64)

    # ------------------------------------------------------------------ queries
    @property
    def total(self) -> float:
        """Sum of all leaves (the top row is at most ``fanout`` numbers)."""
        return float(self._levels[0].sum())

    @property
    def leaves(self) -> np.ndarray:
        """Read-only view of the leaf values (padding excluded)."""
        view = self._levels[-1][: self.size]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        return int(self._nodes.nbytes)

    def get(self, index: np.ndarray) -> np.ndarray:
        """Leaf values at ``index``."""
        return self._levels[-1][index]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """For each ``u`` in ``mass`` (in ``[0, total)``), the leaf ``i`` with
        ``cumsum[i-1] <= u < cumsum[i]``: leaf ``i`` is hit with probability
        ``value_i / total`` when ``u`` is uniform. Zero leaves are never chosen, except
        that float rounding at ``u ~= total`` can land on one; callers must treat a
        zero-valued result as a miss (the replay memory rejects and redraws it).
        """
        u = np.asarray(mass, dtype=np.float64)
        top = self._levels[0]
        cum = top.cumsum()
        node = np.minimum(np.searchsorted(cum, u, side="right"), top.size - 1)
        u = u - (cum[node] - top[node])
        rows = np.arange(u.size)
        for level in self._levels[1:]:
            first_child = node * self.fanout
            children = level[first_child[:, None] + self._child_offsets]  # (B, fanout)
            cum = children.cumsum(axis=1)
            # The first child whose running sum exceeds u is the first False of (cum <= u);
            # forcing the last column False picks the last child if rounding put u past all.
            below = cum <= u[:, None]
            below[:, -1] = False
            j = below.argmin(axis=1)
            u -= cum[rows, j] - children[rows, j]
            node = first_child + j
        return node

    # ------------------------------------------------------------------ updates
    def set(self, index: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``index`` to ``values`` and refresh their ancestors.

        ``index`` must not repeat (with repeats, which value wins is up to numpy);
        parents shared by several leaves are recomputed from their children, so
        repeated *parents* are harmless.
        """
        index = np.asarray(index, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if index.size == 0:
            return
        if index.min() < 0 or index.max() >= self.size:
            raise IndexError(f"leaf index out of range [0, {self.size})")
        if not np.all(values >= 0.0) or not np.all(np.isfinite(values)):
            raise ValueError("sum-tree values must be finite and >= 0")
        self._levels[-1][index] = values
        node = index
        for level in range(self.depth - 1, -1, -1):
            node = node // self.fanout
            children = self._levels[level + 1].reshape(-1, self.fanout)
            self._levels[level][node] = children[node].sum(axis=1)

    # ------------------------------------------------------------------ persistence
    def state(self) -> np.ndarray:
        """The flat node array (saved as-is so a reload is bit-identical; recomputing
        sums in another order could change the last bits)."""
        return self._nodes

