"""DrQ's random shift, against hand-computed crops, and inside the learning step."""

from __future__ import annotations

import dataclasses

import numpy as np

from config.settings import AgentConfig
from mario_dqn.augment import random_shift
from tests.test_agent import op_determinism, random_batch  # noqa: F401 - op_determinism is a fixture


def test_shift_is_an_edge_padded_crop_at_the_drawn_offsets() -> None:
    stacks = np.arange(2 * 5 * 6 * 2, dtype=np.uint8).reshape(2, 5, 6, 2)
    out = random_shift(stacks, 2, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    dy, dx = rng.integers(0, 5, size=2), rng.integers(0, 5, size=2)
    for i in range(2):
        for y in range(5):
            for x in range(6):
                # the source pixel, clipped to the image: what edge padding repeats
                sy, sx = min(max(y + dy[i] - 2, 0), 4), min(max(x + dx[i] - 2, 0), 5)
                np.testing.assert_array_equal(out[i, y, x], stacks[i, sy, sx])
    assert out.dtype == np.uint8 and out.shape == stacks.shape


def test_an_offset_of_pad_and_a_pad_of_zero_leave_the_stack_alone() -> None:
    stacks = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 4), dtype=np.uint8)
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    assert random_shift(stacks, 0, rng) is stacks and rng.bit_generator.state == state, "pad 0 draws nothing"
    out = random_shift(stacks, 1, np.random.default_rng(1))
    offsets = np.random.default_rng(1)
    dy, dx = offsets.integers(0, 3, size=64), offsets.integers(0, 3, size=64)
    centred = (dy == 1) & (dx == 1)
    assert centred.any() and (~centred).any()
    np.testing.assert_array_equal(out[centred], stacks[centred])
    assert all(not np.array_equal(out[i], stacks[i]) for i in np.flatnonzero(~centred))


def test_augmented_learning_is_reproducible_and_resumes_exactly(op_determinism: None) -> None:
    from mario_dqn.agent import DQNAgent

    cfg = dataclasses.replace(AgentConfig(network="small"), augment_shift=4, target_update_period=2)
    batches = [random_batch(np.random.default_rng(i)) for i in range(4)]
    straight = DQNAgent(4, (84, 84, 4), cfg, seed=2)
    losses = [straight.train_step(b)["loss"] for b in batches[:2]]
    saved = straight.training_state()
    losses += [straight.train_step(b)["loss"] for b in batches[2:]]
    again = DQNAgent(4, (84, 84, 4), cfg, seed=2)
    assert [again.train_step(b)["loss"] for b in batches] == losses
    resumed = DQNAgent(4, (84, 84, 4), cfg, seed=9)
    resumed.restore(saved)
    assert [resumed.train_step(b)["loss"] for b in batches[2:]] == losses[2:]
    plain = DQNAgent(4, (84, 84, 4), dataclasses.replace(cfg, augment_shift=0), seed=2)
    assert plain.train_step(batches[0])["loss"] != losses[0], "the shift changes what the step sees"
