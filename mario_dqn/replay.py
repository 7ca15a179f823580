"""Replay memory: uint8 frames stored once, stacks and n-step returns rebuilt by index.

Layout: one ring per env stream, so each stream's trajectory stays contiguous. Every
stored array is declared once, in :func:`storage_signature`, as ``(E, C, *per-entry
shape)`` with E = num_envs and C = capacity // num_envs. The per-step fields of entry ``i``
describe the transition *from* the state ending at ``i`` *to* the state ending at
``i + 1``; an entry with ``last`` set has no outgoing transition (it is only ever used
as a next state), which is how an episode's final observation is kept even though no
action is taken from it.

A stack for entry ``i`` is frames ``i-S+1 .. i`` (oldest first, channels-last), except
that it never reaches before the episode's first entry: offsets are clipped to
``episode_step[i]``, so the missing frames repeat the episode's first frame, which is
exactly what the env's frame stack holds after reset. This is Dopamine's
``circular_replay_buffer`` idea, with padding that copies the first frame instead of
zeros because our env does so.

A transition at entry ``i`` is sampled only when (a) ``i`` is not a ``last`` entry,
(b) its whole n-step window ``i .. i+k`` (``k = n``, or fewer if the episode ends
first) is written, which rules out the newest entries next to the write cursor, and
(c) its stack does not reach back past the oldest entry still in the ring, which the
write cursor has just overwritten. Sampling draws candidates, checks (a)-(c) for the
whole batch at once, and redraws the few rejects.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mario_dqn import replay_kernels as kernels
from mario_dqn.batch import Batch
from mario_dqn.sumtree import SumTree

FORMAT_VERSION = 1
"""Version of the on-disk layout written by :meth:`ReplayMemory.save`."""

STATE_FILE = "replay.json"
"""Scalars (cursors, fill counts, RNG state, config) of a saved memory."""

_MAX_EPISODE_STEP = 255  # episode_step is uint8; only min(step, stack_size - 1) is ever used
_REJECTION_ROUNDS = 8  # then fall back to drawing from an explicit list of valid transitions
_NOTHING_TO_SAMPLE = "nothing to sample yet: no stored transition has its n-step window written"
_OUTPUT_POOL = 3  # returned stack arrays kept for reuse per field (see ReplayMemory._output)


class ArraySpec(NamedTuple):
    """One stored array: ``name`` (also its file, ``<name>.npy``), dtype, shape per entry."""

    name: str
    dtype: type[np.generic]
    shape: tuple[int, ...] = ()


def storage_signature(frame_shape: tuple[int, int]) -> tuple[ArraySpec, ...]:
    """Every array of the rings (Dopamine's storage signature): allocation, the flat
    views, :attr:`ReplayMemory.nbytes`, save and load all follow this table, so a field
    is added or changed here only. Names and dtypes are the saved format: keep them."""
    return (
        ArraySpec("frames", np.uint8, frame_shape),  # newest frame of each observation, written once
        ArraySpec("action", np.uint8),  # action taken from the state that ends at this entry
        ArraySpec("reward", np.float32),  # reward of that transition
        ArraySpec("terminated", np.bool_),  # that transition ended the episode by termination
        ArraySpec("last", np.bool_),  # this entry is an episode's final observation
        ArraySpec("episode_step", np.uint8),  # steps since the episode's first entry (capped at 255)
    )


class ReplayMemory:
    """Uniform n-step replay over ``num_envs`` parallel streams; see the module docstring.

    ``capacity`` counts stored frames (~ transitions); it is split evenly over the
    streams, so the effective capacity is ``(capacity // num_envs) * num_envs``.
    Not thread-safe: sampling reuses internal buffers.
    """

    prioritized = False

    def __init__(self, capacity: int, num_envs: int = 1, frame_shape: tuple[int, int] = (84, 84),
                 stack_size: int = 4, n_step: int = 1, gamma: float = 0.99, seed: int = 0) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if stack_size < 1 or stack_size > _MAX_EPISODE_STEP:
            raise ValueError(f"stack_size must be in [1, {_MAX_EPISODE_STEP}], got {stack_size}")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        per_env = capacity // num_envs
        # A window (stack + n steps) plus the entry being written must fit in one ring.
        min_per_env = stack_size + n_step + 2
        if per_env < min_per_env:
            raise ValueError(f"capacity // num_envs = {per_env} is too small for stack_size={stack_size}, "
                             f"n_step={n_step}: need at least {min_per_env} per env")
        height, width = (int(v) for v in frame_shape)
        self.num_envs = int(num_envs)
        self.capacity_per_env = int(per_env)
        self.capacity = self.capacity_per_env * self.num_envs
        self.frame_shape = (height, width)
        self.stack_size = int(stack_size)
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.seed = int(seed)
        self._rng = np.random.default_rng(seed)

        # (E, C, ...) per stream, as saved; the flat views number entry (e, i) as e * C + i,
        # which is also the id handed out by sample().
        self._ring = {spec.name: np.zeros((self.num_envs, self.capacity_per_env, *spec.shape), spec.dtype)
                      for spec in storage_signature(self.frame_shape)}
        self._flat = {name: array.reshape(self.capacity, *array.shape[2:]) for name, array in self._ring.items()}
        self._frame_rows = self._flat["frames"].reshape(self.capacity, height * width)  # the kernels' view

        self._cursor = np.zeros(self.num_envs, dtype=np.int64)  # next slot to write, per stream
        self._count = np.zeros(self.num_envs, dtype=np.int64)  # entries written and not overwritten
        self._num_last = np.zeros(self.num_envs, dtype=np.int64)  # `last` entries among those
        self._needs_start = np.ones(self.num_envs, dtype=bool)  # next add starts a new episode
        self._sampleable: int | None = None  # cached count, invalidated by add/load
        self._outputs: dict[str, list[np.ndarray]] = {}  # recently returned stacks, see _output
        self._pool_turn = 0

        self._streams = np.arange(self.num_envs, dtype=np.int64)
        self._stream_base = self._streams * self.capacity_per_env
        self._build_tables()

    def set_gamma(self, gamma: float) -> None:
        """Discount the samples drawn from now on with ``gamma`` (returns are summed at
        sampling time, so the stored transitions need no change)."""
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        self._build_tables()

    def _build_tables(self) -> None:
        """Lookup tables that turn per-sample (back, k) into columns and coefficients.

        A sample at entry p is rebuilt from its *window*: the entries p-S+1 .. p+n, one
        row of columns 0 .. S+n-1 (column S-1 is p itself). Every index the sample needs
        is a column of that row, so the ring's wrap-around (a modulo) is computed once per
        sample, and the per-sample choices (padding at an episode start, k < n at an
        episode end) become table lookups instead of a dozen small array operations.
        """
        s, n = self.stack_size, self.n_step
        back = np.arange(s)[:, None, None]  # frames available behind p in its episode (clipped to S-1)
        k = np.arange(n + 1)[None, :, None]  # steps in the n-step window
        channel_back = np.arange(s - 1, -1, -1)[None, None, :]  # channel c sits S-1-c entries back
        obs_cols = (s - 1) - np.minimum(channel_back, back)
        next_cols = (s - 1) + k - np.minimum(channel_back, np.minimum(back + k, s - 1))
        # (S, n+1, 2S): columns of the obs stack then of the next stack (oldest channel first).
        self._stack_cols = np.ascontiguousarray(
            np.concatenate(np.broadcast_arrays(obs_cols, next_cols), axis=2), dtype=np.int64)
        powers = self.gamma ** np.arange(n + 1, dtype=np.float64)
        # Row k: gamma**m for the k rewards inside the window, 0 for those past an episode end.
        self._return_coef = np.where(np.arange(n)[None, :] < np.arange(n + 1)[:, None], powers[:n], 0.0)
        self._discount_of_k = powers

    # ================================================================== writing
    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Store one transition per env stream (all arrays batched over num_envs).

        Only newest frames are written: a stream that starts an episode (first add, or
        its previous add ended one) first writes the newest frame of ``obs`` as the
        episode's first entry; then every stream writes the newest frame of
        ``next_obs``. The caller guarantees that for a continuing episode ``obs`` is the
        stream's previous ``next_obs`` (the frames are not compared, to keep add cheap).
        When ``terminated | truncated``, ``next_obs`` must be the episode's *final*
        observation (not the reset one): it is kept as the next state of the episode's
        last transitions.
        """
        obs_frame, next_frame, action, reward, terminated, truncated = self._check_add(
            obs, action, reward, next_obs, terminated, truncated)
        starting = np.flatnonzero(self._needs_start)
        if starting.size:
            self._write(starting, obs_frame[starting], np.zeros(starting.size, np.uint8), False)
        # The transition leaves the newest entry of each stream (just written if starting).
        src = self._stream_base + (self._cursor - 1) % self.capacity_per_env
        self._flat["action"][src] = action
        self._flat["reward"][src] = reward
        self._flat["terminated"][src] = terminated
        step = np.minimum(self._flat["episode_step"][src].astype(np.int64) + 1, _MAX_EPISODE_STEP)
        done = terminated | truncated
        dst = self._write(self._streams, next_frame, step.astype(np.uint8), done)
        self._needs_start = done
        self._sampleable = None
        self._on_added(src, dst)

    def _check_add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                   terminated: np.ndarray, truncated: np.ndarray) -> tuple[np.ndarray, ...]:
        """Validate shapes/dtypes/ranges; return (obs newest frames, next newest frames,
        action, reward, terminated, truncated) as the arrays the ring stores."""
        n = self.num_envs
        stack_shape = (n, *self.frame_shape, self.stack_size)
        for name, value in (("obs", obs), ("next_obs", next_obs)):
            if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.shape != stack_shape:
                got = (getattr(value, "dtype", type(value)), getattr(value, "shape", None))
                raise ValueError(f"{name} must be uint8 {stack_shape}, got {got[0]} {got[1]}")
        action = np.asarray(action)
        reward = np.asarray(reward, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        for name, value in (("action", action), ("reward", reward), ("terminated", terminated),
                            ("truncated", truncated)):
            if value.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {value.shape}")
        if not np.issubdtype(action.dtype, np.integer) or action.min() < 0 or action.max() > 255:
            raise ValueError("action must be integers in [0, 255] (stored as uint8)")
        if not np.isfinite(reward).all():
            raise ValueError("reward must be finite")
        return obs[..., -1], next_obs[..., -1], action.astype(np.uint8), reward, terminated, truncated

    def _write(self, streams: np.ndarray, frames: np.ndarray, episode_step: np.ndarray,
               last: np.ndarray | bool) -> np.ndarray:
        """Write one entry at the cursor of each of ``streams`` (no repeats); return flat ids.

        Keeps ``count``/``num_last`` exact: once a ring is full, each write drops its
        oldest entry, and if that entry was an episode's final observation it no longer
        counts.
        """
        pos = self._cursor[streams]
        flat = self._stream_base[streams] + pos
        full = self._count[streams] == self.capacity_per_env
        self._num_last[streams] -= full & self._flat["last"][flat]
        self._flat["frames"][flat] = frames
        self._flat["episode_step"][flat] = episode_step
        self._flat["last"][flat] = last
        self._num_last[streams] += np.asarray(last, dtype=np.int64)
        self._cursor[streams] = (pos + 1) % self.capacity_per_env
        self._count[streams] = np.minimum(self._count[streams] + 1, self.capacity_per_env)
        return flat

    def _on_added(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Hook: transitions were recorded at ``src``; fresh entries were written at ``dst``."""

    # ================================================================== counting
    def __len__(self) -> int:
        """Stored transitions: entries still in the rings that have an outgoing transition
        (neither an episode's final observation nor a stream's pending newest entry).
        Some of them may not be sampleable yet/any more; see :meth:`can_sample`."""
        pending = int(np.count_nonzero(~self._needs_start & (self._count > 0)))
        return int(self._count.sum() - self._num_last.sum()) - pending

    def num_sampleable(self) -> int:
        """Transitions :meth:`sample` can return right now (exact).

        Only entries next to the two ends of a ring can fail the checks: the newest
        ``n_step`` (window not written yet) and the oldest ``stack_size - 1`` (stack
        reaches into the overwritten slot), so only those are inspected.
        """
        if self._sampleable is None:
            newest = np.broadcast_to(np.arange(self.n_step), (self.num_envs, self.n_step))
            oldest = self._count[:, None] - 1 - np.arange(self.stack_size - 1)
            ages = np.concatenate([newest, oldest], axis=1)
            streams = np.broadcast_to(self._streams[:, None], ages.shape)
            count = self._count[:, None]
            # The oldest group only counts ages not already in the newest group.
            keep = (ages >= 0) & (ages < count)
            keep[:, self.n_step:] &= ages[:, self.n_step:] >= self.n_step
            ages, streams = ages[keep], streams[keep]
            flat = self._flat_from_age(streams, ages)
            valid = self._inspect(flat)[0]
            rejected = int(np.count_nonzero(~valid & ~self._flat["last"][flat]))
            self._sampleable = int(self._count.sum() - self._num_last.sum()) - rejected
        return self._sampleable

    def can_sample(self, batch_size: int) -> bool:
        """True when at least ``batch_size`` distinct transitions are sampleable."""
        return self.num_sampleable() >= batch_size

    @property
    def nbytes(self) -> int:
        """Bytes of all preallocated arrays (not counting sample()'s few-MB output
        buffers, which do not grow with capacity)."""
        return sum(int(a.nbytes) for a in self._arrays().values()) + sum(
            int(a.nbytes) for a in (self._cursor, self._count, self._num_last, self._needs_start))

    def bytes_per_transition(self) -> float:
        return self.nbytes / self.capacity

    # ================================================================== sampling
    def sample(self, batch_size: int, beta: float = 1.0) -> Batch:
        """A :class:`~mario_dqn.batch.Batch` of n-step transitions (drawn with replacement),
        with exactly the dtypes documented there; ``beta`` only shapes prioritized weights
        (uniform replay returns ones)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._sampleable == 0 or not self._count.any():  # else _draw_valid finds out
            raise ValueError(_NOTHING_TO_SAMPLE)
        flat, k, back = self._draw_valid(batch_size)
        return self._build(flat, k, back, self._weights(flat, beta))

    def _draw_candidates(self, n: int) -> np.ndarray:
        """``n`` flat ids drawn uniformly over the written entries of all streams."""
        counts = self._count
        total = int(counts.sum())
        # floor(U * total): uniform up to float rounding (bias < total / 2**53), and much
        # cheaper than Generator.integers; the clamp guards U * total rounding up to total.
        u = np.minimum((self._rng.random(n) * total).astype(np.int64), total - 1)
        if self.num_envs == 1:
            return (self._cursor[0] - 1 - u) % self.capacity_per_env
        ends = np.cumsum(counts)
        streams = np.searchsorted(ends, u, side="right")
        return self._flat_from_age(streams, u - (ends[streams] - counts[streams]))

    def _flat_from_age(self, streams: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Flat id of the entry written ``age`` writes before the newest of each stream."""
        return self._stream_base[streams] + (self._cursor[streams] - 1 - age) % self.capacity_per_env

    def _inspect(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For candidate start entries: (valid, k, back).

        ``k`` is the number of steps in the n-step window, ``back`` how many frames of
        its episode lie behind the entry (clipped to S-1). Invalid are: an episode's final
        observation (no action was taken from it); a window that runs into the write
        cursor before n steps or the episode's end (do not sample the newest entry: its
        successor is not written yet); a stack that reaches into the slot the cursor
        overwrote last; slots never written. The loop is :func:`replay_kernels.inspect`.
        """
        flat = np.ascontiguousarray(flat, dtype=np.int64)
        valid = np.empty(flat.size, dtype=bool)
        k = np.empty(flat.size, dtype=np.int64)
        back = np.empty(flat.size, dtype=np.int64)
        kernels.inspect(flat, self.capacity_per_env, self._cursor, self._count, self._flat["episode_step"],
                        self._flat["last"], self.stack_size, self.n_step, valid, k, back)
        return valid, k, back

    def _draw_valid(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """Draw candidates, inspect them as a batch, redraw the rejects.

        Rejects are rare in a filled ring (episode ends and a few entries at each ring
        end), so a couple of rounds almost always suffice; when most of a small ring is
        invalid, fall back to an explicit list of the valid ids.
        """
        flat = np.asarray(self._draw_candidates(batch_size), dtype=np.int64)  # the kernels' id type
        valid, k, back = self._inspect(flat)
        for _ in range(_REJECTION_ROUNDS):
            if valid.all():
                return flat, k, back
            redo = np.flatnonzero(~valid)
            flat[redo] = self._draw_candidates(redo.size)
            valid[redo], k[redo], back[redo] = self._inspect(flat[redo])
        redo = np.flatnonzero(~valid)
        if redo.size:
            ids = self._valid_ids()
            if ids.size == 0:
                raise ValueError(_NOTHING_TO_SAMPLE)
            flat[redo] = self._draw_from_list(ids, redo.size)
            _, k[redo], back[redo] = self._inspect(flat[redo])
        return flat, k, back

    def _valid_ids(self) -> np.ndarray:
        """Flat ids of every sampleable transition (inspects every written entry)."""
        streams = np.repeat(self._streams, self._count)
        ages = np.arange(streams.size) - np.repeat(np.cumsum(self._count) - self._count, self._count)
        flat = self._flat_from_age(streams, ages)
        return flat[self._inspect(flat)[0]]

    def _draw_from_list(self, ids: np.ndarray, n: int) -> np.ndarray:
        """``n`` ids drawn from ``ids`` with this memory's sampling distribution."""
        return ids[self._rng.integers(0, ids.size, size=n)]

    def _build(self, flat: np.ndarray, k: np.ndarray, back: np.ndarray, weight: np.ndarray) -> Batch:
        """Rebuild stacks and n-step returns for valid start entries.

        Channel c of a stack is the entry S-1-c steps back, clipped to the episode's
        first entry (padding repeats the first frame, like the env's reset). The next
        state sits k entries ahead in the same episode, so at least k more frames of
        the episode lie behind it. :func:`replay_kernels.transitions` turns
        (entry, k, back) into frame ids and scalars; a stack kernel then copies each
        frame straight from the ring into its channel of the channels-last outputs.
        """
        s, size = self.stack_size, flat.size
        frame_ids = np.empty((size, 2 * s), dtype=np.int64)
        action = np.empty(size, dtype=np.int32)
        reward = np.empty(size, dtype=np.float32)
        discount = np.empty(size, dtype=np.float32)
        kernels.transitions(flat, k, back, self.capacity_per_env, self._stack_cols, self._flat["action"],
                            self._flat["reward"], self._flat["terminated"], self._return_coef, self._discount_of_k,
                            frame_ids, action, reward, discount)
        stack_shape = (size, *self.frame_shape, s)
        obs, next_obs = self._output("obs", stack_shape), self._output("next_obs", stack_shape)
        if s == 4 and sys.byteorder == "little":  # 4 channels = one uint32 per pixel
            kernels.stacks4(self._frame_rows, frame_ids, obs.reshape(size, -1).view(np.uint32),
                            next_obs.reshape(size, -1).view(np.uint32))
        else:
            kernels.stacks_any(self._frame_rows, frame_ids, obs.reshape(size, -1, s), next_obs.reshape(size, -1, s))
        return Batch(obs, action, reward, next_obs, discount, weight, flat)

    def _output(self, field: str, shape: tuple[int, ...]) -> np.ndarray:
        """The array to return as ``batch.<field>``: a recent call's one that the caller
        has dropped every reference to, else a new one.

        Why: a new ~1 MB array is mmapped by malloc and faulted in page by page (~230
        faults); on a VM that costs as much as filling it. Reuse is safe exactly when
        nothing else refers to the array: the Batch (a tuple holds one reference per
        field, just as a dict held one per value), a view (it holds its base) and a
        tensor or memoryview aliasing it (buffer exports hold a reference) all raise its
        reference count above the 3 counted here (our pool list, the loop variable, the
        call's argument); NumPy's temporary elision relies on the same count. A dropped
        Batch releases its fields at once (a tuple of arrays has no cycle to wait for).
        A few arrays are pooled so that ``batch = memory.sample(...)`` in a loop, which
        still holds the previous batch during the call, alternates between two of them.
        """
        pool = self._outputs.setdefault(field, [])
        for array in pool:
            if array.shape == shape and sys.getrefcount(array) == 3:
                return array
        array = np.empty(shape, dtype=np.uint8)
        if len(pool) < _OUTPUT_POOL:
            pool.append(array)
        else:  # all busy (the caller keeps batches): forget one, it is the caller's alone now
            pool[self._pool_turn % _OUTPUT_POOL] = array
            self._pool_turn += 1
        return array

    def _weights(self, flat: np.ndarray, beta: float) -> np.ndarray:
        """Importance weights: all ones for uniform sampling."""
        return np.ones(flat.size, dtype=np.float32)

    def update_priorities(self, index: np.ndarray, td_errors: np.ndarray) -> None:
        """No-op: uniform sampling has no priorities. Kept so that callers feed every
        batch's TD errors back without asking which memory they hold."""

    # ================================================================== persistence
    def _arrays(self) -> dict[str, np.ndarray]:
        """The arrays saved as ``<name>.npy`` (and counted by :attr:`nbytes`): the
        storage signature's, in its order; a subclass adds its own."""
        return dict(self._ring)

    def _config(self) -> dict[str, Any]:
        """What must match for a saved memory to load into this one (the array layout)."""
        return {
            "prioritized": self.prioritized,
            "num_envs": self.num_envs,
            "capacity_per_env": self.capacity_per_env,
            "frame_shape": list(self.frame_shape),
        }

    def _scalars(self) -> dict[str, Any]:
        return {
            "cursor": self._cursor.tolist(),
            "count": self._count.tolist(),
            "rng": self._rng.bit_generator.state,
        }

    def save(self, directory: str | os.PathLike) -> None:
        """Write every array as ``<name>.npy`` (no pickle) plus ``replay.json`` (last).

        ``num_last`` and ``needs_start`` are not saved: they follow from the arrays and
        cursors, so a reload cannot make them disagree. Sampling-time settings (gamma,
        n_step, stack_size, alpha) are recorded for information only.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        # Saving over an older save: drop its state file first, so a save cut short leaves
        # a directory that load() refuses instead of old scalars next to new arrays.
        (path / STATE_FILE).unlink(missing_ok=True)
        for name, array in self._arrays().items():
            np.save(path / f"{name}.npy", array, allow_pickle=False)
        state = {
            "format": FORMAT_VERSION,
            "config": self._config(),
            "settings": {"stack_size": self.stack_size, "n_step": self.n_step, "gamma": self.gamma},
            **self._scalars(),
        }
        (path / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True))

    def load(self, directory: str | os.PathLike) -> None:
        """Restore a :meth:`save` into this memory, in place.

        Everything is checked before anything is copied, so a refused directory leaves
        this memory untouched: a missing file, an array of the wrong shape or dtype, or
        a layout config that differs raises ValueError naming the file.
        """
        path = Path(directory)
        state = self._read_state(path / STATE_FILE)
        arrays = {name: self._open_array(path / f"{name}.npy", target)
                  for name, target in self._arrays().items()}
        cursor, count = self._check_scalars(state, path / STATE_FILE)
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state["rng"]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path / STATE_FILE}: bad rng state ({exc})") from exc
        extra = self._check_extra(state, arrays, path)
        for name, target in self._arrays().items():
            np.copyto(target, arrays[name])
        self._cursor[:] = cursor
        self._count[:] = count
        self._rng = rng
        self._apply_extra(extra)
        self._restore_derived()

    def _read_state(self, file: Path) -> dict[str, Any]:
        if not file.is_file():
            raise ValueError(f"{file}: missing")
        try:
            state = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{file}: unreadable ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
            raise ValueError(f"{file}: not a replay memory of format {FORMAT_VERSION}")
        if state.get("config") != self._config():
            raise ValueError(f"{file}: saved layout {state.get('config')} does not match this memory's "
                             f"{self._config()}")
        return state

    @staticmethod
    def _open_array(file: Path, target: np.ndarray) -> np.ndarray:
        """Memory-map a saved array (no copy yet) and check it against ``target``."""
        if not file.is_file():
            raise ValueError(f"{file}: missing")
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:  # truncated files fail here too
            raise ValueError(f"{file}: unreadable ({exc})") from exc
        if array.shape != target.shape or array.dtype != target.dtype:
            raise ValueError(f"{file}: expected {target.dtype} {target.shape}, got {array.dtype} {array.shape}")
        return array

    def _check_scalars(self, state: dict[str, Any], file: Path) -> tuple[np.ndarray, np.ndarray]:
        try:
            cursor = np.asarray(state["cursor"], dtype=np.int64)
            count = np.asarray(state["count"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{file}: bad cursor/count ({exc})") from exc
        cap = self.capacity_per_env
        if (cursor.shape != (self.num_envs,) or count.shape != (self.num_envs,)
                or (cursor < 0).any() or (cursor >= cap).any() or (count < 0).any() or (count > cap).any()):
            raise ValueError(f"{file}: cursor/count out of range for {self.num_envs} streams of {cap}")
        return cursor, count

    def _check_extra(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path) -> Any:
        """Hook: validate a subclass's own state (before anything is copied)."""
        return None

    def _apply_extra(self, checked: Any) -> None:
        """Hook: restore what :meth:`_check_extra` validated."""

    def _restore_derived(self) -> None:
        """Recompute what follows from arrays + cursors: final-observation counts and
        which streams start an episode on their next add."""
        ages = np.arange(self.capacity_per_env)
        slots = (self._cursor[:, None] - 1 - ages) % self.capacity_per_env  # slot of each age
        last = self._ring["last"]
        written = np.empty_like(last)
        written[self._streams[:, None], slots] = ages < self._count[:, None]
        self._num_last[:] = np.count_nonzero(last & written, axis=1)
        newest = self._stream_base + (self._cursor - 1) % self.capacity_per_env
        self._needs_start[:] = (self._count == 0) | self._flat["last"][newest]
        self._sampleable = None


class PrioritizedReplayMemory(ReplayMemory):
    """Proportional prioritized replay (Schaul et al. 2016) on a vectorised sum tree.

    Leaf ``e * C + i`` holds the priority of the transition at entry (e, i); entries
    without a transition (final observations, a stream's pending newest entry) hold 0,
    so the tree never proposes them. New transitions get the largest priority seen so
    far, so each is replayed at least about once before its TD error is known.
    """

    prioritized = True

    def __init__(self, capacity: int, num_envs: int = 1, frame_shape: tuple[int, int] = (84, 84),
                 stack_size: int = 4, n_step: int = 1, gamma: float = 0.99, seed: int = 0,
                 alpha: float = 0.6, priority_epsilon: float = 1e-6, fanout: int = 64) -> None:
        super().__init__(capacity, num_envs, frame_shape, stack_size, n_step, gamma, seed)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not priority_epsilon > 0.0:
            raise ValueError(f"priority_epsilon must be > 0, got {priority_epsilon}")
        self.alpha = float(alpha)
        self.priority_epsilon = float(priority_epsilon)
        self._tree = SumTree(self.capacity, fanout=fanout)
        self._max_priority = 1.0

    def _on_added(self, src: np.ndarray, dst: np.ndarray) -> None:
        """New transitions at ``src`` get the max priority; the fresh entries at ``dst``
        have no transition yet (or never will, if final), so they get 0."""
        self._tree.set(np.concatenate([src, dst]),
                       np.concatenate([np.full(src.size, self._max_priority), np.zeros(dst.size)]))

    def _draw_candidates(self, n: int) -> np.ndarray:
        """Stratified proportional draw: one uniform point in each of n equal slices of
        the total priority mass (lower variance than n independent points)."""
        total = self._tree.total
        mass = (np.arange(n) + self._rng.random(n)) * (total / n)
        return self._tree.find(np.minimum(mass, np.nextafter(total, 0.0)))

    def _draw_from_list(self, ids: np.ndarray, n: int) -> np.ndarray:
        p = self._tree.get(ids)
        if p.sum() <= 0.0:
            raise ValueError("no sampleable transition has a positive priority")
        return ids[self._rng.choice(ids.size, size=n, p=p / p.sum())]

    def _weights(self, flat: np.ndarray, beta: float) -> np.ndarray:
        """w_i = (N * P(i))**-beta / max_j w_j over the batch (Dopamine's normalisation).

        N and the total mass cancel in the ratio, so this is (p_i / min_j p_j)**-beta.
        """
        if beta < 0.0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        p = self._tree.get(flat)
        return ((p / p.min()) ** -beta).astype(np.float32)

    def update_priorities(self, index: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the priorities of sampled transitions to ``(|td| + eps) ** alpha``.

        Repeated ids keep their last value. Ids whose slot holds no transition any more
        (overwritten by a final observation or a pending entry since they were sampled)
        are skipped, so a stale update cannot make an unsampleable slot proposable.
        """
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        td = np.asarray(td_errors, dtype=np.float64).reshape(-1)
        if index.shape != td.shape:
            raise ValueError(f"index and td_errors differ in length: {index.size} vs {td.size}")
        if index.size == 0:
            return
        if index.min() < 0 or index.max() >= self.capacity:
            raise ValueError(f"index out of range [0, {self.capacity})")
        if not np.isfinite(td).all():
            raise ValueError("td_errors must be finite")
        priority = (np.abs(td) + self.priority_epsilon) ** self.alpha
        unique, last_pos = np.unique(index[::-1], return_index=True)
        priority = priority[::-1][last_pos]
        live = self._tree.get(unique) > 0.0
        if live.any():
            self._tree.set(unique[live], priority[live])
            self._max_priority = max(self._max_priority, float(priority[live].max()))

    def get_priorities(self, index: np.ndarray) -> np.ndarray:
        """Current priorities of ``index`` (0 for slots without a transition)."""
        return self._tree.get(np.asarray(index, dtype=np.int64)).copy()

    @property
    def total_priority(self) -> float:
        return self._tree.total

    # persistence -----------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "priority_tree": self._tree.state()}

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "fanout": self._tree.fanout}

    def _scalars(self) -> dict[str, Any]:
        return {**super()._scalars(), "max_priority": self._max_priority,
                "alpha": self.alpha, "priority_epsilon": self.priority_epsilon}

    def _check_extra(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path) -> float:
        """A tree with negative or non-finite nodes would silently skew every draw."""
        tree = arrays["priority_tree"]
        if not (np.isfinite(tree).all() and (tree >= 0.0).all()):
            raise ValueError(f"{path / 'priority_tree.npy'}: priorities must be finite and >= 0")
        value = state.get("max_priority")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < float("inf"):
            raise ValueError(f"{path / STATE_FILE}: bad max_priority {value!r}")
        return float(value)

    def _apply_extra(self, checked: float) -> None:
        self._max_priority = checked


def make_replay(replay_cfg: Any, agent_cfg: Any, env_cfg: Any, num_envs: int, seed: int) -> ReplayMemory:
    """Build the replay memory a run's config asks for (uniform or prioritized)."""
    common = dict(
        capacity=replay_cfg.capacity,
        num_envs=num_envs,
        frame_shape=(env_cfg.frame_size, env_cfg.frame_size),
        stack_size=env_cfg.stack_size,
        n_step=agent_cfg.n_step,
        gamma=agent_cfg.gamma,
        seed=seed,
    )
    if replay_cfg.prioritized:
        return PrioritizedReplayMemory(**common, alpha=replay_cfg.alpha,
                                       priority_epsilon=replay_cfg.priority_epsilon)
    return ReplayMemory(**common)
